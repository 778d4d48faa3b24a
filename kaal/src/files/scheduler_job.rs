//! One job of the scheduler file: [`FileJob`], and reading it — its fields, checked and
//! typed, every problem reported with its line.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value as Json};

use kaal_core::chrono_tz::TZ_VARIANTS;
use kaal_core::cron;
use kaal_core::policy::{
    CatchUp, JobPolicy, OnNodeLoss, Overlap, PolicyError, POLICY_KEYS, RETRY_KEYS,
};
use kaal_core::validate_cron_key;

use crate::files::config_file::MAX_SECONDS;
use crate::files::problems::Collector;
use crate::files::yaml::{Node, Typed, Value};
use crate::jobs::command_job::{CommandJob, Program};
use crate::jobs::placeholder::Template;
use crate::suggest::did_you_mean;

/// What a file job does for each fire time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobAction {
    /// Runs a process (`command:` or `shell:`).
    Command(CommandJob),
    /// Calls the callback registered in code under this name (`handler:`).
    Handler(String),
}

/// One job of the scheduler file.
#[derive(Debug, Clone, PartialEq)]
pub struct FileJob {
    /// The cron key.
    pub key: String,
    /// The cron expression, as written.
    pub cron: String,
    /// What the file says about `enabled` (default true).
    pub enabled: bool,
    /// What runs.
    pub action: JobAction,
    /// The job's `policy:` (default when absent), stored under `kaal.policy`.
    pub policy: JobPolicy,
    /// The job's `metadata:` mapping.
    pub metadata: Map<String, Json>,
    /// Where the job starts in the file.
    pub line: usize,
}

/// The keys a job may have.
pub(crate) const JOB_KEYS: &[&str] = &[
    "key",
    "cron",
    "enabled",
    "command",
    "shell",
    "handler",
    "env",
    "working_dir",
    "timeout",
    "policy",
    "metadata",
];

/// Reads one job; reports its problems and returns `None` when it has any.
pub(crate) fn read_job(node: &Node, namespace: &str, problems: &mut Collector) -> Option<FileJob> {
    let Some(entries) = node.as_map() else {
        problems.at(
            node.line,
            format!(
                "a job must be a mapping with key, cron and command/shell/handler, found {}",
                node.describe()
            ),
        );
        return None;
    };
    let before = problems.problems.len();
    let mut fields: BTreeMap<&str, &Node> = BTreeMap::new();
    for (k, v) in entries {
        let Some(name) = k.scalar_text() else {
            problems.at(
                k.line,
                format!(
                    "a job's keys must be words ({}), found {}",
                    JOB_KEYS.join(", "),
                    k.describe()
                ),
            );
            continue;
        };
        match JOB_KEYS.iter().find(|known| **known == name) {
            Some(known) => {
                if fields.insert(known, v).is_some() {
                    problems.at(k.line, format!("duplicate {name:?} in this job"));
                }
            }
            None => problems.at(
                k.line,
                format!(
                    "unknown job key {name:?}{}; known: {}",
                    did_you_mean(name, JOB_KEYS),
                    JOB_KEYS.join(", ")
                ),
            ),
        }
    }
    let key = match fields.get("key").map(|n| (n, n.scalar_text())) {
        Some((_, Some(text))) => text.to_string(),
        Some((n, None)) => {
            problems.at(
                n.line,
                format!("key: expected a string, found {}", n.describe()),
            );
            return None;
        }
        None => {
            problems.at(node.line, "a job needs a `key:`");
            return None;
        }
    };
    let mut report =
        |line: usize, message: String| problems.at(line, format!("job {key:?}: {message}"));
    if let Err(err) = validate_cron_key(namespace, &key) {
        report(fields["key"].line, format!("key: {err}"));
    }
    let cron_expr = match fields.get("cron") {
        None => {
            report(node.line, "needs a `cron:` such as \"*/5 * * * *\"".into());
            String::new()
        }
        Some(n) => match string(n) {
            Err(found) => {
                report(n.line, format!("cron: expected a string, found {found}"));
                String::new()
            }
            Ok(text) => {
                let lint = if text.trim().is_empty() {
                    vec!["the cron expression is blank".to_string()]
                } else {
                    cron::lint(text)
                };
                for message in lint {
                    report(n.line, format!("cron {text:?}: {message}"));
                }
                text.to_string()
            }
        },
    };
    let enabled = match fields.get("enabled").map(|n| (n, n.typed())) {
        None | Some((_, Some(Typed::Null))) => true,
        Some((_, Some(Typed::Bool(b)))) => b,
        Some((n, _)) => {
            report(
                n.line,
                format!("enabled: expected true or false, found {}", n.describe()),
            );
            true
        }
    };
    let metadata = match fields.get("metadata") {
        None => Map::new(),
        Some(n) if n.is_null() => Map::new(),
        Some(n) => match n.to_json() {
            Json::Object(map) if n.as_map().is_some() => {
                check_metadata_keys(n, "metadata", &mut report);
                if map.contains_key("kaal") {
                    report(
                        n.line,
                        "metadata: the key `kaal` is reserved for the job's execution details"
                            .into(),
                    );
                }
                map
            }
            _ => {
                report(
                    n.line,
                    format!("metadata: expected a mapping, found {}", n.describe()),
                );
                Map::new()
            }
        },
    };
    let policy = match fields.get("policy") {
        None => JobPolicy::default(),
        Some(n) if n.is_null() => JobPolicy::default(),
        Some(n) => read_policy(n, &mut report),
    };
    let actions: Vec<&str> = ["command", "shell", "handler"]
        .into_iter()
        .filter(|a| fields.contains_key(a))
        .collect();
    let action = match actions.as_slice() {
        [] => {
            report(
                node.line,
                "needs one of `command:` (a list), `shell:` (a string) or `handler:` (a name)"
                    .into(),
            );
            None
        }
        [_, second, ..] => {
            report(
                fields[second].line,
                format!(
                    "has both `{}:` and `{second}:`; give exactly one",
                    actions[0]
                ),
            );
            None
        }
        ["handler"] => {
            for extra in ["env", "working_dir", "timeout"] {
                if let Some(n) = fields.get(extra) {
                    report(n.line, format!("{extra}: only for `command:` and `shell:` jobs; a handler runs in code"));
                }
            }
            let n = fields["handler"];
            match n.scalar_text().filter(|t| !t.trim().is_empty()) {
                Some(name) => Some(JobAction::Handler(name.to_string())),
                None => {
                    report(
                        n.line,
                        format!("handler: expected a name, found {}", n.describe()),
                    );
                    None
                }
            }
        }
        [which] => read_command(&key, which, &fields, &mut report).map(JobAction::Command),
    };
    if problems.problems.len() > before {
        return None;
    }
    Some(FileJob {
        key,
        cron: cron_expr,
        enabled,
        action: action?,
        policy,
        metadata,
        line: node.line,
    })
}

/// Reads a job's `policy:` mapping, reporting each problem on its line; the default policy
/// when there is any.
///
/// The mapping is converted to JSON and read by [`JobPolicy::from_json_all`], the one
/// reader of stored policies, so the file accepts exactly what nodes accept from the
/// database; each problem it finds is reported at the key it names.
fn read_policy(node: &Node, report: &mut dyn FnMut(usize, String)) -> JobPolicy {
    if node.as_map().is_none() {
        report(
            node.line,
            format!(
                "policy: expected a mapping such as {{overlap: skip, timeout: 600}}, found {}; known keys: {}",
                node.describe(),
                POLICY_KEYS.join(", ")
            ),
        );
        return JobPolicy::default();
    }
    let mut shape = false;
    check_metadata_keys(node, "policy", &mut |line, message| {
        shape = true;
        report(line, message);
    });
    if shape {
        return JobPolicy::default();
    }
    let Json::Object(object) = node.to_json() else {
        return JobPolicy::default();
    };
    match JobPolicy::from_json_all(&object) {
        Ok(policy) => policy,
        Err(problems) => {
            for problem in problems {
                let (line, message) = policy_problem(node, &problem);
                report(line, message);
            }
            JobPolicy::default()
        }
    }
}

/// Where in the `policy:` mapping `problem` is, and what to say about it there.
fn policy_problem(policy: &Node, problem: &PolicyError) -> (usize, String) {
    let path: Vec<&str> = problem.key().split('.').collect();
    // The entry the path names: (key node, value node) of its last step.
    let mut at = policy;
    let mut entry = None;
    for step in &path {
        match at
            .as_map()
            .and_then(|entries| entries.iter().find(|(k, _)| k.scalar_text() == Some(step)))
        {
            Some((k, v)) => {
                entry = Some((k, v));
                at = v;
            }
            None => {
                entry = None;
                break;
            }
        }
    }
    match problem {
        PolicyError::UnknownKey { .. } => {
            let (parent, known) = match path.as_slice() {
                ["retry", _] => ("policy.retry", RETRY_KEYS),
                _ => ("policy", POLICY_KEYS),
            };
            let word = path.last().copied().unwrap_or_default();
            (
                entry.map_or(policy.line, |(k, _)| k.line),
                format!(
                    "{parent}: unknown key {word:?}{}; known: {}",
                    did_you_mean(word, known),
                    known.join(", ")
                ),
            )
        }
        PolicyError::Invalid {
            key,
            found,
            expected,
        } => {
            let expected = expected.replace("an object", "a mapping");
            let (line, found) = match entry {
                Some((_, v)) => (v.line, v.describe()),
                None => (policy.line, found.clone()),
            };
            let hint = match (key.as_str(), entry.and_then(|(_, v)| v.scalar_text())) {
                ("overlap", Some(text)) => did_you_mean(text, Overlap::NAMES),
                ("catch_up", Some(text)) => did_you_mean(text, CatchUp::NAMES),
                ("on_node_loss", Some(text)) => did_you_mean(text, OnNodeLoss::NAMES),
                ("time_zone", Some(text)) => {
                    let zones: Vec<&str> = TZ_VARIANTS.iter().map(|tz| tz.name()).collect();
                    did_you_mean(text, &zones)
                }
                _ => String::new(),
            };
            (
                line,
                format!("policy.{key}: expected {expected}, found {found}{hint}"),
            )
        }
    }
}

/// Reads `command:`/`shell:` with `env`, `working_dir` and `timeout`.
fn read_command(
    key: &str,
    which: &str,
    fields: &BTreeMap<&str, &Node>,
    report: &mut dyn FnMut(usize, String),
) -> Option<CommandJob> {
    let n = fields[which];
    let template = |text: &str, what: &str, line: usize, report: &mut dyn FnMut(usize, String)| {
        match Template::parse(text) {
            Ok(t) => Some(t),
            Err(message) => {
                report(line, format!("{what}: {message}"));
                None
            }
        }
    };
    let program = if which == "shell" {
        match string(n) {
            Ok(text) if !text.trim().is_empty() => {
                template(text, "shell", n.line, report).map(Program::Shell)
            }
            Ok(_) => {
                report(n.line, "shell: the string is empty".into());
                None
            }
            Err(found) => {
                report(n.line, format!("shell: expected a string for `sh -c`, found {found}; use `command:` for a list"));
                None
            }
        }
    } else {
        match n.as_seq() {
            Some(items) if !items.is_empty() => {
                let mut args = Vec::new();
                for item in items {
                    match item.scalar_text() {
                        Some(text) => args.extend(template(text, "command", item.line, report)),
                        None => report(
                            item.line,
                            format!(
                                "command: each argument must be a string, found {}",
                                item.describe()
                            ),
                        ),
                    }
                }
                (args.len() == items.len()).then_some(Program::Argv(args))
            }
            _ => {
                report(n.line, format!("command: expected a non-empty list such as [\"echo\", \"hi\"], found {}; use `shell:` for a string", n.describe()));
                None
            }
        }
    };
    let mut env = Vec::new();
    if let Some(n) = fields.get("env").filter(|n| !n.is_null()) {
        match n.as_map() {
            Some(entries) => {
                let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
                for (k, v) in entries {
                    let Some(name) = k.scalar_text() else {
                        report(
                            k.line,
                            format!(
                                "env: a variable name must be a word, found {}",
                                k.describe()
                            ),
                        );
                        continue;
                    };
                    if name.is_empty() || name.contains(['=', '\0']) {
                        report(
                            k.line,
                            format!("env: {name:?} is not a valid variable name"),
                        );
                        continue;
                    }
                    if let Some(first) = seen.insert(name, k.line) {
                        report(
                            k.line,
                            format!("env: duplicate variable {name:?} (first at line {first})"),
                        );
                        continue;
                    }
                    match v.scalar_text() {
                        Some(text) => env.extend(
                            template(text, &format!("env {name}"), v.line, report)
                                .map(|t| (name.to_string(), t)),
                        ),
                        None => report(
                            v.line,
                            format!("env {name}: expected a string, found {}", v.describe()),
                        ),
                    }
                }
            }
            None => report(
                n.line,
                format!(
                    "env: expected a mapping of NAME: value, found {}",
                    n.describe()
                ),
            ),
        }
    }
    let working_dir = match fields.get("working_dir").filter(|n| !n.is_null()) {
        None => None,
        Some(n) => match string(n) {
            Ok(text) if !text.is_empty() => Some(PathBuf::from(text)),
            _ => {
                report(
                    n.line,
                    format!(
                        "working_dir: expected a directory path, found {}",
                        n.describe()
                    ),
                );
                None
            }
        },
    };
    let timeout = match fields.get("timeout").map(|n| (n, n.typed())) {
        None | Some((_, Some(Typed::Null))) => None,
        Some((_, Some(Typed::Int(secs)))) if secs > 0 && secs <= MAX_SECONDS => {
            Some(Duration::from_secs(secs.unsigned_abs()))
        }
        Some((n, Some(Typed::Int(secs)))) if secs > MAX_SECONDS => {
            report(
                n.line,
                format!(
                    "timeout: {secs} s is more than ten years ({MAX_SECONDS} s); leave timeout out for no limit"
                ),
            );
            None
        }
        Some((n, _)) => {
            report(
                n.line,
                format!(
                    "timeout: expected a positive whole number of seconds, found {}",
                    n.describe()
                ),
            );
            None
        }
    };
    Some(CommandJob {
        key: key.to_string(),
        program: program?,
        env,
        working_dir,
        timeout,
    })
}

/// Reports keys of `node`'s mappings, at any depth, that are written twice or are not
/// scalars: JSON objects have string keys, each once, so either would be lost silently.
fn check_metadata_keys(node: &Node, at: &str, report: &mut dyn FnMut(usize, String)) {
    match &node.value {
        Value::Map(entries) => {
            let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
            for (k, v) in entries {
                match k.scalar_text() {
                    Some(name) => {
                        if let Some(first) = seen.insert(name, k.line) {
                            report(
                                k.line,
                                format!("{at}: duplicate key {name:?} (first at line {first})"),
                            );
                        }
                        check_metadata_keys(v, &format!("{at}.{name}"), report);
                    }
                    None => report(
                        k.line,
                        format!("{at}: a key must be a string, found {}", k.describe()),
                    ),
                }
            }
        }
        Value::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                check_metadata_keys(item, &format!("{at}[{i}]"), report);
            }
        }
        Value::Scalar { .. } => {}
    }
}

/// The text of a string scalar, or a description of what was found instead.
fn string(node: &Node) -> Result<&str, String> {
    match (&node.value, node.typed()) {
        (Value::Scalar { text, .. }, Some(Typed::Str(_))) => Ok(text),
        _ => Err(node.describe()),
    }
}
