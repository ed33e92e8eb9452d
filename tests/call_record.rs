//! Every call on the record: owners call (SIPp), agent 2001 answers on
//! baresip; one caller is answered, one hangs up while waiting, one waits
//! past the queue's longest wait. The log alone then tells each call's
//! story (the history API and `hotline calls`), and replaying it gives the
//! live figures exactly: the day's report equals what `/api/queues` and
//! `/metrics` show for the same calls.

mod common;

use std::time::Duration;

use common::caller::{Step, scenario};
use common::{Hotline, assert_sipp_ok, field, sipp};

const BASE: u16 = 27000;
const PHONE: u16 = 27800;

fn hotline() -> (Hotline, tempfile::TempDir) {
    let queue =
        |name: &str, extra: &str| format!("[acd.queues.{name}]\nskill = \"general\"\n{extra}");
    let queues: String = [
        queue("general", "vip_queue = \"vip\"\nmax_wait_seconds = 4\n"),
        queue("vip", ""),
        queue("repair", ""),
        queue("complaint", ""),
        queue("gifts", ""),
        queue("self_service", ""),
    ]
    .concat();
    common::menu_hotline(
        BASE,
        &format!(
            "{queues}[http]\nlisten = \"127.0.0.1:HTTP_PORT\"\nusers = \"{}\"\n",
            common::manifest("config/users.toml")
        ),
    )
}

fn get(h: &Hotline, path: &str) -> serde_json::Value {
    let (status, body) = common::http(h.http_port(), "GET", path, Some("demo-supervisor"), None);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// A caller who presses 0 (the general queue) and hangs up `after` ms later.
fn caller(h: &Hotline, name: &str, number: &str, after: u64) -> std::path::PathBuf {
    scenario(
        h.dir.path(),
        name,
        number,
        "100",
        &[Step::Pause(500), Step::Key('0'), Step::Pause(after)],
    )
}

/// A second SIPp caller at once, on ports of its own (`port` .. +4).
fn sipp_on(h: &Hotline, xml: &std::path::Path, port: u16) -> std::process::Child {
    std::process::Command::new("sipp")
        .arg(h.target())
        .arg("-sf")
        .arg(xml)
        .args(["-i", "127.0.0.1", "-p", &port.to_string()])
        .args([
            "-mp",
            &(port + 4).to_string(),
            "-cp",
            &(port + 1).to_string(),
        ])
        .args(["-m", "1", "-nostdin", "-timeout", "60s", "-timeout_error"])
        .current_dir(h.dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run sipp")
}

#[test]
fn the_log_tells_each_calls_story_and_replays_to_the_live_figures() {
    let (h, _data) = hotline();
    let _phone = common::baresip::agent_phone(&h, "2001", PHONE, "auto");
    let ready = h.wait_for("agent state", 1, Duration::from_secs(10));
    assert_eq!(field(&ready[0], "state"), Some("available"), "{}", h.log());

    // O-0002 is answered at once and talks a few seconds.
    let answered = caller(&h, "answered", "19790228645", 4000);
    assert_sipp_ok(&h, &sipp(&h, answered.to_str().unwrap(), &["-m", "1"]));
    h.wait_for("caller connected to agent", 1, Duration::from_secs(5));
    // 2001 is wrapping up (30 s): O-0003 gives up after ~2 s, O-0005 waits
    // past the general queue's 4 s and is sent to the fallback.
    let abandons = caller(&h, "abandons", "13065183407", 2500);
    let overflows = caller(&h, "overflows", "13354354676", 7000);
    let second = sipp_on(&h, &overflows, PHONE + 100);
    assert_sipp_ok(&h, &sipp(&h, abandons.to_str().unwrap(), &["-m", "1"]));
    let status = second.wait_with_output().unwrap();
    assert!(
        status.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&status.stdout),
        h.log()
    );
    h.wait_for("call ended", 3, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(1500)); // the figures are published each second

    // The history: three calls with their outcomes, in words.
    let history = get(&h, "/api/calls");
    let calls = history["calls"].as_array().unwrap();
    let outcome = |number: &str| {
        calls
            .iter()
            .find(|c| c["number"] == number)
            .unwrap_or_else(|| panic!("no call from {number}: {history:#}"))
    };
    let a = outcome("19790228645");
    assert_eq!(a["outcome"], "answered", "{a:#}");
    assert_eq!(
        (a["agent"].as_str(), a["owner"].as_str()),
        (Some("2001"), Some("O-0002"))
    );
    let words: Vec<&str> = a["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    for expected in [
        "19790228645 rang",
        "recognised as owner O-0002 by the number",
        "waiting in queue general",
        "agent 2001's phone rang",
    ] {
        assert!(words.contains(&expected), "{expected:?} in {words:#?}");
    }
    assert!(
        words
            .iter()
            .any(|w| w.starts_with("agent 2001 answered after")),
        "{words:#?}"
    );
    assert_eq!(outcome("13065183407")["outcome"], "abandoned");
    let over = outcome("13354354676");
    assert_eq!(over["outcome"], "overflowed", "{over:#}");
    assert!(over["waited_ms"].as_u64().unwrap() >= 4000, "{over:#}");
    // Filters, and an agent sees only calls they were rung with.
    let abandoned = get(&h, "/api/calls?outcome=abandoned");
    assert_eq!(
        abandoned["calls"].as_array().unwrap().len(),
        1,
        "{abandoned:#}"
    );
    let (status, mine) = common::http(h.http_port(), "GET", "/api/calls", Some("demo-2001"), None);
    assert_eq!(status, 200, "{mine}");
    let mine: serde_json::Value = serde_json::from_str(&mine).unwrap();
    assert_eq!(mine["calls"].as_array().unwrap().len(), 1, "{mine:#}");
    let (status, _) = common::http(
        h.http_port(),
        "GET",
        "/api/calls?agent=2002",
        Some("demo-2001"),
        None,
    );
    assert_eq!(status, 403);
    let (status, bad) = common::http(
        h.http_port(),
        "GET",
        "/api/calls?from=yesterday",
        Some("demo-supervisor"),
        None,
    );
    assert_eq!(status, 400, "{bad}");
    // The CLI reads the same log.
    let store = h.store_path();
    let listed = common::cli(&[
        "calls",
        "--store",
        store.to_str().unwrap(),
        "list",
        "--queue",
        "general",
    ]);
    assert_eq!(listed.lines().count(), 3, "{listed}");
    let id = a["call"].as_str().unwrap();
    let shown = common::cli(&["calls", "--store", store.to_str().unwrap(), "show", id]);
    assert!(shown.contains("agent 2001 answered after"), "{shown}");

    // The live figures and the log's replay agree, figure for figure.
    let live = get(&h, "/api/queues");
    let report = get(&h, "/api/reports/day");
    let live_general = live["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "general")
        .unwrap_or_else(|| panic!("{live:#}"))["figures"]
        .clone();
    let replayed = report["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == "general")
        .unwrap()
        .clone();
    for key in [
        "answered",
        "answered_in_time",
        "abandoned",
        "abandoned_in_time",
        "overflowed",
        "service_level_answered",
        "service_level_offered",
        "abandon_rate",
        "asa_seconds",
        "aht_seconds",
    ] {
        assert_eq!(
            live_general[key], replayed[key],
            "{key}: live {live_general:#} replayed {replayed:#}"
        );
    }
    assert_eq!(
        (
            replayed["answered"].as_u64(),
            replayed["abandoned"].as_u64(),
            replayed["overflowed"].as_u64()
        ),
        (Some(1), Some(1), Some(1)),
        "{replayed:#}"
    );
    // ... and with /metrics.
    let text = common::http_get(h.http_port(), "/metrics");
    for (series, key) in [
        (
            "hotline_queue_calls_total{outcome=\"answered\",queue=\"general\"}",
            "answered",
        ),
        (
            "hotline_queue_calls_total{outcome=\"abandoned\",queue=\"general\"}",
            "abandoned",
        ),
        (
            "hotline_queue_calls_total{outcome=\"overflowed\",queue=\"general\"}",
            "overflowed",
        ),
    ] {
        assert_eq!(
            common::sample(&text, series),
            replayed[key].as_f64(),
            "{series}\n{text}"
        );
    }
    assert_eq!(
        common::sample(&text, "hotline_asa_seconds{queue=\"general\"}"),
        replayed["asa_seconds"].as_f64(),
        "{text}"
    );
    let agent = &report["agents"][0];
    assert_eq!(
        (agent["agent"].as_str(), agent["offers"].as_u64()),
        (Some("2001"), Some(1)),
        "{report:#}"
    );
    // The printable page.
    let (status, page) = common::http(
        h.http_port(),
        "GET",
        "/api/reports/day?format=html",
        Some("demo-supervisor"),
        None,
    );
    assert_eq!(status, 200);
    assert!(page.contains("<svg") && page.contains("general"), "{page}");
    let (status, _) = common::http(
        h.http_port(),
        "GET",
        "/api/reports/day",
        Some("demo-2001"),
        None,
    );
    assert_eq!(status, 403, "reports are for supervisors");
}

#[test]
fn with_nobody_logged_in_a_caller_is_told_why_and_goes_to_the_fallback_at_once() {
    // The demo queues, nobody logged in: the default is the fallback.
    let (h, _data) = common::menu_hotline(BASE, "");
    let xml = caller(&h, "nobody", "19790228645", 3000);
    let started = std::time::Instant::now();
    assert_sipp_ok(&h, &sipp(&h, xml.to_str().unwrap(), &["-m", "1"]));
    let played = h.lines("playing");
    assert!(
        played.iter().any(|l| l.contains("no_agents_zh")),
        "told why: {played:#?}\n{}",
        h.log()
    );
    let steps = h.lines("ivr step");
    assert!(
        steps.iter().any(|l| l.contains("no agent available")),
        "{steps:#?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    h.wait_for("call ended", 1, Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(300));
    let store = h.store_path();
    let listed = common::cli(&[
        "calls",
        "--store",
        store.to_str().unwrap(),
        "list",
        "--outcome",
        "overflowed",
        "--json",
    ]);
    let call: serde_json::Value =
        serde_json::from_str(listed.lines().next().unwrap_or_else(|| panic!("{listed}"))).unwrap();
    assert!(
        call["waited_ms"].as_u64().unwrap() < 1000,
        "at once, not after the queue's longest wait: {call:#}"
    );
    assert!(
        call["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["text"] == "nobody logged in for queue general: sent to its fallback"),
        "{call:#}"
    );
}

#[test]
fn the_key_a_caller_pressed_for_an_agent_is_not_played_to_the_agents_phone() {
    // The caller holds 0 (RFC 4733) for two seconds; agent 2001 answers
    // by itself meanwhile. The rest of that key must not reach the agent.
    let (h, _data) = common::menu_hotline(BASE, "");
    let _phone = common::baresip::agent_phone(&h, "2001", PHONE - 100, "auto");
    let ready = h.wait_for("agent state", 1, Duration::from_secs(10));
    assert_eq!(field(&ready[0], "state"), Some("available"), "{}", h.log());
    let key = common::held_key_pcap(h.dir.path(), '0', 101, 2000);
    let tone = common::tone_pcap(h.dir.path(), 1000);
    let xml = scenario(
        h.dir.path(),
        "held_zero",
        "19790228645",
        "100",
        &[
            Step::Pause(500),
            Step::Audio(key, 2500),
            Step::Audio(tone, 1000),
            Step::Pause(500),
        ],
    );
    assert_sipp_ok(&h, &sipp(&h, xml.to_str().unwrap(), &["-m", "1"]));
    let connected = h.wait_for("caller connected to agent", 1, Duration::from_secs(5));
    assert_eq!(connected.len(), 1, "the key reached the queue: {}", h.log());
    std::thread::sleep(Duration::from_millis(500));
    let phone_log =
        std::fs::read_to_string(h.dir.path().join(format!("baresip-{}.log", PHONE - 100)))
            .unwrap_or_default();
    assert!(
        phone_log.contains("Call established") || phone_log.contains("call established"),
        "the phone answered:\n{phone_log}"
    );
    assert!(
        !phone_log.contains("received DTMF"),
        "the caller's queue key was played to the agent:\n{phone_log}"
    );
    // The caller's leg: the rest of the held key (some 1.9 s of updates
    // and its end packets) stayed with the hotline, the voice went on.
    let caller_leg = field(&connected[0], "caller").unwrap().to_string();
    let closed: Vec<String> = h
        .lines("media closed")
        .into_iter()
        .filter(|l| field(l, "call") == Some(caller_leg.as_str()))
        .collect();
    assert_eq!(closed.len(), 1, "{}", h.log());
    let count = |key: &str| -> u64 { field(&closed[0], key).unwrap().parse().unwrap() };
    assert!(
        count("rtp_held_back") >= 50,
        "the key's tail was relayed to the agent: {}",
        closed[0]
    );
    assert!(
        count("rtp_relayed") >= 25,
        "the voice was relayed: {}",
        closed[0]
    );
}
