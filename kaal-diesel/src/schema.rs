//! The kaal tables, as Diesel sees them.
//!
//! Table and column names are the Ruby gem's, so Ruby and Rust nodes can share a database.
//! The column types are Diesel's except for two kaal types whose encoding differs per
//! database — that is the only place the schema differs between backends:
//!
//! * [`KaalTimestamp`](sql_types::KaalTimestamp) — a UTC instant: text in ActiveRecord's
//!   format on SQLite (see [`DbTime`](crate::DbTime)), `timestamp` on PostgreSQL, `DATETIME`
//!   on MySQL;
//! * [`KaalJson`](sql_types::KaalJson) — a JSON object: text on SQLite, `jsonb` on
//!   PostgreSQL, `JSON` on MySQL (see [`Metadata`](crate::Metadata)).
//!
//! `created_at` / `updated_at` of `kaal_locks` and `kaal_dispatches` are optional: the Ruby
//! gem's current migrations do not create them. The store probes for them
//! ([`TableShape`](crate::TableShape)) and writes them only where they exist.

/// The SQL types of the kaal columns whose encoding differs per database.
pub mod sql_types {
    /// A UTC instant, at microsecond precision.
    #[derive(
        Debug, Clone, Copy, Default, diesel::sql_types::SqlType, diesel::query_builder::QueryId,
    )]
    #[diesel(sqlite_type(name = "Text"))]
    #[diesel(postgres_type(oid = 1114, array_oid = 1115))]
    #[diesel(mysql_type(name = "DateTime"))]
    pub struct KaalTimestamp;

    /// A JSON object.
    #[derive(
        Debug, Clone, Copy, Default, diesel::sql_types::SqlType, diesel::query_builder::QueryId,
    )]
    #[diesel(sqlite_type(name = "Text"))]
    #[diesel(postgres_type(oid = 3802, array_oid = 3807))]
    #[diesel(mysql_type(name = "String"))]
    pub struct KaalJson;
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::KaalTimestamp;

    /// Leases: one row per held key; `expires_at` is compared with the database's clock.
    kaal_locks (id) {
        /// Surrogate key (never read).
        id -> BigInt,
        /// The lock key (unique, at most 255 bytes).
        key -> Varchar,
        /// When the current holder took the lease.
        acquired_at -> KaalTimestamp,
        /// When the lease ends unless released earlier.
        expires_at -> KaalTimestamp,
        /// Row creation (optional column).
        created_at -> KaalTimestamp,
        /// Last change (optional column).
        updated_at -> KaalTimestamp,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::KaalTimestamp;

    /// The dispatch log, unique per `(key, fire_time)`.
    kaal_dispatches (id) {
        /// The row's sequence id: the run's fencing token.
        id -> BigInt,
        /// The cron key.
        key -> Varchar,
        /// The dispatched fire time.
        fire_time -> KaalTimestamp,
        /// When the dispatch was recorded.
        dispatched_at -> KaalTimestamp,
        /// The node that dispatched it.
        node_id -> Varchar,
        /// Where the run stands: `claimed`, `dispatched` (running), `succeeded`, `failed`,
        /// `timed_out`, `abandoned` or `skipped`.
        status -> Varchar,
        /// Row creation (optional column).
        created_at -> KaalTimestamp,
        /// Last change (optional column).
        updated_at -> KaalTimestamp,
        /// When the job started (kaal's column, added by migration `run_lifecycle`); NULL
        /// for rows never started and rows the Ruby gem writes.
        started_at -> Nullable<KaalTimestamp>,
        /// When the run reached its final status (migration `run_lifecycle`).
        finished_at -> Nullable<KaalTimestamp>,
        /// Which attempt ran last: 0 before the first start (migration `run_lifecycle`).
        attempt -> Integer,
        /// Why a run failed, timed out, was abandoned or skipped (migration
        /// `run_lifecycle`).
        error -> Nullable<Text>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::{KaalJson, KaalTimestamp};

    /// Stored job definitions, unique per `(namespace, key)`.
    kaal_definitions (id) {
        /// Surrogate key (never read).
        id -> BigInt,
        /// The namespace the definition belongs to (kaal's column, added by migration;
        /// `kaal` for rows the Ruby gem writes).
        namespace -> Varchar,
        /// The cron key.
        key -> Varchar,
        /// The cron expression.
        cron -> Varchar,
        /// Whether the coordinator dispatches it.
        enabled -> Bool,
        /// `code` or `file`.
        source -> Varchar,
        /// A JSON object.
        metadata -> KaalJson,
        /// When it became disabled; NULL while enabled.
        disabled_at -> Nullable<KaalTimestamp>,
        /// First insert; kept across upserts.
        created_at -> KaalTimestamp,
        /// Last change.
        updated_at -> KaalTimestamp,
        /// When the current cron and enabled state came into force (kaal's column, added by
        /// migration `schedule_since`); NULL for rows written before it or by the Ruby gem,
        /// read as `created_at`.
        schedule_since -> Nullable<KaalTimestamp>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::KaalTimestamp;

    /// Registered nodes, unique per `(namespace, node_id)`; `last_seen` by the database's
    /// clock.
    kaal_nodes (id) {
        /// Surrogate key (never read).
        id -> BigInt,
        /// The namespace the node coordinates in.
        namespace -> Varchar,
        /// The node's id.
        node_id -> Varchar,
        /// A random token per registration: tells two processes with one node_id apart.
        instance -> Varchar,
        /// Host name.
        host -> Varchar,
        /// Process id.
        pid -> BigInt,
        /// kaal's version.
        version -> Varchar,
        /// When it registered (database clock).
        started_at -> KaalTimestamp,
        /// Its last heartbeat (database clock).
        last_seen -> KaalTimestamp,
    }
}
