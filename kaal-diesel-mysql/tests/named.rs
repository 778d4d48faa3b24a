//! Named locks: the behaviours every session-lock backend shares (kaal-diesel's
//! `session_suite!`: exclusion, no re-entry, release only by the holder, ttl, a killed
//! session survived, batches, key limits, claims on logged fire times given back, the
//! registries), and what only MySQL has: the Ruby gem's lock names, namespaces keeping
//! fleets on one server apart, the open error of an unreachable server.
//!
//! `GET_LOCK` names are server-wide: every test names its keys after its own database (or
//! uses adapters whose namespace is that name), so tests running at once never share a lock.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{database_of, name_is_free, TempDb};
use kaal_core::Adapter;
use kaal_diesel_mysql::{lock_name, MysqlNamedLockAdapter, MysqlOptions};

const TTL: Duration = Duration::from_secs(60);

kaal_diesel::session_suite!(common::MysqlHooks);

#[test]
fn lock_names_match_the_rule_as_the_server_computes_it() {
    let db = TempDb::empty();
    let keys = [
        "kaal:dispatch:report:1767225600".to_string(),
        "k".repeat(64),
        "k".repeat(65),
        format!("kaal:{}", "x".repeat(300)),
        format!(
            "kaal:dispatch:rapport-journalier:{}:東京:1767225600",
            "é".repeat(40)
        ),
        "é".repeat(64),
        "é".repeat(65),
    ];
    for key in &keys {
        let quoted = key.replace('\'', "''");
        let expected = db.text(&format!(
            "SELECT IF(CHAR_LENGTH('{quoted}') > 64, \
             CONCAT(LEFT('{quoted}', 47), ':', LEFT(SHA2('{quoted}', 256), 16)), '{quoted}') AS value"
        ));
        assert_eq!(lock_name(key), expected, "{key}");
        assert!(lock_name(key).chars().count() <= 64);
    }
    // The 300-character key: 47 characters, ':' and the digest's first 16 hex digits.
    let name = lock_name(&keys[3]);
    assert_eq!(name, format!("kaal:{}:ee8dde7fc406550d", "x".repeat(42)));
}

#[test]
fn a_held_lock_excludes_other_sessions_under_the_gems_name() {
    let db = TempDb::migrated();
    // No namespace: the lock name is the key's, as a Ruby node computes it.
    let a = MysqlNamedLockAdapter::open(db.locator()).unwrap();
    let long = format!(
        "kaal:dispatch:{}:{}:1767225600",
        database_of(db.locator()),
        "job".repeat(30)
    );
    for key in [
        format!("kaal:dispatch:{}:1767225600", database_of(db.locator())),
        long,
    ] {
        let name = lock_name(&key);
        assert_eq!(a.lock_name(&key), name);
        assert!(name_is_free(&db, &name));
        assert!(a.acquire(&key, TTL).unwrap());
        assert!(!name_is_free(&db, &name), "a Ruby node could take {name}");
        assert!(a.release(&key).unwrap());
        assert!(name_is_free(&db, &name));
    }
}

#[test]
fn namespaces_keep_fleets_on_one_server_apart() {
    let db = TempDb::migrated();
    let open = |namespace: &str| {
        MysqlNamedLockAdapter::open_with(db.locator(), MysqlOptions::default(), namespace).unwrap()
    };
    let (blue_1, blue_2) = (
        open(&format!("{}-blue:", database_of(db.locator()))),
        open(&format!("{}-blue:", database_of(db.locator()))),
    );
    let green = open(&format!("{}-green:", database_of(db.locator())));
    assert!(blue_1.acquire("kaal:dispatch:report:60", TTL).unwrap());
    assert!(!blue_2.acquire("kaal:dispatch:report:60", TTL).unwrap());
    assert!(
        green.acquire("kaal:dispatch:report:60", TTL).unwrap(),
        "fleets collided"
    );
    assert_eq!(
        blue_1.namespace(),
        format!("{}-blue:", database_of(db.locator()))
    );
    assert_eq!(
        blue_1.lock_name("kaal:dispatch:report:60"),
        lock_name(&format!(
            "{}-blue:kaal:dispatch:report:60",
            database_of(db.locator())
        ))
    );
}

#[test]
fn an_unreachable_server_fails_at_open_naming_the_url_without_the_password() {
    let err = MysqlNamedLockAdapter::open("mysql://root:s3cret@127.0.0.1:1/test").unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("mysql://root:***@127.0.0.1:1/test"),
        "{message}"
    );
    assert!(!message.contains("s3cret"), "{message}");
}
