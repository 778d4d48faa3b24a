//! What a benchmarked backend and lock strategy supplies: fresh stores, and hand-written SQL
//! doing the same work as each kaal operation on the same database (the raw baseline).
//!
//! Targets differ only in SQL: the lease-table targets are `lease::LeaseFixture`s given
//! their statements, the session-lock targets (PostgreSQL advisory locks, MySQL named
//! locks) are `session::SessionFixture`s given a raw session (modules compiled with the
//! `postgres` / `mysql` features). Every measurement lives once, in [`scenarios`](crate::scenarios).

use std::sync::Arc;

use kaal_core::Adapter;

/// A backend and lock strategy under measurement.
pub trait Target {
    /// The name `--only` matches: `sqlite`, `postgres-lease`, `postgres-advisory`, ...
    fn id(&self) -> &'static str;
    /// The table title: `SQLite lease (WAL, synchronous=FULL)`, `PostgreSQL advisory`, ...
    fn label(&self) -> String;
    /// A fresh, empty, migrated store.
    fn fresh(&self) -> Box<dyn Fixture>;
    /// Whether the tick targets apply (a 1,000-job tick ≤ 0.1 s, 10,000 fire times
    /// across two nodes ≤ 0.5 s): they are stated for PostgreSQL; other targets show the
    /// figures without a verdict.
    fn tick_targets(&self) -> bool {
        false
    }
}

/// One store of a [`Target`], with its raw baseline.
///
/// Raw operations panic when the database does not answer as the scenario expects (a fresh
/// key not taken, a held key taken): a benchmark of a wrong answer would be meaningless.
pub trait Fixture {
    /// The kaal adapter on the store (registries included). [`clear`](Fixture::clear) may
    /// replace it: fetch it again after each `clear`, and drop it before the next.
    fn adapter(&self) -> Arc<dyn Adapter>;
    /// Another node on the same store (its own pool and, for session locks, its own
    /// session).
    fn another_node(&self) -> Arc<dyn Adapter>;
    /// Raw: takes a key nobody holds, in the least SQL that does it.
    fn raw_acquire_fresh(&self, key: &str);
    /// Raw: the least SQL doing an acquire's work on a key another node holds (it must not
    /// take it).
    fn raw_acquire_held(&self, key: &str);
    /// Raw: gives back a key [`raw_acquire_fresh`](Fixture::raw_acquire_fresh) took.
    fn raw_release(&self, key: &str);
    /// Raw: takes every key of `keys` (none held) in one statement.
    fn raw_acquire_many(&self, keys: &[String]);
    /// What [`raw_acquire_many`](Fixture::raw_acquire_many) sends, for the table.
    fn raw_many_label(&self) -> &'static str;
    /// Gives back every lock taken so far through [`adapter`](Fixture::adapter) and the
    /// raw baseline (lease tables: deletes every lease row, other nodes' included), so that
    /// a round starts where the first one did.
    fn clear(&self);
}
