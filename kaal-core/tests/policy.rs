//! Per-job policies: the stored form (every parse error names the key, the value and what
//! is allowed), the round trip through definition metadata, validation, and the jitter
//! every node must compute alike.
#![allow(clippy::unwrap_used)]
use std::time::Duration;

use kaal_core::chrono::{TimeZone, Utc};
use kaal_core::policy::{CatchUp, JobPolicy, OnNodeLoss, Overlap, PolicyError};
use kaal_core::MAX_DURATION;
use serde_json::{json, Map, Value};

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn parse(policy: Value) -> Result<JobPolicy, PolicyError> {
    JobPolicy::from_metadata(&object(json!({ "kaal": { "policy": policy } })))
}

/// The error for `policy`, checked to name `key` and, when given, `found` and a word
/// of what is allowed.
fn refused(policy: Value, key: &str, found: &str, allowed: &str) -> String {
    let err = parse(policy.clone()).unwrap_err();
    let text = err.to_string();
    assert_eq!(err.key(), key, "{policy}: {text}");
    assert!(text.contains(found), "{policy}: {text} lacks {found:?}");
    assert!(text.contains(allowed), "{policy}: {text} lacks {allowed:?}");
    text
}

fn full() -> JobPolicy {
    JobPolicy::new()
        .overlap(Overlap::QueueOne)
        .catch_up(CatchUp::None)
        .starting_deadline(Duration::from_secs(90))
        .timeout(Duration::from_secs(600))
        .retry(5, Duration::from_secs(20))
        .max_backoff(Duration::from_secs(900))
        .jitter(Duration::from_secs(45))
        .time_zone("Europe/Berlin")
        .on_node_loss(OnNodeLoss::Rerun)
}

#[test]
fn metadata_without_a_policy_reads_as_the_default() {
    for metadata in [
        json!({}),
        json!({"owner": "ops"}),
        json!({"kaal": null}),
        json!({"kaal": {"command": ["echo"], "file_enabled": true}}),
        json!({"kaal": {"policy": null}}),
        json!({"kaal": {"policy": {}}}),
    ] {
        assert_eq!(
            JobPolicy::from_metadata(&object(metadata.clone())).unwrap(),
            JobPolicy::default(),
            "{metadata}"
        );
    }
}

#[test]
fn every_key_reads_back_from_its_stored_form() {
    let stored = json!({
        "overlap": "queue_one",
        "catch_up": "none",
        "starting_deadline": 90,
        "timeout": 600,
        "retry": {"max_attempts": 5, "backoff": 20, "max_backoff": 900},
        "jitter": 45,
        "time_zone": "Europe/Berlin",
        "on_node_loss": "rerun"
    });
    assert_eq!(parse(stored.clone()).unwrap(), full());
    assert_eq!(Value::Object(full().to_json()), stored);
}

#[test]
fn null_values_mean_the_default() {
    let policy = parse(json!({
        "overlap": null, "timeout": null, "retry": {"backoff": null}, "time_zone": null
    }))
    .unwrap();
    assert_eq!(policy, JobPolicy::default());
}

#[test]
fn a_policy_round_trips_through_metadata_keeping_other_keys() {
    let mut metadata = object(json!({
        "owner": "finance",
        "kaal": {"handler": "weekly", "file_enabled": true}
    }));
    full().write_metadata(&mut metadata);
    assert_eq!(JobPolicy::from_metadata(&metadata).unwrap(), full());
    assert_eq!(metadata["owner"], "finance");
    assert_eq!(metadata["kaal"]["handler"], "weekly");

    // A later registration's policy replaces it entirely.
    let smaller = JobPolicy::new().overlap(Overlap::Skip);
    smaller.write_metadata(&mut metadata);
    assert_eq!(JobPolicy::from_metadata(&metadata).unwrap(), smaller);
    assert_eq!(metadata["kaal"]["policy"], json!({"overlap": "skip"}));

    // Back to the default: the policy goes, kaal's other keys stay.
    JobPolicy::default().write_metadata(&mut metadata);
    assert_eq!(
        Value::Object(metadata).to_string(),
        r#"{"kaal":{"file_enabled":true,"handler":"weekly"},"owner":"finance"}"#
    );
}

#[test]
fn the_default_policy_leaves_older_metadata_byte_identical() {
    for text in [
        r#"{}"#,
        r#"{"owner":"ops"}"#,
        r#"{"kaal":{"command":["echo","hi"],"file_enabled":true},"team":"x"}"#,
    ] {
        let mut metadata: Map<String, Value> = serde_json::from_str(text).unwrap();
        JobPolicy::default().write_metadata(&mut metadata);
        assert_eq!(serde_json::to_string(&metadata).unwrap(), text);
    }
    // An emptied `kaal` object goes too.
    let mut metadata = object(json!({"a": 1, "kaal": {"policy": {"jitter": 5}}}));
    JobPolicy::default().write_metadata(&mut metadata);
    assert_eq!(Value::Object(metadata).to_string(), r#"{"a":1}"#);
}

#[test]
fn only_fields_that_differ_from_the_default_are_written() {
    let policy = JobPolicy::new()
        .retry(1, Duration::from_secs(10))
        .max_backoff(Duration::from_secs(60));
    assert_eq!(
        Value::Object(policy.to_json()),
        json!({"retry": {"max_backoff": 60}})
    );
    assert!(JobPolicy::default().to_json().is_empty());
    assert!(JobPolicy::default().is_default());
}

#[test]
fn a_non_object_kaal_value_is_replaced_when_a_policy_is_written() {
    let mut metadata = object(json!({"kaal": "legacy"}));
    assert_eq!(
        JobPolicy::from_metadata(&metadata).unwrap_err().key(),
        "kaal"
    );
    full().write_metadata(&mut metadata);
    assert_eq!(JobPolicy::from_metadata(&metadata).unwrap(), full());
}

#[test]
fn unknown_keys_are_refused_naming_the_key_and_the_known_ones() {
    let text = refused(
        json!({"overlapp": "skip"}),
        "overlapp",
        "overlapp",
        "catch_up",
    );
    assert_eq!(
        text,
        "unknown policy key \"overlapp\"; known: overlap, catch_up, starting_deadline, \
         timeout, retry, jitter, time_zone, on_node_loss"
    );
    refused(json!({"Overlap": null}), "Overlap", "Overlap", "overlap");
    refused(
        json!({"retry": {"attempts": 3}}),
        "retry.attempts",
        "retry.attempts",
        "max_attempts, backoff, max_backoff",
    );
}

#[test]
fn bad_enum_values_are_refused_naming_the_allowed_ones() {
    refused(
        json!({"overlap": "Skip"}),
        "overlap",
        "\"Skip\"",
        "\"queue_one\"",
    );
    refused(json!({"overlap": 1}), "overlap", "1", "\"allow\"");
    refused(
        json!({"overlap": ["skip"]}),
        "overlap",
        "[\"skip\"]",
        "\"skip\"",
    );
    refused(
        json!({"catch_up": "first"}),
        "catch_up",
        "\"first\"",
        "\"latest\"",
    );
    refused(json!({"catch_up": true}), "catch_up", "true", "\"none\"");
    refused(
        json!({"on_node_loss": "retry"}),
        "on_node_loss",
        "\"retry\"",
        "\"rerun\"",
    );
    let text = refused(
        json!({"on_node_loss": {}}),
        "on_node_loss",
        "{}",
        "\"abandon\"",
    );
    assert_eq!(
        text,
        "policy on_node_loss: {} is not allowed; expected one of \"abandon\", \"rerun\""
    );
}

#[test]
fn bad_durations_are_refused_naming_the_range() {
    for key in ["starting_deadline", "timeout"] {
        for (value, shown) in [
            (json!(0), "0"),
            (json!(-5), "-5"),
            (json!(1.5), "1.5"),
            (json!(60.0), "60.0"),
            (json!("60"), "\"60\""),
            (json!(315_360_001u64), "315360001"),
            (json!(u64::MAX), "18446744073709551615"),
            (json!(true), "true"),
        ] {
            let text = refused(json!({ key: value }), key, shown, "from 1 to 315360000");
            assert!(
                text.starts_with(&format!("policy {key}: {shown} ")),
                "{text}"
            );
        }
    }
    refused(json!({"jitter": -1}), "jitter", "-1", "from 0 to 315360000");
    refused(json!({"jitter": "5s"}), "jitter", "\"5s\"", "whole seconds");
    assert_eq!(parse(json!({"jitter": 0})).unwrap(), JobPolicy::default());
    assert_eq!(
        parse(json!({"timeout": 315_360_000})).unwrap().timeout,
        Some(MAX_DURATION)
    );
}

#[test]
fn bad_time_zones_are_refused_with_examples() {
    refused(
        json!({"time_zone": "Europe/Berln"}),
        "time_zone",
        "\"Europe/Berln\"",
        "IANA",
    );
    refused(
        json!({"time_zone": ""}),
        "time_zone",
        "\"\"",
        "Europe/Berlin",
    );
    refused(json!({"time_zone": 1}), "time_zone", "1", "as a string");
    assert_eq!(
        parse(json!({"time_zone": "America/New_York"}))
            .unwrap()
            .time_zone
            .as_deref(),
        Some("America/New_York")
    );
}

#[test]
fn bad_retries_are_refused() {
    refused(
        json!({"retry": 3}),
        "retry",
        "3",
        "max_attempts, backoff, max_backoff",
    );
    refused(
        json!({"retry": {"max_attempts": 0}}),
        "retry.max_attempts",
        "0",
        "from 1",
    );
    refused(
        json!({"retry": {"max_attempts": 101}}),
        "retry.max_attempts",
        "101",
        "to 100",
    );
    refused(
        json!({"retry": {"max_attempts": -1}}),
        "retry.max_attempts",
        "-1",
        "to 100",
    );
    refused(
        json!({"retry": {"max_attempts": 4_294_967_297u64}}),
        "retry.max_attempts",
        "4294967297",
        "to 100",
    );
    refused(
        json!({"retry": {"backoff": -1}}),
        "retry.backoff",
        "-1",
        "whole seconds",
    );
    refused(
        json!({"retry": {"max_backoff": 2.5}}),
        "retry.max_backoff",
        "2.5",
        "whole",
    );
    let text = refused(
        json!({"retry": {"backoff": 600}}),
        "retry.backoff",
        "600",
        "at most retry.max_backoff (300 s)",
    );
    assert!(text.contains("raise max_backoff"), "{text}");
    let retry = parse(json!({"retry": {"max_attempts": 3, "backoff": 0}}))
        .unwrap()
        .retry;
    assert_eq!((retry.max_attempts, retry.backoff), (3, Duration::ZERO));
}

#[test]
fn containers_that_are_not_objects_are_refused() {
    let err = JobPolicy::from_metadata(&object(json!({"kaal": {"policy": "skip"}}))).unwrap_err();
    assert_eq!(err.key(), "kaal.policy");
    assert!(
        err.to_string().contains("an object with the keys overlap"),
        "{err}"
    );
    let err = JobPolicy::from_metadata(&object(json!({"kaal": [1]}))).unwrap_err();
    assert_eq!(err.key(), "kaal");
}

#[test]
fn validate_checks_what_the_builder_cannot() {
    assert!(full().validate().is_ok());
    assert!(JobPolicy::default().validate().is_ok());
    let cases: Vec<(JobPolicy, &str)> = vec![
        (JobPolicy::new().time_zone("Mars/Olympus"), "time_zone"),
        (
            JobPolicy::new().retry(0, Duration::from_secs(1)),
            "retry.max_attempts",
        ),
        (
            JobPolicy::new().retry(101, Duration::from_secs(1)),
            "retry.max_attempts",
        ),
        (
            JobPolicy::new().retry(3, Duration::from_secs(301)),
            "retry.backoff",
        ),
        (
            JobPolicy::new().max_backoff(MAX_DURATION + Duration::from_secs(1)),
            "retry.max_backoff",
        ),
        (JobPolicy::new().timeout(Duration::ZERO), "timeout"),
        (
            JobPolicy::new().timeout(Duration::from_millis(1500)),
            "timeout",
        ),
        (
            JobPolicy::new().starting_deadline(Duration::ZERO),
            "starting_deadline",
        ),
        (
            JobPolicy::new().starting_deadline(MAX_DURATION * 2),
            "starting_deadline",
        ),
        (
            JobPolicy::new().jitter(Duration::from_millis(500)),
            "jitter",
        ),
        (JobPolicy::new().jitter(Duration::MAX), "jitter"),
    ];
    for (policy, key) in cases {
        let err = policy.validate().unwrap_err();
        assert_eq!(err.key(), key, "{policy:?}: {err}");
    }
    let err = JobPolicy::new()
        .timeout(Duration::from_millis(1500))
        .validate()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "policy timeout: 1.5 is not allowed; expected whole seconds from 1 to 315360000"
    );
}

#[test]
fn enum_names_round_trip() {
    for overlap in [Overlap::Allow, Overlap::Skip, Overlap::QueueOne] {
        assert_eq!(overlap.as_str().parse::<Overlap>().unwrap(), overlap);
    }
    for catch_up in [CatchUp::All, CatchUp::Latest, CatchUp::None] {
        assert_eq!(catch_up.to_string().parse::<CatchUp>().unwrap(), catch_up);
    }
    for loss in [OnNodeLoss::Abandon, OnNodeLoss::Rerun] {
        assert_eq!(loss.as_str().parse::<OnNodeLoss>().unwrap(), loss);
    }
    assert_eq!("queue-one".parse::<Overlap>().unwrap_err().key(), "overlap");
}

#[test]
fn jitter_is_zero_without_jitter() {
    let at = Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap();
    assert_eq!(JobPolicy::default().jitter_for("a", at), Duration::ZERO);
}

#[test]
fn jitter_is_a_fixed_function_of_key_and_fire_time() {
    // Known answers: every node of every version must compute these. A change here is
    // a change of the fleet-wide contract.
    let policy = JobPolicy::new().jitter(Duration::from_secs(60));
    let at = Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap();
    let answers: Vec<u128> = ["reports:daily", "cleanup", ""]
        .iter()
        .map(|key| policy.jitter_for(key, at).as_millis())
        .collect();
    assert_eq!(answers, KNOWN_ANSWERS);
    // Another instance of the same policy, another thread: the same.
    let copy = policy.clone();
    let other = std::thread::spawn(move || copy.jitter_for("reports:daily", at))
        .join()
        .unwrap();
    assert_eq!(other.as_millis(), KNOWN_ANSWERS[0]);
}

const KNOWN_ANSWERS: [u128; 3] = [28_688, 52_094, 44_386];

#[test]
fn jitter_stays_within_bounds_and_spreads() {
    let at = Utc.with_ymd_and_hms(2026, 3, 29, 0, 0, 0).unwrap();
    for secs in [1, 7, 60, 3600] {
        let jitter = Duration::from_secs(secs);
        let policy = JobPolicy::new().jitter(jitter);
        let delays: Vec<Duration> = (0..2000)
            .map(|i| {
                policy.jitter_for(
                    &format!("job-{}", i % 50),
                    at + kaal_core::chrono::Duration::minutes(i / 50),
                )
            })
            .collect();
        assert!(delays.iter().all(|d| *d <= jitter));
        let (min, max) = (delays.iter().min().unwrap(), delays.iter().max().unwrap());
        assert!(
            *min < jitter / 20 && *max > jitter * 19 / 20,
            "{secs}: {min:?}..{max:?}"
        );
        let below_half = delays.iter().filter(|d| **d < jitter / 2).count();
        assert!(
            (800..1200).contains(&below_half),
            "{secs}: {below_half} of 2000 below half"
        );
        // Different fire times of one key get different delays.
        let distinct: std::collections::BTreeSet<Duration> = delays.iter().copied().collect();
        assert!(distinct.len() > 200, "{secs}: {}", distinct.len());
    }
    // Millisecond resolution.
    let policy = JobPolicy::new().jitter(Duration::from_secs(10));
    assert_eq!(policy.jitter_for("k", at).subsec_nanos() % 1_000_000, 0);
}

#[test]
fn every_problem_of_a_policy_is_reported_at_once() {
    let problems = JobPolicy::from_json_all(&object(json!({
        "overlap": "sometimes",
        "timeout": -1,
        "retry": {"max_attempts": 0, "tries": 2},
        "time_zone": "Nowhere/Town",
        "extra": 1
    })))
    .unwrap_err();
    let mut keys: Vec<&str> = problems.iter().map(PolicyError::key).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "extra",
            "overlap",
            "retry.max_attempts",
            "retry.tries",
            "time_zone",
            "timeout"
        ]
    );
    // The cross-field rule once every key reads well.
    let problems = JobPolicy::from_json_all(&object(json!({
        "retry": {"backoff": 60, "max_backoff": 30}
    })))
    .unwrap_err();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].key(), "retry.backoff");
    // `problems` of a built policy, in field order.
    let keys: Vec<String> = JobPolicy::new()
        .timeout(Duration::ZERO)
        .time_zone("x")
        .problems()
        .iter()
        .map(|p| p.key().to_string())
        .collect();
    assert_eq!(keys, ["timeout", "time_zone"]);
}
