//! The measurements, written once for every target. Each kaal figure that has a raw
//! baseline is measured beside it in the same run, on the same store, interleaved (see
//! [`measure`](crate::measure)); every figure is the median of several rounds, after a
//! warm-up round that is not kept.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use kaal_core::chrono::{DateTime, Duration as ChronoDuration, TimeZone, Utc};
use kaal_core::{lock_key, Adapter, Config, Fire, Kaal};

use crate::counting::{self, CountingStore};
use crate::measure::{ms, ratio_with_range, timed, times_with_range, PairedOps, PairedTimes};
use crate::target::{Fixture, Target};

/// The lease ttl of every claim (kaal's default `lease_ttl`).
const TTL: Duration = Duration::from_secs(125);

/// The key another node holds in the held-key measurement.
const HELD: &str = "bench:held";

/// Every job fires at the top of each hour.
const HOURLY: &str = "0 * * * *";

/// One line of a results table.
#[derive(Debug)]
pub struct Row {
    /// What was measured, with its size.
    pub name: String,
    /// kaal's figure.
    pub kaal: String,
    /// The raw baseline's figure, or what else there is to compare (store calls).
    pub raw: String,
    /// kaal against the baseline, with its spread over the rounds.
    pub ratio: String,
    /// The target for this figure.
    pub target: String,
    /// Whether the target is met; `None` without a target.
    pub met: Option<bool>,
}

/// How much each measurement does.
#[derive(Debug, Clone)]
pub struct Sizes {
    /// Operations per round of each single-operation measurement.
    pub single_ops: usize,
    /// Kept rounds of the paired measurements (plus one warm-up round).
    pub rounds: usize,
    /// Batch claim sizes; the last is the one with a target.
    pub batches: [usize; 2],
    /// Jobs of the small tick (PostgreSQL target: ≤ 0.1 s) and of the large tick and the
    /// two-node fleet (PostgreSQL target: ≤ 0.5 s).
    pub tick_jobs: [usize; 2],
    /// Kept rounds of the tick measurements (plus one warm-up round).
    pub tick_rounds: usize,
    /// Jobs registered for the idle tick.
    pub idle_jobs: usize,
}

impl Sizes {
    /// The full run, every size divided by `scale` (10 for `--quick`).
    pub fn new(scale: usize, rounds: usize) -> Self {
        Self {
            single_ops: 2_000 / scale,
            rounds,
            batches: [1_000 / scale, 10_000 / scale],
            tick_jobs: [1_000 / scale, 10_000 / scale],
            tick_rounds: 3,
            idle_jobs: 100_000 / scale,
        }
    }
}

/// Every measurement of `target`, in table order.
pub fn suite(target: &dyn Target, sizes: &Sizes) -> Vec<Row> {
    let mut rows = single_operations(target, sizes.single_ops, sizes.rounds);
    rows.extend(batch_claims(target, &sizes.batches, sizes.rounds));
    rows.extend(ticks(target, sizes.tick_jobs, sizes.tick_rounds));
    let fixture = target.fresh();
    rows.push(idle_tick(
        fixture.adapter(),
        &target.label(),
        sizes.idle_jobs,
    ));
    drop(fixture);
    rows.extend(statements_per_fire_time(target));
    rows
}

/// A node's configuration, with a node id of its own: a node recognises the log rows its
/// commit created by its id, so no two live nodes may share one (a second node with a live
/// node's id is refused).
fn config() -> Config {
    static NODES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NODES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Config {
        node_id: format!("bench-{n}"),
        recovery_startup_jitter: Duration::ZERO,
        ..Config::default()
    }
}

fn at_hour(hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 7, 1, hour, 0, 1)
        .single()
        .expect("a valid instant")
}

/// Runs, untimed, what a node's first tick would otherwise pay for once: opening a pooled
/// connection (and a lock session) and preparing the lock and log statements. Leaves
/// nothing held.
pub fn warm(adapter: &dyn Adapter) {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let job = format!("bench-warm-{n}");
    let pairs: Vec<(String, DateTime<Utc>)> = (0..2).map(|h| (job.clone(), at_hour(h))).collect();
    let keys: Vec<String> = pairs
        .iter()
        .map(|(job, at)| lock_key("kaal", job, *at))
        .collect();
    let won = adapter.acquire_many(&keys, TTL).expect("warm-up batch");
    for (key, won) in keys.iter().zip(won) {
        if won {
            adapter.release(key).expect("warm-up release");
        }
    }
    let key = format!("bench:warm:{n}");
    if adapter.acquire(&key, TTL).expect("warm-up acquire") {
        adapter.release(&key).expect("warm-up release");
    }
    if let Some(log) = adapter.dispatch_registry() {
        log.dispatched_many(&pairs).expect("warm-up log lookup");
    }
    if let Some(definitions) = adapter.definition_registry() {
        definitions
            .all_definitions("kaal")
            .expect("warm-up definitions");
    }
}

/// How long a round of single operations should last, each side: a round much shorter
/// than this is decided by a few scheduler hiccups on a shared 2-core machine.
const ROUND_TIME: Duration = Duration::from_millis(250);

/// Operations between two clears. Fresh keys: how many locks a node holds while it
/// acquires — session-lock adapters and servers pay per lock held (see BENCHMARKS.md), so
/// the fresh-key figure is taken with at most this many held, whatever the round's length.
/// Session locks: each clear opens new sessions, kaal's and the raw one, and on 2 cores
/// where the scheduler puts a session's server thread (beside the client or not) changes
/// its round trip by up to 2× for as long as it lives; a round spread over several pairs of
/// sessions averages that out.
const BLOCK: usize = 1_000;

/// Single operations: kaal's adapter vs the least hand-written SQL doing the same work,
/// alternating operation by operation, in blocks of [`BLOCK`] operations that each start
/// from an empty lock table (session locks: new sessions) but for the held key.
///
/// A warm-up round of `n / 10` operations of each kind sets how many the kept rounds run:
/// at least `n`, more for fast operations (up to `4 n`) so that a round lasts
/// [`ROUND_TIME`].
pub fn single_operations(target: &dyn Target, n: usize, rounds: usize) -> Vec<Row> {
    let fixture = target.fresh();
    let holder = fixture.another_node();
    // Clears, then has the holder take the held key again: the clear deleted the lease
    // rows, the holder's included; a session-lock holder kept its lock (and answers
    // `false`: it never takes a key twice).
    let reset = || {
        fixture.clear();
        holder.acquire(HELD, TTL).expect("holder acquire");
        let adapter = fixture.adapter();
        assert!(
            !adapter.acquire(HELD, TTL).expect("acquire"),
            "{HELD} is held by another node"
        );
        adapter
    };
    let (mut fresh, mut held, mut cycle) = (
        PairedOps::default(),
        PairedOps::default(),
        PairedOps::default(),
    );
    let per_round = |op: Duration| {
        let fit = ROUND_TIME.as_secs_f64() / op.as_secs_f64().max(1e-9);
        (fit as usize).clamp(n, 4 * n)
    };
    let mut ops = [(n / 10).max(1); 3];
    for round in 0..=rounds {
        let record = round > 0;
        let fresh_op = fresh.round(
            ops[0],
            BLOCK,
            record,
            reset,
            |adapter, i| {
                let won = adapter.acquire(&format!("bench:k:{round}:{i}"), TTL);
                assert!(won.expect("acquire"));
            },
            |i| fixture.raw_acquire_fresh(&format!("bench:r:{round}:{i}")),
        );
        let held_op = held.round(
            ops[1],
            BLOCK,
            record,
            reset,
            |adapter, _| assert!(!adapter.acquire(HELD, TTL).expect("acquire")),
            |_| fixture.raw_acquire_held(HELD),
        );
        let cycle_op = cycle.round(
            ops[2],
            BLOCK,
            record,
            reset,
            |adapter, i| {
                let key = format!("bench:c:{round}:{i}");
                assert!(adapter.acquire(&key, TTL).expect("acquire"));
                assert!(adapter.release(&key).expect("release"));
            },
            |i| {
                let key = format!("bench:rc:{round}:{i}");
                fixture.raw_acquire_fresh(&key);
                fixture.raw_release(&key);
            },
        );
        if !record {
            ops = [per_round(fresh_op), per_round(held_op), per_round(cycle_op)];
        }
    }
    [
        ("acquire, fresh key", fresh),
        ("acquire, held key", held),
        ("acquire + release", cycle),
    ]
    .into_iter()
    .map(|(name, paired)| {
        let (kaal, raw, ratio) = paired.median_round();
        let (kaal_op, raw_op) = paired.median_op();
        Row {
            name: format!("{name} ({} ops × {rounds} rounds)", paired.ops()),
            kaal: format!("{kaal:.0}/s (op {kaal_op:.0} µs)"),
            raw: format!("{raw:.0}/s (op {raw_op:.0} µs)"),
            ratio: ratio_with_range(&paired.ratios(), ""),
            target: "≥ 0.8× raw".into(),
            met: Some(ratio >= 0.8),
        }
    })
    .collect()
}

/// A tick's batch claim of `n` fresh fire times vs one raw statement taking `n` keys; each
/// starts from an empty lock table, which side goes first alternates by round.
pub fn batch_claims(target: &dyn Target, sizes: &[usize], rounds: usize) -> Vec<Row> {
    let fixture = target.fresh();
    let largest = sizes.iter().copied().max().unwrap_or(0);
    sizes
        .iter()
        .map(|&n| {
            let mut times = PairedTimes::default();
            for round in 0..=rounds {
                let keys: Vec<String> = (0..n)
                    .map(|i| format!("kaal:dispatch:job-{i}:{n}{round}"))
                    .collect();
                let raw_keys: Vec<String> = (0..n)
                    .map(|i| format!("raw:dispatch:job-{i}:{n}{round}"))
                    .collect();
                let kaal = || {
                    fixture.clear();
                    let adapter = fixture.adapter();
                    timed(|| {
                        let won = adapter.acquire_many(&keys, TTL).expect("batch acquire");
                        assert!(won.iter().all(|w| *w), "every fresh key is won");
                    })
                };
                let raw = || {
                    fixture.clear();
                    timed(|| fixture.raw_acquire_many(&raw_keys))
                };
                let (k, r) = if round % 2 == 0 {
                    let k = kaal();
                    (k, raw())
                } else {
                    let r = raw();
                    (kaal(), r)
                };
                if round > 0 {
                    times.push(k, r);
                }
            }
            let (kaal, raw, ratio) = times.median_round();
            let has_target = n == largest;
            Row {
                name: format!("claim {n} due fire times (one batch; {rounds} rounds)"),
                kaal: ms(kaal),
                raw: format!("{} ({})", ms(raw), fixture.raw_many_label()),
                ratio: ratio_with_range(&times.ratios(), " time"),
                target: if has_target {
                    "≤ 1.5× raw time".into()
                } else {
                    "-".into()
                },
                met: has_target.then_some(ratio <= 1.5),
            }
        })
        .collect()
}

/// A node with `jobs` jobs (`job-0`, `job-1`, ...) on `cron`. With `persist` the
/// definitions are written to the store, else only the callbacks are bound (the stored
/// definitions, if any, are the ones a tick reads).
fn node_with_jobs(adapter: Arc<dyn Adapter>, jobs: usize, cron: &str, persist: bool) -> Kaal {
    let kaal = Kaal::new(config(), adapter).expect("valid config");
    for i in 0..jobs {
        let key = format!("job-{i}");
        let ok = |_: &Fire| -> Result<(), kaal_core::JobError> { Ok(()) };
        if persist {
            kaal.register(&key, cron, ok).expect("register");
        } else {
            kaal.registry()
                .upsert(&key, cron, kaal_core::callback(ok))
                .expect("register");
        }
    }
    kaal
}

/// Ticks: a node's tick at the top of the hour with every job due (`jobs[0]` and
/// `jobs[1]` jobs), and two nodes with `jobs[1]` jobs ticking the same instant.
///
/// The definitions are stored once per store; each round a new node (two for the fleet)
/// binds the callbacks and runs its first tick at a new hour, so each round claims fresh
/// fire times from an empty lock table.
pub fn ticks(target: &dyn Target, jobs: [usize; 2], rounds: usize) -> Vec<Row> {
    let targets = target.tick_targets();
    let small = target.fresh();
    drop(node_with_jobs(small.adapter(), jobs[0], HOURLY, true));
    let large = target.fresh();
    drop(node_with_jobs(large.adapter(), jobs[1], HOURLY, true));
    let limit = |ms: f64| {
        if targets {
            format!("≤ {ms} ms")
        } else {
            format!("- (PostgreSQL: ≤ {ms} ms)")
        }
    };
    let verdict = |elapsed: Duration, ms: f64| targets.then_some(elapsed.as_secs_f64() * 1e3 <= ms);

    let mut rows = Vec::new();
    for (fixture, jobs, target_ms) in [(&small, jobs[0], Some(100.0)), (&large, jobs[1], None)] {
        let times = tick_rounds(fixture.as_ref(), jobs, rounds);
        let (median, shown) = times_with_range(&times);
        rows.push(Row {
            name: format!("coordinator tick, {jobs} jobs all due (1 node; {rounds} rounds)"),
            kaal: shown,
            raw: "-".into(),
            ratio: "-".into(),
            target: target_ms.map_or("-".into(), limit),
            met: target_ms.and_then(|t| verdict(median, t)),
        });
    }
    let times = fleet_rounds(large.as_ref(), jobs[1], rounds);
    let (median, shown) = times_with_range(&times);
    rows.push(Row {
        name: format!(
            "{} due fire times claimed across a 2-node fleet ({rounds} rounds)",
            jobs[1]
        ),
        kaal: shown,
        raw: "-".into(),
        ratio: "-".into(),
        target: limit(500.0),
        met: verdict(median, 500.0),
    });
    rows
}

/// One node's first tick at a new hour, every job due; the kept rounds' times.
fn tick_rounds(fixture: &dyn Fixture, jobs: usize, rounds: usize) -> Vec<Duration> {
    let mut times = Vec::new();
    for round in 0..=rounds {
        fixture.clear();
        let node = node_with_jobs(fixture.adapter(), jobs, HOURLY, false);
        let mut dispatched = 0;
        let hour = u32::try_from(round).expect("few rounds");
        let elapsed = timed(|| dispatched = node.tick_at(at_hour(hour)).dispatched.len());
        assert_eq!(dispatched, jobs, "every job is due once");
        if round > 0 {
            times.push(elapsed);
        }
    }
    times
}

/// Two nodes tick the same new hour; wall time until both are done, every fire time
/// dispatched once between them; the kept rounds' times.
fn fleet_rounds(fixture: &dyn Fixture, jobs: usize, rounds: usize) -> Vec<Duration> {
    let mut times = Vec::new();
    for round in 0..=rounds {
        fixture.clear();
        let other = fixture.another_node();
        warm(other.as_ref());
        let nodes: Vec<Arc<Kaal>> = [fixture.adapter(), other]
            .into_iter()
            .map(|adapter| Arc::new(node_with_jobs(adapter, jobs, HOURLY, false)))
            .collect();
        let hour = 12 + u32::try_from(round).expect("few rounds");
        let barrier = Arc::new(Barrier::new(nodes.len() + 1));
        let handles: Vec<_> = nodes
            .iter()
            .map(|node| {
                let (node, barrier) = (node.clone(), barrier.clone());
                thread::spawn(move || {
                    barrier.wait();
                    node.tick_at(at_hour(hour)).dispatched.len()
                })
            })
            .collect();
        let mut dispatched = 0;
        let elapsed = timed(|| {
            barrier.wait();
            dispatched = handles
                .into_iter()
                .map(|h| h.join().expect("node thread"))
                .sum();
        });
        assert_eq!(
            dispatched, jobs,
            "each fire time must be dispatched once across the two nodes"
        );
        if round > 0 {
            times.push(elapsed);
        }
    }
    times
}

/// `jobs` registered, none due: the median and worst of 100 ticks, and the store calls and
/// statements they made.
pub fn idle_tick(adapter: Arc<dyn Adapter>, label: &str, jobs: usize) -> Row {
    let counting = Arc::new(CountingStore::new(adapter));
    let kaal = node_with_jobs(counting.clone(), jobs, "0 0 1 1 *", false);
    let start = at_hour(12);
    kaal.tick_at(start);
    let (calls_before, statements_before) = (counting.calls(), counting::statements());
    let mut times: Vec<Duration> = (1..=100)
        .map(|i| {
            let now = start + ChronoDuration::milliseconds(500 * i);
            timed(|| assert!(kaal.tick_at(now).dispatched.is_empty()))
        })
        .collect();
    let calls = counting.calls() - calls_before;
    let statements = counting::statements() - statements_before;
    times.sort();
    let median = times[times.len() / 2];
    let worst = times[times.len() - 1];
    Row {
        name: format!("idle tick, {jobs} jobs none due ({label}; 100 ticks)"),
        kaal: format!("median {}, worst {}", ms(median), ms(worst)),
        raw: format!("{calls} store calls, {statements} statements"),
        ratio: "-".into(),
        target: "≤ 20 ms, 0 calls".into(),
        met: Some(worst <= Duration::from_millis(20) && calls == 0 && statements == 0),
    }
}

/// Statements (and store calls) per (key, fire time) over 10 and 30 minutes of 5 s ticks
/// of one job and of 100 jobs firing every minute: what the database sees over each fire
/// time's whole stay in the lookback window. Constant means the 30-minute figure matches
/// the 10-minute one: nothing is repeated on every tick a fire time stays in the window.
///
/// Statements are counted by Diesel's default instrumentation, which a pool may replace
/// on its connections; every store call sends at least one statement, so fewer statements
/// than calls means some went uncounted, and the calls are shown and judged instead.
pub fn statements_per_fire_time(target: &dyn Target) -> Vec<Row> {
    let one = per_fire_time(target, 1, 10);
    let ten = per_fire_time(target, 100, 10);
    let thirty = per_fire_time(target, 100, 30);
    let counted = [&one, &ten, &thirty]
        .iter()
        .all(|counts| counts.statements >= counts.calls);
    let per = |counts: &Counts| {
        let sent = if counted {
            counts.statements
        } else {
            counts.calls
        };
        sent as f64 / counts.fire_times as f64
    };
    let constant = per(&thirty) <= per(&ten) * 1.15;
    [
        (1, 10, &one, None),
        (100, 10, &ten, None),
        (100, 30, &thirty, Some(constant)),
    ]
    .into_iter()
    .map(|(jobs, minutes, counts, met)| Row {
        name: format!(
            "{} per (key, fire time), {jobs} jobs, {minutes} min of 5 s ticks",
            if counted { "statements" } else { "store calls" }
        ),
        kaal: if counted {
            format!(
                "{:.3} ({} statements / {} fire times; {} store calls)",
                per(counts),
                counts.statements,
                counts.fire_times,
                counts.calls
            )
        } else {
            format!(
                "{:.3} ({} store calls / {} fire times; statements on pooled connections not visible)",
                per(counts),
                counts.calls,
                counts.fire_times
            )
        },
        raw: "-".into(),
        ratio: "-".into(),
        target: if met.is_some() {
            "constant: ≤ 1.15× the 10 min figure".into()
        } else {
            "-".into()
        },
        met,
    })
    .collect()
}

/// What one node sent while its fire times went through the window.
struct Counts {
    statements: u64,
    calls: u64,
    fire_times: usize,
}

fn per_fire_time(target: &dyn Target, jobs: usize, minutes: i64) -> Counts {
    let fixture = target.fresh();
    let counting = Arc::new(CountingStore::new(fixture.adapter()));
    let kaal = node_with_jobs(counting.clone(), jobs, "* * * * *", true);
    let (calls_before, statements_before) = (counting.calls(), counting::statements());
    let start = at_hour(13);
    let mut fire_times = 0;
    for step in 0..(minutes * 12) {
        fire_times += kaal
            .tick_at(start + ChronoDuration::seconds(5 * step))
            .dispatched
            .len();
    }
    Counts {
        statements: counting::statements() - statements_before,
        calls: counting.calls() - calls_before,
        fire_times,
    }
}
