//! Pools: r2d2 settings shared by the Diesel backends.

use std::time::Duration;

use diesel::connection::{Instrumentation, InstrumentationEvent};
use diesel::r2d2::{
    ConnectionManager, CustomizeConnection, ManageConnection, Pool, PoolError, R2D2Connection,
};

/// Pool settings. The defaults suit a scheduler: a few connections, one opened eagerly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolOptions {
    /// Most connections open at once (default 8).
    pub max_size: u32,
    /// Idle connections kept open (default 1; `None` keeps `max_size` open).
    pub min_idle: Option<u32>,
    /// How long a checkout waits for a free connection before failing (default 5 s, one
    /// default tick). r2d2's own default is 30 s; while the database is down every checkout
    /// waits this long, and a tick makes several, so a scheduler wants it short: the step
    /// fails, is reported, and its fire times are retried next tick.
    pub connection_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_size: 8,
            min_idle: Some(1),
            connection_timeout: Duration::from_secs(5),
        }
    }
}

/// The r2d2 manager of every kaal pool: Diesel's [`ConnectionManager`], plus a check of the
/// connections that saw a statement fail.
///
/// Diesel keeps a connection out of the pool only when its transaction state is broken.
/// A connection whose server went away outside a transaction (a restart, a cut network) is
/// not: the MySQL client would hand the same dead connection out again and again, and the
/// node would never recover from an outage. So each connection records whether its last
/// statement failed other than by the server's own answer (a constraint or a deadlock, which
/// prove the connection alive) ([`Instrumentation`]); when such a connection comes back to
/// the pool it is pinged once, and dropped if the ping fails. A healthy connection pays
/// nothing: no such failure, no ping.
#[derive(Debug)]
pub struct CheckedManager<C: R2D2Connection + Send + 'static> {
    inner: ConnectionManager<C>,
}

impl<C: R2D2Connection + Send + 'static> CheckedManager<C> {
    /// Wraps Diesel's manager.
    pub fn new(inner: ConnectionManager<C>) -> Self {
        Self { inner }
    }
}

/// Remembers whether a connection's last statement failed, and passes every event on to
/// the instrumentation the application installed as Diesel's default
/// ([`set_default_instrumentation`](diesel::connection::set_default_instrumentation)), so
/// SQL logging or metrics keep working on kaal's connections.
#[derive(Default)]
struct LastStatement {
    failed: bool,
    inner: Option<Box<dyn Instrumentation>>,
}

/// Whether `error` is the server's answer to the statement (a constraint, a deadlock), which
/// proves the connection alive: such a failure (a held key's duplicate insert on MySQL, say)
/// costs no ping.
fn server_answered(error: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind as Kind, Error};
    matches!(
        error,
        Error::DatabaseError(
            Kind::UniqueViolation
                | Kind::ForeignKeyViolation
                | Kind::NotNullViolation
                | Kind::CheckViolation
                | Kind::RestrictViolation
                | Kind::ExclusionViolation
                | Kind::SerializationFailure
                | Kind::ReadOnlyTransaction,
            _
        )
    )
}

impl Instrumentation for LastStatement {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let InstrumentationEvent::FinishQuery { error, .. } = &event {
            self.failed = error.is_some_and(|error| !server_answered(error));
        }
        if let Some(inner) = self.inner.as_mut() {
            inner.on_connection_event(event);
        }
    }
}

impl<C: R2D2Connection + Send + 'static> ManageConnection for CheckedManager<C> {
    type Connection = C;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<C, Self::Error> {
        let mut conn = self.inner.connect()?;
        conn.set_instrumentation(LastStatement {
            failed: false,
            inner: diesel::connection::get_default_instrumentation(),
        });
        Ok(conn)
    }

    fn is_valid(&self, conn: &mut C) -> Result<(), Self::Error> {
        self.inner.is_valid(conn)
    }

    fn has_broken(&self, conn: &mut C) -> bool {
        if self.inner.has_broken(conn) {
            return true;
        }
        let failed = conn
            .instrumentation()
            .downcast_mut::<LastStatement>()
            .is_some_and(|last| std::mem::take(&mut last.failed));
        failed && conn.ping().is_err()
    }
}

/// Builds a pool on `manager` with `options`, running `customizer` on every new connection
/// (session settings). The pool's manager is a [`CheckedManager`].
///
/// r2d2's test-on-checkout is **off**: it would add a `SELECT 1` round trip to every
/// checkout, i.e. to every acquire. A connection whose statement failed is pinged when it
/// comes back instead, and dropped when the server is gone.
pub fn build_pool<C>(
    manager: ConnectionManager<C>,
    options: &PoolOptions,
    customizer: Option<Box<dyn CustomizeConnection<C, diesel::r2d2::Error>>>,
) -> Result<Pool<CheckedManager<C>>, PoolError>
where
    C: R2D2Connection + Send + 'static,
{
    let builder = Pool::builder()
        .max_size(options.max_size)
        .min_idle(options.min_idle)
        .connection_timeout(options.connection_timeout)
        .test_on_check_out(false);
    let manager = CheckedManager::new(manager);
    match customizer {
        Some(customizer) => builder.connection_customizer(customizer).build(manager),
        None => builder.build(manager),
    }
}
