//! Leases on PostgreSQL: kaal-diesel's shared lease behaviours (the one-statement claim,
//! expiry decided by the database's clock whatever a node's clock says, release, the batch
//! form, key limits, races between pools), and lease times in UTC whatever the session's
//! time zone.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use chrono::{NaiveDateTime, TimeDelta};
use common::TempDb;
use kaal_core::Adapter;

const TTL: Duration = Duration::from_secs(60);

kaal_diesel::lease_suite!(common::PgHooks);

fn timestamp(db: &TempDb, sql: &str) -> NaiveDateTime {
    let text = db.text(sql);
    NaiveDateTime::parse_from_str(&text, "%Y-%m-%d %H:%M:%S%.f")
        .unwrap_or_else(|err| panic!("{sql}: {text}: {err}"))
}

#[test]
fn lease_times_are_utc_whatever_the_sessions_time_zone() {
    let db = TempDb::migrated();
    let name = common::database_of(db.locator());
    db.exec(&format!(
        "ALTER DATABASE {name} SET timezone = 'Pacific/Kiritimati'"
    ));
    let store = db.open(); // new connections get UTC+14
    assert!(store.acquire("tz", TTL).unwrap());
    let acquired = timestamp(
        &db,
        r#"SELECT acquired_at::text AS value FROM kaal_locks WHERE "key" = 'tz'"#,
    );
    let utc_now = chrono::Utc::now().naive_utc();
    assert!(
        (acquired - utc_now).abs() < TimeDelta::seconds(30),
        "acquired_at {acquired} is not UTC (now {utc_now})"
    );
    assert!(!db.open().acquire("tz", TTL).unwrap());
}
