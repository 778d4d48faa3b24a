//! Job keys, the namespace and the node id may not begin or end with whitespace: MariaDB and
//! MySQL compare keys ignoring trailing spaces, so `trail` and `trail ` would be one job
//! there. The CLI refuses such values in its files on every backend, naming the value.
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used)]

mod common;

use common::Project;

const TWO_TRAILS: &str = "\
defaults:
  jobs:
    - key: trail
      cron: \"0 * * * *\"
      command: [\"true\"]
    - key: \"trail \"
      cron: \"0 * * * *\"
      command: [\"true\"]
";

const ONE_JOB: &str = "\
defaults:
  jobs:
    - key: report
      cron: \"0 * * * *\"
      command: [\"true\"]
";

#[test]
fn a_job_key_with_a_trailing_space_in_the_scheduler_file_is_refused_naming_it() {
    let project = Project::sqlite("", TWO_TRAILS);
    project.run(&["migrate"]).ok();
    project
        .run(&["tick", "--at", "2026-01-01T00:00:00Z"])
        .fails(
            2,
            &[
                "kaal-scheduler.yml:6:",
                "job \"trail \": key: cron key \"trail \" begins or ends with whitespace",
                "use \"trail\"",
            ],
        );
}

#[test]
fn a_namespace_or_node_id_with_surrounding_whitespace_in_the_config_file_is_refused() {
    for (setting, named) in [
        ("  namespace: \"kaal \"\n", "namespace"),
        ("  node_id: \" web-1\"\n", "node_id"),
    ] {
        let project = Project::sqlite(setting, ONE_JOB);
        project
            .run(&["migrate"])
            .fails(2, &["kaal.yml:", named, "begins or ends with whitespace"]);
    }
}
