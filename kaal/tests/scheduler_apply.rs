//! Applying a scheduler file through the library: what a starting node adds (new keys only)
//! and what `kaal apply` changes (everything, atomically), conflict policies, enabled state,
//! removed jobs, handler binding.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use kaal::chrono::{TimeZone, Utc};
use kaal::Adapter as _;
use kaal::{
    apply_scheduler_file, commit_scheduler_file, is_removed, job_from_definition,
    plan_scheduler_file, stored_metadata, ApplyError, Config, ConflictPolicy, DefinitionSource,
    Fire, Handlers, JobAction, Kaal, MemoryAdapter, SchedulerFile,
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
    kaal.register("shared", "0 * * * *", |_: &Fire| Ok(()))
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
fn conflict_policy_file_wins_overwrites_at_apply_and_code_wins_keeps_the_code_definition() {
    let kaal = node(ConflictPolicy::FileWins);
    register_in_code(&kaal);
    let report = apply_scheduler_file(&kaal, &file(SHARED), &Handlers::new()).unwrap();
    assert!(report.added.is_empty() && report.bound.is_empty());
    assert_eq!(report.not_run.len(), 1, "{report:?}");
    let store = kaal.adapter().definition_registry().unwrap();
    assert_eq!(
        store
            .find_definition("kaal", "shared")
            .unwrap()
            .unwrap()
            .source,
        DefinitionSource::Code,
        "a starting node does not replace a stored definition"
    );
    let plan = commit_scheduler_file(&kaal, &file(SHARED), false).unwrap();
    assert_eq!(plan.replaced_code, ["shared"]);
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
    let apply = |jobs: &str| commit_scheduler_file(&kaal, &file(jobs), false).unwrap();
    apply(SHARED);
    kaal.disable("shared").unwrap();
    let plan = apply(SHARED);
    assert_eq!(plan.kept_disabled, ["shared"]);
    assert!(plan.is_empty());
    apply_scheduler_file(&kaal, &file(SHARED), &Handlers::new()).unwrap();
    assert!(
        !store
            .find_definition("kaal", "shared")
            .unwrap()
            .unwrap()
            .enabled
    );

    let disabled_in_file = format!("{SHARED}      enabled: false\n");
    apply(&disabled_in_file);
    kaal.enable("shared").unwrap();
    apply(&disabled_in_file);
    assert!(
        store
            .find_definition("kaal", "shared")
            .unwrap()
            .unwrap()
            .enabled,
        "operator's enable kept"
    );
    apply(SHARED);
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
fn a_removed_job_is_kept_marked_removed_and_a_node_with_an_older_file_does_not_bring_it_back() {
    let kaal = node(ConflictPolicy::Error);
    kaal.register("from-code", "@hourly", |_: &Fire| Ok(()))
        .unwrap();
    let store = kaal.adapter().definition_registry().unwrap();
    commit_scheduler_file(&kaal, &file(SHARED), false).unwrap();
    let newer = file("    - key: replacement\n      cron: \"@daily\"\n      shell: \"true\"\n");
    let err = commit_scheduler_file(&kaal, &newer, false).unwrap_err();
    assert!(
        matches!(err, ApplyError::Refused(_))
            && err
                .to_string()
                .contains("would remove every stored job (shared)"),
        "{err}"
    );
    assert!(!is_removed(
        &store.find_definition("kaal", "shared").unwrap().unwrap()
    ));
    assert!(
        store
            .find_definition("kaal", "replacement")
            .unwrap()
            .is_none(),
        "refused: nothing written"
    );

    let plan = commit_scheduler_file(&kaal, &newer, true).unwrap();
    assert_eq!(
        (plan.added.as_slice(), plan.removed.as_slice()),
        (
            &["replacement".to_string()][..],
            &["shared".to_string()][..]
        )
    );
    let shared = store.find_definition("kaal", "shared").unwrap().unwrap();
    assert!(
        is_removed(&shared) && !shared.enabled,
        "kept disabled, marked removed"
    );
    assert_eq!(
        store
            .find_definition("kaal", "from-code")
            .unwrap()
            .unwrap()
            .source,
        DefinitionSource::Code,
        "code definitions are not the file's to remove"
    );

    // A node restarted with the older file: `shared` is not a new key, so it is neither
    // added back nor run.
    let old_node = node(ConflictPolicy::Error);
    let report = apply_scheduler_file(&kaal, &file(SHARED), &Handlers::new()).unwrap();
    assert!(
        report.added.is_empty() && report.bound.is_empty(),
        "{report:?}"
    );
    assert_eq!(report.not_run[0].0, "shared");
    assert!(is_removed(
        &store.find_definition("kaal", "shared").unwrap().unwrap()
    ));
    drop(old_node);

    // Applying a file that has it again restores it.
    let both = file(&format!(
        "{SHARED}    - key: replacement\n      cron: \"@daily\"\n      shell: \"true\"\n"
    ));
    assert_eq!(
        plan_scheduler_file(&kaal, &both).unwrap().restored,
        ["shared"]
    );
    commit_scheduler_file(&kaal, &both, false).unwrap();
    let shared = store.find_definition("kaal", "shared").unwrap().unwrap();
    assert!(!is_removed(&shared) && shared.enabled);
}

#[test]
fn an_empty_file_is_refused_and_stored_jobs_stay() {
    let kaal = node(ConflictPolicy::Error);
    commit_scheduler_file(&kaal, &file(SHARED), false).unwrap();
    let empty = SchedulerFile::parse(
        "defaults:\n  jobs: []\n",
        Path::new("kaal-scheduler.yml"),
        "development",
        "kaal",
    )
    .unwrap();
    let err = commit_scheduler_file(&kaal, &empty, false).unwrap_err();
    assert!(err.to_string().contains("defines no jobs"), "{err}");
    let stored = kaal
        .adapter()
        .definition_registry()
        .unwrap()
        .all_definitions("kaal")
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert!(stored[0].enabled && !is_removed(&stored[0]));
}

/// Two nodes with different files (a rolling deploy): neither one's start deletes, rewrites
/// or re-enables the other's jobs; each adds its new keys, runs what matches, and reports
/// the rest.
#[test]
fn nodes_with_different_files_do_not_undo_each_other() {
    let store = Arc::new(MemoryAdapter::new());
    let node_on = |id: &str| {
        let config = Config {
            node_id: id.into(),
            ..Config::default()
        };
        Kaal::new(config, store.clone()).unwrap()
    };
    let old_file = file(&format!(
        "{SHARED}    - key: legacy\n      cron: \"@hourly\"\n      shell: \"true\"\n"
    ));
    let new_file = file(
        "    - key: shared\n      cron: \"*/10 * * * *\"\n      command: [\"true\"]\n    - key: added\n      cron: \"@daily\"\n      shell: \"true\"\n",
    );
    let old = node_on("old");
    commit_scheduler_file(&old, &old_file, false).unwrap();
    old.disable("legacy").unwrap();
    let new = node_on("new");
    let report = apply_scheduler_file(&new, &new_file, &Handlers::new()).unwrap();
    assert_eq!(report.added, ["added"]);
    assert_eq!(
        report.plan.changed.len(),
        1,
        "shared's cron differs: {report:?}"
    );
    assert_eq!(report.plan.removed, ["legacy"], "reported, not removed");
    assert!(
        report.bound.contains(&"shared".to_string()),
        "same command: runs the stored cron"
    );
    let defs = store.definition_registry().unwrap();
    let shared = defs.find_definition("kaal", "shared").unwrap().unwrap();
    assert_eq!(
        shared.cron, "*/5 * * * *",
        "a starting node does not rewrite a cron"
    );
    let legacy = defs.find_definition("kaal", "legacy").unwrap().unwrap();
    assert!(
        !legacy.enabled && !is_removed(&legacy),
        "still there, still disabled"
    );

    let report = apply_scheduler_file(&node_on("old-again"), &old_file, &Handlers::new()).unwrap();
    assert!(report.added.is_empty());
    assert_eq!(
        report.plan.removed,
        ["added"],
        "the older file lacks it: reported only"
    );
    assert!(defs.find_definition("kaal", "added").unwrap().is_some());
    assert!(
        !defs
            .find_definition("kaal", "legacy")
            .unwrap()
            .unwrap()
            .enabled,
        "operator's disable kept"
    );
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
        Ok(())
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

/// A running node whose file was not redeployed stops running a job once another node's
/// `kaal apply` changes its command or removes it, and runs it again once the database
/// holds its command again.
#[test]
fn a_running_node_unbinds_a_job_whose_command_another_apply_changed_and_binds_it_back() {
    let store = Arc::new(MemoryAdapter::new());
    let node_on = |id: &str| {
        let config = Config {
            node_id: id.into(),
            ..Config::default()
        };
        Kaal::new(config, store.clone()).unwrap()
    };
    let old_file = file(SHARED);
    let new_file =
        file("    - key: shared\n      cron: \"*/5 * * * *\"\n      command: [\"new-binary\"]\n");
    let running = node_on("running");
    let report = apply_scheduler_file(&running, &old_file, &Handlers::new()).unwrap();
    assert_eq!(report.bound, ["shared"]);
    let handlers = Handlers::new();
    assert_eq!(
        kaal::rebind_scheduler_file(&running, &old_file, &handlers).unwrap(),
        kaal::Rebound::default(),
        "nothing changed, nothing to do"
    );

    commit_scheduler_file(&node_on("deployer"), &new_file, false).unwrap();
    let rebound = kaal::rebind_scheduler_file(&running, &old_file, &handlers).unwrap();
    assert_eq!(rebound.unbound, ["shared"]);
    assert!(!running.registry().is_registered("shared"));

    commit_scheduler_file(&node_on("rollback"), &old_file, false).unwrap();
    let rebound = kaal::rebind_scheduler_file(&running, &old_file, &handlers).unwrap();
    assert_eq!(rebound.bound, ["shared"]);
    assert!(running.registry().is_registered("shared"));
}
