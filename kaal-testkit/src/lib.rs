//! The kaal conformance suite: what every [`kaal_core::Adapter`] must do, as one public
//! function per behaviour, each taking a [`Backend`].
//!
//! A backend (ours or a third party's) runs the whole suite with one line in a test file:
//!
//! ```ignore
//! kaal_testkit::conformance_suite!(my_crate::testing::MyBackend::default());
//! kaal_testkit::fleet_suite!(my_crate::testing::MyBackend::default()); // stores shared by OS processes
//! ```
//!
//! [`conformance_suite!`] expands into one `#[test]` per behaviour, named after it
//! (`expired_lease_is_taken_over`, `restart_with_recovery_replays_nothing_already_dispatched`,
//! ...). Each test creates its own store through [`Backend::create_store`] and drops it
//! afterwards, so tests run in parallel without sharing state. [`fleet_suite!`] adds the
//! multi-process scenario, for backends whose stores outlive a process (not the in-memory
//! one).
//!
//! The suite groups:
//! * [`locks`] — the seed's five lock behaviours, ttl expiry and takeover, release of a key
//!   not held, no re-entry, 255-byte and non-ASCII keys, `acquire_many`;
//! * [`contention`] — 16 threads racing for a key, batch acquire racing single acquire;
//! * [`registries`] — dispatch log and definition store rules;
//! * [`claims`] — the claim protocol's store behaviours: insert-only commit point,
//!   compare-and-set start and takeover, the database's clock deciding what is due and who
//!   is alive, unique node ids, namespace isolation;
//! * [`lifecycle`] — the run lifecycle: a run started once by its owner with a growing
//!   fencing token, its outcome and error text recorded by compare-and-set, a lost node's
//!   run abandoned by another, the running runs listed, every status stored as itself;
//! * [`overlap`] — runs of one job that must not overlap: `start_run_alone` starts a claim
//!   only while no other run of the job is going, as one atomic step across racing nodes
//!   (with a negative control the race must catch); a lost run rerun once as a new claim
//!   with a larger fencing token;
//! * [`owed`] — only what was owed runs: a restart storm, a disabled interval and a cron
//!   change replayed over simulated hours on the backend's own store;
//! * [`coordination`] — coordinator scenarios: code and file jobs, enable/disable, rebuilt
//!   nodes, N nodes ticking the same instant, restart recovery;
//! * [`fleet`] — K OS processes ticking one store (4 × 200 and 8 × 500 fire times);
//! * [`chaos`] — the fleet under failure: SIGKILLed nodes, restarts after outages, a
//!   database outage of at least 10 s, skewed clocks;
//! * [`adversary`] — a commit stalled past its lease, clocks hours and a day fast, two
//!   namespaces on one database, two processes with one node id.
#![deny(missing_docs)]
#![allow(clippy::unwrap_used)]

pub mod adversary;
mod backend;
pub mod chaos;
pub mod claims;
pub mod contention;
pub mod coordination;
pub mod fleet;
pub mod lifecycle;
pub mod locks;
mod memory;
pub mod outage;
pub mod overlap;
pub mod owed;
pub mod registries;
mod store;

pub use backend::Backend;
pub use memory::MemoryBackend;
pub use outage::{Outage, TcpCut};
pub use store::TestStore;

/// Expands into one `#[test]` per behaviour of the suite for the backend `$backend` (an
/// expression evaluated once per test that yields a value implementing [`Backend`]).
#[macro_export]
macro_rules! conformance_suite {
    ($backend:expr) => {
        $crate::__conformance_tests!($backend;
            locks::block_runs_and_returns_its_value,
            locks::block_is_skipped_while_another_holder_has_the_key,
            locks::key_is_reacquired_after_release,
            locks::independent_keys_do_not_interfere,
            locks::lock_is_released_after_the_block_returns_err,
            locks::lock_is_released_after_the_block_panics,
            locks::release_of_a_key_not_held_returns_false,
            locks::acquire_of_a_held_key_by_its_holder_returns_false,
            locks::expired_lease_is_taken_over,
            locks::long_and_non_ascii_keys_work,
            locks::acquire_many_answers_per_key_in_order,
            contention::sixteen_threads_racing_for_one_key_have_one_winner,
            contention::batch_acquire_racing_single_acquire_wins_each_key_once,
            registries::logged_dispatch_is_found,
            registries::logging_twice_updates_the_one_record,
            registries::dispatch_queries_filter_and_list_newest_first,
            registries::cleanup_deletes_older_records_and_counts_them,
            registries::batch_log_and_lookup_agree_with_single_ones,
            registries::definition_upsert_keeps_created_at,
            registries::disabled_at_follows_the_enabled_state,
            registries::schedule_since_moves_only_when_the_schedule_changes,
            registries::definition_metadata_round_trips,
            registries::definitions_are_listed_by_key_and_removed,
            registries::definitions_are_scoped_by_namespace,
            registries::a_definition_batch_applies_all_or_nothing,
            registries::a_definition_batch_cut_part_way_is_all_or_nothing,
            registries::enable_racing_batches_loses_no_change,
            owed::a_restart_storm_runs_each_owed_fire_time_once_and_nothing_earlier,
            owed::a_restart_after_a_disabled_interval_runs_nothing_from_it,
            owed::a_restart_after_a_cron_change_runs_nothing_of_the_new_cron_before_it,
            owed::recovery_does_not_reach_back_to_the_earliest_logged_fire_time,
            owed::a_node_that_slept_through_a_disable_and_re_enable_does_not_run_the_disabled_minutes,
            owed::a_running_node_starts_a_changed_cron_at_the_change,
            owed::re_applying_an_unchanged_definition_keeps_schedule_since,
            owed::a_node_behind_the_database_clock_does_not_run_the_minute_before_a_new_job,
            coordination::code_and_file_definitions_dispatch_in_the_same_tick,
            coordination::disabled_definition_is_dispatched_only_after_enable,
            coordination::rebuilt_coordinator_dispatches_the_next_tick,
            coordination::two_coordinators_share_the_enabled_state,
            coordination::coordinators_ticking_the_same_instant_dispatch_each_fire_time_once,
            coordination::restart_with_recovery_replays_nothing_already_dispatched,
            coordination::failing_callbacks_are_logged_and_do_not_stop_the_tick,
            claims::commit_is_insert_only_and_never_overwrites,
            claims::racing_commits_create_each_row_once,
            claims::a_claim_starts_once_and_a_takeover_is_exclusive,
            claims::unstarted_claims_are_listed_oldest_first,
            claims::the_store_refuses_to_commit_the_future,
            claims::a_tick_in_the_future_runs_nothing_early,
            claims::namespaces_do_not_share_the_dispatch_log,
            claims::node_ids_are_unique_among_live_nodes,
            claims::simultaneous_registrations_of_one_id_admit_one,
            claims::a_second_coordinator_with_a_live_node_id_is_refused,
            claims::nodes_sharing_a_node_id_without_start_do_not_both_claim,
            claims::a_dead_nodes_queued_claims_run_once_elsewhere,
            claims::a_restarted_node_takes_its_id_back_after_node_timeout,
            lifecycle::start_run_answers_the_row_id_and_later_claims_carry_larger_tokens,
            lifecycle::a_run_starts_only_by_its_owner_and_only_from_claimed,
            lifecycle::a_finished_run_records_its_outcome_and_error_text,
            lifecycle::a_run_record_from_the_wrong_status_or_node_writes_nothing,
            lifecycle::a_retried_attempt_keeps_the_run_open,
            lifecycle::a_skipped_fire_time_records_its_reason,
            lifecycle::a_dead_nodes_run_is_abandoned_by_another_node,
            lifecycle::running_runs_are_the_started_unfinished_ones_oldest_first,
            lifecycle::every_status_round_trips_through_the_store,
            overlap::start_run_alone_starts_a_claim_when_no_run_of_the_job_is_going,
            overlap::start_run_alone_is_busy_while_another_fire_time_of_the_job_runs,
            overlap::only_a_started_unfinished_run_holds_start_run_alone_back,
            overlap::start_run_alone_starts_only_the_callers_claim,
            overlap::simultaneous_alone_starts_of_one_job_start_one_run,
            overlap::the_race_catches_a_start_run_alone_that_checks_then_starts,
            overlap::a_lost_run_is_rerun_as_a_new_claim_with_a_larger_token,
            overlap::a_rerun_replaces_only_a_run_still_going_on_the_lost_node,
            overlap::simultaneous_reruns_of_one_lost_run_replace_it_once,
        );
    };
}

/// Expands into the multi-process scenario for `$backend`: a `kaal_fleet_worker` test (idle
/// unless spawned by the scenario) and `processes_dispatch_each_fire_time_once`. Invoke it
/// once per test binary.
#[macro_export]
macro_rules! fleet_suite {
    ($backend:expr) => {
        #[test]
        fn kaal_fleet_worker() {
            $crate::fleet::worker_main(&$backend);
        }

        #[test]
        fn processes_dispatch_each_fire_time_once() {
            $crate::fleet::processes_dispatch_each_fire_time_once(&$backend);
        }

        #[test]
        fn eight_processes_dispatch_500_fire_times_once() {
            $crate::fleet::eight_processes_dispatch_500_fire_times_once(&$backend);
        }

        #[test]
        fn killed_nodes_cause_no_duplicates_and_no_silent_misses() {
            $crate::chaos::killed_nodes_cause_no_duplicates_and_no_silent_misses(&$backend);
        }

        #[test]
        fn restarts_replay_nothing_and_recover_an_outage_once() {
            $crate::chaos::restarts_replay_nothing_and_recover_an_outage_once(&$backend);
        }

        #[test]
        fn database_outage_is_survived_and_caught_up_once() {
            $crate::chaos::database_outage_is_survived_and_caught_up_once(&$backend);
        }

        #[test]
        fn skewed_clocks_cause_no_duplicates() {
            $crate::chaos::skewed_clocks_cause_no_duplicates(&$backend);
        }

        #[test]
        fn a_commit_stalled_past_the_lease_runs_nothing() {
            $crate::adversary::a_commit_stalled_past_the_lease_runs_nothing(&$backend);
        }

        #[test]
        fn fast_clocks_run_nothing_early() {
            $crate::adversary::fast_clocks_run_nothing_early(&$backend);
        }

        #[test]
        fn namespaces_on_one_database_run_their_own_jobs_once() {
            $crate::adversary::namespaces_on_one_database_run_their_own_jobs_once(&$backend);
        }

        #[test]
        fn a_duplicate_node_id_is_refused() {
            $crate::adversary::a_duplicate_node_id_is_refused(&$backend);
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ($backend:expr; $($group:ident :: $name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::$group::$name(&$backend);
            }
        )*
    };
}
