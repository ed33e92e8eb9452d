//! Calls: the sans-IO switch that ties SIP dialogs to media sessions.
//!
//! [`Switch`] owns the transaction layer and every inbound call. It takes
//! datagrams, media events and `now`, and returns [`Output`]s (bytes to send,
//! media commands, ended calls) and its next deadline. It never reads the
//! clock nor touches a socket, so whole calls are simulated in tests.
//!
//! Inbound calls run the voice menu (`ivr::Session`, one per call) when one
//! is configured: the caller's number is looked up (the runtime answers
//! [`Output::IdentifyCaller`]) before the call is answered, then the
//! session's actions become media commands, requests for the runtime and
//! ticket events. Without a menu the switch runs a line test: answer, play
//! `welcome_<lang>`, collect digits until `#` or the inter-digit timeout,
//! play `goodbye_<lang>`, send BYE (SIP load tests use it).
//!
//! Outbound calls (`outbound.rs`): the return visit after a work order is
//! resolved. The switch places the call through the gateway, asks "press 1
//! if it is fixed, 2 if not", then the 1-5 survey, and reports both.
//!
//! One file per part of a call, all on the one [`Switch`]:
//! - `requests.rs`: what comes from the network, dispatched by method;
//! - `inbound.rs`: the owner's call, answered, its menu or line test;
//! - `hold.rs`: either side holding a conversation;
//! - `agent_leg.rs`: ringing an agent for a waiting caller, the bridge;
//! - `transfer.rs`, `consult.rs`, `monitor.rs`: handing a caller on,
//!   agents consulting each other, three-way calls, supervisors;
//! - `outbound.rs`: every call we place (legs, return visits);
//! - `dialog.rs`: the one builder of the requests we send in a dialog;
//! - `registrar.rs`: agents' phones registering, feature codes;
//! - `teardown.rs`: ending calls, and what an end tells the others.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::{debug, info, warn};

use crate::ivr;
use crate::media::ports::PortPool;
use crate::media::rtp::StreamParams;
use crate::sip::message::{self, CoreHeaders, Message, Request};
use crate::sip::sdp::Offer;
use crate::sip::transaction::{
    Output as TxOutput, Peer, TimerValues, TransactionLayer, Transmit, Transport, TxEvent, TxId,
};

mod agent_leg;
mod callback;
mod consult;
mod dialog;
pub mod event;
mod hold;
mod inbound;
mod monitor;
mod oncall;
mod outbound;
mod registrar;
mod requests;
mod teardown;
mod transfer;
pub use callback::{CallbackPolicy, QueueCallback};
pub use event::{CallEvent, CallEventKind};
pub use monitor::MonitorError;
pub use oncall::{DutyOutcome, PlaceDutyCall, PlaceNotice};
pub use outbound::{PlaceCall, VisitOutcome};
pub use registrar::{Binding, FeatureCode};
pub use transfer::TransferError;

/// Methods we accept; everything else is 405 (known) or 501 (unknown).
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, REFER";

use crate::ids::IdMap;
pub use crate::ids::{AgentId, CallId};

#[derive(Debug, Clone)]
pub struct SwitchConfig {
    /// Unix milliseconds of an `Instant` (the opening hours ask in them).
    pub clock: crate::clock::WallClock,
    /// Our SIP address per transport (Via sent-by and Contact).
    pub sip_addr: SocketAddr,
    /// Our SIP over TLS address, when there is a TLS listener.
    pub tls_addr: Option<SocketAddr>,
    /// Address written in SDP and bound for RTP.
    pub media_ip: IpAddr,
    pub rtp_ports: (u16, u16),
    /// Ringing time before we answer.
    pub answer_after: Duration,
    pub inter_digit_timeout: Duration,
    pub max_digits: usize,
    pub language: String,
    /// How long an outbound call may ring before it is cancelled.
    pub ring_timeout: Duration,
    /// Silence after a question before it is asked again (once), then given up.
    pub question_timeout: Duration,
    pub timers: TimerValues,
    /// The voice menu; none: the line test.
    pub ivr: Option<std::sync::Arc<ivr::graph::Graph>>,
    /// Agents who may REGISTER; none: REGISTER is not allowed.
    pub agents: Option<std::sync::Arc<crate::acd::agents::AgentsFile>>,
    /// Username and password for a gateway that challenges our calls.
    pub gateway_auth: Option<(String, String)>,
    /// Who may talk to us, how much, and how many calls at once.
    pub edge: crate::edge::EdgeConfig,
    /// A caller silent this long (no RTP, not holding) is hung up.
    pub rtp_timeout: Duration,
    /// No call lasts longer.
    pub max_call: Duration,
    /// The ACD's queues: where a caller the menu hands over waits, and at
    /// which priority (none: as the menu says).
    pub queues: Option<std::sync::Arc<crate::acd::QueuePlan>>,
    /// Which conversations with agents are recorded.
    pub recording: RecordingPolicy,
    /// Transfer codes that send a caller to a queue (`q-repair` → `repair`).
    pub transfer_queues: std::collections::BTreeMap<String, String>,
    /// Transfers to outside numbers: through which gateway, to which
    /// numbers (none: no outside transfers).
    pub transfer_out: Option<TransferOut>,
    /// Callbacks that keep the caller's place (none: not offered).
    pub callback: Option<CallbackPolicy>,
    /// Seed for tags and branches (random in production, fixed in tests).
    pub seed: u64,
}

/// Where agents may transfer callers outside the centre.
#[derive(Debug, Clone, PartialEq)]
pub struct TransferOut {
    pub gateway: SocketAddr,
    /// The numbers allowed (E.164 patterns): nothing else is dialled.
    pub allowed: Vec<crate::owners::phone::DialPattern>,
    /// How a number the agent dials is read (national, local, E.164).
    pub plan: crate::owners::phone::NumberPlan,
}

/// Which conversations are recorded: all when `enabled`, unless the
/// call's site or queue says otherwise (a queue's word over the site's).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordingPolicy {
    pub enabled: bool,
    pub sites: std::collections::BTreeMap<String, bool>,
    pub queues: std::collections::BTreeMap<String, bool>,
    /// Said to a caller queued for a recorded conversation (a prompt name,
    /// the language added), before the hold music.
    pub notice: Option<String>,
}

impl RecordingPolicy {
    pub fn records(&self, site: Option<&str>, queue: Option<&str>) -> bool {
        queue
            .and_then(|q| self.queues.get(q))
            .or_else(|| site.and_then(|s| self.sites.get(s)))
            .copied()
            .unwrap_or(self.enabled)
    }
}

#[cfg(test)]
#[test]
fn a_queues_word_on_recording_goes_over_its_sites_and_the_sites_over_the_default() {
    let p = RecordingPolicy {
        enabled: true,
        sites: [("lakeside".to_string(), false)].into(),
        queues: [("vip".to_string(), true)].into(),
        notice: None,
    };
    assert!(p.records(Some("garden"), Some("general")));
    assert!(!p.records(Some("lakeside"), Some("general")));
    assert!(p.records(Some("lakeside"), Some("vip")));
    assert!(!RecordingPolicy::default().records(None, None));
}

impl SwitchConfig {
    /// Our Contact for a dialog with a peer on `transport`: over TLS the
    /// TLS listener, so the phone's own requests come back encrypted.
    fn contact_for(&self, transport: Transport) -> String {
        match (transport, self.tls_addr) {
            (Transport::Tls, Some(addr)) => format!("<sip:hotline@{addr};transport=tls>"),
            _ => format!("<sip:hotline@{}>", self.sip_addr),
        }
    }

    /// `SIP/2.0/<transport> <sent-by>` for a Via of ours toward `transport`.
    fn via_for(&self, transport: Transport) -> String {
        let sent_by = match (transport, self.tls_addr) {
            (Transport::Tls, Some(addr)) => addr,
            _ => self.sip_addr,
        };
        format!("SIP/2.0/{} {sent_by}", transport.as_str())
    }
}

/// Asks the media edge to act on a call's RTP.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaCommand {
    Open {
        call: CallId,
        port: u16,
        params: StreamParams,
    },
    /// Prompt files played one after the other; `PromptFinished` after the last.
    Play {
        call: CallId,
        prompts: Vec<String>,
    },
    /// `first` played once (whatever played stops), then `prompts` over
    /// and over (the hold music), on one cadence, until the next `Play`,
    /// `Loop` or `Stop`; never finished.
    Loop {
        call: CallId,
        first: Vec<String>,
        prompts: Vec<String>,
    },
    /// Record the caller to `<recordings>/<name>.wav` until `StopRecording`,
    /// `max`, or `silence`; `RecordingFinished` tells the file.
    Record {
        call: CallId,
        name: String,
        max: Duration,
        silence: Duration,
    },
    StopRecording {
        call: CallId,
    },
    /// Relay RTP between two calls' sockets, both ways, as it comes.
    Bridge {
        a: CallId,
        b: CallId,
    },
    /// The phone's re-INVITE moved its media to `remote` (a phone that
    /// changed networks mid-call): sent there from now on, and taken from
    /// there (strict RTP learns its source again).
    Remote {
        call: CallId,
        remote: std::net::SocketAddr,
    },
    /// Stop (or start again) relaying what `from` receives to the leg it
    /// is bridged with (hold and resume).
    Relay {
        from: CallId,
        on: bool,
    },
    Stop {
        call: CallId,
    },
    Close {
        call: CallId,
    },
    /// Record the conversation of `caller` (left) and `agent` (right) to
    /// `<recording dir>/<name>.wav` as it goes, until `StopConversation`;
    /// `ConversationRecorded` (on the caller) tells the file.
    RecordConversation {
        caller: CallId,
        agent: CallId,
        sip_call_id: String,
        name: String,
    },
    /// Silence in the file from now (a payment read out), or again what is
    /// said.
    PauseConversation {
        caller: CallId,
        paused: bool,
    },
    StopConversation {
        caller: CallId,
    },
    /// Joins `call` to the mixed conversation `room` (or changes who hears
    /// it): what it receives goes to the room's mixer and it hears its mix,
    /// no longer a relay.
    Mix {
        room: CallId,
        call: CallId,
        role: crate::media::mixer::Role,
        audience: crate::media::mixer::Audience,
    },
    /// Out of its mixed conversation.
    Unmix {
        call: CallId,
    },
}

/// What the media edge reports about a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    Opened,
    OpenFailed,
    Digit(char),
    PromptFinished,
    RecordingFinished {
        file: String,
        duration: Duration,
    },
    /// No RTP from the peer for this long.
    Silent(Duration),
    /// The conversation's recording is complete.
    ConversationRecorded {
        sip_call_id: String,
        file: String,
        duration: Duration,
        pauses: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    CallerHungUp,
    HotlineHungUp,
    Cancelled,
    NoAck,
    ByeTimeout,
    Rejected(u16),
    Shutdown,
    /// Outbound: nobody answered before the ring timeout (we cancelled).
    NoAnswer,
    /// Outbound: the callee or the gateway refused with this final response.
    Declined(u16),
    /// Outbound: no response at all (Timer B).
    Unreachable,
    /// Outbound: answered, but our RTP socket could not be opened.
    MediaFailed,
    /// No RTP from the peer for `[media] rtp_timeout_seconds`.
    RtpTimeout,
    /// The call reached `[call] max_seconds`.
    MaxDuration,
}

impl EndReason {
    /// The SIP status that ended it, where there is one.
    pub fn code(self) -> Option<u16> {
        match self {
            EndReason::Rejected(c) | EndReason::Declined(c) => Some(c),
            _ => None,
        }
    }

    /// A metric label (a small closed set).
    pub fn label(self) -> &'static str {
        match self {
            EndReason::CallerHungUp => "caller_hung_up",
            EndReason::HotlineHungUp => "hotline_hung_up",
            EndReason::Cancelled => "cancelled",
            EndReason::NoAck => "no_ack",
            EndReason::ByeTimeout => "bye_timeout",
            EndReason::Rejected(_) => "rejected",
            EndReason::Shutdown => "shutdown",
            EndReason::NoAnswer => "no_answer",
            EndReason::Declined(_) => "declined",
            EndReason::Unreachable => "unreachable",
            EndReason::MediaFailed => "media_failed",
            EndReason::RtpTimeout => "rtp_timeout",
            EndReason::MaxDuration => "max_duration",
        }
    }
}

#[derive(Debug)]
pub enum Output {
    Transmit(Transmit),
    Media(MediaCommand),
    /// Something happened to a call: its story, for every listener.
    Event(CallEvent),
    /// Who is calling? Answer with [`Switch::handle_owner`].
    IdentifyCaller {
        call: CallId,
        number: String,
    },
    /// The menu needs the owner database or the ticket log; answer with
    /// [`Switch::handle_ivr_reply`].
    IvrRequest {
        call: CallId,
        sip_call_id: String,
        /// The caller's number (for a ticket's callback number).
        number: String,
        request: ivr::Request,
    },
    /// An agent's softphone registered (or refreshed its registration).
    AgentRegistered {
        agent: AgentId,
        contact: String,
        peer: Peer,
        expires: Duration,
    },
    /// An agent dialled a feature code (authenticated).
    AgentFeature {
        agent: AgentId,
        code: FeatureCode,
    },
    /// Unregistered by the phone, or the registration expired.
    AgentUnregistered {
        agent: AgentId,
        expired: bool,
    },
    /// A source was banned: its connections are to be closed.
    Banned {
        ip: IpAddr,
    },
    /// A new call was refused with 503 (load shed), and why: the cap
    /// reached (`max_calls`, `no_rtp_port`, `max_unconfirmed`,
    /// `max_unconfirmed_per_source`, `media_behind`).
    Shed {
        why: &'static str,
    },
}

/// A media worker with this share of its wakes late (by more than half a
/// packet's time), second after second for [`MEDIA_BEHIND_SECONDS`], is
/// behind: new calls get 503 until a second passes on schedule. A worker
/// that cannot keep up is late at nearly every wake; one on schedule is
/// late at a few, when the machine hiccups (a burst of orders, a moment's
/// preemption), and those few say nothing about its load. (One late
/// second alone is a hiccup too.)
const MEDIA_BEHIND_SHARE: f64 = 0.05;
const MEDIA_BEHIND_SECONDS: u32 = 2;

/// The switch itself is behind when its timers fire this late (its own
/// turns queue up behind more work than it can do): a fifth of the
/// half-second after which callers retransmit their INVITEs. Counted with
/// the media's seconds, by the same two-second rule.
const SWITCH_BEHIND: Duration = Duration::from_millis(100);

/// The switch reads too late when the oldest datagram of a batch waited
/// this long in the kernel: more comes in than it gets through. Half the
/// 10 ms within which a refused caller should hear its 503. (At twice the
/// clean rate on 2 cores, 3 ms let fewer 503s out late, 0.7 % over 10 ms
/// against 1.7 %, but took 12 % fewer calls, and refused some at the clean
/// rate when the machine was noisy: a caller turned away for nothing
/// costs the centre more than a refusal a few milliseconds late.)
const QUEUE_BEHIND: Duration = Duration::from_millis(5);

/// From the [`LATE_READS`]th batch in a row read that late, new calls are
/// refused for this long after the last late one. A refusal costs the switch a
/// small part of what a call does, so the queue ahead of the next INVITE
/// drains; the calls already taken keep their quick answers. Long enough
/// for the load a call brings after its INVITE (its ACK and first
/// requests) to show in the wait before more are taken.
const QUEUE_SHED: Duration = Duration::from_millis(100);

/// Late batches in a row that mean a queue the switch does not get
/// through, not its thread waiting a moment for a core. Two (as before)
/// refused callers at the clean rate on a busy machine: at 1,500 short
/// calls a second with their prompts (some 4,000 streams sent by the media
/// workers, real-time threads that run first), `benches/load.sh` saw 318
/// and 337 calls refused in two runs out of two, none with three. The
/// price, at twice that rate (`benches/overload.sh 3200`): the queue grows
/// a batch longer before the refusals start, so the late 503s are later
/// (on the wire, p99 26-35 ms against 14, median still under 2 ms), and
/// 5 % more calls are taken.
const LATE_READS: u8 = 3;

/// The media's budget (the busiest media worker's share of its core,
/// above which new calls wait) is cut to this share of itself (percent)
/// each time the switch starts refusing for its reading late, at most
/// once per [`QUEUE_SHED`], and given back [`MEDIA_BUDGET_BACK`] points a
/// second once it reads on time, up to the configured limit. Real-time
/// media workers run first: what they leave is all the switch (and
/// anything else on the machine) gets, so when the switch falls behind,
/// fewer calls are taken until the media leaves it enough. At the clean
/// rate the switch reads on time and the budget stays at the limit; at
/// twice that rate it settles where the switch keeps up, and its
/// refusals leave on time. (In benches/overload.sh 3200: cut by 5
/// points at a time, 196 and 1,530 of about 20,000 503s left over 10 ms
/// late in two runs; by 10 %, 193 and 271; by 20 %, 65 in one run, but
/// only 9,435 calls were taken against 12,206 and 13,831.)
const MEDIA_BUDGET_KEPT: u16 = 90;
const MEDIA_BUDGET_BACK: u8 = 2;
/// The budget is never cut below this: the media always has some room.
const MEDIA_BUDGET_FLOOR: u8 = 20;

/// How late the media workers ran in one second.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MediaLate {
    /// The latest any packet left after its time.
    pub worst: Duration,
    /// The largest share of one worker's wakes that were late.
    pub late_share: f64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub calls_started: u64,
    pub calls_ended: u64,
    pub bad_messages: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Outbound: INVITE sent, no final response yet.
    Dialing,
    /// Outbound: ring timeout, CANCEL sent, waiting for the 487.
    Cancelling,
    /// Outbound: 200 received and ACKed, RTP socket opening.
    Connected,
    /// Outbound: "press 1 if it is fixed, 2 if not".
    Asking,
    /// "Rate us from 1 to 5".
    Surveying,
    Ringing,
    /// 200 sent, waiting for the ACK.
    Answered,
    Welcome,
    Collecting,
    /// The voice menu runs.
    Ivr,
    /// Talking with an agent (caller) or with a caller (agent leg).
    Bridged,
    Goodbye,
    /// BYE sent, waiting for its response.
    HangingUp,
}

impl Phase {
    /// Both sides are in the conversation: not still ringing or waiting for
    /// the ACK (Timers B and H decide those), nor already hanging up.
    fn is_established(self) -> bool {
        !matches!(
            self,
            Phase::Ringing
                | Phase::Answered
                | Phase::Dialing
                | Phase::Cancelling
                | Phase::HangingUp
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    Answer,
    DigitTimeout,
    RingTimeout,
    QuestionTimeout,
    Ivr,
}

/// Why a call exists.
#[derive(Debug)]
enum Purpose {
    /// An owner called the hotline (or an agent's phone a feature code):
    /// the owner's side of the conversation.
    Inbound(Box<inbound::OwnerCall>),
    /// The hotline calls an owner back about a resolved work order.
    ReturnVisit(outbound::Visit),
    /// The hotline calls the next person on duty about an emergency.
    OnCall(oncall::Duty),
    /// The hotline rings an agent's phone for a waiting caller.
    AgentLeg { caller: CallId, agent: AgentId },
    /// The hotline rings a supervisor's phone to join a conversation.
    Monitor(monitor::Monitor),
    /// An outside number a caller is transferred to, through the gateway.
    Party { caller: CallId },
    /// An agent's leg of a three-way call the caller left: the two agents
    /// talk on (`other` is the colleague's leg); told on the caller's
    /// record when it ends.
    Colleague {
        agent: AgentId,
        other: CallId,
        caller: CallId,
        caller_sip: String,
    },
    /// An agent's phone called another agent or an outside number (a
    /// consult call).
    Consult {
        from: AgentId,
        to: event::TransferTarget,
    },
}

#[derive(Debug)]
struct Call {
    sip_call_id: String,
    purpose: Purpose,
    phase: Phase,
    peer: Peer,
    invite_tx: TxId,
    invite: CoreHeaders,
    local_tag: String,
    /// Our From in requests we send in the dialog (with our tag), and
    /// their party as our To (with their tag).
    local: String,
    remote: String,
    remote_target: String,
    route_set: Vec<String>,
    local_cseq: u32,
    bye_tx: Option<TxId>,
    /// The caller's offer (inbound) or the callee's answer (outbound, once
    /// the 200 came).
    offer: Option<Offer>,
    port: Option<u16>,
    open_attempts: u8,
    media_ready: bool,
    answer_due: bool,
    answer_sdp: String,
    /// This leg's phone put the call on hold (re-INVITE sendonly/inactive).
    on_hold: bool,
    /// Changes to our SDP since the first (its `o=` version above the id).
    sdp_changes: u64,
    digits: String,
    timer: Option<(Instant, Timer)>,
    generation: u32,
    /// When the call began (no call outlives `max_call`).
    started: Instant,
    /// The called number (user part of the Request-URI) and the caller's.
    called: String,
    number: String,
    /// The owner lookup came back (always true without a menu).
    identified: bool,
    /// An agent's feature-code call: the confirmation prompt to play.
    feature: Option<&'static str>,
    /// A call the hotline placed: its INVITE's state.
    out: Option<outbound::OutLeg>,
    /// A caller's leg to an agent (ringing or bridged).
    bridge: Option<CallId>,
    /// Talking with an agent since then.
    talking_since: Option<Instant>,
    /// Inbound, not yet ACKed: counted against the admission caps.
    unconfirmed: bool,
}

pub struct Switch {
    cfg: SwitchConfig,
    tx: TransactionLayer,
    /// Boxed, as the transactions are: a call is nearly a kilobyte, and
    /// the table's doubling moved them all at once.
    calls: IdMap<CallId, Box<Call>>,
    by_sip: HashMap<String, CallId>,
    by_tx: IdMap<TxId, CallId>,
    ports: PortPool,
    timers: BinaryHeap<Reverse<(Instant, CallId, u32)>>,
    out: VecDeque<Output>,
    next_id: u64,
    stats: Stats,
    nonces: crate::sip::digest::Nonces,
    /// When the nonce clock started (the first REGISTER).
    epoch: Option<Instant>,
    /// Per-source rates and bans.
    guard: crate::edge::Guard,
    /// Inbound calls not yet ACKed, per source and in all.
    unconfirmed: HashMap<IpAddr, usize>,
    unconfirmed_total: usize,
    /// Which ran late (the media workers or the switch) and for how many
    /// seconds in a row; from [`MEDIA_BEHIND_SECONDS`] on, new calls wait
    /// (503) until they catch up, so the calls already in keep clean audio
    /// and quick answers.
    late: Option<(&'static str, u32)>,
    /// The latest a timer of the switch fired after it was due, since the
    /// last second's look.
    timers_late: Duration,
    /// Until when new calls are refused because the switch read its
    /// datagrams late ([`QUEUE_BEHIND`]).
    queue_shed_until: Option<Instant>,
    /// Batches read late in a row (up to [`LATE_READS`]).
    read_late: u8,
    /// The busiest media worker's share of the runtime's last look spent
    /// working, in percent.
    media_busy: u8,
    /// Above what share new calls wait ([`MEDIA_BUDGET_KEPT`]), when it was
    /// last cut, and whether it was in the second now passing.
    media_budget: u8,
    budget_cut: Option<Instant>,
    budget_cut_this_second: bool,
    /// New calls refused with 503 since the last second passed, by why:
    /// told in one line a second, not one a call (a flood of INVITEs
    /// would otherwise be a flood of log lines).
    refused_this_second: Vec<(&'static str, u64)>,
    /// How a new call is refused, at the door as here.
    refusal: crate::edge::door::Refusal,
    /// The door's 503 to the datagram being handled, when it answered it
    /// ([`Self::handle_answered`]).
    door_answer: Option<Bytes>,
    /// When calls are next checked against `max_call`.
    next_age_check: Option<Instant>,
    bindings: HashMap<String, Binding>,
    binding_timers: BinaryHeap<Reverse<(Instant, String, u32)>>,
    binding_generation: u32,
    /// The `now` of the input being handled, for what a call's end sets off
    /// in another call (a CANCEL or BYE to the other leg).
    last_now: Option<Instant>,
    /// Callbacks waiting in the ACD, their caller gone: called when their
    /// place comes up.
    callbacks: IdMap<CallId, callback::PendingCallback>,
}

impl Switch {
    pub fn new(cfg: SwitchConfig) -> Self {
        let nonces =
            crate::sip::digest::Nonces::new(cfg.seed, cfg.edge.nonce_lifetime.as_millis() as u64);
        Self {
            guard: crate::edge::Guard::new(cfg.edge.guard.clone()),
            unconfirmed: HashMap::new(),
            unconfirmed_total: 0,
            late: None,
            timers_late: Duration::ZERO,
            queue_shed_until: None,
            read_late: 0,
            media_busy: 0,
            media_budget: cfg.edge.admission.max_media_busy,
            budget_cut: None,
            budget_cut_this_second: false,
            refused_this_second: Vec::new(),
            refusal: crate::edge::door::Refusal::new(
                inbound::local_tag(cfg.seed, 0),
                cfg.edge.server.clone(),
            ),
            door_answer: None,
            next_age_check: None,
            tx: TransactionLayer::new(cfg.timers),
            ports: PortPool::new(cfg.rtp_ports.0, cfg.rtp_ports.1),
            cfg,
            calls: IdMap::default(),
            by_sip: HashMap::new(),
            by_tx: IdMap::default(),
            timers: BinaryHeap::new(),
            out: VecDeque::new(),
            next_id: 0,
            stats: Stats::default(),
            nonces,
            epoch: None,
            bindings: HashMap::new(),
            binding_timers: BinaryHeap::new(),
            binding_generation: 0,
            last_now: None,
            callbacks: IdMap::default(),
        }
    }

    pub fn active_calls(&self) -> usize {
        self.calls.len()
    }

    /// A second has passed: how late the media workers ran in it (the
    /// runtime tells), and how late the switch's own timers fired.
    pub fn second_passed(&mut self, media: MediaLate) {
        let was = self.behind();
        if !std::mem::take(&mut self.budget_cut_this_second) {
            self.media_budget = self
                .media_budget
                .saturating_add(MEDIA_BUDGET_BACK)
                .min(self.cfg.edge.admission.max_media_busy);
        }
        if !self.refused_this_second.is_empty() {
            let total: u64 = self.refused_this_second.iter().map(|(_, n)| n).sum();
            let why = self
                .refused_this_second
                .iter()
                .map(|(why, n)| format!("{why} {n}"))
                .collect::<Vec<_>>()
                .join(", ");
            info!(
                refused = total,
                why, "new calls refused with 503 in the last second"
            );
            self.refused_this_second.clear();
        }
        let switch_late = std::mem::take(&mut self.timers_late);
        let late = if media.late_share >= MEDIA_BEHIND_SHARE {
            Some("media_behind")
        } else if switch_late > SWITCH_BEHIND {
            Some("switch_behind")
        } else {
            None
        };
        let seconds = self.late.map_or(0, |(_, n)| n);
        self.late = late.map(|why| (why, seconds.saturating_add(1)));
        match (was, self.behind()) {
            (None, Some(why)) => warn!(why, "behind schedule: new calls refused (503)"),
            (Some(_), None) => info!("on schedule again: new calls taken"),
            _ => {}
        }
    }

    /// The runtime read a batch of datagrams whose oldest had waited
    /// `waited` in the kernel: from the third batch in a row to wait 5 ms
    /// or more (`LATE_READS`, `QUEUE_BEHIND`), new calls are refused (503)
    /// for 100 ms (`QUEUE_SHED`). A late batch or two is the switch's
    /// thread waiting a moment for a core (a burst elsewhere on the
    /// machine: two thousand callers' audio arriving); a queue it does not
    /// get through stays late read after read.
    pub fn datagrams_waited(&mut self, now: Instant, waited: Duration) {
        let late = waited >= QUEUE_BEHIND;
        self.read_late = match late {
            true => self.read_late.saturating_add(1).min(LATE_READS),
            false => 0,
        };
        if self.read_late >= LATE_READS {
            if self.queue_shed_until.is_none_or(|until| now >= until) {
                debug!(
                    waited_ms = waited.as_millis() as u64,
                    "switch reading late: new calls refused"
                );
            }
            if self.budget_cut.is_none_or(|at| now >= at + QUEUE_SHED) {
                self.budget_cut = Some(now);
                self.budget_cut_this_second = true;
                let cut = u16::from(self.media_budget) * MEDIA_BUDGET_KEPT / 100;
                self.media_budget = (cut as u8).max(MEDIA_BUDGET_FLOOR);
            }
            self.queue_shed_until = Some(now + QUEUE_SHED);
        }
    }

    /// The runtime looked at the media workers (every 100 ms): the
    /// busiest spent `percent` of that time working. Above the media's
    /// budget (the admission limit,
    /// [`crate::edge::Admission::max_media_busy`], cut to 90 % of itself
    /// each time the switch starts reading late, given back two points a
    /// second on time) new calls are refused until a look finds it at or
    /// below: calls already in keep their audio, and the switch keeps a
    /// share of the machine to answer and refuse on time (real-time
    /// workers would leave it none).
    pub fn media_busy(&mut self, percent: u8) {
        self.media_busy = percent;
    }

    /// Whether the switch read late a moment ago.
    pub(super) fn queue_behind(&self, now: Instant) -> bool {
        self.queue_shed_until.is_some_and(|until| now < until)
    }

    /// Why new calls are refused until the media workers or the switch
    /// catch up, if they are.
    pub(super) fn behind(&self) -> Option<&'static str> {
        self.late
            .filter(|(_, seconds)| *seconds >= MEDIA_BEHIND_SECONDS)
            .map(|(why, _)| why)
    }

    /// Whether new calls are refused now, whoever calls (the caps on
    /// one source aside): what the door answers by while the switch is
    /// behind ([`crate::edge::door`]).
    pub fn refusing(&self, now: Instant) -> bool {
        self.at_capacity(now).is_some()
    }

    /// The door, answering with this switch's refusal and within its
    /// guard's limits.
    pub fn door(&self) -> crate::edge::door::Door {
        crate::edge::door::Door::new(
            self.refusal.clone(),
            &self.cfg.edge.guard,
            &self.cfg.edge.proxies,
        )
    }

    pub fn ports_in_use(&self) -> usize {
        self.ports.in_use()
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let calls = self.timers.peek().map(|Reverse((at, _, _))| *at);
        let bindings = self.binding_timers.peek().map(|Reverse((at, _, _))| *at);
        [
            calls,
            bindings,
            self.tx.poll_timeout(),
            self.guard.poll_timeout(),
            self.next_age_check,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Feeds bytes that arrived from `peer` (one datagram, or one framed
    /// stream message).
    pub fn handle_datagram(&mut self, now: Instant, peer: Peer, bytes: &[u8]) {
        self.last_now = Some(now);
        if self.cfg.edge.proxies.contains(peer.addr.ip()) {
            return self.handle_from_proxy(now, peer, message::parse_datagram(bytes), bytes);
        }
        // A banned source's datagrams are dropped unread.
        if !self.guard.handle_datagram(now, peer.addr.ip()) {
            return;
        }
        // Every datagram counts against its source's rate, read from the
        // request line alone (responses and garbage as "other"): a flood
        // that is to be dropped costs no parsing.
        let class = message::request_method(bytes)
            .map_or(crate::edge::Class::Other, crate::edge::Class::of_method);
        let verdict = self.guard.handle_request(now, peer.addr.ip(), class);
        if verdict == crate::edge::Verdict::Drop {
            return;
        }
        self.handle_message(now, peer, message::parse_datagram(bytes), bytes, verdict);
    }

    /// Feeds a datagram the door read while the switch was behind and
    /// answered with `answer`, its 503 to a new call: the datagram is
    /// guarded and counted as any other, and the call it would have
    /// started is refused with the door's answer, not a second one.
    pub fn handle_answered(&mut self, now: Instant, peer: Peer, bytes: &[u8], answer: Bytes) {
        self.door_answer = Some(answer);
        self.handle_datagram(now, peer, bytes);
        self.door_answer = None;
    }

    /// Feeds a message already framed and parsed (TCP); `raw` is its bytes,
    /// used to answer a broken one.
    pub fn handle_parsed(
        &mut self,
        now: Instant,
        peer: Peer,
        parsed: Result<Message, message::ParseError>,
        raw: &[u8],
    ) {
        self.last_now = Some(now);
        if self.cfg.edge.proxies.contains(peer.addr.ip()) {
            return self.handle_from_proxy(now, peer, parsed, raw);
        }
        if !self.guard.handle_datagram(now, peer.addr.ip()) {
            return;
        }
        let class = match &parsed {
            Ok(Message::Request(r)) => crate::edge::Class::of_method(&r.core.cseq_method),
            _ => crate::edge::Class::Other,
        };
        let verdict = self.guard.handle_request(now, peer.addr.ip(), class);
        if verdict == crate::edge::Verdict::Drop {
            return;
        }
        self.handle_message(now, peer, parsed, raw, verdict);
    }

    /// A message from a trusted proxy (Kamailio in front): a request it
    /// forwards is guarded as from the source it names (bans, rates, and
    /// later the trunks and agents' networks); its own traffic (probes,
    /// responses, in-dialog requests without the header) is not limited.
    fn handle_from_proxy(
        &mut self,
        now: Instant,
        peer: Peer,
        mut parsed: Result<Message, message::ParseError>,
        raw: &[u8],
    ) {
        let mut verdict = crate::edge::Verdict::Pass;
        if let Ok(Message::Request(r)) = &mut parsed
            && let Some(origin) = r
                .header(message::SOURCE_HEADER)
                .and_then(message::parse_source)
        {
            if !self.guard.handle_datagram(now, origin.ip()) {
                return;
            }
            let class = crate::edge::Class::of_method(&r.core.cseq_method);
            verdict = self.guard.handle_request(now, origin.ip(), class);
            if verdict == crate::edge::Verdict::Drop {
                return;
            }
            r.origin = Some(origin);
        }
        self.handle_message(now, peer, parsed, raw, verdict);
    }

    fn handle_message(
        &mut self,
        now: Instant,
        peer: Peer,
        parsed: Result<Message, message::ParseError>,
        raw: &[u8],
        verdict: crate::edge::Verdict,
    ) {
        match parsed {
            Ok(Message::Request(mut r)) => {
                message::stamp_via(&mut r.core, peer.addr);
                if self.admit_request(peer, &r, verdict) {
                    self.tx.handle_request(now, peer, r);
                }
            }
            Ok(Message::Response(r)) => self.tx.handle_response(now, r),
            Err(e) => self.handle_bad_message(peer, raw, &e),
        }
        self.pump(now);
    }

    /// The end of a turn, once its outputs are carried out (ports bound,
    /// callers looked up, and what the switch made of that): a 100 Trying
    /// for each new INVITE not answered in the turn (RFC 3261 §17.2.1). A
    /// call rung or answered at once gets none. True when there is more
    /// to carry out.
    pub fn end_turn(&mut self, now: Instant) -> bool {
        self.tx.send_trying();
        self.pump(now);
        !self.out.is_empty()
    }

    /// A request within its source's rate (`verdict`, already checked) and
    /// the transaction cap passes; otherwise it is answered 503 once
    /// (statelessly: no transaction is kept for it).
    fn admit_request(&mut self, peer: Peer, r: &Request, verdict: crate::edge::Verdict) -> bool {
        let method = r.core.cseq_method.as_str();
        let retry_after = match verdict {
            crate::edge::Verdict::Pass => {
                let cap = self.cfg.edge.admission.max_transactions;
                if method == "ACK" || self.tx.len() < cap {
                    return true;
                }
                debug!(peer = %peer.addr, %method, "transaction cap reached: 503");
                5
            }
            crate::edge::Verdict::Drop => return false,
            crate::edge::Verdict::Refuse { retry_after } => {
                debug!(peer = %peer.addr, %method, "over its rate: 503");
                retry_after
            }
        };
        // Not when the door answered it already (the one 503 is enough).
        if method != "ACK" && self.door_answer.is_none() {
            let retry = retry_after.to_string();
            let bytes = self.response_bytes(
                &r.core,
                503,
                "Service Unavailable",
                None,
                &[("Retry-After", &retry)],
                b"",
            );
            self.out
                .push_back(Output::Transmit(Transmit { peer, bytes }));
        }
        false
    }

    /// What the edge guard counted so far.
    pub fn edge_stats(&self) -> crate::edge::GuardStats {
        self.guard.stats()
    }

    /// Whether `ip` is banned now.
    pub fn is_banned(&self, now: Instant, ip: IpAddr) -> bool {
        self.guard.is_banned(now, ip)
    }

    /// How many sources are banned now (for the gauge).
    pub fn banned_sources(&self, now: Instant) -> usize {
        self.guard.banned(now)
    }

    /// Bans in force (for the API).
    pub fn bans(&self, now: Instant) -> Vec<crate::edge::BanInfo> {
        self.guard.bans(now)
    }

    /// Lifts a ban; whether there was one.
    pub fn lift_ban(&mut self, now: Instant, ip: IpAddr) -> bool {
        let lifted = self.guard.lift(now, ip);
        if lifted {
            warn!("SECURITY unban source={ip}");
        }
        lifted
    }

    /// A failed authentication from `peer`: logged at most once a second
    /// per source, and a ban when there were too many.
    pub(crate) fn auth_failed(
        &mut self,
        now: Instant,
        ip: IpAddr,
        user: &str,
        method: &str,
        why: &str,
    ) {
        let failure = self.guard.handle_auth_failure(now, ip);
        if failure.log {
            // The user name is the peer's: quoted and cut short.
            let user: String = user.chars().take(32).collect();
            warn!("SECURITY auth_failed source={ip} method={method} reason={why} user={user:?}");
        }
        if let Some(ban) = failure.banned {
            warn!(
                "SECURITY ban source={ip} failures={} seconds={}",
                ban.failures,
                ban.duration.as_secs()
            );
            self.out.push_back(Output::Banned { ip });
        }
    }

    /// A message that could not be parsed: answered when it was a request
    /// we can address, counted and logged either way.
    fn handle_bad_message(&mut self, peer: Peer, bytes: &[u8], e: &message::ParseError) {
        if matches!(e, message::ParseError::Empty) {
            return; // CRLF keep-alive
        }
        self.stats.bad_messages += 1;
        warn!(peer = %peer.addr, error = %e, "bad SIP message");
        if let Some(reply) = message::reject_reply(bytes, e) {
            self.out
                .push_back(Output::Transmit(Transmit { peer, bytes: reply }));
        }
    }

    pub fn handle_media(&mut self, now: Instant, call: CallId, event: MediaEvent) {
        self.last_now = Some(now);
        if let MediaEvent::ConversationRecorded {
            sip_call_id,
            file,
            duration,
            pauses,
        } = event
        {
            // Told whether the call is still here or not.
            let kind = CallEventKind::Recorded {
                file,
                duration,
                pauses,
            };
            return self.emit_for(now, call, &sip_call_id, kind);
        }
        if !self.calls.contains_key(&call) {
            return;
        }
        match event {
            MediaEvent::Opened => {
                let c = self.calls.get_mut(&call).expect("checked");
                c.media_ready = true;
                if c.phase == Phase::Connected {
                    match c.purpose {
                        Purpose::AgentLeg { .. } => self.bridge(now, call),
                        Purpose::Monitor(_) => self.monitor_joined(now, call),
                        Purpose::Party { caller } => self.complete_transfer(now, caller, call),
                        Purpose::Inbound(_) => {
                            self.callback_answered(now, call);
                        }
                        _ => self.ask(now, call),
                    }
                }
                let c = self.calls.get_mut(&call).expect("checked");
                if c.answer_due && c.identified {
                    self.answer(now, call);
                }
            }
            MediaEvent::OpenFailed => self.open_media(now, call),
            // Told above, whether the call is still here or not.
            MediaEvent::ConversationRecorded { .. } => {}
            MediaEvent::Silent(quiet) => {
                let c = &self.calls[&call];
                // A held call is silent by design; before the ACK, Timer H
                // decides; a BYE under way needs no second one.
                if c.phase.is_established() && !c.on_hold {
                    warn!(%call, seconds = quiet.as_secs(), "no RTP from the peer: hanging up");
                    self.send_bye(now, call);
                    self.end(call, EndReason::RtpTimeout);
                }
            }
            MediaEvent::Digit(d) => self.handle_digit(now, call, d),
            MediaEvent::RecordingFinished { file, duration } => {
                if let Some(s) = self
                    .calls
                    .get_mut(&call)
                    .and_then(|c| c.side_mut().and_then(|o| o.ivr.as_mut()))
                {
                    s.handle_recording_finished(now, file, duration);
                    self.pump_ivr(now, call);
                }
            }
            MediaEvent::PromptFinished if self.calls[&call].side().notice_playing => {
                // The recording notice is over: the agent who answered
                // meanwhile joins, or what the menu asked to play goes on.
                info!(%call, "recording notice played");
                let Some(o) = self.calls.get_mut(&call).and_then(|c| c.side_mut()) else {
                    return;
                };
                o.notice_playing = false;
                let then = o.after_notice.take();
                if let Some(leg) = o.bridge_after_notice.take() {
                    self.bridge(now, leg);
                } else if let Some(prompts) = then {
                    info!(%call, prompts = %prompts.join(" "), "playing");
                    self.out
                        .push_back(Output::Media(MediaCommand::Play { call, prompts }));
                }
            }
            MediaEvent::PromptFinished => {
                let phase = self.calls[&call].phase;
                match phase {
                    Phase::Ivr => {
                        if let Some(s) = self
                            .calls
                            .get_mut(&call)
                            .and_then(|c| c.side_mut().and_then(|o| o.ivr.as_mut()))
                        {
                            s.handle_prompt_finished(now);
                        }
                        self.pump_ivr(now, call);
                    }
                    Phase::Welcome => {
                        self.set_phase(call, Phase::Collecting);
                        self.arm(now, call, Timer::DigitTimeout);
                    }
                    Phase::Goodbye => self.send_bye(now, call),
                    // The other side still holds: the hold prompt again.
                    Phase::Bridged if self.held_by_other(call) => self.play_hold(call),
                    Phase::Asking | Phase::Surveying => self.arm(now, call, Timer::QuestionTimeout),
                    _ => {}
                }
            }
        }
        self.pump(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = Some(now);
        if let Some(due) = self.poll_timeout().filter(|due| *due <= now) {
            self.timers_late = self.timers_late.max(now - due);
        }
        self.guard.handle_timeout(now);
        if self.next_age_check.is_some_and(|at| at <= now) {
            self.end_old_calls(now);
        }
        self.tx.handle_timeout(now);
        self.pump(now);
        self.expire_bindings(now);
        while let Some(Reverse((at, call, generation))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(c) = self.calls.get_mut(&call) else {
                continue;
            };
            if c.generation != generation {
                continue;
            }
            let Some((_, timer)) = c.timer.take() else {
                continue;
            };
            match timer {
                Timer::Answer => {
                    c.answer_due = true;
                    if !c.identified && !c.side().identify_waited {
                        // The owner lookup is late: wait once more, then
                        // answer as an unknown caller rather than ring on.
                        if let Some(o) = c.side_mut() {
                            o.identify_waited = true;
                        }
                        self.arm(now, call, Timer::Answer);
                        continue;
                    }
                    c.identified = true;
                    if c.media_ready {
                        self.answer(now, call);
                    }
                }
                Timer::Ivr => {
                    if let Some(s) = c.side_mut().and_then(|o| o.ivr.as_mut()) {
                        s.handle_timeout(now);
                    }
                    self.pump_ivr(now, call);
                }
                Timer::DigitTimeout => self.finish_collecting(now, call),
                Timer::RingTimeout => self.ring_timeout(now, call),
                Timer::QuestionTimeout => self.question_timeout(now, call),
            }
            self.pump(now);
        }
    }

    /// Ends every call: unanswered ones get 503, answered ones a BYE.
    pub fn shutdown(&mut self, now: Instant) {
        self.last_now = Some(now);
        let ids: Vec<CallId> = self.calls.keys().copied().collect();
        for id in ids {
            let c = &self.calls[&id];
            match c.phase {
                Phase::Ringing => self.reject_invite(now, id, 503, "Service Unavailable"),
                Phase::Dialing => self.send_cancel(now, id),
                Phase::Cancelling | Phase::HangingUp => {}
                _ => self.send_bye(now, id),
            }
            self.end(id, EndReason::Shutdown);
        }
        self.pump(now);
    }

    // ---- transaction events -------------------------------------------------

    fn pump(&mut self, now: Instant) {
        while let Some(o) = self.tx.poll_output() {
            match o {
                TxOutput::Transmit(t) => self.out.push_back(Output::Transmit(t)),
                TxOutput::Event(e) => self.handle_tx_event(now, e),
            }
        }
    }

    fn handle_tx_event(&mut self, now: Instant, event: TxEvent) {
        match event {
            TxEvent::Request { tx, peer, request } => self.handle_request(now, tx, peer, request),
            TxEvent::Ack { request, .. } => {
                if let Some(&call) = self.by_sip.get(&request.core.call_id)
                    && self.in_dialog(call, &request.core)
                    && self.calls[&call].phase == Phase::Answered
                {
                    self.confirmed(call);
                    if matches!(self.calls[&call].purpose, Purpose::Consult { .. }) {
                        // The consulted agent answered before we did.
                        self.set_phase(call, Phase::Bridged);
                        return;
                    }
                    if matches!(self.calls[&call].purpose, Purpose::Monitor(_)) {
                        // A supervisor who dialled in: into the conversation.
                        return self.monitor_joined(now, call);
                    }
                    if let Some(prompt) = self.calls[&call].feature {
                        // The confirmation, then goodbye.
                        self.set_phase(call, Phase::Goodbye);
                        self.play(call, prompt);
                        return;
                    }
                    match self.cfg.ivr.clone() {
                        Some(graph) => {
                            let c = self.calls.get_mut(&call).expect("live call");
                            let mut session =
                                ivr::Session::new(graph, &c.called, c.side().owner.clone());
                            session.set_queue_waits(self.cfg.agents.is_some());
                            session.set_caller_number(Some(c.number.clone()));
                            session.start(now, self.cfg.clock.ms(now));
                            if let Some(o) = c.side_mut() {
                                o.ivr = Some(session);
                            }
                            c.phase = Phase::Ivr;
                            self.pump_ivr(now, call);
                        }
                        None => {
                            self.set_phase(call, Phase::Welcome);
                            self.play(call, "welcome");
                        }
                    }
                }
            }
            TxEvent::Response { tx, response } => {
                let Some(&call) = self.by_tx.get(&tx) else {
                    return;
                };
                let Some(c) = self.calls.get(&call) else {
                    return;
                };
                if tx == c.invite_tx && c.out.is_some() {
                    self.handle_invite_response(now, call, response);
                } else if response.code() >= 200 {
                    self.by_tx.remove(&tx);
                    // Our BYE's answer (not a NOTIFY's or an INFO's).
                    if c.phase == Phase::HangingUp && c.bye_tx == Some(tx) {
                        self.end(call, EndReason::HotlineHungUp);
                    }
                }
            }
            TxEvent::Timeout { tx } => {
                let Some(call) = self.by_tx.remove(&tx) else {
                    return;
                };
                let Some(c) = self.calls.get(&call) else {
                    return;
                };
                match c.phase {
                    Phase::Answered => {
                        // Timer H: the caller never ACKed our 200 (RFC 3261 §13.3.1.4).
                        warn!(call = %call, "no ACK for 200 OK, tearing the call down");
                        self.send_bye(now, call);
                        self.end(call, EndReason::NoAck);
                    }
                    Phase::HangingUp => self.end(call, EndReason::ByeTimeout),
                    Phase::Dialing | Phase::Cancelling => self.end(call, EndReason::Unreachable),
                    _ => {}
                }
            }
        }
    }

    fn respond(&mut self, now: Instant, tx: TxId, req: &CoreHeaders, code: u16, reason: &str) {
        self.respond_with(now, tx, req, code, reason, None, &[], b"");
    }

    #[allow(clippy::too_many_arguments)] // one call site per kind of reply; a builder would hide less
    fn respond_with(
        &mut self,
        now: Instant,
        tx: TxId,
        req: &CoreHeaders,
        code: u16,
        reason: &str,
        to_tag: Option<&str>,
        extra: &[(&str, &str)],
        body: &[u8],
    ) {
        let bytes = self.response_bytes(req, code, reason, to_tag, extra, body);
        self.tx.respond(now, tx, code, bytes, req);
    }

    /// Every response of ours, through a transaction or not: a To tag on
    /// all but 100 (RFC 3261 §8.2.6.2), the configured Server header.
    fn response_bytes(
        &self,
        req: &CoreHeaders,
        code: u16,
        reason: &str,
        to_tag: Option<&str>,
        extra: &[(&str, &str)],
        body: &[u8],
    ) -> Bytes {
        let ours;
        let to_tag = match to_tag {
            None if code > 100 && req.to_tag.is_none() => {
                ours = self.tag_for(0);
                Some(ours.as_str())
            }
            t => t,
        };
        if self.cfg.edge.server.is_empty() {
            message::response(req, code, reason, to_tag, extra, body)
        } else {
            let mut with_server = extra.to_vec();
            with_server.push(("Server", self.cfg.edge.server.as_str()));
            message::response(req, code, reason, to_tag, &with_server, body)
        }
    }

    /// Whether an in-dialog request belongs to call `id`'s dialog: the
    /// Call-ID found it, and both tags must match too (RFC 3261 §12.2.2).
    fn in_dialog(&self, id: CallId, core: &CoreHeaders) -> bool {
        let c = &self.calls[&id];
        core.to_tag.as_deref() == Some(c.local_tag.as_str())
            && core.from_tag.is_some()
            && core.from_tag.as_deref() == message::tag_of(&c.remote)
    }

    /// Sends a request inside the call's dialog (BYE, INFO, NOTIFY) with
    /// extra headers and an optional body (content type, bytes); its
    /// response comes back to the call through `by_tx`.
    fn send_in_dialog(
        &mut self,
        now: Instant,
        id: CallId,
        method: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
    ) -> Option<TxId> {
        self.next_id += 1;
        let branch = format!("z9hG4bK{:x}b{:x}", self.cfg.seed & 0xffff, self.next_id);
        let c = self.calls.get_mut(&id).expect("live call");
        c.local_cseq += 1;
        let c = &self.calls[&id];
        let bytes = c.request(
            &self.cfg,
            dialog::Req {
                method,
                uri: &c.remote_target,
                branch: &branch,
                cseq: c.local_cseq,
                headers,
                body,
            },
        );
        // In-dialog requests go back where the INVITE came from: with NAT the
        // Contact address may not be reachable, the source address is.
        let peer = c.peer;
        let tx = self.tx.send_request(now, peer, bytes)?;
        self.by_tx.insert(tx, id);
        Some(tx)
    }

    /// The other leg of a bridged call: the agent's for a caller, the
    /// caller's for an agent leg.
    fn bridged_to(&self, id: CallId) -> Option<CallId> {
        let c = self.calls.get(&id)?;
        if c.phase != Phase::Bridged {
            return None;
        }
        let other = match &c.purpose {
            Purpose::AgentLeg { caller, .. } => *caller,
            Purpose::Colleague { other, .. } => *other,
            _ => c.bridge?,
        };
        (self.calls.get(&other)?.phase == Phase::Bridged).then_some(other)
    }

    fn set_phase(&mut self, id: CallId, phase: Phase) {
        if let Some(c) = self.calls.get_mut(&id) {
            c.phase = phase;
        }
    }

    fn arm(&mut self, now: Instant, id: CallId, timer: Timer) {
        let delay = match timer {
            Timer::Answer => self.cfg.answer_after,
            Timer::DigitTimeout => self.cfg.inter_digit_timeout,
            Timer::RingTimeout => self.cfg.ring_timeout,
            Timer::QuestionTimeout => self.cfg.question_timeout,
            // The menu's deadline is set by `pump_ivr`, not armed here.
            Timer::Ivr => Duration::ZERO,
        };
        let c = self.calls.get_mut(&id).expect("live call");
        c.generation += 1;
        c.timer = Some((now + delay, timer));
        self.timers.push(Reverse((now + delay, id, c.generation)));
    }

    /// Pauses (or resumes) the recording of `caller`'s conversation at
    /// `by`'s word; false when it is not being recorded.
    pub fn pause_recording(
        &mut self,
        now: Instant,
        caller: CallId,
        paused: bool,
        by: &str,
    ) -> bool {
        self.last_now = Some(now);
        if !self.calls.get(&caller).is_some_and(|c| c.side().recording) {
            return false;
        }
        self.out
            .push_back(Output::Media(MediaCommand::PauseConversation {
                caller,
                paused,
            }));
        let kind = CallEventKind::RecordingPaused {
            paused,
            by: by.to_string(),
        };
        self.emit(now, caller, kind);
        true
    }

    /// Tells `call`'s story: one event, at `now`.
    fn emit(&mut self, now: Instant, call: CallId, kind: CallEventKind) {
        if let Some(c) = self.calls.get(&call) {
            let sip_call_id = c.sip_call_id.clone();
            self.emit_for(now, call, &sip_call_id, kind);
        }
    }

    fn emit_for(&mut self, now: Instant, call: CallId, sip_call_id: &str, kind: CallEventKind) {
        self.out.push_back(Output::Event(CallEvent {
            at: now,
            call,
            sip_call_id: sip_call_id.to_string(),
            kind,
        }));
    }
}

#[cfg(test)]
mod tests;
