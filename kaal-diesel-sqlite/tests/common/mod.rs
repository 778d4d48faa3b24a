//! The SQLite backend as the tests see it: every store a fresh file in its own temporary
//! directory; every node its own pool on that file. [`SqliteHooks`] runs kaal-diesel's
//! shared store behaviours, and ([`SQLITE_FILES`]) kaal-testkit's conformance suite.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use diesel_migrations::EmbeddedMigrations;
use kaal_diesel::testing::{Conformance, SqlBackend};
use kaal_diesel_sqlite::{SqliteDialect, SqliteStore};

/// Prefix of the directories [`SqliteHooks`] creates (and the only ones it removes).
const DIR_PREFIX: &str = "kaal-sqlite-test-";

/// The tables as the Ruby gem's current ActiveRecord migrations create them on SQLite.
pub const RUBY_GEM_TABLES: &str = r#"
CREATE TABLE "kaal_dispatches" ("id" integer PRIMARY KEY AUTOINCREMENT NOT NULL, "key" varchar NOT NULL, "fire_time" datetime(6) NOT NULL, "dispatched_at" datetime(6) NOT NULL, "node_id" varchar NOT NULL, "status" varchar(50) DEFAULT 'dispatched' NOT NULL);
CREATE UNIQUE INDEX "index_kaal_dispatches_on_key_and_fire_time" ON "kaal_dispatches" ("key", "fire_time");
CREATE INDEX "index_kaal_dispatches_on_key" ON "kaal_dispatches" ("key");
CREATE TABLE "kaal_locks" ("id" integer PRIMARY KEY AUTOINCREMENT NOT NULL, "key" varchar NOT NULL, "acquired_at" datetime(6) NOT NULL, "expires_at" datetime(6) NOT NULL);
CREATE UNIQUE INDEX "index_kaal_locks_on_key" ON "kaal_locks" ("key");
CREATE INDEX "index_kaal_locks_on_expires_at" ON "kaal_locks" ("expires_at");
CREATE TABLE "kaal_definitions" ("id" integer PRIMARY KEY AUTOINCREMENT NOT NULL, "key" varchar NOT NULL, "cron" varchar NOT NULL, "enabled" boolean DEFAULT 1 NOT NULL, "source" varchar NOT NULL, "metadata" text DEFAULT '{}' NOT NULL, "disabled_at" datetime(6), "created_at" datetime(6) NOT NULL, "updated_at" datetime(6) NOT NULL);
CREATE UNIQUE INDEX "index_kaal_definitions_on_key" ON "kaal_definitions" ("key");
"#;

/// A fresh database file, removed (with its directory) when the guard drops.
pub type TempDb = kaal_diesel::testing::TempDb<SqliteHooks>;

/// What kaal-diesel's shared store behaviours need of SQLite: a file `kaal.db` (not yet
/// created) in a fresh temporary directory per database, plain connections that wait out a
/// moment's lock as the store does, and SQLite's text times.
#[derive(Debug, Clone, Copy, Default)]
pub struct SqliteHooks;

impl SqlBackend for SqliteHooks {
    type Dialect = SqliteDialect;
    type Connection = diesel::SqliteConnection;

    const MIGRATIONS: EmbeddedMigrations = kaal_diesel_sqlite::MIGRATIONS;
    const RUBY_GEM_TABLES: &'static str = RUBY_GEM_TABLES;
    const LOCK_TABLE_WITHOUT_EXPIRES_AT: &'static str = r#"CREATE TABLE kaal_locks (id INTEGER PRIMARY KEY, "key" TEXT NOT NULL UNIQUE, acquired_at TEXT NOT NULL);
        INSERT INTO kaal_locks ("key", acquired_at) VALUES ('kept', '2026-01-01 00:00:00');"#;
    const COLUMNS_ADDED_TO_THE_GEMS_DEFINITIONS: [&'static str; 2] = [
        "namespace VARCHAR(255) 1 'kaal'",
        "schedule_since DATETIME(6) 0 NULL",
    ];
    const COLUMNS_ADDED_TO_THE_GEMS_DISPATCHES: [&'static str; 4] = [
        "started_at DATETIME(6) 0 NULL",
        "finished_at DATETIME(6) 0 NULL",
        "attempt INTEGER 1 0",
        "error TEXT 0 NULL",
    ];
    const DEFINITIONS_PRIMARY_KEY: Option<&'static str> = None;

    fn create_database(&self) -> String {
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir()
            .expect("cannot create a temporary directory")
            .keep();
        dir.join("kaal.db")
            .to_str()
            .expect("temporary path is not UTF-8")
            .to_string()
    }

    fn drop_database(&self, locator: &str) {
        let dir = Path::new(locator).parent().map(Path::to_path_buf);
        if let Some(dir) = dir.filter(|dir| is_ours(dir)) {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    fn connect(&self, locator: &str) -> diesel::SqliteConnection {
        use diesel::connection::SimpleConnection;
        use diesel::Connection;
        let mut conn = diesel::SqliteConnection::establish(locator)
            .unwrap_or_else(|err| panic!("cannot open {locator}: {err}"));
        // Wait, as the store does, rather than fail on a moment's lock by another connection.
        conn.batch_execute("PRAGMA busy_timeout = 5000")
            .expect("cannot set busy_timeout");
        conn
    }

    fn now_plus(&self, seconds: i64) -> String {
        format!("strftime('%Y-%m-%d %H:%M:%f', 'now', '{seconds:+} seconds') || '000'")
    }

    fn seconds_until(&self, column: &str) -> String {
        format!("(julianday({column}) - julianday('now')) * 86400.0")
    }

    fn table_names(&self, locator: &str) -> Vec<String> {
        self.texts(
            locator,
            "SELECT name AS value FROM sqlite_master WHERE type = 'table' ORDER BY name",
        )
    }

    /// The SQL that created the tables.
    fn schema_of(&self, locator: &str, tables: &[&str]) -> String {
        let tables: Vec<String> = tables.iter().map(|table| format!("'{table}'")).collect();
        self.texts(
            locator,
            &format!(
                "SELECT sql AS value FROM sqlite_master WHERE type = 'table' AND name IN ({}) ORDER BY name",
                tables.join(", ")
            ),
        )
        .join(";\n")
    }

    /// `name type notnull default`.
    fn table_columns(&self, locator: &str, table: &str) -> Vec<String> {
        self.texts(
            locator,
            &format!("SELECT name || ' ' || type || ' ' || \"notnull\" || ' ' || coalesce(dflt_value, 'NULL') AS value FROM pragma_table_info('{table}') ORDER BY cid"),
        )
    }

    fn unique_indexes(&self, locator: &str, table: &str) -> Vec<String> {
        self.texts(
            locator,
            &format!(
                "SELECT idx.name || '(' || (SELECT group_concat(name, ',') FROM (SELECT name FROM pragma_index_info(idx.name) ORDER BY seqno)) || ')' AS value FROM pragma_index_list('{table}') AS idx WHERE idx.\"unique\" = 1 ORDER BY idx.name"
            ),
        )
    }

    /// Another connection holds the file's write lock.
    fn outage(&self, locator: &str) -> Option<Box<dyn kaal_testkit::Outage>> {
        Some(Box::new(WriterHoldsTheLock {
            path: locator.to_string(),
            writer: None,
        }))
    }
}

/// The file and directory of a [`TempDb`].
pub trait FileDb {
    /// The database file (`kaal.db`, which may not exist yet).
    fn path(&self) -> PathBuf;
    /// The temporary directory holding it.
    fn dir(&self) -> PathBuf;
}

impl FileDb for TempDb {
    fn path(&self) -> PathBuf {
        PathBuf::from(self.locator())
    }

    fn dir(&self) -> PathBuf {
        self.path().parent().expect("no directory").to_path_buf()
    }
}

/// Stores in fresh migrated files, as the conformance suite sees them.
pub const SQLITE_FILES: Conformance<SqliteHooks> = Conformance::leases(SqliteHooks);

fn is_ours(dir: &Path) -> bool {
    dir.file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.starts_with(DIR_PREFIX))
}

/// A new store (own pool) on `locator`.
pub fn open(locator: &str) -> SqliteStore {
    SqliteStore::open(locator).unwrap_or_else(|err| panic!("cannot open store {locator}: {err}"))
}

/// Runs raw SQL on `store`'s database, through the store's pool.
pub fn exec(store: &SqliteStore, sql: &str) {
    kaal_diesel::testing::exec_on(&mut *store.pool().get().expect("no connection"), sql);
}

/// The single text value `sql` selects (as column `value`), through `store`'s pool (whose
/// connections carry the store's settings).
pub fn text(store: &SqliteStore, sql: &str) -> String {
    kaal_diesel::testing::text_on(&mut *store.pool().get().expect("no connection"), sql)
}

/// Runs raw SQL on a database file through a plain connection (no kaal store involved).
pub fn exec_file(path: &Path, sql: &str) {
    let mut conn = SqliteHooks.connect(path.to_str().expect("UTF-8 path"));
    kaal_diesel::testing::exec_on(&mut conn, sql);
}

/// An outage of an SQLite file: another connection holds the write lock (an open `BEGIN
/// IMMEDIATE` transaction that has written) for as long as the outage lasts, so every
/// node's write waits out its busy timeout and fails. Reads still work (WAL).
pub struct WriterHoldsTheLock {
    path: String,
    writer: Option<diesel::SqliteConnection>,
}

impl kaal_testkit::Outage for WriterHoldsTheLock {
    fn locator(&self) -> String {
        self.path.clone()
    }

    fn begin(&mut self) {
        use diesel::connection::SimpleConnection;
        use diesel::Connection;
        let mut writer = diesel::SqliteConnection::establish(&self.path)
            .unwrap_or_else(|err| panic!("cannot open {} to lock it: {err}", self.path));
        writer
            .batch_execute(
                "PRAGMA busy_timeout = 30000; BEGIN IMMEDIATE; \
                 DELETE FROM kaal_locks WHERE key = 'outage';",
            )
            .unwrap_or_else(|err| panic!("cannot take the write lock of {}: {err}", self.path));
        self.writer = Some(writer);
    }

    fn end(&mut self) {
        use diesel::connection::SimpleConnection;
        if let Some(mut writer) = self.writer.take() {
            writer
                .batch_execute("ROLLBACK")
                .unwrap_or_else(|err| panic!("cannot release the write lock: {err}"));
        }
    }

    fn describe(&self) -> String {
        "another connection holds the file's write lock".into()
    }
}
