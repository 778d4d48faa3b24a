//! Named locks: the Ruby gem's names, one session per adapter, no re-entry, release only by
//! the holder, ttl, a killed session survived, namespaces, bad keys.
//!
//! `GET_LOCK` names are server-wide: every test names its keys after its own database (or
//! uses adapters whose namespace is that name), so tests running at once never share a lock.
#![allow(clippy::unwrap_used)]

mod common;

use std::thread;
use std::time::Duration;

use common::{database_of, logs, open_named, TempDb};
use kaal_core::Adapter;
use kaal_diesel_mysql::{lock_name, MysqlNamedLockAdapter, MysqlOptions};

const TTL: Duration = Duration::from_secs(60);

/// Whether another session could take the lock `name` right now, as a Ruby node would try.
fn free_for_others(db: &TempDb, name: &str) -> bool {
    db.text(&format!(
        "SELECT CAST(IS_FREE_LOCK('{}') AS CHAR) AS value",
        name.replace('\'', "''")
    )) == "1"
}

/// The connection id of the session holding `name`.
fn holder_of(db: &TempDb, name: &str) -> String {
    db.text(&format!(
        "SELECT CAST(IS_USED_LOCK('{}') AS CHAR) AS value",
        name.replace('\'', "''")
    ))
}

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
        assert!(free_for_others(&db, &name));
        assert!(a.acquire(&key, TTL).unwrap());
        assert!(
            !free_for_others(&db, &name),
            "a Ruby node could take {name}"
        );
        assert!(a.release(&key).unwrap());
        assert!(free_for_others(&db, &name));
    }
}

#[test]
fn acquire_of_a_held_key_from_the_same_process_returns_false() {
    let db = TempDb::migrated();
    let a = open_named(db.locator());
    let b = open_named(db.locator());
    assert!(a.acquire("mine", TTL).unwrap());
    assert!(
        !a.acquire("mine", TTL).unwrap(),
        "the same adapter re-entered"
    );
    assert_eq!(a.acquire_many(&["mine".to_string()], TTL).unwrap(), [false]);
    assert!(
        !b.acquire("mine", TTL).unwrap(),
        "another adapter of this process"
    );
    assert_eq!(a.held_count(), 1);
    // One release frees it: MySQL counted no second grant.
    assert!(a.release("mine").unwrap());
    assert!(free_for_others(&db, &a.lock_name("mine")));
    assert!(b.acquire("mine", TTL).unwrap());
}

#[test]
fn release_from_another_adapter_returns_false_and_leaves_the_lock_held() {
    let db = TempDb::migrated();
    let holder = open_named(db.locator());
    let other = open_named(db.locator());
    assert!(holder.acquire("held", TTL).unwrap());
    assert!(!other.release("held").unwrap());
    assert!(
        !other.acquire("held", TTL).unwrap(),
        "the lock was released"
    );
    assert!(!free_for_others(&db, &holder.lock_name("held")));
    assert!(holder.release("held").unwrap());
    assert!(other.acquire("held", TTL).unwrap());
}

#[test]
fn a_killed_lock_session_is_reported_replaced_and_its_locks_treated_as_lost() {
    logs::capture();
    let db = TempDb::migrated();
    let a = open_named(db.locator());
    let b = open_named(db.locator());
    assert!(a.acquire("k1", TTL).unwrap());
    assert!(a
        .acquire_many(&["k2".to_string(), "k3".to_string()], TTL)
        .unwrap()
        .iter()
        .all(|w| *w));
    let victim = holder_of(&db, &a.lock_name("k1"));
    assert_eq!(
        holder_of(&db, &a.lock_name("k3")),
        victim,
        "one session holds all"
    );
    db.exec(&format!("KILL {victim}"));
    thread::sleep(Duration::from_millis(200));
    // The server released the locks with the session: b takes one at once.
    assert!(b.acquire("k1", TTL).unwrap());
    // a's next operation notices, logs, reconnects and carries on.
    assert!(a.acquire("k4", TTL).unwrap(), "a did not recover");
    let reported = logs::matching(log::Level::Error, "lock session was lost");
    assert!(
        reported
            .iter()
            .any(|m| m.contains("MySQL named lock") && m.contains("3 lock(s)")),
        "the lost session was not reported: {reported:?}"
    );
    assert_eq!(
        a.held_count(),
        1,
        "the lost locks are still counted as held"
    );
    assert!(!a.release("k2").unwrap(), "a lost lock was released");
    assert!(
        a.acquire("k2", TTL).unwrap(),
        "a lost lock cannot be taken again"
    );
    assert!(!b.acquire("k4", TTL).unwrap());
    assert_ne!(holder_of(&db, &a.lock_name("k4")), victim);
}

#[test]
fn a_lock_past_its_ttl_is_released_by_its_holder() {
    let db = TempDb::migrated();
    let a = open_named(db.locator());
    let name = a.lock_name("short");
    assert!(a.acquire("short", Duration::from_millis(300)).unwrap());
    assert!(!free_for_others(&db, &name));
    thread::sleep(Duration::from_millis(700));
    assert!(free_for_others(&db, &name), "the reaper did not release it");
    assert_eq!(a.held_count(), 0);
    assert!(!a.release("short").unwrap());
}

#[test]
fn a_batch_of_many_locks_is_taken_in_one_call_and_excludes_others() {
    let db = TempDb::migrated();
    let a = open_named(db.locator());
    let b = open_named(db.locator());
    let keys: Vec<String> = (0..1_000)
        .map(|i| format!("kaal:dispatch:job:{i}"))
        .collect();
    assert!(a.acquire_many(&keys, TTL).unwrap().iter().all(|w| *w));
    assert_eq!(a.held_count(), 1_000);
    assert!(b.acquire_many(&keys, TTL).unwrap().iter().all(|w| !*w));
    let mixed = vec![
        "kaal:dispatch:job:1".to_string(),
        "fresh".to_string(),
        "fresh".to_string(),
    ];
    assert_eq!(b.acquire_many(&mixed, TTL).unwrap(), [false, true, false]);
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
fn a_key_over_255_bytes_is_a_clear_error() {
    let db = TempDb::migrated();
    let a = open_named(db.locator());
    let long = "k".repeat(256);
    let err = a.acquire(&long, TTL).unwrap_err().to_string();
    assert!(
        err.starts_with("MySQL named lock acquire failed for kkk"),
        "{err}"
    );
    assert!(err.contains("256 bytes"), "{err}");
    let err = a
        .acquire_many(&["ok".to_string(), long], TTL)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("MySQL named lock batch acquire failed"),
        "{err}"
    );
    assert_eq!(a.held_count(), 0);
}

#[test]
fn the_registries_are_the_databases_tables() {
    let db = TempDb::migrated();
    let a = open_named(db.locator());
    let t = chrono::DateTime::from_timestamp(1_767_225_600, 0).unwrap();
    a.dispatch_registry()
        .unwrap()
        .log_dispatch("report", t, "node-a", kaal_core::DispatchStatus::Dispatched)
        .unwrap();
    assert_eq!(
        db.text("SELECT node_id AS value FROM kaal_dispatches WHERE `key` = 'report'"),
        "node-a"
    );
    assert!(a
        .definition_registry()
        .unwrap()
        .all_definitions("kaal")
        .unwrap()
        .is_empty());
    // A claim on a fire time the log already records is given back.
    let key = kaal_core::lock_key("kaal", "report", t);
    assert!(!a.acquire(&key, TTL).unwrap());
    assert!(free_for_others(&db, &a.lock_name(&key)));
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
