//! [`MysqlNamedLockAdapter`]: MySQL named locks (`GET_LOCK` / `RELEASE_LOCK`) held on one
//! dedicated session, with the registries of a pooled [`MysqlStore`].
//!
//! The session rules — one session outside the pool, no re-entry, ttl reaping, a lost
//! session detected, reported and replaced — are kaal-core's
//! [`SessionLockAdapter`]; this module supplies the
//! [`LockSession`] that speaks MySQL.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use diesel::mysql::MysqlConnection;
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel::RunQueryDsl;
use kaal_core::{
    Adapter, DefinitionRegistry, DispatchRegistry, LockError, LockSession, SessionFactory,
    SessionLockAdapter,
};
use kaal_diesel::{check_key_len, error_chain, give_back_dispatched, OpenError, Statement};

use crate::lock_name::lock_name;
use crate::open::Locator;
use crate::options::MysqlOptions;
use crate::statement::SqlBuilder;
use crate::{MysqlStore, BACKEND};

/// The adapter's name in messages: `MySQL named lock acquire failed for <key>: <cause>`.
const NAME: &str = "MySQL named lock";

/// The most `GET_LOCK` calls one `SELECT` makes (one prepared statement per distinct count,
/// so the dedicated session keeps at most this many).
const MAX_LOCKS_PER_STATEMENT: usize = 128;

/// Gives one lock back: `1` released, `0` held by another session, `NULL` no such lock.
const RELEASE: &str = "SELECT RELEASE_LOCK(?)";

/// A trivial statement that fails when the session is gone.
const PING: &str = "SELECT 1";

/// MySQL named locks as a kaal [`Adapter`]: `GET_LOCK(name, 0)` to acquire,
/// `RELEASE_LOCK(name)` to release, on one dedicated session; the dispatch log and the
/// definitions live in the tables of a [`MysqlStore`] on its own pool.
///
/// # Names
///
/// The lock name of a key is [`lock_name`]`(namespace + key)`: the key itself up to 64
/// characters, else 47 characters, `:` and 16 hex digits of its SHA-256 — the Ruby gem's
/// rule, so with the default empty namespace Ruby and Rust nodes exclude each other.
///
/// Named locks belong to the **server**, not to a database: two fleets whose databases live
/// on one server and use the same keys (the default `kaal:` key namespace) would exclude each
/// other. Give each fleet its own `namespace` (e.g. the database's name and `:`) — every
/// node of one fleet must use the same one, and a namespace breaks the match with Ruby
/// nodes, which use none.
///
/// # Sessions
///
/// Locks live as long as the session that took them: a node that crashes or loses its
/// connection releases them all at once (the server does), and only that session can
/// release them. So:
///
/// * acquire and release run on one dedicated connection, never a pooled one;
/// * a key this adapter holds is never acquired again by it (`false`), although MySQL would
///   grant it (named locks are re-entrant per session); a `release` of a key it does not
///   hold returns `false` and leaves the lock with its holder;
/// * `ttl` is honoured by this process: a lock held past its ttl is released on the session
///   (before each operation and by a background reaper). Nobody else can expire it — if this
///   process hangs, the lock stays until the session ends;
/// * a lost session (`KILL`, server restart, network failure) is noticed by the next
///   operation: it logs an error, treats every lock it held as lost (the server released
///   them), reconnects and carries on;
/// * because a lock can vanish before its ttl (its holder finished or crashed right after
///   logging the dispatch), a claim won by [`acquire`](Adapter::acquire) on a fire time that
///   the dispatch log already records is given back and answered `false`
///   ([`give_back_dispatched`]). [`acquire_many`](Adapter::acquire_many), the coordinator's
///   batch claim, leaves that check to the coordinator, which re-reads the log for every
///   claim it wins and gives back those it finds logged — one lookup per tick, not two.
///
/// ```no_run
/// use std::time::Duration;
/// use kaal_core::Adapter;
/// use kaal_diesel_mysql::{MysqlNamedLockAdapter, MysqlOptions};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let locks = MysqlNamedLockAdapter::open_with(
///     "mysql://kaal:secret@db:3306/app",
///     MysqlOptions::default(),
///     "app:",
/// )?;
/// locks.store().run_migrations()?; // the dispatch log and definitions
/// assert!(locks.acquire("kaal:dispatch:report:1767225600", Duration::from_secs(125))?);
/// assert!(locks.release("kaal:dispatch:report:1767225600")?);
/// # Ok(())
/// # }
/// ```
pub struct MysqlNamedLockAdapter {
    locks: SessionLockAdapter,
    store: Arc<MysqlStore>,
    namespace: String,
}

impl fmt::Debug for MysqlNamedLockAdapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MysqlNamedLockAdapter")
            .field("locator", &self.store.locator())
            .field("namespace", &self.namespace)
            .field("locks", &self.locks)
            .finish()
    }
}

impl MysqlNamedLockAdapter {
    /// Opens the adapter on `url` with default options and no namespace (lock names are
    /// the keys, as the Ruby gem's). See [`open_with`](MysqlNamedLockAdapter::open_with).
    pub fn open(url: &str) -> Result<Self, OpenError> {
        Self::open_with(url, MysqlOptions::default(), "")
    }

    /// Opens the store (pool, registries) and the dedicated lock session on `url`; every
    /// lock name is [`lock_name`]`(namespace + key)`. Fails, naming the URL without its
    /// password, when the server cannot be reached or refuses the credentials or the
    /// database.
    pub fn open_with(
        url: &str,
        options: MysqlOptions,
        namespace: impl Into<String>,
    ) -> Result<Self, OpenError> {
        let namespace = namespace.into();
        let locator = Locator::parse(url)?;
        let store = Arc::new(MysqlStore::open_with(url, options.clone())?);
        let shown = locator.shown.clone();
        let factory = NamedLockSessions {
            locator,
            options,
            namespace: namespace.clone(),
        };
        let locks =
            SessionLockAdapter::new(NAME, Box::new(factory), None, None).map_err(|err| {
                OpenError::Connect {
                    backend: BACKEND,
                    locator: shown,
                    cause: format!("lock session: {}", err.cause),
                }
            })?;
        Ok(Self {
            locks,
            store,
            namespace,
        })
    }

    /// The store holding the dispatch log and the definitions (and the lease table, unused
    /// here); run its [`run_migrations`](kaal_diesel::DieselStore::run_migrations) once.
    pub fn store(&self) -> &Arc<MysqlStore> {
        &self.store
    }

    /// The prefix of every lock name.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The name this adapter locks for `key`.
    pub fn lock_name(&self, key: &str) -> String {
        lock_name(&format!("{}{key}", self.namespace))
    }

    /// How many locks this adapter holds now (those past their ttl are released first).
    pub fn held_count(&self) -> usize {
        self.locks.held_count()
    }

    fn check_keys<'k>(
        &self,
        operation: &str,
        keys: impl IntoIterator<Item = &'k str>,
    ) -> Result<(), LockError> {
        for key in keys {
            check_key_len(key).map_err(|cause| LockError::new(NAME, operation, key, cause))?;
        }
        Ok(())
    }

    /// Gives back claims won on fire times the dispatch log already records: their previous
    /// holder's session ended after it logged them (see [`give_back_dispatched`]).
    fn confirm(
        &self,
        operation: &str,
        keys: &[String],
        won: Vec<bool>,
    ) -> Result<Vec<bool>, LockError> {
        give_back_dispatched(NAME, operation, &self.locks, &*self.store, keys, won)
    }
}

impl Adapter for MysqlNamedLockAdapter {
    fn acquire(&self, key: &str, ttl: Duration) -> Result<bool, LockError> {
        self.check_keys("acquire", [key])?;
        if !self.locks.acquire(key, ttl)? {
            return Ok(false);
        }
        let won = self.confirm("acquire", &[key.to_string()], vec![true])?;
        Ok(won.first().copied().unwrap_or(false))
    }

    fn release(&self, key: &str) -> Result<bool, LockError> {
        self.locks.release(key)
    }

    fn acquire_many(&self, keys: &[String], ttl: Duration) -> Result<Vec<bool>, LockError> {
        self.check_keys("batch acquire", keys.iter().map(String::as_str))?;
        // The coordinator confirms batch claims against the log itself (see the type docs);
        // a key given twice is claimed once (SessionLockAdapter).
        self.locks.acquire_many(keys, ttl)
    }

    fn dispatch_registry(&self) -> Option<&dyn DispatchRegistry> {
        Some(&*self.store)
    }

    fn definition_registry(&self) -> Option<&dyn DefinitionRegistry> {
        Some(&*self.store)
    }

    fn node_registry(&self) -> Option<&dyn kaal_core::NodeRegistry> {
        Some(&*self.store)
    }

    fn name(&self) -> &str {
        NAME
    }
}

/// Opens the dedicated sessions (the first, and a replacement after one is lost).
struct NamedLockSessions {
    locator: Locator,
    options: MysqlOptions,
    namespace: String,
}

impl SessionFactory for NamedLockSessions {
    fn open_session(&self) -> Result<Box<dyn LockSession>, String> {
        let conn = self
            .locator
            .establish(&self.options)
            .map_err(|err| err.to_string())?;
        Ok(Box::new(NamedLockSession {
            conn,
            namespace: self.namespace.clone(),
            held: HashSet::new(),
            poisoned: false,
        }))
    }
}

/// One MySQL connection holding named locks.
struct NamedLockSession {
    conn: MysqlConnection,
    namespace: String,
    /// Names this session holds: a second key with the same name (a digest collision of
    /// two long keys) is refused instead of re-entering the lock.
    held: HashSet<String>,
    /// A failed batch could not give back what it took: the session reports itself dead, so
    /// it is replaced and the server releases those locks with it.
    poisoned: bool,
}

impl NamedLockSession {
    fn name_of(&self, key: &str) -> String {
        lock_name(&format!("{}{key}", self.namespace))
    }

    /// `GET_LOCK(name, 0)` for every name, in one `SELECT`: one character per name, `1`
    /// taken, `0` held elsewhere, `e` for a `NULL` (an error on that name).
    fn get_locks(&mut self, names: &[&str]) -> Result<String, String> {
        let mut statement = SqlBuilder::new("SELECT CONCAT(");
        for (i, name) in names.iter().enumerate() {
            statement.push(if i == 0 {
                "COALESCE(GET_LOCK("
            } else {
                ", COALESCE(GET_LOCK("
            });
            statement.bind(*name).push(", 0), 'e')");
        }
        statement.push(")");
        statement
            .returning::<Nullable<Text>>()
            .get_result::<Option<String>>(&mut self.conn)
            .map_err(|err| error_chain(&err))?
            .ok_or_else(|| "GET_LOCK answered NULL".to_string())
    }

    /// Gives back names a batch may have taken before it failed; when that fails too,
    /// poisons the session so that it is replaced (and the server releases its locks with
    /// it). None of `names` was held before the batch (it never asks for those), so giving
    /// back one it did not take is harmless.
    fn undo<'n>(&mut self, names: impl IntoIterator<Item = &'n str>) {
        for name in names {
            self.held.remove(name);
            if let Err(err) = Statement::new(RELEASE).bind(name).execute(&mut self.conn) {
                log::warn!(
                    "{NAME}: could not give back {name} after a failed batch ({err}); the lock \
                     session is replaced so that no lock it took stays held"
                );
                self.poisoned = true;
                return;
            }
        }
    }
}

impl LockSession for NamedLockSession {
    fn try_lock(&mut self, key: &str) -> Result<bool, String> {
        let answers = self.try_lock_many(&[key.to_string()])?;
        Ok(answers.first().copied().unwrap_or(false))
    }

    fn try_lock_many(&mut self, keys: &[String]) -> Result<Vec<bool>, String> {
        let names: Vec<String> = keys.iter().map(|key| self.name_of(key)).collect();
        let mut answers = vec![false; keys.len()];
        // Ask for each name once, and never for one this session holds.
        let mut asked: HashSet<&str> = HashSet::new();
        let to_ask: Vec<(usize, &str)> = names
            .iter()
            .enumerate()
            .filter(|(_, name)| !self.held.contains(name.as_str()) && asked.insert(name))
            .map(|(i, name)| (i, name.as_str()))
            .collect();
        let mut taken_now: Vec<String> = Vec::new();
        for chunk in to_ask.chunks(MAX_LOCKS_PER_STATEMENT) {
            let chunk_names: Vec<&str> = chunk.iter().map(|(_, name)| *name).collect();
            let flags = match self.get_locks(&chunk_names) {
                Ok(flags) if flags.len() == chunk.len() => flags,
                outcome => {
                    let cause = match outcome {
                        Err(cause) => cause,
                        Ok(flags) => {
                            format!("GET_LOCK answered {flags:?} for {} names", chunk.len())
                        }
                    };
                    // GET_LOCKs before a failing one in the same SELECT may have succeeded.
                    let names: Vec<String> = taken_now
                        .iter()
                        .cloned()
                        .chain(chunk_names.iter().map(|name| (*name).to_string()))
                        .collect();
                    self.undo(names.iter().map(String::as_str));
                    return Err(cause);
                }
            };
            for ((i, name), flag) in chunk.iter().zip(flags.bytes()) {
                match flag {
                    b'1' => {
                        answers[*i] = true;
                        self.held.insert((*name).to_string());
                        taken_now.push((*name).to_string());
                    }
                    b'0' => {}
                    _ => log::warn!("{NAME}: GET_LOCK({name}) failed (NULL); not acquired"),
                }
            }
        }
        Ok(answers)
    }

    fn unlock(&mut self, key: &str) -> Result<bool, String> {
        let name = self.name_of(key);
        let released = Statement::new(RELEASE)
            .bind(name.as_str())
            .returning::<Nullable<BigInt>>()
            .get_result::<Option<i64>>(&mut self.conn)
            .map_err(|err| error_chain(&err))?;
        self.held.remove(&name);
        Ok(released == Some(1))
    }

    fn is_alive(&mut self) -> bool {
        !self.poisoned && Statement::new(PING).execute(&mut self.conn).is_ok()
    }
}
