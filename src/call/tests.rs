//! Whole calls simulated with a fake clock: no sockets, no sleeping.

use super::event::{Missed, TransferTarget};
use super::*;
use crate::tickets::TicketId;

/// A call's end as the tests look at it.
#[derive(Debug)]
struct Ended {
    reason: EndReason,
    digits: String,
}

const CALLER: &str = "127.0.0.1:5061";

fn config() -> SwitchConfig {
    SwitchConfig {
        clock: crate::clock::WallClock::start(),
        recording: RecordingPolicy::default(),
        transfer_out: None,
        callback: None,
        transfer_queues: [("q-repair".to_string(), "repair".to_string())].into(),
        queues: None,
        sip_addr: "127.0.0.1:5060".parse().unwrap(),
        tls_addr: None,
        media_ip: "127.0.0.1".parse().unwrap(),
        rtp_ports: (20000, 20010),
        answer_after: Duration::from_millis(500),
        inter_digit_timeout: Duration::from_secs(5),
        max_digits: 20,
        language: "en".into(),
        ring_timeout: Duration::from_secs(30),
        question_timeout: Duration::from_secs(8),
        timers: TimerValues::default(),
        ivr: None,
        agents: None,
        gateway_auth: None,
        edge: crate::edge::EdgeConfig {
            guard: crate::edge::GuardConfig {
                trunks: crate::edge::Networks::parse(&["127.0.0.1"]).unwrap(),
                ..Default::default()
            },
            ..Default::default()
        },
        rtp_timeout: Duration::from_secs(60),
        max_call: Duration::from_secs(7200),
        seed: 42,
    }
}

struct Sim {
    sw: Switch,
    now: Instant,
    sent: Vec<String>,
    media: Vec<MediaCommand>,
    ended: Vec<Ended>,
    /// Every call event, in order.
    events: Vec<CallEvent>,
    /// Return-visit outcomes and survey answers, in order.
    answers: Vec<String>,
    /// What the voice menu asked of the runtime (identify, requests, steps).
    menu: Vec<Output>,
    auto_open: bool,
}

impl Sim {
    fn new() -> Self {
        Self {
            sw: Switch::new(config()),
            now: Instant::now(),
            sent: Vec::new(),
            media: Vec::new(),
            ended: Vec::new(),
            events: Vec::new(),
            answers: Vec::new(),
            menu: Vec::new(),
            auto_open: true,
        }
    }

    fn peer() -> Peer {
        Peer {
            transport: crate::sip::transaction::Transport::Udp,
            addr: CALLER.parse().unwrap(),
        }
    }

    fn recv(&mut self, text: &str) {
        self.sw
            .handle_datagram(self.now, Self::peer(), text.as_bytes());
        self.drain();
    }

    /// Carries out the switch's outputs, then ends the turn as the
    /// runtime does (the 100 Trying of an INVITE not answered in it).
    fn drain(&mut self) {
        loop {
            self.drain_turn();
            if !self.sw.end_turn(self.now) {
                break;
            }
        }
    }

    fn drain_turn(&mut self) {
        while let Some(o) = self.sw.poll_output() {
            match o {
                Output::Transmit(t) => self.sent.push(String::from_utf8(t.bytes.to_vec()).unwrap()),
                Output::Media(m) => {
                    if let (true, MediaCommand::Open { call, .. }) = (self.auto_open, &m) {
                        let call = *call;
                        self.media.push(m);
                        self.sw.handle_media(self.now, call, MediaEvent::Opened);
                        continue;
                    }
                    self.media.push(m)
                }
                Output::Event(ev) => {
                    match &ev.kind {
                        CallEventKind::Ended { reason, digits } => self.ended.push(Ended {
                            reason: *reason,
                            digits: digits.clone(),
                        }),
                        CallEventKind::ReturnVisit {
                            outcome,
                            ticket,
                            attempt,
                            ..
                        } => self.answers.push(format!("{ticket}#{attempt} {outcome:?}")),
                        CallEventKind::SurveyAnswered {
                            ticket: Some(t),
                            score,
                            ..
                        } => self.answers.push(format!("{t} survey {score}")),
                        CallEventKind::OnCall {
                            ticket,
                            round,
                            step,
                            person,
                            outcome,
                        } => self
                            .answers
                            .push(format!("{ticket} {round}.{step} {person} {outcome:?}")),
                        _ => {}
                    }
                    self.events.push(ev);
                }
                other => self.menu.push(other),
            }
        }
    }

    fn kinds(&self) -> impl Iterator<Item = &CallEventKind> {
        self.events.iter().map(|e| &e.kind)
    }

    fn media_event(&mut self, call: CallId, event: MediaEvent) {
        self.sw.handle_media(self.now, call, event);
        self.drain();
    }

    /// Advances the fake clock, firing every deadline on the way.
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(at) = self.sw.poll_timeout().filter(|at| *at <= end) {
            self.now = self.now.max(at);
            self.sw.handle_timeout(self.now);
            self.drain();
        }
        self.now = end;
    }

    /// Handles the switch's next timer `by` after it was due.
    fn fire_timers_late(&mut self, by: Duration) {
        let due = self.sw.poll_timeout().expect("a call has timers");
        self.now = self.now.max(due) + by;
        self.sw.handle_timeout(self.now);
        self.drain();
    }

    /// Offers a new call `name` and checks it is refused at once for
    /// `why`: a 503 with Retry-After, counted in the metrics.
    fn refused_at_once(&mut self, name: &str, why: &str) {
        self.take_sent();
        self.recv(&invite(name, &format!("z9hG4bK-{name}"), SDP));
        let sent = self.take_sent();
        let refusal = sent
            .iter()
            .find(|m| m.starts_with("SIP/2.0 503"))
            .unwrap_or_else(|| panic!("no 503 for {why}: {sent:?}"));
        assert!(refusal.contains("Retry-After: "), "{refusal}");
        assert!(self.shed(why), "{why} not counted: {:?}", self.menu);
    }

    /// Whether a new call was refused for `why` (counted in the metrics).
    fn shed(&self, why: &str) -> bool {
        self.menu
            .iter()
            .any(|o| matches!(o, Output::Shed { why: w } if *w == why))
    }

    fn take_sent(&mut self) -> Vec<String> {
        std::mem::take(&mut self.sent)
    }

    fn status_lines(&mut self) -> Vec<String> {
        self.take_sent()
            .iter()
            .map(|m| m.lines().next().unwrap().to_string())
            .collect()
    }

    /// What was played or looped, in order.
    fn played(&self) -> Vec<String> {
        self.media
            .iter()
            .filter_map(|m| match m {
                MediaCommand::Play { prompts, .. } => Some(prompts.join(" ")),
                MediaCommand::Loop { first, prompts, .. } => {
                    Some([&first[..], &prompts[..]].concat().join(" "))
                }
                _ => None,
            })
            .collect()
    }
}

fn invite(call_id: &str, branch: &str, sdp: &str) -> String {
    format!(
        "INVITE sip:100@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch={branch}\r\nFrom: \"Owner\" <sip:13800138000@127.0.0.1>;tag=caller\r\nTo: <sip:100@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:owner@{CALLER}>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 16000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n";

fn in_dialog(method: &str, call_id: &str, branch: &str, cseq: u32, to_tag: &str) -> String {
    format!(
        "{method} sip:hotline@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch={branch}\r\nFrom: \"Owner\" <sip:13800138000@127.0.0.1>;tag=caller\r\nTo: <sip:100@127.0.0.1>;tag={to_tag}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

fn to_tag(msg: &str) -> String {
    let to = msg.lines().find(|l| l.starts_with("To:")).unwrap();
    message::tag_param(to).unwrap()
}

/// Drives a call to the point where the welcome prompt plays; returns its To tag.
fn answered_call(sim: &mut Sim, call_id: &str) -> String {
    sim.recv(&invite(call_id, "z9hG4bK-i", SDP));
    assert_eq!(sim.status_lines(), ["SIP/2.0 180 Ringing"]);
    sim.advance(Duration::from_millis(500));
    let sent = sim.take_sent();
    assert!(sent[0].starts_with("SIP/2.0 200 OK"), "{sent:?}");
    assert!(sent[0].contains("m=audio 20000 RTP/AVP 0 101"));
    let tag = to_tag(&sent[0]);
    sim.recv(&in_dialog("ACK", call_id, "z9hG4bK-a", 1, &tag));
    assert_eq!(sim.played(), ["welcome_en"]);
    tag
}

#[test]
fn with_no_ringing_time_the_call_is_answered_at_once_without_a_180() {
    let mut sim = Sim::new();
    sim.sw.cfg.answer_after = Duration::ZERO;
    sim.recv(&invite("call-0", "z9hG4bK-i", SDP));
    let sent = sim.take_sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].starts_with("SIP/2.0 200 OK"), "{sent:?}");
    assert!(sent[0].contains("m=audio 20000 RTP/AVP 0 101"));
    let tag = to_tag(&sent[0]);
    sim.recv(&in_dialog("ACK", "call-0", "z9hG4bK-a", 1, &tag));
    assert_eq!(sim.played(), ["welcome_en"]);
    // The answer timer, still armed, finds the call answered: nothing more.
    sim.advance(Duration::from_millis(10));
    assert!(sim.take_sent().is_empty());
}

#[test]
fn call_hears_welcome_collects_digits_then_hotline_hangs_up() {
    let mut sim = Sim::new();
    answered_call(&mut sim, "call-1");
    let call = CallId(1);
    sim.media_event(call, MediaEvent::PromptFinished);
    for d in ['1', '2', '3', '4', '#'] {
        sim.media_event(call, MediaEvent::Digit(d));
    }
    assert_eq!(sim.played(), ["welcome_en", "goodbye_en"]);
    sim.media_event(call, MediaEvent::PromptFinished);
    let sent = sim.take_sent();
    assert!(
        sent[0].starts_with("BYE sip:owner@127.0.0.1:5061 SIP/2.0"),
        "{sent:?}"
    );
    assert!(sent[0].contains("To: \"Owner\" <sip:13800138000@127.0.0.1>;tag=caller"));
    let bye_branch = message::parse_datagram(sent[0].as_bytes()).map(|m| match m {
        Message::Request(r) => r.core.branch,
        _ => unreachable!(),
    });
    let ok = format!(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch={}\r\nFrom: <sip:100@127.0.0.1>;tag=x\r\nTo: <sip:o@127.0.0.1>;tag=caller\r\nCall-ID: call-1\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
        bye_branch.unwrap()
    );
    sim.recv(&ok);
    assert_eq!(sim.ended.len(), 1);
    assert_eq!(sim.ended[0].digits, "1234");
    assert_eq!(sim.ended[0].reason, EndReason::HotlineHungUp);
    assert!(sim.media.contains(&MediaCommand::Close { call }));
    assert_eq!((sim.sw.active_calls(), sim.sw.ports_in_use()), (0, 0));
}

#[test]
fn key_during_welcome_stops_the_prompt() {
    let mut sim = Sim::new();
    answered_call(&mut sim, "barge");
    sim.media_event(CallId(1), MediaEvent::Digit('9'));
    assert!(sim.media.contains(&MediaCommand::Stop { call: CallId(1) }));
}

#[test]
fn inter_digit_timeout_ends_collection() {
    let mut sim = Sim::new();
    answered_call(&mut sim, "slow");
    sim.media_event(CallId(1), MediaEvent::PromptFinished);
    sim.media_event(CallId(1), MediaEvent::Digit('4'));
    sim.advance(Duration::from_secs(4));
    sim.media_event(CallId(1), MediaEvent::Digit('2'));
    sim.advance(Duration::from_millis(4990));
    assert_eq!(
        sim.played(),
        ["welcome_en"],
        "timer restarted by each digit"
    );
    sim.advance(Duration::from_millis(20));
    assert_eq!(sim.played(), ["welcome_en", "goodbye_en"]);
}

#[test]
fn silence_after_welcome_times_out_with_no_digits() {
    let mut sim = Sim::new();
    answered_call(&mut sim, "silent");
    sim.media_event(CallId(1), MediaEvent::PromptFinished);
    sim.advance(Duration::from_secs(5));
    assert_eq!(sim.played(), ["welcome_en", "goodbye_en"]);
}

#[test]
fn cancel_before_answer_gets_200_and_487() {
    let mut sim = Sim::new();
    sim.recv(&invite("cancel-1", "z9hG4bK-c", SDP));
    sim.take_sent();
    let cancel = in_dialog("CANCEL", "cancel-1", "z9hG4bK-c", 1, "x").replace(";tag=x", "");
    let cancel = cancel.replace(
        "CANCEL sip:hotline@127.0.0.1:5060",
        "CANCEL sip:100@127.0.0.1:5060",
    );
    sim.recv(&cancel);
    assert_eq!(
        sim.status_lines(),
        ["SIP/2.0 200 OK", "SIP/2.0 487 Request Terminated"]
    );
    assert_eq!(sim.ended[0].reason, EndReason::Cancelled);
    assert_eq!(sim.sw.ports_in_use(), 0);
    sim.advance(Duration::from_secs(1));
    assert!(
        sim.take_sent()
            .iter()
            .all(|m| !m.starts_with("SIP/2.0 200")),
        "never answered"
    );
}

#[test]
fn missing_ack_tears_the_call_down_at_timer_h() {
    let mut sim = Sim::new();
    sim.recv(&invite("noack", "z9hG4bK-n", SDP));
    sim.advance(Duration::from_millis(500));
    sim.take_sent();
    sim.advance(Duration::from_millis(31_900));
    let retransmitted = sim.status_lines();
    assert!(retransmitted.len() >= 6 && retransmitted.iter().all(|l| l == "SIP/2.0 200 OK"));
    assert!(sim.ended.is_empty());
    sim.advance(Duration::from_millis(200));
    assert_eq!(sim.ended[0].reason, EndReason::NoAck);
    assert!(sim.take_sent().iter().any(|m| m.starts_with("BYE ")));
    assert_eq!((sim.sw.active_calls(), sim.sw.ports_in_use()), (0, 0));
}

#[test]
fn caller_bye_ends_the_call_and_retransmissions_are_absorbed() {
    let mut sim = Sim::new();
    let tag = answered_call(&mut sim, "bye-1");
    let bye = in_dialog("BYE", "bye-1", "z9hG4bK-b", 2, &tag);
    sim.recv(&bye);
    sim.recv(&bye);
    sim.advance(Duration::from_secs(2));
    sim.recv(&bye);
    let lines = sim.status_lines();
    assert_eq!(lines, ["SIP/2.0 200 OK"; 3]);
    assert_eq!(sim.ended.len(), 1);
    assert_eq!(sim.ended[0].reason, EndReason::CallerHungUp);
    assert_eq!(sim.sw.ports_in_use(), 0);
}

#[test]
fn info_digits_reach_the_call() {
    let mut sim = Sim::new();
    let tag = answered_call(&mut sim, "info-1");
    for (i, d) in ["7", "#"].iter().enumerate() {
        let body = format!("Signal={d}\r\nDuration=160\r\n");
        let info = in_dialog(
            "INFO",
            "info-1",
            &format!("z9hG4bK-f{i}"),
            2 + i as u32,
            &tag,
        )
        .replace(
            "Content-Length: 0\r\n\r\n",
            &format!(
                "Content-Type: application/dtmf-relay\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        );
        sim.recv(&info);
    }
    assert_eq!(sim.status_lines(), ["SIP/2.0 200 OK"; 2]);
    assert_eq!(sim.played(), ["welcome_en", "goodbye_en"]);
}

#[test]
fn no_common_codec_is_refused_with_488() {
    let mut sim = Sim::new();
    let g729 = SDP
        .replace("RTP/AVP 0 101", "RTP/AVP 18")
        .replace("a=rtpmap:0 PCMU/8000\r\n", "a=rtpmap:18 G729/8000\r\n");
    sim.recv(&invite("g729", "z9hG4bK-g", &g729));
    assert_eq!(sim.status_lines(), ["SIP/2.0 488 Not Acceptable Here"]);
    assert_eq!(sim.sw.active_calls(), 0);
}

#[test]
fn options_is_answered_and_register_is_not_allowed() {
    let mut sim = Sim::new();
    let options = in_dialog("OPTIONS", "ka", "z9hG4bK-o", 1, "t").replace(";tag=t", "");
    sim.recv(&options);
    let sent = sim.take_sent();
    assert!(sent[0].starts_with("SIP/2.0 200 OK") && sent[0].contains("Allow: INVITE"));
    let register = in_dialog("REGISTER", "reg", "z9hG4bK-r", 1, "t").replace(";tag=t", "");
    sim.recv(&register);
    let sent = sim.take_sent();
    assert!(
        sent[0].starts_with("SIP/2.0 405") && sent[0].contains("Allow: "),
        "{sent:?}"
    );
}

#[test]
fn bye_for_unknown_call_is_481() {
    let mut sim = Sim::new();
    sim.recv(&in_dialog("BYE", "nobody", "z9hG4bK-x", 2, "t"));
    assert_eq!(
        sim.status_lines(),
        ["SIP/2.0 481 Call/Transaction Does Not Exist"]
    );
}

#[test]
fn port_exhaustion_refuses_with_503_and_failed_bind_tries_next_port() {
    let mut sim = Sim::new();
    sim.auto_open = false;
    sim.recv(&invite("p1", "z9hG4bK-p1", SDP));
    sim.media_event(CallId(1), MediaEvent::OpenFailed);
    let ports: Vec<u16> = sim
        .media
        .iter()
        .filter_map(|m| match m {
            MediaCommand::Open { port, .. } => Some(*port),
            _ => None,
        })
        .collect();
    assert_eq!(ports, [20000, 20002]);
    assert_eq!(sim.sw.ports_in_use(), 1);
    for i in 2..=7 {
        sim.recv(&invite(&format!("p{i}"), &format!("z9hG4bK-p{i}"), SDP));
    }
    assert!(sim.take_sent().iter().any(|m| m.starts_with("SIP/2.0 503")));
    assert_eq!(sim.sw.active_calls(), 6, "six ports in 20000..=20010");
}

#[test]
fn media_workers_behind_schedule_shed_new_calls_until_they_catch_up() {
    let mut sim = Sim::new();
    answered_call(&mut sim, "in1");
    let late = |share| MediaLate {
        worst: Duration::from_millis(30),
        late_share: share,
    };
    // A few late wakes a second are the machine's hiccups.
    for _ in 0..3 {
        sim.sw.second_passed(late(0.01));
    }
    sim.recv(&invite("hiccups", "z9hG4bK-hiccups", SDP));
    assert_eq!(sim.sw.active_calls(), 2, "taken through hiccups");
    // One late second is a hiccup; two in a row, behind.
    sim.sw.second_passed(late(0.5));
    sim.recv(&invite("hiccup", "z9hG4bK-hiccup", SDP));
    assert_eq!(sim.sw.active_calls(), 3, "taken after one late second");
    sim.sw.second_passed(late(0.5));
    sim.refused_at_once("late", "media_behind");
    // The calls already in go on; no port was taken for the refused one.
    assert_eq!((sim.sw.active_calls(), sim.sw.ports_in_use()), (3, 3));
    // Its retransmission is absorbed: the same 503, nothing new.
    sim.recv(&invite("late", "z9hG4bK-late", SDP));
    assert_eq!(sim.sw.active_calls(), 3);
    sim.sw.second_passed(late(0.0));
    sim.recv(&invite("next", "z9hG4bK-next", SDP));
    assert_eq!(sim.sw.active_calls(), 4, "taken again once on schedule");
}

#[test]
fn a_switch_whose_timers_fire_late_sheds_new_calls_until_it_keeps_time() {
    let mut sim = Sim::new();
    answered_call(&mut sim, "in1");
    let on_time = MediaLate::default();
    // Its timers handled 150 ms after they were due, two seconds running:
    // its turns queue up behind more work than it can do.
    for _ in 0..2 {
        sim.fire_timers_late(Duration::from_millis(150));
        sim.sw.second_passed(on_time);
    }
    sim.take_sent();
    sim.recv(&invite("late", "z9hG4bK-late", SDP));
    assert!(
        sim.take_sent().iter().any(|m| m.starts_with("SIP/2.0 503")),
        "503 while the switch is behind"
    );
    assert!(sim.shed("switch_behind"), "{:?}", sim.menu);
    assert_eq!(sim.sw.active_calls(), 1);
    // Timers on time for a second (a few ms late is no matter): taken again.
    sim.fire_timers_late(Duration::from_millis(5));
    sim.sw.second_passed(on_time);
    sim.recv(&invite("next", "z9hG4bK-next", SDP));
    assert_eq!(sim.sw.active_calls(), 2, "taken again once on time");
}

#[test]
fn media_workers_near_the_end_of_their_core_hold_new_calls_back_until_they_are_not() {
    let mut sim = Sim::new();
    answered_call(&mut sim, "in1");
    // At the limit (80 %, the default): still taken.
    sim.sw.media_busy(80);
    sim.recv(&invite("at", "z9hG4bK-at", SDP));
    assert_eq!(sim.sw.active_calls(), 2, "taken at the limit");
    // Over it: the next INVITE is refused at once, before any port is bound.
    sim.sw.media_busy(81);
    sim.refused_at_once("busy", "media_busy");
    assert_eq!((sim.sw.active_calls(), sim.sw.ports_in_use()), (2, 2));
    // The calls already in are not touched, and the next look below the
    // limit takes calls again.
    sim.sw.media_busy(60);
    sim.recv(&invite("next", "z9hG4bK-next", SDP));
    assert_eq!(
        sim.sw.active_calls(),
        3,
        "taken again once the media has room"
    );
}

/// What the switch logs at INFO while `f` runs, as plain lines.
fn logged(f: impl FnOnce()) -> String {
    let lines = crate::logging::TestLines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    lines.text()
}

#[test]
fn a_flood_of_refused_calls_is_logged_as_one_line_a_second() {
    let mut sim = Sim::new();
    let log = logged(|| {
        sim.sw.media_busy(95);
        for i in 0..40 {
            sim.recv(&invite(
                &format!("flood{i}"),
                &format!("z9hG4bK-flood{i}"),
                SDP,
            ));
        }
        sim.sw.second_passed(MediaLate::default());
        // A second without a refusal says nothing.
        sim.sw.second_passed(MediaLate::default());
    });
    let refused: Vec<&str> = log.lines().filter(|l| l.contains("503")).collect();
    assert_eq!(refused.len(), 1, "{log}");
    assert!(refused[0].contains("refused=40"), "{log}");
    assert!(refused[0].contains("media_busy 40"), "{log}");
    assert_eq!(sim.sw.active_calls(), 0);
}

#[test]
fn a_call_refused_at_the_door_is_the_switchs_own_refusal_counted_once() {
    let mut sim = Sim::new();
    assert!(!sim.sw.refusing(sim.now), "taking calls");
    sim.sw.media_busy(95);
    assert!(sim.sw.refusing(sim.now), "the door answers for it now");
    let text = invite("late", "z9hG4bK-late", SDP);
    let answer = sim
        .sw
        .door()
        .answer(sim.now, text.as_bytes(), Sim::peer().addr)
        .expect("a new call refused at the door");
    // Word for word what the switch would have sent itself.
    let mut own = Sim::new();
    own.sw.media_busy(95);
    own.recv(&text);
    assert_eq!(
        own.take_sent(),
        vec![String::from_utf8(answer.to_vec()).unwrap()]
    );

    let log = logged(|| {
        sim.sw
            .handle_answered(sim.now, Sim::peer(), text.as_bytes(), answer.clone());
        sim.drain();
        assert!(sim.take_sent().is_empty(), "no second 503, no 100 Trying");
        assert!(sim.shed("switch_late"));
        assert_eq!(sim.sw.active_calls(), 0);
        // Its copies are absorbed and its ACK taken, as for the switch's
        // own refusal: nothing more is sent, no call starts.
        sim.recv(&text);
        let tag = crate::sip::message::tag_param(
            String::from_utf8(answer.to_vec())
                .unwrap()
                .lines()
                .find(|l| l.starts_with("To:"))
                .unwrap(),
        )
        .unwrap();
        let ack = in_dialog("ACK", "late", "z9hG4bK-late", 1, &tag);
        sim.recv(&ack);
        sim.recv(&text);
        assert!(sim.take_sent().is_empty(), "{:?}", sim.sent);
        assert_eq!(sim.sw.active_calls(), 0);
        sim.sw.second_passed(MediaLate::default());
    });
    assert!(log.contains("refused=1 why=\"switch_late 1\""), "{log}");
}

#[test]
fn a_call_refused_at_the_door_over_its_sources_rate_gets_no_second_503() {
    let mut cfg = config();
    cfg.edge.guard.limits.invite = crate::edge::Rate {
        per_second: 0.01,
        burst: 1.0,
    };
    cfg.edge.guard.trunk_limits.invite = cfg.edge.guard.limits.invite;
    let mut sim = Sim::new();
    sim.sw = Switch::new(cfg);
    sim.sw.media_busy(95);
    sim.refused_at_once("first", "media_busy");
    // The source's burst is spent: the switch would answer this one 503
    // too (its rate), but the door has.
    let text = invite("second", "z9hG4bK-second", SDP);
    let answer = sim
        .sw
        .door()
        .answer(sim.now, text.as_bytes(), Sim::peer().addr)
        .unwrap();
    sim.sw
        .handle_answered(sim.now, Sim::peer(), text.as_bytes(), answer);
    sim.drain();
    assert!(sim.take_sent().is_empty(), "{:?}", sim.sent);
    // Without the door, the rate's own 503 (one a second).
    sim.advance(Duration::from_secs(1));
    sim.recv(&invite("third", "z9hG4bK-third", SDP));
    assert_eq!(sim.status_lines(), vec!["SIP/2.0 503 Service Unavailable"]);
}

#[test]
fn a_switch_reading_late_gives_the_media_less_of_the_machine_until_it_reads_on_time() {
    let mut sim = Sim::new();
    let late = |sim: &mut Sim| {
        for _ in 0..3 {
            sim.sw.datagrams_waited(sim.now, Duration::from_millis(6));
        }
    };
    // Media at 75 %: under the limit (80 %), taken.
    sim.sw.media_busy(75);
    sim.recv(&invite("a", "z9hG4bK-a", SDP));
    assert_eq!(sim.sw.active_calls(), 1);
    // The switch reads late: the budget is cut to 90 % of itself (72), once
    // per 100 ms however many late batches come in it.
    late(&mut sim);
    late(&mut sim);
    sim.advance(Duration::from_millis(100));
    sim.recv(&invite("b", "z9hG4bK-b", SDP));
    assert!(
        sim.shed("media_busy"),
        "75 % is over the budget now: {:?}",
        sim.menu
    );
    sim.sw.media_busy(72);
    sim.recv(&invite("c", "z9hG4bK-c", SDP));
    assert_eq!(
        sim.sw.active_calls(),
        2,
        "72 % is within it (one cut, not two)"
    );
    // Still late 100 ms on: cut again (64).
    late(&mut sim);
    sim.advance(Duration::from_millis(100));
    sim.recv(&invite("d", "z9hG4bK-d", SDP));
    assert_eq!(sim.sw.active_calls(), 2, "72 % is over 64 %");
    // Seconds on time give it back, two points a second, up to the limit.
    let on_time = MediaLate::default();
    sim.sw.second_passed(on_time); // the second of the cut: nothing back
    for _ in 0..4 {
        sim.sw.second_passed(on_time);
    }
    sim.recv(&invite("e", "z9hG4bK-e", SDP));
    assert_eq!(sim.sw.active_calls(), 3, "72 % within 64 + 8");
    sim.sw.media_busy(81);
    for _ in 0..20 {
        sim.sw.second_passed(on_time);
    }
    sim.recv(&invite("f", "z9hG4bK-f", SDP));
    assert_eq!(sim.sw.active_calls(), 3, "never above the configured limit");
}

#[test]
fn a_switch_reading_its_datagrams_late_refuses_new_calls_at_once_and_briefly() {
    let mut sim = Sim::new();
    answered_call(&mut sim, "in1");
    // A batch whose oldest datagram waited 4 ms: a burst, no matter.
    sim.sw.datagrams_waited(sim.now, Duration::from_millis(4));
    sim.recv(&invite("burst", "z9hG4bK-burst", SDP));
    assert_eq!(sim.sw.active_calls(), 2, "taken after a short wait");
    // Two batches 5 ms late, then one on time: the switch's thread waited
    // a moment for a core.
    sim.sw.datagrams_waited(sim.now, Duration::from_millis(5));
    sim.sw.datagrams_waited(sim.now, Duration::from_millis(7));
    sim.sw.datagrams_waited(sim.now, Duration::from_millis(1));
    sim.sw.datagrams_waited(sim.now, Duration::from_millis(6));
    sim.sw.datagrams_waited(sim.now, Duration::from_millis(5));
    sim.recv(&invite("moment", "z9hG4bK-moment", SDP));
    assert_eq!(sim.sw.active_calls(), 3, "taken after a moment's wait");
    // Three in a row: more comes in than the switch gets through. The very
    // next INVITE is refused, without a second's look.
    sim.sw.datagrams_waited(sim.now, Duration::from_millis(5));
    sim.refused_at_once("late", "switch_queue");
    assert_eq!((sim.sw.active_calls(), sim.sw.ports_in_use()), (3, 3));
    sim.advance(Duration::from_millis(99));
    sim.recv(&invite("still", "z9hG4bK-still", SDP));
    assert_eq!(sim.sw.active_calls(), 3, "refused for 100 ms");
    // 100 ms after the last late batch, new calls are taken again.
    sim.advance(Duration::from_millis(1));
    sim.recv(&invite("next", "z9hG4bK-next", SDP));
    assert_eq!(sim.sw.active_calls(), 4, "taken again once read on time");
}

#[test]
fn shutdown_ends_every_call() {
    let mut sim = Sim::new();
    answered_call(&mut sim, "s1");
    sim.recv(&invite("s2", "z9hG4bK-s2", SDP));
    sim.take_sent();
    sim.sw.shutdown(sim.now);
    sim.drain();
    let lines = sim.status_lines();
    assert!(lines.iter().any(|l| l.starts_with("BYE ")));
    assert!(lines.iter().any(|l| l.starts_with("SIP/2.0 503")));
    assert_eq!((sim.sw.active_calls(), sim.sw.ports_in_use()), (0, 0));
}

// ---- return visits (outbound) ----------------------------------------------

const GATEWAY: &str = "127.0.0.1:5061";

fn place(sim: &mut Sim) -> (CallId, String) {
    let id = sim.sw.place_call(
        sim.now,
        PlaceCall {
            ticket: TicketId(7),
            attempt: 1,
            number: "13800000001".into(),
            gateway: GATEWAY.parse().unwrap(),
        },
    );
    sim.drain();
    let sent = sim.take_sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    (id, sent[0].clone())
}

/// The owner's phone answering our INVITE with `code`.
fn reply_to(invite: &str, code: u16, reason: &str, body: &str) -> String {
    let header = |name: &str| {
        invite
            .lines()
            .find(|l| l.starts_with(&format!("{name}:")))
            .unwrap()
            .to_string()
    };
    let cseq = header("CSeq");
    let to = if code > 100 {
        format!("{};tag=owner1", header("To"))
    } else {
        header("To")
    };
    let ctype = if body.is_empty() {
        String::new()
    } else {
        "Content-Type: application/sdp\r\n".to_string()
    };
    format!(
        "SIP/2.0 {code} {reason}\r\n{}\r\n{}\r\n{to}\r\n{}\r\n{cseq}\r\nContact: <sip:owner@{GATEWAY}>\r\n{ctype}Content-Length: {}\r\n\r\n{body}",
        header("Via"),
        header("From"),
        header("Call-ID"),
        body.len()
    )
}

const OWNER_SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n";

/// Places a call and has the owner answer it; returns the call and INVITE.
fn answered_visit(sim: &mut Sim) -> (CallId, String) {
    let (id, invite) = place(sim);
    sim.recv(&reply_to(&invite, 180, "Ringing", ""));
    sim.recv(&reply_to(&invite, 200, "OK", OWNER_SDP));
    (id, invite)
}

// ---- on-call calls ----------------------------------------------------------

fn place_duty(sim: &mut Sim) -> (CallId, String) {
    let id = sim.sw.place_duty_call(
        sim.now,
        crate::call::PlaceDutyCall {
            ticket: TicketId(9),
            round: 1,
            step: 0,
            person: "wang".into(),
            number: "+8613900000001".into(),
            gateway: GATEWAY.parse().unwrap(),
            language: "zh".into(),
            speech: vec![
                "oncall_emergency".into(),
                "num_9".into(),
                "oncall_press".into(),
            ],
        },
    );
    sim.drain();
    let sent = sim.take_sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    (id, sent[0].clone())
}

// ---- callbacks -----------------------------------------------------------------

fn callback_sim(agent_first: bool) -> (Sim, CallId) {
    let mut sim = agent_sim();
    sim.sw = Switch::new(SwitchConfig {
        callback: Some(crate::call::CallbackPolicy {
            gateway: GATEWAY.parse().unwrap(),
            allowed: vec![crate::owners::phone::DialPattern::parse("+861[3-9]XXXXXXXXX").unwrap()],
            plan: Default::default(),
            agent_first,
        }),
        ..sim.sw.cfg.clone()
    });
    let now_ms = sim.sw.cfg.clock.ms(sim.now);
    let id = sim.sw.queue_callback(
        sim.now,
        crate::call::QueueCallback {
            callback: "first-call@host".into(),
            queue: "general".into(),
            language: "en".into(),
            priority: 0,
            number: "+8613800138000".into(),
            owner: Some("O-0001".into()),
            since_ms: now_ms - 120_000,
            attempt: 2,
        },
    );
    sim.drain();
    (sim, id)
}

#[test]
fn a_callback_whose_place_comes_up_calls_the_owner_then_rings_the_agent() {
    let (mut sim, id) = callback_sim(false);
    // Queued again with its first arrival: two minutes ago.
    assert!(sim.kinds().any(|k| matches!(k,
        CallEventKind::CallbackQueued { since, attempt: 2, .. } if sim.now.duration_since(*since) == Duration::from_secs(120))));
    sim.sw.offer_to_agent(sim.now, id, AgentId(2001));
    sim.drain();
    let invite = sim.take_sent().remove(0);
    assert!(
        invite.starts_with("INVITE sip:+8613800138000@127.0.0.1:5061 SIP/2.0"),
        "{invite}"
    );
    assert!(invite.contains("Call-ID: first-call@host-cb2"), "{invite}");
    // No agent is rung before the owner answers.
    assert!(
        !sim.kinds()
            .any(|k| matches!(k, CallEventKind::Offered { .. }))
    );
    sim.recv(&reply_to(&invite, 200, "OK", OWNER_SDP));
    assert!(
        sim.kinds()
            .any(|k| matches!(k, CallEventKind::CallbackAnswered { .. }))
    );
    assert_eq!(sim.played()[0].split(' ').next(), Some("callback_hello_en"));
    assert!(
        sim.kinds()
            .any(|k| matches!(k, CallEventKind::Offered { agent } if *agent == AgentId(2001)))
    );
}

#[test]
fn a_callback_the_owner_does_not_answer_is_one_failed_attempt_not_an_abandoned_call() {
    let (mut sim, id) = callback_sim(false);
    sim.sw.offer_to_agent(sim.now, id, AgentId(2001));
    sim.drain();
    let invite = sim.take_sent().remove(0);
    sim.recv(&reply_to(&invite, 486, "Busy Here", ""));
    let outcomes: Vec<&CallEventKind> = sim
        .kinds()
        .filter(|k| {
            matches!(
                k,
                CallEventKind::CallbackUnanswered { .. } | CallEventKind::Abandoned { .. }
            )
        })
        .collect();
    assert!(
        matches!(
            outcomes[..],
            [CallEventKind::CallbackUnanswered {
                attempt: 2,
                code: 486,
                ..
            }]
        ),
        "{outcomes:?}"
    );
    assert_eq!((sim.sw.active_calls(), sim.sw.ports_in_use()), (0, 0));
    assert!(sim.take_sent().iter().all(|m| m.starts_with("ACK ")));
    // Offered again (the ACD's next try) it is no longer here: nothing dialled.
    sim.sw.offer_to_agent(sim.now, id, AgentId(2001));
    sim.drain();
    assert!(sim.take_sent().is_empty());
}

/// Agent 2001's phone registered (digest answered).
fn register_agent(sim: &mut Sim) {
    sim.recv(&register(1, None, 600));
    let challenge = sim.take_sent().pop().unwrap();
    let auth = answer_challenge(&challenge, "SHA-256", "agent2001");
    sim.recv(&register(2, Some(&auth), 600));
    sim.take_sent();
}

fn the_owners_invite(sim: &mut Sim) -> Option<String> {
    sim.take_sent()
        .into_iter()
        .find(|m| m.starts_with("INVITE sip:+8613800138000@"))
}

#[test]
fn agent_first_the_agent_answers_hears_ringback_and_the_owner_is_called_with_the_agents_codec() {
    let (mut sim, id) = callback_sim(true);
    register_agent(&mut sim);
    sim.sw.offer_to_agent(sim.now, id, AgentId(2001));
    sim.drain();
    let sent = sim.take_sent();
    let invite = sent
        .iter()
        .find(|m| m.starts_with("INVITE sip:2001@"))
        .expect("the agent's phone rings first")
        .clone();
    assert!(
        sent.iter().all(|m| !m.contains("+8613800138000")),
        "no owner called before the agent answers: {sent:?}"
    );
    assert!(invite.contains("RTP/AVP 0 8 101"), "every codec: {invite}");
    assert!(
        sim.kinds()
            .any(|k| matches!(k, CallEventKind::Offered { agent } if *agent == AgentId(2001)))
    );
    // The agent answers with PCMA: ringback for them, the owner is called
    // with PCMA only.
    sim.recv(&reply_to(&invite, 200, "OK", OWNER_SDP));
    let leg = sim
        .media
        .iter()
        .find_map(|m| match m {
            MediaCommand::Loop { call, prompts, .. } if prompts == &["ringback_en"] => Some(*call),
            _ => None,
        })
        .expect("the agent hears ringback");
    let owner = the_owners_invite(&mut sim).expect("the owner is called once the agent answered");
    assert!(
        owner.contains("m=audio ") && owner.contains(" RTP/AVP 8 101\r\n"),
        "{owner}"
    );
    assert!(owner.contains("Call-ID: first-call@host-cb2"), "{owner}");
    assert!(
        !sim.kinds()
            .any(|k| matches!(k, CallEventKind::Answered { .. })),
        "not a conversation before the owner answers"
    );
    sim.recv(&reply_to(&owner, 200, "OK", OWNER_SDP));
    assert!(
        sim.kinds()
            .any(|k| matches!(k, CallEventKind::CallbackAnswered { .. }))
    );
    assert!(sim.media.contains(&MediaCommand::Stop { call: leg }));
    assert!(sim.media.contains(&MediaCommand::Bridge { a: id, b: leg }));
    assert!(
        sim.kinds()
            .any(|k| matches!(k, CallEventKind::Answered { agent, .. } if *agent == AgentId(2001)))
    );
    assert!(
        !sim.played().iter().any(|p| p.contains("callback_hello")),
        "the owner talks to the agent at once"
    );
}

#[test]
fn agent_first_an_owner_who_does_not_answer_ends_the_agents_call_as_one_failed_attempt() {
    let (mut sim, id) = callback_sim(true);
    register_agent(&mut sim);
    sim.sw.offer_to_agent(sim.now, id, AgentId(2001));
    sim.drain();
    let invite = agent_leg_invite(&mut sim);
    sim.recv(&reply_to(&invite, 200, "OK", OWNER_SDP));
    let owner = the_owners_invite(&mut sim).expect("owner called");
    sim.recv(&reply_to(&owner, 486, "Busy Here", ""));
    assert!(
        sim.take_sent()
            .iter()
            .any(|m| m.starts_with("BYE sip:2001@")
                || m.starts_with("BYE ") && m.contains("Call-ID: ag")),
        "the agent's call ends"
    );
    let outcomes: Vec<&CallEventKind> = sim
        .kinds()
        .filter(|k| {
            matches!(
                k,
                CallEventKind::CallbackUnanswered { .. }
                    | CallEventKind::Abandoned { .. }
                    | CallEventKind::OfferMissed { .. }
                    | CallEventKind::Answered { .. }
            )
        })
        .collect();
    assert!(
        matches!(
            outcomes[..],
            [CallEventKind::CallbackUnanswered { code: 486, .. }]
        ),
        "{outcomes:?}"
    );
}

#[test]
fn agent_first_an_agent_who_declines_is_a_missed_offer_and_the_next_agent_is_rung() {
    let (mut sim, id) = callback_sim(true);
    register_agent(&mut sim);
    sim.sw.offer_to_agent(sim.now, id, AgentId(2001));
    sim.drain();
    let invite = agent_leg_invite(&mut sim);
    sim.recv(&reply_to(&invite, 486, "Busy Here", ""));
    assert!(sim.kinds().any(|k| matches!(k,
        CallEventKind::OfferMissed { agent, why: Missed::Refused(486) } if *agent == AgentId(2001))));
    assert!(
        the_owners_invite(&mut sim).is_none(),
        "nobody calls the owner"
    );
    // The ACD's next offer rings again: the callback is still waiting.
    sim.sw.offer_to_agent(sim.now, id, AgentId(2001));
    sim.drain();
    let invite = agent_leg_invite(&mut sim);
    sim.recv(&reply_to(&invite, 180, "Ringing", ""));
    // Withdrawn while it rings (the ACD counted the miss): CANCEL, and
    // nothing more is told.
    sim.events.clear();
    sim.sw.withdraw_agent(sim.now, id);
    sim.drain();
    assert!(
        sim.take_sent()
            .iter()
            .any(|m| m.starts_with("CANCEL sip:2001@"))
    );
    sim.recv(&reply_to(&invite, 487, "Request Terminated", ""));
    assert!(
        sim.kinds()
            .all(|k| !matches!(k, CallEventKind::OfferMissed { .. })),
        "{:?}",
        sim.events
    );
    assert_eq!((sim.sw.active_calls(), sim.sw.ports_in_use()), (0, 0));
    // Still waiting: the next offer rings again.
    sim.sw.offer_to_agent(sim.now, id, AgentId(2001));
    sim.drain();
    agent_leg_invite(&mut sim);
}

#[test]
fn agent_first_the_agent_hanging_up_while_the_owner_rings_cancels_the_owners_call() {
    let (mut sim, id) = callback_sim(true);
    register_agent(&mut sim);
    sim.sw.offer_to_agent(sim.now, id, AgentId(2001));
    sim.drain();
    let invite = agent_leg_invite(&mut sim);
    sim.recv(&reply_to(&invite, 200, "OK", OWNER_SDP));
    let owner = the_owners_invite(&mut sim).expect("owner called");
    sim.recv(&reply_to(&owner, 180, "Ringing", ""));
    sim.recv(&from_callee(&invite, CALLER, "2001", "BYE", 2, "", ""));
    let sent = sim.take_sent();
    assert!(
        sent.iter()
            .any(|m| m.starts_with("CANCEL sip:+8613800138000@")),
        "{sent:?}"
    );
    sim.recv(&reply_to(&owner, 487, "Request Terminated", ""));
    let outcomes: Vec<&CallEventKind> = sim
        .kinds()
        .filter(|k| {
            matches!(
                k,
                CallEventKind::CallbackUnanswered { .. }
                    | CallEventKind::Abandoned { .. }
                    | CallEventKind::OfferMissed { .. }
            )
        })
        .collect();
    assert!(
        matches!(
            outcomes[..],
            [CallEventKind::CallbackUnanswered { code: 487, .. }]
        ),
        "{outcomes:?}"
    );
    assert_eq!((sim.sw.active_calls(), sim.sw.ports_in_use()), (0, 0));
}

#[test]
fn a_chain_that_ends_stops_the_on_call_phone_ringing_and_the_call_under_way() {
    let mut sim = Sim::new();
    let (ringing, invite) = place_duty(&mut sim);
    sim.recv(&reply_to(&invite, 180, "Ringing", ""));
    sim.sw.stop_duty_calls(sim.now, TicketId(9));
    sim.drain();
    assert!(sim.take_sent().iter().any(|m| m.starts_with("CANCEL ")));
    sim.recv(&reply_to(&invite, 487, "Request Terminated", ""));
    sim.take_sent();
    // Another ticket's call is left alone; this one's answered call ends.
    let (other, other_invite) = place_duty(&mut sim);
    sim.recv(&reply_to(&other_invite, 200, "OK", OWNER_SDP));
    sim.take_sent();
    sim.sw.stop_duty_calls(sim.now, TicketId(10));
    sim.drain();
    assert!(sim.take_sent().is_empty(), "not that ticket's");
    sim.sw.stop_duty_calls(sim.now, TicketId(9));
    sim.drain();
    assert!(sim.take_sent().iter().any(|m| m.starts_with("BYE ")));
    assert!(
        !sim.kinds()
            .any(|k| matches!(k, CallEventKind::OnCall { .. })),
        "no outcome told for either: {:?}",
        sim.events
    );
    assert!(!sim.sw.calls.contains_key(&ringing));
    let _ = other;
}

#[test]
fn the_engineer_on_duty_hears_the_ticket_in_their_language_and_accepts_with_1() {
    let mut sim = Sim::new();
    let (id, invite) = place_duty(&mut sim);
    assert!(
        invite.starts_with("INVITE sip:+8613900000001@127.0.0.1:5061 SIP/2.0\r\n"),
        "{invite}"
    );
    sim.recv(&reply_to(&invite, 180, "Ringing", ""));
    sim.recv(&reply_to(&invite, 200, "OK", OWNER_SDP));
    assert_eq!(
        sim.played(),
        ["oncall_emergency_zh num_9_zh oncall_press_zh"]
    );
    // Keys before the end of the question count; others leave it standing.
    sim.media_event(id, MediaEvent::Digit('5'));
    sim.media_event(id, MediaEvent::Digit('1'));
    sim.media_event(id, MediaEvent::Digit('2'));
    assert_eq!(sim.answers, ["T9 1.0 wang Accepted"]);
    assert_eq!(sim.played().last().unwrap(), "oncall_accepted_zh");
    sim.media_event(id, MediaEvent::PromptFinished);
    assert!(sim.take_sent().iter().any(|m| m.starts_with("BYE ")));
}

#[test]
fn the_owner_told_help_is_coming_hears_it_once_and_is_hung_up_on() {
    let mut sim = Sim::new();
    let id = sim.sw.place_owner_notice(
        sim.now,
        crate::call::PlaceNotice {
            ticket: TicketId(9),
            number: "+8613800138000".into(),
            gateway: GATEWAY.parse().unwrap(),
            language: "en".into(),
            speech: vec!["oncall_owner_notice".into(), "goodbye".into()],
        },
    );
    sim.drain();
    let invite = sim.take_sent().remove(0);
    sim.recv(&reply_to(&invite, 200, "OK", OWNER_SDP));
    assert_eq!(sim.played(), ["oncall_owner_notice_en goodbye_en"]);
    // Keys change nothing: no question is asked.
    sim.media_event(id, MediaEvent::Digit('1'));
    sim.media_event(id, MediaEvent::PromptFinished);
    assert!(sim.take_sent().iter().any(|m| m.starts_with("BYE ")));
    let told: Vec<(bool, Option<u16>)> = sim
        .kinds()
        .filter_map(|k| match k {
            CallEventKind::OwnerNotified { reached, code, .. } => Some((*reached, *code)),
            _ => None,
        })
        .collect();
    assert_eq!(told, [(true, None)]);
    assert!(
        !sim.kinds()
            .any(|k| matches!(k, CallEventKind::OnCall { .. }))
    );
}

#[test]
fn an_engineer_silent_twice_is_thanked_and_counted_as_no_key() {
    let mut sim = Sim::new();
    let (id, invite) = place_duty(&mut sim);
    sim.recv(&reply_to(&invite, 200, "OK", OWNER_SDP));
    sim.media_event(id, MediaEvent::PromptFinished);
    sim.advance(Duration::from_secs(8));
    // Asked again, whole.
    assert_eq!(sim.played().len(), 2);
    sim.media_event(id, MediaEvent::PromptFinished);
    sim.advance(Duration::from_secs(8));
    assert_eq!(sim.played().last().unwrap(), "goodbye_zh");
    sim.media_event(id, MediaEvent::PromptFinished);
    let bye = sim
        .take_sent()
        .into_iter()
        .find(|m| m.starts_with("BYE "))
        .unwrap();
    sim.recv(&bye.replace(&bye[..bye.find("\r\n").unwrap()], "SIP/2.0 200 OK"));
    assert_eq!(sim.answers, ["T9 1.0 wang NoKey"]);
}

#[test]
fn an_engineer_who_does_not_answer_is_cancelled_and_reported_once() {
    let mut sim = Sim::new();
    let (_, invite) = place_duty(&mut sim);
    sim.recv(&reply_to(&invite, 180, "Ringing", ""));
    sim.advance(Duration::from_secs(30));
    let cancel = sim
        .take_sent()
        .into_iter()
        .find(|m| m.starts_with("CANCEL "))
        .expect("CANCEL sent");
    sim.recv(&reply_to(&cancel, 200, "OK", ""));
    sim.recv(&reply_to(&invite, 487, "Request Terminated", ""));
    assert_eq!(sim.answers, ["T9 1.0 wang Unanswered(487)"]);
    assert_eq!((sim.sw.active_calls(), sim.sw.ports_in_use()), (0, 0));
    assert!(
        sim.take_sent().iter().any(|m| m.starts_with("ACK ")),
        "487 is ACKed"
    );
    // Busy elsewhere: the status as it came.
    let (_, invite) = place_duty(&mut sim);
    sim.recv(&reply_to(&invite, 486, "Busy Here", ""));
    assert_eq!(sim.answers[1], "T9 1.0 wang Unanswered(486)");
}

#[test]
fn return_visit_invites_the_owner_through_the_gateway_with_our_offer() {
    let mut sim = Sim::new();
    let (_, invite) = place(&mut sim);
    assert!(
        invite.starts_with("INVITE sip:13800000001@127.0.0.1:5061 SIP/2.0\r\n"),
        "{invite}"
    );
    assert!(invite.contains("CSeq: 1 INVITE"));
    assert!(invite.contains("m=audio 20000 RTP/AVP 0 8 101"), "{invite}");
    assert_eq!(sim.sw.ports_in_use(), 1);
}

#[test]
fn a_gateway_that_challenges_gets_the_invite_again_with_digest_credentials_once() {
    let mut sim = Sim::new();
    sim.sw = Switch::new(SwitchConfig {
        gateway_auth: Some(("hotline".into(), "secret".into())),
        ..config()
    });
    let (id, invite) = place(&mut sim);
    let challenge = "Proxy-Authenticate: Digest realm=\"gw\", nonce=\"n1\", qop=\"auth\", algorithm=SHA-256\r\n";
    let challenged = reply_to(&invite, 407, "Proxy Authentication Required", "").replace(
        "Content-Length: 0",
        &format!("{challenge}Content-Length: 0"),
    );
    sim.recv(&challenged);
    let sent = sim.take_sent();
    assert!(sent[0].starts_with("ACK "), "the 407 is ACKed: {sent:?}");
    let again = sent
        .iter()
        .find(|m| m.starts_with("INVITE "))
        .expect("the INVITE again")
        .clone();
    let line = |m: &str, name: &str| m.lines().find(|l| l.starts_with(name)).unwrap().to_string();
    assert_eq!(line(&again, "Call-ID:"), line(&invite, "Call-ID:"));
    assert_eq!(line(&again, "From:"), line(&invite, "From:"));
    assert_eq!(line(&again, "CSeq:"), "CSeq: 2 INVITE");
    assert_ne!(line(&again, "Via:"), line(&invite, "Via:"), "a new branch");
    // The server side's own check accepts the credentials.
    let auth = line(&again, "Proxy-Authorization:");
    let creds =
        crate::sip::digest::parse_authorization(auth.trim_start_matches("Proxy-Authorization: "))
            .unwrap();
    let alg = crate::sip::digest::Algorithm::Sha256;
    let ha1 = crate::sip::digest::ha1(alg, "hotline", "gw", "secret");
    assert_eq!(
        creds.response,
        crate::sip::digest::expected_response(alg, &ha1, "INVITE", &creds),
        "{auth}"
    );
    assert_eq!(creds.uri, "sip:13800000001@127.0.0.1:5061");
    // Refused again: no third try, the visit is unanswered (407).
    sim.recv(
        &reply_to(&again, 407, "Proxy Authentication Required", "").replace(
            "Content-Length: 0",
            &format!("{challenge}Content-Length: 0"),
        ),
    );
    assert!(!sim.take_sent().iter().any(|m| m.starts_with("INVITE ")));
    assert_eq!(sim.answers, ["T7#1 Unanswered(407)"]);
    assert!(!sim.sw.calls.contains_key(&id));
}

#[test]
fn owner_presses_2_and_rates_4_then_the_hotline_hangs_up() {
    let mut sim = Sim::new();
    let (id, _) = answered_visit(&mut sim);
    let sent = sim.take_sent();
    assert!(
        sent[0].starts_with("ACK sip:owner@127.0.0.1:5061 SIP/2.0"),
        "{sent:?}"
    );
    assert!(
        sent[0].contains("tag=owner1") && sent[0].contains("CSeq: 1 ACK"),
        "{}",
        sent[0]
    );
    // RTP toward the owner's answer: PCMA, its telephone-event type.
    assert!(sim.media.iter().any(|m| matches!(m,
        MediaCommand::Open { params, .. } if params.codec_pt == 8 && params.dtmf_pt == Some(101)
            && params.remote == "127.0.0.1:7000".parse().unwrap())));
    assert_eq!(sim.played(), ["return_visit_en"]);
    sim.media_event(id, MediaEvent::PromptFinished);
    sim.media_event(id, MediaEvent::Digit('2'));
    sim.media_event(id, MediaEvent::Digit('4'));
    assert_eq!(sim.answers, ["T7#1 NotFixed", "T7 survey 4"]);
    assert_eq!(sim.played(), ["return_visit_en", "survey_en", "goodbye_en"]);
    sim.media_event(id, MediaEvent::PromptFinished);
    let bye = sim.take_sent();
    assert!(
        bye[0].starts_with("BYE sip:owner@127.0.0.1:5061"),
        "{bye:?}"
    );
    assert!(bye[0].contains("CSeq: 2 BYE") && bye[0].contains("tag=owner1"));
    sim.recv(&bye[0].replace("BYE sip:owner@127.0.0.1:5061 SIP/2.0", "SIP/2.0 200 OK"));
    assert_eq!(sim.ended.len(), 1);
    assert_eq!(sim.ended[0].reason, EndReason::HotlineHungUp);
    assert_eq!(sim.answers.len(), 2, "one outcome, one rating");
    assert_eq!((sim.sw.active_calls(), sim.sw.ports_in_use()), (0, 0));
}

#[test]
fn keys_other_than_the_choices_leave_the_question_standing() {
    let mut sim = Sim::new();
    let (id, _) = answered_visit(&mut sim);
    for d in ['9', '#', '1'] {
        sim.media_event(id, MediaEvent::Digit(d));
    }
    sim.media_event(id, MediaEvent::Digit('0'));
    sim.media_event(id, MediaEvent::Digit('5'));
    assert_eq!(sim.answers, ["T7#1 Fixed", "T7 survey 5"]);
}

#[test]
fn ringing_too_long_is_cancelled_and_reported_unanswered() {
    let mut sim = Sim::new();
    let (_, invite) = place(&mut sim);
    sim.recv(&reply_to(&invite, 180, "Ringing", ""));
    sim.advance(Duration::from_secs(30));
    let sent = sim.take_sent();
    let cancel = sent
        .iter()
        .find(|m| m.starts_with("CANCEL "))
        .expect("CANCEL sent");
    let branch = |m: &str| {
        m.lines()
            .find(|l| l.starts_with("Via:"))
            .unwrap()
            .to_string()
    };
    assert_eq!(
        branch(cancel),
        branch(&invite),
        "CANCEL matches the INVITE's branch"
    );
    sim.recv(&reply_to(cancel, 200, "OK", ""));
    sim.recv(&reply_to(&invite, 487, "Request Terminated", ""));
    assert!(
        sim.take_sent().iter().any(|m| m.starts_with("ACK ")),
        "487 is ACKed"
    );
    assert_eq!(sim.answers, ["T7#1 Unanswered(487)"]);
    assert_eq!(sim.ended[0].reason, EndReason::NoAnswer);
    assert_eq!((sim.sw.active_calls(), sim.sw.ports_in_use()), (0, 0));
}

#[test]
fn busy_owner_is_reported_unanswered_with_the_code() {
    let mut sim = Sim::new();
    let (_, invite) = place(&mut sim);
    sim.recv(&reply_to(&invite, 486, "Busy Here", ""));
    assert_eq!(sim.answers, ["T7#1 Unanswered(486)"]);
    assert_eq!(sim.ended[0].reason, EndReason::Declined(486));
    assert_eq!(sim.sw.ports_in_use(), 0);
}

#[test]
fn gateway_that_never_answers_times_out_at_timer_b() {
    let mut sim = Sim::new();
    place(&mut sim);
    sim.advance(Duration::from_secs(40));
    assert_eq!(sim.answers, ["T7#1 Unanswered(408)"]);
    assert_eq!(sim.sw.active_calls(), 0);
}

#[test]
fn silence_repeats_the_question_once_then_reports_no_key() {
    let mut sim = Sim::new();
    let (id, _) = answered_visit(&mut sim);
    sim.media_event(id, MediaEvent::PromptFinished);
    sim.advance(Duration::from_secs(8));
    sim.media_event(id, MediaEvent::PromptFinished);
    sim.advance(Duration::from_secs(8));
    assert_eq!(
        sim.played(),
        ["return_visit_en", "return_visit_en", "goodbye_en"]
    );
    sim.media_event(id, MediaEvent::PromptFinished);
    let bye = sim
        .take_sent()
        .into_iter()
        .find(|m| m.starts_with("BYE "))
        .unwrap();
    sim.recv(&bye.replace("BYE sip:owner@127.0.0.1:5061 SIP/2.0", "SIP/2.0 200 OK"));
    assert_eq!(sim.answers, ["T7#1 NoKey"]);
}

#[test]
fn owner_hanging_up_after_answering_reports_once() {
    let mut sim = Sim::new();
    let (id, invite) = answered_visit(&mut sim);
    sim.media_event(id, MediaEvent::Digit('1'));
    // The owner's BYE: their From carries their tag, their To ours.
    let bye = from_callee(&invite, GATEWAY, "13800000001", "BYE", 1, "", "");
    sim.recv(&bye);
    assert_eq!(sim.answers, ["T7#1 Fixed"], "no second outcome at the end");
    assert_eq!(sim.ended[0].reason, EndReason::CallerHungUp);
}

#[test]
fn retransmitted_200_gets_the_ack_again() {
    let mut sim = Sim::new();
    let (_, invite) = answered_visit(&mut sim);
    let first = sim.take_sent();
    sim.recv(&reply_to(&invite, 200, "OK", OWNER_SDP));
    let again = sim.take_sent();
    assert_eq!(again, first[..1], "the same ACK");
}

// ---- the voice menu in a call ------------------------------------------------

fn menu_sim() -> Sim {
    let mut cfg = config();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/ivr.toml");
    cfg.ivr = Some(std::sync::Arc::new(
        crate::ivr::graph::Graph::load(&path, |_| true).unwrap(),
    ));
    Sim {
        sw: Switch::new(cfg),
        ..Sim::new()
    }
}

#[test]
fn a_known_caller_is_looked_up_before_the_answer_and_walks_the_menu() {
    let mut sim = menu_sim();
    let inv = invite("menu-1", "z9hG4bKm1", SDP);
    sim.recv(&inv.replace("INVITE sip:100@", "INVITE sip:4008200100@"));
    let (call, number) = match &sim.menu[..] {
        [Output::IdentifyCaller { call, number }] => (*call, number.clone()),
        other => panic!("{other:?}"),
    };
    assert_eq!(number, "13800138000");
    // Not answered while the lookup is out, even after the answer delay.
    sim.advance(Duration::from_millis(600));
    assert!(!sim.status_lines().iter().any(|l| l.contains("200 OK")));
    sim.sw.handle_owner(
        sim.now,
        call,
        Some(crate::ivr::OwnerInfo {
            id: "O-0001".into(),
            language: "en".into(),
            class: crate::owners::OwnerClass::Key,
            points: 800,
            fee_balance_cents: 500,
            building: "3".into(),
        }),
    );
    sim.drain();
    let sent = sim.take_sent();
    assert!(
        sent.iter().any(|m| m.starts_with("SIP/2.0 200 OK")),
        "{sent:?}"
    );
    let tag = to_tag(sent.last().unwrap());
    sim.recv(&in_dialog("ACK", "menu-1", "z9hG4bKm1a", 1, &tag));
    assert_eq!(sim.played(), ["greeting_garden_en main_menu_en"]);
    sim.media_event(call, MediaEvent::Digit('1'));
    sim.media_event(call, MediaEvent::Digit('1'));
    assert_eq!(
        sim.played().last().unwrap(),
        "balance_is_en num_5_en yuan_en"
    );
    // The caller hangs up: the menu's last step is in the log.
    sim.recv(&in_dialog("BYE", "menu-1", "z9hG4bKm1b", 2, &tag));
    let steps: Vec<String> = sim
        .kinds()
        .filter_map(|k| match k {
            CallEventKind::MenuStep { node, detail } => Some(format!("{node}: {detail}")),
            _ => None,
        })
        .collect();
    assert_eq!(
        steps.first().unwrap(),
        "start: site garden language en owner O-0001"
    );
    assert!(
        steps.contains(&"main: key 1 -> self_service".to_string()),
        "{steps:?}"
    );
    assert_eq!(steps.last().unwrap(), "balance: caller hung up");
    assert_eq!((sim.sw.active_calls(), sim.sw.ports_in_use()), (0, 0));
}

#[test]
fn a_lookup_that_never_answers_does_not_hold_the_call() {
    let mut sim = menu_sim();
    sim.recv(&invite("menu-2", "z9hG4bKm2", SDP));
    sim.advance(Duration::from_millis(1100));
    let sent = sim.take_sent();
    assert!(
        sent.iter().any(|m| m.starts_with("SIP/2.0 200 OK")),
        "answered as an unknown caller after waiting twice the answer delay"
    );
}

// ---- agents registering ----------------------------------------------------

fn agent_sim() -> Sim {
    let mut cfg = config();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/agents.toml");
    let mut agents = crate::acd::agents::AgentsFile::load(&path).unwrap();
    agents.digest = vec!["SHA-256".into(), "MD5".into()];
    cfg.agents = Some(std::sync::Arc::new(agents));
    Sim {
        sw: Switch::new(cfg),
        ..Sim::new()
    }
}

fn register(cseq: u32, auth: Option<&str>, expires: u32) -> String {
    register_as("2001", cseq, auth, expires)
}

fn register_as(agent: &str, cseq: u32, auth: Option<&str>, expires: u32) -> String {
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    format!(
        "REGISTER sip:127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bKr{agent}{cseq}\r\nFrom: <sip:{agent}@127.0.0.1>;tag=ph\r\nTo: <sip:{agent}@127.0.0.1>\r\nCall-ID: reg-{agent}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{agent}@{CALLER}>;expires={expires}\r\n{auth}Content-Length: 0\r\n\r\n"
    )
}

/// The softphone's answer to a 401 for a REGISTER, with `algorithm` and `password`.
fn answer_challenge(challenge: &str, algorithm: &str, password: &str) -> String {
    digest_answer(
        challenge,
        algorithm,
        "REGISTER",
        "sip:127.0.0.1:5060",
        password,
    )
}

/// The Authorization value a phone sends for `method` to `uri`.
fn digest_answer(
    challenge: &str,
    algorithm: &str,
    method: &str,
    uri: &str,
    password: &str,
) -> String {
    use crate::sip::digest::{Algorithm, Credentials, expected_response, ha1};
    let line = challenge
        .lines()
        .find(|l| {
            l.starts_with("WWW-Authenticate:") && l.contains(&format!("algorithm={algorithm},"))
        })
        .unwrap();
    let nonce = line
        .split("nonce=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let alg = if algorithm == "MD5" {
        Algorithm::Md5
    } else {
        Algorithm::Sha256
    };
    // The demo agents' passwords are "agent<id>".
    let user = password.strip_prefix("agent").unwrap_or("2001");
    let mut c = Credentials {
        username: user.into(),
        realm: "hotline".into(),
        nonce: nonce.into(),
        uri: uri.into(),
        algorithm: algorithm.into(),
        qop: Some("auth".into()),
        nc: Some("00000001".into()),
        cnonce: Some("0a4f113b".into()),
        ..Default::default()
    };
    c.response = expected_response(alg, &ha1(alg, user, "hotline", password), method, &c);
    format!(
        "Digest username=\"{user}\", realm=\"hotline\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{}\", algorithm={algorithm}, qop=auth, nc=00000001, cnonce=\"0a4f113b\"",
        c.response
    )
}

fn registrations(sim: &Sim) -> Vec<String> {
    sim.menu
        .iter()
        .filter_map(|o| match o {
            Output::AgentRegistered { agent, expires, .. } => {
                Some(format!("{agent} +{}", expires.as_secs()))
            }
            Output::AgentUnregistered { agent, expired } => {
                Some(format!("{agent} - expired={expired}"))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn an_agent_registers_with_sha256_or_md5_digest() {
    for algorithm in ["SHA-256", "MD5"] {
        let mut sim = agent_sim();
        sim.recv(&register(1, None, 600));
        let challenge = sim.take_sent().pop().unwrap();
        assert!(
            challenge.starts_with("SIP/2.0 401 Unauthorized"),
            "{challenge}"
        );
        let sha = challenge.find("algorithm=SHA-256").unwrap();
        let md5 = challenge.find("algorithm=MD5").unwrap();
        assert!(sha < md5, "SHA-256 first, as configured");
        assert!(
            registrations(&sim).is_empty(),
            "a challenge changes nothing"
        );
        let auth = answer_challenge(&challenge, algorithm, "agent2001");
        sim.recv(&register(2, Some(&auth), 600));
        let ok = sim.take_sent().pop().unwrap();
        assert!(ok.starts_with("SIP/2.0 200 OK"), "{algorithm}: {ok}");
        assert!(
            ok.contains(&format!("<sip:2001@{CALLER}>;expires=600")),
            "{ok}"
        );
        assert_eq!(registrations(&sim), ["2001 +600"]);
        assert_eq!(
            sim.sw.binding("2001").unwrap().contact,
            format!("sip:2001@{CALLER}")
        );
    }
}

#[test]
fn a_wrong_password_gets_403_and_changes_nothing() {
    let mut sim = agent_sim();
    sim.recv(&register(1, None, 600));
    let challenge = sim.take_sent().pop().unwrap();
    let auth = answer_challenge(&challenge, "SHA-256", "guess");
    sim.recv(&register(2, Some(&auth), 600));
    assert!(
        sim.take_sent()
            .pop()
            .unwrap()
            .starts_with("SIP/2.0 403 Forbidden")
    );
    assert!(registrations(&sim).is_empty());
    assert!(sim.sw.binding("2001").is_none());
    // Another agent's credentials for 2001's address: refused too.
    let theirs = answer_challenge(&challenge, "SHA-256", "agent2001")
        .replace("username=\"2001\"", "username=\"2002\"");
    sim.recv(&register(3, Some(&theirs), 600));
    assert!(sim.take_sent().pop().unwrap().starts_with("SIP/2.0 403"));
}

#[test]
fn registrations_expire_and_can_be_withdrawn() {
    let mut sim = agent_sim();
    sim.recv(&register(1, None, 90));
    let challenge = sim.take_sent().pop().unwrap();
    let auth = answer_challenge(&challenge, "SHA-256", "agent2001");
    sim.recv(&register(2, Some(&auth), 90));
    sim.advance(Duration::from_secs(89));
    assert_eq!(registrations(&sim), ["2001 +90"]);
    sim.advance(Duration::from_secs(1));
    assert_eq!(registrations(&sim), ["2001 +90", "2001 - expired=true"]);
    assert!(sim.sw.binding("2001").is_none());
    // The old answer is no good now: its nonce is stale (and its nc used).
    sim.recv(&register(3, Some(&auth), 3600));
    let reply = sim.take_sent().pop().unwrap();
    assert!(
        reply.starts_with("SIP/2.0 401") && reply.contains("stale=true"),
        "{reply}"
    );
    // Registered again with the fresh nonce, then withdrawn with expires=0.
    let auth = answer_challenge(&reply, "SHA-256", "agent2001");
    sim.recv(&register(4, Some(&auth), 3600));
    sim.recv(&register(5, None, 0));
    let challenge = sim.take_sent().pop().unwrap();
    let auth = answer_challenge(&challenge, "SHA-256", "agent2001");
    sim.recv(&register(6, Some(&auth), 0));
    assert_eq!(
        registrations(&sim)[2..],
        ["2001 +3600", "2001 - expired=false"],
        "{:?}",
        sim.take_sent()
    );
    // A nonce from before a restart (another secret) is challenged, not refused.
    let mut restarted = agent_sim();
    restarted.sw = Switch::new(SwitchConfig {
        seed: 7,
        ..restarted.sw.cfg.clone()
    });
    restarted.recv(&register(5, Some(&auth), 600));
    let reply = restarted.take_sent().pop().unwrap();
    assert!(
        reply.starts_with("SIP/2.0 401") && reply.contains("stale=true"),
        "{reply}"
    );
}

fn feature_invite(code: &str, cseq: u32, auth: Option<&str>) -> String {
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    format!(
        "INVITE sip:{code}@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bKf{cseq}\r\nFrom: <sip:2001@127.0.0.1>;tag=ag\r\nTo: <sip:{code}@127.0.0.1>\r\nCall-ID: feat-{cseq}\r\nCSeq: {cseq} INVITE\r\nContact: <sip:2001@{CALLER}>\r\n{auth}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    )
}

/// Answers an INVITE challenge the way a phone does.
fn answer_invite_challenge(challenge: &str, code: &str, password: &str) -> String {
    let uri = format!("sip:{code}@127.0.0.1:5060");
    digest_answer(challenge, "SHA-256", "INVITE", &uri, password)
}

fn features(sim: &Sim) -> Vec<String> {
    sim.menu
        .iter()
        .filter_map(|o| match o {
            Output::AgentFeature { agent, code } => Some(format!("{agent} {code:?}")),
            _ => None,
        })
        .collect()
}

#[test]
fn an_agent_logs_in_with_star_1_after_authenticating() {
    let mut sim = agent_sim();
    sim.recv(&feature_invite("*1", 1, None));
    let challenge = sim.take_sent().pop().unwrap();
    assert!(challenge.starts_with("SIP/2.0 401"), "{challenge}");
    assert!(features(&sim).is_empty());
    let auth = answer_invite_challenge(&challenge, "*1", "agent2001");
    sim.recv(&feature_invite("*1", 2, Some(&auth)));
    assert_eq!(features(&sim), ["2001 LogIn"]);
    sim.advance(Duration::from_millis(600));
    let ok = sim
        .take_sent()
        .into_iter()
        .find(|m| m.starts_with("SIP/2.0 200"))
        .expect("answered");
    let tag = to_tag(&ok);
    // The ACK carries the phone's From tag (`ag`), as its INVITE did.
    sim.recv(&in_dialog("ACK", "feat-2", "z9hG4bKfa", 2, &tag).replace("tag=caller", "tag=ag"));
    assert_eq!(sim.played(), ["agent_logged_in_en"]);
}

#[test]
fn a_feature_code_with_a_wrong_password_or_unknown_code_is_refused() {
    let mut sim = agent_sim();
    sim.recv(&feature_invite("*1", 1, None));
    let challenge = sim.take_sent().pop().unwrap();
    let wrong = answer_invite_challenge(&challenge, "*1", "guess");
    sim.recv(&feature_invite("*1", 2, Some(&wrong)));
    assert!(sim.take_sent().iter().any(|m| m.starts_with("SIP/2.0 403")));
    let good = answer_invite_challenge(&challenge, "*9", "agent2001");
    sim.recv(&feature_invite("*9", 3, Some(&good)));
    assert!(sim.take_sent().iter().any(|m| m.starts_with("SIP/2.0 404")));
    assert!(features(&sim).is_empty(), "nothing changed");
    assert_eq!(sim.sw.active_calls(), 0);
}

// ---- bridging a caller to an agent ---------------------------------------------

/// An agent registered from CALLER (the test's one peer address) and a caller
/// answered by the line test; returns the caller's id and dialog tag.
fn caller_and_registered_agent(sim: &mut Sim) -> (CallId, String) {
    sim.recv(&register(1, None, 600));
    let challenge = sim.take_sent().pop().unwrap();
    let auth = answer_challenge(&challenge, "SHA-256", "agent2001");
    sim.recv(&register(2, Some(&auth), 600));
    sim.take_sent();
    let tag = answered_call(sim, "cust-1");
    let caller = sim.sw.by_sip["cust-1"];
    (caller, tag)
}

/// A request the called party sends inside the dialog our `invite` made:
/// their From (with their tag `owner1`) is our To, our From their To.
/// `extra` are further header lines; `body` goes with its length.
fn from_callee(
    invite: &str,
    peer: &str,
    user: &str,
    method: &str,
    cseq: u32,
    extra: &str,
    body: &str,
) -> String {
    let header = |name: &str| {
        invite
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap()
            .to_string()
    };
    let call_id = header("Call-ID:");
    let our_from = header("From:");
    let to = our_from.trim_start_matches("From: ");
    format!(
        "{method} sip:hotline@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {peer};branch=z9hG4bK{}{cseq}\r\nFrom: <sip:{user}@{peer}>;tag=owner1\r\nTo: {to}\r\n{call_id}\r\nCSeq: {cseq} {method}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        method.to_lowercase(),
        body.len()
    )
}

fn agent_leg_invite(sim: &mut Sim) -> String {
    sim.take_sent()
        .into_iter()
        .find(|m| m.starts_with("INVITE sip:2001@"))
        .expect("the agent's phone is rung")
}

#[test]
fn the_agent_answers_and_both_legs_are_bridged_keys_pass_until_the_agent_hangs_up() {
    let mut sim = agent_sim();
    let (caller, caller_tag) = caller_and_registered_agent(&mut sim);
    sim.sw.offer_to_agent(sim.now, caller, AgentId(2001));
    sim.drain();
    let invite = agent_leg_invite(&mut sim);
    assert!(
        invite.contains("m=audio 20002 RTP/AVP 0 101"),
        "the caller's codec only: {invite}"
    );
    sim.recv(&reply_to(&invite, 180, "Ringing", ""));
    sim.recv(&reply_to(
        &invite,
        200,
        "OK",
        OWNER_SDP.replace("RTP/AVP 8 101", "RTP/AVP 0 101").as_str(),
    ));
    assert!(sim.take_sent().iter().any(|m| m.starts_with("ACK ")));
    let leg = sim.sw.calls[&caller].bridge.unwrap();
    assert!(
        sim.media
            .contains(&MediaCommand::Bridge { a: caller, b: leg })
    );
    assert!(
        sim.kinds()
            .any(|k| matches!(k, CallEventKind::Answered { agent, .. } if *agent == AgentId(2001)))
    );
    // A key as SIP INFO from the agent's phone goes on to the caller as is.
    let body = "Signal=5\r\nDuration=160\r\n";
    let ct = "Content-Type: application/dtmf-relay\r\n";
    sim.recv(&from_callee(&invite, CALLER, "2001", "INFO", 2, ct, body));
    let sent = sim.take_sent();
    assert!(
        sent.iter().any(|m| m.starts_with("SIP/2.0 200")),
        "{sent:?}"
    );
    let info = sent
        .iter()
        .find(|m| m.starts_with("INFO "))
        .expect("INFO to the caller");
    assert!(
        info.contains("Call-ID: cust-1")
            && info.contains(&caller_tag)
            && info.contains("Content-Type: application/dtmf-relay")
            && info.ends_with(body),
        "{info}"
    );
    // The agent hangs up: the caller's leg gets a BYE, the ACD hears the end.
    sim.recv(&from_callee(&invite, CALLER, "2001", "BYE", 3, "", ""));
    let sent = sim.take_sent();
    assert!(
        sent.iter().any(|m| m.starts_with("SIP/2.0 200")),
        "{sent:?}"
    );
    let bye = sent
        .iter()
        .find(|m| m.starts_with("BYE "))
        .expect("BYE to the caller");
    assert!(bye.contains("Call-ID: cust-1") && bye.contains(&caller_tag));
    assert!(
        sim.kinds()
            .any(|k| matches!(k, CallEventKind::ConversationEnded { by_agent: true, .. }))
    );
}

#[test]
fn an_agent_putting_the_caller_on_hold_stops_the_relay_and_the_caller_hears_the_hold_prompt() {
    let mut sim = agent_sim();
    let (caller, _) = caller_and_registered_agent(&mut sim);
    sim.sw.offer_to_agent(sim.now, caller, AgentId(2001));
    sim.drain();
    let invite = agent_leg_invite(&mut sim);
    let agent_sdp = OWNER_SDP.replace("RTP/AVP 8 101", "RTP/AVP 0 101");
    sim.recv(&reply_to(&invite, 200, "OK", &agent_sdp));
    sim.take_sent();
    let leg = sim.sw.calls[&caller].bridge.unwrap();
    let reinvite = |cseq: u32, direction: &str| {
        let headers = format!("Contact: <sip:2001@{CALLER}>\r\nContent-Type: application/sdp\r\n");
        let body = format!("{agent_sdp}a={direction}\r\n");
        from_callee(&invite, CALLER, "2001", "INVITE", cseq, &headers, &body)
    };
    // Hold: 200 with recvonly and a new o= version; the relay from the
    // agent stops and the caller hears the hold prompt, again and again.
    sim.media.clear();
    sim.recv(&reinvite(2, "sendonly"));
    let ok = sim
        .take_sent()
        .into_iter()
        .find(|m| m.starts_with("SIP/2.0 200"))
        .unwrap();
    assert!(
        ok.contains("a=recvonly\r\n") && !ok.contains("a=sendrecv"),
        "{ok}"
    );
    let version = |m: &str| -> u64 {
        let o = m.lines().find(|l| l.starts_with("o=")).unwrap();
        o.split(' ').nth(2).unwrap().parse().unwrap()
    };
    assert_eq!(version(&ok), version(&invite) + 1, "{ok}");
    assert!(sim.media.contains(&MediaCommand::Relay {
        from: leg,
        on: false
    }));
    assert_eq!(sim.played(), ["hold_en"]);
    sim.media_event(caller, MediaEvent::PromptFinished);
    assert_eq!(sim.played(), ["hold_en", "hold_en"]);
    // A refresh while held changes nothing.
    sim.media.clear();
    sim.recv(&reinvite(3, "sendonly"));
    assert!(sim.media.is_empty(), "{:?}", sim.media);
    // Resume: sendrecv again, the relay back, the prompt stopped.
    sim.recv(&reinvite(4, "sendrecv"));
    let ok = sim
        .take_sent()
        .into_iter()
        .rfind(|m| m.starts_with("SIP/2.0 200"))
        .unwrap();
    assert!(ok.contains("a=sendrecv\r\n"), "{ok}");
    assert_eq!(version(&ok), version(&invite) + 2);
    assert!(sim.media.contains(&MediaCommand::Relay {
        from: leg,
        on: true
    }));
    assert!(sim.media.contains(&MediaCommand::Stop { call: caller }));
    sim.media.clear();
    sim.media_event(caller, MediaEvent::PromptFinished);
    assert!(sim.played().is_empty(), "no hold prompt after the resume");
}

#[test]
fn the_caller_hanging_up_while_the_agent_rings_cancels_the_agent_leg() {
    let mut sim = agent_sim();
    let (caller, tag) = caller_and_registered_agent(&mut sim);
    sim.sw.offer_to_agent(sim.now, caller, AgentId(2001));
    sim.drain();
    let invite = agent_leg_invite(&mut sim);
    sim.recv(&reply_to(&invite, 180, "Ringing", ""));
    sim.recv(&in_dialog("BYE", "cust-1", "z9hG4bKcb", 2, &tag));
    let cancel = sim
        .take_sent()
        .into_iter()
        .find(|m| m.starts_with("CANCEL "))
        .expect("CANCEL");
    sim.recv(&reply_to(&cancel, 200, "OK", ""));
    sim.recv(&reply_to(&invite, 487, "Request Terminated", ""));
    assert!(
        !sim.kinds()
            .any(|k| matches!(k, CallEventKind::OfferMissed { .. })),
        "the caller left: an abandon, not a miss"
    );
    assert_eq!((sim.sw.active_calls(), sim.sw.ports_in_use()), (0, 0));
    // The agent's leg counts as a call that started as well as one that ended.
    let stats = sim.sw.stats();
    assert_eq!((stats.calls_started, stats.calls_ended), (2, 2));
}

#[test]
fn an_agent_who_refuses_or_is_not_registered_is_reported() {
    let mut sim = agent_sim();
    let (caller, _) = caller_and_registered_agent(&mut sim);
    sim.sw.offer_to_agent(sim.now, caller, AgentId(2002));
    sim.drain();
    assert!(
        sim.kinds().any(|k| matches!(
            k,
            CallEventKind::OfferMissed {
                agent: AgentId(2002),
                why: Missed::NotRegistered
            }
        )),
        "2002 has no phone registered"
    );
    assert!(sim.take_sent().is_empty(), "nothing rings for 2002");
    sim.sw.offer_to_agent(sim.now, caller, AgentId(2001));
    sim.drain();
    let invite = agent_leg_invite(&mut sim);
    sim.recv(&reply_to(&invite, 486, "Busy Here", ""));
    assert!(sim.kinds().any(|k| matches!(
        k,
        CallEventKind::OfferMissed {
            agent: AgentId(2001),
            why: Missed::Refused(486)
        }
    )));
    assert!(
        sim.sw.calls[&caller].bridge.is_none(),
        "free for the next agent"
    );
    sim.sw.offer_to_agent(sim.now, caller, AgentId(2001));
}

#[test]
fn a_waiting_caller_hears_ringback_while_agents_ring_and_the_survey_after_the_agent_hangs_up() {
    let mut sim = menu_sim();
    let mut agents = crate::acd::agents::AgentsFile::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/agents.toml"),
    )
    .unwrap();
    agents.digest = vec!["SHA-256".into()];
    sim.sw = Switch::new(SwitchConfig {
        agents: Some(std::sync::Arc::new(agents)),
        ..sim.sw.cfg.clone()
    });
    sim.recv(&register(1, None, 600));
    let challenge = sim.take_sent().pop().unwrap();
    let auth = answer_challenge(&challenge, "SHA-256", "agent2001");
    sim.recv(&register(2, Some(&auth), 600));
    sim.recv(&invite("menu-9", "z9hG4bKm9", SDP));
    let caller = sim.sw.by_sip["menu-9"];
    sim.sw.handle_owner(sim.now, caller, None);
    sim.advance(Duration::from_millis(600));
    let ok = sim
        .take_sent()
        .into_iter()
        .find(|m| m.starts_with("SIP/2.0 200 OK") && m.contains("menu-9"))
        .unwrap();
    let tag = to_tag(&ok);
    sim.recv(&in_dialog("ACK", "menu-9", "z9hG4bKm9a", 1, &tag));
    sim.media_event(caller, MediaEvent::Digit('0'));
    assert!(
        sim.kinds()
            .any(|k| matches!(k, CallEventKind::Queued { .. }))
    );
    assert_eq!(sim.played().last().unwrap(), "hold_zh");
    // A first agent's phone rings (ringback), refuses (hold again) ...
    sim.sw.offer_to_agent(sim.now, caller, AgentId(2001));
    sim.drain();
    assert_eq!(sim.played().last().unwrap(), "ringback_zh");
    let invite = agent_leg_invite(&mut sim);
    sim.recv(&reply_to(&invite, 486, "Busy Here", ""));
    assert_eq!(sim.played().last().unwrap(), "hold_zh");
    // ... the next one answers.
    sim.sw.offer_to_agent(sim.now, caller, AgentId(2001));
    sim.drain();
    assert_eq!(sim.played().last().unwrap(), "ringback_zh");
    let invite = agent_leg_invite(&mut sim);
    sim.recv(&reply_to(
        &invite,
        200,
        "OK",
        OWNER_SDP.replace("RTP/AVP 8 101", "RTP/AVP 0 101").as_str(),
    ));
    // The agent hangs up first.
    sim.take_sent();
    sim.recv(&from_callee(&invite, CALLER, "2001", "BYE", 1, "", ""));
    assert!(
        !sim.take_sent().iter().any(|m| m.starts_with("BYE ")),
        "the caller is not hung up on"
    );
    assert_eq!(sim.played().last().unwrap(), "survey_zh");
    sim.media_event(caller, MediaEvent::Digit('4'));
    assert!(sim.kinds().any(|k| matches!(
        k,
        CallEventKind::SurveyAnswered {
            score: 4,
            ticket: None,
            ..
        }
    )));
    assert_eq!(sim.played().last().unwrap(), "goodbye_zh");
    sim.media_event(caller, MediaEvent::PromptFinished);
    assert!(
        sim.take_sent()
            .iter()
            .any(|m| m.starts_with("BYE ") && m.contains("menu-9"))
    );
}

// ---- the edge: trust, admission, dialog matching, calls that end ----------

impl Sim {
    /// Feeds `text` as if it came from `from` (another address than the caller's).
    fn recv_from(&mut self, from: &str, text: &str) {
        let peer = Peer {
            transport: crate::sip::transaction::Transport::Udp,
            addr: from.parse().unwrap(),
        };
        self.sw.handle_datagram(self.now, peer, text.as_bytes());
        self.drain();
    }
}

fn invite_with(call_id: &str, branch: &str, extra: &str) -> String {
    invite(call_id, branch, SDP).replace(
        "Max-Forwards: 70\r\n",
        &format!("Max-Forwards: 70\r\n{extra}"),
    )
}

fn identified_numbers(sim: &Sim) -> Vec<String> {
    sim.menu
        .iter()
        .filter_map(|o| match o {
            Output::IdentifyCaller { number, .. } => Some(number.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn only_a_trunk_call_carries_a_caller_id() {
    let mut sim = menu_sim();
    let pai = "P-Asserted-Identity: <sip:13900139000@carrier>\r\n";
    // From the trunk (127.0.0.1 in the tests' config): PAI first, else From.
    sim.recv(&invite_with("trunk-1", "z9hG4bK-t1", pai));
    sim.recv(&invite("trunk-2", "z9hG4bK-t2", SDP));
    // The same PAI and From from anywhere else: an unknown caller.
    sim.recv_from("127.0.0.9:5062", &invite_with("spoof-1", "z9hG4bK-s1", pai));
    assert_eq!(identified_numbers(&sim), ["13900139000", "13800138000", ""]);
}

#[test]
fn untrusted_calls_can_be_refused() {
    let mut sim = Sim::new();
    sim.sw = Switch::new(SwitchConfig {
        edge: crate::edge::EdgeConfig {
            untrusted_calls: crate::edge::UntrustedCalls::Reject,
            ..config().edge
        },
        ..config()
    });
    sim.recv_from("127.0.0.9:5062", &invite("stranger", "z9hG4bK-x", SDP));
    assert_eq!(sim.status_lines(), ["SIP/2.0 403 Forbidden"]);
    assert_eq!(sim.sw.ports_in_use(), 0);
}

/// A switch behind the proxy at 127.0.0.9, with calls from outside the
/// trunks (127.0.0.1) refused.
fn behind_proxy() -> Sim {
    let mut sim = Sim::new();
    sim.sw = Switch::new(SwitchConfig {
        edge: crate::edge::EdgeConfig {
            untrusted_calls: crate::edge::UntrustedCalls::Reject,
            proxies: crate::edge::Networks::parse(&["127.0.0.9"]).unwrap(),
            ..config().edge
        },
        ..config()
    });
    sim
}

#[test]
fn behind_a_trusted_proxy_the_trunk_check_sees_the_source_it_names() {
    let mut sim = behind_proxy();
    let from_trunk = "X-Hotline-Source: udp:127.0.0.1:5080\r\n";
    let from_stranger = "X-Hotline-Source: udp:198.51.100.7:5080\r\n";
    sim.recv_from(
        "127.0.0.9:5060",
        &invite_with("via-1", "z9hG4bK-p1", from_trunk),
    );
    assert_eq!(sim.status_lines()[..1], ["SIP/2.0 180 Ringing"]);
    sim.recv_from(
        "127.0.0.9:5060",
        &invite_with("via-2", "z9hG4bK-p2", from_stranger),
    );
    assert_eq!(sim.status_lines(), ["SIP/2.0 403 Forbidden"]);
    // The header from anyone but the proxy is nobody's word: 127.0.0.8
    // is no trunk, whatever it writes.
    sim.recv_from(
        "127.0.0.8:5060",
        &invite_with("forged", "z9hG4bK-f", from_trunk),
    );
    assert_eq!(sim.status_lines(), ["SIP/2.0 403 Forbidden"]);
}

#[test]
fn behind_a_trusted_proxy_a_flooding_caller_is_limited_not_the_proxy() {
    let mut sim = behind_proxy();
    let flood = "X-Hotline-Source: udp:198.51.100.7:5080\r\n";
    let mut refused = 0;
    for i in 0..40 {
        sim.recv_from(
            "127.0.0.9:5060",
            &invite_with(&format!("flood-{i}"), &format!("z9hG4bK-fl{i}"), flood),
        );
        refused += sim
            .take_sent()
            .iter()
            .filter(|m| m.starts_with("SIP/2.0 503"))
            .count();
    }
    assert!(refused > 0, "the flooding source is held to its rate");
    // Another caller through the same proxy is not held back by it.
    let trunk = "X-Hotline-Source: udp:127.0.0.1:5080\r\n";
    sim.recv_from("127.0.0.9:5060", &invite_with("other", "z9hG4bK-o", trunk));
    assert_eq!(sim.status_lines()[..1], ["SIP/2.0 180 Ringing"]);
}

#[test]
fn a_proxy_that_asked_to_stay_in_the_dialog_is_in_our_answers_and_our_bye_goes_through_it() {
    let mut sim = Sim::new();
    let rr = "Record-Route: <sip:127.0.0.9:5060;lr;ftag=x>\r\n";
    sim.recv(&invite_with("rr-1", "z9hG4bK-rr", rr));
    sim.advance(Duration::from_millis(500));
    let sent = sim.take_sent();
    for code in ["180", "200"] {
        let reply = sent
            .iter()
            .find(|m| m.starts_with(&format!("SIP/2.0 {code}")))
            .unwrap_or_else(|| panic!("{code}: {sent:?}"));
        assert!(reply.contains(rr), "{reply}");
    }
    sim.recv(&in_dialog(
        "ACK",
        "rr-1",
        "z9hG4bK-rra",
        1,
        &to_tag(sent.last().unwrap()),
    ));
    sim.sw.shutdown(sim.now);
    sim.drain();
    let bye = sim
        .take_sent()
        .into_iter()
        .find(|m| m.starts_with("BYE "))
        .expect("a BYE");
    assert!(
        bye.contains("Route: <sip:127.0.0.9:5060;lr;ftag=x>\r\n"),
        "{bye}"
    );
}

#[test]
fn unconfirmed_calls_are_capped_before_a_port_is_taken_and_refused_once() {
    let mut sim = Sim::new();
    sim.sw = Switch::new(SwitchConfig {
        edge: crate::edge::EdgeConfig {
            admission: crate::edge::Admission {
                max_unconfirmed_per_source: 2,
                ..Default::default()
            },
            ..config().edge
        },
        ..config()
    });
    for i in 0..2 {
        sim.recv(&invite(&format!("held-{i}"), &format!("z9hG4bK-h{i}"), SDP));
    }
    assert_eq!(sim.sw.ports_in_use(), 2);
    sim.take_sent();
    sim.recv(&invite("third", "z9hG4bK-3", SDP));
    let sent = sim.take_sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].starts_with("SIP/2.0 503") && sent[0].contains("Retry-After: 5"));
    assert!(to_tag(&sent[0]).len() > 2, "a To tag on the 503");
    assert_eq!(sim.sw.ports_in_use(), 2, "no port for the refused call");
    // Its retransmissions are absorbed, and no Timer G resends the 503.
    sim.recv(&invite("third", "z9hG4bK-3", SDP));
    sim.advance(Duration::from_millis(400));
    assert!(
        sim.take_sent()
            .iter()
            .all(|m| !m.starts_with("SIP/2.0 503")),
        "the 503 went out once"
    );
    // Another source is not held back by this one's half-open calls.
    sim.recv_from("127.0.0.9:5062", &invite("other", "z9hG4bK-o", SDP));
    assert_eq!(sim.sw.ports_in_use(), 3);
}

#[test]
fn a_source_over_its_invite_rate_is_told_once_then_ignored() {
    let mut sim = Sim::new();
    sim.sw = Switch::new(SwitchConfig {
        rtp_ports: (20000, 20100),
        ..config()
    });
    let flooder = "127.0.0.9:5062";
    for i in 0..40 {
        sim.recv_from(
            flooder,
            &invite(&format!("f-{i}"), &format!("z9hG4bK-f{i}"), SDP),
        );
    }
    let refused: Vec<String> = sim
        .take_sent()
        .into_iter()
        .filter(|m| m.starts_with("SIP/2.0 503"))
        .collect();
    // 20 (the burst) taken; then one 503 with Retry-After, then silence.
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0].contains("Retry-After: 1"), "{}", refused[0]);
    assert_eq!(
        sim.sw.edge_stats().dropped[crate::edge::Class::Invite as usize],
        19
    );
}

#[test]
fn an_ack_or_bye_with_the_wrong_tags_does_not_touch_the_call() {
    let mut sim = Sim::new();
    sim.recv(&invite("tags", "z9hG4bK-i", SDP));
    sim.take_sent();
    sim.advance(Duration::from_millis(500));
    let tag = to_tag(&sim.take_sent()[0]);
    // An ACK with another To tag (a third party's) starts nothing.
    sim.recv(&in_dialog("ACK", "tags", "z9hG4bK-a", 1, "not-ours"));
    assert!(sim.played().is_empty());
    // A BYE with the right To tag but another From tag: 481.
    sim.recv(&in_dialog("BYE", "tags", "z9hG4bK-b", 2, &tag).replace("tag=caller", "tag=intruder"));
    assert_eq!(
        sim.status_lines(),
        ["SIP/2.0 481 Call/Transaction Does Not Exist"]
    );
    assert!(sim.ended.is_empty());
    // The real ACK does.
    sim.recv(&in_dialog("ACK", "tags", "z9hG4bK-a2", 1, &tag));
    assert_eq!(sim.played(), ["welcome_en"]);
}

#[test]
fn a_silent_caller_is_hung_up_but_not_while_holding() {
    let mut sim = Sim::new();
    let tag = answered_call(&mut sim, "quiet");
    let call = CallId(1);
    // On hold (sendonly re-INVITE), silence is expected.
    let hold = in_dialog("INVITE", "quiet", "z9hG4bK-h", 2, &tag).replace(
        "Content-Length: 0\r\n\r\n",
        &format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}a=sendonly\r\n",
            SDP.len() + "a=sendonly\r\n".len()
        ),
    );
    sim.recv(&hold);
    sim.take_sent();
    sim.media_event(call, MediaEvent::Silent(Duration::from_secs(60)));
    assert!(sim.ended.is_empty());
    let resume = hold
        .replace("a=sendonly", "a=sendrecv")
        .replace("z9hG4bK-h", "z9hG4bK-r")
        .replace("CSeq: 2", "CSeq: 3");
    sim.recv(&resume);
    sim.take_sent();
    sim.media_event(call, MediaEvent::Silent(Duration::from_secs(60)));
    assert_eq!(sim.ended.len(), 1);
    assert_eq!(sim.ended[0].reason, EndReason::RtpTimeout);
    assert!(sim.take_sent()[0].starts_with("BYE "));
    assert_eq!(sim.sw.ports_in_use(), 0);
}

#[test]
fn a_reinvite_moving_the_media_moves_it_and_a_refresh_or_an_old_hold_does_not() {
    let mut sim = Sim::new();
    let tag = answered_call(&mut sim, "mover");
    let call = CallId(1);
    let reinvite = |branch: &str, cseq: u32, sdp: &str| {
        in_dialog("INVITE", "mover", branch, cseq, &tag).replace(
            "Content-Length: 0\r\n\r\n",
            &format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
                sdp.len()
            ),
        )
    };
    let moved = |sim: &Sim| -> Vec<std::net::SocketAddr> {
        sim.media
            .iter()
            .filter_map(|m| match m {
                MediaCommand::Remote { call: c, remote } if *c == call => Some(*remote),
                _ => None,
            })
            .collect()
    };
    // The phone changed networks: its media is elsewhere now.
    let elsewhere = SDP
        .replace("c=IN IP4 127.0.0.1", "c=IN IP4 127.0.0.5")
        .replace("m=audio 16000", "m=audio 17000");
    sim.recv(&reinvite("z9hG4bK-m1", 2, &elsewhere));
    assert!(sim.take_sent()[0].starts_with("SIP/2.0 200"));
    assert_eq!(moved(&sim), ["127.0.0.5:17000".parse().unwrap()]);
    // A refresh from there changes nothing.
    sim.media.clear();
    sim.recv(&reinvite("z9hG4bK-m3", 3, &elsewhere));
    assert!(moved(&sim).is_empty(), "{:?}", sim.media);
    // An old-style hold (c=0.0.0.0) says nothing of where the media is.
    sim.media.clear();
    let old_hold = SDP.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0");
    sim.recv(&reinvite("z9hG4bK-m2", 4, &old_hold));
    assert!(moved(&sim).is_empty(), "{:?}", sim.media);
}

#[test]
fn no_call_outlives_its_longest_time() {
    let mut sim = Sim::new();
    sim.sw = Switch::new(SwitchConfig {
        max_call: Duration::from_secs(40),
        ..config()
    });
    answered_call(&mut sim, "long");
    sim.media_event(CallId(1), MediaEvent::PromptFinished);
    // Keys keep the line test going well past the limit...
    for _ in 0..9 {
        sim.advance(Duration::from_secs(4));
        sim.media_event(CallId(1), MediaEvent::Digit('1'));
        sim.take_sent();
    }
    sim.advance(Duration::from_secs(4));
    sim.media_event(CallId(1), MediaEvent::Digit('1'));
    // ...but at 40 s (checked every 10 s) it is hung up.
    sim.advance(Duration::from_secs(11));
    assert_eq!(sim.ended.len(), 1, "{:?}", sim.take_sent());
    assert_eq!(sim.ended[0].reason, EndReason::MaxDuration);
}

#[test]
fn a_banned_source_is_not_heard() {
    let mut sim = agent_sim();
    let guesser = "127.0.0.9:5062";
    for i in 0..10u32 {
        sim.recv_from(guesser, &register(2 * i + 1, None, 600));
        let challenge = sim.take_sent().pop().unwrap();
        let auth = answer_challenge(&challenge, "SHA-256", &format!("guess{i}"));
        sim.recv_from(guesser, &register(2 * i + 2, Some(&auth), 600));
        assert!(sim.take_sent().pop().unwrap().starts_with("SIP/2.0 403"));
    }
    assert!(
        sim.menu
            .iter()
            .any(|o| matches!(o, Output::Banned { ip } if ip.to_string() == "127.0.0.9"))
    );
    sim.recv_from(guesser, &register(100, None, 600));
    sim.recv_from(guesser, &invite("after-ban", "z9hG4bK-ab", SDP));
    assert!(sim.take_sent().is_empty(), "a banned source gets no answer");
    // Everyone else is answered as before.
    sim.recv(&register(101, None, 600));
    assert!(sim.take_sent().pop().unwrap().starts_with("SIP/2.0 401"));
    assert_eq!(sim.sw.bans(sim.now).len(), 1);
}

#[test]
fn server_transactions_are_capped() {
    let mut sim = Sim::new();
    sim.sw = Switch::new(SwitchConfig {
        edge: crate::edge::EdgeConfig {
            admission: crate::edge::Admission {
                max_transactions: 3,
                ..Default::default()
            },
            ..config().edge
        },
        ..config()
    });
    // Each OPTIONS transaction lingers (Timer J) after its 200.
    for i in 0..4 {
        let options = in_dialog(
            "OPTIONS",
            &format!("opt-{i}"),
            &format!("z9hG4bK-o{i}"),
            1,
            "x",
        )
        .replace(";tag=x", "");
        sim.recv(&options);
    }
    assert_eq!(
        sim.status_lines(),
        [
            "SIP/2.0 200 OK",
            "SIP/2.0 200 OK",
            "SIP/2.0 200 OK",
            "SIP/2.0 503 Service Unavailable"
        ]
    );
    // Once they are gone, requests are served again.
    sim.advance(Duration::from_secs(40));
    sim.recv(&in_dialog("OPTIONS", "opt-9", "z9hG4bK-o9", 1, "x").replace(";tag=x", ""));
    assert_eq!(sim.status_lines(), ["SIP/2.0 200 OK"]);
}

#[test]
fn an_unregister_without_a_binding_here_still_takes_the_agent_out() {
    // The phone registered with the hotline before it restarted: no binding
    // now, but the agent's state came back from the log.
    let mut sim = agent_sim();
    sim.recv(&register(1, None, 0));
    let challenge = sim.take_sent().pop().unwrap();
    let auth = answer_challenge(&challenge, "SHA-256", "agent2001");
    sim.recv(&register(2, Some(&auth), 0));
    assert!(sim.take_sent().pop().unwrap().starts_with("SIP/2.0 200"));
    assert_eq!(registrations(&sim), ["2001 - expired=false"]);
}

#[test]
fn stray_responses_count_against_the_sources_rate_too() {
    let mut sim = Sim::new();
    let stray = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-nothing\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: stray\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    for _ in 0..300 {
        sim.recv_from("127.0.0.9:5062", stray);
    }
    // 200 (the burst) read, one refused (responses are never answered),
    // the rest dropped unparsed.
    let other = crate::edge::Class::Other as usize;
    assert_eq!(sim.sw.edge_stats().refused[other], 1);
    assert_eq!(sim.sw.edge_stats().dropped[other], 99);
    assert!(sim.take_sent().is_empty());
}

/// Caller bridged with agent 2001, agent 2002 registered too: the caller,
/// 2001's leg and the INVITE that rang 2001.
fn caller_talking_with_2001(sim: &mut Sim) -> (CallId, CallId, String) {
    let (caller, _) = caller_and_registered_agent(sim);
    sim.recv(&register_as("2002", 1, None, 600));
    let challenge = sim.take_sent().pop().unwrap();
    let auth = answer_challenge(&challenge, "SHA-256", "agent2002");
    sim.recv(&register_as("2002", 2, Some(&auth), 600));
    sim.take_sent();
    sim.sw.offer_to_agent(sim.now, caller, AgentId(2001));
    sim.drain();
    let invite = agent_leg_invite(sim);
    let agent_sdp = OWNER_SDP.replace("RTP/AVP 8 101", "RTP/AVP 0 101");
    sim.recv(&reply_to(&invite, 200, "OK", &agent_sdp));
    sim.take_sent();
    let leg = sim.sw.calls[&caller].bridge.unwrap();
    sim.media.clear();
    sim.events.clear();
    (caller, leg, invite)
}

fn refer(invite: &str, cseq: u32, to: &str) -> String {
    let headers =
        format!("Refer-To: <sip:{to}@127.0.0.1:5060>\r\nContact: <sip:2001@{CALLER}>\r\n");
    from_callee(invite, CALLER, "2001", "REFER", cseq, &headers, "")
}

/// The NOTIFYs sent: (Event, Subscription-State, sipfrag status line).
fn notifies(sent: &[String]) -> Vec<(String, String, String)> {
    let header = |m: &str, name: &str| {
        m.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_default()
            .to_string()
    };
    sent.iter()
        .filter(|m| m.starts_with("NOTIFY "))
        .map(|m| {
            assert!(m.contains("Content-Type: message/sipfrag"), "{m}");
            let frag = m.split("\r\n\r\n").nth(1).unwrap().trim_end().to_string();
            (
                header(m, "Event: "),
                header(m, "Subscription-State: "),
                frag,
            )
        })
        .collect()
}

#[test]
fn an_agent_transfers_the_caller_by_refer_and_the_target_answers() {
    let mut sim = agent_sim();
    let (caller, leg, invite) = caller_talking_with_2001(&mut sim);
    sim.recv(&refer(&invite, 5, "2002"));
    let sent = sim.take_sent();
    assert!(
        sent.iter().any(|m| m.starts_with("SIP/2.0 202 Accepted")),
        "{sent:?}"
    );
    assert_eq!(
        notifies(&sent),
        [(
            "refer;id=5".into(),
            "active;expires=60".into(),
            "SIP/2.0 100 Trying".into()
        )]
    );
    // Apart, and the caller on hold music while the ACD rings the target.
    for from in [caller, leg] {
        assert!(sim.media.contains(&MediaCommand::Relay { from, on: false }));
    }
    assert_eq!(sim.played(), ["hold_en"]);
    assert!(sim.kinds().any(|k| matches!(k,
        CallEventKind::TransferRequested { from, to: TransferTarget::Agent(to) }
            if *from == AgentId(2001) && *to == AgentId(2002))));
    // A second REFER while this one runs is refused.
    sim.recv(&refer(&invite, 6, "2003"));
    assert_eq!(sim.status_lines(), ["SIP/2.0 491 Request Pending"]);

    sim.sw.offer_to_agent(sim.now, caller, AgentId(2002));
    sim.drain();
    let invite2 = sim
        .take_sent()
        .into_iter()
        .find(|m| m.starts_with("INVITE sip:2002@"))
        .expect("the target's phone rings");
    let agent_sdp = OWNER_SDP.replace("RTP/AVP 8 101", "RTP/AVP 0 101");
    sim.recv(&reply_to(&invite2, 200, "OK", &agent_sdp));
    let leg2 = sim.sw.calls[&caller].bridge.unwrap();
    assert_ne!(leg2, leg);
    assert!(
        sim.media
            .contains(&MediaCommand::Bridge { a: caller, b: leg2 })
    );
    // The first agent hears it went through, and is hung up.
    let sent = sim.take_sent();
    assert_eq!(
        notifies(&sent),
        [(
            "refer;id=5".into(),
            "terminated;reason=noresource".into(),
            "SIP/2.0 200 OK".into()
        )]
    );
    let bye = sent
        .iter()
        .find(|m| m.starts_with("BYE "))
        .expect("BYE to 2001");
    assert!(bye.contains("sip:2001@"), "{bye}");
    let told: Vec<_> = sim
        .kinds()
        .filter(|k| !matches!(k, CallEventKind::Offered { .. }))
        .cloned()
        .collect();
    assert!(
        matches!(&told[..], [
        CallEventKind::TransferRequested { .. },
        CallEventKind::ConversationEnded { agent: a, by_agent: true, .. },
        CallEventKind::Transferred { from, to: TransferTarget::Agent(to) },
        CallEventKind::Answered { agent: b, .. },
    ] if *a == AgentId(2001) && *from == AgentId(2001) && *to == AgentId(2002) && *b == AgentId(2002)),
        "{told:?}"
    );
    // The first leg's BYE done, the caller talks on with 2002.
    sim.recv(&reply_to(bye, 200, "OK", ""));
    assert!(!sim.sw.calls.contains_key(&leg));
    assert_eq!(sim.sw.calls[&caller].phase, Phase::Bridged);
    assert_eq!(sim.sw.agent_on(caller), Some(AgentId(2002)));
}

#[test]
fn a_target_who_refuses_brings_the_caller_back_to_the_first_agent() {
    let mut sim = agent_sim();
    let (caller, leg, invite) = caller_talking_with_2001(&mut sim);
    sim.recv(&refer(&invite, 5, "2002"));
    sim.take_sent();
    sim.sw.offer_to_agent(sim.now, caller, AgentId(2002));
    sim.drain();
    let invite2 = sim
        .take_sent()
        .into_iter()
        .find(|m| m.starts_with("INVITE sip:2002@"))
        .unwrap();
    sim.media.clear();
    sim.recv(&reply_to(&invite2, 486, "Busy Here", ""));
    let sent = sim.take_sent();
    assert_eq!(
        notifies(&sent),
        [(
            "refer;id=5".into(),
            "terminated;reason=noresource".into(),
            "SIP/2.0 486 Busy Here".into()
        )]
    );
    assert!(!sent.iter().any(|m| m.starts_with("BYE ")), "{sent:?}");
    // Talking again: the hold music stops, both relays on.
    assert!(sim.media.contains(&MediaCommand::Stop { call: caller }));
    for from in [caller, leg] {
        assert!(sim.media.contains(&MediaCommand::Relay { from, on: true }));
    }
    assert!(sim.kinds().any(|k| matches!(
        k,
        CallEventKind::TransferFailed {
            why: Missed::Refused(486),
            ..
        }
    )));
    assert_eq!(sim.sw.agent_on(caller), Some(AgentId(2001)));
    // The ACD's word that the target is busy changes nothing more.
    sim.sw.transfer_refused(sim.now, caller, AgentId(2002));
    assert_eq!(sim.sw.agent_on(caller), Some(AgentId(2001)));
}

#[test]
fn a_busy_target_the_acd_refuses_is_told_to_the_phone() {
    let mut sim = agent_sim();
    let (caller, _, invite) = caller_talking_with_2001(&mut sim);
    sim.recv(&refer(&invite, 5, "2002"));
    sim.take_sent();
    sim.sw.transfer_refused(sim.now, caller, AgentId(2002));
    sim.drain();
    let sent = sim.take_sent();
    assert_eq!(notifies(&sent)[0].2, "SIP/2.0 486 Busy Here");
    assert_eq!(sim.sw.agent_on(caller), Some(AgentId(2001)));
}

#[test]
fn refer_is_refused_from_a_caller_to_an_unknown_target_and_replacing_an_unknown_call() {
    let mut sim = agent_sim();
    let (caller, _, invite) = caller_talking_with_2001(&mut sim);
    // No queue or extension by that name; a number no rule allows; the
    // agent themselves; a consult that is not theirs.
    sim.recv(&refer(&invite, 4, "q-nowhere"));
    assert_eq!(sim.status_lines(), ["SIP/2.0 404 Not Found"]);
    sim.recv(&refer(&invite, 5, "2999"));
    assert_eq!(sim.status_lines(), ["SIP/2.0 404 Not Found"]);
    sim.recv(&refer(&invite, 9, "13800138000"));
    assert_eq!(sim.status_lines(), ["SIP/2.0 403 Forbidden"]);
    sim.recv(&refer(&invite, 6, "2001"));
    assert_eq!(sim.status_lines(), ["SIP/2.0 482 Loop Detected"]);
    let replaces = "Refer-To: <sip:2002@127.0.0.1?Replaces=abc%3Bto-tag%3Dx%3Bfrom-tag%3Dy>\r\n";
    sim.recv(&from_callee(
        &invite, CALLER, "2001", "REFER", 7, replaces, "",
    ));
    assert_eq!(sim.status_lines(), ["SIP/2.0 404 Not Found"]);
    // The caller's own REFER: never (no toll fraud through a transfer).
    let tag = sim.sw.calls[&caller].local_tag.clone();
    let caller_refer = in_dialog("REFER", "cust-1", "z9hG4bK-r", 3, &tag).replace(
        "Content-Length: 0",
        "Refer-To: <sip:2002@127.0.0.1>\r\nContent-Length: 0",
    );
    sim.recv(&caller_refer);
    assert_eq!(sim.status_lines(), ["SIP/2.0 403 Forbidden"]);
    assert!(
        !sim.kinds()
            .any(|k| matches!(k, CallEventKind::TransferRequested { .. }))
    );
}

#[test]
fn a_transfer_to_a_queue_code_releases_the_agent_at_once() {
    let mut sim = agent_sim();
    let (caller, leg, invite) = caller_talking_with_2001(&mut sim);
    sim.recv(&refer(&invite, 5, "q-repair"));
    let sent = sim.take_sent();
    let told = notifies(&sent);
    assert_eq!(told.len(), 2, "{told:?}");
    assert_eq!(told[1].2, "SIP/2.0 200 OK");
    assert!(
        sent.iter()
            .any(|m| m.starts_with("BYE ") && m.contains("sip:2001@"))
    );
    assert!(sim.kinds().any(|k| matches!(k,
        CallEventKind::Transferred { to: TransferTarget::Queue(q), .. } if q == "repair")));
    // Without a menu there is no queue to wait in: the caller is let go.
    let _ = (caller, leg);
    assert!(
        sent.iter()
            .any(|m| m.starts_with("BYE ") && m.contains("Call-ID: cust-1"))
    );
}

#[test]
fn the_desk_transfers_the_call_of_the_agent_on_it() {
    let mut sim = agent_sim();
    let (caller, _, _) = caller_talking_with_2001(&mut sim);
    assert_eq!(
        sim.sw.transfer(sim.now, CallId(999), "2002", None),
        Err(TransferError::NoSuchCall)
    );
    assert_eq!(
        sim.sw.transfer(sim.now, caller, "nobody", None),
        Err(TransferError::UnknownTarget)
    );
    assert_eq!(
        sim.sw
            .transfer(sim.now, caller, "2002", Some(AgentId(2003))),
        Err(TransferError::NotOnCall),
        "an agent hands on only the call they are on"
    );
    assert_eq!(
        sim.sw
            .transfer(sim.now, caller, "2002", Some(AgentId(2001))),
        Ok(())
    );
    sim.drain();
    // No REFER, so no NOTIFY.
    assert!(notifies(&sim.take_sent()).is_empty());
    assert_eq!(
        sim.sw.transfer(sim.now, caller, "2003", None),
        Err(TransferError::InProgress)
    );
}

/// Who was mixed into `room`, as what (in the order told).
fn mixed_into(sim: &Sim, room: CallId) -> Vec<(CallId, crate::media::mixer::Role)> {
    sim.media
        .iter()
        .filter_map(|m| match m {
            MediaCommand::Mix {
                room: r,
                call,
                role,
                ..
            } if *r == room => Some((*call, *role)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_supervisor_whispers_then_barges_and_the_two_are_relayed_again_after() {
    use crate::media::mixer::{Audience, Role};
    let mut sim = agent_sim();
    let (caller, leg, _) = caller_talking_with_2001(&mut sim);
    let whisper = super::event::MonitorMode::Whisper;
    assert_eq!(
        sim.sw
            .monitor(sim.now, caller, AgentId(2009), whisper, "supervisor"),
        Err(MonitorError::NoPhone)
    );
    sim.recv(&register_as("2009", 1, None, 600));
    let challenge = sim.take_sent().pop().unwrap();
    let auth = answer_challenge(&challenge, "SHA-256", "agent2009");
    sim.recv(&register_as("2009", 2, Some(&auth), 600));
    sim.take_sent();
    assert_eq!(
        sim.sw
            .monitor(sim.now, caller, AgentId(2009), whisper, "supervisor"),
        Ok(())
    );
    sim.drain();
    let invite = sim
        .take_sent()
        .into_iter()
        .find(|m| m.starts_with("INVITE sip:2009@"))
        .expect("the supervisor's phone rings");
    sim.media.clear();
    let sdp = OWNER_SDP.replace("RTP/AVP 8 101", "RTP/AVP 0 101");
    sim.recv(&reply_to(&invite, 200, "OK", &sdp));
    let sv = sim.sw.calls[&caller].side().monitor.unwrap();
    let mixed: Vec<_> = sim
        .media
        .iter()
        .filter_map(|m| match m {
            MediaCommand::Mix {
                room,
                call,
                role,
                audience,
            } => Some((*room, *call, *role, *audience)),
            _ => None,
        })
        .collect();
    assert_eq!(
        mixed,
        [
            (caller, caller, Role::Caller, Audience::All),
            (caller, leg, Role::Agent, Audience::All),
            (caller, sv, Role::Supervisor, Audience::Agents),
        ]
    );
    assert!(sim.kinds().any(|k| matches!(k,
        CallEventKind::MonitorStarted { supervisor, mode } if supervisor == "supervisor" && *mode == whisper)));
    // Barge: the supervisor is heard by both now.
    sim.media.clear();
    let barge = super::event::MonitorMode::Barge;
    assert_eq!(
        sim.sw
            .monitor(sim.now, caller, AgentId(2009), barge, "supervisor"),
        Ok(())
    );
    sim.drain();
    assert_eq!(
        sim.media,
        [MediaCommand::Mix {
            room: caller,
            call: sv,
            role: Role::Supervisor,
            audience: Audience::All
        }]
    );
    // Another supervisor's phone cannot join the same call.
    assert_eq!(
        sim.sw
            .monitor(sim.now, caller, AgentId(2004), barge, "someone"),
        Err(MonitorError::Taken)
    );
    // The supervisor hangs up: the caller and the agent are relayed again.
    sim.media.clear();
    sim.recv(&from_callee(&invite, CALLER, "2009", "BYE", 2, "", ""));
    assert!(sim.media.contains(&MediaCommand::Unmix { call: sv }));
    assert!(sim.media.contains(&MediaCommand::Unmix { call: caller }));
    assert!(
        sim.media
            .contains(&MediaCommand::Bridge { a: caller, b: leg })
    );
    assert!(
        sim.kinds()
            .any(|k| matches!(k, CallEventKind::MonitorEnded { .. }))
    );
    assert_eq!(sim.sw.calls[&caller].side().monitor, None);
    assert_eq!(sim.sw.agent_on(caller), Some(AgentId(2001)));
}

#[test]
fn a_three_way_call_mixes_all_and_the_two_left_talk_on() {
    let mut sim = agent_sim();
    let (caller, leg, invite) = caller_talking_with_2001(&mut sim);
    assert_eq!(
        sim.sw.conference(sim.now, caller, "q-repair", None),
        Err(TransferError::UnknownTarget),
        "a queue cannot join a call"
    );
    assert_eq!(sim.sw.conference(sim.now, caller, "2002", None), Ok(()));
    sim.drain();
    assert!(sim.kinds().any(|k| matches!(k,
        CallEventKind::ConferenceRequested { from, to } if *from == AgentId(2001) && *to == AgentId(2002))));
    // The two talk on while 2002 rings: nothing changes in the media.
    assert!(sim.media.is_empty(), "{:?}", sim.media);
    sim.sw.offer_to_agent(sim.now, caller, AgentId(2002));
    sim.drain();
    let invite2 = sim
        .take_sent()
        .into_iter()
        .find(|m| m.starts_with("INVITE sip:2002@"))
        .expect("2002 rings");
    let sdp = OWNER_SDP.replace("RTP/AVP 8 101", "RTP/AVP 0 101");
    sim.recv(&reply_to(&invite2, 200, "OK", &sdp));
    let leg2 = sim.sw.calls[&caller].side().party.expect("2002 is in");
    let mixed: Vec<CallId> = sim
        .media
        .iter()
        .filter_map(|m| match m {
            MediaCommand::Mix { room, call, .. } if *room == caller => Some(*call),
            _ => None,
        })
        .collect();
    assert_eq!(mixed, [caller, leg, leg2]);
    assert!(sim.kinds().any(
        |k| matches!(k, CallEventKind::ConferenceJoined { agent } if *agent == AgentId(2002))
    ));
    assert_eq!(
        sim.sw.transfer(sim.now, caller, "2003", None),
        Err(TransferError::InProgress)
    );
    // 2001 leaves: the caller and 2002 talk on, relayed.
    sim.media.clear();
    sim.recv(&from_callee(&invite, CALLER, "2001", "BYE", 9, "", ""));
    assert!(
        sim.media
            .contains(&MediaCommand::Bridge { a: caller, b: leg2 }),
        "{:?}",
        sim.media
    );
    assert!(
        sim.kinds().any(|k| matches!(k,
        CallEventKind::ConversationEnded { agent, by_agent: true, .. } if *agent == AgentId(2001)))
    );
    assert_eq!(sim.sw.agent_on(caller), Some(AgentId(2002)));
    assert_eq!(sim.sw.calls[&caller].side().party, None);
    // The caller hangs up: 2002's leg goes too.
    let tag = sim.sw.calls[&caller].local_tag.clone();
    sim.recv(&in_dialog("BYE", "cust-1", "z9hG4bK-b", 3, &tag));
    let sent = sim.take_sent();
    let call_id = invite2.lines().find(|l| l.starts_with("Call-ID:")).unwrap();
    assert!(
        sent.iter()
            .any(|m| m.starts_with("BYE ") && m.contains(call_id)),
        "{sent:?}"
    );
}

#[test]
fn the_caller_leaving_a_three_way_call_leaves_the_two_agents_talking() {
    let mut sim = agent_sim();
    let (caller, leg, invite) = caller_talking_with_2001(&mut sim);
    assert_eq!(sim.sw.conference(sim.now, caller, "2002", None), Ok(()));
    sim.drain();
    sim.sw.offer_to_agent(sim.now, caller, AgentId(2002));
    sim.drain();
    let invite2 = sim
        .take_sent()
        .into_iter()
        .find(|m| m.starts_with("INVITE sip:2002@"))
        .expect("2002 rings");
    let sdp = OWNER_SDP.replace("RTP/AVP 8 101", "RTP/AVP 0 101");
    sim.recv(&reply_to(&invite2, 200, "OK", &sdp));
    let leg2 = sim.sw.calls[&caller].side().party.unwrap();
    sim.take_sent();
    sim.events.clear();
    sim.media.clear();
    // The owner hangs up: 2001 and 2002 talk on, relayed to each other.
    let tag = sim.sw.calls[&caller].local_tag.clone();
    sim.recv(&in_dialog("BYE", "cust-1", "z9hG4bK-b", 3, &tag));
    assert!(!sim.take_sent().iter().any(|m| m.starts_with("BYE ")));
    assert!(
        sim.media
            .contains(&MediaCommand::Bridge { a: leg, b: leg2 })
    );
    let conversations_ended = |sim: &Sim| {
        sim.kinds()
            .filter_map(|k| match k {
                CallEventKind::ConversationEnded { agent, .. } => Some(*agent),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert!(conversations_ended(&sim).is_empty(), "both still talk");
    assert!(
        sim.kinds()
            .any(|k| matches!(k, CallEventKind::Ended { .. }))
    );
    // 2001 hangs up: 2002 is hung up too; each one's conversation ends.
    sim.recv(&from_callee(&invite, CALLER, "2001", "BYE", 9, "", ""));
    let sent = sim.take_sent();
    let call_id = invite2.lines().find(|l| l.starts_with("Call-ID:")).unwrap();
    let bye = sent
        .iter()
        .find(|m| m.starts_with("BYE ") && m.contains(call_id))
        .unwrap_or_else(|| panic!("BYE to 2002: {sent:?}"));
    sim.recv(&reply_to(bye, 200, "OK", ""));
    assert_eq!(conversations_ended(&sim), [AgentId(2001), AgentId(2002)]);
    assert!(
        sim.events
            .iter()
            .filter(|e| matches!(e.kind, CallEventKind::ConversationEnded { .. }))
            .all(|e| e.call == caller),
        "told on the owner's call"
    );
    assert_eq!(sim.sw.active_calls(), 0);
}

/// The consulting phone ACKs our answer to its consult (`feat-12`);
/// returns our tag.
fn ack_consult(sim: &mut Sim) -> String {
    let ok = sim
        .take_sent()
        .into_iter()
        .find(|m| m.starts_with("SIP/2.0 200") && m.contains("Call-ID: feat-12"))
        .expect("the consult answered");
    let tag = to_tag(&ok);
    sim.recv(&in_dialog("ACK", "feat-12", "z9hG4bKfa", 12, &tag).replace("tag=caller", "tag=ag"));
    tag
}

/// Caller and 2001 talking; 2001's phone has dialled 2002 (an internal
/// consult, Call-ID `feat-12`), who answered: the caller, 2001's leg, the
/// INVITE that rang 2001, the consult, 2002's leg and the consult's tag.
fn consulting_2002(sim: &mut Sim) -> (CallId, CallId, String, CallId, CallId, String) {
    let (caller, leg, invite) = caller_talking_with_2001(sim);
    // 2001's phone dials 2002: challenged, then an internal call (no menu).
    sim.recv(&feature_invite("2002", 11, None));
    let challenge = sim.take_sent().pop().unwrap();
    assert!(challenge.starts_with("SIP/2.0 401"), "{challenge}");
    let auth = answer_invite_challenge(&challenge, "2002", "agent2001");
    sim.recv(&feature_invite("2002", 12, Some(&auth)));
    let consult = sim.sw.by_sip["feat-12"];
    assert!(sim.kinds().any(|k| matches!(k,
        CallEventKind::ConsultStarted { from, to: TransferTarget::Agent(to) } if *from == AgentId(2001) && *to == AgentId(2002))));
    // Not looked up as an owner: no menu for it.
    assert!(
        !sim.menu
            .iter()
            .any(|o| matches!(o, Output::IdentifyCaller { call, .. } if *call == consult))
    );
    // Not answered before 2002 answers.
    sim.advance(Duration::from_millis(600));
    assert!(!sim.take_sent().iter().any(|m| m.starts_with("SIP/2.0 200")));
    // The ACD rings 2002, who answers: then the consult is answered.
    sim.sw.offer_to_agent(sim.now, consult, AgentId(2002));
    sim.drain();
    let invite2 = sim
        .take_sent()
        .into_iter()
        .find(|m| m.starts_with("INVITE sip:2002@"))
        .expect("2002 rings");
    let sdp = OWNER_SDP.replace("RTP/AVP 8 101", "RTP/AVP 0 101");
    sim.recv(&reply_to(&invite2, 200, "OK", &sdp));
    let tag = ack_consult(sim);
    let leg2 = sim.sw.calls[&consult].bridge.unwrap();
    assert!(sim.media.contains(&MediaCommand::Bridge {
        a: consult,
        b: leg2
    }));
    assert_eq!(sim.sw.calls[&consult].phase, Phase::Bridged);
    (caller, leg, invite, consult, leg2, tag)
}

#[test]
fn an_agent_consults_another_and_completes_an_attended_transfer() {
    let mut sim = agent_sim();
    let (caller, leg, invite, consult, leg2, tag) = consulting_2002(&mut sim);
    // A Replaces naming no consult of this agent is refused.
    let bad =
        "Refer-To: <sip:2002@127.0.0.1:5060?Replaces=nothing%3Bto-tag%3Dx%3Bfrom-tag%3Dy>\r\n";
    sim.recv(&from_callee(&invite, CALLER, "2001", "REFER", 19, bad, ""));
    assert_eq!(sim.status_lines(), ["SIP/2.0 404 Not Found"]);
    // Attended: REFER in the caller's leg, Replaces the consult.
    let refer_to = format!(
        "Refer-To: <sip:2002@127.0.0.1:5060?Replaces=feat-12%3Bto-tag%3D{tag}%3Bfrom-tag%3Dag>\r\nContact: <sip:2001@{CALLER}>\r\n"
    );
    sim.media.clear();
    sim.recv(&from_callee(
        &invite, CALLER, "2001", "REFER", 20, &refer_to, "",
    ));
    let sent = sim.take_sent();
    assert!(
        sent.iter().any(|m| m.starts_with("SIP/2.0 202")),
        "{sent:?}"
    );
    let told: Vec<String> = notifies(&sent).into_iter().map(|n| n.2).collect();
    assert_eq!(told, ["SIP/2.0 100 Trying", "SIP/2.0 200 OK"]);
    let byes: Vec<&String> = sent.iter().filter(|m| m.starts_with("BYE ")).collect();
    assert_eq!(byes.len(), 2, "both of 2001's calls end: {byes:?}");
    assert!(byes.iter().any(|m| m.contains("Call-ID: feat-12")));
    assert!(
        sim.media
            .contains(&MediaCommand::Bridge { a: caller, b: leg2 })
    );
    assert_eq!(sim.sw.agent_on(caller), Some(AgentId(2002)));
    assert!(sim.kinds().any(|k| matches!(k,
        CallEventKind::Transferred { from, to: TransferTarget::Agent(to) } if *from == AgentId(2001) && *to == AgentId(2002))));
    // 2001's legs go; the caller and 2002 talk on.
    for bye in byes {
        sim.recv(&reply_to(bye, 200, "OK", ""));
    }
    assert!(!sim.sw.calls.contains_key(&leg) && !sim.sw.calls.contains_key(&consult));
    assert_eq!(sim.sw.agent_on(caller), Some(AgentId(2002)));
}

#[test]
fn a_consult_the_agent_does_not_answer_is_not_answered_either() {
    let mut sim = agent_sim();
    let (_caller, _, _) = caller_talking_with_2001(&mut sim);
    sim.recv(&feature_invite("2002", 11, None));
    let challenge = sim.take_sent().pop().unwrap();
    let auth = answer_invite_challenge(&challenge, "2002", "agent2001");
    sim.recv(&feature_invite("2002", 12, Some(&auth)));
    let consult = sim.sw.by_sip["feat-12"];
    // Busy, says the ACD: 486 to the consulting phone.
    sim.sw.transfer_refused(sim.now, consult, AgentId(2002));
    sim.drain();
    assert!(
        sim.status_lines()
            .contains(&"SIP/2.0 486 Busy Here".to_string())
    );
    assert!(!sim.sw.calls.contains_key(&consult));
}

#[test]
fn an_agent_transfers_to_an_allowed_outside_number_and_no_other() {
    let mut sim = agent_sim();
    let mut cfg = config();
    cfg.agents = sim.sw.cfg.agents.clone();
    cfg.transfer_out = Some(TransferOut {
        gateway: "127.0.0.1:5080".parse().unwrap(),
        allowed: vec![crate::owners::phone::DialPattern::parse("+86138XXXXXXXX").unwrap()],
        plan: crate::owners::phone::NumberPlan::default(),
    });
    sim.sw = Switch::new(cfg);
    let (caller, leg, invite) = caller_talking_with_2001(&mut sim);
    // Abroad, or a premium number: never through a transfer.
    sim.recv(&refer(&invite, 5, "+12125551234"));
    assert_eq!(sim.status_lines(), ["SIP/2.0 403 Forbidden"]);
    sim.recv(&refer(&invite, 6, "16800000000"));
    assert_eq!(sim.status_lines(), ["SIP/2.0 403 Forbidden"]);
    // The duty engineer's mobile, dialled as a national number.
    sim.recv(&refer(&invite, 7, "13800138000"));
    let sent = sim.take_sent();
    assert!(
        sent.iter().any(|m| m.starts_with("SIP/2.0 202")),
        "{sent:?}"
    );
    let out = sent
        .iter()
        .find(|m| m.starts_with("INVITE sip:+8613800138000@127.0.0.1:5080 "))
        .unwrap_or_else(|| panic!("through the gateway: {sent:?}"))
        .clone();
    let sdp = OWNER_SDP.replace("RTP/AVP 8 101", "RTP/AVP 0 101");
    sim.recv(&reply_to(&out, 200, "OK", &sdp));
    let party = sim.sw.calls[&caller].bridge.unwrap();
    assert_ne!(party, leg);
    assert!(sim.media.contains(&MediaCommand::Bridge {
        a: caller,
        b: party
    }));
    let sent = sim.take_sent();
    assert_eq!(notifies(&sent).last().unwrap().2, "SIP/2.0 200 OK");
    assert!(
        sent.iter()
            .any(|m| m.starts_with("BYE ") && m.contains("sip:2001@"))
    );
    assert!(
        sim.kinds().any(|k| matches!(k,
        CallEventKind::Transferred { to: TransferTarget::Number(n), .. } if n == "+8613800138000"))
    );
    // The outside party hangs up: so does the hotline, to the caller.
    sim.recv(&from_callee(
        &out,
        "127.0.0.1:5080",
        "+8613800138000",
        "BYE",
        2,
        "",
        "",
    ));
    let sent = sim.take_sent();
    assert!(
        sent.iter()
            .any(|m| m.starts_with("BYE ") && m.contains("Call-ID: cust-1")),
        "{sent:?}"
    );
}

#[test]
fn the_recording_notice_is_heard_whole_even_when_an_agent_answers_at_once() {
    let mut sim = menu_sim();
    let mut agents = crate::acd::agents::AgentsFile::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/agents.toml"),
    )
    .unwrap();
    agents.digest = vec!["SHA-256".into()];
    sim.sw = Switch::new(SwitchConfig {
        agents: Some(std::sync::Arc::new(agents)),
        recording: RecordingPolicy {
            enabled: true,
            notice: Some("recording_notice".into()),
            ..RecordingPolicy::default()
        },
        ..sim.sw.cfg.clone()
    });
    sim.recv(&register(1, None, 600));
    let challenge = sim.take_sent().pop().unwrap();
    let auth = answer_challenge(&challenge, "SHA-256", "agent2001");
    sim.recv(&register(2, Some(&auth), 600));
    sim.recv(&invite("menu-7", "z9hG4bKm7", SDP));
    let caller = sim.sw.by_sip["menu-7"];
    sim.sw.handle_owner(sim.now, caller, None);
    sim.advance(Duration::from_millis(600));
    let ok = sim
        .take_sent()
        .into_iter()
        .find(|m| m.starts_with("SIP/2.0 200 OK") && m.contains("menu-7"))
        .unwrap();
    sim.recv(&in_dialog("ACK", "menu-7", "z9hG4bKm7a", 1, &to_tag(&ok)));
    sim.media.clear();
    sim.media_event(caller, MediaEvent::Digit('0'));
    // The notice alone.
    assert_eq!(sim.played(), ["recording_notice_zh"]);
    sim.media.clear();
    // An agent is rung and answers at once: neither the ringback nor the
    // bridge cut the notice short.
    sim.sw.offer_to_agent(sim.now, caller, AgentId(2001));
    sim.drain();
    let invite = agent_leg_invite(&mut sim);
    sim.recv(&reply_to(
        &invite,
        200,
        "OK",
        OWNER_SDP.replace("RTP/AVP 8 101", "RTP/AVP 0 101").as_str(),
    ));
    assert!(sim.played().is_empty(), "{:?}", sim.media);
    assert!(
        !sim.media
            .iter()
            .any(|m| matches!(m, MediaCommand::Bridge { .. } | MediaCommand::Stop { .. }))
    );
    // The notice over: the two are joined.
    sim.media_event(caller, MediaEvent::PromptFinished);
    let leg = sim.sw.calls[&caller].bridge.unwrap();
    assert!(
        sim.media
            .contains(&MediaCommand::Bridge { a: caller, b: leg })
    );
    assert!(
        sim.kinds()
            .any(|k| matches!(k, CallEventKind::Answered { .. }))
    );
}

#[test]
fn a_supervisor_dials_in_to_listen_and_only_a_supervisors_phone_may() {
    use crate::media::mixer::{Audience, Role};
    let mut sim = agent_sim();
    let (caller, leg, _) = caller_talking_with_2001(&mut sim);
    // An agent's phone may not listen in.
    sim.recv(&feature_invite("*52001", 21, None));
    let challenge = sim.take_sent().pop().unwrap();
    let auth = answer_invite_challenge(&challenge, "*52001", "agent2001");
    sim.recv(&feature_invite("*52001", 22, Some(&auth)));
    assert!(
        sim.status_lines()
            .contains(&"SIP/2.0 403 Forbidden".to_string())
    );
    // The supervisor's phone (2009) may: listen to the call 2001 is on.
    let supervisor = |code: &str, cseq: u32, auth: Option<&str>| {
        feature_invite(code, cseq, auth).replace("sip:2001@", "sip:2009@")
    };
    // Nobody on 2004: 404.
    sim.recv(&supervisor("*52004", 23, None));
    let challenge = sim.take_sent().pop().unwrap();
    let auth = answer_invite_challenge(&challenge, "*52004", "agent2009");
    sim.recv(&supervisor("*52004", 24, Some(&auth)));
    assert!(
        sim.status_lines()
            .contains(&"SIP/2.0 404 Not Found".to_string())
    );
    sim.recv(&supervisor("*52001", 26, None));
    let challenge = sim.take_sent().pop().unwrap();
    let auth = answer_invite_challenge(&challenge, "*52001", "agent2009");
    sim.recv(&supervisor("*52001", 25, Some(&auth)));
    let sv = sim.sw.by_sip["feat-25"];
    sim.advance(Duration::from_millis(600));
    let ok = sim
        .take_sent()
        .into_iter()
        .find(|m| m.starts_with("SIP/2.0 200") && m.contains("feat-25"))
        .expect("answered");
    sim.media.clear();
    sim.recv(
        &in_dialog("ACK", "feat-25", "z9hG4bKsa", 25, &to_tag(&ok)).replace("tag=caller", "tag=ag"),
    );
    let mixed: Vec<_> = sim
        .media
        .iter()
        .filter_map(|m| match m {
            MediaCommand::Mix {
                call,
                role,
                audience,
                ..
            } => Some((*call, *role, *audience)),
            _ => None,
        })
        .collect();
    assert_eq!(
        mixed,
        [
            (caller, Role::Caller, Audience::All),
            (leg, Role::Agent, Audience::All),
            (sv, Role::Supervisor, Audience::Nobody),
        ]
    );
    assert!(sim.kinds().any(|k| matches!(k,
        CallEventKind::MonitorStarted { supervisor, .. } if supervisor == "Chen Jing")));
}

#[test]
fn an_agent_brings_the_colleague_they_consult_into_the_call() {
    use crate::media::mixer::Role;
    let mut sim = agent_sim();
    let (caller, leg, _, consult, leg2, _) = consulting_2002(&mut sim);
    sim.media.clear();
    assert_eq!(sim.sw.conference(sim.now, caller, "2002", None), Ok(()));
    sim.drain();
    let mixed = mixed_into(&sim, caller);
    assert_eq!(
        mixed,
        [
            (caller, Role::Caller),
            (leg, Role::Agent),
            (leg2, Role::Agent)
        ]
    );
    assert!(
        sim.take_sent()
            .iter()
            .any(|m| m.starts_with("BYE ") && m.contains("Call-ID: feat-12"))
    );
    assert!(sim.kinds().any(
        |k| matches!(k, CallEventKind::ConferenceJoined { agent } if *agent == AgentId(2002))
    ));
    assert_eq!(sim.sw.calls[&caller].side().party, Some(leg2));
    // The consult call no longer holds 2002's leg.
    assert_eq!(sim.sw.calls[&consult].bridge, None);
}

#[test]
fn keys_during_a_consult_bring_the_colleague_in_or_hand_the_caller_over() {
    use crate::media::mixer::Role;
    // *3: three-way (any other keys first change nothing).
    let mut sim = agent_sim();
    let (caller, leg, _, consult, leg2, _) = consulting_2002(&mut sim);
    sim.media.clear();
    for key in ['1', '*', '9', '3'] {
        sim.media_event(consult, MediaEvent::Digit(key));
    }
    assert_eq!(
        sim.sw.calls[&caller].side().party,
        None,
        "*9 then 3 is no code"
    );
    for key in ['*', '3'] {
        sim.media_event(consult, MediaEvent::Digit(key));
    }
    let mixed = mixed_into(&sim, caller);
    assert_eq!(
        mixed,
        [
            (caller, Role::Caller),
            (leg, Role::Agent),
            (leg2, Role::Agent)
        ]
    );
    assert_eq!(sim.sw.calls[&caller].side().party, Some(leg2));

    // *4 (as SIP INFO from a phone that sends keys so): attended transfer.
    let mut sim = agent_sim();
    let (caller, _, _, consult, leg2, tag) = consulting_2002(&mut sim);
    for (cseq, key) in [(13, "*"), (14, "4")] {
        let info = in_dialog("INFO", "feat-12", &format!("z9hG4bKk{cseq}"), cseq, &tag)
            .replace("tag=caller", "tag=ag")
            .replace(
                "Content-Length: 0\r\n\r\n",
                &format!(
                    "Content-Type: application/dtmf-relay\r\nContent-Length: {}\r\n\r\nSignal={key}\r\nDuration=160\r\n",
                    format!("Signal={key}\r\nDuration=160\r\n").len()
                ),
            );
        sim.recv(&info);
    }
    assert_eq!(sim.sw.agent_on(caller), Some(AgentId(2002)));
    assert_eq!(sim.sw.calls[&caller].bridge, Some(leg2));
    assert!(sim.kinds().any(|k| matches!(k,
        CallEventKind::Transferred { from, to: TransferTarget::Agent(to) } if *from == AgentId(2001) && *to == AgentId(2002))));
    let sent = sim.take_sent();
    assert!(
        sent.iter()
            .any(|m| m.starts_with("BYE ") && m.contains("Call-ID: feat-12")),
        "the consult is hung up: {sent:?}"
    );
    assert!(sim.sw.calls[&consult].bridge.is_none());
}

/// The switch with agents and outside transfers to +86138... allowed.
fn outside_sim() -> Sim {
    let mut sim = agent_sim();
    let mut cfg = config();
    cfg.agents = sim.sw.cfg.agents.clone();
    cfg.transfer_out = Some(TransferOut {
        gateway: "127.0.0.1:5080".parse().unwrap(),
        allowed: vec![crate::owners::phone::DialPattern::parse("+86138XXXXXXXX").unwrap()],
        plan: crate::owners::phone::NumberPlan::default(),
    });
    sim.sw = Switch::new(cfg);
    sim
}

#[test]
fn an_agent_consults_an_allowed_outside_number_then_hands_the_caller_over() {
    let mut sim = outside_sim();
    // Not on an owner's call: 2001's phone is no free line out.
    sim.recv(&register(1, None, 600));
    let challenge = sim.take_sent().pop().unwrap();
    let auth = answer_challenge(&challenge, "SHA-256", "agent2001");
    sim.recv(&register(2, Some(&auth), 600));
    sim.take_sent();
    sim.recv(&feature_invite("13800138000", 11, None));
    let challenge = sim.take_sent().pop().unwrap();
    assert!(challenge.starts_with("SIP/2.0 401"), "{challenge}");
    let auth = answer_invite_challenge(&challenge, "13800138000", "agent2001");
    sim.recv(&feature_invite("13800138000", 12, Some(&auth)));
    assert!(
        sim.status_lines()
            .contains(&"SIP/2.0 403 Forbidden".to_string())
    );

    let mut sim = outside_sim();
    let (caller, leg, _) = caller_talking_with_2001(&mut sim);
    // A number no rule allows is no consult (an owner's call, the menu).
    sim.recv(&feature_invite("+12125551234", 9, None));
    assert!(!sim.take_sent().iter().any(|m| m.starts_with("SIP/2.0 401")));
    // The duty engineer's mobile: challenged, then called through the
    // gateway; the agent's phone is answered when the engineer answers.
    sim.recv(&feature_invite("13800138000", 11, None));
    let challenge = sim.take_sent().pop().unwrap();
    assert!(challenge.starts_with("SIP/2.0 401"), "{challenge}");
    let auth = answer_invite_challenge(&challenge, "13800138000", "agent2001");
    sim.recv(&feature_invite("13800138000", 12, Some(&auth)));
    let consult = sim.sw.by_sip["feat-12"];
    assert!(sim.kinds().any(|k| matches!(k,
        CallEventKind::ConsultStarted { from, to: TransferTarget::Number(n) } if *from == AgentId(2001) && n == "+8613800138000")));
    let sent = sim.take_sent();
    let out = sent
        .iter()
        .find(|m| m.starts_with("INVITE sip:+8613800138000@127.0.0.1:5080 "))
        .unwrap_or_else(|| panic!("through the gateway: {sent:?}"))
        .clone();
    assert!(!sent.iter().any(|m| m.starts_with("SIP/2.0 200")));
    let sdp = OWNER_SDP.replace("RTP/AVP 8 101", "RTP/AVP 0 101");
    sim.recv(&reply_to(&out, 200, "OK", &sdp));
    ack_consult(&mut sim);
    let party = sim.sw.calls[&consult].bridge.unwrap();
    assert!(sim.media.contains(&MediaCommand::Bridge {
        a: consult,
        b: party
    }));
    // *4: the caller is handed to the engineer; 2001's calls end.
    for key in ['*', '4'] {
        sim.media_event(consult, MediaEvent::Digit(key));
    }
    assert_eq!(sim.sw.calls[&caller].bridge, Some(party));
    assert!(sim.media.contains(&MediaCommand::Bridge {
        a: caller,
        b: party
    }));
    assert!(sim.kinds().any(|k| matches!(k,
        CallEventKind::Transferred { from, to: TransferTarget::Number(n) } if *from == AgentId(2001) && n == "+8613800138000")));
    let byes: Vec<String> = sim
        .take_sent()
        .into_iter()
        .filter(|m| m.starts_with("BYE "))
        .collect();
    assert_eq!(byes.len(), 2, "the consult and 2001's leg: {byes:?}");
    assert!(byes.iter().any(|m| m.contains("Call-ID: feat-12")));
    for bye in &byes {
        sim.recv(&reply_to(bye, 200, "OK", ""));
    }
    assert!(!sim.sw.calls.contains_key(&leg) && !sim.sw.calls.contains_key(&consult));
    // The engineer hangs up: so does the hotline, to the caller.
    sim.recv(&from_callee(
        &out,
        "127.0.0.1:5080",
        "+8613800138000",
        "BYE",
        2,
        "",
        "",
    ));
    assert!(
        sim.take_sent()
            .iter()
            .any(|m| m.starts_with("BYE ") && m.contains("Call-ID: cust-1"))
    );
}

#[test]
fn an_outside_number_that_does_not_answer_a_consult_is_told_to_the_agents_phone() {
    let mut sim = outside_sim();
    let (caller, leg, _) = caller_talking_with_2001(&mut sim);
    sim.recv(&feature_invite("13800138000", 11, None));
    let challenge = sim.take_sent().pop().unwrap();
    let auth = answer_invite_challenge(&challenge, "13800138000", "agent2001");
    sim.recv(&feature_invite("13800138000", 12, Some(&auth)));
    let consult = sim.sw.by_sip["feat-12"];
    let out = sim
        .take_sent()
        .into_iter()
        .find(|m| m.starts_with("INVITE sip:+8613800138000@"))
        .unwrap();
    sim.recv(&reply_to(&out, 486, "Busy Here", ""));
    assert!(
        sim.status_lines()
            .contains(&"SIP/2.0 486 Busy Here".to_string())
    );
    assert!(!sim.sw.calls.contains_key(&consult));
    // The owner's call goes on with 2001.
    assert_eq!(sim.sw.calls[&caller].bridge, Some(leg));
}

mod random;
