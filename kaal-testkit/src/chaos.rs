//! Fleet scenarios under failure: nodes killed mid-run, restarts after outages, skewed clocks.
//! Each prints its figures (processes, fire times, duplicates, missing, replays).
#![allow(clippy::print_stdout)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::Rng;

use crate::coordination::due_between;
use kaal_core::DispatchStatus;

use crate::fleet::{
    fleet_dir, job_keys, read_log, read_log_rows, read_records, run_together, tick_together,
    Worker, WorkerSpec, SHORT_NODE_TIMEOUT_SECS,
};
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

/// Waits for leases written with [`SHORT_TTL`] to pass their ttl on the database's clock,
/// and for nodes that stopped to count as gone (`node_timeout`).
fn let_short_leases_expire() {
    let wait = SHORT_TTL.max(SHORT_NODE_TIMEOUT_SECS);
    std::thread::sleep(StdDuration::from_millis(wait * 1000 + 600));
}

/// A node is killed with SIGKILL inside its first callback, with its other claimed fire
/// times queued behind it; then four nodes tick 1,200 minutes of 3 jobs while nodes are
/// killed with SIGKILL at random moments (also between a claim and its callback) and
/// replaced. Afterwards a recovery pass (once leases have expired and the killed nodes count
/// as gone) runs what is left. 0 duplicates; every fire time a killed node claimed but never
/// started is run exactly once by another node; the only fire times not run are those a
/// killed node had started (logged `dispatched` by it: at most once).
pub fn killed_nodes_cause_no_duplicates_and_no_silent_misses(backend: &dyn Backend) {
    const NODES: usize = 4;
    const JOBS: usize = 3;
    const TICKS: i64 = 1200;
    const KILLS: usize = 8;
    let store = TestStore::new(backend);
    let dir = fleet_dir();
    let spec = |name: String| WorkerSpec {
        lease_ttl_secs: Some(SHORT_TTL),
        ..WorkerSpec::ticking(name, start(), TICKS, JOBS)
    };
    // First, one node that dies inside its first callback, after logging its claims: a
    // crash between claim and run, every time. Its fire times must show in the log as
    // claimed by a killed node.
    let mut doomed = Worker::spawn(
        &store.locator,
        WorkerSpec {
            die_in_callback: true,
            ticks: 1,
            ..spec("doomed".into())
        },
        dir.path(),
    );
    doomed.go();
    let doomed_out = doomed.out.clone();
    doomed.expect_killed();
    let doomed_rows: Vec<_> = read_log_rows(&store, JOBS)
        .into_iter()
        .filter(|(_, (node, _))| node == "doomed")
        .collect();
    let doomed_claims = doomed_rows.len();
    let doomed_queued: Vec<_> = doomed_rows
        .iter()
        .filter(|(_, (_, status))| *status == DispatchStatus::Claimed)
        .map(|(id, _)| id.clone())
        .collect();
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
    let (mut killed_ids, mut outs) = (vec!["doomed".to_string()], vec![doomed_out]);
    // Kill running nodes only, at random moments, until KILLS kills have landed; each
    // replacement ticks the whole range again, so the fleet keeps running between kills.
    let mut attempts = 0;
    while killed_ids.len() <= KILLS && attempts < 10 * KILLS {
        attempts += 1;
        // Random moments, not synchronisation: the point is to land anywhere in a tick.
        std::thread::sleep(StdDuration::from_millis(rng.gen_range(5..60)));
        let running: Vec<usize> = (0..workers.len())
            .filter(|i| workers[*i].running())
            .collect();
        if running.is_empty() {
            break;
        }
        let victim = running[rng.gen_range(0..running.len())];
        let mut dead = workers.swap_remove(victim);
        if dead.kill() {
            killed_ids.push(dead.spec.node_id.clone());
        }
        outs.push(dead.out.clone());
        let mut replacement = Worker::spawn(
            &store.locator,
            spec(format!("replacement-{attempts}")),
            dir.path(),
        );
        replacement.go();
        workers.push(replacement);
    }
    assert!(
        killed_ids.len() > KILLS / 2,
        "only {} kills landed on running nodes",
        killed_ids.len() - 1
    );
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
    let logged = read_log_rows(&store, JOBS);
    let expected = expected(JOBS, first_window, last);
    let duplicates: usize = runs.values().map(|n| n - 1).sum();
    let mut started_not_run = 0;
    let mut missing = Vec::new();
    for (key, t) in &expected {
        let id = (key.clone(), t.timestamp());
        if runs.contains_key(&id) {
            continue;
        }
        match logged.get(&id) {
            Some((
                node,
                DispatchStatus::Dispatched | DispatchStatus::Failed | DispatchStatus::Abandoned,
            )) if killed_ids.contains(node) => started_not_run += 1,
            _ => missing.push(id),
        }
    }
    let still_claimed = logged
        .values()
        .filter(|(_, status)| *status == DispatchStatus::Claimed)
        .count();
    let queued_run_elsewhere = doomed_queued
        .iter()
        .filter(|id| runs.get(id) == Some(&1))
        .count();
    println!(
        "fleet crash: processes={NODES} kills={} (1 inside a callback with {} fire times queued behind it) jobs={JOBS} fire_times/job={TICKS} expected={} dispatched={} duplicates={duplicates} \
         queued_of_killed_node_run_elsewhere={queued_run_elsewhere}/{} started_by_killed_node_not_finished={started_not_run} recovered_after_expiry={} still_claimed={still_claimed} missing={}",
        killed_ids.len(), doomed_queued.len(), expected.len(), runs.len(), doomed_queued.len(), logged.len() - logged_before, missing.len()
    );
    assert_eq!(duplicates, 0, "a fire time ran twice");
    assert!(
        missing.is_empty(),
        "fire times neither run nor started by a killed node: {missing:?}"
    );
    assert_eq!(
        doomed_claims, JOBS,
        "the node killed inside its first callback committed its claims first"
    );
    assert_eq!(
        doomed_queued.len(),
        JOBS - 1,
        "the node killed inside its first callback had the rest queued, not started"
    );
    assert_eq!(
        queued_run_elsewhere,
        doomed_queued.len(),
        "every fire time the killed node never started must run once elsewhere"
    );
    assert_eq!(still_claimed, 0, "claimed fire times left unstarted");
    assert!(
        started_not_run >= 1,
        "the fire time of the node killed inside a callback must show as started, not run"
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

/// How long the database-outage case keeps the store unreachable, at least.
const OUTAGE: StdDuration = StdDuration::from_secs(10);

/// Three nodes tick the same instants (one simulated minute per step, 3 jobs); after 10
/// steps the connections are cut five times for an instant, each at a random moment of a
/// tick, then the store becomes unreachable ([`Backend::outage`]) for at least 10 s, while the nodes keep ticking — every node reports errors on every tick and none dies or runs
/// anything — then it comes back and the nodes tick on. Every fire time from the first step
/// to the last runs exactly once and is logged: what fell due during the outage is caught
/// up, and claims whose outcome the cut left unknown are retried, never run twice, never
/// dropped.
pub fn database_outage_is_survived_and_caught_up_once(backend: &dyn Backend) {
    const NODES: usize = 3;
    const JOBS: usize = 3;
    const BEFORE: i64 = 10;
    const BLIPS: i64 = 5;
    const AFTER: i64 = 10;
    let store = TestStore::new(backend);
    let mut outage = backend.outage(&store.locator).unwrap_or_else(|| {
        panic!(
            "this backend cannot simulate a database outage: implement Backend::outage (a \
             networked database can return kaal_testkit::TcpCut::new(url, default_port))"
        )
    });
    let dir = fleet_dir();
    let locator = outage.locator();
    let mut workers: Vec<Worker> = (0..NODES)
        .map(|i| {
            let spec = WorkerSpec {
                stepped: true,
                lease_ttl_secs: Some(SHORT_TTL),
                ..WorkerSpec::ticking(format!("outage-node-{i}"), start(), 0, JOBS)
            };
            Worker::spawn(&locator, spec, dir.path())
        })
        .collect();
    workers.iter_mut().for_each(Worker::go);
    let mut minute = 0;
    let step = |workers: &mut [Worker], minute: &mut i64| {
        let answers = tick_together(workers, start() + Duration::minutes(*minute));
        *minute += 1;
        answers
    };
    let errors_before: usize = (0..BEFORE)
        .flat_map(|_| step(&mut workers, &mut minute))
        .map(|(errors, _)| errors)
        .sum();
    // Blips first: five cuts that end at once, each at a random moment of a tick, so claims
    // and log writes are cut mid-statement (their outcome unknown to the node).
    let mut errors_in_blips = 0;
    for _ in 0..BLIPS {
        workers
            .iter_mut()
            .for_each(|w| w.send_tick(start() + Duration::minutes(minute)));
        minute += 1;
        std::thread::sleep(StdDuration::from_millis(rand::thread_rng().gen_range(0..8)));
        outage.begin();
        outage.end();
        errors_in_blips += workers.iter_mut().map(|w| w.ticked().0).sum::<usize>();
    }
    // The cut lands at a random moment of a tick (mid-claim, mid-log, or after): whatever
    // that tick managed before it may have run.
    workers
        .iter_mut()
        .for_each(|w| w.send_tick(start() + Duration::minutes(minute)));
    minute += 1;
    std::thread::sleep(StdDuration::from_millis(
        rand::thread_rng().gen_range(0..15),
    ));
    outage.begin();
    let began = std::time::Instant::now();
    let mut errors_during: Vec<usize> = workers.iter_mut().map(|w| w.ticked().0).collect();
    let (mut steps_during, mut run_during) = (1, 0);
    while began.elapsed() < OUTAGE || steps_during < 2 {
        for (node, (errors, dispatched)) in step(&mut workers, &mut minute).into_iter().enumerate()
        {
            errors_during[node] += errors;
            run_during += dispatched;
        }
        steps_during += 1;
    }
    let down_for = began.elapsed();
    outage.end();
    let mut errors_after = 0;
    for _ in 0..AFTER {
        errors_after += step(&mut workers, &mut minute)
            .iter()
            .map(|(e, _)| e)
            .sum::<usize>();
    }
    // A claim the cut left undecided may be the node's own lease: it is retried once that
    // lease has run out.
    let_short_leases_expire();
    let last_errors: usize = (0..2)
        .flat_map(|_| step(&mut workers, &mut minute))
        .map(|(errors, _)| errors)
        .sum();
    workers.iter_mut().for_each(Worker::end);
    let outs: Vec<_> = workers.iter().map(|w| w.out.clone()).collect();
    workers.into_iter().for_each(Worker::finish);
    let last = start() + Duration::minutes(minute - 1);
    let expected: BTreeSet<(String, i64)> = expected(JOBS, start() - Duration::seconds(1), last)
        .into_iter()
        .map(|(k, t)| (k, t.timestamp()))
        .collect();
    let runs = read_records(&outs);
    let rows = crate::fleet::read_log_rows(&store, JOBS);
    let logged: BTreeMap<(String, i64), String> = rows
        .iter()
        .map(|(id, (node, _))| (id.clone(), node.clone()))
        .collect();
    let duplicates: usize = runs.values().map(|n| n - 1).sum();
    let missing: Vec<_> = expected
        .iter()
        .filter(|id| !runs.contains_key(*id))
        .collect();
    let unlogged = expected
        .iter()
        .filter(|id| !logged.contains_key(*id))
        .count();
    println!(
        "fleet database outage: processes={NODES} jobs={JOBS} outage={:.1}s ({}) steps_before={BEFORE} \
         blips={BLIPS} errors_in_blips={errors_in_blips} steps_during={steps_during} errors_during={errors_during:?} run_during={run_during} steps_after={} \
         errors_after_reconnect={errors_after} expected={} dispatched={} duplicates={duplicates} missing={} unlogged={unlogged}",
        down_for.as_secs_f64(),
        outage.describe(),
        AFTER + 2,
        expected.len(),
        runs.len(),
        missing.len()
    );
    assert_eq!(errors_before, 0, "errors before the outage");
    assert!(
        errors_during.iter().all(|e| *e > 0),
        "every node must see the outage: {errors_during:?}"
    );
    assert_eq!(
        run_during, 0,
        "a job ran while the database was unreachable"
    );
    assert_eq!(last_errors, 0, "the nodes did not reconnect");
    assert_eq!(duplicates, 0, "a fire time ran twice");
    assert!(
        missing.is_empty(),
        "fire times never run: {:?}",
        missing
            .iter()
            .map(|id| (id, rows.get(*id)))
            .collect::<Vec<_>>()
    );
    assert_eq!(unlogged, 0, "fire times run but not logged");
    assert!(
        runs.keys().all(|id| expected.contains(id)),
        "ran fire times that were not due"
    );
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
