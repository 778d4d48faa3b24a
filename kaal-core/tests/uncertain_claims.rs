//! Claims whose outcome a node cannot know — the batch claim reached the store but its answer
//! was lost, or the log write after a won claim failed — are neither run unlogged nor
//! dropped: they run exactly once across the fleet, and they are never silently missing.
//!
//! Two nodes share one memory store on a manual clock; node `a` talks to it through a store
//! whose faults the test switches on.
#![allow(clippy::unwrap_used)] // tests state their expectations with unwrap

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, TimeZone, Utc};
use kaal_core::{
    Adapter, Commits, Config, DefinitionRegistry, DispatchRecord, DispatchRegistry, DispatchStatus,
    Fire, Kaal, LockError, ManualClock, MemoryAdapter, RegistryError,
};

fn t(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 7, 1, h, m, s).unwrap()
}

/// The next operation of the kind fails once, as a connection cut mid-statement would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Fault {
    None = 0,
    /// The batch claim is applied, then reported as failed (the answer was lost).
    ClaimAppliedAnswerLost = 1,
    /// The log write fails without reaching the store, and the node's lock vanishes with
    /// its session (as advisory and named locks do when the connection dies).
    LogLostWithSession = 2,
    /// The log write is applied, then reported as failed (the answer was lost).
    LogAppliedAnswerLost = 3,
    /// The log write stalls long enough for node `b` to claim, commit and start the same
    /// fire time first (a network stall or VM pause past the lease), then lands.
    StalledPastARival = 4,
    /// The start (`claimed → dispatched`) is applied, then reported as failed.
    StartAppliedAnswerLost = 5,
    /// The start is reported as failed before the store applied it, and the store applies
    /// it late: right after the node's next read of the row (a statement cut on the wire
    /// that the server still finishes).
    StartLandsLate = 6,
}

struct FaultyStore {
    inner: Arc<MemoryAdapter>,
    fault: AtomicU8,
    /// A start the store has yet to apply ([`Fault::StartLandsLate`]).
    late_start: std::sync::Mutex<Option<(String, DateTime<Utc>, String)>>,
}

impl FaultyStore {
    fn take(&self, fault: Fault) -> bool {
        self.fault
            .compare_exchange(
                fault as u8,
                Fault::None as u8,
                Ordering::SeqCst,
                Ordering::SeqCst,
            )
            .is_ok()
    }

    fn cut(what: &str) -> RegistryError {
        RegistryError::new("faulty", what, "connection reset by peer")
    }
}

impl Adapter for FaultyStore {
    fn acquire(&self, key: &str, ttl: StdDuration) -> Result<bool, LockError> {
        self.inner.acquire(key, ttl)
    }
    fn acquire_many(&self, keys: &[String], ttl: StdDuration) -> Result<Vec<bool>, LockError> {
        let answer = self.inner.acquire_many(keys, ttl)?;
        if self.take(Fault::ClaimAppliedAnswerLost) {
            return Err(LockError::new(
                "faulty",
                "batch acquire",
                &keys[0],
                "connection reset by peer",
            ));
        }
        Ok(answer)
    }
    fn release(&self, key: &str) -> Result<bool, LockError> {
        self.inner.release(key)
    }
    fn dispatch_registry(&self) -> Option<&dyn DispatchRegistry> {
        Some(self)
    }
    fn definition_registry(&self) -> Option<&dyn DefinitionRegistry> {
        self.inner.definition_registry()
    }
}

impl FaultyStore {
    fn log(&self) -> &dyn DispatchRegistry {
        self.inner.dispatch_registry().unwrap()
    }
}

impl DispatchRegistry for FaultyStore {
    fn log_dispatch(
        &self,
        key: &str,
        fire_time: DateTime<Utc>,
        node_id: &str,
        status: DispatchStatus,
    ) -> Result<(), RegistryError> {
        self.log().log_dispatch(key, fire_time, node_id, status)
    }
    fn commit_claims(
        &self,
        pairs: &[(String, DateTime<Utc>)],
        node_id: &str,
    ) -> Result<Commits, RegistryError> {
        if self.take(Fault::LogLostWithSession) {
            for (key, fire_time) in pairs {
                let cron_key = key.strip_prefix("kaal:").unwrap();
                let lock = format!("kaal:dispatch:{cron_key}:{}", fire_time.timestamp());
                self.inner.release(&lock).unwrap();
            }
            return Err(Self::cut("commit claims"));
        }
        if self.take(Fault::StalledPastARival) {
            // While a's write is in flight, b claims the same fire times, commits them and
            // starts them.
            self.log().commit_claims(pairs, "b")?;
            for (key, fire_time) in pairs {
                assert!(self.log().transition(
                    key,
                    *fire_time,
                    "b",
                    DispatchStatus::Claimed,
                    DispatchStatus::Dispatched
                )?);
            }
        }
        let commits = self.log().commit_claims(pairs, node_id)?;
        if self.take(Fault::LogAppliedAnswerLost) {
            return Err(Self::cut("commit claims"));
        }
        Ok(commits)
    }
    fn transition(
        &self,
        key: &str,
        fire_time: DateTime<Utc>,
        node_id: &str,
        from: DispatchStatus,
        to: DispatchStatus,
    ) -> Result<bool, RegistryError> {
        if from == DispatchStatus::Claimed && self.take(Fault::StartLandsLate) {
            *self.late_start.lock().unwrap() = Some((key.into(), fire_time, node_id.into()));
            return Err(Self::cut("transition"));
        }
        let moved = self.log().transition(key, fire_time, node_id, from, to)?;
        if self.take(Fault::StartAppliedAnswerLost) {
            return Err(Self::cut("transition"));
        }
        Ok(moved)
    }
    fn reassign_claim(
        &self,
        key: &str,
        fire_time: DateTime<Utc>,
        from_node: &str,
        to_node: &str,
    ) -> Result<bool, RegistryError> {
        self.log()
            .reassign_claim(key, fire_time, from_node, to_node)
    }
    fn unstarted_claims(&self, since: DateTime<Utc>) -> Result<Vec<DispatchRecord>, RegistryError> {
        self.log().unstarted_claims(since)
    }
    fn find_dispatch(
        &self,
        key: &str,
        fire_time: DateTime<Utc>,
    ) -> Result<Option<DispatchRecord>, RegistryError> {
        let found = self.log().find_dispatch(key, fire_time);
        if let Some((key, fire_time, node)) = self.late_start.lock().unwrap().take() {
            self.log()
                .transition(
                    &key,
                    fire_time,
                    &node,
                    DispatchStatus::Claimed,
                    DispatchStatus::Dispatched,
                )
                .unwrap();
        }
        found
    }
    fn find_by_key(&self, key: &str) -> Result<Vec<DispatchRecord>, RegistryError> {
        self.log().find_by_key(key)
    }
    fn find_by_node(&self, node_id: &str) -> Result<Vec<DispatchRecord>, RegistryError> {
        self.log().find_by_node(node_id)
    }
    fn find_by_status(&self, status: DispatchStatus) -> Result<Vec<DispatchRecord>, RegistryError> {
        self.log().find_by_status(status)
    }
    fn cleanup(&self, older_than: DateTime<Utc>) -> Result<usize, RegistryError> {
        self.log().cleanup(older_than)
    }
    fn dispatched_many(
        &self,
        pairs: &[(String, DateTime<Utc>)],
    ) -> Result<Vec<bool>, RegistryError> {
        self.log().dispatched_many(pairs)
    }
}

struct Fleet {
    clock: Arc<ManualClock>,
    shared: Arc<MemoryAdapter>,
    faulty: Arc<FaultyStore>,
    a: Kaal,
    b: Kaal,
    runs: Receiver<(&'static str, DateTime<Utc>)>,
}

/// Nodes `a` (through the faulty store) and `b`, one hourly job each, default leases (125 s).
fn fleet() -> Fleet {
    // The job is defined at 04:59, before the 05:00 fire time the tests are about.
    let clock = Arc::new(ManualClock::new(t(4, 59, 0)));
    let shared = Arc::new(MemoryAdapter::with_clock(clock.clone()));
    let faulty = Arc::new(FaultyStore {
        inner: shared.clone(),
        fault: AtomicU8::new(0),
        late_start: std::sync::Mutex::new(None),
    });
    let (tx, runs) = mpsc::channel();
    let node = |name: &'static str, adapter: Arc<dyn Adapter>| {
        let config = Config {
            node_id: name.into(),
            recovery_startup_jitter: StdDuration::ZERO,
            ..Config::default()
        };
        let kaal = Kaal::with_clock(config, adapter, clock.clone()).unwrap();
        let tx = tx.clone();
        kaal.register("hourly", "0 * * * *", move |f: &Fire| {
            Ok(tx.send((name, f.fire_time))?)
        })
        .unwrap();
        kaal
    };
    let a = node("a", faulty.clone());
    let b = node("b", shared.clone());
    clock.set(t(5, 0, 1));
    Fleet {
        clock,
        shared,
        faulty,
        a,
        b,
        runs,
    }
}

impl Fleet {
    fn fault(&self, fault: Fault) {
        self.faulty.fault.store(fault as u8, Ordering::SeqCst);
    }

    /// Both nodes tick at `now` (a first, then b).
    fn tick(&self, now: DateTime<Utc>) {
        self.clock.set(now);
        self.a.tick_at(now);
        self.b.tick_at(now);
    }

    /// Who ran the 05:00 fire time, once the test is over.
    fn runners(&self) -> Vec<&'static str> {
        self.runs
            .try_iter()
            .filter(|(_, at)| *at == t(5, 0, 0))
            .map(|(node, _)| node)
            .collect()
    }

    fn logged_by(&self) -> Option<String> {
        self.shared
            .dispatch_registry()
            .unwrap()
            .find_dispatch("kaal:hourly", t(5, 0, 0))
            .unwrap()
            .map(|record| record.node_id)
    }
}

#[test]
fn a_claim_applied_whose_answer_was_lost_runs_once_after_its_lease_runs_out() {
    let fleet = fleet();
    fleet.fault(Fault::ClaimAppliedAnswerLost);
    fleet.clock.set(t(5, 0, 1));
    let report = fleet.a.tick_at(t(5, 0, 1));
    assert_eq!(report.errors.len(), 1, "{report:?}");
    assert!(report.dispatched.is_empty());
    // a's lease stands in the store: b sees the fire time held, and so does a itself.
    fleet.b.tick_at(t(5, 0, 2));
    for s in (6..60).step_by(5) {
        fleet.tick(t(5, 0, s));
    }
    assert!(fleet.runners().is_empty(), "ran while the lease was live");
    assert_eq!(fleet.logged_by(), None);
    // Once a's own lease (125 s) has run out, a wins it and runs it.
    for s in (0..120).step_by(5) {
        fleet.tick(t(5, 2, 0) + Duration::seconds(s));
    }
    assert_eq!(
        fleet.runners(),
        ["a"],
        "the fire time must run exactly once"
    );
    assert_eq!(fleet.logged_by().as_deref(), Some("a"));
}

#[test]
fn a_claim_whose_log_write_failed_is_not_run_unlogged() {
    let fleet = fleet();
    fleet.fault(Fault::LogLostWithSession);
    fleet.clock.set(t(5, 0, 1));
    let report = fleet.a.tick_at(t(5, 0, 1));
    assert_eq!(report.errors.len(), 1, "{report:?}");
    assert!(
        report.dispatched.is_empty(),
        "a ran a job whose claim the log does not show"
    );
    // The lock went with a's session: whichever node claims it next runs it, once.
    fleet.b.tick_at(t(5, 0, 2));
    for s in (6..60).step_by(5) {
        fleet.tick(t(5, 0, s));
    }
    let runners = fleet.runners();
    assert_eq!(runners.len(), 1, "ran by {runners:?}");
    assert_eq!(fleet.logged_by().as_deref(), Some(runners[0]));
}

#[test]
fn a_log_write_applied_whose_answer_was_lost_runs_on_the_node_that_wrote_it() {
    let fleet = fleet();
    fleet.fault(Fault::LogAppliedAnswerLost);
    fleet.clock.set(t(5, 0, 1));
    let report = fleet.a.tick_at(t(5, 0, 1));
    assert_eq!(report.errors.len(), 1, "{report:?}");
    // The error leaves a sweep owed: the same tick finds a's own claimed row and runs it.
    assert_eq!(report.dispatched.len(), 1, "{report:?}");
    // The log shows a's claim: b skips it.
    let b = fleet.b.tick_at(t(5, 0, 2));
    assert_eq!(b.already_dispatched, [("hourly".to_string(), t(5, 0, 0))]);
    assert!(b.dispatched.is_empty());
    for s in (11..60).step_by(5) {
        fleet.tick(t(5, 0, s));
    }
    assert_eq!(fleet.runners(), ["a"]);
    assert_eq!(fleet.logged_by().as_deref(), Some("a"));
}

#[test]
fn a_log_write_that_lands_after_a_rival_committed_runs_nothing_and_changes_nothing() {
    let fleet = fleet();
    fleet.fault(Fault::StalledPastARival);
    fleet.clock.set(t(5, 0, 1));
    let report = fleet.a.tick_at(t(5, 0, 1));
    assert!(
        report.dispatched.is_empty(),
        "a ran a fire time b had committed first: {report:?}"
    );
    assert_eq!(
        report.already_dispatched,
        [("hourly".to_string(), t(5, 0, 0))]
    );
    // The late write did not overwrite b's row.
    assert_eq!(fleet.logged_by().as_deref(), Some("b"));
    let status = fleet
        .shared
        .dispatch_registry()
        .unwrap()
        .find_dispatch("kaal:hourly", t(5, 0, 0))
        .unwrap()
        .unwrap()
        .status;
    assert_eq!(status, DispatchStatus::Dispatched);
}

#[test]
fn a_start_applied_whose_answer_was_lost_runs_once_on_its_node() {
    let fleet = fleet();
    fleet.fault(Fault::StartAppliedAnswerLost);
    fleet.clock.set(t(5, 0, 1));
    let report = fleet.a.tick_at(t(5, 0, 1));
    assert_eq!(report.errors.len(), 1, "{report:?}");
    // The same tick's sweep reads the row: started by a, so a (and only a) runs it.
    assert_eq!(report.dispatched.len(), 1, "{report:?}");
    for s in (6..60).step_by(5) {
        fleet.tick(t(5, 0, s));
    }
    assert_eq!(
        fleet.runners(),
        ["a"],
        "the fire time must run exactly once"
    );
}

/// A start reported failed that the store applies only after the node has read the row
/// again (it read `claimed`): the row ends up `dispatched` by this node although its start
/// "failed" and nothing ran. No other node can start a row of this node's id, so the node
/// runs it — once. It used to leave the row to the sweep, which no longer listed it
/// (`dispatched`), and the fire time was never run (seen once in the fleet outage case).
#[test]
fn a_start_that_lands_after_the_node_read_the_row_again_runs_once_on_its_node() {
    let fleet = fleet();
    fleet.fault(Fault::StartLandsLate);
    fleet.clock.set(t(5, 0, 1));
    let report = fleet.a.tick_at(t(5, 0, 1));
    assert!(!report.errors.is_empty(), "{report:?}");
    for s in (6..60).step_by(5) {
        fleet.tick(t(5, 0, s));
    }
    for s in (0..120).step_by(5) {
        fleet.tick(t(5, 2, 0) + Duration::seconds(s));
    }
    assert_eq!(
        fleet.runners(),
        ["a"],
        "the fire time must run exactly once"
    );
    let status = fleet
        .shared
        .dispatch_registry()
        .unwrap()
        .find_dispatch("kaal:hourly", t(5, 0, 0))
        .unwrap()
        .unwrap()
        .status;
    assert_eq!(
        status,
        DispatchStatus::Succeeded,
        "the run recorded its outcome"
    );
}
