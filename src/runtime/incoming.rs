//! A call's incoming RTP, read by the media worker that also sends its
//! packets: keys pressed (to the switch), the caller's real address
//! (symmetric RTP), the relay to the other leg of a bridge, what a mixed
//! conversation hears, the conversation's recording and the voice
//! message being recorded.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::{error, info};

use super::Input;
use super::media::{ConversationIn, MAX_FRAME, MediaIn, RtpCounts, RtpSocket};
use crate::call::{CallId, MediaEvent};
use crate::media::conversation::Side;
use crate::media::g711::Law;
use crate::media::record::Recorder;
use crate::media::rtp::{Received, RtpReceiver, SAMPLES_PER_PACKET};

/// Orders for a call's incoming side: recording, and relaying to the
/// other leg of a bridge (its socket and where its peer is).
#[derive(Debug)]
pub enum Listen {
    Record {
        path: PathBuf,
        max: Duration,
        silence: Duration,
    },
    StopRecording,
    RelayTo(Arc<RtpSocket>, SocketAddr),
    /// On hold: what comes in is not passed on.
    RelayOff,
    /// The conversation's recording takes this leg's audio on that side
    /// (none: no more).
    Conversation(Option<(Side, mpsc::UnboundedSender<ConversationIn>)>),
    /// What comes in goes to the mixer (or no longer).
    Mix(bool),
    /// The phone's re-INVITE offered its media from here.
    Offered(SocketAddr),
}

/// Where what a call hears goes: the switch, the media edge's control
/// task, and the runtime that writes finished recordings.
#[derive(Clone)]
pub struct Outlets {
    pub to_switch: mpsc::UnboundedSender<Input>,
    pub control: mpsc::UnboundedSender<MediaIn>,
    pub runtime: tokio::runtime::Handle,
}

/// How often a recording checks for a caller who stopped sending RTP.
pub const RECORD_CHECK: Duration = Duration::from_millis(200);

pub struct Incoming {
    call: CallId,
    receiver: RtpReceiver,
    codec_pt: u8,
    law: Law,
    counts: Arc<RtpCounts>,
    /// The recording in progress: where it goes, and when audio last came.
    recording: Option<(Recorder, PathBuf, Instant)>,
    relay: Option<(Arc<RtpSocket>, SocketAddr)>,
    /// The telephone-event last received (its RTP timestamp), and the one
    /// in progress when the relay began: the rest of a key pressed before
    /// the bridge (the caller's 0 for an agent) is not played to the other
    /// side.
    last_event: Option<u32>,
    held_back: Option<u32>,
    conversation: Option<(Side, mpsc::UnboundedSender<ConversationIn>)>,
    mixing: bool,
}

impl std::fmt::Debug for Incoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming")
            .field("call", &self.call)
            .field("recording", &self.recording.is_some())
            .field("relay", &self.relay)
            .field("mixing", &self.mixing)
            .finish_non_exhaustive()
    }
}

impl Incoming {
    pub fn new(
        call: CallId,
        receiver: RtpReceiver,
        (codec_pt, law): (u8, Law),
        counts: Arc<RtpCounts>,
    ) -> Self {
        Self {
            call,
            receiver,
            codec_pt,
            law,
            counts,
            recording: None,
            relay: None,
            last_event: None,
            held_back: None,
            conversation: None,
            mixing: false,
        }
    }

    pub fn is_recording(&self) -> bool {
        self.recording.is_some()
    }

    pub fn order(&mut self, order: Listen, now: Instant, out: &Outlets) {
        match order {
            Listen::Record { path, max, silence } => {
                self.recording = Some((Recorder::new(self.law, max, silence), path, now));
            }
            Listen::StopRecording => {
                if let Some((r, path, _)) = self.recording.take() {
                    finish_recording(self.call, r, path, out);
                }
            }
            Listen::RelayTo(socket, to) => {
                if self.relay.is_none() {
                    self.held_back = self.last_event;
                }
                self.relay = Some((socket, to));
            }
            Listen::RelayOff => self.relay = None,
            Listen::Conversation(c) => self.conversation = c,
            Listen::Mix(on) => self.mixing = on,
            Listen::Offered(addr) => self.receiver.reoffer(addr),
        }
    }

    /// A recording whose caller went quiet (no packets at all) counts the
    /// silence, and ends when it has lasted.
    pub fn check(&mut self, now: Instant, out: &Outlets) {
        let Some((r, _, last)) = self.recording.as_mut() else {
            return;
        };
        let gap = now.saturating_duration_since(*last);
        if gap >= RECORD_CHECK {
            *last = now;
            if r.push_gap(gap).is_some() {
                let (r, path, _) = self.recording.take().expect("checked");
                finish_recording(self.call, r, path, out);
            }
        }
    }

    /// One datagram from `from`.
    pub fn datagram(&mut self, from: SocketAddr, packet: &[u8], now: Instant, out: &Outlets) {
        let call = self.call;
        let (what, moved) = self.receiver.handle_datagram(from, packet);
        if what == Received::Foreign {
            let foreign = self.receiver.foreign;
            self.counts.foreign.store(foreign, Ordering::Relaxed);
            return;
        }
        let rtp = rtp_rs::RtpReader::new(packet).ok();
        // A telephone-event (RFC 4733: not the codec, a 4-byte payload).
        let event = rtp
            .as_ref()
            .filter(|r| r.payload_type() != self.codec_pt && r.payload().len() == 4)
            .map(|r| r.timestamp());
        if event.is_some() {
            self.last_event = event;
        }
        if let Some((socket, to)) = &self.relay {
            if event.is_some() && event == self.held_back {
                self.counts.held_back.fetch_add(1, Ordering::Relaxed);
            } else if socket.try_send_to(packet, *to).is_ok() {
                // Bridged: every packet goes on to the other leg as it came
                // (same codec and event type were negotiated on both legs).
                self.counts.relayed.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.counts
            .received
            .store(self.receiver.packets_received, Ordering::Relaxed);
        self.counts
            .lost
            .store(self.receiver.lost(), Ordering::Relaxed);
        if let Some(addr) = moved {
            let _ = out.control.send(MediaIn::Source(call, addr));
        }
        match what {
            Received::Digit(d) => {
                let _ = out.to_switch.send(Input::Media(call, MediaEvent::Digit(d)));
            }
            Received::Audio => {
                let Some(rtp) = rtp.filter(|r| r.payload_type() == self.codec_pt) else {
                    return;
                };
                let payload = rtp.payload();
                if self.mixing {
                    let mut frame = [0u8; SAMPLES_PER_PACKET];
                    let len = payload.len().min(SAMPLES_PER_PACKET);
                    frame[..len].copy_from_slice(&payload[..len]);
                    let _ = out.control.send(MediaIn::Heard(call, len as u8, frame));
                }
                if let Some((side, tx)) = &self.conversation {
                    let mut frame = [0u8; MAX_FRAME];
                    let len = payload.len().min(MAX_FRAME);
                    frame[..len].copy_from_slice(&payload[..len]);
                    let _ = tx.send(ConversationIn::Audio {
                        side: *side,
                        ssrc: rtp.ssrc(),
                        ts: rtp.timestamp(),
                        at: now,
                        len: len as u16,
                        payload: frame,
                    });
                }
                if let Some((r, _, last)) = self.recording.as_mut() {
                    *last = now;
                    if r.push(payload).is_some() {
                        let (r, path, _) = self.recording.take().expect("checked");
                        finish_recording(call, r, path, out);
                    }
                }
            }
            Received::Ignored | Received::Foreign => {}
        }
    }
}

/// Writes the WAV (on the runtime's blocking pool, not the worker) and
/// tells the switch.
fn finish_recording(call: CallId, recorder: Recorder, path: PathBuf, out: &Outlets) {
    let to_switch = out.to_switch.clone();
    out.runtime.spawn_blocking(move || {
        let duration = recorder.duration();
        if let Err(e) = recorder.write(&path) {
            error!(%call, file = %path.display(), error = %e, "recording not written");
        } else {
            info!(%call, file = %path.display(), ms = duration.as_millis() as u64, "recording written");
        }
        let _ = to_switch.send(Input::Media(
            call,
            MediaEvent::RecordingFinished {
                file: path.display().to_string(),
                duration,
            },
        ));
    });
}
