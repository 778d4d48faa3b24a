//! [`SqliteDialect`]: SQLite's side of [`kaal_diesel::Dialect`].

use std::error::Error as StdError;

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error};
use diesel::SqliteConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations};
use kaal_diesel::schema::kaal_dispatches;
use kaal_diesel::{ConnectionPool, Dialect, JsonBatch, JsonBatchDialect, JsonBatchSql, OpenError};

use crate::options::SqliteOptions;
use crate::{open, sql, BACKEND};

/// The migrations of `migrations/sqlite`, compiled into the crate.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");

/// SQLite's statements and settings for [`DieselStore`](kaal_diesel::DieselStore); use it
/// through [`SqliteStore`](crate::SqliteStore).
#[derive(Debug, Clone, Copy, Default)]
pub struct SqliteDialect;

impl Dialect for SqliteDialect {
    type Connection = SqliteConnection;
    type Options = SqliteOptions;
    const NAME: &'static str = BACKEND;
    const NOW_SQL: &'static str = sql::NOW;
    const TABLE_EXISTS_SQL: &'static str = sql::TABLE_EXISTS;
    const UNIQUE_INDEXES_SQL: &'static str = sql::UNIQUE_INDEXES_ON;
    type Steps = JsonBatch;

    fn connect(
        locator: &str,
        options: &SqliteOptions,
    ) -> Result<(ConnectionPool<Self>, String), OpenError> {
        open::connect(locator, options)
    }

    fn write_transaction<T, E, F>(conn: &mut SqliteConnection, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut SqliteConnection) -> Result<T, E>,
        E: From<Error>,
    {
        conn.immediate_transaction(f)
    }

    /// `BEGIN IMMEDIATE`, as every write transaction here: SQLite takes its one write lock
    /// on the whole database at `BEGIN`, so no other write transaction — of this process or
    /// another, on this job or any other — runs until this one has committed or rolled back
    /// (a waiting writer waits up to the busy timeout, then fails: an error, never a wrong
    /// answer). The lock is granted before the transaction reads anything, so its reads see
    /// the newest commit: what `f` reads includes every run an earlier job transaction
    /// started.
    fn job_transaction<T, E, F>(conn: &mut SqliteConnection, job: &str, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut SqliteConnection) -> Result<T, E>,
        E: From<Error>,
    {
        let _ = job;
        conn.immediate_transaction(f)
    }

    /// The largest id in `kaal_dispatches` plus one (1 for an empty table): the id SQLite
    /// would give the next row *before* the row being replaced is deleted. After the delete
    /// it would give the deleted row's id again when that was the largest, and a rerun's
    /// fencing token must be larger than the lost run's.
    fn replacement_dispatch_id(conn: &mut SqliteConnection) -> QueryResult<Option<i64>> {
        let largest: Option<i64> = kaal_dispatches::table
            .select(diesel::dsl::max(kaal_dispatches::id))
            .get_result(conn)?;
        Ok(Some(largest.unwrap_or(0) + 1))
    }

    fn is_contention(error: &Error) -> bool {
        match error {
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => true,
            Error::DatabaseError(_, info) => open::CONTENTION_MESSAGES
                .iter()
                .any(|message| info.message().starts_with(message)),
            _ => false,
        }
    }

    fn run_migrations(
        conn: &mut SqliteConnection,
    ) -> Result<Vec<String>, Box<dyn StdError + Send + Sync>> {
        // BEGIN IMMEDIATE: a second process migrating at the same time waits for the first
        // and then finds nothing to do.
        conn.immediate_transaction(|conn| kaal_diesel::run_pending(conn, MIGRATIONS))
    }
}

impl JsonBatchDialect for SqliteDialect {
    const JSON_BATCH: JsonBatchSql = sql::STATEMENTS;
}
