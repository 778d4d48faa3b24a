//! The kaal conformance suite. (Being written.)
#![deny(missing_docs)]

mod backend;

pub use backend::Backend;
