//! [`connect`]: the store a database URL names, and the glue to the backend crates, one
//! function per backend, each compiled only with its feature.

use std::sync::Arc;

use kaal_core::MemoryAdapter;

#[cfg(not(all(feature = "sqlite", feature = "postgres", feature = "mysql")))]
use crate::database::feature_disabled;
use crate::database::{redact, secrets, ConnectError, Database, DatabaseKind, LockStrategy};

/// Opens the store `url` names with the lease strategy; see [`connect_with`].
///
/// ```
/// let store = kaal::connect("memory:")?;
/// assert_eq!(store.backend(), kaal::DatabaseKind::Memory);
///
/// let err = kaal::connect("ftp://example.com/db").unwrap_err();
/// assert!(err.to_string().contains("unknown database URL scheme"));
/// # Ok::<(), kaal::ConnectError>(())
/// ```
pub fn connect(url: &str) -> Result<Database, ConnectError> {
    connect_with(url, LockStrategy::Lease)
}

/// Opens the store `url` names:
///
/// * `memory:` — [`MemoryAdapter`]: this process only;
/// * `sqlite://PATH`, `sqlite:///ABSOLUTE/PATH` or a plain file path — SQLite (feature
///   `sqlite`, on by default). A relative path is relative to the working directory; missing
///   parent directories are created;
/// * `postgres://…`, `postgresql://…` — PostgreSQL (feature `postgres`);
/// * `mysql://…` — MySQL / MariaDB (feature `mysql`).
///
/// A URL whose backend is not compiled in fails with [`ConnectError::FeatureDisabled`],
/// naming the feature to enable. `strategy` [`LockStrategy::Advisory`] exists only for
/// PostgreSQL and MySQL.
///
/// The password never appears in an error or in [`Database::url`], and the URL and its
/// password are withheld from the jobs this process runs
/// ([`withhold_from_jobs`](crate::jobs::command_job::withhold_from_jobs)).
pub fn connect_with(url: &str, strategy: LockStrategy) -> Result<Database, ConnectError> {
    let backend = DatabaseKind::from_url(url)?;
    let url = url.trim();
    let shown = redact(url);
    let secrets = secrets(url);
    if backend != DatabaseKind::Memory {
        crate::jobs::command_job::withhold_from_jobs(url);
        for secret in &secrets {
            crate::jobs::command_job::withhold_from_jobs(secret);
        }
    }
    if strategy == LockStrategy::Advisory
        && matches!(backend, DatabaseKind::Memory | DatabaseKind::Sqlite)
    {
        return Err(ConnectError::UnsupportedStrategy { strategy, backend });
    }
    let store = match backend {
        DatabaseKind::Memory => Ok(Database::from_parts(
            backend,
            shown,
            Arc::new(MemoryAdapter::new()),
            None,
        )),
        DatabaseKind::Sqlite => sqlite(url, shown),
        DatabaseKind::Postgres => postgres(url, shown, strategy),
        DatabaseKind::Mysql => mysql(url, shown, strategy),
    };
    store
        .map(|store| store.with_secrets(secrets.clone()))
        .map_err(|err| err.hiding(&secrets))
}

/// Opens an SQLite store.
#[cfg(not(feature = "sqlite"))]
pub(crate) fn sqlite(_url: &str, shown: String) -> Result<Database, ConnectError> {
    Err(feature_disabled(DatabaseKind::Sqlite, shown))
}

/// Opens a PostgreSQL store.
#[cfg(not(feature = "postgres"))]
pub(crate) fn postgres(
    _url: &str,
    shown: String,
    _strategy: LockStrategy,
) -> Result<Database, ConnectError> {
    Err(feature_disabled(DatabaseKind::Postgres, shown))
}

/// Opens a PostgreSQL store: the lease table, or with `lock_strategy: advisory` advisory
/// locks on a dedicated session (the dispatch log and definitions stay in the tables).
#[cfg(feature = "postgres")]
pub(crate) fn postgres(
    url: &str,
    shown: String,
    strategy: LockStrategy,
) -> Result<Database, ConnectError> {
    use std::sync::Arc;

    use kaal_core::Adapter;
    use kaal_diesel_postgres::{OpenError, PgAdvisoryAdapter, PgStore};

    type Migrate = Box<dyn Fn() -> Result<(), String> + Send + Sync>;
    let open_error = |err: OpenError| ConnectError::Open {
        backend: DatabaseKind::Postgres,
        url: shown.clone(),
        cause: err.to_string(),
    };
    let (adapter, migrate): (Arc<dyn Adapter>, Migrate) = match strategy {
        LockStrategy::Lease => {
            let store = Arc::new(PgStore::open(url).map_err(open_error)?);
            let migrations = store.clone();
            let migrate: Migrate = Box::new(move || {
                migrations
                    .run_migrations()
                    .map(|_| ())
                    .map_err(|err| err.to_string())
            });
            (store, migrate)
        }
        LockStrategy::Advisory => {
            let adapter = Arc::new(PgAdvisoryAdapter::open(url).map_err(open_error)?);
            let migrations = adapter.clone();
            let migrate: Migrate = Box::new(move || {
                migrations
                    .store()
                    .run_migrations()
                    .map(|_| ())
                    .map_err(|err| err.to_string())
            });
            (adapter, migrate)
        }
    };
    Ok(Database::from_parts(
        DatabaseKind::Postgres,
        shown,
        adapter,
        Some(migrate),
    ))
}

/// Opens a MySQL store.
#[cfg(not(feature = "mysql"))]
pub(crate) fn mysql(
    _url: &str,
    shown: String,
    _strategy: LockStrategy,
) -> Result<Database, ConnectError> {
    Err(feature_disabled(DatabaseKind::Mysql, shown))
}

/// Opens a MySQL / MariaDB store: the lease table, or with `lock_strategy: advisory` named
/// locks (`GET_LOCK`) on a dedicated session, with no name prefix so that the names are the
/// Ruby gem's (the dispatch log and definitions stay in the tables).
#[cfg(feature = "mysql")]
pub(crate) fn mysql(
    url: &str,
    shown: String,
    strategy: LockStrategy,
) -> Result<Database, ConnectError> {
    use std::sync::Arc;

    use kaal_core::Adapter;
    use kaal_diesel_mysql::{MysqlNamedLockAdapter, MysqlStore, OpenError};

    type Migrate = Box<dyn Fn() -> Result<(), String> + Send + Sync>;
    let open_error = |err: OpenError| ConnectError::Open {
        backend: DatabaseKind::Mysql,
        url: shown.clone(),
        cause: err.to_string(),
    };
    let (adapter, store): (Arc<dyn Adapter>, Arc<MysqlStore>) = match strategy {
        LockStrategy::Lease => {
            let store = Arc::new(MysqlStore::open(url).map_err(open_error)?);
            (store.clone(), store)
        }
        LockStrategy::Advisory => {
            let adapter = MysqlNamedLockAdapter::open(url).map_err(open_error)?;
            let store = adapter.store().clone();
            (Arc::new(adapter), store)
        }
    };
    let migrate: Migrate = Box::new(move || {
        store
            .run_migrations()
            .map(|_| ())
            .map_err(|err| err.to_string())
    });
    Ok(Database::from_parts(
        DatabaseKind::Mysql,
        shown,
        adapter,
        Some(migrate),
    ))
}

/// Opens an SQLite store. Missing parent directories of the file are created, so a fresh
/// checkout can point at e.g. `sqlite://target/kaal/kaal.db` with no set-up.
#[cfg(feature = "sqlite")]
pub(crate) fn sqlite(url: &str, shown: String) -> Result<Database, ConnectError> {
    use std::sync::Arc;

    use kaal_diesel_sqlite::SqliteStore;

    let path = crate::database::sqlite_file(url).unwrap_or(url);
    if let Some(dir) = std::path::Path::new(path).parent() {
        if !dir.as_os_str().is_empty() && !dir.exists() {
            std::fs::create_dir_all(dir).map_err(|err| ConnectError::Open {
                backend: DatabaseKind::Sqlite,
                url: shown.clone(),
                cause: format!("cannot create directory {}: {err}", dir.display()),
            })?;
        }
    }
    let store = Arc::new(SqliteStore::open(url).map_err(|err| ConnectError::Open {
        backend: DatabaseKind::Sqlite,
        url: shown.clone(),
        cause: err.to_string(),
    })?);
    let migrations = store.clone();
    Ok(Database::from_parts(
        DatabaseKind::Sqlite,
        shown,
        store,
        Some(Box::new(move || {
            migrations
                .run_migrations()
                .map(|_| ())
                .map_err(|err| err.to_string())
        })),
    ))
}
