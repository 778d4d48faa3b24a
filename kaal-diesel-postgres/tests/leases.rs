//! Leases on PostgreSQL: the one-statement claim, expiry decided by the database's clock
//! (whatever a node's own clock or the session's time zone says), release, the batch form,
//! key limits and races between pools.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use chrono::{NaiveDateTime, TimeDelta};
use common::TempDb;
use kaal_core::{Adapter, OffsetClock};
use kaal_diesel_postgres::PgStore;

const TTL: Duration = Duration::from_secs(60);

/// A node whose clock is off by `minutes`.
fn node_with_clock(db: &TempDb, minutes: i64) -> PgStore {
    db.open().with_clock(Arc::new(OffsetClock {
        offset: TimeDelta::minutes(minutes),
    }))
}

fn timestamp(db: &TempDb, sql: &str) -> NaiveDateTime {
    let text = db.text(sql);
    NaiveDateTime::parse_from_str(&text, "%Y-%m-%d %H:%M:%S%.f")
        .unwrap_or_else(|err| panic!("{sql}: {text}: {err}"))
}

fn lock_count(db: &TempDb) -> String {
    db.text("SELECT count(*)::text AS value FROM kaal_locks")
}

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
fn a_node_whose_clock_runs_five_minutes_fast_cannot_take_over_a_live_lease() {
    let db = TempDb::migrated();
    let honest = db.open();
    let fast = node_with_clock(&db, 5);
    assert!(honest.acquire("kaal:dispatch:report:60", TTL).unwrap());
    assert!(!fast.acquire("kaal:dispatch:report:60", TTL).unwrap());
    assert_eq!(
        fast.acquire_many(&["kaal:dispatch:report:60".to_string()], TTL)
            .unwrap(),
        [false]
    );
    // A lease a Ruby node wrote, ending 60 s from now by the database's clock.
    db.exec(
        r#"INSERT INTO kaal_locks ("key", acquired_at, expires_at)
           VALUES ('ruby', now() AT TIME ZONE 'UTC', (now() AT TIME ZONE 'UTC') + interval '60 seconds')"#,
    );
    assert!(!fast.acquire("ruby", TTL).unwrap());
    assert!(!fast.release("never-held").unwrap());
}

#[test]
fn a_node_whose_clock_runs_five_minutes_slow_does_not_keep_a_lease_past_its_ttl() {
    let db = TempDb::migrated();
    let slow = node_with_clock(&db, -5);
    let honest = db.open();
    assert!(slow.acquire("short", Duration::from_secs(1)).unwrap());
    // The lease ends at the database's now + ttl, not at the slow node's.
    let expires = timestamp(
        &db,
        r#"SELECT expires_at::text AS value FROM kaal_locks WHERE "key" = 'short'"#,
    );
    let db_now = timestamp(&db, "SELECT (now() AT TIME ZONE 'UTC')::text AS value");
    let ends_in = expires - db_now;
    assert!(
        ends_in <= TimeDelta::seconds(1) && ends_in > TimeDelta::seconds(-2),
        "expires_at {expires} is not the database's now {db_now} + 1 s"
    );
    assert!(!honest.acquire("short", TTL).unwrap());
    thread::sleep(Duration::from_millis(1_200));
    assert!(
        honest.acquire("short", TTL).unwrap(),
        "the slow node kept its lease past the ttl"
    );
    assert!(!slow.acquire("short", TTL).unwrap());
}

#[test]
fn lease_times_are_utc_whatever_the_sessions_time_zone() {
    let db = TempDb::migrated();
    let name = common::database_of(&db.url);
    db.exec(&format!(
        "ALTER DATABASE {name} SET timezone = 'Pacific/Kiritimati'"
    ));
    let store = db.open(); // new connections get UTC+14
    assert!(store.acquire("tz", TTL).unwrap());
    let acquired = timestamp(
        &db,
        r#"SELECT acquired_at::text AS value FROM kaal_locks WHERE "key" = 'tz'"#,
    );
    let utc_now = chrono::Utc::now().naive_utc();
    assert!(
        (acquired - utc_now).abs() < TimeDelta::seconds(30),
        "acquired_at {acquired} is not UTC (now {utc_now})"
    );
    assert!(!db.open().acquire("tz", TTL).unwrap());
}

#[test]
fn expired_lease_is_taken_over_without_waiting() {
    let db = TempDb::migrated();
    let store = db.open();
    db.exec(
        r#"INSERT INTO kaal_locks ("key", acquired_at, expires_at)
           VALUES ('stale', '2020-01-01 00:00:00', '2020-01-01 00:02:05')"#,
    );
    assert!(store.acquire("stale", TTL).unwrap());
    let live = db.text(
        r#"SELECT (expires_at > now() AT TIME ZONE 'UTC')::text AS value FROM kaal_locks WHERE "key" = 'stale'"#,
    );
    assert_eq!(live, "true", "the taken-over lease must end in the future");
    assert!(
        !store.acquire("stale", TTL).unwrap(),
        "the new lease is live"
    );
    assert_eq!(lock_count(&db), "1");
}

#[test]
fn release_of_an_expired_lease_returns_false_and_clears_the_row() {
    let db = TempDb::migrated();
    let store = db.open();
    db.exec(
        r#"INSERT INTO kaal_locks ("key", acquired_at, expires_at)
           VALUES ('old', '2020-01-01 00:00:00', '2020-01-01 00:00:10')"#,
    );
    assert!(!store.release("old").unwrap());
    assert_eq!(lock_count(&db), "0");
}

#[test]
fn acquire_many_answers_in_input_order_for_free_held_expired_and_repeated_keys() {
    let db = TempDb::migrated();
    let store = db.open();
    assert!(store.acquire("held", TTL).unwrap());
    db.exec(
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
    assert_eq!(store.acquire_many(&keys, TTL).unwrap(), [false; 4]);
    assert!(store.acquire_many(&[], TTL).unwrap().is_empty());
    let twice = vec!["dup".to_string(), "b".to_string(), "dup".to_string()];
    assert_eq!(
        store.acquire_many(&twice, TTL).unwrap(),
        [true, true, false]
    );
}

#[test]
fn acquire_many_takes_a_large_batch_in_one_call() {
    let db = TempDb::migrated();
    let store = db.open();
    let keys: Vec<String> = (0..40_000)
        .map(|i| format!("kaal:dispatch:job:{i}"))
        .collect();
    assert!(store.acquire_many(&keys, TTL).unwrap().iter().all(|w| *w));
    assert_eq!(lock_count(&db), "40000");
    assert!(store.acquire_many(&keys, TTL).unwrap().iter().all(|w| !*w));
}

#[test]
fn a_key_over_255_bytes_is_a_clear_error_and_nothing_is_written() {
    let db = TempDb::migrated();
    let store = db.open();
    let ascii = "k".repeat(256);
    // 128 characters: PostgreSQL's varchar(255) counts characters and would take it.
    let accented = "é".repeat(128);
    for key in [&ascii, &accented] {
        let err = store.acquire(key, TTL).unwrap_err().to_string();
        assert!(err.starts_with("PostgreSQL acquire failed for "), "{err}");
        assert!(
            err.contains("256 bytes") && err.contains("at most 255"),
            "{err}"
        );
        let batch = vec!["fine".to_string(), key.clone()];
        let err = store.acquire_many(&batch, TTL).unwrap_err().to_string();
        assert!(
            err.starts_with("PostgreSQL batch acquire failed for "),
            "{err}"
        );
        assert!(err.contains("256 bytes"), "{err}");
    }
    assert_eq!(lock_count(&db), "0", "nothing may be written, nor cut");
    let fits = format!("kaal:{}", "é".repeat(125));
    assert_eq!(fits.len(), 255);
    assert!(store.acquire(&fits, TTL).unwrap());
}

#[test]
fn acquire_on_an_unmigrated_database_is_a_lock_error_naming_the_key() {
    let db = TempDb::empty();
    let store = db.open();
    let err = store
        .acquire("kaal:dispatch:a:60", TTL)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("PostgreSQL acquire failed for kaal:dispatch:a:60: "),
        "{err}"
    );
    assert!(err.contains("run the migrations"), "{err}");
}

#[test]
fn sixteen_pools_racing_for_each_key_have_one_winner() {
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
fn overlapping_batches_in_opposite_orders_neither_deadlock_nor_share_a_key() {
    // Two nodes claim the same 500 keys in batches of 50, one forwards, one backwards: the
    // statement sorts its keys, so their row locks are taken in one order.
    let db = TempDb::migrated();
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
            let won: Vec<(String, bool)> = keys
                .chunks(50)
                .flat_map(|chunk| {
                    let won = store.acquire_many(chunk, TTL).expect("batch failed");
                    chunk.iter().cloned().zip(won).collect::<Vec<_>>()
                })
                .collect();
            won
        })
    };
    let (a, b) = (run(false), run(true));
    let mut winners: std::collections::HashMap<String, usize> = Default::default();
    for (key, won) in a.join().unwrap().into_iter().chain(b.join().unwrap()) {
        *winners.entry(key).or_default() += usize::from(won);
    }
    assert_eq!(winners.len(), 500);
    assert!(winners.values().all(|n| *n == 1), "{winners:?}");
    assert_eq!(lock_count(&db), "500");
}

#[test]
fn batch_claims_delete_leases_expired_over_an_hour_ago() {
    let db = TempDb::migrated();
    // The node's clock runs two hours fast: "an hour ago" must still be the database's,
    // or pruning would delete live leases.
    let store = db.open().with_clock(Arc::new(OffsetClock {
        offset: chrono::Duration::hours(2),
    }));
    db.exec(
        r#"INSERT INTO kaal_locks ("key", acquired_at, expires_at) VALUES
           ('long-expired', '2020-01-01 00:00:00', '2020-01-01 00:02:05'),
           ('just-expired', now() AT TIME ZONE 'UTC' - interval '20 minutes',
                            now() AT TIME ZONE 'UTC' - interval '10 minutes')"#,
    );
    assert!(store.acquire("live", TTL).unwrap());
    assert_eq!(
        store
            .acquire_many(&["kaal:dispatch:job:1".to_string()], TTL)
            .unwrap(),
        [true]
    );
    assert_eq!(
        db.text(r#"SELECT string_agg("key", ',' ORDER BY "key") AS value FROM kaal_locks"#),
        "just-expired,kaal:dispatch:job:1,live",
        "only the lease expired over an hour ago goes"
    );
}
