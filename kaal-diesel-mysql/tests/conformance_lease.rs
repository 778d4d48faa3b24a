//! The kaal conformance suite against MySQL lease tables (a fresh database per test), plus
//! the multi-process scenario: 4 OS processes × 200 fire times × 3 jobs on one database.

mod common;

kaal_testkit::conformance_suite!(common::MYSQL_LEASES);
kaal_testkit::fleet_suite!(common::MYSQL_LEASES);
