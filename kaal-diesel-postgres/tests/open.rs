//! Opening PostgreSQL databases: bad input is one clear error naming the URL without its
//! password; tables the Ruby gem created are accepted and used as they are; tables of the
//! wrong shape are refused untouched; migrations are idempotent, also when raced.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use common::{server_url, with_database, TempDb};
use kaal_core::{
    Adapter, DefinitionRegistry, DefinitionSource, DispatchRegistry, DispatchStatus, NewDefinition,
};
use kaal_diesel_postgres::{OpenError, PgAdvisoryAdapter, PgStore, TableShape};

const TTL: Duration = Duration::from_secs(60);

/// The tables as the Ruby gem's current ActiveRecord migrations create them on PostgreSQL
/// (Rails 7: `t.string` is `character varying` without a length, `t.datetime` is
/// `timestamp(6)`, `metadata` is `text`; no `created_at` / `updated_at` on locks and
/// dispatches).
const RUBY_GEM_TABLES: &str = r#"
CREATE TABLE "kaal_dispatches" ("id" bigserial primary key, "key" character varying NOT NULL, "fire_time" timestamp(6) NOT NULL, "dispatched_at" timestamp(6) NOT NULL, "node_id" character varying NOT NULL, "status" character varying(50) DEFAULT 'dispatched' NOT NULL);
CREATE UNIQUE INDEX "index_kaal_dispatches_on_key_and_fire_time" ON "kaal_dispatches" ("key", "fire_time");
CREATE INDEX "index_kaal_dispatches_on_key" ON "kaal_dispatches" ("key");
CREATE TABLE "kaal_locks" ("id" bigserial primary key, "key" character varying NOT NULL, "acquired_at" timestamp(6) NOT NULL, "expires_at" timestamp(6) NOT NULL);
CREATE UNIQUE INDEX "index_kaal_locks_on_key" ON "kaal_locks" ("key");
CREATE INDEX "index_kaal_locks_on_expires_at" ON "kaal_locks" ("expires_at");
CREATE TABLE "kaal_definitions" ("id" bigserial primary key, "key" character varying NOT NULL, "cron" character varying NOT NULL, "enabled" boolean DEFAULT TRUE NOT NULL, "source" character varying NOT NULL, "metadata" text DEFAULT '{}' NOT NULL, "disabled_at" timestamp(6), "created_at" timestamp(6) NOT NULL, "updated_at" timestamp(6) NOT NULL);
CREATE UNIQUE INDEX "index_kaal_definitions_on_key" ON "kaal_definitions" ("key");
"#;

/// The gem's columns of every definition row, as text, by id.
fn definition_rows(db: &TempDb) -> String {
    db.text(
        "SELECT coalesce(string_agg(concat_ws(' ', id, key, cron, enabled, source, metadata, disabled_at, created_at, updated_at), '|' ORDER BY id), '') AS value FROM kaal_definitions",
    )
}

fn schema(db: &TempDb) -> String {
    db.text(
        "SELECT string_agg(table_name || '.' || column_name || ':' || data_type, ',' ORDER BY table_name, ordinal_position) AS value \
         FROM information_schema.columns WHERE table_schema = current_schema() AND table_name LIKE 'kaal%' AND table_name <> 'kaal_nodes'",
    )
}

/// Asserts `err` is one line naming `shown` (and not `secret`) and containing `needle`.
fn assert_clear(err: &OpenError, shown: &str, needle: &str) {
    let message = err.to_string();
    assert!(!message.contains('\n'), "more than one line: {message}");
    assert!(message.contains(shown), "does not name {shown}: {message}");
    assert!(!message.contains("s3cret"), "shows the password: {message}");
    assert!(message.contains(needle), "no {needle:?}: {message}");
}

fn url_with_user(user: &str, database: &str) -> String {
    let url = with_database(&server_url(), database);
    let (scheme, rest) = url.split_once("://").unwrap();
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    format!("{scheme}://{user}:s3cret@{host}")
}

#[test]
fn an_unreachable_server_is_one_clear_error_without_the_password() {
    let url = "postgres://kaal:s3cret@127.0.0.1:1/app";
    let err = PgStore::open(url).unwrap_err();
    assert!(matches!(err, OpenError::Connect { .. }), "{err:?}");
    assert_clear(
        &err,
        "postgres://kaal:***@127.0.0.1:1/app",
        "cannot connect to PostgreSQL database",
    );
    assert_clear(&err, "127.0.0.1:1", "refused");
    let err = PgAdvisoryAdapter::open(url).unwrap_err();
    assert_clear(&err, "postgres://kaal:***@127.0.0.1:1/app", "refused");
}

#[test]
fn an_unknown_user_is_one_clear_error_without_the_password() {
    // The local server trusts every local user, so a wrong password cannot be shown with it;
    // an unknown role is the credentials failure it reports.
    let url = url_with_user("kaal_no_such_role", "test");
    let err = PgStore::open(&url).unwrap_err();
    assert!(matches!(err, OpenError::Connect { .. }), "{err:?}");
    let shown = url.replace(":s3cret@", ":***@");
    assert_clear(&err, &shown, "role \"kaal_no_such_role\" does not exist");
}

#[test]
fn a_missing_database_is_one_clear_error_without_the_password() {
    let url = url_with_user("postgres", "kaal_no_such_database");
    let shown = url.replace(":s3cret@", ":***@");
    let err = PgStore::open(&url).unwrap_err();
    assert_clear(
        &err,
        &shown,
        "database \"kaal_no_such_database\" does not exist",
    );
    let err = PgAdvisoryAdapter::open(&url).unwrap_err();
    assert_clear(&err, &shown, "does not exist");
}

#[test]
fn urls_that_are_not_postgresql_are_refused() {
    for bad in [
        "mysql://root:s3cret@localhost/db",
        "kaal.db",
        "host=localhost dbname=test",
    ] {
        let err = PgStore::open(bad).unwrap_err();
        assert!(
            matches!(err, OpenError::InvalidLocator { .. }),
            "{bad}: {err:?}"
        );
        let message = err.to_string();
        assert!(message.contains("postgres://"), "{message}");
        assert!(!message.contains("s3cret"), "{message}");
    }
}

#[test]
fn postgresql_scheme_and_query_parameters_are_accepted() {
    let db = TempDb::migrated();
    let url = db.locator().replacen("postgres://", "postgresql://", 1);
    let url = format!(
        "{url}{}sslmode=disable",
        if url.contains('?') { '&' } else { '?' }
    );
    let store = PgStore::open(&url).unwrap();
    assert!(store.acquire("k", TTL).unwrap());
    assert!(
        !store.locator().contains("connect_timeout"),
        "{}",
        store.locator()
    );
}

#[test]
fn migrations_create_native_types_and_run_twice_as_a_no_op() {
    let db = TempDb::empty();
    let store = db.open();
    // The tables, the node registry, namespaced definitions, schedule_since.
    assert_eq!(store.run_migrations().unwrap().len(), 4);
    assert!(store.run_migrations().unwrap().is_empty());
    let columns = schema(&db);
    for expected in [
        "kaal_locks.id:bigint",
        "kaal_locks.key:character varying",
        "kaal_locks.expires_at:timestamp without time zone",
        "kaal_dispatches.fire_time:timestamp without time zone",
        "kaal_definitions.metadata:jsonb",
        "kaal_definitions.enabled:boolean",
        "kaal_definitions.namespace:character varying",
        "kaal_definitions.schedule_since:timestamp without time zone",
    ] {
        assert!(columns.contains(expected), "{expected} not in {columns}");
    }
    assert_eq!(
        store.verify_schema().unwrap(),
        TableShape {
            lock_timestamps: true,
            dispatch_timestamps: true
        }
    );
}

#[test]
fn migrations_raced_by_several_processes_apply_once() {
    let db = TempDb::empty();
    let stores: Vec<_> = (0..4).map(|_| Arc::new(db.open())).collect();
    let barrier = Arc::new(Barrier::new(stores.len()));
    let applied: usize = stores
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
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .sum();
    assert_eq!(applied, 4, "each of the four migrations applied once");
}

#[test]
fn tables_the_ruby_gem_created_are_accepted_and_used_as_they_are() {
    let db = TempDb::empty();
    db.exec(RUBY_GEM_TABLES);
    db.exec(
        "INSERT INTO kaal_definitions (key, cron, enabled, source, metadata, created_at, updated_at) \
         VALUES ('ruby-before', '0 9 * * *', false, 'file', '{\"command\":\"rake report\"}', '2026-01-01 00:00:00.5', '2026-01-01 00:00:00.5')",
    );
    let before = schema(&db);
    let rows_before = definition_rows(&db);
    let store = db.open();
    // The tables migration creates nothing the gem made; the node registry adds kaal's own
    // table beside the gem's; namespaced definitions adds `namespace` to kaal_definitions,
    // and schedule_since a nullable `schedule_since`.
    assert_eq!(store.run_migrations().unwrap().len(), 4);
    // Every column of the gem's is kept as it was; kaal_definitions gains `namespace` and
    // `schedule_since` (last).
    let last_definition_column = "kaal_definitions.updated_at:timestamp without time zone";
    assert!(before.contains(last_definition_column), "{before}");
    assert_eq!(
        schema(&db),
        before.replace(
            last_definition_column,
            &format!(
                "{last_definition_column},kaal_definitions.namespace:character varying,\
                 kaal_definitions.schedule_since:timestamp without time zone"
            )
        ),
        "the gem's tables were changed beyond the namespace and schedule_since columns"
    );
    assert_eq!(
        db.text(
            "SELECT string_agg(indexname, ',' ORDER BY indexname) AS value FROM pg_indexes \
             WHERE tablename = 'kaal_definitions' AND indexdef LIKE 'CREATE UNIQUE%'"
        ),
        "index_kaal_definitions_on_namespace_and_key,kaal_definitions_pkey"
    );
    assert_eq!(definition_rows(&db), rows_before, "the gem's rows changed");
    assert_eq!(
        db.text("SELECT namespace AS value FROM kaal_definitions WHERE key = 'ruby-before'"),
        "kaal"
    );
    let kept = store
        .find_definition("kaal", "ruby-before")
        .unwrap()
        .unwrap();
    assert_eq!((kept.cron.as_str(), kept.enabled), ("0 9 * * *", false));
    assert_eq!(kept.metadata["command"], "rake report");
    assert_eq!(store.verify_schema().unwrap(), TableShape::default());

    // Leases.
    assert!(store.acquire("kaal:dispatch:report:60", TTL).unwrap());
    assert!(!db.open().acquire("kaal:dispatch:report:60", TTL).unwrap());
    let keys = vec!["a".to_string(), "b".to_string()];
    assert_eq!(store.acquire_many(&keys, TTL).unwrap(), [true, true]);
    assert!(store.release("a").unwrap());

    // Dispatch log, next to a row a Ruby node wrote.
    db.exec(
        "INSERT INTO kaal_dispatches (key, fire_time, dispatched_at, node_id, status) \
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
        "INSERT INTO kaal_definitions (key, cron, enabled, source, metadata, created_at, updated_at) \
         VALUES ('ruby-job', '0 * * * *', true, 'code', '{\"owner\":\"ruby\"}', now(), now())",
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
    let stored = db.text("SELECT metadata AS value FROM kaal_definitions WHERE key = 'rust-job'");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stored).unwrap(),
        serde_json::Value::Object(metadata),
        "the gem reads this text as JSON"
    );
}

#[test]
fn a_metadata_column_of_type_json_is_read_and_written() {
    let db = TempDb::migrated();
    db.exec("ALTER TABLE kaal_definitions ALTER COLUMN metadata DROP DEFAULT, ALTER COLUMN metadata TYPE json USING metadata::json");
    let store = db.open();
    let mut metadata = serde_json::Map::new();
    metadata.insert("n".into(), 1.into());
    store
        .upsert_definition(
            "kaal",
            NewDefinition {
                key: "j".into(),
                cron: "@daily".into(),
                enabled: true,
                source: DefinitionSource::Code,
                metadata: metadata.clone(),
            },
        )
        .unwrap();
    assert_eq!(store.all_definitions("kaal").unwrap()[0].metadata, metadata);
}

#[test]
fn kaal_tables_of_the_wrong_shape_are_refused_and_left_untouched() {
    let db = TempDb::empty();
    db.exec(r#"CREATE TABLE kaal_locks (id bigserial primary key, "key" varchar(255) NOT NULL, acquired_at timestamp NOT NULL)"#);
    let before = schema(&db);
    let err = PgStore::open(db.locator()).unwrap_err();
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
    assert!(err.to_string().contains("expires_at"), "{err}");
    assert_eq!(schema(&db), before);

    let db = TempDb::empty();
    db.exec(&RUBY_GEM_TABLES.replace(
        r#"CREATE UNIQUE INDEX "index_kaal_locks_on_key" ON "kaal_locks" ("key");"#,
        "",
    ));
    let store = db.open();
    // The migrations add the missing unique index (IF NOT EXISTS by name)...
    store.run_migrations().unwrap();
    assert!(store.acquire("k", TTL).unwrap());

    let db = TempDb::empty();
    db.exec(&RUBY_GEM_TABLES.replace(
        r#"CREATE UNIQUE INDEX "index_kaal_dispatches_on_key_and_fire_time" ON "kaal_dispatches" ("key", "fire_time");"#,
        r#"CREATE UNIQUE INDEX "index_kaal_dispatches_on_key_and_fire_time" ON "kaal_dispatches" ("fire_time", "key");"#,
    ));
    // ...but an index of that name on other columns is not the one the upserts need.
    let err = db.open().run_migrations().unwrap_err();
    assert!(
        matches!(
            err,
            OpenError::SchemaMismatch {
                table: "kaal_dispatches",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("no unique index on (key,fire_time)"),
        "{err}"
    );
}

#[test]
fn the_namespace_migration_keeps_existing_definitions_in_the_default_namespace() {
    use diesel::{Connection, PgConnection};
    use diesel_migrations::MigrationHarness;
    let db = TempDb::empty();
    {
        let mut conn = PgConnection::establish(db.locator()).unwrap();
        conn.run_next_migration(kaal_diesel_postgres::MIGRATIONS)
            .unwrap();
        conn.run_next_migration(kaal_diesel_postgres::MIGRATIONS)
            .unwrap();
    }
    db.exec(
        "INSERT INTO kaal_definitions (key, cron, enabled, source, metadata, disabled_at, created_at, updated_at) VALUES \
         ('sync', '*/5 * * * *', false, 'file', '{\"kaal\":{\"command\":[\"sync\"]}}', '2026-01-02 03:04:05', '2026-01-01 00:00:00', '2026-01-02 03:04:05'), \
         ('report', '@daily', true, 'code', '{}', NULL, '2026-01-01 00:00:00', '2026-01-01 00:00:00')",
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
    assert!(
        err.to_string().contains("run the migrations first"),
        "{err}"
    );
    assert_eq!(
        store.run_migrations().unwrap(),
        ["20261130000001", "20261130000002"]
    );
    assert_eq!(
        db.text(
            "SELECT string_agg(namespace || ':' || key, ' ' ORDER BY key) AS value FROM kaal_definitions"
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
    assert_eq!(store.all_definitions("kaal").unwrap().len(), 2);
    assert!(store.run_migrations().unwrap().is_empty());
}

#[test]
fn the_schedule_since_migration_keeps_every_definition_and_reads_null_as_created_at() {
    use diesel::{Connection, PgConnection};
    use diesel_migrations::MigrationHarness;
    let db = TempDb::empty();
    {
        let mut conn = PgConnection::establish(db.locator()).unwrap();
        for _ in 0..3 {
            conn.run_next_migration(kaal_diesel_postgres::MIGRATIONS)
                .unwrap();
        }
    }
    db.exec(
        "INSERT INTO kaal_definitions (namespace, key, cron, enabled, source, metadata, disabled_at, created_at, updated_at) VALUES \
         ('kaal', 'sync', '*/5 * * * *', false, 'file', '{\"kaal\":{\"command\":[\"sync\"]}}', '2026-01-02 03:04:05', '2026-01-01 00:00:00', '2026-01-02 03:04:05'), \
         ('app2', 'report', '@daily', true, 'code', '{}', NULL, '2026-01-01 00:00:00.25', '2026-01-01 00:00:00.25')",
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
        db.text(
            "SELECT count(*)::text AS value FROM kaal_definitions WHERE schedule_since IS NULL"
        ),
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
