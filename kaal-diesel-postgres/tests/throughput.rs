//! Single-acquire and batch throughput, beside a raw INSERT on the same pool, for the record
//! (`cargo test -p kaal-diesel-postgres --release --test throughput -- --ignored --nocapture`).

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

#[test]
#[ignore = "measurement, not a check"]
fn single_acquire_throughput() {
    let db = common::TempDb::migrated();
    let store = db.open();
    let ttl = Duration::from_secs(60);
    let n = 3000;
    rate("raw INSERT (baseline)", n, |i| {
        let mut conn = store.pool().get().unwrap();
        Statement::new(
            r#"INSERT INTO kaal_locks ("key", acquired_at, expires_at) VALUES (?, now(), now())"#,
        )
        .bind(format!("raw{i}"))
        .execute(&mut *conn)
        .unwrap();
    });
    rate("lease acquire (won)", n, |i| {
        assert!(store.acquire(&format!("k{i}"), ttl).unwrap());
    });
    rate("lease acquire (held)", n, |i| {
        assert!(!store.acquire(&format!("k{i}"), ttl).unwrap());
    });
    rate("lease release", n, |i| {
        assert!(store.release(&format!("k{i}")).unwrap());
    });
    let keys: Vec<String> = (0..10_000).map(|i| format!("batch{i}")).collect();
    let start = Instant::now();
    assert!(store.acquire_many(&keys, ttl).unwrap().iter().all(|w| *w));
    let elapsed = start.elapsed();
    println!(
        "lease acquire_many: {} keys in {elapsed:.2?} = {:.0} keys/s",
        keys.len(),
        keys.len() as f64 / elapsed.as_secs_f64()
    );

    let advisory = common::open_advisory(db.locator());
    rate("advisory acquire (won)", n, |i| {
        assert!(advisory.acquire(&format!("a{i}"), ttl).unwrap());
    });
    rate("advisory release", n, |i| {
        assert!(advisory.release(&format!("a{i}")).unwrap());
    });
    let start = Instant::now();
    assert!(advisory
        .acquire_many(&keys, ttl)
        .unwrap()
        .iter()
        .all(|w| *w));
    let elapsed = start.elapsed();
    println!(
        "advisory acquire_many: {} keys in {elapsed:.2?} = {:.0} keys/s",
        keys.len(),
        keys.len() as f64 / elapsed.as_secs_f64()
    );
}
