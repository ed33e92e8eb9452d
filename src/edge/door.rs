//! The door: new calls refused at once while the switch is behind
//! (sans-IO; the runtime's door thread drives it).
//!
//! The switch decides when new calls are refused (its queue, the media's
//! load, the caps: `Switch::refusing`) and answers them itself while it
//! keeps up. But on a machine that is full, which is when it refuses, its
//! thread can wait several milliseconds for a core (or stall tens of
//! milliseconds), and the refused callers wait with it: 0.5-2 % of the
//! 503s at twice the clean rate left over 10 ms late. The door is a small
//! real-time thread that looks at the SIP socket every [`TICK`]: while the
//! switch refuses new calls (or did lately, [`RECENTLY`]) and the oldest
//! datagram waiting has waited [`STEP_IN`], it reads what waits, answers
//! each new INVITE with the switch's own 503 (the same To tag,
//! `Retry-After`, `Server`) and hands everything, answered or not, to the
//! switch in arrival order. The switch still sees every datagram: its edge
//! guard counts them, its transaction layer keeps the door's 503 as its
//! own (the INVITE's copies absorbed, the ACK taken), and the refusal is
//! counted as shed (`switch_late`). The door decides nothing about calls
//! itself, and answers a source no more often than the guard would.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{GuardConfig, Networks};
use crate::sip::message::{self, Message};

/// How often the door looks at the socket.
pub const TICK: Duration = Duration::from_millis(2);

/// The oldest waiting datagram's wait from which the door reads for the
/// switch: with [`TICK`], a refused caller's 503 leaves within about 6 ms
/// of the INVITE, inside the 10 ms a caller should wait for it, while the
/// switch's own moments without a core (a millisecond or two) are left to
/// the switch.
pub const STEP_IN: Duration = Duration::from_millis(4);

/// How long after the switch last refused new calls the door still
/// answers for it. At twice the clean rate the switch goes from refusing
/// to taking calls and back many times a second (the media's load about
/// its budget), and a switch that has taken calls for a while and stalls
/// is as full as one that refused: in `benches/overload.sh 3200`, 171 late
/// 503s in one run came from one stall of 50 ms after 200 ms of calls
/// taken. At the clean rate the switch never refuses, and the door stays
/// out.
pub const RECENTLY: Duration = Duration::from_secs(1);

/// At most this many datagrams wait for the switch in the door's hands;
/// beyond it they wait in the kernel, as they would without the door.
pub const HELD_MAX: usize = 4096;

/// The `Retry-After` of a refused call (seconds), the switch's and the
/// door's alike.
pub const RETRY_AFTER: &str = "5";

/// At most this many sources are answered at the door in a second; the
/// INVITEs of others wait for the switch and its guard.
pub const MAX_SOURCES: usize = 1024;

/// The switch's 503 to a new call, word for word: the same from the
/// switch and from the door.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The To tag of the switch's refusals.
    tag: String,
    /// The `Server` header, if one is sent.
    server: String,
}

impl Refusal {
    pub fn new(tag: String, server: String) -> Self {
        Self { tag, server }
    }

    /// The 503 to a new call's INVITE.
    pub fn to(&self, core: &message::CoreHeaders) -> Bytes {
        let mut extra = vec![("Retry-After", RETRY_AFTER)];
        if !self.server.is_empty() {
            extra.push(("Server", self.server.as_str()));
        }
        message::response(
            core,
            503,
            "Service Unavailable",
            Some(&self.tag),
            &extra,
            b"",
        )
    }
}

/// What the door answers with (the switch's [`Refusal`]), and
/// how much: a source gets no more 503s from the door in a second than
/// the edge guard lets its INVITEs through in a burst (a trunk's or
/// anyone's), so that a flood is not answered datagram for datagram while
/// the switch is behind; the rest wait for the switch, whose guard counts
/// every one (and drops what is over the rate).
#[derive(Debug, Clone)]
pub struct Door {
    refusal: Refusal,
    /// Trunks and trusted proxies (which bring everyone's calls).
    trunks: Networks,
    proxies: Networks,
    /// Answers a second for a trunk (or proxy) and for anyone else.
    trunk_answers: u32,
    answers: u32,
    /// Answers given in the second that began at `second`, by source.
    answered: HashMap<IpAddr, u32>,
    second: Option<Instant>,
}

impl Door {
    pub fn new(refusal: Refusal, guard: &GuardConfig, proxies: &Networks) -> Self {
        Self {
            refusal,
            trunks: guard.trunks.clone(),
            proxies: proxies.clone(),
            trunk_answers: guard.trunk_limits.invite.burst.max(1.0) as u32,
            answers: guard.limits.invite.burst.max(1.0) as u32,
            answered: HashMap::new(),
            second: None,
        }
    }

    /// Whether the door watches the socket: the switch refused new calls
    /// within [`RECENTLY`] (`refused_ago`; none: not since it started).
    pub fn watches(refused_ago: Option<Duration>) -> bool {
        refused_ago.is_some_and(|ago| ago <= RECENTLY)
    }

    /// Whether the door reads for the switch: it [watches](Self::watches),
    /// and the oldest datagram waiting (none: nothing waits) has waited
    /// [`STEP_IN`] or more.
    pub fn steps_in(refused_ago: Option<Duration>, oldest_waited: Option<Duration>) -> bool {
        Self::watches(refused_ago) && oldest_waited.is_some_and(|w| w >= STEP_IN)
    }

    /// The 503 for `bytes` from `from`, read at `now`, when it is a new
    /// call (an INVITE outside a dialog) and its source has answers left
    /// this second; none for anything else, which the switch answers in
    /// its turn.
    pub fn answer(&mut self, now: Instant, bytes: &[u8], from: SocketAddr) -> Option<Bytes> {
        if message::request_method(bytes) != Some("INVITE") {
            return None;
        }
        if self
            .second
            .is_none_or(|s| now.saturating_duration_since(s) >= Duration::from_secs(1))
        {
            self.second = Some(now);
            self.answered.clear();
        }
        let ip = from.ip();
        let limit = match self.trunks.contains(ip) || self.proxies.contains(ip) {
            true => self.trunk_answers,
            false => self.answers,
        };
        let known = self.answered.len() < MAX_SOURCES || self.answered.contains_key(&ip);
        if !known || self.answered.get(&ip).is_some_and(|n| *n >= limit) {
            return None;
        }
        let Ok(Message::Request(mut r)) = message::parse_datagram(bytes) else {
            return None; // the switch answers a broken one (400)
        };
        if r.core.to_tag.is_some() {
            return None; // a re-INVITE: the switch's to answer
        }
        *self.answered.entry(ip).or_default() += 1;
        message::stamp_via(&mut r.core, from);
        Some(self.refusal.to(&r.core))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite(to_tag: &str) -> Vec<u8> {
        format!(
            "INVITE sip:400@127.0.0.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 10.0.0.9:5070;branch=z9hG4bK-door-1;rport\r\n\
             From: <sip:13800000001@10.0.0.9>;tag=caller\r\n\
             To: <sip:400@127.0.0.1>{to_tag}\r\n\
             Call-ID: door-1@10.0.0.9\r\n\
             CSeq: 7 INVITE\r\n\
             Contact: <sip:13800000001@10.0.0.9:5070>\r\n\
             Content-Length: 0\r\n\r\n"
        )
        .into_bytes()
    }

    fn from() -> SocketAddr {
        "127.0.0.1:5070".parse().unwrap()
    }

    fn door(server: &str) -> Door {
        Door::new(
            Refusal::new("5eed0".into(), server.into()),
            &GuardConfig::default(),
            &Networks::default(),
        )
    }

    #[test]
    fn a_new_call_gets_the_switchs_503_addressed_back_to_its_source() {
        let mut door = door("hotline");
        let answer = door
            .answer(Instant::now(), &invite(""), from())
            .expect("a new call is refused");
        let text = String::from_utf8(answer.to_vec()).unwrap();
        assert!(
            text.starts_with("SIP/2.0 503 Service Unavailable\r\n"),
            "{text}"
        );
        assert!(
            text.contains("Via: SIP/2.0/UDP 10.0.0.9:5070;branch=z9hG4bK-door-1;received=127.0.0.1;rport=5070\r\n"),
            "{text}"
        );
        assert!(
            text.contains("To: <sip:400@127.0.0.1>;tag=5eed0\r\n"),
            "{text}"
        );
        assert!(text.contains("Call-ID: door-1@10.0.0.9\r\n"), "{text}");
        assert!(text.contains("CSeq: 7 INVITE\r\n"), "{text}");
        assert!(text.contains("Retry-After: 5\r\n"), "{text}");
        assert!(text.contains("Server: hotline\r\n"), "{text}");
        assert!(text.ends_with("Content-Length: 0\r\n\r\n"), "{text}");
    }

    #[test]
    fn only_a_new_call_is_answered_at_the_door() {
        let mut door = door("");
        let now = Instant::now();
        assert!(
            door.answer(now, &invite(";tag=ours"), from()).is_none(),
            "a re-INVITE"
        );
        let ack = String::from_utf8(invite(""))
            .unwrap()
            .replace("INVITE sip", "ACK sip")
            .replace("7 INVITE", "7 ACK");
        assert!(door.answer(now, ack.as_bytes(), from()).is_none(), "an ACK");
        let ok = b"SIP/2.0 200 OK\r\nCall-ID: x\r\n\r\n";
        assert!(door.answer(now, ok, from()).is_none(), "a response");
        assert!(
            door.answer(now, b"INVITE garbage", from()).is_none(),
            "broken"
        );
        assert!(
            door.answer(now, b"\r\n\r\n", from()).is_none(),
            "a keep-alive"
        );
        let plain = door.answer(now, &invite(""), from()).unwrap();
        assert!(!String::from_utf8_lossy(&plain).contains("Server:"));
    }

    #[test]
    fn the_door_steps_in_only_for_a_switch_that_refuses_and_is_behind() {
        let late = Some(STEP_IN);
        let now = Some(Duration::ZERO);
        assert!(Door::steps_in(now, late));
        assert!(Door::steps_in(Some(RECENTLY), late), "refused a moment ago");
        assert!(
            !Door::steps_in(Some(RECENTLY + Duration::from_millis(1)), late),
            "taking calls: they wait for it"
        );
        assert!(!Door::steps_in(None, late), "never refused");
        assert!(!Door::steps_in(
            now,
            Some(STEP_IN - Duration::from_micros(1))
        ));
        assert!(!Door::steps_in(now, None), "nothing waits");
    }

    #[test]
    fn a_source_gets_no_more_answers_a_second_than_its_invite_burst() {
        let mut guard = GuardConfig::default();
        guard.limits.invite.burst = 3.0;
        guard.trunk_limits.invite.burst = 5.0;
        guard.trunks = Networks::parse(&["10.0.0.0/8"]).unwrap();
        let proxies = Networks::parse(&["172.16.0.1"]).unwrap();
        let refusal = Refusal::new("5eed0".into(), String::new());
        let mut door = Door::new(refusal, &guard, &proxies);
        let t0 = Instant::now();
        let answered = |door: &mut Door, at: Instant, from: &str| {
            (0..10)
                .filter(|_| {
                    door.answer(at, &invite(""), from.parse().unwrap())
                        .is_some()
                })
                .count()
        };
        assert_eq!(
            answered(&mut door, t0, "192.0.2.1:5060"),
            3,
            "anyone: its burst"
        );
        assert_eq!(answered(&mut door, t0, "172.16.0.1:5060"), 5, "a proxy");
        assert_eq!(
            answered(&mut door, t0, "10.1.1.1:5060"),
            5,
            "a trunk: the trunk's"
        );
        let later = t0 + Duration::from_millis(999);
        assert_eq!(
            answered(&mut door, later, "192.0.2.1:5060"),
            0,
            "the same second"
        );
        let next = t0 + Duration::from_secs(1);
        assert_eq!(
            answered(&mut door, next, "192.0.2.1:5060"),
            3,
            "the next second"
        );
        // Sources past the table's size wait for the switch's guard; those
        // in it keep what they have left.
        let trunk = "10.1.1.1:5060".parse().unwrap();
        assert!(door.answer(next, &invite(""), trunk).is_some());
        for i in 0..MAX_SOURCES as u32 - 2 {
            let from = SocketAddr::from((std::net::Ipv4Addr::from(0xc633_0000 + i), 5060));
            assert!(door.answer(next, &invite(""), from).is_some());
        }
        let stranger = "192.0.2.200:5060".parse().unwrap();
        assert!(door.answer(next, &invite(""), stranger).is_none());
        assert!(door.answer(next, &invite(""), trunk).is_some());
    }
}
