//! The configuration file (`config/kaal.yml`): where the database is and how to schedule.
//!
//! ```yaml
//! defaults:
//!   database_url: ${DATABASE_URL:-sqlite://db/kaal.db}
//!   tick_interval: 5            # durations are whole seconds
//!   time_zone: Europe/London
//! production:
//!   database_url: ${DATABASE_URL}
//!   lock_strategy: advisory     # PostgreSQL / MySQL only
//! ```
//!
//! * `defaults:` applies everywhere; the section named by `KAAL_ENV` (default
//!   `development`) is merged over it key by key. The library accepts a missing environment
//!   section (the file's defaults apply, as for `development` with no section); the `kaal`
//!   tool refuses an explicitly set `KAAL_ENV` that names no section of the file, listing
//!   the sections it has ([`ConfigFile::sections`]), so a misspelt environment never runs
//!   with another environment's settings.
//! * Keys: `database_url` (required), `lock_strategy` (`lease` default, `advisory`),
//!   `scheduler_config_path`, `scheduler_missing_file_policy` (`warn`, `error`),
//!   `window_lookahead` (accepted, no effect), and every field of [`Config`] in snake_case:
//!   `tick_interval`, `window_lookback`, `lease_ttl`, `recovery_window`, `recovery_startup_jitter`,
//!   `node_timeout`, `max_clock_offset`, `shutdown_grace`, `job_timeout` (whole seconds, at
//!   most ten years; `job_timeout` unset means no limit), `max_concurrent_runs` (a count, at
//!   least 1), `namespace`, `time_zone`, `node_id`,
//!   `enable_log_dispatch_registry`, `enable_dispatch_recovery` (booleans),
//!   `scheduler_conflict_policy` (`error`, `code_wins`, `file_wins`). A key set to `~` keeps
//!   its default.
//! * `${VAR}` and `${VAR:-default}` in values are replaced from the environment (`$${` is a
//!   literal `${`); an unquoted value is typed after expansion, so `tick_interval:
//!   ${TICK:-5}` is a number.
//! * `scheduler_config_path` is resolved against **the directory of the configuration
//!   file**; left unset it is `kaal-scheduler.yml` beside it (so `config/kaal.yml` reads
//!   `config/kaal-scheduler.yml`, the design's default). A relative SQLite `database_url`
//!   (`sqlite://db/kaal.db`, `db/kaal.db`) is resolved the same way by
//!   [`ConfigFile::resolved_database_url`], which is what the `kaal` tool opens: two nodes
//!   started from different working directories open the same file.
//! * A section or a key written twice is an error (YAML would silently keep the last).
//! * Unknown keys (in every section, selected or not), values of the wrong type and every
//!   problem of [`Config::validate`] are reported together, each with the file and line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kaal_core::Config;

use crate::database::{DatabaseKind, LockStrategy};
use crate::files::expand::expand;
use crate::files::problems::{
    misspelt_defaults, parse_yaml, utf8_text, Collector, FileErrors, FileProblem,
};
use crate::files::yaml::{type_plain, Node, Typed, Value};
use crate::suggest::did_you_mean;

/// What happens when the scheduler file does not exist (`scheduler_missing_file_policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissingFilePolicy {
    /// Log a warning and run with the definitions already stored (default).
    #[default]
    Warn,
    /// Refuse to start.
    Error,
}

impl MissingFilePolicy {
    /// The spelling used in configuration files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

impl std::fmt::Display for MissingFilePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for MissingFilePolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "warn" => Ok(Self::Warn),
            "error" => Ok(Self::Error),
            other => Err(format!(
                "unknown scheduler_missing_file_policy {other:?}: expected one of warn, error"
            )),
        }
    }
}

/// Where the configuration file is looked for when neither `--config` nor `KAAL_CONFIG`
/// says otherwise.
pub const DEFAULT_CONFIG_PATH: &str = "config/kaal.yml";

/// The environment section used when `KAAL_ENV` is not set.
pub const DEFAULT_ENVIRONMENT: &str = "development";

#[derive(Clone, Copy)]
enum Kind {
    Text,
    Seconds,
    Bool,
    /// A whole number of at least 1.
    Count,
}

const KEYS: &[(&str, Kind)] = &[
    ("database_url", Kind::Text),
    ("lock_strategy", Kind::Text),
    ("tick_interval", Kind::Seconds),
    ("window_lookback", Kind::Seconds),
    ("window_lookahead", Kind::Seconds),
    ("lease_ttl", Kind::Seconds),
    ("namespace", Kind::Text),
    ("time_zone", Kind::Text),
    ("enable_log_dispatch_registry", Kind::Bool),
    ("enable_dispatch_recovery", Kind::Bool),
    ("recovery_window", Kind::Seconds),
    ("recovery_startup_jitter", Kind::Seconds),
    ("scheduler_config_path", Kind::Text),
    ("scheduler_conflict_policy", Kind::Text),
    ("scheduler_missing_file_policy", Kind::Text),
    ("node_id", Kind::Text),
    ("node_timeout", Kind::Seconds),
    ("max_clock_offset", Kind::Seconds),
    ("max_concurrent_runs", Kind::Count),
    ("shutdown_grace", Kind::Seconds),
    ("job_timeout", Kind::Seconds),
];

/// The longest duration a setting accepts, in seconds: ten years. Far beyond any sensible
/// interval or window, and far inside what date arithmetic on the settings can hold (a
/// window of `i64::MAX` seconds would overflow computing `now - window`).
/// Core's [`MAX_DURATION`](kaal_core::MAX_DURATION), which `Config::validate` enforces.
#[allow(clippy::cast_possible_wrap)] // ten years of seconds fits an i64
pub(crate) const MAX_SECONDS: i64 = kaal_core::MAX_DURATION.as_secs() as i64;

fn key_names() -> Vec<&'static str> {
    KEYS.iter().map(|(name, _)| *name).collect()
}

/// A typed setting value.
enum Setting {
    Text(String),
    Seconds(Duration),
    Bool(bool),
    Count(usize),
}

/// A loaded configuration file.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    /// The file it was read from.
    pub path: PathBuf,
    /// The environment section that was merged over `defaults:`.
    pub environment: String,
    /// Where the store is (`sqlite://…`, `postgres://…`, `memory:`, …).
    pub database_url: String,
    /// How claims are held.
    pub lock_strategy: LockStrategy,
    /// The scheduling configuration (what the coordinator reads), validated.
    pub config: Config,
    /// Where the scheduler file is (`scheduler_config_path`), resolved against the file's
    /// directory.
    pub scheduler_config_path: PathBuf,
    /// What a missing scheduler file means (`scheduler_missing_file_policy`).
    pub scheduler_missing_file_policy: MissingFilePolicy,
    /// `window_lookahead`, accepted for the Ruby gem's files and checked; it has no effect
    /// (a tick never dispatches a fire time later than its `now`).
    pub window_lookahead: Duration,
    /// The names of the file's top-level sections, in file order (`defaults` included).
    pub sections: Vec<String>,
}

/// What [`ConfigFile::check`] found: every problem of the file, and what a check of the
/// scheduler file needs from it even when the configuration has problems.
#[derive(Debug, Clone)]
pub struct ConfigCheck {
    /// The file as far as it could be read: `None` when it could not be read at all (missing,
    /// not UTF-8, malformed YAML, not a mapping).
    pub file: Option<ConfigFile>,
    /// Every problem, sorted by line (empty when the file is good).
    pub problems: Vec<FileProblem>,
    /// The scheduler file the configuration names (resolved against its directory), or the
    /// default beside it when the file could not be read.
    pub scheduler_config_path: PathBuf,
    /// The namespace the configuration sets (or the default).
    pub namespace: String,
}

impl ConfigFile {
    /// Reads `path` for `environment`, expanding `${VAR}` from the process environment.
    pub fn load(path: &Path, environment: &str) -> Result<Self, FileErrors> {
        let bytes = std::fs::read(path).map_err(|err| {
            FileErrors::whole_file(
                path,
                format!("cannot read the configuration file: {err} (run `kaal init` to create one, or pass --config)"),
            )
        })?;
        Self::parse_bytes(&bytes, path, environment, &|name| std::env::var(name).ok())
    }

    /// Parses the raw contents of a configuration file, as [`ConfigFile::load`] does after
    /// reading it: bytes that are not UTF-8 are an error naming their line, then the text
    /// goes to [`ConfigFile::parse`].
    ///
    /// ```
    /// use std::path::Path;
    /// use kaal::ConfigFile;
    ///
    /// let bytes = b"defaults:\n  database_url: \"memory:\"\n  namespace: caf\xe9\n";
    /// let err = ConfigFile::parse_bytes(bytes, Path::new("k.yml"), "development", &|_| None)
    ///     .unwrap_err();
    /// assert!(err.to_string().starts_with("k.yml:3: not UTF-8 text at column 17"));
    /// ```
    pub fn parse_bytes(
        bytes: &[u8],
        path: &Path,
        environment: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, FileErrors> {
        Self::parse(utf8_text(bytes, path)?, path, environment, lookup)
    }

    /// Parses configuration `text` as if read from `path`, looking variables up with
    /// `lookup`.
    ///
    /// ```
    /// use std::path::Path;
    /// use kaal::ConfigFile;
    ///
    /// let text = "defaults:\n  database_url: \"memory:\"\n  tick_interval: ${TICK:-2}\n";
    /// let file = ConfigFile::parse(text, Path::new("conf/kaal.yml"), "development", &|_| None)?;
    /// assert_eq!(file.config.tick_interval.as_secs(), 2);
    /// assert_eq!(file.scheduler_config_path, Path::new("conf/kaal-scheduler.yml"));
    ///
    /// let err = ConfigFile::parse("defaults:\n  tick_intervall: 5\n", Path::new("k.yml"), "development", &|_| None)
    ///     .unwrap_err();
    /// assert!(err.to_string().starts_with("k.yml:2: unknown key \"tick_intervall\""));
    /// # Ok::<(), kaal::FileErrors>(())
    /// ```
    pub fn parse(
        text: &str,
        path: &Path,
        environment: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, FileErrors> {
        let (file, problems) = Self::read(text, path, environment, lookup)?;
        problems.finish(file)
    }

    /// Checks the file at `path` for `environment` without opening any database: every
    /// problem at once, and the scheduler file's path and namespace for checking it too
    /// (what `kaal check` runs).
    ///
    /// ```
    /// let dir = std::env::temp_dir().join(format!("kaal-check-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let path = dir.join("kaal.yml");
    /// std::fs::write(&path, "defaults:\n  database_url: postgres://db.invalid/app\n  tick_intervall: 5\n")?;
    /// let check = kaal::ConfigFile::check(&path, "development");
    /// assert_eq!(check.problems.len(), 1);
    /// assert_eq!(check.problems[0].line, Some(3));
    /// assert_eq!(check.scheduler_config_path, dir.join("kaal-scheduler.yml"));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn check(path: &Path, environment: &str) -> ConfigCheck {
        let base = path.parent().unwrap_or(Path::new(""));
        let unread = |errors: FileErrors| ConfigCheck {
            file: None,
            problems: errors.problems,
            scheduler_config_path: base.join("kaal-scheduler.yml"),
            namespace: Config::default().namespace,
        };
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(err) => {
                return unread(FileErrors::whole_file(
                    path,
                    format!("cannot read the configuration file: {err}"),
                ))
            }
        };
        let text = match utf8_text(&bytes, path) {
            Ok(text) => text,
            Err(errors) => return unread(errors),
        };
        match Self::read(text, path, environment, &|name| std::env::var(name).ok()) {
            Err(errors) => unread(errors),
            Ok((file, collector)) => {
                let mut problems = collector.problems;
                problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
                ConfigCheck {
                    scheduler_config_path: file.scheduler_config_path.clone(),
                    namespace: file.config.namespace.clone(),
                    file: Some(file),
                    problems,
                }
            }
        }
    }

    /// The database URL to open: [`database_url`](ConfigFile::database_url), with a relative
    /// SQLite file path (`sqlite://db/kaal.db`, `sqlite:db/kaal.db`, `db/kaal.db`) resolved
    /// against the directory of the configuration file, as `scheduler_config_path` is. Any
    /// other URL is returned as it is.
    ///
    /// ```
    /// use std::path::Path;
    /// let file = kaal::ConfigFile::parse(
    ///     "defaults:\n  database_url: sqlite://db/kaal.db\n",
    ///     Path::new("/srv/app/config/kaal.yml"),
    ///     "development",
    ///     &|_| None,
    /// )?;
    /// assert_eq!(file.resolved_database_url(), "sqlite:///srv/app/config/db/kaal.db");
    /// # Ok::<(), kaal::FileErrors>(())
    /// ```
    pub fn resolved_database_url(&self) -> String {
        let url = self.database_url.trim();
        let base = self.path.parent().unwrap_or(Path::new(""));
        match crate::database::sqlite_file(url) {
            Some(file) if !base.as_os_str().is_empty() && Path::new(file).is_relative() => {
                let prefix = &url[..url.len() - file.len()];
                format!("{prefix}{}", base.join(file).display())
            }
            _ => url.to_string(),
        }
    }

    /// Reads the file: `Err` when it cannot be read as a mapping of sections at all, else the
    /// file as far as it could be read and the problems found.
    fn read(
        text: &str,
        path: &Path,
        environment: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(Self, Collector), FileErrors> {
        let root = parse_yaml(text, path)?
            .filter(|root| !root.is_null())
            .ok_or_else(|| {
                FileErrors::whole_file(
                    path,
                    "the file is empty; it needs a `defaults:` section with database_url",
                )
            })?;
        let mut problems = Collector::new(path);
        let Some(sections) = root.as_map() else {
            problems.at(
                root.line,
                format!(
                    "expected a mapping of sections (`defaults:`, `{environment}:`, ...), found {}",
                    root.describe()
                ),
            );
            return Err(FileErrors {
                problems: problems.problems,
            });
        };
        let names = key_names();
        let mut merged: BTreeMap<&str, &Node> = BTreeMap::new();
        let mut env_found = false;
        for pass in ["defaults", environment] {
            for (name, body) in sections {
                if name.scalar_text() == Some(pass) {
                    env_found |= pass == environment;
                    for (key, value) in body.as_map().unwrap_or_default() {
                        if let Some(known) = key
                            .scalar_text()
                            .and_then(|k| names.iter().find(|n| **n == k))
                        {
                            merged.insert(known, value);
                        }
                    }
                }
            }
        }
        check_sections(sections, &names, &mut problems);
        if !env_found && environment != "defaults" {
            log::debug!(
                "{}: no `{environment}:` section; using defaults",
                path.display()
            );
        }

        let mut config = Config::default();
        let mut own = FileOnly::default();
        let mut bad_fields: Vec<&str> = Vec::new();
        for (&key, &node) in &merged {
            let Some((_, kind)) = KEYS.iter().find(|(name, _)| *name == key) else {
                continue;
            };
            let value = match typed_setting(node, *kind, lookup) {
                Ok(None) => continue,
                Ok(Some(value)) => value,
                Err(message) => {
                    problems.at(node.line, format!("{key}: {message}"));
                    bad_fields.push(key);
                    continue;
                }
            };
            if let Err(message) = apply(key, value, &mut config, &mut own) {
                problems.at(node.line, format!("{key}: {message}"));
                bad_fields.push(key);
            }
        }
        let base = path.parent().unwrap_or(Path::new(""));
        let scheduler_config_path = match own.scheduler_path {
            Some(p) if p.is_absolute() => p,
            Some(p) => base.join(p),
            None => base.join("kaal-scheduler.yml"),
        };
        let lock_strategy = own.lock_strategy;
        let database_url = own.database_url.unwrap_or_default();
        if database_url.trim().is_empty() && !bad_fields.contains(&"database_url") {
            problems.whole(format!(
                "database_url is not set in `defaults:` or `{environment}:`; add e.g. `database_url: sqlite://db/kaal.db`"
            ));
        }
        if lock_strategy == LockStrategy::Advisory {
            if let Ok(backend @ (DatabaseKind::Memory | DatabaseKind::Sqlite)) =
                DatabaseKind::from_url(&database_url)
            {
                let line = merged.get("lock_strategy").map_or(0, |n| n.line);
                problems.at(line, format!("lock_strategy: advisory locks exist only on PostgreSQL and MySQL, not {backend}; use lease"));
            }
        }
        if let Err(errors) = config.validate() {
            for problem in errors.problems {
                if bad_fields.contains(&problem.field) {
                    continue;
                }
                match merged.get(problem.field) {
                    Some(node) => problems.at(node.line, problem.to_string()),
                    None => problems.whole(format!(
                        "{problem} (the default; set {} in the file)",
                        problem.field
                    )),
                }
            }
        }
        let sections = sections
            .iter()
            .filter_map(|(name, _)| name.scalar_text().map(str::to_string))
            .collect();
        Ok((
            ConfigFile {
                path: path.to_path_buf(),
                environment: environment.to_string(),
                database_url,
                lock_strategy,
                config,
                scheduler_config_path,
                scheduler_missing_file_policy: own.missing_file_policy,
                window_lookahead: own.window_lookahead,
                sections,
            },
            problems,
        ))
    }
}

/// Reports top-level keys that are settings, sections that are not mappings, unknown and
/// duplicate keys in every section.
fn check_sections(sections: &[(Node, Node)], names: &[&str], problems: &mut Collector) {
    let mut seen_sections: BTreeMap<&str, usize> = BTreeMap::new();
    for (name, body) in sections {
        let Some(section) = name.scalar_text() else {
            problems.at(
                name.line,
                format!("a section name must be a word, found {}", name.describe()),
            );
            continue;
        };
        if let Some(first) = seen_sections.insert(section, name.line) {
            problems.at(
                name.line,
                format!("duplicate section `{section}:` (first at line {first}); merge the two"),
            );
        }
        if names.contains(&section) {
            problems.at(
                name.line,
                format!("{section} at the top level: settings go under `defaults:` or an environment section such as `production:`"),
            );
            continue;
        }
        if let Some(message) = misspelt_defaults(section) {
            problems.at(name.line, message);
        }
        if body.is_null() {
            continue;
        }
        let Some(entries) = body.as_map() else {
            problems.at(
                body.line,
                format!(
                    "section `{section}:` must be a mapping of settings, found {}",
                    body.describe()
                ),
            );
            continue;
        };
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (key, _) in entries {
            let Some(text) = key.scalar_text() else {
                problems.at(
                    key.line,
                    format!(
                        "in `{section}:`, a key must be a word, found {}",
                        key.describe()
                    ),
                );
                continue;
            };
            if let Some(first) = seen.insert(text, key.line) {
                problems.at(
                    key.line,
                    format!("duplicate key {text:?} in `{section}:` (first at line {first})"),
                );
            }
            if !names.contains(&text) {
                problems.at(
                    key.line,
                    format!(
                        "unknown key {text:?} in `{section}:`{}; known keys: {}",
                        did_you_mean(text, names),
                        names.join(", ")
                    ),
                );
            }
        }
    }
}

/// Expands and types one setting; `Ok(None)` for null (keep the default).
fn typed_setting(
    node: &Node,
    kind: Kind,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Setting>, String> {
    let Value::Scalar { text, plain } = &node.value else {
        return Err(format!(
            "expected {}, found {}",
            kind_name(kind),
            node.describe()
        ));
    };
    let expanded = expand(text, lookup)?;
    let typed = if *plain || expanded != *text {
        type_plain(&expanded)
    } else {
        Typed::Str(&expanded)
    };
    let found = || {
        if expanded == *text {
            node.describe()
        } else {
            format!("{expanded:?} (from {text:?})")
        }
    };
    match (kind, typed) {
        (_, Typed::Null) => Ok(None),
        (Kind::Text, Typed::Str(s)) => Ok(Some(Setting::Text(s.to_string()))),
        (Kind::Text, _) if *plain => Ok(Some(Setting::Text(expanded.clone()))),
        (Kind::Seconds, Typed::Int(i)) if (0..=MAX_SECONDS).contains(&i) => Ok(Some(
            Setting::Seconds(Duration::from_secs(i.unsigned_abs())),
        )),
        (Kind::Seconds, Typed::Int(i)) if i > MAX_SECONDS => Err(format!(
            "{i} s is more than ten years ({MAX_SECONDS} s), the longest duration accepted"
        )),
        (Kind::Bool, Typed::Bool(b)) => Ok(Some(Setting::Bool(b))),
        (Kind::Count, Typed::Int(i)) if i >= 1 => Ok(Some(Setting::Count(
            usize::try_from(i).unwrap_or(usize::MAX),
        ))),
        _ => Err(format!("expected {}, found {}", kind_name(kind), found())),
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Text => "a string",
        Kind::Seconds => "a whole number of seconds such as 5",
        Kind::Bool => "true or false",
        Kind::Count => "a whole number of at least 1 such as 8",
    }
}

/// The settings of the file that are not the coordinator's [`Config`], as read.
#[derive(Default)]
struct FileOnly {
    database_url: Option<String>,
    lock_strategy: LockStrategy,
    scheduler_path: Option<PathBuf>,
    missing_file_policy: MissingFilePolicy,
    window_lookahead: Duration,
}

/// Stores one typed setting into its field.
fn apply(key: &str, value: Setting, config: &mut Config, own: &mut FileOnly) -> Result<(), String> {
    match (key, value) {
        ("database_url", Setting::Text(s)) => own.database_url = Some(s),
        ("lock_strategy", Setting::Text(s)) => own.lock_strategy = s.parse()?,
        ("namespace", Setting::Text(s)) => config.namespace = s,
        ("time_zone", Setting::Text(s)) => config.time_zone = s,
        ("node_id", Setting::Text(s)) => config.node_id = s,
        ("scheduler_config_path", Setting::Text(s)) => own.scheduler_path = Some(PathBuf::from(s)),
        ("scheduler_conflict_policy", Setting::Text(s)) => {
            config.scheduler_conflict_policy = s.parse()?
        }
        ("scheduler_missing_file_policy", Setting::Text(s)) => {
            own.missing_file_policy = s.parse()?
        }
        ("tick_interval", Setting::Seconds(d)) => config.tick_interval = d,
        ("window_lookback", Setting::Seconds(d)) => config.window_lookback = d,
        ("window_lookahead", Setting::Seconds(d)) => own.window_lookahead = d,
        ("lease_ttl", Setting::Seconds(d)) => config.lease_ttl = d,
        ("recovery_window", Setting::Seconds(d)) => config.recovery_window = d,
        ("recovery_startup_jitter", Setting::Seconds(d)) => config.recovery_startup_jitter = d,
        ("node_timeout", Setting::Seconds(d)) => config.node_timeout = d,
        ("max_clock_offset", Setting::Seconds(d)) => config.max_clock_offset = d,
        ("max_concurrent_runs", Setting::Count(n)) => config.max_concurrent_runs = n,
        ("shutdown_grace", Setting::Seconds(d)) => config.shutdown_grace = d,
        ("job_timeout", Setting::Seconds(d)) => config.job_timeout = Some(d),
        ("enable_log_dispatch_registry", Setting::Bool(b)) => {
            config.enable_log_dispatch_registry = b
        }
        ("enable_dispatch_recovery", Setting::Bool(b)) => config.enable_dispatch_recovery = b,
        (other, _) => return Err(format!("internal: no field for {other}")),
    }
    Ok(())
}
