//! The dispatch log: which fire time of which job was dispatched, by which node, and how it
//! went. It is what makes restarts safe: a fire time found here is never dispatched again.

use std::fmt;
use std::str::FromStr;

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::error::RegistryError;
use crate::keys::parse_lock_key;

/// Where a fire time's run stands: its row in the dispatch log moves
/// `claimed → dispatched → succeeded | failed | timed_out | abandoned`, or
/// `claimed → skipped`.
///
/// Every status means the fire time **is taken**: a row of any status is never claimed or
/// run again by recovery (the Ruby gem's meaning of a row). `dispatched` is the running
/// state — the gem's word for "handed to the job" — kept so that rows of older kaal nodes
/// and of the gem read the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DispatchStatus {
    /// The fire time is taken by a node that has not started its job yet (stored as
    /// `claimed`). The commit-point insert writes it; the node moves it to `dispatched` the
    /// moment the job starts. A `claimed` row of a node that is gone is handed to a live node
    /// (see [`DispatchRegistry::reassign_claim`]), so a fire time a dead node never started
    /// still runs, once.
    Claimed,
    /// The job was started and is running, or was handed to it by a writer that records no
    /// outcome (the Ruby gem, kaal before the run lifecycle) (stored as `dispatched`).
    Dispatched,
    /// The job ran and returned success (stored as `succeeded`).
    Succeeded,
    /// The job reported an error, panicked or exited non-zero, after its last attempt
    /// (stored as `failed`); the row's `error` says why.
    Failed,
    /// The job ran past its timeout (stored as `timed_out`): a command's process group was
    /// killed; a callback, which cannot be interrupted, was recorded and left to finish.
    TimedOut,
    /// The job was running on a node that is gone (no heartbeat for `node_timeout`), and
    /// another node recorded it as lost (stored as `abandoned`).
    Abandoned,
    /// The fire time was taken but deliberately not run (stored as `skipped`); the row's
    /// `error` holds the reason (`overlap`, `missed deadline`, `catch-up: latest`).
    Skipped,
}

impl DispatchStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [DispatchStatus; 7] = [
        DispatchStatus::Claimed,
        DispatchStatus::Dispatched,
        DispatchStatus::Succeeded,
        DispatchStatus::Failed,
        DispatchStatus::TimedOut,
        DispatchStatus::Abandoned,
        DispatchStatus::Skipped,
    ];

    /// The string stored in the `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            DispatchStatus::Claimed => "claimed",
            DispatchStatus::Dispatched => "dispatched",
            DispatchStatus::Succeeded => "succeeded",
            DispatchStatus::Failed => "failed",
            DispatchStatus::TimedOut => "timed_out",
            DispatchStatus::Abandoned => "abandoned",
            DispatchStatus::Skipped => "skipped",
        }
    }

    /// Whether the run is over (no further transition is made by kaal).
    pub fn is_final(self) -> bool {
        !matches!(self, DispatchStatus::Claimed | DispatchStatus::Dispatched)
    }
}

impl fmt::Display for DispatchStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DispatchStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DispatchStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<&str> = DispatchStatus::ALL.iter().map(|s| s.as_str()).collect();
                format!(
                    "unknown dispatch status {s:?}: expected one of {}",
                    known.join(", ")
                )
            })
    }
}

/// How far ahead of the store's own clock a fire time may be and still be claimed: one
/// second. A node whose clock runs ahead of the database by more than this cannot commit a
/// fire time before the database's clock has reached it (minus this tolerance); the claim is
/// answered [`Commit::Early`] and retried later. So no fire time runs more than this much
/// before its instant, by the database's clock, whatever the node's clock or `--at` says.
pub const CLAIM_TOLERANCE: Duration = Duration::from_secs(1);

/// The dispatch-log key of a job: `{namespace}:{cron_key}` — the form the Ruby gem writes
/// since v0.4, and what scopes the log by namespace (two applications sharing a database
/// with different namespaces never see each other's rows). Readers also accept the plain
/// `{cron_key}` written by the seed-era gem and by kaal before this form.
///
/// ```
/// assert_eq!(kaal_core::dispatch_log_key("billing", "invoices:send"), "billing:invoices:send");
/// ```
pub fn dispatch_log_key(namespace: &str, cron_key: &str) -> String {
    format!("{namespace}:{cron_key}")
}

/// What the commit-point insert decided for one fire time (see
/// [`DispatchRegistry::commit_claims`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// This call inserted the row: the fire time is this node's, `claimed`.
    Created,
    /// A row existed already (another node's claim, or an earlier attempt of this node):
    /// nothing was written.
    Taken,
    /// The fire time is later than the store's clock plus [`CLAIM_TOLERANCE`]: nothing was
    /// written; it can be claimed when it is due.
    Early,
}

/// The answer of [`DispatchRegistry::commit_claims`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commits {
    /// Element `i` is about `pairs[i]`.
    pub outcomes: Vec<Commit>,
    /// The store's clock when it decided (the database's clock for SQL stores).
    pub database_now: DateTime<Utc>,
}

/// One row of the dispatch log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchRecord {
    /// The row's sequence id: the run's **fencing token**. Ids grow with every insert into
    /// the log, so a later claim of a job always carries a larger token than an earlier one
    /// (see [`Fire::fencing_token`](crate::Fire::fencing_token)). 0 when the store keeps none.
    pub id: i64,
    /// The cron key of the job.
    pub key: String,
    /// The scheduled instant that was dispatched.
    pub fire_time: DateTime<Utc>,
    /// When the dispatch was recorded (last update).
    pub dispatched_at: DateTime<Utc>,
    /// The node that dispatched it.
    pub node_id: String,
    /// How it went.
    pub status: DispatchStatus,
    /// When the job started (the store's clock); `None` for a row never started, and for
    /// rows written without the run lifecycle (the Ruby gem, older kaal).
    pub started_at: Option<DateTime<Utc>>,
    /// When the run reached its final status (the store's clock).
    pub finished_at: Option<DateTime<Utc>>,
    /// Which attempt ran last: 0 before the first start, 1 for the first attempt.
    pub attempt: u32,
    /// Why a run failed, timed out, was abandoned or skipped; `None` otherwise. At most
    /// [`MAX_ERROR_CHARS`] characters.
    pub error: Option<String>,
}

impl DispatchRecord {
    /// How long the run took (`finished_at - started_at`), once both are known.
    pub fn duration(&self) -> Option<chrono::Duration> {
        Some(self.finished_at? - self.started_at?)
    }
}

/// The longest `error` text stored with a run, in characters; longer texts keep their first
/// [`MAX_ERROR_CHARS`]` - 1` characters and end in `…`.
pub const MAX_ERROR_CHARS: usize = 2000;

/// `text` cut to [`MAX_ERROR_CHARS`] characters (see there).
pub fn clip_error(text: &str) -> String {
    if text.chars().count() <= MAX_ERROR_CHARS {
        return text.to_string();
    }
    let mut clipped: String = text.chars().take(MAX_ERROR_CHARS - 1).collect();
    clipped.push('…');
    clipped
}

/// One outcome for [`DispatchRegistry::record_runs`]: the arguments of one
/// [`record_run`](DispatchRegistry::record_run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    /// The dispatch-log key.
    pub key: String,
    /// The run's fire time.
    pub fire_time: DateTime<Utc>,
    /// The status it must have.
    pub from: DispatchStatus,
    /// The status it moves to.
    pub to: DispatchStatus,
    /// Attempt and error.
    pub update: RunUpdate,
}

/// What [`DispatchRegistry::start_run_alone`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AloneStart {
    /// The run started: its fencing token.
    Started(i64),
    /// Another run of the job is going; nothing was written. One such run: its fire time
    /// and node.
    Busy {
        /// The fire time of the run that is going.
        fire_time: DateTime<Utc>,
        /// The node it is going on.
        node_id: String,
    },
    /// The row is not `claimed` by this node: nothing was written.
    NotClaimed,
}

/// What a run's row records beyond its status (see [`DispatchRegistry::record_run`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunUpdate {
    /// The attempt the update is about (1 for the first).
    pub attempt: u32,
    /// The reason of a failure, timeout, abandonment or skip (clipped to
    /// [`MAX_ERROR_CHARS`] by the store); `None` clears it.
    pub error: Option<String>,
}

/// Storage of [`DispatchRecord`]s, unique per `(key, fire_time)`.
///
/// Queries that return several records order them newest fire time first.
///
/// A record of any status means the fire time **was dispatched**: [`dispatched`] is true for
/// a `failed` one too, so recovery does not run a job a second time because it failed the
/// first time.
///
/// [`dispatched`]: DispatchRegistry::dispatched
pub trait DispatchRegistry: Send + Sync {
    /// Records a dispatch; an existing record for `(key, fire_time)` is overwritten (upsert).
    ///
    /// An administrative write (the Ruby gem's shape of the call): the coordinator never
    /// uses it, since an upsert landing late could overwrite another node's claim. It commits
    /// through [`commit_claims`](DispatchRegistry::commit_claims) and
    /// [`transition`](DispatchRegistry::transition).
    fn log_dispatch(
        &self,
        key: &str,
        fire_time: DateTime<Utc>,
        node_id: &str,
        status: DispatchStatus,
    ) -> Result<(), RegistryError>;

    /// The record for `(key, fire_time)`, if any.
    fn find_dispatch(
        &self,
        key: &str,
        fire_time: DateTime<Utc>,
    ) -> Result<Option<DispatchRecord>, RegistryError>;

    /// Every record of `key`, newest fire time first.
    fn find_by_key(&self, key: &str) -> Result<Vec<DispatchRecord>, RegistryError>;

    /// Every record written by `node_id`, newest fire time first.
    fn find_by_node(&self, node_id: &str) -> Result<Vec<DispatchRecord>, RegistryError>;

    /// Every record with `status`, newest fire time first.
    fn find_by_status(&self, status: DispatchStatus) -> Result<Vec<DispatchRecord>, RegistryError>;

    /// Deletes the records whose fire time is before `older_than`; returns how many.
    fn cleanup(&self, older_than: DateTime<Utc>) -> Result<usize, RegistryError>;

    /// Whether `(key, fire_time)` has a record (of any status).
    fn dispatched(&self, key: &str, fire_time: DateTime<Utc>) -> Result<bool, RegistryError> {
        Ok(self.find_dispatch(key, fire_time)?.is_some())
    }

    /// [`dispatched`](DispatchRegistry::dispatched) for many pairs at once; element `i` of
    /// the answer is about `pairs[i]`. SQL backends answer in one query.
    fn dispatched_many(
        &self,
        pairs: &[(String, DateTime<Utc>)],
    ) -> Result<Vec<bool>, RegistryError> {
        pairs
            .iter()
            .map(|(key, fire_time)| self.dispatched(key, *fire_time))
            .collect()
    }

    /// **The commit point of a claim.** Inserts a `claimed` row owned by `node_id` for every
    /// pair that has no row yet, and never changes an existing row, however late the call
    /// lands: the unique `(key, fire_time)` decides, so of all the nodes that try, exactly
    /// one gets [`Commit::Created`]. Pairs whose fire time is later than the store's clock
    /// plus [`CLAIM_TOLERANCE`] are not inserted ([`Commit::Early`]). `dispatched_at` of the
    /// new rows is the store's clock. Keys are dispatch-log keys
    /// ([`dispatch_log_key`]); `pairs` holds no duplicates.
    fn commit_claims(
        &self,
        pairs: &[(String, DateTime<Utc>)],
        node_id: &str,
    ) -> Result<Commits, RegistryError>;

    /// Moves the row of `(key, fire_time)` from `from` to `to` — only if it is owned by
    /// `node_id` and its status is `from` — and stamps `dispatched_at`; returns whether it
    /// did. One atomic compare-and-set: a node starts a job only after
    /// `transition(…, Claimed, Dispatched)` returned `true`, so no fire time starts twice.
    fn transition(
        &self,
        key: &str,
        fire_time: DateTime<Utc>,
        node_id: &str,
        from: DispatchStatus,
        to: DispatchStatus,
    ) -> Result<bool, RegistryError>;

    /// Hands the `claimed` (never started) row of `(key, fire_time)` from `from_node` to
    /// `to_node`, only if it is still `claimed` by `from_node`; returns whether it did. One
    /// atomic compare-and-set, so of several live nodes taking over a dead node's claim, one
    /// gets it — and the dead node, should it come back, can no longer start it.
    fn reassign_claim(
        &self,
        key: &str,
        fire_time: DateTime<Utc>,
        from_node: &str,
        to_node: &str,
    ) -> Result<bool, RegistryError>;

    /// Every `claimed` (never started) row whose fire time is at or after `since`, oldest
    /// first.
    fn unstarted_claims(&self, since: DateTime<Utc>) -> Result<Vec<DispatchRecord>, RegistryError>;

    /// **Starts a run**: moves the row of `(key, fire_time)` from `claimed` to `dispatched`,
    /// only if `node_id` owns it and it is still `claimed`, stamping `started_at` (and
    /// `dispatched_at`) with the store's clock and `attempt = 1`. Returns the row's id — the
    /// run's fencing token — when it did, `None` when it did not. The job runs only after
    /// `Some`, so no fire time starts twice.
    ///
    /// The default makes it of [`transition`](DispatchRegistry::transition) and
    /// [`find_dispatch`](DispatchRegistry::find_dispatch); SQL stores do it in one statement
    /// where the database can answer the id (`RETURNING`).
    fn start_run(
        &self,
        key: &str,
        fire_time: DateTime<Utc>,
        node_id: &str,
    ) -> Result<Option<i64>, RegistryError> {
        if !self.transition(
            key,
            fire_time,
            node_id,
            DispatchStatus::Claimed,
            DispatchStatus::Dispatched,
        )? {
            return Ok(None);
        }
        Ok(self.find_dispatch(key, fire_time)?.map(|row| row.id))
    }

    /// [`start_run`](DispatchRegistry::start_run), only if no other run of `key` is going
    /// — no other row of `key` is `dispatched` with a `started_at` — as **one atomic step
    /// per job**: of two nodes starting two fire times of the same job at the same instant,
    /// one starts and the other is answered [`AloneStart::Busy`]. What `overlap: skip` and
    /// `queue_one` rest on. A run on a node that is gone blocks the job until it is recorded
    /// `abandoned` (within `node_timeout` and a sweep).
    ///
    /// The SQL stores serialise the check and the start per job: one transaction holding a
    /// lock on the job for its length (SQLite's write lock, a PostgreSQL transaction-scoped
    /// advisory lock, a MySQL named lock taken before it and given back after it). The
    /// default reads the job's rows ([`find_by_key`](DispatchRegistry::find_by_key)), then
    /// starts: **not** atomic — a store shared by several processes must override it.
    fn start_run_alone(
        &self,
        key: &str,
        fire_time: DateTime<Utc>,
        node_id: &str,
    ) -> Result<AloneStart, RegistryError> {
        let going = self.find_by_key(key)?.into_iter().find(|row| {
            row.fire_time != fire_time
                && row.status == DispatchStatus::Dispatched
                && row.started_at.is_some()
        });
        if let Some(row) = going {
            return Ok(AloneStart::Busy {
                fire_time: row.fire_time,
                node_id: row.node_id,
            });
        }
        Ok(match self.start_run(key, fire_time, node_id)? {
            Some(token) => AloneStart::Started(token),
            None => AloneStart::NotClaimed,
        })
    }

    /// [`start_run`](DispatchRegistry::start_run) for many fire times of `node_id`; element
    /// `i` of the answer is about `pairs[i]`. SQL stores start them in one transaction (one
    /// commit): how a pass starts the runs it has slots for.
    fn start_runs(
        &self,
        node_id: &str,
        pairs: &[(String, DateTime<Utc>)],
    ) -> Result<Vec<Option<i64>>, RegistryError> {
        pairs
            .iter()
            .map(|(key, fire_time)| self.start_run(key, *fire_time, node_id))
            .collect()
    }

    /// Records how a run went: moves the row of `(key, fire_time)` from `from` to `to`, only
    /// if `node_id` owns it and its status is `from`, storing `update`'s attempt and error
    /// and stamping `dispatched_at` with the store's clock — and `finished_at` when `to` is
    /// final ([`DispatchStatus::is_final`]). Returns whether it did: `false` means the row is
    /// no longer this node's run (another node recorded it `abandoned`, say), and nothing
    /// was written.
    ///
    /// `Dispatched → Dispatched` records a failed attempt of a run that will be retried;
    /// `Claimed → Skipped` a fire time taken and deliberately not run.
    ///
    /// The default is [`transition`](DispatchRegistry::transition), which stores neither
    /// the attempt nor the error.
    fn record_run(
        &self,
        key: &str,
        fire_time: DateTime<Utc>,
        node_id: &str,
        from: DispatchStatus,
        to: DispatchStatus,
        update: &RunUpdate,
    ) -> Result<bool, RegistryError> {
        let _ = update;
        self.transition(key, fire_time, node_id, from, to)
    }

    /// **Reruns a lost run** (`on_node_loss: rerun`): replaces the row of `(key,
    /// fire_time)` — only if it is still `dispatched` by `lost_node` — with a new `claimed`
    /// row of `to_node` whose `error` holds `note`, in one atomic step. The new row has a new
    /// id, so the rerun's fencing token is larger than the lost run's: should the lost run
    /// wake up and write downstream, its lower token is refused. Returns whether it did;
    /// `to_node` then starts the new row as any claim.
    ///
    /// The default answers `false` (a store that cannot replace a row); the coordinator then
    /// records the run `abandoned` instead.
    fn rerun_lost_run(
        &self,
        key: &str,
        fire_time: DateTime<Utc>,
        lost_node: &str,
        to_node: &str,
        note: &str,
    ) -> Result<bool, RegistryError> {
        let _ = (key, fire_time, lost_node, to_node, note);
        Ok(false)
    }

    /// [`record_run`](DispatchRegistry::record_run) for many runs of `node_id` at once;
    /// element `i` of the answer is about `records[i]`. The coordinator records the
    /// outcomes of runs that end together through it (a group commit); SQL stores write
    /// them in one transaction — one commit, one `fsync` on SQLite — instead of one each.
    fn record_runs(
        &self,
        node_id: &str,
        records: &[RunRecord],
    ) -> Result<Vec<bool>, RegistryError> {
        records
            .iter()
            .map(|r| self.record_run(&r.key, r.fire_time, node_id, r.from, r.to, &r.update))
            .collect()
    }

    /// Every started run still `dispatched` (with a `started_at`: rows the gem or older kaal
    /// wrote are never reported) whose fire time is at or after `since`, oldest first. What
    /// node-loss detection reads.
    fn running_runs(&self, since: DateTime<Utc>) -> Result<Vec<DispatchRecord>, RegistryError> {
        Ok(self
            .find_by_status(DispatchStatus::Dispatched)?
            .into_iter()
            .filter(|row| row.started_at.is_some() && row.fire_time >= since)
            .rev()
            .collect())
    }

    /// [`log_dispatch`](DispatchRegistry::log_dispatch) for many pairs with one node and
    /// status. SQL backends write them in one statement.
    fn log_dispatches(
        &self,
        pairs: &[(String, DateTime<Utc>)],
        node_id: &str,
        status: DispatchStatus,
    ) -> Result<(), RegistryError> {
        pairs
            .iter()
            .try_for_each(|(key, fire_time)| self.log_dispatch(key, *fire_time, node_id, status))
    }
}

/// Whether the coordinator writes the dispatch log, and as which node: with `enabled` and a
/// [`DispatchRegistry`], a claim's commit point is its insert-only log row
/// ([`DispatchRegistry::commit_claims`], see the [claim model](crate#the-claim-model));
/// without, the lease alone decides.
///
/// Its two methods are from before the commit point (they log claims as `dispatched` after
/// the fact) and are deprecated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchLogging {
    /// Whether to write the log at all (`enable_log_dispatch_registry`).
    pub enabled: bool,
    /// The node recorded as the dispatcher.
    pub node_id: String,
}

impl DispatchLogging {
    /// Logs every key of `lock_keys` that parses as a dispatch key (see
    /// [`parse_lock_key`]) as `dispatched` by this node in `registry` (an adapter's
    /// [`dispatch_registry`](crate::Adapter::dispatch_registry)). Returns how many were
    /// logged; a failure is reported through `log::warn!` and counts as none logged.
    #[deprecated(
        note = "a row written after a claim is not its commit point; the coordinator commits \
                claims with `DispatchRegistry::commit_claims` (insert-only, one transaction)"
    )]
    pub fn log_dispatch_attempts(
        &self,
        registry: Option<&dyn DispatchRegistry>,
        lock_keys: &[&str],
    ) -> usize {
        let pairs: Vec<(String, DateTime<Utc>)> = lock_keys
            .iter()
            .filter_map(|key| parse_lock_key(key))
            .collect();
        #[allow(deprecated)]
        let logged = self.log_claims(registry, &pairs);
        match logged {
            Ok(logged) => logged,
            Err(err) => {
                log::warn!("could not log {} dispatch(es): {err}", pairs.len());
                0
            }
        }
    }

    /// Logs `(cron key, fire time)` claims as `dispatched` by this node and returns the
    /// error when that fails, for callers that must not run a job whose claim is unlogged
    /// (the coordinator). Returns how many were logged: 0 when logging is off, there is no
    /// dispatch registry, or `pairs` is empty.
    #[deprecated(
        note = "an upsert of `dispatched` rows overwrites other nodes' rows and is not a claim's \
                commit point; use `DispatchRegistry::commit_claims` (insert-only)"
    )]
    pub fn log_claims(
        &self,
        registry: Option<&dyn DispatchRegistry>,
        pairs: &[(String, DateTime<Utc>)],
    ) -> Result<usize, RegistryError> {
        if !self.enabled || pairs.is_empty() {
            return Ok(0);
        }
        let Some(registry) = registry else {
            return Ok(0);
        };
        registry.log_dispatches(pairs, &self.node_id, DispatchStatus::Dispatched)?;
        Ok(pairs.len())
    }
}
