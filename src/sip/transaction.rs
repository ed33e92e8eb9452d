//! Sans-IO SIP transactions (RFC 3261 §17, with the RFC 6026 `Accepted` state).
//!
//! The layer never reads the clock or touches a socket: every input carries
//! `now`, outputs are queued for [`TransactionLayer::poll_output`], and the
//! driver sleeps until [`TransactionLayer::poll_timeout`].
//!
//! Each transaction has three timer slots, so the RFC's eleven timers map onto
//! a small table instead of a task per timer:
//! * `retransmit`: A (client INVITE), E (client non-INVITE), G (server INVITE final);
//! * `timeout`:    B, F (no response), H (no ACK);
//! * `linger`:     D, K (absorb response retransmissions), I (absorb ACKs),
//!   J (absorb request retransmissions), L/M (RFC 6026 accepted states).
//!
//! Deadlines go into one binary heap; entries made stale by a state change are
//! skipped when popped (cheaper than removing them).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::message::{self, CoreHeaders, Request, Response};

/// RFC 3261 timer base values.
#[derive(Debug, Clone, Copy)]
pub struct TimerValues {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
}

impl Default for TimerValues {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    /// SIP over TLS (RFC 3261 §26.2), framed like TCP.
    Tls,
}

impl Transport {
    pub fn is_reliable(self) -> bool {
        matches!(self, Transport::Tcp | Transport::Tls)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }
}

/// Where a message came from or goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    pub transport: Transport,
    pub addr: SocketAddr,
}

/// Bytes to send to a peer.
#[derive(Debug, Clone)]
pub struct Transmit {
    pub peer: Peer,
    pub bytes: Bytes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxId(u64);

/// What the transaction user (the call layer) is told.
// Queued and handled once each; boxing the message would allocate per request.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum TxEvent {
    /// A new request (never a retransmission). For an INVITE, the TU calls
    /// [`TransactionLayer::send_trying`] once it has seen it.
    Request {
        tx: TxId,
        peer: Peer,
        request: Request,
    },
    /// An ACK for a 2xx: it belongs to the dialog, not to a transaction.
    Ack { peer: Peer, request: Request },
    /// A response for a client transaction (2xx retransmissions included, so
    /// the TU can ACK them again).
    Response { tx: TxId, response: Response },
    /// Timer B, F (no response) or H (no ACK) fired.
    Timeout { tx: TxId },
}

// Same reason as TxEvent.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Output {
    Transmit(Transmit),
    Event(TxEvent),
}

// The RFC's own names for the four machines.
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    ServerInvite,
    ServerNonInvite,
    ClientInvite,
    ClientNonInvite,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Trying,
    Calling,
    Proceeding,
    Completed,
    Accepted,
    Confirmed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Slot {
    Retransmit,
    Timeout,
    Linger,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    branch: String,
    sent_by: String,
    /// INVITE for INVITE and its ACK; the request method otherwise.
    method: String,
    /// Not part of RFC 3261's match, but always equal for a legitimate match;
    /// it keeps peers that reuse a branch across requests (SIPp scenarios
    /// do) from having a new request taken for a retransmission.
    cseq: u32,
    server: bool,
}

#[derive(Debug)]
struct Tx {
    kind: Kind,
    state: State,
    key: Key,
    peer: Peer,
    /// Server: last response sent. Client: the request.
    last: Option<Bytes>,
    /// Client INVITE: the ACK for a non-2xx final response.
    ack: Option<Bytes>,
    request_core: Option<CoreHeaders>,
    request_uri: String,
    interval: Duration,
    slots: [Option<Instant>; 3],
    dialog: Option<(String, u32)>,
    /// Its final response is sent once (see `respond_once`).
    quiet: bool,
}

impl Tx {
    fn slot(&mut self, s: Slot) -> &mut Option<Instant> {
        &mut self.slots[s as usize]
    }
}

/// All transactions of one endpoint.
#[derive(Debug, Default)]
pub struct TransactionLayer {
    timers: TimerValues,
    /// Boxed: the table grows by doubling, and moving half a kilobyte per
    /// transaction at each step (tens of thousands are kept for their
    /// 32 s of absorbing retransmissions at a thousand calls a second)
    /// stalled the switch for tens of milliseconds.
    txs: crate::ids::IdMap<TxId, Box<Tx>>,
    by_key: HashMap<Key, TxId>,
    /// (Call-ID, CSeq) of INVITE server transactions that sent a 2xx: the ACK
    /// for a 2xx carries a new branch, so it is matched by dialog.
    accepted: HashMap<(String, u32), TxId>,
    heap: BinaryHeap<Reverse<(Instant, TxId)>>,
    out: VecDeque<Output>,
    next_id: u64,
    /// New INVITE server transactions and their 100 Trying, sent by
    /// [`Self::send_trying`] unless the TU answered first.
    trying: Vec<(TxId, Bytes)>,
}

impl TransactionLayer {
    pub fn new(timers: TimerValues) -> Self {
        Self {
            timers,
            ..Default::default()
        }
    }

    /// Number of live transactions.
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Sends 100 Trying for each new INVITE the TU has not answered yet.
    /// The TU calls it at the end of the turn that took the requests (its
    /// ports bound and callers looked up): a TU that rang, answered or
    /// refused in the turn has already stopped the caller's
    /// retransmissions, and one that may take longer than 200 ms gets its
    /// 100 now (RFC 3261 §17.2.1). One message less per call answered at once.
    pub fn send_trying(&mut self) {
        for (id, trying) in std::mem::take(&mut self.trying) {
            let Some(tx) = self.txs.get_mut(&id) else {
                continue;
            };
            if tx.last.is_none() {
                tx.last = Some(trying.clone());
                let peer = tx.peer;
                self.send(peer, trying);
            }
        }
    }

    /// Earliest deadline of any transaction (may be a stale, harmless wake-up).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    fn alloc_id(&mut self) -> TxId {
        self.next_id += 1;
        TxId(self.next_id)
    }

    fn arm(&mut self, id: TxId, slot: Slot, at: Instant) {
        if let Some(tx) = self.txs.get_mut(&id) {
            *tx.slot(slot) = Some(at);
            self.heap.push(Reverse((at, id)));
        }
    }

    fn send(&mut self, peer: Peer, bytes: Bytes) {
        self.out
            .push_back(Output::Transmit(Transmit { peer, bytes }));
    }

    fn remove(&mut self, id: TxId) {
        if let Some(tx) = self.txs.remove(&id) {
            self.by_key.remove(&tx.key);
            if let Some(d) = tx.dialog {
                self.accepted.remove(&d);
            }
        }
    }

    /// Feeds a request that arrived from `peer`.
    pub fn handle_request(&mut self, now: Instant, peer: Peer, request: Request) {
        let is_ack = request.core.cseq_method == "ACK";
        let method = if is_ack {
            "INVITE".to_string()
        } else {
            request.core.cseq_method.clone()
        };
        let key = Key {
            branch: request.core.branch.clone(),
            sent_by: request.core.sent_by.clone(),
            method,
            cseq: request.core.cseq,
            server: true,
        };
        // RFC 2543 peers send no magic-cookie branch; matching on it would merge
        // unrelated requests, so such requests never match a transaction.
        let matchable = request.core.branch.starts_with("z9hG4bK");
        if matchable && let Some(&id) = self.by_key.get(&key) {
            self.handle_server_retransmission(now, id, is_ack);
            if !is_ack {
                return;
            }
            // An ACK with the INVITE's branch acknowledged a non-2xx: absorbed.
            let tx = &self.txs[&id];
            if tx.dialog.is_none() {
                return;
            }
        }
        if is_ack {
            let dialog = (request.core.call_id.clone(), request.core.cseq);
            if let Some(&id) = self.accepted.get(&dialog) {
                self.confirm(now, id);
            }
            self.out
                .push_back(Output::Event(TxEvent::Ack { peer, request }));
            return;
        }
        let id = self.alloc_id();
        let kind = if request.core.cseq_method == "INVITE" {
            Kind::ServerInvite
        } else {
            Kind::ServerNonInvite
        };
        let tx = Tx {
            kind,
            state: if kind == Kind::ServerInvite {
                State::Proceeding
            } else {
                State::Trying
            },
            key: key.clone(),
            peer,
            last: None,
            ack: None,
            request_core: None,
            request_uri: String::new(),
            interval: self.timers.t1,
            slots: [None; 3],
            dialog: None,
            quiet: false,
        };
        self.txs.insert(id, Box::new(tx));
        if matchable {
            self.by_key.insert(key, id);
        }
        if kind == Kind::ServerInvite {
            let trying = message::response(&request.core, 100, "Trying", None, &[], b"");
            self.trying.push((id, trying));
        }
        self.out.push_back(Output::Event(TxEvent::Request {
            tx: id,
            peer,
            request,
        }));
    }

    fn handle_server_retransmission(&mut self, now: Instant, id: TxId, is_ack: bool) {
        let Some(tx) = self.txs.get_mut(&id) else {
            return;
        };
        if is_ack {
            if tx.kind == Kind::ServerInvite && tx.state == State::Completed {
                self.confirm(now, id);
            }
            return;
        }
        // In Accepted the 2xx is retransmitted on Timer G only: answering each
        // INVITE copy too would echo with a peer that resends on each 2xx
        // (RFC 6026 §8.7 absorbs them).
        if matches!(tx.state, State::Proceeding | State::Completed)
            && !tx.quiet
            && let Some(last) = tx.last.clone()
        {
            let peer = tx.peer;
            self.send(peer, last);
        }
    }

    /// ACK received: stop retransmitting, linger for Timer I to absorb copies.
    fn confirm(&mut self, now: Instant, id: TxId) {
        let t4 = self.timers.t4;
        let Some(tx) = self.txs.get_mut(&id) else {
            return;
        };
        if !matches!(tx.state, State::Completed | State::Accepted) {
            return;
        }
        tx.state = State::Confirmed;
        *tx.slot(Slot::Retransmit) = None;
        *tx.slot(Slot::Timeout) = None;
        let linger = if tx.peer.transport.is_reliable() {
            Duration::ZERO
        } else {
            t4
        };
        self.arm(id, Slot::Linger, now + linger);
    }

    /// The TU answers a server transaction. `bytes` must be a response to its request.
    pub fn respond(&mut self, now: Instant, id: TxId, code: u16, bytes: Bytes, core: &CoreHeaders) {
        self.respond_sent(now, id, code, bytes, core, true);
    }

    /// [`Self::respond`], the response `sent` by this call or already
    /// (by the door, see [`crate::edge::door`]).
    fn respond_sent(
        &mut self,
        now: Instant,
        id: TxId,
        code: u16,
        bytes: Bytes,
        core: &CoreHeaders,
        sent: bool,
    ) {
        let t = self.timers;
        let Some(tx) = self.txs.get_mut(&id) else {
            return;
        };
        let reliable = tx.peer.transport.is_reliable();
        let peer = tx.peer;
        match (tx.kind, tx.state) {
            (_, State::Completed | State::Accepted | State::Confirmed) => {}
            (Kind::ServerInvite, _) => {
                tx.last = Some(bytes.clone());
                if sent {
                    self.send(peer, bytes);
                }
                if code < 200 {
                    return;
                }
                let tx = self.txs.get_mut(&id).expect("present");
                if code < 300 {
                    tx.state = State::Accepted;
                    let dialog = (core.call_id.clone(), core.cseq);
                    tx.dialog = Some(dialog.clone());
                    self.accepted.insert(dialog, id);
                } else {
                    tx.state = State::Completed;
                }
                if !reliable {
                    self.arm(id, Slot::Retransmit, now + t.t1);
                }
                self.arm(id, Slot::Timeout, now + 64 * t.t1);
            }
            (Kind::ServerNonInvite, _) => {
                tx.last = Some(bytes.clone());
                if sent {
                    self.send(peer, bytes);
                }
                let tx = self.txs.get_mut(&id).expect("present");
                if code < 200 {
                    tx.state = State::Proceeding;
                    return;
                }
                tx.state = State::Completed;
                let linger = if reliable { Duration::ZERO } else { 64 * t.t1 };
                self.arm(id, Slot::Linger, now + linger);
            }
            _ => {}
        }
    }

    /// Answers an INVITE server transaction with a final error sent once:
    /// no Timer G retransmissions, and copies of the INVITE are absorbed
    /// silently until Timer H ends the transaction (an overloaded hotline
    /// must not multiply its work for a peer that never ACKs).
    pub fn respond_once(
        &mut self,
        now: Instant,
        id: TxId,
        code: u16,
        bytes: Bytes,
        core: &CoreHeaders,
    ) {
        self.respond(now, id, code, bytes, core);
        self.quieten(id);
    }

    /// [`Self::respond_once`] for a final error already sent (by the
    /// door, [`crate::edge::door`]): kept as if sent here, so that the
    /// INVITE's copies are absorbed and its ACK taken.
    pub fn responded_once(
        &mut self,
        now: Instant,
        id: TxId,
        code: u16,
        bytes: Bytes,
        core: &CoreHeaders,
    ) {
        self.respond_sent(now, id, code, bytes, core, false);
        self.quieten(id);
    }

    /// A completed INVITE server transaction's error is not resent.
    fn quieten(&mut self, id: TxId) {
        if let Some(tx) = self.txs.get_mut(&id)
            && tx.kind == Kind::ServerInvite
            && tx.state == State::Completed
        {
            tx.quiet = true;
            *tx.slot(Slot::Retransmit) = None;
        }
    }

    /// Whether a server INVITE transaction can still take a final response.
    pub fn is_proceeding(&self, id: TxId) -> bool {
        self.txs
            .get(&id)
            .is_some_and(|tx| tx.kind == Kind::ServerInvite && tx.state == State::Proceeding)
    }

    /// The INVITE server transaction a CANCEL refers to (RFC 3261 §9.2).
    pub fn invite_for_cancel(&self, cancel: &CoreHeaders) -> Option<TxId> {
        let key = Key {
            branch: cancel.branch.clone(),
            sent_by: cancel.sent_by.clone(),
            method: "INVITE".into(),
            cseq: cancel.cseq,
            server: true,
        };
        self.by_key.get(&key).copied()
    }

    /// Starts a client transaction for `bytes`, a request built by the TU.
    pub fn send_request(&mut self, now: Instant, peer: Peer, bytes: Bytes) -> Option<TxId> {
        let message::Message::Request(request) = message::parse_datagram(&bytes).ok()? else {
            return None;
        };
        let t = self.timers;
        let id = self.alloc_id();
        let invite = request.core.cseq_method == "INVITE";
        let key = Key {
            branch: request.core.branch.clone(),
            sent_by: String::new(),
            method: request.core.cseq_method.clone(),
            cseq: request.core.cseq,
            server: false,
        };
        let tx = Tx {
            kind: if invite {
                Kind::ClientInvite
            } else {
                Kind::ClientNonInvite
            },
            state: if invite {
                State::Calling
            } else {
                State::Trying
            },
            key: key.clone(),
            peer,
            last: Some(bytes.clone()),
            ack: None,
            request_uri: request.uri.clone(),
            request_core: Some(request.core),
            interval: t.t1,
            slots: [None; 3],
            dialog: None,
            quiet: false,
        };
        self.txs.insert(id, Box::new(tx));
        self.by_key.insert(key, id);
        self.send(peer, bytes);
        if !peer.transport.is_reliable() {
            self.arm(id, Slot::Retransmit, now + t.t1);
        }
        self.arm(id, Slot::Timeout, now + 64 * t.t1);
        Some(id)
    }

    /// Feeds a response that arrived from the network.
    pub fn handle_response(&mut self, now: Instant, response: Response) {
        let key = Key {
            branch: response.core.branch.clone(),
            sent_by: String::new(),
            method: response.core.cseq_method.clone(),
            cseq: response.core.cseq,
            server: false,
        };
        let Some(&id) = self.by_key.get(&key) else {
            return; // stray response: dropped (RFC 3261 §18.1.2)
        };
        let t = self.timers;
        let code = response.code();
        let tx = self.txs.get_mut(&id).expect("indexed");
        let reliable = tx.peer.transport.is_reliable();
        let peer = tx.peer;
        match (tx.kind, tx.state) {
            (_, State::Completed) => {
                // A retransmitted final response: ACK it again (INVITE) or absorb it.
                if let Some(ack) = tx.ack.clone() {
                    self.send(peer, ack);
                }
                return;
            }
            (Kind::ClientInvite, State::Accepted) => {
                if (200..300).contains(&code) {
                    self.out
                        .push_back(Output::Event(TxEvent::Response { tx: id, response }));
                }
                return;
            }
            (Kind::ClientInvite, _) => {
                if code < 200 {
                    tx.state = State::Proceeding;
                    *tx.slot(Slot::Retransmit) = None;
                    *tx.slot(Slot::Timeout) = None;
                } else if code < 300 {
                    tx.state = State::Accepted;
                    *tx.slot(Slot::Retransmit) = None;
                    *tx.slot(Slot::Timeout) = None;
                    self.arm(id, Slot::Linger, now + 64 * t.t1);
                } else {
                    let ack = build_ack(tx, &response);
                    tx.ack = Some(ack.clone());
                    tx.state = State::Completed;
                    *tx.slot(Slot::Retransmit) = None;
                    *tx.slot(Slot::Timeout) = None;
                    self.send(peer, ack);
                    let linger = if reliable {
                        Duration::ZERO
                    } else {
                        Duration::from_secs(32)
                    };
                    self.arm(id, Slot::Linger, now + linger);
                }
            }
            (Kind::ClientNonInvite, _) => {
                if code < 200 {
                    tx.state = State::Proceeding;
                } else {
                    tx.state = State::Completed;
                    *tx.slot(Slot::Retransmit) = None;
                    *tx.slot(Slot::Timeout) = None;
                    let linger = if reliable { Duration::ZERO } else { t.t4 };
                    self.arm(id, Slot::Linger, now + linger);
                }
            }
            _ => return,
        }
        self.out
            .push_back(Output::Event(TxEvent::Response { tx: id, response }));
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, id))) = self.heap.peek().copied() {
            if at > now {
                break;
            }
            self.heap.pop();
            for slot in [Slot::Linger, Slot::Timeout, Slot::Retransmit] {
                let due = self
                    .txs
                    .get(&id)
                    .and_then(|tx| tx.slots[slot as usize])
                    .is_some_and(|d| d <= now);
                if due {
                    self.fire(now, id, slot);
                }
            }
        }
    }

    fn fire(&mut self, now: Instant, id: TxId, slot: Slot) {
        let t = self.timers;
        let Some(tx) = self.txs.get_mut(&id) else {
            return;
        };
        *tx.slot(slot) = None;
        match slot {
            Slot::Linger => self.remove(id),
            Slot::Timeout => {
                self.remove(id);
                self.out
                    .push_back(Output::Event(TxEvent::Timeout { tx: id }));
            }
            Slot::Retransmit => {
                let peer = tx.peer;
                let Some(bytes) = tx.last.clone() else {
                    return;
                };
                // A and G double without bound for INVITE requests; G, E cap at T2.
                let next = match (tx.kind, tx.state) {
                    (Kind::ClientInvite, State::Calling) => tx.interval * 2,
                    (Kind::ClientNonInvite, State::Proceeding) => t.t2,
                    _ => (tx.interval * 2).min(t.t2),
                };
                tx.interval = next;
                self.send(peer, bytes);
                self.arm(id, Slot::Retransmit, now + next);
            }
        }
    }
}

/// ACK for a non-2xx final response (RFC 3261 §17.1.1.3): same branch and
/// Request-URI as the INVITE, To from the response.
fn build_ack(tx: &Tx, response: &Response) -> Bytes {
    let core = tx.request_core.as_ref().expect("client tx has its request");
    let via = core.vias.first().map(String::as_str).unwrap_or_default();
    let text = format!(
        "ACK {} SIP/2.0\r\nVia: {via}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        tx.request_uri, core.from, response.core.to, core.call_id, core.cseq
    );
    Bytes::from(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{Message, parse_datagram};

    fn peer() -> Peer {
        Peer {
            transport: Transport::Udp,
            addr: "127.0.0.1:5061".parse().unwrap(),
        }
    }

    fn req(method: &str, branch: &str, cseq: u32) -> Request {
        let text = format!(
            "{method} sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch={branch}\r\nFrom: <sip:a@127.0.0.1>;tag=f\r\nTo: <sip:100@127.0.0.1>\r\nCall-ID: tx-test\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n"
        );
        match parse_datagram(text.as_bytes()).unwrap() {
            Message::Request(r) => r,
            _ => unreachable!(),
        }
    }

    fn resp(method: &str, branch: &str, code: u16) -> Response {
        let text = format!(
            "SIP/2.0 {code} X\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}\r\nFrom: <sip:a@127.0.0.1>;tag=f\r\nTo: <sip:100@127.0.0.1>;tag=t\r\nCall-ID: tx-test\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
        );
        match parse_datagram(text.as_bytes()).unwrap() {
            Message::Response(r) => r,
            _ => unreachable!(),
        }
    }

    /// Drains outputs: (transmissions, events).
    fn drain(layer: &mut TransactionLayer) -> (Vec<Bytes>, Vec<TxEvent>) {
        let mut sent = Vec::new();
        let mut events = Vec::new();
        while let Some(o) = layer.poll_output() {
            match o {
                Output::Transmit(t) => sent.push(t.bytes),
                Output::Event(e) => events.push(e),
            }
        }
        (sent, events)
    }

    fn first_line(b: &Bytes) -> String {
        String::from_utf8_lossy(b)
            .lines()
            .next()
            .unwrap()
            .to_string()
    }

    /// Steps the fake clock in 10 ms increments up to `until`, recording the
    /// offsets (ms from `start`) at which something was transmitted.
    fn run_clock(
        layer: &mut TransactionLayer,
        start: Instant,
        until: Duration,
    ) -> (Vec<u128>, Vec<TxEvent>) {
        let mut sends = Vec::new();
        let mut events = Vec::new();
        let mut now = start;
        while now - start <= until {
            layer.handle_timeout(now);
            let (s, e) = drain(layer);
            sends.extend(s.iter().map(|_| (now - start).as_millis()));
            events.extend(e);
            now += Duration::from_millis(10);
        }
        (sends, events)
    }

    fn accepted_invite(layer: &mut TransactionLayer, now: Instant, code: u16) -> TxId {
        let r = req("INVITE", "z9hG4bK-inv", 1);
        let core = r.core.clone();
        layer.handle_request(now, peer(), r);
        layer.send_trying();
        let (sent, events) = drain(layer);
        assert_eq!(first_line(&sent[0]), "SIP/2.0 100 Trying");
        let TxEvent::Request { tx, .. } = events[0] else {
            panic!()
        };
        let bytes = message::response(&core, code, "Final", Some("t"), &[], b"");
        layer.respond(now, tx, code, bytes, &core);
        assert_eq!(drain(layer).0.len(), 1);
        tx
    }

    #[test]
    fn an_invite_rung_at_once_gets_no_100_and_its_copy_hears_the_180() {
        let mut layer = TransactionLayer::new(TimerValues::default());
        let now = Instant::now();
        let r = req("INVITE", "z9hG4bK-rung", 1);
        let core = r.core.clone();
        layer.handle_request(now, peer(), r);
        let (sent, events) = drain(&mut layer);
        assert!(sent.is_empty(), "nothing before the TU has seen it");
        let TxEvent::Request { tx, .. } = events[0] else {
            panic!()
        };
        let ringing = message::response(&core, 180, "Ringing", Some("t"), &[], b"");
        layer.respond(now, tx, 180, ringing, &core);
        layer.send_trying();
        let (sent, _) = drain(&mut layer);
        assert_eq!(
            sent.iter().map(first_line).collect::<Vec<_>>(),
            ["SIP/2.0 180 Ringing"]
        );
        // The caller's retransmission is answered with the 180, not a 100.
        layer.handle_request(now, peer(), req("INVITE", "z9hG4bK-rung", 1));
        layer.send_trying();
        let (sent, events) = drain(&mut layer);
        assert!(events.is_empty(), "a copy is not a new request");
        assert_eq!(
            sent.iter().map(first_line).collect::<Vec<_>>(),
            ["SIP/2.0 180 Ringing"]
        );
    }

    #[test]
    fn final_response_retransmitted_on_timer_g_schedule() {
        let mut layer = TransactionLayer::new(TimerValues::default());
        let start = Instant::now();
        accepted_invite(&mut layer, start, 486);
        let (sends, _) = run_clock(&mut layer, start, Duration::from_millis(20_000));
        // 500 ms, then 1 s, 2 s, 4 s, 4 s ... after the previous one.
        assert_eq!(&sends[..6], &[500, 1500, 3500, 7500, 11500, 15500]);
    }

    #[test]
    fn timer_h_fires_at_32_s_without_ack() {
        let mut layer = TransactionLayer::new(TimerValues::default());
        let start = Instant::now();
        let tx = accepted_invite(&mut layer, start, 200);
        let (_, events) = run_clock(&mut layer, start, Duration::from_millis(31_990));
        assert!(events.is_empty());
        let (_, events) = run_clock(&mut layer, start, Duration::from_millis(32_000));
        assert!(matches!(events[..], [TxEvent::Timeout { tx: t }] if t == tx));
        assert!(layer.is_empty());
    }

    #[test]
    fn ack_for_2xx_stops_retransmissions_and_reaches_tu() {
        let mut layer = TransactionLayer::new(TimerValues::default());
        let start = Instant::now();
        accepted_invite(&mut layer, start, 200);
        let later = start + Duration::from_millis(700);
        layer.handle_timeout(later);
        assert_eq!(drain(&mut layer).0.len(), 1); // one retransmission at 500 ms
        layer.handle_request(later, peer(), req("ACK", "z9hG4bK-ack", 1));
        let (_, events) = drain(&mut layer);
        assert!(matches!(events[..], [TxEvent::Ack { .. }]));
        let (sends, events) = run_clock(&mut layer, later, Duration::from_secs(40));
        assert!(sends.is_empty() && events.is_empty());
        assert!(layer.is_empty(), "Timer I removed it");
    }

    #[test]
    fn retransmitted_invite_gets_last_response_not_a_new_event() {
        let mut layer = TransactionLayer::new(TimerValues::default());
        let now = Instant::now();
        accepted_invite(&mut layer, now, 180);
        layer.handle_request(now, peer(), req("INVITE", "z9hG4bK-inv", 1));
        let (sent, events) = drain(&mut layer);
        assert!(events.is_empty());
        assert_eq!(first_line(&sent[0]), "SIP/2.0 180 Final");
    }

    #[test]
    fn timer_j_absorbs_retransmitted_bye() {
        let mut layer = TransactionLayer::new(TimerValues::default());
        let now = Instant::now();
        let bye = req("BYE", "z9hG4bK-bye", 2);
        let core = bye.core.clone();
        layer.handle_request(now, peer(), bye);
        let (_, events) = drain(&mut layer);
        let TxEvent::Request { tx, .. } = events[0] else {
            panic!()
        };
        layer.respond(
            now,
            tx,
            200,
            message::response(&core, 200, "OK", None, &[], b""),
            &core,
        );
        drain(&mut layer);
        for s in [1, 10, 31] {
            let at = now + Duration::from_secs(s);
            layer.handle_timeout(at);
            layer.handle_request(at, peer(), req("BYE", "z9hG4bK-bye", 2));
            let (sent, events) = drain(&mut layer);
            assert!(events.is_empty(), "retransmitted BYE is not a new request");
            assert_eq!(first_line(&sent[0]), "SIP/2.0 200 OK");
        }
        layer.handle_timeout(now + Duration::from_secs(32));
        assert!(layer.is_empty(), "Timer J expired");
    }

    fn client_request(method: &str, branch: &str) -> Bytes {
        Bytes::from(format!(
            "{method} sip:b@127.0.0.1:5061 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}\r\nFrom: <sip:100@127.0.0.1>;tag=f\r\nTo: <sip:b@127.0.0.1>\r\nCall-ID: tx-test\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        ))
    }

    #[test]
    fn client_invite_timer_a_doubles_and_timer_b_times_out() {
        let mut layer = TransactionLayer::new(TimerValues::default());
        let start = Instant::now();
        let tx = layer
            .send_request(start, peer(), client_request("INVITE", "z9hG4bK-ci"))
            .unwrap();
        drain(&mut layer);
        let (sends, events) = run_clock(&mut layer, start, Duration::from_secs(33));
        assert_eq!(sends, vec![500, 1500, 3500, 7500, 15500, 31500]);
        assert!(matches!(events[..], [TxEvent::Timeout { tx: t }] if t == tx));
    }

    #[test]
    fn client_invite_acks_error_response_and_absorbs_copies_for_timer_d() {
        let mut layer = TransactionLayer::new(TimerValues::default());
        let now = Instant::now();
        layer.send_request(now, peer(), client_request("INVITE", "z9hG4bK-c2"));
        drain(&mut layer);
        layer.handle_response(now, resp("INVITE", "z9hG4bK-c2", 486));
        let (sent, events) = drain(&mut layer);
        assert!(first_line(&sent[0]).starts_with("ACK "));
        assert!(String::from_utf8_lossy(&sent[0]).contains(";tag=t"));
        assert!(matches!(events[..], [TxEvent::Response { .. }]));
        layer.handle_response(now, resp("INVITE", "z9hG4bK-c2", 486));
        let (sent, events) = drain(&mut layer);
        assert_eq!(sent.len(), 1, "ACK again");
        assert!(events.is_empty(), "TU told once");
        layer.handle_timeout(now + Duration::from_secs(32));
        assert!(layer.is_empty());
    }

    #[test]
    fn client_non_invite_timer_e_caps_at_t2_and_timer_f_times_out() {
        let mut layer = TransactionLayer::new(TimerValues::default());
        let start = Instant::now();
        layer.send_request(start, peer(), client_request("BYE", "z9hG4bK-cb"));
        drain(&mut layer);
        let (sends, events) = run_clock(&mut layer, start, Duration::from_secs(33));
        assert_eq!(&sends[..6], &[500, 1500, 3500, 7500, 11500, 15500]);
        assert_eq!(events.len(), 1);
    }

    #[test]
    fn client_non_invite_timer_k_absorbs_response_copies() {
        let mut layer = TransactionLayer::new(TimerValues::default());
        let now = Instant::now();
        layer.send_request(now, peer(), client_request("BYE", "z9hG4bK-k"));
        drain(&mut layer);
        layer.handle_response(now, resp("BYE", "z9hG4bK-k", 200));
        assert_eq!(drain(&mut layer).1.len(), 1);
        layer.handle_response(now, resp("BYE", "z9hG4bK-k", 200));
        assert!(drain(&mut layer).1.is_empty());
        layer.handle_timeout(now + Duration::from_secs(5));
        assert!(layer.is_empty());
    }
}

#[cfg(test)]
mod branch_reuse {
    use super::*;
    use crate::sip::message::{Message, parse_datagram};

    #[test]
    fn new_request_reusing_a_branch_is_not_a_retransmission() {
        let mut layer = TransactionLayer::new(TimerValues::default());
        let peer = Peer {
            transport: Transport::Udp,
            addr: "127.0.0.1:5061".parse().unwrap(),
        };
        let mut events = 0;
        for cseq in [2, 3] {
            let text = format!(
                "INFO sip:h@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-same\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:h@x>;tag=2\r\nCall-ID: reuse\r\nCSeq: {cseq} INFO\r\nContent-Length: 0\r\n\r\n"
            );
            let Ok(Message::Request(r)) = parse_datagram(text.as_bytes()) else {
                panic!()
            };
            layer.handle_request(Instant::now(), peer, r);
            while let Some(o) = layer.poll_output() {
                events += matches!(o, Output::Event(TxEvent::Request { .. })) as u32;
            }
        }
        assert_eq!(events, 2);
    }
}
