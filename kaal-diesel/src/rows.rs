//! Rows of the kaal tables and their conversions to kaal-core's types.

use diesel::prelude::*;
use kaal_core::{Definition, DispatchRecord, NodeInfo, NodeRecord};

use crate::metadata::Metadata;
use crate::schema::{kaal_definitions, kaal_dispatches, kaal_nodes};
use crate::time::DbTime;

/// A row of `kaal_dispatches`, as read.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = kaal_dispatches)]
pub struct DispatchRow {
    /// The row's sequence id: the run's fencing token.
    pub id: i64,
    /// The cron key.
    pub key: String,
    /// The dispatched fire time.
    pub fire_time: DbTime,
    /// When the dispatch was recorded.
    pub dispatched_at: DbTime,
    /// The node that dispatched it.
    pub node_id: String,
    /// One of [`DispatchStatus::ALL`](kaal_core::DispatchStatus::ALL) (checked by
    /// [`into_record`](DispatchRow::into_record)).
    pub status: String,
    /// When the job started; `None` for rows never started and rows written without the
    /// run lifecycle (the Ruby gem, kaal before it).
    pub started_at: Option<DbTime>,
    /// When the run reached its final status.
    pub finished_at: Option<DbTime>,
    /// Which attempt ran last (0 before the first start).
    pub attempt: i32,
    /// Why a run failed, timed out, was abandoned or skipped.
    pub error: Option<String>,
}

impl DispatchRow {
    /// The kaal-core record; fails when the stored status is not one of
    /// [`DispatchStatus::ALL`](kaal_core::DispatchStatus::ALL). A negative `attempt`
    /// (written by hand) reads as 0.
    pub fn into_record(self) -> Result<DispatchRecord, String> {
        let status = self
            .status
            .parse()
            .map_err(|err| format!("dispatch {}@{}: {err}", self.key, self.fire_time))?;
        Ok(DispatchRecord {
            id: self.id,
            key: self.key,
            fire_time: self.fire_time.instant(),
            dispatched_at: self.dispatched_at.instant(),
            node_id: self.node_id,
            status,
            started_at: self.started_at.map(DbTime::instant),
            finished_at: self.finished_at.map(DbTime::instant),
            attempt: u32::try_from(self.attempt).unwrap_or(0),
            error: self.error,
        })
    }
}

/// A row of `kaal_definitions`, as read and as written (insert and full update).
///
/// The upsert and enable/disable rules of
/// [`DefinitionRegistry`](kaal_core::DefinitionRegistry) are methods of this type
/// ([`upserted`](DefinitionRow::upserted), [`with_enabled`](DefinitionRow::with_enabled)), so
/// every backend applies them the same way.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = kaal_definitions, treat_none_as_null = true)]
pub struct DefinitionRow {
    /// The namespace it belongs to.
    pub namespace: String,
    /// The cron key (unique within the namespace).
    pub key: String,
    /// The cron expression.
    pub cron: String,
    /// Whether the coordinator dispatches it.
    pub enabled: bool,
    /// `code` or `file` (checked by [`into_definition`](DefinitionRow::into_definition)).
    pub source: String,
    /// A JSON object.
    pub metadata: Metadata,
    /// When it became disabled; `None` while enabled.
    pub disabled_at: Option<DbTime>,
    /// First insert; kept across upserts.
    pub created_at: DbTime,
    /// Last change.
    pub updated_at: DbTime,
    /// When the current cron and enabled state came into force; `None` (rows written before
    /// the migration `schedule_since`, or by the Ruby gem) reads as `created_at`. kaal always
    /// writes it.
    pub schedule_since: Option<DbTime>,
}

impl DefinitionRow {
    /// The kaal-core definition; fails when the stored source is neither `code` nor `file`.
    pub fn into_definition(self) -> Result<Definition, String> {
        let source = self
            .source
            .parse()
            .map_err(|err| format!("definition {}:{}: {err}", self.namespace, self.key))?;
        Ok(Definition {
            key: self.key,
            cron: self.cron,
            enabled: self.enabled,
            source,
            metadata: self.metadata.0,
            created_at: self.created_at.instant(),
            updated_at: self.updated_at.instant(),
            disabled_at: self.disabled_at.map(DbTime::instant),
            schedule_since: self.schedule_since.unwrap_or(self.created_at).instant(),
        })
    }
}

/// A row of `kaal_nodes`, as read and as written.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = kaal_nodes)]
pub struct NodeRow {
    /// The namespace.
    pub namespace: String,
    /// The node's id.
    pub node_id: String,
    /// The registration's token.
    pub instance: String,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: i64,
    /// kaal's version.
    pub version: String,
    /// When it registered (database clock).
    pub started_at: DbTime,
    /// Its last heartbeat (database clock).
    pub last_seen: DbTime,
}

impl NodeRow {
    /// The row registering `node` at `now`.
    pub fn new(node: &NodeInfo, now: DbTime) -> Self {
        Self {
            namespace: node.namespace.clone(),
            node_id: node.node_id.clone(),
            instance: node.instance.clone(),
            host: node.host.clone(),
            pid: i64::from(node.pid),
            version: node.version.clone(),
            started_at: now,
            last_seen: now,
        }
    }

    /// The kaal-core record.
    pub fn into_record(self) -> NodeRecord {
        NodeRecord {
            namespace: self.namespace,
            node_id: self.node_id,
            instance: self.instance,
            host: self.host,
            pid: u32::try_from(self.pid).unwrap_or(0),
            version: self.version,
            started_at: self.started_at.instant(),
            last_seen: self.last_seen.instant(),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use kaal_core::DispatchStatus;

    use super::*;

    fn row(status: &str, attempt: i32) -> DispatchRow {
        let t = DbTime::new(Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap());
        DispatchRow {
            id: 42,
            key: "kaal:report".into(),
            fire_time: t,
            dispatched_at: t,
            node_id: "n".into(),
            status: status.into(),
            started_at: Some(t),
            finished_at: None,
            attempt,
            error: Some("boom".into()),
        }
    }

    #[test]
    fn a_dispatch_row_becomes_its_record_with_the_lifecycle() {
        let record = row("timed_out", 3).into_record().unwrap();
        assert_eq!(
            (
                record.id,
                record.status,
                record.attempt,
                record.error.as_deref()
            ),
            (42, DispatchStatus::TimedOut, 3, Some("boom"))
        );
        assert_eq!(record.started_at, Some(record.fire_time));
        assert_eq!(record.finished_at, None);
    }

    #[test]
    fn a_negative_attempt_reads_as_zero_and_an_unknown_status_is_an_error() {
        assert_eq!(row("claimed", -1).into_record().unwrap().attempt, 0);
        let err = row("lost", 1).into_record().unwrap_err();
        assert!(err.contains("kaal:report") && err.contains("lost"), "{err}");
    }
}
