//! The definition store: [`DefinitionRegistry`] for [`DieselStore`], on `kaal_definitions`.
//!
//! Every statement filters by the namespace as well as the key (the table is unique on
//! `(namespace, key)`), so applications sharing a database never see each other's
//! definitions.
//!
//! Each write reads the stored row, applies the rules of
//! [`definition_rules`](crate::definition_rules) and writes the result inside one
//! [`write_transaction`](crate::Dialect::write_transaction). Where two writers can both find
//! no row and both insert (databases without `BEGIN IMMEDIATE`), the loser's unique violation
//! is retried once, and then finds the winner's row.

use diesel::result::{DatabaseErrorKind, Error};
use kaal_core::{Definition, DefinitionRegistry, NewDefinition, RegistryError};

use crate::dialect::Dialect;
use crate::queries::SharedQueries;
use crate::rows::DefinitionRow;
use crate::store::DieselStore;

impl<D: Dialect> DieselStore<D> {
    fn definition(
        &self,
        operation: impl FnOnce() -> String,
        row: Option<DefinitionRow>,
    ) -> Result<Option<Definition>, RegistryError> {
        row.map(DefinitionRow::into_definition)
            .transpose()
            .map_err(|cause| RegistryError::new(D::NAME, operation(), cause))
    }

    fn definitions(
        &self,
        operation: impl FnOnce() -> String,
        rows: Vec<DefinitionRow>,
    ) -> Result<Vec<Definition>, RegistryError> {
        rows.into_iter()
            .map(DefinitionRow::into_definition)
            .collect::<Result<_, _>>()
            .map_err(|cause| RegistryError::new(D::NAME, operation(), cause))
    }

    fn set_enabled(
        &self,
        namespace: &str,
        key: &str,
        enabled: bool,
    ) -> Result<Option<Definition>, RegistryError> {
        let now = self.now();
        let verb = if enabled { "enable" } else { "disable" };
        let operation = || format!("{verb}_definition({namespace}:{key})");
        let row = self.registry_call(operation, |conn| {
            D::write_transaction(conn, |conn| {
                let Some(row) = conn.find_definition_row(namespace, key)? else {
                    return Ok(None);
                };
                let row = row.with_enabled(enabled, now);
                conn.update_definition_row(&row)?;
                Ok(Some(row))
            })
        })?;
        self.definition(operation, row)
    }
}

fn is_unique_violation(err: &Error) -> bool {
    matches!(
        err,
        Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)
    )
}

impl<D: Dialect> DefinitionRegistry for DieselStore<D> {
    fn upsert_definition(
        &self,
        namespace: &str,
        new: NewDefinition,
    ) -> Result<Definition, RegistryError> {
        let now = self.now();
        let key = new.key.clone();
        let operation = || format!("upsert_definition({namespace}:{key})");
        let row = self.registry_call(operation, |conn| {
            let attempt = |conn: &mut D::Connection| {
                D::write_transaction(conn, |conn| {
                    let previous = conn.find_definition_row(namespace, &new.key)?;
                    let row =
                        DefinitionRow::upserted(namespace, previous.as_ref(), new.clone(), now);
                    if previous.is_some() {
                        conn.update_definition_row(&row)?;
                    } else {
                        conn.insert_definition_row(&row)?;
                    }
                    Ok(row)
                })
            };
            match attempt(conn) {
                Err(err) if is_unique_violation(&err) => attempt(conn),
                outcome => outcome,
            }
        })?;
        row.into_definition()
            .map_err(|cause| RegistryError::new(D::NAME, operation(), cause))
    }

    fn remove_definition(&self, namespace: &str, key: &str) -> Result<bool, RegistryError> {
        self.registry_call(
            || format!("remove_definition({namespace}:{key})"),
            |conn| conn.delete_definition_row(namespace, key),
        )
    }

    fn find_definition(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<Definition>, RegistryError> {
        let operation = || format!("find_definition({namespace}:{key})");
        let row = self.registry_call(operation, |conn| conn.find_definition_row(namespace, key))?;
        self.definition(operation, row)
    }

    fn all_definitions(&self, namespace: &str) -> Result<Vec<Definition>, RegistryError> {
        let operation = || format!("all_definitions({namespace})");
        let rows = self.registry_call(operation, |conn| conn.definition_rows(namespace))?;
        self.definitions(operation, rows)
    }

    fn enabled_definitions(&self, namespace: &str) -> Result<Vec<Definition>, RegistryError> {
        let operation = || format!("enabled_definitions({namespace})");
        let rows = self.registry_call(operation, |conn| conn.enabled_definition_rows(namespace))?;
        self.definitions(operation, rows)
    }

    fn enable_definition(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<Definition>, RegistryError> {
        self.set_enabled(namespace, key, true)
    }

    fn disable_definition(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<Definition>, RegistryError> {
        self.set_enabled(namespace, key, false)
    }
}
