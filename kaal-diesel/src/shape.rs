//! [`TableShape`]: which variant of the kaal tables a database has.

/// Which optional columns the kaal tables have.
///
/// The Ruby gem's current migrations create `kaal_locks` and `kaal_dispatches` without
/// `created_at` / `updated_at`; older ones (and ours) have them, possibly `NOT NULL` without a
/// default. The store probes once and writes those columns exactly when they exist, so it
/// works on every variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TableShape {
    /// `kaal_locks` has `created_at` and `updated_at`.
    pub lock_timestamps: bool,
    /// `kaal_dispatches` has `created_at` and `updated_at`.
    pub dispatch_timestamps: bool,
}
