//! MySQL / MariaDB: the lease store and the named-lock adapter, each in a fresh database on
//! the local server (`KAAL_MYSQL_URL`, default `mysql://root@127.0.0.1:3306/test`), and
//! their raw SQL.

use std::sync::Arc;

use diesel::mysql::MysqlConnection;
use diesel::sql_types::{BigInt, Nullable};
use diesel::{Connection, RunQueryDsl};
use kaal_core::Adapter;
use kaal_diesel::Statement;
use kaal_diesel_mysql::{lock_name, MysqlDialect, MysqlNamedLockAdapter, MysqlOptions, MysqlStore};

use crate::lease::{LeaseFixture, LeaseSql};
use crate::scratch::{server_url, ScratchDatabase};
use crate::session::{RawSession, SessionFixture};
use crate::target::{Fixture, Target};

/// The MySQL lease table.
#[derive(Debug)]
pub struct MysqlLease;

/// MySQL named locks ([`MysqlNamedLockAdapter`]).
#[derive(Debug)]
pub struct MysqlNamed;

/// The database clock at microseconds, and 125 s later.
/// Expands to the literal SQL of the two times (so the statements below are built from it
/// with `concat!`, not written out again).
macro_rules! times {
    () => {
        "UTC_TIMESTAMP(6), UTC_TIMESTAMP(6) + INTERVAL 125 SECOND"
    };
}
const TIMES: &str = times!();

const INSERT: &str = concat!(
    "INSERT INTO kaal_locks (`key`, acquired_at, expires_at) VALUES (?, ",
    times!(),
    ")"
);

static LEASE_SQL: LeaseSql = LeaseSql {
    insert: INSERT,
    // MySQL cannot insert-or-take-over-if-expired in one statement *and* say which happened
    // (under CLIENT_FOUND_ROWS an upsert reports 1 both for an insert and for a live row
    // left unchanged), so the least SQL that does an acquire's work on a held key is the
    // insert that meets the duplicate key, then the takeover that finds the lease live.
    // `expires_at + INTERVAL 0 MICROSECOND` keeps the takeover on the key's unique index, as
    // kaal's does: on a small table MariaDB would otherwise range-scan the expires_at index.
    acquire: &[
        INSERT,
        "UPDATE kaal_locks SET acquired_at = UTC_TIMESTAMP(6), expires_at = UTC_TIMESTAMP(6) + INTERVAL 125 SECOND WHERE `key` = ? AND expires_at + INTERVAL 0 MICROSECOND <= UTC_TIMESTAMP(6)",
    ],
    delete: "DELETE FROM kaal_locks WHERE `key` = ?",
    insert_many: "INSERT INTO kaal_locks (`key`, acquired_at, expires_at) VALUES ",
    row_times: TIMES,
};

/// Takes one named lock without waiting: 1 taken, 0 held elsewhere. Parameter: the name.
const GET_LOCK: &str = "SELECT GET_LOCK(?, 0)";
/// Gives one named lock back: 1 released. Parameter: the name.
const RELEASE_LOCK: &str = "SELECT RELEASE_LOCK(?)";
/// Takes every name of a JSON array, one row each. Parameter: `["name", ...]`.
const GET_LOCK_MANY: &str = "SELECT GET_LOCK(claim.name, 0) FROM JSON_TABLE(?, '$[*]' COLUMNS (name VARCHAR(64) PATH '$')) AS claim";
/// Gives back every named lock of the session.
const RELEASE_ALL: &str = "SELECT RELEASE_ALL_LOCKS()";

fn server() -> String {
    server_url("KAAL_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
}

impl Target for MysqlLease {
    fn id(&self) -> &'static str {
        "mysql-lease"
    }

    fn label(&self) -> String {
        "MySQL lease (MariaDB)".into()
    }

    fn fresh(&self) -> Box<dyn Fixture> {
        let database = ScratchDatabase::<MysqlConnection>::create(&server(), "");
        Box::new(LeaseFixture::<MysqlDialect>::open(
            database.url(),
            &LEASE_SQL,
            Box::new(database),
        ))
    }
}

impl Target for MysqlNamed {
    fn id(&self) -> &'static str {
        "mysql-named"
    }

    fn label(&self) -> String {
        "MySQL named locks (MariaDB)".into()
    }

    fn fresh(&self) -> Box<dyn Fixture> {
        let database = ScratchDatabase::<MysqlConnection>::create(&server(), "");
        let url = database.url();
        MysqlStore::open(&url)
            .and_then(|store| store.run_migrations())
            .unwrap_or_else(|err| panic!("cannot migrate {url}: {err}"));
        // Named locks are per server: the database's name keeps this fixture's apart.
        let namespace = format!("{}:", database.name());
        let (raw_url, raw_namespace) = (url.clone(), namespace.clone());
        let open_raw = move || -> Box<dyn RawSession> {
            Box::new(RawNamed {
                conn: MysqlConnection::establish(&raw_url).expect("raw lock session"),
                namespace: raw_namespace.clone(),
            })
        };
        let open = move || -> Arc<dyn Adapter> {
            let adapter =
                MysqlNamedLockAdapter::open_with(&url, MysqlOptions::default(), namespace.clone());
            Arc::new(adapter.expect("named-lock adapter"))
        };
        Box::new(SessionFixture::new(
            Box::new(open),
            Box::new(open_raw),
            "one SELECT GET_LOCK(name, 0) FROM JSON_TABLE(?)",
            Box::new(database),
        ))
    }
}

/// Named locks taken by hand on one dedicated session, with the adapter's names.
struct RawNamed {
    conn: MysqlConnection,
    namespace: String,
}

impl RawNamed {
    fn name(&self, key: &str) -> String {
        lock_name(&format!("{}{key}", self.namespace))
    }

    fn call(&mut self, sql: &'static str, key: &str) -> bool {
        let name = self.name(key);
        let answer: Option<i64> = Statement::new(sql)
            .bind(name)
            .returning::<Nullable<BigInt>>()
            .get_result(&mut self.conn)
            .expect("raw named-lock statement");
        answer == Some(1)
    }
}

impl RawSession for RawNamed {
    fn try_lock(&mut self, key: &str) -> bool {
        self.call(GET_LOCK, key)
    }

    fn unlock(&mut self, key: &str) -> bool {
        self.call(RELEASE_LOCK, key)
    }

    fn try_lock_many(&mut self, keys: &[String]) -> usize {
        let names: Vec<String> = keys.iter().map(|key| self.name(key)).collect();
        let json = serde_json::Value::from(names).to_string();
        let won: Vec<Option<i64>> = Statement::new(GET_LOCK_MANY)
            .bind(json)
            .returning::<Nullable<BigInt>>()
            .load(&mut self.conn)
            .expect("raw named-lock batch");
        won.into_iter().filter(|won| *won == Some(1)).count()
    }

    fn unlock_all(&mut self) {
        Statement::new(RELEASE_ALL)
            .returning::<Nullable<BigInt>>()
            .get_result::<Option<i64>>(&mut self.conn)
            .expect("raw release of every named lock");
    }
}
