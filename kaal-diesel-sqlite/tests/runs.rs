//! The run lifecycle's SQL on SQLite: kaal-diesel's shared behaviours (every timestamp of
//! a write one instant of the database's clock, or of the store's own clock when it has one).
#![allow(clippy::unwrap_used)]

mod common;

kaal_diesel::run_suite!(common::SqliteHooks);
