//! The emergency on-call chain end to end: SIPp is the owner, who calls at
//! night and presses 9, and SIPp is the engineers' phones behind the
//! gateway: the first on duty does not answer, the second presses 1.

mod common;

use std::time::Duration;

use common::caller::{Step, scenario};
use common::stores::{all_events, wait_for_event};
use common::{Hotline, SippUas, assert_sipp_ok, sipp};
use hotline::tickets::{Department, EventKind};

const BASE: u16 = 14000;
/// The gateway the engineers' phones sit behind (SIPp).
const GATEWAY: u16 = 15500;
/// O-0001 in config/owners.csv.
const OWNER_NUMBER: &str = "13800138000";
const WANG: &str = "+8613900000001";

const ROTA: &str = r#"
time_zone = "Asia/Shanghai"

[people.wang]
name = "Wang Wei"
number = "+8613900000001"
language = "zh"

[people.li]
name = "Li Na"
number = "+8613900000002"
language = "en"

[people.chen]
name = "Chen Jing"
number = "+8613900000009"
language = "zh"

[[duty]]
department = "engineering"
days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
from = "00:00"
to = "24:00"
chain = ["wang", "li"]
supervisor = "chen"
"#;

/// The default menu, closed all week (whenever the test runs it is
/// night), with the sample owners and the rota above.
fn start() -> (Hotline, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let db = data.path().join("owners.db");
    common::cli(&[
        "owners",
        "--db",
        db.to_str().unwrap(),
        "import",
        &common::manifest("config/owners.csv"),
    ]);
    let hours = data.path().join("hours.toml");
    let week: String = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .iter()
        .map(|d| format!("{d} = \"\"\n"))
        .collect();
    std::fs::write(
        &hours,
        format!("[garden]\ntime_zone = \"Asia/Shanghai\"\n{week}"),
    )
    .unwrap();
    let rota = data.path().join("oncall.toml");
    std::fs::write(&rota, ROTA).unwrap();
    let h = Hotline::start(
        BASE,
        &format!(
            "[owners]\ndb = \"{}\"\n[ivr]\nmenu = \"{}\"\nrecordings = \"{}\"\nhours = \"{}\"\n\
             [oncall]\nrota = \"{}\"\ngateway = \"127.0.0.1:{GATEWAY}\"\narrival_minutes = 45\ntell_owner = true\n\
             [return_visit]\nring_seconds = 2\n",
            db.display(),
            common::manifest("config/ivr.toml"),
            data.path().join("recordings").display(),
            hours.display(),
            rota.display(),
        ),
    );
    (h, data)
}

#[test]
fn an_emergency_at_night_rings_the_first_engineer_then_the_second_who_accepts() {
    let (mut h, _data) = start();
    let mut engineers = SippUas::start_on(
        &h,
        "engineers_on_call.xml",
        GATEWAY,
        &["-m", "3", "-set", "nobody", WANG, "-set", "key", "1"],
    );
    // The owner calls at night: the night menu, 9 for an emergency.
    let xml = scenario(
        h.dir.path(),
        "night_emergency",
        OWNER_NUMBER,
        "100",
        &[Step::Pause(500), Step::Key('9'), Step::Pause(1500)],
    );
    let run = sipp(&h, xml.to_str().unwrap(), &["-m", "1"]);
    assert_sipp_ok(&h, &run);
    assert_eq!(
        engineers.wait(Duration::from_secs(40)),
        Some(0),
        "SIPp (engineers) failed: {}\n{}",
        std::fs::read_to_string(h.dir.path().join("sipp_uas_errors.log")).unwrap_or_default(),
        h.log()
    );
    let store = h.store_path().to_str().unwrap().to_string();
    wait_for_event(&store, |e| {
        matches!(
            e.kind,
            EventKind::Dispatched {
                person: Some(_),
                ..
            }
        )
    });
    let events = all_events(&store);
    let opened = events
        .iter()
        .find(|e| matches!(e.kind, EventKind::TicketOpened { .. }))
        .expect("the emergency ticket");
    let ticket = opened.ticket;
    let chain: Vec<String> = events
        .iter()
        .filter(|e| e.ticket == ticket)
        .filter_map(|e| match &e.kind {
            EventKind::OnCallCalled {
                round,
                step,
                person,
                ..
            } => Some(format!("called {round}.{step} {person}")),
            EventKind::OnCallDeclined { person, reason, .. } => {
                Some(format!("declined {person}: {reason}"))
            }
            EventKind::OnCallAccepted { person, .. } => Some(format!("accepted {person}")),
            EventKind::Dispatched { department, person } => Some(format!(
                "dispatched {} {}",
                department.as_str(),
                person.as_deref().unwrap_or("-")
            )),
            _ => None,
        })
        .collect();
    // The menu's rule dispatched the ticket to engineering at once; the
    // chain then named the person going.
    assert_eq!(
        chain,
        [
            "dispatched engineering -",
            "called 1.0 wang",
            "declined wang: no answer (SIP 487)",
            "called 1.1 li",
            "accepted li",
            "dispatched engineering Li Na",
        ],
        "{}",
        h.log()
    );
    let accepted = events
        .iter()
        .find(|e| matches!(e.kind, EventKind::OnCallAccepted { .. }))
        .unwrap();
    // The arrival promised on accepting (after the SLA's own, written when
    // the ticket was opened).
    let promised = events
        .iter()
        .filter(|e| e.id > accepted.id)
        .find_map(|e| match e.kind {
            EventKind::Committed { deadline_ms } => Some(deadline_ms),
            _ => None,
        });
    assert_eq!(promised, Some(accepted.at_ms + 45 * 60_000));
    println!(
        "emergency opened to accepted: {:.1} s (the first engineer rang 2 s)",
        (accepted.at_ms - opened.at_ms) as f64 / 1000.0
    );
    // The ticket as the centre sees it: dispatched to Li, with a promise.
    let shown = common::cli(&[
        "tickets",
        "--store",
        &store,
        "show",
        &ticket.unwrap().0.to_string(),
    ]);
    assert!(shown.contains("Li Na"), "{shown}");
    let dispatched_to = events.iter().rev().find_map(|e| match &e.kind {
        EventKind::Dispatched { department, person } => Some((*department, person.clone())),
        _ => None,
    });
    assert_eq!(
        dispatched_to,
        Some((Department::Engineering, Some("Li Na".into())))
    );
    // The owner was called back and told help is coming.
    let told = wait_for_event(&store, |e| {
        matches!(e.kind, EventKind::OwnerToldHelpComing { .. })
    });
    assert_eq!(told.ticket, ticket);
    assert!(
        matches!(
            told.kind,
            EventKind::OwnerToldHelpComing { reached: true, .. }
        ),
        "{:?}",
        told.kind
    );
    // Li was spoken to in English: the ticket, then the question.
    let log = h.stop();
    assert!(
        log.lines().any(|l| l.contains("speaking the ticket")
            && l.contains("oncall_emergency_en")
            && l.contains("oncall_press_en")),
        "{log}"
    );
}

/// "YYYY-MM-DDTHH:MM" in the centre's time (+08:00), `minutes` from now.
fn local_moment(minutes: i64) -> String {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    hotline::site::LocalTime::parse("+08:00")
        .unwrap()
        .format(now_ms + minutes * 60_000)[..16]
        .replace(' ', "T")
}

#[test]
fn a_supervisor_swaps_a_shift_and_stops_a_chain_through_the_api() {
    let data = tempfile::tempdir().unwrap();
    let rota = data.path().join("oncall.toml");
    std::fs::write(&rota, ROTA).unwrap();
    let h = Hotline::start(
        BASE,
        &format!(
            "[oncall]\nrota = \"{}\"\ngateway = \"127.0.0.1:{}\"\n[return_visit]\nring_seconds = 2\n\
             [acd]\nagents = \"{}\"\n[http]\nlisten = \"127.0.0.1:HTTP_PORT\"\nusers = \"{}\"\n",
            rota.display(),
            GATEWAY + 20,
            common::manifest("config/agents.toml"),
            common::manifest("config/users.toml"),
        ),
    );
    let port = h.http_port();
    let supervisor = Some("demo-supervisor");
    let on_duty = || {
        let (status, body) = common::http(port, "GET", "/api/oncall", supervisor, None);
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["on_duty"]["engineering"]["chain"].clone()
    };
    let end = std::time::Instant::now() + Duration::from_secs(5);
    while common::http(port, "GET", "/api/oncall", supervisor, None).0 != 200 {
        assert!(
            std::time::Instant::now() < end,
            "the on-call view never came"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(on_duty(), serde_json::json!(["wang", "li"]));
    // Agents may not swap; nobody may swap in someone not on the rota.
    let swap = |token, into: &str| {
        let body = format!(
            r#"{{"department": "engineering", "out": "wang", "into": "{into}", "from": "{}", "to": "{}"}}"#,
            local_moment(-60),
            local_moment(60)
        );
        common::http(port, "POST", "/api/oncall/swaps", Some(token), Some(&body))
    };
    assert_eq!(swap("demo-2001", "li").0, 403);
    let (status, body) = swap("demo-supervisor", "zhou");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("zhou"), "{body}");
    let (status, body) = swap("demo-supervisor", "li");
    assert_eq!(status, 201, "{body}");
    // Wang's place goes to Li, who is on the chain already: Li alone.
    let end = std::time::Instant::now() + Duration::from_secs(5);
    while on_duty() != serde_json::json!(["li"]) {
        assert!(
            std::time::Instant::now() < end,
            "swap not applied: {}",
            on_duty()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // An emergency: Li's phone rings; the supervisor stops the chain
    // meanwhile: Li's phone stops ringing (nobody accepts what is no
    // longer wanted), no supervisor called, no second round.
    let mut li = SippUas::start_on(
        &h,
        "engineers_on_call.xml",
        GATEWAY + 20,
        &[
            "-m",
            "1",
            "-set",
            "nobody",
            "+8613900000002",
            "-set",
            "key",
            "1",
        ],
    );
    let store = h.store_path().to_str().unwrap().to_string();
    common::cli(&[
        "tickets",
        "--store",
        &store,
        "open",
        "--category",
        "lift",
        "--severity",
        "emergency",
        "--building",
        "3",
        "--summary",
        "someone stuck in the lift",
        "--phone",
        OWNER_NUMBER,
    ]);
    wait_for_event(&store, |e| matches!(e.kind, EventKind::OnCallCalled { .. }));
    let (status, body) = common::http(
        port,
        "POST",
        "/api/tickets/1/oncall/stop",
        supervisor,
        Some(r#"{"reason": "the lift company is on its way"}"#),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        li.wait(Duration::from_secs(20)),
        Some(0),
        "SIPp (Li) failed"
    );
    assert!(
        !h.lines("on-call: the chain ended; this call too")
            .is_empty(),
        "{}",
        h.log()
    );
    std::thread::sleep(Duration::from_secs(2));
    let steps: Vec<&'static str> = all_events(&store)
        .iter()
        .map(|e| e.kind.name())
        .filter(|n| n.starts_with("on_call"))
        .collect();
    assert_eq!(
        steps,
        ["on_call_shift_swapped", "on_call_called", "on_call_stopped"],
        "{}",
        h.log()
    );
    let called = all_events(&store).into_iter().find_map(|e| match e.kind {
        EventKind::OnCallCalled { person, .. } => Some(person),
        _ => None,
    });
    assert_eq!(called.as_deref(), Some("li"));
}
