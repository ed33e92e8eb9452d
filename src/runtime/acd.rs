//! The ACD's edge: the router core on a thread of its own, fed through a
//! crossbeam channel (never a blocking receive on a tokio worker), its
//! outputs sent to the switch's thread, and a snapshot of agents and queues
//! published after each batch for readers (metrics now, the HTTP API
//! later). Nothing on the routing path takes a lock.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::Input;
use crate::acd::agents::AgentsFile;
use crate::acd::announce::Announcer;
use crate::acd::stats::{Fact, Stats};
use crate::acd::{
    AcdConfig, AcdOutput, AgentConfig, AgentId, AgentState, CallId, Language, QueueConfig, QueueId,
    QueuePlan, Router, SkillId,
};
use crate::call::event::{CallEvent, CallEventKind, TransferTarget};
use crate::clock::WallClock;
use crate::config::AcdSettings;

/// What the switch and the runtime tell the ACD.
#[derive(Debug, Clone)]
pub enum AcdIn {
    Login(AgentId),
    Logout(AgentId),
    Pause(AgentId, String),
    Ready(AgentId),
    Queued {
        call: CallId,
        queue: QueueId,
        language: Language,
        priority: u8,
        /// The agent who handled the caller's open ticket.
        sticky: Option<AgentId>,
        /// Ahead of everyone of its priority.
        ahead: bool,
    },
    /// An agent transfers the call to this agent.
    Transfer(CallId, AgentId),
    /// The agent's phone registered, or its registration is gone.
    Phone(AgentId, bool),
    /// The caller left the queue (or the call is over): no agent for it.
    Gone(CallId),
    /// The caller hung up to be called back: the call keeps its place.
    KeepPlace(CallId),
    /// A callback queued again with its first arrival.
    CallbackQueued {
        call: CallId,
        queue: QueueId,
        language: Language,
        priority: u8,
        since: Instant,
    },
    /// A callback's owner did not answer: the agent held for it is free.
    CallbackUnanswered(CallId),
    Answered(CallId, AgentId),
    Refused(CallId, AgentId),
    Ended(AgentId),
    /// A fact for the figures, at the time the call's story has it.
    Fact(Instant, Fact),
}

/// What readers see: every agent's state and the calls waiting per queue.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub agents: BTreeMap<AgentId, AgentState>,
    /// Agents whose phone is registered (only they are offered calls).
    pub phones: BTreeMap<AgentId, bool>,
    /// Since when each agent is in their state (Unix ms), and when a
    /// wrap-up is over.
    pub since_ms: BTreeMap<AgentId, i64>,
    pub until_ms: BTreeMap<AgentId, i64>,
    pub waiting: BTreeMap<String, usize>,
    /// Per queue: the longest wait now (whole seconds) and the window's
    /// figures.
    pub longest_wait_seconds: BTreeMap<String, u64>,
    pub figures: BTreeMap<String, crate::acd::stats::QueueReport>,
}

pub struct AcdHandle {
    pub tx: Sender<AcdIn>,
    pub snapshot: watch::Receiver<Snapshot>,
    pub plan: Arc<QueuePlan>,
    clock: WallClock,
}

impl AcdHandle {
    /// The ACD's side of a call's story: what routing and the figures
    /// need, at the event's time. `sticky` finds the agent handling an
    /// owner's open ticket.
    pub fn hear(&self, ev: &CallEvent, sticky: impl FnOnce(&str) -> Option<AgentId>) {
        let at = self.clock.quantize(ev.at);
        let call = ev.call;
        let send = |msg| {
            let _ = self.tx.send(msg);
        };
        match &ev.kind {
            CallEventKind::Queued {
                queue,
                language,
                priority,
                owner,
                ahead,
                ..
            } => {
                let Some(q) = self.plan.id(queue) else {
                    return;
                };
                send(AcdIn::Fact(
                    at,
                    Fact::Queued {
                        call,
                        queue: q.0 as usize,
                    },
                ));
                send(AcdIn::Queued {
                    call,
                    queue: q,
                    language: Language::parse(language).unwrap_or(Language::Zh),
                    priority: *priority,
                    sticky: owner.as_deref().and_then(sticky),
                    ahead: *ahead,
                });
            }
            CallEventKind::Offered { agent } => {
                send(AcdIn::Fact(at, Fact::Offered { agent: *agent }))
            }
            CallEventKind::OfferMissed { agent, .. } => {
                send(AcdIn::Fact(at, Fact::Missed { agent: *agent }));
                send(AcdIn::Refused(call, *agent));
            }
            CallEventKind::Answered { agent, .. } => {
                send(AcdIn::Fact(
                    at,
                    Fact::Answered {
                        call,
                        agent: *agent,
                    },
                ));
                send(AcdIn::Answered(call, *agent));
            }
            CallEventKind::Abandoned { .. } | CallEventKind::Overflowed { .. } => {
                let overflow = matches!(ev.kind, CallEventKind::Overflowed { .. });
                send(AcdIn::Fact(at, Fact::Left { call, overflow }));
                send(AcdIn::Gone(call));
            }
            CallEventKind::ConversationEnded { agent, .. } => send(AcdIn::Ended(*agent)),
            CallEventKind::CallbackRequested { .. } => send(AcdIn::KeepPlace(call)),
            CallEventKind::CallbackQueued {
                queue,
                language,
                priority,
                since,
                ..
            } => {
                if let Some(q) = self.plan.id(queue) {
                    send(AcdIn::CallbackQueued {
                        call,
                        queue: q,
                        language: Language::parse(language).unwrap_or(Language::Zh),
                        priority: *priority,
                        since: *since,
                    });
                }
            }
            CallEventKind::CallbackUnanswered { .. } => send(AcdIn::CallbackUnanswered(call)),
            CallEventKind::TransferRequested {
                to: TransferTarget::Agent(agent),
                ..
            }
            | CallEventKind::ConferenceRequested { to: agent, .. }
            | CallEventKind::ConsultStarted {
                to: TransferTarget::Agent(agent),
                ..
            } => send(AcdIn::Transfer(call, *agent)),
            // Whatever else: a caller still known to the ACD is gone.
            CallEventKind::Ended { .. } => {
                send(AcdIn::Fact(at, Fact::Over { call }));
                send(AcdIn::Gone(call));
            }
            _ => {}
        }
    }
}

/// The router for the `[acd]` settings and the agents file: skills are
/// numbered over both (a queue may need a skill no agent has yet).
/// The router for the agents file; `callback_ring`: how long a callback's
/// owner may ring before the agent reserved for it is freed.
pub fn router_for(
    agents: &AgentsFile,
    settings: &AcdSettings,
    callback_ring: Duration,
) -> (Router, QueuePlan) {
    let mut skills: Vec<String> = agents
        .agents
        .iter()
        .flat_map(|a| a.skills.keys().cloned())
        .chain(
            settings
                .queues
                .keys()
                .map(|q| settings.skill_of(q).to_string()),
        )
        .chain(settings.queues.values().flat_map(|q| q.neighbours.clone()))
        .collect();
    skills.sort();
    skills.dedup();
    let skill_id = |name: &str| SkillId(skills.iter().position(|s| s == name).unwrap_or(0) as u16);
    let names: Vec<String> = settings.queues.keys().cloned().collect();
    let queues = settings
        .queues
        .iter()
        .enumerate()
        .map(|(i, (name, q))| QueueConfig {
            id: QueueId(i as u16),
            skill: skill_id(settings.skill_of(name)),
            good_level: q.good_level,
            min_level: q.min_level,
            widen_after: Duration::from_secs(q.widen_after_seconds),
            widened_level: q.widened_level,
            neighbours: q.neighbours.iter().map(|n| skill_id(n)).collect(),
            max_wait: Duration::from_secs(q.max_wait_seconds),
            when_empty: q.when_empty.unwrap_or(settings.when_empty),
        })
        .collect();
    for name in &names {
        let skill = settings.skill_of(name);
        if !agents.agents.iter().any(|a| a.skills.contains_key(skill)) {
            warn!(queue = %name, %skill, "no agent has this queue's skill: its callers will wait for the fallback");
        }
    }
    let plan = QueuePlan::new(
        settings
            .queues
            .iter()
            .map(|(n, q)| (n.as_str(), q.vip_queue.as_deref())),
    );
    debug_assert_eq!(plan.names(), names.as_slice());
    let agent_configs = agents
        .agents
        .iter()
        .filter_map(|a| {
            Some(AgentConfig {
                id: AgentId(a.id.parse().ok()?),
                skills: a
                    .skills
                    .iter()
                    .map(|(s, level)| (skill_id(s), *level))
                    .collect(),
                wrap_up: Duration::from_secs(a.wrap_up_seconds),
                languages: a
                    .languages
                    .iter()
                    .filter_map(|l| Language::parse(l))
                    .collect(),
            })
        })
        .collect();
    let cfg = AcdConfig {
        offer_timeout: Duration::from_secs(settings.offer_seconds),
        max_misses: settings.max_misses,
        sticky_wait: Duration::from_secs(settings.sticky_seconds),
        miss_rest: Duration::from_secs(settings.miss_rest_seconds),
        phones_required: true,
        callback_ring,
    };
    (Router::new(cfg, queues, agent_configs), plan)
}

#[allow(clippy::too_many_arguments)] // the thread's whole world, handed over once
pub fn spawn(
    router: Router,
    plan: Arc<QueuePlan>,
    announcer: Announcer,
    stats: Stats,
    threshold: Duration,
    clock: WallClock,
    to_switch: mpsc::UnboundedSender<Input>,
    metrics: Arc<crate::metrics::Metrics>,
) -> AcdHandle {
    let (tx, rx) = crossbeam_channel::unbounded();
    let (publish, snapshot) = watch::channel(Snapshot::default());
    let queues = plan.clone();
    std::thread::Builder::new()
        .name("acd-router".into())
        .spawn(move || {
            metrics.threshold.set(threshold.as_secs_f64());
            let stats = StatsEdge {
                stats,
                threshold,
                reported: None,
            };
            run(
                router, queues, announcer, stats, clock, rx, to_switch, publish, metrics,
            )
        })
        .expect("ACD thread");
    AcdHandle {
        tx,
        snapshot,
        plan,
        clock,
    }
}

/// The statistics core and when its window was last reported.
struct StatsEdge {
    stats: Stats,
    threshold: Duration,
    reported: Option<Instant>,
}

#[allow(clippy::too_many_arguments)] // the thread's whole world, handed over once
fn run(
    mut router: Router,
    queues: Arc<QueuePlan>,
    mut announcer: Announcer,
    mut stats: StatsEdge,
    clock: WallClock,
    rx: Receiver<AcdIn>,
    to_switch: mpsc::UnboundedSender<Input>,
    publish: watch::Sender<Snapshot>,
    metrics: Arc<crate::metrics::Metrics>,
) {
    // Every agent from the start, logged out until they log in: the
    // figures by state count those who are away too.
    let mut snapshot = Snapshot::default();
    snapshot
        .agents
        .extend(router.agent_states().map(|(id, s)| (id, s.clone())));
    let started = clock.ms(clock.now());
    snapshot
        .since_ms
        .extend(router.agent_states().map(|(id, _)| (id, started)));
    let phones: Vec<(AgentId, bool)> = router
        .agent_states()
        .map(|(id, _)| (id, router.has_phone(id)))
        .collect();
    snapshot.phones.extend(phones);
    metrics.set_acd(&snapshot);
    publish.send_replace(snapshot.clone());
    let mut phones_changed = false;
    loop {
        let wait = [router.poll_timeout(), announcer.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .map(|at| at.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_secs(3600))
            // The window's figures and the longest waits move with time.
            .min(Duration::from_secs(1));
        match rx.recv_timeout(wait) {
            Ok(first) => {
                let now = clock.now();
                // Everything else already queued goes in the same pass.
                for msg in std::iter::once(first).chain(rx.try_iter()) {
                    let phone = match msg {
                        AcdIn::Phone(agent, _) => Some(agent),
                        _ => None,
                    };
                    handle(&mut router, &mut announcer, &mut stats.stats, now, msg);
                    // Readers see whose phone is registered, as the router has it.
                    if let Some(agent) = phone.filter(|a| snapshot.phones.contains_key(a)) {
                        let has = router.has_phone(agent);
                        if snapshot.phones.insert(agent, has) != Some(has) {
                            phones_changed = true;
                        }
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let now = clock.now();
        router.handle_timeout(now);
        let mut changed = std::mem::take(&mut phones_changed);
        while let Some(out) = router.poll_output() {
            // The figures take the agents' side from here; the calls' side
            // comes with the call events (`AcdHandle::hear`).
            if let AcdOutput::AgentChanged { agent, state } = &out {
                stats.stats.handle(
                    now,
                    &Fact::AgentChanged {
                        agent: *agent,
                        state: state.clone(),
                    },
                );
            }
            match &out {
                AcdOutput::Connected { call, agent } => {
                    if let Some(p) = announcer.handle_connected(now, *call, *agent) {
                        metrics.wait_predicted(&p, queues.names());
                    }
                }
                AcdOutput::Left { call, .. } => announcer.handle_left(*call),
                AcdOutput::AgentChanged { agent, state } => match state {
                    AgentState::Available { .. } => announcer.handle_agent_free(now, *agent, true),
                    AgentState::Paused { .. } | AgentState::LoggedOut => {
                        announcer.handle_agent_free(now, *agent, false)
                    }
                    _ => {}
                },
                _ => {}
            }
            if let AcdOutput::AgentChanged { agent, state } = &out {
                let reason = match state {
                    AgentState::Paused { reason } => reason.as_str(),
                    _ => "",
                };
                info!(
                    agent = agent.0,
                    state = %crate::metrics::agent_state_label(state),
                    reason = %reason,
                    "agent state"
                );
                if matches!(state, AgentState::Available { .. }) && !router.has_phone(*agent) {
                    warn!(
                        agent = agent.0,
                        "agent available but their phone is not registered: no calls are offered until it registers"
                    );
                }
                snapshot.agents.insert(*agent, state.clone());
                snapshot.since_ms.insert(*agent, clock.ms(now));
                match state {
                    AgentState::WrapUp { until } => {
                        snapshot.until_ms.insert(*agent, clock.ms(*until));
                    }
                    _ => {
                        snapshot.until_ms.remove(agent);
                    }
                }
                changed = true;
            }
            if to_switch.send(Input::Acd(out, now)).is_err() {
                return; // the hotline stopped
            }
        }
        // What the figures saw, from the call events and the agents' states.
        while let Some(o) = stats.stats.poll_observed() {
            metrics.acd_observed(o, queues.names(), stats.threshold);
        }
        for (i, name) in queues.names().iter().enumerate() {
            let n = router.waiting(QueueId(i as u16));
            if snapshot.waiting.get(name) != Some(&n) {
                snapshot.waiting.insert(name.clone(), n);
                changed = true;
            }
        }
        if changed
            || stats
                .reported
                .is_none_or(|at| now >= at + Duration::from_secs(1))
        {
            let report = stats.stats.report(now);
            let longest = stats.stats.longest_waits(now);
            metrics.set_acd_report(&report, queues.names(), &longest);
            stats.reported = Some(now);
            for (i, name) in queues.names().iter().enumerate() {
                let secs = longest[i].as_secs();
                if snapshot.longest_wait_seconds.get(name) != Some(&secs) {
                    snapshot.longest_wait_seconds.insert(name.clone(), secs);
                    changed = true;
                }
                if snapshot.figures.get(name) != Some(&report.queues[i]) {
                    snapshot
                        .figures
                        .insert(name.clone(), report.queues[i].clone());
                    changed = true;
                }
            }
        }
        if changed {
            metrics.set_acd(&snapshot);
            publish.send_replace(snapshot.clone());
        }
        for a in announcer.handle_timeout(
            now,
            |c| router.position(c),
            |c| router.serving(c).unwrap_or(0),
        ) {
            if to_switch.send(Input::Announce(a)).is_err() {
                return;
            }
        }
    }
}

fn handle(
    router: &mut Router,
    announcer: &mut Announcer,
    stats: &mut Stats,
    now: Instant,
    msg: AcdIn,
) {
    match msg {
        AcdIn::Login(a) => router.handle_login(now, a),
        AcdIn::Logout(a) => router.handle_logout(now, a),
        AcdIn::Pause(a, reason) => router.handle_pause(now, a, &reason),
        AcdIn::Ready(a) => router.handle_ready(now, a),
        AcdIn::Queued {
            call,
            queue,
            language,
            priority,
            sticky,
            ahead,
        } => {
            match ahead {
                true => router.handle_call_requeued(now, call, queue, language, priority),
                false => router.handle_call_queued(now, call, queue, language, priority, sticky),
            }
            let agents = router.serving(call).unwrap_or(0);
            announcer.handle_queued(now, call, queue, router.position(call), agents);
        }
        AcdIn::Phone(agent, registered) => router.handle_phone(now, agent, registered),
        AcdIn::KeepPlace(call) => {
            announcer.handle_left(call);
            router.handle_callback_kept(call);
        }
        AcdIn::CallbackQueued {
            call,
            queue,
            language,
            priority,
            since,
        } => router.handle_callback_queued(now, call, queue, language, priority, since),
        AcdIn::CallbackUnanswered(call) => router.handle_callback_unanswered(now, call),
        AcdIn::Gone(call) => {
            announcer.handle_left(call);
            router.handle_call_abandoned(now, call);
        }
        AcdIn::Transfer(call, agent) => router.handle_transfer(now, call, agent),
        AcdIn::Answered(call, agent) => router.handle_answered(now, call, agent),
        AcdIn::Refused(call, agent) => router.handle_refused(now, call, agent),
        AcdIn::Ended(agent) => router.handle_call_ended(now, agent),
        AcdIn::Fact(at, fact) => {
            stats.handle(at, &fact);
        }
    }
}
