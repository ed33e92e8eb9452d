//! A supervisor listens in, whispers to the agent, or barges in: the
//! hotline rings the supervisor's registered phone (a `[[supervisor]]` of
//! the agents file) and, on answer, the conversation becomes a mixed room
//! of three: the caller and the agent hear each other as before; the
//! supervisor hears both and is heard by no one (listen), by the agent
//! only (whisper) or by both (barge). The mode changes while the call goes
//! on. When the supervisor hangs up the two legs are relayed again.
//!
//! From the supervisor's own phone: `*5` (listen), `*6` (whisper) or `*7`
//! (barge) followed by the agent's extension joins the call that agent is
//! on (digest-authenticated; only a `[[supervisor]]` phone may).

use std::time::Instant;

use tracing::info;

use super::event::{CallEventKind, MonitorMode};
use super::outbound::LegError;
use super::{AgentId, CallId, MediaCommand, Output, Phase, Purpose, Switch, Timer};
use crate::media::mixer::{Audience, Role};
use crate::sip::message::Request;
use crate::sip::transaction::{Peer, TxId};

/// Why monitoring cannot start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MonitorError {
    #[error("the call is not in a conversation with an agent")]
    NotOnCall,
    #[error("another supervisor is on this call")]
    Taken,
    #[error("the supervisor's phone is not registered")]
    NoPhone,
    #[error("no RTP port free")]
    NoPort,
}

/// A supervisor's leg: who, and how they are heard.
#[derive(Debug)]
pub(super) struct Monitor {
    pub caller: CallId,
    pub phone: AgentId,
    pub supervisor: String,
    pub mode: MonitorMode,
    /// In the mixed conversation (answered, media open).
    pub joined: bool,
}

/// `*5<agent>`, `*6<agent>`, `*7<agent>`: the mode and the agent.
pub(super) fn parse_code(dialled: &str) -> Option<(MonitorMode, AgentId)> {
    let rest = dialled.strip_prefix('*')?;
    let mode = match rest.get(..1)? {
        "5" => MonitorMode::Listen,
        "6" => MonitorMode::Whisper,
        "7" => MonitorMode::Barge,
        _ => return None,
    };
    Some((mode, rest[1..].parse().ok()?))
}

impl Switch {
    /// A supervisor's phone dialled a monitoring code: who they are, and
    /// which call they join (the one `agent` is on). None when the request
    /// was answered (401, 403 not a supervisor's phone, 404 the agent is on
    /// no call, 486 someone monitors it already).
    pub(super) fn authorize_monitor(
        &mut self,
        now: Instant,
        tx: TxId,
        peer: Peer,
        request: &Request,
        (mode, agent): (MonitorMode, AgentId),
    ) -> Option<Monitor> {
        let tag = self.tag_for(0);
        let phone = self.authenticate(now, tx, peer, request, Some(&tag))?;
        let core = request.core.clone();
        let supervisor = self.cfg.agents.as_ref().and_then(|f| {
            f.supervisors
                .iter()
                .find(|s| s.id == phone)
                .map(|s| s.name.clone())
        });
        let (Some(supervisor), Ok(phone)) = (supervisor, phone.parse::<AgentId>()) else {
            self.respond_with(now, tx, &core, 403, "Forbidden", Some(&tag), &[], b"");
            return None;
        };
        let Some(caller) = self.owner_call_of(agent) else {
            self.respond_with(now, tx, &core, 404, "Not Found", Some(&tag), &[], b"");
            return None;
        };
        if self.calls[&caller].side().monitor.is_some() {
            self.respond_with(now, tx, &core, 486, "Busy Here", Some(&tag), &[], b"");
            return None;
        }
        info!(%caller, %agent, %phone, %supervisor, mode = mode.as_str(), "supervisor dialled in");
        Some(Monitor {
            caller,
            phone,
            supervisor,
            mode,
            joined: false,
        })
    }

    /// Rings `phone` (the supervisor `by`'s) to join `caller`'s
    /// conversation in `mode`; when that supervisor is on it already, only
    /// the mode changes.
    pub fn monitor(
        &mut self,
        now: Instant,
        caller: CallId,
        phone: AgentId,
        mode: MonitorMode,
        by: &str,
    ) -> Result<(), MonitorError> {
        self.last_now = Some(now);
        self.agent_on_leg(caller).ok_or(MonitorError::NotOnCall)?;
        let c = &self.calls[&caller];
        if !matches!(c.purpose, Purpose::Inbound(_)) {
            // Owners' conversations only, not agents consulting each other.
            return Err(MonitorError::NotOnCall);
        }
        if let Some(leg) = c.side().monitor {
            let Some(Purpose::Monitor(m)) = self.calls.get_mut(&leg).map(|l| &mut l.purpose) else {
                return Err(MonitorError::Taken);
            };
            if m.phone != phone {
                return Err(MonitorError::Taken);
            }
            m.mode = mode;
            let supervisor = m.supervisor.clone();
            if self.calls[&leg].phase == Phase::Bridged {
                self.mix(caller, leg, Role::Supervisor, mode.audience());
            }
            info!(%caller, %supervisor, mode = mode.as_str(), "monitor mode changed");
            self.emit(
                now,
                caller,
                CallEventKind::MonitorChanged { supervisor, mode },
            );
            return Ok(());
        }
        let binding = self
            .bindings
            .get(&phone.to_string())
            .cloned()
            .ok_or(MonitorError::NoPhone)?;
        let purpose = Purpose::Monitor(Monitor {
            caller,
            phone,
            supervisor: by.to_string(),
            mode,
            joined: false,
        });
        let leg = (binding.contact.clone(), binding.peer);
        let id = self
            .dial_leg(now, caller, "sv", leg, purpose, phone.to_string(), None)
            .map_err(|e| match e {
                LegError::NoPort => MonitorError::NoPort,
                LegError::Undialable => MonitorError::NoPhone,
            })?;
        self.arm(now, id, Timer::RingTimeout);
        if let Some(o) = self.calls.get_mut(&caller).expect("checked").side_mut() {
            o.monitor = Some(id);
        }
        info!(%caller, leg = %id, %phone, supervisor = by, mode = mode.as_str(), "ringing supervisor");
        self.pump(now);
        Ok(())
    }

    /// The agent's leg of `caller`'s conversation, when they talk.
    fn agent_on_leg(&self, caller: CallId) -> Option<CallId> {
        let leg = self.bridged_to(caller)?;
        matches!(self.calls.get(&leg)?.purpose, Purpose::AgentLeg { .. }).then_some(leg)
    }

    fn mix(&mut self, room: CallId, call: CallId, role: Role, audience: Audience) {
        self.out.push_back(Output::Media(MediaCommand::Mix {
            room,
            call,
            role,
            audience,
        }));
    }

    /// The supervisor answered and their media is open: the three are
    /// mixed.
    pub(super) fn monitor_joined(&mut self, now: Instant, leg: CallId) {
        let Some(Purpose::Monitor(m)) = self.calls.get(&leg).map(|l| &l.purpose) else {
            return;
        };
        let (caller, mode, supervisor) = (m.caller, m.mode, m.supervisor.clone());
        let agent_leg = self
            .agent_on_leg(caller)
            .filter(|_| self.calls[&caller].side().monitor == Some(leg));
        let Some(agent_leg) = agent_leg else {
            // The conversation ended as the supervisor answered.
            return self.send_bye(now, leg);
        };
        self.set_phase(leg, Phase::Bridged);
        if let Some(Purpose::Monitor(m)) = self.calls.get_mut(&leg).map(|l| &mut l.purpose) {
            m.joined = true;
        }
        self.mix(caller, caller, Role::Caller, Audience::All);
        self.mix(caller, agent_leg, Role::Agent, Audience::All);
        self.mix(caller, leg, Role::Supervisor, mode.audience());
        info!(%caller, %leg, %supervisor, mode = mode.as_str(), "supervisor joined");
        self.emit(
            now,
            caller,
            CallEventKind::MonitorStarted { supervisor, mode },
        );
    }

    /// The supervisor's leg is over: the two talk on, relayed again.
    pub(super) fn monitor_left(&mut self, now: Instant, leg: CallId, m: &Monitor) {
        let caller = m.caller;
        if let Some(o) = self.calls.get_mut(&caller).and_then(|c| c.side_mut())
            && o.monitor == Some(leg)
        {
            o.monitor = None;
        }
        if !m.joined {
            return;
        }
        self.out
            .push_back(Output::Media(MediaCommand::Unmix { call: leg }));
        if let Some(agent_leg) = self.agent_on_leg(caller) {
            for call in [caller, agent_leg] {
                self.out
                    .push_back(Output::Media(MediaCommand::Unmix { call }));
            }
            self.out.push_back(Output::Media(MediaCommand::Bridge {
                a: caller,
                b: agent_leg,
            }));
        }
        info!(%caller, %leg, supervisor = %m.supervisor, "supervisor left");
        self.emit(
            now,
            caller,
            CallEventKind::MonitorEnded {
                supervisor: m.supervisor.clone(),
            },
        );
    }

    /// Ends the supervisor's leg of `caller`'s conversation, if any (the
    /// conversation is over or changes hands).
    pub(super) fn end_monitor(&mut self, now: Instant, caller: CallId) {
        let Some(leg) = self.calls.get(&caller).and_then(|c| c.side().monitor) else {
            return;
        };
        match self.calls.get(&leg).map(|l| l.phase) {
            Some(Phase::Dialing) => self.send_cancel(now, leg),
            Some(Phase::Cancelling | Phase::HangingUp) | None => {}
            Some(_) => self.send_bye(now, leg),
        }
    }
}
