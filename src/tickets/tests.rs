//! The event store, the projection and the SLA timers, with a fake clock.

use super::sla::{SlaPolicy, SlaTimers};
use super::*;

const MIN: i64 = 60_000;
const T0: i64 = 1_790_000_000_000;

fn opened(at_ms: i64, severity: Severity, building: &str) -> NewEvent {
    NewEvent {
        ticket: None,
        call: Some("call-1".into()),
        at_ms,
        actor: Actor::Agent("2001".into()),
        kind: EventKind::TicketOpened {
            category: "water".into(),
            severity,
            owner: Some("O-0001".into()),
            building: Some(building.into()),
            summary: "leak under the sink".into(),
        },
    }
}

fn on(ticket: TicketId, at_ms: i64, kind: EventKind) -> NewEvent {
    NewEvent {
        ticket: Some(ticket),
        call: None,
        at_ms,
        actor: Actor::System,
        kind,
    }
}

#[test]
fn events_are_stored_in_order_and_replay_to_the_same_tickets() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("events.db")).unwrap();
    let first = store
        .append_blocking(vec![opened(T0, Severity::Ordinary, "B3")])
        .unwrap();
    let ticket = first[0].ticket.unwrap();
    assert_eq!(ticket, TicketId(1), "tickets are numbered from 1");
    store
        .append_blocking(vec![
            on(
                ticket,
                T0 + MIN,
                EventKind::Dispatched {
                    department: Department::Engineering,
                    person: Some("Li Wei".into()),
                },
            ),
            on(
                ticket,
                T0 + 20 * MIN,
                EventKind::Resolved {
                    note: "washer replaced".into(),
                },
            ),
        ])
        .unwrap();
    let events = store.ticket_events(ticket).unwrap();
    assert_eq!(events.iter().map(|e| e.id.0).collect::<Vec<_>>(), [1, 2, 3]);
    let tickets = Tickets::replay(&events);
    let t = tickets.get(ticket).unwrap();
    assert_eq!(t.status, Status::Resolved);
    assert_eq!(t.department, Some(Department::Engineering));
    assert_eq!(t.calls, ["call-1"]);
    // Reopening the store: same events, same state, ids continue.
    drop(store);
    let store = SqliteStore::open(&dir.path().join("events.db")).unwrap();
    assert_eq!(
        Tickets::replay(&store.all_events().unwrap()).get(ticket),
        Some(t)
    );
    let more = store
        .append_blocking(vec![
            on(ticket, T0 + 25 * MIN, EventKind::ConfirmedByOwner),
            opened(T0 + 26 * MIN, Severity::Major, "B4"),
        ])
        .unwrap();
    assert_eq!(
        more[1].ticket,
        Some(TicketId(2)),
        "ticket numbers continue after a restart"
    );
    assert_eq!(more[0].id, EventId(4));
}

#[test]
fn a_ticket_closes_only_when_the_owner_confirms() {
    let mut tickets = Tickets::default();
    let mut id = 0;
    let mut apply = |tickets: &mut Tickets, e: NewEvent| {
        id += 1;
        let ticket = e.ticket.or(Some(TicketId(id)));
        tickets.apply(&Event {
            id: EventId(id),
            ticket,
            call: e.call,
            at_ms: e.at_ms,
            actor: e.actor,
            kind: e.kind,
        });
    };
    apply(&mut tickets, opened(T0, Severity::Major, "B1"));
    let t = TicketId(1);
    apply(
        &mut tickets,
        on(
            t,
            T0 + MIN,
            EventKind::Resolved {
                note: String::new(),
            },
        ),
    );
    assert_eq!(tickets.get(t).unwrap().status, Status::Resolved);
    apply(
        &mut tickets,
        on(
            t,
            T0 + 2 * MIN,
            EventKind::Reopened {
                reason: "still leaking".into(),
            },
        ),
    );
    assert_eq!(tickets.get(t).unwrap().status, Status::Open);
    apply(
        &mut tickets,
        on(
            t,
            T0 + 3 * MIN,
            EventKind::Resolved {
                note: String::new(),
            },
        ),
    );
    apply(
        &mut tickets,
        on(t, T0 + 4 * MIN, EventKind::ConfirmedByOwner),
    );
    let t = tickets.get(t).unwrap();
    assert_eq!((t.status, t.reopened), (Status::Closed, 1));
}

#[test]
fn concurrent_appenders_share_commits_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(SqliteStore::open(&dir.path().join("events.db")).unwrap());
    let threads: Vec<_> = (0..8)
        .map(|n| {
            let store = store.clone();
            std::thread::spawn(move || {
                (0..200)
                    .map(|i| {
                        let e = NewEvent {
                            ticket: None,
                            call: Some(format!("c{n}-{i}")),
                            at_ms: T0 + i,
                            actor: Actor::System,
                            kind: EventKind::CallStarted {
                                from: format!("{n}"),
                                to: "100".into(),
                            },
                        };
                        store.append_blocking(vec![e]).unwrap()[0].id
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut acked: Vec<EventId> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    acked.sort();
    acked.dedup();
    assert_eq!(acked.len(), 1600, "every append got its own id");
    let stored: Vec<EventId> = store.all_events().unwrap().iter().map(|e| e.id).collect();
    assert_eq!(stored, acked);
}

#[tokio::test]
async fn async_append_from_a_tokio_task() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("events.db")).unwrap();
    let stored = store
        .append(vec![opened(T0, Severity::Ordinary, "B9")])
        .await
        .unwrap();
    assert_eq!(stored[0].ticket, Some(TicketId(1)));
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    drop(SqliteStore::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    assert!(matches!(
        SqliteStore::open(&path),
        Err(StoreError::SchemaTooNew { found: 99, .. })
    ));
}

// ---- SLA ------------------------------------------------------------------

/// The real store in a temporary folder: the SLA tests read back exactly
/// what a running hotline would.
struct Log {
    _dir: tempfile::TempDir,
    store: SqliteStore,
}

impl Default for Log {
    fn default() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("events.db")).unwrap();
        Self { _dir: dir, store }
    }
}

impl Log {
    fn append(&mut self, e: NewEvent) -> Event {
        self.store.append_blocking(vec![e]).unwrap().remove(0)
    }

    fn events(&self) -> Vec<Event> {
        self.store.all_events().unwrap()
    }

    /// Runs the timers from `from` to `to` in one-minute steps, appending and
    /// feeding back what they emit. Returns (minute offset, event name).
    fn run(&mut self, sla: &mut SlaTimers, from: i64, to: i64) -> Vec<(i64, &'static str)> {
        let mut seen = Vec::new();
        let mut now = from;
        while now <= to {
            for e in sla.handle_timeout(now) {
                let stored = self.append(e);
                seen.push(((now - T0) / MIN, stored.kind.name()));
                sla.handle_event(&stored);
            }
            now += MIN;
        }
        seen
    }
}

#[test]
fn ordinary_ticket_warns_at_24_minutes_and_breaches_at_30() {
    let mut log = Log::default();
    let mut sla = SlaTimers::new(SlaPolicy::default());
    sla.handle_event(&log.append(opened(T0, Severity::Ordinary, "B1")));
    assert_eq!(
        log.run(&mut sla, T0, T0 + 60 * MIN),
        [(24, "sla_warned"), (30, "sla_breached")]
    );
}

#[test]
fn major_ticket_has_six_hours() {
    let mut log = Log::default();
    let mut sla = SlaTimers::new(SlaPolicy::default());
    sla.handle_event(&log.append(opened(T0, Severity::Major, "B1")));
    assert_eq!(
        log.run(&mut sla, T0, T0 + 7 * 60 * MIN),
        [(288, "sla_warned"), (360, "sla_breached")]
    );
}

#[test]
fn resolving_in_time_stops_the_timers() {
    let mut log = Log::default();
    let mut sla = SlaTimers::new(SlaPolicy::default());
    let t = log.append(opened(T0, Severity::Ordinary, "B1"));
    sla.handle_event(&t);
    assert_eq!(log.run(&mut sla, T0, T0 + 25 * MIN), [(24, "sla_warned")]);
    let resolved = log.append(on(
        t.ticket.unwrap(),
        T0 + 26 * MIN,
        EventKind::Resolved {
            note: String::new(),
        },
    ));
    sla.handle_event(&resolved);
    assert!(log.run(&mut sla, T0 + 26 * MIN, T0 + 120 * MIN).is_empty());
}

#[test]
fn sla_survives_a_restart_without_repeating_itself() {
    let mut log = Log::default();
    let mut sla = SlaTimers::new(SlaPolicy::default());
    sla.handle_event(&log.append(opened(T0, Severity::Ordinary, "B1")));
    sla.handle_event(&log.append(opened(T0 + 10 * MIN, Severity::Ordinary, "B2")));
    // Running until minute 25: the first ticket warned.
    assert_eq!(log.run(&mut sla, T0, T0 + 25 * MIN), [(24, "sla_warned")]);
    // The process dies at minute 25 and comes back at minute 36: the new
    // timers are rebuilt from the log alone.
    drop(sla);
    let mut sla = SlaTimers::new(SlaPolicy::default());
    for e in &log.events() {
        sla.handle_event(e);
    }
    // What fell due while down comes out at once (the first ticket's breach,
    // the second's warning), nothing twice, and the rest on time.
    assert_eq!(
        log.run(&mut sla, T0 + 36 * MIN, T0 + 60 * MIN),
        [
            (36, "sla_breached"),
            (36, "sla_warned"),
            (40, "sla_breached")
        ]
    );
}

#[test]
fn down_past_the_deadline_gives_the_breach_without_a_stale_warning() {
    let mut log = Log::default();
    let mut sla = SlaTimers::new(SlaPolicy::default());
    sla.handle_event(&log.append(opened(T0, Severity::Ordinary, "B1")));
    assert_eq!(
        log.run(&mut sla, T0 + 45 * MIN, T0 + 60 * MIN),
        [(45, "sla_breached")]
    );
}

#[test]
fn a_later_promise_moves_the_deadline() {
    let mut log = Log::default();
    let mut sla = SlaTimers::new(SlaPolicy::default());
    let t = log.append(opened(T0, Severity::Ordinary, "B1"));
    sla.handle_event(&t);
    let promise = log.append(on(
        t.ticket.unwrap(),
        T0 + MIN,
        EventKind::Committed {
            deadline_ms: T0 + 101 * MIN,
        },
    ));
    sla.handle_event(&promise);
    assert_eq!(
        log.run(&mut sla, T0, T0 + 120 * MIN),
        [(81, "sla_warned"), (101, "sla_breached")]
    );
}

#[test]
fn two_writers_on_one_file_share_the_sequences() {
    // The hotline and the `hotline tickets` CLI each open the same file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let a = SqliteStore::open(&path).unwrap();
    let b = SqliteStore::open(&path).unwrap();
    let mut tickets = Vec::new();
    for i in 0..10 {
        let store = if i % 2 == 0 { &a } else { &b };
        let stored = store
            .append_blocking(vec![opened(T0 + i, Severity::Ordinary, "B1")])
            .unwrap();
        tickets.push(stored[0].ticket.unwrap().0);
    }
    assert_eq!(tickets, (1..=10).collect::<Vec<_>>());
    let ids: Vec<u64> = a.all_events().unwrap().iter().map(|e| e.id.0).collect();
    assert_eq!(ids, (1..=10).collect::<Vec<_>>());
}

#[test]
fn sla_state_comes_back_from_a_reopened_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let drive = |store: &SqliteStore, sla: &mut SlaTimers, now: i64| -> Vec<&'static str> {
        let due = sla.handle_timeout(now);
        let stored = store.append_blocking(due).unwrap();
        for e in &stored {
            sla.handle_event(e);
        }
        stored.iter().map(|e| e.kind.name()).collect()
    };
    {
        let store = SqliteStore::open(&path).unwrap();
        let mut sla = SlaTimers::new(SlaPolicy::default());
        for e in store
            .append_blocking(vec![opened(T0, Severity::Ordinary, "B1")])
            .unwrap()
        {
            sla.handle_event(&e);
        }
        assert_eq!(drive(&store, &mut sla, T0 + 25 * MIN), ["sla_warned"]);
    } // the process ends here: store and timers are gone
    let store = SqliteStore::open(&path).unwrap();
    let mut sla = SlaTimers::new(SlaPolicy::default());
    for e in store.all_events().unwrap() {
        sla.handle_event(&e);
    }
    assert!(
        drive(&store, &mut sla, T0 + 29 * MIN).is_empty(),
        "no second warning"
    );
    assert_eq!(drive(&store, &mut sla, T0 + 30 * MIN), ["sla_breached"]);
    let names: Vec<&str> = store
        .all_events()
        .unwrap()
        .iter()
        .map(|e| e.kind.name())
        .collect();
    assert_eq!(names, ["ticket_opened", "sla_warned", "sla_breached"]);
}
