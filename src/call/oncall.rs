//! Calls the hotline places for the emergency on-call chain
//! (`tickets::oncall`): the ticket spoken in the person's language, then
//! "press 1 to accept, 2 to pass" (asked once more after silence), thanks
//! and BYE. Exactly one outcome per call goes out as a call event:
//! accepted, passed, no key, or not answered with the SIP status.

use std::time::Instant;

use tracing::info;

use super::event::CallEventKind;
use super::{CallId, EndReason, MediaCommand, Output, Phase, Purpose, Switch};
use crate::tickets::TicketId;

/// An on-call call to place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaceDutyCall {
    pub ticket: TicketId,
    pub round: u32,
    pub step: u32,
    /// The rota's id of the person called.
    pub person: String,
    /// As the gateway dials it.
    pub number: String,
    pub gateway: std::net::SocketAddr,
    /// "zh" or "en": the person's.
    pub language: String,
    /// Prompt names without the language: the ticket spoken, ending with
    /// the question.
    pub speech: Vec<String>,
}

/// A call telling the owner of an emergency that help is coming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaceNotice {
    pub ticket: TicketId,
    /// The ticket's callback number, as the gateway dials it.
    pub number: String,
    pub gateway: std::net::SocketAddr,
    pub language: String,
    /// Prompt names without the language, ending with goodbye.
    pub speech: Vec<String>,
}

/// What an on-call call learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DutyOutcome {
    /// Pressed 1: they go.
    Accepted,
    /// Pressed 2: the next on the chain.
    Passed,
    /// Answered, but no 1 or 2 (silence twice, or hung up first).
    NoKey,
    /// Not answered: the final status (487 rang out, 486 busy, 408 no
    /// response, 503 no port ...).
    Unanswered(u16),
}

impl DutyOutcome {
    /// How the log says it.
    pub fn reason(self) -> String {
        match self {
            DutyOutcome::Accepted => "accepted".into(),
            DutyOutcome::Passed => "passed (pressed 2)".into(),
            DutyOutcome::NoKey => "answered, no key pressed".into(),
            DutyOutcome::Unanswered(487) => "no answer (SIP 487)".into(),
            DutyOutcome::Unanswered(486) => "busy (SIP 486)".into(),
            DutyOutcome::Unanswered(code) => format!("not answered (SIP {code})"),
        }
    }

    fn from_end(reason: EndReason, phase: Phase) -> Self {
        match reason {
            EndReason::Declined(code) => DutyOutcome::Unanswered(code),
            EndReason::NoAnswer => DutyOutcome::Unanswered(487),
            EndReason::Unreachable => DutyOutcome::Unanswered(408),
            _ if matches!(phase, Phase::Dialing | Phase::Cancelling) => {
                DutyOutcome::Unanswered(503)
            }
            EndReason::MediaFailed => DutyOutcome::Unanswered(500),
            _ => DutyOutcome::NoKey,
        }
    }
}

/// The on-call part of a call's state.
#[derive(Debug, Clone)]
pub(super) struct Duty {
    ticket: TicketId,
    round: u32,
    step: u32,
    person: String,
    language: String,
    speech: Vec<String>,
    /// The outcome went out (exactly once per call).
    reported: bool,
    /// The question was asked again after silence.
    repeated: bool,
    /// Telling the owner help is coming: said, no question.
    notice: bool,
}

impl Switch {
    /// Places an on-call call. Its outcome comes out as a
    /// [`CallEventKind::OnCall`], also when it cannot even start.
    pub fn place_duty_call(&mut self, now: Instant, req: PlaceDutyCall) -> CallId {
        self.last_now = Some(now);
        let (id, sip_call_id) = self.new_outbound("oc");
        info!(call = %id, sip_call_id, ticket = %req.ticket, round = req.round, step = req.step, person = %req.person, "on-call: calling");
        let duty = Duty {
            ticket: req.ticket,
            round: req.round,
            step: req.step,
            person: req.person,
            language: req.language,
            speech: req.speech,
            reported: false,
            repeated: false,
            notice: false,
        };
        self.dial_duty(now, id, &sip_call_id, &req.number, req.gateway, duty);
        id
    }

    /// The chain of `ticket` is over (a supervisor stopped it, or the
    /// ticket was resolved): an on-call phone still ringing for it stops
    /// (CANCEL), a call under way ends (BYE) before anyone accepts what
    /// is no longer wanted. Nothing more is told of them: the log says
    /// why the chain ended.
    pub fn stop_duty_calls(&mut self, now: Instant, ticket: TicketId) {
        self.last_now = Some(now);
        let ids: Vec<CallId> = self
            .calls
            .iter()
            .filter(|(_, c)| {
                matches!(&c.purpose, Purpose::OnCall(d) if d.ticket == ticket && !d.notice && !d.reported)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let Some(c) = self.calls.get_mut(&id) else {
                continue;
            };
            if let Purpose::OnCall(d) = &mut c.purpose {
                d.reported = true;
            }
            info!(call = %id, %ticket, "on-call: the chain ended; this call too");
            match c.phase {
                Phase::Dialing => self.send_cancel(now, id),
                Phase::Cancelling | Phase::HangingUp => {}
                _ => self.send_bye(now, id),
            }
        }
        self.pump(now);
    }

    /// Calls the owner of an emergency to say help is coming; told once
    /// as [`CallEventKind::OwnerNotified`] (reached or not).
    pub fn place_owner_notice(&mut self, now: Instant, req: PlaceNotice) -> CallId {
        self.last_now = Some(now);
        let (id, sip_call_id) = self.new_outbound("on");
        info!(call = %id, sip_call_id, ticket = %req.ticket, "on-call: telling the owner help is coming");
        let duty = Duty {
            ticket: req.ticket,
            round: 0,
            step: 0,
            person: String::new(),
            language: req.language,
            speech: req.speech,
            reported: false,
            repeated: false,
            notice: true,
        };
        self.dial_duty(now, id, &sip_call_id, &req.number, req.gateway, duty);
        id
    }

    /// RTP is open on an answered on-call call: speak the ticket and ask
    /// (or, to the owner, say help is coming, then goodbye).
    pub(super) fn ask_duty(&mut self, now: Instant, id: CallId) {
        let c = self.calls.get_mut(&id).expect("live call");
        if let Purpose::OnCall(d) = &mut c.purpose
            && d.notice
        {
            d.reported = true;
            let kind = CallEventKind::OwnerNotified {
                ticket: d.ticket,
                reached: true,
                code: None,
            };
            self.emit(now, id, kind);
            self.set_phase(id, Phase::Goodbye);
            return self.speak_duty(id);
        }
        self.set_phase(id, Phase::Asking);
        self.speak_duty(id);
    }

    fn speak_duty(&mut self, id: CallId) {
        let Purpose::OnCall(d) = &self.calls[&id].purpose else {
            return;
        };
        let prompts: Vec<String> = d
            .speech
            .iter()
            .map(|p| format!("{p}_{}", d.language))
            .collect();
        info!(call = %id, prompts = %prompts.join(" "), "on-call: speaking the ticket");
        self.out
            .push_back(Output::Media(MediaCommand::Play { call: id, prompts }));
    }

    fn say_to_duty(&mut self, id: CallId, prompt: &str) {
        let Purpose::OnCall(d) = &self.calls[&id].purpose else {
            return;
        };
        let prompts = vec![format!("{prompt}_{}", d.language)];
        self.out
            .push_back(Output::Media(MediaCommand::Play { call: id, prompts }));
    }

    pub(super) fn duty_digit(&mut self, now: Instant, id: CallId, digit: char) {
        let c = self.calls.get_mut(&id).expect("live call");
        let Purpose::OnCall(d) = &mut c.purpose else {
            return;
        };
        if c.phase != Phase::Asking || d.reported {
            return;
        }
        let (outcome, thanks) = match digit {
            '1' => (DutyOutcome::Accepted, "oncall_accepted"),
            '2' => (DutyOutcome::Passed, "oncall_passed"),
            _ => return, // another key: the question stands
        };
        d.reported = true;
        let kind = CallEventKind::OnCall {
            ticket: d.ticket,
            round: d.round,
            step: d.step,
            person: d.person.clone(),
            outcome,
        };
        info!(call = %id, ticket = %d.ticket, person = %d.person, ?outcome, "on-call: answered");
        c.timer = None;
        c.generation += 1;
        self.emit(now, id, kind);
        self.out
            .push_back(Output::Media(MediaCommand::Stop { call: id }));
        self.set_phase(id, Phase::Goodbye);
        self.say_to_duty(id, thanks);
    }

    /// Silence after the question: the ticket once more, then goodbye
    /// (reported as no key when the call ends).
    pub(super) fn duty_question_timeout(&mut self, id: CallId) {
        let c = self.calls.get_mut(&id).expect("live call");
        let Purpose::OnCall(d) = &mut c.purpose else {
            return;
        };
        if !d.repeated {
            d.repeated = true;
            return self.speak_duty(id);
        }
        self.set_phase(id, Phase::Goodbye);
        self.say_to_duty(id, "goodbye");
    }

    /// INVITEs `number` for an on-call or notice call; one that cannot
    /// even start is told as its outcome at once.
    fn dial_duty(
        &mut self,
        now: Instant,
        id: CallId,
        sip_call_id: &str,
        number: &str,
        gateway: std::net::SocketAddr,
        duty: Duty,
    ) {
        let told = duty.clone();
        let placed = self.place_outbound(
            now,
            id,
            sip_call_id,
            number,
            gateway,
            Purpose::OnCall(duty),
            None,
        );
        if let Err(code) = placed {
            let kind = told.unreported(EndReason::Declined(code), Phase::Dialing);
            self.emit_for(now, id, sip_call_id, kind);
        }
    }

    /// The call ended before the person answered the question.
    pub(super) fn duty_unreported(
        &mut self,
        now: Instant,
        id: CallId,
        sip_call_id: &str,
        purpose: &Purpose,
        reason: EndReason,
        phase: Phase,
    ) {
        if let Purpose::OnCall(d) = purpose
            && !d.reported
        {
            let kind = d.unreported(reason, phase);
            self.emit_for(now, id, sip_call_id, kind);
        }
    }
}

impl Duty {
    /// The outcome of a call that ended (or never started) before an
    /// answer: for a notice, whether the owner was reached.
    fn unreported(&self, reason: EndReason, phase: Phase) -> CallEventKind {
        let outcome = DutyOutcome::from_end(reason, phase);
        if self.notice {
            return CallEventKind::OwnerNotified {
                ticket: self.ticket,
                reached: false,
                code: match outcome {
                    DutyOutcome::Unanswered(code) => Some(code),
                    _ => None,
                },
            };
        }
        CallEventKind::OnCall {
            ticket: self.ticket,
            round: self.round,
            step: self.step,
            person: self.person.clone(),
            outcome,
        }
    }
}
