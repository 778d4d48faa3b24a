//! Coordinator scenarios: what a fleet of nodes sharing one store must do.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;

use chrono::{DateTime, Duration, TimeZone, Utc};
use kaal_core::{
    chrono_tz::Tz, lock_key, Adapter, Config, CronExpr, DefinitionSource, DispatchStatus, Fire,
    Kaal, NewDefinition,
};

use crate::{Backend, TestStore};

/// Where callbacks record what they ran: `(key, fire_time)` in call order.
pub type Ledger = Arc<Mutex<Vec<(String, DateTime<Utc>)>>>;

/// The configuration the scenarios use: defaults, a fixed node id, no start-up jitter.
pub fn scenario_config(node_id: &str) -> Config {
    Config {
        node_id: node_id.to_string(),
        recovery_startup_jitter: std::time::Duration::ZERO,
        ..Config::default()
    }
}

/// A node on `adapter` whose callbacks for `jobs` (`(key, cron)`) record into `ledger`.
pub fn node(
    adapter: Arc<dyn Adapter>,
    node_id: &str,
    jobs: &[(&str, &str)],
    ledger: &Ledger,
) -> Kaal {
    node_with(scenario_config(node_id), adapter, jobs, ledger)
}

/// [`node`] with a given configuration.
pub fn node_with(
    config: Config,
    adapter: Arc<dyn Adapter>,
    jobs: &[(&str, &str)],
    ledger: &Ledger,
) -> Kaal {
    let kaal = Kaal::new(config, adapter).expect("scenario config is valid");
    for (key, cron) in jobs {
        kaal.register(key, cron, recorder(ledger))
            .expect("registration failed");
    }
    kaal
}

/// A callback that appends its fire to `ledger`.
pub fn recorder(
    ledger: &Ledger,
) -> impl Fn(&Fire) -> Result<(), kaal_core::JobError> + Send + Sync + 'static {
    let ledger = ledger.clone();
    move |fire: &Fire| {
        ledger
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((fire.key.clone(), fire.fire_time));
        Ok(())
    }
}

fn t(hour: u32, minute: u32, second: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, hour, minute, second)
        .unwrap()
}

/// What ran since the last call, in the order a tick claims (fire time, then key): runs
/// go to a pool and may end in any order.
fn taken(ledger: &Ledger) -> Vec<(String, DateTime<Utc>)> {
    let mut taken = std::mem::take(&mut *ledger.lock().unwrap_or_else(|p| p.into_inner()));
    taken.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    taken
}

/// Every `(key, fire_time)` of `jobs` in `[from, to]`, ordered as a tick dispatches them.
pub fn due_between(
    jobs: &[(&str, &str)],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<(String, DateTime<Utc>)> {
    let mut due = Vec::new();
    for (key, cron) in jobs {
        for fire in CronExpr::parse(cron)
            .expect("valid cron")
            .fire_times(from, to, Tz::UTC)
        {
            due.push((key.to_string(), fire));
        }
    }
    due.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    due
}

fn pairs(fires: &[Fire]) -> Vec<(String, DateTime<Utc>)> {
    fires.iter().map(|f| (f.key.clone(), f.fire_time)).collect()
}

/// A code-registered job and a file-sourced definition bound to a callback are dispatched in
/// the same tick, with the right idempotency keys.
pub fn code_and_file_definitions_dispatch_in_the_same_tick(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let ledger = Ledger::default();
    let kaal = node(store.open(), "n1", &[("code-job", "0 * * * *")], &ledger);
    let mut file_def = NewDefinition::new("file-job", "0 * * * *");
    file_def.source = DefinitionSource::File;
    kaal.adapter()
        .definition_registry()
        .expect("no definition registry")
        .upsert_definition(&kaal.config().namespace, file_def)
        .unwrap();
    kaal.registry()
        .upsert(
            "file-job",
            "0 * * * *",
            kaal_core::callback(recorder(&ledger)),
        )
        .unwrap();
    let report = kaal.tick_at(t(10, 0, 10));
    let expected = vec![
        ("code-job".to_string(), t(10, 0, 0)),
        ("file-job".to_string(), t(10, 0, 0)),
    ];
    assert_eq!(pairs(&report.dispatched), expected);
    assert_eq!(taken(&ledger), expected);
    let keys: Vec<&str> = report
        .dispatched
        .iter()
        .map(|f| f.idempotency_key.as_str())
        .collect();
    let unix = t(10, 0, 0).timestamp();
    assert_eq!(
        keys,
        [
            format!("kaal-code-job-{unix}"),
            format!("kaal-file-job-{unix}")
        ]
    );
}

/// A disabled definition is not dispatched; after `enable` its next fire time is.
pub fn disabled_definition_is_dispatched_only_after_enable(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let ledger = Ledger::default();
    let kaal = node(
        store.open(),
        "n1",
        &[("job", "0 * * * *"), ("other", "0 * * * *")],
        &ledger,
    );
    assert!(
        !kaal
            .disable("job")
            .unwrap()
            .expect("definition not stored")
            .enabled
    );
    kaal.tick_at(t(10, 0, 10));
    assert_eq!(taken(&ledger), [("other".to_string(), t(10, 0, 0))]);
    assert!(kaal.enable("job").unwrap().unwrap().enabled);
    kaal.tick_at(t(11, 0, 10));
    assert_eq!(
        taken(&ledger),
        [
            ("job".to_string(), t(11, 0, 0)),
            ("other".to_string(), t(11, 0, 0))
        ]
    );
    assert!(!kaal.dispatched("job", t(10, 0, 0)).unwrap());
}

/// A coordinator rebuilt (a new process) with the same callbacks dispatches the next fire
/// time and nothing its predecessor already dispatched; re-registering keeps a disable.
pub fn rebuilt_coordinator_dispatches_the_next_tick(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let ledger = Ledger::default();
    let jobs = [("job", "0 * * * *"), ("paused", "0 * * * *")];
    let first = node(store.open(), "n1", &jobs, &ledger);
    first.disable("paused").unwrap();
    first.tick_at(t(10, 0, 10));
    drop(first);
    assert_eq!(taken(&ledger), [("job".to_string(), t(10, 0, 0))]);
    let second = node(store.open(), "n1", &jobs, &ledger);
    second.tick_at(t(10, 0, 40));
    assert_eq!(
        taken(&ledger),
        [],
        "the rebuilt node replayed a dispatched fire time"
    );
    second.tick_at(t(11, 0, 5));
    assert_eq!(
        taken(&ledger),
        [("job".to_string(), t(11, 0, 0))],
        "re-registration re-enabled a disabled job"
    );
}

/// Two nodes sharing a store see the same enabled state.
pub fn two_coordinators_share_the_enabled_state(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let (ledger_a, ledger_b) = (Ledger::default(), Ledger::default());
    let a = node(store.open(), "a", &[("job", "0 * * * *")], &ledger_a);
    let b = node(store.open(), "b", &[("job", "0 * * * *")], &ledger_b);
    b.tick_at(t(9, 0, 5));
    assert_eq!(taken(&ledger_b), [("job".to_string(), t(9, 0, 0))]);
    a.disable("job").unwrap();
    b.tick_at(t(10, 0, 5));
    a.tick_at(t(10, 0, 6));
    assert!(
        taken(&ledger_a).is_empty() && taken(&ledger_b).is_empty(),
        "a disabled job ran"
    );
    let seen_by_b = b
        .adapter()
        .definition_registry()
        .unwrap()
        .find_definition(&b.config().namespace, "job")
        .unwrap()
        .unwrap();
    assert!(!seen_by_b.enabled);
    b.enable("job").unwrap();
    a.tick_at(t(11, 0, 5));
    b.tick_at(t(11, 0, 6));
    assert_eq!(taken(&ledger_a), [("job".to_string(), t(11, 0, 0))]);
    assert!(
        taken(&ledger_b).is_empty(),
        "b dispatched what a had claimed"
    );
}

/// Four nodes, each ticked by two threads at the same instants, over 30 minutes of
/// per-minute and 5-minute jobs: every fire time dispatched exactly once, none missing.
pub fn coordinators_ticking_the_same_instant_dispatch_each_fire_time_once(backend: &dyn Backend) {
    const NODES: usize = 4;
    const THREADS_PER_NODE: usize = 2;
    const MINUTES: i64 = 30;
    let store = TestStore::new(backend);
    let ledger = Ledger::default();
    let jobs = [
        ("every-minute", "* * * * *"),
        ("every-five", "*/5 * * * *"),
        ("odd", "1-59/2 * * * *"),
    ];
    let nodes: Vec<Arc<Kaal>> = (0..NODES)
        .map(|i| Arc::new(node(store.open(), &format!("node-{i}"), &jobs, &ledger)))
        .collect();
    let start = t(12, 0, 0);
    let barrier = Arc::new(Barrier::new(NODES * THREADS_PER_NODE));
    let handles: Vec<_> = (0..NODES * THREADS_PER_NODE)
        .map(|i| {
            let (kaal, barrier) = (nodes[i % NODES].clone(), barrier.clone());
            thread::spawn(move || {
                let mut errors = Vec::new();
                for minute in 0..MINUTES {
                    barrier.wait();
                    errors.extend(
                        kaal.tick_at(start + Duration::minutes(minute) + Duration::seconds(3))
                            .errors,
                    );
                }
                errors
            })
        })
        .collect();
    for handle in handles {
        let errors = handle.join().expect("ticking thread panicked");
        assert!(
            errors.is_empty(),
            "backend errors under contention: {errors:?}"
        );
    }
    let lookback = Duration::from_std(scenario_config("x").window_lookback).unwrap();
    let last = start + Duration::minutes(MINUTES - 1) + Duration::seconds(3);
    let expected: BTreeSet<(String, DateTime<Utc>)> =
        due_between(&jobs, start + Duration::seconds(3) - lookback, last)
            .into_iter()
            .collect();
    let mut counts: BTreeMap<(String, DateTime<Utc>), usize> = BTreeMap::new();
    for entry in taken(&ledger) {
        *counts.entry(entry).or_default() += 1;
    }
    let duplicates: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    let missing: Vec<_> = expected
        .iter()
        .filter(|k| !counts.contains_key(*k))
        .collect();
    let unexpected: Vec<_> = counts.keys().filter(|k| !expected.contains(*k)).collect();
    assert!(
        duplicates.is_empty(),
        "dispatched more than once: {duplicates:?}"
    );
    assert!(missing.is_empty(), "never dispatched: {missing:?}");
    assert!(
        unexpected.is_empty(),
        "dispatched but not due: {unexpected:?}"
    );
    assert_eq!(counts.len(), expected.len());
}

/// After 3 hours of dispatching, a 30-minute outage and leases long expired, a restarted
/// node's recovery (3-hour window) dispatches each missed fire time once and replays
/// nothing; a second restart dispatches nothing at all.
pub fn restart_with_recovery_replays_nothing_already_dispatched(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let ledger = Ledger::default();
    let jobs = [("minutely", "* * * * *"), ("quarterly", "*/15 * * * *")];
    let config = |node_id: &str| Config {
        recovery_window: std::time::Duration::from_secs(3 * 3600),
        ..scenario_config(node_id)
    };
    let first = node_with(config("before"), store.open(), &jobs, &ledger);
    let lookback = Duration::from_std(first.config().window_lookback).unwrap();
    let first_tick = t(6, 0, 2);
    let last_tick = first_tick + Duration::minutes(179);
    for minute in 0..180 {
        let report = first.tick_at(first_tick + Duration::minutes(minute));
        assert!(report.errors.is_empty(), "{:?}", report.errors);
    }
    let before = taken(&ledger);
    assert_eq!(before, due_between(&jobs, first_tick - lookback, last_tick));
    // Leases last lease_ttl; the restart comes long after. Release them, as expiry would,
    // so that only the dispatch log stands between recovery and a replay.
    let adapter = first.adapter().clone();
    drop(first);
    for (key, fire) in &before {
        assert!(adapter.release(&lock_key("kaal", key, *fire)).unwrap());
    }
    let restart_at = last_tick + Duration::minutes(30);
    let second = node_with(config("after"), store.open(), &jobs, &ledger);
    let report = second.recover_at(restart_at);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let replayed: Vec<_> = pairs(&report.dispatched)
        .into_iter()
        .filter(|p| before.contains(p))
        .collect();
    assert!(
        replayed.is_empty(),
        "recovery replayed {} fire times: {replayed:?}",
        replayed.len()
    );
    let recovered = taken(&ledger);
    assert_eq!(
        recovered,
        due_between(&jobs, last_tick + Duration::seconds(1), restart_at),
        "recovery must dispatch exactly the missed fire times"
    );
    assert!(
        recovered.len() >= 30,
        "the outage missed {} fire times",
        recovered.len()
    );
    // Released by their holder: session locks (advisory, named) only release on the
    // session that took them.
    let holder = second.adapter().clone();
    for (key, fire) in &recovered {
        assert!(holder.release(&lock_key("kaal", key, *fire)).unwrap());
    }
    drop(second);
    let third = node_with(config("again"), store.open(), &jobs, &ledger);
    let again_at = restart_at + Duration::seconds(20);
    let report = third.recover_at(again_at);
    assert!(
        report.dispatched.is_empty(),
        "second restart replayed {:?}",
        pairs(&report.dispatched)
    );
    assert_eq!(
        report.already_dispatched.len(),
        due_between(&jobs, again_at - Duration::hours(3), again_at).len(),
        "the whole recovery window must be checked against the log"
    );
}

/// A callback that errors and one that panics are recorded as `failed`; the others in the
/// same tick still run, and the next tick runs normally.
pub fn failing_callbacks_are_logged_and_do_not_stop_the_tick(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let ledger = Ledger::default();
    let kaal = Kaal::new(scenario_config("n1"), store.open()).unwrap();
    kaal.register("errs", "0 * * * *", |_: &Fire| Err("disk full".into()))
        .unwrap();
    kaal.register(
        "panics",
        "0 * * * *",
        |_: &Fire| -> Result<(), kaal_core::JobError> { panic!("bug in job") },
    )
    .unwrap();
    kaal.register("works", "0 * * * *", recorder(&ledger))
        .unwrap();
    let report = kaal.tick_at(t(10, 0, 1));
    assert_eq!(report.dispatched.len(), 3);
    let failed: Vec<(&str, bool)> = report
        .failed
        .iter()
        .map(|(fire, why)| {
            (
                fire.key.as_str(),
                why.contains("disk full") || why.contains("bug in job"),
            )
        })
        .collect();
    assert_eq!(failed, [("errs", true), ("panics", true)]);
    assert_eq!(taken(&ledger), [("works".to_string(), t(10, 0, 0))]);
    let log = kaal.adapter().dispatch_registry().unwrap();
    let status = |key: &str| {
        log.find_dispatch(&kaal_core::dispatch_log_key("kaal", key), t(10, 0, 0))
            .unwrap()
            .map(|r| r.status)
    };
    assert_eq!(status("errs"), Some(DispatchStatus::Failed));
    assert_eq!(status("panics"), Some(DispatchStatus::Failed));
    assert_eq!(status("works"), Some(DispatchStatus::Succeeded));
    kaal.tick_at(t(11, 0, 1));
    assert_eq!(taken(&ledger), [("works".to_string(), t(11, 0, 0))]);
}
