//! [`RunQueries`]: the statements of the run lifecycle (start, record, the scan for running
//! runs) that are the same SQL on every database, written once with Diesel's query builder.
//!
//! Each write is **one compare-and-set `UPDATE`** of one dispatch row, filtered by its key,
//! fire time, owner and expected status: two nodes (or a node and its own late retry) can
//! never both move a row, and a write that lost changes nothing. Its timestamps come from
//! the store's clock *inside* the statement ([`StoreNow`]): the database's clock, evaluated
//! once per statement, so `started_at`, `finished_at`, `dispatched_at` and `updated_at` of
//! one write are one instant and no node's clock is involved (unless the store was given a
//! clock of its own: simulated time in tests).
//!
//! Diesel never caches the prepared statement of a query-builder `UPDATE` (its
//! `UpdateStatement` marks itself unsafe to cache), so these cost a prepare per call, as
//! [`transition`](kaal_core::DispatchRegistry::transition) does; the `SELECT`s are cached.

use diesel::dsl::{auto_type, sql, AsExprOf};
use diesel::expression::{SqlLiteral, UncheckedBind};
use diesel::prelude::*;
use diesel::query_dsl::methods::{ExecuteDsl, LoadQuery};
use diesel::sql_types::Nullable;

use crate::queries::dispatch_row;
use crate::rows::DispatchRow;
use crate::schema::kaal_dispatches;
use crate::schema::sql_types::KaalTimestamp;
use crate::time::DbTime;

/// The store's clock as an SQL expression: `COALESCE(<instant>, (<the dialect's NOW_SQL>))`
/// — the instant bound when the store was given a clock
/// ([`with_clock`](crate::DieselStore::with_clock): simulated time), else the database's
/// current time as a scalar subquery of [`Dialect::NOW_SQL`](crate::Dialect::NOW_SQL).
/// Every database here evaluates its clock once per statement, so every use of it in one
/// statement is one instant.
pub type StoreNow = SqlLiteral<
    KaalTimestamp,
    UncheckedBind<SqlLiteral<KaalTimestamp>, AsExprOf<Option<DbTime>, Nullable<KaalTimestamp>>>,
>;

/// [`StoreNow`] for `at` (`None`: the database's clock, read by `now_sql`).
pub fn store_now(at: Option<DbTime>, now_sql: &str) -> StoreNow {
    sql::<KaalTimestamp>("COALESCE(")
        .bind::<Nullable<KaalTimestamp>, _>(at)
        .sql(&format!(", ({now_sql}))"))
}

/// `updated_at = now`, for tables that have the column.
type Touch = diesel::dsl::Eq<kaal_dispatches::updated_at, StoreNow>;

/// `finished_at = now`, for a move to a final status.
type Finish = diesel::dsl::Eq<kaal_dispatches::finished_at, diesel::dsl::Nullable<StoreNow>>;

#[auto_type]
pub(crate) fn start(
    key: String,
    fire_time: DbTime,
    node_id: String,
    claimed: String,
    running: String,
    now: StoreNow,
    touch: Option<Touch>,
) -> _ {
    let started: diesel::dsl::Nullable<StoreNow> = now.clone().nullable();
    diesel::dsl::update(
        kaal_dispatches::table
            .filter(kaal_dispatches::key.eq(key))
            .filter(kaal_dispatches::fire_time.eq(fire_time))
            .filter(kaal_dispatches::node_id.eq(node_id))
            .filter(kaal_dispatches::status.eq(claimed)),
    )
    .set((
        kaal_dispatches::status.eq(running),
        kaal_dispatches::dispatched_at.eq(now),
        kaal_dispatches::started_at.eq(started),
        kaal_dispatches::attempt.eq(1_i32),
        touch,
    ))
}

/// [`start`] answering the id of the row it moved (`RETURNING id`), for the databases that
/// have `RETURNING` (PostgreSQL, SQLite 3.35+).
#[auto_type]
pub(crate) fn start_returning_id(
    key: String,
    fire_time: DbTime,
    node_id: String,
    claimed: String,
    running: String,
    now: StoreNow,
    touch: Option<Touch>,
) -> _ {
    let update: start = start(key, fire_time, node_id, claimed, running, now, touch);
    update.returning(kaal_dispatches::id)
}

#[auto_type]
fn dispatch_id(key: String, fire_time: DbTime) -> _ {
    kaal_dispatches::table
        .filter(kaal_dispatches::key.eq(key))
        .filter(kaal_dispatches::fire_time.eq(fire_time))
        .select(kaal_dispatches::id)
}

#[auto_type]
#[allow(clippy::too_many_arguments)]
fn record(
    key: String,
    fire_time: DbTime,
    node_id: String,
    from: String,
    to: String,
    attempt: i32,
    error: Option<String>,
    now: StoreNow,
    finish: Option<Finish>,
    touch: Option<Touch>,
) -> _ {
    diesel::dsl::update(
        kaal_dispatches::table
            .filter(kaal_dispatches::key.eq(key))
            .filter(kaal_dispatches::fire_time.eq(fire_time))
            .filter(kaal_dispatches::node_id.eq(node_id))
            .filter(kaal_dispatches::status.eq(from)),
    )
    .set((
        kaal_dispatches::status.eq(to),
        kaal_dispatches::attempt.eq(attempt),
        kaal_dispatches::error.eq(error),
        kaal_dispatches::dispatched_at.eq(now),
        finish,
        touch,
    ))
}

#[auto_type]
fn running_since(running: String, since: DbTime) -> _ {
    kaal_dispatches::table
        .filter(kaal_dispatches::status.eq(running))
        .filter(kaal_dispatches::started_at.is_not_null())
        .filter(kaal_dispatches::fire_time.ge(since))
        .order((kaal_dispatches::fire_time.asc(), kaal_dispatches::key.asc()))
        .select(dispatch_row())
}

/// Where a run's row is, and who must own it: the filter of every lifecycle write.
#[derive(Debug, Clone, Copy)]
pub struct RunRow<'a> {
    /// The dispatch-log key.
    pub key: &'a str,
    /// The fire time.
    pub fire_time: DbTime,
    /// The node that must own the row.
    pub node_id: &'a str,
}

/// What [`RunQueries::record_run_row`] writes.
#[derive(Debug, Clone, Copy)]
pub struct RunWrite<'a> {
    /// The status the row must have.
    pub from: &'a str,
    /// The status it moves to.
    pub to: &'a str,
    /// Whether `to` is final: `finished_at` is stamped too.
    pub finished: bool,
    /// The attempt.
    pub attempt: i32,
    /// The error text (already clipped), `None` to clear it.
    pub error: Option<&'a str>,
}

/// The run lifecycle's statements that are the same SQL on every database. Implemented for
/// every connection type that can run them.
///
/// `now` is the store's clock as [`store_now`] makes it; `timestamps` whether the table has
/// `created_at` / `updated_at` ([`TableShape`](crate::TableShape)): `updated_at` is stamped
/// exactly when it exists.
pub trait RunQueries: Connection {
    /// Moves `run` from `claimed` to `dispatched`, stamping `started_at` and `dispatched_at`
    /// with `now` and `attempt = 1`; returns the rows changed (0 or 1).
    fn start_run_row(
        &mut self,
        run: RunRow<'_>,
        now: StoreNow,
        timestamps: bool,
    ) -> QueryResult<usize>;
    /// The id of the row of `(key, fire_time)`, if there is one.
    fn dispatch_row_id(&mut self, key: &str, fire_time: DbTime) -> QueryResult<Option<i64>>;
    /// Moves `run` as `write` says (only from `write.from`), storing its attempt and error,
    /// stamping `dispatched_at` — and `finished_at` when `write.finished` — with `now`;
    /// returns the rows changed (0 or 1).
    fn record_run_row(
        &mut self,
        run: RunRow<'_>,
        write: RunWrite<'_>,
        now: StoreNow,
        timestamps: bool,
    ) -> QueryResult<usize>;
    /// Rows in status `running` with a `started_at` whose fire time is at or after `since`,
    /// oldest first (then by key).
    fn running_rows(&mut self, running: &str, since: DbTime) -> QueryResult<Vec<DispatchRow>>;
}

fn touch(now: &StoreNow, timestamps: bool) -> Option<Touch> {
    timestamps.then(|| kaal_dispatches::updated_at.eq(now.clone()))
}

impl<C> RunQueries for C
where
    C: Connection,
    start: ExecuteDsl<C>,
    dispatch_id: LoadQuery<'static, C, i64>,
    record: ExecuteDsl<C>,
    running_since: LoadQuery<'static, C, DispatchRow>,
{
    fn start_run_row(
        &mut self,
        run: RunRow<'_>,
        now: StoreNow,
        timestamps: bool,
    ) -> QueryResult<usize> {
        let touch = touch(&now, timestamps);
        start(
            run.key.to_string(),
            run.fire_time,
            run.node_id.to_string(),
            kaal_core::DispatchStatus::Claimed.as_str().to_string(),
            kaal_core::DispatchStatus::Dispatched.as_str().to_string(),
            now,
            touch,
        )
        .execute(self)
    }

    fn dispatch_row_id(&mut self, key: &str, fire_time: DbTime) -> QueryResult<Option<i64>> {
        dispatch_id(key.to_string(), fire_time)
            .load::<i64>(self)
            .map(|ids| ids.into_iter().next())
    }

    fn record_run_row(
        &mut self,
        run: RunRow<'_>,
        write: RunWrite<'_>,
        now: StoreNow,
        timestamps: bool,
    ) -> QueryResult<usize> {
        let touch = touch(&now, timestamps);
        let finish = write
            .finished
            .then(|| kaal_dispatches::finished_at.eq(now.clone().nullable()));
        record(
            run.key.to_string(),
            run.fire_time,
            run.node_id.to_string(),
            write.from.to_string(),
            write.to.to_string(),
            write.attempt,
            write.error.map(str::to_string),
            now,
            finish,
            touch,
        )
        .execute(self)
    }

    fn running_rows(&mut self, running: &str, since: DbTime) -> QueryResult<Vec<DispatchRow>> {
        running_since(running.to_string(), since).load(self)
    }
}

/// [`RunQueries::start_run_row`] in one statement that also answers the row's id
/// (`UPDATE … RETURNING id`): `Some(id)` when this call moved the row, `None` when it did
/// not. For the databases that have `RETURNING` (PostgreSQL, SQLite 3.35+; Diesel's
/// `returning_clauses_for_sqlite_3_35` feature).
pub(crate) fn start_run_returning_id<C>(
    conn: &mut C,
    run: RunRow<'_>,
    now: StoreNow,
    timestamps: bool,
) -> QueryResult<Option<i64>>
where
    C: Connection,
    start_returning_id: LoadQuery<'static, C, i64>,
{
    let touch = touch(&now, timestamps);
    start_returning_id(
        run.key.to_string(),
        run.fire_time,
        run.node_id.to_string(),
        kaal_core::DispatchStatus::Claimed.as_str().to_string(),
        kaal_core::DispatchStatus::Dispatched.as_str().to_string(),
        now,
        touch,
    )
    .load::<i64>(conn)
    .map(|ids| ids.into_iter().next())
}
