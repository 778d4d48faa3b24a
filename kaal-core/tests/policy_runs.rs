//! Each policy's edges, enforced by the coordinator on the memory store with a manual
//! clock: catch-up after an outage, deadline boundaries, retry exhaustion, jitter agreement
//! across nodes, per-job zones across DST, overlap judged across nodes, and node loss.
#![allow(clippy::unwrap_used)] // tests state their expectations with unwrap

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, TimeZone, Utc};
use kaal_core::{
    dispatch_log_key, CatchUp, Config, DispatchRecord, DispatchStatus, Fire, JobPolicy, Kaal,
    ManualClock, MemoryAdapter, OnNodeLoss, Overlap,
};

const WAIT: StdDuration = StdDuration::from_secs(20);

fn t(d: u32, h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, d, h, m, s).unwrap()
}

fn config(node_id: &str) -> Config {
    Config {
        node_id: node_id.into(),
        recovery_startup_jitter: StdDuration::ZERO,
        tick_interval: StdDuration::from_secs(1),
        // The manual clock jumps faster than heartbeats and the database-clock estimate.
        max_clock_offset: StdDuration::from_secs(365 * 24 * 3600),
        node_timeout: StdDuration::from_secs(3600),
        ..Config::default()
    }
}

struct Fleet {
    clock: Arc<ManualClock>,
    adapter: Arc<MemoryAdapter>,
}

impl Fleet {
    /// A store whose clock starts at `at` (jobs registered now exist from then on).
    fn at(at: DateTime<Utc>) -> Self {
        let clock = Arc::new(ManualClock::new(at));
        let adapter = Arc::new(MemoryAdapter::with_clock(clock.clone()));
        Fleet { clock, adapter }
    }

    fn node(&self, config: Config) -> Kaal {
        Kaal::with_clock(config, self.adapter.clone(), self.clock.clone()).unwrap()
    }

    fn tick(&self, node: &Kaal, at: DateTime<Utc>) -> kaal_core::TickReport {
        self.clock.set(at);
        node.tick_at(at)
    }
}

fn row(kaal: &Kaal, key: &str, at: DateTime<Utc>) -> Option<DispatchRecord> {
    kaal.adapter()
        .dispatch_registry()
        .unwrap()
        .find_dispatch(&dispatch_log_key("kaal", key), at)
        .unwrap()
}

fn rows(kaal: &Kaal, key: &str) -> Vec<DispatchRecord> {
    let mut rows = kaal
        .adapter()
        .dispatch_registry()
        .unwrap()
        .find_by_key(&dispatch_log_key("kaal", key))
        .unwrap();
    rows.reverse();
    rows
}

/// A job that sends each fire it runs.
fn recording(tx: &Sender<Fire>) -> impl Fn(&Fire) -> Result<(), kaal_core::JobError> {
    let tx = Mutex::new(tx.clone());
    move |fire: &Fire| {
        tx.lock().unwrap().send(fire.clone()).unwrap();
        Ok(())
    }
}

#[test]
fn catch_up_latest_after_a_3_hour_outage_runs_exactly_one_and_records_the_rest_skipped() {
    let fleet = Fleet::at(t(1, 5, 59, 0));
    let node = fleet.node(Config {
        recovery_window: StdDuration::from_secs(4 * 3600),
        ..config("n")
    });
    let (tx, rx) = mpsc::channel();
    let policy = JobPolicy::new().catch_up(CatchUp::Latest);
    node.register_with("every-10", "*/10 * * * *", policy, recording(&tx))
        .unwrap();
    fleet.tick(&node, t(1, 6, 0, 1));
    assert_eq!(rx.try_iter().count(), 1);
    // Three hours without a node, then one pass.
    let report = fleet.tick(&node, t(1, 9, 0, 30));
    let ran: Vec<_> = rx.try_iter().map(|f| f.fire_time).collect();
    assert_eq!(ran, [t(1, 9, 0, 0)], "exactly one run: the newest");
    assert_eq!(report.skipped.len(), 17, "06:10 .. 08:50, every 10 minutes");
    let all = rows(&node, "every-10");
    let skipped: Vec<_> = all
        .iter()
        .filter(|r| r.status == DispatchStatus::Skipped)
        .collect();
    assert_eq!(skipped.len(), 17);
    assert!(skipped
        .iter()
        .all(|r| r.error.as_deref().unwrap().starts_with("catch-up: latest")));
    // A restart replays none of them.
    let again = fleet.tick(&node, t(1, 9, 0, 40));
    assert!(again.dispatched.is_empty() && again.skipped.is_empty());
}

#[test]
fn catch_up_none_runs_only_fire_times_that_are_on_time() {
    let fleet = Fleet::at(t(1, 5, 59, 0));
    let node = fleet.node(config("n"));
    let (tx, rx) = mpsc::channel();
    node.register_with(
        "minutely",
        "* * * * *",
        JobPolicy::new().catch_up(CatchUp::None),
        recording(&tx),
    )
    .unwrap();
    // On time: tick_interval (1 s) + 1 s late at most.
    fleet.tick(&node, t(1, 6, 0, 2));
    assert_eq!(rx.try_iter().count(), 1);
    // 3 s late: skipped, with its reason.
    let report = fleet.tick(&node, t(1, 6, 1, 3));
    assert_eq!(rx.try_iter().count(), 0);
    assert_eq!(report.skipped.len(), 1);
    assert!(report.skipped[0].2.starts_with("catch-up: none"));
}

#[test]
fn starting_deadline_is_inclusive_at_the_boundary_and_skips_past_it() {
    let fleet = Fleet::at(t(1, 5, 59, 30));
    let node = fleet.node(Config {
        window_lookback: StdDuration::from_secs(300),
        lease_ttl: StdDuration::from_secs(310),
        ..config("n")
    });
    let (tx, rx) = mpsc::channel();
    let policy = JobPolicy::new().starting_deadline(StdDuration::from_secs(30));
    node.register_with("minutely", "* * * * *", policy, recording(&tx))
        .unwrap();
    // Exactly 30 s late: on time.
    let report = fleet.tick(&node, t(1, 6, 0, 30));
    assert_eq!(report.dispatched.len(), 1);
    assert!(report.skipped.is_empty());
    // 30.001 s late: missed.
    let late = t(1, 6, 1, 30) + Duration::milliseconds(1);
    let report = fleet.tick(&node, late);
    assert!(report.dispatched.is_empty());
    assert_eq!(report.skipped.len(), 1);
    let missed = row(&node, "minutely", t(1, 6, 1, 0)).unwrap();
    assert_eq!(missed.status, DispatchStatus::Skipped);
    assert!(missed
        .error
        .unwrap()
        .starts_with("missed deadline (30.001 s late; starting_deadline 30 s)"));
    assert_eq!(rx.try_iter().count(), 1);
}

#[test]
fn retries_record_every_attempt_on_the_same_run_until_success_or_exhaustion() {
    let fleet = Fleet::at(t(1, 5, 59, 0));
    let node = fleet.node(config("n"));
    let calls = Arc::new(AtomicU32::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (c, s) = (calls.clone(), seen.clone());
    let retry = JobPolicy::new().retry(3, StdDuration::ZERO);
    node.register_with("flaky", "0 * * * *", retry.clone(), move |fire: &Fire| {
        s.lock().unwrap().push((fire.attempt, fire.fencing_token));
        if c.fetch_add(1, Ordering::SeqCst) == 0 {
            Err("first attempt fails".into())
        } else {
            Ok(())
        }
    })
    .unwrap();
    node.register_with("broken", "0 * * * *", retry, |fire: &Fire| {
        Err(format!("attempt {} fails", fire.attempt).into())
    })
    .unwrap();
    let report = fleet.tick(&node, t(1, 6, 0, 1));
    let flaky = row(&node, "flaky", t(1, 6, 0, 0)).unwrap();
    assert_eq!(flaky.status, DispatchStatus::Succeeded);
    assert_eq!(flaky.attempt, 2);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [(1, Some(flaky.id)), (2, Some(flaky.id))],
        "attempts count up on one run, with one token"
    );
    let broken = row(&node, "broken", t(1, 6, 0, 0)).unwrap();
    assert_eq!(broken.status, DispatchStatus::Failed);
    assert_eq!(broken.attempt, 3, "exhausted after max_attempts");
    assert_eq!(broken.error.as_deref(), Some("attempt 3 fails"));
    let failed: Vec<_> = report.failed.iter().map(|(f, _)| f.key.as_str()).collect();
    assert_eq!(failed, ["broken"]);
}

#[test]
fn jitter_delays_a_fire_time_by_the_same_amount_on_every_node() {
    let fleet = Fleet::at(t(1, 5, 59, 0));
    let policy = JobPolicy::new().jitter(StdDuration::from_secs(50));
    let delay = policy.jitter_for("spread", t(1, 6, 0, 0));
    assert!(
        delay > StdDuration::from_secs(2),
        "{delay:?}: pick another key"
    );
    let due = t(1, 6, 0, 0) + Duration::from_std(delay).unwrap();
    let (tx, rx) = mpsc::channel();
    let nodes: Vec<Kaal> = ["a", "b"].iter().map(|id| fleet.node(config(id))).collect();
    for node in &nodes {
        node.register_with("spread", "0 * * * *", policy.clone(), recording(&tx))
            .unwrap();
    }
    // Just before the jittered instant neither node claims it ...
    for node in &nodes {
        let report = fleet.tick(node, due - Duration::milliseconds(500));
        assert!(report.dispatched.is_empty(), "claimed before its jitter");
    }
    assert!(row(&nodes[0], "spread", t(1, 6, 0, 0)).is_none());
    // ... and from it, one of them runs it, once.
    let a = fleet.tick(&nodes[1], due);
    let b = fleet.tick(&nodes[0], due + Duration::seconds(1));
    assert_eq!(a.dispatched.len() + b.dispatched.len(), 1);
    assert_eq!(rx.try_iter().count(), 1);
}

#[test]
fn a_per_job_zone_follows_dst_while_the_node_keeps_its_own() {
    // 2026-03-29: Europe/Berlin springs forward at 02:00 local (01:00 UTC).
    let fleet = Fleet::at(t(27, 23, 0, 0));
    let node = fleet.node(Config {
        window_lookback: StdDuration::from_secs(3600),
        lease_ttl: StdDuration::from_secs(3700),
        ..config("n")
    });
    let (tx, rx) = mpsc::channel();
    let berlin = JobPolicy::new().time_zone("Europe/Berlin");
    node.register_with("berlin-9", "0 9 * * *", berlin, recording(&tx))
        .unwrap();
    node.register_with("utc-9", "0 9 * * *", JobPolicy::new(), recording(&tx))
        .unwrap();
    let mut ran = Vec::new();
    for day in 28..=30 {
        for hour in 6..=10 {
            fleet.tick(&node, t(day, hour, 0, 5));
            ran.extend(rx.try_iter().map(|f| (f.key, f.fire_time)));
        }
    }
    ran.sort();
    assert_eq!(
        ran,
        [
            ("berlin-9".to_string(), t(28, 8, 0, 0)), // CET, UTC+1
            ("berlin-9".to_string(), t(29, 7, 0, 0)), // CEST, UTC+2
            ("berlin-9".to_string(), t(30, 7, 0, 0)),
            ("utc-9".to_string(), t(28, 9, 0, 0)),
            ("utc-9".to_string(), t(29, 9, 0, 0)),
            ("utc-9".to_string(), t(30, 9, 0, 0)),
        ]
    );
}

/// A gate a job waits at until the test opens it.
fn gate() -> (Sender<()>, Arc<Mutex<Receiver<()>>>) {
    let (open, wait) = mpsc::channel();
    (open, Arc::new(Mutex::new(wait)))
}

#[test]
fn overlap_skip_and_queue_one_are_judged_across_nodes() {
    let fleet = Fleet::at(t(1, 5, 59, 30));
    let a = fleet.node(config("a"));
    let b = fleet.node(config("b"));
    let (open, wait) = gate();
    let (started_tx, started) = mpsc::channel();
    for node in [&a, &b] {
        let (wait, started_tx) = (wait.clone(), Arc::new(Mutex::new(started_tx.clone())));
        let long = move |fire: &Fire| -> Result<(), kaal_core::JobError> {
            started_tx.lock().unwrap().send(fire.key.clone()).unwrap();
            if fire.fire_time == t(1, 6, 0, 0) {
                let _ = wait.lock().unwrap().recv_timeout(WAIT);
            }
            Ok(())
        };
        let (skip, queue) = (long.clone(), long);
        node.register_with(
            "skip",
            "* * * * *",
            JobPolicy::new().overlap(Overlap::Skip),
            skip,
        )
        .unwrap();
        node.register_with(
            "queue",
            "* * * * *",
            JobPolicy::new().overlap(Overlap::QueueOne),
            queue,
        )
        .unwrap();
    }
    // Node a runs the 06:00 runs in its background loop; they hang until the gate opens.
    fleet.clock.set(t(1, 6, 0, 1));
    assert!(a.start());
    let mut first: Vec<String> = (0..2)
        .map(|_| started.recv_timeout(WAIT).unwrap())
        .collect();
    first.sort();
    assert_eq!(first, ["queue", "skip"]);
    a.stop(StdDuration::ZERO); // a claims nothing more; its runs go on
                               // Node b at 06:01 and 06:02: skip is skipped each time; queue_one keeps the newest.
    let r1 = fleet.tick(&b, t(1, 6, 1, 1));
    assert_eq!(r1.skipped.len(), 1, "{r1:?}");
    assert!(r1.skipped[0]
        .2
        .starts_with("overlap (the run of 2026-03-01 06:00:00 UTC on node a"));
    assert_eq!(r1.queued, [("queue".to_string(), t(1, 6, 1, 0))]);
    let r2 = fleet.tick(&b, t(1, 6, 2, 1));
    assert_eq!(r2.queued, [("queue".to_string(), t(1, 6, 2, 0))]);
    let older = row(&b, "queue", t(1, 6, 1, 0)).unwrap();
    assert_eq!(
        older.status,
        DispatchStatus::Skipped,
        "only the newest waits"
    );
    assert!(older.error.unwrap().contains("a newer fire time"));
    assert!(
        started.try_recv().is_err(),
        "nothing overlapped the 06:00 runs"
    );
    // The long runs end: the queued fire time runs on the next pass, alone.
    open.send(()).unwrap();
    open.send(()).unwrap();
    assert!(a.stop(WAIT));
    let r3 = fleet.tick(&b, t(1, 6, 2, 20));
    assert_eq!(
        r3.dispatched
            .iter()
            .map(|f| (f.key.as_str(), f.fire_time))
            .collect::<Vec<_>>(),
        [("queue", t(1, 6, 2, 0))]
    );
    assert_eq!(
        row(&b, "skip", t(1, 6, 2, 0)).unwrap().status,
        DispatchStatus::Skipped
    );
}

#[test]
fn on_node_loss_rerun_runs_a_lost_run_again_once_with_a_larger_token() {
    let fleet = Fleet::at(t(1, 5, 59, 30));
    let short = |id: &str| Config {
        node_timeout: StdDuration::from_secs(30),
        ..config(id)
    };
    let dead = fleet.node(short("dead"));
    let live = fleet.node(short("live"));
    let (open, wait) = gate();
    let rerun = JobPolicy::new().on_node_loss(OnNodeLoss::Rerun);
    dead.register_with("job", "0 * * * *", rerun.clone(), move |_: &Fire| {
        let _ = wait.lock().unwrap().recv_timeout(WAIT);
        Ok(())
    })
    .unwrap();
    let (tx, rx) = mpsc::channel();
    live.register_with("job", "0 * * * *", rerun, recording(&tx))
        .unwrap();
    fleet.clock.set(t(1, 6, 0, 1));
    assert!(dead.start());
    assert!(dead.coordinator().wait_for_passes(1, WAIT));
    let lost = row(&live, "job", t(1, 6, 0, 0)).unwrap();
    assert_eq!(lost.status, DispatchStatus::Dispatched);
    drop(dead);
    let report = fleet.tick(&live, t(1, 6, 1, 0));
    assert_eq!(report.rerun, [("job".into(), t(1, 6, 0, 0), "dead".into())]);
    let fire = rx.try_recv().unwrap();
    assert_eq!(fire.fire_time, t(1, 6, 0, 0));
    assert!(
        fire.fencing_token.unwrap() > lost.id,
        "the rerun holds a larger token"
    );
    let rerun = row(&live, "job", t(1, 6, 0, 0)).unwrap();
    assert_eq!(rerun.status, DispatchStatus::Succeeded);
    assert_eq!(rerun.node_id, "live");
    assert_eq!(
        rerun.id,
        fire.fencing_token.unwrap(),
        "a new row: the rerun's own"
    );
    // Once: a later pass reruns nothing more.
    let again = fleet.tick(&live, t(1, 6, 2, 0));
    assert!(again.rerun.is_empty());
    assert!(rx.try_recv().is_err());
    open.send(()).unwrap();
}
