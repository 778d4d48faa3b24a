//! The coordinator's view of its jobs: which are enabled, on which cron, and the earliest
//! fire time of each that this node has not settled yet.
//!
//! Keeping `next_due` per job is what makes ticks cheap: a job whose next unsettled fire time
//! is in the future costs one comparison, so a tick with nothing due touches neither the cron
//! calendar nor the database, and each fire time is claimed once per node, not once per tick.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;

use crate::cron::CronExpr;
use crate::definition::Definition;
use crate::policy::JobPolicy;
use crate::registry::{Callback, Entry};

/// One job as the coordinator schedules it.
pub(crate) struct Job {
    pub key: String,
    pub cron: Arc<CronExpr>,
    pub callback: Callback,
    /// The policies stored with the job's definition (the defaults without one).
    pub policy: Arc<JobPolicy>,
    /// The zone its cron is read in: its policy's `time_zone`, else the node's.
    pub tz: Tz,
    pub enabled: bool,
    /// When the stored definition's current schedule came into force
    /// ([`Definition::schedule_since`]; `None` without a definition store): no fire time
    /// before it is owed.
    pub schedule_since: Option<DateTime<Utc>>,
    /// Earliest fire time not yet settled by this node; `None` when the cron never fires again.
    pub next_due: Option<DateTime<Utc>>,
}

/// A fire time this node is about to try to claim.
#[derive(Clone)]
pub(crate) struct Candidate {
    pub key: String,
    pub fire_time: DateTime<Utc>,
    pub callback: Callback,
    pub policy: Arc<JobPolicy>,
    /// Set when a policy skips it: the fire time is claimed and recorded `skipped` with
    /// this reason instead of running.
    pub skip: Option<String>,
}

/// Every job of the coordinator, by key.
#[derive(Default)]
pub(crate) struct Schedule {
    jobs: Vec<Job>,
    index: HashMap<String, usize>,
    /// Parsed stored crons that differ from the registered ones, by expression.
    parsed: HashMap<String, Arc<CronExpr>>,
    pub registry_generation: Option<u64>,
    pub loaded_at: Option<DateTime<Utc>>,
    /// How far a job's `schedule_since` may lie after `now` and still count as in force:
    /// `schedule_since` is stamped by the database's clock, `now` read from this node's, so
    /// a job created a moment ago can look a little in the future to a node whose clock is
    /// behind. Within this tolerance (the coordinator's `max_clock_offset`, the skew beyond
    /// which it refuses to claim at all) the pass is a real-time one and the strict owed
    /// rule holds; further out it is a pass at an explicit earlier instant.
    pub since_tolerance: Duration,
}

impl Schedule {
    /// An empty schedule that treats a `schedule_since` up to `since_tolerance` after `now`
    /// as in force (see [`since_tolerance`](Schedule::since_tolerance)).
    pub fn with_tolerance(since_tolerance: Duration) -> Self {
        Self {
            since_tolerance,
            ..Self::default()
        }
    }

    /// Whether `since` counts as in force at `now`.
    fn in_force(&self, since: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        since <= now + self.since_tolerance
    }
}

/// The zone of a job: its policy's `time_zone`, else `node` (an unknown zone, which
/// validation keeps out of the store, is logged and the node's used).
fn job_zone(key: &str, policy: &JobPolicy, node: Tz) -> Tz {
    match policy.time_zone.as_deref().map(str::parse::<Tz>) {
        None => node,
        Some(Ok(tz)) => tz,
        Some(Err(_)) => {
            log::warn!(
                "{key}: unknown time_zone {:?} in its policy; using the node's ({node})",
                policy.time_zone
            );
            node
        }
    }
}

/// The policy stored with `def`; an unreadable one is logged and the defaults apply (a bad
/// row written by hand must not stop the job, nor the fleet).
fn stored_policy(def: &Definition) -> Arc<JobPolicy> {
    match def.policy() {
        Ok(policy) => Arc::new(policy),
        Err(err) => {
            log::warn!(
                "{}: the stored policy is unreadable ({err}); running it with the default policy",
                def.key
            );
            Arc::default()
        }
    }
}

fn first_at_or_after(cron: &CronExpr, at: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
    cron.next_after(at - Duration::seconds(1), tz)
}

impl Schedule {
    /// Rebuilds the job list from the registered entries and, when the store has any
    /// definitions, the stored definitions (which decide cron and enabled state).
    ///
    /// A job whose key and cron are unchanged, and that was not disabled at the last rebuild
    /// and enabled now, keeps its progress. A new job, one whose cron changed and one that
    /// was re-enabled start again at `start_from` — but never before their schedule came
    /// into force ([`Definition::schedule_since`]), when that is not after `now`: a fire
    /// time from before then was never owed (a job created at 09:00:30 does not run its
    /// 09:00 fire time; one re-enabled at 09:03:30 does not run 09:01–09:03; one moved from
    /// hourly to every minute at 09:03:30 does not run 09:01–09:03 either). Kept progress is
    /// held to the same floor, so a node that never saw the job disabled (it was not
    /// ticking then) does not run the disabled minutes. A tick at an explicit instant before
    /// the schedule came into force (a repair or a test replaying the past) keeps the plain
    /// `start_from`.
    pub fn rebuild(
        &mut self,
        entries: Vec<Entry>,
        definitions: Option<&[Definition]>,
        start_from: DateTime<Utc>,
        now: DateTime<Utc>,
        tz: Tz,
    ) {
        let mut previous: HashMap<String, Job> = self
            .jobs
            .drain(..)
            .map(|job| (job.key.clone(), job))
            .collect();
        let stored: Option<HashMap<&str, &Definition>> = definitions
            .filter(|defs| !defs.is_empty())
            .map(|defs| defs.iter().map(|d| (d.key.as_str(), d)).collect());
        let mut jobs = Vec::with_capacity(entries.len());
        for entry in entries {
            let (cron, enabled, schedule_since, policy) = match &stored {
                None => (entry.cron.clone(), true, None, Arc::default()),
                Some(stored) => match stored.get(entry.key.as_str()) {
                    None => continue,
                    Some(def) if def.cron == entry.cron.as_str() => (
                        entry.cron.clone(),
                        def.enabled,
                        Some(def.schedule_since),
                        stored_policy(def),
                    ),
                    Some(def) => match self.parse_stored(&def.cron) {
                        Some(cron) => (
                            cron,
                            def.enabled,
                            Some(def.schedule_since),
                            stored_policy(def),
                        ),
                        None => continue,
                    },
                },
            };
            let tz = job_zone(&entry.key, &policy, tz);
            // The floor of what is owed, when the schedule came into force by `now`.
            let since = schedule_since.filter(|since| self.in_force(*since, now));
            let next_due = match previous.remove(&entry.key) {
                Some(old)
                    if old.cron.as_str() == cron.as_str()
                        && old.tz == tz
                        && (old.enabled || !enabled) =>
                {
                    match (old.next_due, since) {
                        (Some(next), Some(since)) if next < since => {
                            first_at_or_after(&cron, start_from.max(since), tz)
                        }
                        (next, _) => next,
                    }
                }
                _ => {
                    let from = since.map_or(start_from, |since| start_from.max(since));
                    first_at_or_after(&cron, from, tz)
                }
            };
            jobs.push(Job {
                key: entry.key,
                cron,
                callback: entry.callback,
                policy,
                tz,
                enabled,
                schedule_since,
                next_due,
            });
        }
        self.index = jobs
            .iter()
            .enumerate()
            .map(|(i, job)| (job.key.clone(), i))
            .collect();
        self.jobs = jobs;
    }

    fn parse_stored(&mut self, expression: &str) -> Option<Arc<CronExpr>> {
        if let Some(cron) = self.parsed.get(expression) {
            return Some(cron.clone());
        }
        match CronExpr::parse(expression) {
            Ok(cron) => {
                let cron = Arc::new(cron);
                self.parsed.insert(expression.to_string(), cron.clone());
                Some(cron)
            }
            Err(err) => {
                log::warn!("skipping a stored definition: {err}");
                None
            }
        }
    }

    /// Whether any job has a fire time due at `now` (one comparison per job).
    pub fn any_due(&self, now: DateTime<Utc>) -> bool {
        self.jobs
            .iter()
            .any(|job| job.next_due.is_some_and(|t| t <= now))
    }

    /// Moves every enabled job back to its first fire time at or after `from` (missed-run
    /// recovery) — but never before its current schedule came into force
    /// ([`Definition::schedule_since`]: its creation, last cron change or last re-enable): a
    /// fire time from before that was never owed, so a restart after a disabled hour or a
    /// cron change does not replay the hour or walk the new cron over the past. A job
    /// without a stored definition (no definition store) is not rewound. In real time the
    /// dispatch log plays no part: what was owed does not depend on what ran, so restarts
    /// cannot ratchet further back.
    ///
    /// A pass at an explicit instant *before* the schedule came into force (a test or a
    /// repair replaying the past) cannot judge what was owed by it; it falls back to the
    /// earliest fire time the dispatch log holds for the job (`first_logged`), less
    /// `lookback` — the job's first window — and rewinds nothing when the log holds none.
    /// Real-time passes never take this path.
    pub fn rewind_for_recovery(
        &mut self,
        from: DateTime<Utc>,
        now: DateTime<Utc>,
        lookback: Duration,
        first_logged: impl Fn(&str) -> Option<DateTime<Utc>>,
    ) {
        let tolerance = self.since_tolerance;
        for job in self.jobs.iter_mut().filter(|job| job.enabled) {
            let Some(since) = job.schedule_since else {
                continue;
            };
            let floor = if since <= now + tolerance {
                since.max(from)
            } else {
                match first_logged(&job.key) {
                    Some(first) => (first - lookback).max(from),
                    None => continue,
                }
            };
            if let Some(first) = first_at_or_after(&job.cron, floor, job.tz) {
                if job.next_due.is_none_or(|next| first < next) {
                    job.next_due = Some(first);
                }
            }
        }
    }

    /// Takes every due fire time `<= now` of enabled jobs, no earlier than `oldest`, and
    /// marks them settled (`next_due` moves past `now`). Disabled jobs settle without
    /// candidates: fire times that fall while a job is disabled are never dispatched.
    pub fn take_due(&mut self, now: DateTime<Utc>, oldest: DateTime<Utc>) -> Vec<Candidate> {
        let mut due = Vec::new();
        for job in &mut self.jobs {
            let Some(next) = job.next_due else { continue };
            if next > now {
                continue;
            }
            if job.enabled {
                let from = if next < oldest {
                    log::warn!(
                        "{}: fire times from {next} to {oldest} are older than the catch-up window and are skipped",
                        job.key
                    );
                    oldest
                } else {
                    next
                };
                for fire_time in job.cron.fire_times(from, now, job.tz) {
                    due.push(Candidate {
                        key: job.key.clone(),
                        fire_time,
                        callback: job.callback.clone(),
                        policy: job.policy.clone(),
                        skip: None,
                    });
                }
            }
            job.next_due = job.cron.next_after(now, job.tz);
        }
        due.sort_by(|a, b| {
            a.fire_time
                .cmp(&b.fire_time)
                .then_with(|| a.key.cmp(&b.key))
        });
        due
    }

    /// Puts fire times back as unsettled (their claim failed with an error, or its outcome
    /// is not known yet), so the next tick tries them again.
    pub fn unsettle<'a>(&mut self, candidates: impl IntoIterator<Item = &'a Candidate>) {
        for candidate in candidates {
            if let Some(&i) = self.index.get(&candidate.key) {
                let job = &mut self.jobs[i];
                if job.next_due.is_none_or(|t| candidate.fire_time < t) {
                    job.next_due = Some(candidate.fire_time);
                }
            }
        }
    }

    /// A candidate for `key` at `fire_time` when `key` is an enabled job of this node.
    pub fn runnable(&self, key: &str, fire_time: DateTime<Utc>) -> Option<Candidate> {
        let job = &self.jobs[*self.index.get(key)?];
        job.enabled.then(|| Candidate {
            key: job.key.clone(),
            fire_time,
            callback: job.callback.clone(),
            policy: job.policy.clone(),
            skip: None,
        })
    }

    /// `(key, next fire time)` of every enabled job.
    pub fn upcoming(&self) -> Vec<(String, Option<DateTime<Utc>>)> {
        self.jobs
            .iter()
            .filter(|job| job.enabled)
            .map(|job| (job.key.clone(), job.next_due))
            .collect()
    }
}
