//! Real concurrency: threads on separate connections racing for the same keys.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use crate::{Backend, TestStore};

const TTL: Duration = Duration::from_secs(60);

/// 16 threads, each with its own node (connections), race for one key: exactly one wins.
/// Repeated over several keys so a lucky schedule cannot pass it.
pub fn sixteen_threads_racing_for_one_key_have_one_winner(backend: &dyn Backend) {
    const THREADS: usize = 16;
    const ROUNDS: usize = 5;
    let store = TestStore::new(backend);
    let nodes: Vec<_> = (0..THREADS).map(|_| store.open()).collect();
    let barrier = Arc::new(Barrier::new(THREADS));
    // The nodes outlive every thread: a node dropped early would end its session and free
    // the session locks (advisory, named) it won while others still race for them.
    let handles: Vec<_> = nodes
        .iter()
        .cloned()
        .map(|node| {
            let barrier = barrier.clone();
            thread::spawn(move || {
                (0..ROUNDS)
                    .map(|round| {
                        barrier.wait();
                        node.acquire(&format!("kaal:race:{round}"), TTL)
                            .unwrap_or_else(|err| panic!("acquire failed under contention: {err}"))
                    })
                    .collect::<Vec<bool>>()
            })
        })
        .collect();
    let results: Vec<Vec<bool>> = handles
        .into_iter()
        .map(|h| h.join().expect("racing thread panicked"))
        .collect();
    for round in 0..ROUNDS {
        let winners = results.iter().filter(|r| r[round]).count();
        assert_eq!(
            winners, 1,
            "round {round}: {winners} winners among {THREADS} threads"
        );
    }
}

/// One node claims 200 keys with `acquire_many` while another acquires the same keys one by
/// one (in reverse order): every key is won exactly once.
pub fn batch_acquire_racing_single_acquire_wins_each_key_once(backend: &dyn Backend) {
    const KEYS: usize = 200;
    let store = TestStore::new(backend);
    // Both nodes live until the end: dropping one ends its session locks (advisory, named).
    let (batch_node, single_node) = (store.open(), store.open());
    let (batch_keeper, single_keeper) = (batch_node.clone(), single_node.clone());
    let keys: Vec<String> = (0..KEYS)
        .map(|i| format!("kaal:dispatch:race:{i}"))
        .collect();
    let barrier = Arc::new(Barrier::new(2));
    let batch = {
        let (keys, barrier) = (keys.clone(), barrier.clone());
        thread::spawn(move || {
            barrier.wait();
            batch_node
                .acquire_many(&keys, TTL)
                .expect("batch acquire failed")
        })
    };
    let single = {
        let keys = keys.clone();
        thread::spawn(move || {
            barrier.wait();
            let mut won = vec![false; KEYS];
            for i in (0..KEYS).rev() {
                won[i] = single_node.acquire(&keys[i], TTL).expect("acquire failed");
            }
            won
        })
    };
    let (batch, single) = (
        batch.join().expect("batch thread panicked"),
        single.join().expect("single thread panicked"),
    );
    assert_eq!(batch.len(), KEYS);
    for i in 0..KEYS {
        assert!(
            batch[i] ^ single[i],
            "key {i}: batch won {}, single won {}",
            batch[i],
            single[i]
        );
    }
    let third = store.open();
    assert_eq!(
        third.acquire_many(&keys, TTL).unwrap(),
        vec![false; KEYS],
        "a key was left unheld"
    );
    drop((batch_keeper, single_keeper));
}
