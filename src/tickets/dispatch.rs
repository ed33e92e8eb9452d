//! Dispatch rules, sans-IO: a ticket whose category has a rule goes to that
//! department at once (a `Dispatched` event), unless someone dispatched it
//! already. Tickets opened while the hotline was down are dispatched when it
//! comes back: what is pending is derived from the log.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::event::{Actor, Department, Event, EventKind, NewEvent, TicketId};

/// The default rules of a property-service centre.
pub fn default_rules() -> BTreeMap<String, Department> {
    use Department::*;
    [
        ("water", Engineering),
        ("electricity", Engineering),
        ("lift", Engineering),
        ("doors_and_locks", Engineering),
        ("repair", Engineering),
        ("cleaning", Cleaning),
        ("security", Security),
        ("noise", Security),
        ("parking", Security),
        ("garden", Landscaping),
        ("complaint", CustomerRelations),
        ("suggestion", CustomerRelations),
        ("gifts", CustomerRelations),
        ("message", CustomerRelations),
        ("callback", CustomerRelations),
    ]
    .into_iter()
    .map(|(c, d)| (c.to_string(), d))
    .collect()
}

#[derive(Debug, Default)]
pub struct AutoDispatch {
    rules: HashMap<String, Department>,
    /// Opened, with a rule, not dispatched yet.
    pending: BTreeSet<TicketId>,
    department: HashMap<TicketId, Department>,
}

impl AutoDispatch {
    pub fn new(rules: &BTreeMap<String, Department>) -> Self {
        Self {
            rules: rules.iter().map(|(c, d)| (c.clone(), *d)).collect(),
            ..Default::default()
        }
    }

    pub fn handle_event(&mut self, e: &Event) {
        let Some(id) = e.ticket else {
            return;
        };
        match &e.kind {
            EventKind::TicketOpened { category, .. } => {
                if let Some(d) = self.rules.get(category) {
                    self.pending.insert(id);
                    self.department.insert(id, *d);
                }
            }
            EventKind::Dispatched { .. } => {
                self.pending.remove(&id);
                self.department.remove(&id);
            }
            _ => {}
        }
    }

    /// The dispatches due now, once each.
    pub fn poll_dispatches(&mut self, now_ms: i64) -> Vec<NewEvent> {
        let pending = std::mem::take(&mut self.pending);
        pending
            .into_iter()
            .filter_map(|id| {
                let department = self.department.remove(&id)?;
                Some(NewEvent {
                    ticket: Some(id),
                    call: None,
                    at_ms: now_ms,
                    actor: Actor::System,
                    kind: EventKind::Dispatched {
                        department,
                        person: None,
                    },
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tickets::event::{EventId, Severity};

    fn event(id: u64, ticket: u64, kind: EventKind) -> Event {
        Event {
            id: EventId(id),
            ticket: Some(TicketId(ticket)),
            call: None,
            at_ms: 0,
            actor: Actor::System,
            kind,
        }
    }

    fn opened(id: u64, ticket: u64, category: &str) -> Event {
        event(
            id,
            ticket,
            EventKind::TicketOpened {
                category: category.into(),
                severity: Severity::Ordinary,
                owner: None,
                building: None,
                summary: String::new(),
                phone: None,
            },
        )
    }

    #[test]
    fn category_rule_dispatches_once() {
        let mut d = AutoDispatch::new(&default_rules());
        d.handle_event(&opened(1, 1, "lift"));
        d.handle_event(&opened(2, 2, "unknown-category"));
        let out = d.poll_dispatches(5);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].ticket, Some(TicketId(1)));
        assert!(matches!(
            out[0].kind,
            EventKind::Dispatched {
                department: Department::Engineering,
                ..
            }
        ));
        assert!(d.poll_dispatches(6).is_empty(), "once");
    }

    #[test]
    fn a_ticket_dispatched_by_hand_is_left_alone() {
        let mut d = AutoDispatch::new(&default_rules());
        d.handle_event(&opened(1, 1, "noise"));
        d.handle_event(&event(
            2,
            1,
            EventKind::Dispatched {
                department: Department::CustomerRelations,
                person: Some("Wang Fang".into()),
            },
        ));
        assert!(d.poll_dispatches(5).is_empty());
    }

    #[test]
    fn replayed_log_dispatches_what_was_left_pending() {
        let mut d = AutoDispatch::new(&default_rules());
        for e in [
            opened(1, 1, "water"),
            event(
                2,
                1,
                EventKind::Dispatched {
                    department: Department::Engineering,
                    person: None,
                },
            ),
            opened(3, 2, "cleaning"),
        ] {
            d.handle_event(&e);
        }
        let out = d.poll_dispatches(9);
        assert_eq!(
            out.iter().map(|e| e.ticket).collect::<Vec<_>>(),
            [Some(TicketId(2))]
        );
    }
}
