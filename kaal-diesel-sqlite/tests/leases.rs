//! Leases on SQLite: the one-statement claim, expiry decided by the database's clock,
//! release, the batch form, and races between pools and threads.

mod common;

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use common::{exec, text, TempDb};
use kaal_core::{Adapter, OffsetClock};

const TTL: Duration = Duration::from_secs(60);

#[test]
fn acquire_release_and_reacquire() {
    let db = TempDb::migrated();
    let store = db.open();
    assert!(store.acquire("k", TTL).unwrap());
    assert!(
        !store.acquire("k", TTL).unwrap(),
        "re-entry must be refused"
    );
    assert!(store.release("k").unwrap());
    assert!(!store.release("k").unwrap());
    assert!(store.acquire("k", TTL).unwrap());
}

#[test]
fn expired_lease_is_taken_over_without_waiting() {
    let db = TempDb::migrated();
    let store = db.open();
    exec(
        &store,
        r#"INSERT INTO kaal_locks ("key", acquired_at, expires_at)
           VALUES ('stale', '2020-01-01 00:00:00', '2020-01-01 00:02:05')"#,
    );
    assert!(store.acquire("stale", TTL).unwrap());
    let expires = text(
        &store,
        r#"SELECT expires_at AS value FROM kaal_locks WHERE "key" = 'stale'"#,
    );
    let now = text(
        &store,
        "SELECT strftime('%Y-%m-%d %H:%M:%f', 'now') AS value",
    );
    assert!(
        expires > now,
        "taken-over lease must end in the future: {expires} <= {now}"
    );
    assert!(
        !store.acquire("stale", TTL).unwrap(),
        "the new lease is live"
    );
}

#[test]
fn live_lease_is_not_taken_whatever_the_nodes_clock_says() {
    // The row says the lease ends one minute from now by the database's clock (a Ruby node
    // wrote it, say, with ActiveRecord's six fraction digits). Nothing on our side consults a
    // node clock, so no node can take it.
    let db = TempDb::migrated();
    let store = db.open();
    exec(
        &store,
        r#"INSERT INTO kaal_locks ("key", acquired_at, expires_at)
           VALUES ('live', strftime('%Y-%m-%d %H:%M:%f', 'now') || '000',
                   strftime('%Y-%m-%d %H:%M:%f', 'now', '+60 seconds') || '123')"#,
    );
    assert!(!store.acquire("live", TTL).unwrap());
    assert!(!db.open().acquire("live", TTL).unwrap());
    assert_eq!(
        store.acquire_many(&["live".to_string()], TTL).unwrap(),
        [false]
    );
}

#[test]
fn short_ttl_expires_by_the_database_clock() {
    let db = TempDb::migrated();
    let first = db.open();
    let second = db.open();
    assert!(first.acquire("short", Duration::from_secs(1)).unwrap());
    assert!(!second.acquire("short", Duration::from_secs(1)).unwrap());
    thread::sleep(Duration::from_millis(1100));
    assert!(
        second.acquire("short", TTL).unwrap(),
        "the expired lease was not taken over"
    );
    assert!(!first.acquire("short", TTL).unwrap());
}

#[test]
fn release_of_an_expired_lease_returns_false_and_clears_the_row() {
    let db = TempDb::migrated();
    let store = db.open();
    exec(
        &store,
        r#"INSERT INTO kaal_locks ("key", acquired_at, expires_at)
           VALUES ('old', '2020-01-01 00:00:00', '2020-01-01 00:00:10')"#,
    );
    assert!(!store.release("old").unwrap());
    assert_eq!(
        text(&store, "SELECT count(*) AS value FROM kaal_locks"),
        "0"
    );
}

#[test]
fn lease_times_are_written_in_activerecords_format() {
    let db = TempDb::migrated();
    let store = db.open();
    assert!(store.acquire("fmt", TTL).unwrap());
    for column in ["acquired_at", "expires_at", "created_at", "updated_at"] {
        let value = text(
            &store,
            &format!(r#"SELECT {column} AS value FROM kaal_locks WHERE "key" = 'fmt'"#),
        );
        assert_eq!(value.len(), 26, "{column} = {value}");
        assert!(
            chrono::NaiveDateTime::parse_from_str(&value, "%Y-%m-%d %H:%M:%S%.6f").is_ok(),
            "{column} = {value}"
        );
    }
}

#[test]
fn acquire_many_answers_in_input_order_for_free_held_and_expired_keys() {
    let db = TempDb::migrated();
    let store = db.open();
    assert!(store.acquire("held", TTL).unwrap());
    exec(
        &store,
        r#"INSERT INTO kaal_locks ("key", acquired_at, expires_at)
           VALUES ('expired', '2020-01-01 00:00:00', '2020-01-01 00:00:10')"#,
    );
    let keys: Vec<String> = ["free", "held", "expired", "free-2"]
        .iter()
        .map(|k| k.to_string())
        .collect();
    assert_eq!(
        store.acquire_many(&keys, TTL).unwrap(),
        [true, false, true, true]
    );
    assert_eq!(
        store.acquire_many(&keys, TTL).unwrap(),
        [false, false, false, false]
    );
    assert!(store.acquire_many(&[], TTL).unwrap().is_empty());
    let twice = vec!["dup".to_string(), "dup".to_string()];
    assert_eq!(store.acquire_many(&twice, TTL).unwrap(), [true, false]);
}

#[test]
fn acquire_many_takes_a_large_batch_in_one_call() {
    let db = TempDb::migrated();
    let store = db.open();
    let keys: Vec<String> = (0..40_000)
        .map(|i| format!("kaal:dispatch:job:{i}"))
        .collect();
    assert!(store
        .acquire_many(&keys, TTL)
        .unwrap()
        .iter()
        .all(|won| *won));
    assert_eq!(
        text(&store, "SELECT count(*) AS value FROM kaal_locks"),
        "40000"
    );
    assert!(store
        .acquire_many(&keys, TTL)
        .unwrap()
        .iter()
        .all(|won| !*won));
}

#[test]
fn sixteen_threads_on_separate_pools_racing_for_each_key_have_one_winner() {
    let db = TempDb::migrated();
    let stores: Vec<_> = (0..16).map(|_| Arc::new(db.open())).collect();
    for round in 0..10 {
        let key = format!("race-{round}");
        let barrier = Arc::new(Barrier::new(stores.len()));
        let handles: Vec<_> = stores
            .iter()
            .map(|store| {
                let (store, barrier, key) = (store.clone(), barrier.clone(), key.clone());
                thread::spawn(move || {
                    barrier.wait();
                    store.acquire(&key, TTL).expect("acquire failed")
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
}

#[test]
fn two_pools_on_one_file_win_each_key_once() {
    // Two "hosts" on one machine: separate pools on the same file, one claiming key by key,
    // the other in batches, over the same keys at the same time.
    let db = TempDb::migrated();
    let keys: Vec<String> = (0..400)
        .map(|i| format!("kaal:dispatch:two-hosts:{i}"))
        .collect();
    let single = Arc::new(db.open());
    let batch = Arc::new(db.open());
    let barrier = Arc::new(Barrier::new(2));
    let single_wins = {
        let (store, keys, barrier) = (single.clone(), keys.clone(), barrier.clone());
        thread::spawn(move || {
            barrier.wait();
            keys.iter()
                .map(|key| store.acquire(key, TTL).expect("acquire failed"))
                .collect::<Vec<bool>>()
        })
    };
    let batch_wins = {
        let (store, keys, barrier) = (batch.clone(), keys.clone(), barrier.clone());
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
    assert_eq!(
        text(&single, "SELECT count(*) AS value FROM kaal_locks"),
        "400"
    );
}

#[test]
fn acquire_on_an_unmigrated_database_is_a_lock_error_naming_the_key() {
    let db = TempDb::empty();
    let store = db.open();
    let err = store.acquire("kaal:dispatch:a:60", TTL).unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with("SQLite acquire failed for kaal:dispatch:a:60: "),
        "{message}"
    );
    assert!(message.contains("run the migrations"), "{message}");
    let err = store.acquire_many(&["a".to_string()], TTL).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("SQLite batch acquire failed for a: "),
        "{err}"
    );
}

#[test]
fn batch_claims_delete_leases_expired_over_an_hour_ago_at_most_once_a_minute() {
    let db = TempDb::migrated();
    // The node's clock runs two hours fast: "an hour ago" must still be the database's,
    // or pruning would delete live leases.
    let store = db.open().with_clock(Arc::new(OffsetClock {
        offset: chrono::Duration::hours(2),
    }));
    let insert = |key: &str, expires: &str| {
        exec(
            &store,
            &format!(
                r#"INSERT INTO kaal_locks ("key", acquired_at, expires_at)
                   VALUES ('{key}', '2020-01-01 00:00:00', {expires})"#
            ),
        );
    };
    insert("long-expired", "'2020-01-01 00:02:05'");
    insert(
        "just-expired",
        "strftime('%Y-%m-%d %H:%M:%f', 'now', '-10 minutes') || '000'",
    );
    assert!(store.acquire("live", TTL).unwrap());
    let keys = |store| {
        text(
            store,
            r#"SELECT group_concat("key", ',') AS value FROM (SELECT "key" FROM kaal_locks ORDER BY "key")"#,
        )
    };
    assert_eq!(
        store
            .acquire_many(&["kaal:dispatch:job:1".to_string()], TTL)
            .unwrap(),
        [true]
    );
    assert_eq!(
        keys(&store),
        "just-expired,kaal:dispatch:job:1,live",
        "only the lease expired over an hour ago goes"
    );
    // Within the minute the next batch does not prune again.
    insert("long-expired-2", "'2020-01-01 00:02:05'");
    assert_eq!(
        store
            .acquire_many(&["kaal:dispatch:job:2".to_string()], TTL)
            .unwrap(),
        [true]
    );
    assert!(keys(&store).contains("long-expired-2"));
}
