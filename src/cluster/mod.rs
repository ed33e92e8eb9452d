//! No single point of failure: two (or more) hotline nodes share one
//! PostgreSQL store; one holds a lease and is active, the others are
//! standby. Kamailio in front (`deploy/kamailio/`) sends calls to whichever
//! node answers its OPTIONS probe with 200: the active one.
//!
//! # The lease: a row with an expiry, not an advisory lock
//! A session advisory lock is held for as long as its connection lives,
//! and a frozen process (SIGSTOP, a VM paused, a long GC-like stall) keeps
//! its TCP connection open: the lock would never pass to the standby while
//! the frozen node answers nothing. A lease row (`cluster_lease`: holder,
//! term, expiry on the *database's* clock) runs out on its own: the active
//! node renews it every second; a standby takes it once it has expired,
//! raising the term. No clock of ours is compared with another machine's.
//!
//! # Fencing
//! The term rises with every takeover. Every append transaction reads the
//! lease row `FOR SHARE` (under the events table's write lock) and refuses
//! to write when the term is not the one this node holds ([`Fence`]). A
//! takeover updates that row, so it waits for any append in flight, and
//! every append after it sees the new term: a node that lost the lease —
//! frozen, or cut off from the database and back — cannot write one more
//! event once another node took over. It notices at its next renewal (or
//! when its own lease deadline passes, whichever is first: see
//! [`lease::Lease`]) and steps down to standby.
//!
//! # Takeover
//! Becoming active is starting as after a restart: the new active node
//! ends the calls the old one left (`tickets::unfinished`: `node_failed`),
//! restores the agents' UDP registrations and states from the log
//! (`tickets::desks`), runs the queue figures on from the log's
//! (`report::seed`), serves, and replays the log in the background
//! (tickets, SLA timers, webhooks, return visits, callbacks, the on-call
//! chain, each fed from the log and each acting once). What SIP waits for
//! needs the log's last day; a standby follows it ([`follow`]: the day
//! kept, the new events read every second), so a takeover reads only the
//! last second's, however busy the day was (360,000 events: 0.12 s from
//! the lease to serving, against 1.3–1.7 s reading the day then). The
//! whole replay is what a restart does, and SIP does not wait for it. A
//! node that steps down ends its calls (they are lost with the lease) and
//! serves as standby again, following the log again.

pub mod follow;
pub mod lease;
pub mod node;
pub mod pg;
pub mod standby;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

pub use lease::Role;

/// The fencing term this process holds the lease with (0: none, a standby:
/// every append is refused). Shared by the lease task, which sets it, and
/// the store's writer, which checks it inside each append.
#[derive(Debug, Clone, Default)]
pub struct Fence(Arc<AtomicI64>);

impl Fence {
    pub fn term(&self) -> i64 {
        self.0.load(Ordering::Acquire)
    }

    pub fn set(&self, term: i64) {
        self.0.store(term, Ordering::Release)
    }
}

/// `[cluster]` as the node runs with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// This node's name (`a`, `b`, ...): unique in the cluster.
    pub node: String,
    /// The shared PostgreSQL store's URL.
    pub url: String,
    pub lease: std::time::Duration,
    /// How often the lease is renewed (active) or tried for (standby).
    pub every: std::time::Duration,
}
