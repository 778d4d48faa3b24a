//! Leases on SQLite: kaal-diesel's shared lease behaviours (the one-statement claim, expiry
//! decided by the database's clock, release, the batch form, races between pools and
//! threads), and the times SQLite stores as text.

mod common;

use std::time::Duration;

use common::{text, TempDb};
use kaal_core::Adapter;

const TTL: Duration = Duration::from_secs(60);

kaal_diesel::lease_suite!(common::SqliteHooks);

#[test]
fn lease_times_are_written_in_activerecords_format() {
    let db = TempDb::migrated();
    let store = db.open();
    assert!(store.acquire("fmt", TTL).unwrap());
    for column in ["acquired_at", "expires_at", "created_at", "updated_at"] {
        let value = text(
            &store,
            &format!(r#"SELECT {column} AS value FROM kaal_locks WHERE "key" = 'fmt'"#),
        );
        assert_eq!(value.len(), 26, "{column} = {value}");
        assert!(
            chrono::NaiveDateTime::parse_from_str(&value, "%Y-%m-%d %H:%M:%S%.6f").is_ok(),
            "{column} = {value}"
        );
    }
}
