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

    /// A READ COMMITTED transaction whose first statement waits for the job's
    /// transaction-scoped advisory lock; see the `job_lock` module for why that excludes
    /// every other job transaction of the job and lets this one see what they committed.
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
