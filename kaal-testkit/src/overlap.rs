//! Runs of one job that must not overlap, and lost runs that are run again: the store
//! behaviours `overlap: skip | queue_one` and `on_node_loss: rerun` rest on.
//!
//! [`start_run_alone`](DispatchRegistry::start_run_alone) starts a claim only when no other
//! run of its job is going, as **one atomic step per job across processes**: racing nodes
//! each starting their own fire time of one job at the same instant start exactly one run
//! ([`simultaneous_alone_starts_of_one_job_start_one_run`]). The same race run through a
//! store that checks and then starts in two steps — the trait's default, with the
//! interleaving that default allows forced — starts every racer's run
//! ([`the_race_catches_a_start_run_alone_that_checks_then_starts`]): the race is a check
//! that can fail.
//!
//! [`rerun_lost_run`](DispatchRegistry::rerun_lost_run) replaces a lost node's running row
//! by a new claim with a larger fencing token, only while the row is still that node's run,
//! and only once however many nodes try.

use std::sync::{Arc, Barrier};
use std::thread;

use chrono::{DateTime, TimeZone, Utc};
use kaal_core::{
    clip_error, Adapter, AloneStart, Commit, Commits, DispatchRecord, DispatchRegistry,
    DispatchStatus, RegistryError, RunUpdate,
};

use crate::{Backend, TestStore};

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_767_225_600 + seconds, 0).unwrap()
}

fn log_of(adapter: &Arc<dyn Adapter>) -> &dyn DispatchRegistry {
    adapter
        .dispatch_registry()
        .expect("backend has no dispatch registry")
}

/// Commits `(key, fire_time)` as `node`'s claim (it must be new).
fn claim(log: &dyn DispatchRegistry, key: &str, fire_time: DateTime<Utc>, node: &str) {
    let answer = log
        .commit_claims(&[(key.to_string(), fire_time)], node)
        .unwrap();
    assert_eq!(answer.outcomes, [Commit::Created], "{key}@{fire_time}");
}

/// Commits `(key, fire_time)` as `node`'s claim and starts it (plain `start_run`); returns
/// its token.
fn claim_and_start(
    log: &dyn DispatchRegistry,
    key: &str,
    fire_time: DateTime<Utc>,
    node: &str,
) -> i64 {
    claim(log, key, fire_time, node);
    log.start_run(key, fire_time, node)
        .unwrap()
        .unwrap_or_else(|| panic!("{node} could not start its own claim {key}@{fire_time}"))
}

fn row(log: &dyn DispatchRegistry, key: &str, fire_time: DateTime<Utc>) -> DispatchRecord {
    log.find_dispatch(key, fire_time)
        .unwrap()
        .unwrap_or_else(|| panic!("no row for {key}@{fire_time}"))
}

fn finish(log: &dyn DispatchRegistry, key: &str, fire_time: DateTime<Utc>, node: &str) {
    assert!(log
        .record_run(
            key,
            fire_time,
            node,
            DispatchStatus::Dispatched,
            DispatchStatus::Succeeded,
            &RunUpdate {
                attempt: 1,
                error: None,
            },
        )
        .unwrap());
}

/// With no run of the job going, `start_run_alone` starts its owner's claim like
/// `start_run`: `dispatched`, `started_at`, attempt 1, and the row's id as the token. Runs
/// of other jobs, and claims of the same job that have not started, do not hold it back.
pub fn start_run_alone_starts_a_claim_when_no_run_of_the_job_is_going(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let (a, b) = (store.open(), store.open());
    claim_and_start(log_of(&b), "kaal:other-job", at(0), "node-b");
    claim(log_of(&b), "kaal:report", at(60), "node-b");
    claim(log_of(&a), "kaal:report", at(0), "node-a");
    let claimed = row(log_of(&a), "kaal:report", at(0));
    let answer = log_of(&a)
        .start_run_alone("kaal:report", at(0), "node-a")
        .unwrap();
    assert_eq!(
        answer,
        AloneStart::Started(claimed.id),
        "the token is the row's id"
    );
    let started = row(log_of(&b), "kaal:report", at(0));
    assert_eq!(
        (
            started.status,
            started.attempt,
            started.node_id.as_str(),
            started.finished_at
        ),
        (DispatchStatus::Dispatched, 1, "node-a", None)
    );
    assert!(started.started_at.is_some(), "{started:?}");
    assert_eq!(started.dispatched_at, started.started_at.unwrap());
    assert_eq!(
        row(log_of(&b), "kaal:report", at(60)).status,
        DispatchStatus::Claimed,
        "the other claim was touched"
    );
}

/// While another fire time of the job is running, `start_run_alone` answers `Busy` with
/// that run's fire time and node and writes nothing: the claim stays `claimed`, exactly as
/// it was. Once the run has finished, the same call starts the claim.
pub fn start_run_alone_is_busy_while_another_fire_time_of_the_job_runs(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let (a, b) = (store.open(), store.open());
    claim_and_start(log_of(&a), "kaal:report", at(0), "node-a");
    let going = row(log_of(&a), "kaal:report", at(0));
    claim(log_of(&b), "kaal:report", at(60), "node-b");
    let waiting = row(log_of(&b), "kaal:report", at(60));
    for _ in 0..2 {
        let answer = log_of(&b)
            .start_run_alone("kaal:report", at(60), "node-b")
            .unwrap();
        assert_eq!(
            answer,
            AloneStart::Busy {
                fire_time: at(0),
                node_id: "node-a".to_string()
            }
        );
        assert_eq!(
            row(log_of(&a), "kaal:report", at(60)),
            waiting,
            "a busy start wrote"
        );
        assert_eq!(
            row(log_of(&a), "kaal:report", at(0)),
            going,
            "the going run changed"
        );
    }
    finish(log_of(&a), "kaal:report", at(0), "node-a");
    let answer = log_of(&b)
        .start_run_alone("kaal:report", at(60), "node-b")
        .unwrap();
    assert_eq!(answer, AloneStart::Started(waiting.id));
    assert_eq!(
        row(log_of(&a), "kaal:report", at(60)).status,
        DispatchStatus::Dispatched
    );
}

/// Only a run that started and has not ended holds the job back: a `dispatched` row
/// written without the run lifecycle (the Ruby gem's, older kaal's: no `started_at`), runs
/// that succeeded or were abandoned, a skipped fire time and another node's unstarted
/// claim do not.
pub fn only_a_started_unfinished_run_holds_start_run_alone_back(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let adapter = store.open();
    let log = log_of(&adapter);
    let job = "kaal:job";
    log.log_dispatch(job, at(0), "ruby-node", DispatchStatus::Dispatched)
        .unwrap();
    assert_eq!(row(log, job, at(0)).started_at, None, "a legacy row");
    claim_and_start(log, job, at(60), "n");
    finish(log, job, at(60), "n");
    claim_and_start(log, job, at(120), "gone");
    assert!(log
        .record_run(
            job,
            at(120),
            "gone",
            DispatchStatus::Dispatched,
            DispatchStatus::Abandoned,
            &RunUpdate {
                attempt: 1,
                error: Some("node gone is gone".into()),
            },
        )
        .unwrap());
    claim(log, job, at(180), "n");
    assert!(log
        .record_run(
            job,
            at(180),
            "n",
            DispatchStatus::Claimed,
            DispatchStatus::Skipped,
            &RunUpdate {
                attempt: 0,
                error: Some("overlap".into()),
            },
        )
        .unwrap());
    claim(log, job, at(240), "other");
    claim(log, job, at(300), "n");
    let claimed = row(log, job, at(300));
    assert_eq!(
        log.start_run_alone(job, at(300), "n").unwrap(),
        AloneStart::Started(claimed.id)
    );
}

/// `start_run_alone` starts only a `claimed` row of the calling node: another node's claim,
/// a fire time without a row, and a run it already started all answer `NotClaimed` and
/// write nothing.
pub fn start_run_alone_starts_only_the_callers_claim(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let adapter = store.open();
    let log = log_of(&adapter);
    claim(log, "kaal:a", at(0), "owner");
    let claimed = row(log, "kaal:a", at(0));
    assert_eq!(
        log.start_run_alone("kaal:a", at(0), "intruder").unwrap(),
        AloneStart::NotClaimed
    );
    assert_eq!(row(log, "kaal:a", at(0)), claimed, "a refused start wrote");
    assert_eq!(
        log.start_run_alone("kaal:none", at(0), "owner").unwrap(),
        AloneStart::NotClaimed
    );
    assert_eq!(log.find_dispatch("kaal:none", at(0)).unwrap(), None);
    assert_eq!(
        log.start_run_alone("kaal:a", at(0), "owner").unwrap(),
        AloneStart::Started(claimed.id)
    );
    let started = row(log, "kaal:a", at(0));
    assert_eq!(
        log.start_run_alone("kaal:a", at(0), "owner").unwrap(),
        AloneStart::NotClaimed,
        "a run started twice"
    );
    assert_eq!(row(log, "kaal:a", at(0)), started, "a second start wrote");
}

/// How many nodes race in each round of the start race.
const RACERS: usize = 8;

/// How many rounds (each a new job) the start race runs.
const ROUNDS: usize = 12;

/// What one racer's `start_run_alone` answered (an error as its text).
type RaceAnswer = Result<AloneStart, String>;

/// How a racer calls `start_run_alone` on its node: `(node, job, fire time, node id)`.
type StartAlone = Arc<
    dyn Fn(&Arc<dyn Adapter>, &str, DateTime<Utc>, &str) -> Result<AloneStart, RegistryError>
        + Send
        + Sync,
>;

/// The start race: [`RACERS`] threads, each with its own node of the store (its own
/// connections), for [`ROUNDS`] rounds. In each round every racer commits its own fire time
/// of the round's job (`kaal:race-<round>`, racer `i` at minute `i`, node `racer-<i>`),
/// all wait for each other, and then all call `start_run_alone` at once, through
/// `start_alone`. Returns the answers, by round, by racer.
fn race_alone_starts(store: &TestStore<'_>, start_alone: StartAlone) -> Vec<Vec<RaceAnswer>> {
    let start = Arc::new(Barrier::new(RACERS));
    let racers: Vec<_> = (0..RACERS)
        .map(|racer| {
            let (node, start, start_alone) = (store.open(), start.clone(), start_alone.clone());
            thread::spawn(move || {
                let me = format!("racer-{racer}");
                let fire_time = racer_fire_time(racer);
                (0..ROUNDS)
                    .map(|round| {
                        let job = format!("kaal:race-{round}");
                        let committed = commit_with_retries(log_of(&node), &job, fire_time, &me);
                        // Every racer reaches the line every round, whatever happened, so
                        // nobody waits for a racer that gave up.
                        start.wait();
                        committed?;
                        start_alone(&node, &job, fire_time, &me).map_err(|err| err.to_string())
                    })
                    .collect::<Vec<RaceAnswer>>()
            })
        })
        .collect();
    let by_racer: Vec<Vec<RaceAnswer>> = racers
        .into_iter()
        .map(|racer| racer.join().expect("a racer panicked"))
        .collect();
    (0..ROUNDS)
        .map(|round| {
            by_racer
                .iter()
                .map(|answers| answers[round].clone())
                .collect()
        })
        .collect()
}

/// The fire time racer `racer` claims in every round: minute `racer`.
fn racer_fire_time(racer: usize) -> DateTime<Utc> {
    at(60 * i64::try_from(racer).unwrap())
}

/// Commits `node`'s claim of `(job, fire_time)`, retrying a store that reports contention
/// as an error (before the start line: the commits are not what is raced).
fn commit_with_retries(
    log: &dyn DispatchRegistry,
    job: &str,
    fire_time: DateTime<Utc>,
    node: &str,
) -> Result<(), String> {
    let pair = [(job.to_string(), fire_time)];
    let mut last = String::new();
    for _ in 0..5 {
        match log.commit_claims(&pair, node) {
            Ok(answer) if answer.outcomes == [Commit::Created] => return Ok(()),
            Ok(answer) => return Err(format!("{node} committed {job}: {:?}", answer.outcomes)),
            Err(err) => last = err.to_string(),
        }
    }
    Err(format!("{node} could not commit {job}: {last}"))
}

/// Eight nodes, each with its own connections, commit their own fire time of one job
/// and call `start_run_alone` at the same instant, for twelve rounds: in every round
/// exactly one run starts, every other racer is answered `Busy` naming that run, and the
/// job has exactly one running row.
pub fn simultaneous_alone_starts_of_one_job_start_one_run(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let answers = race_alone_starts(
        &store,
        Arc::new(|node, job, fire_time, me| log_of(node).start_run_alone(job, fire_time, me)),
    );
    let observer = store.open();
    for (round, answers) in answers.iter().enumerate() {
        let job = format!("kaal:race-{round}");
        let started: Vec<(usize, i64)> = answers
            .iter()
            .enumerate()
            .filter_map(|(racer, answer)| match answer {
                Ok(AloneStart::Started(token)) => Some((racer, *token)),
                _ => None,
            })
            .collect();
        assert_eq!(
            started.len(),
            1,
            "round {round}: {} runs of {job} started: {answers:?}",
            started.len()
        );
        let (winner, token) = started[0];
        let busy = Ok(AloneStart::Busy {
            fire_time: racer_fire_time(winner),
            node_id: format!("racer-{winner}"),
        });
        for (racer, answer) in answers.iter().enumerate() {
            if racer != winner {
                assert_eq!(answer, &busy, "round {round}, racer {racer}");
            }
        }
        let running: Vec<(i64, DateTime<Utc>)> = log_of(&observer)
            .find_by_key(&job)
            .unwrap()
            .into_iter()
            .filter(|row| row.status == DispatchStatus::Dispatched)
            .map(|row| (row.id, row.fire_time))
            .collect();
        assert_eq!(running, [(token, racer_fire_time(winner))], "round {round}");
    }
}

/// The negative control of [`simultaneous_alone_starts_of_one_job_start_one_run`]: the same
/// race through a registry whose `start_run_alone` is the trait's default — read the job's
/// rows, then start — with the interleaving that default allows forced (every racer has
/// read before any starts). Every racer starts its run, in every round: the race catches a
/// store that checks and then starts in two steps.
pub fn the_race_catches_a_start_run_alone_that_checks_then_starts(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let checked = Arc::new(Barrier::new(RACERS));
    let answers = race_alone_starts(
        &store,
        Arc::new(move |node, job, fire_time, me| {
            let log = CheckThenStart {
                inner: log_of(node),
                checked: &checked,
            };
            log.start_run_alone(job, fire_time, me)
        }),
    );
    for (round, answers) in answers.iter().enumerate() {
        let started = answers
            .iter()
            .filter(|answer| matches!(answer, Ok(AloneStart::Started(_))))
            .count();
        assert_eq!(
            started, RACERS,
            "round {round}: the check-then-start registry started {started} of {RACERS}: \
             {answers:?}"
        );
    }
}

/// A node's registry with the trait's default `start_run_alone` (the store's own is not
/// used) and the default's check forced to end at the same time on every racer: its read of
/// the job's rows ([`find_by_key`](DispatchRegistry::find_by_key)) waits, after reading,
/// until every racer has read. Everything else is the store's.
struct CheckThenStart<'a> {
    inner: &'a dyn DispatchRegistry,
    checked: &'a Barrier,
}

impl DispatchRegistry for CheckThenStart<'_> {
    fn find_by_key(&self, key: &str) -> Result<Vec<DispatchRecord>, RegistryError> {
        let rows = self.inner.find_by_key(key);
        self.checked.wait();
        rows
    }

    fn start_run(
        &self,
        key: &str,
        fire_time: DateTime<Utc>,
        node_id: &str,
    ) -> Result<Option<i64>, RegistryError> {
        self.inner.start_run(key, fire_time, node_id)
    }

    fn log_dispatch(
        &self,
        key: &str,
        fire_time: DateTime<Utc>,
        node_id: &str,
        status: DispatchStatus,
    ) -> Result<(), RegistryError> {
        self.inner.log_dispatch(key, fire_time, node_id, status)
    }

    fn find_dispatch(
        &self,
        key: &str,
        fire_time: DateTime<Utc>,
    ) -> Result<Option<DispatchRecord>, RegistryError> {
        self.inner.find_dispatch(key, fire_time)
    }

    fn find_by_node(&self, node_id: &str) -> Result<Vec<DispatchRecord>, RegistryError> {
        self.inner.find_by_node(node_id)
    }

    fn find_by_status(&self, status: DispatchStatus) -> Result<Vec<DispatchRecord>, RegistryError> {
        self.inner.find_by_status(status)
    }

    fn cleanup(&self, older_than: DateTime<Utc>) -> Result<usize, RegistryError> {
        self.inner.cleanup(older_than)
    }

    fn commit_claims(
        &self,
        pairs: &[(String, DateTime<Utc>)],
        node_id: &str,
    ) -> Result<Commits, RegistryError> {
        self.inner.commit_claims(pairs, node_id)
    }

    fn transition(
        &self,
        key: &str,
        fire_time: DateTime<Utc>,
        node_id: &str,
        from: DispatchStatus,
        to: DispatchStatus,
    ) -> Result<bool, RegistryError> {
        self.inner.transition(key, fire_time, node_id, from, to)
    }

    fn reassign_claim(
        &self,
        key: &str,
        fire_time: DateTime<Utc>,
        from_node: &str,
        to_node: &str,
    ) -> Result<bool, RegistryError> {
        self.inner
            .reassign_claim(key, fire_time, from_node, to_node)
    }

    fn unstarted_claims(&self, since: DateTime<Utc>) -> Result<Vec<DispatchRecord>, RegistryError> {
        self.inner.unstarted_claims(since)
    }
}

/// A lost node's run — here the newest row of the log — is replaced by a `claimed` row of
/// the rerunning node: a larger id (fencing token), `attempt` 0, no `started_at` or
/// `finished_at`, the note as its `error` (clipped like any error text). The lost node can
/// no longer record or start it; the rerunning node starts it as any claim; later claims of
/// the job carry larger tokens still.
pub fn a_lost_run_is_rerun_as_a_new_claim_with_a_larger_token(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let (lost, rescuer) = (store.open(), store.open());
    let job = "kaal:long-job";
    let lost_token = claim_and_start(log_of(&lost), job, at(0), "node-lost");
    let note = "rerun: node node-lost was lost while running it";
    assert!(log_of(&rescuer)
        .rerun_lost_run(job, at(0), "node-lost", "node-new", note)
        .unwrap());
    let rerun = row(log_of(&rescuer), job, at(0));
    assert!(
        rerun.id > lost_token,
        "token {} after {lost_token}",
        rerun.id
    );
    assert_eq!(
        (
            rerun.status,
            rerun.node_id.as_str(),
            rerun.attempt,
            rerun.started_at,
            rerun.finished_at,
            rerun.error.as_deref()
        ),
        (
            DispatchStatus::Claimed,
            "node-new",
            0,
            None,
            None,
            Some(note)
        )
    );
    assert_eq!(
        log_of(&lost).find_by_key(job).unwrap(),
        std::slice::from_ref(&rerun)
    );
    // The lost node wakes up: too late for everything.
    assert!(!log_of(&lost)
        .record_run(
            job,
            at(0),
            "node-lost",
            DispatchStatus::Dispatched,
            DispatchStatus::Succeeded,
            &RunUpdate {
                attempt: 1,
                error: None,
            },
        )
        .unwrap());
    assert_eq!(
        log_of(&lost).start_run(job, at(0), "node-lost").unwrap(),
        None
    );
    assert!(!log_of(&lost)
        .rerun_lost_run(job, at(0), "node-lost", "node-lost", note)
        .unwrap());
    assert_eq!(
        row(log_of(&lost), job, at(0)),
        rerun,
        "the rerun row changed"
    );
    // The rerunning node starts it as any claim.
    assert_eq!(
        log_of(&rescuer).start_run(job, at(0), "node-new").unwrap(),
        Some(rerun.id)
    );
    let started = row(log_of(&rescuer), job, at(0));
    assert_eq!(
        (started.status, started.node_id.as_str(), started.attempt),
        (DispatchStatus::Dispatched, "node-new", 1)
    );
    assert!(started.started_at.is_some());
    let later = claim_and_start(log_of(&lost), job, at(60), "node-lost");
    assert!(later > rerun.id, "token {later} after {}", rerun.id);
    // A long note is clipped.
    let long: String = "lost 🦀 '\"\\\n".chars().cycle().take(5000).collect();
    claim_and_start(log_of(&lost), "kaal:other", at(0), "node-lost");
    assert!(log_of(&rescuer)
        .rerun_lost_run("kaal:other", at(0), "node-lost", "node-new", &long)
        .unwrap());
    assert_eq!(
        row(log_of(&rescuer), "kaal:other", at(0)).error,
        Some(clip_error(&long))
    );
}

/// `rerun_lost_run` replaces a row only while it is still `dispatched` by the lost node: a
/// run that finished, a claim the lost node never started, another node's run and a fire
/// time without a row are answered `false`, and nothing is written.
pub fn a_rerun_replaces_only_a_run_still_going_on_the_lost_node(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let adapter = store.open();
    let log = log_of(&adapter);
    let job = "kaal:job";
    claim_and_start(log, job, at(0), "node-lost");
    finish(log, job, at(0), "node-lost");
    claim(log, job, at(60), "node-lost");
    claim_and_start(log, job, at(120), "node-other");
    let before = log.find_by_key(job).unwrap();
    for fire_time in [at(0), at(60), at(120), at(180)] {
        assert!(
            !log.rerun_lost_run(job, fire_time, "node-lost", "node-new", "rerun")
                .unwrap(),
            "{fire_time} was rerun"
        );
    }
    assert_eq!(
        log.find_by_key(job).unwrap(),
        before,
        "a refused rerun wrote"
    );
}

/// Eight nodes rerun the same lost run at the same instant: one replaces it, the
/// others are answered `false`, and the fire time has one row, the winner's claim.
pub fn simultaneous_reruns_of_one_lost_run_replace_it_once(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let lost = store.open();
    let lost_token = claim_and_start(log_of(&lost), "kaal:job", at(0), "node-lost");
    let start = Arc::new(Barrier::new(RACERS));
    let racers: Vec<_> = (0..RACERS)
        .map(|racer| {
            let (node, start) = (store.open(), start.clone());
            thread::spawn(move || {
                let me = format!("rescuer-{racer}");
                start.wait();
                // A store may report contention (a deadlock) as an error; the transaction
                // then wrote nothing, and a retry decides.
                let mut last = None;
                for _ in 0..5 {
                    match log_of(&node).rerun_lost_run("kaal:job", at(0), "node-lost", &me, "rerun")
                    {
                        Ok(replaced) => return replaced,
                        Err(err) => last = Some(err),
                    }
                }
                panic!("{me} could not rerun: {last:?}");
            })
        })
        .collect();
    let replaced: Vec<bool> = racers
        .into_iter()
        .map(|racer| racer.join().expect("a rescuer panicked"))
        .collect();
    let winners: Vec<usize> = (0..RACERS).filter(|&racer| replaced[racer]).collect();
    assert_eq!(
        winners.len(),
        1,
        "reruns that replaced the run: {winners:?}"
    );
    let rows = log_of(&lost).find_by_key("kaal:job").unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0].status, rows[0].node_id.clone()),
        (DispatchStatus::Claimed, format!("rescuer-{}", winners[0]))
    );
    assert!(rows[0].id > lost_token);
}
