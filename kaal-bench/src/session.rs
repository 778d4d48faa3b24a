//! Session-lock targets (PostgreSQL advisory locks, MySQL named locks): a kaal adapter
//! holding its locks on one dedicated session, and a raw baseline — hand-written lock
//! statements on another dedicated connection ([`RawSession`]). Backends supply only the
//! raw session and how to open an adapter.

use std::any::Any;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use kaal_core::Adapter;

use crate::scenarios::warm;
use crate::target::Fixture;

/// Hand-written lock statements on one dedicated connection: the raw baseline of a
/// session-lock target. Keys are kaal keys; the session turns them into lock ids or names
/// exactly as the adapter does.
pub trait RawSession: Send {
    /// Takes `key` without waiting; whether it was granted.
    fn try_lock(&mut self, key: &str) -> bool;
    /// Gives `key` back; whether this session held it.
    fn unlock(&mut self, key: &str) -> bool;
    /// Takes every key in one statement; how many were granted.
    fn try_lock_many(&mut self, keys: &[String]) -> usize;
    /// Gives back every lock this session holds.
    fn unlock_all(&mut self);
}

/// Opens a kaal adapter (a node) on the fixture's database.
pub type OpenAdapter = Box<dyn Fn() -> Arc<dyn Adapter>>;

/// Opens a raw session on the fixture's database.
pub type OpenRaw = Box<dyn Fn() -> Box<dyn RawSession>>;

/// The adapter of a session-lock target, with the sentinel lock that tells when its
/// session is gone.
struct Current {
    adapter: Arc<dyn Adapter>,
    sentinel: String,
}

/// A session-lock store in a fresh database, with its raw baseline.
///
/// [`clear`](Fixture::clear) gives back the adapter's locks by replacing the adapter (its
/// session ends, so the server releases them all at once, as it does for a node that stops)
/// and waits until the server has: a session holds only so many PostgreSQL advisory locks,
/// so the next round must not start while the last one's are still held. It replaces the
/// raw session too, so that both sides start each measurement on a new session (with the
/// raw session kept across measurements, it came out 1.3-1.6× slower than kaal's new one
/// in every round of PostgreSQL's acquire + release; with both new, the two agree).
pub struct SessionFixture {
    open: OpenAdapter,
    open_raw: OpenRaw,
    current: Mutex<Current>,
    raw: Mutex<Box<dyn RawSession>>,
    many_label: &'static str,
    sentinels: AtomicUsize,
    /// What keeps the database alive; dropped after the adapters.
    _database: Box<dyn Any>,
}

/// How long [`SessionFixture::clear`] waits for the server to end a replaced session.
const SESSION_END: Duration = Duration::from_secs(10);

/// How long [`SessionFixture::clear`] lets a new adapter's background work finish.
const SETTLE: Duration = Duration::from_millis(20);

impl SessionFixture {
    /// A fixture whose adapters `open` opens (on a migrated database kept alive by
    /// `database`), with the raw baseline on sessions `open_raw` opens; `many_label` says
    /// what [`RawSession::try_lock_many`] sends.
    pub fn new(
        open: OpenAdapter,
        open_raw: OpenRaw,
        many_label: &'static str,
        database: Box<dyn Any>,
    ) -> Self {
        let sentinels = AtomicUsize::new(0);
        let current = Self::open_current(&open, &sentinels);
        let raw = Self::open_raw(&open_raw);
        Self {
            open,
            open_raw,
            current: Mutex::new(current),
            raw: Mutex::new(raw),
            many_label,
            sentinels,
            _database: database,
        }
    }

    /// Opens an adapter, takes its sentinel lock (held until its session ends) and warms it.
    fn open_current(open: &OpenAdapter, sentinels: &AtomicUsize) -> Current {
        let adapter = open();
        let sentinel = format!(
            "bench:sentinel:{}",
            sentinels.fetch_add(1, Ordering::Relaxed)
        );
        assert!(
            adapter
                .acquire(&sentinel, Duration::from_secs(24 * 3600))
                .expect("acquire the sentinel"),
            "the sentinel {sentinel} is free"
        );
        warm(adapter.as_ref());
        Current { adapter, sentinel }
    }

    /// Opens a raw session and prepares its statements (as the adapter's are, by
    /// [`warm`]).
    fn open_raw(open_raw: &OpenRaw) -> Box<dyn RawSession> {
        let mut raw = open_raw();
        let keys = [
            "bench:warm:raw:a".to_string(),
            "bench:warm:raw:b".to_string(),
        ];
        assert!(raw.try_lock(&keys[0]), "raw warm-up lock");
        assert!(raw.unlock(&keys[0]), "raw warm-up unlock");
        assert_eq!(raw.try_lock_many(&keys), 2, "raw warm-up batch");
        raw.unlock_all();
        raw
    }

    fn raw(&self) -> MutexGuard<'_, Box<dyn RawSession>> {
        self.raw
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn current(&self) -> MutexGuard<'_, Current> {
        self.current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Fixture for SessionFixture {
    fn adapter(&self) -> Arc<dyn Adapter> {
        self.current().adapter.clone()
    }

    fn another_node(&self) -> Arc<dyn Adapter> {
        (self.open)()
    }

    fn raw_acquire_fresh(&self, key: &str) {
        assert!(self.raw().try_lock(key), "raw lock of the free key {key}");
    }

    fn raw_acquire_held(&self, key: &str) {
        assert!(
            !self.raw().try_lock(key),
            "the raw session took {key}, held by another node"
        );
    }

    fn raw_release(&self, key: &str) {
        assert!(self.raw().unlock(key), "raw unlock of {key}");
    }

    fn raw_acquire_many(&self, keys: &[String]) {
        let won = self.raw().try_lock_many(keys);
        assert_eq!(won, keys.len(), "raw batch of free keys");
    }

    fn raw_many_label(&self) -> &'static str {
        self.many_label
    }

    fn clear(&self) {
        let mut raw = self.raw();
        // Given back before the session ends, so that none is left for the server to
        // release after this returns.
        raw.unlock_all();
        *raw = Self::open_raw(&self.open_raw);
        let replacement = Self::open_current(&self.open, &self.sentinels);
        let old = std::mem::replace(&mut *self.current(), replacement);
        assert_eq!(
            Arc::strong_count(&old.adapter),
            1,
            "a scenario still holds the adapter being replaced"
        );
        drop(old.adapter);
        // The sentinel is free once the server has ended the old session, releasing every
        // lock it held.
        let start = Instant::now();
        while !raw.try_lock(&old.sentinel) {
            assert!(
                start.elapsed() < SESSION_END,
                "the server kept a closed session's locks for {SESSION_END:?}"
            );
            thread::sleep(Duration::from_millis(1));
        }
        assert!(raw.unlock(&old.sentinel), "raw unlock of the sentinel");
        // A new pool opens a connection in the background when its first one is checked
        // out (r2d2 keeping `min_idle`); let that finish before anything is timed.
        thread::sleep(SETTLE);
    }
}
