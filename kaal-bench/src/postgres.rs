//! PostgreSQL: the lease store in a fresh database on the local server
//! (`KAAL_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/test`), and its raw
//! baseline.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use diesel::{Connection, PgConnection, RunQueryDsl};
use kaal_core::Adapter;
use kaal_diesel::Statement;
use kaal_diesel_postgres::PgStore;

use crate::target::{Fixture, Target};

pub struct PostgresLease;

struct PgFixture {
    server: String,
    database: String,
    url: String,
    store: Arc<PgStore>,
}

const RAW_INSERT: &str = r#"INSERT INTO kaal_locks ("key", acquired_at, expires_at) VALUES (?, statement_timestamp() AT TIME ZONE 'UTC', (statement_timestamp() AT TIME ZONE 'UTC') + interval '125 seconds')"#;
/// The least SQL doing an acquire's work on a held key (see the SQLite target).
const RAW_INSERT_CONFLICT: &str = r#"INSERT INTO kaal_locks ("key", acquired_at, expires_at) VALUES (?, statement_timestamp() AT TIME ZONE 'UTC', (statement_timestamp() AT TIME ZONE 'UTC') + interval '125 seconds') ON CONFLICT ("key") DO UPDATE SET acquired_at = EXCLUDED.acquired_at, expires_at = EXCLUDED.expires_at WHERE kaal_locks.expires_at <= EXCLUDED.acquired_at"#;
const RAW_DELETE: &str = r#"DELETE FROM kaal_locks WHERE "key" = ?"#;

fn server_url() -> String {
    std::env::var("KAAL_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn with_database(url: &str, database: &str) -> String {
    let base = url.rsplit_once('/').map_or(url, |(base, _)| base);
    format!("{base}/{database}")
}

fn admin(server: &str) -> PgConnection {
    PgConnection::establish(server)
        .unwrap_or_else(|err| panic!("PostgreSQL at {server} is unreachable: {err}"))
}

impl Target for PostgresLease {
    fn label(&self) -> String {
        "PostgreSQL lease".into()
    }

    fn fresh(&self) -> Box<dyn Fixture> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let server = server_url();
        let database = format!(
            "kaal_bench_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        diesel::sql_query(format!("CREATE DATABASE {database}"))
            .execute(&mut admin(&server))
            .expect("create database");
        let url = with_database(&server, &database);
        let store = PgStore::open(&url).unwrap_or_else(|err| panic!("cannot open {url}: {err}"));
        store.run_migrations().expect("migrations");
        Box::new(PgFixture {
            server,
            database,
            url,
            store: Arc::new(store),
        })
    }
}

impl PgFixture {
    fn run(&self, statement: Statement<'_>) {
        let mut conn = self.store.pool().get().expect("pooled connection");
        statement.execute(&mut *conn).expect("raw statement");
    }
}

impl Drop for PgFixture {
    fn drop(&mut self) {
        let drop_sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.database);
        if let Err(err) = diesel::sql_query(drop_sql).execute(&mut admin(&self.server)) {
            eprintln!("could not drop {}: {err}", self.database);
        }
    }
}

impl Fixture for PgFixture {
    fn adapter(&self) -> Arc<dyn Adapter> {
        self.store.clone()
    }

    fn another_node(&self) -> Arc<dyn Adapter> {
        Arc::new(PgStore::open(&self.url).expect("second node"))
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
            .map(|key| format!("('{key}', statement_timestamp() AT TIME ZONE 'UTC', (statement_timestamp() AT TIME ZONE 'UTC') + interval '125 seconds')"))
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
