//! [`SqliteDialect`]: SQLite's side of [`kaal_diesel::Dialect`].

use std::error::Error as StdError;

use diesel::result::{DatabaseErrorKind, Error};
use diesel::SqliteConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations};
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
