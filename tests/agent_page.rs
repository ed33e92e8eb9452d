//! The agent's page end to end in headless Chromium: agent 2001 signs in
//! with their token and goes ready from the page (their baresip phone is
//! registered, not logged in by feature code); a SIPp caller, owner O-0001,
//! presses 0; the screen pop shows the owner, their open ticket and the way
//! through the menu; the phone answers; after the call the wrap-up form
//! writes the ticket, as the agent, into the ticket log.

mod common;

use std::time::Duration;

use common::baresip::Baresip;
use common::browser::Browser;
use common::caller::{Step, scenario};
use common::{assert_sipp_ok, sipp};

const BASE: u16 = 25000;
const PHONE: u16 = 26000;
const DRIVER: u16 = 26500;

#[test]
fn an_agent_goes_ready_sees_the_screen_pop_and_writes_the_wrap_up_to_the_ticket() {
    let (h, _data) = common::menu_hotline(
        BASE,
        &format!(
            "[http]\nlisten = \"127.0.0.1:HTTP_PORT\"\nusers = \"{}\"\n",
            common::manifest("config/users.toml")
        ),
    );
    // O-0001 already has an open work order.
    common::open_ticket(&h, "lift", "O-0001", "lift stuck on floor 12");
    // Agent 2001's phone: registered, answers by itself; no *1.
    let _phone = Baresip::start(
        h.dir.path(),
        &format!(
            "<sip:2001@{}>;auth_user=2001;auth_pass=agent2001;regint=60;answermode=auto;audio_codecs=PCMU/8000",
            h.target()
        ),
        PHONE,
        (PHONE + 10, PHONE + 60),
        &[],
    );
    h.wait_for("agent registered", 1, Duration::from_secs(10));

    let browser = Browser::start(h.dir.path(), DRIVER);
    browser.goto(&format!("http://127.0.0.1:{}/agent", h.http_port()));
    browser.type_into("#token", "demo-2001");
    browser.click("#login");
    browser.wait_text("#who", Duration::from_secs(10), |t| {
        t.contains("agent 2001")
    });
    browser.wait_text("#state", Duration::from_secs(5), |t| t == "logged_out");
    browser.click("#ready");
    browser.wait_text("#state", Duration::from_secs(5), |t| t == "available");

    // The caller: O-0001 presses 0 in the main menu and talks for 4 s.
    let xml = scenario(
        h.dir.path(),
        "to_the_page",
        "13800138000",
        "100",
        &[Step::Pause(500), Step::Key('0'), Step::Pause(4000)],
    );
    std::thread::scope(|s| {
        let call = s.spawn(|| sipp(&h, xml.to_str().unwrap(), &["-m", "1"]));
        // The screen pop: who, their open ticket, the way they came.
        let owner = browser.wait_text("#pop-owner-name", Duration::from_secs(10), |t| {
            t.contains("O-0001")
        });
        assert_eq!(owner, "Guo Lei (O-0001)");
        assert_eq!(browser.text("#pop-home"), "garden, building 3, unit 1202");
        assert!(browser.text("#pop-class").starts_with("vip"));
        assert!(
            browser
                .text("#pop-tickets")
                .contains("lift stuck on floor 12"),
            "{}",
            browser.text("#pop")
        );
        assert!(
            browser.text("#pop-path").contains("main: key 0 -> agent"),
            "{}",
            browser.text("#pop-path")
        );
        browser.wait_text("#pop-status", Duration::from_secs(10), |t| {
            t.contains("on the line")
        });
        assert_sipp_ok(&h, &call.join().unwrap());
    });
    browser.wait_text("#pop-status", Duration::from_secs(10), |t| {
        t.contains("ended")
    });
    browser.wait_text("#state", Duration::from_secs(5), |t| t == "wrap_up");

    // The wrap-up: a new water ticket with the agent's notes.
    browser.select("#category", "water");
    browser.type_into(
        "#notes",
        "Leak under the kitchen sink; plumber booked for 3 pm",
    );
    browser.click("#save");
    let saved = browser.wait_text("#saved", Duration::from_secs(5), |t| !t.is_empty());
    assert_eq!(
        saved,
        "Ticket T2 opened and saved.",
        "{}",
        browser.text("body")
    );
    browser.click("#wrapdone");
    browser.wait_text("#state", Duration::from_secs(5), |t| t == "available");
    // A supervisor pauses the agent: the page shows it at once (the event
    // stream), with who did it.
    let (status, reply) = common::http(
        h.http_port(),
        "POST",
        "/api/agents/2001/pause",
        Some("demo-supervisor"),
        Some(r#"{"reason": "meeting"}"#),
    );
    assert_eq!(status, 200, "{reply}");
    browser.wait_text("#state", Duration::from_secs(5), |t| t == "paused");
    assert_eq!(browser.text("#reason"), "Reason: meeting (by supervisor)");

    // In the ticket log: opened by agent 2001 for O-0001 on this call, with
    // the SLA promise and the wrap-up code.
    let shown = common::cli(&[
        "tickets",
        "--store",
        h.store_path().to_str().unwrap(),
        "show",
        "2",
    ]);
    for want in [
        "\"category\": \"water\"",
        "\"owner\": \"O-0001\"",
        "\"summary\": \"Leak under the kitchen sink; plumber booked for 3 pm\"",
        "Agent(\"2001\") TicketOpened",
        "Committed",
        "Agent(\"2001\") WrapUpCoded { code: \"water\"",
    ] {
        assert!(shown.contains(want), "{want} in\n{shown}");
    }
    // The call's routes, as each user: the screen pop is for agents it was
    // offered to and supervisors; the wrap-up only for the agent who
    // answered, once.
    // The hotline's view of the log takes the new ticket in at once (the
    // wrap-up wakes its reader); allow it a moment on a busy machine.
    let end = std::time::Instant::now() + Duration::from_secs(3);
    while common::http(
        h.http_port(),
        "GET",
        "/api/tickets/2",
        Some("demo-supervisor"),
        None,
    )
    .0 != 200
    {
        assert!(std::time::Instant::now() < end, "T2 never in the view");
        std::thread::sleep(Duration::from_millis(50));
    }
    let call = format!("/api/calls/{}", call_id(&h));
    let wrap = format!("{call}/wrap-up");
    let form = Some(r#"{"category": "water"}"#);
    for (method, path, token, body, want) in [
        ("GET", &call, None, None, 401),
        ("GET", &call, Some("demo-2003"), None, 403),
        ("GET", &call, Some("demo-supervisor"), None, 200),
        ("GET", &call, Some("demo-2001"), None, 200),
        ("POST", &wrap, None, form, 401),
        ("POST", &wrap, Some("demo-2003"), form, 403),
        ("POST", &wrap, Some("demo-supervisor"), form, 403),
        ("POST", &wrap, Some("demo-2001"), form, 409),
        // 2001 now handles O-0001's tickets (the lift one and the new one).
        (
            "GET",
            &"/api/tickets/2".to_string(),
            Some("demo-2001"),
            None,
            200,
        ),
        (
            "GET",
            &"/api/tickets/1".to_string(),
            Some("demo-2001"),
            None,
            200,
        ),
        (
            "GET",
            &"/api/tickets/2".to_string(),
            Some("demo-2003"),
            None,
            403,
        ),
        // The agent handling a ticket may escalate it; another may not.
        (
            "POST",
            &"/api/tickets/1/escalate".to_string(),
            Some("demo-2003"),
            Some(r#"{"reason": "owner called twice"}"#),
            403,
        ),
        (
            "POST",
            &"/api/tickets/1/escalate".to_string(),
            Some("demo-2001"),
            Some(r#"{"reason": "owner called twice"}"#),
            201,
        ),
    ] {
        let (status, reply) = common::http(h.http_port(), method, path, token, body);
        assert_eq!(status, want, "{method} {path} as {token:?}: {reply}");
    }
    let (_, mine) = common::http(
        h.http_port(),
        "GET",
        "/api/tickets",
        Some("demo-2001"),
        None,
    );
    let ids: Vec<u64> = serde_json::from_str::<serde_json::Value>(&mine).unwrap()["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [2, 1], "{mine}");
}

/// The caller's call id in the hotline's log (`c3` -> 3).
fn call_id(h: &common::Hotline) -> u64 {
    let line = &h.lines("caller connected to agent")[0];
    common::field(line, "caller").unwrap()[1..].parse().unwrap()
}
