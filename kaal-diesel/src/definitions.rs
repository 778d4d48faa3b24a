//! The definition store: [`DefinitionRegistry`] for [`DieselStore`], on `kaal_definitions`.
//!
//! Every statement filters by the namespace as well as the key (the table is unique on
//! `(namespace, key)`), so applications sharing a database never see each other's
//! definitions.
//!
//! Each write locks the stored row ([`lock_definitions`](crate::Dialect::lock_definitions),
//! `SELECT ... FOR UPDATE` where the database needs it), reads it, applies the rules of
//! [`definition_rules`](crate::definition_rules) and writes the result inside one
//! [`write_transaction`](crate::Dialect::write_transaction), so two writers of one definition
//! (an operator's `disable` and a `kaal apply`) never lose each other's change. Where two
//! writers can both find no row and both insert (databases without `BEGIN IMMEDIATE`), the
//! loser's unique violation is retried once, and then finds the winner's row.

use diesel::result::{DatabaseErrorKind, Error};
use kaal_core::{
    BatchOutcome, Definition, DefinitionRegistry, DefinitionWrite, NewDefinition, RegistryError,
};

use crate::dialect::Dialect;
use crate::error::error_chain;
use crate::queries::SharedQueries;
use crate::rows::DefinitionRow;
use crate::store::DieselStore;
use crate::time::DbTime;

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
        let verb = if enabled { "enable" } else { "disable" };
        let operation = || format!("{verb}_definition({namespace}:{key})");
        let row = self.registry_call(operation, |conn| {
            D::write_transaction(conn, |conn| {
                D::lock_definitions(conn, namespace, Some(key))?;
                let now = self.definition_now(conn)?;
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

/// Why a batch transaction was rolled back.
enum BatchFailure {
    /// The database failed.
    Database(Error),
    /// A key is no longer stored as expected.
    Stale(String),
    /// A stored row could not be read back.
    Row(String),
}

impl From<Error> for BatchFailure {
    fn from(err: Error) -> Self {
        Self::Database(err)
    }
}

/// Writes the row that upserting `new` over `previous` (read in this transaction) makes, by
/// the rules of [`definition_rules`](crate::definition_rules); returns it.
fn write_upserted<C: SharedQueries>(
    conn: &mut C,
    namespace: &str,
    previous: Option<&DefinitionRow>,
    new: NewDefinition,
    now: DbTime,
) -> Result<DefinitionRow, Error> {
    let row = DefinitionRow::upserted(namespace, previous, new, now);
    if previous.is_some() {
        conn.update_definition_row(&row)?;
    } else {
        conn.insert_definition_row(&row)?;
    }
    Ok(row)
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
        let key = new.key.clone();
        let operation = || format!("upsert_definition({namespace}:{key})");
        let row = self.registry_call(operation, |conn| {
            let attempt = |conn: &mut D::Connection| {
                D::write_transaction(conn, |conn| {
                    D::lock_definitions(conn, namespace, Some(&new.key))?;
                    let now = self.definition_now(conn)?;
                    let previous = conn.find_definition_row(namespace, &new.key)?;
                    write_upserted(conn, namespace, previous.as_ref(), new.clone(), now)
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

    fn apply_definitions(
        &self,
        namespace: &str,
        writes: &[DefinitionWrite],
    ) -> Result<BatchOutcome, RegistryError> {
        DefinitionWrite::check_keys(D::NAME, writes)?;
        let operation = || format!("apply_definitions({namespace}, {} writes)", writes.len());
        let mut conn = self
            .checkout()
            .map_err(|cause| RegistryError::new(D::NAME, operation(), cause))?;
        let outcome = D::write_transaction(&mut conn, |conn| {
            // Locked first, before any other read of the transaction: on MySQL the first
            // plain read fixes the snapshot, which must not predate the lock.
            D::lock_definitions(conn, namespace, None)?;
            let now = self.definition_now(conn)?;
            for write in writes {
                let previous = conn.find_definition_row(namespace, &write.key)?;
                let current = previous
                    .clone()
                    .map(DefinitionRow::into_definition)
                    .transpose()
                    .map_err(BatchFailure::Row)?;
                if current != write.expected {
                    return Err(BatchFailure::Stale(write.key.clone()));
                }
                match (&write.write, &previous) {
                    (Some(new), _) => {
                        write_upserted(conn, namespace, previous.as_ref(), new.clone(), now)?;
                    }
                    (None, Some(_)) => {
                        conn.delete_definition_row(namespace, &write.key)?;
                    }
                    (None, None) => {}
                }
            }
            Ok(())
        });
        match outcome {
            Ok(()) => Ok(BatchOutcome::Applied),
            Err(BatchFailure::Stale(key)) => Ok(BatchOutcome::Stale(key)),
            // Another writer inserted a key this batch expected absent: stale, not an error.
            Err(BatchFailure::Database(err)) if is_unique_violation(&err) => {
                Ok(BatchOutcome::Stale(
                    writes
                        .iter()
                        .find(|w| w.expected.is_none())
                        .map_or_else(String::new, |w| w.key.clone()),
                ))
            }
            Err(BatchFailure::Database(err)) => {
                Err(RegistryError::new(D::NAME, operation(), error_chain(&err)))
            }
            Err(BatchFailure::Row(cause)) => Err(RegistryError::new(D::NAME, operation(), cause)),
        }
    }
}
