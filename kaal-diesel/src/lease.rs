//! Leases: [`Adapter`] for [`DieselStore`], on the `kaal_locks` table.
//!
//! The seed's algorithm (insert the lease row; if the key exists, take the row over only if
//! its lease has expired) as the dialect's one statement per attempt, with the database's
//! clock deciding expiry. Contention — the key is held, or the database reports the row or
//! file locked — is `Ok(false)`; every other failure is a [`LockError`] naming the backend,
//! the operation, the key and the cause. A batch ([`Adapter::acquire_many`]) that meets
//! contention is an error instead: it decided none of its keys.

use std::time::Duration;

use kaal_core::{Adapter, DefinitionRegistry, DispatchRegistry, LockError, MAX_KEY_LEN};

use crate::dialect::ClaimSteps;
use crate::dialect::Dialect;
use crate::error::error_chain;
use crate::store::DieselStore;

/// Fails, saying why, when `key` is longer than [`MAX_KEY_LEN`] (255) bytes — the width of
/// the `key` columns. Such a key is refused before any statement runs: one database would
/// reject it, another count characters instead of bytes, a lax one cut it (and a cut key can
/// collide with another), so the answer must not depend on the database.
///
/// ```
/// assert!(kaal_diesel::check_key_len("kaal:dispatch:report:1767225600").is_ok());
/// let err = kaal_diesel::check_key_len(&"é".repeat(128)).unwrap_err();
/// assert!(err.contains("256 bytes"), "{err}");
/// ```
pub fn check_key_len(key: &str) -> Result<(), String> {
    if key.len() <= MAX_KEY_LEN {
        return Ok(());
    }
    Err(format!(
        "the key is {} bytes long; kaal keys are at most {MAX_KEY_LEN} bytes (the width of \
         the key columns) and are never truncated",
        key.len()
    ))
}

impl<D: Dialect> DieselStore<D> {
    fn lock_error(&self, operation: &str, key: &str, cause: impl ToString) -> LockError {
        LockError::new(D::NAME, operation, key, cause)
    }
}

impl<D: Dialect> Adapter for DieselStore<D> {
    fn acquire(&self, key: &str, ttl: Duration) -> Result<bool, LockError> {
        check_key_len(key).map_err(|cause| self.lock_error("acquire", key, cause))?;
        let mut conn = self
            .checkout()
            .map_err(|cause| self.lock_error("acquire", key, cause))?;
        let shape = self
            .shape_on(&mut conn)
            .map_err(|cause| self.lock_error("acquire", key, cause))?;
        match D::Steps::claim(&mut conn, key, ttl, shape) {
            Ok(acquired) => {
                if !acquired {
                    log::debug!("{} lease {key} is held by another holder", D::NAME);
                }
                Ok(acquired)
            }
            Err(err) if D::is_contention(&err) => {
                log::debug!("{} lease {key} not acquired: {err}", D::NAME);
                Ok(false)
            }
            Err(err) => Err(self.lock_error("acquire", key, error_chain(&err))),
        }
    }

    fn release(&self, key: &str) -> Result<bool, LockError> {
        let mut conn = self
            .checkout()
            .map_err(|cause| self.lock_error("release", key, cause))?;
        D::Steps::release(&mut conn, key)
            .map_err(|err| self.lock_error("release", key, error_chain(&err)))
    }

    fn acquire_many(&self, keys: &[String], ttl: Duration) -> Result<Vec<bool>, LockError> {
        let Some(first) = keys.first() else {
            return Ok(Vec::new());
        };
        for key in keys {
            check_key_len(key).map_err(|cause| self.lock_error("batch acquire", key, cause))?;
        }
        let mut conn = self
            .checkout()
            .map_err(|cause| self.lock_error("batch acquire", first, cause))?;
        let shape = self
            .shape_on(&mut conn)
            .map_err(|cause| self.lock_error("batch acquire", first, cause))?;
        match D::Steps::claim_many(&mut conn, keys, ttl, shape) {
            Ok(acquired) if acquired.len() == keys.len() => {
                self.prune_leases(&mut conn);
                Ok(acquired)
            }
            Ok(acquired) => Err(self.lock_error(
                "batch acquire",
                first,
                format!("{} answers for {} keys", acquired.len(), keys.len()),
            )),
            // Unlike a single acquire, a batch that meets contention (the database busy or
            // locked, a deadlock, a lock-wait timeout) decided nothing: "not acquired" would
            // tell the coordinator another node holds every key. It is an error, so the
            // fire times are retried next tick.
            Err(err) if D::is_contention(&err) => Err(self.lock_error(
                "batch acquire",
                first,
                format!(
                    "{} (the database was busy; none of the {} keys was decided, retry)",
                    error_chain(&err),
                    keys.len()
                ),
            )),
            Err(err) => Err(self.lock_error("batch acquire", first, error_chain(&err))),
        }
    }

    fn dispatch_registry(&self) -> Option<&dyn DispatchRegistry> {
        Some(self)
    }

    fn definition_registry(&self) -> Option<&dyn DefinitionRegistry> {
        Some(self)
    }

    fn node_registry(&self) -> Option<&dyn kaal_core::NodeRegistry> {
        Some(self)
    }

    fn name(&self) -> &str {
        D::NAME
    }
}
