//! Lock keys and idempotency keys.
//!
//! * Lock key for a tick: `{namespace}:dispatch:{cron_key}:{fire_time_unix_seconds}`.
//! * Idempotency key handed to the job: `{namespace}-{cron_key}-{fire_time_unix_seconds}`.
//!
//! Cron keys may contain `:`; [`parse_lock_key`] splits at the first `:dispatch:` and the
//! last `:`, so it recovers them exactly as long as the namespace does not itself contain
//! `:dispatch:` (the configuration rejects such a namespace).
//!
//! Keys, namespaces and node ids may not begin or end with whitespace, because MySQL and
//! MariaDB compare `key` columns ignoring trailing spaces; [`validate_cron_key`] gives the
//! reasons in full.

use chrono::{DateTime, TimeZone, Utc};

use crate::error::KeyError;

/// Width of the `key` columns of the SQL schema, in bytes. Lock keys never exceed it.
pub const MAX_KEY_LEN: usize = 255;

/// Bytes reserved for the unix-seconds suffix of a lock key when checking a cron key's
/// length: ten digits cover every instant up to the year 2286.
const UNIX_DIGITS: usize = 10;

const DISPATCH_SEGMENT: &str = ":dispatch:";

/// The lock key that claims `fire_time` of `cron_key`.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
/// assert_eq!(kaal_core::lock_key("kaal", "reports:daily", t), "kaal:dispatch:reports:daily:1767225600");
/// ```
pub fn lock_key(namespace: &str, cron_key: &str, fire_time: DateTime<Utc>) -> String {
    format!(
        "{namespace}{DISPATCH_SEGMENT}{cron_key}:{}",
        fire_time.timestamp()
    )
}

/// The idempotency key handed to the job for `fire_time` of `cron_key`.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
/// assert_eq!(kaal_core::idempotency_key("kaal", "reports", t), "kaal-reports-1767225600");
/// ```
pub fn idempotency_key(namespace: &str, cron_key: &str, fire_time: DateTime<Utc>) -> String {
    format!("{namespace}-{cron_key}-{}", fire_time.timestamp())
}

/// Recovers `(cron_key, fire_time)` from a dispatch lock key, or `None` when `key` is not
/// one (a plain lock taken with [`with_lock`](crate::with_lock), say).
///
/// ```
/// let (key, at) = kaal_core::parse_lock_key("kaal:dispatch:a:b:60").unwrap();
/// assert_eq!((key.as_str(), at.timestamp()), ("a:b", 60));
/// assert!(kaal_core::parse_lock_key("kaal:other").is_none());
/// ```
pub fn parse_lock_key(key: &str) -> Option<(String, DateTime<Utc>)> {
    let start = key.find(DISPATCH_SEGMENT)? + DISPATCH_SEGMENT.len();
    let rest = &key[start..];
    let (cron_key, unix) = rest.rsplit_once(':')?;
    if cron_key.is_empty() || unix.is_empty() || !unix.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let seconds: i64 = unix.parse().ok()?;
    let fire_time = Utc.timestamp_opt(seconds, 0).single()?;
    Some((cron_key.to_string(), fire_time))
}

/// The longest cron key (in bytes) whose lock keys fit [`MAX_KEY_LEN`] under `namespace`.
pub fn max_cron_key_len(namespace: &str) -> usize {
    MAX_KEY_LEN.saturating_sub(namespace.len() + DISPATCH_SEGMENT.len() + 1 + UNIX_DIGITS)
}

/// Whether `text` begins or ends with whitespace (as [`str::trim`] sees it).
pub(crate) fn has_surrounding_whitespace(text: &str) -> bool {
    text.trim() != text
}

/// Checks that `cron_key` is usable under `namespace`: not blank, no control characters,
/// no whitespace at either end, and short enough that every lock key built from it fits the
/// 255-byte `key` columns.
///
/// A key that does not fit is an error, never silently truncated or trimmed.
///
/// # Whitespace at either end
///
/// A cron key may not begin or end with whitespace ([`KeyError::SurroundingWhitespace`]),
/// and neither may the namespace or the `node_id` (see
/// [`Config::validate`](crate::Config::validate)). The reason is the database, not taste:
/// the `utf8mb4_bin` collation of the `key` columns on MariaDB and MySQL is `PAD SPACE` —
/// it compares `'trail'` and `'trail '` as equal, in the unique indexes too. Two jobs
/// `trail` and `trail ` would share one lease row, one dispatch record per fire time and
/// one definition, so one of them would never run. PostgreSQL and SQLite tell them apart,
/// but a fleet must mean the same thing by a key on every backend, and a key that differs
/// from another only by surrounding blanks is almost always a typo. Refusing such keys
/// everywhere, at registration and when the scheduler file is read, gives every backend
/// the same answer without changing the schema (a `NO PAD` collation such as MySQL 8's
/// `utf8mb4_0900_bin` does not exist on MariaDB). Leading whitespace is refused with
/// trailing for symmetry. Whitespace inside a key (`"daily report"`) is fine: no collation
/// ignores it.
///
/// ```
/// use kaal_core::{validate_cron_key, KeyError};
///
/// assert!(validate_cron_key("kaal", "daily report").is_ok());
/// let err = validate_cron_key("kaal", "trail ").unwrap_err();
/// assert_eq!(err, KeyError::SurroundingWhitespace { key: "trail ".into() });
/// assert!(err.to_string().contains(r#"use "trail""#));
/// ```
pub fn validate_cron_key(namespace: &str, cron_key: &str) -> Result<(), KeyError> {
    if cron_key.trim().is_empty() {
        return Err(KeyError::Blank);
    }
    if cron_key.chars().any(char::is_control) {
        return Err(KeyError::ControlCharacter {
            key: cron_key.to_string(),
        });
    }
    if has_surrounding_whitespace(cron_key) {
        return Err(KeyError::SurroundingWhitespace {
            key: cron_key.to_string(),
        });
    }
    let max_key_len = max_cron_key_len(namespace);
    if cron_key.len() > max_key_len {
        return Err(KeyError::TooLong {
            key: cron_key.to_string(),
            needed: namespace.len() + DISPATCH_SEGMENT.len() + cron_key.len() + 1 + UNIX_DIGITS,
            limit: MAX_KEY_LEN,
            max_key_len,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_key_round_trips_through_parse_with_colons_in_the_cron_key() {
        let t = Utc.timestamp_opt(1_700_000_040, 0).unwrap();
        let key = lock_key("kaal", "billing:invoices:eu", t);
        assert_eq!(
            parse_lock_key(&key),
            Some(("billing:invoices:eu".into(), t))
        );
    }

    #[test]
    fn parse_rejects_keys_that_are_not_dispatch_keys() {
        for bad in [
            "kaal:dispatch:",
            "kaal:dispatch:a:",
            "kaal:dispatch:a:x1",
            "kaal:dispatch::5",
            "plain",
        ] {
            assert!(parse_lock_key(bad).is_none(), "{bad} parsed");
        }
    }

    #[test]
    fn blank_and_overlong_keys_are_rejected_and_the_limit_is_exact() {
        assert_eq!(validate_cron_key("kaal", "  "), Err(KeyError::Blank));
        let max = max_cron_key_len("kaal");
        let fits = "k".repeat(max);
        validate_cron_key("kaal", &fits).unwrap();
        let t = Utc.timestamp_opt(9_999_999_999, 0).unwrap();
        assert_eq!(lock_key("kaal", &fits, t).len(), MAX_KEY_LEN);
        let err = validate_cron_key("kaal", &"k".repeat(max + 1)).unwrap_err();
        assert!(err.to_string().contains("too long"), "{err}");
        assert!(validate_cron_key("kaal", "a\nb").is_err());
    }

    #[test]
    fn keys_with_whitespace_at_either_end_are_refused_naming_the_key_and_the_fix() {
        for key in [
            "trail ",
            " trail",
            "trail\u{a0}",
            "\u{3000}trail",
            " trail ",
        ] {
            let err = validate_cron_key("kaal", key).unwrap_err();
            assert_eq!(
                err,
                KeyError::SurroundingWhitespace { key: key.into() },
                "{key:?}"
            );
            let message = err.to_string();
            assert!(message.contains(&format!("{key:?}")), "{message}");
            assert!(
                message.contains("begins or ends with whitespace"),
                "{message}"
            );
            assert!(message.contains(r#"use "trail""#), "{message}");
        }
        // Control characters at an end are reported as such.
        assert!(matches!(
            validate_cron_key("kaal", "trail\t"),
            Err(KeyError::ControlCharacter { .. })
        ));
        for key in ["trail", "daily report", "a b:c"] {
            validate_cron_key("kaal", key).unwrap();
        }
    }
}
