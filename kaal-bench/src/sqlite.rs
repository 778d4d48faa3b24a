//! SQLite: the lease store on a file in a temporary directory, and its raw baseline.

use std::sync::Arc;

use diesel::RunQueryDsl;
use kaal_core::Adapter;
use kaal_diesel::Statement;
use kaal_diesel_sqlite::SqliteStore;

use crate::target::{Fixture, Target};

pub struct Sqlite;

struct SqliteFixture {
    _dir: tempfile::TempDir,
    path: String,
    store: Arc<SqliteStore>,
}

const NOW: &str = "strftime('%Y-%m-%d %H:%M:%f', 'now') || '000'";
const RAW_INSERT: &str = r#"INSERT INTO kaal_locks ("key", acquired_at, expires_at) VALUES (?, strftime('%Y-%m-%d %H:%M:%f', 'now') || '000', strftime('%Y-%m-%d %H:%M:%f', 'now', '+125 seconds') || '000')"#;
/// The least SQL that does an acquire's work on a held key: insert, or take the row over
/// only if its lease has expired (a plain `ON CONFLICT DO NOTHING` could never take over).
const RAW_INSERT_CONFLICT: &str = r#"INSERT INTO kaal_locks ("key", acquired_at, expires_at) VALUES (?, strftime('%Y-%m-%d %H:%M:%f', 'now') || '000', strftime('%Y-%m-%d %H:%M:%f', 'now', '+125 seconds') || '000') ON CONFLICT ("key") DO UPDATE SET acquired_at = excluded.acquired_at, expires_at = excluded.expires_at WHERE kaal_locks.expires_at <= excluded.acquired_at"#;
const RAW_DELETE: &str = r#"DELETE FROM kaal_locks WHERE "key" = ?"#;

fn open(path: &str) -> SqliteStore {
    SqliteStore::open(path).unwrap_or_else(|err| panic!("cannot open {path}: {err}"))
}

impl Target for Sqlite {
    fn label(&self) -> String {
        "SQLite lease (WAL, synchronous=FULL)".into()
    }

    fn fresh(&self) -> Box<dyn Fixture> {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("bench.db").to_string_lossy().into_owned();
        let store = open(&path);
        store.run_migrations().expect("migrations");
        Box::new(SqliteFixture {
            _dir: dir,
            path,
            store: Arc::new(store),
        })
    }
}

impl SqliteFixture {
    fn run(&self, statement: Statement<'_>) {
        let mut conn = self.store.pool().get().expect("pooled connection");
        statement.execute(&mut *conn).expect("raw statement");
    }
}

impl Fixture for SqliteFixture {
    fn adapter(&self) -> Arc<dyn Adapter> {
        self.store.clone()
    }

    fn another_node(&self) -> Arc<dyn Adapter> {
        Arc::new(open(&self.path))
    }

    fn raw_acquire_fresh(&self, key: &str) {
        self.run(Statement::new(RAW_INSERT).bind(key));
    }

    fn raw_acquire_held(&self, key: &str) {
        self.run(Statement::new(RAW_INSERT_CONFLICT).bind(key));
    }

    fn raw_release(&self, key: &str) {
        self.run(Statement::new(RAW_DELETE).bind(key));
    }

    fn raw_insert_many(&self, keys: &[String]) {
        let rows: Vec<String> = keys
            .iter()
            .map(|key| format!("('{key}', {NOW}, strftime('%Y-%m-%d %H:%M:%f', 'now', '+125 seconds') || '000')"))
            .collect();
        let sql = format!(
            r#"INSERT INTO kaal_locks ("key", acquired_at, expires_at) VALUES {}"#,
            rows.join(",")
        );
        let mut conn = self.store.pool().get().expect("pooled connection");
        diesel::sql_query(sql)
            .execute(&mut *conn)
            .expect("raw multi-row insert");
    }
}
