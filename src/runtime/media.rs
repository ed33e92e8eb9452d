//! The media edge: one RTP socket per call, the media workers
//! (runtime::workers) sending and receiving every call's packets, and one
//! control task that takes the switch's orders: it opens and closes
//! sessions, tells the workers what to play, record and relay, bridges,
//! mixes conversations and watches for callers gone silent. The control
//! task runs on the switch's own thread (an order reaches it without
//! waking another thread: those wakes, and the runtime thread's sleeps
//! after them, cost a short call about a tenth of its CPU).
//! Each stream keeps its own 20 ms cadence, streams spread over the phase
//! as their calls came. A call's prompts play one after the other on one
//! cadence.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::{error, info, warn};

use super::Input;
use super::incoming::{Incoming, Listen, Outlets};
use super::warm::WarmSockets;
use super::workers::{Lateness, Order, Workers};
use crate::call::{CallId, MediaCommand, MediaEvent};
use crate::ids::IdMap;
use crate::media::conversation::{Conversation, Side};
use crate::media::g711::Law;
use crate::media::mixer::Mixer;
use crate::media::prompt::{Prompt, PromptSet};
use crate::media::rtp::{PACKET_INTERVAL, RtpReceiver, RtpStream, SAMPLES_PER_PACKET};

/// A call's RTP socket, nonblocking: read and written by its media
/// worker, written by the other leg's worker when bridged. Not registered
/// with the runtime: the worker's own epoll set watches it. When the last
/// of them lets go, it goes back, still bound, to the `WarmSockets` it
/// came with, for the next call on its port.
#[derive(Debug)]
pub struct RtpSocket {
    socket: std::mem::ManuallyDrop<std::net::UdpSocket>,
    /// Where it goes when dropped, and its port.
    home: Arc<WarmSockets>,
    port: u16,
}

impl RtpSocket {
    /// Takes a nonblocking socket bound to `port`; given to `warm` when
    /// dropped.
    pub fn kept_in(socket: std::net::UdpSocket, port: u16, warm: Arc<WarmSockets>) -> Self {
        Self {
            socket: std::mem::ManuallyDrop::new(socket),
            home: warm,
            port,
        }
    }

    /// Takes a bound socket, made nonblocking here; closed when dropped
    /// (a store with no room keeps nothing).
    #[cfg(test)]
    pub fn new(socket: std::net::UdpSocket) -> std::io::Result<Self> {
        socket.set_nonblocking(true)?;
        let port = socket.local_addr()?.port();
        Ok(Self::kept_in(socket, port, Arc::new(WarmSockets::new(0))))
    }

    /// What has come in, if anything (`WouldBlock` when nothing has).
    pub fn recv_from(&self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        self.socket.recv_from(buf)
    }

    /// Sends now or not at all (a full socket buffer drops the packet:
    /// better lost than late for every other call).
    pub fn try_send_to(&self, packet: &[u8], to: SocketAddr) -> std::io::Result<usize> {
        self.socket.send_to(packet, to)
    }

    /// The port it is bound to (known when bound: not asked of the kernel).
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }
}

impl Drop for RtpSocket {
    fn drop(&mut self) {
        // SAFETY: taken once, here, and never used again.
        let socket = unsafe { std::mem::ManuallyDrop::take(&mut self.socket) };
        self.home.put(self.port, socket);
    }
}

impl std::os::fd::AsRawFd for RtpSocket {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.socket.as_raw_fd()
    }
}

/// Messages to the control task.
#[derive(Debug)]
pub enum MediaIn {
    Command(MediaCommand),
    /// A call's port, bound by [`Link::open`], and where its peer is.
    Open {
        call: CallId,
        socket: std::net::UdpSocket,
        /// The port it is bound to (known to the switch: not asked of the
        /// kernel again).
        port: u16,
        params: crate::media::rtp::StreamParams,
    },
    /// The caller's RTP comes from a new address (symmetric RTP).
    Source(CallId, SocketAddr),
    /// What a leg in a mixed conversation said: one packet's payload
    /// (its length, the bytes), inline so nothing is allocated per packet.
    Heard(CallId, u8, [u8; SAMPLES_PER_PACKET]),
    /// The call's worker could not watch its socket (the kernel's limit
    /// of watched descriptors).
    Unwatched(CallId, std::io::Error),
}

/// The most audio one packet carries into a conversation's recording
/// (60 ms of G.711; longer packets are cut to it).
pub const MAX_FRAME: usize = 480;

/// What a conversation's writer task is told.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // the audio is nearly every message: inline, not boxed per packet
pub enum ConversationIn {
    /// One packet's audio (its length, the bytes), inline so nothing is
    /// allocated per packet.
    Audio {
        side: Side,
        ssrc: u32,
        ts: u32,
        at: Instant,
        len: u16,
        payload: [u8; MAX_FRAME],
    },
    Pause(bool),
    Stop,
}

struct Session {
    call: CallId,
    socket: Arc<RtpSocket>,
    /// The media worker sending its packets.
    worker: usize,
    /// Where its packets go (the caller's real RTP source once heard).
    remote: SocketAddr,
    law: Law,
    /// The other leg, once bridged.
    bridged_with: Option<CallId>,
    /// The mixed conversation it is in.
    room: Option<CallId>,
    /// The conversation's recording (on the caller's session).
    conversation: Option<mpsc::UnboundedSender<ConversationIn>>,
    /// What its worker counted (written there, read here).
    counts: Arc<RtpCounts>,
    /// Packets received when last looked at, and since when that count
    /// stands still (the caller's silence, for the RTP timeout).
    heard: (u64, Instant),
}

/// Packets a call's worker sent, accepted, found missing (by sequence
/// number) and relayed to the other leg.
#[derive(Debug, Default)]
pub(super) struct RtpCounts {
    /// Sent by its media worker.
    pub(super) sent: AtomicU64,
    pub(super) received: AtomicU64,
    pub(super) lost: AtomicU64,
    pub(super) relayed: AtomicU64,
    /// Telephone-event packets of a key pressed before the bridge, not
    /// relayed (the caller's 0 for an agent).
    pub(super) held_back: AtomicU64,
    /// Dropped: from elsewhere than the caller's media.
    pub(super) foreign: AtomicU64,
}

impl Session {
    /// An order for the call's incoming side, to its worker.
    fn listen(&self, workers: &Workers, order: Listen) {
        let call = self.call;
        workers.send(self.worker, Order::Listen { call, order });
    }
}

/// The switch's way to the media edge.
pub struct Link {
    pub tx: mpsc::UnboundedSender<MediaIn>,
    /// Where the calls' ports are bound.
    pub ip: std::net::IpAddr,
    /// Sockets of freed ports, still bound.
    pub warm: Arc<WarmSockets>,
}

impl Link {
    /// Opens a call's RTP port: the socket kept bound since the port's
    /// last call when there is one, else bound now. On the switch's own
    /// turn (no system call, or two): the switch learns at once whether it
    /// has the port, and answers in the same turn, without a round trip
    /// through the control task. The socket goes to the control task to be
    /// watched and played to.
    pub fn open(
        &self,
        call: CallId,
        port: u16,
        params: crate::media::rtp::StreamParams,
    ) -> MediaEvent {
        let socket = match self.warm.take(port) {
            Some(socket) => socket,
            None => match std::net::UdpSocket::bind(SocketAddr::new(self.ip, port))
                .and_then(|s| s.set_nonblocking(true).map(|()| s))
            {
                Ok(socket) => socket,
                Err(e) => {
                    warn!(%call, port, error = %e, "cannot bind RTP port");
                    return MediaEvent::OpenFailed;
                }
            },
        };
        let _ = self.tx.send(MediaIn::Open {
            call,
            socket,
            port,
            params,
        });
        MediaEvent::Opened
    }

    pub fn send(&self, cmd: MediaCommand) {
        let _ = self.tx.send(MediaIn::Command(cmd));
    }
}

/// The media edge's control task, to be run on the switch's own thread:
/// the switch's orders reach it without waking another thread, and it
/// ends with the switch (dropping its sessions closes their ports).
pub type Control = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Starts the media workers; returns the switch's link to the edge, the
/// control task (not yet running: see [`Control`]) and how late the
/// workers run. Recordings are written on `runtime`; closed sessions'
/// sockets wait in `warm`.
#[allow(clippy::too_many_arguments)] // the edge's whole world, passed once
pub fn start(
    runtime: tokio::runtime::Handle,
    ip: std::net::IpAddr,
    (workers, realtime_priority): (usize, u8),
    rtp_timeout: Duration,
    prompts: PromptSet,
    recordings: PathBuf,
    conversations: PathBuf,
    metrics: Arc<crate::metrics::Metrics>,
    to_switch: mpsc::UnboundedSender<Input>,
    warm: Arc<WarmSockets>,
) -> (Link, Control, Arc<Lateness>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let lateness = Arc::new(Lateness::new(workers.max(1)));
    let edge = Edge {
        rtp_timeout,
        prompts,
        recordings,
        conversations,
        workers: Workers::start(
            workers,
            realtime_priority,
            lateness.clone(),
            Outlets {
                to_switch: to_switch.clone(),
                control: tx.clone(),
                runtime: runtime.clone(),
            },
        ),
        warm: warm.clone(),
        metrics,
        runtime,
    };
    let control = Box::pin(pace(edge, rx, to_switch));
    (Link { tx, ip, warm }, control, lateness)
}

impl Edge {
    /// The prompts named, as loaded at start-up.
    fn load<'a>(
        &'a self,
        call: CallId,
        names: &'a [String],
    ) -> impl Iterator<Item = Arc<Prompt>> + 'a {
        names.iter().filter_map(move |name| {
            let prompt = self.prompts.get(name);
            if prompt.is_none() {
                // Prompts are checked at start-up; keep the call moving anyway.
                error!(%call, prompt = %name, "prompt not loaded");
            }
            prompt
        })
    }
}

/// What every session shares.
struct Edge {
    /// A session that received nothing this long is reported silent.
    rtp_timeout: Duration,
    prompts: PromptSet,
    recordings: PathBuf,
    /// Where conversations are recorded.
    conversations: PathBuf,
    workers: Workers,
    /// Where the sessions' sockets go when they close.
    warm: Arc<WarmSockets>,
    metrics: Arc<crate::metrics::Metrics>,
    /// Where the conversations' writers run (the runtime's threads, not
    /// the switch's).
    runtime: tokio::runtime::Handle,
}

async fn pace(
    mut edge: Edge,
    mut rx: mpsc::UnboundedReceiver<MediaIn>,
    to_switch: mpsc::UnboundedSender<Input>,
) {
    let mut sessions: IdMap<CallId, Session> = IdMap::default();
    let mut rooms: IdMap<CallId, Room> = IdMap::default();
    let mut next_silence_check = Instant::now() + SILENCE_CHECK;
    let mut wake = next_silence_check;
    // One timer, moved when the wake moves (see the switch's loop).
    let timer = tokio::time::sleep_until(wake.into());
    tokio::pin!(timer);
    loop {
        if timer.deadline() != wake.into() {
            timer.as_mut().reset(wake.into());
        }
        tokio::select! {
            msg = rx.recv() => {
                let Some(msg) = msg else { break };
                // A command may start a mix: due sooner. (What a mixed leg
                // said changes no deadline.)
                let sooner = matches!(msg, MediaIn::Command(_));
                handle(msg, &mut edge, &mut sessions, &mut rooms, &to_switch);
                if sooner {
                    wake = next_wake(&rooms, next_silence_check);
                }
            }
            _ = &mut timer, if !sessions.is_empty() => {
                let now = Instant::now();
                // Each mixed conversation: everyone's 20 ms, mixed for
                // each, every 20 ms, sent by each leg's worker.
                for room in rooms.values_mut() {
                    if now < room.next {
                        continue;
                    }
                    // Behind by more than a packet (a stall): start again from now.
                    let floor = now.checked_sub(PACKET_INTERVAL).unwrap_or(now);
                    room.next = (room.next + PACKET_INTERVAL).max(floor);
                    room.mixer.mix(|call, mixed| {
                        if let Some(s) = sessions.get(&call) {
                            let mut payload = [s.law.silence(); SAMPLES_PER_PACKET];
                            let len = mixed.len().min(SAMPLES_PER_PACKET);
                            payload[..len].copy_from_slice(&mixed[..len]);
                            let live = Order::Live { call, len: len as u8, payload };
                            edge.workers.send(s.worker, live);
                        }
                    });
                }
                if now >= next_silence_check {
                    next_silence_check = now + SILENCE_CHECK;
                    report_silence(now, edge.rtp_timeout, &mut sessions, &to_switch);
                }
                wake = next_wake(&rooms, next_silence_check);
            }
        }
    }
}

/// The earliest of: a room's next mix, the next silence check.
fn next_wake(rooms: &IdMap<CallId, Room>, silence_check: Instant) -> Instant {
    rooms
        .values()
        .map(|r| r.next)
        .fold(silence_check, Instant::min)
}

/// How often sessions are checked for a caller who stopped sending RTP.
const SILENCE_CHECK: Duration = Duration::from_secs(1);

/// Tells the switch of each session that received nothing for `timeout`
/// (once per `timeout` of silence; the switch decides, e.g. not while the
/// caller holds). A count compared once a second: nothing on the packet path.
fn report_silence(
    now: Instant,
    timeout: Duration,
    sessions: &mut IdMap<CallId, Session>,
    to_switch: &mpsc::UnboundedSender<Input>,
) {
    for (call, s) in sessions.iter_mut() {
        let received = s.counts.received.load(Ordering::Relaxed);
        if received != s.heard.0 {
            s.heard = (received, now);
        } else if now.duration_since(s.heard.1) >= timeout {
            s.heard.1 = now;
            let silent = MediaEvent::Silent(timeout);
            let _ = to_switch.send(Input::Media(*call, silent));
        }
    }
}

fn handle(
    msg: MediaIn,
    edge: &mut Edge,
    sessions: &mut IdMap<CallId, Session>,
    rooms: &mut IdMap<CallId, Room>,
    to_switch: &mpsc::UnboundedSender<Input>,
) {
    match msg {
        MediaIn::Command(MediaCommand::Open { call, port, .. }) => {
            // Bound by Link::open on the switch's turn; never sent here.
            error!(%call, port, "an Open order reached the media task");
        }
        MediaIn::Open {
            call,
            socket,
            port,
            params,
        } => {
            // Nonblocking already (Link::open).
            let socket = Arc::new(RtpSocket::kept_in(socket, port, edge.warm.clone()));
            let counts = Arc::new(RtpCounts::default());
            let incoming = Box::new(Incoming::new(
                call,
                RtpReceiver::new(&params),
                (params.codec_pt, params.law),
                counts.clone(),
            ));
            let (remote, law) = (params.remote, params.law);
            let stream = RtpStream::new(
                Instant::now(),
                params,
                rand::random(),
                rand::random(),
                rand::random(),
            );
            let worker = edge.workers.assign();
            let stream = Box::new(stream);
            let open = Order::Open {
                call,
                socket: socket.clone(),
                stream,
                incoming,
                counts: counts.clone(),
            };
            edge.workers.send(worker, open);
            sessions.insert(
                call,
                Session {
                    call,
                    socket,
                    worker,
                    remote,
                    law,
                    bridged_with: None,
                    room: None,
                    conversation: None,
                    counts,
                    heard: (0, Instant::now()),
                },
            );
        }
        MediaIn::Command(MediaCommand::Play { call, prompts }) => {
            if let Some(s) = sessions.get(&call) {
                let play = Order::Play {
                    call,
                    prompts: edge.load(call, &prompts).collect(),
                    looped: None,
                };
                edge.workers.send(s.worker, play);
            }
        }
        MediaIn::Command(MediaCommand::Loop {
            call,
            first,
            prompts,
        }) => {
            if let Some(s) = sessions.get(&call) {
                let looped: Vec<Arc<Prompt>> = edge.load(call, &prompts).collect();
                let play = Order::Play {
                    call,
                    prompts: edge.load(call, &first).chain(looped.clone()).collect(),
                    looped: Some(looped).filter(|l| !l.is_empty()),
                };
                edge.workers.send(s.worker, play);
            }
        }
        MediaIn::Command(MediaCommand::Stop { call }) => {
            if let Some(s) = sessions.get(&call) {
                edge.workers.send(s.worker, Order::Stop { call });
            }
        }
        MediaIn::Command(MediaCommand::Record {
            call,
            name,
            max,
            silence,
        }) => {
            if let Some(s) = sessions.get_mut(&call) {
                let path = edge.recordings.join(format!("{name}.wav"));
                s.listen(&edge.workers, Listen::Record { path, max, silence });
            }
        }
        MediaIn::Command(MediaCommand::Bridge { a, b }) => {
            let (Some(sa), Some(sb)) = (sessions.get(&a), sessions.get(&b)) else {
                warn!(%a, %b, "bridge: a leg has no media");
                return;
            };
            let (socket_a, to_a) = (sa.socket.clone(), sa.remote);
            let (socket_b, to_b) = (sb.socket.clone(), sb.remote);
            // A caller being recorded, bridged to a new agent (a transfer):
            // the new agent's side goes to the file, the last one's no more.
            if let Some(tx) = sa.conversation.clone() {
                if let Some(old) = sa.bridged_with.filter(|o| *o != b)
                    && let Some(o) = sessions.get(&old)
                {
                    o.listen(&edge.workers, Listen::Conversation(None));
                }
                sb.listen(&edge.workers, Listen::Conversation(Some((Side::Right, tx))));
            }
            for (call, other, socket, to) in [(a, b, socket_b, to_b), (b, a, socket_a, to_a)] {
                let s = sessions.get_mut(&call).expect("checked");
                edge.workers.send(s.worker, Order::Stop { call });
                s.bridged_with = Some(other);
                s.listen(&edge.workers, Listen::RelayTo(socket, to));
            }
            info!(%a, %b, "media bridged");
        }
        MediaIn::Command(MediaCommand::Relay { from, on }) => {
            if sessions.get(&from).is_some_and(|s| s.room.is_some()) {
                return; // mixed: nothing is relayed
            }
            let Some(other) = sessions.get(&from).and_then(|s| s.bridged_with) else {
                return;
            };
            let Some(o) = sessions.get(&other) else {
                return;
            };
            let ctl = match on {
                true => Listen::RelayTo(o.socket.clone(), o.remote),
                false => Listen::RelayOff,
            };
            if let Some(s) = sessions.get(&from) {
                s.listen(&edge.workers, ctl);
            }
        }
        MediaIn::Command(MediaCommand::StopRecording { call }) => {
            if let Some(s) = sessions.get_mut(&call) {
                s.listen(&edge.workers, Listen::StopRecording);
            }
        }
        MediaIn::Command(MediaCommand::RecordConversation {
            caller,
            agent,
            sip_call_id,
            name,
        }) => {
            let (Some(c), Some(a)) = (sessions.get(&caller), sessions.get(&agent)) else {
                warn!(%caller, %agent, "recording: a leg has no media");
                return;
            };
            let (tx, rx) = mpsc::unbounded_channel();
            let left = Listen::Conversation(Some((Side::Left, tx.clone())));
            c.listen(&edge.workers, left);
            let right = Listen::Conversation(Some((Side::Right, tx.clone())));
            a.listen(&edge.workers, right);
            let path = edge.conversations.join(format!("{name}.wav"));
            edge.runtime.spawn(write_conversation(
                caller,
                sip_call_id,
                path,
                c.law,
                rx,
                to_switch.clone(),
            ));
            sessions.get_mut(&caller).expect("checked").conversation = Some(tx);
        }
        MediaIn::Command(MediaCommand::PauseConversation { caller, paused }) => {
            if let Some(tx) = sessions.get(&caller).and_then(|s| s.conversation.as_ref()) {
                let _ = tx.send(ConversationIn::Pause(paused));
            }
        }
        MediaIn::Command(MediaCommand::StopConversation { caller }) => {
            stop_conversation(&edge.workers, sessions, caller);
        }
        MediaIn::Command(MediaCommand::Mix {
            room,
            call,
            role,
            audience,
        }) => {
            let Some(s) = sessions.get_mut(&call) else {
                warn!(%call, %room, "mix: the leg has no media");
                return;
            };
            if s.room.is_some_and(|r| r != room) {
                leave_room(&edge.workers, sessions, rooms, call);
            }
            let s = sessions.get_mut(&call).expect("checked");
            if s.room.is_none() {
                // No relay and no prompt: its mix from now on.
                edge.workers.send(s.worker, Order::Stop { call });
                s.listen(&edge.workers, Listen::RelayOff);
                s.listen(&edge.workers, Listen::Mix(true));
                s.room = Some(room);
            }
            let law = s.law;
            rooms
                .entry(room)
                .or_insert_with(|| Room {
                    mixer: Mixer::new(),
                    next: Instant::now(),
                })
                .mixer
                .join(call, law, role, audience);
            info!(%room, %call, ?role, ?audience, "mixed");
        }
        MediaIn::Command(MediaCommand::Unmix { call }) => {
            leave_room(&edge.workers, sessions, rooms, call)
        }
        MediaIn::Heard(call, len, payload) => {
            if let Some(room) = sessions.get(&call).and_then(|s| s.room)
                && let Some(r) = rooms.get_mut(&room)
            {
                r.mixer.push(call, &payload[..len as usize]);
            }
        }
        MediaIn::Command(MediaCommand::Close { call }) => {
            leave_room(&edge.workers, sessions, rooms, call);
            stop_conversation(&edge.workers, sessions, call);
            if let Some(s) = sessions.remove(&call) {
                edge.workers.close(s.worker, call);
                let sent = s.counts.sent.load(Ordering::Relaxed);
                let received = s.counts.received.load(Ordering::Relaxed);
                let lost = s.counts.lost.load(Ordering::Relaxed);
                let foreign = s.counts.foreign.load(Ordering::Relaxed);
                info!(
                    %call,
                    port = s.socket.port(),
                    rtp_sent = sent,
                    rtp_received = received,
                    rtp_lost = lost,
                    rtp_relayed = s.counts.relayed.load(Ordering::Relaxed),
                    rtp_held_back = s.counts.held_back.load(Ordering::Relaxed),
                    rtp_foreign = foreign,
                    "media closed"
                );
                edge.metrics.rtp_foreign.inc_by(foreign);
                edge.metrics.rtp_sent.inc_by(sent);
                edge.metrics.rtp_received.inc_by(received);
                edge.metrics.rtp_lost.inc_by(lost);
            }
        }
        MediaIn::Source(call, addr) => {
            let Some(s) = sessions.get_mut(&call) else {
                return;
            };
            s.remote = addr;
            edge.workers.send(s.worker, Order::Remote { call, addr });
            // The other leg relays to where this peer really is.
            let socket = s.socket.clone();
            if let Some(other) = s.bridged_with.and_then(|o| sessions.get(&o))
                && other.bridged_with == Some(call)
            {
                other.listen(&edge.workers, Listen::RelayTo(socket, addr));
            }
        }
        MediaIn::Command(MediaCommand::Remote { call, remote }) => {
            // Sent by the switch only when the address changed.
            let Some(s) = sessions.get_mut(&call) else {
                return;
            };
            info!(%call, from = %s.remote, to = %remote, "media moved (re-INVITE)");
            s.remote = remote;
            edge.workers
                .send(s.worker, Order::Remote { call, addr: remote });
            s.listen(&edge.workers, Listen::Offered(remote));
            let socket = s.socket.clone();
            if let Some(other) = s.bridged_with.and_then(|o| sessions.get(&o))
                && other.bridged_with == Some(call)
            {
                other.listen(&edge.workers, Listen::RelayTo(socket, remote));
            }
        }
        MediaIn::Unwatched(call, e) => {
            error!(%call, error = %e, "cannot watch the RTP port");
        }
    }
}

/// Deletes conversation recordings older than `keep`, at start and then
/// every hour, saying which.
pub async fn retention(dir: PathBuf, keep: Duration) {
    let mut every = tokio::time::interval(Duration::from_secs(3600));
    loop {
        every.tick().await;
        let Ok(mut entries) = tokio::fs::read_dir(&dir).await else {
            continue; // nothing recorded yet
        };
        let now = std::time::SystemTime::now();
        while let Ok(Some(entry)) = entries.next_entry().await {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.ends_with("-conv.wav") {
                continue;
            }
            let Ok(age) = entry
                .metadata()
                .await
                .and_then(|m| m.modified())
                .map(|m| now.duration_since(m).unwrap_or_default())
            else {
                continue;
            };
            if age > keep {
                match tokio::fs::remove_file(entry.path()).await {
                    Ok(()) => {
                        info!(file = %name, age_days = age.as_secs() / 86_400, "recording deleted (retention)")
                    }
                    Err(e) => warn!(file = %name, error = %e, "recording not deleted"),
                }
            }
        }
    }
}

/// A mixed conversation: its mixer and when it next mixes.
struct Room {
    mixer: Mixer,
    next: Instant,
}

/// Takes `call` out of its mixed conversation; the room goes with its
/// last participant.
fn leave_room(
    workers: &Workers,
    sessions: &mut IdMap<CallId, Session>,
    rooms: &mut IdMap<CallId, Room>,
    call: CallId,
) {
    let Some(room) = sessions.get_mut(&call).and_then(|s| s.room.take()) else {
        return;
    };
    if let Some(s) = sessions.get(&call) {
        s.listen(workers, Listen::Mix(false));
    }
    if let Some(r) = rooms.get_mut(&room) {
        r.mixer.leave(call);
        if r.mixer.is_empty() {
            rooms.remove(&room);
        }
    }
    info!(%room, %call, "unmixed");
}

/// Ends `caller`'s conversation recording, if any: both legs stop feeding
/// it and the writer finishes the file.
fn stop_conversation(workers: &Workers, sessions: &mut IdMap<CallId, Session>, caller: CallId) {
    let Some(tx) = sessions
        .get_mut(&caller)
        .and_then(|s| s.conversation.take())
    else {
        return;
    };
    let _ = tx.send(ConversationIn::Stop);
    let other = sessions.get(&caller).and_then(|s| s.bridged_with);
    for call in std::iter::once(caller).chain(other) {
        if let Some(s) = sessions.get(&call) {
            s.listen(workers, Listen::Conversation(None));
        }
    }
}

/// How often the conversation's samples go to the file, and its header is
/// brought up to date (a crash loses at most this much and the latency).
const CONVERSATION_FLUSH: Duration = Duration::from_millis(250);
const CONVERSATION_HEADER: Duration = Duration::from_secs(1);

/// Writes one conversation as it goes: samples every quarter second, the
/// header each second, the whole at the end; then tells the switch.
async fn write_conversation(
    caller: CallId,
    sip_call_id: String,
    path: PathBuf,
    law: Law,
    mut rx: mpsc::UnboundedReceiver<ConversationIn>,
    to_switch: mpsc::UnboundedSender<Input>,
) {
    use tokio::io::{AsyncSeekExt, AsyncWriteExt};
    let started = Instant::now();
    let mut conv = Conversation::new(law, started);
    let file = async {
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        let mut f = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await?;
        f.write_all(&crate::media::conversation::wav_header(0))
            .await?;
        Ok::<_, std::io::Error>(f)
    }
    .await;
    let mut file = match file {
        Ok(f) => f,
        Err(e) => {
            error!(%caller, file = %path.display(), error = %e, "conversation not recorded");
            return;
        }
    };
    info!(%caller, file = %path.display(), "recording the conversation");
    let mut flush = tokio::time::interval(CONVERSATION_FLUSH);
    let mut header_at = Instant::now() + CONVERSATION_HEADER;
    let mut failed = None;
    // Packets heard from each side (a side never heard is worth a look).
    let mut heard = [0u64; 2];
    loop {
        let end = tokio::select! {
            msg = rx.recv() => match msg {
                Some(ConversationIn::Audio { side, ssrc, ts, at, len, payload }) => {
                    heard[side as usize] += 1;
                    conv.push(side, ssrc, ts, at, &payload[..usize::from(len)]);
                    false
                }
                Some(ConversationIn::Pause(paused)) => {
                    conv.set_paused(paused);
                    false
                }
                Some(ConversationIn::Stop) | None => true,
            },
            _ = flush.tick() => false,
        };
        let bytes = conv.drain(if end { None } else { Some(Instant::now()) });
        let step = async {
            if !bytes.is_empty() {
                file.write_all(&bytes).await?;
            }
            if end || Instant::now() >= header_at {
                header_at = Instant::now() + CONVERSATION_HEADER;
                file.flush().await?;
                file.seek(std::io::SeekFrom::Start(0)).await?;
                file.write_all(&crate::media::conversation::wav_header(conv.frames()))
                    .await?;
                file.seek(std::io::SeekFrom::End(0)).await?;
                file.flush().await?;
            }
            Ok::<_, std::io::Error>(())
        };
        if let Err(e) = step.await {
            failed = Some(e);
            break;
        }
        if end {
            break;
        }
    }
    let duration = Duration::from_millis(conv.frames() * 1000 / crate::media::record::RATE as u64);
    if let Some(e) = failed {
        error!(%caller, file = %path.display(), error = %e, "conversation recording cut short");
    }
    info!(
        %caller,
        file = %path.display(),
        ms = duration.as_millis() as u64,
        pauses = conv.pauses(),
        caller_packets = heard[Side::Left as usize],
        agent_packets = heard[Side::Right as usize],
        caller_late = conv.late(Side::Left),
        agent_late = conv.late(Side::Right),
        caller_anchors = conv.anchored(Side::Left),
        agent_anchors = conv.anchored(Side::Right),
        "conversation recorded"
    );
    let _ = to_switch.send(Input::Media(
        caller,
        MediaEvent::ConversationRecorded {
            sip_call_id,
            file: path.display().to_string(),
            duration,
            pauses: conv.pauses(),
        },
    ));
}
