//! A fresh database per test, on each backend kaal supports, for the fleet tests.
//!
//! * SQLite: a file `kaal.db` in a temporary directory of its own, removed with it.
//! * PostgreSQL: a database `kaal_<prefix>_<pid>_<n>` created with `psql` on the server named
//!   by `KAAL_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`), dropped
//!   `WITH (FORCE)` when the guard drops.
//! * MySQL / MariaDB: the same with the `mysql` client on the server named by
//!   `KAAL_MYSQL_URL` (default `mysql://root@127.0.0.1:3306/test`).
//!
//! An unreachable server or a missing client fails the test with a message naming the server
//! URL (its password redacted); nothing is skipped. The clients need no cargo feature: the
//! tests that start `kaal` on these backends gate on `postgres` / `mysql` themselves.

use std::fmt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A backend kaal runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    Mysql,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
            Backend::Mysql => "MySQL/MariaDB",
        })
    }
}

impl Backend {
    /// The server a fresh database is created on (`None` for SQLite): the URL in
    /// `KAAL_POSTGRES_URL` / `KAAL_MYSQL_URL`, else the local test server.
    pub fn server_url(self) -> Option<String> {
        let (variable, default) = match self {
            Backend::Sqlite => return None,
            Backend::Postgres => (
                "KAAL_POSTGRES_URL",
                "postgres://postgres@127.0.0.1:5432/test",
            ),
            Backend::Mysql => ("KAAL_MYSQL_URL", "mysql://root@127.0.0.1:3306/test"),
        };
        Some(std::env::var(variable).unwrap_or_else(|_| default.to_string()))
    }

    /// Whether `kaal start` creates and migrates the database itself (SQLite only); the
    /// others need `kaal migrate` first.
    pub fn migrates_on_start(self) -> bool {
        self == Backend::Sqlite
    }
}

/// A fresh, empty database; removed (dropped, or its file deleted) when the guard drops.
#[derive(Debug)]
pub struct Database {
    backend: Backend,
    /// The database's name on its server; empty for SQLite.
    name: String,
    /// The URL kaal connects with.
    url: String,
    /// The directory holding the SQLite file.
    dir: Option<tempfile::TempDir>,
}

impl Database {
    /// Creates a fresh database on `backend`, named `kaal_<prefix>_<pid>_<n>` on a server
    /// (`prefix`: lowercase letters, digits and `_`). Panics, naming the server URL, when it
    /// cannot be created.
    pub fn create(backend: Backend, prefix: &str) -> Self {
        assert!(
            !prefix.is_empty()
                && prefix
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "database name prefix {prefix:?}: use lowercase letters, digits and '_'"
        );
        let Some(server) = backend.server_url() else {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("kaal.db").display());
            return Self {
                backend,
                name: String::new(),
                url,
                dir: Some(dir),
            };
        };
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "kaal_{prefix}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let created = match backend {
            Backend::Postgres => psql(
                &server,
                None,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            )
            .and_then(|_| psql(&server, None, &format!("CREATE DATABASE {name}"))),
            _ => mysql(
                &server,
                None,
                &format!("DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name}"),
            ),
        };
        if let Err(err) = created {
            panic!(
                "cannot create the test database {name} on the {backend} server {} \
                 (is the server running and reachable? {} names another): {err}",
                kaal_diesel::redact_password(&server),
                match backend {
                    Backend::Postgres => "KAAL_POSTGRES_URL",
                    _ => "KAAL_MYSQL_URL",
                }
            );
        }
        let url = with_database(&server, &name);
        Self {
            backend,
            name,
            url,
            dir: None,
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL kaal connects with (`database_url`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The SQLite file (`None` on a server).
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|dir| dir.path().join("kaal.db"))
    }

    /// The first column of the first row of `sql` (one query, run in this database), as
    /// text; empty for NULL or no row. Panics with the database's error.
    pub fn scalar(&self, sql: &str) -> String {
        let result = match self.backend {
            Backend::Sqlite => sqlite_scalar(&self.sqlite_path().unwrap(), sql),
            Backend::Postgres => psql(&self.server(), Some(&self.name), sql)
                .map(|out| out.lines().next().unwrap_or("").to_string()),
            Backend::Mysql => mysql(&self.server(), Some(&self.name), sql).map(|out| {
                let first = out.lines().next().unwrap_or("");
                let cell = first.split('\t').next().unwrap_or("");
                if cell == "NULL" { "" } else { cell }.to_string()
            }),
        };
        result.unwrap_or_else(|err| {
            panic!(
                "{sql} on {} failed: {err}",
                kaal_diesel::redact_password(&self.url)
            )
        })
    }

    /// Runs one data-changing statement `sql` (an `UPDATE`, say) in this database; returns
    /// how many rows it changed. Panics with the database's error.
    pub fn execute(&self, sql: &str) -> usize {
        let result = match self.backend {
            Backend::Sqlite => sqlite_execute(&self.sqlite_path().unwrap(), sql),
            // psql prints the command tag, `UPDATE 3`.
            Backend::Postgres => psql(&self.server(), Some(&self.name), sql).and_then(|out| {
                out.split_whitespace()
                    .last()
                    .and_then(|count| count.parse().ok())
                    .ok_or_else(|| format!("no row count in {out:?}"))
            }),
            Backend::Mysql => mysql(
                &self.server(),
                Some(&self.name),
                &format!("{sql}; SELECT ROW_COUNT()"),
            )
            .and_then(|out| {
                out.trim()
                    .parse()
                    .map_err(|_| format!("no row count in {out:?}"))
            }),
        };
        result.unwrap_or_else(|err| {
            panic!(
                "{sql} on {} failed: {err}",
                kaal_diesel::redact_password(&self.url)
            )
        })
    }

    fn server(&self) -> String {
        self.backend.server_url().unwrap_or_default()
    }
}

impl Drop for Database {
    /// Drops the server database; a failure is reported, not raised (a panic here while a
    /// failed test unwinds would abort the whole test binary).
    fn drop(&mut self) {
        let server = self.server();
        let dropped = match self.backend {
            Backend::Sqlite => return,
            Backend::Postgres => psql(
                &server,
                None,
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ),
            Backend::Mysql => mysql(
                &server,
                None,
                &format!("DROP DATABASE IF EXISTS {}", self.name),
            ),
        };
        if let Err(err) = dropped {
            eprintln!(
                "warning: could not drop the test database {} on {}: {err}",
                self.name,
                kaal_diesel::redact_password(&server)
            );
        }
    }
}

/// `url` with its database replaced by `database` (query string kept).
pub fn with_database(url: &str, database: &str) -> String {
    let authority = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[authority..];
    let path_start = authority + rest.find('/').unwrap_or(rest.len());
    let query_start = url[path_start..]
        .find('?')
        .map_or(url.len(), |i| path_start + i);
    format!("{}/{database}{}", &url[..path_start], &url[query_start..])
}

/// Runs `sql` with `psql` on the server's database (or on `database` of that server); its
/// unaligned, header-less output, or what went wrong.
fn psql(server: &str, database: Option<&str>, sql: &str) -> Result<String, String> {
    let url = database.map_or_else(|| server.to_string(), |db| with_database(server, db));
    let output = Command::new("psql")
        .args([
            url.as_str(),
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .output()
        .map_err(|err| format!("cannot run psql (needed to create test databases): {err}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "psql: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Runs `sql` with the `mysql` client on the server (in `database` when given); its
/// tab-separated, header-less output, or what went wrong.
fn mysql(server: &str, database: Option<&str>, sql: &str) -> Result<String, String> {
    let output = Command::new("mysql")
        .args(mysql_client_args(server))
        .args(database)
        .args(["-N", "-B", "-e", sql])
        .output()
        .map_err(|err| {
            format!("cannot run the mysql client (needed to create test databases): {err}")
        })?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "mysql: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// The `mysql` client's connection arguments for `url` (user, password, host, port).
fn mysql_client_args(url: &str) -> Vec<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let (user_info, host_port) = authority.rsplit_once('@').unwrap_or(("", authority));
    let (user, password) = user_info.split_once(':').unwrap_or((user_info, ""));
    let (host, port) = host_port.rsplit_once(':').unwrap_or((host_port, "3306"));
    let mut args = vec![
        format!("--host={host}"),
        format!("--port={port}"),
        "--protocol=TCP".to_string(),
    ];
    if !user.is_empty() {
        args.push(format!("--user={user}"));
    }
    if !password.is_empty() {
        args.push(format!("--password={password}"));
    }
    args
}

/// The value of the scalar subquery `(sql)` in the SQLite file at `path`, as text.
fn sqlite_scalar(path: &std::path::Path, sql: &str) -> Result<String, String> {
    use diesel::sql_types::{Nullable, Text};
    use diesel::{Connection, RunQueryDsl, SqliteConnection};
    let mut conn = SqliteConnection::establish(&path.display().to_string())
        .map_err(|err| format!("cannot open {}: {err}", path.display()))?;
    diesel::select(diesel::dsl::sql::<Nullable<Text>>(&format!("({sql})")))
        .get_result::<Option<String>>(&mut conn)
        .map(Option::unwrap_or_default)
        .map_err(|err| err.to_string())
}

/// Runs the statement `sql` in the SQLite file at `path`; how many rows it changed.
fn sqlite_execute(path: &std::path::Path, sql: &str) -> Result<usize, String> {
    use diesel::{Connection, RunQueryDsl, SqliteConnection};
    let mut conn = SqliteConnection::establish(&path.display().to_string())
        .map_err(|err| format!("cannot open {}: {err}", path.display()))?;
    diesel::sql_query(sql)
        .execute(&mut conn)
        .map_err(|err| err.to_string())
}
