//! Our requests, inside a dialog or opening one: one builder for every
//! request the switch sends (INVITE, its ACK and CANCEL, BYE, INFO, NOTIFY),
//! so the Via's transport, the route set and the tags are written once.
//!
//! A dialog's side of it (RFC 3261 §12): our From (with our tag), their To,
//! the Call-ID, the route set, and the transport toward the peer. What
//! varies per request: the method, the Request-URI, the branch, the CSeq,
//! extra headers and the body.

use bytes::Bytes;

use super::{Call, SwitchConfig};
use crate::sip::transaction::Transport;

/// A dialog's side of every request in it.
pub(super) struct DialogIds<'a> {
    pub transport: Transport,
    pub routes: &'a [String],
    /// Our From (with our tag) and their To.
    pub local: &'a str,
    pub remote: &'a str,
    pub call_id: &'a str,
}

/// One request to build.
pub(super) struct Req<'a> {
    pub method: &'a str,
    pub uri: &'a str,
    pub branch: &'a str,
    pub cseq: u32,
    /// Headers beyond the dialog's own (Contact, Event, authorization ...).
    pub headers: &'a [(&'a str, &'a str)],
    /// Content type and bytes.
    pub body: Option<(&'a str, &'a [u8])>,
}

impl Call {
    pub(super) fn dialog(&self) -> DialogIds<'_> {
        DialogIds {
            transport: self.peer.transport,
            routes: &self.route_set,
            local: &self.local,
            remote: &self.remote,
            call_id: &self.sip_call_id,
        }
    }

    /// A request in this call's dialog.
    pub(super) fn request(&self, cfg: &SwitchConfig, r: Req<'_>) -> Bytes {
        request(cfg, &self.dialog(), r)
    }
}

/// The request's bytes: the dialog's Via, route set, From, To and Call-ID
/// around what `r` says.
pub(super) fn request(cfg: &SwitchConfig, d: &DialogIds<'_>, r: Req<'_>) -> Bytes {
    use std::fmt::Write;
    let (content_type, body) = r.body.unwrap_or(("", b""));
    let mut text = String::with_capacity(512 + body.len());
    // Writing into a String cannot fail.
    let _ = write!(
        text,
        "{method} {uri} SIP/2.0\r\nVia: {via};branch={branch};rport\r\nMax-Forwards: 70\r\n",
        method = r.method,
        uri = r.uri,
        via = cfg.via_for(d.transport),
        branch = r.branch,
    );
    for route in d.routes {
        let _ = write!(text, "Route: {route}\r\n");
    }
    let _ = write!(
        text,
        "From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} {}\r\n",
        d.local, d.remote, d.call_id, r.cseq, r.method
    );
    for (name, value) in r.headers {
        let _ = write!(text, "{name}: {value}\r\n");
    }
    if r.method != "ACK" && r.method != "CANCEL" {
        text.push_str("User-Agent: hotline\r\n");
    }
    if !content_type.is_empty() {
        let _ = write!(text, "Content-Type: {content_type}\r\n");
    }
    let _ = write!(text, "Content-Length: {}\r\n\r\n", body.len());
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(body);
    Bytes::from(bytes)
}
