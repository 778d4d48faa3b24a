//! `explain`, `next` and `lint`: cron expressions on their own, no database needed. `next`
//! and `explain` evaluate in the configuration's `time_zone` when a configuration file is
//! present and no `--tz` is given.

use std::path::PathBuf;

use kaal::chrono::{SecondsFormat, Utc};
use kaal::chrono_tz::Tz;
use kaal::cron::{self, CronExpr};
use kaal::ConfigFile;

use super::context::{config_path, environment, parse_instant};
use super::output::line;
use super::{Failure, PROBLEMS_FOUND};

/// The zone a cron expression is evaluated in, and where it came from: `--tz`; else the
/// `time_zone` of the configuration file when one is present (`--config`, `KAAL_CONFIG`, or
/// config/kaal.yml existing); else UTC. Only the time zone is read: a configuration whose
/// other settings have problems (an unset `${DATABASE_URL}` on a laptop) still gives it.
pub(crate) fn zone(tz: Option<&str>, config: Option<PathBuf>) -> Result<(Tz, String), Failure> {
    if let Some(tz) = tz {
        let zone = tz.parse().map_err(|_| {
            Failure::usage(format!(
                "--tz {tz:?} is not an IANA time zone name; use e.g. UTC, Europe/London, America/New_York"
            ))
        })?;
        return Ok((zone, "--tz".to_string()));
    }
    let explicit = config.is_some();
    let path = config_path(config);
    if !explicit && !path.exists() {
        return Ok((Tz::UTC, "the default; no configuration file".to_string()));
    }
    let check = ConfigFile::check(&path, &environment());
    let Some(file) = check.file else {
        let problems: Vec<String> = check.problems.iter().map(ToString::to_string).collect();
        return Err(Failure::usage(format!(
            "{} (the time zone comes from the configuration file; pass --tz to give one)",
            problems.join("; ")
        )));
    };
    let zone = file.config.time_zone.parse().map_err(|_| {
        Failure::usage(format!(
            "{}: time_zone {:?} is not an IANA time zone name (pass --tz to give one)",
            path.display(),
            file.config.time_zone
        ))
    })?;
    Ok((zone, format!("time_zone of {}", path.display())))
}

fn parse(expression: &str) -> Result<CronExpr, Failure> {
    CronExpr::parse(expression).map_err(Failure::usage)
}

/// `kaal explain CRON`: the expression in words, its canonical form, and its next fire time
/// in the zone it is evaluated in.
pub(crate) fn explain(
    expression: &str,
    tz: Option<&str>,
    config: Option<PathBuf>,
) -> Result<u8, Failure> {
    let expr = parse(expression)?;
    let (zone, source) = zone(tz, config)?;
    line(format!("{}: {}", expression.trim(), expr.to_human()))?;
    if let Ok(canonical) = cron::simplify(expression) {
        if canonical != expression.trim() {
            line(format!("canonical form: {canonical}"))?;
        }
    }
    if let Some(next) = expr.next_after(Utc::now(), zone) {
        line(format!(
            "next fire time: {} (time zone {zone}, {source})",
            next.with_timezone(&zone)
                .to_rfc3339_opts(SecondsFormat::Secs, true)
        ))?;
    }
    Ok(0)
}

/// `kaal next CRON`: the next `count` fire times after `from` in the zone of [`zone`].
pub(crate) fn next(
    expression: &str,
    count: usize,
    tz: Option<&str>,
    from: Option<&str>,
    config: Option<PathBuf>,
) -> Result<u8, Failure> {
    let (zone, _) = zone(tz, config)?;
    let expr = parse(expression)?;
    let mut at = match from {
        Some(text) => parse_instant(text, "--from")?,
        None => Utc::now(),
    };
    for _ in 0..count {
        match expr.next_after(at, zone) {
            Some(t) => {
                line(
                    t.with_timezone(&zone)
                        .to_rfc3339_opts(SecondsFormat::Secs, true),
                )?;
                at = t;
            }
            None => break,
        }
    }
    Ok(0)
}

/// `kaal lint CRON`: every problem on its own line (exit 1), or `ok`.
pub(crate) fn lint(expression: &str) -> Result<u8, Failure> {
    let problems = if expression.trim().is_empty() {
        vec!["the cron expression is blank; use e.g. \"*/5 * * * *\" or \"@hourly\"".to_string()]
    } else {
        cron::lint(expression)
    };
    if problems.is_empty() {
        match cron::simplify(expression) {
            Ok(canonical) if canonical != expression.trim() => {
                line(format!("ok ({canonical})"))?;
            }
            _ => line("ok")?,
        }
        return Ok(0);
    }
    for problem in problems {
        line(format!("{}: {problem}", expression.trim()))?;
    }
    Ok(PROBLEMS_FOUND)
}
