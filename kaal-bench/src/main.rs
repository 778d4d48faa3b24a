//! `kaal-bench`: measures kaal against a hand-written SQL baseline in the same run.
//!
//! ```text
//! cargo run --release -p kaal-bench --features postgres,mysql [-- --quick] [--rounds N]
//!     [--only sqlite,postgres-lease,postgres-advisory,mysql-lease,mysql-named]
//! ```
//!
//! `--only` takes a comma-separated list; each item picks the targets whose name contains
//! it (`postgres` picks both PostgreSQL targets, `lease` every lease table, `memory` the
//! CPU-only idle tick). Prints one markdown table per backend and lock strategy, ready for
//! BENCHMARKS.md.
#![allow(clippy::print_stdout)] // printing the tables is the point

mod counting;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
mod lease;
mod measure;
#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod postgres;
mod scenarios;
#[cfg(any(feature = "postgres", feature = "mysql"))]
mod scratch;
#[cfg(any(feature = "postgres", feature = "mysql"))]
mod session;
#[cfg(feature = "sqlite")]
mod sqlite;
mod target;

use std::sync::Arc;
use std::time::Instant;

use scenarios::{Row, Sizes};
use target::Target;

fn print_table(title: &str, rows: &[Row]) {
    println!("\n### {title}\n");
    println!("| measurement | kaal | raw baseline | ratio | target | met |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for row in rows {
        let met = match row.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "-",
        };
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            row.name, row.kaal, row.raw, row.ratio, row.target, met
        );
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {cores} cores")
}

/// The value following `flag` on the command line.
fn option(flag: &str) -> Option<String> {
    std::env::args().skip_while(|a| a != flag).nth(1)
}

/// Whether `id` is among the comma-separated `only` list (no list: everything).
fn selected(only: Option<&str>, id: &str) -> bool {
    only.is_none_or(|only| only.split(',').any(|item| id.contains(item.trim())))
}

fn main() {
    // Before any connection is opened: statements are counted on every connection.
    counting::count_statements();
    let quick = std::env::args().any(|a| a == "--quick");
    let only = option("--only").map(|o| o.to_lowercase());
    let rounds = option("--rounds")
        .map(|r| r.parse::<usize>().expect("--rounds takes a number"))
        .unwrap_or(7)
        .max(1);
    let sizes = Sizes::new(if quick { 10 } else { 1 }, rounds);
    println!(
        "kaal-bench on {} ({}build); median of {rounds} rounds after a warm-up round",
        machine(),
        if cfg!(debug_assertions) {
            "debug "
        } else {
            "release "
        }
    );
    let started = Instant::now();

    if selected(only.as_deref(), "memory") {
        let memory: Arc<dyn kaal_core::Adapter> = Arc::new(kaal_core::MemoryAdapter::new());
        print_table(
            "memory (CPU only)",
            &[scenarios::idle_tick(memory, "memory", sizes.idle_jobs)],
        );
    }

    let targets: Vec<Box<dyn Target>> = vec![
        #[cfg(feature = "sqlite")]
        Box::new(sqlite::SqliteLease),
        #[cfg(feature = "postgres")]
        Box::new(postgres::PostgresLease),
        #[cfg(feature = "postgres")]
        Box::new(postgres::PostgresAdvisory),
        #[cfg(feature = "mysql")]
        Box::new(mysql::MysqlLease),
        #[cfg(feature = "mysql")]
        Box::new(mysql::MysqlNamed),
    ];
    for target in targets {
        if !selected(only.as_deref(), target.id()) {
            continue;
        }
        let start = Instant::now();
        let rows = scenarios::suite(target.as_ref(), &sizes);
        print_table(&target.label(), &rows);
        println!(
            "\n({} measured in {:.0} s)",
            target.id(),
            start.elapsed().as_secs_f64()
        );
    }
    println!("\nTotal: {:.0} s", started.elapsed().as_secs_f64());
}
