//! Requests from the network: checked (tags, Require, body type), then
//! dispatched by method (new calls, re-INVITE, BYE, CANCEL, REFER, INFO,
//! REGISTER, OPTIONS).

use std::time::Instant;

use tracing::debug;

use super::{ALLOW, EndReason, Phase, Purpose, Switch};
use crate::media::dtmf;
use crate::sip::message::Request;
use crate::sip::sdp;
use crate::sip::transaction::{Peer, TxId};

impl Switch {
    pub(super) fn handle_request(&mut self, now: Instant, tx: TxId, peer: Peer, request: Request) {
        let core = &request.core;
        let method = core.cseq_method.as_str();
        let call = self.by_sip.get(&core.call_id).copied();
        // In-dialog requests (a To tag) must match the dialog's tags, not
        // only its Call-ID: otherwise 481.
        let call = match call {
            Some(id) if core.to_tag.is_some() && !self.in_dialog(id, core) => {
                debug!(call = %id, %method, "request with the call's Call-ID but other tags");
                None
            }
            other => other,
        };
        // We support no SIP extensions: any option-tag a request requires
        // is unknown to us (RFC 3261 §8.2.2.3); never for ACK or CANCEL.
        if !matches!(method, "ACK" | "CANCEL") {
            let required: Vec<&str> = request
                .header_list("Require")
                .chain(request.header_list("Proxy-Require"))
                .collect();
            if !required.is_empty() {
                let unsupported = required.join(", ");
                return self.respond_with(
                    now,
                    tx,
                    core,
                    420,
                    "Bad Extension",
                    None,
                    &[("Unsupported", &unsupported)],
                    b"",
                );
            }
        }
        // A body we cannot read (RFC 3261 §8.2.3): only SDP comes with
        // INVITE; INFO's own types are checked below.
        if method == "INVITE" && !request.body().is_empty() {
            let ct = request.header("Content-Type").unwrap_or_default();
            let media = ct.split(';').next().unwrap_or_default().trim();
            if !media.eq_ignore_ascii_case("application/sdp") {
                return self.respond_with(
                    now,
                    tx,
                    core,
                    415,
                    "Unsupported Media Type",
                    None,
                    &[("Accept", "application/sdp")],
                    b"",
                );
            }
        }
        match method {
            "INVITE" if core.to_tag.is_none() => {
                if call.is_some() {
                    self.respond(now, tx, core, 482, "Loop Detected");
                } else {
                    self.new_call(now, tx, peer, request);
                }
            }
            "INVITE" => match call {
                // Re-INVITE: a session refresh keeps our session as it is;
                // hold (sendonly, inactive) and resume answer in kind, and
                // the other leg of a bridge hears the hold prompt meanwhile.
                Some(id) if self.calls[&id].phase != Phase::Ringing => {
                    let offered =
                        (!request.body().is_empty()).then(|| sdp::Direction::of(request.body()));
                    let session = self.cfg.seed ^ id.0;
                    let c = self.calls.get_mut(&id).expect("known call");
                    let hold = offered.is_some_and(sdp::Direction::is_hold);
                    let changed = offered.is_some() && hold != c.on_hold;
                    if changed {
                        c.on_hold = hold;
                        c.sdp_changes += 1;
                    }
                    let sdp = sdp::with_direction(
                        &c.answer_sdp,
                        offered.map_or(sdp::Direction::SendRecv, sdp::Direction::answer),
                        session.wrapping_add(c.sdp_changes),
                    );
                    let contact = self.cfg.contact_for(peer.transport);
                    self.respond_with(
                        now,
                        tx,
                        core,
                        200,
                        "OK",
                        None,
                        &[("Contact", &contact), ("Content-Type", "application/sdp")],
                        sdp.as_bytes(),
                    );
                    if changed {
                        self.hold_changed(id, hold);
                    }
                    // Its media moved (not an old-style hold's 0.0.0.0,
                    // nor a refresh from where it was).
                    if let Ok(o) = sdp::negotiate(request.body())
                        && !o.remote.ip().is_unspecified()
                        && o.remote.port() != 0
                        && let Some(offer) = self
                            .calls
                            .get_mut(&id)
                            .and_then(|c| c.offer.as_mut())
                            .filter(|offer| offer.remote != o.remote)
                    {
                        offer.remote = o.remote;
                        let remote = super::MediaCommand::Remote {
                            call: id,
                            remote: o.remote,
                        };
                        self.out.push_back(super::Output::Media(remote));
                    }
                }
                _ => self.respond(now, tx, core, 481, "Call/Transaction Does Not Exist"),
            },
            "BYE" => match call {
                Some(id) => {
                    self.respond(now, tx, core, 200, "OK");
                    if self.calls[&id].phase == Phase::Ringing {
                        self.reject_invite(now, id, 487, "Request Terminated");
                    }
                    self.end(id, EndReason::CallerHungUp);
                }
                None => self.respond(now, tx, core, 481, "Call/Transaction Does Not Exist"),
            },
            "CANCEL" => {
                let target = self.tx.invite_for_cancel(core);
                match target.and_then(|t| self.by_tx.get(&t).copied()) {
                    Some(id) => {
                        self.respond(now, tx, core, 200, "OK");
                        if self.calls[&id].phase == Phase::Ringing {
                            self.reject_invite(now, id, 487, "Request Terminated");
                            self.end(id, EndReason::Cancelled);
                        }
                    }
                    None if target.is_some() => self.respond(now, tx, core, 200, "OK"),
                    None => self.respond(now, tx, core, 481, "Call/Transaction Does Not Exist"),
                }
            }
            "REFER" => match call {
                Some(id) => self.handle_refer(now, tx, id, &request),
                None => self.respond(now, tx, core, 481, "Call/Transaction Does Not Exist"),
            },
            "REGISTER" => self.handle_register(now, tx, peer, &request),
            "OPTIONS" => {
                let contact = self.cfg.contact_for(peer.transport);
                let tag = self.tag_for(0);
                self.respond_with(
                    now,
                    tx,
                    core,
                    200,
                    "OK",
                    Some(&tag),
                    &[
                        ("Allow", ALLOW),
                        (
                            "Accept",
                            "application/sdp, application/dtmf-relay, application/dtmf",
                        ),
                        ("Contact", &contact),
                    ],
                    b"",
                );
            }
            "INFO" => match call {
                Some(id) => {
                    let ct = request
                        .header("Content-Type")
                        .unwrap_or_default()
                        .to_string();
                    match dtmf::info_digit(&ct, request.body()) {
                        Some(d) => {
                            self.respond(now, tx, core, 200, "OK");
                            match self.bridged_to(id) {
                                // Between caller and agent: passed on as sent.
                                Some(other) => {
                                    debug!(call = %id, to = %other, digit = %d, "DTMF relayed");
                                    self.send_in_dialog(
                                        now,
                                        other,
                                        "INFO",
                                        &[],
                                        Some((&ct, request.body())),
                                    );
                                    // The consulting agent's keys may ask for more.
                                    if matches!(self.calls[&id].purpose, Purpose::Consult { .. }) {
                                        self.consult_key(now, id, d);
                                    }
                                }
                                None => self.handle_digit(now, id, d),
                            }
                        }
                        None if request.body().is_empty() => self.respond(now, tx, core, 200, "OK"),
                        None => self.respond_with(
                            now,
                            tx,
                            core,
                            415,
                            "Unsupported Media Type",
                            None,
                            &[("Accept", "application/dtmf-relay, application/dtmf")],
                            b"",
                        ),
                    }
                }
                None => self.respond(now, tx, core, 481, "Call/Transaction Does Not Exist"),
            },
            _ => self.respond_with(
                now,
                tx,
                core,
                405,
                "Method Not Allowed",
                None,
                &[("Allow", ALLOW)],
                b"",
            ),
        }
    }
}
