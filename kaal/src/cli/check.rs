//! `kaal check`: both files validated without a database, for CI pipelines.

use std::path::PathBuf;

use kaal::{ConfigFile, DatabaseKind, FileProblem, MissingFilePolicy, SchedulerFile};

use super::context::{config_path, environment, missing_environment};
use super::output::line;
use super::Failure;

/// Checks the configuration file and the scheduler file it names: every problem of both on
/// its own line (`file:line: message`) and exit 2, or a one-line summary and exit 0. No
/// database is opened, so `database_url` may name a server this machine cannot reach.
pub(crate) fn run(config: Option<PathBuf>) -> Result<u8, Failure> {
    let path = config_path(config);
    let environment = environment();
    let check = ConfigFile::check(&path, &environment);
    let mut problems: Vec<FileProblem> = check.problems;
    if let Some(file) = &check.file {
        if let Some(message) = missing_environment(file) {
            problems.push(whole(&path, message));
        }
        if !file.database_url.trim().is_empty() {
            if let Err(err) = DatabaseKind::from_url(&file.database_url) {
                problems.push(whole(&path, format!("database_url: {err}")));
            }
        }
    }
    let scheduler = &check.scheduler_config_path;
    let jobs = match SchedulerFile::load(scheduler, &environment, &check.namespace) {
        Ok(Some(file)) => Some(file.jobs.len()),
        Ok(None) => {
            let policy = check.file.as_ref().map(|f| f.scheduler_missing_file_policy);
            if policy == Some(MissingFilePolicy::Error) {
                problems.push(whole(
                    scheduler,
                    "scheduler file not found (scheduler_missing_file_policy is error)".into(),
                ));
            }
            None
        }
        Err(errors) => {
            problems.extend(errors.problems);
            None
        }
    };
    if !problems.is_empty() {
        for problem in &problems {
            line(problem.to_string())?;
        }
        return Err(Failure::usage(format!(
            "{} problem(s) in {}{}",
            problems.len(),
            path.display(),
            if scheduler.exists() {
                format!(" and {}", scheduler.display())
            } else {
                String::new()
            }
        )));
    }
    match jobs {
        Some(count) => line(format!(
            "config ok: {count} job{} in {} (configuration {}, environment {environment})",
            if count == 1 { "" } else { "s" },
            scheduler.display(),
            path.display(),
        ))?,
        None => line(format!(
            "config ok: 0 jobs ({} with no scheduler file: {} not found, environment {environment})",
            path.display(),
            scheduler.display()
        ))?,
    }
    Ok(0)
}

fn whole(path: &std::path::Path, message: String) -> FileProblem {
    FileProblem {
        path: path.to_path_buf(),
        line: None,
        message,
    }
}
