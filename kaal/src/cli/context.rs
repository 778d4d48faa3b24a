//! Loading what most commands need: the configuration file, the store and a node.

use std::path::{Path, PathBuf};

use kaal::chrono::{DateTime, Utc};
use kaal::chrono_tz::Tz;
use kaal::{
    apply_scheduler_file, bind_stored_file_jobs, connect_with, load_scheduler_file, ApplyError,
    ApplyReport, ConfigFile, Database, DispatchRecord, DispatchRegistry, Handlers, Kaal,
    SchedulerFile, DEFAULT_CONFIG_PATH, DEFAULT_ENVIRONMENT,
};

use super::Failure;

/// The configuration file, its store and a node built from them.
pub(crate) struct Context {
    pub file: ConfigFile,
    pub store: Database,
    pub kaal: Kaal,
}

/// `--config`, else `KAAL_CONFIG` (clap reads it into the same option), else the default.
pub(crate) fn config_path(config: Option<PathBuf>) -> PathBuf {
    config.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH))
}

/// `KAAL_ENV` when it is set (and not blank).
pub(crate) fn explicit_environment() -> Option<String> {
    std::env::var("KAAL_ENV")
        .ok()
        .filter(|e| !e.trim().is_empty())
}

/// `KAAL_ENV`, else `development`.
pub(crate) fn environment() -> String {
    explicit_environment().unwrap_or_else(|| DEFAULT_ENVIRONMENT.to_string())
}

/// The problem with an explicitly set `KAAL_ENV` that names no section of `file`: the file's
/// defaults would silently stand in for the environment's settings (`KAAL_ENV=prodution`).
/// Left unset, `development` may be absent.
pub(crate) fn missing_environment(file: &ConfigFile) -> Option<String> {
    let env = explicit_environment()?;
    if file.sections.contains(&env) {
        return None;
    }
    Some(format!(
        "KAAL_ENV={env} names no section of the file; its sections: {} (add a `{env}:` section, or fix KAAL_ENV)",
        if file.sections.is_empty() {
            "none".to_string()
        } else {
            file.sections.join(", ")
        }
    ))
}

/// Loads the configuration file.
pub(crate) fn load_config(config: Option<PathBuf>) -> Result<ConfigFile, Failure> {
    let path = config_path(config);
    let file = ConfigFile::load(&path, &environment()).map_err(Failure::usage)?;
    if let Some(problem) = missing_environment(&file) {
        return Err(Failure::usage(format!("{}: {problem}", path.display())));
    }
    Ok(file)
}

/// Opens the configured store (a relative SQLite path is resolved against the configuration
/// file's directory).
pub(crate) fn open_store(file: &ConfigFile) -> Result<Database, Failure> {
    connect_with(&file.resolved_database_url(), file.lock_strategy).map_err(|err| match err {
        kaal::ConnectError::Open { .. } | kaal::ConnectError::Migration { .. } => {
            Failure::store(err)
        }
        _ => Failure::usage(format!("{}: database_url: {err}", file.path.display())),
    })
}

/// Refuses a missing SQLite database file for a command that only reads (or changes rows
/// of an existing database): opening it would create an empty database.
fn require_existing_database(file: &ConfigFile) -> Result<(), Failure> {
    let url = file.resolved_database_url();
    if let Some(path) = kaal::sqlite_file(&url) {
        if !Path::new(path).exists() {
            return Err(Failure::store(format!(
                "the SQLite database {path} does not exist (database_url in {}); run `kaal migrate` (or `kaal start`) to create it",
                file.path.display()
            )));
        }
    }
    Ok(())
}

impl Context {
    /// Configuration, store and node; an SQLite file is created when missing (`start`,
    /// `tick`, `migrate`).
    pub fn open(config: Option<PathBuf>) -> Result<Self, Failure> {
        Self::open_with(config, false)
    }

    /// [`open`](Context::open) for commands that only read (`status`, `dispatches`, a dry
    /// run) or change rows of an existing database (`enable`, `disable`): a missing SQLite
    /// file is an error naming it, never created.
    pub fn open_existing(config: Option<PathBuf>) -> Result<Self, Failure> {
        Self::open_with(config, true)
    }

    fn open_with(config: Option<PathBuf>, existing: bool) -> Result<Self, Failure> {
        let file = load_config(config)?;
        if existing {
            require_existing_database(&file)?;
        }
        let store = open_store(&file)?;
        let kaal = Kaal::new(file.config.clone(), store.adapter())
            .map_err(|err| Failure::usage(format!("{}: {err}", file.path.display())))?;
        Ok(Self { file, store, kaal })
    }

    /// Runs the embedded migrations when the store is SQLite (idempotent and safe from
    /// several processes at once), so a fresh SQLite file needs no set-up step. Server
    /// databases are migrated only by `kaal migrate`.
    pub fn migrate_sqlite(&self) -> Result<(), Failure> {
        if self.store.backend() == kaal::DatabaseKind::Sqlite {
            self.store.run_migrations().map_err(Failure::store)?;
        }
        Ok(())
    }

    /// The configured time zone (validated when the file was loaded).
    pub fn tz(&self) -> Tz {
        self.file.config.tz().unwrap_or(Tz::UTC)
    }

    /// Applies the scheduler file (or binds the stored handler jobs when it is missing under
    /// policy `warn`: stored commands never run); returns the file when it was found, and
    /// what was done.
    pub fn apply_scheduler(&self) -> Result<(Option<SchedulerFile>, ApplyReport), Failure> {
        let failure = |err: ApplyError| match err {
            ApplyError::Store(_) => Failure::store(hint(&err.to_string())),
            _ => Failure::usage(err),
        };
        let handlers = Handlers::new();
        match load_scheduler_file(&self.file).map_err(failure)? {
            Some(jobs) => {
                let report = apply_scheduler_file(&self.kaal, &jobs, &handlers).map_err(failure)?;
                Ok((Some(jobs), report))
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
