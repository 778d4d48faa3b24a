//! Configuration of a node, with the defaults of the design and a [`Config::validate`] that
//! reports every problem at once.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono_tz::Tz;

use crate::keys::{has_surrounding_whitespace, MAX_KEY_LEN};

/// The longest duration a [`Config`] accepts for any of its settings: ten years.
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// What `register` does when the stored definition of a key came from the scheduler file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConflictPolicy {
    /// Refuse the registration with an error naming the key (default).
    #[default]
    Error,
    /// The code's cron replaces the file's; the definition becomes code-sourced.
    CodeWins,
    /// The file's definition stays; the code only supplies the callback.
    FileWins,
}

macro_rules! string_enum {
    ($ty:ty, $what:literal, $($variant:path => $text:literal),+) => {
        impl $ty {
            /// The spelling used in configuration files.
            pub fn as_str(self) -> &'static str {
                match self { $($variant => $text),+ }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($variant),)+
                    other => Err(format!(
                        concat!("unknown ", $what, " {:?}: expected one of {}"),
                        other,
                        [$($text),+].join(", ")
                    )),
                }
            }
        }
    };
}

string_enum!(ConflictPolicy, "scheduler_conflict_policy",
    ConflictPolicy::Error => "error", ConflictPolicy::CodeWins => "code_wins", ConflictPolicy::FileWins => "file_wins");

/// How a node schedules: the settings the coordinator reads. [`Config::default`] gives the
/// design's defaults.
///
/// The configuration file has three more settings that only the file layer reads —
/// `scheduler_config_path`, `scheduler_missing_file_policy` and `window_lookahead` (accepted
/// for the Ruby gem's files; a tick never dispatches a fire time later than its `now`, so it
/// has no effect) — they are fields of the `kaal` crate's `ConfigFile`.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Time between two ticks of the loop (default 5 s).
    pub tick_interval: Duration,
    /// How far back a tick looks for due fire times (default 120 s).
    pub window_lookback: Duration,
    /// How long a claim's lease lives (default 125 s). Must cover
    /// `window_lookback + tick_interval`, the longest a fire time stays claimable.
    pub lease_ttl: Duration,
    /// Prefix of every lock and idempotency key (default `kaal`).
    pub namespace: String,
    /// IANA zone the cron expressions are evaluated in (default `UTC`).
    pub time_zone: String,
    /// Record every dispatch in the dispatch log (default `true`; it is what keeps restarts
    /// from replaying fire times older than `lease_ttl`).
    pub enable_log_dispatch_registry: bool,
    /// On `start`, dispatch the fire times missed while no node ran (default `true`).
    pub enable_dispatch_recovery: bool,
    /// How far back recovery looks (default 86 400 s).
    pub recovery_window: Duration,
    /// Random delay before recovery, up to this (default 5 s), so a fleet restarting together
    /// does not stampede.
    pub recovery_startup_jitter: Duration,
    /// See [`ConflictPolicy`].
    pub scheduler_conflict_policy: ConflictPolicy,
    /// The name this node records in the dispatch log (default `hostname-pid`). Must be
    /// unique among the nodes running at one time: after a log write whose answer was lost,
    /// a node recognises its own record by this name (and then runs the job it had not run).
    pub node_id: String,
    /// How long a node may go without a heartbeat before the others take it for dead
    /// (default 30 s), by the database's clock. A node heartbeats every third of it; a dead
    /// node's claimed, never-started fire times are then run by a live node, and its
    /// `node_id` may register again.
    pub node_timeout: Duration,
    /// The largest offset between this node's clock and the database's at which it still
    /// claims (default 10 s). Beyond it the node refuses to claim and says so each tick, so a
    /// clock that jumps or runs fast cannot run the future.
    pub max_clock_offset: Duration,
    /// How many jobs this node runs at once (default 8). Jobs run off the ticking thread,
    /// in a pool of this many; a tick claims only as many fire times as there are free
    /// slots, so the fire times a busy node cannot start now are left to nodes that can.
    pub max_concurrent_runs: usize,
    /// On stop, how long running jobs may go on before kaal stops waiting for them
    /// (default 30 s). The CLI then kills the remaining commands' process groups (TERM, then
    /// KILL) and records them; a callback cannot be interrupted, so a library user's
    /// process exits with it still running.
    pub shutdown_grace: Duration,
    /// The longest a job may run when its own policy sets no timeout (default: none). A
    /// command past it is killed (its whole process group); a callback past it is recorded
    /// `timed_out` and its slot freed for the next job, while the callback itself runs on
    /// to its end (threads cannot be interrupted from outside).
    pub job_timeout: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            tick_interval: Duration::from_secs(5),
            window_lookback: Duration::from_secs(120),
            lease_ttl: Duration::from_secs(125),
            namespace: "kaal".to_string(),
            time_zone: "UTC".to_string(),
            enable_log_dispatch_registry: true,
            enable_dispatch_recovery: true,
            recovery_window: Duration::from_secs(86_400),
            recovery_startup_jitter: Duration::from_secs(5),
            scheduler_conflict_policy: ConflictPolicy::Error,
            node_id: default_node_id(),
            node_timeout: Duration::from_secs(30),
            max_clock_offset: Duration::from_secs(10),
            max_concurrent_runs: 8,
            shutdown_grace: Duration::from_secs(30),
            job_timeout: None,
        }
    }
}

/// The largest [`Config::max_concurrent_runs`]: each run has a thread.
pub const MAX_CONCURRENT_RUNS: usize = 1024;

/// `hostname-pid`: unique per process on a host, readable in the dispatch log.
pub fn default_node_id() -> String {
    format!("{}-{}", host_name(), std::process::id())
}

/// This host's name: `$HOSTNAME`, else the kernel's, else `localhost`.
pub(crate) fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "localhost".to_string())
}

/// One thing wrong with a [`Config`]: the field and what is wrong with its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The field, in snake_case as in the configuration file.
    pub field: &'static str,
    /// What is wrong and how to fix it; names the value.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Every problem [`Config::validate`] found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {}", .problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct ConfigErrors {
    /// One entry per problem, in field order.
    pub problems: Vec<ConfigProblem>,
}

fn secs(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

impl Config {
    /// The configured zone, parsed.
    pub fn tz(&self) -> Result<Tz, ConfigProblem> {
        self.time_zone.parse::<Tz>().map_err(|_| ConfigProblem {
            field: "time_zone",
            message: format!(
                "{:?} is not an IANA time zone name; use e.g. \"UTC\", \"Europe/London\", \"America/New_York\"",
                self.time_zone
            ),
        })
    }

    /// Checks the configuration and returns **every** problem, each naming the field and its
    /// value. Among them: `lease_ttl >= window_lookback + tick_interval` (otherwise a claimed
    /// fire time could be claimed again while still inside another node's window), and
    /// recovery without the dispatch log over a window longer than `lease_ttl` (a restart
    /// could then replay fire times that were already dispatched).
    ///
    /// Every duration must be at most ten years ([`MAX_DURATION`]): windows are subtracted
    /// from instants, and a longer one could not be.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut problems = Vec::new();
        let mut problem = |field: &'static str, message: String| {
            problems.push(ConfigProblem { field, message });
        };
        for (field, value) in [
            ("tick_interval", self.tick_interval),
            ("window_lookback", self.window_lookback),
            ("lease_ttl", self.lease_ttl),
            ("recovery_window", self.recovery_window),
            ("recovery_startup_jitter", self.recovery_startup_jitter),
            ("node_timeout", self.node_timeout),
            ("max_clock_offset", self.max_clock_offset),
            ("shutdown_grace", self.shutdown_grace),
            ("job_timeout", self.job_timeout.unwrap_or_default()),
        ] {
            if value > MAX_DURATION {
                problem(
                    field,
                    format!(
                        "{} s is longer than ten years ({} s), the longest kaal accepts",
                        value.as_secs(),
                        MAX_DURATION.as_secs()
                    ),
                );
            }
        }
        if self.max_concurrent_runs == 0 {
            problem(
                "max_concurrent_runs",
                "0: a node must be able to run at least one job; use e.g. 8".to_string(),
            );
        } else if self.max_concurrent_runs > MAX_CONCURRENT_RUNS {
            problem(
                "max_concurrent_runs",
                format!(
                    "{} is more than {MAX_CONCURRENT_RUNS}, the most kaal runs at once (one thread each)",
                    self.max_concurrent_runs
                ),
            );
        }
        if self.job_timeout.is_some_and(|t| t.is_zero()) {
            problem(
                "job_timeout",
                "0 s: every job would time out at once; leave it unset for no limit".to_string(),
            );
        }
        if self.tick_interval.is_zero() {
            problem("tick_interval", "0 s: must be positive, e.g. 5".to_string());
        }
        if self.window_lookback < self.tick_interval {
            problem(
                "window_lookback",
                format!(
                    "{} is shorter than tick_interval ({}): fire times between two ticks would be missed; use at least {}",
                    secs(self.window_lookback),
                    secs(self.tick_interval),
                    secs(self.tick_interval)
                ),
            );
        }
        let needed = self.window_lookback.saturating_add(self.tick_interval);
        if self.lease_ttl < needed {
            problem(
                "lease_ttl",
                format!(
                    "{} is shorter than window_lookback + tick_interval ({}): a fire time could be claimed twice; use at least {}",
                    secs(self.lease_ttl),
                    secs(needed),
                    secs(needed)
                ),
            );
        }
        if self.namespace.trim().is_empty() {
            problem(
                "namespace",
                format!("{:?} is blank; use e.g. \"kaal\"", self.namespace),
            );
        } else if has_surrounding_whitespace(&self.namespace) {
            problem(
                "namespace",
                format!(
                    "{:?} begins or ends with whitespace; use {:?} (MariaDB and MySQL ignore \
                     trailing spaces when comparing keys, so namespaces would be confused)",
                    self.namespace,
                    self.namespace.trim()
                ),
            );
        } else if self
            .namespace
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
            || self.namespace.contains(":dispatch:")
        {
            problem(
                "namespace",
                format!(
                    "{:?} contains whitespace, a control character or \":dispatch:\"; use letters, digits, '-', '_' or ':'",
                    self.namespace
                ),
            );
        } else if self.namespace.len() > 64 {
            problem(
                "namespace",
                format!(
                    "{:?} is {} bytes long; at most 64 leave room for cron keys in the {MAX_KEY_LEN}-byte key columns",
                    self.namespace,
                    self.namespace.len()
                ),
            );
        }
        if let Err(tz_problem) = self.tz() {
            problem(tz_problem.field, tz_problem.message);
        }
        if self.enable_dispatch_recovery
            && !self.enable_log_dispatch_registry
            && self.recovery_window >= self.lease_ttl
        {
            problem(
                "enable_log_dispatch_registry",
                format!(
                    "false while enable_dispatch_recovery is true and recovery_window ({}) is not shorter than lease_ttl ({}): \
                     a restart would re-dispatch fire times whose leases have expired; enable the dispatch log, \
                     or set recovery_window below lease_ttl, or disable recovery",
                    secs(self.recovery_window),
                    secs(self.lease_ttl)
                ),
            );
        }
        if self.node_timeout < Duration::from_secs(3) {
            problem(
                "node_timeout",
                format!(
                    "{} ms is too short: a node heartbeats every third of node_timeout, so it \
                     must be at least 3 s; the default is 30 s",
                    self.node_timeout.as_millis()
                ),
            );
        }
        if self.node_id.trim().is_empty() {
            problem(
                "node_id",
                format!(
                    "{:?} is blank; leave it unset for hostname-pid",
                    self.node_id
                ),
            );
        } else if self.node_id.chars().any(char::is_control) {
            problem(
                "node_id",
                format!(
                    "{:?} contains a control character; use a printable name",
                    self.node_id
                ),
            );
        } else if has_surrounding_whitespace(&self.node_id) {
            problem(
                "node_id",
                format!(
                    "{:?} begins or ends with whitespace; use {:?} (node ids are compared in \
                     SQL, and MariaDB and MySQL ignore trailing spaces there, so two nodes \
                     could take each other's dispatch records for their own)",
                    self.node_id,
                    self.node_id.trim()
                ),
            );
        } else if self.node_id.len() > MAX_KEY_LEN {
            problem(
                "node_id",
                format!(
                    "is {} bytes long; the limit is {MAX_KEY_LEN}",
                    self.node_id.len()
                ),
            );
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors { problems })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_past_ten_years_and_control_characters_in_node_id_are_refused() {
        let config = Config {
            window_lookback: Duration::MAX,
            recovery_window: Duration::from_secs(u64::MAX / 2),
            lease_ttl: Duration::MAX,
            node_id: "node\u{7}1".into(),
            ..Config::default()
        };
        let problems = config.validate().unwrap_err().problems;
        let fields: Vec<&str> = problems.iter().map(|p| p.field).collect();
        for field in ["window_lookback", "recovery_window", "lease_ttl", "node_id"] {
            assert!(fields.contains(&field), "{field} not named: {problems:?}");
        }
        assert!(problems
            .iter()
            .any(|p| p.field == "lease_ttl" && p.message.contains("ten years")));
    }

    #[test]
    fn defaults_are_the_designs_and_valid() {
        let config = Config::default();
        assert_eq!(config.tick_interval, Duration::from_secs(5));
        assert_eq!(config.window_lookback, Duration::from_secs(120));
        assert_eq!(config.lease_ttl, Duration::from_secs(125));
        assert_eq!(config.recovery_window, Duration::from_secs(86_400));
        assert!(config.enable_log_dispatch_registry);
        config.validate().unwrap();
    }

    #[test]
    fn four_mistakes_give_four_messages_naming_field_and_value() {
        let config = Config {
            lease_ttl: Duration::from_secs(60),
            time_zone: "Mars/Olympus".into(),
            namespace: "  ".into(),
            node_id: String::new(),
            ..Config::default()
        };
        let problems = config.validate().unwrap_err().problems;
        let fields: Vec<_> = problems.iter().map(|p| p.field).collect();
        assert_eq!(fields, ["lease_ttl", "namespace", "time_zone", "node_id"]);
        assert!(problems[0].message.contains("60 s") && problems[0].message.contains("125 s"));
        assert!(problems[2].message.contains("Mars/Olympus"));
    }

    #[test]
    fn recovery_without_the_log_is_rejected_only_when_it_could_replay() {
        let mut config = Config {
            enable_log_dispatch_registry: false,
            ..Config::default()
        };
        let problems = config.validate().unwrap_err().problems;
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].field, "enable_log_dispatch_registry");
        config.recovery_window = Duration::from_secs(120);
        config.validate().unwrap();
    }

    #[test]
    fn policies_parse_and_reject_unknown_spellings() {
        assert_eq!(
            "code_wins".parse::<ConflictPolicy>(),
            Ok(ConflictPolicy::CodeWins)
        );
        let err = "later".parse::<ConflictPolicy>().unwrap_err();
        assert!(
            err.contains("later") && err.contains("error, code_wins, file_wins"),
            "{err}"
        );
    }
}
