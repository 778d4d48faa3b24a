//! End to end on MySQL / MariaDB: several `kaal` processes on one database, with the lease
//! table and with named locks, checked from the files the jobs write.
//!
//! Each test creates a fresh database `kaal_cli_<pid>_<n>` on the server named by
//! `KAAL_MYSQL_URL` (default `mysql://root@127.0.0.1:3306/test`) with the `mysql` client, and
//! drops it afterwards. An unreachable server (or a missing `mysql` client) fails the test,
//! naming the URL; nothing is skipped. Run with `cargo test -p kaal --features mysql`.
#![cfg(feature = "mysql")]
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
    std::env::var("KAAL_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
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

/// The `mysql` client's connection arguments for `url` (user, password, host, port).
fn client_args(url: &str) -> Vec<String> {
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

/// Runs one SQL statement on the server with the `mysql` client.
fn mysql(sql: &str) {
    let url = server_url();
    let output = Command::new("mysql")
        .args(client_args(&url))
        .args(["-e", sql])
        .output()
        .unwrap_or_else(|err| {
            panic!("cannot run the mysql client (needed to create test databases): {err}")
        });
    assert!(
        output.status.success(),
        "mysql on {} failed for {sql}: {}",
        url.split_once('@').map_or(url.as_str(), |(_, host)| host),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A fresh database, dropped when the guard drops.
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
        mysql(&format!(
            "DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name}"
        ));
        let url = with_database(&server_url(), &name);
        Self { name, url }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        mysql(&format!("DROP DATABASE IF EXISTS {}", self.name));
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
    assert!(status.ok().contains("MySQL"), "{status:#?}");
}

#[test]
fn three_ticks_on_the_lease_table_run_each_fire_time_exactly_once() {
    three_ticks_run_each_fire_time_once("");
}

#[test]
fn three_ticks_on_named_locks_run_each_fire_time_exactly_once() {
    three_ticks_run_each_fire_time_once("  lock_strategy: advisory\n");
}

#[test]
fn a_wrong_password_is_one_error_naming_the_url_without_it() {
    let url = server_url();
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
    let url = with_database(&server_url(), "kaal_cli_no_such_database");
    let project = Project::new();
    project.write_config(&format!("defaults:\n  database_url: {url}\n"));
    project.run(&["migrate"]).fails(
        3,
        &[
            url.split('@').next_back().unwrap(),
            "Unknown database 'kaal_cli_no_such_database'",
        ],
    );
}

#[test]
fn an_unreachable_url_with_a_hostile_password_names_no_piece_of_it() {
    for url in [
        "mysql://u:p/w?s3cr@127.0.0.1:1/db",
        "mysql://u:s3cr#t/x@127.0.0.1:1/db",
        "mariadb://u:s3cr?t@127.0.0.1:1/db",
        "mysql://u:s3cr@t@127.0.0.1:1/db",
    ] {
        let project = Project::new();
        project.write_config(&format!("defaults:\n  database_url: \"{url}\"\n"));
        let run = project.run(&["migrate"]);
        let line = run.fails(3, &["MySQL", "***"]);
        assert!(!run.stderr.contains("s3cr"), "{url}: {line}");
    }
}
