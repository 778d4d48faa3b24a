//! What a backend supplies to run the suite.

use std::sync::Arc;

use kaal_core::{Adapter, Clock};

use crate::Outage;

/// A backend under test.
///
/// The suite calls [`create_store`](Backend::create_store) once per test and
/// [`open`](Backend::open) once per "node" (thread group, coordinator or OS process) that
/// test needs, so every test gets its own isolated store and every node its own connections.
pub trait Backend: Send + Sync + 'static {
    /// Creates a fresh, empty, migrated store that no other test uses, and returns a
    /// locator for it (a file path, or a URL naming a fresh database or schema). Panics with
    /// a clear message when the store cannot be created (an unreachable server, say): a
    /// backend is never silently skipped.
    fn create_store(&self) -> String;

    /// Opens a new, independent adapter on the store at `locator`: its own pool or session,
    /// as a separate node of the fleet would have. Panics with a clear message on failure.
    fn open(&self, locator: &str) -> Arc<dyn Adapter>;

    /// Opens an adapter on the store at `locator` whose registries stamp their timestamps
    /// (a definition's `created_at`, `schedule_since`...) from `clock`, for the behaviours
    /// that replay hours of simulated time ([`owed`](crate::owed)); the suite opens one per
    /// test and shares it between the nodes it starts one after another. `None` (the
    /// default) when the backend cannot: those behaviours then check nothing, so a backend
    /// whose store can take a clock (every Diesel store, `with_clock`) should.
    fn open_with_clock(&self, locator: &str, clock: Arc<dyn Clock>) -> Option<Arc<dyn Adapter>> {
        let _ = (locator, clock);
        None
    }

    /// Removes the store after a test (best effort; the default does nothing).
    fn drop_store(&self, locator: &str) {
        let _ = locator;
    }

    /// Whether a lease that has passed its ttl is taken over by another holder. `false` only
    /// for backends whose locks cannot expire by themselves.
    fn leases_expire(&self) -> bool {
        true
    }

    /// Whether the backend's locks live with the holder's database session (PostgreSQL
    /// advisory, MySQL named locks): a holder whose traffic stalls keeps them, where a lease
    /// row would expire by the database's clock. The stalled-commit case then checks that
    /// exactly one of the two nodes ran each fire time, whichever it was.
    fn session_locks(&self) -> bool {
        false
    }

    /// An outage of the store at `locator` for the fleet suite's database-outage case: the
    /// nodes open [`Outage::locator`], and the case cuts them off for at least 10 s. `None`
    /// (the default) fails that case with a message saying this is missing: a backend is
    /// never silently skipped. Networked databases can return a
    /// [`TcpCut`](crate::TcpCut) relay.
    fn outage(&self, locator: &str) -> Option<Box<dyn Outage>> {
        let _ = locator;
        None
    }

    /// Whether the same adapter may acquire a key it already holds. `false` for every
    /// correct backend; exists so the suite states the rule in one place.
    fn reentrant(&self) -> bool {
        false
    }
}
