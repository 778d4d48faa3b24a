//! The lease table on every SQL backend: the claim, expiry decided by the database's clock
//! whatever a node's clock says, release, the batch form, key limits, races between pools
//! and pruning. One function per behaviour; [`lease_suite!`](crate::lease_suite) runs them.

use std::collections::HashMap;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use chrono::{NaiveDateTime, TimeDelta};
use kaal_core::{Adapter, OffsetClock};

use super::{SqlBackend, TempDb};
use crate::{Dialect, DieselStore};

const TTL: Duration = Duration::from_secs(60);

/// The backend's name in messages (`SQLite`, `PostgreSQL`, `MySQL`).
fn name<B: SqlBackend>() -> &'static str {
    <B::Dialect as Dialect>::NAME
}

/// A node on `db` whose own clock is `minutes` off.
fn node_with_clock<B: SqlBackend>(db: &TempDb<B>, minutes: i64) -> DieselStore<B::Dialect> {
    db.open().with_clock(Arc::new(OffsetClock {
        offset: TimeDelta::minutes(minutes),
    }))
}

/// `WHERE "key" = 'key'`, quoted as the backend quotes.
fn where_key<B: SqlBackend>(db: &TempDb<B>, key: &str) -> String {
    format!("WHERE {} = '{key}'", db.backend().quote("key"))
}

/// Seconds from the database's now to the `expires_at` of `key`, to the millisecond.
fn seconds_left<B: SqlBackend>(db: &TempDb<B>, key: &str) -> f64 {
    let backend = db.backend();
    let seconds = backend.seconds_until("expires_at");
    let left = db.text(&format!(
        "SELECT {} AS value FROM kaal_locks {}",
        backend.cast_text(&format!("ROUND({seconds}, 3)")),
        where_key(db, key)
    ));
    left.parse()
        .unwrap_or_else(|err| panic!("seconds left of {key}: {left}: {err}"))
}

/// Asserts that the lease of `key` ends a ttl (60 s) from the database's now.
fn assert_ends_a_ttl_from_now<B: SqlBackend>(db: &TempDb<B>, key: &str) {
    let left = seconds_left(db, key);
    assert!(
        (55.0..=60.0).contains(&left),
        "{key}: the lease ends {left} s from the database's now, not a ttl (60 s)"
    );
}

/// Inserts a lease row for `key` as another node would, with SQL expressions for its times.
fn insert_lease<B: SqlBackend>(db: &TempDb<B>, key: &str, acquired_at: &str, expires_at: &str) {
    db.exec(&format!(
        "INSERT INTO kaal_locks ({}, acquired_at, expires_at) VALUES ('{key}', {acquired_at}, {expires_at})",
        db.backend().quote("key")
    ));
}

/// A lease that expired in 2020.
fn insert_expired<B: SqlBackend>(db: &TempDb<B>, key: &str) {
    insert_lease(db, key, "'2020-01-01 00:00:00'", "'2020-01-01 00:00:10'");
}

/// The keys of every lease, sorted.
fn lease_keys<B: SqlBackend>(db: &TempDb<B>) -> Vec<String> {
    let mut keys = db.texts(&format!(
        "SELECT {} AS value FROM kaal_locks",
        db.backend().quote("key")
    ));
    keys.sort();
    keys
}

/// The `(acquired_at, expires_at)` of `key`'s lease.
fn lease_times<B: SqlBackend>(db: &TempDb<B>, key: &str) -> (NaiveDateTime, NaiveDateTime) {
    let backend = db.backend();
    let column = |column: &str| {
        let text = db.text(&format!(
            "SELECT {} AS value FROM kaal_locks {}",
            backend.cast_text(column),
            where_key(db, key)
        ));
        NaiveDateTime::parse_from_str(&text, "%Y-%m-%d %H:%M:%S%.f")
            .unwrap_or_else(|err| panic!("{key}: {column} = {text}: {err}"))
    };
    (column("acquired_at"), column("expires_at"))
}

fn strings(keys: &[&str]) -> Vec<String> {
    keys.iter().map(|key| key.to_string()).collect()
}

/// Acquire, no re-entry, release (true once), acquire again; the lease ends a ttl after
/// the database's now.
pub fn acquire_release_and_reacquire<B: SqlBackend>(backend: &B) {
    let db = TempDb::migrated_on(backend);
    let store = db.open();
    assert!(store.acquire("k", TTL).unwrap());
    assert!(
        !store.acquire("k", TTL).unwrap(),
        "re-entry must be refused"
    );
    assert!(store.release("k").unwrap());
    assert!(!store.release("k").unwrap());
    assert!(store.acquire("k", TTL).unwrap());
    assert_ends_a_ttl_from_now(&db, "k");
}

/// A row whose lease expired long ago is taken over at once; the new lease ends a ttl from
/// the database's now and is live; the row is reused.
pub fn expired_lease_is_taken_over_without_waiting<B: SqlBackend>(backend: &B) {
    let db = TempDb::migrated_on(backend);
    let store = db.open();
    insert_lease(
        &db,
        "stale",
        "'2020-01-01 00:00:00'",
        "'2020-01-01 00:02:05'",
    );
    assert!(store.acquire("stale", TTL).unwrap());
    // The taken-over lease must end in the future: a ttl from now.
    assert_ends_a_ttl_from_now(&db, "stale");
    assert!(
        !store.acquire("stale", TTL).unwrap(),
        "the new lease is live"
    );
    assert_eq!(db.count("kaal_locks"), 1);
}

/// Releasing a lease that has expired answers `false` (it was no longer held) and deletes
/// the row.
pub fn release_of_an_expired_lease_returns_false_and_clears_the_row<B: SqlBackend>(backend: &B) {
    let db = TempDb::migrated_on(backend);
    let store = db.open();
    insert_expired(&db, "old");
    assert!(!store.release("old").unwrap());
    assert_eq!(db.count("kaal_locks"), 0);
}

/// `acquire_many` answers per key in input order: free and expired keys won, held ones
/// not, a repeated key once; every lease it takes carries real times a ttl apart.
pub fn acquire_many_answers_in_input_order_for_free_held_expired_and_repeated_keys<
    B: SqlBackend,
>(
    backend: &B,
) {
    let db = TempDb::migrated_on(backend);
    let store = db.open();
    assert!(store.acquire("held", TTL).unwrap());
    insert_expired(&db, "expired");
    let keys = strings(&["free", "held", "expired", "free-2"]);
    assert_eq!(
        store.acquire_many(&keys, TTL).unwrap(),
        [true, false, true, true]
    );
    assert_eq!(store.acquire_many(&keys, TTL).unwrap(), [false; 4]);
    assert!(store.acquire_many(&[], TTL).unwrap().is_empty());
    let twice = strings(&["dup", "dup"]);
    assert_eq!(store.acquire_many(&twice, TTL).unwrap(), [true, false]);
    let around = strings(&["dup-2", "b", "dup-2"]);
    assert_eq!(
        store.acquire_many(&around, TTL).unwrap(),
        [true, true, false]
    );
    // Every lease taken by a batch carries its real times, never a marker.
    assert_eq!(
        db.text(&format!(
            "SELECT {} AS value FROM kaal_locks WHERE acquired_at < '2000-01-01'",
            backend.cast_text("COUNT(*)")
        )),
        "0"
    );
    for key in ["free", "expired", "dup", "dup-2"] {
        assert_ends_a_ttl_from_now(&db, key);
        let (acquired, expires) = lease_times(&db, key);
        assert_eq!(
            (expires - acquired).num_microseconds(),
            Some(60_000_000),
            "{key}: acquired_at + ttl != expires_at"
        );
    }
}

/// One `acquire_many` call takes a large batch (the backend's
/// [`LARGE_BATCH`](SqlBackend::LARGE_BATCH)); the same call again, from this store or
/// another, takes nothing.
pub fn acquire_many_takes_a_large_batch_in_one_call<B: SqlBackend>(backend: &B) {
    let db = TempDb::migrated_on(backend);
    let store = db.open();
    let n = B::LARGE_BATCH;
    let keys: Vec<String> = (0..n).map(|i| format!("kaal:dispatch:job:{i}")).collect();
    assert!(store.acquire_many(&keys, TTL).unwrap().iter().all(|w| *w));
    assert_eq!(db.count("kaal_locks"), n);
    assert!(store.acquire_many(&keys, TTL).unwrap().iter().all(|w| !*w));
    assert!(db
        .open()
        .acquire_many(&keys, TTL)
        .unwrap()
        .iter()
        .all(|w| !*w));
}

/// Without the tables, a claim is a lock error naming the backend and the key, saying to
/// run the migrations; the batch form names its first key.
pub fn acquire_on_an_unmigrated_database_is_a_lock_error_naming_the_key<B: SqlBackend>(
    backend: &B,
) {
    let db = TempDb::empty_on(backend);
    let store = db.open();
    let err = store
        .acquire("kaal:dispatch:a:60", TTL)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!(
            "{} acquire failed for kaal:dispatch:a:60: ",
            name::<B>()
        )),
        "{err}"
    );
    assert!(err.contains("run the migrations"), "{err}");
    let err = store
        .acquire_many(&strings(&["a"]), TTL)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!("{} batch acquire failed for a: ", name::<B>())),
        "{err}"
    );
}

/// A key of more than 255 bytes (ASCII or not) is refused, alone or in a batch, with an
/// error naming the key and its length; nothing is written, nor is any key cut. 255 bytes
/// of multibyte characters fit.
pub fn a_key_over_255_bytes_is_a_clear_error_and_nothing_is_written<B: SqlBackend>(backend: &B) {
    let db = TempDb::migrated_on(backend);
    let store = db.open();
    let ascii = "k".repeat(256);
    // 128 characters: a varchar(255) that counts characters would take it.
    let accented = "é".repeat(128);
    for key in [&ascii, &accented] {
        let err = store.acquire(key, TTL).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{} acquire failed for ", name::<B>())),
            "{err}"
        );
        assert!(
            err.contains("256 bytes") && err.contains("at most 255"),
            "{err}"
        );
        let batch = vec!["fine".to_string(), key.clone()];
        let err = store.acquire_many(&batch, TTL).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{} batch acquire failed for ", name::<B>())),
            "{err}"
        );
        assert!(err.contains("256 bytes"), "{err}");
    }
    let long = format!("kaal:dispatch:{}:1767225600", "x".repeat(250));
    let err = store.acquire(&long, TTL).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "{} acquire failed for kaal:dispatch:xxx",
            name::<B>()
        )),
        "{err}"
    );
    assert!(err.contains("275 bytes"), "{err}");
    assert!(err.contains("never truncated"), "{err}");
    let batch = vec!["ok".to_string(), long.clone()];
    let err = store.acquire_many(&batch, TTL).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "{} batch acquire failed for kaal:dispatch:xxx",
            name::<B>()
        )),
        "{err}"
    );
    assert_eq!(db.count("kaal_locks"), 0, "nothing may be written, nor cut");
    let fits = format!("kaal:{}", "é".repeat(125));
    assert_eq!(fits.len(), 255);
    assert!(store.acquire(&fits, TTL).unwrap());
    let fits = format!("{}k", "é".repeat(127));
    assert_eq!(fits.len(), 255);
    assert!(store.acquire(&fits, TTL).unwrap());
    assert_eq!(db.count("kaal_locks"), 2);
}

/// By a node's clock five minutes fast, a live lease ended four minutes ago; the database's
/// clock decides, so that node can take neither it nor a lease a Ruby node wrote (ending 60 s
/// from the database's now), and its own leases end a ttl after the database's now.
pub fn a_node_whose_clock_runs_five_minutes_fast_cannot_take_over_a_live_lease<B: SqlBackend>(
    backend: &B,
) {
    let db = TempDb::migrated_on(backend);
    let holder = db.open();
    let fast = node_with_clock(&db, 5);
    assert!(holder.acquire("kaal:dispatch:report:60", TTL).unwrap());
    assert!(!fast.acquire("kaal:dispatch:report:60", TTL).unwrap());
    assert_eq!(
        fast.acquire_many(&strings(&["kaal:dispatch:report:60"]), TTL)
            .unwrap(),
        [false]
    );
    // A lease a Ruby node wrote, ending 60 s from now by the database's clock.
    insert_lease(&db, "ruby", &backend.now_plus(0), &backend.now_plus(60));
    assert!(!fast.acquire("ruby", TTL).unwrap());
    assert!(!holder.acquire("ruby", TTL).unwrap());
    assert!(!db.open().acquire("ruby", TTL).unwrap());
    assert_eq!(
        fast.acquire_many(&strings(&["ruby"]), TTL).unwrap(),
        [false]
    );
    assert_eq!(
        holder.acquire_many(&strings(&["ruby"]), TTL).unwrap(),
        [false]
    );
    assert!(!fast.release("never-held").unwrap());
    // Its own leases end ttl after the database's now, not after its clock's.
    assert!(fast.acquire("fast-own", TTL).unwrap());
    assert_ends_a_ttl_from_now(&db, "fast-own");
    assert!(!holder.acquire("fast-own", TTL).unwrap());
}

/// By a node's clock five minutes slow, its 1 s leases would last five minutes more; by the
/// database's they end after one second, and another node takes them then.
pub fn a_node_whose_clock_runs_five_minutes_slow_does_not_keep_a_lease_past_its_ttl<
    B: SqlBackend,
>(
    backend: &B,
) {
    let db = TempDb::migrated_on(backend);
    let slow = node_with_clock(&db, -5);
    let other = db.open();
    let short = Duration::from_secs(1);
    assert!(slow.acquire("short", short).unwrap());
    assert_eq!(
        slow.acquire_many(&strings(&["short-batch"]), short)
            .unwrap(),
        [true]
    );
    // The lease ends at the database's now + ttl, not at the slow node's.
    let left = seconds_left(&db, "short");
    assert!(
        left <= 1.0 && left > -2.0,
        "expires_at is {left} s from the database's now, not 1 s"
    );
    assert!(!other.acquire("short", short).unwrap());
    thread::sleep(Duration::from_millis(1_200));
    assert!(
        other.acquire("short", TTL).unwrap(),
        "the slow node kept its lease past the ttl"
    );
    assert_eq!(
        other.acquire_many(&strings(&["short-batch"]), TTL).unwrap(),
        [true]
    );
    assert!(!slow.acquire("short", TTL).unwrap());
}

/// 16 pools race for each key: free keys claimed alone, then free keys and expired leases
/// with half the pools claiming alone and half in a batch. Every key has one winner.
pub fn sixteen_pools_racing_for_each_key_have_one_winner<B: SqlBackend>(backend: &B) {
    let db = TempDb::migrated_on(backend);
    for i in 0..5 {
        insert_lease(
            &db,
            &format!("expired-{i}"),
            "'2020-01-01 00:00:00'",
            "'2020-01-01 00:00:00'",
        );
    }
    let stores: Vec<_> = (0..16).map(|_| Arc::new(db.open())).collect();
    for round in 0..10 {
        race(&stores, format!("race-{round}"), false);
    }
    for i in 0..5 {
        race(&stores, format!("free-{i}"), true);
        race(&stores, format!("expired-{i}"), true);
    }
}

/// Every store of `stores` claims `key` at once (half of them in a batch when `mixed`);
/// asserts that one won.
fn race<D: Dialect>(stores: &[Arc<DieselStore<D>>], key: String, mixed: bool) {
    let barrier = Arc::new(Barrier::new(stores.len()));
    let handles: Vec<_> = stores
        .iter()
        .enumerate()
        .map(|(i, store)| {
            let (store, barrier, key) = (store.clone(), barrier.clone(), key.clone());
            thread::spawn(move || {
                barrier.wait();
                if mixed && i % 2 == 1 {
                    store.acquire_many(&[key], TTL).expect("batch failed")[0]
                } else {
                    store.acquire(&key, TTL).expect("acquire failed")
                }
            })
        })
        .collect();
    let winners = handles
        .into_iter()
        .map(|h| h.join().expect("thread panicked"))
        .filter(|won| *won)
        .count();
    assert_eq!(winners, 1, "{key}: {winners} winners");
}

/// Batches racing over the same keys neither deadlock nor share a key: two nodes claiming
/// 500 keys in batches, one forwards and one backwards; four nodes claiming overlapping
/// windows, half of them expired leases, in opposite orders, many times; and a node
/// claiming key by key against one claiming in batches.
pub fn overlapping_batches_in_opposite_orders_neither_deadlock_nor_share_a_key<B: SqlBackend>(
    backend: &B,
) {
    forwards_and_backwards(backend);
    overlapping_windows(backend);
    single_against_batches(backend);
}

/// Two nodes claim the same 500 keys in batches of 50, one forwards, one backwards: each
/// key is won once (the statements sort their keys, so row locks are taken in one order).
fn forwards_and_backwards<B: SqlBackend>(backend: &B) {
    let db = TempDb::migrated_on(backend);
    let keys: Vec<String> = (0..500)
        .map(|i| format!("kaal:dispatch:two-hosts:{i:03}"))
        .collect();
    let barrier = Arc::new(Barrier::new(2));
    let run = |reverse: bool| {
        let (store, mut keys, barrier) = (Arc::new(db.open()), keys.clone(), barrier.clone());
        if reverse {
            keys.reverse();
        }
        thread::spawn(move || {
            barrier.wait();
            keys.chunks(50)
                .flat_map(|chunk| {
                    let won = store.acquire_many(chunk, TTL).expect("batch failed");
                    chunk.iter().cloned().zip(won).collect::<Vec<_>>()
                })
                .collect::<Vec<(String, bool)>>()
        })
    };
    let (a, b) = (run(false), run(true));
    let mut winners: HashMap<String, usize> = HashMap::new();
    for (key, won) in a.join().unwrap().into_iter().chain(b.join().unwrap()) {
        *winners.entry(key).or_default() += usize::from(won);
    }
    assert_eq!(winners.len(), 500);
    assert!(winners.values().all(|n| *n == 1), "{winners:?}");
    assert_eq!(db.count("kaal_locks"), 500);
}

/// Four nodes claim overlapping windows of keys, half of them expired leases, in opposite
/// orders, 20 rounds: every key is won once and no call fails.
fn overlapping_windows<B: SqlBackend>(backend: &B) {
    let db = TempDb::migrated_on(backend);
    let values: Vec<String> = (0..400)
        .step_by(2)
        .map(|i| format!("('k{i:03}', '2020-01-01 00:00:00', '2020-01-01 00:00:00')"))
        .collect();
    db.exec(&format!(
        "INSERT INTO kaal_locks ({}, acquired_at, expires_at) VALUES {}",
        backend.quote("key"),
        values.join(", ")
    ));
    let stores: Vec<_> = (0..4).map(|_| Arc::new(db.open())).collect();
    let barrier = Arc::new(Barrier::new(stores.len()));
    let handles: Vec<_> = stores
        .iter()
        .enumerate()
        .map(|(n, store)| {
            let (store, barrier) = (store.clone(), barrier.clone());
            thread::spawn(move || {
                let mut won = Vec::new();
                for round in 0..20 {
                    let start = (round * 20 + n * 7) % 380;
                    let mut keys: Vec<String> =
                        (start..start + 20).map(|i| format!("k{i:03}")).collect();
                    if n % 2 == 1 {
                        keys.reverse();
                    }
                    barrier.wait();
                    let answers = store.acquire_many(&keys, TTL).expect("batch failed");
                    won.extend(
                        keys.into_iter()
                            .zip(answers)
                            .filter(|(_, w)| *w)
                            .map(|(k, _)| k),
                    );
                }
                won
            })
        })
        .collect();
    let mut all: Vec<String> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let total = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), total, "a key was won twice");
}

/// Two "hosts": separate pools on one database, one claiming key by key, the other in
/// batches of 25, over the same 400 keys at the same time: each key won by exactly one.
fn single_against_batches<B: SqlBackend>(backend: &B) {
    let db = TempDb::migrated_on(backend);
    let keys: Vec<String> = (0..400)
        .map(|i| format!("kaal:dispatch:two-hosts:{i}"))
        .collect();
    let barrier = Arc::new(Barrier::new(2));
    let single_wins = {
        let (store, keys, barrier) = (db.open(), keys.clone(), barrier.clone());
        thread::spawn(move || {
            barrier.wait();
            keys.iter()
                .map(|key| store.acquire(key, TTL).expect("acquire failed"))
                .collect::<Vec<bool>>()
        })
    };
    let batch_wins = {
        let (store, keys, barrier) = (db.open(), keys.clone(), barrier.clone());
        thread::spawn(move || {
            barrier.wait();
            keys.chunks(25)
                .flat_map(|chunk| store.acquire_many(chunk, TTL).expect("batch failed"))
                .collect::<Vec<bool>>()
        })
    };
    let single_wins = single_wins.join().expect("thread panicked");
    let batch_wins = batch_wins.join().expect("thread panicked");
    for (i, key) in keys.iter().enumerate() {
        assert!(
            single_wins[i] ^ batch_wins[i],
            "{key}: single={} batch={}",
            single_wins[i],
            batch_wins[i]
        );
    }
    assert_eq!(db.count("kaal_locks"), 400);
}

/// A batch claim deletes the leases that expired over an hour ago by the database's clock
/// (a node whose clock runs two hours fast must not delete live ones), and does so at most
/// once a minute per store.
pub fn batch_claims_delete_leases_expired_over_an_hour_ago_at_most_once_a_minute<B: SqlBackend>(
    backend: &B,
) {
    let db = TempDb::migrated_on(backend);
    // The node's clock runs two hours fast: "an hour ago" must still be the database's,
    // or pruning would delete live leases.
    let store = db.open().with_clock(Arc::new(OffsetClock {
        offset: TimeDelta::hours(2),
    }));
    insert_lease(
        &db,
        "long-expired",
        "'2020-01-01 00:00:00'",
        "'2020-01-01 00:02:05'",
    );
    insert_lease(
        &db,
        "just-expired",
        &backend.now_plus(-20 * 60),
        &backend.now_plus(-10 * 60),
    );
    assert!(store.acquire("live", TTL).unwrap());
    assert_eq!(
        store
            .acquire_many(&strings(&["kaal:dispatch:job:1"]), TTL)
            .unwrap(),
        [true]
    );
    assert_eq!(
        lease_keys(&db),
        ["just-expired", "kaal:dispatch:job:1", "live"],
        "only the lease expired over an hour ago goes"
    );
    // Within the minute the next batch does not prune again.
    insert_lease(
        &db,
        "long-expired-2",
        "'2020-01-01 00:00:00'",
        "'2020-01-01 00:02:05'",
    );
    assert_eq!(
        store
            .acquire_many(&strings(&["kaal:dispatch:job:2"]), TTL)
            .unwrap(),
        [true]
    );
    assert!(lease_keys(&db).contains(&"long-expired-2".to_string()));
}
