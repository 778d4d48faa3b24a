//! Stored job definitions: which cron key runs on which schedule, whether it is enabled, and
//! where it came from (code or the scheduler file).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::error::RegistryError;
use crate::policy::{JobPolicy, PolicyError};

/// Where a definition came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DefinitionSource {
    /// Registered by a process through the library (stored as `code`).
    Code,
    /// Loaded from the scheduler file (stored as `file`).
    File,
}

impl DefinitionSource {
    /// The string stored in the `source` column.
    pub fn as_str(self) -> &'static str {
        match self {
            DefinitionSource::Code => "code",
            DefinitionSource::File => "file",
        }
    }
}

impl fmt::Display for DefinitionSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DefinitionSource {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "code" => Ok(DefinitionSource::Code),
            "file" => Ok(DefinitionSource::File),
            other => Err(format!(
                "unknown definition source {other:?}: expected \"code\" or \"file\""
            )),
        }
    }
}

/// What a caller supplies to [`DefinitionRegistry::upsert_definition`].
#[derive(Debug, Clone, PartialEq)]
pub struct NewDefinition {
    /// The cron key.
    pub key: String,
    /// The cron expression.
    pub cron: String,
    /// Whether the coordinator dispatches it.
    pub enabled: bool,
    /// Where it came from.
    pub source: DefinitionSource,
    /// Free-form JSON object (the scheduler file keeps the job's command here).
    pub metadata: Map<String, Value>,
}

impl NewDefinition {
    /// An enabled, code-sourced definition with empty metadata.
    pub fn new(key: impl Into<String>, cron: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            cron: cron.into(),
            enabled: true,
            source: DefinitionSource::Code,
            metadata: Map::new(),
        }
    }
}

/// A stored definition.
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    /// The cron key (unique within its namespace).
    pub key: String,
    /// The cron expression.
    pub cron: String,
    /// Whether the coordinator dispatches it.
    pub enabled: bool,
    /// Where it came from.
    pub source: DefinitionSource,
    /// Free-form JSON object.
    pub metadata: Map<String, Value>,
    /// When the key was first stored; kept across upserts.
    pub created_at: DateTime<Utc>,
    /// When the row last changed.
    pub updated_at: DateTime<Utc>,
    /// When it became disabled; kept while it stays disabled, `None` while enabled.
    pub disabled_at: Option<DateTime<Utc>>,
    /// When its current schedule came into force: the first insert, the last write that
    /// changed its cron, or the last one that enabled it after it was disabled — whichever is
    /// latest. A fire time from before this instant is never owed (not to the first tick,
    /// not to recovery): the job did not run on this schedule then. Re-applying an
    /// unchanged definition and disabling it keep it.
    pub schedule_since: DateTime<Utc>,
}

impl Definition {
    /// The job's policy, stored in its metadata under `kaal.policy` (the default when none
    /// is stored); see [`JobPolicy::from_metadata`]. A stored policy that cannot be read —
    /// written by a newer kaal, or by hand — is an error naming the key, the value and what
    /// is allowed, for the caller to report; it never stops other definitions from being
    /// read.
    ///
    /// ```
    /// use kaal_core::{DefinitionRegistry, JobPolicy, MemoryDefinitionRegistry, NewDefinition, Overlap};
    ///
    /// let store = MemoryDefinitionRegistry::default();
    /// let mut new = NewDefinition::new("sync", "*/5 * * * *");
    /// JobPolicy::new().overlap(Overlap::Skip).write_metadata(&mut new.metadata);
    /// let stored = store.upsert_definition("kaal", new)?;
    /// assert_eq!(stored.policy().unwrap().overlap, Overlap::Skip);
    /// # Ok::<(), kaal_core::RegistryError>(())
    /// ```
    pub fn policy(&self) -> Result<JobPolicy, PolicyError> {
        JobPolicy::from_metadata(&self.metadata)
    }
}

/// One write of an atomic [`DefinitionRegistry::apply_definitions`] batch: made only if the
/// key is still stored exactly as the caller read it.
///
/// The expectation makes a read-compute-write cycle safe against other writers: an operator's
/// `disable`, another node's registration or a second apply that lands between the caller's
/// read and its batch turns the whole batch into [`BatchOutcome::Stale`], and the caller
/// reads again instead of overwriting what it never saw.
#[derive(Debug, Clone, PartialEq)]
pub struct DefinitionWrite {
    /// The cron key.
    pub key: String,
    /// The definition the caller read for `key` (`None`: it was not stored).
    pub expected: Option<Definition>,
    /// `Some`: upsert this definition (its key must be `key`; the rules of
    /// [`upsert_definition`](DefinitionRegistry::upsert_definition) apply); `None`: delete
    /// the key.
    pub write: Option<NewDefinition>,
}

impl DefinitionWrite {
    /// Upserts `definition` over `expected`, what the caller read for its key.
    pub fn upsert(expected: Option<Definition>, definition: NewDefinition) -> Self {
        Self {
            key: definition.key.clone(),
            expected,
            write: Some(definition),
        }
    }

    /// Deletes `expected`, a definition the caller read.
    pub fn remove(expected: Definition) -> Self {
        Self {
            key: expected.key.clone(),
            expected: Some(expected),
            write: None,
        }
    }

    /// The error for the first of `writes` whose definition's key is not its `key` (a
    /// caller's mistake, refused before anything is written), for implementations of
    /// [`DefinitionRegistry::apply_definitions`].
    pub fn check_keys(backend: &str, writes: &[DefinitionWrite]) -> Result<(), RegistryError> {
        match writes
            .iter()
            .find(|w| w.write.as_ref().is_some_and(|d| d.key != w.key))
        {
            None => Ok(()),
            Some(w) => Err(RegistryError::new(
                backend,
                format!("apply_definitions({})", w.key),
                format!(
                    "the write for key {:?} carries a definition of another key",
                    w.key
                ),
            )),
        }
    }
}

/// What [`DefinitionRegistry::apply_definitions`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOutcome {
    /// Every write was made, in one transaction.
    Applied,
    /// Nothing was written: this key is no longer stored as the caller read it. Read again
    /// and recompute.
    Stale(String),
}

/// Storage of [`Definition`]s, unique per `(namespace, key)`.
///
/// Every method takes the namespace first: definitions are scoped by it like everything
/// else a node reads or writes, so two applications sharing one database may both define a
/// job `sync`, each reads, enables, disables and removes only its own, and the scheduler
/// file of one never touches the definitions of the other. The namespace is a parameter
/// rather than a field of [`NewDefinition`] / [`Definition`] so that no call can forget it
/// and no stored row can be read back under another namespace than the one asked for.
///
/// Rules every implementation keeps (the conformance suite checks them):
/// * nothing is read, changed or removed outside the namespace given;
/// * `created_at` is set on first insert and kept by later upserts;
/// * `schedule_since` is set on first insert and moved to the write's instant by an upsert
///   that changes the cron or enables a disabled definition, and by an
///   [`enable_definition`](DefinitionRegistry::enable_definition) of a disabled one; every
///   other write keeps it (an upsert of the same cron and enabled state, a disable, a
///   change of source or metadata);
/// * `disabled_at` is set when a definition becomes disabled (by upsert or
///   [`disable_definition`](DefinitionRegistry::disable_definition)), kept while it stays
///   disabled, and cleared when it is enabled;
/// * lists are ordered by key.
///
/// The instants (`created_at`, `updated_at`, `disabled_at`, `schedule_since`) all come from
/// the store's clock (the [`Clock`](crate::Clock) it was built with), never from the caller:
/// `schedule_since` is stamped exactly like `created_at`.
///
/// ```
/// use kaal_core::{DefinitionRegistry, MemoryDefinitionRegistry, NewDefinition};
///
/// let store = MemoryDefinitionRegistry::default();
/// store.upsert_definition("app1", NewDefinition::new("sync", "*/5 * * * *"))?;
/// store.upsert_definition("app2", NewDefinition::new("sync", "0 * * * *"))?;
/// store.disable_definition("app2", "sync")?;
/// assert!(store.find_definition("app1", "sync")?.is_some_and(|d| d.enabled));
/// assert_eq!(store.all_definitions("app2")?[0].cron, "0 * * * *");
/// # Ok::<(), kaal_core::RegistryError>(())
/// ```
pub trait DefinitionRegistry: Send + Sync {
    /// Inserts or replaces the definition of `definition.key` in `namespace`; returns what
    /// is stored.
    fn upsert_definition(
        &self,
        namespace: &str,
        definition: NewDefinition,
    ) -> Result<Definition, RegistryError>;

    /// Deletes the definition of `key` in `namespace`; returns whether one existed.
    fn remove_definition(&self, namespace: &str, key: &str) -> Result<bool, RegistryError>;

    /// The definition of `key` in `namespace`, if stored.
    fn find_definition(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<Definition>, RegistryError>;

    /// Every definition of `namespace`, ordered by key.
    fn all_definitions(&self, namespace: &str) -> Result<Vec<Definition>, RegistryError>;

    /// Every enabled definition of `namespace`, ordered by key.
    fn enabled_definitions(&self, namespace: &str) -> Result<Vec<Definition>, RegistryError> {
        Ok(self
            .all_definitions(namespace)?
            .into_iter()
            .filter(|definition| definition.enabled)
            .collect())
    }

    /// Enables `key` in `namespace`; returns the stored definition, or `None` when `key` is
    /// not stored there.
    fn enable_definition(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<Definition>, RegistryError>;

    /// Disables `key` in `namespace`; returns the stored definition, or `None` when `key` is
    /// not stored there.
    fn disable_definition(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<Definition>, RegistryError>;

    /// Makes every write of `writes` in `namespace`, all or nothing: in one transaction
    /// that first checks each key is still stored as its [`DefinitionWrite::expected`]
    /// says, then writes. An expectation that no longer holds writes nothing and returns
    /// [`BatchOutcome::Stale`]; an error part-way (a cut connection, a rejected row) rolls
    /// back every write of the batch. Upserts follow the rules of
    /// [`upsert_definition`](DefinitionRegistry::upsert_definition), stamped with one
    /// instant for the whole batch. A write whose definition's key differs from its `key`
    /// is an error, before anything is written.
    ///
    /// This is how a scheduler file is applied (`kaal apply`): a deploy either changes
    /// every definition it meant to or none.
    fn apply_definitions(
        &self,
        namespace: &str,
        writes: &[DefinitionWrite],
    ) -> Result<BatchOutcome, RegistryError>;
}
