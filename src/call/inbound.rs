//! The owner's call: admitted, answered once the caller is known, then the
//! voice menu (or the line test) runs its prompts, keys and requests.

use std::cmp::Reverse;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use tracing::{debug, info, warn};

use super::event::{Abandon, CallEventKind, IdentifiedBy, TransferTarget};
use super::{
    ALLOW, Call, CallId, EndReason, MediaCommand, Output, Phase, Purpose, Switch, Timer, monitor,
};
use crate::ivr;
use crate::media::rtp::StreamParams;
use crate::sip::message::{self, Request};
use crate::sip::sdp;
use crate::sip::transaction::{Peer, TxId};

/// What only an owner's call has: who the owner is, the menu, the place
/// in line, the recording of the conversation, and whoever else joins it
/// (a transfer's target, a colleague, a supervisor). Other calls read it
/// as empty ([`Call::side`]).
#[derive(Debug)]
pub(super) struct OwnerCall {
    pub owner: Option<ivr::OwnerInfo>,
    /// The answer waited once already for the owner lookup.
    pub identify_waited: bool,
    pub ivr: Option<ivr::Session>,
    /// Voice messages left.
    pub recordings: u32,
    /// Waiting in this queue since then (from the hand-off to the ACD to
    /// an agent's answer, the fallback or the caller leaving).
    pub queued: Option<(Instant, String)>,
    /// The queue the caller last waited in, at which priority.
    pub last_queue: Option<String>,
    pub priority: u8,
    /// The conversation is being recorded.
    pub recording: bool,
    /// The recording notice: due before the next prompts; being said (not
    /// cut short: what the menu asked to play meanwhile comes after it,
    /// and an agent who answers meanwhile is joined after it).
    pub notice_due: bool,
    pub notice_playing: bool,
    pub after_notice: Option<Vec<String>>,
    pub bridge_after_notice: Option<CallId>,
    /// The agent is handing the caller on.
    pub transfer: Option<super::transfer::Transfer>,
    /// Back with the first agent after a transfer failed, since then.
    pub transfer_returned: Option<Instant>,
    /// A supervisor's leg on this conversation.
    pub monitor: Option<CallId>,
    /// A second agent's leg in a three-way conversation, and since when.
    pub party: Option<CallId>,
    pub party_since: Option<Instant>,
    /// The hotline calling an owner back (their place came up).
    pub callback: Option<super::callback::CallbackLeg>,
}

impl OwnerCall {
    /// The owner's id, as the menu identified them or the lookup found.
    pub(super) fn owner_id(&self) -> Option<String> {
        self.ivr
            .as_ref()
            .and_then(|s| s.owner())
            .or(self.owner.as_ref())
            .map(|o| o.id.clone())
            .or_else(|| self.callback.as_ref().and_then(|l| l.owner.clone()))
    }

    pub(super) const EMPTY: OwnerCall = OwnerCall {
        owner: None,
        identify_waited: false,
        ivr: None,
        recordings: 0,
        queued: None,
        last_queue: None,
        priority: 0,
        recording: false,
        notice_due: false,
        notice_playing: false,
        after_notice: None,
        bridge_after_notice: None,
        transfer: None,
        transfer_returned: None,
        monitor: None,
        party: None,
        party_since: None,
        callback: None,
    };
}

/// What other calls read as their owner's side: nothing.
static NO_OWNER: OwnerCall = OwnerCall::EMPTY;

impl Call {
    /// The owner's side of this call (empty for any other call).
    pub(super) fn side(&self) -> &OwnerCall {
        match &self.purpose {
            Purpose::Inbound(o) => o,
            _ => &NO_OWNER,
        }
    }

    /// The owner's side to change, when this is an owner's call.
    pub(super) fn side_mut(&mut self) -> Option<&mut OwnerCall> {
        match &mut self.purpose {
            Purpose::Inbound(o) => Some(o),
            _ => None,
        }
    }
}

impl Switch {
    /// A To tag of ours: the seed's low bits and a number.
    pub(super) fn tag_for(&self, n: u64) -> String {
        local_tag(self.cfg.seed, n)
    }

    pub(super) fn new_call(&mut self, now: Instant, tx: TxId, peer: Peer, request: Request) {
        let core = &request.core;
        if let Some(bytes) = self.door_answer.take() {
            // Refused at the door while the switch was behind.
            self.shed("switch_late");
            self.tx.responded_once(now, tx, 503, bytes, core);
            return;
        }
        let dialled = crate::owners::phone::uri_user(&request.uri)
            .unwrap_or_default()
            .to_string();
        // A supervisor's phone joining an agent's call: *5/*6/*7 + agent.
        let monitoring = match monitor::parse_code(&dialled) {
            Some(code) if self.cfg.agents.is_some() => {
                match self.authorize_monitor(now, tx, peer, &request, code) {
                    Some(m) => Some(m),
                    None => return, // answered: 401, 403, 404 or 486
                }
            }
            _ => None,
        };
        let feature =
            if monitoring.is_none() && dialled.starts_with('*') && self.cfg.agents.is_some() {
                match self.authorize_feature(now, tx, peer, &request, &dialled) {
                    Some(prompt) => Some(prompt),
                    None => return, // answered: 401, 403 or 404
                }
            } else {
                None
            };
        // An agent's phone dialling another agent (or an allowed outside
        // number): a consult call.
        let consulted = (feature.is_none() && monitoring.is_none())
            .then(|| self.consult_target(&request, &dialled))
            .flatten();
        let consult = match consulted {
            Some(to) => match self.authorize_consult(now, tx, peer, &request, &to) {
                Some(from) => Some((from, to)),
                None => return, // answered: 401, 403, 404 or 482
            },
            None => None,
        };
        // Behind a trusted proxy, the trunk is the source it names.
        let source = request.origin.unwrap_or(peer.addr);
        let trusted = self.guard.is_trunk(source.ip());
        let staff = feature.is_some() || consult.is_some() || monitoring.is_some();
        if !trusted
            && !staff
            && self.cfg.edge.untrusted_calls == crate::edge::UntrustedCalls::Reject
        {
            info!(sip_call_id = %core.call_id, from = %source, "call from outside the trunks refused: 403");
            let tag = self.tag_for(0);
            self.respond_with(now, tx, core, 403, "Forbidden", Some(&tag), &[], b"");
            return;
        }
        if let Some(why) = self.over_capacity(now, peer.addr.ip()) {
            debug!(sip_call_id = %core.call_id, from = %peer.addr, why, "call refused: 503");
            self.shed(why);
            let bytes = self.refusal.to(core);
            self.tx.respond_once(now, tx, 503, bytes, core);
            return;
        }
        let offer = match sdp::negotiate(request.body()) {
            Ok(o) => o,
            Err(e) => {
                info!(sip_call_id = %core.call_id, error = %e, "call refused: 488");
                let tag = self.tag_for(0);
                self.respond_with(
                    now,
                    tx,
                    core,
                    488,
                    "Not Acceptable Here",
                    Some(&tag),
                    &[("Warning", &format!("304 hotline \"{e}\""))],
                    b"",
                );
                return;
            }
        };
        self.next_id += 1;
        let id = CallId(self.next_id);
        let local_tag = self.tag_for(id.0);
        let remote_target = request
            .header("Contact")
            .map(|c| message::addr_uri(c).to_string())
            .unwrap_or_else(|| message::addr_uri(&core.from).to_string());
        let route_set = request.record_routes();
        // The caller's number: the network's assertion when there is one,
        // and only from a trunk; anyone else is an unknown caller until
        // they prove who they are (the menu asks).
        let number = if trusted {
            request
                .header("P-Asserted-Identity")
                .and_then(crate::owners::phone::uri_user)
                .or_else(|| crate::owners::phone::uri_user(&core.from))
                .unwrap_or_default()
                .to_string()
        } else {
            String::new()
        };
        let called = crate::owners::phone::uri_user(&request.uri)
            .unwrap_or_default()
            .to_string();
        self.stats.calls_started += 1;
        info!(call = %id, sip_call_id = %core.call_id, from = %message::addr_uri(&core.from), %number, %called, "call started");
        self.emit_for(
            now,
            id,
            &core.call_id,
            CallEventKind::Started {
                from: message::addr_uri(&core.from).to_string(),
                to: message::addr_uri(&core.to).to_string(),
                number: number.clone(),
                outbound: false,
            },
        );
        let call = Call {
            sip_call_id: core.call_id.clone(),
            purpose: match (consult.clone(), monitoring) {
                (Some((from, to)), _) => Purpose::Consult { from, to },
                (None, Some(m)) => Purpose::Monitor(m),
                (None, None) => Purpose::Inbound(Box::new(OwnerCall::EMPTY)),
            },
            phase: Phase::Ringing,
            peer,
            invite_tx: tx,
            local: format!("{};tag={local_tag}", core.to),
            remote: core.from.clone(),
            invite: request.core,
            local_tag,
            remote_target,
            route_set,
            local_cseq: 0,
            bye_tx: None,
            offer: Some(offer),
            port: None,
            open_attempts: 0,
            media_ready: false,
            answer_due: false,
            answer_sdp: String::new(),
            on_hold: false,
            sdp_changes: 0,
            digits: String::new(),
            timer: None,
            generation: 0,
            started: now,
            called: called.clone(),
            number: number.clone(),
            identified: self.cfg.ivr.is_none() || staff,
            feature,
            out: None,
            bridge: None,
            talking_since: None,
            unconfirmed: true,
        };
        *self.unconfirmed.entry(peer.addr.ip()).or_default() += 1;
        self.unconfirmed_total += 1;
        if self.cfg.ivr.is_some() && !staff {
            self.out
                .push_back(Output::IdentifyCaller { call: id, number });
        }
        let monitors = match &call.purpose {
            Purpose::Monitor(m) => Some(m.caller),
            _ => None,
        };
        self.by_sip.insert(call.sip_call_id.clone(), id);
        self.by_tx.insert(tx, id);
        self.calls.insert(id, Box::new(call));
        if let Some(o) = monitors
            .and_then(|caller| self.calls.get_mut(&caller))
            .and_then(|c| c.side_mut())
        {
            o.monitor = Some(id);
        }
        if self.next_age_check.is_none() {
            self.next_age_check = Some(now + self.age_check_interval());
        }
        self.open_media(now, id);
        if !self.calls.contains_key(&id) {
            return; // no port: already refused
        }
        // No ringing time: answered as soon as the port is bound and the
        // owner looked up (the same turn, on the runtime), with no 180
        // before the 200. The answer timer stays armed: were the lookup
        // late, it answers as with ringing.
        let ring = consult.is_some() || !self.cfg.answer_after.is_zero();
        if ring {
            let c = &self.calls[&id];
            let (tag, invite) = (c.local_tag.clone(), c.invite.clone());
            let contact = self.cfg.contact_for(c.peer.transport);
            // The proxies that asked to stay in the dialog (Kamailio in
            // front) learn it from our answers (RFC 3261 §12.1.1).
            let mut headers = vec![("Contact", contact.as_str())];
            let routes = c.route_set.clone();
            headers.extend(routes.iter().map(|r| ("Record-Route", r.as_str())));
            self.respond_with(now, tx, &invite, 180, "Ringing", Some(&tag), &headers, b"");
        } else if let Some(c) = self.calls.get_mut(&id) {
            c.answer_due = true; // answered once the port is open and the owner known
        }
        match consult {
            // Answered when the consulted agent answers.
            Some((from, to)) => {
                self.emit(
                    now,
                    id,
                    CallEventKind::ConsultStarted {
                        from,
                        to: to.clone(),
                    },
                );
                if let TransferTarget::Number(number) = to {
                    self.consult_outside(now, id, &number);
                }
            }
            None => self.arm(now, id, Timer::Answer),
        }
    }

    /// A new call refused (503) for `why`: counted for the second's log
    /// line and for the metrics.
    fn shed(&mut self, why: &'static str) {
        match self.refused_this_second.iter_mut().find(|(w, _)| *w == why) {
            Some((_, n)) => *n += 1,
            None => self.refused_this_second.push((why, 1)),
        }
        self.out.push_back(Output::Shed { why });
    }

    /// Why a new call from `ip` cannot be taken now, if it cannot.
    pub(super) fn over_capacity(&self, now: Instant, ip: IpAddr) -> Option<&'static str> {
        let per_source = self.cfg.edge.admission.max_unconfirmed_per_source;
        self.at_capacity(now).or_else(|| {
            (self.unconfirmed.get(&ip).copied().unwrap_or(0) >= per_source)
                .then_some("max_unconfirmed_per_source")
        })
    }

    /// Why no new call can be taken now, whoever calls (the cap on one
    /// source's unconfirmed calls aside), if none can.
    pub(super) fn at_capacity(&self, now: Instant) -> Option<&'static str> {
        let a = &self.cfg.edge.admission;
        if self.queue_behind(now) {
            Some("switch_queue")
        } else if self.media_busy > self.media_budget {
            Some("media_busy")
        } else if self.calls.len() >= a.max_calls {
            Some("max_calls")
        } else if self.ports.in_use() >= self.ports.capacity() {
            Some("no_rtp_port")
        } else if self.unconfirmed_total >= a.max_unconfirmed {
            Some("max_unconfirmed")
        } else {
            self.behind()
        }
    }

    /// The caller's ACK came (or the call ended first): no longer counted
    /// against the admission caps.
    pub(super) fn confirmed(&mut self, id: CallId) {
        let Some(c) = self.calls.get_mut(&id) else {
            return;
        };
        if !std::mem::take(&mut c.unconfirmed) {
            return;
        }
        let ip = c.peer.addr.ip();
        self.unconfirmed_total -= 1;
        if let Some(n) = self.unconfirmed.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.unconfirmed.remove(&ip);
            }
        }
    }

    /// Takes a port and asks the edge to open it (again, after a failed bind).
    pub(super) fn open_media(&mut self, now: Instant, id: CallId) {
        let c = self.calls.get_mut(&id).expect("live call");
        if c.out.is_some() {
            // Our offer named this port: another one cannot be taken now.
            warn!(call = %id, "RTP port unavailable for an answered outbound call");
            self.send_bye(now, id);
            self.end(id, EndReason::MediaFailed);
            return;
        }
        if let Some(old) = c.port.take() {
            // The edge could not bind it (another program holds it). Released
            // to the back of the pool: it is retried only after every other port.
            warn!(port = old, "RTP port unavailable");
            self.ports.release_unusable(old);
        }
        c.open_attempts += 1;
        let port = if c.open_attempts <= 8 {
            self.ports.allocate(now)
        } else {
            None
        };
        let Some(port) = port else {
            warn!(call = %id, "no RTP port free: 503");
            self.reject_invite(now, id, 503, "Service Unavailable");
            self.end(id, EndReason::Rejected(503));
            return;
        };
        self.calls.get_mut(&id).expect("live call").port = Some(port);
        self.send_open(id);
    }

    /// Asks the edge to open the call's port toward the negotiated peer.
    pub(super) fn send_open(&mut self, id: CallId) {
        let c = &self.calls[&id];
        let (Some(port), Some(offer)) = (c.port, c.offer.as_ref()) else {
            return;
        };
        let params = StreamParams {
            remote: offer.remote,
            codec_pt: offer.codec_pt,
            law: offer.law,
            dtmf_pt: offer.dtmf_pt,
        };
        self.out.push_back(Output::Media(MediaCommand::Open {
            call: id,
            port,
            params,
        }));
    }

    pub(super) fn answer(&mut self, now: Instant, id: CallId) {
        let c = self.calls.get_mut(&id).expect("live call");
        if c.phase != Phase::Ringing || !self.tx.is_proceeding(c.invite_tx) {
            return;
        }
        let (Some(port), Some(offer)) = (c.port, c.offer.as_ref()) else {
            return;
        };
        let local = SocketAddr::new(self.cfg.media_ip, port);
        c.answer_sdp = sdp::answer(offer, local, self.cfg.seed ^ id.0);
        c.phase = Phase::Answered;
        let (tx, invite, tag, body) = (
            c.invite_tx,
            c.invite.clone(),
            c.local_tag.clone(),
            c.answer_sdp.clone(),
        );
        let contact = self.cfg.contact_for(c.peer.transport);
        let routes = c.route_set.clone();
        info!(call = %id, rtp_port = port, "call answered");
        let mut headers = vec![("Contact", contact.as_str())];
        headers.extend(routes.iter().map(|r| ("Record-Route", r.as_str())));
        headers.push(("Allow", ALLOW));
        headers.push(("Content-Type", "application/sdp"));
        self.respond_with(
            now,
            tx,
            &invite,
            200,
            "OK",
            Some(&tag),
            &headers,
            body.as_bytes(),
        );
    }

    pub(super) fn reject_invite(&mut self, now: Instant, id: CallId, code: u16, reason: &str) {
        let c = &self.calls[&id];
        let (tx, invite, tag) = (c.invite_tx, c.invite.clone(), c.local_tag.clone());
        self.respond_with(now, tx, &invite, code, reason, Some(&tag), &[], b"");
    }

    pub(super) fn handle_digit(&mut self, now: Instant, id: CallId, digit: char) {
        let Some(c) = self.calls.get_mut(&id) else {
            return;
        };
        if matches!(c.purpose, Purpose::Consult { .. }) {
            return self.consult_key(now, id, digit);
        }
        match c.phase {
            Phase::Answered | Phase::Welcome | Phase::Collecting => {}
            Phase::Asking | Phase::Surveying => {
                c.digits.push(digit);
                return self.handle_answer_digit(now, id, digit);
            }
            Phase::Ivr => {
                // The menu records its own steps (a PIN masked); the keys
                // themselves are not kept or logged here.
                debug!(call = %id, "key");
                if let Some(s) = c.side_mut().and_then(|o| o.ivr.as_mut()) {
                    s.handle_digit(now, digit);
                }
                return self.pump_ivr(now, id);
            }
            _ => return,
        }
        debug!(call = %id, digit = %digit, "digit");
        if c.phase != Phase::Collecting {
            // Barge-in: a key stops the welcome prompt.
            c.phase = Phase::Collecting;
            self.out
                .push_back(Output::Media(MediaCommand::Stop { call: id }));
        }
        let c = self.calls.get_mut(&id).expect("live call");
        if digit != '#' {
            c.digits.push(digit);
        }
        if digit == '#' || c.digits.len() >= self.cfg.max_digits {
            self.finish_collecting(now, id);
        } else {
            self.arm(now, id, Timer::DigitTimeout);
        }
    }

    pub(super) fn finish_collecting(&mut self, now: Instant, id: CallId) {
        let c = self.calls.get_mut(&id).expect("live call");
        c.timer = None;
        c.generation += 1;
        info!(call = %id, sip_call_id = %c.sip_call_id, digits = %c.digits, "digits collected");
        let detail = format!("digits {}", c.digits);
        c.phase = Phase::Goodbye;
        self.emit(
            now,
            id,
            CallEventKind::MenuStep {
                node: "collect".into(),
                detail,
            },
        );
        self.play(id, "goodbye");
    }

    /// The owner lookup for an incoming call came back.
    pub fn handle_owner(&mut self, now: Instant, call: CallId, owner: Option<ivr::OwnerInfo>) {
        self.last_now = Some(now);
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.identified {
            return;
        }
        c.identified = true;
        let answer = c.answer_due && c.media_ready;
        if let Some(o) = &owner {
            let kind = CallEventKind::CallerIdentified {
                owner: o.id.clone(),
                by: IdentifiedBy::Number,
            };
            if let Some(o) = c.side_mut() {
                o.owner = owner;
            }
            self.emit(now, call, kind);
        }
        if answer {
            self.answer(now, call);
        }
        self.pump(now);
    }

    /// The runtime's answer to a menu request.
    pub fn handle_ivr_reply(&mut self, now: Instant, call: CallId, reply: ivr::Reply) {
        self.last_now = Some(now);
        if let ivr::Reply::Owner(Some(o)) = &reply {
            // Only a unit-and-PIN lookup asks the menu's way.
            let kind = CallEventKind::CallerIdentified {
                owner: o.id.clone(),
                by: IdentifiedBy::Pin,
            };
            self.emit(now, call, kind);
        }
        if let Some(s) = self
            .calls
            .get_mut(&call)
            .and_then(|c| c.side_mut().and_then(|o| o.ivr.as_mut()))
        {
            s.handle_reply(now, reply);
            self.pump_ivr(now, call);
        }
        self.pump(now);
    }

    /// Turns what the menu asks for into media commands and outputs, and
    /// keeps the call's timer on the menu's deadline.
    pub(super) fn pump_ivr(&mut self, now: Instant, id: CallId) {
        loop {
            let Some(c) = self.calls.get_mut(&id) else {
                return;
            };
            let sip_call_id = c.sip_call_id.clone();
            let Some(o) = c.side_mut() else {
                break;
            };
            let Some(mut action) = o.ivr.as_mut().and_then(ivr::Session::poll_action) else {
                break;
            };
            // What a loop plays once first (the caller's place in line).
            let first = match &mut action {
                ivr::Action::Loop { first, .. } => Some(std::mem::take(first)),
                _ => None,
            };
            let out = match action {
                ivr::Action::Play(prompts)
                | ivr::Action::Loop {
                    looped: prompts, ..
                } => {
                    // (After the notice, a loop plays once: the menu loops
                    // it again when it ends.)
                    if o.notice_playing {
                        // After the notice (ringback, the hold prompt ...).
                        o.after_notice = Some([first.unwrap_or_default(), prompts].concat());
                        continue;
                    }
                    match &self.cfg.recording.notice {
                        Some(notice) if std::mem::take(&mut o.notice_due) => {
                            // The notice alone first, whole; then these.
                            let lang = o.ivr.as_ref().map(|s| s.language()).unwrap_or("zh");
                            o.notice_playing = true;
                            o.after_notice = Some([first.unwrap_or_default(), prompts].concat());
                            let prompts = vec![format!("{notice}_{lang}")];
                            info!(call = %id, prompts = %prompts.join(" "), "playing");
                            Output::Media(MediaCommand::Play { call: id, prompts })
                        }
                        _ if first.is_some() => {
                            let first = first.unwrap_or_default();
                            info!(call = %id, first = %first.join(" "), prompts = %prompts.join(" "), "looping");
                            Output::Media(MediaCommand::Loop {
                                call: id,
                                first,
                                prompts,
                            })
                        }
                        _ => {
                            info!(call = %id, prompts = %prompts.join(" "), "playing");
                            Output::Media(MediaCommand::Play { call: id, prompts })
                        }
                    }
                }
                ivr::Action::StopPlayback if o.notice_playing => {
                    o.after_notice = None;
                    continue;
                }
                ivr::Action::StopPlayback => Output::Media(MediaCommand::Stop { call: id }),
                ivr::Action::Record { max, silence } => {
                    o.recordings += 1;
                    // Named by the hotline alone (this process's seed, the
                    // call, the recording's number), never by anything the
                    // caller sent; the writer never replaces a file.
                    let name = format!(
                        "{:08x}-{}-{}",
                        self.cfg.seed & 0xffff_ffff,
                        id.0,
                        o.recordings
                    );
                    Output::Media(MediaCommand::Record {
                        call: id,
                        name,
                        max,
                        silence,
                    })
                }
                ivr::Action::StopRecording => {
                    Output::Media(MediaCommand::StopRecording { call: id })
                }
                ivr::Action::Request(request) => Output::IvrRequest {
                    call: id,
                    sip_call_id,
                    number: c.number.clone(),
                    request,
                },
                ivr::Action::Step { node, detail } => {
                    info!(call = %id, %node, %detail, "ivr step");
                    self.emit_for(
                        now,
                        id,
                        &sip_call_id,
                        CallEventKind::MenuStep { node, detail },
                    );
                    continue;
                }
                ivr::Action::Queue {
                    queue,
                    skills: _, // the queue's own skill routes (`[acd.queues]`)
                    priority,
                    language,
                    owner,
                    class,
                } => {
                    // The queue and priority the ACD will use (a VIP's own
                    // queue), so every listener names the same one.
                    let (queue, priority) = match self
                        .cfg
                        .queues
                        .as_deref()
                        .and_then(|plan| plan.place(&queue, class, priority))
                    {
                        Some(p) => (p.name.to_string(), p.priority),
                        None => (queue, priority),
                    };
                    o.queued = Some((now, queue.clone()));
                    // Told once, before the first agent answers.
                    if o.last_queue.is_none() {
                        let site = o.ivr.as_ref().map(|s| s.site_id());
                        o.notice_due = self.cfg.recording.records(site, Some(&queue));
                        o.last_queue = Some(queue.clone());
                        o.priority = priority;
                    }
                    let kind = CallEventKind::Queued {
                        queue,
                        priority,
                        language,
                        owner,
                        class,
                        ahead: false,
                    };
                    self.emit_for(now, id, &sip_call_id, kind);
                    continue;
                }
                ivr::Action::SurveyAnswered(score) => {
                    let kind = CallEventKind::SurveyAnswered {
                        ticket: None,
                        number: c.number.clone(),
                        score,
                    };
                    self.emit_for(now, id, &sip_call_id, kind);
                    continue;
                }
                ivr::Action::Hangup => {
                    self.send_bye(now, id);
                    continue;
                }
                ivr::Action::KeepPlace { number } => {
                    self.keep_place(now, id, &number);
                    continue;
                }
                ivr::Action::LeaveQueue => {
                    if std::mem::take(&mut o.notice_playing) {
                        // No conversation to record after all: the notice
                        // gives way to what the menu says next.
                        o.after_notice = None;
                        self.out
                            .push_back(Output::Media(MediaCommand::Stop { call: id }));
                    }
                    if let Some((since, queue)) = o.queued.take() {
                        let kind = CallEventKind::Abandoned {
                            queue,
                            waited: now.saturating_duration_since(since),
                            why: Abandon::VoiceMessage,
                        };
                        self.emit_for(now, id, &sip_call_id, kind);
                    }
                    continue;
                }
            };
            self.out.push_back(out);
        }
        let Some(c) = self.calls.get_mut(&id) else {
            return;
        };
        let due = c.side().ivr.as_ref().and_then(ivr::Session::poll_timeout);
        if c.phase == Phase::Ivr && due != c.timer.map(|(at, _)| at) {
            c.generation += 1;
            c.timer = due.map(|at| (at, Timer::Ivr));
            if let Some(at) = due {
                self.timers.push(Reverse((at, id, c.generation)));
            }
        }
    }
}

/// The To tag of the switch's `n`th dialog (0: its refusals), from its seed.
pub(super) fn local_tag(seed: u64, n: u64) -> String {
    format!("{:x}{:x}", seed & 0xffff_ffff, n)
}
