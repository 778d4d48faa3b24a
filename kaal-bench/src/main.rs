//! `kaal-bench`: measures kaal against a hand-written SQL baseline in the same run.
//!
//! ```text
//! cargo run --release -p kaal-bench --features postgres [-- --quick] [--only sqlite|postgres]
//! ```
//!
//! Prints one markdown table per backend and lock strategy, ready for BENCHMARKS.md.
#![allow(clippy::print_stdout)] // printing the tables is the point

mod counting;
#[cfg(feature = "postgres")]
mod postgres;
mod scenarios;
#[cfg(feature = "sqlite")]
mod sqlite;
mod target;

use std::sync::Arc;

use scenarios::Row;
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

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let only: Option<String> = std::env::args().skip_while(|a| a != "--only").nth(1);
    let scale = if quick { 10 } else { 1 };
    println!(
        "kaal-bench on {} ({}build)",
        machine(),
        if cfg!(debug_assertions) {
            "debug "
        } else {
            "release "
        }
    );

    let memory: Arc<dyn kaal_core::Adapter> = Arc::new(kaal_core::MemoryAdapter::new());
    print_table(
        "memory (CPU only)",
        &[scenarios::idle_tick(memory, "memory", 100_000 / scale)],
    );

    let mut targets: Vec<Box<dyn Target>> = Vec::new();
    #[cfg(feature = "sqlite")]
    targets.push(Box::new(sqlite::Sqlite));
    #[cfg(feature = "postgres")]
    targets.push(Box::new(postgres::PostgresLease));
    for target in targets {
        if only
            .as_ref()
            .is_some_and(|o| !target.label().to_lowercase().contains(&o.to_lowercase()))
        {
            continue;
        }
        let mut rows = scenarios::single_operations(target.as_ref(), 2_000 / scale);
        rows.extend(scenarios::batch_claims(
            target.as_ref(),
            &[1_000 / scale, 10_000 / scale],
        ));
        rows.push(scenarios::tick_all_due(
            target.as_ref(),
            1_000 / scale,
            Some(100.0),
        ));
        rows.push(scenarios::tick_all_due(
            target.as_ref(),
            10_000 / scale,
            None,
        ));
        rows.push(scenarios::two_node_claim(
            target.as_ref(),
            10_000 / scale,
            500.0,
        ));
        rows.push(scenarios::idle_tick(
            target.fresh().adapter(),
            &target.label(),
            100_000 / scale,
        ));
        rows.push(scenarios::statements_per_fire_time(target.as_ref(), 1, 10));
        rows.push(scenarios::statements_per_fire_time(
            target.as_ref(),
            100,
            10,
        ));
        rows.push(scenarios::statements_per_fire_time(
            target.as_ref(),
            100,
            30,
        ));
        print_table(&target.label(), &rows);
    }
}
