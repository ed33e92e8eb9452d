//! Automatic call distribution: agents, queues and the router that matches
//! them.
//!
//! # Design
//! [`Router`] is a sans-IO core: events and `now` in (a call queued, an
//! agent ready, an offer answered or refused, a caller gone, time passing),
//! [`AcdOutput`]s and the next deadline out. It matches on every event: the
//! highest-priority, longest-waiting call goes to the longest-idle agent
//! with the best skill fit, so at rest no available agent could take a
//! waiting call (the randomized test checks this after every step).
//!
//! Lock-free by construction: the core is owned by one thread (`&mut self`,
//! no `Mutex`/`RwLock` anywhere on the routing path). The runtime feeds it
//! through a crossbeam channel and publishes what readers (the HTTP API,
//! metrics) need as snapshots after each batch, so a reader never holds up
//! a routing decision and a routing decision never waits for a reader.
//!
//! Indexes keep each decision cheap at any size: per queue an ordered set of
//! waiting calls (priority, then arrival); per skill and per level an
//! ordered set of available agents by the time they became idle. Choosing an
//! agent for a call peeks at most the eleven level sets of one skill;
//! choosing a call for an agent peeks at the head of each queue the agent's
//! skills serve. Timers (offer timeout, wrap-up, sticky wait, widening, the
//! maximum wait) are values in one heap, with generations so a stale timer
//! is ignored.
//!
//! Skill widening: a queue takes agents of `good_level` and above first,
//! then (tier 2) down to `min_level`; once its head call has waited
//! `widen_after`, down to `widened_level`, then agents of neighbouring skills.
//!
//! Languages: each configured queue is kept as one queue per language and
//! each (skill, language) an agent speaks as one skill, so a caller waits
//! only behind callers of their own language (no head-of-line blocking) and
//! is offered only to agents who speak it, with the same matching code.

pub mod agents;
pub mod announce;
pub mod plan;
mod router;
pub mod stats;

pub use router::{
    AcdConfig, AcdOutput, AgentConfig, AgentState, LeftReason, QueueConfig, Router, WhenEmpty,
};

pub use crate::ids::{AgentId, CallId};
pub use plan::QueuePlan;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SkillId(pub u16);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(pub u16);

/// The language a caller is served in: only agents who speak it take the
/// call (a Mandarin caller is never widened to an English-only agent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Language {
    Zh = 0,
    En = 1,
}

impl Language {
    pub const ALL: [Language; 2] = [Language::Zh, Language::En];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "zh" => Some(Language::Zh),
            "en" => Some(Language::En),
            _ => None,
        }
    }
}

/// Priorities the menu and the owner's class give a call: higher first.
pub mod priority {
    pub const ORDINARY: u8 = 0;
    pub const VIP: u8 = 100;
    pub const KEY_CUSTOMER: u8 = 200;
    pub const EMERGENCY: u8 = 255;
}

#[cfg(test)]
mod tests;
