//! A scripted day: every figure of the report checked exactly.

use super::*;
use crate::tickets::{Actor, Event, EventId, EventKind, Severity, TicketId};

struct Log {
    events: Vec<Event>,
    day: i64,
}

impl Log {
    /// `time` "HH:MM:SS" local on 2026-12-01 (+08:00).
    fn at(&self, time: &str) -> i64 {
        let p: Vec<i64> = time.split(':').map(|x| x.parse().unwrap()).collect();
        self.day + (p[0] * 3600 + p[1] * 60 + p[2]) * 1000
    }

    fn push(
        &mut self,
        time: &str,
        call: Option<&str>,
        ticket: Option<u64>,
        actor: Actor,
        kind: EventKind,
    ) {
        let at_ms = self.at(time);
        self.events.push(Event {
            id: EventId(self.events.len() as u64 + 1),
            ticket: ticket.map(TicketId),
            call: call.map(String::from),
            at_ms,
            actor,
            kind,
        });
    }

    fn call(&mut self, time: &str, call: &str, kind: EventKind) {
        self.push(time, Some(call), None, Actor::System, kind);
    }

    fn agent(&mut self, time: &str, state: &str) {
        let kind = EventKind::AgentStateChanged {
            agent: "2001".into(),
            state: state.into(),
            reason: if state == "paused" {
                "lunch".into()
            } else {
                String::new()
            },
        };
        self.push(time, None, None, Actor::Agent("2001".into()), kind);
    }

    fn queued(&mut self, time: &str, call: &str, queue: &str) {
        self.call(
            time,
            call,
            EventKind::CallQueued {
                queue: queue.into(),
                priority: 0,
                class: None,
                ahead: false,
            },
        );
    }

    fn offered(&mut self, time: &str, call: &str) {
        self.call(
            time,
            call,
            EventKind::CallOffered {
                agent: "2001".into(),
            },
        );
        self.agent(time, "reserved");
    }

    fn answered(&mut self, time: &str, call: &str, waited_s: u64) {
        self.call(
            time,
            call,
            EventKind::CallAnswered {
                agent: "2001".into(),
                owner: None,
                waited_ms: waited_s * 1000,
            },
        );
        self.agent(time, "on_call");
    }

    fn left(&mut self, time: &str, call: &str, waited_s: u64) {
        self.call(
            time,
            call,
            EventKind::CallAbandoned {
                queue: "general".into(),
                waited_ms: waited_s * 1000,
                reason: "hung_up".into(),
            },
        );
    }

    fn opened(&mut self, time: &str, call: &str, ticket: u64, category: &str, building: &str) {
        let kind = EventKind::TicketOpened {
            category: category.into(),
            severity: Severity::Ordinary,
            owner: Some("O-0001".into()),
            building: Some(building.into()),
            summary: "s".into(),
            phone: None,
        };
        self.push(
            time,
            Some(call),
            Some(ticket),
            Actor::Agent("2001".into()),
            kind,
        );
        let deadline_ms = self.at(time) + 1_800_000;
        self.push(
            time,
            Some(call),
            Some(ticket),
            Actor::System,
            EventKind::Committed { deadline_ms },
        );
    }
}

fn scripted_day() -> (Log, LocalTime) {
    let local = LocalTime::parse("+08:00").unwrap();
    let (day, _) = local.day("2026-12-01").unwrap();
    let mut log = Log {
        events: Vec::new(),
        day,
    };
    log.agent("09:00:00", "available");
    // a: answered after 10 s, talks 60 s, wraps up 10 s.
    log.queued("09:00:10", "a", "general");
    log.offered("09:00:15", "a");
    log.answered("09:00:20", "a", 10);
    log.agent("09:01:20", "wrap_up");
    log.agent("09:01:30", "available");
    log.opened("09:01:40", "a", 1, "repair", "B1");
    // b: hangs up after 30 s (no agent free in time).
    log.queued("09:05:00", "b", "general");
    log.left("09:05:30", "b", 30);
    // c: a VIP; the first ring missed, answered after 50 s, 120 s + 10 s.
    log.queued("10:00:00", "c", "vip");
    log.offered("10:00:05", "c");
    log.call(
        "10:00:20",
        "c",
        EventKind::CallOfferMissed {
            agent: "2001".into(),
            why: "phone refused (486)".into(),
        },
    );
    log.agent("10:00:20", "available");
    log.offered("10:00:25", "c");
    log.answered("10:00:50", "c", 50);
    log.agent("10:02:50", "wrap_up");
    log.agent("10:03:00", "available");
    log.opened("10:03:10", "c", 2, "complaint", "B2");
    // d: hangs up within 3 s (a short abandon, left out by default).
    log.queued("10:10:00", "d", "general");
    log.left("10:10:03", "d", 3);
    log.opened("10:20:00", "x", 3, "complaint", "B2");
    log.push(
        "10:33:10",
        None,
        Some(2),
        Actor::System,
        EventKind::SlaBreached { deadline_ms: 0 },
    );
    log.push(
        "09:20:00",
        None,
        Some(1),
        Actor::Department("engineering".into()),
        EventKind::Resolved {
            note: "fixed".into(),
        },
    );
    log.push(
        "09:30:00",
        Some("rv"),
        Some(1),
        Actor::Caller("138".into()),
        EventKind::ConfirmedByOwner,
    );
    log.push(
        "09:30:10",
        Some("rv"),
        Some(1),
        Actor::Caller("138".into()),
        EventKind::SurveyAnswered { score: 5 },
    );
    log.push(
        "10:05:00",
        Some("c"),
        None,
        Actor::Caller("139".into()),
        EventKind::SurveyAnswered { score: 4 },
    );
    // e: waits five minutes, to the fallback.
    log.queued("11:00:00", "e", "general");
    log.call(
        "11:05:00",
        "e",
        EventKind::CallOverflowed {
            queue: "general".into(),
            waited_ms: 300_000,
            reason: "max_wait".into(),
        },
    );
    log.agent("12:00:00", "paused");
    (log, local)
}

#[test]
fn a_scripted_days_report_has_the_exact_figures() {
    let (log, local) = scripted_day();
    let plan = QueuePlan::new([("general", Some("vip")), ("vip", None)]);
    let (from, to) = local.day("2026-12-01").unwrap();
    let settings = Settings {
        plan: plan.clone(),
        threshold: Duration::from_secs(20),
        short_abandons: crate::acd::stats::ShortAbandons::Ignore,
        local,
    };
    let r = build(
        "2026-12-01".into(),
        &log.events,
        from,
        to,
        &settings,
        Instant::now(),
    );
    let general = &r.queues[0];
    assert_eq!(general.queue, "general");
    let g = &general.figures;
    assert_eq!(
        (
            general.offered,
            g.answered,
            g.answered_in_time,
            g.abandoned,
            g.abandoned_in_time,
            g.overflowed
        ),
        (4, 1, 1, 2, 1, 1)
    );
    assert_eq!(g.service_level_answered, Some(1.0));
    assert_eq!(
        g.service_level_offered,
        Some(1.0 / 3.0),
        "the 3 s abandon left out"
    );
    assert_eq!(g.abandon_rate, Some(1.0 / 3.0));
    assert_eq!((g.asa_seconds, g.aht_seconds), (Some(10.0), Some(70.0)));
    let v = &r.queues[1].figures;
    assert_eq!(
        (r.queues[1].offered, v.answered, v.answered_in_time),
        (1, 1, 0)
    );
    assert_eq!(
        (v.service_level_answered, v.asa_seconds, v.aht_seconds),
        (Some(0.0), Some(50.0), Some(130.0))
    );
    // By the hour the calls came in.
    let hours: Vec<(u32, Vec<u32>)> = r
        .hours
        .iter()
        .map(|h| (h.hour, h.queues.iter().map(|q| q.offered).collect()))
        .collect();
    assert_eq!(hours, [(9, vec![2, 0]), (10, vec![1, 1]), (11, vec![1, 0])]);
    assert_eq!(r.hours[0].queues[0].figures.abandoned, 1);
    // The agent: rung three times, missed once, two calls, 200 s handled
    // in three staffed hours.
    let a = &r.agents[0];
    assert_eq!(
        (
            a.agent.as_str(),
            a.offers,
            a.misses,
            a.answered,
            a.handle_seconds,
            a.aht_seconds
        ),
        ("2001", 3, 1, 2, 200.0, Some(100.0))
    );
    assert_eq!(a.occupancy, Some(200.0 / 10_800.0));
    assert_eq!(r.occupancy, Some(200.0 / 10_800.0));
    let t = &r.tickets;
    assert_eq!(
        (
            t.opened,
            t.sla_kept,
            t.sla_breached,
            t.sla_warned,
            t.still_open
        ),
        (3, 1, 1, 0, 1)
    );
    assert_eq!(t.by_category.get("complaint"), Some(&2));
    assert_eq!(t.complaint_buildings, [("B2".to_string(), 2)]);
    assert_eq!(t.top_categories[0], ("complaint".to_string(), 2));
    assert_eq!((t.confirmed, t.surveys, t.satisfaction), (1, 2, Some(4.5)));
    // The same facts through `replay` (what the live figures are checked
    // against) give the same queue figures.
    let cfg = StatsConfig {
        threshold: Duration::from_secs(20),
        short_abandons: crate::acd::stats::ShortAbandons::Ignore,
        window: Duration::from_secs(86_400),
    };
    let mut sorted = log.events.clone();
    sorted.sort_by_key(|e| (e.at_ms, e.id));
    let replayed = replay(&sorted, &plan, &cfg, to, Instant::now());
    assert_eq!(replayed.queues[0], r.queues[0].figures);
    // The page and the CSV files carry them.
    let page = html::render(&r, local);
    assert!(
        page.contains("<svg") && page.contains("33.3 %") && page.contains("B2"),
        "{page}"
    );
    // Kept for people to look at (target/screenshots/).
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    if std::fs::create_dir_all(&shots).is_ok() {
        let _ = std::fs::write(shots.join("report-scripted-day.html"), &page);
    }
    let dir = tempfile::tempdir().unwrap();
    let files = write_csv(&r, dir.path()).unwrap();
    assert_eq!(files.len(), 5);
    let queues = std::fs::read_to_string(dir.path().join("queues.csv")).unwrap();
    assert!(
        queues.contains("general,4,1,2,1,1.0000,0.3333,0.3333,10.0000,70.0000"),
        "{queues}"
    );
}

#[test]
fn live_figures_that_start_late_run_on_from_the_log() {
    let (mut log, _) = scripted_day();
    let plan = QueuePlan::new([("general", Some("vip")), ("vip", None)]);
    let cfg = StatsConfig {
        threshold: Duration::from_secs(20),
        short_abandons: crate::acd::stats::ShortAbandons::Ignore,
        window: Duration::from_secs(86_400),
    };
    // z was still waiting when the last process's log ends.
    log.queued("11:00:00", "z", "general");
    let mut sorted = log.events.clone();
    sorted.sort_by_key(|e| (e.at_ms, e.id));
    let now_ms = log.at("11:00:10");
    // This process's clock: it started at 11:00:10.
    let clock = WallClock::paired(Instant::now(), now_ms);
    let now = clock.instant(now_ms).unwrap();
    let mut live = Stats::new(cfg.clone(), 2);
    seed(&mut live, &sorted, &plan, &clock);
    // The figures are the log's; nothing new for this process's counters.
    assert_eq!(live.poll_observed(), None);
    let replayed = replay(&sorted, &plan, &cfg, now_ms, Instant::now());
    assert_eq!(live.report(now), replayed);
    assert_eq!(live.report(now).queues[0].answered, 1);
    // The first call this process queues (its id 1) is not the log's z:
    // it waits 15 s of its own, within the 20 s threshold.
    live.handle(
        now,
        &Fact::Queued {
            call: CallId(1),
            queue: 0,
        },
    );
    let later = now + Duration::from_secs(15);
    live.handle(
        later,
        &Fact::Left {
            call: CallId(1),
            overflow: false,
        },
    );
    let general = &live.report(later).queues[0];
    assert_eq!((general.abandoned, general.abandoned_in_time), (3, 2));
}

#[test]
fn csv_fields_are_quoted_and_never_formulas() {
    assert_eq!(csv_field("B1"), "B1");
    assert_eq!(csv_field("a,b"), "\"a,b\"");
    assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
    assert_eq!(html::escape("<b>&\"'"), "&lt;b&gt;&amp;&quot;&#39;");
}
