//! What a job's process gets, and what it may not: placeholders as data (never shell code),
//! an environment without the database's credentials, bounded output lines; and only the
//! commands of this node's own scheduler file, never one read from the database.
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used)]

mod common;

use common::Project;

#[test]
fn a_hostile_job_key_in_a_shell_string_is_data_not_code() {
    let project = Project::sqlite(
        "",
        "defaults:
  jobs:
    - key: \"k;touch PWNED\"
      cron: \"0 * * * *\"
      shell: \"printf '%s' {{key}} > bare.txt\"
    - key: \"q$(touch PWNED2)`touch PWNED3`\\\"'\"
      cron: \"0 * * * *\"
      shell: \"printf '%s' \\\"{{key}}\\\" > double.txt; printf '%s' '{{key}}' > single.txt\"
",
    );
    let tick = project.run(&["tick", "--at", "2026-01-01T10:00:05Z"]);
    tick.ok();
    for pwned in ["PWNED", "PWNED2", "PWNED3"] {
        assert!(
            !project.path(pwned).exists(),
            "a job key ran as shell code ({pwned}): {tick:#?}"
        );
    }
    assert_eq!(project.read("bare.txt"), "k;touch PWNED");
    let key = "q$(touch PWNED2)`touch PWNED3`\"'";
    assert_eq!(project.read("double.txt"), key);
    assert_eq!(project.read("single.txt"), key);
}

#[test]
fn a_job_writing_100_mb_without_a_newline_completes_with_its_line_capped() {
    let project = Project::sqlite(
        "",
        "defaults:
  jobs:
    - key: flood
      cron: \"0 * * * *\"
      shell: \"head -c 100000000 /dev/zero | tr '\\\\0' a; echo; echo after\"
",
    );
    let tick = project.run(&["tick", "--at", "2026-01-01T10:00:05Z"]);
    assert!(tick.ok().contains("dispatched flood"), "{}", tick.stdout);
    let flood: Vec<&str> = tick
        .stderr
        .lines()
        .filter(|l| l.contains("[flood] aaaa"))
        .collect();
    assert_eq!(flood.len(), 1, "one logged line for the flood");
    assert!(
        flood[0].ends_with("… [line truncated]"),
        "not marked as cut"
    );
    assert!(
        flood[0].len() < 64 * 1024 + 200,
        "the logged line is {} bytes",
        flood[0].len()
    );
    assert!(
        tick.stderr.contains("[flood] after"),
        "the next line is lost"
    );
}

#[test]
fn a_job_does_not_inherit_the_database_url_unless_its_env_names_it() {
    let project = Project::new();
    let url = format!("sqlite://{}", project.path("kaal.db").display());
    project.write_config(
        "defaults:\n  database_url: ${KAAL_DATABASE_URL}\n  recovery_startup_jitter: 0\n",
    );
    project.write(
        "kaal-scheduler.yml",
        "defaults:
  jobs:
    - key: plain
      cron: \"0 * * * *\"
      shell: \"env > plain.env\"
    - key: asks
      cron: \"0 * * * *\"
      shell: \"env > asks.env\"
      env: { DATABASE_URL: \"explicit-{{key}}\" }
",
    );
    let output = project
        .command(&["tick", "--at", "2026-01-01T10:00:05Z"])
        .env("KAAL_DATABASE_URL", &url)
        .env("DATABASE_URL", &url)
        .env("APP_DB", format!("{url}?mode=rw"))
        .env("UNRELATED", "kept")
        .output()
        .unwrap();
    let tick = common::Run::from(output);
    tick.ok();
    let plain = project.read("plain.env");
    assert!(plain.contains("UNRELATED=kept"), "{plain}");
    assert!(plain.contains("KAAL_KEY=plain"), "{plain}");
    for withheld in [
        "KAAL_DATABASE_URL=",
        "DATABASE_URL=",
        "APP_DB=",
        url.as_str(),
    ] {
        assert!(
            !plain.contains(withheld),
            "{withheld} reached the job:\n{plain}"
        );
    }
    let asks = project.read("asks.env");
    assert!(asks.contains("\nDATABASE_URL=explicit-asks\n"), "{asks}");
    assert!(!asks.contains(url.as_str()), "{asks}");
}

#[test]
fn a_command_stored_in_the_database_alone_is_reported_and_not_run() {
    use diesel::{Connection, RunQueryDsl, SqliteConnection};

    let project = Project::sqlite("", "");
    std::fs::remove_file(project.path("kaal-scheduler.yml")).unwrap();
    project.run(&["migrate"]).ok();
    let mut db = SqliteConnection::establish(project.path("kaal.db").to_str().unwrap()).unwrap();
    diesel::sql_query(
        "INSERT INTO kaal_definitions (\"key\", cron, enabled, source, metadata, created_at, updated_at) \
         VALUES ('intruder', '* * * * *', 1, 'file', \
         '{\"kaal\":{\"shell\":\"touch PWNED\",\"file_enabled\":true}}', \
         '2026-01-01 00:00:00.000000', '2026-01-01 00:00:00.000000')",
    )
    .execute(&mut db)
    .unwrap();

    let tick = project.run(&["tick", "--at", "2026-01-01T10:00:05Z"]);
    assert!(tick.ok().contains("0 dispatched"), "{tick:#?}");
    assert!(
        !project.path("PWNED").exists(),
        "a command read from the database ran: {tick:#?}"
    );
    let warning = tick
        .stderr
        .lines()
        .find(|l| l.contains("WARN") && l.contains("\"intruder\""))
        .unwrap_or_else(|| panic!("no warning naming the stored job: {tick:#?}"));
    assert!(
        warning.contains("not in this node's scheduler file"),
        "{warning}"
    );
}

#[test]
fn a_stored_command_that_differs_from_the_file_runs_nowhere_but_nodes_whose_file_matches() {
    use diesel::{Connection, RunQueryDsl, SqliteConnection};

    let project = Project::sqlite(
        "",
        "defaults:\n  jobs:\n    - key: mine\n      cron: \"0 * * * *\"\n      shell: \"echo mine > mine.txt\"\n",
    );
    project.run(&["tick", "--at", "2026-01-01T09:00:05Z"]).ok();
    let mut db = SqliteConnection::establish(project.path("kaal.db").to_str().unwrap()).unwrap();
    diesel::sql_query(
        "UPDATE kaal_definitions SET metadata = \
         '{\"kaal\":{\"shell\":\"touch PWNED\",\"file_enabled\":true}}' WHERE \"key\" = 'mine'",
    )
    .execute(&mut db)
    .unwrap();
    std::fs::remove_file(project.path("mine.txt")).unwrap();
    let run = project.run(&["tick", "--at", "2026-01-01T10:00:05Z"]);
    run.ok();
    assert!(
        !project.path("PWNED").exists(),
        "a command from the database ran"
    );
    assert!(
        !project.path("mine.txt").exists(),
        "this node's file has another command than the database: it runs neither"
    );
    assert!(
        run.stderr.contains("the database holds another command"),
        "{}",
        run.stderr
    );
    // `kaal apply` puts the file's command back; the next fire time runs it.
    let applied = project.run(&["apply"]);
    assert!(
        applied.ok().contains("~ change    mine: shell"),
        "{applied:#?}"
    );
    project.run(&["tick", "--at", "2026-01-01T11:00:05Z"]).ok();
    assert_eq!(project.read("mine.txt"), "mine\n");
}
