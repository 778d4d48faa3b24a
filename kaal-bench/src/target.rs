//! What a benchmarked backend supplies: fresh stores, and hand-written SQL doing the same
//! work as each kaal operation on the same pool (the raw baseline).

use std::sync::Arc;

use kaal_core::Adapter;

/// A backend and lock strategy under measurement.
pub trait Target {
    /// `SQLite lease`, `PostgreSQL advisory`, ...
    fn label(&self) -> String;
    /// A fresh, empty, migrated store.
    fn fresh(&self) -> Box<dyn Fixture>;
}

/// One store of a [`Target`].
pub trait Fixture {
    /// The kaal adapter on the store (registries included).
    fn adapter(&self) -> Arc<dyn Adapter>;
    /// Another node on the same store (its own pool or session).
    fn another_node(&self) -> Arc<dyn Adapter>;
    /// Raw: inserts a lease row for a key nobody holds (database clock for the times).
    fn raw_acquire_fresh(&self, key: &str);
    /// Raw: the least SQL doing an acquire of a held key: an insert that conflicts and takes
    /// the row over only if its lease expired (here: it has not, so it writes nothing).
    fn raw_acquire_held(&self, key: &str);
    /// Raw: deletes a lease row.
    fn raw_release(&self, key: &str);
    /// Raw: one multi-row insert of lease rows for `keys`.
    fn raw_insert_many(&self, keys: &[String]);
}
