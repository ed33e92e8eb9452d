//! The mixer of a bridge with more than two legs, or where someone is heard
//! by only some (a supervisor listening or whispering): sans-IO, one per
//! conversation, driven every 20 ms by the media edge.
//!
//! Each participant's G.711 payloads are decoded into a short queue (at
//! most [`DEPTH`] frames: a burst is absorbed, a backlog dropped, a gap is
//! silence); each tick takes one frame from everyone and gives each
//! participant the sum of what they may hear (everyone but themselves,
//! within each speaker's audience), clipped to 16 bits and encoded in
//! their own law. Nothing allocates after a participant joins.

use super::g711::Law;
use super::rtp::SAMPLES_PER_PACKET;
use crate::ids::CallId;

/// Frames a participant may have waiting: 60 ms.
pub const DEPTH: usize = 3;

/// Who hears a participant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Everyone else (the caller, agents, a barging supervisor).
    All,
    /// Agents only (a whispering supervisor).
    Agents,
    /// No one (a listening supervisor).
    Nobody,
}

/// What a participant is, for audiences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Caller,
    Agent,
    Supervisor,
}

type Frame = [i16; SAMPLES_PER_PACKET];

#[derive(Debug)]
struct Part {
    call: CallId,
    law: Law,
    role: Role,
    audience: Audience,
    /// Frames received and not yet mixed (a ring of `DEPTH`).
    queue: [Frame; DEPTH],
    head: usize,
    len: usize,
    /// This tick's frame (silence when none came).
    now: Frame,
    out: [u8; SAMPLES_PER_PACKET],
}

impl Part {
    fn hears(&self, speaker: &Part) -> bool {
        speaker.call != self.call
            && match speaker.audience {
                Audience::All => true,
                Audience::Agents => self.role == Role::Agent,
                Audience::Nobody => false,
            }
    }
}

#[derive(Debug, Default)]
pub struct Mixer {
    parts: Vec<Part>,
    /// Frames dropped because a participant's queue was full.
    pub overflows: u64,
}

impl Mixer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `call` (or changes its role and audience when it is in).
    pub fn join(&mut self, call: CallId, law: Law, role: Role, audience: Audience) {
        if let Some(p) = self.parts.iter_mut().find(|p| p.call == call) {
            p.role = role;
            p.audience = audience;
            return;
        }
        self.parts.push(Part {
            call,
            law,
            role,
            audience,
            queue: [[0; SAMPLES_PER_PACKET]; DEPTH],
            head: 0,
            len: 0,
            now: [0; SAMPLES_PER_PACKET],
            out: [law.silence(); SAMPLES_PER_PACKET],
        });
    }

    pub fn leave(&mut self, call: CallId) {
        self.parts.retain(|p| p.call != call);
    }

    pub fn contains(&self, call: CallId) -> bool {
        self.parts.iter().any(|p| p.call == call)
    }

    pub fn len(&self) -> usize {
        self.parts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// What `call` said: one packet's G.711 payload (up to 20 ms).
    pub fn push(&mut self, call: CallId, payload: &[u8]) {
        let Some(p) = self.parts.iter_mut().find(|p| p.call == call) else {
            return;
        };
        if p.len == DEPTH {
            // A backlog: the oldest goes, so the delay stays short.
            p.head = (p.head + 1) % DEPTH;
            p.len -= 1;
            self.overflows += 1;
        }
        let slot = &mut p.queue[(p.head + p.len) % DEPTH];
        let n = payload.len().min(SAMPLES_PER_PACKET);
        for (s, b) in slot.iter_mut().zip(&payload[..n]) {
            *s = p.law.decode(*b);
        }
        slot[n..].fill(0);
        p.len += 1;
    }

    /// One 20 ms tick: each participant's mix, encoded, handed to `send`.
    pub fn mix(&mut self, mut send: impl FnMut(CallId, &[u8])) {
        for p in &mut self.parts {
            if p.len > 0 {
                p.now = p.queue[p.head];
                p.head = (p.head + 1) % DEPTH;
                p.len -= 1;
            } else {
                p.now = [0; SAMPLES_PER_PACKET];
            }
        }
        let mut sum = [0i32; SAMPLES_PER_PACKET];
        for i in 0..self.parts.len() {
            sum.fill(0);
            let listener = &self.parts[i];
            for speaker in &self.parts {
                if listener.hears(speaker) {
                    for (acc, s) in sum.iter_mut().zip(&speaker.now) {
                        *acc += *s as i32;
                    }
                }
            }
            let law = listener.law;
            let out = &mut self.parts[i].out;
            for (o, acc) in out.iter_mut().zip(&sum) {
                *o = law.encode((*acc).clamp(i16::MIN as i32, i16::MAX as i32) as i16);
            }
            send(self.parts[i].call, &self.parts[i].out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: CallId = CallId(1);
    const B: CallId = CallId(2);
    const C: CallId = CallId(3);

    /// 20 ms of a `hz` tone at `amp`, starting at sample `at`, in `law`.
    fn tone(law: Law, hz: f64, amp: f64, at: usize) -> Vec<u8> {
        (0..SAMPLES_PER_PACKET)
            .map(|i| {
                let t = (at + i) as f64 / 8000.0;
                law.encode((amp * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16)
            })
            .collect()
    }

    fn energy(samples: &[i16], hz: f64) -> f64 {
        let w = 2.0 * std::f64::consts::PI * hz / 8000.0;
        let coeff = 2.0 * w.cos();
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for &x in samples {
            let s0 = x as f64 + coeff * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        (s1 * s1 + s2 * s2 - coeff * s1 * s2) / samples.len() as f64
    }

    /// Runs `ticks` of the three tones (A 500 Hz, B 1,000 Hz, C 1,500 Hz)
    /// and returns what each heard, decoded.
    fn three(mixer: &mut Mixer, ticks: usize) -> [Vec<i16>; 3] {
        let mut heard: [Vec<i16>; 3] = Default::default();
        for t in 0..ticks {
            let at = t * SAMPLES_PER_PACKET;
            mixer.push(A, &tone(Law::Mu, 500.0, 8000.0, at));
            mixer.push(B, &tone(Law::A, 1000.0, 8000.0, at));
            mixer.push(C, &tone(Law::Mu, 1500.0, 8000.0, at));
            mixer.mix(|call, payload| {
                let (i, law) = match call {
                    A => (0, Law::Mu),
                    B => (1, Law::A),
                    _ => (2, Law::Mu),
                };
                heard[i].extend(payload.iter().map(|b| law.decode(*b)));
            });
        }
        heard
    }

    /// Which of the three tones `samples` carries.
    fn tones_in(samples: &[i16]) -> [bool; 3] {
        let e = [500.0, 1000.0, 1500.0].map(|hz| energy(samples, hz));
        let loudest = e.iter().cloned().fold(0.0, f64::max);
        e.map(|x| x > loudest / 100.0 && x > 1e4)
    }

    #[test]
    fn each_participant_hears_the_others_and_not_themselves() {
        let mut m = Mixer::new();
        m.join(A, Law::Mu, Role::Caller, Audience::All);
        m.join(B, Law::A, Role::Agent, Audience::All);
        m.join(C, Law::Mu, Role::Agent, Audience::All);
        let heard = three(&mut m, 50);
        assert_eq!(tones_in(&heard[0]), [false, true, true]);
        assert_eq!(tones_in(&heard[1]), [true, false, true]);
        assert_eq!(tones_in(&heard[2]), [true, true, false]);
    }

    #[test]
    fn a_whisper_reaches_the_agent_only_and_a_listener_no_one() {
        let mut m = Mixer::new();
        m.join(A, Law::Mu, Role::Caller, Audience::All);
        m.join(B, Law::A, Role::Agent, Audience::All);
        m.join(C, Law::Mu, Role::Supervisor, Audience::Agents);
        let heard = three(&mut m, 50);
        assert_eq!(tones_in(&heard[0]), [false, true, false], "the caller");
        assert_eq!(tones_in(&heard[1]), [true, false, true], "the agent");
        assert_eq!(tones_in(&heard[2]), [true, true, false], "the supervisor");
        // Listen: the supervisor hears both and is heard by no one.
        m.join(C, Law::Mu, Role::Supervisor, Audience::Nobody);
        let heard = three(&mut m, 50);
        assert_eq!(tones_in(&heard[0]), [false, true, false]);
        assert_eq!(tones_in(&heard[1]), [true, false, false]);
        assert_eq!(tones_in(&heard[2]), [true, true, false]);
    }

    #[test]
    fn loud_voices_are_clipped_not_wrapped() {
        let mut m = Mixer::new();
        m.join(A, Law::Mu, Role::Caller, Audience::All);
        m.join(B, Law::Mu, Role::Agent, Audience::All);
        m.join(C, Law::Mu, Role::Agent, Audience::All);
        let loud = [Law::Mu.encode(30000); SAMPLES_PER_PACKET];
        m.push(B, &loud);
        m.push(C, &loud);
        let mut to_a = Vec::new();
        m.mix(|call, p| {
            if call == A {
                to_a = p.to_vec();
            }
        });
        assert!(to_a.iter().all(|b| Law::Mu.decode(*b) > 30000), "{to_a:?}");
    }

    #[test]
    fn a_gap_is_silence_and_a_backlog_is_cut_to_the_newest() {
        let mut m = Mixer::new();
        m.join(A, Law::Mu, Role::Caller, Audience::All);
        m.join(B, Law::Mu, Role::Agent, Audience::All);
        let mut heard = Vec::new();
        m.mix(|call, p| {
            if call == B {
                heard.push(p.iter().map(|b| Law::Mu.decode(*b).abs()).max().unwrap());
            }
        });
        assert!(heard[0] < 10, "nothing came: silence");
        for level in [1000, 2000, 3000, 4000, 5000] {
            m.push(A, &[Law::Mu.encode(level); SAMPLES_PER_PACKET]);
        }
        assert_eq!(m.overflows, 2);
        heard.clear();
        for _ in 0..4 {
            m.mix(|call, p| {
                if call == B {
                    heard.push(Law::Mu.decode(p[0]));
                }
            });
        }
        // The three newest, in order, then silence.
        assert!((2850..3150).contains(&heard[0]), "{heard:?}");
        assert!((4750..5250).contains(&heard[2]), "{heard:?}");
        assert!(heard[3].abs() < 10, "{heard:?}");
        m.leave(A);
        assert_eq!(m.len(), 1);
    }
}
