//! The door's thread: new calls refused at once while the switch is
//! behind ([`crate::edge::door`] says what it answers and when).
//!
//! A real-time thread, above the media workers (which are real-time too,
//! and on a full machine leave the switch's ordinary thread waiting for a
//! core). Every [`TICK`], when the switch has refused new calls lately
//! ([`Door::watches`]), it looks at the SIP socket: one `recvmsg` with
//! `MSG_PEEK` for the oldest datagram's arrival stamp, nothing read. When
//! that datagram has waited [`crate::edge::door::STEP_IN`], the door reads
//! what waits, sends the 503s, and holds every datagram, answered or not,
//! for the switch, which takes them before it reads the socket again
//! ([`Shared::take`]). One lock orders the two readers: the switch reads
//! the socket only while the door holds nothing, and the door reads and
//! holds under the same lock. The lock inherits priority
//! ([`super::pi_mutex`]): a switch preempted while it holds it runs at the
//! door's priority until it lets go. At rest (the switch taking calls) the door
//! sleeps until the switch refuses a call. Linux only (the arrival
//! stamps); elsewhere there is no door.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::{debug, info, warn};

use super::pi_mutex::{PiGuard, PiMutex};
use crate::edge::door::{Door, HELD_MAX, TICK};

/// How long the door sleeps at most while the switch takes calls (it is
/// woken when the switch refuses one).
const IDLE: Duration = Duration::from_secs(1);

/// A datagram the door read for the switch.
#[derive(Debug)]
pub struct Held {
    pub bytes: Vec<u8>,
    pub from: SocketAddr,
    /// When it came (since the Unix epoch), when the kernel said.
    pub arrived: Option<Duration>,
    /// The door's 503, when it was a new call.
    pub answer: Option<Bytes>,
}

/// What the door and the switch share.
pub struct Shared {
    /// Priority-inheriting: the switch holding it runs at the door's
    /// priority while the door waits for it.
    held: PiMutex<VecDeque<Held>>,
    /// Whether `held` has anything, read without the lock.
    holds: AtomicBool,
    /// When the switch last ended a turn refusing new calls: nanoseconds
    /// since `epoch`, plus one (0: not yet).
    refused_at: AtomicU64,
    epoch: Instant,
    closed: AtomicBool,
    wake: tokio::sync::Notify,
    /// The door's thread, woken when the switch starts refusing (it
    /// sleeps while the switch takes calls).
    thread: std::sync::OnceLock<std::thread::Thread>,
}

impl Default for Shared {
    fn default() -> Self {
        Self {
            held: PiMutex::default(),
            holds: AtomicBool::new(false),
            refused_at: AtomicU64::new(0),
            epoch: Instant::now(),
            closed: AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
            thread: std::sync::OnceLock::new(),
        }
    }
}

impl Shared {
    /// The switch refuses new calls at `now` (said at the end of each
    /// turn that does).
    pub fn refusing(&self, now: Instant) {
        let was = self.refused_ago(now);
        let at = now.saturating_duration_since(self.epoch).as_nanos() as u64;
        self.refused_at
            .store(at.saturating_add(1), Ordering::Relaxed);
        if !Door::watches(was)
            && let Some(door) = self.thread.get()
        {
            door.unpark();
        }
    }

    /// How long ago the switch last refused new calls, seen at `now`.
    fn refused_ago(&self, now: Instant) -> Option<Duration> {
        match self.refused_at.load(Ordering::Relaxed) {
            0 => None,
            at => Some((now - self.epoch).saturating_sub(Duration::from_nanos(at - 1))),
        }
    }

    /// Whether the door holds datagrams for the switch.
    pub fn holds(&self) -> bool {
        self.holds.load(Ordering::Acquire)
    }

    /// What the door holds, under the lock that orders reading the socket.
    pub fn lock(&self) -> PiGuard<'_, VecDeque<Held>> {
        self.held.lock()
    }

    /// Takes what the door holds, oldest first.
    pub fn take(&self) -> VecDeque<Held> {
        let mut held = self.lock();
        self.holds.store(false, Ordering::Release);
        std::mem::take(&mut *held)
    }

    /// Resolves when the door has handed datagrams over since the last time.
    pub async fn woken(&self) {
        self.wake.notified().await
    }

    /// The switch has stopped: so does the door.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        if let Some(door) = self.thread.get() {
            door.unpark();
        }
    }
}

/// Starts the door on `socket` (the switch's SIP socket, a copy of its
/// descriptor) at real-time `priority` (0: an ordinary thread). It ends
/// when `shared` is closed or the switch has let it go.
#[cfg(target_os = "linux")]
pub fn start(
    socket: std::net::UdpSocket,
    shared: Arc<Shared>,
    door: Door,
    priority: u8,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("sip-door".into())
        .spawn(move || {
            if priority > 0 {
                match super::workers::set_realtime(priority) {
                    Ok(()) => info!(priority, "SIP door at real-time priority"),
                    Err(e) => warn!(
                        priority,
                        error = %e,
                        "SIP door at ordinary priority: refusals may leave late on a full machine"
                    ),
                }
            }
            run(&socket, &shared, door);
        })
        .map(|_| ())
}

#[cfg(not(target_os = "linux"))]
pub fn start(
    _socket: std::net::UdpSocket,
    _shared: Arc<Shared>,
    _door: Door,
    _priority: u8,
) -> std::io::Result<()> {
    Ok(())
}

#[cfg(target_os = "linux")]
fn run(socket: &std::net::UdpSocket, shared: &Arc<Shared>, mut door: Door) {
    use std::os::fd::AsRawFd;
    let fd = socket.as_raw_fd();
    let mut batch = super::datagrams::Datagrams::new();
    let _ = shared.thread.set(std::thread::current());
    while !shared.closed.load(Ordering::Relaxed) && Arc::strong_count(shared) > 1 {
        if !Door::watches(shared.refused_ago(Instant::now())) {
            // Woken when the switch starts refusing; the timeout only to
            // see that the switch has gone.
            std::thread::park_timeout(IDLE);
            continue;
        }
        std::thread::sleep(TICK);
        let refused_ago = shared.refused_ago(Instant::now());
        let waited = Door::watches(refused_ago)
            .then(|| super::datagrams::oldest_waiting(fd))
            .flatten();
        if !Door::steps_in(refused_ago, waited) {
            continue;
        }
        let answered = step_in(socket, shared, &mut door, &mut batch);
        debug!(
            answered,
            waited_us = waited.map_or(0, |w| w.as_micros() as u64),
            "the switch behind: the door read for it"
        );
    }
}

/// Reads what waits on `socket` (up to [`HELD_MAX`] held), answers the new
/// calls and hands everything to the switch; how many were answered.
#[cfg(target_os = "linux")]
fn step_in(
    socket: &std::net::UdpSocket,
    shared: &Shared,
    door: &mut Door,
    batch: &mut super::datagrams::Datagrams,
) -> usize {
    use std::os::fd::AsRawFd;
    let mut answered = 0;
    let mut held = shared.lock();
    while held.len() + super::datagrams::BATCH <= HELD_MAX {
        let Ok(n) = batch.read_fd(socket.as_raw_fd()) else {
            break; // nothing more waits (or an ICMP error: the switch's to see)
        };
        let now = std::time::Instant::now();
        for i in 0..n {
            let Some((bytes, from)) = batch.get(i) else {
                continue;
            };
            let answer = door.answer(now, bytes, from);
            if let Some(a) = &answer {
                answered += 1;
                let _ = socket.send_to(a, from);
            }
            held.push_back(Held {
                bytes: bytes.to_vec(),
                from,
                arrived: batch.arrival(i),
                answer,
            });
        }
        if n < super::datagrams::BATCH {
            break;
        }
    }
    if !held.is_empty() {
        shared.holds.store(true, Ordering::Release);
        drop(held);
        shared.wake.notify_one();
    }
    answered
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::edge::GuardConfig;
    use crate::runtime::datagrams::{Datagrams, Read};
    use std::time::Instant;

    fn invite(n: u32) -> String {
        format!(
            "INVITE sip:400@127.0.0.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-door-{n}\r\n\
             From: <sip:13800000001@127.0.0.1>;tag=caller\r\n\
             To: <sip:400@127.0.0.1>\r\n\
             Call-ID: door-{n}@127.0.0.1\r\n\
             CSeq: 1 INVITE\r\n\
             Content-Length: 0\r\n\r\n"
        )
    }

    /// The switch's socket (stamped, non-blocking, as the runtime makes
    /// it), a caller's, and the door on a copy of the first.
    async fn door_on(refusing: bool) -> (tokio::net::UdpSocket, std::net::UdpSocket, Arc<Shared>) {
        let switch = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        Datagrams::stamp_arrivals(&switch);
        // The kernel turns the stamps on a moment after the first asks.
        std::thread::sleep(Duration::from_millis(200));
        let caller = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        caller
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let shared = Arc::new(Shared::default());
        if refusing {
            shared.refusing(Instant::now());
        }
        let copy = std::os::fd::AsFd::as_fd(&switch)
            .try_clone_to_owned()
            .unwrap();
        let std_copy = std::net::UdpSocket::from(copy);
        let door = Door::new(
            crate::edge::door::Refusal::new("5eed0".into(), String::new()),
            &GuardConfig::default(),
            &crate::edge::Networks::default(),
        );
        start(std_copy, shared.clone(), door, 0).unwrap();
        (switch, caller, shared)
    }

    #[tokio::test]
    async fn a_refusing_switch_that_does_not_read_has_its_new_calls_refused_by_the_door() {
        let (switch, caller, shared) = door_on(true).await;
        let to = switch.local_addr().unwrap();
        let bye = "BYE sip:hotline@127.0.0.1 SIP/2.0\r\nCall-ID: other\r\n\r\n";
        caller.send_to(invite(1).as_bytes(), to).unwrap();
        caller.send_to(bye.as_bytes(), to).unwrap();
        caller.send_to(invite(2).as_bytes(), to).unwrap();
        let sent = Instant::now();
        // Nobody reads for the switch (it is behind): the door answers.
        let mut got = Vec::new();
        for _ in 0..2 {
            let mut buf = [0u8; 2048];
            let (n, _) = caller.recv_from(&mut buf).expect("a 503 from the door");
            got.push(String::from_utf8(buf[..n].to_vec()).unwrap());
        }
        let waited = sent.elapsed();
        assert!(got.iter().all(|m| m.starts_with("SIP/2.0 503 ")), "{got:?}");
        assert!(got[0].contains("Call-ID: door-1@127.0.0.1"), "{got:?}");
        assert!(got[1].contains("Call-ID: door-2@127.0.0.1"), "{got:?}");
        // Everything is the switch's next read, in the order it came, the
        // new calls with the answers they got.
        let mut batch = Datagrams::new();
        assert_eq!(batch.read(&switch, &shared).await.unwrap(), Read::Door);
        let held: Vec<Held> = shared.take().into_iter().collect();
        assert_eq!(held.len(), 3);
        assert_eq!(held[0].bytes, invite(1).as_bytes());
        assert_eq!(held[1].bytes, bye.as_bytes());
        assert!(held[1].answer.is_none());
        assert_eq!(held[2].bytes, invite(2).as_bytes());
        assert_eq!(held[0].answer.as_deref(), Some(got[0].as_bytes()));
        assert_eq!(held[2].answer.as_deref(), Some(got[1].as_bytes()));
        assert!(held.iter().all(|h| h.from == caller.local_addr().unwrap()));
        let arrived = held[0].arrived.expect("stamped");
        let since = crate::runtime::datagrams::waited_since(arrived).unwrap();
        assert!(since >= waited, "{since:?} {waited:?}");
        // Then the socket again, with nothing held.
        caller.send_to(bye.as_bytes(), to).unwrap();
        assert_eq!(batch.read(&switch, &shared).await.unwrap(), Read::Socket(1));
        shared.close();
    }

    #[tokio::test]
    async fn a_switch_taking_calls_reads_for_itself_however_late() {
        let (switch, caller, shared) = door_on(false).await;
        caller
            .send_to(invite(1).as_bytes(), switch.local_addr().unwrap())
            .unwrap();
        std::thread::sleep(crate::edge::door::STEP_IN + 5 * TICK);
        assert!(!shared.holds(), "the door kept out");
        let mut batch = Datagrams::new();
        assert_eq!(batch.read(&switch, &shared).await.unwrap(), Read::Socket(1));
        assert_eq!(batch.get(0).unwrap().0, invite(1).as_bytes());
        caller
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let mut buf = [0u8; 64];
        assert!(caller.recv_from(&mut buf).is_err(), "nothing answered");
        shared.close();
    }

    #[tokio::test]
    async fn what_the_door_holds_is_read_before_what_waits_in_the_socket() {
        let switch = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let caller = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let from = caller.local_addr().unwrap();
        caller
            .send_to(b"later", switch.local_addr().unwrap())
            .unwrap();
        switch.readable().await.unwrap();
        let shared = Shared::default();
        shared.lock().push_back(Held {
            bytes: b"earlier".to_vec(),
            from,
            arrived: None,
            answer: None,
        });
        shared.holds.store(true, Ordering::Release);
        let mut batch = Datagrams::new();
        assert_eq!(batch.read(&switch, &shared).await.unwrap(), Read::Door);
        let held = shared.take();
        assert_eq!(
            held.front().map(|h| h.bytes.as_slice()),
            Some(&b"earlier"[..])
        );
        assert!(!shared.holds());
        assert_eq!(batch.read(&switch, &shared).await.unwrap(), Read::Socket(1));
        assert_eq!(batch.get(0), Some((&b"later"[..], from)));
    }

    #[tokio::test]
    async fn a_door_asleep_while_calls_are_taken_wakes_when_the_switch_refuses() {
        let (switch, caller, shared) = door_on(false).await;
        // Asleep for up to a second (IDLE); the switch's first refusal
        // wakes it at once, so the 503 comes long before that.
        std::thread::sleep(Duration::from_millis(50));
        shared.refusing(Instant::now());
        caller.set_read_timeout(Some(IDLE / 2)).unwrap();
        caller
            .send_to(invite(1).as_bytes(), switch.local_addr().unwrap())
            .unwrap();
        let mut buf = [0u8; 2048];
        let (n, _) = caller.recv_from(&mut buf).expect("woken by the refusal");
        assert!(buf[..n].starts_with(b"SIP/2.0 503 "));
        shared.close();
    }
}
