//! Running the real `kaal` binary against files in a temporary directory.
#![allow(dead_code, clippy::unwrap_used)]

pub mod databases;
pub mod node;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// A temporary directory with a configuration file and a scheduler file.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    /// An empty project.
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A project on a fresh SQLite file, with `settings` (YAML lines, indented by two) added
    /// to `defaults:` and `jobs` as the scheduler file.
    pub fn sqlite(settings: &str, jobs: &str) -> Self {
        let project = Self::new();
        project.write_config(&format!(
            "defaults:\n  database_url: sqlite://{}\n  recovery_startup_jitter: 0\n{settings}",
            project.path("kaal.db").display()
        ));
        project.write("kaal-scheduler.yml", jobs);
        project
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn config(&self) -> PathBuf {
        self.path("kaal.yml")
    }

    pub fn write(&self, name: &str, text: &str) {
        let path = self.path(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    pub fn write_config(&self, text: &str) {
        self.write("kaal.yml", text);
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    /// `kaal --config <project>/kaal.yml ARGS...`, run in the project directory.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = kaal(args);
        command.arg("--config").arg(self.config());
        command.current_dir(self.dir.path());
        command
    }

    /// Runs `kaal ARGS` and waits for it.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().unwrap())
    }

    /// Starts `kaal ARGS` with piped output.
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

/// `kaal ARGS` with a clean environment for kaal's variables.
pub fn kaal(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kaal"));
    command
        .args(args)
        .env_remove("KAAL_CONFIG")
        .env_remove("KAAL_ENV")
        .env_remove("KAAL_DATABASE_URL")
        .env("RUST_LOG", "info");
    command
}

/// What a finished run printed and how it exited.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Asserts exit 0 and returns stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, Some(0), "expected success: {self:#?}");
        &self.stdout
    }

    /// Asserts the exit code, and for failures one `error: ...` line on stderr containing
    /// every part of `expected`; returns that line.
    pub fn fails(&self, code: i32, expected: &[&str]) -> String {
        assert_eq!(self.code, Some(code), "{self:#?}");
        let errors: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("error: "))
            .collect();
        assert_eq!(errors.len(), 1, "expected one error line: {self:#?}");
        for part in expected {
            assert!(errors[0].contains(part), "{part:?} not in {:?}", errors[0]);
        }
        errors[0].to_string()
    }
}

/// Whether `pid` is a running (not zombie) process.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => {
            // The state follows the parenthesised command name.
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        }
    }
}

/// The lines of `path`, sorted.
pub fn sorted_lines(path: &Path) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

/// A running `kaal start` whose stderr is read line by line.
pub struct Node {
    pub child: Child,
    lines: mpsc::Receiver<String>,
}

impl Node {
    pub fn start(project: &Project) -> Node {
        let mut child = project.spawn(&["start"]);
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
        Node { child, lines }
    }

    /// Waits for a log line containing `text` (bounded, so a broken build fails instead of
    /// hanging).
    pub fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no log line containing {text:?}"));
            if line.contains(text) {
                return line;
            }
        }
    }

    /// Sends `signal` (`TERM`, `INT`, `HUP`).
    pub fn signal(&self, signal: &str) {
        signal_pid(self.child.id(), signal);
    }

    /// Sends `signal` and returns the exit code and how long the node took to exit.
    pub fn terminate(mut self, signal: &str) -> (Option<i32>, Duration) {
        let sent = Instant::now();
        self.signal(signal);
        let status = self.child.wait().unwrap();
        (status.code(), sent.elapsed())
    }

    /// Waits up to `limit` for the node to exit; its exit status, or `None` (the node is
    /// killed) when it did not.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }

    /// Every log line read so far.
    pub fn lines_so_far(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }
}

/// Sends `signal` (`TERM`, `KILL`, ...) to `pid` with kill(1).
pub fn signal_pid(pid: u32, signal: &str) {
    let kill = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(kill.success(), "kill -{signal} {pid} failed");
}

/// Waits (up to a minute) for `path` to hold a PID, written by a job, and returns it.
pub fn wait_for_pid(path: &Path) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(pid) = std::fs::read_to_string(path)
            .unwrap_or_default()
            .trim()
            .parse()
        {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "no PID in {} after a minute",
            path.display()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Waits up to `limit` for `pid` to be gone; whether it is.
pub fn gone_within(pid: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while alive(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Writes a fleet case's figures straight to the process's stderr, in one write: the test
/// harness captures `println!` of passing tests, and these lines are the evidence the CI log
/// must show.
pub fn show_figures(lines: &[String]) {
    use std::io::Write;
    let mut text = lines.join("\n");
    text.push('\n');
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}
