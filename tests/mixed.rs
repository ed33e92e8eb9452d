//! Mixed conversations with real phones and tones: an owner on baresip
//! (500 Hz) talks with agent 2001 on baresip (1,000 Hz); a third phone
//! (1,500 Hz) joins: a supervisor who whispers then listens, or agent 2003
//! in a three-way call. Each phone keeps what it heard (baresip's sndfile),
//! checked with Goertzel filters.

mod common;

use std::time::{Duration, Instant};

use common::{Hotline, field};

const BASE: u16 = 29500;
// Past the hotlines' port blocks (200 each from BASE, one per test).
const PHONE: u16 = 30200;

/// The demo menu plus a number (300) that goes straight to the agents'
/// queue: the owner's softphone need not press keys.
fn hotline() -> (Hotline, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let menu = std::fs::read_to_string(common::manifest("config/ivr.toml")).unwrap()
        + "\n[[site]]\nid = \"direct\"\nname = \"Direct line\"\nnumbers = [\"300\"]\n\
           greeting = \"greeting_garden\"\nstart = \"agent\"\nlanguage = \"zh\"\n";
    let menu_path = data.path().join("ivr.toml");
    std::fs::write(&menu_path, menu).unwrap();
    let h = Hotline::start(
        BASE,
        &format!(
            "[ivr]\nmenu = \"{}\"\nrecordings = \"{}\"\n[acd]\nagents = \"{}\"\n\
             [http]\nlisten = \"127.0.0.1:HTTP_PORT\"\nusers = \"{}\"\n",
            menu_path.display(),
            data.path().join("recordings").display(),
            common::manifest("config/agents.toml"),
            common::manifest("config/users.toml")
        ),
    );
    (h, data)
}

/// Whether a window holds `hz` at a tenth of its loudest tone or more.
fn holds(w: &[i16], hz: f64) -> bool {
    let e = |f: f64| common::goertzel(w, f);
    let loudest = [500.0, 1000.0, 1500.0]
        .map(e)
        .into_iter()
        .fold(0.0, f64::max);
    loudest > 1e5 && e(hz) > loudest / 10.0
}

/// Half-second windows of `heard` that hold tones `a` and `b` but not the
/// phone's `own`.
fn both(heard: &[i16], a: f64, b: f64, own: f64) -> usize {
    heard
        .chunks(4000)
        .filter(|w| holds(w, a) && holds(w, b) && !holds(w, own))
        .count()
}

fn monitor(h: &Hotline, call: &str, token: &str, mode: &str) -> (u16, String) {
    common::http(
        h.http_port(),
        "POST",
        &format!("/api/calls/{call}/monitor"),
        Some(token),
        Some(&format!("{{\"mode\": \"{mode}\"}}")),
    )
}

/// The longest of the calls a phone heard (the others: its *1 login).
fn call_heard(dir: &std::path::Path) -> Vec<i16> {
    common::baresip::heard(dir)
        .into_iter()
        .max_by_key(Vec::len)
        .expect("the phone heard a call")
}

/// The owner's softphone (500 Hz, not registered) calls the direct line.
fn owner_calls(h: &Hotline, heard: &std::path::Path, port: u16) -> common::baresip::Baresip {
    std::fs::create_dir_all(heard).unwrap();
    let owner = common::baresip::Baresip::start_tone(
        h.dir.path(),
        "<sip:owner@127.0.0.1>;regint=0;audio_codecs=PCMU/8000",
        port,
        (port + 10, port + 60),
        &[],
        &format!("module sndfile.so\nsnd_path {}\n", heard.display()),
        500,
    );
    owner.command("dial", &format!("sip:300@{}", h.target()));
    owner
}

#[test]
fn a_supervisor_whispers_to_the_agent_then_listens_and_the_owner_never_hears_them() {
    let (h, data) = hotline();
    let dir = |who: &str| data.path().join(format!("heard-{who}"));
    let agent = common::baresip::agent_phone_hearing(&h, "2001", PHONE, "auto", 1000, &dir("2001"));
    let supervisor =
        common::baresip::agent_phone_hearing(&h, "2009", PHONE + 100, "auto", 1500, &dir("2009"));
    let end = Instant::now() + Duration::from_secs(10);
    while h.lines("agent registered").len() < 2 || h.lines("agent state").is_empty() {
        assert!(Instant::now() < end, "{}", h.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    // The owner's softphone: not registered, dials the direct line.
    std::fs::create_dir_all(dir("owner")).unwrap();
    let owner = common::baresip::Baresip::start_tone(
        h.dir.path(),
        "<sip:owner@127.0.0.1>;regint=0;audio_codecs=PCMU/8000",
        PHONE + 200,
        (PHONE + 210, PHONE + 260),
        &[],
        &format!("module sndfile.so\nsnd_path {}\n", dir("owner").display()),
        500,
    );
    owner.command("dial", &format!("sip:300@{}", h.target()));
    let connected = h.wait_for("caller connected to agent", 1, Duration::from_secs(15));
    assert_eq!(connected.len(), 1, "{}", h.log());
    let call = field(&connected[0], "caller").unwrap()[1..].to_string();
    std::thread::sleep(Duration::from_millis(1500));

    // Only a supervisor, with a known mode, on a call with an agent.
    assert_eq!(monitor(&h, &call, "demo-2001", "listen").0, 403);
    assert_eq!(monitor(&h, &call, "demo-supervisor", "shout").0, 400);
    assert_eq!(monitor(&h, "999999", "demo-supervisor", "listen").0, 404);
    let (status, body) = monitor(&h, &call, "demo-supervisor", "whisper");
    assert_eq!(status, 202, "{body}");
    let joined = h.wait_for("supervisor joined", 1, Duration::from_secs(10));
    assert_eq!(joined.len(), 1, "{}", h.log());
    std::thread::sleep(Duration::from_millis(3000));
    let (status, body) = monitor(&h, &call, "demo-supervisor", "listen");
    assert_eq!(status, 202, "{body}");
    std::thread::sleep(Duration::from_millis(3000));
    owner.command("hangup", "");
    h.wait_for("call ended", 1, Duration::from_secs(10));
    // The phones close their calls (and files) before they go.
    std::thread::sleep(Duration::from_millis(1500));
    drop((owner, agent, supervisor));

    let owner_heard = call_heard(&dir("owner"));
    let agent_heard = call_heard(&dir("2001"));
    let supervisor_heard = call_heard(&dir("2009"));
    // The owner: the agent throughout, the supervisor never.
    assert!(common::windows_with(&owner_heard, 1000.0, &[500.0]) >= 8);
    let owner_heard_supervisor = owner_heard
        .chunks(4000)
        .filter(|w| holds(w, 1500.0))
        .count();
    assert_eq!(owner_heard_supervisor, 0, "the owner heard the supervisor");
    // The agent: the owner throughout; the supervisor while whispered to
    // (about 3 s), not while they listened (the last seconds).
    assert!(common::windows_with(&agent_heard, 500.0, &[1000.0]) >= 4);
    let whispered = agent_heard
        .chunks(4000)
        .filter(|w| holds(w, 1500.0))
        .count();
    assert!(
        (3..=8).contains(&whispered),
        "whispered to in {whispered} half seconds: {}",
        h.lines("mixed").join("\n")
    );
    let tail = &agent_heard[agent_heard.len().saturating_sub(8000 * 2)..];
    assert_eq!(
        tail.chunks(4000).filter(|w| holds(w, 1500.0)).count(),
        0,
        "a listening supervisor is heard by no one"
    );
    // The supervisor: both, mixed, and never themselves.
    let both = supervisor_heard
        .chunks(4000)
        .filter(|w| holds(w, 500.0) && holds(w, 1000.0) && !holds(w, 1500.0))
        .count();
    assert!(
        both >= 8,
        "the supervisor heard both in {both} half seconds"
    );

    // The record: who, how, when.
    let body = common::call_history(&h);
    let history: serde_json::Value = serde_json::from_str(&body).unwrap();
    let words: Vec<String> = history["calls"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["timeline"].as_array().unwrap().clone())
        .map(|e| e["text"].as_str().unwrap().to_string())
        .collect();
    for expected in [
        "supervisor supervisor whispered to the agent",
        "supervisor supervisor listened in",
        "supervisor supervisor left the call",
    ] {
        assert!(
            words.iter().any(|w| w == expected),
            "{expected:?} in {words:#?}"
        );
    }
}

#[test]
fn in_a_three_way_call_each_hears_the_other_two_and_the_two_left_talk_on() {
    let (h, data) = hotline();
    let dir = |who: &str| data.path().join(format!("heard-{who}"));
    let first =
        common::baresip::agent_phone_hearing(&h, "2001", PHONE + 300, "auto", 1000, &dir("2001"));
    h.wait_for("agent state", 1, Duration::from_secs(10));
    let owner = owner_calls(&h, &dir("owner"), PHONE + 400);
    let connected = h.wait_for("caller connected to agent", 1, Duration::from_secs(15));
    assert_eq!(connected.len(), 1, "{}", h.log());
    let call = field(&connected[0], "caller").unwrap()[1..].to_string();
    // 2003 logs in while 2001 talks, then is asked to join.
    let third =
        common::baresip::agent_phone_hearing(&h, "2003", PHONE + 500, "auto", 1500, &dir("2003"));
    common::wait_agent_state(&h, "2003", "available");
    let add = |token: &str| {
        common::http(
            h.http_port(),
            "POST",
            &format!("/api/calls/{call}/conference"),
            Some(token),
            Some(r#"{"add": "2003"}"#),
        )
    };
    assert_eq!(add("demo-2002").0, 403, "only the agent on the call");
    let (status, body) = add("demo-2001");
    assert_eq!(status, 202, "{body}");
    let joined = h.wait_for("conference joined", 1, Duration::from_secs(10));
    assert_eq!(joined.len(), 1, "{}", h.log());
    std::thread::sleep(Duration::from_millis(3000));
    // 2003 leaves; the owner and 2001 talk on.
    third.command("hangup", "");
    h.wait_for("conference left", 1, Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(2500));
    owner.command("hangup", "");
    h.wait_for("call ended", 1, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(1500));
    drop((owner, first, third));

    let owner_heard = call_heard(&dir("owner"));
    let first_heard = call_heard(&dir("2001"));
    let third_heard = call_heard(&dir("2003"));
    assert!(
        both(&owner_heard, 1000.0, 1500.0, 500.0) >= 4,
        "the owner heard both agents"
    );
    assert!(
        both(&first_heard, 500.0, 1500.0, 1000.0) >= 4,
        "2001 heard the owner and 2003"
    );
    assert!(
        both(&third_heard, 500.0, 1000.0, 1500.0) >= 4,
        "2003 heard the owner and 2001"
    );
    // After 2003 left: the owner hears 2001 alone.
    let tail = &owner_heard[owner_heard.len().saturating_sub(8000 * 2)..];
    assert!(common::windows_with(tail, 1000.0, &[500.0, 1500.0]) >= 2);
    let body = common::call_history(&h);
    for expected in [
        "agent 2001 asked agent 2003 to join the call",
        "agent 2003 joined the call",
        "agent 2003 left the three-way call",
    ] {
        assert!(body.contains(expected), "{expected:?} in {body}");
    }
}

#[test]
fn an_agent_consulting_a_colleague_presses_star_3_the_three_talk_and_the_two_after_the_owner_leaves()
 {
    let (h, data) = hotline();
    let dir = |who: &str| data.path().join(format!("heard-{who}"));
    let first =
        common::baresip::agent_phone_hearing(&h, "2001", PHONE + 600, "auto", 1000, &dir("2001"));
    h.wait_for("agent state", 1, Duration::from_secs(10));
    let owner = owner_calls(&h, &dir("owner"), PHONE + 700);
    let connected = h.wait_for("caller connected to agent", 1, Duration::from_secs(15));
    assert_eq!(connected.len(), 1, "{}", h.log());
    let third =
        common::baresip::agent_phone_hearing(&h, "2003", PHONE + 800, "auto", 1500, &dir("2003"));
    common::wait_agent_state(&h, "2003", "available");
    // 2001 dials 2003 from the phone (a consult), then presses *3.
    let answer = first.command("dial", &format!("sip:2003@{}", h.target()));
    assert!(answer.contains("\"ok\":true"), "{answer}");
    h.wait_for("consult connected", 1, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(1000));
    let sent = first.command("sndcode", "*");
    assert!(sent.contains("\"ok\":true"), "{sent}");
    std::thread::sleep(Duration::from_millis(300));
    first.command("sndcode", "3");
    let joined = h.wait_for(
        "consulted agent joined the call",
        1,
        Duration::from_secs(10),
    );
    assert_eq!(joined.len(), 1, "{}", h.log());
    // The consult call is hung up; 2001's phone takes the owner's call
    // back (off hold, if it held it).
    std::thread::sleep(Duration::from_millis(1000));
    first.command("resume", "");
    std::thread::sleep(Duration::from_millis(4000));
    // The owner hangs up: the two agents talk on, then 2001 hangs up.
    owner.command("hangup", "");
    h.wait_for("agents talk on", 1, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(2500));
    first.command("hangup", "");
    // Each one's conversation ends with their own leg: both wrap up.
    common::wait_agent_state(&h, "2001", "wrap_up");
    common::wait_agent_state(&h, "2003", "wrap_up");
    std::thread::sleep(Duration::from_millis(500));
    drop((owner, first, third));

    let owner_heard = call_heard(&dir("owner"));
    let third_heard = call_heard(&dir("2003"));
    assert!(
        both(&owner_heard, 1000.0, 1500.0, 500.0) >= 4,
        "the owner heard both agents"
    );
    assert!(
        both(&third_heard, 500.0, 1000.0, 1500.0) >= 4,
        "2003 heard the owner and 2001"
    );
    // After the owner left: 2003 hears 2001 alone.
    let tail = &third_heard[third_heard.len().saturating_sub(8000 * 2)..];
    assert!(common::windows_with(tail, 1000.0, &[500.0, 1500.0]) >= 2);
    let body = common::call_history(&h);
    for expected in [
        "agent 2001 called agent 2003 to consult",
        "agent 2003 joined the call",
    ] {
        assert!(body.contains(expected), "{expected:?} in {body}");
    }
}
