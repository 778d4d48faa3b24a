//! The statements that are PostgreSQL's own: the lease upserts, their batch form, release,
//! the dispatch upsert and batch lookup, and the schema checks they rely on.
//!
//! **The database's clock.** Every time a lease statement computes is
//! `statement_timestamp() AT TIME ZONE 'UTC'`: the server's clock at the start of the
//! statement, as UTC `timestamp` (what the columns hold, as ActiveRecord writes them), the
//! same instant everywhere within one statement whatever the session's `TimeZone`. Not
//! `now()`, which is the start of the *transaction*, and not `clock_timestamp()`, which
//! changes between the rows of one statement.
//!
//! **Batches** travel as one JSON array bound to one text parameter and unpacked with
//! `json_array_elements_text` / `json_array_elements`: one statement whatever the batch
//! size, no bound-parameter limit, one prepared statement every batch reuses. Keys are
//! deduplicated (an upsert may not touch a row twice) and sorted, so concurrent batches take
//! their row locks in the same order and cannot deadlock each other.

use std::time::Duration;

use kaal_diesel::{JsonBatchSql, Shaped};

/// The longest lease honoured; longer ttls are cut to it.
const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `ttl` as a PostgreSQL interval literal with microseconds: `125.000000 seconds`.
fn interval(ttl: Duration) -> String {
    let ttl = ttl.min(MAX_TTL);
    format!("{}.{:06} seconds", ttl.as_secs(), ttl.subsec_micros())
}

/// Takes one key: inserts the lease, or takes over the row only if its lease has expired by
/// the database's clock. One row changed means acquired. Parameters: key, ttl interval.
pub(crate) const CLAIM: &str = r#"INSERT INTO kaal_locks ("key", acquired_at, expires_at)
VALUES (?, statement_timestamp() AT TIME ZONE 'UTC', (statement_timestamp() AT TIME ZONE 'UTC') + CAST(? AS interval))
ON CONFLICT ("key") DO UPDATE SET acquired_at = EXCLUDED.acquired_at, expires_at = EXCLUDED.expires_at
WHERE kaal_locks.expires_at <= EXCLUDED.acquired_at"#;

/// [`CLAIM`] for tables with `created_at` / `updated_at`.
pub(crate) const CLAIM_WITH_TIMESTAMPS: &str = r#"INSERT INTO kaal_locks ("key", acquired_at, expires_at, created_at, updated_at)
VALUES (?, statement_timestamp() AT TIME ZONE 'UTC', (statement_timestamp() AT TIME ZONE 'UTC') + CAST(? AS interval), statement_timestamp() AT TIME ZONE 'UTC', statement_timestamp() AT TIME ZONE 'UTC')
ON CONFLICT ("key") DO UPDATE SET acquired_at = EXCLUDED.acquired_at, expires_at = EXCLUDED.expires_at, updated_at = EXCLUDED.updated_at
WHERE kaal_locks.expires_at <= EXCLUDED.acquired_at"#;

/// [`CLAIM`] for a JSON array of distinct keys; returns the keys taken. Parameters: ttl
/// interval, keys.
pub(crate) const CLAIM_MANY: &str = r#"INSERT INTO kaal_locks ("key", acquired_at, expires_at)
SELECT claim.key, statement_timestamp() AT TIME ZONE 'UTC', (statement_timestamp() AT TIME ZONE 'UTC') + CAST(? AS interval)
FROM json_array_elements_text(CAST(? AS json)) WITH ORDINALITY AS claim("key", position)
ORDER BY claim.position
ON CONFLICT ("key") DO UPDATE SET acquired_at = EXCLUDED.acquired_at, expires_at = EXCLUDED.expires_at
WHERE kaal_locks.expires_at <= EXCLUDED.acquired_at
RETURNING "key""#;

/// [`CLAIM_MANY`] for tables with `created_at` / `updated_at`.
pub(crate) const CLAIM_MANY_WITH_TIMESTAMPS: &str = r#"INSERT INTO kaal_locks ("key", acquired_at, expires_at, created_at, updated_at)
SELECT claim.key, statement_timestamp() AT TIME ZONE 'UTC', (statement_timestamp() AT TIME ZONE 'UTC') + CAST(? AS interval), statement_timestamp() AT TIME ZONE 'UTC', statement_timestamp() AT TIME ZONE 'UTC'
FROM json_array_elements_text(CAST(? AS json)) WITH ORDINALITY AS claim("key", position)
ORDER BY claim.position
ON CONFLICT ("key") DO UPDATE SET acquired_at = EXCLUDED.acquired_at, expires_at = EXCLUDED.expires_at, updated_at = EXCLUDED.updated_at
WHERE kaal_locks.expires_at <= EXCLUDED.acquired_at
RETURNING "key""#;

/// Deletes a lease; returns one row telling whether it was still live. Parameter: key.
pub(crate) const RELEASE: &str = r#"DELETE FROM kaal_locks WHERE "key" = ?
RETURNING expires_at > statement_timestamp() AT TIME ZONE 'UTC'"#;

/// Upserts a JSON array of distinct `[key, fire_time]` pairs. Parameters: dispatched_at,
/// node_id, status, pairs.
pub(crate) const UPSERT_DISPATCHES: &str = r#"INSERT INTO kaal_dispatches ("key", fire_time, dispatched_at, node_id, status)
SELECT entry.value ->> 0, CAST(entry.value ->> 1 AS timestamp), CAST(? AS timestamp), ?, ?
FROM json_array_elements(CAST(? AS json)) WITH ORDINALITY AS entry(value, position)
ORDER BY entry.position
ON CONFLICT ("key", fire_time) DO UPDATE SET dispatched_at = EXCLUDED.dispatched_at, node_id = EXCLUDED.node_id, status = EXCLUDED.status"#;

/// [`UPSERT_DISPATCHES`] for tables with `created_at` / `updated_at`. Parameters:
/// dispatched_at, node_id, status, created_at, updated_at, pairs.
pub(crate) const UPSERT_DISPATCHES_WITH_TIMESTAMPS: &str = r#"INSERT INTO kaal_dispatches ("key", fire_time, dispatched_at, node_id, status, created_at, updated_at)
SELECT entry.value ->> 0, CAST(entry.value ->> 1 AS timestamp), CAST(? AS timestamp), ?, ?, CAST(? AS timestamp), CAST(? AS timestamp)
FROM json_array_elements(CAST(? AS json)) WITH ORDINALITY AS entry(value, position)
ORDER BY entry.position
ON CONFLICT ("key", fire_time) DO UPDATE SET dispatched_at = EXCLUDED.dispatched_at, node_id = EXCLUDED.node_id, status = EXCLUDED.status, updated_at = EXCLUDED.updated_at"#;

/// [`UPSERT_DISPATCHES`], insert-only: pairs that have a row are left as they are (the
/// commit point of a claim). Same parameters.
pub(crate) const INSERT_DISPATCHES: &str = r#"INSERT INTO kaal_dispatches ("key", fire_time, dispatched_at, node_id, status)
SELECT entry.value ->> 0, CAST(entry.value ->> 1 AS timestamp), CAST(? AS timestamp), ?, ?
FROM json_array_elements(CAST(? AS json)) WITH ORDINALITY AS entry(value, position)
ORDER BY entry.position
ON CONFLICT ("key", fire_time) DO NOTHING"#;

/// [`UPSERT_DISPATCHES_WITH_TIMESTAMPS`], insert-only. Same parameters.
pub(crate) const INSERT_DISPATCHES_WITH_TIMESTAMPS: &str = r#"INSERT INTO kaal_dispatches ("key", fire_time, dispatched_at, node_id, status, created_at, updated_at)
SELECT entry.value ->> 0, CAST(entry.value ->> 1 AS timestamp), CAST(? AS timestamp), ?, ?, CAST(? AS timestamp), CAST(? AS timestamp)
FROM json_array_elements(CAST(? AS json)) WITH ORDINALITY AS entry(value, position)
ORDER BY entry.position
ON CONFLICT ("key", fire_time) DO NOTHING"#;

/// The database's clock, as the UTC `timestamp` the columns hold.
pub(crate) const NOW: &str = "SELECT statement_timestamp() AT TIME ZONE 'UTC'";

/// The positions (0-based) of the `[key, fire_time]` pairs of a JSON array that have a
/// dispatch record. Parameter: pairs.
pub(crate) const DISPATCHED_MANY: &str = r#"SELECT pair.position - 1 FROM json_array_elements(CAST(? AS json)) WITH ORDINALITY AS pair(value, position)
WHERE EXISTS (SELECT 1 FROM kaal_dispatches AS d
              WHERE d."key" = pair.value ->> 0 AND d.fire_time = CAST(pair.value ->> 1 AS timestamp))"#;

/// Whether a table exists in the session's search path (a count, 0 or 1). Parameter: table
/// name.
pub(crate) const TABLE_EXISTS: &str =
    "SELECT count(*) FROM (SELECT to_regclass(CAST(? AS text)) AS oid) AS t WHERE t.oid IS NOT NULL";

/// How many unique, non-partial indexes on plain columns of a table cover exactly the given
/// columns (in order, comma-separated): the upserts' `ON CONFLICT` targets. Parameters:
/// table, columns.
pub(crate) const UNIQUE_INDEXES_ON: &str = r#"SELECT count(*) FROM pg_index AS idx
WHERE idx.indrelid = to_regclass(CAST(? AS text)) AND idx.indisunique AND idx.indpred IS NULL AND idx.indexprs IS NULL
  AND (SELECT string_agg(att.attname, ',' ORDER BY col.position)
       FROM unnest(CAST(idx.indkey AS int2[])) WITH ORDINALITY AS col(attnum, position)
       JOIN pg_attribute AS att ON att.attrelid = idx.indrelid AND att.attnum = col.attnum) = ?"#;

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
    ttl: interval,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_becomes_an_interval_with_microseconds_and_is_capped() {
        assert_eq!(interval(Duration::from_secs(125)), "125.000000 seconds");
        assert_eq!(
            interval(Duration::from_micros(1_500_001)),
            "1.500001 seconds"
        );
        assert_eq!(interval(Duration::MAX), interval(MAX_TTL));
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
