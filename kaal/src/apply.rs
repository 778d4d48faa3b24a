//! Scheduler files and the database: what a node's file changes, and who changes it.
//!
//! # Deploy-safe: a node never rewrites stored jobs because its own file differs
//!
//! During a rolling deploy, nodes run different versions of the scheduler file at once; a
//! node restarted in a crash loop may still have last week's. If every node wrote its file
//! into the database at start (last writer wins), an older file would delete the jobs a
//! newer one added, put back crons the newer one changed, and lose an operator's `disable`.
//! So the database holds the **applied** file, and changing it is one explicit act:
//!
//! * [`commit_scheduler_file`] (`kaal apply`) computes the difference between the file and
//!   the stored definitions ([`plan_scheduler_file`], `kaal apply --dry-run` / `kaal diff`
//!   prints it: added / changed / removed / operator-disabled kept) and writes all of it in
//!   **one transaction** ([`kaal_core::DefinitionRegistry::apply_definitions`]): a database error or a
//!   cut connection part-way leaves the definitions exactly as they were. Each write is a
//!   compare-and-set against what the plan read, so an operator's `disable` or another
//!   apply that lands in between is never overwritten unseen: the plan is recomputed. A
//!   file that defines no jobs, or that would remove every stored job, is refused unless
//!   forced — an empty or truncated file is a deploy accident far more often than an
//!   intent.
//! * [`apply_scheduler_file`] (`kaal start`, `kaal tick`, library processes at start-up)
//!   **adds new keys only**: a job the database has never held is inserted (so deploying a
//!   file with a new job needs no extra step, and a fresh database fills itself), and
//!   nothing stored is changed or deleted. Every difference between the node's file and the
//!   database is reported (a warning per job, the [`ApplyReport`], `kaal status`), and the
//!   node runs what the database holds for the jobs it can run.
//!
//! # What a node runs
//!
//! The stored definition decides cron and enabled state on every node. The command comes
//! from the node's **own** file, never from the database (whoever can write one row to
//! `kaal_definitions` would otherwise run a shell command on every node), so a node binds a
//! file job only when the stored command (with `env`, `working_dir`, `timeout`) is the one
//! in its file. A job whose stored command differs is left to the nodes whose file matches
//! — during a deploy that changes a command, old nodes run the old command until the new
//! file is applied, new nodes the new one after; never both for one fire time, since every
//! fire time is claimed once. A running node re-checks this every few seconds
//! ([`rebind_scheduler_file`], called by `kaal start`): once another node's `kaal apply`
//! changes a job's command away from its file, or removes the job, it stops running it, and
//! it runs the job again when the database holds its command again.
//!
//! A job's `policy:` is the database's too, like its cron: every node applies the stored
//! policy ([`Definition::policy`](kaal_core::Definition::policy)), a node whose file has
//! another one still runs the job and warns (`policy {…} → {…}` in the differences), and
//! `kaal apply` writes the file's. Policies are printed in full: they hold no secrets.
//!
//! # Removed jobs are remembered
//!
//! `kaal apply` does not delete the definition of a job the file no longer has: it keeps it
//! disabled, marked removed (`"removed": true` in its `kaal` metadata; the dispatch log stays
//! too). A node restarted with an older file that still has the job therefore does not add
//! it back as a "new" key; `kaal status` lists it as removed, `kaal enable` refuses it, and
//! applying a file that has it again restores it (its schedule starts at that apply:
//! nothing from the removed period is owed).
//!
//! # Operator state survives every apply
//!
//! `kaal enable` / `kaal disable` are kept across applies of the same file; only when the
//! file's own `enabled:` value changes does the file's value win. Jobs an operator disabled
//! that the file still enables are listed as "kept disabled".
//!
//! # Conflicts with code definitions
//!
//! A job whose key is stored as a `code` definition (registered by a library process)
//! follows `scheduler_conflict_policy`: `error` fails the plan before anything is written,
//! naming every such job with its line; `code_wins` keeps the code's and this process does
//! not bind the job; `file_wins` replaces the code definition — at `kaal apply`, like every
//! other change of a stored definition.
//!
//! Every step reads and writes only the definitions of the node's namespace, so
//! applications with their own namespaces share a database and a key without touching each
//! other's jobs.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value as Json};

use kaal_core::{
    BatchOutcome, Callback, ConflictPolicy, Definition, DefinitionSource, DefinitionWrite, Fire,
    JobError, Kaal, NewDefinition, RegistrationError, RegistryError,
};

use crate::files::config_file::{ConfigFile, MissingFilePolicy};
use crate::files::problems::{FileErrors, FileProblem};
use crate::files::scheduler_file::SchedulerFile;
use crate::files::scheduler_job::{FileJob, JobAction};
use crate::jobs::command_job::{CommandJob, Program};
use crate::jobs::placeholder::Template;

/// How many times a plan is recomputed when another writer changed a definition between
/// its read and its write.
const STALE_RETRIES: usize = 5;

/// Callbacks registered in code under the names that `handler:` jobs refer to.
///
/// ```
/// let mut handlers = kaal::Handlers::new();
/// handlers.add("weekly_summary", |fire: &kaal::Fire| {
///     log::info!("summary for {}", fire.fire_time);
///     Ok(())
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

    /// Registers `f` under `name`, replacing any earlier one. Like
    /// [`Kaal::register`](kaal_core::Kaal::register), `f` returns `Result<(), JobError>`: a
    /// plain `Ok(())`, and `?` on any error.
    pub fn add<F>(&mut self, name: &str, f: F) -> &mut Self
    where
        F: Fn(&Fire) -> Result<(), JobError> + Send + Sync + 'static,
    {
        self.map.insert(name.to_string(), Arc::new(f));
        self
    }

    /// The callback registered under `name`.
    pub fn get(&self, name: &str) -> Option<Callback> {
        self.map.get(name).cloned()
    }
}

/// The difference between a scheduler file and the stored definitions of the node's
/// namespace, by key (each list ordered by key), and the writes that apply it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FilePlan {
    /// Jobs of the file the database has never held.
    pub added: Vec<String>,
    /// Jobs `kaal apply` removed earlier that the file has again.
    pub restored: Vec<String>,
    /// Jobs stored differently from the file, with what differs (`cron "0 * * * *" →
    /// "*/5 * * * *"`, `command`, `enabled yes → no`, `policy {"overlap":"skip"} →
    /// (default)`, `metadata`...). Commands and environments are named, never printed: they
    /// may hold secrets.
    pub changed: Vec<(String, Vec<String>)>,
    /// Stored file jobs the file no longer has.
    pub removed: Vec<String>,
    /// Jobs an operator disabled that the file enables, its `enabled:` unchanged: kept
    /// disabled.
    pub kept_disabled: Vec<String>,
    /// Jobs stored exactly as the file says.
    pub unchanged: Vec<String>,
    /// Jobs left to their `code` definition (`scheduler_conflict_policy: code_wins`).
    pub kept_code: Vec<String>,
    /// `code` definitions the file replaces (`file_wins`).
    pub replaced_code: Vec<String>,
    /// The stored definitions the plan was computed from, by key.
    stored: BTreeMap<String, Definition>,
    /// What applying writes, each expecting the stored definition it was computed from.
    writes: Vec<DefinitionWrite>,
}

impl FilePlan {
    /// Whether applying would write nothing.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// One line per job that differs, for people: `+ added`, `~ changed`, `- removed`...
    pub fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for key in &self.added {
            lines.push(format!("+ add       {key}"));
        }
        for key in &self.restored {
            lines.push(format!("+ restore   {key} (removed by an earlier apply)"));
        }
        for (key, what) in &self.changed {
            lines.push(format!("~ change    {key}: {}", what.join("; ")));
        }
        for key in &self.replaced_code {
            lines.push(format!(
                "~ replace   {key}: the code definition (scheduler_conflict_policy: file_wins)"
            ));
        }
        for key in &self.removed {
            lines.push(format!(
                "- remove    {key} (kept disabled and marked removed; its dispatch log stays)"
            ));
        }
        for key in &self.kept_disabled {
            lines.push(format!("= keep      {key} disabled (by an operator)"));
        }
        for key in &self.kept_code {
            lines.push(format!(
                "= keep      {key} as registered in code (scheduler_conflict_policy: code_wins)"
            ));
        }
        lines
    }

    /// `N added, N changed, N removed, N unchanged`.
    pub fn summary(&self) -> String {
        format!(
            "{} added, {} changed, {} removed, {} unchanged",
            self.added.len() + self.restored.len(),
            self.changed.len() + self.replaced_code.len(),
            self.removed.len(),
            self.unchanged.len() + self.kept_disabled.len()
        )
    }

    /// Why applying this plan is refused without force, if it is: a file without jobs, or
    /// one that removes every stored job.
    pub fn refusal(&self, file: &SchedulerFile) -> Option<String> {
        let live: Vec<&str> = self
            .stored
            .values()
            .filter(|d| d.source == DefinitionSource::File && !is_removed(d))
            .map(|d| d.key.as_str())
            .collect();
        if file.jobs.is_empty() {
            return Some(format!(
                "{} defines no jobs{}; an empty file is refused (pass --force to apply it anyway)",
                file.path.display(),
                if live.is_empty() {
                    String::new()
                } else {
                    format!(
                        ": applying it would remove every stored job ({})",
                        live.join(", ")
                    )
                }
            ));
        }
        if !live.is_empty() && self.removed.len() == live.len() {
            return Some(format!(
                "{} would remove every stored job ({}) — is it the right file for this namespace and environment? (pass --force to apply it anyway)",
                file.path.display(),
                live.join(", ")
            ));
        }
        None
    }
}

/// What [`apply_scheduler_file`] did, by key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApplyReport {
    /// New keys stored now (the database had never held them).
    pub added: Vec<String>,
    /// Jobs bound to a callback in this process.
    pub bound: Vec<String>,
    /// `handler:` jobs with no such handler in this process.
    pub unbound: Vec<String>,
    /// Jobs left to their `code` definition (policy `code_wins`).
    pub kept_code: Vec<String>,
    /// Jobs of the file this node does not run, with the reason (the database holds another
    /// command, the job was removed by `kaal apply`...).
    pub not_run: Vec<(String, String)>,
    /// How the file differs from the database; empty when they agree. `kaal apply` would
    /// make these changes.
    pub plan: FilePlan,
}

impl ApplyReport {
    /// One warning per difference between this node's file and the database.
    pub fn differences(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for (key, what) in &self.plan.changed {
            lines.push(format!(
                "job {key:?}: this node's file differs from the database ({}); the database's definition is in force until `kaal apply`",
                what.join("; ")
            ));
        }
        for key in &self.plan.removed {
            lines.push(format!(
                "job {key:?} is stored but not in this node's file (a newer file on another node?); this node does not run it"
            ));
        }
        for (key, reason) in &self.not_run {
            lines.push(format!("job {key:?}: not run by this node: {reason}"));
        }
        lines
    }
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
    /// Applying was refused (an empty file, one that removes every job); nothing was
    /// written.
    #[error("{0}")]
    Refused(String),
    /// The store could not be read or written.
    #[error(transparent)]
    Store(#[from] RegistryError),
    /// Other writers kept changing the definitions between each read and write.
    #[error("the stored definitions kept changing while being applied ({0} was changed by another writer each time); nothing was written, try again")]
    Busy(String),
    /// A job could not be registered in this process.
    #[error(transparent)]
    Registration(#[from] RegistrationError),
}

/// Loads the scheduler file `config` names (`scheduler_config_path`) for its environment
/// and namespace, applying `scheduler_missing_file_policy`: a missing file is `Ok(None)`
/// after a warning under `warn`, and an error under `error`.
pub fn load_scheduler_file(config: &ConfigFile) -> Result<Option<SchedulerFile>, ApplyError> {
    let path = &config.scheduler_config_path;
    match SchedulerFile::load(path, &config.environment, &config.config.namespace)
        .map_err(ApplyError::File)?
    {
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

/// Whether `def` is a job `kaal apply` removed (kept disabled, marked removed).
pub fn is_removed(def: &Definition) -> bool {
    def.source == DefinitionSource::File
        && def
            .metadata
            .get("kaal")
            .and_then(|k| k.get("removed"))
            .and_then(Json::as_bool)
            == Some(true)
}

/// The definition that marks `def` removed: disabled, its metadata flagged.
fn removed_marker(def: &Definition) -> NewDefinition {
    let mut metadata = def.metadata.clone();
    let kaal = metadata
        .entry("kaal")
        .or_insert_with(|| Json::Object(Map::new()));
    if let Json::Object(kaal) = kaal {
        kaal.insert("removed".into(), json!(true));
    }
    NewDefinition {
        key: def.key.clone(),
        cron: def.cron.clone(),
        enabled: false,
        source: DefinitionSource::File,
        metadata,
    }
}

/// The difference between `file` and the stored definitions of `kaal`'s namespace; see the
/// [module docs](self). Reads the database, writes nothing. A job colliding with a `code`
/// definition under policy `error` is an [`ApplyError::Conflict`] naming every one.
pub fn plan_scheduler_file(kaal: &Kaal, file: &SchedulerFile) -> Result<FilePlan, ApplyError> {
    let Some(store) = kaal.adapter().definition_registry() else {
        return Ok(FilePlan {
            added: file.jobs.iter().map(|j| j.key.clone()).collect(),
            ..FilePlan::default()
        });
    };
    let stored: BTreeMap<String, Definition> = store
        .all_definitions(&kaal.config().namespace)?
        .into_iter()
        .map(|d| (d.key.clone(), d))
        .collect();
    plan_against(kaal.config().scheduler_conflict_policy, file, stored)
}

fn plan_against(
    policy: ConflictPolicy,
    file: &SchedulerFile,
    stored: BTreeMap<String, Definition>,
) -> Result<FilePlan, ApplyError> {
    let mut plan = FilePlan::default();
    let mut conflicts = Vec::new();
    for job in &file.jobs {
        let previous = stored.get(&job.key);
        let desired = |enabled: bool| NewDefinition {
            key: job.key.clone(),
            cron: job.cron.clone(),
            enabled,
            source: DefinitionSource::File,
            metadata: stored_metadata(job),
        };
        match previous {
            None => {
                plan.added.push(job.key.clone());
                plan.writes
                    .push(DefinitionWrite::upsert(None, desired(job.enabled)));
            }
            Some(def) if def.source == DefinitionSource::Code => match policy {
                ConflictPolicy::Error => conflicts.push(FileProblem {
                    path: file.path.clone(),
                    line: Some(job.line),
                    message: format!(
                        "job {:?} is also registered in code (stored cron {:?}) and scheduler_conflict_policy is error; \
                         set it to file_wins or code_wins, or rename one of them",
                        job.key, def.cron
                    ),
                }),
                ConflictPolicy::CodeWins => plan.kept_code.push(job.key.clone()),
                ConflictPolicy::FileWins => {
                    plan.replaced_code.push(job.key.clone());
                    plan.writes.push(DefinitionWrite::upsert(
                        Some(def.clone()),
                        desired(job.enabled),
                    ));
                }
            },
            Some(def) if is_removed(def) => {
                plan.restored.push(job.key.clone());
                plan.writes.push(DefinitionWrite::upsert(
                    Some(def.clone()),
                    desired(job.enabled),
                ));
            }
            Some(def) => {
                let file_enabled_before = def
                    .metadata
                    .get("kaal")
                    .and_then(|k| k.get("file_enabled"))
                    .and_then(Json::as_bool);
                // An operator's enable/disable stands until the file's own value changes.
                let enabled = if file_enabled_before == Some(job.enabled) {
                    def.enabled
                } else {
                    job.enabled
                };
                let want = desired(enabled);
                let what = differences(def, &want);
                if what.is_empty() {
                    if !def.enabled && job.enabled {
                        plan.kept_disabled.push(job.key.clone());
                    } else {
                        plan.unchanged.push(job.key.clone());
                    }
                } else {
                    plan.changed.push((job.key.clone(), what));
                    plan.writes
                        .push(DefinitionWrite::upsert(Some(def.clone()), want));
                }
            }
        }
    }
    if !conflicts.is_empty() {
        return Err(ApplyError::Conflict(FileErrors {
            problems: conflicts,
        }));
    }
    let keys: BTreeSet<&str> = file.jobs.iter().map(|j| j.key.as_str()).collect();
    for def in stored.values() {
        if def.source == DefinitionSource::File
            && !is_removed(def)
            && !keys.contains(def.key.as_str())
        {
            plan.removed.push(def.key.clone());
            plan.writes.push(DefinitionWrite::upsert(
                Some(def.clone()),
                removed_marker(def),
            ));
        }
    }
    plan.stored = stored;
    Ok(plan)
}

/// What differs between the stored `def` and `want`, for people (no command text).
fn differences(def: &Definition, want: &NewDefinition) -> Vec<String> {
    let mut what = Vec::new();
    if def.cron != want.cron {
        what.push(format!("cron {:?} → {:?}", def.cron, want.cron));
    }
    if def.enabled != want.enabled {
        let word = |on: bool| if on { "yes" } else { "no" };
        what.push(format!(
            "enabled {} → {} (the file's value changed)",
            word(def.enabled),
            word(want.enabled)
        ));
    }
    let (old, new) = (
        execution(&def.metadata).unwrap_or_default(),
        execution(&want.metadata).unwrap_or_default(),
    );
    let fields: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for field in fields {
        if old.get(field) != new.get(field) {
            what.push(field.clone());
        }
    }
    let (old_policy, new_policy) = (stored_policy(&def.metadata), stored_policy(&want.metadata));
    if old_policy != new_policy {
        let shown = |p: Option<&Json>| p.map_or_else(|| "(default)".to_string(), Json::to_string);
        what.push(format!(
            "policy {} → {}",
            shown(old_policy),
            shown(new_policy)
        ));
    }
    let user = |m: &Map<String, Json>| {
        let mut m = m.clone();
        m.remove("kaal");
        m
    };
    if user(&def.metadata) != user(&want.metadata) {
        what.push("metadata".into());
    }
    let file_enabled = |m: &Map<String, Json>| {
        m.get("kaal")
            .and_then(|k| k.get("file_enabled"))
            .and_then(Json::as_bool)
    };
    if what.is_empty() && file_enabled(&def.metadata) != file_enabled(&want.metadata) {
        what.push("the file's enabled value".into());
    }
    what
}

/// Applies `file` to the database in one transaction (`kaal apply`): adds, changes and
/// removes stored definitions so they are what the file says, keeping operator state; see
/// the [module docs](self). Returns the plan it applied. Refused, writing nothing, when the
/// file defines no jobs or would remove every stored job, unless `force`. Binds nothing:
/// nodes running the jobs bind them when they start.
pub fn commit_scheduler_file(
    kaal: &Kaal,
    file: &SchedulerFile,
    force: bool,
) -> Result<FilePlan, ApplyError> {
    let Some(store) = kaal.adapter().definition_registry() else {
        return plan_scheduler_file(kaal, file);
    };
    let namespace = kaal.config().namespace.as_str();
    let mut stale = String::new();
    for _ in 0..STALE_RETRIES {
        let plan = plan_scheduler_file(kaal, file)?;
        if !force {
            if let Some(refusal) = plan.refusal(file) {
                return Err(ApplyError::Refused(refusal));
            }
        }
        if plan.is_empty() {
            return Ok(plan);
        }
        match store.apply_definitions(namespace, &plan.writes)? {
            BatchOutcome::Applied => {
                for line in plan.lines() {
                    log::info!("applied {}: {line}", file.path.display());
                }
                return Ok(plan);
            }
            BatchOutcome::Stale(key) => stale = key,
        }
    }
    Err(ApplyError::Busy(stale))
}

/// Brings `file` into this process at start-up (`kaal start`, `kaal tick`): stores the jobs
/// the database has never held — nothing stored is changed or deleted — and binds each job
/// whose stored command is the file's; reports every difference (a warning per job, and
/// [`ApplyReport::plan`]). See the [module docs](self).
pub fn apply_scheduler_file(
    kaal: &Kaal,
    file: &SchedulerFile,
    handlers: &Handlers,
) -> Result<ApplyReport, ApplyError> {
    let mut report = ApplyReport::default();
    let mut plan = plan_scheduler_file(kaal, file)?;
    if let Some(store) = kaal.adapter().definition_registry() {
        let namespace = kaal.config().namespace.as_str();
        let mut attempts = 0;
        loop {
            let new: Vec<DefinitionWrite> = plan
                .writes
                .iter()
                .filter(|w| w.expected.is_none())
                .cloned()
                .collect();
            if new.is_empty() {
                break;
            }
            match store.apply_definitions(namespace, &new)? {
                BatchOutcome::Applied => {
                    report.added = new.into_iter().map(|w| w.key).collect();
                    plan = plan_scheduler_file(kaal, file)?;
                    break;
                }
                // Another node stored some of them first: read again.
                BatchOutcome::Stale(key) => {
                    attempts += 1;
                    if attempts >= STALE_RETRIES {
                        return Err(ApplyError::Busy(key));
                    }
                    plan = plan_scheduler_file(kaal, file)?;
                }
            }
        }
        for job in &file.jobs {
            match runnable(&plan, job) {
                Runnable::Yes => bind(kaal, job, handlers, &mut report)?,
                Runnable::No(reason) => report.not_run.push((job.key.clone(), reason)),
                Runnable::Elsewhere => {}
            }
        }
    } else {
        for job in &file.jobs {
            bind(kaal, job, handlers, &mut report)?;
        }
    }
    report.kept_code = plan.kept_code.clone();
    report.plan = plan;
    for warning in report.differences() {
        log::warn!("{warning}");
    }
    Ok(report)
}

/// Whether this node runs a file job, by the rules of the [module docs](self).
enum Runnable {
    /// The stored definition is the file's job (cron and enabled state may differ: the
    /// database's are in force).
    Yes,
    /// Not here, for this reason.
    No(String),
    /// Left to its code definition (`code_wins`), or not stored at all: not this file's to
    /// run or report.
    Elsewhere,
}

fn runnable(plan: &FilePlan, job: &FileJob) -> Runnable {
    let Some(def) = plan.stored.get(&job.key) else {
        return Runnable::Elsewhere;
    };
    if plan.kept_code.contains(&job.key) {
        Runnable::Elsewhere
    } else if def.source == DefinitionSource::Code {
        Runnable::No("it is registered in code; `kaal apply` replaces it (scheduler_conflict_policy: file_wins)".into())
    } else if is_removed(def) {
        Runnable::No("`kaal apply` removed it; apply a file that has it to add it back".into())
    } else if execution(&def.metadata) != execution(&stored_metadata(job)) {
        Runnable::No("the database holds another command for it (an edited file, or another node's newer or older one); nodes run only their own file's commands, so nodes whose file matches run it".into())
    } else {
        Runnable::Yes
    }
}

/// What [`rebind_scheduler_file`] changed in this process, by key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rebound {
    /// Jobs this process now runs (restored, or their stored command is this file's again).
    pub bound: Vec<String>,
    /// Jobs this process stopped running (removed, or their stored command changed).
    pub unbound: Vec<String>,
}

/// Brings a running process in line with the database after someone else applied a file:
/// binds the jobs of `file` (this process's file, as loaded at start) that it can now run
/// and unbinds those it no longer can — a job `kaal apply` removed, or whose command it
/// changed to one this file does not have. Writes nothing. `kaal start` calls it every few
/// seconds, so a node that has not been redeployed stops running an old command shortly
/// after the new one is applied (a fire time it claimed before it noticed still runs the
/// old one, once).
pub fn rebind_scheduler_file(
    kaal: &Kaal,
    file: &SchedulerFile,
    handlers: &Handlers,
) -> Result<Rebound, ApplyError> {
    let plan = plan_scheduler_file(kaal, file)?;
    let mut rebound = Rebound::default();
    for job in &file.jobs {
        let bound = kaal.registry().is_registered(&job.key);
        match runnable(&plan, job) {
            Runnable::Yes if !bound => {
                let mut report = ApplyReport::default();
                bind(kaal, job, handlers, &mut report)?;
                if !report.bound.is_empty() {
                    log::info!(
                        "job {:?}: the database now holds this node's command; running it",
                        job.key
                    );
                    rebound.bound.push(job.key.clone());
                }
            }
            Runnable::No(reason) if bound => {
                kaal.registry().remove(&job.key);
                log::warn!("job {:?}: no longer run by this node: {reason}", job.key);
                rebound.unbound.push(job.key.clone());
            }
            _ => {}
        }
    }
    Ok(rebound)
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
        if def.source != DefinitionSource::File || is_removed(&def) {
            continue;
        }
        match job_from_definition(&def) {
            Ok(job) if matches!(job.action, JobAction::Handler(_)) => {
                bind(kaal, &job, handlers, &mut report)?;
            }
            Ok(_) => log::warn!(
                "not running stored job {:?}: its command is not in this node's scheduler file (which is missing), and a node runs only the commands of its own file",
                def.key
            ),
            Err(message) => log::warn!("not running stored job {:?}: {message}", def.key),
        }
    }
    Ok(report)
}

/// The execution details of stored metadata (its `kaal` object without `file_enabled` and
/// `policy`), to compare a stored command with the file's.
fn execution(metadata: &Map<String, Json>) -> Option<Map<String, Json>> {
    let mut kaal = metadata.get("kaal")?.as_object()?.clone();
    kaal.remove("file_enabled");
    kaal.remove("policy");
    Some(kaal)
}

/// The stored policy object of metadata, as written (`None`: the default policy).
fn stored_policy(metadata: &Map<String, Json>) -> Option<&Json> {
    metadata.get("kaal")?.get("policy")
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

/// The metadata stored for `job`: its `metadata:` plus the `kaal` execution details and,
/// unless it is the default, its `policy:` (under `kaal.policy`, see
/// [`JobPolicy::write_metadata`](kaal_core::JobPolicy::write_metadata)).
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
    job.policy.write_metadata(&mut metadata);
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
    let policy = def.policy().map_err(|err| err.to_string())?;
    let mut metadata = def.metadata.clone();
    metadata.remove("kaal");
    Ok(FileJob {
        key: def.key.clone(),
        cron: def.cron.clone(),
        enabled: def.enabled,
        action,
        policy,
        metadata,
        line: 0,
    })
}
