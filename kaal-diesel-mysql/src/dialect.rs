//! [`MysqlDialect`]: MySQL's side of [`kaal_diesel::Dialect`].

use std::error::Error as StdError;

use diesel::mysql::MysqlConnection;
use diesel::result::{DatabaseErrorKind, Error};
use diesel::sql_types::{BigInt, Nullable};
use diesel::{Connection, QueryResult, RunQueryDsl};
use diesel_migrations::{embed_migrations, EmbeddedMigrations};
use kaal_diesel::{ConnectionPool, Dialect, OpenError, Statement, TableShape};

use crate::options::MysqlOptions;
use crate::{collation, job_lock, open, sql, BACKEND};

/// The migrations of `migrations/mysql`, compiled into the crate.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/mysql");

/// MySQL's statements and settings for [`DieselStore`](kaal_diesel::DieselStore); use it
/// through [`MysqlStore`](crate::MysqlStore).
#[derive(Debug, Clone, Copy, Default)]
pub struct MysqlDialect;

/// The start of InnoDB's message for error 1205, which Diesel reports as
/// `DatabaseErrorKind::Unknown`.
const LOCK_WAIT_TIMEOUT: &str = "Lock wait timeout exceeded";

/// Serializes concurrent migrations of one database (named locks are server-wide, so the
/// name carries the database's name, cut to fit the 64-character limit). Waits up to 60 s.
const LOCK_MIGRATIONS: &str =
    "SELECT GET_LOCK(CONCAT('kaal:migrations:', LEFT(DATABASE(), 47)), 60)";

/// Gives [`LOCK_MIGRATIONS`] back.
const UNLOCK_MIGRATIONS: &str =
    "SELECT RELEASE_LOCK(CONCAT('kaal:migrations:', LEFT(DATABASE(), 47)))";

impl Dialect for MysqlDialect {
    type Connection = MysqlConnection;
    type Options = MysqlOptions;
    const NAME: &'static str = BACKEND;
    const NOW_SQL: &'static str = sql::NOW;
    const TABLE_EXISTS_SQL: &'static str = sql::TABLE_EXISTS;
    const UNIQUE_INDEXES_SQL: &'static str = sql::UNIQUE_INDEXES_ON;
    type Steps = sql::MysqlSteps;

    fn connect(
        locator: &str,
        options: &MysqlOptions,
    ) -> Result<(ConnectionPool<Self>, String), OpenError> {
        open::connect(locator, options)
    }

    fn lock_definitions(
        conn: &mut MysqlConnection,
        namespace: &str,
        key: Option<&str>,
    ) -> QueryResult<()> {
        kaal_diesel::lock_definition_rows(conn, namespace, key)
    }

    /// `GET_LOCK` on the job's named lock before `BEGIN`, the transaction, `RELEASE_LOCK`
    /// after it ended; see the `job_lock` module for why that excludes every other job
    /// transaction of the job and lets this one see what they committed. A lock not granted
    /// within 5 s is an error.
    fn job_transaction<T, E, F>(conn: &mut MysqlConnection, job: &str, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut MysqlConnection) -> Result<T, E>,
        E: From<Error>,
    {
        let granted = Statement::new(job_lock::LOCK_JOB)
            .bind(job)
            .returning::<Nullable<BigInt>>()
            .get_result::<Option<i64>>(conn)?;
        if granted != Some(1) {
            let cause = match granted {
                Some(_) => format!(
                    "the job lock of {job} was not granted within {} s (another node held it)",
                    job_lock::JOB_LOCK_WAIT_SECONDS
                ),
                None => format!("GET_LOCK failed for the job lock of {job}"),
            };
            return Err(Error::DatabaseError(DatabaseErrorKind::Unknown, Box::new(cause)).into());
        }
        let outcome = conn.transaction(f);
        if let Err(err) = Statement::new(job_lock::UNLOCK_JOB).bind(job).execute(conn) {
            // The transaction's outcome stands (it may have started a run); the connection
            // failed, and its lock ends with its session.
            log::warn!("{BACKEND}: could not give back the job lock of {job}: {err}");
        }
        outcome
    }

    fn is_contention(error: &Error) -> bool {
        match error {
            Error::DatabaseError(
                DatabaseErrorKind::UniqueViolation | DatabaseErrorKind::SerializationFailure,
                _,
            ) => true,
            Error::DatabaseError(_, info) => info.message().starts_with(LOCK_WAIT_TIMEOUT),
            _ => false,
        }
    }

    fn run_migrations(
        conn: &mut MysqlConnection,
    ) -> Result<Vec<String>, Box<dyn StdError + Send + Sync>> {
        // MySQL's DDL commits implicitly, so a transaction cannot keep two processes from
        // migrating at once; a named lock does: the second waits, then finds nothing to do.
        let locked = Statement::new(LOCK_MIGRATIONS)
            .returning::<Nullable<BigInt>>()
            .get_result::<Option<i64>>(conn)?;
        if locked != Some(1) {
            return Err("another process kept the migration lock for 60 s".into());
        }
        let applied = kaal_diesel::run_pending(conn, MIGRATIONS);
        let unlocked = Statement::new(UNLOCK_MIGRATIONS).execute(conn);
        let applied = applied?;
        unlocked?;
        Ok(applied)
    }

    fn check_statements(
        conn: &mut MysqlConnection,
        _shape: TableShape,
    ) -> Result<(), (&'static str, Error)> {
        kaal_diesel::require_unique_indexes(conn, Self::UNIQUE_INDEXES_SQL)?;
        for table in ["kaal_locks", "kaal_dispatches", "kaal_definitions"] {
            collation::warn_unless_binary_keys(conn, table);
        }
        Ok(())
    }
}
