//! The confirm step of session locks: [`give_back_dispatched`], which
//! [`SessionLockStore::acquire`](super::SessionLockStore) runs on every claim it wins.

use kaal_core::{parse_lock_key, Adapter, DispatchRegistry, LockError};

/// Of the claims just won (`won[i]` answers `keys[i]`), gives back those whose fire time
/// the dispatch log already records, and answers `false` for them.
///
/// A session lock vanishes with its session: a node that finishes, crashes or loses its
/// connection releases its claims at once, not when their ttl ends. A node that read the
/// dispatch log just before the holder logged a fire time and left would then win the claim
/// on a fire time already dispatched. Reading the log again after winning closes that
/// window, because the holder logs a claim before it can let go of it. Keys that are not
/// dispatch lock keys ([`parse_lock_key`]) are left as won. Costs one batched lookup per call
/// that won a dispatch key.
///
/// When the log cannot be read, every claim won on a dispatch key is given back and the
/// error returned (the coordinator retries those fire times next tick): a claim is never
/// kept unconfirmed. `name` and `operation` label the error.
pub fn give_back_dispatched(
    name: &str,
    operation: &str,
    locks: &dyn Adapter,
    log: &dyn DispatchRegistry,
    keys: &[String],
    mut won: Vec<bool>,
) -> Result<Vec<bool>, LockError> {
    let claimed: Vec<(usize, (String, chrono::DateTime<chrono::Utc>))> = keys
        .iter()
        .zip(&won)
        .enumerate()
        .filter(|(_, (_, won))| **won)
        .filter_map(|(i, (key, _))| parse_lock_key(key).map(|pair| (i, pair)))
        .collect();
    if claimed.is_empty() {
        return Ok(won);
    }
    let pairs: Vec<_> = claimed.iter().map(|(_, pair)| pair.clone()).collect();
    let give_back = |i: usize| {
        if let Err(err) = locks.release(&keys[i]) {
            log::warn!("{name}: could not give back {}: {err}", keys[i]);
        }
    };
    match log.dispatched_many(&pairs) {
        Ok(seen) if seen.len() == pairs.len() => {
            for ((i, (key, fire_time)), seen) in claimed.iter().zip(seen) {
                if seen {
                    log::debug!(
                        "{name}: {key} at {fire_time} was dispatched by its previous holder; \
                         giving the claim back"
                    );
                    give_back(*i);
                    won[*i] = false;
                }
            }
            Ok(won)
        }
        answer => {
            let cause = match answer {
                Err(err) => err.to_string(),
                Ok(seen) => format!("{} answers for {} pairs", seen.len(), pairs.len()),
            };
            claimed.iter().for_each(|(i, _)| give_back(*i));
            Err(LockError::new(
                name,
                operation,
                &keys[claimed[0].0],
                format!("cannot check the dispatch log after claiming: {cause}"),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::{TimeZone, Utc};
    use kaal_core::{lock_key, DispatchStatus, MemoryAdapter, MemoryDispatchRegistry};

    use super::*;

    #[test]
    fn claims_on_logged_fire_times_are_given_back_and_others_kept() {
        let locks = MemoryAdapter::new();
        let log = MemoryDispatchRegistry::default();
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        log.log_dispatch("done", t, "other-node", DispatchStatus::Dispatched)
            .unwrap();
        let keys = vec![
            lock_key("kaal", "done", t),
            lock_key("kaal", "fresh", t),
            "plain-lock".to_string(),
            lock_key("kaal", "lost", t),
        ];
        let ttl = Duration::from_secs(60);
        let mut won = locks.acquire_many(&keys[..3], ttl).unwrap();
        won.push(false);
        let answer = give_back_dispatched("test", "batch acquire", &locks, &log, &keys, won);
        assert_eq!(answer.unwrap(), [false, true, true, false]);
        assert!(
            locks.acquire(&keys[0], ttl).unwrap(),
            "the claim was not given back"
        );
    }
}
