//! Schema checks every backend runs the same way; only the SQL that counts the indexes
//! differs per database.

use diesel::query_dsl::LoadQuery;
use diesel::result::Error;
use diesel::sql_types::BigInt;
use diesel::RunQueryDsl;

use crate::Statement;

/// The unique indexes the claims and upserts rely on: `(table, comma-separated columns)`.
pub const REQUIRED_UNIQUE_INDEXES: [(&str, &str); 2] =
    [("kaal_locks", "key"), ("kaal_dispatches", "key,fire_time")];

/// Fails, naming the table, unless every index of [`REQUIRED_UNIQUE_INDEXES`] exists.
/// `count_sql` is the backend's query counting the unique indexes of a table (first
/// parameter) on exactly the given columns (second parameter, comma-separated).
pub fn require_unique_indexes<C>(
    conn: &mut C,
    count_sql: &'static str,
) -> Result<(), (&'static str, Error)>
where
    Statement<'static, BigInt>: LoadQuery<'static, C, i64>,
{
    for (table, columns) in REQUIRED_UNIQUE_INDEXES {
        let count = Statement::new(count_sql)
            .bind(table)
            .bind(columns)
            .returning::<BigInt>()
            .get_result::<i64>(conn)
            .map_err(|err| (table, err))?;
        if count == 0 {
            return Err((
                table,
                Error::QueryBuilderError(
                    format!("no unique index on ({columns}); the claims and upserts need one")
                        .into(),
                ),
            ));
        }
    }
    Ok(())
}
