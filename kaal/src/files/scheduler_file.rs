//! The scheduler file (`config/kaal-scheduler.yml`): the jobs an operator declares.
//!
//! ```yaml
//! defaults:
//!   jobs:
//!     - key: reports:daily
//!       cron: "0 6 * * *"
//!       command: ["bin/report", "--at", "{{fire_time.iso8601}}", "--id", "{{idempotency_key}}"]
//!       env: { REPORT_KIND: daily }
//!       working_dir: /srv/app
//!       timeout: 600
//!       policy:                       # how its fire times run, the same on every node
//!         overlap: skip
//!         catch_up: latest
//!         retry: { max_attempts: 3, backoff: 10, max_backoff: 300 }
//!         time_zone: Europe/Berlin
//!       metadata: { owner: finance }
//!     - key: cleanup
//!       cron: "@hourly"
//!       shell: "find tmp -mtime +1 -delete && echo cleaned {{key}}"
//!     - key: weekly_summary
//!       cron: "@weekly"
//!       handler: weekly_summary       # a callback registered in code (library users)
//! production:
//!   jobs:
//!     - key: cleanup                  # replaces the defaults' job of the same key
//!       cron: "*/30 * * * *"
//!       shell: "find tmp -mtime +1 -delete"
//! ```
//!
//! * Jobs of `defaults:` and of the section named by the environment (`KAAL_ENV`) are used;
//!   an environment job replaces the defaults' job with the same key. Every section is
//!   checked, selected or not. A job key twice in one section is an error, and so is any
//!   section, `jobs:`, job field, `env` name or `metadata` key written twice.
//! * A job has `key`, `cron`, `enabled` (default true), exactly one of `command` (a list:
//!   program and arguments, no shell), `shell` (a string for `sh -c`) or `handler` (a name
//!   bound in code), and for `command`/`shell` optionally `env` (a mapping), `working_dir`
//!   and `timeout` (whole seconds, at most ten years); `metadata` is any mapping (the key
//!   `kaal` is reserved).
//! * `policy` (any job) is a mapping of `overlap` (`allow` | `skip` | `queue_one`),
//!   `catch_up` (`all` | `latest` | `none`), `starting_deadline`, `timeout` and `jitter`
//!   (whole seconds), `retry` (`{max_attempts: 1..100, backoff: s, max_backoff: s}`),
//!   `time_zone` (an IANA name) and `on_node_loss` (`abandon` | `rerun`) — every key
//!   optional, the meanings and defaults of [`kaal_core::policy`]. It is stored with the
//!   job's definition, so every node applies the same policy; an unknown key, a value of
//!   the wrong type, a negative or too large number, a zone chrono-tz does not know is an
//!   error naming the line, the key and what is allowed. A command job's own `timeout:`
//!   kills its process; `policy.timeout` is how long the coordinator lets any run take
//!   before recording it `timed_out`.
//! * Placeholders `{{fire_time.iso8601}}`, `{{fire_time.unix}}`, `{{idempotency_key}}` and
//!   `{{key}}` are filled in in `command` arguments, the `shell` string and `env` values.
//! * `${VAR}` and `${VAR:-default}` in every value are replaced from the environment when
//!   the file is loaded, as in the configuration file (`$${` is a literal `${`; an unquoted
//!   value is typed after expansion). An unset variable without a default is an error naming
//!   it and its line. This applies to `shell:` strings too: write `$VAR` or `$${VAR}` to leave
//!   a variable to the job's shell (for instance one the job's `env:` sets). A job of a
//!   section that is not selected is checked when its variables are set; one whose
//!   variables are not set here is checked when its environment is selected.
//! * Loading checks everything first and reports every problem with the file and line;
//!   nothing is stored unless the whole file is good.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::files::expand::expand_values;
use crate::files::problems::{misspelt_defaults, parse_yaml, utf8_text, Collector, FileErrors};
use crate::files::scheduler_job::{read_job, FileJob, JOB_KEYS};
use crate::files::yaml::Node;
use crate::suggest::did_you_mean;

/// A loaded scheduler file: the jobs of `defaults:` merged with the environment's.
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulerFile {
    /// The file.
    pub path: PathBuf,
    /// The jobs in force, ordered by key.
    pub jobs: Vec<FileJob>,
}

impl SchedulerFile {
    /// Reads `path` for `environment`; `Ok(None)` when the file does not exist (the caller
    /// applies `scheduler_missing_file_policy`). `namespace` bounds the key length.
    pub fn load(
        path: &Path,
        environment: &str,
        namespace: &str,
    ) -> Result<Option<Self>, FileErrors> {
        match std::fs::read(path) {
            Ok(bytes) => Self::parse_bytes(&bytes, path, environment, namespace).map(Some),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(FileErrors::whole_file(
                path,
                format!("cannot read the scheduler file: {err}"),
            )),
        }
    }

    /// Parses the raw contents of a scheduler file, as [`SchedulerFile::load`] does after
    /// reading it: bytes that are not UTF-8 are an error naming their line, then the text
    /// goes to [`SchedulerFile::parse`].
    ///
    /// ```
    /// use std::path::Path;
    /// use kaal::SchedulerFile;
    ///
    /// let err = SchedulerFile::parse_bytes(b"defaults:\n  jobs: \xff\n", Path::new("s.yml"), "development", "kaal")
    ///     .unwrap_err();
    /// assert!(err.to_string().starts_with("s.yml:2: not UTF-8 text at column 9 (byte 0xFF)"));
    /// ```
    pub fn parse_bytes(
        bytes: &[u8],
        path: &Path,
        environment: &str,
        namespace: &str,
    ) -> Result<Self, FileErrors> {
        Self::parse(utf8_text(bytes, path)?, path, environment, namespace)
    }

    /// Parses scheduler `text` as if read from `path`, expanding `${VAR}` from the process
    /// environment; see [`SchedulerFile::parse_with`].
    ///
    /// ```
    /// use std::path::Path;
    /// use kaal::SchedulerFile;
    ///
    /// let text = "defaults:\n  jobs:\n    - key: hello\n      cron: '* * * * *'\n      command: [echo, '{{key}} {{fire_time.unix}}']\n";
    /// let file = SchedulerFile::parse(text, Path::new("s.yml"), "development", "kaal")?;
    /// assert_eq!(file.jobs[0].key, "hello");
    ///
    /// let bad = text.replace("{{key}}", "{{name}}");
    /// let err = SchedulerFile::parse(&bad, Path::new("s.yml"), "development", "kaal").unwrap_err();
    /// assert!(err.to_string().starts_with("s.yml:5: job \"hello\": command: unknown placeholder {{name}}"));
    /// # Ok::<(), kaal::FileErrors>(())
    /// ```
    pub fn parse(
        text: &str,
        path: &Path,
        environment: &str,
        namespace: &str,
    ) -> Result<Self, FileErrors> {
        Self::parse_with(text, path, environment, namespace, &|name| {
            std::env::var(name).ok()
        })
    }

    /// Parses scheduler `text` as if read from `path`, looking `${VAR}` up with `lookup`.
    ///
    /// ```
    /// use std::path::Path;
    /// use kaal::SchedulerFile;
    ///
    /// let text = "defaults:\n  jobs:\n    - key: sync\n      cron: ${SYNC_CRON:-@hourly}\n      command: [bin/sync, '${TARGET}']\n";
    /// let env = |name: &str| (name == "TARGET").then(|| "eu".to_string());
    /// let file = SchedulerFile::parse_with(text, Path::new("s.yml"), "development", "kaal", &env)?;
    /// assert_eq!(file.jobs[0].cron, "@hourly");
    ///
    /// let err = SchedulerFile::parse_with(text, Path::new("s.yml"), "development", "kaal", &|_| None)
    ///     .unwrap_err();
    /// assert!(err.to_string().starts_with("s.yml:5: job \"sync\": command: environment variable TARGET is not set"));
    /// # Ok::<(), kaal::FileErrors>(())
    /// ```
    pub fn parse_with(
        text: &str,
        path: &Path,
        environment: &str,
        namespace: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, FileErrors> {
        let mut problems = Collector::new(path);
        // An empty file, or one holding only `~` or `---`, declares no jobs.
        let Some(root) = parse_yaml(text, path)?.filter(|root| !root.is_null()) else {
            return Ok(Self {
                path: path.to_path_buf(),
                jobs: Vec::new(),
            });
        };
        let Some(sections) = root.as_map() else {
            problems.at(
                root.line,
                format!(
                    "expected a mapping of sections (`defaults:`, `{environment}:`, ...), found {}",
                    root.describe()
                ),
            );
            return problems.finish(Self {
                path: path.to_path_buf(),
                jobs: Vec::new(),
            });
        };
        let mut by_section: Vec<(String, Vec<FileJob>)> = Vec::new();
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
                    format!(
                        "duplicate section `{section}:` (first at line {first}); merge the two"
                    ),
                );
            }
            if section == "jobs" || JOB_KEYS.contains(&section) {
                problems.at(name.line, format!("{section} at the top level: put jobs under `defaults:` or an environment section, as `jobs:`"));
                continue;
            }
            if let Some(message) = misspelt_defaults(section) {
                problems.at(name.line, message);
            }
            let selected = section == "defaults" || section == environment;
            let jobs = read_section(section, body, namespace, selected, lookup, &mut problems);
            by_section.push((section.to_string(), jobs));
        }
        let mut merged: BTreeMap<String, FileJob> = BTreeMap::new();
        for pass in ["defaults", environment] {
            for (section, jobs) in &by_section {
                if section == pass {
                    for job in jobs {
                        merged.insert(job.key.clone(), job.clone());
                    }
                }
            }
        }
        problems.finish(Self {
            path: path.to_path_buf(),
            jobs: merged.into_values().collect(),
        })
    }
}

fn read_section(
    section: &str,
    body: &Node,
    namespace: &str,
    selected: bool,
    lookup: &dyn Fn(&str) -> Option<String>,
    problems: &mut Collector,
) -> Vec<FileJob> {
    let mut jobs = Vec::new();
    if body.is_null() {
        return jobs;
    }
    let Some(entries) = body.as_map() else {
        problems.at(
            body.line,
            format!(
                "section `{section}:` must be a mapping with `jobs:`, found {}",
                body.describe()
            ),
        );
        return jobs;
    };
    let mut jobs_line = None;
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (key, value) in entries {
        match key.scalar_text() {
            Some("jobs") => {
                if let Some(first) = jobs_line.replace(key.line) {
                    problems.at(
                        key.line,
                        format!("duplicate `jobs:` in `{section}:` (first at line {first}); put all the jobs in one list"),
                    );
                }
            }
            Some(text) => {
                problems.at(
                    key.line,
                    format!(
                        "unknown key {text:?} in `{section}:`; a section holds only `jobs:`{}",
                        did_you_mean(text, &["jobs"])
                    ),
                );
                continue;
            }
            None => {
                problems.at(
                    key.line,
                    format!(
                        "in `{section}:`, a key must be a word (`jobs:`), found {}",
                        key.describe()
                    ),
                );
                continue;
            }
        }
        if value.is_null() {
            continue;
        }
        let Some(items) = value.as_seq() else {
            problems.at(
                value.line,
                format!(
                    "`{section}.jobs` must be a list of jobs, found {}",
                    value.describe()
                ),
            );
            continue;
        };
        for item in items {
            let key = item.as_map().and_then(|entries| {
                entries
                    .iter()
                    .find(|(k, _)| k.scalar_text() == Some("key"))
                    .and_then(|(_, v)| v.scalar_text())
            });
            if let Some(key) = key {
                if let Some(first) = seen.insert(key, item.line) {
                    problems.at(
                        item.line,
                        format!(
                            "duplicate job key {key:?} in `{section}:` (first at line {first})"
                        ),
                    );
                    continue;
                }
            }
            let mut unset = Vec::new();
            let item = expand_values(item, lookup, &mut unset);
            if !unset.is_empty() {
                if selected {
                    let name = key.map_or_else(String::new, |k| format!("job {k:?}: "));
                    for (line, message) in unset {
                        problems.at(line, format!("{name}{message}"));
                    }
                }
                // A job of another environment is checked where its variables are set.
                continue;
            }
            jobs.extend(read_job(&item, namespace, problems));
        }
    }
    jobs
}
