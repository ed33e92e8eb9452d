//! One call's RTP, sans-IO, in two halves that live in different tasks:
//! [`RtpStream`] plays prompts, paced by the caller of
//! [`RtpStream::poll_packets`] (one shared driver for all calls), and
//! [`RtpReceiver`] reads the caller's packets (symmetric RTP latching and
//! RFC 4733 digits) without allocating per packet.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtp_rs::{RtpPacketBuilder, RtpReader, Seq};

use super::dtmf::Rfc4733Detector;
use super::g711::Law;
use super::prompt::Prompt;

/// 20 ms of 8 kHz audio.
pub const SAMPLES_PER_PACKET: usize = 160;
pub const PACKET_INTERVAL: Duration = Duration::from_millis(20);
/// Largest packet we build: 12-byte header + 160 bytes.
pub const MAX_PACKET: usize = 12 + SAMPLES_PER_PACKET;
/// A driver that falls behind sends at most this many packets at once and
/// skips the rest, rather than flooding the caller.
const MAX_BURST: u64 = 5;

/// Negotiated parameters of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamParams {
    pub remote: SocketAddr,
    pub codec_pt: u8,
    pub law: Law,
    pub dtmf_pt: Option<u8>,
}

#[derive(Debug)]
struct Playout {
    prompt: Arc<Prompt>,
    /// Instant of packet 0 of this prompt.
    start: Instant,
    /// Packets of the prompt sent (or skipped) so far.
    next: u64,
    /// RTP timestamp of packet 0.
    first_ts: u32,
    /// Packet 0 begins a talkspurt (the marker bit): not when this prompt
    /// follows the last one without a gap.
    marked: bool,
}

/// Prompts closer than this to the end of the last one go on from it: the
/// same 20 ms cadence, timestamps on from its last packet, no marker.
const GAPLESS: Duration = Duration::from_millis(60);

/// What the receive side learned from one datagram.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    /// Not RTP, or a payload type we do not expect.
    Ignored,
    /// From somewhere other than the caller's media: dropped whole (not
    /// relayed, no key, no audio).
    Foreign,
    Audio,
    Digit(char),
}

#[derive(Debug)]
pub struct RtpStream {
    params: StreamParams,
    ssrc: u32,
    seq: Seq,
    /// Timestamp at `epoch`; timestamps advance with wall time between prompts.
    ts_base: u32,
    epoch: Instant,
    playout: Option<Playout>,
    /// Live audio (a mix): when the last packet went and its timestamp.
    live: Option<(Instant, u32)>,
    /// Where the last prompt ended: when its next packet would have been
    /// due, and that packet's timestamp.
    ended: Option<(Instant, u32)>,
    pub packets_sent: u64,
}

impl RtpStream {
    pub fn new(now: Instant, params: StreamParams, ssrc: u32, seq: u16, ts_base: u32) -> Self {
        Self {
            params,
            ssrc,
            seq: Seq::from(seq),
            ts_base,
            epoch: now,
            playout: None,
            live: None,
            ended: None,
            packets_sent: 0,
        }
    }

    /// Sends 20 ms of live audio (a mixer's output) now. Sequence numbers
    /// go on from the prompts'; timestamps advance 160 a packet, taken
    /// from the clock again (with the marker bit) after a pause.
    pub fn send_live(
        &mut self,
        now: Instant,
        payload: &[u8],
        buf: &mut [u8; MAX_PACKET],
        mut send: impl FnMut(&[u8], SocketAddr),
    ) {
        self.playout = None;
        self.ended = None;
        let (ts, marked) = match self.live {
            Some((at, ts)) if now.saturating_duration_since(at) < Duration::from_millis(100) => {
                (ts.wrapping_add(SAMPLES_PER_PACKET as u32), false)
            }
            _ => {
                let elapsed = now.saturating_duration_since(self.epoch).as_micros() as u64;
                (self.ts_base.wrapping_add((elapsed * 8 / 1000) as u32), true)
            }
        };
        let n = payload.len().min(SAMPLES_PER_PACKET);
        let len = RtpPacketBuilder::new()
            .payload_type(self.params.codec_pt)
            .marked(marked)
            .ssrc(self.ssrc)
            .sequence(self.seq)
            .timestamp(ts)
            .payload(&payload[..n])
            .build_into(buf)
            .expect("buffer fits header and 20 ms");
        send(&buf[..len], self.params.remote);
        self.seq = self.seq.next();
        self.packets_sent += 1;
        self.live = Some((now, ts));
    }

    /// The stream's G.711 law.
    pub fn law(&self) -> crate::media::g711::Law {
        self.params.law
    }

    /// Where packets go now.
    pub fn remote(&self) -> SocketAddr {
        self.params.remote
    }

    /// Sends from now on to `remote` (the caller's real RTP source).
    pub fn set_remote(&mut self, remote: SocketAddr) {
        self.params.remote = remote;
    }

    pub fn is_playing(&self) -> bool {
        self.playout.is_some()
    }

    /// Starts `prompt` now, replacing any prompt playing. Right after the
    /// last one ended (a list of prompts, the hold music looping) it goes
    /// on from it: same cadence, timestamps on, no new talkspurt.
    pub fn play(&mut self, now: Instant, prompt: Arc<Prompt>) {
        let playout = match self.ended.take() {
            Some((at, ts))
                if self.playout.is_none() && now.saturating_duration_since(at) < GAPLESS =>
            {
                Playout {
                    prompt,
                    start: at,
                    next: 0,
                    first_ts: ts,
                    marked: false,
                }
            }
            _ => {
                let elapsed = now.saturating_duration_since(self.epoch).as_micros() as u64;
                let samples = elapsed * 8 / 1000;
                Playout {
                    prompt,
                    start: now,
                    next: 0,
                    first_ts: self.ts_base.wrapping_add(samples as u32),
                    marked: true,
                }
            }
        };
        self.playout = Some(playout);
    }

    pub fn stop(&mut self) {
        self.playout = None;
        self.ended = None;
    }

    /// When the next packet of the prompt playing is due (none: nothing
    /// plays). Packet `i` of a prompt is due `i` × 20 ms after its start.
    pub fn next_due(&self) -> Option<Instant> {
        let p = self.playout.as_ref()?;
        Some(p.start + PACKET_INTERVAL * p.next as u32)
    }

    /// Writes every packet due at `now` into `buf` and hands it to `send`.
    /// Returns true when the prompt has just finished.
    pub fn poll_packets(
        &mut self,
        now: Instant,
        buf: &mut [u8; MAX_PACKET],
        mut send: impl FnMut(&[u8], SocketAddr),
    ) -> bool {
        let Some(p) = self.playout.as_mut() else {
            return false;
        };
        let audio = p.prompt.encoded(self.params.law);
        let total = audio.len().div_ceil(SAMPLES_PER_PACKET) as u64;
        // Nothing before the prompt's start (a prompt chained to the last
        // one starts when that one's next packet would have gone).
        let Some(elapsed) = now.checked_duration_since(p.start) else {
            return false;
        };
        let due = (elapsed.as_millis() as u64 / 20 + 1).min(total);
        if due > p.next + MAX_BURST {
            p.next = due - MAX_BURST;
        }
        while p.next < due {
            let i = p.next as usize;
            let chunk =
                &audio[i * SAMPLES_PER_PACKET..((i + 1) * SAMPLES_PER_PACKET).min(audio.len())];
            let mut payload = [self.params.law.silence(); SAMPLES_PER_PACKET];
            payload[..chunk.len()].copy_from_slice(chunk);
            let ts = p.first_ts.wrapping_add((i * SAMPLES_PER_PACKET) as u32);
            let len = RtpPacketBuilder::new()
                .payload_type(self.params.codec_pt)
                .marked(i == 0 && p.marked)
                .ssrc(self.ssrc)
                .sequence(self.seq)
                .timestamp(ts)
                .payload(&payload)
                .build_into(buf)
                .expect("buffer fits header and 20 ms");
            send(&buf[..len], self.params.remote);
            self.seq = self.seq.next();
            self.packets_sent += 1;
            p.next += 1;
        }
        if p.next >= total {
            let end = (
                p.start + PACKET_INTERVAL * total as u32,
                p.first_ts
                    .wrapping_add((total as usize * SAMPLES_PER_PACKET) as u32),
            );
            self.playout = None;
            self.ended = Some(end);
            return true;
        }
        false
    }
}

impl RtpReceiver {
    fn track_sequence(&mut self, seq: u16) {
        let Some(_) = self.first_seq else {
            self.first_seq = Some(seq as u64);
            self.highest_seq = seq as u64;
            return;
        };
        // The extended number nearest the highest so far (within half the
        // sequence space): late packets fall below it, wraps go above.
        let cycle = self.highest_seq & !0xffff;
        let candidates = [cycle.wrapping_sub(0x1_0000), cycle, cycle + 0x1_0000]
            .map(|c| c.wrapping_add(seq as u64));
        let ext = candidates
            .into_iter()
            .filter(|c| *c < u64::MAX / 2)
            .min_by_key(|c| c.abs_diff(self.highest_seq))
            .unwrap_or(seq as u64);
        self.highest_seq = self.highest_seq.max(ext);
    }

    /// Packets expected (by sequence number) but not received: the
    /// cumulative loss of RFC 3550 (duplicates can make up for losses).
    pub fn lost(&self) -> u64 {
        let Some(first) = self.first_seq else {
            return 0;
        };
        (self.highest_seq - first + 1).saturating_sub(self.packets_received)
    }
}

/// The receive half: what arrives on the call's RTP port.
#[derive(Debug)]
pub struct RtpReceiver {
    codec_pt: u8,
    dtmf_pt: Option<u8>,
    detector: Rfc4733Detector,
    /// Where the SDP said the media comes from.
    offered: SocketAddr,
    /// Where it does come from (learned from the first packet).
    source: Option<SocketAddr>,
    pub packets_received: u64,
    /// Packets from elsewhere, dropped.
    pub foreign: u64,
    /// The first sequence number and the highest since, extended over
    /// wrap-arounds (RFC 3550 A.1), for the loss count.
    first_seq: Option<u64>,
    highest_seq: u64,
}

impl RtpReceiver {
    pub fn new(params: &StreamParams) -> Self {
        Self {
            codec_pt: params.codec_pt,
            dtmf_pt: params.dtmf_pt,
            detector: Rfc4733Detector::default(),
            offered: params.remote,
            source: None,
            packets_received: 0,
            foreign: 0,
            first_seq: None,
            highest_seq: 0,
        }
    }

    /// The phone offered `offered` anew (a re-INVITE): its media is taken
    /// from there, or learned again from the first that sends.
    pub fn reoffer(&mut self, offered: SocketAddr) {
        self.offered = offered;
        self.source = None;
    }

    /// Feeds one datagram from `from`. The second value is the caller's
    /// new RTP source when it changed: symmetric RTP answers where the
    /// media really comes from (NAT rewrites what the SDP says).
    ///
    /// Which source is the caller's (as Asterisk's `strictrtp`): the first
    /// that sends, or the address the SDP offered whenever media comes from
    /// there; nobody else for the rest of the call. Anyone else who learns
    /// the port (they are handed out in order) can neither press keys in
    /// the call, be heard in it, nor take its audio away, however much
    /// they send. (A caller whose NAT binding moves mid-call, rare, is not
    /// heard again until the call ends.)
    pub fn handle_datagram(
        &mut self,
        from: SocketAddr,
        datagram: &[u8],
    ) -> (Received, Option<SocketAddr>) {
        let moved = match self.source {
            Some(source) if source == from => None,
            Some(_) if from != self.offered => {
                self.foreign += 1;
                return (Received::Foreign, None);
            }
            _ => Some(from),
        };
        let Ok(rtp) = RtpReader::new(datagram) else {
            return (Received::Ignored, None);
        };
        let pt = rtp.payload_type();
        let is_dtmf = Some(pt) == self.dtmf_pt;
        if rtp.version() != 2 || (pt != self.codec_pt && !is_dtmf) {
            return (Received::Ignored, None);
        }
        self.packets_received += 1;
        self.track_sequence(u16::from(rtp.sequence_number()));
        self.source = Some(from);
        let received = match is_dtmf {
            true => match self.detector.handle_payload(rtp.timestamp(), rtp.payload()) {
                Some(d) => Received::Digit(d),
                None => Received::Audio,
            },
            false => Received::Audio,
        };
        (received, moved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> StreamParams {
        StreamParams {
            remote: "127.0.0.1:16000".parse().unwrap(),
            codec_pt: 0,
            law: Law::Mu,
            dtmf_pt: Some(101),
        }
    }

    #[test]
    fn prompt_is_paced_with_consecutive_sequence_and_timestamps() {
        let t0 = Instant::now();
        let mut s = RtpStream::new(t0, params(), 0xabcd, 65534, 1000);
        let prompt = Arc::new(Prompt::from_samples("p", &vec![100; 8000 / 10 * 3])); // 300 ms
        s.play(t0, prompt);
        let mut buf = [0u8; MAX_PACKET];
        let mut packets = Vec::new();
        let mut finished_at = None;
        for tick in 0..40u64 {
            let now = t0 + Duration::from_millis(tick * 10);
            if s.poll_packets(now, &mut buf, |p, _| packets.push((tick, p.to_vec()))) {
                finished_at = Some(tick);
            }
        }
        assert_eq!(packets.len(), 15);
        assert_eq!(finished_at, Some(28));
        for (i, (tick, p)) in packets.iter().enumerate() {
            let r = RtpReader::new(p).unwrap();
            assert_eq!(*tick, i as u64 * 2, "one packet every 20 ms");
            assert_eq!(
                u16::from(r.sequence_number()),
                65534u16.wrapping_add(i as u16)
            );
            assert_eq!(r.timestamp(), 1000 + 160 * i as u32);
            assert_eq!(r.mark(), i == 0);
            assert_eq!(r.ssrc(), 0xabcd);
            assert_eq!(r.payload().len(), 160);
        }
    }

    #[test]
    fn a_prompt_right_after_another_goes_on_in_the_same_talkspurt() {
        let t0 = Instant::now();
        let mut s = RtpStream::new(t0, params(), 7, 100, 5000);
        let prompt = || Arc::new(Prompt::from_samples("p", &[100; 480])); // 60 ms
        s.play(t0, prompt());
        assert_eq!(s.next_due(), Some(t0));
        let mut buf = [0u8; MAX_PACKET];
        let mut sent = Vec::new();
        let mut at = t0;
        // The driver wakes at each deadline; the next prompt starts 3 ms
        // after the first ended (the list's next, or the switch's answer).
        while let Some(due) = s.next_due() {
            at = due;
            s.poll_packets(at, &mut buf, |p, _| sent.push((at, p.to_vec())));
        }
        s.play(at + Duration::from_millis(3), prompt());
        assert_eq!(
            s.next_due(),
            Some(t0 + Duration::from_millis(60)),
            "on the same cadence"
        );
        // Woken early (for another stream): nothing goes before its time.
        s.poll_packets(at + Duration::from_millis(5), &mut buf, |p, _| {
            sent.push((at, p.to_vec()))
        });
        assert_eq!(sent.len(), 3);
        while let Some(due) = s.next_due() {
            s.poll_packets(due, &mut buf, |p, _| sent.push((due, p.to_vec())));
        }
        assert_eq!(sent.len(), 6);
        for (i, (at, p)) in sent.iter().enumerate() {
            let r = RtpReader::new(p).unwrap();
            assert_eq!(*at, t0 + Duration::from_millis(20 * i as u64));
            assert_eq!(u16::from(r.sequence_number()), 100 + i as u16);
            assert_eq!(r.timestamp(), 5000 + 160 * i as u32);
            assert_eq!(r.mark(), i == 0, "one talkspurt");
        }
        // After a pause, a new talkspurt: marked, timestamps from the clock.
        let later = t0 + Duration::from_secs(2);
        s.play(later, prompt());
        let mut first = None;
        s.poll_packets(later, &mut buf, |p, _| {
            let r = RtpReader::new(p).unwrap();
            first = Some((r.mark(), r.timestamp()));
        });
        assert_eq!(first, Some((true, 5000 + 16000)));
    }

    #[test]
    fn timestamps_follow_wall_time_between_prompts() {
        let t0 = Instant::now();
        let mut s = RtpStream::new(t0, params(), 1, 0, 0);
        s.play(
            t0 + Duration::from_secs(1),
            Arc::new(Prompt::from_samples("p", &[0; 160])),
        );
        let mut buf = [0u8; MAX_PACKET];
        let mut ts = None;
        s.poll_packets(t0 + Duration::from_secs(1), &mut buf, |p, _| {
            ts = Some(RtpReader::new(p).unwrap().timestamp())
        });
        assert_eq!(ts, Some(8000));
    }

    #[test]
    fn late_driver_skips_instead_of_flooding() {
        let t0 = Instant::now();
        let mut s = RtpStream::new(t0, params(), 1, 0, 0);
        s.play(t0, Arc::new(Prompt::from_samples("p", &[0; 16000])));
        let mut buf = [0u8; MAX_PACKET];
        let mut n = 0;
        s.poll_packets(t0 + Duration::from_secs(1), &mut buf, |_, _| n += 1);
        assert_eq!(n, MAX_BURST);
    }

    #[test]
    fn latches_to_actual_source_and_detects_digits() {
        let mut s = RtpReceiver::new(&params());
        let nat: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let pkt = RtpPacketBuilder::new()
            .payload_type(101)
            .ssrc(9)
            .timestamp(480)
            .payload(&[7, 0x80, 0, 160])
            .build()
            .unwrap();
        assert_eq!(
            s.handle_datagram(nat, &pkt),
            (Received::Digit('7'), Some(nat))
        );
        assert_eq!(s.handle_datagram(nat, &pkt), (Received::Audio, None));
        assert_eq!(
            s.handle_datagram(nat, b"not rtp"),
            (Received::Ignored, None)
        );
    }

    #[test]
    fn another_source_is_dropped_for_the_rest_of_the_call_but_the_offered_one_is_taken() {
        let mut s = RtpReceiver::new(&params());
        let caller: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let stranger: SocketAddr = "127.0.0.9:5000".parse().unwrap();
        let key = |digit: u8, ts: u32| {
            RtpPacketBuilder::new()
                .payload_type(101)
                .ssrc(9)
                .timestamp(ts)
                .payload(&[digit, 0x80, 0, 160])
                .build()
                .unwrap()
        };
        assert_eq!(
            s.handle_datagram(caller, &key(1, 160)),
            (Received::Digit('1'), Some(caller))
        );
        // A stranger who guessed the port presses 9: not a key in the
        // call, however long they go on, nor where its audio goes.
        for i in 0..50 {
            assert_eq!(
                s.handle_datagram(stranger, &key(9, 320 + i * 160)),
                (Received::Foreign, None)
            );
        }
        assert_eq!((s.foreign, s.packets_received), (50, 1));
        // Media from where the SDP said is always the caller's.
        let offered = params().remote;
        assert_eq!(
            s.handle_datagram(offered, &key(2, 9000)),
            (Received::Digit('2'), Some(offered))
        );
        assert_eq!(
            s.handle_datagram(caller, &key(3, 9160)),
            (Received::Foreign, None)
        );
        // A re-INVITE moves it (the phone changed networks): learned again.
        let moved: SocketAddr = "127.0.0.3:7000".parse().unwrap();
        s.reoffer(moved);
        let nat: SocketAddr = "127.0.0.4:7100".parse().unwrap();
        assert_eq!(
            s.handle_datagram(nat, &key(4, 9320)),
            (Received::Digit('4'), Some(nat))
        );
        assert_eq!(
            s.handle_datagram(offered, &key(5, 9480)),
            (Received::Foreign, None),
            "the old offer is history"
        );
    }

    #[test]
    fn losses_are_counted_by_sequence_number_across_the_wrap() {
        let mut s = RtpReceiver::new(&params());
        let from: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let mut feed = |seq: u16| {
            let pkt = RtpPacketBuilder::new()
                .payload_type(0)
                .ssrc(9)
                .sequence(Seq::from(seq))
                .payload(&[0xff; 160])
                .build()
                .unwrap();
            s.handle_datagram(from, &pkt);
        };
        // 65530 .. 5 is 12 packets; 65533 and 2 never come, 0 comes late.
        for seq in [65530, 65531, 65532, 65534, 65535, 1, 0, 3, 4, 5] {
            feed(seq);
        }
        assert_eq!(s.packets_received, 10);
        assert_eq!(s.lost(), 2);
        assert_eq!(RtpReceiver::new(&params()).lost(), 0);
    }
}
