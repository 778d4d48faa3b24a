//! What is owed: a fire time from before a job's current schedule came into force (its
//! creation, last cron change or last re-enable) is never owed — not to the first tick, not
//! to recovery — and restarts cannot reach further back by reading the dispatch log.
//!
//! The restart storm, the disabled interval and the cron change run on every store in the
//! conformance suite (`kaal_testkit::owed`, in memory by `conformance.rs`); these are the
//! cases of a running node and of the coordinator's own view.
#![allow(clippy::unwrap_used)] // tests state their expectations with unwrap

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, TimeZone, Utc};
use kaal_core::{Adapter as _, Config, Fire, Kaal, ManualClock, MemoryAdapter, NewDefinition};

fn t(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 8, 3, h, m, s).unwrap()
}

/// Recovery does not consult the dispatch log for where a job starts: with a logged fire
/// time from before the job's definition (written by an older node, say), a restart still
/// recovers nothing earlier than the definition.
#[test]
fn recovery_does_not_reach_back_to_the_earliest_logged_fire_time() {
    let clock = Arc::new(ManualClock::new(t(6, 0, 30)));
    let store = Arc::new(MemoryAdapter::with_clock(clock.clone()));
    use kaal_core::DispatchStatus;
    store
        .dispatch_registry()
        .unwrap()
        .log_dispatch("kaal:job", t(5, 0, 0), "old", DispatchStatus::Dispatched)
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let config = Config {
        node_id: "n".into(),
        recovery_startup_jitter: StdDuration::ZERO,
        ..Config::default()
    };
    let kaal = Kaal::with_clock(config, store.clone(), clock.clone()).unwrap();
    kaal.register("job", "*/10 * * * *", move |f: &Fire| tx.send(f.fire_time))
        .unwrap();
    clock.set(t(6, 25, 0));
    kaal.recover_at(t(6, 25, 0));
    let ran: Vec<DateTime<Utc>> = rx.try_iter().collect();
    assert_eq!(ran, [t(6, 10, 0), t(6, 20, 0)]);
}

/// A node of namespace `kaal` over `store`, sending the fire times `job` runs to `tx`; the
/// job is registered with `cron` (re-registering keeps the stored enabled state).
fn node_with(
    store: &Arc<MemoryAdapter>,
    clock: &Arc<ManualClock>,
    cron: &str,
    tx: &mpsc::Sender<DateTime<Utc>>,
) -> Kaal {
    let config = Config {
        node_id: "owed".into(),
        recovery_startup_jitter: StdDuration::ZERO,
        ..Config::default()
    };
    let kaal = Kaal::with_clock(config, store.clone(), clock.clone()).unwrap();
    let tx = tx.clone();
    kaal.register("job", cron, move |f: &Fire| tx.send(f.fire_time))
        .unwrap();
    kaal
}

/// Ticks `kaal` every 5 s from `from` to `to`, moving `clock` along.
fn tick_through(kaal: &Kaal, clock: &ManualClock, from: DateTime<Utc>, to: DateTime<Utc>) {
    let mut now = from;
    while now <= to {
        clock.set(now);
        kaal.tick_at(now);
        now += Duration::seconds(5);
    }
}

/// A running node that did not tick while the job was disabled (paused, say) does not run
/// the disabled minutes when it ticks again: its kept progress is held to the re-enable.
#[test]
fn a_node_that_slept_through_a_disable_and_re_enable_does_not_run_the_disabled_minutes() {
    let clock = Arc::new(ManualClock::new(t(1, 30, 10)));
    let store = Arc::new(MemoryAdapter::with_clock(clock.clone()));
    let (tx, rx) = mpsc::channel();
    let kaal = node_with(&store, &clock, "* * * * *", &tx);
    tick_through(&kaal, &clock, t(1, 30, 10), t(1, 33, 5));
    clock.set(t(1, 33, 10));
    kaal.disable("job").unwrap().unwrap();
    clock.set(t(1, 35, 50));
    kaal.enable("job").unwrap().unwrap();
    tick_through(&kaal, &clock, t(1, 36, 5), t(1, 37, 5));
    let ran: Vec<DateTime<Utc>> = rx.try_iter().collect();
    assert_eq!(
        ran,
        [
            t(1, 31, 0),
            t(1, 32, 0),
            t(1, 33, 0),
            t(1, 36, 0),
            t(1, 37, 0)
        ]
    );
}

/// A running node that sees the cron change from hourly to every minute starts the new cron
/// at the change (05:30:20), not `window_lookback` before its tick: 05:30 was never owed.
#[test]
fn a_running_node_starts_a_changed_cron_at_the_change() {
    let clock = Arc::new(ManualClock::new(t(4, 50, 0)));
    let store = Arc::new(MemoryAdapter::with_clock(clock.clone()));
    let (tx, rx) = mpsc::channel();
    let kaal = node_with(&store, &clock, "0 * * * *", &tx);
    clock.set(t(5, 0, 5));
    kaal.tick_at(t(5, 0, 5));
    clock.set(t(5, 30, 20));
    store
        .definition_registry()
        .unwrap()
        .upsert_definition("kaal", NewDefinition::new("job", "* * * * *"))
        .unwrap();
    clock.set(t(5, 31, 5));
    kaal.tick_at(t(5, 31, 5));
    let ran: Vec<DateTime<Utc>> = rx.try_iter().collect();
    assert_eq!(ran, [t(5, 0, 0), t(5, 31, 0)]);
}

/// Re-applying an unchanged definition (as `kaal start` does with its file, or a code
/// registration on every restart) keeps `schedule_since`, so a later restart still recovers
/// every fire time owed since the job was created.
#[test]
fn re_applying_an_unchanged_definition_keeps_schedule_since() {
    let clock = Arc::new(ManualClock::new(t(6, 0, 30)));
    let store = Arc::new(MemoryAdapter::with_clock(clock.clone()));
    let defs = store.definition_registry().unwrap();
    let first = defs
        .upsert_definition("kaal", NewDefinition::new("job", "*/10 * * * *"))
        .unwrap();
    assert_eq!(first.schedule_since, t(6, 0, 30));
    for minute in [5, 15, 24] {
        clock.set(t(6, minute, 0));
        let again = defs
            .upsert_definition("kaal", NewDefinition::new("job", "*/10 * * * *"))
            .unwrap();
        assert_eq!(
            (again.schedule_since, again.updated_at),
            (t(6, 0, 30), t(6, minute, 0))
        );
    }
    let (tx, rx) = mpsc::channel();
    clock.set(t(6, 25, 0));
    let kaal = node_with(&store, &clock, "*/10 * * * *", &tx);
    assert_eq!(
        defs.find_definition("kaal", "job")
            .unwrap()
            .unwrap()
            .schedule_since,
        t(6, 0, 30),
        "registering the same cron moved it"
    );
    kaal.recover_at(t(6, 25, 0));
    let ran: Vec<DateTime<Utc>> = rx.try_iter().collect();
    assert_eq!(ran, [t(6, 10, 0), t(6, 20, 0)]);
}

/// `schedule_since` is stamped by the store's (the database's) clock and compared with the
/// node's: a node whose clock is 5 s behind sees a job created a moment ago as created in
/// its future. That is still a real-time pass (within `max_clock_offset`), so the job's
/// first tick does not run the minute it was created in — it used to take the instant for
/// a replay of the past and run 09:00 for a job created at 09:00:33.
#[test]
fn a_node_behind_the_database_clock_does_not_run_the_minute_before_a_new_job() {
    let database = Arc::new(ManualClock::new(t(9, 0, 33)));
    let node_clock = Arc::new(ManualClock::new(t(9, 0, 28)));
    let store = Arc::new(MemoryAdapter::with_clock(database.clone()));
    let (tx, rx) = mpsc::channel();
    let config = Config {
        node_id: "behind".into(),
        recovery_startup_jitter: StdDuration::ZERO,
        ..Config::default()
    };
    let kaal = Kaal::with_clock(config, store.clone(), node_clock.clone()).unwrap();
    kaal.register("job", "* * * * *", move |f: &Fire| tx.send(f.fire_time))
        .unwrap();
    kaal.recover_at(t(9, 0, 28));
    kaal.tick_at(t(9, 0, 28));
    for second in [0, 30] {
        let now = t(9, 1, second);
        node_clock.set(now);
        database.set(now + Duration::seconds(5));
        kaal.tick_at(now);
    }
    let ran: Vec<DateTime<Utc>> = rx.try_iter().collect();
    assert_eq!(ran, [t(9, 1, 0)], "09:00 was before the job existed");
}
