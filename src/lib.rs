//! hotline: a telephony IVR and automatic call distribution engine for a
//! property-management service hotline.
//!
//! # Map
//! ```text
//! UDP/TCP/TLS ──► runtime (tokio: sockets, the switch's one timer, shutdown,
//!               │   connection caps from edge::Slots)
//!               │ bytes + now                     ▲ bytes to send, media commands
//!               ▼                                 │
//!        edge::Guard (sans-IO: bans dropped unread, per-source token buckets,
//!               │     trunks; failed logins ban) inside call::Switch
//!               ▼
//!        sip::message (rsip + framing, compact forms, folding, checks)
//!               ▼
//!        sip::transaction (sans-IO RFC 3261 §17, timers as data)
//!               ▼
//!        call::Switch (sans-IO: dialogs, SDP, one ivr::Session per call;
//!               │       call::{dialog (every request we send), agent_leg,
//!               │       transfer (REFER, three-way), monitor (supervisors),
//!               │       outbound (return visits), oncall (the emergency
//!               │       chain's calls), registrar})
//!               │ Open/Play/Bridge/Mix/Close      ▲ Opened, Digit, PromptFinished, RecordingFinished
//!               ▼                                 │
//!        runtime::media (one RTP socket per call; its control on the
//!               │        switch's thread; media workers sending and
//!               │        receiving (runtime::{workers, incoming, poller}):
//!               │        two legs relayed packet by packet, more mixed)
//!               └── media::{rtp, g711, dtmf, prompt, record, conversation,
//!                           mixer, ports} (sans-IO)
//!
//!        ivr::Session (sans-IO menu from config/ivr.toml; site::hours for its
//!               hours nodes) ── requests ──► runtime::ivr
//!               └── owners::OwnerDb (SQLite) and tickets::Store answer them
//!        call::CallEvent (each call's story, told once) ──► listeners in the runtime:
//!               tickets::Store (the log: SQLite or PostgreSQL), http::desk (screens),
//!               metrics, and the ACD (routing, and the figures: same facts, same ms)
//!        runtime::tickets (watches the log) ──► tickets::{sla, group, dispatch,
//!                                                webhook, return_visit, oncall + rota,
//!                                                handlers} (sans-IO)
//!                 └── a ticket view (each ticket, its handling agent) for the others
//!
//!        call events: queued, answered, left ──► runtime::acd (its own thread,
//!               ▲                                   crossbeam inbox, no locks)
//!               └── offer, withdraw, left ───────── acd::{Router, announce, stats} (sans-IO)
//!                                                   snapshot ──► metrics, http::api
//!        registrar (strict digest: offered algorithms, qop, uri, nonces bound
//!               to the source, each nc once; agents' networks; TLS-only agents)
//!               and feature codes ─► agents' states in the ACD
//!
//!        cluster (two or more nodes, one PostgreSQL store): a lease row and a
//!               fencing term every append checks (cluster::pg), the lease as a
//!               node sees it (cluster::lease, sans-IO), standby answers 503;
//!               Kamailio in front sends calls to the active node
//!        http (axum): /metrics, the JSON API (users' tokens), /agent (the agent's
//!               page: event stream, screen pop from the desk of calls, wrap-up),
//!               /supervisor (the wallboard), call history and reports, which
//!               tickets::history and report read back from the log
//!               (report replays it through acd::stats)
//! ```
//! One call: an INVITE datagram from a source that is not banned and within
//! its rate (`edge`) is parsed by `sip::message`, matched (or
//! found new) by `sip::transaction`, which hands it to `call::Switch` (and
//! sends 100 Trying if the switch did not answer it at once). The switch negotiates SDP (`sip::sdp`), takes an RTP port
//! (`media::ports`), asks the runtime who is calling (`owners`), rings,
//! answers, and on the ACK starts the menu of the called site
//! (`ivr::Session`): its prompts go to the media edge, its lookups, tickets
//! and redemptions to `runtime::ivr`, its steps to the ticket log. Keys come
//! back from RTP (`media::dtmf`) or SIP INFO. Every path out of a call (BYE
//! either way, CANCEL, Timer H, shutdown) ends in `Switch::end`, which frees
//! the port, closes the media and records the menu's last step.
//!
//! A caller who asks for an agent: the menu's queue node hands the call to
//! the ACD thread (`runtime::acd`), whose `acd::Router` offers it to the
//! best agent; the switch rings the agent's registered phone
//! (`call::agent_leg`) while the caller hears ringback, bridges the two legs
//! on the 200 (each leg's media worker relays its RTP to the other), and the
//! agent's page (`http`) pops the caller's card and, after the call, takes
//! the wrap-up into the ticket log. The agent may hand the caller on
//! (`call::transfer`: REFER from the phone or the desk, to an agent or a
//! queue), bring a colleague in, or a supervisor may listen, whisper or
//! barge (`call::monitor`): then the legs meet in a mixed room
//! (`media::mixer`) the media edge runs every 20 ms.

pub mod acd;
pub mod call;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod edge;
pub mod http;
pub mod ids;
pub mod ivr;
pub mod logging;
pub mod media;
pub mod metrics;
pub mod owners;
pub mod report;
pub mod rng;
pub mod runtime;
pub mod sip;
pub mod site;
pub mod tickets;
