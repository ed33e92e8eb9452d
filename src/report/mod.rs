//! Reports for continuous improvement: a day's (or a week's) figures,
//! recomputed from the log alone. The queue figures come from the same
//! statistics core the live figures do (`acd::stats`), fed the same facts
//! at the same times (the log's), so a report for a window agrees with what
//! `/metrics` showed for it. Tickets, return visits, satisfaction and
//! complaints come from the ticket events of the window.
//!
//! Output: JSON (API), CSV files (`--csv DIR`) and a printable HTML page
//! with plain SVG charts drawn here (`html.rs`; no CDN, no script).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::acd::stats::{Fact, Observed, QueueReport, Stats, StatsConfig};
use crate::acd::{AgentId, AgentState, CallId, QueuePlan};
use crate::clock::WallClock;
use crate::site::LocalTime;
use crate::tickets::{Event, EventKind, Status, Tickets};

pub mod html;

/// One queue's figures (over the report's window, or one hour of it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueFigures {
    pub queue: String,
    /// Calls that entered the queue and left it (answered, abandoned or
    /// sent to the fallback).
    pub offered: u32,
    #[serde(flatten)]
    pub figures: QueueReport,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HourFigures {
    /// Local hour of the day the calls entered the queue (0-23).
    pub hour: u32,
    pub queues: Vec<QueueFigures>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct AgentFigures {
    pub agent: String,
    /// Phones rung, offers missed, calls answered.
    pub offers: u32,
    pub misses: u32,
    pub answered: u32,
    /// Talk plus wrap-up, in all and per call.
    pub handle_seconds: f64,
    pub aht_seconds: Option<f64>,
    /// Busy (on calls, wrapping up) / staffed (logged in, not paused).
    pub occupancy: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct TicketFigures {
    pub opened: u32,
    pub by_category: BTreeMap<String, u32>,
    pub by_building: BTreeMap<String, u32>,
    pub by_severity: BTreeMap<String, u32>,
    /// Of the tickets opened in the window: resolved or closed without a
    /// breach, warned (not breached), breached, still open with no breach.
    pub sla_kept: u32,
    pub sla_warned: u32,
    pub sla_breached: u32,
    pub still_open: u32,
    /// Return visits in the window: owners who confirmed the fix, said it
    /// was not fixed, calls not answered, visits given up.
    pub confirmed: u32,
    pub not_fixed: u32,
    pub return_calls_unanswered: u32,
    pub return_visits_given_up: u32,
    /// 1-5 ratings given in the window.
    pub surveys: u32,
    pub satisfaction: Option<f64>,
    /// Complaint tickets, the buildings and categories they come from most
    /// (most first, at most ten).
    pub complaint_buildings: Vec<(String, u32)>,
    pub top_categories: Vec<(String, u32)>,
    pub group_complaints: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// "2026-12-01" or "2026-12-01 to 2026-12-07".
    pub title: String,
    pub from_ms: i64,
    pub to_ms: i64,
    pub threshold_seconds: u64,
    /// How abandons within the threshold count (see `acd::stats`).
    pub short_abandons: crate::acd::stats::ShortAbandons,
    pub queues: Vec<QueueFigures>,
    pub hours: Vec<HourFigures>,
    pub agents: Vec<AgentFigures>,
    pub occupancy: Option<f64>,
    pub tickets: TicketFigures,
}

/// The queue's side of the log, as facts for the statistics core, each at
/// its millisecond. Unknown queue names are left out (as live).
struct FactReader<'a> {
    plan: &'a QueuePlan,
    calls: HashMap<String, CallId>,
    /// The statistics' ids for the log's calls count on from here.
    first_call: u64,
    /// The log's milliseconds laid out as instants.
    clock: WallClock,
    /// Earlier milliseconds are taken as this one.
    floor_ms: i64,
}

impl<'a> FactReader<'a> {
    /// A report's reader: the log laid out from `origin` (any instant) as
    /// `origin_ms`, nothing earlier.
    fn from(plan: &'a QueuePlan, origin: Instant, origin_ms: i64) -> Self {
        Self {
            plan,
            calls: HashMap::new(),
            first_call: 1,
            clock: WallClock::paired(origin, origin_ms),
            floor_ms: origin_ms,
        }
    }

    fn call(&mut self, key: &str) -> CallId {
        let n = self.first_call + self.calls.len() as u64;
        *self.calls.entry(key.to_string()).or_insert(CallId(n))
    }

    /// When `ms` happened, as the statistics core counts time.
    fn at(&self, ms: i64) -> Option<Instant> {
        self.clock.instant(ms.max(self.floor_ms))
    }

    /// The fact an event stands for, and when.
    fn timed(&mut self, e: &Event) -> Option<(Instant, Fact)> {
        let at = self.at(e.at_ms)?;
        Some((at, self.fact(e, at)?))
    }

    /// Gives `stats` each of `events`' facts at its time.
    fn feed(&mut self, stats: &mut Stats, events: &[Event]) {
        for e in events {
            if let Some((at, f)) = self.timed(e) {
                stats.handle(at, &f);
            }
        }
    }

    fn fact(&mut self, e: &Event, at: Instant) -> Option<Fact> {
        let agent = |a: &str| a.parse::<AgentId>().ok();
        let call = || e.call.as_deref();
        Some(match &e.kind {
            EventKind::CallQueued { queue, .. } => Fact::Queued {
                call: self.call(call()?),
                queue: self.plan.id(queue)?.0 as usize,
            },
            EventKind::CallOffered { agent: a } => Fact::Offered { agent: agent(a)? },
            EventKind::CallOfferMissed { agent: a, .. } => Fact::Missed { agent: agent(a)? },
            EventKind::CallAnswered { agent: a, .. } => Fact::Answered {
                call: self.call(call()?),
                agent: agent(a)?,
            },
            EventKind::CallAbandoned { .. } => Fact::Left {
                call: self.call(call()?),
                overflow: false,
            },
            EventKind::CallOverflowed { .. } => Fact::Left {
                call: self.call(call()?),
                overflow: true,
            },
            EventKind::CallEnded { .. } => Fact::Over {
                call: self.call(call()?),
            },
            EventKind::AgentStateChanged {
                agent: a,
                state,
                reason,
            } => Fact::AgentChanged {
                agent: agent(a)?,
                state: state_of(state, reason, at)?,
            },
            _ => return None,
        })
    }
}

/// An agent state from its log label (the figures look at its kind only).
fn state_of(label: &str, reason: &str, at: Instant) -> Option<AgentState> {
    Some(match label {
        "logged_out" => AgentState::LoggedOut,
        "available" => AgentState::Available { since: at },
        "reserved" => AgentState::Reserved {
            call: CallId(0),
            until: at,
        },
        "on_call" => AgentState::OnCall { call: CallId(0) },
        "wrap_up" => AgentState::WrapUp { until: at },
        "paused" => AgentState::Paused {
            reason: reason.to_string(),
        },
        _ => return None,
    })
}

/// The queue figures of `[from_ms, to_ms)` recomputed from the log's
/// `events` (in log order): what the live statistics showed at `to_ms`
/// when their window covered the same stretch. `origin` is any instant
/// (the statistics count time in instants; the log in milliseconds).
pub fn replay(
    events: &[Event],
    plan: &QueuePlan,
    cfg: &StatsConfig,
    to_ms: i64,
    origin: Instant,
) -> crate::acd::stats::Report {
    let mut stats = Stats::new(cfg.clone(), plan.names().len());
    let mut reader = FactReader::from(plan, origin, events.first().map_or(to_ms, |e| e.at_ms));
    reader.feed(&mut stats, events);
    stats.report(reader.at(to_ms).unwrap_or(origin))
}

/// Gives live statistics that start late (a restart, a cluster's node
/// taking over) what the log says happened before: `events` (in log
/// order) at their milliseconds on the ACD's `clock`, so the figures over
/// the window run on from where the last process left them instead of
/// starting empty. The log's calls get ids of their own (from 2^62), apart
/// from the live ones; what they add to counters and histograms is
/// dropped: those are the process's own, and Prometheus keeps the rest.
pub fn seed(stats: &mut Stats, events: &[Event], plan: &QueuePlan, clock: &WallClock) {
    let mut reader = FactReader {
        plan,
        calls: HashMap::new(),
        first_call: 1 << 62,
        clock: *clock,
        floor_ms: i64::MIN,
    };
    reader.feed(stats, events);
    while stats.poll_observed().is_some() {}
}

fn figures(plan: &QueuePlan, report: &crate::acd::stats::Report) -> Vec<QueueFigures> {
    plan.names()
        .iter()
        .zip(&report.queues)
        .map(|(name, q)| QueueFigures {
            queue: name.clone(),
            offered: q.answered + q.abandoned + q.overflowed,
            figures: q.clone(),
        })
        .collect()
}

/// What a report is computed with: the queues, the service level's
/// definition and the site's time.
#[derive(Debug, Clone)]
pub struct Settings {
    pub plan: QueuePlan,
    pub threshold: Duration,
    pub short_abandons: crate::acd::stats::ShortAbandons,
    pub local: LocalTime,
}

/// A report's title and window: `days` local days from `date`
/// ("2026-12-01"; 1 for a day, 7 for a week).
pub fn period(local: LocalTime, date: &str, days: i64) -> Result<(String, i64, i64), String> {
    let (from, first_end) = local.day(date)?;
    let to = first_end + (days - 1) * 86_400_000;
    let title = if days == 1 {
        date.to_string()
    } else {
        format!("{date} to {}", local.date(to - 1))
    };
    Ok((title, from, to))
}

/// The report for `[from_ms, to_ms)` from that window's events (`origin`:
/// any instant, see [`replay`]).
pub fn build(
    title: String,
    events: &[Event],
    from_ms: i64,
    to_ms: i64,
    settings: &Settings,
    origin: Instant,
) -> Report {
    let Settings {
        plan,
        threshold,
        short_abandons,
        local,
    } = settings;
    let (threshold, short_abandons, local) = (*threshold, *short_abandons, *local);
    // The whole window, whatever its length.
    let cfg = StatsConfig {
        threshold,
        short_abandons,
        window: Duration::from_millis((to_ms - from_ms).max(0) as u64 + 1),
    };
    let queues = plan.names().len();
    let mut day = Stats::new(cfg.clone(), queues);
    let mut hours: Vec<Stats> = (0..24).map(|_| Stats::new(cfg.clone(), queues)).collect();
    let mut agents: BTreeMap<AgentId, (AgentFigures, Stats)> = BTreeMap::new();
    let mut hour_of: HashMap<CallId, usize> = HashMap::new();
    let mut reader = FactReader::from(plan, origin, from_ms);
    for e in events {
        let Some((now, fact)) = reader.timed(e) else {
            continue;
        };
        day.handle(now, &fact);
        match &fact {
            Fact::Queued { call, .. } => {
                // Counted in the hour it first queued (again after a
                // transfer: the same call).
                let h = *hour_of.entry(*call).or_insert(local.hour(e.at_ms) as usize);
                hours[h].handle(now, &fact);
            }
            Fact::Over { call } => {
                if let Some(h) = hour_of.remove(call) {
                    hours[h].handle(now, &fact);
                }
            }
            Fact::Answered { call, .. } | Fact::Left { call, .. } => {
                if let Some(h) = hour_of.get(call) {
                    hours[*h].handle(now, &fact);
                }
            }
            Fact::AgentChanged { agent, .. } => {
                for h in &mut hours {
                    h.handle(now, &fact);
                }
                let (_, own) = agents
                    .entry(*agent)
                    .or_insert_with(|| new_agent(*agent, &cfg));
                own.handle(now, &fact);
            }
            Fact::Offered { .. } | Fact::Missed { .. } => {}
        }
        while let Some(o) = day.poll_observed() {
            let agent = match o {
                Observed::Offered { agent }
                | Observed::Missed { agent }
                | Observed::Handled { agent, .. } => agent,
                _ => continue,
            };
            let (a, _) = agents
                .entry(agent)
                .or_insert_with(|| new_agent(agent, &cfg));
            match o {
                Observed::Offered { .. } => a.offers += 1,
                Observed::Missed { .. } => a.misses += 1,
                Observed::Handled { time, .. } => {
                    a.answered += 1;
                    a.handle_seconds += time.as_secs_f64();
                }
                _ => {}
            }
        }
        for h in &mut hours {
            while h.poll_observed().is_some() {}
        }
    }
    let end = reader.at(to_ms).unwrap_or(origin);
    let report = day.report(end);
    let hours = hours
        .iter_mut()
        .enumerate()
        .map(|(hour, s)| HourFigures {
            hour: hour as u32,
            queues: figures(plan, &s.report(end)),
        })
        .filter(|h| h.queues.iter().any(|q| q.offered > 0))
        .collect();
    let agents = agents
        .into_values()
        .map(|(mut a, mut own)| {
            a.aht_seconds = (a.answered > 0).then(|| a.handle_seconds / a.answered as f64);
            a.occupancy = own.report(end).occupancy;
            a
        })
        .collect();
    Report {
        title,
        from_ms,
        to_ms,
        threshold_seconds: threshold.as_secs(),
        short_abandons,
        queues: figures(plan, &report),
        hours,
        agents,
        occupancy: report.occupancy,
        tickets: tickets(events),
    }
}

/// An agent's row, and the statistics that measure their occupancy alone.
fn new_agent(agent: AgentId, cfg: &StatsConfig) -> (AgentFigures, Stats) {
    (
        AgentFigures {
            agent: agent.to_string(),
            ..AgentFigures::default()
        },
        Stats::new(cfg.clone(), 0),
    )
}

/// Is this a complaint (category "complaint" or one that names it)?
fn is_complaint(category: &str) -> bool {
    category.contains("complaint")
}

fn top(map: &BTreeMap<String, u32>, n: usize) -> Vec<(String, u32)> {
    let mut v: Vec<(String, u32)> = map.iter().map(|(k, v)| (k.clone(), *v)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(n);
    v
}

fn tickets(events: &[Event]) -> TicketFigures {
    let mut f = TicketFigures::default();
    let mut complaints: BTreeMap<String, u32> = BTreeMap::new();
    let mut scores = 0u32;
    for e in events {
        match &e.kind {
            EventKind::TicketOpened {
                category,
                severity,
                building,
                ..
            } => {
                f.opened += 1;
                *f.by_category.entry(category.clone()).or_default() += 1;
                let building = building.clone().unwrap_or_else(|| "-".into());
                *f.by_building.entry(building.clone()).or_default() += 1;
                let severity = format!("{severity:?}").to_lowercase();
                *f.by_severity.entry(severity).or_default() += 1;
                if is_complaint(category) {
                    *complaints.entry(building).or_default() += 1;
                }
            }
            EventKind::ConfirmedByOwner => f.confirmed += 1,
            EventKind::Reopened { .. } if matches!(e.actor, crate::tickets::Actor::Caller(_)) => {
                f.not_fixed += 1
            }
            EventKind::ReturnCallUnanswered { .. } => f.return_calls_unanswered += 1,
            EventKind::ReturnVisitGivenUp { .. } => f.return_visits_given_up += 1,
            EventKind::SurveyAnswered { score } => {
                f.surveys += 1;
                scores += *score as u32;
            }
            EventKind::GroupComplaintRaised {
                building,
                category,
                owners,
                ..
            } => f
                .group_complaints
                .push(format!("{building}: {category} ({owners} owners)")),
            _ => {}
        }
    }
    f.satisfaction = (f.surveys > 0).then(|| scores as f64 / f.surveys as f64);
    for t in Tickets::replay(events).iter() {
        if t.sla_breached {
            f.sla_breached += 1;
        } else if matches!(t.status, Status::Resolved | Status::Closed) {
            f.sla_kept += 1;
        } else if t.sla_warned {
            f.sla_warned += 1;
        } else {
            f.still_open += 1;
        }
    }
    f.complaint_buildings = top(&complaints, 10);
    f.top_categories = top(&f.by_category, 10);
    f
}

/// The report's tables as CSV files in `dir`: queues, hours, agents,
/// tickets by category and by building.
pub fn write_csv(report: &Report, dir: &std::path::Path) -> std::io::Result<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    let opt = |v: Option<f64>| v.map(|x| format!("{x:.4}")).unwrap_or_default();
    let queue_row = |q: &QueueFigures| {
        let f = &q.figures;
        format!(
            "{},{},{},{},{},{},{},{},{},{}",
            csv_field(&q.queue),
            q.offered,
            f.answered,
            f.abandoned,
            f.overflowed,
            opt(f.service_level_answered),
            opt(f.service_level_offered),
            opt(f.abandon_rate),
            opt(f.asa_seconds),
            opt(f.aht_seconds)
        )
    };
    const QUEUE_HEAD: &str = "offered,answered,abandoned,overflowed,service_level_answered,service_level_offered,abandon_rate,asa_seconds,aht_seconds";
    let mut files = Vec::new();
    let mut write = |name: &str, text: String| -> std::io::Result<()> {
        std::fs::write(dir.join(name), text)?;
        files.push(name.to_string());
        Ok(())
    };
    let mut text = format!("queue,{QUEUE_HEAD}\n");
    for q in &report.queues {
        text += &queue_row(q);
        text.push('\n');
    }
    write("queues.csv", text)?;
    let mut text = format!("hour,queue,{QUEUE_HEAD}\n");
    for h in &report.hours {
        for q in h.queues.iter().filter(|q| q.offered > 0) {
            text += &format!("{},{}\n", h.hour, queue_row(q));
        }
    }
    write("hours.csv", text)?;
    let mut text =
        "agent,offers,misses,answered,handle_seconds,aht_seconds,occupancy\n".to_string();
    for a in &report.agents {
        text += &format!(
            "{},{},{},{},{:.1},{},{}\n",
            csv_field(&a.agent),
            a.offers,
            a.misses,
            a.answered,
            a.handle_seconds,
            opt(a.aht_seconds),
            opt(a.occupancy)
        );
    }
    write("agents.csv", text)?;
    for (name, map) in [
        ("tickets_by_category.csv", &report.tickets.by_category),
        ("tickets_by_building.csv", &report.tickets.by_building),
    ] {
        let mut text = "name,tickets\n".to_string();
        for (k, v) in map {
            text += &format!("{},{v}\n", csv_field(k));
        }
        write(name, text)?;
    }
    Ok(files)
}

/// A CSV field, quoted when it must be; a leading =, +, - or @ is
/// prefixed with ' so a spreadsheet does not run it as a formula.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

#[cfg(test)]
mod tests;
