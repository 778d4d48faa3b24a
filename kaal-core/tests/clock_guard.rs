//! A node whose clock is off the store's clock by more than `max_clock_offset` refuses to
//! claim, in its recovery pass and in every tick, until the clocks agree; within the bound it
//! runs normally.
#![allow(clippy::unwrap_used)] // tests state their expectations with unwrap

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use chrono::{Duration as ChronoDuration, Utc};
use kaal_core::{Config, Fire, Kaal, ManualClock, MemoryAdapter, OffsetClock};

/// Starts a node on a fresh store with its clock `offset` from the store's, lets it do its
/// recovery pass and one tick, and returns the fire times it ran.
fn runs_with_offset(offset: ChronoDuration) -> Vec<chrono::DateTime<chrono::Utc>> {
    let config = Config {
        node_id: "skewed".into(),
        recovery_startup_jitter: Duration::ZERO,
        ..Config::default()
    };
    // The store's clock stands in for the database's. The job was defined ten minutes ago,
    // so fire times are owed from then; the store's clock then shows the real time.
    let store_clock = Arc::new(ManualClock::new(Utc::now() - ChronoDuration::minutes(10)));
    let adapter = Arc::new(MemoryAdapter::with_clock(store_clock.clone()));
    let kaal = Kaal::with_clock(config, adapter, Arc::new(OffsetClock { offset })).unwrap();
    let (tx, rx) = mpsc::channel();
    kaal.register("every-minute", "* * * * *", move |fire: &Fire| {
        Ok(tx.send(fire.fire_time)?)
    })
    .unwrap();
    store_clock.set(Utc::now());
    assert!(kaal.start());
    assert!(kaal
        .coordinator()
        .wait_for_passes(2, Duration::from_secs(20)));
    assert!(kaal.stop(Duration::from_secs(10)));
    let mut fired: Vec<_> = rx.try_iter().collect();
    fired.sort(); // runs end in any order
    fired
}

#[test]
fn a_node_two_hours_fast_refuses_to_claim() {
    let runs = runs_with_offset(ChronoDuration::hours(2));
    assert!(runs.is_empty(), "{runs:?}");
}

#[test]
fn a_node_thirty_seconds_slow_refuses_to_claim() {
    // Slow clocks claim late, not early, so the store's horizon would not stop it: the
    // offset bound (10 s by default) does. Without it this node runs the fire times of the
    // two minutes before it started.
    let runs = runs_with_offset(ChronoDuration::seconds(-30));
    assert!(runs.is_empty(), "{runs:?}");
}

#[test]
fn a_node_within_the_bound_runs_what_is_due_and_nothing_of_the_future() {
    let runs = runs_with_offset(ChronoDuration::seconds(3));
    assert!(!runs.is_empty(), "a node 3 s fast must still run");
    let latest = chrono::Utc::now() + ChronoDuration::from_std(kaal_core::CLAIM_TOLERANCE).unwrap();
    assert!(
        runs.iter().all(|t| *t <= latest),
        "ran the future: {runs:?}"
    );
}
