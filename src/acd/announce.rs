//! What a waiting caller is told every so often: their place in line and
//! the estimated wait. Sans-IO, fed by the ACD's edge.
//!
//! The estimate is the place in line times the mean of the last handle
//! times, over the agents at work. A place is never announced higher than
//! the last one this caller heard: a caller told "third" is not told
//! "fifth" because a key customer arrived (the real order still rules who
//! is served).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::{AgentId, CallId};

/// How many recent handle times the estimate averages.
const WINDOW: usize = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announcement {
    pub call: CallId,
    /// 1 = next.
    pub position: usize,
    /// Whole minutes, at least 1; none when nobody who could take the
    /// call is at work (no honest estimate then).
    pub wait_minutes: Option<u64>,
}

#[derive(Debug)]
pub struct Announcer {
    every: Duration,
    /// Waiting calls: next announcement and the last place told.
    waiting: HashMap<CallId, (Instant, Option<usize>)>,
    /// Calls being handled: which agent, since when.
    talking: HashMap<AgentId, Instant>,
    handle_times: VecDeque<Duration>,
    /// Used until real handle times are known.
    default_handle: Duration,
}

impl Announcer {
    pub fn new(every: Duration, default_handle: Duration) -> Self {
        Self {
            every,
            waiting: HashMap::new(),
            talking: HashMap::new(),
            handle_times: VecDeque::new(),
            default_handle,
        }
    }

    pub fn handle_queued(&mut self, now: Instant, call: CallId) {
        self.waiting.insert(call, (now + self.every, None));
    }

    /// Answered, abandoned or gone to the fallback: no more announcements.
    pub fn handle_left(&mut self, call: CallId) {
        self.waiting.remove(&call);
    }

    pub fn handle_connected(&mut self, now: Instant, call: CallId, agent: AgentId) {
        self.waiting.remove(&call);
        self.talking.insert(agent, now);
    }

    pub fn handle_call_ended(&mut self, now: Instant, agent: AgentId) {
        if let Some(since) = self.talking.remove(&agent) {
            self.handle_times
                .push_back(now.saturating_duration_since(since));
            if self.handle_times.len() > WINDOW {
                self.handle_times.pop_front();
            }
        }
    }

    pub fn mean_handle(&self) -> Duration {
        if self.handle_times.is_empty() {
            return self.default_handle;
        }
        self.handle_times.iter().sum::<Duration>() / self.handle_times.len() as u32
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.waiting.values().map(|(at, _)| *at).min()
    }

    /// Announcements due at `now`; `position` gives a call's place in its
    /// queue, `agents` how many agents who could take it are at work.
    pub fn handle_timeout(
        &mut self,
        now: Instant,
        position: impl Fn(CallId) -> Option<usize>,
        agents: impl Fn(CallId) -> usize,
    ) -> Vec<Announcement> {
        let mean = self.mean_handle();
        let mut due = Vec::new();
        for (call, (at, last)) in self.waiting.iter_mut() {
            if *at > now {
                continue;
            }
            *at = now + self.every;
            let Some(real) = position(*call) else {
                continue; // ringing an agent, or held for one
            };
            let told = last.map_or(real, |l| real.min(l));
            *last = Some(told);
            let agents = agents(*call);
            let secs = mean.as_secs_f64() * told as f64 / agents.max(1) as f64;
            due.push(Announcement {
                call: *call,
                position: told,
                wait_minutes: (agents > 0).then(|| ((secs / 60.0).ceil() as u64).max(1)),
            });
        }
        due.sort_by_key(|a| a.call);
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn place_and_wait_every_interval_never_going_backwards() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut a = Announcer::new(30 * s, 180 * s);
        a.handle_queued(t0, CallId(1));
        assert!(a.handle_timeout(t0 + 29 * s, |_| Some(3), |_| 2).is_empty());
        let first = a.handle_timeout(t0 + 30 * s, |_| Some(3), |_| 2);
        // 3rd in line, 180 s each, 2 agents: 4.5 min -> 5.
        assert_eq!(
            first,
            [Announcement {
                call: CallId(1),
                position: 3,
                wait_minutes: Some(5)
            }]
        );
        // A key customer arrived ahead: the caller is not told "4th".
        let second = a.handle_timeout(t0 + 60 * s, |_| Some(4), |_| 2);
        assert_eq!(second[0].position, 3);
        let third = a.handle_timeout(t0 + 90 * s, |_| Some(1), |_| 2);
        assert_eq!((third[0].position, third[0].wait_minutes), (1, Some(2)));
        // Nobody at work who could take it: the place, but no minutes.
        let fourth = a.handle_timeout(t0 + 120 * s, |_| Some(1), |_| 0);
        assert_eq!((fourth[0].position, fourth[0].wait_minutes), (1, None));
        a.handle_left(CallId(1));
        assert_eq!(a.poll_timeout(), None);
    }

    #[test]
    fn the_estimate_learns_from_real_handle_times() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut a = Announcer::new(30 * s, 600 * s);
        a.handle_connected(t0, CallId(7), AgentId(1));
        a.handle_call_ended(t0 + 60 * s, AgentId(1));
        a.handle_connected(t0, CallId(8), AgentId(2));
        a.handle_call_ended(t0 + 120 * s, AgentId(2));
        assert_eq!(a.mean_handle(), 90 * s);
        a.handle_queued(t0, CallId(9));
        let due = a.handle_timeout(t0 + 30 * s, |_| Some(2), |_| 1);
        assert_eq!(due[0].wait_minutes, Some(3));
        // Ringing an agent: nothing said.
        assert!(a.handle_timeout(t0 + 60 * s, |_| None, |_| 1).is_empty());
    }
}
