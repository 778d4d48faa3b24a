//! Runs off the tick thread, on the memory store with a manual clock: a long job never
//! delays another job's fire time, a busy node leaves what it cannot start to nodes that
//! can, timeouts free the slot, stop waits for running jobs, and fencing tokens grow.
#![allow(clippy::unwrap_used)] // tests state their expectations with unwrap

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use chrono::{DateTime, TimeZone, Utc};
use kaal_core::{
    dispatch_log_key, CallbackError, Config, DispatchRecord, DispatchStatus, Fire, Kaal,
    ManualClock, MemoryAdapter, TimedOut,
};

fn t(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 15, h, m, s).unwrap()
}

const WAIT: StdDuration = StdDuration::from_secs(20);

fn config(node_id: &str, slots: usize) -> Config {
    Config {
        node_id: node_id.into(),
        recovery_startup_jitter: StdDuration::ZERO,
        enable_dispatch_recovery: false,
        tick_interval: StdDuration::from_secs(1),
        max_concurrent_runs: slots,
        // The manual clock jumps a minute at a time; the node's estimate of the store's
        // clock (the same manual clock) runs on the monotonic clock between readings.
        // ... and faster than heartbeats: nodes stay live for an hour of it.
        max_clock_offset: StdDuration::from_secs(3600),
        node_timeout: StdDuration::from_secs(3600),
        ..Config::default()
    }
}

fn row(kaal: &Kaal, key: &str, at: DateTime<Utc>) -> Option<DispatchRecord> {
    kaal.adapter()
        .dispatch_registry()
        .unwrap()
        .find_dispatch(&dispatch_log_key("kaal", key), at)
        .unwrap()
}

/// A gate a job waits at until the test opens it.
#[derive(Clone)]
struct Gate(Arc<Mutex<Receiver<()>>>);

fn new_gate() -> (Sender<()>, Gate) {
    let (open, wait) = mpsc::channel();
    (open, Gate(Arc::new(Mutex::new(wait))))
}

impl Gate {
    fn wait(&self) {
        let _ = self.0.lock().unwrap().recv_timeout(WAIT);
    }
}

#[test]
fn a_long_job_delays_no_other_fire_time_and_a_full_node_leaves_the_rest_unclaimed() {
    let clock = Arc::new(ManualClock::new(t(9, 59, 30))); // jobs exist before 10:00
    let adapter = Arc::new(MemoryAdapter::with_clock(clock.clone()));
    let busy = Kaal::with_clock(config("busy", 2), adapter.clone(), clock.clone()).unwrap();
    let idle = Kaal::with_clock(config("idle", 2), adapter.clone(), clock.clone()).unwrap();
    let (ran_tx, ran) = mpsc::channel::<(String, &'static str, DateTime<Utc>)>();
    let (open, gate) = new_gate();
    let (open_fast, fast_gate) = new_gate();
    for (node, name) in [(&busy, "busy"), (&idle, "idle")] {
        let (tx, fast_gate) = (ran_tx.clone(), fast_gate.clone());
        node.register(
            "fast",
            "* * * * *",
            move |fire: &Fire| -> Result<(), CallbackError> {
                tx.send(("fast".into(), name, fire.fire_time)).unwrap();
                if fire.fire_time == t(10, 1, 0) {
                    fast_gate.wait(); // holds the second slot while the test looks
                }
                Ok(())
            },
        )
        .unwrap();
        let (tx, gate) = (ran_tx.clone(), gate.clone());
        node.register(
            "slow",
            "* * * * *",
            move |fire: &Fire| -> Result<(), CallbackError> {
                tx.send(("slow".into(), name, fire.fire_time)).unwrap();
                if fire.fire_time == t(10, 0, 0) {
                    gate.wait(); // the 10:00 run is long
                }
                Ok(())
            },
        )
        .unwrap();
    }
    clock.set(t(10, 0, 1));
    assert!(busy.start());
    let mut first: Vec<_> = (0..2).map(|_| ran.recv_timeout(WAIT).unwrap()).collect();
    first.sort();
    assert_eq!(
        first,
        [
            ("fast".to_string(), "busy", t(10, 0, 0)),
            ("slow".to_string(), "busy", t(10, 0, 0))
        ]
    );
    // 10:01 with the long run still holding one of the two slots: the fast job runs at
    // once, on the free slot (and holds it); slow@10:01 is left unclaimed, for a node with
    // room.
    clock.set(t(10, 1, 1));
    assert_eq!(
        ran.recv_timeout(WAIT).unwrap(),
        ("fast".to_string(), "busy", t(10, 1, 0))
    );
    let passes = busy.coordinator().passes();
    assert!(busy.coordinator().wait_for_passes(passes + 1, WAIT));
    assert!(
        row(&busy, "slow", t(10, 1, 0)).is_none(),
        "a full node must not hold a fire time it cannot start"
    );
    assert_eq!(
        row(&busy, "slow", t(10, 0, 0)).unwrap().status,
        DispatchStatus::Dispatched
    );
    // The idle node claims and runs it.
    let report = idle.tick_at(t(10, 1, 2));
    assert_eq!(
        report
            .dispatched
            .iter()
            .map(|f| (f.key.as_str(), f.fire_time))
            .collect::<Vec<_>>(),
        [("slow", t(10, 1, 0))]
    );
    assert_eq!(
        ran.recv_timeout(WAIT).unwrap(),
        ("slow".to_string(), "idle", t(10, 1, 0))
    );
    open.send(()).unwrap();
    open_fast.send(()).unwrap();
    assert!(busy.coordinator().wait_until_settled(WAIT));
    assert!(busy.stop(WAIT));
    let long = row(&busy, "slow", t(10, 0, 0)).unwrap();
    assert_eq!(long.status, DispatchStatus::Succeeded);
    assert!(long.started_at.is_some() && long.finished_at >= long.started_at);
    assert_eq!(long.attempt, 1);
    assert!(ran.try_recv().is_err(), "nothing ran twice");
}

#[test]
fn a_callback_past_its_timeout_is_recorded_timed_out_and_its_slot_freed() {
    let clock = Arc::new(ManualClock::new(t(9, 59, 30))); // jobs exist before 10:00
    let adapter = Arc::new(MemoryAdapter::with_clock(clock.clone()));
    let config = Config {
        job_timeout: Some(StdDuration::from_millis(100)),
        ..config("n", 1)
    };
    let kaal = Kaal::with_clock(config, adapter, clock.clone()).unwrap();
    let (open, gate) = new_gate();
    let (done_tx, done) = mpsc::channel();
    kaal.register(
        "a_hangs",
        "0 * * * *",
        move |_: &Fire| -> Result<(), CallbackError> {
            gate.wait();
            done_tx.send(()).unwrap();
            Ok(())
        },
    )
    .unwrap();
    kaal.register(
        "b_gives_up",
        "0 * * * *",
        |_: &Fire| -> Result<(), CallbackError> {
            Err(TimedOut {
                after: StdDuration::from_secs(7),
            }
            .into())
        },
    )
    .unwrap();
    clock.set(t(10, 0, 1));
    // One slot: `b_gives_up` runs after `a_hangs` only because its slot was given back.
    let report = kaal.tick_at(t(10, 0, 1));
    let failed: Vec<_> = report.failed.iter().map(|(f, _)| f.key.as_str()).collect();
    assert_eq!(failed, ["a_hangs", "b_gives_up"]);
    let hung = row(&kaal, "a_hangs", t(10, 0, 0)).unwrap();
    assert_eq!(hung.status, DispatchStatus::TimedOut);
    assert!(hung.error.unwrap().contains("timeout of 0.1 s"));
    assert!(hung.finished_at.is_some());
    let gave_up = row(&kaal, "b_gives_up", t(10, 0, 0)).unwrap();
    assert_eq!(gave_up.status, DispatchStatus::TimedOut);
    assert_eq!(gave_up.error.as_deref(), Some("timed out after 7 s"));
    // The hung callback runs on, detached, to its end; its late end changes nothing.
    open.send(()).unwrap();
    done.recv_timeout(WAIT).unwrap();
    assert_eq!(
        row(&kaal, "a_hangs", t(10, 0, 0)).unwrap().status,
        DispatchStatus::TimedOut
    );
}

#[test]
fn stop_stops_claiming_and_waits_for_running_jobs_up_to_its_timeout() {
    let clock = Arc::new(ManualClock::new(t(9, 59, 30))); // jobs exist before 10:00
    let adapter = Arc::new(MemoryAdapter::with_clock(clock.clone()));
    let kaal = Kaal::with_clock(config("n", 4), adapter, clock.clone()).unwrap();
    let (open, gate) = new_gate();
    let (started_tx, started) = mpsc::channel();
    kaal.register(
        "long",
        "* * * * *",
        move |fire: &Fire| -> Result<(), CallbackError> {
            started_tx.send(fire.fire_time).unwrap();
            gate.wait();
            Ok(())
        },
    )
    .unwrap();
    clock.set(t(10, 0, 1));
    assert!(kaal.start());
    assert_eq!(started.recv_timeout(WAIT).unwrap(), t(10, 0, 0));
    assert!(
        !kaal.stop(StdDuration::from_millis(50)),
        "stop must wait for the running job"
    );
    // Stopped claiming: a new fire time falls due and is not started.
    clock.set(t(10, 1, 1));
    assert!(row(&kaal, "long", t(10, 0, 0)).unwrap().status == DispatchStatus::Dispatched);
    open.send(()).unwrap();
    assert!(kaal.stop(WAIT), "the job ended: stop completes");
    assert_eq!(
        row(&kaal, "long", t(10, 0, 0)).unwrap().status,
        DispatchStatus::Succeeded
    );
    assert!(row(&kaal, "long", t(10, 1, 0)).is_none());
    assert!(started.try_recv().is_err());
}

#[test]
fn fencing_tokens_are_the_row_ids_and_grow_with_every_claim_across_nodes() {
    let clock = Arc::new(ManualClock::new(t(9, 59, 30))); // jobs exist before 10:00
    let adapter = Arc::new(MemoryAdapter::with_clock(clock.clone()));
    let a = Kaal::with_clock(config("a", 2), adapter.clone(), clock.clone()).unwrap();
    let b = Kaal::with_clock(config("b", 2), adapter.clone(), clock.clone()).unwrap();
    for node in [&a, &b] {
        node.register(
            "job",
            "* * * * *",
            |_: &Fire| -> Result<(), CallbackError> { Ok(()) },
        )
        .unwrap();
    }
    let mut tokens = Vec::new();
    for (minute, node) in [(0, &a), (1, &b), (2, &a), (3, &b)] {
        clock.set(t(10, minute, 1));
        let report = node.tick_at(t(10, minute, 1));
        let fire = &report.dispatched[0];
        let token = fire.fencing_token.unwrap();
        assert_eq!(token, row(node, "job", t(10, minute, 0)).unwrap().id);
        tokens.push(token);
    }
    assert!(tokens.windows(2).all(|w| w[0] < w[1]), "{tokens:?}");
}

#[test]
fn a_run_on_a_node_that_is_gone_is_recorded_abandoned_once_and_keeps_that_record() {
    let clock = Arc::new(ManualClock::new(t(9, 59, 30)));
    let adapter = Arc::new(MemoryAdapter::with_clock(clock.clone()));
    let config = |id: &str| Config {
        node_timeout: StdDuration::from_secs(30),
        ..config(id, 2)
    };
    let dead = Kaal::with_clock(config("dead"), adapter.clone(), clock.clone()).unwrap();
    let live = Kaal::with_clock(config("live"), adapter.clone(), clock.clone()).unwrap();
    let (open, gate) = new_gate();
    let (ended_tx, ended) = mpsc::channel();
    dead.register(
        "job",
        "* * * * *",
        move |_: &Fire| -> Result<(), CallbackError> {
            gate.wait();
            ended_tx.send(()).unwrap();
            Ok(())
        },
    )
    .unwrap();
    live.register(
        "job",
        "* * * * *",
        |_: &Fire| -> Result<(), CallbackError> { Ok(()) },
    )
    .unwrap();
    clock.set(t(10, 0, 1));
    assert!(dead.start());
    assert!(dead.coordinator().wait_for_passes(1, WAIT));
    assert_eq!(
        row(&live, "job", t(10, 0, 0)).unwrap().status,
        DispatchStatus::Dispatched
    );
    drop(dead); // no more heartbeats; its run goes on, stuck
    clock.set(t(10, 1, 1)); // a minute later: past node_timeout (30 s)
    let report = live.tick_at(t(10, 1, 1));
    assert_eq!(
        report.abandoned,
        [("job".to_string(), t(10, 0, 0), "dead".to_string())]
    );
    let lost = row(&live, "job", t(10, 0, 0)).unwrap();
    assert_eq!(lost.status, DispatchStatus::Abandoned);
    assert!(lost
        .error
        .unwrap()
        .contains("node dead stopped heartbeating"));
    assert!(lost.finished_at.is_some());
    // Not run again (at most once), and a second pass records nothing more.
    assert_eq!(
        report
            .dispatched
            .iter()
            .map(|f| f.fire_time)
            .collect::<Vec<_>>(),
        [t(10, 1, 0)]
    );
    // The stuck run ends late: its success does not overwrite the record.
    open.send(()).unwrap();
    ended.recv_timeout(WAIT).unwrap();
    clock.set(t(10, 2, 1));
    let again = live.tick_at(t(10, 2, 1));
    assert!(again.abandoned.is_empty());
    let lost = row(&live, "job", t(10, 0, 0)).unwrap();
    assert_eq!(lost.status, DispatchStatus::Abandoned);
}
