//! The router core (see the module doc of `acd`).

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Duration, Instant};

use super::{AgentId, CallId, Language, QueueId, SkillId};

/// Languages a queue is split into (see the module doc).
const LANGS: u16 = Language::ALL.len() as u16;

/// The skill `s` in language `l`, as the index knows it.
fn in_language(s: SkillId, l: Language) -> SkillId {
    SkillId(s.0 * LANGS + l as u16)
}

/// The queue `q` for callers of language `l`.
fn queue_in(q: QueueId, l: Language) -> QueueId {
    QueueId(q.0 * LANGS + l as u16)
}

/// Skill levels run 0..=10.
const LEVELS: usize = 11;

/// Hashes the engine's own integer ids (agents, calls): a multiply, not
/// SipHash. The ids are ours, not an attacker's, so flooding is no concern.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(n as u64);
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(29);
    }
}

type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

#[derive(Debug, Clone)]
pub struct AcdConfig {
    /// Ringing an agent this long without an answer is a miss.
    pub offer_timeout: Duration,
    /// Misses in a row that pause an agent with reason `no-answer`.
    pub max_misses: u32,
    /// How long a caller with an open ticket waits for the agent who
    /// handled it before anyone may take the call.
    pub sticky_wait: Duration,
    /// After a miss the agent is not offered another call for this long
    /// (a phone that refuses at once would otherwise use up every miss in
    /// milliseconds).
    pub miss_rest: Duration,
    /// Agents are offered calls only while their phone is registered
    /// ([`Router::handle_phone`]); false: every agent has one (tests).
    pub phones_required: bool,
    /// A callback's offer also waits this long for the owner to answer
    /// the hotline's call (the owner is called first).
    pub callback_ring: Duration,
}

impl Default for AcdConfig {
    fn default() -> Self {
        Self {
            offer_timeout: Duration::from_secs(15),
            max_misses: 3,
            sticky_wait: Duration::from_secs(20),
            miss_rest: Duration::ZERO,
            phones_required: false,
            callback_ring: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub id: AgentId,
    /// (skill, level 0-10).
    pub skills: Vec<(SkillId, u8)>,
    /// Languages the agent serves callers in.
    pub languages: Vec<Language>,
    pub wrap_up: Duration,
}

#[derive(Debug, Clone)]
pub struct QueueConfig {
    pub id: QueueId,
    pub skill: SkillId,
    /// Agents at this level or above are the best fit.
    pub good_level: u8,
    /// Agents at this level or above may take calls (after the good ones).
    pub min_level: u8,
    /// Once the head call has waited this long, down to `widened_level`,
    /// and agents of the `neighbours` skills at that level join (after
    /// every agent of the queue's own skill).
    pub widen_after: Duration,
    pub widened_level: u8,
    pub neighbours: Vec<SkillId>,
    /// A call waiting this long leaves for the fallback (a voice message).
    pub max_wait: Duration,
    /// What a caller does when nobody who could take the call is logged
    /// in (Asterisk's joinempty/leavewhenempty).
    pub when_empty: WhenEmpty,
}

/// A queue with nobody logged in who could serve it (with a registered
/// phone; paused agents count, they come back).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenEmpty {
    /// Callers go to the queue's fallback at once, told why; callers
    /// waiting when the last agent leaves go too.
    #[default]
    Fallback,
    /// Callers wait (up to the queue's longest wait) for someone to log in.
    Wait,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentState {
    LoggedOut,
    Available {
        since: Instant,
    },
    /// Their phone rings with `call` until `until`.
    Reserved {
        call: CallId,
        until: Instant,
    },
    OnCall {
        call: CallId,
    },
    WrapUp {
        until: Instant,
    },
    Paused {
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeftReason {
    /// The caller hung up while waiting (or while an agent's phone rang).
    Abandoned,
    /// Nobody is logged in who could take the call (`WhenEmpty::Fallback`).
    NoAgents,
    /// Waited `max_wait`: to the fallback.
    MaxWait,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcdOutput {
    /// Ring `agent` with `call`.
    Offer {
        call: CallId,
        agent: AgentId,
    },
    /// The agent a call is transferred to cannot take it now.
    TransferRefused {
        call: CallId,
        agent: AgentId,
    },
    /// Stop ringing `agent` (caller gone, agent logged out or timed out).
    Withdraw {
        call: CallId,
        agent: AgentId,
    },
    /// The agent answered: bridge them.
    Connected {
        call: CallId,
        agent: AgentId,
    },
    /// The call leaves the ACD without an agent.
    Left {
        call: CallId,
        reason: LeftReason,
    },
    AgentChanged {
        agent: AgentId,
        state: AgentState,
    },
    /// The agent let the offer go: refused, or rang out (a no-answer).
    Missed {
        call: CallId,
        agent: AgentId,
    },
}

#[derive(Debug)]
struct Agent {
    cfg: AgentConfig,
    state: AgentState,
    misses: u32,
    /// Log out once the current call is over.
    logout_after_call: bool,
    generation: u32,
    /// A phone is registered to ring.
    phone: bool,
    /// Resting after a miss: available, not offered calls until then.
    resting_until: Option<Instant>,
    /// While reserved: when the offer was made, their idle time from then
    /// when it is withdrawn through no fault of theirs.
    idle_since: Option<Instant>,
}

impl Agent {
    /// Whether an available agent may be offered a call now.
    fn offerable(&self) -> bool {
        self.phone && self.resting_until.is_none()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Where {
    /// In its queue's waiting set.
    Queued,
    /// Held for the agent who handled the caller's open ticket.
    Sticky {
        agent: AgentId,
    },
    Offered {
        agent: AgentId,
    },
}

#[derive(Debug)]
struct Waiting {
    queue: QueueId,
    priority: u8,
    since: Instant,
    at: Where,
    /// The caller hung up to be called back, keeping this place: no
    /// maximum wait, and the owner is called before the agent's phone.
    callback: bool,
}

/// Ordering of a queue's waiting set: priority high first, then arrival.
type WaitKey = (Reverse<u8>, Instant, CallId);

#[derive(Debug)]
struct Queue {
    cfg: QueueConfig,
    waiting: BTreeSet<WaitKey>,
    /// The earliest widening timer armed and not yet fired.
    widen_at: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKind {
    OfferTimeout(AgentId),
    WrapUpOver(AgentId),
    Rested(AgentId),
    StickyOver(CallId),
    MaxWait(CallId),
    Widen(QueueId),
}

pub struct Router {
    cfg: AcdConfig,
    agents: IdMap<AgentId, Agent>,
    queues: Vec<Queue>,
    calls: IdMap<CallId, Waiting>,
    /// Per skill, per level: available agents by idle time.
    available: Vec<[BTreeSet<(Instant, AgentId)>; LEVELS]>,
    /// Queues each skill serves, and queues it serves once widened.
    queues_of_skill: Vec<Vec<QueueId>>,
    neighbour_queues_of_skill: Vec<Vec<QueueId>>,
    /// Calls held for a particular agent, oldest first.
    sticky: IdMap<AgentId, VecDeque<CallId>>,
    /// Calls an agent transfers to another, ringing that agent: not
    /// waiting in any queue (a miss does not route them again).
    transfers: IdMap<CallId, AgentId>,
    timers: BinaryHeap<Reverse<(Instant, TimerKind, u32)>>,
    out: VecDeque<AcdOutput>,
}

impl Router {
    pub fn new(cfg: AcdConfig, queues: Vec<QueueConfig>, agents: Vec<AgentConfig>) -> Self {
        let phones_required = cfg.phones_required;
        // One queue per (queue, language), one skill per (skill, language).
        let queues: Vec<QueueConfig> = queues
            .into_iter()
            .flat_map(|q| {
                Language::ALL.map(|l| QueueConfig {
                    id: queue_in(q.id, l),
                    skill: in_language(q.skill, l),
                    neighbours: q.neighbours.iter().map(|n| in_language(*n, l)).collect(),
                    ..q.clone()
                })
            })
            .collect();
        let agents: Vec<AgentConfig> = agents
            .into_iter()
            .map(|a| AgentConfig {
                skills: a
                    .skills
                    .iter()
                    .flat_map(|&(s, level)| {
                        a.languages.iter().map(move |l| (in_language(s, *l), level))
                    })
                    .collect(),
                ..a
            })
            .collect();
        let skills = queues
            .iter()
            .flat_map(|q| std::iter::once(q.skill).chain(q.neighbours.iter().copied()))
            .map(|s| s.0 as usize + 1)
            .chain(
                agents
                    .iter()
                    .flat_map(|a| a.skills.iter().map(|(s, _)| s.0 as usize + 1)),
            )
            .max()
            .unwrap_or(0);
        let mut queues_of_skill = vec![Vec::new(); skills];
        let mut neighbour_queues_of_skill = vec![Vec::new(); skills];
        let mut qs = Vec::with_capacity(queues.len());
        for (i, q) in queues.into_iter().enumerate() {
            debug_assert_eq!(q.id.0 as usize, i, "queue ids are their index");
            queues_of_skill[q.skill.0 as usize].push(q.id);
            for n in &q.neighbours {
                if *n != q.skill {
                    neighbour_queues_of_skill[n.0 as usize].push(q.id);
                }
            }
            qs.push(Queue {
                cfg: q,
                waiting: BTreeSet::new(),
                widen_at: None,
            });
        }
        Self {
            cfg,
            agents: agents
                .into_iter()
                .map(|a| {
                    (
                        a.id,
                        Agent {
                            cfg: a,
                            state: AgentState::LoggedOut,
                            misses: 0,
                            logout_after_call: false,
                            generation: 0,
                            phone: !phones_required,
                            resting_until: None,
                            idle_since: None,
                        },
                    )
                })
                .collect(),
            queues: qs,
            calls: IdMap::default(),
            available: (0..skills).map(|_| Default::default()).collect(),
            queues_of_skill,
            neighbour_queues_of_skill,
            sticky: IdMap::default(),
            transfers: IdMap::default(),
            timers: BinaryHeap::new(),
            out: VecDeque::new(),
        }
    }

    pub fn poll_output(&mut self) -> Option<AcdOutput> {
        self.out.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Every agent the router knows, with their state (logged out ones too).
    pub fn agent_states(&self) -> impl Iterator<Item = (AgentId, &AgentState)> {
        self.agents.iter().map(|(id, a)| (*id, &a.state))
    }

    pub fn agent_state(&self, agent: AgentId) -> Option<&AgentState> {
        self.agents.get(&agent).map(|a| &a.state)
    }

    /// Calls waiting in `queue`, every language (held sticky calls not counted).
    pub fn waiting(&self, queue: QueueId) -> usize {
        Language::ALL
            .iter()
            .filter_map(|l| self.queues.get(queue_in(queue, *l).0 as usize))
            .map(|q| q.waiting.len())
            .sum()
    }

    /// Whether `call` waits (or rings an agent) as a callback.
    pub fn is_callback(&self, call: CallId) -> bool {
        self.calls.get(&call).is_some_and(|w| w.callback)
    }

    /// The caller's place in its queue (1 = next), for announcements.
    pub fn position(&self, call: CallId) -> Option<usize> {
        let w = self.calls.get(&call)?;
        if w.at != Where::Queued {
            return None;
        }
        let q = &self.queues[w.queue.0 as usize];
        Some(
            q.waiting
                .range(..(Reverse(w.priority), w.since, call))
                .count()
                + 1,
        )
    }

    // ---- events ------------------------------------------------------------

    /// A caller enters `queue`, to be served in `language`. `sticky`: the
    /// agent who handled their open ticket, who gets the first chance for
    /// `sticky_wait`.
    pub fn handle_call_queued(
        &mut self,
        now: Instant,
        call: CallId,
        queue: QueueId,
        language: Language,
        priority: u8,
        sticky: Option<AgentId>,
    ) {
        self.queue_call(now, call, queue, language, priority, sticky, false);
    }

    /// A caller whose transfer found nobody (their first agent gone) is
    /// back in `queue`, ahead of every caller of the same priority.
    pub fn handle_call_requeued(
        &mut self,
        now: Instant,
        call: CallId,
        queue: QueueId,
        language: Language,
        priority: u8,
    ) {
        self.queue_call(now, call, queue, language, priority, None, true);
    }

    #[allow(clippy::too_many_arguments)] // one caller's whole entry
    fn queue_call(
        &mut self,
        now: Instant,
        call: CallId,
        queue: QueueId,
        language: Language,
        priority: u8,
        sticky: Option<AgentId>,
        ahead: bool,
    ) {
        let queue = queue_in(queue, language);
        if self.calls.contains_key(&call) || queue.0 as usize >= self.queues.len() {
            return;
        }
        let cfg = &self.queues[queue.0 as usize].cfg;
        if cfg.when_empty == WhenEmpty::Fallback && !self.staffed(cfg) {
            self.out.push_back(AcdOutput::Left {
                call,
                reason: LeftReason::NoAgents,
            });
            return;
        }
        let max_wait = cfg.max_wait;
        let since = match ahead {
            true => self
                .head_of(queue, priority)
                .and_then(|head| head.checked_sub(Duration::from_millis(1)))
                .unwrap_or(now)
                .min(now),
            false => now,
        };
        self.calls.insert(
            call,
            Waiting {
                queue,
                priority,
                since,
                at: Where::Queued,
                callback: false,
            },
        );
        self.timers
            .push(Reverse((now + max_wait, TimerKind::MaxWait(call), 0)));
        // Their agent is worth waiting for only when they will be free soon
        // (ringing, on a call, in wrap-up); paused or logged out: no wait.
        if let Some(agent) = sticky.filter(|a| {
            self.agents.get(a).is_some_and(|a| {
                a.phone && !matches!(a.state, AgentState::LoggedOut | AgentState::Paused { .. })
            })
        }) {
            let a = &self.agents[&agent];
            if matches!(a.state, AgentState::Available { .. }) && a.offerable() {
                return self.offer(now, call, agent);
            }
            self.calls.get_mut(&call).expect("inserted").at = Where::Sticky { agent };
            self.sticky.entry(agent).or_default().push_back(call);
            self.timers.push(Reverse((
                now + self.cfg.sticky_wait,
                TimerKind::StickyOver(call),
                0,
            )));
            return;
        }
        self.enqueue(call);
        self.route_queue(now, queue);
    }

    /// The caller hung up to be called back: the call keeps its place (its
    /// arrival and priority) and no longer leaves at the maximum wait.
    /// False when it is not waiting (an agent is ringing or it left).
    pub fn handle_callback_kept(&mut self, call: CallId) -> bool {
        match self.calls.get_mut(&call) {
            Some(w) if w.at == Where::Queued || matches!(w.at, Where::Sticky { .. }) => {
                w.callback = true;
                true
            }
            _ => false,
        }
    }

    /// A callback joins `queue` with the place it had: it arrived `since`
    /// (after the owner did not answer, or after a restart).
    pub fn handle_callback_queued(
        &mut self,
        now: Instant,
        call: CallId,
        queue: QueueId,
        language: Language,
        priority: u8,
        since: Instant,
    ) {
        let queue = queue_in(queue, language);
        if self.calls.contains_key(&call) || queue.0 as usize >= self.queues.len() {
            return;
        }
        self.calls.insert(
            call,
            Waiting {
                queue,
                priority,
                since: since.min(now),
                at: Where::Queued,
                callback: true,
            },
        );
        self.enqueue(call);
        self.route_queue(now, queue);
    }

    /// The owner did not answer the callback: the agent reserved for it is
    /// free again at once (no miss: not their fault) and the callback
    /// leaves the queue (to be queued again, in its place, later). Wherever
    /// it is: an agent who left meanwhile put it back in line.
    pub fn handle_callback_unanswered(&mut self, now: Instant, call: CallId) {
        if !self.calls.get(&call).is_some_and(|w| w.callback) {
            return;
        }
        let w = self.calls.remove(&call).expect("checked");
        match w.at {
            Where::Offered { agent } => self.set_available(now, agent, None),
            Where::Queued => {
                self.queues[w.queue.0 as usize].waiting.remove(&(
                    Reverse(w.priority),
                    w.since,
                    call,
                ));
                self.route_queue(now, w.queue);
            }
            Where::Sticky { agent } => self.unstick(agent, call),
        }
    }

    /// A callback no longer wanted (cancelled, or its owner reached another
    /// way): it leaves its queue as an abandoned call does.
    pub fn handle_callback_dropped(&mut self, now: Instant, call: CallId) {
        if let Some(w) = self.calls.get_mut(&call) {
            w.callback = false;
        }
        self.handle_call_abandoned(now, call);
    }

    /// The caller hung up (while waiting or while an agent's phone rang).
    pub fn handle_call_abandoned(&mut self, now: Instant, call: CallId) {
        if let Some(agent) = self.transfers.remove(&call) {
            if matches!(self.agents.get(&agent).map(|a| &a.state), Some(AgentState::Reserved { call: c, .. }) if *c == call)
            {
                self.out.push_back(AcdOutput::Withdraw { call, agent });
                self.set_available(now, agent, None);
            }
            return;
        }
        if self
            .calls
            .get(&call)
            .is_some_and(|w| w.callback && !matches!(w.at, Where::Offered { .. }))
        {
            // The caller who hung up to be called back: the place waits on.
            return;
        }
        let Some(w) = self.calls.remove(&call) else {
            return;
        };
        match w.at {
            Where::Queued => {
                self.queues[w.queue.0 as usize].waiting.remove(&(
                    Reverse(w.priority),
                    w.since,
                    call,
                ));
                self.route_queue(now, w.queue); // the head may have changed
            }
            Where::Sticky { agent } => self.unstick(agent, call),
            Where::Offered { agent } => {
                self.out.push_back(AcdOutput::Withdraw { call, agent });
                // Not the agent's fault: no miss, and back to work at once,
                // keeping their place in the idle order.
                self.set_available(now, agent, None);
            }
        }
        self.out.push_back(AcdOutput::Left {
            call,
            reason: LeftReason::Abandoned,
        });
    }

    pub fn handle_login(&mut self, now: Instant, agent: AgentId) {
        if self
            .agents
            .get(&agent)
            .is_some_and(|a| a.state == AgentState::LoggedOut)
        {
            self.set_available(now, agent, Some(now));
        }
    }

    /// The agent's phone registered (or its registration is gone): only
    /// agents with a phone are offered calls.
    pub fn handle_phone(&mut self, now: Instant, agent: AgentId, registered: bool) {
        let Some(a) = self.agents.get_mut(&agent) else {
            return;
        };
        if a.phone == registered {
            return;
        }
        if !registered {
            self.unavailable(agent);
        }
        let a = self.agents.get_mut(&agent).expect("known agent");
        a.phone = registered;
        if let (true, true, AgentState::Available { since }) =
            (registered, a.offerable(), a.state.clone())
        {
            self.index(agent, since);
            self.route_agent(now, agent);
        }
        if !registered {
            self.send_off_where_empty();
        }
    }

    /// Whether the agent's phone is registered.
    pub fn has_phone(&self, agent: AgentId) -> bool {
        self.agents.get(&agent).is_some_and(|a| a.phone)
    }

    /// Ready after a pause (or a login).
    pub fn handle_ready(&mut self, now: Instant, agent: AgentId) {
        let Some(a) = self.agents.get_mut(&agent) else {
            return;
        };
        match a.state {
            AgentState::Paused { .. } | AgentState::LoggedOut => {
                a.misses = 0;
                self.set_available(now, agent, Some(now));
            }
            AgentState::WrapUp { .. } => self.set_available(now, agent, Some(now)),
            _ => {}
        }
    }

    pub fn handle_pause(&mut self, now: Instant, agent: AgentId, reason: &str) {
        self.leave(
            now,
            agent,
            AgentState::Paused {
                reason: reason.to_string(),
            },
        );
    }

    /// Logged out (by the agent, a supervisor, or an expired registration).
    pub fn handle_logout(&mut self, now: Instant, agent: AgentId) {
        self.leave(now, agent, AgentState::LoggedOut);
    }

    /// The agent's phone answered the offer.
    pub fn handle_answered(&mut self, now: Instant, call: CallId, agent: AgentId) {
        let Some(a) = self.agents.get_mut(&agent) else {
            return;
        };
        if !matches!(a.state, AgentState::Reserved { call: c, .. } if c == call) {
            return; // withdrawn meanwhile
        }
        a.misses = 0;
        a.generation += 1;
        self.calls.remove(&call);
        self.transfers.remove(&call);
        self.set_state(agent, AgentState::OnCall { call });
        self.out.push_back(AcdOutput::Connected { call, agent });
        let _ = now;
    }

    /// An agent on `call` transfers it to `agent`: rung at once when free
    /// (reserved as for any offer), else `TransferRefused`. The call waits
    /// in no queue meanwhile; whatever becomes of the ring, the switch
    /// decides where the caller goes next.
    pub fn handle_transfer(&mut self, now: Instant, call: CallId, agent: AgentId) {
        let free = self
            .agents
            .get(&agent)
            .is_some_and(|a| matches!(a.state, AgentState::Available { .. }) && a.offerable());
        if !free || self.calls.contains_key(&call) || self.transfers.contains_key(&call) {
            self.out
                .push_back(AcdOutput::TransferRefused { call, agent });
            return;
        }
        self.transfers.insert(call, agent);
        self.unavailable(agent);
        let until = now + self.cfg.offer_timeout;
        let a = self.agents.get_mut(&agent).expect("checked");
        a.idle_since = Some(now);
        a.generation += 1;
        let generation = a.generation;
        self.set_state(agent, AgentState::Reserved { call, until });
        self.timers
            .push(Reverse((until, TimerKind::OfferTimeout(agent), generation)));
        self.out.push_back(AcdOutput::Offer { call, agent });
    }

    /// The agent's phone refused (486, 603) or failed: a miss, and the call
    /// goes to someone else.
    pub fn handle_refused(&mut self, now: Instant, call: CallId, agent: AgentId) {
        if matches!(self.agents.get(&agent).map(|a| &a.state), Some(AgentState::Reserved { call: c, .. }) if *c == call)
        {
            self.miss(now, agent, call);
        }
    }

    /// The bridged call ended: the agent wraps up.
    pub fn handle_call_ended(&mut self, now: Instant, agent: AgentId) {
        let Some(a) = self.agents.get_mut(&agent) else {
            return;
        };
        if !matches!(a.state, AgentState::OnCall { .. }) {
            return;
        }
        if a.logout_after_call {
            a.logout_after_call = false;
            return self.set_state(agent, AgentState::LoggedOut);
        }
        let until = now + a.cfg.wrap_up;
        a.generation += 1;
        let generation = a.generation;
        if a.cfg.wrap_up.is_zero() {
            return self.set_available(now, agent, Some(now));
        }
        self.set_state(agent, AgentState::WrapUp { until });
        self.timers
            .push(Reverse((until, TimerKind::WrapUpOver(agent), generation)));
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&Reverse((at, kind, generation))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            match kind {
                TimerKind::OfferTimeout(agent) => {
                    if let Some(a) = self.agents.get(&agent)
                        && a.generation == generation
                        && let AgentState::Reserved { call, .. } = a.state
                    {
                        self.out.push_back(AcdOutput::Withdraw { call, agent });
                        self.miss(now, agent, call);
                    }
                }
                TimerKind::WrapUpOver(agent) => {
                    if let Some(a) = self.agents.get(&agent)
                        && a.generation == generation
                        && matches!(a.state, AgentState::WrapUp { .. })
                    {
                        self.set_available(now, agent, Some(now));
                    }
                }
                TimerKind::Rested(agent) => {
                    // Whatever happened meanwhile, the rest is over.
                    if let Some(a) = self.agents.get_mut(&agent)
                        && a.resting_until.is_some_and(|until| until <= now)
                    {
                        a.resting_until = None;
                        if let (true, AgentState::Available { since }) = (a.offerable(), &a.state) {
                            let since = *since;
                            self.index(agent, since);
                            self.route_agent_if_available(now, agent);
                        }
                    }
                }
                TimerKind::StickyOver(call) => {
                    if let Some(w) = self.calls.get(&call)
                        && let Where::Sticky { agent } = w.at
                    {
                        let queue = w.queue;
                        self.unstick(agent, call);
                        self.enqueue(call);
                        self.route_queue(now, queue);
                    }
                }
                TimerKind::MaxWait(call) => {
                    let Some(w) = self.calls.get(&call).filter(|w| !w.callback) else {
                        continue;
                    };
                    match w.at {
                        Where::Queued => {
                            let (queue, key) = (w.queue, (Reverse(w.priority), w.since, call));
                            self.queues[queue.0 as usize].waiting.remove(&key);
                            self.calls.remove(&call);
                            self.out.push_back(AcdOutput::Left {
                                call,
                                reason: LeftReason::MaxWait,
                            });
                            self.route_queue(now, queue);
                        }
                        Where::Sticky { agent } => {
                            self.unstick(agent, call);
                            self.calls.remove(&call);
                            self.out.push_back(AcdOutput::Left {
                                call,
                                reason: LeftReason::MaxWait,
                            });
                        }
                        // Ringing now: judged again when the offer comes back.
                        Where::Offered { .. } => {
                            self.timers.push(Reverse((
                                now + self.cfg.offer_timeout,
                                TimerKind::MaxWait(call),
                                0,
                            )));
                        }
                    }
                }
                TimerKind::Widen(queue) => {
                    let q = &mut self.queues[queue.0 as usize];
                    if q.widen_at.is_some_and(|armed| armed <= now) {
                        q.widen_at = None;
                    }
                    self.route_queue(now, queue);
                }
            }
        }
    }

    // ---- matching ----------------------------------------------------------

    /// Offers the queue's head calls while an agent fits them.
    fn route_queue(&mut self, now: Instant, queue: QueueId) {
        loop {
            let q = &self.queues[queue.0 as usize];
            let Some(&(_, since, call)) = q.waiting.first() else {
                return;
            };
            let widened = now.saturating_duration_since(since) >= q.cfg.widen_after;
            match self.best_agent(&q.cfg, widened) {
                Some(agent) => self.offer(now, call, agent),
                None => {
                    let at = since + q.cfg.widen_after;
                    // Look again when the head may take more agents. One
                    // timer per queue is enough: an earlier one re-arms for
                    // whatever head is there when it fires.
                    if !widened && q.widen_at.is_none_or(|armed| at < armed) {
                        self.queues[queue.0 as usize].widen_at = Some(at);
                        self.timers.push(Reverse((at, TimerKind::Widen(queue), 0)));
                    }
                    return;
                }
            }
        }
    }

    /// The longest-idle available agent of the best tier for this queue.
    fn best_agent(&self, q: &QueueConfig, widened: bool) -> Option<AgentId> {
        let levels = self.available.get(q.skill.0 as usize)?;
        let floor = if widened {
            q.widened_level.min(q.min_level)
        } else {
            q.min_level
        };
        let tiers = [
            (q.good_level as usize)..LEVELS,
            (floor as usize)..(q.good_level as usize).max(floor as usize),
        ];
        for tier in tiers {
            let best = levels[tier]
                .iter()
                .filter_map(|set| set.first())
                .min()
                .map(|&(_, agent)| agent);
            if best.is_some() {
                return best;
            }
        }
        if !widened {
            return None;
        }
        // Tier 3: neighbouring skills, longest idle first.
        q.neighbours
            .iter()
            .filter(|n| **n != q.skill)
            .filter_map(|n| self.available.get(n.0 as usize))
            .flat_map(|levels| levels[(q.widened_level as usize).min(LEVELS - 1)..].iter())
            .filter_map(|set| set.first())
            .min()
            .map(|&(_, agent)| agent)
    }

    /// What an agent may take: their sticky calls first, then the best head
    /// among the queues their skills serve.
    fn route_agent(&mut self, now: Instant, agent: AgentId) {
        if let Some((call, queue)) = self.call_for(now, agent) {
            self.offer(now, call, agent);
            if let Some(queue) = queue {
                // A new head: it may fit someone else, or need its widening timer.
                self.route_queue(now, queue);
            }
        }
    }

    /// The call `agent` should take now (and the queue it heads), if any.
    /// A sticky call is taken off the agent's list here.
    fn call_for(&mut self, now: Instant, agent: AgentId) -> Option<(CallId, Option<QueueId>)> {
        if let Some(list) = self.sticky.get_mut(&agent)
            && let Some(call) = list.pop_front()
        {
            if list.is_empty() {
                self.sticky.remove(&agent);
            }
            return Some((call, None));
        }
        let a = &self.agents[&agent];
        let mut best: Option<(WaitKey, QueueId)> = None;
        for &(skill, level) in &a.cfg.skills {
            for &queue in self
                .queues_of_skill
                .get(skill.0 as usize)
                .into_iter()
                .flatten()
            {
                let q = &self.queues[queue.0 as usize];
                let Some(&head) = q.waiting.first() else {
                    continue;
                };
                if best.is_some_and(|(b, _)| b < head) {
                    continue; // cannot beat the best so far
                }
                let widened = now.saturating_duration_since(head.1) >= q.cfg.widen_after;
                let floor = if widened {
                    q.cfg.widened_level.min(q.cfg.min_level)
                } else {
                    q.cfg.min_level
                };
                if level < floor {
                    continue;
                }
                // A better-fitting agent who is free takes precedence.
                if level < q.cfg.good_level
                    && self
                        .best_agent(&q.cfg, widened)
                        .is_some_and(|other| other != agent)
                {
                    continue;
                }
                best = Some((head, queue));
            }
            // Queues this skill serves as a neighbour, once widened, when
            // no agent of their own skill is free.
            for &queue in self
                .neighbour_queues_of_skill
                .get(skill.0 as usize)
                .into_iter()
                .flatten()
            {
                let q = &self.queues[queue.0 as usize];
                let Some(&head) = q.waiting.first() else {
                    continue;
                };
                if best.is_some_and(|(b, _)| b < head)
                    || level < q.cfg.widened_level
                    || now.saturating_duration_since(head.1) < q.cfg.widen_after
                    || self
                        .best_agent(&q.cfg, true)
                        .is_some_and(|other| other != agent)
                {
                    continue;
                }
                best = Some((head, queue));
            }
        }
        best.map(|((_, _, call), queue)| (call, Some(queue)))
    }

    fn offer(&mut self, now: Instant, call: CallId, agent: AgentId) {
        let Some(w) = self.calls.get_mut(&call) else {
            return;
        };
        if w.at == Where::Queued {
            self.queues[w.queue.0 as usize]
                .waiting
                .remove(&(Reverse(w.priority), w.since, call));
        }
        w.at = Where::Offered { agent };
        let ring = match w.callback {
            true => self.cfg.offer_timeout + self.cfg.callback_ring,
            false => self.cfg.offer_timeout,
        };
        self.unavailable(agent);
        let until = now + ring;
        let a = self
            .agents
            .get_mut(&agent)
            .expect("offered to a known agent");
        a.idle_since = Some(now);
        a.generation += 1;
        let generation = a.generation;
        self.set_state(agent, AgentState::Reserved { call, until });
        self.timers
            .push(Reverse((until, TimerKind::OfferTimeout(agent), generation)));
        self.out.push_back(AcdOutput::Offer { call, agent });
    }

    /// The offer to `agent` came back unanswered: a miss, and the call is
    /// routed again (keeping its place).
    fn miss(&mut self, now: Instant, agent: AgentId, call: CallId) {
        self.out.push_back(AcdOutput::Missed { call, agent });
        self.transfers.remove(&call);
        let a = self.agents.get_mut(&agent).expect("known agent");
        a.misses += 1;
        a.generation += 1;
        let paused = a.misses >= self.cfg.max_misses;
        if paused {
            self.set_state(
                agent,
                AgentState::Paused {
                    reason: "no-answer".into(),
                },
            );
        } else {
            // To the back of the idle order: others are tried first, and
            // this agent not again before the rest is over.
            if !self.cfg.miss_rest.is_zero() {
                let until = now + self.cfg.miss_rest;
                a.resting_until = Some(until);
                self.timers
                    .push(Reverse((until, TimerKind::Rested(agent), 0)));
            }
            self.set_available_no_route(now, agent, Some(now));
        }
        self.requeue(now, call);
        if !paused {
            self.route_agent_if_available(now, agent);
        }
    }

    /// The arrival of the first caller of `priority` waiting in `queue`.
    fn head_of(&self, queue: QueueId, priority: u8) -> Option<Instant> {
        self.queues[queue.0 as usize]
            .waiting
            .iter()
            .find(|(p, _, _)| p.0 == priority)
            .map(|&(_, since, _)| since)
    }

    fn requeue(&mut self, now: Instant, call: CallId) {
        let Some(w) = self.calls.get_mut(&call) else {
            return;
        };
        let queue = w.queue;
        self.enqueue(call);
        self.route_queue(now, queue);
    }

    fn enqueue(&mut self, call: CallId) {
        let w = self.calls.get_mut(&call).expect("known call");
        w.at = Where::Queued;
        self.queues[w.queue.0 as usize]
            .waiting
            .insert((Reverse(w.priority), w.since, call));
    }

    fn unstick(&mut self, agent: AgentId, call: CallId) {
        if let Some(list) = self.sticky.get_mut(&agent) {
            list.retain(|c| *c != call);
            if list.is_empty() {
                self.sticky.remove(&agent);
            }
        }
    }

    /// Paused or logged out: a ringing offer is withdrawn and routed on;
    /// during a call, a logout waits for the call's end.
    fn leave(&mut self, now: Instant, agent: AgentId, to: AgentState) {
        let logging_out = to == AgentState::LoggedOut;
        let Some(a) = self.agents.get_mut(&agent) else {
            return;
        };
        if a.state == AgentState::LoggedOut {
            return;
        }
        match a.state.clone() {
            AgentState::OnCall { .. } => {
                if to == AgentState::LoggedOut {
                    a.logout_after_call = true;
                }
            }
            AgentState::Reserved { call, .. } => {
                a.generation += 1;
                self.out.push_back(AcdOutput::Withdraw { call, agent });
                self.set_state(agent, to);
                self.transfers.remove(&call);
                self.requeue(now, call);
            }
            AgentState::Available { .. } => {
                self.unavailable(agent);
                self.set_state(agent, to);
            }
            _ => {
                let a = self.agents.get_mut(&agent).expect("known");
                a.generation += 1;
                self.set_state(agent, to);
            }
        }
        if let Some(calls) = self.sticky.remove(&agent) {
            // Nobody to wait for any more.
            for call in calls {
                self.requeue(now, call);
            }
        }
        if logging_out {
            self.send_off_where_empty();
        }
    }

    /// Whether anyone who could serve the queue is logged in with a phone
    /// (paused or busy included: they come back).
    fn staffed(&self, q: &QueueConfig) -> bool {
        let floor = q.widened_level.min(q.min_level);
        self.agents.values().any(|a| {
            a.phone
                && a.state != AgentState::LoggedOut
                && a.cfg.skills.iter().any(|&(s, level)| {
                    (s == q.skill && level >= floor)
                        || (q.neighbours.contains(&s) && level >= q.widened_level)
                })
        })
    }

    /// Agents who could serve `call`'s queue and are at work (not paused,
    /// not logged out, with a phone); None for a call not waiting.
    pub fn serving(&self, call: CallId) -> Option<usize> {
        let q = &self.queues[self.calls.get(&call)?.queue.0 as usize].cfg;
        let floor = q.widened_level.min(q.min_level);
        Some(
            self.agents
                .values()
                .filter(|a| {
                    a.phone
                        && !matches!(a.state, AgentState::LoggedOut | AgentState::Paused { .. })
                        && a.cfg.skills.iter().any(|&(s, level)| {
                            (s == q.skill && level >= floor)
                                || (q.neighbours.contains(&s) && level >= q.widened_level)
                        })
                })
                .count(),
        )
    }

    /// The last agent who could serve a queue left: its callers go to the
    /// fallback (queues that wait when empty keep theirs).
    fn send_off_where_empty(&mut self) {
        for i in 0..self.queues.len() {
            let q = &self.queues[i];
            if q.cfg.when_empty != WhenEmpty::Fallback
                || q.waiting.is_empty()
                || self.staffed(&q.cfg)
            {
                continue;
            }
            let gone = std::mem::take(&mut self.queues[i].waiting);
            for (_, _, call) in gone {
                self.calls.remove(&call);
                self.out.push_back(AcdOutput::Left {
                    call,
                    reason: LeftReason::NoAgents,
                });
            }
        }
    }

    // ---- agent state -------------------------------------------------------

    fn set_state(&mut self, agent: AgentId, state: AgentState) {
        let a = self.agents.get_mut(&agent).expect("known agent");
        if a.state != state {
            a.state = state.clone();
            self.out.push_back(AcdOutput::AgentChanged { agent, state });
        }
    }

    /// Available since `since` (None: keep the idle time they had, for an
    /// offer withdrawn through no fault of theirs), then routed: a call that
    /// is waiting for them is offered before they are indexed at all.
    fn set_available(&mut self, now: Instant, agent: AgentId, since: Option<Instant>) {
        if self.agents[&agent].offerable()
            && let Some((call, queue)) = self.call_for(now, agent)
        {
            self.offer(now, call, agent);
            if let Some(queue) = queue {
                self.route_queue(now, queue);
            }
            return;
        }
        self.set_available_no_route(now, agent, since);
    }

    fn route_agent_if_available(&mut self, now: Instant, agent: AgentId) {
        let a = &self.agents[&agent];
        if matches!(a.state, AgentState::Available { .. }) && a.offerable() {
            self.route_agent(now, agent);
        }
    }

    fn set_available_no_route(&mut self, now: Instant, agent: AgentId, since: Option<Instant>) {
        self.unavailable(agent);
        let a = self.agents.get_mut(&agent).expect("known agent");
        a.generation += 1;
        let since = since.unwrap_or(match a.state {
            AgentState::Reserved { .. } => a.idle_since.unwrap_or(now),
            _ => now,
        });
        if a.offerable() {
            self.index(agent, since);
        }
        self.set_state(agent, AgentState::Available { since });
    }

    /// Puts the agent in the available index (idle since `since`).
    fn index(&mut self, agent: AgentId, since: Instant) {
        let a = &self.agents[&agent];
        for &(skill, level) in &a.cfg.skills {
            if let Some(levels) = self.available.get_mut(skill.0 as usize) {
                levels[(level as usize).min(LEVELS - 1)].insert((since, agent));
            }
        }
    }

    /// Takes the agent out of the available index (if there).
    fn unavailable(&mut self, agent: AgentId) {
        let a = &self.agents[&agent];
        if let AgentState::Available { since } = a.state {
            for &(skill, level) in &a.cfg.skills {
                if let Some(levels) = self.available.get_mut(skill.0 as usize) {
                    levels[(level as usize).min(LEVELS - 1)].remove(&(since, agent));
                }
            }
        }
    }

    // ---- checks (tests) ----------------------------------------------------

    /// Panics when an internal invariant does not hold (randomized tests).
    #[cfg(test)]
    pub fn check(&self, now: Instant) {
        let mut holders: HashMap<CallId, AgentId> = HashMap::new();
        for (id, a) in &self.agents {
            match &a.state {
                AgentState::Reserved { call, until } => {
                    assert!(*until > now, "{id:?} stuck reserved past its timeout");
                    assert!(
                        holders.insert(*call, *id).is_none(),
                        "{call:?} offered to two agents"
                    );
                    if self.transfers.get(call) != Some(id) {
                        assert_eq!(
                            self.calls.get(call).map(|w| w.at),
                            Some(Where::Offered { agent: *id }),
                            "{call:?}"
                        );
                    }
                }
                AgentState::Available { since } if a.offerable() => {
                    for &(skill, level) in &a.cfg.skills {
                        assert!(
                            self.available[skill.0 as usize][level as usize]
                                .contains(&(*since, *id)),
                            "{id:?} available but not indexed"
                        );
                    }
                }
                _ => {}
            }
        }
        let indexed: usize = self
            .available
            .iter()
            .flat_map(|l| l.iter())
            .map(BTreeSet::len)
            .sum();
        let expected: usize = self
            .agents
            .values()
            .filter(|a| matches!(a.state, AgentState::Available { .. }) && a.offerable())
            .map(|a| a.cfg.skills.len())
            .sum();
        assert_eq!(indexed, expected, "stale entries in the available index");
        let queued: usize = self.queues.iter().map(|q| q.waiting.len()).sum();
        let expected = self
            .calls
            .values()
            .filter(|w| w.at == Where::Queued)
            .count();
        assert_eq!(queued, expected, "queue sets and calls disagree");
        // Work-conserving: no available agent fits a waiting head.
        for q in &self.queues {
            if let Some(&(_, since, call)) = q.waiting.first() {
                let widened = now.saturating_duration_since(since) >= q.cfg.widen_after;
                let fits = self.best_agent(&q.cfg, widened);
                assert!(
                    fits.is_none(),
                    "{call:?} waits in queue {:?} (widened {widened}, cfg {:?}) while {:?} fits it: {:?}",
                    q.cfg.id,
                    q.cfg,
                    fits,
                    fits.map(|a| (&self.agents[&a].cfg, &self.agents[&a].state))
                );
            }
        }
    }
}
