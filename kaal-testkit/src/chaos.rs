//! Fleet scenarios under failure: nodes killed mid-run, restarts after outages, skewed clocks.
//! Each prints its figures (processes, fire times, duplicates, missing, replays).
#![allow(clippy::print_stdout)]

use std::collections::BTreeSet;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::Rng;

use crate::coordination::due_between;
use crate::fleet::{fleet_dir, job_keys, read_log, read_records, run_together, Worker, WorkerSpec};
use crate::{Backend, TestStore};

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, 0, 0, 1)
        .single()
        .expect("valid instant")
}

fn expected(jobs: usize, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<(String, DateTime<Utc>)> {
    let keys = job_keys(jobs);
    let specs: Vec<(&str, &str)> = keys.iter().map(|k| (k.as_str(), "* * * * *")).collect();
    due_between(&specs, from, to)
}

/// Short leases (2 s), so that a lease left by a killed node expires within the test.
const SHORT_TTL: u64 = 2;

/// Waits for leases written with [`SHORT_TTL`] to pass their ttl on the database's clock.
fn let_short_leases_expire() {
    std::thread::sleep(StdDuration::from_millis(SHORT_TTL * 1000 + 600));
}

/// Four nodes tick 400 minutes of 3 jobs while nodes are killed with SIGKILL at random
/// moments (also between a claim and its callback) and replaced. Afterwards a recovery pass
/// (once leases have expired) picks up claims whose node died before logging them.
/// 0 duplicates; no fire time silently missing: each is either run, or logged as claimed by
/// a node that died before running it.
pub fn killed_nodes_cause_no_duplicates_and_no_silent_misses(backend: &dyn Backend) {
    const NODES: usize = 4;
    const JOBS: usize = 3;
    const TICKS: i64 = 400;
    const KILLS: usize = 8;
    let store = TestStore::new(backend);
    let dir = fleet_dir();
    let spec = |name: String| WorkerSpec {
        lease_ttl_secs: Some(SHORT_TTL),
        ..WorkerSpec::ticking(name, start(), TICKS, JOBS)
    };
    let mut workers: Vec<Worker> = (0..NODES)
        .map(|i| Worker::spawn(&store.locator, spec(format!("node-{i}")), dir.path()))
        .collect();
    workers.iter_mut().for_each(Worker::go);
    // Kills start once the fleet has logged a dispatch of every job, so every fire time is
    // known to the log (recovery starts from what the log and the definitions know).
    let started = std::time::Instant::now();
    while read_log(&store, JOBS).len() < JOBS {
        assert!(
            started.elapsed() < StdDuration::from_secs(60),
            "the fleet dispatched nothing in 60 s"
        );
        std::thread::sleep(StdDuration::from_millis(5));
    }
    let mut rng = rand::thread_rng();
    let (mut killed_ids, mut outs) = (Vec::new(), Vec::new());
    for kill in 0..KILLS {
        // Random moments, not synchronisation: the point is to land anywhere in a tick.
        std::thread::sleep(StdDuration::from_millis(rng.gen_range(5..60)));
        let victim = rng.gen_range(0..workers.len());
        let mut dead = workers.swap_remove(victim);
        if dead.kill() {
            killed_ids.push(dead.spec.node_id.clone());
        }
        outs.push(dead.out.clone());
        let mut replacement = Worker::spawn(
            &store.locator,
            spec(format!("replacement-{kill}")),
            dir.path(),
        );
        replacement.go();
        workers.push(replacement);
    }
    outs.extend(workers.iter().map(|w| w.out.clone()));
    workers.into_iter().for_each(Worker::finish);
    let last = start() + Duration::minutes(TICKS - 1);
    let first_window = start() - Duration::seconds(1);
    let logged_before = read_log(&store, JOBS).len();
    let_short_leases_expire();
    let sweeper = WorkerSpec {
        recover: Some((last, 2 * 24 * 3600)),
        ..spec("sweeper".into())
    };
    outs.extend(run_together(&store.locator, vec![sweeper], dir.path()));
    let runs = read_records(&outs);
    let logged = read_log(&store, JOBS);
    let expected = expected(JOBS, first_window, last);
    let duplicates: usize = runs.values().map(|n| n - 1).sum();
    let mut claimed_not_run = 0;
    let mut missing = Vec::new();
    for (key, t) in &expected {
        let id = (key.clone(), t.timestamp());
        if runs.contains_key(&id) {
            continue;
        }
        match logged.get(&id) {
            Some(node) if killed_ids.contains(node) => claimed_not_run += 1,
            _ => missing.push(id),
        }
    }
    println!(
        "fleet crash: processes={NODES} kills={} jobs={JOBS} fire_times/job={TICKS} expected={} dispatched={} duplicates={duplicates} \
         claimed_by_killed_node_not_run={claimed_not_run} recovered_after_lease_expiry={} missing={}",
        killed_ids.len(), expected.len(), runs.len(), logged.len() - logged_before, missing.len()
    );
    assert_eq!(duplicates, 0, "a fire time ran twice");
    assert!(
        missing.is_empty(),
        "fire times neither run nor logged as claimed by a killed node: {missing:?}"
    );
    let unexpected: Vec<_> = runs
        .keys()
        .filter(|id| {
            !expected
                .iter()
                .any(|(k, t)| (k, t.timestamp()) == (&id.0, id.1))
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "ran fire times that were not due: {unexpected:?}"
    );
}

/// Three nodes dispatch for 3 simulated hours; all stop. Restarts with a 24 h recovery
/// window right away (leases live) and after the leases have expired replay nothing; after
/// a 30-minute full outage each missed fire time is dispatched exactly once, and a further
/// restart replays nothing.
pub fn restarts_replay_nothing_and_recover_an_outage_once(backend: &dyn Backend) {
    const NODES: usize = 3;
    const JOBS: usize = 3;
    const TICKS: i64 = 180;
    let store = TestStore::new(backend);
    let dir = fleet_dir();
    let spec = |name: String| WorkerSpec {
        lease_ttl_secs: Some(SHORT_TTL),
        ..WorkerSpec::ticking(name, start(), TICKS, JOBS)
    };
    let before = read_records(&run_together(
        &store.locator,
        (0..NODES).map(|i| spec(format!("before-{i}"))).collect(),
        dir.path(),
    ));
    let last = start() + Duration::minutes(TICKS - 1);
    assert_eq!(
        before.len(),
        expected(JOBS, start() - Duration::seconds(1), last).len()
    );
    let restart = |name: &str, at: DateTime<Utc>| -> BTreeSet<(String, i64)> {
        let specs = (0..NODES)
            .map(|i| WorkerSpec {
                recover: Some((at, 24 * 3600)),
                ..spec(format!("{name}-{i}"))
            })
            .collect();
        let runs = read_records(&run_together(&store.locator, specs, dir.path()));
        assert!(
            runs.values().all(|n| *n == 1),
            "{name}: a fire time ran twice"
        );
        runs.into_keys().collect()
    };
    let within_ttl = restart("within-ttl", last + Duration::seconds(20));
    let_short_leases_expire();
    let past_ttl = restart("past-ttl", last + Duration::seconds(40));
    let outage_end = last + Duration::minutes(30);
    let after_outage = restart("after-outage", outage_end);
    let again = restart("again", outage_end + Duration::seconds(20));
    let replays =
        |runs: &BTreeSet<(String, i64)>| runs.iter().filter(|id| before.contains_key(*id)).count();
    let missed: BTreeSet<(String, i64)> = expected(JOBS, last + Duration::seconds(1), outage_end)
        .into_iter()
        .map(|(k, t)| (k, t.timestamp()))
        .collect();
    println!(
        "fleet restart: processes={NODES} jobs={JOBS} fire_times_before={} replays_within_ttl={} replays_past_ttl={} \
         missed_in_outage={} recovered={} replays_after_outage={} replays_on_second_restart={}",
        before.len(), within_ttl.len(), past_ttl.len(), missed.len(), after_outage.len(), replays(&after_outage), again.len()
    );
    assert!(
        within_ttl.is_empty(),
        "restart within lease_ttl dispatched {within_ttl:?}"
    );
    assert!(
        past_ttl.is_empty(),
        "restart past lease_ttl dispatched {past_ttl:?}"
    );
    assert_eq!(
        after_outage, missed,
        "recovery must dispatch exactly the fire times missed in the outage"
    );
    assert!(again.is_empty(), "a second restart dispatched {again:?}");
}

/// Three nodes whose clocks are off by -60 s, 0 and +60 s tick the same wall instants:
/// no fire time runs twice, and every fire time due by the slowest clock is run.
pub fn skewed_clocks_cause_no_duplicates(backend: &dyn Backend) {
    const JOBS: usize = 3;
    const TICKS: i64 = 200;
    let store = TestStore::new(backend);
    let dir = fleet_dir();
    let specs = [-60, 0, 60]
        .into_iter()
        .map(|skew| WorkerSpec {
            skew_secs: skew,
            ..WorkerSpec::ticking(format!("skew{skew:+}"), start(), TICKS, JOBS)
        })
        .collect();
    let runs = read_records(&run_together(&store.locator, specs, dir.path()));
    let duplicates: usize = runs.values().map(|n| n - 1).sum();
    let due = expected(
        JOBS,
        start(),
        start() + Duration::minutes(TICKS - 1) - Duration::seconds(60),
    );
    let missing = due
        .iter()
        .filter(|(k, t)| !runs.contains_key(&(k.clone(), t.timestamp())))
        .count();
    println!(
        "fleet clock skew: processes=3 offsets=-60s,0,+60s jobs={JOBS} fire_times_due_on_every_clock={} dispatched={} duplicates={duplicates} missing={missing}",
        due.len(), runs.len()
    );
    assert_eq!(duplicates, 0);
    assert_eq!(missing, 0);
}
