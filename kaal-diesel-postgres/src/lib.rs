//! PostgreSQL backend for kaal: the leases, the dispatch log and the job definitions of a
//! fleet in one PostgreSQL database, with a choice of two lock strategies.
//!
//! # Leases (the claim model is kaal-core's)
//!
//! What makes a fire time *taken* is stated once, in [kaal_core's claim
//! model](kaal_core#the-claim-model): the insert-only dispatch-log row is the commit point,
//! and a lease only keeps rivals from useless work. This section is what this backend's lock
//! promises.
//!
//! A lease is a row of `kaal_locks`. [`acquire(key, ttl)`](kaal_core::Adapter::acquire)
//! runs one statement —
//!
//! ```sql
//! INSERT INTO kaal_locks ("key", acquired_at, expires_at)
//! VALUES ($1, statement_timestamp() AT TIME ZONE 'UTC', (statement_timestamp() AT TIME ZONE 'UTC') + CAST($2 AS interval))
//! ON CONFLICT ("key") DO UPDATE SET acquired_at = EXCLUDED.acquired_at, expires_at = EXCLUDED.expires_at
//! WHERE kaal_locks.expires_at <= EXCLUDED.acquired_at
//! ```
//!
//! — that inserts the lease, or takes over the row only when its lease has expired **by the
//! database server's clock**; one changed row means acquired. So `true` promises that no
//! other caller, on any host, gets `true` for `key` until this caller releases it or `ttl`
//! passes by the server's clock; a node whose own clock is fast cannot steal a live lease,
//! and one whose clock is slow cannot keep a lease past its ttl. `false` means someone else
//! holds it; contention (including a row lock not granted within
//! [`PgOptions::lock_timeout`], or a deadlock) is never an error. Other failures are
//! [`LockError`](kaal_core::LockError)s such as
//! `PostgreSQL acquire failed for kaal:dispatch:report:1767225600: no database connection: …`.
//! Keys longer than 255 bytes are refused with such an error, never truncated.
//!
//! [`acquire_many`](kaal_core::Adapter::acquire_many) claims a whole batch in one statement
//! (the same upsert over `json_array_elements_text` of the keys, `RETURNING "key"`, keys
//! deduplicated and sorted so concurrent batches cannot deadlock). [`release`] deletes the
//! row and returns whether the lease was still live.
//!
//! [`release`]: kaal_core::Adapter::release
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use kaal_core::{with_lock, Adapter};
//! use kaal_diesel_postgres::PgStore;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let url = "postgres://kaal:secret@db.internal:5432/app";
//! let store = PgStore::open(url)?; // or postgresql://
//! store.run_migrations()?;         // explicit and idempotent
//!
//! assert!(store.acquire("reports", Duration::from_secs(30))?);
//! let other_node = PgStore::open(url)?;
//! assert!(!other_node.acquire("reports", Duration::from_secs(30))?);
//! assert!(store.release("reports")?);
//!
//! let ran = with_lock(&other_node, "reports", Duration::from_secs(30), || "sent")?;
//! assert_eq!(ran, Some("sent"));
//! # Ok(())
//! # }
//! ```
//!
//! # Lease table or advisory locks
//!
//! [`PgStore`] (the lease table) is the default and the right choice for most fleets:
//! leases are rows, so they survive a connection drop, any node can see them
//! (`SELECT * FROM kaal_locks`), their expiry is the database's clock, and a batch claim is
//! one statement on any pooled connection. Each claim writes a row (and a WAL record), and
//! each lost claim consumes a value of the `id` sequence.
//!
//! [`PgAdvisoryAdapter`] holds claims as advisory locks (`pg_try_advisory_lock`, ids from
//! [`advisory_lock_id`], the same as the Ruby gem's) on one dedicated session per adapter.
//! Taking a lock writes nothing to disk, and a crashed node's locks vanish at once with its
//! session instead of at the end of their ttl. The costs:
//!
//! * **The locks live in PostgreSQL's shared lock table**, sized by
//!   `max_locks_per_transaction × (max_connections + max_prepared_transactions)` and shared
//!   with every ordinary lock of every session. Measured here (PostgreSQL 15, the defaults
//!   64 × (100 + 0)): one session held **12 851** advisory locks; the next one failed with
//!   `out of shared memory` (hint: increase `max_locks_per_transaction`). The coordinator
//!   keeps each claim until its ttl (`lease_ttl`, 125 s by default), so a node holds about
//!   `jobs × fire times per lease_ttl` locks — 1 000 per-minute jobs hold ≈ 3 000. When the
//!   table is full, acquires fail with a [`LockError`](kaal_core::LockError) (`out of
//!   shared memory`; the locks the failed batch took are given back at once) — and so do
//!   other sessions' statements and new connections to the server while it stays full.
//!   Raise `max_locks_per_transaction` (a restart) for larger fleets, or use the lease
//!   table.
//! * **Locks vanish with the session.** A server restart, a failover, a
//!   `pg_terminate_backend` or a network cut ends them: the adapter notices on its next
//!   operation, logs an error, forgets its locks and reconnects; fire times it held may then
//!   be claimed by another node, and the dispatch log keeps them from running twice.
//! * **No connection poolers in transaction mode** (PgBouncer `pool_mode = transaction`):
//!   session locks need a real session. The lease table works through any pooler.
//! * ttl is honoured by the adapter releasing, on its session, each lock held past its ttl
//!   (a background reaper); it runs on the node's monotonic clock — nobody else can end a
//!   session lock, so clock skew between nodes plays no part.
//!
//! # Throughput
//!
//! Measured here (release build, loopback, PostgreSQL 15, 2 cores;
//! `cargo test -p kaal-diesel-postgres --release --test throughput -- --ignored --nocapture`):
//!
//! | operation | rate |
//! | --- | --- |
//! | raw `INSERT` into `kaal_locks` on the same pool (baseline) | ≈ 4 300/s |
//! | lease `acquire` won / held, `release` | ≈ 3 700 / 4 500 / 5 100 per s |
//! | lease `acquire_many`, 10 000 keys in one statement | ≈ 134 000 keys/s |
//! | advisory `acquire`, `release` | ≈ 7 400 / 5 700 per s |
//! | advisory `acquire_many`, 10 000 keys in one round trip | ≈ 490 000 keys/s |
//!
//! # Tables and settings
//!
//! * Times are UTC `timestamp(6)` (without time zone), as ActiveRecord writes them;
//!   metadata is `jsonb`; ids are `bigserial`. The timestamps the database computes use
//!   `statement_timestamp()` — not `now()`, the start of the enclosing transaction.
//! * Tables the Ruby gem created are accepted as they are: `key` columns without a length,
//!   no `created_at` / `updated_at` on `kaal_locks` and `kaal_dispatches`, `metadata` as
//!   `text` or `json` (written through PostgreSQL's assignment casts, read as JSON text).
//! * Durability is the server's: with the default `synchronous_commit = on`, a lease or
//!   dispatch record that was acknowledged survives a crash of the server.
//! * [`PgOptions`]: `connect_timeout` (10 s, unless the URL sets one), `lock_timeout` (5 s:
//!   a claim waiting longer for a row lock reports "not acquired"), `application_name`
//!   (`kaal`), pool size.
//! * Migrations run in one transaction holding an advisory lock, so several processes may
//!   run them at once: the others wait, then find nothing to do.
//! * A job whose runs must not overlap (`overlap: skip | queue_one`) is started by
//!   [`start_run_alone`](kaal_core::DispatchRegistry::start_run_alone) in a READ COMMITTED
//!   transaction holding a transaction-scoped advisory lock on the job (two-integer form,
//!   kaal's class, so it never meets the session locks): see
//!   [`PgDialect::job_transaction`](crate::PgDialect#method.job_transaction) for why no two nodes start two runs of one job. Every
//!   store takes it, lease table or advisory locks.
//!
//! # Opening safely
//!
//! [`PgStore::open`](kaal_diesel::DieselStore::open) and [`PgAdvisoryAdapter::open`] accept
//! `postgres://` and `postgresql://` URLs (libpq's syntax, including query parameters such
//! as `sslmode`). They connect once before building the pool, so an unreachable server, an
//! unknown user, a wrong password or a missing database is reported at once, as one
//! [`OpenError`] line naming the URL with its password replaced by `***`. Kaal tables of the
//! wrong shape (missing columns or unique indexes) are refused before anything is written.
//!
//! # Dependencies
//!
//! `kaal-diesel` (the shared store this crate plugs its SQL into), `diesel` with `postgres`
//! and `r2d2` (libpq), `diesel_migrations` (embedded migrations), `md-5` (the advisory lock
//! ids must be MD5-derived to match the Ruby gem's; a small, maintained RustCrypto crate),
//! `chrono`, `serde_json` (batches as JSON arrays), `log`.
#![deny(missing_docs)]

mod advisory;
mod dialect;
mod job_lock;
mod lock_id;
mod open;
mod options;
mod sql;

pub use advisory::PgAdvisoryAdapter;
pub use dialect::{PgDialect, MIGRATIONS};
pub use kaal_diesel::{OpenError, PoolOptions, TableShape};
pub use lock_id::advisory_lock_id;
pub use options::PgOptions;

/// The backend's name in messages.
const BACKEND: &str = "PostgreSQL";

/// The kaal tables of one PostgreSQL database: the lease-table
/// [`Adapter`](kaal_core::Adapter), [`DispatchRegistry`](kaal_core::DispatchRegistry) and
/// [`DefinitionRegistry`](kaal_core::DefinitionRegistry) over an r2d2 pool.
///
/// Open it with [`PgStore::open`](kaal_diesel::DieselStore::open) (default [`PgOptions`])
/// or [`open_with`](kaal_diesel::DieselStore::open_with); create the tables with
/// [`run_migrations`](kaal_diesel::DieselStore::run_migrations).
pub type PgStore = kaal_diesel::DieselStore<PgDialect>;
