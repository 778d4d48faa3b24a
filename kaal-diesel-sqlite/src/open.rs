//! Opening a database file: the locator, checks that write nothing, session settings, pool.

use std::collections::hash_map::RandomState;
use std::fs::{self, File};
use std::hash::BuildHasher;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection};
use diesel::sql_types::Text;
use kaal_diesel::{build_pool, scheme, ConnectionPool, OpenError};

use crate::options::SqliteOptions;
use crate::{SqliteDialect, BACKEND};

/// SQLite's messages for `SQLITE_BUSY` and `SQLITE_LOCKED` (Diesel reports both as
/// `DatabaseErrorKind::Unknown`).
pub(crate) const CONTENTION_MESSAGES: [&str; 3] = [
    "database is locked",
    "database table is locked",
    "database schema is locked",
];

/// The first 16 bytes of every SQLite database file.
const HEADER: &[u8; 16] = b"SQLite format 3\0";

/// The longest pause between two attempts to switch the file to WAL.
const MAX_WAL_SWITCH_PAUSE: Duration = Duration::from_millis(50);

/// The file path named by `locator`: a plain path, or `sqlite://path`, `sqlite:path`,
/// `sqlite3://...`, `file:...` (an absolute path after `//` keeps its slash:
/// `sqlite:///var/lib/kaal.db`).
pub(crate) fn database_path(locator: &str) -> Result<PathBuf, OpenError> {
    let invalid = |reason: &str| OpenError::InvalidLocator {
        backend: BACKEND,
        locator: locator.to_string(),
        reason: reason.to_string(),
    };
    let path = match scheme(locator).as_deref() {
        None => locator,
        Some("sqlite" | "sqlite3" | "file") => {
            let (_, rest) = locator.split_once(':').unwrap_or((locator, ""));
            rest.strip_prefix("//").unwrap_or(rest)
        }
        Some(other) => {
            return Err(invalid(&format!(
                "scheme {other}: is not SQLite; give a file path or sqlite://path"
            )))
        }
    };
    if path.is_empty() {
        return Err(invalid("no file path"));
    }
    if path == ":memory:" || path.contains("mode=memory") {
        return Err(invalid(
            "an in-memory database is private to one connection; kaal needs a file every node opens",
        ));
    }
    if path.contains('?') {
        return Err(invalid(
            "query parameters are not supported; settings go in SqliteOptions",
        ));
    }
    Ok(PathBuf::from(path))
}

/// Checks, without writing anything, that `path` is an existing SQLite database or a new
/// file in an existing directory.
fn check_file(path: &Path, shown: &str) -> Result<(), OpenError> {
    let not_a_database = |reason: &str| OpenError::NotADatabase {
        backend: BACKEND,
        locator: shown.to_string(),
        reason: reason.to_string(),
    };
    let unreadable = |err: io::Error| OpenError::Connect {
        backend: BACKEND,
        locator: shown.to_string(),
        cause: format!("cannot read the file: {err}"),
    };
    match fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Err(not_a_database("it is a directory")),
        // SQLite treats an empty file as an empty database (in WAL mode the main file can
        // stay empty until the first checkpoint).
        Ok(meta) if meta.len() == 0 => Ok(()),
        Ok(_) => {
            let mut header = [0_u8; 16];
            match File::open(path).and_then(|mut file| file.read_exact(&mut header)) {
                Ok(()) if &header == HEADER => Ok(()),
                Ok(()) => Err(not_a_database(
                    "the file is not a SQLite database (it does not start with \"SQLite format 3\")",
                )),
                Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => Err(not_a_database(
                    "the file is not a SQLite database (it is shorter than a SQLite header)",
                )),
                Err(err) => Err(unreadable(err)),
            }
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            let directory = match path.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
                _ => PathBuf::from("."),
            };
            if directory.is_dir() {
                Ok(())
            } else {
                Err(OpenError::MissingDirectory {
                    backend: BACKEND,
                    locator: shown.to_string(),
                    directory,
                })
            }
        }
        Err(err) => Err(unreadable(err)),
    }
}

/// Settings every connection gets when the pool opens it.
#[derive(Debug, Clone)]
struct SessionSettings {
    sql: String,
}

impl SessionSettings {
    fn new(options: &SqliteOptions) -> Self {
        let busy_ms = u32::try_from(options.busy_timeout.as_millis()).unwrap_or(u32::MAX);
        Self {
            sql: format!(
                "PRAGMA busy_timeout = {busy_ms}; PRAGMA synchronous = {};",
                options.synchronous.as_sql()
            ),
        }
    }

    fn apply(&self, conn: &mut SqliteConnection) -> QueryResult<()> {
        conn.batch_execute(&self.sql)
    }
}

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for SessionSettings {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        self.apply(conn).map_err(diesel::r2d2::Error::QueryError)
    }
}

#[derive(QueryableByName)]
struct JournalMode {
    #[diesel(sql_type = Text)]
    journal_mode: String,
}

/// Switches the database of `conn` to WAL; returns the journal mode SQLite answers.
///
/// Several processes starting together on one file all ask for WAL at once, and SQLite
/// answers some of them "database is locked" at once, without waiting out the busy timeout:
/// the pragma reads the file header first and then upgrades its read lock to write the new
/// file format, and SQLite refuses that upgrade immediately while another connection holds
/// the write lock (waiting could deadlock two upgraders). A file already in WAL mode needs no
/// write, but a fresh file or one in rollback-journal mode does. So a locked answer is
/// retried, with pauses doubling from 1 ms to [`MAX_WAL_SWITCH_PAUSE`] plus random jitter,
/// for as long as `patience` (the busy timeout); any other error, or a lock still held after
/// that, is returned.
fn switch_to_wal(conn: &mut SqliteConnection, patience: Duration) -> QueryResult<Vec<JournalMode>> {
    let started = Instant::now();
    let jitter = RandomState::new();
    let mut pause = Duration::from_millis(1);
    let mut attempt: u64 = 1;
    loop {
        match diesel::sql_query("PRAGMA journal_mode = WAL").load::<JournalMode>(conn) {
            Err(err) if is_locked(&err) && started.elapsed() < patience => {
                log::debug!("SQLite: switching to WAL, attempt {attempt}: {err}; retrying");
                let pause_micros = u64::try_from(pause.as_micros()).unwrap_or(u64::MAX);
                let extra = Duration::from_micros(jitter.hash_one(attempt) % pause_micros.max(1));
                let left = patience.saturating_sub(started.elapsed());
                thread::sleep((pause + extra).min(left));
                pause = (pause * 2).min(MAX_WAL_SWITCH_PAUSE);
                attempt += 1;
            }
            answer => return answer,
        }
    }
}

/// Whether `error` is SQLite's `SQLITE_BUSY` or `SQLITE_LOCKED`.
fn is_locked(error: &diesel::result::Error) -> bool {
    match error {
        diesel::result::Error::DatabaseError(_, info) => CONTENTION_MESSAGES
            .iter()
            .any(|message| info.message().starts_with(message)),
        _ => false,
    }
}

/// Opens `locator`: checks the file, switches the database to WAL, builds the pool.
pub(crate) fn connect(
    locator: &str,
    options: &SqliteOptions,
) -> Result<(ConnectionPool<SqliteDialect>, String), OpenError> {
    let path = database_path(locator)?;
    let shown = path.display().to_string();
    let path_text = path.to_str().ok_or_else(|| OpenError::InvalidLocator {
        backend: BACKEND,
        locator: shown.clone(),
        reason: "the path is not valid UTF-8".to_string(),
    })?;
    check_file(&path, &shown)?;
    let connect_error = |cause: String| OpenError::Connect {
        backend: BACKEND,
        locator: shown.clone(),
        cause,
    };
    let settings = SessionSettings::new(options);
    let mut conn =
        SqliteConnection::establish(path_text).map_err(|err| connect_error(err.to_string()))?;
    settings
        .apply(&mut conn)
        .map_err(|err| connect_error(err.to_string()))?;
    let mode = switch_to_wal(&mut conn, options.busy_timeout)
        .map_err(|err| connect_error(format!("cannot switch to WAL journal mode: {err}")))?;
    match mode
        .first()
        .map(|row| row.journal_mode.to_ascii_lowercase())
    {
        Some(mode) if mode == "wal" => {}
        other => {
            return Err(connect_error(format!(
                "cannot switch to WAL journal mode (SQLite answered {other:?}); kaal needs WAL \
                 so that nodes read while one writes — is the file on a network file system?"
            )))
        }
    }
    drop(conn);
    let pool = build_pool(
        ConnectionManager::new(path_text),
        &options.pool,
        Some(Box::new(settings)),
    )
    .map_err(|err| connect_error(format!("connection pool: {err}")))?;
    Ok((pool, shown))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locators_name_files_and_reject_what_cannot_be_shared() {
        let ok = |l: &str| database_path(l).unwrap().display().to_string();
        assert_eq!(ok("kaal.db"), "kaal.db");
        assert_eq!(ok("/var/lib/kaal.db"), "/var/lib/kaal.db");
        assert_eq!(ok("sqlite:///var/lib/kaal.db"), "/var/lib/kaal.db");
        assert_eq!(ok("sqlite://db/kaal.db"), "db/kaal.db");
        assert_eq!(ok("sqlite3:db/kaal.db"), "db/kaal.db");
        assert_eq!(ok("file:///tmp/k.db"), "/tmp/k.db");
        for bad in [
            "",
            "sqlite://",
            ":memory:",
            "sqlite::memory:",
            "postgres://h/db",
            "k.db?mode=ro",
        ] {
            let err = database_path(bad).unwrap_err().to_string();
            assert!(
                err.contains("invalid SQLite database locator"),
                "{bad}: {err}"
            );
        }
    }
}
