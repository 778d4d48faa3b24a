//! The dispatch log: [`DispatchRegistry`] for [`DieselStore`], on `kaal_dispatches`.

use chrono::{DateTime, Utc};
use diesel::QueryResult;
use kaal_core::{DispatchRecord, DispatchRegistry, DispatchStatus, RegistryError};

use crate::dialect::Dialect;
use crate::error::error_chain;
use crate::queries::SharedQueries;
use crate::rows::DispatchRow;
use crate::store::DieselStore;
use crate::time::DbTime;

impl<D: Dialect> DieselStore<D> {
    /// Runs `f` on a pooled connection; any failure becomes a [`RegistryError`] for
    /// `operation`.
    pub(crate) fn registry_call<T>(
        &self,
        operation: impl Fn() -> String,
        f: impl FnOnce(&mut D::Connection) -> QueryResult<T>,
    ) -> Result<T, RegistryError> {
        let mut conn = self
            .checkout()
            .map_err(|cause| RegistryError::new(D::NAME, operation(), cause))?;
        f(&mut conn).map_err(|err| RegistryError::new(D::NAME, operation(), error_chain(&err)))
    }

    fn records(
        &self,
        operation: impl Fn() -> String,
        f: impl FnOnce(&mut D::Connection) -> QueryResult<Vec<DispatchRow>>,
    ) -> Result<Vec<DispatchRecord>, RegistryError> {
        self.registry_call(&operation, f)?
            .into_iter()
            .map(|row| row.into_record())
            .collect::<Result<_, _>>()
            .map_err(|cause| RegistryError::new(D::NAME, operation(), cause))
    }
}

fn describe(key: &str, fire_time: DateTime<Utc>) -> String {
    format!("{key}:{}", fire_time.timestamp())
}

impl<D: Dialect> DispatchRegistry for DieselStore<D> {
    fn log_dispatch(
        &self,
        key: &str,
        fire_time: DateTime<Utc>,
        node_id: &str,
        status: DispatchStatus,
    ) -> Result<(), RegistryError> {
        let pair = [(key.to_string(), fire_time)];
        let now = self.now();
        let operation = || format!("log_dispatch({})", describe(key, fire_time));
        let mut conn = self
            .checkout()
            .map_err(|cause| RegistryError::new(D::NAME, operation(), cause))?;
        let shape = self
            .shape_on(&mut conn)
            .map_err(|cause| RegistryError::new(D::NAME, operation(), cause))?;
        D::upsert_dispatches(&mut conn, &pair, node_id, status, now, shape)
            .map_err(|err| RegistryError::new(D::NAME, operation(), error_chain(&err)))
    }

    fn find_dispatch(
        &self,
        key: &str,
        fire_time: DateTime<Utc>,
    ) -> Result<Option<DispatchRecord>, RegistryError> {
        let operation = || format!("find_dispatch({})", describe(key, fire_time));
        self.registry_call(operation, |conn| {
            conn.find_dispatch_row(key, DbTime::new(fire_time))
        })?
        .map(DispatchRow::into_record)
        .transpose()
        .map_err(|cause| RegistryError::new(D::NAME, operation(), cause))
    }

    fn find_by_key(&self, key: &str) -> Result<Vec<DispatchRecord>, RegistryError> {
        self.records(
            || format!("find_by_key({key})"),
            |conn| conn.dispatch_rows_by_key(key),
        )
    }

    fn find_by_node(&self, node_id: &str) -> Result<Vec<DispatchRecord>, RegistryError> {
        self.records(
            || format!("find_by_node({node_id})"),
            |conn| conn.dispatch_rows_by_node(node_id),
        )
    }

    fn find_by_status(&self, status: DispatchStatus) -> Result<Vec<DispatchRecord>, RegistryError> {
        self.records(
            || format!("find_by_status({status})"),
            |conn| conn.dispatch_rows_by_status(status.as_str()),
        )
    }

    fn cleanup(&self, older_than: DateTime<Utc>) -> Result<usize, RegistryError> {
        self.registry_call(
            || format!("cleanup({})", older_than.to_rfc3339()),
            |conn| conn.delete_dispatches_before(DbTime::new(older_than)),
        )
    }

    fn dispatched_many(
        &self,
        pairs: &[(String, DateTime<Utc>)],
    ) -> Result<Vec<bool>, RegistryError> {
        if pairs.is_empty() {
            return Ok(Vec::new());
        }
        let found = self.registry_call(
            || format!("dispatched_many({} pairs)", pairs.len()),
            |conn| D::dispatched_many(conn, pairs),
        )?;
        if found.len() != pairs.len() {
            return Err(RegistryError::new(
                D::NAME,
                format!("dispatched_many({} pairs)", pairs.len()),
                format!("{} answers for {} pairs", found.len(), pairs.len()),
            ));
        }
        Ok(found)
    }

    fn log_dispatches(
        &self,
        pairs: &[(String, DateTime<Utc>)],
        node_id: &str,
        status: DispatchStatus,
    ) -> Result<(), RegistryError> {
        if pairs.is_empty() {
            return Ok(());
        }
        let now = self.now();
        let operation = || format!("log_dispatches({} pairs)", pairs.len());
        let mut conn = self
            .checkout()
            .map_err(|cause| RegistryError::new(D::NAME, operation(), cause))?;
        let shape = self
            .shape_on(&mut conn)
            .map_err(|cause| RegistryError::new(D::NAME, operation(), cause))?;
        D::upsert_dispatches(&mut conn, pairs, node_id, status, now, shape)
            .map_err(|err| RegistryError::new(D::NAME, operation(), error_chain(&err)))
    }
}
