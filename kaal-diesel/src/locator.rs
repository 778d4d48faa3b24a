//! Database locators: URLs in messages without their passwords.

/// `url` with the password of its user-info replaced by `***`, for messages and logs.
/// Anything that does not look like `scheme://user:password@host...` is returned unchanged.
///
/// ```
/// use kaal_diesel::redact_password;
/// assert_eq!(redact_password("postgres://kaal:s3cr3t@db:5432/app"), "postgres://kaal:***@db:5432/app");
/// assert_eq!(redact_password("mysql://db/app"), "mysql://db/app");
/// assert_eq!(redact_password("/var/lib/kaal.db"), "/var/lib/kaal.db");
/// ```
pub fn redact_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let authority_start = scheme_end + 3;
    let rest = &url[authority_start..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_len];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let user_info = &authority[..at];
    let Some(colon) = user_info.find(':') else {
        return url.to_string();
    };
    format!(
        "{}{}:***{}",
        &url[..authority_start],
        &user_info[..colon],
        &url[authority_start + at..]
    )
}

/// The scheme of `locator` (`postgres` in `postgres://...`), lower-cased, if it has one.
///
/// ```
/// assert_eq!(kaal_diesel::scheme("SQLite:///tmp/k.db").as_deref(), Some("sqlite"));
/// assert_eq!(kaal_diesel::scheme("/tmp/k.db"), None);
/// assert_eq!(kaal_diesel::scheme("C:\\kaal.db"), None);
/// ```
pub fn scheme(locator: &str) -> Option<String> {
    let (scheme, _) = locator.split_once(':')?;
    let valid = scheme.len() > 1
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then(|| scheme.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden_and_everything_else_kept() {
        assert_eq!(
            redact_password("mysql://root:p@ss@host/db?x=1"),
            "mysql://root:***@host/db?x=1"
        );
        assert_eq!(
            redact_password("postgres://user@host/db"),
            "postgres://user@host/db"
        );
        assert_eq!(
            redact_password("postgres://host/db?user=a@b"),
            "postgres://host/db?user=a@b"
        );
    }
}
