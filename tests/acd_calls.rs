//! A caller reaches an agent end to end: SIPp calls the hotline's menu and
//! presses 0, the ACD offers the call to agent 2001, whose phone (baresip,
//! logged in with *1) answers by itself, and RTP flows both ways through the
//! hotline's relay until the caller hangs up.

mod common;

use std::time::Duration;

use common::baresip::Baresip;
use common::caller::{Step, scenario};
use common::{Hotline, assert_sipp_ok, field, sipp, tone_pcap};

const BASE: u16 = 20000;

/// A hotline with the default menu, the sample owners and the demo agents,
/// and agent 2001's phone (baresip on `phone_port`, `answermode` auto or
/// manual) logged in with *1.
fn hotline_with_agent(phone_port: u16, answermode: &str) -> (Hotline, tempfile::TempDir, Baresip) {
    let (h, data) = common::menu_hotline(BASE, "");
    let phone = common::baresip::agent_phone(&h, "2001", phone_port, answermode);
    let ready = h.wait_for("agent state", 1, Duration::from_secs(10));
    assert_eq!(field(&ready[0], "state"), Some("available"), "{}", h.log());
    (h, data, phone)
}

#[test]
fn a_caller_pressing_0_is_bridged_to_a_logged_in_agent_and_audio_flows_both_ways() {
    // The agent's phone, on ports no hotline of this binary uses.
    let (h, _data, _phone) = hotline_with_agent(BASE + 800, "auto");
    // The caller: O-0001 (known), presses 0 during the greeting, talks, hangs up.
    let pcap = tone_pcap(h.dir.path(), 2000);
    let xml = scenario(
        h.dir.path(),
        "to_agent",
        "13800138000",
        "100",
        &[
            Step::Pause(500),
            Step::Key('0'),
            Step::Pause(3000),
            Step::Audio(pcap, 2500),
            // A key for the agent (SIP INFO from this caller).
            Step::Key('4'),
            Step::Pause(500),
        ],
    );
    let run = sipp(&h, xml.to_str().unwrap(), &["-m", "1"]);
    assert_sipp_ok(&h, &run);
    let connected = h.wait_for("caller connected to agent", 1, Duration::from_secs(5));
    assert_eq!(connected.len(), 1, "{}", h.log());
    assert_eq!(field(&connected[0], "agent"), Some("2001"));
    // Both legs closed; each relayed what came in to the other side.
    let legs = [
        field(&connected[0], "caller").unwrap().to_string(),
        field(&connected[0], "leg").unwrap().to_string(),
    ];
    let end = std::time::Instant::now() + Duration::from_secs(10);
    let closed = loop {
        let closed: Vec<String> = h
            .lines("media closed")
            .into_iter()
            .filter(|l| field(l, "call").is_some_and(|c| legs.iter().any(|x| x == c)))
            .collect();
        if closed.len() == 2 || std::time::Instant::now() > end {
            break closed;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(closed.len(), 2, "{}", h.log());
    let relayed: Vec<u64> = closed
        .iter()
        .map(|l| field(l, "rtp_relayed").unwrap().parse().unwrap())
        .collect();
    println!("relayed caller->agent, agent->caller: {relayed:?}");
    assert!(
        relayed.iter().all(|n| *n > 25),
        "RTP both ways through the relay: {relayed:?}\n{}",
        h.log()
    );
    // The key reached the agent's phone.
    let phone_log =
        std::fs::read_to_string(h.dir.path().join(format!("baresip-{}.log", BASE + 800)))
            .unwrap_or_default();
    assert!(
        phone_log.contains("received DTMF: '4'"),
        "the caller's key at the agent's phone:\n{phone_log}\n{}",
        h.log()
    );
    // The supervisor's figures: one VIP call answered within the threshold,
    // one offer to 2001, a talk in progress (wrap-up not over: no handle
    // time yet); Prometheus' checker accepts the output.
    let text = common::http_get(h.sip_port + 199, "/metrics");
    for (series, value) in [
        (
            "hotline_queue_calls_total{outcome=\"answered\",queue=\"vip\"}",
            1.0,
        ),
        (
            "hotline_queue_answered_within_threshold_total{queue=\"vip\"}",
            1.0,
        ),
        (
            "hotline_service_level_ratio{definition=\"answered\",queue=\"vip\"}",
            1.0,
        ),
        (
            "hotline_service_level_ratio{definition=\"offered\",queue=\"vip\"}",
            1.0,
        ),
        ("hotline_abandon_ratio{queue=\"vip\"}", 0.0),
        ("hotline_agent_offers_total{agent=\"2001\"}", 1.0),
        ("hotline_longest_wait_seconds{queue=\"vip\"}", 0.0),
        ("hotline_service_level_threshold_seconds", 20.0),
    ] {
        assert_eq!(
            common::sample(&text, series),
            Some(value),
            "{series}\n{text}"
        );
    }
    let asa = common::sample(&text, "hotline_asa_seconds{queue=\"vip\"}").unwrap();
    assert!(asa < 5.0, "answered at once: {asa}");
    // The caller was offered to 2001 at once, so told no wait: the wait
    // they had (the agent's ringing) is an underestimate of under 5 s.
    for (series, value) in [
        (
            "hotline_queue_wait_predicted_seconds_count{queue=\"vip\"}",
            1.0,
        ),
        (
            "hotline_queue_wait_predicted_seconds_sum{queue=\"vip\"}",
            0.0,
        ),
        (
            "hotline_queue_wait_prediction_error_seconds_count{direction=\"under\",queue=\"vip\"}",
            1.0,
        ),
        (
            "hotline_queue_wait_prediction_error_seconds_bucket{direction=\"under\",queue=\"vip\",le=\"5\"}",
            1.0,
        ),
    ] {
        assert_eq!(
            common::sample(&text, series),
            Some(value),
            "{series}\n{text}"
        );
    }
    common::assert_promtool_accepts(&text);
    // The agent is wrapping up, then ready again (30 s wrap-up in the demo file).
    let states = h.wait_for("agent state", 4, Duration::from_secs(5));
    let seen: Vec<&str> = states.iter().filter_map(|l| field(l, "state")).collect();
    assert!(
        seen.starts_with(&["available", "reserved", "on_call", "wrap_up"]),
        "{seen:?}"
    );
}

#[test]
fn a_caller_hanging_up_while_the_agent_rings_is_withdrawn_with_cancel() {
    // This phone rings but nobody answers it.
    let (h, _data, _phone) = hotline_with_agent(BASE + 900, "manual");
    let xml = scenario(
        h.dir.path(),
        "gives_up",
        "13800138000",
        "100",
        &[Step::Pause(500), Step::Key('0'), Step::Pause(1500)],
    );
    let run = sipp(&h, xml.to_str().unwrap(), &["-m", "1"]);
    assert_sipp_ok(&h, &run);
    assert_eq!(
        h.wait_for("ringing agent", 1, Duration::from_secs(2)).len(),
        1
    );
    // The caller's BYE cancels the ringing leg: the phone answers 487.
    let refused = h.wait_for("outbound call not answered", 1, Duration::from_secs(5));
    assert_eq!(field(&refused[0], "code"), Some("487"), "{}", h.log());
    // The agent is free again, with no miss counted against them.
    let states = h.wait_for("agent state", 3, Duration::from_secs(5));
    let seen: Vec<&str> = states.iter().filter_map(|l| field(l, "state")).collect();
    assert_eq!(seen, ["available", "reserved", "available"], "{}", h.log());
    assert!(h.lines("caller connected to agent").is_empty());
}

#[test]
fn an_agent_holding_the_call_gives_the_caller_the_hold_prompt_until_resuming() {
    let (h, _data, phone) = hotline_with_agent(BASE + 600, "auto");
    let pcap = tone_pcap(h.dir.path(), 8000);
    let xml = scenario(
        h.dir.path(),
        "held",
        "13800138000",
        "100",
        &[Step::Pause(500), Step::Key('0'), Step::Audio(pcap, 9000)],
    );
    std::thread::scope(|s| {
        let call = s.spawn(|| sipp(&h, xml.to_str().unwrap(), &["-m", "1"]));
        h.wait_for("caller connected to agent", 1, Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(1000));
        // The agent presses hold on the phone (a re-INVITE, sendonly) ...
        let answer = phone.command("hold", "");
        assert!(answer.contains("\"ok\":true"), "{answer}");
        let held = h.wait_for("call on hold", 1, Duration::from_secs(5));
        assert_eq!(field(&held[0], "hold"), Some("true"), "{}", h.log());
        std::thread::sleep(Duration::from_millis(3000));
        // ... and takes the caller back.
        phone.command("resume", "");
        let resumed = h.wait_for("call on hold", 2, Duration::from_secs(5));
        assert_eq!(field(&resumed[1], "hold"), Some("false"), "{}", h.log());
        assert_sipp_ok(&h, &call.join().unwrap());
    });
    // While held (3 s) the caller heard the hotline's hold prompt: RTP the
    // hotline sent itself (before the bridge: under a second of menu).
    let connected = &h.lines("caller connected to agent")[0];
    let counts = |leg: &str, what: &str| -> u64 {
        let end = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(l) = h
                .lines("media closed")
                .iter()
                .find(|l| field(l, "call") == field(connected, leg))
            {
                return field(l, what).unwrap().parse().unwrap();
            }
            assert!(std::time::Instant::now() < end, "{}", h.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let (sent_to_caller, from_agent) = (counts("caller", "rtp_sent"), counts("leg", "rtp_relayed"));
    println!("sent to the caller {sent_to_caller}, relayed from the agent {from_agent}");
    assert!(
        sent_to_caller >= 120 && from_agent > 100,
        "the hold prompt while held, the agent's voice before and after: {}",
        h.log()
    );
}
