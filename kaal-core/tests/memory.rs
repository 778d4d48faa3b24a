//! MemoryAdapter specifics, deterministic through a manual clock.
#![allow(clippy::unwrap_used)] // tests state their expectations with unwrap

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use kaal_core::{with_lock, Adapter, ManualClock, MemoryAdapter, NullAdapter};

#[test]
fn ttl_expiry_then_takeover_follows_the_clock_exactly() {
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
    ));
    let adapter = MemoryAdapter::with_clock(clock.clone());
    assert!(adapter.acquire("k", Duration::from_secs(30)).unwrap());
    clock.advance(chrono::Duration::seconds(29));
    assert!(
        !adapter.acquire("k", Duration::from_secs(30)).unwrap(),
        "taken over before its ttl"
    );
    clock.advance(chrono::Duration::seconds(1));
    assert!(
        adapter.acquire("k", Duration::from_secs(30)).unwrap(),
        "not taken over at its ttl"
    );
    clock.advance(chrono::Duration::seconds(31));
    assert!(
        !adapter.release("k").unwrap(),
        "released an expired lease as if it were held"
    );
}

#[test]
fn expired_leases_are_pruned_so_memory_stays_bounded() {
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
    ));
    let adapter = MemoryAdapter::with_clock(clock.clone());
    for round in 0..20 {
        let keys: Vec<String> = (0..1000).map(|i| format!("r{round}:{i}")).collect();
        assert!(adapter
            .acquire_many(&keys, Duration::from_secs(10))
            .unwrap()
            .iter()
            .all(|w| *w));
        clock.advance(chrono::Duration::seconds(11));
    }
    assert!(
        adapter.lease_count() <= 3000,
        "{} leases kept for 1000 live",
        adapter.lease_count()
    );
}

#[test]
fn null_adapter_always_acquires_and_runs_the_block() {
    assert!(NullAdapter.acquire("k", Duration::from_secs(1)).unwrap());
    assert!(NullAdapter.acquire("k", Duration::from_secs(1)).unwrap());
    assert_eq!(
        with_lock(&NullAdapter, "k", Duration::from_secs(1), || 7).unwrap(),
        Some(7)
    );
    assert!(NullAdapter.dispatch_registry().is_none());
}
