//! What a waiting caller is told every so often: their place in line and
//! the estimated wait. Sans-IO, fed by the ACD's edge.
//!
//! The estimate: with `n` agents at work who could take the call, each
//! freeing a place every `h` on average (the mean of the last handle
//! times, talk and wrap-up: from the answer until the agent is available
//! again), the caller `k`-th in line is reached after about `k` of those
//! frees, `k * h / n`. A place is never announced higher than the last one
//! this caller heard: a caller told "third" is not told "fifth" because a
//! key customer arrived (the real order still rules who is served).
//!
//! The estimate is checked against what happened: each caller's estimate
//! when they joined the queue is kept, and when an agent answers, the
//! estimate and the real wait go out as a [`WaitPredicted`] (the metrics'
//! `hotline_queue_wait_prediction_error_seconds`).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::{AgentId, CallId, QueueId};

/// How many recent handle times the estimate averages: enough that one
/// long call moves it little (the mean of 200 exponential times is within
/// about 7 % of the truth).
const WINDOW: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announcement {
    pub call: CallId,
    /// 1 = next.
    pub position: usize,
    /// Whole minutes, at least 1; none when nobody who could take the
    /// call is at work (no honest estimate then).
    pub wait_minutes: Option<u64>,
    /// The estimate reaches the queue's threshold: offer a callback that
    /// keeps the place.
    pub offer_callback: bool,
}

/// A caller answered by an agent: the wait estimated when they joined the
/// queue, and the wait they had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitPredicted {
    pub call: CallId,
    pub queue: QueueId,
    pub predicted: Duration,
    pub waited: Duration,
}

#[derive(Debug)]
struct Waiting {
    queue: QueueId,
    queued: Instant,
    /// The estimate when the caller joined (none: nobody at work).
    predicted: Option<Duration>,
    next: Instant,
    told: Option<usize>,
}

#[derive(Debug)]
pub struct Announcer {
    every: Duration,
    waiting: HashMap<CallId, Waiting>,
    /// Agents with a caller: since the answer.
    busy: HashMap<AgentId, Instant>,
    handle_times: VecDeque<Duration>,
    /// Used until real handle times are known.
    default_handle: Duration,
    /// Per queue: the estimated wait from which a callback is offered
    /// (zero: never).
    callback_after: Vec<Duration>,
}

impl Announcer {
    pub fn new(every: Duration, default_handle: Duration) -> Self {
        Self {
            every,
            waiting: HashMap::new(),
            busy: HashMap::new(),
            handle_times: VecDeque::new(),
            default_handle,
            callback_after: Vec::new(),
        }
    }

    /// Callbacks offered per queue (by `QueueId`) from these estimates on.
    pub fn with_callback_after(mut self, after: Vec<Duration>) -> Self {
        self.callback_after = after;
        self
    }

    /// A caller joined `queue`, `position`-th in line (none: an agent is
    /// being offered the call already) with `agents` at work who could
    /// take it. A caller put back in line (an agent did not answer) keeps
    /// the estimate and the time they first joined.
    pub fn handle_queued(
        &mut self,
        now: Instant,
        call: CallId,
        queue: QueueId,
        position: Option<usize>,
        agents: usize,
    ) {
        let predicted = match position {
            None => Some(Duration::ZERO),
            Some(k) => self.estimate(k, agents),
        };
        self.waiting.entry(call).or_insert(Waiting {
            queue,
            queued: now,
            predicted,
            next: now + self.every,
            told: None,
        });
    }

    /// Abandoned or gone to the fallback: no more announcements.
    pub fn handle_left(&mut self, call: CallId) {
        self.waiting.remove(&call);
    }

    /// An agent answered: the estimate against the real wait.
    pub fn handle_connected(
        &mut self,
        now: Instant,
        call: CallId,
        agent: AgentId,
    ) -> Option<WaitPredicted> {
        self.busy.insert(agent, now);
        let w = self.waiting.remove(&call)?;
        Some(WaitPredicted {
            call,
            queue: w.queue,
            predicted: w.predicted?,
            waited: now.saturating_duration_since(w.queued),
        })
    }

    /// An agent is available again (after talk and wrap-up): one more
    /// handle time. `available` false (paused, logged out) ends the call's
    /// measure without one.
    pub fn handle_agent_free(&mut self, now: Instant, agent: AgentId, available: bool) {
        let Some(since) = self.busy.remove(&agent) else {
            return;
        };
        if available {
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

    /// The wait of the caller `position`-th in line with `agents` at work
    /// who could take it; none with nobody at work.
    pub fn estimate(&self, position: usize, agents: usize) -> Option<Duration> {
        (agents > 0).then(|| self.mean_handle() * position as u32 / agents as u32)
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.waiting.values().map(|w| w.next).min()
    }

    /// Announcements due at `now`; `position` gives a call's place in its
    /// queue, `agents` how many agents who could take it are at work.
    pub fn handle_timeout(
        &mut self,
        now: Instant,
        position: impl Fn(CallId) -> Option<usize>,
        agents: impl Fn(CallId) -> usize,
    ) -> Vec<Announcement> {
        let mut due = Vec::new();
        for (call, w) in self.waiting.iter_mut() {
            if w.next > now {
                continue;
            }
            w.next = now + self.every;
            let Some(real) = position(*call) else {
                continue; // ringing an agent, or held for one
            };
            let told = w.told.map_or(real, |l| real.min(l));
            w.told = Some(told);
            due.push((*call, w.queue, told, agents(*call)));
        }
        let mut due: Vec<Announcement> = due
            .into_iter()
            .map(|(call, queue, position, agents)| {
                let estimate = self.estimate(position, agents);
                let after = self
                    .callback_after
                    .get(queue.0 as usize)
                    .copied()
                    .unwrap_or_default();
                Announcement {
                    call,
                    position,
                    wait_minutes: estimate.map(|d| (d.as_secs_f64() / 60.0).ceil().max(1.0) as u64),
                    offer_callback: !after.is_zero() && estimate.is_some_and(|d| d >= after),
                }
            })
            .collect();
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
        a.handle_queued(t0, CallId(1), QueueId(0), Some(3), 2);
        assert!(a.handle_timeout(t0 + 29 * s, |_| Some(3), |_| 2).is_empty());
        let first = a.handle_timeout(t0 + 30 * s, |_| Some(3), |_| 2);
        // 3rd in line, 180 s each, 2 agents: 4.5 min -> 5.
        assert_eq!(
            first,
            [Announcement {
                call: CallId(1),
                position: 3,
                wait_minutes: Some(5),
                offer_callback: false,
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
    fn a_callback_is_offered_from_the_queues_threshold_on() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        // Queue 0 offers from 5 min, queue 1 never.
        let mut a =
            Announcer::new(30 * s, 120 * s).with_callback_after(vec![300 * s, Duration::ZERO]);
        a.handle_queued(t0, CallId(1), QueueId(0), Some(2), 1);
        a.handle_queued(t0, CallId(2), QueueId(0), Some(1), 1);
        a.handle_queued(t0, CallId(3), QueueId(1), Some(9), 1);
        let places = [(CallId(1), 3), (CallId(2), 2), (CallId(3), 9)];
        let due = a.handle_timeout(
            t0 + 30 * s,
            |c| places.iter().find(|p| p.0 == c).map(|p| p.1),
            |_| 1,
        );
        let offered: Vec<(CallId, bool)> = due.iter().map(|d| (d.call, d.offer_callback)).collect();
        // 3rd: 6 min, offered; 2nd: 4 min, not yet; queue 1: never.
        assert_eq!(
            offered,
            [(CallId(1), true), (CallId(2), false), (CallId(3), false)]
        );
        // Nobody at work: no estimate, no offer.
        let due = a.handle_timeout(t0 + 60 * s, |_| Some(5), |_| 0);
        assert!(due.iter().all(|d| !d.offer_callback));
    }

    #[test]
    fn the_estimate_learns_from_real_handle_times() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut a = Announcer::new(30 * s, 600 * s);
        a.handle_connected(t0, CallId(7), AgentId(1));
        // Talk and wrap-up: until the agent is available again.
        a.handle_agent_free(t0 + 60 * s, AgentId(1), true);
        a.handle_connected(t0, CallId(8), AgentId(2));
        a.handle_agent_free(t0 + 120 * s, AgentId(2), true);
        // A call that ends in a pause is no measure of the next free place.
        a.handle_connected(t0, CallId(10), AgentId(3));
        a.handle_agent_free(t0 + 900 * s, AgentId(3), false);
        assert_eq!(a.mean_handle(), 90 * s);
        a.handle_queued(t0, CallId(9), QueueId(0), Some(2), 1);
        let due = a.handle_timeout(t0 + 30 * s, |_| Some(2), |_| 1);
        assert_eq!(due[0].wait_minutes, Some(3));
        // Ringing an agent: nothing said.
        assert!(a.handle_timeout(t0 + 60 * s, |_| None, |_| 1).is_empty());
    }

    #[test]
    fn each_answered_caller_brings_the_estimate_made_when_they_joined() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut a = Announcer::new(30 * s, 120 * s);
        // 3rd in line, 2 agents, 120 s each: 180 s expected.
        a.handle_queued(t0, CallId(1), QueueId(2), Some(3), 2);
        // Put back in line after an agent's phone rang out: same estimate,
        // same start.
        a.handle_queued(t0 + 100 * s, CallId(1), QueueId(2), Some(1), 2);
        assert_eq!(
            a.handle_connected(t0 + 150 * s, CallId(1), AgentId(4)),
            Some(WaitPredicted {
                call: CallId(1),
                queue: QueueId(2),
                predicted: 180 * s,
                waited: 150 * s,
            })
        );
        // Offered at once: expected no wait.
        a.handle_queued(t0, CallId(2), QueueId(0), None, 2);
        let p = a
            .handle_connected(t0 + 4 * s, CallId(2), AgentId(5))
            .unwrap();
        assert_eq!((p.predicted, p.waited), (Duration::ZERO, 4 * s));
        // Nobody at work when the caller joined: no estimate to check.
        a.handle_queued(t0, CallId(3), QueueId(0), Some(1), 0);
        assert_eq!(a.handle_connected(t0 + 60 * s, CallId(3), AgentId(6)), None);
    }
}
