//! Every metric the hotline exports, in one place, named `hotline_*` with
//! the standard suffixes (`_total` counters, `_seconds`). The cores count
//! nothing themselves: the runtime reads what they output (switch outputs,
//! SIP bytes sent, ticket events) and records it here; `/metrics` encodes
//! the registry in Prometheus' text format.
//!
//! Labels come from small closed sets (end reasons, SIP status codes,
//! severities, outcomes), never from caller numbers or call ids.

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::tickets::{Event, EventKind, Severity};

pub struct Metrics {
    registry: Registry,
    names: Vec<String>,
    pub calls: IntCounterVec,
    pub active_calls: IntGauge,
    pub sip_responses: IntCounterVec,
    pub rtp_sent: IntCounter,
    pub rtp_received: IntCounter,
    pub rtp_lost: IntCounter,
    pub rtp_foreign: IntCounter,
    pub ivr_steps: IntCounter,
    pub calls_queued: IntCounterVec,
    pub agents_registered: IntGauge,
    /// The edge guard's counts (synced from `edge::GuardStats`).
    pub sip_banned_sources: IntGauge,
    pub auth_failures: IntCounter,
    pub sip_rate_limited: IntCounterVec,
    pub calls_shed: IntCounterVec,
    pub sip_read_wait: Histogram,
    /// The hotline's threads, by name: CPU time, and time waiting for a CPU.
    pub thread_running: GaugeVec,
    pub thread_waiting: GaugeVec,
    pub media_late: Gauge,
    pub media_late_share: Gauge,
    pub media_busy: Gauge,
    pub connections_refused: IntCounterVec,
    pub sla_warnings: IntCounter,
    pub sla_breaches: IntCounter,
    pub group_complaints: IntCounter,
    pub oncall_calls: IntCounterVec,
    pub callbacks: IntCounterVec,
    pub callback_spared: Histogram,
    /// 1 on the active node of a cluster, 0 on a standby (absent without
    /// `[cluster]`).
    pub cluster_active: IntGaugeVec,
    pub cluster_term: IntGauge,
    pub oncall_escalations: IntCounter,
    pub tickets_opened: IntCounterVec,
    pub tickets_open: IntGaugeVec,
    pub survey_score: Histogram,
    pub return_visits: IntCounterVec,
    pub agents: IntGaugeVec,
    pub calls_waiting: IntGaugeVec,
    /// The ACD's figures (see `acd::stats` for the definitions).
    pub queue_calls: IntCounterVec,
    pub answered_in_threshold: IntCounterVec,
    pub abandoned_in_threshold: IntCounterVec,
    pub queue_wait: HistogramVec,
    pub wait_predicted: HistogramVec,
    pub wait_prediction_error: HistogramVec,
    pub handle_time: HistogramVec,
    pub agent_offers: IntCounterVec,
    pub agent_no_answers: IntCounterVec,
    pub service_level: GaugeVec,
    pub abandon_rate: GaugeVec,
    pub asa: GaugeVec,
    pub aht: GaugeVec,
    pub occupancy: Gauge,
    pub longest_wait: GaugeVec,
    pub threshold: Gauge,
    /// `sip_responses` by code, resolved once: counting a response is then
    /// one atomic add, no label lookup (there is one per SIP response sent).
    response_codes: Box<[std::sync::OnceLock<IntCounter>]>,
}

/// The registry being filled, and the name of every family registered
/// (families without samples yet are left out of the text output, so the
/// names are kept here for `Metrics::names`).
struct Reg {
    registry: Registry,
    names: std::cell::RefCell<Vec<String>>,
}

fn register<M: prometheus::core::Collector + Clone + 'static>(r: &Reg, m: M) -> M {
    r.names
        .borrow_mut()
        .extend(m.desc().iter().map(|d| d.fq_name.clone()));
    r.registry
        .register(Box::new(m.clone()))
        .expect("unique metric");
    m
}

fn counter(r: &Reg, name: &str, help: &str) -> IntCounter {
    register(r, IntCounter::new(name, help).expect("valid metric"))
}

fn counter_vec(r: &Reg, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(
        r,
        IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
    )
}

fn gauge(r: &Reg, name: &str, help: &str) -> IntGauge {
    register(r, IntGauge::new(name, help).expect("valid metric"))
}

fn gauge_vec(r: &Reg, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    register(
        r,
        GaugeVec::new(Opts::new(name, help), labels).expect("valid metric"),
    )
}

fn int_gauge_vec(r: &Reg, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register(
        r,
        IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"),
    )
}

fn histogram(r: &Reg, name: &str, help: &str, buckets: &[f64]) -> Histogram {
    register(
        r,
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
            .expect("valid metric"),
    )
}

fn histogram_vec(
    r: &Reg,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> HistogramVec {
    register(
        r,
        HistogramVec::new(
            HistogramOpts::new(name, help).buckets(buckets.to_vec()),
            labels,
        )
        .expect("valid metric"),
    )
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// The edge guard's counters are monotonic in the switch; the exported
    /// counters follow them by the difference since the last sync.
    pub fn sync_edge(
        &self,
        now: crate::edge::GuardStats,
        last: &mut crate::edge::GuardStats,
        banned: usize,
    ) {
        use crate::edge::Class;
        for class in [Class::Invite, Class::Register, Class::Other] {
            let i = class as usize;
            for (action, n, before) in [
                ("refused", now.refused[i], last.refused[i]),
                ("dropped", now.dropped[i], last.dropped[i]),
            ] {
                if n > before {
                    self.sip_rate_limited
                        .with_label_values(&[class.label(), action])
                        .inc_by(n - before);
                }
            }
        }
        if now.auth_failures > last.auth_failures {
            self.auth_failures
                .inc_by(now.auth_failures - last.auth_failures);
        }
        self.sip_banned_sources.set(banned as i64);
        *last = now;
    }

    pub fn new() -> Self {
        let r = Reg {
            registry: Registry::new(),
            names: Default::default(),
        };
        let tickets_open = int_gauge_vec(
            &r,
            "hotline_tickets_open",
            "Work orders not closed, by severity.",
            &["severity"],
        );
        let survey_score = register(
            &r,
            Histogram::with_opts(
                HistogramOpts::new(
                    "hotline_survey_score",
                    "Satisfaction scores given on the keypad (1-5).",
                )
                .buckets(vec![1.0, 2.0, 3.0, 4.0, 5.0]),
            )
            .expect("valid metric"),
        );
        let agents = int_gauge_vec(&r, "hotline_agents", "Agents by state.", &["state"]);
        let calls_waiting = int_gauge_vec(
            &r,
            "hotline_calls_waiting",
            "Calls waiting for an agent, by queue.",
            &["queue"],
        );
        let m = Self {
            agents,
            calls_waiting,
            queue_calls: counter_vec(
                &r,
                "hotline_queue_calls_total",
                "Calls that left a queue: answered by an agent, abandoned by the caller, or sent to the fallback after the maximum wait (overflowed).",
                &["queue", "outcome"],
            ),
            answered_in_threshold: counter_vec(
                &r,
                "hotline_queue_answered_within_threshold_total",
                "Calls answered within the service-level threshold.",
                &["queue"],
            ),
            abandoned_in_threshold: counter_vec(
                &r,
                "hotline_queue_abandoned_within_threshold_total",
                "Calls abandoned within the service-level threshold.",
                &["queue"],
            ),
            queue_wait: histogram_vec(
                &r,
                "hotline_queue_wait_seconds",
                "Time callers waited in a queue, by how the wait ended.",
                &["queue", "outcome"],
                &[5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0],
            ),
            wait_predicted: histogram_vec(
                &r,
                "hotline_queue_wait_predicted_seconds",
                "The wait estimated for answered callers when they joined the queue (their real wait: hotline_queue_wait_seconds{outcome=\"answered\"}).",
                &["queue"],
                &[5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0],
            ),
            wait_prediction_error: histogram_vec(
                &r,
                "hotline_queue_wait_prediction_error_seconds",
                "How far an answered caller's real wait was from the estimate made when they joined the queue: under (waited longer than told) or over.",
                &["queue", "direction"],
                &[1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0],
            ),
            handle_time: histogram_vec(
                &r,
                "hotline_handle_seconds",
                "Handle time of answered calls: talk plus wrap-up.",
                &["queue"],
                &[30.0, 60.0, 120.0, 180.0, 300.0, 450.0, 600.0, 900.0, 1800.0],
            ),
            agent_offers: counter_vec(
                &r,
                "hotline_agent_offers_total",
                "Calls offered to an agent (their phone rung).",
                &["agent"],
            ),
            agent_no_answers: counter_vec(
                &r,
                "hotline_agent_no_answers_total",
                "Offers an agent let go: refused or rang out.",
                &["agent"],
            ),
            service_level: gauge_vec(
                &r,
                "hotline_service_level_ratio",
                "Share of calls answered within the threshold over the window: of the answered calls (definition answered), or of all calls that entered the queue (definition offered; short abandons per the setting).",
                &["queue", "definition"],
            ),
            abandon_rate: gauge_vec(
                &r,
                "hotline_abandon_ratio",
                "Share of the calls that entered the queue that were abandoned, over the window.",
                &["queue"],
            ),
            asa: gauge_vec(
                &r,
                "hotline_asa_seconds",
                "Average speed of answer over the window: mean wait of answered calls.",
                &["queue"],
            ),
            aht: gauge_vec(
                &r,
                "hotline_aht_seconds",
                "Average handle time over the window: talk plus wrap-up.",
                &["queue"],
            ),
            occupancy: register(
                &r,
                Gauge::new(
                    "hotline_occupancy_ratio",
                    "Share of agents' staffed time (not paused or logged out) spent on calls and wrap-up, over the window.",
                )
                .expect("valid metric"),
            ),
            longest_wait: gauge_vec(
                &r,
                "hotline_longest_wait_seconds",
                "How long the longest-waiting caller in each queue has waited now.",
                &["queue"],
            ),
            threshold: register(
                &r,
                Gauge::new(
                    "hotline_service_level_threshold_seconds",
                    "The service-level threshold the ratios use.",
                )
                .expect("valid metric"),
            ),
            response_codes: (100..700).map(|_| std::sync::OnceLock::new()).collect(),
            calls: counter_vec(
                &r,
                "hotline_calls_total",
                "Calls ended, by how they ended.",
                &["outcome"],
            ),
            active_calls: gauge(&r, "hotline_active_calls", "Calls in progress."),
            sip_responses: counter_vec(
                &r,
                "hotline_sip_responses_total",
                "SIP responses the hotline sent, by status code.",
                &["code"],
            ),
            rtp_sent: counter(
                &r,
                "hotline_rtp_packets_sent_total",
                "RTP packets sent (counted when a call's media closes).",
            ),
            rtp_received: counter(
                &r,
                "hotline_rtp_packets_received_total",
                "RTP packets received (counted when a call's media closes).",
            ),
            rtp_lost: counter(
                &r,
                "hotline_rtp_packets_lost_total",
                "RTP packets missing by sequence number (counted when a call's media closes).",
            ),
            rtp_foreign: counter(
                &r,
                "hotline_rtp_packets_foreign_total",
                "Packets dropped at a call's RTP port because they came from elsewhere than the caller's media while it flowed (someone who guessed the port; counted when a call's media closes).",
            ),
            ivr_steps: counter(
                &r,
                "hotline_ivr_steps_total",
                "Steps callers took through the voice menu.",
            ),
            calls_queued: counter_vec(
                &r,
                "hotline_calls_queued_total",
                "Calls the menu handed to a queue.",
                &["queue"],
            ),
            agents_registered: gauge(
                &r,
                "hotline_agents_registered",
                "Agents' softphones registered now.",
            ),
            calls_shed: counter_vec(
                &r,
                "hotline_calls_shed_total",
                "New calls refused with 503 because the hotline was at capacity, by the cap reached (switch_queue: three batches of its datagrams in a row waited 5 ms or more to be read; max_calls, no_rtp_port, max_unconfirmed, max_unconfirmed_per_source, media_busy, media_behind, switch_behind; switch_late: answered by the SIP door while the switch, refusing lately, left a new call unread 4 ms).",
                &["reason"],
            ),
            media_late: register(
                &r,
                Gauge::new(
                    "hotline_media_late_seconds",
                    "The latest a media worker sent a packet in the last second, after its 20 ms schedule.",
                )
                .expect("valid metric"),
            ),
            media_busy: register(
                &r,
                Gauge::new(
                    "hotline_media_busy_ratio",
                    "The busiest media worker's share of the last 100 ms spent working (above [media] max_busy_percent, new calls are refused: shed reason media_busy).",
                )
                .expect("valid metric"),
            ),
            media_late_share: register(
                &r,
                Gauge::new(
                    "hotline_media_late_wakes_ratio",
                    "The largest share of one media worker's wakes in the last second that were more than 10 ms late (from 0.05 two seconds running, new calls are refused).",
                )
                .expect("valid metric"),
            ),
            sip_banned_sources: gauge(
                &r,
                "hotline_sip_banned_sources",
                "Source addresses banned now for failed authentications.",
            ),
            auth_failures: counter(
                &r,
                "hotline_auth_failures_total",
                "Failed digest authentications (REGISTER, feature codes).",
            ),
            sip_rate_limited: counter_vec(
                &r,
                "hotline_sip_rate_limited_total",
                "SIP requests over their source's rate, by request class and what was done (refused: 503; dropped: silence).",
                &["class", "action"],
            ),
            connections_refused: counter_vec(
                &r,
                "hotline_connections_refused_total",
                "Connections (and event streams) refused at once, by why (the limit in all, per source or user, a banned source) and listener (sip_tcp, http, event_stream).",
                &["reason", "listener"],
            ),
            sla_warnings: counter(
                &r,
                "hotline_sla_warnings_total",
                "Work orders at 80 % of their promised time.",
            ),
            sla_breaches: counter(
                &r,
                "hotline_sla_breaches_total",
                "Work orders past their promised time.",
            ),
            group_complaints: counter(
                &r,
                "hotline_group_complaint_alerts_total",
                "Group-complaint early warnings raised.",
            ),
            oncall_calls: counter_vec(
                &r,
                "hotline_oncall_calls_total",
                "Calls of the emergency on-call chain by outcome: accepted, or declined (passed, not answered, busy, no key).",
                &["outcome"],
            ),
            callbacks: counter_vec(
                &r,
                "hotline_callbacks_total",
                "Callbacks that keep the caller's place: offered to waiting callers, accepted (the caller hung up to be called back), completed (the owner answered the callback) and failed (every attempt unanswered: a ticket to follow up).",
                &["outcome"],
            ),
            sip_read_wait: histogram(
                &r,
                "hotline_sip_read_wait_seconds",
                "How long the oldest SIP datagram of each batch the switch read had waited in the kernel (from 5 ms three batches in a row, new calls are refused for 100 ms: shed reason switch_queue).",
                &[0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0],
            ),
            thread_running: gauge_vec(
                &r,
                "hotline_thread_cpu_seconds",
                "CPU time of the hotline's threads alive now, by thread name (switch, tokio-rt-worker, media-N, sqlite-writer, ...), read from the kernel at each scrape.",
                &["thread"],
            ),
            thread_waiting: gauge_vec(
                &r,
                "hotline_thread_waiting_seconds",
                "Time the hotline's threads alive now spent runnable but waiting for a CPU, by thread name, read from the kernel at each scrape: its rate near the CPU time's rate means the machine is out of cores.",
                &["thread"],
            ),
            callback_spared: histogram(
                &r,
                "hotline_callback_wait_spared_seconds",
                "The wait a called-back owner did not spend on hold: from asking for the callback to answering it.",
                &[30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0],
            ),
            oncall_escalations: counter(
                &r,
                "hotline_oncall_escalations_total",
                "Rounds of the on-call chain nobody accepted: the supervisor on duty called and the wallboard alerted.",
            ),
            tickets_opened: counter_vec(
                &r,
                "hotline_tickets_opened_total",
                "Work orders opened, by severity.",
                &["severity"],
            ),
            tickets_open,
            survey_score,
            return_visits: counter_vec(
                &r,
                "hotline_return_visits_total",
                "Return-visit calls, by what they learned.",
                &["outcome"],
            ),
            cluster_active: int_gauge_vec(
                &r,
                "hotline_cluster_active",
                "1 while this node is the cluster's active node, 0 while standby.",
                &["node"],
            ),
            cluster_term: gauge(
                &r,
                "hotline_cluster_term",
                "The fencing term this node holds the lease with (the last it held, standby).",
            ),
            names: r.names.take(),
            registry: r.registry,
        };
        for s in ["ordinary", "major", "emergency"] {
            m.tickets_open.with_label_values(&[s]).set(0);
        }
        m
    }

    /// The counters a call event moves (the queue's figures come from the
    /// ACD's statistics, fed from the same events).
    pub fn hear(&self, ev: &crate::call::CallEvent) {
        use crate::call::CallEventKind as K;
        match &ev.kind {
            K::Ended { reason, .. } => self.calls.with_label_values(&[reason.label()]).inc(),
            K::MenuStep { detail, .. } => {
                self.ivr_steps.inc();
                if detail == crate::ivr::CALLBACK_OFFERED {
                    self.callbacks.with_label_values(&["offered"]).inc();
                }
            }
            K::CallbackRequested { .. } => self.callbacks.with_label_values(&["accepted"]).inc(),
            K::CallbackAnswered { spared, .. } => {
                self.callbacks.with_label_values(&["completed"]).inc();
                self.callback_spared.observe(spared.as_secs_f64());
            }
            K::Queued { queue, .. } => self.calls_queued.with_label_values(&[queue]).inc(),
            K::ReturnVisit { outcome, .. } => self
                .return_visits
                .with_label_values(&[outcome.label()])
                .inc(),
            _ => {}
        }
    }

    /// An answered caller's estimated and real wait.
    pub fn wait_predicted(&self, p: &crate::acd::announce::WaitPredicted, queues: &[String]) {
        let q = queues
            .get(p.queue.0 as usize)
            .map(String::as_str)
            .unwrap_or("unknown");
        self.wait_predicted
            .with_label_values(&[q])
            .observe(p.predicted.as_secs_f64());
        let (direction, error) = if p.waited > p.predicted {
            ("under", p.waited - p.predicted)
        } else {
            ("over", p.predicted - p.waited)
        };
        self.wait_prediction_error
            .with_label_values(&[q, direction])
            .observe(error.as_secs_f64());
    }

    /// Agents by state and calls waiting, from the ACD's snapshot.
    pub fn set_acd(&self, s: &crate::runtime::acd::Snapshot) {
        let mut by_state = [0i64; 6];
        for state in s.agents.values() {
            by_state[state_index(state)] += 1;
        }
        for (i, name) in STATES.iter().enumerate() {
            self.agents.with_label_values(&[name]).set(by_state[i]);
        }
        for (queue, n) in &s.waiting {
            self.calls_waiting
                .with_label_values(&[queue.as_str()])
                .set(*n as i64);
        }
    }

    /// Counts what the ACD's statistics saw (counters and histograms).
    pub fn acd_observed(
        &self,
        o: crate::acd::stats::Observed,
        queues: &[String],
        threshold: std::time::Duration,
    ) {
        use crate::acd::stats::Observed;
        let name = |q: usize| queues.get(q).map(String::as_str).unwrap_or("unknown");
        match o {
            Observed::Answered { queue, wait }
            | Observed::Abandoned { queue, wait }
            | Observed::Overflowed { queue, wait } => {
                let outcome = match o {
                    Observed::Answered { .. } => "answered",
                    Observed::Abandoned { .. } => "abandoned",
                    _ => "overflowed",
                };
                let q = name(queue);
                self.queue_calls.with_label_values(&[q, outcome]).inc();
                self.queue_wait
                    .with_label_values(&[q, outcome])
                    .observe(wait.as_secs_f64());
                if wait <= threshold {
                    match o {
                        Observed::Answered { .. } => {
                            self.answered_in_threshold.with_label_values(&[q]).inc()
                        }
                        Observed::Abandoned { .. } => {
                            self.abandoned_in_threshold.with_label_values(&[q]).inc()
                        }
                        _ => {}
                    }
                }
            }
            Observed::Handled { queue, time, .. } => self
                .handle_time
                .with_label_values(&[name(queue)])
                .observe(time.as_secs_f64()),
            Observed::Offered { agent } => self
                .agent_offers
                .with_label_values(&[&agent.0.to_string()])
                .inc(),
            Observed::Missed { agent } => self
                .agent_no_answers
                .with_label_values(&[&agent.0.to_string()])
                .inc(),
        }
    }

    /// The window's ratios and means; a series with nothing to say (no
    /// call in the window) is left out rather than shown as 0.
    pub fn set_acd_report(
        &self,
        report: &crate::acd::stats::Report,
        queues: &[String],
        longest: &[std::time::Duration],
    ) {
        fn set(g: &GaugeVec, labels: &[&str], v: Option<f64>) {
            match v {
                Some(v) => g.with_label_values(labels).set(v),
                None => {
                    let _ = g.remove_label_values(labels);
                }
            }
        }
        for (i, q) in report.queues.iter().enumerate() {
            let name = queues.get(i).map(String::as_str).unwrap_or("unknown");
            set(
                &self.service_level,
                &[name, "answered"],
                q.service_level_answered,
            );
            set(
                &self.service_level,
                &[name, "offered"],
                q.service_level_offered,
            );
            set(&self.abandon_rate, &[name], q.abandon_rate);
            set(&self.asa, &[name], q.asa_seconds);
            set(&self.aht, &[name], q.aht_seconds);
            let wait = longest.get(i).copied().unwrap_or_default();
            self.longest_wait
                .with_label_values(&[name])
                .set(wait.as_secs_f64());
        }
        self.occupancy.set(report.occupancy.unwrap_or(0.0));
    }

    /// Every metric family the hotline exports (`hotline_*`), sampled yet
    /// or not.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The threads' CPU and waiting times, by name, as last read.
    pub fn sync_threads(
        &self,
        shares: std::collections::BTreeMap<String, crate::runtime::threads::Share>,
    ) {
        for (name, share) in shares {
            self.thread_running
                .with_label_values(&[&name])
                .set(share.running.as_secs_f64());
            self.thread_waiting
                .with_label_values(&[&name])
                .set(share.waiting.as_secs_f64());
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding cannot fail");
        String::from_utf8(buf).unwrap_or_default()
    }

    /// Counts a SIP message the hotline sends, if it is a response.
    pub fn sip_sent(&self, bytes: &[u8]) {
        let Some(code) = bytes
            .strip_prefix(b"SIP/2.0 ")
            .and_then(|rest| rest.get(..3))
            .filter(|c| c.iter().all(u8::is_ascii_digit))
            .and_then(|c| std::str::from_utf8(c).ok())
            .and_then(|c| c.parse::<usize>().ok())
            .filter(|c| (100..700).contains(c))
        else {
            return;
        };
        self.response_codes[code - 100]
            .get_or_init(|| self.sip_responses.with_label_values(&[&code.to_string()]))
            .inc();
    }

    /// Counts what a ticket event says (read from the log, once each).
    pub fn ticket_event(&self, e: &Event) {
        match &e.kind {
            EventKind::SlaWarned { .. } => self.sla_warnings.inc(),
            EventKind::SlaBreached { .. } => self.sla_breaches.inc(),
            EventKind::GroupComplaintRaised { .. } => self.group_complaints.inc(),
            EventKind::OnCallAccepted { .. } => {
                self.oncall_calls.with_label_values(&["accepted"]).inc()
            }
            EventKind::OnCallDeclined { .. } => {
                self.oncall_calls.with_label_values(&["declined"]).inc()
            }
            EventKind::OnCallEscalated { .. } => self.oncall_escalations.inc(),
            EventKind::CallbackGivenUp { .. } => {
                self.callbacks.with_label_values(&["failed"]).inc()
            }
            EventKind::SurveyAnswered { score } => self.survey_score.observe(*score as f64),
            EventKind::TicketOpened { severity, .. } => self
                .tickets_opened
                .with_label_values(&[severity_label(*severity)])
                .inc(),
            _ => {}
        }
    }
}

const STATES: [&str; 6] = [
    "logged_out",
    "available",
    "reserved",
    "on_call",
    "wrap_up",
    "paused",
];

/// An agent state as a label: `available`, `on_call` ...
pub fn agent_state_label(s: &crate::acd::AgentState) -> &'static str {
    STATES[state_index(s)]
}

fn state_index(s: &crate::acd::AgentState) -> usize {
    use crate::acd::AgentState::*;
    match s {
        LoggedOut => 0,
        Available { .. } => 1,
        Reserved { .. } => 2,
        OnCall { .. } => 3,
        WrapUp { .. } => 4,
        Paused { .. } => 5,
    }
}

pub fn severity_label(s: Severity) -> &'static str {
    match s {
        Severity::Ordinary => "ordinary",
        Severity::Major => "major",
        Severity::Emergency => "emergency",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_counted_by_code_and_requests_are_not() {
        let m = Metrics::new();
        m.sip_sent(b"SIP/2.0 200 OK\r\n");
        m.sip_sent(b"SIP/2.0 200 OK\r\n");
        m.sip_sent(b"SIP/2.0 486 Busy Here\r\n");
        m.sip_sent(b"BYE sip:x SIP/2.0\r\n");
        m.sip_sent(b"SIP/2.0 2");
        let text = m.render();
        assert!(
            text.contains("hotline_sip_responses_total{code=\"200\"} 2"),
            "{text}"
        );
        assert!(text.contains("hotline_sip_responses_total{code=\"486\"} 1"));
        assert!(text.contains("hotline_tickets_open{severity=\"major\"} 0"));
    }
}
