//! Command-line surface: arguments (clap derive), exit codes, one-line errors.

mod apply;
mod check;
mod context;
mod cron_cmds;
mod dispatches;
mod init;
mod output;
mod run;
mod start;
mod status;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Exit codes, shown in `--help`.
const EXIT_CODES: &str = "\
Exit codes:
    0  success
    1  the command ran and found problems: `lint` found problems, a job failed in `tick`
    2  usage or input error: bad arguments, an invalid or missing configuration or
       scheduler file, an invalid cron expression, time or zone, an unknown job key,
       `init` refusing to overwrite
    3  store error: the database could not be opened, migrated, read or written
    4  output error: standard output could not be written (a reader that closed the
       pipe, as in `kaal status | head -1`, is not an error: exit 0)
  130  `start` got a second SIGTERM/SIGINT/SIGHUP while finishing its current tick and
       killed the running job

Environment:
  KAAL_CONFIG  configuration file when --config is not given (default config/kaal.yml)
  KAAL_ENV     section of both files merged over `defaults:` (default development)
  RUST_LOG     log filter for stderr (default info), e.g. RUST_LOG=debug";

/// Exactly-once cron scheduling across every process that shares one database.
///
/// Reads the configuration file (database, scheduling settings) and the scheduler file (the
/// jobs), stores the jobs in the database and runs each fire time of each job once across
/// all nodes.
#[derive(Debug, Parser)]
#[command(name = "kaal", version, after_help = EXIT_CODES, max_term_width = 100)]
pub(crate) struct Cli {
    /// Configuration file [default: config/kaal.yml]
    #[arg(long, global = true, env = "KAAL_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a commented configuration file and scheduler file to start from
    #[command(after_help = EXIT_CODES)]
    Init(InitArgs),
    /// Create or update the kaal tables in the configured database (safe to repeat; `start`
    /// and `tick` do it themselves for SQLite)
    #[command(after_help = EXIT_CODES)]
    Migrate,
    /// Run the scheduler until SIGTERM, SIGINT or SIGHUP
    ///
    /// Reads the scheduler file: stores the jobs the database has never held (it never
    /// changes or removes stored jobs: that is `kaal apply`), binds the commands of the jobs
    /// whose stored command is this file's, warns about every job where the file and the
    /// database differ, prints a summary, runs missed-run recovery over recovery_window, then ticks every
    /// tick_interval. SIGTERM, SIGINT or SIGHUP (a stop, for now) finishes the current tick
    /// and exits 0; a second signal kills the running job's process group and exits 130. An
    /// SQLite database is created and migrated automatically.
    #[command(after_help = EXIT_CODES)]
    Start,
    /// Run one tick at an instant (default now) and print what it dispatched
    ///
    /// Reads the scheduler file like `start` (adding new jobs only), then dispatches the fire times due at the
    /// instant (those within window_lookback before it) that no node has dispatched yet.
    /// Exits 1 when a job failed. Several ticks at once on one database run each fire time
    /// once. A tick at an explicit instant is a testing and repair tool: --at later than the
    /// database's now is refused (exit 2) unless --force, and even then the store refuses
    /// to commit any fire time later than its own clock. --dry-run prints what the tick
    /// would claim and run, claiming, running and writing nothing.
    #[command(after_help = EXIT_CODES)]
    Tick(TickArgs),
    /// Apply the scheduler file to the database: add, change and remove stored jobs, in one
    /// transaction
    ///
    /// Prints the difference between the file and the stored jobs (added, changed with what
    /// changed, removed, kept disabled by an operator) and applies all of it or none of it.
    /// Nodes never change or delete stored jobs on their own (they only add new keys at
    /// start), so this is how a deploy changes a cron or a command or removes a job. An
    /// operator's enable/disable survives. A file that defines no jobs, or one that would
    /// remove every stored job, is refused (exit 2) unless --force. A removed job is kept
    /// disabled and marked removed, so a node with an older file does not add it back.
    #[command(after_help = EXIT_CODES)]
    Apply(ApplyArgs),
    /// Show what `kaal apply` would change, writing nothing (same as `kaal apply --dry-run`)
    #[command(after_help = EXIT_CODES)]
    Diff,
    /// Check the configuration file and the scheduler file without a database
    ///
    /// Reports every problem of both files, each with its file and line, and exits 2; or
    /// prints a one-line summary and exits 0. Opens no database connection, so it runs in a
    /// CI pipeline that cannot reach the production database.
    #[command(after_help = EXIT_CODES)]
    Check,
    /// Show the configuration and the stored job definitions
    #[command(after_help = EXIT_CODES)]
    Status,
    /// Enable a stored job on every node
    #[command(after_help = EXIT_CODES)]
    Enable(KeyArg),
    /// Disable a stored job on every node
    #[command(after_help = EXIT_CODES)]
    Disable(KeyArg),
    /// List recorded dispatches, newest fire time first
    #[command(after_help = EXIT_CODES)]
    Dispatches(DispatchesArgs),
    /// Describe a cron expression in words, with its next fire time
    #[command(after_help = EXIT_CODES)]
    Explain(ExplainArgs),
    /// Print the next fire times of a cron expression
    #[command(after_help = EXIT_CODES)]
    Next(NextArgs),
    /// Check a cron expression; exit 1 when it has problems
    #[command(after_help = EXIT_CODES)]
    Lint(CronArg),
}

#[derive(Debug, Args)]
struct InitArgs {
    /// Database the configuration file points at
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: init::InitBackend,
    /// Overwrite files that already exist
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
struct TickArgs {
    /// The instant to tick at, RFC 3339 (e.g. 2026-01-01T09:00:30Z) [default: now]
    #[arg(long, value_name = "RFC3339")]
    at: Option<String>,
    /// Tick at an --at later than the database's now (the store still refuses to commit
    /// fire times later than its own clock)
    #[arg(long)]
    force: bool,
    /// Print each fire time the tick would consider (would claim / already dispatched / not
    /// yet due) and claim, run and write nothing (no definitions stored either)
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, Args)]
struct ApplyArgs {
    /// Print the difference and write nothing
    #[arg(long)]
    dry_run: bool,
    /// Apply a file that defines no jobs or that removes every stored job
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
struct KeyArg {
    /// The job's cron key
    key: String,
}

#[derive(Debug, Args)]
struct DispatchesArgs {
    /// Only this job
    #[arg(long, value_name = "K")]
    key: Option<String>,
    /// Only dispatches by this node
    #[arg(long, value_name = "N")]
    node: Option<String>,
    /// Only this status: claimed, dispatched (running), succeeded, failed, timed_out,
    /// abandoned or skipped
    #[arg(long, value_name = "S")]
    status: Option<String>,
    /// Only fire times at or after this instant (RFC 3339)
    #[arg(long, value_name = "T")]
    since: Option<String>,
    /// At most this many rows
    #[arg(long, value_name = "N", default_value_t = 50)]
    limit: usize,
}

#[derive(Debug, Args)]
struct CronArg {
    /// Five fields (minute hour day-of-month month day-of-week) or a macro such as @daily;
    /// quote it
    cron: String,
}

#[derive(Debug, Args)]
struct ExplainArgs {
    /// Five fields (minute hour day-of-month month day-of-week) or a macro such as @daily;
    /// quote it
    cron: String,
    /// IANA time zone the next fire time is computed in [default: the configuration's
    /// time_zone when a configuration file is present, else UTC]
    #[arg(long, value_name = "ZONE")]
    tz: Option<String>,
}

#[derive(Debug, Args)]
struct NextArgs {
    /// The cron expression (quote it)
    cron: String,
    /// How many fire times
    #[arg(long, default_value_t = 5)]
    count: usize,
    /// IANA time zone the expression is evaluated in and times are shown in [default: the
    /// configuration's time_zone when a configuration file is present, else UTC]
    #[arg(long, value_name = "ZONE")]
    tz: Option<String>,
    /// Start after this instant, RFC 3339 [default: now]
    #[arg(long, value_name = "RFC3339")]
    from: Option<String>,
}

/// Why a command failed; the exit code and a one-line message (none for a quiet end).
#[derive(Debug)]
pub(crate) struct Failure {
    code: u8,
    message: Option<String>,
}

impl Failure {
    /// Exit 2: bad arguments or input files.
    pub fn usage(message: impl ToString) -> Self {
        Self {
            code: 2,
            message: Some(message.to_string()),
        }
    }

    /// Exit 3: the database failed.
    pub fn store(message: impl ToString) -> Self {
        Self {
            code: 3,
            message: Some(message.to_string()),
        }
    }

    /// Writing to stdout failed: a closed pipe (the reader has all it wanted) ends the
    /// command quietly with exit 0; anything else is exit 4 with the reason.
    pub fn output(err: std::io::Error) -> Self {
        if err.kind() == std::io::ErrorKind::BrokenPipe {
            Self {
                code: 0,
                message: None,
            }
        } else {
            Self {
                code: 4,
                message: Some(format!("cannot write to standard output: {err}")),
            }
        }
    }
}

/// Exit 1: the command ran and found problems (already printed).
pub(crate) const PROBLEMS_FOUND: u8 = 1;

pub(crate) fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            use clap::error::ErrorKind;
            if matches!(
                err.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = err.print();
                let code = if err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    2
                } else {
                    0
                };
                return ExitCode::from(code);
            }
            let text = err.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            error_line(&format!("{first} (see kaal --help)"));
            return ExitCode::from(2);
        }
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match run_command(cli) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            if let Some(message) = &failure.message {
                error_line(&message.replace('\n', " "));
            }
            ExitCode::from(failure.code)
        }
    }
}

/// `error: MESSAGE` on stderr; a stderr that cannot be written is ignored (the exit code
/// still tells), where `eprintln!` would panic.
fn error_line(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "error: {message}");
}

fn run_command(cli: Cli) -> Result<u8, Failure> {
    let config = cli.config;
    match cli.command {
        Command::Init(args) => init::run(config, args.backend, args.force),
        Command::Migrate => run::migrate(config),
        Command::Start => start::run(config),
        Command::Tick(args) => run::tick(
            config,
            run::TickOptions {
                at: args.at.as_deref(),
                dry_run: args.dry_run,
                force: args.force,
            },
        ),
        Command::Apply(args) => apply::run(
            config,
            apply::ApplyOptions {
                dry_run: args.dry_run,
                force: args.force,
            },
        ),
        Command::Diff => apply::run(
            config,
            apply::ApplyOptions {
                dry_run: true,
                force: false,
            },
        ),
        Command::Check => check::run(config),
        Command::Status => status::run(config),
        Command::Enable(arg) => run::set_enabled(config, &arg.key, true),
        Command::Disable(arg) => run::set_enabled(config, &arg.key, false),
        Command::Dispatches(args) => dispatches::run(
            config,
            dispatches::Filter {
                key: args.key,
                node: args.node,
                status: args.status,
                since: args.since,
                limit: args.limit,
            },
        ),
        Command::Explain(args) => cron_cmds::explain(&args.cron, args.tz.as_deref(), config),
        Command::Next(args) => cron_cmds::next(
            &args.cron,
            args.count,
            args.tz.as_deref(),
            args.from.as_deref(),
            config,
        ),
        Command::Lint(arg) => cron_cmds::lint(&arg.cron),
    }
}
