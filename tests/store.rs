//! The event store's promises, one suite run against both back ends: the
//! embedded SQLite file and a real PostgreSQL server. Each test gets a store
//! of its own (see `common::stores`).

mod common;

use common::stores::TestStore;
use hotline::tickets::sla::{SlaPolicy, SlaTimers};
use hotline::tickets::{
    Actor, Department, Event, EventId, EventKind, NewEvent, Severity, Status, Store, StoreError,
    TicketId, Tickets,
};

const MIN: i64 = 60_000;
const T0: i64 = 1_790_000_000_000;

/// Each named test once per back end: `sqlite::name` and `postgres::name`.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(&crate::common::stores::TestStore::sqlite()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(db) = crate::common::stores::TestStore::postgres() {
                        super::$name(&db).await;
                    }
                }
            )*
        }
    };
}

on_both_stores!(
    events_are_stored_in_order_and_replay_to_the_same_tickets,
    concurrent_appenders_share_commits_and_lose_nothing,
    queued_appends_keep_their_order,
    newer_schema_is_refused,
    two_writers_on_one_store_share_the_sequences,
    ordinary_ticket_warns_at_24_minutes_and_breaches_at_30,
    major_ticket_has_six_hours,
    resolving_in_time_stops_the_timers,
    sla_survives_a_restart_without_repeating_itself,
    down_past_the_deadline_gives_the_breach_without_a_stale_warning,
    a_later_promise_moves_the_deadline,
    sla_state_comes_back_from_a_reopened_store,
    every_event_kind_reads_back_as_written,
);

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
            phone: Some("+8613800000001".into()),
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

fn call_started(call: String, at_ms: i64) -> NewEvent {
    NewEvent {
        ticket: None,
        call: Some(call),
        at_ms,
        actor: Actor::System,
        kind: EventKind::CallStarted {
            from: "1001".into(),
            to: "100".into(),
            number: "1001".into(),
            outbound: false,
        },
    }
}

async fn events_are_stored_in_order_and_replay_to_the_same_tickets(db: &TestStore) {
    let store = db.open();
    let first = store
        .append(vec![opened(T0, Severity::Ordinary, "B3")])
        .await
        .unwrap();
    let ticket = first[0].ticket.unwrap();
    assert_eq!(ticket, TicketId(1), "tickets are numbered from 1");
    store
        .append(vec![
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
        .await
        .unwrap();
    let events = store.ticket_events(ticket).await.unwrap();
    assert_eq!(events.iter().map(|e| e.id.0).collect::<Vec<_>>(), [1, 2, 3]);
    let tickets = Tickets::replay(&events);
    let t = tickets.get(ticket).unwrap();
    assert_eq!(t.status, Status::Resolved);
    assert_eq!(t.department, Some(Department::Engineering));
    assert_eq!(t.calls, ["call-1"]);
    // Reopening the store: same events, same state, ids continue.
    drop(store);
    let store = db.open();
    assert_eq!(
        Tickets::replay(&store.all_events().await.unwrap()).get(ticket),
        Some(t)
    );
    let more = store
        .append(vec![
            on(ticket, T0 + 25 * MIN, EventKind::ConfirmedByOwner),
            opened(T0 + 26 * MIN, Severity::Major, "B4"),
        ])
        .await
        .unwrap();
    assert_eq!(
        more[1].ticket,
        Some(TicketId(2)),
        "ticket numbers continue after a restart"
    );
    assert_eq!(more[0].id, EventId(4));
    assert_eq!(store.last_id().await.unwrap(), Some(EventId(5)));
}

async fn concurrent_appenders_share_commits_and_lose_nothing(db: &TestStore) {
    let store = std::sync::Arc::new(db.open());
    // Plain threads, each waiting for its own acknowledgement.
    let threads: Vec<_> = (0..8)
        .map(|n| {
            let store = store.clone();
            std::thread::spawn(move || {
                (0..200)
                    .map(|i| {
                        let e = call_started(format!("c{n}-{i}"), T0 + i);
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
    let stored: Vec<EventId> = store
        .all_events()
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(stored, acked);
}

async fn queued_appends_keep_their_order(db: &TestStore) {
    // The hotline's own path: queue at once, learn of durability later.
    let store = db.open();
    let acks: Vec<_> = (0..500)
        .map(|i| {
            store
                .enqueue(vec![call_started(format!("q{i}"), T0 + i)])
                .unwrap()
        })
        .collect();
    for (i, ack) in acks.into_iter().enumerate() {
        let stored = ack.await.unwrap().unwrap();
        assert_eq!(stored[0].id, EventId(i as u64 + 1));
    }
    let calls: Vec<String> = store
        .events_after(EventId(100), 3)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.call.unwrap())
        .collect();
    assert_eq!(calls, ["q100", "q101", "q102"]);
}

async fn newer_schema_is_refused(db: &TestStore) {
    drop(db.open());
    db.set_schema_version(99);
    let location = db.location.clone();
    let opened = tokio::task::spawn_blocking(move || Store::open(&location).map(|_| ()))
        .await
        .unwrap();
    assert!(
        matches!(opened, Err(StoreError::SchemaTooNew { found: 99, .. })),
        "{opened:?}"
    );
}

async fn two_writers_on_one_store_share_the_sequences(db: &TestStore) {
    // The hotline and the `hotline tickets` CLI each open the same store.
    let a = db.open();
    let b = db.open();
    let mut tickets = Vec::new();
    for i in 0..10 {
        let store = if i % 2 == 0 { &a } else { &b };
        let stored = store
            .append(vec![opened(T0 + i, Severity::Ordinary, "B1")])
            .await
            .unwrap();
        tickets.push(stored[0].ticket.unwrap().0);
    }
    assert_eq!(tickets, (1..=10).collect::<Vec<_>>());
    let ids: Vec<u64> = a
        .all_events()
        .await
        .unwrap()
        .iter()
        .map(|e| e.id.0)
        .collect();
    assert_eq!(ids, (1..=10).collect::<Vec<_>>());
}

async fn every_event_kind_reads_back_as_written(db: &TestStore) {
    let store = db.open();
    let t = store
        .append(vec![opened(T0, Severity::Emergency, "B7")])
        .await
        .unwrap()[0]
        .ticket
        .unwrap();
    let kinds = [
        EventKind::CallerIdentified {
            owner: "O-0042".into(),
            by: "pin".into(),
        },
        EventKind::IvrStepTaken {
            node: "menu".into(),
            detail: "digit 2 \"报修\"".into(),
        },
        EventKind::CallAbandoned {
            queue: "repair".into(),
            waited_ms: 42_500,
            reason: "hung_up".into(),
        },
        EventKind::Committed {
            deadline_ms: T0 + 30 * MIN,
        },
        EventKind::SurveyAnswered { score: 5 },
        EventKind::PromiseBroken {
            reason: "part on order".into(),
            remedy: "fee waived".into(),
        },
        EventKind::DispatchFailed {
            department: Department::CustomerRelations,
            attempts: 8,
            error: "HTTP 503".into(),
        },
    ];
    let written: Vec<NewEvent> = kinds
        .iter()
        .enumerate()
        .map(|(i, k)| NewEvent {
            ticket: Some(t),
            call: (i % 2 == 0).then(|| format!("call-{i}")),
            at_ms: T0 + i as i64,
            actor: Actor::Department("engineering".into()),
            kind: k.clone(),
        })
        .collect();
    store.append(written.clone()).await.unwrap();
    let read = store.ticket_events(t).await.unwrap();
    assert_eq!(read.len(), written.len() + 1);
    for (w, r) in written.iter().zip(&read[1..]) {
        assert_eq!(
            (&w.kind, &w.actor, &w.call, w.at_ms, w.ticket),
            (&r.kind, &r.actor, &r.call, r.at_ms, r.ticket)
        );
    }
}

// ---- SLA timers over the real store ---------------------------------------

/// Runs the timers from `from` to `to` in one-minute steps, appending and
/// feeding back what they emit. Returns (minute offset, event name).
async fn run(store: &Store, sla: &mut SlaTimers, from: i64, to: i64) -> Vec<(i64, &'static str)> {
    let mut seen = Vec::new();
    let mut now = from;
    while now <= to {
        for e in sla.handle_timeout(now) {
            let stored = store.append(vec![e]).await.unwrap().remove(0);
            seen.push(((now - T0) / MIN, stored.kind.name()));
            sla.handle_event(&stored);
        }
        now += MIN;
    }
    seen
}

async fn append_one(store: &Store, e: NewEvent) -> Event {
    store.append(vec![e]).await.unwrap().remove(0)
}

async fn ordinary_ticket_warns_at_24_minutes_and_breaches_at_30(db: &TestStore) {
    let store = db.open();
    let mut sla = SlaTimers::new(SlaPolicy::default());
    sla.handle_event(&append_one(&store, opened(T0, Severity::Ordinary, "B1")).await);
    assert_eq!(
        run(&store, &mut sla, T0, T0 + 60 * MIN).await,
        [(24, "sla_warned"), (30, "sla_breached")]
    );
}

async fn major_ticket_has_six_hours(db: &TestStore) {
    let store = db.open();
    let mut sla = SlaTimers::new(SlaPolicy::default());
    sla.handle_event(&append_one(&store, opened(T0, Severity::Major, "B1")).await);
    assert_eq!(
        run(&store, &mut sla, T0, T0 + 7 * 60 * MIN).await,
        [(288, "sla_warned"), (360, "sla_breached")]
    );
}

async fn resolving_in_time_stops_the_timers(db: &TestStore) {
    let store = db.open();
    let mut sla = SlaTimers::new(SlaPolicy::default());
    let t = append_one(&store, opened(T0, Severity::Ordinary, "B1")).await;
    sla.handle_event(&t);
    assert_eq!(
        run(&store, &mut sla, T0, T0 + 25 * MIN).await,
        [(24, "sla_warned")]
    );
    let resolved = on(
        t.ticket.unwrap(),
        T0 + 26 * MIN,
        EventKind::Resolved {
            note: String::new(),
        },
    );
    sla.handle_event(&append_one(&store, resolved).await);
    assert!(
        run(&store, &mut sla, T0 + 26 * MIN, T0 + 120 * MIN)
            .await
            .is_empty()
    );
}

async fn sla_survives_a_restart_without_repeating_itself(db: &TestStore) {
    let store = db.open();
    let mut sla = SlaTimers::new(SlaPolicy::default());
    sla.handle_event(&append_one(&store, opened(T0, Severity::Ordinary, "B1")).await);
    sla.handle_event(&append_one(&store, opened(T0 + 10 * MIN, Severity::Ordinary, "B2")).await);
    // Running until minute 25: the first ticket warned.
    assert_eq!(
        run(&store, &mut sla, T0, T0 + 25 * MIN).await,
        [(24, "sla_warned")]
    );
    // The process dies at minute 25 and comes back at minute 36: the new
    // timers are rebuilt from the log alone.
    drop(sla);
    let mut sla = SlaTimers::new(SlaPolicy::default());
    for e in &store.all_events().await.unwrap() {
        sla.handle_event(e);
    }
    // What fell due while down comes out at once (the first ticket's breach,
    // the second's warning), nothing twice, and the rest on time.
    assert_eq!(
        run(&store, &mut sla, T0 + 36 * MIN, T0 + 60 * MIN).await,
        [
            (36, "sla_breached"),
            (36, "sla_warned"),
            (40, "sla_breached")
        ]
    );
}

async fn down_past_the_deadline_gives_the_breach_without_a_stale_warning(db: &TestStore) {
    let store = db.open();
    let mut sla = SlaTimers::new(SlaPolicy::default());
    sla.handle_event(&append_one(&store, opened(T0, Severity::Ordinary, "B1")).await);
    assert_eq!(
        run(&store, &mut sla, T0 + 45 * MIN, T0 + 60 * MIN).await,
        [(45, "sla_breached")]
    );
}

async fn a_later_promise_moves_the_deadline(db: &TestStore) {
    let store = db.open();
    let mut sla = SlaTimers::new(SlaPolicy::default());
    let t = append_one(&store, opened(T0, Severity::Ordinary, "B1")).await;
    sla.handle_event(&t);
    let promise = on(
        t.ticket.unwrap(),
        T0 + MIN,
        EventKind::Committed {
            deadline_ms: T0 + 101 * MIN,
        },
    );
    sla.handle_event(&append_one(&store, promise).await);
    assert_eq!(
        run(&store, &mut sla, T0, T0 + 120 * MIN).await,
        [(81, "sla_warned"), (101, "sla_breached")]
    );
}

async fn sla_state_comes_back_from_a_reopened_store(db: &TestStore) {
    async fn drive(store: &Store, sla: &mut SlaTimers, now: i64) -> Vec<&'static str> {
        let due = sla.handle_timeout(now);
        let stored = store.append(due).await.unwrap();
        for e in &stored {
            sla.handle_event(e);
        }
        stored.iter().map(|e| e.kind.name()).collect()
    }
    {
        let store = db.open();
        let mut sla = SlaTimers::new(SlaPolicy::default());
        for e in store
            .append(vec![opened(T0, Severity::Ordinary, "B1")])
            .await
            .unwrap()
        {
            sla.handle_event(&e);
        }
        assert_eq!(drive(&store, &mut sla, T0 + 25 * MIN).await, ["sla_warned"]);
    } // the process ends here: store and timers are gone
    let store = db.open();
    let mut sla = SlaTimers::new(SlaPolicy::default());
    for e in store.all_events().await.unwrap() {
        sla.handle_event(&e);
    }
    assert!(
        drive(&store, &mut sla, T0 + 29 * MIN).await.is_empty(),
        "no second warning"
    );
    assert_eq!(
        drive(&store, &mut sla, T0 + 30 * MIN).await,
        ["sla_breached"]
    );
    let names: Vec<&str> = store
        .all_events()
        .await
        .unwrap()
        .iter()
        .map(|e| e.kind.name())
        .collect();
    assert_eq!(names, ["ticket_opened", "sla_warned", "sla_breached"]);
}

/// The PostgreSQL link is encrypted by default (libpq's `prefer`; Debian's
/// server has TLS on), plain with `sslmode=disable`, and with
/// `sslmode=verify-full` the server's certificate must check out: Debian's
/// self-signed one does not against the system's roots.
#[test]
fn postgres_links_are_encrypted_unless_disabled_and_checked_when_asked() {
    let Some(db) = TestStore::postgres() else {
        return;
    };
    let (admin, name) = db.postgres_names().unwrap();
    let append = |store: &Store| {
        store
            .append_blocking(vec![hotline::tickets::NewEvent {
                ticket: None,
                call: Some("c1".into()),
                at_ms: 1,
                actor: Actor::System,
                kind: EventKind::CallAbandoned {
                    queue: "general".into(),
                    waited_ms: 1,
                    reason: "hung_up".into(),
                },
            }])
            .unwrap();
    };
    let encrypted = Store::open(&format!("{}?application_name=tls_default", db.location)).unwrap();
    append(&encrypted);
    let plain = Store::open(&format!(
        "{}?sslmode=disable&application_name=tls_off",
        db.location
    ))
    .unwrap();
    append(&plain);
    let links = common::stores::admin_query(
        &admin,
        &format!(
            "SELECT a.application_name || '=' || s.ssl FROM pg_stat_activity a \
             JOIN pg_stat_ssl s USING (pid) WHERE a.datname = '{name}' \
             AND a.application_name LIKE 'tls_%' ORDER BY 1"
        ),
    );
    assert!(links.contains(&"tls_default=true".to_string()), "{links:?}");
    assert!(links.contains(&"tls_off=false".to_string()), "{links:?}");
    assert!(
        !links.contains(&"tls_default=false".to_string()),
        "{links:?}"
    );
    // Checking the certificate: Debian's self-signed one is not trusted.
    let err = Store::open(&format!("{}?sslmode=verify-full", db.location))
        .err()
        .expect("an untrusted certificate is refused")
        .to_string();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    let err = Store::open(&format!(
        "{}?sslmode=verify-full&sslrootcert=/nonexistent.pem",
        db.location
    ))
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("sslrootcert /nonexistent.pem"), "{err}");
    let err = Store::open(&format!("{}?sslmode=maybe", db.location))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("sslmode=maybe"), "{err}");
    drop((encrypted, plain));
}
