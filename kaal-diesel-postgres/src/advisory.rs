//! [`PgAdvisoryAdapter`]: claims held as PostgreSQL advisory locks on one dedicated session.
//!
//! The lock rules (one session outside the pool, no re-entry, ttl reaping, lost-session
//! recovery, the dispatch-log confirm) are kaal-diesel's generic
//! [`SessionLockStore`]; this module supplies only the PostgreSQL SQL and how to open a
//! session ([`LockSql`]), and the adapter's constructors.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Integer};
use kaal_diesel::{error_chain, LockSql, OpenError, SessionLockStore, Statement};

use crate::open::Target;
use crate::options::PgOptions;
use crate::{advisory_lock_id, PgDialect, PgStore};

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
///   [`acquire`](kaal_core::Adapter::acquire) is checked against the dispatch log once more
///   (one lookup) and released, answering `false`, when its previous holder already logged
///   it. [`acquire_many`](kaal_core::Adapter::acquire_many), the coordinator's batch claim,
///   leaves that check to the coordinator, which re-reads the log for every claim it wins
///   and gives back those it finds logged — one lookup per tick, not two.
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
#[derive(Debug)]
pub struct PgAdvisoryAdapter(SessionLockStore<PgDialect, AdvisoryLocks>);

kaal_diesel::delegate_adapter!(PgAdvisoryAdapter, PgDialect);

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
        let sql = AdvisoryLocks {
            target,
            application_name: format!("{} advisory", options.application_name),
        };
        SessionLockStore::open(sql, store).map(Self)
    }
}

/// Advisory lock SQL on one database, and how to open its sessions.
struct AdvisoryLocks {
    target: Target,
    application_name: String,
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

    /// One lock, without waiting.
    fn try_lock(&mut self, key: &str) -> Result<bool, String> {
        Statement::new(TRY_LOCK)
            .bind(advisory_lock_id(key).to_string())
            .returning::<Bool>()
            .get_result::<bool>(&mut self.conn)
            .map_err(|err| self.failed(&err))
    }
}

/// `ids` as a PostgreSQL array literal: `{1,-2,3}`.
fn array_literal(ids: impl Iterator<Item = i64>) -> String {
    let ids: Vec<String> = ids.map(|id| id.to_string()).collect();
    format!("{{{}}}", ids.join(","))
}

impl LockSql for AdvisoryLocks {
    type Session = AdvisorySession;
    const NAME: &'static str = NAME;

    fn open_session(&self) -> Result<AdvisorySession, String> {
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
        Ok(AdvisorySession {
            conn,
            pid,
            poisoned: false,
        })
    }

    /// One round trip for the whole batch (one key: the plain `pg_try_advisory_lock`).
    fn try_lock_many(
        &self,
        session: &mut AdvisorySession,
        keys: &[String],
    ) -> Result<Vec<bool>, String> {
        if let [key] = keys {
            return session.try_lock(key).map(|won| vec![won]);
        }
        let ids = array_literal(keys.iter().map(|key| advisory_lock_id(key)));
        let rows = Statement::new(TRY_LOCK_MANY)
            .bind(ids.as_str())
            .returning::<(BigInt, Bool)>()
            .load::<(i64, bool)>(&mut session.conn);
        let rows = match rows {
            Ok(rows) => rows,
            Err(err) => {
                // E.g. "out of shared memory" when the server's lock table is full: session
                // locks the failed statement took stay taken. The batch's keys are not held
                // by this adapter (it never asks for those), so give them all back; if that
                // fails too, the session reports itself dead and is replaced.
                let undone = Statement::new(UNLOCK_MANY)
                    .bind(ids.as_str())
                    .execute(&mut session.conn);
                if let Err(undo) = undone {
                    session.poisoned = true;
                    log::warn!(
                        "{NAME}: a batch of {} locks failed part-way and could not be undone \
                         ({}); the lock session (backend pid {}) is replaced so that no lock \
                         it took stays held",
                        keys.len(),
                        error_chain(&undo),
                        session.pid
                    );
                }
                return Err(session.failed(&err));
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

    fn unlock(&self, session: &mut AdvisorySession, key: &str) -> Result<bool, String> {
        Statement::new(UNLOCK)
            .bind(advisory_lock_id(key).to_string())
            .returning::<Bool>()
            .get_result::<bool>(&mut session.conn)
            .map_err(|err| session.failed(&err))
    }

    /// One round trip for the reaper's whole batch.
    fn unlock_many(&self, session: &mut AdvisorySession, keys: &[String]) -> Result<(), String> {
        if keys.is_empty() {
            return Ok(());
        }
        let ids = array_literal(keys.iter().map(|key| advisory_lock_id(key)));
        Statement::new(UNLOCK_MANY)
            .bind(ids.as_str())
            .execute(&mut session.conn)
            .map(drop)
            .map_err(|err| session.failed(&err))
    }

    fn is_alive(&self, session: &mut AdvisorySession) -> bool {
        !session.poisoned && Statement::new(PING).execute(&mut session.conn).is_ok()
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
