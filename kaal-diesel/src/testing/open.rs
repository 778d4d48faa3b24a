//! Opening and migrating on every SQL backend: tables of the wrong shape are refused and
//! left untouched; tables the Ruby gem created are accepted and used as they are; databases
//! an older kaal migrated part-way keep every definition and every dispatch; migrations are
//! idempotent, also when raced. One function per behaviour; [`open_suite!`](crate::open_suite)
//! runs them.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use kaal_core::{
    Adapter, AloneStart, Commit, DefinitionRegistry, DefinitionSource, DispatchRegistry,
    DispatchStatus, NewDefinition, RunUpdate,
};

use super::{SqlBackend, TempDb};
use crate::{Dialect, DieselStore, OpenError, TableShape};

const TTL: Duration = Duration::from_secs(60);

/// The backend's name in messages (`SQLite`, `PostgreSQL`, `MySQL`).
fn name<B: SqlBackend>() -> &'static str {
    <B::Dialect as Dialect>::NAME
}

/// Every definition row's columns of the gem's, as text, by id.
fn definition_rows<B: SqlBackend>(db: &TempDb<B>) -> Vec<String> {
    let backend = db.backend();
    let columns: Vec<String> = [
        "id",
        "key",
        "cron",
        "enabled",
        "source",
        "metadata",
        "disabled_at",
        "created_at",
        "updated_at",
    ]
    .iter()
    // concat_ws skips NULLs: a NULL shows as '-', so rows stay comparable column by column.
    .map(|column| {
        format!(
            "COALESCE({}, '-')",
            backend.cast_text(&backend.quote(column))
        )
    })
    .collect();
    db.texts(&format!(
        "SELECT concat_ws(' ', {}) AS value FROM kaal_definitions ORDER BY id",
        columns.join(", ")
    ))
}

/// `namespace:key` of every definition, sorted.
fn namespaced_keys<B: SqlBackend>(db: &TempDb<B>) -> Vec<String> {
    let key = db.backend().quote("key");
    let mut keys = db.texts(&format!(
        "SELECT concat(namespace, ':', {key}) AS value FROM kaal_definitions"
    ));
    keys.sort();
    keys
}

/// Inserts two definitions as an older kaal wrote them: `sync` (disabled, from the file)
/// and `report` (enabled, from code, created at `report_created_at`), in `namespaces` when
/// the table has the column yet.
fn insert_sync_and_report<B: SqlBackend>(
    db: &TempDb<B>,
    namespaces: Option<[&str; 2]>,
    report_created_at: &str,
) {
    let (column, [sync, report]) = match namespaces {
        Some([sync, report]) => (
            "namespace, ",
            [format!("'{sync}', "), format!("'{report}', ")],
        ),
        None => ("", [String::new(), String::new()]),
    };
    db.exec(&format!(
        "INSERT INTO kaal_definitions ({column}{}, cron, enabled, source, metadata, disabled_at, created_at, updated_at) VALUES \
         ({sync}'sync', '*/5 * * * *', false, 'file', '{{\"kaal\":{{\"command\":[\"sync\"]}}}}', '2026-01-02 03:04:05.000000', '2026-01-01 00:00:00.000000', '2026-01-02 03:04:05.000000'), \
         ({report}'report', '@daily', true, 'code', '{{}}', NULL, '{report_created_at}', '{report_created_at}')",
        db.backend().quote("key")
    ));
}

/// Every dispatch row's columns of the gem's, as text, by id.
fn dispatch_rows<B: SqlBackend>(db: &TempDb<B>) -> Vec<String> {
    let backend = db.backend();
    let columns: Vec<String> = [
        "id",
        "key",
        "fire_time",
        "dispatched_at",
        "node_id",
        "status",
    ]
    .iter()
    .map(|column| backend.cast_text(&backend.quote(column)))
    .collect();
    db.texts(&format!(
        "SELECT concat_ws(' ', {}) AS value FROM kaal_dispatches ORDER BY id",
        columns.join(", ")
    ))
}

/// Asserts that `err` says the migration adding `kaal_definitions.column` is pending.
fn assert_migration_pending(err: &OpenError, column: &str) {
    assert_migration_pending_on(err, "kaal_definitions", column);
}

/// Asserts that `err` says the migration adding `table.column` is pending.
fn assert_migration_pending_on(err: &OpenError, table: &str, column: &str) {
    assert!(
        matches!(
            err,
            OpenError::MigrationPending { table: t, column: c, .. } if *t == table && *c == column
        ),
        "{err:?}"
    );
}

/// A `kaal_locks` table without `expires_at` is refused when a store opens: one error
/// naming the table, the missing column and the database; nothing is created, dropped or
/// changed, and its row is kept.
pub fn kaal_tables_of_the_wrong_shape_are_refused_and_left_untouched<B: SqlBackend>(backend: &B) {
    let db = TempDb::empty_on(backend);
    db.exec(B::LOCK_TABLE_WITHOUT_EXPIRES_AT);
    let before = backend.schema_of(db.locator(), &["kaal_locks"]);
    let err = DieselStore::<B::Dialect>::open(db.locator()).unwrap_err();
    assert_schema_mismatch(&err, "kaal_locks");
    let message = err.to_string();
    assert!(message.contains("expires_at"), "{message}");
    assert!(message.contains(db.locator()), "{message}");
    assert_eq!(
        backend.table_names(db.locator()),
        ["kaal_locks"],
        "tables were created or dropped"
    );
    assert_eq!(backend.schema_of(db.locator(), &["kaal_locks"]), before);
    assert_eq!(
        db.texts(&format!(
            "SELECT {} AS value FROM kaal_locks",
            backend.quote("key")
        )),
        ["kept"]
    );
}

/// Tables the Ruby gem created are accepted and used as they are: the migrations leave the
/// gem's lock table and every row as they were, only adding `namespace` and
/// `schedule_since` to `kaal_definitions` (its unique index moved from `(key)` to
/// `(namespace, key)`) and the run lifecycle's columns to `kaal_dispatches`; leases,
/// dispatch records and definitions the gem wrote are seen, what kaal writes the gem can
/// read, and runs start and finish on the gem's dispatch table (no `updated_at`).
pub fn tables_the_ruby_gem_created_are_accepted_and_used_as_they_are<B: SqlBackend>(backend: &B) {
    let db = TempDb::empty_on(backend);
    let key = backend.quote("key");
    db.exec(B::RUBY_GEM_TABLES);
    db.exec(&format!(
        "INSERT INTO kaal_definitions ({key}, cron, enabled, source, metadata, created_at, updated_at) VALUES \
         ('ruby-before', '0 9 * * *', false, 'file', '{{\"command\":\"rake report\"}}', '2026-01-01 00:00:00.5', '2026-01-01 00:00:00.5'), \
         ('report', '0 * * * *', true, 'file', '{{\"command\":\"rake report\"}}', '2025-12-31 23:00:00.5', '2025-12-31 23:00:00.5')"
    ));
    db.exec(&format!(
        "INSERT INTO kaal_locks ({key}, acquired_at, expires_at) VALUES ('ruby-held', {}, {})",
        backend.now_plus(0),
        backend.now_plus(60)
    ));
    let before = backend.schema_of(db.locator(), &["kaal_locks"]);
    let dispatches_before = backend.table_columns(db.locator(), "kaal_dispatches");
    let definitions_before = backend.table_columns(db.locator(), "kaal_definitions");
    let rows_before = definition_rows(&db);
    let store = db.open();
    // The tables migration creates nothing the gem made; the node registry adds kaal's own
    // table beside the gem's; namespaced definitions adds `namespace` to kaal_definitions,
    // schedule_since a nullable `schedule_since`, and the run lifecycle four columns to
    // kaal_dispatches.
    assert_eq!(store.run_migrations().unwrap().len(), 5);
    assert_eq!(
        backend.schema_of(db.locator(), &["kaal_locks"]),
        before,
        "the gem's lock table was changed"
    );
    let mut expected = dispatches_before;
    expected.extend(B::COLUMNS_ADDED_TO_THE_GEMS_DISPATCHES.map(str::to_string));
    assert_eq!(
        backend.table_columns(db.locator(), "kaal_dispatches"),
        expected
    );
    // kaal_definitions keeps every column of the gem's as it was and gains `namespace`, with
    // the unique index moved from (key) to (namespace, key), and a nullable
    // `schedule_since` (last); its rows are kept.
    let mut expected = definitions_before;
    expected.extend(B::COLUMNS_ADDED_TO_THE_GEMS_DEFINITIONS.map(str::to_string));
    assert_eq!(
        backend.table_columns(db.locator(), "kaal_definitions"),
        expected
    );
    let mut expected: Vec<String> = B::DEFINITIONS_PRIMARY_KEY
        .into_iter()
        .chain(["index_kaal_definitions_on_namespace_and_key(namespace,key)"])
        .map(str::to_string)
        .collect();
    expected.sort();
    let mut indexes = backend.unique_indexes(db.locator(), "kaal_definitions");
    indexes.sort();
    assert_eq!(indexes, expected);
    assert_eq!(definition_rows(&db), rows_before, "the gem's rows changed");
    assert_eq!(namespaced_keys(&db), ["kaal:report", "kaal:ruby-before"]);
    let kept = store
        .find_definition("kaal", "ruby-before")
        .unwrap()
        .unwrap();
    assert_eq!((kept.cron.as_str(), kept.enabled), ("0 9 * * *", false));
    assert_eq!(kept.metadata["command"], "rake report");
    assert_eq!(kept.created_at.timestamp_subsec_millis(), 500);
    assert_eq!(store.verify_schema().unwrap(), TableShape::default());

    // Leases, next to one a Ruby node holds.
    assert!(!store.acquire("ruby-held", TTL).unwrap());
    assert!(store.acquire("kaal:dispatch:report:60", TTL).unwrap());
    assert!(!db.open().acquire("kaal:dispatch:report:60", TTL).unwrap());
    let keys = vec!["a".to_string(), "b".to_string()];
    assert_eq!(store.acquire_many(&keys, TTL).unwrap(), [true, true]);
    assert_eq!(store.acquire_many(&keys, TTL).unwrap(), [false, false]);
    assert!(store.release("a").unwrap());
    assert!(store.acquire("rust", TTL).unwrap());
    assert_eq!(
        store
            .acquire_many(&["rust".into(), "rust-2".into()], TTL)
            .unwrap(),
        [false, true]
    );

    // Dispatch log, next to a row a Ruby node wrote.
    db.exec(&format!(
        "INSERT INTO kaal_dispatches ({key}, fire_time, dispatched_at, node_id, status) \
         VALUES ('report', '2026-01-01 09:00:00', '2026-01-01 09:00:01.5', 'ruby-node', 'dispatched')"
    ));
    let nine = Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap();
    let record = store.find_dispatch("report", nine).unwrap().unwrap();
    assert_eq!(record.node_id, "ruby-node");
    assert_eq!(
        (record.started_at, record.attempt, record.error),
        (None, 0, None),
        "a row the gem wrote has no lifecycle"
    );
    assert!(store.running_runs(nine).unwrap().is_empty());
    assert!(store.dispatched("report", nine).unwrap());
    store
        .log_dispatch(
            "report",
            nine + chrono::Duration::minutes(1),
            "rust-node",
            DispatchStatus::Dispatched,
        )
        .unwrap();
    let pairs = vec![
        ("report".to_string(), nine),
        ("report".to_string(), nine + chrono::Duration::minutes(1)),
        ("report".to_string(), nine + chrono::Duration::minutes(2)),
    ];
    assert_eq!(store.dispatched_many(&pairs).unwrap(), [true, true, false]);
    assert_eq!(store.find_by_key("report").unwrap().len(), 2);
    // A run, on the gem's table.
    let ten = Utc.with_ymd_and_hms(2026, 1, 1, 10, 0, 0).unwrap();
    let claimed = store
        .commit_claims(&[("report".to_string(), ten)], "rust-node")
        .unwrap();
    assert_eq!(claimed.outcomes, [Commit::Created]);
    let token = store.start_run("report", ten, "rust-node").unwrap();
    assert!(token > Some(record.id), "{token:?}");
    assert!(store
        .record_run(
            "report",
            ten,
            "rust-node",
            DispatchStatus::Dispatched,
            DispatchStatus::Failed,
            &RunUpdate {
                attempt: 1,
                error: Some("exit status 3".into()),
            },
        )
        .unwrap());
    let run = store.find_dispatch("report", ten).unwrap().unwrap();
    assert_eq!(
        (run.id, run.status, run.error.as_deref()),
        (
            token.unwrap(),
            DispatchStatus::Failed,
            Some("exit status 3")
        )
    );
    assert!(run.finished_at >= run.started_at && run.started_at.is_some());
    // Runs that must not overlap, and a lost run rerun, on the gem's table: the gem's
    // `dispatched` row (no `started_at`) holds nothing back; a started run does; its
    // replacement by a rerun writes no `created_at` / `updated_at`.
    let (eleven, noon) = (
        ten + chrono::Duration::hours(1),
        ten + chrono::Duration::hours(2),
    );
    let pairs = [("report".to_string(), eleven), ("report".to_string(), noon)];
    store.commit_claims(&pairs, "rust-node").unwrap();
    let lost = store
        .start_run_alone("report", eleven, "rust-node")
        .unwrap();
    let AloneStart::Started(lost) = lost else {
        panic!("{lost:?}: the gem's row held the job back");
    };
    assert_eq!(
        store.start_run_alone("report", noon, "rust-node").unwrap(),
        AloneStart::Busy {
            fire_time: eleven,
            node_id: "rust-node".to_string()
        }
    );
    assert!(store
        .rerun_lost_run("report", eleven, "rust-node", "rescuer", "rerun")
        .unwrap());
    let rerun = store.find_dispatch("report", eleven).unwrap().unwrap();
    assert!(rerun.id > lost, "{rerun:?}");
    assert_eq!(
        (rerun.status, rerun.node_id.as_str()),
        (DispatchStatus::Claimed, "rescuer")
    );
    assert!(matches!(
        store.start_run_alone("report", noon, "rust-node").unwrap(),
        AloneStart::Started(_)
    ));

    // Definitions: metadata is text in the gem's table.
    db.exec(&format!(
        "INSERT INTO kaal_definitions ({key}, cron, enabled, source, metadata, created_at, updated_at) \
         VALUES ('ruby-job', '0 * * * *', true, 'code', '{{\"owner\":\"ruby\"}}', {now}, {now})",
        now = backend.now_plus(0)
    ));
    let ruby = store.find_definition("kaal", "ruby-job").unwrap().unwrap();
    assert_eq!(ruby.metadata["owner"], "ruby");
    let mut metadata = serde_json::Map::new();
    metadata.insert("owner".into(), "ops".into());
    store
        .upsert_definition(
            "kaal",
            NewDefinition {
                key: "rust-job".into(),
                cron: "*/5 * * * *".into(),
                enabled: true,
                source: DefinitionSource::File,
                metadata: metadata.clone(),
            },
        )
        .unwrap();
    assert_eq!(
        store
            .find_definition("kaal", "rust-job")
            .unwrap()
            .unwrap()
            .metadata,
        metadata
    );
    let stored = db.text(&format!(
        "SELECT {} AS value FROM kaal_definitions WHERE {key} = 'rust-job'",
        backend.cast_text("metadata")
    ));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stored).unwrap(),
        serde_json::Value::Object(metadata),
        "the gem reads this text as JSON"
    );
    let report = store.find_definition("kaal", "report").unwrap().unwrap();
    assert_eq!(report.metadata["command"], "rake report");
    assert_eq!(report.created_at.timestamp_subsec_millis(), 500);
    assert!(store
        .disable_definition("kaal", "report")
        .unwrap()
        .unwrap()
        .disabled_at
        .is_some());
}

/// Six processes run the migrations at once: each of the five is applied exactly once,
/// none fails; afterwards there is nothing left to run and the tables are whole.
pub fn migrations_raced_by_several_processes_apply_once<B: SqlBackend>(backend: &B) {
    let db = TempDb::empty_on(backend);
    let stores: Vec<_> = (0..6).map(|_| Arc::new(db.open())).collect();
    let barrier = Arc::new(Barrier::new(stores.len()));
    let handles: Vec<_> = stores
        .iter()
        .map(|store| {
            let (store, barrier) = (store.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                store
                    .run_migrations()
                    .expect("a racing migration failed")
                    .len()
            })
        })
        .collect();
    let applied: Vec<usize> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(
        applied.iter().sum::<usize>(),
        5,
        "exactly one runner applies each of the five migrations: {applied:?}"
    );
    assert!(stores[0].acquire("after-race", TTL).unwrap());
    let store = db.open();
    assert!(store.run_migrations().unwrap().is_empty());
    assert_eq!(
        store.verify_schema().unwrap(),
        TableShape {
            lock_timestamps: true,
            dispatch_timestamps: true
        }
    );
}

/// A database migrated before namespaces: the store says a migration is pending; the three
/// left run, every definition lands in the default namespace `kaal` unchanged, and another
/// namespace may then define the same key.
pub fn the_namespace_migration_keeps_existing_definitions_in_the_default_namespace<
    B: SqlBackend,
>(
    backend: &B,
) {
    let db = TempDb::empty_on(backend);
    backend.run_first_migrations(db.locator(), 2);
    insert_sync_and_report(&db, None, "2026-01-01 00:00:00.000000");
    let store = db.open();
    let err = store.verify_schema().unwrap_err();
    assert_migration_pending(&err, "namespace");
    assert!(
        err.to_string().contains("run the migrations first"),
        "{err}"
    );
    assert_eq!(
        store.run_migrations().unwrap(),
        ["20261130000001", "20261130000002", "20261201000000"]
    );
    assert_eq!(namespaced_keys(&db), ["kaal:report", "kaal:sync"]);
    let sync = store.find_definition("kaal", "sync").unwrap().unwrap();
    assert_eq!(
        (sync.cron.as_str(), sync.enabled, sync.source),
        ("*/5 * * * *", false, DefinitionSource::File)
    );
    assert_eq!(sync.metadata["kaal"]["command"][0], "sync");
    assert_eq!(
        sync.disabled_at,
        Some(Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap())
    );
    assert_eq!(store.all_definitions("kaal").unwrap().len(), 2);
    // Another namespace may now define the same key without touching the kept row.
    store
        .upsert_definition("app2", NewDefinition::new("sync", "0 * * * *"))
        .unwrap();
    assert_eq!(
        store.find_definition("kaal", "sync").unwrap().unwrap(),
        sync
    );
    // Namespaces compare by their bytes, like keys.
    assert!(store.find_definition("KAAL", "sync").unwrap().is_none());
    assert_eq!(store.all_definitions("kaal").unwrap().len(), 2);
    assert!(store.run_migrations().unwrap().is_empty());
}

/// A database migrated before `schedule_since`: the store says so; the migration keeps
/// every row as it was, and a definition without `schedule_since` reads its `created_at`
/// until a write stores one (kept by a disable, moved by the enable).
pub fn the_schedule_since_migration_keeps_every_definition_and_reads_null_as_created_at<
    B: SqlBackend,
>(
    backend: &B,
) {
    let db = TempDb::empty_on(backend);
    backend.run_first_migrations(db.locator(), 3);
    insert_sync_and_report(&db, Some(["kaal", "app2"]), "2026-01-01 00:00:00.250000");
    let rows_before = definition_rows(&db);
    let namespaces_before = namespaced_keys(&db);
    let store = db.open();
    let err = store.verify_schema().unwrap_err();
    assert_migration_pending(&err, "schedule_since");
    assert!(
        err.to_string().contains("has no schedule_since column yet"),
        "{err}"
    );
    assert_eq!(
        store.run_migrations().unwrap(),
        ["20261130000002", "20261201000000"]
    );
    assert_eq!(
        definition_rows(&db),
        rows_before,
        "the definition rows changed"
    );
    assert_eq!(namespaced_keys(&db), namespaces_before);
    assert_eq!(
        db.text(&format!(
            "SELECT {} AS value FROM kaal_definitions WHERE schedule_since IS NULL",
            backend.cast_text("COUNT(*)")
        )),
        "2"
    );
    let report = store.find_definition("app2", "report").unwrap().unwrap();
    assert_eq!(report.schedule_since, report.created_at);
    assert_eq!(report.created_at.timestamp_subsec_millis(), 250);
    let sync = store.find_definition("kaal", "sync").unwrap().unwrap();
    assert_eq!(
        sync.schedule_since,
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
    );
    // A write stores it: kept by a disable, moved by the enable.
    let disabled = store.disable_definition("kaal", "sync").unwrap().unwrap();
    assert_eq!(disabled.schedule_since, sync.created_at);
    let enabled = store.enable_definition("kaal", "sync").unwrap().unwrap();
    assert_eq!(enabled.schedule_since, enabled.updated_at);
    assert!(store.run_migrations().unwrap().is_empty());
}

/// A database migrated before the run lifecycle: the store says the migration adding
/// `kaal_dispatches.started_at` is pending, and refuses to claim until it ran; the migration
/// keeps every dispatch as it was, each reads as a row without a lifecycle (no start, attempt
/// 0, no error) — a `dispatched` one is never reported running — and a `claimed` one is then
/// started like any other.
pub fn the_run_lifecycle_migration_keeps_every_dispatch_and_reads_them_without_a_lifecycle<
    B: SqlBackend,
>(
    backend: &B,
) {
    let db = TempDb::empty_on(backend);
    backend.run_first_migrations(db.locator(), 4);
    db.exec(&format!(
        "INSERT INTO kaal_dispatches ({}, fire_time, dispatched_at, node_id, status) VALUES \
         ('kaal:report', '2026-01-01 09:00:00', '2026-01-01 09:00:01.500000', 'old-node', 'dispatched'), \
         ('kaal:report', '2026-01-01 10:00:00', '2026-01-01 10:00:00.250000', 'old-node', 'failed'), \
         ('kaal:report', '2026-01-01 11:00:00', '2026-01-01 11:00:00.000000', 'old-node', 'claimed')",
        backend.quote("key")
    ));
    let rows_before = dispatch_rows(&db);
    let store = db.open();
    let err = store.verify_schema().unwrap_err();
    assert_migration_pending_on(&err, "kaal_dispatches", "started_at");
    assert!(
        err.to_string().contains("has no started_at column yet"),
        "{err}"
    );
    let hour = |h| Utc.with_ymd_and_hms(2026, 1, 1, h, 0, 0).unwrap();
    let err = store
        .commit_claims(&[("kaal:report".to_string(), hour(12))], "new-node")
        .unwrap_err()
        .to_string();
    assert!(err.contains("has no started_at column yet"), "{err}");
    assert_eq!(store.run_migrations().unwrap(), ["20261201000000"]);
    assert_eq!(dispatch_rows(&db), rows_before, "the dispatch rows changed");
    let records = store.find_by_key("kaal:report").unwrap();
    assert_eq!(records.len(), 3);
    for record in &records {
        assert_eq!(
            (
                record.started_at,
                record.finished_at,
                record.attempt,
                &record.error
            ),
            (None, None, 0, &None),
            "{record:?}"
        );
    }
    let failed = store
        .find_dispatch("kaal:report", hour(10))
        .unwrap()
        .unwrap();
    assert_eq!(failed.status, DispatchStatus::Failed);
    assert_eq!(failed.dispatched_at.timestamp_subsec_millis(), 250);
    assert!(store.running_runs(hour(0)).unwrap().is_empty());
    let claimed = store
        .find_dispatch("kaal:report", hour(11))
        .unwrap()
        .unwrap();
    assert_eq!(
        store
            .start_run("kaal:report", hour(11), "old-node")
            .unwrap(),
        Some(claimed.id)
    );
    let running = store.running_runs(hour(0)).unwrap();
    assert_eq!(running.len(), 1, "{running:?}");
    assert_eq!((running[0].id, running[0].attempt), (claimed.id, 1));
    assert!(store.run_migrations().unwrap().is_empty());
}

/// A database without the kaal tables: the schema check says to run the migrations, and a
/// registry call is an error naming the backend and the call.
pub fn an_unmigrated_database_says_to_run_the_migrations<B: SqlBackend>(backend: &B) {
    let db = TempDb::empty_on(backend);
    let store = db.open();
    let err = store.verify_schema().unwrap_err();
    assert!(
        matches!(
            err,
            OpenError::MissingTable {
                table: "kaal_locks",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("run the migrations"), "{err}");
    let err = store.find_by_key("x").unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("{} find_by_key(x) failed: ", name::<B>())),
        "{err}"
    );
}

/// The gem's tables before kaal's migrations: the schema check names the pending
/// migration and the database, a claim says `namespace` is missing; once the migrations
/// ran, claims work.
pub fn the_gem_tables_report_the_pending_migration_until_it_runs<B: SqlBackend>(backend: &B) {
    let db = TempDb::empty_on(backend);
    db.exec(B::RUBY_GEM_TABLES);
    let store = db.open();
    let err = store.verify_schema().unwrap_err();
    assert_migration_pending(&err, "namespace");
    let message = err.to_string();
    assert!(message.contains("run the migrations first"), "{message}");
    assert!(message.contains(db.locator()), "{message}");
    let err = store.acquire("k", TTL).unwrap_err().to_string();
    assert!(err.contains("has no namespace column yet"), "{err}");
    store.run_migrations().unwrap();
    assert!(store.acquire("k", TTL).unwrap());
}

/// A unique index on `kaal_definitions (key)` alone would keep two namespaces from
/// defining one key: the schema check refuses it.
pub fn a_unique_index_on_the_definition_key_alone_is_refused<B: SqlBackend>(backend: &B) {
    let db = TempDb::migrated_on(backend);
    db.exec(&format!(
        "CREATE UNIQUE INDEX index_kaal_definitions_on_key ON kaal_definitions ({})",
        backend.quote("key")
    ));
    let err = db.open().verify_schema().unwrap_err();
    assert_schema_mismatch(&err, "kaal_definitions");
    assert!(err.to_string().contains("unique index on (key)"), "{err}");
}

/// Asserts that `err` is [`OpenError::SchemaMismatch`] of `table`.
pub fn assert_schema_mismatch(err: &OpenError, table: &str) {
    assert!(
        matches!(err, OpenError::SchemaMismatch { table: t, .. } if *t == table),
        "not a schema mismatch of {table}: {err:?}"
    );
}

/// Asserts that `err` is a connection error on one line naming `shown` (the URL, its
/// password hidden) and containing `needle`, and that it shows no `s3cret`.
pub fn assert_clear_connect_error(err: &OpenError, shown: &str, needle: &str) {
    let message = err.to_string();
    assert!(matches!(err, OpenError::Connect { .. }), "{err:?}");
    assert!(!message.contains('\n'), "more than one line: {message}");
    assert!(message.contains(shown), "does not name {shown}: {message}");
    assert!(message.contains(needle), "no {needle:?}: {message}");
    assert!(
        !message.contains("s3cret"),
        "the password leaked: {message}"
    );
}
