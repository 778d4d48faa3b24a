//! Counting what the coordinator asks for: [`CountingStore`] counts its calls into the
//! store, [`statements`] the statements Diesel sends to the database (a call may take
//! several: a MySQL batch claim is a transaction, a session-lock claim re-reads the dispatch
//! log).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use diesel::connection::{set_default_instrumentation, Instrumentation, InstrumentationEvent};
use kaal_core::chrono::{DateTime, Utc};
use kaal_core::{
    Adapter, AloneStart, Commits, Definition, DefinitionRegistry, DispatchRecord, DispatchRegistry,
    DispatchStatus, LockError, NewDefinition, RegistryError, RunRecord, RunUpdate,
};

static STATEMENTS: AtomicU64 = AtomicU64::new(0);

/// Counts, from now on, every statement sent on every Diesel connection opened afterwards
/// (pooled or not): call it before opening any.
pub fn count_statements() {
    fn counter() -> Option<Box<dyn Instrumentation>> {
        Some(Box::new(|event: InstrumentationEvent<'_>| {
            if matches!(event, InstrumentationEvent::StartQuery { .. }) {
                STATEMENTS.fetch_add(1, Ordering::Relaxed);
            }
        }))
    }
    set_default_instrumentation(counter).expect("install the statement counter");
}

/// Statements sent so far on the connections [`count_statements`] instruments.
pub fn statements() -> u64 {
    STATEMENTS.load(Ordering::Relaxed)
}

/// Counts calls into `inner`, its dispatch log and its definition store.
pub struct CountingStore {
    inner: Arc<dyn Adapter>,
    calls: AtomicU64,
}

impl CountingStore {
    pub fn new(inner: Arc<dyn Adapter>) -> Self {
        Self {
            inner,
            calls: AtomicU64::new(0),
        }
    }

    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    fn count(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    fn log(&self) -> &dyn DispatchRegistry {
        self.inner
            .dispatch_registry()
            .expect("the benchmarked store keeps a dispatch log")
    }

    fn defs(&self) -> &dyn DefinitionRegistry {
        self.inner
            .definition_registry()
            .expect("the benchmarked store keeps definitions")
    }
}

impl Adapter for CountingStore {
    fn acquire(&self, key: &str, ttl: Duration) -> Result<bool, LockError> {
        self.count();
        self.inner.acquire(key, ttl)
    }
    fn release(&self, key: &str) -> Result<bool, LockError> {
        self.count();
        self.inner.release(key)
    }
    fn acquire_many(&self, keys: &[String], ttl: Duration) -> Result<Vec<bool>, LockError> {
        self.count();
        self.inner.acquire_many(keys, ttl)
    }
    fn dispatch_registry(&self) -> Option<&dyn DispatchRegistry> {
        Some(self)
    }
    fn definition_registry(&self) -> Option<&dyn DefinitionRegistry> {
        Some(self)
    }
}

impl DispatchRegistry for CountingStore {
    fn log_dispatch(
        &self,
        key: &str,
        fire_time: DateTime<Utc>,
        node_id: &str,
        status: DispatchStatus,
    ) -> Result<(), RegistryError> {
        self.count();
        self.log().log_dispatch(key, fire_time, node_id, status)
    }
    fn find_dispatch(
        &self,
        key: &str,
        fire_time: DateTime<Utc>,
    ) -> Result<Option<DispatchRecord>, RegistryError> {
        self.count();
        self.log().find_dispatch(key, fire_time)
    }
    fn find_by_key(&self, key: &str) -> Result<Vec<DispatchRecord>, RegistryError> {
        self.count();
        self.log().find_by_key(key)
    }
    fn find_by_node(&self, node_id: &str) -> Result<Vec<DispatchRecord>, RegistryError> {
        self.count();
        self.log().find_by_node(node_id)
    }
    fn find_by_status(&self, status: DispatchStatus) -> Result<Vec<DispatchRecord>, RegistryError> {
        self.count();
        self.log().find_by_status(status)
    }
    fn cleanup(&self, older_than: DateTime<Utc>) -> Result<usize, RegistryError> {
        self.count();
        self.log().cleanup(older_than)
    }
    fn dispatched_many(
        &self,
        pairs: &[(String, DateTime<Utc>)],
    ) -> Result<Vec<bool>, RegistryError> {
        self.count();
        self.log().dispatched_many(pairs)
    }
    fn log_dispatches(
        &self,
        pairs: &[(String, DateTime<Utc>)],
        node_id: &str,
        status: DispatchStatus,
    ) -> Result<(), RegistryError> {
        self.count();
        self.log().log_dispatches(pairs, node_id, status)
    }
    fn commit_claims(
        &self,
        pairs: &[(String, DateTime<Utc>)],
        node_id: &str,
    ) -> Result<Commits, RegistryError> {
        self.count();
        self.log().commit_claims(pairs, node_id)
    }
    fn transition(
        &self,
        key: &str,
        fire_time: DateTime<Utc>,
        node_id: &str,
        from: DispatchStatus,
        to: DispatchStatus,
    ) -> Result<bool, RegistryError> {
        self.count();
        self.log().transition(key, fire_time, node_id, from, to)
    }
    fn reassign_claim(
        &self,
        key: &str,
        fire_time: DateTime<Utc>,
        from_node: &str,
        to_node: &str,
    ) -> Result<bool, RegistryError> {
        self.count();
        self.log()
            .reassign_claim(key, fire_time, from_node, to_node)
    }
    fn unstarted_claims(&self, since: DateTime<Utc>) -> Result<Vec<DispatchRecord>, RegistryError> {
        self.count();
        self.log().unstarted_claims(since)
    }
    fn start_run(
        &self,
        key: &str,
        fire_time: DateTime<Utc>,
        node_id: &str,
    ) -> Result<Option<i64>, RegistryError> {
        self.count();
        self.log().start_run(key, fire_time, node_id)
    }
    fn start_runs(
        &self,
        node_id: &str,
        pairs: &[(String, DateTime<Utc>)],
    ) -> Result<Vec<Option<i64>>, RegistryError> {
        self.count();
        self.log().start_runs(node_id, pairs)
    }
    fn start_run_alone(
        &self,
        key: &str,
        fire_time: DateTime<Utc>,
        node_id: &str,
    ) -> Result<AloneStart, RegistryError> {
        self.count();
        self.log().start_run_alone(key, fire_time, node_id)
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
        self.count();
        self.log()
            .record_run(key, fire_time, node_id, from, to, update)
    }
    fn record_runs(
        &self,
        node_id: &str,
        records: &[RunRecord],
    ) -> Result<Vec<bool>, RegistryError> {
        self.count();
        self.log().record_runs(node_id, records)
    }
    fn running_runs(&self, since: DateTime<Utc>) -> Result<Vec<DispatchRecord>, RegistryError> {
        self.count();
        self.log().running_runs(since)
    }
    fn rerun_lost_run(
        &self,
        key: &str,
        fire_time: DateTime<Utc>,
        lost_node: &str,
        to_node: &str,
        note: &str,
    ) -> Result<bool, RegistryError> {
        self.count();
        self.log()
            .rerun_lost_run(key, fire_time, lost_node, to_node, note)
    }
}

impl DefinitionRegistry for CountingStore {
    fn upsert_definition(
        &self,
        namespace: &str,
        definition: NewDefinition,
    ) -> Result<Definition, RegistryError> {
        self.count();
        self.defs().upsert_definition(namespace, definition)
    }
    fn remove_definition(&self, namespace: &str, key: &str) -> Result<bool, RegistryError> {
        self.count();
        self.defs().remove_definition(namespace, key)
    }
    fn find_definition(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<Definition>, RegistryError> {
        self.count();
        self.defs().find_definition(namespace, key)
    }
    fn all_definitions(&self, namespace: &str) -> Result<Vec<Definition>, RegistryError> {
        self.count();
        self.defs().all_definitions(namespace)
    }
    fn enabled_definitions(&self, namespace: &str) -> Result<Vec<Definition>, RegistryError> {
        self.count();
        self.defs().enabled_definitions(namespace)
    }
    fn enable_definition(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<Definition>, RegistryError> {
        self.count();
        self.defs().enable_definition(namespace, key)
    }
    fn disable_definition(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<Definition>, RegistryError> {
        self.count();
        self.defs().disable_definition(namespace, key)
    }
    fn apply_definitions(
        &self,
        namespace: &str,
        writes: &[kaal_core::DefinitionWrite],
    ) -> Result<kaal_core::BatchOutcome, RegistryError> {
        self.count();
        self.defs().apply_definitions(namespace, writes)
    }
}
