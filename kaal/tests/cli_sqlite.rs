//! End to end on SQLite: several `kaal` processes on one database file, checked from the
//! files the jobs write.
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Child;
use std::time::{Duration, Instant};

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

fn fire_times(project: &Project, key: &str) -> Vec<String> {
    sorted_lines(&project.path(&format!("out/{key}.log")))
        .into_iter()
        .map(|line| line.split(' ').next().unwrap().to_string())
        .collect()
}

#[test]
fn three_ticks_started_together_run_each_fire_time_exactly_once() {
    let project = Project::sqlite("", TWO_JOBS);
    std::fs::create_dir_all(project.path("out")).unwrap();
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
    let mut dispatched = 0;
    for run in &runs {
        dispatched += run
            .ok()
            .lines()
            .filter(|l| l.starts_with("dispatched "))
            .count();
    }
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
        rows[0].starts_with("2026-01-01 09:00:00 UTC  every-minute  dispatched"),
        "{rows:?}"
    );
}

#[test]
fn status_enable_disable_and_dispatches_work_on_the_stored_jobs() {
    let project = Project::sqlite("  time_zone: Europe/London\n", TWO_JOBS);
    std::fs::create_dir_all(project.path("out")).unwrap();
    project.run(&["tick", "--at", "2026-06-01T09:00:30Z"]).ok();

    let status = project.run(&["status"]);
    let text = status.ok();
    assert!(text.contains("SQLite sqlite://"), "{text}");
    assert!(text.contains("time zone Europe/London"), "{text}");
    let row = text.lines().find(|l| l.starts_with("every-two")).unwrap();
    assert!(
        row.contains("every 2 minutes") && row.contains("yes") && row.contains("file"),
        "{row}"
    );
    assert!(
        row.contains("2026-06-01 10:00:00 BST dispatched by"),
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

#[test]
fn a_job_past_its_timeout_is_killed_marked_failed_and_the_others_still_run() {
    let project = Project::sqlite(
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

    let failed = project.run(&["dispatches", "--status", "failed"]);
    let rows: Vec<&str> = failed.ok().lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{failed:#?}");
    assert!(
        rows[0].contains("a-slow") && rows[0].contains("failed"),
        "{rows:?}"
    );
    // A failed fire time counts as dispatched: it is not run again.
    let again = project.run(&["tick", "--at", "2026-01-01T10:00:10Z"]);
    assert!(again.ok().contains("0 dispatched"), "{again:#?}");
}

#[test]
fn start_exits_0_on_sigterm_within_a_tick_and_a_restart_replays_nothing() {
    let project = Project::sqlite(
        "  tick_interval: 3\n  window_lookback: 60\n  lease_ttl: 70\n  recovery_window: 180\n",
        "defaults:\n  jobs:\n    - key: minute\n      cron: \"* * * * *\"\n      shell: \"echo {{fire_time.unix}} >> minute.log\"\n",
    );
    // The job was defined ten minutes ago (a first tick stores it; its schedule is then
    // moved back), so its 180 s recovery window is owed.
    project.run(&["tick"]).ok();
    {
        use diesel::{Connection, RunQueryDsl, SqliteConnection};
        let mut db =
            SqliteConnection::establish(project.path("kaal.db").to_str().unwrap()).unwrap();
        let moved = diesel::sql_query(
            "UPDATE kaal_definitions SET \
             created_at = strftime('%Y-%m-%d %H:%M:%f', 'now', '-600 seconds') || '000', \
             schedule_since = strftime('%Y-%m-%d %H:%M:%f', 'now', '-600 seconds') || '000'",
        )
        .execute(&mut db)
        .unwrap();
        assert_eq!(moved, 1);
    }
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

#[test]
fn a_file_that_is_not_a_database_is_a_store_error_and_left_untouched() {
    let project = Project::sqlite("", TWO_JOBS);
    project.write("kaal.db", "not a database, just text\n");
    project.run(&["migrate"]).fails(3, &["kaal.db", "SQLite"]);
    project.run(&["tick"]).fails(3, &["kaal.db"]);
    assert_eq!(project.read("kaal.db"), "not a database, just text\n");
}

#[test]
fn a_plain_tick_runs_nothing_from_before_the_job_its_file_just_defined() {
    let project = Project::sqlite(
        "",
        "defaults:\n  jobs:\n    - key: minute\n      cron: \"* * * * *\"\n      shell: \"echo {{fire_time.unix}} >> minute.log\"\n",
    );
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
