//! A callback that keeps the caller's place, end to end: SIPp owners call
//! the default menu, agent 2001 answers on baresip, and SIPp is the
//! owner's phone behind the gateway when the hotline calls back.

mod common;

use std::time::Duration;

use common::baresip::agent_phone;
use common::caller::{Step, scenario};
use common::stores::all_events;
use common::{SippUas, assert_sipp_ok, field, sipp};
use hotline::tickets::EventKind;

/// Four hotlines (200 ports each) below the phones and SIPp peers at 31600 and up.
const BASE: u16 = 30800;

/// A test's own ports beside its hotline's block.
struct Ports {
    /// Agent 2001's baresip (and 60 above).
    phone: u16,
    /// The gateway the owner is called back through (SIPp as the phone).
    gateway: u16,
    /// Two more SIPp callers beside the one on the peer port.
    caller_a: u16,
    caller_c: u16,
}
/// ChromeDriver for the agent page.
const BROWSER: u16 = 32100;
/// O-0001 (VIP: waits in the vip queue).
const OWNER: &str = "13800138000";

/// A SIPp caller from its own port, to its end: its exit code.
fn sipp_from(h: &common::Hotline, xml: &std::path::Path, port: u16) -> i32 {
    let out = common::sipp_on(h, xml, port).wait_with_output();
    out.expect("sipp").status.code().unwrap_or(-1)
}

fn connected(h: &common::Hotline) -> Vec<String> {
    h.lines("caller connected to agent")
        .iter()
        .filter_map(|l| field(l, "caller").map(str::to_string))
        .collect()
}

/// The names of the callback's events in the log, in order.
fn callback_events(events: &[hotline::tickets::Event]) -> Vec<&'static str> {
    events
        .iter()
        .map(|e| e.kind.name())
        .filter(|n| n.starts_with("callback"))
        .collect()
}

/// Whether agent 2001 was ever in `state` (the log's lines).
fn was_2001(h: &common::Hotline, state: &str) -> bool {
    h.lines("agent state")
        .iter()
        .any(|l| field(l, "agent") == Some("2001") && field(l, "state") == Some(state))
}

/// A, an owner who presses 0 and stays on the line `ms` after.
fn talks_with_2001(h: &common::Hotline, ms: u64) -> std::path::PathBuf {
    scenario(
        h.dir.path(),
        "a",
        OWNER,
        "100",
        &[Step::Pause(500), Step::Key('0'), Step::Pause(ms)],
    )
}

/// B, a waiting owner: presses 0, hears the callback offered, presses 1,
/// confirms the number called from with 1 and hangs up.
fn takes_a_callback(h: &common::Hotline) {
    let b = scenario(
        h.dir.path(),
        "b",
        OWNER,
        "100",
        &[
            Step::Pause(500),
            Step::Key('0'),
            Step::Pause(3500),
            Step::Key('1'),
            Step::Pause(1000),
            Step::Key('1'),
            Step::Pause(1500),
        ],
    );
    assert_sipp_ok(h, &sipp(h, b.to_str().unwrap(), &["-m", "1"]));
}

fn wait_until(h: &common::Hotline, what: &str, ok: impl Fn() -> bool) {
    let end = std::time::Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(std::time::Instant::now() < end, "{what}\n{}", h.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_waiting_owner_presses_1_hangs_up_and_is_called_back_before_a_later_caller() {
    called_back_before_a_later_caller(
        "owner_first",
        Ports {
            phone: 31600,
            gateway: 31800,
            caller_a: 31820,
            caller_c: 31840,
        },
    );
}

/// The same with the agent rung first: 2001 answers, hears ringback, and
/// the owner called then talks to them at once.
#[test]
fn agent_first_the_agent_is_rung_then_the_owner_and_the_callback_still_comes_before_a_later_caller()
{
    called_back_before_a_later_caller(
        "agent_first",
        Ports {
            phone: 31700,
            gateway: 31860,
            caller_a: 31880,
            caller_c: 31900,
        },
    );
}

fn called_back_before_a_later_caller(order: &str, ports: Ports) {
    let Ports {
        phone,
        gateway,
        caller_a,
        caller_c,
    } = ports;
    let (h, _data) = common::menu_hotline(
        BASE,
        &format!(
            "announce_seconds = 2\n[callback]\ngateway = \"127.0.0.1:{gateway}\"\norder = \"{order}\"\n\
             [return_visit]\nring_seconds = 10\n\
             [http]\nlisten = \"127.0.0.1:HTTP_PORT\"\nusers = \"{}\"\n",
            common::manifest("config/users.toml")
        ),
    );
    let _phone = agent_phone(&h, "2001", phone, "auto");
    wait_until(&h, "2001 never available", || was_2001(&h, "available"));
    // 2001 works from the agent page too (owner first only: one browser).
    let browser = (order == "owner_first").then(|| {
        let b = common::browser::Browser::start(h.dir.path(), BROWSER);
        b.resize(1280, 900);
        b.goto(&format!("http://127.0.0.1:{}/agent", h.http_port()));
        b.type_into("#token", "demo-2001");
        b.click("#login");
        b.wait_text("#state", Duration::from_secs(10), |t| {
            t == "Ready for calls"
        });
        b
    });
    let mut owners_phone = SippUas::start_on(
        &h,
        "engineers_on_call.xml",
        gateway,
        &["-m", "1", "-set", "nobody", "none", "-set", "key", "5"],
    );
    let hr = &h;
    std::thread::scope(|s| {
        // A talks with 2001 for a while: the agent is at work, and busy.
        let a = talks_with_2001(&h, 14_000);
        let a = s.spawn(move || sipp_from(hr, &a, caller_a));
        wait_until(&h, "A never reached 2001", || connected(&h).len() == 1);
        // B waits, hears the callback offered with the place and the
        // wait, takes it, confirms the number it called from, hangs up.
        takes_a_callback(&h);
        // C comes after and waits behind B's kept place.
        let c = scenario(
            h.dir.path(),
            "c",
            OWNER,
            "100",
            &[Step::Pause(500), Step::Key('0'), Step::Pause(20_000)],
        );
        let c = s.spawn(move || sipp_from(hr, &c, caller_c));
        assert_eq!(a.join().unwrap(), 0, "SIPp (A)");
        // 2001 wraps up A's call (ended early from the page), then the
        // ACD's next is B's place: the hotline calls B back first.
        wait_until(&h, "2001 never wrapping up", || {
            h.lines("agent state")
                .iter()
                .any(|l| field(l, "agent") == Some("2001") && field(l, "state") == Some("wrap_up"))
        });
        let (status, body) = common::http(
            h.http_port(),
            "POST",
            "/api/agents/2001/wrap-up-done",
            Some("demo-2001"),
            None,
        );
        assert!(status < 300, "{status} {body}");
        wait_until(&h, "the called-back owner never reached 2001", || {
            connected(&h).len() == 2
        });
        // The screen pop tells 2001 this is the owner they call back.
        if let Some(b) = &browser {
            b.wait_text("#pop-queue", Duration::from_secs(5), |t| {
                t.contains("callback: the owner asked to be called back")
            });
            // ... and the way they came through the menu before asking.
            b.wait_text("#pop-path", Duration::from_secs(5), |t| {
                t.contains("pressed 0")
            });
            let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
            std::fs::create_dir_all(&shots).unwrap();
            let shot = shots.join("agent-callback.png");
            assert!(b.screenshot(&shot) > 20_000, "{} is blank", shot.display());
        }
        assert_eq!(c.join().unwrap(), 0, "SIPp (C)");
    });
    let _ = owners_phone.wait(Duration::from_secs(5));
    let log = h.log();
    let store = h.store_path().to_str().unwrap().to_string();
    let events = all_events(&store);
    assert_eq!(
        callback_events(&events),
        ["callback_requested", "callback_placed", "callback_answered"],
        "{log}"
    );
    let requested = events
        .iter()
        .find(|e| matches!(e.kind, EventKind::CallbackRequested { .. }))
        .unwrap();
    match &requested.kind {
        EventKind::CallbackRequested { number, queue, .. } => {
            assert_eq!((number.as_str(), queue.as_str()), ("+8613800138000", "vip"))
        }
        _ => unreachable!(),
    }
    // The second caller 2001 talked with is the callback (B's place), not C.
    let second = connected(&h)[1].clone();
    assert!(
        h.lines("callback: the owner answered")
            .iter()
            .any(|l| field(l, "call") == Some(second.as_str())),
        "{log}"
    );
    // Who was rung first, as configured.
    let at = |what: &str| log.find(what).unwrap_or_else(|| panic!("{what}: {log}"));
    let (agent_rung, owner_called) = match order {
        "agent_first" => (
            at("callback: ringing the agent first"),
            at("callback: calling the owner"),
        ),
        _ => (
            at("callback: the owner answered"),
            at("callback: calling the owner"),
        ),
    };
    assert_eq!(agent_rung < owner_called, order == "agent_first", "{log}");
    // The screen pop says callback.
    let id = second.trim_start_matches('c');
    let (status, card) = common::http(
        h.http_port(),
        "GET",
        &format!("/api/calls/{id}"),
        Some("demo-supervisor"),
        None,
    );
    assert_eq!(status, 200, "{card}");
    assert!(card.contains("\"callback\":true"), "{card}");
    let metrics = common::http_get(h.http_port(), "/metrics");
    for (series, at_least) in [
        ("hotline_callbacks_total{outcome=\"offered\"}", 1.0),
        ("hotline_callbacks_total{outcome=\"accepted\"}", 1.0),
        ("hotline_callbacks_total{outcome=\"completed\"}", 1.0),
        ("hotline_callback_wait_spared_seconds_count", 1.0),
    ] {
        let v = common::sample(&metrics, series).unwrap_or(0.0);
        assert!(v >= at_least, "{series} = {v}");
    }
}

/// A callback is in the log, not in the process: B takes one while 2001
/// talks with A; the hotline is killed (-9) while 2001 wraps up A's call
/// and started again on the same log and address. The new process calls
/// B back through the gateway and bridges them to 2001, whose phone and
/// desk it took from the log too (baresip never registered again).
#[test]
fn a_callback_taken_before_the_hotline_is_killed_is_made_by_the_next_process() {
    let (gateway, caller_a, phone) = (31920, 31940, 31960);
    let config = |listen: &str, store: &str| {
        format!(
            "announce_seconds = 2\n[callback]\ngateway = \"127.0.0.1:{gateway}\"\n\
             [return_visit]\nring_seconds = 10\n\
             [sip]\nlisten = \"{listen}\"\nanswer_after_ms = 100\ntrunks = [\"127.0.0.1\"]\n{store}"
        )
    };
    let (mut first, _data) = common::menu_hotline(BASE, &config("127.0.0.1:SIP_PORT", ""));
    let _phone = agent_phone(&first, "2001", phone, "auto");
    wait_until(&first, "2001 never available", || {
        was_2001(&first, "available")
    });
    let fr = &first;
    std::thread::scope(|s| {
        let a = talks_with_2001(fr, 10_000);
        let a = s.spawn(move || sipp_from(fr, &a, caller_a));
        wait_until(fr, "A never reached 2001", || connected(fr).len() == 1);
        takes_a_callback(fr);
        assert_eq!(a.join().unwrap(), 0, "SIPp (A)");
    });
    wait_until(&first, "2001 never wrapping up A's call", || {
        was_2001(&first, "wrap_up")
    });
    assert!(first.lines("callback: calling the owner").is_empty());
    first.kill();
    let store = first.store_path().to_str().unwrap().to_string();
    let (second, _data2) = common::menu_hotline(
        BASE,
        &config(
            &first.target(),
            &format!("[tickets]\nstore = \"{store}\"\n"),
        ),
    );
    let mut owners_phone = SippUas::start_on(
        &second,
        "engineers_on_call.xml",
        gateway,
        &["-m", "1", "-set", "nobody", "none", "-set", "key", "5"],
    );
    wait_until(&second, "the called-back owner never reached 2001", || {
        connected(&second).len() == 1
    });
    let _ = owners_phone.wait(Duration::from_secs(5));
    let log = second.log();
    assert!(log.contains("callback: the owner answered"), "{log}");
    assert!(second.lines("agent registered").is_empty(), "{log}");
    // The new process put it back in line (its first arrival kept) and
    // made it: one attempt, after the restart.
    assert!(log.contains("callback: queued again in its place"), "{log}");
    assert_eq!(
        callback_events(&all_events(&store)),
        [
            "callback_requested",
            "callback_queued",
            "callback_placed",
            "callback_answered"
        ],
        "{log}"
    );
}
