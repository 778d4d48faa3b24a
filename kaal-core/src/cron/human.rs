//! Descriptions of expressions in words, with the words supplied by a [`CronLocale`].

use super::field::{Field, FieldKind, Item};
use super::pattern::Fields;

/// Most hour:minute pairs a description lists as times of day ("at 09:00 and
/// 17:00") before it describes the minute and hour fields separately.
const MAX_LISTED_TIMES: usize = 6;

/// The catalogue of phrases a description is built from; implement it to describe
/// expressions in another language.
///
/// A description is up to three phrases joined by [`join`](CronLocale::join):
/// *when in the day* (one of the `every_*`, `*_of_every_*`, [`at_times`](CronLocale::at_times)
/// or [`every_day_at`](CronLocale::every_day_at) phrases, or [`at_minutes`](CronLocale::at_minutes)
/// followed by an hour phrase), *which days* ([`on_days_of_month`](CronLocale::on_days_of_month),
/// [`on_weekdays`](CronLocale::on_weekdays), or both through [`either`](CronLocale::either)),
/// and *which months* ([`in_months`](CronLocale::in_months)). Lists of values arrive
/// already rendered through [`list`](CronLocale::list), [`range`](CronLocale::range),
/// [`stepped`](CronLocale::stepped) and the name methods, so each phrase method
/// only places them in a sentence. `plural` says whether a list names more than one value.
///
/// ```
/// use kaal_core::cron::{CronExpr, CronLocale, English};
///
/// /// English, but with a 12-hour clock.
/// struct TwelveHour;
///
/// impl CronLocale for TwelveHour {
///     fn time_of_day(&self, hour: u32, minute: u32) -> String {
///         let suffix = if hour < 12 { "am" } else { "pm" };
///         format!("{}:{minute:02} {suffix}", (hour + 11) % 12 + 1)
///     }
///     fn every_minute(&self) -> String { English.every_minute() }
///     fn every_n_minutes(&self, n: u32) -> String { English.every_n_minutes(n) }
///     fn every_hour(&self) -> String { English.every_hour() }
///     fn every_n_hours(&self, n: u32) -> String { English.every_n_hours(n) }
///     fn minute_of_every_hour(&self, m: u32) -> String { English.minute_of_every_hour(m) }
///     fn minute_of_every_n_hours(&self, m: u32, n: u32) -> String { English.minute_of_every_n_hours(m, n) }
///     fn at_times(&self, times: &str) -> String { English.at_times(times) }
///     fn every_day_at(&self, times: &str) -> String { English.every_day_at(times) }
///     fn at_minutes(&self, m: &str, plural: bool) -> String { English.at_minutes(m, plural) }
///     fn during_hours(&self, h: &str, plural: bool) -> String { English.during_hours(h, plural) }
///     fn of_every_n_hours(&self, n: u32) -> String { English.of_every_n_hours(n) }
///     fn on_days_of_month(&self, d: &str, plural: bool) -> String { English.on_days_of_month(d, plural) }
///     fn on_weekdays(&self, w: &str) -> String { English.on_weekdays(w) }
///     fn in_months(&self, m: &str) -> String { English.in_months(m) }
///     fn either(&self, dom: &str, dow: &str) -> String { English.either(dom, dow) }
///     fn weekday_name(&self, w: u32) -> String { English.weekday_name(w) }
///     fn month_name(&self, m: u32) -> String { English.month_name(m) }
///     fn range(&self, start: &str, end: &str) -> String { English.range(start, end) }
///     fn stepped(&self, base: &str, step: u32) -> String { English.stepped(base, step) }
///     fn list(&self, items: &[String]) -> String { English.list(items) }
/// }
///
/// let expr = CronExpr::parse("30 17 * * fri").unwrap();
/// assert_eq!(expr.to_human_in(&TwelveHour), "at 5:30 pm on Friday");
/// ```
pub trait CronLocale {
    /// Every minute of the day: "every minute".
    fn every_minute(&self) -> String;
    /// `*/n` minutes: "every 15 minutes".
    fn every_n_minutes(&self, n: u32) -> String;
    /// Minute 0 of every hour: "every hour".
    fn every_hour(&self) -> String;
    /// Minute 0 of `*/n` hours: "every 2 hours".
    fn every_n_hours(&self, n: u32) -> String;
    /// One minute of every hour: "at minute 5 of every hour".
    fn minute_of_every_hour(&self, minute: u32) -> String;
    /// One minute of `*/n` hours: "at minute 5 of every 2 hours".
    fn minute_of_every_n_hours(&self, minute: u32, n: u32) -> String;
    /// A time of day, 24-hour clock by default: "09:30".
    fn time_of_day(&self, hour: u32, minute: u32) -> String {
        format!("{hour:02}:{minute:02}")
    }
    /// Times of day (already a [`list`](CronLocale::list)) on restricted days: "at 09:30".
    fn at_times(&self, times: &str) -> String;
    /// Times of day (already a list) when every day matches: "every day at 09:30".
    fn every_day_at(&self, times: &str) -> String;
    /// A minute field that is not one of the simple cases: "at minutes 0 through 30".
    fn at_minutes(&self, minutes: &str, plural: bool) -> String;
    /// The hour field after [`at_minutes`](CronLocale::at_minutes) or an every-minutes
    /// phrase: "during hours 9 through 17".
    fn during_hours(&self, hours: &str, plural: bool) -> String;
    /// A `*` (`n` = 1) or `*/n` hour field after [`at_minutes`](CronLocale::at_minutes):
    /// "of every hour", "of every 2 hours".
    fn of_every_n_hours(&self, n: u32) -> String;
    /// The day-of-month field: "on day 1 of the month", "on days 1 and 15 of the month".
    fn on_days_of_month(&self, days: &str, plural: bool) -> String;
    /// The day-of-week field: "on Monday through Friday".
    fn on_weekdays(&self, weekdays: &str) -> String;
    /// The month field: "in January and July".
    fn in_months(&self, months: &str) -> String;
    /// Both day fields restricted, where either matching is enough (Vixie cron):
    /// "on day 1 of the month or on Monday".
    fn either(&self, day_of_month: &str, day_of_week: &str) -> String;
    /// A weekday name, 0 = Sunday .. 6 = Saturday: "Monday".
    fn weekday_name(&self, weekday: u32) -> String;
    /// A month name, 1 = January .. 12 = December: "January".
    fn month_name(&self, month: u32) -> String;
    /// A range of values: "9 through 17", "Monday through Friday".
    fn range(&self, start: &str, end: &str) -> String;
    /// A range with a step: "9 through 17 in steps of 2".
    fn stepped(&self, base: &str, step: u32) -> String;
    /// A list of already rendered items: "1, 2 and 3".
    fn list(&self, items: &[String]) -> String;
    /// Joins the phrases of a description: by default with single spaces.
    fn join(&self, phrases: &[String]) -> String {
        phrases.join(" ")
    }
}

/// The built-in English catalogue, used by [`CronExpr::to_human`](super::CronExpr::to_human).
///
/// ```
/// use kaal_core::cron::{CronExpr, English};
///
/// let expr = CronExpr::parse("*/15 9-17 * * mon-fri").unwrap();
/// assert_eq!(
///     expr.to_human_in(&English),
///     "every 15 minutes during hours 9 through 17 on Monday through Friday"
/// );
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct English;

impl CronLocale for English {
    fn every_minute(&self) -> String {
        "every minute".into()
    }
    fn every_n_minutes(&self, n: u32) -> String {
        format!("every {n} minutes")
    }
    fn every_hour(&self) -> String {
        "every hour".into()
    }
    fn every_n_hours(&self, n: u32) -> String {
        format!("every {n} hours")
    }
    fn minute_of_every_hour(&self, minute: u32) -> String {
        format!("at minute {minute} of every hour")
    }
    fn minute_of_every_n_hours(&self, minute: u32, n: u32) -> String {
        format!("at minute {minute} of every {n} hours")
    }
    fn at_times(&self, times: &str) -> String {
        format!("at {times}")
    }
    fn every_day_at(&self, times: &str) -> String {
        format!("every day at {times}")
    }
    fn at_minutes(&self, minutes: &str, plural: bool) -> String {
        format!("at minute{} {minutes}", if plural { "s" } else { "" })
    }
    fn during_hours(&self, hours: &str, plural: bool) -> String {
        format!("during hour{} {hours}", if plural { "s" } else { "" })
    }
    fn of_every_n_hours(&self, n: u32) -> String {
        if n == 1 {
            "of every hour".into()
        } else {
            format!("of every {n} hours")
        }
    }
    fn on_days_of_month(&self, days: &str, plural: bool) -> String {
        format!(
            "on day{} {days} of the month",
            if plural { "s" } else { "" }
        )
    }
    fn on_weekdays(&self, weekdays: &str) -> String {
        format!("on {weekdays}")
    }
    fn in_months(&self, months: &str) -> String {
        format!("in {months}")
    }
    fn either(&self, day_of_month: &str, day_of_week: &str) -> String {
        format!("{day_of_month} or {day_of_week}")
    }
    fn weekday_name(&self, weekday: u32) -> String {
        const NAMES: [&str; 7] = [
            "Sunday",
            "Monday",
            "Tuesday",
            "Wednesday",
            "Thursday",
            "Friday",
            "Saturday",
        ];
        NAMES[weekday as usize % 7].into()
    }
    fn month_name(&self, month: u32) -> String {
        const NAMES: [&str; 12] = [
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ];
        NAMES[(month as usize + 11) % 12].into()
    }
    fn range(&self, start: &str, end: &str) -> String {
        format!("{start} through {end}")
    }
    fn stepped(&self, base: &str, step: u32) -> String {
        format!("{base} in steps of {step}")
    }
    fn list(&self, items: &[String]) -> String {
        match items {
            [] => String::new(),
            [only] => only.clone(),
            [init @ .., last] => format!("{} and {last}", init.join(", ")),
        }
    }
}

/// Describes a valid expression with `locale`'s phrases.
pub(super) fn describe(fields: &Fields, locale: &dyn CronLocale) -> String {
    let days = day_phrase(fields, locale);
    let months = (!fields.month.is_star()).then(|| locale.in_months(&items(&fields.month, locale)));
    let mut phrases = vec![time_phrase(
        fields,
        days.is_none() && months.is_none(),
        locale,
    )];
    phrases.extend(days);
    phrases.extend(months);
    locale.join(&phrases)
}

/// When in the day; `every_day` says whether no day or month phrase follows.
fn time_phrase(fields: &Fields, every_day: bool, locale: &dyn CronLocale) -> String {
    let (minute, hour) = (&fields.minute, &fields.hour);
    let minute_step = only_every(minute);
    let hour_step = only_every(hour);
    match (single(minute), minute_step, hour_step) {
        (_, Some(1), Some(1)) => return locale.every_minute(),
        (_, Some(n), Some(1)) => return locale.every_n_minutes(n),
        (Some(0), _, Some(1)) => return locale.every_hour(),
        (Some(m), _, Some(1)) => return locale.minute_of_every_hour(m),
        (Some(0), _, Some(n)) => return locale.every_n_hours(n),
        (Some(m), _, Some(n)) => return locale.minute_of_every_n_hours(m, n),
        _ => {}
    }
    let (minutes, hours) = (minute.values(), hour.values());
    if !minute.is_interval()
        && !hour.is_interval()
        && minutes.len() * hours.len() <= MAX_LISTED_TIMES
    {
        let times: Vec<String> = hours
            .iter()
            .flat_map(|h| minutes.iter().map(move |m| locale.time_of_day(*h, *m)))
            .collect();
        let times = locale.list(&times);
        return if every_day {
            locale.every_day_at(&times)
        } else {
            locale.at_times(&times)
        };
    }
    let minute_phrase = match minute_step {
        Some(1) => locale.every_minute(),
        Some(n) => locale.every_n_minutes(n),
        None => locale.at_minutes(&items(minute, locale), minutes.len() > 1),
    };
    let hour_phrase = match hour_step {
        Some(n) => locale.of_every_n_hours(n),
        None => locale.during_hours(&items(hour, locale), hours.len() > 1),
    };
    locale.join(&[minute_phrase, hour_phrase])
}

/// Which days, or `None` when every day matches both day fields.
fn day_phrase(fields: &Fields, locale: &dyn CronLocale) -> Option<String> {
    let (dom, dow) = (&fields.day_of_month, &fields.day_of_week);
    let on_dom = || locale.on_days_of_month(&items(dom, locale), dom.values().len() > 1);
    let on_dow = || locale.on_weekdays(&items(dow, locale));
    match (dom.is_star(), dow.is_star()) {
        (true, true) => None,
        (false, true) => Some(on_dom()),
        (true, false) => Some(on_dow()),
        (false, false) => Some(locale.either(&on_dom(), &on_dow())),
    }
}

/// The value of a field that is exactly one value.
fn single(field: &Field) -> Option<u32> {
    match field.items.as_slice() {
        [Item::Value(v)] => Some(*v),
        _ => None,
    }
}

/// The step of a field that is exactly `*` (1) or `*/n` (n).
fn only_every(field: &Field) -> Option<u32> {
    match field.items.as_slice() {
        [Item::Every { step }] => Some(*step),
        _ => None,
    }
}

/// A field's items, rendered and listed.
fn items(field: &Field, locale: &dyn CronLocale) -> String {
    let name = |v: u32| match field.kind {
        FieldKind::Month => locale.month_name(v),
        FieldKind::DayOfWeek => locale.weekday_name(v % 7),
        _ => v.to_string(),
    };
    let rendered: Vec<String> = field
        .items
        .iter()
        .map(|item| {
            let (start, mut end, step) = item.bounds(field.kind);
            if field.kind == FieldKind::DayOfWeek && matches!(item, Item::Every { .. }) {
                end = 6; // `*` is Sunday through Saturday, not through Sunday again
            }
            let base = if start == end {
                name(start)
            } else {
                locale.range(&name(start), &name(end))
            };
            if step == 1 {
                base
            } else {
                locale.stepped(&base, step)
            }
        })
        .collect();
    let mut unique: Vec<String> = Vec::with_capacity(rendered.len());
    for item in rendered {
        if !unique.contains(&item) {
            unique.push(item); // `0,7` is Sunday once
        }
    }
    locale.list(&unique)
}
