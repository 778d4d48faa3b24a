//! A default logger: [`init_logging`].
//!
//! kaal reports through the `log` crate — a failed job, an unreachable database, a node
//! that refuses to claim because its clock is off. With no logger installed, `log` drops
//! every record, so a service that never set one up fails silently. [`init_logging`] is the
//! one-line fix, and [`run_until_signal`](crate::RunUntilSignal::run_until_signal) calls it
//! when the application has not installed a logger of its own.

/// Installs a logger writing to stderr, unless a `log` logger is installed already (then it
/// does nothing: the application's logger is kept). Returns whether it installed one.
///
/// The level comes from `KAAL_LOG`, else `RUST_LOG`, else `info`, in `env_logger`'s syntax
/// (`debug`, `warn,kaal_core=debug`, ...). The logger is `env_logger`'s; with the `cli`
/// feature (a default) its lines carry a timestamp and colours on a terminal, without it
/// they are plain `[LEVEL target] message` lines.
///
/// ```
/// kaal::init_logging();
/// // A second call, like any other logger installed before, is left alone.
/// assert!(!kaal::init_logging());
/// log::info!("kaal logs here too");
/// ```
pub fn init_logging() -> bool {
    let filter = ["KAAL_LOG", "RUST_LOG"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
        .unwrap_or_else(|| "info".to_string());
    env_logger::Builder::new()
        .parse_filters(&filter)
        .target(env_logger::Target::Stderr)
        .try_init()
        .is_ok()
}
