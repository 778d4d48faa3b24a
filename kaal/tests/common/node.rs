//! Fleet members: one running `kaal start` whose output is read line by line as it comes,
//! stopped by SIGTERM like an operator's restart; and the wall-clock helpers the fleet
//! tests share.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kaal::chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};

use super::signal_pid;

/// How long a node may stay silent while a line is awaited, or take to exit after SIGTERM.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// One running process of fleet member `id`. Its stdout lines arrive as `out| …` and its
/// stderr lines as `err| …`.
pub struct Node {
    pub id: &'static str,
    /// Which build or file the process runs (`v1`, `v2`…), for messages.
    pub version: &'static str,
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Every line received so far, in order of arrival.
    pub seen: Vec<String>,
}

/// What one process of a member did, kept for the figures and the failure messages.
pub struct Life {
    pub id: &'static str,
    pub version: &'static str,
    pub pid: u32,
    pub status: ExitStatus,
    pub lines: Vec<String>,
}

impl Life {
    /// `id version (pid N)`, the prefix of every line quoted from this process.
    pub fn label(&self) -> String {
        format!("{} {} (pid {})", self.id, self.version, self.pid)
    }

    /// This process's lines containing `text`, each prefixed with its [`label`](Self::label).
    pub fn lines_containing<'a>(&'a self, text: &'a str) -> impl Iterator<Item = String> + 'a {
        self.lines
            .iter()
            .filter(move |line| line.contains(text))
            .map(move |line| format!("{}: {line}", self.label()))
    }
}

impl Node {
    /// Spawns `command` (a `kaal start`) with piped output.
    pub fn spawn(mut command: Command, id: &'static str, version: &'static str) -> Node {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let stdout: Box<dyn Read + Send> = Box::new(child.stdout.take().unwrap());
        let stderr: Box<dyn Read + Send> = Box::new(child.stderr.take().unwrap());
        for (stream, tag) in [(stdout, "out| "), (stderr, "err| ")] {
            let tx = tx.clone();
            thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(format!("{tag}{line}")).is_err() {
                        break;
                    }
                }
            });
        }
        Node {
            id,
            version,
            child,
            lines,
            seen: Vec::new(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The first line containing `text` (among those seen or still to come); fails when the
    /// node exits or stays silent for [`PATIENCE`] instead.
    pub fn wait_for(&mut self, text: &str) -> String {
        if let Some(line) = self.seen.iter().find(|l| l.contains(text)) {
            return line.clone();
        }
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(err) => panic!(
                    "node {} ({}, pid {}): no line containing {text:?} ({err}; exit status {:?}); its output:\n{}",
                    self.id,
                    self.version,
                    self.pid(),
                    self.child.try_wait(),
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits until the node has started under its id and run its recovery pass.
    pub fn ready(&mut self) {
        let starting = self.wait_for("starting:");
        assert!(
            starting.contains(&format!(", node {}, ", self.id)),
            "the node does not run under its configured id: {starting}"
        );
        self.wait_for("recovery:");
    }

    /// SIGTERM, then waits for the exit; what the process did.
    pub fn stop(mut self) -> Life {
        let pid = self.pid();
        signal_pid(pid, "TERM");
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "node {} ({}, pid {pid}) did not exit within {PATIENCE:?} of SIGTERM; its output:\n{}",
                self.id,
                self.version,
                self.seen.join("\n")
            );
            thread::sleep(Duration::from_millis(10));
        };
        // The readers end at the pipes' end: every line is in the channel then.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        Life {
            id: self.id,
            version: self.version,
            pid,
            status,
            lines: std::mem::take(&mut self.seen),
        }
    }

    /// SIGKILL, as a crash or the OOM killer would, then waits for the exit; what the
    /// process did. Its job processes run in process groups of their own and are not
    /// touched: the caller reaps them.
    pub fn kill(mut self) -> Life {
        let pid = self.pid();
        signal_pid(pid, "KILL");
        let status = self.child.wait().unwrap();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        Life {
            id: self.id,
            version: self.version,
            pid,
            status,
            lines: std::mem::take(&mut self.seen),
        }
    }
}

impl Drop for Node {
    /// A node left running by a failed test is killed, not orphaned.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The wall clock as Unix seconds.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Sleeps until the wall clock reads `unix` (at once when it has passed).
pub fn sleep_until_unix(unix: f64) {
    let left = unix - unix_now();
    if left > 0.0 {
        thread::sleep(Duration::from_secs_f64(left));
    }
}

/// `unix` as an RFC 3339 instant (milliseconds).
pub fn instant(unix: f64) -> String {
    let micros = (unix * 1e6).round() as i64;
    DateTime::<Utc>::from_timestamp_micros(micros)
        .unwrap()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A stored UTC timestamp (`2026-01-01 09:00:30.123456`, as every backend's client prints
/// it) as Unix seconds; `what` names it in the failure.
pub fn stored_instant(text: &str, what: &str) -> f64 {
    let parsed = NaiveDateTime::parse_from_str(text.trim(), "%Y-%m-%d %H:%M:%S%.f")
        .unwrap_or_else(|err| panic!("{what} = {text:?} is not a timestamp: {err}"));
    parsed.and_utc().timestamp_micros() as f64 / 1e6
}

/// The rows of a `kaal dispatches` table, sorted: `(fire time as Unix seconds, node,
/// status)`.
pub fn dispatch_rows(table: &str) -> Vec<(i64, String, String)> {
    let mut logged: Vec<(i64, String, String)> = table
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty() && *l != "no dispatches match")
        .map(|row| {
            let cells: Vec<&str> = row.split_whitespace().collect();
            let fire = NaiveDateTime::parse_from_str(
                &format!("{} {}", cells[0], cells[1]),
                "%Y-%m-%d %H:%M:%S",
            )
            .unwrap_or_else(|err| panic!("dispatch row {row:?}: {err}"))
            .and_utc()
            .timestamp();
            (fire, cells[4].to_string(), cells[5].to_string())
        })
        .collect();
    logged.sort();
    logged
}
