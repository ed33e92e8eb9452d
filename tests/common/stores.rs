//! A fresh event store per test, on either back end: a SQLite file in a
//! temporary folder, or a PostgreSQL database of its own (created here,
//! dropped at the end) on the server `tests/run.sh` installs and starts.

use std::sync::atomic::{AtomicU32, Ordering};

use hotline::tickets::Store;

/// The server's address for a role that may create databases. `tests/run.sh`
/// sets it; this default is what that script makes.
const DEFAULT_ADMIN: &str = "postgres://hotline_test:hotline_test@127.0.0.1:5432/postgres";

static NEXT_DB: AtomicU32 = AtomicU32::new(0);

pub struct TestStore {
    /// What `[tickets] store` or `--store` would say.
    pub location: String,
    _dir: Option<tempfile::TempDir>,
    /// (admin URL, database) to drop at the end.
    postgres: Option<(String, String)>,
}

impl TestStore {
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            location: dir.path().join("events.db").display().to_string(),
            _dir: Some(dir),
            postgres: None,
        }
    }

    /// A new empty database. Fails the test when no server answers, unless
    /// HOTLINE_TEST_POSTGRES=skip says this run does without PostgreSQL.
    pub fn postgres() -> Option<Self> {
        let admin = std::env::var("HOTLINE_TEST_POSTGRES").unwrap_or(DEFAULT_ADMIN.into());
        if admin == "skip" {
            eprintln!("HOTLINE_TEST_POSTGRES=skip: PostgreSQL store test not run");
            return None;
        }
        let name = format!(
            "hotline_test_{}_{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::SeqCst)
        );
        admin_sql(&admin, &format!("CREATE DATABASE {name}")).unwrap_or_else(|e| {
            panic!(
                "PostgreSQL store tests need a server: {e}\n\
                 Run tests/run.sh (it installs and starts one), or set \
                 HOTLINE_TEST_POSTGRES to a postgres:// URL of a role that may create \
                 databases, or HOTLINE_TEST_POSTGRES=skip to leave these tests out."
            )
        });
        let (base, _) = admin.rsplit_once('/').expect("URL with a database");
        Some(Self {
            location: format!("{base}/{name}"),
            _dir: None,
            postgres: Some((admin, name)),
        })
    }

    pub fn open(&self) -> Store {
        Store::open(&self.location).unwrap()
    }

    /// Marks the schema as written by a newer hotline.
    pub fn set_schema_version(&self, version: u32) {
        match &self.postgres {
            None => {
                let conn = rusqlite::Connection::open(&self.location).unwrap();
                conn.pragma_update(None, "user_version", version).unwrap();
            }
            Some(_) => admin_sql(
                &self.location,
                &format!("UPDATE hotline_schema SET version = {version}"),
            )
            .unwrap(),
        }
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if let Some((admin, name)) = &self.postgres {
            let _ = admin_sql(
                admin,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            );
        }
    }
}

/// Runs one statement on its own thread and runtime, so that it works from
/// sync tests, async tests and `Drop` alike.
fn admin_sql(url: &str, sql: &str) -> Result<(), String> {
    try_admin_query(url, sql).map(|_| ())
}

/// Rows of one query (the first column as text), over a plain connection.
pub fn admin_query(url: &str, sql: &str) -> Vec<String> {
    try_admin_query(url, sql).unwrap()
}

/// One statement (simple query protocol: DDL outside a transaction block
/// works too) on its own thread and runtime; the first column of each row.
fn try_admin_query(url: &str, sql: &str) -> Result<Vec<String>, String> {
    let (url, sql) = (url.to_string(), sql.to_string());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (client, connection) =
                tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .map_err(|e| format!("{e}: {:?}", std::error::Error::source(&e)))?;
            tokio::spawn(connection);
            let messages = client
                .simple_query(&sql)
                .await
                .map_err(|e| format!("{sql}: {e}"))?;
            Ok(messages
                .iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                    _ => None,
                })
                .collect())
        })
    })
    .join()
    .unwrap()
}

impl TestStore {
    /// The admin URL and this store's database name (PostgreSQL only).
    pub fn postgres_names(&self) -> Option<(String, String)> {
        self.postgres.clone()
    }
}

/// Every event in the store at `location`, read as a new process would.
pub fn all_events(location: &str) -> Vec<hotline::tickets::Event> {
    let store = Store::open(location).unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(store.all_events())
        .unwrap()
}

/// Waits up to 15 s for an event matching `want` in the store at `location`.
pub fn wait_for_event(
    location: &str,
    want: impl Fn(&hotline::tickets::Event) -> bool,
) -> hotline::tickets::Event {
    let start = std::time::Instant::now();
    loop {
        if let Some(e) = all_events(location).into_iter().find(|e| want(e)) {
            return e;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(15),
            "event never written; the log has: {:?}",
            all_events(location)
                .iter()
                .map(|e| e.kind.name())
                .collect::<Vec<_>>()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
