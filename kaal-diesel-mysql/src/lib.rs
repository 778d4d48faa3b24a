//! MySQL / MariaDB backend for kaal: the leases, the dispatch log and the job definitions of
//! a fleet of processes and hosts sharing one MySQL database.
//!
//! # The claim model
//!
//! [`acquire(key, ttl)`](kaal_core::Adapter::acquire) returning `true` promises that no other
//! caller, on any host, gets `true` for `key` until this caller releases it or `ttl` passes;
//! `false` means someone else holds it, and contention (a duplicate key, a deadlock, a lock
//! wait timeout) is never an error. Two lock strategies keep that promise:
//!
//! * **Lease table** — [`MysqlStore`] (the default, the Ruby gem's model): a lease is a row
//!   of `kaal_locks` whose `expires_at` is written and compared by **the database's clock**
//!   (`UTC_TIMESTAMP(6)`), never a node's, so a node whose clock is skewed can neither steal
//!   a live lease nor keep one past its ttl. A lease survives its holder: a crashed node's
//!   leases end when their ttl passes.
//! * **Named locks** — [`MysqlNamedLockAdapter`]: `GET_LOCK(name, 0)` on one dedicated
//!   session. No rows are written, but a lock lives exactly as long as the session that took
//!   it: it vanishes when the node disconnects, and only that session can release it. Names
//!   are per **server**, not per database (see the adapter's docs on namespaces); ttls are
//!   enforced by the holder.
//!
//! Either way, what makes a restart safe is the dispatch log: the coordinator records every
//! fire time it wins in `kaal_dispatches`, and never dispatches a recorded fire time again.
//!
//! # The lease statements
//!
//! MySQL has no `RETURNING`, and Diesel connects with `CLIENT_FOUND_ROWS`, under which
//! `INSERT … ON DUPLICATE KEY UPDATE` reports the same count (1) for "inserted" and for "a
//! live row matched and left unchanged" — so "insert, or take over only an expired row"
//! cannot be one statement with an exact answer. A claim is therefore:
//!
//! ```sql
//! INSERT INTO kaal_locks (`key`, acquired_at, expires_at)
//! VALUES (?, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND)
//! -- one row: acquired. Only on a duplicate key:
//! UPDATE kaal_locks SET acquired_at = UTC_TIMESTAMP(6), expires_at = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND
//! WHERE `key` = ? AND expires_at <= UTC_TIMESTAMP(6)
//! -- one row: the expired lease was taken over; none: it is live.
//! ```
//!
//! Both counts are exact, and each statement is atomic on its own (InnoDB checks the
//! `UPDATE`'s condition on the latest row under its row lock). A free key costs one round
//! trip, a taken one two.
//!
//! [`acquire_many`](kaal_core::Adapter::acquire_many) claims up to 1 024 keys in one
//! transaction of four statements, whatever their number: take over the expired leases
//! (`UPDATE … WHERE key IN (…) AND expires_at <= UTC_TIMESTAMP(6)`) and insert the missing
//! ones (`INSERT IGNORE`), both writing a marker `acquired_at` that no committed row ever
//! has, read back the marked rows (exactly the ones this transaction took), and replace the
//! marker with the real time before commit. Connections run at READ COMMITTED, where an
//! `UPDATE` waits only for rows it would change; a batch that loses a deadlock is retried.
//! No statement that returns rows ever waits for a row lock here: a `SELECT … FOR UPDATE`
//! that fails part-way through its rows (deadlock, lock wait timeout) leaves
//! libmysqlclient's prepared statement expecting the rest, and its next execution hangs —
//! found the hard way by the fleet tests. [`release`](kaal_core::Adapter::release) deletes
//! the row (whoever holds it, as the Ruby gem does) and answers whether the lease was still
//! live.
//!
//! # Throughput
//!
//! Measured here (release build, loopback, MariaDB 10.11 with `innodb_flush_log_at_trx_commit
//! = 1`, 2 cores; `cargo test -p kaal-diesel-mysql --release --test throughput -- --ignored
//! --nocapture`):
//!
//! | operation | rate |
//! | --- | --- |
//! | raw `INSERT` into `kaal_locks` on the same pool (baseline) | ≈ 4 600/s |
//! | lease `acquire` won (1 statement) / held (2 statements, nothing written) / `release` | ≈ 4 000 / 9 500 / 3 800 per s |
//! | lease `acquire_many`, 10 000 keys (10 transactions of 1 024) | ≈ 35 000 keys/s |
//! | lease `acquire_many` of 9 keys (one tick of 3 jobs) | ≈ 320 batches/s (≈ 3 ms) |
//! | named `acquire`, `release` | ≈ 15 000 / 8 500 per s |
//! | named `acquire_many`, 10 000 keys (128 `GET_LOCK`s per `SELECT`) | ≈ 15 000 keys/s |
//!
//! A won claim costs a commit (a log flush); a lost one writes nothing.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use kaal_core::{with_lock, Adapter};
//! use kaal_diesel_mysql::MysqlStore;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = MysqlStore::open("mysql://kaal:secret@db.internal:3306/app")?;
//! store.run_migrations()?; // explicit and idempotent
//!
//! assert!(store.acquire("reports", Duration::from_secs(30))?);
//! let other_node = MysqlStore::open("mysql://kaal:secret@db.internal:3306/app")?;
//! assert!(!other_node.acquire("reports", Duration::from_secs(30))?);
//! assert!(store.release("reports")?);
//!
//! let ran = with_lock(&other_node, "reports", Duration::from_secs(30), || "sent")?;
//! assert_eq!(ran, Some("sent"));
//! # Ok(())
//! # }
//! ```
//!
//! # Schema and servers
//!
//! The migrations (`migrations/mysql`) create the Ruby gem's three tables with `DATETIME(6)`
//! UTC times, `JSON` metadata and `key` columns in the binary collation `utf8mb4_bin`, so
//! keys differing only in case or accents are different keys. They are
//! `CREATE TABLE IF NOT EXISTS` with the indexes inside, so tables the Ruby gem created are
//! accepted as they are (the store checks that the unique indexes its statements rely on
//! exist, and warns when a `key` column compares case-insensitively), and a named lock keeps
//! two processes from migrating at once. Verified on MariaDB 10.11; written for MySQL 8.0.13+
//! as well (expression defaults, `VALUES()` in upserts — deprecated but accepted on MySQL 8).
//!
//! # Opening safely
//!
//! [`MysqlStore::open`] takes `mysql://user:password@host:port/database` (or `mariadb://`)
//! and connects once before building the pool, so an unreachable host (checked with
//! [`MysqlOptions::connect_timeout`]), wrong credentials and a missing database are each one
//! [`OpenError`] naming the URL with its password hidden. Keys longer than 255 bytes are
//! refused with a clear error, never truncated. Each connection runs at READ COMMITTED, in
//! strict SQL mode, with [`MysqlOptions::lock_wait_timeout`]. (With binary logging on, the
//! server's `binlog_format` must be `ROW` or `MIXED`, the defaults: InnoDB refuses
//! statement-based logging of READ COMMITTED writes.)
//!
//! # Dependencies
//!
//! `kaal-diesel` (the shared store this crate plugs its SQL into), `diesel` with `mysql`
//! (libmysqlclient) and `r2d2`, `diesel_migrations` (embedded migrations), `chrono`, `log`,
//! `url` (already Diesel's URL parser; used to find host and port for the reachability
//! check), `sha2` (the SHA-256 digest that shortens long lock names exactly as the Ruby gem
//! does; RustCrypto, no C code).
#![deny(missing_docs)]

mod checks;
mod dialect;
mod lock_name;
mod named;
mod open;
mod options;
mod sql;
mod statement;

pub use dialect::{MysqlDialect, MIGRATIONS};
pub use kaal_diesel::{OpenError, PoolOptions, TableShape};
pub use lock_name::{lock_name, MAX_LOCK_NAME_CHARS};
pub use named::MysqlNamedLockAdapter;
pub use options::MysqlOptions;

/// The backend's name in messages.
const BACKEND: &str = "MySQL";

/// The kaal tables of one MySQL database: the lease-table
/// [`Adapter`](kaal_core::Adapter), [`DispatchRegistry`](kaal_core::DispatchRegistry) and
/// [`DefinitionRegistry`](kaal_core::DefinitionRegistry) over an r2d2 pool.
///
/// Open it with [`MysqlStore::open`] (default [`MysqlOptions`]) or
/// [`MysqlStore::open_with`]; create the tables with
/// [`run_migrations`](kaal_diesel::DieselStore::run_migrations).
pub type MysqlStore = kaal_diesel::DieselStore<MysqlDialect>;
