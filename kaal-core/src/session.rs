//! Locks that belong to one database session — PostgreSQL advisory locks, MySQL named
//! locks — turned into an [`Adapter`] with the lease contract.
//!
//! Such locks are released by the server when the session ends and can only be released by
//! the session that took them. [`SessionLockAdapter`] therefore:
//!
//! * keeps **one dedicated session** (a [`LockSession`], outside any pool) and does every
//!   lock and unlock on it;
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
//!   session, then carries on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::thread;
use std::time::{Duration, Instant};

use crate::adapter::Adapter;
use crate::definition::DefinitionRegistry;
use crate::dispatch::DispatchRegistry;
use crate::error::LockError;

/// One database session able to take and give back named locks. Implemented by the
/// PostgreSQL (advisory) and MySQL (named lock) backends.
pub trait LockSession: Send {
    /// Tries to take `key` without waiting; `Ok(false)` when another session holds it.
    fn try_lock(&mut self, key: &str) -> Result<bool, String>;

    /// Tries every key of `keys`; the default calls [`try_lock`](LockSession::try_lock) for
    /// each. Backends may answer in one round trip.
    fn try_lock_many(&mut self, keys: &[String]) -> Result<Vec<bool>, String> {
        keys.iter().map(|key| self.try_lock(key)).collect()
    }

    /// Gives `key` back; `Ok(false)` when this session did not hold it.
    fn unlock(&mut self, key: &str) -> Result<bool, String>;

    /// Gives every key of `keys` back (the reaper's batch); the default calls
    /// [`unlock`](LockSession::unlock) for each. Backends may do it in one round trip.
    fn unlock_many(&mut self, keys: &[String]) -> Result<(), String> {
        keys.iter().try_for_each(|key| self.unlock(key).map(drop))
    }

    /// Whether the session still answers (a trivial query).
    fn is_alive(&mut self) -> bool;
}

/// Opens sessions: the first one and a replacement after a session is lost.
pub trait SessionFactory: Send + Sync {
    /// Opens a new session.
    fn open_session(&self) -> Result<Box<dyn LockSession>, String>;
}

struct SessionState {
    session: Option<Box<dyn LockSession>>,
    /// Keys this adapter holds, with the instant their ttl passes.
    held: HashMap<String, Instant>,
    /// No held key's ttl passes before this instant (it may be earlier than the earliest
    /// ttl still held, never later): until then an operation does not scan `held`.
    next_expiry: Option<Instant>,
}

impl SessionState {
    fn hold(&mut self, key: String, until: Instant) {
        self.held.insert(key, until);
        self.next_expiry = Some(self.next_expiry.map_or(until, |next| next.min(until)));
    }

    fn forget_all(&mut self) {
        self.held.clear();
        self.next_expiry = None;
    }
}

struct Shared {
    name: String,
    factory: Box<dyn SessionFactory>,
    state: Mutex<SessionState>,
}

/// An [`Adapter`] over session-scoped locks; see the [module docs](self).
pub struct SessionLockAdapter {
    shared: Arc<Shared>,
    dispatches: Option<Box<dyn DispatchRegistry>>,
    definitions: Option<Box<dyn DefinitionRegistry>>,
}

impl std::fmt::Debug for SessionLockAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLockAdapter")
            .field("name", &self.shared.name)
            .field("held", &self.held_count())
            .finish_non_exhaustive()
    }
}

/// The longest the reaper sleeps. It wakes earlier when a lock it saw held reaches its ttl,
/// so such a lock is released within a few milliseconds of its ttl; one taken while the
/// reaper sleeps is released at most `REAP_EVERY` late (or by the next operation).
const REAP_EVERY: Duration = Duration::from_millis(500);

/// The shortest the reaper sleeps.
const REAP_AT_LEAST: Duration = Duration::from_millis(5);

impl SessionLockAdapter {
    /// Opens the first session through `factory` and starts the reaper. `name` is used in
    /// errors (`PostgreSQL advisory acquire failed for <key>: <cause>`); the registries are
    /// the backend's pooled dispatch log and definition store.
    pub fn new(
        name: impl Into<String>,
        factory: Box<dyn SessionFactory>,
        dispatches: Option<Box<dyn DispatchRegistry>>,
        definitions: Option<Box<dyn DefinitionRegistry>>,
    ) -> Result<Self, LockError> {
        let name = name.into();
        let session = factory
            .open_session()
            .map_err(|cause| LockError::new(name.clone(), "connect", "-", cause))?;
        let shared = Arc::new(Shared {
            name,
            factory,
            state: Mutex::new(SessionState {
                session: Some(session),
                held: HashMap::new(),
                next_expiry: None,
            }),
        });
        spawn_reaper(Arc::downgrade(&shared));
        Ok(Self {
            shared,
            dispatches,
            definitions,
        })
    }

    /// How many locks this adapter holds now (expired ones are released first).
    pub fn held_count(&self) -> usize {
        let mut state = self.shared.lock_state();
        self.shared.reap(&mut state);
        state.held.len()
    }
}

fn spawn_reaper(shared: Weak<Shared>) {
    let spawned = thread::Builder::new()
        .name("kaal-session-reaper".into())
        .spawn(move || {
            let mut pause = REAP_EVERY;
            loop {
                thread::sleep(pause);
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                let mut state = shared.lock_state();
                shared.reap(&mut state);
                pause = next_reap(state.next_expiry, Instant::now());
            }
        });
    if let Err(err) = spawned {
        log::warn!(
            "no reaper thread ({err}); expired session locks are released on the next operation"
        );
    }
}

/// How long the reaper may sleep: until `next_expiry` (the earliest ttl of a held lock)
/// passes, within [`REAP_AT_LEAST`]..=[`REAP_EVERY`].
fn next_reap(next_expiry: Option<Instant>, now: Instant) -> Duration {
    next_expiry
        .map_or(REAP_EVERY, |until| until.saturating_duration_since(now))
        .clamp(REAP_AT_LEAST, REAP_EVERY)
}

impl Shared {
    fn lock_state(&self) -> MutexGuard<'_, SessionState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn error(&self, operation: &str, key: &str, cause: impl ToString) -> LockError {
        LockError::new(self.name.clone(), operation, key, cause)
    }

    /// The live session, opening a new one when there is none.
    fn session<'s>(
        &self,
        state: &'s mut SessionState,
    ) -> Result<&'s mut Box<dyn LockSession>, String> {
        if state.session.is_none() {
            state.session = Some(self.factory.open_session()?);
        }
        state
            .session
            .as_mut()
            .ok_or_else(|| "no session".to_string())
    }

    /// Called after an operation failed: if the session is gone, forget it and every lock it
    /// held. Returns whether the session was lost.
    fn check_lost(&self, state: &mut SessionState) -> bool {
        let alive = state
            .session
            .as_mut()
            .is_some_and(|session| session.is_alive());
        if !alive {
            let lost = state.held.len();
            log::error!(
                "{}: the lock session was lost; the {lost} lock(s) it held were released by the server; reconnecting",
                self.name
            );
            state.session = None;
            state.forget_all();
        }
        !alive
    }

    /// Releases, on the session, every lock held past its ttl — in one batch. Costs nothing
    /// (no scan, no round trip) until the earliest ttl of a held lock has passed.
    fn reap(&self, state: &mut SessionState) {
        let now = Instant::now();
        if state.next_expiry.is_none_or(|next| next > now) {
            return;
        }
        let mut expired = Vec::new();
        state.held.retain(|key, until| {
            let live = *until > now;
            if !live {
                expired.push(key.clone());
            }
            live
        });
        state.next_expiry = state.held.values().min().copied();
        if expired.is_empty() {
            return;
        }
        let result = self
            .session(state)
            .and_then(|session| session.unlock_many(&expired));
        if let Err(cause) = result {
            log::warn!(
                "{}: could not release {} expired lock(s) ({}...): {cause}",
                self.name,
                expired.len(),
                expired[0]
            );
            self.check_lost(state);
        }
    }

    fn acquire_many(
        &self,
        keys: &[String],
        ttl: Duration,
        operation: &str,
    ) -> Result<Vec<bool>, LockError> {
        let first = keys.first().map_or("-", String::as_str);
        let mut state = self.lock_state();
        self.reap(&mut state);
        // Each key once, and never one this adapter holds.
        let mut asked = std::collections::HashSet::with_capacity(keys.len());
        let fresh: Vec<String> = keys
            .iter()
            .filter(|key| !state.held.contains_key(*key) && asked.insert(key.as_str()))
            .cloned()
            .collect();
        let mut answer = self.try_fresh(&mut state, &fresh);
        if answer.is_err() && self.check_lost(&mut state) {
            answer = self.try_fresh(&mut state, &fresh);
        }
        let won = answer.map_err(|cause| self.error(operation, first, cause))?;
        let until = Instant::now() + ttl;
        let mut won_by_key: HashMap<&str, bool> = HashMap::with_capacity(fresh.len());
        for (key, won) in fresh.iter().zip(won) {
            won_by_key.insert(key, won);
            if won {
                state.hold(key.clone(), until);
            }
        }
        // A key given twice is claimed once: its first position says so, as a loop would.
        Ok(keys
            .iter()
            .map(|key| won_by_key.remove(key.as_str()).unwrap_or(false))
            .collect())
    }

    fn try_fresh(&self, state: &mut SessionState, fresh: &[String]) -> Result<Vec<bool>, String> {
        if fresh.is_empty() {
            return Ok(Vec::new());
        }
        self.session(state)?.try_lock_many(fresh)
    }
}

impl Adapter for SessionLockAdapter {
    fn acquire(&self, key: &str, ttl: Duration) -> Result<bool, LockError> {
        let won = self
            .shared
            .acquire_many(&[key.to_string()], ttl, "acquire")?;
        Ok(won.first().copied().unwrap_or(false))
    }

    fn acquire_many(&self, keys: &[String], ttl: Duration) -> Result<Vec<bool>, LockError> {
        self.shared.acquire_many(keys, ttl, "batch acquire")
    }

    fn release(&self, key: &str) -> Result<bool, LockError> {
        let mut state = self.shared.lock_state();
        self.shared.reap(&mut state);
        if state.held.remove(key).is_none() {
            return Ok(false);
        }
        let result = self
            .shared
            .session(&mut state)
            .and_then(|session| session.unlock(key));
        match result {
            Ok(released) => Ok(released),
            Err(cause) => {
                if self.shared.check_lost(&mut state) {
                    // The server released it with the session.
                    Ok(false)
                } else {
                    Err(self.shared.error("release", key, cause))
                }
            }
        }
    }

    fn dispatch_registry(&self) -> Option<&dyn DispatchRegistry> {
        self.dispatches.as_deref()
    }

    fn definition_registry(&self) -> Option<&dyn DefinitionRegistry> {
        self.definitions.as_deref()
    }

    fn name(&self) -> &str {
        &self.shared.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reaper_wakes_when_the_first_held_lock_reaches_its_ttl() {
        let now = Instant::now();
        assert_eq!(next_reap(None, now), REAP_EVERY);
        let late = now + Duration::from_secs(60);
        assert_eq!(next_reap(Some(late), now), REAP_EVERY);
        let soon = now + Duration::from_millis(120);
        assert_eq!(next_reap(Some(soon), now), Duration::from_millis(120));
        assert_eq!(next_reap(Some(now), now), REAP_AT_LEAST);
    }

    /// A session in memory that records its unlock batches.
    struct Recording {
        held: std::collections::HashSet<String>,
        batches: Arc<Mutex<Vec<Vec<String>>>>,
    }

    impl LockSession for Recording {
        fn try_lock(&mut self, key: &str) -> Result<bool, String> {
            Ok(self.held.insert(key.to_string()))
        }
        fn unlock(&mut self, key: &str) -> Result<bool, String> {
            self.unlock_many(&[key.to_string()])?;
            Ok(true)
        }
        fn unlock_many(&mut self, keys: &[String]) -> Result<(), String> {
            let mut batch: Vec<String> = keys.to_vec();
            batch.sort();
            for key in &batch {
                self.held.remove(key);
            }
            self.batches
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(batch);
            Ok(())
        }
        fn is_alive(&mut self) -> bool {
            true
        }
    }

    struct OneSession(Mutex<Option<Recording>>);

    impl SessionFactory for OneSession {
        fn open_session(&self) -> Result<Box<dyn LockSession>, String> {
            let session = self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
            session
                .map(|s| Box::new(s) as Box<dyn LockSession>)
                .ok_or_else(|| "one session only".to_string())
        }
    }

    #[test]
    fn expired_locks_are_released_in_one_batch_and_live_ones_stay() -> Result<(), LockError> {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let session = Recording {
            held: Default::default(),
            batches: batches.clone(),
        };
        let adapter = SessionLockAdapter::new(
            "test",
            Box::new(OneSession(Mutex::new(Some(session)))),
            None,
            None,
        )?;
        let short = Duration::ZERO;
        let keys: Vec<String> = (0..3).map(|i| format!("short-{i}")).collect();
        assert_eq!(adapter.acquire_many(&keys, short)?, [true, true, true]);
        assert!(adapter.acquire("long", Duration::from_secs(60))?);
        // The next operation (or the reaper) gives the three expired locks back at once.
        assert_eq!(adapter.held_count(), 1);
        let batches = batches.lock().unwrap_or_else(|p| p.into_inner()).clone();
        assert_eq!(batches, [keys]);
        Ok(())
    }
}
