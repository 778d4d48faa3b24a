//! Dispatch log and definition store behaviours of DESIGN.md.

use chrono::{DateTime, TimeZone, Utc};
use kaal_core::{
    BatchOutcome, Definition, DefinitionRegistry, DefinitionSource, DefinitionWrite,
    DispatchStatus, NewDefinition,
};
use serde_json::json;

use crate::{Backend, TestStore};

/// The namespace the single-namespace definition behaviours use.
const NS: &str = "kaal";

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_767_225_600 + seconds, 0).unwrap()
}

/// A logged dispatch is found with its node and status; `dispatched` is true for it only.
pub fn logged_dispatch_is_found(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let adapter = store.open();
    let log = adapter
        .dispatch_registry()
        .expect("backend has no dispatch registry");
    assert!(log.find_dispatch("report", at(0)).unwrap().is_none());
    log.log_dispatch("report", at(0), "node-a", DispatchStatus::Dispatched)
        .unwrap();
    let record = log
        .find_dispatch("report", at(0))
        .unwrap()
        .expect("record not found");
    assert_eq!(
        (
            record.key.as_str(),
            record.fire_time,
            record.node_id.as_str(),
            record.status
        ),
        ("report", at(0), "node-a", DispatchStatus::Dispatched)
    );
    assert!(log.dispatched("report", at(0)).unwrap());
    assert!(!log.dispatched("report", at(60)).unwrap());
    assert!(!log.dispatched("other", at(0)).unwrap());
    // Another node sees the same log.
    assert!(store
        .open()
        .dispatch_registry()
        .unwrap()
        .dispatched("report", at(0))
        .unwrap());
}

/// Logging the same `(key, fire_time)` again updates the one record (upsert).
pub fn logging_twice_updates_the_one_record(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let adapter = store.open();
    let log = adapter
        .dispatch_registry()
        .expect("backend has no dispatch registry");
    log.log_dispatch("report", at(0), "node-a", DispatchStatus::Dispatched)
        .unwrap();
    log.log_dispatch("report", at(0), "node-b", DispatchStatus::Failed)
        .unwrap();
    let records = log.find_by_key("report").unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(
        (records[0].node_id.as_str(), records[0].status),
        ("node-b", DispatchStatus::Failed)
    );
    assert!(
        log.dispatched("report", at(0)).unwrap(),
        "a failed dispatch must count as dispatched"
    );
}

/// `find_by_key`, `find_by_node` and `find_by_status` filter and list newest fire time first.
pub fn dispatch_queries_filter_and_list_newest_first(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let adapter = store.open();
    let log = adapter
        .dispatch_registry()
        .expect("backend has no dispatch registry");
    log.log_dispatch("a", at(60), "n1", DispatchStatus::Dispatched)
        .unwrap();
    log.log_dispatch("a", at(180), "n2", DispatchStatus::Failed)
        .unwrap();
    log.log_dispatch("a", at(120), "n1", DispatchStatus::Dispatched)
        .unwrap();
    log.log_dispatch("b", at(240), "n1", DispatchStatus::Failed)
        .unwrap();
    let times = |records: Vec<kaal_core::DispatchRecord>| {
        records
            .into_iter()
            .map(|r| (r.key, r.fire_time))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        times(log.find_by_key("a").unwrap()),
        [
            ("a".into(), at(180)),
            ("a".into(), at(120)),
            ("a".into(), at(60))
        ]
    );
    assert_eq!(
        times(log.find_by_node("n1").unwrap()),
        [
            ("b".into(), at(240)),
            ("a".into(), at(120)),
            ("a".into(), at(60))
        ]
    );
    assert_eq!(
        times(log.find_by_status(DispatchStatus::Failed).unwrap()),
        [("b".into(), at(240)), ("a".into(), at(180))]
    );
    assert!(log.find_by_key("none").unwrap().is_empty());
}

/// `cleanup(older_than)` deletes records whose fire time is before the cut and counts them.
pub fn cleanup_deletes_older_records_and_counts_them(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let adapter = store.open();
    let log = adapter
        .dispatch_registry()
        .expect("backend has no dispatch registry");
    for i in 0..5 {
        log.log_dispatch("job", at(i * 60), "n", DispatchStatus::Dispatched)
            .unwrap();
    }
    assert_eq!(log.cleanup(at(120)).unwrap(), 2);
    assert_eq!(log.find_by_key("job").unwrap().len(), 3);
    assert!(!log.dispatched("job", at(60)).unwrap());
    assert!(log.dispatched("job", at(120)).unwrap());
    assert_eq!(log.cleanup(at(120)).unwrap(), 0);
}

/// The batch forms agree with the single ones.
pub fn batch_log_and_lookup_agree_with_single_ones(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let adapter = store.open();
    let log = adapter
        .dispatch_registry()
        .expect("backend has no dispatch registry");
    let pairs: Vec<(String, DateTime<Utc>)> = (0..300)
        .map(|i| (format!("k{}", i % 7), at(i * 60)))
        .collect();
    log.log_dispatches(&pairs[..150], "n", DispatchStatus::Dispatched)
        .unwrap();
    let seen = log.dispatched_many(&pairs).unwrap();
    assert_eq!(seen.len(), 300);
    assert!(seen[..150].iter().all(|s| *s) && seen[150..].iter().all(|s| !*s));
    // Logging again (some overlap) is an upsert, not an error.
    log.log_dispatches(&pairs[100..200], "m", DispatchStatus::Dispatched)
        .unwrap();
    assert_eq!(log.find_by_node("m").unwrap().len(), 100);
    assert_eq!(log.find_by_node("n").unwrap().len(), 100);
    assert!(log.dispatched_many(&[]).unwrap().is_empty());
}

/// Upsert stores the definition; a second upsert keeps `created_at` and replaces the rest.
pub fn definition_upsert_keeps_created_at(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let adapter = store.open();
    let defs = adapter
        .definition_registry()
        .expect("backend has no definition registry");
    let first = defs
        .upsert_definition(NS, NewDefinition::new("job", "* * * * *"))
        .unwrap();
    assert_eq!(
        (
            first.key.as_str(),
            first.cron.as_str(),
            first.enabled,
            first.source
        ),
        ("job", "* * * * *", true, DefinitionSource::Code)
    );
    assert_eq!(first.disabled_at, None);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let mut change = NewDefinition::new("job", "0 * * * *");
    change.source = DefinitionSource::File;
    let second = defs.upsert_definition(NS, change).unwrap();
    assert_eq!(
        second.created_at, first.created_at,
        "created_at changed on upsert"
    );
    assert!(
        second.updated_at > first.updated_at,
        "updated_at did not move"
    );
    let found = defs
        .find_definition(NS, "job")
        .unwrap()
        .expect("definition not found");
    assert_eq!(
        (found.cron.as_str(), found.source, found.created_at),
        ("0 * * * *", DefinitionSource::File, first.created_at)
    );
    assert!(defs.find_definition(NS, "nope").unwrap().is_none());
}

/// `disabled_at` is set on disable, kept while disabled (also across upserts), cleared on enable.
pub fn disabled_at_follows_the_enabled_state(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let adapter = store.open();
    let defs = adapter
        .definition_registry()
        .expect("backend has no definition registry");
    defs.upsert_definition(NS, NewDefinition::new("job", "* * * * *"))
        .unwrap();
    let disabled = defs
        .disable_definition(NS, "job")
        .unwrap()
        .expect("not found");
    assert!(!disabled.enabled);
    let since = disabled.disabled_at.expect("disabled_at not set");
    std::thread::sleep(std::time::Duration::from_millis(20));
    let again = defs.disable_definition(NS, "job").unwrap().unwrap();
    assert_eq!(
        again.disabled_at,
        Some(since),
        "disabled_at moved while staying disabled"
    );
    let mut upsert = NewDefinition::new("job", "*/5 * * * *");
    upsert.enabled = false;
    assert_eq!(
        defs.upsert_definition(NS, upsert).unwrap().disabled_at,
        Some(since)
    );
    assert_eq!(defs.enabled_definitions(NS).unwrap().len(), 0);
    let enabled = defs.enable_definition(NS, "job").unwrap().unwrap();
    assert!(enabled.enabled);
    assert_eq!(enabled.disabled_at, None);
    assert_eq!(defs.enabled_definitions(NS).unwrap().len(), 1);
    assert!(defs.enable_definition(NS, "missing").unwrap().is_none());
    assert!(defs.disable_definition(NS, "missing").unwrap().is_none());
}

/// `schedule_since` — when a definition's current schedule came into force — is set on
/// insert and moves only when the schedule does: a cron change or an enable of a disabled
/// definition (by upsert or `enable_definition`). Re-applying the same definition, changing
/// its source or metadata, and disabling it keep it.
pub fn schedule_since_moves_only_when_the_schedule_changes(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let adapter = store.open();
    let defs = adapter
        .definition_registry()
        .expect("backend has no definition registry");
    let pause = || std::thread::sleep(std::time::Duration::from_millis(20));
    let upsert = |cron: &str, enabled: bool| {
        let mut new = NewDefinition::new("job", cron);
        new.enabled = enabled;
        defs.upsert_definition(NS, new).unwrap()
    };
    let first = upsert("0 * * * *", true);
    assert_eq!(
        first.schedule_since, first.created_at,
        "an insert starts the schedule"
    );
    pause();
    let again = upsert("0 * * * *", true);
    assert!(
        again.updated_at > first.updated_at,
        "updated_at did not move"
    );
    assert_eq!(
        again.schedule_since, first.schedule_since,
        "re-applying the same definition moved it"
    );
    pause();
    let mut other = NewDefinition::new("job", "0 * * * *");
    other.source = DefinitionSource::File;
    other.metadata.insert("command".into(), json!(["sync"]));
    let other = defs.upsert_definition(NS, other).unwrap();
    assert_eq!(
        other.schedule_since, first.schedule_since,
        "source and metadata are not the schedule"
    );
    pause();
    let disabled = defs.disable_definition(NS, "job").unwrap().unwrap();
    assert_eq!(
        disabled.schedule_since, first.schedule_since,
        "a disable moved it"
    );
    pause();
    let still = upsert("0 * * * *", false);
    assert_eq!(still.schedule_since, first.schedule_since);
    pause();
    let enabled = defs.enable_definition(NS, "job").unwrap().unwrap();
    assert!(
        enabled.schedule_since > disabled.updated_at,
        "an enable after a disable did not move it"
    );
    assert_eq!(enabled.schedule_since, enabled.updated_at);
    pause();
    let enabled_twice = defs.enable_definition(NS, "job").unwrap().unwrap();
    assert_eq!(
        enabled_twice.schedule_since, enabled.schedule_since,
        "enabling an enabled definition moved it"
    );
    pause();
    let changed = upsert("* * * * *", true);
    assert!(
        changed.schedule_since > enabled.schedule_since,
        "a cron change did not move it"
    );
    assert_eq!(changed.schedule_since, changed.updated_at);
    pause();
    upsert("* * * * *", false);
    pause();
    let back_on = upsert("* * * * *", true);
    assert!(
        back_on.schedule_since > changed.schedule_since,
        "an upsert enabling a disabled definition did not move it"
    );
    assert_eq!(back_on.schedule_since, back_on.updated_at);
    assert_eq!(
        defs.find_definition(NS, "job")
            .unwrap()
            .unwrap()
            .schedule_since,
        back_on.schedule_since,
        "what is read back differs from what the write returned"
    );
}

/// Metadata JSON objects (nested, unicode, numbers) round-trip unchanged.
pub fn definition_metadata_round_trips(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let adapter = store.open();
    let defs = adapter
        .definition_registry()
        .expect("backend has no definition registry");
    let metadata = json!({"command": ["sh", "-c", "echo \"hi\""], "timeout": 30, "nested": {"ok": true, "ratio": 0.5, "none": null}, "name": "rapport été"});
    let mut new = NewDefinition::new("job", "@daily");
    new.metadata = metadata.as_object().unwrap().clone();
    defs.upsert_definition(NS, new).unwrap();
    let other = store.open();
    let found = other
        .definition_registry()
        .unwrap()
        .find_definition(NS, "job")
        .unwrap()
        .unwrap();
    assert_eq!(serde_json::Value::Object(found.metadata), metadata);
}

/// Lists are ordered by key; remove deletes one definition and says whether it existed.
pub fn definitions_are_listed_by_key_and_removed(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let adapter = store.open();
    let defs = adapter
        .definition_registry()
        .expect("backend has no definition registry");
    for key in ["c", "a", "b"] {
        defs.upsert_definition(NS, NewDefinition::new(key, "* * * * *"))
            .unwrap();
    }
    defs.disable_definition(NS, "b").unwrap();
    let keys =
        |list: Vec<kaal_core::Definition>| list.into_iter().map(|d| d.key).collect::<Vec<_>>();
    assert_eq!(keys(defs.all_definitions(NS).unwrap()), ["a", "b", "c"]);
    assert_eq!(keys(defs.enabled_definitions(NS).unwrap()), ["a", "c"]);
    assert!(defs.remove_definition(NS, "a").unwrap());
    assert!(!defs.remove_definition(NS, "a").unwrap());
    assert_eq!(keys(defs.all_definitions(NS).unwrap()), ["b", "c"]);
}

/// Definitions are scoped by namespace: two applications sharing one database may both
/// define `sync`; each reads, lists, enables, disables and removes only its own.
pub fn definitions_are_scoped_by_namespace(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let app1 = store.open();
    let app2 = store.open();
    let defs1 = app1
        .definition_registry()
        .expect("backend has no definition registry");
    let defs2 = app2
        .definition_registry()
        .expect("backend has no definition registry");
    let mut first = NewDefinition::new("sync", "*/5 * * * *");
    first.metadata = json!({"command": ["app1-sync"]})
        .as_object()
        .unwrap()
        .clone();
    let stored1 = defs1.upsert_definition("app1", first).unwrap();
    defs1
        .upsert_definition("app1", NewDefinition::new("only-app1", "@daily"))
        .unwrap();
    let mut second = NewDefinition::new("sync", "0 * * * *");
    second.source = DefinitionSource::File;
    second.metadata = json!({"command": ["app2-sync"]})
        .as_object()
        .unwrap()
        .clone();
    defs2.upsert_definition("app2", second).unwrap();

    let found1 = defs2.find_definition("app1", "sync").unwrap().unwrap();
    assert_eq!(
        (
            found1.cron.as_str(),
            found1.source,
            found1.metadata["command"][0].as_str(),
            found1.created_at
        ),
        (
            "*/5 * * * *",
            DefinitionSource::Code,
            Some("app1-sync"),
            stored1.created_at
        ),
        "app2's upsert changed app1's definition"
    );
    let found2 = defs1.find_definition("app2", "sync").unwrap().unwrap();
    assert_eq!(
        (found2.cron.as_str(), found2.source),
        ("0 * * * *", DefinitionSource::File)
    );
    let keys =
        |list: Vec<kaal_core::Definition>| list.into_iter().map(|d| d.key).collect::<Vec<_>>();
    assert_eq!(
        keys(defs1.all_definitions("app1").unwrap()),
        ["only-app1", "sync"]
    );
    assert_eq!(keys(defs1.all_definitions("app2").unwrap()), ["sync"]);
    assert!(defs1.all_definitions("kaal").unwrap().is_empty());
    assert!(defs1
        .find_definition("app2", "only-app1")
        .unwrap()
        .is_none());
    // Namespaces differing only in case are different namespaces.
    assert!(defs1.find_definition("APP1", "sync").unwrap().is_none());

    let disabled = defs2.disable_definition("app2", "sync").unwrap().unwrap();
    assert!(!disabled.enabled);
    assert!(
        defs1
            .find_definition("app1", "sync")
            .unwrap()
            .unwrap()
            .enabled
    );
    assert_eq!(
        keys(defs1.enabled_definitions("app1").unwrap()),
        ["only-app1", "sync"]
    );
    assert!(defs1.enabled_definitions("app2").unwrap().is_empty());
    assert!(defs2
        .enable_definition("app2", "only-app1")
        .unwrap()
        .is_none());
    assert!(defs2
        .disable_definition("app2", "only-app1")
        .unwrap()
        .is_none());
    assert!(
        defs1
            .find_definition("app1", "only-app1")
            .unwrap()
            .unwrap()
            .enabled
    );

    assert!(!defs2.remove_definition("app2", "only-app1").unwrap());
    assert!(defs2.remove_definition("app2", "sync").unwrap());
    assert!(!defs2.remove_definition("app2", "sync").unwrap());
    assert!(defs1.find_definition("app2", "sync").unwrap().is_none());
    let kept = defs1.find_definition("app1", "sync").unwrap().unwrap();
    assert_eq!((kept.cron.as_str(), kept.enabled), ("*/5 * * * *", true));
    assert_eq!(
        keys(defs1.all_definitions("app1").unwrap()),
        ["only-app1", "sync"]
    );
}

/// The batch every `apply_definitions` behaviour writes over [`seed_batch`]'s definitions:
/// `a` gets a new cron, `b` is removed, `c` is disabled, `d0`..`d9` are added.
fn batch_over(before: &[Definition]) -> Vec<DefinitionWrite> {
    let find = |key: &str| before.iter().find(|d| d.key == key).cloned();
    let mut writes = vec![
        DefinitionWrite::upsert(find("a"), NewDefinition::new("a", "*/5 * * * *")),
        DefinitionWrite::remove(find("b").expect("b was seeded")),
        DefinitionWrite::upsert(find("c"), {
            let mut c = NewDefinition::new("c", "0 * * * *");
            c.enabled = false;
            c
        }),
    ];
    for i in 0..10 {
        let key = format!("d{i}");
        let mut new = NewDefinition::new(key.as_str(), "@daily");
        new.source = DefinitionSource::File;
        new.metadata = json!({"kaal": {"shell": format!("echo {key} 'quoted' \"twice\"")}})
            .as_object()
            .cloned()
            .unwrap_or_default();
        writes.push(DefinitionWrite::upsert(None, new));
    }
    writes
}

/// Stores `a`, `b`, `c` (hourly, enabled) in `namespace`; returns what is stored.
fn seed_batch(defs: &dyn DefinitionRegistry, namespace: &str) -> Vec<Definition> {
    for key in ["a", "b", "c"] {
        defs.upsert_definition(namespace, NewDefinition::new(key, "0 * * * *"))
            .unwrap();
    }
    defs.all_definitions(namespace).unwrap()
}

/// `(key, cron, enabled)` of every definition, the part a batch changes.
fn shape(defs: &[Definition]) -> Vec<(String, String, bool)> {
    defs.iter()
        .map(|d| (d.key.clone(), d.cron.clone(), d.enabled))
        .collect()
}

/// What [`batch_over`] leaves.
fn after_batch() -> Vec<(String, String, bool)> {
    let mut after = vec![
        ("a".to_string(), "*/5 * * * *".to_string(), true),
        ("c".to_string(), "0 * * * *".to_string(), false),
    ];
    after.extend((0..10).map(|i| (format!("d{i}"), "@daily".to_string(), true)));
    after.sort();
    after
}

/// A batch of definition writes is applied all or nothing: when one key is no longer
/// stored as the caller read it (an operator disabled it in between), nothing of the batch
/// is written and the stale key is named; read again, the batch applies every write, with
/// the upsert rules (`schedule_since` moves for the changed cron only).
pub fn a_definition_batch_applies_all_or_nothing(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let adapter = store.open();
    let defs = adapter
        .definition_registry()
        .expect("backend has no definition registry");
    let before = seed_batch(defs, NS);
    let writes = batch_over(&before);
    defs.disable_definition(NS, "a").unwrap();
    let read_again = defs.all_definitions(NS).unwrap();
    assert_eq!(
        defs.apply_definitions(NS, &writes).unwrap(),
        BatchOutcome::Stale("a".into()),
        "a was disabled after the read"
    );
    assert_eq!(
        defs.all_definitions(NS).unwrap(),
        read_again,
        "a stale batch wrote something"
    );

    defs.enable_definition(NS, "a").unwrap();
    let current = defs.all_definitions(NS).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(
        defs.apply_definitions(NS, &batch_over(&current)).unwrap(),
        BatchOutcome::Applied
    );
    let after = defs.all_definitions(NS).unwrap();
    assert_eq!(shape(&after), after_batch());
    let a_before = current.iter().find(|d| d.key == "a").unwrap();
    let a_after = after.iter().find(|d| d.key == "a").unwrap();
    assert!(
        a_after.schedule_since > a_before.schedule_since,
        "a's cron changed: its schedule starts at the batch"
    );
    assert_eq!(a_after.created_at, a_before.created_at);
    let d0 = after.iter().find(|d| d.key == "d0").unwrap();
    assert_eq!(
        d0.metadata["kaal"]["shell"].as_str(),
        Some("echo d0 'quoted' \"twice\"")
    );
    assert!(
        defs.find_definition("other", "a").unwrap().is_none(),
        "the batch wrote outside its namespace"
    );
    // A key the batch expects absent that another writer stored meanwhile: stale.
    defs.upsert_definition(NS, NewDefinition::new("e", "@hourly"))
        .unwrap();
    let late = DefinitionWrite::upsert(None, NewDefinition::new("e", "@daily"));
    assert_eq!(
        defs.apply_definitions(NS, &[late]).unwrap(),
        BatchOutcome::Stale("e".into())
    );
    assert_eq!(
        defs.find_definition(NS, "e").unwrap().unwrap().cron,
        "@hourly"
    );
    let mismatched = DefinitionWrite {
        key: "f".into(),
        expected: None,
        write: Some(NewDefinition::new("g", "@daily")),
    };
    assert!(
        defs.apply_definitions(NS, &[mismatched]).is_err(),
        "a write whose definition has another key must be refused"
    );
}

/// A batch cut off part-way — the connection lost after every possible number of bytes,
/// mid-statement and mid-transaction — leaves the definitions exactly as before or exactly
/// as the whole batch makes them, never a mix; a batch that reports success is all there.
/// Backends without a network connection to cut (SQLite) rely on the same transaction and
/// are covered by [`a_definition_batch_applies_all_or_nothing`].
pub fn a_definition_batch_cut_part_way_is_all_or_nothing(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let Some(mut cut) = backend.outage(&store.locator) else {
        return;
    };
    if !cut.cut_after(None) {
        return;
    }
    let direct = store.open();
    let direct_defs = direct.definition_registry().unwrap();
    let mut budget = 0u64;
    let mut cuts = 0;
    for round in 0.. {
        assert!(
            round < 400,
            "the batch never completed within the budgets tried"
        );
        let namespace = format!("cut{round}");
        let before = seed_batch(direct_defs, &namespace);
        let relayed = backend.open(&cut.locator());
        let defs = relayed.definition_registry().unwrap();
        // Connections opened (and warm) before the budget starts counting.
        let _ = defs.all_definitions(&namespace).unwrap();
        cut.cut_after(Some(budget));
        let outcome = defs.apply_definitions(&namespace, &batch_over(&before));
        cut.cut_after(None);
        drop(relayed);
        let now = direct_defs.all_definitions(&namespace).unwrap();
        match outcome {
            Ok(BatchOutcome::Applied) => {
                assert_eq!(
                    shape(&now),
                    after_batch(),
                    "success reported, batch not all there"
                );
                break;
            }
            Ok(BatchOutcome::Stale(key)) => panic!("nothing changed {key} between read and batch"),
            Err(_) => {
                cuts += 1;
                assert!(
                    now == before || shape(&now) == after_batch(),
                    "a batch cut after {budget} bytes left a mix: {:?}",
                    shape(&now)
                );
            }
        }
        budget += 97;
    }
    assert!(
        cuts > 3,
        "the cut never landed inside the batch ({cuts} cuts)"
    );
    #[allow(clippy::print_stdout)] // the figures are the evidence in the test log
    {
        println!(
            "definition batch cut part-way: {cuts} cuts from 0 to {budget} bytes, each left all or nothing"
        );
    }
}

/// An operator's enable/disable racing `kaal apply`-style batches on one definition loses
/// neither: one thread changes the cron through compare-and-set batches (reading the row
/// first, as an apply does), another keeps disabling and enabling it from its own
/// connection. Before every batch the row must still carry the cron the batch thread last
/// wrote — a disable that read the row before a batch committed and wrote it back after
/// would put the old cron back (a lost update).
pub fn enable_racing_batches_loses_no_change(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let applier = store.open();
    let operator = store.open();
    let defs = applier
        .definition_registry()
        .expect("backend has no definition registry");
    defs.upsert_definition(NS, NewDefinition::new("a", "0 0 * * *"))
        .unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let ops = operator.definition_registry().unwrap();
            let mut enabled = false;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                if enabled {
                    ops.enable_definition(NS, "a").unwrap();
                } else {
                    ops.disable_definition(NS, "a").unwrap();
                }
                enabled = !enabled;
                // Paced, not synchronised: a toggle every few milliseconds leaves the batches
                // room to commit while still landing inside many of them.
                std::thread::sleep(std::time::Duration::from_millis(3));
            }
        });
        let mut written = "0 0 * * *".to_string();
        let mut applied = 0;
        let mut attempts = 0;
        while applied < 60 && attempts < 2000 {
            attempts += 1;
            let current = defs.find_definition(NS, "a").unwrap().unwrap();
            assert_eq!(
                current.cron, written,
                "the cron a batch wrote was put back to an older one (lost update) after {applied} batches"
            );
            let next = format!("{} 0 * * *", (applied + 1) % 60);
            let mut new = NewDefinition::new("a", next.as_str());
            new.enabled = current.enabled;
            match defs
                .apply_definitions(NS, &[DefinitionWrite::upsert(Some(current), new)])
                .unwrap()
            {
                BatchOutcome::Applied => {
                    written = next;
                    applied += 1;
                }
                BatchOutcome::Stale(_) => {}
            }
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(
            applied >= 60,
            "only {applied} batches in {attempts} attempts"
        );
    });
    assert_eq!(
        defs.find_definition(NS, "a").unwrap().unwrap().cron,
        "0 0 * * *",
        "the last batch's cron (60 % 60) stands"
    );
}
