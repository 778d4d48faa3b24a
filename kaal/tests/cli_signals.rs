//! Signals to `kaal start` with a job running: the first SIGTERM, SIGINT or SIGHUP stops
//! claiming and lets the job finish within `shutdown_grace` and exits 0 (past the grace, the
//! job's process group is killed); a second one kills the job's process group at once and
//! exits 130. No job process outlives kaal.
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{gone_within, signal_pid, wait_for_pid, Node, Project};

/// Ticks every second; the job due at start-up (the last minute, within the lookback)
/// runs at once.
const SETTINGS: &str = "  tick_interval: 1\n  window_lookback: 60\n  lease_ttl: 70\n";

fn project(shell: &str) -> Project {
    project_with(SETTINGS, shell)
}

fn project_with(settings: &str, shell: &str) -> Project {
    Project::sqlite(
        settings,
        &format!(
            "defaults:\n  jobs:\n    - key: job\n      cron: \"* * * * *\"\n      shell: \"{shell}\"\n"
        ),
    )
}

/// Kills what a failed test left behind.
struct Reap(Vec<u32>);

impl Drop for Reap {
    fn drop(&mut self) {
        for pid in &self.0 {
            if common::alive(*pid) {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }
}

#[test]
fn sighup_stops_like_sigterm_letting_the_running_job_finish() {
    let project = project("echo $$ > job.pid; sleep 2; echo finished > done.txt");
    let mut node = Node::start(&project);
    let job = wait_for_pid(&project.path("job.pid"));
    let _reap = Reap(vec![job]);
    node.signal("HUP");
    node.wait_for("treated as a stop");
    let status = node.wait_exit(Duration::from_secs(30));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "SIGHUP must stop kaal gracefully: {status:?}"
    );
    assert_eq!(
        project.read("done.txt"),
        "finished\n",
        "the running job was not let finish"
    );
    assert!(!common::alive(job));
}

fn second_signal_kills_the_running_job(first: &str, second: &str) {
    let project = project("sleep 300 & echo $! > sleep.pid; echo $$ > job.pid; wait");
    let mut node = Node::start(&project);
    let shell = wait_for_pid(&project.path("job.pid"));
    let sleeper = wait_for_pid(&project.path("sleep.pid"));
    let _reap = Reap(vec![shell, sleeper, node.child.id()]);
    node.signal(first);
    node.wait_for("claiming stopped, waiting up to");
    node.signal(second);
    let status = node.wait_exit(Duration::from_secs(20));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(130),
        "kaal {first} then {second}: {status:?}"
    );
    for (what, pid) in [("job shell", shell), ("sleep 300", sleeper)] {
        assert!(
            gone_within(pid, Duration::from_secs(2)),
            "the {what} ({pid}) outlived kaal after {first} then {second}"
        );
    }
    // The killed fire time is recorded as failed when the tick could finish it.
    let lines = node.lines_so_far().join("\n");
    assert!(!lines.contains("panicked"), "{lines}");
}

#[test]
fn sigterm_then_sigint_kills_the_running_jobs_process_group() {
    second_signal_kills_the_running_job("TERM", "INT");
}

#[test]
fn sighup_twice_kills_the_running_jobs_process_group() {
    second_signal_kills_the_running_job("HUP", "HUP");
}

#[test]
fn a_job_ignoring_sigterm_is_killed_after_the_grace() {
    let project = project("trap '' TERM; echo $$ > job.pid; while :; do sleep 1; done");
    let mut node = Node::start(&project);
    let shell = wait_for_pid(&project.path("job.pid"));
    let _reap = Reap(vec![shell, node.child.id()]);
    node.signal("INT");
    node.wait_for("claiming stopped, waiting up to");
    signal_pid(node.child.id(), "TERM");
    let status = node.wait_exit(Duration::from_secs(20));
    assert_eq!(status.and_then(|s| s.code()), Some(130), "{status:?}");
    assert!(
        gone_within(shell, Duration::from_secs(2)),
        "the job that ignores SIGTERM ({shell}) outlived kaal"
    );
}

#[test]
fn a_job_still_running_when_the_grace_is_over_is_killed_and_recorded_and_kaal_exits_0() {
    let settings = format!("{SETTINGS}  shutdown_grace: 1\n");
    let project = project_with(
        &settings,
        "sleep 300 & echo $! > sleep.pid; echo $$ > job.pid; wait",
    );
    let mut node = Node::start(&project);
    let shell = wait_for_pid(&project.path("job.pid"));
    let sleeper = wait_for_pid(&project.path("sleep.pid"));
    let _reap = Reap(vec![shell, sleeper, node.child.id()]);
    node.signal("TERM");
    node.wait_for("claiming stopped, waiting up to 1 s for 1 running job(s)");
    node.wait_for("shutdown_grace (1 s) is over with 1 job(s) still running: killing them");
    let status = node.wait_exit(Duration::from_secs(20));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{status:?}");
    for (what, pid) in [("job shell", shell), ("sleep 300", sleeper)] {
        assert!(
            gone_within(pid, Duration::from_secs(2)),
            "the {what} ({pid}) outlived kaal past its shutdown grace"
        );
    }
    let log = project.run(&["dispatches", "--key", "job"]);
    let text = log.ok();
    assert!(
        text.contains("failed"),
        "the killed run is recorded: {text}"
    );
}
