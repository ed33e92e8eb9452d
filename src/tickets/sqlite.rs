//! The embedded event store: SQLite in WAL mode, one writer thread with
//! group commit.
//!
//! Appenders hand their events to the writer over a channel and wait. The
//! writer takes every request queued at that moment, writes them all in one
//! transaction and commits with `synchronous = FULL` (the WAL is fsynced at
//! commit), and only then answers each appender: an event is durable before
//! anyone is told it was written. One fsync serves the whole batch, so the
//! rate grows with the number of concurrent appenders.
//!
//! Reads open their own connection: WAL readers never block the writer and
//! need no lock shared with it. Other processes may append to the same file
//! (SQLite's write lock orders them); ids are read under that lock.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;
use super::event::{Actor, Event, EventId, EventKind, NewEvent, TicketId};

/// Versioned schema files, applied in order; `PRAGMA user_version` records
/// how many ran.
const MIGRATIONS: [&str; 1] = [include_str!("../../migrations/sqlite/0001_events.sql")];

/// Most events written in one transaction.
const MAX_BATCH: usize = 4096;

enum Reply {
    Blocking(mpsc::SyncSender<Result<Vec<Event>, StoreError>>),
    Async(tokio::sync::oneshot::Sender<Result<Vec<Event>, StoreError>>),
}

struct Request {
    /// Each event with its actor and body already serialised by the
    /// appender, so that the one writer thread only writes.
    events: Vec<(NewEvent, String, String)>,
    reply: Reply,
}

fn serialise(events: Vec<NewEvent>) -> Vec<(NewEvent, String, String)> {
    events
        .into_iter()
        .map(|e| {
            let actor = serde_json::to_string(&e.actor).expect("actor serialises");
            let body = serde_json::to_string(&e.kind).expect("event serialises");
            (e, actor, body)
        })
        .collect()
}

pub struct SqliteStore {
    path: PathBuf,
    /// `Option` so that drop can close the channel before joining the writer.
    tx: Option<mpsc::Sender<Request>>,
    writer: Option<JoinHandle<()>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path` and migrates it.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        migrate(&mut conn)?;
        // Other processes (the CLI) may write too: wait for their lock.
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let (tx, rx) = mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("event-writer".into())
            .spawn(move || write_loop(conn, rx))
            .map_err(|e| StoreError::Io(e.to_string()))?;
        Ok(Self {
            path: path.to_path_buf(),
            tx: Some(tx),
            writer: Some(writer),
        })
    }

    /// Appends `events` in order and returns them as stored, once durable.
    /// Blocks the calling thread: not for tokio workers (use [`Self::append`]).
    pub fn append_blocking(&self, events: Vec<NewEvent>) -> Result<Vec<Event>, StoreError> {
        let (reply, wait) = mpsc::sync_channel(1);
        self.send(Request {
            events: serialise(events),
            reply: Reply::Blocking(reply),
        })?;
        wait.recv().map_err(|_| StoreError::Closed)?
    }

    /// Queues `events` now (so the order of calls is the order in the log)
    /// and returns what resolves once they are durable.
    pub fn enqueue(
        &self,
        events: Vec<NewEvent>,
    ) -> Result<tokio::sync::oneshot::Receiver<Result<Vec<Event>, StoreError>>, StoreError> {
        let (reply, wait) = tokio::sync::oneshot::channel();
        self.send(Request {
            events: serialise(events),
            reply: Reply::Async(reply),
        })?;
        Ok(wait)
    }

    /// Appends `events` in order and returns them as stored, once durable.
    pub async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<Event>, StoreError> {
        let (reply, wait) = tokio::sync::oneshot::channel();
        self.send(Request {
            events: serialise(events),
            reply: Reply::Async(reply),
        })?;
        wait.await.map_err(|_| StoreError::Closed)?
    }

    fn send(&self, request: Request) -> Result<(), StoreError> {
        self.tx
            .as_ref()
            .ok_or(StoreError::Closed)?
            .send(request)
            .map_err(|_| StoreError::Closed)
    }

    fn reader(&self) -> Result<Connection, StoreError> {
        Ok(Connection::open_with_flags(
            &self.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )?)
    }

    /// Events with an id above `after`, in order, at most `limit`.
    pub fn events_after(&self, after: EventId, limit: usize) -> Result<Vec<Event>, StoreError> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare_cached(
            "SELECT id, ticket, call, at_ms, actor, body FROM events WHERE id > ?1 ORDER BY id LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![after.0 as i64, limit as i64], raw_row)?;
        rows.map(|r| decode(r?)).collect()
    }

    /// Every event of one ticket, in order.
    pub fn ticket_events(&self, ticket: TicketId) -> Result<Vec<Event>, StoreError> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare_cached(
            "SELECT id, ticket, call, at_ms, actor, body FROM events WHERE ticket = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map(params![ticket.0 as i64], raw_row)?;
        rows.map(|r| decode(r?)).collect()
    }

    /// Every event, in order (replay).
    pub fn all_events(&self) -> Result<Vec<Event>, StoreError> {
        self.events_after(EventId(0), usize::MAX >> 1)
    }

    pub fn last_id(&self) -> Result<Option<EventId>, StoreError> {
        let conn = self.reader()?;
        let id: Option<i64> = conn
            .query_row("SELECT MAX(id) FROM events", [], |r| r.get(0))
            .optional()?
            .flatten();
        Ok(id.map(|i| EventId(i as u64)))
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Closing the channel ends the writer after the requests already queued.
        self.tx.take();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version as usize > MIGRATIONS.len() {
        return Err(StoreError::SchemaTooNew {
            found: version,
            known: MIGRATIONS.len() as i64,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

/// The next event id and the next ticket number (tickets have their own
/// sequence: their numbers are read out to callers, so they must be short
/// and consecutive). Read inside each write transaction, after taking the
/// write lock, because another process (the `hotline tickets` CLI) may have
/// appended since.
#[derive(Debug, Clone, Copy)]
struct Sequences {
    event: u64,
    ticket: u64,
}

fn write_loop(mut conn: Connection, rx: mpsc::Receiver<Request>) {
    let mut batch: Vec<Request> = Vec::new();
    let mut cache: Option<(i64, Sequences)> = None;
    while let Ok(first) = rx.recv() {
        let mut count = first.events.len();
        batch.push(first);
        while count < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => {
                    count += r.events.len();
                    batch.push(r);
                }
                Err(_) => break,
            }
        }
        let mut requests = Vec::with_capacity(batch.len());
        let mut events = Vec::with_capacity(count);
        for request in batch.drain(..) {
            requests.push((request.events.len(), request.reply));
            events.extend(request.events);
        }
        let result = write_batch(&mut conn, events, &mut cache);
        let mut stored = match &result {
            Ok(stored) => stored.clone().into_iter(),
            Err(_) => Vec::new().into_iter(),
        };
        for (n, reply) in requests {
            let answer = match &result {
                Ok(_) => Ok(stored.by_ref().take(n).collect()),
                Err(e) => Err(e.clone()),
            };
            match reply {
                Reply::Blocking(r) => {
                    let _ = r.send(answer);
                }
                Reply::Async(r) => {
                    let _ = r.send(answer);
                }
            }
        }
    }
}

fn assign(seq: &mut Sequences, e: NewEvent) -> Event {
    let id = EventId(seq.event);
    seq.event += 1;
    let ticket = match (&e.kind, e.ticket) {
        (EventKind::TicketOpened { .. }, None) => {
            seq.ticket += 1;
            Some(TicketId(seq.ticket - 1))
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

/// Writes one batch in one transaction; returns the events as stored.
///
/// `cache` holds the sequences after our last commit with the connection's
/// `data_version`, which changes only when another connection commits: while
/// it stands still, the two MAX queries are skipped.
fn write_batch(
    conn: &mut Connection,
    events: Vec<(NewEvent, String, String)>,
    cache: &mut Option<(i64, Sequences)>,
) -> Result<Vec<Event>, StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let version: i64 = tx.pragma_query_value(None, "data_version", |r| r.get(0))?;
    let cached = cache.filter(|(v, _)| *v == version).map(|(_, seq)| seq);
    *cache = None; // until this batch commits
    let mut seq = match cached {
        Some(seq) => seq,
        None => read_sequences(&tx)?,
    };
    let mut stored = Vec::with_capacity(events.len());
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO events (id, ticket, call, at_ms, actor, kind, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for (e, actor, body) in events {
            let e = assign(&mut seq, e);
            insert.execute(params![
                e.id.0 as i64,
                e.ticket.map(|t| t.0 as i64),
                e.call,
                e.at_ms,
                actor,
                e.kind.name(),
                body,
            ])?;
            stored.push(e);
        }
    }
    tx.commit()?;
    *cache = Some((version, seq));
    Ok(stored)
}

fn read_sequences(tx: &rusqlite::Transaction) -> Result<Sequences, StoreError> {
    Ok(tx.query_row(
        "SELECT (SELECT COALESCE(MAX(id), 0) + 1 FROM events), \
         (SELECT COALESCE(MAX(ticket), 0) + 1 FROM events WHERE ticket IS NOT NULL)",
        [],
        |r| {
            Ok(Sequences {
                event: r.get::<_, i64>(0)? as u64,
                ticket: r.get::<_, i64>(1)? as u64,
            })
        },
    )?)
}

type RawRow = (i64, Option<i64>, Option<String>, i64, String, String);

fn raw_row(r: &rusqlite::Row) -> rusqlite::Result<RawRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

fn decode((id, ticket, call, at_ms, actor, body): RawRow) -> Result<Event, StoreError> {
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
