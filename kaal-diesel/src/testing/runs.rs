//! The run lifecycle's SQL on every backend, below what kaal-testkit can see through the
//! registry: every timestamp of one write is one instant of the database's clock, read
//! inside the statement (`updated_at` included), or of the store's own clock when it was
//! given one. One function per behaviour; [`run_suite!`](crate::run_suite) runs them.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use kaal_core::{DispatchRegistry, DispatchStatus, NodeRegistry, OffsetClock, RunUpdate};

use super::{SqlBackend, TempDb};

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_767_225_600 + seconds, 0).unwrap()
}

/// Whether the row of `key` has `updated_at = dispatched_at` and, when `started`, also
/// `started_at = dispatched_at` (compared by the database, in the stored form).
fn stamped_alike<B: SqlBackend>(db: &TempDb<B>, key: &str, column: &str) -> bool {
    let quoted = db.backend().quote("key");
    db.text(&format!(
        "SELECT CASE WHEN updated_at = dispatched_at AND {column} = dispatched_at \
         THEN 'same' ELSE 'differ' END AS value FROM kaal_dispatches WHERE {quoted} = '{key}'"
    )) == "same"
}

/// `start_run` and `record_run` stamp `started_at` / `finished_at`, `dispatched_at` and
/// `updated_at` with one instant of the database's clock, taken while the statement ran.
pub fn run_times_are_one_instant_of_the_database_clock<B: SqlBackend>(backend: &B) {
    let db = TempDb::migrated_on(backend);
    let store = db.open();
    store
        .commit_claims(&[("kaal:job".to_string(), at(0))], "n")
        .unwrap();
    let before = store.database_now().unwrap();
    store.start_run("kaal:job", at(0), "n").unwrap().unwrap();
    let after = store.database_now().unwrap();
    let started = store.find_dispatch("kaal:job", at(0)).unwrap().unwrap();
    let started_at = started.started_at.unwrap();
    assert!(
        before <= started_at && started_at <= after,
        "started at {started_at}, not between the database's {before} and {after}"
    );
    assert_eq!(started.dispatched_at, started_at);
    assert!(
        stamped_alike(&db, "kaal:job", "started_at"),
        "started_at, dispatched_at and updated_at differ"
    );
    let update = RunUpdate {
        attempt: 1,
        error: None,
    };
    let before = store.database_now().unwrap();
    assert!(store
        .record_run(
            "kaal:job",
            at(0),
            "n",
            DispatchStatus::Dispatched,
            DispatchStatus::Succeeded,
            &update,
        )
        .unwrap());
    let after = store.database_now().unwrap();
    let done = store.find_dispatch("kaal:job", at(0)).unwrap().unwrap();
    let finished_at = done.finished_at.unwrap();
    assert!(
        before <= finished_at && finished_at <= after,
        "finished at {finished_at}, not between the database's {before} and {after}"
    );
    assert_eq!(done.dispatched_at, finished_at);
    assert_eq!(done.started_at, Some(started_at), "the start was rewritten");
    assert!(
        stamped_alike(&db, "kaal:job", "finished_at"),
        "finished_at, dispatched_at and updated_at differ"
    );
}

/// A lost run's replacement ([`rerun_lost_run`](kaal_core::DispatchRegistry::rerun_lost_run))
/// is a new row: `dispatched_at`, `created_at` and `updated_at` one instant of the
/// database's clock, taken while it was written; a larger id than the lost run's and than
/// every id before it, even when the lost run's row was the newest (SQLite would otherwise
/// give its id again).
pub fn a_rerun_row_is_new_and_stamped_with_one_instant_of_the_database_clock<B: SqlBackend>(
    backend: &B,
) {
    let db = TempDb::migrated_on(backend);
    let store = db.open();
    store
        .commit_claims(&[("kaal:job".to_string(), at(0))], "lost")
        .unwrap();
    let lost = store.start_run("kaal:job", at(0), "lost").unwrap().unwrap();
    let before = store.database_now().unwrap();
    assert!(store
        .rerun_lost_run("kaal:job", at(0), "lost", "rescuer", "rerun")
        .unwrap());
    let after = store.database_now().unwrap();
    let rerun = store.find_dispatch("kaal:job", at(0)).unwrap().unwrap();
    assert!(rerun.id > lost, "id {} after {lost}", rerun.id);
    assert!(
        before <= rerun.dispatched_at && rerun.dispatched_at <= after,
        "stamped {}, not between the database's {before} and {after}",
        rerun.dispatched_at
    );
    assert!(
        stamped_alike(&db, "kaal:job", "created_at"),
        "created_at, dispatched_at and updated_at differ"
    );
    store
        .commit_claims(&[("kaal:job".to_string(), at(60))], "n")
        .unwrap();
    let next = store.start_run("kaal:job", at(60), "n").unwrap().unwrap();
    assert!(next > rerun.id, "id {next} after {}", rerun.id);
}

/// A store given a clock ([`with_clock`](crate::DieselStore::with_clock), simulated time)
/// stamps runs with it: here a day ahead of the database's.
pub fn a_store_with_its_own_clock_stamps_runs_with_it<B: SqlBackend>(backend: &B) {
    let db = TempDb::migrated_on(backend);
    let offset = TimeDelta::days(1);
    let store = db.open().with_clock(Arc::new(OffsetClock { offset }));
    store
        .commit_claims(&[("kaal:job".to_string(), at(0))], "n")
        .unwrap();
    let before = Utc::now() + offset;
    store.start_run("kaal:job", at(0), "n").unwrap().unwrap();
    assert!(store
        .record_run(
            "kaal:job",
            at(0),
            "n",
            DispatchStatus::Dispatched,
            DispatchStatus::Failed,
            &RunUpdate {
                attempt: 1,
                error: Some("boom".into()),
            },
        )
        .unwrap());
    let after = Utc::now() + offset;
    let run = store.find_dispatch("kaal:job", at(0)).unwrap().unwrap();
    // The stored precision is a microsecond (SQLite keeps what it is given).
    let window = (before - TimeDelta::milliseconds(1))..=(after + TimeDelta::milliseconds(1));
    for (what, time) in [
        ("started_at", run.started_at.unwrap()),
        ("finished_at", run.finished_at.unwrap()),
        ("dispatched_at", run.dispatched_at),
    ] {
        assert!(
            window.contains(&time),
            "{what} {time} is not the store's clock ({before} .. {after})"
        );
    }
}
