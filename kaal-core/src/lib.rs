//! Exactly-once cron coordination for fleets that share one store.
//!
//! kaal-core is the engine of kaal: the [`Adapter`] trait every store implements, the cron
//! calendar, the configuration, and the [`Coordinator`] that turns due fire times into
//! callback calls. It has no database dependency; the `kaal-diesel-*` crates implement
//! [`Adapter`] over SQLite, PostgreSQL and MySQL, and [`MemoryAdapter`] keeps everything in
//! this process.
//!
//! # The claim model
//!
//! The one thing to understand is what a *claim* is. Every fire time of every job has a lock
//! key, `{namespace}:dispatch:{cron_key}:{fire_time_unix}` ([`lock_key`]). A node that finds
//! a fire time due asks the store to [`acquire`](Adapter::acquire) that key with a ttl of
//! `lease_ttl`:
//!
//! * **What "acquired" promises.** `true` means no other caller anywhere gets `true` for the
//!   key until the lease is released or `ttl` has passed. The node that wins the claim — and
//!   only it — calls the callback.
//! * **Who decides expiry.** The store. The SQL backends compare `expires_at` with the
//!   database's clock, so a node whose clock runs fast cannot steal a live lease and one whose
//!   clock runs slow cannot keep one.
//! * **Why the lease is long enough.** A fire time stays claimable for `window_lookback`
//!   after it falls due, checked every `tick_interval`; `lease_ttl >= window_lookback +
//!   tick_interval` ([`Config::validate`] enforces it) means the lease outlives every window
//!   that contains the fire time.
//! * **What happens on restart.** Leases expire; the dispatch log does not. Each won claim is
//!   recorded in the dispatch log before its callback runs, and every pass checks the log
//!   before claiming, so a restart's missed-run recovery (up to `recovery_window`, default a
//!   day) dispatches only what no node dispatched. With the log turned off only the leases
//!   protect, and [`Config::validate`] refuses a recovery window they cannot cover.
//! * **When the database fails mid-claim.** A job never runs on a claim the dispatch log
//!   does not show. If the batch claim or the log write fails (a cut connection, a busy
//!   database), the node does not know whether the database kept its claim: the fire times
//!   are remembered as *uncertain* and retried every tick until the log shows them (run by
//!   whoever logged them — this node too, when its own log write reached the database after
//!   all) or this node wins them, which at worst waits for its own lease to run out. A batch
//!   that meets contention decided nothing and reports an error, never "held by another".
//! * **Clock skew.** Whether a fire time is *due* is decided by the claiming node's clock;
//!   whether a claim is *held* is not. A node whose clock runs 60 s fast claims and runs a
//!   fire time up to 60 s early — once: the others find it claimed or logged. With the
//!   `lease` strategy the lease's lifetime is measured by the database's clock, so skew can
//!   neither shorten nor stretch it; with advisory (PostgreSQL) or named (MySQL) locks the
//!   lock lives with the holder's session and its ttl is measured on the holder's monotonic
//!   clock, so skew plays no part in holding either. No strategy prevents the early run:
//!   keep node clocks synchronised (NTP) if a job must not start before its minute. The
//!   fleet suite runs nodes at −60 s, 0 and +60 s and finds no duplicates.
//! * **What it costs.** Each node settles each fire time once: one batch lookup in the log and
//!   one batch claim per tick that has anything due, and no store access at all on a tick
//!   with nothing due (the coordinator keeps each job's next fire time).
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use kaal_core::chrono::{TimeZone, Utc};
//! use kaal_core::{Config, Fire, Kaal, MemoryAdapter};
//!
//! let kaal = Kaal::new(Config::default(), Arc::new(MemoryAdapter::new()))?;
//! kaal.register("invoices:send", "*/15 * * * *", |fire: &Fire| {
//!     // fire.idempotency_key is the same on every node for this fire time.
//!     println!("sending invoices due at {}", fire.fire_time);
//!     Ok::<(), std::io::Error>(())
//! })?;
//!
//! // In a service: kaal.start(); ... kaal.stop(timeout). In a test, tick at chosen instants:
//! let report = kaal.tick_at(Utc.with_ymd_and_hms(2026, 1, 1, 9, 15, 2).unwrap());
//! assert_eq!(report.dispatched.len(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Map of the crate
//!
//! * [`Adapter`], [`with_lock`], [`NullAdapter`], [`LockError`] — the store seam.
//! * [`DispatchRegistry`], [`DispatchLogging`], [`DefinitionRegistry`] — the dispatch log and
//!   the stored definitions; [`MemoryAdapter`] and its registries keep them in memory.
//! * [`cron`] — parsing, linting, simplifying, describing and evaluating cron expressions.
//! * [`Config`] — settings with the design's defaults and [`Config::validate`].
//! * [`Registry`] — the callbacks of this process; [`Coordinator`] — the tick loop;
//!   [`Kaal`] — the facade that ties them together.
//! * [`Clock`] — where "now" comes from ([`ManualClock`] for tests, [`OffsetClock`] for skew).
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
mod nodes;
mod registry;
mod schedule;
pub mod session;

pub use adapter::{with_lock, Adapter, NullAdapter};
pub use clock::{Clock, ManualClock, OffsetClock, SystemClock};
pub use config::{
    default_node_id, Config, ConfigErrors, ConfigProblem, ConflictPolicy, MissingFilePolicy,
    MAX_DURATION,
};
pub use coordinator::{Coordinator, StartError, TickReport};
pub use cron::{CronError, CronExpr};
pub use definition::{Definition, DefinitionRegistry, DefinitionSource, NewDefinition};
pub use dispatch::{
    dispatch_log_key, Commit, Commits, DispatchLogging, DispatchRecord, DispatchRegistry,
    DispatchStatus, CLAIM_TOLERANCE,
};
pub use error::{KeyError, LockError, RegistryError};
pub use kaal::Kaal;
pub use keys::{
    idempotency_key, lock_key, max_cron_key_len, parse_lock_key, validate_cron_key, MAX_KEY_LEN,
};
pub use memory::{
    MemoryAdapter, MemoryDefinitionRegistry, MemoryDispatchRegistry, MemoryNodeRegistry,
};
pub use nodes::{is_live, NodeInfo, NodeRecord, NodeRegistry, Registration};
pub use registry::{callback, Callback, CallbackError, Entry, Fire, RegistrationError, Registry};
pub use session::{LockSession, SessionFactory, SessionLockAdapter};

pub use chrono;
pub use chrono_tz;
