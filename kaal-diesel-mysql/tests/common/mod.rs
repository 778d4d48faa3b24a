//! The MySQL backend as the tests see it: every store a fresh database on the server of
//! `KAAL_MYSQL_URL` (default `mysql://root@127.0.0.1:3306/test`), dropped after the test;
//! every node its own pool (and, for named locks, its own session). [`MysqlHooks`] runs
//! kaal-diesel's shared store behaviours, and ([`MYSQL_LEASES`], [`MYSQL_NAMED_LOCKS`])
//! kaal-testkit's conformance suite.
#![allow(dead_code, unused_imports, clippy::unwrap_used)]

use std::sync::Arc;

use diesel::connection::SimpleConnection;
use diesel::{Connection, MysqlConnection};
use kaal_diesel::testing::{fresh_database_name, Conformance, SqlBackend};
use kaal_diesel_mysql::{MysqlDialect, MysqlNamedLockAdapter, MysqlOptions, MysqlStore};

pub use kaal_diesel::testing::{database_of, logs, text_on, with_database};

/// How MySQL prints a `DATETIME(6)` cast to text.
pub const TEXT_TIME: &str = "%Y-%m-%d %H:%M:%S%.6f";

/// A fresh database, dropped when the guard drops.
pub type TempDb = kaal_diesel::testing::TempDb<MysqlHooks>;

/// The server the tests run against.
pub fn server_url() -> String {
    std::env::var("KAAL_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
}

/// A connection to the server's default database, for creating and dropping databases;
/// fails the test naming the URL when the server cannot be reached (never skips).
pub fn admin() -> MysqlConnection {
    let url = server_url();
    MysqlConnection::establish(&url).unwrap_or_else(|err| {
        panic!(
            "the MySQL tests need a server at {} (set KAAL_MYSQL_URL): {err}",
            kaal_diesel::redact_password(&url)
        )
    })
}

/// What kaal-diesel's shared store behaviours need of MySQL: a fresh database
/// `kaal_test_<pid>_<n>` per test, plain connections, backquotes, `CAST(... AS CHAR)` and
/// MySQL's SQL for times; batches of 5 000 keys.
#[derive(Debug, Clone, Copy, Default)]
pub struct MysqlHooks;

impl SqlBackend for MysqlHooks {
    type Dialect = MysqlDialect;
    type Connection = MysqlConnection;

    const LARGE_BATCH: usize = 5_000;

    fn create_database(&self) -> String {
        let name = fresh_database_name("kaal_test");
        admin()
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS `{name}`; CREATE DATABASE `{name}`"
            ))
            .unwrap_or_else(|err| panic!("cannot create database {name}: {err}"));
        with_database(&server_url(), &name)
    }

    fn drop_database(&self, locator: &str) {
        let name = database_of(locator);
        if name.starts_with("kaal_test_") {
            let _ = admin().batch_execute(&format!("DROP DATABASE IF EXISTS `{name}`"));
        }
    }

    fn quote(&self, identifier: &str) -> String {
        format!("`{identifier}`")
    }

    fn cast_text(&self, expr: &str) -> String {
        format!("CAST({expr} AS CHAR)")
    }

    fn now_plus(&self, seconds: i64) -> String {
        format!("(UTC_TIMESTAMP(6) + INTERVAL {seconds} SECOND)")
    }

    fn seconds_until(&self, column: &str) -> String {
        format!("TIMESTAMPDIFF(MICROSECOND, UTC_TIMESTAMP(6), {column}) / 1000000")
    }

    fn outage(&self, locator: &str) -> Option<Box<dyn kaal_testkit::Outage>> {
        Some(Box::new(kaal_testkit::TcpCut::new(locator, 3306)))
    }
}

/// A new store (own pool) on `locator`.
pub fn open(locator: &str) -> MysqlStore {
    MysqlStore::open(locator).unwrap_or_else(|err| panic!("cannot open store {locator}: {err}"))
}

/// A named-lock adapter on `locator` whose lock names are prefixed with the database's name,
/// so tests on different databases of one server do not share locks.
pub fn open_named(locator: &str) -> MysqlNamedLockAdapter {
    let namespace = format!("{}:", database_of(locator));
    MysqlNamedLockAdapter::open_with(locator, MysqlOptions::default(), namespace)
        .unwrap_or_else(|err| panic!("cannot open named locks on {locator}: {err}"))
}

/// Lease-table stores in fresh databases.
pub const MYSQL_LEASES: Conformance<MysqlHooks> = Conformance::leases(MysqlHooks);

/// Named-lock adapters on fresh databases (registries in the database's tables).
pub const MYSQL_NAMED_LOCKS: Conformance<MysqlHooks> =
    Conformance::session_locks(MysqlHooks, |locator| Arc::new(open_named(locator)));
