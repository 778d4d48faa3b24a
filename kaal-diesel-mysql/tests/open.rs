//! Opening MySQL databases: bad input is one clear error naming the URL without its
//! password; tables the Ruby gem created are accepted and used as they are; tables of the
//! wrong shape are refused untouched; migrations are idempotent, also when raced.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use common::{logs, server_url, with_database, TempDb};
use kaal_core::{
    Adapter, DefinitionRegistry, DefinitionSource, DispatchRegistry, DispatchStatus, NewDefinition,
};
use kaal_diesel_mysql::{MysqlNamedLockAdapter, MysqlStore, OpenError, TableShape};

const TTL: Duration = Duration::from_secs(60);

/// The tables as the Ruby gem's ActiveRecord migrations create them on MySQL (Rails 7 with
/// mysql2: `t.string` is `varchar(255)` in the server's default collation, `t.datetime` is
/// `datetime(6)`, `metadata` is `text`; no `created_at` / `updated_at` on locks and
/// dispatches).
const RUBY_GEM_TABLES: &str = "
CREATE TABLE `kaal_dispatches` (`id` bigint NOT NULL AUTO_INCREMENT PRIMARY KEY, `key` varchar(255) NOT NULL, `fire_time` datetime(6) NOT NULL, `dispatched_at` datetime(6) NOT NULL, `node_id` varchar(255) NOT NULL, `status` varchar(50) DEFAULT 'dispatched' NOT NULL) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;
CREATE UNIQUE INDEX `index_kaal_dispatches_on_key_and_fire_time` ON `kaal_dispatches` (`key`, `fire_time`);
CREATE INDEX `index_kaal_dispatches_on_key` ON `kaal_dispatches` (`key`);
CREATE TABLE `kaal_locks` (`id` bigint NOT NULL AUTO_INCREMENT PRIMARY KEY, `key` varchar(255) NOT NULL, `acquired_at` datetime(6) NOT NULL, `expires_at` datetime(6) NOT NULL) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;
CREATE UNIQUE INDEX `index_kaal_locks_on_key` ON `kaal_locks` (`key`);
CREATE INDEX `index_kaal_locks_on_expires_at` ON `kaal_locks` (`expires_at`);
CREATE TABLE `kaal_definitions` (`id` bigint NOT NULL AUTO_INCREMENT PRIMARY KEY, `key` varchar(255) NOT NULL, `cron` varchar(255) NOT NULL, `enabled` tinyint(1) DEFAULT 1 NOT NULL, `source` varchar(255) NOT NULL, `metadata` text NOT NULL, `disabled_at` datetime(6), `created_at` datetime(6) NOT NULL, `updated_at` datetime(6) NOT NULL) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;
CREATE UNIQUE INDEX `index_kaal_definitions_on_key` ON `kaal_definitions` (`key`);
";

/// The kaal tables' definitions, to compare before and after.
fn schema(db: &TempDb) -> String {
    schema_of(db, &["kaal_locks", "kaal_dispatches", "kaal_definitions"])
}

/// `tables`' definitions (`SHOW CREATE TABLE`), to compare before and after.
fn schema_of(db: &TempDb, tables: &[&str]) -> String {
    let mut conn = db.connect();
    tables
        .iter()
        .map(|table| {
            #[derive(diesel::QueryableByName)]
            struct Create {
                #[diesel(sql_type = diesel::sql_types::Text, column_name = "Create Table")]
                create: String,
            }
            use diesel::RunQueryDsl;
            diesel::sql_query(format!("SHOW CREATE TABLE {table}"))
                .load::<Create>(&mut conn)
                .map(|rows| rows.into_iter().map(|r| r.create).collect::<String>())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `kaal_definitions`' columns as `name type collation nullable default`, in table order.
fn definition_columns(db: &TempDb) -> String {
    db.text(
        "SELECT GROUP_CONCAT(CONCAT_WS(' ', column_name, column_type, COALESCE(collation_name, '-'), \
         is_nullable, COALESCE(column_default, 'NULL')) ORDER BY ordinal_position SEPARATOR '|') AS value \
         FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = 'kaal_definitions'",
    )
}

/// The gem's columns of every definition row, as text, by id.
fn definition_rows(db: &TempDb) -> String {
    db.text(
        "SELECT COALESCE(GROUP_CONCAT(CONCAT_WS(' ', id, `key`, cron, enabled, source, metadata, \
         disabled_at, created_at, updated_at) ORDER BY id SEPARATOR '|'), '') AS value FROM kaal_definitions",
    )
}

/// `err` is one clear message naming `shown` (the URL without its password) and `needle`.
fn assert_clear(err: &OpenError, shown: &str, needle: &str) {
    let message = err.to_string();
    assert!(matches!(err, OpenError::Connect { .. }), "{err:?}");
    assert!(message.contains(shown), "{message}");
    assert!(message.contains(needle), "{message}");
    assert!(
        !message.contains("s3cret"),
        "the password leaked: {message}"
    );
}

#[test]
fn an_unreachable_server_is_one_clear_error_without_the_password() {
    let err = MysqlStore::open("mysql://root:s3cret@127.0.0.1:1/test").unwrap_err();
    assert_clear(&err, "mysql://root:***@127.0.0.1:1/test", "unreachable");
    let err = MysqlStore::open("mysql://root:s3cret@no-such-host.invalid/test").unwrap_err();
    assert_clear(
        &err,
        "mysql://root:***@no-such-host.invalid/test",
        "cannot resolve host no-such-host.invalid",
    );
}

#[test]
fn a_wrong_password_is_one_clear_error_without_the_password() {
    let url = server_url();
    let (scheme_user, rest) = url.split_once('@').unwrap();
    let user = scheme_user
        .trim_start_matches("mysql://")
        .split(':')
        .next()
        .unwrap();
    let wrong = format!("mysql://{user}:s3cret-wrong@{rest}");
    let shown = format!("mysql://{user}:***@{rest}");
    let err = MysqlStore::open(&wrong).unwrap_err();
    assert_clear(&err, &shown, "Access denied");
    let err = MysqlNamedLockAdapter::open(&wrong).unwrap_err();
    assert_clear(&err, &shown, "Access denied");
}

#[test]
fn a_missing_database_is_one_clear_error_without_the_password() {
    let url = with_database(&server_url(), "kaal_no_such_database");
    let err = MysqlStore::open(&url).unwrap_err();
    assert_clear(
        &err,
        &kaal_diesel::redact_password(&url),
        "kaal_no_such_database",
    );
    assert!(err.to_string().contains("Unknown database"), "{err}");
}

#[test]
fn urls_that_are_not_mysql_are_refused_and_mariadb_is_accepted() {
    for bad in [
        "postgres://root:s3cret@127.0.0.1/test",
        "mysql://root:s3cret@127.0.0.1",
        "mysql://root:s3cret@127.0.0.1/a/b",
    ] {
        let err = MysqlStore::open(bad).unwrap_err();
        assert!(
            matches!(err, OpenError::InvalidLocator { .. }),
            "{bad}: {err:?}"
        );
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }
    let db = TempDb::migrated();
    let maria = db.locator().replacen("mysql://", "mariadb://", 1);
    let store = MysqlStore::open(&maria).unwrap();
    assert!(store.acquire("via-mariadb-scheme", TTL).unwrap());
    assert!(store.locator().starts_with("mariadb://"));
}

#[test]
fn migrations_create_native_types_and_run_twice_as_a_no_op() {
    let db = TempDb::empty();
    let store = db.open();
    // The tables, the node registry, namespaced definitions, schedule_since.
    assert_eq!(store.run_migrations().unwrap().len(), 4);
    let before = schema(&db);
    assert!(store.run_migrations().unwrap().is_empty());
    assert_eq!(schema(&db), before);
    let column = |table: &str, column: &str| {
        db.text(&format!(
            "SELECT CONCAT(column_type, ' ', COALESCE(collation_name, '-')) AS value \
             FROM information_schema.columns WHERE table_schema = DATABASE() \
             AND table_name = '{table}' AND column_name = '{column}'"
        ))
    };
    for table in ["kaal_locks", "kaal_dispatches", "kaal_definitions"] {
        assert_eq!(column(table, "key"), "varchar(255) utf8mb4_bin", "{table}");
    }
    assert_eq!(
        column("kaal_definitions", "namespace"),
        "varchar(255) utf8mb4_bin"
    );
    assert_eq!(column("kaal_locks", "expires_at"), "datetime(6) -");
    assert_eq!(column("kaal_dispatches", "fire_time"), "datetime(6) -");
    // MariaDB's JSON is LONGTEXT with a JSON_VALID check; MySQL's is json.
    assert!(
        ["longtext utf8mb4_bin", "json -"]
            .contains(&column("kaal_definitions", "metadata").as_str()),
        "{}",
        column("kaal_definitions", "metadata")
    );
    assert_eq!(
        store.verify_schema().unwrap(),
        TableShape {
            lock_timestamps: true,
            dispatch_timestamps: true,
        }
    );
}

#[test]
fn migrations_raced_by_several_processes_apply_once() {
    let db = TempDb::empty();
    let stores: Vec<_> = (0..4).map(|_| Arc::new(db.open())).collect();
    let barrier = Arc::new(Barrier::new(stores.len()));
    let handles: Vec<_> = stores
        .iter()
        .map(|store| {
            let (store, barrier) = (store.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                store.run_migrations().unwrap().len()
            })
        })
        .collect();
    let applied: Vec<usize> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(applied.iter().sum::<usize>(), 4, "{applied:?}");
    assert!(stores[0].acquire("after-race", TTL).unwrap());
}

#[test]
fn tables_the_ruby_gem_created_are_accepted_and_used_as_they_are() {
    logs::capture();
    let db = TempDb::empty();
    db.exec(RUBY_GEM_TABLES);
    db.exec(
        "INSERT INTO kaal_definitions (`key`, cron, enabled, source, metadata, created_at, updated_at) \
         VALUES ('ruby-before', '0 9 * * *', 0, 'file', '{\"command\":\"rake report\"}', '2026-01-01 00:00:00.5', '2026-01-01 00:00:00.5')",
    );
    let before = schema_of(&db, &["kaal_locks", "kaal_dispatches"]);
    let definitions_before = definition_columns(&db);
    let rows_before = definition_rows(&db);
    let store = db.open();
    // The tables migration creates nothing the gem made; the node registry adds kaal's own
    // table beside the gem's; namespaced definitions adds `namespace` to kaal_definitions,
    // and schedule_since a nullable `schedule_since`.
    assert_eq!(store.run_migrations().unwrap().len(), 4);
    assert_eq!(
        schema_of(&db, &["kaal_locks", "kaal_dispatches"]),
        before,
        "the gem's tables were changed"
    );
    // kaal_definitions keeps every column of the gem's as it was and gains `namespace`, with
    // the unique index moved from (key) to (namespace, key), and a nullable
    // `schedule_since`; its rows are kept.
    assert_eq!(
        definition_columns(&db),
        format!(
            "{definitions_before}|namespace varchar(255) utf8mb4_bin NO 'kaal'\
             |schedule_since datetime(6) - YES NULL"
        )
    );
    assert_eq!(
        db.text(
            "SELECT GROUP_CONCAT(DISTINCT index_name ORDER BY index_name) AS value \
             FROM information_schema.statistics WHERE table_schema = DATABASE() \
             AND table_name = 'kaal_definitions' AND non_unique = 0"
        ),
        "index_kaal_definitions_on_namespace_and_key,PRIMARY"
    );
    assert_eq!(definition_rows(&db), rows_before, "the gem's rows changed");
    assert_eq!(
        db.text("SELECT namespace AS value FROM kaal_definitions WHERE `key` = 'ruby-before'"),
        "kaal"
    );
    let kept = store
        .find_definition("kaal", "ruby-before")
        .unwrap()
        .unwrap();
    assert_eq!((kept.cron.as_str(), kept.enabled), ("0 9 * * *", false));
    assert_eq!(kept.metadata["command"], "rake report");
    assert_eq!(store.verify_schema().unwrap(), TableShape::default());
    let warned = logs::matching(log::Level::Warn, "utf8mb4_general_ci");
    assert!(
        warned.iter().any(|m| m.contains("kaal_locks")),
        "no warning about case-insensitive keys: {warned:?}"
    );

    // Leases.
    assert!(store.acquire("kaal:dispatch:report:60", TTL).unwrap());
    assert!(!db.open().acquire("kaal:dispatch:report:60", TTL).unwrap());
    let keys = vec!["a".to_string(), "b".to_string()];
    assert_eq!(store.acquire_many(&keys, TTL).unwrap(), [true, true]);
    assert_eq!(store.acquire_many(&keys, TTL).unwrap(), [false, false]);
    assert!(store.release("a").unwrap());

    // Dispatch log, next to a row a Ruby node wrote.
    db.exec(
        "INSERT INTO kaal_dispatches (`key`, fire_time, dispatched_at, node_id, status) \
         VALUES ('report', '2026-01-01 09:00:00', '2026-01-01 09:00:01.5', 'ruby-node', 'dispatched')",
    );
    let nine = Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap();
    let record = store.find_dispatch("report", nine).unwrap().unwrap();
    assert_eq!(record.node_id, "ruby-node");
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

    // Definitions: metadata is text in the gem's table.
    db.exec(
        "INSERT INTO kaal_definitions (`key`, cron, enabled, source, metadata, created_at, updated_at) \
         VALUES ('ruby-job', '0 * * * *', 1, 'code', '{\"owner\":\"ruby\"}', UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
    );
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
    let stored = db.text("SELECT metadata AS value FROM kaal_definitions WHERE `key` = 'rust-job'");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stored).unwrap(),
        serde_json::Value::Object(metadata),
        "the gem reads this text as JSON"
    );
}

#[test]
fn kaal_tables_of_the_wrong_shape_are_refused_and_left_untouched() {
    let db = TempDb::empty();
    db.exec(
        "CREATE TABLE kaal_locks (id bigint NOT NULL AUTO_INCREMENT PRIMARY KEY, \
         `key` varchar(255) NOT NULL, acquired_at datetime(6) NOT NULL); \
         INSERT INTO kaal_locks (`key`, acquired_at) VALUES ('kept', '2026-01-01')",
    );
    let before = schema(&db);
    let err = MysqlStore::open(db.locator()).unwrap_err();
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
    assert!(message.contains("expires_at"), "{message}");
    assert!(message.contains(db.locator()), "{message}");
    assert_eq!(schema(&db), before);
    assert_eq!(db.text("SELECT `key` AS value FROM kaal_locks"), "kept");

    // Without the unique index the claims rely on, the store refuses to run.
    let db = TempDb::empty();
    db.exec(&RUBY_GEM_TABLES.replace(
        "CREATE UNIQUE INDEX `index_kaal_locks_on_key` ON `kaal_locks` (`key`);",
        "",
    ));
    let store = db.open();
    let err = store.run_migrations().unwrap_err();
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
    assert!(
        err.to_string().contains("no unique index on (key)"),
        "{err}"
    );
    let err = store.acquire("k", TTL).unwrap_err().to_string();
    assert!(err.contains("no unique index"), "{err}");
}

#[test]
fn the_namespace_migration_keeps_existing_definitions_in_the_default_namespace() {
    use diesel_migrations::MigrationHarness;
    let db = TempDb::empty();
    {
        let mut conn = db.connect();
        conn.run_next_migration(kaal_diesel_mysql::MIGRATIONS)
            .unwrap();
        conn.run_next_migration(kaal_diesel_mysql::MIGRATIONS)
            .unwrap();
    }
    db.exec(
        "INSERT INTO kaal_definitions (`key`, cron, enabled, source, metadata, disabled_at, created_at, updated_at) VALUES \
         ('sync', '*/5 * * * *', 0, 'file', '{\"kaal\":{\"command\":[\"sync\"]}}', '2026-01-02 03:04:05', '2026-01-01 00:00:00', '2026-01-02 03:04:05'), \
         ('report', '@daily', 1, 'code', '{}', NULL, '2026-01-01 00:00:00', '2026-01-01 00:00:00')",
    );
    let store = db.open();
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
    assert_eq!(
        store.run_migrations().unwrap(),
        ["20261130000001", "20261130000002"]
    );
    assert_eq!(
        db.text(
            "SELECT GROUP_CONCAT(CONCAT(namespace, ':', `key`) ORDER BY `key` SEPARATOR ' ') AS value FROM kaal_definitions"
        ),
        "kaal:report kaal:sync"
    );
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

#[test]
fn the_schedule_since_migration_keeps_every_definition_and_reads_null_as_created_at() {
    use diesel_migrations::MigrationHarness;
    let db = TempDb::empty();
    {
        let mut conn = db.connect();
        for _ in 0..3 {
            conn.run_next_migration(kaal_diesel_mysql::MIGRATIONS)
                .unwrap();
        }
    }
    db.exec(
        "INSERT INTO kaal_definitions (namespace, `key`, cron, enabled, source, metadata, disabled_at, created_at, updated_at) VALUES \
         ('kaal', 'sync', '*/5 * * * *', 0, 'file', '{\"kaal\":{\"command\":[\"sync\"]}}', '2026-01-02 03:04:05', '2026-01-01 00:00:00', '2026-01-02 03:04:05'), \
         ('app2', 'report', '@daily', 1, 'code', '{}', NULL, '2026-01-01 00:00:00.25', '2026-01-01 00:00:00.25')",
    );
    let rows_before = definition_rows(&db);
    let store = db.open();
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
    assert_eq!(store.run_migrations().unwrap(), ["20261130000002"]);
    assert_eq!(
        definition_rows(&db),
        rows_before,
        "the definition rows changed"
    );
    assert_eq!(
        db.text("SELECT CAST(COUNT(*) AS CHAR) AS value FROM kaal_definitions WHERE schedule_since IS NULL"),
        "2"
    );
    let report = store.find_definition("app2", "report").unwrap().unwrap();
    assert_eq!(report.schedule_since, report.created_at);
    let sync = store.find_definition("kaal", "sync").unwrap().unwrap();
    assert_eq!(
        sync.schedule_since,
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
    );
    let disabled = store.disable_definition("kaal", "sync").unwrap().unwrap();
    assert_eq!(disabled.schedule_since, sync.created_at);
    let enabled = store.enable_definition("kaal", "sync").unwrap().unwrap();
    assert_eq!(enabled.schedule_since, enabled.updated_at);
    assert!(store.run_migrations().unwrap().is_empty());
}
