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
            cause: with_migration_hint(cause.to_string()),
        }
    }
}

/// A registry (dispatch log or definition store) could not read or write.
///
/// Like [`LockError`], a cause that says a kaal table does not exist (the database was never
/// migrated) is completed with the fix, so the message reads e.g. `SQLite
/// find_definition(kaal:hello) failed: no such table: kaal_definitions (the kaal tables are
/// missing: run `kaal migrate` or call `run_migrations()` on the database first)` — in its
/// `Debug` form too, which is what `fn main() -> Result<…>` prints.
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
            cause: with_migration_hint(cause.to_string()),
        }
    }
}

/// What a missing kaal table is fixed by, appended to causes that report one.
pub(crate) const MIGRATION_HINT: &str =
    "the kaal tables are missing: run `kaal migrate` or call `run_migrations()` on the database first";

/// `cause`, with [`MIGRATION_HINT`] appended when it reports a missing kaal table in the
/// words of SQLite (`no such table: kaal_…`), PostgreSQL (`relation "kaal_…" does not
/// exist`), MySQL / MariaDB (`Table 'db.kaal_…' doesn't exist`) or kaal-diesel (`kaal
/// tables are missing`), and does not name the fix already.
pub(crate) fn with_migration_hint(cause: String) -> String {
    let lower = cause.to_lowercase();
    let missing = lower.contains("kaal tables are missing")
        || (lower.contains("kaal_")
            && (lower.contains("no such table")
                || (lower.contains("relation") && lower.contains("does not exist"))
                || (lower.contains("table") && lower.contains("doesn't exist"))));
    if missing && !cause.contains("run_migrations()") {
        format!("{cause} ({MIGRATION_HINT})")
    } else {
        cause
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_kaal_table_is_completed_with_the_fix_in_every_dialect() {
        for cause in [
            "no such table: kaal_definitions",
            "relation \"kaal_nodes\" does not exist",
            "Table 'test.kaal_locks' doesn't exist",
            "kaal tables are missing; run the migrations first",
        ] {
            let err = RegistryError::new("SQL", "find_definition(kaal:a)", cause);
            assert!(err.cause.starts_with(cause), "{err}");
            assert!(
                err.to_string()
                    .contains("run `kaal migrate` or call `run_migrations()`"),
                "{err}"
            );
            assert!(format!("{err:?}").contains("run `kaal migrate`"), "{err:?}");
            let err = LockError::new("SQL", "acquire", "kaal:dispatch:a:60", cause);
            assert!(err.to_string().contains("call `run_migrations()`"), "{err}");
        }
    }

    #[test]
    fn other_causes_are_left_as_they_are() {
        for cause in [
            "database is locked",
            "no such table: invoices",
            "table kaal_definitions has no column named schedule_since; run the migrations first (`run_migrations()` or `kaal migrate`)",
        ] {
            assert_eq!(RegistryError::new("SQL", "op", cause).cause, cause);
        }
    }
}
