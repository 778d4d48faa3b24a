//! Fleet test of the release CLI, the restart storm: three `kaal start` processes with fixed
//! node ids on one database, restarted round-robin twenty times over about 78 s, must run
//! every fire time the job owes exactly once and nothing from before the job existed.
//!
//! Real processes, real databases, one test per backend: SQLite (a file in a temporary
//! directory), PostgreSQL (`--features postgres`, server `KAAL_POSTGRES_URL`) and MySQL /
//! MariaDB (`--features mysql`, server `KAAL_MYSQL_URL`); see `common/databases.rs`. An
//! unreachable server fails its test; nothing is skipped.
//!
//! The scenario, per backend:
//! * one project: `tick_interval: 1`, `recovery_startup_jitter: 0`, `node_timeout: 3` (the
//!   minimum), `node_id` from the process environment, and one job `every-minute` whose shell
//!   appends `<fire_time.unix> <pid of the kaal node>` to `out/every-minute.log`;
//! * the first node's start stores the job; its `schedule_since` (when its schedule came into
//!   force) is read back from the database: the owed fire times are the whole minutes after
//!   it;
//! * two more nodes start and all three run calmly until second 45 of a minute (when the
//!   test began later in the minute, the storm begins at once); then 20 restarts,
//!   round-robin, evenly over 78 s, so two minute boundaries fall inside the storm, and the
//!   restart nearest each of them is made on the boundary itself (its recovery pass races
//!   the other nodes' ticks for that fire time). A restart sends SIGTERM, waits for the
//!   exit (the node deregisters) and starts the same node id again, waiting until it has
//!   run its recovery pass;
//! * all three then run until one more minute boundary has passed, plus 8 s, and stop.
//!
//! Checked: each owed fire time up to that last boundary ran exactly once (the job's file and
//! the dispatch log agree), none before `schedule_since` or after the last boundary ran, every
//! process ran one recovery pass and stopped with exit 0 and no error logged, no restarted
//! node waited for its predecessor's registration, and the restarts kept `schedule_since`.
//! The figures are printed for the CI log.
//!
//! The test takes 2 to a little over 3 minutes (`188 s - the second of the minute it began
//! at`), mostly waiting for the clock; the backends run at once, in threads. Run it with
//! `cargo test -p kaal --features postgres,mysql --test fleet_restart_storm -- --nocapture`.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::thread;
use std::time::{Duration, Instant};

use common::databases::{Backend, Database};
use common::node::{
    dispatch_rows, instant, sleep_until_unix, stored_instant, unix_now, Life, Node,
};
use common::{sorted_lines, Project};
use kaal::chrono::{DateTime, Utc};

/// The one job: appends its fire time and the pid of the node that ran it (the shell's
/// parent).
const JOBS: &str = "\
defaults:
  jobs:
    - key: every-minute
      cron: \"* * * * *\"
      shell: \"echo {{fire_time.unix}} $PPID >> out/every-minute.log\"
";

/// The fixed node ids: a restarted node comes back under its own.
const NODE_IDS: [&str; 3] = ["storm-a", "storm-b", "storm-c"];

/// How many restarts the storm makes, and over how many seconds.
const RESTARTS: u32 = 20;
const STORM: f64 = 78.0;

/// The earliest second of a minute the storm begins at: late enough that a 78 s storm
/// covers two minute boundaries (the second 3 s before its end).
const STORM_FROM: f64 = 45.0;

/// How long after the last minute boundary the nodes keep running before the check.
const AFTER_LAST_BOUNDARY: f64 = 8.0;

/// The storm on every backend this build includes, at once (one test, one thread per
/// backend: the scenario mostly waits for the clock, and separate tests would run only two
/// at a time on a two-core machine). A failure names its backend.
#[test]
fn restart_storm_runs_each_owed_fire_time_once_on_every_backend() {
    let mut backends = vec![Backend::Sqlite];
    if cfg!(feature = "postgres") {
        backends.push(Backend::Postgres);
    }
    if cfg!(feature = "mysql") {
        backends.push(Backend::Mysql);
    }
    let runs: Vec<_> = backends
        .into_iter()
        .map(|backend| (backend, thread::spawn(move || restart_storm(backend))))
        .collect();
    let failed: Vec<String> = runs
        .into_iter()
        .filter_map(|(backend, run)| run.join().err().map(|_| format!("{backend:?}")))
        .collect();
    assert!(
        failed.is_empty(),
        "the restart storm failed on {}",
        failed.join(", ")
    );
}

/// One `kaal start` of node `id`.
fn start(project: &Project, id: &'static str) -> Node {
    let mut command = project.command(&["start"]);
    command.env("STORM_NODE_ID", id);
    Node::spawn(command, id, "current")
}

/// A minute's fire time as `HH:MM`.
fn minute(unix: i64) -> String {
    DateTime::<Utc>::from_timestamp(unix, 0)
        .unwrap()
        .format("%H:%M")
        .to_string()
}

/// The one stored definition's `schedule_since` and `created_at`, as Unix seconds.
fn stored_since(db: &Database) -> (f64, f64) {
    let count = db.scalar("SELECT COUNT(*) FROM kaal_definitions");
    assert_eq!(count.trim(), "1", "expected one stored definition");
    (
        stored_instant(
            &db.scalar("SELECT schedule_since FROM kaal_definitions"),
            "schedule_since",
        ),
        stored_instant(
            &db.scalar("SELECT created_at FROM kaal_definitions"),
            "created_at",
        ),
    )
}

/// When each restart is due (Unix seconds) for a storm beginning at `began`: evenly spaced,
/// the last at the end, except that the one nearest each minute boundary inside the storm
/// is due on the boundary (a move of at most half the spacing, so the order holds).
fn restart_plan(began: f64) -> Vec<f64> {
    let mut plan: Vec<f64> = (1..=RESTARTS)
        .map(|k| began + STORM * f64::from(k) / f64::from(RESTARTS))
        .collect();
    let first = (began / 60.0).floor() as i64 + 1;
    let last = ((began + STORM) / 60.0).floor() as i64;
    for boundary in (first..=last).map(|m| (m * 60) as f64) {
        let nearest = (0..plan.len())
            .min_by(|&a, &b| {
                (plan[a] - boundary)
                    .abs()
                    .total_cmp(&(plan[b] - boundary).abs())
            })
            .unwrap();
        plan[nearest] = boundary;
    }
    plan
}

fn restart_storm(backend: Backend) {
    let began = Instant::now();
    let db = Database::create(backend, "storm");
    let project = Project::new();
    project.write_config(&format!(
        "defaults:
  database_url: {}
  tick_interval: 1
  recovery_startup_jitter: 0
  node_timeout: 3
  node_id: ${{STORM_NODE_ID:-storm-admin}}
",
        db.url()
    ));
    project.write("kaal-scheduler.yml", JOBS);
    std::fs::create_dir_all(project.path("out")).unwrap();
    if !backend.migrates_on_start() {
        project.run(&["migrate"]).ok();
    }

    // The first start stores the job: its schedule is in force from then on.
    let mut lives: Vec<Life> = Vec::new();
    let before_first = unix_now();
    let mut nodes: Vec<Node> = vec![start(&project, NODE_IDS[0])];
    nodes[0].ready();
    let after_first = unix_now();
    let (since, created) = stored_since(&db);
    assert!(
        before_first - 0.01 <= since && since <= after_first + 0.01,
        "schedule_since {} is not within the first start ({} .. {})",
        instant(since),
        instant(before_first),
        instant(after_first)
    );
    assert_eq!(
        since, created,
        "a new job's schedule is in force from its creation"
    );
    for id in &NODE_IDS[1..] {
        let mut node = start(&project, id);
        node.ready();
        nodes.push(node);
    }

    // The storm covers two minute boundaries: it begins at second STORM_FROM of a minute at
    // the earliest (the nodes run calmly until then), and the restart nearest each boundary
    // inside it is moved onto the boundary itself, so a restarted node's recovery pass races
    // the other nodes' ticks for that fire time.
    let now = unix_now();
    let storm_began_unix = if now % 60.0 < STORM_FROM {
        (now / 60.0).floor() * 60.0 + STORM_FROM
    } else {
        now
    };
    sleep_until_unix(storm_began_unix);
    let plan = restart_plan(storm_began_unix);
    let mut longest_restart = Duration::ZERO;
    for (k, due) in plan.iter().enumerate() {
        sleep_until_unix(*due);
        let slot = k % NODE_IDS.len();
        let restart_began = Instant::now();
        lives.push(nodes.remove(slot).stop());
        let mut node = start(&project, NODE_IDS[slot]);
        node.ready();
        nodes.insert(slot, node);
        longest_restart = longest_restart.max(restart_began.elapsed());
    }
    let storm_ended_unix = unix_now();

    // All three run on until one more minute boundary has passed, plus a few ticks.
    let last_boundary = (storm_ended_unix / 60.0).floor() as i64 * 60 + 60;
    sleep_until_unix(last_boundary as f64 + AFTER_LAST_BOUNDARY);
    lives.extend(nodes.into_iter().map(Node::stop));
    let stopped_unix = unix_now();
    assert!(
        stopped_unix < last_boundary as f64 + 60.0,
        "the stop took until {}, past the next boundary",
        instant(stopped_unix)
    );
    let (since_after, _) = stored_since(&db);

    // What ran: fire time -> pids of the nodes that ran it.
    let mut runs: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
    let file = sorted_lines(&project.path("out/every-minute.log"));
    for line in &file {
        let mut fields = line.split(' ');
        let fire: i64 = fields.next().unwrap().parse().unwrap();
        let pid: u32 = fields.next().unwrap_or("0").parse().unwrap_or(0);
        runs.entry(fire).or_default().push(pid);
    }
    let owed: Vec<i64> = ((since / 60.0).floor() as i64..=last_boundary / 60)
        .map(|m| m * 60)
        .filter(|&t| t as f64 > since)
        .collect();
    let duplicates: Vec<(i64, &Vec<u32>)> = runs
        .iter()
        .filter(|(_, pids)| pids.len() > 1)
        .map(|(t, pids)| (*t, pids))
        .collect();
    let missing: Vec<i64> = owed
        .iter()
        .copied()
        .filter(|t| !runs.contains_key(t))
        .collect();
    let before_creation: Vec<i64> = runs
        .keys()
        .copied()
        .filter(|&t| (t as f64) < since)
        .collect();
    let after_last: Vec<i64> = runs
        .keys()
        .copied()
        .filter(|&t| t > last_boundary)
        .collect();
    let boundaries_in_storm = ((storm_began_unix / 60.0).floor() as i64 + 1
        ..=(storm_ended_unix / 60.0).floor() as i64)
        .count();
    let node_of = |pid: u32| {
        lives
            .iter()
            .find(|life| life.pid == pid)
            .map_or("an unknown process", |life| life.id)
    };
    let mut by_node: BTreeMap<&str, usize> = BTreeMap::new();
    for pid in runs.values().flatten() {
        *by_node.entry(node_of(*pid)).or_default() += 1;
    }

    // The dispatch log, as `kaal dispatches` shows it: one row per fire time.
    let table = project.run(&["dispatches", "--key", "every-minute", "--limit", "1000"]);
    let logged = dispatch_rows(table.ok());

    let waits: Vec<String> = lives
        .iter()
        .flat_map(|life| {
            life.lines
                .iter()
                .filter(|l| l.contains("for that registration to expire"))
                .map(move |l| format!("{} (pid {}): {l}", life.id, life.pid))
        })
        .collect();
    let logged_at = |level: &'static str| -> Vec<String> {
        lives
            .iter()
            .flat_map(|life| {
                life.lines
                    .iter()
                    .filter(move |l| l.contains(level))
                    .map(move |l| format!("{} (pid {}): {l}", life.id, life.pid))
            })
            .collect()
    };
    let errors = logged_at(" ERROR ");
    let warnings = logged_at(" WARN ");
    // Each process's recovery pass: "recovery: N dispatched, N already dispatched, N claimed
    // elsewhere, N errors", summed.
    let mut recovery = [0usize; 4];
    let mut passes = 0;
    for line in lives.iter().flat_map(|life| &life.lines) {
        if let Some(counts) = line.split("recovery: ").nth(1) {
            passes += 1;
            for (sum, field) in recovery.iter_mut().zip(counts.split(", ")) {
                *sum += field.split(' ').next().unwrap().parse::<usize>().unwrap();
            }
        }
    }
    let failed_exits: Vec<String> = lives
        .iter()
        .filter(|life| life.status.code() != Some(0))
        .map(|life| format!("{} (pid {}): {}", life.id, life.pid, life.status))
        .collect();
    let job_lines: Vec<String> = lives
        .iter()
        .flat_map(|life| {
            life.lines
                .iter()
                .filter(|l| l.contains("[every-minute] fire time") || l.contains("recovery:"))
                .map(move |l| format!("{} (pid {}): {l}", life.id, life.pid))
        })
        .collect();

    let mut figures = vec![format!("restart storm on {backend}:")];
    figures.push(format!(
        "  {} processes of {} nodes; {RESTARTS} restarts over {:.1} s ({boundaries_in_storm} minute boundaries inside the storm), longest restart {:.2} s",
        lives.len(),
        NODE_IDS.len(),
        storm_ended_unix - storm_began_unix,
        longest_restart.as_secs_f64()
    ));
    figures.push(format!(
        "  job stored (schedule_since) at {}, last boundary {}, stopped at {}",
        instant(since),
        instant(last_boundary as f64),
        instant(stopped_unix)
    ));
    figures.push(format!(
        "  owed fire times: {} ({}); runs: {} ({}); duplicates: {}; missing: {}; before creation: {}; after the last boundary: {}",
        owed.len(),
        owed.iter().map(|t| minute(*t)).collect::<Vec<_>>().join(" "),
        runs.values().map(Vec::len).sum::<usize>(),
        runs.keys().map(|t| minute(*t)).collect::<Vec<_>>().join(" "),
        duplicates.len(),
        missing.len(),
        before_creation.len(),
        after_last.len()
    ));
    let earliest = match runs.keys().next() {
        Some(first) => format!(
            "  earliest run: fire time {} vs creation {} ({:+.3} s)",
            instant(*first as f64),
            instant(since),
            *first as f64 - since
        ),
        None => format!("  earliest run: none (created {})", instant(since)),
    };
    figures.push(earliest);
    figures.push(format!(
        "  runs by node: {}; dispatch log rows: {}",
        by_node
            .iter()
            .map(|(id, n)| format!("{id} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        logged.len()
    ));
    figures.push(format!(
        "  recovery passes: {passes}, which dispatched {}, found {} already dispatched, {} claimed elsewhere, {} errors",
        recovery[0], recovery[1], recovery[2], recovery[3]
    ));
    figures.push(format!(
        "  registration waits on restart: {}; warnings logged: {}; errors logged: {}",
        waits.len(),
        warnings.len(),
        errors.len()
    ));
    figures.push(format!(
        "  wall clock: {:.1} s",
        began.elapsed().as_secs_f64()
    ));
    for line in warnings.iter().chain(&errors) {
        figures.push(format!("  logged: {line}"));
    }
    common::show_figures(&figures);

    let evidence = format!(
        "{backend}: file {file:?}\ndispatch log {logged:?}\nnode lines:\n{}",
        job_lines.join("\n")
    );
    assert!(
        failed_exits.is_empty(),
        "nodes exited with failure: {failed_exits:?}\n{evidence}"
    );
    assert!(
        duplicates.is_empty(),
        "fire times ran more than once (fire time, pids): {duplicates:?}\n{evidence}"
    );
    assert!(
        missing.is_empty(),
        "owed fire times never ran: {:?}\n{evidence}",
        missing
            .iter()
            .map(|t| instant(*t as f64))
            .collect::<Vec<_>>()
    );
    assert!(
        before_creation.is_empty(),
        "fire times from before the job was stored ({}) ran: {:?}\n{evidence}",
        instant(since),
        before_creation
            .iter()
            .map(|t| instant(*t as f64))
            .collect::<Vec<_>>()
    );
    assert!(
        after_last.is_empty(),
        "fire times after the last boundary ran: {after_last:?}\n{evidence}"
    );
    assert!(
        boundaries_in_storm >= 2,
        "the storm covered {boundaries_in_storm} minute boundaries, not two"
    );
    assert!(
        !owed.is_empty(),
        "no fire time was owed: the test checked nothing"
    );
    let logged_times: Vec<i64> = logged.iter().map(|(t, _, _)| *t).collect();
    let ran_times: Vec<i64> = runs.keys().copied().collect();
    assert_eq!(
        logged_times, ran_times,
        "the dispatch log and the job's file disagree\n{evidence}"
    );
    assert!(
        logged
            .iter()
            .all(|(_, status, _)| matches!(status.as_str(), "succeeded" | "dispatched" | "abandoned")),
        "a dispatch log row is not a run (succeeded, or dispatched / abandoned when its node died while recording it): {logged:?}"
    );
    assert!(
        logged
            .iter()
            .all(|(t, _, node)| runs[t].iter().any(|pid| node_of(*pid) == node)),
        "the dispatch log names another node than the one that ran the job: {logged:?} vs {runs:?}"
    );
    assert_eq!(passes, lives.len(), "every process runs one recovery pass");
    assert!(
        errors.is_empty() && recovery[3] == 0,
        "the nodes logged errors:\n{}",
        errors.join("\n")
    );
    assert!(
        waits.is_empty(),
        "a node stopped with SIGTERM left its registration behind: its restart waited\n{}",
        waits.join("\n")
    );
    assert_eq!(
        since_after, since,
        "the restarts moved schedule_since (re-applying an unchanged file must keep it)"
    );
}
