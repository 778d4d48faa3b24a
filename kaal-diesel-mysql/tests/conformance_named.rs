//! The kaal conformance suite against MySQL named locks (`GET_LOCK` on a dedicated session,
//! registries in a fresh database per test), plus the multi-process scenario. No behaviour
//! is opted out of: ttls are honoured by the holder, which releases expired locks.
//!
//! Lock names are server-wide; each test's adapters prefix them with the test's database
//! name (the adapter's namespace), so tests running in parallel do not share locks.

mod common;

kaal_testkit::conformance_suite!(common::MYSQL_NAMED_LOCKS);
kaal_testkit::fleet_suite!(common::MYSQL_NAMED_LOCKS);
