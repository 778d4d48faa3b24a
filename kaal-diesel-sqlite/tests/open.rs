//! Opening SQLite files: kaal-diesel's shared open behaviours (tables of the wrong shape
//! refused untouched, tables the Ruby gem created accepted as they are, migrations that ran
//! part-way or race), and what only a file has: a missing directory, a file that is not a
//! database, WAL mode and the busy timeout, the gem's older tables with timestamps, a
//! missing lock index added by the migrations.

mod common;

use std::fs;
use std::time::Duration;

use chrono::Utc;
use common::{exec_file, text, FileDb, TempDb, RUBY_GEM_TABLES};
use kaal_core::{Adapter, DispatchRegistry, DispatchStatus};
use kaal_diesel_sqlite::{OpenError, SqliteStore, TableShape};

const TTL: Duration = Duration::from_secs(60);

kaal_diesel::open_suite!(common::SqliteHooks);

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
