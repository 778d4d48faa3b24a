//! Cron expressions: parsing, linting, simplifying, descriptions in words and fire
//! times in any IANA time zone.
//!
//! # What is accepted
//!
//! Exactly five POSIX fields — minute (0-59), hour (0-23), day-of-month (1-31),
//! month (1-12 or `jan`..`dec`) and day-of-week (0-7 or `sun`..`sat`, 0 and 7 both
//! Sunday) — each a comma-separated list of `*`, `*/step`, values, `low-high` and
//! `low-high/step`; names in any case. Or one of the macros `@yearly`
//! (`@annually`), `@monthly`, `@weekly`, `@daily` (`@midnight`) and `@hourly`.
//! What other crons add (a seconds or year field, `L`, `W`, `#`, `?`, `5/15`) is
//! rejected, as are values out of range, steps of 0 or above the field's largest
//! value, reversed ranges (except `fri-sun`, where Sunday closes the week) and a
//! day-of-month no selected month has (`0 0 30 2 *`), which would never fire.
//! [`lint`] lists every problem, one message each; [`CronExpr::parse`] fails with
//! the same messages.
//!
//! When both day-of-month and day-of-week are restricted (neither is exactly `*`),
//! a day matches if *either* matches, as in Vixie cron: `0 0 1 * mon` fires on the
//! 1st and on every Monday.
//!
//! # Time zones and daylight saving
//!
//! Fire times are instants ([`DateTime<Utc>`]); the fields are matched against the
//! wall clock of the zone passed in. Where that wall clock skips or repeats, these
//! rules (those of Vixie cron and of croner's OCPS handling) decide:
//!
//! * A **fixed-time** job — one whose minute and hour fields use neither `*` nor a
//!   step, such as `30 2 * * *` or `0,30 1 * * *` — runs each scheduled wall-clock
//!   time once:
//!   * spring forward: a time the clock skips fires once, at the first instant
//!     after the gap (`30 2 * * *` in America/New_York on 2026-03-08 fires at
//!     03:00 EDT = 07:00 UTC; several skipped times collapse into that one fire);
//!   * fall back: a time the clock shows twice fires once, at its first
//!     occurrence (`30 1 * * *` in New York on 2026-11-01 fires at 01:30 EDT =
//!     05:30 UTC, not again at 01:30 EST).
//! * An **interval** job — minute or hour uses `*` or a step, such as
//!   `*/15 * * * *` or `@hourly` — follows real time: skipped wall-clock minutes
//!   simply do not fire, and a repeated hour fires in both passes, so
//!   `*/15 * * * *` keeps firing every 15 minutes straight through fall-back.
//!
//! croner does the calendar arithmetic; this module asks it for matching
//! *wall-clock* times (naive, so no gaps or repeats) and maps each to instants with
//! chrono-tz under the rules above. croner's own zoned search applies the same two
//! rules but counts only single values as fixed-time, so a list such as
//! `0,30 1 * * *` would fire twice in a repeated hour and not at all in a skipped
//! one; we follow Vixie cron and treat lists and ranges as fixed times.
//!
//! # Example
//!
//! ```
//! use kaal_core::chrono::{TimeZone, Utc};
//! use kaal_core::chrono_tz::America::New_York;
//! use kaal_core::cron::{self, CronExpr};
//!
//! let expr = CronExpr::parse("30 2 * * *").unwrap();
//! // 2026-03-08 02:30 does not exist in New York: the job runs right after the gap.
//! let fires = expr.fire_times(
//!     Utc.with_ymd_and_hms(2026, 3, 8, 0, 0, 0).unwrap(),
//!     Utc.with_ymd_and_hms(2026, 3, 9, 12, 0, 0).unwrap(),
//!     New_York,
//! );
//! assert_eq!(
//!     fires,
//!     [
//!         Utc.with_ymd_and_hms(2026, 3, 8, 7, 0, 0).unwrap(), // 03:00 EDT
//!         Utc.with_ymd_and_hms(2026, 3, 9, 6, 30, 0).unwrap(), // 02:30 EDT
//!     ]
//! );
//! assert_eq!(expr.to_human(), "every day at 02:30");
//! assert_eq!(cron::lint("*/61 * * * *"), [r#"minute: step 61 in "*/61" exceeds 59"#]);
//! assert_eq!(cron::simplify("0 0 * * SUN").unwrap(), "@weekly");
//! ```

mod field;
mod fire;
mod human;
mod pattern;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use thiserror::Error;

pub use human::{CronLocale, English};

use fire::ZonedSchedule;
use pattern::Fields;

/// An expression that is not a valid five-field cron expression or macro.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid cron expression {expression:?}: {}", problems.join("; "))]
pub struct CronError {
    /// The expression as given.
    pub expression: String,
    /// One message per problem, the same as [`lint`] returns.
    pub problems: Vec<String>,
}

/// A parsed cron expression, ready to compute fire times.
///
/// Parsing is the expensive part; keep the value and reuse it.
///
/// ```
/// use kaal_core::chrono::{TimeZone, Utc};
/// use kaal_core::chrono_tz::UTC;
/// use kaal_core::cron::CronExpr;
///
/// let expr = CronExpr::parse("*/15 9-17 * * MON-FRI").unwrap();
/// let friday_evening = Utc.with_ymd_and_hms(2026, 5, 1, 17, 45, 0).unwrap();
/// assert_eq!(
///     expr.next_after(friday_evening, UTC),
///     Some(Utc.with_ymd_and_hms(2026, 5, 4, 9, 0, 0).unwrap()) // Monday
/// );
/// ```
#[derive(Debug, Clone)]
pub struct CronExpr {
    source: String,
    fields: Fields,
    /// Matches wall-clock times; see the module docs for how they become instants.
    cron: Cron,
    fixed_time: bool,
}

impl CronExpr {
    /// Parses five fields or a macro.
    ///
    /// # Errors
    ///
    /// [`CronError`] with one message per problem, exactly those of [`lint`].
    ///
    /// ```
    /// use kaal_core::cron::CronExpr;
    ///
    /// assert!(CronExpr::parse("@daily").is_ok());
    /// let error = CronExpr::parse("60 * * * *").unwrap_err();
    /// assert_eq!(error.problems, ["minute: value 60 is out of range 0-59"]);
    /// ```
    pub fn parse(expression: &str) -> Result<Self, CronError> {
        let error = |problems| CronError {
            expression: expression.to_string(),
            problems,
        };
        let fields = Fields::parse(expression).map_err(error)?;
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(&fields.croner_text())
            // Our validation is stricter than croner's, so this is not expected.
            .map_err(|e| error(vec![format!("rejected by the cron engine: {e}")]))?;
        Ok(Self {
            source: expression.to_string(),
            fixed_time: fields.is_fixed_time(),
            fields,
            cron,
        })
    }

    /// The expression as given to [`parse`](Self::parse).
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Every fire time `t` with `from <= t <= to`, ascending and without
    /// duplicates, with the fields matched against the wall clock of `tz` under the
    /// daylight-saving rules of the [module docs](self). Empty when `from > to`.
    ///
    /// ```
    /// use kaal_core::chrono::{TimeZone, Utc};
    /// use kaal_core::chrono_tz::Europe::London;
    /// use kaal_core::cron::CronExpr;
    ///
    /// let expr = CronExpr::parse("0 * * * *").unwrap();
    /// let from = Utc.with_ymd_and_hms(2026, 6, 1, 8, 0, 0).unwrap();
    /// let to = Utc.with_ymd_and_hms(2026, 6, 1, 10, 0, 0).unwrap();
    /// assert_eq!(expr.fire_times(from, to, London).len(), 3); // 08:00, 09:00, 10:00
    /// ```
    pub fn fire_times(&self, from: DateTime<Utc>, to: DateTime<Utc>, tz: Tz) -> Vec<DateTime<Utc>> {
        self.in_zone(tz).between(from, to)
    }

    /// The first fire time strictly after `after`, evaluated in `tz`; `None` past
    /// the year 5000.
    ///
    /// ```
    /// use kaal_core::chrono::{TimeZone, Utc};
    /// use kaal_core::chrono_tz::Asia::Kolkata;
    /// use kaal_core::cron::CronExpr;
    ///
    /// let expr = CronExpr::parse("0 9 * * *").unwrap();
    /// let now = Utc.with_ymd_and_hms(2026, 1, 1, 3, 30, 0).unwrap(); // 09:00 in Kolkata
    /// assert_eq!(
    ///     expr.next_after(now, Kolkata),
    ///     Some(Utc.with_ymd_and_hms(2026, 1, 2, 3, 30, 0).unwrap())
    /// );
    /// ```
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let from = after.checked_add_signed(Duration::nanoseconds(1))?;
        self.in_zone(tz).first_from(from)
    }

    /// A description in English, e.g. "at 09:30 on Monday through Friday".
    ///
    /// ```
    /// use kaal_core::cron::CronExpr;
    ///
    /// let describe = |e: &str| CronExpr::parse(e).unwrap().to_human();
    /// assert_eq!(describe("*/15 * * * *"), "every 15 minutes");
    /// assert_eq!(describe("30 9 * * 1-5"), "at 09:30 on Monday through Friday");
    /// assert_eq!(describe("0 0 1 * *"), "at 00:00 on day 1 of the month");
    /// ```
    pub fn to_human(&self) -> String {
        self.to_human_in(&English)
    }

    /// A description with the phrases of `locale` (see [`CronLocale`]).
    pub fn to_human_in(&self, locale: &dyn CronLocale) -> String {
        human::describe(&self.fields, locale)
    }

    fn in_zone(&self, tz: Tz) -> ZonedSchedule<'_> {
        ZonedSchedule {
            cron: &self.cron,
            fixed_time: self.fixed_time,
            tz,
        }
    }
}

/// Whether `expression` parses.
///
/// ```
/// assert!(kaal_core::cron::valid("0 9 * * mon-fri"));
/// assert!(!kaal_core::cron::valid("0 9 * * * *"));
/// ```
pub fn valid(expression: &str) -> bool {
    Fields::parse(expression).is_ok()
}

/// One message per problem with `expression`, each naming the field, the offending
/// value and what is allowed; empty when the expression is valid.
///
/// ```
/// use kaal_core::cron::lint;
///
/// assert!(lint("@hourly").is_empty());
/// assert_eq!(
///     lint("60 24 * * *"),
///     [
///         "minute: value 60 is out of range 0-59",
///         "hour: value 24 is out of range 0-23",
///     ]
/// );
/// ```
pub fn lint(expression: &str) -> Vec<String> {
    Fields::parse(expression).err().unwrap_or_default()
}

/// The canonical form of `expression`: the macro with the same schedule when
/// there is one (`@yearly`, `@monthly`, `@weekly`, `@daily`, `@hourly`), otherwise
/// the five fields lowercased and one space apart.
///
/// # Errors
///
/// [`CronError`] when the expression is not valid.
///
/// ```
/// use kaal_core::cron::simplify;
///
/// assert_eq!(simplify("0 0 * * 7").unwrap(), "@weekly");
/// assert_eq!(simplify("@midnight").unwrap(), "@daily");
/// assert_eq!(simplify(" */5  *  * * MON ").unwrap(), "*/5 * * * mon");
/// ```
pub fn simplify(expression: &str) -> Result<String, CronError> {
    let fields = Fields::parse(expression).map_err(|problems| CronError {
        expression: expression.to_string(),
        problems,
    })?;
    Ok(fields
        .canonical_macro()
        .map_or_else(|| fields.normalised(), str::to_string))
}
