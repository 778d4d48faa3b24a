//! Running a scheduler-file job: a process per fire time, with its environment, working
//! directory and timeout.
//!
//! * `command` runs the program directly with its arguments (no shell); `shell` runs
//!   `sh -c STRING`. Placeholders are filled in first; in a `shell` string each value is
//!   quoted for where it stands ([`Template::render_shell`]), so it is data, never code.
//! * The process inherits kaal's environment plus `KAAL_KEY`, `KAAL_FIRE_TIME` (RFC 3339,
//!   UTC), `KAAL_FIRE_TIME_UNIX`, `KAAL_IDEMPOTENCY_KEY`, `KAAL_FENCING_TOKEN` (the run's
//!   [fencing token](kaal_core::Fire::fencing_token); empty with the dispatch log off) and
//!   `KAAL_ATTEMPT` (1 for the first attempt), then the job's `env`. The
//!   database's credentials are withheld: `KAAL_DATABASE_URL`, `DATABASE_URL` and every
//!   variable whose value contains a URL or password given to [`withhold_from_jobs`]
//!   ([`connect`](crate::connect) gives its own) are removed, unless the job's `env` sets
//!   that variable itself.
//! * A relative `working_dir` is relative to kaal's working directory. A `command` program
//!   given as a relative path with a `/` (`bin/report`) is ambiguous once `working_dir` is
//!   set (Rust leaves it to the platform); use an absolute path, a program on `PATH`, or
//!   `shell:`. stdin is empty.
//! * Each line the process writes is logged with the job key in front: stdout at `info`,
//!   stderr at `warn` (log target `kaal::job`). A line is kept to [`MAX_LINE_BYTES`]; the
//!   rest of a longer one is dropped and the line ends with `… [line truncated]`, so a job
//!   writing without newlines cannot grow kaal's memory.
//! * Exit status 0 is success (recorded `succeeded`). A non-zero status, death by a signal
//!   or a failure to start is an error, which the coordinator logs and records as `failed`
//!   with the reason; a run past its timeout (the job's `timeout`, its policy's, or the
//!   node's `job_timeout`, whichever is shortest) is recorded `timed_out`. On timeout the
//!   process's whole process group (the job runs in its own) is killed with `SIGKILL`, so
//!   `sh -c` children die with it. Being in its own group also means a Ctrl-C in kaal's
//!   terminal does not reach the job: `kaal start` waits for running jobs up to
//!   `shutdown_grace`, then kills their groups ([`kill_running_jobs`]), at once on a second
//!   signal. A process that leaves the group (`setsid`, a daemonising double fork)
//!   is outside kaal's reach: neither a timeout nor a stop kills it, so supervise such
//!   processes from the job itself (e.g. wait for them and forward signals, or use
//!   `timeout(1)` inside the command).
//! * The job runs on one of the node's `max_concurrent_runs` run threads, never on the
//!   ticking thread: a long job delays no other job's fire time.

use std::collections::BTreeSet;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use kaal_core::chrono::SecondsFormat;
use kaal_core::{callback, Callback, CallbackError, Fire, TimedOut};

use crate::jobs::placeholder::Template;

/// A command killed at its timeout: reads as [`CommandError::TimedOut`], and carries
/// [`TimedOut`] as its source, which is how the coordinator knows to record `timed_out`.
#[derive(Debug, thiserror::Error)]
#[error("timed out after {} s and was killed", .0.after.as_secs_f64())]
struct KilledAtTimeout(#[source] TimedOut);

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
    /// The process was killed by a signal (from outside, or kaal's own SIGTERM when a
    /// stopping `kaal start` got a second signal).
    #[error("killed by signal {0}")]
    Signal(i32),
    /// The process ran past its timeout and was killed.
    #[error("timed out after {} s and was killed", .0.as_secs_f64())]
    TimedOut(Duration),
    /// Waiting for the process failed.
    #[error("waiting for the process failed: {0}")]
    Wait(std::io::Error),
    /// The process was not started: this process is stopping ([`kill_running_jobs`]).
    #[error("not started: kaal is stopping and has killed its running jobs")]
    Stopping,
}

/// The longest line of a job's output that is logged whole, in bytes (64 KiB).
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// What ends a logged line that was cut at [`MAX_LINE_BYTES`].
const TRUNCATED: &str = " … [line truncated]";

/// Variables never passed on to a job from kaal's environment (the job's `env` may still set
/// them): where the database is, with its password.
pub const WITHHELD_VARIABLES: &[&str] = &["KAAL_DATABASE_URL", "DATABASE_URL"];

/// Values shorter than this are withheld only from variables equal to them: a contained
/// two-letter password would withhold half the environment.
const MIN_CONTAINED_SECRET: usize = 4;

/// The job processes running now and whether this process is stopping; see
/// [`kill_running_jobs`].
#[derive(Debug)]
struct Running {
    /// Process group ids (each the PID of the job's process, which leads its group).
    groups: BTreeSet<i32>,
    stopping: bool,
}

static RUNNING: Mutex<Running> = Mutex::new(Running {
    groups: BTreeSet::new(),
    stopping: false,
});

/// Secrets given to [`withhold_from_jobs`].
static WITHHELD: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Withholds `secret` (a database URL or password) from every job started afterwards in this
/// process: an inherited variable whose value contains it is not passed on, unless the job's
/// `env` sets that variable itself. [`connect`](crate::connect) calls this with its URL and
/// password; call it for other credentials kaal's environment carries.
pub fn withhold_from_jobs(secret: &str) {
    let secret = secret.trim();
    if secret.is_empty() {
        return;
    }
    let mut withheld = WITHHELD.lock().unwrap_or_else(PoisonError::into_inner);
    if !withheld.iter().any(|s| s == secret) {
        withheld.push(secret.to_string());
    }
}

/// Whether the inherited variable `name=value` must not reach a job.
fn withheld(name: &str, value: &str) -> bool {
    WITHHELD_VARIABLES.contains(&name)
        || WITHHELD
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|secret| {
                value == secret
                    || (secret.chars().count() >= MIN_CONTAINED_SECRET
                        && value.contains(secret.as_str()))
            })
}

/// Kills the job processes this process started that are still running, for a process about
/// to exit: SIGTERM to each job's process group, then SIGKILL after `grace` to the groups
/// still there. From then on no job starts in this process ([`CommandError::Stopping`]).
/// Returns how many jobs were running.
pub fn kill_running_jobs(grace: Duration) -> usize {
    use rustix::process::{kill_process_group, test_kill_process_group, Pid, Signal};

    let groups: Vec<Pid> = {
        let mut running = RUNNING.lock().unwrap_or_else(PoisonError::into_inner);
        running.stopping = true;
        running
            .groups
            .iter()
            .filter_map(|id| Pid::from_raw(*id))
            .collect()
    };
    for group in &groups {
        log::warn!(target: "kaal::job", "killing the job in process group {group}: SIGTERM");
        if let Err(err) = kill_process_group(*group, Signal::TERM) {
            log::debug!("SIGTERM to process group {group}: {err}");
        }
    }
    let deadline = Instant::now() + grace;
    let alive = |group: &Pid| test_kill_process_group(*group).is_ok();
    while groups.iter().any(alive) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    for group in groups.iter().filter(|g| alive(g)) {
        log::warn!(target: "kaal::job", "process group {group} outlived SIGTERM by {} s: SIGKILL", grace.as_secs_f64());
        if let Err(err) = kill_process_group(*group, Signal::KILL) {
            log::warn!("could not kill process group {group}: {err}");
        }
    }
    groups.len()
}

impl CommandJob {
    /// A callback that runs this job, for [`CallbackRegistry::upsert`](kaal_core::CallbackRegistry::upsert).
    ///
    /// A run killed at its timeout returns [`kaal_core::TimedOut`], so the coordinator
    /// records it `timed_out`.
    pub fn into_callback(self) -> Callback {
        callback(move |fire: &Fire| match self.run(fire) {
            Err(CommandError::TimedOut(after)) => {
                Err(CallbackError::from(KilledAtTimeout(TimedOut { after })))
            }
            other => other.map_err(CallbackError::from),
        })
    }

    /// The timeout of a run of `fire`: the job's own `timeout`, or the run's (its policy's
    /// or the node's `job_timeout`), whichever is shorter.
    fn timeout_for(&self, fire: &Fire) -> Option<Duration> {
        match (self.timeout, fire.timeout) {
            (Some(own), Some(run)) => Some(own.min(run)),
            (own, run) => own.or(run),
        }
    }

    /// The command line for `fire`, for logs: argv joined by spaces, or the shell string.
    pub fn describe(&self, fire: &Fire) -> String {
        match &self.program {
            Program::Argv(args) => args
                .iter()
                .map(|a| a.render(fire))
                .collect::<Vec<_>>()
                .join(" "),
            Program::Shell(script) => format!("sh -c {:?}", script.render_shell(fire)),
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
                command.arg("-c").arg(script.render_shell(fire));
                (command, "sh".to_string())
            }
        };
        for (name, value) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if !self.env.iter().any(|(set, _)| *set == name)
                && withheld(&name, &value.to_string_lossy())
            {
                command.env_remove(name.as_ref());
            }
        }
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
            .env(
                "KAAL_FENCING_TOKEN",
                fire.fencing_token
                    .map(|t| t.to_string())
                    .unwrap_or_default(),
            )
            .env("KAAL_ATTEMPT", fire.attempt.to_string())
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
        let mut child = {
            // Spawned and recorded under the lock, so `kill_running_jobs` sees every job.
            let mut running = RUNNING.lock().unwrap_or_else(PoisonError::into_inner);
            if running.stopping {
                return Err(CommandError::Stopping);
            }
            let child = command
                .spawn()
                .map_err(|source| CommandError::Spawn { program, source })?;
            running.groups.extend(i32::try_from(child.id()).ok());
            child
        };
        outcome(self.supervise(&mut child, self.timeout_for(fire))?).inspect(|()| {
            log::info!(
                target: "kaal::job",
                "[{}] finished in {:.3} s",
                self.key,
                started.elapsed().as_secs_f64()
            );
        })
    }

    /// Forwards the output of `child` and waits for it; `Err(TimedOut)` when it ran past the
    /// timeout and was killed.
    fn supervise(
        &self,
        child: &mut Child,
        timeout: Option<Duration>,
    ) -> Result<ExitStatus, CommandError> {
        let (done_tx, done) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            forward_lines(&self.key, out, log::Level::Info, done_tx.clone());
        }
        if let Some(err) = child.stderr.take() {
            forward_lines(&self.key, err, log::Level::Warn, done_tx);
        }
        let status = wait(child, timeout);
        // Reaped (or never to be): its process group id may be reused from now on.
        if let Ok(id) = i32::try_from(child.id()) {
            RUNNING
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .groups
                .remove(&id);
        }
        let status = status?;
        // Let the output readers finish (bounded: a background grandchild may keep the pipes).
        let deadline = Instant::now() + Duration::from_secs(1);
        for _ in 0..2 {
            let left = deadline.saturating_duration_since(Instant::now());
            if done.recv_timeout(left).is_err() {
                break;
            }
        }
        status.ok_or(CommandError::TimedOut(timeout.unwrap_or_default()))
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
            let mut reader = BufReader::with_capacity(64 * 1024, stream);
            let mut line = Vec::new();
            while let Ok(Some(truncated)) = read_capped_line(&mut reader, &mut line, MAX_LINE_BYTES)
            {
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end_matches('\r');
                let marker = if truncated { TRUNCATED } else { "" };
                log::log!(target: "kaal::job", level, "[{key}] {text}{marker}");
            }
            let _ = done.send(());
        });
    if let Err(err) = spawned {
        log::warn!("could not start the output reader of a job: {err}");
    }
}

/// Reads the next line of `reader` into `line`, without its newline and cut to `max` bytes
/// (the rest of a longer line is read and dropped). `Some(truncated)`, or `None` at the end
/// of the stream.
fn read_capped_line(
    reader: &mut impl BufRead,
    line: &mut Vec<u8>,
    max: usize,
) -> io::Result<Option<bool>> {
    line.clear();
    let mut truncated = false;
    let mut read_any = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        if available.is_empty() {
            return Ok(read_any.then_some(truncated));
        }
        read_any = true;
        let newline = available.iter().position(|b| *b == b'\n');
        let chunk = &available[..newline.unwrap_or(available.len())];
        let room = max.saturating_sub(line.len());
        truncated |= chunk.len() > room;
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = newline.map_or(available.len(), |at| at + 1);
        reader.consume(used);
        if newline.is_some() {
            return Ok(Some(truncated));
        }
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
            fencing_token: Some(42),
            attempt: 1,
            timeout: None,
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
            "test \"$WHO\" = job && test \"$KAAL_FIRE_TIME_UNIX\" = 1767225600 \
             && test \"$KAAL_FENCING_TOKEN\" = 42 && test \"$KAAL_ATTEMPT\" = 1 \
             && test {{fencing_token}}/{{attempt}} = 42/1",
            None,
        );
        job.run(&fire()).unwrap();
    }

    #[test]
    fn the_run_timeout_kills_a_job_without_its_own_and_is_recorded_as_timed_out() {
        let fire = Fire {
            timeout: Some(Duration::from_millis(200)),
            ..fire()
        };
        let started = Instant::now();
        let err = (shell("sleep 30 & wait", None).into_callback())(&fire).unwrap_err();
        assert_eq!(err.to_string(), "timed out after 0.2 s and was killed");
        let timed_out = err
            .source()
            .and_then(|s| s.downcast_ref::<TimedOut>())
            .expect("a TimedOut source");
        assert_eq!(timed_out.after, Duration::from_millis(200));
        assert!(started.elapsed() < Duration::from_secs(5));
        // The shorter of the two wins.
        let job = shell("sleep 30 & wait", Some(Duration::from_millis(100)));
        assert_eq!(job.timeout_for(&fire), Some(Duration::from_millis(100)));
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

    #[test]
    fn a_hundred_megabytes_without_a_newline_is_one_capped_line_in_bounded_memory() {
        let endless = io::repeat(b'a')
            .take(100_000_000)
            .chain(&b"\nnext\nlast"[..]);
        let mut reader = BufReader::with_capacity(64 * 1024, endless);
        let mut line = Vec::new();
        assert_eq!(
            read_capped_line(&mut reader, &mut line, MAX_LINE_BYTES).unwrap(),
            Some(true)
        );
        assert_eq!(line.len(), MAX_LINE_BYTES);
        assert!(line.capacity() <= 2 * MAX_LINE_BYTES, "{}", line.capacity());
        assert_eq!(
            read_capped_line(&mut reader, &mut line, MAX_LINE_BYTES).unwrap(),
            Some(false)
        );
        assert_eq!(line, b"next");
        assert_eq!(
            read_capped_line(&mut reader, &mut line, MAX_LINE_BYTES).unwrap(),
            Some(false)
        );
        assert_eq!(line, b"last");
        assert_eq!(
            read_capped_line(&mut reader, &mut line, MAX_LINE_BYTES).unwrap(),
            None
        );
    }

    #[test]
    fn a_line_of_exactly_the_cap_is_not_truncated() {
        let text = [vec![b'x'; 10], b"\n".to_vec()].concat();
        let mut reader = BufReader::with_capacity(3, &text[..]);
        let mut line = Vec::new();
        assert_eq!(
            read_capped_line(&mut reader, &mut line, 10).unwrap(),
            Some(false)
        );
        assert_eq!(line.len(), 10);
    }

    #[test]
    fn database_variables_and_values_holding_a_withheld_secret_are_not_passed_on() {
        assert!(withheld("KAAL_DATABASE_URL", "sqlite://kaal.db"));
        assert!(withheld("DATABASE_URL", ""));
        assert!(!withheld("HOME", "/root"));
        withhold_from_jobs("unit-test-s3cret");
        withhold_from_jobs("zq");
        assert!(withheld("PGPASSWORD", "unit-test-s3cret"));
        assert!(withheld("OTHER", "postgres://u:unit-test-s3cret@h/db"));
        // A short secret only when it is the whole value.
        assert!(withheld("SHORT", "zq"));
        assert!(!withheld("SHORT", "lazqy"));
    }
}
