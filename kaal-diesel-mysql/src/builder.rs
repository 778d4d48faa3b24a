//! [`SqlBuilder`]: statements whose SQL text depends on the batch size (multi-row `VALUES`,
//! `IN (...)` lists), with text parameters, still prepared once and reused.

use std::borrow::Cow;
use std::marker::PhantomData;

use diesel::mysql::Mysql;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Text, Untyped};
use diesel::{QueryResult, RunQueryDsl};

/// The most rows or keys one batch statement carries; longer batches are split. With at most
/// seven parameters per row this stays far below MySQL's 65 535 bound parameters, and a
/// batch of 255-byte keys far below the default `max_allowed_packet`.
pub(crate) const MAX_BATCH: usize = 1024;

/// A statement assembled piece by piece: SQL text and `?` parameters (bound as text, which
/// MySQL converts to the column's type), in order.
///
/// Diesel caches a prepared statement per distinct SQL text (the query has no static id), so
/// batch statements are padded to a power-of-two number of rows ([`padded`]): at most
/// eleven texts per statement kind instead of one per batch size.
#[derive(Debug, Clone, Default)]
#[must_use = "a statement does nothing until it is executed or loaded"]
pub(crate) struct SqlBuilder<'a, ST = Untyped> {
    sql: String,
    binds: Vec<Cow<'a, str>>,
    rows: PhantomData<ST>,
}

impl<'a> SqlBuilder<'a> {
    /// A statement starting with `sql`.
    pub(crate) fn new(sql: &str) -> Self {
        Self {
            sql: sql.to_string(),
            binds: Vec::new(),
            rows: PhantomData,
        }
    }
}

impl<'a, ST> SqlBuilder<'a, ST> {
    /// Appends SQL text.
    pub(crate) fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends a `?` bound to `value`.
    pub(crate) fn bind(&mut self, value: impl Into<Cow<'a, str>>) -> &mut Self {
        self.sql.push('?');
        self.binds.push(value.into());
        self
    }

    /// Appends `values` as a comma-separated list of parameters.
    pub(crate) fn bind_list<I>(&mut self, values: I) -> &mut Self
    where
        I: IntoIterator,
        I::Item: Into<Cow<'a, str>>,
    {
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.sql.push_str(", ");
            }
            self.bind(value);
        }
        self
    }

    /// The same statement, declared to return rows of SQL type `T`.
    pub(crate) fn returning<T>(self) -> SqlBuilder<'a, T> {
        SqlBuilder {
            sql: self.sql,
            binds: self.binds,
            rows: PhantomData,
        }
    }

    /// The SQL text.
    #[cfg(test)]
    pub(crate) fn sql(&self) -> &str {
        &self.sql
    }
}

/// `items` padded to the next power of two by repeating the last item (a repeated key in a
/// `VALUES` list or an `IN` list changes nothing), so batch statements come in few sizes.
pub(crate) fn padded<T>(items: &[T]) -> impl Iterator<Item = &T> {
    let target = items.len().next_power_of_two();
    let filler = items.last();
    items
        .iter()
        .chain(std::iter::repeat_n(filler, target - items.len()).flatten())
}

impl<ST> QueryFragment<Mysql> for SqlBuilder<'_, ST> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Mysql>) -> QueryResult<()> {
        let mut pieces = self.sql.split('?');
        if let Some(first) = pieces.next() {
            out.push_sql(first);
        }
        for (piece, bind) in pieces.zip(&self.binds) {
            out.push_bind_param::<Text, str>(bind.as_ref())?;
            out.push_sql(piece);
        }
        Ok(())
    }
}

impl<ST> QueryId for SqlBuilder<'_, ST> {
    type QueryId = ();
    // The SQL text is the cache key: one prepared statement per distinct text.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<ST: 'static> Query for SqlBuilder<'_, ST> {
    type SqlType = ST;
}

impl<Conn, ST> RunQueryDsl<Conn> for SqlBuilder<'_, ST> {}

// Run by reference, so a statement can be retried.
impl<Conn, ST> RunQueryDsl<Conn> for &SqlBuilder<'_, ST> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_keeps_text_and_parameters_in_step() {
        let mut statement = SqlBuilder::new("SELECT `key` FROM kaal_locks WHERE `key` IN (");
        statement.bind_list(["a", "b"]).push(")");
        assert_eq!(
            statement.sql(),
            "SELECT `key` FROM kaal_locks WHERE `key` IN (?, ?)"
        );
        assert_eq!(statement.binds, ["a", "b"]);
    }

    #[test]
    fn padding_reaches_the_next_power_of_two_with_the_last_item() {
        let sizes: Vec<usize> = (1..=9).map(|n| padded(&vec![0; n]).count()).collect();
        assert_eq!(sizes, [1, 2, 4, 4, 8, 8, 8, 8, 16]);
        let items: Vec<&str> = padded(&["a", "b", "c"]).copied().collect();
        assert_eq!(items, ["a", "b", "c", "c"]);
        assert_eq!(padded::<u8>(&[]).count(), 0);
    }
}
