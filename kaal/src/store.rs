//! [`connect`]: a store picked by the database URL, with its migrations.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use kaal_core::{Adapter, MemoryAdapter};

/// The databases kaal can keep its leases, dispatch log and definitions in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// In this process only (`memory:`); nothing is shared or kept.
    Memory,
    /// An SQLite file shared by the processes of one host (feature `sqlite`).
    Sqlite,
    /// PostgreSQL (feature `postgres`).
    Postgres,
    /// MySQL or MariaDB (feature `mysql`).
    Mysql,
}

impl Backend {
    /// The Cargo feature that compiles this backend in (`None` for memory).
    pub fn feature(self) -> Option<&'static str> {
        match self {
            Backend::Memory => None,
            Backend::Sqlite => Some("sqlite"),
            Backend::Postgres => Some("postgres"),
            Backend::Mysql => Some("mysql"),
        }
    }

    /// Which backend `url` names: `memory:`, `sqlite://…`, `postgres://…` /
    /// `postgresql://…`, `mysql://…`; anything without a scheme is an SQLite file path.
    pub fn from_url(url: &str) -> Result<Backend, ConnectError> {
        let url = url.trim();
        if url.is_empty() {
            return Err(ConnectError::UnsupportedUrl(
                "the database URL is empty; use e.g. sqlite://db/kaal.db".into(),
            ));
        }
        if url == "memory:" {
            return Ok(Backend::Memory);
        }
        match scheme(url).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(Backend::Sqlite),
            Some("sqlite") => Ok(Backend::Sqlite),
            Some("postgres" | "postgresql") => Ok(Backend::Postgres),
            Some("mysql" | "mariadb") => Ok(Backend::Mysql),
            Some(other) => Err(ConnectError::UnsupportedUrl(format!(
                "unknown database URL scheme \"{other}:\" in {}; use sqlite://PATH, a file path, postgres://, mysql:// or memory:",
                redact(url)
            ))),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Memory => "memory",
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
            Backend::Mysql => "MySQL",
        })
    }
}

/// How claims are held: rows in `kaal_locks` (every backend) or the database's session
/// locks (PostgreSQL advisory locks, MySQL named locks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LockStrategy {
    /// Lease rows with an expiry decided by the database clock (default).
    #[default]
    Lease,
    /// Session locks of PostgreSQL or MySQL.
    Advisory,
}

impl FromStr for LockStrategy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "lease" => Ok(LockStrategy::Lease),
            "advisory" => Ok(LockStrategy::Advisory),
            other => Err(format!(
                "unknown lock_strategy {other:?}: expected one of lease, advisory"
            )),
        }
    }
}

impl fmt::Display for LockStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LockStrategy::Lease => "lease",
            LockStrategy::Advisory => "advisory",
        })
    }
}

/// Connecting to a store failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL names a backend this build does not include.
    #[error(
        "{url} needs the {backend} backend, which this build of kaal does not include; \
         enable the `{feature}` feature (e.g. cargo install kaal --features {feature})"
    )]
    FeatureDisabled {
        /// The backend the URL names.
        backend: Backend,
        /// The Cargo feature to enable.
        feature: &'static str,
        /// The URL, password hidden.
        url: String,
    },
    /// The URL is not one kaal understands.
    #[error("{0}")]
    UnsupportedUrl(String),
    /// The lock strategy does not exist for the backend.
    #[error("lock_strategy {strategy} is not available on {backend}; use lease")]
    UnsupportedStrategy {
        /// The strategy asked for.
        strategy: LockStrategy,
        /// The backend.
        backend: Backend,
    },
    /// The backend could not open the database.
    #[error("cannot open the {backend} database {url}: {cause}")]
    Open {
        /// The backend.
        backend: Backend,
        /// The URL, password hidden.
        url: String,
        /// What went wrong.
        cause: String,
    },
    /// Migrations failed.
    #[error("migrating the {backend} database {url} failed: {cause}")]
    Migration {
        /// The backend.
        backend: Backend,
        /// The URL, password hidden.
        url: String,
        /// What went wrong.
        cause: String,
    },
}

/// A connected store: the [`Adapter`] the coordinator claims through (with its dispatch log
/// and definitions), and the migrations of its database.
pub struct Store {
    backend: Backend,
    url: String,
    adapter: Arc<dyn Adapter>,
    migrate: Option<Box<dyn Fn() -> Result<(), String> + Send + Sync>>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .field("url", &self.url)
            .field("adapter", &self.adapter.name())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL it was opened with, password replaced by `***`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The adapter to hand to [`Kaal::new`](kaal_core::Kaal::new).
    pub fn adapter(&self) -> Arc<dyn Adapter> {
        self.adapter.clone()
    }

    /// Runs the embedded migrations of the database (a no-op when they already ran, and for
    /// `memory:`).
    pub fn run_migrations(&self) -> Result<(), ConnectError> {
        match &self.migrate {
            None => Ok(()),
            Some(migrate) => migrate().map_err(|cause| ConnectError::Migration {
                backend: self.backend,
                url: self.url.clone(),
                cause,
            }),
        }
    }
}

/// Opens the store `url` names with the lease strategy; see [`connect_with`].
///
/// ```
/// let store = kaal::connect("memory:")?;
/// assert_eq!(store.backend(), kaal::Backend::Memory);
///
/// let err = kaal::connect("ftp://example.com/db").unwrap_err();
/// assert!(err.to_string().contains("unknown database URL scheme"));
/// # Ok::<(), kaal::ConnectError>(())
/// ```
pub fn connect(url: &str) -> Result<Store, ConnectError> {
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
pub fn connect_with(url: &str, strategy: LockStrategy) -> Result<Store, ConnectError> {
    let backend = Backend::from_url(url)?;
    let shown = redact(url.trim());
    if strategy == LockStrategy::Advisory && matches!(backend, Backend::Memory | Backend::Sqlite) {
        return Err(ConnectError::UnsupportedStrategy { strategy, backend });
    }
    match backend {
        Backend::Memory => Ok(Store {
            backend,
            url: shown,
            adapter: Arc::new(MemoryAdapter::new()),
            migrate: None,
        }),
        Backend::Sqlite => crate::backends::sqlite(url.trim(), shown),
        Backend::Postgres => crate::backends::postgres(url.trim(), shown, strategy),
        Backend::Mysql => crate::backends::mysql(url.trim(), shown, strategy),
    }
}

impl Store {
    /// Builds a store from its parts (for the backend glue).
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) fn from_parts(
        backend: Backend,
        url: String,
        adapter: Arc<dyn Adapter>,
        migrate: Option<Box<dyn Fn() -> Result<(), String> + Send + Sync>>,
    ) -> Self {
        Self {
            backend,
            url,
            adapter,
            migrate,
        }
    }
}

/// The scheme of `url` (`postgres` in `postgres://…`), if it has one.
fn scheme(url: &str) -> Option<&str> {
    let (scheme, _) = url.split_once(':')?;
    let mut chars = scheme.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    // A one-letter "scheme" is a Windows drive (C:\...), i.e. a path.
    (ok && scheme.len() > 1).then_some(scheme)
}

/// `url` with the password of `user:password@` replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => match authority[..at].split_once(':') {
            Some((user, _password)) => format!(
                "{scheme}://{user}:***@{}{}",
                &authority[at + 1..],
                &rest[authority_end..]
            ),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// The feature-off error for `backend`.
#[allow(dead_code)]
pub(crate) fn feature_disabled(backend: Backend, url: String) -> ConnectError {
    ConnectError::FeatureDisabled {
        backend,
        feature: backend.feature().unwrap_or("sqlite"),
        url,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_pick_their_backend() {
        assert_eq!(Backend::from_url("memory:").unwrap(), Backend::Memory);
        assert_eq!(Backend::from_url("db/kaal.db").unwrap(), Backend::Sqlite);
        assert_eq!(Backend::from_url("sqlite://x.db").unwrap(), Backend::Sqlite);
        assert_eq!(
            Backend::from_url("postgresql://u@h/d").unwrap(),
            Backend::Postgres
        );
        assert_eq!(Backend::from_url("mysql://u@h/d").unwrap(), Backend::Mysql);
        assert!(Backend::from_url("redis://h").is_err());
    }

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redact("postgres://kaal:secret@db:5432/kaal"),
            "postgres://kaal:***@db:5432/kaal"
        );
        assert_eq!(redact("sqlite://a.db"), "sqlite://a.db");
    }

    #[test]
    fn advisory_locks_need_a_server_database() {
        let err = connect_with("memory:", LockStrategy::Advisory).unwrap_err();
        assert!(err.to_string().contains("not available on memory"));
    }
}
