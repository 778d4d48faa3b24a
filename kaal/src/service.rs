//! Running a node as a service: start it, wait for SIGTERM or SIGINT, stop it gracefully
//! ([`RunUntilSignal::run_until_signal`]).
//!
//! kaal-core starts and stops the coordinator but handles no signals: what stops a process
//! is the application's business, and a library that installs signal handlers behind its
//! caller's back takes that decision away. This facade is where a service is assembled, so
//! the common shape — run until the supervisor (systemd, Kubernetes, a terminal) asks to
//! stop, then let running jobs finish — lives here, as an extension of [`Kaal`].

use std::time::{Duration, Instant};

use kaal_core::{Kaal, StartError};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// How often a stopping node looks for a second signal while running jobs finish.
const STOP_POLL: Duration = Duration::from_millis(50);

/// [`run_until_signal`](RunUntilSignal::run_until_signal) on [`Kaal`]: bring the trait into
/// scope (`use kaal::RunUntilSignal;`) and call it on the node.
pub trait RunUntilSignal {
    /// Starts the node, waits for SIGTERM or SIGINT, then stops it: no new claims, and up
    /// to `shutdown_grace` ([`Config::shutdown_grace`](kaal_core::Config::shutdown_grace),
    /// 30 s by default) for running jobs to finish. Returns `Ok(())` once stopped.
    ///
    /// * The signal handlers are installed before the node starts, so a signal during
    ///   start-up is not lost; they replace the default action of SIGTERM and SIGINT for
    ///   the rest of the process (which is expected to exit once this returns).
    /// * A node that cannot start (a `node_id` another live process holds, tables that do
    ///   not exist) is [`RunError::Start`], and nothing waits for a signal.
    /// * A second SIGTERM or SIGINT while running jobs finish returns at once (within a
    ///   twentieth of a second) with [`RunError::Interrupted`], logged; so does a grace that
    ///   runs out, with [`RunError::GraceExpired`]. Either way the jobs still running are
    ///   left to the process's exit.
    /// * With no `log` logger installed, it installs [`init_logging`](crate::init_logging)'s
    ///   (stderr, `KAAL_LOG` / `RUST_LOG`, default `info`), so failures are not silent; an
    ///   installed logger is kept.
    ///
    /// It logs `node … started` once the node runs and `node … stopped` before returning.
    ///
    /// ```no_run
    /// use kaal::{Config, Kaal, RunUntilSignal};
    ///
    /// let database = kaal::connect("sqlite://var/kaal.db")?;
    /// database.run_migrations()?;
    /// let kaal = Kaal::new(Config::default(), database.adapter())?;
    /// kaal.register("cleanup", "@hourly", |_fire| Ok(()))?;
    /// kaal.run_until_signal()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn run_until_signal(&self) -> Result<(), RunError>;
}

impl RunUntilSignal for Kaal {
    fn run_until_signal(&self) -> Result<(), RunError> {
        crate::logging::init_logging();
        let mut signals = Signals::new([SIGTERM, SIGINT]).map_err(RunError::Signals)?;
        let node = self.config().node_id.clone();
        self.try_start()?;
        log::info!("node {node} started; SIGTERM or SIGINT stops it");
        let first = signals.forever().next().unwrap_or(SIGTERM);
        let grace = self.config().shutdown_grace;
        log::info!(
            "node {node}: received {}; stopping (no new claims; up to {} s for running jobs, a second signal returns at once)",
            name(first),
            grace.as_secs_f64()
        );
        let deadline = Instant::now() + grace;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if self.stop(left.min(STOP_POLL)) {
                log::info!("node {node} stopped");
                return Ok(());
            }
            if let Some(second) = signals.pending().next() {
                log::warn!(
                    "node {node}: second signal ({}) while running jobs finish; returning without waiting for them",
                    name(second)
                );
                return Err(RunError::Interrupted {
                    signal: name(second),
                });
            }
            if left.is_zero() {
                log::warn!(
                    "node {node}: running jobs did not finish within shutdown_grace ({} s); returning without waiting for them",
                    grace.as_secs_f64()
                );
                return Err(RunError::GraceExpired { grace });
            }
        }
    }
}

/// [`RunUntilSignal::run_until_signal`] did not stop the node gracefully.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The SIGTERM / SIGINT handlers could not be installed; the node was not started.
    #[error("cannot install the SIGTERM/SIGINT handlers: {0}")]
    Signals(#[source] std::io::Error),
    /// The node could not start.
    #[error("the node could not start: {0}")]
    Start(#[from] StartError),
    /// A second signal arrived while running jobs were finishing; they were not waited
    /// for.
    #[error("a second signal ({signal}) arrived while running jobs were finishing; returned without waiting for them")]
    Interrupted {
        /// `SIGTERM` or `SIGINT`.
        signal: &'static str,
    },
    /// Running jobs were still running when `shutdown_grace` ran out.
    #[error("running jobs did not finish within shutdown_grace ({} s); returned without waiting for them", .grace.as_secs_f64())]
    GraceExpired {
        /// The grace that ran out.
        grace: Duration,
    },
}

fn name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "SIGINT",
        _ => "SIGTERM",
    }
}
