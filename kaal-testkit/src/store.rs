//! A store created for one test and dropped after it, even when the test fails.

use std::sync::Arc;

use kaal_core::Adapter;

use crate::Backend;

/// A fresh store of `backend` for the length of one test.
pub struct TestStore<'a> {
    backend: &'a dyn Backend,
    /// The locator `create_store` returned.
    pub locator: String,
}

impl<'a> TestStore<'a> {
    /// Creates a fresh store.
    pub fn new(backend: &'a dyn Backend) -> Self {
        let locator = backend.create_store();
        Self { backend, locator }
    }

    /// Opens a new node on the store.
    pub fn open(&self) -> Arc<dyn Adapter> {
        self.backend.open(&self.locator)
    }
}

impl Drop for TestStore<'_> {
    fn drop(&mut self) {
        self.backend.drop_store(&self.locator);
    }
}

impl std::fmt::Debug for TestStore<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestStore")
            .field("locator", &self.locator)
            .finish()
    }
}
