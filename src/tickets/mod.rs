//! Tickets: every call and work order as an append-only event log, the
//! ticket state derived from it, and the SLA timers that watch it.
//!
//! * `event`: the events (past tense, Unix-ms timestamps passed in);
//! * `store`: the store, either back end, and what both promise;
//! * `sqlite`: the embedded back end (WAL, one writer thread, group commit);
//! * `postgres`: the same log in PostgreSQL, for sites beyond one machine;
//! * `projection`: ticket state folded from events, replayable;
//! * `sla`: sans-IO warning/breach timers, rebuilt from the log on restart;
//! * `handlers`: the agent handling each owner's open tickets;
//! * `rota`, `oncall`: who is on duty when, and the chain that calls them
//!   for an emergency until someone accepts.

pub mod callback;
pub mod desks;
pub mod dispatch;
pub mod event;
pub mod group;
pub mod handlers;
pub mod history;
pub mod oncall;
pub mod postgres;
pub mod projection;
pub mod query;
pub mod return_visit;
pub mod rota;
pub mod sla;
pub mod sqlite;
pub mod store;
pub mod unfinished;
pub mod webhook;

pub use event::{Actor, Department, Event, EventId, EventKind, NewEvent, Severity, TicketId};
pub use projection::{Status, Ticket, Tickets};
pub use store::Store;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("event store: {0}")]
    Sqlite(String),
    #[error("event store: {0}")]
    Io(String),
    #[error("event store (PostgreSQL): {0}")]
    Postgres(String),
    #[error("event store location {0}")]
    BadLocation(String),
    #[error("event store is closed")]
    Closed,
    #[error("event {id} cannot be read: {reason}")]
    Corrupt { id: u64, reason: String },
    #[error("event store schema version {found} is newer than this hotline knows ({known})")]
    SchemaTooNew { found: i64, known: i64 },
    #[error("event store: {0}")]
    Invalid(String),
    /// This node's fencing term is not the lease's: another node took over
    /// (or this one never held the lease). Nothing was written.
    #[error(
        "event store: fenced (this node's term {held}, the lease's {current}): another node is active"
    )]
    Fenced { held: i64, current: i64 },
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(e.to_string())
    }
}

#[cfg(test)]
mod tests;
