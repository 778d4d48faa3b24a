//! MySQL / MariaDB backend for kaal: the leases, the dispatch log and the job definitions of
//! a fleet of processes and hosts sharing one MySQL database.
//!
//! # Leases (the claim model is kaal-core's)
//!
//! What makes a fire time *taken* is stated once, in [kaal_core's claim
//! model](kaal_core#the-claim-model): the insert-only dispatch-log row is the commit point,
//! and a lease only keeps rivals from useless work. This section is what this backend's lock
//! promises.
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
//!   enforced by the holder. MariaDB's `GET_LOCK` gets quadratically slower with the number
//!   of locks its session already holds: one statement taking 1 000 / 3 000 / 10 000 locks
//!   took 5 / 55 / 650-980 ms here. Named locks therefore suit fleets with at most a few
//!   thousand fire times per tick; above that, the lease table claims 10 000 in about the
//!   time of one 10 000-row `INSERT`.
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
//! [`acquire_many`](kaal_core::Adapter::acquire_many), the coordinator's claim of every
//! fire time due in a tick, is one READ COMMITTED transaction for the whole batch, keys
//! sorted and distinct (so concurrent batches lock rows in one order). It reads the
//! database's clock once (`SET @kaal_claim_at = UTC_TIMESTAMP(6), @kaal_claim_until = … +
//! INTERVAL ttl`), and every row it writes carries exactly those two times, which are real
//! lease times (no placeholder value to rewrite before commit):
//!
//! 1. **Insert.** `INSERT IGNORE … VALUES (?, @kaal_claim_at, @kaal_claim_until), …`, one
//!    statement per 4 096 keys. `INSERT IGNORE` reports 1 per inserted row and 0 per
//!    duplicate, so when the counts add up to the number of keys every key is won: the
//!    usual tick (fresh fire times) is `SET`, `BEGIN`, that `INSERT` and `COMMIT` — one
//!    pass over the rows and one log flush, like the hand-written baseline. Otherwise one
//!    plain read per short chunk fetches the rows that carry the claim times or an expired
//!    lease: with no expired lease, and exactly as many rows carrying the times as were
//!    inserted, those rows are this call's and every other key is someone else's live
//!    lease.
//! 2. **Take over, insert, read back.** Anything else (an expired lease to take over, or
//!    another claim's lease written with the very same times) rolls the first transaction
//!    back and runs a second one with a new claim time: `UPDATE … SET acquired_at =
//!    @kaal_claim_at, … WHERE key IN (…) AND expires_at <= @kaal_claim_at`, then the
//!    `INSERT IGNORE`, then, unless the counts already say "all" or "none", the rows
//!    carrying the claim times. That answer is exact because it is checked: the rows this
//!    transaction wrote are locked by it and all carry the times, so if more rows carry
//!    them than the counts say were written, the transaction rolls back and tries another
//!    claim time (three times, then the batch fails as contention, deciding nothing).
//!    Taking over before inserting matters: a duplicate met by `INSERT IGNORE` leaves a
//!    shared lock, and two batches sharing one on the same expired lease deadlock when both
//!    upgrade it.
//!
//! Expiry is judged at the claim time, by the database's clock. `UPDATE`s wait only for the
//! rows they take (READ COMMITTED reads the last committed version of a row another
//! transaction has locked); a batch that loses a deadlock is retried after a pause of 1-2
//! ms per attempt (sessions inserting one key over a deleted, not yet purged row deadlock
//! in InnoDB whatever the batch does, and an immediate retry meets them again), and one
//! that keeps losing, or meets a lock wait timeout, is an error, never a wrong answer. No
//! statement that returns rows ever waits for a row lock here: a `SELECT … FOR UPDATE` that
//! fails part-way through its rows (deadlock, lock wait timeout) leaves libmysqlclient's
//! prepared statement expecting the rest, and its next execution hangs — found the hard way
//! by the fleet tests. The rows are listed as bound `VALUES`, not read from one bound JSON
//! array through `JSON_TABLE`: `INSERT … SELECT` takes InnoDB's table-level `AUTO-INC` lock
//! (with the default `innodb_autoinc_lock_mode = 1`) and keeps it while it waits for a row
//! lock, which here stopped every other insert into `kaal_locks` — unrelated keys' single
//! claims included — for as long as the batch waited (2 s in the experiment).
//! [`release`](kaal_core::Adapter::release) deletes the row (whoever holds it, as the Ruby
//! gem does) and answers whether the lease was still live.
//!
//! # Throughput
//!
//! Measured here (release build, loopback, MariaDB 10.11 with `innodb_flush_log_at_trx_commit
//! = 1`, 2 cores; `cargo test -p kaal-diesel-mysql --release --test throughput -- --ignored
//! --nocapture`, two runs):
//!
//! | operation | rate |
//! | --- | --- |
//! | raw `INSERT` into `kaal_locks` on the same pool (baseline) | ≈ 9 200-10 000/s |
//! | lease `acquire` won (1 statement) / held (2 statements, nothing written) / `release` | ≈ 10 000 / 18 000 / 9 000-9 600 per s |
//! | lease `acquire_many`, 10 000 free keys (three `INSERT`s, one commit) | 57-60 ms (≈ 170 000 keys/s) |
//! | lease `acquire_many`, 10 000 keys another node holds (nothing written) | 94-95 ms |
//! | lease `acquire_many` of 9 keys (one tick of 3 jobs) | ≈ 3 000 batches/s (≈ 0.33 ms) |
//! | named `acquire`, `release` | ≈ 30 000 / 46 000 per s |
//! | named `acquire_many`, 10 000 keys (128 `GET_LOCK`s per `SELECT`) | ≈ 22 000-24 000 keys/s |
//!
//! Against its hand-written baseline, one multi-row `INSERT` of as many literal rows sent as
//! one query (kaal-bench, `cargo run --release -p kaal-bench --features mysql -- --only
//! mysql-lease`, median of 7 paired rounds, two runs), a batch claim of 1 000 fresh fire
//! times took 4.9 ms vs 5.2-5.5 ms (0.90-0.95×) and one of 10 000 took 49-78 ms vs 52-79 ms
//! (0.94-0.98×); the previous form (a six-statement transaction per 1 024 keys with a
//! placeholder `acquired_at` rewritten before commit) took 2.8-3.1× and 4.4-6.2×.
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
//! A job whose runs must not overlap (`overlap: skip | queue_one`) is started by
//! [`start_run_alone`](kaal_core::DispatchRegistry::start_run_alone) under a named lock on
//! the job (`kaal-job:` and a digest of the database and job key, waited for up to 5 s), taken
//! before its transaction begins and given back after it ends: see
//! [`MysqlDialect::job_transaction`](crate::MysqlDialect#method.job_transaction) for why no two nodes start two runs of one job. Every
//! store takes it, whichever lock strategy its fleet uses.
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

mod builder;
mod collation;
mod dialect;
mod job_lock;
mod lock_name;
mod named;
mod open;
mod options;
mod sql;

pub use dialect::{MysqlDialect, MIGRATIONS};
pub use kaal_diesel::{OpenError, PoolOptions, TableShape};
pub use lock_name::{lock_name, MAX_LOCK_NAME_CHARS};
pub use named::MysqlNamedLockAdapter;
pub use options::MysqlOptions;
pub use sql::MysqlSteps;

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
