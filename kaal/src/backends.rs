//! The glue between [`connect`](crate::connect) and the backend crates, one function per
//! backend, each compiled only with its feature.

use crate::store::{feature_disabled, Backend, ConnectError, LockStrategy, Store};

/// Opens an SQLite store.
#[cfg(not(feature = "sqlite"))]
pub(crate) fn sqlite(_url: &str, shown: String) -> Result<Store, ConnectError> {
    Err(feature_disabled(Backend::Sqlite, shown))
}

/// Opens a PostgreSQL store.
pub(crate) fn postgres(
    _url: &str,
    shown: String,
    _strategy: LockStrategy,
) -> Result<Store, ConnectError> {
    Err(feature_disabled(Backend::Postgres, shown))
}

/// Opens a MySQL store.
pub(crate) fn mysql(
    _url: &str,
    shown: String,
    _strategy: LockStrategy,
) -> Result<Store, ConnectError> {
    Err(feature_disabled(Backend::Mysql, shown))
}

/// Opens an SQLite store.
#[cfg(feature = "sqlite")]
pub(crate) fn sqlite(_url: &str, shown: String) -> Result<Store, ConnectError> {
    Err(feature_disabled(Backend::Sqlite, shown))
}
