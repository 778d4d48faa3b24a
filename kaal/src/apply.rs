//! Applying a scheduler file: storing its jobs as `file` definitions and binding each to a
//! callback in this process.
//!
//! # What applying does
//!
//! 1. **Conflicts first.** A job whose key is stored as a `code` definition (registered by a
//!    library process) follows `scheduler_conflict_policy`: `error` fails the whole apply
//!    before anything is written, naming every such job with its line; `file_wins` replaces
//!    the stored definition with the file's; `code_wins` keeps the code's and this process
//!    does not bind the job (the code's process runs it).
//! 2. **Store.** Every other job is upserted with source `file`; its metadata is the job's
//!    `metadata:` plus a `kaal` object with the execution details (`command`/`shell`/
//!    `handler`, `env`, `working_dir`, `timeout`, `file_enabled`).
//! 3. **Enabled state.** An operator's `kaal enable`/`kaal disable` survives re-applying the
//!    same file; when the file's own `enabled:` changes, the file's value wins.
//! 4. **Removed jobs.** Stored `file` definitions whose key is no longer in the file are
//!    deleted (their dispatch log stays). One scheduler file per namespace, then: nodes of
//!    one namespace with different files would delete each other's jobs. Every step reads
//!    and writes only the definitions of the node's namespace, so applications with their
//!    own namespaces can share a database and a key without touching each other's jobs.
//! 5. **Bind.** Command jobs get a [`CommandJob`] callback; `handler:` jobs get the callback
//!    registered under that name in [`Handlers`], and are left unbound (listed in
//!    [`ApplyReport::unbound`], logged) when there is none — another process may bind them.
//!
//! # Commands come from this node's file, never from the database
//!
//! A node runs only the commands of its **own** scheduler file. The stored metadata carries
//! the command for `kaal status` and for other tools, but it is never what runs: whoever can
//! write one row to `kaal_definitions` would otherwise run a shell command on every node.
//! A stored command that differs from the file's is reported (a warning naming the job) and
//! replaced by the file's; with the file missing, [`bind_stored_file_jobs`] binds stored
//! `handler:` jobs only and reports every stored command job it does not run.
//!
//! The file was fully checked when it was loaded; a database error part-way through steps 2-4
//! can still leave some definitions written (the store has no transactions across calls).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use serde_json::{json, Map, Value as Json};

use kaal_core::{
    callback, Callback, CallbackError, ConflictPolicy, Definition, DefinitionSource, Fire, Kaal,
    MissingFilePolicy, NewDefinition, RegistrationError, RegistryError,
};

use crate::command_job::{CommandJob, Program};
use crate::placeholder::Template;
use crate::problems::{FileErrors, FileProblem};
use crate::scheduler_file::{FileJob, JobAction, SchedulerFile};

/// Callbacks registered in code under the names that `handler:` jobs refer to.
///
/// ```
/// let mut handlers = kaal::Handlers::new();
/// handlers.add("weekly_summary", |fire: &kaal::Fire| {
///     log::info!("summary for {}", fire.fire_time);
///     Ok::<(), std::io::Error>(())
/// });
/// assert!(handlers.get("weekly_summary").is_some());
/// ```
#[derive(Clone, Default)]
pub struct Handlers {
    map: BTreeMap<String, Callback>,
}

impl fmt::Debug for Handlers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.map.keys()).finish()
    }
}

impl Handlers {
    /// No handlers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `f` under `name`, replacing any earlier one.
    pub fn add<F, E>(&mut self, name: &str, f: F) -> &mut Self
    where
        F: Fn(&Fire) -> Result<(), E> + Send + Sync + 'static,
        E: Into<CallbackError>,
    {
        self.map.insert(name.to_string(), callback(f));
        self
    }

    /// The callback registered under `name`.
    pub fn get(&self, name: &str) -> Option<Callback> {
        self.map.get(name).cloned()
    }
}

/// What [`apply_scheduler_file`] did, by key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Jobs stored as `file` definitions.
    pub stored: Vec<String>,
    /// Stored `file` definitions deleted because the file no longer has them.
    pub removed: Vec<String>,
    /// Jobs left to their `code` definition (policy `code_wins`).
    pub kept_code: Vec<String>,
    /// Jobs bound to a callback in this process.
    pub bound: Vec<String>,
    /// `handler:` jobs with no such handler in this process.
    pub unbound: Vec<String>,
}

/// Applying the scheduler file failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Jobs collide with `code` definitions under policy `error`; nothing was written.
    #[error("{0}")]
    Conflict(FileErrors),
    /// The file is missing under policy `error`, or could not be read.
    #[error("{0}")]
    File(FileErrors),
    /// The store could not be read or written.
    #[error(transparent)]
    Store(#[from] RegistryError),
    /// A job could not be registered in this process.
    #[error(transparent)]
    Registration(#[from] RegistrationError),
}

/// Loads `kaal.config().scheduler_config_path` for `environment`, applying
/// `scheduler_missing_file_policy`: a missing file is `Ok(None)` after a warning under
/// `warn`, and an error under `error`.
pub fn load_scheduler_file(
    kaal: &Kaal,
    environment: &str,
) -> Result<Option<SchedulerFile>, ApplyError> {
    let config = kaal.config();
    let path = &config.scheduler_config_path;
    match SchedulerFile::load(path, environment, &config.namespace).map_err(ApplyError::File)? {
        Some(file) => Ok(Some(file)),
        None => match config.scheduler_missing_file_policy {
            MissingFilePolicy::Warn => {
                log::warn!(
                    "scheduler file {} not found; running no commands, only the stored handler jobs (scheduler_missing_file_policy: warn)",
                    path.display()
                );
                Ok(None)
            }
            MissingFilePolicy::Error => Err(ApplyError::File(FileErrors::whole_file(
                path,
                "scheduler file not found (scheduler_missing_file_policy is error); create it with `kaal init` or set scheduler_config_path",
            ))),
        },
    }
}

/// Stores the jobs of `file` and binds them in `kaal`'s registry; see the [module
/// docs](self) for the rules.
pub fn apply_scheduler_file(
    kaal: &Kaal,
    file: &SchedulerFile,
    handlers: &Handlers,
) -> Result<ApplyReport, ApplyError> {
    let mut report = ApplyReport::default();
    let mut kept_code = BTreeSet::new();
    let namespace = kaal.config().namespace.as_str();
    if let Some(store) = kaal.adapter().definition_registry() {
        let stored: BTreeMap<String, Definition> = store
            .all_definitions(namespace)?
            .into_iter()
            .map(|d| (d.key.clone(), d))
            .collect();
        let policy = kaal.config().scheduler_conflict_policy;
        let mut conflicts = Vec::new();
        for job in &file.jobs {
            let Some(def) = stored
                .get(&job.key)
                .filter(|d| d.source == DefinitionSource::Code)
            else {
                continue;
            };
            match policy {
                ConflictPolicy::Error => conflicts.push(FileProblem {
                    path: file.path.clone(),
                    line: Some(job.line),
                    message: format!(
                        "job {:?} is also registered in code (stored cron {:?}) and scheduler_conflict_policy is error; \
                         set it to file_wins or code_wins, or rename one of them",
                        job.key, def.cron
                    ),
                }),
                ConflictPolicy::CodeWins => {
                    kept_code.insert(job.key.clone());
                }
                ConflictPolicy::FileWins => {}
            }
        }
        if !conflicts.is_empty() {
            return Err(ApplyError::Conflict(FileErrors {
                problems: conflicts,
            }));
        }
        for job in file.jobs.iter().filter(|j| !kept_code.contains(&j.key)) {
            let enabled = match stored.get(&job.key) {
                Some(def) if def.source == DefinitionSource::File => {
                    let last = def
                        .metadata
                        .get("kaal")
                        .and_then(|k| k.get("file_enabled"))
                        .and_then(Json::as_bool);
                    if last == Some(job.enabled) {
                        def.enabled
                    } else {
                        job.enabled
                    }
                }
                _ => job.enabled,
            };
            let metadata = stored_metadata(job);
            if let Some(def) = stored.get(&job.key) {
                if def.source == DefinitionSource::File
                    && execution(&def.metadata) != execution(&metadata)
                {
                    log::warn!(
                        "job {:?}: the stored command differs from {} (an edited file, another node's file, or a change made in the database); this node stores and runs its file's",
                        job.key,
                        file.path.display()
                    );
                }
            }
            store.upsert_definition(
                namespace,
                NewDefinition {
                    key: job.key.clone(),
                    cron: job.cron.clone(),
                    enabled,
                    source: DefinitionSource::File,
                    metadata,
                },
            )?;
            report.stored.push(job.key.clone());
        }
        let keys: BTreeSet<&str> = file.jobs.iter().map(|j| j.key.as_str()).collect();
        for def in stored.values() {
            if def.source == DefinitionSource::File && !keys.contains(def.key.as_str()) {
                store.remove_definition(namespace, &def.key)?;
                log::info!(
                    "removed {:?}: no longer in {}",
                    def.key,
                    file.path.display()
                );
                report.removed.push(def.key.clone());
            }
        }
    }
    for job in file.jobs.iter().filter(|j| !kept_code.contains(&j.key)) {
        bind(kaal, job, handlers, &mut report)?;
    }
    report.kept_code = kept_code.into_iter().collect();
    Ok(report)
}

/// Binds the `handler:` jobs among the `file` definitions already stored (for when the
/// scheduler file is missing and the policy is `warn`) to the callbacks in `handlers`.
///
/// Stored `command:`/`shell:` jobs are **not** run: a node runs only the commands of its own
/// scheduler file (see the [module docs](self)); each one is reported with a warning naming
/// its key.
pub fn bind_stored_file_jobs(kaal: &Kaal, handlers: &Handlers) -> Result<ApplyReport, ApplyError> {
    let mut report = ApplyReport::default();
    let Some(store) = kaal.adapter().definition_registry() else {
        return Ok(report);
    };
    for def in store.all_definitions(&kaal.config().namespace)? {
        if def.source != DefinitionSource::File {
            continue;
        }
        match job_from_definition(&def) {
            Ok(job) if matches!(job.action, JobAction::Handler(_)) => {
                bind(kaal, &job, handlers, &mut report)?;
            }
            Ok(_) => log::warn!(
                "not running stored job {:?}: its command is not in this node's scheduler file ({} is missing), and a node runs only the commands of its own file",
                def.key,
                kaal.config().scheduler_config_path.display()
            ),
            Err(message) => log::warn!("not running stored job {:?}: {message}", def.key),
        }
    }
    Ok(report)
}

/// The execution details of stored metadata (its `kaal` object without `file_enabled`),
/// to compare a stored command with the file's.
fn execution(metadata: &Map<String, Json>) -> Option<Map<String, Json>> {
    let mut kaal = metadata.get("kaal")?.as_object()?.clone();
    kaal.remove("file_enabled");
    Some(kaal)
}

fn bind(
    kaal: &Kaal,
    job: &FileJob,
    handlers: &Handlers,
    report: &mut ApplyReport,
) -> Result<(), ApplyError> {
    let callback = match &job.action {
        JobAction::Command(command) => command.clone().into_callback(),
        JobAction::Handler(name) => match handlers.get(name) {
            Some(callback) => callback,
            None => {
                log::info!(
                    "job {:?} uses handler {name:?}, which this process does not have; it runs where that handler is registered",
                    job.key
                );
                report.unbound.push(job.key.clone());
                return Ok(());
            }
        },
    };
    kaal.registry().upsert(&job.key, &job.cron, callback)?;
    report.bound.push(job.key.clone());
    Ok(())
}

/// The metadata stored for `job`: its `metadata:` plus the `kaal` execution details.
pub fn stored_metadata(job: &FileJob) -> Map<String, Json> {
    let mut kaal = Map::new();
    match &job.action {
        JobAction::Handler(name) => {
            kaal.insert("handler".into(), json!(name));
        }
        JobAction::Command(command) => {
            match &command.program {
                Program::Argv(args) => kaal.insert(
                    "command".into(),
                    json!(args.iter().map(Template::as_str).collect::<Vec<_>>()),
                ),
                Program::Shell(script) => kaal.insert("shell".into(), json!(script.as_str())),
            };
            if !command.env.is_empty() {
                let env: Map<String, Json> = command
                    .env
                    .iter()
                    .map(|(k, v)| (k.clone(), json!(v.as_str())))
                    .collect();
                kaal.insert("env".into(), Json::Object(env));
            }
            if let Some(dir) = &command.working_dir {
                kaal.insert("working_dir".into(), json!(dir.to_string_lossy()));
            }
            if let Some(timeout) = command.timeout {
                kaal.insert("timeout".into(), json!(timeout.as_secs()));
            }
        }
    }
    kaal.insert("file_enabled".into(), json!(job.enabled));
    let mut metadata = job.metadata.clone();
    metadata.insert("kaal".into(), Json::Object(kaal));
    metadata
}

/// Rebuilds a file job from a stored `file` definition (the inverse of [`stored_metadata`]).
pub fn job_from_definition(def: &Definition) -> Result<FileJob, String> {
    let kaal = def
        .metadata
        .get("kaal")
        .and_then(Json::as_object)
        .ok_or("its metadata has no `kaal` execution details")?;
    let text = |v: &Json| {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("{v} is not a string"))
    };
    let action = if let Some(name) = kaal.get("handler") {
        JobAction::Handler(text(name)?)
    } else {
        let program = match (kaal.get("command"), kaal.get("shell")) {
            (Some(Json::Array(args)), _) if !args.is_empty() => Program::Argv(
                args.iter()
                    .map(|a| Template::parse(&text(a)?))
                    .collect::<Result<_, _>>()?,
            ),
            (_, Some(script)) => Program::Shell(Template::parse(&text(script)?)?),
            _ => return Err("its metadata has neither command nor shell nor handler".into()),
        };
        let env = match kaal.get("env").and_then(Json::as_object) {
            Some(env) => env
                .iter()
                .map(|(k, v)| Ok((k.clone(), Template::parse(&text(v)?)?)))
                .collect::<Result<_, String>>()?,
            None => Vec::new(),
        };
        JobAction::Command(CommandJob {
            key: def.key.clone(),
            program,
            env,
            working_dir: kaal
                .get("working_dir")
                .and_then(Json::as_str)
                .map(Into::into),
            timeout: kaal
                .get("timeout")
                .and_then(Json::as_u64)
                .filter(|s| *s > 0)
                .map(Duration::from_secs),
        })
    };
    let mut metadata = def.metadata.clone();
    metadata.remove("kaal");
    Ok(FileJob {
        key: def.key.clone(),
        cron: def.cron.clone(),
        enabled: def.enabled,
        action,
        metadata,
        line: 0,
    })
}
