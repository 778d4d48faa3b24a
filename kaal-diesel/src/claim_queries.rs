//! [`ClaimQueries`]: the statements of the claim protocol and the node registry that are the
//! same SQL on every database — compare-and-set updates of dispatch rows, the scan for
//! never-started claims, and `kaal_nodes` — written once with Diesel's query builder.
//!
//! Like [`SharedQueries`](crate::SharedQueries), implemented for every connection that can run
//! them; the insert-only commit and the database's clock differ per database and live in
//! [`Dialect`](crate::Dialect).

use diesel::dsl::auto_type;
use diesel::prelude::*;
use diesel::query_dsl::methods::{ExecuteDsl, LoadQuery};

use crate::queries::dispatch_row;
use crate::rows::{DispatchRow, NodeRow};
use crate::schema::sql_types::KaalTimestamp;
use crate::schema::{kaal_dispatches, kaal_nodes};
use crate::statement::Statement;
use crate::time::DbTime;

#[auto_type]
fn created_by(node_id: String, at: DbTime, status: String) -> _ {
    kaal_dispatches::table
        .filter(kaal_dispatches::dispatched_at.eq(at))
        .filter(kaal_dispatches::node_id.eq(node_id))
        .filter(kaal_dispatches::status.eq(status))
        .select((kaal_dispatches::key, kaal_dispatches::fire_time))
}

#[auto_type]
fn move_status(
    key: String,
    fire_time: DbTime,
    node_id: String,
    from: String,
    to: String,
    at: DbTime,
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
        kaal_dispatches::dispatched_at.eq(at),
    ))
}

#[auto_type]
fn move_owner(key: String, fire_time: DbTime, from: String, to: String, status: String) -> _ {
    diesel::dsl::update(
        kaal_dispatches::table
            .filter(kaal_dispatches::key.eq(key))
            .filter(kaal_dispatches::fire_time.eq(fire_time))
            .filter(kaal_dispatches::node_id.eq(from))
            .filter(kaal_dispatches::status.eq(status)),
    )
    .set(kaal_dispatches::node_id.eq(to))
}

#[auto_type]
fn with_status_since(status: String, since: DbTime) -> _ {
    kaal_dispatches::table
        .filter(kaal_dispatches::status.eq(status))
        .filter(kaal_dispatches::fire_time.ge(since))
        .order((kaal_dispatches::fire_time.asc(), kaal_dispatches::key.asc()))
        .select(dispatch_row())
}

/// The columns of a [`NodeRow`], in its field order.
#[auto_type]
fn node_row() -> _ {
    (
        kaal_nodes::namespace,
        kaal_nodes::node_id,
        kaal_nodes::instance,
        kaal_nodes::host,
        kaal_nodes::pid,
        kaal_nodes::version,
        kaal_nodes::started_at,
        kaal_nodes::last_seen,
    )
}

#[auto_type]
fn node_columns() -> _ {
    kaal_nodes::table.select(node_row()).limit(0_i64)
}

#[auto_type]
fn node_by_id(namespace: String, node_id: String) -> _ {
    kaal_nodes::table
        .filter(kaal_nodes::namespace.eq(namespace))
        .filter(kaal_nodes::node_id.eq(node_id))
        .select(node_row())
}

#[auto_type]
fn nodes_of(namespace: String) -> _ {
    kaal_nodes::table
        .filter(kaal_nodes::namespace.eq(namespace))
        .order(kaal_nodes::node_id.asc())
        .select(node_row())
}

#[auto_type]
fn insert_node(row: NodeRow) -> _ {
    diesel::dsl::insert_into(kaal_nodes::table).values(row)
}

#[auto_type]
fn take_registration(
    namespace: String,
    node_id: String,
    instance: String,
    cutoff: DbTime,
    row: NodeRow,
) -> _ {
    diesel::dsl::update(
        kaal_nodes::table
            .filter(kaal_nodes::namespace.eq(namespace))
            .filter(kaal_nodes::node_id.eq(node_id))
            .filter(
                kaal_nodes::last_seen
                    .lt(cutoff)
                    .or(kaal_nodes::instance.eq(instance)),
            ),
    )
    .set(row)
}

#[auto_type]
fn touch_node(namespace: String, node_id: String, instance: String, at: DbTime) -> _ {
    diesel::dsl::update(
        kaal_nodes::table
            .filter(kaal_nodes::namespace.eq(namespace))
            .filter(kaal_nodes::node_id.eq(node_id))
            .filter(kaal_nodes::instance.eq(instance)),
    )
    .set(kaal_nodes::last_seen.eq(at))
}

#[auto_type]
fn delete_node(namespace: String, node_id: String, instance: String) -> _ {
    diesel::dsl::delete(
        kaal_nodes::table
            .filter(kaal_nodes::namespace.eq(namespace))
            .filter(kaal_nodes::node_id.eq(node_id))
            .filter(kaal_nodes::instance.eq(instance)),
    )
}

/// The claim protocol's and the node registry's statements that are the same SQL on every
/// database. Implemented for every connection type that can run them.
pub trait ClaimQueries: Connection {
    /// Runs `sql`, a `SELECT` of one timestamp (the dialect's clock), and returns it.
    fn select_time(&mut self, sql: &'static str) -> QueryResult<DbTime>;
    /// `(key, fire_time)` of the rows `node_id` wrote with `status` at exactly `at` (the
    /// database time a commit stamped its inserts with): the rows that commit created.
    fn rows_created_by(
        &mut self,
        node_id: &str,
        at: DbTime,
        status: &str,
    ) -> QueryResult<Vec<(String, DbTime)>>;
    /// Compare-and-set of a row's status (only `node_id`'s row in status `from`); stamps
    /// `dispatched_at`. Returns the rows changed (0 or 1).
    fn move_dispatch_status(
        &mut self,
        key: &str,
        fire_time: DbTime,
        node_id: &str,
        from: &str,
        to: &str,
        at: DbTime,
    ) -> QueryResult<usize>;
    /// Compare-and-set of a row's owner (only while it is `from`'s and in `status`).
    fn move_dispatch_owner(
        &mut self,
        key: &str,
        fire_time: DbTime,
        from: &str,
        to: &str,
        status: &str,
    ) -> QueryResult<usize>;
    /// Rows with `status` whose fire time is at or after `since`, oldest first.
    fn dispatch_rows_with_status_since(
        &mut self,
        status: &str,
        since: DbTime,
    ) -> QueryResult<Vec<DispatchRow>>;

    /// Fails unless `kaal_nodes` has the columns the node registry uses.
    fn probe_node_columns(&mut self) -> QueryResult<()>;
    /// The registration of `(namespace, node_id)`.
    fn find_node_row(&mut self, namespace: &str, node_id: &str) -> QueryResult<Option<NodeRow>>;
    /// Every registration of `namespace`, by node id.
    fn node_rows(&mut self, namespace: &str) -> QueryResult<Vec<NodeRow>>;
    /// Inserts a registration (a unique violation when `(namespace, node_id)` is taken).
    fn insert_node_row(&mut self, row: &NodeRow) -> QueryResult<()>;
    /// Overwrites the registration of `row`'s `(namespace, node_id)` when it was last seen
    /// before `cutoff` or is `row`'s own instance; returns the rows changed.
    fn take_node_row(&mut self, row: &NodeRow, cutoff: DbTime) -> QueryResult<usize>;
    /// Stamps `last_seen = at` on the registration of this instance; returns the rows changed.
    fn touch_node_row(
        &mut self,
        namespace: &str,
        node_id: &str,
        instance: &str,
        at: DbTime,
    ) -> QueryResult<usize>;
    /// Deletes the registration of this instance.
    fn delete_node_row(
        &mut self,
        namespace: &str,
        node_id: &str,
        instance: &str,
    ) -> QueryResult<usize>;
}

impl<C> ClaimQueries for C
where
    C: Connection,
    Statement<'static, KaalTimestamp>: LoadQuery<'static, C, DbTime>,
    created_by: LoadQuery<'static, C, (String, DbTime)>,
    move_status: ExecuteDsl<C>,
    move_owner: ExecuteDsl<C>,
    with_status_since: LoadQuery<'static, C, DispatchRow>,
    node_columns: LoadQuery<'static, C, NodeRow>,
    node_by_id: LoadQuery<'static, C, NodeRow>,
    nodes_of: LoadQuery<'static, C, NodeRow>,
    insert_node: ExecuteDsl<C>,
    take_registration: ExecuteDsl<C>,
    touch_node: ExecuteDsl<C>,
    delete_node: ExecuteDsl<C>,
{
    fn select_time(&mut self, sql: &'static str) -> QueryResult<DbTime> {
        Statement::new(sql)
            .returning::<KaalTimestamp>()
            .get_result::<DbTime>(self)
    }

    fn rows_created_by(
        &mut self,
        node_id: &str,
        at: DbTime,
        status: &str,
    ) -> QueryResult<Vec<(String, DbTime)>> {
        created_by(node_id.to_string(), at, status.to_string()).load(self)
    }

    fn move_dispatch_status(
        &mut self,
        key: &str,
        fire_time: DbTime,
        node_id: &str,
        from: &str,
        to: &str,
        at: DbTime,
    ) -> QueryResult<usize> {
        move_status(
            key.to_string(),
            fire_time,
            node_id.to_string(),
            from.to_string(),
            to.to_string(),
            at,
        )
        .execute(self)
    }

    fn move_dispatch_owner(
        &mut self,
        key: &str,
        fire_time: DbTime,
        from: &str,
        to: &str,
        status: &str,
    ) -> QueryResult<usize> {
        move_owner(
            key.to_string(),
            fire_time,
            from.to_string(),
            to.to_string(),
            status.to_string(),
        )
        .execute(self)
    }

    fn dispatch_rows_with_status_since(
        &mut self,
        status: &str,
        since: DbTime,
    ) -> QueryResult<Vec<DispatchRow>> {
        with_status_since(status.to_string(), since).load(self)
    }

    fn probe_node_columns(&mut self) -> QueryResult<()> {
        node_columns().load::<NodeRow>(self).map(drop)
    }

    fn find_node_row(&mut self, namespace: &str, node_id: &str) -> QueryResult<Option<NodeRow>> {
        node_by_id(namespace.to_string(), node_id.to_string())
            .load::<NodeRow>(self)
            .map(|rows| rows.into_iter().next())
    }

    fn node_rows(&mut self, namespace: &str) -> QueryResult<Vec<NodeRow>> {
        nodes_of(namespace.to_string()).load(self)
    }

    fn insert_node_row(&mut self, row: &NodeRow) -> QueryResult<()> {
        insert_node(row.clone()).execute(self).map(drop)
    }

    fn take_node_row(&mut self, row: &NodeRow, cutoff: DbTime) -> QueryResult<usize> {
        take_registration(
            row.namespace.clone(),
            row.node_id.clone(),
            row.instance.clone(),
            cutoff,
            row.clone(),
        )
        .execute(self)
    }

    fn touch_node_row(
        &mut self,
        namespace: &str,
        node_id: &str,
        instance: &str,
        at: DbTime,
    ) -> QueryResult<usize> {
        touch_node(
            namespace.to_string(),
            node_id.to_string(),
            instance.to_string(),
            at,
        )
        .execute(self)
    }

    fn delete_node_row(
        &mut self,
        namespace: &str,
        node_id: &str,
        instance: &str,
    ) -> QueryResult<usize> {
        delete_node(
            namespace.to_string(),
            node_id.to_string(),
            instance.to_string(),
        )
        .execute(self)
    }
}
