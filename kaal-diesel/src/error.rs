//! [`OpenError`]: what can go wrong opening, checking or migrating a kaal database.
//!
//! Lease and registry failures are kaal-core's [`LockError`](kaal_core::LockError) and
//! [`RegistryError`](kaal_core::RegistryError); their messages name the backend, the
//! operation and the key, e.g. `SQLite acquire failed for kaal:dispatch:a:60: disk I/O error`.

use std::path::PathBuf;

use thiserror::Error;

/// Opening a store, checking its tables or running its migrations failed. Every variant
/// names the backend and the database (a path, or a URL with its password hidden) and says
/// what is wrong; none of these failures has written anything to the database.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The locator (path or URL) cannot be used.
    #[error("invalid {backend} database locator {locator:?}: {reason}")]
    InvalidLocator {
        /// `SQLite`, `PostgreSQL`, `MySQL`.
        backend: &'static str,
        /// What was given.
        locator: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The database file would be created in a directory that does not exist.
    #[error(
        "cannot open {backend} database {locator}: directory {} does not exist (kaal does \
         not create directories)",
        directory.display()
    )]
    MissingDirectory {
        /// The backend.
        backend: &'static str,
        /// The database path.
        locator: String,
        /// The missing directory.
        directory: PathBuf,
    },
    /// The file exists but is not a database of this backend; it was left untouched.
    #[error("cannot open {backend} database {locator}: {reason}; the file was left untouched")]
    NotADatabase {
        /// The backend.
        backend: &'static str,
        /// The database path.
        locator: String,
        /// What was found instead.
        reason: String,
    },
    /// The database could not be reached or a connection not be set up.
    #[error("cannot connect to {backend} database {locator}: {cause}")]
    Connect {
        /// The backend.
        backend: &'static str,
        /// The database.
        locator: String,
        /// The cause reported by the driver or pool.
        cause: String,
    },
    /// A kaal table exists but lacks what kaal needs (a column, a unique index).
    #[error(
        "{backend} database {locator}: table {table} does not have the shape kaal needs \
         (columns {expected}): {cause}"
    )]
    SchemaMismatch {
        /// The backend.
        backend: &'static str,
        /// The database.
        locator: String,
        /// The table.
        table: &'static str,
        /// The columns kaal reads and writes.
        expected: &'static str,
        /// What the database reported.
        cause: String,
    },
    /// A kaal table does not exist yet.
    #[error(
        "{backend} database {locator}: table {table} does not exist; run the migrations \
         first (`run_migrations()` or `kaal migrate`)"
    )]
    MissingTable {
        /// The backend.
        backend: &'static str,
        /// The database.
        locator: String,
        /// The missing table.
        table: &'static str,
    },
    /// A kaal table lacks a column a migration adds: the migrations have not run on this
    /// database yet (e.g. `kaal_definitions` as the Ruby gem or kaal before namespaced
    /// definitions created it, without `namespace`; or kaal's own before definitions
    /// recorded when their schedule came into force, without `schedule_since`; or
    /// `kaal_dispatches` before the run lifecycle, without `started_at`).
    #[error(
        "{backend} database {locator}: table {table} has no {column} column yet; run the \
         migrations first (`run_migrations()` or `kaal migrate`), which add it and keep \
         every row"
    )]
    MigrationPending {
        /// The backend.
        backend: &'static str,
        /// The database.
        locator: String,
        /// The table.
        table: &'static str,
        /// The missing column.
        column: &'static str,
    },
    /// Running the embedded migrations failed (each migration runs in a transaction, so a
    /// failed one left nothing behind).
    #[error("{backend} database {locator}: migrations failed: {cause}")]
    Migration {
        /// The backend.
        backend: &'static str,
        /// The database.
        locator: String,
        /// What failed.
        cause: String,
    },
}

/// `error`'s message followed by those of its sources, joined by `: ` (a message that
/// repeats the previous one is left out). Diesel's deserialization errors keep the useful
/// part ("metadata is not a JSON object") in a source.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut last = text.clone();
    let mut source = error.source();
    while let Some(next) = source {
        let message = next.to_string();
        if !last.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        last = message;
        source = next.source();
    }
    text
}
