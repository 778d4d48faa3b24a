//! Lease and named-lock throughput, single and batch, beside a raw INSERT on the same pool,
//! for the record (`cargo test -p kaal-diesel-mysql --release --test throughput -- --ignored
//! --nocapture`).

mod common;

use common::{MysqlHooks, TempDb};
use kaal_diesel::testing::throughput::{adapter_rates, lease_rates};

#[test]
#[ignore = "measurement, not a check"]
fn single_acquire_and_batch_throughput() {
    let db = TempDb::migrated();
    lease_rates(&MysqlHooks, &db.open(), "");
    adapter_rates(&common::open_named(db.locator()), "named ");
}
