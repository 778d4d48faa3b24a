//! Reading the configuration file through the library: sections, variables, problems.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use kaal::{ConfigFile, FileErrors};

fn parse(text: &str, env: &str) -> Result<ConfigFile, FileErrors> {
    ConfigFile::parse(text, Path::new("c/kaal.yml"), env, &|name| {
        (name == "DB").then(|| "sqlite://from-env.db".to_string())
    })
}

#[test]
fn environment_section_is_merged_over_defaults() {
    let text = "defaults:\n  database_url: \"memory:\"\n  tick_interval: 2\n  window_lookback: 60\n  lease_ttl: 70\nproduction:\n  database_url: ${DB}\n  tick_interval: 3\n";
    let dev = parse(text, "development").unwrap();
    assert_eq!(dev.database_url, "memory:");
    assert_eq!(dev.config.tick_interval, Duration::from_secs(2));
    let prod = parse(text, "production").unwrap();
    assert_eq!(prod.database_url, "sqlite://from-env.db");
    assert_eq!(prod.config.tick_interval, Duration::from_secs(3));
    assert_eq!(prod.config.window_lookback, Duration::from_secs(60));
}

#[test]
fn unknown_keys_wrong_types_and_validation_are_reported_together() {
    let text = "defaults:\n  database_url: \"memory:\"\n  tick_intervall: 5\n  enable_dispatch_recovery: yes please\n  lease_ttl: 10\nstaging:\n  nmespace: x\n";
    let err = parse(text, "development").unwrap_err();
    let lines: Vec<_> = err.problems.iter().map(|p| p.line).collect();
    assert_eq!(lines, [Some(3), Some(4), Some(5), Some(7)], "{err}");
    let text = err.to_string();
    assert!(text.contains("did you mean \"tick_interval\"?"), "{text}");
    assert!(text.contains("expected true or false"), "{text}");
    assert!(text.contains("lease_ttl: 10 s is shorter"), "{text}");
}

#[test]
fn settings_at_the_top_level_and_unset_variables_are_explained() {
    let err = parse("database_url: \"memory:\"\n", "development").unwrap_err();
    assert!(err.to_string().contains("at the top level"), "{err}");
    let err = parse("defaults:\n  database_url: ${NOPE}\n", "development").unwrap_err();
    assert!(
        err.to_string()
            .contains("c/kaal.yml:2: database_url: environment variable NOPE is not set"),
        "{err}"
    );
}

#[test]
fn advisory_locks_on_sqlite_are_rejected() {
    let err = parse(
        "defaults:\n  database_url: a.db\n  lock_strategy: advisory\n",
        "development",
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("c/kaal.yml:3: lock_strategy: advisory"),
        "{err}"
    );
}

#[test]
fn scheduler_path_is_relative_to_the_config_directory() {
    let file = parse(
        "defaults:\n  database_url: \"memory:\"\n  scheduler_config_path: jobs.yml\n",
        "x",
    )
    .unwrap();
    assert_eq!(file.scheduler_config_path, Path::new("c/jobs.yml"));
}

#[test]
fn a_misspelt_defaults_section_is_reported() {
    let err = parse("defualts:\n  database_url: \"memory:\"\n", "development").unwrap_err();
    assert!(
        err.to_string()
            .contains("c/kaal.yml:1: section `defualts:` looks like a misspelt `defaults:`"),
        "{err}"
    );
}
