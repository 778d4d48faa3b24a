//! The kaal conformance suite against the PostgreSQL lease table (`kaal_locks` rows), plus
//! the multi-process scenario: 4 OS processes × 200 fire times × 3 jobs on one database.

mod common;

kaal_testkit::conformance_suite!(common::PG_LEASES);
kaal_testkit::fleet_suite!(common::PG_LEASES);
