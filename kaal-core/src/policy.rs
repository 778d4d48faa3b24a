//! Per-job policies: how a job's fire times run — overlap, catch-up and deadline, timeout,
//! retry, jitter, time zone, node loss.
//!
//! A policy is stored with the job's definition (under `metadata.kaal.policy`), so every
//! node of the fleet applies the same one, whatever its own code or file says; a job
//! without one runs with [`JobPolicy::default`]. It is set in code with
//! [`Kaal::register_with`](crate::Kaal::register_with), or in the scheduler file under a
//! job's `policy:` (the `kaal` crate), and read back with
//! [`Definition::policy`](crate::Definition::policy).
//!
//! # Stored form
//!
//! A JSON object under `metadata.kaal.policy`; every key is optional and `null` means the
//! default. Durations are whole seconds, at most ten years ([`MAX_DURATION`]).
//!
//! | key | value | default |
//! | --- | --- | --- |
//! | `overlap` | `"allow"`, `"skip"`, `"queue_one"` ([`Overlap`]) | `"allow"` |
//! | `catch_up` | `"all"`, `"latest"`, `"none"` ([`CatchUp`]) | `"all"` |
//! | `starting_deadline` | seconds, at least 1 | none |
//! | `timeout` | seconds, at least 1 | the node's `job_timeout` |
//! | `retry` | `{"max_attempts": 1..=100, "backoff": s, "max_backoff": s}` ([`Retry`]) | `{1, 10, 300}` |
//! | `jitter` | seconds, 0 for none | 0 |
//! | `time_zone` | an IANA name such as `"Europe/Berlin"` | the node's `time_zone` |
//! | `on_node_loss` | `"abandon"`, `"rerun"` ([`OnNodeLoss`]) | `"abandon"` |
//!
//! Only fields that differ from the default are written, and an all-default policy writes
//! nothing at all ([`JobPolicy::write_metadata`]), so the metadata of jobs that never set a
//! policy stays exactly what older versions of kaal (and the Ruby gem) wrote. Reading is
//! strict: an unknown key, a value of the wrong type or out of range is a [`PolicyError`]
//! naming the key, the value and what is allowed — a node never guesses what another
//! node's newer policy meant.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use kaal_core::{CatchUp, JobPolicy, Overlap};
//!
//! let policy = JobPolicy::new()
//!     .overlap(Overlap::Skip)
//!     .catch_up(CatchUp::Latest)
//!     .timeout(Duration::from_secs(600))
//!     .retry(3, Duration::from_secs(10))
//!     .time_zone("Europe/Berlin");
//! policy.validate()?;
//!
//! let mut metadata = serde_json::Map::new();
//! policy.write_metadata(&mut metadata);
//! assert_eq!(
//!     serde_json::Value::Object(metadata.clone()).to_string(),
//!     r#"{"kaal":{"policy":{"catch_up":"latest","overlap":"skip","retry":{"max_attempts":3},"time_zone":"Europe/Berlin","timeout":600}}}"#
//! );
//! assert_eq!(JobPolicy::from_metadata(&metadata)?, policy);
//! # Ok::<(), kaal_core::PolicyError>(())
//! ```

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value};

use crate::config::MAX_DURATION;

/// The most attempts [`Retry::max_attempts`] may ask for.
pub const MAX_ATTEMPTS: u32 = 100;

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

/// The stored names of a policy enum: `as_str`, `Display`, `FromStr` (an error naming the
/// policy key and the allowed names) and `NAMES`.
macro_rules! stored_names {
    ($ty:ident, $key:literal, [$($variant:ident => $name:literal),+ $(,)?]) => {
        impl $ty {
            /// The stored names, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($name),+];

            /// The name stored in the policy (and written in the scheduler file).
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }
        }

        impl StoredName for $ty {
            const NAMES: &'static [&'static str] = $ty::NAMES;
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $ty {
            type Err = PolicyError;

            fn from_str(s: &str) -> Result<Self, PolicyError> {
                match s {
                    $($name => Ok($ty::$variant),)+
                    other => Err(PolicyError::invalid(
                        $key,
                        &Value::String(other.to_string()),
                        one_of(Self::NAMES),
                    )),
                }
            }
        }
    };
}

stored_names!(Overlap, "overlap", [Allow => "allow", Skip => "skip", QueueOne => "queue_one"]);
stored_names!(CatchUp, "catch_up", [All => "all", Latest => "latest", None => "none"]);
stored_names!(OnNodeLoss, "on_node_loss", [Abandon => "abandon", Rerun => "rerun"]);

/// How failed or timed-out runs are retried: up to `max_attempts` attempts in all, waiting
/// `backoff * 2^(n-1)` (capped at `max_backoff`) before attempt `n + 1`. Every attempt is
/// recorded on the same run (its `attempt` counts up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Retry {
    /// Attempts in all, the first included (1 = no retry; the default). At most
    /// [`MAX_ATTEMPTS`].
    pub max_attempts: u32,
    /// The wait before the second attempt (default 10 s).
    pub backoff: Duration,
    /// The longest wait between two attempts (default 300 s); at least `backoff`.
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
///
/// Build one with [`JobPolicy::new`] and the methods named like its fields, check it with
/// [`validate`](JobPolicy::validate) (registration does), store it with
/// [`write_metadata`](JobPolicy::write_metadata) and read it with
/// [`from_metadata`](JobPolicy::from_metadata); see the [module docs](self) for the stored
/// form.
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
    /// job's key and the fire time so every node computes the same (default: none); see
    /// [`jitter_for`](JobPolicy::jitter_for).
    pub jitter: Duration,
    /// The IANA zone the job's cron is read in (default: the node's `time_zone`).
    pub time_zone: Option<String>,
    /// See [`OnNodeLoss`].
    pub on_node_loss: OnNodeLoss,
}

/// The keys of a stored policy, in the order of the [module docs](self).
pub const POLICY_KEYS: &[&str] = &[
    "overlap",
    "catch_up",
    "starting_deadline",
    "timeout",
    "retry",
    "jitter",
    "time_zone",
    "on_node_loss",
];

/// The keys of a stored policy's `retry` object.
pub const RETRY_KEYS: &[&str] = &["max_attempts", "backoff", "max_backoff"];

/// The builder: `JobPolicy::new().overlap(..).timeout(..)...`.
impl JobPolicy {
    /// The default policy: today's behaviour for every field.
    pub fn new() -> Self {
        Self::default()
    }

    /// With `overlap`.
    #[must_use]
    pub fn overlap(mut self, overlap: Overlap) -> Self {
        self.overlap = overlap;
        self
    }

    /// With `catch_up`.
    #[must_use]
    pub fn catch_up(mut self, catch_up: CatchUp) -> Self {
        self.catch_up = catch_up;
        self
    }

    /// With a starting deadline (whole seconds, at least 1).
    #[must_use]
    pub fn starting_deadline(mut self, deadline: Duration) -> Self {
        self.starting_deadline = Some(deadline);
        self
    }

    /// With a timeout (whole seconds, at least 1).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// With up to `max_attempts` attempts in all, the first waiting `backoff` (doubling
    /// up to [`Retry::max_backoff`], 300 s unless set with
    /// [`max_backoff`](JobPolicy::max_backoff)).
    ///
    /// ```
    /// use std::time::Duration;
    /// let policy = kaal_core::JobPolicy::new().retry(4, Duration::from_secs(30));
    /// assert_eq!(policy.retry.delay_before(2), Duration::from_secs(30));
    /// assert_eq!(policy.retry.delay_before(4), Duration::from_secs(120));
    /// ```
    #[must_use]
    pub fn retry(mut self, max_attempts: u32, backoff: Duration) -> Self {
        self.retry.max_attempts = max_attempts;
        self.retry.backoff = backoff;
        self
    }

    /// With the longest wait between two attempts.
    #[must_use]
    pub fn max_backoff(mut self, max_backoff: Duration) -> Self {
        self.retry.max_backoff = max_backoff;
        self
    }

    /// With a jitter of up to `jitter` (whole seconds; zero for none).
    #[must_use]
    pub fn jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// With the job's cron read in the IANA zone `zone` (`"Europe/Berlin"`).
    #[must_use]
    pub fn time_zone(mut self, zone: impl Into<String>) -> Self {
        self.time_zone = Some(zone.into());
        self
    }

    /// With `on_node_loss`.
    #[must_use]
    pub fn on_node_loss(mut self, on_node_loss: OnNodeLoss) -> Self {
        self.on_node_loss = on_node_loss;
        self
    }
}

impl JobPolicy {
    /// Whether every field is the default.
    pub fn is_default(&self) -> bool {
        *self == JobPolicy::default()
    }

    /// The first problem of this policy, if it has one: `time_zone` must be an IANA name
    /// chrono-tz knows; `retry.max_attempts` from 1 to [`MAX_ATTEMPTS`];
    /// `retry.backoff <= retry.max_backoff`; every duration whole seconds and at most
    /// [`MAX_DURATION`]; `starting_deadline` and `timeout`, when set, at least one second.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kaal_core::JobPolicy;
    ///
    /// let err = JobPolicy::new().time_zone("Europe/Berln").validate().unwrap_err();
    /// assert_eq!(err.key(), "time_zone");
    /// assert!(err.to_string().contains("\"Europe/Berln\""));
    ///
    /// let err = JobPolicy::new().timeout(Duration::ZERO).validate().unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "policy timeout: 0 is not allowed; expected whole seconds from 1 to 315360000"
    /// );
    /// ```
    pub fn validate(&self) -> Result<(), PolicyError> {
        match self.problems().into_iter().next() {
            Some(problem) => Err(problem),
            None => Ok(()),
        }
    }

    /// Every problem [`validate`](JobPolicy::validate) finds, in field order.
    pub fn problems(&self) -> Vec<PolicyError> {
        let mut problems = Vec::new();
        let mut seconds = |key: &str, duration: Option<Duration>, min: u64| match duration {
            Some(d) if d.subsec_nanos() != 0 || d.as_secs() < min || d > MAX_DURATION => {
                problems.push(PolicyError::invalid(
                    key,
                    &seconds_value(d),
                    seconds_expected(min),
                ));
                false
            }
            _ => true,
        };
        seconds("starting_deadline", self.starting_deadline, 1);
        seconds("timeout", self.timeout, 1);
        let backoffs = seconds("retry.backoff", Some(self.retry.backoff), 0)
            & seconds("retry.max_backoff", Some(self.retry.max_backoff), 0);
        seconds("jitter", Some(self.jitter), 0);
        if !(1..=MAX_ATTEMPTS).contains(&self.retry.max_attempts) {
            problems.push(PolicyError::invalid(
                "retry.max_attempts",
                &Value::from(self.retry.max_attempts),
                attempts_expected(),
            ));
        }
        if backoffs && self.retry.backoff > self.retry.max_backoff {
            problems.push(PolicyError::invalid(
                "retry.backoff",
                &seconds_value(self.retry.backoff),
                format!(
                    "at most retry.max_backoff ({} s); lower backoff or raise max_backoff",
                    self.retry.max_backoff.as_secs()
                ),
            ));
        }
        if let Some(zone) = &self.time_zone {
            if let Err(problem) = zone_problem(zone) {
                problems.push(problem);
            }
        }
        problems
    }

    /// The policy stored in a definition's `metadata` (under `kaal.policy`): the default
    /// when there is none, an error naming the key, the value and what is allowed when it
    /// cannot be read or does not [`validate`](JobPolicy::validate).
    ///
    /// ```
    /// use kaal_core::{JobPolicy, Overlap};
    ///
    /// let metadata = serde_json::json!({"owner": "finance", "kaal": {"policy": {"overlap": "skip"}}});
    /// let policy = JobPolicy::from_metadata(metadata.as_object().unwrap())?;
    /// assert_eq!(policy.overlap, Overlap::Skip);
    ///
    /// let metadata = serde_json::json!({"kaal": {"policy": {"overlap": "never"}}});
    /// let err = JobPolicy::from_metadata(metadata.as_object().unwrap()).unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "policy overlap: \"never\" is not allowed; expected one of \"allow\", \"skip\", \"queue_one\""
    /// );
    /// # Ok::<(), kaal_core::PolicyError>(())
    /// ```
    pub fn from_metadata(metadata: &Map<String, Value>) -> Result<JobPolicy, PolicyError> {
        let kaal = match metadata.get("kaal") {
            None | Some(Value::Null) => return Ok(JobPolicy::default()),
            Some(Value::Object(kaal)) => kaal,
            Some(other) => {
                return Err(PolicyError::invalid(
                    "kaal",
                    other,
                    "an object (kaal's own metadata, holding the policy under \"policy\")",
                ))
            }
        };
        match kaal.get("policy") {
            None | Some(Value::Null) => Ok(JobPolicy::default()),
            Some(Value::Object(policy)) => JobPolicy::from_json(policy),
            Some(other) => Err(PolicyError::invalid(
                "kaal.policy",
                other,
                format!("an object with the keys {}", POLICY_KEYS.join(", ")),
            )),
        }
    }

    /// The policy a stored policy object (what [`to_json`](JobPolicy::to_json) writes)
    /// holds, checked like [`validate`](JobPolicy::validate); the first problem otherwise.
    /// Keys left out, or `null`, are the default.
    pub fn from_json(object: &Map<String, Value>) -> Result<JobPolicy, PolicyError> {
        match JobPolicy::from_json_all(object) {
            Ok(policy) => Ok(policy),
            Err(problems) => Err(problems
                .into_iter()
                .next()
                .unwrap_or_else(|| PolicyError::unknown("", POLICY_KEYS))),
        }
    }

    /// Like [`from_json`](JobPolicy::from_json), with every problem instead of the first
    /// (never an empty list): each key's own, or when every key reads well, those of
    /// [`problems`](JobPolicy::problems) (`retry.backoff` above `retry.max_backoff`). The
    /// scheduler file reports each with its line.
    pub fn from_json_all(object: &Map<String, Value>) -> Result<JobPolicy, Vec<PolicyError>> {
        let mut policy = JobPolicy::default();
        let mut problems = Vec::new();
        for (key, value) in object {
            if value.is_null() {
                if !POLICY_KEYS.contains(&key.as_str()) {
                    problems.push(PolicyError::unknown(key, POLICY_KEYS));
                }
                continue;
            }
            let read = match key.as_str() {
                "overlap" => name(key, value).map(|v| policy.overlap = v),
                "catch_up" => name(key, value).map(|v| policy.catch_up = v),
                "on_node_loss" => name(key, value).map(|v| policy.on_node_loss = v),
                "starting_deadline" => {
                    seconds(key, value, 1).map(|v| policy.starting_deadline = Some(v))
                }
                "timeout" => seconds(key, value, 1).map(|v| policy.timeout = Some(v)),
                "jitter" => seconds(key, value, 0).map(|v| policy.jitter = v),
                "time_zone" => match value {
                    Value::String(zone) => {
                        zone_problem(zone).map(|()| policy.time_zone = Some(zone.clone()))
                    }
                    other => Err(PolicyError::invalid(
                        key,
                        other,
                        "an IANA time zone name as a string, such as \"Europe/Berlin\"",
                    )),
                },
                "retry" => {
                    policy.retry = retry(value, &mut problems);
                    Ok(())
                }
                unknown => Err(PolicyError::unknown(unknown, POLICY_KEYS)),
            };
            if let Err(problem) = read {
                problems.push(problem);
            }
        }
        if problems.is_empty() {
            problems = policy.problems();
        }
        if problems.is_empty() {
            Ok(policy)
        } else {
            Err(problems)
        }
    }

    /// The stored form of this policy: only the fields that differ from the default (an
    /// empty object for the default policy); see the [module docs](self).
    pub fn to_json(&self) -> Map<String, Value> {
        let default = JobPolicy::default();
        let mut object = Map::new();
        if self.overlap != default.overlap {
            object.insert("overlap".into(), self.overlap.as_str().into());
        }
        if self.catch_up != default.catch_up {
            object.insert("catch_up".into(), self.catch_up.as_str().into());
        }
        if let Some(deadline) = self.starting_deadline {
            object.insert("starting_deadline".into(), seconds_value(deadline));
        }
        if let Some(timeout) = self.timeout {
            object.insert("timeout".into(), seconds_value(timeout));
        }
        let mut retry = Map::new();
        if self.retry.max_attempts != default.retry.max_attempts {
            retry.insert("max_attempts".into(), self.retry.max_attempts.into());
        }
        if self.retry.backoff != default.retry.backoff {
            retry.insert("backoff".into(), seconds_value(self.retry.backoff));
        }
        if self.retry.max_backoff != default.retry.max_backoff {
            retry.insert("max_backoff".into(), seconds_value(self.retry.max_backoff));
        }
        if !retry.is_empty() {
            object.insert("retry".into(), Value::Object(retry));
        }
        if self.jitter != default.jitter {
            object.insert("jitter".into(), seconds_value(self.jitter));
        }
        if let Some(zone) = &self.time_zone {
            object.insert("time_zone".into(), zone.as_str().into());
        }
        if self.on_node_loss != default.on_node_loss {
            object.insert("on_node_loss".into(), self.on_node_loss.as_str().into());
        }
        object
    }

    /// Stores this policy in a definition's `metadata`, under `kaal.policy`, replacing any
    /// policy stored there and keeping every other key. Only non-default fields are
    /// written; the default policy removes `kaal.policy`, and `kaal` too when nothing else
    /// is left in it, so the metadata of a job without a policy is exactly what versions
    /// of kaal without policies wrote. A `kaal` value that is not an object is replaced.
    ///
    /// ```
    /// use kaal_core::{JobPolicy, OnNodeLoss};
    ///
    /// let mut metadata = serde_json::json!({"owner": "ops"}).as_object().unwrap().clone();
    /// JobPolicy::new().on_node_loss(OnNodeLoss::Rerun).write_metadata(&mut metadata);
    /// assert_eq!(metadata["kaal"]["policy"]["on_node_loss"], "rerun");
    ///
    /// JobPolicy::default().write_metadata(&mut metadata);
    /// assert_eq!(serde_json::Value::Object(metadata).to_string(), r#"{"owner":"ops"}"#);
    /// ```
    pub fn write_metadata(&self, metadata: &mut Map<String, Value>) {
        let policy = self.to_json();
        if policy.is_empty() {
            if let Some(Value::Object(kaal)) = metadata.get_mut("kaal") {
                kaal.remove("policy");
                if kaal.is_empty() {
                    metadata.remove("kaal");
                }
            }
            return;
        }
        let kaal = metadata
            .entry("kaal")
            .or_insert_with(|| Value::Object(Map::new()));
        if !kaal.is_object() {
            *kaal = Value::Object(Map::new());
        }
        if let Value::Object(kaal) = kaal {
            kaal.insert("policy".into(), Value::Object(policy));
        }
    }

    /// The delay before the run of `key`'s `fire_time` starts: a duration in
    /// `[0, jitter]`, at millisecond resolution, the same on every node, in every process
    /// and every version of kaal (zero when `jitter` is zero).
    ///
    /// It is a fixed function of the bytes of `key` and of `fire_time`'s unix seconds —
    /// FNV-1a 64 over the key's bytes then the seconds as 8 big-endian bytes, finished by
    /// the SplitMix64 mixer, scaled onto `0..=jitter_ms` by a 128-bit multiply — never a
    /// per-process seeded hash, so a fire time is delayed alike wherever it is claimed.
    /// Changing the function would make nodes of two versions disagree; it is pinned by a
    /// known-answer test.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kaal_core::{chrono::{TimeZone, Utc}, JobPolicy};
    ///
    /// let policy = JobPolicy::new().jitter(Duration::from_secs(30));
    /// let at = Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap();
    /// let delay = policy.jitter_for("reports:daily", at);
    /// assert!(delay <= Duration::from_secs(30));
    /// assert_eq!(delay, policy.jitter_for("reports:daily", at));
    /// ```
    pub fn jitter_for(&self, key: &str, fire_time: DateTime<Utc>) -> Duration {
        let span = u64::try_from(self.jitter.as_millis()).unwrap_or(u64::MAX);
        if span == 0 {
            return Duration::ZERO;
        }
        let hash = mix64(fnv1a64(
            key.bytes().chain(fire_time.timestamp().to_be_bytes()),
        ));
        let scaled = (u128::from(hash) * (u128::from(span) + 1)) >> 64;
        Duration::from_millis(u64::try_from(scaled).unwrap_or(span))
    }
}

/// FNV-1a, 64 bits.
fn fnv1a64(bytes: impl IntoIterator<Item = u8>) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.into_iter().fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

/// SplitMix64's finaliser: spreads FNV's weak high bits over the whole word.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A stored policy that cannot be used: the key (a path such as `retry.backoff`), what it
/// holds and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A key policies do not have.
    #[error("unknown policy key {key:?}; known: {known}")]
    UnknownKey {
        /// The key, as a path (`retry.attempts`).
        key: String,
        /// The keys allowed there, comma-separated.
        known: String,
    },
    /// A value of the wrong type or out of range.
    #[error("policy {key}: {found} is not allowed; expected {expected}")]
    Invalid {
        /// The key, as a path (`retry.backoff`).
        key: String,
        /// The value, as JSON (`"skipp"`, `-1`, `1.5`).
        found: String,
        /// What is allowed there.
        expected: String,
    },
}

impl PolicyError {
    /// The key the error is about, as a path (`overlap`, `retry.max_attempts`).
    pub fn key(&self) -> &str {
        match self {
            PolicyError::UnknownKey { key, .. } | PolicyError::Invalid { key, .. } => key,
        }
    }

    fn invalid(key: &str, found: &Value, expected: impl Into<String>) -> Self {
        PolicyError::Invalid {
            key: key.to_string(),
            found: found.to_string(),
            expected: expected.into(),
        }
    }

    fn unknown(key: &str, known: &[&str]) -> Self {
        PolicyError::UnknownKey {
            key: key.to_string(),
            known: known.join(", "),
        }
    }
}

/// `one of "a", "b", "c"`.
fn one_of(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    format!("one of {}", quoted.join(", "))
}

/// What a duration key accepts.
fn seconds_expected(min: u64) -> String {
    format!("whole seconds from {min} to {}", MAX_DURATION.as_secs())
}

/// A duration as stored: its whole seconds.
fn seconds_value(duration: Duration) -> Value {
    if duration.subsec_nanos() == 0 {
        Value::from(duration.as_secs())
    } else {
        serde_json::Number::from_f64(duration.as_secs_f64()).map_or(Value::Null, Value::Number)
    }
}

/// What `retry.max_attempts` accepts.
fn attempts_expected() -> String {
    format!("a whole number from 1 (no retry) to {MAX_ATTEMPTS}")
}

/// A problem with a time zone name, if it is not one chrono-tz knows.
fn zone_problem(zone: &str) -> Result<(), PolicyError> {
    match zone.parse::<Tz>() {
        Ok(_) => Ok(()),
        Err(_) => Err(PolicyError::invalid(
            "time_zone",
            &Value::String(zone.to_string()),
            "an IANA time zone name such as \"Europe/Berlin\", \"America/New_York\" or \"UTC\"",
        )),
    }
}

/// A stored duration: a whole number of seconds from `min` to [`MAX_DURATION`].
fn seconds(key: &str, value: &Value, min: u64) -> Result<Duration, PolicyError> {
    match value.as_u64() {
        Some(secs) if secs >= min && secs <= MAX_DURATION.as_secs() => {
            Ok(Duration::from_secs(secs))
        }
        _ => Err(PolicyError::invalid(key, value, seconds_expected(min))),
    }
}

/// A policy enum stored by name.
trait StoredName: FromStr<Err = PolicyError> {
    const NAMES: &'static [&'static str];
}

/// A stored enum name.
fn name<T: StoredName>(key: &str, value: &Value) -> Result<T, PolicyError> {
    value
        .as_str()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| PolicyError::invalid(key, value, one_of(T::NAMES)))
}

/// A stored `retry` object; its problems go to `problems`.
fn retry(value: &Value, problems: &mut Vec<PolicyError>) -> Retry {
    let mut retry = Retry::default();
    let Value::Object(object) = value else {
        problems.push(PolicyError::invalid(
            "retry",
            value,
            format!("an object with the keys {}", RETRY_KEYS.join(", ")),
        ));
        return retry;
    };
    for (key, value) in object {
        let path = format!("retry.{key}");
        if value.is_null() {
            if !RETRY_KEYS.contains(&key.as_str()) {
                problems.push(PolicyError::unknown(&path, RETRY_KEYS));
            }
            continue;
        }
        let read = match key.as_str() {
            "max_attempts" => value
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| (1..=MAX_ATTEMPTS).contains(n))
                .map(|n| retry.max_attempts = n)
                .ok_or_else(|| PolicyError::invalid(&path, value, attempts_expected())),
            "backoff" => seconds(&path, value, 0).map(|v| retry.backoff = v),
            "max_backoff" => seconds(&path, value, 0).map(|v| retry.max_backoff = v),
            _ => Err(PolicyError::unknown(&path, RETRY_KEYS)),
        };
        if let Err(problem) = read {
            problems.push(problem);
        }
    }
    retry
}
