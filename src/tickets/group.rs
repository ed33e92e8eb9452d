//! Group-complaint early warning, sans-IO: at least `threshold` different
//! owners of one building opening tickets of one category within `window`
//! raise one `GroupComplaintRaised` event. No second alert for the same
//! building and category until a window has passed since the last one.

use std::collections::{HashMap, VecDeque};

use super::event::{Actor, Event, EventKind, NewEvent};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupRule {
    pub threshold: usize,
    pub window_ms: i64,
}

impl Default for GroupRule {
    fn default() -> Self {
        Self {
            threshold: 3,
            window_ms: 60 * 60_000,
        }
    }
}

#[derive(Debug, Default)]
struct Key {
    /// (opened at, owner or the ticket number when the owner is unknown)
    recent: VecDeque<(i64, String)>,
    last_alert_ms: Option<i64>,
}

#[derive(Debug, Default)]
pub struct GroupComplaints {
    rule: GroupRule,
    keys: HashMap<(String, String), Key>,
}

impl GroupComplaints {
    pub fn new(rule: GroupRule) -> Self {
        Self {
            rule,
            keys: HashMap::new(),
        }
    }

    /// Feeds one event; returns the alert to append, if this one tips it.
    pub fn handle_event(&mut self, e: &Event) -> Option<NewEvent> {
        match &e.kind {
            EventKind::GroupComplaintRaised {
                building, category, ..
            } => {
                let key = self
                    .keys
                    .entry((building.clone(), category.clone()))
                    .or_default();
                key.last_alert_ms = Some(e.at_ms);
                None
            }
            EventKind::TicketOpened {
                category,
                owner,
                building: Some(building),
                ..
            } => {
                let window = self.rule.window_ms;
                let key = self
                    .keys
                    .entry((building.clone(), category.clone()))
                    .or_default();
                let who = owner.clone().unwrap_or_else(|| {
                    format!("ticket {}", e.ticket.map(|t| t.0).unwrap_or(e.id.0))
                });
                key.recent.push_back((e.at_ms, who));
                while key
                    .recent
                    .front()
                    .is_some_and(|(at, _)| *at <= e.at_ms - window)
                {
                    key.recent.pop_front();
                }
                let mut owners: Vec<&str> = key.recent.iter().map(|(_, o)| o.as_str()).collect();
                owners.sort_unstable();
                owners.dedup();
                let quiet = key.last_alert_ms.is_none_or(|at| at <= e.at_ms - window);
                if owners.len() < self.rule.threshold || !quiet {
                    return None;
                }
                key.last_alert_ms = Some(e.at_ms);
                Some(NewEvent {
                    ticket: None,
                    call: None,
                    at_ms: e.at_ms,
                    actor: Actor::System,
                    kind: EventKind::GroupComplaintRaised {
                        building: building.clone(),
                        category: category.clone(),
                        owners: owners.len() as u32,
                        window_minutes: (window / 60_000) as u32,
                    },
                })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tickets::event::{EventId, Severity, TicketId};

    const MIN: i64 = 60_000;

    fn complaint(id: u64, minute: i64, owner: &str, building: &str) -> Event {
        Event {
            id: EventId(id),
            ticket: Some(TicketId(id)),
            call: None,
            at_ms: minute * MIN,
            actor: Actor::Caller(owner.into()),
            kind: EventKind::TicketOpened {
                category: "noise".into(),
                severity: Severity::Ordinary,
                owner: Some(owner.into()),
                building: Some(building.into()),
                summary: String::new(),
                phone: None,
            },
        }
    }

    #[test]
    fn three_owners_of_one_building_within_an_hour_raise_one_alert() {
        let mut g = GroupComplaints::new(GroupRule::default());
        assert!(g.handle_event(&complaint(1, 0, "O-1", "B1")).is_none());
        assert!(
            g.handle_event(&complaint(2, 10, "O-1", "B1")).is_none(),
            "same owner twice"
        );
        assert!(
            g.handle_event(&complaint(3, 20, "O-2", "B2")).is_none(),
            "other building"
        );
        assert!(g.handle_event(&complaint(4, 30, "O-3", "B1")).is_none());
        let alert = g
            .handle_event(&complaint(5, 40, "O-4", "B1"))
            .expect("alert");
        assert!(matches!(
            alert.kind,
            EventKind::GroupComplaintRaised { owners: 3, ref building, .. } if building == "B1"
        ));
        assert!(
            g.handle_event(&complaint(6, 50, "O-5", "B1")).is_none(),
            "once per window"
        );
    }

    #[test]
    fn complaints_spread_over_more_than_the_window_do_not_alert() {
        let mut g = GroupComplaints::new(GroupRule::default());
        for (i, minute) in [0, 61, 122, 183].into_iter().enumerate() {
            let owner = format!("O-{i}");
            assert!(
                g.handle_event(&complaint(i as u64 + 1, minute, &owner, "B1"))
                    .is_none()
            );
        }
    }

    #[test]
    fn an_alert_in_the_log_is_not_raised_again_after_restart() {
        let mut g = GroupComplaints::new(GroupRule::default());
        let mut log = vec![
            complaint(1, 0, "O-1", "B1"),
            complaint(2, 1, "O-2", "B1"),
            complaint(3, 2, "O-3", "B1"),
        ];
        let raised = log.iter().find_map(|e| g.handle_event(e)).unwrap();
        log.push(Event {
            id: EventId(4),
            ticket: None,
            call: None,
            at_ms: raised.at_ms,
            actor: raised.actor,
            kind: raised.kind,
        });
        let mut after_restart = GroupComplaints::new(GroupRule::default());
        for e in &log[..3] {
            after_restart.handle_event(e); // replay: its output is ignored
        }
        after_restart.handle_event(&log[3]);
        assert!(
            after_restart
                .handle_event(&complaint(5, 3, "O-4", "B1"))
                .is_none()
        );
    }
}
