//! The `Kaal` facade: registration, conflict policy with file definitions, rollback, and
//! the helpers around dispatch.
#![allow(clippy::unwrap_used)] // tests state their expectations with unwrap

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use kaal_core::{
    Adapter, Config, ConflictPolicy, DefinitionSource, Fire, JobError, JobPolicy, Kaal,
    MemoryAdapter, NewDefinition, NullAdapter, OnNodeLoss, Overlap, RegistrationError,
};

fn ok(_: &Fire) -> Result<(), JobError> {
    Ok(())
}

fn kaal_with(policy: ConflictPolicy) -> (Kaal, Arc<MemoryAdapter>) {
    let adapter = Arc::new(MemoryAdapter::new());
    let config = Config {
        scheduler_conflict_policy: policy,
        ..Config::default()
    };
    (Kaal::new(config, adapter.clone()).unwrap(), adapter)
}

fn store_file_job(adapter: &MemoryAdapter, key: &str, cron: &str) {
    let mut def = NewDefinition::new(key, cron);
    def.source = DefinitionSource::File;
    adapter
        .definition_registry()
        .unwrap()
        .upsert_definition("kaal", def)
        .unwrap();
}

#[test]
fn register_persists_a_code_definition_and_unregister_removes_it() {
    let (kaal, adapter) = kaal_with(ConflictPolicy::Error);
    kaal.register("reports", "@hourly", ok).unwrap();
    assert!(kaal.registered("reports"));
    assert_eq!(kaal.registered_keys(), ["reports"]);
    let stored = adapter
        .definition_registry()
        .unwrap()
        .find_definition("kaal", "reports")
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored.cron.as_str(), stored.source, stored.enabled),
        ("@hourly", DefinitionSource::Code, true)
    );
    let err = kaal.register("reports", "@daily", ok).unwrap_err();
    assert!(matches!(err, RegistrationError::Duplicate(_)), "{err}");
    assert_eq!(
        adapter
            .definition_registry()
            .unwrap()
            .find_definition("kaal", "reports")
            .unwrap()
            .unwrap()
            .cron,
        "@hourly"
    );
    assert!(kaal.unregister("reports").unwrap());
    assert!(!kaal.registered("reports"));
    assert!(adapter
        .definition_registry()
        .unwrap()
        .find_definition("kaal", "reports")
        .unwrap()
        .is_none());
    assert!(!kaal.unregister("reports").unwrap());
}

#[test]
fn file_conflict_with_policy_error_is_refused_and_stores_nothing() {
    let (kaal, adapter) = kaal_with(ConflictPolicy::Error);
    store_file_job(&adapter, "sync", "*/5 * * * *");
    let err = kaal.register("sync", "* * * * *", ok).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("sync")
            && message.contains("*/5 * * * *")
            && message.contains("code_wins"),
        "{message}"
    );
    assert!(!kaal.registered("sync"));
    let stored = adapter
        .definition_registry()
        .unwrap()
        .find_definition("kaal", "sync")
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored.cron.as_str(), stored.source),
        ("*/5 * * * *", DefinitionSource::File)
    );
}

#[test]
fn file_conflict_with_code_wins_stores_the_code_cron() {
    let (kaal, adapter) = kaal_with(ConflictPolicy::CodeWins);
    store_file_job(&adapter, "sync", "*/5 * * * *");
    kaal.register("sync", "* * * * *", ok).unwrap();
    let stored = adapter
        .definition_registry()
        .unwrap()
        .find_definition("kaal", "sync")
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored.cron.as_str(), stored.source),
        ("* * * * *", DefinitionSource::Code)
    );
}

#[test]
fn file_conflict_with_file_wins_keeps_the_file_cron_and_dispatches_on_it() {
    let (kaal, adapter) = kaal_with(ConflictPolicy::FileWins);
    store_file_job(&adapter, "sync", "0 */2 * * *");
    kaal.register("sync", "* * * * *", ok).unwrap();
    let stored = adapter
        .definition_registry()
        .unwrap()
        .find_definition("kaal", "sync")
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored.cron.as_str(), stored.source),
        ("0 */2 * * *", DefinitionSource::File)
    );
    let at = |h, m| Utc.with_ymd_and_hms(2026, 2, 1, h, m, 0).unwrap();
    assert!(
        kaal.tick_at(at(1, 1)).dispatched.is_empty(),
        "dispatched on the code cron"
    );
    assert_eq!(kaal.tick_at(at(2, 0)).dispatched.len(), 1);
}

#[test]
fn reregistration_keeps_an_operators_disable() {
    let (kaal, adapter) = kaal_with(ConflictPolicy::Error);
    kaal.register("job", "@daily", ok).unwrap();
    kaal.disable("job").unwrap();
    let restarted = Kaal::new(Config::default(), adapter.clone()).unwrap();
    restarted.register("job", "@hourly", ok).unwrap();
    let stored = adapter
        .definition_registry()
        .unwrap()
        .find_definition("kaal", "job")
        .unwrap()
        .unwrap();
    assert_eq!((stored.cron.as_str(), stored.enabled), ("@hourly", false));
}

#[test]
fn bad_registrations_name_the_problem_and_store_nothing() {
    let (kaal, adapter) = kaal_with(ConflictPolicy::Error);
    let cases: [(&str, &str, &str); 4] = [
        ("", "* * * * *", "blank"),
        ("job", "", "blank"),
        ("job", "61 * * * *", "minute"),
        (&"k".repeat(300), "* * * * *", "too long"),
    ];
    for (key, cron, needle) in cases {
        let err = kaal.register(key, cron, ok).unwrap_err().to_string();
        assert!(err.contains(needle), "{key:?} {cron:?}: {err}");
    }
    assert!(adapter
        .definition_registry()
        .unwrap()
        .all_definitions("kaal")
        .unwrap()
        .is_empty());
    assert!(kaal.registered_keys().is_empty());
}

#[test]
fn without_stored_definitions_the_registered_entries_are_scheduled() {
    let kaal = Kaal::new(Config::default(), Arc::new(NullAdapter)).unwrap();
    kaal.register("job", "30 * * * *", ok).unwrap();
    assert!(kaal.enable("job").unwrap().is_none());
    let report = kaal.tick_at(Utc.with_ymd_and_hms(2026, 2, 1, 5, 30, 1).unwrap());
    assert_eq!(report.dispatched.len(), 1);
    assert!(!kaal
        .dispatched("job", Utc.with_ymd_and_hms(2026, 2, 1, 5, 30, 0).unwrap())
        .unwrap());
}

#[test]
fn dispatched_and_with_idempotency_agree_with_the_tick() {
    let (kaal, _) = kaal_with(ConflictPolicy::Error);
    kaal.register("job", "0 0 * * *", ok).unwrap();
    let midnight = Utc.with_ymd_and_hms(2026, 2, 2, 0, 0, 0).unwrap();
    assert!(!kaal.dispatched("job", midnight).unwrap());
    let report = kaal.tick_at(midnight + chrono::Duration::seconds(4));
    assert!(kaal.dispatched("job", midnight).unwrap());
    let key = kaal.with_idempotency("job", midnight, str::to_string);
    assert_eq!(key, report.dispatched[0].idempotency_key);
    assert_eq!(key, format!("kaal-job-{}", midnight.timestamp()));
}

#[test]
fn an_invalid_configuration_is_refused_with_every_problem() {
    let config = Config {
        time_zone: "Nowhere/City".into(),
        namespace: String::new(),
        ..Config::default()
    };
    let err = Kaal::new(config, Arc::new(NullAdapter)).unwrap_err();
    assert_eq!(err.problems.len(), 2, "{err}");
}

fn stored(adapter: &MemoryAdapter, key: &str) -> kaal_core::Definition {
    adapter
        .definition_registry()
        .unwrap()
        .find_definition("kaal", key)
        .unwrap()
        .unwrap()
}

#[test]
fn register_with_stores_the_policy_with_the_definition() {
    let (kaal, adapter) = kaal_with(ConflictPolicy::Error);
    let policy = JobPolicy::new()
        .overlap(Overlap::Skip)
        .timeout(Duration::from_secs(60))
        .retry(3, Duration::from_secs(5));
    kaal.register_with("reports", "@hourly", policy.clone(), ok)
        .unwrap();
    assert_eq!(stored(&adapter, "reports").policy().unwrap(), policy);
}

#[test]
fn register_without_a_policy_writes_no_policy_into_the_metadata() {
    let (kaal, adapter) = kaal_with(ConflictPolicy::Error);
    kaal.register("reports", "@hourly", |_| Ok(())).unwrap();
    assert!(stored(&adapter, "reports").metadata.is_empty());
}

#[test]
fn a_restart_with_another_policy_replaces_the_stored_one_and_keeps_other_metadata() {
    let (kaal, adapter) = kaal_with(ConflictPolicy::Error);
    let mut def = NewDefinition::new("sync", "@daily");
    def.metadata.insert("owner".into(), "ops".into());
    JobPolicy::new()
        .on_node_loss(OnNodeLoss::Rerun)
        .jitter(Duration::from_secs(9))
        .write_metadata(&mut def.metadata);
    adapter
        .definition_registry()
        .unwrap()
        .upsert_definition("kaal", def)
        .unwrap();

    let policy = JobPolicy::new().overlap(Overlap::QueueOne);
    kaal.register_with("sync", "@daily", policy.clone(), ok)
        .unwrap();
    let def = stored(&adapter, "sync");
    assert_eq!(def.policy().unwrap(), policy);
    assert_eq!(def.metadata["owner"], "ops");

    // Restarted without a policy: the stored one goes, the rest stays byte for byte.
    let restarted = Kaal::new(Config::default(), adapter.clone()).unwrap();
    restarted.register("sync", "@daily", ok).unwrap();
    let def = stored(&adapter, "sync");
    assert_eq!(def.policy().unwrap(), JobPolicy::default());
    assert_eq!(
        serde_json::Value::Object(def.metadata).to_string(),
        r#"{"owner":"ops"}"#
    );
}

#[test]
fn an_invalid_policy_is_refused_naming_the_key_and_stores_nothing() {
    let (kaal, adapter) = kaal_with(ConflictPolicy::Error);
    let policy = JobPolicy::new().time_zone("Europe/Berln");
    let err = kaal
        .register_with("reports", "@hourly", policy, ok)
        .unwrap_err();
    assert!(matches!(err, RegistrationError::Policy { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("\"reports\"") && text.contains("time_zone") && text.contains("Europe/Berln"),
        "{text}"
    );
    assert!(!kaal.registered("reports"));
    assert!(adapter
        .definition_registry()
        .unwrap()
        .find_definition("kaal", "reports")
        .unwrap()
        .is_none());
}

#[test]
fn file_wins_keeps_the_files_policy_and_code_wins_stores_the_codes() {
    for (conflict, expected) in [
        (ConflictPolicy::FileWins, Overlap::Skip),
        (ConflictPolicy::CodeWins, Overlap::QueueOne),
    ] {
        let (kaal, adapter) = kaal_with(conflict);
        let mut def = NewDefinition::new("sync", "*/5 * * * *");
        def.source = DefinitionSource::File;
        JobPolicy::new()
            .overlap(Overlap::Skip)
            .write_metadata(&mut def.metadata);
        adapter
            .definition_registry()
            .unwrap()
            .upsert_definition("kaal", def)
            .unwrap();
        let code = JobPolicy::new().overlap(Overlap::QueueOne);
        kaal.register_with("sync", "* * * * *", code, ok).unwrap();
        assert_eq!(
            stored(&adapter, "sync").policy().unwrap().overlap,
            expected,
            "{conflict:?}"
        );
    }
}

#[test]
fn callbacks_return_plain_ok_and_use_question_mark_on_any_error() {
    let (kaal, _) = kaal_with(ConflictPolicy::Error);
    kaal.register("plain", "@hourly", |_| Ok(())).unwrap();
    kaal.register("parse", "@hourly", |_| {
        let _: u32 = "not a number".parse()?;
        Ok(())
    })
    .unwrap();
    kaal.register("message", "@hourly", |_| Err("disk full".into()))
        .unwrap();
    let report = kaal.tick_at(Utc.with_ymd_and_hms(2026, 2, 1, 5, 0, 1).unwrap());
    assert_eq!(report.dispatched.len(), 3);
    let mut failed: Vec<(&str, &str)> = report
        .failed
        .iter()
        .map(|(fire, reason)| (fire.key.as_str(), reason.as_str()))
        .collect();
    failed.sort();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert_eq!(failed[0].0, "message");
    assert!(failed[0].1.contains("disk full"), "{failed:?}");
    assert_eq!(failed[1].0, "parse");
    assert!(failed[1].1.contains("invalid digit"), "{failed:?}");
}
