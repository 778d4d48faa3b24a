//! An advisory batch larger than the server's lock table: the batch fails with a clear
//! error, the locks it took part-way are given back at once, and the adapter keeps its
//! session and the locks it held.
//!
//! Alone in its test binary because it fills the server's shared lock table for a moment
//! (about 13 000 locks with the defaults), which makes other sessions' statements fail
//! meanwhile.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use kaal_core::Adapter;

const TTL: Duration = Duration::from_secs(60);

#[test]
fn a_batch_that_overflows_the_lock_table_fails_and_takes_nothing() {
    let db = common::TempDb::migrated();
    let a = common::open_advisory(db.locator());
    assert!(a.acquire("held-before", TTL).unwrap());
    let capacity = db.text(
        "SELECT (current_setting('max_locks_per_transaction')::int * \
         (current_setting('max_connections')::int + current_setting('max_prepared_transactions')::int))::text AS value",
    );
    // Four times the nominal table size: more than any slack the server finds.
    let too_many = 4 * capacity.parse::<usize>().unwrap();
    let keys: Vec<String> = (0..too_many).map(|i| format!("kaal:flood:{i}")).collect();
    let err = a.acquire_many(&keys, TTL).unwrap_err().to_string();
    assert!(
        err.starts_with("PostgreSQL advisory batch acquire failed for kaal:flood:0: "),
        "{err}"
    );
    assert!(err.contains("out of shared memory"), "{err}");
    let advisory = db.text(
        "SELECT count(*)::text AS value FROM pg_locks WHERE locktype = 'advisory' \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    );
    assert_eq!(advisory, "1", "the failed batch left locks behind");
    assert_eq!(a.held_count(), 1);
    assert!(!common::open_advisory(db.locator())
        .acquire("held-before", TTL)
        .unwrap());
    assert!(a.acquire("after", TTL).unwrap());
}
