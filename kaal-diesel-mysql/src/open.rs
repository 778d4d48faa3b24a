//! Opening a database: the URL, a reachability check with a timeout, the first connection
//! (so bad credentials or a missing database are one clear error), session settings, pool.

use std::net::{TcpStream, ToSocketAddrs};

use diesel::connection::SimpleConnection;
use diesel::mysql::MysqlConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection};
use diesel::{Connection, QueryResult};
use kaal_diesel::{build_pool, redact_password, ConnectionPool, OpenError};
use url::Url;

use crate::options::MysqlOptions;
use crate::{MysqlDialect, BACKEND};

/// The MySQL port when the URL names none.
const DEFAULT_PORT: u16 = 3306;

/// A parsed `mysql://` (or `mariadb://`) URL.
#[derive(Clone)]
pub(crate) struct Locator {
    /// The URL as Diesel takes it (`mysql://`), password included.
    url: String,
    /// The URL for messages, password hidden.
    pub(crate) shown: String,
    /// The database the URL names.
    pub(crate) database: String,
    /// Host and port to check with a timeout before connecting (`None` for Unix sockets).
    tcp: Option<(String, u16)>,
}

impl std::fmt::Debug for Locator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Locator")
            .field("url", &self.shown)
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

impl Locator {
    /// Parses `locator`: `mysql://[user[:password]@]host[:port]/database[?options]`
    /// (`mariadb://` is accepted as a synonym); the database is required.
    pub(crate) fn parse(locator: &str) -> Result<Self, OpenError> {
        let locator = locator.trim();
        let shown = redact_password(locator);
        let invalid = |reason: String| OpenError::InvalidLocator {
            backend: BACKEND,
            locator: shown.clone(),
            reason,
        };
        let mut url = Url::parse(locator).map_err(|err| {
            invalid(format!(
                "not a URL ({err}); expected mysql://user:password@host:port/database"
            ))
        })?;
        match url.scheme().to_ascii_lowercase().as_str() {
            "mysql" => {}
            "mariadb" => url
                .set_scheme("mysql")
                .map_err(|()| invalid("cannot use scheme mariadb".to_string()))?,
            other => {
                return Err(invalid(format!(
                "scheme {other}: is not MySQL; expected mysql://user:password@host:port/database"
            )))
            }
        }
        let mut segments = url.path_segments().into_iter().flatten();
        let database = segments.next().unwrap_or_default().to_string();
        if database.is_empty() || segments.next().is_some() {
            return Err(invalid(
                "name one database: mysql://user:password@host:port/database".to_string(),
            ));
        }
        let socket = url.query_pairs().any(|(name, _)| name == "unix_socket");
        let tcp = match url.host_str() {
            // libmysqlclient connects to "localhost" through the Unix socket.
            Some(host)
                if !socket && !host.eq_ignore_ascii_case("localhost") && !host.is_empty() =>
            {
                let host = host.trim_start_matches('[').trim_end_matches(']');
                Some((host.to_string(), url.port().unwrap_or(DEFAULT_PORT)))
            }
            _ => None,
        };
        Ok(Self {
            url: url.to_string(),
            shown,
            database,
            tcp,
        })
    }

    fn connect_error(&self, cause: impl ToString) -> OpenError {
        OpenError::Connect {
            backend: BACKEND,
            locator: self.shown.clone(),
            cause: cause.to_string(),
        }
    }

    /// Checks that the server's port answers within `options.connect_timeout`.
    fn check_reachable(&self, options: &MysqlOptions) -> Result<(), OpenError> {
        let Some((host, port)) = &self.tcp else {
            return Ok(());
        };
        let addresses: Vec<_> = (host.as_str(), *port)
            .to_socket_addrs()
            .map_err(|err| self.connect_error(format!("cannot resolve host {host}: {err}")))?
            .collect();
        let mut last = None;
        for address in &addresses {
            match TcpStream::connect_timeout(address, options.connect_timeout) {
                Ok(_) => return Ok(()),
                Err(err) => last = Some(err),
            }
        }
        let cause = last.map_or_else(|| "no address".to_string(), |err| err.to_string());
        Err(self.connect_error(format!("server {host}:{port} is unreachable: {cause}")))
    }

    /// Opens one connection with the session settings applied: the reachability check
    /// first, then the MySQL handshake (credentials, database).
    pub(crate) fn establish(&self, options: &MysqlOptions) -> Result<MysqlConnection, OpenError> {
        self.check_reachable(options)?;
        let mut conn =
            MysqlConnection::establish(&self.url).map_err(|err| self.connect_error(err))?;
        SessionSettings::new(options)
            .apply(&mut conn)
            .map_err(|err| self.connect_error(format!("session settings: {err}")))?;
        Ok(conn)
    }
}

/// Settings every connection gets when it is opened.
#[derive(Debug, Clone)]
struct SessionSettings {
    sql: String,
}

impl SessionSettings {
    fn new(options: &MysqlOptions) -> Self {
        let wait = options.lock_wait_timeout.as_secs().max(1);
        // READ COMMITTED: an UPDATE waits only for rows it would change (see the batch
        // claim). Strict mode whatever the server's default: a value too long for its column
        // is an error, never a silent truncation.
        Self {
            sql: format!(
                "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED; \
                 SET SESSION innodb_lock_wait_timeout = {wait}, \
                 SESSION sql_mode = CONCAT_WS(',', NULLIF(@@SESSION.sql_mode, ''), 'STRICT_ALL_TABLES')"
            ),
        }
    }

    fn apply(&self, conn: &mut MysqlConnection) -> QueryResult<()> {
        conn.batch_execute(&self.sql)
    }
}

impl CustomizeConnection<MysqlConnection, diesel::r2d2::Error> for SessionSettings {
    fn on_acquire(&self, conn: &mut MysqlConnection) -> Result<(), diesel::r2d2::Error> {
        self.apply(conn).map_err(diesel::r2d2::Error::QueryError)
    }
}

/// Opens `locator`: checks it with one connection, then builds the pool.
pub(crate) fn connect(
    locator: &str,
    options: &MysqlOptions,
) -> Result<(ConnectionPool<MysqlDialect>, String), OpenError> {
    let locator = Locator::parse(locator)?;
    drop(locator.establish(options)?);
    let pool = build_pool(
        ConnectionManager::new(locator.url.clone()),
        &options.pool,
        Some(Box::new(SessionSettings::new(options))),
    )
    .map_err(|err| locator.connect_error(format!("connection pool: {err}")))?;
    Ok((pool, locator.shown))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_database_and_passwords_stay_hidden() {
        let ok = Locator::parse("mysql://kaal:s3cret@db.example:3307/app").unwrap();
        assert_eq!(ok.shown, "mysql://kaal:***@db.example:3307/app");
        assert_eq!(ok.database, "app");
        assert_eq!(ok.tcp, Some(("db.example".to_string(), 3307)));
        assert!(!format!("{ok:?}").contains("s3cret"));

        let maria = Locator::parse("mariadb://root@127.0.0.1/test").unwrap();
        assert!(maria.url.starts_with("mysql://"));
        assert_eq!(maria.tcp, Some(("127.0.0.1".to_string(), 3306)));

        let socket = Locator::parse("mysql://root@localhost/test").unwrap();
        assert_eq!(socket.tcp, None);

        for bad in [
            "mysql://kaal:s3cret@db.example:3307",
            "mysql://kaal:s3cret@db.example/",
            "mysql://kaal:s3cret@db.example/a/b",
            "postgres://kaal:s3cret@db.example/app",
            "not a url",
        ] {
            let err = Locator::parse(bad).unwrap_err().to_string();
            assert!(
                err.contains("invalid MySQL database locator"),
                "{bad}: {err}"
            );
            assert!(!err.contains("s3cret"), "{bad}: {err}");
        }
    }
}
