//! Placeholders in job commands: `{{fire_time.iso8601}}`, `{{fire_time.unix}}`,
//! `{{idempotency_key}}` and `{{key}}`.

use std::fmt;

use kaal_core::chrono::SecondsFormat;
use kaal_core::Fire;

/// The placeholder names a template may use.
pub const PLACEHOLDERS: &[&str] = &[
    "fire_time.iso8601",
    "fire_time.unix",
    "idempotency_key",
    "key",
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    FireTimeIso8601,
    FireTimeUnix,
    IdempotencyKey,
    Key,
}

/// A string with placeholders, checked when it is parsed and filled in for each fire time.
///
/// ```
/// use kaal::chrono::{TimeZone, Utc};
/// use kaal::{Fire, Template};
///
/// let t = Template::parse("report --at {{fire_time.iso8601}} --id {{ idempotency_key }}")?;
/// let fire = Fire {
///     key: "report".into(),
///     fire_time: Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap(),
///     idempotency_key: "kaal-report-1767258000".into(),
/// };
/// assert_eq!(t.render(&fire), "report --at 2026-01-01T09:00:00Z --id kaal-report-1767258000");
/// assert!(Template::parse("{{fire_time}}").is_err());
/// # Ok::<(), String>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

impl Template {
    /// Parses `source`. Whitespace inside the braces is allowed (`{{ key }}`).
    ///
    /// # Errors
    ///
    /// A message naming the problem: an unknown placeholder (with the list of known ones) or
    /// a `{{` without its `}}`.
    pub fn parse(source: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let body = &rest[open + 2..];
            let close = body.find("}}").ok_or_else(|| {
                format!("malformed placeholder in {source:?}: \"{{{{\" without a closing \"}}}}\"")
            })?;
            let name = body[..close].trim();
            let part = match name {
                "fire_time.iso8601" => Part::FireTimeIso8601,
                "fire_time.unix" => Part::FireTimeUnix,
                "idempotency_key" => Part::IdempotencyKey,
                "key" => Part::Key,
                other => {
                    return Err(format!(
                        "unknown placeholder {{{{{other}}}}} in {source:?}{}; known: {}",
                        crate::problems::did_you_mean(other, PLACEHOLDERS),
                        PLACEHOLDERS
                            .iter()
                            .map(|p| format!("{{{{{p}}}}}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                }
            };
            parts.push(part);
            rest = &body[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Self {
            source: source.to_string(),
            parts,
        })
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The text with every placeholder replaced by its value for `fire` (the fire time in
    /// UTC, RFC 3339 with a `Z`, for `iso8601`).
    pub fn render(&self, fire: &Fire) -> String {
        let mut out = String::with_capacity(self.source.len() + 32);
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::FireTimeIso8601 => {
                    out.push_str(&fire.fire_time.to_rfc3339_opts(SecondsFormat::Secs, true))
                }
                Part::FireTimeUnix => out.push_str(&fire.fire_time.timestamp().to_string()),
                Part::IdempotencyKey => out.push_str(&fire.idempotency_key),
                Part::Key => out.push_str(&fire.key),
            }
        }
        out
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kaal_core::chrono::{TimeZone, Utc};

    #[test]
    fn every_placeholder_renders() {
        let fire = Fire {
            key: "a:b".into(),
            fire_time: Utc.with_ymd_and_hms(2026, 1, 1, 0, 1, 0).unwrap(),
            idempotency_key: "kaal-a:b-1767225660".into(),
        };
        let t = Template::parse(
            "{{key}} {{fire_time.unix}} {{fire_time.iso8601}} {{idempotency_key}}!",
        )
        .unwrap();
        assert_eq!(
            t.render(&fire),
            "a:b 1767225660 2026-01-01T00:01:00Z kaal-a:b-1767225660!"
        );
    }

    #[test]
    fn unknown_and_unclosed_placeholders_are_rejected() {
        let err = Template::parse("x {{fire_time.iso}}").unwrap_err();
        assert!(
            err.contains("unknown placeholder {{fire_time.iso}}"),
            "{err}"
        );
        assert!(err.contains("did you mean"), "{err}");
        let err = Template::parse("x {{key").unwrap_err();
        assert!(err.contains("malformed placeholder"), "{err}");
    }
}
