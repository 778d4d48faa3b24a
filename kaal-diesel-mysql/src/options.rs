//! [`MysqlOptions`]: connection, lock-wait and pool settings.

use std::time::Duration;

use kaal_diesel::PoolOptions;

/// How a [`MysqlStore`](crate::MysqlStore) (and the session of a
/// [`MysqlNamedLockAdapter`](crate::MysqlNamedLockAdapter)) connects.
///
/// ```
/// use std::time::Duration;
/// use kaal_diesel_mysql::MysqlOptions;
///
/// let options = MysqlOptions {
///     connect_timeout: Duration::from_secs(3),
///     ..MysqlOptions::default()
/// };
/// assert_eq!(options.lock_wait_timeout, Duration::from_secs(5));
/// assert_eq!(options.pool.max_size, 8);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MysqlOptions {
    /// How long opening a connection may take to reach the server's TCP port (default
    /// 10 s): an unreachable host is reported after this long instead of the operating
    /// system's TCP timeout (minutes). Not applied to Unix sockets.
    pub connect_timeout: Duration,
    /// How long a statement waits for a row lock another transaction holds
    /// (`innodb_lock_wait_timeout`, whole seconds, at least 1; default 5 s instead of the
    /// server's 50 s). A claim that gives up so reports "not acquired".
    pub lock_wait_timeout: Duration,
    /// Pool settings (default: at most 8 connections, 1 kept idle, 5 s checkout timeout).
    pub pool: PoolOptions,
}

impl Default for MysqlOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            lock_wait_timeout: Duration::from_secs(5),
            pool: PoolOptions::default(),
        }
    }
}
