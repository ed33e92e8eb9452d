//! Ending calls: BYE and CANCEL, the longest call, and what a call's end
//! tells the other legs, the ACD and the record.

use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::event::{Abandon, CallEventKind, Missed};
use super::{
    CallId, EndReason, MediaCommand, Output, Phase, Purpose, Switch, VisitOutcome, transfer,
};
use crate::ivr;

impl Switch {
    /// How often calls are checked against `max_call`: often enough that
    /// none outlives it by more than a quarter of it (at most 10 s).
    pub(super) fn age_check_interval(&self) -> Duration {
        (self.cfg.max_call / 4).clamp(Duration::from_millis(100), Duration::from_secs(10))
    }

    /// Ends every established call older than `max_call` with a BYE.
    pub(super) fn end_old_calls(&mut self, now: Instant) {
        let max = self.cfg.max_call;
        let old: Vec<CallId> = self
            .calls
            .iter()
            .filter(|(_, c)| {
                now.saturating_duration_since(c.started) >= max && c.phase.is_established()
            })
            .map(|(id, _)| *id)
            .collect();
        for id in old {
            if self.calls.contains_key(&id) {
                warn!(call = %id, seconds = max.as_secs(), "call reached its longest time: hanging up");
                self.send_bye(now, id);
                self.end(id, EndReason::MaxDuration);
            }
        }
        self.next_age_check = (!self.calls.is_empty()).then(|| now + self.age_check_interval());
    }

    pub(super) fn send_bye(&mut self, now: Instant, id: CallId) {
        self.calls.get_mut(&id).expect("live call").phase = Phase::HangingUp;
        if let Some(tx) = self.send_in_dialog(now, id, "BYE", &[], None) {
            self.calls.get_mut(&id).expect("live call").bye_tx = Some(tx);
        }
    }

    pub(super) fn send_bye_now(&mut self, id: CallId) {
        if let Some(now) = self.last_now {
            self.send_bye(now, id);
        }
    }

    pub(super) fn send_cancel_now(&mut self, id: CallId) {
        if let Some(now) = self.last_now {
            self.send_cancel(now, id);
        }
    }

    /// Releases everything the call holds; every path out of a call ends here.
    /// The caller of a three-way call hung up: the two agents' legs are
    /// relayed to each other; each one's conversation ends with its leg.
    fn colleagues_talk_on(
        &mut self,
        caller: CallId,
        caller_sip: &str,
        (a, since_a): (CallId, Option<Instant>),
        (b, since_b): (CallId, Option<Instant>),
    ) {
        for (leg, other, since) in [(a, b, since_a), (b, a, since_b)] {
            let Some(l) = self.calls.get_mut(&leg) else {
                continue;
            };
            if let Purpose::AgentLeg { agent, .. } = l.purpose {
                l.purpose = Purpose::Colleague {
                    agent,
                    other,
                    caller,
                    caller_sip: caller_sip.to_string(),
                };
                l.talking_since = since;
            }
        }
        info!(%caller, %a, %b, "the caller left the three-way call: the agents talk on");
        for call in [caller, a, b] {
            self.out
                .push_back(Output::Media(MediaCommand::Unmix { call }));
        }
        self.out
            .push_back(Output::Media(MediaCommand::Bridge { a, b }));
    }

    pub(super) fn end(&mut self, id: CallId, reason: EndReason) {
        self.confirmed(id);
        let Some(mut c) = self.calls.remove(&id) else {
            return;
        };
        let now = self.last_now.unwrap_or(c.started);
        // A callback's owner who never answered: an attempt that failed
        // (not a caller who abandoned).
        if let Purpose::Inbound(side) = &mut c.purpose {
            self.callback_ended(now, id, side, reason);
        }
        // A supervisor on the call leaves with it.
        if let Some(leg) = c.side_mut().and_then(|o| o.monitor.take())
            && let Some(l) = self.calls.get(&leg)
        {
            let phase = l.phase;
            if let Purpose::Monitor(m) = &l.purpose
                && m.joined
            {
                let kind = CallEventKind::MonitorEnded {
                    supervisor: m.supervisor.clone(),
                };
                self.emit_for(now, id, &c.sip_call_id, kind);
            }
            match phase {
                Phase::Dialing => self.send_cancel_now(leg),
                Phase::Cancelling | Phase::HangingUp => {}
                _ => self.send_bye_now(leg),
            }
        }
        if let Purpose::Monitor(m) = &c.purpose {
            self.monitor_left(now, id, m);
        }
        // The caller left a three-way call: the two agents talk on.
        if reason == EndReason::CallerHungUp
            && let Some(party) = c.side().party
            && let Some(first) = c.bridge
            && [party, first].iter().all(|leg| {
                self.calls
                    .get(leg)
                    .is_some_and(|l| l.phase == Phase::Bridged)
            })
        {
            if c.side().recording {
                self.out
                    .push_back(Output::Media(MediaCommand::StopConversation { caller: id }));
            }
            let since = (c.talking_since.take(), c.side().party_since);
            self.colleagues_talk_on(id, &c.sip_call_id, (first, since.0), (party, since.1));
            c.bridge = None;
            if let Some(o) = c.side_mut() {
                o.party = None;
                o.recording = false;
            }
        }
        if let Purpose::Colleague {
            agent,
            other,
            caller,
            caller_sip,
        } = &c.purpose
        {
            let talked = c
                .talking_since
                .map(|since| now.saturating_duration_since(since))
                .unwrap_or_default();
            let kind = CallEventKind::ConversationEnded {
                agent: *agent,
                talked,
                by_agent: true,
            };
            self.emit_for(now, *caller, caller_sip, kind);
            if self
                .calls
                .get(other)
                .is_some_and(|l| !matches!(l.phase, Phase::HangingUp | Phase::Cancelling))
            {
                self.send_bye_now(*other);
            }
        }
        // A second agent of a three-way call goes with the caller too.
        if let Some(leg) = c.side_mut().and_then(|o| o.party.take())
            && let Some(phase) = self.calls.get(&leg).map(|l| l.phase)
        {
            if let Some(Purpose::AgentLeg { agent, .. }) = self.calls.get(&leg).map(|l| &l.purpose)
            {
                let talked = c
                    .side()
                    .party_since
                    .map(|since| now.saturating_duration_since(since))
                    .unwrap_or_default();
                let kind = CallEventKind::ConversationEnded {
                    agent: *agent,
                    talked,
                    by_agent: false,
                };
                self.emit_for(now, id, &c.sip_call_id, kind);
            }
            if !matches!(phase, Phase::HangingUp | Phase::Cancelling) {
                self.send_bye_now(leg);
            }
        }
        // The ringing target of a transfer goes with the caller too.
        if let Some(leg) = c
            .side_mut()
            .and_then(|o| o.transfer.take())
            .and_then(|t| t.leg)
            && let Some(phase) = self.calls.get(&leg).map(|l| l.phase)
        {
            match phase {
                Phase::Dialing => self.send_cancel_now(leg),
                Phase::Cancelling | Phase::HangingUp => {}
                _ => self.send_bye_now(leg),
            }
        }
        // An outside party the caller was transferred to goes with them.
        if let Some(leg) = c.bridge
            && let Some(l) = self.calls.get(&leg)
            && matches!(l.purpose, Purpose::Party { .. })
        {
            c.bridge = None;
            match l.phase {
                Phase::Dialing => self.send_cancel_now(leg),
                Phase::Cancelling | Phase::HangingUp => {}
                _ => self.send_bye_now(leg),
            }
        }
        if let Purpose::Party { caller } = c.purpose {
            let transferring = self
                .calls
                .get(&caller)
                .and_then(|cl| cl.side().transfer.as_ref())
                .is_some_and(|t| t.leg == Some(id));
            if transferring {
                let why = Missed::from_end(reason);
                self.transfer_failed(now, caller, why);
            } else if let Some(cl) = self.calls.get_mut(&caller)
                && cl.bridge == Some(id)
            {
                cl.bridge = None;
                if matches!(cl.purpose, Purpose::Consult { .. }) && cl.phase == Phase::Ringing {
                    // The number an agent consults did not answer.
                    self.refuse_consult(now, caller, Missed::from_end(reason));
                } else {
                    // The outside party hung up: the call is over.
                    self.send_bye_now(caller);
                }
            }
        }
        // A caller's leg to an agent goes with the caller.
        if let Some(leg) = c.bridge.take()
            && let Some(l) = self.calls.get(&leg)
            && let Purpose::AgentLeg { agent, .. } = l.purpose
        {
            let phase = l.phase;
            if let Some(since) = c.talking_since {
                // The caller hung up first.
                let kind = CallEventKind::ConversationEnded {
                    agent,
                    talked: now.saturating_duration_since(since),
                    by_agent: false,
                };
                self.emit_for(now, id, &c.sip_call_id, kind);
            }
            if c.side().recording {
                self.out
                    .push_back(Output::Media(MediaCommand::StopConversation { caller: id }));
            }
            match phase {
                Phase::Dialing => self.send_cancel_now(leg),
                Phase::Cancelling | Phase::HangingUp => {}
                _ => self.send_bye_now(leg),
            }
        }
        if let Some((since, queue)) = c.side_mut().and_then(|o| o.queued.take()) {
            let why = match reason {
                EndReason::CallerHungUp | EndReason::Cancelled | EndReason::RtpTimeout => {
                    Abandon::HungUp
                }
                _ => Abandon::CutOff,
            };
            let kind = CallEventKind::Abandoned {
                queue,
                waited: now.saturating_duration_since(since),
                why,
            };
            self.emit_for(now, id, &c.sip_call_id, kind);
        }
        if let Purpose::AgentLeg { caller, agent } = &c.purpose {
            let (caller, agent) = (*caller, *agent);
            let transfer = self
                .calls
                .get(&caller)
                .and_then(|cl| cl.side().transfer.as_ref())
                .map(|t| (t.from_leg, t.leg));
            let in_conference = self.calls.get(&caller).is_some_and(|cl| {
                cl.side().party.is_some() && (cl.side().party == Some(id) || cl.bridge == Some(id))
            });
            if self.callback_agent_left(now, caller, id, agent, Missed::from_end(reason)) {
                // Agent first: the callback's own business.
            } else if in_conference {
                self.conference_left(now, caller, id, agent);
            } else if transfer.is_some_and(|(_, target)| target == Some(id)) {
                // The transfer's target did not answer.
                let why = Missed::from_end(reason);
                self.emit(now, caller, CallEventKind::OfferMissed { agent, why });
                self.transfer_failed(now, caller, why);
            } else if transfer.is_some_and(|(from, _)| from == id)
                && self.calls[&caller].bridge == Some(id)
            {
                // The first agent hung up while the target rings.
                self.first_agent_left(now, caller, agent);
            } else if let Some(cl) = self.calls.get_mut(&caller)
                && cl.bridge == Some(id)
            {
                cl.bridge = None;
                let caller_sip = cl.sip_call_id.clone();
                let consult =
                    matches!(cl.purpose, Purpose::Consult { .. }) && cl.phase == Phase::Ringing;
                if consult {
                    // The consulted agent did not answer: nor do we.
                    let why = Missed::from_end(reason);
                    self.emit_for(
                        now,
                        caller,
                        &caller_sip,
                        CallEventKind::OfferMissed { agent, why },
                    );
                    self.refuse_consult(now, caller, why);
                } else if cl.talking_since.is_none() {
                    // Not answered: back to the hold prompt.
                    let why = Missed::from_end(reason);
                    if let Some(s) = cl.side_mut().and_then(|o| o.ivr.as_mut()) {
                        s.set_ringing(false);
                    }
                    self.emit_for(
                        now,
                        caller,
                        &caller_sip,
                        CallEventKind::OfferMissed { agent, why },
                    );
                    self.pump_ivr(now, caller);
                } else if cl
                    .side()
                    .transfer_returned
                    .is_some_and(|at| now.saturating_duration_since(at) < transfer::GRACE)
                {
                    // A phone that hangs up as its transfer fails (baresip
                    // does) gave up on the transfer, not on the caller: the
                    // caller goes to the head of the queue.
                    self.first_agent_left(now, caller, agent);
                    let queue = self.calls[&caller].side().last_queue.clone();
                    match queue {
                        Some(queue) => self.requeue(now, caller, queue, true),
                        None => self.send_bye_now(caller),
                    }
                } else {
                    self.end_monitor(now, caller);
                    let Some(cl) = self.calls.get_mut(&caller) else {
                        return;
                    };
                    // The agent hung up first: the caller, still on the
                    // line, gets the menu's 1-5 survey (or a BYE without one).
                    let talked = cl
                        .talking_since
                        .take()
                        .map(|since| now.saturating_duration_since(since))
                        .unwrap_or_default();
                    let side = cl.side_mut();
                    if side.as_ref().is_some_and(|o| o.recording) {
                        self.out
                            .push_back(Output::Media(MediaCommand::StopConversation { caller }));
                    }
                    // With a menu: back to it (for the survey, if it has one).
                    let survey = side.and_then(|o| {
                        o.recording = false;
                        o.ivr.as_mut().map(|s| s.continue_at(now, "survey"))
                    });
                    if survey.is_some() {
                        cl.phase = Phase::Ivr;
                    }
                    let surveyed = survey == Some(true);
                    self.emit_for(
                        now,
                        caller,
                        &caller_sip,
                        CallEventKind::ConversationEnded {
                            agent,
                            talked,
                            by_agent: true,
                        },
                    );
                    if surveyed {
                        self.pump_ivr(now, caller);
                    } else {
                        self.send_bye_now(caller);
                    }
                }
            }
        }
        if let Some(mut s) = c.side_mut().and_then(|o| o.ivr.take()) {
            s.handle_hangup();
            while let Some(a) = s.poll_action() {
                if let ivr::Action::Step { node, detail } = a {
                    self.emit_for(
                        now,
                        id,
                        &c.sip_call_id,
                        CallEventKind::MenuStep { node, detail },
                    );
                }
            }
        }
        self.by_sip.remove(&c.sip_call_id);
        self.by_tx.remove(&c.invite_tx);
        if let Some(bye) = c.bye_tx {
            self.by_tx.remove(&bye);
        }
        if let Some(port) = c.port {
            self.ports.release(port, now);
            self.out
                .push_back(Output::Media(MediaCommand::Close { call: id }));
        }
        self.duty_unreported(now, id, &c.sip_call_id, &c.purpose, reason, c.phase);
        if let Purpose::ReturnVisit(v) = &c.purpose
            && !v.reported
        {
            let outcome = VisitOutcome::from_end(reason, c.phase);
            let kind = CallEventKind::ReturnVisit {
                ticket: v.ticket,
                attempt: v.attempt,
                number: c.number.clone(),
                outcome,
            };
            self.emit_for(now, id, &c.sip_call_id, kind);
        }
        self.stats.calls_ended += 1;
        info!(
            call = %id,
            sip_call_id = %c.sip_call_id,
            reason = ?reason,
            digits = %c.digits,
            rtp_port = ?c.port,
            active_calls = self.calls.len(),
            ports_in_use = self.ports.in_use(),
            "call ended"
        );
        // An agent leg's story is told in its caller's (offered, missed,
        // answered, the conversation over).
        if !matches!(c.purpose, Purpose::AgentLeg { .. }) {
            let kind = CallEventKind::Ended {
                reason,
                digits: c.digits,
            };
            self.emit_for(now, id, &c.sip_call_id, kind);
        }
    }
}
