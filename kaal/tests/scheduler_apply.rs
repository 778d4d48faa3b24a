//! Applying a scheduler file through the library: conflict policies, enabled state, removed
//! jobs, handler binding.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use kaal::chrono::{TimeZone, Utc};
use kaal::{
    apply_scheduler_file, job_from_definition, stored_metadata, ApplyError, Config, ConflictPolicy,
    DefinitionSource, Fire, Handlers, JobAction, Kaal, MemoryAdapter, SchedulerFile,
};

fn node(policy: ConflictPolicy) -> Kaal {
    let config = Config {
        scheduler_conflict_policy: policy,
        ..Config::default()
    };
    Kaal::new(config, Arc::new(MemoryAdapter::new())).unwrap()
}

fn file(jobs: &str) -> SchedulerFile {
    SchedulerFile::parse(
        &format!("defaults:\n  jobs:\n{jobs}"),
        Path::new("kaal-scheduler.yml"),
        "development",
        "kaal",
    )
    .unwrap()
}

const SHARED: &str = "    - key: shared\n      cron: \"*/5 * * * *\"\n      command: [\"true\"]\n";

fn register_in_code(kaal: &Kaal) {
    kaal.register("shared", "0 * * * *", |_: &Fire| {
        Ok::<(), std::io::Error>(())
    })
    .unwrap();
}

#[test]
fn conflict_policy_error_refuses_with_the_line_and_writes_nothing() {
    let kaal = node(ConflictPolicy::Error);
    register_in_code(&kaal);
    let jobs = file(&format!(
        "    - key: other\n      cron: \"@daily\"\n      command: [\"true\"]\n{SHARED}"
    ));
    let err = apply_scheduler_file(&kaal, &jobs, &Handlers::new()).unwrap_err();
    assert!(matches!(err, ApplyError::Conflict(_)));
    assert!(
        err.to_string()
            .starts_with("kaal-scheduler.yml:6: job \"shared\" is also registered in code"),
        "{err}"
    );
    let store = kaal.adapter().definition_registry().unwrap();
    assert!(
        store.find_definition("kaal", "other").unwrap().is_none(),
        "nothing written"
    );
    assert_eq!(
        store
            .find_definition("kaal", "shared")
            .unwrap()
            .unwrap()
            .cron,
        "0 * * * *"
    );
}

#[test]
fn conflict_policy_file_wins_overwrites_and_code_wins_keeps_the_code_definition() {
    let kaal = node(ConflictPolicy::FileWins);
    register_in_code(&kaal);
    let report = apply_scheduler_file(&kaal, &file(SHARED), &Handlers::new()).unwrap();
    assert_eq!(report.stored, ["shared"]);
    let def = kaal
        .adapter()
        .definition_registry()
        .unwrap()
        .find_definition("kaal", "shared")
        .unwrap()
        .unwrap();
    assert_eq!(
        (def.cron.as_str(), def.source),
        ("*/5 * * * *", DefinitionSource::File)
    );

    let kaal = node(ConflictPolicy::CodeWins);
    register_in_code(&kaal);
    let report = apply_scheduler_file(&kaal, &file(SHARED), &Handlers::new()).unwrap();
    assert_eq!(report.kept_code, ["shared"]);
    assert!(report.bound.is_empty());
    let def = kaal
        .adapter()
        .definition_registry()
        .unwrap()
        .find_definition("kaal", "shared")
        .unwrap()
        .unwrap();
    assert_eq!(
        (def.cron.as_str(), def.source),
        ("0 * * * *", DefinitionSource::Code)
    );
}

#[test]
fn an_operators_disable_survives_reapplying_but_a_changed_file_value_wins() {
    let kaal = node(ConflictPolicy::Error);
    let store = kaal.adapter().definition_registry().unwrap();
    apply_scheduler_file(&kaal, &file(SHARED), &Handlers::new()).unwrap();
    kaal.disable("shared").unwrap();
    apply_scheduler_file(&kaal, &file(SHARED), &Handlers::new()).unwrap();
    assert!(
        !store
            .find_definition("kaal", "shared")
            .unwrap()
            .unwrap()
            .enabled
    );

    let disabled_in_file = format!("{SHARED}      enabled: false\n");
    apply_scheduler_file(&kaal, &file(&disabled_in_file), &Handlers::new()).unwrap();
    kaal.enable("shared").unwrap();
    apply_scheduler_file(&kaal, &file(&disabled_in_file), &Handlers::new()).unwrap();
    assert!(
        store
            .find_definition("kaal", "shared")
            .unwrap()
            .unwrap()
            .enabled,
        "operator's enable kept"
    );
    apply_scheduler_file(&kaal, &file(SHARED), &Handlers::new()).unwrap();
    assert!(
        store
            .find_definition("kaal", "shared")
            .unwrap()
            .unwrap()
            .enabled,
        "file says enabled again"
    );
}

#[test]
fn jobs_removed_from_the_file_are_deleted_but_code_definitions_stay() {
    let kaal = node(ConflictPolicy::Error);
    kaal.register("from-code", "@hourly", |_: &Fire| {
        Ok::<(), std::io::Error>(())
    })
    .unwrap();
    apply_scheduler_file(&kaal, &file(SHARED), &Handlers::new()).unwrap();
    let report = apply_scheduler_file(
        &kaal,
        &file("    - key: replacement\n      cron: \"@daily\"\n      shell: \"true\"\n"),
        &Handlers::new(),
    )
    .unwrap();
    assert_eq!(report.removed, ["shared"]);
    let keys: Vec<String> = kaal
        .adapter()
        .definition_registry()
        .unwrap()
        .all_definitions("kaal")
        .unwrap()
        .into_iter()
        .map(|d| d.key)
        .collect();
    assert_eq!(keys, ["from-code", "replacement"]);
}

#[test]
fn handler_jobs_run_the_named_callback_and_unknown_handlers_stay_unbound() {
    let kaal = node(ConflictPolicy::Error);
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let mut handlers = Handlers::new();
    handlers.add("weekly_summary", move |fire: &Fire| {
        assert_eq!(
            fire.idempotency_key,
            format!("kaal-summary-{}", fire.fire_time.timestamp())
        );
        seen.fetch_add(1, Ordering::SeqCst);
        Ok::<(), std::io::Error>(())
    });
    let jobs = file(
        "    - key: summary\n      cron: \"@weekly\"\n      handler: weekly_summary\n      metadata: { team: ops }\n    - key: elsewhere\n      cron: \"@daily\"\n      handler: not_here\n",
    );
    let report = apply_scheduler_file(&kaal, &jobs, &handlers).unwrap();
    assert_eq!(report.bound, ["summary"]);
    assert_eq!(report.unbound, ["elsewhere"]);
    let tick = kaal.tick_at(Utc.with_ymd_and_hms(2026, 1, 4, 0, 0, 30).unwrap()); // Sunday
    assert_eq!(tick.dispatched.len(), 1);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let def = kaal
        .adapter()
        .definition_registry()
        .unwrap()
        .find_definition("kaal", "summary")
        .unwrap()
        .unwrap();
    assert_eq!(def.metadata["team"], "ops");
    assert_eq!(def.metadata["kaal"]["handler"], "weekly_summary");
}

#[test]
fn stored_metadata_round_trips_to_the_same_job() {
    let jobs = file(
        "    - key: backup\n      cron: \"0 3 * * *\"\n      command: [\"backup\", \"--at\", \"{{fire_time.iso8601}}\"]\n      env: { TARGET: \"s3://b/{{key}}\" }\n      working_dir: /srv\n      timeout: 600\n      metadata: { owner: ops }\n",
    );
    let job = &jobs.jobs[0];
    let metadata = stored_metadata(job);
    assert_eq!(metadata["kaal"]["command"][2], "{{fire_time.iso8601}}");
    assert_eq!(metadata["kaal"]["timeout"], 600);
    let def = kaal::Definition {
        key: job.key.clone(),
        cron: job.cron.clone(),
        enabled: true,
        source: DefinitionSource::File,
        metadata,
        created_at: Utc::now(),
        updated_at: Utc::now(),
        disabled_at: None,
        schedule_since: Utc::now(),
    };
    let rebuilt = job_from_definition(&def).unwrap();
    assert_eq!(rebuilt.action, job.action);
    assert_eq!(rebuilt.metadata, job.metadata);
    assert!(matches!(rebuilt.action, JobAction::Command(_)));
}

#[test]
fn environment_jobs_replace_the_defaults_job_with_the_same_key() {
    let text = "defaults:\n  jobs:\n    - key: a\n      cron: \"@daily\"\n      shell: \"echo d\"\n    - key: b\n      cron: \"@daily\"\n      shell: \"echo b\"\nproduction:\n  jobs:\n    - key: a\n      cron: \"@hourly\"\n      shell: \"echo p\"\n";
    let path = Path::new("s.yml");
    let dev = SchedulerFile::parse(text, path, "development", "kaal").unwrap();
    assert_eq!(
        dev.jobs.iter().map(|j| j.cron.as_str()).collect::<Vec<_>>(),
        ["@daily", "@daily"]
    );
    let prod = SchedulerFile::parse(text, path, "production", "kaal").unwrap();
    assert_eq!(
        prod.jobs
            .iter()
            .map(|j| j.cron.as_str())
            .collect::<Vec<_>>(),
        ["@hourly", "@daily"]
    );
}
