//! What the commands print: tables and times. The only place the tool writes to stdout.
//!
//! Every write is checked: a command stops at the first line that cannot be written. A
//! reader that went away (`kaal status | head -1`, a closed pipe) ends the command quietly
//! with exit 0, as `git log | head` does; any other write error is a one-line message on
//! stderr and exit 4.

use std::io::{self, Write};

use kaal::chrono::{DateTime, SecondsFormat, Utc};
use kaal::chrono_tz::Tz;

use super::Failure;

/// Writes one line.
pub(crate) fn line(text: impl AsRef<str>) -> Result<(), Failure> {
    write_stdout(|out| writeln!(out, "{}", text.as_ref()))
}

/// Writes `rows` under `header`, columns padded to their widest cell, two spaces apart.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> Result<(), Failure> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let render = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        cells
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                if i == last {
                    cell.to_string()
                } else {
                    format!("{cell:<width$}", width = widths[i])
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    write_stdout(|out| {
        writeln!(out, "{}", render(header.to_vec()))?;
        for row in rows {
            writeln!(out, "{}", render(row.iter().map(String::as_str).collect()))?;
        }
        Ok(())
    })
}

/// Runs `write` on locked stdout and flushes it, so that an error surfaces here and not in
/// a later write or at exit.
fn write_stdout(
    write: impl FnOnce(&mut io::StdoutLock<'_>) -> io::Result<()>,
) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    write(&mut out)
        .and_then(|()| out.flush())
        .map_err(Failure::output)
}

/// `text` as one table cell on one line, whatever it holds: control characters (newlines,
/// tabs, escape sequences), the Unicode line and paragraph separators and the bidirectional
/// controls (which reorder what follows them on screen) are written as Rust escapes
/// (`\n`, `\t`, `\u{1b}`, `\u{202e}`), and a backslash as `\\`, so the escapes read
/// back unambiguously. Everything else — quotes, accents, any script, emoji — is kept.
pub(crate) fn cell(text: &str) -> String {
    let mut shown = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => shown.push_str("\\\\"),
            '\n' => shown.push_str("\\n"),
            '\r' => shown.push_str("\\r"),
            '\t' => shown.push_str("\\t"),
            c if c.is_control() || is_layout_control(c) => shown.extend(c.escape_unicode()),
            c => shown.push(c),
        }
    }
    shown
}

/// The characters that are not control characters but change how a terminal lays out
/// what follows: line and paragraph separators, bidirectional marks, embeddings, overrides
/// and isolates.
fn is_layout_control(c: char) -> bool {
    matches!(
        c,
        '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
    )
}

/// A run's duration, short: `340ms`, `12.500s`, `3m05s`, `1h02m07s` (a negative one, which
/// only clocks that went back can give, with a `-`).
pub(crate) fn duration(d: kaal::chrono::Duration) -> String {
    let sign = if d < kaal::chrono::Duration::zero() {
        "-"
    } else {
        ""
    };
    let millis = d.num_milliseconds().unsigned_abs();
    let (hours, minutes, seconds, millis) = (
        millis / 3_600_000,
        millis / 60_000 % 60,
        millis / 1_000 % 60,
        millis % 1_000,
    );
    if hours > 0 {
        format!("{sign}{hours}h{minutes:02}m{seconds:02}s")
    } else if minutes > 0 {
        format!("{sign}{minutes}m{seconds:02}s")
    } else if seconds > 0 {
        format!("{sign}{seconds}.{millis:03}s")
    } else {
        format!("{sign}{millis}ms")
    }
}

/// RFC 3339 in UTC with a `Z`, e.g. `2026-01-01T09:00:00Z`.
pub(crate) fn utc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `2026-01-01 09:00:00 GMT` in `tz`.
pub(crate) fn zoned(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .format("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

#[cfg(test)]
mod tests {
    use kaal::chrono::Duration;

    use super::*;

    #[test]
    fn a_cell_is_one_line_and_keeps_printable_text() {
        assert_eq!(
            cell("it's \"quoted\" ünï 漢字 🦀"),
            "it's \"quoted\" ünï 漢字 🦀"
        );
        assert_eq!(
            cell("a\nb\r\nc\td\\e"),
            "a\\nb\\r\\nc\\td\\\\e",
            "escapes read back unambiguously"
        );
        assert_eq!(cell("\u{1b}[31mred"), "\\u{1b}[31mred");
        assert_eq!(
            cell("x\u{202e}evil\u{2066}y\u{2028}z\u{85}"),
            "x\\u{202e}evil\\u{2066}y\\u{2028}z\\u{85}"
        );
        assert!(!cell("\u{0}\u{7f}\u{9b}").chars().any(char::is_control));
    }

    #[test]
    fn durations_are_short() {
        assert_eq!(duration(Duration::milliseconds(340)), "340ms");
        assert_eq!(duration(Duration::milliseconds(12_500)), "12.500s");
        assert_eq!(duration(Duration::seconds(185)), "3m05s");
        assert_eq!(duration(Duration::seconds(3_727)), "1h02m07s");
        assert_eq!(duration(Duration::zero()), "0ms");
        assert_eq!(duration(Duration::milliseconds(-1_500)), "-1.500s");
    }
}
