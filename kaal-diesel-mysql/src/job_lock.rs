//! The job lock: what makes [`start_run_alone`](kaal_core::DispatchRegistry::start_run_alone)
//! one atomic step per job on MySQL ([`MysqlDialect`](crate::MysqlDialect)'s
//! [`job_transaction`](kaal_diesel::Dialect::job_transaction)).
//!
//! A job transaction takes a named lock on the job with `GET_LOCK` on its pooled connection
//! **before** `BEGIN`, runs the transaction, and gives the lock back with `RELEASE_LOCK`
//! after `COMMIT` (or `ROLLBACK`) has returned:
//!
//! * **Exclusion.** A named lock is held by one session at a time; every job transaction
//!   of the same job, from any connection of any process, asks for it first. So they run
//!   one after another.
//! * **Visibility.** The previous holder gives the lock back only after its `COMMIT`
//!   returned, and this transaction begins only after it was granted the lock, so its first
//!   read comes after that commit. kaal's sessions run READ COMMITTED (each read takes a
//!   fresh view), and even under REPEATABLE READ InnoDB creates a transaction's read view
//!   at its first consistent read — after the lock, since the lock is taken before `BEGIN`,
//!   not inside the transaction. Either way the check sees the run the previous holder
//!   started.
//! * **No deadlock with row locks.** The lock is asked for outside any transaction, so its
//!   session holds no row lock while it waits (MySQL also reports a cycle of named-lock
//!   waits as an error instead of waiting for ever).
//! * **A lock not granted** within [`JOB_LOCK_WAIT_SECONDS`] is an error, not a "busy"
//!   answer: nothing is written and the caller tries again later. The lock is held for one
//!   short transaction (three statements), so the wait is normally milliseconds.
//! * **Given back in every case.** `RELEASE_LOCK` runs after the transaction whether it
//!   committed or failed. It fails only when the connection does; the server then ends the
//!   lock with the session, and the pool drops the connection when its ping fails. (A
//!   connection dropped inside the transaction — a panic — is dropped by the pool as broken,
//!   with the same effect.)
//!
//! # The name
//!
//! Named locks belong to the whole server, and their names have at most 64 characters. A job
//! lock is named `kaal-job:` and 48 hex digits of SHA-256 of the connection's database name,
//! `:` and the job's dispatch-log key (computed by the server: `SHA2(CONCAT(DATABASE(), ':',
//! key), 256)`) — 57 characters whatever the key's length. The database name keeps fleets on
//! different databases of one server apart, and the digest needs no shortening. It cannot be
//! the name of a lock of [`MysqlNamedLockAdapter`](crate::MysqlNamedLockAdapter): those are
//! the adapter's namespace followed by a lock key, or a 64-character shortened form (47
//! characters, `:`, 16 hex digits); a lock key that spells `kaal-job:` and 48 hex digits of
//! such a digest is never made by the coordinator (whose lock keys are
//! `{namespace}:dispatch:{cron_key}:{fire_time}`). Two jobs whose names shared the 192 bits
//! would only start one after the other.

// `kaal-job:` and 48 hex digits fit the 64 characters of a lock name.
const _: () = assert!("kaal-job:".len() + 48 <= crate::MAX_LOCK_NAME_CHARS);

/// How long a job transaction waits for its job's lock, in seconds, before it fails.
pub(crate) const JOB_LOCK_WAIT_SECONDS: u32 = 5;

/// The SQL expression of a job lock's name; one parameter: the job's dispatch-log key.
macro_rules! job_lock_name {
    () => {
        "CONCAT('kaal-job:', LEFT(SHA2(CONCAT(DATABASE(), ':', ?), 256), 48))"
    };
}

/// Waits up to [`JOB_LOCK_WAIT_SECONDS`] for the lock of a job: `1` granted, `0` not within
/// the wait, `NULL` an error. Parameter: the job's dispatch-log key.
pub(crate) const LOCK_JOB: &str = concat!("SELECT GET_LOCK(", job_lock_name!(), ", 5)");

/// Gives the lock of a job back. Parameter: the job's dispatch-log key.
pub(crate) const UNLOCK_JOB: &str = concat!("SELECT RELEASE_LOCK(", job_lock_name!(), ")");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_waits_as_documented() {
        assert!(LOCK_JOB.ends_with(&format!(", {JOB_LOCK_WAIT_SECONDS})")));
        assert_eq!(LOCK_JOB.matches('?').count(), 1);
        assert_eq!(UNLOCK_JOB.matches('?').count(), 1);
    }
}
