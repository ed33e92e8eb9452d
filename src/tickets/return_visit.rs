//! The closed loop: when a work order is resolved, the hotline calls the
//! owner back ("press 1 if it is fixed, 2 if not"). A sans-IO core fed from
//! the log, like the SLA timers.
//!
//! The log holds everything it needs, so a restart picks up where it was:
//! `Resolved` starts a visit (after `delay`, outside quiet hours);
//! `ReturnCallPlaced` is an attempt; `ReturnCallUnanswered` schedules the
//! next one `retry` later (outside quiet hours) or, after the last attempt,
//! asks for `ReturnVisitGivenUp`; the owner's answer (`ConfirmedByOwner`,
//! `Reopened`) or another resolution ends it. A call placed before a crash
//! whose outcome never came is counted as unanswered once it is overdue.

use std::collections::BTreeMap;

use super::event::{Actor, Event, EventKind, NewEvent, TicketId};

const MINUTE_MS: i64 = 60_000;
const DAY_MINUTES: i64 = 24 * 60;

/// Local times with no calls, e.g. 21:00-08:00 (may wrap midnight).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    /// Minutes after local midnight.
    pub start: u16,
    pub end: u16,
    /// The centre's local time minus UTC, in minutes.
    pub utc_offset_minutes: i16,
}

impl QuietHours {
    /// Parses `"21:00-08:00"` and `"+08:00"`.
    pub fn parse(hours: &str, utc_offset: &str) -> Result<Self, String> {
        let clock = |t: &str| -> Result<u16, String> {
            let (h, m) = t
                .trim()
                .split_once(':')
                .ok_or_else(|| format!("{t:?} is not HH:MM"))?;
            let (h, m): (u16, u16) = (
                h.parse().map_err(|_| format!("{t:?} is not HH:MM"))?,
                m.parse().map_err(|_| format!("{t:?} is not HH:MM"))?,
            );
            if h > 23 || m > 59 {
                return Err(format!("{t:?} is not a time of day"));
            }
            Ok(h * 60 + m)
        };
        let (start, end) = hours
            .split_once('-')
            .ok_or_else(|| format!("{hours:?} is not HH:MM-HH:MM"))?;
        let sign = match utc_offset.chars().next() {
            Some('+') => 1,
            Some('-') => -1,
            _ => return Err(format!("{utc_offset:?} is not +HH:MM or -HH:MM")),
        };
        let offset = clock(&utc_offset[1..])
            .map_err(|_| format!("{utc_offset:?} is not +HH:MM or -HH:MM"))?;
        if offset > 14 * 60 {
            return Err(format!("{utc_offset:?} is beyond UTC±14:00"));
        }
        Ok(Self {
            start: clock(start)?,
            end: clock(end)?,
            utc_offset_minutes: sign * offset as i16,
        })
    }

    fn local_minute(&self, at_ms: i64) -> i64 {
        (at_ms.div_euclid(MINUTE_MS) + self.utc_offset_minutes as i64).rem_euclid(DAY_MINUTES)
    }

    pub fn is_quiet(&self, at_ms: i64) -> bool {
        let (m, s, e) = (self.local_minute(at_ms), self.start as i64, self.end as i64);
        if s <= e {
            s <= m && m < e
        } else {
            m >= s || m < e
        }
    }

    /// `at_ms`, or the end of the quiet hours it falls in.
    pub fn next_allowed(&self, at_ms: i64) -> i64 {
        if !self.is_quiet(at_ms) {
            return at_ms;
        }
        let minute_start = at_ms - at_ms.rem_euclid(MINUTE_MS);
        let wait = (self.end as i64 - self.local_minute(at_ms)).rem_euclid(DAY_MINUTES);
        minute_start + wait * MINUTE_MS
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VisitPolicy {
    /// Calls per visit (the first and the retries).
    pub attempts: u32,
    pub retry_ms: i64,
    /// From the resolution to the first call.
    pub delay_ms: i64,
    /// An attempt with no outcome after this long (the hotline stopped
    /// mid-call) counts as unanswered.
    pub lost_after_ms: i64,
    pub quiet: QuietHours,
}

impl Default for VisitPolicy {
    fn default() -> Self {
        Self {
            attempts: 3,
            retry_ms: 30 * MINUTE_MS,
            delay_ms: 0,
            lost_after_ms: 10 * MINUTE_MS,
            quiet: QuietHours {
                start: 21 * 60,
                end: 8 * 60,
                utc_offset_minutes: 8 * 60,
            },
        }
    }
}

/// A call for the runtime to place (after appending its `ReturnCallPlaced`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueCall {
    pub ticket: TicketId,
    pub attempt: u32,
    pub number: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Attempts made so far; the next one at `at_ms`.
    Waiting { attempts: u32, at_ms: i64 },
    /// Attempt `attempt` placed at `since_ms`, outcome not yet in the log.
    Calling { attempt: u32, since_ms: i64 },
    /// Every attempt failed; `ReturnVisitGivenUp` not yet in the log.
    Exhausted { attempts: u32 },
}

#[derive(Debug)]
pub struct ReturnVisits {
    policy: VisitPolicy,
    /// Numbers the hotline may call back (matched in their E.164 form,
    /// written as the plan says); empty: any.
    allowed: Vec<crate::owners::phone::DialPattern>,
    plan: crate::owners::phone::NumberPlan,
    /// Callback numbers of tickets opened with one.
    numbers: BTreeMap<TicketId, String>,
    visits: BTreeMap<TicketId, State>,
}

impl ReturnVisits {
    pub fn new(policy: VisitPolicy) -> Self {
        Self {
            policy,
            allowed: Vec::new(),
            plan: Default::default(),
            numbers: BTreeMap::new(),
            visits: BTreeMap::new(),
        }
    }

    /// Only numbers matching one of `patterns` are called; a visit to any
    /// other is given up at once, without a call (the log says so).
    pub fn with_allowed_numbers(
        mut self,
        patterns: Vec<crate::owners::phone::DialPattern>,
        plan: crate::owners::phone::NumberPlan,
    ) -> Self {
        self.allowed = patterns;
        self.plan = plan;
        self
    }

    fn may_call(&self, number: &str) -> bool {
        if self.allowed.is_empty() {
            return true;
        }
        crate::owners::phone::normalize(number, &self.plan)
            .is_some_and(|e164| self.allowed.iter().any(|p| p.matches(&e164)))
    }

    pub fn handle_event(&mut self, e: &Event) {
        let Some(ticket) = e.ticket else {
            return;
        };
        let p = self.policy;
        match &e.kind {
            EventKind::TicketOpened {
                phone: Some(number),
                ..
            } => {
                self.numbers.insert(ticket, number.clone());
            }
            EventKind::Resolved { .. } if self.numbers.contains_key(&ticket) => {
                if !self.may_call(&self.numbers[&ticket]) {
                    // Not a number the centre calls (abroad, premium ...).
                    self.visits.insert(ticket, State::Exhausted { attempts: 0 });
                    return;
                }
                let at_ms = p.quiet.next_allowed(e.at_ms + p.delay_ms);
                self.visits
                    .insert(ticket, State::Waiting { attempts: 0, at_ms });
            }
            EventKind::ReturnCallPlaced { attempt, .. } if self.visits.contains_key(&ticket) => {
                self.visits.insert(
                    ticket,
                    State::Calling {
                        attempt: *attempt,
                        since_ms: e.at_ms,
                    },
                );
            }
            EventKind::ReturnCallUnanswered { attempt, .. }
                if self.visits.contains_key(&ticket) =>
            {
                let next = if *attempt >= p.attempts {
                    State::Exhausted { attempts: *attempt }
                } else {
                    State::Waiting {
                        attempts: *attempt,
                        at_ms: p.quiet.next_allowed(e.at_ms + p.retry_ms),
                    }
                };
                self.visits.insert(ticket, next);
            }
            EventKind::ConfirmedByOwner
            | EventKind::Reopened { .. }
            | EventKind::ReturnVisitGivenUp { .. } => {
                self.visits.remove(&ticket);
            }
            _ => {}
        }
    }

    /// What is due at `now`: events to append (give-ups, lost attempts, and
    /// the `ReturnCallPlaced` of each call) and the calls to place once
    /// those are written. Calls are only placed outside quiet hours.
    pub fn handle_timeout(&mut self, now_ms: i64) -> (Vec<NewEvent>, Vec<DueCall>) {
        let p = self.policy;
        let mut events = Vec::new();
        let mut calls = Vec::new();
        for (&ticket, state) in self.visits.iter_mut() {
            let event = |kind| NewEvent {
                ticket: Some(ticket),
                call: None,
                at_ms: now_ms,
                actor: Actor::System,
                kind,
            };
            match *state {
                State::Exhausted { attempts } => {
                    events.push(event(EventKind::ReturnVisitGivenUp { attempts }));
                    // Gone once the event is read back; not asked for twice meanwhile.
                    *state = State::Calling {
                        attempt: attempts,
                        since_ms: i64::MAX,
                    };
                }
                State::Calling { attempt, since_ms }
                    if since_ms != i64::MAX && now_ms >= since_ms + p.lost_after_ms =>
                {
                    events.push(event(EventKind::ReturnCallUnanswered {
                        attempt,
                        reason: "no outcome (the hotline stopped during the call)".into(),
                    }));
                    *state = State::Calling {
                        attempt,
                        since_ms: i64::MAX,
                    };
                }
                State::Waiting { attempts, at_ms }
                    if now_ms >= at_ms && !p.quiet.is_quiet(now_ms) =>
                {
                    let Some(number) = self.numbers.get(&ticket) else {
                        continue;
                    };
                    let attempt = attempts + 1;
                    events.push(event(EventKind::ReturnCallPlaced {
                        attempt,
                        number: number.clone(),
                    }));
                    calls.push(DueCall {
                        ticket,
                        attempt,
                        number: number.clone(),
                    });
                    *state = State::Calling {
                        attempt,
                        since_ms: now_ms,
                    };
                }
                State::Waiting { at_ms, .. } if now_ms >= at_ms => {
                    // Due, but quiet hours began meanwhile: at their end.
                    *state = match *state {
                        State::Waiting { attempts, .. } => State::Waiting {
                            attempts,
                            at_ms: p.quiet.next_allowed(now_ms),
                        },
                        other => other,
                    };
                }
                _ => {}
            }
        }
        (events, calls)
    }

    /// The next instant `handle_timeout` has something to do.
    pub fn poll_timeout(&self) -> Option<i64> {
        self.visits
            .values()
            .filter_map(|s| match *s {
                State::Waiting { at_ms, .. } => Some(at_ms),
                State::Calling { since_ms, .. } if since_ms != i64::MAX => {
                    Some(since_ms + self.policy.lost_after_ms)
                }
                State::Exhausted { .. } => Some(i64::MIN),
                State::Calling { .. } => None,
            })
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tickets::event::{EventId, Severity};

    /// 2026-11-23 10:00 in UTC+8 (02:00 UTC).
    const T0: i64 = 1_795_399_200_000;
    const MIN: i64 = MINUTE_MS;

    /// A tiny log: events in, ids assigned, fed to the core.
    struct Log {
        events: Vec<Event>,
        core: ReturnVisits,
    }

    impl Log {
        fn new(policy: VisitPolicy) -> Self {
            Self {
                events: Vec::new(),
                core: ReturnVisits::new(policy),
            }
        }

        fn append(&mut self, ticket: u64, at_ms: i64, kind: EventKind) {
            let e = Event {
                id: EventId(self.events.len() as u64 + 1),
                ticket: Some(TicketId(ticket)),
                call: None,
                at_ms,
                actor: Actor::System,
                kind,
            };
            self.core.handle_event(&e);
            self.events.push(e);
        }

        fn open_and_resolve(&mut self, at_ms: i64) {
            self.append(
                1,
                at_ms - 60 * MIN,
                EventKind::TicketOpened {
                    category: "water".into(),
                    severity: Severity::Ordinary,
                    owner: Some("O-1".into()),
                    building: Some("B1".into()),
                    summary: "leak".into(),
                    phone: Some("13800000001".into()),
                },
            );
            self.append(
                1,
                at_ms,
                EventKind::Resolved {
                    note: "fixed".into(),
                },
            );
        }

        /// Steps the clock a minute at a time; appends what the core emits
        /// and answers each call with `answer(attempt)` (None: unanswered).
        fn run(
            &mut self,
            from: i64,
            to: i64,
            answer: impl Fn(u32) -> Option<EventKind>,
        ) -> Vec<(i64, String)> {
            let mut seen = Vec::new();
            let mut now = from;
            while now <= to {
                let (events, calls) = self.core.handle_timeout(now);
                for e in events {
                    seen.push(((now - T0) / MIN, e.kind.name().to_string()));
                    self.append(e.ticket.unwrap().0, now, e.kind);
                }
                for call in calls {
                    match answer(call.attempt) {
                        Some(kind) => self.append(1, now, kind),
                        None => self.append(
                            1,
                            now,
                            EventKind::ReturnCallUnanswered {
                                attempt: call.attempt,
                                reason: "486".into(),
                            },
                        ),
                    }
                }
                now += MIN;
            }
            seen
        }
    }

    #[test]
    fn resolving_calls_the_owner_and_pressing_2_ends_the_visit() {
        let mut log = Log::new(VisitPolicy::default());
        log.open_and_resolve(T0);
        let seen = log.run(T0, T0 + 120 * MIN, |_| {
            Some(EventKind::Reopened {
                reason: "not fixed".into(),
            })
        });
        assert_eq!(seen, [(0, "return_call_placed".to_string())]);
        assert_eq!(log.core.poll_timeout(), None);
    }

    #[test]
    fn no_answer_is_retried_then_given_up() {
        let mut log = Log::new(VisitPolicy::default());
        log.open_and_resolve(T0);
        let seen = log.run(T0, T0 + 180 * MIN, |_| None);
        assert_eq!(
            seen,
            [
                (0, "return_call_placed".to_string()),
                (30, "return_call_placed".to_string()),
                (60, "return_call_placed".to_string()),
                (61, "return_visit_given_up".to_string()),
            ]
        );
    }

    #[test]
    fn retries_wait_for_the_end_of_quiet_hours() {
        // Resolved at 20:10 local: calls at 20:10 and 20:40, then quiet
        // from 21:00; the third call at 08:00 next morning.
        let evening = T0 + (10 * 60 + 10) * MIN;
        let mut log = Log::new(VisitPolicy::default());
        log.open_and_resolve(evening);
        let seen = log.run(evening, evening + 14 * 60 * MIN, |_| None);
        // Minutes after T0 (10:00): 20:10, 20:40, 08:00 the next day.
        assert_eq!(
            seen,
            [
                (610, "return_call_placed".to_string()),
                (640, "return_call_placed".to_string()),
                (1320, "return_call_placed".to_string()),
                (1321, "return_visit_given_up".to_string()),
            ]
        );
    }

    #[test]
    fn resolved_in_quiet_hours_is_called_in_the_morning() {
        let night = T0 + (13 * 60 + 30) * MIN; // 23:30 local
        let mut log = Log::new(VisitPolicy::default());
        log.open_and_resolve(night);
        let seen = log.run(night, night + 10 * 60 * MIN, |_| {
            Some(EventKind::ConfirmedByOwner)
        });
        assert_eq!(seen, [(1320, "return_call_placed".to_string())]); // 08:00
    }

    #[test]
    fn a_call_cut_by_a_restart_counts_as_unanswered_and_is_retried() {
        let mut log = Log::new(VisitPolicy::default());
        log.open_and_resolve(T0);
        let (events, calls) = log.core.handle_timeout(T0);
        assert_eq!(calls.len(), 1);
        for e in events {
            log.append(1, T0, e.kind);
        }
        // The process dies here. A new core reads the log.
        let mut fresh = ReturnVisits::new(VisitPolicy::default());
        for e in &log.events {
            fresh.handle_event(e);
        }
        log.core = fresh;
        let seen = log.run(T0 + 5 * MIN, T0 + 60 * MIN, |_| {
            Some(EventKind::ConfirmedByOwner)
        });
        assert_eq!(
            seen,
            [
                (10, "return_call_unanswered".to_string()),
                (40, "return_call_placed".to_string()),
            ]
        );
    }

    #[test]
    fn numbers_abroad_are_never_called_back() {
        let domestic = || {
            crate::owners::phone::DOMESTIC_NUMBERS
                .iter()
                .map(|p| crate::owners::phone::DialPattern::parse(p).unwrap())
                .collect::<Vec<_>>()
        };
        for (number, expected) in [
            (
                "+12125551234",
                vec![(0, "return_visit_given_up".to_string())],
            ),
            (
                "+8613800000001",
                vec![(0, "return_call_placed".to_string())],
            ),
            ("13800000001", vec![(0, "return_call_placed".to_string())]),
            (
                "0012125551234",
                vec![(0, "return_visit_given_up".to_string())],
            ),
        ] {
            let mut log = Log::new(VisitPolicy::default());
            log.core = ReturnVisits::new(VisitPolicy::default())
                .with_allowed_numbers(domestic(), Default::default());
            log.open_and_resolve(T0);
            if let EventKind::TicketOpened { phone, .. } = &mut log.events[0].kind {
                *phone = Some(number.into());
            }
            let mut fresh = ReturnVisits::new(VisitPolicy::default())
                .with_allowed_numbers(domestic(), Default::default());
            for e in &log.events {
                fresh.handle_event(e);
            }
            log.core = fresh;
            let seen = log.run(T0, T0 + 5 * MIN, |_| Some(EventKind::ConfirmedByOwner));
            assert_eq!(seen, expected, "{number}");
        }
    }

    #[test]
    fn tickets_without_a_number_get_no_call() {
        let mut core = ReturnVisits::new(VisitPolicy::default());
        let resolved = Event {
            id: EventId(2),
            ticket: Some(TicketId(1)),
            call: None,
            at_ms: T0,
            actor: Actor::System,
            kind: EventKind::Resolved {
                note: String::new(),
            },
        };
        core.handle_event(&resolved);
        assert_eq!(core.handle_timeout(T0 + MIN), (vec![], vec![]));
    }

    #[test]
    fn quiet_hours_parse_and_wrap_midnight() {
        let q = QuietHours::parse("21:00-08:00", "+08:00").unwrap();
        assert_eq!((q.start, q.end, q.utc_offset_minutes), (1260, 480, 480));
        assert!(!q.is_quiet(T0)); // 10:00
        assert!(q.is_quiet(T0 + 11 * 60 * MIN)); // 21:00
        assert!(q.is_quiet(T0 + 21 * 60 * MIN + 59 * MIN)); // 07:59
        assert!(!q.is_quiet(T0 + 22 * 60 * MIN)); // 08:00
        assert_eq!(q.next_allowed(T0 + 12 * 60 * MIN + 17), T0 + 22 * 60 * MIN);
        let day = QuietHours::parse("12:00-13:30", "-05:00").unwrap();
        assert_eq!(day.utc_offset_minutes, -300);
        for bad in [
            ("21-08", "+08:00"),
            ("21:00-25:00", "+08:00"),
            ("21:00-08:00", "8"),
        ] {
            assert!(QuietHours::parse(bad.0, bad.1).is_err(), "{bad:?}");
        }
    }
}
