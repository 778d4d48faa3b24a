//! The kaal conformance suite, run against SQLite files.
//!
//! The multi-process scenario (`kaal_testkit::fleet_suite!`) is not invoked yet: as of this
//! writing its parent waits for a worker line equal to `KAAL_FLEET_READY`, but libtest
//! prints the worker's output after `test kaal_fleet_worker ... ` on the same line, so the
//! parent never sees it and hangs. With that check relaxed (`ends_with`), the scenario passes
//! on SQLite: 4 processes, 0 duplicates, 0 missing.

mod common;

kaal_testkit::conformance_suite!(common::SqliteFiles);
