//! Call events: a call's story told once, in the past tense, as it
//! happens. The switch emits them ([`super::Output::Event`]); the ticket
//! log, the agents' desk, the metrics, the ACD and the live figures each
//! listen. Everything the centre knows about a call (what the supervisor's
//! history shows, what the reports count) comes from these.
//!
//! An event belongs to the caller's call: what happens on the leg to an
//! agent (offered, missed, answered, the conversation over) is told as part
//! of the caller's call, with the agent named. Return-visit calls the
//! hotline places are calls of their own.

use std::time::{Duration, Instant};

use super::{CallId, EndReason};
use crate::ids::AgentId;
use crate::owners::OwnerClass;

#[derive(Debug, Clone, PartialEq)]
pub struct CallEvent {
    /// When it happened (the `now` of the input that caused it).
    pub at: Instant,
    pub call: CallId,
    /// The call's SIP Call-ID: its key in the log, across restarts.
    pub sip_call_id: String,
    pub kind: CallEventKind,
}

/// How the caller was recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentifiedBy {
    /// The calling number, asserted by a trusted trunk.
    Number,
    /// Building, unit and the owner's service PIN, keyed in.
    Pin,
}

impl IdentifiedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            IdentifiedBy::Number => "number",
            IdentifiedBy::Pin => "pin",
        }
    }
}

/// Why an agent's phone did not take an offered call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missed {
    /// The agent has no registered phone.
    NotRegistered,
    /// The phone refused (busy, declined, an error): its SIP status.
    Refused(u16),
    /// It rang until the ACD took the offer back (the agent's offer time,
    /// or the caller left, or the agent logged out).
    Withdrawn,
    /// No response from the phone at all.
    Unreachable,
}

impl Missed {
    /// Why a leg the hotline rang ended unanswered.
    pub fn from_end(reason: EndReason) -> Self {
        match reason {
            EndReason::Declined(code) | EndReason::Rejected(code) => Missed::Refused(code),
            EndReason::Cancelled | EndReason::NoAnswer => Missed::Withdrawn,
            _ => Missed::Unreachable,
        }
    }

    pub fn describe(self) -> String {
        match self {
            Missed::NotRegistered => "no registered phone".into(),
            Missed::Refused(code) => format!("phone refused ({code})"),
            Missed::Withdrawn => "not answered in time".into(),
            Missed::Unreachable => "phone unreachable".into(),
        }
    }
}

/// Where an agent transfers a caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferTarget {
    Agent(AgentId),
    Queue(String),
    /// An outside number (E.164), through the gateway.
    Number(String),
}

impl std::fmt::Display for TransferTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransferTarget::Agent(a) => write!(f, "agent {a}"),
            TransferTarget::Queue(q) => write!(f, "queue {q}"),
            TransferTarget::Number(n) => write!(f, "number {n}"),
        }
    }
}

/// How a supervisor joins a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MonitorMode {
    /// Hears both sides, heard by no one.
    Listen,
    /// Heard by the agent only.
    Whisper,
    /// Heard by both.
    Barge,
}

impl MonitorMode {
    pub fn as_str(self) -> &'static str {
        match self {
            MonitorMode::Listen => "listen",
            MonitorMode::Whisper => "whisper",
            MonitorMode::Barge => "barge",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "listen" => Some(MonitorMode::Listen),
            "whisper" => Some(MonitorMode::Whisper),
            "barge" => Some(MonitorMode::Barge),
            _ => None,
        }
    }

    /// Who hears the supervisor.
    pub fn audience(self) -> crate::media::mixer::Audience {
        use crate::media::mixer::Audience;
        match self {
            MonitorMode::Listen => Audience::Nobody,
            MonitorMode::Whisper => Audience::Agents,
            MonitorMode::Barge => Audience::All,
        }
    }
}

/// Why a caller left the queue without an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abandon {
    /// Hung up while waiting (or while an agent's phone rang).
    HungUp,
    /// Chose to leave a voice message instead of waiting.
    VoiceMessage,
    /// The hotline ended the call while it waited (shutdown, the longest
    /// call allowed, a media failure).
    CutOff,
}

impl Abandon {
    pub fn as_str(self) -> &'static str {
        match self {
            Abandon::HungUp => "hung_up",
            Abandon::VoiceMessage => "voice_message",
            Abandon::CutOff => "cut_off",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum CallEventKind {
    /// A call came in, or the hotline placed one (a return visit).
    Started {
        from: String,
        to: String,
        /// The caller's number as the hotline uses it: only a trusted
        /// trunk's caller ID, else empty (an unknown caller).
        number: String,
        /// Placed by the hotline (a return visit), not taken.
        outbound: bool,
    },
    CallerIdentified {
        owner: String,
        by: IdentifiedBy,
    },
    /// One step of the caller's way through the menu.
    MenuStep {
        node: String,
        detail: String,
    },
    /// Handed to the ACD: the queue it waits in (after the VIP choice), at
    /// this priority.
    Queued {
        queue: String,
        priority: u8,
        language: String,
        owner: Option<String>,
        class: Option<OwnerClass>,
        /// Back in line ahead of everyone of its priority (a transfer that
        /// found nobody, its first agent gone).
        ahead: bool,
    },
    /// An agent's phone rings with the call.
    Offered {
        agent: AgentId,
    },
    /// That phone did not take it.
    OfferMissed {
        agent: AgentId,
        why: Missed,
    },
    /// The agent answered: caller and agent are talking.
    Answered {
        agent: AgentId,
        owner: Option<String>,
        /// How long the caller waited in the queue.
        waited: Duration,
    },
    /// The agent asked to hand the caller on (REFER from the phone, or the
    /// desk); the caller hears hold music meanwhile.
    TransferRequested {
        from: AgentId,
        to: TransferTarget,
    },
    /// The agent handed the caller on: to another agent (who answered) or
    /// to a queue.
    Transferred {
        from: AgentId,
        to: TransferTarget,
    },
    /// The transfer did not happen: the target could not take the call.
    TransferFailed {
        from: AgentId,
        to: TransferTarget,
        why: Missed,
    },
    /// An agent's phone called another agent, or an outside number the
    /// transfer rules allow (a consult call, the caller usually on hold
    /// meanwhile).
    ConsultStarted {
        from: AgentId,
        to: TransferTarget,
    },
    /// The agent asked another agent to join the conversation (three-way).
    ConferenceRequested {
        from: AgentId,
        to: AgentId,
    },
    /// An agent joined the three-way conversation, or left it.
    ConferenceJoined {
        agent: AgentId,
    },
    ConferenceLeft {
        agent: AgentId,
    },
    /// A supervisor joined the conversation from their phone (`supervisor`
    /// is their user name), or changed how.
    MonitorStarted {
        supervisor: String,
        mode: MonitorMode,
    },
    MonitorChanged {
        supervisor: String,
        mode: MonitorMode,
    },
    /// The supervisor's phone left the conversation.
    MonitorEnded {
        supervisor: String,
    },
    /// One side put the conversation on hold, or took it off.
    Held {
        by_agent: bool,
        hold: bool,
    },
    /// Left the queue without an agent.
    Abandoned {
        queue: String,
        waited: Duration,
        why: Abandon,
    },
    /// Sent to the queue's fallback: waited the queue's longest, or
    /// (`no_agents`) nobody who could take the call is logged in.
    Overflowed {
        queue: String,
        waited: Duration,
        no_agents: bool,
    },
    /// The conversation with the agent is over.
    ConversationEnded {
        agent: AgentId,
        talked: Duration,
        /// The agent hung up first (else the caller did).
        by_agent: bool,
    },
    /// A return visit's answer (exactly one per return-visit call).
    ReturnVisit {
        ticket: crate::tickets::TicketId,
        attempt: u32,
        number: String,
        outcome: super::VisitOutcome,
    },
    /// A waiting caller asked to be called back on `number`, keeping
    /// their place (they hang up; `waited` so far).
    CallbackRequested {
        queue: String,
        priority: u8,
        language: String,
        number: String,
        owner: Option<String>,
        waited: Duration,
    },
    /// A callback is queued again in its place (first joined `since`).
    CallbackQueued {
        queue: String,
        language: String,
        priority: u8,
        since: std::time::Instant,
        attempt: u32,
    },
    /// Its place came up: the hotline calls the owner.
    CallbackPlaced {
        callback: String,
        attempt: u32,
        number: String,
        queue: String,
        owner: Option<String>,
    },
    /// The owner answered the callback (an agent is rung next): `spared`,
    /// the wait they did not spend on hold since they asked.
    CallbackAnswered {
        callback: String,
        spared: Duration,
    },
    /// The owner did not answer (`code`: 487 rang out, 486 busy ...).
    CallbackUnanswered {
        callback: String,
        attempt: u32,
        code: u16,
    },
    /// The owner of an emergency was called to hear that help is coming:
    /// reached (answered), or not (`code`).
    OwnerNotified {
        ticket: crate::tickets::TicketId,
        reached: bool,
        code: Option<u16>,
    },
    /// An on-call call's answer (exactly one per on-call call).
    OnCall {
        ticket: crate::tickets::TicketId,
        round: u32,
        step: u32,
        person: String,
        outcome: super::DutyOutcome,
    },
    /// The caller rated the service 1-5.
    SurveyAnswered {
        ticket: Option<crate::tickets::TicketId>,
        number: String,
        score: u8,
    },
    /// The conversation's recording is complete.
    Recorded {
        file: String,
        duration: Duration,
        pauses: u32,
    },
    /// Recording paused (a payment read out) or resumed, at someone's word.
    RecordingPaused {
        paused: bool,
        by: String,
    },
    Ended {
        reason: EndReason,
        /// The line test's keys (empty for menu calls: they are not kept).
        digits: String,
    },
}
