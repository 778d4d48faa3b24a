//! [`SharedQueries`]: the statements that are the same SQL on every database, written once
//! with Diesel's query builder.
//!
//! The trait is implemented for every Diesel connection that can run these queries (a
//! blanket impl whose bounds name each query's type), so a backend gets them by choosing its
//! connection type; what differs per database lives in [`Dialect`](crate::Dialect).

use diesel::dsl::auto_type;
use diesel::prelude::*;
use diesel::query_dsl::methods::{ExecuteDsl, LoadQuery};
use diesel::sql_types::BigInt;

use crate::metadata::Metadata;
use crate::rows::{DefinitionRow, DispatchRow};
use crate::schema::{kaal_definitions, kaal_dispatches, kaal_locks};
use crate::statement::Statement;
use crate::time::DbTime;

/// The columns the store reads and writes in each table (the error messages list them).
pub mod columns {
    /// Columns of `kaal_locks` every statement needs.
    pub const LOCKS: &str = "key, acquired_at, expires_at";
    /// Columns of `kaal_dispatches` every statement needs (`started_at`, `finished_at`,
    /// `attempt` and `error` are kaal's, added by a migration; the others are the Ruby
    /// gem's).
    pub const DISPATCHES: &str = "id, key, fire_time, dispatched_at, node_id, status, \
         started_at, finished_at, attempt, error";
    /// Columns of `kaal_definitions` every statement needs (`namespace` and
    /// `schedule_since` are kaal's, added by migrations; the others are the Ruby gem's).
    pub const DEFINITIONS: &str = "namespace, key, cron, enabled, source, metadata, \
         disabled_at, created_at, updated_at, schedule_since";
    /// Columns of `kaal_nodes` the node registry needs.
    pub const NODES: &str =
        "namespace, node_id, instance, host, pid, version, started_at, last_seen";
}

#[auto_type]
fn lock_columns() -> _ {
    kaal_locks::table
        .select((
            kaal_locks::key,
            kaal_locks::acquired_at,
            kaal_locks::expires_at,
        ))
        .limit(0_i64)
}

#[auto_type]
fn lock_timestamp_columns() -> _ {
    kaal_locks::table
        .select((kaal_locks::created_at, kaal_locks::updated_at))
        .limit(0_i64)
}

#[auto_type]
fn dispatch_timestamp_columns() -> _ {
    kaal_dispatches::table
        .select((kaal_dispatches::created_at, kaal_dispatches::updated_at))
        .limit(0_i64)
}

/// The Ruby gem's columns of `kaal_definitions`, as the schema probe reads them.
type DefinitionColumns = (
    String,
    String,
    bool,
    String,
    Metadata,
    Option<DbTime>,
    DbTime,
    DbTime,
);

/// The Ruby gem's columns of `kaal_dispatches`, as the schema probe reads them.
type DispatchColumns = (i64, String, DbTime, DbTime, String, String);

/// The columns the migration `run_lifecycle` adds to `kaal_dispatches`, as the probe reads
/// them.
type LifecycleColumns = (Option<DbTime>, Option<DbTime>, i32, Option<String>);

/// The columns of a [`DispatchRow`], in its field order.
#[auto_type]
pub(crate) fn dispatch_row() -> _ {
    (
        kaal_dispatches::id,
        kaal_dispatches::key,
        kaal_dispatches::fire_time,
        kaal_dispatches::dispatched_at,
        kaal_dispatches::node_id,
        kaal_dispatches::status,
        kaal_dispatches::started_at,
        kaal_dispatches::finished_at,
        kaal_dispatches::attempt,
        kaal_dispatches::error,
    )
}

/// The columns of a [`DefinitionRow`], in its field order.
#[auto_type]
fn definition_row() -> _ {
    (
        kaal_definitions::namespace,
        kaal_definitions::key,
        kaal_definitions::cron,
        kaal_definitions::enabled,
        kaal_definitions::source,
        kaal_definitions::metadata,
        kaal_definitions::disabled_at,
        kaal_definitions::created_at,
        kaal_definitions::updated_at,
        kaal_definitions::schedule_since,
    )
}

/// The Ruby gem's columns of `kaal_dispatches`: what a database must have before (and
/// after) the migrations run.
#[auto_type]
fn dispatch_columns() -> _ {
    kaal_dispatches::table
        .select((
            kaal_dispatches::id,
            kaal_dispatches::key,
            kaal_dispatches::fire_time,
            kaal_dispatches::dispatched_at,
            kaal_dispatches::node_id,
            kaal_dispatches::status,
        ))
        .limit(0_i64)
}

/// Probes for the columns the migration `run_lifecycle` adds.
#[auto_type]
fn dispatch_lifecycle_columns() -> _ {
    kaal_dispatches::table
        .select((
            kaal_dispatches::started_at,
            kaal_dispatches::finished_at,
            kaal_dispatches::attempt,
            kaal_dispatches::error,
        ))
        .limit(0_i64)
}

/// The Ruby gem's columns of `kaal_definitions`: what a database must have before (and
/// after) the migrations run.
#[auto_type]
fn definition_columns() -> _ {
    kaal_definitions::table
        .select((
            kaal_definitions::key,
            kaal_definitions::cron,
            kaal_definitions::enabled,
            kaal_definitions::source,
            kaal_definitions::metadata,
            kaal_definitions::disabled_at,
            kaal_definitions::created_at,
            kaal_definitions::updated_at,
        ))
        .limit(0_i64)
}

/// Probes for the `namespace` column the migration `namespaced_definitions` adds.
#[auto_type]
fn definition_namespace_column() -> _ {
    kaal_definitions::table
        .select(kaal_definitions::namespace)
        .limit(0_i64)
}

/// Probes for the `schedule_since` column the migration `schedule_since` adds.
#[auto_type]
fn definition_schedule_since_column() -> _ {
    kaal_definitions::table
        .select(kaal_definitions::schedule_since)
        .limit(0_i64)
}

#[auto_type]
fn dispatch_by_key_and_time(key: String, fire_time: DbTime) -> _ {
    kaal_dispatches::table
        .filter(kaal_dispatches::key.eq(key))
        .filter(kaal_dispatches::fire_time.eq(fire_time))
        .select(dispatch_row())
        .limit(1_i64)
}

#[auto_type]
fn dispatches_by_key(key: String) -> _ {
    kaal_dispatches::table
        .filter(kaal_dispatches::key.eq(key))
        .order((
            kaal_dispatches::fire_time.desc(),
            kaal_dispatches::key.asc(),
        ))
        .select(dispatch_row())
}

#[auto_type]
fn dispatches_by_node(node_id: String) -> _ {
    kaal_dispatches::table
        .filter(kaal_dispatches::node_id.eq(node_id))
        .order((
            kaal_dispatches::fire_time.desc(),
            kaal_dispatches::key.asc(),
        ))
        .select(dispatch_row())
}

#[auto_type]
fn dispatches_by_status(status: String) -> _ {
    kaal_dispatches::table
        .filter(kaal_dispatches::status.eq(status))
        .order((
            kaal_dispatches::fire_time.desc(),
            kaal_dispatches::key.asc(),
        ))
        .select(dispatch_row())
}

#[auto_type]
fn dispatches_before(older_than: DbTime) -> _ {
    diesel::dsl::delete(kaal_dispatches::table.filter(kaal_dispatches::fire_time.lt(older_than)))
}

#[auto_type]
fn leases_expired_before(cutoff: DbTime) -> _ {
    diesel::dsl::delete(kaal_locks::table.filter(kaal_locks::expires_at.lt(cutoff)))
}

#[auto_type]
fn definition_by_key(namespace: String, key: String) -> _ {
    kaal_definitions::table
        .filter(kaal_definitions::namespace.eq(namespace))
        .filter(kaal_definitions::key.eq(key))
        .select(definition_row())
        .limit(1_i64)
}

#[auto_type]
fn definitions_by_key(namespace: String) -> _ {
    kaal_definitions::table
        .filter(kaal_definitions::namespace.eq(namespace))
        .order(kaal_definitions::key.asc())
        .select(definition_row())
}

#[auto_type]
fn enabled_definitions_by_key(namespace: String) -> _ {
    kaal_definitions::table
        .filter(kaal_definitions::namespace.eq(namespace))
        .filter(kaal_definitions::enabled.eq(true))
        .order(kaal_definitions::key.asc())
        .select(definition_row())
}

#[auto_type]
fn insert_definition(row: DefinitionRow) -> _ {
    diesel::dsl::insert_into(kaal_definitions::table).values(row)
}

#[auto_type]
fn update_definition(namespace: String, key: String, row: DefinitionRow) -> _ {
    diesel::dsl::update(
        kaal_definitions::table
            .filter(kaal_definitions::namespace.eq(namespace))
            .filter(kaal_definitions::key.eq(key)),
    )
    .set(row)
}

#[auto_type]
fn delete_definition(namespace: String, key: String) -> _ {
    diesel::dsl::delete(
        kaal_definitions::table
            .filter(kaal_definitions::namespace.eq(namespace))
            .filter(kaal_definitions::key.eq(key)),
    )
}

#[auto_type]
fn definitions_for_update(namespace: String) -> _ {
    kaal_definitions::table
        .filter(kaal_definitions::namespace.eq(namespace))
        .select(kaal_definitions::key)
        .for_update()
}

#[auto_type]
fn definition_for_update(namespace: String, key: String) -> _ {
    kaal_definitions::table
        .filter(kaal_definitions::namespace.eq(namespace))
        .filter(kaal_definitions::key.eq(key))
        .select(kaal_definitions::key)
        .for_update()
}

/// Locks the stored definitions of `namespace` — only the one of `key`, when given — until
/// the transaction ends (`SELECT ... FOR UPDATE`), for the databases whose query builder has
/// a locking clause (PostgreSQL, MySQL): their
/// [`Dialect::lock_definitions`](crate::Dialect::lock_definitions).
pub fn lock_definition_rows<C>(conn: &mut C, namespace: &str, key: Option<&str>) -> QueryResult<()>
where
    C: Connection,
    definitions_for_update: LoadQuery<'static, C, String>,
    definition_for_update: LoadQuery<'static, C, String>,
{
    match key {
        None => definitions_for_update(namespace.to_string()).load::<String>(conn),
        Some(key) => definition_for_update(namespace.to_string(), key.to_string()).load(conn),
    }
    .map(drop)
}

/// Statements that are the same SQL on every database: schema probes, dispatch-log reads
/// and cleanup, and definition reads and writes.
///
/// Implemented for every connection type that can run them; a backend does not implement
/// it by hand.
pub trait SharedQueries: Connection {
    /// Fails unless `kaal_locks` has the columns every lease statement uses.
    fn probe_lock_columns(&mut self) -> QueryResult<()>;
    /// Whether `kaal_locks` has `created_at` and `updated_at`.
    fn has_lock_timestamps(&mut self) -> bool;
    /// Fails unless `kaal_dispatches` has the Ruby gem's columns (all but the run
    /// lifecycle's).
    fn probe_dispatch_columns(&mut self) -> QueryResult<()>;
    /// Whether `kaal_dispatches` has `created_at` and `updated_at`.
    fn has_dispatch_timestamps(&mut self) -> bool;
    /// Whether `kaal_dispatches` has the run lifecycle's columns (`started_at`,
    /// `finished_at`, `attempt`, `error`: the migrations have run).
    fn has_dispatch_lifecycle(&mut self) -> bool;
    /// Fails unless `kaal_definitions` has the Ruby gem's columns (all but `namespace`).
    fn probe_definition_columns(&mut self) -> QueryResult<()>;
    /// Whether `kaal_definitions` has the `namespace` column (the migrations have run).
    fn has_definition_namespace(&mut self) -> bool;
    /// Whether `kaal_definitions` has the `schedule_since` column (the migrations have run).
    fn has_definition_schedule_since(&mut self) -> bool;

    /// The dispatch of `key` at `fire_time`, if logged.
    fn find_dispatch_row(
        &mut self,
        key: &str,
        fire_time: DbTime,
    ) -> QueryResult<Option<DispatchRow>>;
    /// Dispatches of `key`, newest fire time first.
    fn dispatch_rows_by_key(&mut self, key: &str) -> QueryResult<Vec<DispatchRow>>;
    /// Dispatches by `node_id`, newest fire time first (then by key).
    fn dispatch_rows_by_node(&mut self, node_id: &str) -> QueryResult<Vec<DispatchRow>>;
    /// Dispatches with `status`, newest fire time first (then by key).
    fn dispatch_rows_by_status(&mut self, status: &str) -> QueryResult<Vec<DispatchRow>>;
    /// Deletes dispatches whose fire time is before `older_than`; returns how many.
    fn delete_dispatches_before(&mut self, older_than: DbTime) -> QueryResult<usize>;
    /// Deletes leases that expired before `cutoff`; returns how many.
    fn delete_leases_expired_before(&mut self, cutoff: DbTime) -> QueryResult<usize>;

    /// The definition of `key` in `namespace`, if stored.
    fn find_definition_row(
        &mut self,
        namespace: &str,
        key: &str,
    ) -> QueryResult<Option<DefinitionRow>>;
    /// Every definition of `namespace`, by key.
    fn definition_rows(&mut self, namespace: &str) -> QueryResult<Vec<DefinitionRow>>;
    /// Every enabled definition of `namespace`, by key.
    fn enabled_definition_rows(&mut self, namespace: &str) -> QueryResult<Vec<DefinitionRow>>;
    /// Inserts `row` (its namespace and key must not be stored yet).
    fn insert_definition_row(&mut self, row: &DefinitionRow) -> QueryResult<()>;
    /// Overwrites the stored row of `(row.namespace, row.key)`.
    fn update_definition_row(&mut self, row: &DefinitionRow) -> QueryResult<()>;
    /// Deletes the definition of `key` in `namespace`; returns whether one was stored.
    fn delete_definition_row(&mut self, namespace: &str, key: &str) -> QueryResult<bool>;

    /// Runs `sql`, a backend's `SELECT` of one `BigInt` (a count), with `binds` as its text
    /// parameters, and returns the count.
    fn select_count(&mut self, sql: &'static str, binds: &[&str]) -> QueryResult<i64>;
}

impl<C> SharedQueries for C
where
    C: Connection,
    lock_columns: LoadQuery<'static, C, (String, DbTime, DbTime)>,
    lock_timestamp_columns: LoadQuery<'static, C, (DbTime, DbTime)>,
    dispatch_timestamp_columns: LoadQuery<'static, C, (DbTime, DbTime)>,
    dispatch_columns: LoadQuery<'static, C, DispatchColumns>,
    dispatch_lifecycle_columns: LoadQuery<'static, C, LifecycleColumns>,
    definition_columns: LoadQuery<'static, C, DefinitionColumns>,
    definition_namespace_column: LoadQuery<'static, C, String>,
    definition_schedule_since_column: LoadQuery<'static, C, Option<DbTime>>,
    dispatch_by_key_and_time: LoadQuery<'static, C, DispatchRow>,
    dispatches_by_key: LoadQuery<'static, C, DispatchRow>,
    dispatches_by_node: LoadQuery<'static, C, DispatchRow>,
    dispatches_by_status: LoadQuery<'static, C, DispatchRow>,
    dispatches_before: ExecuteDsl<C>,
    leases_expired_before: ExecuteDsl<C>,
    definition_by_key: LoadQuery<'static, C, DefinitionRow>,
    definitions_by_key: LoadQuery<'static, C, DefinitionRow>,
    enabled_definitions_by_key: LoadQuery<'static, C, DefinitionRow>,
    insert_definition: ExecuteDsl<C>,
    update_definition: ExecuteDsl<C>,
    delete_definition: ExecuteDsl<C>,
    Statement<'static, BigInt>: LoadQuery<'static, C, i64>,
{
    fn probe_lock_columns(&mut self) -> QueryResult<()> {
        lock_columns()
            .load::<(String, DbTime, DbTime)>(self)
            .map(drop)
    }

    fn has_lock_timestamps(&mut self) -> bool {
        lock_timestamp_columns()
            .load::<(DbTime, DbTime)>(self)
            .is_ok()
    }

    fn probe_dispatch_columns(&mut self) -> QueryResult<()> {
        dispatch_columns().load::<DispatchColumns>(self).map(drop)
    }

    fn has_dispatch_timestamps(&mut self) -> bool {
        dispatch_timestamp_columns()
            .load::<(DbTime, DbTime)>(self)
            .is_ok()
    }

    fn has_dispatch_lifecycle(&mut self) -> bool {
        dispatch_lifecycle_columns()
            .load::<LifecycleColumns>(self)
            .is_ok()
    }

    fn probe_definition_columns(&mut self) -> QueryResult<()> {
        definition_columns()
            .load::<DefinitionColumns>(self)
            .map(drop)
    }

    fn has_definition_namespace(&mut self) -> bool {
        definition_namespace_column().load::<String>(self).is_ok()
    }

    fn has_definition_schedule_since(&mut self) -> bool {
        definition_schedule_since_column()
            .load::<Option<DbTime>>(self)
            .is_ok()
    }

    fn find_dispatch_row(
        &mut self,
        key: &str,
        fire_time: DbTime,
    ) -> QueryResult<Option<DispatchRow>> {
        dispatch_by_key_and_time(key.to_string(), fire_time)
            .load::<DispatchRow>(self)
            .map(|rows| rows.into_iter().next())
    }

    fn dispatch_rows_by_key(&mut self, key: &str) -> QueryResult<Vec<DispatchRow>> {
        dispatches_by_key(key.to_string()).load(self)
    }

    fn dispatch_rows_by_node(&mut self, node_id: &str) -> QueryResult<Vec<DispatchRow>> {
        dispatches_by_node(node_id.to_string()).load(self)
    }

    fn dispatch_rows_by_status(&mut self, status: &str) -> QueryResult<Vec<DispatchRow>> {
        dispatches_by_status(status.to_string()).load(self)
    }

    fn delete_dispatches_before(&mut self, older_than: DbTime) -> QueryResult<usize> {
        dispatches_before(older_than).execute(self)
    }

    fn delete_leases_expired_before(&mut self, cutoff: DbTime) -> QueryResult<usize> {
        leases_expired_before(cutoff).execute(self)
    }

    fn find_definition_row(
        &mut self,
        namespace: &str,
        key: &str,
    ) -> QueryResult<Option<DefinitionRow>> {
        definition_by_key(namespace.to_string(), key.to_string())
            .load::<DefinitionRow>(self)
            .map(|rows| rows.into_iter().next())
    }

    fn definition_rows(&mut self, namespace: &str) -> QueryResult<Vec<DefinitionRow>> {
        definitions_by_key(namespace.to_string()).load(self)
    }

    fn enabled_definition_rows(&mut self, namespace: &str) -> QueryResult<Vec<DefinitionRow>> {
        enabled_definitions_by_key(namespace.to_string()).load(self)
    }

    fn insert_definition_row(&mut self, row: &DefinitionRow) -> QueryResult<()> {
        insert_definition(row.clone()).execute(self).map(drop)
    }

    fn update_definition_row(&mut self, row: &DefinitionRow) -> QueryResult<()> {
        update_definition(row.namespace.clone(), row.key.clone(), row.clone())
            .execute(self)
            .map(drop)
    }

    fn delete_definition_row(&mut self, namespace: &str, key: &str) -> QueryResult<bool> {
        delete_definition(namespace.to_string(), key.to_string())
            .execute(self)
            .map(|deleted| deleted > 0)
    }

    fn select_count(&mut self, sql: &'static str, binds: &[&str]) -> QueryResult<i64> {
        binds
            .iter()
            .fold(Statement::new(sql), |statement, bind| {
                statement.bind(bind.to_string())
            })
            .returning::<BigInt>()
            .get_result::<i64>(self)
    }
}
