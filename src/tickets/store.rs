//! One event store, two back ends: the embedded SQLite file (the default,
//! no server) and PostgreSQL (when a site outgrows one machine), chosen by
//! the `[tickets] store` setting.
//!
//! Both keep the same promises, checked by one test suite run against each
//! (`tests/store.rs`):
//! * an append is answered only once its events are durable (committed and
//!   flushed), never before;
//! * events get consecutive ids in the order they were queued, and a
//!   `TicketOpened` without a ticket gets the next ticket number;
//! * several processes (the hotline, the `hotline tickets` CLI) may append to
//!   one store: ids and ticket numbers are read under the store's write lock,
//!   so a reader that follows `id > last` never skips an event committed late.
//!
//! Both write through one thread of their own, fed by a channel: appenders
//! queue and wait, the thread takes everything queued and writes it in one
//! transaction (group commit), so one flush serves many appenders.

use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use super::StoreError;
use super::event::{Actor, Event, EventId, EventKind, NewEvent, TicketId};
use super::postgres::PostgresStore;
use super::sqlite::SqliteStore;

/// What resolves once queued events are durable.
pub type Ack = oneshot::Receiver<Result<Vec<Event>, StoreError>>;

pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl Store {
    /// Opens (creating and migrating if needed) the store at `location`: a
    /// `postgres://` or `postgresql://` URL, or the path of a SQLite file
    /// (optionally written `sqlite:PATH`).
    pub fn open(location: &str) -> Result<Self, StoreError> {
        Self::open_fenced(location, None)
    }

    /// [`Self::open`] for a node of a cluster: every append checks, in its
    /// transaction, that `fence` holds the lease's current term, and
    /// writes nothing when it does not (PostgreSQL only: a cluster shares
    /// one PostgreSQL store).
    pub fn open_fenced(
        location: &str,
        fence: Option<crate::cluster::Fence>,
    ) -> Result<Self, StoreError> {
        match (Location::parse(location)?, fence) {
            (Location::Sqlite(path), None) => Ok(Store::Sqlite(SqliteStore::open(path.as_ref())?)),
            (Location::Sqlite(_), Some(_)) => Err(StoreError::BadLocation(
                "a cluster's nodes share a postgres:// store, not a SQLite file".into(),
            )),
            (Location::Postgres(url), fence) => {
                Ok(Store::Postgres(PostgresStore::open(url, fence)?))
            }
        }
    }

    fn writer(&self) -> &Writer {
        match self {
            Store::Sqlite(s) => &s.writer,
            Store::Postgres(s) => &s.writer,
        }
    }

    /// Queues `events` now (so the order of calls is the order in the log)
    /// and returns what resolves once they are durable.
    pub fn enqueue(&self, events: Vec<NewEvent>) -> Result<Ack, StoreError> {
        self.writer().enqueue(events)
    }

    /// Appends `events` in order; nobody waits for them (a call's events,
    /// one after another from the switch): no reply channel and no wake-up
    /// of the appender when they are durable. The writer logs a failure.
    pub fn record(&self, events: Vec<NewEvent>) -> Result<(), StoreError> {
        self.writer().send(events, None)
    }

    /// Appends `events` in order and returns them as stored, once durable.
    pub async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<Event>, StoreError> {
        self.enqueue(events)?
            .await
            .map_err(|_| StoreError::Closed)?
    }

    /// [`Self::append`] for plain threads; panics on a tokio worker, which
    /// must never block.
    pub fn append_blocking(&self, events: Vec<NewEvent>) -> Result<Vec<Event>, StoreError> {
        self.enqueue(events)?
            .blocking_recv()
            .map_err(|_| StoreError::Closed)?
    }

    /// Events with an id above `after`, in order, at most `limit`.
    pub async fn events_after(
        &self,
        after: EventId,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        match self {
            Store::Sqlite(s) => s.events_after(after, limit),
            Store::Postgres(s) => s.events_after(after, limit).await,
        }
    }

    /// Every event of one ticket, in order.
    pub async fn ticket_events(&self, ticket: TicketId) -> Result<Vec<Event>, StoreError> {
        match self {
            Store::Sqlite(s) => s.ticket_events(ticket),
            Store::Postgres(s) => s.ticket_events(ticket).await,
        }
    }

    /// The call (SIP Call-ID) whose conversation was recorded to `file`.
    pub async fn call_of_recording(&self, file: &str) -> Result<Option<String>, StoreError> {
        match self {
            Store::Sqlite(s) => s.call_of_recording(file),
            Store::Postgres(s) => s.call_of_recording(file).await,
        }
    }

    /// Every event of one call (its SIP Call-ID), in order.
    pub async fn call_events(&self, call: &str) -> Result<Vec<Event>, StoreError> {
        match self {
            Store::Sqlite(s) => s.call_events(call),
            Store::Postgres(s) => s.call_events(call).await,
        }
    }

    /// Every event that happened in `[from_ms, to_ms)`, in log order.
    pub async fn events_between(&self, from_ms: i64, to_ms: i64) -> Result<Vec<Event>, StoreError> {
        match self {
            Store::Sqlite(s) => s.events_between(from_ms, to_ms),
            Store::Postgres(s) => s.events_between(from_ms, to_ms).await,
        }
    }

    /// Every event of the calls that started in `[from_ms, to_ms)` and of
    /// the tickets they opened, in log order.
    pub async fn calls_between(&self, from_ms: i64, to_ms: i64) -> Result<Vec<Event>, StoreError> {
        match self {
            Store::Sqlite(s) => s.calls_between(from_ms, to_ms),
            Store::Postgres(s) => s.calls_between(from_ms, to_ms).await,
        }
    }

    /// Every event, in order (replay).
    pub async fn all_events(&self) -> Result<Vec<Event>, StoreError> {
        self.events_after(EventId(0), i64::MAX as usize).await
    }

    pub async fn last_id(&self) -> Result<Option<EventId>, StoreError> {
        match self {
            Store::Sqlite(s) => s.last_id(),
            Store::Postgres(s) => s.last_id().await,
        }
    }
}

impl std::fmt::Display for Store {
    /// Where the store is, for logs (a PostgreSQL password is not shown).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Store::Sqlite(s) => write!(f, "sqlite:{}", s.path().display()),
            Store::Postgres(s) => write!(f, "{}", s.describe()),
        }
    }
}

/// The parsed `[tickets] store` setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location<'a> {
    Sqlite(&'a str),
    Postgres(&'a str),
}

impl<'a> Location<'a> {
    pub fn parse(location: &'a str) -> Result<Self, StoreError> {
        if location.starts_with("postgres://") || location.starts_with("postgresql://") {
            let (url, _) = super::postgres::tls_options(location).map_err(|e| {
                StoreError::BadLocation(format!("{}: {e}", hide_password(location)))
            })?;
            url.parse::<tokio_postgres::Config>().map_err(|e| {
                StoreError::BadLocation(format!("{}: {e}", hide_password(location)))
            })?;
            return Ok(Location::Postgres(location));
        }
        let path = location.strip_prefix("sqlite:").unwrap_or(location);
        if path.is_empty() {
            return Err(StoreError::BadLocation(
                "empty: give a SQLite file path or a postgres:// URL".into(),
            ));
        }
        if let Some((scheme, _)) = path.split_once("://") {
            return Err(StoreError::BadLocation(format!(
                "{scheme}:// is not a store this hotline knows: give a SQLite file path or a postgres:// URL"
            )));
        }
        Ok(Location::Sqlite(path))
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn hide_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

// ---- the writer front, shared by both back ends ----------------------------

/// One event ready for the writer: actor and body already serialised by the
/// appender, so that the one writer thread only writes.
pub(super) struct Serialised {
    pub event: NewEvent,
    pub actor: String,
    pub body: String,
}

pub(super) struct Request {
    events: Vec<Serialised>,
    /// None: nobody waits (the writer logs a failure itself).
    reply: Option<Reply>,
}

/// Most events written in one transaction.
const MAX_BATCH: usize = 4096;

/// The appenders' side of a back end's writer thread.
pub(super) struct Writer {
    /// `Option` so that drop can close the channel before joining the thread.
    tx: Option<mpsc::UnboundedSender<Request>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts the writer thread; `run` owns the receiving end and returns
    /// when the channel is closed and drained.
    pub fn spawn(
        name: &str,
        run: impl FnOnce(mpsc::UnboundedReceiver<Request>) + Send + 'static,
    ) -> Result<Self, StoreError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || run(rx))
            .map_err(|e| StoreError::Io(e.to_string()))?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    fn enqueue(&self, events: Vec<NewEvent>) -> Result<Ack, StoreError> {
        let (reply, ack) = oneshot::channel();
        self.send(events, Some(reply))?;
        Ok(ack)
    }

    fn send(&self, events: Vec<NewEvent>, reply: Option<Reply>) -> Result<(), StoreError> {
        let events = events
            .into_iter()
            .map(|event| Serialised {
                actor: serde_json::to_string(&event.actor).expect("actor serialises"),
                body: serde_json::to_string(&event.kind).expect("event serialises"),
                event,
            })
            .collect();
        self.tx
            .as_ref()
            .ok_or(StoreError::Closed)?
            .send(Request { events, reply })
            .map_err(|_| StoreError::Closed)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the channel ends the writer after the requests already queued.
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

type Reply = oneshot::Sender<Result<Vec<Event>, StoreError>>;

/// The appenders of one batch, each with its number of events and, when
/// it waits, its reply.
pub(super) struct Replies(Vec<(usize, Option<Reply>)>);

impl Replies {
    /// Answers each appender with its own events, or everyone with the error.
    pub fn answer(self, result: Result<Vec<Event>, StoreError>) {
        match result {
            Ok(stored) => {
                let mut stored = stored.into_iter();
                for (n, reply) in self.0 {
                    let mine = stored.by_ref().take(n);
                    match reply {
                        Some(reply) => {
                            let _ = reply.send(Ok(mine.collect()));
                        }
                        None => mine.for_each(drop),
                    }
                }
            }
            Err(e) => {
                for (n, reply) in self.0 {
                    match reply {
                        Some(reply) => {
                            let _ = reply.send(Err(e.clone()));
                        }
                        None => tracing::error!(events = n, error = %e, "call events not written"),
                    }
                }
            }
        }
    }
}

/// `first` and whatever else is queued now, up to [`MAX_BATCH`] events: the
/// events in order and who waits for them.
pub(super) fn gather(
    first: Request,
    rx: &mut mpsc::UnboundedReceiver<Request>,
) -> (Vec<Serialised>, Replies) {
    let mut events = Vec::new();
    let mut replies = Vec::new();
    let mut next = Some(first);
    while let Some(r) = next {
        replies.push((r.events.len(), r.reply));
        events.extend(r.events);
        next = if events.len() < MAX_BATCH {
            rx.try_recv().ok()
        } else {
            None
        };
    }
    (events, Replies(replies))
}

/// The next event id and the next ticket number (tickets have their own
/// sequence: their numbers are read out to callers, so they must be short
/// and consecutive). Read inside each write transaction, under the write
/// lock, because another process may have appended since.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sequences {
    pub event: u64,
    pub ticket: u64,
}

impl Sequences {
    /// Numbers one event.
    pub fn assign(&mut self, e: NewEvent) -> Event {
        let id = EventId(self.event);
        self.event += 1;
        let ticket = match (&e.kind, e.ticket) {
            (EventKind::TicketOpened { .. }, None) => {
                self.ticket += 1;
                Some(TicketId(self.ticket - 1))
            }
            (_, t) => t,
        };
        Event {
            id,
            ticket,
            call: e.call,
            at_ms: e.at_ms,
            actor: e.actor,
            kind: e.kind,
        }
    }
}

/// A stored row: id, ticket, call, at_ms, actor JSON, body JSON.
pub(super) type RawRow = (i64, Option<i64>, Option<String>, i64, String, String);

pub(super) fn decode((id, ticket, call, at_ms, actor, body): RawRow) -> Result<Event, StoreError> {
    let corrupt = |e: serde_json::Error| StoreError::Corrupt {
        id: id as u64,
        reason: e.to_string(),
    };
    Ok(Event {
        id: EventId(id as u64),
        ticket: ticket.map(|t| TicketId(t as u64)),
        call,
        at_ms,
        actor: serde_json::from_str::<Actor>(&actor).map_err(corrupt)?,
        kind: serde_json::from_str::<EventKind>(&body).map_err(corrupt)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        assert_eq!(Location::parse("a.db"), Ok(Location::Sqlite("a.db")));
        assert_eq!(
            Location::parse("sqlite:/var/lib/hotline/events.db"),
            Ok(Location::Sqlite("/var/lib/hotline/events.db"))
        );
        let url = "postgres://hotline:pw@127.0.0.1:5432/hotline";
        assert_eq!(Location::parse(url), Ok(Location::Postgres(url)));
        assert!(Location::parse("").is_err());
        assert!(Location::parse("sqlite:").is_err());
        let err = Location::parse("mysql://x@y/z").unwrap_err().to_string();
        assert!(err.contains("mysql://"), "{err}");
        let err = Location::parse("postgres://u:secret@h:notaport/db")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("secret"), "password shown: {err}");
    }

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            hide_password("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(hide_password("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(hide_password("postgres://h/db"), "postgres://h/db");
    }
}
