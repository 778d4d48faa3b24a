//! kaal: exactly-once cron scheduling for a fleet that shares one database — the library
//! facade and the `kaal` command-line tool.
//!
//! # A service in 20 lines
//!
//! Every process that runs this against the same database shares the work: each fire time
//! of each job runs in exactly one of them.
//!
//! ```no_run
//! use std::time::Duration;
//! use kaal::{Config, JobPolicy, Kaal, Overlap, RunUntilSignal};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let path = std::env::temp_dir().join("kaal-example.db"); // or postgres://…, mysql://…
//!     let database = kaal::connect(&format!("sqlite://{}", path.display()))?;
//!     database.run_migrations()?; // creates the tables (or `kaal migrate`); then a no-op
//!     let kaal = Kaal::new(Config::default(), database.adapter())?;
//!     let policy = JobPolicy::new().overlap(Overlap::Skip).timeout(Duration::from_secs(600));
//!     kaal.register_with("invoices:send", "*/15 * * * *", policy, |fire| {
//!         log::info!("sending invoices, idempotency key {}", fire.idempotency_key);
//!         Ok(())
//!     })?;
//!     kaal.register("cleanup", "@hourly", |_fire| Ok(()))?;
//!     kaal.run_until_signal()?; // until SIGTERM or SIGINT, then a graceful stop
//!     Ok(())
//! }
//! ```
//!
//! * [`connect`] picks the backend from the URL (`sqlite://PATH` or a path, `postgres://`,
//!   `mysql://`; each behind its Cargo feature) and [`Database::run_migrations`] creates
//!   kaal's tables. Without it the first query fails with a message that says to run
//!   `kaal migrate` or call `run_migrations()`.
//! * A callback returns `Result<(), JobError>` ([`JobError`]): a plain `Ok(())`, `?` on any
//!   error, `Err("message".into())`. An error or a panic is logged and recorded `failed`;
//!   the loop goes on.
//! * [`JobPolicy`] — overlap, catch-up, deadline, timeout, retry, jitter, time zone, node
//!   loss — is stored with the job's definition, so every node applies the same one
//!   ([`kaal_core::policy`]).
//! * [`RunUntilSignal::run_until_signal`] starts the node (recovery, then a tick every
//!   `tick_interval`), waits for SIGTERM or SIGINT and stops it, giving running jobs up to
//!   `shutdown_grace`. It installs a stderr logger ([`init_logging`]) unless you installed
//!   one, so failures are never silent.
//!
//! `examples/service.rs` is this service (`cargo run -p kaal --example service`; run it
//! twice to watch two processes share the jobs); a test runs it and stops it with SIGTERM.
//!
//! # What else is here
//!
//! This crate re-exports [`kaal_core`] (the claim model, the coordinator, cron, [`Kaal`]) and
//! adds what an operator touches: [`connect`] picks a store by its URL, [`ConfigFile`] reads
//! `config/kaal.yml`, [`SchedulerFile`] reads `config/kaal-scheduler.yml`, and
//! [`apply_scheduler_file`] stores the file's new jobs and binds them — processes for
//! `command:` and `shell:` jobs ([`CommandJob`]), your code for `handler:` jobs
//! ([`Handlers`]); [`commit_scheduler_file`] (`kaal apply`) changes stored jobs, in one
//! transaction.
//!
//! # The one decision to understand: the file is applied, the database decides
//!
//! The scheduler file is not read by the coordinator. Applying it writes its jobs to the
//! database as `file` definitions and binds each to a callback in this process; every tick
//! then reads the **stored** definitions, so `kaal disable KEY` on any host stops a job on
//! every node, and a fire time is claimed through the database exactly as for jobs registered
//! in code. A node starting with its file only adds jobs the database has never held;
//! changing or removing stored jobs is `kaal apply` ([`commit_scheduler_file`]), one
//! transaction, so nodes with different files during a rolling deploy never undo each
//! other. See [`apply`] for the rules: conflicts with code-registered jobs, removed jobs,
//! the enabled state, and which node runs a job whose command changed.
//!
//! # Example: configuration and scheduler files
//!
//! ```
//! use std::path::Path;
//! use kaal::chrono::{TimeZone, Utc};
//!
//! let config = kaal::ConfigFile::parse(
//!     "defaults:\n  database_url: \"memory:\"\n",
//!     Path::new("config/kaal.yml"),
//!     "development",
//!     &|_| None,
//! )?;
//! let store = kaal::connect(&config.resolved_database_url())?;
//! let node = kaal::Kaal::new(config.config, store.adapter())?;
//!
//! // A job registered in code ...
//! node.register("invoices:send", "*/15 * * * *", |fire| {
//!     log::info!("sending invoices, idempotency key {}", fire.idempotency_key);
//!     Ok(())
//! })?;
//! // ... and one from a scheduler file, bound to a handler.
//! let jobs = kaal::SchedulerFile::parse(
//!     "defaults:\n  jobs:\n    - key: weekly_summary\n      cron: '@weekly'\n      handler: weekly_summary\n",
//!     Path::new("config/kaal-scheduler.yml"),
//!     "development",
//!     "kaal",
//! )?;
//! let mut handlers = kaal::Handlers::new();
//! handlers.add("weekly_summary", |_fire| Ok(()));
//! kaal::apply_scheduler_file(&node, &jobs, &handlers)?;
//!
//! let report = node.tick_at(Utc.with_ymd_and_hms(2026, 1, 4, 0, 0, 10).unwrap()); // a Sunday
//! assert_eq!(report.dispatched.len(), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Map of the crate
//!
//! * `files/` — the two YAML files an operator writes: [`config_file`] (settings, database),
//!   [`scheduler_file`] (the jobs), the YAML subset, `${VAR}` expansion, the file-and-line
//!   problems ([`FileErrors`]).
//! * `jobs/` — what runs for a file job's fire time: [`command_job`] (a process group,
//!   timeouts, the environment it gets) and its placeholders ([`Template`]).
//! * `store/` — [`connect`]: the store a URL names, one glue function per backend feature;
//!   [`Database`], [`DatabaseKind`], [`redact`].
//! * [`apply`] — files meet the database: what a starting node adds, what `kaal apply`
//!   changes (one transaction), which node runs which job.
//! * `service` — [`RunUntilSignal`] (run a node until SIGTERM / SIGINT, [`RunError`]);
//!   `logging` — [`init_logging`].
//! * `cli/` (binary only) — the `kaal` command: one file per command group.
//!
//! # Features
//!
//! * `sqlite` (default) — [`connect`] opens `sqlite://PATH` and plain paths (kaal-diesel-sqlite).
//! * `postgres` — `postgres://` and `postgresql://` URLs (kaal-diesel-postgres; links libpq);
//!   `lock_strategy: advisory` selects PostgreSQL advisory locks instead of the lease table.
//! * `mysql` — `mysql://` and `mariadb://` URLs (kaal-diesel-mysql; links libmysqlclient);
//!   `lock_strategy: advisory` selects MySQL named locks (`GET_LOCK`) instead of the lease
//!   table.
//!   Without the feature, [`connect`] fails with an error naming the feature to enable.
//! * `cli` (default) — the `kaal` binary and its dependencies (clap; env_logger's colours,
//!   timestamps and regex filters).
//!
//! # Dependencies and why
//!
//! * `saphyr-parser` — YAML 1.2 events with a position on every event. Both files must report
//!   problems with their line, reject duplicate keys and type values *after* `${VAR}`
//!   expansion, so we build a small marked tree (the private `yaml` module) from
//!   the events instead of deserialising: `serde_yaml` is deprecated and drops positions once
//!   deserialised; `yaml-rust2` offers the same events but saphyr is its maintained
//!   successor (same authors) with YAML 1.2 test-suite compliance. Using the parser crate
//!   alone keeps the loader out of the dependency tree.
//! * `rustix` (feature `process`) — kills a timed-out job's whole process group without
//!   `unsafe` (the workspace forbids it), so `sh -c` children die with the shell.
//! * `serde_json` — definition metadata is a JSON object.
//! * `signal-hook` — SIGTERM and SIGINT delivered to a thread we control, for
//!   [`RunUntilSignal::run_until_signal`] and `kaal start`: the main thread blocks on the
//!   signals and notices a second one while jobs finish (`ctrlc` would also do, but
//!   handles one signal through a callback; signal-hook's iterator lets the caller wait and
//!   poll). It is a library dependency, not only the binary's, because a service needs the
//!   same graceful stop the CLI has, and asking every user to write it was the front door's
//!   most common mistake. kaal-core stays free of signal handling.
//! * `env_logger` (without default features: only `log` and its filter parser) —
//!   [`init_logging`], the logger a service gets when it installed none; without one, kaal's
//!   failure reports vanish. The `cli` feature turns on its default features (colours,
//!   timestamps, regex filters) for the binary.
//! * `clap` (derive) — the binary only (feature `cli`): the de-facto argument parser with
//!   generated `--help`. `kaal start` also catches SIGHUP, and on a second signal kills the
//!   running job's process group before exiting.
//! * `tempfile` (tests) — a fresh directory per test.
#![deny(missing_docs)]

pub mod apply;
mod database;
mod files;
mod jobs;
mod logging;
mod service;
mod suggest;

pub use files::{config_file, scheduler_file};
pub use jobs::command_job;

pub use kaal_core::*;

pub use apply::{
    apply_scheduler_file, bind_stored_file_jobs, commit_scheduler_file, is_removed,
    job_from_definition, load_scheduler_file, plan_scheduler_file, rebind_scheduler_file,
    stored_metadata, ApplyError, ApplyReport, FilePlan, Handlers, Rebound,
};
pub use database::connect::{connect, connect_with};
pub use database::{redact, sqlite_file, ConnectError, Database, DatabaseKind, LockStrategy};
pub use files::config_file::{
    ConfigCheck, ConfigFile, MissingFilePolicy, DEFAULT_CONFIG_PATH, DEFAULT_ENVIRONMENT,
};
pub use files::problems::{FileErrors, FileProblem};
pub use files::scheduler_file::SchedulerFile;
pub use files::scheduler_job::{FileJob, JobAction};
pub use jobs::command_job::{CommandError, CommandJob, Program};
pub use jobs::placeholder::{Template, PLACEHOLDERS};
pub use logging::init_logging;
pub use service::{RunError, RunUntilSignal};

/// The old name of [`DatabaseKind`] (renamed so it no longer collides with
/// `kaal_testkit::Backend`, the trait a backend implements to run the conformance suite).
#[deprecated(note = "renamed to `DatabaseKind`")]
pub type Backend = DatabaseKind;

/// The old name of [`Database`] (renamed so that "store" means one thing: a
/// [`DieselStore`](kaal_diesel::DieselStore), the tables of one database behind a pool).
#[deprecated(note = "renamed to `Database`")]
pub type Store = Database;
