//! One run, on a thread of the executor: the callback's attempts, its timeout, its retries,
//! and the outcome written to the run's row.
//!
//! The run's row is `dispatched` by this node when the run begins (the pass started it).
//! Each attempt ends in one compare-and-set on that row ([`DispatchRegistry::record_run`]):
//! `dispatched → succeeded | failed | timed_out`, or `dispatched → dispatched` with the
//! attempt count and error when another attempt follows. The compare-and-set is on this
//! node's ownership, so a run another node has meanwhile recorded `abandoned` (this node
//! was taken for dead) is not overwritten, and it is not retried either.
//!
//! **Timeouts.** With a timeout (the job's policy, else the node's `job_timeout`), the
//! callback runs on a thread of its own and the run waits for it up to the timeout. Past
//! it, the run is recorded `timed_out` and its slot is given back, so a hung job does not
//! hold the node; the callback itself cannot be interrupted (Rust threads cannot be
//! stopped from outside) and runs on, detached, to its end — its result is then only
//! logged. Commands enforce the timeout themselves, by killing their process group, and a
//! callback that gives up on its own can return [`TimedOut`] to be recorded the same way.
//!
//! [`DispatchRegistry::record_run`]: crate::DispatchRegistry::record_run

use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crate::adapter::Adapter;
use crate::dispatch::{DispatchStatus, RunRecord, RunUpdate};
use crate::error::RegistryError;
use crate::policy::JobPolicy;
use crate::registry::{Callback, Fire};

use super::Inner;

/// An error a job returns to be recorded `timed_out` rather than `failed`: it ran out of
/// time (a command killed at its timeout does this).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("timed out after {} s", .after.as_secs_f64())]
pub struct TimedOut {
    /// How long it ran.
    pub after: Duration,
}

/// How an attempt ended, when not in success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Failure {
    /// An error or a panic, with its text.
    Failed(String),
    /// Past its timeout, with a description.
    TimedOut(String),
}

impl Failure {
    fn status(&self) -> DispatchStatus {
        match self {
            Failure::Failed(_) => DispatchStatus::Failed,
            Failure::TimedOut(_) => DispatchStatus::TimedOut,
        }
    }

    pub(super) fn text(&self) -> &str {
        match self {
            Failure::Failed(text) | Failure::TimedOut(text) => text,
        }
    }
}

/// What a waiting pass learns of each run it started.
pub(super) struct Outcome {
    pub fire: Fire,
    pub failure: Option<Failure>,
}

/// A started fire time, ready to run on the executor.
pub(super) struct Run {
    pub fire: Fire,
    pub callback: Callback,
    pub policy: Arc<JobPolicy>,
    /// Its dispatch-log key; `None` when the dispatch log is off (nothing is recorded).
    pub log_key: Option<String>,
    /// Where a waiting pass hears how it went.
    pub outcome: Option<mpsc::Sender<Outcome>>,
}

/// Calls a callback, turning an error or a panic into a [`Failure`].
pub(super) fn call(callback: &Callback, fire: &Fire) -> Result<(), Failure> {
    match panic::catch_unwind(AssertUnwindSafe(|| callback(fire))) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err.as_ref());
            while let Some(cause) = source {
                if cause.is::<TimedOut>() {
                    return Err(Failure::TimedOut(err.to_string()));
                }
                source = cause.source();
            }
            Err(Failure::Failed(err.to_string()))
        }
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic payload".to_string());
            Err(Failure::Failed(format!("panicked: {message}")))
        }
    }
}

impl Inner {
    /// Runs `run` to its end: every attempt, the waits between them, and the recorded
    /// outcome. Called on a thread of the executor; answers what to tell a waiting pass,
    /// which the caller sends only after letting go of this node (so the node is never
    /// dropped on a run thread after its pass has returned — at a process's exit that
    /// would race the exit handlers of the database's client library).
    pub(super) fn execute(
        self: &Arc<Self>,
        mut run: Run,
    ) -> Option<(mpsc::Sender<Outcome>, Outcome)> {
        let timeout = run.fire.timeout;
        let retry = run.policy.retry;
        let failure = loop {
            let failure = self.attempt(&run, timeout).err();
            let Some(failure) = failure else {
                self.record(&run, DispatchStatus::Succeeded, None);
                break None;
            };
            log::error!(
                "{} at {} failed: {} (attempt {} of {})",
                run.fire.key,
                run.fire.fire_time,
                failure.text(),
                run.fire.attempt,
                retry.max_attempts
            );
            let next = run.fire.attempt + 1;
            if next > retry.max_attempts {
                self.record(&run, failure.status(), Some(&failure));
                break Some(failure);
            }
            let delay = retry.delay_before(next);
            if self.halt.wait(delay) {
                let failure = Failure::Failed(format!(
                    "{} (attempt {next} of {} not made: the node is stopping)",
                    failure.text(),
                    retry.max_attempts
                ));
                self.record(&run, DispatchStatus::Failed, Some(&failure));
                break Some(failure);
            }
            if !self.record(&run, DispatchStatus::Dispatched, Some(&failure)) {
                break Some(failure);
            }
            run.fire.attempt = next;
        };
        run.outcome.take().map(|waiting| {
            (
                waiting,
                Outcome {
                    fire: run.fire,
                    failure,
                },
            )
        })
    }

    /// One attempt, on this thread or — with a timeout — on a thread of its own.
    fn attempt(self: &Arc<Self>, run: &Run, timeout: Option<Duration>) -> Result<(), Failure> {
        let Some(timeout) = timeout else {
            return self.call_in_run(&run.callback, &run.fire);
        };
        let (done_tx, done) = mpsc::channel();
        let inner = self.clone();
        let callback = run.callback.clone();
        let fire = run.fire.clone();
        let spawned = thread::Builder::new()
            .name(format!("kaal-job-{}", self.config.node_id))
            .spawn(move || {
                let result = inner.call_in_run(&callback, &fire);
                if let (Err(late), Err(_)) = (&result, done_tx.send(result.clone())) {
                    log::warn!(
                        "{} at {}: finished after its timeout: {}",
                        fire.key,
                        fire.fire_time,
                        late.text()
                    );
                }
            });
        if let Err(err) = spawned {
            log::error!("could not start a thread to time the job: {err}; running it untimed");
            return self.call_in_run(&run.callback, &run.fire);
        }
        match done.recv_timeout(timeout) {
            Ok(result) => result,
            Err(_) => Err(Failure::TimedOut(format!(
                "ran past its timeout of {} s; recorded timed_out (a callback cannot be \
                 interrupted: it runs on, detached, to its end)",
                timeout.as_secs_f64()
            ))),
        }
    }

    /// Calls the callback marked as inside a run of this node, so a callback that ticks
    /// its own node from a waiting pass is refused instead of waiting for itself.
    fn call_in_run(&self, callback: &Callback, fire: &Fire) -> Result<(), Failure> {
        let _inside = super::Inside::enter(self);
        call(callback, fire)
    }

    /// Writes the run's status through the recorder (see [`Recorder`]) and waits for it;
    /// returns whether the row is still this node's run.
    fn record(&self, run: &Run, to: DispatchStatus, failure: Option<&Failure>) -> bool {
        let (Some(log_key), Some(_)) = (&run.log_key, self.log()) else {
            return true;
        };
        let record = RunRecord {
            key: log_key.clone(),
            fire_time: run.fire.fire_time,
            from: DispatchStatus::Dispatched,
            to,
            update: RunUpdate {
                attempt: run.fire.attempt,
                error: failure.map(|f| f.text().to_string()),
            },
        };
        match self.recorder.record(self, record) {
            Ok(true) => true,
            Ok(false) => {
                log::warn!(
                    "{} at {}: the run is no longer this node's (recorded abandoned by another \
                     node?); its outcome {to} is not written",
                    run.fire.key,
                    run.fire.fire_time
                );
                false
            }
            Err(err) => {
                log::error!(
                    "could not record {} at {} as {to}: {err}",
                    run.fire.key,
                    run.fire.fire_time
                );
                true
            }
        }
    }
}

/// The most outcomes written in one group commit.
const MAX_BATCH: usize = 512;

/// One outcome waiting to be written, and where to answer.
struct Pending {
    record: RunRecord,
    done: mpsc::Sender<Result<bool, RegistryError>>,
}

/// Writes the outcomes of runs in group commits: a run hands its outcome to the recorder's
/// thread and waits; the thread writes every outcome waiting at that moment in one call
/// ([`DispatchRegistry::record_runs`](crate::DispatchRegistry::record_runs): one
/// transaction on the SQL stores) and answers each run. Runs that end together share a
/// commit, and only one thread of the node writes outcomes, so they do not queue for the
/// database's write lock (SQLite) one by one. A run's slot is held until its outcome is
/// written, so a node that has stopped has nothing left to write.
#[derive(Default)]
pub(super) struct Recorder {
    queue: Mutex<Option<mpsc::Sender<Pending>>>,
    /// The recorder's thread, joined when the node is dropped: it holds the store, and a
    /// store dropped by a thread racing the process's exit (libpq's and OpenSSL's exit
    /// handlers) could crash it.
    thread: Mutex<Option<thread::JoinHandle<()>>>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        drop(super::lock(&self.queue).take());
        if let Some(handle) = super::lock(&self.thread).take() {
            if handle.thread().id() != thread::current().id() && handle.join().is_err() {
                log::error!("the recorder thread panicked");
            }
        }
    }
}

impl Recorder {
    /// Writes `record` (as `inner`'s node) and returns its answer.
    fn record(&self, inner: &Inner, record: RunRecord) -> Result<bool, RegistryError> {
        let (done, answer) = mpsc::channel();
        let pending = Pending { record, done };
        let unsent = {
            let mut queue = super::lock(&self.queue);
            let sender = queue.get_or_insert_with(|| {
                let (sender, handle) =
                    spawn_recorder(inner.adapter.clone(), inner.config.node_id.clone());
                *super::lock(&self.thread) = handle;
                sender
            });
            sender.send(pending).err().map(|err| err.0)
        };
        if let Some(pending) = unsent {
            // The recorder thread is gone (it could not start): write directly.
            *super::lock(&self.queue) = None;
            return write_one(
                inner.adapter.as_ref(),
                &inner.config.node_id,
                &pending.record,
            );
        }
        answer.recv().unwrap_or_else(|_| {
            Err(RegistryError::new(
                inner.adapter.name(),
                "record_runs",
                "the recorder thread ended without an answer",
            ))
        })
    }
}

fn write_one(adapter: &dyn Adapter, node: &str, r: &RunRecord) -> Result<bool, RegistryError> {
    match adapter.dispatch_registry() {
        Some(log) => log.record_run(&r.key, r.fire_time, node, r.from, r.to, &r.update),
        None => Ok(true),
    }
}

/// Starts the recorder's thread; it ends when the node (the last sender) is gone.
fn spawn_recorder(
    adapter: Arc<dyn Adapter>,
    node: String,
) -> (mpsc::Sender<Pending>, Option<thread::JoinHandle<()>>) {
    let (tx, rx) = mpsc::channel::<Pending>();
    let spawned = thread::Builder::new()
        .name(format!("kaal-record-{node}"))
        .spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut batch = vec![first];
                batch.extend(rx.try_iter().take(MAX_BATCH - 1));
                let records: Vec<RunRecord> = batch.iter().map(|p| p.record.clone()).collect();
                let written = adapter
                    .dispatch_registry()
                    .map(|log| log.record_runs(&node, &records));
                match written {
                    Some(Ok(answers)) if answers.len() == batch.len() => {
                        for (pending, answer) in batch.into_iter().zip(answers) {
                            let _ = pending.done.send(Ok(answer));
                        }
                    }
                    _ => {
                        // The group commit failed as a whole: each on its own, so one
                        // bad row does not take the others' outcomes with it.
                        for pending in batch {
                            let answer = write_one(adapter.as_ref(), &node, &pending.record);
                            let _ = pending.done.send(answer);
                        }
                    }
                }
            }
        });
    match spawned {
        Ok(handle) => (tx, Some(handle)),
        Err(err) => {
            log::error!(
                "could not start the recorder thread: {err}; outcomes are written one by one"
            );
            (tx, None)
        }
    }
}
