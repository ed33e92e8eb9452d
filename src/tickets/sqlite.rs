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
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::mpsc;

use super::StoreError;
use super::event::{Event, EventId, TicketId};
use super::store::{RawRow, Request, Sequences, Serialised, Writer, decode, gather};

/// Versioned schema files, applied in order; `PRAGMA user_version` records
/// how many ran.
const MIGRATIONS: [&str; 2] = [
    include_str!("../../migrations/sqlite/0001_events.sql"),
    include_str!("../../migrations/sqlite/0002_time.sql"),
];

const CALLS_BETWEEN_SQLITE: &str = "WITH started AS (SELECT call FROM events \
     WHERE kind = 'call_started' AND at_ms >= ?1 AND at_ms < ?2), \
     opened AS (SELECT DISTINCT ticket FROM events WHERE ticket IS NOT NULL AND call IN (SELECT call FROM started)) \
     SELECT id, ticket, call, at_ms, actor, body FROM events \
     WHERE call IN (SELECT call FROM started) OR ticket IN (SELECT ticket FROM opened) ORDER BY id";

/// Read connections kept open between reads.
const IDLE_READERS: usize = 4;

pub struct SqliteStore {
    path: PathBuf,
    readers: std::sync::Mutex<Vec<Connection>>,
    pub(super) writer: Writer,
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
        let writer = Writer::spawn("sqlite-writer", move |rx| write_loop(conn, rx))?;
        Ok(Self {
            path: path.to_path_buf(),
            readers: std::sync::Mutex::new(Vec::new()),
            writer,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on a read connection from the pool (one is opened when
    /// none is free). Opening one reads the schema and maps the WAL index:
    /// the ticket view reads after every batch the writer commits, so
    /// connections are kept, with their prepared statements.
    fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let idle = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => {
                Connection::open_with_flags(&self.path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?
            }
        };
        let out = f(&conn);
        let mut readers = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if readers.len() < IDLE_READERS {
            readers.push(conn);
        }
        out
    }

    /// Events with an id above `after`, in order, at most `limit`.
    pub fn events_after(&self, after: EventId, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, ticket, call, at_ms, actor, body FROM events WHERE id > ?1 ORDER BY id LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![after.0 as i64, limit as i64], raw_row)?;
            rows.map(|r| decode(r?)).collect()
        })
    }

    /// Every event of one ticket, in order.
    pub fn ticket_events(&self, ticket: TicketId) -> Result<Vec<Event>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, ticket, call, at_ms, actor, body FROM events WHERE ticket = ?1 ORDER BY id",
            )?;
            let rows = stmt.query_map(params![ticket.0 as i64], raw_row)?;
            rows.map(|r| decode(r?)).collect()
        })
    }

    /// Every event of one call (its SIP Call-ID), in order.
    pub fn call_events(&self, call: &str) -> Result<Vec<Event>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, ticket, call, at_ms, actor, body FROM events WHERE call = ?1 ORDER BY id",
            )?;
            let rows = stmt.query_map(params![call], raw_row)?;
            rows.map(|r| decode(r?)).collect()
        })
    }

    /// The call (SIP Call-ID) whose recording is `file`.
    pub fn call_of_recording(&self, file: &str) -> Result<Option<String>, StoreError> {
        self.read(|conn| {
            // `file` is the hotline's own name (checked by the caller): no LIKE
            // wildcards in it.
            let pattern = format!("%\"file\":\"{file}\"%");
            Ok(conn
                .query_row(
                    "SELECT call FROM events WHERE kind = 'call_recorded' AND body LIKE ?1 LIMIT 1",
                    params![pattern],
                    |r| r.get(0),
                )
                .optional()?
                .flatten())
        })
    }

    /// Every event that happened in `[from_ms, to_ms)`, in log order.
    pub fn events_between(&self, from_ms: i64, to_ms: i64) -> Result<Vec<Event>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, ticket, call, at_ms, actor, body FROM events WHERE at_ms >= ?1 AND at_ms < ?2 ORDER BY id",
            )?;
            let rows = stmt.query_map(params![from_ms, to_ms], raw_row)?;
            rows.map(|r| decode(r?)).collect()
        })
    }

    /// Every event of the calls that started in `[from_ms, to_ms)`, and
    /// of the tickets they opened, in log order.
    pub fn calls_between(&self, from_ms: i64, to_ms: i64) -> Result<Vec<Event>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(CALLS_BETWEEN_SQLITE)?;
            let rows = stmt.query_map(params![from_ms, to_ms], raw_row)?;
            rows.map(|r| decode(r?)).collect()
        })
    }

    /// Every event, in order (replay).
    pub fn all_events(&self) -> Result<Vec<Event>, StoreError> {
        self.events_after(EventId(0), usize::MAX >> 1)
    }

    pub fn last_id(&self) -> Result<Option<EventId>, StoreError> {
        self.read(|conn| {
            let id: Option<i64> = conn
                .query_row("SELECT MAX(id) FROM events", [], |r| r.get(0))
                .optional()?
                .flatten();
            Ok(id.map(|i| EventId(i as u64)))
        })
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

/// Under load, batches start at most this often: an event arriving within
/// this time of the last batch's start waits for the rest of it, so that
/// the events of many calls share one fsync (at 2,000 calls a second, a
/// commit per 50 ms instead of one per event or two: the commit, its WAL
/// pages and its fsync cost the writer more than the rows, 41 us a call
/// at 4 ms spacing, 27 at 10, 19 at 20 in benches/cpu_per_call.sh on one
/// machine; 20.5 at 20 and 15.5 at 50 on a slower one, interleaved). An
/// appender under that load hears its events are durable at most this
/// much later: no caller waits on it (the switch does not), an agent's
/// wrap-up or a supervisor's API call by a moment they do not notice. An
/// event arriving when the writer has been idle that long is written at
/// once: an idle hotline answers an appender without delay.
const BATCH_SPACING: Duration = Duration::from_millis(50);

fn write_loop(mut conn: Connection, mut rx: mpsc::UnboundedReceiver<Request>) {
    let mut cache: Option<(i64, Sequences)> = None;
    let mut last_batch: Option<Instant> = None;
    while let Some(first) = rx.blocking_recv() {
        if let Some(wait) = last_batch.and_then(|at| BATCH_SPACING.checked_sub(at.elapsed())) {
            std::thread::sleep(wait);
        }
        last_batch = Some(Instant::now());
        let (events, replies) = gather(first, &mut rx);
        replies.answer(write_batch(&mut conn, events, &mut cache));
    }
}

/// Writes one batch in one transaction; returns the events as stored.
///
/// `cache` holds the sequences after our last commit with the connection's
/// `data_version`, which changes only when another connection commits: while
/// it stands still, the two MAX queries are skipped.
fn write_batch(
    conn: &mut Connection,
    events: Vec<Serialised>,
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
        for Serialised { event, actor, body } in events {
            let e = seq.assign(event);
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
