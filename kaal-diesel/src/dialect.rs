//! [`Dialect`]: what a database-specific backend crate supplies to the shared store.

use std::error::Error as StdError;
use std::fmt::Debug;
use std::time::Duration;

use chrono::{DateTime, Utc};

use diesel::r2d2::{Pool, R2D2Connection};
use diesel::result::Error;
use diesel::{Connection, QueryResult};
use kaal_core::DispatchStatus;

use crate::checks::require_unique_indexes;
use crate::claim_queries::ClaimQueries;
use crate::error::OpenError;
use crate::pool::CheckedManager;
use crate::queries::SharedQueries;
use crate::run_queries::{store_now, RunQueries, RunRow};
use crate::shape::TableShape;
use crate::time::DbTime;

/// How [`ClaimSteps::upsert_dispatches`] treats a pair that has a row already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DispatchWrite {
    /// Overwrite it (the administrative [`log_dispatch`](kaal_core::DispatchRegistry::log_dispatch)).
    Upsert,
    /// Leave it as it is and write nothing for that pair: the commit point of a claim
    /// (`ON CONFLICT DO NOTHING`, `INSERT IGNORE`).
    InsertOnly,
}

/// The pool a [`DieselStore`](crate::DieselStore) runs on.
pub type ConnectionPool<D> = Pool<CheckedManager<<D as Dialect>::Connection>>;

/// The SQL that differs between databases, and how to connect to one.
///
/// Mostly data: the statements that differ per database are constants
/// ([`NOW_SQL`](Dialect::NOW_SQL), [`TABLE_EXISTS_SQL`](Dialect::TABLE_EXISTS_SQL),
/// [`UNIQUE_INDEXES_SQL`](Dialect::UNIQUE_INDEXES_SQL), and the lease and dispatch
/// statements of a [`JsonBatchDialect`](crate::JsonBatchDialect)); the Rust that binds them
/// and collects their answers is written once in this crate. What a backend writes as code
/// is what only it can say: how to connect, its write transaction, which errors are
/// contention, its migrations, and steps that need more than one statement.
///
/// A backend crate implements `Dialect` on a marker type and gets a complete store —
/// [`Adapter`](kaal_core::Adapter), [`DispatchRegistry`](kaal_core::DispatchRegistry) and
/// [`DefinitionRegistry`](kaal_core::DefinitionRegistry) — as
/// [`DieselStore<ItsDialect>`](crate::DieselStore). Everything that is the same SQL everywhere
/// comes from [`SharedQueries`]; error mapping, definition rules, schema checks, migrations
/// plumbing and pooling come from this crate.
///
/// Lease statements must let the **database's clock** decide expiry (compare `expires_at`
/// with the database's current time, never with a time computed on the node), so a node
/// whose clock is skewed can neither steal a live lease nor keep one past its ttl.
pub trait Dialect: Sized + Send + Sync + 'static {
    /// The Diesel connection.
    type Connection: SharedQueries + ClaimQueries + RunQueries + R2D2Connection + Send + 'static;
    /// Connection settings (pool size, timeouts, durability...), with sensible defaults.
    type Options: Default + Clone + Debug + Send + Sync;
    /// The backend's name in messages: `SQLite`, `PostgreSQL`, `MySQL`.
    const NAME: &'static str;
    /// A `SELECT` of one row, one column: the database's current time, UTC, in the type and
    /// precision of the timestamp columns. The database's clock decides lease pruning, node
    /// liveness and the latest fire time a claim is accepted for.
    const NOW_SQL: &'static str;
    /// A `SELECT` of one `BigInt`: how many tables named by its one parameter exist in the
    /// database the connection uses (0 or 1).
    const TABLE_EXISTS_SQL: &'static str;
    /// A `SELECT` of one `BigInt`: how many unique, non-partial indexes on plain columns of
    /// a table (first parameter) cover exactly the given columns (second parameter, the
    /// column names comma-separated, in index order) — the upserts' conflict targets.
    const UNIQUE_INDEXES_SQL: &'static str;

    /// How leases are claimed and released and dispatches recorded and looked up:
    /// [`JsonBatch`](crate::JsonBatch) for a database that does each in one statement
    /// (it then implements [`JsonBatchDialect`](crate::JsonBatchDialect) with its SQL), or
    /// the backend's own [`ClaimSteps`] where a step takes several statements (MySQL).
    ///
    /// These steps were methods of `Dialect` (`claim`, `claim_many`, `release`,
    /// `upsert_dispatches`, `dispatched_many`) until the statements became data; they are
    /// now the methods of [`ClaimSteps`], with the same meaning, called as
    /// `D::Steps::claim(...)`.
    type Steps: ClaimSteps<Self>;

    /// Opens a pool on `locator` (a path or URL), checking what can be checked before
    /// anything is written. Returns the pool and the locator as it should appear in messages
    /// (with any password hidden).
    fn connect(
        locator: &str,
        options: &Self::Options,
    ) -> Result<(ConnectionPool<Self>, String), OpenError>;

    /// Runs `f` in a transaction that takes the write lock at its start where the database
    /// distinguishes (SQLite: `BEGIN IMMEDIATE`), so read-then-write sequences cannot be
    /// interleaved or fail half-way on a lock upgrade. The default is a plain transaction
    /// (PostgreSQL, MySQL: their writes take row locks as they go); SQLite overrides it with
    /// `BEGIN IMMEDIATE`.
    fn write_transaction<T, E, F>(conn: &mut Self::Connection, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Self::Connection) -> Result<T, E>,
        E: From<Error>,
    {
        conn.transaction(f)
    }

    /// Runs `f` in a write transaction that **no other `job_transaction` of the same `job`
    /// overlaps, in any process**, and whose statements see every row the earlier ones
    /// committed: what makes [`start_run_alone`](kaal_core::DispatchRegistry::start_run_alone)
    /// one atomic step per job (its check that no other run of the job is going, then its
    /// start). `job` is a dispatch-log key.
    ///
    /// Required, with no default: a plain transaction does not serialise two transactions
    /// that read the same rows and then each update a *different* row (each sees the other's
    /// row unchanged), so a backend must say how it excludes them. SQLite: `BEGIN IMMEDIATE`
    /// (one writer at a time, and the writer reads the newest commit); PostgreSQL: a
    /// transaction-scoped advisory lock on the job, taken first, in a READ COMMITTED
    /// transaction; MySQL: a named lock on the job (`GET_LOCK`) taken before the transaction
    /// begins and given back after it ends.
    ///
    /// Statements outside any `job_transaction` may write the job's rows meanwhile — a run's
    /// outcome, a lost run recorded `abandoned` or rerun, a new claim — but these only end
    /// runs or add claims: they can make the check answer "busy" for a run that has just
    /// ended, never "free" while a run is going. Only a plain
    /// [`start_run`](kaal_core::DispatchRegistry::start_run) starts a run outside it, and the
    /// coordinator uses that only for jobs whose `overlap` is `allow` (a policy every node
    /// reads from the one stored definition).
    fn job_transaction<T, E, F>(conn: &mut Self::Connection, job: &str, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Self::Connection) -> Result<T, E>,
        E: From<Error>;

    /// The id to give a dispatch row inserted in place of a row the same transaction deletes
    /// ([`rerun_lost_run`](kaal_core::DispatchRegistry::rerun_lost_run)), read **before** the
    /// delete: `None` lets the table's sequence choose, right for databases whose sequence
    /// never hands out an id twice (PostgreSQL's sequences, MySQL's `AUTO_INCREMENT`), so the
    /// new row's id — its fencing token — is larger than the deleted row's. SQLite, which
    /// gives a new row the largest id in the table plus one, would give the deleted row's id
    /// again when it was the largest, so it answers that largest id plus one itself.
    fn replacement_dispatch_id(conn: &mut Self::Connection) -> QueryResult<Option<i64>> {
        let _ = conn;
        Ok(None)
    }

    /// Inside a [`write_transaction`](Dialect::write_transaction), as its first statement:
    /// locks the stored definitions of `namespace` (only the one of `key`, when given) until
    /// the transaction ends, so that what the transaction reads of them next is what it
    /// overwrites — no other writer's change between the read and the write is lost (an
    /// operator's `disable` during a `kaal apply`, say). The default does nothing, for
    /// databases whose write transaction already excludes every other writer (SQLite's
    /// `BEGIN IMMEDIATE`); PostgreSQL and MySQL run `SELECT ... FOR UPDATE`. A key inserted
    /// concurrently is not locked; the insert then fails on the unique index instead.
    fn lock_definitions(
        conn: &mut Self::Connection,
        namespace: &str,
        key: Option<&str>,
    ) -> QueryResult<()> {
        let _ = (conn, namespace, key);
        Ok(())
    }

    /// The database's current time ([`NOW_SQL`](Dialect::NOW_SQL)).
    fn database_now(conn: &mut Self::Connection) -> QueryResult<DbTime> {
        conn.select_time(Self::NOW_SQL)
    }

    /// Whether `error` means "another writer holds the row or the database" (a unique
    /// violation, SQLite's busy/locked, a deadlock or lock-wait timeout...): an acquire that
    /// fails so reports "not acquired" instead of an error.
    fn is_contention(error: &Error) -> bool;

    /// Whether `table` exists in the database the connection uses
    /// ([`TABLE_EXISTS_SQL`](Dialect::TABLE_EXISTS_SQL)).
    fn table_exists(conn: &mut Self::Connection, table: &str) -> QueryResult<bool> {
        conn.select_count(Self::TABLE_EXISTS_SQL, &[table])
            .map(|count| count > 0)
    }

    /// Runs the backend's embedded migrations that have not run yet; returns the versions
    /// applied. Must be idempotent and safe when several processes run it at once.
    fn run_migrations(
        conn: &mut Self::Connection,
    ) -> Result<Vec<String>, Box<dyn StdError + Send + Sync>>;

    /// Schema checks beyond the columns: `Err` carries the table at fault and the cause.
    /// The default requires the unique indexes the claims and upserts rely on
    /// ([`require_unique_indexes`](crate::require_unique_indexes) with
    /// [`UNIQUE_INDEXES_SQL`](Dialect::UNIQUE_INDEXES_SQL)); a backend adds its own checks
    /// by overriding it and calling that first.
    fn check_statements(
        conn: &mut Self::Connection,
        shape: TableShape,
    ) -> Result<(), (&'static str, Error)> {
        let _ = shape;
        require_unique_indexes(conn, Self::UNIQUE_INDEXES_SQL)
    }
}

/// How a backend claims leases, releases them, records dispatches and looks them up: the
/// steps [`DieselStore`](crate::DieselStore) runs on `D`'s connections. Chosen by
/// [`Dialect::Steps`]; [`JsonBatch`](crate::JsonBatch) for databases that do each in one statement.
///
/// Lease statements must let the **database's clock** decide expiry (compare `expires_at`
/// with the database's current time, never with a time computed on the node), so a node
/// whose clock is skewed can neither steal a live lease nor keep one past its ttl.
pub trait ClaimSteps<D: Dialect> {
    /// Takes `key` for `ttl` if it is free or its lease has expired (by the database's
    /// clock); returns whether it did.
    fn claim(
        conn: &mut D::Connection,
        key: &str,
        ttl: Duration,
        shape: TableShape,
    ) -> QueryResult<bool>;

    /// [`claim`](ClaimSteps::claim) for every key of `keys` in as few statements as the
    /// database allows; element `i` says whether `keys[i]` was taken (a key given twice is
    /// taken once: its first position says so, as a loop would).
    fn claim_many(
        conn: &mut D::Connection,
        keys: &[String],
        ttl: Duration,
        shape: TableShape,
    ) -> QueryResult<Vec<bool>>;

    /// Deletes the lease of `key`; returns whether a lease that had not expired (by the
    /// database's clock) was deleted.
    fn release(conn: &mut D::Connection, key: &str) -> QueryResult<bool>;

    /// Records `(key, fire_time)` of every pair as dispatched by `node_id` with `status` at
    /// `dispatched_at`; an existing record of the same pair is overwritten or left alone, as
    /// `write` says.
    fn upsert_dispatches(
        conn: &mut D::Connection,
        pairs: &[(String, DateTime<Utc>)],
        node_id: &str,
        status: DispatchStatus,
        dispatched_at: DbTime,
        shape: TableShape,
        write: DispatchWrite,
    ) -> QueryResult<()>;

    /// Element `i` says whether `pairs[i]` has a dispatch record.
    fn dispatched_many(
        conn: &mut D::Connection,
        pairs: &[(String, DateTime<Utc>)],
    ) -> QueryResult<Vec<bool>>;

    /// Starts the run of `run`: moves its row from `claimed` to `dispatched` only if
    /// `run.node_id` owns it and it is still `claimed`, stamping `started_at` and
    /// `dispatched_at` with the store's clock (`at`, or the database's clock when `None`)
    /// and `attempt = 1`. Returns the row's id (the run's fencing token) when it did, `None`
    /// when it did not.
    ///
    /// The default is for databases without `RETURNING` (MySQL): the compare-and-set
    /// `UPDATE` decides, then the id of the row — which this node now owns, and whose id no
    /// update changes — is read back by its key and fire time. A row deleted in between
    /// (nothing but an administrative delete can) is an error, and the job is not run.
    /// [`JsonBatch`](crate::JsonBatch) does it in one `UPDATE … RETURNING id`.
    fn start_run(
        conn: &mut D::Connection,
        run: RunRow<'_>,
        at: Option<DbTime>,
        shape: TableShape,
    ) -> QueryResult<Option<i64>> {
        let now = store_now(at, D::NOW_SQL);
        if conn.start_run_row(run, now, shape.dispatch_timestamps)? == 0 {
            return Ok(None);
        }
        match conn.dispatch_row_id(run.key, run.fire_time)? {
            Some(id) => Ok(Some(id)),
            None => Err(Error::QueryBuilderError(
                format!(
                    "the run of {}@{} was started, but its row was deleted before its id \
                     could be read",
                    run.key, run.fire_time
                )
                .into(),
            )),
        }
    }
}
