//! Paths and environments: relative SQLite paths follow the configuration file, commands
//! that only read never create a database, `KAAL_ENV` must name a section, `${VAR}` expands
//! in the scheduler file, and `next`/`explain` use the configuration's time zone.
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{kaal, Project, Run};

const JOB: &str = "\
defaults:
  jobs:
    - key: every-minute
      cron: \"* * * * *\"
      command: [\"true\"]
";

/// `kaal --config CONFIG ARGS` run in `cwd`.
fn run_in(cwd: &Path, config: &Path, args: &[&str]) -> Run {
    let mut command = kaal(args);
    command.arg("--config").arg(config).current_dir(cwd);
    Run::from(command.output().unwrap())
}

#[test]
fn a_relative_sqlite_path_is_relative_to_the_configuration_file_not_the_working_directory() {
    for (form, file) in [
        ("sqlite://db/kaal.db", "config/db/kaal.db"),
        ("relative.db", "config/relative.db"),
    ] {
        let project = Project::new();
        project.write(
            "config/kaal.yml",
            &format!("defaults:\n  database_url: {form}\n"),
        );
        project.write("config/kaal-scheduler.yml", JOB);
        project.write("elsewhere/.keep", "");
        // A relative --config, as an operator types it, from the project directory ...
        let at = "2026-01-01T09:00:30Z";
        let first = run_in(
            project.dir.path(),
            Path::new("config/kaal.yml"),
            &["tick", "--at", at],
        );
        assert!(first.ok().contains("2 dispatched"), "{form}: {first:#?}");
        assert!(project.path(file).exists(), "{form}: {file} missing");
        // ... and an absolute one from another directory: the same database.
        let second = run_in(
            &project.path("elsewhere"),
            &project.path("config/kaal.yml"),
            &["tick", "--at", at],
        );
        assert!(
            second.ok().contains("0 dispatched") && second.stdout.contains("2 already dispatched"),
            "{form}: {second:#?}"
        );
        assert!(!project.path("db").exists() && !project.path("relative.db").exists());
        assert!(!project.path("elsewhere/db").exists());
        assert!(!project.path("elsewhere/relative.db").exists());
        let status = run_in(
            &project.path("elsewhere"),
            &project.path("config/kaal.yml"),
            &["status"],
        );
        assert!(
            status
                .ok()
                .contains(&project.path(file).display().to_string()),
            "{form}: {status:#?}"
        );
    }
}

#[test]
fn commands_that_only_read_never_create_a_database() {
    let project = Project::sqlite("", JOB);
    let db = project.path("kaal.db");
    let shown = db.display().to_string();
    for args in [
        &["status"][..],
        &["dispatches"],
        &["dispatches", "--key", "every-minute"],
        &["tick", "--dry-run"],
        &["disable", "every-minute"],
        &["enable", "every-minute"],
    ] {
        let run = project.run(args);
        run.fails(3, &[&shown, "does not exist", "kaal migrate"]);
        assert!(!db.exists(), "{args:?} created {shown}");
    }
    // Creating it stays the job of migrate (and start / tick).
    project.run(&["migrate"]).ok();
    assert!(db.exists());
    assert!(project.run(&["status"]).ok().contains("no stored jobs"));
}

#[test]
fn a_kaal_env_naming_no_section_is_an_error_listing_the_sections() {
    let project = Project::sqlite("  tick_interval: 2\nproduction:\n  tick_interval: 3\n", JOB);
    project.run(&["migrate"]).ok();
    for args in [&["status"][..], &["tick", "--at", "2026-01-01T09:00:30Z"]] {
        let run = Run::from(
            project
                .command(args)
                .env("KAAL_ENV", "prodution")
                .output()
                .unwrap(),
        );
        run.fails(
            2,
            &[
                "KAAL_ENV=prodution names no section",
                "defaults, production",
            ],
        );
    }
    let check = Run::from(
        project
            .command(&["check"])
            .env("KAAL_ENV", "prodution")
            .output()
            .unwrap(),
    );
    assert_eq!(check.code, Some(2), "{check:#?}");
    assert!(
        check.stdout.contains("KAAL_ENV=prodution names no section"),
        "{check:#?}"
    );
    // The section it names is used; unset, `development` may be absent.
    let prod = Run::from(
        project
            .command(&["status"])
            .env("KAAL_ENV", "production")
            .output()
            .unwrap(),
    );
    assert!(prod.ok().contains("every 3 s"), "{prod:#?}");
    assert!(project.run(&["status"]).ok().contains("every 2 s"));
}

#[test]
fn variables_in_the_scheduler_file_expand_and_an_unset_one_is_an_error_naming_it_and_its_line() {
    let jobs = "\
defaults:
  jobs:
    - key: greet
      cron: ${KAAL_TEST_CRON:-* * * * *}
      command: [\"sh\", \"-c\", \"echo $0 > greeting.txt\", \"${KAAL_TEST_WORD}\"]
";
    let project = Project::sqlite("", jobs);
    let at = "2026-01-01T09:00:30Z";
    let unset = Run::from(
        project
            .command(&["tick", "--at", at])
            .env_remove("KAAL_TEST_WORD")
            .env_remove("KAAL_TEST_CRON")
            .output()
            .unwrap(),
    );
    let scheduler = project.path("kaal-scheduler.yml").display().to_string();
    unset.fails(
        2,
        &[&format!(
            "{scheduler}:5: job \"greet\": command: environment variable KAAL_TEST_WORD is not set"
        )],
    );
    let check = Run::from(
        project
            .command(&["check"])
            .env_remove("KAAL_TEST_WORD")
            .output()
            .unwrap(),
    );
    assert!(
        check.stdout.contains(&format!("{scheduler}:5:")),
        "{check:#?}"
    );

    let set = Run::from(
        project
            .command(&["tick", "--at", at])
            .env("KAAL_TEST_WORD", "hello")
            .env("KAAL_TEST_CRON", "0 9 * * *")
            .output()
            .unwrap(),
    );
    // The variable's cron (09:00 only), the variable's word.
    assert!(set.ok().contains("1 dispatched"), "{set:#?}");
    assert_eq!(project.read("greeting.txt"), "hello\n");
}

#[test]
fn next_and_explain_use_the_configurations_time_zone_when_no_tz_is_given() {
    let project = Project::sqlite("  time_zone: America/New_York\n", JOB);
    let next = project.run(&[
        "next",
        "0 9 * * *",
        "--from",
        "2026-01-05T00:00:00Z",
        "--count",
        "1",
    ]);
    assert_eq!(next.ok(), "2026-01-05T09:00:00-05:00\n");
    let utc = project.run(&[
        "next",
        "0 9 * * *",
        "--from",
        "2026-01-05T00:00:00Z",
        "--count",
        "1",
        "--tz",
        "UTC",
    ]);
    assert_eq!(utc.ok(), "2026-01-05T09:00:00Z\n");
    let explain = project.run(&["explain", "0 9 * * *"]);
    assert!(
        explain.ok().contains("time zone America/New_York"),
        "{explain:#?}"
    );
    // No configuration file (none given, none at config/kaal.yml): UTC.
    let bare = Project::new();
    let mut command = kaal(&[
        "next",
        "0 9 * * *",
        "--from",
        "2026-01-05T00:00:00Z",
        "--count",
        "1",
    ]);
    command.current_dir(bare.dir.path());
    assert_eq!(
        Run::from(command.output().unwrap()).ok(),
        "2026-01-05T09:00:00Z\n"
    );
    // Nothing of the database was touched.
    assert!(!project.path("kaal.db").exists());
}
