//! End to end on every backend: several `kaal` processes on one database, checked from the
//! files the jobs write. One set of scenarios, run once per database URL — SQLite, and
//! PostgreSQL / MySQL (MariaDB) with the `postgres` / `mysql` features
//! (`cargo test -p kaal --all-features --test cli_backends`) — each in a module named after
//! its backend, beside the checks only that backend has.
//!
//! Every test creates a fresh database with [`Database::create`] (a file in a temporary
//! directory; on a server, `kaal_cli_<pid>_<n>` on the server named by `KAAL_POSTGRES_URL` /
//! `KAAL_MYSQL_URL`, created and dropped with `psql` / `mysql`). An unreachable server (or a
//! missing client) fails the test, naming the URL; nothing is skipped.
#![cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Child;
use std::time::{Duration, Instant};

use common::databases::{Backend, Database};
use common::{alive, sorted_lines, Node, Project, Run};

/// Two jobs that append `fire_time.unix pid` to a file per key.
const TWO_JOBS: &str = "\
defaults:
  jobs:
    - key: every-minute
      cron: \"* * * * *\"
      shell: \"echo {{fire_time.unix}} $$ >> out/{{key}}.log\"
    - key: every-two
      cron: \"*/2 * * * *\"
      command: [\"sh\", \"-c\", \"echo $0 $$ >> out/every-two.log\", \"{{fire_time.unix}}\"]
      env: { IDEMPOTENCY: \"{{idempotency_key}}\" }
";

/// A job that appends its fire time to `minute.log` every minute.
const EVERY_MINUTE: &str = "defaults:\n  jobs:\n    - key: minute\n      cron: \"* * * * *\"\n      shell: \"echo {{fire_time.unix}} >> minute.log\"\n";

/// How `kaal status` names the backend and its URL.
fn status_label(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "SQLite sqlite://",
        Backend::Postgres => "PostgreSQL postgres://",
        Backend::Mysql => "MySQL mysql://",
    }
}

/// A project on a fresh database of `backend`, with `settings` (YAML lines, indented by two)
/// added to `defaults:` and `jobs` as the scheduler file; `out/` exists.
fn project(db: &Database, settings: &str, jobs: &str) -> Project {
    let project = Project::new();
    project.write_config(&format!(
        "defaults:\n  database_url: {}\n  recovery_startup_jitter: 0\n{settings}",
        db.url()
    ));
    project.write("kaal-scheduler.yml", jobs);
    std::fs::create_dir_all(project.path("out")).unwrap();
    project
}

/// `kaal migrate`, where `kaal tick` / `kaal start` do not create the tables themselves
/// (every backend but SQLite).
fn migrate_unless_automatic(db: &Database, project: &Project) {
    if !db.backend().migrates_on_start() {
        project.run(&["migrate"]).ok();
    }
}

fn fire_times(project: &Project, key: &str) -> Vec<String> {
    sorted_lines(&project.path(&format!("out/{key}.log")))
        .into_iter()
        .map(|line| line.split(' ').next().unwrap().to_string())
        .collect()
}

/// Three `kaal tick --at` processes started together dispatch each fire time once; the log
/// agrees; a later tick at the same instant dispatches nothing.
fn three_ticks_run_each_fire_time_once(backend: Backend, settings: &str) {
    let db = Database::create(backend, "cli");
    let project = project(&db, settings, TWO_JOBS);
    project.run(&["migrate"]).ok();
    project.run(&["migrate"]).ok(); // idempotent

    let at = "2026-01-01T09:00:30Z";
    let children: Vec<Child> = (0..3)
        .map(|_| project.spawn(&["tick", "--at", at]))
        .collect();
    let runs: Vec<Run> = children
        .into_iter()
        .map(|child| Run::from(child.wait_with_output().unwrap()))
        .collect();
    let dispatched: usize = runs
        .iter()
        .map(|run| {
            run.ok()
                .lines()
                .filter(|l| l.starts_with("dispatched "))
                .count()
        })
        .sum();
    // 08:59 and 09:00 for every-minute, 09:00 for every-two: three fire times, once each.
    assert_eq!(
        fire_times(&project, "every-minute"),
        ["1767257940", "1767258000"]
    );
    assert_eq!(fire_times(&project, "every-two"), ["1767258000"]);
    assert_eq!(dispatched, 3, "{runs:#?}");

    // The log agrees, and a later tick at the same instant dispatches nothing.
    let again = project.run(&["tick", "--at", at]);
    assert!(again.ok().contains("0 dispatched (0 failed)"), "{again:#?}");
    assert!(again.stdout.contains("3 already dispatched"), "{again:#?}");
    let log = project.run(&["dispatches", "--key", "every-minute"]);
    let rows: Vec<&str> = log.ok().lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{log:#?}");
    assert!(
        rows[0].starts_with("2026-01-01 09:00:00 UTC  every-minute  succeeded"),
        "{rows:?}"
    );
    let status = project.run(&["status"]);
    assert!(status.ok().contains(status_label(backend)), "{status:#?}");
}

/// `kaal status` lists the stored jobs in the configured time zone; `disable` / `enable`
/// change what the next tick runs (re-applying the same file keeps a job disabled);
/// `dispatches` filters by status, limit and time.
fn status_enable_disable_and_dispatches_work_on_the_stored_jobs(backend: Backend) {
    let db = Database::create(backend, "cli");
    let project = project(&db, "  time_zone: Europe/London\n", TWO_JOBS);
    migrate_unless_automatic(&db, &project);
    project.run(&["tick", "--at", "2026-06-01T09:00:30Z"]).ok();

    let status = project.run(&["status"]);
    let text = status.ok();
    assert!(text.contains(status_label(backend)), "{text}");
    assert!(text.contains("time zone Europe/London"), "{text}");
    let row = text.lines().find(|l| l.starts_with("every-two")).unwrap();
    assert!(
        row.contains("every 2 minutes") && row.contains("yes") && row.contains("file"),
        "{row}"
    );
    assert!(
        row.contains("2026-06-01 10:00:00 BST succeeded by"),
        "{row}"
    );

    project.run(&["disable", "every-two"]).ok();
    let row = project
        .run(&["status"])
        .stdout
        .lines()
        .find(|l| l.starts_with("every-two"))
        .unwrap()
        .to_string();
    assert!(row.contains(" no "), "{row}");
    // Disabled: the next tick skips it, and re-applying the same file keeps it disabled.
    let tick = project.run(&["tick", "--at", "2026-06-01T09:02:30Z"]);
    assert!(
        tick.ok()
            .contains("dispatched every-minute 2026-06-01T09:02:00Z"),
        "{tick:#?}"
    );
    assert!(!tick.stdout.contains("every-two"), "{tick:#?}");
    project.run(&["enable", "every-two"]).ok();
    let tick = project.run(&["tick", "--at", "2026-06-01T09:04:10Z"]);
    assert!(
        tick.ok()
            .contains("dispatched every-two 2026-06-01T09:04:00Z"),
        "{tick:#?}"
    );

    let failed = project.run(&["dispatches", "--status", "failed"]);
    assert_eq!(failed.ok(), "no dispatches match\n");
    let limited = project.run(&[
        "dispatches",
        "--limit",
        "2",
        "--since",
        "2026-06-01T09:01:00Z",
    ]);
    assert_eq!(limited.ok().lines().count(), 3, "{limited:#?}");
    project
        .run(&["dispatches", "--status", "lost"])
        .fails(2, &["--status", "lost"]);
}

/// A job past its timeout is killed with its children and recorded timed_out; the tick exits 1,
/// the other job still runs, and the failed fire time is not run again.
fn a_job_past_its_timeout_is_killed_marked_failed_and_the_others_still_run(backend: Backend) {
    let db = Database::create(backend, "cli");
    let project = project(
        &db,
        "",
        "defaults:
  jobs:
    - key: a-slow
      cron: \"0 * * * *\"
      shell: \"sleep 30 & echo $! > sleep.pid; wait\"
      timeout: 1
    - key: b-fast
      cron: \"0 * * * *\"
      command: [\"sh\", \"-c\", \"echo done > fast.log\"]
",
    );
    migrate_unless_automatic(&db, &project);
    let started = Instant::now();
    let tick = project.run(&["tick", "--at", "2026-01-01T10:00:05Z"]);
    assert_eq!(
        tick.code,
        Some(1),
        "a failed job makes tick exit 1: {tick:#?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the slow job was not cut short"
    );
    assert!(
        tick.stdout.contains("failed a-slow 2026-01-01T10:00:00Z kaal-a-slow-1767261600: timed out after 1 s and was killed"),
        "{tick:#?}"
    );
    assert!(
        tick.stdout
            .contains("dispatched b-fast 2026-01-01T10:00:00Z"),
        "{tick:#?}"
    );
    assert!(
        tick.stderr
            .contains("a-slow at 2026-01-01 10:00:00 UTC failed: timed out"),
        "{tick:#?}"
    );
    assert_eq!(project.read("fast.log"), "done\n");
    let sleeper: u32 = project.read("sleep.pid").trim().parse().unwrap();
    assert!(
        !alive(sleeper),
        "the job's child process {sleeper} survived the kill"
    );

    let failed = project.run(&["dispatches", "--status", "timed_out"]);
    let rows: Vec<&str> = failed.ok().lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{failed:#?}");
    assert!(
        rows[0].contains("a-slow") && rows[0].contains("timed_out"),
        "{rows:?}"
    );
    // A fire time that timed out counts as dispatched: it is not run again.
    let again = project.run(&["tick", "--at", "2026-01-01T10:00:10Z"]);
    assert!(again.ok().contains("0 dispatched"), "{again:#?}");
}

/// `kaal dispatches` shows each run's lifecycle — token, attempt, start, end, duration,
/// error — one line per row whatever the error text holds (newlines, tabs, terminal escapes,
/// bidirectional overrides are escaped; quotes and any script kept), and `--status` takes
/// the lifecycle's statuses.
fn dispatches_show_each_runs_lifecycle_on_one_line_per_row(backend: Backend) {
    use kaal::chrono::{TimeZone, Utc};
    use kaal::{dispatch_log_key, DispatchStatus, RunUpdate};

    let db = Database::create(backend, "cli");
    let project = project(&db, "", EVERY_MINUTE);
    project.run(&["migrate"]).ok();
    let database = kaal::connect(db.url()).unwrap();
    let adapter = database.adapter();
    let log = adapter.dispatch_registry().unwrap();
    let key = dispatch_log_key("kaal", "minute");
    let minute = |m| Utc.with_ymd_and_hms(2026, 1, 1, 9, m, 0).unwrap();
    let hostile = "exit 3: it's \"bad\"\nline two\ttabbed \\ \u{1b}[31mred\u{1b}[0m \u{202e}txet \u{2028}漢字 🦀";
    let mut tokens = Vec::new();
    for (m, to, error) in [
        (0, DispatchStatus::Failed, Some(hostile)),
        (1, DispatchStatus::Succeeded, None),
    ] {
        let pair = [(key.clone(), minute(m))];
        log.commit_claims(&pair, "node-a").unwrap();
        tokens.push(log.start_run(&key, minute(m), "node-a").unwrap().unwrap());
        assert!(log
            .record_run(
                &key,
                minute(m),
                "node-a",
                DispatchStatus::Dispatched,
                to,
                &RunUpdate {
                    attempt: 1,
                    error: error.map(str::to_string),
                },
            )
            .unwrap());
    }
    log.commit_claims(&[(key.clone(), minute(2))], "node-b")
        .unwrap();

    let shown = project.run(&["dispatches", "--key", "minute"]);
    let lines: Vec<&str> = shown.ok().lines().collect();
    assert_eq!(lines.len(), 4, "a header and one line per row: {shown:#?}");
    let header: Vec<&str> = lines[0]
        .split("  ")
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .collect();
    assert_eq!(
        header,
        [
            "FIRE TIME",
            "KEY",
            "STATUS",
            "NODE",
            "TOKEN",
            "ATTEMPT",
            "STARTED (UTC)",
            "FINISHED (UTC)",
            "DURATION",
            "RECORDED AT (UTC)",
            "ERROR"
        ]
    );
    assert!(!shown.stdout.contains('\u{1b}') && !shown.stdout.contains('\u{202e}'));
    let cells =
        |line: &str| -> Vec<String> { line.split_whitespace().map(str::to_string).collect() };
    // Newest first: the claim never started, the success, the failure.
    let claimed = cells(lines[1]);
    assert_eq!(
        (&claimed[..6], &claimed[7..11]),
        (
            &[
                "2026-01-01",
                "09:02:00",
                "UTC",
                "minute",
                "claimed",
                "node-b"
            ]
            .map(String::from)[..],
            &["0", "-", "-", "-"].map(String::from)[..]
        ),
        "attempt 0, never started: {}",
        lines[1]
    );
    assert!(
        claimed[6].parse::<i64>().unwrap() > tokens[1],
        "{}",
        lines[1]
    );
    assert!(lines[1].ends_with(" -"), "no error: {}", lines[1]);
    let succeeded = cells(lines[2]);
    assert_eq!(
        succeeded[3..8],
        ["minute", "succeeded", "node-a", &tokens[1].to_string(), "1"],
        "{}",
        lines[2]
    );
    assert!(
        succeeded[8].ends_with('Z') && succeeded[9].ends_with('Z'),
        "{}",
        lines[2]
    );
    assert!(succeeded[10].ends_with('s'), "a duration: {}", lines[2]);
    assert!(lines[2].ends_with(" -"), "no error: {}", lines[2]);
    let failed = cells(lines[3]);
    assert_eq!(
        failed[3..8],
        ["minute", "failed", "node-a", &tokens[0].to_string(), "1"],
        "{}",
        lines[3]
    );
    assert!(
        lines[3].ends_with(
            "exit 3: it's \"bad\"\\nline two\\ttabbed \\\\ \\u{1b}[31mred\\u{1b}[0m \\u{202e}txet \\u{2028}漢字 🦀"
        ),
        "{}",
        lines[3]
    );

    let succeeded = project.run(&["dispatches", "--status", "succeeded"]);
    assert_eq!(succeeded.ok().lines().count(), 2, "{succeeded:#?}");
    let timed_out = project.run(&["dispatches", "--status", "timed_out"]);
    assert_eq!(timed_out.ok(), "no dispatches match\n");
    let all = project.run(&["dispatches"]);
    assert_eq!(
        all.ok().lines().count(),
        4,
        "every status is listed: {all:#?}"
    );
}

/// The database's current UTC time minus `seconds`, in the definitions' timestamp format.
fn database_now_minus(backend: Backend, seconds: u32) -> String {
    match backend {
        Backend::Sqlite => {
            format!("strftime('%Y-%m-%d %H:%M:%f', 'now', '-{seconds} seconds') || '000'")
        }
        Backend::Postgres => format!("(now() AT TIME ZONE 'UTC') - interval '{seconds} seconds'"),
        Backend::Mysql => format!("UTC_TIMESTAMP(6) - INTERVAL {seconds} SECOND"),
    }
}

/// `kaal start` recovers the owed window, exits 0 on SIGTERM within a tick; a restart
/// (stopped by SIGINT) runs no fire time a second time.
fn start_exits_0_on_sigterm_within_a_tick_and_a_restart_replays_nothing(backend: Backend) {
    let db = Database::create(backend, "cli");
    let project = project(
        &db,
        "  tick_interval: 3\n  window_lookback: 60\n  lease_ttl: 70\n  recovery_window: 180\n",
        EVERY_MINUTE,
    );
    migrate_unless_automatic(&db, &project);
    // The job was defined ten minutes ago (a first tick stores it; its schedule is then
    // moved back), so its 180 s recovery window is owed.
    project.run(&["tick"]).ok();
    let ten_minutes_ago = database_now_minus(backend, 600);
    let moved = db.execute(&format!(
        "UPDATE kaal_definitions SET created_at = {ten_minutes_ago}, schedule_since = {ten_minutes_ago}"
    ));
    assert_eq!(moved, 1);
    let first = Node::start(&project);
    let recovery = first.wait_for("recovery:");
    assert!(recovery.contains("dispatched"), "{recovery}");
    let (code, took) = first.terminate("TERM");
    assert_eq!(code, Some(0));
    assert!(
        took < Duration::from_secs(3),
        "took {took:?} to stop, tick_interval is 3 s"
    );
    let after_first = sorted_lines(&project.path("minute.log"));
    // Recovery runs the 180 s window (3 fire times, a fourth if a minute turns meanwhile).
    assert!(
        (3..=4).contains(&after_first.len()),
        "recovery runs its window: {after_first:?}"
    );

    let second = Node::start(&project);
    let recovery = second.wait_for("recovery:");
    let (code, _) = second.terminate("INT");
    assert_eq!(code, Some(0));
    assert!(!recovery.contains(" 0 already dispatched"), "{recovery}");
    let lines = sorted_lines(&project.path("minute.log"));
    let mut unique = lines.clone();
    unique.dedup();
    assert_eq!(lines, unique, "a fire time ran twice across the restart");
}

/// A plain tick runs no fire time from before the job its file just defined: the tick's
/// instant is read after the file is applied.
fn a_plain_tick_runs_nothing_from_before_the_job_its_file_just_defined(backend: Backend) {
    let db = Database::create(backend, "cli");
    let project = project(&db, "", EVERY_MINUTE);
    migrate_unless_automatic(&db, &project);
    let defined_no_earlier_than = kaal::chrono::Utc::now().timestamp();
    project.run(&["tick"]).ok();
    // A fire time from before the job existed is not owed — the tick's instant is read after
    // the file is applied (it was read before: the job looked defined after the tick, and the
    // tick ran the previous two minutes).
    let ran = sorted_lines(&project.path("minute.log"));
    assert!(
        ran.iter()
            .all(|unix| unix.parse::<i64>().unwrap() >= defined_no_earlier_than),
        "ran fire times from before the job existed: {ran:?}"
    );
}

/// A database on the server that does not exist: one error line naming the URL (its
/// password hidden) and the server's cause, exit 3.
#[cfg(any(feature = "postgres", feature = "mysql"))]
fn a_missing_database_is_one_error_naming_the_url(url: &str, expected: &[&str]) {
    let project = Project::new();
    project.write_config(&format!("defaults:\n  database_url: {url}\n"));
    let line = project.run(&["migrate"]).fails(3, expected);
    assert!(!line.contains("s3cret"), "{line}");
}

/// Unreachable URLs whose passwords hold URL delimiters: `migrate` and `status` fail with
/// one error line naming the backend, showing no piece of the password.
#[cfg(any(feature = "postgres", feature = "mysql"))]
fn an_unreachable_url_with_a_hostile_password_names_no_piece_of_it(urls: &[&str], name: &str) {
    for url in urls {
        let project = Project::new();
        project.write_config(&format!("defaults:\n  database_url: \"{url}\"\n"));
        for command in ["migrate", "status"] {
            let run = project.run(&[command]);
            let line = run.fails(3, &[name, "***"]);
            assert!(!run.stderr.contains("s3cr"), "{url}: {line}");
        }
    }
}

/// `url` with `password` as the password of its user.
#[cfg(feature = "postgres")]
fn with_password(url: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (user_info, host) = rest.rsplit_once('@').unwrap();
    let user = user_info.split(':').next().unwrap();
    format!("{scheme}://{user}:{password}@{host}")
}

/// The scenarios every backend runs, as `#[test]`s in a module named `$module` on
/// `$backend`, followed by `$extra` (the backend's own checks).
macro_rules! scenarios {
    ($module:ident, $backend:expr, { $($extra:item)* }) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;

            #[test]
            fn three_ticks_on_the_lease_table_run_each_fire_time_exactly_once() {
                three_ticks_run_each_fire_time_once($backend, "");
            }

            #[test]
            fn status_enable_disable_and_dispatches_work_on_the_stored_jobs() {
                super::status_enable_disable_and_dispatches_work_on_the_stored_jobs($backend);
            }

            #[test]
            fn a_job_past_its_timeout_is_killed_marked_failed_and_the_others_still_run() {
                super::a_job_past_its_timeout_is_killed_marked_failed_and_the_others_still_run(
                    $backend,
                );
            }

            #[test]
            fn start_exits_0_on_sigterm_within_a_tick_and_a_restart_replays_nothing() {
                super::start_exits_0_on_sigterm_within_a_tick_and_a_restart_replays_nothing(
                    $backend,
                );
            }

            #[test]
            fn dispatches_show_each_runs_lifecycle_on_one_line_per_row() {
                super::dispatches_show_each_runs_lifecycle_on_one_line_per_row($backend);
            }

            #[test]
            fn a_plain_tick_runs_nothing_from_before_the_job_its_file_just_defined() {
                super::a_plain_tick_runs_nothing_from_before_the_job_its_file_just_defined(
                    $backend,
                );
            }

            $($extra)*
        }
    };
}

#[cfg(feature = "sqlite")]
scenarios!(sqlite, Backend::Sqlite, {
    #[test]
    fn a_file_that_is_not_a_database_is_a_store_error_and_left_untouched() {
        let project = Project::sqlite("", TWO_JOBS);
        project.write("kaal.db", "not a database, just text\n");
        project.run(&["migrate"]).fails(3, &["kaal.db", "SQLite"]);
        project.run(&["tick"]).fails(3, &["kaal.db"]);
        assert_eq!(project.read("kaal.db"), "not a database, just text\n");
    }
});

#[cfg(feature = "postgres")]
scenarios!(postgres, Backend::Postgres, {
    use common::databases::with_database;

    #[test]
    fn three_ticks_on_advisory_locks_run_each_fire_time_exactly_once() {
        three_ticks_run_each_fire_time_once(Backend::Postgres, "  lock_strategy: advisory\n");
    }

    #[test]
    fn a_missing_database_is_one_error_naming_the_url_without_its_password() {
        let url = with_database(
            &Backend::Postgres.server_url().unwrap(),
            "kaal_cli_no_such_database",
        );
        let (scheme, rest) = url.split_once("://").unwrap();
        let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
        let url = format!("{scheme}://postgres:s3cret@{host}");
        a_missing_database_is_one_error_naming_the_url(
            &url,
            &[
                &url.replace(":s3cret@", ":***@"),
                "\"kaal_cli_no_such_database\" does not exist",
            ],
        );
    }

    #[test]
    fn an_unreachable_url_with_a_hostile_password_names_no_piece_of_it() {
        super::an_unreachable_url_with_a_hostile_password_names_no_piece_of_it(
            &[
                "postgres://u:s3cr#t/x@127.0.0.1:1/db",
                "postgres://u:s3cr?t@127.0.0.1:1/db",
                "postgres://u:pa#s3cr@127.0.0.1:1/db",
                "postgres://u:s3cr@t@127.0.0.1:1/db",
                "postgres://u@127.0.0.1:1/db?password=s3cret",
                "postgres://u@127.0.0.1:1/db?sslmode=disable&sslpassword=s3cret",
            ],
            "PostgreSQL",
        );
    }

    #[test]
    fn a_job_gets_neither_the_database_url_nor_its_password_unless_its_env_names_them() {
        let db = Database::create(Backend::Postgres, "cli");
        // The test server trusts local connections: the password is carried, not checked.
        let url = with_password(db.url(), "s3cretpw");
        let project = Project::new();
        project.write_config(
            "defaults:\n  database_url: ${KAAL_DATABASE_URL}\n  recovery_startup_jitter: 0\n",
        );
        project.write(
            "kaal-scheduler.yml",
            "defaults:
  jobs:
    - key: plain
      cron: \"0 * * * *\"
      shell: \"env > plain.env\"
    - key: asks
      cron: \"0 * * * *\"
      shell: \"env > asks.env\"
      env: { APP_DSN: \"mine\", DATABASE_URL: \"given\" }
",
        );
        let run = |args: &[&str]| {
            Run::from(
                project
                    .command(args)
                    .env("KAAL_DATABASE_URL", &url)
                    .env("DATABASE_URL", &url)
                    .env("APP_PASSWORD", "s3cretpw")
                    .env("APP_DSN", "host=db password=s3cretpw")
                    .env("UNRELATED", "kept")
                    .output()
                    .unwrap(),
            )
        };
        run(&["migrate"]).ok();
        run(&["tick", "--at", "2026-01-01T10:00:05Z"]).ok();
        let plain = project.read("plain.env");
        assert!(plain.contains("UNRELATED=kept"), "{plain}");
        for withheld in [
            "KAAL_DATABASE_URL=",
            "DATABASE_URL=",
            "APP_PASSWORD=",
            "APP_DSN=",
            "s3cretpw",
        ] {
            assert!(
                !plain.contains(withheld),
                "{withheld} reached the job:\n{plain}"
            );
        }
        let asks = project.read("asks.env");
        assert!(asks.contains("\nAPP_DSN=mine\n"), "{asks}");
        assert!(asks.contains("\nDATABASE_URL=given\n"), "{asks}");
        assert!(!asks.contains("s3cretpw"), "{asks}");
    }
});

#[cfg(feature = "mysql")]
scenarios!(mysql, Backend::Mysql, {
    use common::databases::with_database;

    #[test]
    fn three_ticks_on_named_locks_run_each_fire_time_exactly_once() {
        three_ticks_run_each_fire_time_once(Backend::Mysql, "  lock_strategy: advisory\n");
    }

    #[test]
    fn a_wrong_password_is_one_error_naming_the_url_without_it() {
        let url = Backend::Mysql.server_url().unwrap();
        let (scheme, rest) = url.split_once("://").unwrap();
        let (user_info, host) = rest.rsplit_once('@').unwrap_or(("root", rest));
        let user = user_info.split(':').next().unwrap();
        let url = format!("{scheme}://{user}:s3cret@{host}");
        let project = Project::new();
        project.write_config(&format!("defaults:\n  database_url: {url}\n"));
        let line = project
            .run(&["migrate"])
            .fails(3, &[&url.replace(":s3cret@", ":***@"), "Access denied"]);
        assert!(!line.contains("s3cret"), "{line}");
    }

    #[test]
    fn a_missing_database_is_one_error_naming_the_url() {
        let url = with_database(
            &Backend::Mysql.server_url().unwrap(),
            "kaal_cli_no_such_database",
        );
        super::a_missing_database_is_one_error_naming_the_url(
            &url,
            &[
                url.split('@').next_back().unwrap(),
                "Unknown database 'kaal_cli_no_such_database'",
            ],
        );
    }

    #[test]
    fn an_unreachable_url_with_a_hostile_password_names_no_piece_of_it() {
        super::an_unreachable_url_with_a_hostile_password_names_no_piece_of_it(
            &[
                "mysql://u:p/w?s3cr@127.0.0.1:1/db",
                "mysql://u:s3cr#t/x@127.0.0.1:1/db",
                "mariadb://u:s3cr?t@127.0.0.1:1/db",
                "mysql://u:s3cr@t@127.0.0.1:1/db",
            ],
            "MySQL",
        );
    }
});
