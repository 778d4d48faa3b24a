//! What a tick would do, computed without doing it: [`Coordinator::preview_at`].
//!
//! The preview reads and never writes: it claims nothing, runs no callback, leaves the
//! coordinator's own schedule (what this node has settled) untouched, and writes neither
//! definitions nor the dispatch log. It is what `kaal tick --dry-run` prints.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::Coordinator;
use crate::cron::CronExpr;
use crate::definition::Definition;
use crate::dispatch::{dispatch_log_key, CLAIM_TOLERANCE};
use crate::error::RegistryError;

/// What a tick at the previewed instant would do with one fire time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreviewOutcome {
    /// Not in the dispatch log and due by the database's clock: the tick would try to claim
    /// it and, winning the claim, run it.
    WouldClaim,
    /// The dispatch log already has it (either key form, any status): skipped.
    AlreadyDispatched,
    /// Later than the database's now plus [`CLAIM_TOLERANCE`]: the store would refuse to
    /// commit it ([`Commit::Early`](crate::Commit::Early)), whatever the instant asked for.
    NotYetDue,
}

impl PreviewOutcome {
    /// A short phrase for listings: `would claim`, `already dispatched`, `not yet due`.
    pub fn as_str(self) -> &'static str {
        match self {
            PreviewOutcome::WouldClaim => "would claim",
            PreviewOutcome::AlreadyDispatched => "already dispatched",
            PreviewOutcome::NotYetDue => "not yet due",
        }
    }
}

/// One fire time of a [`Coordinator::preview_at`] answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preview {
    /// The cron key.
    pub key: String,
    /// The scheduled instant.
    pub fire_time: DateTime<Utc>,
    /// What the tick would do with it.
    pub outcome: PreviewOutcome,
}

/// The previewed fire times and the database's clock they were judged by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewReport {
    /// Every fire time in the window, oldest first, then by key.
    pub fire_times: Vec<Preview>,
    /// The store's clock when the preview was made (`None` when the store keeps no node
    /// registry to ask; nothing is then marked [`PreviewOutcome::NotYetDue`]).
    pub database_now: Option<DateTime<Utc>>,
}

impl Coordinator {
    /// What a one-shot tick at `now` would do, read-only.
    ///
    /// For each job registered in this process whose schedule is enabled, lists its fire
    /// times in `[now - window_lookback, now]` — the window a fresh node's first tick takes —
    /// and says of each whether the tick would claim it, whether the dispatch log already
    /// has it, or whether the database's clock says it is not due yet. A stored definition
    /// decides the job's cron and enabled state (as on every tick), and nothing from before
    /// it was created is owed; a registered job with no stored definition yet is previewed
    /// with its registered cron, as the tick that stores it would run it.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kaal_core::chrono::{TimeZone, Utc};
    /// use kaal_core::{Config, Kaal, MemoryAdapter, PreviewOutcome};
    ///
    /// let kaal = Kaal::new(Config::default(), Arc::new(MemoryAdapter::new()))?;
    /// kaal.register("report", "0 9 * * *", |_: &kaal_core::Fire| Ok(()))?;
    /// let at = Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 30).unwrap();
    /// let preview = kaal.coordinator().preview_at(at)?;
    /// assert_eq!(preview.fire_times.len(), 1);
    /// assert_eq!(preview.fire_times[0].outcome, PreviewOutcome::WouldClaim);
    /// assert!(kaal.tick_at(at).dispatched.len() == 1); // the preview claimed nothing
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn preview_at(&self, now: DateTime<Utc>) -> Result<PreviewReport, RegistryError> {
        let inner = &self.inner;
        let config = &inner.config;
        let namespace = config.namespace.as_str();
        let stored: HashMap<String, Definition> = match inner.adapter.definition_registry() {
            Some(store) => store
                .all_definitions(namespace)?
                .into_iter()
                .map(|d| (d.key.clone(), d))
                .collect(),
            None => HashMap::new(),
        };
        let lookback =
            chrono::Duration::from_std(config.window_lookback).unwrap_or(chrono::Duration::MAX);
        let window_start = now.checked_sub_signed(lookback).unwrap_or(now);
        let mut due: Vec<(String, DateTime<Utc>)> = Vec::new();
        for entry in inner.registry.entries() {
            let (cron, from) = match stored.get(&entry.key) {
                None => (entry.cron.clone(), window_start),
                Some(def) if !def.enabled => continue,
                Some(def) => {
                    // What is owed starts when the schedule came into force (as on a tick).
                    let from = if def.schedule_since <= now {
                        window_start.max(def.schedule_since)
                    } else {
                        window_start
                    };
                    if def.cron == entry.cron.as_str() {
                        (entry.cron.clone(), from)
                    } else {
                        match CronExpr::parse(&def.cron) {
                            Ok(cron) => (Arc::new(cron), from),
                            Err(err) => {
                                log::warn!("preview skips a stored definition: {err}");
                                continue;
                            }
                        }
                    }
                }
            };
            due.extend(
                cron.fire_times(from, now, inner.tz)
                    .into_iter()
                    .map(|t| (entry.key.clone(), t)),
            );
        }
        due.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));

        let log = inner
            .adapter
            .dispatch_registry()
            .filter(|_| config.enable_log_dispatch_registry);
        let seen = match log {
            Some(log) if !due.is_empty() => {
                let mut pairs = Vec::with_capacity(due.len() * 2);
                for (key, fire_time) in &due {
                    pairs.push((dispatch_log_key(namespace, key), *fire_time));
                    pairs.push((key.clone(), *fire_time));
                }
                log.dispatched_many(&pairs)?
                    .chunks(2)
                    .map(|both| both.iter().any(|s| *s))
                    .collect()
            }
            _ => vec![false; due.len()],
        };
        let database_now = match inner.adapter.node_registry() {
            Some(nodes) => Some(nodes.database_now()?),
            None => None,
        };
        let tolerance =
            chrono::Duration::from_std(CLAIM_TOLERANCE).unwrap_or(chrono::Duration::zero());
        let latest = database_now.and_then(|db| db.checked_add_signed(tolerance));
        let fire_times = due
            .into_iter()
            .zip(seen)
            .map(|((key, fire_time), seen)| Preview {
                outcome: if seen {
                    PreviewOutcome::AlreadyDispatched
                } else if latest.is_some_and(|latest| fire_time > latest) {
                    PreviewOutcome::NotYetDue
                } else {
                    PreviewOutcome::WouldClaim
                },
                key,
                fire_time,
            })
            .collect();
        Ok(PreviewReport {
            fire_times,
            database_now,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::{TimeZone, Utc};

    use crate::{Config, Fire, Kaal, MemoryAdapter, PreviewOutcome};

    fn noop(_: &Fire) -> Result<(), crate::JobError> {
        Ok(())
    }

    #[test]
    fn a_preview_claims_nothing_and_leaves_the_next_tick_its_work() {
        let adapter = Arc::new(MemoryAdapter::new());
        let kaal = Kaal::new(Config::default(), adapter.clone()).unwrap();
        kaal.register("every-minute", "* * * * *", noop).unwrap();
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 30).unwrap();
        let preview = kaal.coordinator().preview_at(at).unwrap();
        let times: Vec<_> = preview
            .fire_times
            .iter()
            .map(|p| (p.fire_time, p.outcome))
            .collect();
        let at_minute = |h: u32, m: u32| Utc.with_ymd_and_hms(2026, 1, 1, h, m, 0).unwrap();
        assert_eq!(
            times,
            [
                (at_minute(8, 59), PreviewOutcome::WouldClaim),
                (at_minute(9, 0), PreviewOutcome::WouldClaim)
            ]
        );
        let report = kaal.tick_at(at);
        assert_eq!(report.dispatched.len(), 2, "{report:?}");
        let again = kaal.coordinator().preview_at(at).unwrap();
        assert!(again
            .fire_times
            .iter()
            .all(|p| p.outcome == PreviewOutcome::AlreadyDispatched));
    }

    #[test]
    fn a_preview_marks_what_the_database_clock_says_is_not_yet_due() {
        let adapter = Arc::new(MemoryAdapter::new());
        let kaal = Kaal::new(Config::default(), adapter).unwrap();
        kaal.register("every-minute", "* * * * *", noop).unwrap();
        // The memory store's clock is the system clock: an hour ahead is not due.
        let at = Utc::now() + chrono::Duration::hours(1);
        let preview = kaal.coordinator().preview_at(at).unwrap();
        assert!(preview.database_now.is_some());
        assert!(!preview.fire_times.is_empty());
        assert!(preview
            .fire_times
            .iter()
            .all(|p| p.outcome == PreviewOutcome::NotYetDue));
    }

    #[test]
    fn a_disabled_stored_job_is_not_previewed() {
        let adapter = Arc::new(MemoryAdapter::new());
        let kaal = Kaal::new(Config::default(), adapter).unwrap();
        kaal.register("report", "* * * * *", noop).unwrap();
        kaal.disable("report").unwrap();
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 30).unwrap();
        assert!(kaal
            .coordinator()
            .preview_at(at)
            .unwrap()
            .fire_times
            .is_empty());
    }
}
