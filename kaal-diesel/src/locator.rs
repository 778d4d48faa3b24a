//! Database locators: URLs in messages without their passwords.

/// The query keys whose values are passwords (`?password=...`, libpq's `sslpassword=`),
/// matched without regard to case.
const PASSWORD_KEYS: &[&str] = &["password", "sslpassword"];

/// `url` with its password replaced by `***`, for messages and logs: the one place kaal
/// decides what of a database URL is secret.
///
/// * **User-info.** Everything between the first `:` after `scheme://` and the **last** `@`
///   is the password, even when it contains an unencoded `#`, `/`, `?`, `@` or `:` that a
///   URL parser would take for the end of the authority (`postgres://u:pa#ss@host/db`,
///   `mysql://u:p/w?x@host/db`): when in doubt, more is hidden rather than less. Without a
///   `:` before that `@` there is no password (`postgres://user@host/db`).
/// * **Query and key=value settings.** The value of every `password=` and `sslpassword=`
///   (after `?`, `&`, whitespace or at the start) up to the next `&` or whitespace.
///
/// Anything else is returned unchanged.
///
/// ```
/// use kaal_diesel::redact_password;
/// assert_eq!(redact_password("postgres://kaal:s3cr3t@db:5432/app"), "postgres://kaal:***@db:5432/app");
/// assert_eq!(redact_password("postgres://u:pa#ss/x@db/app"), "postgres://u:***@db/app");
/// assert_eq!(redact_password("postgres://db/app?password=s3cr3t&sslmode=off"), "postgres://db/app?password=***&sslmode=off");
/// assert_eq!(redact_password("mysql://db/app"), "mysql://db/app");
/// assert_eq!(redact_password("/var/lib/kaal.db"), "/var/lib/kaal.db");
/// ```
pub fn redact_password(url: &str) -> String {
    let (head, tail) = match url.find("://") {
        Some(scheme_end) => {
            let authority_start = scheme_end + 3;
            let rest = &url[authority_start..];
            match rest.rfind('@') {
                Some(at) => match rest[..at].find(':') {
                    Some(colon) => (
                        format!("{}:***", &url[..authority_start + colon]),
                        &rest[at..],
                    ),
                    None => (String::new(), url),
                },
                None => (String::new(), url),
            }
        }
        None => (String::new(), url),
    };
    head + &redact_password_settings(tail)
}

/// `text` with the value of every `password=` / `sslpassword=` setting replaced by `***`.
fn redact_password_settings(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut at_start = true;
    while !rest.is_empty() {
        let boundary =
            at_start || out.ends_with(['?', '&', ';']) || out.ends_with(char::is_whitespace);
        if boundary {
            if let Some(key) = PASSWORD_KEYS.iter().find(|key| {
                rest.as_bytes().get(key.len()) == Some(&b'=')
                    && rest
                        .get(..key.len())
                        .is_some_and(|name| name.eq_ignore_ascii_case(key))
            }) {
                let value_start = key.len() + 1;
                let value_len = rest[value_start..]
                    .find(|c: char| c == '&' || c.is_whitespace())
                    .unwrap_or(rest.len() - value_start);
                out.push_str(&rest[..value_start]);
                out.push_str("***");
                rest = &rest[value_start + value_len..];
                at_start = false;
                continue;
            }
        }
        let next = rest.chars().next().map_or(1, char::len_utf8);
        out.push_str(&rest[..next]);
        rest = &rest[next..];
        at_start = false;
    }
    out
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
        assert_eq!(
            redact_password("postgres://host:5432/db?sslmode=require"),
            "postgres://host:5432/db?sslmode=require"
        );
    }

    #[test]
    fn hostile_passwords_never_appear_in_the_redacted_url() {
        for (url, secret) in [
            ("postgres://u:pa#ss@host/db", "pa#ss"),
            ("postgres://u:s3cr#t/x@127.0.0.1:1/db", "s3cr"),
            ("mysql://u:p/w?x@host/db", "p/w?x"),
            ("mysql://u:s3cr?t@host/db", "s3cr"),
            ("postgres://u:a@b@c:d@host/db", "a@b@c:d"),
            ("postgres://u:s3cr3t@", "s3cr3t"),
            ("postgres://u:with:colons@host/db", "with:colons"),
            ("postgres://u:s3cr3t@host/db?password=other1", "other1"),
            ("postgres://u@host/db?sslmode=off&password=s3cr3t", "s3cr3t"),
            ("postgres://u@host/db?PASSWORD=s3cr3t", "s3cr3t"),
            ("postgres://u@host/db?sslpassword=s3cr3t&x=1", "s3cr3t"),
            ("host=db user=u password=s3cr3t dbname=kaal", "s3cr3t"),
            ("POSTGRES://u:s3cr3t@host/db", "s3cr3t"),
            ("postgres://u:ünï©ødé@host/db", "ünï©ødé"),
            ("postgres://h/d?pässwörd=x&password=s3cr3t", "s3cr3t"),
        ] {
            let shown = redact_password(url);
            assert!(!shown.contains(secret), "{url} shown as {shown}");
            assert!(shown.contains("***"), "{url} shown as {shown}");
        }
        assert_eq!(
            redact_password("mysql://u:p/w?x@host/db"),
            "mysql://u:***@host/db"
        );
        assert_eq!(
            redact_password("postgres://u@host/db?sslmode=off&password=s3cr3t"),
            "postgres://u@host/db?sslmode=off&password=***"
        );
    }

    #[test]
    fn a_password_like_word_that_is_not_a_setting_is_kept() {
        assert_eq!(
            redact_password("postgres://host/db?application_name=nopassword"),
            "postgres://host/db?application_name=nopassword"
        );
        assert_eq!(redact_password("mypassword=x"), "mypassword=x");
    }
}
