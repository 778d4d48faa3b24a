//! The MySQL backend as the tests see it: every store a fresh database on the server of
//! `KAAL_MYSQL_URL` (default `mysql://root@127.0.0.1:3306/test`), dropped after the test;
//! every node its own pool (and, for named locks, its own session). [`MysqlHooks`] runs
//! kaal-diesel's shared store and session-lock behaviours, and ([`MYSQL_LEASES`],
//! [`MYSQL_NAMED_LOCKS`]) kaal-testkit's conformance suite.
#![allow(dead_code, unused_imports, clippy::unwrap_used)]

use std::sync::Arc;

use diesel::connection::SimpleConnection;
use diesel::{Connection, MysqlConnection};
use diesel_migrations::EmbeddedMigrations;
use kaal_diesel::testing::{fresh_database_name, Conformance, SessionBackend, SqlBackend};
use kaal_diesel_mysql::{lock_name, MysqlDialect, MysqlNamedLockAdapter, MysqlOptions, MysqlStore};

pub use kaal_diesel::testing::{database_of, logs, text_on, with_database};

/// How MySQL prints a `DATETIME(6)` cast to text.
pub const TEXT_TIME: &str = "%Y-%m-%d %H:%M:%S%.6f";

/// The tables as the Ruby gem's ActiveRecord migrations create them on MySQL (Rails 7 with
/// mysql2: `t.string` is `varchar(255)` in the server's default collation, `t.datetime` is
/// `datetime(6)`, `metadata` is `text`; no `created_at` / `updated_at` on locks and
/// dispatches).
pub const RUBY_GEM_TABLES: &str = "
CREATE TABLE `kaal_dispatches` (`id` bigint NOT NULL AUTO_INCREMENT PRIMARY KEY, `key` varchar(255) NOT NULL, `fire_time` datetime(6) NOT NULL, `dispatched_at` datetime(6) NOT NULL, `node_id` varchar(255) NOT NULL, `status` varchar(50) DEFAULT 'dispatched' NOT NULL) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;
CREATE UNIQUE INDEX `index_kaal_dispatches_on_key_and_fire_time` ON `kaal_dispatches` (`key`, `fire_time`);
CREATE INDEX `index_kaal_dispatches_on_key` ON `kaal_dispatches` (`key`);
CREATE TABLE `kaal_locks` (`id` bigint NOT NULL AUTO_INCREMENT PRIMARY KEY, `key` varchar(255) NOT NULL, `acquired_at` datetime(6) NOT NULL, `expires_at` datetime(6) NOT NULL) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;
CREATE UNIQUE INDEX `index_kaal_locks_on_key` ON `kaal_locks` (`key`);
CREATE INDEX `index_kaal_locks_on_expires_at` ON `kaal_locks` (`expires_at`);
CREATE TABLE `kaal_definitions` (`id` bigint NOT NULL AUTO_INCREMENT PRIMARY KEY, `key` varchar(255) NOT NULL, `cron` varchar(255) NOT NULL, `enabled` tinyint(1) DEFAULT 1 NOT NULL, `source` varchar(255) NOT NULL, `metadata` text NOT NULL, `disabled_at` datetime(6), `created_at` datetime(6) NOT NULL, `updated_at` datetime(6) NOT NULL) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;
CREATE UNIQUE INDEX `index_kaal_definitions_on_key` ON `kaal_definitions` (`key`);
";

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

    const MIGRATIONS: EmbeddedMigrations = kaal_diesel_mysql::MIGRATIONS;
    const RUBY_GEM_TABLES: &'static str = RUBY_GEM_TABLES;
    const LOCK_TABLE_WITHOUT_EXPIRES_AT: &'static str =
        "CREATE TABLE kaal_locks (id bigint NOT NULL AUTO_INCREMENT PRIMARY KEY, \
         `key` varchar(255) NOT NULL, acquired_at datetime(6) NOT NULL); \
         INSERT INTO kaal_locks (`key`, acquired_at) VALUES ('kept', '2026-01-01')";
    const COLUMNS_ADDED_TO_THE_GEMS_DEFINITIONS: [&'static str; 2] = [
        "namespace varchar(255) utf8mb4_bin NO 'kaal'",
        "schedule_since datetime(6) - YES NULL",
    ];
    const COLUMNS_ADDED_TO_THE_GEMS_DISPATCHES: [&'static str; 4] = [
        "started_at datetime(6) - YES NULL",
        "finished_at datetime(6) - YES NULL",
        // MariaDB and MySQL before 8.0.19 show int(11).
        "attempt int(11) - NO 0",
        "error text utf8mb4_bin YES NULL",
    ];
    const DEFINITIONS_PRIMARY_KEY: Option<&'static str> = Some("PRIMARY(id)");
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

    fn table_names(&self, locator: &str) -> Vec<String> {
        self.texts(
            locator,
            "SELECT CAST(table_name AS CHAR) AS value FROM information_schema.tables \
             WHERE table_schema = DATABASE() ORDER BY table_name",
        )
    }

    /// `SHOW CREATE TABLE` of each table (nothing for a missing one).
    fn schema_of(&self, locator: &str, tables: &[&str]) -> String {
        #[derive(diesel::QueryableByName)]
        struct Create {
            #[diesel(sql_type = diesel::sql_types::Text, column_name = "Create Table")]
            create: String,
        }
        use diesel::RunQueryDsl;
        let mut conn = self.connect(locator);
        tables
            .iter()
            .map(|table| {
                diesel::sql_query(format!("SHOW CREATE TABLE {table}"))
                    .load::<Create>(&mut conn)
                    .map(|rows| rows.into_iter().map(|r| r.create).collect::<String>())
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `name type collation nullable default`.
    fn table_columns(&self, locator: &str, table: &str) -> Vec<String> {
        self.texts(
            locator,
            &format!(
                "SELECT CONCAT_WS(' ', column_name, column_type, COALESCE(collation_name, '-'), \
                 is_nullable, COALESCE(column_default, 'NULL')) AS value FROM information_schema.columns \
                 WHERE table_schema = DATABASE() AND table_name = '{table}' \
                 ORDER BY ordinal_position"
            ),
        )
    }

    fn unique_indexes(&self, locator: &str, table: &str) -> Vec<String> {
        self.texts(
            locator,
            &format!(
                "SELECT CONCAT(index_name, '(', GROUP_CONCAT(column_name ORDER BY seq_in_index \
                 SEPARATOR ','), ')') AS value FROM information_schema.statistics \
                 WHERE table_schema = DATABASE() AND table_name = '{table}' AND non_unique = 0 \
                 GROUP BY index_name ORDER BY index_name"
            ),
        )
    }

    fn outage(&self, locator: &str) -> Option<Box<dyn kaal_testkit::Outage>> {
        Some(Box::new(kaal_testkit::TcpCut::new(locator, 3306)))
    }
}

/// A new store (own pool) on `locator`.
pub fn open(locator: &str) -> MysqlStore {
    MysqlStore::open(locator).unwrap_or_else(|err| panic!("cannot open store {locator}: {err}"))
}

/// The namespace of [`open_named`]'s adapters on `locator`: the database's name and `:`.
pub fn test_namespace(locator: &str) -> String {
    format!("{}:", database_of(locator))
}

/// A named-lock adapter on `locator` whose lock names are prefixed with the database's name
/// ([`test_namespace`]), so tests on different databases of one server do not share locks.
pub fn open_named(locator: &str) -> MysqlNamedLockAdapter {
    MysqlNamedLockAdapter::open_with(locator, MysqlOptions::default(), test_namespace(locator))
        .unwrap_or_else(|err| panic!("cannot open named locks on {locator}: {err}"))
}

/// Whether another session could take the named lock `name` right now (`IS_FREE_LOCK`), as
/// a Ruby node would try.
pub fn name_is_free(db: &TempDb, name: &str) -> bool {
    db.text(&format!(
        "SELECT CAST(IS_FREE_LOCK('{}') AS CHAR) AS value",
        name.replace('\'', "''")
    )) == "1"
}

/// What kaal-diesel's shared session-lock behaviours need of MySQL: the named-lock adapter
/// of [`open_named`] (namespaced by database), and its locks as another session sees them.
impl SessionBackend for MysqlHooks {
    type Locks = MysqlNamedLockAdapter;

    const LOCKS_NAME: &'static str = "MySQL named lock";
    const MANY_LOCKS: usize = 1_000;

    fn open_locks(&self, locator: &str) -> MysqlNamedLockAdapter {
        open_named(locator)
    }

    fn held_count(locks: &MysqlNamedLockAdapter) -> usize {
        locks.held_count()
    }

    fn free_for_others(&self, db: &TempDb, key: &str) -> bool {
        name_is_free(db, &named_lock_of(db, key))
    }

    /// The connection id `IS_USED_LOCK` gives.
    fn holder_of(&self, db: &TempDb, key: &str) -> Option<String> {
        let id = db.text(&format!(
            "SELECT COALESCE(CAST(IS_USED_LOCK('{}') AS CHAR), '') AS value",
            named_lock_of(db, key).replace('\'', "''")
        ));
        (!id.is_empty()).then_some(id)
    }

    fn kill_session(&self, db: &TempDb, connection_id: &str) {
        let id: u64 = connection_id.parse().unwrap();
        db.exec(&format!("KILL {id}"));
    }
}

/// The name [`open_named`]'s adapters on `db` lock for `key`.
fn named_lock_of(db: &TempDb, key: &str) -> String {
    lock_name(&format!("{}{key}", test_namespace(db.locator())))
}

/// Lease-table stores in fresh databases.
pub const MYSQL_LEASES: Conformance<MysqlHooks> = Conformance::leases(MysqlHooks);

/// Named-lock adapters on fresh databases (registries in the database's tables).
pub const MYSQL_NAMED_LOCKS: Conformance<MysqlHooks> =
    Conformance::session_locks(MysqlHooks, |locator| Arc::new(open_named(locator)));
