//! A media worker's way to sleep: one epoll set holding its calls' RTP
//! sockets, a timer for its next packet (to the nanosecond: epoll's own
//! timeout counts whole milliseconds, too coarse for a 1 ms grid) and a
//! bell other threads ring when an order cannot wait for that timer.
//!
//! Linux only, as the hotline is; the few system calls are wrapped here,
//! each behind a safe method.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// What woke the worker: a socket's key (as registered), the bell or the timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    Socket(u64),
    Bell,
    Timer,
}

const BELL: u64 = u64::MAX;
const TIMER: u64 = u64::MAX - 1;

/// The largest key a socket may have (the two above are taken).
pub const MAX_KEY: u64 = u64::MAX - 2;

pub struct Poller {
    epoll: OwnedFd,
    bell: Bell,
    timer: OwnedFd,
    /// When the timer is set to ring (none: not set, or rung).
    armed: Option<Instant>,
    events: Vec<libc::epoll_event>,
}

/// Rings a worker's poller from any thread.
#[derive(Debug, Clone)]
pub struct Bell(std::sync::Arc<OwnedFd>);

impl Bell {
    pub fn ring(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to the eventfd we own. A
        // full counter (never, at 2^64 - 1 rings) would only fail the write.
        unsafe { libc::write(self.0.as_raw_fd(), (&raw const one).cast(), 8) };
    }
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    match rc {
        -1 => Err(io::Error::last_os_error()),
        rc => Ok(rc),
    }
}

/// Takes ownership of a descriptor a system call just returned.
fn owned(rc: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: `rc` is a new descriptor nothing else owns.
    check(rc).map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
}

impl Poller {
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain system calls creating descriptors; no memory passed.
        let epoll = owned(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        let bell = owned(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
        let timer = owned(unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        })?;
        let poller = Self {
            epoll,
            bell: Bell(std::sync::Arc::new(bell)),
            timer,
            armed: None,
            events: Vec::with_capacity(256),
        };
        poller.ctl(libc::EPOLL_CTL_ADD, poller.bell.0.as_raw_fd(), BELL)?;
        poller.ctl(libc::EPOLL_CTL_ADD, poller.timer.as_raw_fd(), TIMER)?;
        Ok(poller)
    }

    pub fn bell(&self) -> Bell {
        self.bell.clone()
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, key: u64) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: key,
        };
        // SAFETY: `event` lives across the call; the kernel copies it.
        check(unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut event) }).map(|_| ())
    }

    /// Watches `fd` for reading (level-triggered: what is left unread is
    /// reported again), reported as `key` (at most [`MAX_KEY`]).
    pub fn add(&self, fd: RawFd, key: u64) -> io::Result<()> {
        debug_assert!(key <= MAX_KEY);
        self.ctl(libc::EPOLL_CTL_ADD, fd, key)
    }

    pub fn remove(&self, fd: RawFd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0)
    }

    /// Sleeps until something is ready, or `until` (none: no limit; in the
    /// past: only looks), and hands over what is ready. The bell and the
    /// timer are reset here.
    pub fn wait(&mut self, until: Option<Instant>, ready: &mut Vec<Ready>) -> io::Result<()> {
        let timeout = match until {
            None => -1,
            Some(at) => match at.checked_duration_since(Instant::now()) {
                None => 0,
                Some(left) if left.is_zero() => 0,
                Some(left) => {
                    if self.armed != Some(at) {
                        self.arm(left)?;
                        self.armed = Some(at);
                    }
                    -1
                }
            },
        };
        self.events.clear();
        // SAFETY: the kernel writes at most `capacity` events into the
        // vector's spare room; `set_len` then covers only those.
        let n = unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                self.events.as_mut_ptr(),
                self.events.capacity() as libc::c_int,
                timeout,
            )
        };
        let n = match check(n) {
            Ok(n) => n as usize,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
            Err(e) => return Err(e),
        };
        unsafe { self.events.set_len(n) };
        for event in &self.events {
            let key = event.u64;
            ready.push(match key {
                BELL => {
                    drain(self.bell.0.as_raw_fd());
                    Ready::Bell
                }
                TIMER => {
                    drain(self.timer.as_raw_fd());
                    self.armed = None;
                    Ready::Timer
                }
                key => Ready::Socket(key),
            });
        }
        Ok(())
    }

    /// Sets the timer to ring once, `after` from now.
    fn arm(&self, after: Duration) -> io::Result<()> {
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: after.as_secs() as libc::time_t,
                tv_nsec: after.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: `spec` lives across the call; the old value is not asked for.
        check(unsafe {
            libc::timerfd_settime(self.timer.as_raw_fd(), 0, &spec, std::ptr::null_mut())
        })
        .map(|_| ())
    }
}

/// Reads an eventfd's or a timerfd's counter, resetting it.
fn drain(fd: RawFd) {
    let mut count: u64 = 0;
    // SAFETY: reads at most 8 bytes into a live u64; a counter already
    // read (another wake) fails with EAGAIN and changes nothing.
    unsafe { libc::read(fd, (&raw mut count).cast(), 8) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_the_bell_and_the_timer_each_wake_it_and_are_told_apart() {
        let mut poller = Poller::new().unwrap();
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        poller.add(socket.as_raw_fd(), 7).unwrap();
        let mut ready = Vec::new();

        let started = Instant::now();
        poller
            .wait(Some(started + Duration::from_millis(5)), &mut ready)
            .unwrap();
        assert_eq!(ready, [Ready::Timer]);
        assert!(started.elapsed() >= Duration::from_millis(5));

        ready.clear();
        poller.bell().ring();
        poller.wait(None, &mut ready).unwrap();
        assert_eq!(
            ready,
            [Ready::Bell],
            "rung before the wait: it does not sleep"
        );

        ready.clear();
        let phone = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        phone.send_to(b"x", socket.local_addr().unwrap()).unwrap();
        poller.wait(None, &mut ready).unwrap();
        assert_eq!(ready, [Ready::Socket(7)]);

        // Level-triggered: unread, it is reported again; removed, no more.
        ready.clear();
        poller.wait(Some(Instant::now()), &mut ready).unwrap();
        assert_eq!(ready, [Ready::Socket(7)]);
        poller.remove(socket.as_raw_fd()).unwrap();
        ready.clear();
        poller.wait(Some(Instant::now()), &mut ready).unwrap();
        assert!(ready.is_empty(), "{ready:?}");
    }
}
