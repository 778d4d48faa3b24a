//! The PostgreSQL backend as the tests see it: every store a fresh database on the server
//! named by `KAAL_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`), created
//! through that URL's database and dropped after the test (`WITH (FORCE)`). [`PgHooks`]
//! runs kaal-diesel's shared store behaviours, and ([`PG_LEASES`], [`PG_ADVISORY`])
//! kaal-testkit's conformance suite.
//!
//! An unreachable server fails the test with a message naming the URL; nothing is skipped.
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex, OnceLock};

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use kaal_core::Adapter;
use kaal_diesel::testing::{fresh_database_name, Conformance, SqlBackend};
use kaal_diesel_postgres::{PgAdvisoryAdapter, PgDialect, PgStore};

pub use kaal_diesel::testing::{database_of, logs, text_on, with_database};

/// The server URL when `KAAL_POSTGRES_URL` is not set.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Prefix of the databases the tests create (and the only ones they drop).
const DB_PREFIX: &str = "kaal_test";

/// A fresh database, dropped when the guard drops.
pub type TempDb = kaal_diesel::testing::TempDb<PgHooks>;

/// The server the tests run against.
pub fn server_url() -> String {
    std::env::var("KAAL_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_string())
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

/// What kaal-diesel's shared store behaviours need of PostgreSQL: a fresh database
/// `kaal_test_<pid>_<n>` per test, plain connections, and PostgreSQL's SQL for times.
#[derive(Debug, Clone, Copy, Default)]
pub struct PgHooks;

impl SqlBackend for PgHooks {
    type Dialect = PgDialect;
    type Connection = PgConnection;

    fn create_database(&self) -> String {
        let name = fresh_database_name(DB_PREFIX);
        with_admin(|conn| {
            // One statement per call: a multi-statement string runs as one transaction,
            // which CREATE / DROP DATABASE refuse.
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

    fn drop_database(&self, url: &str) {
        let name = database_of(url);
        if !name.starts_with(&format!("{DB_PREFIX}_"))
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
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

    fn now_plus(&self, seconds: i64) -> String {
        format!("((now() AT TIME ZONE 'UTC') + interval '{seconds} seconds')")
    }

    fn seconds_until(&self, column: &str) -> String {
        format!("extract(epoch FROM {column} - (now() AT TIME ZONE 'UTC'))::numeric")
    }

    fn outage(&self, url: &str) -> Option<Box<dyn kaal_testkit::Outage>> {
        Some(Box::new(kaal_testkit::TcpCut::new(url, 5432)))
    }
}

/// The lease-table store: every node its own pool.
pub const PG_LEASES: Conformance<PgHooks> = Conformance::leases(PgHooks);

/// The advisory-lock adapter: every node its own lock session and pool.
pub const PG_ADVISORY: Conformance<PgHooks> =
    Conformance::session_locks(PgHooks, |url| Arc::new(open_advisory(url)));

/// A new lease store (own pool) on `url`.
pub fn open(url: &str) -> PgStore {
    PgStore::open(url).unwrap_or_else(|err| panic!("cannot open store {url}: {err}"))
}

/// A new advisory adapter (own session and pool) on `url`.
pub fn open_advisory(url: &str) -> PgAdvisoryAdapter {
    PgAdvisoryAdapter::open(url)
        .unwrap_or_else(|err| panic!("cannot open advisory adapter {url}: {err}"))
}
