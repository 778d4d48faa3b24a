//! Ticks at explicit instants stay a testing and repair tool: `kaal tick --dry-run` shows
//! what a tick would do and does nothing, and `--at` a future instant is refused unless
//! `--force`. Real `kaal` binary, SQLite in a temporary directory.
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used)]

mod common;

use kaal::chrono::{Duration, SecondsFormat, Utc};

use common::Project;

/// One job that leaves a file per fire time it runs.
const JOB: &str = "\
defaults:
  jobs:
    - key: every-minute
      cron: \"* * * * *\"
      shell: \"touch ran-{{fire_time.unix}}\"
";

fn ran_files(project: &Project) -> Vec<String> {
    std::fs::read_dir(project.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("ran-"))
        .collect()
}

fn assert_nothing_written(project: &Project) {
    let log = project.run(&["dispatches"]);
    assert!(log.ok().contains("no dispatches match"), "{log:#?}");
    let status = project.run(&["status"]);
    assert!(status.ok().contains("no stored jobs"), "{status:#?}");
    assert!(ran_files(project).is_empty(), "{:?}", ran_files(project));
}

#[test]
fn a_dry_run_prints_the_due_fire_times_and_claims_runs_and_writes_nothing() {
    let project = Project::sqlite("", JOB);
    project.run(&["migrate"]).ok();

    // Now: the fire times of the last window_lookback (120 s) would be claimed.
    let now = project.run(&["tick", "--dry-run"]);
    let text = now.ok();
    assert!(text.contains("would claim every-minute "), "{now:#?}");
    assert!(
        text.contains("nothing was claimed, run or written"),
        "{now:#?}"
    );
    assert!(text.contains("database now"), "{now:#?}");
    assert_nothing_written(&project);

    // At an instant: each fire time with its key and time in UTC.
    let at = "2026-01-01T09:00:30Z";
    let dry = project.run(&["tick", "--dry-run", "--at", at]);
    assert_eq!(
        dry.ok().lines().take(2).collect::<Vec<_>>(),
        [
            "would claim every-minute 2026-01-01T08:59:00Z",
            "would claim every-minute 2026-01-01T09:00:00Z"
        ],
        "{dry:#?}"
    );
    assert!(
        dry.stdout
            .contains("2 would be claimed and run, 0 already dispatched, 0 not yet due"),
        "{dry:#?}"
    );
    assert_nothing_written(&project);

    // After the real tick, the dry run reads the log (both fire times dispatched).
    let tick = project.run(&["tick", "--at", at]);
    assert!(tick.ok().contains("2 dispatched"), "{tick:#?}");
    assert_eq!(ran_files(&project).len(), 2);
    let again = project.run(&["tick", "--dry-run", "--at", at]);
    assert!(
        again
            .ok()
            .contains("already dispatched every-minute 2026-01-01T09:00:00Z"),
        "{again:#?}"
    );
    assert!(
        again
            .stdout
            .contains("0 would be claimed and run, 2 already dispatched"),
        "{again:#?}"
    );

    // An hour ahead: not yet due by the database's clock (a dry run may look ahead).
    let ahead = (Utc::now() + Duration::hours(1)).to_rfc3339_opts(SecondsFormat::Secs, true);
    let future = project.run(&["tick", "--dry-run", "--at", &ahead]);
    assert!(
        future.ok().contains("not yet due every-minute "),
        "{future:#?}"
    );
    assert!(!future.stdout.contains("would claim"), "{future:#?}");
}

#[test]
fn a_tick_at_a_future_instant_is_refused_without_force_and_writes_nothing() {
    let project = Project::sqlite("", JOB);
    project.run(&["migrate"]).ok();
    let ahead = (Utc::now() + Duration::hours(1)).to_rfc3339_opts(SecondsFormat::Secs, true);

    let refused = project.run(&["tick", "--at", &ahead]);
    refused.fails(
        2,
        &[
            &ahead,
            "later than the database's now",
            "--force",
            "--dry-run",
        ],
    );
    assert_nothing_written(&project);

    // --force ticks, but the store still refuses to commit what its clock says is not due.
    let forced = project.run(&["tick", "--at", &ahead, "--force"]);
    let text = forced.ok();
    assert!(text.contains("0 dispatched"), "{forced:#?}");
    assert!(
        text.contains("later than the database's clock and were not claimed"),
        "{forced:#?}"
    );
    assert!(project
        .run(&["dispatches"])
        .ok()
        .contains("no dispatches match"));
    assert!(ran_files(&project).is_empty());

    // An instant in the past is a repair tick, as before.
    let past = project.run(&["tick", "--at", "2026-01-01T09:00:30Z"]);
    assert!(past.ok().contains("2 dispatched"), "{past:#?}");
}
