//! RTP port pool: even ports from a range. A port just freed rests for
//! [`REST`] before it is handed out again, so the packets still on their
//! way to it (the last ones of the call, or a peer that has not yet heard
//! the BYE) reach no other call. Past its rest, the port freed last is
//! handed out first: the media edge keeps the sockets of recently freed
//! ports bound (`runtime::warm`), and a call given one of them costs no
//! socket, bind or close (on a loopback VM, 9-11 us a call, against 0.4 us
//! to drain what came to the port while it rested). Ports never used come
//! after, lowest first.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

/// How long a freed port rests before another call may have it. Two
/// lost BYEs (retransmitted after 0.5 s, then 1 s more) while the peer
/// keeps sending; and as long as the least-recently-used rule this
/// replaced gave at 2,000 calls a second over the default range.
pub const REST: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub struct PortPool {
    /// Freed less than [`REST`] ago, oldest first, with when.
    resting: VecDeque<(u16, Instant)>,
    /// Ready: the back is handed out first (the port freed last, whose
    /// socket is likeliest still bound), the front last (never used,
    /// rested longest, or found held by another program).
    ready: VecDeque<u16>,
    in_use: HashSet<u16>,
}

impl PortPool {
    /// Even ports in `first..=last` (RTCP would take the odd one above).
    pub fn new(first: u16, last: u16) -> Self {
        let start = first + first % 2;
        Self {
            resting: VecDeque::new(),
            // Lowest at the back: handed out first.
            ready: (start..=last).step_by(2).rev().collect(),
            in_use: HashSet::new(),
        }
    }

    /// A port for a call at `now`: the most recently freed of those that
    /// have rested, else one never used; when every free port is still
    /// resting, the one that has rested longest (a port too soon beats
    /// refusing the call).
    pub fn allocate(&mut self, now: Instant) -> Option<u16> {
        while let Some(&(port, at)) = self.resting.front() {
            if now.saturating_duration_since(at) < REST {
                break;
            }
            self.resting.pop_front();
            self.ready.push_back(port);
        }
        let port = self
            .ready
            .pop_back()
            .or_else(|| self.resting.pop_front().map(|(port, _)| port))?;
        self.in_use.insert(port);
        Some(port)
    }

    /// Returns a port freed at `now`; freeing one that is not in use does
    /// nothing.
    pub fn release(&mut self, port: u16, now: Instant) {
        if self.in_use.remove(&port) {
            self.resting.push_back((port, now));
        }
    }

    /// Returns a port that could not be bound (another program holds it):
    /// tried again only after every other free port.
    pub fn release_unusable(&mut self, port: u16) {
        if self.in_use.remove(&port) {
            self.ready.push_front(port);
        }
    }

    pub fn in_use(&self) -> usize {
        self.in_use.len()
    }

    pub fn capacity(&self) -> usize {
        self.in_use.len() + self.resting.len() + self.ready.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_even_ports_lowest_first_and_takes_them_back() {
        let t = Instant::now();
        let mut pool = PortPool::new(20001, 20006);
        assert_eq!(pool.capacity(), 3);
        let a = pool.allocate(t).unwrap();
        let b = pool.allocate(t).unwrap();
        let c = pool.allocate(t).unwrap();
        assert_eq!((a, b, c), (20002, 20004, 20006));
        assert_eq!(pool.allocate(t), None);
        pool.release(b, t);
        pool.release(b, t);
        assert_eq!(pool.in_use(), 2);
        assert_eq!(pool.capacity(), 3);
        // The only free port, though still resting: better than no call.
        assert_eq!(pool.allocate(t), Some(b));
    }

    #[test]
    fn a_freed_port_rests_before_another_call_has_it() {
        let t = Instant::now();
        let mut pool = PortPool::new(20000, 20010);
        let a = pool.allocate(t).unwrap();
        pool.release(a, t);
        // Unused ports come first while it rests...
        let resting = REST - Duration::from_millis(1);
        assert_eq!(pool.allocate(t + resting), Some(20002));
        // ...and then it, before any port never used.
        assert_eq!(pool.allocate(t + REST), Some(a));
    }

    #[test]
    fn of_the_rested_ports_the_one_freed_last_comes_first() {
        let t = Instant::now();
        let mut pool = PortPool::new(20000, 20010);
        let ports: Vec<u16> = (0..4).map(|_| pool.allocate(t).unwrap()).collect();
        for (i, &port) in ports.iter().enumerate() {
            pool.release(port, t + Duration::from_millis(10 * i as u64));
        }
        let later = t + REST + Duration::from_secs(1);
        let order: Vec<u16> = (0..6).map(|_| pool.allocate(later).unwrap()).collect();
        // Freed last, bound likeliest: 20006, 20004, 20002, 20000; then the
        // ports never used.
        assert_eq!(order, [20006, 20004, 20002, 20000, 20008, 20010]);
    }

    #[test]
    fn every_port_resting_the_longest_rested_is_handed_out() {
        let t = Instant::now();
        let mut pool = PortPool::new(20000, 20004);
        let ports: Vec<u16> = (0..3).map(|_| pool.allocate(t).unwrap()).collect();
        pool.release(ports[1], t);
        pool.release(ports[0], t + Duration::from_millis(5));
        assert_eq!(pool.allocate(t + Duration::from_millis(6)), Some(ports[1]));
    }

    #[test]
    fn a_port_another_program_holds_is_tried_after_every_other() {
        let t = Instant::now();
        let mut pool = PortPool::new(20000, 20006);
        let held = pool.allocate(t).unwrap();
        pool.release_unusable(held);
        let later = t + REST * 2;
        let order: Vec<u16> = (0..4).map(|_| pool.allocate(later).unwrap()).collect();
        assert_eq!(order, [20002, 20004, 20006, held]);
    }
}
