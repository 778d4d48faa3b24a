//! The kaal conformance suite against PostgreSQL advisory locks (one lock session per
//! adapter), plus the multi-process scenario: 4 OS processes × 200 fire times × 3 jobs on
//! one database. Nothing is opted out: advisory locks honour ttl through the adapter's
//! reaper, and the same adapter never acquires a key it holds.

mod common;

kaal_testkit::conformance_suite!(common::PG_ADVISORY);
kaal_testkit::fleet_suite!(common::PG_ADVISORY);
