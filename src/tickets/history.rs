//! Call history: each call's story, read back from the log. What a
//! supervisor asks ("what happened to the owner who called at 21:14?") is
//! answered from the call events alone: who called, how the menu went, the
//! queue and the wait, which agents were rung and who answered, how it
//! ended, and the tickets the call opened.

use std::collections::HashMap;

use serde::Serialize;

use super::{Actor, Event, EventKind};
use crate::site::LocalTime;

/// How a call ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Talked with an agent.
    Answered,
    /// Left the queue: hung up (or cut off) while waiting.
    Abandoned,
    /// Left the queue for a voice message.
    VoiceMessage,
    /// Waited the queue's longest: sent to its fallback.
    Overflowed,
    /// Served by the menu alone (or hung up in it).
    SelfService,
    /// A return visit the hotline placed.
    ReturnVisit,
    /// Not over yet (or the hotline stopped before writing its end).
    InProgress,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Answered => "answered",
            Outcome::Abandoned => "abandoned",
            Outcome::VoiceMessage => "voice_message",
            Outcome::Overflowed => "overflowed",
            Outcome::SelfService => "self_service",
            Outcome::ReturnVisit => "return_visit",
            Outcome::InProgress => "in_progress",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        [
            Outcome::Answered,
            Outcome::Abandoned,
            Outcome::VoiceMessage,
            Outcome::Overflowed,
            Outcome::SelfService,
            Outcome::ReturnVisit,
            Outcome::InProgress,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
        .ok_or_else(|| {
            format!("{s:?} is not answered, abandoned, voice_message, overflowed, self_service, return_visit or in_progress")
        })
    }
}

/// One line of a call's timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    pub at_ms: i64,
    /// Local time, "21:14:05".
    pub time: String,
    pub text: String,
}

/// One call, as the history shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallRecord {
    /// The SIP Call-ID: the call's key in the log.
    pub call: String,
    pub started_ms: i64,
    /// Local date and time of the start, "2026-12-01 21:14:05".
    pub started: String,
    pub ended_ms: Option<i64>,
    /// The caller's number as trusted (empty: an unknown caller).
    pub number: String,
    pub outbound: bool,
    pub owner: Option<String>,
    pub queue: Option<String>,
    /// Agents whose phones were rung, in order.
    pub offered: Vec<String>,
    /// The agent who talked with the caller.
    pub agent: Option<String>,
    pub outcome: Outcome,
    pub waited_ms: Option<u64>,
    pub talked_ms: Option<u64>,
    /// How it ended (`caller_hung_up` ...).
    pub end: Option<String>,
    pub tickets: Vec<u64>,
    /// The conversation's recording (`GET /api/recordings/{file}`).
    pub recording: Option<String>,
    pub timeline: Vec<Entry>,
}

/// Which calls to show.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// Digits the caller's number contains.
    pub number: Option<String>,
    pub owner: Option<String>,
    /// An agent who was rung with the call or talked in it.
    pub agent: Option<String>,
    pub queue: Option<String>,
    pub outcome: Option<Outcome>,
}

impl Filter {
    pub fn keeps(&self, r: &CallRecord) -> bool {
        self.number
            .as_ref()
            .is_none_or(|n| r.number.contains(n.as_str()))
            && self
                .owner
                .as_ref()
                .is_none_or(|o| r.owner.as_ref() == Some(o))
            && self
                .agent
                .as_ref()
                .is_none_or(|a| r.agent.as_ref() == Some(a) || r.offered.iter().any(|o| o == a))
            && self
                .queue
                .as_ref()
                .is_none_or(|q| r.queue.as_ref() == Some(q))
            && self.outcome.is_none_or(|o| r.outcome == o)
    }
}

fn seconds(ms: u64) -> String {
    let s = (ms + 500) / 1000;
    if s >= 60 {
        format!("{} min {} s", s / 60, s % 60)
    } else {
        format!("{s} s")
    }
}

/// The calls whose `call_started` is among `events` (in log order), each
/// with its whole story from `events`, oldest first.
pub fn calls(events: &[Event], local: LocalTime) -> Vec<CallRecord> {
    let mut order: Vec<String> = Vec::new();
    let mut by_call: HashMap<String, CallRecord> = HashMap::new();
    // Tickets opened in a call: their own later events name no call.
    let mut ticket_call: HashMap<u64, String> = HashMap::new();
    for e in events {
        let Some(key) = e.call.clone().or_else(|| {
            e.ticket
                .and_then(|t| ticket_call.get(&t.0))
                .filter(|_| {
                    matches!(
                        e.kind,
                        EventKind::Resolved { .. } | EventKind::ConfirmedByOwner
                    )
                })
                .cloned()
        }) else {
            continue;
        };
        if let EventKind::CallStarted {
            from,
            number,
            outbound,
            ..
        } = &e.kind
        {
            if !by_call.contains_key(&key) {
                order.push(key.clone());
            }
            by_call.insert(
                key.clone(),
                CallRecord {
                    call: key.clone(),
                    started_ms: e.at_ms,
                    started: local.format(e.at_ms),
                    ended_ms: None,
                    number: number.clone(),
                    outbound: *outbound,
                    owner: None,
                    queue: None,
                    offered: Vec::new(),
                    agent: None,
                    outcome: Outcome::InProgress,
                    waited_ms: None,
                    talked_ms: None,
                    end: None,
                    tickets: Vec::new(),
                    recording: None,
                    timeline: vec![Entry {
                        at_ms: e.at_ms,
                        time: local.format_time(e.at_ms),
                        text: if *outbound {
                            format!("the hotline called {number}")
                        } else if number.is_empty() {
                            format!("an unknown caller rang ({})", uri_user(from))
                        } else {
                            format!("{number} rang")
                        },
                    }],
                },
            );
            continue;
        }
        let Some(r) = by_call.get_mut(&key) else {
            continue;
        };
        if let Some(t) = e.ticket
            && !r.tickets.contains(&t.0)
        {
            r.tickets.push(t.0);
            ticket_call.insert(t.0, key.clone());
        }
        let text = match &e.kind {
            EventKind::CallerIdentified { owner, by } => {
                r.owner = Some(owner.clone());
                match by.as_str() {
                    "pin" => format!("identified as owner {owner} by unit and PIN"),
                    _ => format!("recognised as owner {owner} by the number"),
                }
            }
            EventKind::IvrStepTaken { node, detail } => {
                match crate::ivr::step_words(node, detail) {
                    Some(words) => format!("menu {words}"),
                    None => continue,
                }
            }
            EventKind::CallQueued {
                queue,
                priority,
                class,
                ahead,
            } => {
                // The queue that first took the call (not one it was
                // transferred to).
                r.queue.get_or_insert_with(|| queue.clone());
                let again = if *ahead { ", ahead of the line" } else { "" };
                let class = class
                    .as_deref()
                    .map(|c| format!(", {c} customer"))
                    .unwrap_or_default();
                let priority = if *priority > 0 {
                    format!(", priority {priority}")
                } else {
                    String::new()
                };
                format!("waiting in queue {queue}{class}{priority}{again}")
            }
            EventKind::CallOffered { agent } => {
                r.offered.push(agent.clone());
                format!("agent {agent}'s phone rang")
            }
            EventKind::CallOfferMissed { agent, why } => format!("agent {agent} missed it: {why}"),
            EventKind::CallAnswered {
                agent, waited_ms, ..
            } => {
                r.agent = Some(agent.clone());
                if r.outcome == Outcome::Answered {
                    // A transfer's target: the caller's wait was before.
                    format!("agent {agent} answered")
                } else {
                    r.waited_ms = Some(*waited_ms);
                    r.outcome = Outcome::Answered;
                    format!("agent {agent} answered after {}", seconds(*waited_ms))
                }
            }
            EventKind::CallHeld { by_agent, hold } => {
                let who = if *by_agent { "the agent" } else { "the caller" };
                if *hold {
                    format!("{who} put the call on hold")
                } else {
                    format!("{who} took the call off hold")
                }
            }
            EventKind::CallAbandoned {
                waited_ms, reason, ..
            } if r.outcome == Outcome::Answered => {
                // Back in a queue after a transfer: answered all the same.
                let how = if reason == "voice_message" {
                    "left a voice message"
                } else {
                    "hung up"
                };
                format!("{how} after waiting {} again", seconds(*waited_ms))
            }
            EventKind::CallAbandoned {
                waited_ms, reason, ..
            } => {
                r.waited_ms = Some(*waited_ms);
                if reason == "voice_message" {
                    r.outcome = Outcome::VoiceMessage;
                    format!(
                        "left the queue for a voice message after {}",
                        seconds(*waited_ms)
                    )
                } else {
                    r.outcome = Outcome::Abandoned;
                    let how = if reason == "cut_off" {
                        "was cut off"
                    } else {
                        "hung up"
                    };
                    format!("{how} after waiting {}", seconds(*waited_ms))
                }
            }
            EventKind::CallOverflowed {
                queue,
                waited_ms,
                reason,
            } => {
                r.waited_ms = Some(*waited_ms);
                r.outcome = Outcome::Overflowed;
                if reason == "no_agents" {
                    format!("nobody logged in for queue {queue}: sent to its fallback")
                } else {
                    format!(
                        "no agent within {}: sent to queue {queue}'s fallback",
                        seconds(*waited_ms)
                    )
                }
            }
            EventKind::ConversationEnded {
                agent,
                talked_ms,
                by_agent,
            } => {
                // Every agent's part (a transferred call has several).
                r.talked_ms = Some(r.talked_ms.unwrap_or(0) + *talked_ms);
                let who = if *by_agent {
                    format!("agent {agent}")
                } else {
                    "the caller".into()
                };
                format!("{who} ended the conversation after {}", seconds(*talked_ms))
            }
            EventKind::ConsultStarted { from, to } if to.contains(' ') => {
                format!("agent {from} called {to} to consult")
            }
            EventKind::ConsultStarted { from, to } => {
                format!("agent {from} called agent {to} to consult")
            }
            EventKind::ConferenceRequested { from, to } => {
                format!("agent {from} asked agent {to} to join the call")
            }
            EventKind::ConferenceJoined { agent } => format!("agent {agent} joined the call"),
            EventKind::ConferenceLeft { agent } => format!("agent {agent} left the three-way call"),
            EventKind::MonitorStarted { supervisor, mode }
            | EventKind::MonitorChanged { supervisor, mode } => match mode.as_str() {
                "listen" => format!("supervisor {supervisor} listened in"),
                "whisper" => format!("supervisor {supervisor} whispered to the agent"),
                _ => format!("supervisor {supervisor} joined the conversation"),
            },
            EventKind::MonitorEnded { supervisor } => {
                format!("supervisor {supervisor} left the call")
            }
            EventKind::CallTransferRequested { from, to } => {
                format!("agent {from} asked to transfer the call to {to}")
            }
            EventKind::CallTransferred { from, to } if from.is_empty() => {
                format!("transferred to {to}")
            }
            EventKind::CallTransferred { from, to } => {
                format!("agent {from} transferred the call to {to}")
            }
            EventKind::CallTransferFailed { to, why, .. } => {
                format!("the transfer to {to} failed: {why}")
            }
            EventKind::CallRecorded {
                file,
                duration_ms,
                pauses,
            } => {
                r.recording = Some(file.clone());
                let pauses = match pauses {
                    0 => String::new(),
                    1 => ", paused once".into(),
                    n => format!(", paused {n} times"),
                };
                format!("conversation recorded: {}{pauses}", seconds(*duration_ms))
            }
            EventKind::RecordingPaused { paused, by } => {
                if *paused {
                    format!("recording paused by {by}")
                } else {
                    format!("recording resumed by {by}")
                }
            }
            EventKind::WrapUpCoded { code, notes } => {
                let who = match &e.actor {
                    Actor::Agent(a) => format!("agent {a}"),
                    _ => "the agent".into(),
                };
                if notes.is_empty() {
                    format!("{who} coded the call {code}")
                } else {
                    format!("{who} coded the call {code}: {notes}")
                }
            }
            EventKind::TicketOpened {
                category, severity, ..
            } => format!(
                "ticket T{} opened: {category}, {}",
                e.ticket.map(|t| t.0).unwrap_or_default(),
                match severity {
                    super::Severity::Ordinary => "ordinary",
                    super::Severity::Major => "major",
                    super::Severity::Emergency => "emergency",
                }
            ),
            EventKind::Committed { deadline_ms } => {
                format!("promised by {}", local.format(*deadline_ms))
            }
            EventKind::Resolved { note } => format!("ticket resolved: {note}"),
            EventKind::ConfirmedByOwner => "the owner confirmed the fix".into(),
            EventKind::Reopened { reason } => format!("ticket reopened: {reason}"),
            EventKind::SurveyAnswered { score } => format!("rated the service {score} of 5"),
            EventKind::ReturnCallUnanswered { reason, .. } => {
                format!("return visit not answered: {reason}")
            }
            EventKind::CallEnded { reason, code } => {
                r.ended_ms = Some(e.at_ms);
                r.end = Some(reason.clone());
                if r.outcome == Outcome::InProgress {
                    r.outcome = if r.outbound {
                        Outcome::ReturnVisit
                    } else {
                        Outcome::SelfService
                    };
                }
                let code = code.map(|c| format!(" ({c})")).unwrap_or_default();
                format!("call ended: {}{code}", reason.replace('_', " "))
            }
            _ => continue,
        };
        r.timeline.push(Entry {
            at_ms: e.at_ms,
            time: local.format_time(e.at_ms),
            text,
        });
    }
    order
        .into_iter()
        .filter_map(|k| by_call.remove(&k))
        .collect()
}

fn uri_user(uri: &str) -> &str {
    crate::owners::phone::uri_user(uri).unwrap_or(uri)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tickets::{EventId, TicketId};

    fn ev(id: u64, call: &str, at_s: i64, kind: EventKind) -> Event {
        Event {
            id: EventId(id),
            ticket: None,
            call: Some(call.into()),
            at_ms: 1_764_595_200_000 + at_s * 1000, // 2025-12-01 21:20 +08:00
            actor: Actor::System,
            kind,
        }
    }

    #[test]
    fn a_calls_story_reads_in_words_with_its_outcome_wait_and_ticket() {
        let mut events = vec![
            ev(
                1,
                "a",
                0,
                EventKind::CallStarted {
                    from: "sip:13800138000@gw".into(),
                    to: "sip:100@h".into(),
                    number: "13800138000".into(),
                    outbound: false,
                },
            ),
            ev(
                2,
                "a",
                1,
                EventKind::CallerIdentified {
                    owner: "O-0001".into(),
                    by: "number".into(),
                },
            ),
            ev(
                3,
                "a",
                5,
                EventKind::CallQueued {
                    queue: "vip".into(),
                    priority: 100,
                    class: Some("vip".into()),
                    ahead: false,
                },
            ),
            ev(
                4,
                "a",
                6,
                EventKind::CallOffered {
                    agent: "2001".into(),
                },
            ),
            ev(
                5,
                "a",
                7,
                EventKind::CallOfferMissed {
                    agent: "2001".into(),
                    why: "phone refused (486)".into(),
                },
            ),
            ev(
                6,
                "a",
                9,
                EventKind::CallOffered {
                    agent: "2002".into(),
                },
            ),
            ev(
                7,
                "a",
                12,
                EventKind::CallAnswered {
                    agent: "2002".into(),
                    owner: Some("O-0001".into()),
                    waited_ms: 7_000,
                },
            ),
            ev(
                8,
                "a",
                80,
                EventKind::ConversationEnded {
                    agent: "2002".into(),
                    talked_ms: 68_000,
                    by_agent: false,
                },
            ),
            ev(
                9,
                "a",
                80,
                EventKind::CallEnded {
                    reason: "caller_hung_up".into(),
                    code: None,
                },
            ),
            ev(
                10,
                "b",
                30,
                EventKind::CallStarted {
                    from: "sip:anonymous@x".into(),
                    to: "sip:100@h".into(),
                    number: String::new(),
                    outbound: false,
                },
            ),
        ];
        let mut opened = ev(
            11,
            "a",
            90,
            EventKind::TicketOpened {
                category: "fee".into(),
                severity: super::super::Severity::Ordinary,
                owner: Some("O-0001".into()),
                building: None,
                summary: "x".into(),
                phone: None,
            },
        );
        opened.ticket = Some(TicketId(3));
        events.push(opened);
        let local = LocalTime::parse("+08:00").unwrap();
        let calls = calls(&events, local);
        assert_eq!(calls.len(), 2);
        let a = &calls[0];
        assert_eq!(
            (
                a.outcome,
                a.agent.as_deref(),
                a.waited_ms,
                a.talked_ms,
                a.queue.as_deref()
            ),
            (
                Outcome::Answered,
                Some("2002"),
                Some(7_000),
                Some(68_000),
                Some("vip")
            )
        );
        assert_eq!(a.offered, ["2001", "2002"]);
        assert_eq!(a.tickets, [3]);
        assert_eq!(a.started, "2025-12-01 21:20:00");
        let text: Vec<&str> = a.timeline.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(
            text,
            [
                "13800138000 rang",
                "recognised as owner O-0001 by the number",
                "waiting in queue vip, vip customer, priority 100",
                "agent 2001's phone rang",
                "agent 2001 missed it: phone refused (486)",
                "agent 2002's phone rang",
                "agent 2002 answered after 7 s",
                "the caller ended the conversation after 1 min 8 s",
                "call ended: caller hung up",
                "ticket T3 opened: fee, ordinary",
            ]
        );
        assert_eq!(calls[1].outcome, Outcome::InProgress);
        assert_eq!(
            calls[1].timeline[0].text,
            "an unknown caller rang (anonymous)"
        );
        let only_2001 = Filter {
            agent: Some("2001".into()),
            ..Filter::default()
        };
        assert!(only_2001.keeps(a) && !only_2001.keeps(&calls[1]));
        let abandoned = Filter {
            outcome: Some(Outcome::Abandoned),
            ..Filter::default()
        };
        assert!(!abandoned.keeps(a));
    }
}
