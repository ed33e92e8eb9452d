//! Ticket queries: by owner, status, building, department and overdue.

use super::event::Department;
use super::projection::{Status, Ticket};

#[derive(Debug, Clone, Default)]
pub struct Query {
    pub owner: Option<String>,
    pub status: Option<Status>,
    pub building: Option<String>,
    pub department: Option<Department>,
    /// Only tickets overdue at this instant (Unix ms).
    pub overdue_at_ms: Option<i64>,
}

impl Query {
    pub fn matches(&self, t: &Ticket) -> bool {
        self.owner
            .as_ref()
            .is_none_or(|o| t.owner.as_ref() == Some(o))
            && self.status.is_none_or(|s| t.status == s)
            && self
                .building
                .as_ref()
                .is_none_or(|b| t.building.as_ref() == Some(b))
            && self.department.is_none_or(|d| t.department == Some(d))
            && self.overdue_at_ms.is_none_or(|now| t.is_overdue(now))
    }
}

/// One line per ticket, for the terminal.
pub fn table_line(t: &Ticket, now_ms: i64) -> String {
    let department = t.department.map(|d| d.as_str()).unwrap_or("-");
    let due = match t.deadline_ms {
        Some(d) if t.is_overdue(now_ms) => format!("overdue {} min", (now_ms - d) / 60_000),
        Some(d) if matches!(t.status, Status::Open | Status::Dispatched) => {
            format!("due in {} min", (d - now_ms).max(0) / 60_000)
        }
        _ => "-".into(),
    };
    format!(
        "{:<8} {:<10} {:<9} {:<10} {:<8} {:<18} {:<18} {}",
        t.id.to_string(),
        format!("{:?}", t.status).to_lowercase(),
        format!("{:?}", t.severity).to_lowercase(),
        t.category,
        t.building.as_deref().unwrap_or("-"),
        t.owner.as_deref().unwrap_or("-"),
        department,
        due
    )
}

/// Who did it, in words: "agent 2001", "system".
pub fn actor_text(actor: &crate::tickets::Actor) -> String {
    use crate::tickets::Actor;
    match actor {
        Actor::System => "system".into(),
        Actor::Caller(n) => format!("caller {n}"),
        Actor::Agent(a) => format!("agent {a}"),
        Actor::Supervisor(s) => format!("supervisor {s}"),
        Actor::Department(d) => format!("department {d}"),
    }
}

/// An event's fields as `key=value`, times (`*_ms`) in local time.
pub fn event_fields(kind: &crate::tickets::EventKind, local: crate::site::LocalTime) -> String {
    let Ok(serde_json::Value::Object(map)) = serde_json::to_value(kind) else {
        return String::new();
    };
    map.iter()
        .filter(|(k, _)| k.as_str() != "type")
        .map(|(k, v)| match v {
            serde_json::Value::Number(n)
                if k.ends_with("_ms") && !k.contains("waited") && !k.contains("talked") =>
            {
                let key = k.trim_end_matches("_ms");
                format!(
                    "{key}={}",
                    local
                        .format(n.as_i64().unwrap_or_default())
                        .replace(' ', "T")
                )
            }
            serde_json::Value::String(t) if t.is_empty() || t.contains(char::is_whitespace) => {
                format!("{k}={t:?}")
            }
            serde_json::Value::String(t) => format!("{k}={t}"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// One ticket and its events for people: words and local times.
pub fn ticket_text(
    t: &Ticket,
    events: &[crate::tickets::Event],
    local: crate::site::LocalTime,
) -> String {
    let when = |ms: Option<i64>| ms.map(|m| local.format(m)).unwrap_or_else(|| "-".into());
    let mut out = format!(
        "{}  {}  {}  {}\n",
        t.id,
        t.category,
        format!("{:?}", t.severity).to_lowercase(),
        t.status.as_str()
    );
    out += &format!(
        "owner {}  building {}  phone {}\n",
        t.owner.as_deref().unwrap_or("-"),
        t.building.as_deref().unwrap_or("-"),
        t.phone.as_deref().unwrap_or("-")
    );
    out += &format!("summary   {}\n", t.summary);
    out += &format!("opened    {}\n", local.format(t.opened_at_ms));
    out += &format!("promised  {}\n", when(t.deadline_ms));
    out += &format!("resolved  {}\n", when(t.resolved_at_ms));
    out += &format!("closed    {}\n", when(t.closed_at_ms));
    if let Some(d) = t.department {
        out += &format!(
            "sent to   {}{}\n",
            d.as_str(),
            t.person
                .as_deref()
                .map(|p| format!(" ({p})"))
                .unwrap_or_default()
        );
    }
    let mut flags = Vec::new();
    if t.sla_breached {
        flags.push("SLA breached".to_string());
    } else if t.sla_warned {
        flags.push("SLA warned".to_string());
    }
    if t.reopened > 0 {
        flags.push(format!("reopened {}x", t.reopened));
    }
    if t.escalations > 0 {
        flags.push(format!("escalated {}x", t.escalations));
    }
    if let Some(score) = t.survey_score {
        flags.push(format!("rated {score} of 5"));
    }
    if !flags.is_empty() {
        out += &format!("notes     {}\n", flags.join(", "));
    }
    if !t.calls.is_empty() {
        out += &format!("calls     {}\n", t.calls.join(" "));
    }
    out += "events:\n";
    for e in events {
        out += &format!(
            "  {}  {:<16} {:<22} {}\n",
            local.format(e.at_ms),
            actor_text(&e.actor),
            e.kind.name(),
            event_fields(&e.kind, local)
        );
    }
    out
}

pub const TABLE_HEADER: &str =
    "ticket   status     severity  category   building owner              department         due";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tickets::event::{EventId, EventKind, Severity, TicketId};
    use crate::tickets::{Actor, Event, Tickets};

    #[test]
    fn overdue_means_promise_passed_and_work_not_done() {
        let t0 = 1_000_000;
        let ev = |id: u64, at_ms: i64, kind: EventKind| Event {
            id: EventId(id),
            ticket: Some(TicketId(1)),
            call: None,
            at_ms,
            actor: Actor::System,
            kind,
        };
        let mut log = vec![
            ev(
                1,
                t0,
                EventKind::TicketOpened {
                    category: "water".into(),
                    severity: Severity::Ordinary,
                    owner: None,
                    building: None,
                    summary: String::new(),
                    phone: None,
                },
            ),
            ev(
                2,
                t0,
                EventKind::Committed {
                    deadline_ms: t0 + 30 * 60_000,
                },
            ),
        ];
        let q = |now| Query {
            overdue_at_ms: Some(now),
            ..Default::default()
        };
        let tickets = Tickets::replay(&log);
        let t = tickets.get(TicketId(1)).unwrap();
        assert!(!q(t0 + 29 * 60_000).matches(t));
        assert!(q(t0 + 31 * 60_000).matches(t));
        log.push(ev(
            3,
            t0 + 40 * 60_000,
            EventKind::Resolved {
                note: String::new(),
            },
        ));
        let tickets = Tickets::replay(&log);
        assert!(!q(t0 + 41 * 60_000).matches(tickets.get(TicketId(1)).unwrap()));
    }
}
