//! The node registry: [`NodeRegistry`] for [`DieselStore`], on `kaal_nodes`, stamped with
//! the database's clock.
//!
//! Registration is one write transaction: take over the row of `(namespace, node_id)` if it
//! was last seen more than `timeout` ago (by the database's clock) or is this instance's own,
//! else insert it. The unique index on `(namespace, node_id)` decides between two processes
//! registering one id at once: one insert fails, and that process is refused.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::result::{DatabaseErrorKind, Error};
use diesel::QueryResult;
use kaal_core::{NodeInfo, NodeRecord, NodeRegistry, Registration, RegistryError};

use crate::claim_queries::ClaimQueries;
use crate::dialect::Dialect;
use crate::rows::NodeRow;
use crate::store::DieselStore;
use crate::time::DbTime;

enum Attempt {
    Registered(DbTime),
    Taken,
}

impl<D: Dialect> NodeRegistry for DieselStore<D> {
    fn database_now(&self) -> Result<DateTime<Utc>, RegistryError> {
        self.registry_call(|| "database_now".to_string(), |conn| D::database_now(conn))
            .map(DbTime::instant)
    }

    fn register_node(
        &self,
        node: &NodeInfo,
        timeout: Duration,
    ) -> Result<Registration, RegistryError> {
        let operation = || format!("register_node({}/{})", node.namespace, node.node_id);
        let timeout = chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::MAX);
        let attempt = self.registry_call(operation, |conn| {
            let outcome = D::write_transaction(conn, |conn| -> QueryResult<Attempt> {
                let now = D::database_now(conn)?;
                let row = NodeRow::new(node, now);
                let cutoff = DbTime::new(now.instant() - timeout);
                if conn.take_node_row(&row, cutoff)? == 1 {
                    return Ok(Attempt::Registered(now));
                }
                match conn.insert_node_row(&row) {
                    Ok(()) => Ok(Attempt::Registered(now)),
                    Err(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                        // Rolled back by the error below; the caller reads the holder.
                        Err(Error::RollbackTransaction)
                    }
                    Err(err) => Err(err),
                }
            });
            match outcome {
                Err(Error::RollbackTransaction) => Ok(Attempt::Taken),
                other => other,
            }
        })?;
        match attempt {
            Attempt::Registered(now) => Ok(Registration::Registered {
                database_now: now.instant(),
            }),
            Attempt::Taken => {
                let holder = self.registry_call(operation, |conn| {
                    conn.find_node_row(&node.namespace, &node.node_id)
                })?;
                match holder {
                    Some(holder) => Ok(Registration::Duplicate(holder.into_record())),
                    // Gone meanwhile (the holder deregistered): try once more.
                    None => self.register_node(node, timeout.to_std().unwrap_or(Duration::MAX)),
                }
            }
        }
    }

    fn heartbeat(&self, node: &NodeInfo) -> Result<Option<DateTime<Utc>>, RegistryError> {
        self.registry_call(
            || format!("heartbeat({}/{})", node.namespace, node.node_id),
            |conn| {
                let now = D::database_now(conn)?;
                let touched =
                    conn.touch_node_row(&node.namespace, &node.node_id, &node.instance, now)?;
                Ok((touched == 1).then(|| now.instant()))
            },
        )
    }

    fn deregister_node(&self, node: &NodeInfo) -> Result<(), RegistryError> {
        self.registry_call(
            || format!("deregister_node({}/{})", node.namespace, node.node_id),
            |conn| conn.delete_node_row(&node.namespace, &node.node_id, &node.instance),
        )
        .map(drop)
    }

    fn nodes(&self, namespace: &str) -> Result<Vec<NodeRecord>, RegistryError> {
        self.registry_call(
            || format!("nodes({namespace})"),
            |conn| conn.node_rows(namespace),
        )
        .map(|rows| rows.into_iter().map(NodeRow::into_record).collect())
    }
}
