//! The SQLite backend as the conformance suite sees it: every store a fresh file in its own
//! temporary directory, migrated; every node its own pool on that file.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kaal_core::Adapter;
use kaal_diesel_sqlite::SqliteStore;

/// Prefix of the directories [`SqliteFiles`] creates (and the only ones it removes).
const DIR_PREFIX: &str = "kaal-sqlite-test-";

/// Stores in fresh files under the system's temporary directory.
#[derive(Debug, Clone, Copy, Default)]
pub struct SqliteFiles;

impl kaal_testkit::Backend for SqliteFiles {
    fn create_store(&self) -> String {
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir()
            .expect("cannot create a temporary directory")
            .keep();
        let path = dir.join("kaal.db");
        let locator = path
            .to_str()
            .expect("temporary path is not UTF-8")
            .to_string();
        let store = SqliteStore::open(&locator)
            .unwrap_or_else(|err| panic!("cannot create store {locator}: {err}"));
        store
            .run_migrations()
            .unwrap_or_else(|err| panic!("cannot migrate store {locator}: {err}"));
        locator
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

    fn outage(&self, locator: &str) -> Option<Box<dyn kaal_testkit::Outage>> {
        Some(Box::new(WriterHoldsTheLock {
            path: locator.to_string(),
            writer: None,
        }))
    }

    fn drop_store(&self, locator: &str) {
        let dir = Path::new(locator).parent().map(Path::to_path_buf);
        if let Some(dir) = dir.filter(|dir| is_ours(dir)) {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn is_ours(dir: &Path) -> bool {
    dir.file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.starts_with(DIR_PREFIX))
}

/// A new store (own pool) on `locator`.
pub fn open(locator: &str) -> SqliteStore {
    SqliteStore::open(locator).unwrap_or_else(|err| panic!("cannot open store {locator}: {err}"))
}

/// A fresh migrated database file, removed when the returned guard drops.
pub struct TempDb {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl TempDb {
    /// An empty directory with `kaal.db` not yet created.
    pub fn empty() -> Self {
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir()
            .expect("cannot create a temporary directory");
        let path = dir.path().join("kaal.db");
        Self { dir, path }
    }

    /// A migrated database.
    pub fn migrated() -> Self {
        let db = Self::empty();
        db.open().run_migrations().expect("migrations failed");
        db
    }

    pub fn locator(&self) -> &str {
        self.path.to_str().expect("temporary path is not UTF-8")
    }

    pub fn open(&self) -> SqliteStore {
        open(self.locator())
    }
}

/// Runs raw SQL on `store`'s database.
pub fn exec(store: &SqliteStore, sql: &str) {
    use diesel::connection::SimpleConnection;
    let mut conn = store.pool().get().expect("no connection");
    conn.batch_execute(sql)
        .unwrap_or_else(|err| panic!("{sql}: {err}"));
}

/// The single text value `sql` selects.
pub fn text(store: &SqliteStore, sql: &str) -> String {
    #[derive(diesel::QueryableByName)]
    struct Value {
        #[diesel(sql_type = diesel::sql_types::Text)]
        value: String,
    }
    use diesel::RunQueryDsl;
    let mut conn = store.pool().get().expect("no connection");
    let rows: Vec<Value> = diesel::sql_query(sql)
        .load(&mut conn)
        .unwrap_or_else(|err| panic!("{sql}: {err}"));
    rows.into_iter()
        .next()
        .unwrap_or_else(|| panic!("{sql}: no row"))
        .value
}

/// Runs raw SQL on a database file through a plain connection (no kaal store involved).
pub fn exec_file(path: &Path, sql: &str) {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let mut conn = diesel::SqliteConnection::establish(path.to_str().expect("UTF-8 path"))
        .expect("cannot open the file");
    conn.batch_execute(sql)
        .unwrap_or_else(|err| panic!("{sql}: {err}"));
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
