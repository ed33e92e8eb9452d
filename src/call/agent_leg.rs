//! The leg to an agent: the hotline rings an agent's registered phone for
//! a waiting caller (the ACD's offer), the caller hears ringback, and on
//! answer the two legs are bridged (and the conversation recorded when the
//! site or queue says so). The ACD's other words to a waiting caller (its
//! place in line, giving up) come through here too.

use std::time::Instant;

use tracing::info;

use super::event::{CallEventKind, Missed, TransferTarget};
use super::outbound::LegError;
use super::{AgentId, CallId, MediaCommand, Output, Phase, Purpose, Switch};

impl Switch {
    /// Rings `agent`'s registered phone for `caller`, offering the caller's
    /// own codec and telephone-event so RTP is relayed as it comes. The
    /// call's story says which: offered, or missed at once (no registered
    /// phone, no port); a caller who is gone or already has a leg is left
    /// alone (the ACD hears of the caller's end anyway).
    pub fn offer_to_agent(&mut self, now: Instant, caller: CallId, agent: AgentId) {
        self.last_now = Some(now);
        let Some(c) = self.calls.get(&caller) else {
            // A callback's place came up: its owner is called first.
            self.place_callback(now, caller, agent);
            return;
        };
        if c.offer.is_none() {
            return;
        }
        // A transfer's target rings while the first agent may still be on
        // the line; any other offer is for a caller without an agent.
        let transfer = match &c.side().transfer {
            Some(t) if t.leg.is_none() && t.to == TransferTarget::Agent(agent) => true,
            Some(_) => return,
            None => false,
        };
        if (c.bridge.is_some() && !transfer) || matches!(c.phase, Phase::HangingUp) {
            return;
        }
        let missed = |why| CallEventKind::OfferMissed { agent, why };
        let failed = |switch: &mut Switch, why| {
            switch.emit(now, caller, CallEventKind::Offered { agent });
            switch.emit(now, caller, missed(why));
            if transfer {
                switch.transfer_failed(now, caller, why);
            } else if switch.is_ringing_consult(caller) {
                switch.refuse_consult(now, caller, why);
            }
            switch.pump(now);
        };
        let Some(binding) = self.bindings.get(&agent.to_string()).cloned() else {
            info!(%caller, %agent, "not offered: the agent has no registered phone");
            return failed(self, Missed::NotRegistered);
        };
        let placed = self.dial_leg(
            now,
            caller,
            "ag",
            (binding.contact.clone(), binding.peer),
            Purpose::AgentLeg { caller, agent },
            agent.to_string(),
            Some(caller),
        );
        let id = match placed {
            Ok(id) => id,
            Err(LegError::NoPort) => {
                tracing::warn!(%caller, %agent, "no RTP port free for an agent leg");
                return failed(self, Missed::Refused(503));
            }
            Err(LegError::Undialable) => return failed(self, Missed::Unreachable),
        };
        self.emit(now, caller, CallEventKind::Offered { agent });
        info!(%caller, leg = %id, %agent, contact = %binding.contact, transfer, "ringing agent");
        let c = self.calls.get_mut(&caller).expect("checked");
        match c.side_mut().and_then(|o| o.transfer.as_mut()) {
            // The caller keeps hearing hold music.
            Some(t) => t.leg = Some(id),
            None => {
                c.bridge = Some(id);
                self.set_ringing(now, caller, true);
            }
        }
        self.pump(now);
    }

    /// The waiting caller hears ringback while an agent's phone rings,
    /// the hold prompt again when it stops without an answer.
    pub(super) fn set_ringing(&mut self, now: Instant, caller: CallId, ringing: bool) {
        if let Some(s) = self
            .calls
            .get_mut(&caller)
            .and_then(|c| c.side_mut().and_then(|o| o.ivr.as_mut()))
        {
            s.set_ringing(ringing);
            self.pump_ivr(now, caller);
        }
    }

    /// Stops ringing the agent for `caller` (the ACD withdrew the offer).
    pub fn withdraw_agent(&mut self, now: Instant, caller: CallId) {
        self.last_now = Some(now);
        if self.withdraw_callback(now, caller) {
            return;
        }
        let Some(c) = self.calls.get_mut(&caller) else {
            return;
        };
        let leg = match c.side().transfer.as_ref() {
            // The transfer's target rang out: its leg's end says so.
            Some(t) => t.leg,
            None => c.bridge.take(),
        };
        let Some(leg) = leg else {
            return;
        };
        let consult = matches!(c.purpose, Purpose::Consult { .. }) && c.phase == Phase::Ringing;
        if c.side().transfer.is_none() {
            self.set_ringing(now, caller, false);
        }
        if self
            .calls
            .get(&leg)
            .is_some_and(|l| l.phase == Phase::Dialing)
        {
            self.send_cancel(now, leg);
        }
        if consult {
            // Nobody else is offered a consult: it ends unanswered.
            self.refuse_consult(now, caller, Missed::Withdrawn);
        }
        self.pump(now);
    }

    /// The ACD's periodic word to a waiting caller.
    pub fn announce(
        &mut self,
        now: Instant,
        caller: CallId,
        position: usize,
        minutes: Option<u64>,
        offer_callback: bool,
    ) {
        self.last_now = Some(now);
        let offer_callback = offer_callback && self.cfg.callback.is_some();
        if let Some(s) = self
            .calls
            .get_mut(&caller)
            .and_then(|c| c.side_mut().and_then(|o| o.ivr.as_mut()))
        {
            s.announce(now, position, minutes, offer_callback);
            self.pump_ivr(now, caller);
        }
        self.pump(now);
    }

    /// The ACD gave up on `caller` (no agent in time): the menu apologises
    /// and says goodbye.
    pub fn queue_left(&mut self, now: Instant, caller: CallId, no_agents: bool) {
        self.last_now = Some(now);
        if let Some((since, queue)) = self
            .calls
            .get_mut(&caller)
            .and_then(|c| c.side_mut().and_then(|o| o.queued.take()))
        {
            let waited = now.saturating_duration_since(since);
            let kind = CallEventKind::Overflowed {
                queue,
                waited,
                no_agents,
            };
            self.emit(now, caller, kind);
        }
        if let Some(o) = self.calls.get_mut(&caller).and_then(|c| c.side_mut())
            && std::mem::take(&mut o.notice_playing)
        {
            // No agent will take the call: the notice gives way to why.
            o.after_notice = None;
            o.bridge_after_notice = None;
            self.out
                .push_back(Output::Media(MediaCommand::Stop { call: caller }));
        }
        if let Some(s) = self
            .calls
            .get_mut(&caller)
            .and_then(|c| c.side_mut().and_then(|o| o.ivr.as_mut()))
        {
            s.handle_queue_left(now, no_agents);
            self.pump_ivr(now, caller);
        }
        self.pump(now);
    }

    /// An agent leg's media is open: bridge it with the caller.
    pub(super) fn bridge(&mut self, now: Instant, leg: CallId) {
        let Some(Purpose::AgentLeg { caller, agent }) = self.calls.get(&leg).map(|l| &l.purpose)
        else {
            return;
        };
        let (caller, agent) = (*caller, *agent);
        if self
            .calls
            .get(&caller)
            .and_then(|c| c.side().transfer.as_ref())
            .is_some_and(|t| t.leg == Some(leg))
        {
            return self.complete_transfer(now, caller, leg);
        }
        if self
            .calls
            .get(&caller)
            .is_some_and(|c| matches!(c.purpose, Purpose::Consult { .. }) && c.bridge == Some(leg))
        {
            return self.consult_answered(now, caller, leg);
        }
        if self.callback_agent_answered(now, caller, leg) {
            return;
        }
        let caller_here = self
            .calls
            .get(&caller)
            .is_some_and(|c| c.bridge == Some(leg) && c.phase != Phase::HangingUp);
        if !caller_here {
            // The caller left (or the offer was withdrawn) as the agent answered.
            self.send_bye(now, leg);
            return;
        }
        if let Some(c) = self.calls.get_mut(&caller)
            && c.side().notice_playing
        {
            // The caller first hears the recording notice out (seconds).
            info!(%caller, %leg, %agent, "agent answered: joined after the recording notice");
            if let Some(o) = c.side_mut() {
                o.bridge_after_notice = Some(leg);
            }
            return;
        }
        let c = self.calls.get_mut(&caller).expect("checked");
        c.phase = Phase::Bridged;
        c.timer = None;
        c.generation += 1;
        // The menu waits (nothing reaches it while bridged): the survey
        // comes from it when the agent hangs up first.
        let owner = c.side().owner_id();
        let waited = c
            .side_mut()
            .and_then(|o| o.queued.take())
            .map(|(since, _)| now.saturating_duration_since(since))
            .unwrap_or_default();
        c.talking_since = Some(now);
        self.set_phase(leg, Phase::Bridged);
        info!(%caller, %leg, %agent, "caller connected to agent");
        self.hand_over(now, caller, leg, agent, owner, waited);
        let c = self.calls.get_mut(&caller).expect("checked");
        let site = c.side().ivr.as_ref().map(|s| s.site_id().to_string());
        let queue = c.side().last_queue.clone();
        // Recorded unless the site or queue says not; a caller back from a
        // transfer to a queue is being recorded already (the new agent's
        // side joins with the bridge).
        if !c.side().recording
            && self
                .cfg
                .recording
                .records(site.as_deref(), queue.as_deref())
        {
            if let Some(o) = c.side_mut() {
                o.recording = true;
            }
            let name = format!("{:08x}-{}-conv", self.cfg.seed & 0xffff_ffff, caller.0);
            let sip_call_id = c.sip_call_id.clone();
            self.out
                .push_back(Output::Media(MediaCommand::RecordConversation {
                    caller,
                    agent: leg,
                    sip_call_id,
                    name,
                }));
        }
    }
}
