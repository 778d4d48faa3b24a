//! The five fields together: macros, the field count, checks across fields and the
//! canonical form [`simplify`](super::simplify) returns.

use super::field::{Field, FieldKind};

/// The macros, with the five fields each stands for.
pub(crate) const MACROS: [(&str, &str); 7] = [
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

/// Longest each month can be (February in a leap year).
const MONTH_MAX_DAYS: [u32; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/// A valid expression, field by field.
#[derive(Debug, Clone)]
pub(crate) struct Fields {
    pub(crate) minute: Field,
    pub(crate) hour: Field,
    pub(crate) day_of_month: Field,
    pub(crate) month: Field,
    pub(crate) day_of_week: Field,
}

impl Fields {
    /// Parses five fields or a macro; on failure returns one message per problem.
    pub(crate) fn parse(expression: &str) -> Result<Fields, Vec<String>> {
        let tokens: Vec<&str> = expression.split_whitespace().collect();
        let expanded;
        let tokens = match tokens.as_slice() {
            [single] if single.starts_with('@') => {
                let name = single.to_ascii_lowercase();
                match MACROS.iter().find(|(macro_name, _)| *macro_name == name) {
                    Some((_, fields)) => {
                        expanded = fields.split(' ').collect::<Vec<_>>();
                        expanded.as_slice()
                    }
                    None => {
                        let known: Vec<&str> = MACROS.iter().map(|(name, _)| *name).collect();
                        return Err(vec![format!(
                            "unknown macro {single:?}: expected one of {}",
                            known.join(", ")
                        )]);
                    }
                }
            }
            tokens if tokens.len() == 5 => tokens,
            tokens => {
                return Err(vec![format!(
                "expected 5 fields (minute hour day-of-month month day-of-week) or a macro, got {}",
                tokens.len()
            )])
            }
        };

        let mut problems = Vec::new();
        let mut fields = Vec::with_capacity(5);
        for (kind, text) in FieldKind::ALL.into_iter().zip(tokens) {
            match Field::parse(kind, text) {
                Ok(field) => fields.push(field),
                Err(mut more) => problems.append(&mut more),
            }
        }
        let [minute, hour, day_of_month, month, day_of_week] =
            <[Field; 5]>::try_from(fields).map_err(|_| problems)?;
        let fields = Fields {
            minute,
            hour,
            day_of_month,
            month,
            day_of_week,
        };
        match fields.never_occurring_day() {
            Some(problem) => Err(vec![problem]),
            None => Ok(fields),
        }
    }

    /// A day-of-month that no selected month has (`0 0 30 2 *`) would never fire.
    /// With a restricted day-of-week the expression still fires on those weekdays.
    fn never_occurring_day(&self) -> Option<String> {
        if self.day_of_month.is_star() || !self.day_of_week.is_star() {
            return None;
        }
        let months = self.month.values();
        let first_day = self.day_of_month.values().into_iter().next()?;
        let longest = months
            .iter()
            .map(|m| MONTH_MAX_DAYS[(*m as usize).saturating_sub(1) % 12])
            .max()?;
        (first_day > longest).then(|| {
            format!(
                "day-of-month: day {first_day} never occurs in month {:?} (allowed 1-{longest} there)",
                self.month.text
            )
        })
    }

    /// The fields as croner reads them.
    pub(crate) fn croner_text(&self) -> String {
        self.all().map(Field::croner_text).join(" ")
    }

    /// The fields as written, lowercased, one space apart.
    pub(crate) fn normalised(&self) -> String {
        self.all().map(|f| f.text.as_str()).join(" ")
    }

    /// Whether the expression is a fixed-time job (see the module docs on
    /// daylight saving): neither minute nor hour uses `*` or a step.
    pub(crate) fn is_fixed_time(&self) -> bool {
        !self.minute.is_interval() && !self.hour.is_interval()
    }

    fn all(&self) -> [&Field; 5] {
        [
            &self.minute,
            &self.hour,
            &self.day_of_month,
            &self.month,
            &self.day_of_week,
        ]
    }

    /// Whether every calendar day matches, under Vixie's day-of-month/day-of-week rule.
    fn every_day(&self) -> bool {
        let (dom, dow) = (&self.day_of_month, &self.day_of_week);
        match (dom.is_star(), dow.is_star()) {
            (true, true) => true,
            (true, false) => dow.covers_all(),
            (false, true) => dom.covers_all(),
            (false, false) => dom.covers_all() || dow.covers_all(),
        }
    }

    /// The canonical macro with exactly this schedule, if there is one.
    pub(crate) fn canonical_macro(&self) -> Option<&'static str> {
        let at_midnight = self.minute.values() == [0] && self.hour.values() == [0];
        let every_month = self.month.covers_all();
        let first_of_month = self.day_of_month.values() == [1] && self.day_of_week.is_star();
        if at_midnight && first_of_month && self.month.values() == [1] {
            Some("@yearly")
        } else if at_midnight && first_of_month && every_month {
            Some("@monthly")
        } else if at_midnight
            && every_month
            && self.day_of_month.is_star()
            && self.day_of_week.values() == [0]
        {
            Some("@weekly")
        } else if at_midnight && every_month && self.every_day() {
            Some("@daily")
        } else if self.minute.values() == [0]
            && self.hour.covers_all()
            && every_month
            && self.every_day()
        {
            Some("@hourly")
        } else {
            None
        }
    }
}
