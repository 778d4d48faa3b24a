//! Advisory locks: the behaviours every session-lock backend shares (kaal-diesel's
//! `session_suite!`: exclusion, no re-entry, release only by the holder, ttl, a terminated
//! session survived, batches, key limits, claims on logged fire times given back, the
//! registries), and what only PostgreSQL has: the Ruby gem's lock ids.

mod common;

use common::TempDb;
use kaal_diesel_postgres::advisory_lock_id;

kaal_diesel::session_suite!(common::PgHooks);

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
