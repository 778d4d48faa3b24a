//! `kaal start`: the long-running scheduler.
//!
//! Signals: the first SIGTERM, SIGINT or SIGHUP stops claiming at once and waits for the
//! running jobs up to `shutdown_grace`; the jobs still running then have their process
//! groups terminated (SIGTERM, then SIGKILL after [`KILL_GRACE`]) and are recorded, and kaal
//! exits 0. SIGHUP is a stop until reloading exists. A second signal while stopping does the
//! same at once and exits 130. No job process outlives kaal. Fire times are never held
//! unstarted (the loop claims only what it can start), so other nodes run the next ones.

use std::path::PathBuf;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use kaal::chrono::Utc;
use kaal::command_job::kill_running_jobs;
use kaal::cron::CronExpr;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::context::{hint, Context};
use super::output::{line, table, zoned};
use super::Failure;

/// How often a stopping node checks for a second signal while its jobs finish.
const STOP_POLL: Duration = Duration::from_millis(100);

/// How long a job gets between SIGTERM and SIGKILL after a second signal.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// How often a running node compares its scheduler file with the database, to stop running
/// a job whose command another node's `kaal apply` changed (and to run one restored).
const REBIND_EVERY: Duration = Duration::from_secs(10);

/// How long a node that killed its jobs waits for their outcomes to be recorded.
const RECORD_GRACE: Duration = Duration::from_secs(2);

/// Applies the scheduler file, prints the start-up summary, runs recovery and the loop until
/// SIGTERM, SIGINT or SIGHUP, then finishes the current tick and returns 0. A second signal
/// while waiting for the tick kills the running job and returns 130.
pub(crate) fn run(config: Option<PathBuf>) -> Result<u8, Failure> {
    // Registered first, so a signal during start-up is not lost: it stops the node as soon
    // as the loop runs. SIGHUP is caught too: left to its default it would kill kaal and
    // orphan the running job.
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP]).map_err(|err| {
        Failure::store(format!(
            "cannot install the SIGTERM/SIGINT/SIGHUP handler: {err}"
        ))
    })?;
    let context = Context::open(config)?;
    context.migrate_sqlite()?;
    let (scheduler, report) = context.apply_scheduler()?;
    if let Err(failure) = summary(
        &context,
        scheduler.as_ref().map(|f| f.path.display().to_string()),
        &report,
    ) {
        // The summary is for a reader; the scheduler runs without one.
        log::warn!(
            "the start-up summary was not written: {}; running on",
            failure
                .message
                .as_deref()
                .unwrap_or("standard output is closed")
        );
    }

    if let Err(err) = context.kaal.coordinator().try_start() {
        return Err(Failure::store(hint(&err.to_string())));
    }
    let (stop_rebinding, stopped) = mpsc::channel::<()>();
    let code = thread::scope(|scope| {
        if let Some(file) = &scheduler {
            let kaal = &context.kaal;
            scope.spawn(move || rebind_until_stopped(kaal, file, &stopped));
        }
        let code = wait_for_signals(&context, &mut signals);
        drop(stop_rebinding);
        code
    });
    Ok(code)
}

/// Every [`REBIND_EVERY`] until `stopped` closes: binds and unbinds this node's file jobs as
/// the database changes under it (another node's `kaal apply`), see
/// [`kaal::rebind_scheduler_file`].
fn rebind_until_stopped(
    kaal: &kaal::Kaal,
    file: &kaal::SchedulerFile,
    stopped: &mpsc::Receiver<()>,
) {
    let handlers = kaal::Handlers::new();
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(REBIND_EVERY) {
        if let Err(err) = kaal::rebind_scheduler_file(kaal, file, &handlers) {
            log::warn!("could not compare the scheduler file with the database: {err}");
        }
    }
}

/// Waits for the first signal, then for the running jobs up to `shutdown_grace`; returns
/// the exit code.
fn wait_for_signals(context: &Context, signals: &mut Signals) -> u8 {
    let signal = signals.forever().next().unwrap_or(SIGTERM);
    let grace = context.kaal.config().shutdown_grace;
    let running = context.kaal.coordinator().active_runs();
    if signal == SIGHUP {
        log::info!(
            "received SIGHUP; reloading is not supported yet, so it is treated as a stop: \
             claiming stopped, waiting up to {} s for {running} running job(s)",
            grace.as_secs()
        );
    } else {
        log::info!(
            "received {}; claiming stopped, waiting up to {} s for {running} running job(s)",
            name(signal),
            grace.as_secs()
        );
    }
    let began = std::time::Instant::now();
    loop {
        if context.kaal.stop(STOP_POLL) {
            log::info!("stopped");
            return 0;
        }
        if let Some(second) = signals.pending().next() {
            log::warn!(
                "second signal ({}) while stopping: killing the running jobs and exiting",
                name(second)
            );
            kill_and_record(context);
            return 130;
        }
        if began.elapsed() >= grace {
            log::warn!(
                "shutdown_grace ({} s) is over with {} job(s) still running: killing them",
                grace.as_secs(),
                context.kaal.coordinator().active_runs()
            );
            kill_and_record(context);
            return 0;
        }
    }
}

/// Terminates the running jobs' process groups and waits a moment for their outcomes to be
/// recorded.
fn kill_and_record(context: &Context) {
    kill_running_jobs(KILL_GRACE);
    if context.kaal.stop(RECORD_GRACE) {
        log::info!("stopped");
    } else {
        log::warn!("stopped with runs unrecorded (a callback that does not return)");
    }
}

fn name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "SIGINT",
        SIGHUP => "SIGHUP",
        _ => "SIGTERM",
    }
}

fn summary(
    context: &Context,
    scheduler: Option<String>,
    report: &kaal::ApplyReport,
) -> Result<(), Failure> {
    let c = &context.file.config;
    line(format!(
        "kaal {} starting: {} {} (lock strategy {}), node {}, environment {}",
        env!("CARGO_PKG_VERSION"),
        context.store.backend(),
        context.store.url(),
        context.file.lock_strategy,
        c.node_id,
        context.file.environment
    ))?;
    match scheduler {
        Some(path) => {
            line(format!(
                "scheduler file {path}: {} new job(s) stored, {} bound here, {} left to code",
                report.added.len(),
                report.bound.len(),
                report.kept_code.len()
            ))?;
            let differences = report.differences();
            if !differences.is_empty() {
                line(format!(
                    "this node's file differs from the database in {} job(s) (`kaal diff` shows them, `kaal apply` applies the file):",
                    report.plan.changed.len() + report.plan.removed.len() + report.not_run.len()
                ))?;
                for difference in differences {
                    line(format!("  {difference}"))?;
                }
            }
        }
        None => line(format!(
            "scheduler file {} missing: no commands to run (only stored handler jobs)",
            context.file.scheduler_config_path.display()
        ))?,
    }
    let tz = context.tz();
    let now = Utc::now();
    let stored = context
        .kaal
        .adapter()
        .definition_registry()
        .and_then(|store| store.all_definitions(&context.kaal.config().namespace).ok())
        .unwrap_or_default();
    let rows: Vec<Vec<String>> = context
        .kaal
        .registry()
        .entries()
        .into_iter()
        .map(|entry| {
            let def = stored.iter().find(|d| d.key == entry.key);
            let enabled = def.is_none_or(|d| d.enabled);
            let cron = def.map_or_else(|| entry.cron.as_str().to_string(), |d| d.cron.clone());
            let next = match CronExpr::parse(&cron) {
                Ok(expr) if enabled => expr
                    .next_after(now, tz)
                    .map_or_else(|| "never".to_string(), |t| zoned(t, tz)),
                Ok(_) => "disabled".to_string(),
                Err(_) => "invalid cron".to_string(),
            };
            vec![entry.key, cron, next]
        })
        .collect();
    if rows.is_empty() {
        line("no jobs to run in this process")?;
    } else {
        table(&["JOB", "CRON", "NEXT FIRE TIME"], &rows)?;
    }
    if !report.unbound.is_empty() {
        line(format!(
            "handler jobs run by library processes, not here: {}",
            report.unbound.join(", ")
        ))?;
    }
    line(format!(
        "ticking every {} s; SIGTERM, SIGHUP or Ctrl-C stops after the current tick",
        c.tick_interval.as_secs()
    ))
}
