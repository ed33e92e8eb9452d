//! Media workers: the threads that send every call's RTP on time.
//!
//! Sending is most of the media edge's work (a few microseconds of system
//! time a packet, 50 packets a second a call), so it is spread over
//! `[media] workers` threads, one per core by default. Each owns the
//! outgoing streams of the calls given to it (the least loaded worker takes
//! a new call): the prompts queued, the hold music looping, the mixed
//! audio handed to it. It keeps its streams in order of their next packet
//! (a heap: a wake looks at the streams due, not at all of them) and wakes
//! on a 1 ms grid: at the first grid point after the earliest packet due,
//! it sends everything due by then. A packet thus leaves within a
//! millisecond of its time, and always equally late (20 ms is a whole
//! number of grid steps), so the grid adds no jitter; a worker wakes at
//! most a thousand times a second however many calls it has. Plain
//! threads, not tasks: a wake is not queued behind the receive tasks of a
//! thousand calls.
//!
//! The media edge's control task (runtime::media) tells a worker what to
//! play; the worker tells the switch when a prompt list has finished. An
//! order waits in the worker's inbox for its next wake when that comes
//! within [`ORDER_DELAY`] (live audio: before its packet time), and wakes
//! it only otherwise: a worker with calls is not woken once per order on
//! top of its own wakes, each a pair of context switches for it and the
//! thread that sent the order.
//! What comes in (the receive tasks) stays on tokio's threads.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::Thread;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::{info, warn};

use super::Input;
use super::media::{RtpCounts, RtpSocket};
use crate::call::{CallId, MediaEvent};
use crate::media::prompt::Prompt;
use crate::media::rtp::{MAX_PACKET, RtpStream, SAMPLES_PER_PACKET};

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
pub enum Playout {
    /// A new call: its socket and its outgoing stream.
    Open {
        call: CallId,
        socket: Arc<RtpSocket>,
        stream: Box<RtpStream>,
        /// Where it counts the packets it sent.
        counts: Arc<RtpCounts>,
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
    orders: Mutex<Vec<Playout>>,
    /// When the worker means to wake, in nanoseconds since `epoch`:
    /// [`AWAKE`] while it runs (it reads the orders before it sleeps
    /// again), `u64::MAX` when it sleeps until told.
    wakes_at: AtomicU64,
    epoch: Instant,
    closed: AtomicBool,
}

/// [`Inbox::wakes_at`] of a worker that is running.
const AWAKE: u64 = 0;

impl Inbox {
    fn since_epoch(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    /// The orders queued so far (swapped with `into`, which is empty).
    fn take(&self, into: &mut Vec<Playout>) {
        let mut orders = self.orders.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::swap(into, &mut *orders);
    }
}

/// The workers, and how many calls each has.
pub struct Workers {
    inboxes: Vec<(Arc<Inbox>, Thread)>,
    load: Vec<usize>,
}

impl Workers {
    /// Starts `n` workers (at least one), at `priority` (SCHED_FIFO; 0:
    /// ordinary threads).
    pub fn start(
        n: usize,
        priority: u8,
        lateness: Arc<Lateness>,
        to_switch: mpsc::UnboundedSender<Input>,
    ) -> Self {
        let inboxes = (0..n.max(1))
            .map(|i| {
                let inbox = Arc::new(Inbox {
                    orders: Mutex::new(Vec::new()),
                    wakes_at: AtomicU64::new(AWAKE),
                    epoch: Instant::now(),
                    closed: AtomicBool::new(false),
                });
                let rx = inbox.clone();
                let to_switch = to_switch.clone();
                let lateness = lateness.clone();
                let worker = std::thread::Builder::new()
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
                        run(&rx, &lateness.0[i], to_switch)
                    })
                    .expect("spawn a media worker");
                (inbox, worker.thread().clone())
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
    pub fn send(&self, worker: usize, msg: Playout) {
        let (inbox, thread) = &self.inboxes[worker];
        let within = match msg {
            Playout::Live { .. } => Duration::ZERO,
            _ => ORDER_DELAY,
        };
        inbox
            .orders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(msg);
        // Read after the order is in: a worker about to sleep has said
        // when it wakes before it looks at its orders (both under the
        // same lock), so one of the two sees the other.
        let deadline = inbox.since_epoch(Instant::now() + within);
        if inbox.wakes_at.load(Ordering::SeqCst) > deadline {
            thread.unpark();
        }
    }

    /// The call's media is over on `worker`.
    pub fn close(&mut self, worker: usize, call: CallId) {
        self.load[worker] = self.load[worker].saturating_sub(1);
        self.send(worker, Playout::Close { call });
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for (inbox, thread) in &self.inboxes {
            inbox.closed.store(true, Ordering::SeqCst);
            thread.unpark();
        }
    }
}

/// Makes the calling thread a real-time one (SCHED_FIFO at `priority`):
/// it runs before ordinary threads when its packets are due. Linux keeps
/// 5 % of each second for ordinary threads whatever real-time ones do.
#[cfg(target_os = "linux")]
fn set_realtime(priority: u8) -> std::io::Result<()> {
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
fn set_realtime(_priority: u8) -> std::io::Result<()> {
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
}

/// One call's outgoing side.
struct Outgoing {
    socket: Arc<RtpSocket>,
    stream: Box<RtpStream>,
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
    /// Puts `out` in the order of its next packet, if one is due at all.
    fn insert(&mut self, call: CallId, out: &mut Outgoing) {
        let due = out.stream.next_due();
        if due != out.scheduled {
            out.scheduled = due;
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

impl Outgoing {
    fn stop(&mut self) {
        self.stream.stop();
        self.queue.clear();
        self.looped = None;
    }
}

fn run(inbox: &Inbox, lateness: &WorkerLateness, to_switch: mpsc::UnboundedSender<Input>) {
    let mut calls: HashMap<CallId, Outgoing> = HashMap::new();
    let mut schedule = Schedule::default();
    let mut buf = [0u8; MAX_PACKET];
    let mut orders = Vec::new();
    let epoch = inbox.epoch;
    loop {
        let wake = schedule.next().map(|at| on_grid(epoch, at));
        // When it means to be up again: a packet already overdue (a prompt
        // chained to one that ended before the order came) is due now, not
        // late by the worker.
        let planned = wake.map(|at| at.max(Instant::now()));
        inbox.wakes_at.store(
            wake.map_or(u64::MAX, |at| inbox.since_epoch(at).max(AWAKE + 1)),
            Ordering::SeqCst,
        );
        inbox.take(&mut orders);
        if orders.is_empty() {
            if inbox.closed.load(Ordering::SeqCst) {
                return;
            }
            match wake {
                Some(at) => {
                    let now = Instant::now();
                    if at > now {
                        std::thread::park_timeout(at - now);
                    }
                }
                None => std::thread::park(),
            }
        }
        inbox.wakes_at.store(AWAKE, Ordering::SeqCst);
        for msg in orders.drain(..) {
            handle(msg, &mut calls, &mut schedule, &to_switch);
        }
        // Orders (or an early return from the wait): the packets are sent
        // when due, not before.
        let wake = schedule.next().map(|at| on_grid(epoch, at));
        if wake.is_none_or(|at| Instant::now() < at) {
            continue;
        }
        let now = Instant::now();
        let until = now;
        if let Some(planned) = planned {
            lateness.woke(now.saturating_duration_since(planned));
        }
        while let Some(Reverse((at, call))) = schedule.0.peek().copied() {
            if at > until {
                break;
            }
            schedule.0.pop();
            let Some(out) = calls.get_mut(&call).filter(|o| o.scheduled == Some(at)) else {
                continue; // left over from before a change
            };
            out.scheduled = None;
            let socket = &out.socket;
            let done = out.stream.poll_packets(until, &mut buf, |pkt, to| {
                // Never wait on a full socket buffer: a lost packet is
                // better than a late one for every other call.
                let _ = socket.try_send_to(pkt, to);
            });
            out.counts
                .sent
                .store(out.stream.packets_sent, Ordering::Relaxed);
            if done {
                if out.queue.is_empty()
                    && let Some(list) = &out.looped
                {
                    out.queue.extend(list.iter().cloned());
                }
                match out.queue.pop_front() {
                    Some(prompt) => out.stream.play(now, prompt),
                    None => {
                        let _ = to_switch.send(Input::Media(call, MediaEvent::PromptFinished));
                    }
                }
            }
            schedule.insert(call, out);
        }
    }
}

/// Carries out one order. Nothing here logs: a real-time thread waiting
/// for the log's lock, held by an ordinary thread, would be late for every
/// call it has.
fn handle(
    msg: Playout,
    calls: &mut HashMap<CallId, Outgoing>,
    schedule: &mut Schedule,
    to_switch: &mpsc::UnboundedSender<Input>,
) -> Option<()> {
    match msg {
        Playout::Open {
            call,
            socket,
            stream,
            counts,
        } => {
            calls.insert(
                call,
                Outgoing {
                    socket,
                    stream,
                    counts,
                    queue: VecDeque::new(),
                    looped: None,
                    scheduled: None,
                },
            );
        }
        Playout::Play {
            call,
            mut prompts,
            looped,
        } => {
            let out = calls.get_mut(&call)?;
            out.looped = looped;
            match prompts.pop_front() {
                Some(first) => {
                    out.stream.play(Instant::now(), first);
                    out.queue = prompts;
                    schedule.insert(call, out);
                }
                None => {
                    out.stop();
                    let _ = to_switch.send(Input::Media(call, MediaEvent::PromptFinished));
                }
            }
        }
        Playout::Stop { call } => calls.get_mut(&call)?.stop(),
        Playout::Live { call, len, payload } => {
            let out = calls.get_mut(&call)?;
            out.stop();
            let mut buf = [0u8; MAX_PACKET];
            let socket = &out.socket;
            out.stream.send_live(
                Instant::now(),
                &payload[..len as usize],
                &mut buf,
                |pkt, to| {
                    let _ = socket.try_send_to(pkt, to);
                },
            );
            out.counts
                .sent
                .store(out.stream.packets_sent, Ordering::Relaxed);
        }
        Playout::Remote { call, addr } => calls.get_mut(&call)?.stream.set_remote(addr),
        Playout::Close { call } => {
            calls.remove(&call);
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::g711::Law;
    use crate::media::rtp::StreamParams;

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

    #[test]
    fn a_list_then_the_hold_loop_is_one_talkspurt_and_finishes_only_without_a_loop() {
        // A runtime drives the socket's readiness, as in the hotline.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (to_switch, mut heard) = mpsc::unbounded_channel();
        let lateness = Arc::new(Lateness::new(1));
        let mut workers = Workers::start(1, 0, lateness.clone(), to_switch);
        let phone = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        phone
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let bound = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        bound.set_nonblocking(true).unwrap();
        let socket = rt.block_on(async { Arc::new(RtpSocket::new(bound).unwrap()) });
        let params = StreamParams {
            remote: phone.local_addr().unwrap(),
            codec_pt: 0,
            law: Law::Mu,
            dtmf_pt: Some(101),
        };
        let call = CallId(1);
        let stream = Box::new(RtpStream::new(Instant::now(), params, 7, 100, 5000));
        let worker = workers.assign();
        let counts = Arc::new(RtpCounts::default());
        let open = Playout::Open {
            call,
            socket,
            stream,
            counts: counts.clone(),
        };
        workers.send(worker, open);

        // The caller's place (3 packets), then the hold music (2) looping.
        let started = Instant::now();
        workers.send(
            worker,
            Playout::Play {
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
        assert!(heard.try_recv().is_err(), "a loop never finishes");

        // A list alone: the switch hears when it ends.
        workers.send(
            worker,
            Playout::Play {
                call,
                prompts: [prompt("goodbye", 2)].into(),
                looped: None,
            },
        );
        let finished =
            rt.block_on(async { tokio::time::timeout(Duration::from_secs(2), heard.recv()).await });
        assert!(
            matches!(finished, Ok(Some(Input::Media(c, MediaEvent::PromptFinished))) if c == call),
            "{finished:?}"
        );
        // Every packet counted where the log reads it.
        assert_eq!(counts.sent.load(Ordering::Relaxed), 13);
        workers.close(worker, call);
        assert_eq!(workers.load, [0]);
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
