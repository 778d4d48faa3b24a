//! The MySQL backend as the conformance suite sees it: every store a fresh database on the
//! server of `KAAL_MYSQL_URL` (default `mysql://root@127.0.0.1:3306/test`), migrated, and
//! dropped after the test; every node its own pool (and, for named locks, its own session).
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use diesel::connection::SimpleConnection;
use diesel::{Connection, MysqlConnection, RunQueryDsl};
use kaal_core::Adapter;
use kaal_diesel_mysql::{MysqlNamedLockAdapter, MysqlOptions, MysqlStore};

/// How MySQL prints a `DATETIME(6)` cast to text.
pub const TEXT_TIME: &str = "%Y-%m-%d %H:%M:%S%.6f";

/// The server the tests run against.
pub fn server_url() -> String {
    std::env::var("KAAL_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
}

/// `url` with its database replaced by `database`.
pub fn url_for(url: &str, database: &str) -> String {
    let (base, _) = url
        .rsplit_once('/')
        .expect("KAAL_MYSQL_URL has no /database");
    let query = url
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    format!("{base}/{database}{query}")
}

/// The database a locator names.
pub fn database_of(locator: &str) -> String {
    let path = locator
        .rsplit_once('/')
        .map(|(_, db)| db)
        .unwrap_or_default();
    path.split('?').next().unwrap_or_default().to_string()
}

/// A connection to the server's default database, for creating and dropping databases;
/// fails the test naming the URL when the server cannot be reached (never skips).
pub fn admin() -> MysqlConnection {
    let url = server_url();
    MysqlConnection::establish(&url).unwrap_or_else(|err| {
        panic!(
            "the MySQL tests need a server at {} (set KAAL_MYSQL_URL): {err}",
            kaal_diesel::redact_password(&url)
        )
    })
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A fresh, empty database; returns its URL.
pub fn fresh_database() -> String {
    let name = format!(
        "kaal_test_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    admin()
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS `{name}`; CREATE DATABASE `{name}`"
        ))
        .unwrap_or_else(|err| panic!("cannot create database {name}: {err}"));
    url_for(&server_url(), &name)
}

/// A fresh migrated database; returns its URL.
pub fn migrated_database() -> String {
    let url = fresh_database();
    open(&url)
        .run_migrations()
        .unwrap_or_else(|err| panic!("cannot migrate {url}: {err}"));
    url
}

/// Drops the database `locator` names, if it is one of ours.
pub fn drop_database(locator: &str) {
    let name = database_of(locator);
    if name.starts_with("kaal_test_") {
        let _ = admin().batch_execute(&format!("DROP DATABASE IF EXISTS `{name}`"));
    }
}

/// A new store (own pool) on `locator`.
pub fn open(locator: &str) -> MysqlStore {
    MysqlStore::open(locator).unwrap_or_else(|err| panic!("cannot open store {locator}: {err}"))
}

/// A named-lock adapter on `locator` whose lock names are prefixed with the database's name,
/// so tests on different databases of one server do not share locks.
pub fn open_named(locator: &str) -> MysqlNamedLockAdapter {
    let namespace = format!("{}:", database_of(locator));
    MysqlNamedLockAdapter::open_with(locator, MysqlOptions::default(), namespace)
        .unwrap_or_else(|err| panic!("cannot open named locks on {locator}: {err}"))
}

/// Lease-table stores in fresh databases.
#[derive(Debug, Clone, Copy, Default)]
pub struct MysqlLeases;

impl kaal_testkit::Backend for MysqlLeases {
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
        Some(Box::new(kaal_testkit::TcpCut::new(locator, 3306)))
    }
}

/// Named-lock adapters on fresh databases (registries in the database's tables).
#[derive(Debug, Clone, Copy, Default)]
pub struct MysqlNamedLocks;

impl kaal_testkit::Backend for MysqlNamedLocks {
    fn session_locks(&self) -> bool {
        true
    }

    fn create_store(&self) -> String {
        migrated_database()
    }

    fn open(&self, locator: &str) -> Arc<dyn Adapter> {
        Arc::new(open_named(locator))
    }

    fn drop_store(&self, locator: &str) {
        drop_database(locator);
    }

    fn outage(&self, locator: &str) -> Option<Box<dyn kaal_testkit::Outage>> {
        Some(Box::new(kaal_testkit::TcpCut::new(locator, 3306)))
    }
}

/// Runs raw SQL on `store`'s database.
pub fn exec(store: &MysqlStore, sql: &str) {
    let mut conn = store.pool().get().expect("no connection");
    conn.batch_execute(sql)
        .unwrap_or_else(|err| panic!("{sql}: {err}"));
}

/// The single text value `sql` selects (as column `value`).
pub fn text(store: &MysqlStore, sql: &str) -> String {
    let mut conn = store.pool().get().expect("no connection");
    text_on(&mut conn, sql)
}

/// The single text value `sql` selects (as column `value`) on `conn`.
pub fn text_on(conn: &mut MysqlConnection, sql: &str) -> String {
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

/// A fresh database dropped when the guard drops.
pub struct TempDb {
    pub url: String,
}

impl TempDb {
    /// An empty database.
    pub fn empty() -> Self {
        Self {
            url: fresh_database(),
        }
    }

    /// A migrated database.
    pub fn migrated() -> Self {
        Self {
            url: migrated_database(),
        }
    }

    pub fn open(&self) -> MysqlStore {
        open(&self.url)
    }

    pub fn name(&self) -> String {
        database_of(&self.url)
    }

    /// A plain connection to the database (no kaal store involved).
    pub fn connect(&self) -> MysqlConnection {
        MysqlConnection::establish(&self.url).expect("cannot connect")
    }

    /// Runs raw SQL on a plain connection.
    pub fn exec(&self, sql: &str) {
        self.connect()
            .batch_execute(sql)
            .unwrap_or_else(|err| panic!("{sql}: {err}"));
    }

    /// The single text value `sql` selects (as column `value`), on a plain connection.
    pub fn text(&self, sql: &str) -> String {
        text_on(&mut self.connect(), sql)
    }
}

/// Captures what the crate logs, so tests can check what an operator would see.
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

impl Drop for TempDb {
    fn drop(&mut self) {
        drop_database(&self.url);
    }
}
