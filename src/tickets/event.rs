//! Ticket events: what happened to a call or a work order, written once, in
//! order, never edited. Timestamps are data (Unix milliseconds), passed in
//! by whoever saw the event happen.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EventId(pub u64);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TicketId(pub u64);

impl std::fmt::Display for TicketId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "T{}", self.0)
    }
}

/// Who caused the event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Actor {
    System,
    Caller(String),
    Agent(String),
    Supervisor(String),
    Department(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Ordinary,
    Major,
    Emergency,
}

impl std::str::FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ordinary" => Ok(Self::Ordinary),
            "major" => Ok(Self::Major),
            "emergency" => Ok(Self::Emergency),
            _ => Err(format!("{s:?} is not ordinary, major or emergency")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Department {
    Engineering,
    Cleaning,
    Security,
    Landscaping,
    CustomerRelations,
}

impl Department {
    pub const ALL: [Department; 5] = [
        Department::Engineering,
        Department::Cleaning,
        Department::Security,
        Department::Landscaping,
        Department::CustomerRelations,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Department::Engineering => "engineering",
            Department::Cleaning => "cleaning",
            Department::Security => "security",
            Department::Landscaping => "landscaping",
            Department::CustomerRelations => "customer_relations",
        }
    }
}

impl std::str::FromStr for Department {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Department::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| {
                format!("{s:?} is not engineering, cleaning, security, landscaping or customer_relations")
            })
    }
}

/// What happened. Past tense: each is a fact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    CallStarted {
        from: String,
        to: String,
        /// The caller's number as the hotline trusts it (a trunk's caller
        /// ID); empty for an unknown caller.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        number: String,
        /// Placed by the hotline (a return visit).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        outbound: bool,
    },
    CallerIdentified {
        owner: String,
        /// `number` (a trunk's caller ID) or `pin` (unit and service PIN).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        by: String,
    },
    IvrStepTaken {
        node: String,
        detail: String,
    },
    CallQueued {
        queue: String,
        #[serde(default)]
        priority: u8,
        /// `vip` or `key`: served first.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        class: Option<String>,
        /// Back in line ahead of its priority (a transfer found nobody).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        ahead: bool,
    },
    CallOffered {
        agent: String,
    },
    /// The agent's phone did not take the offered call.
    CallOfferMissed {
        agent: String,
        /// In words: "no registered phone", "phone refused (486)" ...
        why: String,
    },
    CallAnswered {
        agent: String,
        /// The owner on the line, when known: the agent becomes the one
        /// who handles the owner's open tickets.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        owner: Option<String>,
        /// The caller's wait in the queue.
        #[serde(default)]
        waited_ms: u64,
    },
    /// The conversation was put on hold (or taken off it).
    CallHeld {
        by_agent: bool,
        hold: bool,
    },
    /// The caller left the queue without an agent: hung up (`hung_up`) or
    /// chose a voice message (`voice_message`).
    CallAbandoned {
        #[serde(default)]
        queue: String,
        #[serde(default)]
        waited_ms: u64,
        #[serde(default)]
        reason: String,
    },
    /// Sent to the queue's fallback: waited its longest (`max_wait`), or
    /// nobody who could take the call was logged in (`no_agents`).
    CallOverflowed {
        queue: String,
        waited_ms: u64,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        reason: String,
    },
    /// An agent asked to hand the caller on: `to` is `agent 2003` or
    /// `queue repair`.
    CallTransferRequested {
        from: String,
        to: String,
    },
    /// Handed on: the target agent answered, or the caller waits in the
    /// target queue.
    CallTransferred {
        #[serde(default)]
        from: String,
        to: String,
    },
    /// An agent's phone called another agent (internal, a consult).
    ConsultStarted {
        from: String,
        to: String,
    },
    /// An agent asked another to join the conversation (three-way).
    ConferenceRequested {
        from: String,
        to: String,
    },
    ConferenceJoined {
        agent: String,
    },
    ConferenceLeft {
        agent: String,
    },
    /// A supervisor joined the conversation from their phone: `listen`,
    /// `whisper` or `barge`.
    MonitorStarted {
        supervisor: String,
        mode: String,
    },
    MonitorChanged {
        supervisor: String,
        mode: String,
    },
    MonitorEnded {
        supervisor: String,
    },
    /// The target could not take the call (in words, as for a missed offer).
    CallTransferFailed {
        from: String,
        to: String,
        why: String,
    },
    /// The conversation's recording (a stereo WAV: caller left, agent right).
    CallRecorded {
        file: String,
        duration_ms: u64,
        pauses: u32,
    },
    /// Recording paused or resumed, and at whose word.
    RecordingPaused {
        paused: bool,
        by: String,
    },
    /// The conversation with the agent is over.
    ConversationEnded {
        agent: String,
        talked_ms: u64,
        /// The agent hung up first.
        by_agent: bool,
    },
    CallEnded {
        /// `caller_hung_up`, `hotline_hung_up`, `declined` ... (older
        /// events have the Rust name: `CallerHungUp`).
        reason: String,
        /// The SIP status, for `rejected` and `declined`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<u16>,
    },
    /// An agent's phone registered (or refreshed): where it is and until
    /// when, so that the node that starts next (a cluster's standby taking
    /// over) still reaches it.
    AgentRegistered {
        agent: String,
        /// The phone's Contact URI.
        contact: String,
        /// Where its REGISTER came from: `udp:127.0.0.1:5062`.
        source: String,
        expires_ms: i64,
    },
    /// An agent's phone left (unregistered, or its registration expired).
    AgentUnregistered {
        agent: String,
        #[serde(default)]
        expired: bool,
    },
    /// An agent's state changed (the ACD's word): `available`, `ringing`,
    /// `on_call`, `wrap_up`, `paused` (with the reason), `logged_out`.
    AgentStateChanged {
        agent: String,
        state: String,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        reason: String,
    },
    /// The agent's wrap-up of a call: a category and what was done.
    WrapUpCoded {
        code: String,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        notes: String,
    },
    TicketOpened {
        category: String,
        severity: Severity,
        owner: Option<String>,
        building: Option<String>,
        summary: String,
        /// Where the owner takes the return-visit call (their number as
        /// the SIP gateway dials it). Older events have none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        phone: Option<String>,
    },
    Dispatched {
        department: Department,
        person: Option<String>,
    },
    /// A time promised to the owner (Unix ms).
    Committed {
        deadline_ms: i64,
    },
    Escalated {
        reason: String,
    },
    Resolved {
        note: String,
    },
    ConfirmedByOwner,
    Reopened {
        reason: String,
    },
    SurveyAnswered {
        score: u8,
    },
    PromiseBroken {
        reason: String,
        remedy: String,
    },
    SlaWarned {
        deadline_ms: i64,
    },
    SlaBreached {
        deadline_ms: i64,
    },
    /// The department's webhook took the dispatch.
    DispatchDelivered {
        department: Department,
        attempts: u32,
    },
    /// The department's webhook refused or was unreachable every time.
    DispatchFailed {
        department: Department,
        attempts: u32,
        error: String,
    },
    /// The hotline called the owner back about the resolved work order.
    ReturnCallPlaced {
        attempt: u32,
        number: String,
    },
    /// That call reached nobody who answered the question: not answered
    /// (`reason` is the SIP code), or answered without a key.
    ReturnCallUnanswered {
        attempt: u32,
        reason: String,
    },
    /// Every attempt went unanswered: a person has to follow up.
    ReturnVisitGivenUp {
        attempts: u32,
    },
    /// A waiting caller asked to be called back on `number`, keeping their
    /// place: the queue, priority and first arrival (`since_ms`) it keeps.
    /// The callback's id is this event's call (the SIP Call-ID).
    CallbackRequested {
        queue: String,
        priority: u8,
        language: String,
        number: String,
        owner: Option<String>,
        since_ms: i64,
    },
    /// The callback waits in its queue again (after an unanswered attempt
    /// or a restart), its place kept.
    CallbackQueued {
        callback: String,
        attempt: u32,
    },
    /// Its place came up: the hotline called the owner.
    CallbackPlaced {
        callback: String,
        attempt: u32,
        number: String,
    },
    /// The owner answered; an agent is rung.
    CallbackAnswered {
        callback: String,
    },
    /// The owner did not answer (`reason`: the SIP status ...).
    CallbackUnanswered {
        callback: String,
        attempt: u32,
        reason: String,
    },
    /// Every attempt went unanswered: a ticket for a person to follow up.
    CallbackGivenUp {
        callback: String,
        attempts: u32,
        number: String,
    },
    /// The on-call chain of an emergency calls the next person on duty
    /// (`step` 0 first in the round; the supervisor last).
    OnCallCalled {
        round: u32,
        step: u32,
        person: String,
        number: String,
    },
    /// That person pressed 1: they go (the chain writes `Dispatched` to
    /// them and `Committed` with the arrival it promises).
    OnCallAccepted {
        round: u32,
        step: u32,
        person: String,
    },
    /// That person passed (2), did not answer, was busy or hung up
    /// without a key: the chain moves on.
    OnCallDeclined {
        round: u32,
        step: u32,
        person: String,
        reason: String,
    },
    /// Everyone on the chain declined this round: the supervisor on duty
    /// is called (none: nobody to call) and the wallboard alerts.
    OnCallEscalated {
        round: u32,
        supervisor: Option<String>,
    },
    /// The owner was called to hear that help is coming: reached, or not
    /// (`reason`).
    OwnerToldHelpComing {
        reached: bool,
        reason: String,
    },
    /// A supervisor stopped the chain (someone was sent another way).
    OnCallStopped {
        reason: String,
    },
    /// A supervisor swapped a shift: `into` is on duty instead of `out`
    /// for `department` within `[from_ms, to_ms)`.
    OnCallShiftSwapped {
        department: Department,
        out: String,
        into: String,
        from_ms: i64,
        to_ms: i64,
    },
    /// Several owners of one building reported the same thing within a
    /// short time: a group complaint in the making, for a supervisor now.
    GroupComplaintRaised {
        building: String,
        category: String,
        owners: u32,
        window_minutes: u32,
    },
}

impl EventKind {
    /// The name stored beside the JSON, for queries that filter on it.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::CallStarted { .. } => "call_started",
            EventKind::CallerIdentified { .. } => "caller_identified",
            EventKind::IvrStepTaken { .. } => "ivr_step_taken",
            EventKind::CallQueued { .. } => "call_queued",
            EventKind::CallOffered { .. } => "call_offered",
            EventKind::CallOfferMissed { .. } => "call_offer_missed",
            EventKind::CallAnswered { .. } => "call_answered",
            EventKind::CallHeld { .. } => "call_held",
            EventKind::CallAbandoned { .. } => "call_abandoned",
            EventKind::CallOverflowed { .. } => "call_overflowed",
            EventKind::CallTransferRequested { .. } => "call_transfer_requested",
            EventKind::CallTransferred { .. } => "call_transferred",
            EventKind::CallTransferFailed { .. } => "call_transfer_failed",
            EventKind::ConsultStarted { .. } => "consult_started",
            EventKind::ConferenceRequested { .. } => "conference_requested",
            EventKind::ConferenceJoined { .. } => "conference_joined",
            EventKind::ConferenceLeft { .. } => "conference_left",
            EventKind::MonitorStarted { .. } => "monitor_started",
            EventKind::MonitorChanged { .. } => "monitor_changed",
            EventKind::MonitorEnded { .. } => "monitor_ended",
            EventKind::CallRecorded { .. } => "call_recorded",
            EventKind::RecordingPaused { .. } => "recording_paused",
            EventKind::ConversationEnded { .. } => "conversation_ended",
            EventKind::CallEnded { .. } => "call_ended",
            EventKind::AgentRegistered { .. } => "agent_registered",
            EventKind::AgentUnregistered { .. } => "agent_unregistered",
            EventKind::AgentStateChanged { .. } => "agent_state_changed",
            EventKind::WrapUpCoded { .. } => "wrap_up_coded",
            EventKind::TicketOpened { .. } => "ticket_opened",
            EventKind::Dispatched { .. } => "dispatched",
            EventKind::Committed { .. } => "committed",
            EventKind::Escalated { .. } => "escalated",
            EventKind::Resolved { .. } => "resolved",
            EventKind::ConfirmedByOwner => "confirmed_by_owner",
            EventKind::Reopened { .. } => "reopened",
            EventKind::SurveyAnswered { .. } => "survey_answered",
            EventKind::PromiseBroken { .. } => "promise_broken",
            EventKind::SlaWarned { .. } => "sla_warned",
            EventKind::SlaBreached { .. } => "sla_breached",
            EventKind::GroupComplaintRaised { .. } => "group_complaint_raised",
            EventKind::CallbackRequested { .. } => "callback_requested",
            EventKind::CallbackQueued { .. } => "callback_queued",
            EventKind::CallbackPlaced { .. } => "callback_placed",
            EventKind::CallbackAnswered { .. } => "callback_answered",
            EventKind::CallbackUnanswered { .. } => "callback_unanswered",
            EventKind::CallbackGivenUp { .. } => "callback_given_up",
            EventKind::OnCallCalled { .. } => "on_call_called",
            EventKind::OnCallAccepted { .. } => "on_call_accepted",
            EventKind::OnCallDeclined { .. } => "on_call_declined",
            EventKind::OnCallEscalated { .. } => "on_call_escalated",
            EventKind::OnCallStopped { .. } => "on_call_stopped",
            EventKind::OwnerToldHelpComing { .. } => "owner_told_help_coming",
            EventKind::OnCallShiftSwapped { .. } => "on_call_shift_swapped",
            EventKind::DispatchDelivered { .. } => "dispatch_delivered",
            EventKind::DispatchFailed { .. } => "dispatch_failed",
            EventKind::ReturnCallPlaced { .. } => "return_call_placed",
            EventKind::ReturnCallUnanswered { .. } => "return_call_unanswered",
            EventKind::ReturnVisitGivenUp { .. } => "return_visit_given_up",
        }
    }
}

/// An event to append. A `TicketOpened` without a ticket opens a new one,
/// numbered by the store (1, 2, 3 ...).
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub ticket: Option<TicketId>,
    pub call: Option<String>,
    pub at_ms: i64,
    pub actor: Actor,
    pub kind: EventKind,
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: EventId,
    pub ticket: Option<TicketId>,
    pub call: Option<String>,
    pub at_ms: i64,
    pub actor: Actor,
    pub kind: EventKind,
}
