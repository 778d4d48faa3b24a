//! `kaal init`: writes a commented configuration file and scheduler file.

use std::path::{Path, PathBuf};

use super::context::config_path;
use super::output::line;
use super::Failure;

/// The database `init` writes the configuration for.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum InitBackend {
    /// An SQLite file (no server needed)
    Sqlite,
    /// PostgreSQL (build kaal with the `postgres` feature)
    Postgres,
    /// MySQL or MariaDB (build kaal with the `mysql` feature)
    Mysql,
}

impl InitBackend {
    fn database_url(self) -> &'static str {
        match self {
            InitBackend::Sqlite => "${KAAL_DATABASE_URL:-sqlite://db/kaal.db}",
            InitBackend::Postgres => "${KAAL_DATABASE_URL:-postgres://kaal@localhost:5432/kaal}",
            InitBackend::Mysql => "${KAAL_DATABASE_URL:-mysql://kaal@localhost:3306/kaal}",
        }
    }
}

/// Writes both files next to the configuration path; refuses to overwrite without `force`.
pub(crate) fn run(
    config: Option<PathBuf>,
    backend: InitBackend,
    force: bool,
) -> Result<u8, Failure> {
    let config_file = config_path(config);
    let dir = config_file.parent().unwrap_or(Path::new(""));
    let scheduler_file = dir.join("kaal-scheduler.yml");
    if !force {
        for path in [&config_file, &scheduler_file] {
            if path.exists() {
                return Err(Failure::usage(format!(
                    "{} already exists; pass --force to overwrite it",
                    path.display()
                )));
            }
        }
    }
    if !dir.as_os_str().is_empty() {
        std::fs::create_dir_all(dir)
            .map_err(|err| Failure::usage(format!("cannot create {}: {err}", dir.display())))?;
    }
    let advisory = match backend {
        InitBackend::Sqlite => "#   lock_strategy: lease             # lease rows (advisory exists only on PostgreSQL/MySQL)\n",
        _ => "#   lock_strategy: lease             # or advisory: the database's session locks\n",
    };
    let config_text = CONFIG_TEMPLATE
        .replace("{database_url}", backend.database_url())
        .replace("{lock_strategy}", advisory);
    for (path, text) in [
        (&config_file, config_text.as_str()),
        (&scheduler_file, SCHEDULER_TEMPLATE),
    ] {
        std::fs::write(path, text)
            .map_err(|err| Failure::usage(format!("cannot write {}: {err}", path.display())))?;
        line(format!("wrote {}", path.display()))?;
    }
    let migrate = match backend {
        InitBackend::Sqlite => "`kaal start` creates the SQLite file and tables itself",
        _ => "run `kaal migrate` once to create the tables",
    };
    line(format!(
        "next: edit the jobs in {}; {migrate}; then `kaal --config {} start`",
        scheduler_file.display(),
        config_file.display()
    ))?;
    Ok(0)
}

const CONFIG_TEMPLATE: &str = r#"# kaal configuration.
#
# `defaults:` applies everywhere; the section named by KAAL_ENV (default: development) is
# merged over it key by key; a KAAL_ENV that names no section here is an error. ${VAR} and
# ${VAR:-default} are read from the environment. Durations are whole seconds. Unknown keys
# are errors. A relative SQLite path is relative to this file's directory. `kaal check`
# validates this file and the scheduler file without a database.
defaults:
  database_url: {database_url}
{lock_strategy}#   tick_interval: 5                  # seconds between ticks
#   window_lookback: 120              # how old a fire time may be and still be dispatched
#   window_lookahead: 0
#   lease_ttl: 125                    # at least window_lookback + tick_interval
#   namespace: kaal                   # prefix of lock and idempotency keys
#   time_zone: UTC                    # IANA zone the cron expressions are read in
#   enable_log_dispatch_registry: true
#   enable_dispatch_recovery: true    # on start, dispatch what was missed while down
#   recovery_window: 86400            # how far back recovery looks, also on a new job's first start
#   recovery_startup_jitter: 5
#   scheduler_config_path: kaal-scheduler.yml   # relative to this file's directory
#   scheduler_conflict_policy: error  # or code_wins, file_wins (jobs also registered in code)
#   scheduler_missing_file_policy: warn   # or error
#   node_id: ~                        # default: hostname-pid; unique among live nodes
#   node_timeout: 30                  # a node unseen this long (database clock) is gone
#   max_clock_offset: 10              # a node further off the database's clock refuses to claim
  time_zone: UTC

development: {}

production:
  database_url: ${KAAL_DATABASE_URL}
"#;

const SCHEDULER_TEMPLATE: &str = r#"# kaal jobs. `defaults:` jobs run everywhere; a job in the KAAL_ENV section (default:
# development) replaces the defaults' job with the same key.
#
# A job: key, cron, enabled (default true) and exactly one of
#   command: [program, arg, ...]   run without a shell
#   shell: "string"                run with sh -c
#   handler: name                  a callback registered in code (library users)
# plus, for command/shell: env (mapping), working_dir, timeout (seconds); and metadata.
# Any job may have a policy, stored with it so every node applies the same, e.g.
#   policy: { overlap: skip, catch_up: latest, timeout: 600, time_zone: Europe/Berlin,
#             retry: { max_attempts: 3, backoff: 10, max_backoff: 300 } }
# (overlap: allow | skip | queue_one; catch_up: all | latest | none; starting_deadline
# and jitter in seconds; on_node_loss: abandon | rerun).
# Placeholders: {{fire_time.iso8601}} {{fire_time.unix}} {{idempotency_key}} {{key}}
# (in a shell string each value is quoted for you, wherever it stands).
#
# `kaal start` adds jobs the database has never held; to change a cron or a command or to
# remove a job, edit this file and run `kaal diff` (what would change), then `kaal apply`.
# ${VAR} and ${VAR:-default} are read from the environment when the file is loaded, in
# shell strings too (an unset one is an error); write $VAR or $${VAR} for the job's shell.
# Only the commands of this file run: kaal never runs a command read from the database.
# Each fire time runs once across every node sharing the database; exit 0 = dispatched,
# anything else (or a timeout) = failed.
defaults:
  jobs:
    - key: heartbeat
      cron: "* * * * *"
      command: ["echo", "{{key}} fired for {{fire_time.iso8601}} ({{idempotency_key}})"]
      timeout: 30

production:
  jobs: []
"#;
