//! Lock keys and idempotency keys.
//!
//! * Lock key for a tick: `{namespace}:dispatch:{cron_key}:{fire_time_unix_seconds}`.
//! * Idempotency key handed to the job: `{namespace}-{cron_key}-{fire_time_unix_seconds}`.
//!
//! Cron keys may contain `:`; [`parse_lock_key`] splits at the first `:dispatch:` and the
//! last `:`, so it recovers them exactly as long as the namespace does not itself contain
//! `:dispatch:` (the configuration rejects such a namespace).

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

/// Checks that `cron_key` is usable under `namespace`: not blank, no control characters,
/// and short enough that every lock key built from it fits the 255-byte `key` columns.
///
/// A key that does not fit is an error, never silently truncated.
pub fn validate_cron_key(namespace: &str, cron_key: &str) -> Result<(), KeyError> {
    if cron_key.trim().is_empty() {
        return Err(KeyError::Blank);
    }
    if cron_key.chars().any(char::is_control) {
        return Err(KeyError::ControlCharacter {
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
}
