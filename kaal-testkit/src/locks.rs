//! The seed's lock behaviours, ttl expiry, and key edge cases.

use std::panic::{self, AssertUnwindSafe};
use std::thread;
use std::time::Duration;

use kaal_core::MAX_KEY_LEN;

use crate::{Backend, TestStore};

const TTL: Duration = Duration::from_secs(60);

/// `with_lock` runs the block and returns its value when the key is free.
pub fn block_runs_and_returns_its_value(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let adapter = store.open();
    let value = adapter
        .with_lock("kaal:test:block", TTL, || 41 + 1)
        .unwrap();
    assert_eq!(value, Some(42));
}

/// `with_lock` does not run the block and returns `None` when another holder has the key.
pub fn block_is_skipped_while_another_holder_has_the_key(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let (holder, other) = (store.open(), store.open());
    assert!(holder.acquire("kaal:test:held", TTL).unwrap());
    let mut ran = false;
    let value = other
        .with_lock("kaal:test:held", TTL, || {
            ran = true;
        })
        .unwrap();
    assert_eq!(value, None);
    assert!(!ran, "the block ran although the key was held");
}

/// A released key can be acquired again, by the same or another holder.
pub fn key_is_reacquired_after_release(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let (a, b) = (store.open(), store.open());
    assert!(a.acquire("kaal:test:re", TTL).unwrap());
    assert!(!b.acquire("kaal:test:re", TTL).unwrap());
    assert!(a.release("kaal:test:re").unwrap());
    assert!(b.acquire("kaal:test:re", TTL).unwrap());
    assert!(b.release("kaal:test:re").unwrap());
    assert_eq!(
        a.with_lock("kaal:test:re", TTL, || "again").unwrap(),
        Some("again")
    );
}

/// Holding one key does not affect another.
pub fn independent_keys_do_not_interfere(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let (a, b) = (store.open(), store.open());
    assert!(a.acquire("kaal:test:one", TTL).unwrap());
    assert!(b.acquire("kaal:test:two", TTL).unwrap());
    assert!(!b.acquire("kaal:test:one", TTL).unwrap());
    assert!(!a.acquire("kaal:test:two", TTL).unwrap());
    assert!(a.release("kaal:test:one").unwrap());
    assert!(
        !a.acquire("kaal:test:two", TTL).unwrap(),
        "releasing one key freed another"
    );
}

/// The key is free again after the block returned `Err`.
pub fn lock_is_released_after_the_block_returns_err(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let (a, b) = (store.open(), store.open());
    let outcome = a
        .with_lock("kaal:test:err", TTL, || Err::<(), _>("boom"))
        .unwrap();
    assert_eq!(outcome, Some(Err("boom")));
    assert!(
        b.acquire("kaal:test:err", TTL).unwrap(),
        "the key stayed held after Err"
    );
}

/// The key is free again after the block panicked, and the panic reaches the caller.
pub fn lock_is_released_after_the_block_panics(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let (a, b) = (store.open(), store.open());
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        a.with_lock("kaal:test:panic", TTL, || panic!("job exploded"))
    }));
    let payload = outcome.expect_err("the panic did not reach the caller");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"job exploded"));
    assert!(
        b.acquire("kaal:test:panic", TTL).unwrap(),
        "the key stayed held after a panic"
    );
}

/// Releasing a key nobody holds returns `false`.
pub fn release_of_a_key_not_held_returns_false(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let a = store.open();
    assert!(!a.release("kaal:test:never").unwrap());
    assert!(a.acquire("kaal:test:twice", TTL).unwrap());
    assert!(a.release("kaal:test:twice").unwrap());
    assert!(
        !a.release("kaal:test:twice").unwrap(),
        "a second release reported a deletion"
    );
}

/// A holder cannot acquire a key it already holds (no re-entry).
pub fn acquire_of_a_held_key_by_its_holder_returns_false(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let a = store.open();
    assert!(a.acquire("kaal:test:mine", TTL).unwrap());
    assert!(!a.acquire("kaal:test:mine", TTL).unwrap());
}

/// A lease past its ttl is taken over by another holder; a live one is not.
pub fn expired_lease_is_taken_over(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let (a, b) = (store.open(), store.open());
    assert!(a
        .acquire("kaal:test:short", Duration::from_secs(1))
        .unwrap());
    assert!(a.acquire("kaal:test:long", TTL).unwrap());
    assert!(
        !b.acquire("kaal:test:short", TTL).unwrap(),
        "a live lease was taken over"
    );
    // Expiry is decided by the store's clock: let real time pass it.
    thread::sleep(Duration::from_millis(1_300));
    assert!(
        b.acquire("kaal:test:short", TTL).unwrap(),
        "an expired lease was not taken over"
    );
    assert!(
        !b.acquire("kaal:test:long", TTL).unwrap(),
        "a live lease was taken over"
    );
    assert!(
        !a.acquire("kaal:test:short", TTL).unwrap(),
        "the old holder got the key back"
    );
}

/// Keys of exactly 255 bytes and keys with non-ASCII characters work, and keys differing
/// only in the last byte, in accents or in case stay distinct.
pub fn long_and_non_ascii_keys_work(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let (a, b) = (store.open(), store.open());
    let long = format!("kaal:{}", "k".repeat(MAX_KEY_LEN - 5));
    assert_eq!(long.len(), MAX_KEY_LEN);
    let mut sibling = long.clone();
    sibling.replace_range(MAX_KEY_LEN - 1.., "j");
    let unicode = "kaal:dispatch:rapport-journalier:été:東京:1767225600";
    for key in [&long, &sibling, &unicode.to_string()] {
        assert!(a.acquire(key, TTL).unwrap(), "{key} not acquired");
        assert!(!b.acquire(key, TTL).unwrap(), "{key} acquired twice");
    }
    assert!(a.release(unicode).unwrap());
    assert!(b.acquire(unicode, TTL).unwrap());
    // Keys that differ only by accents or case are different keys (no collation folding).
    for distinct in [
        "kaal:dispatch:rapport-journalier:ete:東京:1767225600",
        "KAAL:dispatch:rapport-journalier:été:東京:1767225600",
    ] {
        assert!(
            b.acquire(distinct, TTL).unwrap(),
            "{distinct} collided with {unicode}"
        );
    }
}

/// `acquire_many` answers per key, in order: free keys are taken, held keys are not.
pub fn acquire_many_answers_per_key_in_order(backend: &dyn Backend) {
    let store = TestStore::new(backend);
    let (a, b) = (store.open(), store.open());
    assert!(a.acquire("kaal:test:b1", TTL).unwrap());
    assert!(a.acquire("kaal:test:b3", TTL).unwrap());
    let keys: Vec<String> = (0..5).map(|i| format!("kaal:test:b{i}")).collect();
    assert_eq!(
        b.acquire_many(&keys, TTL).unwrap(),
        [true, false, true, false, true]
    );
    assert_eq!(a.acquire_many(&keys, TTL).unwrap(), [false; 5]);
    assert!(b.acquire_many(&[], TTL).unwrap().is_empty());
    assert!(b.release("kaal:test:b2").unwrap());
    assert!(a.acquire("kaal:test:b2", TTL).unwrap());
}
