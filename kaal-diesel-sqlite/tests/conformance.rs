//! The kaal conformance suite, run against SQLite files, plus the multi-process scenario:
//! 4 OS processes × 200 fire times × 3 jobs on one file.

mod common;

kaal_testkit::conformance_suite!(common::SQLITE_FILES);
kaal_testkit::fleet_suite!(common::SQLITE_FILES);
