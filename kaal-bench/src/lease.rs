//! Lease-table targets: a kaal store ([`DieselStore`]) and its raw baseline, hand-written
//! statements on the same pool. Backends supply only the SQL ([`LeaseSql`]).

use std::any::Any;
use std::sync::Arc;

use diesel::connection::SimpleConnection;
use diesel::query_dsl::methods::ExecuteDsl;
use diesel::result::{DatabaseErrorKind, Error};
use diesel::RunQueryDsl;
use kaal_core::Adapter;
use kaal_diesel::{Dialect, DieselStore, Statement};

use crate::target::Fixture;

/// The hand-written statements of a lease-table target. Every statement takes the key as
/// its one `?` parameter and lets the database's clock write the times, with a fixed ttl of
/// 125 s (kaal's default lease).
#[derive(Debug)]
pub struct LeaseSql {
    /// Inserts the lease row of a key nobody holds.
    pub insert: &'static str,
    /// The least SQL doing an acquire's work on a key: run in order until one changes a
    /// row, a unique violation counting as none. On a held key none may change one.
    pub acquire: &'static [&'static str],
    /// Deletes a lease row.
    pub delete: &'static str,
    /// `INSERT INTO kaal_locks (key, acquired_at, expires_at) VALUES ` with the database's
    /// quoting of `key`; followed by one `('<key>', <row_times>)` per key.
    pub insert_many: &'static str,
    /// The times of one row of [`insert_many`](LeaseSql::insert_many).
    pub row_times: &'static str,
}

/// A lease store in a fresh database, with its raw baseline.
pub struct LeaseFixture<D: Dialect> {
    store: Arc<DieselStore<D>>,
    locator: String,
    sql: &'static LeaseSql,
    /// What keeps the database alive (a temporary directory, a scratch database); dropped
    /// after the store.
    _database: Box<dyn Any>,
}

impl<D: Dialect> LeaseFixture<D> {
    /// Opens and migrates the store at `locator`; `database` is dropped with the fixture.
    pub fn open(locator: String, sql: &'static LeaseSql, database: Box<dyn Any>) -> Self {
        let store = DieselStore::<D>::open(&locator)
            .unwrap_or_else(|err| panic!("cannot open {locator}: {err}"));
        store.run_migrations().expect("migrations");
        Self {
            store: Arc::new(store),
            locator,
            sql,
            _database: database,
        }
    }

    fn run(&self, sql: &'static str, key: &str) -> Result<usize, Error>
    where
        for<'a> Statement<'a>: ExecuteDsl<D::Connection>,
    {
        let mut conn = self.store.pool().get().expect("pooled connection");
        Statement::new(sql).bind(key).execute(&mut *conn)
    }
}

impl<D: Dialect> Fixture for LeaseFixture<D>
where
    for<'a> Statement<'a>: ExecuteDsl<D::Connection>,
{
    fn adapter(&self) -> Arc<dyn Adapter> {
        self.store.clone()
    }

    fn another_node(&self) -> Arc<dyn Adapter> {
        Arc::new(DieselStore::<D>::open(&self.locator).expect("second node"))
    }

    fn raw_acquire_fresh(&self, key: &str) {
        let inserted = self.run(self.sql.insert, key).expect("raw insert");
        assert_eq!(inserted, 1, "raw insert of {key}");
    }

    fn raw_acquire_held(&self, key: &str) {
        // One checkout for the whole attempt, as kaal's acquire: a connection whose last
        // statement failed (the duplicate key) is pinged when it goes back to the pool.
        let mut conn = self.store.pool().get().expect("pooled connection");
        for sql in self.sql.acquire {
            match Statement::new(sql).bind(key).execute(&mut *conn) {
                Ok(0) | Err(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {}
                Ok(_) => panic!("the raw acquire took {key}, held by another node"),
                Err(err) => panic!("raw acquire of {key}: {err}"),
            }
        }
    }

    fn raw_release(&self, key: &str) {
        let deleted = self.run(self.sql.delete, key).expect("raw delete");
        assert_eq!(deleted, 1, "raw delete of {key}");
    }

    fn raw_acquire_many(&self, keys: &[String]) {
        let rows: Vec<String> = keys
            .iter()
            .map(|key| {
                debug_assert!(!key.contains('\''), "bench keys need no quoting");
                format!("('{key}', {})", self.sql.row_times)
            })
            .collect();
        let sql = format!("{}{}", self.sql.insert_many, rows.join(","));
        let mut conn = self.store.pool().get().expect("pooled connection");
        conn.batch_execute(&sql).expect("raw multi-row insert");
    }

    fn raw_many_label(&self) -> &'static str {
        "one multi-row INSERT"
    }

    fn clear(&self) {
        let mut conn = self.store.pool().get().expect("pooled connection");
        conn.batch_execute("DELETE FROM kaal_locks")
            .expect("delete every lease");
    }
}
