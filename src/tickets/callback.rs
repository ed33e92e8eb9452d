//! Callbacks that keep the caller's place, as the log tells them: a sans-IO
//! core fed from the log, like the return visits, so a callback survives a
//! restart and its retries are counted once.
//!
//! `CallbackRequested` (the caller hung up, their entry waits on in the
//! ACD) → `CallbackPlaced` when their place came up → `CallbackAnswered`
//! (done: an agent is rung) or `CallbackUnanswered`, after which the
//! callback is queued again in its place `retry` later (outside quiet
//! hours), up to `attempts` calls; then `CallbackGivenUp` and a ticket for
//! a person to follow up. After a restart every callback still waiting
//! is queued again with its first arrival (the ACD's entries were in the
//! old process).

use std::collections::BTreeMap;

use super::event::{Actor, Event, EventKind, NewEvent, Severity};
use super::return_visit::{QuietHours, VisitPolicy};
use crate::call::QueueCallback;

const MINUTE_MS: i64 = 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallbackPolicy {
    /// Calls per callback when the owner does not answer.
    pub attempts: u32,
    pub retry_ms: i64,
    pub quiet: QuietHours,
    /// A call with no outcome after this long (the hotline stopped
    /// mid-call) counts as unanswered.
    pub lost_after_ms: i64,
}

impl Default for CallbackPolicy {
    fn default() -> Self {
        Self {
            attempts: 3,
            retry_ms: 5 * MINUTE_MS,
            quiet: VisitPolicy::default().quiet,
            lost_after_ms: 5 * MINUTE_MS,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// In the ACD of this process, waiting for its place to come up.
    Waiting,
    /// To queue (again) at this moment: attempt `attempt` follows.
    Due { attempt: u32, at_ms: i64 },
    /// Attempt `attempt` placed at `since_ms`, no outcome yet.
    Calling { attempt: u32, since_ms: i64 },
    /// Every attempt unanswered: to give up.
    Exhausted { attempts: u32 },
    /// Asked for (a queueing or events); the log or the switch answers.
    Asked,
}

#[derive(Debug)]
struct Pending {
    request: QueueCallback,
    state: State,
}

#[derive(Debug)]
pub struct Callbacks {
    policy: CallbackPolicy,
    pending: BTreeMap<String, Pending>,
}

impl Callbacks {
    pub fn new(policy: CallbackPolicy) -> Self {
        Self {
            policy,
            pending: BTreeMap::new(),
        }
    }

    /// Callbacks not yet done.
    pub fn waiting(&self) -> usize {
        self.pending.len()
    }

    /// `live`: the event was written by this process (its ACD holds the
    /// entry); false: history read at start (the entry is gone).
    pub fn handle_event(&mut self, e: &Event, live: bool) {
        let p = self.policy;
        match &e.kind {
            EventKind::CallbackRequested {
                queue,
                priority,
                language,
                number,
                owner,
                since_ms,
            } => {
                let Some(callback) = e.call.clone() else {
                    return;
                };
                let state = match live {
                    true => State::Waiting,
                    false => State::Due {
                        attempt: 1,
                        at_ms: e.at_ms,
                    },
                };
                self.pending.insert(
                    callback.clone(),
                    Pending {
                        request: QueueCallback {
                            callback,
                            queue: queue.clone(),
                            language: language.clone(),
                            priority: *priority,
                            number: number.clone(),
                            owner: owner.clone(),
                            since_ms: *since_ms,
                            attempt: 1,
                        },
                        state,
                    },
                );
            }
            EventKind::CallbackQueued { callback, attempt } => {
                if let Some(c) = self.pending.get_mut(callback) {
                    c.state = match live {
                        true => State::Waiting,
                        false => State::Due {
                            attempt: *attempt,
                            at_ms: e.at_ms,
                        },
                    };
                }
            }
            EventKind::CallbackPlaced {
                callback, attempt, ..
            } => {
                if let Some(c) = self.pending.get_mut(callback) {
                    c.state = State::Calling {
                        attempt: *attempt,
                        since_ms: e.at_ms,
                    };
                }
            }
            EventKind::CallbackUnanswered {
                callback, attempt, ..
            } => {
                if let Some(c) = self.pending.get_mut(callback) {
                    c.state = if *attempt >= p.attempts {
                        State::Exhausted { attempts: *attempt }
                    } else {
                        State::Due {
                            attempt: attempt + 1,
                            at_ms: p.quiet.next_allowed(e.at_ms + p.retry_ms),
                        }
                    };
                }
            }
            EventKind::CallbackAnswered { callback }
            | EventKind::CallbackGivenUp { callback, .. } => {
                self.pending.remove(callback);
            }
            _ => {}
        }
    }

    /// What is due at `now`: events to append (lost attempts, give-ups and
    /// their follow-up tickets) and callbacks to queue again.
    pub fn handle_timeout(&mut self, now_ms: i64) -> (Vec<NewEvent>, Vec<QueueCallback>) {
        let p = self.policy;
        let mut events = Vec::new();
        let mut queue = Vec::new();
        for (callback, c) in self.pending.iter_mut() {
            let event = |kind| NewEvent {
                ticket: None,
                call: Some(callback.clone()),
                at_ms: now_ms,
                actor: Actor::System,
                kind,
            };
            match c.state {
                State::Due { attempt, at_ms } if at_ms <= now_ms && !p.quiet.is_quiet(now_ms) => {
                    queue.push(QueueCallback {
                        attempt,
                        ..c.request.clone()
                    });
                    c.state = State::Asked;
                }
                State::Due { attempt, at_ms } if at_ms <= now_ms => {
                    c.state = State::Due {
                        attempt,
                        at_ms: p.quiet.next_allowed(now_ms),
                    };
                }
                State::Calling { attempt, since_ms } if now_ms >= since_ms + p.lost_after_ms => {
                    events.push(event(EventKind::CallbackUnanswered {
                        callback: callback.clone(),
                        attempt,
                        reason: "no outcome (the hotline stopped during the call)".into(),
                    }));
                    c.state = State::Asked;
                }
                State::Exhausted { attempts } => {
                    let number = c.request.number.clone();
                    events.push(event(EventKind::CallbackGivenUp {
                        callback: callback.clone(),
                        attempts,
                        number: number.clone(),
                    }));
                    events.push(event(EventKind::TicketOpened {
                        category: "callback".into(),
                        severity: Severity::Ordinary,
                        owner: c.request.owner.clone(),
                        building: None,
                        summary: format!(
                            "asked to be called back (queue {}); {attempts} calls to {number} went unanswered: call them",
                            c.request.queue
                        ),
                        phone: Some(number),
                    }));
                    c.state = State::Asked;
                }
                _ => {}
            }
        }
        (events, queue)
    }

    pub fn poll_timeout(&self) -> Option<i64> {
        self.pending
            .values()
            .filter_map(|c| match c.state {
                State::Due { at_ms, .. } => Some(at_ms),
                State::Calling { since_ms, .. } => Some(since_ms + self.policy.lost_after_ms),
                State::Exhausted { .. } => Some(i64::MIN),
                State::Waiting | State::Asked => None,
            })
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tickets::event::EventId;

    /// 2026-11-23 10:00 in UTC+8 (02:00 UTC), outside the quiet hours.
    const T0: i64 = 1_795_399_200_000;
    const MIN: i64 = MINUTE_MS;

    struct Sim {
        c: Callbacks,
        now: i64,
        log: Vec<Event>,
        queued: Vec<QueueCallback>,
    }

    impl Sim {
        fn new() -> Self {
            Self {
                c: Callbacks::new(CallbackPolicy::default()),
                now: T0,
                log: Vec::new(),
                queued: Vec::new(),
            }
        }

        fn append(&mut self, kind: EventKind, live: bool) {
            let e = Event {
                id: EventId(self.log.len() as u64 + 1),
                ticket: None,
                call: Some("cb1@host".into()),
                at_ms: self.now,
                actor: Actor::System,
                kind,
            };
            self.c.handle_event(&e, live);
            self.log.push(e);
        }

        fn step(&mut self) {
            loop {
                let (events, queue) = self.c.handle_timeout(self.now);
                self.queued.extend(queue);
                if events.is_empty() {
                    return;
                }
                for e in events {
                    self.append(e.kind, true);
                }
            }
        }

        fn requested(&mut self, live: bool) {
            self.append(
                EventKind::CallbackRequested {
                    queue: "general".into(),
                    priority: 0,
                    language: "zh".into(),
                    number: "+8613800138000".into(),
                    owner: Some("O-0001".into()),
                    since_ms: T0 - 90_000,
                },
                live,
            );
            self.step();
        }

        fn attempt(&mut self, attempt: u32, answered: bool) {
            let callback = "cb1@host".to_string();
            self.append(
                EventKind::CallbackPlaced {
                    callback: callback.clone(),
                    attempt,
                    number: "+8613800138000".into(),
                },
                true,
            );
            self.now += 30_000;
            self.append(
                match answered {
                    true => EventKind::CallbackAnswered { callback },
                    false => EventKind::CallbackUnanswered {
                        callback,
                        attempt,
                        reason: "no answer (SIP 487)".into(),
                    },
                },
                true,
            );
            self.step();
        }
    }

    #[test]
    fn an_unanswered_callback_comes_back_in_its_place_after_the_retry_time() {
        let mut sim = Sim::new();
        sim.requested(true);
        assert!(sim.queued.is_empty(), "its entry waits in the ACD already");
        sim.attempt(1, false);
        assert!(sim.queued.is_empty());
        sim.now += 5 * MIN - 1;
        sim.step();
        assert!(sim.queued.is_empty());
        sim.now += 1;
        sim.step();
        assert_eq!(sim.queued.len(), 1);
        // The first arrival is kept: its place.
        assert_eq!(
            (sim.queued[0].attempt, sim.queued[0].since_ms),
            (2, T0 - 90_000)
        );
        sim.attempt(2, true);
        assert_eq!(sim.c.waiting(), 0);
    }

    #[test]
    fn after_the_last_attempt_a_ticket_asks_a_person_to_call() {
        let mut sim = Sim::new();
        sim.requested(true);
        for attempt in 1..=3 {
            if attempt > 1 {
                sim.now += 5 * MIN;
                sim.step();
            }
            sim.attempt(attempt, false);
        }
        let kinds: Vec<&str> = sim.log.iter().map(|e| e.kind.name()).collect();
        assert_eq!(
            &kinds[kinds.len() - 2..],
            ["callback_given_up", "ticket_opened"]
        );
        assert!(matches!(&sim.log.last().unwrap().kind,
            EventKind::TicketOpened { category, phone: Some(p), .. } if category == "callback" && p == "+8613800138000"));
        assert_eq!(sim.queued.len(), 2, "attempts 2 and 3 queued again");
        assert_eq!(sim.c.waiting(), 0);
    }

    #[test]
    fn after_a_restart_a_waiting_callback_is_queued_again_at_once() {
        let mut sim = Sim::new();
        // Read from the log of the process before.
        sim.requested(false);
        assert_eq!(sim.queued.len(), 1);
        assert_eq!(sim.queued[0].attempt, 1);
        assert_eq!(sim.queued[0].callback, "cb1@host");
    }

    #[test]
    fn no_callback_is_placed_in_the_quiet_hours() {
        let mut sim = Sim::new();
        sim.requested(true);
        sim.attempt(1, false);
        // 10:00 local + 12 h = 22:00: quiet until 08:00.
        sim.now = T0 + 12 * 60 * MIN;
        sim.step();
        assert!(sim.queued.is_empty());
        sim.now = T0 + 22 * 60 * MIN;
        sim.step();
        assert_eq!(sim.queued.len(), 1);
    }
}
