//! Opening MySQL databases: kaal-diesel's shared open behaviours (tables of the wrong shape
//! refused untouched, tables the Ruby gem created accepted as they are, migrations that ran
//! part-way or race), and what is MySQL's own: connection errors naming the URL without its
//! password, its URL forms, native column types and binary collations, a warning about the
//! gem's case-insensitive keys, a missing lock index refused.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{logs, server_url, with_database, MysqlHooks, TempDb, RUBY_GEM_TABLES};
use kaal_core::Adapter;
use kaal_diesel::testing::open::{
    assert_clear_connect_error as assert_clear, assert_schema_mismatch,
};
use kaal_diesel::testing::SqlBackend;
use kaal_diesel_mysql::{MysqlNamedLockAdapter, MysqlStore, OpenError, TableShape};

const TTL: Duration = Duration::from_secs(60);

kaal_diesel::open_suite!(common::MysqlHooks);

/// The kaal tables' definitions, to compare before and after.
fn schema(db: &TempDb) -> String {
    MysqlHooks.schema_of(
        db.locator(),
        &["kaal_locks", "kaal_dispatches", "kaal_definitions"],
    )
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
    // The tables, the node registry, namespaced definitions, schedule_since, run lifecycle.
    assert_eq!(store.run_migrations().unwrap().len(), 5);
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
    assert_eq!(column("kaal_dispatches", "started_at"), "datetime(6) -");
    assert_eq!(column("kaal_dispatches", "finished_at"), "datetime(6) -");
    // MariaDB and MySQL before 8.0.19 show a display width.
    assert!(
        ["int(11) -", "int -"].contains(&column("kaal_dispatches", "attempt").as_str()),
        "{}",
        column("kaal_dispatches", "attempt")
    );
    // Any text a job reports, whatever the table's character set.
    assert_eq!(column("kaal_dispatches", "error"), "text utf8mb4_bin");
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
fn gem_tables_whose_keys_compare_case_insensitively_are_warned_about() {
    logs::capture();
    let db = TempDb::empty();
    db.exec(RUBY_GEM_TABLES);
    db.open().run_migrations().unwrap();
    let warned = logs::matching(log::Level::Warn, "utf8mb4_general_ci");
    assert!(
        warned.iter().any(|m| m.contains("kaal_locks")),
        "no warning about case-insensitive keys: {warned:?}"
    );
}

#[test]
fn without_the_unique_index_the_claims_rely_on_the_store_refuses_to_run() {
    let db = TempDb::empty();
    db.exec(&RUBY_GEM_TABLES.replace(
        "CREATE UNIQUE INDEX `index_kaal_locks_on_key` ON `kaal_locks` (`key`);",
        "",
    ));
    let store = db.open();
    let err = store.run_migrations().unwrap_err();
    assert_schema_mismatch(&err, "kaal_locks");
    assert!(
        err.to_string().contains("no unique index on (key)"),
        "{err}"
    );
    let err = store.acquire("k", TTL).unwrap_err().to_string();
    assert!(err.contains("no unique index"), "{err}");
}
