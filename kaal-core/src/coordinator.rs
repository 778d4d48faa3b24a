//! The coordinator: turns due fire times into claims, and won claims into callback calls.

use std::collections::HashSet;
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rand::Rng;

use crate::adapter::Adapter;
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, ConfigErrors};
use crate::dispatch::{DispatchLogging, DispatchRegistry, DispatchStatus};
use crate::keys::{idempotency_key, lock_key};
use crate::registry::{Fire, Registry};
use crate::schedule::{Candidate, Schedule};

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
    /// Fire times whose callback returned an error or panicked, with the reason.
    pub failed: Vec<(Fire, String)>,
    /// Fire times another node had already claimed: `(key, fire_time)`.
    pub lost: Vec<(String, DateTime<Utc>)>,
    /// Fire times skipped because the dispatch log shows them dispatched.
    pub already_dispatched: Vec<(String, DateTime<Utc>)>,
    /// Backend errors; the fire times concerned are retried on the next tick.
    pub errors: Vec<String>,
}

impl TickReport {
    fn absorb(&mut self, other: TickReport) {
        self.dispatched.extend(other.dispatched);
        self.failed.extend(other.failed);
        self.lost.extend(other.lost);
        self.already_dispatched.extend(other.already_dispatched);
        self.errors.extend(other.errors);
    }
}

/// What a batch claim came to for one fire time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    /// This node won it and the log does not show it: run it.
    Won,
    /// Another holder has it.
    Held,
    /// Won, but the log shows it dispatched already.
    Logged,
    /// Won, but the log could not be read to confirm it.
    Unconfirmed,
}

/// A fire time of a job: `(cron key, fire time)`.
type FireId = (String, DateTime<Utc>);

struct Inner {
    config: Config,
    tz: Tz,
    adapter: Arc<dyn Adapter>,
    registry: Arc<Registry>,
    clock: Arc<dyn Clock>,
    logging: DispatchLogging,
    schedule: Mutex<Schedule>,
    /// Fire times this node may have claimed without logging them (see `mark_uncertain`).
    uncertain: Mutex<HashSet<FireId>>,
    passes: Mutex<u64>,
    passed: Condvar,
}

#[derive(Default)]
struct StopSignal {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl StopSignal {
    /// Waits up to `timeout`; returns `true` when asked to stop.
    fn wait(&self, timeout: Duration) -> bool {
        let stopped = lock(&self.stopped);
        let (stopped, _) = self
            .wake
            .wait_timeout_while(stopped, timeout, |stopped| !*stopped)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *stopped
    }

    fn stop(&self) {
        *lock(&self.stopped) = true;
        self.wake.notify_all();
    }
}

struct Worker {
    stop: Arc<StopSignal>,
    done: Receiver<()>,
    handle: JoinHandle<()>,
}

/// Runs the schedule of one node.
///
/// Each tick at `now`: for every enabled job that has a callback in this process, take its
/// fire times `<= now` not yet settled by this node (at most `window_lookback` old, or
/// `recovery_window` old when catching up after errors with the dispatch log on), drop
/// those the dispatch log shows as dispatched, claim the rest through the adapter in one
/// batch, log the won claims, and call each callback with its [`Fire`]. A callback error or
/// panic is logged and recorded as `failed`; it never stops the loop.
///
/// Callbacks run one after another on the ticking thread; hand long work to your own job
/// system. A callback must not call `tick_at` on its own coordinator.
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
        registry: Arc<Registry>,
    ) -> Result<Self, ConfigErrors> {
        Self::with_clock(config, adapter, registry, Arc::new(SystemClock))
    }

    /// Like [`new`](Coordinator::new), with the loop reading time from `clock` (inject skew
    /// or a manual clock).
    pub fn with_clock(
        config: Config,
        adapter: Arc<dyn Adapter>,
        registry: Arc<Registry>,
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
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                tz,
                adapter,
                registry,
                clock,
                logging,
                schedule: Mutex::new(Schedule::default()),
                uncertain: Mutex::new(HashSet::new()),
                passes: Mutex::new(0),
                passed: Condvar::new(),
            }),
            worker: Mutex::new(None),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Runs one tick at `now`.
    pub fn tick_at(&self, now: DateTime<Utc>) -> TickReport {
        self.inner.run(now, None)
    }

    /// Runs missed-run recovery at `now`: every fire time in `[now - recovery_window, now]`
    /// not yet dispatched is claimed and dispatched once. Does nothing when
    /// `enable_dispatch_recovery` is off.
    ///
    /// A job is recovered only from when it was first known — its stored definition's
    /// `created_at`, or its earliest fire time in the dispatch log if that is older — so a
    /// job added today does not run for every fire time of the last day on its first start.
    pub fn recover_at(&self, now: DateTime<Utc>) -> TickReport {
        if !self.inner.config.enable_dispatch_recovery {
            return TickReport::default();
        }
        let from = now - chrono_duration(self.inner.config.recovery_window);
        self.inner.run(now, Some(from))
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

    /// Starts the background loop: recovery first (after a random delay up to
    /// `recovery_startup_jitter`), then a tick every `tick_interval`. Returns `false` when it
    /// is already running.
    pub fn start(&self) -> bool {
        let mut worker = lock(&self.worker);
        if worker.as_ref().is_some_and(|w| !w.handle.is_finished()) {
            return false;
        }
        let stop = Arc::new(StopSignal::default());
        let (done_tx, done) = mpsc::channel();
        let inner = self.inner.clone();
        let signal = stop.clone();
        let handle = thread::Builder::new()
            .name(format!("kaal-{}", inner.config.node_id))
            .spawn(move || {
                inner.run_loop(&signal);
                let _ = done_tx.send(());
            });
        match handle {
            Ok(handle) => {
                *worker = Some(Worker { stop, done, handle });
                true
            }
            Err(err) => {
                log::error!("could not start the kaal loop thread: {err}");
                false
            }
        }
    }

    /// Asks the loop to stop after its current tick and waits up to `timeout`. Returns
    /// `true` when it has stopped (or was not running).
    pub fn stop(&self, timeout: Duration) -> bool {
        let mut slot = lock(&self.worker);
        let Some(worker) = slot.take() else {
            return true;
        };
        worker.stop.stop();
        match worker.done.recv_timeout(timeout) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                if worker.handle.join().is_err() {
                    log::error!("the kaal loop thread panicked");
                }
                true
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                *slot = Some(worker);
                false
            }
        }
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
            let report = self.run(now, Some(from));
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
            self.run(self.clock.now(), None);
            self.count_pass();
            if stop.wait(self.config.tick_interval) {
                return;
            }
        }
    }

    fn count_pass(&self) {
        *lock(&self.passes) += 1;
        self.passed.notify_all();
    }

    /// One pass at `now`. `recover_from` is `Some(start)` for missed-run recovery.
    fn run(&self, now: DateTime<Utc>, recover_from: Option<DateTime<Utc>>) -> TickReport {
        let due = {
            let mut schedule = lock(&self.schedule);
            self.refresh(&mut schedule, now);
            if let Some(from) = recover_from {
                let log = self
                    .adapter
                    .dispatch_registry()
                    .filter(|_| self.logging.enabled);
                let lookback = chrono_duration(self.config.window_lookback);
                schedule.rewind_for_recovery(from, lookback, self.tz, |key| {
                    let records = log?.find_by_key(key).ok()?;
                    records.last().map(|record| record.fire_time)
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
            let mut uncertain = lock(&self.uncertain);
            if !uncertain.is_empty() {
                // Older than the catch-up window: no longer retried (take_due warns).
                uncertain.retain(|(_, fire_time)| *fire_time >= oldest);
            }
            drop(uncertain);
            schedule.take_due(now, oldest, self.tz)
        };
        let mut report = TickReport::default();
        let total = due.len();
        let mut done = 0;
        for chunk in due.chunks(CLAIM_CHUNK) {
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
            Some(store) => match store.all_definitions() {
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
            self.tz,
        );
        schedule.registry_generation = Some(generation);
        schedule.loaded_at = Some(now);
    }

    /// The dispatch log, when this node writes and reads it.
    fn log(&self) -> Option<&dyn DispatchRegistry> {
        self.adapter
            .dispatch_registry()
            .filter(|_| self.logging.enabled)
    }

    /// Remembers fire times whose claim this node may hold without having logged it: the
    /// batch claim or the log write failed, so the database may or may not have kept them.
    /// They are retried until the log shows them or this node wins them. Only with the
    /// dispatch log on: without it a retry could not tell another node's run from none.
    fn mark_uncertain(&self, candidates: &[&Candidate]) {
        if self.log().is_none() {
            return;
        }
        let mut uncertain = lock(&self.uncertain);
        for c in candidates {
            uncertain.insert((c.key.clone(), c.fire_time));
        }
    }

    /// Releases this node's claims on `candidates`, best effort (a failure is logged).
    fn release_claims(&self, candidates: &[&Candidate]) {
        let ns = &self.config.namespace;
        for c in candidates {
            if let Err(err) = self.adapter.release(&lock_key(ns, &c.key, c.fire_time)) {
                log::debug!("could not give back {} at {}: {err}", c.key, c.fire_time);
            }
        }
    }

    fn unsettle(&self, candidates: &[&Candidate]) {
        lock(&self.schedule).unsettle(candidates.iter().copied());
    }

    fn claim_and_dispatch(&self, due: &[Candidate]) -> TickReport {
        let mut report = TickReport::default();
        let Some((todo, mut fires)) = self.skip_logged(due, &mut report) else {
            return report;
        };
        let won = self.claim(&todo, &mut report);
        fires.extend(self.log_claims(won, &mut report));
        fires.sort_by(|a, b| {
            a.fire_time
                .cmp(&b.fire_time)
                .then_with(|| a.key.cmp(&b.key))
        });
        let ns = &self.config.namespace;
        for candidate in fires {
            let fire = Fire {
                key: candidate.key.clone(),
                fire_time: candidate.fire_time,
                idempotency_key: idempotency_key(ns, &candidate.key, candidate.fire_time),
            };
            if let Err(reason) = call(&candidate.callback, &fire) {
                log::error!("{} at {} failed: {reason}", fire.key, fire.fire_time);
                self.log_failure(&fire);
                report.failed.push((fire.clone(), reason));
            }
            report.dispatched.push(fire);
        }
        report
    }

    /// Drops the fire times the dispatch log shows as dispatched. Returns the rest, and the
    /// uncertain claims of this node that the log shows logged by this very node: their log
    /// write reached the database although it reported an error, and their callbacks have
    /// not run. `None` when the log could not be read (the fire times are retried next tick).
    fn skip_logged<'a>(
        &self,
        due: &'a [Candidate],
        report: &mut TickReport,
    ) -> Option<(Vec<&'a Candidate>, Vec<&'a Candidate>)> {
        let Some(log) = self.log() else {
            return Some((due.iter().collect(), Vec::new()));
        };
        let pairs: Vec<(String, DateTime<Utc>)> =
            due.iter().map(|c| (c.key.clone(), c.fire_time)).collect();
        let seen = match log.dispatched_many(&pairs) {
            Ok(seen) => seen,
            Err(err) => {
                log::error!("{err}; retrying these fire times next tick");
                report.errors.push(err.to_string());
                lock(&self.schedule).unsettle(due);
                return None;
            }
        };
        let (mut todo, mut ours, mut retry) =
            (Vec::with_capacity(due.len()), Vec::new(), Vec::new());
        let mut uncertain = lock(&self.uncertain);
        for ((candidate, seen), id) in due.iter().zip(seen).zip(pairs) {
            if !seen {
                todo.push(candidate);
                continue;
            }
            if !uncertain.is_empty() && uncertain.contains(&id) {
                match log.find_dispatch(&id.0, id.1) {
                    Ok(Some(record)) if record.node_id == self.config.node_id => {
                        uncertain.remove(&id);
                        ours.push(candidate);
                        continue;
                    }
                    Ok(_) => {
                        uncertain.remove(&id);
                    }
                    Err(err) => {
                        report.errors.push(err.to_string());
                        retry.push(candidate);
                        continue;
                    }
                }
            }
            report.already_dispatched.push(id);
        }
        drop(uncertain);
        self.unsettle(&retry);
        Some((todo, ours))
    }

    /// Claims `todo` in one batch and returns the claims won and confirmed unlogged.
    ///
    /// A claim another node holds is `lost` — unless this node's own earlier claim of it has
    /// an unknown outcome, in which case it is retried next tick (the hold may be this node's
    /// own lease, which runs out at its ttl).
    fn claim<'a>(&self, todo: &[&'a Candidate], report: &mut TickReport) -> Vec<&'a Candidate> {
        if todo.is_empty() {
            return Vec::new();
        }
        let ns = &self.config.namespace;
        let keys: Vec<String> = todo
            .iter()
            .map(|c| lock_key(ns, &c.key, c.fire_time))
            .collect();
        let won = match self.adapter.acquire_many(&keys, self.config.lease_ttl) {
            Ok(won) => won,
            Err(err) => {
                log::error!("{err}; retrying these fire times next tick");
                report.errors.push(err.to_string());
                self.mark_uncertain(todo);
                self.unsettle(todo);
                return Vec::new();
            }
        };
        let outcomes = self.confirm_unlogged(todo, won, report);
        let (mut claimed, mut retry, mut unknown) = (Vec::new(), Vec::new(), Vec::new());
        let mut give_back = Vec::new();
        let mut uncertain = lock(&self.uncertain);
        for (candidate, outcome) in todo.iter().zip(outcomes) {
            let id = (candidate.key.clone(), candidate.fire_time);
            let was_uncertain = !uncertain.is_empty() && uncertain.contains(&id);
            match outcome {
                Claim::Won => {
                    if was_uncertain {
                        uncertain.remove(&id);
                    }
                    claimed.push(*candidate);
                }
                Claim::Unconfirmed => unknown.push(*candidate),
                // Whose record it is, is settled next tick by `skip_logged`.
                Claim::Logged if was_uncertain => retry.push(*candidate),
                Claim::Logged => {
                    give_back.push(*candidate);
                    report.already_dispatched.push(id);
                }
                Claim::Held if was_uncertain => {
                    log::debug!(
                        "{} at {}: held, and this node's earlier claim is unsettled; retrying",
                        id.0,
                        id.1
                    );
                    retry.push(*candidate);
                }
                Claim::Held => {
                    log::debug!("{} at {}: claimed by another node", id.0, id.1);
                    report.lost.push(id);
                }
            }
        }
        drop(uncertain);
        // A claim won on a fire time already logged is given back at once: a session lock
        // would otherwise stay taken until its ttl.
        self.release_claims(&give_back);
        self.mark_uncertain(&unknown);
        retry.extend(unknown);
        self.unsettle(&retry);
        claimed
    }

    /// Reads the dispatch log once more for the claims just won, and drops those another node
    /// has logged meanwhile. The log was read before claiming; a node that stalled between
    /// that read and its claim for longer than `lease_ttl` (or whose rival's session lock
    /// vanished with its session) could otherwise win a fire time already dispatched. The
    /// winner logs right after claiming, long before its lease can expire, so this read sees
    /// it. One batched lookup per tick that won anything; a failed lookup leaves the claims
    /// unconfirmed (retried next tick), so no claim runs unconfirmed.
    fn confirm_unlogged(
        &self,
        todo: &[&Candidate],
        won: Vec<bool>,
        report: &mut TickReport,
    ) -> Vec<Claim> {
        let mut outcomes: Vec<Claim> = won
            .iter()
            .map(|won| if *won { Claim::Won } else { Claim::Held })
            .collect();
        let Some(log) = self.log() else {
            return outcomes;
        };
        let positions: Vec<usize> = (0..todo.len()).filter(|i| won[*i]).collect();
        if positions.is_empty() {
            return outcomes;
        }
        let pairs: Vec<(String, DateTime<Utc>)> = positions
            .iter()
            .map(|i| (todo[*i].key.clone(), todo[*i].fire_time))
            .collect();
        match log.dispatched_many(&pairs) {
            Ok(seen) => {
                for (i, seen) in positions.into_iter().zip(seen) {
                    if seen {
                        log::warn!(
                            "{} at {}: won a claim on a fire time another node already dispatched; skipped",
                            todo[i].key, todo[i].fire_time
                        );
                        outcomes[i] = Claim::Logged;
                    }
                }
            }
            Err(err) => {
                log::error!("{err}; the claims won this tick are retried next tick");
                report.errors.push(err.to_string());
                for i in positions {
                    outcomes[i] = Claim::Unconfirmed;
                }
            }
        }
        outcomes
    }

    /// Logs the claims won before their callbacks run. When the log write fails, none of
    /// them runs: they are remembered as uncertain, given back (best effort) and retried
    /// next tick — a job never runs on a claim the log does not show, so no other node can
    /// run it again after this node's lease or session is gone.
    fn log_claims<'a>(
        &self,
        won: Vec<&'a Candidate>,
        report: &mut TickReport,
    ) -> Vec<&'a Candidate> {
        let pairs: Vec<(String, DateTime<Utc>)> =
            won.iter().map(|c| (c.key.clone(), c.fire_time)).collect();
        match self.logging.log_claims(self.adapter.as_ref(), &pairs) {
            Ok(_) => won,
            Err(err) => {
                log::error!(
                    "could not log {} claim(s) ({err}); their jobs do not run now and are retried next tick",
                    won.len()
                );
                report.errors.push(err.to_string());
                self.mark_uncertain(&won);
                self.release_claims(&won);
                self.unsettle(&won);
                Vec::new()
            }
        }
    }

    fn log_failure(&self, fire: &Fire) {
        if !self.logging.enabled {
            return;
        }
        if let Some(log) = self.adapter.dispatch_registry() {
            if let Err(err) = log.log_dispatch(
                &fire.key,
                fire.fire_time,
                &self.config.node_id,
                DispatchStatus::Failed,
            ) {
                log::warn!(
                    "could not record the failure of {} at {}: {err}",
                    fire.key,
                    fire.fire_time
                );
            }
        }
    }
}

/// Calls a callback, turning an error or a panic into a message.
fn call(callback: &crate::registry::Callback, fire: &Fire) -> Result<(), String> {
    match panic::catch_unwind(AssertUnwindSafe(|| callback(fire))) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(err.to_string()),
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic payload".to_string());
            Err(format!("panicked: {message}"))
        }
    }
}
