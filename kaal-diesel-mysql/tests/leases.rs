//! Leases on MySQL: kaal-diesel's shared lease behaviours (the claim, expiry decided by the
//! database's clock whatever a node's clock says, release, the batch form, bad keys, races
//! between pools and threads), lease times in UTC, and the batch claim MySQL writes in
//! several statements and reads back by its claim times.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use chrono::NaiveDateTime;
use common::{TempDb, TEXT_TIME};
use kaal_core::Adapter;
use kaal_diesel_mysql::MysqlStore;

const TTL: Duration = Duration::from_secs(60);

kaal_diesel::lease_suite!(common::MysqlHooks);

fn lock_count(db: &TempDb) -> String {
    db.text("SELECT CAST(COUNT(*) AS CHAR) AS value FROM kaal_locks")
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
    let store = MysqlStore::open_with(db.locator(), options).unwrap();
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
