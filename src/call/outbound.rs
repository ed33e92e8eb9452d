//! Calls the hotline places: the return visit.
//!
//! INVITE with our offer through the gateway (client INVITE transaction),
//! ring timeout → CANCEL (only after a provisional response, RFC 3261 §9.1),
//! 2xx → ACK (sent by us, resent for each retransmitted 2xx), open RTP, ask
//! "press 1 if it is fixed, 2 if not", then "rate us from 1 to 5", goodbye,
//! BYE. Anything but 2xx, no response, or hanging up before a key is an
//! unanswered visit for the ticket core to retry.

use std::time::Instant;

use bytes::Bytes;
use tracing::info;

use super::dialog::{self, DialogIds, Req};
use super::event::CallEventKind;
use super::{ALLOW, Call, CallId, EndReason, MediaCommand, Output, Phase, Purpose, Switch, Timer};
use crate::sip::message::{self, Response};
use crate::sip::sdp;
use crate::sip::transaction::{Peer, Transport};
use crate::tickets::TicketId;

/// A return-visit call to place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaceCall {
    pub ticket: TicketId,
    /// 1 for the first call of this visit, 2 for the first retry ...
    pub attempt: u32,
    /// The owner's number, as the gateway expects it in the Request-URI.
    pub number: String,
    pub gateway: std::net::SocketAddr,
}

/// What a return visit learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VisitOutcome {
    /// The owner pressed 1.
    Fixed,
    /// The owner pressed 2.
    NotFixed,
    /// Answered, but no 1 or 2 (silence twice, or hung up first).
    NoKey,
    /// Not answered: the final response code (408 no response at all, 487
    /// cancelled at the ring timeout, 486 busy, 503 no port or shut down ...).
    Unanswered(u16),
}

impl VisitOutcome {
    /// A metric label.
    pub fn label(self) -> &'static str {
        match self {
            VisitOutcome::Fixed => "fixed",
            VisitOutcome::NotFixed => "not_fixed",
            VisitOutcome::NoKey => "no_key",
            VisitOutcome::Unanswered(_) => "unanswered",
        }
    }

    /// The outcome of a visit that ended before the owner answered the question.
    pub(super) fn from_end(reason: EndReason, phase: Phase) -> Self {
        match reason {
            EndReason::Declined(code) => VisitOutcome::Unanswered(code),
            EndReason::NoAnswer => VisitOutcome::Unanswered(487),
            EndReason::Unreachable => VisitOutcome::Unanswered(408),
            _ if matches!(phase, Phase::Dialing | Phase::Cancelling) => {
                VisitOutcome::Unanswered(503)
            }
            EndReason::MediaFailed => VisitOutcome::Unanswered(500),
            _ => VisitOutcome::NoKey,
        }
    }
}

/// The return-visit part of a call's state.
#[derive(Debug)]
pub(super) struct Visit {
    pub ticket: TicketId,
    pub attempt: u32,
    /// The outcome went out (exactly once per call).
    pub reported: bool,
    /// Times the current question was repeated after silence.
    pub repeats: u8,
}

/// What a call the hotline placed needs of its INVITE (return visits and
/// legs to agents alike).
#[derive(Debug)]
pub(super) struct OutLeg {
    pub request_uri: String,
    pub invite_branch: String,
    /// A 1xx came: CANCEL is allowed.
    pub provisional: bool,
    /// Our ACK for the 2xx, resent when the 2xx is retransmitted.
    pub ack: Option<Bytes>,
    /// The INVITE was sent again with credentials (once per call).
    pub authorized: bool,
}

impl Switch {
    /// Places a return-visit call. Its outcome comes out as
    /// a [`CallEventKind::ReturnVisit`], also when it cannot even start.
    pub fn place_call(&mut self, now: Instant, req: PlaceCall) -> CallId {
        self.last_now = Some(now);
        let (id, sip_call_id) = self.new_outbound("rv");
        info!(call = %id, sip_call_id, ticket = %req.ticket, attempt = req.attempt, number = %req.number, "return visit: calling");
        let purpose = Purpose::ReturnVisit(Visit {
            ticket: req.ticket,
            attempt: req.attempt,
            reported: false,
            repeats: 0,
        });
        if let Err(code) = self.place_outbound(
            now,
            id,
            &sip_call_id,
            &req.number,
            req.gateway,
            purpose,
            None,
        ) {
            self.visit_not_placed(now, id, &sip_call_id, req, code);
        }
        id
    }

    /// INVITEs `number` through `gateway` for a call the hotline places
    /// (offering only the codec of `like`, a call it is to be relayed
    /// with, when given); the status to report when it cannot even start
    /// (503 no RTP port, 484 a number a SIP URI cannot carry).
    #[allow(clippy::too_many_arguments)] // the call's own fields
    pub(super) fn place_outbound(
        &mut self,
        now: Instant,
        id: CallId,
        sip_call_id: &str,
        number: &str,
        gateway: std::net::SocketAddr,
        purpose: Purpose,
        like: Option<&sdp::Offer>,
    ) -> Result<(), u16> {
        let request_uri = format!("sip:{number}@{gateway}");
        let peer = Peer {
            transport: Transport::Udp,
            addr: gateway,
        };
        let Some(port) = self.ports.allocate(now) else {
            tracing::warn!(call = %id, "no RTP port free for an outbound call");
            return Err(503);
        };
        let body = self.offer_body(id, port, like);
        let dialled = Dial {
            id,
            sip_call_id: sip_call_id.to_string(),
            request_uri,
            peer,
            port,
            body,
            purpose,
            number: number.to_string(),
            bridge: None,
        };
        if !self.dial(now, dialled) {
            // Our own INVITE does not parse: the number has characters a
            // SIP URI cannot carry.
            tracing::warn!(call = %id, number = %number, "outbound call: number not dialable");
            return Err(484);
        }
        let to = self.calls[&id].remote_target.clone();
        self.stats.calls_started += 1;
        self.emit_for(
            now,
            id,
            sip_call_id,
            CallEventKind::Started {
                from: format!("sip:hotline@{}", self.cfg.sip_addr),
                to,
                number: number.to_string(),
                outbound: true,
            },
        );
        self.arm(now, id, Timer::RingTimeout);
        self.pump(now);
        Ok(())
    }

    /// The return visit could not even be placed: an unanswered attempt
    /// with this status.
    fn visit_not_placed(
        &mut self,
        now: Instant,
        id: CallId,
        sip_call_id: &str,
        req: PlaceCall,
        code: u16,
    ) {
        let kind = CallEventKind::ReturnVisit {
            ticket: req.ticket,
            attempt: req.attempt,
            number: req.number,
            outcome: VisitOutcome::Unanswered(code),
        };
        self.emit_for(now, id, sip_call_id, kind);
    }

    /// A response to our INVITE (retransmitted 2xx included).
    pub(super) fn handle_invite_response(&mut self, now: Instant, id: CallId, response: Response) {
        let code = response.code();
        let c = self.calls.get_mut(&id).expect("live call");
        let Some(leg) = c.out.as_mut() else {
            return;
        };
        if code < 200 {
            leg.provisional = true;
            return;
        }
        let may_authorize = !leg.authorized && c.phase == Phase::Dialing;
        if matches!(code, 401 | 407) && may_authorize && self.authorize(now, id, &response) {
            return;
        }
        let c = self.calls.get_mut(&id).expect("live call");
        let Some(leg) = c.out.as_mut() else {
            return;
        };
        if code >= 300 {
            // The transaction has ACKed it.
            self.by_tx.remove(&c.invite_tx);
            let reason = if c.phase == Phase::Cancelling && code == 487 {
                EndReason::NoAnswer
            } else {
                EndReason::Declined(code)
            };
            info!(call = %id, code, "outbound call not answered");
            self.end(id, reason);
            return;
        }
        if let Some(ack) = leg.ack.clone() {
            // A retransmitted 2xx: our ACK was lost.
            let peer = c.peer;
            self.send_raw(peer, ack);
            return;
        }
        // Answered: the dialog is set by the 2xx (RFC 3261 §12.1.2).
        c.remote = response.core.to.clone();
        if let Some(contact) = response.header("Contact") {
            c.remote_target = message::addr_uri(contact).to_string();
        }
        // A UAC's route set is the Record-Route list reversed.
        let mut routes = response.record_routes();
        routes.reverse();
        c.route_set = routes;
        let ack = self.build_ack(id);
        let c = self.calls.get_mut(&id).expect("live call");
        if let Some(leg) = c.out.as_mut() {
            leg.ack = Some(ack.clone());
        }
        let peer = c.peer;
        self.send_raw(peer, ack);
        let c = self.calls.get_mut(&id).expect("live call");
        if c.phase == Phase::Cancelling {
            // The owner answered as we gave up: RFC 3261 §9.1, ACK then BYE.
            self.send_bye(now, id);
            return;
        }
        match sdp::negotiate(response.body()) {
            Ok(answer) => {
                info!(call = %id, "outbound call answered");
                c.offer = Some(answer);
                c.phase = Phase::Connected;
                c.timer = None;
                c.generation += 1;
                self.send_open(id);
            }
            Err(e) => {
                tracing::warn!(call = %id, error = %e, "outbound call: unusable SDP answer");
                self.send_bye(now, id);
            }
        }
    }

    /// The ACK for the 2xx to our INVITE (in the dialog the 2xx set up).
    fn build_ack(&self, id: CallId) -> Bytes {
        let c = &self.calls[&id];
        let branch = format!("z9hG4bK{:x}a{:x}", self.cfg.seed & 0xffff, id.0);
        c.request(
            &self.cfg,
            Req {
                method: "ACK",
                uri: &c.remote_target,
                branch: &branch,
                cseq: c.invite.cseq,
                headers: &[],
                body: None,
            },
        )
    }

    fn send_raw(&mut self, peer: Peer, bytes: Bytes) {
        self.out
            .push_back(Output::Transmit(crate::sip::transaction::Transmit {
                peer,
                bytes,
            }));
    }

    /// CANCEL for a ringing outbound call; without a provisional response
    /// yet a CANCEL is not allowed, so the call is dropped as unreachable.
    pub(super) fn send_cancel(&mut self, now: Instant, id: CallId) {
        let c = self.calls.get_mut(&id).expect("live call");
        let Some(leg) = c.out.as_ref() else {
            return;
        };
        if !leg.provisional {
            // Not a word from the far end: as good as Timer B.
            self.by_tx.remove(&c.invite_tx);
            self.end(id, EndReason::Unreachable);
            return;
        }
        c.phase = Phase::Cancelling;
        // The INVITE's branch and CSeq number (RFC 3261 §9.1).
        let c = &self.calls[&id];
        let leg = c.out.as_ref().expect("checked");
        let text = c.request(
            &self.cfg,
            Req {
                method: "CANCEL",
                uri: &leg.request_uri,
                branch: &leg.invite_branch,
                cseq: c.invite.cseq,
                headers: &[],
                body: None,
            },
        );
        let peer = c.peer;
        // The 200 to the CANCEL needs no action; the INVITE's 487 ends the call.
        let _ = self.tx.send_request(now, peer, text);
    }

    pub(super) fn ring_timeout(&mut self, now: Instant, id: CallId) {
        if self
            .calls
            .get(&id)
            .is_some_and(|c| c.phase == Phase::Dialing)
        {
            info!(call = %id, "outbound call: no answer, cancelling");
            self.send_cancel(now, id);
        }
    }

    /// RTP is open on an answered return visit: ask the question.
    pub(super) fn ask(&mut self, now: Instant, id: CallId) {
        if matches!(self.calls[&id].purpose, Purpose::OnCall(_)) {
            return self.ask_duty(now, id);
        }
        self.set_phase(id, Phase::Asking);
        self.play(id, "return_visit");
    }

    pub(super) fn handle_answer_digit(&mut self, now: Instant, id: CallId, digit: char) {
        if matches!(self.calls[&id].purpose, Purpose::OnCall(_)) {
            return self.duty_digit(now, id, digit);
        }
        let c = self.calls.get_mut(&id).expect("live call");
        let Purpose::ReturnVisit(visit) = &mut c.purpose else {
            return;
        };
        let (ticket, attempt, number) = (visit.ticket, visit.attempt, c.number.clone());
        match (c.phase, digit) {
            (Phase::Asking, '1' | '2') => {
                let outcome = if digit == '1' {
                    VisitOutcome::Fixed
                } else {
                    VisitOutcome::NotFixed
                };
                visit.reported = true;
                visit.repeats = 0;
                info!(call = %id, %ticket, ?outcome, "return visit: answered the question");
                self.emit(
                    now,
                    id,
                    CallEventKind::ReturnVisit {
                        ticket,
                        attempt,
                        number,
                        outcome,
                    },
                );
                self.next_question(id, Phase::Surveying, "survey");
            }
            (Phase::Surveying, '1'..='5') => {
                let score = digit as u8 - b'0';
                info!(call = %id, %ticket, score, "survey answered");
                self.emit(
                    now,
                    id,
                    CallEventKind::SurveyAnswered {
                        ticket: Some(ticket),
                        number,
                        score,
                    },
                );
                self.next_question(id, Phase::Goodbye, "goodbye");
            }
            _ => {} // another key: the question stands
        }
    }

    /// Stops what is playing and moves on to `phase` with `prompt`.
    fn next_question(&mut self, id: CallId, phase: Phase, prompt: &str) {
        let c = self.calls.get_mut(&id).expect("live call");
        c.timer = None;
        c.generation += 1;
        self.out
            .push_back(Output::Media(MediaCommand::Stop { call: id }));
        self.set_phase(id, phase);
        self.play(id, prompt);
    }

    /// Silence after a question: ask once more, then move on.
    pub(super) fn question_timeout(&mut self, _now: Instant, id: CallId) {
        if matches!(self.calls[&id].purpose, Purpose::OnCall(_)) {
            return self.duty_question_timeout(id);
        }
        let c = self.calls.get_mut(&id).expect("live call");
        let phase = c.phase;
        let Purpose::ReturnVisit(visit) = &mut c.purpose else {
            return;
        };
        if visit.repeats == 0 {
            visit.repeats = 1;
            let prompt = if phase == Phase::Asking {
                "return_visit"
            } else {
                "survey"
            };
            self.play(id, prompt);
            return;
        }
        visit.repeats = 0;
        // No answer to the question (reported as NoKey when the call ends)
        // or no rating: thank the owner and hang up.
        self.next_question(id, Phase::Goodbye, "goodbye");
    }
}

/// A call the hotline places, before its INVITE goes out.
pub(super) struct Dial {
    pub id: CallId,
    pub sip_call_id: String,
    pub request_uri: String,
    pub peer: Peer,
    pub port: u16,
    /// Our SDP offer.
    pub body: String,
    pub purpose: Purpose,
    /// The number or agent called (for logs and events).
    pub number: String,
    pub bridge: Option<CallId>,
}

/// Why a leg could not be placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LegError {
    NoPort,
    /// Our own INVITE would not parse (the URI has characters SIP cannot
    /// carry) or could not be sent.
    Undialable,
}

impl Switch {
    /// Places a leg for `caller` to `uri` at `peer` (an agent's or a
    /// supervisor's phone, an outside number), offering the caller's own
    /// codec and telephone-event so RTP can be relayed as it comes.
    #[allow(clippy::too_many_arguments)] // the leg's own fields
    pub(super) fn dial_leg(
        &mut self,
        now: Instant,
        caller: CallId,
        kind: &str,
        (uri, peer): (String, Peer),
        purpose: Purpose,
        number: String,
        bridge: Option<CallId>,
    ) -> Result<CallId, LegError> {
        // A callback's agent rung before its owner is called offers every
        // codec: the owner is offered the one the agent answers with.
        let offer = match self.calls.get(&caller) {
            Some(c) => Some(c.offer.clone().ok_or(LegError::Undialable)?),
            None if self.callbacks.contains_key(&caller) => None,
            None => return Err(LegError::Undialable),
        };
        let port = self.ports.allocate(now).ok_or(LegError::NoPort)?;
        let (id, sip_call_id) = self.new_outbound(kind);
        let body = self.offer_body(id, port, offer.as_ref());
        let dialled = Dial {
            id,
            sip_call_id,
            request_uri: uri,
            peer,
            port,
            body,
            purpose,
            number,
            bridge,
        };
        if !self.dial(now, dialled) {
            return Err(LegError::Undialable);
        }
        self.stats.calls_started += 1;
        Ok(id)
    }

    /// Our SDP offer on `port` for call `id`: PCMU, PCMA and
    /// telephone-event, or only the codec of `like` (a call whose RTP is
    /// to be relayed as it comes).
    fn offer_body(&self, id: CallId, port: u16, like: Option<&sdp::Offer>) -> String {
        let local = std::net::SocketAddr::new(self.cfg.media_ip, port);
        match like {
            Some(o) => sdp::offer_one(local, self.cfg.seed ^ id.0, o.codec_pt, o.law, o.dtmf_pt),
            None => sdp::offer(local, self.cfg.seed ^ id.0),
        }
    }

    /// A new call id and its SIP Call-ID (`kind` tells return visits from
    /// agent legs in logs; the seed keeps it unique across restarts).
    pub(super) fn new_outbound(&mut self, kind: &str) -> (CallId, String) {
        self.next_id += 1;
        let id = CallId(self.next_id);
        let sip_call_id = format!(
            "{kind}{:x}-{}@{}",
            self.cfg.seed & 0xffff_ffff,
            id.0,
            self.cfg.sip_addr.ip()
        );
        (id, sip_call_id)
    }

    /// Our INVITE for a call we place (the first, or again with
    /// credentials: `auth` the header's name and value).
    #[allow(clippy::too_many_arguments)] // the INVITE's own fields
    fn invite_bytes(
        &self,
        d: &DialogIds<'_>,
        uri: &str,
        branch: &str,
        cseq: u32,
        auth: Option<(&str, &str)>,
        sdp: &str,
    ) -> Bytes {
        let contact = self.cfg.contact_for(d.transport);
        let mut headers = vec![("Contact", contact.as_str())];
        headers.extend(auth);
        headers.push(("Allow", ALLOW));
        dialog::request(
            &self.cfg,
            d,
            Req {
                method: "INVITE",
                uri,
                branch,
                cseq,
                headers: &headers,
                body: Some(("application/sdp", sdp.as_bytes())),
            },
        )
    }

    /// The gateway challenged our INVITE (401/407): the same INVITE again,
    /// with credentials for its challenge, in a new transaction. False when
    /// there are no credentials or the challenge cannot be answered.
    fn authorize(&mut self, now: Instant, id: CallId, response: &Response) -> bool {
        let Some((user, password)) = self.cfg.gateway_auth.clone() else {
            return false;
        };
        let (challenge_header, answer_header) = match response.code() {
            407 => ("Proxy-Authenticate", "Proxy-Authorization"),
            _ => ("WWW-Authenticate", "Authorization"),
        };
        let Some(challenge) = response
            .header(challenge_header)
            .and_then(crate::sip::digest::parse_challenge)
        else {
            tracing::warn!(call = %id, "a challenge we cannot answer");
            return false;
        };
        self.next_id += 1;
        let c = &self.calls[&id];
        let Some(leg) = c.out.as_ref() else {
            return false;
        };
        let uri = leg.request_uri.clone();
        let cnonce = format!("{:x}{:x}", self.cfg.seed, self.next_id);
        let value = crate::sip::digest::authorization(
            &challenge, &user, &password, "INVITE", &uri, &cnonce,
        );
        let branch = format!("z9hG4bK{:x}a{:x}", self.cfg.seed & 0xffff, self.next_id);
        let cseq = c.local_cseq + 1;
        let bytes = self.invite_bytes(
            &c.dialog(),
            &uri,
            &branch,
            cseq,
            Some((answer_header, &value)),
            &c.answer_sdp,
        );
        let peer = c.peer;
        let old_tx = c.invite_tx;
        let (Ok(message::Message::Request(invite)), Some(tx)) = (
            message::parse_datagram(&bytes),
            self.tx.send_request(now, peer, bytes),
        ) else {
            return false;
        };
        info!(call = %id, realm = %challenge.realm, "gateway challenged: calling again with credentials");
        self.by_tx.remove(&old_tx);
        self.by_tx.insert(tx, id);
        let c = self.calls.get_mut(&id).expect("live call");
        c.invite_tx = tx;
        c.invite = invite.core;
        c.local_cseq = cseq;
        let leg = c.out.as_mut().expect("checked");
        leg.invite_branch = branch;
        leg.authorized = true;
        leg.provisional = false;
        true
    }

    /// Sends the INVITE of `d` (client transaction) and keeps the call;
    /// false (and the port released) when it cannot be sent.
    pub(super) fn dial(&mut self, now: Instant, d: Dial) -> bool {
        let local_tag = self.tag_for(d.id.0);
        let local = format!("<sip:hotline@{}>;tag={local_tag}", self.cfg.sip_addr);
        let remote = format!("<{}>", d.request_uri);
        let branch = format!("z9hG4bK{:x}i{:x}", self.cfg.seed & 0xffff, d.id.0);
        let ids = DialogIds {
            transport: d.peer.transport,
            routes: &[],
            local: &local,
            remote: &remote,
            call_id: &d.sip_call_id,
        };
        let bytes = self.invite_bytes(&ids, &d.request_uri, &branch, 1, None, &d.body);
        let parsed = message::parse_datagram(&bytes);
        let (Ok(message::Message::Request(invite)), Some(tx)) =
            (parsed, self.tx.send_request(now, d.peer, bytes))
        else {
            self.ports.release(d.port, now);
            return false;
        };
        let call = Call {
            sip_call_id: d.sip_call_id.clone(),
            purpose: d.purpose,
            talking_since: None,
            out: Some(OutLeg {
                request_uri: d.request_uri.clone(),
                invite_branch: branch,
                provisional: false,
                ack: None,
                authorized: false,
            }),
            phase: Phase::Dialing,
            peer: d.peer,
            invite_tx: tx,
            invite: invite.core,
            local_tag,
            local,
            remote,
            remote_target: d.request_uri,
            route_set: Vec::new(),
            local_cseq: 1,
            bye_tx: None,
            offer: None,
            port: Some(d.port),
            open_attempts: 1,
            media_ready: false,
            answer_due: false,
            answer_sdp: d.body,
            on_hold: false,
            sdp_changes: 0,
            digits: String::new(),
            timer: None,
            generation: 0,
            started: now,
            called: d.number.clone(),
            number: d.number,
            identified: true,
            feature: None,
            bridge: d.bridge,
            unconfirmed: false,
        };
        self.by_sip.insert(d.sip_call_id, d.id);
        self.by_tx.insert(tx, d.id);
        self.calls.insert(d.id, Box::new(call));
        if self.next_age_check.is_none() {
            self.next_age_check = Some(now + self.age_check_interval());
        }
        true
    }
}
