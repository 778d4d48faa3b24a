//! The lease rates a backend prints for the record, beside a raw INSERT on the same pool:
//! measurements, not checks (the backends run them as ignored tests, `cargo test -p
//! kaal-diesel-foo --release --test throughput -- --ignored --nocapture`).
#![allow(clippy::print_stdout)] // printing the rates is the point

use std::time::{Duration, Instant};

use diesel::query_dsl::methods::ExecuteDsl;
use diesel::RunQueryDsl;
use kaal_core::Adapter;

use super::SqlBackend;
use crate::{Dialect, DieselStore, Statement};

/// Runs `f(0..n)` and prints `label: n in <time> = <rate>/s`.
pub fn rate(label: &str, n: usize, mut f: impl FnMut(usize)) {
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

/// Runs the batch claim `f(keys)`, asserts every answer is `won`, and prints `label: <n>
/// keys in <time> = <rate> keys/s`.
pub fn batch_rate(label: &str, keys: &[String], f: impl FnOnce(&[String]) -> Vec<bool>, won: bool) {
    let start = Instant::now();
    assert!(f(keys).iter().all(|w| *w == won));
    let elapsed = start.elapsed();
    println!(
        "{label}: {} keys in {elapsed:.2?} = {:.0} keys/s",
        keys.len(),
        keys.len() as f64 / elapsed.as_secs_f64()
    );
}

/// The lease rates of `store` (labels prefixed with `label`): a raw INSERT on its pool as
/// the baseline, acquire (won, held), release, `acquire_many` of 10 000 keys (won, held)
/// and of a tick's 9 keys.
pub fn lease_rates<B: SqlBackend>(backend: &B, store: &DieselStore<B::Dialect>, label: &str)
where
    for<'a> Statement<'a>: ExecuteDsl<<B::Dialect as Dialect>::Connection>,
{
    let ttl = Duration::from_secs(60);
    let n = 3000;
    // A statement's text lives as long as the statement cache: one text for the run.
    let insert: &'static str = Box::leak(
        format!(
            "INSERT INTO kaal_locks ({}, acquired_at, expires_at) VALUES (?, {now}, {now})",
            backend.quote("key"),
            now = backend.now_plus(0)
        )
        .into_boxed_str(),
    );
    rate(&format!("{label}raw INSERT (baseline)"), n, |i| {
        let mut conn = store.pool().get().unwrap();
        Statement::new(insert)
            .bind(format!("raw{i}"))
            .execute(&mut *conn)
            .unwrap();
    });
    rate(&format!("{label}lease acquire (won)"), n, |i| {
        assert!(store.acquire(&format!("k{i}"), ttl).unwrap());
    });
    rate(&format!("{label}lease acquire (held)"), n, |i| {
        assert!(!store.acquire(&format!("k{i}"), ttl).unwrap());
    });
    rate(&format!("{label}lease release"), n, |i| {
        assert!(store.release(&format!("k{i}")).unwrap());
    });
    let keys: Vec<String> = (0..10_000).map(|i| format!("batch{i}")).collect();
    batch_rate(
        &format!("{label}lease acquire_many (won)"),
        &keys,
        |k| store.acquire_many(k, ttl).unwrap(),
        true,
    );
    batch_rate(
        &format!("{label}lease acquire_many (held)"),
        &keys,
        |k| store.acquire_many(k, ttl).unwrap(),
        false,
    );
    let small: Vec<String> = (0..9).map(|i| format!("tick{i}")).collect();
    rate(
        &format!("{label}lease acquire_many of 9 keys (a tick's claims)"),
        500,
        |i| {
            let keys: Vec<String> = small.iter().map(|k| format!("{k}:{i}")).collect();
            assert!(store.acquire_many(&keys, ttl).unwrap().iter().all(|w| *w));
        },
    );
}

/// The rates of any adapter (labels prefixed with `label`): acquire (won), release,
/// `acquire_many` of 10 000 keys (won) — for the session-lock adapters beside the lease
/// table.
pub fn adapter_rates(adapter: &dyn Adapter, label: &str) {
    let ttl = Duration::from_secs(60);
    let n = 3000;
    rate(&format!("{label}acquire (won)"), n, |i| {
        assert!(adapter.acquire(&format!("a{i}"), ttl).unwrap());
    });
    rate(&format!("{label}release"), n, |i| {
        assert!(adapter.release(&format!("a{i}")).unwrap());
    });
    let keys: Vec<String> = (0..10_000).map(|i| format!("batch{i}")).collect();
    batch_rate(
        &format!("{label}acquire_many (won)"),
        &keys,
        |k| adapter.acquire_many(k, ttl).unwrap(),
        true,
    );
}
