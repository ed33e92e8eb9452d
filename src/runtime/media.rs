//! The media edge: one RTP socket per call, one receive task per socket, and
//! one pacing task for all calls that sends whatever packets are due every
//! 10 ms (a 20 ms packet is then never more than 10 ms late), instead of a
//! sleeping task per call.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use super::Input;
use crate::call::{CallId, MediaCommand, MediaEvent};
use crate::media::prompt::PromptSet;
use crate::media::rtp::{MAX_PACKET, Received, RtpReceiver, RtpStream};

const TICK: Duration = Duration::from_millis(10);

/// Messages to the pacing task.
#[derive(Debug)]
pub enum MediaIn {
    Command(MediaCommand),
    /// The caller's RTP comes from a new address (symmetric RTP).
    Source(CallId, SocketAddr),
}

struct Session {
    socket: Arc<UdpSocket>,
    stream: RtpStream,
    receiver: JoinHandle<()>,
    /// Packets the receive task accepted (written there, read at close).
    received: Arc<AtomicU64>,
}

impl Drop for Session {
    fn drop(&mut self) {
        // The receive task holds the other reference to the socket; ending it
        // closes the port.
        self.receiver.abort();
    }
}

/// Starts the pacing task; returns its inbox.
pub fn spawn(
    ip: std::net::IpAddr,
    prompts: PromptSet,
    to_switch: mpsc::UnboundedSender<Input>,
) -> (mpsc::UnboundedSender<MediaIn>, JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let handle = tokio::spawn(pace(ip, prompts, rx, tx.clone(), to_switch));
    (tx, handle)
}

async fn pace(
    ip: std::net::IpAddr,
    prompts: PromptSet,
    mut rx: mpsc::UnboundedReceiver<MediaIn>,
    me: mpsc::UnboundedSender<MediaIn>,
    to_switch: mpsc::UnboundedSender<Input>,
) {
    let mut sessions: HashMap<CallId, Session> = HashMap::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut buf = [0u8; MAX_PACKET];
    let mut finished = Vec::new();
    loop {
        tokio::select! {
            msg = rx.recv() => {
                let Some(msg) = msg else { break };
                handle(msg, ip, &prompts, &mut sessions, &me, &to_switch);
            }
            _ = tick.tick(), if !sessions.is_empty() => {
                let now = Instant::now();
                for (call, s) in sessions.iter_mut() {
                    let socket = &s.socket;
                    let done = s.stream.poll_packets(now, &mut buf, |pkt, to| {
                        // Never wait on a full socket buffer: a lost packet
                        // is better than a late one for every other call.
                        let _ = socket.try_send_to(pkt, to);
                    });
                    if done {
                        finished.push(*call);
                    }
                }
                for call in finished.drain(..) {
                    let _ = to_switch.send(Input::Media(call, MediaEvent::PromptFinished));
                }
            }
        }
    }
}

fn handle(
    msg: MediaIn,
    ip: std::net::IpAddr,
    prompts: &PromptSet,
    sessions: &mut HashMap<CallId, Session>,
    me: &mpsc::UnboundedSender<MediaIn>,
    to_switch: &mpsc::UnboundedSender<Input>,
) {
    match msg {
        MediaIn::Command(MediaCommand::Open { call, port, params }) => {
            let bound = std::net::UdpSocket::bind(SocketAddr::new(ip, port))
                .and_then(|s| s.set_nonblocking(true).map(|_| s))
                .and_then(UdpSocket::from_std);
            let event = match bound {
                Ok(socket) => {
                    let socket = Arc::new(socket);
                    let received = Arc::new(AtomicU64::new(0));
                    let receiver = tokio::spawn(receive(
                        call,
                        socket.clone(),
                        RtpReceiver::new(&params),
                        received.clone(),
                        me.clone(),
                        to_switch.clone(),
                    ));
                    let stream = RtpStream::new(
                        Instant::now(),
                        params,
                        rand::random(),
                        rand::random(),
                        rand::random(),
                    );
                    sessions.insert(
                        call,
                        Session {
                            socket,
                            stream,
                            receiver,
                            received,
                        },
                    );
                    MediaEvent::Opened
                }
                Err(e) => {
                    warn!(%call, port, error = %e, "cannot bind RTP port");
                    MediaEvent::OpenFailed
                }
            };
            let _ = to_switch.send(Input::Media(call, event));
        }
        MediaIn::Command(MediaCommand::Play { call, prompt }) => {
            let Some(s) = sessions.get_mut(&call) else {
                return;
            };
            match prompts.get(&prompt) {
                Some(p) => s.stream.play(Instant::now(), p),
                None => {
                    // Prompts are checked at start-up; keep the call moving anyway.
                    error!(%call, prompt, "prompt not loaded");
                    let _ = to_switch.send(Input::Media(call, MediaEvent::PromptFinished));
                }
            }
        }
        MediaIn::Command(MediaCommand::Stop { call }) => {
            if let Some(s) = sessions.get_mut(&call) {
                s.stream.stop();
            }
        }
        MediaIn::Command(MediaCommand::Close { call }) => {
            if let Some(s) = sessions.remove(&call) {
                info!(
                    %call,
                    port = s.socket.local_addr().map(|a| a.port()).unwrap_or_default(),
                    rtp_sent = s.stream.packets_sent,
                    rtp_received = s.received.load(Ordering::Relaxed),
                    "media closed"
                );
            }
        }
        MediaIn::Source(call, addr) => {
            if let Some(s) = sessions.get_mut(&call) {
                s.stream.set_remote(addr);
            }
        }
    }
}

async fn receive(
    call: CallId,
    socket: Arc<UdpSocket>,
    mut receiver: RtpReceiver,
    received: Arc<AtomicU64>,
    media: mpsc::UnboundedSender<MediaIn>,
    to_switch: mpsc::UnboundedSender<Input>,
) {
    let mut buf = [0u8; 2048];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            // ICMP port unreachable surfaces as an error on Linux; keep listening.
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let (what, moved) = receiver.handle_datagram(from, &buf[..n]);
        received.store(receiver.packets_received, Ordering::Relaxed);
        if let Some(addr) = moved {
            let _ = media.send(MediaIn::Source(call, addr));
        }
        if let Received::Digit(d) = what {
            let _ = to_switch.send(Input::Media(call, MediaEvent::Digit(d)));
        }
    }
}
