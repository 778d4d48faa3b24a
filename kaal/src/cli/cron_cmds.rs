//! `explain`, `next` and `lint`: cron expressions on their own, no configuration needed.

use kaal::chrono::{SecondsFormat, Utc};
use kaal::chrono_tz::Tz;
use kaal::cron::{self, CronExpr};

use super::context::parse_instant;
use super::output::line;
use super::{Failure, PROBLEMS_FOUND};

fn parse(expression: &str) -> Result<CronExpr, Failure> {
    CronExpr::parse(expression).map_err(Failure::usage)
}

/// `kaal explain CRON`: the expression in words and its canonical form.
pub(crate) fn explain(expression: &str) -> Result<u8, Failure> {
    let expr = parse(expression)?;
    line(format!("{}: {}", expression.trim(), expr.to_human()))?;
    if let Ok(canonical) = cron::simplify(expression) {
        if canonical != expression.trim() {
            line(format!("canonical form: {canonical}"))?;
        }
    }
    Ok(0)
}

/// `kaal next CRON`: the next `count` fire times after `from` in `tz`.
pub(crate) fn next(
    expression: &str,
    count: usize,
    tz: &str,
    from: Option<&str>,
) -> Result<u8, Failure> {
    let zone: Tz = tz.parse().map_err(|_| {
        Failure::usage(format!(
            "--tz {tz:?} is not an IANA time zone name; use e.g. UTC, Europe/London, America/New_York"
        ))
    })?;
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
