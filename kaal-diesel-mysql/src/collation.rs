//! Whether lock keys compare exactly: the collation of the tables' `key` columns, which
//! tables the Ruby gem (or a DBA) created may have left case-insensitive.

use diesel::mysql::MysqlConnection;
use diesel::sql_types::{Nullable, Text};
use diesel::{OptionalExtension, RunQueryDsl};
use kaal_diesel::Statement;

/// The collation of a table's `key` column. Parameter: table.
pub(crate) const KEY_COLLATION: &str = "SELECT collation_name FROM information_schema.columns \
WHERE table_schema = DATABASE() AND table_name = ? AND column_name = 'key'";

/// Warns when `table.key` compares case- or accent-insensitively (tables created with the
/// server's default collation, e.g. by the Ruby gem): then `kaal:a` and `KAAL:a` are one key.
pub(crate) fn warn_unless_binary_keys(conn: &mut MysqlConnection, table: &str) {
    let collation = Statement::new(KEY_COLLATION)
        .bind(table)
        .returning::<Nullable<Text>>()
        .get_result::<Option<String>>(conn)
        .optional();
    match collation {
        Ok(Some(Some(collation))) if !collation.ends_with("_bin") => log::warn!(
            "MySQL table {table}: column `key` has collation {collation}, so keys differing \
             only in case or accents are the same key; kaal's migrations create it with \
             utf8mb4_bin"
        ),
        Ok(_) => {}
        Err(err) => log::debug!("MySQL table {table}: cannot read the key collation: {err}"),
    }
}
