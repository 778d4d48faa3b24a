//! `kaal apply`, `kaal diff` and what `kaal tick` may write, end to end on SQLite: the
//! difference printed, an empty file refused with the stored jobs intact, `--force`,
//! removed jobs remembered against a node with an older file.
#![allow(clippy::unwrap_used)]

mod common;

use common::Project;

const TWO_JOBS: &str = "\
defaults:
  jobs:
    - key: hourly
      cron: \"0 * * * *\"
      shell: \"echo hourly\"
    - key: daily
      cron: \"@daily\"
      command: [\"true\"]
";

/// The `KEY` table row of `key` in `kaal status`.
fn status_row(project: &Project, key: &str) -> String {
    let status = project.run(&["status"]);
    status
        .ok()
        .lines()
        .find(|l| l.starts_with(&format!("{key} ")))
        .unwrap_or_else(|| panic!("{key} not in status: {status:#?}"))
        .to_string()
}

#[test]
fn apply_prints_the_difference_and_an_empty_file_is_refused_unless_forced() {
    let project = Project::sqlite("", TWO_JOBS);
    let applied = project.run(&["apply"]);
    let out = applied.ok();
    assert!(
        out.contains("+ add       daily") && out.contains("+ add       hourly"),
        "{out}"
    );
    assert!(out.contains("applied in one transaction: 2 added"), "{out}");
    assert!(project
        .run(&["diff"])
        .ok()
        .contains("dry run: nothing to write"));

    // A changed cron: shown by diff, written only by apply.
    project.write(
        "kaal-scheduler.yml",
        &TWO_JOBS.replace("0 * * * *", "*/5 * * * *"),
    );
    let diff = project.run(&["apply", "--dry-run"]);
    assert!(
        diff.ok()
            .contains("~ change    hourly: cron \"0 * * * *\" → \"*/5 * * * *\""),
        "{diff:#?}"
    );
    assert!(status_row(&project, "hourly").contains("0 * * * *"));
    let status = project.run(&["status"]);
    assert!(
        status
            .ok()
            .contains("differs from the database (0 added, 1 changed"),
        "{status:#?}"
    );
    project.run(&["apply"]).ok();
    assert!(status_row(&project, "hourly").contains("*/5 * * * *"));

    // An empty file: refused, nothing written.
    project.write("kaal-scheduler.yml", "defaults:\n  jobs: []\n");
    project
        .run(&["apply"])
        .fails(2, &["defines no jobs", "daily, hourly", "--force"]);
    for key in ["daily", "hourly"] {
        assert!(
            status_row(&project, key).contains(" yes "),
            "{key} still enabled"
        );
    }
    // A tick with the empty file writes nothing either.
    project.run(&["tick"]).ok();
    assert!(status_row(&project, "hourly").contains(" yes "));

    let forced = project.run(&["apply", "--force"]);
    assert!(forced.ok().contains("2 removed"), "{forced:#?}");
    for key in ["daily", "hourly"] {
        assert!(status_row(&project, key).contains(" removed "), "{key}");
    }
}

#[test]
fn a_node_with_an_older_file_neither_brings_back_nor_runs_a_removed_job() {
    let project = Project::sqlite("", TWO_JOBS);
    project.run(&["apply"]).ok();
    // The newer file drops `hourly` (and keeps `daily`): applied once.
    project.write(
        "kaal-scheduler.yml",
        "defaults:\n  jobs:\n    - key: daily\n      cron: \"@daily\"\n      command: [\"true\"]\n",
    );
    let applied = project.run(&["apply"]);
    assert!(applied.ok().contains("- remove    hourly"), "{applied:#?}");

    // A node still on the older file ticks at the top of an hour: `hourly` stays removed
    // and does not run; the node says why.
    project.write("kaal-scheduler.yml", TWO_JOBS);
    let tick = project.run(&["tick", "--at", "2026-01-01T10:00:05Z"]);
    assert!(!tick.ok().contains("dispatched hourly"), "{tick:#?}");
    assert!(
        tick.stderr.contains("`kaal apply` removed it"),
        "{}",
        tick.stderr
    );
    assert!(status_row(&project, "hourly").contains(" removed "));
    project
        .run(&["enable", "hourly"])
        .fails(2, &["removed by `kaal apply`"]);

    // Applying a file that has it restores it.
    let restored = project.run(&["apply"]);
    assert!(
        restored.ok().contains("+ restore   hourly"),
        "{restored:#?}"
    );
    assert!(status_row(&project, "hourly").contains(" yes "));
}
