//! IVR event handling: 10,000 menu sessions on the default menu at once,
//! fed a seeded random stream of keys, prompt ends, timeouts and replies;
//! events handled per second (one core, no I/O: the machine alone).
//!
//! Run: `cargo bench --bench ivr`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hotline::ivr::graph::Graph;
use hotline::ivr::{Action, GiftInfo, OwnerInfo, Reply, Request, Session, TicketInfo};
use hotline::owners::OwnerClass;
use hotline::rng::XorShift;

const SESSIONS: usize = 10_000;
const EVENTS: usize = 2_000_000;

fn owner(n: usize) -> Option<OwnerInfo> {
    (!n.is_multiple_of(3)).then(|| OwnerInfo {
        id: format!("O-{n:04}"),
        language: if n.is_multiple_of(2) { "zh" } else { "en" }.into(),
        class: OwnerClass::Ordinary,
        points: (n as i64 * 37) % 3000,
        fee_balance_cents: (n as i64 * 7919) % 400_000 - 20_000,
        building: "3".into(),
    })
}

fn reply(request: &Request) -> Reply {
    match request {
        Request::OwnerByUnit { .. } => Reply::Owner(owner(1)),
        Request::LatestTicket { .. } | Request::TicketByNumber { .. } => {
            Reply::Ticket(Some(TicketInfo {
                number: 1205,
                status: "dispatched".into(),
                month: 11,
                day: 23,
            }))
        }
        Request::Gifts => Reply::Gifts(vec![
            GiftInfo {
                id: "G1".into(),
                points: 120,
            },
            GiftInfo {
                id: "G2".into(),
                points: 300,
            },
            GiftInfo {
                id: "G3".into(),
                points: 500,
            },
        ]),
        Request::Redeem { .. } => Reply::Redeemed {
            points_left: Some(80),
        },
        Request::OpenTicket { .. } => Reply::TicketOpened(4242),
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // `cargo test --benches`: build only
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/ivr.toml");
    let graph = Arc::new(Graph::load(&path, |_| true).unwrap());
    let start = Instant::now();
    let mut now = start;
    let mut sessions: Vec<(Session, Option<Request>)> = (0..SESSIONS)
        .map(|n| {
            let mut s = Session::new(graph.clone(), "100", owner(n));
            s.start(now, 0);
            (s, None)
        })
        .collect();
    let mut rng = XorShift::new(0x5eed);
    let mut actions = 0usize;
    let mut restarted = 0usize;
    let keys = b"0123456789*#11122234";
    let t = Instant::now();
    for i in 0..EVENTS {
        let n = (rng.next_u64() % SESSIONS as u64) as usize;
        let (s, pending) = &mut sessions[n];
        if let Some(r) = pending.take() {
            s.handle_reply(now, reply(&r));
        } else {
            match rng.next_u64() % 10 {
                0..=4 => s.handle_digit(
                    now,
                    keys[(rng.next_u64() % keys.len() as u64) as usize] as char,
                ),
                5..=8 => s.handle_prompt_finished(now),
                _ => {
                    now += Duration::from_millis(700);
                    s.handle_timeout(now);
                }
            }
        }
        while let Some(a) = s.poll_action() {
            actions += 1;
            if let Action::Request(r) = a {
                *pending = Some(r);
            }
        }
        if s.is_done() {
            let mut fresh = Session::new(
                graph.clone(),
                if i.is_multiple_of(2) { "100" } else { "200" },
                owner(i),
            );
            fresh.start(now, 0);
            *s = fresh;
            *pending = None;
            restarted += 1;
        }
    }
    let elapsed = t.elapsed();
    println!(
        "{SESSIONS} sessions, {EVENTS} events: {:.0} events/s, {:.0} ns/event ({actions} actions out, {restarted} calls ended and replaced)",
        EVENTS as f64 / elapsed.as_secs_f64(),
        elapsed.as_nanos() as f64 / EVENTS as f64
    );
}
