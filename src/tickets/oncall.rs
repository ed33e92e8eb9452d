//! The emergency on-call chain: an emergency ticket (from the menu's 9 or
//! an agent's wrap-up) calls the people on duty for its department and
//! building (the [`Rota`]) one after the other through the gateway, each
//! hearing the ticket spoken and "press 1 to accept, 2 to pass", until one
//! accepts: then the ticket is `Dispatched` to them and `Committed` with
//! the arrival they promised. Everyone passed: the supervisor on duty is
//! called and the wallboard alerts (`OnCallEscalated`); then, after a
//! pause, the chain starts over, until someone accepts, the ticket is
//! resolved or a supervisor stops it.
//!
//! A sans-IO core fed from the log, like the return visits: every step is
//! an event, so a restart picks up where the chain was. `handle_timeout`
//! only asks for events (and the calls to place once they are written);
//! the state moves when they are read back, so nothing is asked twice. A
//! call placed before a crash whose outcome never came is declined once
//! overdue.

use std::collections::BTreeMap;

use super::event::{Actor, Department, Event, EventKind, NewEvent, Severity, TicketId};
use super::rota::{Rota, Swap};

const MINUTE_MS: i64 = 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainPolicy {
    /// After the supervisor, before the chain starts over.
    pub round_pause_ms: i64,
    /// What accepting promises the owner: on site within this.
    pub arrival_ms: i64,
    /// A call with no outcome after this long (the hotline stopped
    /// mid-call) counts as declined.
    pub lost_after_ms: i64,
    /// Once someone accepts, the owner is called and told help is coming.
    pub tell_owner: bool,
}

impl Default for ChainPolicy {
    fn default() -> Self {
        Self {
            round_pause_ms: MINUTE_MS,
            arrival_ms: 30 * MINUTE_MS,
            lost_after_ms: 5 * MINUTE_MS,
            tell_owner: false,
        }
    }
}

/// What the person called is told about the emergency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emergency {
    pub ticket: TicketId,
    pub category: String,
    pub building: Option<String>,
    pub owner: Option<String>,
    /// The owner's callback number.
    pub phone: Option<String>,
}

impl Emergency {
    /// The prompts that speak it in `lang`: the ticket's number, building,
    /// unit, category (when `has_prompt` knows `category_<category>`) and
    /// the owner's callback number, then "press 1 to accept, 2 to pass".
    pub fn speech(
        &self,
        lang: &str,
        unit: Option<&str>,
        has_prompt: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        use crate::ivr::say;
        let mut out = vec!["oncall_emergency".to_string()];
        out.extend(say::ticket(lang, self.ticket.0));
        if let Some(b) = self.building.as_deref().filter(|b| !b.is_empty()) {
            out.push("building_word".into());
            out.extend(say::digits(b));
        }
        if let Some(u) = unit.filter(|u| !u.is_empty()) {
            out.push("unit_word".into());
            out.extend(say::digits(u));
        }
        let category = format!("category_{}", self.category);
        if has_prompt(&category) {
            out.push(category);
        }
        if let Some(p) = self.phone.as_deref().filter(|p| !p.is_empty()) {
            out.push("callback_word".into());
            out.extend(say::digits(p));
        }
        out.push("oncall_press".into());
        out
    }
}

/// The owner to tell that help is coming (`tell_owner`): who (the
/// department) and within how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerNotice {
    pub emergency: Emergency,
    pub department: Department,
    pub arrival_minutes: i64,
}

impl OwnerNotice {
    /// The prompts that say it in `lang` (the department's name when
    /// `has_prompt` knows `department_<name>`).
    pub fn speech(&self, lang: &str, has_prompt: impl Fn(&str) -> bool) -> Vec<String> {
        use crate::ivr::say;
        let mut out = vec!["oncall_owner_notice".to_string()];
        out.extend(say::ticket(lang, self.emergency.ticket.0));
        let department = format!("department_{}", self.department.as_str());
        if has_prompt(&department) {
            out.push(department);
        }
        out.push("oncall_owner_coming".into());
        out.extend(say::number(lang, self.arrival_minutes));
        out.push("minutes_word".into());
        out.push("goodbye".into());
        out
    }
}

/// A call for the runtime to place (after appending its `OnCallCalled`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DutyCall {
    pub emergency: Emergency,
    pub round: u32,
    pub step: u32,
    /// The rota's id of the person.
    pub person: String,
    pub number: String,
    pub language: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// The next step is due at this moment.
    Due(i64),
    /// `person` was called at `since_ms`; the outcome is not in the log yet.
    Calling { person: String, since_ms: i64 },
    /// `person` accepted at `at_ms`: dispatch and promise to write.
    Accepted { person: String, at_ms: i64 },
    /// Events asked for; the state moves when they are read back.
    Asked,
}

#[derive(Debug)]
struct Chain {
    emergency: Emergency,
    department: Department,
    round: u32,
    /// The next (or current) step of the round: 0 the first on the chain.
    step: u32,
    /// The round's chain is done: the supervisor's step.
    escalated: bool,
    state: State,
}

#[derive(Debug)]
pub struct OnCallChains {
    rota: Rota,
    policy: ChainPolicy,
    /// Category -> department (the dispatch rules).
    departments: BTreeMap<String, Department>,
    chains: BTreeMap<TicketId, Chain>,
    /// Owners to tell that help is coming, once the dispatch is asked for.
    notices: Vec<OwnerNotice>,
    /// Chains that ended (accepted, stopped, resolved): a call still
    /// ringing for one is to stop.
    ended: Vec<TicketId>,
}

impl OnCallChains {
    pub fn new(
        rota: Rota,
        policy: ChainPolicy,
        departments: &BTreeMap<String, Department>,
    ) -> Self {
        Self {
            rota,
            policy,
            departments: departments.clone(),
            chains: BTreeMap::new(),
            notices: Vec::new(),
            ended: Vec::new(),
        }
    }

    pub fn rota(&self) -> &Rota {
        &self.rota
    }

    /// Chains running: ticket, round and the step being called.
    pub fn running(&self) -> impl Iterator<Item = (TicketId, u32, u32)> + '_ {
        self.chains.iter().map(|(t, c)| (*t, c.round, c.step))
    }

    pub fn handle_event(&mut self, e: &Event) {
        if let EventKind::OnCallShiftSwapped {
            department,
            out,
            into,
            from_ms,
            to_ms,
        } = &e.kind
        {
            self.rota.handle_swap(Swap {
                department: *department,
                out: out.clone(),
                into: into.clone(),
                from_ms: *from_ms,
                to_ms: *to_ms,
            });
            return;
        }
        let Some(ticket) = e.ticket else {
            return;
        };
        let pause = self.policy.round_pause_ms;
        if let EventKind::TicketOpened {
            category,
            severity: Severity::Emergency,
            owner,
            building,
            phone,
            ..
        } = &e.kind
        {
            let Some(&department) = self.departments.get(category) else {
                return; // no department: nobody on a rota to call
            };
            self.chains.insert(
                ticket,
                Chain {
                    emergency: Emergency {
                        ticket,
                        category: category.clone(),
                        building: building.clone(),
                        owner: owner.clone(),
                        phone: phone.clone(),
                    },
                    department,
                    round: 1,
                    step: 0,
                    escalated: false,
                    state: State::Due(e.at_ms),
                },
            );
            return;
        }
        let Some(chain) = self.chains.get_mut(&ticket) else {
            return;
        };
        match &e.kind {
            EventKind::OnCallCalled {
                round,
                step,
                person,
                ..
            } => {
                (chain.round, chain.step) = (*round, *step);
                chain.state = State::Calling {
                    person: person.clone(),
                    since_ms: e.at_ms,
                };
            }
            EventKind::OnCallDeclined { round, step, .. }
                if (*round, *step) == (chain.round, chain.step) =>
            {
                if chain.escalated {
                    // The supervisor too: the chain starts over.
                    chain.round += 1;
                    chain.step = 0;
                    chain.escalated = false;
                    chain.state = State::Due(e.at_ms + pause);
                } else {
                    chain.step += 1;
                    chain.state = State::Due(e.at_ms);
                }
            }
            EventKind::OnCallEscalated { round, supervisor } if *round == chain.round => {
                if supervisor.is_some() {
                    chain.escalated = true;
                    chain.state = State::Due(e.at_ms);
                } else {
                    chain.round += 1;
                    chain.step = 0;
                    chain.state = State::Due(e.at_ms + pause);
                }
            }
            EventKind::OnCallAccepted { person, .. } => {
                chain.state = State::Accepted {
                    person: person.clone(),
                    at_ms: e.at_ms,
                };
            }
            EventKind::Dispatched {
                person: Some(_), ..
            }
            | EventKind::OnCallStopped { .. }
            | EventKind::Resolved { .. }
            | EventKind::ConfirmedByOwner => {
                self.chains.remove(&ticket);
                self.ended.push(ticket);
            }
            _ => {}
        }
    }

    /// What is due at `now`: events to append, and the calls to place once
    /// they are written.
    pub fn handle_timeout(&mut self, now_ms: i64) -> (Vec<NewEvent>, Vec<DutyCall>) {
        let p = self.policy;
        let mut events = Vec::new();
        let mut calls = Vec::new();
        for (&ticket, chain) in self.chains.iter_mut() {
            let event = |kind| NewEvent {
                ticket: Some(ticket),
                call: None,
                at_ms: now_ms,
                actor: Actor::System,
                kind,
            };
            let (round, step) = (chain.round, chain.step);
            match &chain.state {
                State::Due(at) if *at <= now_ms => {
                    let lineup = self.rota.lineup(
                        chain.department,
                        chain.emergency.building.as_deref(),
                        now_ms,
                    );
                    let person = if chain.escalated {
                        lineup.supervisor.clone()
                    } else {
                        lineup.chain.get(step as usize).cloned()
                    };
                    match person.and_then(|id| self.rota.person(&id).map(|p| (id, p))) {
                        Some((id, who)) => {
                            events.push(event(EventKind::OnCallCalled {
                                round,
                                step,
                                person: id.clone(),
                                number: who.number.clone(),
                            }));
                            calls.push(DutyCall {
                                emergency: chain.emergency.clone(),
                                round,
                                step,
                                person: id,
                                number: who.number.clone(),
                                language: who.language.clone(),
                            });
                        }
                        None if chain.escalated => {
                            // The supervisor went off duty meanwhile.
                            events.push(event(EventKind::OnCallDeclined {
                                round,
                                step,
                                person: String::new(),
                                reason: "no supervisor on duty".into(),
                            }));
                        }
                        None => events.push(event(EventKind::OnCallEscalated {
                            round,
                            supervisor: lineup.supervisor,
                        })),
                    }
                    chain.state = State::Asked;
                }
                State::Calling { person, since_ms } if now_ms >= since_ms + p.lost_after_ms => {
                    events.push(event(EventKind::OnCallDeclined {
                        round,
                        step,
                        person: person.clone(),
                        reason: "no outcome (the hotline stopped during the call)".into(),
                    }));
                    chain.state = State::Asked;
                }
                State::Accepted { person, at_ms } => {
                    let name = self
                        .rota
                        .person(person)
                        .map_or_else(|| person.clone(), |p| p.name.clone());
                    events.push(NewEvent {
                        actor: Actor::Department(chain.department.as_str().into()),
                        ..event(EventKind::Dispatched {
                            department: chain.department,
                            person: Some(name),
                        })
                    });
                    events.push(event(EventKind::Committed {
                        deadline_ms: at_ms + p.arrival_ms,
                    }));
                    if p.tell_owner && chain.emergency.phone.is_some() {
                        self.notices.push(OwnerNotice {
                            emergency: chain.emergency.clone(),
                            department: chain.department,
                            arrival_minutes: p.arrival_ms / MINUTE_MS,
                        });
                    }
                    chain.state = State::Asked;
                }
                _ => {}
            }
        }
        (events, calls)
    }

    /// Owners to call and tell that help is coming (after the events of
    /// `handle_timeout` are written).
    pub fn poll_notice(&mut self) -> Option<OwnerNotice> {
        self.notices.pop()
    }

    /// A chain that ended since the last look (its calls are to stop).
    pub fn poll_ended(&mut self) -> Option<TicketId> {
        self.ended.pop()
    }

    /// The next instant `handle_timeout` has something to do.
    pub fn poll_timeout(&self) -> Option<i64> {
        self.chains
            .values()
            .filter_map(|c| match &c.state {
                State::Due(at) => Some(*at),
                State::Calling { since_ms, .. } => Some(since_ms + self.policy.lost_after_ms),
                State::Accepted { .. } => Some(i64::MIN),
                State::Asked => None,
            })
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tickets::event::EventId;
    use std::path::Path;

    /// Tuesday 2026-12-01 23:00 in Beijing: the night shift (wang, li; chen
    /// supervises).
    fn night() -> i64 {
        "2026-12-01T23:00:00+08:00"
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_millisecond()
    }

    const MIN: i64 = MINUTE_MS;

    /// The chain core with a fake clock and a log that feeds back what it
    /// asked for.
    struct Sim {
        c: OnCallChains,
        now: i64,
        log: Vec<Event>,
        calls: Vec<DutyCall>,
    }

    impl Sim {
        fn new() -> Self {
            let rota =
                Rota::parse(super::super::rota::tests::ROTA, Path::new("oncall.toml")).unwrap();
            Self {
                c: OnCallChains::new(
                    rota,
                    ChainPolicy::default(),
                    &crate::tickets::dispatch::default_rules(),
                ),
                now: night(),
                log: Vec::new(),
                calls: Vec::new(),
            }
        }

        fn append(&mut self, ticket: Option<TicketId>, actor: Actor, kind: EventKind) {
            let e = Event {
                id: EventId(self.log.len() as u64 + 1),
                ticket,
                call: None,
                at_ms: self.now,
                actor,
                kind,
            };
            self.c.handle_event(&e);
            self.log.push(e);
        }

        /// Runs due work at `now` and feeds its events back, until quiet.
        fn step(&mut self) {
            loop {
                let (events, calls) = self.c.handle_timeout(self.now);
                if events.is_empty() {
                    return;
                }
                for e in events {
                    self.append(e.ticket, e.actor, e.kind);
                }
                self.calls.extend(calls);
            }
        }

        fn advance(&mut self, ms: i64) {
            self.now += ms;
            self.step();
        }

        fn emergency(&mut self, ticket: u64, building: &str) {
            self.append(
                Some(TicketId(ticket)),
                Actor::Caller("+8613800138000".into()),
                EventKind::TicketOpened {
                    category: "water".into(),
                    severity: Severity::Emergency,
                    owner: Some("O-0001".into()),
                    building: Some(building.into()),
                    summary: "EMERGENCY".into(),
                    phone: Some("+8613800138000".into()),
                },
            );
            self.step();
        }

        fn declined(&mut self, ticket: u64, reason: &str) {
            let last = self.calls.last().unwrap().clone();
            self.append(
                Some(TicketId(ticket)),
                Actor::System,
                EventKind::OnCallDeclined {
                    round: last.round,
                    step: last.step,
                    person: last.person,
                    reason: reason.into(),
                },
            );
            self.step();
        }

        fn accepted(&mut self, ticket: u64) {
            let last = self.calls.last().unwrap().clone();
            self.append(
                Some(TicketId(ticket)),
                Actor::System,
                EventKind::OnCallAccepted {
                    round: last.round,
                    step: last.step,
                    person: last.person,
                },
            );
            self.step();
        }

        fn called(&self) -> Vec<String> {
            self.calls
                .iter()
                .map(|c| format!("{}:{}", c.round, c.person))
                .collect()
        }

        fn kinds(&self) -> Vec<&'static str> {
            self.log.iter().map(|e| e.kind.name()).collect()
        }
    }

    #[test]
    fn an_emergency_calls_the_first_on_duty_at_once_and_the_next_when_they_pass() {
        let mut sim = Sim::new();
        sim.emergency(1, "3");
        assert_eq!(sim.called(), ["1:wang"]);
        assert_eq!(sim.calls[0].number, "+8613900000001");
        assert_eq!(sim.calls[0].language, "zh");
        sim.advance(40_000);
        sim.declined(1, "no answer (487)");
        assert_eq!(sim.called(), ["1:wang", "1:li"]);
        sim.advance(30_000);
        sim.accepted(1);
        // Dispatched to Li by name, promised within 30 minutes of accepting.
        let dispatched = sim.log.iter().rev().find_map(|e| match &e.kind {
            EventKind::Dispatched { department, person } => Some((*department, person.clone())),
            _ => None,
        });
        assert_eq!(
            dispatched,
            Some((Department::Engineering, Some("Li Na".into())))
        );
        let committed = sim.log.iter().rev().find_map(|e| match &e.kind {
            EventKind::Committed { deadline_ms } => Some(*deadline_ms),
            _ => None,
        });
        assert_eq!(committed, Some(sim.now + 30 * MIN));
        // Over: no more calls, nothing due.
        sim.advance(60 * MIN);
        assert_eq!(sim.called(), ["1:wang", "1:li"]);
        assert_eq!(sim.c.poll_timeout(), None);
    }

    #[test]
    fn after_the_last_the_supervisor_then_the_whole_chain_again_after_a_pause() {
        let mut sim = Sim::new();
        sim.emergency(1, "3");
        sim.declined(1, "passed");
        sim.declined(1, "busy (486)");
        // Everyone passed: escalated, the supervisor called.
        assert_eq!(sim.called(), ["1:wang", "1:li", "1:chen"]);
        assert!(sim.log.iter().any(|e| matches!(&e.kind,
            EventKind::OnCallEscalated { round: 1, supervisor: Some(s) } if s == "chen")));
        sim.declined(1, "no answer (487)");
        // A minute's pause, then round 2 from the top.
        assert_eq!(sim.c.poll_timeout(), Some(sim.now + MIN));
        sim.advance(MIN - 1);
        assert_eq!(sim.called().len(), 3);
        sim.advance(1);
        assert_eq!(sim.called(), ["1:wang", "1:li", "1:chen", "2:wang"]);
        // A supervisor stops it: nothing more.
        sim.append(
            Some(TicketId(1)),
            Actor::Supervisor("s1".into()),
            EventKind::OnCallStopped {
                reason: "engineer sent by radio".into(),
            },
        );
        sim.advance(60 * MIN);
        assert_eq!(sim.called().len(), 4);
    }

    #[test]
    fn nobody_on_duty_raises_the_alert_every_round_until_someone_is() {
        let mut sim = Sim::new();
        // Saturday noon: no engineering shift at all.
        sim.now = night() + 3 * 24 * 60 * MIN + 13 * 60 * MIN;
        sim.emergency(1, "3");
        assert!(sim.called().is_empty());
        assert_eq!(sim.kinds().last(), Some(&"on_call_escalated"));
        sim.advance(MIN);
        let escalations = sim
            .log
            .iter()
            .filter(|e| {
                matches!(
                    e.kind,
                    EventKind::OnCallEscalated {
                        supervisor: None,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(escalations, 2);
        // Still nobody at 17:59; the night shift begins at 18:00, and the
        // next round calls Wang.
        sim.advance(5 * 60 * MIN + 58 * MIN);
        assert!(sim.called().is_empty());
        sim.advance(2 * MIN);
        assert_eq!(sim.calls.last().map(|c| c.person.as_str()), Some("wang"));
    }

    #[test]
    fn the_chain_survives_a_restart_from_the_log() {
        let mut sim = Sim::new();
        sim.emergency(1, "7");
        sim.declined(1, "passed");
        assert_eq!(sim.called(), ["1:smith", "1:wang"]);
        // The hotline stops while Wang's phone rings; a new one reads the log.
        let mut restarted = Sim::new();
        restarted.now = sim.now + 2 * MIN;
        for e in &sim.log {
            restarted.c.handle_event(e);
        }
        restarted.log = sim.log.clone();
        restarted.step();
        assert!(restarted.calls.is_empty(), "Wang is not called twice");
        // The lost call counts as declined once overdue; then the supervisor.
        restarted.advance(3 * MIN);
        assert!(restarted.log.iter().any(|e| matches!(&e.kind,
            EventKind::OnCallDeclined { person, reason, .. } if person == "wang" && reason.starts_with("no outcome"))));
        assert_eq!(restarted.called(), ["1:chen"]);
    }

    #[test]
    fn a_swapped_shift_and_an_ordinary_ticket() {
        let mut sim = Sim::new();
        sim.append(
            None,
            Actor::Supervisor("s1".into()),
            EventKind::OnCallShiftSwapped {
                department: Department::Engineering,
                out: "wang".into(),
                into: "smith".into(),
                from_ms: night() - 60 * MIN,
                to_ms: night() + 60 * MIN,
            },
        );
        // An ordinary repair starts no chain.
        sim.append(
            Some(TicketId(2)),
            Actor::System,
            EventKind::TicketOpened {
                category: "water".into(),
                severity: Severity::Ordinary,
                owner: None,
                building: None,
                summary: "drip".into(),
                phone: None,
            },
        );
        sim.step();
        assert!(sim.called().is_empty());
        sim.emergency(1, "3");
        assert_eq!(sim.called(), ["1:smith"]);
        assert_eq!(sim.calls[0].language, "en");
    }

    #[test]
    fn the_owner_is_told_help_is_coming_only_when_configured() {
        let mut sim = Sim::new();
        sim.emergency(1, "3");
        sim.accepted(1);
        assert_eq!(sim.c.poll_notice(), None, "tell_owner is off");
        let mut sim = Sim::new();
        sim.c.policy.tell_owner = true;
        sim.emergency(1, "3");
        sim.accepted(1);
        let notice = sim.c.poll_notice().expect("the owner to tell");
        assert_eq!(notice.department, Department::Engineering);
        assert_eq!(
            notice
                .speech("en", |p| p == "department_engineering")
                .join(" "),
            "oncall_owner_notice ticket_word num_1 department_engineering oncall_owner_coming num_30 minutes_word goodbye"
        );
        assert_eq!(sim.c.poll_notice(), None, "once");
    }

    #[test]
    fn the_ticket_is_spoken_in_the_persons_language() {
        let e = Emergency {
            ticket: TicketId(42),
            category: "water".into(),
            building: Some("3".into()),
            owner: Some("O-0001".into()),
            phone: Some("+86138".into()),
        };
        assert_eq!(
            e.speech("en", Some("1201"), |p| p == "category_water")
                .join(" "),
            "oncall_emergency ticket_word num_4 num_2 building_word num_3 unit_word num_1 num_2 num_0 num_1 \
             category_water callback_word num_8 num_6 num_1 num_3 num_8 oncall_press"
        );
        // Without the category's prompt, nothing is said for it.
        assert!(
            !e.speech("zh", None, |_| false)
                .contains(&"category_water".to_string())
        );
    }
}
