//! Webhook deliveries of dispatches, sans-IO: every `Dispatched` event to a
//! department with a webhook becomes a JSON POST, retried with exponential
//! backoff (1 s, 2 s, 4 s ... at most 5 min apart) until it is taken or the
//! attempts run out; either outcome is recorded as an event. What is pending
//! is derived from the log, so a restart re-delivers (at least once).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

use serde::Serialize;

use super::event::{Actor, Department, Event, EventKind, NewEvent, Severity, TicketId};

const FIRST_RETRY_MS: i64 = 1_000;
const MAX_RETRY_MS: i64 = 5 * 60_000;

/// What a department's webhook receives.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DispatchNotice {
    pub ticket: u64,
    pub department: Department,
    pub person: Option<String>,
    pub category: String,
    pub severity: Severity,
    pub owner: Option<String>,
    pub building: Option<String>,
    pub summary: String,
    pub dispatched_at_ms: i64,
}

/// A POST to make now.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub ticket: TicketId,
    pub url: String,
    pub notice: DispatchNotice,
}

#[derive(Debug)]
struct Pending {
    notice: DispatchNotice,
    attempts: u32,
    due_ms: i64,
    in_flight: bool,
}

/// What the notice repeats of the ticket's opening.
#[derive(Debug)]
struct Opened {
    category: String,
    severity: Severity,
    owner: Option<String>,
    building: Option<String>,
    summary: String,
}

#[derive(Debug, Default)]
pub struct Deliveries {
    webhooks: BTreeMap<Department, String>,
    max_attempts: u32,
    opened: HashMap<TicketId, Opened>,
    pending: HashMap<TicketId, Pending>,
    heap: BinaryHeap<Reverse<(i64, TicketId)>>,
}

impl Deliveries {
    pub fn new(webhooks: BTreeMap<Department, String>, max_attempts: u32) -> Self {
        Self {
            webhooks,
            max_attempts: max_attempts.max(1),
            ..Default::default()
        }
    }

    pub fn handle_event(&mut self, e: &Event) {
        let Some(id) = e.ticket else {
            return;
        };
        match &e.kind {
            EventKind::TicketOpened {
                category,
                severity,
                owner,
                building,
                summary,
                ..
            } => {
                self.opened.insert(
                    id,
                    Opened {
                        category: category.clone(),
                        severity: *severity,
                        owner: owner.clone(),
                        building: building.clone(),
                        summary: summary.clone(),
                    },
                );
            }
            EventKind::Dispatched { department, person } => {
                if !self.webhooks.contains_key(department) {
                    return;
                }
                let Some(o) = self.opened.get(&id) else {
                    return;
                };
                let notice = DispatchNotice {
                    ticket: id.0,
                    department: *department,
                    person: person.clone(),
                    category: o.category.clone(),
                    severity: o.severity,
                    owner: o.owner.clone(),
                    building: o.building.clone(),
                    summary: o.summary.clone(),
                    dispatched_at_ms: e.at_ms,
                };
                self.pending.insert(
                    id,
                    Pending {
                        notice,
                        attempts: 0,
                        due_ms: e.at_ms,
                        in_flight: false,
                    },
                );
                self.heap.push(Reverse((e.at_ms, id)));
            }
            EventKind::DispatchDelivered { .. } | EventKind::DispatchFailed { .. } => {
                self.pending.remove(&id);
            }
            _ => {}
        }
    }

    /// The earliest instant (Unix ms) a delivery may be due.
    pub fn poll_timeout(&self) -> Option<i64> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Deliveries to make now; each is in flight until its result comes back.
    pub fn poll_due(&mut self, now_ms: i64) -> Vec<Delivery> {
        let mut due = Vec::new();
        while let Some(Reverse((at, id))) = self.heap.peek().copied() {
            if at > now_ms {
                break;
            }
            self.heap.pop();
            let Some(p) = self.pending.get_mut(&id) else {
                continue;
            };
            if p.in_flight || p.due_ms != at {
                continue;
            }
            p.in_flight = true;
            due.push(Delivery {
                ticket: id,
                url: self.webhooks[&p.notice.department].clone(),
                notice: p.notice.clone(),
            });
        }
        due
    }

    /// The outcome of one POST. Returns the event to record when the
    /// delivery is over (taken, or out of attempts).
    pub fn handle_result(
        &mut self,
        ticket: TicketId,
        result: Result<(), String>,
        now_ms: i64,
    ) -> Option<NewEvent> {
        let p = self.pending.get_mut(&ticket)?;
        p.in_flight = false;
        p.attempts += 1;
        let department = p.notice.department;
        let kind = match result {
            Ok(()) => EventKind::DispatchDelivered {
                department,
                attempts: p.attempts,
            },
            Err(error) if p.attempts >= self.max_attempts => EventKind::DispatchFailed {
                department,
                attempts: p.attempts,
                error,
            },
            Err(_) => {
                let backoff = (FIRST_RETRY_MS << (p.attempts - 1).min(20)).min(MAX_RETRY_MS);
                p.due_ms = now_ms + backoff;
                self.heap.push(Reverse((p.due_ms, ticket)));
                return None;
            }
        };
        self.pending.remove(&ticket);
        Some(NewEvent {
            ticket: Some(ticket),
            call: None,
            at_ms: now_ms,
            actor: Actor::System,
            kind,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tickets::event::EventId;

    const T0: i64 = 1_000_000;

    fn setup(max_attempts: u32) -> Deliveries {
        let mut hooks = BTreeMap::new();
        hooks.insert(
            Department::Engineering,
            "http://127.0.0.1:9/hook".to_string(),
        );
        let mut d = Deliveries::new(hooks, max_attempts);
        let ev = |id, kind| Event {
            id: EventId(id),
            ticket: Some(TicketId(1)),
            call: None,
            at_ms: T0,
            actor: Actor::System,
            kind,
        };
        d.handle_event(&ev(
            1,
            EventKind::TicketOpened {
                category: "lift".into(),
                severity: Severity::Major,
                owner: Some("O-7".into()),
                building: Some("B2".into()),
                summary: "stuck".into(),
                phone: None,
            },
        ));
        d.handle_event(&ev(
            2,
            EventKind::Dispatched {
                department: Department::Engineering,
                person: None,
            },
        ));
        d
    }

    #[test]
    fn failed_posts_are_retried_with_doubling_backoff_then_recorded() {
        let mut d = setup(4);
        let mut tried_at = Vec::new();
        let mut recorded = None;
        let mut now = T0;
        while now < T0 + 60_000 && recorded.is_none() {
            for delivery in d.poll_due(now) {
                assert_eq!(delivery.notice.building.as_deref(), Some("B2"));
                tried_at.push(now - T0);
                recorded = d.handle_result(delivery.ticket, Err("HTTP 503".into()), now);
            }
            now += 100;
        }
        assert_eq!(tried_at, [0, 1_000, 3_000, 7_000]);
        assert!(matches!(
            recorded.unwrap().kind,
            EventKind::DispatchFailed { attempts: 4, .. }
        ));
        assert!(d.poll_due(T0 + 3_600_000).is_empty(), "given up");
    }

    #[test]
    fn a_taken_post_is_recorded_once() {
        let mut d = setup(8);
        let delivery = d.poll_due(T0).pop().unwrap();
        assert!(
            d.poll_due(T0 + 10_000).is_empty(),
            "in flight, not sent twice"
        );
        let event = d.handle_result(delivery.ticket, Ok(()), T0 + 50).unwrap();
        assert!(matches!(
            event.kind,
            EventKind::DispatchDelivered { attempts: 1, .. }
        ));
        assert!(d.handle_result(delivery.ticket, Ok(()), T0 + 60).is_none());
    }

    #[test]
    fn departments_without_a_webhook_get_nothing() {
        let mut d = Deliveries::new(BTreeMap::new(), 3);
        d.handle_event(&Event {
            id: EventId(2),
            ticket: Some(TicketId(1)),
            call: None,
            at_ms: T0,
            actor: Actor::System,
            kind: EventKind::Dispatched {
                department: Department::Cleaning,
                person: None,
            },
        });
        assert!(d.poll_due(T0).is_empty());
    }
}
