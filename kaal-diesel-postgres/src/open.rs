//! Opening a database: the URL, session settings, the pool, and single connections for the
//! advisory lock session.

use std::fmt;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection};
use kaal_diesel::{build_pool, redact_password, scheme, ConnectionPool, OpenError};

use crate::options::PgOptions;
use crate::{PgDialect, BACKEND};

/// A PostgreSQL database as kaal connects to it: the URL libpq gets (with the password and
/// the connect timeout), the URL shown in messages (password hidden), the session settings.
#[derive(Clone)]
pub(crate) struct Target {
    url: String,
    shown: String,
    settings: SessionSettings,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the URL with its password.
        f.debug_struct("Target")
            .field("url", &self.shown)
            .finish_non_exhaustive()
    }
}

impl Target {
    /// Checks `locator` (a `postgres://` or `postgresql://` URL) and adds the connect timeout
    /// unless the URL sets one.
    pub(crate) fn new(locator: &str, options: &PgOptions) -> Result<Self, OpenError> {
        let shown = redact_password(locator.trim());
        let invalid = |reason: &str| OpenError::InvalidLocator {
            backend: BACKEND,
            locator: shown.clone(),
            reason: reason.to_string(),
        };
        match scheme(locator.trim()).as_deref() {
            Some("postgres" | "postgresql") => {}
            Some(other) => {
                return Err(invalid(&format!(
                    "scheme {other}: is not PostgreSQL; give postgres://user:password@host:port/database"
                )))
            }
            None => {
                return Err(invalid(
                    "not a URL; give postgres://user:password@host:port/database",
                ))
            }
        }
        let mut url = locator.trim().to_string();
        if !url.contains("connect_timeout=") {
            // libpq ignores values below 2 seconds and rounds down to whole seconds.
            let seconds = options.connect_timeout.as_secs().max(2);
            let separator = if url.contains('?') { '&' } else { '?' };
            url = format!("{url}{separator}connect_timeout={seconds}");
        }
        Ok(Self {
            url,
            shown,
            settings: SessionSettings::new(options),
        })
    }

    /// The URL as it appears in messages: password replaced by `***`.
    pub(crate) fn shown(&self) -> &str {
        &self.shown
    }

    /// A new connection with the session settings applied; `application_name` overrides the
    /// configured one.
    pub(crate) fn establish(&self, application_name: Option<&str>) -> Result<PgConnection, String> {
        let mut conn =
            PgConnection::establish(&self.url).map_err(|err| one_line(&err.to_string()))?;
        self.settings
            .apply(&mut conn, application_name)
            .map_err(|err| one_line(&err.to_string()))?;
        Ok(conn)
    }

    fn connect_error(&self, cause: String) -> OpenError {
        OpenError::Connect {
            backend: BACKEND,
            locator: self.shown.clone(),
            cause,
        }
    }
}

/// libpq's multi-line messages on one line.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `value` as a single-quoted SQL literal.
fn quoted(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Settings every connection gets when it is opened.
#[derive(Debug, Clone)]
struct SessionSettings {
    lock_timeout_ms: u128,
    application_name: String,
}

impl SessionSettings {
    fn new(options: &PgOptions) -> Self {
        Self {
            lock_timeout_ms: options.lock_timeout.as_millis(),
            application_name: options.application_name.clone(),
        }
    }

    fn apply(&self, conn: &mut PgConnection, application_name: Option<&str>) -> QueryResult<()> {
        let name = application_name.unwrap_or(&self.application_name);
        conn.batch_execute(&format!(
            "SET lock_timeout = {}; SET application_name = {}",
            quoted(&format!("{}ms", self.lock_timeout_ms)),
            quoted(name)
        ))
    }
}

impl CustomizeConnection<PgConnection, diesel::r2d2::Error> for SessionSettings {
    fn on_acquire(&self, conn: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
        self.apply(conn, None)
            .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// Opens `locator`: checks the URL, connects once (so an unreachable server, a wrong user
/// or password and a missing database are reported at once, in one line naming the URL
/// without its password), then builds the pool.
pub(crate) fn connect(
    locator: &str,
    options: &PgOptions,
) -> Result<(ConnectionPool<PgDialect>, String), OpenError> {
    let target = Target::new(locator, options)?;
    let conn = target
        .establish(None)
        .map_err(|cause| target.connect_error(cause))?;
    drop(conn);
    let pool = build_pool(
        ConnectionManager::new(target.url.clone()),
        &options.pool,
        Some(Box::new(target.settings.clone())),
    )
    .map_err(|err| target.connect_error(format!("connection pool: {err}")))?;
    Ok((pool, target.shown))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_get_a_connect_timeout_and_are_shown_without_password() {
        let options = PgOptions::default();
        let target = Target::new("postgres://kaal:s3cret@db:5432/app", &options).unwrap();
        assert_eq!(
            target.url,
            "postgres://kaal:s3cret@db:5432/app?connect_timeout=10"
        );
        assert_eq!(target.shown(), "postgres://kaal:***@db:5432/app");
        assert!(!format!("{target:?}").contains("s3cret"));
        let target = Target::new("postgresql://db/app?sslmode=disable", &options).unwrap();
        assert_eq!(
            target.url,
            "postgresql://db/app?sslmode=disable&connect_timeout=10"
        );
        let target = Target::new("postgres://db/app?connect_timeout=3", &options).unwrap();
        assert_eq!(target.url, "postgres://db/app?connect_timeout=3");
    }

    #[test]
    fn other_locators_are_refused_naming_what_to_give() {
        let options = PgOptions::default();
        for bad in [
            "mysql://u:pw@h/db",
            "/var/lib/kaal.db",
            "host=db dbname=app",
        ] {
            let err = Target::new(bad, &options).unwrap_err().to_string();
            assert!(
                err.starts_with("invalid PostgreSQL database locator"),
                "{bad}: {err}"
            );
            assert!(err.contains("postgres://"), "{err}");
            assert!(!err.contains(":pw@"), "{err}");
        }
    }

    #[test]
    fn settings_quote_their_values() {
        assert_eq!(quoted("it's"), "'it''s'");
        assert_eq!(one_line("a\n\tb  c\n"), "a b c");
    }
}
