//! Who handles an owner's open tickets, folded from the log: the agent who
//! last answered the owner's call while a ticket was open, the agent who
//! answered the call a ticket was opened in, or an agent who wrote on the
//! ticket. A caller with an open ticket is offered first to that agent
//! (the ACD's sticky wait).

use std::collections::{BTreeMap, HashMap};

use super::event::{Actor, Event, EventKind, TicketId};

#[derive(Debug, Default)]
pub struct Handlers {
    /// Calls answered by an agent, until they end: call id -> agent.
    answered: HashMap<String, String>,
    tickets: BTreeMap<TicketId, Handled>,
    /// Owner -> their tickets, oldest first.
    by_owner: HashMap<String, Vec<TicketId>>,
    /// Owners whose answer may have changed since the last `take_changed`.
    changed: Vec<String>,
}

#[derive(Debug)]
struct Handled {
    owner: String,
    open: bool,
    agent: Option<String>,
}

impl Handlers {
    pub fn apply(&mut self, e: &Event) {
        match (&e.kind, e.ticket, &e.call) {
            (EventKind::CallAnswered { agent, owner, .. }, _, call) => {
                if let Some(call) = call {
                    self.answered.insert(call.clone(), agent.clone());
                }
                if let Some(owner) = owner {
                    for t in self.by_owner.get(owner).into_iter().flatten() {
                        let h = self.tickets.get_mut(t).expect("indexed");
                        if h.open {
                            h.agent = Some(agent.clone());
                        }
                    }
                    self.changed.push(owner.clone());
                }
            }
            (EventKind::CallEnded { .. }, _, Some(call)) => {
                self.answered.remove(call);
            }
            (
                EventKind::TicketOpened {
                    owner: Some(owner), ..
                },
                Some(id),
                call,
            ) => {
                let agent = match &e.actor {
                    Actor::Agent(a) => Some(a.clone()),
                    _ => call.as_ref().and_then(|c| self.answered.get(c)).cloned(),
                };
                self.tickets.insert(
                    id,
                    Handled {
                        owner: owner.clone(),
                        open: true,
                        agent,
                    },
                );
                self.by_owner.entry(owner.clone()).or_default().push(id);
                self.changed.push(owner.clone());
            }
            (kind, Some(id), _) => {
                let Some(h) = self.tickets.get_mut(&id) else {
                    return;
                };
                match kind {
                    EventKind::ConfirmedByOwner => h.open = false,
                    EventKind::Reopened { .. } => h.open = true,
                    _ => {}
                }
                if let Actor::Agent(a) = &e.actor {
                    h.agent = Some(a.clone());
                }
                self.changed.push(h.owner.clone());
            }
            _ => {}
        }
    }

    /// The agent handling `owner`'s most recent open ticket that has one.
    pub fn agent_for(&self, owner: &str) -> Option<&str> {
        self.by_owner
            .get(owner)?
            .iter()
            .rev()
            .map(|t| &self.tickets[t])
            .filter(|h| h.open)
            .find_map(|h| h.agent.as_deref())
    }

    /// The agent handling `ticket`, if any.
    pub fn handler(&self, ticket: TicketId) -> Option<&str> {
        self.tickets.get(&ticket)?.agent.as_deref()
    }

    /// `owner`'s tickets, oldest first.
    pub fn tickets_of(&self, owner: &str) -> &[TicketId] {
        self.by_owner
            .get(owner)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Owners whose handling agent may have changed, each once.
    pub fn take_changed(&mut self) -> Vec<String> {
        let mut owners = std::mem::take(&mut self.changed);
        owners.sort();
        owners.dedup();
        owners
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tickets::event::{EventId, Severity};

    struct Log(Vec<Event>);

    impl Log {
        fn push(&mut self, ticket: Option<u64>, call: Option<&str>, actor: Actor, kind: EventKind) {
            let id = EventId(self.0.len() as u64 + 1);
            self.0.push(Event {
                id,
                ticket: ticket.map(TicketId),
                call: call.map(str::to_string),
                at_ms: id.0 as i64,
                actor,
                kind,
            });
        }
        fn opened(&mut self, ticket: u64, call: Option<&str>, actor: Actor, owner: &str) {
            self.push(
                Some(ticket),
                call,
                actor,
                EventKind::TicketOpened {
                    category: "water".into(),
                    severity: Severity::Ordinary,
                    owner: Some(owner.into()),
                    building: None,
                    summary: "leak".into(),
                    phone: None,
                },
            );
        }
        fn answered(&mut self, call: &str, agent: &str, owner: &str) {
            self.push(
                None,
                Some(call),
                Actor::System,
                EventKind::CallAnswered {
                    agent: agent.into(),
                    owner: Some(owner.into()),
                    waited_ms: 0,
                },
            );
        }
        fn handlers(&self) -> Handlers {
            let mut h = Handlers::default();
            for e in &self.0 {
                h.apply(e);
            }
            h
        }
    }

    #[test]
    fn the_agent_who_answered_the_call_a_ticket_was_opened_in_handles_it() {
        let mut log = Log(Vec::new());
        log.answered("c1", "2003", "O-0001");
        log.opened(1, Some("c1"), Actor::System, "O-0001");
        assert_eq!(log.handlers().agent_for("O-0001"), Some("2003"));
        assert_eq!(log.handlers().agent_for("O-0002"), None);
    }

    #[test]
    fn a_later_call_about_an_open_ticket_moves_it_to_that_agent_and_closing_ends_it() {
        let mut log = Log(Vec::new());
        // Opened in the menu (no agent), then an agent takes a later call.
        log.opened(1, Some("c1"), Actor::System, "O-0001");
        assert_eq!(log.handlers().agent_for("O-0001"), None);
        log.answered("c2", "2002", "O-0001");
        assert_eq!(log.handlers().agent_for("O-0001"), Some("2002"));
        // An agent writing on the ticket takes it over.
        log.push(
            Some(1),
            None,
            Actor::Agent("2004".into()),
            EventKind::WrapUpCoded {
                code: "water".into(),
                notes: String::new(),
            },
        );
        assert_eq!(log.handlers().agent_for("O-0001"), Some("2004"));
        // Closed by the owner: nobody is sticky any more; reopened: again.
        log.push(
            Some(1),
            None,
            Actor::Caller("+8613800138000".into()),
            EventKind::ConfirmedByOwner,
        );
        assert_eq!(log.handlers().agent_for("O-0001"), None);
        log.push(
            Some(1),
            None,
            Actor::System,
            EventKind::Reopened {
                reason: "not fixed".into(),
            },
        );
        assert_eq!(log.handlers().agent_for("O-0001"), Some("2004"));
    }

    #[test]
    fn the_newest_open_ticket_with_a_handler_wins_and_changes_are_reported_once() {
        let mut log = Log(Vec::new());
        log.opened(1, None, Actor::Agent("2001".into()), "O-0001");
        log.opened(2, None, Actor::Agent("2003".into()), "O-0001");
        log.opened(3, None, Actor::System, "O-0001");
        let mut h = log.handlers();
        assert_eq!(h.agent_for("O-0001"), Some("2003"));
        assert_eq!(h.take_changed(), ["O-0001"]);
        assert!(h.take_changed().is_empty());
        // A call that ended is forgotten: a ticket opened after it by the
        // system has no handler from it.
        log.answered("c9", "2002", "O-0009");
        log.push(
            None,
            Some("c9"),
            Actor::System,
            EventKind::CallEnded {
                reason: "caller_hung_up".into(),
                code: None,
            },
        );
        log.opened(4, Some("c9"), Actor::System, "O-0009");
        assert_eq!(log.handlers().agent_for("O-0009"), None);
    }
}
