//! Leases on MySQL: the claim, expiry decided by the database's clock whatever a node's
//! clock says, release, the batch form, bad keys, and races between pools and threads.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use chrono::NaiveDateTime;
use common::{TempDb, TEXT_TIME};
use kaal_core::{Adapter, OffsetClock};
use kaal_diesel_mysql::MysqlStore;

const TTL: Duration = Duration::from_secs(60);

/// A node on `db` whose own clock is `minutes` off.
fn node_with_clock(db: &TempDb, minutes: i64) -> MysqlStore {
    db.open().with_clock(Arc::new(OffsetClock {
        offset: chrono::Duration::minutes(minutes),
    }))
}

/// Seconds from the database's now to the `expires_at` of `key`.
fn seconds_left(db: &TempDb, key: &str) -> f64 {
    db.text(&format!(
        "SELECT CAST(TIMESTAMPDIFF(MICROSECOND, UTC_TIMESTAMP(6), expires_at) / 1000000 AS CHAR) \
         AS value FROM kaal_locks WHERE `key` = '{key}'"
    ))
    .parse()
    .unwrap()
}

fn lock_count(db: &TempDb) -> String {
    db.text("SELECT CAST(COUNT(*) AS CHAR) AS value FROM kaal_locks")
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
    assert!((55.0..=60.0).contains(&seconds_left(&db, "k")));
}

#[test]
fn a_node_whose_clock_runs_five_minutes_fast_cannot_take_over_a_live_lease() {
    let db = TempDb::migrated();
    let holder = db.open();
    let fast = node_with_clock(&db, 5);
    assert!(holder.acquire("live", TTL).unwrap());
    // By the fast node's clock the lease ended four minutes ago; the database decides.
    assert!(!fast.acquire("live", TTL).unwrap());
    assert_eq!(
        fast.acquire_many(&["live".to_string()], TTL).unwrap(),
        [false]
    );
    // Its own leases end ttl after the database's now, not after its clock's.
    assert!(fast.acquire("fast-own", TTL).unwrap());
    assert!((55.0..=60.0).contains(&seconds_left(&db, "fast-own")));
    assert!(!holder.acquire("fast-own", TTL).unwrap());
}

#[test]
fn a_node_whose_clock_runs_five_minutes_slow_does_not_keep_a_lease_past_its_ttl() {
    let db = TempDb::migrated();
    let slow = node_with_clock(&db, -5);
    let other = db.open();
    assert!(slow.acquire("short", Duration::from_secs(1)).unwrap());
    assert!(
        slow.acquire_many(&["short-batch".to_string()], Duration::from_secs(1))
            .unwrap()[0]
    );
    assert!(seconds_left(&db, "short") <= 1.0);
    assert!(!other.acquire("short", TTL).unwrap());
    // By the slow node's clock the lease still has five minutes; by the database's it ends
    // after one second.
    thread::sleep(Duration::from_millis(1_300));
    assert!(
        other.acquire("short", TTL).unwrap(),
        "the lease outlived its ttl"
    );
    assert_eq!(
        other
            .acquire_many(&["short-batch".to_string()], TTL)
            .unwrap(),
        [true]
    );
    assert!(!slow.acquire("short", TTL).unwrap());
}

#[test]
fn lease_times_are_utc_whatever_the_sessions_time_zone() {
    let db = TempDb::migrated();
    let store = db.open();
    assert!(store.acquire("utc", TTL).unwrap());
    let mut conn = db.connect();
    let acquired = common::text_on(
        &mut conn,
        "SELECT CAST(acquired_at AS CHAR) AS value FROM kaal_locks WHERE `key` = 'utc'",
    );
    use diesel::connection::SimpleConnection;
    conn.batch_execute("SET time_zone = '+09:00'").unwrap();
    let utc_now = common::text_on(&mut conn, "SELECT CAST(UTC_TIMESTAMP(6) AS CHAR) AS value");
    let acquired = NaiveDateTime::parse_from_str(&acquired, TEXT_TIME).unwrap();
    let utc_now = NaiveDateTime::parse_from_str(&utc_now, TEXT_TIME).unwrap();
    assert!(
        (utc_now - acquired).num_seconds().abs() < 5,
        "{acquired} is not UTC ({utc_now})"
    );
}

#[test]
fn expired_lease_is_taken_over_without_waiting() {
    let db = TempDb::migrated();
    let store = db.open();
    db.exec(
        "INSERT INTO kaal_locks (`key`, acquired_at, expires_at) \
         VALUES ('stale', '2020-01-01 00:00:00', '2020-01-01 00:02:05')",
    );
    assert!(store.acquire("stale", TTL).unwrap());
    assert!((55.0..=60.0).contains(&seconds_left(&db, "stale")));
    assert!(
        !store.acquire("stale", TTL).unwrap(),
        "the new lease is live"
    );
}

#[test]
fn release_of_an_expired_lease_returns_false_and_clears_the_row() {
    let db = TempDb::migrated();
    let store = db.open();
    db.exec(
        "INSERT INTO kaal_locks (`key`, acquired_at, expires_at) \
         VALUES ('old', '2020-01-01 00:00:00', '2020-01-01 00:00:10')",
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
        "INSERT INTO kaal_locks (`key`, acquired_at, expires_at) \
         VALUES ('expired', '2020-01-01 00:00:00', '2020-01-01 00:00:10')",
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
    let twice = vec!["dup".to_string(), "dup".to_string()];
    assert_eq!(store.acquire_many(&twice, TTL).unwrap(), [true, false]);
    // Every lease taken by a batch carries its real times, never the marker.
    let marked = db.text(
        "SELECT CAST(COUNT(*) AS CHAR) AS value FROM kaal_locks WHERE acquired_at < '2000-01-01'",
    );
    assert_eq!(marked, "0");
    for key in ["free", "expired", "dup"] {
        assert!((55.0..=60.0).contains(&seconds_left(&db, key)), "{key}");
        let span = db.text(&format!(
            "SELECT CAST(TIMESTAMPDIFF(MICROSECOND, acquired_at, expires_at) AS CHAR) AS value \
             FROM kaal_locks WHERE `key` = '{key}'"
        ));
        assert_eq!(span, "60000000", "{key}: acquired_at + ttl != expires_at");
    }
}

#[test]
fn acquire_many_takes_a_large_batch_in_one_call() {
    let db = TempDb::migrated();
    let store = db.open();
    let keys: Vec<String> = (0..5_000)
        .map(|i| format!("kaal:dispatch:job:{i}"))
        .collect();
    assert!(store.acquire_many(&keys, TTL).unwrap().iter().all(|w| *w));
    assert_eq!(lock_count(&db), "5000");
    assert!(db
        .open()
        .acquire_many(&keys, TTL)
        .unwrap()
        .iter()
        .all(|w| !*w));
}

#[test]
fn a_key_over_255_bytes_is_a_clear_error_and_nothing_is_written() {
    let db = TempDb::migrated();
    let store = db.open();
    // 255 bytes of multibyte characters fit.
    let fits = format!("{}k", "é".repeat(127));
    assert_eq!(fits.len(), 255);
    assert!(store.acquire(&fits, TTL).unwrap());
    let long = format!("kaal:dispatch:{}:1767225600", "x".repeat(250));
    let err = store.acquire(&long, TTL).unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with("MySQL acquire failed for kaal:dispatch:xxx"),
        "{message}"
    );
    assert!(message.contains("275 bytes"), "{message}");
    assert!(message.contains("never truncated"), "{message}");
    let batch = vec!["ok".to_string(), long.clone()];
    let err = store.acquire_many(&batch, TTL).unwrap_err().to_string();
    assert!(
        err.starts_with("MySQL batch acquire failed for kaal:dispatch:xxx"),
        "{err}"
    );
    assert_eq!(lock_count(&db), "1", "something was written");
}

#[test]
fn acquire_on_an_unmigrated_database_is_a_lock_error_naming_the_key() {
    let db = TempDb::empty();
    let store = db.open();
    let err = store.acquire("kaal:dispatch:a:60", TTL).unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with("MySQL acquire failed for kaal:dispatch:a:60: "),
        "{message}"
    );
    assert!(message.contains("run the migrations"), "{message}");
}

#[test]
fn sixteen_pools_racing_for_each_key_have_one_winner() {
    // Free keys, and expired leases every racer may take over.
    let db = TempDb::migrated();
    db.exec(
        "INSERT INTO kaal_locks (`key`, acquired_at, expires_at) VALUES \
         ('expired-0', '2020-01-01', '2020-01-01'), ('expired-1', '2020-01-01', '2020-01-01'), \
         ('expired-2', '2020-01-01', '2020-01-01'), ('expired-3', '2020-01-01', '2020-01-01'), \
         ('expired-4', '2020-01-01', '2020-01-01')",
    );
    let stores: Vec<_> = (0..16).map(|_| Arc::new(db.open())).collect();
    let keys: Vec<String> = (0..5)
        .flat_map(|i| [format!("free-{i}"), format!("expired-{i}")])
        .collect();
    for key in keys {
        let barrier = Arc::new(Barrier::new(stores.len()));
        let handles: Vec<_> = stores
            .iter()
            .enumerate()
            .map(|(i, store)| {
                let (store, barrier, key) = (store.clone(), barrier.clone(), key.clone());
                thread::spawn(move || {
                    barrier.wait();
                    // Half claim alone, half in a batch.
                    if i % 2 == 0 {
                        store.acquire(&key, TTL).unwrap()
                    } else {
                        store.acquire_many(&[key], TTL).unwrap()[0]
                    }
                })
            })
            .collect();
        let winners = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|won| *won)
            .count();
        assert_eq!(winners, 1, "{key}: {winners} winners");
    }
}

#[test]
fn overlapping_batches_in_opposite_orders_neither_deadlock_nor_share_a_key() {
    // Four nodes claim overlapping windows of keys, half of them expired leases, in
    // opposite orders, many times: every key is won once and no call fails.
    let db = TempDb::migrated();
    let values: Vec<String> = (0..400)
        .step_by(2)
        .map(|i| format!("('k{i:03}', '2020-01-01', '2020-01-01')"))
        .collect();
    db.exec(&format!(
        "INSERT INTO kaal_locks (`key`, acquired_at, expires_at) VALUES {}",
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
                    let answers = store.acquire_many(&keys, TTL).unwrap();
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

/// `(acquired_at, expires_at)` of every lease, by key.
fn lease_times(db: &TempDb) -> std::collections::HashMap<String, (String, String)> {
    #[derive(diesel::QueryableByName)]
    struct Lease {
        #[diesel(sql_type = diesel::sql_types::Text)]
        key: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        acquired_at: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        expires_at: String,
    }
    use diesel::RunQueryDsl;
    let rows: Vec<Lease> = diesel::sql_query(
        "SELECT `key`, CAST(acquired_at AS CHAR) AS acquired_at, \
         CAST(expires_at AS CHAR) AS expires_at FROM kaal_locks",
    )
    .load(&mut db.connect())
    .unwrap();
    rows.into_iter()
        .map(|row| (row.key, (row.acquired_at, row.expires_at)))
        .collect()
}

/// Inserts leases for `keys`, live for an hour (`live`) or expired in 2020, in one statement.
fn insert_leases(db: &TempDb, keys: &[String], live: bool) {
    let times = if live {
        "UTC_TIMESTAMP(6), UTC_TIMESTAMP(6) + INTERVAL 1 HOUR"
    } else {
        "'2020-01-01 00:00:00', '2020-01-01 00:02:05'"
    };
    let rows: Vec<String> = keys.iter().map(|k| format!("('{k}', {times})")).collect();
    db.exec(&format!(
        "INSERT INTO kaal_locks (`key`, acquired_at, expires_at) VALUES {}",
        rows.join(", ")
    ));
}

#[test]
fn a_batch_of_several_statements_answers_free_expired_and_live_keys_exactly() {
    // 9 000 keys take three INSERTs of at most 4 096 rows. Every 7th key is another node's
    // live lease, every 5th of the others an expired one; the input is reversed and repeats
    // keys. First without expired leases (inserts, then one read back), then with them
    // (take over, insert, read back).
    let db = TempDb::migrated();
    let key = |i: usize| format!("kaal:dispatch:job-{i}:1767225600");
    for (round, with_expired) in [(0, false), (1, true)] {
        let range = round * 9_000..(round + 1) * 9_000;
        let live: Vec<String> = range.clone().filter(|i| i % 7 == 0).map(key).collect();
        let expired: Vec<String> = range
            .clone()
            .filter(|i| with_expired && i % 7 != 0 && i % 5 == 0)
            .map(key)
            .collect();
        insert_leases(&db, &live, true);
        if !expired.is_empty() {
            insert_leases(&db, &expired, false);
        }
        let before = lease_times(&db);
        let mut keys: Vec<String> = range.clone().rev().map(key).collect();
        keys.extend(range.clone().step_by(1_000).map(key));
        let won = db.open().acquire_many(&keys, TTL).unwrap();
        assert_eq!(won.len(), keys.len());
        for (i, (k, w)) in keys.iter().zip(&won).enumerate() {
            let first = i < 9_000;
            let expected = first && !live.contains(k);
            assert_eq!(*w, expected, "{k} (position {i})");
        }
        let after = lease_times(&db);
        assert_eq!(after.len(), (round + 1) * 9_000);
        for k in range.map(key) {
            if live.contains(&k) {
                assert_eq!(after[&k], before[&k], "{k}: a live lease was touched");
            } else {
                let (acquired, expires) = &after[&k];
                assert!(acquired.as_str() > "2026", "{k}: acquired at {acquired}");
                assert_ne!(before.get(&k), Some(&after[&k]), "{k}: not taken");
                let span = chrono::NaiveDateTime::parse_from_str(expires, TEXT_TIME).unwrap()
                    - chrono::NaiveDateTime::parse_from_str(acquired, TEXT_TIME).unwrap();
                assert_eq!(span.num_microseconds(), Some(60_000_000), "{k}");
            }
        }
        // Everything is taken now: another node wins nothing.
        assert!(db
            .open()
            .acquire_many(&keys, TTL)
            .unwrap()
            .iter()
            .all(|w| !*w));
    }
}

#[test]
fn a_lease_that_carries_the_batch_claim_times_is_never_counted_as_won() {
    // The batch claim finds its rows by the times it wrote. With the database clock frozen
    // for the store's one connection, another node's live lease written with exactly those
    // times makes the rows read back outnumber the rows written: the batch must fail
    // (nothing decided, nothing kept), never answer that it won that lease.
    let db = TempDb::migrated();
    let options = kaal_diesel_mysql::MysqlOptions {
        pool: kaal_diesel_mysql::PoolOptions {
            max_size: 1,
            min_idle: Some(1),
            ..Default::default()
        },
        ..Default::default()
    };
    let store = MysqlStore::open_with(&db.url, options).unwrap();
    {
        use diesel::connection::SimpleConnection;
        let mut conn = store.pool().get().unwrap();
        // 2026-01-01 00:00:00.5 UTC for every UTC_TIMESTAMP() of this session.
        conn.batch_execute("SET timestamp = 1767225600.5").unwrap();
    }
    db.exec(
        "INSERT INTO kaal_locks (`key`, acquired_at, expires_at) \
         VALUES ('taken', '2026-01-01 00:00:00.5', '2026-01-01 00:01:00.5')",
    );
    let keys: Vec<String> = ["free-a", "taken", "free-b"]
        .iter()
        .map(|k| k.to_string())
        .collect();
    let err = store.acquire_many(&keys, TTL).unwrap_err().to_string();
    assert!(err.contains("claim times"), "{err}");
    assert_eq!(lock_count(&db), "1", "the failed batch kept rows");
    // The same batch at another time answers exactly.
    {
        use diesel::connection::SimpleConnection;
        let mut conn = store.pool().get().unwrap();
        conn.batch_execute("SET timestamp = 1767225601").unwrap();
    }
    assert_eq!(store.acquire_many(&keys, TTL).unwrap(), [true, false, true]);
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
        "INSERT INTO kaal_locks (`key`, acquired_at, expires_at) VALUES
         ('long-expired', '2020-01-01 00:00:00', '2020-01-01 00:02:05'),
         ('just-expired', UTC_TIMESTAMP(6) - INTERVAL 20 MINUTE,
                          UTC_TIMESTAMP(6) - INTERVAL 10 MINUTE)",
    );
    assert!(store.acquire("live", TTL).unwrap());
    assert_eq!(
        store
            .acquire_many(&["kaal:dispatch:job:1".to_string()], TTL)
            .unwrap(),
        [true]
    );
    assert_eq!(
        db.text("SELECT GROUP_CONCAT(`key` ORDER BY `key` SEPARATOR ',') AS value FROM kaal_locks"),
        "just-expired,kaal:dispatch:job:1,live",
        "only the lease expired over an hour ago goes"
    );
}
