//! [`PgAdvisoryAdapter`]: claims held as PostgreSQL advisory locks on one dedicated session.
//!
//! The lock rules (one session outside the pool, no re-entry, ttl reaping, lost-session
//! recovery) are kaal-core's [`SessionLockAdapter`]; this module supplies the PostgreSQL
//! session ([`LockSession`]) and the pooled [`PgStore`] for the dispatch log and the
//! definitions.

use std::fmt;
use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Integer};
use kaal_core::{
    Adapter, DefinitionRegistry, DispatchRegistry, LockError, LockSession, SessionFactory,
    SessionLockAdapter,
};
use kaal_diesel::{check_key_len, error_chain, give_back_dispatched, OpenError, Statement};

use crate::open::Target;
use crate::options::PgOptions;
use crate::{advisory_lock_id, PgStore, BACKEND};

/// The adapter's name in messages: `PostgreSQL advisory acquire failed for <key>: <cause>`.
const NAME: &str = "PostgreSQL advisory";

/// Takes one lock without waiting. Parameter: the lock id.
const TRY_LOCK: &str = "SELECT pg_try_advisory_lock(CAST(? AS bigint))";

/// Takes every lock of an array of ids without waiting, in one round trip; one row per id
/// with its 1-based position. Parameter: the ids as a PostgreSQL array literal.
const TRY_LOCK_MANY: &str = "SELECT claim.position, pg_try_advisory_lock(claim.id)
FROM unnest(CAST(? AS bigint[])) WITH ORDINALITY AS claim(id, position)";

/// Gives back every lock of an array of ids this session holds (the others answer `false`).
/// Parameter: the ids as a PostgreSQL array literal.
const UNLOCK_MANY: &str =
    "SELECT pg_advisory_unlock(claim.id) FROM unnest(CAST(? AS bigint[])) AS claim(id)";

/// Gives one lock back; `false` when the session did not hold it. Parameter: the lock id.
const UNLOCK: &str = "SELECT pg_advisory_unlock(CAST(? AS bigint))";

/// The session's backend process id (logged, and what `pg_terminate_backend` takes).
const BACKEND_PID: &str = "SELECT pg_backend_pid()";

/// A trivial round trip.
const PING: &str = "SELECT 1";

/// Claims held as PostgreSQL advisory locks (`pg_try_advisory_lock`) on one dedicated
/// session, with the dispatch log and definitions of a pooled [`PgStore`].
///
/// * **Lock ids** are [`advisory_lock_id`]`(key)` — the Ruby gem's ids, so Ruby and Rust
///   nodes exclude each other.
/// * **One session** outside the pool takes and releases every lock of this adapter (an
///   advisory lock can only be released by the session holding it).
/// * **No re-entry**: PostgreSQL grants a session a lock it already holds; the adapter
///   remembers what it holds and answers `false` instead. A `release` of a key this adapter
///   does not hold returns `false` and leaves the lock with its holder.
/// * **ttl** is honoured by releasing, on the session, every lock held past its ttl (on this
///   process's monotonic clock; no other node can end a session lock).
/// * **A lost session** (server restart, `pg_terminate_backend`, network failure) is
///   detected by the operation that meets it: it logs an error, forgets the locks (the
///   server released them with the session), opens a new session and carries on.
/// * **A claim on a fire time already dispatched is given back.** Because a session lock
///   can vanish before its ttl (its holder finished or died), a dispatch key won by
///   [`acquire`](Adapter::acquire) is checked against the dispatch log once more (one
///   lookup) and released, answering `false`, when its previous holder already logged it.
///   [`acquire_many`](Adapter::acquire_many), the coordinator's batch claim, leaves that
///   check to the coordinator, which re-reads the log for every claim it wins and gives
///   back those it finds logged — one lookup per tick, not two.
/// * Keys longer than 255 bytes are refused, as on the lease table.
///
/// See the [crate docs](crate#lease-table-or-advisory-locks) for when to choose it.
///
/// ```no_run
/// use std::time::Duration;
/// use kaal_core::Adapter;
/// use kaal_diesel_postgres::PgAdvisoryAdapter;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let adapter = PgAdvisoryAdapter::open("postgres://kaal@db.internal/app")?;
/// adapter.store().run_migrations()?; // the dispatch log and definitions
/// assert!(adapter.acquire("reports", Duration::from_secs(30))?);
/// assert!(!adapter.acquire("reports", Duration::from_secs(30))?); // no re-entry
/// assert!(adapter.release("reports")?);
/// # Ok(())
/// # }
/// ```
pub struct PgAdvisoryAdapter {
    locks: SessionLockAdapter,
    store: PgStore,
}

impl fmt::Debug for PgAdvisoryAdapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgAdvisoryAdapter")
            .field("locks", &self.locks)
            .field("store", &self.store)
            .finish()
    }
}

impl PgAdvisoryAdapter {
    /// Opens the database at `url` (`postgres://` or `postgresql://`) with default options.
    /// See [`open_with`](PgAdvisoryAdapter::open_with).
    pub fn open(url: &str) -> Result<Self, OpenError> {
        Self::open_with(url, PgOptions::default())
    }

    /// Opens the pooled [`PgStore`] (dispatch log, definitions) and the dedicated lock
    /// session on `url`. Fails, naming the URL without its password, when the server cannot
    /// be reached or the tables that exist have the wrong shape.
    pub fn open_with(url: &str, options: PgOptions) -> Result<Self, OpenError> {
        let target = Target::new(url, &options)?;
        let store = PgStore::open_with(url, options.clone())?;
        let application_name = format!("{} advisory", options.application_name);
        let factory = AdvisorySessions {
            target: target.clone(),
            application_name,
        };
        let locks =
            SessionLockAdapter::new(NAME, Box::new(factory), None, None).map_err(|err| {
                OpenError::Connect {
                    backend: BACKEND,
                    locator: target.shown().to_string(),
                    cause: format!("cannot open the advisory lock session: {}", err.cause),
                }
            })?;
        Ok(Self { locks, store })
    }

    /// The pooled store: dispatch log, definitions, migrations.
    pub fn store(&self) -> &PgStore {
        &self.store
    }

    /// How many locks this adapter holds now (locks past their ttl are released first).
    pub fn held_count(&self) -> usize {
        self.locks.held_count()
    }

    fn check(&self, operation: &str, key: &str) -> Result<(), LockError> {
        check_key_len(key).map_err(|cause| LockError::new(NAME, operation, key, cause))
    }

    /// Gives back claims won on fire times the dispatch log already records: their previous
    /// holder's session ended after it logged them (see [`give_back_dispatched`]).
    fn confirm(
        &self,
        operation: &str,
        keys: &[String],
        won: Vec<bool>,
    ) -> Result<Vec<bool>, LockError> {
        give_back_dispatched(NAME, operation, &self.locks, &self.store, keys, won)
    }
}

impl Adapter for PgAdvisoryAdapter {
    fn acquire(&self, key: &str, ttl: Duration) -> Result<bool, LockError> {
        self.check("acquire", key)?;
        if !self.locks.acquire(key, ttl)? {
            return Ok(false);
        }
        let keys = [key.to_string()];
        let won = self.confirm("acquire", &keys, vec![true])?;
        Ok(won.first().copied().unwrap_or(false))
    }

    /// One round trip for the whole batch. A key given twice is taken once: its first
    /// position says so, as a loop of `acquire` would.
    fn acquire_many(&self, keys: &[String], ttl: Duration) -> Result<Vec<bool>, LockError> {
        for key in keys {
            self.check("batch acquire", key)?;
        }
        // The coordinator confirms batch claims against the log itself (see the type docs);
        // a key given twice is claimed once (SessionLockAdapter).
        self.locks.acquire_many(keys, ttl)
    }

    fn release(&self, key: &str) -> Result<bool, LockError> {
        self.locks.release(key)
    }

    fn dispatch_registry(&self) -> Option<&dyn DispatchRegistry> {
        Some(&self.store)
    }

    fn definition_registry(&self) -> Option<&dyn DefinitionRegistry> {
        Some(&self.store)
    }

    fn node_registry(&self) -> Option<&dyn kaal_core::NodeRegistry> {
        Some(&self.store)
    }

    fn name(&self) -> &str {
        NAME
    }
}

/// Opens advisory lock sessions on one database.
struct AdvisorySessions {
    target: Target,
    application_name: String,
}

impl SessionFactory for AdvisorySessions {
    fn open_session(&self) -> Result<Box<dyn LockSession>, String> {
        let mut conn = self
            .target
            .establish(Some(&self.application_name))
            .map_err(|cause| format!("cannot connect to {}: {cause}", self.target.shown()))?;
        let pid = Statement::new(BACKEND_PID)
            .returning::<Integer>()
            .get_result::<i32>(&mut conn)
            .map_err(|err| error_chain(&err))?;
        log::debug!(
            "{NAME}: lock session open on {} (backend pid {pid})",
            self.target.shown()
        );
        Ok(Box::new(AdvisorySession {
            conn,
            pid,
            poisoned: false,
        }))
    }
}

/// One dedicated connection holding advisory locks.
struct AdvisorySession {
    conn: PgConnection,
    pid: i32,
    /// A batch failed part-way and could not be undone: session-level advisory locks taken
    /// by a failed statement stay taken, so the session may hold locks nobody knows of. It
    /// then reports itself dead; the adapter drops it (the server releases everything it
    /// held), forgets its locks and opens a new one.
    poisoned: bool,
}

impl AdvisorySession {
    fn failed(&self, err: &diesel::result::Error) -> String {
        format!(
            "{} (lock session, backend pid {})",
            error_chain(err),
            self.pid
        )
    }
}

/// `ids` as a PostgreSQL array literal: `{1,-2,3}`.
fn array_literal(ids: impl Iterator<Item = i64>) -> String {
    let ids: Vec<String> = ids.map(|id| id.to_string()).collect();
    format!("{{{}}}", ids.join(","))
}

impl LockSession for AdvisorySession {
    fn try_lock(&mut self, key: &str) -> Result<bool, String> {
        Statement::new(TRY_LOCK)
            .bind(advisory_lock_id(key).to_string())
            .returning::<Bool>()
            .get_result::<bool>(&mut self.conn)
            .map_err(|err| self.failed(&err))
    }

    fn try_lock_many(&mut self, keys: &[String]) -> Result<Vec<bool>, String> {
        if let [key] = keys {
            return self.try_lock(key).map(|won| vec![won]);
        }
        let ids = array_literal(keys.iter().map(|key| advisory_lock_id(key)));
        let rows = Statement::new(TRY_LOCK_MANY)
            .bind(ids.as_str())
            .returning::<(BigInt, Bool)>()
            .load::<(i64, bool)>(&mut self.conn);
        let rows = match rows {
            Ok(rows) => rows,
            Err(err) => {
                // E.g. "out of shared memory" when the server's lock table is full: session
                // locks the failed statement took stay taken. The batch's keys are not held
                // by this adapter (it never asks for those), so give them all back; if that
                // fails too, the session reports itself dead and is replaced.
                let undone = Statement::new(UNLOCK_MANY)
                    .bind(ids.as_str())
                    .execute(&mut self.conn);
                if let Err(undo) = undone {
                    self.poisoned = true;
                    log::warn!(
                        "{NAME}: a batch of {} locks failed part-way and could not be undone \
                         ({}); the lock session (backend pid {}) is replaced so that no lock \
                         it took stays held",
                        keys.len(),
                        error_chain(&undo),
                        self.pid
                    );
                }
                return Err(self.failed(&err));
            }
        };
        let mut won = vec![false; keys.len()];
        for (position, taken) in rows {
            let slot = usize::try_from(position - 1)
                .ok()
                .and_then(|i| won.get_mut(i));
            if let Some(slot) = slot {
                *slot = taken;
            }
        }
        Ok(won)
    }

    fn unlock(&mut self, key: &str) -> Result<bool, String> {
        Statement::new(UNLOCK)
            .bind(advisory_lock_id(key).to_string())
            .returning::<Bool>()
            .get_result::<bool>(&mut self.conn)
            .map_err(|err| self.failed(&err))
    }

    /// One round trip for the reaper's whole batch.
    fn unlock_many(&mut self, keys: &[String]) -> Result<(), String> {
        if keys.is_empty() {
            return Ok(());
        }
        let ids = array_literal(keys.iter().map(|key| advisory_lock_id(key)));
        Statement::new(UNLOCK_MANY)
            .bind(ids.as_str())
            .execute(&mut self.conn)
            .map(drop)
            .map_err(|err| self.failed(&err))
    }

    fn is_alive(&mut self) -> bool {
        !self.poisoned && Statement::new(PING).execute(&mut self.conn).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_travel_as_an_array_literal() {
        assert_eq!(array_literal([1, -2, 3].into_iter()), "{1,-2,3}");
        assert_eq!(array_literal(std::iter::empty()), "{}");
    }

    #[test]
    fn statements_have_one_placeholder_each() {
        for sql in [TRY_LOCK, TRY_LOCK_MANY, UNLOCK, UNLOCK_MANY] {
            assert_eq!(sql.matches('?').count(), 1, "{sql}");
        }
    }
}
