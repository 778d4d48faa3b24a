//! Schema checks every backend runs the same way; only the SQL that counts the indexes
//! differs per database.

use diesel::result::Error;

use crate::SharedQueries;

/// The unique indexes the claims and upserts rely on: `(table, comma-separated columns)`.
///
/// `kaal_definitions` is unique per `(namespace, key)`: definitions are scoped by namespace
/// (the migration `namespaced_definitions` creates the index). A database whose migrations
/// have not run yet lacks its `namespace` column and is reported as such before this check.
pub const REQUIRED_UNIQUE_INDEXES: [(&str, &str); 3] = [
    ("kaal_locks", "key"),
    ("kaal_dispatches", "key,fire_time"),
    ("kaal_definitions", "namespace,key"),
];

/// Unique indexes that must not exist: `(table, comma-separated columns, why)`.
///
/// A unique index on `kaal_definitions(key)` alone (the Ruby gem's, which the migration
/// `namespaced_definitions` drops) would make the second namespace's definition of a key
/// fail, or be mistaken for the first one's.
pub const FORBIDDEN_UNIQUE_INDEXES: [(&str, &str, &str); 1] = [(
    "kaal_definitions",
    "key",
    "definitions are unique per (namespace, key); a unique index on (key) alone keeps two \
     namespaces from defining the same key: drop it (the migrations do)",
)];

/// Fails, naming the table, unless every index of [`REQUIRED_UNIQUE_INDEXES`] exists and
/// none of [`FORBIDDEN_UNIQUE_INDEXES`] does. `count_sql` is the backend's query counting
/// the unique indexes of a table (first parameter) on exactly the given columns (second
/// parameter, comma-separated).
pub fn require_unique_indexes<C: SharedQueries>(
    conn: &mut C,
    count_sql: &'static str,
) -> Result<(), (&'static str, Error)> {
    let count = |conn: &mut C, table: &'static str, columns: &'static str| {
        conn.select_count(count_sql, &[table, columns])
            .map_err(|err| (table, err))
    };
    for (table, columns) in REQUIRED_UNIQUE_INDEXES {
        if count(conn, table, columns)? == 0 {
            return Err((
                table,
                Error::QueryBuilderError(
                    format!("no unique index on ({columns}); the claims and upserts need one")
                        .into(),
                ),
            ));
        }
    }
    for (table, columns, why) in FORBIDDEN_UNIQUE_INDEXES {
        if count(conn, table, columns)? > 0 {
            return Err((
                table,
                Error::QueryBuilderError(format!("unique index on ({columns}): {why}").into()),
            ));
        }
    }
    Ok(())
}
