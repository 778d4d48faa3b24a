//! Node identity and liveness: who is running, by the database's clock.
//!
//! A node registers when it starts and heartbeats while it runs; both stamp `last_seen` with
//! the **store's clock** (the database's, for SQL stores), never the node's. From that:
//!
//! * **A `node_id` is unique among live nodes.** Registration inserts `(namespace, node_id)`
//!   under a unique index, or takes over a registration whose `last_seen` is older than
//!   `node_timeout`; a second live process with the same id is refused
//!   ([`Registration::Duplicate`]). The coordinator trusts node ids (a `claimed` row of its
//!   own id is its own), so this is what makes that trust sound.
//! * **A node is dead when it was not seen for `node_timeout`.** Its `claimed` (never started)
//!   fire times are handed to a live node (see
//!   [`DispatchRegistry::reassign_claim`](crate::DispatchRegistry::reassign_claim)).
//! * **Each node knows its clock's offset** to the database from every heartbeat, and refuses
//!   to claim while the offset exceeds `max_clock_offset`.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::error::RegistryError;

/// What a node says about itself when it registers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// The namespace the node coordinates in.
    pub namespace: String,
    /// The node's id (`node_id` setting).
    pub node_id: String,
    /// A random token of this process's registration, telling two processes with the same
    /// `node_id` apart.
    pub instance: String,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// kaal's version.
    pub version: String,
}

/// A registered node as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRecord {
    /// The namespace.
    pub namespace: String,
    /// The node's id.
    pub node_id: String,
    /// The registration's token.
    pub instance: String,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// kaal's version.
    pub version: String,
    /// When it registered (store clock).
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat (store clock).
    pub last_seen: DateTime<Utc>,
}

/// The answer to [`NodeRegistry::register_node`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    /// Registered; the store's clock at that moment.
    Registered {
        /// The store's clock when it registered the node.
        database_now: DateTime<Utc>,
    },
    /// Another live process holds the same `(namespace, node_id)`.
    Duplicate(NodeRecord),
}

/// Where nodes register and heartbeat. SQL stores keep it in `kaal_nodes`.
pub trait NodeRegistry: Send + Sync {
    /// The store's current time (the database's clock for SQL stores).
    fn database_now(&self) -> Result<DateTime<Utc>, RegistryError>;

    /// Registers `node`, unless a registration of the same `(namespace, node_id)` with
    /// another instance was seen within `timeout` (by the store's clock). Atomic: of two
    /// processes registering the same id at once, one is refused.
    fn register_node(
        &self,
        node: &NodeInfo,
        timeout: Duration,
    ) -> Result<Registration, RegistryError>;

    /// Stamps the registration of `node` (same instance) as seen now; returns the store's
    /// clock, or `None` when the registration is gone or another instance holds it (this
    /// node was taken for dead and replaced).
    fn heartbeat(&self, node: &NodeInfo) -> Result<Option<DateTime<Utc>>, RegistryError>;

    /// Deletes the registration of `node` (same instance only).
    fn deregister_node(&self, node: &NodeInfo) -> Result<(), RegistryError>;

    /// Every registration of `namespace`, by node id.
    fn nodes(&self, namespace: &str) -> Result<Vec<NodeRecord>, RegistryError>;
}

/// Whether `record` counts as alive at `database_now` with `timeout`.
pub fn is_live(record: &NodeRecord, database_now: DateTime<Utc>, timeout: Duration) -> bool {
    let timeout = chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::MAX);
    record.last_seen >= database_now - timeout
}
