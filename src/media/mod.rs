//! Media: G.711, RTP packets, RFC 4733 digits, prompts and the RTP port pool.
//! All sans-IO; the sockets and the pacing driver live in `runtime::media`.

pub mod conversation;
pub mod dtmf;
pub mod g711;
pub mod mixer;
pub mod ports;
pub mod prompt;
pub mod record;
pub mod rtp;
