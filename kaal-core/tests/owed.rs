//! What is owed: a fire time from before a job was defined is never owed — not to the first
//! tick, not to recovery — and restarts cannot reach further back by reading the dispatch log.
#![allow(clippy::unwrap_used)] // tests state their expectations with unwrap

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, TimeZone, Utc};
use kaal_core::{Config, Fire, Kaal, ManualClock, MemoryAdapter};

fn t(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 8, 3, h, m, s).unwrap()
}

/// A job created at 01:48:43; its node restarted 20 times within 19 s (each restart a new
/// node: recovery over a day, then a tick), then ticking on to 01:52. It runs 01:49, 01:50,
/// 01:51 and 01:52 once each, and nothing before its creation — each restart used to go
/// `window_lookback` further back than the earliest fire time in the log.
#[test]
fn a_restart_storm_runs_each_owed_fire_time_once_and_nothing_before_the_job_existed() {
    let clock = Arc::new(ManualClock::new(t(1, 48, 43)));
    let store = Arc::new(MemoryAdapter::with_clock(clock.clone()));
    let (tx, rx) = mpsc::channel();
    let node = || {
        let config = Config {
            node_id: "storm".into(),
            recovery_startup_jitter: StdDuration::ZERO,
            ..Config::default()
        };
        let kaal = Kaal::with_clock(config, store.clone(), clock.clone()).unwrap();
        let tx = tx.clone();
        kaal.register("job", "* * * * *", move |f: &Fire| tx.send(f.fire_time))
            .unwrap();
        kaal
    };
    for restart in 0..20 {
        let now = t(1, 48, 43) + Duration::seconds(restart);
        clock.set(now);
        let kaal = node();
        kaal.recover_at(now);
        kaal.tick_at(now);
    }
    let kaal = node();
    for second in (0..=200).step_by(5) {
        let now = t(1, 49, 2) + Duration::seconds(second);
        clock.set(now);
        kaal.tick_at(now);
    }
    let ran: Vec<DateTime<Utc>> = rx.try_iter().collect();
    assert_eq!(
        ran,
        [t(1, 49, 0), t(1, 50, 0), t(1, 51, 0), t(1, 52, 0)],
        "each owed fire time once, none before 01:48:43"
    );
}

/// Recovery does not consult the dispatch log for where a job starts: with a logged fire
/// time from before the job's definition (written by an older node, say), a restart still
/// recovers nothing earlier than the definition.
#[test]
fn recovery_does_not_reach_back_to_the_earliest_logged_fire_time() {
    let clock = Arc::new(ManualClock::new(t(6, 0, 30)));
    let store = Arc::new(MemoryAdapter::with_clock(clock.clone()));
    use kaal_core::{Adapter as _, DispatchStatus};
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
