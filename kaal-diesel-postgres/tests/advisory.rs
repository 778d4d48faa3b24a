//! Advisory locks: the Ruby gem's ids, one session per adapter, no re-entry, release only
//! by the holder, ttl, a terminated session survived, claims on logged fire times given
//! back.
#![allow(clippy::unwrap_used)]

mod common;

use std::thread;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use common::{logs, open_advisory, TempDb};
use diesel::{Connection, PgConnection};
use kaal_core::{lock_key, Adapter, DispatchRegistry, DispatchStatus};
use kaal_diesel_postgres::advisory_lock_id;

const TTL: Duration = Duration::from_secs(60);

/// Whether another session could take the advisory lock of `key` right now (it takes and
/// gives it back), as a Ruby node would try.
fn free_for_others(db: &TempDb, key: &str) -> bool {
    let mut conn = PgConnection::establish(db.locator()).unwrap();
    let id = advisory_lock_id(key);
    common::text_on(
        &mut conn,
        &format!("SELECT (pg_try_advisory_lock({id}) AND pg_advisory_unlock({id}))::text AS value"),
    ) == "true"
}

/// The backend pid of the adapters' lock sessions on `db`.
fn lock_session_pids(db: &TempDb) -> Vec<i32> {
    let pids = db.text(
        "SELECT coalesce(string_agg(pid::text, ','), '') AS value FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = 'kaal advisory'",
    );
    pids.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| p.parse().unwrap())
        .collect()
}

#[test]
fn lock_ids_are_the_ones_postgresql_and_the_ruby_gem_compute() {
    let db = TempDb::empty();
    for key in [
        "kaal:dispatch:report:1767225600",
        "kaal:dispatch:rapport-journalier:été:東京:1767225600",
        "",
        "a",
        &"k".repeat(255),
    ] {
        let quoted = key.replace('\'', "''");
        let expected = db.text(&format!(
            "SELECT (('x' || substr(md5('{quoted}'), 1, 16))::bit(64)::bigint)::text AS value"
        ));
        assert_eq!(advisory_lock_id(key).to_string(), expected, "{key}");
    }
}

#[test]
fn a_held_lock_excludes_other_sessions_under_the_gems_id() {
    let db = TempDb::migrated();
    let a = open_advisory(db.locator());
    let key = "kaal:dispatch:report:1767225600";
    assert!(free_for_others(&db, key));
    assert!(a.acquire(key, TTL).unwrap());
    assert!(!free_for_others(&db, key), "a Ruby node could take it");
    let id = advisory_lock_id(key);
    let held = db.text(&format!(
        "SELECT count(*)::text AS value FROM pg_locks WHERE locktype = 'advisory' AND granted \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         AND ((classid::bigint << 32) | objid::bigint) = ({id}::bigint & x'ffffffffffffffff'::bigint)"
    ));
    assert_eq!(held, "1");
    assert!(a.release(key).unwrap());
    assert!(free_for_others(&db, key));
}

#[test]
fn acquire_of_a_held_key_from_the_same_process_returns_false() {
    let db = TempDb::migrated();
    let a = open_advisory(db.locator());
    let b = open_advisory(db.locator());
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
    // One release frees it: PostgreSQL counted no second grant.
    assert!(a.release("mine").unwrap());
    assert!(b.acquire("mine", TTL).unwrap());
}

#[test]
fn release_from_another_adapter_returns_false_and_leaves_the_lock_held() {
    let db = TempDb::migrated();
    let holder = open_advisory(db.locator());
    let other = open_advisory(db.locator());
    assert!(holder.acquire("held", TTL).unwrap());
    assert!(!other.release("held").unwrap());
    assert!(
        !other.acquire("held", TTL).unwrap(),
        "the lock was released"
    );
    assert!(!free_for_others(&db, "held"));
    assert!(holder.release("held").unwrap());
    assert!(other.acquire("held", TTL).unwrap());
}

#[test]
fn a_terminated_lock_session_is_reported_replaced_and_its_locks_treated_as_lost() {
    logs::capture();
    let db = TempDb::migrated();
    let a = open_advisory(db.locator());
    let b = open_advisory(db.locator());
    assert!(a.acquire("k1", TTL).unwrap());
    assert!(a
        .acquire_many(&["k2".to_string(), "k3".to_string()], TTL)
        .unwrap()
        .iter()
        .all(|w| *w));
    let pids_before = lock_session_pids(&db);
    assert_eq!(pids_before.len(), 2);
    // Kill a's session (the one holding advisory locks).
    let victim = db.text(
        "SELECT pid::text AS value FROM pg_locks WHERE locktype = 'advisory' AND granted \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) LIMIT 1",
    );
    assert_eq!(
        db.text(&format!(
            "SELECT pg_terminate_backend({victim})::text AS value"
        )),
        "true"
    );
    thread::sleep(Duration::from_millis(200));
    // The server released the locks with the session: b takes one at once.
    assert!(b.acquire("k1", TTL).unwrap());
    // a's next operation notices, logs, reconnects and carries on.
    assert!(a.acquire("k4", TTL).unwrap(), "a did not recover");
    let reported = logs::matching(log::Level::Error, "lock session was lost");
    assert!(!reported.is_empty(), "the lost session was not logged");
    assert!(
        reported.iter().any(|m| m.contains("3 lock(s)")),
        "{reported:?}"
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
    let pids_after = lock_session_pids(&db);
    assert_eq!(pids_after.len(), 2);
    assert!(!pids_after.contains(&victim.parse().unwrap()));
}

#[test]
fn a_lock_past_its_ttl_is_released_by_its_holder() {
    let db = TempDb::migrated();
    let a = open_advisory(db.locator());
    assert!(a.acquire("short", Duration::from_millis(300)).unwrap());
    let batch: Vec<String> = (0..50).map(|i| format!("short-batch-{i}")).collect();
    assert!(a
        .acquire_many(&batch, Duration::from_millis(300))
        .unwrap()
        .into_iter()
        .all(|won| won));
    assert!(a.acquire("long", Duration::from_secs(60)).unwrap());
    assert!(!free_for_others(&db, "short"));
    // Waiting out the ttl is the point here; the reaper runs on its own thread.
    thread::sleep(Duration::from_millis(600));
    assert!(
        free_for_others(&db, "short"),
        "the reaper did not release it"
    );
    assert!(
        batch.iter().all(|key| free_for_others(&db, key)),
        "the reaper's batch left a lock held"
    );
    assert!(!free_for_others(&db, "long"), "a live lock was released");
    assert_eq!(a.held_count(), 1);
    assert!(!a.release("short").unwrap());
}

#[test]
fn a_batch_of_many_locks_is_taken_in_one_call_and_excludes_others() {
    let db = TempDb::migrated();
    let a = open_advisory(db.locator());
    let b = open_advisory(db.locator());
    let keys: Vec<String> = (0..2_000)
        .map(|i| format!("kaal:dispatch:job:{i}"))
        .collect();
    assert!(a.acquire_many(&keys, TTL).unwrap().iter().all(|w| *w));
    assert_eq!(a.held_count(), 2_000);
    assert!(b.acquire_many(&keys, TTL).unwrap().iter().all(|w| !*w));
    let mixed = vec![
        "kaal:dispatch:job:1".to_string(),
        "fresh".to_string(),
        "fresh".to_string(),
    ];
    assert_eq!(b.acquire_many(&mixed, TTL).unwrap(), [false, true, false]);
}

#[test]
fn a_claim_on_a_fire_time_its_dead_holder_logged_is_given_back() {
    let db = TempDb::migrated();
    let fire = Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap();
    let key = lock_key("kaal", "report", fire);
    {
        // The holder claims, logs, and its process ends (session and locks gone).
        let holder = open_advisory(db.locator());
        assert!(holder.acquire(&key, TTL).unwrap());
        holder
            .dispatch_registry()
            .unwrap()
            .log_dispatch("report", fire, "holder", DispatchStatus::Dispatched)
            .unwrap();
    }
    let late = open_advisory(db.locator());
    assert!(!late.acquire(&key, TTL).unwrap());
    assert_eq!(late.held_count(), 0, "the claim was not given back");
    assert!(free_for_others(&db, &key));
    // A fire time nobody logged is claimed as usual.
    let next = lock_key("kaal", "report", fire + chrono::Duration::minutes(1));
    assert!(late.acquire(&next, TTL).unwrap());
}

#[test]
fn a_key_over_255_bytes_is_a_clear_error() {
    let db = TempDb::migrated();
    let a = open_advisory(db.locator());
    let err = a.acquire(&"é".repeat(128), TTL).unwrap_err().to_string();
    assert!(
        err.starts_with("PostgreSQL advisory acquire failed for "),
        "{err}"
    );
    assert!(err.contains("256 bytes"), "{err}");
    assert_eq!(a.held_count(), 0);
}

#[test]
fn the_adapter_keeps_the_registries_of_its_store() {
    let db = TempDb::migrated();
    let a = open_advisory(db.locator());
    let fire = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    a.dispatch_registry()
        .unwrap()
        .log_dispatch("job", fire, "n1", DispatchStatus::Failed)
        .unwrap();
    let record = a.store().find_dispatch("job", fire).unwrap().unwrap();
    assert_eq!(record.status, DispatchStatus::Failed);
    assert!(a.definition_registry().is_some());
    assert_eq!(a.name(), "PostgreSQL advisory");
}
