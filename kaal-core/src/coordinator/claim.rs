//! The claim protocol: how a due fire time becomes exactly one run across the fleet.
//!
//! Read top to bottom, this is the exactly-once argument.
//!
//! 1. **Skip what the log shows.** The due fire times are looked up in the dispatch log
//!    (both key forms, `{namespace}:{key}` and the plain `{key}` older writers used); a
//!    logged one is settled. This read only saves work: correctness does not rest on it.
//! 2. **Keep rivals from useless work.** The adapter's lock (a lease row, an advisory or
//!    named lock) is taken for the rest in one batch. A fire time another holder has is not
//!    given up with the dispatch log on: it is retried until the log shows it, so a holder
//!    that dies before committing cannot lose it.
//! 3. **Commit.** With the dispatch log on, the claim is committed by inserting its log row,
//!    insert-only, on the unique `(key, fire_time)`
//!    ([`DispatchRegistry::commit_claims`]). Exactly one node's insert creates the row,
//!    however late any insert lands — a node stalled past its lease that wakes up and
//!    inserts finds the row and writes nothing. The store refuses fire times later than its
//!    own clock plus [`CLAIM_TOLERANCE`](crate::CLAIM_TOLERANCE), so no node runs the
//!    future, whatever its clock or `--at` says. The row is `claimed`: taken, not started.
//! 4. **Start.** Right before a job runs — with a run slot of the executor reserved, so it
//!    runs at once — its row moves `claimed → dispatched` by a compare-and-set on
//!    `(node_id, status)` ([`DispatchRegistry::start_run`], which answers the run's fencing
//!    token; [`DispatchRegistry::start_run_alone`] under `overlap: skip | queue_one`, which
//!    also finds no other run of the job going, in the same atomic step). A job runs only
//!    when that succeeded, so a fire time starts at most once, whatever happens between the
//!    commit and the start. Starts happen only on the pass's thread, and passes are
//!    serialised. A fire time a policy skips moves `claimed → skipped` instead.
//! 5. **Nothing claimed is lost.** A `claimed` row whose node is gone (no heartbeat for
//!    `node_timeout`, by the database's clock) is handed to a live node by a compare-and-set
//!    on its owner ([`DispatchRegistry::reassign_claim`]); that node then starts it as in 4.
//!    The dead node, should it come back, finds its row no longer its own and does not start
//!    it. A node's own `claimed` rows that it could not start (a failed start, an insert
//!    whose answer was lost) are started by the same sweep. The sweep runs every
//!    `node_timeout / 2` and on the tick after any store error.
//!
//! Node ids are unique among live nodes (see [`crate::NodeRegistry`]), which is what lets a
//! node recognise its own rows.
//!
//! With the dispatch log off, steps 1, 3, 4 and 5 do not exist: the adapter's lock is the
//! claim and its winner runs the job (at most once per lease; see the crate docs).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::executor::Slot;
use super::run::Run;
use super::{chrono_duration, lock, Inner, StartError, TickReport};
use crate::dispatch::{
    dispatch_log_key, AloneStart, Commit, DispatchRegistry, DispatchStatus, RunUpdate,
};
use crate::keys::{idempotency_key, lock_key};
use crate::nodes::{is_live, NodeRegistry, Registration};
use crate::policy::{OnNodeLoss, Overlap};
use crate::registry::Fire;
use crate::schedule::Candidate;

/// `n` copies of a failed batch start's error, one per fire time (each is then unsure).
fn errors(inner: &Inner, cause: &str, n: usize) -> Vec<Result<AloneStart, crate::RegistryError>> {
    (0..n)
        .map(|_| {
            Err(crate::RegistryError::new(
                inner.adapter.name(),
                "start_runs",
                cause,
            ))
        })
        .collect()
}

/// What this node knows of the database's clock: its last reading, and when (by the
/// monotonic clock) it was taken, so the database's now can be estimated between readings
/// without trusting the wall clock.
#[derive(Debug, Default)]
pub(super) struct DbClock {
    reading: Option<(DateTime<Utc>, Instant)>,
    /// The registration was taken over by another process with this node_id.
    evicted: bool,
    /// When (monotonic) this node's registration was last written: registered or
    /// heartbeated. `None` until it registers.
    seen: Option<Instant>,
    /// This node registered on its own first pass (driven by `tick_at` / `recover_at`
    /// without `start`): it deregisters when dropped.
    pub(super) lazily: bool,
}

impl DbClock {
    fn record(&mut self, database_now: DateTime<Utc>) {
        self.reading = Some((database_now, Instant::now()));
    }

    /// The database's now, estimated from the last reading and the monotonic time since.
    fn estimate(&self) -> Option<DateTime<Utc>> {
        self.reading
            .map(|(at, taken)| at + chrono_duration(taken.elapsed()))
    }
}

/// When the last sweep for never-started claims ran, whether one is owed now, and the starts
/// whose answer was lost.
#[derive(Default)]
pub(super) struct SweepState {
    last: Option<Instant>,
    owed: bool,
    /// Fire times whose start (`claimed → dispatched`) failed with an error: the store may
    /// have applied it. This node knows it has not run them; if the log shows the row
    /// started by this node, only this node can have started it, so it runs it then.
    unsure_starts: HashMap<(String, DateTime<Utc>), Candidate>,
}

impl Inner {
    /// The dispatch log, when this node writes and reads it.
    pub(super) fn log(&self) -> Option<&dyn DispatchRegistry> {
        self.adapter
            .dispatch_registry()
            .filter(|_| self.logging.enabled)
    }

    fn nodes(&self) -> Option<&dyn NodeRegistry> {
        self.adapter.node_registry()
    }

    /// Registers this node; `Ok(false)` when the store keeps no node registry.
    ///
    /// A registration of the same `node_id` that is still fresh may be this node's own
    /// previous process, killed a moment ago (a restart loop with a fixed `node_id`): the
    /// registration is retried until that one has gone unseen for `node_timeout` (plus one
    /// heartbeat interval). A holder that is really alive keeps heartbeating and is still
    /// there then: refused.
    pub(super) fn register(&self) -> Result<bool, StartError> {
        let Some(nodes) = self.nodes() else {
            return Ok(false);
        };
        let patience = self.config.node_timeout + self.config.node_timeout / 3;
        let began = Instant::now();
        let mut said = false;
        loop {
            match nodes.register_node(&self.node, self.config.node_timeout)? {
                Registration::Registered { database_now } => {
                    let mut clock = lock(&self.db_clock);
                    clock.record(database_now);
                    clock.evicted = false;
                    clock.seen = Some(Instant::now());
                    return Ok(true);
                }
                Registration::Duplicate(holder) if began.elapsed() >= patience => {
                    return Err(holder.into());
                }
                Registration::Duplicate(holder) => {
                    if !said {
                        log::warn!(
                            "node_id {:?} is registered by pid {} on {} (last seen {}); waiting up to {} s for that registration to expire",
                            holder.node_id,
                            holder.pid,
                            holder.host,
                            holder.last_seen,
                            patience.as_secs()
                        );
                        said = true;
                    }
                    std::thread::sleep(Duration::from_millis(250));
                }
            }
        }
    }

    pub(super) fn deregister(&self) {
        if let Some(nodes) = self.nodes() {
            if let Err(err) = nodes.deregister_node(&self.node) {
                log::warn!("could not deregister node {}: {err}", self.node.node_id);
            }
        }
    }

    /// Heartbeats every third of `node_timeout` until `stop`.
    pub(super) fn heartbeat_loop(&self, stop: &super::StopSignal) {
        let every = self.config.node_timeout / 3;
        while !stop.wait(every) {
            self.heartbeat();
        }
    }

    fn heartbeat(&self) {
        let Some(nodes) = self.nodes() else { return };
        match nodes.heartbeat(&self.node) {
            Ok(Some(database_now)) => {
                let mut clock = lock(&self.db_clock);
                clock.record(database_now);
                clock.evicted = false;
                clock.seen = Some(Instant::now());
            }
            Ok(None) => {
                // Taken for dead (a stall longer than node_timeout) and replaced, or the row
                // was deleted: register again, unless another live process holds the id.
                match self.register() {
                    Ok(_) => log::warn!(
                        "node {}: the registration was gone (a stall longer than node_timeout?); registered again",
                        self.node.node_id
                    ),
                    Err(err) => {
                        lock(&self.db_clock).evicted = true;
                        log::error!("{err}; this node stops claiming until it can register");
                    }
                }
            }
            Err(err) => log::warn!("node {}: heartbeat failed: {err}", self.node.node_id),
        }
    }

    /// Why this node must not claim now, if it must not: it holds no registration of its
    /// `node_id`.
    ///
    /// A node recognises the log rows its commit created by its `node_id` (and the commit's
    /// database time), so two live processes sharing an id would each take the other's rows
    /// for their own and run them too. `start` registers (and a heartbeat thread keeps the
    /// registration fresh); a node driven by [`tick_at`](crate::Coordinator::tick_at) or
    /// [`recover_at`](crate::Coordinator::recover_at) alone registers on its first pass,
    /// heartbeats on later passes, and deregisters when dropped. A live registration of the
    /// same id by another process refuses the pass, with a message naming that process:
    /// the id must be changed, or that process stopped. Without the dispatch log (ids
    /// identify no rows) or a node registry, nothing is checked.
    pub(super) fn registration_refusal(&self) -> Option<String> {
        self.log()?;
        let nodes = self.nodes()?;
        let seen = lock(&self.db_clock).seen;
        match seen {
            Some(at) if at.elapsed() < self.config.node_timeout / 2 => {}
            Some(_) => self.heartbeat(),
            None => match nodes.register_node(&self.node, self.config.node_timeout) {
                Ok(Registration::Registered { database_now }) => {
                    let mut clock = lock(&self.db_clock);
                    clock.record(database_now);
                    clock.evicted = false;
                    clock.seen = Some(Instant::now());
                    clock.lazily = true;
                }
                Ok(Registration::Duplicate(holder)) => {
                    return Some(format!(
                        "node_id {:?} is registered by another live process (pid {} on {}, last seen {}); \
                         this node claims nothing — give each process its own node_id, or stop that one",
                        holder.node_id, holder.pid, holder.host, holder.last_seen
                    ));
                }
                Err(err) => {
                    return Some(format!(
                        "node {}: cannot register ({err}); claiming nothing this pass",
                        self.node.node_id
                    ));
                }
            },
        }
        lock(&self.db_clock).evicted.then(|| {
            format!(
                "node {}: another live process registered the same node_id; not claiming",
                self.node.node_id
            )
        })
    }

    /// Why this node must not claim at `now` (read off its clock), if it must not: its clock
    /// is further than `max_clock_offset` from the database's, or another process took over
    /// its registration.
    pub(super) fn clock_refusal(&self, now: DateTime<Utc>) -> Option<String> {
        let clock = lock(&self.db_clock);
        if clock.evicted {
            return Some(format!(
                "node {}: another live process registered the same node_id; not claiming",
                self.node.node_id
            ));
        }
        let database_now = clock.estimate()?;
        let offset = now - database_now;
        let bound = chrono_duration(self.config.max_clock_offset);
        (offset.abs() > bound).then(|| {
            format!(
                "node {}: this node's clock is {:+.3} s off the database's (bound: max_clock_offset = {} s); \
                 not claiming until the clocks agree — fix the node's time synchronisation (NTP)",
                self.node.node_id,
                offset.num_milliseconds() as f64 / 1000.0,
                self.config.max_clock_offset.as_secs()
            )
        })
    }

    fn note_database_now(&self, database_now: DateTime<Utc>) {
        lock(&self.db_clock).record(database_now);
    }

    fn owe_sweep(&self) {
        lock(&self.sweep).owed = true;
    }

    /// Releases this node's locks on `candidates`, best effort (a failure is logged).
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

    /// Steps 1 to 4 for one chunk of due fire times.
    pub(super) fn claim_and_dispatch(&self, due: &[Candidate]) -> TickReport {
        let mut report = TickReport::default();
        let Some(todo) = self.skip_logged(due, &mut report) else {
            return report;
        };
        let won = self.lock_batch(&todo, &mut report);
        let committed = match self.log() {
            Some(log) => self.commit(log, won, &mut report),
            None => won,
        };
        let mut plain = Vec::with_capacity(committed.len());
        for candidate in committed {
            match &candidate.skip {
                Some(reason) => self.skip_fire(candidate, reason, &mut report),
                None if candidate.policy.overlap == Overlap::Allow => plain.push(candidate),
                None => self.run_fire(candidate, &mut report),
            }
        }
        self.run_fires(&plain, &mut report);
        report
    }

    /// Records a committed fire time `skipped` with `reason` instead of starting it. A
    /// failed write leaves it `claimed` by this node; the sweep then judges it again.
    fn skip_fire(&self, candidate: &Candidate, reason: &str, report: &mut TickReport) {
        if let Some(log) = self.log() {
            let log_key = dispatch_log_key(&self.config.namespace, &candidate.key);
            let update = RunUpdate {
                attempt: 0,
                error: Some(reason.to_string()),
            };
            match log.record_run(
                &log_key,
                candidate.fire_time,
                &self.config.node_id,
                DispatchStatus::Claimed,
                DispatchStatus::Skipped,
                &update,
            ) {
                Ok(true) => {}
                Ok(false) => return, // taken over meanwhile: no longer this node's to judge
                Err(err) => {
                    report.errors.push(err.to_string());
                    self.owe_sweep();
                    return;
                }
            }
        }
        log::info!(
            "{} at {}: skipped, {reason}",
            candidate.key,
            candidate.fire_time
        );
        report.skipped.push((
            candidate.key.clone(),
            candidate.fire_time,
            reason.to_string(),
        ));
    }

    /// Step 1: drops the fire times the dispatch log shows (either key form). `None` when the
    /// log could not be read (the fire times are retried next tick).
    fn skip_logged<'a>(
        &self,
        due: &'a [Candidate],
        report: &mut TickReport,
    ) -> Option<Vec<&'a Candidate>> {
        let Some(log) = self.log() else {
            return Some(due.iter().collect());
        };
        let ns = &self.config.namespace;
        let mut pairs = Vec::with_capacity(due.len() * 2);
        for c in due {
            pairs.push((dispatch_log_key(ns, &c.key), c.fire_time));
            pairs.push((c.key.clone(), c.fire_time));
        }
        let seen = match log.dispatched_many(&pairs) {
            Ok(seen) => seen,
            Err(err) => {
                log::error!("{err}; retrying these fire times next tick");
                report.errors.push(err.to_string());
                lock(&self.schedule).unsettle(due);
                return None;
            }
        };
        let mut todo = Vec::with_capacity(due.len());
        for (candidate, seen) in due.iter().zip(seen.chunks(2)) {
            if seen.iter().any(|s| *s) {
                report
                    .already_dispatched
                    .push((candidate.key.clone(), candidate.fire_time));
            } else {
                todo.push(candidate);
            }
        }
        Some(todo)
    }

    /// Step 2: takes the adapter's lock on `todo` in one batch; returns the fire times won.
    fn lock_batch<'a>(
        &self,
        todo: &[&'a Candidate],
        report: &mut TickReport,
    ) -> Vec<&'a Candidate> {
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
                self.unsettle(todo);
                return Vec::new();
            }
        };
        let (mut claimed, mut retry) = (Vec::new(), Vec::new());
        for (candidate, won) in todo.iter().zip(won) {
            if won {
                claimed.push(*candidate);
                continue;
            }
            log::debug!(
                "{} at {}: held by another node",
                candidate.key,
                candidate.fire_time
            );
            report
                .lost
                .push((candidate.key.clone(), candidate.fire_time));
            if self.log().is_some() {
                // Retried until the log shows it: a holder that dies before committing
                // must not take the fire time with it.
                retry.push(*candidate);
            }
        }
        self.unsettle(&retry);
        claimed
    }

    /// Step 3: inserts the log rows of `won`; returns those this node's insert created.
    fn commit<'a>(
        &self,
        log: &dyn DispatchRegistry,
        won: Vec<&'a Candidate>,
        report: &mut TickReport,
    ) -> Vec<&'a Candidate> {
        if won.is_empty() {
            return won;
        }
        let ns = &self.config.namespace;
        let pairs: Vec<(String, DateTime<Utc>)> = won
            .iter()
            .map(|c| (dispatch_log_key(ns, &c.key), c.fire_time))
            .collect();
        let commits = match log.commit_claims(&pairs, &self.config.node_id) {
            Ok(commits) if commits.outcomes.len() == won.len() => commits,
            Ok(commits) => {
                let message = format!(
                    "the dispatch log answered {} outcomes for {} claims; retrying next tick",
                    commits.outcomes.len(),
                    won.len()
                );
                return self.commit_failed(won, message, report);
            }
            Err(err) => {
                let message = format!("{err}; these fire times are retried next tick");
                return self.commit_failed(won, message, report);
            }
        };
        self.note_database_now(commits.database_now);
        let (mut created, mut give_back, mut early) = (Vec::new(), Vec::new(), Vec::new());
        for (candidate, outcome) in won.into_iter().zip(commits.outcomes) {
            let id = (candidate.key.clone(), candidate.fire_time);
            match outcome {
                Commit::Created => created.push(candidate),
                Commit::Taken => {
                    report.already_dispatched.push(id);
                    give_back.push(candidate);
                }
                Commit::Early => {
                    report.not_yet_due.push(id);
                    give_back.push(candidate);
                    early.push(candidate);
                }
            }
        }
        if !early.is_empty() {
            log::warn!(
                "{} fire time(s) are later than the database's clock ({}) and were not claimed; they run when due",
                early.len(),
                commits.database_now
            );
        }
        self.release_claims(&give_back);
        self.unsettle(&early);
        created
    }

    /// The commit's outcome is unknown: nothing runs now; the rows this node may have
    /// inserted are found by the next sweep, the rest are claimed again next tick.
    fn commit_failed<'a>(
        &self,
        won: Vec<&'a Candidate>,
        message: String,
        report: &mut TickReport,
    ) -> Vec<&'a Candidate> {
        log::error!("{message}");
        report.errors.push(message);
        self.release_claims(&won);
        self.unsettle(&won);
        self.owe_sweep();
        Vec::new()
    }

    /// This node has started `candidate` and runs it now: a start of it still remembered as
    /// unsure is settled (passes are serialised, so no other pass of this node holds it).
    fn started(&self, candidate: &Candidate) {
        lock(&self.sweep)
            .unsure_starts
            .remove(&(candidate.key.clone(), candidate.fire_time));
    }

    /// Remembers a start whose outcome is unknown, for the next sweep to settle.
    fn unsure_start(&self, candidate: &Candidate) {
        let mut sweep = lock(&self.sweep);
        sweep.owed = true;
        sweep.unsure_starts.insert(
            (candidate.key.clone(), candidate.fire_time),
            candidate.clone(),
        );
    }

    /// A run slot for the fire time about to start: an explicit pass waits for one; the
    /// background loop takes one only if free — without, the fire time stays `claimed` by
    /// this node, and the sweep starts it when a slot frees (which wakes the loop).
    fn slot(&self, candidate: &Candidate, report: &mut TickReport) -> Option<Slot> {
        if lock(&self.pass_mode).wait {
            return Some(self.executor.reserve());
        }
        let slot = self.executor.try_reserve();
        if slot.is_none() {
            report
                .deferred
                .push((candidate.key.clone(), candidate.fire_time));
            self.owe_sweep();
        }
        slot
    }

    /// Step 4: starts `candidate` — with the log on, only when this node's compare-and-set
    /// moves its row from `claimed` to `dispatched` ([`DispatchRegistry::start_run`], which
    /// answers the run's fencing token) — and hands it to the executor. A slot is reserved
    /// first, so a started run never waits for a thread.
    fn run_fire(&self, candidate: &Candidate, report: &mut TickReport) {
        let Some(slot) = self.slot(candidate, report) else {
            return;
        };
        let started = match self.log() {
            None => Ok(AloneStart::Started(0)),
            Some(log) => {
                let log_key = dispatch_log_key(&self.config.namespace, &candidate.key);
                self.start(log, &log_key, candidate)
            }
        };
        self.after_start(candidate, started, slot, report);
    }

    /// Step 4 for the fire times of one pass that start without an `overlap` policy: as
    /// many as slots can be reserved for at once start in one
    /// [`DispatchRegistry::start_runs`] (one transaction), and each answer is then judged
    /// as in [`run_fire`](Self::run_fire).
    fn run_fires(&self, candidates: &[&Candidate], report: &mut TickReport) {
        let mut rest = candidates;
        while let Some((first, _)) = rest.split_first() {
            let Some(slot) = self.slot(first, report) else {
                // A full node (background loop): the rest stay `claimed` by this node, and
                // the sweep starts them when slots free (it is owed now).
                for c in &rest[1..] {
                    report.deferred.push((c.key.clone(), c.fire_time));
                }
                return;
            };
            let mut slots = vec![slot];
            while slots.len() < rest.len() {
                match self.executor.try_reserve() {
                    Some(slot) => slots.push(slot),
                    None => break,
                }
            }
            let (batch, tail) = rest.split_at(slots.len());
            rest = tail;
            let Some(log) = self.log() else {
                for (c, slot) in batch.iter().zip(slots) {
                    self.hand_off(c, None, slot, report);
                }
                continue;
            };
            let ns = &self.config.namespace;
            let pairs: Vec<(String, DateTime<Utc>)> = batch
                .iter()
                .map(|c| (dispatch_log_key(ns, &c.key), c.fire_time))
                .collect();
            let answers = match log.start_runs(&self.config.node_id, &pairs) {
                Ok(answers) if answers.len() == batch.len() => answers
                    .into_iter()
                    .map(|token| Ok(token.map_or(AloneStart::NotClaimed, AloneStart::Started)))
                    .collect(),
                Ok(answers) => {
                    let message = format!(
                        "the dispatch log answered {} starts for {} runs",
                        answers.len(),
                        batch.len()
                    );
                    errors(self, &message, batch.len())
                }
                Err(err) => errors(self, &err.to_string(), batch.len()),
            };
            for ((c, slot), started) in batch.iter().zip(slots).zip(answers) {
                self.after_start(c, started, slot, report);
            }
        }
    }

    /// Acts on the answer of a start's compare-and-set: hands a started run to the executor
    /// on `slot`, or gives the slot back and settles why it did not start.
    fn after_start(
        &self,
        candidate: &Candidate,
        started: Result<AloneStart, crate::RegistryError>,
        slot: Slot,
        report: &mut TickReport,
    ) {
        let Some(log) = self.log() else {
            self.hand_off(candidate, None, slot, report);
            return;
        };
        let log_key = dispatch_log_key(&self.config.namespace, &candidate.key);
        let token = match started {
            Ok(AloneStart::Started(token)) => {
                self.started(candidate);
                token
            }
            Ok(AloneStart::Busy { fire_time, node_id }) => {
                drop(slot);
                self.overlapped(candidate, fire_time, &node_id, report);
                return;
            }
            Ok(AloneStart::NotClaimed) => {
                // Not `claimed` by this node any more. Either another node took it over
                // (this node was taken for dead), or an earlier start of this node's whose
                // answer was lost landed late: the row is then `dispatched` by this node,
                // and nothing ran it — no other node can start a row of this node's id,
                // starts happen only in passes, and no other pass of this node runs
                // meanwhile (passes are serialised), so that start is the lost one. Read
                // the row to tell which.
                match log.find_dispatch(&log_key, candidate.fire_time) {
                    Ok(Some(row))
                        if row.node_id == self.config.node_id
                            && row.status == DispatchStatus::Dispatched =>
                    {
                        log::warn!(
                            "{} at {}: an earlier start of this node's landed although it reported an error; running it now",
                            candidate.key,
                            candidate.fire_time
                        );
                        self.started(candidate);
                        row.id
                    }
                    Ok(_) => {
                        log::warn!(
                            "{} at {}: this node's claim was taken over before it started (taken for dead?); not run here",
                            candidate.key,
                            candidate.fire_time
                        );
                        return;
                    }
                    Err(err) => {
                        report.errors.push(err.to_string());
                        self.unsure_start(candidate);
                        return;
                    }
                }
            }
            Err(err) => {
                log::error!(
                    "{err}; {} at {} starts later",
                    candidate.key,
                    candidate.fire_time
                );
                report.errors.push(err.to_string());
                self.unsure_start(candidate);
                return;
            }
        };
        self.hand_off(candidate, Some(token), slot, report);
    }

    /// The start's compare-and-set: alone (no other run of the job going, one atomic step)
    /// under an `overlap` policy other than `allow`.
    fn start(
        &self,
        log: &dyn DispatchRegistry,
        log_key: &str,
        candidate: &Candidate,
    ) -> Result<AloneStart, crate::RegistryError> {
        let node = &self.config.node_id;
        if candidate.policy.overlap == Overlap::Allow {
            return Ok(match log.start_run(log_key, candidate.fire_time, node)? {
                Some(token) => AloneStart::Started(token),
                None => AloneStart::NotClaimed,
            });
        }
        log.start_run_alone(log_key, candidate.fire_time, node)
    }

    /// Another run of the job is going: `skip` records this fire time skipped; `queue_one`
    /// keeps it `claimed` by this node, and the sweep (owed every pass while it waits)
    /// starts it when the job is free — or skips it when a newer fire time waits too.
    fn overlapped(
        &self,
        candidate: &Candidate,
        going: DateTime<Utc>,
        node: &str,
        report: &mut TickReport,
    ) {
        match candidate.policy.overlap {
            Overlap::QueueOne => {
                log::info!(
                    "{} at {}: waiting for the run of {going} on node {node} to end (overlap: queue_one)",
                    candidate.key,
                    candidate.fire_time
                );
                report
                    .queued
                    .push((candidate.key.clone(), candidate.fire_time));
                self.owe_sweep();
            }
            _ => {
                let reason = format!("overlap (the run of {going} on node {node} is still going)");
                self.skip_fire(candidate, &reason, report);
            }
        }
    }

    /// Hands a started fire time to the executor on `slot`.
    fn hand_off(
        &self,
        candidate: &Candidate,
        fencing_token: Option<i64>,
        slot: Slot,
        report: &mut TickReport,
    ) {
        let ns = &self.config.namespace;
        let fire = Fire {
            key: candidate.key.clone(),
            fire_time: candidate.fire_time,
            idempotency_key: idempotency_key(ns, &candidate.key, candidate.fire_time),
            fencing_token,
            attempt: 1,
            timeout: candidate.policy.timeout.or(self.config.job_timeout),
        };
        report.dispatched.push(fire.clone());
        let run = Run {
            fire,
            callback: candidate.callback.clone(),
            policy: candidate.policy.clone(),
            log_key: self.log().map(|_| dispatch_log_key(ns, &candidate.key)),
            outcome: lock(&self.pass_mode).outcomes.clone(),
        };
        if lock(&self.pass_mode).wait {
            // An explicit pass (`tick_at`, `recover_at`, the CLI's one-shot `kaal tick`)
            // runs its jobs on its own thread, one after another, holding the slot: it
            // waits for them anyway, and so a one-shot process uses the database from one
            // thread at a time. (When two checkouts overlap, r2d2 opens a connection on its
            // own thread; a process that exits while one is being opened can crash in the
            // client library's TLS teardown — see `kaal_diesel_postgres::PgOptions::pool`.)
            if let Some(me) = self.me.upgrade() {
                let told = me.execute(run);
                drop(me);
                drop(slot);
                if let Some((waiting, outcome)) = told {
                    let _ = waiting.send(outcome);
                }
            }
            return;
        }
        if let Some(me) = self.me.upgrade() {
            slot.run(Box::new(move || {
                let told = me.execute(run);
                drop(me);
                if let Some((waiting, outcome)) = told {
                    let _ = waiting.send(outcome);
                }
            }));
        }
    }

    /// Step 5: starts the never-started claims of this node and of dead nodes, for the jobs
    /// this node runs, with fire times not older than `oldest`. Runs when owed (after a
    /// store error) and every `node_timeout / 2`.
    pub(super) fn sweep_unstarted(&self, now: DateTime<Utc>, oldest: DateTime<Utc>) -> TickReport {
        let mut report = TickReport::default();
        let Some(log) = self.log() else {
            return report;
        };
        {
            let mut sweep = lock(&self.sweep);
            let every = self.config.node_timeout / 2;
            if !sweep.owed && sweep.last.is_some_and(|at| at.elapsed() < every) {
                return report;
            }
            sweep.last = Some(Instant::now());
            sweep.owed = false;
        }
        self.settle_unsure_starts(log, &mut report);
        self.abandon_lost_runs(log, now, oldest, &mut report);
        let rows = match log.unstarted_claims(oldest) {
            Ok(rows) => rows,
            Err(err) => {
                report.errors.push(err.to_string());
                self.owe_sweep();
                return report;
            }
        };
        let prefix = format!("{}:", self.config.namespace);
        let rows: Vec<_> = rows
            .into_iter()
            .filter(|row| row.key.starts_with(&prefix) && row.fire_time <= now)
            .collect();
        if rows.is_empty() {
            return report;
        }
        let liveness = self.liveness();
        let candidates: HashMap<String, Candidate> = {
            let schedule = lock(&self.schedule);
            rows.iter()
                .filter_map(|row| {
                    let key = &row.key[prefix.len()..];
                    let candidate = schedule.runnable(key, row.fire_time)?;
                    Some((key.to_string(), candidate))
                })
                .collect()
        };
        // The newest claimed fire time of each job: under `queue_one` only it may wait.
        let mut newest: HashMap<&str, DateTime<Utc>> = HashMap::new();
        for row in &rows {
            let at = newest.entry(row.key.as_str()).or_insert(row.fire_time);
            *at = (*at).max(row.fire_time);
        }
        let newest: HashMap<String, DateTime<Utc>> = newest
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let me = &self.config.node_id;
        for row in rows {
            let key = &row.key[prefix.len()..];
            let Some(template) = candidates.get(key) else {
                continue;
            };
            let mut candidate = Candidate {
                fire_time: row.fire_time,
                ..template.clone()
            };
            candidate.skip = self.late_reason(&candidate, now);
            if candidate.policy.overlap == Overlap::QueueOne
                && newest.get(&row.key).is_some_and(|at| *at > row.fire_time)
            {
                candidate.skip =
                    Some("overlap (queue_one: a newer fire time of the job is waiting)".into());
            }
            if row.node_id != *me {
                let Some((database_now, live)) = &liveness else {
                    continue;
                };
                let quiet_for = *database_now - row.dispatched_at;
                if live.contains_key(row.node_id.as_str())
                    || quiet_for < chrono_duration(self.config.node_timeout)
                {
                    continue;
                }
                if !lock(&self.pass_mode).wait && self.executor.free() == 0 {
                    // A full node takes over nothing: the claim would wait here for a slot
                    // while a node with room could start it now. (Only passes reserve slots,
                    // so a free slot seen here is still free when the start comes.)
                    self.owe_sweep();
                    continue;
                }
                match log.reassign_claim(&row.key, row.fire_time, &row.node_id, me) {
                    Ok(true) => {
                        log::warn!(
                            "{} at {}: claimed by node {}, which is gone, and never started; running it here",
                            key,
                            row.fire_time,
                            row.node_id
                        );
                        report.taken_over.push((
                            key.to_string(),
                            row.fire_time,
                            row.node_id.clone(),
                        ));
                    }
                    Ok(false) => continue,
                    Err(err) => {
                        report.errors.push(err.to_string());
                        self.owe_sweep();
                        continue;
                    }
                }
            }
            match candidate.skip.clone() {
                Some(reason) => self.skip_fire(&candidate, &reason, &mut report),
                None => self.run_fire(&candidate, &mut report),
            }
        }
        report
    }

    /// Starts whose answer was lost: a row this node started (`dispatched` by it) runs now —
    /// no other node can have started a row of this node's — and one still `claimed` by it
    /// is started again now (its lost start may still land at any moment; the start's
    /// compare-and-set and [`run_fire`](Self::run_fire)'s re-read settle either order); a
    /// row another node holds is dropped.
    fn settle_unsure_starts(&self, log: &dyn DispatchRegistry, report: &mut TickReport) {
        let unsure = std::mem::take(&mut lock(&self.sweep).unsure_starts);
        let ns = &self.config.namespace;
        for ((key, fire_time), candidate) in unsure {
            match log.find_dispatch(&dispatch_log_key(ns, &key), fire_time) {
                Ok(Some(row))
                    if row.node_id == self.config.node_id
                        && row.status == DispatchStatus::Dispatched =>
                {
                    let Some(slot) = self.slot(&candidate, report) else {
                        lock(&self.sweep)
                            .unsure_starts
                            .insert((key, fire_time), candidate);
                        continue;
                    };
                    log::warn!(
                        "{key} at {fire_time}: its start reached the log although it reported an error; running it now"
                    );
                    self.hand_off(&candidate, Some(row.id), slot, report);
                }
                Ok(Some(row))
                    if row.node_id == self.config.node_id
                        && row.status == DispatchStatus::Claimed =>
                {
                    self.run_fire(&candidate, report);
                }
                Ok(_) => {}
                Err(err) => {
                    report.errors.push(err.to_string());
                    let mut sweep = lock(&self.sweep);
                    sweep.owed = true;
                    sweep.unsure_starts.insert((key, fire_time), candidate);
                }
            }
        }
    }

    /// Settles the runs of this namespace that are `dispatched` (started, not finished) on a
    /// node that is gone — no heartbeat for `node_timeout` by the database's clock, and the
    /// row itself untouched that long — for the jobs this node runs (the others are left to
    /// nodes that run them, which know the job's policy):
    ///
    /// * `on_node_loss: abandon` (default, at most once): recorded `abandoned`, not run
    ///   again;
    /// * `rerun` (at least once): the row is replaced by a new `claimed` row of this node
    ///   ([`DispatchRegistry::rerun_lost_run`]) — a new, larger fencing token — and started
    ///   here like any claim.
    ///
    /// Each is one compare-and-set on the dead node's ownership and the `dispatched` status,
    /// so of several live nodes one acts, and a run that finished meanwhile keeps its
    /// outcome. Rows without a `started_at` (written by the Ruby gem or older kaal) are
    /// never touched.
    fn abandon_lost_runs(
        &self,
        log: &dyn DispatchRegistry,
        now: DateTime<Utc>,
        oldest: DateTime<Utc>,
        report: &mut TickReport,
    ) {
        let Some((database_now, live)) = self.liveness() else {
            return;
        };
        let rows = match log.running_runs(oldest) {
            Ok(rows) => rows,
            Err(err) => {
                report.errors.push(err.to_string());
                self.owe_sweep();
                return;
            }
        };
        let prefix = format!("{}:", self.config.namespace);
        let timeout = chrono_duration(self.config.node_timeout);
        for row in rows {
            let gone = row.key.starts_with(&prefix)
                && row.node_id != self.config.node_id
                && !live.contains_key(row.node_id.as_str())
                && database_now - row.dispatched_at >= timeout;
            if !gone {
                continue;
            }
            let key = &row.key[prefix.len()..];
            let Some(mut candidate) = lock(&self.schedule).runnable(key, row.fire_time) else {
                continue;
            };
            if candidate.policy.on_node_loss == OnNodeLoss::Rerun {
                let note = format!(
                    "rerun: node {} was lost while running it (its fencing token {}); \
                     rerun by node {}",
                    row.node_id, row.id, self.config.node_id
                );
                match log.rerun_lost_run(
                    &row.key,
                    row.fire_time,
                    &row.node_id,
                    &self.config.node_id,
                    &note,
                ) {
                    Ok(true) => {
                        log::warn!("{key} at {}: {note}", row.fire_time);
                        report
                            .rerun
                            .push((key.to_string(), row.fire_time, row.node_id.clone()));
                        candidate.skip = self.late_reason(&candidate, now);
                        match candidate.skip.clone() {
                            Some(reason) => self.skip_fire(&candidate, &reason, report),
                            None => self.run_fire(&candidate, report),
                        }
                        continue;
                    }
                    Ok(false) => {} // not replaceable here: recorded abandoned below
                    Err(err) => {
                        report.errors.push(err.to_string());
                        self.owe_sweep();
                        continue;
                    }
                }
            }
            let update = RunUpdate {
                attempt: row.attempt,
                error: Some(format!(
                    "node {} stopped heartbeating while the run was going (not seen for \
                     node_timeout = {} s); recorded by node {}",
                    row.node_id,
                    self.config.node_timeout.as_secs(),
                    self.config.node_id
                )),
            };
            match log.record_run(
                &row.key,
                row.fire_time,
                &row.node_id,
                DispatchStatus::Dispatched,
                DispatchStatus::Abandoned,
                &update,
            ) {
                Ok(true) => {
                    log::warn!(
                        "{key} at {}: running on node {}, which is gone; recorded abandoned (not run again)",
                        row.fire_time,
                        row.node_id
                    );
                    report
                        .abandoned
                        .push((key.to_string(), row.fire_time, row.node_id.clone()));
                }
                Ok(false) => {}
                Err(err) => {
                    report.errors.push(err.to_string());
                    self.owe_sweep();
                }
            }
        }
    }

    /// The database's now and the live nodes of this namespace, by the node registry; `None`
    /// without one (then only this node's own claims are swept).
    fn liveness(&self) -> Option<(DateTime<Utc>, HashMap<String, ()>)> {
        let nodes = self.nodes()?;
        let database_now = nodes.database_now().ok()?;
        let records = nodes.nodes(&self.config.namespace).ok()?;
        let timeout: Duration = self.config.node_timeout;
        let live = records
            .into_iter()
            .filter(|r| is_live(r, database_now, timeout))
            .map(|r| (r.node_id, ()))
            .collect();
        Some((database_now, live))
    }
}
