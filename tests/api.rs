//! The HTTP API's authorisation, route by route, against a running hotline
//! with the shipped demo users (config/users.toml): agent 2001 acting on
//! themself, agent 2003 acting on 2001, the supervisor, no token and a
//! wrong one. Errors are JSON with an "error" message.

mod common;

use std::time::Duration;

use common::{Hotline, http};

const BASE: u16 = 24000;

const AGENT: Option<&str> = Some("demo-2001");
const OTHER: Option<&str> = Some("demo-2003");
const SUPERVISOR: Option<&str> = Some("demo-supervisor");
const NONE: Option<&str> = None;
const WRONG: Option<&str> = Some("demo-nobody");

fn start() -> (Hotline, tempfile::TempDir) {
    common::menu_hotline(
        BASE,
        &format!(
            "[http]\nlisten = \"127.0.0.1:HTTP_PORT\"\nusers = \"{}\"\n",
            common::manifest("config/users.toml")
        ),
    )
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// Calls the route as each user and checks the status each gets.
fn expect(h: &Hotline, method: &str, path: &str, body: Option<&str>, want: &[(Option<&str>, u16)]) {
    for (token, status) in want {
        let (got, reply) = http(h.http_port(), method, path, *token, body);
        assert_eq!(got, *status, "{method} {path} as {token:?}: {reply}");
        if got >= 400 {
            let error = json(&reply)["error"].as_str().map(str::to_string);
            assert!(
                error.is_some_and(|e| !e.is_empty()),
                "a JSON error: {reply}"
            );
        }
    }
}

fn state(h: &Hotline, agent: &str) -> (String, String) {
    let (_, body) = http(
        h.http_port(),
        "GET",
        &format!("/api/agents/{agent}"),
        SUPERVISOR,
        None,
    );
    let v = json(&body);
    (
        v["state"].as_str().unwrap().to_string(),
        v["reason"].as_str().unwrap().to_string(),
    )
}

#[test]
fn every_route_answers_each_user_as_their_role_allows() {
    let (h, _data) = start();
    // Who am I.
    expect(
        &h,
        "GET",
        "/api/me",
        None,
        &[(NONE, 401), (WRONG, 401), (AGENT, 200), (SUPERVISOR, 200)],
    );
    let (_, me) = http(h.http_port(), "GET", "/api/me", AGENT, None);
    assert_eq!(json(&me)["agent"], "2001");
    // The token may come as ?token= (the page's event stream does).
    let (status, _) = http(h.http_port(), "GET", "/api/me?token=demo-2001", NONE, None);
    assert_eq!(status, 200);

    // Agents: the list is the supervisor's; each agent sees only themself.
    expect(
        &h,
        "GET",
        "/api/agents",
        None,
        &[(NONE, 401), (AGENT, 403), (SUPERVISOR, 200)],
    );
    let (_, list) = http(h.http_port(), "GET", "/api/agents", SUPERVISOR, None);
    assert_eq!(json(&list)["agents"].as_array().unwrap().len(), 4);
    expect(
        &h,
        "GET",
        "/api/agents/2001",
        None,
        &[
            (NONE, 401),
            (WRONG, 401),
            (OTHER, 403),
            (AGENT, 200),
            (SUPERVISOR, 200),
        ],
    );
    expect(
        &h,
        "GET",
        "/api/agents/9999",
        None,
        &[(SUPERVISOR, 404), (AGENT, 403)],
    );

    // Ready: only the agent themself (logged out -> logged in, available).
    expect(
        &h,
        "POST",
        "/api/agents/2001/ready",
        None,
        &[(NONE, 401), (OTHER, 403), (SUPERVISOR, 403), (AGENT, 200)],
    );
    assert_eq!(state(&h, "2001").0, "available");

    // Pause with a reason: the agent, or a supervisor (who is named).
    let lunch = Some(r#"{"reason": "lunch"}"#);
    expect(
        &h,
        "POST",
        "/api/agents/2001/pause",
        lunch,
        &[(NONE, 401), (OTHER, 403), (AGENT, 200)],
    );
    assert_eq!(state(&h, "2001"), ("paused".into(), "lunch".into()));
    expect(
        &h,
        "POST",
        "/api/agents/2001/pause",
        Some("{}"),
        &[(AGENT, 400)],
    );
    expect(
        &h,
        "POST",
        "/api/agents/2001/pause",
        Some("not json"),
        &[(AGENT, 400)],
    );
    http(h.http_port(), "POST", "/api/agents/2001/ready", AGENT, None);
    expect(
        &h,
        "POST",
        "/api/agents/2001/pause",
        Some(r#"{"reason": "meeting"}"#),
        &[(SUPERVISOR, 200)],
    );
    assert_eq!(
        state(&h, "2001"),
        ("paused".into(), "meeting (by supervisor)".into())
    );

    // Wrap-up done: the agent's own, and only while wrapping up.
    expect(
        &h,
        "POST",
        "/api/agents/2001/wrap-up-done",
        None,
        &[(NONE, 401), (OTHER, 403), (SUPERVISOR, 403), (AGENT, 409)],
    );

    // Log out: the agent or a supervisor.
    expect(
        &h,
        "POST",
        "/api/agents/2001/logout",
        None,
        &[(NONE, 401), (OTHER, 403), (SUPERVISOR, 200)],
    );
    assert_eq!(state(&h, "2001").0, "logged_out");
    expect(&h, "POST", "/api/agents/2001/pause", lunch, &[(AGENT, 409)]);

    // The event stream: the agent's own (or a supervisor's look).
    expect(
        &h,
        "GET",
        "/api/agents/2001/events?token=demo-2003",
        None,
        &[(NONE, 403)],
    );
    expect(&h, "GET", "/api/agents/2001/events", None, &[(NONE, 401)]);
    let first = first_event(&h, "/api/agents/2001/events?token=demo-2001");
    assert!(
        first.contains(r#""type":"state""#) && first.contains("logged_out"),
        "{first}"
    );

    // Queues: supervisors.
    expect(
        &h,
        "GET",
        "/api/queues",
        None,
        &[(NONE, 401), (AGENT, 403), (SUPERVISOR, 200)],
    );
    let (_, queues) = http(h.http_port(), "GET", "/api/queues", SUPERVISOR, None);
    let names: Vec<String> = json(&queues)["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap().to_string())
        .collect();
    assert!(names.contains(&"repair".to_string()), "{names:?}");

    // Tickets: supervisors query all; an agent sees those they handle.
    common::open_ticket(&h, "water", "O-0001", "leak");
    wait_for_ticket(&h);
    expect(
        &h,
        "GET",
        "/api/tickets",
        None,
        &[(NONE, 401), (AGENT, 200), (SUPERVISOR, 200)],
    );
    let (_, all) = http(
        h.http_port(),
        "GET",
        "/api/tickets?status=open&owner=O-0001",
        SUPERVISOR,
        None,
    );
    assert_eq!(json(&all)["tickets"].as_array().unwrap().len(), 1, "{all}");
    let (_, mine) = http(h.http_port(), "GET", "/api/tickets", AGENT, None);
    assert_eq!(
        json(&mine)["tickets"],
        serde_json::json!([]),
        "2001 handles none"
    );
    expect(
        &h,
        "GET",
        "/api/tickets?status=bogus",
        None,
        &[(SUPERVISOR, 400)],
    );
    expect(
        &h,
        "GET",
        "/api/tickets/1",
        None,
        &[(NONE, 401), (AGENT, 403), (SUPERVISOR, 200)],
    );
    expect(&h, "GET", "/api/tickets/99", None, &[(SUPERVISOR, 404)]);
    expect(&h, "GET", "/api/tickets/x1", None, &[(SUPERVISOR, 400)]);

    // Changing a ticket: escalate and record a broken promise (the agent
    // handling it, or a supervisor), dispatch (supervisors).
    let why = Some(r#"{"reason": "water in the lift shaft"}"#);
    expect(
        &h,
        "POST",
        "/api/tickets/1/escalate",
        why,
        &[(NONE, 401), (AGENT, 403), (SUPERVISOR, 201)],
    );
    expect(
        &h,
        "POST",
        "/api/tickets/1/escalate",
        Some(r#"{"reason": " "}"#),
        &[(SUPERVISOR, 400)],
    );
    expect(
        &h,
        "POST",
        "/api/tickets/99/escalate",
        why,
        &[(SUPERVISOR, 404)],
    );
    let broken =
        Some(r#"{"reason": "the part is late", "remedy": "a plumber tomorrow 9:00, fee waived"}"#);
    expect(
        &h,
        "POST",
        "/api/tickets/1/promise-broken",
        broken,
        &[(AGENT, 403), (SUPERVISOR, 201)],
    );
    expect(
        &h,
        "POST",
        "/api/tickets/1/promise-broken",
        why,
        &[(SUPERVISOR, 400)],
    );
    let send = Some(r#"{"department": "engineering", "person": "Master Chen"}"#);
    expect(
        &h,
        "POST",
        "/api/tickets/1/dispatch",
        send,
        &[(NONE, 401), (AGENT, 403), (SUPERVISOR, 201)],
    );
    expect(
        &h,
        "POST",
        "/api/tickets/1/dispatch",
        Some(r#"{"department": "plumbing"}"#),
        &[(SUPERVISOR, 400)],
    );
    let shown = common::cli(&[
        "tickets",
        "--store",
        h.store_path().to_str().unwrap(),
        "show",
        "1",
    ]);
    // One line per event: who, what, its fields.
    for want in [
        [
            "supervisor supervisor",
            "escalated",
            "reason=\"water in the lift shaft\"",
        ],
        ["supervisor supervisor", "promise_broken", "remedy="],
        [
            "supervisor supervisor",
            "dispatched",
            "department=engineering person=\"Master Chen\"",
        ],
    ] {
        assert!(
            shown.lines().any(|l| want.iter().all(|w| l.contains(w))),
            "{want:?} in\n{shown}"
        );
    }

    // Calls (the screen pop and the wrap-up) need a call: see the browser
    // test. An unknown call is 404 for anyone who may ask.
    expect(
        &h,
        "GET",
        "/api/calls/77",
        None,
        &[(NONE, 401), (AGENT, 404), (SUPERVISOR, 404)],
    );
    let form = Some(r#"{"category": "water", "notes": "fixed"}"#);
    expect(
        &h,
        "POST",
        "/api/calls/77/wrap-up",
        form,
        &[(NONE, 401), (AGENT, 404)],
    );
    expect(
        &h,
        "POST",
        "/api/calls/77/wrap-up",
        Some(r#"{"notes": 1}"#),
        &[(AGENT, 400)],
    );

    // Handing a call on, three-way, monitoring, pausing the recording:
    // the agent on the call or a supervisor (monitoring: supervisors
    // only). Call 77 does not exist: who may ask hears 404, the others
    // 401/403 first.
    let to = Some(r#"{"to": "2003"}"#);
    expect(
        &h,
        "POST",
        "/api/calls/77/transfer",
        to,
        &[(NONE, 401), (WRONG, 401), (AGENT, 404), (SUPERVISOR, 404)],
    );
    expect(
        &h,
        "POST",
        "/api/calls/77/transfer",
        Some(r#"{"to": ""}"#),
        &[(SUPERVISOR, 400)],
    );
    let add = Some(r#"{"add": "2003"}"#);
    expect(
        &h,
        "POST",
        "/api/calls/77/conference",
        add,
        &[(NONE, 401), (AGENT, 404), (SUPERVISOR, 404)],
    );
    let listen = Some(r#"{"mode": "listen"}"#);
    expect(
        &h,
        "POST",
        "/api/calls/77/monitor",
        listen,
        &[(NONE, 401), (AGENT, 403), (OTHER, 403), (SUPERVISOR, 404)],
    );
    expect(
        &h,
        "POST",
        "/api/calls/77/monitor",
        Some(r#"{"mode": "shout"}"#),
        &[(SUPERVISOR, 400)],
    );
    let pause = Some(r#"{"paused": true}"#);
    expect(
        &h,
        "POST",
        "/api/calls/77/recording",
        pause,
        &[(NONE, 401), (AGENT, 404), (SUPERVISOR, 404)],
    );

    // Unknown routes are JSON too.
    expect(&h, "GET", "/api/nothing", None, &[(SUPERVISOR, 404)]);
}

#[test]
fn without_a_users_file_every_api_route_is_refused() {
    let h = Hotline::start(BASE, "");
    let (status, body) = http(h.http_port(), "GET", "/api/me", SUPERVISOR, None);
    assert_eq!(status, 401);
    assert!(body.contains("no API users"), "{body}");
}

/// The stream's first event (the agent's state now).
fn first_event(h: &Hotline, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", h.http_port())).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&got).contains("data:") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "stream closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got).to_string();
    assert!(
        text.starts_with("HTTP/1.1 200") && text.contains("text/event-stream"),
        "{text}"
    );
    text
}

/// The watcher reads the log once a second.
fn wait_for_ticket(h: &Hotline) {
    let end = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, body) = http(h.http_port(), "GET", "/api/tickets", SUPERVISOR, None);
        if body.contains("leak") {
            return;
        }
        assert!(std::time::Instant::now() < end, "{body}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
