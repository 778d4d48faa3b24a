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

    /// Takes a named lock on the job with `GET_LOCK` on the pooled connection **before**
    /// `BEGIN`, runs the transaction, and gives the lock back with `RELEASE_LOCK` after
    /// `COMMIT` (or `ROLLBACK`) has returned:
    ///
    /// * **Exclusion.** A named lock is held by one session at a time; every job
    ///   transaction of the job, from any connection of any process, asks for it first. So
    ///   they run one after another.
    /// * **Visibility.** The previous holder gives the lock back only after its `COMMIT`
    ///   returned, and this transaction begins only once it holds the lock, so its first
    ///   read comes after that commit. kaal's sessions run READ COMMITTED (each read takes a
    ///   fresh view); and even under REPEATABLE READ, InnoDB creates a transaction's read
    ///   view at its first consistent read — after the lock, since the lock is taken before
    ///   `BEGIN`, not inside the transaction. Either way the check sees the run the previous
    ///   holder started.
    /// * **No deadlock with row locks.** The lock is asked for outside any transaction, so
    ///   its session holds no row lock while it waits (and MySQL reports a cycle of
    ///   named-lock waits as an error instead of waiting for ever).
    /// * **A lock not granted within 5 s** is an error, not a "busy" answer: nothing is
    ///   written, and the coordinator tries again later. The lock is held for one short
    ///   transaction (three statements), so the wait is normally milliseconds.
    /// * **Given back in every case.** `RELEASE_LOCK` runs after the transaction, committed
    ///   or not. It fails only when the connection does: the server then ends the lock with
    ///   the session, and the pool drops the connection when its ping fails (a connection
    ///   left inside the transaction by a panic is dropped as broken, with the same effect).
    ///
    /// **The name.** Named locks belong to the whole server, and their names have at most
    /// 64 characters. A job lock is `kaal-job:` and the first 48 hex digits of SHA-256 of the
    /// connection's database name, `:` and the job's dispatch-log key (computed by the
    /// server, `SHA2(CONCAT(DATABASE(), ':', key), 256)`): 57 characters whatever the key's
    /// length, and fleets on different databases of one server never wait for each other.
    /// [`MysqlNamedLockAdapter`](crate::MysqlNamedLockAdapter)'s lock names are its
    /// namespace followed by a lock key, or a 64-character shortened form, and the
    /// coordinator's lock keys are `{namespace}:dispatch:{cron_key}:{fire_time}`; an
    /// adapter's lock could share a job lock's name only if an application acquired a key
    /// spelling `kaal-job:` and such a digest itself. Two jobs whose names shared the 192 bits
    /// would only start one after the other.
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
