//! The voice menu: a sans-IO machine per call, running the graph of
//! `config/ivr.toml`.
//!
//! * `graph`: the menu graph, loaded and checked (references, reachability,
//!   prompts in every language);
//! * `say`: numbers, money, dates and ticket numbers from recorded fragments;
//! * [`Session`]: one caller's way through the graph. Inputs are keys,
//!   "prompt finished", "recording finished", replies to its requests
//!   (lookups, tickets, redemptions) and `now`; outputs are [`Action`]s and
//!   the next deadline. The switch turns actions into media commands and the
//!   runtime answers requests from the owner database and the ticket log.

pub mod graph;
pub mod say;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use graph::{Graph, LookupWhat, NodeConfig, NodeId, SayValue};

use crate::owners::OwnerClass;
use crate::site::hours::Opening;
use crate::tickets::Severity;

/// What the machine knows of the caller's owner record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerInfo {
    pub id: String,
    pub language: String,
    pub class: OwnerClass,
    pub points: i64,
    pub fee_balance_cents: i64,
    pub building: String,
}

/// A ticket as the caller hears about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketInfo {
    pub number: u64,
    /// `open`, `dispatched`, `resolved` or `closed`.
    pub status: String,
    /// The local date it was opened.
    pub month: u32,
    pub day: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GiftInfo {
    pub id: String,
    pub points: i64,
}

/// Work for the runtime; the answer comes back as a [`Reply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// The owner of a unit, if `pin` is their PIN (a caller the hotline
    /// does not know proves who they are).
    OwnerByUnit {
        site: String,
        building: String,
        unit: String,
        pin: String,
    },
    LatestTicket {
        owner: String,
    },
    TicketByNumber {
        number: u64,
    },
    Gifts,
    /// Spend the gift's points. `attempt` numbers the redemptions of this
    /// call: with the call id it makes the request id that keeps a retried
    /// request from deducting twice.
    Redeem {
        owner: String,
        gift: String,
        attempt: u32,
    },
    OpenTicket {
        category: String,
        severity: Severity,
        summary: String,
        owner: Option<String>,
        building: Option<String>,
        /// The voice message recorded in this call, if any.
        recording: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Owner(Option<OwnerInfo>),
    Ticket(Option<TicketInfo>),
    Gifts(Vec<GiftInfo>),
    Redeemed {
        points_left: Option<i64>,
    },
    TicketOpened(u64),
    /// The request could not be carried out (database down ...).
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Prompt files (language suffix included), played in order.
    Play(Vec<String>),
    /// `first` once, then `looped` again and again until something else is
    /// played (the hold music, after the caller's place in line): no round
    /// trip at the end of each pass.
    Loop {
        first: Vec<String>,
        looped: Vec<String>,
    },
    StopPlayback,
    Record {
        max: Duration,
        silence: Duration,
    },
    StopRecording,
    Request(Request),
    /// One step of the caller's path, for the ticket log.
    Step {
        node: String,
        detail: String,
    },
    /// Hand the caller to the ACD.
    Queue {
        queue: String,
        skills: Vec<String>,
        priority: u8,
        language: String,
        owner: Option<String>,
        class: Option<OwnerClass>,
    },
    SurveyAnswered(u8),
    /// The caller leaves the queue (for a voice message).
    LeaveQueue,
    /// The waiting caller asks to be called back on `number` (as they
    /// confirmed or typed it), keeping their place: the switch checks the
    /// number and answers with [`Session::callback_kept`] or
    /// [`Session::callback_refused`].
    KeepPlace {
        number: String,
    },
    Hangup,
}

/// A menu step as people read it ("main: pressed 1 → self service"), or
/// none for the steps only the log keeps (prompts played, the start).
pub fn step_words(node: &str, detail: &str) -> Option<String> {
    // The queue is shown on its own (after the VIP choice, which this
    // step precedes); the owner's language is shown with the owner.
    if node == "start"
        || detail.starts_with("played ")
        || detail.starts_with("queue ")
        || detail.starts_with("known owner")
        // An open centre is no news to the agent (closed or a holiday is).
        || detail.starts_with("open -> ")
    {
        return None;
    }
    let node = node.replace('_', " ");
    let detail = detail.replace('_', " ");
    let detail = match detail.strip_prefix("key ") {
        Some(rest) => format!("pressed {rest}"),
        None => detail,
    };
    Some(format!("{node}: {}", detail.replace("->", "→")))
}

/// "Nobody can take your call right now" (before the queue's fallback).
pub const NO_AGENTS: &str = "no_agents";

/// "To be called back instead, keeping your place, press 1."
pub const CALLBACK_OFFER: &str = "callback_offer";

/// The menu step that says a callback was offered (the metrics count it).
pub const CALLBACK_OFFERED: &str = "callback offered";

/// What the callback's offer and confirmation say (checked at load when
/// a queue offers callbacks).
pub const CALLBACK_PROMPTS: [&str; 7] = [
    "callback_offer",
    "callback_number_is",
    "callback_press",
    "callback_enter_number",
    "callback_confirmed",
    "callback_number_refused",
    "callback_hello",
];

/// The tone a caller hears while an agent's phone rings (450 Hz, 1 s on,
/// 4 s off, as Chinese exchanges give it).
pub const RINGBACK: &str = "ringback";

/// What the machine waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// The node's prompt is playing; keys barge in where keys are taken.
    Prompt,
    /// Keys (timer armed).
    Keys,
    Reply,
    Recording,
    /// Last prompt playing, then hang up.
    Ending,
    /// Handed to the ACD: the hold prompt loops until an agent answers
    /// (the switch takes the call) or the queue gives up.
    Queued,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    NoInput,
    InterDigit,
}

/// A callback while waiting: offered (1 takes it), the number being
/// confirmed or typed, or asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Callback {
    NotOffered,
    Offered,
    Confirming { typed: String },
    Asked,
}

/// Digits a typed callback number may have.
const CALLBACK_DIGITS: usize = 20;

pub struct Session {
    graph: Arc<Graph>,
    site: usize,
    node: NodeId,
    wait: Wait,
    language: String,
    owner: Option<OwnerInfo>,
    /// Nodes to come back to after identifying the caller.
    returns: Vec<NodeId>,
    failures: u32,
    digits: String,
    building: String,
    unit: String,
    typed_ticket: String,
    /// The PIN typed; never written to the log.
    pin: String,
    ticket: Option<TicketInfo>,
    /// The ticket this call opened: one per call, however often the caller
    /// comes back to a ticket node (queue, voice message, queue ...).
    opened: Option<u64>,
    recording: Option<String>,
    /// Gifts offered by the catalogue node, in key order; the one chosen.
    offered: Vec<GiftInfo>,
    /// What the catalogue says (intro, points, the offers), kept to repeat.
    listing: Vec<String>,
    chosen: Option<GiftInfo>,
    points_left: Option<i64>,
    redemptions: u32,
    /// Keys typed ahead during a prompt that takes none (a balance being
    /// said): they go to the next node that takes keys.
    typeahead: String,
    /// An ACD takes queued callers (otherwise: hold prompt, then goodbye).
    queue_waits: bool,
    /// An agent's phone is ringing for this caller: ringback, not hold.
    ringing: bool,
    /// Being called back instead of waiting.
    callback: Callback,
    /// The number the caller called from, as the hotline trusts it (a
    /// callback goes there unless they type another).
    caller_number: Option<String>,
    timer: Option<(Instant, Timer)>,
    /// The call's start on both clocks: the opening hours are asked in
    /// Unix ms, the machine runs on `Instant`s.
    started: Option<(Instant, i64)>,
    out: VecDeque<Action>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("node", &self.graph.names[self.node.0])
            .field("wait", &self.wait)
            .field("language", &self.language)
            .finish()
    }
}

impl Session {
    /// A session for a call to `called` (user part of the Request-URI).
    /// Nothing happens until [`Session::start`].
    pub fn new(graph: Arc<Graph>, called: &str, owner: Option<OwnerInfo>) -> Self {
        let site = graph.site_for(called);
        let s = &graph.sites[site];
        let language = owner
            .as_ref()
            .map(|o| o.language.clone())
            .unwrap_or_else(|| s.language.clone());
        let node = graph.node(&s.start).expect("checked at load");
        Self {
            site,
            node,
            wait: Wait::Prompt,
            language,
            owner,
            returns: Vec::new(),
            failures: 0,
            digits: String::new(),
            building: String::new(),
            unit: String::new(),
            typed_ticket: String::new(),
            pin: String::new(),
            ticket: None,
            opened: None,
            recording: None,
            offered: Vec::new(),
            listing: Vec::new(),
            chosen: None,
            points_left: None,
            redemptions: 0,
            typeahead: String::new(),
            queue_waits: false,
            ringing: false,
            callback: Callback::NotOffered,
            caller_number: None,
            timer: None,
            started: None,
            out: VecDeque::new(),
            graph,
        }
    }

    pub fn site_id(&self) -> &str {
        &self.graph.sites[self.site].id
    }

    pub fn language(&self) -> &str {
        &self.language
    }

    pub fn owner(&self) -> Option<&OwnerInfo> {
        self.owner.as_ref()
    }

    /// Queue nodes wait for an agent (an ACD runs) instead of saying
    /// goodbye after the hold prompt.
    pub fn set_queue_waits(&mut self, waits: bool) {
        self.queue_waits = waits;
    }

    /// An agent's phone rings for this waiting caller (or stopped ringing
    /// without an answer): the caller hears ringback instead of the hold
    /// prompt, and the hold prompt again after.
    pub fn set_ringing(&mut self, ringing: bool) {
        if ringing && matches!(self.callback, Callback::Confirming { .. }) {
            // An agent is coming: no callback needed (the offer stands
            // should the agent not answer).
            self.callback = Callback::Offered;
        }
        if self.ringing == ringing || self.wait != Wait::Queued {
            self.ringing = ringing && self.wait == Wait::Queued;
            return;
        }
        self.ringing = ringing;
        self.out.push_back(Action::StopPlayback);
        self.play_looped(self.hold_prompt());
    }

    /// Waiting again at the queue node the caller was answered from (an
    /// agent transferred them to a queue, or their transfer found nobody):
    /// the hold prompt, looped, until an agent or the queue's end.
    pub fn requeue(&mut self, _now: Instant) {
        if !matches!(self.graph.nodes[self.node.0], NodeConfig::Queue { .. }) {
            return self.hang_up();
        }
        self.ringing = false;
        self.wait = Wait::Queued;
        self.timer = None;
        self.out.push_back(Action::StopPlayback);
        self.play_looped(self.hold_prompt());
    }

    /// The number the caller called from (trusted), offered for a callback.
    pub fn set_caller_number(&mut self, number: Option<String>) {
        self.caller_number = number.filter(|n| !n.is_empty());
    }

    /// Tells a waiting caller their place in line and the estimated wait,
    /// then the hold prompt goes on.
    /// The caller's place, and the estimated wait when there is an honest
    /// one (`minutes`: none while nobody who could take the call works);
    /// `offer_callback`: the wait is long enough to offer a callback that
    /// keeps the place ("press 1").
    pub fn announce(
        &mut self,
        _now: Instant,
        position: usize,
        minutes: Option<u64>,
        offer_callback: bool,
    ) {
        if self.wait != Wait::Queued || self.ringing {
            return;
        }
        if matches!(self.callback, Callback::Confirming { .. } | Callback::Asked) {
            return; // the caller is busy with the callback
        }
        let graph = Arc::clone(&self.graph);
        let name = graph.names[self.node.0].as_str();
        self.step(
            name,
            match minutes {
                Some(m) => format!("told place {position}, about {m} min"),
                None => format!("told place {position}, no estimate"),
            },
        );
        let lang = self.language.clone();
        let mut said = vec!["position_is".to_string()];
        said.extend(say::number(&lang, position as i64));
        said.push("in_line".into());
        if let Some(minutes) = minutes {
            said.push("wait_is".into());
            said.extend(say::number(&lang, minutes as i64));
            said.push("minutes_word".into());
        }
        if offer_callback {
            self.callback = Callback::Offered;
            said.push(CALLBACK_OFFER.into());
            self.step(name, CALLBACK_OFFERED.into());
        }
        // Then the hold music goes on, without a word back from the edge.
        self.play_looped_after(said, self.hold_prompt());
    }

    /// A key while waiting, for the callback: 1 takes the offer; then 1
    /// confirms the number said, or digits and # give another, * goes back
    /// to waiting. False: not a callback key.
    fn callback_key(&mut self, digit: char) -> bool {
        let name = self.graph.names[self.node.0].clone();
        match (&mut self.callback, digit) {
            (Callback::Offered, '1') if !self.ringing => {
                self.step(&name, "key 1: to be called back".into());
                let said = match &self.caller_number {
                    Some(number) => {
                        let mut said = vec!["callback_number_is".to_string()];
                        said.extend(say::digits(number));
                        said.push("callback_press".into());
                        said
                    }
                    None => vec!["callback_enter_number".to_string()],
                };
                self.callback = Callback::Confirming {
                    typed: String::new(),
                };
                self.play_looped_after(said, self.hold_prompt());
                true
            }
            (Callback::Confirming { typed }, '*') => {
                typed.clear();
                self.callback = Callback::Offered;
                self.step(&name, "callback: back to waiting".into());
                self.play_looped(self.hold_prompt());
                true
            }
            (Callback::Confirming { typed }, '1') if typed.is_empty() => {
                let Some(number) = self.caller_number.clone() else {
                    typed.push('1');
                    return true;
                };
                self.keep_place(number);
                true
            }
            (Callback::Confirming { typed }, '#') if !typed.is_empty() => {
                let number = std::mem::take(typed);
                self.keep_place(number);
                true
            }
            (Callback::Confirming { typed }, '0'..='9') => {
                if typed.len() < CALLBACK_DIGITS {
                    typed.push(digit);
                }
                true
            }
            (Callback::Confirming { .. } | Callback::Asked, _) => true,
            _ => false,
        }
    }

    fn keep_place(&mut self, number: String) {
        let name = self.graph.names[self.node.0].clone();
        self.step(&name, "callback: number given".into());
        self.callback = Callback::Asked;
        self.out.push_back(Action::KeepPlace { number });
    }

    /// The callback is taken: the caller is thanked and the call ends; their
    /// place waits on without them.
    pub fn callback_kept(&mut self) {
        if self.callback != Callback::Asked {
            return;
        }
        self.wait = Wait::Ending;
        self.out.push_back(Action::StopPlayback);
        self.play(vec!["callback_confirmed".into()]);
    }

    /// The number cannot be called back: said so, and the caller waits on
    /// (the offer stands).
    pub fn callback_refused(&mut self) {
        if self.callback != Callback::Asked {
            return;
        }
        self.callback = Callback::Offered;
        self.play_looped_after(vec!["callback_number_refused".into()], self.hold_prompt());
    }

    /// The hold prompt of the queue node the caller is at: the first of its
    /// prompts (the rest is for when no agent comes).
    fn hold_prompt(&self) -> Vec<String> {
        if self.ringing {
            return vec![RINGBACK.to_string()];
        }
        match &self.graph.nodes[self.node.0] {
            NodeConfig::Queue { prompt, .. } => prompt.names().into_iter().take(1).collect(),
            _ => Vec::new(),
        }
    }

    /// Out of the queue to its voice-message node, if it has one.
    fn leave_for_voicemail(&mut self, now: Instant, why: &str) -> bool {
        let graph = Arc::clone(&self.graph);
        let NodeConfig::Queue {
            voicemail: Some(to),
            ..
        } = &graph.nodes[self.node.0]
        else {
            return false;
        };
        let name = graph.names[self.node.0].as_str();
        self.step(name, format!("{why} -> {to}"));
        self.out.push_back(Action::StopPlayback);
        self.out.push_back(Action::LeaveQueue);
        self.goto(now, to, Vec::new());
        true
    }

    /// The queue gave up on the caller: they waited too long, or
    /// (`nobody`) nobody who could take the call is logged in, which the
    /// caller is told first. Then a voice message when the queue node
    /// offers one, else the rest of its prompts (an apology), then goodbye.
    pub fn handle_queue_left(&mut self, now: Instant, nobody: bool) {
        if self.wait != Wait::Queued {
            return;
        }
        let (why, told) = if nobody {
            ("no agent available", vec![NO_AGENTS.to_string()])
        } else {
            ("no agent in time", Vec::new())
        };
        let graph = Arc::clone(&self.graph);
        if let NodeConfig::Queue {
            voicemail: Some(to),
            ..
        } = &graph.nodes[self.node.0]
        {
            let name = graph.names[self.node.0].as_str();
            self.step(name, format!("{why} -> {to}"));
            self.out.push_back(Action::StopPlayback);
            self.out.push_back(Action::LeaveQueue);
            return self.goto(now, to, told);
        }
        let name = graph.names[self.node.0].as_str();
        self.step(name, why.into());
        if let NodeConfig::Queue { prompt, .. } = &graph.nodes[self.node.0] {
            let rest: Vec<String> = told
                .into_iter()
                .chain(prompt.names().into_iter().skip(1))
                .collect();
            self.out.push_back(Action::StopPlayback);
            if rest.is_empty() {
                return self.hang_up();
            }
            self.wait = Wait::Ending;
            self.play(rest);
        }
    }

    /// The call is answered and media flows: greet and enter the start node.
    /// Starts the menu at `now`, which is `now_ms` in Unix milliseconds.
    pub fn start(&mut self, now: Instant, now_ms: i64) {
        self.started = Some((now, now_ms));
        let site = &self.graph.sites[self.site];
        let greeting = site.greeting.clone();
        self.step(
            "start",
            format!(
                "site {} language {} owner {}",
                site.id,
                self.language,
                self.owner
                    .as_ref()
                    .map(|o| o.id.as_str())
                    .unwrap_or("unknown")
            ),
        );
        let start = self.node;
        self.enter(now, start, greeting.names());
    }

    pub fn is_done(&self) -> bool {
        self.wait == Wait::Done
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.out.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timer.map(|(at, _)| at)
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let Some((at, timer)) = self.timer else {
            return;
        };
        if at > now {
            return;
        }
        self.timer = None;
        match timer {
            Timer::InterDigit => self.finish_collect(now),
            Timer::NoInput => self.fail(now, "no input"),
        }
    }

    pub fn handle_prompt_finished(&mut self, now: Instant) {
        match self.wait {
            Wait::Prompt => {
                let graph = Arc::clone(&self.graph);
                match &graph.nodes[self.node.0] {
                    NodeConfig::Play { next, .. } | NodeConfig::Say { next, .. } => {
                        self.goto(now, next, Vec::new())
                    }
                    NodeConfig::Record {
                        max_seconds,
                        silence_seconds,
                        ..
                    } => {
                        self.wait = Wait::Recording;
                        self.out.push_back(Action::Record {
                            max: Duration::from_secs(*max_seconds),
                            silence: Duration::from_secs(*silence_seconds),
                        });
                    }
                    NodeConfig::Hangup { .. } => self.hang_up(),
                    NodeConfig::Queue { .. } if !self.queue_waits => self.hang_up(),
                    NodeConfig::Queue { .. } => {
                        // Waiting for an agent: the hold prompt again.
                        self.wait = Wait::Queued;
                        self.play_looped(self.hold_prompt());
                    }
                    _ => {
                        self.wait = Wait::Keys;
                        self.arm(now, Timer::NoInput);
                    }
                }
            }
            Wait::Ending => self.hang_up(),
            Wait::Queued => self.play_looped(self.hold_prompt()),
            _ => {}
        }
    }

    pub fn handle_recording_finished(&mut self, now: Instant, file: String, length: Duration) {
        if self.wait != Wait::Recording {
            return;
        }
        self.step(
            &self.graph.names[self.node.0].clone(),
            format!("recorded {} ms to {file}", length.as_millis()),
        );
        self.recording = Some(file);
        if let NodeConfig::Record { next, .. } = self.graph.nodes[self.node.0].clone() {
            self.goto(now, &next, Vec::new());
        }
    }

    pub fn handle_digit(&mut self, now: Instant, digit: char) {
        match self.wait {
            Wait::Prompt | Wait::Keys => {}
            Wait::Recording => {
                if digit == '#' {
                    self.out.push_back(Action::StopRecording);
                }
                return;
            }
            Wait::Queued => {
                if self.callback_key(digit) {
                    return;
                }
                if digit == '0' {
                    self.leave_for_voicemail(now, "key 0: a voice message instead");
                }
                return;
            }
            _ => return,
        }
        let graph = Arc::clone(&self.graph);
        let node = &graph.nodes[self.node.0];
        let takes_keys = matches!(
            node,
            NodeConfig::Menu { .. }
                | NodeConfig::Language { .. }
                | NodeConfig::Collect { .. }
                | NodeConfig::Catalogue { .. }
                | NodeConfig::Survey { .. }
        );
        if !takes_keys {
            if self.wait == Wait::Prompt
                && matches!(node, NodeConfig::Say { .. } | NodeConfig::Play { .. })
                && self.typeahead.len() < 8
            {
                self.typeahead.push(digit);
            }
            return;
        }
        if self.wait == Wait::Prompt {
            // Barge-in: a key stops the prompt.
            self.out.push_back(Action::StopPlayback);
            self.wait = Wait::Keys;
        }
        self.timer = None;
        let name = graph.names[self.node.0].as_str();
        // `*` repeats, `0` reaches an agent from any menu (unless the menu
        // itself offers 0); collecting digits takes both as digits.
        if !matches!(node, NodeConfig::Collect { .. }) {
            let offers = |k: &str| match &node {
                NodeConfig::Menu { options, .. } => options.contains_key(k),
                NodeConfig::Language { options, .. } => options.contains_key(k),
                _ => false,
            };
            if digit == '*' && !offers("*") {
                self.step(name, "key * repeats".into());
                return self.enter(now, self.node, Vec::new());
            }
            if digit == '0' && !offers("0") {
                self.step(name, "key 0: agent".into());
                let agent = self.graph.defaults.agent.clone();
                return self.goto(now, &agent, Vec::new());
            }
        }
        match node {
            NodeConfig::Menu { options, .. } => match options.get(&digit.to_string()) {
                Some(to) => {
                    self.step(name, format!("key {digit} -> {to}"));
                    self.goto(now, &to.clone(), Vec::new());
                }
                None => self.fail(now, &format!("wrong key {digit}")),
            },
            NodeConfig::Language { options, next, .. } => match options.get(&digit.to_string()) {
                Some(lang) => {
                    self.language = lang.clone();
                    self.step(name, format!("key {digit}: language {lang}"));
                    self.goto(now, next, Vec::new());
                }
                None => self.fail(now, &format!("wrong key {digit}")),
            },
            NodeConfig::Collect {
                terminator,
                max_digits,
                ..
            } => {
                if terminator.starts_with(digit) {
                    return self.finish_collect(now);
                }
                self.digits.push(digit);
                if self.digits.len() >= *max_digits {
                    self.finish_collect(now);
                } else {
                    self.arm(now, Timer::InterDigit);
                }
            }
            NodeConfig::Catalogue { next, .. } => {
                let index = digit.to_digit(10).unwrap_or(0) as usize;
                match self.offered.get(index.wrapping_sub(1)).cloned() {
                    Some(gift) => {
                        self.step(name, format!("key {digit}: gift {}", gift.id));
                        self.chosen = Some(gift);
                        self.goto(now, next, Vec::new());
                    }
                    None => self.fail(now, &format!("wrong key {digit}")),
                }
            }
            NodeConfig::Survey { next, .. } => match digit {
                '1'..='5' => {
                    let score = digit as u8 - b'0';
                    self.step(name, format!("survey {score}"));
                    self.out.push_back(Action::SurveyAnswered(score));
                    self.goto(now, next, Vec::new());
                }
                _ => self.fail(now, &format!("wrong key {digit}")),
            },
            _ => {}
        }
    }

    pub fn handle_reply(&mut self, now: Instant, reply: Reply) {
        if self.wait != Wait::Reply {
            return;
        }
        let graph = Arc::clone(&self.graph);
        let name = graph.names[self.node.0].as_str();
        match (&graph.nodes[self.node.0], reply) {
            (
                NodeConfig::Lookup {
                    what,
                    found,
                    missing,
                    ..
                },
                reply,
            ) => {
                let hit = match (what, reply) {
                    (LookupWhat::OwnerByUnit, Reply::Owner(Some(o))) => {
                        self.language = o.language.clone();
                        self.step(name, format!("owner {}", o.id));
                        self.owner = Some(o);
                        true
                    }
                    (
                        LookupWhat::LatestTicket | LookupWhat::TicketByNumber,
                        Reply::Ticket(Some(t)),
                    ) => {
                        self.step(name, format!("ticket T{} {}", t.number, t.status));
                        self.ticket = Some(t);
                        true
                    }
                    (_, r) => {
                        self.step(name, format!("not found ({r:?})"));
                        false
                    }
                };
                let to = if hit { found } else { missing };
                self.goto(now, to, Vec::new());
            }
            (NodeConfig::Ticket { next, .. }, Reply::TicketOpened(number)) => {
                self.step(name, format!("ticket T{number} opened"));
                self.opened = Some(number);
                self.ticket = Some(TicketInfo {
                    number,
                    status: "open".into(),
                    month: 0,
                    day: 0,
                });
                self.goto(now, next, Vec::new());
            }
            (NodeConfig::Ticket { .. }, _) => {
                self.step(name, "ticket not opened".into());
                let agent = self.graph.defaults.agent.clone();
                self.goto(now, &agent, Vec::new());
            }
            (NodeConfig::Catalogue { prompt, empty, .. }, Reply::Gifts(gifts)) => {
                let points = self.owner.as_ref().map(|o| o.points).unwrap_or(0);
                self.offered = gifts
                    .into_iter()
                    .filter(|g| g.points <= points)
                    .take(9)
                    .collect();
                if self.offered.is_empty() {
                    self.step(name, format!("nothing affordable with {points} points"));
                    return self.goto(now, empty, Vec::new());
                }
                let mut names = prompt.names();
                let lang = self.language.clone();
                names.extend(say::points(&lang, points));
                for (i, g) in self.offered.iter().enumerate() {
                    names.push(format!("gift_{}", g.id));
                    names.extend(say::points(&lang, g.points));
                    names.push("press".into());
                    names.push(format!("num_{}", i + 1));
                }
                self.wait = Wait::Prompt;
                self.listing = names.clone();
                self.play(names);
                self.replay_typeahead(now);
            }
            (NodeConfig::Redeem { done, refused }, Reply::Redeemed { points_left }) => {
                // Points changed: the next catalogue is read afresh.
                self.offered.clear();
                self.listing.clear();
                match points_left {
                    Some(left) => {
                        self.step(name, format!("redeemed, {left} points left"));
                        self.points_left = Some(left);
                        if let Some(o) = self.owner.as_mut() {
                            o.points = left;
                        }
                        self.goto(now, done, Vec::new());
                    }
                    None => {
                        self.step(name, "refused".into());
                        self.goto(now, refused, Vec::new());
                    }
                }
            }
            (_, _) => {
                self.step(name, "request failed".into());
                let agent = self.graph.defaults.agent.clone();
                self.goto(now, &agent, Vec::new());
            }
        }
    }

    /// Goes on at `node` (e.g. the survey once the agent has hung up);
    /// false when the menu has no such node.
    pub fn continue_at(&mut self, now: Instant, node: &str) -> bool {
        let Some(id) = self.graph.node(node) else {
            return false;
        };
        self.step(node, "after the agent".into());
        self.failures = 0;
        self.typeahead.clear();
        self.enter(now, id, Vec::new());
        true
    }

    /// Puts the session at `node` as if it had just been entered (tests).
    #[cfg(test)]
    fn jump(&mut self, now: Instant, node: &str) {
        let id = self.graph.node(node).expect("a node");
        self.failures = 0;
        self.enter(now, id, Vec::new());
    }

    /// The caller hung up: nothing more happens.
    pub fn handle_hangup(&mut self) {
        if self.wait != Wait::Done {
            let name = self.graph.names[self.node.0].clone();
            self.step(&name, "caller hung up".into());
        }
        self.wait = Wait::Done;
        self.timer = None;
    }

    // ---- inside ---------------------------------------------------------

    /// Unix ms at `now`.
    fn wall_ms(&self, now: Instant) -> i64 {
        self.started.map_or(0, |(at, ms)| {
            ms + now.saturating_duration_since(at).as_millis() as i64
        })
    }

    fn step(&mut self, node: &str, detail: String) {
        self.out.push_back(Action::Step {
            node: node.to_string(),
            detail,
        });
    }

    fn arm(&mut self, now: Instant, timer: Timer) {
        let d = &self.graph.defaults;
        let secs = match (timer, &self.graph.nodes[self.node.0]) {
            (Timer::InterDigit, _) => d.inter_digit_seconds,
            (
                Timer::NoInput,
                NodeConfig::Menu {
                    timeout_seconds: Some(t),
                    ..
                },
            ) => *t,
            (Timer::NoInput, _) => d.timeout_seconds,
        };
        self.timer = Some((now + Duration::from_secs(secs), timer));
    }

    fn play(&mut self, names: Vec<String>) {
        let lang = self.language.clone();
        let files: Vec<String> = names.into_iter().map(|n| format!("{n}_{lang}")).collect();
        let node = self.graph.names[self.node.0].clone();
        self.step(&node, format!("played {}", files.join(" ")));
        self.out.push_back(Action::Play(files));
    }

    /// `names` looped by the media edge (the hold music), told once.
    fn play_looped(&mut self, names: Vec<String>) {
        self.play_looped_after(Vec::new(), names);
    }

    /// `first` played now (whatever plays stops), then `names` looped.
    fn play_looped_after(&mut self, first: Vec<String>, names: Vec<String>) {
        let lang = self.language.clone();
        let files = |names: Vec<String>| -> Vec<String> {
            names.into_iter().map(|n| format!("{n}_{lang}")).collect()
        };
        let (first, looped) = (files(first), files(names));
        let node = self.graph.names[self.node.0].clone();
        let detail = match first.is_empty() {
            true => format!("played {} in a loop", looped.join(" ")),
            false => format!(
                "played {} then {} in a loop",
                first.join(" "),
                looped.join(" ")
            ),
        };
        self.step(&node, detail);
        self.out.push_back(Action::Loop { first, looped });
    }

    fn hang_up(&mut self) {
        if self.wait != Wait::Done {
            self.wait = Wait::Done;
            self.timer = None;
            self.out.push_back(Action::Hangup);
        }
    }

    fn goto(&mut self, now: Instant, to: &str, before: Vec<String>) {
        let target = if to == "return" {
            match self.returns.pop() {
                Some(n) => n,
                None => self
                    .graph
                    .node(&self.graph.sites[self.site].start)
                    .expect("checked"),
            }
        } else {
            self.graph.node(to).expect("checked at load")
        };
        self.failures = 0;
        self.enter(now, target, before);
    }

    /// Wrong key or silence: say so and ask again, or after the allowed
    /// retries hand the caller to the failure node (an agent by default).
    fn fail(&mut self, now: Instant, why: &str) {
        let graph = Arc::clone(&self.graph);
        let name = graph.names[self.node.0].as_str();
        let node = &graph.nodes[self.node.0];
        let d = &graph.defaults;
        let (retries, invalid, timeout, on_failure) = match &node {
            NodeConfig::Menu {
                retries,
                invalid_prompt,
                timeout_prompt,
                on_failure,
                ..
            } => (
                retries.unwrap_or(d.retries),
                invalid_prompt.clone().unwrap_or(d.invalid_prompt.clone()),
                timeout_prompt.clone().unwrap_or(d.timeout_prompt.clone()),
                on_failure.clone(),
            ),
            NodeConfig::Collect { on_failure, .. } => (
                d.retries,
                d.invalid_prompt.clone(),
                d.timeout_prompt.clone(),
                on_failure.clone(),
            ),
            // The survey is optional: silence or a wrong key moves on.
            NodeConfig::Survey { next, .. } => {
                self.step(name, format!("{why}: no rating"));
                return self.goto(now, &next.clone(), Vec::new());
            }
            _ => (
                d.retries,
                d.invalid_prompt.clone(),
                d.timeout_prompt.clone(),
                None,
            ),
        };
        self.failures += 1;
        if self.failures > retries {
            let to = on_failure.unwrap_or_else(|| self.graph.defaults.agent.clone());
            self.step(name, format!("{why}, {} times: -> {to}", self.failures));
            return self.goto(now, &to, Vec::new());
        }
        self.step(name, format!("{why} (try {})", self.failures));
        let sorry = if why == "no input" { timeout } else { invalid };
        let failures = self.failures;
        self.enter(now, self.node, sorry.names());
        self.failures = failures;
    }

    fn finish_collect(&mut self, now: Instant) {
        let name = self.graph.names[self.node.0].clone();
        let NodeConfig::Collect {
            var,
            min_digits,
            next,
            ..
        } = self.graph.nodes[self.node.0].clone()
        else {
            return;
        };
        self.timer = None;
        if self.digits.len() < min_digits {
            let why = if self.digits.is_empty() {
                "no input".to_string()
            } else {
                format!("only {} digits", self.digits.len())
            };
            self.digits.clear();
            return self.fail(now, &why);
        }
        let digits = std::mem::take(&mut self.digits);
        if var == "pin" {
            // What the caller typed is theirs: only that something was.
            self.step(&name, format!("pin = ({} digits)", digits.len()));
        } else {
            self.step(&name, format!("{var} = {digits}"));
        }
        match var.as_str() {
            "building" => self.building = digits,
            "unit" => self.unit = digits,
            "pin" => self.pin = digits,
            _ => self.typed_ticket = digits,
        }
        self.goto(now, &next, Vec::new());
    }

    /// Keys typed ahead go to the node just entered, as if pressed now.
    fn replay_typeahead(&mut self, now: Instant) {
        for digit in std::mem::take(&mut self.typeahead).chars() {
            self.handle_digit(now, digit);
        }
    }

    /// Enters `id`, playing `before` (a greeting, an apology) ahead of its prompt.
    fn enter(&mut self, now: Instant, id: NodeId, mut before: Vec<String>) {
        self.node = id;
        self.timer = None;
        self.digits.clear();
        let graph = Arc::clone(&self.graph);
        let name = graph.names[id.0].as_str();
        let node = &graph.nodes[id.0];
        let needs_owner = matches!(
            node,
            NodeConfig::Say {
                needs_owner: true,
                ..
            } | NodeConfig::Lookup {
                needs_owner: true,
                ..
            } | NodeConfig::Catalogue {
                needs_owner: true,
                ..
            }
        );
        if needs_owner && self.owner.is_none() {
            self.step(name, "caller unknown: identify first".into());
            self.returns.push(id);
            let identify = self
                .graph
                .node(&self.graph.defaults.identify)
                .expect("checked");
            return self.enter(now, identify, before);
        }
        let lang = self.language.clone();
        match node {
            NodeConfig::Menu { prompt, .. }
            | NodeConfig::Collect { prompt, .. }
            | NodeConfig::Survey { prompt, .. } => {
                before.extend(prompt.names());
                self.wait = Wait::Prompt;
                self.play(before);
                self.replay_typeahead(now);
            }
            NodeConfig::Language {
                prompt,
                next,
                skip_if_known,
                ..
            } => {
                if *skip_if_known && self.owner.is_some() {
                    self.step(name, format!("known owner: language {lang}"));
                    return self.goto(now, next, before);
                }
                before.extend(prompt.names());
                self.wait = Wait::Prompt;
                self.play(before);
                self.replay_typeahead(now);
            }
            NodeConfig::Play { prompt, .. } | NodeConfig::Record { prompt, .. } => {
                before.extend(prompt.names());
                self.wait = Wait::Prompt;
                if before.is_empty() {
                    return self.handle_prompt_finished(now);
                }
                self.play(before);
            }
            NodeConfig::Say {
                prompt,
                value,
                after,
                ..
            } => {
                before.extend(prompt.names());
                before.extend(self.spoken(*value, &lang));
                before.extend(after.names());
                self.wait = Wait::Prompt;
                self.play(before);
            }
            NodeConfig::Lookup { what, .. } => {
                // Keys typed ahead of a lookup are kept for what comes after.
                if !before.is_empty() {
                    self.play(before);
                }
                let request = match what {
                    LookupWhat::OwnerByUnit => Request::OwnerByUnit {
                        site: self.site_id().to_string(),
                        building: self.building.clone(),
                        unit: self.unit.clone(),
                        pin: std::mem::take(&mut self.pin),
                    },
                    LookupWhat::LatestTicket => Request::LatestTicket {
                        owner: self
                            .owner
                            .as_ref()
                            .map(|o| o.id.clone())
                            .unwrap_or_default(),
                    },
                    LookupWhat::TicketByNumber => Request::TicketByNumber {
                        number: self.typed_ticket.parse().unwrap_or(0),
                    },
                };
                self.wait = Wait::Reply;
                self.out.push_back(Action::Request(request));
            }
            NodeConfig::Ticket {
                category,
                severity,
                summary,
                next,
            } => {
                if let Some(number) = self.opened {
                    self.step(
                        name,
                        format!("ticket T{number} already opened in this call: no second one"),
                    );
                    return self.goto(now, next, before);
                }
                if !before.is_empty() {
                    self.play(before);
                }
                self.wait = Wait::Reply;
                self.out.push_back(Action::Request(Request::OpenTicket {
                    category: category.clone(),
                    severity: *severity,
                    summary: summary.clone(),
                    owner: self.owner.as_ref().map(|o| o.id.clone()),
                    building: self.owner.as_ref().map(|o| o.building.clone()),
                    recording: self.recording.clone(),
                }));
            }
            NodeConfig::Queue {
                queue,
                skills,
                priority,
                prompt,
                ..
            } => {
                self.step(name, format!("queue {queue} priority {priority}"));
                self.ringing = false;
                self.out.push_back(Action::Queue {
                    queue: queue.clone(),
                    skills: skills.clone(),
                    priority: *priority,
                    language: lang,
                    owner: self.owner.as_ref().map(|o| o.id.clone()),
                    class: self.owner.as_ref().map(|o| o.class),
                });
                if self.queue_waits {
                    // Only the hold prompt while waiting (looped); the rest
                    // is for when no agent comes. Waiting starts now: 0 and
                    // announcements are taken during the first hold prompt.
                    before.extend(self.hold_prompt());
                    self.wait = Wait::Queued;
                } else {
                    before.extend(prompt.names());
                    self.wait = Wait::Prompt;
                }
                if before.is_empty() {
                    return self.hang_up();
                }
                self.play(before);
            }
            NodeConfig::Catalogue { .. } => {
                if !self.listing.is_empty() {
                    // Again (a wrong key, `*`, or back from confirming).
                    before.extend(self.listing.clone());
                    self.wait = Wait::Prompt;
                    return self.play(before);
                }
                if !before.is_empty() {
                    self.play(before);
                }
                self.wait = Wait::Reply;
                self.out.push_back(Action::Request(Request::Gifts));
            }
            NodeConfig::Redeem { .. } => {
                if !before.is_empty() {
                    self.play(before);
                }
                let (Some(owner), Some(gift)) = (self.owner.clone(), self.chosen.clone()) else {
                    self.step(name, "no owner or no gift chosen".into());
                    let agent = self.graph.defaults.agent.clone();
                    return self.goto(now, &agent, Vec::new());
                };
                self.redemptions += 1;
                self.wait = Wait::Reply;
                self.out.push_back(Action::Request(Request::Redeem {
                    owner: owner.id,
                    gift: gift.id,
                    attempt: self.redemptions,
                }));
            }
            NodeConfig::Hours {
                open,
                closed,
                holiday,
            } => {
                let opening = graph.opening(self.site, self.wall_ms(now));
                let to = match (opening, holiday) {
                    (Opening::Open, _) => open,
                    (Opening::Holiday(_), Some(holiday)) => holiday,
                    _ => closed,
                };
                let detail = match opening {
                    Opening::Holiday(day) => format!("holiday ({day}) -> {to}"),
                    other => format!("{} -> {to}", other.as_str()),
                };
                self.step(name, detail);
                self.goto(now, to, before);
            }
            NodeConfig::Hangup { prompt } => {
                before.extend(prompt.names());
                if before.is_empty() {
                    return self.hang_up();
                }
                self.wait = Wait::Ending;
                self.play(before);
            }
        }
    }

    /// The fragments a `say` node speaks.
    fn spoken(&self, value: SayValue, lang: &str) -> Vec<String> {
        let owner = self.owner.as_ref();
        match value {
            SayValue::FeeBalance => {
                say::money(lang, owner.map(|o| o.fee_balance_cents).unwrap_or(0))
            }
            SayValue::Points => say::points(lang, owner.map(|o| o.points).unwrap_or(0)),
            SayValue::PointsLeft => say::points(lang, self.points_left.unwrap_or(0)),
            SayValue::TicketNumber => self
                .ticket
                .as_ref()
                .map(|t| say::ticket(lang, t.number))
                .unwrap_or_default(),
            SayValue::TicketStatus => self
                .ticket
                .as_ref()
                .map(|t| vec![format!("status_{}", t.status)])
                .unwrap_or_default(),
            SayValue::TicketDate => self
                .ticket
                .as_ref()
                .filter(|t| t.month > 0)
                .map(|t| say::date(lang, t.month, t.day))
                .unwrap_or_default(),
        }
    }
}

/// Prompts a say node's value may need beyond the numbers (checked at load).
pub fn value_prompts(value: SayValue) -> Vec<String> {
    match value {
        SayValue::TicketStatus => ["open", "dispatched", "resolved", "closed"]
            .iter()
            .map(|s| format!("status_{s}"))
            .collect(),
        _ => Vec::new(),
    }
}

/// Prompts the catalogue speaks besides its own (the gifts' names are
/// checked when the runtime loads the catalogue).
pub const CATALOGUE_PROMPTS: [&str; 1] = ["press"];

#[cfg(test)]
mod tests;

#[cfg(test)]
mod words {
    #[test]
    fn menu_steps_in_words() {
        assert_eq!(
            super::step_words("main", "key 1 -> self_service").as_deref(),
            Some("main: pressed 1 → self service")
        );
        assert_eq!(
            super::step_words("fee_balance", "key 0: agent").as_deref(),
            Some("fee balance: pressed 0: agent")
        );
        assert_eq!(super::step_words("main", "played main_menu_zh"), None);
        assert_eq!(
            super::step_words("agent", "played ringback_zh in a loop"),
            None
        );
        assert_eq!(super::step_words("start", "site garden"), None);
        assert_eq!(super::step_words("agent", "queue general priority 0"), None);
    }
}
