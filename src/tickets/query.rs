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
