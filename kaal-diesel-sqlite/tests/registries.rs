//! The dispatch log and the definition store on SQLite: stored formats, rows written by the
//! Ruby gem, and what a wrong stored value reports.

mod common;

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::{exec, text, TempDb};
use kaal_core::{DefinitionRegistry, DispatchRegistry, DispatchStatus, NewDefinition};

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_767_225_600 + seconds, 0).unwrap()
}

#[test]
fn fire_times_are_stored_as_activerecord_writes_them() {
    let db = TempDb::migrated();
    let store = db.open();
    store
        .log_dispatch("job", at(0), "n", DispatchStatus::Dispatched)
        .unwrap();
    store
        .log_dispatch(
            "job",
            at(60) + Duration::microseconds(1500),
            "n",
            DispatchStatus::Failed,
        )
        .unwrap();
    assert_eq!(
        text(&store, "SELECT group_concat(fire_time, '|') AS value FROM (SELECT fire_time FROM kaal_dispatches ORDER BY fire_time)"),
        "2026-01-01 00:00:00|2026-01-01 00:01:00.001500"
    );
    assert_eq!(
        text(&store, "SELECT status AS value FROM kaal_dispatches WHERE fire_time = '2026-01-01 00:01:00.001500'"),
        "failed"
    );
}

#[test]
fn dispatches_written_by_a_ruby_node_are_seen_and_upserted() {
    let db = TempDb::migrated();
    let store = db.open();
    exec(
        &store,
        r#"INSERT INTO kaal_dispatches ("key", fire_time, dispatched_at, node_id, status)
           VALUES ('report', '2026-01-01 00:02:00', '2026-01-01 00:02:00.250000', 'ruby-1', 'dispatched')"#,
    );
    assert!(store.dispatched("report", at(120)).unwrap());
    assert_eq!(
        store
            .dispatched_many(&[("report".into(), at(60)), ("report".into(), at(120))])
            .unwrap(),
        [false, true]
    );
    let record = store.find_dispatch("report", at(120)).unwrap().unwrap();
    assert_eq!(record.node_id, "ruby-1");
    assert_eq!(record.dispatched_at, at(120) + Duration::milliseconds(250));
    store
        .log_dispatches(
            &[("report".into(), at(120))],
            "rust-1",
            DispatchStatus::Failed,
        )
        .unwrap();
    assert_eq!(
        text(&store, "SELECT count(*) AS value FROM kaal_dispatches"),
        "1"
    );
    assert_eq!(
        store
            .find_dispatch("report", at(120))
            .unwrap()
            .unwrap()
            .node_id,
        "rust-1"
    );
}

#[test]
fn a_stored_status_kaal_does_not_know_is_a_registry_error() {
    let db = TempDb::migrated();
    let store = db.open();
    store
        .log_dispatch("job", at(0), "n", DispatchStatus::Dispatched)
        .unwrap();
    exec(&store, "UPDATE kaal_dispatches SET status = 'queued'");
    let err = store.find_by_key("job").unwrap_err().to_string();
    assert!(err.starts_with("SQLite find_by_key(job) failed: "), "{err}");
    assert!(err.contains("queued"), "{err}");
}

#[test]
fn metadata_that_is_not_a_json_object_is_a_registry_error() {
    let db = TempDb::migrated();
    let store = db.open();
    store
        .upsert_definition("kaal", NewDefinition::new("job", "* * * * *"))
        .unwrap();
    exec(&store, "UPDATE kaal_definitions SET metadata = '[1, 2]'");
    let err = store
        .find_definition("kaal", "job")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("SQLite find_definition(kaal:job) failed: "),
        "{err}"
    );
    assert!(err.contains("not a JSON object"), "{err}");
}

#[test]
fn definitions_are_stored_as_the_ruby_gem_reads_them() {
    let db = TempDb::migrated();
    let store = db.open();
    let mut new = NewDefinition::new("job", "*/5 * * * *");
    new.metadata = serde_json::json!({"command": "echo hi"})
        .as_object()
        .unwrap()
        .clone();
    new.enabled = false;
    let stored = store.upsert_definition("kaal", new).unwrap();
    assert_eq!(
        text(
            &store,
            "SELECT enabled || '|' || source || '|' || metadata AS value FROM kaal_definitions"
        ),
        r#"0|code|{"command":"echo hi"}"#
    );
    let disabled_at = text(&store, "SELECT disabled_at AS value FROM kaal_definitions");
    assert_eq!(
        disabled_at,
        kaal_diesel::DbTime::new(stored.disabled_at.unwrap()).to_db_text()
    );
}

#[test]
fn concurrent_upserts_of_one_key_keep_one_row_and_the_first_created_at() {
    let db = TempDb::migrated();
    let locator = db.locator().to_string();
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let locator = locator.clone();
            std::thread::spawn(move || {
                let store = common::open(&locator);
                store
                    .upsert_definition("kaal", NewDefinition::new("shared", format!("{i} * * * *")))
                    .expect("upsert failed")
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let store = db.open();
    assert_eq!(
        text(&store, "SELECT count(*) AS value FROM kaal_definitions"),
        "1"
    );
    let first_created = results.iter().map(|d| d.created_at).min().unwrap();
    assert!(results.iter().all(|d| d.created_at == first_created));
    assert_eq!(
        store
            .find_definition("kaal", "shared")
            .unwrap()
            .unwrap()
            .created_at,
        first_created
    );
}
