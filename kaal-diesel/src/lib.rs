//! What kaal's Diesel backends share, so that each backend crate adds only the SQL that
//! differs for its database.
//!
//! # Leases (the claim model is kaal-core's)
//!
//! What makes a fire time *taken* is stated once, in [kaal_core's claim
//! model](kaal_core#the-claim-model): the insert-only dispatch-log row is the commit point,
//! and a lease only keeps rivals from useless work. This section is what this backend's lock
//! promises.
//!
//! A lease is a row of `kaal_locks`. `acquire(key, ttl)` returning `true` means the caller's
//! statement inserted the row, or took over a row whose `expires_at` had passed — **by the
//! database's clock**: the statement itself compares `expires_at` with the database's current
//! time and writes `expires_at = database now + ttl`. Nodes never compare times of their
//! own, so a node whose clock is skewed can neither steal a live lease nor keep one past its
//! ttl. Until `release` or the ttl, every other caller gets `false`; contention is never an
//! error.
//!
//! # Migrated tables only
//!
//! kaal runs on tables its migrations have brought up to date, never on older ones. The
//! migrations ([`DieselStore::run_migrations`], `kaal migrate`) add only what kaal needs
//! beside the Ruby gem's tables, keeping every row and every column of the gem's:
//! `kaal_definitions.namespace` and `schedule_since`, the `kaal_nodes` table, and the run
//! lifecycle on `kaal_dispatches` (`started_at`, `finished_at`, `attempt`, `error`; the
//! row's id is the run's fencing token). On a database they have not brought up to date
//! — tables the gem created, or kaal's before a newer migration — [`verify_schema`] and the
//! first write (a claim, a dispatch-log write, a run's start) answer
//! [`OpenError::MigrationPending`] naming the table and the missing column; reads fail with
//! the database's own error naming it.
//!
//! There is no mode that writes the gem's columns alone: a node without the lifecycle
//! columns could neither give a run its fencing token nor record how it went, and nodes of
//! both kinds on one database would disagree about which runs are live. Rows written
//! without the lifecycle (by the gem, which does not know the columns, or by kaal before
//! the migration) keep `started_at` NULL and `attempt` 0: they read as runs without a
//! lifecycle, still taken, and are never reported running (so never abandoned).
//!
//! [`verify_schema`]: DieselStore::verify_schema
//!
//! # The pieces
//!
//! * [`DieselStore<D>`](DieselStore) — the kaal tables of one database behind an r2d2 pool;
//!   implements [`Adapter`](kaal_core::Adapter), [`DispatchRegistry`](kaal_core::DispatchRegistry)
//!   and [`DefinitionRegistry`](kaal_core::DefinitionRegistry); opens, checks the tables'
//!   shape and runs migrations.
//! * [`Dialect`] — what a backend supplies: how to connect, its transactions (the write
//!   transaction, and the job transaction that serialises a job's `start_run_alone` across
//!   processes), which errors are contention, its migrations, and the statements that
//!   differ, as constants.
//! * [`ClaimSteps`] — claim, batch claim, release, dispatch write, dispatch lookup: run by
//!   [`JsonBatch`] from a [`JsonBatchDialect`]'s [`JsonBatchSql`] (each statement a
//!   [`Shaped`] pair for the two table shapes), or written by a backend whose steps take
//!   several statements (MySQL).
//! * [`SharedQueries`], [`ClaimQueries`], [`RunQueries`] — the statements that are the same
//!   SQL everywhere (query builder): reads, compare-and-set moves of dispatch rows, the run
//!   lifecycle's start, record and scan, stamped by the store's clock ([`store_now`]).
//! * [`schema`], [`DbTime`], [`Metadata`], [`DispatchRow`], [`DefinitionRow`] — one schema
//!   for the three databases; only the encodings of the kaal timestamp and JSON column types
//!   differ, selected by this crate's `sqlite` / `postgres` / `mysql` features.
//! * [`definition_rules`] — `created_at` kept, `disabled_at` set / kept / cleared.
//! * [`Statement`] — hand-written SQL with text parameters that Diesel still caches.
//! * [`OpenError`], [`PoolOptions`] / [`build_pool`], [`run_pending`], [`chunks_within`],
//!   [`redact_password`], [`check_key_len`].
//! * [`SessionLockStore<D, L>`](SessionLockStore) — the adapter over session locks
//!   (PostgreSQL advisory locks, MySQL named locks): one dedicated session, no re-entry, ttl
//!   reaping, a lost session replaced, the registries of a pooled [`DieselStore`]. A backend
//!   supplies only its lock SQL ([`LockSql`]) and wraps the store in a newtype whose
//!   [`Adapter`](kaal_core::Adapter) impl [`delegate_adapter!`] writes.
//! * [`give_back_dispatched`] — the confirm step of session locks, whose claims can vanish
//!   before their ttl: a claim won on a fire time already logged is given back.
//!
//! # Adding a backend
//!
//! Adding a backend means writing SQL, not plumbing. A crate `kaal-diesel-foo` depends on
//! this crate with feature `foo`, defines a marker type and implements [`Dialect`] for it —
//! connection type, [`Dialect::connect`] (parse the URL, build the pool with
//! [`build_pool`]), its write transaction, its job transaction
//! ([`Dialect::job_transaction`]: what makes
//! [`start_run_alone`](kaal_core::DispatchRegistry::start_run_alone) one atomic step per
//! job across processes), its contention errors, its migrations (with
//! `diesel_migrations::embed_migrations!` and [`run_pending`]), and as constants its clock,
//! table-exists and unique-index queries. If its database can claim, release, record and
//! look up in one statement each over a JSON array, it fills a [`JsonBatchSql`] (parameters
//! in the order [`JsonBatch`] binds them), implements [`JsonBatchDialect`] and sets
//! `type Steps = JsonBatch;`; otherwise it implements [`ClaimSteps`] itself. Its store is
//! then `pub type FooStore = DieselStore<FooDialect>;`, opened with `FooStore::open(url)`,
//! and its tests call the shared store behaviours of the `testing` module (feature
//! `testing`).
//!
//! If the database also has locks scoped to a session, the crate implements [`LockSql`] on a
//! private type (open a dedicated connection; take, give back and ping on it) and makes its
//! adapter a newtype over [`SessionLockStore<FooDialect, ItsLockSql>`](SessionLockStore),
//! with [`delegate_adapter!`] writing the [`Adapter`](kaal_core::Adapter) impl; the session
//! rules and the dispatch-log confirm come from here.
//!
//! # Dependencies
//!
//! `diesel` (query builder, r2d2 pools, chrono), `diesel_migrations` (the harness the
//! backends' embedded migrations run through), `chrono`, `serde_json` (metadata), `thiserror`
//! ([`OpenError`]), `log` (diagnostics), `kaal-core` (the traits implemented here).
#![deny(missing_docs)]

mod batch;
mod checks;
mod claim_queries;
pub mod definition_rules;
mod definitions;
mod dialect;
mod dispatch_log;
mod error;
mod json_batch;
mod lease;
mod locator;
mod metadata;
mod migrations;
mod nodes;
mod pool;
mod queries;
mod rows;
mod run_queries;
pub mod schema;
pub mod session_locks;
mod shape;
mod statement;
mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod time;

pub use batch::chunks_within;
pub use checks::{require_unique_indexes, FORBIDDEN_UNIQUE_INDEXES, REQUIRED_UNIQUE_INDEXES};
pub use claim_queries::ClaimQueries;
pub use dialect::{ClaimSteps, ConnectionPool, Dialect, DispatchWrite};
pub use error::{error_chain, OpenError};
pub use json_batch::{JsonBatch, JsonBatchDialect, JsonBatchSql, Shaped};
pub use lease::check_key_len;
pub use locator::{redact_password, scheme};
pub use metadata::Metadata;
pub use migrations::run_pending;
pub use pool::{build_pool, CheckedManager, PoolOptions};
pub use queries::{columns, lock_definition_rows, SharedQueries};
pub use rows::{DefinitionRow, DispatchRow, NodeRow};
pub use run_queries::{store_now, RunQueries, RunRow, RunWrite, StoreNow};
pub use session_locks::{give_back_dispatched, LockSql, SessionLockStore};
pub use shape::TableShape;
pub use statement::Statement;
pub use store::{DieselStore, StoreConnection};
pub use time::DbTime;

/// kaal-core, for the code [`delegate_adapter!`] expands to in a backend crate.
#[doc(hidden)]
pub use kaal_core as __kaal_core;
