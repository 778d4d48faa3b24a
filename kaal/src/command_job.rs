//! Running a scheduler-file job: a process per fire time, with its environment, working
//! directory and timeout.
//!
//! * `command` runs the program directly with its arguments (no shell); `shell` runs
//!   `sh -c STRING`. Placeholders are filled in first.
//! * The process inherits kaal's environment plus `KAAL_KEY`, `KAAL_FIRE_TIME` (RFC 3339,
//!   UTC), `KAAL_FIRE_TIME_UNIX` and `KAAL_IDEMPOTENCY_KEY`, then the job's `env`.
//! * A relative `working_dir` is relative to kaal's working directory. A `command` program
//!   given as a relative path with a `/` (`bin/report`) is ambiguous once `working_dir` is
//!   set (Rust leaves it to the platform); use an absolute path, a program on `PATH`, or
//!   `shell:`. stdin is empty.
//! * Each line the process writes is logged with the job key in front: stdout at `info`,
//!   stderr at `warn` (log target `kaal::job`).
//! * Exit status 0 is success (the fire time stays `dispatched`). A non-zero status, death by
//!   a signal, a failure to start or a timeout is an error, which the coordinator logs and
//!   records as `failed`. On timeout the process's whole process group (the job runs in its
//!   own) is killed with `SIGKILL`, so `sh -c` children die with it. Being in its own group
//!   also means a Ctrl-C in kaal's terminal does not reach the job: `kaal start` lets the
//!   running job finish with its tick.
//! * The job runs on the ticking thread: the next fire time of any job waits for it. Give
//!   long jobs a `timeout`, or start them in the background from the command.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use kaal_core::chrono::SecondsFormat;
use kaal_core::{callback, Callback, Fire};

use crate::placeholder::Template;

/// How a job's process is started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Program {
    /// Program and arguments, run without a shell (`command:`).
    Argv(Vec<Template>),
    /// A string run by `sh -c` (`shell:`).
    Shell(Template),
}

/// A job that runs a process for each fire time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandJob {
    /// The cron key (prefixes every logged output line).
    pub key: String,
    /// What to run.
    pub program: Program,
    /// Extra environment variables; values may use placeholders.
    pub env: Vec<(String, Template)>,
    /// Where to run it (default: kaal's working directory).
    pub working_dir: Option<PathBuf>,
    /// How long it may run before it is killed (default: no limit).
    pub timeout: Option<Duration>,
}

/// Why a job's process did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The process could not be started (program not found, bad working directory, ...).
    #[error("could not start {program:?}: {source}")]
    Spawn {
        /// The program (or `sh`).
        program: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The process exited with a non-zero status.
    #[error("exited with status {0}")]
    Exit(i32),
    /// The process was killed by a signal it did not get from kaal.
    #[error("killed by signal {0}")]
    Signal(i32),
    /// The process ran past its timeout and was killed.
    #[error("timed out after {} s and was killed", .0.as_secs_f64())]
    TimedOut(Duration),
    /// Waiting for the process failed.
    #[error("waiting for the process failed: {0}")]
    Wait(std::io::Error),
}

impl CommandJob {
    /// A callback that runs this job, for [`Registry::upsert`](kaal_core::Registry::upsert).
    pub fn into_callback(self) -> Callback {
        callback(move |fire: &Fire| self.run(fire))
    }

    /// The command line for `fire`, for logs: argv joined by spaces, or the shell string.
    pub fn describe(&self, fire: &Fire) -> String {
        match &self.program {
            Program::Argv(args) => args
                .iter()
                .map(|a| a.render(fire))
                .collect::<Vec<_>>()
                .join(" "),
            Program::Shell(script) => format!("sh -c {:?}", script.render(fire)),
        }
    }

    fn command(&self, fire: &Fire) -> (Command, String) {
        let (mut command, program) = match &self.program {
            Program::Argv(args) => {
                let rendered: Vec<String> = args.iter().map(|a| a.render(fire)).collect();
                let program = rendered.first().cloned().unwrap_or_default();
                let mut command = Command::new(&program);
                command.args(rendered.iter().skip(1));
                (command, program)
            }
            Program::Shell(script) => {
                let mut command = Command::new("sh");
                command.arg("-c").arg(script.render(fire));
                (command, "sh".to_string())
            }
        };
        command
            .env("KAAL_KEY", &fire.key)
            .env(
                "KAAL_FIRE_TIME",
                fire.fire_time.to_rfc3339_opts(SecondsFormat::Secs, true),
            )
            .env(
                "KAAL_FIRE_TIME_UNIX",
                fire.fire_time.timestamp().to_string(),
            )
            .env("KAAL_IDEMPOTENCY_KEY", &fire.idempotency_key)
            .envs(
                self.env
                    .iter()
                    .map(|(name, value)| (name, value.render(fire))),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if let Some(dir) = &self.working_dir {
            command.current_dir(dir);
        }
        (command, program)
    }

    /// Runs the process for `fire` and waits for it (up to the timeout).
    pub fn run(&self, fire: &Fire) -> Result<(), CommandError> {
        let (mut command, program) = self.command(fire);
        log::info!(
            target: "kaal::job",
            "[{}] fire time {}: running {}",
            self.key,
            fire.fire_time.to_rfc3339_opts(SecondsFormat::Secs, true),
            self.describe(fire)
        );
        let started = Instant::now();
        let mut child = command
            .spawn()
            .map_err(|source| CommandError::Spawn { program, source })?;
        let (done_tx, done) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            forward_lines(&self.key, out, log::Level::Info, done_tx.clone());
        }
        if let Some(err) = child.stderr.take() {
            forward_lines(&self.key, err, log::Level::Warn, done_tx);
        }
        let status = wait(&mut child, self.timeout)?;
        // Let the output readers finish (bounded: a background grandchild may keep the pipes).
        let deadline = Instant::now() + Duration::from_secs(1);
        for _ in 0..2 {
            let left = deadline.saturating_duration_since(Instant::now());
            if done.recv_timeout(left).is_err() {
                break;
            }
        }
        let Some(status) = status else {
            return Err(CommandError::TimedOut(self.timeout.unwrap_or_default()));
        };
        outcome(status).inspect(|()| {
            log::info!(
                target: "kaal::job",
                "[{}] finished in {:.3} s",
                self.key,
                started.elapsed().as_secs_f64()
            );
        })
    }
}

fn outcome(status: ExitStatus) -> Result<(), CommandError> {
    match (status.code(), status.signal()) {
        (Some(0), _) => Ok(()),
        (Some(code), _) => Err(CommandError::Exit(code)),
        (None, Some(signal)) => Err(CommandError::Signal(signal)),
        (None, None) => Err(CommandError::Exit(-1)),
    }
}

/// Waits for `child`; `Ok(None)` when it ran past `timeout` and was killed.
fn wait(child: &mut Child, timeout: Option<Duration>) -> Result<Option<ExitStatus>, CommandError> {
    // A timeout too long for the clock to represent (a stored definition may carry any
    // number of seconds) is no limit at all.
    let Some(deadline) = timeout.and_then(|t| Instant::now().checked_add(t)) else {
        return child.wait().map(Some).map_err(CommandError::Wait);
    };
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait().map_err(CommandError::Wait)? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= deadline {
            kill_group(child);
            child.wait().map_err(CommandError::Wait)?;
            return Ok(None);
        }
        thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Kills the process group the child leads (it was started with `process_group(0)`).
fn kill_group(child: &mut Child) {
    let group = rustix::process::Pid::from_child(child);
    if let Err(err) = rustix::process::kill_process_group(group, rustix::process::Signal::KILL) {
        log::warn!(
            "could not kill process group {}: {err}; killing the process only",
            child.id()
        );
        if let Err(err) = child.kill() {
            log::warn!("could not kill process {}: {err}", child.id());
        }
    }
}

/// Logs every line of `stream` as `[key] line` at `level` on a thread of its own; sends on
/// `done` at the end of the stream.
fn forward_lines(
    key: &str,
    stream: impl Read + Send + 'static,
    level: log::Level,
    done: mpsc::Sender<()>,
) {
    let key = key.to_string();
    let spawned = thread::Builder::new()
        .name(format!("kaal-job-output-{key}"))
        .spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let text = String::from_utf8_lossy(&line);
                        log::log!(target: "kaal::job", level, "[{key}] {}", text.trim_end_matches(['\n', '\r']));
                    }
                }
            }
            let _ = done.send(());
        });
    if let Err(err) = spawned {
        log::warn!("could not start the output reader of a job: {err}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kaal_core::chrono::{TimeZone, Utc};

    fn fire() -> Fire {
        Fire {
            key: "job".into(),
            fire_time: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            idempotency_key: "kaal-job-1767225600".into(),
        }
    }

    fn shell(script: &str, timeout: Option<Duration>) -> CommandJob {
        CommandJob {
            key: "job".into(),
            program: Program::Shell(Template::parse(script).unwrap()),
            env: vec![("WHO".into(), Template::parse("{{key}}").unwrap())],
            working_dir: None,
            timeout,
        }
    }

    #[test]
    fn exit_zero_succeeds_and_sees_its_environment() {
        let job = shell(
            "test \"$WHO\" = job && test \"$KAAL_FIRE_TIME_UNIX\" = 1767225600",
            None,
        );
        job.run(&fire()).unwrap();
    }

    #[test]
    fn non_zero_exit_and_missing_programs_fail() {
        let err = shell("exit 3", None).run(&fire()).unwrap_err();
        assert_eq!(err.to_string(), "exited with status 3");
        let job = CommandJob {
            program: Program::Argv(vec![Template::parse("/no/such/program").unwrap()]),
            ..shell("", None)
        };
        assert!(matches!(job.run(&fire()), Err(CommandError::Spawn { .. })));
    }

    #[test]
    fn a_timeout_beyond_the_clock_is_no_limit_not_a_panic() {
        // `Instant::now() + u64::MAX s` would overflow; stored definitions can carry it.
        shell("exit 0", Some(Duration::from_secs(u64::MAX)))
            .run(&fire())
            .unwrap();
    }

    #[test]
    fn a_job_past_its_timeout_is_killed_with_its_children() {
        let started = Instant::now();
        let err = shell("sleep 30 & wait", Some(Duration::from_millis(200)))
            .run(&fire())
            .unwrap_err();
        assert!(matches!(err, CommandError::TimedOut(_)), "{err}");
        // The readers were not held open by the orphaned `sleep`: it died with the group.
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
