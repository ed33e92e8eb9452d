//! The JSON API. Every route takes a user's token (`Authorization: Bearer
//! <token>`, or `?token=` where a browser cannot send headers: the event
//! stream). Agents read and change only their own state, calls and the
//! tickets they handle; supervisors see every agent, queue and ticket and
//! may pause or log out any agent. No or an unknown token: 401; someone
//! else's agent, call or ticket: 403; errors are `{"error": "..."}`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::desk::{Desk, DeskEvent};
use super::users::{Role, User, Users};
use crate::acd::{AgentId, AgentState};
use crate::runtime::acd::{AcdIn, Snapshot};
use crate::runtime::tickets::{TicketRow, TicketView, open_ticket};
use crate::tickets::{Actor, EventKind, NewEvent, Severity, Status, TicketId};

/// What the API reads and drives.
pub struct Api {
    pub users: Option<Users>,
    pub agents: Option<Arc<crate::acd::agents::AgentsFile>>,
    pub acd: Option<(
        crossbeam_channel::Sender<AcdIn>,
        tokio::sync::watch::Receiver<Snapshot>,
    )>,
    pub desk: Arc<Desk>,
    pub tickets: Arc<TicketView>,
    pub store: Arc<crate::tickets::Store>,
    pub owners: Arc<crate::owners::OwnerDb>,
    pub plan: crate::owners::phone::NumberPlan,
    pub sla: crate::tickets::sla::SlaPolicy,
    /// The switch, for the edge's bans.
    pub switch: tokio::sync::mpsc::UnboundedSender<crate::runtime::Input>,
    /// Event streams open, in all and per user.
    pub streams: crate::edge::Slots<String>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The site's local time (history and reports).
    pub local: crate::site::LocalTime,
    /// What reports are computed with.
    pub report: crate::report::Settings,
    /// The centre's targets for the wallboard.
    pub targets: Targets,
    /// Where conversations are recorded.
    pub recordings: std::path::PathBuf,
    /// The on-call rota as configured (swaps are checked against it).
    pub rota: Option<Arc<crate::tickets::rota::Rota>>,
}

/// The centre's targets: service level (offered definition), abandon
/// rate and ASA; a queue missing one shows red on the wallboard.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Targets {
    pub service_level: f64,
    pub abandon_rate: f64,
    pub asa_seconds: f64,
    pub threshold_seconds: u64,
}

/// What the API asks of the edge guard (answered by the switch's thread).
#[derive(Debug)]
pub enum EdgeRequest {
    Bans(tokio::sync::oneshot::Sender<Vec<crate::edge::BanInfo>>),
    Lift(std::net::IpAddr, tokio::sync::oneshot::Sender<bool>),
    /// Pause or resume a call's recording (false back: not recorded).
    PauseRecording {
        call: crate::ids::CallId,
        paused: bool,
        by: String,
        reply: tokio::sync::oneshot::Sender<bool>,
    },
    /// Ring another agent to join a call (three-way); `agent` as for
    /// `Transfer`.
    Conference {
        call: crate::ids::CallId,
        add: String,
        agent: Option<crate::ids::AgentId>,
        reply: tokio::sync::oneshot::Sender<Result<(), crate::call::TransferError>>,
    },
    /// Ring a supervisor's phone to join a call (or change how).
    Monitor {
        call: crate::ids::CallId,
        mode: crate::call::event::MonitorMode,
        phone: crate::ids::AgentId,
        by: String,
        reply: tokio::sync::oneshot::Sender<Result<(), crate::call::MonitorError>>,
    },
    /// Transfer a call to an agent's extension or a queue's code; `agent`:
    /// only if that agent is the one on the call (an agent's own request).
    Transfer {
        call: crate::ids::CallId,
        to: String,
        agent: Option<crate::ids::AgentId>,
        reply: tokio::sync::oneshot::Sender<Result<(), crate::call::TransferError>>,
    },
}

pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

fn err(status: StatusCode, message: impl Into<String>) -> ApiError {
    ApiError(status, message.into())
}

type Reply = Result<Response, ApiError>;

fn ok(status: StatusCode, body: Value) -> Reply {
    Ok((status, Json(body)).into_response())
}

#[derive(Deserialize)]
struct TokenParam {
    token: Option<String>,
}

/// The user whose token came with the request: `Authorization: Bearer
/// <token>`, or `?token=<token>` (an EventSource cannot send headers).
pub struct Caller(User);

impl FromRequestParts<Arc<Api>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Arc<Api>) -> Result<Self, ApiError> {
        let Some(users) = api.users.as_ref().filter(|u| !u.is_empty()) else {
            return Err(err(
                StatusCode::UNAUTHORIZED,
                "no API users are configured ([http] users)",
            ));
        };
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::to_string);
        let query = Query::<TokenParam>::try_from_uri(&parts.uri)
            .ok()
            .and_then(|Query(q)| q.token);
        let Some(token) = header.or(query) else {
            return Err(err(
                StatusCode::UNAUTHORIZED,
                "missing token: send `Authorization: Bearer <token>`",
            ));
        };
        users
            .authenticate(token.trim())
            .cloned()
            .map(Caller)
            .ok_or_else(|| err(StatusCode::UNAUTHORIZED, "unknown token"))
    }
}

pub fn routes(api: Arc<Api>) -> Router {
    Router::new()
        .route("/api/me", get(me))
        .route("/api/agents", get(list_agents))
        .route("/api/agents/{id}", get(agent))
        .route("/api/agents/{id}/ready", post(ready))
        .route("/api/agents/{id}/pause", post(pause))
        .route("/api/agents/{id}/wrap-up-done", post(wrap_up_done))
        .route("/api/agents/{id}/logout", post(logout))
        .route("/api/agents/{id}/events", get(events))
        .route("/api/queues", get(queues))
        .route("/api/bans", get(list_bans))
        .route("/api/bans/{source}", axum::routing::delete(lift_ban))
        .route("/api/tickets", get(list_tickets))
        .route("/api/tickets/{id}", get(ticket))
        .route("/api/tickets/{id}/escalate", post(escalate))
        .route("/api/tickets/{id}/promise-broken", post(promise_broken))
        .route("/api/tickets/{id}/dispatch", post(dispatch))
        .route("/api/tickets/{id}/oncall/stop", post(stop_oncall))
        .route("/api/oncall", get(oncall))
        .route("/api/oncall/swaps", post(swap_shift))
        .route("/api/calls", get(call_history))
        .route("/api/reports/{period}", get(report))
        .route("/api/wallboard", get(wallboard))
        .route("/api/wallboard/events", get(wallboard_events))
        .route("/api/calls/{call}", get(call))
        .route("/api/calls/{call}/wrap-up", post(wrap_up))
        .route("/api/calls/{call}/recording", post(pause_recording))
        .route("/api/calls/{call}/transfer", post(transfer))
        .route("/api/calls/{call}/monitor", post(monitor))
        .route("/api/calls/{call}/conference", post(conference))
        .route("/api/recordings/{file}", get(recording))
        .fallback(|| async { err(StatusCode::NOT_FOUND, "no such route") })
        .with_state(api)
}

impl Api {
    fn supervisor(user: &User) -> Result<(), ApiError> {
        match user.role {
            Role::Supervisor => Ok(()),
            Role::Agent => Err(err(
                StatusCode::FORBIDDEN,
                format!("{} is an agent: this is for supervisors", user.name),
            )),
        }
    }

    /// The user may act on agent `id`: it is them, or (where `supervisors`
    /// says so) they supervise. Unknown agents are 404.
    fn for_agent(&self, user: &User, id: &str, supervisors: bool) -> Result<AgentId, ApiError> {
        let known = self
            .agents
            .as_ref()
            .is_some_and(|a| a.agents.iter().any(|x| x.id == id));
        let parsed = id.parse().ok().filter(|_| known).map(AgentId);
        let allowed = match user.role {
            Role::Agent => user.agent.as_deref() == Some(id),
            Role::Supervisor => supervisors,
        };
        if !allowed {
            let message = match user.role {
                Role::Agent => format!(
                    "{} may act only as agent {}",
                    user.name,
                    user.agent.as_deref().unwrap_or("?")
                ),
                Role::Supervisor => "only the agent themself may do this".to_string(),
            };
            return Err(err(StatusCode::FORBIDDEN, message));
        }
        parsed.ok_or_else(|| err(StatusCode::NOT_FOUND, format!("no agent {id}")))
    }

    fn snapshot(&self) -> Snapshot {
        self.acd
            .as_ref()
            .map(|(_, s)| s.borrow().clone())
            .unwrap_or_default()
    }

    fn agent_json(&self, id: AgentId, snapshot: &Snapshot) -> Value {
        let entry = self
            .agents
            .as_ref()
            .and_then(|a| a.agents.iter().find(|x| x.id == id.0.to_string()));
        let state = snapshot.agents.get(&id).unwrap_or(&AgentState::LoggedOut);
        let reason = match state {
            AgentState::Paused { reason } => reason.as_str(),
            _ => "",
        };
        json!({
            "id": id.0.to_string(),
            "name": entry.map(|e| e.name.as_str()),
            "skills": entry.map(|e| &e.skills),
            "languages": entry.map(|e| &e.languages),
            "state": crate::metrics::agent_state_label(state),
            "reason": reason,
            // Only agents with a registered phone are offered calls.
            "phone_registered": snapshot.phones.get(&id).copied().unwrap_or(false),
            "since_ms": snapshot.since_ms.get(&id),
            "until_ms": snapshot.until_ms.get(&id),
            "wrap_up_seconds": entry.map(|e| e.wrap_up_seconds),
        })
    }

    fn send(&self, msg: AcdIn) -> Result<(), ApiError> {
        match &self.acd {
            Some((tx, _)) if tx.send(msg).is_ok() => Ok(()),
            _ => Err(err(
                StatusCode::SERVICE_UNAVAILABLE,
                "no ACD runs here ([acd] agents is empty)",
            )),
        }
    }

    /// The user may see `row`: a supervisor, or the agent handling it.
    fn may_see(user: &User, row: &TicketRow) -> bool {
        user.role == Role::Supervisor || row.handler.is_some() && row.handler == user.agent
    }
}

async fn me(Caller(user): Caller) -> Reply {
    ok(StatusCode::OK, json!(user))
}

async fn list_agents(State(api): State<Arc<Api>>, Caller(user): Caller) -> Reply {
    Api::supervisor(&user)?;
    let snapshot = api.snapshot();
    let agents: Vec<Value> = api
        .agents
        .iter()
        .flat_map(|a| a.agents.iter())
        .filter_map(|a| a.id.parse().ok().map(AgentId))
        .map(|id| api.agent_json(id, &snapshot))
        .collect();
    ok(StatusCode::OK, json!({ "agents": agents }))
}

async fn agent(State(api): State<Arc<Api>>, Caller(user): Caller, Path(id): Path<String>) -> Reply {
    let agent = api.for_agent(&user, &id, true)?;
    ok(StatusCode::OK, api.agent_json(agent, &api.snapshot()))
}

/// The state the agent is in now (after the ACD took the request).
async fn state_after(api: &Api, agent: AgentId, want: impl Fn(&AgentState) -> bool) -> Value {
    if let Some((_, rx)) = &api.acd {
        let mut rx = rx.clone();
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            rx.wait_for(|s| s.agents.get(&agent).is_some_and(&want)),
        )
        .await;
    }
    api.agent_json(agent, &api.snapshot())
}

async fn ready(State(api): State<Arc<Api>>, Caller(user): Caller, Path(id): Path<String>) -> Reply {
    let agent = api.for_agent(&user, &id, false)?;
    let state = api
        .snapshot()
        .agents
        .get(&agent)
        .cloned()
        .unwrap_or(AgentState::LoggedOut);
    let msg = match state {
        AgentState::LoggedOut => AcdIn::Login(agent),
        AgentState::Paused { .. } => AcdIn::Ready(agent),
        AgentState::WrapUp { .. } => {
            return Err(err(
                StatusCode::CONFLICT,
                "wrapping up: finish with wrap-up-done",
            ));
        }
        _ => return ok(StatusCode::OK, api.agent_json(agent, &api.snapshot())),
    };
    api.send(msg)?;
    let body = state_after(&api, agent, |s| {
        matches!(
            s,
            AgentState::Available { .. } | AgentState::Reserved { .. }
        )
    })
    .await;
    ok(StatusCode::OK, body)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PauseBody {
    reason: String,
}

async fn pause(
    State(api): State<Arc<Api>>,
    Caller(user): Caller,
    Path(id): Path<String>,
    body: Result<Json<PauseBody>, JsonRejection>,
) -> Reply {
    let agent = api.for_agent(&user, &id, true)?;
    let body = json_body(body, r#"{"reason": "..."} (e.g. break, training, meeting)"#)?;
    let reason = body.reason.trim();
    if reason.is_empty() || reason.len() > 64 {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "the reason must be 1-64 characters",
        ));
    }
    let reason = match user.role {
        Role::Supervisor => format!("{reason} (by {})", user.name),
        Role::Agent => reason.to_string(),
    };
    if matches!(
        api.snapshot().agents.get(&agent),
        None | Some(AgentState::LoggedOut)
    ) {
        return Err(err(
            StatusCode::CONFLICT,
            format!("agent {id} is logged out"),
        ));
    }
    api.send(AcdIn::Pause(agent, reason.clone()))?;
    let body = state_after(&api, agent, |s| matches!(s, AgentState::Paused { .. })).await;
    ok(StatusCode::OK, body)
}

async fn wrap_up_done(
    State(api): State<Arc<Api>>,
    Caller(user): Caller,
    Path(id): Path<String>,
) -> Reply {
    let agent = api.for_agent(&user, &id, false)?;
    if !matches!(
        api.snapshot().agents.get(&agent),
        Some(AgentState::WrapUp { .. })
    ) {
        return Err(err(
            StatusCode::CONFLICT,
            format!("agent {id} is not wrapping up"),
        ));
    }
    api.send(AcdIn::Ready(agent))?;
    let body = state_after(&api, agent, |s| !matches!(s, AgentState::WrapUp { .. })).await;
    ok(StatusCode::OK, body)
}

async fn logout(
    State(api): State<Arc<Api>>,
    Caller(user): Caller,
    Path(id): Path<String>,
) -> Reply {
    let agent = api.for_agent(&user, &id, true)?;
    api.send(AcdIn::Logout(agent))?;
    // During a call the logout waits for its end.
    let body = state_after(&api, agent, |s| *s == AgentState::LoggedOut).await;
    ok(StatusCode::OK, body)
}

/// Server-sent events for one agent's screen: their state now, then every
/// state change, offer, answer and hang-up as it happens.
async fn events(
    State(api): State<Arc<Api>>,
    Caller(user): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let agent = api.for_agent(&user, &id, true)?;
    // Each stream holds its place until the page goes away.
    let slot = api.streams.take(user.name.clone()).map_err(|full| {
        api.metrics
            .connections_refused
            .with_label_values(&[full.label(), "event_stream"])
            .inc();
        err(
            StatusCode::SERVICE_UNAVAILABLE,
            match full {
                crate::edge::Full::PerKey => "too many event streams open for this user",
                crate::edge::Full::Total => "too many event streams open",
            },
        )
    })?;
    let now = api.agent_json(agent, &api.snapshot());
    let first = vec![
        DeskEvent::Phone {
            agent: id.clone(),
            registered: now["phone_registered"].as_bool().unwrap_or(false),
        },
        DeskEvent::State {
            agent: id.clone(),
            state: now["state"].as_str().unwrap_or_default().to_string(),
            reason: now["reason"].as_str().unwrap_or_default().to_string(),
            since_ms: now["since_ms"].as_i64().unwrap_or_default(),
            until_ms: now["until_ms"].as_i64(),
        },
    ];
    let rx = api.desk.subscribe();
    let stream = futures_util::stream::unfold(
        (first, rx, id, slot),
        |(mut first, mut rx, id, slot)| async move {
            if let Some(e) = first.pop() {
                return Some((sse(&e), (first, rx, id, slot)));
            }
            loop {
                match rx.recv().await {
                    Ok(e) if e.agent() == id => {
                        return Some((sse(&e), (Vec::new(), rx, id, slot)));
                    }
                    Ok(_) => continue,
                    // Too slow a reader: tell the page to reload its state.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        let e = SseEvent::default().event("lagged").data("{}");
                        return Some((Ok(e), (Vec::new(), rx, id, slot)));
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    );
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

fn sse(e: &DeskEvent) -> Result<SseEvent, Infallible> {
    Ok(SseEvent::default()
        .event("desk")
        .data(serde_json::to_string(e).unwrap_or_default()))
}

async fn queues(State(api): State<Arc<Api>>, Caller(user): Caller) -> Reply {
    Api::supervisor(&user)?;
    let s = api.snapshot();
    let queues: Vec<Value> = s
        .waiting
        .iter()
        .map(|(name, waiting)| {
            json!({
                "name": name,
                "waiting": waiting,
                "longest_wait_seconds": s.longest_wait_seconds.get(name).copied().unwrap_or(0),
                "figures": s.figures.get(name),
            })
        })
        .collect();
    ok(StatusCode::OK, json!({ "queues": queues }))
}

/// Sources the edge banned (failed authentications), longest left first.
async fn list_bans(State(api): State<Arc<Api>>, Caller(user): Caller) -> Reply {
    Api::supervisor(&user)?;
    let bans = ask_switch(&api, EdgeRequest::Bans).await?;
    let bans: Vec<Value> = bans
        .iter()
        .map(|b| {
            json!({
                "source": b.ip.to_string(),
                "remaining_seconds": b.remaining.as_secs(),
                "failures": b.failures,
            })
        })
        .collect();
    ok(StatusCode::OK, json!({ "bans": bans }))
}

/// A supervisor lifts a ban (a phone that mistyped its password).
async fn lift_ban(
    State(api): State<Arc<Api>>,
    Caller(user): Caller,
    Path(source): Path<String>,
) -> Reply {
    Api::supervisor(&user)?;
    let ip: std::net::IpAddr = source.parse().map_err(|_| {
        err(
            StatusCode::BAD_REQUEST,
            format!("{source:?} is not an IP address"),
        )
    })?;
    let lifted = ask_switch(&api, |tx| EdgeRequest::Lift(ip, tx)).await?;
    if lifted {
        tracing::warn!(supervisor = %user.name, "ban on {ip} lifted");
        ok(
            StatusCode::OK,
            json!({ "source": ip.to_string(), "lifted": true }),
        )
    } else {
        Err(err(StatusCode::NOT_FOUND, format!("{ip} is not banned")))
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CallFilter {
    #[allow(dead_code)]
    token: Option<String>,
    /// Local times, "2026-12-01" or "2026-12-01T21:00"; today by default.
    from: Option<String>,
    to: Option<String>,
    number: Option<String>,
    owner: Option<String>,
    agent: Option<String>,
    queue: Option<String>,
    outcome: Option<String>,
}

/// The longest span one history request may cover, and the most calls one
/// answer holds (narrow the window or filter for the rest).
const MAX_HISTORY_DAYS: i64 = 31;
const MAX_HISTORY_CALLS: usize = 2000;

/// Calls that started in a window, each with its story in words and local
/// time (supervisors; an agent sees only calls they were rung with).
async fn call_history(
    State(api): State<Arc<Api>>,
    Caller(user): Caller,
    f: Result<Query<CallFilter>, QueryRejection>,
) -> Reply {
    use crate::tickets::history::{self, Filter, Outcome};
    let Query(f) = f.map_err(|e| {
        err(
            StatusCode::BAD_REQUEST,
            format!("{e}: filters are from, to, number, owner, agent, queue and outcome"),
        )
    })?;
    let bad = |e: String| err(StatusCode::BAD_REQUEST, e);
    let now = crate::runtime::tickets::now_ms();
    let today = api.local.day(&api.local.date(now)).map_err(bad)?;
    let from = match &f.from {
        Some(t) => api.local.parse_moment(t).map_err(bad)?,
        None => today.0,
    };
    let to = match &f.to {
        Some(t) if t.len() == 10 => api.local.day(t).map_err(bad)?.1, // the whole day
        Some(t) => api.local.parse_moment(t).map_err(bad)?,
        None => from.max(today.0) + 86_400_000,
    };
    if to <= from || to - from > MAX_HISTORY_DAYS * 86_400_000 {
        return Err(bad(format!(
            "from must be before to, at most {MAX_HISTORY_DAYS} days apart"
        )));
    }
    let agent = match user.role {
        Role::Supervisor => f.agent.clone(),
        Role::Agent => {
            let own = user.agent.clone();
            if f.agent.is_some() && f.agent != own {
                return Err(err(
                    StatusCode::FORBIDDEN,
                    "agents see their own calls only",
                ));
            }
            own.or(Some(String::new())) // an agent with no extension sees nothing
        }
    };
    let filter = Filter {
        number: f.number.clone(),
        owner: f.owner.clone(),
        agent,
        queue: f.queue.clone(),
        outcome: f
            .outcome
            .as_deref()
            .map(Outcome::parse)
            .transpose()
            .map_err(bad)?,
    };
    let events = api.store.calls_between(from, to).await.map_err(|e| {
        err(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the log cannot be read: {e}"),
        )
    })?;
    let mut calls: Vec<_> = history::calls(&events, api.local)
        .into_iter()
        .filter(|c| filter.keeps(c))
        .collect();
    // A busy month is too much for one answer: the first ones, and say so.
    let truncated = calls.len() > MAX_HISTORY_CALLS;
    calls.truncate(MAX_HISTORY_CALLS);
    ok(
        StatusCode::OK,
        json!({
            "from": api.local.format(from),
            "to": api.local.format(to),
            "calls": calls,
            "truncated": truncated,
        }),
    )
}

/// Tickets this close to their promise (or past it) show on the wallboard.
const NEAR_DEADLINE_MS: i64 = 10 * 60_000;

/// Everything the supervisor's wall screen shows, now: per queue the
/// callers waiting and the window's figures against the targets, every
/// agent, the tickets near or past their promise, today's group alerts.
fn board(api: &Api) -> Value {
    let s = api.snapshot();
    let now = std::time::Instant::now();
    let now_ms = crate::runtime::tickets::now_ms();
    let waiting = api.desk.waiting(now);
    let t = api.targets;
    let queues: Vec<Value> = api
        .report
        .plan
        .names()
        .iter()
        .map(|name| {
            let callers: Vec<Value> = waiting
                .iter()
                .filter(|(c, _)| c.queue.as_deref() == Some(name))
                .map(|(c, waited)| {
                    json!({
                        "call": c.call,
                        "number": c.number,
                        "owner": c.owner,
                        "class": c.class,
                        "waited_seconds": waited.as_secs(),
                    })
                })
                .collect();
            let f = s.figures.get(name).cloned().unwrap_or_default();
            json!({
                "name": name,
                "waiting": callers.len(),
                "callers": callers,
                "longest_wait_seconds": waiting
                    .iter()
                    .filter(|(c, _)| c.queue.as_deref() == Some(name))
                    .map(|(_, w)| w.as_secs())
                    .max()
                    .unwrap_or(0),
                "answered": f.answered,
                "abandoned": f.abandoned,
                "overflowed": f.overflowed,
                "service_level": f.service_level_offered,
                "abandon_rate": f.abandon_rate,
                "asa_seconds": f.asa_seconds,
                "missed": {
                    "service_level": f.service_level_offered.is_some_and(|v| v < t.service_level),
                    "abandon_rate": f.abandon_rate.is_some_and(|v| v > t.abandon_rate),
                    "asa": f.asa_seconds.is_some_and(|v| v > t.asa_seconds),
                },
            })
        })
        .collect();
    let agents: Vec<Value> = s
        .agents
        .iter()
        .map(|(id, state)| {
            let mut a = api.agent_json(*id, &s);
            let call = match state {
                AgentState::OnCall { call } | AgentState::Reserved { call, .. } => {
                    api.desk.call(call.0)
                }
                _ => None,
            };
            a["in_state_seconds"] = json!(
                s.since_ms
                    .get(id)
                    .map(|since| (now_ms - since).max(0) / 1000)
                    .unwrap_or(0)
            );
            a["call"] = json!(call.map(|c| json!({
                "call": c.call,
                "number": c.number,
                "owner": c.owner,
                "queue": c.queue,
            })));
            a
        })
        .collect();
    let tickets: Vec<Value> = api
        .tickets
        .select(|r| {
            matches!(r.ticket.status, Status::Open | Status::Dispatched)
                && r.ticket
                    .deadline_ms
                    .is_some_and(|d| d - now_ms <= NEAR_DEADLINE_MS)
        })
        .into_iter()
        .take(30)
        .map(|r| {
            let d = r.ticket.deadline_ms.unwrap_or(now_ms);
            json!({
                "id": r.ticket.id.0,
                "category": r.ticket.category,
                "severity": r.ticket.severity,
                "building": r.ticket.building,
                "status": r.ticket.status,
                "minutes_left": (d - now_ms).div_euclid(60_000),
                "overdue": d < now_ms,
                "handler": r.handler,
            })
        })
        .collect();
    let today = api
        .local
        .day(&api.local.date(now_ms))
        .map(|d| d.0)
        .unwrap_or(0);
    let alerts: Vec<Value> = api
        .tickets
        .alerts_since(today)
        .into_iter()
        .map(|(at, text)| json!({ "time": api.local.format_time(at), "text": text }))
        .collect();
    json!({
        "time": api.local.format(now_ms),
        "targets": t,
        "queues": queues,
        "agents": agents,
        "tickets": tickets,
        "alerts": alerts,
    })
}

async fn wallboard(State(api): State<Arc<Api>>, Caller(user): Caller) -> Reply {
    Api::supervisor(&user)?;
    ok(StatusCode::OK, board(&api))
}

/// The wallboard, live: the whole board once a second (server-sent
/// events), for as long as the page is open.
async fn wallboard_events(
    State(api): State<Arc<Api>>,
    Caller(user): Caller,
) -> Result<Response, ApiError> {
    Api::supervisor(&user)?;
    let slot = api.streams.take(user.name.clone()).map_err(|full| {
        api.metrics
            .connections_refused
            .with_label_values(&[full.label(), "event_stream"])
            .inc();
        err(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many event streams open",
        )
    })?;
    let stream = futures_util::stream::unfold((api, slot, true), |(api, slot, first)| async move {
        if !first {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let e = SseEvent::default()
            .event("board")
            .data(board(&api).to_string());
        Some((Ok::<_, Infallible>(e), (api, slot, false)))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReportQuery {
    #[allow(dead_code)]
    token: Option<String>,
    /// The local day (or the week's first day), "2026-12-01"; today by
    /// default.
    date: Option<String>,
    /// `json` (default) or `html`.
    format: Option<String>,
}

/// A day's or a week's report from the log (supervisors): JSON, or the
/// printable HTML page.
async fn report(
    State(api): State<Arc<Api>>,
    Caller(user): Caller,
    Path(period): Path<String>,
    q: Result<Query<ReportQuery>, QueryRejection>,
) -> Reply {
    Api::supervisor(&user)?;
    let Query(q) = q.map_err(|e| {
        err(
            StatusCode::BAD_REQUEST,
            format!("{e}: parameters are date and format"),
        )
    })?;
    let bad = |e: String| err(StatusCode::BAD_REQUEST, e);
    let local = api.report.local;
    let date = q
        .date
        .unwrap_or_else(|| local.date(crate::runtime::tickets::now_ms()));
    let days = match period.as_str() {
        "day" => 1,
        "week" => 7,
        _ => return Err(err(StatusCode::NOT_FOUND, "reports are day and week")),
    };
    let (from, first_end) = local.day(&date).map_err(bad)?;
    let to = first_end + (days - 1) * 86_400_000;
    let title = if days == 1 {
        date.clone()
    } else {
        format!("{date} to {}", local.date(to - 1))
    };
    let events = api.store.events_between(from, to).await.map_err(|e| {
        err(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the log cannot be read: {e}"),
        )
    })?;
    let report = crate::report::build(
        title,
        &events,
        from,
        to,
        &api.report,
        std::time::Instant::now(),
    );
    match q.format.as_deref().unwrap_or("json") {
        "json" => ok(StatusCode::OK, json!(report)),
        "html" => Ok((
            [(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")],
            crate::report::html::render(&report, local),
        )
            .into_response()),
        other => Err(bad(format!("format {other:?} is not json or html"))),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TicketFilter {
    /// The caller's token may come this way too (see `Caller`).
    #[allow(dead_code)]
    token: Option<String>,
    status: Option<String>,
    owner: Option<String>,
    category: Option<String>,
}

async fn list_tickets(
    State(api): State<Arc<Api>>,
    Caller(user): Caller,
    f: Result<Query<TicketFilter>, QueryRejection>,
) -> Reply {
    let Query(f) = f.map_err(|e| {
        err(
            StatusCode::BAD_REQUEST,
            format!("{e}: filters are status, owner and category"),
        )
    })?;
    let status: Option<Status> = match &f.status {
        Some(s) => Some(
            s.parse()
                .map_err(|e: String| err(StatusCode::BAD_REQUEST, e))?,
        ),
        None => None,
    };
    let rows = api.tickets.select(|r| {
        Api::may_see(&user, r)
            && status.is_none_or(|s| r.ticket.status == s)
            && f.owner
                .as_ref()
                .is_none_or(|o| r.ticket.owner.as_ref() == Some(o))
            && f.category.as_ref().is_none_or(|c| r.ticket.category == *c)
    });
    ok(StatusCode::OK, json!({ "tickets": rows }))
}

async fn ticket(
    State(api): State<Arc<Api>>,
    Caller(user): Caller,
    Path(id): Path<String>,
) -> Reply {
    let id = parse_ticket(&id)?;
    let row = api
        .tickets
        .get(id)
        .ok_or_else(|| err(StatusCode::NOT_FOUND, format!("no ticket {id}")))?;
    if !Api::may_see(&user, &row) {
        return Err(err(
            StatusCode::FORBIDDEN,
            format!("{} does not handle ticket {id}", user.name),
        ));
    }
    ok(StatusCode::OK, json!(row))
}

fn parse_ticket(id: &str) -> Result<TicketId, ApiError> {
    id.trim_start_matches(['T', 't'])
        .parse()
        .map(TicketId)
        .map_err(|_| {
            err(
                StatusCode::BAD_REQUEST,
                format!("{id:?} is not a ticket number"),
            )
        })
}

/// The user's actor in the log.
fn actor(user: &User) -> Actor {
    match (user.role, &user.agent) {
        (Role::Agent, Some(a)) => Actor::Agent(a.clone()),
        _ => Actor::Supervisor(user.name.clone()),
    }
}

/// Appends `kind` to ticket `id` as `user`, who must handle it (or
/// supervise, or, with `supervisors_only`, only supervise); not on a
/// closed ticket.
async fn change_ticket(
    api: &Api,
    user: &User,
    id: &str,
    supervisors_only: bool,
    kind: EventKind,
) -> Reply {
    let id = parse_ticket(id)?;
    let row = api
        .tickets
        .get(id)
        .ok_or_else(|| err(StatusCode::NOT_FOUND, format!("no ticket {id}")))?;
    let allowed = match user.role {
        Role::Supervisor => true,
        Role::Agent => !supervisors_only && Api::may_see(user, &row),
    };
    if !allowed {
        return Err(err(
            StatusCode::FORBIDDEN,
            match supervisors_only {
                true => "this is for supervisors".to_string(),
                false => format!("{} does not handle ticket {id}", user.name),
            },
        ));
    }
    if row.ticket.status == Status::Closed {
        return Err(err(StatusCode::CONFLICT, format!("ticket {id} is closed")));
    }
    let name = kind.name();
    append_as(api, user, Some(id), kind).await?;
    ok(
        StatusCode::CREATED,
        json!({ "ticket": id.0, "event": name }),
    )
}

/// Writes one event as `user` (now) and wakes the log's readers.
async fn append_as(
    api: &Api,
    user: &User,
    ticket: Option<TicketId>,
    kind: EventKind,
) -> Result<(), ApiError> {
    let event = NewEvent {
        ticket,
        call: None,
        at_ms: crate::runtime::tickets::now_ms(),
        actor: actor(user),
        kind,
    };
    api.store
        .append(vec![event])
        .await
        .map_err(|e| err(StatusCode::SERVICE_UNAVAILABLE, format!("not written: {e}")))?;
    api.tickets.appended();
    Ok(())
}

/// A JSON body or a 400 that says what to send.
fn json_body<T>(b: Result<Json<T>, JsonRejection>, shape: &str) -> Result<T, ApiError> {
    b.map(|Json(t)| t)
        .map_err(|e| err(StatusCode::BAD_REQUEST, format!("{e}: send {shape}")))
}

fn text(value: &str, what: &str) -> Result<String, ApiError> {
    let v = value.trim();
    if v.is_empty() || v.len() > 1000 {
        return Err(err(
            StatusCode::BAD_REQUEST,
            format!("{what}: 1-1000 characters"),
        ));
    }
    Ok(v.to_string())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EscalateBody {
    reason: String,
}

/// The handling agent or a supervisor raises a ticket's urgency.
async fn escalate(
    State(api): State<Arc<Api>>,
    Caller(user): Caller,
    Path(id): Path<String>,
    b: Result<Json<EscalateBody>, JsonRejection>,
) -> Reply {
    let b = json_body(b, r#"{"reason": "..."}"#)?;
    let reason = text(&b.reason, "reason")?;
    change_ticket(&api, &user, &id, false, EventKind::Escalated { reason }).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PromiseBrokenBody {
    reason: String,
    remedy: String,
}

/// A promise that cannot be kept: the apology's reason and the remedy,
/// recorded (the domain's closed loop).
async fn promise_broken(
    State(api): State<Arc<Api>>,
    Caller(user): Caller,
    Path(id): Path<String>,
    b: Result<Json<PromiseBrokenBody>, JsonRejection>,
) -> Reply {
    let b = json_body(b, r#"{"reason": "...", "remedy": "..."}"#)?;
    let kind = EventKind::PromiseBroken {
        reason: text(&b.reason, "reason")?,
        remedy: text(&b.remedy, "remedy")?,
    };
    change_ticket(&api, &user, &id, false, kind).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DispatchBody {
    department: String,
    person: Option<String>,
}

/// A supervisor sends a ticket to a department (and a person there).
async fn dispatch(
    State(api): State<Arc<Api>>,
    Caller(user): Caller,
    Path(id): Path<String>,
    b: Result<Json<DispatchBody>, JsonRejection>,
) -> Reply {
    let b = json_body(b, r#"{"department": "engineering", "person": null}"#)?;
    let department = b
        .department
        .parse()
        .map_err(|e: String| err(StatusCode::BAD_REQUEST, e))?;
    let person = b.person.map(|p| text(&p, "person")).transpose()?;
    change_ticket(
        &api,
        &user,
        &id,
        true,
        EventKind::Dispatched { department, person },
    )
    .await
}

/// A supervisor stops an emergency's on-call chain (someone was sent
/// another way): no more calls.
async fn stop_oncall(
    State(api): State<Arc<Api>>,
    Caller(user): Caller,
    Path(id): Path<String>,
    b: Result<Json<EscalateBody>, JsonRejection>,
) -> Reply {
    let b = json_body(b, r#"{"reason": "..."}"#)?;
    let reason = text(&b.reason, "reason")?;
    change_ticket(&api, &user, &id, true, EventKind::OnCallStopped { reason }).await
}

/// Who is on duty now, per department, and the emergency chains running.
async fn oncall(State(api): State<Arc<Api>>, Caller(user): Caller) -> Reply {
    Api::supervisor(&user)?;
    match api.tickets.oncall() {
        Some(v) => ok(StatusCode::OK, v),
        None => Err(err(
            StatusCode::NOT_FOUND,
            "no on-call rota ([oncall] rota)",
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SwapBody {
    department: String,
    out: String,
    into: String,
    /// Local moments, "YYYY-MM-DDTHH:MM" (the site's time).
    from: String,
    to: String,
}

/// A supervisor swaps a shift: `into` takes `out`'s place on the chain
/// of `department` from `from` to `to`. Written to the log, so the chain
/// and a restart both see it.
async fn swap_shift(
    State(api): State<Arc<Api>>,
    Caller(user): Caller,
    b: Result<Json<SwapBody>, JsonRejection>,
) -> Reply {
    Api::supervisor(&user)?;
    let b = json_body(
        b,
        r#"{"department": "engineering", "out": "wang", "into": "li", "from": "2026-12-24T18:00", "to": "2026-12-25T08:00"}"#,
    )?;
    let Some(rota) = &api.rota else {
        return Err(err(
            StatusCode::NOT_FOUND,
            "no on-call rota ([oncall] rota)",
        ));
    };
    let bad = |e: String| err(StatusCode::BAD_REQUEST, e);
    let department = b.department.parse().map_err(bad)?;
    rota.check_swap(&b.out, &b.into).map_err(bad)?;
    let from_ms = api.local.parse_moment(&b.from).map_err(bad)?;
    let to_ms = api.local.parse_moment(&b.to).map_err(bad)?;
    if to_ms <= from_ms || to_ms - from_ms > 31 * 86_400_000 {
        return Err(bad("to must be after from, within 31 days".into()));
    }
    let kind = EventKind::OnCallShiftSwapped {
        department,
        out: b.out,
        into: b.into,
        from_ms,
        to_ms,
    };
    append_as(&api, &user, None, kind).await?;
    ok(
        StatusCode::CREATED,
        json!({ "event": "on_call_shift_swapped", "from_ms": from_ms, "to_ms": to_ms }),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordingPauseBody {
    paused: bool,
}

/// Pauses or resumes the recording of a call (a payment read out over the
/// phone): the agent on it, or a supervisor. The stretch is silence in the
/// file; both moments are events.
async fn pause_recording(
    State(api): State<Arc<Api>>,
    Caller(user): Caller,
    Path(call): Path<String>,
    body: Result<Json<RecordingPauseBody>, JsonRejection>,
) -> Reply {
    let id = parse_call(&call)?;
    let body = json_body(body, r#"{"paused": true}"#)?;
    let card = api
        .desk
        .call(id)
        .ok_or_else(|| err(StatusCode::NOT_FOUND, format!("no call {call}")))?;
    let by = match (&user.role, &user.agent) {
        (Role::Supervisor, _) => format!("supervisor {}", user.name),
        (Role::Agent, Some(a)) if card.agent.as_ref() == Some(a) => format!("agent {a}"),
        _ => {
            return Err(err(
                StatusCode::FORBIDDEN,
                format!("{} is not on call {call}", user.name),
            ));
        }
    };
    let done = ask_switch(&api, |tx| EdgeRequest::PauseRecording {
        call: crate::ids::CallId(id),
        paused: body.paused,
        by,
        reply: tx,
    })
    .await?;
    if !done {
        return Err(err(
            StatusCode::CONFLICT,
            format!("call {call} is not being recorded"),
        ));
    }
    ok(StatusCode::OK, json!({ "call": id, "paused": body.paused }))
}

/// Asks the switch (`make` wraps the reply channel into the request) and
/// waits for its answer; 503 when the switch is stopping.
async fn ask_switch<T>(
    api: &Api,
    make: impl FnOnce(tokio::sync::oneshot::Sender<T>) -> EdgeRequest,
) -> Result<T, ApiError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let _ = api.switch.send(crate::runtime::Input::Edge(make(tx)));
    rx.await
        .map_err(|_| err(StatusCode::SERVICE_UNAVAILABLE, "the switch is stopping"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransferBody {
    to: String,
}

/// Hands a call on (blind transfer): to another agent's extension or a
/// queue's transfer code. The agent on the call, or a supervisor; the
/// caller hears hold music until the target answers.
async fn transfer(
    State(api): State<Arc<Api>>,
    Caller(user): Caller,
    Path(call): Path<String>,
    body: Result<Json<TransferBody>, JsonRejection>,
) -> Reply {
    let id = parse_call(&call)?;
    let body = json_body(body, r#"{"to": "2003"}"#)?;
    let to = body.to.trim().to_string();
    if to.is_empty() || to.len() > 64 {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "to: an agent's extension or a queue's transfer code",
        ));
    }
    let agent = hand_off_by(&user)?;
    let done = ask_switch(&api, |tx| EdgeRequest::Transfer {
        call: crate::ids::CallId(id),
        to: to.clone(),
        agent,
        reply: tx,
    })
    .await?;
    hand_off_reply(done, &user, &call, agent)?;
    ok(StatusCode::ACCEPTED, json!({ "call": id, "to": to }))
}

/// Who hands a call on: a supervisor (any call), or an agent (their own:
/// the switch checks); anyone else is refused.
fn hand_off_by(user: &User) -> Result<Option<crate::ids::AgentId>, ApiError> {
    match (&user.role, &user.agent) {
        (Role::Supervisor, _) => Ok(None),
        (Role::Agent, Some(a)) => Ok(Some(a.parse::<crate::ids::AgentId>().map_err(|_| {
            err(
                StatusCode::FORBIDDEN,
                format!("{} is not an agent", user.name),
            )
        })?)),
        _ => Err(err(
            StatusCode::FORBIDDEN,
            format!("{} may not hand calls on", user.name),
        )),
    }
}

/// The switch's word on a transfer or conference, as an HTTP answer.
fn hand_off_reply(
    done: Result<(), crate::call::TransferError>,
    user: &User,
    call: &str,
    agent: Option<crate::ids::AgentId>,
) -> Result<(), ApiError> {
    use crate::call::TransferError as E;
    match done {
        Ok(()) => Ok(()),
        Err(e @ (E::UnknownTarget | E::SameAgent)) => {
            Err(err(StatusCode::BAD_REQUEST, e.to_string()))
        }
        Err(e @ E::NotAllowed) => Err(err(StatusCode::FORBIDDEN, e.to_string())),
        Err(E::NoSuchCall) => Err(err(StatusCode::NOT_FOUND, format!("no call {call}"))),
        Err(E::NotOnCall) if agent.is_some() => Err(err(
            StatusCode::FORBIDDEN,
            format!("{} is not on call {call}", user.name),
        )),
        Err(e) => Err(err(StatusCode::CONFLICT, e.to_string())),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConferenceBody {
    add: String,
}

/// Three-way call: another agent (`add`: their extension) is rung to join
/// the caller and the agent on the call. The agent on it, or a supervisor.
async fn conference(
    State(api): State<Arc<Api>>,
    Caller(user): Caller,
    Path(call): Path<String>,
    body: Result<Json<ConferenceBody>, JsonRejection>,
) -> Reply {
    let id = parse_call(&call)?;
    let body = json_body(body, r#"{"add": "2003"}"#)?;
    let add = body.add.trim().to_string();
    if add.is_empty() || add.len() > 16 {
        return Err(err(StatusCode::BAD_REQUEST, "add: an agent's extension"));
    }
    let agent = hand_off_by(&user)?;
    let done = ask_switch(&api, |tx| EdgeRequest::Conference {
        call: crate::ids::CallId(id),
        add: add.clone(),
        agent,
        reply: tx,
    })
    .await?;
    hand_off_reply(done, &user, &call, agent)?;
    ok(StatusCode::ACCEPTED, json!({ "call": id, "add": add }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MonitorBody {
    mode: String,
}

/// A supervisor listens in (`listen`), whispers to the agent (`whisper`)
/// or joins the conversation (`barge`) from their phone (the users file's
/// `phone`): the hotline rings it; posted again, the mode changes.
async fn monitor(
    State(api): State<Arc<Api>>,
    Caller(user): Caller,
    Path(call): Path<String>,
    body: Result<Json<MonitorBody>, JsonRejection>,
) -> Reply {
    let id = parse_call(&call)?;
    let body = json_body(body, r#"{"mode": "listen"}"#)?;
    if user.role != Role::Supervisor {
        return Err(err(
            StatusCode::FORBIDDEN,
            format!("{} is not a supervisor", user.name),
        ));
    }
    let mode = crate::call::event::MonitorMode::parse(&body.mode).ok_or_else(|| {
        err(
            StatusCode::BAD_REQUEST,
            "mode: \"listen\", \"whisper\" or \"barge\"",
        )
    })?;
    let phone = user
        .phone
        .as_deref()
        .and_then(|p| p.parse::<crate::ids::AgentId>().ok())
        .ok_or_else(|| {
            err(
                StatusCode::CONFLICT,
                format!("{} has no phone in the users file", user.name),
            )
        })?;
    let done = ask_switch(&api, |tx| EdgeRequest::Monitor {
        call: crate::ids::CallId(id),
        mode,
        phone,
        by: user.name.clone(),
        reply: tx,
    })
    .await?;
    match done {
        Ok(()) => ok(
            StatusCode::ACCEPTED,
            json!({ "call": id, "mode": mode.as_str(), "phone": phone.to_string() }),
        ),
        Err(crate::call::MonitorError::NotOnCall) => Err(err(
            StatusCode::NOT_FOUND,
            format!("call {call} is not a conversation with an agent"),
        )),
        Err(e) => Err(err(StatusCode::CONFLICT, e.to_string())),
    }
}

/// A recording's name as the hotline makes them: `<8 hex>-<call>-conv.wav`
/// (nothing a path could be made of).
fn recording_name(file: &str) -> bool {
    let Some(stem) = file.strip_suffix("-conv.wav") else {
        return false;
    };
    let Some((seed, call)) = stem.split_once('-') else {
        return false;
    };
    seed.len() == 8
        && seed.bytes().all(|b| b.is_ascii_hexdigit())
        && !call.is_empty()
        && call.len() <= 20
        && call.bytes().all(|b| b.is_ascii_digit())
}

/// A conversation's recording (audio/wav), with HTTP Range so a browser's
/// `<audio>` can seek: supervisors, and the agents who talked in the call.
async fn recording(
    State(api): State<Arc<Api>>,
    Caller(user): Caller,
    Path(file): Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    if !recording_name(&file) {
        return Err(err(
            StatusCode::BAD_REQUEST,
            format!("{file:?} is not a recording's name"),
        ));
    }
    let unreadable = |e: crate::tickets::StoreError| {
        err(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the log cannot be read: {e}"),
        )
    };
    let call = api
        .store
        .call_of_recording(&file)
        .await
        .map_err(unreadable)?
        .ok_or_else(|| err(StatusCode::NOT_FOUND, format!("no recording {file}")))?;
    if user.role != Role::Supervisor {
        let events = api.store.call_events(&call).await.map_err(unreadable)?;
        let talked = events.iter().any(|e| {
            matches!(&e.kind, EventKind::CallAnswered { agent, .. } if Some(agent) == user.agent.as_ref())
        });
        if !talked {
            return Err(err(
                StatusCode::FORBIDDEN,
                format!("{} did not talk in that call", user.name),
            ));
        }
    }
    let path = api.recordings.join(&file);
    let gone = |_| err(StatusCode::NOT_FOUND, format!("{file} is gone (retention)"));
    let mut f = tokio::fs::File::open(&path).await.map_err(gone)?;
    let len = f.metadata().await.map_err(gone)?.len();
    let range = headers
        .get(axum::http::header::RANGE)
        .and_then(|v| v.to_str().ok());
    use axum::http::header;
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let read_err = |e: std::io::Error| err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    // Only the bytes asked for are read (a browser seeking asks often).
    match byte_range(range, len) {
        Ok(None) => {
            let mut bytes = Vec::with_capacity(len as usize);
            f.read_to_end(&mut bytes).await.map_err(read_err)?;
            Ok((
                [
                    (header::CONTENT_TYPE, "audio/wav".to_string()),
                    (header::ACCEPT_RANGES, "bytes".to_string()),
                ],
                bytes,
            )
                .into_response())
        }
        Ok(Some((start, end))) => {
            f.seek(std::io::SeekFrom::Start(start))
                .await
                .map_err(read_err)?;
            let mut bytes = vec![0u8; (end - start + 1) as usize];
            f.read_exact(&mut bytes).await.map_err(read_err)?;
            Ok((
                StatusCode::PARTIAL_CONTENT,
                [
                    (header::CONTENT_TYPE, "audio/wav".to_string()),
                    (header::ACCEPT_RANGES, "bytes".to_string()),
                    (header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}")),
                ],
                bytes,
            )
                .into_response())
        }
        Err(()) => Ok((
            StatusCode::RANGE_NOT_SATISFIABLE,
            [(header::CONTENT_RANGE, format!("bytes */{len}"))],
        )
            .into_response()),
    }
}

/// The one byte range a `Range` header asks of `len` bytes: none (the
/// whole), first and last byte, or Err (416: not satisfiable, or several).
fn byte_range(range: Option<&str>, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = range.and_then(|r| r.strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Err(());
    }
    let last = len.checked_sub(1).ok_or(())?;
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = if a.is_empty() {
        // The last b bytes.
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 {
            return Err(());
        }
        (len.saturating_sub(n), last)
    } else {
        let start: u64 = a.parse().map_err(|_| ())?;
        let end = if b.is_empty() {
            last
        } else {
            b.parse::<u64>().map_err(|_| ())?.min(last)
        };
        (start, end)
    };
    if start > end {
        return Err(());
    }
    Ok(Some((start, end)))
}

fn parse_call(call: &str) -> Result<u64, ApiError> {
    call.trim_start_matches('c').parse().map_err(|_| {
        err(
            StatusCode::BAD_REQUEST,
            format!("{call:?} is not a call id"),
        )
    })
}

/// The screen pop: the call's card, the owner's profile, their open tickets.
async fn call(
    State(api): State<Arc<Api>>,
    Caller(user): Caller,
    Path(call): Path<String>,
) -> Reply {
    let id = parse_call(&call)?;
    let card = api
        .desk
        .call(id)
        .ok_or_else(|| err(StatusCode::NOT_FOUND, format!("no call {call}")))?;
    if user.role == Role::Agent
        && !api
            .desk
            .offered(id, user.agent.as_deref().unwrap_or_default())
    {
        return Err(err(
            StatusCode::FORBIDDEN,
            format!("call {call} was not offered to {}", user.name),
        ));
    }
    let owner = match card.owner.clone() {
        Some(o) => {
            let owners = api.owners.clone();
            tokio::task::spawn_blocking(move || owners.by_id(&o))
                .await
                .ok()
                .and_then(Result::ok)
                .flatten()
        }
        None => None,
    };
    let open: Vec<TicketRow> = card
        .owner
        .as_deref()
        .and_then(|o| api.tickets.of_owner(o))
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.ticket.status != Status::Closed)
        .collect();
    ok(
        StatusCode::OK,
        json!({
            "call": card,
            "owner": owner.map(|o| json!({
                "id": o.id,
                "name": o.name,
                "site": o.site,
                "building": o.building,
                "unit": o.unit,
                "language": o.language,
                "class": o.class.as_str(),
                "points": o.points,
                "fee_balance": format!("{:.2}", o.fee_balance_cents as f64 / 100.0),
                "phones": o.phones,
            })),
            "open_tickets": open,
        }),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WrapUpBody {
    category: String,
    #[serde(default)]
    notes: String,
    severity: Option<Severity>,
    /// An open ticket to add the wrap-up to; none: a new ticket.
    ticket: Option<u64>,
    /// `open` (default: the ticket stays open for the department),
    /// `resolved` (resolved on the call, the owner agreeing on the line:
    /// the ticket is resolved and closed at once) or `note` (a call note,
    /// no ticket).
    #[serde(default)]
    resolution: Resolution,
}

#[derive(Deserialize, Default, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Resolution {
    #[default]
    Open,
    Resolved,
    Note,
}

/// The wrap-up form: a category and notes, written to the ticket log as the
/// agent; opens a ticket (with its SLA promise) or adds to an open one.
async fn wrap_up(
    State(api): State<Arc<Api>>,
    Caller(user): Caller,
    Path(call): Path<String>,
    body: Result<Json<WrapUpBody>, JsonRejection>,
) -> Reply {
    let id = parse_call(&call)?;
    let body = json_body(
        body,
        r#"{"category": "...", "notes": "...", "severity": "ordinary", "ticket": null}"#,
    )?;
    let category = body.category.trim().to_string();
    if category.is_empty() || category.len() > 64 || body.notes.len() > 4000 {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "category: 1-64 characters; notes: at most 4000",
        ));
    }
    let card = api
        .desk
        .call(id)
        .ok_or_else(|| err(StatusCode::NOT_FOUND, format!("no call {call}")))?;
    let agent = match (&user.role, &user.agent) {
        (Role::Agent, Some(a)) if card.answered_by.contains(a) => a.clone(),
        _ => {
            return Err(err(
                StatusCode::FORBIDDEN,
                format!("call {call} was not answered by {}", user.name),
            ));
        }
    };
    if body.resolution == Resolution::Note && body.ticket.is_some() {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "a call note goes without a ticket (resolution \"note\" and a ticket)",
        ));
    }
    let existing = match body.ticket {
        Some(t) => {
            let row = api
                .tickets
                .get(TicketId(t))
                .ok_or_else(|| err(StatusCode::NOT_FOUND, format!("no ticket T{t}")))?;
            let owners_own = card.owner.is_some() && row.ticket.owner == card.owner;
            if !owners_own && row.handler.as_deref() != Some(agent.as_str()) {
                return Err(err(
                    StatusCode::FORBIDDEN,
                    format!("ticket T{t} is neither the caller's nor handled by {agent}"),
                ));
            }
            Some(TicketId(t))
        }
        None => None,
    };
    if !api.desk.wrap_up(id) {
        return Err(err(
            StatusCode::CONFLICT,
            format!("call {call} is already wrapped up"),
        ));
    }
    let now = crate::runtime::tickets::now_ms();
    let actor = Actor::Agent(agent.clone());
    let notes = body.notes.trim().to_string();
    let ticket = match (existing, body.resolution) {
        (Some(t), _) => Some(t),
        (None, Resolution::Note) => None,
        (None, _) => {
            let building = match card.owner.clone() {
                Some(o) => {
                    let owners = api.owners.clone();
                    tokio::task::spawn_blocking(move || owners.by_id(&o))
                        .await
                        .ok()
                        .and_then(Result::ok)
                        .flatten()
                        .map(|o| o.building)
                }
                None => None,
            };
            let opened = NewEvent {
                ticket: None,
                call: Some(card.sip_call_id.clone()),
                at_ms: now,
                actor: actor.clone(),
                kind: EventKind::TicketOpened {
                    category: category.clone(),
                    severity: body.severity.unwrap_or(Severity::Ordinary),
                    owner: card.owner.clone(),
                    building,
                    summary: if notes.is_empty() {
                        format!("{category} (agent {agent})")
                    } else {
                        notes.clone()
                    },
                    phone: crate::owners::phone::normalize(&card.number, &api.plan),
                },
            };
            Some(
                open_ticket(&api.store, &api.sla, opened)
                    .await
                    .map_err(|e| {
                        api.desk.wrap_up_failed(id);
                        err(
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!("ticket not opened: {e}"),
                        )
                    })?,
            )
        }
    };
    let mut events = vec![NewEvent {
        ticket,
        call: Some(card.sip_call_id.clone()),
        at_ms: now,
        actor: actor.clone(),
        kind: EventKind::WrapUpCoded {
            code: category,
            notes: notes.clone(),
        },
    }];
    if body.resolution == Resolution::Resolved {
        // Resolved with the owner on the line: they confirmed it there.
        for kind in [
            EventKind::Resolved {
                note: if notes.is_empty() {
                    "resolved on the call".into()
                } else {
                    format!("resolved on the call: {notes}")
                },
            },
            EventKind::ConfirmedByOwner,
        ] {
            events.push(NewEvent {
                ticket,
                call: Some(card.sip_call_id.clone()),
                at_ms: now,
                actor: actor.clone(),
                kind,
            });
        }
    }
    api.store.append(events).await.map_err(|e| {
        api.desk.wrap_up_failed(id);
        err(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("wrap-up not written: {e}"),
        )
    })?;
    api.tickets.appended();
    ok(
        StatusCode::CREATED,
        json!({
            "ticket": ticket.map(|t| t.0),
            "created": ticket.is_some() && existing.is_none(),
            "closed": body.resolution == Resolution::Resolved,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_hotlines_own_recording_names_are_taken() {
        assert!(recording_name("00ab12cd-17-conv.wav"));
        for bad in [
            "../00ab12cd-17-conv.wav",
            "00ab12cd-17-conv.wav/..",
            "00ab12cd-x-conv.wav",
            "00ab12c-17-conv.wav",
            "owners.db",
            "00ab12cd--conv.wav",
        ] {
            assert!(!recording_name(bad), "{bad}");
        }
    }

    #[test]
    fn byte_ranges_as_browsers_ask_for_them() {
        assert_eq!(byte_range(None, 100), Ok(None));
        assert_eq!(byte_range(Some("bytes=0-"), 100), Ok(Some((0, 99))));
        assert_eq!(byte_range(Some("bytes=10-19"), 100), Ok(Some((10, 19))));
        assert_eq!(byte_range(Some("bytes=-10"), 100), Ok(Some((90, 99))));
        assert_eq!(byte_range(Some("bytes=90-500"), 100), Ok(Some((90, 99))));
        for bad in [
            "bytes=100-",
            "bytes=20-10",
            "bytes=a-b",
            "bytes=0-1,5-6",
            "bytes=-0",
        ] {
            assert_eq!(byte_range(Some(bad), 100), Err(()), "{bad}");
        }
        assert_eq!(byte_range(Some("bytes=0-"), 0), Err(()), "nothing to give");
    }
}
