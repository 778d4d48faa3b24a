//! What the crate logs, captured (installed once per test process) so a test can check what
//! an operator would see.

use std::sync::Mutex;

static RECORDS: Mutex<Vec<(log::Level, String)>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        RECORDS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((record.level(), record.args().to_string()));
    }

    fn flush(&self) {}
}

static CAPTURE: Capture = Capture;

/// Starts capturing (idempotent; does nothing if another logger is installed).
pub fn capture() {
    let _ = log::set_logger(&CAPTURE);
    log::set_max_level(log::LevelFilter::Info);
}

/// Messages logged at `level` so far that contain `needle`.
pub fn matching(level: log::Level, needle: &str) -> Vec<String> {
    RECORDS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|(l, message)| *l == level && message.contains(needle))
        .map(|(_, message)| message.clone())
        .collect()
}
