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
