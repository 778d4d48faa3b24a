//! The lease and dispatch-log steps as data: [`ClaimSteps`], what every backend's store runs
//! to claim, release and record, and [`JsonBatch`], the one implementation of it for every
//! database that does each step in **one statement over a JSON array** (PostgreSQL, SQLite).
//!
//! A backend of that kind writes no Rust around its SQL: it fills a [`JsonBatchSql`] with its
//! statements (each in the two [table shapes](crate::TableShape), as a [`Shaped`] pair) and
//! says `type Steps = JsonBatch;`. The binding, the batch encoding (one JSON array in one
//! text parameter: one statement whatever the batch size, no bound-parameter limit, one
//! prepared statement that every batch reuses), the deduplication and ordering of batches,
//! and the collecting of answers are written here, once.
//!
//! A database whose steps need more than one statement implements [`ClaimSteps`] itself —
//! MySQL, which has no `RETURNING` and whose upsert cannot tell "inserted" from "found live"
//! (see `kaal-diesel-mysql`'s `sql` module).
//!
//! [`ClaimSteps::start_run`] is not a JSON batch but one query-builder statement,
//! `UPDATE … RETURNING id`: a database here must have `RETURNING` (PostgreSQL; SQLite 3.35+
//! with Diesel's `returning_clauses_for_sqlite_3_35` feature).

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::query_dsl::methods::{ExecuteDsl, LoadQuery};
use diesel::sql_types::{BigInt, Bool, Text};
use diesel::{QueryResult, RunQueryDsl};
use kaal_core::DispatchStatus;
use serde_json::Value;

use crate::dialect::{ClaimSteps, Dialect, DispatchWrite};
use crate::run_queries::{start_returning_id, start_run_returning_id, store_now, RunRow};
use crate::shape::TableShape;
use crate::statement::Statement;
use crate::time::DbTime;

/// One statement in the two forms the table shapes need: for tables without and with the
/// ActiveRecord `created_at` / `updated_at` columns.
#[derive(Debug, Clone, Copy)]
pub struct Shaped {
    /// For tables without `created_at` / `updated_at`.
    pub plain: &'static str,
    /// For tables with them.
    pub with_timestamps: &'static str,
}

impl Shaped {
    /// The form for a table that has (`true`) or lacks the timestamp columns.
    pub const fn pick(&self, timestamps: bool) -> &'static str {
        if timestamps {
            self.with_timestamps
        } else {
            self.plain
        }
    }
}

/// The lease and dispatch statements of a database that does each step in one statement,
/// run by [`JsonBatch`].
///
/// # Parameters
///
/// Every statement takes text parameters (bound as Diesel's `Text`, converted by the SQL),
/// in this order:
///
/// | statement | parameters | returns |
/// | --- | --- | --- |
/// | [`claim`](JsonBatchSql::claim) | key, ttl | — (1 row changed = taken) |
/// | [`claim_many`](JsonBatchSql::claim_many) | ttl, keys | the keys taken (`Text`) |
/// | [`release`](JsonBatchSql::release) | key | one `Bool` row: the lease was live |
/// | [`upsert_dispatches`](JsonBatchSql::upsert_dispatches), [`insert_dispatches`](JsonBatchSql::insert_dispatches) | dispatched_at, node_id, status, (with timestamps: created_at, updated_at,) pairs | — |
/// | [`dispatched_many`](JsonBatchSql::dispatched_many) | pairs | the 0-based positions found (`BigInt`) |
///
/// *keys* is a JSON array of distinct keys, sorted (so concurrent batches take their row
/// locks in one order and cannot deadlock, and an upsert never touches a row twice); *pairs*
/// a JSON array of `[key, fire_time]` with fire times in the stored text form
/// ([`DbTime::to_db_text`]) — distinct and sorted for the writes, in the caller's order for
/// the lookup; *ttl* is what [`JsonBatchSql::ttl`] makes of the lease's duration.
#[derive(Debug, Clone, Copy)]
pub struct JsonBatchSql {
    /// Inserts the lease of one key, or takes the row over only if its lease has expired
    /// by the database's clock.
    pub claim: Shaped,
    /// [`claim`](JsonBatchSql::claim) for a JSON array of keys, returning the keys taken.
    pub claim_many: Shaped,
    /// Deletes a lease, returning whether it was still live.
    pub release: &'static str,
    /// Writes the dispatch records of a JSON array of pairs, overwriting existing ones.
    pub upsert_dispatches: Shaped,
    /// Writes the dispatch records of a JSON array of pairs, leaving existing ones as they
    /// are (the commit point of a claim).
    pub insert_dispatches: Shaped,
    /// The 0-based positions of the pairs of a JSON array that have a dispatch record.
    pub dispatched_many: &'static str,
    /// A lease's duration as the ttl parameter (an interval literal, a time modifier...).
    pub ttl: fn(Duration) -> String,
}

impl JsonBatchSql {
    /// Every statement with the number of `?` marks it must hold, for a backend's unit test.
    pub fn placeholders(&self) -> Vec<(&'static str, usize)> {
        let mut expected = Vec::new();
        for (shaped, plain, stamped) in [
            (self.claim, 2, 2),
            (self.claim_many, 2, 2),
            (self.upsert_dispatches, 4, 6),
            (self.insert_dispatches, 4, 6),
        ] {
            expected.push((shaped.plain, plain));
            expected.push((shaped.with_timestamps, stamped));
        }
        expected.push((self.release, 1));
        expected.push((self.dispatched_many, 1));
        expected
    }
}

/// A [`Dialect`] whose lease and dispatch steps are one statement each: it supplies the
/// statements, [`JsonBatch`] runs them.
pub trait JsonBatchDialect: Dialect {
    /// The statements.
    const JSON_BATCH: JsonBatchSql;
}

/// [`ClaimSteps`] run from a [`JsonBatchDialect`]'s statements ([`JsonBatchSql`]): the
/// binding, the batch encoding (one JSON array in one text parameter: one statement
/// whatever the batch size, no bound-parameter limit, one prepared statement that every
/// batch reuses), the deduplication and ordering of batches and the collecting of answers,
/// written once for every such database.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonBatch;

/// `values` as a JSON array text.
fn json_array(values: impl IntoIterator<Item = Value>) -> String {
    Value::Array(values.into_iter().collect()).to_string()
}

/// `[key, fire_time_text]` as JSON.
fn pair_json((key, fire_time): (&str, DbTime)) -> Value {
    Value::Array(vec![Value::from(key), Value::from(fire_time.to_db_text())])
}

impl<D> ClaimSteps<D> for JsonBatch
where
    D: JsonBatchDialect,
    Statement<'static>: ExecuteDsl<D::Connection>,
    Statement<'static, Text>: LoadQuery<'static, D::Connection, String>,
    Statement<'static, Bool>: LoadQuery<'static, D::Connection, bool>,
    Statement<'static, BigInt>: LoadQuery<'static, D::Connection, i64>,
    start_returning_id: LoadQuery<'static, D::Connection, i64>,
{
    fn claim(
        conn: &mut D::Connection,
        key: &str,
        ttl: Duration,
        shape: TableShape,
    ) -> QueryResult<bool> {
        let sql = &D::JSON_BATCH;
        let changed = Statement::new(sql.claim.pick(shape.lock_timestamps))
            .bind(key.to_string())
            .bind((sql.ttl)(ttl))
            .execute(conn)?;
        Ok(changed == 1)
    }

    fn claim_many(
        conn: &mut D::Connection,
        keys: &[String],
        ttl: Duration,
        shape: TableShape,
    ) -> QueryResult<Vec<bool>> {
        let sql = &D::JSON_BATCH;
        let distinct: BTreeSet<&str> = keys.iter().map(String::as_str).collect();
        let mut taken: HashSet<String> = Statement::new(sql.claim_many.pick(shape.lock_timestamps))
            .bind((sql.ttl)(ttl))
            .bind(json_array(distinct.into_iter().map(Value::from)))
            .returning::<Text>()
            .load::<String>(conn)?
            .into_iter()
            .collect();
        Ok(keys.iter().map(|key| taken.remove(key)).collect())
    }

    fn release(conn: &mut D::Connection, key: &str) -> QueryResult<bool> {
        let live = Statement::new(D::JSON_BATCH.release)
            .bind(key.to_string())
            .returning::<Bool>()
            .load::<bool>(conn)?;
        Ok(live.first().copied().unwrap_or(false))
    }

    fn upsert_dispatches(
        conn: &mut D::Connection,
        pairs: &[(String, DateTime<Utc>)],
        node_id: &str,
        status: DispatchStatus,
        dispatched_at: DbTime,
        shape: TableShape,
        write: DispatchWrite,
    ) -> QueryResult<()> {
        let sql = &D::JSON_BATCH;
        let statement = match write {
            DispatchWrite::Upsert => sql.upsert_dispatches,
            DispatchWrite::InsertOnly => sql.insert_dispatches,
        };
        let distinct: BTreeSet<(&str, DbTime)> = pairs
            .iter()
            .map(|(key, fire_time)| (key.as_str(), DbTime::new(*fire_time)))
            .collect();
        let at = dispatched_at.to_db_text();
        let mut bound = Statement::new(statement.pick(shape.dispatch_timestamps))
            .bind(at.clone())
            .bind(node_id.to_string())
            .bind(status.as_str());
        if shape.dispatch_timestamps {
            bound = bound.bind(at.clone()).bind(at);
        }
        bound
            .bind(json_array(distinct.into_iter().map(pair_json)))
            .execute(conn)
            .map(drop)
    }

    fn dispatched_many(
        conn: &mut D::Connection,
        pairs: &[(String, DateTime<Utc>)],
    ) -> QueryResult<Vec<bool>> {
        let json = json_array(
            pairs
                .iter()
                .map(|(key, fire_time)| pair_json((key.as_str(), DbTime::new(*fire_time)))),
        );
        let positions = Statement::new(D::JSON_BATCH.dispatched_many)
            .bind(json)
            .returning::<BigInt>()
            .load::<i64>(conn)?;
        let mut found = vec![false; pairs.len()];
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

    /// One `UPDATE … RETURNING id` (query builder), shared by every database that has
    /// `RETURNING`.
    fn start_run(
        conn: &mut D::Connection,
        run: RunRow<'_>,
        at: Option<DbTime>,
        shape: TableShape,
    ) -> QueryResult<Option<i64>> {
        start_run_returning_id(
            conn,
            run,
            store_now(at, D::NOW_SQL),
            shape.dispatch_timestamps,
        )
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn a_shaped_statement_picks_its_form() {
        let shaped = Shaped {
            plain: "a",
            with_timestamps: "b",
        };
        assert_eq!(shaped.pick(false), "a");
        assert_eq!(shaped.pick(true), "b");
    }

    #[test]
    fn pairs_travel_as_key_and_stored_time_text() {
        let t = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let json = json_array([pair_json(("a\"b", DbTime::new(t)))]);
        let text = DbTime::new(t).to_db_text();
        assert!(text.starts_with("2026-01-02 03:04:05"), "{text}");
        assert_eq!(json, format!(r#"[["a\"b","{text}"]]"#));
    }
}
