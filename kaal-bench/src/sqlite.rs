//! SQLite: the lease store on a file in a temporary directory, and its raw SQL.

use kaal_diesel_sqlite::SqliteDialect;

use crate::lease::{LeaseFixture, LeaseSql};
use crate::target::{Fixture, Target};

/// The SQLite lease table (the store's defaults: WAL, `synchronous=FULL`).
#[derive(Debug)]
pub struct SqliteLease;

/// The database clock as the lease columns store it, and 125 s later.
/// Expands to the literal SQL of the two times (so the statements below are built from it
/// with `concat!`, not written out again).
macro_rules! times {
    () => {
        "strftime('%Y-%m-%d %H:%M:%f', 'now') || '000', strftime('%Y-%m-%d %H:%M:%f', 'now', '+125 seconds') || '000'"
    };
}
const TIMES: &str = times!();

static SQL: LeaseSql = LeaseSql {
    insert: concat!(
        r#"INSERT INTO kaal_locks ("key", acquired_at, expires_at) VALUES (?, "#,
        times!(),
        ")"
    ),
    // Insert, or take the row over only if its lease has expired: a plain `ON CONFLICT DO
    // NOTHING` could never take over, so it would not be the same work.
    acquire: &[concat!(
        r#"INSERT INTO kaal_locks ("key", acquired_at, expires_at) VALUES (?, "#,
        times!(),
        r#") ON CONFLICT ("key") DO UPDATE SET acquired_at = excluded.acquired_at, expires_at = excluded.expires_at WHERE kaal_locks.expires_at <= excluded.acquired_at"#
    )],
    delete: r#"DELETE FROM kaal_locks WHERE "key" = ?"#,
    insert_many: r#"INSERT INTO kaal_locks ("key", acquired_at, expires_at) VALUES "#,
    row_times: TIMES,
};

impl Target for SqliteLease {
    fn id(&self) -> &'static str {
        "sqlite"
    }

    fn label(&self) -> String {
        "SQLite lease (WAL, synchronous=FULL)".into()
    }

    fn fresh(&self) -> Box<dyn Fixture> {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("bench.db").to_string_lossy().into_owned();
        Box::new(LeaseFixture::<SqliteDialect>::open(
            path,
            &SQL,
            Box::new(dir),
        ))
    }
}
