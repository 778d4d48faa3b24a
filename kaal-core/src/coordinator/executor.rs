//! The executor: a bounded pool of run threads, so jobs never run on the ticking thread.
//!
//! A node has `max_concurrent_runs` **slots**. A pass reserves a slot for a fire time
//! *before* it starts the fire time's run (the `claimed → dispatched` compare-and-set), and
//! the run gives the slot back when it has recorded its outcome. So a started run always
//! has a thread to run on at once — `started_at` is when the job began, not when it joined
//! a queue — and the background loop claims only as many fire times as it has free slots:
//! what a busy node cannot start now stays unclaimed, for nodes that can.
//!
//! Threads are spawned on demand, up to the slot count, and kept for the next runs; they
//! end when the coordinator is dropped and they have nothing left to run.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::lock;

/// A run, ready to go on a thread of the pool.
pub(super) type Job = Box<dyn FnOnce() + Send + 'static>;

#[derive(Default)]
struct State {
    /// Slots reserved: runs queued or running, and reservations not yet used.
    busy: usize,
    queue: VecDeque<Job>,
    /// Threads of the pool, and how many of them wait for work.
    threads: usize,
    idle: usize,
    /// The coordinator is gone: idle threads end.
    closed: bool,
}

struct Shared {
    slots: usize,
    name: String,
    state: Mutex<State>,
    /// Signalled when a job is queued, a slot is given back, or the pool closes.
    changed: Condvar,
    /// Called (outside the lock) after a run gave its slot back.
    on_free: Mutex<Option<Arc<dyn Fn() + Send + Sync>>>,
}

/// The pool; see the module docs.
pub(super) struct Executor {
    shared: Arc<Shared>,
}

/// A reserved slot: [`run`](Slot::run) hands it a job; dropped unused, it is given back.
pub(super) struct Slot {
    shared: Option<Arc<Shared>>,
}

impl Executor {
    /// A pool of `slots` threads named after `name`.
    pub fn new(slots: usize, name: String) -> Self {
        Executor {
            shared: Arc::new(Shared {
                slots: slots.max(1),
                name,
                state: Mutex::new(State::default()),
                changed: Condvar::new(),
                on_free: Mutex::new(None),
            }),
        }
    }

    /// Sets what to call whenever a run gives its slot back (the loop uses it to claim the
    /// fire times it left for lack of slots at once, not a tick later).
    pub fn on_free(&self, hook: Option<Arc<dyn Fn() + Send + Sync>>) {
        *lock(&self.shared.on_free) = hook;
    }

    /// How many slots are free now.
    pub fn free(&self) -> usize {
        let state = lock(&self.shared.state);
        self.shared.slots.saturating_sub(state.busy)
    }

    /// How many runs are queued or running (reservations included).
    pub fn busy(&self) -> usize {
        lock(&self.shared.state).busy
    }

    /// Reserves a slot if one is free now.
    pub fn try_reserve(&self) -> Option<Slot> {
        let mut state = lock(&self.shared.state);
        if state.busy >= self.shared.slots {
            return None;
        }
        state.busy += 1;
        Some(Slot {
            shared: Some(self.shared.clone()),
        })
    }

    /// Reserves a slot, waiting for one to be given back when none is free.
    pub fn reserve(&self) -> Slot {
        let mut state = lock(&self.shared.state);
        while state.busy >= self.shared.slots {
            state = self
                .shared
                .changed
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        state.busy += 1;
        Slot {
            shared: Some(self.shared.clone()),
        }
    }

    /// Waits until no run is queued or running, up to `timeout`; returns whether it got
    /// there.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = lock(&self.shared.state);
        while state.busy > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
        true
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        lock(&self.shared.state).closed = true;
        self.shared.changed.notify_all();
        *lock(&self.shared.on_free) = None;
    }
}

impl Slot {
    /// Runs `job` on a thread of the pool; the slot is given back when it returns (or
    /// panics).
    pub fn run(mut self, job: Job) {
        let Some(shared) = self.shared.take() else {
            return;
        };
        let spawn = {
            let mut state = lock(&shared.state);
            state.queue.push_back(job);
            let spawn = state.idle == 0 && state.threads < shared.slots;
            if spawn {
                state.threads += 1;
            }
            spawn
        };
        shared.changed.notify_all();
        if spawn {
            let worker = shared.clone();
            let spawned = thread::Builder::new()
                .name(format!("kaal-run-{}", shared.name))
                .spawn(move || work(&worker));
            if let Err(err) = spawned {
                // No new thread: the job waits for one of the pool's threads; with none at
                // all it runs here, on the caller's thread, rather than never.
                log::error!("could not start a run thread: {err}");
                let orphan = {
                    let mut state = lock(&shared.state);
                    state.threads -= 1;
                    if state.threads == 0 {
                        state.queue.pop_front()
                    } else {
                        None
                    }
                };
                if let Some(job) = orphan {
                    run_one(&shared, job);
                }
            }
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            give_back(&shared);
        }
    }
}

fn give_back(shared: &Shared) {
    {
        let mut state = lock(&shared.state);
        state.busy = state.busy.saturating_sub(1);
    }
    shared.changed.notify_all();
    let hook = lock(&shared.on_free).clone();
    if let Some(hook) = hook {
        hook();
    }
}

/// Runs one job and gives its slot back, even when it panics (the job catches its
/// callback's panics itself; this is the last guard).
fn run_one(shared: &Shared, job: Job) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
        log::error!("a run panicked outside its callback");
    }
    give_back(shared);
}

/// A pool thread: runs queued jobs until the pool closes.
fn work(shared: &Arc<Shared>) {
    loop {
        let job = {
            let mut state = lock(&shared.state);
            loop {
                if let Some(job) = state.queue.pop_front() {
                    break Some(job);
                }
                if state.closed {
                    break None;
                }
                state.idle += 1;
                state = shared
                    .changed
                    .wait(state)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                state.idle -= 1;
            }
        };
        match job {
            Some(job) => run_one(shared, job),
            None => {
                lock(&shared.state).threads -= 1;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn runs_off_the_caller_thread_and_bounds_the_slots() {
        let pool = Executor::new(2, "t".into());
        let (started_tx, started) = mpsc::channel();
        let (release_tx, release) = mpsc::channel::<()>();
        let release = Arc::new(Mutex::new(release));
        let caller = thread::current().id();
        for _ in 0..2 {
            let slot = pool.try_reserve().expect("a free slot");
            let started_tx = started_tx.clone();
            let release = release.clone();
            slot.run(Box::new(move || {
                started_tx.send(thread::current().id()).unwrap();
                let _ = lock(&release).recv();
            }));
        }
        for _ in 0..2 {
            assert_ne!(started.recv().unwrap(), caller);
        }
        assert_eq!(pool.free(), 0);
        assert!(pool.try_reserve().is_none(), "both slots are taken");
        assert!(!pool.wait_idle(Duration::from_millis(20)));
        release_tx.send(()).unwrap();
        let slot = pool.reserve(); // waits for the slot given back
        drop(slot);
        release_tx.send(()).unwrap();
        assert!(pool.wait_idle(Duration::from_secs(10)));
        assert_eq!(pool.free(), 2);
    }

    #[test]
    fn an_unused_reservation_and_a_panicking_job_give_their_slot_back() {
        let pool = Executor::new(1, "t".into());
        drop(pool.try_reserve().unwrap());
        assert_eq!(pool.free(), 1);
        pool.try_reserve()
            .unwrap()
            .run(Box::new(|| panic!("outside any callback")));
        assert!(pool.wait_idle(Duration::from_secs(10)));
        assert_eq!(pool.free(), 1);
    }

    #[test]
    fn the_free_hook_is_called_after_each_run() {
        let pool = Executor::new(1, "t".into());
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        pool.on_free(Some(Arc::new(move || {
            let _ = lock(&tx).send(());
        })));
        pool.try_reserve().unwrap().run(Box::new(|| {}));
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
    }
}
