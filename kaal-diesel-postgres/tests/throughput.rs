//! Lease and advisory-lock throughput, beside a raw INSERT on the same pool, for the record
//! (`cargo test -p kaal-diesel-postgres --release --test throughput -- --ignored --nocapture`).

mod common;

use common::{PgHooks, TempDb};
use kaal_diesel::testing::throughput::{adapter_rates, lease_rates};

#[test]
#[ignore = "measurement, not a check"]
fn single_acquire_throughput() {
    let db = TempDb::migrated();
    lease_rates(&PgHooks, &db.open(), "");
    adapter_rates(&common::open_advisory(db.locator()), "advisory ");
}
