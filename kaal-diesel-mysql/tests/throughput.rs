//! Single-acquire and batch throughput, beside a raw INSERT on the same pool, for the record
//! (`cargo test -p kaal-diesel-mysql --release --test throughput -- --ignored --nocapture`).

#![allow(clippy::print_stdout, clippy::unwrap_used)] // printing the rates is the point

mod common;

use std::time::{Duration, Instant};

use diesel::RunQueryDsl;
use kaal_core::Adapter;
use kaal_diesel::Statement;

fn rate(label: &str, n: usize, mut f: impl FnMut(usize)) {
    let start = Instant::now();
    for i in 0..n {
        f(i);
    }
    let elapsed = start.elapsed();
    println!(
        "{label}: {n} in {elapsed:.2?} = {:.0}/s",
        n as f64 / elapsed.as_secs_f64()
    );
}

fn batch_rate(label: &str, keys: &[String], f: impl FnOnce(&[String]) -> Vec<bool>, won: bool) {
    let start = Instant::now();
    assert!(f(keys).iter().all(|w| *w == won));
    let elapsed = start.elapsed();
    println!(
        "{label}: {} keys in {elapsed:.2?} = {:.0} keys/s",
        keys.len(),
        keys.len() as f64 / elapsed.as_secs_f64()
    );
}

#[test]
#[ignore = "measurement, not a check"]
fn single_acquire_and_batch_throughput() {
    let db = common::TempDb::migrated();
    let store = db.open();
    let ttl = Duration::from_secs(60);
    let n = 3000;
    rate("raw INSERT (baseline)", n, |i| {
        let mut conn = store.pool().get().unwrap();
        Statement::new(
            "INSERT INTO kaal_locks (`key`, acquired_at, expires_at) \
             VALUES (?, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
        )
        .bind(format!("raw{i}"))
        .execute(&mut *conn)
        .unwrap();
    });
    rate("lease acquire (won, 1 statement)", n, |i| {
        assert!(store.acquire(&format!("k{i}"), ttl).unwrap());
    });
    rate("lease acquire (held, 2 statements)", n, |i| {
        assert!(!store.acquire(&format!("k{i}"), ttl).unwrap());
    });
    rate("lease release", n, |i| {
        assert!(store.release(&format!("k{i}")).unwrap());
    });
    let keys: Vec<String> = (0..10_000).map(|i| format!("batch{i}")).collect();
    batch_rate(
        "lease acquire_many (won)",
        &keys,
        |k| store.acquire_many(k, ttl).unwrap(),
        true,
    );
    batch_rate(
        "lease acquire_many (held)",
        &keys,
        |k| store.acquire_many(k, ttl).unwrap(),
        false,
    );
    let small: Vec<String> = (0..9).map(|i| format!("tick{i}")).collect();
    rate("lease acquire_many of 9 keys (a tick's claims)", 500, |i| {
        let keys: Vec<String> = small.iter().map(|k| format!("{k}:{i}")).collect();
        assert!(store.acquire_many(&keys, ttl).unwrap().iter().all(|w| *w));
    });

    let named = common::open_named(db.locator());
    rate("named acquire (won)", n, |i| {
        assert!(named.acquire(&format!("a{i}"), ttl).unwrap());
    });
    rate("named release", n, |i| {
        assert!(named.release(&format!("a{i}")).unwrap());
    });
    batch_rate(
        "named acquire_many (won)",
        &keys,
        |k| named.acquire_many(k, ttl).unwrap(),
        true,
    );
}
