//! Locks that belong to one database session — PostgreSQL advisory locks, MySQL named
//! locks — turned into an [`Adapter`] with the lease contract: [`SessionLockStore`], generic
//! over the lock SQL a backend supplies ([`LockSql`]).
//!
//! Such locks are released by the server when the session ends and can only be released by
//! the session that took them. [`SessionLockStore`] therefore:
//!
//! * keeps **one dedicated session** (a [`LockSql::Session`], outside any pool) and does
//!   every lock and unlock on it;
//! * remembers what it holds, so the same process never acquires a key it already holds
//!   (the server would grant it again: both lock kinds are re-entrant per session) and a
//!   `release` of a key it does not hold returns `false` without touching the server — the
//!   lock stays with its real holder;
//! * honours `ttl` by releasing, on its own session, every lock held past its ttl: before
//!   each operation and from a background reaper thread while the adapter lives. The ttl runs
//!   on this process's monotonic clock — nobody else can expire a session lock, so clock skew
//!   between nodes plays no part;
//! * detects a lost session (server restart, killed backend): the operation that finds it
//!   logs an error, forgets every lock it held (the server released them) and opens a new
//!   session, then carries on;
//! * confirms a single [`acquire`](Adapter::acquire) against the dispatch log
//!   ([`give_back_dispatched`]): a session lock can vanish before its ttl, so a claim won
//!   on a fire time its previous holder already logged is given back.
//!
//! The dispatch log, the definitions and the node registrations are not session-scoped: they
//! stay in the kaal tables of a pooled [`DieselStore`], which the adapter owns next to its
//! session and answers [`dispatch_registry`](Adapter::dispatch_registry) and the like with.
//!
//! # Layering
//!
//! kaal-core defines [`Adapter`]; this module implements it once for every session-lock
//! backend; a backend crate supplies only its SQL — opening a session, taking and giving
//! back locks, a liveness check — as a [`LockSql`]. Calls go down that chain and never back
//! up: the backend knows nothing of held keys, ttls or the dispatch log.
//!
//! A backend's public adapter is a newtype over `SessionLockStore<ItsDialect, ItsLockSql>`
//! (its `LockSql` stays private), whose [`Adapter`] impl, `store()` and `held_count()` the
//! [`delegate_adapter!`](crate::delegate_adapter) macro writes, so that forwarding code
//! exists once:
//!
//! ```ignore
//! pub struct FooLockAdapter(SessionLockStore<FooDialect, FooLocks>);
//! kaal_diesel::delegate_adapter!(FooLockAdapter, FooDialect);
//! ```

mod confirm;
mod held;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use kaal_core::{Adapter, DefinitionRegistry, DispatchRegistry, LockError, NodeRegistry};

use crate::dialect::Dialect;
use crate::error::OpenError;
use crate::lease::check_key_len;
use crate::store::DieselStore;

pub use confirm::give_back_dispatched;
use held::SessionLocks;

/// The lock SQL of a session-lock backend: all it supplies to a [`SessionLockStore`].
///
/// Every method runs with the store's session mutex held, on the one session it opened, so
/// an implementation never sees two calls at once. Errors are the cause as one line (the
/// store adds the backend's name, the operation and the key). When a call fails, the store
/// asks [`is_alive`](LockSql::is_alive): a session that says no is dropped — the server
/// releases every lock it held — and replaced through [`open_session`](LockSql::open_session).
pub trait LockSql: Send + Sync + 'static {
    /// One dedicated connection, plus whatever the backend keeps about it (a process id for
    /// messages, the names it holds, whether a failed batch left it unusable).
    type Session: Send + 'static;

    /// The adapter's name in messages: `<NAME> acquire failed for <key>: <cause>`, e.g.
    /// `PostgreSQL advisory`.
    const NAME: &'static str;

    /// Opens a new session: the first one, and a replacement after one is lost.
    fn open_session(&self) -> Result<Self::Session, String>;

    /// Tries to take every key of `keys` without waiting; element `i` of the answer says
    /// whether `keys[i]` was taken (`false`: another session holds it). The store asks for
    /// each key once and never for one it holds, so re-entry never arises. A batch that
    /// fails must not leave locks taken behind it: give them back, or make
    /// [`is_alive`](LockSql::is_alive) answer `false` so the session is replaced.
    fn try_lock_many(
        &self,
        session: &mut Self::Session,
        keys: &[String],
    ) -> Result<Vec<bool>, String>;

    /// Gives `key` back; `Ok(false)` when this session did not hold it.
    fn unlock(&self, session: &mut Self::Session, key: &str) -> Result<bool, String>;

    /// Gives every key of `keys` back (the reaper's batch); the default calls
    /// [`unlock`](LockSql::unlock) for each. Backends may do it in one round trip.
    fn unlock_many(&self, session: &mut Self::Session, keys: &[String]) -> Result<(), String> {
        keys.iter()
            .try_for_each(|key| self.unlock(session, key).map(drop))
    }

    /// Whether the session still answers (a trivial query) and may be kept.
    fn is_alive(&self, session: &mut Self::Session) -> bool;
}

/// Claims held as session locks on one dedicated session (the backend's [`LockSql`] `L`),
/// with the dispatch log, definitions and node registrations of a pooled
/// [`DieselStore<D>`](DieselStore); see the [module docs](self) for the rules.
///
/// As an [`Adapter`]:
///
/// * keys longer than 255 bytes are refused ([`check_key_len`]), as on the lease table;
/// * [`acquire`](Adapter::acquire) confirms a won dispatch key against the dispatch log
///   ([`give_back_dispatched`], one lookup) and answers `false` when its previous holder
///   already logged it;
/// * [`acquire_many`](Adapter::acquire_many), the coordinator's batch claim, does **not**
///   confirm: the coordinator re-reads the log for every claim it wins and gives back those
///   it finds logged — one lookup per tick, not two. A key given twice is taken once; its
///   first position says so, as a loop of `acquire` would;
/// * [`release`](Adapter::release) of a key this adapter does not hold is `false` and
///   leaves the lock with its holder;
/// * the registries are the pooled store's.
pub struct SessionLockStore<D: Dialect, L: LockSql> {
    locks: SessionLocks<L>,
    store: Arc<DieselStore<D>>,
}

impl<D: Dialect, L: LockSql> fmt::Debug for SessionLockStore<D, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionLockStore")
            .field("name", &L::NAME)
            .field("held", &self.held_count())
            .field("store", &self.store)
            .finish()
    }
}

impl<D: Dialect, L: LockSql> SessionLockStore<D, L> {
    /// Opens the first lock session through `sql` and starts the reaper; `store` (already
    /// open) keeps the dispatch log, definitions and nodes. Fails with
    /// [`OpenError::Connect`], naming the store's locator (password hidden), when the
    /// session cannot be opened.
    pub fn open(sql: L, store: impl Into<Arc<DieselStore<D>>>) -> Result<Self, OpenError> {
        let store = store.into();
        let locks = SessionLocks::open(sql).map_err(|cause| OpenError::Connect {
            backend: D::NAME,
            locator: store.locator().to_string(),
            cause: format!("cannot open the {} session: {cause}", L::NAME),
        })?;
        Ok(Self { locks, store })
    }

    /// The pooled store: dispatch log, definitions, nodes, migrations.
    pub fn store(&self) -> &Arc<DieselStore<D>> {
        &self.store
    }

    /// How many locks this adapter holds now (locks past their ttl are released first).
    pub fn held_count(&self) -> usize {
        self.locks.held_count()
    }

    /// The backend's lock SQL (e.g. to compute the lock name of a key).
    pub fn lock_sql(&self) -> &L {
        self.locks.sql()
    }

    fn check_keys<'k>(
        &self,
        operation: &str,
        keys: impl IntoIterator<Item = &'k str>,
    ) -> Result<(), LockError> {
        keys.into_iter().try_for_each(|key| {
            check_key_len(key).map_err(|cause| LockError::new(L::NAME, operation, key, cause))
        })
    }
}

impl<D: Dialect, L: LockSql> Adapter for SessionLockStore<D, L> {
    fn acquire(&self, key: &str, ttl: Duration) -> Result<bool, LockError> {
        self.check_keys("acquire", [key])?;
        let keys = [key.to_string()];
        let won = self.locks.acquire_many(&keys, ttl, "acquire")?;
        if !won.first().copied().unwrap_or(false) {
            return Ok(false);
        }
        // The claim may be on a fire time its previous holder logged before its session
        // ended; give it back then (the store's own release, on this session).
        let won = give_back_dispatched(L::NAME, "acquire", self, &*self.store, &keys, won)?;
        Ok(won.first().copied().unwrap_or(false))
    }

    /// One round trip for the whole batch (as the backend's SQL allows), unconfirmed: the
    /// coordinator confirms batch claims against the dispatch log itself (see the type docs).
    fn acquire_many(&self, keys: &[String], ttl: Duration) -> Result<Vec<bool>, LockError> {
        self.check_keys("batch acquire", keys.iter().map(String::as_str))?;
        self.locks.acquire_many(keys, ttl, "batch acquire")
    }

    fn release(&self, key: &str) -> Result<bool, LockError> {
        self.locks.release(key)
    }

    fn dispatch_registry(&self) -> Option<&dyn DispatchRegistry> {
        Some(&*self.store)
    }

    fn definition_registry(&self) -> Option<&dyn DefinitionRegistry> {
        Some(&*self.store)
    }

    fn node_registry(&self) -> Option<&dyn NodeRegistry> {
        Some(&*self.store)
    }

    fn name(&self) -> &str {
        L::NAME
    }
}

/// Implements [`Adapter`](kaal_core::Adapter) for a backend's session-lock adapter — a tuple
/// struct whose only field is a [`SessionLockStore<D, L>`](SessionLockStore) — by forwarding
/// every method to that field, and gives it the inherent `store()` and `held_count()` of the
/// [`SessionLockStore`]. `$dialect` is `D`.
///
/// A backend's public type cannot be a type alias of `SessionLockStore` (it needs inherent
/// constructors, which Rust refuses on an alias of a foreign type), so it is a newtype; this
/// macro keeps the forwarding in one place instead of one copy per backend.
///
/// ```ignore
/// pub struct PgAdvisoryAdapter(SessionLockStore<PgDialect, AdvisoryLocks>);
/// kaal_diesel::delegate_adapter!(PgAdvisoryAdapter, PgDialect);
/// ```
#[macro_export]
macro_rules! delegate_adapter {
    ($adapter:ident, $dialect:ty) => {
        impl $crate::__kaal_core::Adapter for $adapter {
            fn acquire(
                &self,
                key: &str,
                ttl: ::std::time::Duration,
            ) -> ::std::result::Result<bool, $crate::__kaal_core::LockError> {
                $crate::__kaal_core::Adapter::acquire(&self.0, key, ttl)
            }

            fn release(
                &self,
                key: &str,
            ) -> ::std::result::Result<bool, $crate::__kaal_core::LockError> {
                $crate::__kaal_core::Adapter::release(&self.0, key)
            }

            fn acquire_many(
                &self,
                keys: &[::std::string::String],
                ttl: ::std::time::Duration,
            ) -> ::std::result::Result<::std::vec::Vec<bool>, $crate::__kaal_core::LockError> {
                $crate::__kaal_core::Adapter::acquire_many(&self.0, keys, ttl)
            }

            fn dispatch_registry(
                &self,
            ) -> ::std::option::Option<&dyn $crate::__kaal_core::DispatchRegistry> {
                $crate::__kaal_core::Adapter::dispatch_registry(&self.0)
            }

            fn definition_registry(
                &self,
            ) -> ::std::option::Option<&dyn $crate::__kaal_core::DefinitionRegistry> {
                $crate::__kaal_core::Adapter::definition_registry(&self.0)
            }

            fn node_registry(
                &self,
            ) -> ::std::option::Option<&dyn $crate::__kaal_core::NodeRegistry> {
                $crate::__kaal_core::Adapter::node_registry(&self.0)
            }

            fn name(&self) -> &str {
                $crate::__kaal_core::Adapter::name(&self.0)
            }
        }

        impl $adapter {
            /// The pooled store: dispatch log, definitions, nodes; run its
            /// [`run_migrations`](kaal_diesel::DieselStore::run_migrations) once.
            pub fn store(&self) -> &::std::sync::Arc<$crate::DieselStore<$dialect>> {
                self.0.store()
            }

            /// How many locks this adapter holds now (locks past their ttl are released
            /// first).
            pub fn held_count(&self) -> usize {
                self.0.held_count()
            }
        }
    };
}
