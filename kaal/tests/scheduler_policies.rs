//! Per-job policies in the scheduler file: read with file-and-line errors, stored with the
//! definition by `apply_scheduler_file` / `commit_scheduler_file` on SQLite, read back with
//! `Definition::policy()`, and a changed policy is a change `kaal apply` writes.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use kaal::{
    apply_scheduler_file, commit_scheduler_file, connect, plan_scheduler_file, CatchUp, Config,
    Definition, Handlers, JobPolicy, Kaal, OnNodeLoss, Overlap, SchedulerFile,
};

const PATH: &str = "config/kaal-scheduler.yml";

fn file(jobs: &str) -> SchedulerFile {
    SchedulerFile::parse(
        &format!("defaults:\n  jobs:\n{jobs}"),
        Path::new(PATH),
        "development",
        "kaal",
    )
    .unwrap()
}

/// The problems of a file with `jobs`, one per line of the message.
fn problems(jobs: &str) -> Vec<String> {
    let err = SchedulerFile::parse(
        &format!("defaults:\n  jobs:\n{jobs}"),
        Path::new(PATH),
        "development",
        "kaal",
    )
    .unwrap_err();
    err.problems.iter().map(ToString::to_string).collect()
}

const REPORT: &str = "    - key: report
      cron: \"0 6 * * *\"
      command: [\"true\"]
      policy:
        overlap: skip
        catch_up: latest
        starting_deadline: 300
        timeout: 600
        retry: { max_attempts: 3, backoff: 10, max_backoff: 120 }
        jitter: 30
        time_zone: Europe/Berlin
        on_node_loss: rerun
    - key: plain
      cron: \"@hourly\"
      handler: plain
";

fn report_policy() -> JobPolicy {
    JobPolicy::new()
        .overlap(Overlap::Skip)
        .catch_up(CatchUp::Latest)
        .starting_deadline(Duration::from_secs(300))
        .timeout(Duration::from_secs(600))
        .retry(3, Duration::from_secs(10))
        .max_backoff(Duration::from_secs(120))
        .jitter(Duration::from_secs(30))
        .time_zone("Europe/Berlin")
        .on_node_loss(OnNodeLoss::Rerun)
}

fn sqlite_node(dir: &tempfile::TempDir) -> Kaal {
    let database = connect(dir.path().join("kaal.db").to_str().unwrap()).unwrap();
    database.run_migrations().unwrap();
    Kaal::new(Config::default(), database.adapter()).unwrap()
}

fn stored(kaal: &Kaal, key: &str) -> Definition {
    kaal.adapter()
        .definition_registry()
        .unwrap()
        .find_definition("kaal", key)
        .unwrap()
        .unwrap()
}

fn handlers() -> Handlers {
    let mut handlers = Handlers::new();
    handlers.add("plain", |_| Ok(()));
    handlers
}

#[test]
fn a_files_policies_are_stored_with_the_definitions_and_read_back() {
    let parsed = file(REPORT);
    assert_eq!(parsed.jobs[1].key, "report");
    assert_eq!(parsed.jobs[1].policy, report_policy());
    assert_eq!(parsed.jobs[0].policy, JobPolicy::default());

    let dir = tempfile::tempdir().unwrap();
    let kaal = sqlite_node(&dir);
    let report = apply_scheduler_file(&kaal, &parsed, &handlers()).unwrap();
    assert_eq!(report.added, ["plain", "report"]);
    assert_eq!(stored(&kaal, "report").policy().unwrap(), report_policy());
    // A job without a policy stores none: its metadata is what kaal wrote before policies.
    let plain = stored(&kaal, "plain");
    assert_eq!(plain.policy().unwrap(), JobPolicy::default());
    assert!(
        plain.metadata["kaal"].get("policy").is_none(),
        "{:?}",
        plain.metadata
    );

    // Another node (the same database, a fresh connection) reads the same policy.
    let other = sqlite_node(&dir);
    assert_eq!(stored(&other, "report").policy().unwrap(), report_policy());
}

#[test]
fn a_changed_policy_is_a_change_kaal_apply_writes_and_the_node_still_runs_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let kaal = sqlite_node(&dir);
    commit_scheduler_file(&kaal, &file(REPORT), false).unwrap();

    let edited = file(&REPORT.replace("overlap: skip", "overlap: queue_one"));
    let plan = plan_scheduler_file(&kaal, &edited).unwrap();
    assert_eq!(plan.changed.len(), 1, "{plan:?}");
    let (key, what) = &plan.changed[0];
    assert_eq!(key, "report");
    assert_eq!(what.len(), 1, "{what:?}");
    assert!(
        what[0].starts_with("policy {") && what[0].contains("\"queue_one\""),
        "{what:?}"
    );

    // A node started with the edited file binds the job (the stored policy is in force)
    // and reports the difference.
    let node = Kaal::new(
        Config {
            node_id: "edited".into(),
            ..Config::default()
        },
        kaal.adapter().clone(),
    )
    .unwrap();
    let report = apply_scheduler_file(&node, &edited, &handlers()).unwrap();
    assert!(report.bound.contains(&"report".to_string()), "{report:?}");
    assert!(report.not_run.is_empty(), "{report:?}");
    assert!(
        report.differences()[0].contains("policy"),
        "{:?}",
        report.differences()
    );
    assert_eq!(
        stored(&kaal, "report").policy().unwrap().overlap,
        Overlap::Skip
    );

    // `kaal apply` writes it; removing the policy is a change too, back to no policy.
    commit_scheduler_file(&kaal, &edited, false).unwrap();
    assert_eq!(
        stored(&kaal, "report").policy().unwrap(),
        report_policy().overlap(Overlap::QueueOne)
    );
    let without = file(
        "    - key: report\n      cron: \"0 6 * * *\"\n      command: [\"true\"]\n    - key: plain\n      cron: \"@hourly\"\n      handler: plain\n",
    );
    let plan = commit_scheduler_file(&kaal, &without, false).unwrap();
    assert_eq!(plan.changed[0].1, ["policy {\"catch_up\":\"latest\",\"jitter\":30,\"on_node_loss\":\"rerun\",\"overlap\":\"queue_one\",\"retry\":{\"max_attempts\":3,\"max_backoff\":120},\"starting_deadline\":300,\"time_zone\":\"Europe/Berlin\",\"timeout\":600} → (default)"]);
    let def = stored(&kaal, "report");
    assert_eq!(def.policy().unwrap(), JobPolicy::default());
    assert!(def.metadata["kaal"].get("policy").is_none());
    assert!(plan_scheduler_file(&kaal, &without).unwrap().is_empty());
}

#[test]
fn a_stored_policy_this_version_cannot_read_is_reported_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let kaal = sqlite_node(&dir);
    let store = kaal.adapter().definition_registry().unwrap();
    let mut new = kaal::NewDefinition::new("future", "@daily");
    new.metadata = serde_json::json!({"kaal": {"policy": {"overlap": "merge", "priority": 1}}})
        .as_object()
        .unwrap()
        .clone();
    store.upsert_definition("kaal", new).unwrap();
    // Every definition is still read; the unreadable policy is an error of its own.
    assert_eq!(store.all_definitions("kaal").unwrap().len(), 1);
    let err = stored(&kaal, "future").policy().unwrap_err();
    assert_eq!(err.key(), "overlap");
    assert!(err.to_string().contains("\"merge\""), "{err}");
}

#[test]
fn hostile_policies_are_errors_naming_the_file_line_key_and_fix() {
    let job = |policy: &str| {
        format!("    - key: j\n      cron: \"@daily\"\n      command: [\"true\"]\n      policy: {policy}\n")
    };
    // (policy, the line the problem is on, words the message must contain)
    let cases: &[(&str, usize, &[&str])] = &[
        ("{overlapp: skip}", 6, &["policy: unknown key \"overlapp\"", "did you mean \"overlap\"", "known: overlap, catch_up"]),
        ("{overlap: Skip}", 6, &["policy.overlap: expected one of \"allow\", \"skip\", \"queue_one\", found the string \"Skip\"", "did you mean \"skip\""]),
        ("{overlap: 1}", 6, &["policy.overlap", "found the number 1"]),
        ("{catch_up: [all]}", 6, &["policy.catch_up", "found a list"]),
        ("{on_node_loss: retry}", 6, &["policy.on_node_loss", "\"rerun\""]),
        ("{timeout: -5}", 6, &["policy.timeout: expected whole seconds from 1 to 315360000, found the number -5"]),
        ("{timeout: 0}", 6, &["policy.timeout", "from 1"]),
        ("{timeout: 1.5}", 6, &["policy.timeout", "the number 1.5"]),
        ("{timeout: 99999999999999999999}", 6, &["policy.timeout", "99999999999999999999"]),
        ("{timeout: 315360001}", 6, &["policy.timeout", "to 315360000"]),
        ("{timeout: '600'}", 6, &["policy.timeout", "the string \"600\""]),
        ("{jitter: 1e400}", 6, &["policy.jitter", "from 0"]),
        ("{starting_deadline: 10m}", 6, &["policy.starting_deadline", "the string \"10m\""]),
        ("{time_zone: Europe/Berln}", 6, &["policy.time_zone", "IANA", "did you mean \"Europe/Berlin\""]),
        ("{time_zone: 5}", 6, &["policy.time_zone", "as a string"]),
        ("{retry: 3}", 6, &["policy.retry: expected a mapping with the keys max_attempts, backoff, max_backoff"]),
        ("{retry: {max_attempts: 0}}", 6, &["policy.retry.max_attempts", "from 1 (no retry) to 100"]),
        ("{retry: {max_attempts: 1000}}", 6, &["policy.retry.max_attempts", "the number 1000"]),
        ("{retry: {attempts: 3}}", 6, &["policy.retry: unknown key \"attempts\"", "max_attempts"]),
        ("{retry: {backoff: 600}}", 6, &["policy.retry.backoff", "at most retry.max_backoff (300 s)", "raise max_backoff"]),
        ("{timeout: 5, timeout: 6}", 6, &["policy: duplicate key \"timeout\""]),
        ("{~: 1}", 6, &["policy: a key must be a string"]),
        ("[skip]", 6, &["policy: expected a mapping such as {overlap: skip, timeout: 600}, found a list"]),
        ("skip", 6, &["policy: expected a mapping", "found the string \"skip\""]),
        ("5", 6, &["policy: expected a mapping", "the number 5"]),
    ];
    for (policy, line, words) in cases {
        let found = problems(&job(policy));
        assert_eq!(found.len(), 1, "{policy}: {found:?}");
        let prefix = format!("{PATH}:{line}: job \"j\": ");
        assert!(found[0].starts_with(&prefix), "{policy}: {found:?}");
        for word in *words {
            assert!(
                found[0].contains(word),
                "{policy}: {found:?} lacks {word:?}"
            );
        }
    }

    // In block style each problem is on the line of its key, and every one is reported.
    let found = problems(
        "    - key: j\n      cron: \"@daily\"\n      handler: h\n      policy:\n        overlap: sometimes\n        retry:\n          max_attempts: -1\n        time_zone: Mars/Olympus\n",
    );
    let lines: Vec<&str> = found
        .iter()
        .map(|p| p.split(": job").next().unwrap())
        .collect();
    assert_eq!(
        lines,
        [
            format!("{PATH}:7"),
            format!("{PATH}:9"),
            format!("{PATH}:10")
        ],
        "{found:?}"
    );

    // Null and empty mean the default.
    for policy in ["~", "{}", "{overlap: ~, retry: ~}"] {
        let parsed = file(&job(policy));
        assert_eq!(parsed.jobs[0].policy, JobPolicy::default(), "{policy}");
    }
}
