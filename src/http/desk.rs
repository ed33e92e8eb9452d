//! What the agents' screens need from the running hotline: a card per call
//! (who is calling, the way they took through the menu, the queue, the
//! agent who took it) and a stream of what happens to agents (state
//! changes, offers, answers, hang-ups). The runtime writes both from the
//! switch's and the ACD's outputs; the HTTP API reads them.

use std::time::{Duration, Instant};

use dashmap::DashMap;
use serde::Serialize;
use tokio::sync::broadcast;

/// A call as an agent's screen shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CallCard {
    /// The hotline's id for the call (`c17` in logs: 17 here).
    pub call: u64,
    pub sip_call_id: String,
    /// The caller's number, as received.
    pub number: String,
    pub owner: Option<String>,
    pub queue: Option<String>,
    /// The menu steps, in order ("main: key 2 -> repair" ...).
    pub path: Vec<String>,
    /// Agents whose phones were rung with it.
    pub offered: Vec<String>,
    /// The agent who answered (the last, after a transfer).
    pub agent: Option<String>,
    /// Every agent who talked with the caller (each wraps up their part).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub answered_by: Vec<String>,
    pub ended: bool,
    /// The agent whose phone rings with it now.
    #[serde(skip)]
    ringing: Option<String>,
    /// `vip` or `key` when the owner is served first.
    pub class: Option<String>,
    /// Waiting in the queue since (none: not waiting).
    #[serde(skip)]
    pub waiting_since: Option<Instant>,
    /// The wrap-up was written (once per call).
    pub wrapped_up: bool,
    /// The hotline is calling the owner back (they asked to be, keeping
    /// their place in line).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub callback: bool,
    #[serde(skip)]
    ended_at: Option<Instant>,
}

/// One thing that happened to an agent, for their screen.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DeskEvent {
    State {
        agent: String,
        state: String,
        reason: String,
        /// Since when (Unix ms), for the time in state.
        since_ms: i64,
        /// Wrapping up: when the wrap-up time is over (Unix ms).
        #[serde(skip_serializing_if = "Option::is_none")]
        until_ms: Option<i64>,
    },
    /// The agent's phone registered, or its registration is gone: only
    /// agents with a registered phone are offered calls.
    Phone {
        agent: String,
        registered: bool,
    },
    /// Their phone rings with this call.
    Offer {
        agent: String,
        call: u64,
    },
    /// The offer was taken back (caller gone, timeout, logout).
    Withdrawn {
        agent: String,
        call: u64,
    },
    Connected {
        agent: String,
        call: u64,
    },
    /// The conversation is over: time for the wrap-up.
    Ended {
        agent: String,
        call: u64,
    },
}

impl DeskEvent {
    pub fn agent(&self) -> &str {
        match self {
            DeskEvent::State { agent, .. }
            | DeskEvent::Phone { agent, .. }
            | DeskEvent::Offer { agent, .. }
            | DeskEvent::Withdrawn { agent, .. }
            | DeskEvent::Connected { agent, .. }
            | DeskEvent::Ended { agent, .. } => agent,
        }
    }
}

/// Ended calls an agent took stay this long, for the wrap-up.
const KEEP_ENDED: Duration = Duration::from_secs(3600);

/// The way through the menu of an owner who asked to be called back is
/// kept this long for the agent who calls them (retries included).
const KEEP_ASKED: Duration = Duration::from_secs(24 * 3600);

pub struct Desk {
    calls: DashMap<u64, CallCard>,
    /// Owners' calls that asked for a callback (by SIP Call-ID, the
    /// callback's name): when, and their way through the menu.
    asked_back: DashMap<String, (Instant, Vec<String>)>,
    /// Whose phone is registered, as last told.
    phones: DashMap<String, bool>,
    events: broadcast::Sender<DeskEvent>,
    pruned: std::sync::atomic::AtomicU64,
    epoch: Instant,
}

impl Default for Desk {
    fn default() -> Self {
        Self {
            calls: DashMap::new(),
            asked_back: DashMap::new(),
            phones: DashMap::new(),
            events: broadcast::channel(1024).0,
            pruned: Default::default(),
            epoch: Instant::now(),
        }
    }
}

impl Desk {
    pub fn subscribe(&self) -> broadcast::Receiver<DeskEvent> {
        self.events.subscribe()
    }

    pub fn publish(&self, event: DeskEvent) {
        let _ = self.events.send(event); // nobody listening is fine
    }

    /// The desk's side of a call's story: the card, and each agent's
    /// screen told when their phone rings, stops ringing (missed, taken
    /// back, the caller gone), connects and hangs up.
    pub fn hear(&self, ev: &crate::call::CallEvent) {
        use crate::call::CallEventKind as K;
        let call = ev.call.0;
        match &ev.kind {
            K::Started { number, .. } => self.started(call, &ev.sip_call_id, number),
            K::CallerIdentified { owner, .. } => {
                if let Some(mut c) = self.calls.get_mut(&call) {
                    c.owner = Some(owner.clone());
                }
            }
            K::MenuStep { node, detail } => self.step(call, node, detail),
            K::CallbackRequested { .. } => {
                if let Some(c) = self.calls.get(&call) {
                    let path = c.path.clone();
                    self.asked_back
                        .insert(ev.sip_call_id.clone(), (ev.at, path));
                }
            }
            K::CallbackPlaced {
                callback,
                queue,
                owner,
                ..
            } => {
                if let Some(mut c) = self.calls.get_mut(&call) {
                    c.callback = true;
                    c.queue = Some(queue.clone());
                    c.owner = c.owner.take().or_else(|| owner.clone());
                    // The agent sees what the owner chose before asking.
                    if let Some(asked) = self.asked_back.get(callback) {
                        c.path = asked.1.clone();
                    }
                }
            }
            K::Queued {
                queue,
                owner,
                class,
                ..
            } => {
                self.queued(call, queue, owner.as_deref());
                if let Some(mut c) = self.calls.get_mut(&call) {
                    c.waiting_since = Some(ev.at);
                    c.class = class
                        .filter(|c| *c != crate::owners::OwnerClass::Ordinary)
                        .map(|c| c.as_str().to_string());
                }
            }
            K::Abandoned { .. } | K::Overflowed { .. } => {
                if let Some(mut c) = self.calls.get_mut(&call) {
                    c.waiting_since = None;
                }
            }
            K::Offered { agent } => {
                let agent = agent.to_string();
                self.offer(call, &agent);
                if let Some(mut c) = self.calls.get_mut(&call) {
                    c.ringing = Some(agent.clone());
                }
                self.publish(DeskEvent::Offer { agent, call });
            }
            K::OfferMissed { agent, .. } => {
                let agent = agent.to_string();
                if let Some(mut c) = self.calls.get_mut(&call)
                    && c.ringing.as_deref() == Some(&agent)
                {
                    c.ringing = None;
                }
                self.publish(DeskEvent::Withdrawn { agent, call });
            }
            K::Answered { agent, .. } => {
                let agent = agent.to_string();
                self.answered(call, &agent);
                if let Some(mut c) = self.calls.get_mut(&call) {
                    c.ringing = None;
                    c.waiting_since = None;
                }
                self.publish(DeskEvent::Connected { agent, call });
            }
            K::ConversationEnded { agent, .. } => self.publish(DeskEvent::Ended {
                agent: agent.to_string(),
                call,
            }),
            K::Ended { .. } => {
                // A phone still ringing for a caller who hung up stops.
                let ringing = self.calls.get_mut(&call).and_then(|mut c| c.ringing.take());
                if let Some(agent) = ringing {
                    self.publish(DeskEvent::Withdrawn { agent, call });
                }
                self.ended(call, ev.at);
            }
            _ => {}
        }
    }

    /// An agent's new state since `since_ms` (a wrap-up until `until_ms`),
    /// for their screen.
    pub fn agent_changed(
        &self,
        agent: crate::ids::AgentId,
        state: &crate::acd::AgentState,
        since_ms: i64,
        until_ms: Option<i64>,
    ) {
        self.publish(DeskEvent::State {
            agent: agent.to_string(),
            state: crate::metrics::agent_state_label(state).to_string(),
            reason: match state {
                crate::acd::AgentState::Paused { reason } => reason.clone(),
                _ => String::new(),
            },
            since_ms,
            until_ms,
        });
    }

    /// The agent's phone registered (or not): told to their screen when
    /// it changes.
    pub fn phone(&self, agent: &str, registered: bool) {
        let before = self.phones.insert(agent.to_string(), registered);
        if before != Some(registered) {
            self.publish(DeskEvent::Phone {
                agent: agent.to_string(),
                registered,
            });
        }
    }

    /// The callers waiting now, longest first: the card and the wait.
    pub fn waiting(&self, now: Instant) -> Vec<(CallCard, Duration)> {
        let mut waiting: Vec<(CallCard, Duration)> = self
            .calls
            .iter()
            .filter_map(|c| {
                let since = c.waiting_since?;
                (!c.ended).then(|| (c.clone(), now.saturating_duration_since(since)))
            })
            .collect();
        waiting.sort_by_key(|w| std::cmp::Reverse(w.1));
        waiting
    }

    pub fn call(&self, call: u64) -> Option<CallCard> {
        self.calls.get(&call).map(|c| c.clone())
    }

    pub fn started(&self, call: u64, sip_call_id: &str, number: &str) {
        self.calls.insert(
            call,
            CallCard {
                call,
                sip_call_id: sip_call_id.to_string(),
                number: number.to_string(),
                owner: None,
                queue: None,
                path: Vec::new(),
                offered: Vec::new(),
                agent: None,
                answered_by: Vec::new(),
                ended: false,
                ringing: None,
                class: None,
                waiting_since: None,
                wrapped_up: false,
                callback: false,
                ended_at: None,
            },
        );
    }

    /// A menu step, in words (the steps only the log needs are left out).
    pub fn step(&self, call: u64, node: &str, detail: &str) {
        if let (Some(mut c), Some(words)) = (
            self.calls.get_mut(&call),
            crate::ivr::step_words(node, detail),
        ) {
            c.path.push(words);
        }
    }

    pub fn queued(&self, call: u64, queue: &str, owner: Option<&str>) {
        if let Some(mut c) = self.calls.get_mut(&call) {
            c.queue = Some(queue.to_string());
            if owner.is_some() {
                c.owner = owner.map(str::to_string);
            }
        }
    }

    pub fn offer(&self, call: u64, agent: &str) {
        if let Some(mut c) = self.calls.get_mut(&call)
            && !c.offered.iter().any(|a| a == agent)
        {
            c.offered.push(agent.to_string());
        }
    }

    /// Whether `agent`'s phone was rung with `call`.
    pub fn offered(&self, call: u64, agent: &str) -> bool {
        self.calls
            .get(&call)
            .is_some_and(|c| c.offered.iter().any(|a| a == agent))
    }

    pub fn answered(&self, call: u64, agent: &str) {
        if let Some(mut c) = self.calls.get_mut(&call) {
            c.agent = Some(agent.to_string());
            if !c.answered_by.iter().any(|a| a == agent) {
                c.answered_by.push(agent.to_string());
            }
        }
    }

    /// The call is over. A call no agent took is forgotten; one an agent
    /// took is kept for their wrap-up. Old ones are pruned now and then.
    pub fn ended(&self, call: u64, now: Instant) {
        let keep = match self.calls.get_mut(&call) {
            Some(mut c) if c.agent.is_some() => {
                c.ended = true;
                c.ended_at = Some(now);
                true
            }
            _ => false,
        };
        if !keep {
            self.calls.remove(&call);
        }
        let minute = now.saturating_duration_since(self.epoch).as_secs() / 60;
        let last = self
            .pruned
            .swap(minute, std::sync::atomic::Ordering::Relaxed);
        if last != minute {
            self.calls.retain(|_, c| {
                c.ended_at
                    .is_none_or(|at| now.saturating_duration_since(at) < KEEP_ENDED)
            });
            self.asked_back
                .retain(|_, (at, _)| now.saturating_duration_since(*at) < KEEP_ASKED);
        }
    }

    /// The wrap-up could not be written after all: it may be sent again.
    pub fn wrap_up_failed(&self, call: u64) {
        if let Some(mut c) = self.calls.get_mut(&call) {
            c.wrapped_up = false;
        }
    }

    /// Marks the wrap-up written; false if it already was.
    pub fn wrap_up(&self, call: u64) -> bool {
        match self.calls.get_mut(&call) {
            Some(mut c) if !c.wrapped_up => {
                c.wrapped_up = true;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_card_follows_the_call_and_only_answered_calls_outlive_it() {
        let desk = Desk::default();
        let t0 = Instant::now();
        desk.started(1, "abc", "13800138000");
        desk.step(1, "main", "key 0 -> agent");
        desk.queued(1, "vip", Some("O-0001"));
        desk.offer(1, "2002");
        desk.offer(1, "2001");
        desk.answered(1, "2001");
        assert!(desk.offered(1, "2002") && !desk.offered(1, "2003"));
        desk.started(2, "def", "555");
        desk.ended(2, t0);
        assert!(desk.call(2).is_none(), "nobody took call 2");
        desk.ended(1, t0);
        let card = desk.call(1).unwrap();
        assert_eq!(card.path, ["main: pressed 0 → agent"]);
        assert_eq!(
            (card.owner.as_deref(), card.agent.as_deref(), card.ended),
            (Some("O-0001"), Some("2001"), true)
        );
        assert!(desk.wrap_up(1));
        assert!(!desk.wrap_up(1), "one wrap-up per call");
        // An hour and a minute later the card is gone.
        desk.started(3, "ghi", "555");
        desk.ended(3, t0 + Duration::from_secs(3660));
        assert!(desk.call(1).is_none());
    }

    #[test]
    fn the_agent_who_calls_an_owner_back_sees_their_way_through_the_menu() {
        use crate::call::{CallEvent, CallEventKind as K, CallId};
        let desk = Desk::default();
        let t0 = Instant::now();
        let hear = |call: u64, sip: &str, at: Instant, kind: K| {
            desk.hear(&CallEvent {
                at,
                call: CallId(call),
                sip_call_id: sip.into(),
                kind,
            })
        };
        // The owner's call: the menu, then a callback asked for.
        desk.started(1, "abc", "13800138000");
        desk.step(1, "main", "key 2 -> repair");
        hear(
            1,
            "abc",
            t0,
            K::CallbackRequested {
                queue: "repair".into(),
                priority: 0,
                language: "zh".into(),
                number: "+8613800138000".into(),
                owner: Some("O-0001".into()),
                waited: Duration::from_secs(70),
            },
        );
        desk.ended(1, t0);
        assert!(desk.call(1).is_none(), "nobody took the owner's call");
        // The call the hotline places later carries it.
        let placed = |call: u64, at: Instant| {
            desk.started(call, &format!("cb-{call}"), "+8613800138000");
            hear(
                call,
                &format!("cb-{call}"),
                at,
                K::CallbackPlaced {
                    callback: "abc".into(),
                    attempt: 1,
                    number: "+8613800138000".into(),
                    queue: "repair".into(),
                    owner: Some("O-0001".into()),
                },
            );
            desk.call(call).unwrap()
        };
        let card = placed(2, t0 + Duration::from_secs(600));
        assert!(card.callback);
        assert_eq!(card.path, ["main: pressed 2 → repair"]);
        // Kept a day, for the retries; then forgotten.
        desk.ended(2, t0 + Duration::from_secs(25 * 3600));
        assert!(
            placed(3, t0 + Duration::from_secs(25 * 3600))
                .path
                .is_empty()
        );
    }
}
