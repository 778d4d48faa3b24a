//! Exactly-once cron coordination for fleets that share one store.
//! (Crate overview being written.)
#![deny(missing_docs)]

mod adapter;
mod clock;
pub mod cron;
mod definition;
mod dispatch;
mod error;
mod keys;
mod memory;

pub use adapter::{with_lock, Adapter, NullAdapter};
pub use clock::{Clock, ManualClock, OffsetClock, SystemClock};
pub use cron::{CronError, CronExpr};
pub use definition::{Definition, DefinitionRegistry, DefinitionSource, NewDefinition};
pub use dispatch::{DispatchLogging, DispatchRecord, DispatchRegistry, DispatchStatus};
pub use error::{KeyError, LockError, RegistryError};
pub use keys::{
    idempotency_key, lock_key, max_cron_key_len, parse_lock_key, validate_cron_key, MAX_KEY_LEN,
};
pub use memory::{MemoryAdapter, MemoryDefinitionRegistry, MemoryDispatchRegistry};

pub use chrono;
pub use chrono_tz;
