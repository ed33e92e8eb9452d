//! The PostgreSQL event store, for a site that outgrows one machine.
//!
//! The same shape as the SQLite store: one writer thread takes every append
//! queued at that moment and writes it in one transaction; an appender is
//! answered after COMMIT returns, which with PostgreSQL's defaults
//! (`synchronous_commit = on`) is after the WAL is flushed.
//!
//! Ids are not a PostgreSQL sequence: sequence numbers are handed out before
//! commit, so a transaction holding id 7 could commit after one holding id 8,
//! and a reader following `id > last` would skip 7 for ever. Each batch
//! instead takes `LOCK TABLE events IN EXCLUSIVE MODE` (writers wait, readers
//! do not) and continues from `MAX(id)`; both MAX reads are index lookups.
//!
//! The writer thread runs its own small tokio runtime, which also drives the
//! connection of the reading client, so the store works the same from the
//! hotline's runtime, from the CLI and from plain threads. A connection that
//! drops (a server restart) is made again on the next write or read.

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio_postgres::{Client, NoTls, Statement};

use super::StoreError;
use super::event::{Event, EventId, TicketId};
use super::store::{RawRow, Request, Sequences, Serialised, Writer, decode, gather, hide_password};

/// Versioned schema files, applied in order; the `hotline_schema` table
/// records how many ran.
const MIGRATIONS: [&str; 3] = [
    include_str!("../../migrations/postgres/0001_events.sql"),
    include_str!("../../migrations/postgres/0002_time.sql"),
    include_str!("../../migrations/postgres/0003_cluster.sql"),
];

/// Taken while migrating, so that two processes starting together do not
/// both run a migration.
const MIGRATION_LOCK: i64 = 0x0068_6f74_6c69_6e65; // "hotline" in ASCII

const SELECT: &str = "SELECT id, ticket, call, at_ms, actor::text, body::text FROM events";

pub struct PostgresStore {
    url: String,
    runtime: tokio::runtime::Handle,
    /// The reading connection, replaced when it drops. A plain mutex: held
    /// only to clone or swap the `Arc`, never across an await.
    reader: Mutex<Arc<Client>>,
    pub(super) writer: Writer,
}

impl PostgresStore {
    /// Starts the writer thread, which connects and migrates; returns once
    /// it is ready (or with why it is not). Blocks the calling thread for
    /// that long, so a tokio caller uses `spawn_blocking`.
    pub fn open(url: &str, fence: Option<crate::cluster::Fence>) -> Result<Self, StoreError> {
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let writer_url = url.to_string();
        let writer = Writer::spawn("postgres-writer", move |rx| {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    let _ = ready_tx.send(Err(StoreError::Io(e.to_string())));
                    return;
                }
            };
            runtime.block_on(async {
                match setup(&writer_url, fence.is_some()).await {
                    Ok((mut client, statements, reader)) => {
                        let _ = ready_tx.send(Ok((reader, tokio::runtime::Handle::current())));
                        write_loop(&writer_url, &mut client, statements, fence, rx).await;
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            });
        })?;
        let (reader, runtime) = ready_rx.recv().map_err(|_| StoreError::Closed)??;
        Ok(Self {
            url: url.to_string(),
            runtime,
            reader: Mutex::new(Arc::new(reader)),
            writer,
        })
    }

    pub fn describe(&self) -> String {
        hide_password(&self.url)
    }

    /// The reading client, connected again (on the writer thread's runtime)
    /// if the last one dropped.
    async fn reader(&self) -> Result<Arc<Client>, StoreError> {
        let current = self.reader.lock().expect("reader lock").clone();
        if !current.is_closed() {
            return Ok(current);
        }
        let url = self.url.clone();
        let fresh = self
            .runtime
            .spawn(async move { connect(&url).await })
            .await
            .map_err(|_| StoreError::Closed)??;
        let fresh = Arc::new(fresh);
        *self.reader.lock().expect("reader lock") = fresh.clone();
        Ok(fresh)
    }

    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Event>, StoreError> {
        let rows = self.reader().await?.query(sql, params).await?;
        rows.into_iter()
            .map(|r| {
                let raw: RawRow = (
                    r.try_get(0)?,
                    r.try_get(1)?,
                    r.try_get(2)?,
                    r.try_get(3)?,
                    r.try_get(4)?,
                    r.try_get(5)?,
                );
                decode(raw)
            })
            .collect()
    }

    pub async fn events_after(
        &self,
        after: EventId,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let sql = format!("{SELECT} WHERE id > $1 ORDER BY id LIMIT $2");
        let limit = limit.min(i64::MAX as usize) as i64;
        self.query(&sql, &[&(after.0 as i64), &limit]).await
    }

    pub async fn call_events(&self, call: &str) -> Result<Vec<Event>, StoreError> {
        let sql = format!("{SELECT} WHERE call = $1 ORDER BY id");
        self.query(&sql, &[&call]).await
    }

    pub async fn call_of_recording(&self, file: &str) -> Result<Option<String>, StoreError> {
        let rows = self
            .reader()
            .await?
            .query(
                "SELECT call FROM events WHERE kind = 'call_recorded' AND body->>'file' = $1 LIMIT 1",
                &[&file],
            )
            .await?;
        Ok(rows.first().and_then(|r| r.try_get(0).ok()))
    }

    pub async fn events_between(&self, from_ms: i64, to_ms: i64) -> Result<Vec<Event>, StoreError> {
        let sql = format!("{SELECT} WHERE at_ms >= $1 AND at_ms < $2 ORDER BY id");
        self.query(&sql, &[&from_ms, &to_ms]).await
    }

    pub async fn calls_between(&self, from_ms: i64, to_ms: i64) -> Result<Vec<Event>, StoreError> {
        let sql = format!(
            "WITH started AS (SELECT call FROM events \
             WHERE kind = 'call_started' AND at_ms >= $1 AND at_ms < $2), \
             opened AS (SELECT DISTINCT ticket FROM events WHERE ticket IS NOT NULL AND call IN (SELECT call FROM started)) \
             {SELECT} WHERE call IN (SELECT call FROM started) OR ticket IN (SELECT ticket FROM opened) ORDER BY id"
        );
        self.query(&sql, &[&from_ms, &to_ms]).await
    }

    pub async fn ticket_events(&self, ticket: TicketId) -> Result<Vec<Event>, StoreError> {
        let sql = format!("{SELECT} WHERE ticket = $1 ORDER BY id");
        self.query(&sql, &[&(ticket.0 as i64)]).await
    }

    pub async fn last_id(&self) -> Result<Option<EventId>, StoreError> {
        let row = self
            .reader()
            .await?
            .query_one("SELECT MAX(id) FROM events", &[])
            .await?;
        let id: Option<i64> = row.try_get(0)?;
        Ok(id.map(|i| EventId(i as u64)))
    }
}

/// The writer's connection (migrated, statements ready) and the reader's.
async fn setup(url: &str, fenced: bool) -> Result<(Client, Statements, Client), StoreError> {
    let mut client = writer_connection(url, fenced).await?;
    migrate(&mut client).await?;
    let statements = Statements::prepare(&client).await?;
    let reader = connect(url).await?;
    Ok((client, statements, reader))
}

/// Connects and drives the connection on the current runtime. `sslmode`
/// as libpq reads it: `disable` plain; `prefer` (the default) and `require`
/// encrypt without checking the server's certificate (`require` refuses a
/// server without TLS); `verify-ca` and `verify-full` check it against
/// `sslrootcert` (a PEM file) or the system's roots, and the host name.
pub(crate) async fn connect(url: &str) -> Result<Client, StoreError> {
    let (url, tls) = tls_options(url)?;
    match tls {
        Tls::Off => {
            let (client, connection) = tokio_postgres::connect(&url, NoTls).await?;
            drive(connection);
            Ok(client)
        }
        tls => {
            let (client, connection) = tokio_postgres::connect(&url, connector(tls)?).await?;
            drive(connection);
            Ok(client)
        }
    }
}

fn drive<S, T>(connection: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %describe(&e), "event store connection ended");
        }
    });
}

/// What TLS a store URL asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tls {
    Off,
    /// Encrypted, the certificate not checked (`prefer`, `require`).
    EncryptOnly,
    /// Checked against this PEM file's roots, or the system's.
    Verify(Option<String>),
}

/// The URL as tokio-postgres takes it (our `verify-*` modes and
/// `sslrootcert` turned into its `require` and a checking connector), and
/// the TLS it asks for. Reads no file: the store's location is checked
/// with it at start.
pub fn tls_options(url: &str) -> Result<(String, Tls), StoreError> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut mode = "prefer".to_string();
    let mut root = None;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("sslmode", m)) => mode = m.to_string(),
            Some(("sslrootcert", path)) => root = Some(path.to_string()),
            _ => rest.push(pair.to_string()),
        }
    }
    let (pg_mode, tls) = match mode.as_str() {
        "disable" => ("disable", Tls::Off),
        "prefer" | "require" => (mode.as_str(), Tls::EncryptOnly),
        "verify-ca" | "verify-full" => ("require", Tls::Verify(root)),
        other => {
            return Err(StoreError::BadLocation(format!(
                "sslmode={other}: disable, prefer, require, verify-ca or verify-full"
            )));
        }
    };
    rest.push(format!("sslmode={pg_mode}"));
    Ok((format!("{base}?{}", rest.join("&")), tls))
}

fn connector(tls: Tls) -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
    let bad = |m: String| StoreError::BadLocation(format!("(PostgreSQL TLS) {m}"));
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?;
    let config = match tls {
        Tls::Off | Tls::EncryptOnly => builder
            .dangerous()
            .with_custom_certificate_verifier(std::sync::Arc::new(EncryptOnly(provider)))
            .with_no_client_auth(),
        Tls::Verify(root) => {
            let mut roots = rustls::RootCertStore::empty();
            match root {
                Some(path) => {
                    use rustls::pki_types::pem::PemObject;
                    let certs = rustls::pki_types::CertificateDer::pem_file_iter(&path)
                        .map_err(|e| bad(format!("sslrootcert {path}: {e}")))?;
                    for cert in certs {
                        let cert = cert.map_err(|e| bad(format!("sslrootcert {path}: {e}")))?;
                        roots
                            .add(cert)
                            .map_err(|e| bad(format!("sslrootcert {path}: {e}")))?;
                    }
                }
                None => {
                    for cert in rustls_native_certs::load_native_certs().certs {
                        let _ = roots.add(cert);
                    }
                }
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// `sslmode=prefer`/`require` as libpq means them: the link is encrypted,
/// the server's certificate is not checked (its signatures on the
/// handshake still are). `verify-full` is the mode that checks it.
#[derive(Debug)]
struct EncryptOnly(std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

pub(crate) async fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS hotline_schema (version INTEGER NOT NULL);
         INSERT INTO hotline_schema (version)
             SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM hotline_schema);",
    )
    .await?;
    let version: i32 = tx
        .query_one("SELECT version FROM hotline_schema", &[])
        .await?
        .try_get(0)?;
    if version as usize > MIGRATIONS.len() {
        return Err(StoreError::SchemaTooNew {
            found: version.into(),
            known: MIGRATIONS.len() as i64,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.batch_execute(sql).await?;
        tx.execute("UPDATE hotline_schema SET version = $1", &[&(i as i32 + 1)])
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The writer's statements, prepared once per connection.
struct Statements {
    sequences: Statement,
    insert: Statement,
    term: Statement,
}

impl Statements {
    async fn prepare(client: &Client) -> Result<Self, StoreError> {
        Ok(Self {
            sequences: client
                .prepare(
                    "SELECT (SELECT COALESCE(MAX(id), 0) + 1 FROM events), \
                     (SELECT COALESCE(MAX(ticket), 0) + 1 FROM events WHERE ticket IS NOT NULL)",
                )
                .await?,
            // One statement for the whole batch: the rows travel as arrays.
            insert: client
                .prepare(
                    "INSERT INTO events (id, ticket, call, at_ms, actor, kind, body) \
                     SELECT id, ticket, call, at_ms, actor::jsonb, kind, body::jsonb \
                     FROM UNNEST($1::int8[], $2::int8[], $3::text[], $4::int8[], $5::text[], $6::text[], $7::text[]) \
                     AS u(id, ticket, call, at_ms, actor, kind, body)",
                )
                .await?,
            term: client
                .prepare("SELECT term FROM cluster_lease WHERE id = 1 FOR SHARE")
                .await?,
        })
    }
}

async fn write_loop(
    url: &str,
    client: &mut Client,
    mut statements: Statements,
    fence: Option<crate::cluster::Fence>,
    mut rx: mpsc::UnboundedReceiver<Request>,
) {
    while let Some(first) = rx.recv().await {
        let (events, replies) = gather(first, &mut rx);
        if client.is_closed() {
            match reconnect(url, fence.is_some()).await {
                Ok((c, s)) => (*client, statements) = (c, s),
                Err(e) => {
                    replies.answer(Err(e));
                    continue;
                }
            }
        }
        replies.answer(write_batch(client, &statements, fence.as_ref(), events).await);
    }
}

/// How long a cluster node's append transaction may sit idle before
/// PostgreSQL ends its session. A node frozen (SIGSTOP, a stalled VM) in
/// the middle of an append holds the lease row `FOR SHARE` and the events
/// table locked: without this limit the standby's takeover, and every
/// append after it, waited for the frozen node as long as it stayed
/// frozen. A healthy append is never idle this long (its statements
/// follow one another), and it is shorter than the shortest lease (2 s),
/// so the locks are gone before a standby may take over.
const FROZEN_APPEND: &str = "1s";

/// The writer's connection; a cluster node's frozen appends are ended by
/// the server ([`FROZEN_APPEND`]).
async fn writer_connection(url: &str, fenced: bool) -> Result<Client, StoreError> {
    let client = connect(url).await?;
    if fenced {
        client
            .batch_execute(&format!(
                "SET idle_in_transaction_session_timeout = '{FROZEN_APPEND}'"
            ))
            .await?;
    }
    Ok(client)
}

async fn reconnect(url: &str, fenced: bool) -> Result<(Client, Statements), StoreError> {
    let client = writer_connection(url, fenced).await?;
    let statements = Statements::prepare(&client).await?;
    Ok((client, statements))
}

async fn write_batch(
    client: &mut Client,
    statements: &Statements,
    fence: Option<&crate::cluster::Fence>,
    events: Vec<Serialised>,
) -> Result<Vec<Event>, StoreError> {
    let tx = client.transaction().await?;
    tx.batch_execute("LOCK TABLE events IN EXCLUSIVE MODE")
        .await?;
    if let Some(fence) = fence {
        // FOR SHARE holds the lease row until COMMIT: a takeover (which
        // updates it) waits for this batch, or this batch sees its term.
        let current: i64 = tx.query_one(&statements.term, &[]).await?.try_get(0)?;
        let held = fence.term();
        if held != current {
            return Err(StoreError::Fenced { held, current });
        }
    }
    let row = tx.query_one(&statements.sequences, &[]).await?;
    let mut seq = Sequences {
        event: row.try_get::<_, i64>(0)? as u64,
        ticket: row.try_get::<_, i64>(1)? as u64,
    };
    let n = events.len();
    let (mut ids, mut tickets, mut calls, mut ats) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut actors, mut kinds, mut bodies) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let mut stored = Vec::with_capacity(n);
    for Serialised { event, actor, body } in events {
        let e = seq.assign(event);
        ids.push(e.id.0 as i64);
        tickets.push(e.ticket.map(|t| t.0 as i64));
        calls.push(e.call.clone());
        ats.push(e.at_ms);
        actors.push(actor);
        kinds.push(e.kind.name());
        bodies.push(body);
        stored.push(e);
    }
    tx.execute(
        &statements.insert,
        &[&ids, &tickets, &calls, &ats, &actors, &kinds, &bodies],
    )
    .await?;
    tx.commit().await?;
    Ok(stored)
}

/// A PostgreSQL error with the server's message and the cause of a
/// connection failure, which `Display` alone leaves out.
fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{}: {}", db.severity(), db.message());
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError::Postgres(describe(&e))
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// The test server `tests/run.sh` starts (HOTLINE_TEST_POSTGRES), none
    /// when it says `skip`.
    fn server() -> Option<String> {
        match std::env::var("HOTLINE_TEST_POSTGRES") {
            Ok(url) if url == "skip" => None,
            Ok(url) => Some(url),
            Err(_) => Some("postgres://hotline_test:hotline_test@127.0.0.1:5432/postgres".into()),
        }
    }

    /// A cluster node frozen inside an append (its session idle in a
    /// transaction holding a shared lock, as an append holds the lease row
    /// `FOR SHARE`) no longer blocks another session wanting that lock
    /// exclusively for longer than [`FROZEN_APPEND`]: the server ends the
    /// frozen session. (A transaction's advisory lock stands for the row:
    /// the test role may not create tables.)
    #[tokio::test]
    async fn a_frozen_append_releases_its_locks_within_a_second() {
        let Some(url) = server() else {
            return;
        };
        let key = 0x686f_746c_0000_i64 + i64::from(std::process::id());
        let other = connect(&url).await.expect("the test server");
        let mut frozen = writer_connection(&url, true).await.unwrap();
        let tx = frozen.transaction().await.unwrap();
        tx.execute("SELECT pg_advisory_xact_lock_shared($1)", &[&key])
            .await
            .unwrap();
        // The frozen node sends nothing more; another wants the lock.
        let started = Instant::now();
        let taken = tokio::time::timeout(
            Duration::from_secs(5),
            other.execute("SELECT pg_advisory_lock($1)", &[&key]),
        )
        .await;
        let waited = started.elapsed();
        assert!(matches!(taken, Ok(Ok(_))), "{taken:?} after {waited:?}");
        assert!(waited < Duration::from_secs(3), "{waited:?}");
        drop(tx);
        assert!(
            frozen.simple_query("SELECT 1").await.is_err(),
            "the frozen session was ended"
        );
    }
}
