//! What is owed, on every store: a fire time from before a job's current schedule came into
//! force (its creation, last cron change or last re-enable) is never run — not by the first
//! tick, not by recovery — and restarts cannot reach further back. The store stamps
//! `schedule_since`; these behaviours replay hours of simulated time through a store opened
//! with a clock ([`Backend::open_with_clock`]).

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, TimeZone, Utc};
use kaal_core::{Adapter, Config, Fire, Kaal, ManualClock, NewDefinition};

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
    kaal.register("job", cron, move |f: &Fire| tx.send(f.fire_time))
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
