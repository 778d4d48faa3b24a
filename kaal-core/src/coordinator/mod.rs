//! The coordinator: turns due fire times into claims, and won claims into callback calls.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rand::Rng;

use crate::adapter::Adapter;
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, ConfigErrors};
use crate::dispatch::DispatchLogging;
use crate::error::RegistryError;
use crate::nodes::{NodeInfo, NodeRecord};
use crate::registry::{CallbackRegistry, Fire};
use crate::schedule::{Candidate, Schedule};

mod claim;
mod executor;
mod policies;
pub(crate) mod preview;
mod run;

pub use run::TimedOut;

/// Fire times claimed per round trip; recovery logs its progress after each chunk.
const CLAIM_CHUNK: usize = 5_000;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// What one tick (or one recovery pass) did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Fire times this node claimed and handed to their callbacks, oldest first. Includes
    /// those whose callback then failed.
    pub dispatched: Vec<Fire>,
    /// Fire times whose run failed or timed out (after its last attempt), with the reason.
    /// Filled by [`Coordinator::tick_at`] and [`Coordinator::recover_at`], which wait for the
    /// runs they start; the background loop does not wait, and its runs' outcomes are in the
    /// dispatch log.
    pub failed: Vec<(Fire, String)>,
    /// Fire times left unclaimed because every run slot of this node was busy
    /// (`max_concurrent_runs`); nodes with free slots claim them, or this one when a slot
    /// frees: `(key, fire_time)`.
    pub deferred: Vec<(String, DateTime<Utc>)>,
    /// Fire times another node had already claimed: `(key, fire_time)`.
    pub lost: Vec<(String, DateTime<Utc>)>,
    /// Fire times skipped because the dispatch log shows them dispatched.
    pub already_dispatched: Vec<(String, DateTime<Utc>)>,
    /// Fire times the store refused as not yet due by its own clock (later than the
    /// database's now plus [`CLAIM_TOLERANCE`](crate::CLAIM_TOLERANCE)); retried when due.
    pub not_yet_due: Vec<(String, DateTime<Utc>)>,
    /// Claimed, never-started fire times of nodes that are gone, which this node took over
    /// (and ran, listed in `dispatched`): `(key, fire_time, previous owner)`.
    pub taken_over: Vec<(String, DateTime<Utc>, String)>,
    /// Runs that were going on nodes that are gone, which this node recorded `abandoned`:
    /// `(key, fire_time, node)`.
    pub abandoned: Vec<(String, DateTime<Utc>, String)>,
    /// Runs lost with their node that this node took over to run again
    /// (`on_node_loss: rerun`): `(key, fire_time, lost node)`.
    pub rerun: Vec<(String, DateTime<Utc>, String)>,
    /// Fire times claimed and waiting for the job's running run to end
    /// (`overlap: queue_one`): `(key, fire_time)`.
    pub queued: Vec<(String, DateTime<Utc>)>,
    /// Fire times a policy skipped (claimed, recorded `skipped`, not run):
    /// `(key, fire_time, reason)`.
    pub skipped: Vec<(String, DateTime<Utc>, String)>,
    /// Backend errors; the fire times concerned are retried on the next tick.
    pub errors: Vec<String>,
}

impl TickReport {
    fn absorb(&mut self, other: TickReport) {
        self.dispatched.extend(other.dispatched);
        self.failed.extend(other.failed);
        self.deferred.extend(other.deferred);
        self.lost.extend(other.lost);
        self.already_dispatched.extend(other.already_dispatched);
        self.not_yet_due.extend(other.not_yet_due);
        self.taken_over.extend(other.taken_over);
        self.abandoned.extend(other.abandoned);
        self.rerun.extend(other.rerun);
        self.skipped.extend(other.skipped);
        self.queued.extend(other.queued);
        self.errors.extend(other.errors);
    }
}

struct Inner {
    /// This node itself, for the runs it hands to the executor.
    me: Weak<Inner>,
    config: Config,
    tz: Tz,
    adapter: Arc<dyn Adapter>,
    registry: Arc<CallbackRegistry>,
    clock: Arc<dyn Clock>,
    logging: DispatchLogging,
    schedule: Mutex<Schedule>,
    /// Who this node is, as registered in the store's node registry.
    node: NodeInfo,
    /// What this node knows of the database's clock (see `claim::DbClock`).
    db_clock: Mutex<claim::DbClock>,
    /// When the last sweep for never-started claims ran, and whether one is owed now.
    sweep: Mutex<claim::SweepState>,
    /// Held for the whole of a pass: a node runs one pass at a time (the loop's and any
    /// `tick_at` / `recover_at` of another thread wait for each other), so what a pass reads
    /// of this node's own rows is not changed under it by another pass of the same node —
    /// the argument of `claim::run_fire`'s re-read rests on it.
    pass: Mutex<()>,
    passes: Mutex<u64>,
    passed: Condvar,
    /// The pool the runs go to (see the `executor` module).
    executor: executor::Executor,
    /// Set while the node stops: a run waiting to retry gives up instead.
    halt: StopSignal,
    /// The last background pass left due fire times unclaimed for lack of slots: a slot
    /// given back wakes the loop at once.
    backlog: AtomicBool,
    /// The running loop's signal, to wake it early.
    loop_signal: Mutex<Option<Arc<StopSignal>>>,
    /// How the pass in progress hands off its runs (passes are serialised by `pass`).
    pass_mode: Mutex<PassMode>,
    /// Writes the runs' outcomes in group commits.
    recorder: run::Recorder,
}

/// How the pass in progress treats its runs.
#[derive(Default)]
struct PassMode {
    /// An explicit pass (`tick_at`, `recover_at`): it claims everything due, waits for a
    /// free slot for each run, and waits for its runs to end. A background pass claims only
    /// what its free slots can start now and does not wait.
    wait: bool,
    /// Where the runs of a waiting pass report.
    outcomes: Option<mpsc::Sender<run::Outcome>>,
}

thread_local! {
    /// The nodes (their `Inner`'s address) whose pass this thread is running, so a callback
    /// that ticks its own node is refused instead of waiting for the pass it runs in; other
    /// nodes may be ticked from a callback.
    static IN_PASS: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Marks this thread as inside a pass or a run of one node, for as long as it lives.
struct Inside(usize);

impl Inside {
    fn enter(inner: &Inner) -> Self {
        let me = inner as *const Inner as usize;
        IN_PASS.with(|nodes| nodes.borrow_mut().push(me));
        Inside(me)
    }

    fn is_inside(inner: &Inner) -> bool {
        let me = inner as *const Inner as usize;
        IN_PASS.with(|nodes| nodes.borrow().contains(&me))
    }
}

impl Drop for Inside {
    fn drop(&mut self) {
        IN_PASS.with(|nodes| {
            let mut nodes = nodes.borrow_mut();
            if let Some(at) = nodes.iter().rposition(|n| *n == self.0) {
                nodes.remove(at);
            }
        });
    }
}

#[derive(Default)]
struct Signal {
    stopped: bool,
    kicked: bool,
}

/// A stop flag a thread can wait on, and be woken early by a kick.
#[derive(Default)]
struct StopSignal {
    state: Mutex<Signal>,
    wake: Condvar,
}

impl StopSignal {
    /// Waits up to `timeout`, or until kicked; returns `true` when asked to stop.
    fn wait(&self, timeout: Duration) -> bool {
        let state = lock(&self.state);
        let (mut state, _) = self
            .wake
            .wait_timeout_while(state, timeout, |s| !s.stopped && !s.kicked)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state.kicked = false;
        state.stopped
    }

    fn stop(&self) {
        lock(&self.state).stopped = true;
        self.wake.notify_all();
    }

    fn kick(&self) {
        lock(&self.state).kicked = true;
        self.wake.notify_all();
    }

    fn reset(&self) {
        *lock(&self.state) = Signal::default();
    }
}

struct Worker {
    stop: Arc<StopSignal>,
    /// Stops the heartbeat: only once the runs have ended, so no node takes them for
    /// abandoned while they finish.
    beat: Arc<StopSignal>,
    done: Receiver<()>,
    handle: JoinHandle<()>,
    heartbeat: Option<JoinHandle<()>>,
}

/// Why [`Coordinator::try_start`] did not start the loop.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The loop is running already.
    #[error("the kaal loop is already running")]
    AlreadyRunning,
    /// Another live process registered the same `node_id` in this namespace.
    #[error(
        "node_id {node_id:?} is already in use in namespace {namespace:?} by a live node \
         (host {host}, pid {pid}, last seen {last_seen}); give every node its own node_id \
         (or leave it unset: the default is host name and pid), or wait node_timeout after \
         the other one stopped"
    )]
    DuplicateNode {
        /// The namespace.
        namespace: String,
        /// The contested id.
        node_id: String,
        /// Host of the live holder.
        host: String,
        /// Process id of the live holder.
        pid: u32,
        /// Its last heartbeat, by the database's clock.
        last_seen: DateTime<Utc>,
    },
    /// The node registry could not be reached.
    #[error("could not register this node: {0}")]
    CallbackRegistry(#[from] RegistryError),
    /// The loop thread could not be spawned.
    #[error("could not start the kaal loop thread: {0}")]
    Thread(String),
}

impl From<NodeRecord> for StartError {
    fn from(holder: NodeRecord) -> Self {
        StartError::DuplicateNode {
            namespace: holder.namespace,
            node_id: holder.node_id,
            host: holder.host,
            pid: holder.pid,
            last_seen: holder.last_seen,
        }
    }
}

/// Runs the schedule of one node.
///
/// Each tick at `now`: for every enabled job that has a callback in this process, take its
/// fire times `<= now` not yet settled by this node (at most `window_lookback` old, or
/// `recovery_window` old when catching up after errors with the dispatch log on), drop
/// those the dispatch log shows as dispatched, claim the rest through the adapter in one
/// batch, commit the won claims in the log, and start each on the executor with its
/// [`Fire`]. A callback error or panic is logged and recorded as `failed`; it never stops
/// the loop.
///
/// **Runs never block the tick.** Jobs run on a pool of `max_concurrent_runs` threads; the
/// background loop claims only as many fire times as it has free slots, so what a busy
/// node cannot start now is left to nodes that can (and to itself, the moment a slot
/// frees), and a long job never delays another job's fire time. Each run moves its row
/// `claimed → dispatched → succeeded | failed | timed_out`, with its attempts, start and
/// finish times, and error; see [`JobPolicy`](crate::JobPolicy) for timeouts and retries.
///
/// [`tick_at`](Coordinator::tick_at) and [`recover_at`](Coordinator::recover_at) are
/// explicit passes (tests, the CLI's `tick`): they claim everything due and run it on the
/// calling thread, one run after another (each holding a slot, so a running loop of the same
/// node sees them), and return when their runs have ended. A node runs one pass at a time:
/// `tick_at` from another thread waits for the running pass, and a callback that calls
/// `tick_at` on its own coordinator gets a report with an error and nothing done (it would
/// otherwise wait for itself).
pub struct Coordinator {
    inner: Arc<Inner>,
    worker: Mutex<Option<Worker>>,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("node_id", &self.inner.config.node_id)
            .field("adapter", &self.inner.adapter.name())
            .field("running", &self.running())
            .finish_non_exhaustive()
    }
}

impl Coordinator {
    /// A coordinator for `registry`'s callbacks over `adapter`. Fails when
    /// `config.validate()` does.
    pub fn new(
        config: Config,
        adapter: Arc<dyn Adapter>,
        registry: Arc<CallbackRegistry>,
    ) -> Result<Self, ConfigErrors> {
        Self::with_clock(config, adapter, registry, Arc::new(SystemClock))
    }

    /// Like [`new`](Coordinator::new), with the loop reading time from `clock` (inject skew
    /// or a manual clock).
    pub fn with_clock(
        config: Config,
        adapter: Arc<dyn Adapter>,
        registry: Arc<CallbackRegistry>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ConfigErrors> {
        config.validate()?;
        let tz = config.tz().map_err(|problem| ConfigErrors {
            problems: vec![problem],
        })?;
        let logging = DispatchLogging {
            enabled: config.enable_log_dispatch_registry,
            node_id: config.node_id.clone(),
        };
        let node = NodeInfo {
            namespace: config.namespace.clone(),
            node_id: config.node_id.clone(),
            instance: format!("{:016x}", rand::thread_rng().gen::<u64>()),
            host: crate::config::host_name(),
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        };
        let since_tolerance = chrono_duration(config.max_clock_offset);
        let executor = executor::Executor::new(config.max_concurrent_runs, config.node_id.clone());
        Ok(Self {
            inner: Arc::new_cyclic(|me| Inner {
                me: me.clone(),
                config,
                tz,
                adapter,
                registry,
                clock,
                logging,
                schedule: Mutex::new(Schedule::with_tolerance(since_tolerance)),
                node,
                db_clock: Mutex::new(claim::DbClock::default()),
                sweep: Mutex::new(claim::SweepState::default()),
                pass: Mutex::new(()),
                passes: Mutex::new(0),
                passed: Condvar::new(),
                executor,
                halt: StopSignal::default(),
                backlog: AtomicBool::new(false),
                loop_signal: Mutex::new(None),
                pass_mode: Mutex::new(PassMode::default()),
                recorder: run::Recorder::default(),
            }),
            worker: Mutex::new(None),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Runs one tick at `now`, and waits for the runs it started to end (their failures are
    /// in the report).
    pub fn tick_at(&self, now: DateTime<Utc>) -> TickReport {
        self.inner.run(now, None, true)
    }

    /// Runs missed-run recovery at `now`: every fire time in `[now - recovery_window, now]`
    /// not yet dispatched is claimed and dispatched once. Does nothing when
    /// `enable_dispatch_recovery` is off.
    ///
    /// A job is recovered only from when its current schedule came into force — its stored
    /// definition's [`schedule_since`](crate::Definition::schedule_since): creation, last
    /// cron change or last re-enable — so a job added today does not run for every fire time
    /// of the last day on its first start, a job disabled for an hour does not replay the
    /// hour, and a changed cron is not walked over the past. The dispatch log only says what
    /// already ran, never where to start.
    pub fn recover_at(&self, now: DateTime<Utc>) -> TickReport {
        if !self.inner.config.enable_dispatch_recovery {
            return TickReport::default();
        }
        let from = now - chrono_duration(self.inner.config.recovery_window);
        self.inner.run(now, Some(from), true)
    }

    /// How many runs this node has queued or running now (at most `max_concurrent_runs`).
    pub fn active_runs(&self) -> usize {
        self.inner.executor.busy()
    }

    /// The next fire time of each enabled job as of the last tick (empty before the first).
    pub fn upcoming(&self) -> Vec<(String, Option<DateTime<Utc>>)> {
        lock(&self.inner.schedule).upcoming()
    }

    /// How many passes (the recovery pass and each tick) the background loop has finished
    /// since this coordinator was built.
    pub fn passes(&self) -> u64 {
        *lock(&self.inner.passes)
    }

    /// Waits until the background loop has finished at least `passes` passes, or `timeout`
    /// has passed; returns whether it got there. For tests and for tools that must know the
    /// recovery pass is done.
    pub fn wait_for_passes(&self, passes: u64, timeout: Duration) -> bool {
        let done = lock(&self.inner.passes);
        let (done, _) = self
            .inner
            .passed
            .wait_timeout_while(done, timeout, |done| *done < passes)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *done >= passes
    }

    /// Waits until the background loop has caught up — its last pass left no due fire time
    /// unclaimed for lack of run slots — and no run of this node is active, or `timeout` has
    /// passed; returns whether it got there. After an outage, recovery takes several passes
    /// when more fire times are owed than there are slots (each freed slot wakes the loop);
    /// this is how a tool or a test knows they have all run.
    pub fn wait_until_settled(&self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let settled = *lock(&self.inner.passes) > 0
                && !self.inner.backlog.load(Ordering::Acquire)
                && self.inner.executor.busy() == 0;
            if settled {
                return true;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            // Woken by every finished pass; a run ending without a pass after it is seen
            // within the poll interval.
            let done = lock(&self.inner.passes);
            let _ = self
                .inner
                .passed
                .wait_timeout(done, left.min(Duration::from_millis(20)));
        }
    }

    /// Starts the background loop: recovery first (after a random delay up to
    /// `recovery_startup_jitter`), then a tick every `tick_interval`. Returns `false` when it
    /// is already running or could not start (the reason is logged); see
    /// [`try_start`](Coordinator::try_start) for the reason as a value.
    pub fn start(&self) -> bool {
        match self.try_start() {
            Ok(()) => true,
            Err(StartError::AlreadyRunning) => false,
            Err(err) => {
                log::error!("{err}");
                false
            }
        }
    }

    /// [`start`](Coordinator::start), saying why it did not.
    ///
    /// When the store keeps a node registry, the node registers first: a `node_id` held by
    /// another live process (seen within `node_timeout` by the database's clock) is refused
    /// with [`StartError::DuplicateNode`]. A registered node heartbeats every third of
    /// `node_timeout` from its own thread, so a long job does not make it look dead, and
    /// deregisters when it stops.
    pub fn try_start(&self) -> Result<(), StartError> {
        let mut worker = lock(&self.worker);
        if worker.as_ref().is_some_and(|w| !w.handle.is_finished()) {
            return Err(StartError::AlreadyRunning);
        }
        let registered = self.inner.register()?;
        let stop = Arc::new(StopSignal::default());
        self.inner.halt.reset();
        *lock(&self.inner.loop_signal) = Some(stop.clone());
        {
            let me = self.inner.me.clone();
            self.inner.executor.on_free(Some(Arc::new(move || {
                if let Some(inner) = me.upgrade() {
                    if inner.backlog.load(Ordering::Acquire) {
                        inner.kick_loop();
                    }
                }
            })));
        }
        let (done_tx, done) = mpsc::channel();
        let inner = self.inner.clone();
        let signal = stop.clone();
        let handle = thread::Builder::new()
            .name(format!("kaal-{}", inner.config.node_id))
            .spawn(move || {
                inner.run_loop(&signal);
                let _ = done_tx.send(());
            })
            .map_err(|err| StartError::Thread(err.to_string()))?;
        let beat = Arc::new(StopSignal::default());
        let heartbeat = if registered {
            let inner = self.inner.clone();
            let signal = beat.clone();
            thread::Builder::new()
                .name(format!("kaal-heartbeat-{}", inner.config.node_id))
                .spawn(move || inner.heartbeat_loop(&signal))
                .map_err(|err| log::error!("could not start the heartbeat thread: {err}"))
                .ok()
        } else {
            None
        };
        *worker = Some(Worker {
            stop,
            beat,
            done,
            handle,
            heartbeat,
        });
        Ok(())
    }

    /// Registers this node in the store's node registry without starting the loop (the CLI's
    /// one-shot `tick` does this), refusing a `node_id` another live process holds. Returns
    /// whether the store keeps a registry. Pair it with
    /// [`deregister`](Coordinator::deregister).
    pub fn register(&self) -> Result<bool, StartError> {
        self.inner.register()
    }

    /// Deletes this node's registration (best effort; a failure is logged).
    pub fn deregister(&self) {
        self.inner.deregister();
    }

    /// Stops the node and waits up to `timeout` (the CLI passes `shutdown_grace`) for it:
    /// it stops claiming at once (the current pass ends; nothing more is claimed), a run
    /// waiting to retry records its failure instead, and running jobs are waited for. Then
    /// the heartbeat stops and the node deregisters. Returns `true` when the loop and every
    /// run have ended (or the loop was not running).
    ///
    /// On `false`, runs are still going — and the node still heartbeats, so no other node
    /// takes them for abandoned; call `stop` again to wait more (the CLI kills its
    /// commands' process groups first, then waits for their outcomes to be recorded).
    /// Fire times never started are not held: the background loop claims only what it can
    /// start at once, so a stopping node has no queue to give back.
    pub fn stop(&self, timeout: Duration) -> bool {
        let began = std::time::Instant::now();
        let mut slot = lock(&self.worker);
        let Some(mut worker) = slot.take() else {
            return true;
        };
        worker.stop.stop();
        self.inner.halt.stop();
        self.inner.executor.on_free(None);
        match worker.done.recv_timeout(timeout) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => {
                *slot = Some(worker);
                return false;
            }
        }
        // Idempotent from here: a second `stop` after a `false` comes back here at once.
        let (done_tx, done) = mpsc::channel();
        let _ = done_tx.send(());
        worker.done = done;
        if !self
            .inner
            .executor
            .wait_idle(timeout.saturating_sub(began.elapsed()))
        {
            *slot = Some(worker);
            return false;
        }
        if worker.handle.join().is_err() {
            log::error!("the kaal loop thread panicked");
        }
        worker.beat.stop();
        if let Some(heartbeat) = worker.heartbeat {
            if heartbeat.join().is_err() {
                log::error!("the kaal heartbeat thread panicked");
            }
            self.inner.deregister();
        }
        true
    }

    /// Whether the background loop is running.
    pub fn running(&self) -> bool {
        lock(&self.worker)
            .as_ref()
            .is_some_and(|w| !w.handle.is_finished())
    }

    /// Stops the loop (waiting up to two tick intervals plus the lease ttl) and starts it
    /// again, recovery included. Returns whether it is running afterwards.
    pub fn restart(&self) -> bool {
        let timeout = self.inner.config.tick_interval * 2 + self.inner.config.lease_ttl;
        self.stop(timeout) && self.start()
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        if let Some(worker) = lock(&self.worker).as_ref() {
            worker.stop.stop();
            worker.beat.stop();
            self.inner.halt.stop();
            return;
        }
        // A node that registered on its own first pass gives its id back, so the next
        // process (or coordinator) with the same id need not wait for it to expire.
        if lock(&self.inner.db_clock).lazily {
            self.inner.deregister();
        }
    }
}

impl Inner {
    fn run_loop(&self, stop: &StopSignal) {
        if self.config.enable_dispatch_recovery {
            let max = self.config.recovery_startup_jitter;
            let jitter = if max.is_zero() {
                Duration::ZERO
            } else {
                rand::thread_rng().gen_range(Duration::ZERO..=max)
            };
            if stop.wait(jitter) {
                return;
            }
            let now = self.clock.now();
            let from = now - chrono_duration(self.config.recovery_window);
            let report = match self.clock_refusal(now) {
                None => self.run(now, Some(from), false),
                Some(refusal) => {
                    log::error!("{refusal}; recovery skipped");
                    TickReport::default()
                }
            };
            log::info!(
                "recovery: {} dispatched, {} already dispatched, {} claimed elsewhere, {} errors",
                report.dispatched.len(),
                report.already_dispatched.len(),
                report.lost.len(),
                report.errors.len()
            );
            self.count_pass();
        }
        loop {
            let now = self.clock.now();
            match self.clock_refusal(now) {
                None => {
                    self.run(now, None, false);
                }
                Some(refusal) => log::error!("{refusal}"),
            }
            self.count_pass();
            if stop.wait(self.config.tick_interval) {
                return;
            }
        }
    }

    /// Wakes the background loop for a pass now (a slot freed while fire times waited).
    fn kick_loop(&self) {
        if let Some(signal) = lock(&self.loop_signal).as_ref() {
            signal.kick();
        }
    }

    fn count_pass(&self) {
        *lock(&self.passes) += 1;
        self.passed.notify_all();
    }

    /// One pass at `now`, after any pass of this node running on another thread; `wait`
    /// for an explicit pass (see [`PassMode`]). A callback that ticks its own node gets a
    /// report with that error and nothing done.
    fn run(
        &self,
        now: DateTime<Utc>,
        recover_from: Option<DateTime<Utc>>,
        wait: bool,
    ) -> TickReport {
        if Inside::is_inside(self) {
            let message = "a callback ticked its own node from inside a pass; ignored (a node runs one pass at a time)";
            log::error!("{message}");
            return TickReport {
                errors: vec![message.to_string()],
                ..TickReport::default()
            };
        }
        let _pass = lock(&self.pass);
        let _inside = Inside::enter(self);
        if let Some(refusal) = self.registration_refusal() {
            log::error!("{refusal}");
            return TickReport {
                errors: vec![refusal],
                ..TickReport::default()
            };
        }
        let (outcomes_tx, outcomes) = mpsc::channel();
        *lock(&self.pass_mode) = PassMode {
            wait,
            outcomes: wait.then_some(outcomes_tx),
        };
        let mut report = self.run_pass(now, recover_from);
        *lock(&self.pass_mode) = PassMode::default();
        // A waiting pass's runs hold the only senders left: this ends when the last run has.
        let mut failed: Vec<(Fire, String)> = outcomes
            .iter()
            .filter_map(|o: run::Outcome| Some((o.fire, o.failure?.text().to_string())))
            .collect();
        failed.sort_by(|a, b| (a.0.fire_time, &a.0.key).cmp(&(b.0.fire_time, &b.0.key)));
        report.failed.extend(failed);
        report
    }

    /// The pass itself; see [`run`](Self::run).
    fn run_pass(&self, now: DateTime<Utc>, recover_from: Option<DateTime<Utc>>) -> TickReport {
        let due = {
            let mut schedule = lock(&self.schedule);
            self.refresh(&mut schedule, now);
            if let Some(from) = recover_from {
                let log = self.log();
                let ns = &self.config.namespace;
                let lookback = chrono_duration(self.config.window_lookback);
                schedule.rewind_for_recovery(from, now, lookback, |key| {
                    let log = log?;
                    [crate::dispatch::dispatch_log_key(ns, key), key.to_string()]
                        .iter()
                        .filter_map(|k| log.find_by_key(k).ok()?.last().map(|r| r.fire_time))
                        .min()
                });
            }
            let catch_up = if self.config.enable_dispatch_recovery
                && self.config.enable_log_dispatch_registry
            {
                self.config.recovery_window
            } else {
                self.config.window_lookback
            };
            let oldest = recover_from.unwrap_or(now - chrono_duration(catch_up));
            (schedule.take_due(now, oldest), oldest)
        };
        let (due, oldest) = due;
        // Jitter: a fire time is due from its instant plus its jitter (the same on every
        // node); until then it waits, unclaimed, and is taken again by a later pass.
        let (waiting, mut due): (Vec<Candidate>, Vec<Candidate>) = due
            .into_iter()
            .partition(|c| policies::start_instant(c) > now);
        if !waiting.is_empty() {
            lock(&self.schedule).unsettle(&waiting);
        }
        self.triage(&mut due, now);
        // Skips need no run slot: they are claimed and recorded first, all of them.
        let (skips, due): (Vec<Candidate>, Vec<Candidate>) =
            due.into_iter().partition(|c| c.skip.is_some());
        let mut report = TickReport::default();
        for chunk in skips.chunks(CLAIM_CHUNK) {
            report.absorb(self.claim_and_dispatch(chunk));
        }
        let total = due.len();
        let mut done = 0;
        let wait = lock(&self.pass_mode).wait;
        let mut rest: &[Candidate] = &due;
        while !rest.is_empty() {
            let room = if wait {
                CLAIM_CHUNK
            } else {
                self.executor.free().min(CLAIM_CHUNK)
            };
            if room == 0 {
                // Left for nodes with free slots — or for this one, the moment a slot frees.
                lock(&self.schedule).unsettle(rest);
                report
                    .deferred
                    .extend(rest.iter().map(|c| (c.key.clone(), c.fire_time)));
                break;
            }
            let (chunk, tail) = rest.split_at(room.min(rest.len()));
            rest = tail;
            report.absorb(self.claim_and_dispatch(chunk));
            done += chunk.len();
            if total > CLAIM_CHUNK {
                log::info!(
                    "{}: {done}/{total} fire times processed",
                    if recover_from.is_some() {
                        "recovery"
                    } else {
                        "catch-up"
                    }
                );
            }
        }
        report.absorb(self.sweep_unstarted(now, oldest));
        // A fire time still waiting after the sweep tried it again is reported once.
        report.queued.sort();
        report.queued.dedup();
        if !wait {
            // Set before the check below, so a slot given back after it kicks the loop (the
            // executor's hook reads the flag); one given back before it is seen here.
            let deferred = !report.deferred.is_empty();
            self.backlog.store(deferred, Ordering::Release);
            if deferred && self.executor.free() > 0 {
                self.kick_loop();
            }
        }
        report
    }

    /// Reloads the job list when the registry changed, when something is due (so enable /
    /// disable and cron changes by other nodes are seen before claiming), and at least every
    /// `window_lookback / 2` otherwise.
    fn refresh(&self, schedule: &mut Schedule, now: DateTime<Utc>) {
        let generation = self.registry.generation();
        let stale = schedule.loaded_at.is_none_or(|at| {
            now < at || now - at >= chrono_duration(self.config.window_lookback / 2)
        });
        if schedule.registry_generation == Some(generation) && !stale && !schedule.any_due(now) {
            return;
        }
        let definitions = match self.adapter.definition_registry() {
            None => None,
            Some(store) => match store.all_definitions(&self.config.namespace) {
                Ok(defs) => Some(defs),
                Err(err) => {
                    log::error!("could not read definitions, keeping the previous job list: {err}");
                    if schedule.registry_generation == Some(generation) {
                        return;
                    }
                    None
                }
            },
        };
        let start_from = now - chrono_duration(self.config.window_lookback);
        schedule.rebuild(
            self.registry.entries(),
            definitions.as_deref(),
            start_from,
            now,
            self.tz,
        );
        schedule.registry_generation = Some(generation);
        schedule.loaded_at = Some(now);
    }
}
