//! Generated configuration and scheduler files, from fixed seeds: valid files, valid files
//! broken in one known way, and byte-level mutations of valid files.
//!
//! * Every parse runs under `catch_unwind`: a panic fails the test with the input.
//! * A valid file (and a valid file changed in a way that must not matter: `${UNSET:-value}`
//!   wrapping, comments, aliases, quoting, a cron expression that lints clean, ...) parses
//!   to exactly what was generated: every setting, every job field by field.
//! * A file broken in a known way is rejected with a problem that names what was broken —
//!   the key, field or word — on the line that was broken (or, for a whole-file problem
//!   such as a missing `database_url`, anywhere).
//! * Every error of any kind, byte-level garbage included, has at least one problem, each
//!   with a non-blank message, the file's path, and a line (when it has one) inside the file.
//!
//! Counts: 60,000 configuration files and 60,000 scheduler files, a few seconds in a debug
//! build. The generator keeps its own small PRNG (SplitMix64) so the inputs are the same on
//! every machine and the crate needs no extra dev-dependency.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kaal::chrono::Utc;
use kaal::{
    cron, job_from_definition, stored_metadata, validate_cron_key, CatchUp, CommandJob, Config,
    ConfigFile, ConflictPolicy, Definition, DefinitionSource, FileErrors, FileJob, JobAction,
    JobPolicy, LockStrategy, MissingFilePolicy, OnNodeLoss, Overlap, Program, SchedulerFile,
    Template,
};
use serde_json::{json, Map, Value as Json};

const CONFIG_INPUTS: usize = 60_000;
const SCHEDULER_INPUTS: usize = 60_000;
const CONFIG_PATH: &str = "fuzz/config/kaal.yml";
const SCHEDULER_PATH: &str = "fuzz/config/kaal-scheduler.yml";
const NAMESPACE: &str = "kaal";
/// Ten years, the longest duration either file accepts.
const MAX_SECONDS: u64 = 315_360_000;

// ---------------------------------------------------------------------------------------
// Randomness and YAML rendering.

/// SplitMix64: tiny, fast, and the same sequence everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// `0..n`.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    fn percent(&mut self, p: usize) -> bool {
        self.below(100) < p
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Whether `s` may be written as a plain scalar and still read back as the same string.
fn plain_safe(s: &str) -> bool {
    let first_ok = s
        .chars()
        .next()
        .is_some_and(|c| c.is_alphanumeric() || c == '/' || c == '_');
    first_ok
        && s.chars()
            .all(|c| c.is_alphanumeric() || "_-./@+".contains(c))
        && !matches!(
            s,
            "true" | "True" | "TRUE" | "false" | "False" | "FALSE" | "null" | "Null" | "NULL"
        )
        && !s
            .bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
}

fn double_quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() || c == '\u{feff}' => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn single_quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `s` as a YAML string scalar, in a random style that reads back as exactly `s`.
fn yaml_str(rng: &mut Rng, s: &str) -> String {
    let printable = !s.chars().any(char::is_control);
    match rng.below(3) {
        0 if plain_safe(s) => s.to_string(),
        1 if printable => single_quoted(s),
        _ => double_quoted(s),
    }
}

// ---------------------------------------------------------------------------------------
// Outcomes and their checks.

/// What a generated input must do.
#[derive(Debug, Clone)]
enum Expect {
    /// Parse, to exactly what was generated.
    Valid,
    /// Be rejected with a problem on `line` (any line, or none, when `None`) whose message
    /// contains one of `any`.
    Problem {
        line: Option<usize>,
        any: Vec<String>,
    },
    /// Either parse to exactly what was generated, or be rejected with a problem on `line`
    /// naming one of `any` (where YAML allows something that the parser may refuse).
    ValidOrProblem { line: usize, any: Vec<String> },
    /// Anything but a panic (byte-level garbage); an error must still be well formed.
    Anything,
}

fn problem(line: usize, any: &[&str]) -> Expect {
    Expect::Problem {
        line: Some(line),
        any: any.iter().map(|s| s.to_string()).collect(),
    }
}

fn whole_file_problem(any: &[&str]) -> Expect {
    Expect::Problem {
        line: None,
        any: any.iter().map(|s| s.to_string()).collect(),
    }
}

#[derive(Default)]
struct Tally {
    inputs: usize,
    parsed: usize,
    rejected: usize,
    panics: usize,
    /// Errors that named nothing useful: no problem, a blank message, another path, a line
    /// outside the file, or no problem naming what the mutation broke.
    unnamed_errors: usize,
    /// Valid inputs rejected, broken inputs accepted, or a parse that differed from what
    /// was generated.
    wrong_results: usize,
    examples: Vec<String>,
}

impl Tally {
    fn note(&mut self, what: &str, input: &[u8], detail: String) {
        if self.examples.len() < 8 {
            self.examples.push(format!(
                "{what}: {detail}\n--- input ---\n{}\n-------------",
                String::from_utf8_lossy(input)
            ));
        }
    }

    fn assert_clean(&self, name: &str) {
        assert!(
            self.panics == 0 && self.unnamed_errors == 0 && self.wrong_results == 0,
            "{name}: {} panics, {} unnamed errors, {} wrong results; first ones:\n{}",
            self.panics,
            self.unnamed_errors,
            self.wrong_results,
            self.examples.join("\n\n")
        );
    }
}

/// Checks what every error must be; `None` when it is well formed.
fn malformed_error(err: &FileErrors, path: &str, input: &[u8]) -> Option<String> {
    if err.problems.is_empty() {
        return Some("an error with no problem".into());
    }
    let lines = input.iter().filter(|b| **b == b'\n').count() + 1;
    for p in &err.problems {
        if p.path != Path::new(path) {
            return Some(format!("problem names {:?}, not the file", p.path));
        }
        if p.message.trim().is_empty() {
            return Some("a blank message".into());
        }
        if !p.to_string().starts_with(path) {
            return Some(format!("{p} does not start with the path"));
        }
        if let Some(line) = p.line {
            if line == 0 || line > lines + 1 {
                return Some(format!("line {line} is outside the {lines}-line file: {p}"));
            }
        }
    }
    None
}

/// Runs `parse` on `input` under `catch_unwind` and checks the outcome against `expect`;
/// `check_valid` compares a successful parse with what was generated.
fn run<T>(
    tally: &mut Tally,
    path: &str,
    input: &[u8],
    expect: &Expect,
    parse: impl FnOnce(&[u8]) -> Result<T, FileErrors>,
    check_valid: impl FnOnce(&T) -> Result<(), String>,
) {
    tally.inputs += 1;
    let outcome = match catch_unwind(AssertUnwindSafe(|| parse(input))) {
        Ok(outcome) => outcome,
        Err(panic) => {
            tally.panics += 1;
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            tally.note("PANIC", input, message);
            return;
        }
    };
    match (outcome, expect) {
        (Ok(value), Expect::Valid | Expect::ValidOrProblem { .. }) => {
            tally.parsed += 1;
            if let Err(diff) = check_valid(&value) {
                tally.wrong_results += 1;
                tally.note("parsed to something else", input, diff);
            }
        }
        (Ok(_), Expect::Anything) => tally.parsed += 1,
        (Ok(_), Expect::Problem { line, any }) => {
            tally.parsed += 1;
            tally.wrong_results += 1;
            tally.note(
                "accepted a broken file",
                input,
                format!("expected a problem on line {line:?} naming one of {any:?}"),
            );
        }
        (Err(err), expect) => {
            tally.rejected += 1;
            if let Some(why) = malformed_error(&err, path, input) {
                tally.unnamed_errors += 1;
                tally.note("malformed error", input, format!("{why}; error: {err}"));
                return;
            }
            match expect {
                Expect::Valid => {
                    tally.wrong_results += 1;
                    tally.note("rejected a valid file", input, err.to_string());
                }
                Expect::Anything => {}
                Expect::ValidOrProblem { line, any } => {
                    let expect = Expect::Problem {
                        line: Some(*line),
                        any: any.clone(),
                    };
                    check_named(tally, &err, &expect, input);
                }
                Expect::Problem { .. } => check_named(tally, &err, expect, input),
            }
        }
    }
}

/// Counts `err` as unnamed unless one of its problems is on the expected line and names
/// one of the expected words.
fn check_named(tally: &mut Tally, err: &FileErrors, expect: &Expect, input: &[u8]) {
    let Expect::Problem { line, any } = expect else {
        return;
    };
    let named = err.problems.iter().any(|p| {
        (line.is_none() || p.line == *line)
            && any.iter().any(|word| p.message.contains(word.as_str()))
    });
    if !named {
        tally.unnamed_errors += 1;
        tally.note(
            "error does not name the problem",
            input,
            format!("expected a problem on line {line:?} naming one of {any:?}; got: {err}"),
        );
    }
}

/// Byte-level damage: truncation, insertion, deletion, bit flips, line shuffles.
fn damage(rng: &mut Rng, mut bytes: Vec<u8>) -> Vec<u8> {
    const TOKENS: &[&[u8]] = &[
        b":",
        b": ",
        b"- ",
        b"[",
        b"]",
        b"{",
        b"}",
        b",",
        b"&a ",
        b"*a",
        b"!!str ",
        b"\t",
        b"\n",
        b"\r",
        b"'",
        b"\"",
        b"#",
        b"${",
        b"{{",
        b"}}",
        b"\\",
        b"---\n",
        b"...\n",
        b"? ",
        b"|",
        b">",
        b"%",
        b"@",
        b"`",
        b"\0",
        b"\x07",
        b"\x1b",
        b"\xff",
        b"\xc3",
        b"\xe2\x82",
        b"\xef\xbb\xbf",
        b"\xed\xa0\x80",
        b"~",
        b"  ",
        b"99999999999999999999999",
        b"-1",
    ];
    for _ in 0..rng.range(1, 3) {
        let len = bytes.len();
        match rng.below(7) {
            0 => bytes.truncate(rng.below(len + 1)),
            1 => {
                let at = rng.below(len + 1);
                let token = rng.pick(TOKENS);
                bytes.splice(at..at, token.iter().copied());
            }
            2 => {
                let at = rng.below(len + 1);
                bytes.insert(at, rng.next() as u8);
            }
            3 if len > 0 => {
                let from = rng.below(len);
                let to = (from + rng.range(1, 12) as usize).min(len);
                bytes.drain(from..to);
            }
            4 if len > 0 => {
                let at = rng.below(len);
                bytes[at] ^= 1 << rng.below(8);
            }
            5 => {
                // Duplicate or drop a whole line.
                let mut lines: Vec<Vec<u8>> =
                    bytes.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
                let i = rng.below(lines.len());
                if rng.percent(50) {
                    let line = lines[i].clone();
                    lines.insert(i, line);
                } else {
                    lines.remove(i);
                }
                bytes = lines.join(&b'\n');
            }
            _ => {
                // Swap two lines.
                let mut lines: Vec<Vec<u8>> =
                    bytes.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
                let (i, j) = (rng.below(lines.len()), rng.below(lines.len()));
                lines.swap(i, j);
                bytes = lines.join(&b'\n');
            }
        }
    }
    bytes
}

/// Nested flow sequences `depth` deep.
fn nested_lists(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

/// `levels` anchored lists, each holding ten aliases of the one before ("billion laughs"),
/// in one flow sequence.
fn laughs(levels: usize) -> String {
    let mut parts = vec![format!("&l0 [{}]", ["x"; 10].join(", "))];
    for i in 1..levels {
        let alias = format!("*l{}", i - 1);
        parts.push(format!("&l{i} [{}]", vec![alias; 10].join(", ")));
    }
    format!("[{}]", parts.join(", "))
}

/// The JSON that [`laughs`] stands for (only for a few levels: it has 10^levels leaves).
fn laughs_json(levels: usize) -> Json {
    let mut value = json!(vec!["x"; 10]);
    let mut all = vec![value.clone()];
    for _ in 1..levels {
        value = Json::Array(vec![value; 10]);
        all.push(value.clone());
    }
    Json::Array(all)
}

// ---------------------------------------------------------------------------------------
// Configuration files.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Text,
    Seconds,
    Bool,
}

const SETTINGS: &[(&str, Kind)] = &[
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
    ("node_timeout", Kind::Seconds),
    ("max_clock_offset", Kind::Seconds),
    ("scheduler_missing_file_policy", Kind::Text),
    ("node_id", Kind::Text),
];

fn kind_of(key: &str) -> Kind {
    SETTINGS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, kind)| *kind)
        .unwrap()
}

/// Variables the configuration's `${VAR}` see.
fn config_lookup(name: &str) -> Option<String> {
    match name {
        "KAAL_FUZZ_DB" => Some("sqlite://from-env.db".into()),
        "KAAL_FUZZ_EMPTY" => Some(String::new()),
        "KAAL_FUZZ_TWELVE" => Some("12".into()),
        _ => None,
    }
}

#[derive(Clone, Debug)]
enum Item {
    /// `name:` with an optional ` &anchor` / ` *alias` after it.
    Section { name: String, suffix: String },
    /// `  key: value` in the section above it. `logical` is what the value means (for
    /// valid values), `None` when it is broken.
    Setting {
        key: String,
        raw_key: String,
        value: String,
        logical: Option<String>,
    },
    /// A line written as it is (comments, blank lines, damage).
    Raw(String),
}

#[derive(Clone, Debug)]
struct ConfigDoc {
    items: Vec<Item>,
    environment: String,
    /// A setting written `key:<tab>value` instead of `key: value`.
    tab_after_colon: Option<usize>,
}

impl ConfigDoc {
    fn render(&self) -> (String, Vec<usize>) {
        let mut text = String::new();
        let mut lines = Vec::new();
        let mut line = 1;
        for (i, item) in self.items.iter().enumerate() {
            lines.push(line);
            let sep = if self.tab_after_colon == Some(i) {
                "\t"
            } else {
                " "
            };
            let rendered = match item {
                Item::Section { name, suffix } => format!("{name}:{suffix}"),
                Item::Setting { raw_key, value, .. } if value.is_empty() => format!("  {raw_key}:"),
                Item::Setting { raw_key, value, .. } => format!("  {raw_key}:{sep}{value}"),
                Item::Raw(raw) => raw.clone(),
            };
            line += rendered.matches('\n').count() + 1;
            text.push_str(&rendered);
            text.push('\n');
        }
        (text, lines)
    }

    /// The section each item is in (`None` before the first).
    fn section_of(&self, index: usize) -> Option<&str> {
        self.items[..=index]
            .iter()
            .rev()
            .find_map(|item| match item {
                Item::Section { name, .. } => Some(name.as_str()),
                _ => None,
            })
    }

    /// The item holding each setting in force: `defaults:` then the environment's section,
    /// later ones winning, as the reader merges them.
    fn effective(&self) -> BTreeMap<String, usize> {
        let mut map = BTreeMap::new();
        for pass in ["defaults", self.environment.as_str()] {
            for (i, item) in self.items.iter().enumerate() {
                if let Item::Setting { key, .. } = item {
                    if self.section_of(i) == Some(pass) {
                        map.insert(key.clone(), i);
                    }
                }
            }
        }
        map
    }

    fn section_index(&self, name: &str) -> Option<usize> {
        self.items
            .iter()
            .position(|item| matches!(item, Item::Section { name: n, .. } if n == name))
    }

    /// Inserts a setting line at the end of section `name`; returns its index.
    fn append_to(&mut self, name: &str, item: Item) -> usize {
        let start = self.section_index(name).unwrap();
        let mut at = start + 1;
        while at < self.items.len() && !matches!(self.items[at], Item::Section { .. }) {
            at += 1;
        }
        self.items.insert(at, item);
        at
    }
}

/// A valid value for `key`, rendered in a random style that means exactly `logical`.
fn render_setting(rng: &mut Rng, key: &str, logical: &str) -> String {
    let comment = if rng.percent(15) { "  # note" } else { "" };
    let safe_default =
        !logical.contains(['}', '"', '\\']) && !logical.chars().any(char::is_control);
    let value = match (kind_of(key), rng.below(6)) {
        (_, 0) if safe_default => format!("\"${{KAAL_FUZZ_UNSET:-{logical}}}\""),
        (_, 1) if safe_default => format!("\"${{KAAL_FUZZ_EMPTY:-{logical}}}\""),
        (Kind::Seconds, 2) if logical == "12" => "${KAAL_FUZZ_TWELVE}".into(),
        (Kind::Seconds, 3) => format!("${{KAAL_FUZZ_UNSET:-{logical}}}"),
        (Kind::Seconds, 4) => format!("+{logical}"),
        (Kind::Seconds, _) => logical.to_string(),
        (Kind::Bool, 2) => logical.to_uppercase(),
        (Kind::Bool, _) => logical.to_string(),
        (Kind::Text, 2) if logical == "sqlite://from-env.db" => "${KAAL_FUZZ_DB}".into(),
        (Kind::Text, 3) if logical.contains('$') => logical.replace("${", "$${"),
        (Kind::Text, _) if logical.contains("${") => double_quoted(&logical.replace("${", "$${")),
        (Kind::Text, _) => yaml_str(rng, logical),
    };
    format!("{value}{comment}")
}

fn setting(rng: &mut Rng, key: &str, logical: &str) -> Item {
    Item::Setting {
        key: key.into(),
        raw_key: key.into(),
        value: render_setting(rng, key, logical),
        logical: Some(logical.into()),
    }
}

const DATABASES: &[&str] = &[
    "memory:",
    "sqlite://db/kaal.db",
    "sqlite://from-env.db",
    "db/kaal.db",
    "postgres://kaal:secret@127.0.0.1:5432/kaal",
    "postgresql://localhost/kaal?sslmode=disable",
    "mysql://root@127.0.0.1:3306/kaal",
    "mariadb://kaal@db/kaal",
];
const ZONES: &[&str] = &[
    "UTC",
    "Europe/London",
    "America/New_York",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
];
const NAMESPACES: &[&str] = &["kaal", "app-1", "billing:eu", "x_y", "ü-prod", "n"];

fn advisory_capable(url: &str) -> bool {
    ["postgres", "mysql", "mariadb"]
        .iter()
        .any(|s| url.starts_with(s))
}

/// A valid configuration file.
fn gen_config(rng: &mut Rng) -> ConfigDoc {
    let mut items = Vec::new();
    if rng.percent(30) {
        items.push(Item::Raw("# kaal configuration (generated)".into()));
    }
    let db = *rng.pick(DATABASES);
    let advisory = advisory_capable(db) && rng.percent(50);
    let anchored = rng.percent(8);
    items.push(Item::Section {
        name: "defaults".into(),
        suffix: if anchored {
            " &base".into()
        } else {
            String::new()
        },
    });
    let mut defaults: Vec<(&str, String)> = vec![("database_url", db.into())];
    if rng.percent(50) {
        let tick = rng.range(1, 30);
        let lookback = rng.range(tick, tick + 300);
        let lease = rng.range(lookback + tick, lookback + tick + 100);
        defaults.push(("tick_interval", tick.to_string()));
        defaults.push(("window_lookback", lookback.to_string()));
        defaults.push(("lease_ttl", lease.to_string()));
    }
    if rng.percent(30) {
        defaults.push(("window_lookahead", rng.range(0, 60).to_string()));
    }
    if rng.percent(30) {
        defaults.push(("recovery_window", rng.range(0, 100_000).to_string()));
    }
    if rng.percent(20) {
        defaults.push(("recovery_startup_jitter", rng.range(0, 60).to_string()));
    }
    if rng.percent(20) {
        defaults.push(("node_timeout", rng.range(3, 300).to_string()));
    }
    if rng.percent(20) {
        defaults.push(("max_clock_offset", rng.range(0, 60).to_string()));
    }
    match rng.below(4) {
        0 => defaults.push(("enable_log_dispatch_registry", "true".into())),
        1 => {
            defaults.push(("enable_log_dispatch_registry", "false".into()));
            defaults.push(("enable_dispatch_recovery", "false".into()));
        }
        2 => defaults.push((
            "enable_dispatch_recovery",
            rng.pick(&["true", "false"]).to_string(),
        )),
        _ => {}
    }
    if advisory {
        defaults.push(("lock_strategy", "advisory".into()));
    } else if rng.percent(30) {
        defaults.push(("lock_strategy", "lease".into()));
    }
    let mut optional = |rng: &mut Rng, key: &'static str, values: &[&str], p: usize| {
        if rng.percent(p) {
            defaults.push((key, rng.pick(values).to_string()));
        }
    };
    optional(rng, "namespace", NAMESPACES, 40);
    optional(rng, "time_zone", ZONES, 50);
    optional(rng, "node_id", &["web-1", "n", "host.example-42"], 30);
    optional(
        rng,
        "scheduler_config_path",
        &[
            "jobs.yml",
            "/etc/kaal/jobs.yml",
            "sub dir/s.yml",
            "cost$5.yml",
            "${literal}.yml",
        ],
        30,
    );
    optional(
        rng,
        "scheduler_conflict_policy",
        &["error", "code_wins", "file_wins"],
        30,
    );
    optional(rng, "scheduler_missing_file_policy", &["warn", "error"], 30);
    // Shuffle the order of the settings.
    for i in (1..defaults.len()).rev() {
        let j = rng.below(i + 1);
        defaults.swap(i, j);
    }
    for (key, logical) in &defaults {
        items.push(setting(rng, key, logical));
        if rng.percent(5) {
            items.push(Item::Raw(
                rng.pick(&["", "  # a comment", "# another", "   "])
                    .to_string(),
            ));
        }
    }
    let environment;
    if anchored {
        items.push(Item::Section {
            name: "production".into(),
            suffix: " *base".into(),
        });
        environment = "production".to_string();
    } else if rng.percent(60) {
        items.push(Item::Section {
            name: "production".into(),
            suffix: String::new(),
        });
        // One time in five the environment's section stays empty (null): fine too.
        let empty = rng.percent(20);
        if !empty && rng.percent(50) {
            let url = if advisory {
                *rng.pick(&DATABASES[4..])
            } else {
                *rng.pick(DATABASES)
            };
            items.push(setting(rng, "database_url", url));
        }
        for (key, values) in [
            ("namespace", NAMESPACES),
            ("time_zone", ZONES),
            ("node_id", &["prod-1", "p"][..]),
        ] {
            if !empty && rng.percent(40) {
                let value = *rng.pick(values);
                items.push(setting(rng, key, value));
            }
        }
        environment = if rng.percent(70) {
            "production".to_string()
        } else {
            "development".to_string()
        };
    } else {
        environment = rng.pick(&["development", "production", "test"]).to_string();
    }
    if rng.percent(15) {
        // A section for another environment: never merged, still checked for unknown keys.
        items.push(Item::Section {
            name: "staging".into(),
            suffix: String::new(),
        });
        items.push(setting(rng, "namespace", "staging"));
    }
    ConfigDoc {
        items,
        environment,
        tab_after_colon: None,
    }
}

/// What the file means: each setting's logical value in force.
fn config_expected(doc: &ConfigDoc) -> BTreeMap<String, String> {
    doc.effective()
        .into_iter()
        .map(|(key, i)| match &doc.items[i] {
            Item::Setting {
                logical: Some(l), ..
            } => (key, l.clone()),
            other => panic!("effective setting {key} has no logical value: {other:?}"),
        })
        .collect()
}

fn config_actual(file: &ConfigFile, key: &str) -> String {
    let c = &file.config;
    match key {
        "database_url" => file.database_url.clone(),
        "lock_strategy" => format!("{:?}", file.lock_strategy),
        "tick_interval" => c.tick_interval.as_secs().to_string(),
        "window_lookback" => c.window_lookback.as_secs().to_string(),
        "window_lookahead" => file.window_lookahead.as_secs().to_string(),
        "lease_ttl" => c.lease_ttl.as_secs().to_string(),
        "recovery_window" => c.recovery_window.as_secs().to_string(),
        "recovery_startup_jitter" => c.recovery_startup_jitter.as_secs().to_string(),
        "node_timeout" => c.node_timeout.as_secs().to_string(),
        "max_clock_offset" => c.max_clock_offset.as_secs().to_string(),
        "namespace" => c.namespace.clone(),
        "time_zone" => c.time_zone.clone(),
        "node_id" => c.node_id.clone(),
        "enable_log_dispatch_registry" => c.enable_log_dispatch_registry.to_string(),
        "enable_dispatch_recovery" => c.enable_dispatch_recovery.to_string(),
        "scheduler_config_path" => file.scheduler_config_path.display().to_string(),
        "scheduler_conflict_policy" => format!("{:?}", c.scheduler_conflict_policy),
        "scheduler_missing_file_policy" => format!("{:?}", file.scheduler_missing_file_policy),
        other => panic!("no such setting {other}"),
    }
}

/// `logical` as [`config_actual`] shows it (or the default, for `None`).
fn config_shown(key: &str, logical: Option<&str>) -> String {
    let defaults = Config::default();
    match (key, logical) {
        ("lock_strategy", Some(l)) => format!("{:?}", l.parse::<LockStrategy>().unwrap()),
        ("lock_strategy", None) => format!("{:?}", LockStrategy::Lease),
        ("scheduler_conflict_policy", Some(l)) => {
            format!("{:?}", l.parse::<ConflictPolicy>().unwrap())
        }
        ("scheduler_missing_file_policy", Some(l)) => {
            format!("{:?}", l.parse::<MissingFilePolicy>().unwrap())
        }
        ("scheduler_config_path", Some(l)) if l.starts_with('/') => l.to_string(),
        ("scheduler_config_path", Some(l)) => Path::new(CONFIG_PATH)
            .parent()
            .unwrap()
            .join(l)
            .display()
            .to_string(),
        ("scheduler_config_path", None) => "fuzz/config/kaal-scheduler.yml".into(),
        (_, Some(l)) => l.to_string(),
        (_, None) => {
            let file = ConfigFile {
                path: PathBuf::new(),
                environment: String::new(),
                database_url: String::new(),
                lock_strategy: LockStrategy::Lease,
                config: defaults,
                scheduler_config_path: PathBuf::new(),
                scheduler_missing_file_policy: MissingFilePolicy::Warn,
                window_lookahead: std::time::Duration::ZERO,
                sections: Vec::new(),
            };
            config_actual(&file, key)
        }
    }
}

fn check_config(file: &ConfigFile, doc: &ConfigDoc) -> Result<(), String> {
    let expected = config_expected(doc);
    for (key, _) in SETTINGS {
        let want = config_shown(key, expected.get(*key).map(String::as_str));
        let got = config_actual(file, key);
        if want != got {
            return Err(format!("{key}: expected {want:?}, parsed {got:?}"));
        }
    }
    if file.environment != doc.environment || file.path != Path::new(CONFIG_PATH) {
        return Err(format!(
            "environment/path: {:?} {:?}",
            file.environment, file.path
        ));
    }
    Ok(())
}

/// Wrong values for a setting of `kind`; each must be reported naming the key.
fn wrong_value(rng: &mut Rng, key: &str) -> String {
    let any = ["[a, b]", "{a: 1}", "[]", "{}", "[[[x]]]", "&x [1]"];
    let by_kind: &[&str] = match kind_of(key) {
        Kind::Seconds => &[
            "abc",
            "true",
            "-5",
            "1.5",
            "'5'",
            "\"10\"",
            "99999999999999999999",
            "9223372036854775807",
            "-9223372036854775809",
            "315360001",
            "0x10",
            "5s",
            "1e3",
            ".inf",
            "-0.0",
            "${KAAL_FUZZ_UNSET:-abc}",
            "\"${KAAL_FUZZ_EMPTY:-1.5}\"",
            "${KAAL_FUZZ_DB}",
        ],
        Kind::Bool => &[
            "yes",
            "no",
            "1",
            "0",
            "on",
            "off",
            "'true'",
            "\"false\"",
            "tru",
            "1e400",
            "${KAAL_FUZZ_TWELVE}",
        ],
        Kind::Text => match key {
            "lock_strategy" => &[
                "sometimes",
                "Lease",
                "advisory_lock",
                "''",
                "\"lease \"",
                "5",
            ],
            "time_zone" => &[
                "Mars/Base",
                "Europe/Londn",
                "''",
                "\"America/New York\"",
                "UTC+1",
                "\"Europe/London\\u0000\"",
                "true",
            ],
            "scheduler_conflict_policy" => &["errors", "code-wins", "''", "FILE_WINS"],
            "scheduler_missing_file_policy" => &["warning", "ignore", "''", "1"],
            "namespace" => &["''", "'  '", "\"a b\"", "\"x:dispatch:y\"", "\"a\\tb\""],
            "node_id" => &["''", "' '"],
            _ => &[],
        },
    };
    if by_kind.is_empty() || rng.percent(25) {
        rng.pick(&any).to_string()
    } else {
        rng.pick(by_kind).to_string()
    }
}

/// Breaks or changes `doc` in one known way; returns what parsing it must do.
fn mutate_config(rng: &mut Rng, doc: &mut ConfigDoc) -> Expect {
    let effective = doc.effective();
    let effective_items: Vec<usize> = effective.values().copied().collect();
    let all_settings: Vec<usize> = (0..doc.items.len())
        .filter(|i| matches!(doc.items[*i], Item::Setting { .. }))
        .collect();
    let line_of = |doc: &ConfigDoc, i: usize| doc.render().1[i];
    let set_value = |doc: &mut ConfigDoc, i: usize, new: String| {
        if let Item::Setting { value, logical, .. } = &mut doc.items[i] {
            *value = new;
            *logical = None;
        }
    };
    let key_of = |doc: &ConfigDoc, i: usize| match &doc.items[i] {
        Item::Setting { key, .. } => key.clone(),
        _ => unreachable!(),
    };
    match rng.below(27) {
        // A wrong type or value for a setting in force.
        0..=3 => {
            let i = *rng.pick(&effective_items);
            let key = key_of(doc, i);
            let bad = wrong_value(rng, &key);
            set_value(doc, i, bad);
            problem(line_of(doc, i), &[&key])
        }
        // An unknown key, in any section.
        4 | 5 => {
            let sections: Vec<String> = doc
                .items
                .iter()
                .filter_map(|item| match item {
                    Item::Section { name, suffix } if !suffix.starts_with(" *") => {
                        Some(name.clone())
                    }
                    _ => None,
                })
                .collect();
            let section = rng.pick(&sections).clone();
            let long = "k".repeat(rng.range(256, 600) as usize);
            let word = match rng.below(10) {
                0 => long,
                1 => String::new(),
                2 => " ".into(),
                3 => "zeitzone_ü".into(),
                4 => "a: b".into(),
                5 => "jobs".into(),
                6 => "Namespace".into(),
                7 => "lease-ttl".into(),
                _ => {
                    // A typo of a real key.
                    let (real, _) = *rng.pick(SETTINGS);
                    let mut chars: Vec<char> = real.chars().collect();
                    let at = rng.below(chars.len());
                    chars.insert(at, 'x');
                    chars.into_iter().collect()
                }
            };
            let raw_key = yaml_str(rng, &word);
            let at = doc.append_to(
                &section,
                Item::Setting {
                    key: word.clone(),
                    raw_key,
                    value: "5".into(),
                    logical: None,
                },
            );
            problem(line_of(doc, at), &[&format!("unknown key {word:?}")])
        }
        // A key that is not a word: null, a list, a mapping.
        6 => {
            let raw = *rng.pick(&[
                "  ? [a, b]\n  : 1",
                "  ? {a: 1}\n  : 1",
                "  ~: 1",
                "  [x]: 1",
                "  ? \n  : 1",
            ]);
            let at = doc.append_to("defaults", Item::Raw(raw.to_string()));
            // An empty key is null where the `:` is, a line below the `?`.
            let below = usize::from(raw.starts_with("  ? \n"));
            problem(line_of(doc, at) + below, &["a key must be a word"])
        }
        // database_url missing or blank.
        7 => {
            if rng.percent(50) {
                doc.items.retain(
                    |item| !matches!(item, Item::Setting { key, .. } if key == "database_url"),
                );
            } else {
                let i = effective["database_url"];
                let blank = rng
                    .pick(&["''", "\"  \"", "${KAAL_FUZZ_EMPTY}"])
                    .to_string();
                set_value(doc, i, blank);
            }
            whole_file_problem(&["database_url"])
        }
        // Durations that break the rules between them.
        8 => {
            let (key, value) = *rng.pick(&[
                ("tick_interval", "0"),
                ("lease_ttl", "1"),
                ("lease_ttl", "0"),
                ("window_lookback", "0"),
            ]);
            match effective.get(key) {
                Some(&i) => {
                    set_value(doc, i, value.into());
                    problem(line_of(doc, i), &[key])
                }
                None => {
                    let at = doc.append_to(
                        "defaults",
                        Item::Setting {
                            key: key.into(),
                            raw_key: key.into(),
                            value: value.into(),
                            logical: None,
                        },
                    );
                    // Overridden by the environment's section? Not for these keys.
                    problem(line_of(doc, at), &[key])
                }
            }
        }
        // Advisory locks on SQLite or memory.
        9 => {
            let db = effective["database_url"];
            let url = rng.pick(&["memory:", "sqlite://x.db", "x.db"]).to_string();
            if let Item::Setting { value, logical, .. } = &mut doc.items[db] {
                *value = double_quoted(&url);
                *logical = Some(url);
            }
            let at = match doc.effective().get("lock_strategy") {
                Some(&i) => {
                    set_value(doc, i, "advisory".into());
                    i
                }
                None => doc.append_to(
                    doc.section_of(db).unwrap().to_string().as_str(),
                    Item::Setting {
                        key: "lock_strategy".into(),
                        raw_key: "lock_strategy".into(),
                        value: "advisory".into(),
                        logical: None,
                    },
                ),
            };
            problem(line_of(doc, at), &["lock_strategy"])
        }
        // `${...}` that cannot expand.
        10 | 11 => {
            let i = *rng.pick(&effective_items);
            let key = key_of(doc, i);
            let (bad, word) = *rng.pick(&[
                ("${KAAL_FUZZ_UNSET_VAR}", "KAAL_FUZZ_UNSET_VAR"),
                ("\"x ${KAAL_FUZZ_UNSET_VAR} y\"", "KAAL_FUZZ_UNSET_VAR"),
                ("${1BAD}", "not a variable name"),
                ("${}", "not a variable name"),
                ("${A-B:-x}", "not a variable name"),
                ("\"${UNCLOSED\"", "unclosed"),
                ("${KAAL_FUZZ_EMPTY:-${KAAL_FUZZ_UNSET}", "nested"),
                ("\"${KAAL_FUZZ_UNSET:-${KAAL_FUZZ_DB}}\"", "nested"),
            ]);
            set_value(doc, i, bad.into());
            problem(line_of(doc, i), &[&format!("{key}:"), word])
        }
        // `${UNSET:-value}` around a valid value changes nothing.
        12 | 13 => {
            let i = *rng.pick(&all_settings);
            if let Item::Setting {
                logical: Some(l),
                value,
                ..
            } = &mut doc.items[i]
            {
                if !l.contains(['}', '"', '\\', '$']) {
                    *value = format!("\"${{KAAL_FUZZ_UNSET:-{l}}}\"");
                }
            }
            Expect::Valid
        }
        // A key written twice in one section.
        14 => {
            let i = *rng.pick(&all_settings);
            let copy = doc.items[i].clone();
            let key = key_of(doc, i);
            // Later in the same section.
            let section = doc.section_of(i).unwrap().to_string();
            let at = doc.append_to(&section, copy);
            problem(line_of(doc, at), &["duplicate key", &key])
        }
        // A section written twice.
        15 => {
            let name = if doc.section_index("production").is_some() && rng.percent(50) {
                "production"
            } else {
                "defaults"
            };
            doc.items.push(Item::Section {
                name: name.into(),
                suffix: String::new(),
            });
            doc.items.push(Item::Setting {
                key: "namespace".into(),
                raw_key: "namespace".into(),
                value: "again".into(),
                logical: None,
            });
            let at = doc.items.len() - 2;
            problem(line_of(doc, at), &["duplicate section"])
        }
        // Too long or blank values.
        16 => {
            let (key, value) = match rng.below(4) {
                0 => ("namespace", "n".repeat(rng.range(65, 300) as usize)),
                1 => ("node_id", "é".repeat(rng.range(128, 400) as usize)),
                2 => ("namespace", "".into()),
                _ => ("node_id", "   ".into()),
            };
            let rendered = double_quoted(&value);
            let at = match effective.get(key) {
                Some(&i) => {
                    set_value(doc, i, rendered);
                    i
                }
                None => doc.append_to(
                    "defaults",
                    Item::Setting {
                        key: key.into(),
                        raw_key: key.into(),
                        value: rendered,
                        logical: None,
                    },
                ),
            };
            if doc.effective()[key] != at {
                // The environment's value wins; the broken one is not in force.
                return Expect::Anything;
            }
            problem(line_of(doc, at), &[key])
        }
        // Deep nesting and exponential aliases as a value.
        17 => {
            let i = *rng.pick(&effective_items);
            let key = key_of(doc, i);
            let value = if rng.percent(70) {
                nested_lists(*rng.pick(&[1, 50, 97, 98, 99, 150, 300, 5000]))
            } else {
                laughs(rng.range(1, 9) as usize)
            };
            set_value(doc, i, value);
            problem(line_of(doc, i), &[&format!("{key}:"), "nested", "aliases"])
        }
        // A tab in the indentation: an error on that line, which says so.
        18 => {
            let i = *rng.pick(&all_settings);
            let line = line_of(doc, i);
            let (text, _) = doc.render();
            let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
            lines[line - 1] = format!("\t{}", lines[line - 1].trim_start());
            doc.items = lines.into_iter().map(Item::Raw).collect();
            problem(line, &["tab"])
        }
        // A tab after the colon: YAML allows it; the parser takes it before a quoted value,
        // and rejects it, saying so, before a plain one.
        26 => {
            let i = *rng.pick(&all_settings);
            doc.tab_after_colon = Some(i);
            match &doc.items[i] {
                Item::Setting { value, .. } if value.starts_with(['"', '\'']) => Expect::Valid,
                _ => Expect::ValidOrProblem {
                    line: line_of(doc, i),
                    any: vec!["tab".into()],
                },
            }
        }
        // Control characters.
        19 => {
            let c = *rng.pick(&[
                '\0', '\u{7}', '\u{1b}', '\u{7f}', '\u{85}', '\r', '\u{feff}',
            ]);
            let key = if rng.percent(50) {
                "namespace"
            } else {
                "node_id"
            };
            let value = format!("a{c}b");
            let quoted = double_quoted(&value);
            let at = match effective.get(key) {
                Some(&j) => {
                    set_value(doc, j, quoted);
                    j
                }
                None => doc.append_to(
                    "defaults",
                    Item::Setting {
                        key: key.into(),
                        raw_key: key.into(),
                        value: quoted,
                        logical: Some(value.clone()),
                    },
                ),
            };
            if doc.effective()[key] != at {
                return Expect::Anything;
            }
            if key == "namespace" && (c.is_control() || c.is_whitespace()) {
                problem(line_of(doc, at), &["namespace"])
            } else if key == "node_id" && c.is_control() {
                problem(line_of(doc, at), &["node_id"])
            } else {
                // node_id takes any non-blank text without control characters (kaal-core's
                // rule); a namespace any character that is neither whitespace nor a control
                // character.
                if let Item::Setting { logical, .. } = &mut doc.items[at] {
                    *logical = Some(value);
                }
                Expect::Valid
            }
        }
        // Raw control characters in the text.
        20 => {
            let i = *rng.pick(&all_settings);
            let c = *rng.pick(&['\0', '\u{1}', '\u{7}', '\u{1b}', '\u{7f}', '\u{c}', '\u{b}']);
            if let Item::Setting { value, logical, .. } = &mut doc.items[i] {
                let at = rng.below(value.len() + 1);
                if value.is_char_boundary(at) {
                    value.insert(at, c);
                    *logical = None;
                }
            }
            Expect::Anything
        }
        // The file is empty, blank, only comments, or not a mapping of sections.
        21 => {
            let text = *rng.pick(&[
                "",
                "\n\n",
                "   \n",
                "# only a comment\n",
                "# one\n# two\n",
                "---\n",
                "---\n...\n",
                "~\n",
                "null\n",
            ]);
            doc.items = vec![Item::Raw(text.trim_end_matches('\n').to_string())];
            whole_file_problem(&["the file is empty"])
        }
        22 => {
            let text = *rng.pick(&["- a\n- b", "just text", "42", "[1, 2]", "\"quoted\""]);
            doc.items = vec![Item::Raw(text.into())];
            problem(1, &["expected a mapping of sections"])
        }
        // A setting at the top level; a section that is not a mapping; a second document.
        23 => {
            let (key, _) = *rng.pick(SETTINGS);
            doc.items.push(Item::Raw(format!("{key}: 5")));
            let at = doc.items.len() - 1;
            problem(line_of(doc, at), &["at the top level"])
        }
        24 => {
            let body = *rng.pick(&["[a, b]", "5", "text", "\"x\""]);
            doc.items.push(Item::Raw(format!("staging: {body}")));
            let at = doc.items.len() - 1;
            if rng.percent(50) {
                problem(line_of(doc, at), &["section `staging:` must be a mapping"])
            } else {
                doc.items.push(Item::Raw("---\nother: 1".into()));
                let at = doc.items.len() - 1;
                problem(line_of(doc, at), &["second YAML document"])
            }
        }
        // `defaults:` misspelt; an alias to an anchor that does not exist.
        _ => {
            if rng.percent(50) {
                let i = doc.section_index("defaults").unwrap();
                let wrong = rng
                    .pick(&["defualts", "default", "Defaults", "defaults_"])
                    .to_string();
                if let Item::Section { name, .. } = &mut doc.items[i] {
                    *name = wrong;
                }
                problem(line_of(doc, i), &["misspelt `defaults:`"])
            } else {
                let i = *rng.pick(&all_settings);
                set_value(doc, i, "*nowhere".into());
                problem(line_of(doc, i), &["anchor"])
            }
        }
    }
}

fn parse_config(bytes: &[u8], environment: &str) -> Result<ConfigFile, FileErrors> {
    ConfigFile::parse_bytes(bytes, Path::new(CONFIG_PATH), environment, &config_lookup)
}

/// The configuration file, as the fuzzer sees it.
struct ConfigFiles;

impl FileKind for ConfigFiles {
    type Doc = ConfigDoc;
    type Parsed = ConfigFile;
    const NAME: &'static str = "config";
    const PATH: &'static str = CONFIG_PATH;
    const INPUTS: usize = CONFIG_INPUTS;
    const SEED: u64 = 0x6b61_616c_636f_6e66;

    fn generate(rng: &mut Rng) -> ConfigDoc {
        gen_config(rng)
    }
    fn mutate(rng: &mut Rng, doc: &mut ConfigDoc) -> Expect {
        mutate_config(rng, doc)
    }
    fn text(doc: &ConfigDoc) -> String {
        doc.render().0
    }
    fn environment(doc: &ConfigDoc) -> &str {
        &doc.environment
    }
    fn parse(bytes: &[u8], environment: &str) -> Result<ConfigFile, FileErrors> {
        parse_config(bytes, environment)
    }
    fn check(file: &ConfigFile, doc: &ConfigDoc) -> Result<(), String> {
        check_config(file, doc)
    }
}

#[test]
fn sixty_thousand_generated_configuration_files_never_panic_and_name_every_problem() {
    fuzz::<ConfigFiles>();
}

// ---------------------------------------------------------------------------------------
// The driver both file kinds share.

/// One kind of file: how the fuzzer generates, breaks, renders, reads and checks it.
trait FileKind {
    type Doc;
    type Parsed;
    const NAME: &'static str;
    const PATH: &'static str;
    const INPUTS: usize;
    const SEED: u64;
    fn generate(rng: &mut Rng) -> Self::Doc;
    /// Breaks `doc` in one known way and says what the error must name.
    fn mutate(rng: &mut Rng, doc: &mut Self::Doc) -> Expect;
    fn text(doc: &Self::Doc) -> String;
    fn environment(doc: &Self::Doc) -> &str;
    fn parse(bytes: &[u8], environment: &str) -> Result<Self::Parsed, FileErrors>;
    /// Compares a successful parse with what was generated.
    fn check(parsed: &Self::Parsed, doc: &Self::Doc) -> Result<(), String>;
}

/// `K::INPUTS` generated files: 15% valid (must read back as generated), 15% damaged at
/// the byte level (no panic, errors name the file and a line), 70% broken in one known way
/// (the error names it); 3% of the valid or broken ones also get a byte that is not UTF-8.
#[allow(clippy::print_stdout)] // the printed figures are the test's evidence in the CI log
fn fuzz<K: FileKind>() {
    let started = Instant::now();
    let mut rng = Rng(K::SEED);
    let mut tally = Tally::default();
    let (mut valid, mut broken, mut damaged) = (0, 0, 0);
    for _ in 0..K::INPUTS {
        let mut doc = K::generate(&mut rng);
        let roll = rng.below(100);
        let expect = if roll < 15 {
            valid += 1;
            Expect::Valid
        } else if roll < 30 {
            damaged += 1;
            let bytes = damage(&mut rng, K::text(&doc).into_bytes());
            let environment = K::environment(&doc);
            run(
                &mut tally,
                K::PATH,
                &bytes,
                &Expect::Anything,
                |b| K::parse(b, environment),
                |_| Ok(()),
            );
            continue;
        } else {
            broken += 1;
            K::mutate(&mut rng, &mut doc)
        };
        let mut bytes = K::text(&doc).into_bytes();
        let environment = K::environment(&doc);
        if rng.percent(3) {
            // A byte that is not UTF-8, at a known line.
            let at = rng.below(bytes.len() + 1);
            let line = bytes[..at].iter().filter(|b| **b == b'\n').count() + 1;
            bytes.insert(at, *rng.pick(&[0xff, 0xfe, 0xc0, 0x80]));
            run(
                &mut tally,
                K::PATH,
                &bytes,
                &problem(line, &["not UTF-8"]),
                |b| K::parse(b, environment),
                |_| Ok(()),
            );
            continue;
        }
        run(
            &mut tally,
            K::PATH,
            &bytes,
            &expect,
            |b| K::parse(b, environment),
            |file| K::check(file, &doc),
        );
    }
    println!(
        "fuzz files: {} inputs={} valid={valid} broken={broken} damaged={damaged} parsed={} rejected={} panics={} unnamed_errors={} wrong_results={} in {:.1?}",
        K::NAME,
        tally.inputs,
        tally.parsed,
        tally.rejected,
        tally.panics,
        tally.unnamed_errors,
        tally.wrong_results,
        started.elapsed()
    );
    tally.assert_clean(K::NAME);
    assert_eq!(tally.inputs, K::INPUTS);
    assert!(
        tally.parsed > K::INPUTS / 5 && tally.rejected > K::INPUTS / 2,
        "the generator lost its spread: {} parsed, {} rejected",
        tally.parsed,
        tally.rejected
    );
}

// ---------------------------------------------------------------------------------------
// Scheduler files.

/// One job as written (`fields`, in file order) and as it must be read (`expected`, with
/// line 0 until rendered).
#[derive(Clone, Debug)]
struct GenJob {
    fields: Vec<(String, String)>,
    expected: FileJob,
}

#[derive(Clone, Debug)]
struct GenSection {
    name: String,
    jobs: Vec<GenJob>,
    /// Lines written inside the section after its jobs (raw, indented by the caller).
    extra: Vec<String>,
    /// `None`: the section is written as `name:` with nothing under it.
    has_jobs_key: bool,
}

#[derive(Clone, Debug)]
struct SchedulerDoc {
    head: Vec<String>,
    sections: Vec<GenSection>,
    tail: Vec<String>,
    environment: String,
}

/// Where things landed in the rendered text (1-based lines).
#[derive(Default, Debug)]
struct SchedulerLines {
    section: Vec<usize>,
    jobs_key: Vec<usize>,
    /// `[section][job][field]`.
    field: Vec<Vec<Vec<usize>>>,
    extra: Vec<Vec<usize>>,
    tail: Vec<usize>,
}

impl SchedulerDoc {
    fn render(&self) -> (String, SchedulerLines) {
        let mut text = String::new();
        let mut lines = SchedulerLines::default();
        let mut line = 1;
        let mut push = |text: &mut String, s: &str| {
            let at = line;
            text.push_str(s);
            text.push('\n');
            line += s.matches('\n').count() + 1;
            at
        };
        for h in &self.head {
            push(&mut text, h);
        }
        for section in &self.sections {
            lines
                .section
                .push(push(&mut text, &format!("{}:", section.name)));
            let mut job_lines = Vec::new();
            if section.has_jobs_key {
                lines.jobs_key.push(push(&mut text, "  jobs:"));
                for job in &section.jobs {
                    let mut field_lines = Vec::new();
                    if job.fields.is_empty() {
                        field_lines.push(push(&mut text, "    - {}"));
                    }
                    for (n, (key, value)) in job.fields.iter().enumerate() {
                        let dash = if n == 0 { "    - " } else { "      " };
                        let sep = if value.is_empty() { "" } else { " " };
                        field_lines.push(push(&mut text, &format!("{dash}{key}:{sep}{value}")));
                    }
                    job_lines.push(field_lines);
                }
            } else {
                lines.jobs_key.push(0);
            }
            lines.field.push(job_lines);
            let extra = section.extra.iter().map(|e| push(&mut text, e)).collect();
            lines.extra.push(extra);
        }
        for t in &self.tail {
            lines.tail.push(push(&mut text, t));
        }
        (text, lines)
    }

    /// The jobs in force, ordered by key, with their lines.
    fn expected(&self) -> Vec<FileJob> {
        let (_, lines) = self.render();
        let mut merged = BTreeMap::new();
        for pass in ["defaults", self.environment.as_str()] {
            for (s, section) in self.sections.iter().enumerate() {
                if section.name == pass {
                    for (j, job) in section.jobs.iter().enumerate() {
                        let mut expected = job.expected.clone();
                        expected.line = lines.field[s][j][0];
                        merged.insert(expected.key.clone(), expected);
                    }
                }
            }
        }
        merged.into_values().collect()
    }
}

const PROGRAM_ARGS: &[&str] = &[
    "bin/report",
    "--at",
    "{{fire_time.iso8601}}",
    "{{ idempotency_key }}",
    "echo",
    "{{key}}",
    "two words",
    "--unix={{fire_time.unix}}",
    "$HOME/x",
    "ü",
    "a,b",
    "#hash",
    "- dash",
    "it's",
    "say \"hi\"",
    "",
];
const SHELLS: &[&str] = &[
    "echo hi",
    "find tmp -mtime +1 -delete && echo cleaned {{key}}",
    "bin/run --at {{fire_time.iso8601}} --id {{idempotency_key}}",
    "echo $UNSET_VAR $$",
    "printf '%s\\n' \"{{fire_time.unix}}\"",
    "a: b # not a comment",
];
const CRONS: &[&str] = &[
    "* * * * *",
    "*/5 * * * *",
    "0 6 * * *",
    "@hourly",
    "@daily",
    "@weekly",
    "@monthly",
    "0 0 1 1 *",
    "15 3 * * mon-fri",
    "0 */2 1-15 * *",
    "59 23 31 12 7",
];
const ENV_NAMES: &[&str] = &["A", "REPORT_KIND", "B_2", "lower", "PATH_EXTRA", "Ü"];
const ENV_VALUES: &[&str] = &[
    "daily",
    "{{key}}",
    "s3://b/{{fire_time.unix}}",
    "",
    "x y",
    "1",
];

fn flow_list(rng: &mut Rng, items: &[String]) -> String {
    let rendered: Vec<String> = items
        .iter()
        .map(|s| {
            if plain_safe(s) && !s.contains(',') {
                s.clone()
            } else if rng.percent(50) && !s.chars().any(char::is_control) {
                single_quoted(s)
            } else {
                double_quoted(s)
            }
        })
        .collect();
    format!("[{}]", rendered.join(", "))
}

/// Metadata as written and as JSON.
fn gen_metadata(rng: &mut Rng) -> (String, Map<String, Json>) {
    let (text, value) = match rng.below(9) {
        0 => ("{owner: finance}".to_string(), json!({"owner": "finance"})),
        1 => (
            "{n: 3, f: 1.5, ok: true, none: ~, neg: -7}".to_string(),
            json!({"n": 3, "f": 1.5, "ok": true, "none": null, "neg": -7}),
        ),
        2 => (
            "{tags: [a, b, 'c d']}".to_string(),
            json!({"tags": ["a", "b", "c d"]}),
        ),
        3 => (
            "{nested: {x: {y: 1}}}".to_string(),
            json!({"nested": {"x": {"y": 1}}}),
        ),
        4 => ("{}".to_string(), json!({})),
        5 => ("~".to_string(), json!({})),
        6 => (
            "{'quoted key': \"v\", '5': five}".to_string(),
            json!({"quoted key": "v", "5": "five"}),
        ),
        7 => {
            // Nested as deep as the reader allows: root, section, jobs, job, metadata and
            // 95 more mappings make 100 levels.
            let depth = rng.range(1, 95) as usize;
            let text = format!("{}1{}", "{a: ".repeat(depth), "}".repeat(depth));
            let mut value = json!(1);
            for _ in 0..depth {
                value = json!({ "a": value });
            }
            (format!("{{deep: {text}}}"), json!({ "deep": value }))
        }
        _ => {
            let levels = rng.range(1, 3) as usize;
            (
                format!("{{laughs: {}}}", laughs(levels)),
                json!({ "laughs": laughs_json(levels) }),
            )
        }
    };
    match value {
        Json::Object(map) => (text, map),
        _ => unreachable!(),
    }
}

fn gen_job(rng: &mut Rng, key: String) -> GenJob {
    let mut fields: Vec<(String, String)> = Vec::new();
    fields.push(("key".into(), yaml_str(rng, &key)));
    let cron_text = rng.pick(CRONS).to_string();
    fields.push((
        "cron".into(),
        if rng.percent(50) {
            single_quoted(&cron_text)
        } else {
            double_quoted(&cron_text)
        },
    ));
    let enabled = match rng.below(5) {
        0 => {
            fields.push(("enabled".into(), "true".into()));
            true
        }
        1 => {
            fields.push(("enabled".into(), rng.pick(&["false", "False"]).to_string()));
            false
        }
        2 => {
            fields.push(("enabled".into(), "~".into()));
            true
        }
        _ => true,
    };
    let action = match rng.below(10) {
        0..=3 => {
            let args: Vec<String> = (0..rng.range(1, 4))
                .map(|_| rng.pick(PROGRAM_ARGS).to_string())
                .collect();
            let rendered = flow_list(rng, &args);
            fields.push(("command".into(), rendered));
            Some(Program::Argv(
                args.iter().map(|a| Template::parse(a).unwrap()).collect(),
            ))
        }
        4..=6 => {
            let script = rng.pick(SHELLS).to_string();
            let rendered = yaml_str(rng, &script);
            fields.push(("shell".into(), rendered));
            Some(Program::Shell(Template::parse(&script).unwrap()))
        }
        _ => None,
    };
    let action = match action {
        Some(program) => {
            let mut env = Vec::new();
            if rng.percent(35) {
                let mut names: Vec<&str> = ENV_NAMES.to_vec();
                let mut parts = Vec::new();
                for _ in 0..rng.range(1, 3) {
                    let name = names.remove(rng.below(names.len()));
                    let value = rng.pick(ENV_VALUES).to_string();
                    parts.push(format!("{name}: {}", double_quoted(&value)));
                    env.push((name.to_string(), Template::parse(&value).unwrap()));
                }
                fields.push(("env".into(), format!("{{{}}}", parts.join(", "))));
            }
            let working_dir = if rng.percent(20) {
                let dir = rng.pick(&["/srv/app", "tmp dir", "./rel", "ü"]).to_string();
                fields.push(("working_dir".into(), yaml_str(rng, &dir)));
                Some(PathBuf::from(dir))
            } else {
                None
            };
            let timeout = if rng.percent(30) {
                let secs = if rng.percent(10) {
                    MAX_SECONDS
                } else {
                    rng.range(1, 86_400)
                };
                fields.push(("timeout".into(), secs.to_string()));
                Some(Duration::from_secs(secs))
            } else {
                None
            };
            JobAction::Command(CommandJob {
                key: key.clone(),
                program,
                env,
                working_dir,
                timeout,
            })
        }
        None => {
            let name = rng
                .pick(&["weekly_summary", "h", "billing.run", "ünï"])
                .to_string();
            fields.push(("handler".into(), yaml_str(rng, &name)));
            JobAction::Handler(name)
        }
    };
    let policy = if rng.percent(25) {
        let (text, policy) = gen_policy(rng);
        fields.push(("policy".into(), text));
        policy
    } else {
        JobPolicy::default()
    };
    let metadata = if rng.percent(30) {
        let (text, map) = gen_metadata(rng);
        fields.push(("metadata".into(), text));
        map
    } else {
        Map::new()
    };
    // Any field order; the first carries the list's dash.
    for i in (1..fields.len()).rev() {
        if rng.percent(30) {
            let j = rng.below(i + 1);
            fields.swap(i, j);
        }
    }
    GenJob {
        fields,
        expected: FileJob {
            key,
            cron: cron_text,
            enabled,
            action,
            policy,
            metadata,
            line: 0,
        },
    }
}

/// A valid `policy:` flow mapping of some of the keys, and the policy it means.
fn gen_policy(rng: &mut Rng) -> (String, JobPolicy) {
    let mut parts: Vec<String> = Vec::new();
    let mut policy = JobPolicy::default();
    let secs = |rng: &mut Rng, min: u64| {
        if rng.percent(5) {
            MAX_SECONDS
        } else {
            rng.range(min, 86_400)
        }
    };
    if rng.percent(50) {
        let (name, value) = *rng.pick(&[
            ("allow", Overlap::Allow),
            ("skip", Overlap::Skip),
            ("queue_one", Overlap::QueueOne),
        ]);
        parts.push(format!("overlap: {name}"));
        policy.overlap = value;
    }
    if rng.percent(30) {
        let (name, value) = *rng.pick(&[
            ("all", CatchUp::All),
            ("latest", CatchUp::Latest),
            ("'none'", CatchUp::None),
        ]);
        parts.push(format!("catch_up: {name}"));
        policy.catch_up = value;
    }
    if rng.percent(30) {
        let s = secs(rng, 1);
        parts.push(format!("starting_deadline: {s}"));
        policy.starting_deadline = Some(Duration::from_secs(s));
    }
    if rng.percent(40) {
        let s = secs(rng, 1);
        parts.push(format!("timeout: {s}"));
        policy.timeout = Some(Duration::from_secs(s));
    }
    if rng.percent(30) {
        let attempts = rng.range(1, 100) as u32;
        let backoff = rng.range(0, 300);
        let max_backoff = rng.range(backoff.max(1), 3600);
        parts.push(format!(
            "retry: {{max_attempts: {attempts}, backoff: {backoff}, max_backoff: {max_backoff}}}"
        ));
        policy.retry.max_attempts = attempts;
        policy.retry.backoff = Duration::from_secs(backoff);
        policy.retry.max_backoff = Duration::from_secs(max_backoff);
    }
    if rng.percent(30) {
        let s = rng.range(0, 3600);
        parts.push(format!("jitter: {s}"));
        policy.jitter = Duration::from_secs(s);
    }
    if rng.percent(30) {
        let zone = *rng.pick(&["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"]);
        parts.push(format!("time_zone: {}", yaml_str(rng, zone)));
        policy.time_zone = Some(zone.to_string());
    }
    if rng.percent(20) {
        let (name, value) = *rng.pick(&[
            ("abandon", OnNodeLoss::Abandon),
            ("rerun", OnNodeLoss::Rerun),
        ]);
        parts.push(format!("on_node_loss: {name}"));
        policy.on_node_loss = value;
    }
    (format!("{{{}}}", parts.join(", ")), policy)
}

const KEY_STEMS: &[&str] = &[
    "reports:daily",
    "cleanup",
    "weekly_summary",
    "billing:invoices:eu",
    "a",
    "x-1",
    "job ü",
    "with space",
    "5",
    "true",
];

fn gen_scheduler(rng: &mut Rng) -> SchedulerDoc {
    let mut head = Vec::new();
    if rng.percent(30) {
        head.push("# kaal scheduler (generated)".to_string());
    }
    let mut serial = 0;
    let mut key = |rng: &mut Rng| {
        serial += 1;
        format!("{}{serial}", rng.pick(KEY_STEMS))
    };
    let mut sections = Vec::new();
    let defaults_jobs: Vec<GenJob> = (0..rng.range(1, 4))
        .map(|_| {
            let k = key(rng);
            gen_job(rng, k)
        })
        .collect();
    let shared: Vec<String> = defaults_jobs
        .iter()
        .map(|j| j.expected.key.clone())
        .collect();
    sections.push(GenSection {
        name: "defaults".into(),
        jobs: defaults_jobs,
        extra: Vec::new(),
        has_jobs_key: true,
    });
    if rng.percent(50) {
        // Environment jobs: new keys, or one of the defaults' keys (it replaces that job).
        let jobs = (0..rng.range(1, 3))
            .map(|_| {
                let k = if rng.percent(40) {
                    rng.pick(&shared).clone()
                } else {
                    key(rng)
                };
                gen_job(rng, k)
            })
            .collect::<Vec<_>>();
        // One key once per section.
        let mut seen = BTreeSet::new();
        let jobs = jobs
            .into_iter()
            .filter(|j| seen.insert(j.expected.key.clone()))
            .collect();
        sections.push(GenSection {
            name: "production".into(),
            jobs,
            extra: Vec::new(),
            has_jobs_key: true,
        });
    }
    if rng.percent(10) {
        sections.push(GenSection {
            name: "test".into(),
            jobs: Vec::new(),
            extra: Vec::new(),
            has_jobs_key: rng.percent(50),
        });
    }
    let environment = rng
        .pick(&["development", "production", "production", "test"])
        .to_string();
    SchedulerDoc {
        head,
        sections,
        tail: Vec::new(),
        environment,
    }
}

fn check_scheduler(file: &SchedulerFile, doc: &SchedulerDoc) -> Result<(), String> {
    let expected = doc.expected();
    if file.jobs != expected {
        return Err(format!("expected {expected:#?}\nparsed {:#?}", file.jobs));
    }
    // What applying stores reads back as the same job (env order aside: it is stored as a
    // JSON object).
    for job in &file.jobs {
        let def = Definition {
            key: job.key.clone(),
            cron: job.cron.clone(),
            enabled: job.enabled,
            source: DefinitionSource::File,
            metadata: stored_metadata(job),
            created_at: Utc::now(),
            updated_at: Utc::now(),
            disabled_at: None,
            schedule_since: Utc::now(),
        };
        let sorted = |mut job: FileJob| {
            if let JobAction::Command(c) = &mut job.action {
                c.env.sort_by(|a, b| a.0.cmp(&b.0));
            }
            job.line = 0;
            job
        };
        let rebuilt = job_from_definition(&def).map_err(|e| format!("{}: {e}", job.key))?;
        if sorted(rebuilt.clone()) != sorted(job.clone()) {
            return Err(format!("stored and rebuilt differ: {job:#?}\n{rebuilt:#?}"));
        }
    }
    Ok(())
}

/// An invalid cron expression: from a list, or token soup that does not lint clean.
fn bad_cron(rng: &mut Rng) -> String {
    const TOKENS: &[&str] = &[
        "*",
        "*/",
        "/",
        "-",
        ",",
        "0",
        "1",
        "7",
        "12",
        "24",
        "31",
        "32",
        "59",
        "60",
        "61",
        "-1",
        "jan",
        "foo",
        "sun",
        "L",
        "W",
        "#",
        "?",
        "@daily",
        "@fortnightly",
        " ",
        "\t",
        "é",
        "*/0",
        "5-1",
        "1,,2",
        "9999999999999999999999",
    ];
    match rng.below(3) {
        0 => rng
            .pick(&[
                "61 * * * *",
                "* * *",
                "* * * * * *",
                "@fortnightly",
                "*/0 * * * *",
                "5-1 * * * *",
                "a b c d e",
                "0 0 32 * *",
                "0 0 * 13 *",
                "0 0 * * 8",
                "",
                "   ",
                "\t",
            ])
            .to_string(),
        _ => (0..rng.range(1, 7))
            .map(|_| {
                (0..rng.range(1, 3))
                    .map(|_| *rng.pick(TOKENS))
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// Wrong values for a job field; each must be reported naming the field.
fn wrong_job_value(rng: &mut Rng, field: &str) -> String {
    let values: &[&str] = match field {
        "key" => &["[a]", "{a: b}", "~", "", "[]"],
        "cron" => &["5", "true", "[a]", "~", "{a: b}", "1.5"],
        "enabled" => &["yes", "1", "'true'", "[true]", "\"false\"", "1e400", "{}"],
        "command" => &[
            "'echo hi'",
            "[]",
            "[[a]]",
            "{a: b}",
            "[echo, [x]]",
            "~",
            "[echo, {a: 1}]",
            "5",
        ],
        "shell" => &["[a]", "5", "''", "' '", "~", "{a: b}", "true"],
        "handler" => &["[a]", "''", "~", "{a: b}", "'  '"],
        "env" => &[
            "[a]",
            "x",
            "{A: [1]}",
            "{'': x}",
            "{'A=B': x}",
            "{A: x, A: y}",
            "{[A]: x}",
            "{~: x}",
            "{A: {B: c}}",
            "{\"A\\0\": x}",
        ],
        "working_dir" => &["[a]", "5", "''", "{a: b}", "true"],
        "timeout" => &[
            "0",
            "-1",
            "abc",
            "1.5",
            "9223372036854775807",
            "99999999999999999999",
            "315360001",
            "'5'",
            "[5]",
            "true",
        ],
        "policy" => &[
            "[skip]",
            "skip",
            "5",
            "{overlapp: skip}",
            "{overlap: Skip}",
            "{overlap: [a]}",
            "{catch_up: first}",
            "{timeout: -1}",
            "{timeout: 0}",
            "{timeout: 1.5}",
            "{timeout: '60'}",
            "{starting_deadline: 99999999999999999999}",
            "{jitter: 315360001}",
            "{time_zone: Mars/Olympus}",
            "{time_zone: 5}",
            "{retry: 3}",
            "{retry: {max_attempts: 0}}",
            "{retry: {max_attempts: 101}}",
            "{retry: {tries: 2}}",
            "{retry: {backoff: 301}}",
            "{on_node_loss: retry}",
            "{timeout: 5, timeout: 6}",
            "{~: 1}",
        ],
        "metadata" => &[
            "[1]",
            "x",
            "{kaal: 1}",
            "{a: 1, a: 2}",
            "{[a]: 1}",
            "{~: 1}",
            "{x: {b: 1, b: 2}}",
            "{x: [{c: 1, c: 1}]}",
            "5",
        ],
        other => panic!("no job field {other}"),
    };
    rng.pick(values).to_string()
}

/// Breaks or changes `doc` in one known way; returns what parsing it must do.
fn mutate_scheduler(rng: &mut Rng, doc: &mut SchedulerDoc) -> Expect {
    // A job to work on: (section, job).
    let spots: Vec<(usize, usize)> = doc
        .sections
        .iter()
        .enumerate()
        .flat_map(|(s, section)| (0..section.jobs.len()).map(move |j| (s, j)))
        .collect();
    let (s, j) = *rng.pick(&spots);
    let field_index = |doc: &SchedulerDoc, name: &str| {
        doc.sections[s].jobs[j]
            .fields
            .iter()
            .position(|(k, _)| k == name)
    };
    let field_line = |doc: &SchedulerDoc, f: usize| doc.render().1.field[s][j][f];
    let is_handler = matches!(
        doc.sections[s].jobs[j].expected.action,
        JobAction::Handler(_)
    );
    match rng.below(24) {
        // A wrong value for a field (added when the job lacks it).
        0..=4 => {
            let candidates: &[&str] = if is_handler {
                &["key", "cron", "enabled", "handler", "policy", "metadata"]
            } else {
                &[
                    "key",
                    "cron",
                    "enabled",
                    "env",
                    "working_dir",
                    "timeout",
                    "policy",
                    "metadata",
                ]
            };
            let name = *rng.pick(candidates);
            let bad = wrong_job_value(rng, name);
            let f = match field_index(doc, name) {
                Some(f) => {
                    doc.sections[s].jobs[j].fields[f].1 = bad;
                    f
                }
                None => {
                    doc.sections[s].jobs[j].fields.push((name.into(), bad));
                    doc.sections[s].jobs[j].fields.len() - 1
                }
            };
            // `cron: ...`, `env NAME: ...`, `metadata.a: ...`, `metadata[0].b: ...`.
            let words = [":", " ", ".", "["].map(|end| format!("{name}{end}"));
            problem(field_line(doc, f), &words.each_ref().map(String::as_str))
        }
        // A wrong value for the job's action.
        5 => {
            let job = &doc.sections[s].jobs[j];
            let (f, name) = ["command", "shell", "handler"]
                .iter()
                .find_map(|a| job.fields.iter().position(|(k, _)| k == a).map(|f| (f, *a)))
                .unwrap();
            let bad = wrong_job_value(rng, name);
            doc.sections[s].jobs[j].fields[f].1 = bad;
            problem(field_line(doc, f), &[&format!("{name}:")])
        }
        // env/working_dir/timeout on a handler job; two actions.
        6 => {
            if is_handler {
                let name = *rng.pick(&["env", "working_dir", "timeout"]);
                let value = match name {
                    "env" => "{A: b}",
                    "working_dir" => "/srv",
                    _ => "5",
                };
                doc.sections[s].jobs[j]
                    .fields
                    .push((name.into(), value.into()));
                let f = doc.sections[s].jobs[j].fields.len() - 1;
                problem(field_line(doc, f), &[&format!("{name}:")])
            } else {
                let other = if field_index(doc, "shell").is_some() {
                    "command"
                } else {
                    "shell"
                };
                let extra = *rng.pick(&["handler", other]);
                doc.sections[s].jobs[j]
                    .fields
                    .push((extra.into(), "\"x\"".into()));
                // Reported at the second of command, shell, handler (in that order).
                let second = ["command", "shell", "handler"]
                    .into_iter()
                    .filter_map(|a| field_index(doc, a))
                    .nth(1)
                    .unwrap();
                problem(field_line(doc, second), &["has both"])
            }
        }
        // An unknown field; a field key that is not a word; a field twice.
        7 => {
            let word = rng
                .pick(&["comand", "Cron", "timeout_s", "", "kaal", "envs", "ü"])
                .to_string();
            let raw = yaml_str(rng, &word);
            doc.sections[s].jobs[j].fields.push((raw, "x".into()));
            let f = doc.sections[s].jobs[j].fields.len() - 1;
            problem(field_line(doc, f), &[&format!("unknown job key {word:?}")])
        }
        8 => {
            let raw = rng
                .pick(&["[x]", "{a: b}", "~", "? [y]\n      "])
                .to_string();
            doc.sections[s].jobs[j].fields.push((raw, "1".into()));
            let f = doc.sections[s].jobs[j].fields.len() - 1;
            problem(field_line(doc, f), &["keys must be words"])
        }
        9 => {
            let fields = &doc.sections[s].jobs[j].fields;
            let f = rng.below(fields.len());
            let copy = fields[f].clone();
            let name = copy.0.clone();
            doc.sections[s].jobs[j].fields.push(copy);
            let at = doc.sections[s].jobs[j].fields.len() - 1;
            problem(field_line(doc, at), &[&format!("duplicate {name:?}")])
        }
        // A required field missing.
        10 => {
            let name = *rng.pick(&["key", "cron", "action"]);
            let actions = ["command", "shell", "handler"];
            doc.sections[s].jobs[j].fields.retain(|(k, _)| {
                if name == "action" {
                    !actions.contains(&k.as_str())
                } else {
                    k != name
                }
            });
            if doc.sections[s].jobs[j].fields.is_empty() {
                let (_, lines) = doc.render();
                return problem(lines.field[s][j][0], &["a job needs a `key:`"]);
            }
            let word = match name {
                "key" => "a job needs a `key:`",
                "cron" => "needs a `cron:`",
                _ => "needs one of `command:`",
            };
            problem(field_line(doc, 0), &[word])
        }
        // Cron expressions: bad ones are named; any that lints clean is taken as written.
        11 | 12 => {
            let expr = if rng.percent(20) {
                rng.pick(CRONS).replace(' ', "  ")
            } else {
                bad_cron(rng)
            };
            let f = field_index(doc, "cron").unwrap();
            doc.sections[s].jobs[j].fields[f].1 = double_quoted(&expr);
            if !expr.trim().is_empty() && cron::lint(&expr).is_empty() {
                doc.sections[s].jobs[j].expected.cron = expr;
                Expect::Valid
            } else {
                problem(field_line(doc, f), &["cron"])
            }
        }
        // Placeholders: unknown and unclosed ones are named; `$VAR` is left to the shell
        // (`${VAR}` is expanded when the file is loaded, tested in tests/cli_paths_envs.rs).
        13 | 14 => {
            let JobAction::Command(command) = &mut doc.sections[s].jobs[j].expected.action else {
                let f = field_index(doc, "handler").unwrap();
                doc.sections[s].jobs[j].fields[f].1 = "\"{{key}}\"".into();
                // A handler name is a name, not a template.
                if let JobAction::Handler(h) = &mut doc.sections[s].jobs[j].expected.action {
                    *h = "{{key}}".into();
                }
                return Expect::Valid;
            };
            let good = rng.percent(30);
            let text = if good {
                rng.pick(&[
                    "$UNSET_VAR",
                    "x $VAR y",
                    "{ {key} }",
                    "{{key}}}",
                    "}}{{key}}",
                ])
                .to_string()
            } else {
                rng.pick(&[
                    "{{name}}",
                    "x {{key",
                    "{{ fire_time }}",
                    "{{}}",
                    "{{fire_time.iso}}",
                    "{{{{key}}}}",
                    "{{key}} {{",
                ])
                .to_string()
            };
            let (field, value) = match (&mut command.program, rng.below(2)) {
                (Program::Shell(t), _) => {
                    *t = Template::parse(&text).unwrap_or_else(|_| t.clone());
                    ("shell", double_quoted(&text))
                }
                (Program::Argv(args), 0) => {
                    *args = vec![Template::parse(&text).unwrap_or_else(|_| args[0].clone())];
                    ("command", format!("[{}]", double_quoted(&text)))
                }
                (_, _) => {
                    command.env = vec![(
                        "V".into(),
                        Template::parse(&text).unwrap_or_else(|_| Template::parse("").unwrap()),
                    )];
                    ("env", format!("{{V: {}}}", double_quoted(&text)))
                }
            };
            let f = match field_index(doc, field) {
                Some(f) => {
                    doc.sections[s].jobs[j].fields[f].1 = value;
                    f
                }
                None => {
                    doc.sections[s].jobs[j].fields.push((field.into(), value));
                    doc.sections[s].jobs[j].fields.len() - 1
                }
            };
            if good {
                Expect::Valid
            } else {
                problem(field_line(doc, f), &["placeholder"])
            }
        }
        // The same job key twice in one section; a different key format of the same text.
        15 => {
            let mut copy = doc.sections[s].jobs[j].clone();
            let f = copy.fields.iter().position(|(k, _)| k == "key").unwrap();
            copy.fields[f].1 = double_quoted(&copy.expected.key);
            doc.sections[s].jobs.push(copy);
            let (_, lines) = doc.render();
            let last = doc.sections[s].jobs.len() - 1;
            problem(lines.field[s][last][0], &["duplicate job key"])
        }
        // Keys near the length limit; blank keys; control characters in keys.
        16 => {
            let f = field_index(doc, "key").unwrap();
            let key = match rng.below(4) {
                0 => "k".repeat(rng.range(220, 300) as usize),
                1 => "é".repeat(rng.range(110, 140) as usize),
                2 => rng.pick(&["", " ", "\t"]).to_string(),
                _ => format!("a{}b", rng.pick(&['\n', '\0', '\u{7}', '\u{85}'])),
            };
            doc.sections[s].jobs[j].fields[f].1 = double_quoted(&key);
            let line = field_line(doc, f);
            match validate_cron_key(NAMESPACE, &key) {
                Ok(()) => {
                    doc.sections[s].jobs[j].expected.key = key.clone();
                    if let JobAction::Command(c) = &mut doc.sections[s].jobs[j].expected.action {
                        c.key = key.clone();
                    }
                    // The other section may hold the same key; then it replaces, as usual.
                    Expect::Valid
                }
                Err(err) => {
                    let word = match err {
                        kaal::KeyError::Blank => "blank",
                        kaal::KeyError::TooLong { .. } => "too long",
                        kaal::KeyError::ControlCharacter { .. } => "control character",
                        kaal::KeyError::SurroundingWhitespace { .. } => "whitespace",
                    };
                    problem(line, &[word])
                }
            }
        }
        // Nesting past the limit; aliases that multiply.
        17 => {
            let f = match field_index(doc, "metadata") {
                Some(f) => f,
                None => {
                    doc.sections[s].jobs[j]
                        .fields
                        .push(("metadata".into(), "{}".into()));
                    doc.sections[s].jobs[j].fields.len() - 1
                }
            };
            let value = if rng.percent(60) {
                let depth = rng.range(96, 3000) as usize;
                format!("{{deep: {}1{}}}", "{a: ".repeat(depth), "}".repeat(depth))
            } else {
                format!("{{laughs: {}}}", laughs(rng.range(5, 9) as usize))
            };
            doc.sections[s].jobs[j].fields[f].1 = value;
            problem(field_line(doc, f), &["nested", "aliases"])
        }
        // Shared blocks through anchors and aliases.
        18 => {
            let f = field_index(doc, "cron").unwrap();
            let anchored = format!("&c {}", doc.sections[s].jobs[j].fields[f].1);
            doc.sections[s].jobs[j].fields[f].1 = anchored;
            let cron_text = doc.sections[s].jobs[j].expected.cron.clone();
            // Every later job in the file takes the same cron through the alias.
            let mut later = false;
            for (si, section) in doc.sections.iter_mut().enumerate() {
                for (ji, job) in section.jobs.iter_mut().enumerate() {
                    if later {
                        if let Some(g) = job.fields.iter().position(|(k, _)| k == "cron") {
                            job.fields[g].1 = "*c".into();
                            job.expected.cron = cron_text.clone();
                        }
                    }
                    later |= si == s && ji == j;
                }
            }
            Expect::Valid
        }
        // Tabs in the indentation.
        19 => {
            let (text, lines) = doc.render();
            let f = rng.below(doc.sections[s].jobs[j].fields.len());
            let line = lines.field[s][j][f];
            let mut all: Vec<String> = text.lines().map(str::to_string).collect();
            all[line - 1] = format!("\t{}", all[line - 1].trim_start());
            doc.head = all;
            doc.sections.clear();
            problem(line, &["tab"])
        }
        // Empty, comment-only and blank files have no jobs.
        20 => {
            doc.head = vec![rng
                .pick(&["", "# nothing yet", "# a\n\n# b", "   ", "---", "~"])
                .to_string()];
            doc.sections.clear();
            Expect::Valid
        }
        // Wrong shapes: jobs at the top level, a list file, sections and jobs that are not
        // what they should be.
        21 => match rng.below(5) {
            0 => {
                doc.tail.push("jobs: []".into());
                problem(doc.render().1.tail[0], &["at the top level"])
            }
            1 => {
                doc.sections.retain(|sec| sec.name != "production");
                doc.tail.push("production: [a]".into());
                problem(
                    doc.render().1.tail[0],
                    &["section `production:` must be a mapping"],
                )
            }
            2 => {
                doc.sections[s].extra.push("    - just a string".into());
                // The string joins the jobs list only when it directly follows them.
                let line = doc.render().1.extra[s][0];
                problem(line, &["a job must be a mapping"])
            }
            3 => {
                doc.sections[s].extra.push("  job: []".into());
                let line = doc.render().1.extra[s][0];
                problem(line, &["unknown key \"job\""])
            }
            _ => {
                doc.head = vec!["- key: a".into(), "  cron: '* * * * *'".into()];
                doc.sections.clear();
                problem(1, &["expected a mapping of sections"])
            }
        },
        // A section or `jobs:` written twice.
        22 => {
            if rng.percent(50) {
                let mut copy = doc.sections[s].clone();
                copy.jobs.truncate(0);
                copy.has_jobs_key = rng.percent(50);
                doc.sections.push(copy);
                let line = *doc.render().1.section.last().unwrap();
                problem(line, &["duplicate section"])
            } else {
                doc.sections[s].extra.push("  jobs: []".into());
                let line = doc.render().1.extra[s][0];
                problem(line, &["duplicate `jobs:`"])
            }
        }
        // A second document; a misspelt `defaults:`; an unknown alias.
        _ => match rng.below(3) {
            0 => {
                doc.tail.push("---\nmore: 1".into());
                let line = doc.render().1.tail[0];
                problem(line, &["second YAML document"])
            }
            1 => {
                doc.sections[0].name = rng.pick(&["defualts", "default", "Defaults"]).to_string();
                problem(doc.render().1.section[0], &["misspelt `defaults:`"])
            }
            _ => {
                let f = field_index(doc, "cron").unwrap();
                doc.sections[s].jobs[j].fields[f].1 = "*nowhere".into();
                problem(field_line(doc, f), &["anchor"])
            }
        },
    }
}

fn parse_scheduler(bytes: &[u8], environment: &str) -> Result<SchedulerFile, FileErrors> {
    SchedulerFile::parse_bytes(bytes, Path::new(SCHEDULER_PATH), environment, NAMESPACE)
}

/// The scheduler file, as the fuzzer sees it.
struct SchedulerFiles;

impl FileKind for SchedulerFiles {
    type Doc = SchedulerDoc;
    type Parsed = SchedulerFile;
    const NAME: &'static str = "scheduler";
    const PATH: &'static str = SCHEDULER_PATH;
    const INPUTS: usize = SCHEDULER_INPUTS;
    const SEED: u64 = 0x6b61_616c_7363_6864;

    fn generate(rng: &mut Rng) -> SchedulerDoc {
        gen_scheduler(rng)
    }
    fn mutate(rng: &mut Rng, doc: &mut SchedulerDoc) -> Expect {
        mutate_scheduler(rng, doc)
    }
    fn text(doc: &SchedulerDoc) -> String {
        doc.render().0
    }
    fn environment(doc: &SchedulerDoc) -> &str {
        &doc.environment
    }
    fn parse(bytes: &[u8], environment: &str) -> Result<SchedulerFile, FileErrors> {
        parse_scheduler(bytes, environment)
    }
    fn check(file: &SchedulerFile, doc: &SchedulerDoc) -> Result<(), String> {
        check_scheduler(file, doc)
    }
}

#[test]
fn sixty_thousand_generated_scheduler_files_never_panic_and_name_every_problem() {
    fuzz::<SchedulerFiles>();
}

// ---------------------------------------------------------------------------------------
// Through the filesystem, as `kaal` reads them.

#[test]
fn files_on_disk_report_bytes_that_are_not_utf8_at_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kaal.yml");
    std::fs::write(
        &config,
        b"defaults:\n  database_url: \"memory:\"\n  namespace: caf\xe9\n",
    )
    .unwrap();
    let err = ConfigFile::load(&config, "development").unwrap_err();
    assert_eq!(err.problems.len(), 1, "{err}");
    assert_eq!(err.problems[0].line, Some(3), "{err}");
    assert!(
        err.to_string()
            .contains("not UTF-8 text at column 17 (byte 0xE9)"),
        "{err}"
    );

    let scheduler = dir.path().join("kaal-scheduler.yml");
    std::fs::write(&scheduler, b"defaults:\n  jobs:\n    - key: \xff\n").unwrap();
    let err = SchedulerFile::load(&scheduler, "development", NAMESPACE).unwrap_err();
    assert_eq!(err.problems[0].line, Some(3), "{err}");
    assert!(err.to_string().contains("not UTF-8"), "{err}");

    // A missing scheduler file is no error (the missing-file policy decides); a missing
    // configuration file is, naming the path.
    assert!(
        SchedulerFile::load(&dir.path().join("none.yml"), "development", NAMESPACE)
            .unwrap()
            .is_none()
    );
    let err = ConfigFile::load(&dir.path().join("none.yml"), "development").unwrap_err();
    assert!(err.to_string().contains("none.yml"), "{err}");
}

#[test]
fn a_generated_valid_file_reads_back_as_generated() {
    // The checks the fuzzers rely on can fail: a valid file that parses to something else
    // is caught.
    let mut rng = Rng(1);
    let doc = gen_config(&mut rng);
    let (text, _) = doc.render();
    let file = parse_config(text.as_bytes(), &doc.environment).unwrap();
    check_config(&file, &doc).unwrap();
    let mut other = doc.clone();
    for item in &mut other.items {
        if let Item::Setting { key, logical, .. } = item {
            if key == "database_url" {
                *logical = Some("something else".into());
            }
        }
    }
    assert!(check_config(&file, &other).is_err());

    let doc = gen_scheduler(&mut rng);
    let (text, _) = doc.render();
    let file = parse_scheduler(text.as_bytes(), &doc.environment).unwrap();
    check_scheduler(&file, &doc).unwrap();
    let mut other = doc.clone();
    other.sections[0].jobs[0].expected.cron = "1 2 3 4 5".into();
    assert!(check_scheduler(&file, &other).is_err());
}
