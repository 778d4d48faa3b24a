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

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Text};
use kaal_core::DispatchStatus;
use kaal_diesel::{DbTime, DispatchWrite, Statement, TableShape};
use serde_json::Value;

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

/// Whether a table exists. Parameter: table name.
pub(crate) const TABLE_EXISTS: &str =
    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?";

/// How many unique, non-partial indexes of a table cover exactly the given columns (in
/// order, comma-separated): the upserts' `ON CONFLICT` targets. Parameters: table, columns.
pub(crate) const UNIQUE_INDEXES_ON: &str = r#"SELECT count(*) FROM pragma_index_list(?) AS idx
WHERE idx."unique" = 1 AND idx.partial = 0
  AND (SELECT group_concat(info.name, ',') FROM (SELECT name FROM pragma_index_info(idx.name) ORDER BY seqno) AS info) = ?"#;

pub(crate) fn claim(
    conn: &mut SqliteConnection,
    key: &str,
    ttl: Duration,
    shape: TableShape,
) -> QueryResult<bool> {
    let sql = if shape.lock_timestamps {
        CLAIM_WITH_TIMESTAMPS
    } else {
        CLAIM
    };
    let changed = Statement::new(sql)
        .bind(key)
        .bind(ttl_modifier(ttl))
        .execute(conn)?;
    Ok(changed == 1)
}

pub(crate) fn claim_many(
    conn: &mut SqliteConnection,
    keys: &[String],
    ttl: Duration,
    shape: TableShape,
) -> QueryResult<Vec<bool>> {
    let sql = if shape.lock_timestamps {
        CLAIM_MANY_WITH_TIMESTAMPS
    } else {
        CLAIM_MANY
    };
    let json = Value::from(keys.to_vec()).to_string();
    let mut taken: std::collections::HashSet<String> = Statement::new(sql)
        .bind(ttl_modifier(ttl))
        .bind(json)
        .returning::<Text>()
        .load::<String>(conn)?
        .into_iter()
        .collect();
    // A key given twice is taken once: its first position says so, as a loop would.
    Ok(keys.iter().map(|key| taken.remove(key)).collect())
}

pub(crate) fn release(conn: &mut SqliteConnection, key: &str) -> QueryResult<bool> {
    let live = Statement::new(RELEASE)
        .bind(key)
        .returning::<Bool>()
        .load::<bool>(conn)?;
    Ok(live.first().copied().unwrap_or(false))
}

/// `[[key, fire_time_text], ...]` with fire times in the stored text format.
fn pairs_json(pairs: &[(String, DateTime<Utc>)]) -> String {
    Value::Array(
        pairs
            .iter()
            .map(|(key, fire_time)| {
                Value::Array(vec![
                    Value::from(key.as_str()),
                    Value::from(DbTime::new(*fire_time).to_db_text()),
                ])
            })
            .collect(),
    )
    .to_string()
}

pub(crate) fn upsert_dispatches(
    conn: &mut SqliteConnection,
    pairs: &[(String, DateTime<Utc>)],
    node_id: &str,
    status: DispatchStatus,
    dispatched_at: DbTime,
    shape: TableShape,
    write: DispatchWrite,
) -> QueryResult<()> {
    let at = dispatched_at.to_db_text();
    let (plain, stamped) = match write {
        DispatchWrite::Upsert => (UPSERT_DISPATCHES, UPSERT_DISPATCHES_WITH_TIMESTAMPS),
        DispatchWrite::InsertOnly => (INSERT_DISPATCHES, INSERT_DISPATCHES_WITH_TIMESTAMPS),
    };
    let statement = if shape.dispatch_timestamps {
        Statement::new(stamped)
            .bind(at.clone())
            .bind(node_id)
            .bind(status.as_str())
            .bind(at.clone())
            .bind(at)
    } else {
        Statement::new(plain)
            .bind(at)
            .bind(node_id)
            .bind(status.as_str())
    };
    statement.bind(pairs_json(pairs)).execute(conn).map(drop)
}

pub(crate) fn dispatched_many(
    conn: &mut SqliteConnection,
    pairs: &[(String, DateTime<Utc>)],
) -> QueryResult<Vec<bool>> {
    let mut found = vec![false; pairs.len()];
    let positions = Statement::new(DISPATCHED_MANY)
        .bind(pairs_json(pairs))
        .returning::<BigInt>()
        .load::<i64>(conn)?;
    for position in positions {
        if let Some(slot) = usize::try_from(position)
            .ok()
            .and_then(|i| found.get_mut(i))
        {
            *slot = true;
        }
    }
    Ok(found)
}

pub(crate) fn table_exists(conn: &mut SqliteConnection, table: &str) -> QueryResult<bool> {
    let count = Statement::new(TABLE_EXISTS)
        .bind(table)
        .returning::<BigInt>()
        .get_result::<i64>(conn)?;
    Ok(count > 0)
}

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
        assert_eq!(marks(CLAIM), 2);
        assert_eq!(marks(CLAIM_WITH_TIMESTAMPS), 2);
        assert_eq!(marks(CLAIM_MANY), 2);
        assert_eq!(marks(CLAIM_MANY_WITH_TIMESTAMPS), 2);
        assert_eq!(marks(RELEASE), 1);
        assert_eq!(marks(UPSERT_DISPATCHES), 4);
        assert_eq!(marks(UPSERT_DISPATCHES_WITH_TIMESTAMPS), 6);
        assert_eq!(marks(DISPATCHED_MANY), 1);
    }
}
