//! `kaal dispatches`: the dispatch log as a table, newest fire time first, with each run's
//! lifecycle: its fencing token (the row's id), attempt, start, end, duration and error.
//!
//! Text read from the database (keys, node ids, errors) is shown one cell per line whatever
//! it holds ([`cell`]): a job's error with newlines or terminal escapes cannot break the
//! table. The error comes last, unpadded and whole.

use std::path::PathBuf;

use kaal::{DispatchRecord, DispatchRegistry, DispatchStatus};

use super::context::{cron_key, hint, parse_instant, records_of, Context};
use super::output::{cell, duration, line, table, utc, zoned};
use super::Failure;

/// The filters of `kaal dispatches`.
pub(crate) struct Filter {
    pub key: Option<String>,
    pub node: Option<String>,
    pub status: Option<String>,
    pub since: Option<String>,
    pub limit: usize,
}

/// Prints the matching dispatches.
pub(crate) fn run(config: Option<PathBuf>, filter: Filter) -> Result<u8, Failure> {
    let status = filter
        .status
        .as_deref()
        .map(|s| {
            s.parse::<DispatchStatus>()
                .map_err(|err| Failure::usage(format!("--status: {err}")))
        })
        .transpose()?;
    let since = filter
        .since
        .as_deref()
        .map(|s| parse_instant(s, "--since"))
        .transpose()?;
    let context = Context::open_existing(config)?;
    let Some(log) = context.kaal.adapter().dispatch_registry() else {
        line("this store keeps no dispatch log")?;
        return Ok(0);
    };
    let namespace = &context.file.config.namespace;
    let mut records = query(log, namespace, &filter, status)
        .map_err(|err| Failure::store(hint(&err.to_string())))?;
    for record in &mut records {
        record.key = cron_key(namespace, &record.key).to_string();
    }
    records.retain(|r| {
        filter.key.as_ref().is_none_or(|k| &r.key == k)
            && filter.node.as_ref().is_none_or(|n| &r.node_id == n)
            && status.is_none_or(|s| r.status == s)
            && since.is_none_or(|t| r.fire_time >= t)
    });
    records.sort_by(|a, b| {
        b.fire_time
            .cmp(&a.fire_time)
            .then_with(|| a.key.cmp(&b.key))
    });
    records.truncate(filter.limit);
    if records.is_empty() {
        line("no dispatches match")?;
        return Ok(0);
    }
    let tz = context.tz();
    let rows: Vec<Vec<String>> = records.iter().map(|r| row(r, tz)).collect();
    table(&HEADER, &rows)?;
    Ok(0)
}

/// The columns of the table. Fire time, key, status and node come first, as before the run
/// lifecycle, so scripts reading those columns by position keep working.
const HEADER: [&str; 11] = [
    "FIRE TIME",
    "KEY",
    "STATUS",
    "NODE",
    "TOKEN",
    "ATTEMPT",
    "STARTED (UTC)",
    "FINISHED (UTC)",
    "DURATION",
    "RECORDED AT (UTC)",
    "ERROR",
];

/// One record as the cells of [`HEADER`]; `-` where there is nothing to show (a run never
/// started, a row written without the lifecycle, a store that keeps no ids).
fn row(r: &DispatchRecord, tz: kaal::chrono_tz::Tz) -> Vec<String> {
    let none = || "-".to_string();
    vec![
        zoned(r.fire_time, tz),
        cell(&r.key),
        r.status.to_string(),
        cell(&r.node_id),
        if r.id > 0 { r.id.to_string() } else { none() },
        r.attempt.to_string(),
        r.started_at.map_or_else(none, utc),
        r.finished_at.map_or_else(none, utc),
        r.duration().map_or_else(none, duration),
        utc(r.dispatched_at),
        r.error.as_deref().map_or_else(none, cell),
    ]
}

/// The narrowest query the registry offers for the filter. With no key, node or status the
/// log is read by status (the registry has no "all records" query).
fn query(
    log: &dyn DispatchRegistry,
    namespace: &str,
    filter: &Filter,
    status: Option<DispatchStatus>,
) -> Result<Vec<DispatchRecord>, kaal::RegistryError> {
    if let Some(key) = &filter.key {
        return records_of(log, namespace, key);
    }
    if let Some(node) = &filter.node {
        return log.find_by_node(node);
    }
    match status {
        Some(status) => log.find_by_status(status),
        None => {
            let mut all = Vec::new();
            for status in DispatchStatus::ALL {
                all.extend(log.find_by_status(status)?);
            }
            Ok(all)
        }
    }
}
