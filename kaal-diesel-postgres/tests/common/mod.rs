//! The PostgreSQL backend as the tests see it: every store a fresh database on the server
//! named by `KAAL_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`), created
//! through that URL's database, migrated, and dropped after the test (`WITH (FORCE)`).
//!
//! An unreachable server fails the test with a message naming the URL; nothing is skipped.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection, RunQueryDsl};
use kaal_core::Adapter;
use kaal_diesel_postgres::{PgAdvisoryAdapter, PgStore};

/// The server URL when `KAAL_POSTGRES_URL` is not set.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Prefix of the databases the tests create (and the only ones they drop).
const DB_PREFIX: &str = "kaal_test_";

/// The server the tests run against.
pub fn server_url() -> String {
    std::env::var("KAAL_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_string())
}

/// `url` with its database (the path) replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let authority = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[authority..];
    let path_start = authority + rest.find('/').unwrap_or(rest.len());
    let query_start = url[path_start..]
        .find('?')
        .map_or(url.len(), |i| path_start + i);
    format!("{}/{database}{}", &url[..path_start], &url[query_start..])
}

/// The database a URL names.
pub fn database_of(url: &str) -> String {
    let authority = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[authority..];
    let path = rest.find('/').map_or("", |i| &rest[i + 1..]);
    path.split('?').next().unwrap_or("").to_string()
}

/// A connection to the server's own database (`test`), for creating and dropping the test
/// databases. Panics, naming the URL, when the server cannot be reached.
pub fn admin() -> PgConnection {
    let url = server_url();
    PgConnection::establish(&url).unwrap_or_else(|err| {
        panic!(
            "the PostgreSQL server at {url} is unreachable ({err}); start it, or set \
             KAAL_POSTGRES_URL to a server where this user may create databases"
        )
    })
}

/// One admin connection per test process, shared (CREATE / DROP DATABASE are quick).
fn with_admin<T>(f: impl FnOnce(&mut PgConnection) -> T) -> T {
    static ADMIN: OnceLock<Mutex<PgConnection>> = OnceLock::new();
    let admin = ADMIN.get_or_init(|| Mutex::new(admin()));
    let mut conn = admin.lock().unwrap_or_else(|p| p.into_inner());
    f(&mut conn)
}

/// Creates a fresh, empty database `kaal_test_<pid>_<n>`; returns its URL.
pub fn create_database() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "{DB_PREFIX}{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    );
    with_admin(|conn| {
        // One statement per call: a multi-statement string runs as one transaction, which
        // CREATE / DROP DATABASE refuse.
        for sql in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            conn.batch_execute(&sql).unwrap_or_else(|err| {
                panic!("cannot create database {name} on {}: {err}", server_url())
            });
        }
    });
    with_database(&server_url(), &name)
}

/// Drops a database [`create_database`] made (others are left alone).
pub fn drop_database(url: &str) {
    let name = database_of(url);
    if !name.starts_with(DB_PREFIX) || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return;
    }
    with_admin(|conn| {
        if let Err(err) =
            conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        {
            eprintln!("could not drop test database {name}: {err}");
        }
    });
}

/// A fresh migrated database; returns its URL.
pub fn migrated_database() -> String {
    let url = create_database();
    let store = PgStore::open(&url).unwrap_or_else(|err| panic!("cannot open {url}: {err}"));
    store
        .run_migrations()
        .unwrap_or_else(|err| panic!("cannot migrate {url}: {err}"));
    url
}

/// The lease-table adapter: every node its own pool.
#[derive(Debug, Clone, Copy, Default)]
pub struct PgLeases;

impl kaal_testkit::Backend for PgLeases {
    fn create_store(&self) -> String {
        migrated_database()
    }

    fn open(&self, locator: &str) -> Arc<dyn Adapter> {
        Arc::new(open(locator))
    }

    fn open_with_clock(
        &self,
        locator: &str,
        clock: Arc<dyn kaal_core::Clock>,
    ) -> Option<Arc<dyn Adapter>> {
        Some(Arc::new(open(locator).with_clock(clock)))
    }

    fn drop_store(&self, locator: &str) {
        drop_database(locator);
    }

    fn outage(&self, locator: &str) -> Option<Box<dyn kaal_testkit::Outage>> {
        Some(Box::new(kaal_testkit::TcpCut::new(locator, 5432)))
    }
}

/// The advisory-lock adapter: every node its own lock session and pool.
#[derive(Debug, Clone, Copy, Default)]
pub struct PgAdvisory;

impl kaal_testkit::Backend for PgAdvisory {
    fn session_locks(&self) -> bool {
        true
    }

    fn create_store(&self) -> String {
        migrated_database()
    }

    fn open(&self, locator: &str) -> Arc<dyn Adapter> {
        Arc::new(open_advisory(locator))
    }

    fn drop_store(&self, locator: &str) {
        drop_database(locator);
    }

    fn outage(&self, locator: &str) -> Option<Box<dyn kaal_testkit::Outage>> {
        Some(Box::new(kaal_testkit::TcpCut::new(locator, 5432)))
    }
}

/// A new lease store (own pool) on `url`.
pub fn open(url: &str) -> PgStore {
    PgStore::open(url).unwrap_or_else(|err| panic!("cannot open store {url}: {err}"))
}

/// A new advisory adapter (own session and pool) on `url`.
pub fn open_advisory(url: &str) -> PgAdvisoryAdapter {
    PgAdvisoryAdapter::open(url)
        .unwrap_or_else(|err| panic!("cannot open advisory adapter {url}: {err}"))
}

/// A fresh database dropped when the guard drops.
pub struct TempDb {
    pub url: String,
}

impl TempDb {
    /// An empty database (no tables).
    pub fn empty() -> Self {
        Self {
            url: create_database(),
        }
    }

    /// A migrated database.
    pub fn migrated() -> Self {
        Self {
            url: migrated_database(),
        }
    }

    pub fn open(&self) -> PgStore {
        open(&self.url)
    }

    /// Runs raw SQL on the database through a plain connection.
    pub fn exec(&self, sql: &str) {
        let mut conn = PgConnection::establish(&self.url).expect("cannot connect");
        conn.batch_execute(sql)
            .unwrap_or_else(|err| panic!("{sql}: {err}"));
    }

    /// The single text value `sql` selects (as column `value`).
    pub fn text(&self, sql: &str) -> String {
        let mut conn = PgConnection::establish(&self.url).expect("cannot connect");
        text_on(&mut conn, sql)
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        drop_database(&self.url);
    }
}

/// The single text value `sql` selects (as column `value`) on `conn`.
pub fn text_on(conn: &mut PgConnection, sql: &str) -> String {
    #[derive(diesel::QueryableByName)]
    struct Value {
        #[diesel(sql_type = diesel::sql_types::Text)]
        value: String,
    }
    let rows: Vec<Value> = diesel::sql_query(sql)
        .load(conn)
        .unwrap_or_else(|err| panic!("{sql}: {err}"));
    rows.into_iter()
        .next()
        .unwrap_or_else(|| panic!("{sql}: no row"))
        .value
}

/// Log records, captured (installed once per test process) so tests can see what was
/// logged.
pub mod logs {
    use std::sync::Mutex;

    static RECORDS: Mutex<Vec<(log::Level, String)>> = Mutex::new(Vec::new());

    struct Capture;

    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }

        fn log(&self, record: &log::Record<'_>) {
            RECORDS
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((record.level(), record.args().to_string()));
        }

        fn flush(&self) {}
    }

    static CAPTURE: Capture = Capture;

    /// Starts capturing (idempotent).
    pub fn capture() {
        let _ = log::set_logger(&CAPTURE);
        log::set_max_level(log::LevelFilter::Info);
    }

    /// Messages logged at `level` so far that contain `needle`.
    pub fn matching(level: log::Level, needle: &str) -> Vec<String> {
        RECORDS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(l, message)| *l == level && message.contains(needle))
            .map(|(_, message)| message.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_other_databases() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/test?sslmode=disable", "x"),
            "postgres://u:p@h:5432/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
        assert_eq!(
            database_of("postgres://h:1/kaal_test_1_2?a=b"),
            "kaal_test_1_2"
        );
    }
}
