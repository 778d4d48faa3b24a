//! [`Statement`]: hand-written SQL with text parameters that Diesel still caches.

use std::borrow::Cow;
use std::marker::PhantomData;

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::Error;
use diesel::serialize::ToSql;
use diesel::sql_types::{HasSqlType, Text, Untyped};
use diesel::{QueryResult, RunQueryDsl};

/// A fixed SQL text whose `?` marks are filled, in order, with text parameters; `ST` is the
/// SQL type of the rows it returns (`RETURNING`, `SELECT`), [`Untyped`] when run with
/// `execute`.
///
/// Backends write the statements that differ per database (upserts, `RETURNING`, the
/// database's clock) as `Statement`s. Unlike `diesel::sql_query`, whose statements are never
/// cached, a `Statement` is prepared once per connection and reused (Diesel caches it by its
/// SQL text), and it binds through Diesel's placeholders (`?` on SQLite and MySQL, `$n` on
/// PostgreSQL), so one text serves each backend's bind syntax.
///
/// The SQL must contain no other `?` (no `?` operators, none inside string literals).
///
/// ```
/// use kaal_diesel::Statement;
/// let release = Statement::new(r#"DELETE FROM kaal_locks WHERE "key" = ?"#).bind("kaal:a");
/// assert_eq!(release.sql(), r#"DELETE FROM kaal_locks WHERE "key" = ?"#);
/// ```
#[derive(Debug, Clone)]
#[must_use = "a statement does nothing until it is executed or loaded"]
pub struct Statement<'a, ST = Untyped> {
    sql: &'static str,
    binds: Vec<Cow<'a, str>>,
    rows: PhantomData<ST>,
}

impl<'a> Statement<'a> {
    /// A statement with SQL text `sql` and no parameters yet.
    pub fn new(sql: &'static str) -> Self {
        Self {
            sql,
            binds: Vec::new(),
            rows: PhantomData,
        }
    }
}

impl<'a, ST> Statement<'a, ST> {
    /// Fills the next `?` with `value`.
    pub fn bind(mut self, value: impl Into<Cow<'a, str>>) -> Self {
        self.binds.push(value.into());
        self
    }

    /// The same statement, declared to return rows of SQL type `T`.
    pub fn returning<T>(self) -> Statement<'a, T> {
        Statement {
            sql: self.sql,
            binds: self.binds,
            rows: PhantomData,
        }
    }

    /// The SQL text.
    pub fn sql(&self) -> &'static str {
        self.sql
    }
}

impl<DB, ST> QueryFragment<DB> for Statement<'_, ST>
where
    DB: Backend + HasSqlType<Text>,
    str: ToSql<Text, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        let mut pieces = self.sql.split('?');
        if let Some(first) = pieces.next() {
            out.push_sql(first);
        }
        let mut binds = self.binds.iter();
        for piece in pieces {
            let bind = binds.next().ok_or_else(|| {
                Error::QueryBuilderError(
                    format!("statement has more `?` than parameters: {}", self.sql).into(),
                )
            })?;
            out.push_bind_param::<Text, str>(bind.as_ref())?;
            out.push_sql(piece);
        }
        if binds.next().is_some() {
            return Err(Error::QueryBuilderError(
                format!("statement has fewer `?` than parameters: {}", self.sql).into(),
            ));
        }
        Ok(())
    }
}

impl<ST> QueryId for Statement<'_, ST> {
    type QueryId = ();
    // The SQL text is the cache key: one prepared statement per distinct text.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<ST: 'static> Query for Statement<'_, ST> {
    type SqlType = ST;
}

impl<Conn, ST> RunQueryDsl<Conn> for Statement<'_, ST> {}
