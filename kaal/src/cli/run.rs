//! `migrate`, `tick`, `enable` and `disable`.

use std::path::PathBuf;

use kaal::chrono::Utc;

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

/// `kaal tick [--at T]`: applies the scheduler file and runs one tick at `T`.
pub(crate) fn tick(config: Option<PathBuf>, at: Option<&str>) -> Result<u8, Failure> {
    let now = match at {
        Some(text) => parse_instant(text, "--at")?,
        None => Utc::now(),
    };
    let context = Context::open(config)?;
    context.migrate_sqlite()?;
    context.apply_scheduler()?;
    // A one-shot tick is a node too: a live node with the same node_id would share its
    // claims (a node runs its own never-started claims), so it is refused.
    let registered = context
        .kaal
        .coordinator()
        .register()
        .map_err(|err| Failure::store(hint(&err.to_string())))?;
    let report = context.kaal.tick_at(now);
    if registered {
        context.kaal.coordinator().deregister();
    }
    for fire in &report.dispatched {
        let failure = report
            .failed
            .iter()
            .find(|(failed, _)| failed == fire)
            .map(|(_, reason)| reason);
        match failure {
            None => line(format!(
                "dispatched {} {} {}",
                fire.key,
                utc(fire.fire_time),
                fire.idempotency_key
            ))?,
            Some(reason) => line(format!(
                "failed {} {} {}: {reason}",
                fire.key,
                utc(fire.fire_time),
                fire.idempotency_key
            ))?,
        }
    }
    line(format!(
        "tick at {}: {} dispatched ({} failed), {} claimed by other nodes, {} already dispatched",
        utc(now),
        report.dispatched.len(),
        report.failed.len(),
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

/// `kaal enable KEY` / `kaal disable KEY`.
pub(crate) fn set_enabled(
    config: Option<PathBuf>,
    key: &str,
    enabled: bool,
) -> Result<u8, Failure> {
    let context = Context::open(config)?;
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
                format!("no stored job {key:?}: the database has no job definitions yet (run `kaal start` or `kaal tick` to store the scheduler file's jobs)")
            } else {
                format!("no stored job {key:?}; stored jobs: {}", known.join(", "))
            }))
        }
    }
}
