//! `kaal apply [--dry-run] [--force]` and `kaal diff`: the explicit, atomic way to change the
//! stored jobs (see [`kaal::apply`]).

use std::path::PathBuf;

use kaal::{commit_scheduler_file, load_scheduler_file, plan_scheduler_file, ApplyError, FilePlan};

use super::context::{hint, Context};
use super::output::line;
use super::Failure;

/// How `kaal apply` was asked to run.
pub(crate) struct ApplyOptions {
    /// `--dry-run` (and `kaal diff`): print the difference, write nothing.
    pub dry_run: bool,
    /// `--force`: apply a file that defines no jobs or removes every stored job.
    pub force: bool,
}

/// Prints the difference between the scheduler file and the database and, unless a dry
/// run, applies it in one transaction.
pub(crate) fn run(config: Option<PathBuf>, options: ApplyOptions) -> Result<u8, Failure> {
    let context = if options.dry_run {
        Context::open_existing(config)?
    } else {
        let context = Context::open(config)?;
        context.migrate_sqlite()?;
        context
    };
    let failure = |err: ApplyError| match err {
        ApplyError::Store(_) | ApplyError::Busy(_) => Failure::store(hint(&err.to_string())),
        _ => Failure::usage(err),
    };
    let path = &context.file.scheduler_config_path;
    let Some(file) = load_scheduler_file(&context.file).map_err(failure)? else {
        return Err(Failure::usage(format!(
            "scheduler file {} not found: nothing to apply (create it with `kaal init` or set scheduler_config_path)",
            path.display()
        )));
    };
    let namespace = &context.kaal.config().namespace;
    line(format!(
        "scheduler file {} ({} job(s), environment {}) against {} {} (namespace {namespace}):",
        path.display(),
        file.jobs.len(),
        context.file.environment,
        context.store.backend(),
        context.store.url()
    ))?;
    if options.dry_run {
        let plan = plan_scheduler_file(&context.kaal, &file).map_err(failure)?;
        print_plan(&plan)?;
        if let Some(refusal) = plan.refusal(&file) {
            line(format!("`kaal apply` would refuse it: {refusal}"))?;
        }
        line(if plan.is_empty() {
            "dry run: nothing to write".to_string()
        } else {
            format!(
                "dry run: nothing written; `kaal apply` makes these changes in one transaction ({})",
                plan.summary()
            )
        })?;
        return Ok(0);
    }
    let plan = commit_scheduler_file(&context.kaal, &file, options.force).map_err(failure)?;
    print_plan(&plan)?;
    line(if plan.is_empty() {
        "nothing to apply: the database holds this file".to_string()
    } else {
        format!("applied in one transaction: {}", plan.summary())
    })?;
    Ok(0)
}

fn print_plan(plan: &FilePlan) -> Result<(), Failure> {
    for text in plan.lines() {
        line(format!("  {text}"))?;
    }
    if !plan.unchanged.is_empty() {
        line(format!("  unchanged: {}", plan.unchanged.join(", ")))?;
    }
    Ok(())
}
