//! [`SessionLocks`]: the rules every session-lock backend shares — one dedicated session,
//! what it holds, ttl reaping, a lost session replaced — over the backend's [`LockSql`].
//!
//! This is the part of [`SessionLockStore`](super::SessionLockStore) that knows nothing of
//! the dispatch log or of key lengths: it only turns the backend's raw, re-entrant,
//! ttl-less session locks into locks with the lease contract (see the [parent
//! module](super)).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::thread;
use std::time::{Duration, Instant};

use kaal_core::LockError;

use super::LockSql;

struct SessionState<S> {
    session: Option<S>,
    /// Keys this adapter holds, with the instant their ttl passes.
    held: HashMap<String, Instant>,
    /// No held key's ttl passes before this instant (it may be earlier than the earliest
    /// ttl still held, never later): until then an operation does not scan `held`.
    next_expiry: Option<Instant>,
}

impl<S> SessionState<S> {
    fn hold(&mut self, key: String, until: Instant) {
        self.held.insert(key, until);
        self.next_expiry = Some(self.next_expiry.map_or(until, |next| next.min(until)));
    }

    fn forget_all(&mut self) {
        self.held.clear();
        self.next_expiry = None;
    }
}

struct Shared<L: LockSql> {
    sql: L,
    state: Mutex<SessionState<L::Session>>,
}

/// Session-scoped locks with the lease contract; see the [module docs](self). Every lock
/// and unlock runs on one session, behind one mutex.
pub(super) struct SessionLocks<L: LockSql> {
    shared: Arc<Shared<L>>,
}

/// The longest the reaper sleeps. It wakes earlier when a lock it saw held reaches its ttl,
/// so such a lock is released within a few milliseconds of its ttl; one taken while the
/// reaper sleeps is released at most `REAP_EVERY` late (or by the next operation).
const REAP_EVERY: Duration = Duration::from_millis(500);

/// The shortest the reaper sleeps.
const REAP_AT_LEAST: Duration = Duration::from_millis(5);

impl<L: LockSql> SessionLocks<L> {
    /// Opens the first session through `sql` and starts the reaper. The error is the
    /// backend's cause.
    pub(super) fn open(sql: L) -> Result<Self, String> {
        let session = sql.open_session()?;
        let shared = Arc::new(Shared {
            sql,
            state: Mutex::new(SessionState {
                session: Some(session),
                held: HashMap::new(),
                next_expiry: None,
            }),
        });
        spawn_reaper(Arc::downgrade(&shared));
        Ok(Self { shared })
    }

    /// The backend's lock SQL.
    pub(super) fn sql(&self) -> &L {
        &self.shared.sql
    }

    /// How many locks are held now (expired ones are released first).
    pub(super) fn held_count(&self) -> usize {
        let mut state = self.shared.lock_state();
        self.shared.reap(&mut state);
        state.held.len()
    }

    /// Tries every key of `keys` for `ttl`; element `i` answers `keys[i]`. A key held
    /// already answers `false` (no re-entry); a key given twice is claimed once, at its
    /// first position. `operation` labels errors.
    pub(super) fn acquire_many(
        &self,
        keys: &[String],
        ttl: Duration,
        operation: &str,
    ) -> Result<Vec<bool>, LockError> {
        self.shared.acquire_many(keys, ttl, operation)
    }

    /// Gives `key` back; `false`, without asking the server, when it is not held here (the
    /// lock stays with its real holder), and when the session was lost (the server released
    /// it with the session).
    pub(super) fn release(&self, key: &str) -> Result<bool, LockError> {
        let shared = &self.shared;
        let mut state = shared.lock_state();
        shared.reap(&mut state);
        if state.held.remove(key).is_none() {
            return Ok(false);
        }
        let result = shared
            .session(&mut state)
            .and_then(|session| shared.sql.unlock(session, key));
        match result {
            Ok(released) => Ok(released),
            Err(cause) => {
                if shared.check_lost(&mut state) {
                    // The server released it with the session.
                    Ok(false)
                } else {
                    Err(shared.error("release", key, cause))
                }
            }
        }
    }
}

fn spawn_reaper<L: LockSql>(shared: Weak<Shared<L>>) {
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

impl<L: LockSql> Shared<L> {
    fn lock_state(&self) -> MutexGuard<'_, SessionState<L::Session>> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn error(&self, operation: &str, key: &str, cause: impl ToString) -> LockError {
        LockError::new(L::NAME, operation, key, cause)
    }

    /// The live session, opening a new one when there is none.
    fn session<'s>(
        &self,
        state: &'s mut SessionState<L::Session>,
    ) -> Result<&'s mut L::Session, String> {
        if state.session.is_none() {
            state.session = Some(self.sql.open_session()?);
        }
        state
            .session
            .as_mut()
            .ok_or_else(|| "no session".to_string())
    }

    /// Called after an operation failed: if the session is gone, forget it and every lock it
    /// held. Returns whether the session was lost.
    fn check_lost(&self, state: &mut SessionState<L::Session>) -> bool {
        let alive = state
            .session
            .as_mut()
            .is_some_and(|session| self.sql.is_alive(session));
        if !alive {
            let lost = state.held.len();
            log::error!(
                "{}: the lock session was lost; the {lost} lock(s) it held were released by the server; reconnecting",
                L::NAME
            );
            state.session = None;
            state.forget_all();
        }
        !alive
    }

    /// Releases, on the session, every lock held past its ttl — in one batch. Costs nothing
    /// (no scan, no round trip) until the earliest ttl of a held lock has passed.
    fn reap(&self, state: &mut SessionState<L::Session>) {
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
            .and_then(|session| self.sql.unlock_many(session, &expired));
        if let Err(cause) = result {
            log::warn!(
                "{}: could not release {} expired lock(s) ({}...): {cause}",
                L::NAME,
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

    fn try_fresh(
        &self,
        state: &mut SessionState<L::Session>,
        fresh: &[String],
    ) -> Result<Vec<bool>, String> {
        if fresh.is_empty() {
            return Ok(Vec::new());
        }
        let session = self.session(state)?;
        self.sql.try_lock_many(session, fresh)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

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

    /// Lock SQL in memory: every session of it shares one server-side lock table (so a
    /// lost session's locks can be seen to go), records its unlock batches, and can be
    /// told that its session died.
    #[derive(Default)]
    struct Recording {
        /// The "server's" locks: key → the session holding it.
        server: Mutex<HashMap<String, usize>>,
        batches: Mutex<Vec<Vec<String>>>,
        opened: AtomicUsize,
        /// The current session fails every statement and answers `is_alive` with `false`.
        dead: AtomicBool,
        /// Keys the last `try_lock_many` was asked for.
        asked: Mutex<Vec<String>>,
    }

    /// A session: its number.
    struct Session(usize);

    fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
        mutex.lock().unwrap_or_else(|p| p.into_inner())
    }

    impl Recording {
        fn alive(&self) -> Result<(), String> {
            if self.dead.load(Ordering::SeqCst) {
                Err("server closed the connection".into())
            } else {
                Ok(())
            }
        }
    }

    impl LockSql for Arc<Recording> {
        type Session = Session;
        const NAME: &'static str = "test";

        fn open_session(&self) -> Result<Session, String> {
            self.dead.store(false, Ordering::SeqCst);
            Ok(Session(self.opened.fetch_add(1, Ordering::SeqCst)))
        }

        fn try_lock_many(&self, s: &mut Session, keys: &[String]) -> Result<Vec<bool>, String> {
            self.alive()?;
            *lock(&self.asked) = keys.to_vec();
            let mut server = lock(&self.server);
            // Re-entrant per session, as both real lock kinds are.
            Ok(keys
                .iter()
                .map(|key| *server.entry(key.clone()).or_insert(s.0) == s.0)
                .collect())
        }

        fn unlock(&self, s: &mut Session, key: &str) -> Result<bool, String> {
            self.alive()?;
            let mut server = lock(&self.server);
            if server.get(key) != Some(&s.0) {
                return Ok(false);
            }
            server.remove(key);
            Ok(true)
        }

        fn unlock_many(&self, s: &mut Session, keys: &[String]) -> Result<(), String> {
            self.alive()?;
            let mut batch: Vec<String> = keys.to_vec();
            batch.sort();
            for key in &batch {
                self.unlock(s, key)?;
            }
            lock(&self.batches).push(batch);
            Ok(())
        }

        fn is_alive(&self, _: &mut Session) -> bool {
            if self.dead.load(Ordering::SeqCst) {
                // The server released the dead session's locks.
                lock(&self.server).clear();
            }
            !self.dead.load(Ordering::SeqCst)
        }
    }

    fn open(sql: &Arc<Recording>) -> Result<SessionLocks<Arc<Recording>>, LockError> {
        SessionLocks::open(sql.clone()).map_err(|cause| LockError::new("test", "open", "-", cause))
    }

    fn keys(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn expired_locks_are_released_in_one_batch_and_live_ones_stay() -> Result<(), LockError> {
        let sql = Arc::new(Recording::default());
        let locks = open(&sql)?;
        let short = Duration::ZERO;
        let keys: Vec<String> = (0..3).map(|i| format!("short-{i}")).collect();
        assert_eq!(locks.acquire_many(&keys, short, "b")?, [true, true, true]);
        assert_eq!(
            locks.acquire_many(&["long".into()], Duration::from_secs(60), "a")?,
            [true]
        );
        // The next operation (or the reaper) gives the three expired locks back at once.
        assert_eq!(locks.held_count(), 1);
        assert_eq!(*lock(&sql.batches), [keys]);
        Ok(())
    }

    #[test]
    fn a_held_key_is_not_granted_again_and_a_repeated_key_is_claimed_once() -> Result<(), LockError>
    {
        let sql = Arc::new(Recording::default());
        let locks = open(&sql)?;
        let ttl = Duration::from_secs(60);
        assert_eq!(locks.acquire_many(&keys(&["a"]), ttl, "a")?, [true]);
        // The server would grant "a" again (re-entrant); the adapter says no and does not ask.
        let answer = locks.acquire_many(&keys(&["a", "b", "b", "c"]), ttl, "b")?;
        assert_eq!(answer, [false, true, false, true]);
        assert_eq!(*lock(&sql.asked), keys(&["b", "c"]));
        assert_eq!(locks.held_count(), 3);
        // A key held by nobody here is not released on the server.
        lock(&sql.server).insert("theirs".into(), 99);
        assert!(!locks.release("theirs")?);
        assert!(lock(&sql.server).contains_key("theirs"));
        assert!(locks.release("a")?);
        assert!(!locks.release("a")?);
        Ok(())
    }

    #[test]
    fn a_lost_session_forgets_its_locks_and_a_new_one_carries_on() -> Result<(), LockError> {
        let sql = Arc::new(Recording::default());
        let locks = open(&sql)?;
        let ttl = Duration::from_secs(60);
        assert_eq!(
            locks.acquire_many(&keys(&["a", "b"]), ttl, "b")?,
            [true, true]
        );
        sql.dead.store(true, Ordering::SeqCst);
        // The release meets the dead session: the server released "a" with it.
        assert!(!locks.release("a")?);
        assert_eq!(
            locks.held_count(),
            0,
            "the lost session's locks are forgotten"
        );
        assert_eq!(sql.opened.load(Ordering::SeqCst), 1);
        // The next acquire opens a new session and takes "b" again.
        assert_eq!(locks.acquire_many(&keys(&["b"]), ttl, "a")?, [true]);
        assert_eq!(sql.opened.load(Ordering::SeqCst), 2);
        // An acquire meeting a dead session retries once on a new one.
        sql.dead.store(true, Ordering::SeqCst);
        assert_eq!(locks.acquire_many(&keys(&["c"]), ttl, "a")?, [true]);
        assert_eq!(sql.opened.load(Ordering::SeqCst), 3);
        assert_eq!(locks.held_count(), 1);
        let holders: HashSet<usize> = lock(&sql.server).values().copied().collect();
        assert_eq!(holders, HashSet::from([2]));
        Ok(())
    }
}
