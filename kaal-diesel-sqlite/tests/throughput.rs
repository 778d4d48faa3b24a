//! Single-acquire throughput, for the record (`cargo test -p kaal-diesel-sqlite --release
//! --test throughput -- --ignored --nocapture`).

#![allow(clippy::print_stdout)] // printing the rates is the point

mod common;

use std::time::{Duration, Instant};

use kaal_core::Adapter;
use kaal_diesel_sqlite::{SqliteOptions, SqliteStore, Synchronous};

fn rate(store: &SqliteStore, label: &str, n: usize, f: impl Fn(&SqliteStore, usize)) {
    let start = Instant::now();
    for i in 0..n {
        f(store, i);
    }
    let elapsed = start.elapsed();
    println!(
        "{label}: {n} in {elapsed:.2?} = {:.0}/s",
        n as f64 / elapsed.as_secs_f64()
    );
}

#[test]
#[ignore = "measurement, not a check"]
fn single_acquire_throughput() {
    for synchronous in [Synchronous::Full, Synchronous::Normal] {
        let db = common::TempDb::migrated();
        let options = SqliteOptions {
            synchronous,
            ..SqliteOptions::default()
        };
        let store = SqliteStore::open_with(db.locator(), options).expect("open");
        let ttl = Duration::from_secs(60);
        let n = 3000;
        rate(
            &store,
            &format!("{synchronous} acquire (won)"),
            n,
            |s, i| {
                assert!(s.acquire(&format!("k{i}"), ttl).unwrap());
            },
        );
        rate(
            &store,
            &format!("{synchronous} acquire (held)"),
            n,
            |s, i| {
                assert!(!s.acquire(&format!("k{i}"), ttl).unwrap());
            },
        );
        rate(&store, &format!("{synchronous} release"), n, |s, i| {
            assert!(s.release(&format!("k{i}")).unwrap());
        });
        let keys: Vec<String> = (0..10_000).map(|i| format!("batch{i}")).collect();
        let start = Instant::now();
        let won = store.acquire_many(&keys, ttl).unwrap();
        let elapsed = start.elapsed();
        assert!(won.iter().all(|w| *w));
        println!(
            "{synchronous} acquire_many: {} keys in {elapsed:.2?} = {:.0} keys/s",
            keys.len(),
            keys.len() as f64 / elapsed.as_secs_f64()
        );
    }
}
