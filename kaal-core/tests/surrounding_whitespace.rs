//! Keys that differ must never collide: MariaDB and MySQL compare the `key` columns
//! ignoring trailing spaces (`utf8mb4_bin` is PAD SPACE), so cron keys, namespaces and node
//! ids that begin or end with whitespace are refused on every backend, with a message
//! naming the value and the fix.
#![allow(clippy::unwrap_used)] // tests state their expectations with unwrap

use std::sync::Arc;

use kaal_core::{
    validate_cron_key, Adapter, CallbackRegistry, Config, Fire, JobError, Kaal, KeyError,
    MemoryAdapter, RegistrationError,
};

fn ok(_: &Fire) -> Result<(), JobError> {
    Ok(())
}

#[test]
fn a_cron_key_with_a_trailing_space_is_refused_at_registration_and_nothing_is_stored() {
    let adapter = Arc::new(MemoryAdapter::new());
    let kaal = Kaal::new(Config::default(), adapter.clone()).unwrap();
    kaal.register("trail", "@hourly", ok).unwrap();

    let err = kaal.register("trail ", "@hourly", ok).unwrap_err();
    assert!(
        matches!(
            &err,
            RegistrationError::Key(KeyError::SurroundingWhitespace { key }) if key == "trail "
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "cron key \"trail \" begins or ends with whitespace; use \"trail\" (MariaDB and MySQL \
         ignore trailing spaces when comparing keys, so such a key can be taken for another \
         job's)"
    );
    assert_eq!(kaal.registered_keys(), ["trail"]);
    let stored = adapter
        .definition_registry()
        .unwrap()
        .find_definition("kaal", "trail ")
        .unwrap();
    assert!(stored.is_none(), "the refused key was stored: {stored:?}");
}

#[test]
fn a_cron_key_with_leading_or_trailing_whitespace_of_any_kind_is_refused_by_the_registry() {
    let registry = CallbackRegistry::new("kaal");
    for key in [
        " trail",
        "trail ",
        " trail ",
        "trail\u{a0}",
        "\u{2003}trail",
    ] {
        let err = registry
            .add(key, "*/5 * * * *", kaal_core::callback(ok))
            .unwrap_err();
        let message = err.to_string();
        assert!(message.contains(&format!("{key:?}")), "{key:?}: {message}");
        assert!(message.contains("use \"trail\""), "{key:?}: {message}");
    }
    assert!(registry.is_empty());
    // Whitespace inside a key is no collation's business.
    registry
        .add("daily report", "@daily", kaal_core::callback(ok))
        .unwrap();
    validate_cron_key("kaal", "a b:c d").unwrap();
}

#[test]
fn blank_keys_and_control_characters_keep_their_own_messages() {
    assert_eq!(validate_cron_key("kaal", " \t "), Err(KeyError::Blank));
    assert_eq!(
        validate_cron_key("kaal", "trail\n"),
        Err(KeyError::ControlCharacter {
            key: "trail\n".into()
        })
    );
}

#[test]
fn a_namespace_with_surrounding_whitespace_is_refused_naming_it_and_the_fix() {
    for namespace in ["kaal ", " kaal"] {
        let config = Config {
            namespace: namespace.into(),
            ..Config::default()
        };
        let problems = config.validate().unwrap_err().problems;
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].field, "namespace");
        let message = &problems[0].message;
        assert!(message.contains(&format!("{namespace:?}")), "{message}");
        assert!(
            message.contains("begins or ends with whitespace; use \"kaal\""),
            "{message}"
        );
        assert!(Kaal::new(config, Arc::new(MemoryAdapter::new())).is_err());
    }
}

#[test]
fn a_node_id_with_surrounding_whitespace_is_refused_naming_it_and_the_fix() {
    for node_id in ["web-1 ", " web-1", "web-1\u{a0}"] {
        let config = Config {
            node_id: node_id.into(),
            ..Config::default()
        };
        let problems = config.validate().unwrap_err().problems;
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].field, "node_id");
        let message = &problems[0].message;
        assert!(message.contains(&format!("{node_id:?}")), "{message}");
        assert!(
            message.contains("begins or ends with whitespace; use \"web-1\""),
            "{message}"
        );
    }
    let config = Config {
        node_id: "web 1".into(),
        ..Config::default()
    };
    config.validate().unwrap();
}
