//! The statements that are MySQL's own: the lease claim and its batch form, release, the
//! dispatch upsert and batch lookup.
//!
//! Every lease time comes from the database: `UTC_TIMESTAMP(6)` is evaluated once per
//! statement, so within one statement "now" is one instant, and no node's clock is ever
//! compared with `expires_at`. ttls are bound as a number of microseconds
//! (`UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND`). A batch claim reads the clock once, into
//! the session variables `@kaal_claim_at` / `@kaal_claim_until` ([`SET_CLAIM_TIME`]), so
//! that all its statements write and compare one time; see [`claim_sorted`].
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

use std::collections::hash_map::RandomState;
use std::collections::HashSet;
use std::hash::BuildHasher;
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::connection::Connection;
use diesel::mysql::MysqlConnection;
use diesel::result::{DatabaseErrorKind, Error};
use diesel::sql_types::{BigInt, Text};
use diesel::{QueryResult, RunQueryDsl};
use kaal_core::DispatchStatus;
use kaal_diesel::schema::sql_types::KaalTimestamp;
use kaal_diesel::{ClaimSteps, DbTime, DispatchWrite, Shaped, Statement, TableShape};

use crate::MysqlDialect;

use crate::builder::{padded, SqlBuilder, MAX_BATCH};

/// The longest lease honoured; longer ttls are cut to it (MySQL's dates end at 9999).
const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// How often a batch statement or batch claim that lost a deadlock is run in all before the
/// deadlock is returned (the store reports a batch claim's as contention: nothing decided).
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

/// [`CLAIM_INSERT`] in both table shapes.
const CLAIM_INSERTS: Shaped = Shaped {
    plain: CLAIM_INSERT,
    with_timestamps: CLAIM_INSERT_WITH_TIMESTAMPS,
};

/// [`CLAIM_TAKEOVER`] in both table shapes.
const CLAIM_TAKEOVERS: Shaped = Shaped {
    plain: CLAIM_TAKEOVER,
    with_timestamps: CLAIM_TAKEOVER_WITH_TIMESTAMPS,
};

/// Deletes a live lease; one row means a live lease was released. Parameter: key.
pub(crate) const RELEASE_LIVE: &str =
    "DELETE FROM kaal_locks WHERE `key` = ? AND expires_at + INTERVAL 0 MICROSECOND > UTC_TIMESTAMP(6)";

/// Deletes an expired lease (run when [`RELEASE_LIVE`] found none, so the row does not
/// linger). Parameter: key.
pub(crate) const RELEASE_EXPIRED: &str =
    "DELETE FROM kaal_locks WHERE `key` = ? AND expires_at + INTERVAL 0 MICROSECOND <= UTC_TIMESTAMP(6)";

/// The most keys one statement of a batch claim names (one parameter per key): a batch of
/// 10 000 keys is three `INSERT`s (4 096, 4 096 and 1 808 rows, the last padded to 2 048)
/// in one transaction. 4 096 keys of at most 255 bytes stay near 1 MiB per statement, below
/// every `max_allowed_packet` default (4 MiB on MySQL 5.7, 16 MiB on MariaDB, 64 MiB on
/// MySQL 8), and far below the 65 535 parameters of a prepared statement.
const CLAIM_CHUNK: usize = 4096;

/// How often the exact (take over, then insert) form of a batch claim is tried with a new
/// claim time when another claim's lease carries the very same times; then the batch fails
/// as contention (retried by [`retry_deadlocks`]).
const MARKER_ATTEMPTS: usize = 3;

/// Reads the database's clock once for a batch claim: every row the claim writes carries
/// `acquired_at = @kaal_claim_at` and `expires_at = @kaal_claim_until` (a ttl later), and
/// the claim judges expiry at `@kaal_claim_at`. Parameter: ttl in microseconds.
const SET_CLAIM_TIME: &str = "SET @kaal_claim_at = UTC_TIMESTAMP(6), \
@kaal_claim_until = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND";

/// The rest of a batch `INSERT`'s row after its key.
const CLAIM_ROW: &str = ", @kaal_claim_at, @kaal_claim_until)";

/// [`CLAIM_ROW`] for tables with `created_at` / `updated_at`.
const CLAIM_ROW_WITH_TIMESTAMPS: &str =
    ", @kaal_claim_at, @kaal_claim_until, @kaal_claim_at, @kaal_claim_at)";

/// A row that carries this claim's times: `acquired_at = @kaal_claim_at` and `expires_at =
/// @kaal_claim_until`.
const CARRIES_CLAIM_TIMES: &str = "acquired_at = CAST(@kaal_claim_at AS DATETIME(6)) \
AND expires_at = CAST(@kaal_claim_until AS DATETIME(6))";

/// A lease that had expired at the claim time (through the key index, see the module docs).
const EXPIRED_AT_CLAIM_TIME: &str =
    "expires_at + INTERVAL 0 MICROSECOND <= CAST(@kaal_claim_at AS DATETIME(6))";

/// Why a batch claim's transaction was rolled back.
enum Halt {
    /// A statement failed.
    Database(Error),
    /// The affected-row counts and the rows read back did not settle every key: an expired
    /// lease must be taken over, or another claim's lease carries the same times as this
    /// one's. Nothing was decided; the caller tries the next form.
    Undecided,
}

impl From<Error> for Halt {
    fn from(err: Error) -> Self {
        Self::Database(err)
    }
}

/// MySQL's lease and dispatch steps, [`MysqlDialect`]'s
/// [`Steps`](kaal_diesel::Dialect::Steps): a claim is an `INSERT`, then an `UPDATE` when the
/// key exists; a batch claim a transaction of multi-row `INSERT IGNORE`s read back; a
/// dispatch write a multi-row `INSERT` per 1 024 pairs. MySQL has no `RETURNING` and its
/// upsert cannot tell "inserted" from "found live", so these take more than one statement
/// (the `sql` module's docs say why each is exact).
#[derive(Debug, Clone, Copy, Default)]
pub struct MysqlSteps;

impl ClaimSteps<MysqlDialect> for MysqlSteps {
    fn claim(
        conn: &mut MysqlConnection,
        key: &str,
        ttl: Duration,
        shape: TableShape,
    ) -> QueryResult<bool> {
        let ttl = ttl_micros(ttl);
        match Statement::new(CLAIM_INSERTS.pick(shape.lock_timestamps))
            .bind(key)
            .bind(ttl.as_str())
            .execute(conn)
        {
            Ok(inserted) => return Ok(inserted == 1),
            Err(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {}
            Err(err) => return Err(err),
        }
        let taken = Statement::new(CLAIM_TAKEOVERS.pick(shape.lock_timestamps))
            .bind(ttl)
            .bind(key)
            .execute(conn)?;
        Ok(taken == 1)
    }

    /// Claims a batch: its keys sorted and distinct, in one transaction (two when the first
    /// cannot settle every key); see `claim_sorted`. A deadlock is retried.
    fn claim_many(
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
        let mut won = retry_deadlocks("batch claim", sorted.len(), || {
            claim_sorted(conn, &sorted, &ttl, shape)
        })?;
        // A key given twice is taken once: its first position says so, as a loop would.
        Ok(keys
            .iter()
            .map(|key| match sorted.binary_search(&key.as_str()) {
                Ok(i) => std::mem::take(&mut won[i]),
                Err(_) => false,
            })
            .collect())
    }

    fn release(conn: &mut MysqlConnection, key: &str) -> QueryResult<bool> {
        if Statement::new(RELEASE_LIVE).bind(key).execute(conn)? > 0 {
            return Ok(true);
        }
        Statement::new(RELEASE_EXPIRED).bind(key).execute(conn)?;
        Ok(false)
    }

    fn upsert_dispatches(
        conn: &mut MysqlConnection,
        pairs: &[(String, DateTime<Utc>)],
        node_id: &str,
        status: DispatchStatus,
        dispatched_at: DbTime,
        shape: TableShape,
        write: DispatchWrite,
    ) -> QueryResult<()> {
        let at = dispatched_at.to_db_text();
        let verb = match write {
            DispatchWrite::Upsert => "INSERT INTO",
            // Insert-only: a pair that has a row is skipped, the row untouched (the commit
            // point of a claim).
            DispatchWrite::InsertOnly => "INSERT IGNORE INTO",
        };
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
            let mut upsert = SqlBuilder::new(verb);
            upsert.push(if shape.dispatch_timestamps {
                " kaal_dispatches (`key`, fire_time, dispatched_at, node_id, status, created_at, updated_at) VALUES "
            } else {
                " kaal_dispatches (`key`, fire_time, dispatched_at, node_id, status) VALUES "
            });
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
            if write == DispatchWrite::Upsert {
                // VALUES(col) is deprecated on MySQL 8.0.20+ (a warning) but is the one form
                // both MySQL and MariaDB accept.
                upsert.push(
                    " ON DUPLICATE KEY UPDATE dispatched_at = VALUES(dispatched_at), \
                     node_id = VALUES(node_id), status = VALUES(status)",
                );
                if shape.dispatch_timestamps {
                    upsert.push(", updated_at = VALUES(updated_at)");
                }
            }
            retry_deadlocks("dispatch upsert", chunk.len(), || (&upsert).execute(conn))?;
        }
        Ok(())
    }

    fn dispatched_many(
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
            let rows: Vec<(String, DbTime)> =
                lookup.returning::<(Text, KaalTimestamp)>().load(conn)?;
            found.extend(rows);
        }
        Ok(rows
            .into_iter()
            .map(|(key, time, _)| found.contains(&(key.to_string(), time)))
            .collect())
    }
}

/// Runs `attempt` again (up to [`BATCH_ATTEMPTS`] times in all, after a [`backoff`]) while
/// it loses deadlocks.
///
/// Some deadlocks are InnoDB's own and need no batch: sessions inserting the same key over
/// a deleted (not yet purged) row each take a shared next-key lock while checking for a
/// duplicate, then wait for each other's to insert. Retried at once, a batch can meet the
/// same crowd again; the pause lets the winner finish.
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
                std::thread::sleep(backoff(tries));
                tries += 1;
            }
            outcome => return outcome,
        }
    }
}

/// The pause before retrying a batch that lost a deadlock on its `tries`-th attempt: a
/// random 1-2 ms per attempt so far, so that the transactions that deadlocked together do
/// not start again in step.
fn backoff(tries: usize) -> Duration {
    let step = 1_000 * u64::try_from(tries).unwrap_or(u64::MAX / 2_000).max(1);
    let random = RandomState::new().hash_one(tries);
    Duration::from_micros(step + random % step)
}

/// Claims `keys` (sorted, distinct); the answers are in their order.
///
/// Every row the claim writes carries one claim time read from the database's clock
/// ([`SET_CLAIM_TIME`]): `acquired_at = T`, `expires_at = T + ttl`. Two forms, each one
/// READ COMMITTED transaction (the session's level):
///
/// 1. [`claim_free`], the usual case of a tick's fresh fire times: `INSERT IGNORE` every key.
///    When every row is inserted (the affected-row count is exact under
///    `CLIENT_FOUND_ROWS`: 1 per inserted row, 0 per duplicate), every key is won; that is
///    one `INSERT` per [`CLAIM_CHUNK`] keys and a commit. Otherwise one plain read per short
///    chunk finds the rows carrying this claim's times and any expired lease: the first are
///    exactly the inserted ones when there are as many as the count, and with no expired
///    lease every other key is held by someone else. Anything else rolls back.
/// 2. [`claim_any`], when an expired lease must be taken over (or another claim's lease
///    carries the same times): with a new claim time, take over the expired leases first,
///    then insert, then read back. Taking over before inserting matters: a duplicate key
///    met by `INSERT IGNORE` leaves a shared lock on the row, and two batches that both
///    hold one on the same expired lease deadlock when both upgrade it to take it over.
fn claim_sorted(
    conn: &mut MysqlConnection,
    keys: &[&str],
    ttl: &str,
    shape: TableShape,
) -> QueryResult<Vec<bool>> {
    Statement::new(SET_CLAIM_TIME).bind(ttl).execute(conn)?;
    match conn.transaction(|conn| claim_free(conn, keys, shape)) {
        Ok(won) => return Ok(won),
        Err(Halt::Database(err)) => return Err(err),
        Err(Halt::Undecided) => {}
    }
    for attempt in 1..=MARKER_ATTEMPTS {
        Statement::new(SET_CLAIM_TIME).bind(ttl).execute(conn)?;
        match conn.transaction(|conn| claim_any(conn, keys, shape)) {
            Ok(won) => return Ok(won),
            Err(Halt::Database(err)) => return Err(err),
            Err(Halt::Undecided) => log::debug!(
                "MySQL batch claim of {} keys met a lease with its own claim time (attempt \
                 {attempt})",
                keys.len()
            ),
        }
    }
    Err(Error::DatabaseError(
        DatabaseErrorKind::SerializationFailure,
        Box::new(format!(
            "{MARKER_ATTEMPTS} claim times in a row were also another claim's lease times"
        )),
    ))
}

/// The first form of [`claim_sorted`]: insert every key; [`Halt::Undecided`] unless that
/// settles every key.
fn claim_free(
    conn: &mut MysqlConnection,
    keys: &[&str],
    shape: TableShape,
) -> Result<Vec<bool>, Halt> {
    let mut won = vec![false; keys.len()];
    let mut short = Vec::new();
    for (n, chunk) in keys.chunks(CLAIM_CHUNK).enumerate() {
        let inserted = insert_claimed(conn, chunk, shape)?;
        let offset = n * CLAIM_CHUNK;
        if inserted == chunk.len() {
            won[offset..offset + chunk.len()].fill(true);
        } else {
            short.push((offset, chunk, inserted));
        }
    }
    for (offset, chunk, inserted) in short {
        let mut mine = 0;
        for (key, carries_claim_times) in read_back(conn, chunk)? {
            if carries_claim_times == 0 {
                // An expired lease: the second form takes it over.
                return Err(Halt::Undecided);
            }
            if let Ok(i) = chunk.binary_search(&key.as_str()) {
                won[offset + i] = true;
                mine += 1;
            }
        }
        if mine != inserted {
            return Err(Halt::Undecided);
        }
    }
    Ok(won)
}

/// The second form of [`claim_sorted`]: per chunk, take over the expired leases, insert the
/// missing keys, and read back the rows carrying the claim times when the counts do not
/// already say "all" or "none"; [`Halt::Undecided`] if more rows carry them than this
/// transaction wrote.
fn claim_any(
    conn: &mut MysqlConnection,
    keys: &[&str],
    shape: TableShape,
) -> Result<Vec<bool>, Halt> {
    let mut won = vec![false; keys.len()];
    for (n, chunk) in keys.chunks(CLAIM_CHUNK).enumerate() {
        let offset = n * CLAIM_CHUNK;
        // The rows taken over are locked by this transaction, so the INSERT skips them:
        // the two counts never count one key twice.
        let claimed = take_over_expired(conn, chunk, shape)? + insert_claimed(conn, chunk, shape)?;
        if claimed == chunk.len() {
            won[offset..offset + chunk.len()].fill(true);
        } else if claimed > 0 {
            let mut mine = 0;
            for (key, carries_claim_times) in read_back(conn, chunk)? {
                if carries_claim_times == 0 {
                    continue;
                }
                if let Ok(i) = chunk.binary_search(&key.as_str()) {
                    won[offset + i] = true;
                    mine += 1;
                }
            }
            if mine != claimed {
                return Err(Halt::Undecided);
            }
        }
    }
    Ok(won)
}

/// `INSERT IGNORE` of `keys` with the claim times; returns how many rows were inserted
/// (duplicates count 0, and so do the rows that [`padded`] repeats).
fn insert_claimed(
    conn: &mut MysqlConnection,
    keys: &[&str],
    shape: TableShape,
) -> QueryResult<usize> {
    let (mut insert, row) = if shape.lock_timestamps {
        (
            SqlBuilder::new(
                "INSERT IGNORE INTO kaal_locks (`key`, acquired_at, expires_at, created_at, updated_at) VALUES ",
            ),
            CLAIM_ROW_WITH_TIMESTAMPS,
        )
    } else {
        (
            SqlBuilder::new(
                "INSERT IGNORE INTO kaal_locks (`key`, acquired_at, expires_at) VALUES ",
            ),
            CLAIM_ROW,
        )
    };
    for (i, key) in padded(keys).enumerate() {
        insert
            .push(if i == 0 { "(" } else { ", (" })
            .bind(*key)
            .push(row);
    }
    insert.execute(conn)
}

/// Takes over the leases of `keys` that had expired at the claim time; returns how many.
/// Under READ COMMITTED the `UPDATE` does not wait for a row another transaction has locked
/// whose last committed version is live, so it waits only for the keys it takes.
fn take_over_expired(
    conn: &mut MysqlConnection,
    keys: &[&str],
    shape: TableShape,
) -> QueryResult<usize> {
    let mut take = SqlBuilder::new(
        "UPDATE kaal_locks SET acquired_at = @kaal_claim_at, expires_at = @kaal_claim_until",
    );
    if shape.lock_timestamps {
        take.push(", updated_at = @kaal_claim_at");
    }
    take.push(" WHERE `key` IN (")
        .bind_list(padded(keys).copied())
        .push(") AND ")
        .push(EXPIRED_AT_CLAIM_TIME);
    take.execute(conn)
}

/// The rows of `keys` that carry the claim times or hold a lease expired at the claim time:
/// `(key, 1)` for the first, `(key, 0)` for the others.
///
/// A plain read: it sees this transaction's own rows and the last committed version of the
/// others, and never waits for a lock, on purpose: a `SELECT` that fails part-way through
/// its rows (deadlock, lock wait timeout) leaves libmysqlclient's prepared statement
/// expecting the rest, and its next execution then blocks for ever.
fn read_back(conn: &mut MysqlConnection, keys: &[&str]) -> QueryResult<Vec<(String, i64)>> {
    let mut read = SqlBuilder::new("SELECT `key`, CAST(");
    read.push(CARRIES_CLAIM_TIMES)
        .push(" AS SIGNED) FROM kaal_locks WHERE `key` IN (")
        .bind_list(padded(keys).copied())
        .push(") AND (")
        .push(CARRIES_CLAIM_TIMES)
        .push(" OR ")
        .push(EXPIRED_AT_CLAIM_TIME)
        .push(")");
    read.returning::<(Text, BigInt)>().load(conn)
}

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

/// The database's clock, as the UTC `DATETIME(6)` the columns hold.
pub(crate) const NOW: &str = "SELECT UTC_TIMESTAMP(6)";

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
        assert_eq!(marks(TABLE_EXISTS), 1);
        assert_eq!(marks(UNIQUE_INDEXES_ON), 2);
        assert_eq!(marks(CLAIM_INSERT), 2);
        assert_eq!(marks(CLAIM_INSERT_WITH_TIMESTAMPS), 2);
        assert_eq!(marks(CLAIM_TAKEOVER), 2);
        assert_eq!(marks(CLAIM_TAKEOVER_WITH_TIMESTAMPS), 2);
        assert_eq!(marks(RELEASE_LIVE), 1);
        assert_eq!(marks(RELEASE_EXPIRED), 1);
        assert_eq!(marks(SET_CLAIM_TIME), 1);
        assert_eq!(marks(CLAIM_ROW), 0);
        assert_eq!(marks(CLAIM_ROW_WITH_TIMESTAMPS), 0);
        assert_eq!(marks(CARRIES_CLAIM_TIMES), 0);
        assert_eq!(marks(EXPIRED_AT_CLAIM_TIME), 0);
    }

    #[test]
    fn backoff_grows_with_the_attempts_and_varies() {
        for tries in 1..=3 {
            let step = Duration::from_millis(tries);
            let pause = backoff(usize::try_from(tries).unwrap());
            assert!(pause >= step && pause < 2 * step, "{pause:?}");
        }
        let pauses: HashSet<Duration> = (0..20).map(|_| backoff(1)).collect();
        assert!(pauses.len() > 1, "the pause is always {pauses:?}");
    }
}
