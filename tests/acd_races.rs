//! The ACD's races end to end, with real phones: baresip as agents 2001
//! and 2003 (driven through its control socket, as an agent at the keyboard
//! would), SIPp as owner O-0001 pressing 0 in the default menu.
//!
//! Both agents take general calls at the same level, so the one logged in
//! first (idle longest) is offered the call first: 2001, whose phone rings
//! without answering by itself; 2003's phone answers at once.

mod common;

use std::time::Duration;

use common::baresip::{Baresip, agent_phone};
use common::caller::{Step, scenario};
use common::{Hotline, assert_sipp_ok, field, sipp};

const BASE: u16 = 21000;
/// Phones: two per test, 100 ports each, above the hotlines' blocks.
const PHONES: u16 = 23000;

/// Agents 2001 (manual answer) and then 2003 (auto answer) logged in.
fn two_agents(test: u16, acd: &str) -> (Hotline, tempfile::TempDir, Baresip, Baresip) {
    let (h, data) = common::menu_hotline(BASE, acd);
    let port = PHONES + test * 200;
    let first = agent_phone(&h, "2001", port, "manual");
    wait_state(&h, "2001", "available");
    let second = agent_phone(&h, "2003", port + 100, "auto");
    wait_state(&h, "2003", "available");
    (h, data, first, second)
}

/// Waits for `agent` to enter `state`; returns that log line.
fn wait_state(h: &Hotline, agent: &str, state: &str) -> String {
    let end = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(line) = h
            .lines("agent state")
            .into_iter()
            .find(|l| field(l, "agent") == Some(agent) && field(l, "state") == Some(state))
        {
            return line;
        }
        assert!(
            std::time::Instant::now() < end,
            "agent {agent} never {state}\n{}",
            h.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `agent`'s phone rings.
fn wait_ringing(h: &Hotline, agent: &str) {
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while !h
        .lines("ringing agent")
        .iter()
        .any(|l| field(l, "agent") == Some(agent))
    {
        assert!(
            std::time::Instant::now() < end,
            "{agent} never rang\n{}",
            h.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// O-0001 calls, presses 0 and stays `seconds` on the line.
fn caller(h: &Hotline, name: &str, seconds: u64) -> std::path::PathBuf {
    scenario(
        h.dir.path(),
        name,
        "13800138000",
        "100",
        &[
            Step::Pause(500),
            Step::Key('0'),
            Step::Pause(seconds * 1000),
        ],
    )
}

fn connected_agents(h: &Hotline) -> Vec<String> {
    h.lines("caller connected to agent")
        .iter()
        .filter_map(|l| field(l, "agent").map(str::to_string))
        .collect()
}

#[test]
fn an_agent_who_rejects_the_call_is_skipped_and_the_next_agent_answers() {
    let (h, _data, first, _second) = two_agents(0, "");
    let xml = caller(&h, "rejected", 6);
    std::thread::scope(|s| {
        let call = s.spawn(|| sipp(&h, xml.to_str().unwrap(), &["-m", "1"]));
        wait_ringing(&h, "2001");
        // The agent presses the red button on the ringing call.
        let answer = first.command("hangup", "");
        assert!(answer.contains("\"ok\":true"), "{answer}");
        assert_sipp_ok(&h, &call.join().unwrap());
    });
    let refused = h.wait_for("outbound call not answered", 1, Duration::from_secs(2));
    let code: u16 = field(&refused[0], "code").unwrap().parse().unwrap();
    assert!(
        (400..700).contains(&code) && code != 408 && code != 487,
        "a refusal, not a timeout or a cancel: {code}"
    );
    assert_eq!(connected_agents(&h), ["2003"], "{}", h.log());
}

#[test]
fn an_agent_who_does_not_answer_in_time_is_skipped_and_paused_for_no_answer() {
    // Two seconds of ringing; one miss pauses.
    let (h, _data, _first, _second) = two_agents(1, "offer_seconds = 2\nmax_misses = 1\n");
    let xml = caller(&h, "unanswered", 6);
    let run = sipp(&h, xml.to_str().unwrap(), &["-m", "1"]);
    assert_sipp_ok(&h, &run);
    // 2001 rang for the offer time, was cancelled, and is paused.
    let cancelled = h.wait_for("outbound call not answered", 1, Duration::from_secs(2));
    assert_eq!(field(&cancelled[0], "code"), Some("487"), "{}", h.log());
    let paused = wait_state(&h, "2001", "paused");
    assert_eq!(field(&paused, "reason"), Some("no-answer"));
    assert_eq!(connected_agents(&h), ["2003"], "{}", h.log());
}

#[test]
fn an_agent_logging_out_while_the_phone_rings_is_withdrawn_and_the_call_goes_on() {
    let (h, _data, first, _second) = two_agents(2, "");
    let xml = caller(&h, "logout", 6);
    std::thread::scope(|s| {
        let call = s.spawn(|| sipp(&h, xml.to_str().unwrap(), &["-m", "1"]));
        wait_ringing(&h, "2001");
        // The agent dials *2 while the call rings.
        let answer = first.command("dial", &format!("sip:*2@{}", h.target()));
        assert!(answer.contains("\"ok\":true"), "{answer}");
        assert_sipp_ok(&h, &call.join().unwrap());
    });
    wait_state(&h, "2001", "logged_out");
    let cancelled = h.wait_for("outbound call not answered", 1, Duration::from_secs(2));
    assert_eq!(field(&cancelled[0], "code"), Some("487"), "{}", h.log());
    assert_eq!(connected_agents(&h), ["2003"], "{}", h.log());
}

#[test]
fn a_caller_with_an_open_ticket_is_offered_first_to_the_agent_handling_it() {
    let (h, _data) = common::menu_hotline(BASE, "");
    let port = PHONES + 3 * 200;
    // O-0001 has an open work order.
    common::open_ticket(&h, "water", "O-0001", "leak under the sink");
    // Only 2003 works: O-0001's call about it is answered by 2003.
    let second = agent_phone(&h, "2003", port + 100, "auto");
    wait_state(&h, "2003", "available");
    let xml = caller(&h, "first_call", 2);
    assert_sipp_ok(&h, &sipp(&h, xml.to_str().unwrap(), &["-m", "1"]));
    assert_eq!(connected_agents(&h), ["2003"], "{}", h.log());
    // 2001 logs in while 2003 wraps up, then 2003 is ready again: 2001 has
    // been idle longer and would be next for anyone else.
    let _first = agent_phone(&h, "2001", port, "auto");
    wait_state(&h, "2001", "available");
    std::thread::sleep(Duration::from_millis(300));
    second.command("dial", &format!("sip:*4@{}", h.target()));
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while h
        .lines("agent state")
        .iter()
        .filter(|l| field(l, "agent") == Some("2003") && field(l, "state") == Some("available"))
        .count()
        < 2
    {
        assert!(std::time::Instant::now() < end, "{}", h.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    // The ticket log has the answer; the hotline reads it within a second.
    std::thread::sleep(Duration::from_millis(1500));
    let xml = caller(&h, "second_call", 2);
    assert_sipp_ok(&h, &sipp(&h, xml.to_str().unwrap(), &["-m", "1"]));
    assert_eq!(connected_agents(&h), ["2003", "2003"], "{}", h.log());
}

#[test]
fn a_waiting_caller_hears_place_and_wait_then_leaves_a_voice_message_with_0() {
    // Agents exist but nobody is logged in, and the queue waits for them;
    // announcements every 2 s (a place, no minutes: nobody is at work).
    let (h, data) = common::menu_hotline(BASE, "announce_seconds = 2\nwhen_empty = \"wait\"\n");
    let xml = scenario(
        h.dir.path(),
        "announced",
        "13800138000",
        "100",
        &[
            Step::Pause(500),
            Step::Key('0'),
            Step::Pause(5000),
            Step::Key('0'),
            Step::Pause(6000),
        ],
    );
    assert_sipp_ok(&h, &sipp(&h, xml.to_str().unwrap(), &["-m", "1"]));
    let told: Vec<String> = h
        .lines("ivr step")
        .into_iter()
        .filter(|l| l.contains("told place"))
        .collect();
    assert!(
        (1..=3).contains(&told.len()),
        "told every 2 s over about 5 s: {told:?}\n{}",
        h.log()
    );
    assert!(told[0].contains("told place 1"), "{told:?}");
    assert!(
        told[0].contains("no estimate"),
        "no minutes while nobody is at work: {told:?}"
    );
    // The place, then the hold music looping on: one order to the edge.
    assert!(
        h.lines("looping")
            .iter()
            .any(|l| l.contains("first=position_is")
                && l.contains("in_line")
                && l.contains("prompts=hold_")),
        "{}",
        h.log()
    );
    let played = h.lines("playing");
    // 0 while waiting: the voice-message recorder (the complaint node).
    assert!(
        played.iter().any(|l| l.contains("record_complaint")),
        "{}",
        h.log()
    );
    let _ = data;
}
