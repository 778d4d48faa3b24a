//! Exactly-once cron coordination for fleets that share one store.
//! (Crate overview being written.)
#![deny(missing_docs)]

mod adapter;
mod clock;
mod config;
mod coordinator;
pub mod cron;
mod definition;
mod dispatch;
mod error;
mod kaal;
mod keys;
mod memory;
mod registry;
mod schedule;

pub use adapter::{with_lock, Adapter, NullAdapter};
pub use clock::{Clock, ManualClock, OffsetClock, SystemClock};
pub use config::{
    default_node_id, Config, ConfigErrors, ConfigProblem, ConflictPolicy, MissingFilePolicy,
};
pub use coordinator::{Coordinator, TickReport};
pub use cron::{CronError, CronExpr};
pub use definition::{Definition, DefinitionRegistry, DefinitionSource, NewDefinition};
pub use dispatch::{DispatchLogging, DispatchRecord, DispatchRegistry, DispatchStatus};
pub use error::{KeyError, LockError, RegistryError};
pub use kaal::Kaal;
pub use keys::{
    idempotency_key, lock_key, max_cron_key_len, parse_lock_key, validate_cron_key, MAX_KEY_LEN,
};
pub use memory::{MemoryAdapter, MemoryDefinitionRegistry, MemoryDispatchRegistry};
pub use registry::{callback, Callback, CallbackError, Entry, Fire, RegistrationError, Registry};

pub use chrono;
pub use chrono_tz;
