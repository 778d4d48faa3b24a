//! `kaal check`: both files validated without a database, every problem with its file and
//! line (exit 2), or a one-line summary (exit 0).
#![allow(clippy::unwrap_used)]

mod common;

use common::Project;

const JOBS: &str = "\
defaults:
  jobs:
    - key: sync
      cron: \"*/5 * * * *\"
      command: [\"bin/sync\"]
    - key: report
      cron: \"@daily\"
      shell: \"bin/report {{fire_time.iso8601}}\"
";

#[test]
fn check_lists_every_problem_of_both_files_with_file_and_line_and_exits_2() {
    let project = Project::new();
    project.write_config(
        "defaults:\n  database_url: sqlite://kaal.db\n  tick_intervall: 5\n  lease_ttl: soon\n",
    );
    project.write(
        "kaal-scheduler.yml",
        "defaults:\n  jobs:\n    - key: sync\n      cron: \"61 * * * *\"\n      command: [\"bin/sync\"]\n",
    );
    let run = project.run(&["check"]);
    run.fails(2, &["3 problem(s)"]);
    let config = project.config().display().to_string();
    let scheduler = project.path("kaal-scheduler.yml").display().to_string();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{run:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("{config}:3: unknown key \"tick_intervall\""))),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("{config}:4: lease_ttl"))),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("{scheduler}:4: job \"sync\": cron \"61 * * * *\""))),
        "{lines:?}"
    );
    // No database was created either.
    assert!(!project.path("kaal.db").exists());
}

#[test]
fn check_passes_a_valid_pair_without_connecting_to_the_database() {
    let project = Project::new();
    // Port 1 on localhost: nothing listens there; a connection attempt would fail.
    project.write_config(
        "defaults:\n  database_url: postgres://kaal:secret@127.0.0.1:1/kaal\n  time_zone: Europe/London\n",
    );
    project.write("kaal-scheduler.yml", JOBS);
    let run = project.run(&["check"]);
    let scheduler = project.path("kaal-scheduler.yml").display().to_string();
    assert!(
        run.ok()
            .starts_with(&format!("config ok: 2 jobs in {scheduler}")),
        "{run:#?}"
    );
    assert_eq!(run.stdout.lines().count(), 1, "{run:#?}");
}
