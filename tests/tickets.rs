//! The ticket store through the real binary: crash safety and queries.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::stores::{TestStore, all_events};
use hotline::tickets::{Department, Event, EventKind, TicketId};

fn hotline() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hotline"))
}

#[test]
fn kill_9_loses_no_acknowledged_event_and_duplicates_none_sqlite() {
    kill_9_loses_no_acknowledged_event_and_duplicates_none(&TestStore::sqlite().location);
}

#[test]
fn kill_9_loses_no_acknowledged_event_and_duplicates_none_postgres() {
    if let Some(db) = TestStore::postgres() {
        kill_9_loses_no_acknowledged_event_and_duplicates_none(&db.location);
    }
}

fn kill_9_loses_no_acknowledged_event_and_duplicates_none(db: &str) {
    let mut acked: Vec<(u64, String)> = Vec::new();
    // Two rounds: a crash, then appending on top of the recovered file and a second crash.
    for round in 0..2 {
        let mut child = hotline()
            .args([
                "tickets",
                "--store",
                db,
                "stress",
                "--writers",
                "16",
                "--tag",
                &format!("r{round}"),
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let start = Instant::now();
        let before = acked.len();
        while acked.len() < before + 3000 && start.elapsed() < Duration::from_secs(20) {
            let line = lines.next().unwrap().unwrap();
            let mut parts = line.split_whitespace().skip(1);
            let id = parts.next().unwrap().parse().unwrap();
            acked.push((id, parts.next().unwrap().to_string()));
        }
        child.kill().unwrap(); // SIGKILL: no chance to flush or close
        child.wait().unwrap();
        // Acknowledgements printed before the kill still count.
        for line in lines.map_while(Result::ok) {
            let mut parts = line.split_whitespace().skip(1);
            let id = parts.next().unwrap().parse().unwrap();
            acked.push((id, parts.next().unwrap().to_string()));
        }
        assert!(acked.len() >= before + 3000, "appends went too slowly");
    }
    let events = all_events(db);
    let by_id: std::collections::HashMap<u64, &hotline::tickets::Event> =
        events.iter().map(|e| (e.id.0, e)).collect();
    for (id, _) in &acked {
        let e = by_id
            .get(id)
            .unwrap_or_else(|| panic!("acknowledged event {id} lost"));
        assert!(matches!(e.kind, EventKind::CallStarted { .. }));
    }
    for (id, call) in &acked {
        assert_eq!(
            by_id[id].call.as_deref(),
            Some(call.as_str()),
            "event {id} is another one"
        );
    }
    // No event twice: every call tag is written at most once.
    let mut calls: Vec<&str> = events.iter().map(|e| e.call.as_deref().unwrap()).collect();
    let written = calls.len();
    calls.sort();
    calls.dedup();
    assert_eq!(calls.len(), written, "an event was written twice");
    let mut ids: Vec<u64> = acked.iter().map(|(id, _)| *id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), acked.len(), "an id acknowledged twice");
}

fn tickets(db: &str, args: &[&str]) -> String {
    common::cli(&[&["tickets", "--store", db], args].concat())
}

#[test]
fn queries_by_owner_status_building_and_department_sqlite() {
    queries_by_owner_status_building_and_department(&TestStore::sqlite().location);
}

#[test]
fn queries_by_owner_status_building_and_department_postgres() {
    if let Some(db) = TestStore::postgres() {
        queries_by_owner_status_building_and_department(&db.location);
    }
}

fn queries_by_owner_status_building_and_department(db: &str) {
    tickets(
        db,
        &[
            "open",
            "--category",
            "water",
            "--severity",
            "major",
            "--owner",
            "O-1",
            "--building",
            "B3",
            "--summary",
            "leak",
        ],
    );
    tickets(
        db,
        &[
            "open",
            "--category",
            "lift",
            "--owner",
            "O-2",
            "--building",
            "B1",
            "--summary",
            "lift stuck",
        ],
    );
    tickets(
        db,
        &[
            "open",
            "--category",
            "noise",
            "--owner",
            "O-1",
            "--building",
            "B1",
            "--summary",
            "dog",
        ],
    );
    tickets(
        db,
        &[
            "dispatch",
            "1",
            "--department",
            "engineering",
            "--person",
            "Li Wei",
        ],
    );
    tickets(db, &["dispatch", "3", "--department", "security"]);
    tickets(db, &["resolve", "3", "--note", "spoke to the neighbour"]);
    tickets(db, &["confirm", "3"]);
    let ids = |out: String| -> Vec<String> {
        out.lines()
            .skip(1)
            .map(|l| l.split_whitespace().next().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(tickets(db, &["list"])), ["T1", "T2", "T3"]);
    assert_eq!(ids(tickets(db, &["list", "--owner", "O-1"])), ["T1", "T3"]);
    assert_eq!(
        ids(tickets(db, &["list", "--building", "B1"])),
        ["T2", "T3"]
    );
    assert_eq!(
        ids(tickets(db, &["list", "--department", "engineering"])),
        ["T1"]
    );
    assert_eq!(ids(tickets(db, &["list", "--status", "closed"])), ["T3"]);
    assert_eq!(ids(tickets(db, &["list", "--status", "open"])), ["T2"]);
    assert!(
        ids(tickets(db, &["list", "--overdue"])).is_empty(),
        "fresh promises are not overdue"
    );
    let json = tickets(db, &["list", "--json", "--status", "closed"]);
    let t: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(t["department"], "security");
    // A ticket that does not exist is an error, not a new ticket.
    let out = hotline()
        .args(["tickets", "--store", db, "resolve", "42"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no ticket T42"));
}

/// A hotline running on `port` with the store `db`, killed on drop.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run_hotline(dir: &std::path::Path, db: &str, port: u16) -> Running {
    run_hotline_with(dir, db, port, "")
}

fn run_hotline_with(dir: &std::path::Path, db: &str, port: u16, extra: &str) -> Running {
    let config = dir.join("hotline.toml");
    std::fs::write(
        &config,
        format!(
            "[sip]\nlisten = \"127.0.0.1:{port}\"\ntrunks = [\"127.0.0.1\"]\n[media]\nrtp_port_min = {}\nrtp_port_max = {}\n[tickets]\nstore = \"{}\"\n[owners]\ndb = \"{}\"\n[http]\nlisten = \"127.0.0.1:{}\"\n{extra}",
            port + 40,
            port + 140,
            db,
            dir.join("owners.db").display(),
            port + 190
        ),
    )
    .unwrap();
    let mut server = hotline()
        .args(["run", "--config"])
        .arg(&config)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("listening"), "{first}");
    Running(server)
}

/// Waits up to 10 s for an event matching `want` in the store.
fn wait_for_event(db: &str, want: impl Fn(&Event) -> bool) -> Event {
    let start = Instant::now();
    loop {
        if let Some(e) = all_events(db).into_iter().find(|e| want(e)) {
            return e;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "event never written"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn running_hotline_dispatches_by_category_rule_sqlite() {
    running_hotline_dispatches_by_category_rule(&TestStore::sqlite().location, 14260);
}

#[test]
fn running_hotline_dispatches_by_category_rule_postgres() {
    if let Some(db) = TestStore::postgres() {
        running_hotline_dispatches_by_category_rule(&db.location, 14660);
    }
}

fn running_hotline_dispatches_by_category_rule(db: &str, port: u16) {
    let dir = tempfile::tempdir().unwrap();
    let _server = run_hotline(dir.path(), db, port);
    tickets(
        db,
        &[
            "open",
            "--category",
            "lift",
            "--building",
            "B2",
            "--summary",
            "stuck on 5",
        ],
    );
    tickets(db, &["open", "--category", "unheard-of", "--summary", "?"]);
    let dispatched = wait_for_event(db, |e| matches!(e.kind, EventKind::Dispatched { .. }));
    assert_eq!(dispatched.ticket, Some(TicketId(1)));
    assert!(matches!(
        dispatched.kind,
        EventKind::Dispatched {
            department: Department::Engineering,
            ..
        }
    ));
    // The ticket without a rule stays open for a person to dispatch.
    std::thread::sleep(Duration::from_millis(1500));
    let open = tickets(db, &["list", "--status", "open"]);
    assert!(open.contains("T2") && !open.contains("T1"), "{open}");
}

#[test]
fn running_hotline_raises_a_group_complaint_from_tickets_opened_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::sqlite();
    let db = store.location.as_str();
    let _server = run_hotline(dir.path(), db, 14060);
    // Three owners of building B7 complain about noise, through the CLI (another process).
    for owner in ["O-1", "O-2", "O-3"] {
        tickets(
            db,
            &[
                "open",
                "--category",
                "noise",
                "--owner",
                owner,
                "--building",
                "B7",
                "--summary",
                "music at night",
            ],
        );
    }
    let alert = wait_for_event(db, |e| {
        matches!(e.kind, EventKind::GroupComplaintRaised { .. })
    });
    assert!(matches!(
        alert.kind,
        EventKind::GroupComplaintRaised { ref building, ref category, owners: 3, .. }
            if building == "B7" && category == "noise"
    ));
}

/// A department's webhook receiver: answers 503 to the first POST and 200
/// after, and keeps the bodies.
fn webhook_receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/dispatch", listener.local_addr().unwrap());
    let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = bodies.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let body = loop {
                let n = stream.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        break Some(body.to_string());
                    }
                }
            };
            let Some(body) = body else { continue };
            let first = {
                let mut b = seen.lock().unwrap();
                b.push(body);
                b.len() == 1
            };
            let status = if first {
                "503 Service Unavailable"
            } else {
                "200 OK"
            };
            let _ = stream.write_all(
                format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
        }
    });
    (url, bodies)
}

#[test]
fn dispatch_is_posted_to_the_department_webhook_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::sqlite();
    let db = store.location.as_str();
    let (url, bodies) = webhook_receiver();
    let _server = run_hotline_with(
        dir.path(),
        db,
        14460,
        &format!("[tickets.webhooks]\nengineering = \"{url}\"\n"),
    );
    tickets(
        db,
        &[
            "open",
            "--category",
            "water",
            "--severity",
            "major",
            "--owner",
            "O-9",
            "--building",
            "B5",
            "--summary",
            "pipe burst",
        ],
    );
    let delivered = wait_for_event(db, |e| {
        matches!(e.kind, EventKind::DispatchDelivered { .. })
    });
    assert!(matches!(
        delivered.kind,
        EventKind::DispatchDelivered {
            department: Department::Engineering,
            attempts: 2
        }
    ));
    let bodies = bodies.lock().unwrap();
    assert_eq!(bodies.len(), 2, "refused once, taken on the retry");
    let notice: serde_json::Value = serde_json::from_str(&bodies[1]).unwrap();
    assert_eq!(notice["ticket"], 1);
    assert_eq!(notice["building"], "B5");
    assert_eq!(notice["severity"], "major");
    assert_eq!(notice["department"], "engineering");
}
