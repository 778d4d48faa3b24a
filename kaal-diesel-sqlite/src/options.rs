//! [`SqliteOptions`]: durability, lock waiting and pool settings.

use std::fmt;
use std::time::Duration;

use kaal_diesel::PoolOptions;

/// SQLite's `synchronous` setting: how hard a commit waits for the disk.
///
/// kaal always runs SQLite in WAL mode. There:
/// * [`Full`](Synchronous::Full) (the default) syncs the WAL at every commit: a lease or
///   dispatch record that was committed survives a power loss. Measured here ≈ 3.7k single
///   acquires/s; the coordinator claims a tick's fire times in one statement, so a tick costs
///   one sync whatever its size.
/// * [`Normal`](Synchronous::Normal) syncs only at checkpoints: ≈ 19k acquires/s, durable
///   against a crash of the process, but a power loss (or OS crash) can roll back the last
///   commits — and a lost dispatch record is a fire time that recovery may dispatch again.
///   Choose it only when the lock rate matters more than that.
/// * [`Extra`](Synchronous::Extra) also syncs the directory after deleting a journal; no
///   difference in WAL mode beyond `Full`'s cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// `PRAGMA synchronous = NORMAL`.
    Normal,
    /// `PRAGMA synchronous = FULL` (default).
    #[default]
    Full,
    /// `PRAGMA synchronous = EXTRA`.
    Extra,
}

impl Synchronous {
    /// The pragma value.
    pub fn as_sql(self) -> &'static str {
        match self {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
            Synchronous::Extra => "EXTRA",
        }
    }
}

impl fmt::Display for Synchronous {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_sql())
    }
}

/// How a [`SqliteStore`](crate::SqliteStore) connects.
///
/// ```
/// use std::time::Duration;
/// use kaal_diesel_sqlite::{SqliteOptions, Synchronous};
///
/// let options = SqliteOptions {
///     synchronous: Synchronous::Normal,
///     busy_timeout: Duration::from_secs(10),
///     ..SqliteOptions::default()
/// };
/// assert_eq!(options.pool.max_size, 8);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    /// How long a statement waits for another connection's write lock before giving up
    /// with "database is locked" (`PRAGMA busy_timeout`; default 5 s). An acquire that gives
    /// up so reports "not acquired"; a batch claim (`acquire_many`) reports an error, since
    /// it decided none of its keys, and the coordinator retries them next tick. Opening a
    /// store retries the switch to WAL this long while other processes hold the file.
    pub busy_timeout: Duration,
    /// Durability of commits (default [`Synchronous::Full`]).
    pub synchronous: Synchronous,
    /// Pool settings (default: at most 8 connections, 1 kept idle, 5 s checkout timeout).
    pub pool: PoolOptions,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            busy_timeout: Duration::from_secs(5),
            synchronous: Synchronous::default(),
            pool: PoolOptions::default(),
        }
    }
}
