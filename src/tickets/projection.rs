//! Current ticket state, derived from the events and never edited in place:
//! replaying the same events always gives the same tickets.

use std::collections::BTreeMap;

use serde::Serialize;

use super::event::{Department, Event, EventKind, Severity, TicketId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Opened, not yet sent to a department.
    Open,
    Dispatched,
    /// The department says it is done; waiting for the owner's word.
    Resolved,
    /// The owner confirmed: the only way a ticket closes.
    Closed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Dispatched => "dispatched",
            Status::Resolved => "resolved",
            Status::Closed => "closed",
        }
    }
}

impl std::str::FromStr for Status {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "open" => Ok(Self::Open),
            "dispatched" => Ok(Self::Dispatched),
            "resolved" => Ok(Self::Resolved),
            "closed" => Ok(Self::Closed),
            _ => Err(format!("{s:?} is not open, dispatched, resolved or closed")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ticket {
    pub id: TicketId,
    pub category: String,
    pub severity: Severity,
    pub owner: Option<String>,
    pub building: Option<String>,
    pub summary: String,
    pub phone: Option<String>,
    pub status: Status,
    pub department: Option<Department>,
    pub person: Option<String>,
    pub opened_at_ms: i64,
    /// The time promised (the SLA deadline unless a later promise was made).
    pub deadline_ms: Option<i64>,
    pub resolved_at_ms: Option<i64>,
    pub closed_at_ms: Option<i64>,
    pub reopened: u32,
    pub sla_warned: bool,
    pub sla_breached: bool,
    pub escalations: u32,
    pub survey_score: Option<u8>,
    /// Return-visit calls placed since the last resolution, and whether
    /// they were given up.
    pub return_calls: u32,
    pub return_visit_given_up: bool,
    pub calls: Vec<String>,
    pub events: usize,
}

impl Ticket {
    /// Overdue: a promise exists, it has passed, and the work is not done.
    pub fn is_overdue(&self, now_ms: i64) -> bool {
        matches!(self.status, Status::Open | Status::Dispatched)
            && self.deadline_ms.is_some_and(|d| d < now_ms)
    }
}

/// All tickets, folded from the log.
#[derive(Debug, Default, Clone)]
pub struct Tickets {
    tickets: BTreeMap<TicketId, Ticket>,
}

impl Tickets {
    pub fn replay<'a>(events: impl IntoIterator<Item = &'a Event>) -> Self {
        let mut t = Tickets::default();
        for e in events {
            t.apply(e);
        }
        t
    }

    pub fn get(&self, id: TicketId) -> Option<&Ticket> {
        self.tickets.get(&id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Ticket> {
        self.tickets.values()
    }

    /// Folds one event in. Events of unknown tickets (other than an opening)
    /// are ignored: the log is the truth, a projection only reads it.
    pub fn apply(&mut self, e: &Event) {
        let Some(id) = e.ticket else {
            return;
        };
        if let EventKind::TicketOpened {
            category,
            severity,
            owner,
            building,
            summary,
            phone,
        } = &e.kind
        {
            self.tickets.entry(id).or_insert_with(|| Ticket {
                id,
                category: category.clone(),
                severity: *severity,
                owner: owner.clone(),
                building: building.clone(),
                summary: summary.clone(),
                phone: phone.clone(),
                status: Status::Open,
                department: None,
                person: None,
                opened_at_ms: e.at_ms,
                deadline_ms: None,
                resolved_at_ms: None,
                closed_at_ms: None,
                reopened: 0,
                sla_warned: false,
                sla_breached: false,
                escalations: 0,
                survey_score: None,
                return_calls: 0,
                return_visit_given_up: false,
                calls: Vec::new(),
                events: 0,
            });
        }
        let Some(t) = self.tickets.get_mut(&id) else {
            return;
        };
        t.events += 1;
        if let Some(call) = &e.call
            && !t.calls.contains(call)
        {
            t.calls.push(call.clone());
        }
        match &e.kind {
            EventKind::Dispatched { department, person } => {
                t.department = Some(*department);
                t.person = person.clone();
                if t.status == Status::Open {
                    t.status = Status::Dispatched;
                }
            }
            EventKind::Committed { deadline_ms } => t.deadline_ms = Some(*deadline_ms),
            EventKind::Escalated { .. } => t.escalations += 1,
            EventKind::Resolved { .. } => {
                t.return_calls = 0;
                t.return_visit_given_up = false;
                t.status = Status::Resolved;
                t.resolved_at_ms = Some(e.at_ms);
            }
            EventKind::ConfirmedByOwner => {
                t.status = Status::Closed;
                t.closed_at_ms = Some(e.at_ms);
            }
            EventKind::Reopened { .. } => {
                t.reopened += 1;
                t.resolved_at_ms = None;
                t.closed_at_ms = None;
                t.status = if t.department.is_some() {
                    Status::Dispatched
                } else {
                    Status::Open
                };
            }
            EventKind::SurveyAnswered { score } => t.survey_score = Some(*score),
            EventKind::ReturnCallPlaced { .. } => t.return_calls += 1,
            EventKind::ReturnVisitGivenUp { .. } => t.return_visit_given_up = true,
            EventKind::SlaWarned { .. } => t.sla_warned = true,
            EventKind::SlaBreached { .. } => t.sla_breached = true,
            _ => {}
        }
    }
}
