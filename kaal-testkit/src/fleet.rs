//! Several OS processes ticking one store: the worker, and the runner that spawns and
//! checks a fleet of them.
//!
//! The test binary re-runs itself: [`fleet_suite!`](crate::fleet_suite) generates a
//! `kaal_fleet_worker` test that does nothing unless `KAAL_FLEET_LOCATOR` is set, and tests
//! that spawn copies of the binary filtered to that worker. Workers report `READY` on stdout
//! and wait for a line on stdin, so a fleet starts ticking together. Each worker appends
//! what its callbacks ran to its own file at once, so a node killed with SIGKILL leaves an
//! exact record of what it ran.
//!
//! Figures are printed to stdout on purpose: the test log is the evidence of a fleet run.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use kaal_core::{Config, DispatchStatus, Fire, Kaal};

use crate::coordination::{due_between, scenario_config};
use crate::{Backend, TestStore};

const READY: &str = "KAAL_FLEET_READY";
const TICKED: &str = "KAAL_FLEET_TICKED";
const STARTED: &str = "KAAL_FLEET_STARTED";
const CLAIMED: &str = "KAAL_FLEET_CLAIMED";
const WORKER_TEST: &str = "kaal_fleet_worker";

/// `node_timeout` of workers with short leases: the shortest kaal accepts.
pub const SHORT_NODE_TIMEOUT_SECS: u64 = 3;

/// What one worker process does.
#[derive(Debug, Clone)]
pub struct WorkerSpec {
    /// Its node id.
    pub node_id: String,
    /// The first instant it ticks; it then ticks every minute.
    pub first_tick: DateTime<Utc>,
    /// How many ticks.
    pub ticks: i64,
    /// How many per-minute jobs (`fleet-job-0` ...) it registers.
    pub jobs: usize,
    /// Added to every instant it ticks at: a node whose clock runs fast (+) or slow (-).
    pub skew_secs: i64,
    /// Short leases (`Some(seconds)`, with a 1 s window) for scenarios that need expiry to
    /// come quickly; `None` for the defaults.
    pub lease_ttl_secs: Option<u64>,
    /// Instead of ticking: one recovery pass at this instant over this window (seconds).
    pub recover: Option<(DateTime<Utc>, u64)>,
    /// Instead of ticking `ticks` minutes on its own: tick each instant the runner sends
    /// ([`Worker::send_tick`]) and answer with its error count, until [`Worker::end`].
    pub stepped: bool,
    /// The node kills itself with SIGKILL inside its first callback, after its claims are
    /// logged and before the job has recorded anything: a crash between claim and run.
    pub die_in_callback: bool,
    /// The node's namespace (`None`: the default, `kaal`).
    pub namespace: Option<String>,
    /// The node stalls this long right after winning its locks, before it commits them (a
    /// network stall or VM pause between two statements).
    pub stall_after_claim_ms: Option<u64>,
    /// After winning its locks the node says so on stdout and waits until this file exists
    /// before it commits: the runner stalls its connection (a TCP relay holding its bytes)
    /// in between, so the commit itself is what stalls.
    pub stall_gate: Option<PathBuf>,
    /// Instead of ticking: start the background loop (registering the node), report
    /// whether it started, and run until [`Worker::end`].
    pub start_only: bool,
}

impl WorkerSpec {
    /// A worker ticking `ticks` minutes from `first_tick` with `jobs` jobs and defaults.
    pub fn ticking(
        node_id: impl Into<String>,
        first_tick: DateTime<Utc>,
        ticks: i64,
        jobs: usize,
    ) -> Self {
        Self {
            node_id: node_id.into(),
            first_tick,
            ticks,
            jobs,
            skew_secs: 0,
            lease_ttl_secs: None,
            recover: None,
            stepped: false,
            die_in_callback: false,
            namespace: None,
            stall_after_claim_ms: None,
            stall_gate: None,
            start_only: false,
        }
    }

    /// The node configuration the worker runs with.
    pub fn config(&self) -> Config {
        let mut config = scenario_config(&self.node_id);
        if let Some(ttl) = self.lease_ttl_secs {
            config.tick_interval = std::time::Duration::from_secs(1);
            config.window_lookback = std::time::Duration::from_secs(1);
            config.lease_ttl = std::time::Duration::from_secs(ttl);
            // Nodes are taken for dead quickly too, so a killed node's never-started claims
            // run elsewhere within the test.
            config.node_timeout = std::time::Duration::from_secs(SHORT_NODE_TIMEOUT_SECS);
        }
        if let Some((_, window)) = self.recover {
            config.recovery_window = std::time::Duration::from_secs(window);
        }
        if let Some(namespace) = &self.namespace {
            config.namespace = namespace.clone();
        }
        if self.die_in_callback {
            // One run slot: the node dies inside its first run with the rest of its tick's
            // claims queued behind it (committed, never started).
            config.max_concurrent_runs = 1;
        }
        config
    }
}

/// The keys of the fleet's jobs.
pub fn job_keys(jobs: usize) -> Vec<String> {
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

fn instant(unix: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(unix, 0).single().expect("valid instant")
}

/// A node whose callbacks append `key unix` lines to `out` as they run.
fn appending_node(
    backend_adapter: Arc<dyn kaal_core::Adapter>,
    spec: &WorkerSpec,
    out: &Path,
) -> Kaal {
    let kaal = Kaal::new(spec.config(), backend_adapter).expect("fleet config is valid");
    let die = spec.die_in_callback;
    for key in job_keys(spec.jobs) {
        let out = out.to_path_buf();
        kaal.register(&key, "* * * * *", move |fire: &Fire| {
            if die {
                kill_this_process();
            }
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&out)?;
            file.write_all(format!("{} {}\n", fire.key, fire.fire_time.timestamp()).as_bytes())?;
            Ok(())
        })
        .expect("registration failed");
    }
    kaal
}

/// A store whose node stalls between winning its locks and committing them: what a network
/// stall or a VM pause between two statements does.
struct StallAfterClaim {
    inner: Arc<dyn kaal_core::Adapter>,
    stall: std::time::Duration,
    gate: Option<PathBuf>,
}

impl kaal_core::Adapter for StallAfterClaim {
    fn acquire(&self, key: &str, ttl: std::time::Duration) -> Result<bool, kaal_core::LockError> {
        self.inner.acquire(key, ttl)
    }
    fn release(&self, key: &str) -> Result<bool, kaal_core::LockError> {
        self.inner.release(key)
    }
    fn acquire_many(
        &self,
        keys: &[String],
        ttl: std::time::Duration,
    ) -> Result<Vec<bool>, kaal_core::LockError> {
        let won = self.inner.acquire_many(keys, ttl)?;
        if won.iter().any(|w| *w) {
            std::thread::sleep(self.stall);
            if let Some(gate) = &self.gate {
                println!("{CLAIMED}");
                std::io::stdout().flush().expect("stdout closed");
                let began = std::time::Instant::now();
                while !gate.exists() && began.elapsed() < std::time::Duration::from_secs(60) {
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
            }
        }
        Ok(won)
    }
    fn dispatch_registry(&self) -> Option<&dyn kaal_core::DispatchRegistry> {
        self.inner.dispatch_registry()
    }
    fn definition_registry(&self) -> Option<&dyn kaal_core::DefinitionRegistry> {
        self.inner.definition_registry()
    }
    fn node_registry(&self) -> Option<&dyn kaal_core::NodeRegistry> {
        self.inner.node_registry()
    }
    fn name(&self) -> &str {
        self.inner.name()
    }
}

/// Sends SIGKILL to this process and waits for it to land.
fn kill_this_process() -> ! {
    let pid = std::process::id().to_string();
    let _ = Command::new("kill").args(["-9", &pid]).status();
    loop {
        std::thread::park();
    }
}

/// The body of the worker test: returns at once unless this process was spawned by a fleet.
pub fn worker_main(backend: &dyn Backend) {
    let Ok(locator) = std::env::var("KAAL_FLEET_LOCATOR") else {
        return;
    };
    let spec = WorkerSpec {
        node_id: env("KAAL_FLEET_NODE"),
        first_tick: instant(env_num("KAAL_FLEET_FIRST_TICK")),
        ticks: env_num("KAAL_FLEET_TICKS"),
        jobs: env_num("KAAL_FLEET_JOBS"),
        skew_secs: env_num("KAAL_FLEET_SKEW"),
        lease_ttl_secs: std::env::var("KAAL_FLEET_LEASE_TTL")
            .ok()
            .and_then(|v| v.parse().ok()),
        recover: std::env::var("KAAL_FLEET_RECOVER_AT").ok().map(|at| {
            (
                instant(at.parse().expect("unix")),
                env_num("KAAL_FLEET_RECOVERY_WINDOW"),
            )
        }),
        stepped: std::env::var("KAAL_FLEET_STEPPED").is_ok(),
        die_in_callback: std::env::var("KAAL_FLEET_DIE").is_ok(),
        namespace: std::env::var("KAAL_FLEET_NAMESPACE").ok(),
        stall_after_claim_ms: std::env::var("KAAL_FLEET_STALL_MS")
            .ok()
            .and_then(|v| v.parse().ok()),
        start_only: std::env::var("KAAL_FLEET_START_ONLY").is_ok(),
        stall_gate: std::env::var("KAAL_FLEET_STALL_GATE")
            .ok()
            .map(PathBuf::from),
    };
    let out = PathBuf::from(env("KAAL_FLEET_OUT"));
    let mut adapter = backend.open(&locator);
    if spec.stall_after_claim_ms.is_some() || spec.stall_gate.is_some() {
        adapter = Arc::new(StallAfterClaim {
            inner: adapter,
            stall: std::time::Duration::from_millis(spec.stall_after_claim_ms.unwrap_or(0)),
            gate: spec.stall_gate.clone(),
        });
    }
    let kaal = appending_node(adapter, &spec, &out);
    println!("{READY}");
    std::io::stdout().flush().expect("stdout closed");
    let mut go = String::new();
    std::io::stdin()
        .read_line(&mut go)
        .expect("no start signal on stdin");
    let mut errors = 0;
    if spec.start_only {
        match kaal.coordinator().try_start() {
            Ok(()) => println!("{STARTED} ok"),
            Err(err) => println!("{STARTED} refused: {err}"),
        }
        std::io::stdout().flush().expect("stdout closed");
        let mut end = String::new();
        let _ = std::io::stdin().read_line(&mut end);
        kaal.stop(std::time::Duration::from_secs(30));
    } else if spec.stepped {
        for line in std::io::stdin().lines() {
            let line = line.expect("cannot read the runner's commands");
            let now = if line == "now" {
                Utc::now() + Duration::seconds(spec.skew_secs)
            } else if let Some(unix) = line.strip_prefix("tick ") {
                instant(unix.parse().expect("tick: unix seconds"))
                    + Duration::seconds(spec.skew_secs)
            } else {
                break;
            };
            let report = kaal.tick_at(now);
            errors += report.errors.len();
            println!(
                "{TICKED} {} {}",
                report.errors.len(),
                report.dispatched.len()
            );
            std::io::stdout().flush().expect("stdout closed");
        }
    } else if let Some((at, _)) = spec.recover {
        errors += kaal
            .recover_at(at + Duration::seconds(spec.skew_secs))
            .errors
            .len();
    } else {
        for i in 0..spec.ticks {
            let now = spec.first_tick + Duration::minutes(i) + Duration::seconds(spec.skew_secs);
            errors += kaal.tick_at(now).errors.len();
        }
    }
    println!(
        "fleet worker {}: {errors} backend errors (retried)",
        spec.node_id
    );
}

/// A running worker process.
#[derive(Debug)]
pub struct Worker {
    /// What it was asked to do.
    pub spec: WorkerSpec,
    /// Where it records what it ran.
    pub out: PathBuf,
    child: Child,
    stdout: Option<BufReader<ChildStdout>>,
}

impl Worker {
    /// Spawns a worker on the store at `locator` and waits until it is ready.
    pub fn spawn(locator: &str, spec: WorkerSpec, dir: &Path) -> Self {
        let out = dir.join(format!("{}.txt", spec.node_id));
        let exe = std::env::current_exe().expect("cannot find the test binary");
        let mut command = Command::new(exe);
        command
            .args([WORKER_TEST, "--nocapture", "--test-threads=1"])
            .env("KAAL_FLEET_LOCATOR", locator)
            .env("KAAL_FLEET_NODE", &spec.node_id)
            .env(
                "KAAL_FLEET_FIRST_TICK",
                spec.first_tick.timestamp().to_string(),
            )
            .env("KAAL_FLEET_TICKS", spec.ticks.to_string())
            .env("KAAL_FLEET_JOBS", spec.jobs.to_string())
            .env("KAAL_FLEET_SKEW", spec.skew_secs.to_string())
            .env("KAAL_FLEET_OUT", &out)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        if let Some(ttl) = spec.lease_ttl_secs {
            command.env("KAAL_FLEET_LEASE_TTL", ttl.to_string());
        }
        if spec.stepped {
            command.env("KAAL_FLEET_STEPPED", "1");
        }
        if spec.die_in_callback {
            command.env("KAAL_FLEET_DIE", "1");
        }
        if let Some(namespace) = &spec.namespace {
            command.env("KAAL_FLEET_NAMESPACE", namespace);
        }
        if let Some(ms) = spec.stall_after_claim_ms {
            command.env("KAAL_FLEET_STALL_MS", ms.to_string());
        }
        if spec.start_only {
            command.env("KAAL_FLEET_START_ONLY", "1");
        }
        if let Some(gate) = &spec.stall_gate {
            command.env("KAAL_FLEET_STALL_GATE", gate);
        }
        if let Some((at, window)) = spec.recover {
            command.env("KAAL_FLEET_RECOVER_AT", at.timestamp().to_string());
            command.env("KAAL_FLEET_RECOVERY_WINDOW", window.to_string());
        }
        let mut child = command.spawn().expect("cannot spawn a fleet worker");
        let mut reader = BufReader::new(child.stdout.take().expect("piped stdout"));
        // libtest may print `test kaal_fleet_worker ... ` on the same line.
        read_until(
            &mut reader,
            READY,
            &spec.node_id,
            "exited before it was ready",
        );
        Self {
            spec,
            out,
            child,
            stdout: Some(reader),
        }
    }

    /// Tells the worker to start.
    pub fn go(&mut self) {
        writeln!(self.child.stdin.as_mut().expect("piped stdin"), "go")
            .expect("cannot signal a worker");
    }

    /// Asks a [`stepped`](WorkerSpec::stepped) worker to tick at `at` (plus its skew).
    pub fn send_tick(&mut self, at: DateTime<Utc>) {
        writeln!(
            self.child.stdin.as_mut().expect("piped stdin"),
            "tick {}",
            at.timestamp()
        )
        .expect("cannot send a tick to a worker");
    }

    /// Asks a [`stepped`](WorkerSpec::stepped) worker to tick at its own clock's now (the
    /// real time plus its skew).
    pub fn send_tick_now(&mut self) {
        writeln!(self.child.stdin.as_mut().expect("piped stdin"), "now")
            .expect("cannot send a tick to a worker");
    }

    /// Waits for a [`start_only`](WorkerSpec::start_only) worker's answer: `Ok(())` when its
    /// loop started, `Err(reason)` when it was refused.
    pub fn started(&mut self) -> Result<(), String> {
        let reader = self.stdout.as_mut().expect("worker stdout");
        let answer = read_until(reader, STARTED, &self.spec.node_id, "died while starting");
        match answer.strip_prefix("refused: ") {
            Some(reason) => Err(reason.to_string()),
            None => Ok(()),
        }
    }

    /// Waits until a worker with a [`stall_gate`](WorkerSpec::stall_gate) has won its locks
    /// and waits at the gate.
    pub fn claimed(&mut self) {
        let reader = self.stdout.as_mut().expect("worker stdout");
        read_until(reader, CLAIMED, &self.spec.node_id, "died before claiming");
    }

    /// Waits for a stepped worker's answer to its tick: `(errors, dispatched)`.
    pub fn ticked(&mut self) -> (usize, usize) {
        let reader = self.stdout.as_mut().expect("worker stdout");
        let figures = read_until(reader, TICKED, &self.spec.node_id, "died during a tick");
        let mut figures = figures
            .split_whitespace()
            .map(|n| n.parse().expect("tick figures"));
        (
            figures.next().expect("errors"),
            figures.next().expect("dispatched"),
        )
    }

    /// Tells a stepped worker there are no more ticks.
    pub fn end(&mut self) {
        writeln!(self.child.stdin.as_mut().expect("piped stdin"), "end")
            .expect("cannot signal a worker");
    }

    /// Whether the worker process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills the worker with SIGKILL and reaps it; returns whether it was still running.
    pub fn kill(&mut self) -> bool {
        let running = matches!(self.child.try_wait(), Ok(None));
        let _ = self.child.kill();
        let _ = self.child.wait();
        running
    }

    /// Waits for the worker to end and asserts that SIGKILL ended it.
    pub fn expect_killed(mut self) {
        use std::os::unix::process::ExitStatusExt;
        let status = self.child.wait().expect("cannot wait for a worker");
        assert_eq!(
            status.signal(),
            Some(9),
            "fleet worker {} should have been killed: {status}",
            self.spec.node_id
        );
    }

    /// Waits for the worker to finish and asserts it succeeded; echoes its summary line.
    pub fn finish(mut self) {
        let mut rest = String::new();
        if let Some(mut reader) = self.stdout.take() {
            let _ = std::io::Read::read_to_string(&mut reader, &mut rest);
        }
        let status = self.child.wait().expect("cannot wait for a worker");
        assert!(
            status.success(),
            "fleet worker {} failed: {status}\n{rest}",
            self.spec.node_id
        );
        for line in rest.lines().filter(|l| l.contains("fleet worker")) {
            println!("{}", line.trim_start_matches(|c| c != 'f'));
        }
    }
}

/// Reads a worker's stdout up to the line holding `marker`; returns what follows the marker
/// on that line. Panics, naming the worker and `dying`, when the worker's stdout ends first.
fn read_until(
    reader: &mut BufReader<ChildStdout>,
    marker: &str,
    node_id: &str,
    dying: &str,
) -> String {
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .expect("cannot read a worker's stdout");
        assert!(n > 0, "fleet worker {node_id} {dying}");
        if let Some(at) = line.find(marker) {
            return line[at + marker.len()..].trim().to_string();
        }
    }
}

/// Has every stepped worker tick `at` at the same time; returns each one's
/// `(errors, dispatched)`.
pub fn tick_together(workers: &mut [Worker], at: DateTime<Utc>) -> Vec<(usize, usize)> {
    workers.iter_mut().for_each(|w| w.send_tick(at));
    workers.iter_mut().map(Worker::ticked).collect()
}

/// Starts `specs` together and waits for all of them.
pub fn run_together(locator: &str, specs: Vec<WorkerSpec>, dir: &Path) -> Vec<PathBuf> {
    let mut workers: Vec<Worker> = specs
        .into_iter()
        .map(|spec| Worker::spawn(locator, spec, dir))
        .collect();
    workers.iter_mut().for_each(Worker::go);
    let outs = workers.iter().map(|w| w.out.clone()).collect();
    workers.into_iter().for_each(Worker::finish);
    outs
}

/// A fresh directory for a fleet's record files, removed on drop.
pub fn fleet_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("kaal-fleet-")
        .tempdir()
        .expect("cannot create the fleet directory")
}

/// How many times each `(key, unix)` was run, read from record files.
pub fn read_records(outs: &[PathBuf]) -> BTreeMap<(String, i64), usize> {
    let mut counts = BTreeMap::new();
    for out in outs {
        let Ok(text) = std::fs::read_to_string(out) else {
            continue;
        };
        for line in text.lines() {
            let (key, unix) = line.split_once(' ').expect("malformed worker line");
            *counts
                .entry((key.to_string(), unix.parse().expect("bad unix")))
                .or_default() += 1;
        }
    }
    counts
}

/// The dispatch log of the fleet's jobs: `(key, unix) -> node id`. Panics if a fire time
/// appears twice.
pub fn read_log(store: &TestStore<'_>, jobs: usize) -> BTreeMap<(String, i64), String> {
    read_log_rows(store, jobs)
        .into_iter()
        .map(|(id, (node, _))| (id, node))
        .collect()
}

/// The dispatch log of the fleet's jobs with each row's status: `(key, unix) -> (node id,
/// status)`, both key forms read. Panics if a fire time appears twice.
pub fn read_log_rows(
    store: &TestStore<'_>,
    jobs: usize,
) -> BTreeMap<(String, i64), (String, DispatchStatus)> {
    let adapter = store.open();
    let log = adapter
        .dispatch_registry()
        .expect("backend has no dispatch registry");
    let mut logged = BTreeMap::new();
    for key in job_keys(jobs) {
        let forms = [kaal_core::dispatch_log_key("kaal", &key), key.clone()];
        for record in forms
            .iter()
            .flat_map(|form| log.find_by_key(form).expect("cannot read the dispatch log"))
        {
            let previous = logged.insert(
                (key.clone(), record.fire_time.timestamp()),
                (record.node_id, record.status),
            );
            assert!(
                previous.is_none(),
                "{key} {}: logged twice",
                record.fire_time
            );
        }
    }
    logged
}

/// What a fleet run found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetOutcome {
    /// Fire times expected in all.
    pub expected: usize,
    /// Distinct fire times the callbacks ran.
    pub dispatched: usize,
    /// Extra runs of fire times run more than once.
    pub duplicates: usize,
    /// Expected fire times neither run nor logged as claimed.
    pub missing: usize,
    /// Records in the dispatch log for the fleet's jobs.
    pub logged: usize,
}

fn outcome(
    expected: &[(String, DateTime<Utc>)],
    runs: &BTreeMap<(String, i64), usize>,
    logged: &BTreeMap<(String, i64), String>,
) -> FleetOutcome {
    FleetOutcome {
        expected: expected.len(),
        dispatched: runs.len(),
        duplicates: runs.values().map(|n| n - 1).sum(),
        missing: expected
            .iter()
            .filter(|(k, t)| {
                let id = (k.clone(), t.timestamp());
                !runs.contains_key(&id) && !logged.contains_key(&id)
            })
            .count(),
        logged: logged.len(),
    }
}

fn first_tick() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 4, 1, 0, 0, 1)
        .single()
        .expect("valid instant")
}

/// `processes` processes × `fire_times` fire times × `jobs` jobs, all ticking the same
/// instants: every fire time run exactly once, from the callbacks' records and the log.
pub fn exactly_once_across_processes(
    backend: &dyn Backend,
    processes: usize,
    jobs: usize,
    fire_times: usize,
) -> FleetOutcome {
    let store = TestStore::new(backend);
    let dir = fleet_dir();
    let lookback = Duration::from_std(scenario_config("x").window_lookback).expect("lookback fits");
    // The first tick also dispatches its lookback window; tick so that each job has
    // exactly `fire_times` fire times in all.
    let in_first_window =
        due_between(&[("x", "* * * * *")], first_tick() - lookback, first_tick()).len();
    let ticks = (fire_times + 1 - in_first_window) as i64;
    let specs = (0..processes)
        .map(|i| WorkerSpec::ticking(format!("fleet-node-{i}"), first_tick(), ticks, jobs))
        .collect();
    let outs = run_together(&store.locator, specs, dir.path());
    let keys = job_keys(jobs);
    let specs: Vec<(&str, &str)> = keys.iter().map(|k| (k.as_str(), "* * * * *")).collect();
    let expected = due_between(
        &specs,
        first_tick() - lookback,
        first_tick() + Duration::minutes(ticks - 1),
    );
    let result = outcome(&expected, &read_records(&outs), &read_log(&store, jobs));
    println!(
        "fleet contention: processes={processes} jobs={jobs} fire_times/job={fire_times} expected={} dispatched={} duplicates={} missing={} logged={}",
        result.expected, result.dispatched, result.duplicates, result.missing, result.logged
    );
    result
}

/// 4 processes × 200 fire times × 3 jobs: every fire time dispatched exactly once.
pub fn processes_dispatch_each_fire_time_once(backend: &dyn Backend) {
    let outcome = exactly_once_across_processes(backend, 4, 3, 200);
    assert_eq!(outcome.expected, 600);
    assert_eq!((outcome.duplicates, outcome.missing), (0, 0), "{outcome:?}");
    assert_eq!(
        (outcome.dispatched, outcome.logged),
        (600, 600),
        "{outcome:?}"
    );
}

/// 8 processes × 500 fire times × 3 jobs: every fire time dispatched exactly once.
pub fn eight_processes_dispatch_500_fire_times_once(backend: &dyn Backend) {
    let outcome = exactly_once_across_processes(backend, 8, 3, 500);
    assert_eq!(outcome.expected, 1500);
    assert_eq!((outcome.duplicates, outcome.missing), (0, 0), "{outcome:?}");
    assert_eq!(
        (outcome.dispatched, outcome.logged),
        (1500, 1500),
        "{outcome:?}"
    );
}
