//! [`PgOptions`]: connection, lock waiting and pool settings.

use std::time::Duration;

use kaal_diesel::PoolOptions;

/// How a [`PgStore`](crate::PgStore) (and the lock session of a
/// [`PgAdvisoryAdapter`](crate::PgAdvisoryAdapter)) connects.
///
/// ```
/// use std::time::Duration;
/// use kaal_diesel_postgres::PgOptions;
///
/// let options = PgOptions {
///     lock_timeout: Duration::from_secs(2),
///     ..PgOptions::default()
/// };
/// assert_eq!(options.connect_timeout, Duration::from_secs(10));
/// assert_eq!(options.pool.max_size, 8);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgOptions {
    /// How long opening a connection may take before it fails (libpq's `connect_timeout`,
    /// whole seconds, at least 2; default 10 s). A `connect_timeout` given in the URL wins.
    /// Without one, libpq waits for the operating system's TCP timeout (minutes) on a host
    /// that drops packets.
    pub connect_timeout: Duration,
    /// How long a statement waits for a row lock another transaction holds before giving up
    /// (`SET lock_timeout`; default 5 s). A claim that gives up so reports "not acquired",
    /// like any other contention. `Duration::ZERO` waits forever.
    pub lock_timeout: Duration,
    /// The `application_name` the connections show in `pg_stat_activity` (default `kaal`;
    /// the advisory lock session adds ` advisory`).
    pub application_name: String,
    /// Pool settings (default: at most 8 connections, none kept open by the pool's own
    /// threads (`min_idle = 0`), 5 s checkout timeout).
    ///
    /// `min_idle` is 0 on PostgreSQL because r2d2 opens the connections that keep the idle
    /// count up on its own threads, after a checkout: a process that ends (a `kaal tick`,
    /// say) while such a connection is being opened tears libpq's TLS library down under
    /// that thread and crashes (seen here: SIGSEGV in OpenSSL at exit, one run in four with
    /// `min_idle = 1`). With 0, a connection is opened only for a checkout that waits for it;
    /// connections stay pooled after use as before.
    pub pool: PoolOptions,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            lock_timeout: Duration::from_secs(5),
            application_name: "kaal".to_string(),
            pool: PoolOptions {
                min_idle: Some(0),
                ..PoolOptions::default()
            },
        }
    }
}
