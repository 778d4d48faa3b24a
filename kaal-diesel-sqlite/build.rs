//! Rebuilds the crate when a migration is added or changed: `embed_migrations!` reads the
//! directory at compile time, and Cargo does not otherwise notice a new migration in it.
#![allow(clippy::print_stdout)] // a build script speaks to Cargo through stdout

fn main() {
    println!("cargo:rerun-if-changed=../migrations/sqlite");
}
