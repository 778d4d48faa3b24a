//! The PostgreSQL backend as the tests see it: every store a fresh database on the server
//! named by `KAAL_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`), created
//! through that URL's database and dropped after the test (`WITH (FORCE)`). [`PgHooks`]
//! runs kaal-diesel's shared store and session-lock behaviours, and ([`PG_LEASES`],
//! [`PG_ADVISORY`]) kaal-testkit's conformance suite.
//!
//! An unreachable server fails the test with a message naming the URL; nothing is skipped.
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex, OnceLock};

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use diesel_migrations::EmbeddedMigrations;
use kaal_core::Adapter;
use kaal_diesel::testing::{fresh_database_name, Conformance, SessionBackend, SqlBackend};
use kaal_diesel_postgres::{advisory_lock_id, PgAdvisoryAdapter, PgDialect, PgStore};

pub use kaal_diesel::testing::{database_of, logs, text_on, with_database};

/// The server URL when `KAAL_POSTGRES_URL` is not set.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Prefix of the databases the tests create (and the only ones they drop).
const DB_PREFIX: &str = "kaal_test";

/// The tables as the Ruby gem's current ActiveRecord migrations create them on PostgreSQL
/// (Rails 7: `t.string` is `character varying` without a length, `t.datetime` is
/// `timestamp(6)`, `metadata` is `text`; no `created_at` / `updated_at` on locks and
/// dispatches).
pub const RUBY_GEM_TABLES: &str = r#"
CREATE TABLE "kaal_dispatches" ("id" bigserial primary key, "key" character varying NOT NULL, "fire_time" timestamp(6) NOT NULL, "dispatched_at" timestamp(6) NOT NULL, "node_id" character varying NOT NULL, "status" character varying(50) DEFAULT 'dispatched' NOT NULL);
CREATE UNIQUE INDEX "index_kaal_dispatches_on_key_and_fire_time" ON "kaal_dispatches" ("key", "fire_time");
CREATE INDEX "index_kaal_dispatches_on_key" ON "kaal_dispatches" ("key");
CREATE TABLE "kaal_locks" ("id" bigserial primary key, "key" character varying NOT NULL, "acquired_at" timestamp(6) NOT NULL, "expires_at" timestamp(6) NOT NULL);
CREATE UNIQUE INDEX "index_kaal_locks_on_key" ON "kaal_locks" ("key");
CREATE INDEX "index_kaal_locks_on_expires_at" ON "kaal_locks" ("expires_at");
CREATE TABLE "kaal_definitions" ("id" bigserial primary key, "key" character varying NOT NULL, "cron" character varying NOT NULL, "enabled" boolean DEFAULT TRUE NOT NULL, "source" character varying NOT NULL, "metadata" text DEFAULT '{}' NOT NULL, "disabled_at" timestamp(6), "created_at" timestamp(6) NOT NULL, "updated_at" timestamp(6) NOT NULL);
CREATE UNIQUE INDEX "index_kaal_definitions_on_key" ON "kaal_definitions" ("key");
"#;

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

    const MIGRATIONS: EmbeddedMigrations = kaal_diesel_postgres::MIGRATIONS;
    const RUBY_GEM_TABLES: &'static str = RUBY_GEM_TABLES;
    const LOCK_TABLE_WITHOUT_EXPIRES_AT: &'static str = r#"CREATE TABLE kaal_locks (id bigserial primary key, "key" varchar(255) NOT NULL, acquired_at timestamp NOT NULL);
        INSERT INTO kaal_locks ("key", acquired_at) VALUES ('kept', '2026-01-01 00:00:00')"#;
    const COLUMNS_ADDED_TO_THE_GEMS_DEFINITIONS: [&'static str; 2] = [
        "namespace character varying NO 'kaal'::character varying",
        "schedule_since timestamp without time zone YES NULL",
    ];
    const COLUMNS_ADDED_TO_THE_GEMS_DISPATCHES: [&'static str; 4] = [
        "started_at timestamp without time zone YES NULL",
        "finished_at timestamp without time zone YES NULL",
        "attempt integer NO 0",
        "error text YES NULL",
    ];
    const DEFINITIONS_PRIMARY_KEY: Option<&'static str> = Some("kaal_definitions_pkey(id)");

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

    fn table_names(&self, url: &str) -> Vec<String> {
        self.texts(
            url,
            "SELECT table_name::text AS value FROM information_schema.tables \
             WHERE table_schema = current_schema() ORDER BY table_name",
        )
    }

    /// `table.column:type nullable default` of every column.
    fn schema_of(&self, url: &str, tables: &[&str]) -> String {
        let tables: Vec<String> = tables.iter().map(|table| format!("'{table}'")).collect();
        self.texts(
            url,
            &format!(
                "SELECT table_name || '.' || column_name || ':' || data_type || ' ' || is_nullable \
                 || ' ' || coalesce(column_default, 'NULL') AS value FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name IN ({}) \
                 ORDER BY table_name, ordinal_position",
                tables.join(", ")
            ),
        )
        .join("\n")
    }

    /// `name type nullable default`.
    fn table_columns(&self, url: &str, table: &str) -> Vec<String> {
        self.texts(
            url,
            &format!(
                "SELECT column_name || ' ' || data_type || ' ' || is_nullable || ' ' \
                 || coalesce(column_default, 'NULL') AS value FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = '{table}' \
                 ORDER BY ordinal_position"
            ),
        )
    }

    fn unique_indexes(&self, url: &str, table: &str) -> Vec<String> {
        self.texts(
            url,
            &format!(
                "SELECT i.relname::text || '(' || string_agg(a.attname::text, ',' ORDER BY k.n) || ')' AS value \
                 FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid \
                 JOIN pg_class t ON t.oid = x.indrelid \
                 CROSS JOIN LATERAL unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, n) \
                 JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum \
                 WHERE t.relname = '{table}' AND t.relnamespace = current_schema()::regnamespace \
                 AND x.indisunique GROUP BY i.relname ORDER BY i.relname"
            ),
        )
    }

    fn outage(&self, url: &str) -> Option<Box<dyn kaal_testkit::Outage>> {
        Some(Box::new(kaal_testkit::TcpCut::new(url, 5432)))
    }
}

/// What kaal-diesel's shared session-lock behaviours need of PostgreSQL: the advisory
/// adapter, and advisory locks as another session sees them — under the Ruby gem's ids
/// ([`advisory_lock_id`]), as a Ruby node would take them.
impl SessionBackend for PgHooks {
    type Locks = PgAdvisoryAdapter;

    const LOCKS_NAME: &'static str = "PostgreSQL advisory";

    fn open_locks(&self, url: &str) -> PgAdvisoryAdapter {
        open_advisory(url)
    }

    fn held_count(locks: &PgAdvisoryAdapter) -> usize {
        locks.held_count()
    }

    /// Takes the gem's lock id of `key` and gives it back, on a new connection.
    fn free_for_others(&self, db: &TempDb, key: &str) -> bool {
        let id = advisory_lock_id(key);
        db.text(&format!(
            "SELECT (pg_try_advisory_lock({id}) AND pg_advisory_unlock({id}))::text AS value"
        )) == "true"
    }

    /// The backend pid `pg_locks` lists as granted the advisory lock of the gem's id of
    /// `key` in this database (a bigint lock: high half in `classid`, low half in `objid`).
    fn holder_of(&self, db: &TempDb, key: &str) -> Option<String> {
        let bits = advisory_lock_id(key) as u64;
        let (high, low) = (bits >> 32, bits & 0xffff_ffff);
        db.texts(&format!(
            "SELECT pid::text AS value FROM pg_locks WHERE locktype = 'advisory' AND granted \
             AND objsubid = 1 AND classid = '{high}'::oid AND objid = '{low}'::oid \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ))
        .into_iter()
        .next()
    }

    fn kill_session(&self, db: &TempDb, pid: &str) {
        let pid: i32 = pid.parse().unwrap();
        assert_eq!(
            db.text(&format!(
                "SELECT pg_terminate_backend({pid})::text AS value"
            )),
            "true",
            "backend {pid} was not terminated"
        );
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
