//! Running the real `kaal` binary against files in a temporary directory.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

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
