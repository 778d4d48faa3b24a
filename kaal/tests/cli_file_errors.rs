//! Bad configuration and scheduler files: each fails with one line naming the file and line,
//! exit 2, and changes nothing stored.
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used)]

mod common;

use common::Project;

const GOOD_JOBS: &str = "\
defaults:
  jobs:
    - key: report
      cron: \"0 * * * *\"
      command: [\"true\", \"{{fire_time.unix}}\"]
";

#[test]
fn malformed_yaml_names_the_line() {
    let project = Project::sqlite("", GOOD_JOBS);
    project
        .write_config("defaults:\n  database_url: memory\n  tick_interval: [5\n  lease_ttl: 130\n");
    let line = project
        .run(&["status"])
        .fails(2, &["kaal.yml:", "malformed YAML"]);
    assert!(
        line.contains("kaal.yml:4:") || line.contains("kaal.yml:3:"),
        "{line}"
    );

    let project = Project::sqlite("", "defaults:\n  jobs:\n    - key: a\n     cron: x\n");
    project
        .run(&["tick", "--at", "2026-01-01T00:00:00Z"])
        .fails(2, &["kaal-scheduler.yml:4:", "malformed YAML"]);
}

#[test]
fn unknown_keys_wrong_types_and_invalid_settings_are_reported_together() {
    let project = Project::sqlite(
        "  tick_intervall: 5\n  enable_dispatch_recovery: sometimes\n  lease_ttl: 10\n",
        GOOD_JOBS,
    );
    let line = project.run(&["migrate"]).fails(
        2,
        &[
            "kaal.yml:4: unknown key \"tick_intervall\" in `defaults:` (did you mean \"tick_interval\"?)",
            "kaal.yml:5: enable_dispatch_recovery: expected true or false, found the string \"sometimes\"",
            "kaal.yml:6: lease_ttl: 10 s is shorter than window_lookback + tick_interval",
        ],
    );
    assert_eq!(line.matches("kaal.yml:").count(), 3, "{line}");
}

#[test]
fn environment_sections_and_variables_are_applied() {
    let project = Project::sqlite(
        "production:\n  tick_interval: ${TICK:-7}\n  window_lookback: 30\n  lease_ttl: 40\n",
        GOOD_JOBS,
    );
    project.run(&["migrate"]).ok();
    let status = project
        .command(&["status"])
        .env("KAAL_ENV", "production")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&status.stdout);
    assert!(out.contains("environment production"), "{out}");
    assert!(
        out.contains("every 7 s, lookback 30 s, lease 40 s"),
        "{out}"
    );
    let status = project
        .command(&["status"])
        .env("KAAL_ENV", "production")
        .env("TICK", "9")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&status.stdout).contains("every 9 s"));
    // KAAL_CONFIG is read when --config is absent.
    let via_env = common::kaal(&["status"])
        .env("KAAL_CONFIG", project.config())
        .output()
        .unwrap();
    assert!(via_env.status.success(), "{via_env:?}");
}

#[test]
#[cfg(not(all(feature = "postgres", feature = "mysql")))]
fn a_postgres_url_without_the_feature_names_the_feature() {
    let project = Project::new();
    #[cfg(not(feature = "postgres"))]
    {
        project.write_config("defaults:\n  database_url: postgres://kaal:s3cret@localhost/kaal\n");
        let line = project.run(&["migrate"]).fails(
            2,
            &[
                "postgres://kaal:***@localhost/kaal",
                "enable the `postgres` feature",
            ],
        );
        assert!(!line.contains("s3cret"), "{line}");
    }
    #[cfg(not(feature = "mysql"))]
    {
        project.write_config("defaults:\n  database_url: mysql://root@localhost/kaal\n");
        project
            .run(&["status"])
            .fails(2, &["enable the `mysql` feature"]);
    }
}

#[test]
fn unknown_placeholders_invalid_crons_and_bad_job_fields_are_rejected_with_lines() {
    let project = Project::sqlite(
        "",
        "defaults:
  jobs:
    - key: a
      cron: \"61 * * * *\"
      command: [echo, \"{{fire_time.iso}}\"]
    - key: b
      cron: \"* * * * *\"
      shell: \"echo {{ key }} {{oops\"
      timeout: soon
    - key: a
      cron: \"@daily\"
      handler: x
",
    );
    let line = project.run(&["tick", "--at", "2026-01-01T00:00:30Z"]).fails(
        2,
        &[
            "kaal-scheduler.yml:4: job \"a\": cron \"61 * * * *\": minute: value 61 is out of range 0-59",
            "kaal-scheduler.yml:5: job \"a\": command: unknown placeholder {{fire_time.iso}}",
            "kaal-scheduler.yml:8: job \"b\": shell: malformed placeholder",
            "kaal-scheduler.yml:9: job \"b\": timeout: expected a positive whole number of seconds",
            "kaal-scheduler.yml:10: duplicate job key \"a\"",
        ],
    );
    assert!(!line.contains('\n'));
}

#[test]
fn a_bad_scheduler_file_leaves_every_stored_definition_as_it_was() {
    let project = Project::sqlite("", GOOD_JOBS);
    project.run(&["tick", "--at", "2026-01-01T00:00:30Z"]).ok();
    let before = project.run(&["status"]).ok().to_string();
    assert!(before.contains("report") && before.contains("0 * * * *"));
    // Change the good job's cron and add a bad one: nothing may be written.
    project.write(
        "kaal-scheduler.yml",
        &format!(
            "{}    - key: broken\n      cron: \"* * *\"\n      command: [\"true\"]\n",
            GOOD_JOBS.replace("0 * * * *", "*/5 * * * *")
        ),
    );
    project
        .run(&["tick", "--at", "2026-01-01T01:00:30Z"])
        .fails(2, &["job \"broken\": cron \"* * *\""]);
    let after = project.run(&["status"]).ok().to_string();
    let table = |s: &str| {
        s.lines()
            .skip_while(|l| !l.starts_with("KEY"))
            .take_while(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(table(&before), table(&after));
    assert!(
        after.contains("this node's scheduler file cannot be used"),
        "status names the broken file: {after}"
    );
}

#[test]
fn a_missing_scheduler_file_warns_or_fails_by_policy() {
    let warn = Project::sqlite("", GOOD_JOBS);
    std::fs::remove_file(warn.path("kaal-scheduler.yml")).unwrap();
    let run = warn.run(&["tick", "--at", "2026-01-01T00:00:30Z"]);
    assert!(run.ok().contains("0 dispatched"), "{run:#?}");
    assert!(
        run.stderr.contains(
            "kaal-scheduler.yml not found; running no commands, only the stored handler jobs"
        ),
        "{run:#?}"
    );

    let error = Project::sqlite("  scheduler_missing_file_policy: error\n", GOOD_JOBS);
    std::fs::remove_file(error.path("kaal-scheduler.yml")).unwrap();
    error.run(&["tick", "--at", "2026-01-01T00:00:30Z"]).fails(
        2,
        &["kaal-scheduler.yml: scheduler file not found (scheduler_missing_file_policy is error)"],
    );
    error
        .run(&["start"])
        .fails(2, &["scheduler file not found"]);
}

#[test]
fn stored_command_jobs_stop_running_when_the_file_goes_missing_under_warn() {
    let project = Project::sqlite(
        "",
        "defaults:\n  jobs:\n    - key: note\n      cron: \"* * * * *\"\n      shell: \"echo {{fire_time.unix}} >> note.log\"\n",
    );
    project.run(&["tick", "--at", "2026-01-01T00:00:30Z"]).ok();
    std::fs::remove_file(project.path("kaal-scheduler.yml")).unwrap();
    let second = project.run(&["tick", "--at", "2026-01-01T00:01:30Z"]);
    assert!(second.ok().contains("0 dispatched"), "{second:#?}");
    assert!(
        second.stderr.contains(
            "not running stored job \"note\": its command is not in this node's scheduler file"
        ),
        "{second:#?}"
    );
    // 23:59 and 00:00 from the first tick; nothing from the second: a node runs only the
    // commands of its own scheduler file, never one read from the database.
    assert_eq!(
        common::sorted_lines(&project.path("note.log")),
        ["1767225540", "1767225600"]
    );
}

#[test]
fn enable_and_disable_of_an_unknown_key_fail_naming_the_stored_keys() {
    let project = Project::sqlite("", GOOD_JOBS);
    project.run(&["tick", "--at", "2026-01-01T00:00:30Z"]).ok();
    project
        .run(&["disable", "reprot"])
        .fails(2, &["no stored job \"reprot\"", "stored jobs: report"]);
}
