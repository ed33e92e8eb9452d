//! Blind transfer: an agent hands the caller on, to another agent or to a
//! queue. From the phone it is REFER (RFC 3515) in the agent's leg,
//! accepted with 202 and followed by NOTIFYs (`message/sipfrag`) in the
//! same dialog telling how it goes; from the desk it is the same without
//! the NOTIFYs. Only an agent's leg may transfer: a caller's REFER is
//! refused (no toll fraud through a transfer).
//!
//! While the target rings, the caller hears hold music. On the target's
//! answer the caller is bridged to them and the first agent is released
//! (the final NOTIFY, then our BYE: their wrap-up starts). A target that
//! does not answer brings the caller back to the first agent while they
//! are still on the line, else into the queue they waited in, ahead of
//! everyone of their priority. Whether the target agent is free is the
//! ACD's word (it reserves them as for any offer); a transfer to a queue
//! is done at once.

use std::time::{Duration, Instant};

use tracing::info;

use super::event::{CallEventKind, Missed, TransferTarget};
use super::{AgentId, CallId, MediaCommand, Output, Phase, Purpose, Switch};
use crate::sip::message::{CoreHeaders, Request};
use crate::sip::transaction::TxId;

/// An agent whose phone hangs up this soon after their transfer failed
/// gave up on the transfer, not on the caller (some phones end the call
/// when told it failed): the caller goes to the head of the queue.
pub(super) const GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// What the target's answer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// The caller goes to the target; the first agent is released.
    Blind,
    /// The target joins the caller and the first agent (three-way).
    Conference,
}

/// A caller's transfer (or conference call) under way.
#[derive(Debug)]
pub(super) struct Transfer {
    pub kind: Kind,
    /// The first agent and their leg.
    pub from: AgentId,
    pub from_leg: CallId,
    pub to: TransferTarget,
    /// The REFER's CSeq, when the phone asked: NOTIFYs go to its dialog.
    pub refer: Option<u32>,
    /// The target agent's leg, once it rings.
    pub leg: Option<CallId>,
}

/// Why a transfer cannot start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    #[error("no such call")]
    NoSuchCall,
    #[error("the call is not in a conversation with an agent")]
    NotOnCall,
    #[error("a transfer of this call is under way")]
    InProgress,
    #[error("no agent or queue answers to that number")]
    UnknownTarget,
    #[error("the agent is already on the call")]
    SameAgent,
    #[error("that number may not be called from here")]
    NotAllowed,
}

impl TransferError {
    /// The answer to a REFER that asked for it.
    fn sip(self) -> (u16, &'static str) {
        match self {
            TransferError::NoSuchCall => (481, "Call/Transaction Does Not Exist"),
            TransferError::NotOnCall => (403, "Forbidden"),
            TransferError::InProgress => (491, "Request Pending"),
            TransferError::UnknownTarget => (404, "Not Found"),
            TransferError::SameAgent => (482, "Loop Detected"),
            TransferError::NotAllowed => (403, "Forbidden"),
        }
    }
}

/// The sipfrag status told for a failed transfer.
fn failure_status(why: Missed) -> (u16, &'static str) {
    match why {
        Missed::Refused(486) => (486, "Busy Here"),
        Missed::Refused(603) => (603, "Decline"),
        Missed::Refused(_) | Missed::NotRegistered => (480, "Temporarily Unavailable"),
        Missed::Withdrawn => (408, "Request Timeout"),
        Missed::Unreachable => (503, "Service Unavailable"),
    }
}

impl Switch {
    /// Where a Refer-To (or the desk's word) points: a queue's transfer
    /// code or another agent's extension.
    fn transfer_target(&self, to: &str, from: AgentId) -> Result<TransferTarget, TransferError> {
        let user = crate::owners::phone::uri_user(to).unwrap_or(to).trim();
        if let Some(queue) = self.cfg.transfer_queues.get(user) {
            return Ok(TransferTarget::Queue(queue.clone()));
        }
        if !self.is_extension(user) {
            return self.outside_number(user);
        }
        let agent: AgentId = user.parse().map_err(|_| TransferError::UnknownTarget)?;
        let known = self
            .cfg
            .agents
            .as_ref()
            .is_some_and(|f| f.agents.iter().any(|a| a.id == user));
        match (known, agent == from) {
            (false, _) => Err(TransferError::UnknownTarget),
            (true, true) => Err(TransferError::SameAgent),
            (true, false) => Ok(TransferTarget::Agent(agent)),
        }
    }

    /// An outside number an agent asked for: the gateway's, when the rules
    /// allow it (no toll fraud through a transfer).
    pub(super) fn outside_number(&self, dialled: &str) -> Result<TransferTarget, TransferError> {
        let looks_like_a_number = !dialled.is_empty()
            && dialled.len() <= 20
            && dialled
                .bytes()
                .enumerate()
                .all(|(i, b)| b.is_ascii_digit() || (i == 0 && b == b'+'));
        // As long as an extension: one that does not exist (outside
        // numbers are longer).
        let extension_like = self.cfg.agents.as_ref().is_some_and(|f| {
            f.agents
                .iter()
                .chain(&f.supervisors)
                .any(|a| a.id.len() == dialled.len())
        });
        if !looks_like_a_number || extension_like {
            return Err(TransferError::UnknownTarget);
        }
        let out = self
            .cfg
            .transfer_out
            .as_ref()
            .ok_or(TransferError::NotAllowed)?;
        let number =
            crate::owners::phone::normalize(dialled, &out.plan).ok_or(TransferError::NotAllowed)?;
        if !out.allowed.iter().any(|p| p.matches(&number)) {
            return Err(TransferError::NotAllowed);
        }
        Ok(TransferTarget::Number(number))
    }

    /// Calls `number` through the gateway for `caller` (a transfer's
    /// target, or the party an agent consults); None when it cannot be
    /// placed.
    pub(super) fn dial_party(
        &mut self,
        now: Instant,
        caller: CallId,
        number: &str,
    ) -> Option<CallId> {
        let out = self.cfg.transfer_out.clone()?;
        let gateway = crate::sip::transaction::Peer {
            transport: crate::sip::transaction::Transport::Udp,
            addr: out.gateway,
        };
        let uri = format!("sip:{number}@{}", out.gateway);
        let purpose = Purpose::Party { caller };
        let placed = self.dial_leg(
            now,
            caller,
            "tr",
            (uri, gateway),
            purpose,
            number.into(),
            Some(caller),
        );
        let id = placed.ok()?;
        self.arm(now, id, super::Timer::RingTimeout);
        info!(%caller, leg = %id, %number, "calling outside");
        Some(id)
    }

    /// The agent on `caller`'s call and their leg, when the two talk and
    /// no transfer is under way.
    fn transferable(&self, caller: CallId) -> Result<(CallId, AgentId), TransferError> {
        let c = self.calls.get(&caller).ok_or(TransferError::NoSuchCall)?;
        if !matches!(c.purpose, Purpose::Inbound(_)) {
            // Only an owner's call is handed on (not a consult between
            // two agents, which either may simply hang up).
            return Err(TransferError::NotAllowed);
        }
        if c.side().transfer.is_some() || c.side().party.is_some() {
            return Err(TransferError::InProgress);
        }
        let leg = self.bridged_to(caller).ok_or(TransferError::NotOnCall)?;
        match self.calls[&leg].purpose {
            Purpose::AgentLeg { agent, .. } => Ok((leg, agent)),
            _ => Err(TransferError::NotOnCall),
        }
    }

    /// REFER in a dialog of ours: only an agent's leg in a conversation
    /// may transfer its caller.
    pub(super) fn handle_refer(&mut self, now: Instant, tx: TxId, leg: CallId, request: &Request) {
        let core = &request.core;
        let caller = match self.calls.get(&leg).map(|c| &c.purpose) {
            Some(Purpose::AgentLeg { caller, .. }) => *caller,
            _ => return self.respond(now, tx, core, 403, "Forbidden"),
        };
        let Some(refer_to) = request.header("Refer-To") else {
            return self.respond(now, tx, core, 400, "Missing Refer-To");
        };
        if refer_to.to_ascii_lowercase().contains("replaces") {
            // Attended: the caller joins the agent this agent consulted.
            let consult = super::consult::replaces_call_id(refer_to).and_then(|sip| {
                let (on, agent) = self.transferable(caller).ok()?;
                (on == leg).then(|| self.consult_of(agent, Some(&sip)))?
            });
            let Some((consult, _, _)) = consult else {
                return self.respond(now, tx, core, 404, "Not Found");
            };
            self.refer_accepted(now, tx, leg, core);
            return self.complete_attended(now, caller, leg, consult, Some(core.cseq));
        }
        let target = self.transferable(caller).and_then(|(on, agent)| {
            if on != leg {
                return Err(TransferError::NotOnCall);
            }
            self.transfer_target(refer_to, agent)
        });
        let target = match target {
            Ok(t) => t,
            Err(e) => {
                info!(%caller, %leg, error = %e, "transfer refused");
                let (code, reason) = e.sip();
                return self.respond(now, tx, core, code, reason);
            }
        };
        self.refer_accepted(now, tx, leg, core);
        self.start_transfer(now, caller, target, Some(core.cseq), Kind::Blind);
    }

    /// 202 to the REFER, and the first NOTIFY: trying.
    fn refer_accepted(&mut self, now: Instant, tx: TxId, leg: CallId, core: &CoreHeaders) {
        let contact = self.cfg.contact_for(self.calls[&leg].peer.transport);
        self.respond_with(
            now,
            tx,
            core,
            202,
            "Accepted",
            None,
            &[("Contact", &contact)],
            b"",
        );
        self.notify_refer(now, leg, core.cseq, 100, "Trying", false);
    }

    /// The desk's transfer of `caller`'s call to `to` (an agent's
    /// extension or a queue's code).
    pub fn transfer(
        &mut self,
        now: Instant,
        caller: CallId,
        to: &str,
        by: Option<AgentId>,
    ) -> Result<(), TransferError> {
        self.last_now = Some(now);
        self.check_asker(caller, by)?;
        let (leg, agent) = self.transferable(caller)?;
        let target = self.transfer_target(to, agent)?;
        // To the agent (or number) this agent is consulting: attended.
        if let Some((consult, _, consulted)) = self.consult_of(agent, None)
            && consulted == target
        {
            self.complete_attended(now, caller, leg, consult, None);
            self.pump(now);
            return Ok(());
        }
        self.start_transfer(now, caller, target, None, Kind::Blind);
        self.pump(now);
        Ok(())
    }

    /// The desk's three-way call: another agent (`to`, their extension)
    /// is rung to join `caller` and the agent on the call; the two go on
    /// talking meanwhile.
    pub fn conference(
        &mut self,
        now: Instant,
        caller: CallId,
        to: &str,
        by: Option<AgentId>,
    ) -> Result<(), TransferError> {
        self.last_now = Some(now);
        self.check_asker(caller, by)?;
        if self
            .calls
            .get(&caller)
            .is_some_and(|c| c.side().party.is_some())
        {
            return Err(TransferError::InProgress);
        }
        let (_, agent) = self.transferable(caller)?;
        let target = match self.transfer_target(to, agent)? {
            TransferTarget::Agent(a) => TransferTarget::Agent(a),
            TransferTarget::Queue(_) | TransferTarget::Number(_) => {
                return Err(TransferError::UnknownTarget);
            }
        };
        // The agent consulting them already: that call joins this one.
        if let Some((consult, _, consulted)) = self.consult_of(agent, None)
            && consulted == target
        {
            self.merge_consult(now, caller, consult);
            self.pump(now);
            return Ok(());
        }
        self.start_transfer(now, caller, target, None, Kind::Conference);
        self.pump(now);
        Ok(())
    }

    /// An agent (`by`) hands on only the call they are on; a supervisor
    /// (none) any.
    fn check_asker(&self, caller: CallId, by: Option<AgentId>) -> Result<(), TransferError> {
        if !self.calls.contains_key(&caller) {
            return Err(TransferError::NoSuchCall);
        }
        match by {
            Some(agent) if self.agent_on(caller) != Some(agent) => Err(TransferError::NotOnCall),
            _ => Ok(()),
        }
    }

    /// The owner's call `agent` is on (not a consult), if any.
    pub(super) fn owner_call_of(&self, agent: AgentId) -> Option<CallId> {
        self.calls
            .iter()
            .filter(|(_, c)| matches!(c.purpose, Purpose::Inbound(_)))
            .map(|(id, _)| *id)
            .find(|id| self.agent_on(*id) == Some(agent))
    }

    /// Which agent is on `caller`'s call now.
    pub fn agent_on(&self, caller: CallId) -> Option<AgentId> {
        let leg = self.bridged_to(caller)?;
        match self.calls.get(&leg)?.purpose {
            Purpose::AgentLeg { agent, .. } => Some(agent),
            _ => None,
        }
    }

    fn start_transfer(
        &mut self,
        now: Instant,
        caller: CallId,
        to: TransferTarget,
        refer: Option<u32>,
        kind: Kind,
    ) {
        let Ok((leg, from)) = self.transferable(caller) else {
            return;
        };
        if kind == Kind::Conference {
            let TransferTarget::Agent(agent) = to else {
                return;
            };
            info!(%caller, %from, %agent, "conference asked");
            if let Some(o) = self.calls.get_mut(&caller).expect("checked").side_mut() {
                o.transfer = Some(Transfer {
                    kind,
                    from,
                    from_leg: leg,
                    to,
                    refer: None,
                    leg: None,
                });
            }
            // The ACD rings them as for a transfer.
            let kind = CallEventKind::ConferenceRequested { from, to: agent };
            return self.emit(now, caller, kind);
        }
        info!(%caller, %from, %to, "transfer asked");
        // A supervisor on the conversation leaves it to its new hands.
        self.end_monitor(now, caller);
        // Neither side hears the other; the caller hears hold music.
        for from in [caller, leg] {
            self.out
                .push_back(Output::Media(MediaCommand::Relay { from, on: false }));
        }
        self.out
            .push_back(Output::Media(MediaCommand::Stop { call: caller }));
        self.play_hold(caller);
        if let Some(o) = self.calls.get_mut(&caller).expect("checked").side_mut() {
            o.transfer = Some(Transfer {
                kind,
                from,
                from_leg: leg,
                to: to.clone(),
                refer,
                leg: None,
            });
        }
        self.emit(
            now,
            caller,
            CallEventKind::TransferRequested {
                from,
                to: to.clone(),
            },
        );
        if let TransferTarget::Number(number) = &to {
            let Some(leg) = self.dial_party(now, caller, number) else {
                return self.transfer_failed(now, caller, Missed::Unreachable);
            };
            if let Some(t) = self
                .calls
                .get_mut(&caller)
                .and_then(|c| c.side_mut().and_then(|o| o.transfer.as_mut()))
            {
                t.leg = Some(leg);
            }
        }
        // An agent target: the ACD rings them (`offer_to_agent`) or says
        // they cannot (`transfer_refused`).
        if let TransferTarget::Queue(queue) = to {
            self.release_first_agent(now, caller);
            let c = self.calls.get_mut(&caller).expect("checked");
            let t = c
                .side_mut()
                .and_then(|o| o.transfer.take())
                .expect("set above");
            self.emit(
                now,
                caller,
                CallEventKind::Transferred {
                    from: t.from,
                    to: t.to,
                },
            );
            self.requeue(now, caller, queue, false);
        }
    }

    /// The ACD cannot give the call to the target agent (busy, away).
    pub fn transfer_refused(&mut self, now: Instant, caller: CallId, agent: AgentId) {
        self.last_now = Some(now);
        if self.is_ringing_consult(caller)
            && matches!(&self.calls[&caller].purpose, Purpose::Consult { to: TransferTarget::Agent(to), .. } if *to == agent)
        {
            // The consulted agent is busy or away.
            info!(%caller, %agent, "consult: the agent cannot take it");
            let why = Missed::Refused(486);
            self.emit(now, caller, CallEventKind::OfferMissed { agent, why });
            self.refuse_consult(now, caller, why);
            return self.pump(now);
        }
        let waiting = self
            .calls
            .get(&caller)
            .and_then(|c| c.side().transfer.as_ref())
            .is_some_and(|t| t.leg.is_none() && t.to == TransferTarget::Agent(agent));
        if waiting {
            self.transfer_failed(now, caller, Missed::Refused(486));
        }
        self.pump(now);
    }

    /// The target did not take the call: back to the first agent if they
    /// are still on the line, else to the head of the queue.
    pub(super) fn transfer_failed(&mut self, now: Instant, caller: CallId, why: Missed) {
        let Some(t) = self
            .calls
            .get_mut(&caller)
            .and_then(|c| c.side_mut().and_then(|o| o.transfer.take()))
        else {
            return;
        };
        if t.kind == Kind::Conference {
            // The two talk on as they were.
            info!(%caller, to = %t.to, ?why, "conference call not answered");
            return;
        }
        info!(%caller, from = %t.from, to = %t.to, ?why, "transfer failed");
        self.emit(
            now,
            caller,
            CallEventKind::TransferFailed {
                from: t.from,
                to: t.to.clone(),
                why,
            },
        );
        let first_here = self.calls[&caller].bridge == Some(t.from_leg)
            && self
                .calls
                .get(&t.from_leg)
                .is_some_and(|l| l.phase == Phase::Bridged);
        if let Some(cseq) = t.refer
            && first_here
        {
            let (code, reason) = failure_status(why);
            self.notify_refer(now, t.from_leg, cseq, code, reason, true);
        }
        if first_here {
            if let Some(o) = self.calls.get_mut(&caller).and_then(|c| c.side_mut()) {
                o.transfer_returned = Some(now);
            }
            // Talking again, unless a side holds.
            let (caller_holds, agent_holds) =
                (self.calls[&caller].on_hold, self.calls[&t.from_leg].on_hold);
            if !agent_holds {
                self.out
                    .push_back(Output::Media(MediaCommand::Stop { call: caller }));
            }
            for (from, holds) in [(caller, caller_holds), (t.from_leg, agent_holds)] {
                self.out
                    .push_back(Output::Media(MediaCommand::Relay { from, on: !holds }));
            }
            return;
        }
        let queue = self.calls[&caller].side().last_queue.clone();
        match queue {
            Some(queue) => self.requeue(now, caller, queue, true),
            None => self.send_bye(now, caller),
        }
    }

    /// The target agent answered: the caller talks with them now.
    pub(super) fn complete_transfer(&mut self, now: Instant, caller: CallId, leg: CallId) {
        if matches!(
            self.calls.get(&caller).map(|c| &c.purpose),
            Some(Purpose::Consult { .. })
        ) {
            // Not a transfer: the outside number an agent consults.
            return self.consult_outside_answered(now, caller, leg);
        }
        if matches!(
            self.calls.get(&leg).map(|l| &l.purpose),
            Some(Purpose::Party { .. })
        ) {
            return self.complete_outside(now, caller, leg);
        }
        let Some(Purpose::AgentLeg { agent, .. }) = self.calls.get(&leg).map(|l| &l.purpose) else {
            return;
        };
        let agent = *agent;
        if self
            .calls
            .get(&caller)
            .and_then(|c| c.side().transfer.as_ref())
            .is_some_and(|t| t.kind == Kind::Conference)
        {
            return self.conference_joined(now, caller, leg, agent);
        }
        self.release_first_agent(now, caller);
        let c = self.calls.get_mut(&caller).expect("live caller");
        let Some(t) = c.side_mut().and_then(|o| o.transfer.take()) else {
            return;
        };
        c.bridge = Some(leg);
        c.phase = Phase::Bridged;
        c.talking_since = Some(now);
        let owner = c.side().owner_id();
        self.set_phase(leg, Phase::Bridged);
        info!(%caller, %leg, from = %t.from, %agent, "call transferred");
        self.emit(
            now,
            caller,
            CallEventKind::Transferred {
                from: t.from,
                to: t.to,
            },
        );
        self.hand_over(now, caller, leg, agent, owner, Duration::ZERO);
    }

    /// `agent` (on `leg`) has the caller now: told as an answer after
    /// `waited` (zero when the wait was before, e.g. a transfer), and the
    /// two legs relayed (a recording goes on with
    /// them, the new agent on its right).
    pub(super) fn hand_over(
        &mut self,
        now: Instant,
        caller: CallId,
        leg: CallId,
        agent: AgentId,
        owner: Option<String>,
        waited: std::time::Duration,
    ) {
        self.emit(
            now,
            caller,
            CallEventKind::Answered {
                agent,
                owner,
                waited,
            },
        );
        self.out
            .push_back(Output::Media(MediaCommand::Bridge { a: caller, b: leg }));
    }

    /// The outside party answered: the caller talks with them, the first
    /// agent is released.
    fn complete_outside(&mut self, now: Instant, caller: CallId, leg: CallId) {
        let here = self
            .calls
            .get(&caller)
            .and_then(|c| c.side().transfer.as_ref())
            .is_some_and(|t| t.leg == Some(leg));
        if !here {
            return self.send_bye(now, leg);
        }
        self.release_first_agent(now, caller);
        let c = self.calls.get_mut(&caller).expect("checked");
        let t = c
            .side_mut()
            .and_then(|o| o.transfer.take())
            .expect("checked");
        c.bridge = Some(leg);
        c.phase = Phase::Bridged;
        self.set_phase(leg, Phase::Bridged);
        info!(%caller, %leg, from = %t.from, to = %t.to, "call transferred");
        self.emit(
            now,
            caller,
            CallEventKind::Transferred {
                from: t.from,
                to: t.to,
            },
        );
        self.out
            .push_back(Output::Media(MediaCommand::Bridge { a: caller, b: leg }));
    }

    /// The first agent's part is over: their conversation ends, the
    /// phone that asked hears the transfer went through, and their leg
    /// is hung up (their wrap-up starts).
    fn release_first_agent(&mut self, now: Instant, caller: CallId) {
        let c = self.calls.get_mut(&caller).expect("live caller");
        let Some(t) = c.side().transfer.as_ref() else {
            return;
        };
        let (from, from_leg, refer) = (t.from, t.from_leg, t.refer);
        if c.bridge != Some(from_leg) {
            return; // they hung up already (their conversation was told then)
        }
        self.first_agent_left(now, caller, from);
        if self
            .calls
            .get(&from_leg)
            .is_some_and(|l| l.phase == Phase::Bridged)
        {
            if let Some(cseq) = refer {
                self.notify_refer(now, from_leg, cseq, 200, "OK", true);
            }
            self.send_bye(now, from_leg);
        }
    }

    /// The first agent's conversation with the caller is over (they hung
    /// up while the transfer rings, or were released); the caller stays.
    pub(super) fn first_agent_left(&mut self, now: Instant, caller: CallId, agent: AgentId) {
        let c = self.calls.get_mut(&caller).expect("live caller");
        c.bridge = None;
        if let Some(o) = c.side_mut() {
            o.transfer_returned = None;
        }
        let talked = c
            .talking_since
            .take()
            .map(|since| now.saturating_duration_since(since))
            .unwrap_or_default();
        self.emit(
            now,
            caller,
            CallEventKind::ConversationEnded {
                agent,
                talked,
                by_agent: true,
            },
        );
    }

    /// Back in `queue` to wait for an agent (after a transfer to it, or
    /// `ahead` of everyone of the same priority after a failed one).
    pub(super) fn requeue(&mut self, now: Instant, caller: CallId, queue: String, ahead: bool) {
        let c = self.calls.get_mut(&caller).expect("live caller");
        let Some(o) = c.side_mut() else {
            return self.send_bye(now, caller);
        };
        let priority = o.priority;
        let Some(s) = o.ivr.as_mut() else {
            // Without a menu there is no queue to wait in.
            return self.send_bye(now, caller);
        };
        s.requeue(now);
        let kind = CallEventKind::Queued {
            queue: queue.clone(),
            priority,
            language: s.language().to_string(),
            owner: s.owner().map(|o| o.id.clone()),
            class: s.owner().map(|o| o.class),
            ahead,
        };
        o.queued = Some((now, queue.clone()));
        o.last_queue = Some(queue);
        c.phase = Phase::Ivr;
        self.emit(now, caller, kind);
        self.pump_ivr(now, caller);
    }

    /// Tells the phone that sent REFER (`cseq`) how its transfer goes.
    pub(super) fn notify_refer(
        &mut self,
        now: Instant,
        leg: CallId,
        cseq: u32,
        code: u16,
        reason: &str,
        done: bool,
    ) {
        let event = format!("refer;id={cseq}");
        let state = match done {
            true => "terminated;reason=noresource",
            false => "active;expires=60",
        };
        let contact = self.cfg.contact_for(self.calls[&leg].peer.transport);
        let body = format!("SIP/2.0 {code} {reason}\r\n");
        self.send_in_dialog(
            now,
            leg,
            "NOTIFY",
            &[
                ("Event", &event),
                ("Subscription-State", state),
                ("Contact", &contact),
            ],
            Some(("message/sipfrag;version=2.0", body.as_bytes())),
        );
    }

    /// The agent rung for a three-way call answered: the three are mixed.
    fn conference_joined(&mut self, now: Instant, caller: CallId, leg: CallId, agent: AgentId) {
        let c = self.calls.get_mut(&caller).expect("live caller");
        if let Some(o) = c.side_mut() {
            o.transfer = None;
        }
        let Some(first) = c.bridge.filter(|_| c.phase == Phase::Bridged) else {
            // The first agent left as this one answered: a plain
            // conversation with the new agent.
            c.bridge = Some(leg);
            c.talking_since = Some(now);
            self.set_phase(leg, Phase::Bridged);
            return self.hand_over(now, caller, leg, agent, None, Duration::ZERO);
        };
        self.set_phase(leg, Phase::Bridged);
        info!(%caller, %leg, %agent, "conference joined");
        self.join_three_way(now, caller, first, leg, agent);
    }

    /// `agent`'s `leg` joins `caller` and the first agent (on `first`):
    /// the three are mixed, the new agent's conversation begins.
    fn join_three_way(
        &mut self,
        now: Instant,
        caller: CallId,
        first: CallId,
        leg: CallId,
        agent: AgentId,
    ) {
        use crate::media::mixer::{Audience, Role};
        if let Some(o) = self.calls.get_mut(&caller).and_then(|c| c.side_mut()) {
            o.party = Some(leg);
            o.party_since = Some(now);
        }
        for (call, role) in [
            (caller, Role::Caller),
            (first, Role::Agent),
            (leg, Role::Agent),
        ] {
            self.out.push_back(Output::Media(MediaCommand::Mix {
                room: caller,
                call,
                role,
                audience: Audience::All,
            }));
        }
        let kind = CallEventKind::Answered {
            agent,
            owner: None,
            waited: Duration::ZERO,
        };
        self.emit(now, caller, kind);
        self.emit(now, caller, CallEventKind::ConferenceJoined { agent });
    }

    /// One agent of a three-way call hung up: the other two talk on,
    /// relayed again. `leg` was the first agent's or the joined one's.
    pub(super) fn conference_left(
        &mut self,
        now: Instant,
        caller: CallId,
        leg: CallId,
        agent: AgentId,
    ) {
        let c = self.calls.get_mut(&caller).expect("live caller");
        let Some(party) = c.side_mut().and_then(|o| o.party.take()) else {
            return;
        };
        // Who stays with the caller: the other agent.
        let stays = if party == leg { c.bridge } else { Some(party) };
        let since = if party == leg {
            c.side_mut().and_then(|o| o.party_since.take())
        } else {
            c.talking_since
        };
        let talked = since
            .map(|since| now.saturating_duration_since(since))
            .unwrap_or_default();
        if party != leg {
            // The first agent left: the joined one is the caller's agent now.
            c.bridge = Some(party);
            c.talking_since = c.side_mut().and_then(|o| o.party_since.take());
        }
        info!(%caller, %leg, %agent, "conference left");
        self.emit(now, caller, CallEventKind::ConferenceLeft { agent });
        self.emit(
            now,
            caller,
            CallEventKind::ConversationEnded {
                agent,
                talked,
                by_agent: true,
            },
        );
        for call in [caller, leg].into_iter().chain(stays) {
            self.out
                .push_back(Output::Media(MediaCommand::Unmix { call }));
        }
        if let Some(stays) = stays {
            self.out.push_back(Output::Media(MediaCommand::Bridge {
                a: caller,
                b: stays,
            }));
        }
    }

    /// The agent consulting a colleague brings them into the caller's
    /// call: the colleague's leg joins the mixed room and the agent's
    /// consult call is hung up.
    fn merge_consult(&mut self, now: Instant, caller: CallId, consult: CallId) {
        let Some(leg) = self.calls.get_mut(&consult).and_then(|c| c.bridge.take()) else {
            return;
        };
        let Some(Purpose::AgentLeg { agent: to, .. }) = self.calls.get(&leg).map(|l| &l.purpose)
        else {
            return;
        };
        let to = *to;
        let Some(first) = self.bridged_to(caller) else {
            return;
        };
        self.calls.get_mut(&leg).expect("checked").purpose =
            Purpose::AgentLeg { caller, agent: to };
        if let Some(k) = self.calls.get_mut(&consult) {
            k.talking_since = None;
        }
        self.send_bye(now, consult);
        info!(%caller, %leg, agent = %to, "consulted agent joined the call");
        self.join_three_way(now, caller, first, leg, to);
    }
}
