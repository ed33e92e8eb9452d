//! Routing decisions with 10,000 agents over 200 skills and 1,000 /
//! 10,000 / 100,000 calls waiting (criterion). One decision: an agent ends
//! a call and is matched at once with the best waiting call of their
//! queues (`agent_free`), or a new call arrives and finds no free agent
//! (`call_arrives`). The calls' answer and the refill that keeps the sizes
//! steady run outside the timed part (`iter_custom`).
//!
//! Also the window's figures the ACD thread computes once a second
//! (`stats/window_report_12000_calls`).
//!
//! Run: `cargo bench --bench routing`.

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use hotline::acd::{
    AcdConfig, AcdOutput, AgentConfig, AgentId, AgentState, CallId, Language, QueueConfig, QueueId,
    Router, SkillId,
};
use hotline::rng::XorShift;

const AGENTS: u32 = 10_000;
const SKILLS: u16 = 200;

struct World {
    router: Router,
    now: Instant,
    next_call: u64,
    /// Agents on a call, in the order they will end it.
    busy: std::collections::VecDeque<AgentId>,
    rng: XorShift,
}

impl World {
    fn new(waiting: usize) -> Self {
        let mut rng = XorShift::new(0xacd);
        let queues = (0..SKILLS)
            .map(|s| QueueConfig {
                id: QueueId(s),
                skill: SkillId(s),
                good_level: 6,
                min_level: 3,
                widen_after: Duration::from_secs(3600),
                widened_level: 1,
                neighbours: Vec::new(),
                max_wait: Duration::from_secs(86_400),
                when_empty: hotline::acd::WhenEmpty::Wait,
            })
            .collect();
        let agents = (1..=AGENTS)
            .map(|a| AgentConfig {
                id: AgentId(a),
                skills: (0..3)
                    .map(|_| {
                        (
                            SkillId(rng.below(SKILLS as u64) as u16),
                            3 + rng.below(8) as u8,
                        )
                    })
                    .collect(),
                wrap_up: Duration::ZERO,
                languages: vec![Language::Zh],
            })
            .collect();
        let mut w = World {
            router: Router::new(AcdConfig::default(), queues, agents),
            now: Instant::now(),
            next_call: 0,
            busy: Default::default(),
            rng,
        };
        for a in 1..=AGENTS {
            w.router.handle_login(w.now, AgentId(a));
        }
        w.settle();
        // Enough calls to occupy every agent, then the waiting ones.
        while w.busy.len() < AGENTS as usize {
            w.arrive();
            w.settle();
        }
        for _ in 0..waiting {
            w.arrive();
        }
        w.settle();
        w
    }

    fn arrive(&mut self) {
        self.next_call += 1;
        let q = QueueId(self.rng.below(SKILLS as u64) as u16);
        let p = [0, 0, 0, 100, 200][self.rng.below(5) as usize];
        self.router
            .handle_call_queued(self.now, CallId(self.next_call), q, Language::Zh, p, None);
    }

    /// Answers every offer at once.
    fn settle(&mut self) {
        while let Some(o) = self.router.poll_output() {
            if let AcdOutput::Offer { call, agent } = o {
                self.router.handle_answered(self.now, call, agent);
                self.busy.push_back(agent);
            }
        }
    }
}

fn routing(c: &mut Criterion) {
    let mut group = c.benchmark_group("routing");
    for waiting in [1_000usize, 10_000, 100_000] {
        let mut w = World::new(waiting);
        group.bench_function(BenchmarkId::new("agent_free", waiting), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let agent = w.busy.pop_front().expect("busy agents");
                    w.now += Duration::from_millis(1);
                    let t = Instant::now();
                    w.router.handle_call_ended(w.now, agent);
                    timed += t.elapsed();
                    w.settle();
                    w.arrive(); // keep the number waiting steady
                    w.settle();
                    // Stale timers (answered offers) leave the heap as they
                    // would in the running hotline.
                    w.router.handle_timeout(w.now);
                }
                timed
            })
        });
        group.bench_function(BenchmarkId::new("call_arrives", waiting), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    w.next_call += 1;
                    let q = QueueId(w.rng.below(SKILLS as u64) as u16);
                    let t = Instant::now();
                    w.router.handle_call_queued(
                        w.now,
                        CallId(w.next_call),
                        q,
                        Language::Zh,
                        0,
                        None,
                    );
                    timed += t.elapsed();
                    w.settle();
                    // One ends to keep the number waiting steady.
                    let agent = w.busy.pop_front().expect("busy agents");
                    w.now += Duration::from_millis(1);
                    w.router.handle_call_ended(w.now, agent);
                    w.settle();
                    w.router.handle_timeout(w.now);
                }
                timed
            })
        });
        assert!(w.router.waiting(QueueId(0)) > 0 || waiting < 10_000);
    }
    group.finish();
}

/// The ACD thread's once-a-second work besides routing: the window's
/// figures (`acd::stats::Stats::report`) for a 200-agent centre answering
/// 400 calls a minute, 30 minutes deep (12,000 calls, 36,000 observations).
fn window_report(c: &mut Criterion) {
    use hotline::acd::stats::{Fact, ShortAbandons, Stats, StatsConfig};
    let cfg = StatsConfig {
        threshold: Duration::from_secs(20),
        short_abandons: ShortAbandons::Ignore,
        window: Duration::from_secs(1800),
    };
    let mut stats = Stats::new(cfg, 6);
    let t0 = Instant::now();
    for i in 0..12_000u64 {
        let at = t0 + Duration::from_millis(i * 150);
        let (call, agent) = (CallId(i), AgentId((i % 200) as u32));
        for fact in [
            Fact::Queued {
                call,
                queue: (i % 6) as usize,
            },
            Fact::Offered { agent },
            Fact::AgentChanged {
                agent,
                state: AgentState::OnCall { call },
            },
            Fact::Answered { call, agent },
            Fact::AgentChanged {
                agent,
                state: AgentState::Available { since: at },
            },
        ] {
            stats.handle(at, &fact);
        }
        while stats.poll_observed().is_some() {}
    }
    let now = t0 + Duration::from_millis(12_000 * 150);
    c.bench_function("stats/window_report_12000_calls", |b| {
        b.iter(|| std::hint::black_box(stats.report(now)))
    });
}

criterion_group!(benches, routing, window_report);
criterion_main!(benches);
