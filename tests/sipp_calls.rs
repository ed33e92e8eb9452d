//! End to end: the real hotline on loopback, SIPp as the caller. Each test
//! asserts on what the hotline did (digits it heard, how each call ended,
//! RTP it sent, ports it gave back), not only on SIPp's exit code.

mod common;

use std::time::Duration;

use common::{Hotline, assert_sipp_ok, dtmf_pcap, field, sipp};

const BASE: u16 = 11000;

/// The last line of the log says every call ended and every port came back.
fn assert_all_released(log: &str, calls: usize) {
    let stopped = log
        .lines()
        .find(|l| l.contains("hotline stopped"))
        .unwrap_or_else(|| panic!("no stop line:\n{log}"));
    assert_eq!(
        field(stopped, "calls_started"),
        Some(&*calls.to_string()),
        "{stopped}"
    );
    assert_eq!(
        field(stopped, "calls_ended"),
        Some(&*calls.to_string()),
        "{stopped}"
    );
    assert_eq!(field(stopped, "active_calls"), Some("0"), "{stopped}");
    assert_eq!(field(stopped, "ports_in_use"), Some("0"), "{stopped}");
}

/// A call offering telephone-event at `pt`, sending `digits` as RFC 4733.
fn rfc4733_call(pt: u8, digits: &str, expect: &str) {
    let mut h = Hotline::start(BASE, "");
    let pcap = dtmf_pcap(h.dir.path(), digits, pt);
    let pt_arg = pt.to_string();
    let run = sipp(
        &h,
        "caller_rfc4733.xml",
        &[
            "-m",
            "1",
            "-key",
            "dtmf_pcap",
            pcap.to_str().unwrap(),
            "-set",
            "dtmf_pt",
            &pt_arg,
            "-trace_msg",
        ],
    );
    assert_sipp_ok(&h, &run);
    // The SDP answer SIPp received kept the offered telephone-event type.
    let messages = std::fs::read_dir(h.dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("_messages.log"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .expect("sipp message trace");
    let answer = format!("m=audio {} RTP/AVP 0 {pt}", h.sip_port + 20);
    assert!(messages.contains(&answer), "no `{answer}` in:\n{messages}");
    let collected = h.lines("digits collected");
    assert_eq!(collected.len(), 1, "{}", h.log());
    assert_eq!(field(&collected[0], "digits"), Some(expect));
    let ended = h.wait_for("call ended", 1, Duration::from_secs(5));
    assert_eq!(field(&ended[0], "reason"), Some("HotlineHungUp"));
    // The welcome prompt was streamed until the first key, then goodbye in full.
    let media = h.wait_for("media closed", 1, Duration::from_secs(5));
    let sent: u64 = field(&media[0], "rtp_sent").unwrap().parse().unwrap();
    assert!(sent > 100, "{}", media[0]);
    let received: u64 = field(&media[0], "rtp_received").unwrap().parse().unwrap();
    let packets = 8 * digits.len() as u64;
    assert_eq!(received, packets, "every telephone-event packet arrived");
    assert_all_released(&h.stop(), 1);
}

#[test]
fn rfc4733_digits_are_heard() {
    rfc4733_call(101, "1234#", "1234");
}

#[test]
fn rfc4733_digits_at_the_payload_type_the_caller_offered() {
    // Packets at PT 96 count only if the answer kept 96 for telephone-event.
    rfc4733_call(96, "*09#", "*09");
}

#[test]
fn sip_info_digits_are_heard() {
    let mut h = Hotline::start(BASE, "");
    let inf = h.dir.path().join("digits.csv");
    std::fs::write(&inf, "SEQUENTIAL\n4;2;#;\n").unwrap();
    let run = sipp(
        &h,
        "caller_info.xml",
        &["-m", "1", "-inf", inf.to_str().unwrap()],
    );
    assert_sipp_ok(&h, &run);
    let collected = h.lines("digits collected");
    assert_eq!(field(&collected[0], "digits"), Some("42"));
    let store_path = h.store_path();
    assert_all_released(&h.stop(), 1);
    // The call is in the ticket log: started, what the caller keyed, ended.
    let events = common::stores::all_events(store_path.to_str().unwrap());
    let names: Vec<&str> = events.iter().map(|e| e.kind.name()).collect();
    assert_eq!(names, ["call_started", "ivr_step_taken", "call_ended"]);
    assert!(
        events
            .iter()
            .all(|e| e.call == events[0].call && e.call.is_some())
    );
    assert!(matches!(
        &events[1].kind,
        hotline::tickets::EventKind::IvrStepTaken { detail, .. } if detail == "digits 42"
    ));
}

#[test]
fn sip_info_digits_over_tcp() {
    let mut h = Hotline::start(BASE, "");
    let inf = h.dir.path().join("digits.csv");
    std::fs::write(&inf, "SEQUENTIAL\n7;*;#;\n").unwrap();
    let run = sipp(
        &h,
        "caller_info.xml",
        &["-t", "t1", "-m", "1", "-inf", inf.to_str().unwrap()],
    );
    assert_sipp_ok(&h, &run);
    let collected = h.lines("digits collected");
    assert_eq!(field(&collected[0], "digits"), Some("7*"));
    assert_all_released(&h.stop(), 1);
}

#[test]
fn cancel_before_answer() {
    // Rings for 5 s: SIPp cancels after 300 ms.
    let mut h = Hotline::start(
        BASE,
        "[sip]\nlisten = \"127.0.0.1:SIP_PORT\"\ntrunks = [\"127.0.0.1\"]\nanswer_after_ms = 5000\n",
    );
    let run = sipp(&h, "caller_cancel.xml", &["-m", "1"]);
    assert_sipp_ok(&h, &run);
    let ended = h.wait_for("call ended", 1, Duration::from_secs(5));
    assert_eq!(field(&ended[0], "reason"), Some("Cancelled"));
    assert!(h.lines("call answered").is_empty(), "never answered");
    assert_all_released(&h.stop(), 1);
}

#[test]
fn caller_that_never_acks_is_torn_down() {
    // T1 = 50 ms puts Timer H at 3.2 s.
    let mut h = Hotline::start(
        BASE,
        "[sip]\nlisten = \"127.0.0.1:SIP_PORT\"\ntrunks = [\"127.0.0.1\"]\nanswer_after_ms = 50\nt1_ms = 50\n",
    );
    let run = sipp(&h, "caller_no_ack.xml", &["-m", "1"]);
    assert_sipp_ok(&h, &run);
    let ended = h.wait_for("call ended", 1, Duration::from_secs(5));
    assert_eq!(field(&ended[0], "reason"), Some("NoAck"));
    assert_eq!(field(&ended[0], "ports_in_use"), Some("0"));
    assert_all_released(&h.stop(), 1);
}

#[test]
fn fifty_concurrent_calls() {
    let mut h = Hotline::start(BASE, "");
    let inf = h.dir.path().join("digits.csv");
    let mut rows = String::from("SEQUENTIAL\n");
    for i in 0..50 {
        rows.push_str(&format!("{};{};#;\n", i / 10, i % 10));
    }
    std::fs::write(&inf, rows).unwrap();
    // All 50 start within 0.5 s and each lasts several seconds (welcome is
    // cut by the first key, then goodbye plays): they overlap.
    let run = sipp(
        &h,
        "caller_info.xml",
        &[
            "-m",
            "50",
            "-l",
            "50",
            "-r",
            "100",
            "-inf",
            inf.to_str().unwrap(),
        ],
    );
    assert_sipp_ok(&h, &run);
    let mut heard: Vec<String> = h
        .lines("digits collected")
        .iter()
        .map(|l| field(l, "digits").unwrap().to_string())
        .collect();
    heard.sort();
    let expected: Vec<String> = (0..50).map(|i| format!("{}{}", i / 10, i % 10)).collect();
    assert_eq!(heard, expected);
    let peak = h.lines("call answered").len();
    assert_eq!(peak, 50);
    let log = h.stop();
    let most_active = log
        .lines()
        .filter(|l| l.contains("call ended"))
        .filter_map(|l| field(l, "active_calls")?.parse::<usize>().ok())
        .max()
        .unwrap();
    assert!(
        most_active >= 25,
        "calls overlapped: {most_active} still active at an end"
    );
    assert_all_released(&log, 50);
}

/// The inode of the UDP socket bound to 127.0.0.1:`port` (from
/// /proc/net/udp), and the bytes waiting in it; none when nothing is
/// bound there.
fn udp_socket(port: u16) -> Option<(u64, u64)> {
    let table = std::fs::read_to_string("/proc/net/udp").unwrap();
    let local = format!("0100007F:{port:04X}");
    table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.get(1) != Some(&local.as_str()) {
            return None;
        }
        let waiting = u64::from_str_radix(f[4].split(':').nth(1)?, 16).ok()?;
        Some((f[9].parse().ok()?, waiting))
    })
}

/// A call that stays up half a second (its media open), then hangs up;
/// the port it had and what its media counted.
fn short_call(h: &Hotline, xml: &std::path::Path) -> (u16, u64, u64) {
    let before = h.lines("media closed").len();
    let run = sipp(h, xml.to_str().unwrap(), &["-m", "1"]);
    assert_sipp_ok(h, &run);
    let closed = h.wait_for("media closed", before + 1, Duration::from_secs(5));
    let line = &closed[before];
    let count = |key: &str| -> u64 {
        field(line, key)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{key} in {line}"))
    };
    (
        count("port") as u16,
        count("rtp_received"),
        count("rtp_foreign"),
    )
}

#[test]
fn a_freed_rtp_port_rests_still_bound_and_the_next_call_on_it_gets_its_socket_emptied() {
    use common::caller::Step;
    let mut h = Hotline::start(BASE, "");
    let xml = common::caller::scenario(
        h.dir.path(),
        "short",
        "13800138000",
        "100",
        &[Step::Pause(500)],
    );
    let (port, ..) = short_call(&h, &xml);
    let freed = std::time::Instant::now();
    let (inode, _) = udp_socket(port).expect("the freed port's socket kept bound");
    // Strays reach the resting port: a scanner, the last packets of a
    // peer that missed the BYE.
    let stray = std::net::UdpSocket::bind("127.0.0.7:0").unwrap();
    for _ in 0..5 {
        stray.send_to(&[0x80; 172], ("127.0.0.1", port)).unwrap();
    }
    let (_, waiting) = udp_socket(port).unwrap();
    assert!(waiting > 0, "the strays wait in the kept socket");
    // While it rests, the next call gets another port.
    let (other, ..) = short_call(&h, &xml);
    assert_ne!(other, port, "a port handed out again within its rest");
    std::thread::sleep(hotline::media::ports::REST.saturating_sub(freed.elapsed()));
    // Rested, it is the first handed out: the same socket, and the strays
    // reach neither the new call's counts nor its strict RTP's choice.
    let (again, received, foreign) = short_call(&h, &xml);
    assert_eq!(again, port, "the port freed last, rested, comes first");
    assert_eq!(
        udp_socket(port).map(|(i, _)| i),
        Some(inode),
        "the same socket, not bound again"
    );
    assert_eq!(
        (received, foreign),
        (0, 0),
        "what waited in the socket was dropped before the call\n{}",
        h.log()
    );
    let log = h.stop();
    assert_all_released(&log, 3);
}
