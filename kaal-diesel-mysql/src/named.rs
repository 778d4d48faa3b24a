//! [`MysqlNamedLockAdapter`]: MySQL named locks (`GET_LOCK` / `RELEASE_LOCK`) held on one
//! dedicated session, with the registries of a pooled [`MysqlStore`].
//!
//! The session rules — one session outside the pool, no re-entry, ttl reaping, a lost
//! session detected, reported and replaced, the dispatch-log confirm — are kaal-diesel's
//! generic [`SessionLockStore`]; this module supplies only the SQL that speaks MySQL and how
//! to open a session ([`LockSql`]), and the adapter's constructors.

use std::collections::HashSet;
use std::fmt;

use diesel::mysql::MysqlConnection;
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel::RunQueryDsl;
use kaal_diesel::{error_chain, LockSql, OpenError, SessionLockStore, Statement};

use crate::builder::SqlBuilder;
use crate::lock_name::lock_name;
use crate::open::Locator;
use crate::options::MysqlOptions;
use crate::{MysqlDialect, MysqlStore};

/// The adapter's name in messages: `MySQL named lock acquire failed for <key>: <cause>`.
const NAME: &str = "MySQL named lock";

/// The most `GET_LOCK` calls one `SELECT` makes (one prepared statement per distinct count,
/// so the dedicated session keeps at most this many).
const MAX_LOCKS_PER_STATEMENT: usize = 128;

/// Gives one lock back: `1` released, `0` held by another session, `NULL` no such lock.
const RELEASE: &str = "SELECT RELEASE_LOCK(?)";

/// A trivial statement that fails when the session is gone.
const PING: &str = "SELECT 1";

/// MySQL named locks as a kaal [`Adapter`](kaal_core::Adapter): `GET_LOCK(name, 0)` to
/// acquire, `RELEASE_LOCK(name)` to release, on one dedicated session; the dispatch log and
/// the definitions live in the tables of a [`MysqlStore`] on its own pool.
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
/// release them. So (these rules are kaal-diesel's [`SessionLockStore`], which this type
/// wraps):
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
///   logging the dispatch), a claim won by [`acquire`](kaal_core::Adapter::acquire) on a
///   fire time that the dispatch log already records is given back and answered `false`
///   ([`give_back_dispatched`](kaal_diesel::give_back_dispatched)).
///   [`acquire_many`](kaal_core::Adapter::acquire_many), the coordinator's batch claim,
///   leaves that check to the coordinator, which re-reads the log for every claim it wins
///   and gives back those it finds logged — one lookup per tick, not two.
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
pub struct MysqlNamedLockAdapter(SessionLockStore<MysqlDialect, NamedLocks>);

kaal_diesel::delegate_adapter!(MysqlNamedLockAdapter, MysqlDialect);

impl fmt::Debug for MysqlNamedLockAdapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MysqlNamedLockAdapter")
            .field("namespace", &self.namespace())
            .field("locks", &self.0)
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
        let locator = Locator::parse(url)?;
        let store = MysqlStore::open_with(url, options.clone())?;
        let sql = NamedLocks {
            locator,
            options,
            namespace: namespace.into(),
        };
        SessionLockStore::open(sql, store).map(Self)
    }

    /// The prefix of every lock name.
    pub fn namespace(&self) -> &str {
        &self.0.lock_sql().namespace
    }

    /// The name this adapter locks for `key`.
    pub fn lock_name(&self, key: &str) -> String {
        self.0.lock_sql().name_of(key)
    }
}

/// Named-lock SQL on one server: how to open the dedicated sessions (the first, and a
/// replacement after one is lost) and the names of keys.
struct NamedLocks {
    locator: Locator,
    options: MysqlOptions,
    namespace: String,
}

impl NamedLocks {
    fn name_of(&self, key: &str) -> String {
        lock_name(&format!("{}{key}", self.namespace))
    }
}

/// One MySQL connection holding named locks.
struct NamedLockSession {
    conn: MysqlConnection,
    /// Names this session holds: a second key with the same name (a digest collision of
    /// two long keys) is refused instead of re-entering the lock.
    held: HashSet<String>,
    /// A failed batch could not give back what it took: the session reports itself dead, so
    /// it is replaced and the server releases those locks with it.
    poisoned: bool,
}

impl NamedLockSession {
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

    /// `GET_LOCK(name, 0)` for every name of `names`, at most
    /// [`MAX_LOCKS_PER_STATEMENT`] per `SELECT`; element `i` answers `names[i]`.
    fn try_names(&mut self, names: &[String]) -> Result<Vec<bool>, String> {
        let mut answers = vec![false; names.len()];
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

    /// `RELEASE_LOCK(name)`: `true` when this session held it.
    fn release_name(&mut self, name: &str) -> Result<bool, String> {
        let released = Statement::new(RELEASE)
            .bind(name)
            .returning::<Nullable<BigInt>>()
            .get_result::<Option<i64>>(&mut self.conn)
            .map_err(|err| error_chain(&err))?;
        self.held.remove(name);
        Ok(released == Some(1))
    }
}

impl LockSql for NamedLocks {
    type Session = NamedLockSession;
    const NAME: &'static str = NAME;

    fn open_session(&self) -> Result<NamedLockSession, String> {
        let conn = self
            .locator
            .establish(&self.options)
            .map_err(|err| err.to_string())?;
        Ok(NamedLockSession {
            conn,
            held: HashSet::new(),
            poisoned: false,
        })
    }

    /// [`MAX_LOCKS_PER_STATEMENT`] `GET_LOCK`s per round trip.
    fn try_lock_many(
        &self,
        session: &mut NamedLockSession,
        keys: &[String],
    ) -> Result<Vec<bool>, String> {
        let names: Vec<String> = keys.iter().map(|key| self.name_of(key)).collect();
        session.try_names(&names)
    }

    fn unlock(&self, session: &mut NamedLockSession, key: &str) -> Result<bool, String> {
        session.release_name(&self.name_of(key))
    }

    fn is_alive(&self, session: &mut NamedLockSession) -> bool {
        !session.poisoned && Statement::new(PING).execute(&mut session.conn).is_ok()
    }
}
