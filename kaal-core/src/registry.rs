//! The in-process registry of callbacks: which cron key runs which code in this process.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use chrono::{DateTime, Utc};

use crate::cron::{CronError, CronExpr};
use crate::error::{KeyError, RegistryError};
use crate::keys::validate_cron_key;
use crate::policy::PolicyError;

/// What a callback is handed for one fire time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fire {
    /// The cron key of the job.
    pub key: String,
    /// The scheduled instant being dispatched.
    pub fire_time: DateTime<Utc>,
    /// `{namespace}-{key}-{unix seconds}`: the same on every node for this fire time, so the
    /// job can deduplicate its own side effects.
    pub idempotency_key: String,
    /// The run's **fencing token**: its dispatch-log row's id, which grows with every claim
    /// across the fleet, so a later run of the job always holds a larger token than an
    /// earlier one. Hand it to the systems the job writes to and have them refuse a write
    /// carrying a token lower than the last one they accepted: a run that stalled (a long GC
    /// pause, a frozen VM) and wakes after a newer run then cannot overwrite the newer
    /// run's result. `None` when the dispatch log is off (no row, no token).
    ///
    /// ```sql
    /// -- the downstream write, guarded by the token
    /// UPDATE report SET body = $1, fencing_token = $2
    ///  WHERE id = 1 AND fencing_token < $2;   -- 0 rows: a newer run already wrote
    /// ```
    pub fencing_token: Option<i64>,
    /// Which attempt this is: 1 for the first (retries count up).
    pub attempt: u32,
    /// The longest this attempt may run (the job's policy, else the node's `job_timeout`);
    /// past it the run is recorded `timed_out`. Commands are killed at it; a callback cannot
    /// be, and may use it to give up on its own (returning [`TimedOut`](crate::TimedOut)).
    pub timeout: Option<std::time::Duration>,
}

impl Fire {
    /// A fire of `key` at `fire_time` in `namespace`, first attempt, with no fencing token
    /// (what a job is handed when the dispatch log is off, and what tests build).
    pub fn new(namespace: &str, key: &str, fire_time: DateTime<Utc>) -> Self {
        Fire {
            key: key.to_string(),
            fire_time,
            idempotency_key: crate::keys::idempotency_key(namespace, key, fire_time),
            fencing_token: None,
            attempt: 1,
            timeout: None,
        }
    }
}

/// The error a job returns: any error, boxed.
///
/// Callbacks return `Result<(), JobError>`, so a plain `Ok(())` needs no annotation and `?`
/// works on any error type (through `From`); a message is `Err("disk full".into())`.
///
/// ```
/// use kaal_core::{Fire, JobError};
///
/// fn send_invoices(fire: &Fire) -> Result<(), JobError> {
///     let batch: u32 = "42".parse()?; // a ParseIntError, converted by `?`
///     if batch == 0 {
///         return Err(format!("nothing to send at {}", fire.fire_time).into());
///     }
///     Ok(())
/// }
/// ```
pub type JobError = Box<dyn std::error::Error + Send + Sync>;

/// The earlier name of [`JobError`], kept as an alias.
pub type CallbackError = JobError;

/// A registered callback.
pub type Callback = Arc<dyn Fn(&Fire) -> Result<(), JobError> + Send + Sync>;

/// Wraps a closure returning `Result<(), E>`, for any error `E` that converts into a
/// [`JobError`], into a [`Callback`] (for [`CallbackRegistry::add`] and friends; `register`
/// takes the closure itself).
pub fn callback<F, E>(f: F) -> Callback
where
    F: Fn(&Fire) -> Result<(), E> + Send + Sync + 'static,
    E: Into<JobError>,
{
    Arc::new(move |fire: &Fire| f(fire).map_err(Into::into))
}

/// A registration could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    /// The key is blank or too long.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The cron expression is invalid.
    #[error("cron of {key:?}: {source}")]
    Cron {
        /// The job's key.
        key: String,
        /// What is wrong with the expression.
        source: CronError,
    },
    /// `add` was called for a key that is already registered.
    #[error(
        "{0:?} is already registered in this process; use upsert to replace it or remove it first"
    )]
    Duplicate(String),
    /// The stored definition of the key came from the scheduler file and the conflict policy
    /// is `error`.
    #[error(
        "{key:?} is defined in the scheduler file (cron {file_cron:?}); set scheduler_conflict_policy \
         to code_wins or file_wins, or rename one of them"
    )]
    ConflictWithFile {
        /// The key.
        key: String,
        /// The cron stored from the file.
        file_cron: String,
    },
    /// The job's policy is not valid.
    #[error("policy of {key:?}: {source}")]
    Policy {
        /// The job's key.
        key: String,
        /// What is wrong with the policy.
        source: PolicyError,
    },
    /// The store could not be read or written.
    #[error(transparent)]
    Store(#[from] RegistryError),
}

/// One registered job.
#[derive(Clone)]
pub struct Entry {
    /// The cron key.
    pub key: String,
    /// The parsed schedule.
    pub cron: Arc<CronExpr>,
    /// What runs for each fire time.
    pub callback: Callback,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("key", &self.key)
            .field("cron", &self.cron.as_str())
            .finish_non_exhaustive()
    }
}

/// The callbacks registered in this process, by key.
///
/// Thread-safe. Iteration ([`entries`](CallbackRegistry::entries)) takes a snapshot, so user code is
/// never called while the registry's lock is held and a callback may itself register or
/// remove jobs.
#[derive(Debug)]
pub struct CallbackRegistry {
    namespace: String,
    entries: RwLock<BTreeMap<String, Entry>>,
    generation: AtomicU64,
}

impl CallbackRegistry {
    /// An empty registry whose keys are checked against `namespace`'s key length limit.
    pub fn new(namespace: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            entries: RwLock::new(BTreeMap::new()),
            generation: AtomicU64::new(0),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<String, Entry>> {
        self.entries
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, BTreeMap<String, Entry>> {
        self.entries
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Checks `key` and `cron` and builds the entry, without registering it.
    pub fn entry(
        &self,
        key: &str,
        cron: &str,
        callback: Callback,
    ) -> Result<Entry, RegistrationError> {
        validate_cron_key(&self.namespace, key)?;
        if cron.trim().is_empty() {
            return Err(RegistrationError::Cron {
                key: key.to_string(),
                source: CronError {
                    expression: cron.to_string(),
                    problems: vec![
                        "the cron expression is blank; use e.g. \"*/5 * * * *\" or \"@hourly\""
                            .into(),
                    ],
                },
            });
        }
        let cron = CronExpr::parse(cron).map_err(|source| RegistrationError::Cron {
            key: key.to_string(),
            source,
        })?;
        Ok(Entry {
            key: key.to_string(),
            cron: Arc::new(cron),
            callback,
        })
    }

    /// Registers `key`; an error if it is already registered.
    pub fn add(&self, key: &str, cron: &str, callback: Callback) -> Result<(), RegistrationError> {
        let entry = self.entry(key, cron, callback)?;
        let mut entries = self.write();
        if entries.contains_key(key) {
            return Err(RegistrationError::Duplicate(key.to_string()));
        }
        entries.insert(key.to_string(), entry);
        self.generation.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// Registers `key`, replacing any previous registration; returns whether one was replaced.
    pub fn upsert(
        &self,
        key: &str,
        cron: &str,
        callback: Callback,
    ) -> Result<bool, RegistrationError> {
        let entry = self.entry(key, cron, callback)?;
        let replaced = self.write().insert(key.to_string(), entry).is_some();
        self.generation.fetch_add(1, Ordering::Release);
        Ok(replaced)
    }

    /// Unregisters `key`; returns whether it was registered.
    pub fn remove(&self, key: &str) -> bool {
        let removed = self.write().remove(key).is_some();
        if removed {
            self.generation.fetch_add(1, Ordering::Release);
        }
        removed
    }

    /// The entry of `key`, if registered.
    pub fn find(&self, key: &str) -> Option<Entry> {
        self.read().get(key).cloned()
    }

    /// Whether `key` is registered.
    pub fn is_registered(&self, key: &str) -> bool {
        self.read().contains_key(key)
    }

    /// The registered keys, sorted.
    pub fn keys(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    /// A snapshot of every entry, sorted by key.
    pub fn entries(&self) -> Vec<Entry> {
        self.read().values().cloned().collect()
    }

    /// How many jobs are registered.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether no job is registered.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// A number that changes whenever the registry changes (coordinators cache by it).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The namespace keys are checked against.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }
}
