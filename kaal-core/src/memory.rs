//! The in-memory backend: leases, dispatch log and definitions kept in this process.
//!
//! Coordinators that share one [`MemoryAdapter`] (threads of one process) coordinate exactly
//! as nodes sharing a database do. Nothing survives the process.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::adapter::Adapter;
use crate::clock::{Clock, SystemClock};
use crate::definition::{
    BatchOutcome, Definition, DefinitionRegistry, DefinitionWrite, NewDefinition,
};
use crate::dispatch::{
    clip_error, AloneStart, Commit, Commits, DispatchRecord, DispatchRegistry, DispatchStatus,
    RunUpdate, CLAIM_TOLERANCE,
};
use crate::error::{LockError, RegistryError};
use crate::nodes::{is_live, NodeInfo, NodeRecord, NodeRegistry, Registration};

/// Locks a mutex, carrying on with the data if a previous holder panicked: every critical
/// section here leaves the maps consistent, so the poison carries no meaning.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn ttl_to_chrono(ttl: Duration) -> chrono::Duration {
    chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX)
}

/// Expired leases are pruned whenever the table has grown past twice its size after the last
/// prune (and at least this many entries), so memory stays proportional to the live leases.
const PRUNE_FLOOR: usize = 1024;

#[derive(Debug, Default)]
struct Leases {
    expires_at: HashMap<String, DateTime<Utc>>,
    prune_at: usize,
}

impl Leases {
    fn prune(&mut self, now: DateTime<Utc>) {
        self.expires_at.retain(|_, expires_at| *expires_at > now);
        self.prune_at = (self.expires_at.len() * 2).max(PRUNE_FLOOR);
    }
}

/// Thread-safe leases with TTL, plus an in-memory dispatch log and definition store.
///
/// Expired leases are taken over by the next `acquire` and pruned as the table grows, so
/// memory stays bounded by the number of live leases.
///
/// ```
/// use std::time::Duration;
/// use kaal_core::{Adapter, MemoryAdapter};
///
/// let adapter = MemoryAdapter::new();
/// assert!(adapter.acquire("k", Duration::from_secs(10)).unwrap());
/// assert!(!adapter.acquire("k", Duration::from_secs(10)).unwrap());
/// assert!(adapter.release("k").unwrap());
/// assert!(!adapter.release("k").unwrap());
/// ```
#[derive(Debug)]
pub struct MemoryAdapter {
    clock: Arc<dyn Clock>,
    leases: Mutex<Leases>,
    dispatches: MemoryDispatchRegistry,
    definitions: MemoryDefinitionRegistry,
    nodes: MemoryNodeRegistry,
}

impl Default for MemoryAdapter {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryAdapter {
    /// An empty store on the system clock.
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }

    /// An empty store whose leases expire by `clock` (a [`ManualClock`](crate::ManualClock)
    /// in tests).
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self {
            dispatches: MemoryDispatchRegistry::with_clock(clock.clone()),
            definitions: MemoryDefinitionRegistry::with_clock(clock.clone()),
            nodes: MemoryNodeRegistry::with_clock(clock.clone()),
            leases: Mutex::new(Leases {
                expires_at: HashMap::new(),
                prune_at: PRUNE_FLOOR,
            }),
            clock,
        }
    }

    /// How many leases are stored, live or expired-but-not-yet-pruned.
    pub fn lease_count(&self) -> usize {
        lock(&self.leases).expires_at.len()
    }

    fn acquire_locked(
        leases: &mut Leases,
        key: &str,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> bool {
        if leases.expires_at.len() >= leases.prune_at {
            leases.prune(now);
        }
        match leases.expires_at.get_mut(key) {
            Some(expires_at) if *expires_at > now => false,
            Some(expires_at) => {
                *expires_at = now + ttl;
                true
            }
            None => {
                leases.expires_at.insert(key.to_string(), now + ttl);
                true
            }
        }
    }
}

impl Adapter for MemoryAdapter {
    fn acquire(&self, key: &str, ttl: Duration) -> Result<bool, LockError> {
        let now = self.clock.now();
        Ok(Self::acquire_locked(
            &mut lock(&self.leases),
            key,
            now,
            ttl_to_chrono(ttl),
        ))
    }

    fn release(&self, key: &str) -> Result<bool, LockError> {
        let now = self.clock.now();
        let removed = lock(&self.leases).expires_at.remove(key);
        Ok(removed.is_some_and(|expires_at| expires_at > now))
    }

    fn acquire_many(&self, keys: &[String], ttl: Duration) -> Result<Vec<bool>, LockError> {
        let now = self.clock.now();
        let ttl = ttl_to_chrono(ttl);
        let mut leases = lock(&self.leases);
        Ok(keys
            .iter()
            .map(|key| Self::acquire_locked(&mut leases, key, now, ttl))
            .collect())
    }

    fn dispatch_registry(&self) -> Option<&dyn DispatchRegistry> {
        Some(&self.dispatches)
    }

    fn node_registry(&self) -> Option<&dyn NodeRegistry> {
        Some(&self.nodes)
    }

    fn definition_registry(&self) -> Option<&dyn DefinitionRegistry> {
        Some(&self.definitions)
    }

    fn name(&self) -> &str {
        "memory"
    }
}

/// An in-memory [`DispatchRegistry`].
#[derive(Debug)]
pub struct MemoryDispatchRegistry {
    clock: Arc<dyn Clock>,
    records: Mutex<Records>,
    /// The last id handed out; ids grow with every insert, as a SQL sequence's do.
    last_id: std::sync::atomic::AtomicI64,
}

impl Default for MemoryDispatchRegistry {
    fn default() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }
}

impl MemoryDispatchRegistry {
    /// An empty log stamping `dispatched_at` from `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            records: Mutex::new(BTreeMap::new()),
            last_id: std::sync::atomic::AtomicI64::new(0),
        }
    }

    fn next_id(&self) -> i64 {
        self.last_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1
    }

    /// A new record with the next id.
    fn record(
        &self,
        key: &str,
        fire_time: DateTime<Utc>,
        now: DateTime<Utc>,
        node_id: &str,
        status: DispatchStatus,
    ) -> DispatchRecord {
        DispatchRecord {
            id: self.next_id(),
            key: key.to_string(),
            fire_time,
            dispatched_at: now,
            node_id: node_id.to_string(),
            status,
            started_at: None,
            finished_at: None,
            attempt: 0,
            error: None,
        }
    }

    fn select(&self, keep: impl Fn(&DispatchRecord) -> bool) -> Vec<DispatchRecord> {
        let mut found: Vec<DispatchRecord> = lock(&self.records)
            .values()
            .filter(|record| keep(record))
            .cloned()
            .collect();
        found.sort_by(|a, b| {
            b.fire_time
                .cmp(&a.fire_time)
                .then_with(|| a.key.cmp(&b.key))
        });
        found
    }
}

impl DispatchRegistry for MemoryDispatchRegistry {
    fn log_dispatch(
        &self,
        key: &str,
        fire_time: DateTime<Utc>,
        node_id: &str,
        status: DispatchStatus,
    ) -> Result<(), RegistryError> {
        let now = self.clock.now();
        let mut records = lock(&self.records);
        match records.get_mut(&(key.to_string(), fire_time)) {
            // An upsert keeps the row (and its id), as the SQL stores' do.
            Some(record) => {
                record.dispatched_at = now;
                record.node_id = node_id.to_string();
                record.status = status;
            }
            None => {
                let record = self.record(key, fire_time, now, node_id, status);
                records.insert((key.to_string(), fire_time), record);
            }
        }
        Ok(())
    }

    fn find_dispatch(
        &self,
        key: &str,
        fire_time: DateTime<Utc>,
    ) -> Result<Option<DispatchRecord>, RegistryError> {
        Ok(lock(&self.records)
            .get(&(key.to_string(), fire_time))
            .cloned())
    }

    fn find_by_key(&self, key: &str) -> Result<Vec<DispatchRecord>, RegistryError> {
        Ok(self.select(|record| record.key == key))
    }

    fn find_by_node(&self, node_id: &str) -> Result<Vec<DispatchRecord>, RegistryError> {
        Ok(self.select(|record| record.node_id == node_id))
    }

    fn find_by_status(&self, status: DispatchStatus) -> Result<Vec<DispatchRecord>, RegistryError> {
        Ok(self.select(|record| record.status == status))
    }

    fn cleanup(&self, older_than: DateTime<Utc>) -> Result<usize, RegistryError> {
        let mut records = lock(&self.records);
        let before = records.len();
        records.retain(|(_, fire_time), _| *fire_time >= older_than);
        Ok(before - records.len())
    }

    fn commit_claims(
        &self,
        pairs: &[(String, DateTime<Utc>)],
        node_id: &str,
    ) -> Result<Commits, RegistryError> {
        let now = self.clock.now();
        let horizon = now + ttl_to_chrono(CLAIM_TOLERANCE);
        let mut records = lock(&self.records);
        let outcomes = pairs
            .iter()
            .map(|(key, fire_time)| {
                if *fire_time > horizon {
                    return Commit::Early;
                }
                let slot = (key.clone(), *fire_time);
                if records.contains_key(&slot) {
                    return Commit::Taken;
                }
                let record = self.record(key, *fire_time, now, node_id, DispatchStatus::Claimed);
                records.insert(slot, record);
                Commit::Created
            })
            .collect();
        Ok(Commits {
            outcomes,
            database_now: now,
        })
    }

    fn transition(
        &self,
        key: &str,
        fire_time: DateTime<Utc>,
        node_id: &str,
        from: DispatchStatus,
        to: DispatchStatus,
    ) -> Result<bool, RegistryError> {
        let now = self.clock.now();
        let mut records = lock(&self.records);
        match records.get_mut(&(key.to_string(), fire_time)) {
            Some(record) if record.node_id == node_id && record.status == from => {
                record.status = to;
                record.dispatched_at = now;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn start_run(
        &self,
        key: &str,
        fire_time: DateTime<Utc>,
        node_id: &str,
    ) -> Result<Option<i64>, RegistryError> {
        let now = self.clock.now();
        Ok(start_locked(
            &mut lock(&self.records),
            key,
            fire_time,
            node_id,
            now,
        ))
    }

    fn start_run_alone(
        &self,
        key: &str,
        fire_time: DateTime<Utc>,
        node_id: &str,
    ) -> Result<AloneStart, RegistryError> {
        let now = self.clock.now();
        let mut records = lock(&self.records);
        // One lock over the check and the start: atomic, as the trait asks.
        let going = records.values().find(|r| {
            r.key == key
                && r.fire_time != fire_time
                && r.status == DispatchStatus::Dispatched
                && r.started_at.is_some()
        });
        if let Some(row) = going {
            return Ok(AloneStart::Busy {
                fire_time: row.fire_time,
                node_id: row.node_id.clone(),
            });
        }
        Ok(
            match start_locked(&mut records, key, fire_time, node_id, now) {
                Some(token) => AloneStart::Started(token),
                None => AloneStart::NotClaimed,
            },
        )
    }

    fn record_run(
        &self,
        key: &str,
        fire_time: DateTime<Utc>,
        node_id: &str,
        from: DispatchStatus,
        to: DispatchStatus,
        update: &RunUpdate,
    ) -> Result<bool, RegistryError> {
        let now = self.clock.now();
        let mut records = lock(&self.records);
        match records.get_mut(&(key.to_string(), fire_time)) {
            Some(record) if record.node_id == node_id && record.status == from => {
                record.status = to;
                record.dispatched_at = now;
                record.attempt = update.attempt;
                record.error = update.error.as_deref().map(clip_error);
                if to.is_final() {
                    record.finished_at = Some(now);
                }
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn rerun_lost_run(
        &self,
        key: &str,
        fire_time: DateTime<Utc>,
        lost_node: &str,
        to_node: &str,
        note: &str,
    ) -> Result<bool, RegistryError> {
        let now = self.clock.now();
        let mut records = lock(&self.records);
        let slot = (key.to_string(), fire_time);
        match records.get(&slot) {
            Some(r) if r.node_id == lost_node && r.status == DispatchStatus::Dispatched => {
                let mut rerun = self.record(key, fire_time, now, to_node, DispatchStatus::Claimed);
                rerun.error = Some(clip_error(note));
                records.insert(slot, rerun);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn reassign_claim(
        &self,
        key: &str,
        fire_time: DateTime<Utc>,
        from_node: &str,
        to_node: &str,
    ) -> Result<bool, RegistryError> {
        let mut records = lock(&self.records);
        match records.get_mut(&(key.to_string(), fire_time)) {
            Some(record)
                if record.node_id == from_node && record.status == DispatchStatus::Claimed =>
            {
                record.node_id = to_node.to_string();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn unstarted_claims(&self, since: DateTime<Utc>) -> Result<Vec<DispatchRecord>, RegistryError> {
        let mut found =
            self.select(|r| r.status == DispatchStatus::Claimed && r.fire_time >= since);
        found.reverse();
        Ok(found)
    }
}

type Records = BTreeMap<(String, DateTime<Utc>), DispatchRecord>;

/// Starts the run of `(key, fire_time)` if `node_id` has it `claimed`; its token.
fn start_locked(
    records: &mut Records,
    key: &str,
    fire_time: DateTime<Utc>,
    node_id: &str,
    now: DateTime<Utc>,
) -> Option<i64> {
    let record = records.get_mut(&(key.to_string(), fire_time))?;
    if record.node_id != node_id || record.status != DispatchStatus::Claimed {
        return None;
    }
    record.status = DispatchStatus::Dispatched;
    record.dispatched_at = now;
    record.started_at = Some(now);
    record.attempt = 1;
    Some(record.id)
}

/// An in-memory [`NodeRegistry`]: registrations of the coordinators of this process, stamped
/// by its clock.
#[derive(Debug)]
pub struct MemoryNodeRegistry {
    clock: Arc<dyn Clock>,
    nodes: Mutex<BTreeMap<(String, String), NodeRecord>>,
}

impl Default for MemoryNodeRegistry {
    fn default() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }
}

impl MemoryNodeRegistry {
    /// No registrations; times from `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            nodes: Mutex::new(BTreeMap::new()),
        }
    }
}

impl NodeRegistry for MemoryNodeRegistry {
    fn database_now(&self) -> Result<DateTime<Utc>, RegistryError> {
        Ok(self.clock.now())
    }

    fn register_node(
        &self,
        node: &NodeInfo,
        timeout: Duration,
    ) -> Result<Registration, RegistryError> {
        let now = self.clock.now();
        let mut nodes = lock(&self.nodes);
        let slot = (node.namespace.clone(), node.node_id.clone());
        if let Some(existing) = nodes.get(&slot) {
            if existing.instance != node.instance && is_live(existing, now, timeout) {
                return Ok(Registration::Duplicate(existing.clone()));
            }
        }
        nodes.insert(
            slot,
            NodeRecord {
                namespace: node.namespace.clone(),
                node_id: node.node_id.clone(),
                instance: node.instance.clone(),
                host: node.host.clone(),
                pid: node.pid,
                version: node.version.clone(),
                started_at: now,
                last_seen: now,
            },
        );
        Ok(Registration::Registered { database_now: now })
    }

    fn heartbeat(&self, node: &NodeInfo) -> Result<Option<DateTime<Utc>>, RegistryError> {
        let now = self.clock.now();
        let mut nodes = lock(&self.nodes);
        match nodes.get_mut(&(node.namespace.clone(), node.node_id.clone())) {
            Some(record) if record.instance == node.instance => {
                record.last_seen = now;
                Ok(Some(now))
            }
            _ => Ok(None),
        }
    }

    fn deregister_node(&self, node: &NodeInfo) -> Result<(), RegistryError> {
        let mut nodes = lock(&self.nodes);
        let slot = (node.namespace.clone(), node.node_id.clone());
        if nodes
            .get(&slot)
            .is_some_and(|r| r.instance == node.instance)
        {
            nodes.remove(&slot);
        }
        Ok(())
    }

    fn nodes(&self, namespace: &str) -> Result<Vec<NodeRecord>, RegistryError> {
        Ok(lock(&self.nodes)
            .values()
            .filter(|r| r.namespace == namespace)
            .cloned()
            .collect())
    }
}

/// An in-memory [`DefinitionRegistry`], keyed by `(namespace, key)`.
#[derive(Debug)]
pub struct MemoryDefinitionRegistry {
    clock: Arc<dyn Clock>,
    definitions: Mutex<BTreeMap<(String, String), Definition>>,
}

impl Default for MemoryDefinitionRegistry {
    fn default() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }
}

/// The map key of `key` in `namespace`.
fn scoped(namespace: &str, key: &str) -> (String, String) {
    (namespace.to_string(), key.to_string())
}

impl MemoryDefinitionRegistry {
    /// An empty store stamping times from `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            definitions: Mutex::new(BTreeMap::new()),
        }
    }

    fn set_enabled(&self, namespace: &str, key: &str, enabled: bool) -> Option<Definition> {
        let now = self.clock.now();
        let mut definitions = lock(&self.definitions);
        let definition = definitions.get_mut(&scoped(namespace, key))?;
        if definition.enabled != enabled {
            definition.enabled = enabled;
            definition.disabled_at = if enabled { None } else { Some(now) };
            if enabled {
                definition.schedule_since = now;
            }
        }
        definition.updated_at = now;
        Some(definition.clone())
    }
}

impl DefinitionRegistry for MemoryDefinitionRegistry {
    fn upsert_definition(
        &self,
        namespace: &str,
        new: NewDefinition,
    ) -> Result<Definition, RegistryError> {
        let now = self.clock.now();
        Ok(upsert_in(&mut lock(&self.definitions), namespace, new, now))
    }

    fn remove_definition(&self, namespace: &str, key: &str) -> Result<bool, RegistryError> {
        Ok(lock(&self.definitions)
            .remove(&scoped(namespace, key))
            .is_some())
    }

    fn find_definition(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<Definition>, RegistryError> {
        Ok(lock(&self.definitions)
            .get(&scoped(namespace, key))
            .cloned())
    }

    fn all_definitions(&self, namespace: &str) -> Result<Vec<Definition>, RegistryError> {
        Ok(lock(&self.definitions)
            .iter()
            .filter(|((ns, _), _)| ns == namespace)
            .map(|(_, definition)| definition.clone())
            .collect())
    }

    fn enable_definition(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<Definition>, RegistryError> {
        Ok(self.set_enabled(namespace, key, true))
    }

    fn disable_definition(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<Definition>, RegistryError> {
        Ok(self.set_enabled(namespace, key, false))
    }

    fn apply_definitions(
        &self,
        namespace: &str,
        writes: &[DefinitionWrite],
    ) -> Result<BatchOutcome, RegistryError> {
        DefinitionWrite::check_keys("memory", writes)?;
        let now = self.clock.now();
        let mut definitions = lock(&self.definitions);
        if let Some(stale) = writes
            .iter()
            .find(|w| definitions.get(&scoped(namespace, &w.key)) != w.expected.as_ref())
        {
            return Ok(BatchOutcome::Stale(stale.key.clone()));
        }
        for write in writes {
            match &write.write {
                Some(new) => {
                    upsert_in(&mut definitions, namespace, new.clone(), now);
                }
                None => {
                    definitions.remove(&scoped(namespace, &write.key));
                }
            }
        }
        Ok(BatchOutcome::Applied)
    }
}

/// Upserts `new` into `definitions` at `now`, by the rules of [`DefinitionRegistry`].
fn upsert_in(
    definitions: &mut BTreeMap<(String, String), Definition>,
    namespace: &str,
    new: NewDefinition,
    now: DateTime<Utc>,
) -> Definition {
    let id = scoped(namespace, &new.key);
    let previous = definitions.get(&id);
    let created_at = previous.map_or(now, |old| old.created_at);
    let disabled_at = match (new.enabled, previous) {
        (true, _) => None,
        (false, Some(old)) if !old.enabled => old.disabled_at.or(Some(now)),
        (false, _) => Some(now),
    };
    let schedule_since = match previous {
        Some(old) if old.cron == new.cron && (old.enabled || !new.enabled) => old.schedule_since,
        _ => now,
    };
    let stored = Definition {
        key: new.key,
        cron: new.cron,
        enabled: new.enabled,
        source: new.source,
        metadata: new.metadata,
        created_at,
        updated_at: now,
        disabled_at,
        schedule_since,
    };
    definitions.insert(id, stored.clone());
    stored
}
