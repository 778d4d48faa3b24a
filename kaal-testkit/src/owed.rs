//! What is owed, on every store: a fire time from before a job's current schedule came into
//! force (its creation, last cron change or last re-enable) is never run — not by the first
//! tick, not by recovery — and restarts cannot reach further back. The store stamps
//! `schedule_since`; these behaviours replay hours of simulated time through a store opened
//! with a clock ([`Backend::open_with_clock`]).

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, TimeZone, Utc};
use kaal_core::{Adapter, Config, DispatchStatus, Fire, Kaal, ManualClock, NewDefinition};

use crate::{Backend, TestStore};

fn t(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 8, 3, h, m, s)
        .single()
        .expect("a valid instant")
}

/// The store of a fresh test, opened with a manual clock standing at `start`; `None` when
/// the backend cannot take a clock.
fn clocked(
    backend: &dyn Backend,
    store: &TestStore<'_>,
    start: DateTime<Utc>,
) -> Option<(Arc<dyn Adapter>, Arc<ManualClock>)> {
    let clock = Arc::new(ManualClock::new(start));
    let adapter = backend.open_with_clock(&store.locator, clock.clone())?;
    Some((adapter, clock))
}

/// A node `id` of namespace `kaal` running `job` on `cron`, sending fire times to `tx`.
fn node(
    adapter: &Arc<dyn Adapter>,
    clock: &Arc<ManualClock>,
    id: &str,
    cron: &str,
    tx: &mpsc::Sender<DateTime<Utc>>,
) -> Kaal {
    let config = Config {
        node_id: id.into(),
        recovery_startup_jitter: StdDuration::ZERO,
        ..Config::default()
    };
    let kaal = Kaal::with_clock(config, adapter.clone(), clock.clone()).expect("a valid node");
    let tx = tx.clone();
    kaal.register("job", cron, move |f: &Fire| Ok(tx.send(f.fire_time)?))
        .expect("job registers");
    kaal
}

fn tick_through(kaal: &Kaal, clock: &ManualClock, from: DateTime<Utc>, to: DateTime<Utc>) {
    let mut now = from;
    while now <= to {
        clock.set(now);
        kaal.tick_at(now);
        now += Duration::seconds(5);
    }
}

/// A job created at 01:48:43, its node restarted 20 times within 19 s (each restart a
/// recovery pass over a day, then a tick), then ticking on to 01:52: it runs 01:49 … 01:52
/// once each and nothing before its creation.
pub fn a_restart_storm_runs_each_owed_fire_time_once_and_nothing_earlier(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let Some((adapter, clock)) = clocked(backend, &store, t(1, 48, 43)) else {
        return;
    };
    let (tx, rx) = mpsc::channel();
    for restart in 0..20 {
        let now = t(1, 48, 43) + Duration::seconds(restart);
        clock.set(now);
        let kaal = node(&adapter, &clock, "storm", "* * * * *", &tx);
        kaal.recover_at(now);
        kaal.tick_at(now);
    }
    let kaal = node(&adapter, &clock, "storm", "* * * * *", &tx);
    tick_through(&kaal, &clock, t(1, 49, 2), t(1, 52, 22));
    let ran: Vec<DateTime<Utc>> = rx.try_iter().collect();
    assert_eq!(
        ran,
        [t(1, 49, 0), t(1, 50, 0), t(1, 51, 0), t(1, 52, 0)],
        "each owed fire time once, none before 01:48:43"
    );
}

/// Disabled 01:33:10–01:36:20 while no node ran, enabled, then a node starts with a day's
/// recovery window: nothing from the disabled minutes runs.
pub fn a_restart_after_a_disabled_interval_runs_nothing_from_it(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let Some((adapter, clock)) = clocked(backend, &store, t(1, 30, 10)) else {
        return;
    };
    let (tx, rx) = mpsc::channel();
    let first = node(&adapter, &clock, "first", "* * * * *", &tx);
    tick_through(&first, &clock, t(1, 30, 10), t(1, 33, 5));
    clock.set(t(1, 33, 10));
    first.disable("job").expect("disable").expect("stored");
    drop(first);
    clock.set(t(1, 36, 20));
    let defs = adapter.definition_registry().expect("a definition store");
    let enabled = defs
        .enable_definition("kaal", "job")
        .expect("enable")
        .expect("stored");
    assert_eq!(enabled.schedule_since, t(1, 36, 20));

    clock.set(t(1, 36, 30));
    let second = node(&adapter, &clock, "second", "* * * * *", &tx);
    second.recover_at(t(1, 36, 30));
    tick_through(&second, &clock, t(1, 36, 30), t(1, 38, 5));
    let ran: Vec<DateTime<Utc>> = rx.try_iter().collect();
    assert_eq!(
        ran,
        [
            t(1, 31, 0),
            t(1, 32, 0),
            t(1, 33, 0),
            t(1, 37, 0),
            t(1, 38, 0)
        ],
        "nothing from the disabled minutes"
    );
}

/// Hourly since 00:10, changed to every minute at 05:30:20, then a restart with a day's
/// recovery window: 05:31 and 05:32 run — no every-minute fire time before the change.
pub fn a_restart_after_a_cron_change_runs_nothing_of_the_new_cron_before_it(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let Some((adapter, clock)) = clocked(backend, &store, t(0, 10, 0)) else {
        return;
    };
    let (tx, rx) = mpsc::channel();
    let first = node(&adapter, &clock, "first", "0 * * * *", &tx);
    for hour in 1..=5 {
        let now = t(hour, 0, 5);
        clock.set(now);
        first.tick_at(now);
    }
    drop(first);
    clock.set(t(5, 30, 20));
    let changed = adapter
        .definition_registry()
        .expect("a definition store")
        .upsert_definition("kaal", NewDefinition::new("job", "* * * * *"))
        .expect("upsert");
    assert_eq!(
        (changed.created_at, changed.schedule_since),
        (t(0, 10, 0), t(5, 30, 20))
    );
    clock.set(t(5, 32, 10));
    let second = node(&adapter, &clock, "second", "* * * * *", &tx);
    second.recover_at(t(5, 32, 10));
    second.tick_at(t(5, 32, 10));
    let ran: Vec<DateTime<Utc>> = rx.try_iter().collect();
    assert_eq!(
        ran,
        [
            t(1, 0, 0),
            t(2, 0, 0),
            t(3, 0, 0),
            t(4, 0, 0),
            t(5, 0, 0),
            t(5, 31, 0),
            t(5, 32, 0)
        ],
        "no every-minute fire time before the change"
    );
}

/// Recovery does not consult the dispatch log for where a job starts: with a logged fire
/// time from before the job's definition (written by an older node, say), a restart still
/// recovers nothing earlier than the definition.
pub fn recovery_does_not_reach_back_to_the_earliest_logged_fire_time(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let Some((adapter, clock)) = clocked(backend, &store, t(6, 0, 30)) else {
        return;
    };
    adapter
        .dispatch_registry()
        .expect("a dispatch log")
        .log_dispatch("kaal:job", t(5, 0, 0), "old", DispatchStatus::Dispatched)
        .expect("log");
    let (tx, rx) = mpsc::channel();
    let kaal = node(&adapter, &clock, "n", "*/10 * * * *", &tx);
    clock.set(t(6, 25, 0));
    kaal.recover_at(t(6, 25, 0));
    let ran: Vec<DateTime<Utc>> = rx.try_iter().collect();
    assert_eq!(ran, [t(6, 10, 0), t(6, 20, 0)]);
}

/// A running node that did not tick while the job was disabled (paused, say) does not run
/// the disabled minutes when it ticks again: its kept progress is held to the re-enable.
pub fn a_node_that_slept_through_a_disable_and_re_enable_does_not_run_the_disabled_minutes(
    backend: &dyn Backend,
) {
    let store = TestStore::new(backend);
    let Some((adapter, clock)) = clocked(backend, &store, t(1, 30, 10)) else {
        return;
    };
    let (tx, rx) = mpsc::channel();
    let kaal = node(&adapter, &clock, "owed", "* * * * *", &tx);
    tick_through(&kaal, &clock, t(1, 30, 10), t(1, 33, 5));
    clock.set(t(1, 33, 10));
    kaal.disable("job").expect("disable").expect("stored");
    clock.set(t(1, 35, 50));
    kaal.enable("job").expect("enable").expect("stored");
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
pub fn a_running_node_starts_a_changed_cron_at_the_change(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let Some((adapter, clock)) = clocked(backend, &store, t(4, 50, 0)) else {
        return;
    };
    let (tx, rx) = mpsc::channel();
    let kaal = node(&adapter, &clock, "owed", "0 * * * *", &tx);
    clock.set(t(5, 0, 5));
    kaal.tick_at(t(5, 0, 5));
    clock.set(t(5, 30, 20));
    adapter
        .definition_registry()
        .expect("a definition store")
        .upsert_definition("kaal", NewDefinition::new("job", "* * * * *"))
        .expect("upsert");
    clock.set(t(5, 31, 5));
    kaal.tick_at(t(5, 31, 5));
    let ran: Vec<DateTime<Utc>> = rx.try_iter().collect();
    assert_eq!(ran, [t(5, 0, 0), t(5, 31, 0)]);
}

/// Re-applying an unchanged definition (as `kaal start` does with its file, or a code
/// registration on every restart) keeps `schedule_since`, so a later restart still recovers
/// every fire time owed since the job was created.
pub fn re_applying_an_unchanged_definition_keeps_schedule_since(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let Some((adapter, clock)) = clocked(backend, &store, t(6, 0, 30)) else {
        return;
    };
    let defs = adapter.definition_registry().expect("a definition store");
    let first = defs
        .upsert_definition("kaal", NewDefinition::new("job", "*/10 * * * *"))
        .expect("upsert");
    assert_eq!(first.schedule_since, t(6, 0, 30));
    for minute in [5, 15, 24] {
        clock.set(t(6, minute, 0));
        let again = defs
            .upsert_definition("kaal", NewDefinition::new("job", "*/10 * * * *"))
            .expect("upsert");
        assert_eq!(
            (again.schedule_since, again.updated_at),
            (t(6, 0, 30), t(6, minute, 0))
        );
    }
    let (tx, rx) = mpsc::channel();
    clock.set(t(6, 25, 0));
    let kaal = node(&adapter, &clock, "owed", "*/10 * * * *", &tx);
    let stored = defs
        .find_definition("kaal", "job")
        .expect("find")
        .expect("stored");
    assert_eq!(
        stored.schedule_since,
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
pub fn a_node_behind_the_database_clock_does_not_run_the_minute_before_a_new_job(
    backend: &dyn Backend,
) {
    let store = TestStore::new(backend);
    let Some((adapter, database)) = clocked(backend, &store, t(9, 0, 33)) else {
        return;
    };
    let node_clock = Arc::new(ManualClock::new(t(9, 0, 28)));
    let (tx, rx) = mpsc::channel();
    let kaal = node(&adapter, &node_clock, "behind", "* * * * *", &tx);
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
