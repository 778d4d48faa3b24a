//! The in-memory backend as a [`Backend`], so kaal-core runs the in-process suite too.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use kaal_core::{Adapter, MemoryAdapter};

use crate::Backend;

/// Stores are `MemoryAdapter`s kept by locator; every "node" opened on a store shares it,
/// as threads of one process do.
#[derive(Debug, Default, Clone, Copy)]
pub struct MemoryBackend;

fn stores() -> &'static Mutex<HashMap<String, Arc<MemoryAdapter>>> {
    static STORES: OnceLock<Mutex<HashMap<String, Arc<MemoryAdapter>>>> = OnceLock::new();
    STORES.get_or_init(Default::default)
}

impl Backend for MemoryBackend {
    fn create_store(&self) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let locator = format!("memory:{}", NEXT.fetch_add(1, Ordering::Relaxed));
        stores()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(locator.clone(), Arc::new(MemoryAdapter::new()));
        locator
    }

    fn open(&self, locator: &str) -> Arc<dyn Adapter> {
        let stores = stores().lock().unwrap_or_else(|p| p.into_inner());
        match stores.get(locator) {
            Some(store) => store.clone(),
            None => panic!("no memory store {locator:?}: create_store was not called for it"),
        }
    }

    fn open_with_clock(
        &self,
        _locator: &str,
        clock: Arc<dyn kaal_core::Clock>,
    ) -> Option<Arc<dyn Adapter>> {
        Some(Arc::new(MemoryAdapter::with_clock(clock)))
    }

    fn drop_store(&self, locator: &str) {
        stores()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(locator);
    }
}
