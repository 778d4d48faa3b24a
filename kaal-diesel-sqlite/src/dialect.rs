//! [`SqliteDialect`]: SQLite's side of [`kaal_diesel::Dialect`].

use std::error::Error as StdError;
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::result::{DatabaseErrorKind, Error};
use diesel::{QueryResult, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations};
use kaal_core::DispatchStatus;
use kaal_diesel::{ConnectionPool, DbTime, Dialect, DispatchWrite, OpenError, TableShape};

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

    fn is_contention(error: &Error) -> bool {
        match error {
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => true,
            Error::DatabaseError(_, info) => open::CONTENTION_MESSAGES
                .iter()
                .any(|message| info.message().starts_with(message)),
            _ => false,
        }
    }

    fn table_exists(conn: &mut SqliteConnection, table: &str) -> QueryResult<bool> {
        sql::table_exists(conn, table)
    }

    fn run_migrations(
        conn: &mut SqliteConnection,
    ) -> Result<Vec<String>, Box<dyn StdError + Send + Sync>> {
        // BEGIN IMMEDIATE: a second process migrating at the same time waits for the first
        // and then finds nothing to do.
        conn.immediate_transaction(|conn| kaal_diesel::run_pending(conn, MIGRATIONS))
    }

    fn check_statements(
        conn: &mut SqliteConnection,
        _shape: TableShape,
    ) -> Result<(), (&'static str, Error)> {
        kaal_diesel::require_unique_indexes(conn, sql::UNIQUE_INDEXES_ON)
    }

    fn claim(
        conn: &mut SqliteConnection,
        key: &str,
        ttl: Duration,
        shape: TableShape,
    ) -> QueryResult<bool> {
        sql::claim(conn, key, ttl, shape)
    }

    fn claim_many(
        conn: &mut SqliteConnection,
        keys: &[String],
        ttl: Duration,
        shape: TableShape,
    ) -> QueryResult<Vec<bool>> {
        sql::claim_many(conn, keys, ttl, shape)
    }

    fn release(conn: &mut SqliteConnection, key: &str) -> QueryResult<bool> {
        sql::release(conn, key)
    }

    fn upsert_dispatches(
        conn: &mut SqliteConnection,
        pairs: &[(String, DateTime<Utc>)],
        node_id: &str,
        status: DispatchStatus,
        dispatched_at: DbTime,
        shape: TableShape,
        write: DispatchWrite,
    ) -> QueryResult<()> {
        sql::upsert_dispatches(conn, pairs, node_id, status, dispatched_at, shape, write)
    }

    fn dispatched_many(
        conn: &mut SqliteConnection,
        pairs: &[(String, DateTime<Utc>)],
    ) -> QueryResult<Vec<bool>> {
        sql::dispatched_many(conn, pairs)
    }
}
