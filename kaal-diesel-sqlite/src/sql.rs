//! The statements that are SQLite's own: the lease upserts, their batch form, release, the
//! dispatch upsert and batch lookup, and the schema checks they rely on.
//!
//! Times the database computes are `strftime('%Y-%m-%d %H:%M:%f', 'now') || '000'`: UTC
//! text with six fractional digits, the same fixed-width format ActiveRecord and
//! [`DbTime`](kaal_diesel::DbTime) write, so text comparison is time comparison. `'now'` is
//! the same instant everywhere within one statement.
//!
//! Batches travel as one JSON array bound to one parameter and unpacked by `json_each`: one
//! statement whatever the batch size, no bound-parameter limit, and one prepared statement
//! that every batch reuses.

use std::time::Duration;

use kaal_diesel::{JsonBatchSql, Shaped};

/// The longest lease honoured; longer ttls are cut to it (SQLite's dates end at 9999).
const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The SQLite time modifier that adds `ttl`: `+125.000000 seconds`.
fn ttl_modifier(ttl: Duration) -> String {
    let ttl = ttl.min(MAX_TTL);
    format!("+{}.{:06} seconds", ttl.as_secs(), ttl.subsec_micros())
}

/// Takes one key: inserts the lease, or takes over the row only if its lease has expired by
/// the database's clock. One row changed means acquired. Parameters: key, ttl modifier.
pub(crate) const CLAIM: &str = r#"INSERT INTO kaal_locks ("key", acquired_at, expires_at)
VALUES (?, strftime('%Y-%m-%d %H:%M:%f', 'now') || '000', strftime('%Y-%m-%d %H:%M:%f', 'now', ?) || '000')
ON CONFLICT ("key") DO UPDATE SET acquired_at = excluded.acquired_at, expires_at = excluded.expires_at
WHERE kaal_locks.expires_at <= excluded.acquired_at"#;

/// [`CLAIM`] for tables with `created_at` / `updated_at`.
pub(crate) const CLAIM_WITH_TIMESTAMPS: &str = r#"INSERT INTO kaal_locks ("key", acquired_at, expires_at, created_at, updated_at)
VALUES (?, strftime('%Y-%m-%d %H:%M:%f', 'now') || '000', strftime('%Y-%m-%d %H:%M:%f', 'now', ?) || '000', strftime('%Y-%m-%d %H:%M:%f', 'now') || '000', strftime('%Y-%m-%d %H:%M:%f', 'now') || '000')
ON CONFLICT ("key") DO UPDATE SET acquired_at = excluded.acquired_at, expires_at = excluded.expires_at, updated_at = excluded.updated_at
WHERE kaal_locks.expires_at <= excluded.acquired_at"#;

/// [`CLAIM`] for a JSON array of keys; returns the keys taken. Parameters: ttl modifier,
/// keys. (`WHERE true` resolves the parse ambiguity of `INSERT … SELECT … ON CONFLICT`.)
pub(crate) const CLAIM_MANY: &str = r#"INSERT INTO kaal_locks ("key", acquired_at, expires_at)
SELECT claim.value, strftime('%Y-%m-%d %H:%M:%f', 'now') || '000', strftime('%Y-%m-%d %H:%M:%f', 'now', ?) || '000'
FROM json_each(?) AS claim WHERE true
ON CONFLICT ("key") DO UPDATE SET acquired_at = excluded.acquired_at, expires_at = excluded.expires_at
WHERE kaal_locks.expires_at <= excluded.acquired_at
RETURNING "key""#;

/// [`CLAIM_MANY`] for tables with `created_at` / `updated_at`.
pub(crate) const CLAIM_MANY_WITH_TIMESTAMPS: &str = r#"INSERT INTO kaal_locks ("key", acquired_at, expires_at, created_at, updated_at)
SELECT claim.value, strftime('%Y-%m-%d %H:%M:%f', 'now') || '000', strftime('%Y-%m-%d %H:%M:%f', 'now', ?) || '000', strftime('%Y-%m-%d %H:%M:%f', 'now') || '000', strftime('%Y-%m-%d %H:%M:%f', 'now') || '000'
FROM json_each(?) AS claim WHERE true
ON CONFLICT ("key") DO UPDATE SET acquired_at = excluded.acquired_at, expires_at = excluded.expires_at, updated_at = excluded.updated_at
WHERE kaal_locks.expires_at <= excluded.acquired_at
RETURNING "key""#;

/// Deletes a lease; returns one row telling whether it was still live. Parameter: key.
pub(crate) const RELEASE: &str = r#"DELETE FROM kaal_locks WHERE "key" = ?
RETURNING expires_at > strftime('%Y-%m-%d %H:%M:%f', 'now') || '000'"#;

/// Upserts a JSON array of `[key, fire_time]` pairs. Parameters: dispatched_at, node_id,
/// status, pairs.
pub(crate) const UPSERT_DISPATCHES: &str = r#"INSERT INTO kaal_dispatches ("key", fire_time, dispatched_at, node_id, status)
SELECT json_extract(entry.value, '$[0]'), json_extract(entry.value, '$[1]'), ?, ?, ?
FROM json_each(?) AS entry WHERE true
ON CONFLICT ("key", fire_time) DO UPDATE SET dispatched_at = excluded.dispatched_at, node_id = excluded.node_id, status = excluded.status"#;

/// [`UPSERT_DISPATCHES`] for tables with `created_at` / `updated_at`. Parameters:
/// dispatched_at, node_id, status, created_at, updated_at, pairs.
pub(crate) const UPSERT_DISPATCHES_WITH_TIMESTAMPS: &str = r#"INSERT INTO kaal_dispatches ("key", fire_time, dispatched_at, node_id, status, created_at, updated_at)
SELECT json_extract(entry.value, '$[0]'), json_extract(entry.value, '$[1]'), ?, ?, ?, ?, ?
FROM json_each(?) AS entry WHERE true
ON CONFLICT ("key", fire_time) DO UPDATE SET dispatched_at = excluded.dispatched_at, node_id = excluded.node_id, status = excluded.status, updated_at = excluded.updated_at"#;

/// [`UPSERT_DISPATCHES`], insert-only: pairs that have a row are left as they are (the
/// commit point of a claim). Same parameters.
pub(crate) const INSERT_DISPATCHES: &str = r#"INSERT INTO kaal_dispatches ("key", fire_time, dispatched_at, node_id, status)
SELECT json_extract(entry.value, '$[0]'), json_extract(entry.value, '$[1]'), ?, ?, ?
FROM json_each(?) AS entry WHERE true
ON CONFLICT ("key", fire_time) DO NOTHING"#;

/// [`UPSERT_DISPATCHES_WITH_TIMESTAMPS`], insert-only. Same parameters.
pub(crate) const INSERT_DISPATCHES_WITH_TIMESTAMPS: &str = r#"INSERT INTO kaal_dispatches ("key", fire_time, dispatched_at, node_id, status, created_at, updated_at)
SELECT json_extract(entry.value, '$[0]'), json_extract(entry.value, '$[1]'), ?, ?, ?, ?, ?
FROM json_each(?) AS entry WHERE true
ON CONFLICT ("key", fire_time) DO NOTHING"#;

/// SQLite's clock, in the stored text form.
pub(crate) const NOW: &str = "SELECT strftime('%Y-%m-%d %H:%M:%f', 'now') || '000'";

/// The positions (0-based) of the `[key, fire_time]` pairs of a JSON array that have a
/// dispatch record. Parameter: pairs.
pub(crate) const DISPATCHED_MANY: &str = r#"SELECT pair.key FROM json_each(?) AS pair
WHERE EXISTS (SELECT 1 FROM kaal_dispatches AS d
              WHERE d."key" = json_extract(pair.value, '$[0]') AND d.fire_time = json_extract(pair.value, '$[1]'))"#;

/// Whether a table exists (a count, 0 or 1). Parameter: table name.
pub(crate) const TABLE_EXISTS: &str =
    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?";

/// How many unique, non-partial indexes of a table cover exactly the given columns (in
/// order, comma-separated): the upserts' `ON CONFLICT` targets. Parameters: table, columns.
pub(crate) const UNIQUE_INDEXES_ON: &str = r#"SELECT count(*) FROM pragma_index_list(?) AS idx
WHERE idx."unique" = 1 AND idx.partial = 0
  AND (SELECT group_concat(info.name, ',') FROM (SELECT name FROM pragma_index_info(idx.name) ORDER BY seqno) AS info) = ?"#;

/// The lease and dispatch statements, run by [`JsonBatch`](kaal_diesel::JsonBatch).
pub(crate) const STATEMENTS: JsonBatchSql = JsonBatchSql {
    claim: Shaped {
        plain: CLAIM,
        with_timestamps: CLAIM_WITH_TIMESTAMPS,
    },
    claim_many: Shaped {
        plain: CLAIM_MANY,
        with_timestamps: CLAIM_MANY_WITH_TIMESTAMPS,
    },
    release: RELEASE,
    upsert_dispatches: Shaped {
        plain: UPSERT_DISPATCHES,
        with_timestamps: UPSERT_DISPATCHES_WITH_TIMESTAMPS,
    },
    insert_dispatches: Shaped {
        plain: INSERT_DISPATCHES,
        with_timestamps: INSERT_DISPATCHES_WITH_TIMESTAMPS,
    },
    dispatched_many: DISPATCHED_MANY,
    ttl: ttl_modifier,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_becomes_a_modifier_with_microseconds_and_is_capped() {
        assert_eq!(
            ttl_modifier(Duration::from_secs(125)),
            "+125.000000 seconds"
        );
        assert_eq!(
            ttl_modifier(Duration::from_millis(1500)),
            "+1.500000 seconds"
        );
        assert_eq!(ttl_modifier(Duration::MAX), ttl_modifier(MAX_TTL));
    }

    #[test]
    fn statements_have_no_stray_placeholders() {
        let marks = |sql: &str| sql.matches('?').count();
        for (sql, expected) in STATEMENTS.placeholders() {
            assert_eq!(marks(sql), expected, "{sql}");
        }
        assert_eq!(marks(NOW), 0);
        assert_eq!(marks(TABLE_EXISTS), 1);
        assert_eq!(marks(UNIQUE_INDEXES_ON), 2);
    }
}
