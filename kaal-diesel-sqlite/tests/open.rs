//! Opening SQLite files: bad input is refused with a clear error and left untouched; tables
//! the Ruby gem created are accepted; migrations are idempotent, also when raced.

mod common;

use std::fs;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use common::{exec_file, text, FileDb, TempDb};
use kaal_core::{Adapter, DefinitionRegistry, DispatchRegistry, DispatchStatus};
use kaal_diesel_sqlite::{OpenError, SqliteStore, TableShape};

const TTL: Duration = Duration::from_secs(60);

/// The tables as the Ruby gem's current ActiveRecord migrations create them on SQLite.
const RUBY_GEM_TABLES: &str = r#"
CREATE TABLE "kaal_dispatches" ("id" integer PRIMARY KEY AUTOINCREMENT NOT NULL, "key" varchar NOT NULL, "fire_time" datetime(6) NOT NULL, "dispatched_at" datetime(6) NOT NULL, "node_id" varchar NOT NULL, "status" varchar(50) DEFAULT 'dispatched' NOT NULL);
CREATE UNIQUE INDEX "index_kaal_dispatches_on_key_and_fire_time" ON "kaal_dispatches" ("key", "fire_time");
CREATE INDEX "index_kaal_dispatches_on_key" ON "kaal_dispatches" ("key");
CREATE TABLE "kaal_locks" ("id" integer PRIMARY KEY AUTOINCREMENT NOT NULL, "key" varchar NOT NULL, "acquired_at" datetime(6) NOT NULL, "expires_at" datetime(6) NOT NULL);
CREATE UNIQUE INDEX "index_kaal_locks_on_key" ON "kaal_locks" ("key");
CREATE INDEX "index_kaal_locks_on_expires_at" ON "kaal_locks" ("expires_at");
CREATE TABLE "kaal_definitions" ("id" integer PRIMARY KEY AUTOINCREMENT NOT NULL, "key" varchar NOT NULL, "cron" varchar NOT NULL, "enabled" boolean DEFAULT 1 NOT NULL, "source" varchar NOT NULL, "metadata" text DEFAULT '{}' NOT NULL, "disabled_at" datetime(6), "created_at" datetime(6) NOT NULL, "updated_at" datetime(6) NOT NULL);
CREATE UNIQUE INDEX "index_kaal_definitions_on_key" ON "kaal_definitions" ("key");
"#;

/// The SQL of the gem's tables and indexes other than `kaal_definitions`' (which the
/// migration `namespaced_definitions` extends; see [`definition_columns`]).
fn schema_sql(store: &SqliteStore) -> String {
    text(
        store,
        "SELECT group_concat(sql, ';') AS value FROM (SELECT sql FROM sqlite_master WHERE name LIKE 'kaal%' AND name <> 'kaal_nodes' AND tbl_name <> 'kaal_definitions' ORDER BY name)",
    )
}

/// `kaal_definitions`' columns as `name type notnull default`, in table order.
fn definition_columns(store: &SqliteStore) -> Vec<String> {
    text(
        store,
        "SELECT group_concat(name || ' ' || type || ' ' || \"notnull\" || ' ' || coalesce(dflt_value, 'NULL'), '|') AS value FROM pragma_table_info('kaal_definitions')",
    )
    .split('|')
    .map(str::to_string)
    .collect()
}

/// `kaal_definitions`' unique indexes as `name(columns)`, by name.
fn definition_unique_indexes(store: &SqliteStore) -> String {
    text(
        store,
        "SELECT group_concat(idx.name || '(' || (SELECT group_concat(name, ',') FROM (SELECT name FROM pragma_index_info(idx.name) ORDER BY seqno)) || ')', ' ') AS value FROM (SELECT name FROM pragma_index_list('kaal_definitions') WHERE \"unique\" = 1 ORDER BY name) AS idx",
    )
}

#[test]
fn a_path_in_a_missing_directory_is_refused_and_nothing_is_created() {
    let db = TempDb::empty();
    let missing = db.dir().join("no-such-dir");
    let path = missing.join("kaal.db");
    let err = SqliteStore::open(path.to_str().unwrap()).unwrap_err();
    assert!(matches!(err, OpenError::MissingDirectory { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&*path.to_string_lossy()), "{message}");
    assert!(message.contains("no-such-dir does not exist"), "{message}");
    assert!(!missing.exists(), "the directory was created");
}

#[test]
fn a_file_that_is_not_a_database_is_refused_and_left_untouched() {
    let db = TempDb::empty();
    let content = "name,schedule\nreport,0 * * * *\n".repeat(20);
    fs::write(db.path(), &content).unwrap();
    let err = SqliteStore::open(db.locator()).unwrap_err();
    assert!(matches!(err, OpenError::NotADatabase { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(db.locator()), "{message}");
    assert!(message.contains("not a SQLite database"), "{message}");
    assert_eq!(fs::read_to_string(db.path()).unwrap(), content);
    let siblings: Vec<_> = fs::read_dir(db.dir()).unwrap().collect();
    assert_eq!(
        siblings.len(),
        1,
        "journal files were created next to the file"
    );

    fs::write(db.path(), "tiny").unwrap();
    let err = SqliteStore::open(db.locator()).unwrap_err().to_string();
    assert!(err.contains("shorter than a SQLite header"), "{err}");

    let err = SqliteStore::open(db.dir().to_str().unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("it is a directory"), "{err}");
}

#[test]
fn kaal_tables_of_the_wrong_shape_are_refused_without_changing_the_file() {
    let db = TempDb::empty();
    exec_file(
        &db.path(),
        r#"CREATE TABLE kaal_locks (id INTEGER PRIMARY KEY, "key" TEXT NOT NULL UNIQUE, acquired_at TEXT NOT NULL);
           INSERT INTO kaal_locks ("key", acquired_at) VALUES ('kept', '2026-01-01 00:00:00');"#,
    );
    let err = SqliteStore::open(db.locator()).unwrap_err();
    assert!(
        matches!(
            err,
            OpenError::SchemaMismatch {
                table: "kaal_locks",
                ..
            }
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains(db.locator()), "{message}");
    assert!(message.contains("expires_at"), "{message}");

    let raw = diesel_tables(&db.path());
    assert_eq!(raw, ["kaal_locks"], "tables were created or dropped");
}

fn diesel_tables(path: &std::path::Path) -> Vec<String> {
    use diesel::{Connection, QueryableByName, RunQueryDsl};
    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
    }
    let mut conn = diesel::SqliteConnection::establish(path.to_str().expect("UTF-8 path"))
        .expect("cannot open the file");
    // Wait, as the store does, rather than fail on a moment's lock by another connection.
    diesel::sql_query("PRAGMA busy_timeout = 5000")
        .execute(&mut conn)
        .expect("cannot set busy_timeout");
    diesel::sql_query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .load::<Name>(&mut conn)
        .expect("cannot list tables")
        .into_iter()
        .map(|n| n.name)
        .collect()
}

#[test]
fn tables_created_by_the_ruby_gem_are_accepted_as_they_are() {
    let db = TempDb::empty();
    exec_file(&db.path(), RUBY_GEM_TABLES);
    exec_file(
        &db.path(),
        r#"INSERT INTO kaal_locks ("key", acquired_at, expires_at)
             VALUES ('ruby-held', strftime('%Y-%m-%d %H:%M:%f', 'now'), strftime('%Y-%m-%d %H:%M:%f', 'now', '+60 seconds'));
           INSERT INTO kaal_dispatches ("key", fire_time, dispatched_at, node_id)
             VALUES ('report', '2026-01-01 00:00:00', '2026-01-01 00:00:00.123456', 'ruby-node');
           INSERT INTO kaal_definitions ("key", cron, source, metadata, created_at, updated_at)
             VALUES ('report', '0 * * * *', 'file', '{"command":"rake report"}', '2025-12-31 23:00:00.5', '2025-12-31 23:00:00.5');"#,
    );
    let store = SqliteStore::open(db.locator()).unwrap();
    let before = schema_sql(&store);
    let definitions_before = definition_columns(&store);
    let rows_before = text(
        &store,
        "SELECT group_concat(id || ' ' || \"key\" || ' ' || cron || ' ' || enabled || ' ' || source || ' ' || metadata || ' ' || created_at, '|') AS value FROM kaal_definitions",
    );
    let applied = store.run_migrations().unwrap();
    assert_eq!(applied.len(), 4, "{applied:?}");
    assert_eq!(schema_sql(&store), before, "the gem's tables were altered");
    // kaal_definitions keeps every column and row of the gem's and gains `namespace`, with
    // the unique index moved from (key) to (namespace, key), and a nullable `schedule_since`.
    let mut expected = definitions_before;
    expected.push("namespace VARCHAR(255) 1 'kaal'".to_string());
    expected.push("schedule_since DATETIME(6) 0 NULL".to_string());
    assert_eq!(definition_columns(&store), expected);
    assert_eq!(
        definition_unique_indexes(&store),
        "index_kaal_definitions_on_namespace_and_key(namespace,key)"
    );
    assert_eq!(
        text(
            &store,
            "SELECT group_concat(id || ' ' || \"key\" || ' ' || cron || ' ' || enabled || ' ' || source || ' ' || metadata || ' ' || created_at, '|') AS value FROM kaal_definitions",
        ),
        rows_before,
        "the gem's definition rows changed"
    );
    assert_eq!(
        text(&store, "SELECT namespace AS value FROM kaal_definitions"),
        "kaal"
    );
    assert_eq!(store.verify_schema().unwrap(), TableShape::default());

    assert!(!store.acquire("ruby-held", TTL).unwrap());
    assert!(store.acquire("rust", TTL).unwrap());
    assert_eq!(
        store
            .acquire_many(&["rust".into(), "rust-2".into()], TTL)
            .unwrap(),
        [false, true]
    );
    let jan1 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    assert!(store.dispatched("report", jan1).unwrap());
    store
        .log_dispatch(
            "report",
            jan1 + chrono::Duration::minutes(1),
            "rust-node",
            DispatchStatus::Dispatched,
        )
        .unwrap();
    assert_eq!(store.find_by_key("report").unwrap().len(), 2);
    let definition = store.find_definition("kaal", "report").unwrap().unwrap();
    assert_eq!(definition.metadata["command"], "rake report");
    assert_eq!(definition.created_at.timestamp_subsec_millis(), 500);
    assert!(store
        .disable_definition("kaal", "report")
        .unwrap()
        .unwrap()
        .disabled_at
        .is_some());
}

#[test]
fn older_gem_tables_with_required_timestamps_get_them_written() {
    let db = TempDb::empty();
    let with_timestamps = RUBY_GEM_TABLES
        .replace(
            r#""expires_at" datetime(6) NOT NULL)"#,
            r#""expires_at" datetime(6) NOT NULL, "created_at" datetime(6) NOT NULL, "updated_at" datetime(6) NOT NULL)"#,
        )
        .replace(
            r#"DEFAULT 'dispatched' NOT NULL)"#,
            r#"DEFAULT 'dispatched' NOT NULL, "created_at" datetime(6) NOT NULL, "updated_at" datetime(6) NOT NULL)"#,
        );
    assert_ne!(with_timestamps, RUBY_GEM_TABLES);
    exec_file(&db.path(), &with_timestamps);
    let store = SqliteStore::open(db.locator()).unwrap();
    store.run_migrations().unwrap();
    assert_eq!(
        store.verify_schema().unwrap(),
        TableShape {
            lock_timestamps: true,
            dispatch_timestamps: true
        }
    );
    assert!(store.acquire("a", TTL).unwrap());
    assert_eq!(store.acquire_many(&["b".into()], TTL).unwrap(), [true]);
    store
        .log_dispatch("job", Utc::now(), "n", DispatchStatus::Dispatched)
        .unwrap();
    store
        .log_dispatches(&[("job".into(), Utc::now())], "n", DispatchStatus::Failed)
        .unwrap();
    assert_eq!(
        text(&store, "SELECT count(*) AS value FROM kaal_locks WHERE created_at IS NOT NULL AND updated_at IS NOT NULL"),
        "2"
    );
    assert_eq!(
        text(
            &store,
            "SELECT count(*) AS value FROM kaal_dispatches WHERE created_at IS NOT NULL"
        ),
        "2"
    );
}

#[test]
fn a_missing_unique_index_is_reported_and_the_migrations_add_it() {
    let db = TempDb::empty();
    exec_file(
        &db.path(),
        &RUBY_GEM_TABLES.replace(
            r#"CREATE UNIQUE INDEX "index_kaal_locks_on_key" ON "kaal_locks" ("key");"#,
            "",
        ),
    );
    let store = SqliteStore::open(db.locator()).unwrap();
    let err = store.acquire("k", TTL).unwrap_err().to_string();
    assert!(err.starts_with("SQLite acquire failed for k: "), "{err}");
    assert!(err.contains("no unique index on (key)"), "{err}");
    let err = store.verify_schema().unwrap_err().to_string();
    assert!(
        err.contains("table kaal_locks does not have the shape"),
        "{err}"
    );

    store.run_migrations().unwrap();
    let fresh = SqliteStore::open(db.locator()).unwrap();
    assert!(fresh.acquire("k", TTL).unwrap());
}

#[test]
fn migrations_run_once_and_tolerate_racing_processes() {
    let db = TempDb::empty();
    let locator = db.locator().to_string();
    let barrier = Arc::new(Barrier::new(6));
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let (locator, barrier) = (locator.clone(), barrier.clone());
            std::thread::spawn(move || {
                let store = SqliteStore::open(&locator).expect("open failed");
                barrier.wait();
                store.run_migrations().expect("migration failed").len()
            })
        })
        .collect();
    let applied: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(
        applied, 4,
        "exactly one runner applies each of the four migrations"
    );
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

#[test]
fn an_unmigrated_database_says_to_run_the_migrations() {
    let db = TempDb::empty();
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
    assert!(err.starts_with("SQLite find_by_key(x) failed: "), "{err}");
}

#[test]
fn urls_and_wal_mode() {
    let db = TempDb::migrated();
    let store = SqliteStore::open(&format!("sqlite://{}", db.locator())).unwrap();
    assert_eq!(store.locator(), db.locator());
    let pragma = |name: &str| {
        text(
            &store,
            &format!("SELECT CAST({name} AS TEXT) AS value FROM pragma_{name}"),
        )
    };
    assert_eq!(pragma("journal_mode"), "wal");
    assert_eq!(pragma("synchronous"), "2", "FULL is 2");
    assert_eq!(
        text(
            &store,
            "SELECT CAST(timeout AS TEXT) AS value FROM pragma_busy_timeout"
        ),
        "5000"
    );
    assert!(store.acquire("k", TTL).unwrap());
    let err = SqliteStore::open("postgres://db/kaal")
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not SQLite"), "{err}");
}

#[test]
fn the_gem_tables_report_the_pending_migration_until_it_runs() {
    let db = TempDb::empty();
    exec_file(&db.path(), RUBY_GEM_TABLES);
    let store = SqliteStore::open(db.locator()).unwrap();
    let err = store.verify_schema().unwrap_err();
    assert!(
        matches!(
            err,
            OpenError::MigrationPending {
                table: "kaal_definitions",
                column: "namespace",
                ..
            }
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("run the migrations first"), "{message}");
    assert!(message.contains(db.locator()), "{message}");
    let err = store.acquire("k", TTL).unwrap_err().to_string();
    assert!(err.contains("has no namespace column yet"), "{err}");
    store.run_migrations().unwrap();
    assert!(store.acquire("k", TTL).unwrap());
}

#[test]
fn a_unique_index_on_the_definition_key_alone_is_refused() {
    let db = TempDb::migrated();
    exec_file(
        &db.path(),
        r#"CREATE UNIQUE INDEX "index_kaal_definitions_on_key" ON "kaal_definitions" ("key");"#,
    );
    let err = db.open().verify_schema().unwrap_err();
    assert!(
        matches!(
            err,
            OpenError::SchemaMismatch {
                table: "kaal_definitions",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("unique index on (key)"), "{err}");
}

#[test]
fn the_namespace_migration_keeps_existing_definitions_in_the_default_namespace() {
    use diesel::Connection;
    use diesel_migrations::MigrationHarness;
    let db = TempDb::empty();
    {
        let mut conn = diesel::SqliteConnection::establish(db.locator()).unwrap();
        conn.run_next_migration(kaal_diesel_sqlite::MIGRATIONS)
            .unwrap();
        conn.run_next_migration(kaal_diesel_sqlite::MIGRATIONS)
            .unwrap();
    }
    exec_file(
        &db.path(),
        r#"INSERT INTO kaal_definitions ("key", cron, enabled, source, metadata, disabled_at, created_at, updated_at)
             VALUES ('sync', '*/5 * * * *', 0, 'file', '{"kaal":{"command":["sync"]}}', '2026-01-02 03:04:05.000000', '2026-01-01 00:00:00.000000', '2026-01-02 03:04:05.000000'),
                    ('report', '@daily', 1, 'code', '{}', NULL, '2026-01-01 00:00:00.000000', '2026-01-01 00:00:00.000000');"#,
    );
    let store = db.open();
    assert!(matches!(
        store.verify_schema().unwrap_err(),
        OpenError::MigrationPending { .. }
    ));
    assert_eq!(
        store.run_migrations().unwrap(),
        ["20261130000001", "20261130000002"]
    );
    assert_eq!(
        text(
            &store,
            "SELECT group_concat(namespace || ':' || \"key\", ' ') AS value FROM (SELECT * FROM kaal_definitions ORDER BY \"key\")"
        ),
        "kaal:report kaal:sync"
    );
    let sync = store.find_definition("kaal", "sync").unwrap().unwrap();
    assert_eq!(
        (sync.cron.as_str(), sync.enabled, sync.source),
        ("*/5 * * * *", false, kaal_core::DefinitionSource::File)
    );
    assert_eq!(sync.metadata["kaal"]["command"][0], "sync");
    assert_eq!(
        sync.disabled_at,
        Some(Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap())
    );
    assert_eq!(store.all_definitions("kaal").unwrap().len(), 2);
    // Another namespace may now define the same key without touching the kept row.
    store
        .upsert_definition("app2", kaal_core::NewDefinition::new("sync", "0 * * * *"))
        .unwrap();
    assert_eq!(
        store.find_definition("kaal", "sync").unwrap().unwrap(),
        sync
    );
    assert!(store.run_migrations().unwrap().is_empty());
}

#[test]
fn the_schedule_since_migration_keeps_every_definition_and_reads_null_as_created_at() {
    use diesel::Connection;
    use diesel_migrations::MigrationHarness;
    let db = TempDb::empty();
    {
        let mut conn = diesel::SqliteConnection::establish(db.locator()).unwrap();
        for _ in 0..3 {
            conn.run_next_migration(kaal_diesel_sqlite::MIGRATIONS)
                .unwrap();
        }
    }
    exec_file(
        &db.path(),
        r#"INSERT INTO kaal_definitions (namespace, "key", cron, enabled, source, metadata, disabled_at, created_at, updated_at)
             VALUES ('kaal', 'sync', '*/5 * * * *', 0, 'file', '{"kaal":{"command":["sync"]}}', '2026-01-02 03:04:05.000000', '2026-01-01 00:00:00.000000', '2026-01-02 03:04:05.000000'),
                    ('app2', 'report', '@daily', 1, 'code', '{}', NULL, '2026-01-01 00:00:00.250000', '2026-01-01 00:00:00.250000');"#,
    );
    let rows = "SELECT group_concat(namespace || ' ' || \"key\" || ' ' || cron || ' ' || enabled || ' ' || source || ' ' || metadata || ' ' || coalesce(disabled_at, '-') || ' ' || created_at || ' ' || updated_at, '|') AS value FROM (SELECT * FROM kaal_definitions ORDER BY \"key\")";
    let store = db.open();
    let rows_before = text(&store, rows);
    let err = store.verify_schema().unwrap_err();
    assert!(
        matches!(
            err,
            OpenError::MigrationPending {
                table: "kaal_definitions",
                column: "schedule_since",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("has no schedule_since column yet"),
        "{err}"
    );
    assert_eq!(store.run_migrations().unwrap(), ["20261130000002"]);
    assert_eq!(
        text(&store, rows),
        rows_before,
        "the definition rows changed"
    );
    assert_eq!(
        text(
            &store,
            "SELECT count(*) AS value FROM kaal_definitions WHERE schedule_since IS NULL"
        ),
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
