//! `kaal start`: the long-running scheduler.

use std::path::PathBuf;
use std::time::Duration;

use kaal::chrono::Utc;
use kaal::cron::CronExpr;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::context::Context;
use super::output::{line, table, zoned};
use super::Failure;

/// How often a stopping node checks for a second signal while the current tick finishes.
const STOP_POLL: Duration = Duration::from_millis(100);

/// Applies the scheduler file, prints the start-up summary, runs recovery and the loop until
/// SIGTERM or SIGINT, then finishes the current tick and returns 0. A second signal while
/// waiting for the tick exits at once with 130.
pub(crate) fn run(config: Option<PathBuf>) -> Result<u8, Failure> {
    // Registered first, so a signal during start-up is not lost: it stops the node as soon
    // as the loop runs.
    let mut signals = Signals::new([SIGTERM, SIGINT]).map_err(|err| {
        Failure::store(format!("cannot install the SIGTERM/SIGINT handler: {err}"))
    })?;
    let context = Context::open(config)?;
    context.migrate_sqlite()?;
    let (scheduler, report) = context.apply_scheduler()?;
    summary(
        &context,
        scheduler.map(|p| p.display().to_string()),
        &report,
    );

    if !context.kaal.start() {
        return Err(Failure::store("the scheduler loop could not be started"));
    }
    let signal = signals.forever().next().unwrap_or(SIGTERM);
    log::info!(
        "received {}; finishing the current tick",
        if signal == SIGINT {
            "SIGINT"
        } else {
            "SIGTERM"
        }
    );
    loop {
        if context.kaal.stop(STOP_POLL) {
            break;
        }
        if signals.pending().next().is_some() {
            log::warn!("second signal: exiting without waiting for the current tick");
            return Ok(130);
        }
    }
    log::info!("stopped");
    Ok(0)
}

fn summary(context: &Context, scheduler: Option<String>, report: &kaal::ApplyReport) {
    let c = &context.file.config;
    line(format!(
        "kaal {} starting: {} {} (lock strategy {}), node {}, environment {}",
        env!("CARGO_PKG_VERSION"),
        context.store.backend(),
        context.store.url(),
        context.file.lock_strategy,
        c.node_id,
        context.file.environment
    ));
    match scheduler {
        Some(path) => line(format!(
            "scheduler file {path}: {} job(s) stored, {} removed, {} left to code",
            report.stored.len(),
            report.removed.len(),
            report.kept_code.len()
        )),
        None => line(format!(
            "scheduler file {} missing: running the stored file jobs",
            c.scheduler_config_path.display()
        )),
    }
    let tz = context.tz();
    let now = Utc::now();
    let stored = context
        .kaal
        .adapter()
        .definition_registry()
        .and_then(|store| store.all_definitions().ok())
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
        line("no jobs to run in this process");
    } else {
        table(&["JOB", "CRON", "NEXT FIRE TIME"], &rows);
    }
    if !report.unbound.is_empty() {
        line(format!(
            "handler jobs run by library processes, not here: {}",
            report.unbound.join(", ")
        ));
    }
    line(format!(
        "ticking every {} s; SIGTERM or Ctrl-C stops after the current tick",
        c.tick_interval.as_secs()
    ));
}
