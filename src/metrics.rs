//! Every metric the hotline exports, in one place, named `hotline_*` with
//! the standard suffixes (`_total` counters, `_seconds`). The cores count
//! nothing themselves: the runtime reads what they output (switch outputs,
//! SIP bytes sent, ticket events) and records it here; `/metrics` encodes
//! the registry in Prometheus' text format.
//!
//! Labels come from small closed sets (end reasons, SIP status codes,
//! severities, outcomes), never from caller numbers or call ids.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::tickets::{Event, EventKind, Severity};

pub struct Metrics {
    registry: Registry,
    pub calls: IntCounterVec,
    pub active_calls: IntGauge,
    pub sip_responses: IntCounterVec,
    pub rtp_sent: IntCounter,
    pub rtp_received: IntCounter,
    pub ivr_steps: IntCounter,
    pub calls_queued: IntCounterVec,
    pub agents_registered: IntGauge,
    pub sla_warnings: IntCounter,
    pub sla_breaches: IntCounter,
    pub group_complaints: IntCounter,
    pub tickets_opened: IntCounterVec,
    pub tickets_open: IntGaugeVec,
    pub survey_score: Histogram,
    pub return_visits: IntCounterVec,
    pub agents: IntGaugeVec,
    pub calls_waiting: IntGaugeVec,
    /// `sip_responses` by code, resolved once: counting a response is then
    /// one atomic add, no label lookup (there is one per SIP response sent).
    response_codes: Box<[std::sync::OnceLock<IntCounter>]>,
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("unique metric");
    c
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("unique metric");
    c
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    registry
        .register(Box::new(g.clone()))
        .expect("unique metric");
    g
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let r = Registry::new();
        let tickets_open = IntGaugeVec::new(
            Opts::new(
                "hotline_tickets_open",
                "Work orders not closed, by severity.",
            ),
            &["severity"],
        )
        .expect("valid metric");
        r.register(Box::new(tickets_open.clone()))
            .expect("unique metric");
        let survey_score = Histogram::with_opts(
            HistogramOpts::new(
                "hotline_survey_score",
                "Satisfaction scores given on the keypad (1-5).",
            )
            .buckets(vec![1.0, 2.0, 3.0, 4.0, 5.0]),
        )
        .expect("valid metric");
        r.register(Box::new(survey_score.clone()))
            .expect("unique metric");
        let agents = IntGaugeVec::new(Opts::new("hotline_agents", "Agents by state."), &["state"])
            .expect("valid metric");
        r.register(Box::new(agents.clone())).expect("unique metric");
        let calls_waiting = IntGaugeVec::new(
            Opts::new(
                "hotline_calls_waiting",
                "Calls waiting for an agent, by queue.",
            ),
            &["queue"],
        )
        .expect("valid metric");
        r.register(Box::new(calls_waiting.clone()))
            .expect("unique metric");
        let m = Self {
            agents,
            calls_waiting,
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
            registry: r,
        };
        for s in ["ordinary", "major", "emergency"] {
            m.tickets_open.with_label_values(&[s]).set(0);
        }
        m
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
