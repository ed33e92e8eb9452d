//! Calls an earlier process left unfinished in the log: it was killed, or
//! it was a cluster's active node that died or lost its lease. Their media
//! was in that process, so they are over; the process that starts next
//! (the new active node) writes their end, so the call history, the
//! reports and the queue's figures stay true: a caller still waiting for
//! an agent is cut off (`call_abandoned`, reason `cut_off`), and every
//! unfinished call ends with `call_ended`, reason `node_failed`.

use std::collections::HashMap;

use super::event::{Actor, Event, EventKind, NewEvent};

/// The end reason written for them.
pub const NODE_FAILED: &str = "node_failed";

/// How far back a call may have started and still be unfinished: no call
/// lasts a day (`[call] max_duration_seconds` caps them well below).
pub const LOOK_BACK_MS: i64 = 24 * 3600 * 1000;

#[derive(Default)]
struct Open {
    /// Waiting in this queue since then, no agent yet.
    queued: Option<(String, i64)>,
    ended: bool,
}

/// The events that finish every call `events` (the log's recent past, in
/// order) started and never ended, stamped `now_ms`.
pub fn close_unfinished(events: &[Event], now_ms: i64) -> Vec<NewEvent> {
    let mut calls: HashMap<&str, Open> = HashMap::new();
    let mut order = Vec::new();
    for e in events {
        let Some(call) = e.call.as_deref() else {
            continue;
        };
        match &e.kind {
            EventKind::CallStarted { .. } if calls.insert(call, Open::default()).is_none() => {
                order.push(call);
            }
            EventKind::CallQueued { queue, .. } => {
                if let Some(c) = calls.get_mut(call) {
                    c.queued = Some((queue.clone(), e.at_ms));
                }
            }
            EventKind::CallAnswered { .. }
            | EventKind::CallAbandoned { .. }
            | EventKind::CallOverflowed { .. }
            | EventKind::CallbackRequested { .. } => {
                if let Some(c) = calls.get_mut(call) {
                    c.queued = None;
                }
            }
            EventKind::CallEnded { .. } => {
                if let Some(c) = calls.get_mut(call) {
                    c.ended = true;
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for call in order {
        let c = &calls[call];
        if c.ended {
            continue;
        }
        let event = |kind| NewEvent {
            ticket: None,
            call: Some(call.to_string()),
            at_ms: now_ms,
            actor: Actor::System,
            kind,
        };
        if let Some((queue, since)) = &c.queued {
            out.push(event(EventKind::CallAbandoned {
                queue: queue.clone(),
                waited_ms: (now_ms - since).max(0) as u64,
                reason: "cut_off".into(),
            }));
        }
        out.push(event(EventKind::CallEnded {
            reason: NODE_FAILED.into(),
            code: None,
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tickets::EventId;

    fn ev(id: u64, call: &str, at_ms: i64, kind: EventKind) -> Event {
        Event {
            id: EventId(id),
            ticket: None,
            call: Some(call.into()),
            at_ms,
            actor: Actor::System,
            kind,
        }
    }

    fn started() -> EventKind {
        EventKind::CallStarted {
            from: "sip:13800138000@127.0.0.1".into(),
            to: "sip:hotline@127.0.0.1".into(),
            number: "+8613800138000".into(),
            outbound: false,
        }
    }

    fn queued() -> EventKind {
        EventKind::CallQueued {
            queue: "general".into(),
            priority: 0,
            class: None,
            ahead: false,
        }
    }

    #[test]
    fn a_waiting_caller_is_cut_off_and_every_unfinished_call_ends_node_failed() {
        let ended = EventKind::CallEnded {
            reason: "caller_hung_up".into(),
            code: None,
        };
        let answered = EventKind::CallAnswered {
            agent: "2001".into(),
            owner: None,
            waited_ms: 4000,
        };
        let events = [
            ev(1, "done", 1000, started()),
            ev(2, "done", 2000, ended),
            ev(3, "waiting", 3000, started()),
            ev(4, "waiting", 4000, queued()),
            ev(5, "talking", 5000, started()),
            ev(6, "talking", 5500, queued()),
            ev(7, "talking", 9500, answered),
        ];
        let out = close_unfinished(&events, 10_000);
        let got: Vec<(String, &str, String)> = out
            .iter()
            .map(|e| {
                let detail = match &e.kind {
                    EventKind::CallAbandoned {
                        waited_ms, reason, ..
                    } => format!("{reason} {waited_ms}"),
                    EventKind::CallEnded { reason, .. } => reason.clone(),
                    other => format!("{other:?}"),
                };
                (e.call.clone().unwrap(), e.kind.name(), detail)
            })
            .collect();
        assert_eq!(
            got,
            [
                ("waiting".into(), "call_abandoned", "cut_off 6000".into()),
                ("waiting".into(), "call_ended", "node_failed".into()),
                ("talking".into(), "call_ended", "node_failed".into()),
            ]
        );
        assert!(out.iter().all(|e| e.at_ms == 10_000));
    }
}
