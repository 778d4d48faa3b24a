//! [`PgDialect`]: PostgreSQL's side of [`kaal_diesel::Dialect`].

use std::error::Error as StdError;

use diesel::result::{DatabaseErrorKind, Error};
use diesel::{Connection, PgConnection, QueryResult, RunQueryDsl};
use diesel_migrations::{embed_migrations, EmbeddedMigrations};
use kaal_diesel::{
    ConnectionPool, Dialect, JsonBatch, JsonBatchDialect, JsonBatchSql, OpenError, Statement,
};

use crate::options::PgOptions;
use crate::{advisory_lock_id, job_lock, open, sql, BACKEND};

/// The migrations of `migrations/postgres`, compiled into the crate.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/postgres");

/// The advisory lock key that serializes migrations run by several processes at once.
const MIGRATION_LOCK_KEY: &str = "kaal:migrations";

/// Waits for the transaction-scoped advisory lock that serializes migrations. Parameter: the
/// lock id.
const LOCK_FOR_MIGRATIONS: &str = "SELECT pg_advisory_xact_lock(CAST(? AS bigint))";

/// PostgreSQL's messages for lock waits given up and deadlocks (SQLSTATE 55P03 and 40P01,
/// which Diesel reports as `DatabaseErrorKind::Unknown`).
const CONTENTION_MESSAGES: [&str; 3] = [
    "canceling statement due to lock timeout",
    "could not obtain lock",
    "deadlock detected",
];

/// PostgreSQL's statements and settings for [`DieselStore`](kaal_diesel::DieselStore); use it
/// through [`PgStore`](crate::PgStore).
#[derive(Debug, Clone, Copy, Default)]
pub struct PgDialect;

impl Dialect for PgDialect {
    type Connection = PgConnection;
    type Options = PgOptions;
    const NAME: &'static str = BACKEND;
    const NOW_SQL: &'static str = sql::NOW;
    const TABLE_EXISTS_SQL: &'static str = sql::TABLE_EXISTS;
    const UNIQUE_INDEXES_SQL: &'static str = sql::UNIQUE_INDEXES_ON;
    type Steps = JsonBatch;

    fn connect(
        locator: &str,
        options: &PgOptions,
    ) -> Result<(ConnectionPool<Self>, String), OpenError> {
        open::connect(locator, options)
    }

    fn lock_definitions(
        conn: &mut PgConnection,
        namespace: &str,
        key: Option<&str>,
    ) -> QueryResult<()> {
        kaal_diesel::lock_definition_rows(conn, namespace, key)
    }

    /// A READ COMMITTED transaction whose first statement is `SELECT
    /// pg_advisory_xact_lock(1801543020, <the first 4 bytes of MD5(job), big-endian>)` — a
    /// transaction-scoped advisory lock on the job, in kaal's class `0x6b61616c` ("kaal"):
    ///
    /// * **Exclusion.** The lock is held until the transaction commits or rolls back, by one
    ///   transaction at a time; every job transaction of the job, from any session of any
    ///   process, waits for it first. So they run one after another.
    /// * **Visibility.** PostgreSQL releases a transaction's locks only once its commit is
    ///   visible to new snapshots, and under READ COMMITTED every statement takes a new
    ///   snapshot, so the statements after the lock see what the previous holder committed —
    ///   the run it started. The isolation is set explicitly: under REPEATABLE READ or
    ///   SERIALIZABLE (a database's `default_transaction_isolation` can say so) the snapshot
    ///   would be the lock statement's own, taken *before* it waited, and the check would
    ///   miss that run.
    /// * **No deadlock with row locks.** The lock is the transaction's first statement, so
    ///   the transaction holds nothing while it waits, and only job transactions take it.
    /// * **A lock not granted** within the session's
    ///   [`lock_timeout`](crate::PgOptions::lock_timeout) (5 s by default) fails the call
    ///   with PostgreSQL's error; nothing is written.
    ///
    /// **It cannot meet kaal's other advisory locks.** PostgreSQL keeps the two key forms
    /// of advisory locks apart: a lock taken with one `bigint` and one taken with two
    /// `integer`s are different locks whatever the values (`pg_locks.objsubid` 1 and 2).
    /// kaal's session locks ([`PgAdvisoryAdapter`](crate::PgAdvisoryAdapter)), its migration
    /// lock and the Ruby gem's locks all use the one-`bigint` form. Advisory locks are per
    /// database, so fleets on other databases of the server never wait for each other. Two
    /// jobs whose keys share the 32 bits share a lock and start one after the other instead
    /// of at once (a wait of one short transaction), which changes no answer; so would an
    /// application's own two-integer advisory locks in class 1801543020 on the same
    /// database.
    fn job_transaction<T, E, F>(conn: &mut PgConnection, job: &str, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut PgConnection) -> Result<T, E>,
        E: From<Error>,
    {
        conn.build_transaction().read_committed().run(|conn| {
            Statement::new(job_lock::LOCK_JOB)
                .bind(job_lock::JOB_LOCK_CLASS.to_string())
                .bind(job_lock::job_lock_id(job).to_string())
                .execute(conn)?;
            f(conn)
        })
    }

    fn is_contention(error: &Error) -> bool {
        match error {
            Error::DatabaseError(
                DatabaseErrorKind::UniqueViolation | DatabaseErrorKind::SerializationFailure,
                _,
            ) => true,
            Error::DatabaseError(DatabaseErrorKind::Unknown, info) => CONTENTION_MESSAGES
                .iter()
                .any(|message| info.message().starts_with(message)),
            _ => false,
        }
    }

    fn run_migrations(
        conn: &mut PgConnection,
    ) -> Result<Vec<String>, Box<dyn StdError + Send + Sync>> {
        // One transaction holding an advisory lock: a second process migrating at the same
        // time waits for the first (Diesel runs each migration in a savepoint inside it) and
        // then finds nothing to do, instead of racing on `CREATE TABLE IF NOT EXISTS`.
        conn.transaction(|conn| {
            Statement::new(LOCK_FOR_MIGRATIONS)
                .bind(advisory_lock_id(MIGRATION_LOCK_KEY).to_string())
                .execute(conn)?;
            kaal_diesel::run_pending(conn, MIGRATIONS)
        })
    }
}

impl JsonBatchDialect for PgDialect {
    const JSON_BATCH: JsonBatchSql = sql::STATEMENTS;
}
