//! Running a backend's embedded migrations.

use std::error::Error;

use diesel::backend::Backend;
use diesel::migration::MigrationSource;
use diesel_migrations::MigrationHarness;

/// Runs the migrations of `source` that have not run on `conn`; returns the versions
/// applied, oldest first. A second run applies nothing.
///
/// Diesel runs each migration in a transaction. Callers that may race other processes wrap
/// this in their write transaction (SQLite: `BEGIN IMMEDIATE`), so the second process waits
/// and then finds nothing to do instead of failing on the migrations table.
pub fn run_pending<C, DB, S>(
    conn: &mut C,
    source: S,
) -> Result<Vec<String>, Box<dyn Error + Send + Sync>>
where
    DB: Backend,
    C: MigrationHarness<DB>,
    S: MigrationSource<DB>,
{
    let applied = conn.run_pending_migrations(source)?;
    Ok(applied.iter().map(ToString::to_string).collect())
}
