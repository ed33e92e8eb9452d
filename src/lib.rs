//! hotline: a telephony IVR and automatic call distribution engine for a
//! property-management service hotline.
//!
//! # Map
//! ```text
//! UDP/TCP ──► runtime (tokio: sockets, the switch's one timer, shutdown)
//!               │ bytes + now                     ▲ bytes to send, media commands
//!               ▼                                 │
//!        sip::message (rsip + framing, compact forms, folding, checks)
//!               ▼
//!        sip::transaction (sans-IO RFC 3261 §17, timers as data)
//!               ▼
//!        call::Switch (sans-IO: dialogs, SDP offer/answer, the call flow)
//!               │ Open/Play/Stop/Close            ▲ Opened, Digit, PromptFinished
//!               ▼                                 │
//!        runtime::media (one RTP socket per call, one pacing task for all)
//!               └── media::{rtp, g711, dtmf, prompt, ports} (sans-IO)
//!
//!        call started / digits / ended ──► tickets::Store (append-only log)
//!        runtime::tickets (watches the log) ──► tickets::{sla, group} (sans-IO)
//! ```
//! One call: an INVITE datagram is parsed by `sip::message`, matched (or
//! found new) by `sip::transaction`, which sends 100 Trying and hands it to
//! `call::Switch`. The switch negotiates SDP (`sip::sdp`), takes an RTP port
//! (`media::ports`), rings, answers, and on the ACK asks the media edge to
//! play `welcome`. Digits come back from RTP (`media::dtmf`) or SIP INFO;
//! after `#` or the inter-digit timeout it plays `goodbye` and sends BYE.
//! Every path out of a call (BYE either way, CANCEL, Timer H, shutdown) ends
//! in `Switch::end`, which frees the port and closes the media.
//! The runtime writes the call's start, digits and end to the ticket log.

pub mod call;
pub mod config;
pub mod ivr;
pub mod media;
pub mod owners;
pub mod runtime;
pub mod sip;
pub mod tickets;
