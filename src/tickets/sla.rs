//! SLA timers, sans-IO: events and `now` in, warning and breach events out.
//!
//! Each open ticket has a deadline: opened + the commitment of its severity
//! (ordinary 30 min, major 6 h by default), or a later explicit promise
//! (`Committed`). At 80 % of the time a `SlaWarned` event is due, at the
//! deadline a `SlaBreached` one, unless the ticket was resolved first. The
//! state is rebuilt from the log after a restart: warnings and breaches
//! already written are not written again, and ones that fell due while the
//! process was down come out at the first `handle_timeout`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use super::event::{Actor, Event, EventKind, NewEvent, Severity, TicketId};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlaPolicy {
    pub ordinary_ms: i64,
    pub major_ms: i64,
    pub emergency_ms: i64,
    /// Share of the time after which the warning is due.
    pub warn_at: f64,
}

impl Default for SlaPolicy {
    fn default() -> Self {
        Self {
            ordinary_ms: 30 * 60_000,
            major_ms: 6 * 3_600_000,
            // An emergency (a leak, gas) must not wait longer than an ordinary request.
            emergency_ms: 30 * 60_000,
            warn_at: 0.8,
        }
    }
}

impl SlaPolicy {
    pub fn commitment_ms(&self, severity: Severity) -> i64 {
        match severity {
            Severity::Ordinary => self.ordinary_ms,
            Severity::Major => self.major_ms,
            Severity::Emergency => self.emergency_ms,
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    opened_ms: i64,
    deadline_ms: i64,
    warned: bool,
    breached: bool,
    resolved: bool,
}

impl Entry {
    fn warn_ms(&self, warn_at: f64) -> i64 {
        self.opened_ms + ((self.deadline_ms - self.opened_ms) as f64 * warn_at) as i64
    }

    /// The next instant something is due for this ticket.
    fn next_due(&self, warn_at: f64) -> Option<i64> {
        if self.resolved || self.breached {
            None
        } else if !self.warned {
            Some(self.warn_ms(warn_at))
        } else {
            Some(self.deadline_ms)
        }
    }
}

#[derive(Debug, Default)]
pub struct SlaTimers {
    policy: SlaPolicy,
    tickets: HashMap<TicketId, Entry>,
    /// (due, ticket); stale entries are skipped when popped.
    heap: BinaryHeap<Reverse<(i64, TicketId)>>,
}

impl SlaTimers {
    pub fn new(policy: SlaPolicy) -> Self {
        Self {
            policy,
            ..Default::default()
        }
    }

    /// Feeds one event from the log (live or replayed).
    pub fn handle_event(&mut self, e: &Event) {
        let Some(id) = e.ticket else {
            return;
        };
        match &e.kind {
            EventKind::TicketOpened { severity, .. } => {
                let deadline_ms = e.at_ms + self.policy.commitment_ms(*severity);
                self.tickets.insert(
                    id,
                    Entry {
                        opened_ms: e.at_ms,
                        deadline_ms,
                        warned: false,
                        breached: false,
                        resolved: false,
                    },
                );
            }
            EventKind::Committed { deadline_ms } => {
                if let Some(t) = self.tickets.get_mut(&id) {
                    t.deadline_ms = *deadline_ms;
                }
            }
            EventKind::Resolved { .. } | EventKind::ConfirmedByOwner => {
                if let Some(t) = self.tickets.get_mut(&id) {
                    t.resolved = true;
                }
            }
            EventKind::Reopened { .. } => {
                if let Some(t) = self.tickets.get_mut(&id) {
                    t.resolved = false;
                }
            }
            EventKind::SlaWarned { .. } => {
                if let Some(t) = self.tickets.get_mut(&id) {
                    t.warned = true;
                }
            }
            EventKind::SlaBreached { .. } => {
                if let Some(t) = self.tickets.get_mut(&id) {
                    t.warned = true;
                    t.breached = true;
                }
            }
            _ => return,
        }
        self.schedule(id);
    }

    fn schedule(&mut self, id: TicketId) {
        if let Some(due) = self
            .tickets
            .get(&id)
            .and_then(|t| t.next_due(self.policy.warn_at))
        {
            self.heap.push(Reverse((due, id)));
        }
    }

    /// The earliest instant (Unix ms) something may be due.
    pub fn poll_timeout(&self) -> Option<i64> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Everything due at `now_ms`, as events to append. They are marked done
    /// here already, so they come out once even before they are read back.
    pub fn handle_timeout(&mut self, now_ms: i64) -> Vec<NewEvent> {
        let mut out = Vec::new();
        while let Some(Reverse((due, id))) = self.heap.peek().copied() {
            if due > now_ms {
                break;
            }
            self.heap.pop();
            let warn_at = self.policy.warn_at;
            let Some(t) = self.tickets.get_mut(&id) else {
                continue;
            };
            if t.next_due(warn_at) != Some(due) {
                continue; // stale: resolved, re-promised or already handled
            }
            // A warning whose deadline has passed too (the process was down)
            // would only be noise beside the breach.
            let kind = if !t.warned && now_ms < t.deadline_ms {
                t.warned = true;
                EventKind::SlaWarned {
                    deadline_ms: t.deadline_ms,
                }
            } else {
                t.warned = true;
                t.breached = true;
                EventKind::SlaBreached {
                    deadline_ms: t.deadline_ms,
                }
            };
            out.push(NewEvent {
                ticket: Some(id),
                call: None,
                at_ms: now_ms,
                actor: Actor::System,
                kind,
            });
            self.schedule(id);
        }
        out
    }
}
