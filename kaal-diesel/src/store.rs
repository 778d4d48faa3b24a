//! [`DieselStore`]: the kaal tables of one database behind a connection pool.

use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use diesel::r2d2::PooledConnection;
use diesel::result::Error;
use kaal_core::{Clock, SystemClock};

use crate::claim_queries::ClaimQueries;
use crate::dialect::{ConnectionPool, Dialect};
use crate::error::{error_chain, OpenError};
use crate::pool::CheckedManager;
use crate::queries::{columns, SharedQueries};
use crate::shape::TableShape;
use crate::time::DbTime;

/// A connection checked out of a store's pool.
pub type StoreConnection<D> = PooledConnection<CheckedManager<<D as Dialect>::Connection>>;

/// The kaal tables (leases, dispatch log, definitions) of one database, behind an r2d2 pool
/// of Diesel connections; `D` supplies the SQL that differs per database.
///
/// It implements [`Adapter`](kaal_core::Adapter),
/// [`DispatchRegistry`](kaal_core::DispatchRegistry) and
/// [`DefinitionRegistry`](kaal_core::DefinitionRegistry); the adapter's registry accessors
/// return the store itself. Each backend crate names it, e.g.
/// `kaal_diesel_sqlite::SqliteStore = DieselStore<SqliteDialect>`.
///
/// Definition timestamps (`created_at`, `updated_at`, `disabled_at`, `schedule_since`) come
/// from the database's clock, read in the write's transaction; so do the run lifecycle's
/// (`started_at`, `finished_at`, and `dispatched_at` of
/// [`start_run`](kaal_core::DispatchRegistry::start_run) and
/// [`record_run`](kaal_core::DispatchRegistry::record_run), read inside their one statement)
/// and a claim's `dispatched_at`; `dispatched_at` of the administrative upsert and of
/// [`transition`](kaal_core::DispatchRegistry::transition) comes from the store's [`Clock`]
/// (the system clock); lease expiry and claim horizons from the database's clock.
/// [`with_clock`](DieselStore::with_clock) makes every registry timestamp but a claim's come
/// from the clock given instead (simulated time in tests).
pub struct DieselStore<D: Dialect> {
    pool: ConnectionPool<D>,
    locator: String,
    shape: OnceLock<TableShape>,
    clock: Arc<dyn Clock>,
    /// Whether definition writes are stamped by the database's clock (no
    /// [`with_clock`](DieselStore::with_clock) was given).
    database_clock: bool,
    /// When this store last deleted long-expired leases (see `prune_leases`).
    pruned_at: Mutex<Option<Instant>>,
}

/// How often a store deletes long-expired leases: at most once a minute, from a batch claim.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// How long past its expiry a lease is kept before it is deleted: an hour, by the
/// **database's** clock (the same clock that set `expires_at`), so a node whose clock runs
/// ahead cannot delete a live lease; an expired lease grants nothing, so deleting it changes
/// no answer.
const PRUNE_GRACE: chrono::Duration = chrono::Duration::hours(1);

impl<D: Dialect> fmt::Debug for DieselStore<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DieselStore")
            .field("backend", &D::NAME)
            .field("locator", &self.locator)
            .field("shape", &self.shape.get())
            .field("pool", &self.pool.state())
            .finish()
    }
}

impl<D: Dialect> DieselStore<D> {
    /// Opens the database at `locator` with default options. See
    /// [`open_with`](DieselStore::open_with).
    pub fn open(locator: &str) -> Result<Self, OpenError> {
        Self::open_with(locator, D::Options::default())
    }

    /// Opens the database at `locator` with `options`: builds the pool and checks the kaal
    /// tables that already exist (a wrong shape is reported now, not at the first tick).
    /// Missing tables are fine here; [`run_migrations`](DieselStore::run_migrations) creates
    /// them.
    pub fn open_with(locator: &str, options: D::Options) -> Result<Self, OpenError> {
        let (pool, locator) = D::connect(locator, &options)?;
        let store = Self {
            pool,
            locator,
            shape: OnceLock::new(),
            pruned_at: Mutex::new(None),
            clock: Arc::new(SystemClock),
            database_clock: true,
        };
        let mut conn = store.open_connection()?;
        store.inspect(&mut conn, false)?;
        drop(conn);
        Ok(store)
    }

    /// The same store, stamping registry timestamps from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self.database_clock = false;
        self
    }

    /// Runs the embedded migrations that have not run yet and checks the tables; returns
    /// the versions applied (empty when there was nothing to do). Idempotent; safe to call
    /// from several processes at once.
    ///
    /// Tables that already exist with the wrong shape are reported before anything runs.
    pub fn run_migrations(&self) -> Result<Vec<String>, OpenError> {
        let mut conn = self.open_connection()?;
        self.inspect(&mut conn, false)?;
        let applied = D::run_migrations(&mut conn).map_err(|err| OpenError::Migration {
            backend: D::NAME,
            locator: self.locator.clone(),
            cause: err.to_string(),
        })?;
        if !applied.is_empty() {
            log::info!(
                "{} database {}: applied migrations {}",
                D::NAME,
                self.locator,
                applied.join(", ")
            );
        }
        self.inspect(&mut conn, true)?;
        Ok(applied)
    }

    /// Checks that the kaal tables exist and have the columns (and, where the dialect
    /// checks them, the unique indexes) kaal needs; returns which optional columns they have.
    pub fn verify_schema(&self) -> Result<TableShape, OpenError> {
        let mut conn = self.open_connection()?;
        self.inspect(&mut conn, true)?
            .ok_or_else(|| self.connect_error("tables vanished while being checked"))
    }

    /// The database, as it appears in messages (a path, or a URL without its password).
    pub fn locator(&self) -> &str {
        &self.locator
    }

    /// The connection pool, for running other statements on the same database.
    pub fn pool(&self) -> &ConnectionPool<D> {
        &self.pool
    }

    /// The current instant from the store's clock, at the precision stored.
    pub(crate) fn now(&self) -> DbTime {
        DbTime::new(self.clock.now())
    }

    /// The instant a run-lifecycle write is stamped with, for
    /// [`store_now`](crate::run_queries::store_now): `None` — the database's clock, read
    /// inside the write's own statement — unless [`with_clock`](DieselStore::with_clock)
    /// gave the store a clock (simulated time in tests).
    pub(crate) fn run_clock(&self) -> Option<DbTime> {
        (!self.database_clock).then(|| self.now())
    }

    /// The instant a definition write is stamped with, read on `conn` inside the write's
    /// transaction: the **database's** clock, so `created_at` and `schedule_since` (the
    /// floor of what a job is owed) do not depend on the clock of whichever node wrote
    /// them; the store's clock when [`with_clock`](DieselStore::with_clock) gave one
    /// (simulated time in tests).
    pub(crate) fn definition_now(&self, conn: &mut D::Connection) -> Result<DbTime, Error> {
        if self.database_clock {
            D::database_now(conn)
        } else {
            Ok(self.now())
        }
    }

    /// A pooled connection, or the cause as text for a lock or registry error.
    pub(crate) fn checkout(&self) -> Result<StoreConnection<D>, String> {
        self.pool
            .get()
            .map_err(|err| format!("no database connection: {err}"))
    }

    /// Deletes leases that expired more than an hour ago, at most once a minute per store.
    ///
    /// Every fire time has its own lock key and is claimed once, so without this
    /// `kaal_locks` would keep a row per fire time for ever (1,000 per-minute jobs: 1.44
    /// million rows a day). The Ruby gem deleted expired leases when an insert met one; kaal's
    /// upsert takes an expired row over instead, so it prunes here, from the coordinator's
    /// batch claim. Two statements a minute (the database's clock, then the delete); a
    /// failure is logged, never raised.
    pub(crate) fn prune_leases(&self, conn: &mut D::Connection) {
        {
            let mut pruned_at = self
                .pruned_at
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if pruned_at.is_some_and(|at| at.elapsed() < PRUNE_EVERY) {
                return;
            }
            *pruned_at = Some(Instant::now());
        }
        let deleted = D::database_now(conn).and_then(|now| {
            conn.delete_leases_expired_before(DbTime::new(now.instant() - PRUNE_GRACE))
        });
        match deleted {
            Ok(0) => {}
            Ok(deleted) => log::debug!("{}: deleted {deleted} long-expired leases", D::NAME),
            Err(err) => log::warn!(
                "{}: could not delete long-expired leases: {}",
                D::NAME,
                error_chain(&err)
            ),
        }
    }

    /// The table shape, probed on first use when the tables did not exist at open.
    pub(crate) fn shape_on(&self, conn: &mut D::Connection) -> Result<TableShape, String> {
        if let Some(shape) = self.shape.get() {
            return Ok(*shape);
        }
        match self.inspect(conn, true) {
            Ok(Some(shape)) => Ok(shape),
            Ok(None) => Err("kaal tables are missing; run the migrations first".to_string()),
            Err(err) => Err(err.to_string()),
        }
    }

    fn open_connection(&self) -> Result<StoreConnection<D>, OpenError> {
        self.pool.get().map_err(|err| self.connect_error(err))
    }

    fn connect_error(&self, cause: impl fmt::Display) -> OpenError {
        OpenError::Connect {
            backend: D::NAME,
            locator: self.locator.clone(),
            cause: cause.to_string(),
        }
    }

    /// Checks the columns of every kaal table that exists. With `require_all` (after
    /// migrating, and before the first statement), the three the Ruby gem shares must exist; then the dialect's
    /// extra checks run too (unique indexes the migrations would add are only required
    /// from then on) and the shape is recorded and returned.
    fn inspect(
        &self,
        conn: &mut D::Connection,
        require_all: bool,
    ) -> Result<Option<TableShape>, OpenError> {
        type Probe<C> = fn(&mut C) -> Result<(), Error>;
        // `kaal_nodes` is kaal's own (the Ruby gem has none): checked when present, not
        // required for leases, the log and definitions — only the node registry needs it, and
        // its calls name the missing table.
        let tables: [(&'static str, bool, Probe<D::Connection>); 4] = [
            ("kaal_locks", true, |c| c.probe_lock_columns()),
            ("kaal_dispatches", true, |c| c.probe_dispatch_columns()),
            ("kaal_definitions", true, |c| c.probe_definition_columns()),
            ("kaal_nodes", false, |c| c.probe_node_columns()),
        ];
        let mut present = 0;
        let required = tables.iter().filter(|(_, required, _)| *required).count();
        for (table, needed, probe) in tables {
            let exists = D::table_exists(conn, table).map_err(|err| self.connect_error(err))?;
            if !exists {
                if require_all && needed {
                    return Err(OpenError::MissingTable {
                        backend: D::NAME,
                        locator: self.locator.clone(),
                        table,
                    });
                }
                continue;
            }
            probe(conn).map_err(|err| self.mismatch(table, err))?;
            present += usize::from(needed);
        }
        if present < required || !require_all {
            return Ok(None);
        }
        let shape = TableShape {
            lock_timestamps: conn.has_lock_timestamps(),
            dispatch_timestamps: conn.has_dispatch_timestamps(),
        };
        // The gem's columns are there; kaal's own `kaal_definitions.namespace` (and the
        // unique index on `(namespace, key)`) come from a migration. Problems are reported
        // in table order; one of `kaal_definitions` on a table without `namespace` is that
        // migration not having run, and said so.
        let namespaced = conn.has_definition_namespace();
        if let Err((table, err)) = D::check_statements(conn, shape) {
            if namespaced || table != "kaal_definitions" {
                return Err(self.mismatch(table, err));
            }
        }
        if !namespaced {
            return Err(OpenError::MigrationPending {
                backend: D::NAME,
                locator: self.locator.clone(),
                table: "kaal_definitions",
                column: "namespace",
            });
        }
        // `kaal_definitions.schedule_since` (when each definition's schedule came into
        // force) comes from the next migration; the statements read and write it.
        if !conn.has_definition_schedule_since() {
            return Err(OpenError::MigrationPending {
                backend: D::NAME,
                locator: self.locator.clone(),
                table: "kaal_definitions",
                column: "schedule_since",
            });
        }
        // `kaal_dispatches.started_at`, `finished_at`, `attempt` and `error` (the run
        // lifecycle) come from the migration after it; every dispatch-log read selects them.
        // A table without them (the gem's, or kaal's before the migration) is refused like
        // the two above, not written half-way: kaal runs on migrated tables only.
        if !conn.has_dispatch_lifecycle() {
            return Err(OpenError::MigrationPending {
                backend: D::NAME,
                locator: self.locator.clone(),
                table: "kaal_dispatches",
                column: "started_at",
            });
        }
        // The shape of existing tables does not change under us once the migrations have run
        // (it is recorded only then), so the first probe stands.
        let _ = self.shape.set(shape);
        Ok(Some(shape))
    }

    fn mismatch(&self, table: &'static str, err: Error) -> OpenError {
        let expected = match table {
            "kaal_locks" => columns::LOCKS,
            "kaal_dispatches" => columns::DISPATCHES,
            "kaal_nodes" => columns::NODES,
            _ => columns::DEFINITIONS,
        };
        OpenError::SchemaMismatch {
            backend: D::NAME,
            locator: self.locator.clone(),
            table,
            expected,
            cause: error_chain(&err),
        }
    }
}
