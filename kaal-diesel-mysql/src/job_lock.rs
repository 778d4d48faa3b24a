//! The job lock of [`MysqlDialect::job_transaction`](crate::MysqlDialect#method.job_transaction)
//! (whose docs give the argument): `GET_LOCK` / `RELEASE_LOCK` of a name made from the job's
//! key, on the job transaction's pooled connection.

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
