//! The [`Adapter`] trait: the one seam between the coordinator and a store.

use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;

use crate::definition::DefinitionRegistry;
use crate::dispatch::DispatchRegistry;
use crate::error::LockError;
use crate::nodes::NodeRegistry;

/// A store of short-lived, named leases shared by every node of a fleet.
///
/// # Contract
///
/// * `acquire(key, ttl)` returning `Ok(true)` means the caller now holds `key` until it calls
///   [`release`](Adapter::release) or until `ttl` has passed, whichever comes first. No other
///   caller — in this process or any other process or host sharing the store — gets `true`
///   for `key` in that time.
/// * `Ok(false)` means somebody else holds `key`. Contention is never an error.
/// * `Err(LockError)` means the store could not answer; the error names the backend, the key
///   and the cause. Implementations never panic.
/// * Who decides expiry: SQL backends compare against the **database's** clock, so a node
///   whose clock is skewed can neither steal a live lease nor keep one past its ttl.
///
/// Only [`acquire`](Adapter::acquire) and [`release`](Adapter::release) are required;
/// [`acquire_many`](Adapter::acquire_many) loops over `acquire` unless the backend can do it
/// in one round trip (the SQL backends do: it is how a tick claims its due fire times).
pub trait Adapter: Send + Sync {
    /// Tries to take `key` for `ttl`. See the trait docs for what `true` promises.
    fn acquire(&self, key: &str, ttl: Duration) -> Result<bool, LockError>;

    /// Gives `key` up. Returns `true` when a lease was deleted, `false` when there was none
    /// (never acquired, already released or expired and taken over).
    fn release(&self, key: &str) -> Result<bool, LockError>;

    /// Tries to take every key of `keys` for `ttl`; element `i` of the answer says whether
    /// `keys[i]` was acquired. `keys` holds no duplicates.
    ///
    /// The default calls [`acquire`](Adapter::acquire) for each key and stops at the first
    /// error. Backends override it to claim the whole batch in one statement.
    fn acquire_many(&self, keys: &[String], ttl: Duration) -> Result<Vec<bool>, LockError> {
        keys.iter().map(|key| self.acquire(key, ttl)).collect()
    }

    /// The dispatch log kept next to the leases, if this store has one.
    fn dispatch_registry(&self) -> Option<&dyn DispatchRegistry> {
        None
    }

    /// The definition store kept next to the leases, if this store has one.
    fn definition_registry(&self) -> Option<&dyn DefinitionRegistry> {
        None
    }

    /// Where nodes register and heartbeat, if this store keeps them. With one, a
    /// coordinator's `node_id` is unique among live nodes, a dead node's never-started claims
    /// run elsewhere, and a node whose clock is off refuses to claim.
    fn node_registry(&self) -> Option<&dyn NodeRegistry> {
        None
    }

    /// A short human name for logs and error messages, e.g. `SQLite lease`.
    fn name(&self) -> &str {
        "adapter"
    }
}

impl dyn Adapter {
    /// Runs `f` while holding `key`; see [`with_lock`].
    pub fn with_lock<T>(
        &self,
        key: &str,
        ttl: Duration,
        f: impl FnOnce() -> T,
    ) -> Result<Option<T>, LockError> {
        with_lock(self, key, ttl, f)
    }
}

/// Runs `f` only when `key` can be acquired, and releases `key` afterwards — after `f`
/// returns (whatever it returns, `Ok` or `Err`) and after `f` panics (the panic then carries
/// on). Returns `Ok(None)` without running `f` when another holder has the key.
///
/// A failure to release after `f` ran is logged and otherwise ignored: `f`'s result is
/// returned, and the lease ends by itself when `ttl` passes.
///
/// ```
/// use std::time::Duration;
/// use kaal_core::{with_lock, Adapter, MemoryAdapter};
///
/// let adapter = MemoryAdapter::new();
/// let ran = with_lock(&adapter, "reports", Duration::from_secs(30), || 42).unwrap();
/// assert_eq!(ran, Some(42));
///
/// // The same through a trait object.
/// let shared: std::sync::Arc<dyn Adapter> = std::sync::Arc::new(MemoryAdapter::new());
/// assert_eq!(shared.with_lock("reports", Duration::from_secs(30), || "ok").unwrap(), Some("ok"));
/// ```
pub fn with_lock<A, T>(
    adapter: &A,
    key: &str,
    ttl: Duration,
    f: impl FnOnce() -> T,
) -> Result<Option<T>, LockError>
where
    A: Adapter + ?Sized,
{
    if !adapter.acquire(key, ttl)? {
        return Ok(None);
    }
    let outcome = panic::catch_unwind(AssertUnwindSafe(f));
    if let Err(err) = adapter.release(key) {
        log::error!("{err}; the lease will expire after its ttl");
    }
    match outcome {
        Ok(value) => Ok(Some(value)),
        Err(payload) => panic::resume_unwind(payload),
    }
}

/// An adapter that grants every lease and forgets it at once: for a single process that
/// needs no coordination, and for tests of code around an adapter.
///
/// `acquire` and `release` always return `Ok(true)`.
#[derive(Debug, Default, Clone, Copy)]
pub struct NullAdapter;

impl Adapter for NullAdapter {
    fn acquire(&self, _key: &str, _ttl: Duration) -> Result<bool, LockError> {
        Ok(true)
    }

    fn release(&self, _key: &str) -> Result<bool, LockError> {
        Ok(true)
    }

    fn name(&self) -> &str {
        "null"
    }
}
