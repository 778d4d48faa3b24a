//! [`Kaal`]: the one object a service holds — register jobs, then start the coordinator.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::adapter::Adapter;
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, ConfigErrors, ConflictPolicy};
use crate::coordinator::{Coordinator, StartError, TickReport};
use crate::definition::{Definition, DefinitionSource, NewDefinition};
use crate::error::RegistryError;
use crate::keys::idempotency_key;
use crate::policy::JobPolicy;
use crate::registry::{Callback, CallbackRegistry, Fire, JobError, RegistrationError};

/// Jobs, store and coordinator of one node.
///
/// ```
/// use std::sync::Arc;
/// use kaal_core::{chrono::{TimeZone, Utc}, Config, Kaal, MemoryAdapter};
///
/// let kaal = Kaal::new(Config::default(), Arc::new(MemoryAdapter::new())).unwrap();
/// kaal.register("reports:daily", "0 6 * * *", |fire| {
///     // idempotency_key is the same on every node for this fire time
///     assert_eq!(fire.idempotency_key, format!("kaal-reports:daily-{}", fire.fire_time.timestamp()));
///     Ok(())
/// }).unwrap();
///
/// let report = kaal.tick_at(Utc.with_ymd_and_hms(2026, 5, 1, 6, 0, 30).unwrap());
/// assert_eq!(report.dispatched.len(), 1);
/// assert!(kaal.dispatched("reports:daily", Utc.with_ymd_and_hms(2026, 5, 1, 6, 0, 0).unwrap()).unwrap());
/// ```
pub struct Kaal {
    adapter: Arc<dyn Adapter>,
    registry: Arc<CallbackRegistry>,
    coordinator: Coordinator,
}

impl std::fmt::Debug for Kaal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kaal")
            .field("adapter", &self.adapter.name())
            .field("registry", &self.registry)
            .field("coordinator", &self.coordinator)
            .finish()
    }
}

impl Kaal {
    /// A node over `adapter`, reading time from the system clock. Fails when
    /// `config.validate()` does.
    pub fn new(config: Config, adapter: Arc<dyn Adapter>) -> Result<Self, ConfigErrors> {
        Self::with_clock(config, adapter, Arc::new(SystemClock))
    }

    /// Like [`new`](Kaal::new), with the loop reading time from `clock`.
    pub fn with_clock(
        config: Config,
        adapter: Arc<dyn Adapter>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ConfigErrors> {
        let registry = Arc::new(CallbackRegistry::new(config.namespace.clone()));
        let coordinator =
            Coordinator::with_clock(config, adapter.clone(), registry.clone(), clock)?;
        Ok(Self {
            adapter,
            registry,
            coordinator,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        self.coordinator.config()
    }

    /// The store.
    pub fn adapter(&self) -> &Arc<dyn Adapter> {
        &self.adapter
    }

    /// The in-process callbacks.
    pub fn registry(&self) -> &Arc<CallbackRegistry> {
        &self.registry
    }

    /// The coordinator.
    pub fn coordinator(&self) -> &Coordinator {
        &self.coordinator
    }

    /// Registers `key` on `cron` with `f` and the default [`JobPolicy`]; see
    /// [`register_with`](Kaal::register_with).
    ///
    /// `f` returns `Result<(), JobError>`: a plain `Ok(())` needs no annotation, and `?`
    /// converts any error.
    pub fn register<F>(&self, key: &str, cron: &str, f: F) -> Result<(), RegistrationError>
    where
        F: Fn(&Fire) -> Result<(), JobError> + Send + Sync + 'static,
    {
        self.register_with(key, cron, JobPolicy::default(), f)
    }

    /// Registers `key` on `cron` with `policy` and `f`, and stores the definition (source
    /// `code`) with the policy in its metadata, so every node applies the same one.
    ///
    /// * The policy is checked first ([`JobPolicy::validate`]); an invalid one is
    ///   [`RegistrationError::Policy`] and nothing is stored.
    /// * A key already registered in this process is an error.
    /// * A stored definition that is disabled stays disabled: re-registering on restart
    ///   never overrides an operator's `disable`. Its other metadata is kept; its stored
    ///   policy is replaced by `policy` (the default policy removes it).
    /// * When the stored definition came from the scheduler file, `scheduler_conflict_policy`
    ///   decides: `error` refuses, `code_wins` stores the code's cron and policy, `file_wins`
    ///   keeps the file's cron and policy and only binds the callback.
    /// * If the in-process registration fails after the store was written, the stored
    ///   definition is put back as it was.
    /// * A store that keeps no definitions ([`NullAdapter`](crate::NullAdapter), an
    ///   adapter without [`definition_registry`](Adapter::definition_registry)) has nowhere
    ///   to keep the policy: it is checked and not stored.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use kaal_core::{Config, JobPolicy, Kaal, MemoryAdapter, Overlap};
    ///
    /// let kaal = Kaal::new(Config::default(), Arc::new(MemoryAdapter::new()))?;
    /// let policy = JobPolicy::new()
    ///     .overlap(Overlap::Skip)
    ///     .timeout(Duration::from_secs(600))
    ///     .retry(3, Duration::from_secs(30));
    /// kaal.register_with("reports:nightly", "0 2 * * *", policy.clone(), |_fire| Ok(()))?;
    ///
    /// let stored = kaal.adapter().definition_registry().unwrap()
    ///     .find_definition("kaal", "reports:nightly")?.unwrap();
    /// assert_eq!(stored.policy()?, policy);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn register_with<F>(
        &self,
        key: &str,
        cron: &str,
        policy: JobPolicy,
        f: F,
    ) -> Result<(), RegistrationError>
    where
        F: Fn(&Fire) -> Result<(), JobError> + Send + Sync + 'static,
    {
        let callback: Callback = Arc::new(f);
        // Validate key, cron and policy before touching the store.
        self.registry.entry(key, cron, callback.clone())?;
        policy
            .validate()
            .map_err(|source| RegistrationError::Policy {
                key: key.to_string(),
                source,
            })?;
        if self.registry.is_registered(key) {
            return Err(RegistrationError::Duplicate(key.to_string()));
        }
        let Some(store) = self.adapter.definition_registry() else {
            return self.registry.add(key, cron, callback);
        };
        let namespace = self.config().namespace.as_str();
        let previous = store.find_definition(namespace, key)?;
        let write = match &previous {
            Some(def) if def.source == DefinitionSource::File => {
                match self.config().scheduler_conflict_policy {
                    ConflictPolicy::Error => {
                        return Err(RegistrationError::ConflictWithFile {
                            key: key.to_string(),
                            file_cron: def.cron.clone(),
                        })
                    }
                    ConflictPolicy::FileWins => false,
                    ConflictPolicy::CodeWins => true,
                }
            }
            _ => true,
        };
        if write {
            let mut new = NewDefinition::new(key, cron);
            if let Some(def) = &previous {
                new.enabled = def.enabled;
                new.metadata = def.metadata.clone();
            }
            policy.write_metadata(&mut new.metadata);
            store.upsert_definition(namespace, new)?;
        }
        if let Err(err) = self.registry.add(key, cron, callback) {
            if write {
                restore(store, namespace, key, previous);
            }
            return Err(err);
        }
        Ok(())
    }

    /// Unregisters `key` in this process and removes its code-sourced stored definition
    /// (a file-sourced one belongs to the scheduler file and stays). Returns whether it was
    /// registered.
    pub fn unregister(&self, key: &str) -> Result<bool, RegistryError> {
        if let Some(store) = self.adapter.definition_registry() {
            let namespace = self.config().namespace.as_str();
            if let Some(def) = store.find_definition(namespace, key)? {
                if def.source == DefinitionSource::Code {
                    store.remove_definition(namespace, key)?;
                }
            }
        }
        Ok(self.registry.remove(key))
    }

    /// Whether `key` is registered in this process.
    pub fn registered(&self, key: &str) -> bool {
        self.registry.is_registered(key)
    }

    /// The keys registered in this process, sorted.
    pub fn registered_keys(&self) -> Vec<String> {
        self.registry.keys()
    }

    /// Enables the stored definition of `key` in this node's namespace, on every node of it;
    /// returns it, or `None` when it is not stored there (or the store keeps no definitions).
    pub fn enable(&self, key: &str) -> Result<Option<Definition>, RegistryError> {
        match self.adapter.definition_registry() {
            Some(store) => store.enable_definition(&self.config().namespace, key),
            None => Ok(None),
        }
    }

    /// Disables the stored definition of `key` in this node's namespace, on every node of it;
    /// see [`enable`](Kaal::enable).
    pub fn disable(&self, key: &str) -> Result<Option<Definition>, RegistryError> {
        match self.adapter.definition_registry() {
            Some(store) => store.disable_definition(&self.config().namespace, key),
            None => Ok(None),
        }
    }

    /// Whether the dispatch log shows `fire_time` of `key` as taken (`claimed`, `dispatched`
    /// or `failed`) under this node's namespace — in either key form, see
    /// [`dispatch_log_key`](crate::dispatch_log_key) (`false` when the store keeps no log).
    pub fn dispatched(&self, key: &str, fire_time: DateTime<Utc>) -> Result<bool, RegistryError> {
        match self.adapter.dispatch_registry() {
            Some(log) => Ok(log.dispatched(
                &crate::dispatch_log_key(&self.config().namespace, key),
                fire_time,
            )? || log.dispatched(key, fire_time)?),
            None => Ok(false),
        }
    }

    /// Runs `f` with the idempotency key of `fire_time` of `key`.
    pub fn with_idempotency<T>(
        &self,
        key: &str,
        fire_time: DateTime<Utc>,
        f: impl FnOnce(&str) -> T,
    ) -> T {
        f(&idempotency_key(&self.config().namespace, key, fire_time))
    }

    /// One tick at `now`; see [`Coordinator::tick_at`].
    pub fn tick_at(&self, now: DateTime<Utc>) -> TickReport {
        self.coordinator.tick_at(now)
    }

    /// Missed-run recovery at `now`; see [`Coordinator::recover_at`].
    pub fn recover_at(&self, now: DateTime<Utc>) -> TickReport {
        self.coordinator.recover_at(now)
    }

    /// Starts the loop; see [`Coordinator::start`].
    pub fn start(&self) -> bool {
        self.coordinator.start()
    }

    /// Starts the loop, saying why it could not; see [`Coordinator::try_start`].
    pub fn try_start(&self) -> Result<(), StartError> {
        self.coordinator.try_start()
    }

    /// Stops the loop; see [`Coordinator::stop`].
    pub fn stop(&self, timeout: Duration) -> bool {
        self.coordinator.stop(timeout)
    }

    /// Whether the loop runs.
    pub fn running(&self) -> bool {
        self.coordinator.running()
    }

    /// Restarts the loop; see [`Coordinator::restart`].
    pub fn restart(&self) -> bool {
        self.coordinator.restart()
    }
}

/// Puts the stored definition of `key` in `namespace` back to `previous` after a failed
/// registration.
fn restore(
    store: &dyn crate::DefinitionRegistry,
    namespace: &str,
    key: &str,
    previous: Option<Definition>,
) {
    let result = match previous {
        None => store.remove_definition(namespace, key).map(|_| ()),
        Some(def) => store
            .upsert_definition(
                namespace,
                NewDefinition {
                    key: def.key,
                    cron: def.cron,
                    enabled: def.enabled,
                    source: def.source,
                    metadata: def.metadata,
                },
            )
            .map(|_| ()),
    };
    if let Err(err) = result {
        log::error!("could not roll back the stored definition of {key}: {err}");
    }
}
