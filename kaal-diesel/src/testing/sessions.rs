//! Locks held by a database session — PostgreSQL advisory locks, MySQL named locks — on
//! every backend that has them: exclusion of other sessions, no re-entry, release only by
//! the holder, the ttl kept by the holder, a killed session survived, large batches, key
//! limits, claims on logged fire times given back, and the registries beside the locks. One
//! function per behaviour, over the hooks of [`SessionBackend`];
//! [`session_suite!`](crate::session_suite) runs them.
//!
//! The lock rules are kaal-diesel's [`SessionLockStore`](crate::SessionLockStore); these
//! behaviours check them through each backend's adapter against the real server, with a
//! plain connection (another session, as a Ruby node would be) to see who holds what.

use std::thread;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use kaal_core::{
    lock_key, Adapter, DefinitionRegistry, DispatchRegistry, DispatchStatus, NewDefinition,
    NodeInfo, NodeRegistry, Registration,
};

use super::{logs, SqlBackend, TempDb};

const TTL: Duration = Duration::from_secs(60);

/// What a backend's test binary supplies, beyond [`SqlBackend`], to run the session-lock
/// behaviours: its adapter, and how another session of the server sees and ends the
/// adapter's locks.
///
/// Adapters [`open_locks`](SessionBackend::open_locks) makes on one database lock the same
/// names for the same keys, and never the names of adapters on another database (MySQL's
/// named locks are server-wide: its hooks give each database its own namespace), so the
/// tests of one binary run in parallel. The other hooks name a key's lock as those adapters
/// do.
pub trait SessionBackend: SqlBackend {
    /// The session-lock adapter under test.
    type Locks: Adapter;

    /// The adapter's [`name`](Adapter::name), which begins its error and log messages
    /// (`PostgreSQL advisory`, `MySQL named lock`).
    const LOCKS_NAME: &'static str;

    /// How many keys the many-locks behaviour takes in one `acquire_many` call.
    const MANY_LOCKS: usize = 2_000;

    /// A new adapter (its own lock session and pool) on the migrated database at `locator`.
    fn open_locks(&self, locator: &str) -> Self::Locks;

    /// How many locks `locks` holds now (its `held_count()`).
    fn held_count(locks: &Self::Locks) -> usize;

    /// Whether another session — a plain connection, as a Ruby node — could take the lock of
    /// `key` right now (it takes the lock and gives it back, or asks without taking it).
    fn free_for_others(&self, db: &TempDb<Self>, key: &str) -> bool;

    /// The server's id of the session holding the lock of `key` (a backend pid, a
    /// connection id), `None` when no session holds it.
    fn holder_of(&self, db: &TempDb<Self>, key: &str) -> Option<String>;

    /// Ends the session `session` (an id [`holder_of`](SessionBackend::holder_of) gave) from
    /// another connection, as an operator or a failing network would (`pg_terminate_backend`,
    /// `KILL`). May return before the server has released the session's locks.
    fn kill_session(&self, db: &TempDb<Self>, session: &str);
}

/// How long [`wait_until`] waits for the server.
const SERVER_DEADLINE: Duration = Duration::from_secs(10);

/// Waits until `condition` holds — for what the server does in its own time, such as
/// ending a session and releasing its locks — and fails with `what` if it does not within
/// [`SERVER_DEADLINE`].
fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + SERVER_DEADLINE;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "{what} (waited {SERVER_DEADLINE:?})"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

fn strings(keys: &[&str]) -> Vec<String> {
    keys.iter().map(|key| key.to_string()).collect()
}

/// A lock an adapter holds cannot be taken by another session of the server until the
/// adapter releases it; a key over 64 characters too (MySQL hashes its name).
pub fn a_held_lock_excludes_other_sessions<B: SessionBackend>(backend: &B) {
    let db = TempDb::migrated_on(backend);
    let a = backend.open_locks(db.locator());
    let long = format!("kaal:dispatch:{}:1767225600", "job".repeat(30));
    for key in ["kaal:dispatch:report:1767225600", long.as_str()] {
        assert!(backend.free_for_others(&db, key), "{key}: held too soon");
        assert_eq!(backend.holder_of(&db, key), None);
        assert!(a.acquire(key, TTL).unwrap());
        assert!(
            !backend.free_for_others(&db, key),
            "{key}: another session could take it"
        );
        assert!(backend.holder_of(&db, key).is_some(), "{key}: no holder");
        assert!(a.release(key).unwrap());
        assert!(
            backend.free_for_others(&db, key),
            "{key}: the release left it held"
        );
        assert_eq!(backend.holder_of(&db, key), None);
    }
}

/// No re-entry: an adapter does not take a key it holds (although the server would grant
/// it to the same session), alone or in a batch, nor does another adapter of the process;
/// one release frees it.
pub fn acquire_of_a_held_key_from_the_same_process_returns_false<B: SessionBackend>(backend: &B) {
    let db = TempDb::migrated_on(backend);
    let a = backend.open_locks(db.locator());
    let b = backend.open_locks(db.locator());
    assert!(a.acquire("mine", TTL).unwrap());
    assert!(
        !a.acquire("mine", TTL).unwrap(),
        "the same adapter re-entered"
    );
    assert_eq!(a.acquire_many(&strings(&["mine"]), TTL).unwrap(), [false]);
    assert!(
        !b.acquire("mine", TTL).unwrap(),
        "another adapter of this process"
    );
    assert_eq!(B::held_count(&a), 1);
    // One release frees it: the server counted no second grant.
    assert!(a.release("mine").unwrap());
    assert!(
        backend.free_for_others(&db, "mine"),
        "the server counted a second grant"
    );
    assert!(b.acquire("mine", TTL).unwrap());
}

/// A release from an adapter that does not hold the key answers `false` and leaves the
/// lock with its holder, which alone can release it.
pub fn release_from_another_adapter_returns_false_and_leaves_the_lock_held<B: SessionBackend>(
    backend: &B,
) {
    let db = TempDb::migrated_on(backend);
    let holder = backend.open_locks(db.locator());
    let other = backend.open_locks(db.locator());
    assert!(holder.acquire("held", TTL).unwrap());
    assert!(!other.release("held").unwrap());
    assert!(
        !other.acquire("held", TTL).unwrap(),
        "the lock was released"
    );
    assert!(!backend.free_for_others(&db, "held"));
    assert!(holder.release("held").unwrap());
    assert!(other.acquire("held", TTL).unwrap());
}

/// A lock session killed from outside: the server releases its locks (another adapter
/// takes one at once); the adapter's next operation logs an error naming the adapter and
/// the locks lost, opens a new session and carries on; the lost locks are no longer counted
/// or released, and can be taken again.
pub fn a_killed_lock_session_is_reported_replaced_and_its_locks_treated_as_lost<
    B: SessionBackend,
>(
    backend: &B,
) {
    logs::capture();
    let db = TempDb::migrated_on(backend);
    let a = backend.open_locks(db.locator());
    let b = backend.open_locks(db.locator());
    assert!(a.acquire("k1", TTL).unwrap());
    assert_eq!(
        a.acquire_many(&strings(&["k2", "k3"]), TTL).unwrap(),
        [true, true]
    );
    let lost = ["k1", "k2", "k3"];
    let victim = backend.holder_of(&db, "k1").expect("k1 is held");
    for key in lost {
        assert_eq!(
            backend.holder_of(&db, key).as_deref(),
            Some(victim.as_str()),
            "one session holds all"
        );
    }
    backend.kill_session(&db, &victim);
    wait_until("the killed session's locks stayed held", || {
        lost.iter().all(|key| backend.holder_of(&db, key).is_none())
    });
    // The server released the locks with the session: b takes one at once.
    assert!(b.acquire("k1", TTL).unwrap());
    // a's next operation notices, logs, reconnects and carries on.
    assert!(a.acquire("k4", TTL).unwrap(), "a did not recover");
    let reported = logs::matching(log::Level::Error, "lock session was lost");
    assert!(
        reported.iter().any(
            |message| message.starts_with(&format!("{}: ", B::LOCKS_NAME))
                && message.contains("3 lock(s)")
        ),
        "the lost session was not reported: {reported:?}"
    );
    assert_eq!(
        B::held_count(&a),
        1,
        "the lost locks are still counted as held"
    );
    assert!(!a.release("k2").unwrap(), "a lost lock was released");
    assert!(
        a.acquire("k2", TTL).unwrap(),
        "a lost lock cannot be taken again"
    );
    assert!(!b.acquire("k4", TTL).unwrap());
    let replacement = backend.holder_of(&db, "k4").expect("k4 is held");
    assert_ne!(replacement, victim, "the killed session still holds locks");
    assert_eq!(
        backend.holder_of(&db, "k2"),
        Some(replacement),
        "one new session holds all"
    );
}

/// Locks held past their ttl — one, and a batch — are released by their holder's reaper
/// (no operation of the adapter needed) while a longer one stays held; the holder no longer
/// counts or releases them.
pub fn a_lock_past_its_ttl_is_released_by_its_holder<B: SessionBackend>(backend: &B) {
    let db = TempDb::migrated_on(backend);
    let a = backend.open_locks(db.locator());
    let short = Duration::from_millis(300);
    assert!(a.acquire("short", short).unwrap());
    let batch: Vec<String> = (0..50).map(|i| format!("short-batch-{i}")).collect();
    assert!(a
        .acquire_many(&batch, short)
        .unwrap()
        .into_iter()
        .all(|won| won));
    assert!(a.acquire("long", TTL).unwrap());
    assert!(!backend.free_for_others(&db, "short"));
    // Waiting out the ttl is the point here; the reaper runs on its own thread, within half
    // a second of a ttl.
    thread::sleep(short);
    wait_until("the reaper did not release it", || {
        backend.free_for_others(&db, "short")
    });
    wait_until("the reaper's batch left a lock held", || {
        batch.iter().all(|key| backend.free_for_others(&db, key))
    });
    assert!(
        !backend.free_for_others(&db, "long"),
        "a live lock was released"
    );
    assert_eq!(B::held_count(&a), 1);
    assert!(!a.release("short").unwrap());
}

/// One `acquire_many` call takes many locks ([`MANY_LOCKS`](SessionBackend::MANY_LOCKS));
/// another adapter's batch then takes none of them, and a mixed batch answers per key (a
/// repeated key once).
pub fn a_batch_of_many_locks_is_taken_in_one_call_and_excludes_others<B: SessionBackend>(
    backend: &B,
) {
    let db = TempDb::migrated_on(backend);
    let a = backend.open_locks(db.locator());
    let b = backend.open_locks(db.locator());
    let keys: Vec<String> = (0..B::MANY_LOCKS)
        .map(|i| format!("kaal:dispatch:job:{i}"))
        .collect();
    assert!(a.acquire_many(&keys, TTL).unwrap().iter().all(|w| *w));
    assert_eq!(B::held_count(&a), B::MANY_LOCKS);
    assert!(b.acquire_many(&keys, TTL).unwrap().iter().all(|w| !*w));
    assert!(!backend.free_for_others(&db, &keys[B::MANY_LOCKS - 1]));
    let mixed = strings(&["kaal:dispatch:job:1", "fresh", "fresh"]);
    assert_eq!(b.acquire_many(&mixed, TTL).unwrap(), [false, true, false]);
    assert_eq!(B::held_count(&b), 1);
}

/// A key over 255 bytes (in bytes, not characters) is refused with a message naming the
/// adapter, the operation and the key, alone or in a batch, and nothing of the batch is
/// taken; a key of 255 bytes is taken.
pub fn a_key_over_255_bytes_is_a_clear_error<B: SessionBackend>(backend: &B) {
    let db = TempDb::migrated_on(backend);
    let a = backend.open_locks(db.locator());
    let ascii = "k".repeat(256);
    // 128 characters: a limit that counts characters would take it.
    let accented = "é".repeat(128);
    for key in [&ascii, &accented] {
        let err = a.acquire(key, TTL).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{} acquire failed for {key}: ", B::LOCKS_NAME)),
            "{err}"
        );
        assert!(err.contains("256 bytes"), "{err}");
        let batch = vec!["fine".to_string(), key.clone()];
        let err = a.acquire_many(&batch, TTL).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "{} batch acquire failed for {key}: ",
                B::LOCKS_NAME
            )),
            "{err}"
        );
        assert!(err.contains("256 bytes"), "{err}");
    }
    assert_eq!(B::held_count(&a), 0);
    assert!(
        backend.free_for_others(&db, "fine"),
        "a refused batch took a lock"
    );
    let widest = "k".repeat(255);
    assert!(a.acquire(&widest, TTL).unwrap());
    assert!(!backend.free_for_others(&db, &widest));
}

/// A claim won by `acquire` on a fire time its previous holder logged before its session
/// ended is given back (`false`, nothing held, the lock free); a fire time nobody logged is
/// claimed as usual. The batch claim leaves that check to the coordinator.
pub fn a_claim_on_a_fire_time_its_dead_holder_logged_is_given_back<B: SessionBackend>(backend: &B) {
    let db = TempDb::migrated_on(backend);
    let fire = Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap();
    let key = lock_key("kaal", "report", fire);
    {
        // The holder claims, logs, and its process ends (session and locks gone).
        let holder = backend.open_locks(db.locator());
        assert!(holder.acquire(&key, TTL).unwrap());
        holder
            .dispatch_registry()
            .unwrap()
            .log_dispatch("report", fire, "holder", DispatchStatus::Dispatched)
            .unwrap();
    }
    // The server ends the closed session in its own time.
    wait_until("the dead holder's lock stayed held", || {
        backend.free_for_others(&db, &key)
    });
    let late = backend.open_locks(db.locator());
    assert!(!late.acquire(&key, TTL).unwrap());
    assert_eq!(B::held_count(&late), 0, "the claim was not given back");
    assert!(backend.free_for_others(&db, &key));
    // A fire time nobody logged is claimed as usual.
    let next = lock_key("kaal", "report", fire + chrono::Duration::minutes(1));
    assert!(late.acquire(&next, TTL).unwrap());
    // The batch claim is not confirmed: the coordinator reads the log for what it wins.
    assert_eq!(late.acquire_many(&[key], TTL).unwrap(), [true]);
}

/// The dispatch log, the definitions and the node registrations of the adapter are the
/// database's tables: what it writes, another store on the database (and plain SQL) reads.
pub fn the_registries_are_the_databases_tables<B: SessionBackend>(backend: &B) {
    let db = TempDb::migrated_on(backend);
    let a = backend.open_locks(db.locator());
    assert_eq!(a.name(), B::LOCKS_NAME);
    let other = db.open();
    let key = backend.quote("key");

    let fire = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    a.dispatch_registry()
        .expect("a dispatch log")
        .log_dispatch("job", fire, "node-a", DispatchStatus::Failed)
        .unwrap();
    assert_eq!(
        db.text(&format!(
            "SELECT node_id AS value FROM kaal_dispatches WHERE {key} = 'job'"
        )),
        "node-a"
    );
    let record = other.find_dispatch("job", fire).unwrap().expect("logged");
    assert_eq!(record.status, DispatchStatus::Failed);

    a.definition_registry()
        .expect("a definition registry")
        .upsert_definition("kaal", NewDefinition::new("report", "0 9 * * *"))
        .unwrap();
    assert_eq!(
        db.text(&format!(
            "SELECT cron AS value FROM kaal_definitions WHERE {key} = 'report'"
        )),
        "0 9 * * *"
    );
    let definitions = other.all_definitions("kaal").unwrap();
    assert_eq!(definitions.len(), 1);
    assert_eq!(definitions[0].cron, "0 9 * * *");

    let node = NodeInfo {
        namespace: "kaal".into(),
        node_id: "node-a".into(),
        instance: "instance-1".into(),
        host: "host".into(),
        pid: 1,
        version: "0.0.0".into(),
    };
    let registration = a
        .node_registry()
        .expect("a node registry")
        .register_node(&node, TTL)
        .unwrap();
    assert!(
        matches!(registration, Registration::Registered { .. }),
        "{registration:?}"
    );
    let nodes = other.nodes("kaal").unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].instance, "instance-1");
}
