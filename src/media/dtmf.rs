//! DTMF digits: RFC 4733 telephone-events from RTP and SIP INFO bodies.

/// RFC 4733 event code → keypad digit.
pub fn event_digit(event: u8) -> Option<char> {
    match event {
        0..=9 => Some((b'0' + event) as char),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some((b'A' + event - 12) as char),
        _ => None,
    }
}

/// Turns a stream of telephone-event payloads into one digit per event.
///
/// An event is identified by its RTP timestamp (RFC 4733 §2.5.1): its start,
/// its updates and every retransmitted end packet share it, so a digit is
/// reported the first time a timestamp is seen, whichever packet that is.
#[derive(Debug, Default)]
pub struct Rfc4733Detector {
    /// (timestamp, event, ended) of the last event seen.
    last: Option<(u32, u8, bool)>,
}

impl Rfc4733Detector {
    /// Feeds one telephone-event payload; returns the digit if it starts a new event.
    pub fn handle_payload(&mut self, timestamp: u32, payload: &[u8]) -> Option<char> {
        let [event, flags, ..] = *payload else {
            return None;
        };
        if payload.len() < 4 {
            return None;
        }
        let ended = flags & 0x80 != 0;
        match self.last {
            Some((ts, _, _)) if ts == timestamp => {
                if let Some(last) = self.last.as_mut() {
                    last.2 |= ended;
                }
                None
            }
            // A long event continues in a new segment with a new timestamp
            // (§2.5.1.3): same event, previous segment never ended.
            Some((_, ev, false)) if ev == event && !ended && self.continues(timestamp) => {
                self.last = Some((timestamp, event, false));
                None
            }
            _ => {
                self.last = Some((timestamp, event, ended));
                event_digit(event)
            }
        }
    }

    fn continues(&self, timestamp: u32) -> bool {
        // A segment boundary is exactly 0xFFFF samples on; allow a little slack.
        self.last.is_some_and(|(ts, _, _)| {
            let delta = timestamp.wrapping_sub(ts);
            (0xff00..=0x1_0100).contains(&delta)
        })
    }
}

/// Digit carried by a SIP INFO body (`application/dtmf-relay` or `application/dtmf`).
pub fn info_digit(content_type: &str, body: &[u8]) -> Option<char> {
    let text = std::str::from_utf8(body).ok()?;
    let ct = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let value = match ct.as_str() {
        "application/dtmf-relay" => text.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            k.trim().eq_ignore_ascii_case("signal").then(|| v.trim())
        })?,
        "application/dtmf" => text.trim(),
        _ => return None,
    };
    match value {
        "10" => Some('*'),
        "11" => Some('#'),
        v if v.len() == 1 => {
            let c = v.chars().next()?.to_ascii_uppercase();
            matches!(c, '0'..='9' | '*' | '#' | 'A'..='D').then_some(c)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(event: u8, end: bool, duration: u16) -> [u8; 4] {
        let d = duration.to_be_bytes();
        [event, if end { 0x80 | 10 } else { 10 }, d[0], d[1]]
    }

    #[test]
    fn one_digit_per_event_whatever_the_retransmissions() {
        let mut det = Rfc4733Detector::default();
        let mut heard = String::new();
        for (ts, ev) in [(1000u32, 1u8), (5000, 1), (9000, 11)] {
            for d in [160, 320, 480] {
                heard.extend(det.handle_payload(ts, &payload(ev, false, d)));
            }
            for _ in 0..3 {
                heard.extend(det.handle_payload(ts, &payload(ev, true, 640)));
            }
        }
        assert_eq!(heard, "11#");
    }

    #[test]
    fn event_seen_only_by_its_end_packets_still_counts() {
        let mut det = Rfc4733Detector::default();
        assert_eq!(det.handle_payload(7, &payload(5, true, 800)), Some('5'));
        assert_eq!(det.handle_payload(7, &payload(5, true, 800)), None);
    }

    #[test]
    fn long_event_segments_are_one_digit() {
        let mut det = Rfc4733Detector::default();
        assert_eq!(det.handle_payload(0, &payload(3, false, 0xffff)), Some('3'));
        assert_eq!(det.handle_payload(0xffff, &payload(3, false, 160)), None);
    }

    #[test]
    fn short_payload_is_ignored() {
        assert_eq!(Rfc4733Detector::default().handle_payload(0, &[1, 2]), None);
    }

    #[test]
    fn info_bodies() {
        assert_eq!(
            info_digit("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n"),
            Some('5')
        );
        assert_eq!(
            info_digit("Application/DTMF-Relay", b"Signal= #\r\n"),
            Some('#')
        );
        assert_eq!(
            info_digit("application/dtmf-relay", b"Signal=11\r\n"),
            Some('#')
        );
        assert_eq!(info_digit("application/dtmf", b"*"), Some('*'));
        assert_eq!(info_digit("text/plain", b"1"), None);
        assert_eq!(info_digit("application/dtmf-relay", b"Signal=xyz"), None);
    }
}
