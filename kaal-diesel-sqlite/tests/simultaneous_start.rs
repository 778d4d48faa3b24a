//! Many OS processes opening one SQLite file at the same instant — what `kaal start` on
//! several nodes of a host does: every process opens the file (switching it to WAL), runs
//! the migrations and claims a key. None may fail, whether the file is new, an existing
//! file still in rollback-journal mode, or an existing WAL file.
//!
//! A writer holding the file's lock while the processes start makes the race certain (see
//! the last test); the other rounds are the plain race, which failed a few processes in
//! some rounds before opening retried the switch to WAL.
//!
//! The processes are this test binary itself, re-run with [`CHILD_ENV`] set so that only
//! [`one_process_of_a_simultaneous_start`] does anything. Each child announces itself with
//! a `ready-<n>` file and waits for a `go` file, so all of them open the database within a
//! millisecond or so of each other.
#![allow(clippy::print_stdout)] // the figures of each round are printed, as the fleet suite's
#![allow(clippy::unwrap_used)] // tests state their expectations with unwrap

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use std::{env, fs, thread};

use common::{exec_file, text, FileDb, TempDb};
use diesel::connection::SimpleConnection;
use diesel::{Connection, SqliteConnection};
use kaal_core::Adapter;
use kaal_diesel_sqlite::{SqliteStore, TableShape};

/// Processes started at once per round.
const PROCESSES: usize = 40;
/// Set in a child: the directory holding the database and the barrier files.
const CHILD_ENV: &str = "KAAL_OPEN_CHILD";
/// Set in a child: its number.
const CHILD_INDEX_ENV: &str = "KAAL_OPEN_CHILD_INDEX";
/// The exit code of a child that could not open, migrate or claim (as `kaal start`).
const FAILED: i32 = 3;
/// How long anything in a round may take before the round fails.
const ROUND_LIMIT: Duration = Duration::from_secs(30);

/// One round at a time: two rounds of 40 processes on 2 cores would blur the start.
static ROUND: Mutex<()> = Mutex::new(());

/// What a child does: wait for `go`, then open, migrate, claim, as a starting node does.
/// A no-op in a normal test run.
#[test]
fn one_process_of_a_simultaneous_start() {
    let Some(dir) = env::var_os(CHILD_ENV).map(PathBuf::from) else {
        return;
    };
    let index = env::var(CHILD_INDEX_ENV).unwrap_or_default();
    fs::write(dir.join(format!("ready-{index}")), b"").expect("cannot announce the child");
    let deadline = Instant::now() + ROUND_LIMIT;
    while !dir.join("go").exists() {
        assert!(Instant::now() < deadline, "no go signal");
        thread::sleep(Duration::from_micros(200));
    }
    let locator = database(&dir);
    let outcome = SqliteStore::open(&locator)
        .map_err(|err| format!("open: {err}"))
        .and_then(|store| {
            store
                .run_migrations()
                .map_err(|err| format!("migrate: {err}"))?;
            store
                .acquire(&format!("node-{index}"), Duration::from_secs(60))
                .map_err(|err| format!("acquire: {err}"))?;
            Ok(())
        });
    if let Err(err) = outcome {
        eprintln!("child {index}: {err}");
        std::process::exit(FAILED);
    }
}

fn database(dir: &Path) -> String {
    dir.join("kaal.db")
        .to_str()
        .expect("temporary path is not UTF-8")
        .to_string()
}

/// Starts [`PROCESSES`] children on `db`'s file at once, runs `meanwhile` right after the
/// go signal, waits for them all; returns the messages of those that failed.
fn start_together(db: &TempDb, meanwhile: impl FnOnce()) -> Vec<String> {
    let dir = &db.dir();
    let exe = env::current_exe().expect("no test binary path");
    let children: Vec<Child> = (0..PROCESSES)
        .map(|index| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "one_process_of_a_simultaneous_start",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_ENV, dir)
                .env(CHILD_INDEX_ENV, index.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("cannot start a child")
        })
        .collect();
    let deadline = Instant::now() + ROUND_LIMIT;
    while (0..PROCESSES).any(|index| !dir.join(format!("ready-{index}")).exists()) {
        assert!(Instant::now() < deadline, "children did not start");
        thread::sleep(Duration::from_millis(2));
    }
    fs::write(dir.join("go"), b"").expect("cannot signal go");
    meanwhile();
    let outputs: Vec<Output> = children
        .into_iter()
        .map(|child| child.wait_with_output().expect("cannot wait for a child"))
        .collect();
    outputs
        .iter()
        .filter(|output| !output.status.success())
        .map(|output| {
            format!(
                "{}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )
        })
        .collect()
}

/// Runs `rounds` rounds, each on a file `prepare` makes, and asserts that every process of
/// every round opened, migrated and claimed.
fn every_process_starts(scenario: &str, rounds: usize, prepare: impl Fn() -> TempDb) {
    let _round = ROUND
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut failures = Vec::new();
    for _ in 0..rounds {
        let db = prepare();
        let failed = start_together(&db, || {});
        println!(
            "{scenario}: {PROCESSES} processes started at once, {} failed",
            failed.len()
        );
        check_the_file(&db, PROCESSES - failed.len());
        failures.extend(failed);
    }
    assert!(
        failures.is_empty(),
        "{scenario}: {} of {} processes failed:\n{}",
        failures.len(),
        rounds * PROCESSES,
        failures.join("\n")
    );
}

/// The file is migrated, in WAL mode, and holds the claims of the `started` children that
/// did not fail.
fn check_the_file(db: &TempDb, started: usize) {
    let store = db.open();
    assert_eq!(store.run_migrations().unwrap(), Vec::<String>::new());
    assert_eq!(
        store.verify_schema().unwrap(),
        TableShape {
            lock_timestamps: true,
            dispatch_timestamps: true
        }
    );
    assert_eq!(
        text(
            &store,
            "SELECT journal_mode AS value FROM pragma_journal_mode"
        ),
        "wal"
    );
    let claimed = text(
        &store,
        "SELECT CAST(count(*) AS TEXT) AS value FROM kaal_locks WHERE \"key\" LIKE 'node-%'",
    );
    assert_eq!(claimed, started.to_string());
}

/// A file in rollback-journal mode, as another program (or the Ruby gem) may have made it.
fn rollback_journal_file() -> TempDb {
    let db = TempDb::empty();
    exec_file(
        &db.path(),
        "CREATE TABLE app_data (id INTEGER PRIMARY KEY);",
    );
    db
}

#[test]
fn processes_starting_together_on_a_new_file_all_open_it() {
    every_process_starts("new file", 4, TempDb::empty);
}

#[test]
fn processes_starting_together_on_a_file_in_rollback_journal_mode_all_open_it() {
    every_process_starts("rollback-journal file", 4, rollback_journal_file);
}

#[test]
fn processes_starting_together_on_a_migrated_file_all_open_it() {
    every_process_starts("migrated file", 2, TempDb::migrated);
}

/// The race made certain: while one connection holds the write lock of a file still in
/// rollback-journal mode, every other connection's switch to WAL is refused at once
/// ("database is locked", no busy wait). Opening waits for the lock like any statement.
#[test]
fn processes_starting_while_another_connection_writes_the_file_all_open_it_once_it_commits() {
    let _round = ROUND
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let db = rollback_journal_file();
    let mut writer = SqliteConnection::establish(db.locator()).unwrap();
    writer
        .batch_execute(
            "PRAGMA busy_timeout = 20000; BEGIN IMMEDIATE; INSERT INTO app_data DEFAULT VALUES;",
        )
        .unwrap();
    let failures = start_together(&db, || {
        thread::sleep(Duration::from_millis(300));
        writer.batch_execute("COMMIT").unwrap();
    });
    println!(
        "writer holding the lock for 300 ms: {PROCESSES} processes started at once, {} failed",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {PROCESSES} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    check_the_file(&db, PROCESSES - failures.len());
}
