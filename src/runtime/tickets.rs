//! The ticket edge: writes call events to the store and drives the SLA and
//! group-complaint cores from the log.
//!
//! The log is the meeting point: the task replays it at start, then reads
//! what was appended since (by this process or another, such as the
//! `hotline tickets` CLI) once a second or when an SLA deadline is due, feeds
//! the cores, and appends the dispatches, warnings, breaches and alerts they
//! return. Dispatches to a department with a webhook are POSTed from here.

use std::sync::Arc;
use std::time::Duration;

use tracing::{error, info, warn};

use crate::call::event::{CallEvent, TransferTarget};
use crate::call::{DutyOutcome, PlaceCall, PlaceDutyCall, PlaceNotice, VisitOutcome};
use crate::clock::WallClock;
use crate::tickets::dispatch::AutoDispatch;
use crate::tickets::group::{GroupComplaints, GroupRule};
use crate::tickets::handlers::Handlers;
use crate::tickets::return_visit::ReturnVisits;
use crate::tickets::sla::{SlaPolicy, SlaTimers};
use crate::tickets::webhook::{Deliveries, Delivery};
use crate::tickets::{Actor, EventId, EventKind, NewEvent, Store, StoreError, TicketId};

const POLL: Duration = Duration::from_secs(1);

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// The log's entry for a call event, stamped with its own time. Every
/// call event is written except the menu's own requests.
pub fn log_entry(ev: &CallEvent, clock: &WallClock) -> NewEvent {
    use crate::call::event::CallEventKind as K;
    let ms = |d: Duration| d.as_millis() as u64;
    // A span ending now, on the log's millisecond grid: the difference of
    // the two events' at_ms, as the ACD (which works on that grid) counted
    // it. Truncating the duration instead could say 3,999 ms for a caller
    // the ACD kept the whole 4 s.
    let span_ms = |d: Duration| {
        ev.at
            .checked_sub(d)
            .map_or(ms(d), |since| (clock.ms(ev.at) - clock.ms(since)) as u64)
    };
    let mut ticket = None;
    let mut actor = Actor::System;
    let kind = match &ev.kind {
        K::Started {
            from,
            to,
            number,
            outbound,
        } => EventKind::CallStarted {
            from: from.clone(),
            to: to.clone(),
            number: number.clone(),
            outbound: *outbound,
        },
        K::CallerIdentified { owner, by } => EventKind::CallerIdentified {
            owner: owner.clone(),
            by: by.as_str().to_string(),
        },
        K::MenuStep { node, detail } => EventKind::IvrStepTaken {
            node: node.clone(),
            detail: detail.clone(),
        },
        K::Queued {
            queue,
            priority,
            class,
            ahead,
            ..
        } => EventKind::CallQueued {
            queue: queue.clone(),
            priority: *priority,
            class: class
                .filter(|c| *c != crate::owners::OwnerClass::Ordinary)
                .map(|c| c.as_str().to_string()),
            ahead: *ahead,
        },
        K::ConsultStarted { from, to } => {
            actor = Actor::Agent(from.to_string());
            EventKind::ConsultStarted {
                from: from.to_string(),
                // An agent's extension as it always was; an outside
                // number says so.
                to: match to {
                    TransferTarget::Agent(agent) => agent.to_string(),
                    other => other.to_string(),
                },
            }
        }
        K::ConferenceRequested { from, to } => {
            actor = Actor::Agent(from.to_string());
            EventKind::ConferenceRequested {
                from: from.to_string(),
                to: to.to_string(),
            }
        }
        K::ConferenceJoined { agent } => EventKind::ConferenceJoined {
            agent: agent.to_string(),
        },
        K::ConferenceLeft { agent } => EventKind::ConferenceLeft {
            agent: agent.to_string(),
        },
        K::MonitorStarted { supervisor, mode } => {
            actor = Actor::Supervisor(supervisor.clone());
            EventKind::MonitorStarted {
                supervisor: supervisor.clone(),
                mode: mode.as_str().to_string(),
            }
        }
        K::MonitorChanged { supervisor, mode } => {
            actor = Actor::Supervisor(supervisor.clone());
            EventKind::MonitorChanged {
                supervisor: supervisor.clone(),
                mode: mode.as_str().to_string(),
            }
        }
        K::MonitorEnded { supervisor } => EventKind::MonitorEnded {
            supervisor: supervisor.clone(),
        },
        K::TransferRequested { from, to } => {
            actor = Actor::Agent(from.to_string());
            EventKind::CallTransferRequested {
                from: from.to_string(),
                to: to.to_string(),
            }
        }
        K::Transferred { from, to } => EventKind::CallTransferred {
            from: from.to_string(),
            to: to.to_string(),
        },
        K::TransferFailed { from, to, why } => EventKind::CallTransferFailed {
            from: from.to_string(),
            to: to.to_string(),
            why: why.describe(),
        },
        K::Offered { agent } => EventKind::CallOffered {
            agent: agent.to_string(),
        },
        K::OfferMissed { agent, why } => EventKind::CallOfferMissed {
            agent: agent.to_string(),
            why: why.describe(),
        },
        K::Answered {
            agent,
            owner,
            waited,
        } => {
            actor = Actor::Agent(agent.to_string());
            EventKind::CallAnswered {
                agent: agent.to_string(),
                owner: owner.clone(),
                waited_ms: span_ms(*waited),
            }
        }
        K::Held { by_agent, hold } => EventKind::CallHeld {
            by_agent: *by_agent,
            hold: *hold,
        },
        K::Abandoned { queue, waited, why } => EventKind::CallAbandoned {
            queue: queue.clone(),
            waited_ms: span_ms(*waited),
            reason: why.as_str().to_string(),
        },
        K::Overflowed {
            queue,
            waited,
            no_agents,
        } => EventKind::CallOverflowed {
            queue: queue.clone(),
            waited_ms: span_ms(*waited),
            reason: if *no_agents { "no_agents" } else { "max_wait" }.into(),
        },
        K::ConversationEnded {
            agent,
            talked,
            by_agent,
        } => EventKind::ConversationEnded {
            agent: agent.to_string(),
            talked_ms: span_ms(*talked),
            by_agent: *by_agent,
        },
        K::CallbackRequested {
            queue,
            priority,
            language,
            number,
            owner,
            waited,
        } => {
            let at_ms = clock.ms(ev.at);
            EventKind::CallbackRequested {
                queue: queue.clone(),
                priority: *priority,
                language: language.clone(),
                number: number.clone(),
                owner: owner.clone(),
                since_ms: at_ms - span_ms(*waited) as i64,
            }
        }
        K::CallbackQueued { attempt, .. } => EventKind::CallbackQueued {
            callback: ev.sip_call_id.clone(),
            attempt: *attempt,
        },
        K::CallbackPlaced {
            callback,
            attempt,
            number,
            ..
        } => EventKind::CallbackPlaced {
            callback: callback.clone(),
            attempt: *attempt,
            number: number.clone(),
        },
        K::CallbackAnswered { callback, .. } => EventKind::CallbackAnswered {
            callback: callback.clone(),
        },
        K::CallbackUnanswered {
            callback,
            attempt,
            code,
        } => EventKind::CallbackUnanswered {
            callback: callback.clone(),
            attempt: *attempt,
            reason: match code {
                487 => "no answer (SIP 487)".into(),
                486 => "busy (SIP 486)".into(),
                c => format!("not answered (SIP {c})"),
            },
        },
        K::OwnerNotified {
            ticket: t,
            reached,
            code,
        } => {
            ticket = Some(*t);
            EventKind::OwnerToldHelpComing {
                reached: *reached,
                reason: match (reached, code) {
                    (true, _) => "answered".into(),
                    (false, Some(code)) => format!("not answered (SIP {code})"),
                    (false, None) => "hung up before the end".into(),
                },
            }
        }
        K::OnCall {
            ticket: t,
            round,
            step,
            person,
            outcome,
        } => {
            ticket = Some(*t);
            match outcome {
                DutyOutcome::Accepted => {
                    actor = Actor::Department(person.clone());
                    EventKind::OnCallAccepted {
                        round: *round,
                        step: *step,
                        person: person.clone(),
                    }
                }
                other => EventKind::OnCallDeclined {
                    round: *round,
                    step: *step,
                    person: person.clone(),
                    reason: other.reason(),
                },
            }
        }
        K::ReturnVisit {
            ticket: t,
            attempt,
            number,
            outcome,
        } => {
            ticket = Some(*t);
            match outcome {
                VisitOutcome::Fixed => {
                    actor = Actor::Caller(number.clone());
                    EventKind::ConfirmedByOwner
                }
                VisitOutcome::NotFixed => {
                    actor = Actor::Caller(number.clone());
                    EventKind::Reopened {
                        reason: "the owner pressed 2 on the return visit: not fixed".into(),
                    }
                }
                VisitOutcome::NoKey => EventKind::ReturnCallUnanswered {
                    attempt: *attempt,
                    reason: "answered, no key pressed".into(),
                },
                VisitOutcome::Unanswered(code) => EventKind::ReturnCallUnanswered {
                    attempt: *attempt,
                    reason: format!("SIP {code}"),
                },
            }
        }
        K::SurveyAnswered {
            ticket: t,
            number,
            score,
        } => {
            ticket = *t;
            actor = Actor::Caller(number.clone());
            EventKind::SurveyAnswered { score: *score }
        }
        K::Recorded {
            file,
            duration,
            pauses,
        } => EventKind::CallRecorded {
            file: std::path::Path::new(file)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
            duration_ms: ms(*duration),
            pauses: *pauses,
        },
        K::RecordingPaused { paused, by } => EventKind::RecordingPaused {
            paused: *paused,
            by: by.clone(),
        },
        K::Ended { reason, .. } => EventKind::CallEnded {
            reason: reason.label().to_string(),
            code: reason.code(),
        },
    };
    NewEvent {
        ticket,
        call: Some(ev.sip_call_id.clone()),
        at_ms: clock.ms(ev.at),
        actor,
        kind,
    }
}

/// The log's entry for an agent's new state, at the ACD's time.
pub fn agent_entry(
    agent: crate::ids::AgentId,
    state: &crate::acd::AgentState,
    at: std::time::Instant,
    clock: &WallClock,
) -> NewEvent {
    let reason = match state {
        crate::acd::AgentState::Paused { reason } => reason.clone(),
        _ => String::new(),
    };
    NewEvent {
        ticket: None,
        call: None,
        at_ms: clock.ms(at),
        actor: Actor::Agent(agent.to_string()),
        kind: EventKind::AgentStateChanged {
            agent: agent.to_string(),
            state: crate::metrics::agent_state_label(state).to_string(),
            reason,
        },
    }
}

/// The log's entry for a phone's registration: where and until when.
pub fn registered_entry(
    agent: crate::acd::AgentId,
    contact: String,
    peer: crate::sip::transaction::Peer,
    expires: Duration,
) -> NewEvent {
    let now = now_ms();
    NewEvent {
        ticket: None,
        call: None,
        at_ms: now,
        actor: Actor::Agent(agent.to_string()),
        kind: EventKind::AgentRegistered {
            agent: agent.to_string(),
            contact,
            source: source_of(peer),
            expires_ms: now + expires.as_millis() as i64,
        },
    }
}

pub fn unregistered_entry(agent: crate::acd::AgentId, expired: bool) -> NewEvent {
    NewEvent {
        ticket: None,
        call: None,
        at_ms: now_ms(),
        actor: Actor::Agent(agent.to_string()),
        kind: EventKind::AgentUnregistered {
            agent: agent.to_string(),
            expired,
        },
    }
}

/// `udp:127.0.0.1:5062`: a registration's source as the log keeps it.
pub fn source_of(peer: crate::sip::transaction::Peer) -> String {
    let transport = peer.transport.as_str().to_ascii_lowercase();
    format!("{transport}:{}", peer.addr)
}

/// A registration's source read back, for UDP only: a TCP or TLS phone's
/// connection ended with the process that had it (the phone connects and
/// registers again).
pub fn udp_source(source: &str) -> Option<crate::sip::transaction::Peer> {
    let addr = source.strip_prefix("udp:")?.parse().ok()?;
    Some(crate::sip::transaction::Peer {
        transport: crate::sip::transaction::Transport::Udp,
        addr,
    })
}

/// Opens a ticket (`opened` is its `TicketOpened`) and writes the time
/// promised for its severity; returns its number.
pub async fn open_ticket(
    store: &Store,
    sla: &SlaPolicy,
    opened: NewEvent,
) -> Result<TicketId, StoreError> {
    let EventKind::TicketOpened { severity, .. } = &opened.kind else {
        return Err(StoreError::Invalid("not a ticket opening".into()));
    };
    let deadline_ms = opened.at_ms + sla.commitment_ms(*severity);
    let (call, at_ms) = (opened.call.clone(), opened.at_ms);
    let stored = store.append(vec![opened]).await?;
    let ticket = stored[0]
        .ticket
        .ok_or_else(|| StoreError::Invalid("the store gave the new ticket no number".into()))?;
    let promise = NewEvent {
        ticket: Some(ticket),
        call,
        at_ms,
        actor: Actor::System,
        kind: EventKind::Committed { deadline_ms },
    };
    if let Err(e) = store.append(vec![promise]).await {
        warn!(error = %e, %ticket, "commitment not written");
    }
    Ok(ticket)
}

/// The tickets as the watcher last folded them from the log, shared
/// read-mostly with the switch and the HTTP API: each ticket with the
/// agent handling it, and per owner the agent handling their open tickets
/// (read when the owner's call is queued: the ACD's sticky agent).
#[derive(Debug, Default)]
pub struct TicketView {
    sticky: dashmap::DashMap<String, crate::acd::AgentId>,
    tickets: dashmap::DashMap<TicketId, TicketRow>,
    /// Each owner's tickets, in the order opened.
    by_owner: dashmap::DashMap<String, Vec<TicketId>>,
    /// The log has been read to its end once since the start.
    loaded: std::sync::atomic::AtomicBool,
    /// Wakes the watcher at once after this process appended (otherwise it
    /// reads the log once a second, which also catches other writers).
    appended: tokio::sync::Notify,
    /// The latest group-complaint alerts (Unix ms, in words), newest last.
    alerts: std::sync::Mutex<std::collections::VecDeque<(i64, String)>>,
    /// Who is on duty now and the emergency chains running (none without
    /// a rota), as the on-call core sees them.
    oncall: std::sync::Mutex<Option<serde_json::Value>>,
}

/// How many group-complaint alerts the view keeps for the wallboard.
const ALERTS_KEPT: usize = 20;

#[derive(Debug, Clone, serde::Serialize)]
pub struct TicketRow {
    #[serde(flatten)]
    pub ticket: crate::tickets::Ticket,
    /// The agent handling it (see `tickets::handlers`).
    pub handler: Option<String>,
}

impl TicketView {
    /// Who is on duty now and the chains running; none without a rota.
    pub fn oncall(&self) -> Option<serde_json::Value> {
        self.oncall.lock().expect("oncall lock").clone()
    }

    fn set_oncall(&self, chains: &crate::tickets::oncall::OnCallChains, now_ms: i64) {
        let on_duty: serde_json::Map<String, serde_json::Value> = crate::tickets::Department::ALL
            .iter()
            .map(|d| {
                let l = chains.rota().lineup(*d, None, now_ms);
                (
                    d.as_str().to_string(),
                    serde_json::json!({ "chain": l.chain, "supervisor": l.supervisor }),
                )
            })
            .collect();
        let running: Vec<serde_json::Value> = chains
            .running()
            .map(|(t, round, step)| serde_json::json!({ "ticket": t.0, "round": round, "step": step }))
            .collect();
        *self.oncall.lock().expect("oncall lock") =
            Some(serde_json::json!({ "on_duty": on_duty, "chains": running }));
    }

    /// Something was appended: read the log now.
    pub fn appended(&self) {
        self.appended.notify_one();
    }

    pub fn agent_for(&self, owner: &str) -> Option<crate::acd::AgentId> {
        self.sticky.get(owner).map(|a| *a)
    }

    /// `owner`'s tickets, newest first; None until the log has been read
    /// once (the caller may read the log itself then).
    pub fn of_owner(&self, owner: &str) -> Option<Vec<TicketRow>> {
        if !self.loaded.load(std::sync::atomic::Ordering::Acquire) {
            return None;
        }
        let ids = self
            .by_owner
            .get(owner)
            .map(|v| v.clone())
            .unwrap_or_default();
        Some(ids.iter().rev().filter_map(|t| self.get(*t)).collect())
    }

    /// The latest group-complaint alerts at or after `since_ms`, oldest
    /// first: (Unix ms, the alert in words).
    pub fn alerts_since(&self, since_ms: i64) -> Vec<(i64, String)> {
        self.alerts
            .lock()
            .expect("alerts lock")
            .iter()
            .filter(|(at, _)| *at >= since_ms)
            .cloned()
            .collect()
    }

    fn alert(&self, at_ms: i64, text: String) {
        let mut alerts = self.alerts.lock().expect("alerts lock");
        alerts.push_back((at_ms, text));
        while alerts.len() > ALERTS_KEPT {
            alerts.pop_front();
        }
    }

    pub fn get(&self, id: TicketId) -> Option<TicketRow> {
        self.tickets.get(&id).map(|r| r.clone())
    }

    /// The tickets `keep` says yes to, newest first.
    pub fn select(&self, keep: impl Fn(&TicketRow) -> bool) -> Vec<TicketRow> {
        let mut rows: Vec<TicketRow> = self
            .tickets
            .iter()
            .filter(|r| keep(r.value()))
            .map(|r| r.value().clone())
            .collect();
        rows.sort_by_key(|r| std::cmp::Reverse(r.ticket.id));
        rows
    }

    fn ticket_changed(
        &self,
        projection: &crate::tickets::Tickets,
        handlers: &Handlers,
        id: TicketId,
    ) {
        if let Some(t) = projection.get(id) {
            let row = TicketRow {
                ticket: t.clone(),
                handler: handlers.handler(id).map(str::to_string),
            };
            if self.tickets.insert(id, row).is_none()
                && let Some(owner) = &t.owner
            {
                self.by_owner.entry(owner.clone()).or_default().push(id);
            }
        }
    }

    fn update(&self, projection: &crate::tickets::Tickets, handlers: &mut Handlers) {
        for owner in handlers.take_changed() {
            match handlers.agent_for(&owner).and_then(|a| a.parse().ok()) {
                Some(agent) => {
                    self.sticky
                        .insert(owner.clone(), crate::acd::AgentId(agent));
                }
                None => {
                    self.sticky.remove(&owner);
                }
            }
            for t in handlers.tickets_of(&owner) {
                self.ticket_changed(projection, handlers, *t);
            }
        }
    }
}

/// The return-visit core and where its calls go.
pub struct Visits {
    pub core: ReturnVisits,
    pub gateway: std::net::SocketAddr,
    pub to_switch: tokio::sync::mpsc::UnboundedSender<super::Input>,
}

/// The callback core and where its callbacks are queued again.
pub struct CallbackQueue {
    pub core: crate::tickets::callback::Callbacks,
    pub to_switch: tokio::sync::mpsc::UnboundedSender<super::Input>,
}

/// The on-call chain core and where its calls go.
pub struct OnCall {
    pub core: crate::tickets::oncall::OnCallChains,
    pub gateway: std::net::SocketAddr,
    pub to_switch: tokio::sync::mpsc::UnboundedSender<super::Input>,
    /// For the owner's unit, spoken with the ticket.
    pub owners: Arc<crate::owners::OwnerDb>,
    /// `category_<name>` prompts there are (both languages).
    pub categories: std::collections::HashSet<String>,
    /// `department_<name>` prompts there are (both languages).
    pub departments: std::collections::HashSet<String>,
}

/// Queues `event` at once (log order = call order) and logs a failure later.
pub fn record(store: &Store, event: NewEvent) {
    if let Err(e) = store.record(vec![event]) {
        error!(error = %e, "call event not written");
    }
}

/// Replays the log, then keeps the SLA and group-complaint cores fed.
/// Events up to `replay_until` (the last one when the hotline started) are
/// history: they rebuild state but raise no new alert.
#[allow(clippy::too_many_arguments)] // each core is its own argument; a struct would only rename them
pub async fn watch(
    store: Arc<Store>,
    mut visits: Option<Visits>,
    mut oncall: Option<OnCall>,
    mut callbacks: Option<CallbackQueue>,
    policy: SlaPolicy,
    rule: GroupRule,
    mut dispatch: AutoDispatch,
    mut deliveries: Deliveries,
    replay_until: EventId,
    metrics: Arc<crate::metrics::Metrics>,
    view: Arc<TicketView>,
) {
    let mut projection = crate::tickets::Tickets::default();
    let mut handlers = Handlers::default();
    let mut sla = SlaTimers::new(policy);
    let mut groups = GroupComplaints::new(rule);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client");
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut last = EventId(0);
    let mut replayed = false;
    loop {
        let (oncall_core, stop_duty) = match oncall.as_mut() {
            Some(OnCall {
                core, to_switch, ..
            }) => (Some(core), Some(&*to_switch)),
            None => (None, None),
        };
        let cores = Cores {
            projection: &mut projection,
            handlers: &mut handlers,
            view: &view,
            metrics: &metrics,
            visits: visits.as_mut().map(|v| &mut v.core),
            oncall: oncall_core,
            stop_duty,
            callbacks: callbacks.as_mut().map(|c| &mut c.core),
            sla: &mut sla,
            groups: &mut groups,
            dispatch: &mut dispatch,
            deliveries: &mut deliveries,
        };
        let fed = feed(&store, cores, &mut last, replay_until).await;
        view.update(&projection, &mut handlers);
        match fed {
            Ok(n) if !replayed => {
                info!(events = n, "ticket log replayed");
                replayed = true;
                view.loaded
                    .store(true, std::sync::atomic::Ordering::Release);
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "reading the ticket log"),
        }
        let mut due = sla.handle_timeout(now_ms());
        due.extend(dispatch.poll_dispatches(now_ms()));
        append(&store, due).await;
        if let Some(v) = visits.as_mut() {
            place_due_calls(&store, v).await;
        }
        if let Some(c) = callbacks.as_mut() {
            let (events, queue) = c.core.handle_timeout(now_ms());
            for e in &events {
                info!(call = ?e.call, event = e.kind.name(), "callback");
            }
            append(&store, events).await;
            for q in queue {
                let _ = c.to_switch.send(super::Input::Callback(q));
            }
        }
        if let Some(o) = oncall.as_mut() {
            place_duty_calls(&store, o).await;
            view.set_oncall(&o.core, now_ms());
        }
        for delivery in deliveries.poll_due(now_ms()) {
            tokio::spawn(post(client.clone(), delivery, done_tx.clone()));
        }
        let next = [
            sla.poll_timeout(),
            deliveries.poll_timeout(),
            visits.as_ref().and_then(|v| v.core.poll_timeout()),
            oncall.as_ref().and_then(|o| o.core.poll_timeout()),
            callbacks.as_ref().and_then(|c| c.core.poll_timeout()),
        ]
        .into_iter()
        .flatten()
        .min();
        let wait = next
            .map(|at| Duration::from_millis((at - now_ms()).max(0) as u64))
            .unwrap_or(POLL)
            .min(POLL);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = view.appended.notified() => {}
            Some((ticket, result)) = done_rx.recv() => {
                if let Err(e) = &result {
                    warn!(%ticket, error = %e, "dispatch webhook");
                }
                if let Some(event) = deliveries.handle_result(ticket, result, now_ms()) {
                    append(&store, vec![event]).await;
                }
            }
        }
    }
}

/// POSTs one dispatch; 2xx is taken, anything else is an error to retry.
async fn post(
    client: reqwest::Client,
    delivery: Delivery,
    done: tokio::sync::mpsc::UnboundedSender<(TicketId, Result<(), String>)>,
) {
    let result = match client
        .post(&delivery.url)
        .json(&delivery.notice)
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("HTTP {}", r.status().as_u16())),
        Err(e) => Err(e.to_string()),
    };
    let _ = done.send((delivery.ticket, result));
}

/// Writes what the return-visit core says is due, then (once the
/// `ReturnCallPlaced` events are durable) hands the calls to the switch.
async fn place_due_calls(store: &Store, visits: &mut Visits) {
    let (events, calls) = visits.core.handle_timeout(now_ms());
    if events.is_empty() {
        return;
    }
    for e in &events {
        info!(ticket = ?e.ticket, event = e.kind.name(), "return visit");
    }
    if let Err(e) = store.append(events).await {
        // Not placed: the core retries them as lost attempts later.
        error!(error = %e, "return visit events not written; calls not placed");
        return;
    }
    for call in calls {
        let _ = visits.to_switch.send(super::Input::Place(PlaceCall {
            ticket: call.ticket,
            attempt: call.attempt,
            number: call.number,
            gateway: visits.gateway,
        }));
    }
}

/// Writes what the on-call chain says is due, then (once the
/// `OnCallCalled` events are durable) hands the calls to the switch, each
/// with the ticket spoken in the person's language.
async fn place_duty_calls(store: &Store, oncall: &mut OnCall) {
    let (events, calls) = oncall.core.handle_timeout(now_ms());
    if events.is_empty() {
        return;
    }
    for e in &events {
        match &e.kind {
            EventKind::OnCallEscalated { round, supervisor } => warn!(
                ticket = ?e.ticket,
                round,
                supervisor = supervisor.as_deref().unwrap_or("none on duty"),
                "on-call: nobody on the chain accepted the emergency"
            ),
            kind => info!(ticket = ?e.ticket, event = kind.name(), "on-call"),
        }
    }
    if let Err(e) = store.append(events).await {
        // Not placed: the core declines them as lost calls later.
        error!(error = %e, "on-call events not written; calls not placed");
        return;
    }
    while let Some(notice) = oncall.core.poll_notice() {
        let Some(number) = notice.emergency.phone.clone() else {
            continue;
        };
        let language = notice
            .emergency
            .owner
            .as_deref()
            .and_then(|id| oncall.owners.by_id(id).ok().flatten())
            .map(|o| o.language)
            .filter(|l| l == "en" || l == "zh")
            .unwrap_or_else(|| "zh".into());
        let speech = notice.speech(&language, |p| oncall.departments.contains(p));
        let _ = oncall.to_switch.send(super::Input::Notice(PlaceNotice {
            ticket: notice.emergency.ticket,
            number,
            gateway: oncall.gateway,
            language,
            speech,
        }));
    }
    for call in calls {
        let unit = call
            .emergency
            .owner
            .as_deref()
            .and_then(|id| oncall.owners.by_id(id).ok().flatten())
            .map(|o| o.unit);
        let speech = call.emergency.speech(&call.language, unit.as_deref(), |p| {
            oncall.categories.contains(p)
        });
        let _ = oncall
            .to_switch
            .send(super::Input::PlaceDuty(PlaceDutyCall {
                ticket: call.emergency.ticket,
                round: call.round,
                step: call.step,
                person: call.person,
                number: call.number,
                gateway: oncall.gateway,
                language: call.language,
                speech,
            }));
    }
}

/// The sans-IO cores fed from the log.
struct Cores<'a> {
    /// Ticket state, for the open-tickets gauge.
    projection: &'a mut crate::tickets::Tickets,
    handlers: &'a mut Handlers,
    view: &'a TicketView,
    metrics: &'a crate::metrics::Metrics,
    visits: Option<&'a mut ReturnVisits>,
    oncall: Option<&'a mut crate::tickets::oncall::OnCallChains>,
    /// Where a chain's end goes, for its calls to stop.
    stop_duty: Option<&'a tokio::sync::mpsc::UnboundedSender<super::Input>>,
    callbacks: Option<&'a mut crate::tickets::callback::Callbacks>,
    sla: &'a mut SlaTimers,
    groups: &'a mut GroupComplaints,
    dispatch: &'a mut AutoDispatch,
    deliveries: &'a mut Deliveries,
}

async fn feed(
    store: &Store,
    mut cores: Cores<'_>,
    last: &mut EventId,
    replay_until: EventId,
) -> Result<usize, StoreError> {
    let mut total = 0;
    loop {
        let events = store.events_after(*last, 10_000).await?;
        if events.is_empty() {
            return Ok(total);
        }
        total += events.len();
        let mut alerts = Vec::new();
        for e in &events {
            cores.sla.handle_event(e);
            cores.dispatch.handle_event(e);
            cores.deliveries.handle_event(e);
            cores.projection.apply(e);
            cores.handlers.apply(e);
            if let Some(t) = e.ticket {
                cores
                    .view
                    .ticket_changed(cores.projection, cores.handlers, t);
            }
            if e.id > replay_until {
                cores.metrics.ticket_event(e);
            }
            if let Some(v) = cores.visits.as_deref_mut() {
                v.handle_event(e);
            }
            if let Some(o) = cores.oncall.as_deref_mut() {
                o.handle_event(e);
                // A phone still ringing for a chain that ended stops
                // (history has no phones ringing).
                while let Some(t) = o.poll_ended() {
                    if let Some(stop) = cores.stop_duty.filter(|_| e.id > replay_until) {
                        let _ = stop.send(super::Input::StopDuty(t));
                    }
                }
            }
            if let Some(c) = cores.callbacks.as_deref_mut() {
                c.handle_event(e, e.id > replay_until);
            }
            if let EventKind::OnCallEscalated { round, supervisor } = &e.kind {
                let ticket = e.ticket.map(|t| t.to_string()).unwrap_or_default();
                cores.view.alert(
                    e.at_ms,
                    match supervisor {
                        Some(s) => format!(
                            "emergency {ticket}: nobody on the on-call chain accepted (round {round}); calling supervisor {s}"
                        ),
                        None => format!(
                            "emergency {ticket}: nobody on duty accepted (round {round}), and no supervisor on duty"
                        ),
                    },
                );
            }
            if let EventKind::GroupComplaintRaised {
                building,
                category,
                owners,
                window_minutes,
            } = &e.kind
            {
                cores.view.alert(
                    e.at_ms,
                    format!(
                        "building {building}: {owners} owners reported {category} within {window_minutes} min"
                    ),
                );
            }
            if let Some(alert) = cores.groups.handle_event(e)
                && e.id > replay_until
            {
                warn!(?alert.kind, "group complaint");
                alerts.push(alert);
            }
            *last = e.id;
        }
        append(store, alerts).await;
        let mut open = [0i64; 3];
        for t in cores.projection.iter() {
            if t.status != crate::tickets::Status::Closed {
                open[t.severity as usize] += 1;
            }
        }
        for (severity, n) in [
            crate::tickets::Severity::Ordinary,
            crate::tickets::Severity::Major,
            crate::tickets::Severity::Emergency,
        ]
        .into_iter()
        .zip(open)
        {
            cores
                .metrics
                .tickets_open
                .with_label_values(&[crate::metrics::severity_label(severity)])
                .set(n);
        }
    }
}

async fn append(store: &Store, events: Vec<NewEvent>) {
    if events.is_empty() {
        return;
    }
    for e in &events {
        info!(ticket = ?e.ticket, event = e.kind.name(), "ticket alert");
    }
    if let Err(e) = store.append(events).await {
        error!(error = %e, "ticket alert not written");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::event::CallEventKind;
    use std::time::Instant;

    #[test]
    fn a_wait_is_written_as_the_difference_of_its_two_events_on_the_log_grid() {
        let clock = WallClock::start();
        // Queued 0.7 ms into a millisecond, given up 3,999.3 ms later: the
        // ACD, counting whole milliseconds, kept the caller the whole 4 s,
        // and the two events' at_ms are 4,000 apart.
        let queued = clock.quantize(Instant::now()) + Duration::from_micros(700);
        let at = queued + Duration::from_micros(3_999_300);
        let ev = CallEvent {
            at,
            call: crate::call::CallId(1),
            sip_call_id: "grid".into(),
            kind: CallEventKind::Overflowed {
                queue: "general".into(),
                waited: at - queued,
                no_agents: false,
            },
        };
        let entry = log_entry(&ev, &clock);
        assert_eq!(clock.ms(at) - clock.ms(queued), 4_000);
        match entry.kind {
            EventKind::CallOverflowed { waited_ms, .. } => assert_eq!(waited_ms, 4_000),
            other => panic!("{other:?}"),
        }
    }
}
