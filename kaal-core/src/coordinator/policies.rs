//! Which due fire times run and which are taken only to be recorded `skipped`: the
//! catch-up and starting-deadline policies, applied the same way by every node.
//!
//! A skipped fire time is claimed exactly like one that runs — lock, insert-only commit —
//! and then its row moves `claimed → skipped` with the reason, instead of starting. So the
//! log explains every fire time, and a skip, like a run, happens once across the fleet.
//!
//! The rules, for a pass at `now` (the node's clock, or the instant of `tick_at`):
//!
//! * `catch_up: latest` — of one job's fire times due in the pass, only the newest runs;
//!   the older ones are `skipped (catch-up: latest)`. After a 3 h outage, one run.
//! * `catch_up: none` — a fire time later than `tick_interval` plus one second is
//!   `skipped (catch-up: none)`: only a fire time that is on time runs.
//! * `starting_deadline: N` — a fire time more than `N` s late is
//!   `skipped (missed deadline)`. The boundary runs: exactly `N` s late is on time.
//!
//! The same rules hold for claimed fire times that start later (the sweep), except
//! `latest`, which needs the pass's view of the newer fire times.
//!
//! With `jitter`, a fire time is due from its instant plus its jitter
//! ([`JobPolicy::jitter_for`](crate::JobPolicy::jitter_for), the same on every node), and
//! lateness is counted from then.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{chrono_duration, Inner};
use crate::policy::CatchUp;
use crate::schedule::Candidate;

impl Inner {
    /// Marks the fire times of `due` that the policies skip (their `skip` reason is set).
    pub(super) fn triage(&self, due: &mut [Candidate], now: DateTime<Utc>) {
        let mut newest: HashMap<&str, DateTime<Utc>> = HashMap::new();
        for c in due.iter() {
            if c.policy.catch_up == CatchUp::Latest {
                let at = newest.entry(c.key.as_str()).or_insert(c.fire_time);
                *at = (*at).max(c.fire_time);
            }
        }
        let newest: HashMap<String, DateTime<Utc>> = newest
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        for c in due.iter_mut() {
            let newer = newest.get(&c.key).is_some_and(|at| *at > c.fire_time);
            c.skip = if newer {
                Some("catch-up: latest (a newer fire time of the job is due)".to_string())
            } else {
                self.late_reason(c, now)
            };
        }
    }

    /// Why `candidate` is too late to start at `now`, by `catch_up: none` or
    /// `starting_deadline`; `None` when it may start.
    pub(super) fn late_reason(&self, candidate: &Candidate, now: DateTime<Utc>) -> Option<String> {
        let late = now - start_instant(candidate);
        let late_s = late.num_milliseconds() as f64 / 1000.0;
        if candidate.policy.catch_up == CatchUp::None {
            let on_time = self.config.tick_interval + std::time::Duration::from_secs(1);
            if late > chrono_duration(on_time) {
                return Some(format!(
                    "catch-up: none ({late_s:.3} s late; on time is within tick_interval + 1 s = {} s)",
                    on_time.as_secs()
                ));
            }
        }
        let deadline = candidate.policy.starting_deadline?;
        (late > chrono_duration(deadline)).then(|| {
            format!(
                "missed deadline ({late_s:.3} s late; starting_deadline {} s)",
                deadline.as_secs()
            )
        })
    }
}

/// When `candidate` may start: its fire time plus its jitter.
pub(super) fn start_instant(candidate: &Candidate) -> DateTime<Utc> {
    let jitter = candidate
        .policy
        .jitter_for(&candidate.key, candidate.fire_time);
    candidate.fire_time + chrono_duration(jitter)
}
