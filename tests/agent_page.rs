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
        t == "Li Wei · extension 2001"
    });
    browser.wait_text("#state", Duration::from_secs(5), |t| t == "Logged out");
    browser.click("#ready");
    browser.wait_text("#state", Duration::from_secs(5), |t| t == "Ready for calls");

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
            browser
                .text("#pop-path")
                .contains("main: pressed 0 → agent"),
            "{}",
            browser.text("#pop-path")
        );
        // O-0001 is a VIP: the pop names the queue the figures count.
        assert_eq!(browser.text("#pop-queue"), "vip");
        browser.wait_text("#pop-status", Duration::from_secs(10), |t| {
            t.contains("on the line")
        });
        assert_sipp_ok(&h, &call.join().unwrap());
    });
    browser.wait_text("#pop-status", Duration::from_secs(10), |t| {
        t.contains("ended")
    });
    browser.wait_text("#state", Duration::from_secs(5), |t| t == "Wrapping up");

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
    browser.wait_text("#state", Duration::from_secs(5), |t| t == "Ready for calls");
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
    browser.wait_text("#state", Duration::from_secs(5), |t| t == "Paused");
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
        "T2  water  ordinary  ",
        "owner O-0001",
        "summary   Leak under the kitchen sink; plumber booked for 3 pm",
        "agent 2001       ticket_opened          building=3 category=water",
        "committed",
        "agent 2001       wrap_up_coded          code=water",
    ] {
        assert!(shown.contains(want), "{want} in\n{shown}");
    }
    assert!(
        !shown.contains("Agent(") && !shown.contains("at_ms"),
        "words and local times, not Rust's debug text: {shown}"
    );
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

/// Where the tests write the pages' screenshots (kept for people to look
/// at): `target/screenshots/`.
pub fn screenshot_dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A one-colour 1280x900 PNG from Chromium is a few kilobytes; a page with
/// text and boxes on it is tens.
pub const NON_BLANK_PNG: usize = 20_000;

#[test]
fn the_page_speaks_plainly_offers_only_what_applies_and_starts_each_wrap_up_afresh() {
    // Agent 2001 with a 4 s wrap-up, a phone answered by hand.
    let data = tempfile::tempdir().unwrap();
    let agents = data.path().join("agents.toml");
    std::fs::write(
        &agents,
        std::fs::read_to_string(common::manifest("config/agents.toml"))
            .unwrap()
            .replace("wrap_up_seconds = 30", "wrap_up_seconds = 4"),
    )
    .unwrap();
    let db = data.path().join("owners.db");
    common::cli(&[
        "owners",
        "--db",
        db.to_str().unwrap(),
        "import",
        &common::manifest("config/owners.csv"),
    ]);
    let h = common::Hotline::start(
        BASE,
        &format!(
            "[owners]\ndb = \"{}\"\n[ivr]\nmenu = \"{}\"\nrecordings = \"{}\"\n[acd]\nagents = \"{}\"\n\
             [http]\nlisten = \"127.0.0.1:HTTP_PORT\"\nusers = \"{}\"\n",
            db.display(),
            common::manifest("config/ivr.toml"),
            data.path().join("recordings").display(),
            agents.display(),
            common::manifest("config/users.toml")
        ),
    );
    let browser = Browser::start(h.dir.path(), DRIVER + 100);
    browser.resize(1280, 900);
    browser.goto(&format!("http://127.0.0.1:{}/agent", h.http_port()));
    browser.type_into("#token", "demo-2001");
    browser.click("#login");
    browser.wait_text("#who", Duration::from_secs(10), |t| {
        t == "Li Wei · extension 2001"
    });
    browser.wait_text("#state", Duration::from_secs(5), |t| t == "Logged out");
    // No phone yet: the page says why no call will come.
    browser.wait_text("#phone", Duration::from_secs(5), |t| {
        t.contains("not registered")
    });
    let buttons =
        |b: &Browser| ["#ready", "#pause", "#wrapdone", "#logout"].map(|css| b.enabled(css));
    assert_eq!(buttons(&browser), [true, false, false, false], "logged out");
    browser.click("#ready");
    browser.wait_text("#state", Duration::from_secs(5), |t| t == "Ready for calls");
    assert_eq!(buttons(&browser), [false, true, false, true], "ready");
    let phone = Baresip::start(
        h.dir.path(),
        &format!(
            "<sip:2001@{}>;auth_user=2001;auth_pass=agent2001;regint=60;answermode=manual;audio_codecs=PCMU/8000",
            h.target()
        ),
        PHONE + 100,
        (PHONE + 110, PHONE + 160),
        &[],
    );
    browser.wait_text("#phone", Duration::from_secs(10), |t| {
        t.starts_with("Phone registered")
    });

    let caller = |name: &str, number: &str, ms: u64| {
        scenario(
            h.dir.path(),
            name,
            number,
            "100",
            &[Step::Pause(500), Step::Key('0'), Step::Pause(ms)],
        )
    };
    // 1. The phone refuses the offer, then the caller hangs up: the page
    // stops ringing (it rang on until reloaded).
    let refused = caller("refused", "19790228645", 3000);
    std::thread::scope(|s| {
        let call = s.spawn(|| sipp(&h, refused.to_str().unwrap(), &["-m", "1"]));
        browser.wait_text("#pop-status", Duration::from_secs(10), |t| {
            t.contains("ringing")
        });
        assert_eq!(
            browser.text("#pop-path"),
            "main: pressed 0 → agent",
            "the menu path in words"
        );
        phone.command("hangup", "");
        assert_sipp_ok(&h, &call.join().unwrap());
    });
    browser.wait_text("#pop", Duration::from_secs(5), |t| t.is_empty());
    assert_eq!(
        browser.attr("#pop", "className"),
        "",
        "no ringing frame left"
    );

    // 2. After the miss the agent rests, then the next caller is answered
    // on the phone; the page counts the call, then the wrap-up down.
    let talk = caller("talk", "13065183407", 9000);
    std::thread::scope(|s| {
        let call = s.spawn(|| sipp(&h, talk.to_str().unwrap(), &["-m", "1"]));
        browser.wait_text("#pop-status", Duration::from_secs(15), |t| {
            t.contains("ringing")
        });
        phone.command("accept", "");
        browser.wait_text("#pop-status", Duration::from_secs(10), |t| {
            t.contains("on the line")
        });
        browser.wait_text("#state", Duration::from_secs(5), |t| t == "On a call");
        assert_eq!(buttons(&browser), [false, false, false, true], "on a call");
        // On the line: the agent may hand the caller on (transfer, or add).
        assert_eq!(browser.attr("#handoff", "hidden"), "false");
        browser.wait_text("#call-clock", Duration::from_secs(3), |t| {
            t.starts_with("0:0") && t != "0:00"
        });
        // Everything an agent needs at once, the wrap-up form included.
        let (_, y, _, h_) = browser.rect("#save");
        assert!(y + h_ <= 900.0, "Save is below the fold at 1280x900: {y}");
        let shot = screenshot_dir().join("agent-on-call.png");
        let bytes = browser.screenshot(&shot);
        assert!(
            bytes > NON_BLANK_PNG,
            "{} is blank ({bytes} bytes)",
            shot.display()
        );
        assert_sipp_ok(&h, &call.join().unwrap());
    });
    browser.wait_text("#state", Duration::from_secs(5), |t| t == "Wrapping up");
    assert_eq!(
        browser.attr("#handoff", "hidden"),
        "true",
        "nothing to hand on"
    );
    browser.wait_text("#countdown", Duration::from_secs(3), |t| {
        t.contains("of wrap-up left")
    });
    assert_eq!(buttons(&browser), [false, true, true, true], "wrapping up");
    // Resolved on the call: a ticket opened and closed at once.
    browser.select("#category", "enquiry");
    browser.click("input[name=resolution][value=resolved]");
    browser.type_into("#notes", "Explained the fee statement");
    browser.click("#save");
    let saved = browser.wait_text("#saved", Duration::from_secs(5), |t| !t.is_empty());
    assert!(
        saved.ends_with("resolved on the call and closed."),
        "{saved}"
    );
    let ticket: u64 = saved
        .trim_start_matches("Ticket T")
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // The timer (not the button) ends the wrap-up.
    browser.wait_text("#state", Duration::from_secs(8), |t| t == "Ready for calls");

    // 3. The next call's wrap-up starts afresh.
    let next = caller("next", "13354354676", 2000);
    std::thread::scope(|s| {
        let call = s.spawn(|| sipp(&h, next.to_str().unwrap(), &["-m", "1"]));
        browser.wait_text("#pop-status", Duration::from_secs(10), |t| {
            t.contains("ringing")
        });
        phone.command("accept", "");
        browser.wait_text("#pop-status", Duration::from_secs(10), |t| {
            t.contains("on the line")
        });
        assert_eq!(
            browser.text("#saved"),
            "",
            "no word of the last call's save"
        );
        assert!(browser.enabled("#save"), "Save is enabled for the new call");
        assert_eq!(browser.attr("#notes", "value"), "");
        assert_eq!(browser.attr("#category", "value"), "water");
        assert_eq!(
            browser.attr("input[name=resolution][value=open]", "checked"),
            "true"
        );
        assert_sipp_ok(&h, &call.join().unwrap());
    });
    // The resolved ticket is closed, its SLA kept.
    let (status, body) = common::http(
        h.http_port(),
        "GET",
        &format!("/api/tickets/{ticket}"),
        Some("demo-supervisor"),
        None,
    );
    assert_eq!(status, 200, "{body}");
    let t: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(t["status"], "closed", "{t:#}");
    let _ = data;
}

#[test]
fn the_wallboard_shows_a_caller_waiting_then_with_an_agent_and_pauses_an_agent() {
    let (h, _data) = common::menu_hotline(
        BASE,
        &format!(
            "[http]\nlisten = \"127.0.0.1:HTTP_PORT\"\nusers = \"{}\"\n",
            common::manifest("config/users.toml")
        ),
    );
    let phone = Baresip::start(
        h.dir.path(),
        &format!(
            "<sip:2001@{}>;auth_user=2001;auth_pass=agent2001;regint=60;answermode=manual;audio_codecs=PCMU/8000",
            h.target()
        ),
        PHONE + 200,
        (PHONE + 210, PHONE + 260),
        &[],
    );
    h.wait_for("agent registered", 1, Duration::from_secs(10));
    let as_agent = |path: &str, body: Option<&str>| {
        let (status, reply) = common::http(h.http_port(), "POST", path, Some("demo-2001"), body);
        assert_eq!(status, 200, "{path}: {reply}");
    };
    // 2001 is logged in but on a break: a caller waits for them.
    as_agent("/api/agents/2001/ready", None);
    as_agent("/api/agents/2001/pause", Some(r#"{"reason": "break"}"#));

    let browser = Browser::start(h.dir.path(), DRIVER + 200);
    browser.resize(1280, 900);
    browser.goto(&format!("http://127.0.0.1:{}/supervisor", h.http_port()));
    browser.type_into("#token", "demo-supervisor");
    browser.click("#login");
    let row = "tr[data-agent=\"2001\"]";
    browser.wait_text(&format!("{row} .state"), Duration::from_secs(10), |t| {
        t == "paused (break)"
    });
    assert!(
        browser.text(row).contains("registered"),
        "{}",
        browser.text(row)
    );
    assert!(
        browser
            .text("tr[data-agent=\"2002\"]")
            .contains("not registered")
    );

    let xml = scenario(
        h.dir.path(),
        "waits",
        "19790228645",
        "100",
        &[Step::Pause(500), Step::Key('0'), Step::Pause(9000)],
    );
    std::thread::scope(|s| {
        let call = s.spawn(|| sipp(&h, xml.to_str().unwrap(), &["-m", "1"]));
        let waiting = "[data-queue=\"general\"] .callers li";
        let first = browser.wait_text(waiting, Duration::from_secs(10), |t| t.contains("O-0002"));
        std::thread::sleep(Duration::from_millis(2200));
        let later = browser.text(waiting);
        let wait = |t: &str| -> u64 {
            let w = t.rsplit(['\n', ' ']).next().unwrap();
            let (m, s) = w.split_once(':').unwrap();
            m.parse::<u64>().unwrap() * 60 + s.parse::<u64>().unwrap()
        };
        assert!(
            wait(&later) >= wait(&first) + 2,
            "the wait grows: {first:?} then {later:?}"
        );
        assert_eq!(browser.text("[data-queue=\"general\"] .waiting"), "1");
        let shot = screenshot_dir().join("wallboard.png");
        let bytes = browser.screenshot(&shot);
        assert!(
            bytes > NON_BLANK_PNG,
            "{} is blank ({bytes} bytes)",
            shot.display()
        );
        // 2001 comes back and answers: the caller moves to them.
        as_agent("/api/agents/2001/ready", None);
        browser.wait_text(&format!("{row} .state"), Duration::from_secs(10), |t| {
            t == "phone ringing"
        });
        phone.command("accept", "");
        browser.wait_text(&format!("{row} .state"), Duration::from_secs(10), |t| {
            t == "on a call"
        });
        assert!(
            browser.text(row).contains("O-0002 · general"),
            "{}",
            browser.text(row)
        );
        browser.wait_text(
            "[data-queue=\"general\"] .waiting",
            Duration::from_secs(3),
            |t| t == "0",
        );
        assert_sipp_ok(&h, &call.join().unwrap());
    });
    // Wrapping up: the supervisor pauses 2001 from the board.
    browser.wait_text(&format!("{row} .state"), Duration::from_secs(10), |t| {
        t == "wrapping up"
    });
    browser.click(&format!("{row} button[data-act=\"pause\"]"));
    browser.wait_text(&format!("{row} .state"), Duration::from_secs(5), |t| {
        t.starts_with("paused")
    });
    let (_, me) = common::http(
        h.http_port(),
        "GET",
        "/api/agents/2001",
        Some("demo-2001"),
        None,
    );
    assert!(me.contains("\"state\":\"paused\""), "{me}");
}
