//! Durable appends to the event store: events/s and median latency with N
//! concurrent appenders, each waiting for its event to be committed
//! (flushed) before appending the next.
//!
//! Run: `cargo bench --bench event_store` (SQLite only), or with
//! `HOTLINE_BENCH_POSTGRES=postgres://user:pw@127.0.0.1/db` for PostgreSQL
//! too: that database's `events` and `hotline_schema` tables are dropped
//! before each run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hotline::tickets::{Actor, EventKind, NewEvent, Store};

const RUN: Duration = Duration::from_secs(3);

/// Prints throughput and the median and p99 of `latencies` (sorted here).
fn report(label: &str, events: usize, elapsed: Duration, latencies: &mut [Duration]) {
    latencies.sort();
    println!(
        "{label:<44} {:>8.0} durable events/s, latency median {:>7.2} ms, p99 {:>7.2} ms",
        events as f64 / elapsed.as_secs_f64(),
        latencies[latencies.len() / 2].as_secs_f64() * 1e3,
        latencies[latencies.len() * 99 / 100].as_secs_f64() * 1e3,
    );
}

/// Where a run appends: a new SQLite file, or the PostgreSQL database
/// emptied first.
#[derive(Clone)]
enum Backend {
    Sqlite,
    Postgres(String),
}

/// A fresh store, and the folder that must outlive it.
fn fresh(backend: &Backend) -> (Store, Option<tempfile::TempDir>) {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("bench.db");
            (Store::open(path.to_str().unwrap()).unwrap(), Some(dir))
        }
        Backend::Postgres(url) => {
            let url2 = url.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let (client, conn) = tokio_postgres::connect(&url2, tokio_postgres::NoTls)
                        .await
                        .unwrap();
                    tokio::spawn(conn);
                    client
                        .batch_execute("DROP TABLE IF EXISTS events, hotline_schema")
                        .await
                        .unwrap();
                })
            })
            .join()
            .unwrap();
            (Store::open(url).unwrap(), None)
        }
    }
}

fn event(n: usize, i: usize) -> NewEvent {
    NewEvent {
        ticket: None,
        call: Some(format!("bench-{n}-{i}")),
        at_ms: 1_790_000_000_000 + i as i64,
        actor: Actor::System,
        kind: EventKind::IvrStepTaken {
            node: "main".into(),
            detail: "pressed 2".into(),
        },
    }
}

fn run(backend: &Backend, writers: usize, per_append: usize) {
    let (store, _dir) = fresh(backend);
    let store = Arc::new(store);
    let start = Instant::now();
    let threads: Vec<_> = (0..writers)
        .map(|n| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut latencies = Vec::new();
                let mut i = 0;
                while start.elapsed() < RUN {
                    let batch = (0..per_append).map(|k| event(n, i + k)).collect();
                    let t = Instant::now();
                    store.append_blocking(batch).unwrap();
                    latencies.push(t.elapsed());
                    i += per_append;
                }
                latencies
            })
        })
        .collect();
    let mut latencies: Vec<Duration> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let events = latencies.len() * per_append;
    let label = format!("{writers} threads, {per_append} event(s) per append");
    report(&label, events, start.elapsed(), &mut latencies);
}

/// The same from tokio tasks (how the hotline appends), on a 2-thread runtime.
fn run_async(backend: &Backend, tasks: usize) {
    let (store, _dir) = fresh(backend);
    let store = Arc::new(store);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let start = Instant::now();
    let mut latencies: Vec<Duration> = rt.block_on(async {
        let handles: Vec<_> = (0..tasks)
            .map(|n| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    let mut i = 0;
                    while start.elapsed() < RUN {
                        let t = Instant::now();
                        store.append(vec![event(n, i)]).await.unwrap();
                        latencies.push(t.elapsed());
                        i += 1;
                    }
                    latencies
                })
            })
            .collect();
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.await.unwrap());
        }
        all
    });
    let label = format!("{tasks} tokio tasks, 1 event per append");
    report(&label, latencies.len(), start.elapsed(), &mut latencies);
}

/// How the running hotline writes: one task queues each event as it happens
/// (`enqueue`, no waiting) and the acknowledgement is awaited elsewhere.
fn run_pipelined(backend: &Backend, total: usize) {
    let (store, _dir) = fresh(backend);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let start = Instant::now();
    let mut latencies: Vec<Duration> = rt.block_on(async {
        let mut waits = Vec::with_capacity(total);
        for i in 0..total {
            let queued = Instant::now();
            let ack = store.enqueue(vec![event(0, i)]).unwrap();
            waits.push(tokio::spawn(async move {
                ack.await.unwrap().unwrap();
                queued.elapsed()
            }));
            if i % 1000 == 999 {
                tokio::task::yield_now().await;
            }
        }
        let mut all = Vec::with_capacity(total);
        for w in waits {
            all.push(w.await.unwrap());
        }
        all
    });
    let label = format!("1 task queueing {total} events, no waiting");
    report(&label, total, start.elapsed(), &mut latencies);
}

fn main() {
    // `cargo test --benches` runs bench binaries with --bench absent: stay quick there.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let mut backends = vec![(
        "SQLite, WAL, synchronous=FULL, one writer thread, group commit",
        Backend::Sqlite,
    )];
    if let Ok(url) = std::env::var("HOTLINE_BENCH_POSTGRES") {
        backends.push((
            "PostgreSQL (synchronous_commit as the server says), one writer, group commit",
            Backend::Postgres(url),
        ));
    }
    for (title, backend) in &backends {
        println!("{title}");
        for writers in [1, 16, 64, 256] {
            run(backend, writers, 1);
        }
        run(backend, 64, 10);
        for tasks in [64, 1024] {
            run_async(backend, tasks);
        }
        run_pipelined(backend, 200_000);
    }
}
