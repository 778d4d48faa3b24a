//! End to end on SQLite: two applications with their own namespaces and scheduler files on
//! one database file, both defining a job `sync`. Each `kaal tick`, `enable`/`disable` and
//! `status` sees and changes only its own namespace's definitions.
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used)]

mod common;

use common::{kaal, sorted_lines, Project, Run};
use kaal_core::{DefinitionRegistry, DefinitionSource};
use kaal_diesel_sqlite::SqliteStore;

/// The scheduler file of `app`: `sync` on `cron`, writing `{fire_time} {app}` to
/// `out/{app}-sync.log`, and a job only this application has.
fn jobs(app: &str, cron: &str) -> String {
    format!(
        "\
defaults:
  jobs:
    - key: sync
      cron: \"{cron}\"
      shell: \"echo {{{{fire_time.unix}}}} {app} >> out/{app}-sync.log\"
    - key: only-{app}
      cron: \"@daily\"
      command: [\"true\"]
"
    )
}

/// Writes `{app}.yml` (namespace `app`, the shared database, `{app}-scheduler.yml`) and the
/// scheduler file.
fn write_app(project: &Project, app: &str, cron: &str) {
    project.write(
        &format!("{app}.yml"),
        &format!(
            "defaults:\n  database_url: sqlite://{}\n  recovery_startup_jitter: 0\n  namespace: {app}\n  scheduler_config_path: {app}-scheduler.yml\n",
            project.path("kaal.db").display()
        ),
    );
    project.write(&format!("{app}-scheduler.yml"), &jobs(app, cron));
}

/// `kaal --config <project>/{app}.yml ARGS...`, run in the project directory.
fn run(project: &Project, app: &str, args: &[&str]) -> Run {
    let mut command = kaal(args);
    command
        .arg("--config")
        .arg(project.path(&format!("{app}.yml")))
        .current_dir(project.dir.path());
    Run::from(command.output().unwrap())
}

/// The `status` table row of `key` under `app`, if listed.
fn status_row(project: &Project, app: &str, key: &str) -> Option<String> {
    run(project, app, &["status"])
        .ok()
        .lines()
        .find(|line| line.starts_with(&format!("{key} ")))
        .map(str::to_string)
}

#[test]
fn two_namespaces_on_one_database_keep_their_own_definition_of_the_same_key() {
    let project = Project::new();
    std::fs::create_dir_all(project.path("out")).unwrap();
    write_app(&project, "app1", "*/5 * * * *");
    write_app(&project, "app2", "0 * * * *");

    // Each application applies its own file and runs its own `sync`.
    let at = "2026-03-02T10:00:30Z";
    let tick1 = run(&project, "app1", &["tick", "--at", at]);
    assert!(
        tick1.ok().contains("dispatched sync 2026-03-02T10:00:00Z"),
        "{tick1:#?}"
    );
    let tick2 = run(&project, "app2", &["tick", "--at", at]);
    assert!(
        tick2.ok().contains("dispatched sync 2026-03-02T10:00:00Z"),
        "app2's sync did not run after app1's: {tick2:#?}"
    );
    assert!(
        !tick2.stderr.contains("removed"),
        "app2's apply removed a definition: {tick2:#?}"
    );
    assert_eq!(
        sorted_lines(&project.path("out/app1-sync.log")),
        ["1772445600 app1"]
    );
    assert_eq!(
        sorted_lines(&project.path("out/app2-sync.log")),
        ["1772445600 app2"]
    );

    // The database holds both definitions of `sync`, each under its namespace, and app2's
    // apply neither deleted nor changed app1's.
    let store = SqliteStore::open(project.path("kaal.db").to_str().unwrap()).unwrap();
    let keys = |namespace: &str| {
        store
            .all_definitions(namespace)
            .unwrap()
            .into_iter()
            .map(|d| d.key)
            .collect::<Vec<_>>()
    };
    assert_eq!(keys("app1"), ["only-app1", "sync"]);
    assert_eq!(keys("app2"), ["only-app2", "sync"]);
    assert!(keys("kaal").is_empty());
    let sync1 = store.find_definition("app1", "sync").unwrap().unwrap();
    assert_eq!(
        (sync1.cron.as_str(), sync1.enabled, sync1.source),
        ("*/5 * * * *", true, DefinitionSource::File)
    );
    assert!(
        format!("{:?}", sync1.metadata).contains("app1-sync.log"),
        "{:?}",
        sync1.metadata
    );
    let sync2 = store.find_definition("app2", "sync").unwrap().unwrap();
    assert_eq!(sync2.cron, "0 * * * *");
    assert!(
        format!("{:?}", sync2.metadata).contains("app2-sync.log"),
        "{:?}",
        sync2.metadata
    );

    // `status` under each shows its own `sync` and only its own jobs.
    let row1 = status_row(&project, "app1", "sync").unwrap();
    assert!(
        row1.contains("*/5 * * * *") && row1.contains(" yes "),
        "{row1}"
    );
    let row2 = status_row(&project, "app2", "sync").unwrap();
    assert!(
        row2.contains("0 * * * *") && !row2.contains("*/5"),
        "{row2}"
    );
    assert!(status_row(&project, "app1", "only-app2").is_none());
    assert!(status_row(&project, "app2", "only-app1").is_none());

    // Disabling `sync` under app2 leaves app1's enabled, and app1's next tick still runs it.
    run(&project, "app2", &["disable", "sync"]).ok();
    let row2 = status_row(&project, "app2", "sync").unwrap();
    assert!(row2.contains(" no "), "{row2}");
    let row1 = status_row(&project, "app1", "sync").unwrap();
    assert!(
        row1.contains(" yes "),
        "app2's disable reached app1: {row1}"
    );
    assert!(
        store
            .find_definition("app1", "sync")
            .unwrap()
            .unwrap()
            .enabled
    );
    let later = "2026-03-02T11:00:30Z";
    let tick1 = run(&project, "app1", &["tick", "--at", later]);
    assert!(
        tick1.ok().contains("dispatched sync 2026-03-02T11:00:00Z"),
        "{tick1:#?}"
    );
    let tick2 = run(&project, "app2", &["tick", "--at", later]);
    assert!(!tick2.ok().contains("dispatched sync"), "{tick2:#?}");

    // app2 drops `sync` from its file: its apply removes its own definition only.
    project.write(
        "app2-scheduler.yml",
        "defaults:\n  jobs:\n    - key: only-app2\n      cron: \"@daily\"\n      command: [\"true\"]\n",
    );
    run(&project, "app2", &["tick", "--at", later]).ok();
    assert!(
        !store
            .find_definition("app2", "sync")
            .unwrap()
            .unwrap()
            .metadata
            .contains_key("removed"),
        "a tick never removes a stored job"
    );
    run(&project, "app2", &["apply"]).ok();
    assert!(kaal::is_removed(
        &store.find_definition("app2", "sync").unwrap().unwrap()
    ));
    assert_eq!(
        keys("app2"),
        ["only-app2", "sync"],
        "removed jobs are kept, marked"
    );
    assert_eq!(keys("app1"), ["only-app1", "sync"]);
    let kept = store.find_definition("app1", "sync").unwrap().unwrap();
    assert_eq!(
        (kept.cron.as_str(), kept.enabled, kept.created_at),
        ("*/5 * * * *", true, sync1.created_at)
    );
    // `enable` of a key this namespace removed is refused, naming the way back.
    run(&project, "app2", &["enable", "sync"]).fails(2, &["sync", "removed by `kaal apply`"]);
    run(&project, "app2", &["enable", "never-stored"]).fails(2, &["never-stored"]);
}
