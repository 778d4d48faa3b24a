//! Several OS processes ticking one store at the same instants.
//!
//! The test binary re-runs itself: [`fleet_suite!`](crate::fleet_suite) generates a
//! `kaal_fleet_worker` test that does nothing unless `KAAL_FLEET_LOCATOR` is set, and a test
//! that spawns K copies of the binary filtered to that worker. Workers report `READY` on
//! stdout and wait for a line on stdin, so all of them start ticking together; each writes
//! what its callbacks ran to its own file.
//!
//! Figures are printed to stdout on purpose: the test log is the evidence of a fleet run.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::coordination::{due_between, node, Ledger};
use crate::{Backend, TestStore};

const READY: &str = "KAAL_FLEET_READY";
const WORKER_TEST: &str = "kaal_fleet_worker";

/// Shape of a fleet run.
#[derive(Debug, Clone, Copy)]
pub struct FleetPlan {
    /// OS processes.
    pub processes: usize,
    /// Per-minute jobs each process registers.
    pub jobs: usize,
    /// Fire times per job every process must see dispatched once in all.
    pub fire_times: usize,
}

/// What a fleet run found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetOutcome {
    /// Fire times expected in all (jobs × fire times).
    pub expected: usize,
    /// Distinct fire times the processes' callbacks ran.
    pub dispatched: usize,
    /// Fire times run more than once (counted once per extra run).
    pub duplicates: usize,
    /// Fire times never run.
    pub missing: usize,
    /// Records in the dispatch log for the fleet's jobs.
    pub logged: usize,
}

fn job_keys(jobs: usize) -> Vec<String> {
    (0..jobs).map(|j| format!("fleet-job-{j}")).collect()
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("fleet worker: {name} is not set"))
}

fn env_num<T: std::str::FromStr>(name: &str) -> T {
    env(name)
        .parse()
        .unwrap_or_else(|_| panic!("fleet worker: {name} is not a number"))
}

/// The body of the worker test: returns at once unless this process was spawned by
/// [`processes_dispatch_each_fire_time_once`].
pub fn worker_main(backend: &dyn Backend) {
    let Ok(locator) = std::env::var("KAAL_FLEET_LOCATOR") else {
        return;
    };
    let node_id = env("KAAL_FLEET_NODE");
    let first_tick = Utc
        .timestamp_opt(env_num("KAAL_FLEET_FIRST_TICK"), 0)
        .unwrap();
    let ticks: i64 = env_num("KAAL_FLEET_TICKS");
    let jobs = job_keys(env_num("KAAL_FLEET_JOBS"));
    let out = PathBuf::from(env("KAAL_FLEET_OUT"));
    let ledger = Ledger::default();
    let specs: Vec<(&str, &str)> = jobs.iter().map(|k| (k.as_str(), "* * * * *")).collect();
    let kaal = node(backend.open(&locator), &node_id, &specs, &ledger);
    println!("{READY}");
    std::io::stdout().flush().expect("stdout closed");
    let mut go = String::new();
    std::io::stdin()
        .read_line(&mut go)
        .expect("no start signal on stdin");
    let mut errors = 0;
    for i in 0..ticks {
        errors += kaal.tick_at(first_tick + Duration::minutes(i)).errors.len();
    }
    let lines: String = ledger
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(key, fire)| format!("{key} {}\n", fire.timestamp()))
        .collect();
    std::fs::write(&out, lines).unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
    println!("fleet worker {node_id}: {errors} backend errors (retried)");
}

fn spawn_worker(
    locator: &str,
    node: usize,
    plan: &FleetPlan,
    first_tick: DateTime<Utc>,
    ticks: i64,
    out: &PathBuf,
) -> Child {
    let exe = std::env::current_exe().expect("cannot find the test binary");
    Command::new(exe)
        .args([WORKER_TEST, "--nocapture", "--test-threads=1"])
        .env("KAAL_FLEET_LOCATOR", locator)
        .env("KAAL_FLEET_NODE", format!("fleet-node-{node}"))
        .env("KAAL_FLEET_FIRST_TICK", first_tick.timestamp().to_string())
        .env("KAAL_FLEET_TICKS", ticks.to_string())
        .env("KAAL_FLEET_JOBS", plan.jobs.to_string())
        .env("KAAL_FLEET_OUT", out)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("cannot spawn a fleet worker")
}

/// Runs `plan.processes` OS processes of this test binary against one fresh store of
/// `backend`; each registers `plan.jobs` per-minute jobs and ticks the same instants, all
/// starting together. Returns the counts, checked from what the callbacks wrote and from
/// the dispatch log, and prints them for the CI log.
pub fn run_fleet(backend: &dyn Backend, plan: FleetPlan) -> FleetOutcome {
    let store = TestStore::new(backend);
    let first_tick = Utc.with_ymd_and_hms(2026, 4, 1, 0, 0, 1).unwrap();
    let lookback = Duration::from_std(crate::coordination::scenario_config("x").window_lookback)
        .expect("lookback fits");
    // The first tick also dispatches the fire times of its lookback window; tick so that
    // each job has exactly `plan.fire_times` fire times in all.
    let in_first_window =
        due_between(&[("x", "* * * * *")], first_tick - lookback, first_tick).len();
    let ticks = (plan.fire_times + 1 - in_first_window) as i64;
    let dir = std::env::temp_dir().join(format!(
        "kaal-fleet-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).expect("cannot create the fleet directory");
    let outs: Vec<PathBuf> = (0..plan.processes)
        .map(|i| dir.join(format!("node-{i}.txt")))
        .collect();
    let mut children: Vec<Child> = outs
        .iter()
        .enumerate()
        .map(|(i, out)| spawn_worker(&store.locator, i, &plan, first_tick, ticks, out))
        .collect();
    let mut readers = Vec::new();
    for child in &mut children {
        let mut reader = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        loop {
            line.clear();
            let n = reader
                .read_line(&mut line)
                .expect("cannot read a worker's stdout");
            assert!(n > 0, "a fleet worker exited before it was ready");
            // libtest may print `test kaal_fleet_worker ... ` on the same line.
            if line.trim_end().ends_with(READY) {
                break;
            }
        }
        readers.push(reader);
    }
    for child in &mut children {
        writeln!(child.stdin.as_mut().expect("piped stdin"), "go").expect("cannot signal a worker");
    }
    let tails: Vec<_> = readers
        .into_iter()
        .map(|mut reader| {
            std::thread::spawn(move || {
                let mut rest = String::new();
                let _ = std::io::Read::read_to_string(&mut reader, &mut rest);
                rest
            })
        })
        .collect();
    for (i, child) in children.iter_mut().enumerate() {
        let status = child.wait().expect("cannot wait for a worker");
        assert!(status.success(), "fleet worker {i} failed: {status}");
    }
    for tail in tails {
        for line in tail
            .join()
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("fleet worker"))
        {
            println!("{line}");
        }
    }
    let keys = job_keys(plan.jobs);
    let specs: Vec<(&str, &str)> = keys.iter().map(|k| (k.as_str(), "* * * * *")).collect();
    let expected = due_between(
        &specs,
        first_tick - lookback,
        first_tick + Duration::minutes(ticks - 1),
    );
    let mut counts: BTreeMap<(String, i64), usize> = BTreeMap::new();
    for out in &outs {
        let text =
            std::fs::read_to_string(out).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
        for line in text.lines() {
            let (key, unix) = line.split_once(' ').expect("malformed worker line");
            *counts
                .entry((key.to_string(), unix.parse().expect("bad unix")))
                .or_default() += 1;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let duplicates = counts.values().map(|n| n - 1).sum();
    let missing = expected
        .iter()
        .filter(|(k, t)| !counts.contains_key(&(k.clone(), t.timestamp())))
        .count();
    let adapter = store.open();
    let log = adapter
        .dispatch_registry()
        .expect("backend has no dispatch registry");
    let mut logged = 0;
    for key in &keys {
        let records = log.find_by_key(key).expect("cannot read the dispatch log");
        let mut times: Vec<i64> = records.iter().map(|r| r.fire_time.timestamp()).collect();
        times.dedup();
        assert_eq!(
            times.len(),
            records.len(),
            "{key}: the dispatch log holds a fire time twice"
        );
        logged += records.len();
    }
    let outcome = FleetOutcome {
        expected: expected.len(),
        dispatched: counts.len(),
        duplicates,
        missing,
        logged,
    };
    println!(
        "fleet: processes={} jobs={} fire_times/job={} expected={} dispatched={} duplicates={} missing={} logged={}",
        plan.processes, plan.jobs, plan.fire_times, outcome.expected, outcome.dispatched, outcome.duplicates, outcome.missing, outcome.logged
    );
    outcome
}

fn rand_suffix() -> u32 {
    static NEXT: Mutex<u32> = Mutex::new(0);
    let mut next = NEXT.lock().unwrap_or_else(|p| p.into_inner());
    *next += 1;
    *next
}

/// 4 processes × 200 fire times × 3 jobs: every fire time dispatched exactly once, checked
/// from the callbacks' own records and from the dispatch log.
pub fn processes_dispatch_each_fire_time_once(backend: &dyn Backend) {
    let plan = FleetPlan {
        processes: 4,
        jobs: 3,
        fire_times: 200,
    };
    let outcome = run_fleet(backend, plan);
    assert_eq!(outcome.expected, plan.jobs * plan.fire_times);
    assert_eq!(outcome.duplicates, 0, "{outcome:?}");
    assert_eq!(outcome.missing, 0, "{outcome:?}");
    assert_eq!(outcome.dispatched, outcome.expected, "{outcome:?}");
    assert_eq!(outcome.logged, outcome.expected, "{outcome:?}");
}
