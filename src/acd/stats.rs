//! Contact-centre figures from what the router does: per queue the calls
//! answered, abandoned and sent to the fallback, their waits, service level
//! (both common definitions), ASA, AHT and abandon rate over a sliding
//! window, and the agents' occupancy. Sans-IO like the router: fed the
//! same events and outputs with `now`, asked for a [`Report`].
//!
//! Definitions (T = the threshold; counts over the window):
//! * answered within T / answered — service level of answered calls;
//! * answered within T / offered — of every call that entered the queue
//!   (answered + abandoned + sent to the fallback); abandons within T are,
//!   by setting, left out of the count (`ignore`, the default), counted as
//!   missing the target (`fail`) or as meeting it (`meet`). The abandon rate
//!   leaves them out too when they are ignored;
//! * ASA: mean wait of answered calls; AHT: mean talk + wrap-up;
//! * occupancy: time on calls and wrapping up / time logged in and not
//!   paused (available, ringing, on calls, wrapping up).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::{AcdOutput, AgentId, AgentState, CallId, LeftReason};

/// How abandons within the threshold count in the offered definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ShortAbandons {
    /// Left out of the count (neither met nor missed).
    #[default]
    Ignore,
    /// Counted as missing the target.
    Fail,
    /// Counted as meeting it.
    Meet,
}

#[derive(Debug, Clone)]
pub struct StatsConfig {
    pub threshold: Duration,
    pub short_abandons: ShortAbandons,
    pub window: Duration,
}

/// What one call or one handled conversation adds (also recorded by the
/// caller into counters and histograms, which never forget).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Observed {
    Answered {
        queue: usize,
        wait: Duration,
    },
    Abandoned {
        queue: usize,
        wait: Duration,
    },
    /// Waited the queue's maximum: to the fallback (a voice message).
    Overflowed {
        queue: usize,
        wait: Duration,
    },
    /// Talk plus wrap-up of one answered call.
    Handled {
        queue: usize,
        agent: AgentId,
        time: Duration,
    },
    Offered {
        agent: AgentId,
    },
    Missed {
        agent: AgentId,
    },
}

/// One queue's figures over the window; `None` where nothing was counted.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct QueueReport {
    pub answered: u32,
    pub answered_in_time: u32,
    pub abandoned: u32,
    pub abandoned_in_time: u32,
    pub overflowed: u32,
    pub service_level_answered: Option<f64>,
    pub service_level_offered: Option<f64>,
    pub abandon_rate: Option<f64>,
    pub asa_seconds: Option<f64>,
    pub aht_seconds: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    pub queues: Vec<QueueReport>,
    pub occupancy: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Activity {
    /// Logged out or paused: not counted.
    Away,
    Idle,
    Busy,
}

/// What the figures are computed from: the queue's and the agents' side
/// of the call events (see `call::event`), each with its time.
#[derive(Debug, Clone, PartialEq)]
pub enum Fact {
    /// Entered queue number `queue` (router order).
    Queued {
        call: CallId,
        queue: usize,
    },
    /// An agent's phone rang with a call.
    Offered {
        agent: AgentId,
    },
    /// It did not take it.
    Missed {
        agent: AgentId,
    },
    Answered {
        call: CallId,
        agent: AgentId,
    },
    /// The call is over (no more agents will take it).
    Over {
        call: CallId,
    },
    /// Left the queue without an agent: abandoned, or (overflow) sent to
    /// the queue's fallback after its longest wait.
    Left {
        call: CallId,
        overflow: bool,
    },
    AgentChanged {
        agent: AgentId,
        state: AgentState,
    },
}

impl Fact {
    /// The facts in the router's own outputs (tests drive the router and
    /// the figures together; live, the call events carry these).
    pub fn from_output(out: &AcdOutput) -> Option<Fact> {
        Some(match out {
            AcdOutput::Offer { agent, .. } => Fact::Offered { agent: *agent },
            AcdOutput::Missed { agent, .. } => Fact::Missed { agent: *agent },
            AcdOutput::Connected { call, agent } => Fact::Answered {
                call: *call,
                agent: *agent,
            },
            AcdOutput::Left { call, reason } => Fact::Left {
                call: *call,
                overflow: *reason != LeftReason::Abandoned,
            },
            AcdOutput::AgentChanged { agent, state } => Fact::AgentChanged {
                agent: *agent,
                state: state.clone(),
            },
            AcdOutput::Withdraw { .. } | AcdOutput::TransferRefused { .. } => return None,
        })
    }
}

pub struct Stats {
    cfg: StatsConfig,
    queues: usize,
    waiting: HashMap<CallId, (usize, Instant)>,
    /// Agents on a call (or wrapping one up): queue, connected at.
    handling: HashMap<AgentId, (usize, Instant)>,
    /// Calls answered and not over: the queue that answered them. A call
    /// counts once as answered; an agent it is transferred to handles it
    /// in that queue.
    answered: HashMap<CallId, usize>,
    activity: HashMap<AgentId, (Activity, Instant)>,
    recent: VecDeque<(Instant, Observed)>,
    /// Finished stretches of agent time: (start, end, busy).
    stretches: VecDeque<(Instant, Instant, bool)>,
    out: VecDeque<Observed>,
}

impl Stats {
    pub fn new(cfg: StatsConfig, queues: usize) -> Self {
        Self {
            cfg,
            queues,
            waiting: HashMap::new(),
            handling: HashMap::new(),
            answered: HashMap::new(),
            activity: HashMap::new(),
            recent: VecDeque::new(),
            stretches: VecDeque::new(),
            out: VecDeque::new(),
        }
    }

    /// Takes one fact at the time it happened. Live, the ACD thread feeds
    /// them as they come; a report replays them from the log: the same
    /// facts at the same times give the same figures.
    pub fn handle(&mut self, now: Instant, fact: &Fact) {
        match fact {
            Fact::Queued { call, queue } => {
                // Back in a queue after a transfer: answered already.
                if *queue < self.queues && !self.answered.contains_key(call) {
                    self.waiting.entry(*call).or_insert((*queue, now));
                }
            }
            Fact::Offered { agent } => self.observe(now, Observed::Offered { agent: *agent }),
            Fact::Missed { agent } => self.observe(now, Observed::Missed { agent: *agent }),
            Fact::Answered { call, agent } => {
                if let Some((queue, since)) = self.waiting.remove(call) {
                    let wait = now.saturating_duration_since(since);
                    self.observe(now, Observed::Answered { queue, wait });
                    self.handling.insert(*agent, (queue, now));
                    self.answered.insert(*call, queue);
                } else if let Some(&queue) = self.answered.get(call) {
                    // Transferred: the new agent's handle time begins.
                    self.handling.insert(*agent, (queue, now));
                }
            }
            Fact::Over { call } => {
                self.answered.remove(call);
                self.waiting.remove(call);
            }
            Fact::Left { call, overflow } => {
                if let Some((queue, since)) = self.waiting.remove(call) {
                    let wait = now.saturating_duration_since(since);
                    self.observe(
                        now,
                        if *overflow {
                            Observed::Overflowed { queue, wait }
                        } else {
                            Observed::Abandoned { queue, wait }
                        },
                    );
                }
            }
            Fact::AgentChanged { agent, state } => {
                let activity = match state {
                    AgentState::LoggedOut | AgentState::Paused { .. } => Activity::Away,
                    AgentState::Available { .. } | AgentState::Reserved { .. } => Activity::Idle,
                    AgentState::OnCall { .. } | AgentState::WrapUp { .. } => Activity::Busy,
                };
                // Out of the call and its wrap-up: one handled call.
                if !matches!(state, AgentState::OnCall { .. } | AgentState::WrapUp { .. })
                    && let Some((queue, since)) = self.handling.remove(agent)
                {
                    let time = now.saturating_duration_since(since);
                    self.observe(
                        now,
                        Observed::Handled {
                            queue,
                            agent: *agent,
                            time,
                        },
                    );
                }
                if let Some((was, since)) = self.activity.insert(*agent, (activity, now))
                    && was != Activity::Away
                    && now > since
                {
                    self.stretches
                        .push_back((since, now, was == Activity::Busy));
                }
            }
        }
    }

    fn observe(&mut self, now: Instant, o: Observed) {
        self.recent.push_back((now, o));
        self.out.push_back(o);
    }

    /// What happened since the last poll, for counters and histograms.
    pub fn poll_observed(&mut self) -> Option<Observed> {
        self.out.pop_front()
    }

    /// The figures over the window ending `now`.
    pub fn report(&mut self, now: Instant) -> Report {
        let start = now.checked_sub(self.cfg.window);
        if let Some(start) = start {
            while self.recent.front().is_some_and(|(at, _)| *at < start) {
                self.recent.pop_front();
            }
            while self
                .stretches
                .front()
                .is_some_and(|(_, end, _)| *end < start)
            {
                self.stretches.pop_front();
            }
        }
        let t = self.cfg.threshold;
        let mut queues = vec![QueueReport::default(); self.queues];
        let mut waits = vec![Duration::ZERO; self.queues];
        let mut handled = vec![(0u32, Duration::ZERO); self.queues];
        for (_, o) in &self.recent {
            match *o {
                Observed::Answered { queue, wait } => {
                    let q = &mut queues[queue];
                    q.answered += 1;
                    q.answered_in_time += (wait <= t) as u32;
                    waits[queue] += wait;
                }
                Observed::Abandoned { queue, wait } => {
                    let q = &mut queues[queue];
                    q.abandoned += 1;
                    q.abandoned_in_time += (wait <= t) as u32;
                }
                Observed::Overflowed { queue, .. } => queues[queue].overflowed += 1,
                Observed::Handled { queue, time, .. } => {
                    handled[queue].0 += 1;
                    handled[queue].1 += time;
                }
                Observed::Offered { .. } | Observed::Missed { .. } => {}
            }
        }
        let ratio = |n: u32, d: u32| (d > 0).then(|| n as f64 / d as f64);
        for (i, q) in queues.iter_mut().enumerate() {
            let offered = q.answered + q.abandoned + q.overflowed;
            q.service_level_answered = ratio(q.answered_in_time, q.answered);
            let (met, counted, abandoned) = match self.cfg.short_abandons {
                ShortAbandons::Ignore => (
                    q.answered_in_time,
                    offered - q.abandoned_in_time,
                    q.abandoned - q.abandoned_in_time,
                ),
                ShortAbandons::Fail => (q.answered_in_time, offered, q.abandoned),
                ShortAbandons::Meet => (
                    q.answered_in_time + q.abandoned_in_time,
                    offered,
                    q.abandoned,
                ),
            };
            q.service_level_offered = ratio(met, counted);
            q.abandon_rate = ratio(abandoned, counted);
            q.asa_seconds = (q.answered > 0).then(|| waits[i].as_secs_f64() / q.answered as f64);
            q.aht_seconds =
                (handled[i].0 > 0).then(|| handled[i].1.as_secs_f64() / handled[i].0 as f64);
        }
        // Agent time: finished stretches and the ones still running, cut
        // at the window's start.
        let (mut busy, mut staffed) = (0.0, 0.0);
        let open = self
            .activity
            .values()
            .filter(|(a, _)| *a != Activity::Away)
            .map(|(a, since)| (*since, now, *a == Activity::Busy));
        for (from, to, is_busy) in self.stretches.iter().copied().chain(open) {
            let from = start.map_or(from, |s| from.max(s));
            let secs = to.saturating_duration_since(from).as_secs_f64();
            staffed += secs;
            if is_busy {
                busy += secs;
            }
        }
        Report {
            queues,
            occupancy: (staffed > 0.0).then(|| busy / staffed),
        }
    }

    /// The longest wait now, per queue (zero where nobody waits).
    pub fn longest_waits(&self, now: Instant) -> Vec<Duration> {
        let mut longest = vec![Duration::ZERO; self.queues];
        for (queue, since) in self.waiting.values() {
            let w = now.saturating_duration_since(*since);
            longest[*queue] = longest[*queue].max(w);
        }
        longest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acd::{AcdConfig, AgentConfig, Language, QueueConfig, QueueId, Router, SkillId};

    const S: Duration = Duration::from_secs(1);

    /// The real router and the statistics fed from it, on a fake clock,
    /// the way the ACD thread runs them.
    struct Day {
        router: Router,
        stats: Stats,
        metrics: crate::metrics::Metrics,
        start: Instant,
    }

    impl Day {
        fn new(short_abandons: ShortAbandons) -> Self {
            let queue = QueueConfig {
                id: QueueId(0),
                skill: SkillId(0),
                good_level: 5,
                min_level: 3,
                widen_after: 600 * S,
                widened_level: 1,
                neighbours: Vec::new(),
                max_wait: 3600 * S,
                when_empty: crate::acd::WhenEmpty::Wait,
            };
            let agent = AgentConfig {
                id: AgentId(7),
                skills: vec![(SkillId(0), 8)],
                languages: vec![Language::Zh],
                wrap_up: 10 * S,
            };
            let cfg = StatsConfig {
                threshold: 20 * S,
                short_abandons,
                window: 3 * 3600 * S,
            };
            let mut day = Day {
                router: Router::new(AcdConfig::default(), vec![queue], vec![agent]),
                stats: Stats::new(cfg, 1),
                metrics: crate::metrics::Metrics::new(),
                start: Instant::now(),
            };
            // The agent starts the day logged in, on a break.
            day.at(0, |r, now| {
                r.handle_login(now, AgentId(7));
                r.handle_pause(now, AgentId(7), "break");
            });
            day
        }

        /// Runs `f` at `t` seconds into the day, then the router's timers,
        /// and feeds every output to the statistics (and the metrics).
        fn at(&mut self, t: u64, f: impl FnOnce(&mut Router, Instant)) -> Vec<AcdOutput> {
            let now = self.start + Duration::from_secs(t);
            f(&mut self.router, now);
            self.router.handle_timeout(now);
            let mut outs = Vec::new();
            while let Some(o) = self.router.poll_output() {
                if let Some(fact) = Fact::from_output(&o) {
                    self.stats.handle(now, &fact);
                }
                outs.push(o);
            }
            while let Some(o) = self.stats.poll_observed() {
                self.metrics.acd_observed(o, &["general".into()], 20 * S);
            }
            outs
        }

        /// A call at `t` answered after `wait` s, talked 30 s, wrapped up
        /// 10 s; the agent stays ready 20 s more, then takes a break.
        fn answered(&mut self, call: u64, t: u64, wait: u64) {
            let key = CallId(call);
            self.queued(key, t);
            let outs = self.at(t + wait, |r, now| r.handle_ready(now, AgentId(7)));
            assert!(outs.contains(&AcdOutput::Offer {
                call: key,
                agent: AgentId(7)
            }));
            self.at(t + wait, |r, now| r.handle_answered(now, key, AgentId(7)));
            self.at(t + wait + 30, |r, now| r.handle_call_ended(now, AgentId(7)));
            self.at(t + wait + 40, |_, _| {}); // wrap-up over
            self.at(t + wait + 60, |r, now| {
                r.handle_pause(now, AgentId(7), "break")
            });
        }

        fn abandoned(&mut self, call: u64, t: u64, wait: u64) {
            let key = CallId(call);
            self.queued(key, t);
            self.at(t + wait, |r, now| r.handle_call_abandoned(now, key));
        }

        fn queued(&mut self, key: CallId, t: u64) {
            self.stats.handle(
                self.start + Duration::from_secs(t),
                &Fact::Queued {
                    call: key,
                    queue: 0,
                },
            );
            self.at(t, |r, now| {
                r.handle_call_queued(now, key, QueueId(0), Language::Zh, 0, None)
            });
        }

        /// Ten calls, 200 s apart: eight answered after 5, 10, 15, 19, 20,
        /// 25, 40 and 60 s (five within the 20 s threshold), two abandoned
        /// after 3 s (within it) and 30 s.
        fn scripted(short_abandons: ShortAbandons) -> (Report, String) {
            let mut day = Day::new(short_abandons);
            for (i, wait) in [5, 10, 15, 19, 20, 25, 40, 60].into_iter().enumerate() {
                day.answered(i as u64, 200 * i as u64 + 100, wait);
            }
            day.abandoned(8, 1700, 3);
            day.abandoned(9, 1900, 30);
            let now = day.start + 2000 * S;
            let report = day.stats.report(now);
            day.metrics
                .set_acd_report(&report, &["general".into()], &day.stats.longest_waits(now));
            (report, day.metrics.render())
        }
    }

    #[test]
    fn ten_scripted_calls_give_the_exact_service_level_abandon_rate_asa_and_aht() {
        let (report, text) = Day::scripted(ShortAbandons::Ignore);
        let q = &report.queues[0];
        assert_eq!(
            (
                q.answered,
                q.answered_in_time,
                q.abandoned,
                q.abandoned_in_time
            ),
            (8, 5, 2, 1)
        );
        assert_eq!(q.service_level_answered, Some(5.0 / 8.0));
        // The 3 s abandon is left out: 5 of 9.
        assert_eq!(q.service_level_offered, Some(5.0 / 9.0));
        assert_eq!(q.abandon_rate, Some(1.0 / 9.0));
        assert_eq!(q.asa_seconds, Some(194.0 / 8.0));
        assert_eq!(q.aht_seconds, Some(40.0));
        // Staffed 60 s per answered call (ringing is instant), busy 40.
        assert_eq!(report.occupancy, Some(320.0 / 480.0));
        for line in [
            "hotline_service_level_ratio{definition=\"answered\",queue=\"general\"} 0.625",
            "hotline_service_level_ratio{definition=\"offered\",queue=\"general\"} 0.5555555555555556",
            "hotline_abandon_ratio{queue=\"general\"} 0.1111111111111111",
            "hotline_asa_seconds{queue=\"general\"} 24.25",
            "hotline_aht_seconds{queue=\"general\"} 40",
            "hotline_occupancy_ratio 0.6666666666666666",
            "hotline_queue_calls_total{outcome=\"answered\",queue=\"general\"} 8",
            "hotline_queue_calls_total{outcome=\"abandoned\",queue=\"general\"} 2",
            "hotline_queue_answered_within_threshold_total{queue=\"general\"} 5",
            "hotline_queue_abandoned_within_threshold_total{queue=\"general\"} 1",
            "hotline_queue_wait_seconds_bucket{outcome=\"answered\",queue=\"general\",le=\"20\"} 5",
            "hotline_queue_wait_seconds_sum{outcome=\"answered\",queue=\"general\"} 194",
            "hotline_handle_seconds_count{queue=\"general\"} 8",
            "hotline_agent_offers_total{agent=\"7\"} 8",
            "hotline_longest_wait_seconds{queue=\"general\"} 0",
        ] {
            assert!(text.contains(line), "{line}\n{text}");
        }
    }

    #[test]
    fn short_abandons_count_as_failing_or_meeting_by_setting() {
        let (report, _) = Day::scripted(ShortAbandons::Fail);
        assert_eq!(report.queues[0].service_level_offered, Some(5.0 / 10.0));
        assert_eq!(report.queues[0].abandon_rate, Some(2.0 / 10.0));
        let (report, _) = Day::scripted(ShortAbandons::Meet);
        assert_eq!(report.queues[0].service_level_offered, Some(6.0 / 10.0));
        assert_eq!(report.queues[0].service_level_answered, Some(5.0 / 8.0));
    }

    #[test]
    fn the_window_forgets_old_calls_and_an_empty_queue_has_no_ratio() {
        let cfg = StatsConfig {
            threshold: 20 * S,
            short_abandons: ShortAbandons::Ignore,
            window: 60 * S,
        };
        let mut stats = Stats::new(cfg, 2);
        let t0 = Instant::now();
        stats.handle(
            t0,
            &Fact::Queued {
                call: CallId(1),
                queue: 0,
            },
        );
        assert_eq!(stats.longest_waits(t0 + 7 * S), [7 * S, Duration::ZERO]);
        stats.handle(
            t0 + 30 * S,
            &Fact::Left {
                call: CallId(1),
                overflow: true,
            },
        );
        let r = stats.report(t0 + 31 * S);
        assert_eq!(r.queues[0].overflowed, 1);
        assert_eq!(r.queues[0].service_level_offered, Some(0.0));
        assert_eq!(r.queues[1], QueueReport::default());
        let r = stats.report(t0 + 200 * S);
        assert_eq!(r.queues[0], QueueReport::default(), "out of the window");
        assert_eq!(r.occupancy, None);
    }

    #[test]
    fn missed_offers_are_counted_per_agent() {
        let mut day = Day::new(ShortAbandons::Ignore);
        day.queued(CallId(1), 10);
        day.at(10, |r, now| r.handle_ready(now, AgentId(7)));
        day.at(12, |r, now| r.handle_refused(now, CallId(1), AgentId(7)));
        let text = day.metrics.render();
        assert!(
            text.contains("hotline_agent_no_answers_total{agent=\"7\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("hotline_agent_offers_total{agent=\"7\"} 2"),
            "{text}"
        );
    }
}
