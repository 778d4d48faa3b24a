//! PostgreSQL: the lease store and the advisory-lock adapter, each in a fresh database on
//! the local server (`KAAL_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/test`),
//! and their raw SQL.

use std::sync::Arc;

use diesel::connection::SimpleConnection;
use diesel::sql_types::Bool;
use diesel::{Connection, PgConnection, RunQueryDsl};
use kaal_core::Adapter;
use kaal_diesel::Statement;
use kaal_diesel_postgres::{advisory_lock_id, PgAdvisoryAdapter, PgDialect, PgStore};

use crate::lease::{LeaseFixture, LeaseSql};
use crate::scratch::{server_url, ScratchDatabase};
use crate::session::{RawSession, SessionFixture};
use crate::target::{Fixture, Target};

/// The PostgreSQL lease table.
#[derive(Debug)]
pub struct PostgresLease;

/// PostgreSQL advisory locks ([`PgAdvisoryAdapter`]).
#[derive(Debug)]
pub struct PostgresAdvisory;

/// The database clock as the lease columns store it (UTC `timestamp`), and 125 s later.
/// Expands to the literal SQL of the two times (so the statements below are built from it
/// with `concat!`, not written out again).
macro_rules! times {
    () => {
        "statement_timestamp() AT TIME ZONE 'UTC', (statement_timestamp() AT TIME ZONE 'UTC') + interval '125 seconds'"
    };
}
const TIMES: &str = times!();

static LEASE_SQL: LeaseSql = LeaseSql {
    insert: concat!(
        r#"INSERT INTO kaal_locks ("key", acquired_at, expires_at) VALUES (?, "#,
        times!(),
        ")"
    ),
    // Insert, or take the row over only if its lease has expired (see the SQLite target).
    acquire: &[concat!(
        r#"INSERT INTO kaal_locks ("key", acquired_at, expires_at) VALUES (?, "#,
        times!(),
        r#") ON CONFLICT ("key") DO UPDATE SET acquired_at = EXCLUDED.acquired_at, expires_at = EXCLUDED.expires_at WHERE kaal_locks.expires_at <= EXCLUDED.acquired_at"#
    )],
    delete: r#"DELETE FROM kaal_locks WHERE "key" = ?"#,
    insert_many: r#"INSERT INTO kaal_locks ("key", acquired_at, expires_at) VALUES "#,
    row_times: TIMES,
};

/// Takes one advisory lock without waiting. Parameter: the lock id.
const TRY_LOCK: &str = "SELECT pg_try_advisory_lock(CAST(? AS bigint))";
/// Gives one advisory lock back. Parameter: the lock id.
const UNLOCK: &str = "SELECT pg_advisory_unlock(CAST(? AS bigint))";
/// Takes every lock of an array of ids, one row per id. Parameter: `{id,id,...}`.
const TRY_LOCK_MANY: &str =
    "SELECT pg_try_advisory_lock(claim.id) FROM unnest(CAST(? AS bigint[])) AS claim(id)";

fn server() -> String {
    server_url(
        "KAAL_POSTGRES_URL",
        "postgres://postgres@127.0.0.1:5432/test",
    )
}

/// A fresh database, dropped (its sessions ended) with the fixture.
fn scratch() -> ScratchDatabase<PgConnection> {
    ScratchDatabase::create(&server(), " WITH (FORCE)")
}

impl Target for PostgresLease {
    fn id(&self) -> &'static str {
        "postgres-lease"
    }

    fn label(&self) -> String {
        "PostgreSQL lease".into()
    }

    fn fresh(&self) -> Box<dyn Fixture> {
        let database = scratch();
        Box::new(LeaseFixture::<PgDialect>::open(
            database.url(),
            &LEASE_SQL,
            Box::new(database),
        ))
    }

    fn tick_targets(&self) -> bool {
        true
    }
}

impl Target for PostgresAdvisory {
    fn id(&self) -> &'static str {
        "postgres-advisory"
    }

    fn label(&self) -> String {
        "PostgreSQL advisory locks".into()
    }

    fn fresh(&self) -> Box<dyn Fixture> {
        let database = scratch();
        let url = database.url();
        PgStore::open(&url)
            .and_then(|store| store.run_migrations())
            .unwrap_or_else(|err| panic!("cannot migrate {url}: {err}"));
        let raw_url = url.clone();
        let open_raw = move || -> Box<dyn RawSession> {
            let conn = PgConnection::establish(&raw_url).expect("raw lock session");
            Box::new(RawAdvisory { conn })
        };
        let open = move || -> Arc<dyn Adapter> {
            Arc::new(PgAdvisoryAdapter::open(&url).expect("advisory adapter"))
        };
        Box::new(SessionFixture::new(
            Box::new(open),
            Box::new(open_raw),
            "one SELECT pg_try_advisory_lock(id) FROM unnest($1)",
            Box::new(database),
        ))
    }

    fn tick_targets(&self) -> bool {
        true
    }
}

/// Advisory locks taken by hand on one dedicated session, with the adapter's lock ids.
struct RawAdvisory {
    conn: PgConnection,
}

impl RawAdvisory {
    fn call(&mut self, sql: &'static str, key: &str) -> bool {
        Statement::new(sql)
            .bind(advisory_lock_id(key).to_string())
            .returning::<Bool>()
            .get_result(&mut self.conn)
            .expect("raw advisory statement")
    }
}

impl RawSession for RawAdvisory {
    fn try_lock(&mut self, key: &str) -> bool {
        self.call(TRY_LOCK, key)
    }

    fn unlock(&mut self, key: &str) -> bool {
        self.call(UNLOCK, key)
    }

    fn try_lock_many(&mut self, keys: &[String]) -> usize {
        let ids: Vec<String> = keys
            .iter()
            .map(|key| advisory_lock_id(key).to_string())
            .collect();
        let won: Vec<bool> = Statement::new(TRY_LOCK_MANY)
            .bind(format!("{{{}}}", ids.join(",")))
            .returning::<Bool>()
            .load(&mut self.conn)
            .expect("raw advisory batch");
        won.into_iter().filter(|won| *won).count()
    }

    fn unlock_all(&mut self) {
        self.conn
            .batch_execute("SELECT pg_advisory_unlock_all()")
            .expect("raw unlock of every advisory lock");
    }
}
