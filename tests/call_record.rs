//! Every call on the record: owners call (SIPp), agent 2001 answers on
//! baresip; one caller is answered, one hangs up while waiting, one waits
//! past the queue's longest wait. The log alone then tells each call's
//! story (the history API and `hotline calls`), and replaying it gives the
//! live figures exactly: the day's report equals what `/api/queues` and
//! `/metrics` show for the same calls.

mod common;

use std::time::Duration;

use common::caller::{Step, scenario};
use common::{Hotline, assert_sipp_ok, field, sipp, sipp_on};

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
    let report = common::figures_agree_with_the_log(&h);
    let replayed = report["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == "general")
        .unwrap()
        .clone();
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
    // Not recorded: no notice delays the agent's answer past the key.
    let (h, _data) = common::menu_hotline(BASE, "[recording]\nenabled = false\n");
    let _phone = common::baresip::agent_phone(&h, "2001", PHONE + 200, "auto");
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
        std::fs::read_to_string(h.dir.path().join(format!("baresip-{}.log", PHONE + 200)))
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

/// One HTTP GET with a bearer token and a Range header: status, headers
/// (lower-cased names) and body bytes.
fn get_range(h: &Hotline, path: &str, token: &str, range: &str) -> (u16, String, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", h.http_port())).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nRange: {range}\r\n\r\n"
    )
    .unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let end = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&all[..end]).to_lowercase();
    let status = head[9..12].parse().unwrap();
    (status, head, all[end + 4..].to_vec())
}

#[test]
fn a_conversation_is_recorded_in_stereo_with_its_pause_and_old_recordings_go() {
    // A recording from long ago, already in the folder.
    let data = tempfile::tempdir().unwrap();
    let calls = data.path().join("calls");
    std::fs::create_dir_all(&calls).unwrap();
    let old = calls.join("0000abcd-7-conv.wav");
    std::fs::write(&old, b"RIFF").unwrap();
    let long_ago = std::time::SystemTime::now() - Duration::from_secs(40 * 86_400);
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(long_ago)
        .unwrap();
    let db = data.path().join("owners.db");
    common::cli(&[
        "owners",
        "--db",
        db.to_str().unwrap(),
        "import",
        &common::manifest("config/owners.csv"),
    ]);
    let h = Hotline::start(
        BASE,
        &format!(
            "[owners]\ndb = \"{}\"\n[ivr]\nmenu = \"{}\"\nrecordings = \"{}\"\n[acd]\nagents = \"{}\"\n\
             [recording]\ndir = \"{}\"\nretention_days = 30\n\
             [http]\nlisten = \"127.0.0.1:HTTP_PORT\"\nusers = \"{}\"\n",
            db.display(),
            common::manifest("config/ivr.toml"),
            data.path().join("recordings").display(),
            common::manifest("config/agents.toml"),
            calls.display(),
            common::manifest("config/users.toml")
        ),
    );
    // Retention: the back-dated file is deleted at start, and said.
    let deleted = h.wait_for("recording deleted", 1, Duration::from_secs(5));
    assert!(deleted[0].contains("0000abcd-7-conv.wav"), "{}", h.log());
    assert!(!old.exists());

    // Agent 2001's phone speaks a 440 Hz tone; the caller 1,000 Hz.
    let _phone = common::baresip::agent_phone(&h, "2001", PHONE + 300, "auto");
    h.wait_for("agent state", 1, Duration::from_secs(10));
    let tone = common::tone_pcap_hz(h.dir.path(), 10000, 1000.0);
    let xml = scenario(
        h.dir.path(),
        "recorded",
        "19790228645",
        "100",
        &[
            Step::Pause(500),
            Step::Key('0'),
            Step::Pause(300),
            Step::Audio(tone, 10000),
            Step::Pause(300),
        ],
    );
    std::thread::scope(|s| {
        let call = s.spawn(|| sipp(&h, xml.to_str().unwrap(), &["-m", "1"]));
        let connected = h.wait_for("caller connected to agent", 1, Duration::from_secs(10));
        let id = field(&connected[0], "caller").unwrap()[1..].to_string();
        std::thread::sleep(Duration::from_millis(2000));
        let pause = |paused: bool, token: &str| {
            common::http(
                h.http_port(),
                "POST",
                &format!("/api/calls/{id}/recording"),
                Some(token),
                Some(&format!("{{\"paused\": {paused}}}")),
            )
        };
        assert_eq!(pause(true, "demo-2002").0, 403, "another agent may not");
        let (status, body) = pause(true, "demo-2001");
        assert_eq!(status, 200, "{body}");
        std::thread::sleep(Duration::from_millis(2000));
        assert_eq!(pause(false, "demo-supervisor").0, 200);
        assert_sipp_ok(&h, &call.join().unwrap());
    });
    h.wait_for("conversation recorded", 1, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    // Queued, the caller was told first that the call may be recorded, and
    // heard it whole before talking with the agent (who answers at once).
    let played = h.lines("playing");
    assert!(
        played
            .iter()
            .any(|l| l.ends_with("prompts=recording_notice_zh")),
        "{played:#?}"
    );
    let log = h.log();
    let told = log
        .find("recording notice played")
        .expect("the notice was heard out");
    let joined = log.find("caller connected to agent").unwrap();
    assert!(told < joined, "the notice before the conversation");

    // The history names the file (once the switch has written it: the
    // log line comes first) and tells the pause.
    let answered = || {
        let history = get(&h, "/api/calls");
        history["calls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["outcome"] == "answered")
            .cloned()
            .unwrap_or_else(|| panic!("{history:#}"))
    };
    let until = std::time::Instant::now() + Duration::from_secs(5);
    let mut call = answered();
    while call["recording"].is_null() && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
        call = answered();
    }
    let file = call["recording"]
        .as_str()
        .unwrap_or_else(|| panic!("{call:#}"));
    let words: Vec<&str> = call["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert!(
        words.contains(&"recording paused by agent 2001"),
        "{words:#?}"
    );
    assert!(
        words.contains(&"recording resumed by supervisor supervisor"),
        "{words:#?}"
    );
    assert!(
        words
            .iter()
            .any(|w| w.starts_with("conversation recorded:") && w.ends_with("paused once")),
        "{words:#?}"
    );

    // Fetched through the API: whole, or a range of it.
    let path = format!("/api/recordings/{file}");
    let (status, head, wav) = get_range(&h, &path, "demo-2001", "bytes=0-");
    assert_eq!(status, 206, "{head}");
    assert!(head.contains("content-type: audio/wav"), "{head}");
    let (status, head, first) = get_range(&h, &path, "demo-supervisor", "bytes=0-43");
    assert_eq!((status, first.len()), (206, 44), "{head}");
    assert!(
        head.contains(&format!("content-range: bytes 0-43/{}", wav.len())),
        "{head}"
    );
    assert_eq!(get_range(&h, &path, "demo-2002", "bytes=0-").0, 403);
    assert_eq!(
        get_range(&h, &path, "demo-supervisor", "bytes=999999999-").0,
        416
    );
    assert_eq!(
        get_range(
            &h,
            "/api/recordings/..%2Fowners.db",
            "demo-supervisor",
            "bytes=0-"
        )
        .0,
        400
    );

    // A stereo 8 kHz 16-bit WAV: the caller's tone left, the agent's right,
    // and the pause is silence on both.
    assert_eq!(&wav[0..4], b"RIFF");
    assert_eq!(u16::from_le_bytes([wav[22], wav[23]]), 2, "stereo");
    assert_eq!(u32::from_le_bytes(wav[24..28].try_into().unwrap()), 8000);
    let data_len = u32::from_le_bytes(wav[40..44].try_into().unwrap()) as usize;
    assert_eq!(
        data_len,
        wav.len() - 44,
        "the header counts what was written"
    );
    let frames: Vec<(i16, i16)> = wav[44..]
        .chunks_exact(4)
        .map(|c| {
            (
                i16::from_le_bytes([c[0], c[1]]),
                i16::from_le_bytes([c[2], c[3]]),
            )
        })
        .collect();
    assert!(frames.len() > 8000 * 5, "{} frames", frames.len());
    let left: Vec<i16> = frames.iter().map(|f| f.0).collect();
    let right: Vec<i16> = frames.iter().map(|f| f.1).collect();
    // Half-second windows: loud ones carry the right tone on each side.
    let mut silent_run = 0usize;
    let mut longest_silence = 0usize;
    let (mut caller_heard, mut agent_heard) = (0, 0);
    for (l, r) in left.chunks(4000).zip(right.chunks(4000)) {
        let loud = |x: &[i16]| {
            x.iter().map(|s| s.unsigned_abs() as u64).sum::<u64>() / x.len() as u64 > 500
        };
        if loud(l) {
            assert!(
                common::goertzel(l, 1000.0) > 10.0 * common::goertzel(l, 440.0),
                "the caller's side carries the caller's tone"
            );
            caller_heard += 1;
        }
        if loud(r) {
            assert!(
                common::goertzel(r, 440.0) > 10.0 * common::goertzel(r, 1000.0),
                "the agent's side carries the agent's tone"
            );
            agent_heard += 1;
        }
        if !loud(l) && !loud(r) {
            silent_run += 1;
            longest_silence = longest_silence.max(silent_run);
        } else {
            silent_run = 0;
        }
    }
    assert!(
        caller_heard >= 4 && agent_heard >= 4,
        "{caller_heard} {agent_heard}"
    );
    assert!(
        (3..=5).contains(&longest_silence),
        "about 2 s of silence (the pause) in half seconds: {longest_silence}"
    );
}
