//! `kaal::connect` through the library: URLs pick backends, features are named.
#![allow(clippy::unwrap_used)]

mod common;

use common::databases::{Backend, Database};
use kaal::chrono::{TimeZone, Utc};
use kaal::{connect, Config, DatabaseKind, Fire, Kaal};

#[test]
fn memory_urls_give_an_in_process_store_with_registries() {
    let store = connect("memory:").unwrap();
    assert_eq!(store.backend(), DatabaseKind::Memory);
    store.run_migrations().unwrap();
    assert!(store.adapter().definition_registry().is_some());
}

#[test]
#[cfg(not(all(feature = "postgres", feature = "mysql")))]
fn server_urls_without_their_feature_name_the_feature_and_hide_the_password() {
    for (url, feature) in [
        #[cfg(not(feature = "postgres"))]
        ("postgres://kaal:pw@db/kaal", "postgres"),
        #[cfg(not(feature = "postgres"))]
        ("postgresql://db/kaal", "postgres"),
        #[cfg(not(feature = "mysql"))]
        ("mysql://root:pw@db/kaal", "mysql"),
    ] {
        let err = connect(url).unwrap_err();
        assert!(
            matches!(err, kaal::ConnectError::FeatureDisabled { .. }),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains(&format!("enable the `{feature}` feature")),
            "{text}"
        );
        assert!(!text.contains(":pw@"), "{text}");
    }
}

#[cfg(feature = "sqlite")]
#[test]
fn a_plain_path_opens_sqlite_creating_missing_directories() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dirs/kaal.db");
    let store = connect(path.to_str().unwrap()).unwrap();
    assert_eq!(store.backend(), DatabaseKind::Sqlite);
    store.run_migrations().unwrap();
    store.run_migrations().unwrap();

    let kaal = Kaal::new(Config::default(), store.adapter()).unwrap();
    kaal.register("hello", "* * * * *", |_: &Fire| Ok(()))
        .unwrap();
    let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 30).unwrap();
    assert_eq!(kaal.tick_at(at).dispatched.len(), 2);

    // A second process's view: the same file, a fresh node, nothing left to dispatch.
    let again = connect(&format!("sqlite://{}", path.display())).unwrap();
    // Another process has a node id of its own (the default is host and pid).
    let config = Config {
        node_id: "second-process".into(),
        ..Config::default()
    };
    let other = Kaal::new(config, again.adapter()).unwrap();
    other
        .register("hello", "* * * * *", |_: &Fire| Ok(()))
        .unwrap();
    let report = other.tick_at(at);
    assert!(report.dispatched.is_empty());
    assert_eq!(report.already_dispatched.len(), 2);
}

/// On a database whose kaal tables were never created, registering and starting fail with
/// a message naming the fix (in the `Debug` form `main` prints too); after
/// `run_migrations()` registering works.
#[allow(dead_code)]
fn a_database_never_migrated_names_the_fix(backend: Backend) {
    let database = Database::create(backend, "never_migrated");
    let store = connect(database.url()).unwrap();
    let kaal = Kaal::new(Config::default(), store.adapter()).unwrap();

    let err = kaal.register("hello", "* * * * *", |_| Ok(())).unwrap_err();
    let fix = "run `kaal migrate` or call `run_migrations()`";
    assert!(err.to_string().contains(fix), "{backend}: {err}");
    assert!(format!("{err:?}").contains(fix), "{backend}: {err:?}");
    let start = kaal.try_start().unwrap_err();
    assert!(start.to_string().contains(fix), "{backend}: {start}");

    store.run_migrations().unwrap();
    kaal.register("hello", "* * * * *", |_| Ok(())).unwrap();
}

#[cfg(feature = "sqlite")]
#[test]
fn registering_on_an_sqlite_file_never_migrated_names_the_fix() {
    a_database_never_migrated_names_the_fix(Backend::Sqlite);
}

#[cfg(feature = "postgres")]
#[test]
fn registering_on_a_postgres_database_never_migrated_names_the_fix() {
    a_database_never_migrated_names_the_fix(Backend::Postgres);
}

#[cfg(feature = "mysql")]
#[test]
fn registering_on_a_mysql_database_never_migrated_names_the_fix() {
    a_database_never_migrated_names_the_fix(Backend::Mysql);
}
