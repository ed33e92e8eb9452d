//! `/metrics` after a real call: the values the scenario implies, and the
//! output accepted by Prometheus' own checker (`promtool check metrics`,
//! Debian package `prometheus`, installed by tests/run.sh).

mod common;

use common::{Hotline, assert_sipp_ok, http_get, sample, sipp};

const BASE: u16 = 19000;

#[test]
fn metrics_after_one_call_count_what_happened_and_pass_promtool() {
    let h = Hotline::start(BASE, "");
    let inf = h.dir.path().join("digits.csv");
    std::fs::write(&inf, "SEQUENTIAL\n4;2;#;\n").unwrap();
    let run = sipp(
        &h,
        "caller_info.xml",
        &["-m", "1", "-inf", inf.to_str().unwrap()],
    );
    assert_sipp_ok(&h, &run);
    h.wait_for("media closed", 1, std::time::Duration::from_secs(5));
    let text = http_get(h.sip_port + 199, "/metrics");
    let expect = [
        ("hotline_calls_total{outcome=\"hotline_hung_up\"}", 1.0),
        // Rung at once: no 100 Trying before the 180.
        ("hotline_sip_responses_total{code=\"180\"}", 1.0),
        // 200 to the INVITE and to each of the three INFOs.
        ("hotline_sip_responses_total{code=\"200\"}", 4.0),
        ("hotline_active_calls", 0.0),
        ("hotline_rtp_packets_lost_total", 0.0),
        ("hotline_tickets_open{severity=\"ordinary\"}", 0.0),
    ];
    for (series, value) in expect {
        assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
    }
    assert_eq!(
        sample(&text, "hotline_sip_responses_total{code=\"100\"}"),
        None
    );
    let sent = sample(&text, "hotline_rtp_packets_sent_total").unwrap();
    assert!(sent > 25.0, "the prompts were streamed: {sent}");
    // How the threads share the machine, by name, from the kernel.
    let switch = sample(&text, "hotline_thread_cpu_seconds{thread=\"switch\"}").unwrap();
    assert!(switch > 0.0, "the switch's thread ran: {switch}");
    let media = sample(&text, "hotline_thread_cpu_seconds{thread=\"media-0\"}").unwrap();
    assert!(media > 0.0, "a media worker ran: {media}");
    assert!(sample(&text, "hotline_thread_waiting_seconds{thread=\"switch\"}").is_some());
    common::assert_promtool_accepts(&text);
}

#[test]
fn agents_nobody_logged_in_are_counted_as_logged_out() {
    let h = Hotline::start(
        BASE,
        &format!(
            "[acd]\nagents = \"{}\"\n",
            common::manifest("config/agents.toml")
        ),
    );
    let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let text = loop {
        let text = http_get(h.sip_port + 199, "/metrics");
        if sample(&text, "hotline_agents{state=\"logged_out\"}").is_some()
            || std::time::Instant::now() > end
        {
            break text;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    // The four demo agents, none of them logged in yet.
    assert_eq!(
        sample(&text, "hotline_agents{state=\"logged_out\"}"),
        Some(4.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "hotline_agents{state=\"available\"}"),
        Some(0.0)
    );
}
