//! End to end on PostgreSQL: several `kaal` processes on one database, with the lease table
//! and with advisory locks, checked from the files the jobs write.
//!
//! Each test creates a fresh database `kaal_cli_<pid>_<n>` on the server named by
//! `KAAL_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`) with `psql`, and
//! drops it afterwards. An unreachable server (or a missing `psql`) fails the test, naming
//! the URL; nothing is skipped. Run with `cargo test -p kaal --features postgres`.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{sorted_lines, Project, Run};

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
";

fn server_url() -> String {
    std::env::var("KAAL_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// `url` with its database replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let authority = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[authority..];
    let path_start = authority + rest.find('/').unwrap_or(rest.len());
    let query_start = url[path_start..]
        .find('?')
        .map_or(url.len(), |i| path_start + i);
    format!("{}/{database}{}", &url[..path_start], &url[query_start..])
}

/// Runs one SQL statement on the server's database with `psql`.
fn psql(sql: &str) {
    let url = server_url();
    let output = Command::new("psql")
        .args([url.as_str(), "-v", "ON_ERROR_STOP=1", "-qc", sql])
        .output()
        .unwrap_or_else(|err| panic!("cannot run psql (needed to create test databases): {err}"));
    assert!(
        output.status.success(),
        "psql on {url} failed for {sql}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A fresh database, dropped (WITH (FORCE)) when the guard drops.
struct Database {
    name: String,
    url: String,
}

impl Database {
    fn create() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "kaal_cli_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        psql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        psql(&format!("CREATE DATABASE {name}"));
        let url = with_database(&server_url(), &name);
        Self { name, url }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        psql(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

fn project(db: &Database, settings: &str) -> Project {
    let project = Project::new();
    project.write_config(&format!(
        "defaults:\n  database_url: {}\n  recovery_startup_jitter: 0\n{settings}",
        db.url
    ));
    project.write("kaal-scheduler.yml", TWO_JOBS);
    std::fs::create_dir_all(project.path("out")).unwrap();
    project
}

fn fire_times(project: &Project, key: &str) -> Vec<String> {
    sorted_lines(&project.path(&format!("out/{key}.log")))
        .into_iter()
        .map(|line| line.split(' ').next().unwrap().to_string())
        .collect()
}

/// Three `kaal tick --at` processes started together dispatch each fire time once; the log
/// agrees; a later tick at the same instant dispatches nothing.
fn three_ticks_run_each_fire_time_once(settings: &str) {
    let db = Database::create();
    let project = project(&db, settings);
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

    let again = project.run(&["tick", "--at", at]);
    assert!(again.ok().contains("0 dispatched (0 failed)"), "{again:#?}");
    assert!(again.stdout.contains("3 already dispatched"), "{again:#?}");
    let log = project.run(&["dispatches", "--key", "every-minute"]);
    let rows: Vec<&str> = log.ok().lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{log:#?}");
    assert!(
        rows[0].starts_with("2026-01-01 09:00:00 UTC  every-minute  dispatched"),
        "{rows:?}"
    );
    let status = project.run(&["status"]);
    assert!(status.ok().contains("PostgreSQL"), "{status:#?}");
}

#[test]
fn three_ticks_on_the_lease_table_run_each_fire_time_exactly_once() {
    three_ticks_run_each_fire_time_once("");
}

#[test]
fn three_ticks_on_advisory_locks_run_each_fire_time_exactly_once() {
    three_ticks_run_each_fire_time_once("  lock_strategy: advisory\n");
}

#[test]
fn a_missing_database_is_one_error_naming_the_url_without_its_password() {
    let url = with_database(&server_url(), "kaal_cli_no_such_database");
    let (scheme, rest) = url.split_once("://").unwrap();
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let url = format!("{scheme}://postgres:s3cret@{host}");
    let project = Project::new();
    project.write_config(&format!("defaults:\n  database_url: {url}\n"));
    let line = project.run(&["migrate"]).fails(
        3,
        &[
            &url.replace(":s3cret@", ":***@"),
            "\"kaal_cli_no_such_database\" does not exist",
        ],
    );
    assert!(!line.contains("s3cret"), "{line}");
}

#[test]
fn an_unreachable_url_with_a_hostile_password_names_no_piece_of_it() {
    for url in [
        "postgres://u:s3cr#t/x@127.0.0.1:1/db",
        "postgres://u:s3cr?t@127.0.0.1:1/db",
        "postgres://u:pa#s3cr@127.0.0.1:1/db",
        "postgres://u:s3cr@t@127.0.0.1:1/db",
        "postgres://u@127.0.0.1:1/db?password=s3cret",
        "postgres://u@127.0.0.1:1/db?sslmode=disable&sslpassword=s3cret",
    ] {
        let project = Project::new();
        project.write_config(&format!("defaults:\n  database_url: \"{url}\"\n"));
        for command in ["migrate", "status"] {
            let run = project.run(&[command]);
            let line = run.fails(3, &["PostgreSQL", "***"]);
            assert!(!run.stderr.contains("s3cr"), "{url}: {line}");
        }
    }
}

/// `url` with `password` as the password of its user.
fn with_password(url: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (user_info, host) = rest.rsplit_once('@').unwrap();
    let user = user_info.split(':').next().unwrap();
    format!("{scheme}://{user}:{password}@{host}")
}

#[test]
fn a_job_gets_neither_the_database_url_nor_its_password_unless_its_env_names_them() {
    let db = Database::create();
    // The test server trusts local connections: the password is carried, not checked.
    let url = with_password(&db.url, "s3cretpw");
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
