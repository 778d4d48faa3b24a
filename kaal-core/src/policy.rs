//! Per-job policies: how a job's fire times run — overlap, catch-up and deadline, timeout,
//! retry, jitter, time zone, node loss.
//!
//! A policy is stored with the job's definition (under `metadata.kaal.policy`), so every
//! node of the fleet applies the same one, whatever its own code or file says; a job
//! without one runs with [`JobPolicy::default`].

use std::time::Duration;

/// What happens to a fire time whose previous run of the same job is still running,
/// anywhere in the fleet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Overlap {
    /// Run it anyway (default; today's behaviour).
    #[default]
    Allow,
    /// Record it `skipped` with reason `overlap`, and do not run it.
    Skip,
    /// Keep the newest such fire time waiting until the running one ends, then run it;
    /// older waiting ones are recorded `skipped (overlap)`.
    QueueOne,
}

/// Which of a job's missed fire times run when it catches up (after downtime, or a node
/// that could not claim for a while).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum CatchUp {
    /// Every owed fire time within `recovery_window` runs (default).
    #[default]
    All,
    /// Only the newest owed fire time runs; the older ones are recorded
    /// `skipped (catch-up: latest)`.
    Latest,
    /// None of the missed fire times run: only a fire time that is on time (within
    /// `tick_interval` plus one second of its instant) runs; the others are recorded
    /// `skipped (catch-up: none)`.
    None,
}

/// What happens to a run that was `dispatched` (running) on a node that is gone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum OnNodeLoss {
    /// Record it `abandoned` and do not run it again: at most once (default).
    #[default]
    Abandon,
    /// Record it `abandoned` and run the fire time again on a live node, with a higher
    /// fencing token: at least once.
    Rerun,
}

/// How failed or timed-out runs are retried: up to `max_attempts` attempts in all, waiting
/// `backoff * 2^(n-1)` (capped at `max_backoff`) before attempt `n + 1`. Every attempt is
/// recorded on the same run (its `attempt` counts up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Retry {
    /// Attempts in all, the first included (1 = no retry; the default).
    pub max_attempts: u32,
    /// The wait before the second attempt (default 10 s).
    pub backoff: Duration,
    /// The longest wait between two attempts (default 300 s).
    pub max_backoff: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            max_attempts: 1,
            backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(300),
        }
    }
}

impl Retry {
    /// The wait before attempt `next` (2 for the first retry): `backoff * 2^(next-2)`,
    /// capped at `max_backoff`.
    pub fn delay_before(&self, next: u32) -> Duration {
        let doublings = next.saturating_sub(2).min(31);
        self.backoff
            .checked_mul(1u32 << doublings)
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff)
    }
}

/// The policies of one job. Every field's default is today's behaviour.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct JobPolicy {
    /// See [`Overlap`].
    pub overlap: Overlap,
    /// See [`CatchUp`].
    pub catch_up: CatchUp,
    /// A fire time older than this when it could start is recorded
    /// `skipped (missed deadline)` instead of running (default: none).
    pub starting_deadline: Option<Duration>,
    /// The longest a run may take (default: the node's `job_timeout`).
    pub timeout: Option<Duration>,
    /// See [`Retry`].
    pub retry: Retry,
    /// A delay of up to this after the fire time before the run starts, derived from the
    /// job's key and the fire time so every node computes the same (default: none).
    pub jitter: Duration,
    /// The IANA zone the job's cron is read in (default: the node's `time_zone`).
    pub time_zone: Option<String>,
    /// See [`OnNodeLoss`].
    pub on_node_loss: OnNodeLoss,
}
