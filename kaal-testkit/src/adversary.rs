//! Fleet scenarios an adversary would try beyond crashes and outages: a write stalled past
//! the lease, clocks far ahead, two applications on one database, two processes with one
//! node id. Real OS processes; each prints its figures.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::fleet::{fleet_dir, read_log_rows, read_records, run_together, Worker, WorkerSpec};
use crate::{Backend, TestStore};

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 1)
        .single()
        .expect("valid instant")
}

/// Node B wins its locks, then its commit stalls for twice its 2 s lease — on a networked
/// database in the network itself (a TCP relay holds B's bytes), on SQLite inside the node
/// (a pause between the two statements) — while node C, ticking the same instant once B's
/// lease has expired, claims, commits and runs. B's commit then lands: it finds C's rows and
/// runs nothing. Each fire time runs once, and the log names C.
pub fn a_commit_stalled_past_the_lease_runs_nothing(backend: &dyn Backend) {
    const JOBS: usize = 3;
    const LEASE: u64 = 2;
    const STALL_MS: u64 = 4_000;
    let store = TestStore::new(backend);
    let dir = fleet_dir();
    let mut relay = backend.outage(&store.locator);
    let networked = relay.as_mut().is_some_and(|r| {
        let can = r.stall();
        r.unstall();
        can
    });
    let spec = |name: &str| WorkerSpec {
        stepped: true,
        lease_ttl_secs: Some(LEASE),
        ..WorkerSpec::ticking(name, start(), 0, JOBS)
    };
    let gate = dir.path().join("commit-gate");
    let (stalled_spec, stalled_locator, how) = match relay.as_ref().filter(|_| networked) {
        Some(relay) => (
            WorkerSpec {
                stall_gate: Some(gate.clone()),
                ..spec("stalled-b")
            },
            relay.locator(),
            "TCP relay held the commit",
        ),
        None => (
            WorkerSpec {
                stall_after_claim_ms: Some(STALL_MS),
                ..spec("stalled-b")
            },
            store.locator.clone(),
            "node paused before its commit",
        ),
    };
    let mut stalled = Worker::spawn(&stalled_locator, stalled_spec, dir.path());
    let mut rival = Worker::spawn(&store.locator, spec("rival-c"), dir.path());
    stalled.go();
    rival.go();
    stalled.send_tick(start());
    if let Some(relay) = relay.as_mut().filter(|_| networked) {
        stalled.claimed();
        relay.stall();
        std::fs::write(&gate, b"go").expect("cannot open the gate");
    }
    // Waiting out B's lease on the database's clock is the scenario itself.
    std::thread::sleep(StdDuration::from_millis(LEASE * 1000 + 700));
    rival.send_tick(start());
    let (rival_errors, rival_ran) = rival.ticked();
    if let Some(relay) = relay.as_mut().filter(|_| networked) {
        relay.unstall();
    }
    let (stalled_errors, stalled_ran) = stalled.ticked();
    stalled.end();
    rival.end();
    let outs = vec![stalled.out.clone(), rival.out.clone()];
    stalled.finish();
    rival.finish();
    let runs = read_records(&outs);
    let logged = read_log_rows(&store, JOBS);
    let duplicates: usize = runs.values().map(|n| n - 1).sum();
    let by_rival = logged.values().filter(|(n, _)| n == "rival-c").count();
    println!(
        "fleet stalled commit: processes=2 lease_ttl={LEASE}s stall>{LEASE}s ({how}) fire_times={JOBS} runs={} duplicates={duplicates} \
         ran_by_stalled_node={stalled_ran} ran_by_rival={rival_ran} logged_by_rival={by_rival} errors={}",
        runs.values().sum::<usize>(),
        rival_errors + stalled_errors
    );
    assert_eq!(duplicates, 0, "a fire time ran twice");
    assert_eq!(runs.len(), JOBS);
    if backend.session_locks() && rival_ran == 0 {
        // The stalled node's session, and so its locks, outlived the stall: the rival found
        // them held and the stalled node ran them, once, when its commit landed.
        assert_eq!(
            stalled_ran, JOBS,
            "nobody ran the stalled node's fire times"
        );
        let by_stalled = logged.values().filter(|(n, _)| n == "stalled-b").count();
        assert_eq!(by_stalled, JOBS, "{logged:?}");
    } else {
        assert_eq!(
            rival_ran, JOBS,
            "the rival must run what the stalled node held"
        );
        assert_eq!(
            stalled_ran, 0,
            "the stalled node ran fire times after its lease"
        );
        assert_eq!(
            by_rival, JOBS,
            "the late commit overwrote the log: {logged:?}"
        );
    }
}

/// Three nodes tick at their own clocks' now, three times: one on time, one 2 h fast, one a
/// day fast. Nothing runs early (beyond the one-second tolerance), nothing runs twice; the
/// fast nodes run nothing — the database's clock decides what is due.
pub fn fast_clocks_run_nothing_early(backend: &dyn Backend) {
    const JOBS: usize = 3;
    let store = TestStore::new(backend);
    let dir = fleet_dir();
    let offsets = [0_i64, 2 * 3600, 24 * 3600];
    let mut workers: Vec<Worker> = offsets
        .iter()
        .map(|skew| {
            let spec = WorkerSpec {
                stepped: true,
                skew_secs: *skew,
                ..WorkerSpec::ticking(format!("clock{skew:+}"), start(), 0, JOBS)
            };
            Worker::spawn(&store.locator, spec, dir.path())
        })
        .collect();
    workers.iter_mut().for_each(Worker::go);
    let mut ran_by: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..3 {
        workers.iter_mut().for_each(Worker::send_tick_now);
        for worker in workers.iter_mut() {
            let (_, ran) = worker.ticked();
            *ran_by.entry(worker.spec.node_id.clone()).or_default() += ran;
        }
    }
    let checked_at = Utc::now();
    workers.iter_mut().for_each(Worker::end);
    let outs: Vec<_> = workers.iter().map(|w| w.out.clone()).collect();
    workers.into_iter().for_each(Worker::finish);
    let runs = read_records(&outs);
    let duplicates: usize = runs.values().map(|n| n - 1).sum();
    let tolerance = Duration::from_std(kaal_core::CLAIM_TOLERANCE).expect("tolerance fits");
    let early = runs
        .keys()
        .filter(|(_, unix)| *unix > (checked_at + tolerance).timestamp())
        .count();
    let fast_runs = ran_by.get("clock+7200").copied().unwrap_or(0)
        + ran_by.get("clock+86400").copied().unwrap_or(0);
    println!(
        "fleet fast clocks: processes=3 offsets=0,+2h,+1d jobs={JOBS} runs={} early={early} duplicates={duplicates} \
         ran_by_fast_nodes={fast_runs} ran_by_node_on_time={}",
        runs.len(),
        ran_by.get("clock+0").copied().unwrap_or(0)
    );
    assert_eq!(duplicates, 0, "a fire time ran twice");
    assert_eq!(early, 0, "fire times ran before their instant: {runs:?}");
    // Not vacuous: the fast nodes' windows hold fire times after the jobs were defined, which
    // only the database's clock keeps them from running. (The node on time owes nothing yet:
    // the jobs were defined seconds ago, and no fire time before that is owed.)
    assert_eq!(fast_runs, 0, "a fast node claimed");
}

/// Two applications (namespaces `app1`, `app2`), two nodes each, the same job keys, one
/// database, 60 minutes: each application runs each of its fire times exactly once.
pub fn namespaces_on_one_database_run_their_own_jobs_once(backend: &dyn Backend) {
    const JOBS: usize = 3;
    const TICKS: i64 = 60;
    let store = TestStore::new(backend);
    let dir = fleet_dir();
    let namespaces = ["app1", "app2"];
    let specs: Vec<WorkerSpec> = namespaces
        .iter()
        .flat_map(|ns| {
            (0..2).map(move |i| WorkerSpec {
                namespace: Some(ns.to_string()),
                ..WorkerSpec::ticking(format!("{ns}-node-{i}"), start(), TICKS, JOBS)
            })
        })
        .collect();
    let outs = run_together(&store.locator, specs, dir.path());
    let lookback = Duration::from_std(crate::coordination::scenario_config("x").window_lookback)
        .expect("lookback fits");
    let expected = crate::fleet::job_keys(JOBS).len()
        * crate::coordination::due_between(
            &[("x", "* * * * *")],
            start() - lookback,
            start() + Duration::minutes(TICKS - 1),
        )
        .len();
    let mut figures = Vec::new();
    for (n, ns) in namespaces.iter().enumerate() {
        let runs = read_records(&outs[2 * n..2 * n + 2]);
        let duplicates: usize = runs.values().map(|k| k - 1).sum();
        figures.push((ns, runs.len(), duplicates));
    }
    println!(
        "fleet namespaces: processes=4 namespaces=app1,app2 jobs={JOBS} (same keys) fire_times_per_namespace={expected} {}",
        figures
            .iter()
            .map(|(ns, ran, dup)| format!("{ns}: dispatched={ran} duplicates={dup}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    for (ns, ran, duplicates) in figures {
        assert_eq!(duplicates, 0, "{ns} ran a fire time twice");
        assert_eq!(ran, expected, "{ns} did not run each of its fire times");
    }
}

/// Two processes start with the same `node_id` at the same instant: one runs, the other is
/// refused with an error naming the id.
pub fn a_duplicate_node_id_is_refused(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let dir = fleet_dir();
    let mut twins: Vec<Worker> = (0..2)
        .map(|_| {
            // Short leases and node_timeout (3 s): the refused twin waits that long for the
            // holder's registration to expire before giving up.
            let spec = WorkerSpec {
                start_only: true,
                lease_ttl_secs: Some(2),
                ..WorkerSpec::ticking("twin", start(), 0, 1)
            };
            Worker::spawn(&store.locator, spec, dir.path())
        })
        .collect();
    twins.iter_mut().for_each(Worker::go);
    let answers: Vec<Result<(), String>> = twins.iter_mut().map(Worker::started).collect();
    twins.iter_mut().for_each(Worker::end);
    twins.into_iter().for_each(Worker::finish);
    let started = answers.iter().filter(|a| a.is_ok()).count();
    let refusals: Vec<&String> = answers.iter().filter_map(|a| a.as_ref().err()).collect();
    println!(
        "fleet duplicate node_id: processes=2 node_id=twin started={started} refused={} ({})",
        refusals.len(),
        refusals.first().map_or("", |r| r.as_str())
    );
    assert_eq!(started, 1, "{answers:?}");
    assert!(
        refusals[0].contains("\"twin\"") && refusals[0].contains("already in use"),
        "{refusals:?}"
    );
}
