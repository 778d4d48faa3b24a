//! An application's Diesel instrumentation still sees the statements kaal's pooled
//! connections run: the pool's own failure watch passes every event on.
//!
//! Its own test binary: the default instrumentation is global to the process.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use diesel::connection::{set_default_instrumentation, Instrumentation, InstrumentationEvent};
use kaal_core::Adapter;
use kaal_diesel_sqlite::SqliteStore;

static FINISHED: AtomicUsize = AtomicUsize::new(0);

fn counting() -> Option<Box<dyn Instrumentation>> {
    Some(Box::new(|event: InstrumentationEvent<'_>| {
        if let InstrumentationEvent::FinishQuery { .. } = event {
            FINISHED.fetch_add(1, Ordering::SeqCst);
        }
    }))
}

#[test]
fn the_applications_default_instrumentation_sees_kaals_statements() {
    set_default_instrumentation(counting).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kaal.db");
    let store = SqliteStore::open(path.to_str().unwrap()).unwrap();
    store.run_migrations().unwrap();
    let before = FINISHED.load(Ordering::SeqCst);
    assert!(store
        .acquire("instrumented", Duration::from_secs(60))
        .unwrap());
    assert!(
        FINISHED.load(Ordering::SeqCst) > before,
        "the acquire's statement never reached the application's instrumentation"
    );
}
