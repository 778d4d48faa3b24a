//! Placeholders in job commands: `{{fire_time.iso8601}}`, `{{fire_time.unix}}`,
//! `{{idempotency_key}}`, `{{key}}`, `{{fencing_token}}` (the run's fencing token; empty
//! with the dispatch log off) and `{{attempt}}` (1 for the first attempt).
//!
//! In a `shell:` string a value is never shell code: [`Template::render_shell`] quotes each
//! one for where it stands (a single-quoted word outside quotes, escaped inside `'…'` or
//! `"…"`), so a job key such as `k;touch X` reaches the shell as those characters. The one
//! place this cannot reach is the body of a here-document; use `$KAAL_KEY` and the other
//! `KAAL_*` variables there.

use std::fmt;

use kaal_core::chrono::SecondsFormat;
use kaal_core::Fire;

/// The placeholder names a template may use.
pub const PLACEHOLDERS: &[&str] = &[
    "fire_time.iso8601",
    "fire_time.unix",
    "idempotency_key",
    "key",
    "fencing_token",
    "attempt",
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    FireTimeIso8601,
    FireTimeUnix,
    IdempotencyKey,
    Key,
    FencingToken,
    Attempt,
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
///     fencing_token: Some(42),
///     attempt: 1,
///     timeout: None,
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
                "fencing_token" => Part::FencingToken,
                "attempt" => Part::Attempt,
                other => {
                    return Err(format!(
                        "unknown placeholder {{{{{other}}}}} in {source:?}{}; known: {}",
                        crate::suggest::did_you_mean(other, PLACEHOLDERS),
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
    /// UTC, RFC 3339 with a `Z`, for `iso8601`), as it is: for an argument or a variable,
    /// which no shell reads.
    pub fn render(&self, fire: &Fire) -> String {
        let mut out = String::with_capacity(self.source.len() + 32);
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                value => out.push_str(&value_of(value, fire)),
            }
        }
        out
    }

    /// The text for `sh -c`: every placeholder's value quoted for where it stands, so the
    /// shell reads it as data, never as code.
    ///
    /// * outside quotes: a single-quoted word, `'` written as `'\''`;
    /// * inside `'…'`: `'` written as `'\''` (close, escaped quote, reopen);
    /// * inside `"…"`: `\`, `"`, `$` and `` ` `` escaped with a backslash;
    /// * in a `#` comment: as it is, newlines left out.
    ///
    /// ```
    /// use kaal::chrono::{TimeZone, Utc};
    /// use kaal::{Fire, Template};
    ///
    /// let fire = Fire {
    ///     key: "k;touch X".into(),
    ///     fire_time: Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap(),
    ///     idempotency_key: "kaal-k;touch X-1767258000".into(),
    ///     fencing_token: Some(42),
    ///     attempt: 1,
    ///     timeout: None,
    /// };
    /// let t = Template::parse("echo {{key}} \"at {{key}}\" 'for {{key}}'")?;
    /// assert_eq!(
    ///     t.render_shell(&fire),
    ///     "echo 'k;touch X' \"at k;touch X\" 'for k;touch X'"
    /// );
    /// # Ok::<(), String>(())
    /// ```
    pub fn render_shell(&self, fire: &Fire) -> String {
        let mut out = String::with_capacity(self.source.len() + 32);
        let mut lexer = ShellLexer::default();
        for part in &self.parts {
            match part {
                Part::Text(text) => {
                    out.push_str(text);
                    lexer.read(text);
                }
                value => lexer.quote(&value_of(value, fire), &mut out),
            }
        }
        out
    }
}

/// The value of a placeholder part for `fire`.
fn value_of(part: &Part, fire: &Fire) -> String {
    match part {
        Part::Text(text) => text.clone(),
        Part::FireTimeIso8601 => fire.fire_time.to_rfc3339_opts(SecondsFormat::Secs, true),
        Part::FireTimeUnix => fire.fire_time.timestamp().to_string(),
        Part::IdempotencyKey => fire.idempotency_key.clone(),
        Part::Key => fire.key.clone(),
        Part::FencingToken => fire
            .fencing_token
            .map(|t| t.to_string())
            .unwrap_or_default(),
        Part::Attempt => fire.attempt.to_string(),
    }
}

/// Where a POSIX shell reading the text so far stands: enough of its lexer to quote a value
/// inserted at that point.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Quoting {
    /// Outside quotes.
    #[default]
    Bare,
    /// Inside `'…'`.
    Single,
    /// Inside `"…"`.
    Double,
    /// In a `#` comment, up to the end of the line.
    Comment,
}

#[derive(Debug, Default)]
struct ShellLexer {
    quoting: Quoting,
    /// The last character was a backslash that escapes the next one.
    escaped: bool,
    /// The last character ends a word (or there was none): a `#` here starts a comment.
    word_start: bool,
}

impl ShellLexer {
    fn read(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        for c in text.chars() {
            let at_word_start = std::mem::replace(&mut self.word_start, false);
            if std::mem::take(&mut self.escaped) {
                continue;
            }
            match (self.quoting, c) {
                (Quoting::Bare | Quoting::Double, '\\') => self.escaped = true,
                (Quoting::Bare, '\'') => self.quoting = Quoting::Single,
                (Quoting::Bare, '"') | (Quoting::Double, '"') => {
                    self.quoting = if self.quoting == Quoting::Bare {
                        Quoting::Double
                    } else {
                        Quoting::Bare
                    }
                }
                (Quoting::Single, '\'') => self.quoting = Quoting::Bare,
                (Quoting::Bare, '#') if at_word_start => self.quoting = Quoting::Comment,
                (Quoting::Comment, '\n') => {
                    self.quoting = Quoting::Bare;
                    self.word_start = true;
                }
                (Quoting::Bare, c) if c.is_whitespace() || ";&|()<>".contains(c) => {
                    self.word_start = true;
                }
                _ => {}
            }
        }
    }

    /// Appends `value` to `out`, quoted for the current position.
    fn quote(&mut self, value: &str, out: &mut String) {
        if std::mem::take(&mut self.escaped) {
            // A backslash right before the placeholder would escape the quoting; a
            // backslash-newline is a line continuation, which the shell removes.
            out.push('\n');
        }
        match self.quoting {
            Quoting::Bare => {
                out.push('\'');
                out.push_str(&value.replace('\'', "'\\''"));
                out.push('\'');
            }
            Quoting::Single => out.push_str(&value.replace('\'', "'\\''")),
            Quoting::Double => {
                for c in value.chars() {
                    if matches!(c, '\\' | '"' | '$' | '`') {
                        out.push('\\');
                    }
                    out.push(c);
                }
            }
            Quoting::Comment => out.extend(value.chars().filter(|c| *c != '\n' && *c != '\r')),
        }
        self.word_start = false;
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
            fencing_token: Some(42),
            attempt: 1,
            timeout: None,
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

    fn hostile() -> Fire {
        Fire {
            key: "k'; touch PWNED; echo \"$(id)`id`\\".into(),
            fire_time: Utc.with_ymd_and_hms(2026, 1, 1, 0, 1, 0).unwrap(),
            idempotency_key: "kaal-x-1".into(),
            fencing_token: Some(42),
            attempt: 1,
            timeout: None,
        }
    }

    /// What `sh` makes of `script`: its words, one per line.
    fn sh_words(script: &str) -> String {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf '%s\\n' {script}"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn a_hostile_key_reaches_the_shell_as_one_literal_word_wherever_it_stands() {
        let fire = hostile();
        for (script, expected) in [
            ("{{key}}", format!("{}\n", fire.key)),
            ("x{{key}}y", format!("x{}y\n", fire.key)),
            ("'in {{key}} single'", format!("in {} single\n", fire.key)),
            ("\"in {{key}} double\"", format!("in {} double\n", fire.key)),
            ("a\\{{key}}", format!("a{}\n", fire.key)),
            ("\"a\\{{key}}\"", format!("a{}\n", fire.key)),
            ("a #{{key}}", "a\n".to_string()),
        ] {
            let rendered = Template::parse(script).unwrap().render_shell(&fire);
            assert_eq!(
                sh_words(&rendered),
                expected,
                "{script} rendered {rendered}"
            );
        }
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
