//! Registers two jobs on the in-memory store and runs the coordinator over six simulated
//! minutes, printing what it dispatches, then reads the dispatch log.
//!
//! Run: `cargo run -p kaal-core --example quickstart`
#![allow(clippy::print_stdout)]

use std::sync::Arc;

use kaal_core::chrono::{Duration, TimeZone, Utc};
use kaal_core::{Config, DispatchStatus, Fire, Kaal, MemoryAdapter};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let kaal = Kaal::new(Config::default(), Arc::new(MemoryAdapter::new()))?;
    kaal.register("heartbeat", "* * * * *", |fire: &Fire| {
        println!(
            "  heartbeat   fire_time={} idempotency_key={}",
            fire.fire_time, fire.idempotency_key
        );
        Ok(())
    })?;
    kaal.register("report:5min", "*/5 * * * *", |fire: &Fire| {
        println!(
            "  report:5min fire_time={} idempotency_key={}",
            fire.fire_time, fire.idempotency_key
        );
        Ok(())
    })?;

    let start = Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap();
    for step in 0..(6 * 12) {
        let now = start + Duration::seconds(5 * step);
        let report = kaal.tick_at(now);
        if !report.dispatched.is_empty() {
            println!("tick at {now}: dispatched {}", report.dispatched.len());
        }
    }

    let log = kaal
        .adapter()
        .dispatch_registry()
        .expect("the memory store keeps a dispatch log");
    let heartbeats = log.find_by_key("heartbeat")?;
    let failures = log.find_by_status(DispatchStatus::Failed)?;
    println!(
        "dispatch log: {} heartbeat fire times (newest {}), {} failures",
        heartbeats.len(),
        heartbeats[0].fire_time,
        failures.len()
    );
    Ok(())
}
