//! Coordinator behaviour on the memory backend with a manual clock: windows, the future,
//! enable/disable, and missed-run recovery through `start`, with the dispatch log on and off.
#![allow(clippy::unwrap_used)] // tests state their expectations with unwrap

use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, TimeZone, Utc};
use kaal_core::{Adapter, Config, Fire, Kaal, ManualClock, MemoryAdapter};

fn t(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 15, h, m, s).unwrap()
}

fn config() -> Config {
    Config {
        node_id: "test-node".into(),
        recovery_startup_jitter: StdDuration::ZERO,
        ..Config::default()
    }
}

/// A node on a memory store that runs on `clock`, whose jobs send their fires on a channel.
fn node(
    config: Config,
    adapter: &Arc<MemoryAdapter>,
    clock: &Arc<ManualClock>,
    jobs: &[(&str, &str)],
) -> (Kaal, Receiver<Fire>) {
    let kaal = Kaal::with_clock(config, adapter.clone(), clock.clone()).unwrap();
    let (tx, rx) = mpsc::channel();
    for (key, cron) in jobs {
        let tx = tx.clone();
        kaal.register(key, cron, move |fire: &Fire| Ok(tx.send(fire.clone())?))
            .unwrap();
    }
    (kaal, rx)
}

#[test]
fn every_minute_job_ticked_every_5_seconds_for_10_minutes_dispatches_10_times_in_order() {
    let clock = Arc::new(ManualClock::new(t(12, 0, 0)));
    let adapter = Arc::new(MemoryAdapter::with_clock(clock.clone()));
    let config = Config {
        window_lookback: StdDuration::from_secs(5),
        lease_ttl: StdDuration::from_secs(10),
        ..config()
    };
    let (kaal, rx) = node(config, &adapter, &clock, &[("minutely", "* * * * *")]);
    let mut dispatched_by_ticks = 0;
    for step in 0..120 {
        let now = t(12, 0, 0) + Duration::seconds(5 * step);
        clock.set(now);
        let report = kaal.tick_at(now);
        assert!(
            report.dispatched.iter().all(|f| f.fire_time <= now),
            "dispatched a fire time after now"
        );
        dispatched_by_ticks += report.dispatched.len();
    }
    let fires: Vec<Fire> = rx.try_iter().collect();
    assert_eq!(dispatched_by_ticks, 10);
    let expected: Vec<DateTime<Utc>> = (0..10).map(|m| t(12, m, 0)).collect();
    assert_eq!(
        fires.iter().map(|f| f.fire_time).collect::<Vec<_>>(),
        expected
    );
    for fire in &fires {
        assert_eq!(fire.key, "minutely");
        assert_eq!(
            fire.idempotency_key,
            format!("kaal-minutely-{}", fire.fire_time.timestamp())
        );
    }
}

#[test]
fn a_fire_time_later_than_now_is_never_dispatched() {
    let clock = Arc::new(ManualClock::new(t(12, 0, 0)));
    let adapter = Arc::new(MemoryAdapter::with_clock(clock.clone()));
    let (kaal, rx) = node(config(), &adapter, &clock, &[("soon", "5 12 * * *")]);
    clock.set(t(12, 4, 59));
    assert!(kaal.tick_at(t(12, 4, 59)).dispatched.is_empty());
    assert!(rx.try_recv().is_err());
    clock.set(t(12, 5, 0));
    let report = kaal.tick_at(t(12, 5, 0));
    assert_eq!(
        report
            .dispatched
            .iter()
            .map(|f| f.fire_time)
            .collect::<Vec<_>>(),
        [t(12, 5, 0)]
    );
}

#[test]
fn disabled_definition_never_dispatches_and_dispatches_again_after_enable() {
    let clock = Arc::new(ManualClock::new(t(0, 0, 0)));
    let adapter = Arc::new(MemoryAdapter::with_clock(clock.clone()));
    let (kaal, rx) = node(config(), &adapter, &clock, &[("job", "*/10 * * * *")]);
    kaal.disable("job").unwrap();
    for minute in 0..60 {
        clock.set(t(1, minute, 1));
        kaal.tick_at(t(1, minute, 1));
    }
    assert_eq!(rx.try_iter().count(), 0, "a disabled job dispatched");
    kaal.enable("job").unwrap();
    for minute in 0..60 {
        clock.set(t(2, minute, 1));
        kaal.tick_at(t(2, minute, 1));
    }
    let times: Vec<_> = rx.try_iter().map(|f| f.fire_time).collect();
    assert_eq!(times, (0..6).map(|i| t(2, i * 10, 0)).collect::<Vec<_>>());
}

#[test]
fn nothing_due_means_no_store_access_and_a_constant_cost_per_fire_time() {
    // A store that counts batch claims: each fire time must be claimed once per node,
    // however many ticks it stays inside the lookback window. The jobs are defined before
    // the first window, so all of it is owed.
    let clock = Arc::new(ManualClock::new(t(7, 57, 0)));
    let adapter = Arc::new(MemoryAdapter::with_clock(clock.clone()));
    let (kaal, rx) = node(
        config(),
        &adapter,
        &clock,
        &[("a", "* * * * *"), ("b", "*/2 * * * *")],
    );
    for step in 0..(12 * 20) {
        let now = t(8, 0, 0) + Duration::seconds(5 * step);
        clock.set(now);
        kaal.tick_at(now);
    }
    let fires: Vec<_> = rx.try_iter().collect();
    let mut seen = std::collections::BTreeSet::new();
    for fire in &fires {
        assert!(
            seen.insert((fire.key.clone(), fire.fire_time)),
            "{} {} dispatched twice",
            fire.key,
            fire.fire_time
        );
    }
    // (every minute from 07:58 .. 08:19) + (every 2 minutes from 07:58 .. 08:18)
    assert_eq!(fires.len(), 22 + 11);
    assert_eq!(
        adapter.lease_count(),
        33,
        "one lease per fire time, never retried"
    );
}

fn recovery_scenario(
    config: Config,
    outage: Duration,
) -> (Vec<Fire>, Vec<Fire>, Vec<DateTime<Utc>>) {
    let start = t(6, 0, 30);
    let clock = Arc::new(ManualClock::new(start));
    let adapter = Arc::new(MemoryAdapter::with_clock(clock.clone()));
    let jobs = [("minutely", "* * * * *")];
    let (before, before_rx) = node(config.clone(), &adapter, &clock, &jobs);
    for minute in 0..60 {
        clock.set(start + Duration::minutes(minute));
        before.tick_at(clock.now_for_test());
    }
    let pre: Vec<DateTime<Utc>> = before_rx.try_iter().map(|f| f.fire_time).collect();
    drop(before);
    let restart_at = start + Duration::minutes(59) + outage;
    clock.set(restart_at);

    let (after, after_rx) = node(config.clone(), &adapter, &clock, &jobs);
    assert!(after.start());
    assert!(
        after
            .coordinator()
            .wait_for_passes(2, StdDuration::from_secs(30)),
        "recovery pass did not finish"
    );
    assert!(
        after
            .coordinator()
            .wait_until_settled(StdDuration::from_secs(30)),
        "recovery did not catch up"
    );
    assert!(after.stop(StdDuration::from_secs(10)));
    // Runs go to a pool: they end (and report) in any order.
    let mut recovered: Vec<Fire> = after_rx.try_iter().collect();
    recovered.sort_by_key(|f| f.fire_time);

    clock.advance(Duration::seconds(20)); // no new fire time falls due
    let (again, again_rx) = node(config, &adapter, &clock, &jobs);
    assert!(again.start());
    assert!(again
        .coordinator()
        .wait_for_passes(2, StdDuration::from_secs(30)));
    assert!(again.stop(StdDuration::from_secs(10)));
    (recovered, again_rx.try_iter().collect(), pre)
}

trait NowForTest {
    fn now_for_test(&self) -> DateTime<Utc>;
}
impl NowForTest for ManualClock {
    fn now_for_test(&self) -> DateTime<Utc> {
        kaal_core::Clock::now(self)
    }
}

#[test]
fn start_recovers_a_3_hour_outage_once_and_a_second_restart_replays_nothing_with_the_log() {
    let config = Config {
        recovery_window: StdDuration::from_secs(4 * 3600),
        ..config()
    };
    let (recovered, replayed, before) = recovery_scenario(config, Duration::hours(3));
    let last_before = *before.last().unwrap();
    let times: Vec<_> = recovered.iter().map(|f| f.fire_time).collect();
    let expected: Vec<_> = (1..=180)
        .map(|m| last_before + Duration::minutes(m))
        .collect();
    assert_eq!(
        times, expected,
        "each missed fire time exactly once, none replayed"
    );
    assert!(
        replayed.is_empty(),
        "the second restart replayed {} fire times",
        replayed.len()
    );
}

#[test]
fn start_without_the_log_recovers_inside_a_window_below_lease_ttl_and_never_replays() {
    let invalid = Config {
        enable_log_dispatch_registry: false,
        ..config()
    };
    let problems = invalid.validate().unwrap_err().problems;
    assert_eq!(
        problems[0].field, "enable_log_dispatch_registry",
        "validate must refuse a config that replays"
    );
    let config = Config {
        enable_log_dispatch_registry: false,
        recovery_window: StdDuration::from_secs(120),
        ..config()
    };
    let (recovered, replayed, before) = recovery_scenario(config, Duration::hours(3));
    let last_before = *before.last().unwrap();
    let restart_at = t(6, 59, 30) + Duration::hours(3);
    let times: Vec<_> = recovered.iter().map(|f| f.fire_time).collect();
    assert_eq!(
        times,
        [
            restart_at - Duration::seconds(90),
            restart_at - Duration::seconds(30)
        ]
    );
    assert!(times.iter().all(|t| *t > last_before));
    assert!(
        replayed.is_empty(),
        "the second restart replayed {:?}",
        replayed.iter().map(|f| f.fire_time).collect::<Vec<_>>()
    );
}

#[test]
fn callback_panics_and_backend_free_ticks_keep_the_loop_running() {
    let clock = Arc::new(ManualClock::new(t(9, 0, 0)));
    let adapter = Arc::new(MemoryAdapter::with_clock(clock.clone()));
    let kaal = Kaal::with_clock(config(), adapter, clock.clone()).unwrap();
    let (tx, rx) = mpsc::channel();
    kaal.register(
        "boom",
        "* * * * *",
        |_: &Fire| -> Result<(), kaal_core::JobError> { panic!("always") },
    )
    .unwrap();
    kaal.register("ok", "* * * * *", move |f: &Fire| Ok(tx.send(f.fire_time)?))
        .unwrap();
    assert!(kaal.start());
    assert!(kaal
        .coordinator()
        .wait_for_passes(2, StdDuration::from_secs(30)));
    assert!(kaal.running(), "a panicking callback stopped the loop");
    assert!(kaal.stop(StdDuration::from_secs(10)));
    assert!(!kaal.running());
    assert!(rx.try_iter().count() > 0);
}

/// A store whose claims fail while `down` is set, as a database outage would.
struct FlakyStore {
    inner: MemoryAdapter,
    down: std::sync::atomic::AtomicBool,
}

impl kaal_core::Adapter for FlakyStore {
    fn acquire(&self, key: &str, ttl: StdDuration) -> Result<bool, kaal_core::LockError> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(kaal_core::LockError::new(
                "flaky",
                "acquire",
                key,
                "connection refused",
            ));
        }
        self.inner.acquire(key, ttl)
    }
    fn release(&self, key: &str) -> Result<bool, kaal_core::LockError> {
        self.inner.release(key)
    }
    fn dispatch_registry(&self) -> Option<&dyn kaal_core::DispatchRegistry> {
        self.inner.dispatch_registry()
    }
    fn definition_registry(&self) -> Option<&dyn kaal_core::DefinitionRegistry> {
        self.inner.definition_registry()
    }
}

#[test]
fn backend_errors_are_reported_and_the_fire_times_are_retried_after_the_outage() {
    // Defined before the first window, so every fire time in it is owed.
    let clock = Arc::new(ManualClock::new(t(2, 58, 0)));
    let store = Arc::new(FlakyStore {
        inner: MemoryAdapter::with_clock(clock.clone()),
        down: true.into(),
    });
    let kaal = Kaal::with_clock(config(), store.clone(), clock.clone()).unwrap();
    let (tx, rx) = mpsc::channel();
    kaal.register(
        "job",
        "* * * * *",
        move |f: &Fire| Ok(tx.send(f.fire_time)?),
    )
    .unwrap();
    // Down for 10 minutes, far longer than the 2-minute lookback.
    for minute in 0..10 {
        clock.set(t(3, minute, 5));
        let report = kaal.tick_at(t(3, minute, 5));
        assert!(report.dispatched.is_empty());
        assert_eq!(report.errors.len(), 1, "the outage must be reported");
        assert!(
            report.errors[0].contains("connection refused"),
            "{:?}",
            report.errors
        );
    }
    store.down.store(false, std::sync::atomic::Ordering::SeqCst);
    clock.set(t(3, 10, 5));
    let report = kaal.tick_at(t(3, 10, 5));
    assert!(report.errors.is_empty());
    let mut times: Vec<_> = rx.try_iter().collect();
    times.sort(); // runs end in any order
                  // Everything since the first window (02:59) is caught up, once.
    assert_eq!(
        times,
        (0..12)
            .map(|m| t(2, 59, 0) + Duration::minutes(m))
            .collect::<Vec<_>>()
    );
    clock.set(t(3, 10, 30));
    assert!(
        kaal.tick_at(t(3, 10, 30)).dispatched.is_empty(),
        "caught-up fire times dispatched twice"
    );
}

#[test]
fn an_unparsable_stored_definition_is_skipped_and_the_others_still_run() {
    let clock = Arc::new(ManualClock::new(t(3, 58, 0)));
    let adapter = Arc::new(MemoryAdapter::with_clock(clock.clone()));
    let (kaal, rx) = node(
        config(),
        &adapter,
        &clock,
        &[("good", "* * * * *"), ("bad", "* * * * *")],
    );
    use kaal_core::Adapter as _;
    let defs = adapter.definition_registry().unwrap();
    defs.upsert_definition(
        "kaal",
        kaal_core::NewDefinition::new("bad", "every tuesday"),
    )
    .unwrap();
    clock.set(t(4, 0, 0));
    let report = kaal.tick_at(t(4, 0, 1));
    assert!(report.errors.is_empty());
    let fires: Vec<_> = rx.try_iter().map(|f| (f.key, f.fire_time)).collect();
    assert_eq!(
        fires,
        [
            ("good".to_string(), t(3, 59, 0)),
            ("good".to_string(), t(4, 0, 0))
        ]
    );
}

#[test]
fn recovery_starts_no_earlier_than_when_the_job_was_defined() {
    let clock = Arc::new(ManualClock::new(t(1, 0, 0)));
    let adapter = Arc::new(MemoryAdapter::with_clock(clock.clone()));
    let config = Config {
        recovery_window: StdDuration::from_secs(4 * 3600),
        ..config()
    };
    // "old" was defined at 01:00 and never ran (the fleet was down); "new" is defined at 04:00.
    let (old_node, _old_rx) = node(config.clone(), &adapter, &clock, &[("old", "*/30 * * * *")]);
    drop(old_node);
    clock.set(t(4, 0, 10));
    let (kaal, rx) = node(
        config,
        &adapter,
        &clock,
        &[("old", "*/30 * * * *"), ("new", "* * * * *")],
    );
    let report = kaal.recover_at(t(4, 0, 10));
    assert!(report.errors.is_empty());
    let mut fires: Vec<(String, DateTime<Utc>)> =
        rx.try_iter().map(|f| (f.key, f.fire_time)).collect();
    fires.sort_by_key(|(_, t)| *t); // runs end in any order
    let old: Vec<_> = fires
        .iter()
        .filter(|(k, _)| k == "old")
        .map(|(_, t)| *t)
        .collect();
    let new: Vec<_> = fires
        .iter()
        .filter(|(k, _)| k == "new")
        .map(|(_, t)| *t)
        .collect();
    assert_eq!(
        old,
        (0..7)
            .map(|i| t(1, 0, 0) + Duration::minutes(30 * i))
            .collect::<Vec<_>>(),
        "a defined job's missed fire times are recovered"
    );
    // A new job owes nothing from before it was defined (04:00:10): not the 4-hour recovery
    // window, and not the 2-minute lookback either.
    assert!(
        new.is_empty(),
        "a new job ran fire times from before it existed: {new:?}"
    );
}

/// A store that, on the first batch claim, first lets `stall` run: another node claims and
/// logs the same fire time and its lease expires, all between this node's log read and its
/// claim.
struct StallingStore {
    inner: Arc<MemoryAdapter>,
    stall: std::sync::Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl kaal_core::Adapter for StallingStore {
    fn acquire(&self, key: &str, ttl: StdDuration) -> Result<bool, kaal_core::LockError> {
        self.inner.acquire(key, ttl)
    }
    fn acquire_many(
        &self,
        keys: &[String],
        ttl: StdDuration,
    ) -> Result<Vec<bool>, kaal_core::LockError> {
        if let Some(stall) = self.stall.lock().unwrap().take() {
            stall();
        }
        self.inner.acquire_many(keys, ttl)
    }
    fn release(&self, key: &str) -> Result<bool, kaal_core::LockError> {
        self.inner.release(key)
    }
    fn dispatch_registry(&self) -> Option<&dyn kaal_core::DispatchRegistry> {
        self.inner.dispatch_registry()
    }
    fn definition_registry(&self) -> Option<&dyn kaal_core::DefinitionRegistry> {
        self.inner.definition_registry()
    }
}

#[test]
fn a_node_stalled_past_the_lease_between_log_read_and_claim_does_not_dispatch_twice() {
    // The job is defined before its 05:00 fire time (a fire time from before a job existed
    // is not owed).
    let clock = Arc::new(ManualClock::new(t(4, 59, 0)));
    let shared = Arc::new(MemoryAdapter::with_clock(clock.clone()));
    let (rival, rival_rx) = node(config(), &shared, &clock, &[("job", "0 * * * *")]);
    let rival = Arc::new(rival);
    let stall = {
        let (rival, clock) = (rival.clone(), clock.clone());
        Box::new(move || {
            assert_eq!(rival.tick_at(t(5, 0, 1)).dispatched.len(), 1);
            clock.advance(Duration::seconds(200)); // past lease_ttl (125 s)
        }) as Box<dyn FnOnce() + Send>
    };
    let stalling = Arc::new(StallingStore {
        inner: shared.clone(),
        stall: std::sync::Mutex::new(Some(stall)),
    });
    let kaal = Kaal::with_clock(config(), stalling, clock.clone()).unwrap();
    let (tx, rx) = mpsc::channel();
    kaal.register(
        "job",
        "0 * * * *",
        move |f: &Fire| Ok(tx.send(f.fire_time)?),
    )
    .unwrap();
    clock.set(t(5, 0, 1));
    let report = kaal.tick_at(t(5, 0, 2));
    assert!(
        report.dispatched.is_empty(),
        "the stalled node dispatched {:?}",
        report.dispatched
    );
    assert_eq!(report.already_dispatched, [("job".to_string(), t(5, 0, 0))]);
    assert_eq!(rival_rx.try_iter().count(), 1);
    assert_eq!(rx.try_iter().count(), 0);
    // The claim it won on the logged fire time was given back at once.
    let key = kaal_core::lock_key("kaal", "job", t(5, 0, 0));
    assert!(
        shared.acquire(&key, StdDuration::from_secs(10)).unwrap(),
        "the stalled node kept its claim on a logged fire time"
    );
}

/// A node runs one pass at a time; a callback that ticks its own node is refused with an
/// error in the report instead of waiting for the pass it runs in (which would never end).
#[test]
fn a_callback_that_ticks_its_own_node_is_refused_not_deadlocked() {
    use std::sync::{OnceLock, Weak};
    let clock = Arc::new(ManualClock::new(t(8, 59, 30)));
    let adapter = Arc::new(MemoryAdapter::with_clock(clock.clone()));
    let kaal = Arc::new(Kaal::with_clock(config(), adapter, clock.clone()).unwrap());
    let me: Arc<OnceLock<Weak<Kaal>>> = Arc::new(OnceLock::new());
    let (tx, rx) = std::sync::mpsc::channel();
    let inner = me.clone();
    kaal.register("reentrant", "* * * * *", move |f: &Fire| {
        let node = inner.get().and_then(Weak::upgrade).expect("the node");
        tx.send(node.tick_at(f.fire_time).errors).unwrap();
        Ok(())
    })
    .unwrap();
    me.set(Arc::downgrade(&kaal)).unwrap();
    clock.set(t(9, 0, 1));
    let report = kaal.tick_at(t(9, 0, 1));
    assert_eq!(report.dispatched.len(), 1, "{report:?}");
    let inner_errors = rx.try_recv().unwrap();
    assert!(
        inner_errors[0].contains("ticked its own node"),
        "{inner_errors:?}"
    );
}
