//! `migrate`, `tick`, `enable` and `disable`.

use std::path::PathBuf;

use kaal::chrono::{DateTime, Utc};
use kaal::{load_scheduler_file, PreviewOutcome, CLAIM_TOLERANCE};

use super::context::{hint, load_config, open_store, parse_instant, Context};
use super::output::{line, utc};
use super::{Failure, PROBLEMS_FOUND};

/// `kaal migrate`: runs the embedded migrations of the configured database.
pub(crate) fn migrate(config: Option<PathBuf>) -> Result<u8, Failure> {
    let file = load_config(config)?;
    let store = open_store(&file)?;
    store.run_migrations().map_err(Failure::store)?;
    line(format!(
        "migrated the {} database {}",
        store.backend(),
        store.url()
    ))?;
    Ok(0)
}

/// How `kaal tick` was asked to run.
pub(crate) struct TickOptions<'a> {
    /// `--at`: the instant, RFC 3339.
    pub at: Option<&'a str>,
    /// `--dry-run`: print what would be claimed; claim, run and write nothing.
    pub dry_run: bool,
    /// `--force`: tick at an `--at` later than the database's now.
    pub force: bool,
}

/// `kaal tick [--at T] [--force] [--dry-run]`: applies the scheduler file and runs one tick
/// at `T` — or, with `--dry-run`, prints what that tick would do.
pub(crate) fn tick(config: Option<PathBuf>, options: TickOptions<'_>) -> Result<u8, Failure> {
    let at = options
        .at
        .map(|text| parse_instant(text, "--at"))
        .transpose()?;
    let now = at.unwrap_or_else(Utc::now);
    if options.dry_run {
        return dry_run(config, now);
    }
    let context = Context::open(config)?;
    if options.at.is_some() && !options.force {
        refuse_the_future(&context, now)?;
    }
    context.migrate_sqlite()?;
    context.apply_scheduler()?;
    // A one-shot tick is a node too: a live node with the same node_id would share its
    // claims (a node runs its own never-started claims), so it is refused.
    let registered = context
        .kaal
        .coordinator()
        .register()
        .map_err(|err| Failure::store(hint(&err.to_string())))?;
    // Without --at the tick is at the time it runs: read after the file is applied, so a job
    // the file has just defined is judged by the owed rule (nothing from before its
    // definition), not taken for a tick at an instant before it existed.
    let now = at.unwrap_or_else(Utc::now);
    let report = context.kaal.tick_at(now);
    if registered {
        context.kaal.coordinator().deregister();
    }
    for fire in &report.dispatched {
        let failure = report
            .failed
            .iter()
            .find(|(failed, _)| failed.key == fire.key && failed.fire_time == fire.fire_time)
            .map(|(_, reason)| reason);
        let token = fire
            .fencing_token
            .map(|t| format!(" (fencing token {t})"))
            .unwrap_or_default();
        match failure {
            None => line(format!(
                "dispatched {} {} {}{token}",
                fire.key,
                utc(fire.fire_time),
                fire.idempotency_key
            ))?,
            Some(reason) => line(format!(
                "failed {} {} {}: {reason}{token}",
                fire.key,
                utc(fire.fire_time),
                fire.idempotency_key
            ))?,
        }
    }
    for (key, fire_time, reason) in &report.skipped {
        line(format!("skipped {key} {}: {reason}", utc(*fire_time)))?;
    }
    for (key, fire_time) in &report.queued {
        line(format!(
            "queued {key} {}: waits for the job's running run to end (overlap: queue_one)",
            utc(*fire_time)
        ))?;
    }
    for (key, fire_time, node) in &report.abandoned {
        line(format!(
            "abandoned {key} {}: its node {node} is gone",
            utc(*fire_time)
        ))?;
    }
    for (key, fire_time, node) in &report.rerun {
        line(format!(
            "rerun {key} {}: its node {node} is gone (on_node_loss: rerun)",
            utc(*fire_time)
        ))?;
    }
    line(format!(
        "tick at {}: {} dispatched ({} failed), {} skipped, {} claimed by other nodes, {} already dispatched",
        utc(now),
        report.dispatched.len(),
        report.failed.len(),
        report.skipped.len(),
        report.lost.len(),
        report.already_dispatched.len()
    ))?;
    if !report.not_yet_due.is_empty() {
        line(format!(
            "{} fire time(s) are later than the database's clock and were not claimed (the database decides what is due; they run when due)",
            report.not_yet_due.len()
        ))?;
    }
    if let Some(error) = report.errors.first() {
        return Err(Failure::store(hint(&format!(
            "{} store error(s) during the tick, first: {error}",
            report.errors.len()
        ))));
    }
    Ok(if report.failed.is_empty() {
        0
    } else {
        PROBLEMS_FOUND
    })
}

/// The database's clock, when the store keeps one to ask.
fn database_now(context: &Context) -> Result<Option<DateTime<Utc>>, Failure> {
    context
        .kaal
        .adapter()
        .node_registry()
        .map(|nodes| nodes.database_now())
        .transpose()
        .map_err(|err| Failure::store(hint(&err.to_string())))
}

/// `--at` later than the database's now (plus the claim tolerance) is a rehearsal of the
/// future, not a tick: refused (exit 2) before anything is written, unless `--force`.
fn refuse_the_future(context: &Context, at: DateTime<Utc>) -> Result<(), Failure> {
    let Some(database_now) = database_now(context)? else {
        return Ok(());
    };
    let tolerance =
        kaal::chrono::Duration::from_std(CLAIM_TOLERANCE).unwrap_or(kaal::chrono::Duration::zero());
    if at > database_now + tolerance {
        return Err(Failure::usage(format!(
            "--at {} is later than the database's now ({}): a tick at a future instant is refused, nothing was applied or claimed; \
             use `kaal tick --dry-run --at {}` to see what it would do, or --force to tick anyway \
             (the store still refuses to commit any fire time later than its own clock)",
            utc(at),
            utc(database_now),
            utc(at)
        )));
    }
    Ok(())
}

/// `kaal tick --dry-run [--at T]`: the scheduler file's jobs (bound in this process only,
/// not stored) and the stored definitions, previewed at `T`; nothing is claimed, run or
/// written.
fn dry_run(config: Option<PathBuf>, now: DateTime<Utc>) -> Result<u8, Failure> {
    let context = Context::open_existing(config)?;
    let stored: Vec<String> = match context.kaal.adapter().definition_registry() {
        Some(store) => store
            .all_definitions(&context.file.config.namespace)
            .map_err(|err| Failure::store(hint(&err.to_string())))?
            .into_iter()
            .map(|def| def.key)
            .collect(),
        None => Vec::new(),
    };
    // The jobs this node's tick would run: its file's, bound here only (nothing is
    // stored). A stored definition decides cron and enabled state; a job not stored yet
    // runs as the file says.
    let jobs = load_scheduler_file(&context.file).map_err(Failure::usage)?;
    for job in jobs.iter().flat_map(|file| &file.jobs) {
        if job.enabled || stored.contains(&job.key) {
            let noop: kaal::Callback = std::sync::Arc::new(|_: &kaal::Fire| Ok(()));
            context
                .kaal
                .registry()
                .upsert(&job.key, &job.cron, noop)
                .map_err(Failure::usage)?;
        }
    }
    let preview = context
        .kaal
        .coordinator()
        .preview_at(now)
        .map_err(|err| Failure::store(hint(&err.to_string())))?;
    let count = |outcome| {
        preview
            .fire_times
            .iter()
            .filter(|p| p.outcome == outcome)
            .count()
    };
    for fire in &preview.fire_times {
        line(format!(
            "{} {} {}",
            fire.outcome.as_str(),
            fire.key,
            utc(fire.fire_time)
        ))?;
    }
    line(format!(
        "dry run at {}{}: {} would be claimed and run, {} already dispatched, {} not yet due; nothing was claimed, run or written",
        utc(now),
        preview
            .database_now
            .map(|db| format!(" (database now {})", utc(db)))
            .unwrap_or_default(),
        count(PreviewOutcome::WouldClaim),
        count(PreviewOutcome::AlreadyDispatched),
        count(PreviewOutcome::NotYetDue),
    ))?;
    Ok(0)
}

/// `kaal enable KEY` / `kaal disable KEY`.
pub(crate) fn set_enabled(
    config: Option<PathBuf>,
    key: &str,
    enabled: bool,
) -> Result<u8, Failure> {
    let context = Context::open_existing(config)?;
    if let Some(store) = context.kaal.adapter().definition_registry() {
        let stored = store
            .find_definition(&context.kaal.config().namespace, key)
            .map_err(|err| Failure::store(hint(&err.to_string())))?;
        if stored.as_ref().is_some_and(kaal::is_removed) {
            return Err(Failure::usage(format!(
                "job {key:?} was removed by `kaal apply` (its scheduler file no longer has it); to run it again, add it back to the scheduler file and run `kaal apply`"
            )));
        }
    }
    let result = if enabled {
        context.kaal.enable(key)
    } else {
        context.kaal.disable(key)
    };
    match result.map_err(|err| Failure::store(hint(&err.to_string())))? {
        Some(def) => {
            line(format!(
                "{} {} ({} job, cron {:?}) on every node",
                if enabled { "enabled" } else { "disabled" },
                def.key,
                def.source,
                def.cron
            ))?;
            Ok(0)
        }
        None => {
            let known = context
                .kaal
                .adapter()
                .definition_registry()
                .and_then(|store| store.all_definitions(&context.kaal.config().namespace).ok())
                .unwrap_or_default()
                .into_iter()
                .map(|d| d.key)
                .collect::<Vec<_>>();
            Err(Failure::usage(if known.is_empty() {
                format!("no stored job {key:?}: the database has no job definitions yet (run `kaal apply`, `kaal start` or `kaal tick` to store the scheduler file's jobs)")
            } else {
                format!("no stored job {key:?}; stored jobs: {}", known.join(", "))
            }))
        }
    }
}
