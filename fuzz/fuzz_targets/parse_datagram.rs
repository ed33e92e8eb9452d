//! Datagram → parsed request, and through the whole switch: no input may
//! panic, and a request that parses must be answerable.
#![no_main]

use std::time::{Duration, Instant};

use hotline::call::{Switch, SwitchConfig};
use hotline::sip::message::{self, Framed, Message};
use hotline::sip::transaction::{Peer, TimerValues, Transport};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match message::parse_datagram(data) {
        Ok(Message::Request(r)) => {
            let _ = message::response(&r.core, 200, "OK", Some("t"), &[], b"");
        }
        Ok(Message::Response(_)) => {}
        Err(e) => {
            let _ = message::reject_reply(data, &e);
        }
    }
    let _ = message::frame_stream(data);
    if let Framed::Message { .. } = message::frame_stream(data) {}
    let mut switch = Switch::new(SwitchConfig {
        sip_addr: "127.0.0.1:5060".parse().unwrap(),
        media_ip: "127.0.0.1".parse().unwrap(),
        rtp_ports: (20000, 20010),
        answer_after: Duration::ZERO,
        inter_digit_timeout: Duration::from_secs(5),
        max_digits: 32,
        language: "en".into(),
        timers: TimerValues::default(),
        seed: 1,
    });
    let now = Instant::now();
    let peer = Peer {
        transport: Transport::Udp,
        addr: "127.0.0.1:5061".parse().unwrap(),
    };
    switch.handle_datagram(now, peer, data);
    switch.handle_timeout(now + Duration::from_secs(40));
    while switch.poll_output().is_some() {}
});
