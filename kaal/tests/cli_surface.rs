//! The command-line surface: `--help` everywhere, argument errors, the cron commands and
//! `init`. None of these needs a database.
#![allow(clippy::unwrap_used)]

mod common;

use common::{kaal, Project, Run};

const SUBCOMMANDS: &[&str] = &[
    "init",
    "migrate",
    "start",
    "tick",
    "check",
    "status",
    "enable",
    "disable",
    "dispatches",
    "explain",
    "next",
    "lint",
];

fn run(args: &[&str]) -> Run {
    Run::from(kaal(args).output().unwrap())
}

#[test]
fn help_succeeds_for_the_tool_and_every_subcommand_and_documents_exit_codes() {
    let top = run(&["--help"]);
    let text = top.ok();
    for sub in SUBCOMMANDS {
        assert!(text.contains(sub), "{sub} missing from --help");
    }
    assert!(text.contains("Exit codes:") && text.contains("3  store error"));
    for sub in SUBCOMMANDS {
        let help = run(&[sub, "--help"]);
        assert!(help.ok().contains("Usage: kaal"), "{sub} --help: {help:#?}");
        assert!(
            help.stdout.contains("Exit codes:"),
            "{sub} --help lacks exit codes"
        );
    }
    assert!(run(&["--version"]).ok().starts_with("kaal "));
}

#[test]
fn bad_arguments_fail_with_one_line_and_exit_2() {
    run(&["frobnicate"]).fails(2, &["unrecognized subcommand 'frobnicate'"]);
    run(&["next", "* * * * *", "--count", "many"]).fails(2, &["invalid value 'many'"]);
    run(&["enable"]).fails(2, &["required"]);
    run(&["init", "--backend", "oracle"]).fails(2, &["invalid value 'oracle'"]);
}

#[test]
fn explain_describes_and_canonicalises() {
    let out = run(&["explain", "0 0 * * SUN"]);
    let text = out.ok();
    assert!(text.contains("at 00:00 on Sunday"), "{text}");
    assert!(text.contains("canonical form: @weekly"), "{text}");
    run(&["explain", "0 25 * * *"]).fails(2, &["hour: value 25 is out of range 0-23"]);
}

#[test]
fn next_lists_fire_times_in_the_zone_and_rejects_bad_input() {
    let out = run(&[
        "next",
        "30 2 * * *",
        "--tz",
        "America/New_York",
        "--from",
        "2026-03-07T12:00:00Z",
        "--count",
        "2",
    ]);
    // 2026-03-08 02:30 does not exist in New York: it fires right after the gap.
    assert_eq!(
        out.ok(),
        "2026-03-08T03:00:00-04:00\n2026-03-09T02:30:00-04:00\n"
    );
    run(&["next", "* * * * *", "--tz", "Mars/Olympus"]).fails(2, &["Mars/Olympus", "IANA"]);
    run(&["next", "* * * * *", "--from", "yesterday"]).fails(2, &["--from", "RFC 3339"]);
    run(&["next", "* * * *"]).fails(2, &["invalid cron expression"]);
}

#[test]
fn lint_exits_1_with_one_line_per_problem() {
    let good = run(&["lint", "*/15 9-17 * * mon-fri"]);
    assert_eq!(good.ok(), "ok\n");
    assert_eq!(run(&["lint", "0 0 1 1 *"]).ok(), "ok (@yearly)\n");
    let bad = run(&["lint", "61 24 * * *"]);
    assert_eq!(bad.code, Some(1), "{bad:#?}");
    assert_eq!(
        bad.stdout,
        "61 24 * * *: minute: value 61 is out of range 0-59\n61 24 * * *: hour: value 24 is out of range 0-23\n"
    );
}

#[test]
#[cfg(feature = "sqlite")]
fn init_writes_loadable_files_and_refuses_to_overwrite_without_force() {
    let project = Project::new();
    project.run(&["init"]).ok();
    let config = project.read("kaal.yml");
    assert!(config.contains("sqlite://db/kaal.db"), "{config}");
    assert!(project
        .read("kaal-scheduler.yml")
        .contains("key: heartbeat"));
    // What init wrote loads: the cron of its example job is explained by status after a tick.
    let tick = project.run(&["tick", "--at", "2026-01-01T09:00:30Z"]);
    assert!(
        tick.ok()
            .contains("dispatched heartbeat 2026-01-01T09:00:00Z"),
        "{tick:#?}"
    );
    project
        .run(&["init"])
        .fails(2, &["kaal.yml already exists", "--force"]);
    let again = project.run(&["init", "--force", "--backend", "postgres"]);
    again.ok();
    assert!(project.read("kaal.yml").contains("postgres://"));
}

#[test]
fn a_missing_configuration_file_is_a_one_line_error() {
    let project = Project::new();
    project.run(&["status"]).fails(
        2,
        &["kaal.yml: cannot read the configuration file", "kaal init"],
    );
}
