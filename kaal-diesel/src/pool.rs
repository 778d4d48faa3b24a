//! Pools: r2d2 settings shared by the Diesel backends.

use std::time::Duration;

use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PoolError, R2D2Connection};

/// Pool settings. The defaults suit a scheduler: a few connections, one opened eagerly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolOptions {
    /// Most connections open at once (default 8).
    pub max_size: u32,
    /// Idle connections kept open (default 1; `None` keeps `max_size` open).
    pub min_idle: Option<u32>,
    /// How long a checkout waits for a free connection before failing (default 30 s).
    pub connection_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_size: 8,
            min_idle: Some(1),
            connection_timeout: Duration::from_secs(30),
        }
    }
}

/// Builds a pool on `manager` with `options`, running `customizer` on every new connection
/// (session settings).
///
/// r2d2's test-on-checkout is **off**: it would add a `SELECT 1` round trip to every
/// checkout, i.e. to every acquire; a broken connection instead fails its statement, which
/// reports an error, and Diesel's `is_broken` keeps it out of the pool afterwards.
pub fn build_pool<C>(
    manager: ConnectionManager<C>,
    options: &PoolOptions,
    customizer: Option<Box<dyn CustomizeConnection<C, diesel::r2d2::Error>>>,
) -> Result<Pool<ConnectionManager<C>>, PoolError>
where
    C: R2D2Connection + Send + 'static,
{
    let builder = Pool::builder()
        .max_size(options.max_size)
        .min_idle(options.min_idle)
        .connection_timeout(options.connection_timeout)
        .test_on_check_out(false);
    match customizer {
        Some(customizer) => builder.connection_customizer(customizer).build(manager),
        None => builder.build(manager),
    }
}
