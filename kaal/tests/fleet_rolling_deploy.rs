//! Fleet test of the release CLI, the rolling deploy: three `kaal start` processes, each in
//! its own project directory (its own `kaal.yml` and scheduler file) on one database, are
//! moved from scheduler file v1 to v2 one at a time while they tick, and the new file is
//! applied with `kaal apply` afterwards. Every fire time the database's definitions owe must
//! run exactly once, and the stored jobs must change only at the apply.
//!
//! Real processes, real time, every backend at once: one test runs the scenario on SQLite,
//! PostgreSQL (`--features postgres`, server `KAAL_POSTGRES_URL`) and MySQL / MariaDB
//! (`--features mysql`, server `KAAL_MYSQL_URL`) in three threads (see
//! `common/databases.rs`), so the wall time is that of one scenario (2.5 to 4.5 minutes,
//! 3.3 on average, mostly waiting for the clock). A failure on any backend fails the test,
//! naming it.
//!
//! The scenario, per backend:
//! * three nodes `roll-1`..`roll-3`, each with `tick_interval: 1`,
//!   `recovery_startup_jitter: 0`, `node_timeout: 3` and its `node_id`; every job's shell
//!   appends `<fire_time.unix> $ROLL_NODE` to `<out>/<key>.log`, `<out>` one absolute
//!   directory shared by the nodes (`ROLL_NODE` is set in each node's environment, so the
//!   stored command is the same on every node);
//! * file v1: `keep`, `old-only`, `changes`, `paused`, all `* * * * *`; file v2: `keep`,
//!   `changes` on `*/2 * * * *` (the same shell command), `new-only` (`* * * * *`),
//!   `paused`; `old-only` is gone;
//! * `kaal apply` stores v1 (from node 1's directory), `kaal disable paused`, and the three
//!   nodes start with v1;
//! * the roll: at second 40 of an even minute (so that the next one, on which v1 and v2
//!   nodes run side by side, is odd) node 1 gets v2 and is restarted (SIGTERM, wait for
//!   the exit, start, wait for its recovery pass); node 2 likewise 20 s later — on the
//!   minute boundary itself, so its restart races the others' ticks for that fire time —
//!   and node 3 20 s after that;
//! * 10 s after node 3's restart (second 30 of a minute: far from any boundary) `kaal
//!   apply` runs from node 3's directory; all three run on until two more minute boundaries
//!   have passed, plus 8 s, and stop.
//!
//! Checked, from the jobs' files, `kaal dispatches`, `kaal status` and the stored
//! `schedule_since`:
//! * `keep`: every minute after it was stored up to the last boundary ran exactly once;
//! * `old-only`: ran once a minute while a v1 node was running, even after v2 nodes had
//!   started (their start does not remove it), and never once no node had it or after the
//!   apply; `kaal status` shows it removed;
//! * `new-only`: no fire time from before node 1's v2 start (which stored it) ran, every
//!   minute after it ran once;
//! * `changes`: every minute before the apply (the database's cron, also on v2 nodes whose
//!   file says `*/2`), after it only the even minutes, once each;
//! * `paused`: never ran; `kaal status` still shows it disabled after the apply;
//! * no fire time of any job ran twice; the dispatch log and the files agree; every node's
//!   v2 start-up summary (stdout) reports that its file differs from the database in two
//!   jobs, and no v1 start does; every process exits 0 and logs no error.
//!
//! A minute boundary within [`MARGIN`] of an action that decides whether it is owed (the
//! last v1 node's stop, `new-only`'s creation, the apply) may go either way; it is reported,
//! not held to a rule (the timeline keeps every such action at least 10 s from a boundary,
//! so normally there is none).
//!
//! The nodes run a hard link (or copy) of the `kaal` binary this test was built with, made
//! when the test starts: `target/debug/kaal` is shared by every build of the workspace, and
//! a build with other features replacing it during the minutes this test runs would
//! otherwise fail the later commands. Run with
//! `cargo test -p kaal --features postgres,mysql --test fleet_rolling_deploy -- --nocapture`.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::Instant;

use common::databases::{Backend, Database};
use common::node::{
    dispatch_rows, instant, sleep_until_unix, stored_instant, unix_now, Life, Node,
};
use common::{sorted_lines, Project, Run};
use kaal::chrono::{DateTime, Utc};

/// The nodes' ids; node `i` runs in project directory `i`.
const NODE_IDS: [&str; 3] = ["roll-1", "roll-2", "roll-3"];

/// Every job key of both files.
const KEYS: [&str; 5] = ["keep", "old-only", "changes", "new-only", "paused"];

/// The second of a minute node 1 is restarted at, and the spacing of the restarts: node 2's
/// falls on the next minute boundary.
const FIRST_RESTART_SECOND: f64 = 40.0;
const RESTART_SPACING: f64 = 20.0;

/// How long after node 3's restart the apply runs (second 30 of the minute).
const APPLY_AFTER_LAST_RESTART: f64 = 10.0;

/// How long after the last minute boundary the nodes keep running before they stop.
const AFTER_LAST_BOUNDARY: f64 = 8.0;

/// A boundary this close (seconds) to an action deciding whether it is owed may go either
/// way.
const MARGIN: f64 = 3.0;

#[test]
fn a_rolling_deploy_runs_every_owed_fire_time_once_and_changes_jobs_only_at_apply() {
    // SQLite always; the servers with their cargo features.
    let backends: Vec<Backend> = [
        (Backend::Sqlite, true),
        (Backend::Postgres, cfg!(feature = "postgres")),
        (Backend::Mysql, cfg!(feature = "mysql")),
    ]
    .into_iter()
    .filter(|(_, on)| *on)
    .map(|(backend, _)| backend)
    .collect();
    let began = Instant::now();
    let (_bin_dir, bin) = own_binary();
    let runs: Vec<(Backend, thread::JoinHandle<()>)> = backends
        .iter()
        .map(|&backend| {
            let bin = bin.clone();
            let handle = thread::Builder::new()
                .name(format!("rolling deploy on {backend}"))
                .spawn(move || rolling_deploy(backend, &bin))
                .unwrap();
            (backend, handle)
        })
        .collect();
    let mut failures = Vec::new();
    for (backend, handle) in runs {
        if let Err(payload) = handle.join() {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_string()))
                .unwrap_or_else(|| "a panic without a message".to_string());
            let name = backend.to_string();
            failures.push(if message.starts_with(&name) {
                message
            } else {
                format!("{name}: {message}")
            });
        }
    }
    common::show_figures(&[format!(
        "rolling deploy on {}: wall clock {:.1} s",
        backends
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        began.elapsed().as_secs_f64()
    )]);
    assert!(
        failures.is_empty(),
        "the rolling deploy failed on {} of {} backend(s):\n\n{}",
        failures.len(),
        backends.len(),
        failures.join("\n\n")
    );
}

/// A hard link to (or, across file systems, a copy of) the `kaal` binary this test was built
/// with, in a temporary directory (returned, to keep it), so that a build replacing
/// `target/debug/kaal` meanwhile does not change what the test runs.
fn own_binary() -> (tempfile::TempDir, PathBuf) {
    let built = Path::new(env!("CARGO_BIN_EXE_kaal"));
    let dir = tempfile::tempdir().unwrap();
    let own = dir.path().join("kaal");
    if std::fs::hard_link(built, &own).is_err() {
        std::fs::copy(built, &own).unwrap();
    }
    (dir, own)
}

/// `kaal --config <project>/kaal.yml ARGS...` with the binary `bin`, run in the project
/// directory with a clean environment for kaal's variables (as `common::kaal` does).
fn kaal_command(bin: &Path, project: &Project, args: &[&str]) -> Command {
    let mut command = Command::new(bin);
    command
        .args(args)
        .arg("--config")
        .arg(project.config())
        .current_dir(project.dir.path())
        .env_remove("KAAL_CONFIG")
        .env_remove("KAAL_ENV")
        .env_remove("KAAL_DATABASE_URL")
        .env("RUST_LOG", "info");
    command
}

/// Runs `kaal ARGS` in `project` and waits for it.
fn kaal_run(bin: &Path, project: &Project, args: &[&str]) -> Run {
    Run::from(kaal_command(bin, project, args).output().unwrap())
}

/// The scheduler file: v1 or v2 (see the module docs). `out` is the shared output
/// directory.
fn scheduler_file(out: &Path, v2: bool) -> String {
    let job = |key: &str, cron: &str| {
        format!(
            "    - key: {key}\n      cron: \"{cron}\"\n      shell: \"echo {{{{fire_time.unix}}}} $ROLL_NODE >> {}\"\n",
            out.join(format!("{key}.log")).display()
        )
    };
    let jobs = if v2 {
        [
            job("keep", "* * * * *"),
            job("changes", "*/2 * * * *"),
            job("new-only", "* * * * *"),
            job("paused", "* * * * *"),
        ]
    } else {
        [
            job("keep", "* * * * *"),
            job("old-only", "* * * * *"),
            job("changes", "* * * * *"),
            job("paused", "* * * * *"),
        ]
    };
    format!("defaults:\n  jobs:\n{}", jobs.concat())
}

/// One `kaal start` of node `id` with the binary `bin`, the file of `version`.
fn start(bin: &Path, project: &Project, id: &'static str, version: &'static str) -> Node {
    let mut command = kaal_command(bin, project, &["start"]);
    command.env("ROLL_NODE", id);
    Node::spawn(command, id, version)
}

/// Waits until the node has printed its start-up summary (stdout) and run its recovery
/// pass (stderr).
fn ready(node: &mut Node) {
    node.ready();
    node.wait_for("out| ticking every");
}

/// The start-up summary: the stdout lines up to `ticking every`.
fn summary(node: &Node) -> Vec<String> {
    node.seen
        .iter()
        .filter(|l| l.starts_with("out| "))
        .take_while(|l| !l.contains("ticking every"))
        .cloned()
        .collect()
}

/// One restart of the roll, as Unix seconds.
struct Restart {
    id: &'static str,
    /// SIGTERM sent to the v1 process.
    stop_sent: f64,
    /// The v1 process exited.
    exited: f64,
    /// The v2 process had run its recovery pass.
    ready: f64,
}

/// A minute's fire time as `HH:MM`.
fn minute(unix: i64) -> String {
    DateTime::<Utc>::from_timestamp(unix, 0)
        .unwrap()
        .format("%H:%M")
        .to_string()
}

fn minutes(times: &[i64]) -> String {
    if times.is_empty() {
        return "-".to_string();
    }
    times
        .iter()
        .map(|t| minute(*t))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The stored `schedule_since` of job `key`, as Unix seconds.
fn schedule_since(db: &Database, key: &str) -> f64 {
    let column = if db.backend() == Backend::Mysql {
        "`key`"
    } else {
        "\"key\""
    };
    let text = db.scalar(&format!(
        "SELECT schedule_since FROM kaal_definitions WHERE {column} = '{key}'"
    ));
    stored_instant(&text, &format!("schedule_since of {key}"))
}

/// Whether a minute boundary must run once, must not run, or may go either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Once,
    Never,
    Either,
}

/// The outcome for one job.
struct Verdict {
    key: &'static str,
    /// Fire time -> the nodes that ran it (from the job's file).
    runs: BTreeMap<i64, Vec<String>>,
    owed: Vec<i64>,
    either: Vec<i64>,
    duplicates: Vec<(i64, Vec<String>)>,
    missing: Vec<i64>,
    /// Runs of fire times that were not owed.
    unexpected: Vec<(i64, Vec<String>)>,
}

impl Verdict {
    fn judge(key: &'static str, out: &Path, expect: impl Fn(i64) -> Expect, range: &[i64]) -> Self {
        let mut runs: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        for line in sorted_lines(&out.join(format!("{key}.log"))) {
            let mut fields = line.split(' ');
            let fire: i64 = fields
                .next()
                .unwrap()
                .parse()
                .unwrap_or_else(|err| panic!("{key}.log: line {line:?}: {err}"));
            runs.entry(fire)
                .or_default()
                .push(fields.next().unwrap_or("?").to_string());
        }
        let owed: Vec<i64> = range
            .iter()
            .copied()
            .filter(|&t| expect(t) == Expect::Once)
            .collect();
        let either: Vec<i64> = range
            .iter()
            .copied()
            .filter(|&t| expect(t) == Expect::Either)
            .collect();
        let duplicates = runs
            .iter()
            .filter(|(_, nodes)| nodes.len() > 1)
            .map(|(t, nodes)| (*t, nodes.clone()))
            .collect();
        let missing = owed
            .iter()
            .copied()
            .filter(|t| !runs.contains_key(t))
            .collect();
        let unexpected = runs
            .iter()
            .filter(|(t, _)| !range.contains(t) || expect(**t) == Expect::Never)
            .map(|(t, nodes)| (*t, nodes.clone()))
            .collect();
        Verdict {
            key,
            runs,
            owed,
            either,
            duplicates,
            missing,
            unexpected,
        }
    }

    fn ran(&self) -> Vec<i64> {
        self.runs.keys().copied().collect()
    }

    fn figures(&self) -> String {
        let mut by_node: BTreeMap<&str, usize> = BTreeMap::new();
        for node in self.runs.values().flatten() {
            *by_node.entry(node).or_default() += 1;
        }
        let either_ran: Vec<i64> = self
            .either
            .iter()
            .copied()
            .filter(|t| self.runs.contains_key(t))
            .collect();
        format!(
            "{:<9} runs {:>2} ({}); owed {:>2} ({}); either way {} (ran {}); duplicates {}; missing {}; not owed but ran {}; by node: {}",
            self.key,
            self.runs.values().map(Vec::len).sum::<usize>(),
            minutes(&self.ran()),
            self.owed.len(),
            minutes(&self.owed),
            minutes(&self.either),
            minutes(&either_ran),
            self.duplicates.len(),
            self.missing.len(),
            self.unexpected.len(),
            if by_node.is_empty() {
                "-".to_string()
            } else {
                by_node
                    .iter()
                    .map(|(id, n)| format!("{id} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        )
    }
}

/// `kaal dispatches --key KEY`: (fire time, status, node) per row, oldest first.
fn dispatch_log(bin: &Path, project: &Project, key: &str) -> Vec<(i64, String, String)> {
    let table = kaal_run(
        bin,
        project,
        &["dispatches", "--key", key, "--limit", "1000"],
    );
    dispatch_rows(table.ok())
}

/// The stored jobs' table of `kaal status`: key -> (cron, enabled column).
fn status_table(stdout: &str) -> BTreeMap<String, (String, String)> {
    let mut lines = stdout.lines().skip_while(|l| !l.starts_with("KEY "));
    let Some(header) = lines.next() else {
        panic!("no job table in `kaal status`:\n{stdout}")
    };
    let header: Vec<char> = header.chars().collect();
    let names = [
        "KEY",
        "CRON",
        "DESCRIPTION",
        "ENABLED",
        "SOURCE",
        "NEXT FIRE TIME",
    ];
    let text: String = header.iter().collect();
    let offsets: Vec<usize> = names
        .iter()
        .map(|name| {
            let byte = text
                .find(&format!("{name} "))
                .unwrap_or_else(|| panic!("no column {name} in `kaal status`:\n{stdout}"));
            text[..byte].chars().count()
        })
        .collect();
    let mut table = BTreeMap::new();
    for row in lines.take_while(|l| !l.trim().is_empty()) {
        let chars: Vec<char> = row.chars().collect();
        let cell = |i: usize| -> String {
            let end = offsets.get(i + 1).copied().unwrap_or(chars.len());
            chars[offsets[i].min(chars.len())..end.min(chars.len())]
                .iter()
                .collect::<String>()
                .trim()
                .to_string()
        };
        table.insert(cell(0), (cell(1), cell(3)));
    }
    table
}

fn rolling_deploy(backend: Backend, bin: &Path) {
    let began = Instant::now();
    let db = Database::create(backend, "roll");
    let out = tempfile::tempdir().unwrap();
    let out_dir = out.path().to_path_buf();
    let projects: Vec<Project> = NODE_IDS
        .iter()
        .map(|id| {
            let project = Project::new();
            project.write_config(&format!(
                "defaults:
  database_url: {}
  tick_interval: 1
  recovery_startup_jitter: 0
  node_timeout: 3
  node_id: {id}
",
                db.url()
            ));
            project.write("kaal-scheduler.yml", &scheduler_file(&out_dir, false));
            project
        })
        .collect();
    if !backend.migrates_on_start() {
        kaal_run(bin, &projects[0], &["migrate"]).ok();
    }

    // v1 is applied and `paused` disabled before any node runs.
    let applied_v1 = kaal_run(bin, &projects[0], &["apply"]);
    assert!(
        applied_v1.ok().contains("4 added"),
        "{backend}: `kaal apply` of v1 did not add the four jobs:\n{}",
        applied_v1.stdout
    );
    kaal_run(bin, &projects[0], &["disable", "paused"]).ok();
    let since_v1 = schedule_since(&db, "keep");

    let mut lives: Vec<Life> = Vec::new();
    let mut nodes: Vec<Node> = Vec::new();
    for (project, id) in projects.iter().zip(NODE_IDS) {
        let mut node = start(bin, project, id, "v1");
        ready(&mut node);
        let summary = summary(&node);
        assert!(
            !summary.iter().any(|l| l.contains("differs from the database")),
            "{backend}: node {id}'s v1 start reports a difference from the database it applied:\n{}",
            summary.join("\n")
        );
        nodes.push(node);
    }
    let all_ready = unix_now();

    // The roll: node 1 at second 40 of an even minute (at least 5 s from now), node 2 on
    // the next minute boundary, node 3 20 s later. That boundary is an odd minute, which
    // `changes` owes by the database's cron while v2 nodes, whose file says `*/2`, run.
    let earliest = all_ready + 5.0;
    let mut first = (earliest / 60.0).floor() * 60.0 + FIRST_RESTART_SECOND;
    while first < earliest || (first / 60.0).floor() as i64 % 2 != 0 {
        first += 60.0;
    }

    let mut restarts: Vec<Restart> = Vec::new();
    let mut v2_summaries: Vec<(&'static str, Vec<String>)> = Vec::new();
    let mut since_new = f64::NAN;
    for (slot, id) in NODE_IDS.iter().copied().enumerate() {
        projects[slot].write("kaal-scheduler.yml", &scheduler_file(&out_dir, true));
        sleep_until_unix(first + RESTART_SPACING * slot as f64);
        let stop_sent = unix_now();
        lives.push(nodes.remove(slot).stop());
        let exited = unix_now();
        let mut node = start(bin, &projects[slot], id, "v2");
        ready(&mut node);
        let ready = unix_now();
        if slot == 0 {
            since_new = schedule_since(&db, "new-only");
        }
        v2_summaries.push((id, summary(&node)));
        nodes.insert(slot, node);
        restarts.push(Restart {
            id,
            stop_sent,
            exited,
            ready,
        });
    }

    // What `kaal apply` would do, seen from node 1 (v2): printed, nothing written.
    let diff = kaal_run(bin, &projects[0], &["diff"]);
    let diff_out = diff.ok().to_string();

    // The apply, at second 30 of a minute, from node 3's directory.
    sleep_until_unix(first + RESTART_SPACING * 2.0 + APPLY_AFTER_LAST_RESTART);
    let apply_began = unix_now();
    let applied = kaal_run(bin, &projects[2], &["apply"]);
    let apply_ended = unix_now();
    let apply_out = applied.ok().to_string();
    let since_changes = schedule_since(&db, "changes");

    // Two more minute boundaries, a few ticks, and the fleet stops.
    let after_apply = ((apply_ended / 60.0).floor() as i64 + 1) * 60;
    let last_boundary = after_apply + 60;
    sleep_until_unix(last_boundary as f64 + AFTER_LAST_BOUNDARY);
    for node in nodes.drain(..) {
        lives.push(node.stop());
    }
    let stopped = unix_now();
    let since_keep_after = schedule_since(&db, "keep");
    let status = kaal_run(bin, &projects[2], &["status"]);
    let status_out = status.ok().to_string();
    let stored = status_table(&status_out);

    // What each job owed, minute by minute.
    let range: Vec<i64> = ((since_v1 / 60.0).floor() as i64..=last_boundary / 60)
        .map(|m| m * 60)
        .filter(|&t| t as f64 > since_v1)
        .collect();
    let last_v1 = &restarts[2];
    let verdicts = [
        Verdict::judge("keep", &out_dir, |_| Expect::Once, &range),
        Verdict::judge(
            "old-only",
            &out_dir,
            |t| {
                let t = t as f64;
                if t < last_v1.stop_sent - MARGIN {
                    Expect::Once
                } else if t > last_v1.exited {
                    Expect::Never
                } else {
                    Expect::Either
                }
            },
            &range,
        ),
        Verdict::judge(
            "changes",
            &out_dir,
            |t| {
                let at = t as f64;
                if at < apply_began - MARGIN {
                    Expect::Once
                } else if at > apply_ended + MARGIN {
                    if (t / 60) % 2 == 0 {
                        Expect::Once
                    } else {
                        Expect::Never
                    }
                } else {
                    Expect::Either
                }
            },
            &range,
        ),
        Verdict::judge(
            "new-only",
            &out_dir,
            |t| {
                let t = t as f64;
                if t <= since_new {
                    Expect::Never
                } else if t > since_new + MARGIN {
                    Expect::Once
                } else {
                    Expect::Either
                }
            },
            &range,
        ),
        Verdict::judge("paused", &out_dir, |_| Expect::Never, &range),
    ];
    let logs: Vec<Vec<(i64, String, String)>> = KEYS
        .iter()
        .map(|key| dispatch_log(bin, &projects[2], key))
        .collect();

    let logged_at = |level: &'static str| -> Vec<String> {
        lives
            .iter()
            .flat_map(|life| {
                life.lines
                    .iter()
                    .filter(move |l| l.contains(level))
                    .map(move |l| format!("{} {} (pid {}): {l}", life.id, life.version, life.pid))
            })
            .collect()
    };
    let errors = logged_at(" ERROR ");
    let warnings = logged_at(" WARN ");
    let failed_exits: Vec<String> = lives
        .iter()
        .filter(|life| life.status.code() != Some(0))
        .map(|life| {
            format!(
                "{} {} (pid {}): {}",
                life.id, life.version, life.pid, life.status
            )
        })
        .collect();
    let mut recovery_errors = 0;
    for line in lives.iter().flat_map(|life| &life.lines) {
        if let Some(counts) = line.split("recovery: ").nth(1) {
            recovery_errors += counts
                .split(", ")
                .nth(3)
                .and_then(|f| f.split(' ').next())
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(0);
        }
    }

    // The figures, for the CI log (one print, so the backends' threads do not interleave).
    let mut report = String::new();
    writeln!(report, "rolling deploy on {backend}:").unwrap();
    writeln!(
        report,
        "  v1 applied (schedule_since of keep) {}; nodes ready {}",
        instant(since_v1),
        instant(all_ready)
    )
    .unwrap();
    for r in &restarts {
        writeln!(
            report,
            "  restart {}: SIGTERM {}, exited {:+.2} s, v2 ready {:+.2} s",
            r.id,
            instant(r.stop_sent),
            r.exited - r.stop_sent,
            r.ready - r.stop_sent
        )
        .unwrap();
    }
    writeln!(
        report,
        "  new-only stored (schedule_since) {}; apply {} .. {} (second {:.1} of the minute; changes' schedule_since {}); last boundary {}; stopped {}",
        instant(since_new),
        instant(apply_began),
        instant(apply_ended),
        apply_began % 60.0,
        instant(since_changes),
        instant(last_boundary as f64),
        instant(stopped)
    )
    .unwrap();
    for verdict in &verdicts {
        writeln!(report, "  {}", verdict.figures()).unwrap();
    }
    writeln!(
        report,
        "  dispatch log rows: {}; processes {}; warnings logged {}; errors logged {}; wall clock {:.1} s",
        KEYS.iter()
            .zip(&logs)
            .map(|(key, log)| format!("{key} {}", log.len()))
            .collect::<Vec<_>>()
            .join(", "),
        lives.len(),
        warnings.len(),
        errors.len(),
        began.elapsed().as_secs_f64()
    )
    .unwrap();
    for line in &errors {
        writeln!(report, "  logged: {line}").unwrap();
    }
    common::show_figures(&[report.clone()]);

    let job_lines: Vec<String> = lives
        .iter()
        .flat_map(|life| {
            life.lines
                .iter()
                .filter(|l| {
                    l.contains("] fire time") || l.contains("recovery:") || l.contains(" WARN ")
                })
                .map(move |l| format!("{} {} (pid {}): {l}", life.id, life.version, life.pid))
        })
        .collect();
    let evidence = format!(
        "{report}\nkaal status:\n{status_out}\nkaal apply:\n{apply_out}\nnode lines:\n{}",
        job_lines.join("\n")
    );

    // Every process started and stopped cleanly.
    assert!(
        failed_exits.is_empty(),
        "{backend}: nodes exited with failure: {failed_exits:?}\n{evidence}"
    );
    assert!(
        errors.is_empty() && recovery_errors == 0,
        "{backend}: the nodes logged errors:\n{}\n{evidence}",
        errors.join("\n")
    );
    assert!(
        stopped < last_boundary as f64 + 60.0,
        "{backend}: the stop took until {}, past the next boundary",
        instant(stopped)
    );

    // Each v2 start reported its difference from the database and changed nothing stored.
    for (id, summary) in &v2_summaries {
        let text = summary.join("\n");
        assert!(
            text.contains("this node's file differs from the database in 2 job(s)")
                && summary
                    .iter()
                    .any(|l| l.contains("job \"changes\"") && l.contains("*/2 * * * *"))
                && summary.iter().any(|l| l.contains("job \"old-only\"")),
            "{backend}: node {id}'s v2 start-up summary does not report that its file differs from the database in `changes` (cron) and `old-only`:\n{text}"
        );
        let added = if *id == NODE_IDS[0] { 1 } else { 0 };
        assert!(
            text.contains(&format!("{added} new job(s) stored")),
            "{backend}: node {id}'s v2 start should store {added} new job(s):\n{text}"
        );
    }
    assert!(
        restarts[0].stop_sent - 1.0 <= since_new && since_new <= restarts[0].ready + 1.0,
        "{backend}: new-only's schedule_since {} is not node 1's v2 start ({} .. {})",
        instant(since_new),
        instant(restarts[0].stop_sent),
        instant(restarts[0].ready)
    );
    assert!(
        diff_out.contains("dry run: nothing written")
            && diff_out.contains("changes")
            && diff_out.contains("old-only"),
        "{backend}: `kaal diff` from node 1 does not show the change of `changes` and the removal of `old-only`:\n{diff_out}"
    );

    // The apply changed `changes` and removed `old-only`, keeping `paused` disabled.
    assert!(
        apply_out.contains("applied in one transaction: 0 added, 1 changed, 1 removed")
            && apply_out.lines().any(|l| l.contains("changes") && l.contains("*/2"))
            && apply_out.lines().any(|l| l.contains("old-only") && l.contains("remove"))
            && apply_out.lines().any(|l| l.contains("paused") && l.contains("disabled")),
        "{backend}: `kaal apply` of v2 did not change `changes`, remove `old-only` and keep `paused` disabled:\n{apply_out}"
    );
    assert!(
        apply_began - 1.0 <= since_changes && since_changes <= apply_ended + 1.0,
        "{backend}: `changes`' new cron is in force from {}, not from the apply ({} .. {})",
        instant(since_changes),
        instant(apply_began),
        instant(apply_ended)
    );
    assert_eq!(
        since_keep_after, since_v1,
        "{backend}: the restarts or the apply moved keep's schedule_since"
    );
    let row = |key: &str| {
        stored
            .get(key)
            .cloned()
            .unwrap_or_else(|| panic!("{backend}: `kaal status` lists no {key}:\n{status_out}"))
    };
    for (key, cron, enabled) in [
        ("keep", "* * * * *", "yes"),
        ("old-only", "* * * * *", "removed"),
        ("changes", "*/2 * * * *", "yes"),
        ("new-only", "* * * * *", "yes"),
        ("paused", "* * * * *", "no"),
    ] {
        assert_eq!(
            row(key),
            (cron.to_string(), enabled.to_string()),
            "{backend}: `kaal status` after the apply: {key} (cron, enabled)\n{status_out}"
        );
    }
    assert!(
        status_out.contains("matches the database"),
        "{backend}: node 3's file (v2) does not match the database after its apply:\n{status_out}"
    );

    // Every owed fire time once, nothing else, nothing twice.
    for verdict in &verdicts {
        let key = verdict.key;
        assert!(
            verdict.duplicates.is_empty(),
            "{backend}: {key}: fire times ran more than once (fire time, nodes): {:?}\n{evidence}",
            verdict.duplicates
        );
        assert!(
            verdict.missing.is_empty(),
            "{backend}: {key}: owed fire times never ran: {}\n{evidence}",
            minutes(&verdict.missing)
        );
        assert!(
            verdict.unexpected.is_empty(),
            "{backend}: {key}: fire times that were not owed ran (fire time, nodes): {:?}\n{evidence}",
            verdict
                .unexpected
                .iter()
                .map(|(t, nodes)| (instant(*t as f64), nodes))
                .collect::<Vec<_>>()
        );
    }
    for (verdict, log) in verdicts.iter().zip(&logs) {
        let key = verdict.key;
        let logged: Vec<i64> = log.iter().map(|(t, _, _)| *t).collect();
        assert_eq!(
            logged,
            verdict.ran(),
            "{backend}: {key}: the dispatch log and the job's file disagree\n{evidence}"
        );
        assert!(
            log.iter().all(|(t, status, node)| ran_status(status)
                && verdict.runs[t].iter().any(|n| n == node)),
            "{backend}: {key}: a dispatch log row is not a run by the node that ran it: {log:?} vs {:?}",
            verdict.runs
        );
    }

    // The timeline covered what the test claims to check.
    let [keep, old_only, changes, new_only, _] = &verdicts;
    let v2_running = restarts[0].ready;
    assert!(
        keep.owed.len() >= 3,
        "{backend}: only {} fire times of keep were owed",
        keep.owed.len()
    );
    assert!(
        old_only.owed.iter().any(|&t| t as f64 > v2_running),
        "{backend}: no fire time of old-only was owed after a v2 node had started: the test did not check that a v2 start keeps it"
    );
    assert!(
        range
            .iter()
            .any(|&t| t as f64 > last_v1.exited && (t as f64) > apply_ended),
        "{backend}: no boundary after the apply: the test did not check that old-only stops"
    );
    assert!(
        changes
            .owed
            .iter()
            .any(|&t| t as f64 > v2_running && (t as f64) < apply_began && (t / 60) % 2 != 0),
        "{backend}: no odd minute of changes was owed while v2 nodes ran before the apply"
    );
    assert!(
        changes
            .owed
            .iter()
            .any(|&t| t as f64 > apply_ended && (t / 60) % 2 == 0)
            && range
                .iter()
                .any(|&t| t as f64 > apply_ended + MARGIN && (t / 60) % 2 != 0),
        "{backend}: the boundaries after the apply do not include an even and an odd minute"
    );
    assert!(
        !new_only.owed.is_empty(),
        "{backend}: no fire time of new-only was owed"
    );
}

/// A status a row of a job that ran has: `succeeded`, or — when its node was stopped while
/// the job was still being recorded — `dispatched` or `abandoned`.
fn ran_status(status: &str) -> bool {
    matches!(status, "succeeded" | "dispatched" | "abandoned")
}
