//! A callback that keeps the caller's place: a waiting caller presses 1,
//! confirms (or types) the number, and hangs up; their entry waits on in
//! the ACD with its arrival and priority. When it reaches an agent, the
//! hotline first calls the owner through the gateway (nobody hears
//! ringback meanwhile; the ACD holds the agent for the owner's ring too),
//! greets them, then rings the agent and bridges the two as for any
//! caller. An owner who does not answer frees the agent at once; the
//! ticket core (`tickets::callback`) queues the callback again, in its
//! place, after a while, and gives up after the last attempt.
//!
//! With `order = "agent_first"` the agent is rung first (offered every
//! codec we speak); once they answer they hear ringback while the owner
//! is called with the agent's codec, and the two are bridged when the
//! owner answers. An agent who does not answer is a missed offer as for
//! any caller (the ACD tries the next); an owner who does not answer ends
//! the agent's call and is a failed attempt as above.

use std::time::Instant;

use tracing::info;

use super::event::{CallEventKind, Missed};
use super::inbound::OwnerCall;
use super::outbound::LegError;
use super::{AgentId, CallId, EndReason, MediaCommand, Output, Phase, Purpose, Switch};
use crate::owners::phone::{DialPattern, NumberPlan};

/// Who may be called back, and through which gateway.
#[derive(Debug, Clone, PartialEq)]
pub struct CallbackPolicy {
    pub gateway: std::net::SocketAddr,
    /// The numbers allowed (E.164 patterns): nothing else is dialled.
    pub allowed: Vec<DialPattern>,
    /// How a number the caller types is read.
    pub plan: NumberPlan,
    /// Ring the agent first, then the owner.
    pub agent_first: bool,
}

/// A callback to queue (again): after its owner did not answer, or after
/// a restart (from the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueCallback {
    /// The callback's id: the SIP Call-ID of the call that asked for it.
    pub callback: String,
    pub queue: String,
    pub language: String,
    pub priority: u8,
    /// E.164, as the gateway dials it.
    pub number: String,
    pub owner: Option<String>,
    /// When the caller first joined the queue (Unix ms): their place.
    pub since_ms: i64,
    /// The attempt this queueing leads to (1 the first call).
    pub attempt: u32,
}

/// A callback waiting in the ACD without a call.
#[derive(Debug, Clone)]
pub(super) struct PendingCallback {
    callback: String,
    queue: String,
    language: String,
    priority: u8,
    number: String,
    owner: Option<String>,
    since: Instant,
    attempt: u32,
    /// When the caller asked (the wait spared is counted from here).
    asked: Instant,
    /// Agent first: the leg ringing the agent reserved for it.
    ringing: Option<CallId>,
}

/// The callback part of an owner's call the hotline placed.
#[derive(Debug, Clone)]
pub(super) struct CallbackLeg {
    callback: String,
    attempt: u32,
    /// The agent reserved for it (rung once the owner answers).
    agent: AgentId,
    /// The owner answered.
    answered: bool,
    language: String,
    pub owner: Option<String>,
    asked: Instant,
    /// Agent first: the agent's leg, answered, hearing ringback.
    agent_leg: Option<CallId>,
}

impl CallbackLeg {
    /// Not answered yet: the owner's phone rings.
    pub(super) fn dialing(&self) -> bool {
        !self.answered
    }
}

impl Switch {
    /// The caller asked to be called back on `number` (from the menu):
    /// checked against the allowed numbers; taken, the caller is thanked
    /// and hung up on, and their entry waits on without them.
    pub(super) fn keep_place(&mut self, now: Instant, id: CallId, number: &str) {
        let Some(policy) = self.cfg.callback.clone() else {
            return;
        };
        let e164 = crate::owners::phone::normalize(number, &policy.plan)
            .filter(|n| policy.allowed.iter().any(|p| p.matches(n)));
        let c = self.calls.get_mut(&id).expect("live call");
        if c.bridge.is_some() {
            return; // an agent's phone rings for them already
        }
        let sip_call_id = c.sip_call_id.clone();
        let Some(o) = c.side_mut() else {
            return;
        };
        let (Some(e164), Some((since, queue))) = (e164, o.queued.clone()) else {
            info!(call = %id, "callback: number not allowed (or not waiting)");
            if let Some(s) = o.ivr.as_mut() {
                s.callback_refused();
            }
            return self.pump_ivr(now, id);
        };
        // No longer a caller who may abandon: the place waits on.
        o.queued = None;
        let language = o
            .ivr
            .as_ref()
            .map(|s| s.language().to_string())
            .unwrap_or_else(|| self.cfg.language.clone());
        let owner = o.owner_id();
        let priority = o.priority;
        if let Some(s) = o.ivr.as_mut() {
            s.callback_kept();
        }
        info!(call = %id, %queue, number = %e164, "callback: the caller keeps their place");
        let waited = now.saturating_duration_since(since);
        self.emit_for(
            now,
            id,
            &sip_call_id,
            CallEventKind::CallbackRequested {
                queue: queue.clone(),
                priority,
                language: language.clone(),
                number: e164.clone(),
                owner: owner.clone(),
                waited,
            },
        );
        self.callbacks.insert(
            id,
            PendingCallback {
                callback: sip_call_id,
                queue,
                language,
                priority,
                number: e164,
                owner,
                since,
                attempt: 1,
                asked: now,
                ringing: None,
            },
        );
        self.pump_ivr(now, id);
        self.pump(now);
    }

    /// A callback to queue again in its place (the ticket core's word):
    /// a call id of its own, its first arrival.
    pub fn queue_callback(&mut self, now: Instant, req: QueueCallback) -> CallId {
        self.last_now = Some(now);
        self.next_id += 1;
        let id = CallId(self.next_id);
        let now_ms = self.cfg.clock.ms(now);
        let since = now
            .checked_sub(std::time::Duration::from_millis(
                (now_ms - req.since_ms).max(0) as u64,
            ))
            .unwrap_or(now);
        info!(call = %id, callback = %req.callback, queue = %req.queue, attempt = req.attempt, "callback: queued again in its place");
        self.emit_for(
            now,
            id,
            &req.callback,
            CallEventKind::CallbackQueued {
                queue: req.queue.clone(),
                language: req.language.clone(),
                priority: req.priority,
                since,
                attempt: req.attempt,
            },
        );
        self.callbacks.insert(
            id,
            PendingCallback {
                callback: req.callback,
                queue: req.queue,
                language: req.language,
                priority: req.priority,
                number: req.number,
                owner: req.owner,
                since,
                attempt: req.attempt,
                asked: now,
                ringing: None,
            },
        );
        id
    }

    /// The ACD reserved `agent` for a callback: call the owner first (or
    /// ring the agent first, as the policy says). False: `call` is no
    /// callback waiting here.
    pub(super) fn place_callback(&mut self, now: Instant, call: CallId, agent: AgentId) -> bool {
        let Some(policy) = self.cfg.callback.clone() else {
            return false;
        };
        let Some(p) = self.callbacks.get(&call) else {
            return false;
        };
        if policy.agent_first {
            if p.ringing.is_none() {
                self.ring_agent_first(now, call, agent);
            }
            return true;
        }
        let p = self.callbacks.remove(&call).expect("checked");
        self.call_owner(now, call, agent, p, None);
        true
    }

    /// Calls a callback's owner through the gateway for `agent` (whose
    /// answered leg `agent_leg` hears ringback meanwhile, agent first).
    fn call_owner(
        &mut self,
        now: Instant,
        call: CallId,
        agent: AgentId,
        p: PendingCallback,
        agent_leg: Option<CallId>,
    ) {
        let Some(policy) = self.cfg.callback.clone() else {
            return;
        };
        let sip_call_id = format!("{}-cb{}", p.callback, p.attempt);
        info!(%call, callback = %p.callback, attempt = p.attempt, %agent, "callback: calling the owner");
        let side = OwnerCall {
            queued: Some((p.since, p.queue.clone())),
            last_queue: Some(p.queue.clone()),
            priority: p.priority,
            callback: Some(CallbackLeg {
                callback: p.callback.clone(),
                attempt: p.attempt,
                agent,
                answered: false,
                language: p.language.clone(),
                owner: p.owner.clone(),
                asked: p.asked,
                agent_leg,
            }),
            ..OwnerCall::EMPTY
        };
        // The owner speaks the agent's codec: their RTP is relayed as is.
        let like = agent_leg.and_then(|leg| self.calls.get(&leg).and_then(|l| l.offer.clone()));
        let placed = self.place_outbound(
            now,
            call,
            &sip_call_id,
            &p.number,
            policy.gateway,
            Purpose::Inbound(Box::new(side)),
            like.as_ref(),
        );
        if placed.is_ok()
            && let Some(leg) = agent_leg
            && let Some(c) = self.calls.get_mut(&call)
        {
            // The agent's leg goes with the owner's call, as any caller's.
            c.bridge = Some(leg);
        }
        let kind = CallEventKind::CallbackPlaced {
            callback: p.callback.clone(),
            attempt: p.attempt,
            number: p.number.clone(),
            queue: p.queue.clone(),
            owner: p.owner.clone(),
        };
        self.emit_for(now, call, &p.callback, kind);
        if let Err(code) = placed {
            if let Some(leg) = agent_leg {
                self.send_bye(now, leg);
            }
            self.callback_unanswered(now, call, &p.callback, p.attempt, code);
        }
    }

    /// Agent first: rings `agent` for the callback `call` (the owner is
    /// called once they answer). A phone that cannot be rung is a missed
    /// offer, as for any caller.
    fn ring_agent_first(&mut self, now: Instant, call: CallId, agent: AgentId) {
        let callback = self.callbacks[&call].callback.clone();
        let missed = |switch: &mut Switch, why| {
            switch.emit_for(now, call, &callback, CallEventKind::Offered { agent });
            switch.emit_for(
                now,
                call,
                &callback,
                CallEventKind::OfferMissed { agent, why },
            );
            switch.pump(now);
        };
        let Some(binding) = self.bindings.get(&agent.to_string()).cloned() else {
            info!(%call, %agent, "callback not offered: the agent has no registered phone");
            return missed(self, Missed::NotRegistered);
        };
        let placed = self.dial_leg(
            now,
            call,
            "ag",
            (binding.contact.clone(), binding.peer),
            Purpose::AgentLeg {
                caller: call,
                agent,
            },
            agent.to_string(),
            Some(call),
        );
        let leg = match placed {
            Ok(leg) => leg,
            Err(LegError::NoPort) => return missed(self, Missed::Refused(503)),
            Err(LegError::Undialable) => return missed(self, Missed::Unreachable),
        };
        info!(%call, %leg, %agent, %callback, "callback: ringing the agent first");
        self.emit_for(now, call, &callback, CallEventKind::Offered { agent });
        if let Some(p) = self.callbacks.get_mut(&call) {
            p.ringing = Some(leg);
        }
        self.pump(now);
    }

    /// Agent first: the agent's leg `leg` answered (media open): they hear
    /// ringback while the owner is called. False: no such callback.
    pub(super) fn callback_agent_answered(
        &mut self,
        now: Instant,
        call: CallId,
        leg: CallId,
    ) -> bool {
        if self
            .callbacks
            .get(&call)
            .is_none_or(|p| p.ringing != Some(leg))
        {
            return false;
        }
        let Some(&Purpose::AgentLeg { agent, .. }) = self.calls.get(&leg).map(|l| &l.purpose)
        else {
            return false;
        };
        let p = self.callbacks.remove(&call).expect("checked");
        self.set_phase(leg, Phase::Bridged);
        let lang = self.cfg.language.clone();
        self.out.push_back(Output::Media(MediaCommand::Loop {
            call: leg,
            first: vec![],
            prompts: vec![format!("{}_{lang}", crate::ivr::RINGBACK)],
        }));
        self.call_owner(now, call, agent, p, Some(leg));
        true
    }

    /// Withdrawn by the ACD (its ring time is over): the agent's phone
    /// ringing for a callback, or the owner's, stops. False: not a
    /// callback.
    pub(super) fn withdraw_callback(&mut self, now: Instant, call: CallId) -> bool {
        if let Some(p) = self.callbacks.get_mut(&call) {
            // Agent first, the agent's phone rings: it stops (its end
            // says nothing more; the ACD counted the miss already).
            if let Some(leg) = p.ringing.take()
                && self
                    .calls
                    .get(&leg)
                    .is_some_and(|l| l.phase == Phase::Dialing)
            {
                self.send_cancel(now, leg);
            }
            self.pump(now);
            return true;
        }
        let dialing = self
            .calls
            .get(&call)
            .and_then(|c| c.side().callback.as_ref())
            .is_some_and(|l| l.dialing());
        if dialing {
            // The owner's phone rings: this attempt is over (an agent who
            // answered first hears their call end with it).
            self.send_cancel(now, call);
            self.pump(now);
        }
        dialing
    }

    /// An agent's leg for a callback ended: agent first, before the owner
    /// answered. True: handled here (a missed offer while it rang; the
    /// owner's call cancelled when the agent hung up while it rang).
    pub(super) fn callback_agent_left(
        &mut self,
        now: Instant,
        call: CallId,
        leg: CallId,
        agent: AgentId,
        why: Missed,
    ) -> bool {
        if let Some(p) = self.callbacks.get_mut(&call) {
            if p.ringing != Some(leg) {
                return false;
            }
            p.ringing = None;
            let callback = p.callback.clone();
            self.emit_for(
                now,
                call,
                &callback,
                CallEventKind::OfferMissed { agent, why },
            );
            return true;
        }
        let Some(c) = self.calls.get_mut(&call) else {
            return false;
        };
        if c.bridge != Some(leg) || !c.side().callback.as_ref().is_some_and(|l| l.dialing()) {
            return false;
        }
        c.bridge = None;
        info!(%call, %leg, %agent, "callback: the agent hung up while the owner's phone rang");
        self.send_cancel(now, call);
        true
    }

    /// The owner answered and RTP is open: greet them, then ring the agent.
    /// False: not a callback.
    pub(super) fn callback_answered(&mut self, now: Instant, call: CallId) -> bool {
        let Some(c) = self.calls.get_mut(&call) else {
            return false;
        };
        let Some(o) = c.side_mut() else {
            return false;
        };
        let Some(leg) = o.callback.as_mut().filter(|l| !l.answered) else {
            return false;
        };
        leg.answered = true;
        let (callback, agent, lang) = (leg.callback.clone(), leg.agent, leg.language.clone());
        let spared = now.saturating_duration_since(leg.asked);
        c.phase = Phase::Ivr;
        info!(%call, %callback, %agent, "callback: the owner answered");
        self.emit_for(
            now,
            call,
            &callback.clone(),
            CallEventKind::CallbackAnswered { callback, spared },
        );
        if let Some(leg) = self.calls[&call]
            .side()
            .callback
            .as_ref()
            .and_then(|l| l.agent_leg)
        {
            // Agent first: the agent is on the line already.
            self.out
                .push_back(Output::Media(MediaCommand::Stop { call: leg }));
            self.bridge(now, leg);
            return true;
        }
        // The greeting, then ringback for as long as agents are rung.
        self.out.push_back(Output::Media(MediaCommand::Loop {
            call,
            first: vec![format!("callback_hello_{lang}")],
            prompts: vec![format!("{}_{lang}", crate::ivr::RINGBACK)],
        }));
        self.offer_to_agent(now, call, agent);
        true
    }

    /// A callback's owner call ended before the owner answered (`code`):
    /// the ACD frees the agent, the ticket core tries again later.
    pub(super) fn callback_unanswered(
        &mut self,
        now: Instant,
        call: CallId,
        callback: &str,
        attempt: u32,
        code: u16,
    ) {
        info!(%call, %callback, attempt, code, "callback: the owner did not answer");
        self.emit_for(
            now,
            call,
            callback,
            CallEventKind::CallbackUnanswered {
                callback: callback.to_string(),
                attempt,
                code,
            },
        );
    }

    /// The owner's call ends: unanswered, it is an attempt that failed.
    pub(super) fn callback_ended(
        &mut self,
        now: Instant,
        id: CallId,
        side: &mut OwnerCall,
        reason: EndReason,
    ) {
        let Some(leg) = side.callback.take() else {
            return;
        };
        if leg.answered {
            return;
        }
        side.queued = None; // not an abandoned caller
        let code = match reason {
            EndReason::Declined(code) => code,
            EndReason::NoAnswer => 487,
            EndReason::Unreachable => 408,
            _ => 503,
        };
        self.callback_unanswered(now, id, &leg.callback, leg.attempt, code);
    }
}
