//! The agents' desks as the log last told them: which phones were
//! registered where and until when, and each agent's last state. A process
//! that starts (a cluster's standby taking over from a dead node) serves
//! with them, so agents stay logged in, paused ones stay paused with their
//! reason, and their phones are rung without registering again.

use std::collections::BTreeMap;

use super::event::{Event, EventKind};

/// An agent's phone, still registered at `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone {
    pub agent: String,
    pub contact: String,
    /// `udp:127.0.0.1:5062`, as written.
    pub source: String,
    pub expires_ms: i64,
}

/// How an agent comes back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Desk {
    /// Logged in and ready (a call they were on died with the old node).
    Ready,
    Paused {
        reason: String,
    },
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Desks {
    pub phones: Vec<Phone>,
    /// Agents who were logged in, in id order.
    pub agents: Vec<(String, Desk)>,
}

/// The desks after `events` (the log's recent past, in order), at `now_ms`.
pub fn desks(events: &[Event], now_ms: i64) -> Desks {
    let mut phones: BTreeMap<&str, Option<Phone>> = BTreeMap::new();
    let mut states: BTreeMap<&str, Option<Desk>> = BTreeMap::new();
    for e in events {
        match &e.kind {
            EventKind::AgentRegistered {
                agent,
                contact,
                source,
                expires_ms,
            } => {
                let phone = Phone {
                    agent: agent.clone(),
                    contact: contact.clone(),
                    source: source.clone(),
                    expires_ms: *expires_ms,
                };
                phones.insert(agent, Some(phone));
            }
            EventKind::AgentUnregistered { agent, .. } => {
                phones.insert(agent, None);
            }
            EventKind::AgentStateChanged {
                agent,
                state,
                reason,
            } => {
                let desk = match state.as_str() {
                    "logged_out" => None,
                    "paused" => Some(Desk::Paused {
                        reason: reason.clone(),
                    }),
                    _ => Some(Desk::Ready),
                };
                states.insert(agent, desk);
            }
            _ => {}
        }
    }
    Desks {
        phones: phones
            .into_values()
            .flatten()
            .filter(|p| p.expires_ms > now_ms)
            .collect(),
        agents: states
            .into_iter()
            .filter_map(|(a, d)| Some((a.to_string(), d?)))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tickets::{Actor, EventId};

    fn ev(id: u64, kind: EventKind) -> Event {
        Event {
            id: EventId(id),
            ticket: None,
            call: None,
            at_ms: id as i64,
            actor: Actor::System,
            kind,
        }
    }

    fn registered(agent: &str, port: u16, expires_ms: i64) -> EventKind {
        EventKind::AgentRegistered {
            agent: agent.into(),
            contact: format!("sip:{agent}@127.0.0.1:{port}"),
            source: format!("udp:127.0.0.1:{port}"),
            expires_ms,
        }
    }

    fn state(agent: &str, state: &str, reason: &str) -> EventKind {
        EventKind::AgentStateChanged {
            agent: agent.into(),
            state: state.into(),
            reason: reason.into(),
        }
    }

    #[test]
    fn phones_still_registered_and_agents_logged_in_come_back_as_the_log_left_them() {
        let events = [
            ev(1, registered("2001", 5062, 50_000)),
            ev(2, registered("2002", 5064, 50_000)),
            ev(3, registered("2003", 5066, 9_000)),
            ev(4, registered("2001", 5068, 60_000)),
            ev(
                5,
                EventKind::AgentUnregistered {
                    agent: "2002".into(),
                    expired: false,
                },
            ),
            ev(6, state("2001", "available", "")),
            ev(7, state("2001", "on_call", "")),
            ev(8, state("2002", "paused", "lunch")),
            ev(9, state("2003", "available", "")),
            ev(10, state("2003", "logged_out", "")),
        ];
        let d = desks(&events, 10_000);
        assert_eq!(
            d.phones,
            [Phone {
                agent: "2001".into(),
                contact: "sip:2001@127.0.0.1:5068".into(),
                source: "udp:127.0.0.1:5068".into(),
                expires_ms: 60_000,
            }],
            "the latest binding; unregistered and expired ones are gone"
        );
        assert_eq!(
            d.agents,
            [
                ("2001".into(), Desk::Ready),
                (
                    "2002".into(),
                    Desk::Paused {
                        reason: "lunch".into()
                    }
                ),
            ]
        );
    }
}
