//! [`RunQueries`]: the statements of the run lifecycle (start, record, the scan for running
//! runs, the check for a run of the job going, and a lost run's replacement) that are the
//! same SQL on every database, written once with Diesel's query builder.
//!
//! Each write is **one compare-and-set** on one dispatch row, filtered by its key, fire
//! time, owner and expected status — an `UPDATE`, or the `DELETE` that a rerun's `INSERT`
//! follows in the same transaction: two nodes (or a node and its own late retry) can never
//! both move a row, and a write that lost changes nothing. Its timestamps come from the
//! store's clock *inside* the statement ([`StoreNow`]): the database's clock, evaluated
//! once per statement, so `started_at`, `finished_at`, `dispatched_at`, `created_at` and
//! `updated_at` of one write are one instant and no node's clock is involved (unless the
//! store was given a clock of its own: simulated time in tests).
//!
//! Diesel never caches the prepared statement of a query-builder `UPDATE` (its
//! `UpdateStatement` marks itself unsafe to cache), nor of an `INSERT` with a column that
//! may be left to its default (the rerun's `id`), so these cost a prepare per call, as
//! [`transition`](kaal_core::DispatchRegistry::transition) does; the `SELECT`s and the
//! `DELETE` are cached.

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

/// The oldest other fire time of `key` whose run is going (`running` with a `started_at`),
/// and its node: what makes [`start_run_alone`](kaal_core::DispatchRegistry::start_run_alone)
/// answer "busy".
#[auto_type]
fn going_besides(key: String, fire_time: DbTime, running: String) -> _ {
    kaal_dispatches::table
        .filter(kaal_dispatches::key.eq(key))
        .filter(kaal_dispatches::status.eq(running))
        .filter(kaal_dispatches::started_at.is_not_null())
        .filter(kaal_dispatches::fire_time.ne(fire_time))
        .order(kaal_dispatches::fire_time.asc())
        .select((kaal_dispatches::fire_time, kaal_dispatches::node_id))
        .limit(1_i64)
}

#[auto_type]
fn delete_run(key: String, fire_time: DbTime, node_id: String, status: String) -> _ {
    diesel::dsl::delete(
        kaal_dispatches::table
            .filter(kaal_dispatches::key.eq(key))
            .filter(kaal_dispatches::fire_time.eq(fire_time))
            .filter(kaal_dispatches::node_id.eq(node_id))
            .filter(kaal_dispatches::status.eq(status)),
    )
}

/// `id = <given>`, for a row whose id the dialect chooses
/// ([`Dialect::replacement_dispatch_id`](crate::Dialect::replacement_dispatch_id)); `None`
/// leaves it to the table's sequence (omitted on SQLite, `DEFAULT` elsewhere).
type GivenId = Option<diesel::dsl::Eq<kaal_dispatches::id, i64>>;

#[auto_type]
#[allow(clippy::too_many_arguments)]
fn insert_claim(
    id: GivenId,
    key: String,
    fire_time: DbTime,
    node_id: String,
    claimed: String,
    note: String,
    now: StoreNow,
) -> _ {
    diesel::dsl::insert_into(kaal_dispatches::table).values((
        id,
        kaal_dispatches::key.eq(key),
        kaal_dispatches::fire_time.eq(fire_time),
        kaal_dispatches::dispatched_at.eq(now),
        kaal_dispatches::node_id.eq(node_id),
        kaal_dispatches::status.eq(claimed),
        kaal_dispatches::attempt.eq(0_i32),
        kaal_dispatches::error.eq(note),
    ))
}

/// [`insert_claim`] for tables with `created_at` / `updated_at`.
#[auto_type]
#[allow(clippy::too_many_arguments)]
fn insert_stamped_claim(
    id: GivenId,
    key: String,
    fire_time: DbTime,
    node_id: String,
    claimed: String,
    note: String,
    now: StoreNow,
) -> _ {
    let created: StoreNow = now.clone();
    let updated: StoreNow = now.clone();
    diesel::dsl::insert_into(kaal_dispatches::table).values((
        id,
        kaal_dispatches::key.eq(key),
        kaal_dispatches::fire_time.eq(fire_time),
        kaal_dispatches::dispatched_at.eq(now),
        kaal_dispatches::node_id.eq(node_id),
        kaal_dispatches::status.eq(claimed),
        kaal_dispatches::attempt.eq(0_i32),
        kaal_dispatches::error.eq(note),
        kaal_dispatches::created_at.eq(created),
        kaal_dispatches::updated_at.eq(updated),
    ))
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
    /// The oldest row of `key` other than the one of `fire_time` that is in status `running`
    /// with a `started_at` — a run of the job that is going — as its fire time and node.
    fn going_row_besides(
        &mut self,
        key: &str,
        fire_time: DbTime,
        running: &str,
    ) -> QueryResult<Option<(DbTime, String)>>;
    /// Deletes the row of `run` only if `run.node_id` owns it and its status is `status`;
    /// returns the rows deleted (0 or 1).
    fn delete_run_row(&mut self, run: RunRow<'_>, status: &str) -> QueryResult<usize>;
    /// Inserts a `claimed` row for `run` (owned by `run.node_id`) with `attempt = 0`, `error
    /// = note` (already clipped), no `started_at` / `finished_at`, `dispatched_at` — and
    /// `created_at` / `updated_at` when `timestamps` — stamped with `now`; its id is `id`,
    /// or the table's next one when `None`. Returns the rows inserted (1).
    fn insert_claim_row(
        &mut self,
        run: RunRow<'_>,
        id: Option<i64>,
        note: &str,
        now: StoreNow,
        timestamps: bool,
    ) -> QueryResult<usize>;
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
    going_besides: LoadQuery<'static, C, (DbTime, String)>,
    delete_run: ExecuteDsl<C>,
    insert_claim: ExecuteDsl<C>,
    insert_stamped_claim: ExecuteDsl<C>,
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

    fn going_row_besides(
        &mut self,
        key: &str,
        fire_time: DbTime,
        running: &str,
    ) -> QueryResult<Option<(DbTime, String)>> {
        going_besides(key.to_string(), fire_time, running.to_string())
            .load::<(DbTime, String)>(self)
            .map(|rows| rows.into_iter().next())
    }

    fn delete_run_row(&mut self, run: RunRow<'_>, status: &str) -> QueryResult<usize> {
        delete_run(
            run.key.to_string(),
            run.fire_time,
            run.node_id.to_string(),
            status.to_string(),
        )
        .execute(self)
    }

    fn insert_claim_row(
        &mut self,
        run: RunRow<'_>,
        id: Option<i64>,
        note: &str,
        now: StoreNow,
        timestamps: bool,
    ) -> QueryResult<usize> {
        let id = id.map(|id| kaal_dispatches::id.eq(id));
        let claimed = kaal_core::DispatchStatus::Claimed.as_str().to_string();
        let (key, node_id) = (run.key.to_string(), run.node_id.to_string());
        if timestamps {
            insert_stamped_claim(id, key, run.fire_time, node_id, claimed, note.into(), now)
                .execute(self)
        } else {
            insert_claim(id, key, run.fire_time, node_id, claimed, note.into(), now).execute(self)
        }
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
