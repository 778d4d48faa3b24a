//! Cron expressions: parsing, linting, simplifying, English descriptions and fire times.
//! (API stub: being implemented.)

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use thiserror::Error;

/// An expression that is not a valid five-field cron expression or macro.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid cron expression {expression:?}: {}", problems.join("; "))]
pub struct CronError {
    /// The expression as given.
    pub expression: String,
    /// One message per problem (see [`lint`]).
    pub problems: Vec<String>,
}

/// A parsed cron expression.
#[derive(Debug, Clone)]
pub struct CronExpr {
    source: String,
}

impl CronExpr {
    /// Parses five fields or a macro.
    pub fn parse(expression: &str) -> Result<Self, CronError> {
        Ok(Self {
            source: expression.to_string(),
        })
    }

    /// The expression as given.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Every fire time `t` with `from <= t <= to`, ascending, evaluated in `tz`.
    pub fn fire_times(&self, from: DateTime<Utc>, to: DateTime<Utc>, tz: Tz) -> Vec<DateTime<Utc>> {
        let _ = (from, to, tz);
        unimplemented!()
    }

    /// The first fire time strictly after `after`, evaluated in `tz`.
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let _ = (after, tz);
        unimplemented!()
    }

    /// English description.
    pub fn to_human(&self) -> String {
        unimplemented!()
    }
}

/// Whether `expression` parses.
pub fn valid(expression: &str) -> bool {
    CronExpr::parse(expression).is_ok()
}

/// One message per problem.
pub fn lint(expression: &str) -> Vec<String> {
    let _ = expression;
    Vec::new()
}
