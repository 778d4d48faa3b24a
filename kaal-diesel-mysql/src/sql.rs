//! The statements that are MySQL's own: the lease claim and its batch form, release, the
//! dispatch upsert and batch lookup.
//!
//! Every lease time comes from the database: `UTC_TIMESTAMP(6)` is evaluated once per
//! statement, so within one statement "now" is one instant, and no node's clock is ever
//! compared with `expires_at`. ttls are bound as a number of microseconds
//! (`UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND`).
//!
//! # Single-key statements go through the key's unique index
//!
//! The statements that name one key compare `expires_at + INTERVAL 0 MICROSECOND`, not the
//! bare column, so that the optimizer cannot run them through
//! `index_kaal_locks_on_expires_at`: on a small table (a new database) MariaDB 10.11 picks
//! that index for `key = ? AND expires_at > UTC_TIMESTAMP(6)` and range-scans every live
//! lease, and every deleted one not purged yet. Measured with kaal-bench (MySQL lease,
//! acquire + release on a new database): a release took 0.35 ms more than a plain
//! `DELETE … WHERE key = ?`. Through the unique key index each statement is one row lookup,
//! whatever the table holds.
//!
//! # Why a claim is two statements when the key is taken
//!
//! MySQL cannot say, in one statement, both "inserted" and "took over an expired row" apart
//! from "found a live row": Diesel connects with `CLIENT_FOUND_ROWS`, under which
//! `INSERT … ON DUPLICATE KEY UPDATE` reports 1 for an insert *and* 1 for a row matched but
//! left unchanged, and MySQL has no `RETURNING` (MariaDB's fails through Diesel). The
//! affected-row counts of a plain `INSERT` and of a plain `UPDATE … WHERE` are exact,
//! though, so a claim is:
//!
//! 1. [`CLAIM_INSERT`] — inserts the lease; success means acquired (one round trip, the
//!    usual case for a fresh fire time's key);
//! 2. on a duplicate key only, [`CLAIM_TAKEOVER`] — `UPDATE … WHERE key = ? AND expires_at
//!    <= UTC_TIMESTAMP(6)`: 1 row means the expired lease was taken over, 0 that it is live.
//!
//! Each statement is atomic on its own, so no transaction is needed: InnoDB evaluates the
//! `UPDATE`'s condition on the latest committed row under its row lock, so of two nodes
//! taking over the same expired lease the second finds it live. A row released between the
//! two statements makes the claim answer "not acquired", the conservative answer.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::connection::Connection;
use diesel::mysql::MysqlConnection;
use diesel::result::{DatabaseErrorKind, Error};
use diesel::sql_types::Text;
use diesel::{QueryResult, RunQueryDsl};
use kaal_core::DispatchStatus;
use kaal_diesel::schema::sql_types::KaalTimestamp;
use kaal_diesel::{DbTime, Statement, TableShape};

use crate::statement::{padded, SqlBuilder, MAX_BATCH};

/// The longest lease honoured; longer ttls are cut to it (MySQL's dates end at 9999).
const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// How often a batch claim that lost a deadlock is tried again before it answers "not
/// acquired" for its keys.
const BATCH_ATTEMPTS: usize = 3;

/// `ttl` in microseconds, as the text bound to `INTERVAL ? MICROSECOND`.
fn ttl_micros(ttl: Duration) -> String {
    ttl.min(MAX_TTL).as_micros().to_string()
}

/// Inserts a lease; one row inserted means acquired, a duplicate key that the key exists.
/// Parameters: key, ttl in microseconds.
pub(crate) const CLAIM_INSERT: &str = "INSERT INTO kaal_locks (`key`, acquired_at, expires_at) \
VALUES (?, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND)";

/// [`CLAIM_INSERT`] for tables with `created_at` / `updated_at`.
pub(crate) const CLAIM_INSERT_WITH_TIMESTAMPS: &str = "INSERT INTO kaal_locks \
(`key`, acquired_at, expires_at, created_at, updated_at) \
VALUES (?, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))";

/// Takes over the lease of a key only if it has expired by the database's clock; one row
/// matched means acquired. Parameters: ttl in microseconds, key.
pub(crate) const CLAIM_TAKEOVER: &str = "UPDATE kaal_locks \
SET acquired_at = UTC_TIMESTAMP(6), expires_at = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND \
WHERE `key` = ? AND expires_at + INTERVAL 0 MICROSECOND <= UTC_TIMESTAMP(6)";

/// [`CLAIM_TAKEOVER`] for tables with `created_at` / `updated_at`.
pub(crate) const CLAIM_TAKEOVER_WITH_TIMESTAMPS: &str = "UPDATE kaal_locks \
SET acquired_at = UTC_TIMESTAMP(6), expires_at = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND, \
updated_at = UTC_TIMESTAMP(6) \
WHERE `key` = ? AND expires_at + INTERVAL 0 MICROSECOND <= UTC_TIMESTAMP(6)";

/// Deletes a live lease; one row means a live lease was released. Parameter: key.
pub(crate) const RELEASE_LIVE: &str =
    "DELETE FROM kaal_locks WHERE `key` = ? AND expires_at + INTERVAL 0 MICROSECOND > UTC_TIMESTAMP(6)";

/// Deletes an expired lease (run when [`RELEASE_LIVE`] found none, so the row does not
/// linger). Parameter: key.
pub(crate) const RELEASE_EXPIRED: &str =
    "DELETE FROM kaal_locks WHERE `key` = ? AND expires_at + INTERVAL 0 MICROSECOND <= UTC_TIMESTAMP(6)";

/// The `acquired_at` a batch claim writes into the rows it takes until it has read them
/// back; replaced before commit, so no committed row ever carries it.
const MARK: &str = "'1000-01-01 00:00:00'";

pub(crate) fn claim(
    conn: &mut MysqlConnection,
    key: &str,
    ttl: Duration,
    shape: TableShape,
) -> QueryResult<bool> {
    let ttl = ttl_micros(ttl);
    let insert = if shape.lock_timestamps {
        CLAIM_INSERT_WITH_TIMESTAMPS
    } else {
        CLAIM_INSERT
    };
    match Statement::new(insert)
        .bind(key)
        .bind(ttl.as_str())
        .execute(conn)
    {
        Ok(inserted) => return Ok(inserted == 1),
        Err(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {}
        Err(err) => return Err(err),
    }
    let takeover = if shape.lock_timestamps {
        CLAIM_TAKEOVER_WITH_TIMESTAMPS
    } else {
        CLAIM_TAKEOVER
    };
    let taken = Statement::new(takeover).bind(ttl).bind(key).execute(conn)?;
    Ok(taken == 1)
}

/// Claims a batch, per chunk of at most [`MAX_BATCH`] keys in sorted order; see
/// [`claim_chunk`].
pub(crate) fn claim_many(
    conn: &mut MysqlConnection,
    keys: &[String],
    ttl: Duration,
    shape: TableShape,
) -> QueryResult<Vec<bool>> {
    // Sorted, so that concurrent batches lock rows in the same order; a key given twice is
    // claimed once.
    let mut sorted: Vec<&str> = keys.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted.dedup();
    let ttl = ttl_micros(ttl);
    let mut won: HashSet<String> = HashSet::new();
    for chunk in sorted.chunks(MAX_BATCH) {
        won.extend(retry_deadlocks("batch claim", chunk.len(), || {
            claim_chunk(conn, chunk, &ttl, shape)
        })?);
    }
    // A key given twice is taken once: its first position says so, as a loop would.
    Ok(keys.iter().map(|key| won.remove(key)).collect())
}

/// Runs `attempt` again (up to [`BATCH_ATTEMPTS`] times in all) while it loses deadlocks.
fn retry_deadlocks<T>(
    what: &str,
    size: usize,
    mut attempt: impl FnMut() -> QueryResult<T>,
) -> QueryResult<T> {
    let mut tries = 1;
    loop {
        match attempt() {
            Err(Error::DatabaseError(DatabaseErrorKind::SerializationFailure, info))
                if tries < BATCH_ATTEMPTS =>
            {
                log::debug!(
                    "MySQL {what} of {size} rows lost a deadlock (attempt {tries}): {}",
                    info.message()
                );
                tries += 1;
            }
            outcome => return outcome,
        }
    }
}

/// One chunk of a batch claim, in one transaction (READ COMMITTED, the session's level);
/// returns the keys taken:
///
/// 1. `UPDATE … SET acquired_at = <mark>, expires_at = <new expiry> WHERE key IN (…) AND
///    expires_at <= UTC_TIMESTAMP(6)` — takes over every expired lease of the chunk;
/// 2. `INSERT IGNORE … VALUES (key, <mark>, <new expiry>), …` — takes every key that has no
///    row (a key another transaction holds or is inserting is skipped, after waiting for it);
/// 3. `SELECT key … WHERE key IN (…) AND acquired_at = <mark>` — the rows this transaction
///    wrote: `<mark>` is a time no committed row ever has (step 4 replaces it before
///    commit), and this plain read sees this transaction's own changes but only committed
///    rows of others;
/// 4. `UPDATE … SET acquired_at = expires_at - <ttl> WHERE key IN (…) AND acquired_at =
///    <mark>` — the real acquisition time.
///
/// Six round trips with `BEGIN` / `COMMIT`, whatever the chunk's size. Under READ COMMITTED
/// an `UPDATE` does not wait for rows that another transaction has locked but whose last
/// committed version does not match its `WHERE`, so a batch waits only for the keys it
/// claims, whatever plan the optimizer picks. The one statement that returns rows never
/// waits for a lock, on purpose: a `SELECT` that fails part-way through its rows (deadlock,
/// lock wait timeout) leaves libmysqlclient's prepared statement expecting the rest, and
/// its next execution then blocks for ever.
fn claim_chunk(
    conn: &mut MysqlConnection,
    keys: &[&str],
    ttl: &str,
    shape: TableShape,
) -> QueryResult<Vec<String>> {
    conn.transaction(|conn| {
        let mut take = SqlBuilder::new("UPDATE kaal_locks SET acquired_at = ");
        take.push(MARK)
            .push(", expires_at = UTC_TIMESTAMP(6) + INTERVAL ")
            .bind(ttl)
            .push(" MICROSECOND");
        if shape.lock_timestamps {
            take.push(", updated_at = UTC_TIMESTAMP(6)");
        }
        take.push(" WHERE `key` IN (")
            .bind_list(padded(keys).copied())
            .push(") AND expires_at <= UTC_TIMESTAMP(6)");
        take.execute(conn)?;

        let mut insert = if shape.lock_timestamps {
            SqlBuilder::new(
                "INSERT IGNORE INTO kaal_locks (`key`, acquired_at, expires_at, created_at, updated_at) VALUES ",
            )
        } else {
            SqlBuilder::new(
                "INSERT IGNORE INTO kaal_locks (`key`, acquired_at, expires_at) VALUES ",
            )
        };
        for (i, key) in padded(keys).enumerate() {
            insert.push(if i == 0 { "(" } else { ", (" });
            insert
                .bind(*key)
                .push(", ")
                .push(MARK)
                .push(", UTC_TIMESTAMP(6) + INTERVAL ")
                .bind(ttl)
                .push(" MICROSECOND");
            if shape.lock_timestamps {
                insert.push(", UTC_TIMESTAMP(6), UTC_TIMESTAMP(6)");
            }
            insert.push(")");
        }
        insert.execute(conn)?;

        let mut mine = SqlBuilder::new("SELECT `key` FROM kaal_locks WHERE `key` IN (");
        mine.bind_list(padded(keys).copied())
            .push(") AND acquired_at = ")
            .push(MARK);
        let mine: Vec<String> = mine.returning::<Text>().load(conn)?;
        if mine.is_empty() {
            return Ok(mine);
        }

        let mut stamp = SqlBuilder::new(
            "UPDATE kaal_locks SET acquired_at = expires_at - INTERVAL ",
        );
        stamp
            .bind(ttl)
            .push(" MICROSECOND WHERE `key` IN (")
            .bind_list(padded(keys).copied())
            .push(") AND acquired_at = ")
            .push(MARK);
        stamp.execute(conn)?;
        Ok(mine)
    })
}

pub(crate) fn release(conn: &mut MysqlConnection, key: &str) -> QueryResult<bool> {
    if Statement::new(RELEASE_LIVE).bind(key).execute(conn)? > 0 {
        return Ok(true);
    }
    Statement::new(RELEASE_EXPIRED).bind(key).execute(conn)?;
    Ok(false)
}

pub(crate) fn upsert_dispatches(
    conn: &mut MysqlConnection,
    pairs: &[(String, DateTime<Utc>)],
    node_id: &str,
    status: DispatchStatus,
    dispatched_at: DbTime,
    shape: TableShape,
) -> QueryResult<()> {
    let at = dispatched_at.to_db_text();
    // Sorted, so that concurrent upserts lock index entries in the same order.
    let mut rows: Vec<(&str, DbTime)> = pairs
        .iter()
        .map(|(key, fire_time)| (key.as_str(), DbTime::new(*fire_time)))
        .collect();
    rows.sort_unstable();
    let rows: Vec<(&str, String)> = rows
        .into_iter()
        .map(|(key, time)| (key, time.to_db_text()))
        .collect();
    for chunk in rows.chunks(MAX_BATCH) {
        let mut upsert = if shape.dispatch_timestamps {
            SqlBuilder::new(
                "INSERT INTO kaal_dispatches (`key`, fire_time, dispatched_at, node_id, status, created_at, updated_at) VALUES ",
            )
        } else {
            SqlBuilder::new(
                "INSERT INTO kaal_dispatches (`key`, fire_time, dispatched_at, node_id, status) VALUES ",
            )
        };
        for (i, (key, fire_time)) in padded(chunk).enumerate() {
            upsert.push(if i == 0 { "(" } else { ", (" });
            upsert
                .bind(*key)
                .push(", ")
                .bind(fire_time.as_str())
                .push(", ")
                .bind(at.as_str())
                .push(", ")
                .bind(node_id)
                .push(", ")
                .bind(status.as_str());
            if shape.dispatch_timestamps {
                upsert
                    .push(", ")
                    .bind(at.as_str())
                    .push(", ")
                    .bind(at.as_str());
            }
            upsert.push(")");
        }
        // VALUES(col) is deprecated on MySQL 8.0.20+ (a warning) but is the one form both
        // MySQL and MariaDB accept.
        upsert.push(
            " ON DUPLICATE KEY UPDATE dispatched_at = VALUES(dispatched_at), \
             node_id = VALUES(node_id), status = VALUES(status)",
        );
        if shape.dispatch_timestamps {
            upsert.push(", updated_at = VALUES(updated_at)");
        }
        retry_deadlocks("dispatch upsert", chunk.len(), || (&upsert).execute(conn))?;
    }
    Ok(())
}

pub(crate) fn dispatched_many(
    conn: &mut MysqlConnection,
    pairs: &[(String, DateTime<Utc>)],
) -> QueryResult<Vec<bool>> {
    let rows: Vec<(&str, DbTime, String)> = pairs
        .iter()
        .map(|(key, fire_time)| {
            let time = DbTime::new(*fire_time);
            (key.as_str(), time, time.to_db_text())
        })
        .collect();
    let mut found: HashSet<(String, DbTime)> = HashSet::new();
    for chunk in rows.chunks(MAX_BATCH) {
        // An OR of (key, fire_time) equalities: a union of point ranges on the unique index.
        let mut lookup = SqlBuilder::new("SELECT `key`, fire_time FROM kaal_dispatches WHERE ");
        for (i, (key, _, fire_time)) in padded(chunk).enumerate() {
            lookup.push(if i == 0 { "(`key` = " } else { " OR (`key` = " });
            lookup
                .bind(*key)
                .push(" AND fire_time = ")
                .bind(fire_time.as_str())
                .push(")");
        }
        let rows: Vec<(String, DbTime)> = lookup.returning::<(Text, KaalTimestamp)>().load(conn)?;
        found.extend(rows);
    }
    Ok(rows
        .into_iter()
        .map(|(key, time, _)| found.contains(&(key.to_string(), time)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_is_bound_in_microseconds_and_capped() {
        assert_eq!(ttl_micros(Duration::from_secs(125)), "125000000");
        assert_eq!(ttl_micros(Duration::from_micros(1_500)), "1500");
        assert_eq!(ttl_micros(Duration::MAX), ttl_micros(MAX_TTL));
    }

    #[test]
    fn statements_have_no_stray_placeholders() {
        let marks = |sql: &str| sql.matches('?').count();
        assert_eq!(marks(CLAIM_INSERT), 2);
        assert_eq!(marks(CLAIM_INSERT_WITH_TIMESTAMPS), 2);
        assert_eq!(marks(CLAIM_TAKEOVER), 2);
        assert_eq!(marks(CLAIM_TAKEOVER_WITH_TIMESTAMPS), 2);
        assert_eq!(marks(RELEASE_LIVE), 1);
        assert_eq!(marks(RELEASE_EXPIRED), 1);
    }
}
