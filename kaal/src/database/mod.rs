//! [`Database`]: a connected database (its kind, its URL as shown, its adapter and
//! migrations),
//! and what names one: [`DatabaseKind`], [`LockStrategy`], [`ConnectError`], [`redact`].

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use kaal_core::Adapter;

pub(crate) mod connect;

/// The databases kaal can keep its leases, dispatch log and definitions in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    /// In this process only (`memory:`); nothing is shared or kept.
    Memory,
    /// An SQLite file shared by the processes of one host (feature `sqlite`).
    Sqlite,
    /// PostgreSQL (feature `postgres`).
    Postgres,
    /// MySQL or MariaDB (feature `mysql`).
    Mysql,
}

impl DatabaseKind {
    /// The Cargo feature that compiles this backend in (`None` for memory).
    pub fn feature(self) -> Option<&'static str> {
        match self {
            DatabaseKind::Memory => None,
            DatabaseKind::Sqlite => Some("sqlite"),
            DatabaseKind::Postgres => Some("postgres"),
            DatabaseKind::Mysql => Some("mysql"),
        }
    }

    /// Which backend `url` names: `memory:`, `sqlite://…`, `postgres://…` /
    /// `postgresql://…`, `mysql://…`; anything without a scheme is an SQLite file path.
    pub fn from_url(url: &str) -> Result<DatabaseKind, ConnectError> {
        let url = url.trim();
        if url.is_empty() {
            return Err(ConnectError::UnsupportedUrl(
                "the database URL is empty; use e.g. sqlite://db/kaal.db".into(),
            ));
        }
        if url == "memory:" {
            return Ok(DatabaseKind::Memory);
        }
        match kaal_diesel::scheme(url).as_deref() {
            None => Ok(DatabaseKind::Sqlite),
            Some("sqlite") => Ok(DatabaseKind::Sqlite),
            Some("postgres" | "postgresql") => Ok(DatabaseKind::Postgres),
            Some("mysql" | "mariadb") => Ok(DatabaseKind::Mysql),
            Some(other) => Err(ConnectError::UnsupportedUrl(format!(
                "unknown database URL scheme \"{other}:\" in {}; use sqlite://PATH, a file path, postgres://, mysql:// or memory:",
                redact(url)
            ))),
        }
    }
}

impl fmt::Display for DatabaseKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DatabaseKind::Memory => "memory",
            DatabaseKind::Sqlite => "SQLite",
            DatabaseKind::Postgres => "PostgreSQL",
            DatabaseKind::Mysql => "MySQL",
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
        backend: DatabaseKind,
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
        backend: DatabaseKind,
    },
    /// The backend could not open the database.
    #[error("cannot open the {backend} database {url}: {cause}")]
    Open {
        /// The backend.
        backend: DatabaseKind,
        /// The URL, password hidden.
        url: String,
        /// What went wrong.
        cause: String,
    },
    /// Migrations failed.
    #[error("migrating the {backend} database {url} failed: {cause}")]
    Migration {
        /// The backend.
        backend: DatabaseKind,
        /// The URL, password hidden.
        url: String,
        /// What went wrong.
        cause: String,
    },
}

/// A connected database: the [`Adapter`] the coordinator claims through (with its dispatch log
/// and definitions), and the migrations of its database.
pub struct Database {
    backend: DatabaseKind,
    url: String,
    /// The pieces of the URL that `url` hides, hidden from migration errors too.
    secrets: Vec<String>,
    adapter: Arc<dyn Adapter>,
    migrate: Option<Box<dyn Fn() -> Result<(), String> + Send + Sync>>,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database")
            .field("backend", &self.backend)
            .field("url", &self.url)
            .field("adapter", &self.adapter.name())
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Which database this is.
    pub fn backend(&self) -> DatabaseKind {
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
                cause: hide_secrets(&cause, &self.secrets),
            }),
        }
    }
}

/// The file path of an SQLite URL as written (`sqlite:///abs` → `/abs`, `sqlite://rel` and
/// `sqlite:rel` → `rel`, a plain path as it is); `None` for other backends and for a URL with
/// no path. Always a suffix of `url`.
pub fn sqlite_file(url: &str) -> Option<&str> {
    if DatabaseKind::from_url(url).ok()? != DatabaseKind::Sqlite {
        return None;
    }
    let path = match kaal_diesel::scheme(url) {
        None => url,
        Some(_) => {
            let (_, rest) = url.split_once(':')?;
            rest.strip_prefix("//").unwrap_or(rest)
        }
    };
    (!path.is_empty()).then_some(path)
}

impl Database {
    /// Builds a connected database from its parts (for the backend glue).
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) fn from_parts(
        backend: DatabaseKind,
        url: String,
        adapter: Arc<dyn Adapter>,
        migrate: Option<Box<dyn Fn() -> Result<(), String> + Send + Sync>>,
    ) -> Self {
        Self {
            backend,
            url,
            secrets: Vec::new(),
            adapter,
            migrate,
        }
    }

    /// This store, remembering `secrets` (the URL's password) to hide them from the
    /// messages of its migrations.
    pub(crate) fn with_secrets(self, secrets: Vec<String>) -> Self {
        Self { secrets, ..self }
    }
}

/// `url` with its password hidden, for messages and logs: [`kaal_diesel::redact_password`],
/// which documents what counts as the password.
///
/// ```
/// assert_eq!(kaal::redact("postgres://u:pa#ss@db/app"), "postgres://u:***@db/app");
/// ```
pub fn redact(url: &str) -> String {
    kaal_diesel::redact_password(url)
}

/// The pieces of `url` that [`redact`] hides (the password, `password=` values), so they
/// can be hidden from text a database driver wrote too: libpq quotes pieces of a malformed
/// URL (`invalid integer value "s3cr#t" for connection option "port"`).
pub(crate) fn secrets(url: &str) -> Vec<String> {
    let shown: Vec<char> = redact(url).chars().collect();
    let url: Vec<char> = url.chars().collect();
    let prefix = url.iter().zip(&shown).take_while(|(a, b)| a == b).count();
    let suffix = url[prefix..]
        .iter()
        .rev()
        .zip(shown[prefix..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let hidden: String = url[prefix..url.len() - suffix].iter().collect();
    let kept: String = shown[prefix..shown.len() - suffix].iter().collect();
    // Between the `***`s the redacted text keeps pieces of the URL (`@host/db?password=`);
    // what lies around them in the original is secret.
    let mut parts = Vec::new();
    let mut rest = hidden.as_str();
    for piece in kept.split("***").filter(|p| !p.is_empty()) {
        if let Some(at) = rest.find(piece) {
            parts.push(rest[..at].to_string());
            rest = &rest[at + piece.len()..];
        }
    }
    parts.push(rest.to_string());
    parts.retain(|p| !p.is_empty());
    parts
}

/// `text` with every run of at least three characters (or a whole shorter secret) that
/// occurs in one of `secrets` replaced by `***`.
fn hide_secrets(text: &str, secrets: &[String]) -> String {
    if secrets.is_empty() {
        return text.to_string();
    }
    let secrets: Vec<Vec<char>> = secrets.iter().map(|s| s.chars().collect()).collect();
    let text: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let longest = secrets
            .iter()
            .map(|secret| {
                let min = secret.len().min(3);
                (min..=secret.len().min(text.len() - i))
                    .rev()
                    .find(|len| secret.windows(*len).any(|w| w == &text[i..i + len]))
                    .unwrap_or(0)
            })
            .max()
            .unwrap_or(0);
        if longest > 0 {
            out.push_str("***");
            i += longest;
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
    out
}

impl ConnectError {
    /// This error with `secrets` hidden from the driver's text.
    pub(crate) fn hiding(self, secrets: &[String]) -> Self {
        match self {
            ConnectError::Open {
                backend,
                url,
                cause,
            } => ConnectError::Open {
                backend,
                url,
                cause: hide_secrets(&cause, secrets),
            },
            ConnectError::Migration {
                backend,
                url,
                cause,
            } => ConnectError::Migration {
                backend,
                url,
                cause: hide_secrets(&cause, secrets),
            },
            other => other,
        }
    }
}

/// The feature-off error for `backend`.
#[allow(dead_code)]
pub(crate) fn feature_disabled(backend: DatabaseKind, url: String) -> ConnectError {
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
        assert_eq!(
            DatabaseKind::from_url("memory:").unwrap(),
            DatabaseKind::Memory
        );
        assert_eq!(
            DatabaseKind::from_url("db/kaal.db").unwrap(),
            DatabaseKind::Sqlite
        );
        assert_eq!(
            DatabaseKind::from_url("sqlite://x.db").unwrap(),
            DatabaseKind::Sqlite
        );
        assert_eq!(
            DatabaseKind::from_url("postgresql://u@h/d").unwrap(),
            DatabaseKind::Postgres
        );
        assert_eq!(
            DatabaseKind::from_url("mysql://u@h/d").unwrap(),
            DatabaseKind::Mysql
        );
        assert!(DatabaseKind::from_url("redis://h").is_err());
    }

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(sqlite_file("sqlite:///var/k.db"), Some("/var/k.db"));
        assert_eq!(sqlite_file("sqlite://db/k.db"), Some("db/k.db"));
        assert_eq!(sqlite_file("SQLite:db/k.db"), Some("db/k.db"));
        assert_eq!(sqlite_file("k.db"), Some("k.db"));
        assert_eq!(sqlite_file("sqlite://"), None);
        assert_eq!(sqlite_file("postgres://h/d"), None);
        assert_eq!(sqlite_file("memory:"), None);
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
    fn the_pieces_of_a_hostile_password_are_hidden_from_driver_messages() {
        let url = "postgres://u:s3cr#t/x@127.0.0.1:1/db?password=0th3r";
        let hidden_parts = secrets(url);
        assert_eq!(hidden_parts, ["s3cr#t/x", "0th3r"]);
        let hidden = hide_secrets(
            "invalid integer value \"s3cr#t\" for connection option \"port\"; 0th3r; x",
            &hidden_parts,
        );
        assert_eq!(
            hidden,
            "invalid integer value \"***\" for connection option \"port\"; ***; x"
        );
        assert!(secrets("sqlite://kaal.db").is_empty());
        assert_eq!(secrets("mysql://u:p/w?x@h/db"), ["p/w?x"]);
    }

    #[test]
    fn advisory_locks_need_a_server_database() {
        let err = crate::connect_with("memory:", LockStrategy::Advisory).unwrap_err();
        assert!(err.to_string().contains("not available on memory"));
    }
}
