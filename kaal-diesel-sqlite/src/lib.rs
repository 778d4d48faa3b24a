//! SQLite backend for kaal: the leases, the dispatch log and the job definitions of a fleet
//! in one SQLite file.
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
//! INSERT INTO kaal_locks ("key", acquired_at, expires_at) VALUES (?, <now>, <now + ttl>)
//! ON CONFLICT ("key") DO UPDATE SET acquired_at = excluded.acquired_at, expires_at = excluded.expires_at
//! WHERE kaal_locks.expires_at <= excluded.acquired_at
//! ```
//!
//! — where `<now>` is **SQLite's clock** (`strftime('%Y-%m-%d %H:%M:%f', 'now')`). It
//! inserts the lease, or takes over the row only when its lease has expired; one changed row
//! means acquired. So `true` promises that no other caller, in any process opening the file,
//! gets `true` for `key` until this caller releases it or `ttl` passes by the database's
//! clock; `false` means someone else holds it, and contention (including SQLite's
//! "database is locked" after the busy timeout) is never an error. Other failures are
//! [`LockError`](kaal_core::LockError)s such as
//! `SQLite acquire failed for kaal:dispatch:report:1767225600: disk I/O error`.
//!
//! [`acquire_many`](kaal_core::Adapter::acquire_many) claims a whole batch in one statement
//! (the same upsert over `json_each` of the keys, `RETURNING "key"`).
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use kaal_core::{with_lock, Adapter};
//! use kaal_diesel_sqlite::SqliteStore;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("kaal.db");
//! # let path = path.to_str().unwrap();
//! let store = SqliteStore::open(path)?; // or "sqlite:///var/lib/app/kaal.db"
//! store.run_migrations()?;              // explicit and idempotent
//!
//! assert!(store.acquire("reports", Duration::from_secs(30))?);
//! let other_node = SqliteStore::open(path)?;
//! assert!(!other_node.acquire("reports", Duration::from_secs(30))?);
//! assert!(store.release("reports")?);
//!
//! let ran = with_lock(&other_node, "reports", Duration::from_secs(30), || "sent")?;
//! assert_eq!(ran, Some("sent"));
//! # Ok(())
//! # }
//! ```
//!
//! # What SQLite is for
//!
//! One host, many processes: every node opens the same file on a local disk. SQLite's
//! locking needs a file system with working POSIX locks and shared memory for WAL, so do
//! **not** put the file on a network file system (NFS, SMB, most container volumes shared
//! between hosts) — nodes on several hosts need the PostgreSQL or MySQL backend.
//!
//! # Settings
//!
//! * **WAL** journal mode, switched on when the store opens (persistent in the file): readers
//!   do not block the writer, and `BEGIN IMMEDIATE` plus the busy timeout removed the
//!   `SQLITE_BUSY` failures the rollback journal produced under several writer processes.
//!   SQLite refuses the switch at once, without a busy wait, while another connection
//!   writes the file, so opening retries it with a short backoff for up to the busy timeout:
//!   any number of processes may open a new or existing file at the same moment.
//! * **`busy_timeout`** 5 s: a statement waits that long for another writer.
//! * **`synchronous = FULL`**: a committed lease or dispatch record survives a power loss.
//!   `NORMAL` is ≈ 5× faster for single acquires but can lose the last commits on power loss
//!   (see [`Synchronous`]); the coordinator batches its claims, so FULL costs one sync per
//!   tick.
//! * Write transactions (definition upserts, migrations, the check-and-start of a job whose
//!   runs must not overlap — [`SqliteDialect::job_transaction`](crate::SqliteDialect#method.job_transaction)) use `BEGIN IMMEDIATE`.
//! * Times are UTC text in ActiveRecord's format (`YYYY-MM-DD HH:MM:SS.ffffff`), so a
//!   database shared with Ruby nodes of the kaal gem compares and matches correctly; see
//!   [`DbTime`](kaal_diesel::DbTime).
//!
//! # Opening safely
//!
//! [`SqliteStore::open`] accepts a path, `sqlite://path` or `sqlite:///absolute/path`. It
//! refuses, naming the path and the problem and without writing anything: a path whose
//! directory does not exist, a file that is not a SQLite database, and kaal tables with the
//! wrong shape (missing columns or unique indexes). Tables the Ruby gem created are accepted
//! as they are.
//!
//! # Dependencies
//!
//! `kaal-diesel` (the shared store this crate plugs its SQL into), `diesel` with `sqlite`
//! and `r2d2`, `diesel_migrations` (embedded migrations), `libsqlite3-sys` with `bundled`
//! (no system SQLite needed; ≥ 3.35 for `RETURNING`), `chrono`, `serde_json` (batches as
//! JSON arrays), `log`.
#![deny(missing_docs)]

mod dialect;
mod open;
mod options;
mod sql;

pub use dialect::{SqliteDialect, MIGRATIONS};
pub use kaal_diesel::{OpenError, PoolOptions, TableShape};
pub use options::{SqliteOptions, Synchronous};

/// The backend's name in messages.
const BACKEND: &str = "SQLite";

/// The kaal tables of one SQLite file: [`Adapter`](kaal_core::Adapter),
/// [`DispatchRegistry`](kaal_core::DispatchRegistry) and
/// [`DefinitionRegistry`](kaal_core::DefinitionRegistry) over an r2d2 pool.
///
/// Open it with [`SqliteStore::open`] (default [`SqliteOptions`]) or
/// [`SqliteStore::open_with`]; create the tables with
/// [`run_migrations`](kaal_diesel::DieselStore::run_migrations).
pub type SqliteStore = kaal_diesel::DieselStore<SqliteDialect>;
