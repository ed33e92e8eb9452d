//! Consult calls and attended transfer. An agent, the caller on hold, dials
//! another agent's extension from the phone: an internal call (digest
//! authenticated like feature codes), never the owners' menu. The ACD
//! reserves the consulted agent as for any offer; the consult is answered
//! when they answer, and the two legs are relayed. Either side hanging up
//! ends it; the first agent takes the held caller back from the phone.
//!
//! Completing it (RFC 5589 §7): the first agent's phone sends REFER in the
//! caller's dialog with a Refer-To naming the consulted agent and
//! `Replaces` the consult call (RFC 3891), or the desk transfers the call
//! to the agent consulted: the caller is joined to the consulted agent's
//! leg, and both of the first agent's calls are hung up.
//!
//! Phones that cannot send Replaces (baresip 1.0) use keys during the
//! consult instead: `*4` hands the caller over, `*3` brings the consulted
//! agent into the caller's call (three-way).

use std::time::{Duration, Instant};

use tracing::info;

use super::event::{CallEventKind, Missed, TransferTarget};
use super::{AgentId, CallId, MediaCommand, Output, Phase, Purpose, Switch};
use crate::sip::message::Request;
use crate::sip::transaction::{Peer, TxId};

/// Keys pressed during a consult: hand the caller over to the agent
/// consulted, or bring them into the caller's call.
pub const HAND_OVER_KEYS: &str = "*4";
pub const CONFERENCE_KEYS: &str = "*3";

/// The Call-ID a Refer-To's `Replaces` names (`?Replaces=<call-id>%3B...`).
pub(super) fn replaces_call_id(refer_to: &str) -> Option<String> {
    let lower = refer_to.to_ascii_lowercase();
    let at = lower.find("replaces=")? + "replaces=".len();
    let value = &refer_to[at..];
    let end = value.find(['&', '>', ' ']).unwrap_or(value.len());
    let decoded = percent_decode(&value[..end])?;
    let call_id = decoded.split(';').next()?.trim();
    (!call_id.is_empty()).then(|| call_id.to_string())
}

/// `%XX` escapes of a URI header value; None when one is broken.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl Switch {
    /// Whether `dialled` is an agent's (or a supervisor's) extension.
    pub(super) fn is_extension(&self, dialled: &str) -> bool {
        self.cfg
            .agents
            .as_ref()
            .is_some_and(|f| f.get(dialled).is_some())
    }

    /// Whom a new call consults, if it is a consult: another agent's
    /// extension, or (from an agent's extension) an outside number the
    /// transfer rules allow. Owners' calls are neither.
    pub(super) fn consult_target(
        &self,
        request: &Request,
        dialled: &str,
    ) -> Option<TransferTarget> {
        if self.is_extension(dialled) {
            return dialled.parse().ok().map(TransferTarget::Agent);
        }
        let from = crate::owners::phone::uri_user(&request.core.from)?;
        if !self.is_extension(from) {
            return None;
        }
        match self.outside_number(dialled) {
            Ok(number @ TransferTarget::Number(_)) => Some(number),
            _ => None,
        }
    }

    /// A consult call must come from an agent's phone: authenticated as
    /// for feature codes (401 first, 403 when wrong). An outside number
    /// only while that agent is on an owner's call (the hotline is no
    /// free line out). The consulting agent, or None when the request was
    /// answered.
    pub(super) fn authorize_consult(
        &mut self,
        now: Instant,
        tx: TxId,
        peer: Peer,
        request: &Request,
        to: &TransferTarget,
    ) -> Option<AgentId> {
        let tag = self.tag_for(0);
        let from = self.authenticate(now, tx, peer, request, Some(&tag))?;
        let core = request.core.clone();
        let Ok(from) = from.parse::<AgentId>() else {
            self.respond_with(now, tx, &core, 404, "Not Found", Some(&tag), &[], b"");
            return None;
        };
        if *to == TransferTarget::Agent(from) {
            self.respond_with(now, tx, &core, 482, "Loop Detected", Some(&tag), &[], b"");
            return None;
        }
        if matches!(to, TransferTarget::Number(_)) && self.owner_call_of(from).is_none() {
            info!(%from, %to, "outside consult refused: the agent is on no owner's call");
            self.respond_with(now, tx, &core, 403, "Forbidden", Some(&tag), &[], b"");
            return None;
        }
        info!(%from, %to, sip_call_id = %core.call_id, "consult call");
        Some(from)
    }

    /// A consult of an outside number: the gateway is called; we answer
    /// the agent's phone when the number answers.
    pub(super) fn consult_outside(&mut self, now: Instant, consult: CallId, number: &str) {
        match self.dial_party(now, consult, number) {
            Some(leg) => {
                if let Some(c) = self.calls.get_mut(&consult) {
                    c.bridge = Some(leg);
                }
            }
            None => self.refuse_consult(now, consult, Missed::Unreachable),
        }
    }

    /// The outside number an agent consults answered: relayed with the
    /// agent's phone, answered now.
    pub(super) fn consult_outside_answered(&mut self, now: Instant, consult: CallId, leg: CallId) {
        self.answer(now, consult);
        let Some(c) = self.calls.get_mut(&consult) else {
            return self.send_bye(now, leg);
        };
        if c.phase != Phase::Answered || c.bridge != Some(leg) {
            // The agent gave up as the number answered.
            return self.send_bye(now, leg);
        }
        c.talking_since = Some(now);
        self.set_phase(leg, Phase::Bridged);
        info!(%consult, %leg, "consult connected");
        self.out
            .push_back(Output::Media(MediaCommand::Bridge { a: consult, b: leg }));
    }

    /// A consult call still waiting for the consulted agent's answer.
    pub(super) fn is_ringing_consult(&self, call: CallId) -> bool {
        self.calls.get(&call).is_some_and(|c| {
            matches!(c.purpose, Purpose::Consult { .. })
                && c.phase == Phase::Ringing
                && c.bridge.is_none()
        })
    }

    /// The consulted agent cannot take the call (busy, refused, away, no
    /// answer): nor do we; the consulting phone hears why.
    pub(super) fn refuse_consult(&mut self, now: Instant, consult: CallId, why: Missed) {
        let (code, reason) = match why {
            Missed::Refused(486) => (486, "Busy Here"),
            Missed::Refused(code @ 400..=699) => (code, "Not Answered"),
            _ => (480, "Temporarily Unavailable"),
        };
        self.reject_invite(now, consult, code, reason);
        self.end(consult, super::EndReason::Rejected(code));
    }

    /// A key the consulting agent pressed during the consult (RFC 4733 or
    /// INFO): `*4` and `*3` (see the module's doc); other keys are ignored.
    pub(super) fn consult_key(&mut self, now: Instant, consult: CallId, key: char) {
        let Some(c) = self.calls.get_mut(&consult) else {
            return;
        };
        let Purpose::Consult { from, ref to } = c.purpose else {
            return;
        };
        let target = match to {
            TransferTarget::Agent(agent) => agent.to_string(),
            TransferTarget::Number(number) => number.clone(),
            TransferTarget::Queue(_) => return,
        };
        if key == '*' {
            c.digits = "*".into();
            return;
        }
        c.digits.push(key);
        let keys = std::mem::take(&mut c.digits);
        if keys != HAND_OVER_KEYS && keys != CONFERENCE_KEYS {
            return;
        }
        let Some(caller) = self.owner_call_of(from) else {
            info!(%consult, %from, keys, "consult keys: the agent is on no owner's call");
            return;
        };
        let done = if keys == HAND_OVER_KEYS {
            self.transfer(now, caller, &target, Some(from))
        } else {
            self.conference(now, caller, &target, Some(from))
        };
        info!(%consult, %caller, %from, to = %target, keys, ?done, "consult keys");
    }

    /// The consulted agent answered: we answer the consulting agent's
    /// INVITE and relay the two.
    pub(super) fn consult_answered(&mut self, now: Instant, consult: CallId, leg: CallId) {
        let Some(Purpose::AgentLeg { agent, .. }) = self.calls.get(&leg).map(|l| &l.purpose) else {
            return;
        };
        let agent = *agent;
        self.answer(now, consult);
        let c = self.calls.get_mut(&consult).expect("live consult");
        if c.phase != Phase::Answered {
            // It was cancelled as the agent answered.
            return self.send_bye(now, leg);
        }
        c.talking_since = Some(now);
        self.set_phase(leg, Phase::Bridged);
        info!(%consult, %leg, %agent, "consult connected");
        self.hand_over(now, consult, leg, agent, None, Duration::ZERO);
    }

    /// The consult call `agent` has with another agent, answered: the
    /// consult call and the consulted agent's leg.
    pub(super) fn consult_of(
        &self,
        agent: AgentId,
        sip_call_id: Option<&str>,
    ) -> Option<(CallId, CallId, TransferTarget)> {
        let found = |id: CallId| {
            let c = self.calls.get(&id)?;
            let Purpose::Consult { from, to } = &c.purpose else {
                return None;
            };
            let leg = c.bridge?;
            (*from == agent && self.calls.get(&leg)?.phase == Phase::Bridged)
                .then(|| (id, leg, to.clone()))
        };
        match sip_call_id {
            Some(sip) => found(*self.by_sip.get(sip)?),
            None => self.calls.keys().copied().find_map(found),
        }
    }

    /// Attended transfer to the outside number the agent consulted: the
    /// caller and that party are relayed; the agent's two calls end.
    #[allow(clippy::too_many_arguments)]
    fn hand_to_party(
        &mut self,
        now: Instant,
        caller: CallId,
        first_leg: CallId,
        from: AgentId,
        consult: CallId,
        leg: CallId,
        refer: Option<u32>,
    ) {
        let Some(Purpose::Consult { to, .. }) = self.calls.get(&consult).map(|c| &c.purpose) else {
            return;
        };
        let to = to.clone();
        info!(%caller, %from, %to, %consult, "attended transfer");
        self.calls.get_mut(&leg).expect("checked").purpose = Purpose::Party { caller };
        self.first_agent_left(now, caller, from);
        let c = self.calls.get_mut(&caller).expect("live caller");
        c.bridge = Some(leg);
        c.phase = Phase::Bridged;
        self.emit(now, caller, CallEventKind::Transferred { from, to });
        self.out
            .push_back(Output::Media(MediaCommand::Bridge { a: caller, b: leg }));
        if let Some(k) = self.calls.get_mut(&consult) {
            k.talking_since = None;
        }
        self.send_bye(now, consult);
        if let Some(cseq) = refer {
            self.notify_refer(now, first_leg, cseq, 200, "OK", true);
        }
        self.send_bye(now, first_leg);
    }

    /// Attended transfer: `caller` (talking with the agent on `first_leg`)
    /// joins the agent that agent consulted; the first agent's two calls
    /// are hung up (`refer`: the REFER's CSeq, told how it went).
    pub(super) fn complete_attended(
        &mut self,
        now: Instant,
        caller: CallId,
        first_leg: CallId,
        consult: CallId,
        refer: Option<u32>,
    ) {
        let Some(Purpose::AgentLeg { agent: from, .. }) =
            self.calls.get(&first_leg).map(|l| &l.purpose)
        else {
            return;
        };
        let from = *from;
        let Some(leg) = self.calls.get_mut(&consult).and_then(|c| c.bridge.take()) else {
            return;
        };
        let to = match self.calls.get(&leg).map(|l| &l.purpose) {
            Some(Purpose::AgentLeg { agent, .. }) => *agent,
            Some(Purpose::Party { .. }) => {
                return self.hand_to_party(now, caller, first_leg, from, consult, leg, refer);
            }
            _ => return,
        };
        info!(%caller, %from, %to, %consult, "attended transfer");
        // The consulted agent's leg is the caller's now.
        self.calls.get_mut(&leg).expect("checked").purpose =
            Purpose::AgentLeg { caller, agent: to };
        self.first_agent_left(now, caller, from);
        let c = self.calls.get_mut(&caller).expect("live caller");
        c.bridge = Some(leg);
        c.talking_since = Some(now);
        self.emit(
            now,
            caller,
            CallEventKind::Transferred {
                from,
                to: TransferTarget::Agent(to),
            },
        );
        self.hand_over(now, caller, leg, to, None, Duration::ZERO);
        // The first agent's calls end: the consult quietly (its agent
        // talks on with the caller), the leg with the caller after the
        // phone heard how its REFER went.
        if let Some(c) = self.calls.get_mut(&consult) {
            c.talking_since = None;
        }
        self.send_bye(now, consult);
        if let Some(cseq) = refer {
            self.notify_refer(now, first_leg, cseq, 200, "OK", true);
        }
        self.send_bye(now, first_leg);
    }
}
