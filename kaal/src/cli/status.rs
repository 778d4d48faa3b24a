//! `kaal status`: the configuration and the stored definitions.

use std::path::PathBuf;

use kaal::chrono::Utc;
use kaal::cron::CronExpr;
use kaal::{load_scheduler_file, plan_scheduler_file, ApplyError};

use super::context::{hint, records_of, Context};
use super::output::{line, table, zoned};
use super::Failure;

/// Prints the configuration summary and a table of the stored definitions.
pub(crate) fn run(config: Option<PathBuf>) -> Result<u8, Failure> {
    let context = Context::open_existing(config)?;
    let file = &context.file;
    let c = &file.config;
    let tz = context.tz();
    let scheduler = &file.scheduler_config_path;
    line(format!(
        "configuration: {} (environment {})",
        file.path.display(),
        file.environment
    ))?;
    line(format!(
        "database:      {} {} (lock strategy {})",
        context.store.backend(),
        context.store.url(),
        file.lock_strategy
    ))?;
    line(format!(
        "node:          {} (namespace {}, time zone {})",
        c.node_id, c.namespace, c.time_zone
    ))?;
    line(format!(
        "ticks:         every {} s, lookback {} s, lease {} s, recovery {} ({} s window)",
        c.tick_interval.as_secs(),
        c.window_lookback.as_secs(),
        c.lease_ttl.as_secs(),
        if c.enable_dispatch_recovery {
            "on"
        } else {
            "off"
        },
        c.recovery_window.as_secs()
    ))?;
    line(format!(
        "scheduler:     {} ({}; conflicts: {}, missing file: {})",
        scheduler.display(),
        if scheduler.exists() {
            "found"
        } else {
            "missing"
        },
        c.scheduler_conflict_policy,
        file.scheduler_missing_file_policy
    ))?;
    let Some(store) = context.kaal.adapter().definition_registry() else {
        line("this store keeps no job definitions")?;
        return Ok(0);
    };
    let definitions = store
        .all_definitions(&context.kaal.config().namespace)
        .map_err(|err| Failure::store(hint(&err.to_string())))?;
    line("")?;
    if definitions.is_empty() {
        line(
            "no stored jobs (the scheduler file's jobs are stored by `kaal apply`, `kaal start` and `kaal tick`)",
        )?;
        return file_versus_database(&context);
    }
    let now = Utc::now();
    let log = context.kaal.adapter().dispatch_registry();
    let mut rows = Vec::new();
    for def in &definitions {
        let parsed = CronExpr::parse(&def.cron);
        let (human, next) = match &parsed {
            Ok(expr) => (
                expr.to_human(),
                if def.enabled {
                    expr.next_after(now, tz)
                        .map_or_else(|| "never".to_string(), |t| zoned(t, tz))
                } else {
                    "-".to_string()
                },
            ),
            Err(err) => (
                format!("invalid: {}", err.problems.join("; ")),
                "-".to_string(),
            ),
        };
        let last = match log.map(|log| records_of(log, &c.namespace, &def.key)) {
            Some(Ok(records)) => records.first().map_or_else(
                || "never".to_string(),
                |r| format!("{} {} by {}", zoned(r.fire_time, tz), r.status, r.node_id),
            ),
            Some(Err(err)) => return Err(Failure::store(hint(&err.to_string()))),
            None => "-".to_string(),
        };
        rows.push(vec![
            def.key.clone(),
            def.cron.clone(),
            human,
            if kaal::is_removed(def) {
                "removed"
            } else if def.enabled {
                "yes"
            } else {
                "no"
            }
            .to_string(),
            def.source.to_string(),
            next,
            last,
        ]);
    }
    table(
        &[
            "KEY",
            "CRON",
            "DESCRIPTION",
            "ENABLED",
            "SOURCE",
            "NEXT FIRE TIME",
            "LAST DISPATCH",
        ],
        &rows,
    )?;
    file_versus_database(&context)
}

/// How this node's scheduler file differs from the stored definitions: what `kaal apply`
/// would change, and what this node would not run. A file that cannot be read is reported,
/// not fatal: `status` is for finding out what is wrong.
fn file_versus_database(context: &Context) -> Result<u8, Failure> {
    let path = &context.file.scheduler_config_path;
    line("")?;
    let file = match load_scheduler_file(&context.file) {
        Ok(Some(file)) => file,
        Ok(None) => {
            line(format!(
                "this node's scheduler file {} is missing",
                path.display()
            ))?;
            return Ok(0);
        }
        Err(err) => {
            line(format!(
                "this node's scheduler file cannot be used: {}",
                err.to_string().replace('\n', " ")
            ))?;
            return Ok(0);
        }
    };
    let plan = match plan_scheduler_file(&context.kaal, &file) {
        Ok(plan) => plan,
        Err(ApplyError::Store(err)) => return Err(Failure::store(hint(&err.to_string()))),
        Err(err) => {
            line(format!(
                "this node's scheduler file {} cannot be applied: {}",
                path.display(),
                err.to_string().replace('\n', " ")
            ))?;
            return Ok(0);
        }
    };
    if plan.is_empty() {
        line(format!(
            "this node's scheduler file {} matches the database ({} job(s))",
            path.display(),
            file.jobs.len()
        ))?;
        return Ok(0);
    }
    line(format!(
        "this node's scheduler file {} differs from the database ({}); `kaal apply` would:",
        path.display(),
        plan.summary()
    ))?;
    for text in plan.lines() {
        line(format!("  {text}"))?;
    }
    Ok(0)
}
