//! SIP: messages (rsip plus our checks), stream framing, sans-IO transactions
//! (RFC 3261 §17) and the session description (RFC 3264 offer/answer).

pub mod digest;
pub mod message;
pub mod sdp;
pub mod transaction;
