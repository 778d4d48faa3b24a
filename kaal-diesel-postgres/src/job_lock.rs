//! The job lock of [`PgDialect::job_transaction`](crate::PgDialect#method.job_transaction) (whose
//! docs give the argument): `pg_advisory_xact_lock(JOB_LOCK_CLASS, job_lock_id(job))`.

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
