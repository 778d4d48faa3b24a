//! One field of a five-field expression: its items, its value set and the lint
//! messages for what is wrong with it.
//!
//! A field is a comma-separated list of items; an item is `*`, `*/step`, a value,
//! `low-high` or `low-high/step`. Values are numbers, or names in the month
//! (`jan`..`dec`) and day-of-week (`sun`..`sat`) fields, in any case. Nothing else
//! is accepted: no seconds, no `L`, `W`, `#` or `?`, no `5/15`.

use std::fmt::Write as _;

const MONTH_NAMES: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAY_NAMES: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// Which of the five fields a [`Field`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldKind {
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

impl FieldKind {
    /// The five fields in expression order.
    pub(crate) const ALL: [FieldKind; 5] = [
        FieldKind::Minute,
        FieldKind::Hour,
        FieldKind::DayOfMonth,
        FieldKind::Month,
        FieldKind::DayOfWeek,
    ];

    /// The name lint messages use.
    pub(crate) fn label(self) -> &'static str {
        match self {
            FieldKind::Minute => "minute",
            FieldKind::Hour => "hour",
            FieldKind::DayOfMonth => "day-of-month",
            FieldKind::Month => "month",
            FieldKind::DayOfWeek => "day-of-week",
        }
    }

    /// The smallest value the field accepts.
    pub(crate) fn min(self) -> u32 {
        match self {
            FieldKind::DayOfMonth | FieldKind::Month => 1,
            _ => 0,
        }
    }

    /// The largest value the field accepts (7 is Sunday again in day-of-week).
    pub(crate) fn max(self) -> u32 {
        match self {
            FieldKind::Minute => 59,
            FieldKind::Hour => 23,
            FieldKind::DayOfMonth => 31,
            FieldKind::Month => 12,
            FieldKind::DayOfWeek => 7,
        }
    }

    fn names(self) -> &'static [&'static str] {
        match self {
            FieldKind::Month => &MONTH_NAMES,
            FieldKind::DayOfWeek => &WEEKDAY_NAMES,
            _ => &[],
        }
    }

    /// The value a name stands for (`jan` is 1, `sun` is 0).
    fn value_of_name(self, name: &str) -> Option<u32> {
        let index = self.names().iter().position(|n| *n == name)?;
        let index = u32::try_from(index).ok()?;
        Some(if self == FieldKind::Month {
            index + 1
        } else {
            index
        })
    }

    /// The allowed values, as lint messages show them.
    fn allowed(self) -> String {
        let numbers = format!("{}-{}", self.min(), self.max());
        match self {
            FieldKind::Month => format!("{numbers} or jan-dec"),
            FieldKind::DayOfWeek => format!("{numbers} or sun-sat"),
            _ => numbers,
        }
    }
}

/// One item of a field's comma-separated list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Item {
    /// `*` (step 1) or `*/step`.
    Every { step: u32 },
    /// A single value.
    Value(u32),
    /// `start-end` (step 1) or `start-end/step`.
    Range { start: u32, end: u32, step: u32 },
}

/// A parsed field.
#[derive(Debug, Clone)]
pub(crate) struct Field {
    pub(crate) kind: FieldKind,
    /// The field as written, lowercased.
    pub(crate) text: String,
    pub(crate) items: Vec<Item>,
    /// Bit `v` is set when the field matches value `v`; day-of-week 7 is stored as 0.
    values: u64,
}

impl Field {
    /// Parses one field; on failure returns one lint message per problem.
    pub(crate) fn parse(kind: FieldKind, text: &str) -> Result<Field, Vec<String>> {
        let mut items = Vec::new();
        let mut problems = Vec::new();
        for part in text.split(',') {
            match parse_item(kind, text, part) {
                Ok(item) => items.push(item),
                Err(mut more) => problems.append(&mut more),
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut values = 0u64;
        for item in &items {
            let (start, end, step) = item.bounds(kind);
            for value in (start..=end).step_by(step as usize) {
                let value = if kind == FieldKind::DayOfWeek && value == 7 {
                    0
                } else {
                    value
                };
                values |= 1 << value;
            }
        }
        Ok(Field {
            kind,
            text: text.to_ascii_lowercase(),
            items,
            values,
        })
    }

    /// Whether the field is exactly `*` (which matters for day-of-month/day-of-week).
    pub(crate) fn is_star(&self) -> bool {
        self.text == "*"
    }

    /// Whether the field uses `*` or a step anywhere: such a minute or hour field
    /// makes the expression an interval job for daylight-saving purposes.
    pub(crate) fn is_interval(&self) -> bool {
        self.text.contains('*') || self.text.contains('/')
    }

    /// Whether the field matches `value` (day-of-week: 0 is Sunday).
    pub(crate) fn contains(&self, value: u32) -> bool {
        value < 64 && self.values & (1 << value) != 0
    }

    /// Every value the field matches, ascending (day-of-week: 0-6).
    pub(crate) fn values(&self) -> Vec<u32> {
        (0..64).filter(|v| self.contains(*v)).collect()
    }

    /// Whether the field matches every value of its range.
    pub(crate) fn covers_all(&self) -> bool {
        let top = if self.kind == FieldKind::DayOfWeek {
            6
        } else {
            self.kind.max()
        };
        (self.kind.min()..=top).all(|v| self.contains(v))
    }

    /// The field as croner reads it: numbers only, `sun` at the end of a range as 7.
    pub(crate) fn croner_text(&self) -> String {
        let mut out = String::new();
        for (i, item) in self.items.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            // Writing to a String cannot fail.
            let _ = match *item {
                Item::Every { step: 1 } => write!(out, "*"),
                Item::Every { step } => write!(out, "*/{step}"),
                Item::Value(v) => write!(out, "{v}"),
                Item::Range {
                    start,
                    end,
                    step: 1,
                } => write!(out, "{start}-{end}"),
                Item::Range { start, end, step } => write!(out, "{start}-{end}/{step}"),
            };
        }
        out
    }
}

impl Item {
    /// First value, last value and step of the item in `kind`.
    pub(crate) fn bounds(self, kind: FieldKind) -> (u32, u32, u32) {
        match self {
            Item::Every { step } => (kind.min(), kind.max(), step),
            Item::Value(v) => (v, v, 1),
            Item::Range { start, end, step } => (start, end, step),
        }
    }
}

/// Parses one comma-separated item of `field`.
fn parse_item(kind: FieldKind, field: &str, part: &str) -> Result<Item, Vec<String>> {
    let label = kind.label();
    if part.is_empty() {
        return Err(vec![format!("{label}: empty list item in {field:?}")]);
    }
    let (base, step_text) = match part.split_once('/') {
        Some((base, step)) => (base, Some(step)),
        None => (part, None),
    };
    let mut problems = Vec::new();
    let step = match step_text {
        None => 1,
        Some(text) => match parse_step(kind, part, text) {
            Ok(step) => step,
            Err(problem) => {
                problems.push(problem);
                1
            }
        },
    };
    let item = if base == "*" {
        Some(Item::Every { step })
    } else if let Some((low, high)) = base.split_once('-') {
        let start = parse_value(kind, low).map_err(|p| problems.push(p)).ok();
        let end = parse_value(kind, high).map_err(|p| problems.push(p)).ok();
        match (start, end) {
            (Some(start), Some(end)) => {
                // `fri-sun` means Friday through Sunday: Sunday closes a range as 7.
                let end = if kind == FieldKind::DayOfWeek && end == 0 && start > 0 {
                    7
                } else {
                    end
                };
                if start > end {
                    problems.push(format!(
                        "{label}: range {base:?} is reversed: {start} is after {end} (allowed {})",
                        kind.allowed()
                    ));
                    None
                } else {
                    Some(Item::Range { start, end, step })
                }
            }
            _ => None,
        }
    } else {
        match parse_value(kind, base) {
            Ok(value) if step_text.is_some() => {
                problems.push(format!(
                    "{label}: step in {part:?} needs \"*\" or a range before \"/\", e.g. \"*/{step}\" or \"{value}-{}/{step}\"",
                    kind.max()
                ));
                None
            }
            Ok(value) => Some(Item::Value(value)),
            Err(problem) => {
                problems.push(problem);
                None
            }
        }
    };
    match item {
        Some(item) if problems.is_empty() => Ok(item),
        _ => Err(problems),
    }
}

/// Parses the step after `/` in `part`: 1 up to the field's largest value.
fn parse_step(kind: FieldKind, part: &str, text: &str) -> Result<u32, String> {
    let label = kind.label();
    let max = kind.max();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{label}: step {text:?} in {part:?} is not a number (allowed 1-{max})"
        ));
    }
    match text.parse::<u32>() {
        Ok(0) => Err(format!(
            "{label}: step 0 in {part:?} must be at least 1 (allowed 1-{max})"
        )),
        Ok(step) if step <= max => Ok(step),
        _ => Err(format!("{label}: step {text} in {part:?} exceeds {max}")),
    }
}

/// Parses a number or name and checks it against the field's range.
fn parse_value(kind: FieldKind, text: &str) -> Result<u32, String> {
    let label = kind.label();
    let allowed = kind.allowed();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<u32>() {
            Ok(value) if (kind.min()..=kind.max()).contains(&value) => Ok(value),
            _ => Err(format!("{label}: value {text} is out of range {allowed}")),
        };
    }
    if let Some(value) = kind.value_of_name(&text.to_ascii_lowercase()) {
        return Ok(value);
    }
    let what = match kind {
        FieldKind::Month => "a number or month name",
        FieldKind::DayOfWeek => "a number or weekday name",
        _ => "a number",
    };
    Err(format!(
        "{label}: {text:?} is not {what} (allowed {allowed})"
    ))
}
