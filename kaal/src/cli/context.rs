//! Loading what most commands need: the configuration file, the store and a node.

use std::path::{Path, PathBuf};

use kaal::chrono::{DateTime, Utc};
use kaal::chrono_tz::Tz;
use kaal::{
    apply_scheduler_file, bind_stored_file_jobs, connect_with, load_scheduler_file, ApplyError,
    ApplyReport, ConfigFile, DispatchRecord, DispatchRegistry, Handlers, Kaal, Store,
    DEFAULT_CONFIG_PATH, DEFAULT_ENVIRONMENT,
};

use super::Failure;

/// The configuration file, its store and a node built from them.
pub(crate) struct Context {
    pub file: ConfigFile,
    pub store: Store,
    pub kaal: Kaal,
}

/// `--config`, else `KAAL_CONFIG` (clap reads it into the same option), else the default.
pub(crate) fn config_path(config: Option<PathBuf>) -> PathBuf {
    config.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH))
}

/// `KAAL_ENV`, else `development`.
pub(crate) fn environment() -> String {
    std::env::var("KAAL_ENV")
        .ok()
        .filter(|e| !e.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_ENVIRONMENT.to_string())
}

/// Loads the configuration file.
pub(crate) fn load_config(config: Option<PathBuf>) -> Result<ConfigFile, Failure> {
    let path = config_path(config);
    ConfigFile::load(&path, &environment()).map_err(Failure::usage)
}

/// Opens the configured store.
pub(crate) fn open_store(file: &ConfigFile) -> Result<Store, Failure> {
    connect_with(&file.database_url, file.lock_strategy).map_err(|err| match err {
        kaal::ConnectError::Open { .. } | kaal::ConnectError::Migration { .. } => {
            Failure::store(err)
        }
        _ => Failure::usage(format!("{}: database_url: {err}", file.path.display())),
    })
}

impl Context {
    /// Configuration, store and node.
    pub fn open(config: Option<PathBuf>) -> Result<Self, Failure> {
        let file = load_config(config)?;
        let store = open_store(&file)?;
        let kaal = Kaal::new(file.config.clone(), store.adapter())
            .map_err(|err| Failure::usage(format!("{}: {err}", file.path.display())))?;
        Ok(Self { file, store, kaal })
    }

    /// Runs the embedded migrations when the store is SQLite (idempotent and safe from
    /// several processes at once), so a fresh SQLite file needs no set-up step. Server
    /// databases are migrated only by `kaal migrate`.
    pub fn migrate_sqlite(&self) -> Result<(), Failure> {
        if self.store.backend() == kaal::Backend::Sqlite {
            self.store.run_migrations().map_err(Failure::store)?;
        }
        Ok(())
    }

    /// The configured time zone (validated when the file was loaded).
    pub fn tz(&self) -> Tz {
        self.file.config.tz().unwrap_or(Tz::UTC)
    }

    /// Applies the scheduler file (or binds the stored handler jobs when it is missing under
    /// policy `warn`: stored commands never run); returns the file's path when it was found, and what was done.
    pub fn apply_scheduler(&self) -> Result<(Option<&Path>, ApplyReport), Failure> {
        let failure = |err: ApplyError| match err {
            ApplyError::Store(_) => Failure::store(hint(&err.to_string())),
            _ => Failure::usage(err),
        };
        let handlers = Handlers::new();
        match load_scheduler_file(&self.kaal, &self.file.environment).map_err(failure)? {
            Some(jobs) => {
                let report = apply_scheduler_file(&self.kaal, &jobs, &handlers).map_err(failure)?;
                Ok((Some(&self.file.config.scheduler_config_path), report))
            }
            None => Ok((
                None,
                bind_stored_file_jobs(&self.kaal, &handlers).map_err(failure)?,
            )),
        }
    }
}

/// The dispatch-log records of cron key `key` in `namespace`, newest fire time first: the
/// `{namespace}:{key}` rows and the plain `{key}` rows older writers left (see
/// [`kaal::dispatch_log_key`]), each with its `key` set to the cron key.
pub(crate) fn records_of(
    log: &dyn DispatchRegistry,
    namespace: &str,
    key: &str,
) -> Result<Vec<DispatchRecord>, kaal::RegistryError> {
    let mut records = log.find_by_key(&kaal::dispatch_log_key(namespace, key))?;
    records.extend(log.find_by_key(key)?);
    for record in &mut records {
        record.key = key.to_string();
    }
    records.sort_by_key(|r| std::cmp::Reverse(r.fire_time));
    Ok(records)
}

/// The cron key of a dispatch-log key: `{namespace}:` taken off when it is there.
pub(crate) fn cron_key<'a>(namespace: &str, log_key: &'a str) -> &'a str {
    log_key
        .strip_prefix(namespace)
        .and_then(|rest| rest.strip_prefix(':'))
        .unwrap_or(log_key)
}

/// Adds "run `kaal migrate`" to errors that look like a missing schema.
pub(crate) fn hint(message: &str) -> String {
    let lower = message.to_ascii_lowercase();
    if lower.contains("no such table")
        || lower.contains("does not exist")
        || lower.contains("doesn't exist")
    {
        format!("{message} (has `kaal migrate` been run on this database?)")
    } else {
        message.to_string()
    }
}

/// Parses an RFC 3339 instant given on the command line.
pub(crate) fn parse_instant(text: &str, flag: &str) -> Result<DateTime<Utc>, Failure> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|err| {
            Failure::usage(format!(
                "{flag} {text:?} is not an RFC 3339 time ({err}); use e.g. 2026-01-01T09:00:00Z"
            ))
        })
}
