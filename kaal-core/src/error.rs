//! Error types, one per boundary of the crate.

use thiserror::Error;

/// A lock operation failed for a reason other than "someone else holds the key".
///
/// Contention is never an error: [`Adapter::acquire`](crate::Adapter::acquire) returns
/// `Ok(false)` for it. A `LockError` means the backend could not answer at all (the database
/// is unreachable, the schema is wrong, a statement failed). Its message names the backend,
/// the operation, the key and the cause, e.g. `SQLite acquire failed for kaal:dispatch:a:60: disk I/O error`.
#[derive(Debug, Error)]
#[error("{backend} {operation} failed for {key}: {cause}")]
pub struct LockError {
    /// Human name of the backend, e.g. `SQLite`, `PostgreSQL`, `memory`.
    pub backend: String,
    /// The operation that failed: `acquire`, `release`, `batch acquire`.
    pub operation: String,
    /// The lock key the operation was about (the first key for a batch).
    pub key: String,
    /// What went wrong, as reported by the backend.
    pub cause: String,
}

impl LockError {
    /// Builds a `LockError`.
    pub fn new(
        backend: impl Into<String>,
        operation: impl Into<String>,
        key: impl Into<String>,
        cause: impl ToString,
    ) -> Self {
        Self {
            backend: backend.into(),
            operation: operation.into(),
            key: key.into(),
            cause: cause.to_string(),
        }
    }
}

/// A registry (dispatch log or definition store) could not read or write.
#[derive(Debug, Error)]
#[error("{backend} {operation} failed: {cause}")]
pub struct RegistryError {
    /// Human name of the backend, e.g. `SQLite`.
    pub backend: String,
    /// What was being done, e.g. `log_dispatch(report:1700000000)`.
    pub operation: String,
    /// What went wrong.
    pub cause: String,
}

impl RegistryError {
    /// Builds a `RegistryError`.
    pub fn new(
        backend: impl Into<String>,
        operation: impl Into<String>,
        cause: impl ToString,
    ) -> Self {
        Self {
            backend: backend.into(),
            operation: operation.into(),
            cause: cause.to_string(),
        }
    }
}

/// A cron key is unusable: blank, with control characters or whitespace at either end, or
/// too long for the lock key built from it to fit the 255-character `key` columns.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyError {
    /// The cron key is empty or only whitespace.
    #[error("cron key must not be blank; give the job a name such as \"reports:daily\"")]
    Blank,
    /// The lock key `{namespace}:dispatch:{key}:{unix}` would exceed the column limit.
    #[error(
        "cron key {key:?} is too long: the lock key built from it needs {needed} bytes but the \
         limit is {limit}; shorten the key to at most {max_key_len} bytes"
    )]
    TooLong {
        /// The offending key.
        key: String,
        /// Bytes the lock key would need.
        needed: usize,
        /// The column limit (255).
        limit: usize,
        /// The longest cron key that fits with the current namespace.
        max_key_len: usize,
    },
    /// The cron key contains a control character (newline, NUL, ...).
    #[error("cron key {key:?} contains a control character; use printable characters only")]
    ControlCharacter {
        /// The offending key.
        key: String,
    },
    /// The cron key begins or ends with whitespace. MariaDB and MySQL compare `key` columns
    /// ignoring trailing spaces, so `"trail "` and `"trail"` would be one job there; such
    /// keys are refused on every backend (see
    /// [`validate_cron_key`](crate::validate_cron_key#whitespace-at-either-end)).
    #[error(
        "cron key {key:?} begins or ends with whitespace; use {:?} (MariaDB and MySQL ignore \
         trailing spaces when comparing keys, so such a key can be taken for another job's)",
        .key.trim()
    )]
    SurroundingWhitespace {
        /// The offending key.
        key: String,
    },
}
