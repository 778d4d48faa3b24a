//! `run_until_signal`: the front page's service (`examples/service.rs`), run as a child
//! process, starts, stops on SIGTERM and exits 0 after saying it stopped.
//!
//! The child is this test binary again, running only [`service_child`] with
//! `KAAL_SERVICE_CHILD` set, which calls the example's `main`: what a user runs is what is
//! tested. The parent waits for the child's "started" line before signalling — no sleeps.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

#[path = "../examples/service.rs"]
mod service;

/// Not a test of its own: the child process's body (it returns at once in a normal run).
#[test]
fn service_child() {
    if std::env::var_os("KAAL_SERVICE_CHILD").is_some() {
        service::main().unwrap();
    }
}

/// A bound on every wait, so a broken build fails instead of hanging.
const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn the_service_stops_on_sigterm_and_exits_0_after_saying_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "service_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("KAAL_SERVICE_CHILD", "1")
        .env(
            "KAAL_DATABASE_URL",
            format!("sqlite://{}", dir.path().join("kaal.db").display()),
        )
        .env("KAAL_LOG", "info")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, lines) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    if !wait_for(&lines, &mut seen, "started") {
        let _ = child.kill();
        panic!("no \"started\" line; got {seen:#?}");
    }

    let pid = rustix::process::Pid::from_child(&child);
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    if !wait_for(&lines, &mut seen, "stopped") {
        let _ = child.kill();
        panic!("no \"stopped\" line after SIGTERM; got {seen:#?}");
    }
    let (done, exited) = mpsc::channel();
    thread::spawn(move || {
        let _ = done.send(child.wait());
    });
    let status = exited.recv_timeout(LIMIT).unwrap().unwrap();
    assert!(status.success(), "{status}; {seen:#?}");
    let text = seen.join("\n");
    assert!(text.contains("received SIGTERM; stopping"), "{text}");
    // The node logs through the logger run_until_signal installed (the example installs
    // none): its lines name the level and the crate.
    assert!(text.contains("INFO") && text.contains("kaal"), "{text}");
}

/// Reads lines into `seen` until one contains `text` (`true`) or none comes for
/// [`LIMIT`] (`false`).
fn wait_for(lines: &mpsc::Receiver<String>, seen: &mut Vec<String>, text: &str) -> bool {
    while let Ok(line) = lines.recv_timeout(LIMIT) {
        let found = line.contains(text);
        seen.push(line);
        if found {
            return true;
        }
    }
    false
}
