//! Recording a conversation: the caller on the left channel, the agent on
//! the right, 8 kHz 16-bit stereo WAV, written as it goes. Sans-IO: packets
//! come in with their RTP timestamp and arrival time, whole frames of
//! interleaved samples go out once they are old enough that late packets
//! have come, and the WAV header is made for any length written so far.
//!
//! Each side's packets are placed by their RTP timestamps, anchored once to
//! when that side's first packet arrived (so jitter does not move them, and
//! the two sides line up within a packet's time). A side that goes quiet
//! (hold, a lost stretch) is silence. A new stream on a side (another SSRC:
//! a transfer's new agent) and a timestamp jump of more than a second
//! against the clock (a phone that restarted its stream) re-anchor: two
//! phones' timestamps have nothing to do with each other, even when they
//! happen to lie close. While
//! paused, everything is silence: nothing said then is kept.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::g711::Law;
use super::record::RATE;

/// Which channel a leg is recorded on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The caller.
    Left,
    /// The agent (and anyone else on the agent's side).
    Right,
}

/// How long samples wait for late packets before they are written.
pub const LATENCY: Duration = Duration::from_millis(300);

#[derive(Debug, Clone, Copy)]
struct Anchor {
    /// The stream it belongs to.
    ssrc: u32,
    /// The RTP timestamp of the anchoring packet and where its first sample
    /// goes (samples since the recording began).
    ts: u32,
    at: u64,
}

#[derive(Debug)]
pub struct Conversation {
    law: Law,
    start: Instant,
    /// Samples handed out so far (per channel).
    written: u64,
    left: VecDeque<i16>,
    right: VecDeque<i16>,
    anchors: [Option<Anchor>; 2],
    paused: bool,
    pauses: u32,
    /// Per side: packets that came too late to be written (all their
    /// samples already handed out), and how often the side was anchored.
    late: [u64; 2],
    anchored: [u32; 2],
}

fn samples(d: Duration) -> u64 {
    (d.as_micros() as u64) * RATE as u64 / 1_000_000
}

impl Conversation {
    pub fn new(law: Law, start: Instant) -> Self {
        Self {
            law,
            start,
            written: 0,
            left: VecDeque::new(),
            right: VecDeque::new(),
            anchors: [None, None],
            paused: false,
            pauses: 0,
            late: [0; 2],
            anchored: [0; 2],
        }
    }

    /// One packet's G.711 payload from `side`, with its stream (SSRC), RTP
    /// timestamp and when it arrived.
    pub fn push(&mut self, side: Side, ssrc: u32, ts: u32, at: Instant, payload: &[u8]) {
        if self.paused || payload.is_empty() {
            return;
        }
        let clock = samples(at.saturating_duration_since(self.start));
        let i = side as usize;
        let anchor = match self.anchors[i] {
            Some(a) if a.ssrc == ssrc => {
                let pos = a.at as i64 + ts.wrapping_sub(a.ts) as i32 as i64;
                if (pos - clock as i64).unsigned_abs() > RATE as u64 {
                    None // more than a second off the clock: start again
                } else {
                    Some(a)
                }
            }
            _ => None,
        };
        let a = anchor.unwrap_or_else(|| {
            self.anchored[i] += 1;
            Anchor {
                ssrc,
                ts,
                at: clock,
            }
        });
        self.anchors[i] = Some(a);
        let pos = a.at as i64 + ts.wrapping_sub(a.ts) as i32 as i64;
        let law = self.law;
        let buf = match side {
            Side::Left => &mut self.left,
            Side::Right => &mut self.right,
        };
        if pos + (payload.len() as i64) <= self.written as i64 {
            self.late[i] += 1; // too late: already written
            return;
        }
        for (k, b) in payload.iter().enumerate() {
            let p = pos + k as i64;
            if p < self.written as i64 {
                continue; // this sample is already written
            }
            let idx = (p as u64 - self.written) as usize;
            if idx >= buf.len() {
                buf.resize(idx + 1, 0);
            }
            buf[idx] = law.decode(*b);
        }
    }

    /// Stops (true) or resumes keeping what is said: the paused stretch is
    /// silence in the file. False when nothing changed.
    pub fn set_paused(&mut self, paused: bool) -> bool {
        if self.paused == paused {
            return false;
        }
        self.paused = paused;
        if paused {
            self.pauses += 1;
        }
        true
    }

    pub fn pauses(&self) -> u32 {
        self.pauses
    }

    /// Packets from `side` that came too late to be written.
    pub fn late(&self, side: Side) -> u64 {
        self.late[side as usize]
    }

    /// How often `side`'s timing was anchored to the clock: once, plus
    /// once per new stream (a transfer's new agent) or timestamp jump.
    pub fn anchored(&self, side: Side) -> u32 {
        self.anchored[side as usize]
    }

    /// Interleaved little-endian 16-bit samples (left, right) for every
    /// frame up to `now` less the latency (all of them at the end: `now` =
    /// None).
    pub fn drain(&mut self, now: Option<Instant>) -> Vec<u8> {
        let until = match now {
            Some(now) => samples(
                now.saturating_duration_since(self.start)
                    .saturating_sub(LATENCY),
            ),
            None => self.written + self.left.len().max(self.right.len()) as u64,
        };
        let n = until.saturating_sub(self.written) as usize;
        let mut out = Vec::with_capacity(n * 4);
        for _ in 0..n {
            let l = self.left.pop_front().unwrap_or(0);
            let r = self.right.pop_front().unwrap_or(0);
            out.extend_from_slice(&l.to_le_bytes());
            out.extend_from_slice(&r.to_le_bytes());
        }
        self.written += n as u64;
        out
    }

    /// Frames written so far (one sample per channel each).
    pub fn frames(&self) -> u64 {
        self.written
    }
}

/// The 44-byte header of a stereo 8 kHz 16-bit PCM WAV holding `frames`.
pub fn wav_header(frames: u64) -> [u8; 44] {
    let data = (frames * 4).min(u32::MAX as u64 - 36) as u32;
    let mut h = [0u8; 44];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&(36 + data).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes()); // PCM
    h[22..24].copy_from_slice(&2u16.to_le_bytes()); // stereo
    h[24..28].copy_from_slice(&RATE.to_le_bytes());
    h[28..32].copy_from_slice(&(RATE * 4).to_le_bytes());
    h[32..34].copy_from_slice(&4u16.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data.to_le_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS20: Duration = Duration::from_millis(20);

    /// 160 samples of one value, as µ-law.
    fn packet(value: i16) -> Vec<u8> {
        vec![Law::Mu.encode(value); 160]
    }

    fn frames(bytes: &[u8]) -> Vec<(i16, i16)> {
        bytes
            .chunks(4)
            .map(|c| {
                (
                    i16::from_le_bytes([c[0], c[1]]),
                    i16::from_le_bytes([c[2], c[3]]),
                )
            })
            .collect()
    }

    #[test]
    fn the_two_sides_line_up_by_timestamp_whatever_the_jitter() {
        let t0 = Instant::now();
        let mut c = Conversation::new(Law::Mu, t0);
        // One second of both sides; the agent's packets arrive up to 15 ms
        // late and out of order, their timestamps start elsewhere.
        for k in 0..50u32 {
            let at = t0 + MS20 * k;
            c.push(Side::Left, 1, 1000 + 160 * k, at, &packet(1000));
            let jitter = Duration::from_millis([0, 15, 5][k as usize % 3]);
            c.push(
                Side::Right,
                2,
                90_000 + 160 * k,
                at + jitter,
                &packet(-2000),
            );
        }
        assert!(c.drain(Some(t0)).is_empty(), "nothing before the latency");
        let out = frames(&c.drain(Some(t0 + Duration::from_millis(1300))));
        assert_eq!(out.len(), 8000);
        let (l, r) = (
            Law::Mu.decode(Law::Mu.encode(1000)),
            Law::Mu.decode(Law::Mu.encode(-2000)),
        );
        assert!(out.iter().all(|f| *f == (l, r)), "{:?}", &out[..4]);
    }

    #[test]
    fn a_quiet_side_and_a_pause_are_silence_and_late_packets_are_dropped() {
        let t0 = Instant::now();
        let mut c = Conversation::new(Law::Mu, t0);
        c.push(Side::Left, 1, 0, t0, &packet(800));
        assert!(c.set_paused(true) && !c.set_paused(true));
        c.push(Side::Left, 1, 160, t0 + MS20, &packet(800)); // said while paused
        assert!(c.set_paused(false));
        c.push(Side::Left, 1, 320, t0 + MS20 * 2, &packet(800));
        let out = frames(&c.drain(Some(t0 + Duration::from_secs(1))));
        let v = Law::Mu.decode(Law::Mu.encode(800));
        assert!(out[..160].iter().all(|f| *f == (v, 0)), "left only");
        assert!(
            out[160..320].iter().all(|f| *f == (0, 0)),
            "paused: silence"
        );
        assert!(out[320..480].iter().all(|f| *f == (v, 0)));
        assert!(out[480..].iter().all(|f| *f == (0, 0)), "nothing more said");
        assert_eq!(c.pauses(), 1);
        // Written already: a packet for that time is too late.
        c.push(
            Side::Right,
            2,
            0,
            t0 + Duration::from_millis(100),
            &packet(500),
        );
        let rest = frames(&c.drain(None));
        assert!(rest.iter().all(|f| f.1 == 0), "{rest:?}");
        assert_eq!((c.late(Side::Right), c.late(Side::Left)), (1, 0));
        assert_eq!((c.anchored(Side::Right), c.anchored(Side::Left)), (1, 1));
        assert_eq!(c.frames(), out.len() as u64 + rest.len() as u64);
    }

    #[test]
    fn a_new_agent_on_the_right_is_placed_by_its_own_stream() {
        let t0 = Instant::now();
        let mut c = Conversation::new(Law::Mu, t0);
        // The first agent talks for a second, then a second agent takes
        // over (a transfer) whose timestamps happen to lie 600 ms behind
        // where the first one's would be by now.
        for k in 0..50u32 {
            c.push(Side::Right, 7, 160 * k, t0 + MS20 * k, &packet(900));
        }
        let second = 160 * 50 - 600 * 8;
        let mut out = Vec::new();
        for k in 0..50u32 {
            let at = t0 + MS20 * (50 + k);
            c.push(Side::Right, 8, second + 160 * k, at, &packet(-900));
            out.extend(frames(&c.drain(Some(at))));
        }
        assert_eq!(c.late(Side::Right), 0);
        assert_eq!(c.anchored(Side::Right), 2);
        out.extend(frames(&c.drain(None)));
        let v = Law::Mu.decode(Law::Mu.encode(-900));
        let heard = out.iter().filter(|f| f.1 == v).count();
        assert_eq!(heard, 50 * 160, "the second agent, all of it");
    }

    #[test]
    fn a_header_for_any_length() {
        let h = wav_header(8000);
        assert_eq!(&h[0..4], b"RIFF");
        assert_eq!(u32::from_le_bytes(h[40..44].try_into().unwrap()), 32_000);
        assert_eq!(u16::from_le_bytes(h[22..24].try_into().unwrap()), 2);
        assert_eq!(u32::from_le_bytes(h[4..8].try_into().unwrap()), 32_036);
    }
}
