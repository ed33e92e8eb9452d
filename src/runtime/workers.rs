//! Media workers: the threads that send and receive every call's RTP.
//!
//! RTP is most of the media edge's work (a few microseconds of system
//! time a packet, 50 packets a second each way a call), so it is spread
//! over `[media] workers` threads, one per core by default. Each owns the
//! calls given to it (the least loaded worker takes a new call): their
//! sockets, the prompts queued, the hold music looping, the mixed audio
//! handed to it, and what comes in (runtime::incoming).
//!
//! Sending: a worker keeps its streams in order of their next packet (a
//! heap: a wake looks at the streams due, not at all of them) and wakes on
//! a 1 ms grid: at the first grid point after the earliest packet due, it
//! sends everything due by then. A packet thus leaves within a millisecond
//! of its time, and always equally late (20 ms is a whole number of grid
//! steps), so the grid adds no jitter.
//!
//! Receiving: the worker's sockets are in its epoll set (runtime::poller)
//! and it reads them at most once a grid step: after a wake that found
//! packets it lets the rest of the millisecond pass before it looks again,
//! so a thousand callers' packets cost about a thousand wakes a second,
//! not fifty thousand, and each socket gives at most [`READS_PER_LOOK`]
//! datagrams a look (a port flooded with packets costs a bounded share of
//! the worker; the kernel drops the rest). A wake is never queued behind
//! other work: plain threads, not tasks on the runtime.
//!
//! The media edge's control task (runtime::media) gives a worker its
//! orders; the worker tells the switch when a prompt list has finished and
//! which keys were pressed. An order waits in the worker's inbox for its
//! next wake when that comes within [`ORDER_DELAY`] (live audio: before
//! its packet time), and rings the worker's bell only otherwise: a worker
//! with calls is not woken once per order on top of its own wakes, each a
//! pair of context switches for it and the thread that sent the order.
//! A worker that found orders looks again within [`ORDER_DELAY`] (at a
//! grid point), whatever it has to send: orders come in runs (a call
//! opens, plays, closes), and a run of short calls is then taken in
//! batches, not a bell per order; a look that finds none lets it sleep
//! until told.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::Input;
use super::incoming::{Incoming, Listen, Outlets, RECORD_CHECK};
use super::media::{RtpCounts, RtpSocket};
use super::poller::{Bell, Poller, Ready};
use crate::call::{CallId, MediaEvent};
use crate::ids::IdMap;
use crate::media::prompt::Prompt;
use crate::media::rtp::{MAX_PACKET, RtpStream, SAMPLES_PER_PACKET};

/// The most datagrams one socket gives a look (a caller sends one every
/// 20 ms: a look finds one, seldom two).
pub const READS_PER_LOOK: usize = 8;

/// The wake-up grid's step.
const TICK: Duration = Duration::from_millis(1);

/// The first point of the grid (steps of [`TICK`] from `epoch`) at or
/// after `t`.
fn on_grid(epoch: Instant, t: Instant) -> Instant {
    let step = TICK.as_nanos();
    let since = t.saturating_duration_since(epoch).as_nanos();
    let steps = since.div_ceil(step);
    epoch + Duration::from_nanos((steps * step) as u64)
}

/// What a worker is told about one of its calls.
#[derive(Debug)]
pub enum Order {
    /// A new call: its socket, its outgoing stream and what reads what
    /// comes in.
    Open {
        call: CallId,
        socket: Arc<RtpSocket>,
        stream: Box<RtpStream>,
        incoming: Box<Incoming>,
        /// Where it counts the packets it sent.
        counts: Arc<RtpCounts>,
    },
    /// For the call's incoming side.
    Listen {
        call: CallId,
        order: Listen,
    },
    /// Prompts played one after the other from now (none: silence, and the
    /// switch hears `PromptFinished` when they end); then `looped` over
    /// and over, never finished.
    Play {
        call: CallId,
        prompts: VecDeque<Arc<Prompt>>,
        looped: Option<Vec<Arc<Prompt>>>,
    },
    Stop {
        call: CallId,
    },
    /// 20 ms of live audio (a mix) to send now.
    Live {
        call: CallId,
        len: u8,
        payload: [u8; SAMPLES_PER_PACKET],
    },
    /// The caller's RTP comes from here now (symmetric RTP).
    Remote {
        call: CallId,
        addr: SocketAddr,
    },
    /// The call's media is over.
    Close {
        call: CallId,
    },
}

/// How long an order (other than live audio) may wait for the worker's
/// own next wake: a prompt starts, stops or moves at most this late, well
/// under a packet's time.
pub const ORDER_DELAY: Duration = Duration::from_millis(10);

/// A worker's orders, and when it will look at them next.
struct Inbox {
    orders: Mutex<Vec<Order>>,
    /// When the worker means to wake, in nanoseconds since `epoch`:
    /// [`AWAKE`] while it runs (it reads the orders before it sleeps
    /// again) or once its bell was rung, `u64::MAX` when it sleeps until
    /// told.
    wakes_at: AtomicU64,
    epoch: Instant,
    closed: AtomicBool,
    /// How often its bell was rung for an order.
    rung: AtomicU64,
}

/// [`Inbox::wakes_at`] of a worker that is running.
const AWAKE: u64 = 0;

impl Inbox {
    fn since_epoch(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    /// The orders queued so far (swapped with `into`, which is empty).
    fn take(&self, into: &mut Vec<Order>) {
        let mut orders = self.orders.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::swap(into, &mut *orders);
    }
}

/// The workers, and how many calls each has.
pub struct Workers {
    inboxes: Vec<(Arc<Inbox>, Bell)>,
    load: Vec<usize>,
}

impl Workers {
    /// Starts `n` workers (at least one), at `priority` (SCHED_FIFO; 0:
    /// ordinary threads). What their calls hear goes to `outlets`.
    pub fn start(n: usize, priority: u8, lateness: Arc<Lateness>, outlets: Outlets) -> Self {
        let inboxes = (0..n.max(1))
            .map(|i| {
                let inbox = Arc::new(Inbox {
                    orders: Mutex::new(Vec::new()),
                    wakes_at: AtomicU64::new(AWAKE),
                    epoch: Instant::now(),
                    closed: AtomicBool::new(false),
                    rung: AtomicU64::new(0),
                });
                let rx = inbox.clone();
                let outlets = outlets.clone();
                let lateness = lateness.clone();
                // Made here: a machine out of descriptors stops the start.
                let poller = Poller::new().expect("create a media worker's epoll set");
                let bell = poller.bell();
                std::thread::Builder::new()
                    .name(format!("media-{i}"))
                    .spawn(move || {
                        if priority > 0 {
                            match set_realtime(priority) {
                                Ok(()) if i == 0 => info!(workers = n, priority, "media workers at real-time priority"),
                                Ok(()) => {}
                                Err(e) if i == 0 => warn!(
                                    priority,
                                    error = %e,
                                    "media workers at ordinary priority (raise LimitRTPRIO, or set [media] realtime_priority = 0)"
                                ),
                                Err(_) => {}
                            }
                        }
                        run(&rx, poller, &lateness.0[i], &outlets)
                    })
                    .expect("spawn a media worker");
                (inbox, bell)
            })
            .collect::<Vec<_>>();
        let load = vec![0; inboxes.len()];
        Self { inboxes, load }
    }

    /// The worker a new call goes to: the one with the fewest.
    pub fn assign(&mut self) -> usize {
        let (i, _) = self
            .load
            .iter()
            .enumerate()
            .min_by_key(|(_, n)| **n)
            .expect("at least one worker");
        self.load[i] += 1;
        i
    }

    /// Queues `msg` for `worker`, waking it only when it would not look
    /// soon enough by itself.
    pub fn send(&self, worker: usize, msg: Order) {
        let (inbox, bell) = &self.inboxes[worker];
        let within = match msg {
            Order::Live { .. } => Duration::ZERO,
            _ => ORDER_DELAY,
        };
        inbox
            .orders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(msg);
        // Read after the order is in: a worker about to sleep has said
        // when it wakes before it looks at its orders (both under the
        // same lock), so one of the two sees the other. The one who rings
        // marks the worker awake, so orders sent before it runs do not
        // ring again (at 2,000 calls a second each sleep until told drew
        // three rings); a failed swap means the worker moved meanwhile
        // and will take this order itself.
        let deadline = inbox.since_epoch(Instant::now() + within);
        let wakes_at = inbox.wakes_at.load(Ordering::SeqCst);
        if wakes_at > deadline
            && inbox
                .wakes_at
                .compare_exchange(wakes_at, AWAKE, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            inbox.rung.fetch_add(1, Ordering::Relaxed);
            bell.ring();
        }
    }

    /// The call's media is over on `worker`.
    pub fn close(&mut self, worker: usize, call: CallId) {
        self.load[worker] = self.load[worker].saturating_sub(1);
        self.send(worker, Order::Close { call });
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for (inbox, bell) in &self.inboxes {
            inbox.closed.store(true, Ordering::SeqCst);
            bell.ring();
        }
    }
}

/// Makes the calling thread a real-time one (SCHED_FIFO at `priority`):
/// it runs before ordinary threads when its packets are due. Linux keeps
/// 5 % of each second for ordinary threads whatever real-time ones do.
#[cfg(target_os = "linux")]
pub(super) fn set_realtime(priority: u8) -> std::io::Result<()> {
    let param = libc::sched_param {
        sched_priority: i32::from(priority),
    };
    // SAFETY: sched_setscheduler reads `param` and changes only the
    // calling thread's policy (pid 0); no memory is handed over.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    match rc {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

#[cfg(not(target_os = "linux"))]
pub(super) fn set_realtime(_priority: u8) -> std::io::Result<()> {
    Err(std::io::Error::other("real-time threads only on Linux"))
}

/// A wake this late is a late one: half a packet's time. A worker on
/// schedule is late by well under a millisecond; the machine's hiccups (a
/// burst of orders, a moment's preemption) make a few wakes a second late
/// by several milliseconds.
pub const LATE_WAKE: Duration = Duration::from_millis(10);

/// How late each worker ran since the last look.
pub struct Lateness(Vec<WorkerLateness>);

#[derive(Default)]
pub struct WorkerLateness {
    /// The latest it sent a packet after its time (microseconds).
    worst_us: AtomicU64,
    /// Wakes with packets due, and how many of them were [`LATE_WAKE`].
    wakes: AtomicU64,
    late_wakes: AtomicU64,
    /// Nanoseconds spent working (from a wake to the next wait).
    busy_ns: AtomicU64,
}

impl WorkerLateness {
    fn woke(&self, late: Duration) {
        self.worst_us
            .fetch_max(late.as_micros() as u64, Ordering::Relaxed);
        self.wakes.fetch_add(1, Ordering::Relaxed);
        if late > LATE_WAKE {
            self.late_wakes.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn worked(&self, busy: Duration) {
        self.busy_ns
            .fetch_add(busy.as_nanos() as u64, Ordering::Relaxed);
    }
}

impl Lateness {
    pub fn new(workers: usize) -> Self {
        Self((0..workers).map(|_| WorkerLateness::default()).collect())
    }

    /// Since the last look: the latest any worker was, and the largest
    /// share of one worker's wakes that were late.
    pub fn take(&self) -> crate::call::MediaLate {
        let mut seen = crate::call::MediaLate::default();
        for w in &self.0 {
            let worst = Duration::from_micros(w.worst_us.swap(0, Ordering::Relaxed));
            let wakes = w.wakes.swap(0, Ordering::Relaxed);
            let late = w.late_wakes.swap(0, Ordering::Relaxed);
            seen.worst = seen.worst.max(worst);
            if wakes > 0 {
                seen.late_share = seen.late_share.max(late as f64 / wakes as f64);
            }
        }
        seen
    }

    /// The busiest worker's share of `over` (the time since the last
    /// look) spent working, in percent: how much of a core the media takes
    /// from the rest of the hotline. (An ordinary-priority worker preempted
    /// while working counts that time too: a busy machine either way.)
    pub fn busy_percent(&self, over: Duration) -> u8 {
        let over = over.as_nanos().max(1) as u64;
        let busiest = self
            .0
            .iter()
            .map(|w| w.busy_ns.swap(0, Ordering::Relaxed))
            .max()
            .unwrap_or(0);
        (busiest.saturating_mul(100) / over).min(100) as u8
    }
}

/// One call's media on its worker: the socket, the outgoing stream and
/// what reads what comes in.
struct Media {
    socket: Arc<RtpSocket>,
    stream: Box<RtpStream>,
    incoming: Box<Incoming>,
    counts: Arc<RtpCounts>,
    /// Prompts still to play after the current one.
    queue: VecDeque<Arc<Prompt>>,
    /// Played again whenever the queue runs out (the hold music).
    looped: Option<Vec<Arc<Prompt>>>,
    /// When its entry in the worker's heap is due (none: not in it).
    /// Entries for other times are left over from before a change and
    /// are passed over.
    scheduled: Option<Instant>,
}

/// The worker's streams by when their next packet is due.
#[derive(Default)]
struct Schedule(BinaryHeap<Reverse<(Instant, CallId)>>);

impl Schedule {
    /// Puts `media` in the order of its next packet, if one is due at all.
    fn insert(&mut self, call: CallId, media: &mut Media) {
        let due = media.stream.next_due();
        if due != media.scheduled {
            media.scheduled = due;
            if let Some(at) = due {
                self.0.push(Reverse((at, call)));
            }
        }
    }

    /// The next due stream's time.
    fn next(&self) -> Option<Instant> {
        self.0.peek().map(|Reverse((at, _))| *at)
    }
}

impl Media {
    fn stop(&mut self) {
        self.stream.stop();
        self.queue.clear();
        self.looped = None;
    }

    /// What has come in, up to [`READS_PER_LOOK`] datagrams.
    fn read(&mut self, buf: &mut [u8], now: Instant, out: &Outlets) {
        for _ in 0..READS_PER_LOOK {
            match self.socket.recv_from(buf) {
                Ok((n, from)) => self.incoming.datagram(from, &buf[..n], now, out),
                // Nothing more; or an ICMP error (port unreachable), which
                // the read took away: the rest next look.
                Err(_) => break,
            }
        }
    }
}

/// A worker's calls and what it knows of them.
struct Calls {
    media: IdMap<CallId, Media>,
    schedule: Schedule,
    /// When the recordings are next checked for a caller gone quiet
    /// (none: nothing recorded).
    check_at: Option<Instant>,
}

fn run(inbox: &Inbox, mut poller: Poller, lateness: &WorkerLateness, out: &Outlets) {
    let mut calls = Calls {
        media: IdMap::default(),
        schedule: Schedule::default(),
        check_at: None,
    };
    let mut buf = [0u8; MAX_PACKET];
    let mut datagram = [0u8; 2048];
    let mut orders = Vec::new();
    let mut ready = Vec::new();
    let epoch = inbox.epoch;
    // When the last look found packets: the next is a grid step later.
    let mut found: Option<Instant> = None;
    // When it last woke, for the time it worked since.
    let mut woke: Option<Instant> = None;
    // When it next looks for orders, having found some at its last look.
    let mut orders_look: Option<Instant> = None;
    loop {
        if let Some(at) = woke.take() {
            lateness.worked(at.elapsed());
        }
        let send_at = calls.schedule.next().map(|at| on_grid(epoch, at));
        let wake = [send_at, calls.check_at, orders_look]
            .into_iter()
            .flatten()
            .min();
        // When it means to be up again: a packet already overdue (a prompt
        // chained to one that ended before the order came) is due now, not
        // late by the worker.
        let planned = send_at.map(|at| at.max(Instant::now()));
        inbox.wakes_at.store(
            wake.map_or(u64::MAX, |at| inbox.since_epoch(at).max(AWAKE + 1)),
            Ordering::SeqCst,
        );
        inbox.take(&mut orders);
        if orders.is_empty() && inbox.closed.load(Ordering::SeqCst) {
            return;
        }
        // Packets found at the last look: the rest of its grid step
        // passes first (an order meanwhile waits at most that long).
        if let Some(at) = found.take() {
            let look = wake.map_or(at + TICK, |w| w.min(at + TICK));
            let now = Instant::now();
            if look > now {
                std::thread::sleep(look - now);
            }
        }
        ready.clear();
        let until = match orders.is_empty() {
            true => wake,
            false => Some(Instant::now()),
        };
        if poller.wait(until, &mut ready).is_err() {
            // Never with a valid epoll set; were it to happen, not a spin.
            std::thread::sleep(TICK);
        }
        inbox.wakes_at.store(AWAKE, Ordering::SeqCst);
        // What came while it slept is taken now, not after one more turn
        // (a look for orders would otherwise find only those it already
        // had, and the next wait would be only to take them).
        if orders.is_empty() {
            inbox.take(&mut orders);
        }
        let now = Instant::now();
        woke = Some(now);
        // On the grid (within ORDER_DELAY): with calls playing, the look
        // is a wake for sending anyway, and reading off the grid would
        // hold up the packets due at the next point.
        orders_look = (!orders.is_empty()).then(|| on_grid(epoch, now + ORDER_DELAY - TICK));
        for msg in orders.drain(..) {
            handle(msg, &mut calls, &poller, now, out);
        }
        for r in &ready {
            if let Ready::Socket(key) = r
                && let Some(media) = calls.media.get_mut(&CallId(*key))
            {
                media.read(&mut datagram, now, out);
                found = Some(now);
            }
        }
        if calls.check_at.is_some_and(|at| now >= at) {
            let mut recording = false;
            for media in calls.media.values_mut() {
                media.incoming.check(now, out);
                recording |= media.incoming.is_recording();
            }
            calls.check_at = recording.then_some(now + RECORD_CHECK);
        }
        // Orders (or an early return from the wait): the packets are sent
        // when due, not before.
        let send_at = calls.schedule.next().map(|at| on_grid(epoch, at));
        if send_at.is_none_or(|at| Instant::now() < at) {
            continue;
        }
        let now = Instant::now();
        let until = now;
        if let Some(planned) = planned {
            lateness.woke(now.saturating_duration_since(planned));
        }
        while let Some(Reverse((at, call))) = calls.schedule.0.peek().copied() {
            if at > until {
                break;
            }
            calls.schedule.0.pop();
            let Some(media) = calls
                .media
                .get_mut(&call)
                .filter(|m| m.scheduled == Some(at))
            else {
                continue; // left over from before a change
            };
            media.scheduled = None;
            let socket = &media.socket;
            let done = media.stream.poll_packets(until, &mut buf, |pkt, to| {
                // Never wait on a full socket buffer: a lost packet is
                // better than a late one for every other call.
                let _ = socket.try_send_to(pkt, to);
            });
            media
                .counts
                .sent
                .store(media.stream.packets_sent, Ordering::Relaxed);
            if done {
                if media.queue.is_empty()
                    && let Some(list) = &media.looped
                {
                    media.queue.extend(list.iter().cloned());
                }
                match media.queue.pop_front() {
                    Some(prompt) => media.stream.play(now, prompt),
                    None => {
                        let finished = Input::Media(call, MediaEvent::PromptFinished);
                        let _ = out.to_switch.send(finished);
                    }
                }
            }
            calls.schedule.insert(call, media);
        }
    }
}

/// Carries out one order. Nothing here logs: a real-time thread waiting
/// for the log's lock, held by an ordinary thread, would be late for every
/// call it has.
fn handle(
    msg: Order,
    calls: &mut Calls,
    poller: &Poller,
    now: Instant,
    out: &Outlets,
) -> Option<()> {
    match msg {
        Order::Open {
            call,
            socket,
            stream,
            incoming,
            counts,
        } => {
            if let Err(e) = poller.add(socket.as_raw_fd(), call.0) {
                // The control task says so; the call hears nothing, and
                // the switch learns of it as silence.
                let _ = out.control.send(super::media::MediaIn::Unwatched(call, e));
            }
            let media = Media {
                socket,
                stream,
                incoming,
                counts,
                queue: VecDeque::new(),
                looped: None,
                scheduled: None,
            };
            if let Some(old) = calls.media.insert(call, media) {
                let _ = poller.remove(old.socket.as_raw_fd());
            }
        }
        Order::Listen { call, order } => {
            if matches!(order, Listen::Record { .. }) && calls.check_at.is_none() {
                calls.check_at = Some(now + RECORD_CHECK);
            }
            calls.media.get_mut(&call)?.incoming.order(order, now, out);
        }
        Order::Play {
            call,
            mut prompts,
            looped,
        } => {
            let media = calls.media.get_mut(&call)?;
            media.looped = looped;
            match prompts.pop_front() {
                Some(first) => {
                    media.stream.play(now, first);
                    media.queue = prompts;
                    calls.schedule.insert(call, media);
                }
                None => {
                    media.stop();
                    let finished = Input::Media(call, MediaEvent::PromptFinished);
                    let _ = out.to_switch.send(finished);
                }
            }
        }
        Order::Stop { call } => calls.media.get_mut(&call)?.stop(),
        Order::Live { call, len, payload } => {
            let media = calls.media.get_mut(&call)?;
            media.stop();
            let mut buf = [0u8; MAX_PACKET];
            let socket = &media.socket;
            media
                .stream
                .send_live(now, &payload[..len as usize], &mut buf, |pkt, to| {
                    let _ = socket.try_send_to(pkt, to);
                });
            media
                .counts
                .sent
                .store(media.stream.packets_sent, Ordering::Relaxed);
        }
        Order::Remote { call, addr } => calls.media.get_mut(&call)?.stream.set_remote(addr),
        Order::Close { call } => {
            let media = calls.media.remove(&call)?;
            // Another call's relay may hold the socket open a while yet.
            let _ = poller.remove(media.socket.as_raw_fd());
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::g711::Law;
    use crate::media::rtp::StreamParams;
    use tokio::sync::mpsc;

    #[test]
    fn a_second_tells_the_worst_wake_and_the_busiest_workers_late_share() {
        let lateness = Lateness::new(2);
        for ms in [1, 2, 12, 3] {
            lateness.0[0].woke(Duration::from_millis(ms));
        }
        lateness.0[1].woke(Duration::from_millis(30));
        lateness.0[1].woke(Duration::from_millis(5));
        let second = lateness.take();
        assert_eq!(second.worst, Duration::from_millis(30));
        assert_eq!(second.late_share, 0.5, "worker 1: one of two wakes late");
        assert_eq!(
            lateness.take(),
            crate::call::MediaLate::default(),
            "counted afresh"
        );
    }

    fn prompt(name: &str, packets: usize) -> Arc<Prompt> {
        let samples = vec![1000i16; packets * SAMPLES_PER_PACKET];
        Arc::new(Prompt::from_samples(name, &samples))
    }

    /// (sequence number, timestamp, marker) of the next packet the phone gets.
    fn next_packet(phone: &std::net::UdpSocket) -> (u16, u32, bool) {
        let mut buf = [0u8; 2048];
        let n = phone.recv(&mut buf).expect("a packet within 2 s");
        let rtp = rtp_rs::RtpReader::new(&buf[..n]).expect("RTP");
        (rtp.sequence_number().into(), rtp.timestamp(), rtp.mark())
    }

    /// A worker with one call on a fresh port, sending to `phone`; the
    /// switch's and the control task's ends of its outlets.
    struct OneCall {
        _rt: tokio::runtime::Runtime,
        workers: Workers,
        worker: usize,
        call: CallId,
        port: SocketAddr,
        counts: Arc<RtpCounts>,
        heard: mpsc::UnboundedReceiver<Input>,
        control: mpsc::UnboundedReceiver<super::super::media::MediaIn>,
    }

    fn one_call(phone: &std::net::UdpSocket) -> OneCall {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (to_switch, heard) = mpsc::unbounded_channel();
        let (to_control, control) = mpsc::unbounded_channel();
        let outlets = Outlets {
            to_switch,
            control: to_control,
            runtime: rt.handle().clone(),
        };
        let mut workers = Workers::start(1, 0, Arc::new(Lateness::new(1)), outlets);
        let bound = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = bound.local_addr().unwrap();
        let socket = Arc::new(RtpSocket::new(bound).unwrap());
        let params = StreamParams {
            remote: phone.local_addr().unwrap(),
            codec_pt: 0,
            law: Law::Mu,
            dtmf_pt: Some(101),
        };
        let call = CallId(1);
        let counts = Arc::new(RtpCounts::default());
        let incoming = Box::new(Incoming::new(
            call,
            crate::media::rtp::RtpReceiver::new(&params),
            (0, Law::Mu),
            counts.clone(),
        ));
        let stream = Box::new(RtpStream::new(Instant::now(), params, 7, 100, 5000));
        let worker = workers.assign();
        let open = Order::Open {
            call,
            socket,
            stream,
            incoming,
            counts: counts.clone(),
        };
        workers.send(worker, open);
        OneCall {
            _rt: rt,
            workers,
            worker,
            call,
            port,
            counts,
            heard,
            control,
        }
    }

    fn peer() -> std::net::UdpSocket {
        let phone = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        phone
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        phone
    }

    /// Waits up to 2 s for what a worker tells.
    fn next<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> Option<T> {
        let until = Instant::now() + Duration::from_secs(2);
        loop {
            if let Ok(v) = rx.try_recv() {
                return Some(v);
            }
            if Instant::now() > until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// An RTP packet: payload type, sequence number, timestamp, payload.
    fn rtp(pt: u8, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
        rtp_rs::RtpPacketBuilder::new()
            .payload_type(pt)
            .ssrc(9)
            .sequence(rtp_rs::Seq::from(seq))
            .timestamp(ts)
            .payload(payload)
            .build()
            .expect("an RTP packet")
    }

    #[test]
    fn what_comes_in_is_read_by_the_worker_keys_to_the_switch_audio_to_the_other_leg() {
        let phone = peer();
        let mut c = one_call(&phone);
        let agent = peer();
        let relay =
            Arc::new(RtpSocket::new(std::net::UdpSocket::bind("127.0.0.1:0").unwrap()).unwrap());
        c.workers.send(
            c.worker,
            Order::Listen {
                call: c.call,
                order: Listen::RelayTo(relay, agent.local_addr().unwrap()),
            },
        );
        // Two packets of audio, then a key (5) pressed: an RFC 4733 event.
        phone
            .send_to(&rtp(0, 1, 160, &[0xff; 160]), c.port)
            .unwrap();
        phone
            .send_to(&rtp(0, 2, 320, &[0xff; 160]), c.port)
            .unwrap();
        phone
            .send_to(&rtp(101, 3, 480, &[5, 0x0a, 0, 160]), c.port)
            .unwrap();
        let key = next(&mut c.heard);
        assert!(
            matches!(key, Some(Input::Media(call, MediaEvent::Digit('5'))) if call == c.call),
            "{key:?}"
        );
        // The caller's address was news: the control task heard it.
        let source = next(&mut c.control);
        assert!(
            matches!(source, Some(super::super::media::MediaIn::Source(call, addr)) if call == c.call && addr == phone.local_addr().unwrap()),
            "{source:?}"
        );
        // Relayed as it came, all three.
        let mut buf = [0u8; 2048];
        for seq in 1..=3u16 {
            let n = agent.recv(&mut buf).expect("relayed within 2 s");
            let got = rtp_rs::RtpReader::new(&buf[..n]).unwrap();
            assert_eq!(u16::from(got.sequence_number()), seq);
        }
        assert_eq!(c.counts.received.load(Ordering::Relaxed), 3);
        assert_eq!(c.counts.relayed.load(Ordering::Relaxed), 3);
        c.workers.close(c.worker, c.call);
    }

    #[test]
    fn a_list_then_the_hold_loop_is_one_talkspurt_and_finishes_only_without_a_loop() {
        let phone = peer();
        let mut c = one_call(&phone);
        let (mut workers, worker, call, counts) = (c.workers, c.worker, c.call, c.counts);

        // The caller's place (3 packets), then the hold music (2) looping.
        let started = Instant::now();
        workers.send(
            worker,
            Order::Play {
                call,
                prompts: [prompt("place", 3)].into(),
                looped: Some(vec![prompt("hold", 2)]),
            },
        );
        let packets: Vec<_> = (0..11).map(|_| next_packet(&phone)).collect();
        let took = started.elapsed();
        for pair in packets.windows(2) {
            let ((seq, ts, _), (next_seq, next_ts, marked)) = (pair[0], pair[1]);
            assert_eq!(next_seq, seq.wrapping_add(1), "{packets:?}");
            assert_eq!(next_ts, ts.wrapping_add(160), "{packets:?}");
            assert!(
                !marked,
                "one talkspurt across prompts and passes: {packets:?}"
            );
        }
        assert!(packets[0].2, "the talkspurt starts marked");
        assert!(
            took >= Duration::from_millis(190),
            "paced, not a burst: 11 packets in {took:?}"
        );
        assert!(c.heard.try_recv().is_err(), "a loop never finishes");

        // A list alone: the switch hears when it ends.
        workers.send(
            worker,
            Order::Play {
                call,
                prompts: [prompt("goodbye", 2)].into(),
                looped: None,
            },
        );
        let finished = next(&mut c.heard);
        assert!(
            matches!(finished, Some(Input::Media(c, MediaEvent::PromptFinished)) if c == call),
            "{finished:?}"
        );
        // Every packet counted where the log reads it.
        assert_eq!(counts.sent.load(Ordering::Relaxed), 13);
        workers.close(worker, call);
        assert_eq!(workers.load, [0]);
    }

    #[test]
    fn a_run_of_orders_rings_the_worker_about_once_a_look_not_once_an_order() {
        let phone = peer();
        let c = one_call(&phone);
        // The call plays nothing: between orders the worker has nothing
        // of its own to wake for.
        std::thread::sleep(Duration::from_millis(50));
        let (inbox, _) = &c.workers.inboxes[c.worker];
        let before = inbox.rung.load(Ordering::Relaxed);
        let started = Instant::now();
        let orders = 40;
        for _ in 0..orders {
            let addr = phone.local_addr().unwrap();
            c.workers
                .send(c.worker, Order::Remote { call: c.call, addr });
            std::thread::sleep(Duration::from_millis(1));
        }
        let rung = inbox.rung.load(Ordering::Relaxed) - before;
        // A look every ORDER_DELAY while orders keep coming, and a bell
        // to start the run (on a slow machine, with the orders further
        // apart, more looks find none and more bells are rung).
        let looks = started.elapsed().as_millis() / ORDER_DELAY.as_millis() + 2;
        assert!(
            u128::from(rung) <= looks,
            "{rung} bells for {orders} orders in {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn orders_sent_before_a_rung_worker_runs_ring_it_only_once() {
        // A worker's inbox and bell with no thread behind them: it stays
        // asleep, as one does between a ring and its first instruction.
        let poller = Poller::new().unwrap();
        let inbox = Arc::new(Inbox {
            orders: Mutex::new(Vec::new()),
            wakes_at: AtomicU64::new(u64::MAX),
            epoch: Instant::now(),
            closed: AtomicBool::new(false),
            rung: AtomicU64::new(0),
        });
        let workers = Workers {
            inboxes: vec![(inbox.clone(), poller.bell())],
            load: vec![0],
        };
        for i in 0..5 {
            workers.send(0, Order::Stop { call: CallId(i) });
        }
        assert_eq!(inbox.rung.load(Ordering::Relaxed), 1, "one ring wakes it");
        assert_eq!(
            inbox.orders.lock().unwrap().len(),
            5,
            "every order waits for it"
        );
        // Once it sleeps until told again, the next order rings again.
        inbox.wakes_at.store(u64::MAX, Ordering::SeqCst);
        workers.send(0, Order::Stop { call: CallId(5) });
        assert_eq!(inbox.rung.load(Ordering::Relaxed), 2);
        // Workers' drop rings and marks the inbox closed; nothing runs it.
        drop(workers);
        assert!(inbox.closed.load(Ordering::SeqCst));
    }

    #[test]
    fn the_grid_rounds_up_to_whole_milliseconds_from_its_start() {
        let epoch = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(on_grid(epoch, epoch), epoch);
        assert_eq!(
            on_grid(epoch, epoch + Duration::from_micros(1)),
            epoch + ms(1)
        );
        assert_eq!(on_grid(epoch, epoch + ms(20)), epoch + ms(20));
        assert_eq!(
            on_grid(epoch, epoch + Duration::from_micros(20_300)),
            epoch + ms(21)
        );
    }
}
