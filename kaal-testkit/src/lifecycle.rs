//! The run lifecycle's store behaviours: a run starts once, by its owner, and gets its
//! fencing token (the row's id, growing with every later claim); its outcome is recorded by
//! compare-and-set, with the store's clock and the error text as given (clipped); a lost
//! node's run is recorded as abandoned by another; only started, unfinished runs are listed
//! as running; every status is stored and read back as itself.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use kaal_core::{
    clip_error, Adapter, DispatchRecord, DispatchRegistry, DispatchStatus, RunUpdate,
    MAX_ERROR_CHARS,
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
    assert_eq!(
        answer.outcomes,
        [kaal_core::Commit::Created],
        "{key}@{fire_time}"
    );
}

/// Commits `(key, fire_time)` as `node`'s claim and starts it; returns its token.
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

fn update(attempt: u32, error: Option<&str>) -> RunUpdate {
    RunUpdate {
        attempt,
        error: error.map(str::to_string),
    }
}

/// `start_run` answers the id of the row it started — the run's fencing token — and a
/// later claim of the same job carries a larger one, whichever node commits it.
pub fn start_run_answers_the_row_id_and_later_claims_carry_larger_tokens(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let (a, b) = (store.open(), store.open());
    let first = claim_and_start(log_of(&a), "kaal:report", at(0), "node-a");
    let started = row(log_of(&b), "kaal:report", at(0));
    assert_eq!(started.id, first, "the token is the row's id");
    assert_eq!(
        (started.status, started.attempt, started.node_id.as_str()),
        (DispatchStatus::Dispatched, 1, "node-a")
    );
    assert!(started.started_at.is_some(), "{started:?}");
    assert_eq!(started.finished_at, None);
    assert_eq!(started.error, None);
    // Another job's claim in between does not matter.
    claim(log_of(&b), "kaal:other", at(60), "node-b");
    let second = claim_and_start(log_of(&a), "kaal:report", at(60), "node-a");
    assert!(second > first, "token {second} after {first}");
    // A claim committed and started by another node.
    let third = claim_and_start(log_of(&b), "kaal:report", at(120), "node-b");
    assert!(third > second, "token {third} after {second}");
    assert_eq!(row(log_of(&a), "kaal:report", at(120)).id, third);
    // The tokens are listed with the rows.
    let tokens: Vec<i64> = log_of(&a)
        .find_by_key("kaal:report")
        .unwrap()
        .iter()
        .map(|record| record.id)
        .collect();
    assert_eq!(tokens, [third, second, first]);
}

/// Only the node that owns a `claimed` row starts it, once: another node, a second start,
/// a row already `dispatched` without the lifecycle, and a fire time with no row all answer
/// `None` and change nothing.
pub fn a_run_starts_only_by_its_owner_and_only_from_claimed(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let adapter = store.open();
    let log = log_of(&adapter);
    claim(log, "kaal:a", at(0), "owner");
    let claimed = row(log, "kaal:a", at(0));
    assert_eq!(log.start_run("kaal:a", at(0), "intruder").unwrap(), None);
    assert_eq!(row(log, "kaal:a", at(0)), claimed, "a refused start wrote");
    let token = log.start_run("kaal:a", at(0), "owner").unwrap();
    assert_eq!(token, Some(claimed.id));
    let started = row(log, "kaal:a", at(0));
    assert_eq!(log.start_run("kaal:a", at(0), "owner").unwrap(), None);
    assert_eq!(row(log, "kaal:a", at(0)), started, "a second start wrote");
    // A row moved to `dispatched` by the older protocol (`transition`) is not started again.
    claim(log, "kaal:b", at(0), "owner");
    assert!(log
        .transition(
            "kaal:b",
            at(0),
            "owner",
            DispatchStatus::Claimed,
            DispatchStatus::Dispatched
        )
        .unwrap());
    assert_eq!(log.start_run("kaal:b", at(0), "owner").unwrap(), None);
    assert_eq!(log.start_run("kaal:none", at(0), "owner").unwrap(), None);
    assert_eq!(log.find_dispatch("kaal:none", at(0)).unwrap(), None);
}

/// A run recorded `succeeded` is finished no earlier than it started; a failure's error
/// text is stored as given — quotes, backslashes, newlines, placeholders, SQL, any Unicode
/// — and a text longer than [`MAX_ERROR_CHARS`] is clipped to it, ending in `…`.
pub fn a_finished_run_records_its_outcome_and_error_text(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let (a, b) = (store.open(), store.open());
    let log = log_of(&a);
    let token = claim_and_start(log, "kaal:ok", at(0), "n");
    assert!(log
        .record_run(
            "kaal:ok",
            at(0),
            "n",
            DispatchStatus::Dispatched,
            DispatchStatus::Succeeded,
            &update(1, None),
        )
        .unwrap());
    let done = row(log_of(&b), "kaal:ok", at(0));
    assert_eq!(
        (done.id, done.status, done.attempt, done.error.as_deref()),
        (token, DispatchStatus::Succeeded, 1, None)
    );
    let (started, finished) = (done.started_at.unwrap(), done.finished_at.unwrap());
    assert!(finished >= started, "finished {finished} before {started}");
    assert_eq!(done.duration(), Some(finished - started));
    assert!(done.dispatched_at >= started, "{done:?}");

    let hostile = "it's \"quoted\" \\ back\\slash\nsecond line\r\n\ttab; '); DROP TABLE \
                   kaal_dispatches; -- ? $1 %s :name \u{202e}rtl\u{202c} ünïcødé 漢字 🦀 \
                   e\u{301} \u{feff}zero width\u{200b} end  ";
    claim_and_start(log, "kaal:hostile", at(0), "n");
    assert!(log
        .record_run(
            "kaal:hostile",
            at(0),
            "n",
            DispatchStatus::Dispatched,
            DispatchStatus::Failed,
            &update(1, Some(hostile)),
        )
        .unwrap());
    let failed = row(log_of(&b), "kaal:hostile", at(0));
    assert_eq!(failed.status, DispatchStatus::Failed);
    assert_eq!(failed.error.as_deref(), Some(hostile), "the text changed");
    assert!(failed.finished_at.is_some());

    let long: String = "日本語 and ascii, '\"\\\n 🦀 "
        .chars()
        .cycle()
        .take(5000)
        .collect();
    claim_and_start(log, "kaal:long", at(0), "n");
    assert!(log
        .record_run(
            "kaal:long",
            at(0),
            "n",
            DispatchStatus::Dispatched,
            DispatchStatus::TimedOut,
            &update(1, Some(&long)),
        )
        .unwrap());
    let stored = row(log_of(&b), "kaal:long", at(0)).error.unwrap();
    assert_eq!(stored.chars().count(), MAX_ERROR_CHARS);
    assert!(stored.ends_with('…'), "{stored}");
    assert_eq!(stored, clip_error(&long));
}

/// `record_run` is a compare-and-set: from a status the row is not in, or by a node that
/// does not own it, it answers `false` and the row stays exactly as it was.
pub fn a_run_record_from_the_wrong_status_or_node_writes_nothing(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let adapter = store.open();
    let log = log_of(&adapter);
    claim_and_start(log, "kaal:job", at(0), "owner");
    let before = row(log, "kaal:job", at(0));
    let attempts = [
        (
            "intruder",
            DispatchStatus::Dispatched,
            DispatchStatus::Failed,
        ),
        ("owner", DispatchStatus::Claimed, DispatchStatus::Skipped),
        ("owner", DispatchStatus::Succeeded, DispatchStatus::Failed),
        ("owner", DispatchStatus::Failed, DispatchStatus::Succeeded),
    ];
    for (node, from, to) in attempts {
        let moved = log
            .record_run(
                "kaal:job",
                at(0),
                node,
                from,
                to,
                &update(7, Some("must not be written")),
            )
            .unwrap();
        assert!(!moved, "{node} moved the row {from} -> {to}");
        assert_eq!(
            row(log, "kaal:job", at(0)),
            before,
            "{node}: {from} -> {to}"
        );
    }
    assert!(!log
        .record_run(
            "kaal:none",
            at(0),
            "owner",
            DispatchStatus::Dispatched,
            DispatchStatus::Succeeded,
            &update(1, None),
        )
        .unwrap());
    assert_eq!(log.find_dispatch("kaal:none", at(0)).unwrap(), None);
}

/// A failed attempt that will be retried is recorded `dispatched → dispatched`: the attempt
/// and error are stored, the run stays open (no `finished_at`, still running); the next
/// attempt's success clears the error and finishes it.
pub fn a_retried_attempt_keeps_the_run_open(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let adapter = store.open();
    let log = log_of(&adapter);
    let token = claim_and_start(log, "kaal:flaky", at(0), "n");
    assert!(log
        .record_run(
            "kaal:flaky",
            at(0),
            "n",
            DispatchStatus::Dispatched,
            DispatchStatus::Dispatched,
            &update(2, Some("attempt 1: connection refused")),
        )
        .unwrap());
    let retrying = row(log, "kaal:flaky", at(0));
    assert_eq!(
        (
            retrying.status,
            retrying.attempt,
            retrying.error.as_deref(),
            retrying.finished_at
        ),
        (
            DispatchStatus::Dispatched,
            2,
            Some("attempt 1: connection refused"),
            None
        )
    );
    let running: Vec<i64> = log
        .running_runs(at(0))
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(running, [token], "a retried run is still running");
    assert!(log
        .record_run(
            "kaal:flaky",
            at(0),
            "n",
            DispatchStatus::Dispatched,
            DispatchStatus::Succeeded,
            &update(2, None),
        )
        .unwrap());
    let done = row(log, "kaal:flaky", at(0));
    assert_eq!(
        (done.status, done.attempt, done.error),
        (DispatchStatus::Succeeded, 2, None)
    );
    assert!(done.finished_at >= done.started_at && done.finished_at.is_some());
    assert!(log.running_runs(at(0)).unwrap().is_empty());
}

/// A fire time taken and deliberately not run is recorded `claimed → skipped` with its
/// reason: finished, never started, no longer a claim to run, and still taken.
pub fn a_skipped_fire_time_records_its_reason(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let adapter = store.open();
    let log = log_of(&adapter);
    claim(log, "kaal:overlapping", at(0), "n");
    assert!(log
        .record_run(
            "kaal:overlapping",
            at(0),
            "n",
            DispatchStatus::Claimed,
            DispatchStatus::Skipped,
            &update(0, Some("overlap")),
        )
        .unwrap());
    let skipped = row(log, "kaal:overlapping", at(0));
    assert_eq!(
        (
            skipped.status,
            skipped.attempt,
            skipped.error.as_deref(),
            skipped.started_at
        ),
        (DispatchStatus::Skipped, 0, Some("overlap"), None)
    );
    assert!(skipped.finished_at.is_some());
    assert_eq!(skipped.duration(), None);
    assert!(log.dispatched("kaal:overlapping", at(0)).unwrap());
    assert!(log.unstarted_claims(at(-60)).unwrap().is_empty());
    assert!(log.running_runs(at(-60)).unwrap().is_empty());
    assert_eq!(log.start_run("kaal:overlapping", at(0), "n").unwrap(), None);
}

/// Another node records a lost node's run `abandoned`, naming the dead owner: the row keeps
/// its owner and token, is finished, and the dead node's own late record is refused.
pub fn a_dead_nodes_run_is_abandoned_by_another_node(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let (dead, survivor) = (store.open(), store.open());
    let token = claim_and_start(log_of(&dead), "kaal:long-job", at(0), "node-dead");
    assert!(log_of(&survivor)
        .record_run(
            "kaal:long-job",
            at(0),
            "node-dead",
            DispatchStatus::Dispatched,
            DispatchStatus::Abandoned,
            &update(1, Some("node node-dead is gone")),
        )
        .unwrap());
    let abandoned = row(log_of(&survivor), "kaal:long-job", at(0));
    assert_eq!(
        (
            abandoned.id,
            abandoned.status,
            abandoned.node_id.as_str(),
            abandoned.error.as_deref()
        ),
        (
            token,
            DispatchStatus::Abandoned,
            "node-dead",
            Some("node node-dead is gone")
        )
    );
    assert!(abandoned.finished_at.is_some());
    // The dead node comes back and reports success: too late, nothing changes.
    assert!(!log_of(&dead)
        .record_run(
            "kaal:long-job",
            at(0),
            "node-dead",
            DispatchStatus::Dispatched,
            DispatchStatus::Succeeded,
            &update(1, None),
        )
        .unwrap());
    assert_eq!(row(log_of(&dead), "kaal:long-job", at(0)), abandoned);
}

/// `running_runs` lists the started, unfinished runs at or after an instant, oldest first —
/// not claims never started, not finished runs, and not `dispatched` rows written without
/// the lifecycle (the Ruby gem's, older kaal's: no `started_at`).
pub fn running_runs_are_the_started_unfinished_ones_oldest_first(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let adapter = store.open();
    let log = log_of(&adapter);
    let x0 = claim_and_start(log, "kaal:x", at(0), "n");
    let x60 = claim_and_start(log, "kaal:x", at(60), "m");
    let y120 = claim_and_start(log, "kaal:y", at(120), "n");
    claim(log, "kaal:x", at(180), "n");
    log.log_dispatch(
        "kaal:legacy",
        at(60),
        "ruby-node",
        DispatchStatus::Dispatched,
    )
    .unwrap();
    claim_and_start(log, "kaal:z", at(60), "n");
    assert!(log
        .record_run(
            "kaal:z",
            at(60),
            "n",
            DispatchStatus::Dispatched,
            DispatchStatus::Succeeded,
            &update(1, None),
        )
        .unwrap());
    let ids = |since| -> Vec<i64> {
        log.running_runs(since)
            .unwrap()
            .iter()
            .map(|record| {
                assert_eq!(record.status, DispatchStatus::Dispatched, "{record:?}");
                assert!(record.started_at.is_some(), "{record:?}");
                record.id
            })
            .collect()
    };
    assert_eq!(ids(at(0)), [x0, x60, y120]);
    assert_eq!(ids(at(60)), [x60, y120]);
    assert_eq!(ids(at(121)), Vec::<i64>::new());
    let legacy = row(log, "kaal:legacy", at(60));
    assert_eq!(
        (
            legacy.started_at,
            legacy.finished_at,
            legacy.attempt,
            legacy.error
        ),
        (None, None, 0, None),
        "a row written without the lifecycle"
    );
}

/// Every status is stored and read back as itself, by `find_dispatch` and
/// `find_by_status`.
pub fn every_status_round_trips_through_the_store(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let adapter = store.open();
    let log = log_of(&adapter);
    for status in DispatchStatus::ALL {
        let key = format!("kaal:{status}");
        log.log_dispatch(&key, at(0), "n", status).unwrap();
        assert_eq!(row(log, &key, at(0)).status, status);
    }
    for status in DispatchStatus::ALL {
        let listed: Vec<String> = log
            .find_by_status(status)
            .unwrap()
            .into_iter()
            .map(|record| record.key)
            .collect();
        assert_eq!(listed, [format!("kaal:{status}")], "{status}");
    }
}
