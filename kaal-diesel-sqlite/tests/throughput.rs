//! Lease throughput with `synchronous` FULL and NORMAL, beside a raw INSERT on the same
//! pool, for the record (`cargo test -p kaal-diesel-sqlite --release --test throughput --
//! --ignored --nocapture`).

mod common;

use common::{SqliteHooks, TempDb};
use kaal_diesel::testing::throughput::lease_rates;
use kaal_diesel_sqlite::{SqliteOptions, Synchronous};

#[test]
#[ignore = "measurement, not a check"]
fn single_acquire_throughput() {
    for synchronous in [Synchronous::Full, Synchronous::Normal] {
        let db = TempDb::migrated();
        let store = db.open_with(SqliteOptions {
            synchronous,
            ..SqliteOptions::default()
        });
        lease_rates(&SqliteHooks, &store, &format!("{synchronous} "));
    }
}
