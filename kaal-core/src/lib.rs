//! Exactly-once cron coordination for fleets that share one store.
//!
//! kaal-core is the engine of kaal: the [`Adapter`] trait every store implements, the cron
//! calendar, the configuration, and the [`Coordinator`] that turns due fire times into
//! callback calls. It has no database dependency; the `kaal-diesel-*` crates implement
//! [`Adapter`] over SQLite, PostgreSQL and MySQL, and [`MemoryAdapter`] keeps everything in
//! this process.
//!
//! # A service in 20 lines
//!
//! ```
//! use std::{sync::Arc, time::Duration};
//! use kaal_core::{Config, JobPolicy, Kaal, MemoryAdapter, Overlap};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // In memory: this process only. A database shared by the fleet comes from a backend.
//!     let kaal = Kaal::new(Config::default(), Arc::new(MemoryAdapter::new()))?;
//!     let policy = JobPolicy::new().overlap(Overlap::Skip).timeout(Duration::from_secs(600));
//!     kaal.register_with("invoices:send", "*/15 * * * *", policy, |fire| {
//!         log::info!("sending invoices, idempotency key {}", fire.idempotency_key);
//!         Ok(())
//!     })?;
//!     kaal.register("cleanup", "@hourly", |_fire| Ok(()))?;
//!     kaal.try_start()?; // recovery first, then a tick every tick_interval
//!     // ... serve until asked to stop ...
//!     kaal.stop(kaal.config().shutdown_grace); // stop claiming; running jobs finish
//!     Ok(())
//! }
//! ```
//!
//! Callbacks return `Result<(), JobError>`: a plain `Ok(())`, and `?` on any error. The
//! policy travels with the job's stored definition, so every node applies the same
//! ([`JobPolicy`]). For a fleet, use the `kaal` crate: `kaal::connect(url)` opens SQLite,
//! PostgreSQL or MySQL (the `kaal-diesel-*` crates), `run_migrations()` creates the tables,
//! and `run_until_signal()` runs the node until SIGTERM or SIGINT, then stops it within
//! `shutdown_grace` — the same service, on a database, is the first thing on its front
//! page. kaal-core itself handles no signals and installs no logger: it logs through the
//! `log` crate, so install one (`kaal::init_logging()`, `env_logger`, ...) or failures are
//! silent.
//!
//! # Glossary
//!
//! * **job** — a cron schedule under a **cron key** (`invoices:send`) with a callback;
//!   registered in code or declared in a scheduler file.
//! * **fire time** — one instant a job's cron names (09:00 of `0 9 * * *`). Every fire time
//!   of every job runs exactly once across the fleet; that is the whole promise.
//! * **namespace** — the prefix that scopes everything one application stores (keys, log
//!   rows, nodes, definitions), so applications can share a database.
//! * **node** — one process running a [`Coordinator`], known by its `node_id` (unique among
//!   live nodes, [`NodeRegistry`]).
//! * **tick** — one pass of a node: take the due fire times, claim them, run the ones won.
//! * **claim** — taking a fire time: a lock (a lease, an advisory or a named lock), then the
//!   insert-only row in the dispatch log, which is the commit point.
//! * **lease** — a row of `kaal_locks` that expires by the database's clock.
//! * **dispatch log** — `kaal_dispatches`, one row per fire time taken, `claimed` →
//!   `dispatched` (running) → `succeeded` | `failed` | `timed_out` | `abandoned`, or
//!   `claimed` → `skipped` ([`DispatchRegistry`], [`DispatchStatus`]).
//! * **run** — one fire time's execution on a node's executor (`max_concurrent_runs`
//!   threads, never the ticking thread), with its attempts; its **fencing token** is its log
//!   row's id, which grows with every claim of the job ([`Fire::fencing_token`]).
//! * **policy** — how a job's fire times run: overlap, catch-up and deadline, timeout,
//!   retry, jitter, time zone, node loss ([`JobPolicy`]); stored with the definition, so
//!   every node applies the same.
//! * **definition** — the stored form of a job: cron, enabled, source (`code` / `file`) and
//!   when its schedule came into force ([`Definition`], [`DefinitionRegistry`]).
//! * **owed** — a fire time is owed when the job's current schedule was in force at that
//!   instant; only owed fire times ever run.
//! * **recovery** — the pass at start-up over `recovery_window` for fire times missed while
//!   no node ran.
//! * **adapter** / **store** — the seam a database implements ([`Adapter`]); a store is one
//!   database behind it (`kaal_diesel::DieselStore`, [`MemoryAdapter`]).
//! * **callback registry** — the callbacks of this process, by cron key
//!   ([`CallbackRegistry`]); not a store.
//! * **apply** — writing a scheduler file's jobs into the stored definitions (`kaal apply`,
//!   in the `kaal` crate).
//!
//! # The claim model
//!
//! The one thing to understand is what makes a fire time *taken*. With the dispatch log on
//! (the default), **the log row is the commit point**: a claim is committed by inserting the
//! row `({namespace}:{cron_key}, fire_time)` insert-only, on the table's unique index
//! ([`DispatchRegistry::commit_claims`]). Of all the nodes that try, exactly one insert
//! creates the row, however late any of them lands; a node runs only rows its own insert
//! created. The whole argument, step by step, is in the coordinator's `claim` module; in
//! short:
//!
//! * **Leases keep rivals from useless work.** Before committing, a node takes the fire
//!   time's lock key `{namespace}:dispatch:{cron_key}:{fire_time_unix}` ([`lock_key`]) through
//!   [`Adapter::acquire_many`] — a lease row, an advisory or a named lock. Correctness does
//!   not rest on it: a node stalled past its lease that wakes up and commits finds the row
//!   and runs nothing. It guards fleets that run with the log off, and mixed fleets with the
//!   Ruby gem.
//! * **`claimed`, then `dispatched`.** The inserted row is `claimed`; right before the job
//!   runs, a compare-and-set moves it to `dispatched` ([`DispatchRegistry::transition`]), and
//!   only a node whose compare-and-set succeeded runs the job. So no fire time starts twice.
//! * **Nothing claimed is lost.** A `claimed` row whose node is gone — no heartbeat for
//!   `node_timeout` by the database's clock ([`NodeRegistry`]) — is handed to a live node by
//!   another compare-and-set ([`DispatchRegistry::reassign_claim`]), which then starts it; the
//!   dead node, back from a stall, can no longer start it. A fire time a node had *started*
//!   when it died is not run again (at most once).
//! * **The database's clock decides.** Lease expiry, lease pruning, node liveness, and the
//!   latest fire time a claim is accepted for: the store refuses fire times later than its
//!   own now plus [`CLAIM_TOLERANCE`] (one second), so a node whose clock runs fast, a clock
//!   that jumps, or a tick at an explicit future instant runs nothing early — those fire
//!   times run at their time. A running node whose clock is further than `max_clock_offset`
//!   (10 s) from the database's refuses to claim at all and says so every tick.
//! * **Node ids are unique among live nodes.** [`Coordinator::try_start`] registers the node;
//!   a second live process with the same `node_id` is refused ([`StartError::DuplicateNode`]).
//!   That is what lets a node trust rows carrying its own id.
//! * **Namespaces isolate.** Log rows, lock keys, node registrations and stored definitions
//!   carry the namespace, so two applications sharing one database never see each other's
//!   fire times, and may both define a job `sync` without touching each other's
//!   ([`DefinitionRegistry`] takes the namespace in every call).
//! * **What happens on restart.** The log outlives every lease: every pass checks it before
//!   claiming, so missed-run recovery (up to `recovery_window`, default a day) dispatches
//!   only what no node dispatched. With the log off only leases protect, and
//!   [`Config::validate`] refuses a recovery window they cannot cover.
//! * **What is owed.** A fire time is owed only if the job's current schedule — its cron and
//!   its being enabled — was in force at that instant. Each stored definition records when
//!   that began, [`Definition::schedule_since`]: its creation, its last cron change or its
//!   last re-enable, stamped by the database's clock in the write's transaction (a node up
//!   to `max_clock_offset` behind it still counts it as in force); a code registration
//!   stores the registration instant. Changing a stored definition from a scheduler file is
//!   an explicit, atomic act ([`DefinitionRegistry::apply_definitions`]; `kaal apply`): a
//!   node never rewrites stored jobs because its own file differs. No pass — first tick, catch-up, recovery — dispatches a fire time
//!   before it, and the dispatch log never moves it, so restarts cannot ratchet back, a
//!   disabled hour is not replayed after the job is enabled again, and a new cron is not
//!   walked over the past. A brand-new job created at 09:00:30 does not run its 09:00 fire
//!   time. Re-applying an unchanged definition or disabling one does not move it.
//! * **When the database fails mid-claim.** A commit or a start whose answer was lost is
//!   never guessed at: the node runs nothing then, and its next pass reads the log — a row
//!   it created is started, a row it started is run (no other node can start a row of its
//!   id, and a node runs one pass at a time), anything else is left to its owner. A start
//!   the server applies only after the node has read the row again (a statement cut on
//!   the wire that the server still finishes) is caught by the node's own next start of
//!   it, which finds the row already `dispatched` by this node and runs it.
//! * **What it costs.** Per tick with anything due, in round trips: one read of the stored
//!   definitions (so an enable, disable or cron change made elsewhere is seen before
//!   claiming), one batch lookup in the log (both key forms in one statement), one batch
//!   lock claim, one commit transaction (the database's clock, the insert-only batch, the
//!   read-back of the rows it created), then one compare-and-set start per job run — plus,
//!   with leases, the deletion of long-expired leases at most once a minute. No store access
//!   at all on a tick with nothing due. A sweep for never-started claims reads the log's
//!   `claimed` rows every `node_timeout / 2`; the heartbeat writes the node's row every
//!   `node_timeout / 3`.
//!
//! # Testing: a tick at a chosen instant
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
//!     Ok(())
//! })?;
//!
//! // No loop: one tick at an instant, as tests and `kaal tick --at` do.
//! let report = kaal.tick_at(Utc.with_ymd_and_hms(2026, 1, 1, 9, 15, 2).unwrap());
//! assert_eq!(report.dispatched.len(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Map of the crate
//!
//! * [`Adapter`], [`with_lock`], [`NullAdapter`], [`LockError`] — the store seam.
//! * [`NodeRegistry`], [`NodeInfo`], [`Registration`] — node identity and liveness by the
//!   store's clock.
//! * [`DispatchRegistry`], [`DispatchLogging`], [`DefinitionRegistry`] — the dispatch log and
//!   the stored definitions; [`MemoryAdapter`] and its registries keep them in memory.
//! * [`cron`] — parsing, linting, simplifying, describing and evaluating cron expressions.
//! * [`Config`] — settings with the design's defaults and [`Config::validate`].
//! * [`CallbackRegistry`] — the callbacks of this process, each returning
//!   `Result<(), JobError>` ([`JobError`]); [`Coordinator`] — the tick loop; [`Kaal`] — the
//!   facade that ties them together.
//! * [`policy`] — per-job policies ([`JobPolicy`]: overlap, catch-up, deadline, timeout,
//!   retry, jitter, time zone, node loss), stored with the definition
//!   ([`Definition::policy`]).
//! * [`Clock`] — where "now" comes from ([`ManualClock`] for tests, [`OffsetClock`] for skew).
//!
//! # Moved
//!
//! The session-lock adapter (`SessionLockAdapter`, with its `LockSession` and
//! `SessionFactory` traits and the `session` module) lived here and called back up into the
//! backends through those traits. It is now `kaal_diesel::SessionLockStore`, generic over
//! the backend's `kaal_diesel::LockSql` (the dedicated session, no re-entry, ttl reaping,
//! lost-session recovery, and the dispatch-log confirm `kaal_diesel::give_back_dispatched`),
//! so the path runs one way: [`Adapter`] here, the generic store in kaal-diesel, the SQL in
//! the backend crate (`kaal_diesel_postgres::PgAdvisoryAdapter`,
//! `kaal_diesel_mysql::MysqlNamedLockAdapter`).
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
pub mod policy;
mod registry;
mod schedule;

pub use adapter::{with_lock, Adapter, NullAdapter};
pub use clock::{Clock, ManualClock, OffsetClock, SystemClock};
pub use config::{
    default_node_id, Config, ConfigErrors, ConfigProblem, ConflictPolicy, MAX_CONCURRENT_RUNS,
    MAX_DURATION,
};
pub use coordinator::preview::{Preview, PreviewOutcome, PreviewReport};
pub use coordinator::{Coordinator, StartError, TickReport, TimedOut};
pub use cron::{CronError, CronExpr};
pub use definition::{
    BatchOutcome, Definition, DefinitionRegistry, DefinitionSource, DefinitionWrite, NewDefinition,
};
pub use dispatch::{
    clip_error, dispatch_log_key, AloneStart, Commit, Commits, DispatchLogging, DispatchRecord,
    DispatchRegistry, DispatchStatus, RunRecord, RunUpdate, CLAIM_TOLERANCE, MAX_ERROR_CHARS,
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
pub use policy::{CatchUp, JobPolicy, OnNodeLoss, Overlap, PolicyError, Retry};
pub use registry::{
    callback, Callback, CallbackError, CallbackRegistry, Entry, Fire, JobError, RegistrationError,
};

/// The old name of [`CallbackRegistry`] (renamed so the callbacks of a process are not
/// mistaken for a store like [`DispatchRegistry`] or [`DefinitionRegistry`]).
#[deprecated(note = "renamed to `CallbackRegistry`")]
pub type Registry = CallbackRegistry;

pub use chrono;
pub use chrono_tz;
pub use serde_json;
