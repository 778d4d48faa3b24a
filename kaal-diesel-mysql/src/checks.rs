//! What the store checks about existing tables: that they exist, that the unique indexes
//! the claims and upserts rely on are there, and whether lock keys compare exactly.

use diesel::mysql::MysqlConnection;
use diesel::sql_types::{Nullable, Text};
use diesel::{OptionalExtension, RunQueryDsl};
use kaal_diesel::Statement;

/// Whether a table exists in the connection's database (a count, 0 or 1). Parameter: table
/// name.
pub(crate) const TABLE_EXISTS: &str = "SELECT COUNT(*) FROM information_schema.tables \
WHERE table_schema = DATABASE() AND table_name = ?";

/// How many unique indexes of a table cover exactly the given columns, in order
/// (comma-separated), without prefix lengths. Parameters: table, columns.
pub(crate) const UNIQUE_INDEXES_ON: &str = "SELECT COUNT(*) FROM (\
SELECT LOWER(GROUP_CONCAT(column_name ORDER BY seq_in_index SEPARATOR ',')) AS cols, \
MAX(sub_part IS NOT NULL) AS prefixed \
FROM information_schema.statistics \
WHERE table_schema = DATABASE() AND table_name = ? AND non_unique = 0 \
GROUP BY index_name) AS idx \
WHERE idx.cols = LOWER(?) AND idx.prefixed = 0";

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
