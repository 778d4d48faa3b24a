//! Standard output that cannot be written: a reader that went away (`kaal status | head -1`)
//! ends the command quietly with exit 0; any other write error is one line and exit 4.
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used)]

mod common;

use std::fs::OpenOptions;
use std::process::Stdio;

use common::{Project, Run};

const JOBS: &str = "\
defaults:
  jobs:
    - key: every-minute
      cron: \"* * * * *\"
      command: [\"true\"]
    - key: hourly
      cron: \"0 * * * *\"
      command: [\"true\"]
";

/// Runs `kaal ARGS` with stdout a pipe whose reading end is closed before kaal writes.
fn with_closed_stdout(project: &Project, args: &[&str]) -> Run {
    let mut child = project
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    Run::from(child.wait_with_output().unwrap())
}

#[test]
fn every_printing_command_ends_quietly_with_exit_0_when_its_reader_is_gone() {
    let project = Project::sqlite("", JOBS);
    // Something to list: two ticks' dispatches.
    project.run(&["tick", "--at", "2026-01-01T09:00:30Z"]).ok();
    for args in [
        &["status"][..],
        &["dispatches"],
        &["next", "* * * * *", "--count", "100000"],
        &["explain", "0 0 * * SUN"],
        &["tick", "--at", "2026-01-01T10:00:30Z"],
        &["lint", "0 0 * * SUN"],
        &["enable", "hourly"],
        &["migrate"],
    ] {
        let run = with_closed_stdout(&project, args);
        assert!(
            !run.stderr.contains("panicked"),
            "kaal {args:?} panicked: {run:#?}"
        );
        assert_eq!(run.code, Some(0), "kaal {args:?}: {run:#?}");
        assert!(
            !run.stderr.contains("error:"),
            "a closed pipe is no error: kaal {args:?}: {run:#?}"
        );
    }
}

#[test]
fn a_full_disk_on_stdout_is_one_error_line_and_exit_4() {
    let project = Project::sqlite("", JOBS);
    let full = OpenOptions::new().write(true).open("/dev/full").unwrap();
    let run = Run::from(
        project
            .command(&["next", "* * * * *"])
            .stdout(full)
            .stderr(Stdio::piped())
            .output()
            .unwrap(),
    );
    assert!(!run.stderr.contains("panicked"), "{run:#?}");
    run.fails(4, &["cannot write to standard output", "No space left"]);
}
