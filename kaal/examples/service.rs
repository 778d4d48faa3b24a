//! The service of the crate's front page: two jobs that run exactly once across every
//! process running this against the same database, until SIGTERM or SIGINT.
//!
//! Run it twice, in two terminals, and watch each fire time run in one of them; Ctrl-C
//! stops each gracefully:
//!
//! ```sh
//! cargo run -p kaal --example service
//! ```
//!
//! The database is `KAAL_DATABASE_URL` (default: `kaal-example.db` in the system's
//! temporary directory); `KAAL_LOG=debug` shows every claim.

use std::time::Duration;

use kaal::{Config, JobPolicy, Kaal, Overlap, RunUntilSignal};

pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("KAAL_DATABASE_URL").unwrap_or_else(|_| {
        let path = std::env::temp_dir().join("kaal-example.db");
        format!("sqlite://{}", path.display())
    });
    let database = kaal::connect(&url)?;
    database.run_migrations()?;
    let kaal = Kaal::new(Config::default(), database.adapter())?;
    let policy = JobPolicy::new()
        .overlap(Overlap::Skip)
        .timeout(Duration::from_secs(600));
    kaal.register_with("invoices:send", "*/15 * * * *", policy, |fire| {
        log::info!("sending invoices, idempotency key {}", fire.idempotency_key);
        Ok(())
    })?;
    kaal.register("heartbeat", "* * * * *", |fire| {
        log::info!("heartbeat of {}", fire.fire_time);
        Ok(())
    })?;
    kaal.run_until_signal()?;
    Ok(())
}
