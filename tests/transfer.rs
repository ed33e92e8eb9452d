//! Transfers with real softphones: a SIPp owner (a 500 Hz tone) is
//! answered by agent 2001 on baresip (440 Hz), who hands the call to agent
//! 2003 on baresip (1,500 Hz): blind from the phone (REFER), blind from the
//! desk when 2003 refuses, or after consulting 2003 (attended). Checked on
//! the audio: what the phones hear, what the hotline recorded, and what the
//! log tells.

mod common;

use std::time::Duration;

use common::caller::{Step, scenario};
use common::{Hotline, field, sipp};

const BASE: u16 = 28000;
// Past the hotlines' port blocks (200 each from BASE, one per test).
const PHONE: u16 = 29600;

fn hotline() -> (Hotline, tempfile::TempDir) {
    common::menu_hotline(
        BASE,
        &format!(
            "\
             [http]\nlisten = \"127.0.0.1:HTTP_PORT\"\nusers = \"{}\"\n",
            common::manifest("config/users.toml")
        ),
    )
}

/// An owner who presses 0 and speaks a 500 Hz tone for `ms`.
fn owner(h: &Hotline, name: &str, ms: u64) -> std::path::PathBuf {
    let tone = common::tone_pcap_hz(h.dir.path(), ms, 500.0);
    scenario(
        h.dir.path(),
        name,
        "19790228645",
        "100",
        &[
            Step::Pause(500),
            Step::Key('0'),
            Step::Pause(300),
            Step::Audio(tone, ms),
            Step::Pause(300),
        ],
    )
}

fn get(h: &Hotline, path: &str) -> serde_json::Value {
    let (status, body) = common::http(h.http_port(), "GET", path, Some("demo-supervisor"), None);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// The timeline of the owner's call, in words.
fn timeline(h: &Hotline) -> Vec<String> {
    let history = get(h, "/api/calls");
    let call = history["calls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["number"] == "19790228645")
        .unwrap_or_else(|| panic!("{history:#}"))
        .clone();
    call["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["text"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn an_agent_transfers_the_owner_from_the_softphone_and_the_target_talks_with_them() {
    let (h, data) = hotline();
    let heard_2003 = data.path().join("heard-2003");
    let phone_2001 = common::baresip::agent_phone(&h, "2001", PHONE, "auto");
    h.wait_for("agent state", 1, Duration::from_secs(10));
    let xml = owner(&h, "transferred", 9000);
    let mut phone_2003 = None;
    std::thread::scope(|s| {
        let call = s.spawn(|| sipp(&h, xml.to_str().unwrap(), &["-m", "1"]));
        let connected = h.wait_for("caller connected to agent", 1, Duration::from_secs(10));
        assert_eq!(connected.len(), 1, "{}", h.log());
        // 2003 logs in while 2001 talks (else the ACD might have given the
        // call to 2003 in the first place).
        phone_2003 = Some(common::baresip::agent_phone_hearing(
            &h,
            "2003",
            PHONE + 100,
            "auto",
            1500,
            &heard_2003,
        ));
        common::wait_agent_state(&h, "2003", "available");
        std::thread::sleep(Duration::from_millis(1500));
        let answer = phone_2001.command("transfer", &format!("sip:2003@{}", h.target()));
        assert!(answer.contains("\"ok\":true"), "{answer}");
        let done = h.wait_for("call transferred", 1, Duration::from_secs(10));
        assert_eq!(done.len(), 1, "{}", h.log());
        assert_eq!(field(&done[0], "agent"), Some("2003"), "{}", done[0]);
        let run = call.join().unwrap();
        common::assert_sipp_ok(&h, &run);
    });
    h.wait_for("conversation recorded", 1, Duration::from_secs(10));
    // The phones close their calls (and what they heard) before they go.
    std::thread::sleep(Duration::from_millis(1000));
    drop(phone_2003);

    // 2001 was released at the transfer and wraps up; 2003 took over.
    let states_2001 = common::agent_states(&h, "2001");
    assert!(
        states_2001.ends_with(&["on_call".into(), "wrap_up".into()]),
        "{states_2001:?}"
    );
    assert!(common::agent_states(&h, "2003").contains(&"on_call".to_string()));
    let words = timeline(&h);
    for expected in [
        "agent 2001 asked to transfer the call to agent 2003",
        "agent 2003's phone rang",
        "agent 2001 transferred the call to agent 2003",
        "agent 2003 answered",
    ] {
        assert!(
            words.iter().any(|w| w == expected),
            "{expected:?} in {words:#?}"
        );
    }
    assert!(
        words
            .iter()
            .any(|w| w.starts_with("agent 2001 ended the conversation")),
        "{words:#?}"
    );

    // 2003's phone heard the owner.
    // (Its other call was the *1 login.)
    let heard = common::baresip::heard(&heard_2003);
    let call = heard.iter().max_by_key(|h| h.len()).expect("2003's calls");
    let owner_windows = common::windows_with(call, 500.0, &[440.0, 1500.0]);
    assert!(
        owner_windows >= 3,
        "2003 heard the owner in {owner_windows} half seconds: {:?}",
        heard
            .iter()
            .map(|h| (
                h.len(),
                h.chunks(4000)
                    .map(|w| (
                        common::goertzel(w, 500.0) as u64,
                        common::goertzel(w, 1500.0) as u64,
                        common::goertzel(w, 440.0) as u64
                    ))
                    .collect::<Vec<_>>()
            ))
            .collect::<Vec<_>>()
    );
    // The recording: the owner left throughout; on the right 2001 first,
    // then 2003.
    let file = std::fs::read_dir(h.dir.path().join("calls"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().ends_with("-conv.wav"))
        .expect("the conversation was recorded");
    let mut wav = hound::WavReader::open(&file).unwrap();
    assert_eq!(wav.spec().channels, 2);
    let samples: Vec<i16> = wav.samples::<i16>().map(|s| s.unwrap()).collect();
    let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
    let right: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
    assert!(common::windows_with(&left, 500.0, &[440.0, 1500.0]) >= 8);
    let agents: Vec<(usize, bool, bool)> = right
        .chunks(4000)
        .enumerate()
        .map(|(i, w)| {
            (
                i,
                common::windows_with(w, 440.0, &[500.0, 1500.0]) > 0,
                common::windows_with(w, 1500.0, &[500.0, 440.0]) > 0,
            )
        })
        .collect();
    let last_2001 = agents.iter().filter(|a| a.1).map(|a| a.0).max();
    let first_2003 = agents.iter().filter(|a| a.2).map(|a| a.0).min();
    assert!(
        matches!((last_2001, first_2003), (Some(a), Some(b)) if a < b),
        "2001 then 2003 on the right: {agents:?}\n{:#?}\n{:#?}",
        h.lines("conversation recorded"),
        h.lines("media closed")
    );
    // What 2003 said reached the owner: its leg relayed to the caller.
    let leg = field(&h.lines("call transferred")[0], "leg")
        .unwrap()
        .to_string();
    let closed = h.lines("media closed");
    let relayed: u64 = closed
        .iter()
        .find(|l| field(l, "call") == Some(leg.as_str()))
        .and_then(|l| field(l, "rtp_relayed")?.parse().ok())
        .unwrap_or_else(|| panic!("{leg}: {closed:#?}"));
    assert!(relayed > 200, "{relayed} packets from 2003 to the owner");
}

/// Owner and 2001 talking, 2003 logged in with a phone that rings until
/// told (`manual`): runs `transfer` (given the call's id) and 2003 refuses.
/// Returns the hotline, its data and 2001's phone with what it heard.
fn refused_transfer(
    port: u16,
    transfer: impl Fn(&Hotline, &common::baresip::Baresip, &str),
) -> (
    Hotline,
    tempfile::TempDir,
    common::baresip::Baresip,
    std::path::PathBuf,
) {
    let (h, data) = hotline();
    let heard_2001 = data.path().join("heard-2001");
    let phone_2001 =
        common::baresip::agent_phone_hearing(&h, "2001", port, "auto", 440, &heard_2001);
    h.wait_for("agent state", 1, Duration::from_secs(10));
    let xml = owner(&h, "refused", 9000);
    std::thread::scope(|s| {
        let call = s.spawn(|| sipp(&h, xml.to_str().unwrap(), &["-m", "1"]));
        let connected = h.wait_for("caller connected to agent", 1, Duration::from_secs(10));
        let id = field(&connected[0], "caller").unwrap()[1..].to_string();
        let phone_2003 = common::baresip::agent_phone(&h, "2003", port + 100, "manual");
        common::wait_agent_state(&h, "2003", "available");
        std::thread::sleep(Duration::from_millis(500));
        transfer(&h, &phone_2001, &id);
        // 2003 rings, and says no.
        common::wait_agent_state(&h, "2003", "reserved");
        std::thread::sleep(Duration::from_millis(500));
        phone_2003.command("hangup", "");
        let failed = h.wait_for("transfer failed", 1, Duration::from_secs(10));
        assert_eq!(failed.len(), 1, "{}", h.log());
        common::assert_sipp_ok(&h, &call.join().unwrap());
    });
    h.wait_for("call ended", 1, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(1000));
    (h, data, phone_2001, heard_2001)
}

#[test]
fn a_transfer_from_the_desk_the_target_refuses_brings_the_owner_back_to_the_first_agent() {
    let (h, _data, phone_2001, heard_2001) = refused_transfer(PHONE + 200, |h, _, id| {
        let path = format!("/api/calls/{id}/transfer");
        let body = Some(r#"{"to": "2003"}"#);
        let (status, answer) = common::http(h.http_port(), "POST", &path, Some("demo-2002"), body);
        assert_eq!(status, 403, "only the agent on the call: {answer}");
        let (status, answer) = common::http(h.http_port(), "POST", &path, Some("demo-2001"), body);
        assert_eq!(status, 202, "{answer}");
        let (status, answer) = common::http(h.http_port(), "POST", &path, Some("demo-2001"), body);
        assert_eq!(status, 409, "one at a time: {answer}");
    });
    drop(phone_2001);
    let words = timeline(&h);
    assert!(
        words
            .iter()
            .any(|w| w.starts_with("the transfer to agent 2003 failed: phone refused")),
        "{words:#?}"
    );
    // 2001 stayed on the call until the owner hung up.
    assert!(
        words
            .iter()
            .any(|w| w.starts_with("the caller ended the conversation")),
        "{words:#?}"
    );
    assert!(!words.iter().any(|w| w.contains("agent 2003 answered")));
    // And heard the owner again after the refusal (the last seconds).
    let heard = common::baresip::heard(&heard_2001);
    let call = heard.iter().max_by_key(|h| h.len()).unwrap();
    let tail = &call[call.len().saturating_sub(8000 * 3)..];
    assert!(
        common::windows_with(tail, 500.0, &[440.0]) >= 2,
        "2001 hears the owner again"
    );
}

#[test]
fn a_phone_that_hangs_up_when_its_transfer_fails_sends_the_owner_to_the_head_of_the_queue() {
    // baresip ends its call when told the transfer failed.
    let (h, _data, _phone, _) = refused_transfer(PHONE + 400, |h, phone, _| {
        let answer = phone.command("transfer", &format!("sip:2003@{}", h.target()));
        assert!(answer.contains("\"ok\":true"), "{answer}");
    });
    let words = timeline(&h);
    let failed = words
        .iter()
        .position(|w| w.starts_with("the transfer to agent 2003 failed"))
        .unwrap_or_else(|| panic!("{words:#?}"));
    assert!(
        words[failed..]
            .iter()
            .any(|w| w == "waiting in queue general, ahead of the line"),
        "{words:#?}"
    );
    assert!(
        !words.iter().any(|w| w.starts_with("menu survey")),
        "{words:#?}"
    );
}

#[test]
fn an_agent_consults_another_from_the_softphone_and_hands_the_owner_over() {
    let (h, data) = hotline();
    let heard_2003 = data.path().join("heard-2003-consulted");
    let phone_2001 = common::baresip::agent_phone(&h, "2001", PHONE + 600, "auto");
    h.wait_for("agent state", 1, Duration::from_secs(10));
    let xml = owner(&h, "consulted", 10000);
    let mut phone_2003 = None;
    std::thread::scope(|s| {
        let call = s.spawn(|| sipp(&h, xml.to_str().unwrap(), &["-m", "1"]));
        let connected = h.wait_for("caller connected to agent", 1, Duration::from_secs(10));
        let id = field(&connected[0], "caller").unwrap()[1..].to_string();
        phone_2003 = Some(common::baresip::agent_phone_hearing(
            &h,
            "2003",
            PHONE + 700,
            "auto",
            1500,
            &heard_2003,
        ));
        common::wait_agent_state(&h, "2003", "available");
        // 2001 dials 2003 from the phone: an internal call.
        let answer = phone_2001.command("dial", &format!("sip:2003@{}", h.target()));
        assert!(answer.contains("\"ok\":true"), "{answer}");
        let consult = h.wait_for("consult connected", 1, Duration::from_secs(10));
        assert_eq!(consult.len(), 1, "{}", h.log());
        std::thread::sleep(Duration::from_millis(2000));
        // Handed over from the desk (baresip 1.0 has no attended transfer).
        let (status, body) = common::http(
            h.http_port(),
            "POST",
            &format!("/api/calls/{id}/transfer"),
            Some("demo-2001"),
            Some(r#"{"to": "2003"}"#),
        );
        assert_eq!(status, 202, "{body}");
        let done = h.wait_for("attended transfer", 1, Duration::from_secs(5));
        assert_eq!(done.len(), 1, "{}", h.log());
        common::assert_sipp_ok(&h, &call.join().unwrap());
    });
    h.wait_for("call ended", 2, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(1000));
    drop(phone_2003);
    // 2003 heard 2001 (the consult), then the owner, on one call.
    let heard = common::baresip::heard(&heard_2003);
    let call = heard.iter().max_by_key(|h| h.len()).expect("2003's calls");
    let windows: Vec<(bool, bool)> = call
        .chunks(4000)
        .map(|w| {
            (
                common::windows_with(w, 440.0, &[500.0, 1500.0]) > 0,
                common::windows_with(w, 500.0, &[440.0, 1500.0]) > 0,
            )
        })
        .collect();
    let last_2001 = windows.iter().rposition(|w| w.0);
    let first_owner = windows.iter().position(|w| w.1);
    assert!(
        matches!((last_2001, first_owner), (Some(a), Some(b)) if a < b)
            && windows.iter().filter(|w| w.1).count() >= 4,
        "2001 then the owner: {windows:?}"
    );
    let words = timeline(&h);
    assert!(
        words
            .iter()
            .any(|w| w == "agent 2001 transferred the call to agent 2003"),
        "{words:#?}"
    );
    let body = common::call_history(&h);
    assert!(
        body.contains("agent 2001 called agent 2003 to consult"),
        "{body}"
    );
}

#[test]
fn linphone_transfers_the_owner_the_same_way() {
    let (h, data) = hotline();
    let heard_2003 = data.path().join("heard-2003-linphone");
    let mut linphone =
        common::linphone::Linphone::agent(h.dir.path(), &h.target(), "2001", PHONE + 800);
    common::wait_agent_state(&h, "2001", "available");
    // Linphone takes one call at a time: its *1 call first ends.
    h.wait_for("call ended", 1, Duration::from_secs(10));
    let xml = owner(&h, "linphone", 9000);
    let mut phone_2003 = None;
    std::thread::scope(|s| {
        let call = s.spawn(|| sipp(&h, xml.to_str().unwrap(), &["-m", "1"]));
        let connected = h.wait_for("caller connected to agent", 1, Duration::from_secs(10));
        assert_eq!(connected.len(), 1, "{}", h.log());
        phone_2003 = Some(common::baresip::agent_phone_hearing(
            &h,
            "2003",
            PHONE + 900,
            "auto",
            1500,
            &heard_2003,
        ));
        common::wait_agent_state(&h, "2003", "available");
        std::thread::sleep(Duration::from_millis(1000));
        linphone.type_line(&format!("transfer sip:2003@{}", h.target()));
        let done = h.wait_for("call transferred", 1, Duration::from_secs(10));
        assert_eq!(done.len(), 1, "{}", h.log());
        common::assert_sipp_ok(&h, &call.join().unwrap());
    });
    h.wait_for("call ended", 1, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(1000));
    drop(phone_2003);
    let states = common::agent_states(&h, "2001");
    assert!(
        states.ends_with(&["on_call".into(), "wrap_up".into()]),
        "{states:?}"
    );
    let heard = common::baresip::heard(&heard_2003);
    let call = heard.iter().max_by_key(|h| h.len()).expect("2003's calls");
    assert!(
        common::windows_with(call, 500.0, &[440.0, 1500.0]) >= 3,
        "2003 heard the owner"
    );
    let words = timeline(&h);
    assert!(
        words
            .iter()
            .any(|w| w == "agent 2001 transferred the call to agent 2003"),
        "{words:#?}"
    );
}

#[test]
fn an_agent_transfers_the_owner_to_an_allowed_outside_number_through_the_gateway() {
    let (h, _data) = common::menu_hotline(
        BASE,
        &format!(
            "[transfer]\nallowed_numbers = [\"+86138XXXXXXXX\"]\ngateway = \"127.0.0.1:{}\"\n\
             [http]\nlisten = \"127.0.0.1:HTTP_PORT\"\nusers = \"{}\"\n",
            PHONE + 1100,
            common::manifest("config/users.toml")
        ),
    );
    // The gateway (and the number behind it): SIPp on a port of its own.
    let port = PHONE + 1100;
    let mut party = common::SippUas::start_on(&h, "outside_party.xml", port, &["-m", "1"]);
    let phone_2001 = common::baresip::agent_phone(&h, "2001", PHONE + 1000, "auto");
    h.wait_for("agent state", 1, Duration::from_secs(10));
    let xml = owner(&h, "outside", 6000);
    std::thread::scope(|s| {
        let call = s.spawn(|| sipp(&h, xml.to_str().unwrap(), &["-m", "1"]));
        let connected = h.wait_for("caller connected to agent", 1, Duration::from_secs(10));
        let id = field(&connected[0], "caller").unwrap()[1..].to_string();
        std::thread::sleep(Duration::from_millis(1000));
        // Abroad: refused, whoever asks.
        let (status, body) = common::http(
            h.http_port(),
            "POST",
            &format!("/api/calls/{id}/transfer"),
            Some("demo-2001"),
            Some(r#"{"to": "+12125551234"}"#),
        );
        assert_eq!(status, 403, "{body}");
        // The duty engineer's mobile, from the phone.
        let answer = phone_2001.command("transfer", &format!("sip:13800138000@{}", h.target()));
        assert!(answer.contains("\"ok\":true"), "{answer}");
        let done = h.wait_for("call transferred", 1, Duration::from_secs(10));
        assert_eq!(done.len(), 1, "{}", h.log());
        common::assert_sipp_ok(&h, &call.join().unwrap());
    });
    assert_eq!(
        party.wait(Duration::from_secs(10)),
        Some(0),
        "the outside party's SIPp"
    );
    let words = timeline(&h);
    assert!(
        words
            .iter()
            .any(|w| w == "agent 2001 transferred the call to number +8613800138000"),
        "{words:#?}"
    );
    let states = common::agent_states(&h, "2001");
    assert!(
        states.ends_with(&["on_call".into(), "wrap_up".into()]),
        "{states:?}"
    );
}

#[test]
fn an_agent_consults_the_duty_engineer_outside_and_hands_the_owner_over_with_star_4() {
    let (h, _data) = common::menu_hotline(
        BASE,
        &format!(
            "[transfer]\nallowed_numbers = [\"+86138XXXXXXXX\"]\ngateway = \"127.0.0.1:{}\"\n\
             [http]\nlisten = \"127.0.0.1:HTTP_PORT\"\nusers = \"{}\"\n",
            PHONE + 1300,
            common::manifest("config/users.toml")
        ),
    );
    let mut party = common::SippUas::start_on(&h, "outside_party.xml", PHONE + 1300, &["-m", "1"]);
    let phone_2001 = common::baresip::agent_phone(&h, "2001", PHONE + 1200, "auto");
    h.wait_for("agent state", 1, Duration::from_secs(10));
    let xml = owner(&h, "outside-consult", 9000);
    std::thread::scope(|s| {
        let call = s.spawn(|| sipp(&h, xml.to_str().unwrap(), &["-m", "1"]));
        h.wait_for("caller connected to agent", 1, Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(500));
        // 2001 dials the engineer's mobile from the phone: a consult
        // through the gateway, answered when the engineer answers.
        let answer = phone_2001.command("dial", &format!("sip:13800138000@{}", h.target()));
        assert!(answer.contains("\"ok\":true"), "{answer}");
        let consult = h.wait_for("consult connected", 1, Duration::from_secs(10));
        assert_eq!(consult.len(), 1, "{}", h.log());
        std::thread::sleep(Duration::from_millis(1000));
        // *4: the owner is handed to the engineer.
        phone_2001.command("sndcode", "*");
        std::thread::sleep(Duration::from_millis(300));
        phone_2001.command("sndcode", "4");
        let done = h.wait_for("attended transfer", 1, Duration::from_secs(10));
        assert_eq!(done.len(), 1, "{}", h.log());
        common::assert_sipp_ok(&h, &call.join().unwrap());
    });
    assert_eq!(
        party.wait(Duration::from_secs(10)),
        Some(0),
        "the engineer's SIPp: answered once, hung up by the hotline after the owner left"
    );
    // The owner's call tells the hand-over; the consult is a call of its own.
    let words = timeline(&h);
    assert!(
        words
            .iter()
            .any(|w| w == "agent 2001 transferred the call to number +8613800138000"),
        "{words:#?}"
    );
    let calls = get(&h, "/api/calls").to_string();
    assert!(
        calls.contains("agent 2001 called number +8613800138000 to consult"),
        "{calls}"
    );
    let states = common::agent_states(&h, "2001");
    assert!(
        states.ends_with(&["on_call".into(), "wrap_up".into()]),
        "{states:?}"
    );
}
