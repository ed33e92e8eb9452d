//! The ACD's edge: the router core on a thread of its own, fed through a
//! crossbeam channel (never a blocking receive on a tokio worker), its
//! outputs sent to the switch task, and a snapshot of agents and queues
//! published after each batch for readers (metrics now, the HTTP API
//! later). Nothing on the routing path takes a lock.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use tokio::sync::{mpsc, watch};
use tracing::info;

use super::Input;
use crate::acd::agents::AgentsFile;
use crate::acd::announce::Announcer;
use crate::acd::{
    AcdConfig, AcdOutput, AgentConfig, AgentId, AgentState, CallKey, Language, QueueConfig,
    QueueId, Router, SkillId,
};

/// What the switch and the runtime tell the ACD.
#[derive(Debug, Clone)]
pub enum AcdIn {
    Login(AgentId),
    Logout(AgentId),
    Pause(AgentId, String),
    Ready(AgentId),
    Queued {
        call: CallKey,
        queue: String,
        language: Language,
        priority: u8,
    },
    Abandoned(CallKey),
    Answered(CallKey, AgentId),
    Refused(CallKey, AgentId),
    Ended(AgentId),
}

/// What readers see: every agent's state and the calls waiting per queue.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub agents: BTreeMap<AgentId, AgentState>,
    pub waiting: BTreeMap<String, usize>,
}

pub struct AcdHandle {
    pub tx: Sender<AcdIn>,
    pub snapshot: watch::Receiver<Snapshot>,
}

/// Queues: one per skill named in the agents file, plus `general`; a queue
/// takes agents of level 5 and up first, then down to 3, and after a
/// minute's wait down to 1; after 5 minutes the caller goes to the fallback.
pub fn router_for(agents: &AgentsFile) -> (Router, Vec<String>) {
    let mut skills: Vec<String> = agents
        .agents
        .iter()
        .flat_map(|a| a.skills.keys().cloned())
        .collect();
    skills.push("general".into());
    skills.sort();
    skills.dedup();
    let skill_id = |name: &str| SkillId(skills.iter().position(|s| s == name).unwrap_or(0) as u16);
    let queues = skills
        .iter()
        .enumerate()
        .map(|(i, name)| QueueConfig {
            id: QueueId(i as u16),
            skill: skill_id(name),
            good_level: 5,
            min_level: 3,
            widen_after: Duration::from_secs(60),
            widened_level: 1,
            neighbours: Vec::new(),
            max_wait: Duration::from_secs(300),
        })
        .collect();
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
    (
        Router::new(AcdConfig::default(), queues, agent_configs),
        skills,
    )
}

pub fn spawn(
    router: Router,
    queue_names: Vec<String>,
    to_switch: mpsc::UnboundedSender<Input>,
    metrics: Arc<crate::metrics::Metrics>,
) -> AcdHandle {
    let (tx, rx) = crossbeam_channel::unbounded();
    let (publish, snapshot) = watch::channel(Snapshot::default());
    std::thread::Builder::new()
        .name("acd-router".into())
        .spawn(move || run(router, queue_names, rx, to_switch, publish, metrics))
        .expect("ACD thread");
    AcdHandle { tx, snapshot }
}

fn run(
    mut router: Router,
    queue_names: Vec<String>,
    rx: Receiver<AcdIn>,
    to_switch: mpsc::UnboundedSender<Input>,
    publish: watch::Sender<Snapshot>,
    metrics: Arc<crate::metrics::Metrics>,
) {
    let mut snapshot = Snapshot::default();
    // Every 30 s a waiting caller hears their place and the estimated wait
    // (3 minutes a call until real handle times are known).
    let mut announcer = Announcer::new(Duration::from_secs(30), Duration::from_secs(180));
    loop {
        let wait = [router.poll_timeout(), announcer.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .map(|at| at.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_secs(3600));
        match rx.recv_timeout(wait) {
            Ok(first) => {
                let now = Instant::now();
                handle(&mut router, &mut announcer, &queue_names, now, first);
                // Everything else already queued, in the same pass.
                while let Ok(next) = rx.try_recv() {
                    handle(&mut router, &mut announcer, &queue_names, now, next);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        router.handle_timeout(now);
        let mut changed = false;
        while let Some(out) = router.poll_output() {
            match &out {
                AcdOutput::Connected { call, agent } => {
                    announcer.handle_connected(now, *call, *agent)
                }
                AcdOutput::Left { call, .. } => announcer.handle_left(*call),
                _ => {}
            }
            if let AcdOutput::AgentChanged { agent, state } = &out {
                info!(
                    agent = agent.0,
                    state = %crate::metrics::agent_state_label(state),
                    "agent state"
                );
                snapshot.agents.insert(*agent, state.clone());
                changed = true;
            }
            if to_switch.send(Input::Acd(out)).is_err() {
                return; // the hotline stopped
            }
        }
        for (i, name) in queue_names.iter().enumerate() {
            let n = router.waiting(QueueId(i as u16));
            if snapshot.waiting.get(name) != Some(&n) {
                snapshot.waiting.insert(name.clone(), n);
                changed = true;
            }
        }
        if changed {
            metrics.set_acd(&snapshot);
            publish.send_replace(snapshot.clone());
        }
        let at_work = snapshot
            .agents
            .values()
            .filter(|s| !matches!(s, AgentState::LoggedOut | AgentState::Paused { .. }))
            .count();
        for a in announcer.handle_timeout(now, |c| router.position(c), at_work) {
            if to_switch.send(Input::Announce(a)).is_err() {
                return;
            }
        }
    }
}

fn handle(
    router: &mut Router,
    announcer: &mut Announcer,
    queue_names: &[String],
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
        } => {
            let q = queue_names
                .iter()
                .position(|n| *n == queue)
                .or_else(|| queue_names.iter().position(|n| n == "general"))
                .unwrap_or(0);
            router.handle_call_queued(now, call, QueueId(q as u16), language, priority, None);
            announcer.handle_queued(now, call);
        }
        AcdIn::Abandoned(call) => {
            announcer.handle_left(call);
            router.handle_call_abandoned(now, call);
        }
        AcdIn::Answered(call, agent) => router.handle_answered(now, call, agent),
        AcdIn::Refused(call, agent) => router.handle_refused(now, call, agent),
        AcdIn::Ended(agent) => {
            announcer.handle_call_ended(now, agent);
            router.handle_call_ended(now, agent);
        }
    }
}
