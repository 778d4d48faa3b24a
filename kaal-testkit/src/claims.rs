//! The claim protocol's store behaviours: the insert-only commit point, the compare-and-set
//! start and takeover, the database's clock as the judge of "due" and of liveness, node-id
//! uniqueness, and namespace isolation. Any store the coordinator runs on with the dispatch
//! log on must pass these; they are what the exactly-once argument of kaal-core's
//! `coordinator::claim` rests on.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, DurationRound, TimeZone, Utc};
use kaal_core::{
    dispatch_log_key, Commit, Config, DispatchRegistry, DispatchStatus, Kaal, NodeInfo,
    NodeRegistry, Registration,
};

use crate::coordination::{node_with, scenario_config, Ledger};
use crate::{Backend, TestStore};

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_767_225_600 + seconds, 0).unwrap()
}

fn pairs(keys: &[&str], fire_time: DateTime<Utc>) -> Vec<(String, DateTime<Utc>)> {
    keys.iter().map(|k| (k.to_string(), fire_time)).collect()
}

fn log_of(adapter: &Arc<dyn kaal_core::Adapter>) -> &dyn DispatchRegistry {
    adapter
        .dispatch_registry()
        .expect("backend has no dispatch registry")
}

fn nodes_of(adapter: &Arc<dyn kaal_core::Adapter>) -> &dyn NodeRegistry {
    adapter
        .node_registry()
        .expect("backend has no node registry")
}

/// The first commit of a fire time creates its `claimed` row; every later commit — however
/// late, even after the winner started the job — is answered `Taken` and changes nothing.
pub fn commit_is_insert_only_and_never_overwrites(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let (a, b) = (store.open(), store.open());
    let batch = pairs(&["kaal:report", "kaal:digest"], at(0));
    let first = log_of(&a).commit_claims(&batch, "node-a").unwrap();
    assert_eq!(first.outcomes, [Commit::Created, Commit::Created]);
    let row = log_of(&b)
        .find_dispatch("kaal:report", at(0))
        .unwrap()
        .unwrap();
    assert_eq!(
        (row.node_id.as_str(), row.status),
        ("node-a", DispatchStatus::Claimed)
    );
    assert!(log_of(&a)
        .transition(
            "kaal:report",
            at(0),
            "node-a",
            DispatchStatus::Claimed,
            DispatchStatus::Dispatched
        )
        .unwrap());
    // A stalled node's commit lands late: nothing changes.
    let late = log_of(&b).commit_claims(&batch, "node-b").unwrap();
    assert_eq!(late.outcomes, [Commit::Taken, Commit::Taken]);
    let row = log_of(&b)
        .find_dispatch("kaal:report", at(0))
        .unwrap()
        .unwrap();
    assert_eq!(
        (row.node_id.as_str(), row.status),
        ("node-a", DispatchStatus::Dispatched)
    );
    let row = log_of(&b)
        .find_dispatch("kaal:digest", at(0))
        .unwrap()
        .unwrap();
    assert_eq!(
        (row.node_id.as_str(), row.status),
        ("node-a", DispatchStatus::Claimed)
    );
    // A mixed batch: the new pair is created, the old one taken.
    let mixed = vec![
        ("kaal:report".to_string(), at(0)),
        ("kaal:report".to_string(), at(60)),
    ];
    let answer = log_of(&b).commit_claims(&mixed, "node-b").unwrap();
    assert_eq!(answer.outcomes, [Commit::Taken, Commit::Created]);
}

/// Eight nodes commit the same 50 fire times at once: each is created by exactly one.
pub fn racing_commits_create_each_row_once(backend: &dyn Backend) {
    const NODES: usize = 8;
    let store = TestStore::new(backend);
    let batch: Vec<(String, DateTime<Utc>)> = (0..50)
        .map(|i| (format!("kaal:job-{}", i % 5), at(60 * (i / 5))))
        .collect();
    let barrier = Arc::new(Barrier::new(NODES));
    let handles: Vec<_> = (0..NODES)
        .map(|n| {
            let (adapter, barrier, batch) = (store.open(), barrier.clone(), batch.clone());
            thread::spawn(move || {
                barrier.wait();
                // A store may report contention as an error (a retry decides it): retry.
                for _ in 0..50 {
                    match log_of(&adapter).commit_claims(&batch, &format!("node-{n}")) {
                        Ok(answer) => return answer.outcomes,
                        Err(_) => thread::sleep(StdDuration::from_millis(20)),
                    }
                }
                panic!("node-{n} could not commit in 50 attempts");
            })
        })
        .collect();
    let answers: Vec<Vec<Commit>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for i in 0..batch.len() {
        let created = answers.iter().filter(|a| a[i] == Commit::Created).count();
        assert_eq!(created, 1, "{:?} created {created} times", batch[i]);
    }
}

/// Only the owner starts a claim, once; a claim handed to another node can no longer be
/// started by its old owner, and only one of two nodes taking it over gets it.
pub fn a_claim_starts_once_and_a_takeover_is_exclusive(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let adapter = store.open();
    let log = log_of(&adapter);
    let batch = pairs(&["kaal:a", "kaal:b"], at(0));
    log.commit_claims(&batch, "dead").unwrap();
    let start = |key: &str, node: &str| {
        log.transition(
            key,
            at(0),
            node,
            DispatchStatus::Claimed,
            DispatchStatus::Dispatched,
        )
        .unwrap()
    };
    assert!(!start("kaal:a", "other"), "a node started another's claim");
    assert!(start("kaal:a", "dead"));
    assert!(!start("kaal:a", "dead"), "a claim started twice");
    // A started row is never reassigned.
    assert!(!log.reassign_claim("kaal:a", at(0), "dead", "live").unwrap());
    // A never-started one is, once.
    assert!(log.reassign_claim("kaal:b", at(0), "dead", "live").unwrap());
    assert!(!log
        .reassign_claim("kaal:b", at(0), "dead", "third")
        .unwrap());
    assert!(
        !start("kaal:b", "dead"),
        "the old owner started a reassigned claim"
    );
    assert!(start("kaal:b", "live"));
    let unstarted = log.unstarted_claims(at(-3600)).unwrap();
    assert!(unstarted.is_empty(), "{unstarted:?}");
    // A failure is recorded on the owner's started row only.
    assert!(!log
        .transition(
            "kaal:b",
            at(0),
            "dead",
            DispatchStatus::Dispatched,
            DispatchStatus::Failed
        )
        .unwrap());
    assert!(log
        .transition(
            "kaal:b",
            at(0),
            "live",
            DispatchStatus::Dispatched,
            DispatchStatus::Failed
        )
        .unwrap());
}

/// `unstarted_claims` lists the `claimed` rows at or after an instant, oldest first.
pub fn unstarted_claims_are_listed_oldest_first(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let adapter = store.open();
    let log = log_of(&adapter);
    log.commit_claims(&pairs(&["kaal:x"], at(120)), "n")
        .unwrap();
    log.commit_claims(&pairs(&["kaal:x", "kaal:y"], at(60)), "n")
        .unwrap();
    log.commit_claims(&pairs(&["kaal:x"], at(0)), "n").unwrap();
    log.transition(
        "kaal:y",
        at(60),
        "n",
        DispatchStatus::Claimed,
        DispatchStatus::Dispatched,
    )
    .unwrap();
    let listed: Vec<(String, i64)> = log
        .unstarted_claims(at(60))
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.fire_time.timestamp() - at(0).timestamp()))
        .collect();
    assert_eq!(
        listed,
        [("kaal:x".to_string(), 60), ("kaal:x".to_string(), 120)]
    );
}

/// The store decides what is due by its own clock: a fire time later than its now plus the
/// tolerance is answered `Early` and not written, whatever the node's clock says.
pub fn the_store_refuses_to_commit_the_future(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let adapter = store.open();
    let log = log_of(&adapter);
    let now = Utc::now().duration_trunc(Duration::seconds(1)).unwrap();
    let batch = vec![
        ("kaal:job".to_string(), now - Duration::minutes(1)),
        ("kaal:job".to_string(), now + Duration::hours(2)),
        ("kaal:job".to_string(), now + Duration::days(1)),
    ];
    let answer = log.commit_claims(&batch, "fast-node").unwrap();
    assert_eq!(
        answer.outcomes,
        [Commit::Created, Commit::Early, Commit::Early]
    );
    let skew = (answer.database_now - Utc::now()).num_seconds().abs();
    assert!(skew < 60, "database_now is {} off", answer.database_now);
    assert!(!log
        .dispatched("kaal:job", now + Duration::hours(2))
        .unwrap());
}

/// A coordinator ticking a day ahead (a clock that jumped, or `tick --at` the future) runs
/// nothing of the future; the fire times then run at their time, once.
pub fn a_tick_in_the_future_runs_nothing_early(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let ledger = Ledger::default();
    let kaal = node_with(
        scenario_config("jumper"),
        store.open(),
        &[("every-minute", "* * * * *")],
        &ledger,
    );
    let now = Utc::now();
    let report = kaal.tick_at(now + Duration::days(1));
    assert!(
        report.dispatched.is_empty(),
        "ran the future: {:?}",
        report.dispatched.first()
    );
    assert!(!report.not_yet_due.is_empty(), "{report:?}");
    assert!(ledger.lock().unwrap().is_empty());
    // Back at the real time: nothing of the future ran, and nothing from before the job
    // was defined is owed (its first fire time is the first minute after `now`).
    let normal = node_with(
        scenario_config("steady"),
        store.open(),
        &[("every-minute", "* * * * *")],
        &ledger,
    );
    let report = normal.tick_at(Utc::now());
    assert!(report.errors.is_empty(), "{report:?}");
    let latest = Utc::now() + Duration::seconds(1);
    let ran = ledger.lock().unwrap().clone();
    assert!(
        ran.iter()
            .all(|(_, t)| *t <= latest && *t >= now - Duration::minutes(1)),
        "{ran:?}"
    );
}

/// Two applications with different namespaces and a common job key share one store: each
/// runs its own job once per fire time, and neither's log hides the other's.
pub fn namespaces_do_not_share_the_dispatch_log(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let (one, two) = (Ledger::default(), Ledger::default());
    let app = |namespace: &str, ledger: &Ledger| {
        let config = Config {
            namespace: namespace.to_string(),
            ..scenario_config(&format!("{namespace}-node"))
        };
        node_with(config, store.open(), &[("sync", "0 * * * *")], ledger)
    };
    let (app1, app2) = (app("app1", &one), app("app2", &two));
    let tick = Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 1).unwrap();
    let fire = Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap();
    app1.tick_at(tick);
    app2.tick_at(tick);
    // A second node of each app: nothing more runs.
    app("app1", &one).tick_at(tick);
    app("app2", &two).tick_at(tick);
    assert_eq!(*one.lock().unwrap(), [("sync".to_string(), fire)]);
    assert_eq!(*two.lock().unwrap(), [("sync".to_string(), fire)]);
    let adapter = store.open();
    let log = log_of(&adapter);
    for namespace in ["app1", "app2"] {
        let row = log
            .find_dispatch(&dispatch_log_key(namespace, "sync"), fire)
            .unwrap()
            .expect("each namespace logs under its own key");
        assert_eq!(row.node_id, format!("{namespace}-node"));
    }
}

fn node_info(node_id: &str, instance: &str) -> NodeInfo {
    NodeInfo {
        namespace: "kaal".to_string(),
        node_id: node_id.to_string(),
        instance: instance.to_string(),
        host: "host".to_string(),
        pid: 1,
        version: "test".to_string(),
    }
}

/// A `node_id` registered by a live process is refused to a second one; it is free again
/// once the first deregisters or is not seen for the timeout (by the store's clock), and the
/// displaced process's heartbeat then says so.
pub fn node_ids_are_unique_among_live_nodes(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let adapter = store.open();
    let nodes = nodes_of(&adapter);
    let long = StdDuration::from_secs(3600);
    let (first, second) = (node_info("web-1", "i-1"), node_info("web-1", "i-2"));
    assert!(matches!(
        nodes.register_node(&first, long).unwrap(),
        Registration::Registered { .. }
    ));
    match nodes.register_node(&second, long).unwrap() {
        Registration::Duplicate(holder) => assert_eq!(holder.instance, "i-1"),
        other => panic!("a second live web-1 was accepted: {other:?}"),
    }
    assert!(nodes.heartbeat(&first).unwrap().is_some());
    // Registering again as the same instance is fine (a restart of the registration).
    assert!(matches!(
        nodes.register_node(&first, long).unwrap(),
        Registration::Registered { .. }
    ));
    // Another node id is independent.
    assert!(matches!(
        nodes
            .register_node(&node_info("web-2", "i-3"), long)
            .unwrap(),
        Registration::Registered { .. }
    ));
    nodes.deregister_node(&first).unwrap();
    assert!(matches!(
        nodes.register_node(&second, long).unwrap(),
        Registration::Registered { .. }
    ));
    assert_eq!(nodes.heartbeat(&first).unwrap(), None);
    // A registration not seen within the timeout is taken over.
    thread::sleep(StdDuration::from_millis(20));
    assert!(matches!(
        nodes
            .register_node(&node_info("web-1", "i-4"), StdDuration::from_millis(10))
            .unwrap(),
        Registration::Registered { .. }
    ));
    assert_eq!(nodes.heartbeat(&second).unwrap(), None);
    let listed: Vec<String> = nodes
        .nodes("kaal")
        .unwrap()
        .into_iter()
        .map(|r| format!("{}/{}", r.node_id, r.instance))
        .collect();
    assert_eq!(listed, ["web-1/i-4", "web-2/i-3"]);
}

/// Two processes registering one `node_id` at the same instant: one is refused.
pub fn simultaneous_registrations_of_one_id_admit_one(backend: &dyn Backend) {
    const RACERS: usize = 6;
    let store = TestStore::new(backend);
    let barrier = Arc::new(Barrier::new(RACERS));
    let handles: Vec<_> = (0..RACERS)
        .map(|i| {
            let (adapter, barrier) = (store.open(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                for _ in 0..50 {
                    match nodes_of(&adapter).register_node(
                        &node_info("dup", &format!("i-{i}")),
                        StdDuration::from_secs(60),
                    ) {
                        Ok(Registration::Registered { .. }) => return true,
                        Ok(Registration::Duplicate(_)) => return false,
                        Err(_) => thread::sleep(StdDuration::from_millis(20)),
                    }
                }
                panic!("racer {i} could not register in 50 attempts");
            })
        })
        .collect();
    let admitted = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|admitted| *admitted)
        .count();
    assert_eq!(admitted, 1, "{admitted} processes hold one node_id");
}

/// A coordinator whose `node_id` a live node holds does not start, and says why (after
/// waiting out `node_timeout`, in case the holder was its own killed predecessor); once the
/// holder stops, the id is free at once.
pub fn a_second_coordinator_with_a_live_node_id_is_refused(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let config = || Config {
        node_timeout: StdDuration::from_secs(3),
        ..scenario_config("twin")
    };
    let first = Kaal::new(config(), store.open()).unwrap();
    let second = Kaal::new(config(), store.open()).unwrap();
    first
        .coordinator()
        .try_start()
        .expect("the first twin starts");
    let err = second
        .coordinator()
        .try_start()
        .expect_err("two live nodes with one node_id");
    let message = err.to_string();
    assert!(
        message.contains("twin") && message.contains("already in use"),
        "{message}"
    );
    assert!(!second.running());
    assert!(first.stop(StdDuration::from_secs(10)));
    // Once the first stopped (and deregistered), the id is free.
    second
        .coordinator()
        .try_start()
        .expect("the id is free after a clean stop");
    assert!(second.stop(StdDuration::from_secs(10)));
}

/// Two processes given the same `node_id` and driven by `tick_at` alone (no `start`) tick
/// the same instant at once: a node recognises the rows its commit created by its id, so
/// both would take every row for their own. The first pass registers the id; the other node
/// is refused with a message naming the holder, and each fire time runs once. When the
/// first node is dropped it gives the id back and the other claims.
pub fn nodes_sharing_a_node_id_without_start_do_not_both_claim(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let jobs: Vec<(String, &str)> = (0..20)
        .map(|i| (format!("twin-{i}"), "0 * * * *"))
        .collect();
    let jobs: Vec<(&str, &str)> = jobs.iter().map(|(k, c)| (k.as_str(), *c)).collect();
    let ledger = Ledger::default();
    let first = node_with(scenario_config("twin"), store.open(), &jobs, &ledger);
    let second = node_with(scenario_config("twin"), store.open(), &jobs, &ledger);
    let at = Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 1).unwrap();
    let barrier = Arc::new(Barrier::new(2));
    let reports: Vec<_> = thread::scope(|scope| {
        let handles: Vec<_> = [&first, &second]
            .into_iter()
            .map(|kaal| {
                let barrier = barrier.clone();
                scope.spawn(move || {
                    barrier.wait();
                    kaal.tick_at(at)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ran = ledger.lock().unwrap().len();
    assert_eq!(ran, jobs.len(), "each fire time runs once: {reports:?}");
    let refused: Vec<&String> = reports
        .iter()
        .flat_map(|r| &r.errors)
        .filter(|e| e.contains("twin") && e.contains("another live process"))
        .collect();
    assert_eq!(refused.len(), 1, "one twin is refused: {reports:?}");
    drop(first);
    let later = at + Duration::hours(1);
    let report = second.tick_at(later);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(
        report.dispatched.len(),
        jobs.len(),
        "the id is free once the first is gone"
    );
}

/// A node that committed claims and died before starting them: a live node runs them, once,
/// as soon as the dead node counts as gone (`node_timeout`, by the store's clock).
pub fn a_dead_nodes_queued_claims_run_once_elsewhere(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let fire = Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap();
    let tick = fire + Duration::seconds(1);
    // The dead node: committed three fire times, started one, then vanished.
    let adapter = store.open();
    let log = log_of(&adapter);
    let batch = pairs(&["kaal:q-0", "kaal:q-1", "kaal:q-2"], fire);
    log.commit_claims(&batch, "dead-node").unwrap();
    assert!(log
        .transition(
            "kaal:q-0",
            fire,
            "dead-node",
            DispatchStatus::Claimed,
            DispatchStatus::Dispatched
        )
        .unwrap());
    let ledger = Ledger::default();
    let jobs = [
        ("q-0", "0 * * * *"),
        ("q-1", "0 * * * *"),
        ("q-2", "0 * * * *"),
    ];
    let config = |id: &str| Config {
        node_timeout: StdDuration::from_secs(3),
        ..scenario_config(id)
    };
    let early = node_with(config("live-1"), store.open(), &jobs, &ledger);
    let report = early.tick_at(tick);
    assert!(
        report.dispatched.is_empty(),
        "took over before node_timeout: {report:?}"
    );
    // Wait out node_timeout on the store's clock.
    thread::sleep(StdDuration::from_millis(3_500));
    let live = [
        node_with(config("live-2"), store.open(), &jobs, &ledger),
        node_with(config("live-3"), store.open(), &jobs, &ledger),
    ];
    let reports: Vec<_> = live.iter().map(|n| n.tick_at(tick)).collect();
    let mut ran: Vec<String> = ledger
        .lock()
        .unwrap()
        .iter()
        .map(|(k, _)| k.clone())
        .collect();
    ran.sort();
    assert_eq!(ran, ["q-1", "q-2"], "{reports:?}");
    let taken: usize = reports.iter().map(|r| r.taken_over.len()).sum();
    assert_eq!(taken, 2);
    assert!(log.unstarted_claims(fire).unwrap().is_empty());
    let started = log.find_dispatch("kaal:q-0", fire).unwrap().unwrap();
    assert_eq!(
        started.node_id, "dead-node",
        "a started fire time was taken over"
    );
}

/// A node killed without deregistering (SIGKILL, a crash) and restarted at once with the same
/// `node_id` starts as soon as its old registration has gone unseen for `node_timeout`.
pub fn a_restarted_node_takes_its_id_back_after_node_timeout(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let adapter = store.open();
    let nodes = nodes_of(&adapter);
    // The killed predecessor: registered, never heard from again.
    let ghost = node_info("phoenix", "killed");
    assert!(matches!(
        nodes
            .register_node(&ghost, StdDuration::from_secs(3))
            .unwrap(),
        Registration::Registered { .. }
    ));
    let config = Config {
        node_timeout: StdDuration::from_secs(3),
        ..scenario_config("phoenix")
    };
    let kaal = Kaal::new(config, store.open()).unwrap();
    let began = std::time::Instant::now();
    kaal.coordinator()
        .try_start()
        .expect("the restarted node takes its id back");
    let waited = began.elapsed();
    assert!(
        waited >= StdDuration::from_millis(2_000),
        "started while the old registration was fresh ({waited:?})"
    );
    assert!(kaal.stop(StdDuration::from_secs(10)));
}
