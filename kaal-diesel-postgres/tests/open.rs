//! Opening PostgreSQL databases: kaal-diesel's shared open behaviours (tables of the wrong
//! shape refused untouched, tables the Ruby gem created accepted as they are, migrations
//! that ran part-way or race), and what is PostgreSQL's own: connection errors naming the
//! URL without its password, its URL forms, native column types, a `json` metadata column,
//! the lock table's unique index added by name.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{server_url, with_database, TempDb, RUBY_GEM_TABLES};
use kaal_core::{Adapter, DefinitionRegistry, DefinitionSource, NewDefinition};
use kaal_diesel::testing::open::{
    assert_clear_connect_error as assert_clear, assert_schema_mismatch,
};
use kaal_diesel_postgres::{OpenError, PgAdvisoryAdapter, PgStore, TableShape};

const TTL: Duration = Duration::from_secs(60);

kaal_diesel::open_suite!(common::PgHooks);

fn schema(db: &TempDb) -> String {
    db.text(
        "SELECT string_agg(table_name || '.' || column_name || ':' || data_type, ',' ORDER BY table_name, ordinal_position) AS value \
         FROM information_schema.columns WHERE table_schema = current_schema() AND table_name LIKE 'kaal%' AND table_name <> 'kaal_nodes'",
    )
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
    // The tables, the node registry, namespaced definitions, schedule_since, run lifecycle.
    assert_eq!(store.run_migrations().unwrap().len(), 5);
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
        "kaal_dispatches.started_at:timestamp without time zone",
        "kaal_dispatches.finished_at:timestamp without time zone",
        "kaal_dispatches.attempt:integer",
        "kaal_dispatches.error:text",
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
fn the_migrations_add_a_missing_lock_index_but_refuse_one_of_its_name_on_other_columns() {
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
    assert_schema_mismatch(&err, "kaal_dispatches");
    assert!(
        err.to_string()
            .contains("no unique index on (key,fire_time)"),
        "{err}"
    );
}
