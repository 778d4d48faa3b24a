//! The job lock: what makes [`start_run_alone`](kaal_core::DispatchRegistry::start_run_alone)
//! one atomic step per job on PostgreSQL ([`PgDialect`](crate::PgDialect)'s
//! [`job_transaction`](kaal_diesel::Dialect::job_transaction)).
//!
//! A job transaction is a READ COMMITTED transaction whose first statement is
//! `pg_advisory_xact_lock(JOB_LOCK_CLASS, <32 bits of MD5(job key)>)`:
//!
//! * **Exclusion.** The lock is held until the transaction commits or rolls back, and only
//!   one transaction holds it at a time; every job transaction of the same job, from any
//!   session of any process, waits for it first. So they run one after another.
//! * **Visibility.** PostgreSQL releases a transaction's locks only after its commit is
//!   visible to new snapshots, and under READ COMMITTED every statement takes a new
//!   snapshot. The statements after the lock statement therefore see everything the
//!   previous holder committed — the run it started. The isolation is set explicitly: under
//!   REPEATABLE READ or SERIALIZABLE (a database's `default_transaction_isolation` can say
//!   so) the snapshot would be taken by the lock statement itself, *before* it waited, and
//!   the check would miss the run the previous holder started.
//! * **No deadlock with row locks.** The lock is the transaction's first statement, so it
//!   holds nothing while it waits, and only job transactions take it.
//! * **A lock not granted** within the session's `lock_timeout` ([`PgOptions::lock_timeout`](
//!   crate::PgOptions::lock_timeout), 5 s by default) fails the call with PostgreSQL's error;
//!   nothing is written.
//!
//! # Why it cannot meet kaal's other advisory locks
//!
//! PostgreSQL keeps the two key forms of advisory locks apart: a lock taken with one
//! `bigint` and a lock taken with two `integer`s are different locks whatever the values
//! (`pg_locks.objsubid` 1 and 2). kaal's session locks
//! ([`PgAdvisoryAdapter`](crate::PgAdvisoryAdapter)), its migration lock and the Ruby gem's
//! locks all use the one-`bigint` form; the job lock uses the two-`integer` form with the
//! first integer [`JOB_LOCK_CLASS`]. Advisory locks are per database, so fleets on other
//! databases of the server never wait for each other. Two jobs whose keys share the 32 bits
//! share a lock: they then start one after the other instead of at once (a wait of one
//! short transaction), which changes no answer. An application of its own taking two-integer
//! advisory locks in class [`JOB_LOCK_CLASS`] on the same database would only make kaal wait
//! for it.

use md5::{Digest, Md5};

/// The first integer of every job lock: `0x6b61616c`, "kaal" in ASCII.
pub(crate) const JOB_LOCK_CLASS: i32 = 0x6b61_616c;

/// Waits for the job lock of a job, held until the transaction ends. Parameters: the class
/// ([`JOB_LOCK_CLASS`]), the job's [`job_lock_id`].
pub(crate) const LOCK_JOB: &str =
    "SELECT pg_advisory_xact_lock(CAST(? AS integer), CAST(? AS integer))";

/// The second integer of the job lock of `job` (a dispatch-log key): the first 4 bytes of
/// MD5(`job`) read as a big-endian signed integer — fixed, so every node computes the same.
pub(crate) fn job_lock_id(job: &str) -> i32 {
    let digest = Md5::digest(job.as_bytes());
    i32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_lock_ids_are_the_leading_md5_bytes_in_the_kaal_class() {
        // md5("") = d41d8cd9 8f00b204 ...
        assert_eq!(
            job_lock_id(""),
            i32::from_be_bytes([0xd4, 0x1d, 0x8c, 0xd9])
        );
        assert_eq!(
            JOB_LOCK_CLASS.to_be_bytes(),
            *b"kaal",
            "the class spells kaal"
        );
        assert_ne!(job_lock_id("kaal:a"), job_lock_id("kaal:b"));
        assert_eq!(LOCK_JOB.matches('?').count(), 2);
    }
}
