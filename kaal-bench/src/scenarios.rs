//! The measurements. Each kaal figure stands beside a raw-SQL baseline measured in the same
//! run, on the same store, interleaved round by round; the best round of each is kept.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use kaal_core::chrono::{DateTime, Duration as ChronoDuration, TimeZone, Utc};
use kaal_core::{Adapter, Config, Fire, Kaal};

use crate::counting::CountingStore;
use crate::target::Target;

const TTL: Duration = Duration::from_secs(125);
const ROUNDS: usize = 3;

/// One line of a results table.
pub struct Row {
    pub name: String,
    pub kaal: String,
    pub raw: String,
    pub ratio: String,
    pub target: String,
    pub met: Option<bool>,
}

fn ops(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

fn timed(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn config() -> Config {
    Config {
        node_id: "bench".into(),
        recovery_startup_jitter: Duration::ZERO,
        ..Config::default()
    }
}

fn at_hour(hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 7, 1, hour, 0, 1)
        .single()
        .expect("a valid instant")
}

/// Single operations: kaal's adapter vs one hand-written statement each.
pub fn single_operations(target: &dyn Target, n: usize) -> Vec<Row> {
    let fixture = target.fresh();
    let adapter = fixture.adapter();
    let holder = fixture.another_node();
    assert!(holder.acquire("bench:held", TTL).expect("acquire"));
    fixture.raw_acquire_fresh("bench:raw-held");
    let (mut fresh, mut held, mut cycle) = ([0f64; 2], [0f64; 2], [0f64; 2]);
    for round in 0..ROUNDS {
        let kaal = timed(|| {
            for i in 0..n {
                assert!(adapter
                    .acquire(&format!("bench:k:{round}:{i}"), TTL)
                    .expect("acquire"));
            }
        });
        let raw = timed(|| {
            (0..n).for_each(|i| fixture.raw_acquire_fresh(&format!("bench:r:{round}:{i}")))
        });
        fresh = [fresh[0].max(ops(n, kaal)), fresh[1].max(ops(n, raw))];
        let kaal = timed(|| {
            for _ in 0..n {
                assert!(!adapter.acquire("bench:held", TTL).expect("acquire"));
            }
        });
        let raw = timed(|| (0..n).for_each(|_| fixture.raw_acquire_held("bench:raw-held")));
        held = [held[0].max(ops(n, kaal)), held[1].max(ops(n, raw))];
        let kaal = timed(|| {
            for i in 0..n {
                let key = format!("bench:c:{round}:{i}");
                assert!(adapter.acquire(&key, TTL).expect("acquire"));
                assert!(adapter.release(&key).expect("release"));
            }
        });
        let raw = timed(|| {
            for i in 0..n {
                let key = format!("bench:rc:{round}:{i}");
                fixture.raw_acquire_fresh(&key);
                fixture.raw_release(&key);
            }
        });
        cycle = [cycle[0].max(ops(n, kaal)), cycle[1].max(ops(n, raw))];
    }
    [
        ("acquire, fresh key", fresh),
        ("acquire, held key", held),
        ("acquire + release", cycle),
    ]
    .into_iter()
    .map(|(name, [kaal, raw])| Row {
        name: format!("{name} ({n} ops)"),
        kaal: format!("{kaal:.0}/s"),
        raw: format!("{raw:.0}/s"),
        ratio: format!("{:.2}×", kaal / raw),
        target: "≥ 0.8× raw".into(),
        met: Some(kaal / raw >= 0.8),
    })
    .collect()
}

/// A tick's batch claim of `n` fresh fire times vs one raw multi-row insert of `n` rows.
pub fn batch_claims(target: &dyn Target, sizes: &[usize]) -> Vec<Row> {
    let fixture = target.fresh();
    let adapter = fixture.adapter();
    sizes
        .iter()
        .map(|&n| {
            let (mut kaal_best, mut raw_best) = (Duration::MAX, Duration::MAX);
            for round in 0..ROUNDS {
                let keys: Vec<String> = (0..n)
                    .map(|i| format!("kaal:dispatch:job-{i}:{n}{round}"))
                    .collect();
                let raw_keys: Vec<String> = (0..n)
                    .map(|i| format!("raw:dispatch:job-{i}:{n}{round}"))
                    .collect();
                let kaal = timed(|| {
                    let won = adapter.acquire_many(&keys, TTL).expect("batch acquire");
                    assert!(won.iter().all(|w| *w));
                });
                let raw = timed(|| fixture.raw_insert_many(&raw_keys));
                kaal_best = kaal_best.min(kaal);
                raw_best = raw_best.min(raw);
            }
            let ratio = kaal_best.as_secs_f64() / raw_best.as_secs_f64();
            Row {
                name: format!("claim {n} due fire times (one batch)"),
                kaal: ms(kaal_best),
                raw: format!("{} (one multi-row INSERT)", ms(raw_best)),
                ratio: format!("{ratio:.2}× time"),
                target: if n >= 10_000 {
                    "≤ 1.5× raw time".into()
                } else {
                    "-".into()
                },
                met: (n >= 10_000).then_some(ratio <= 1.5),
            }
        })
        .collect()
}

fn node_with_jobs(adapter: Arc<dyn Adapter>, jobs: usize, cron: &str, persist: bool) -> Kaal {
    let kaal = Kaal::new(config(), adapter).expect("valid config");
    for i in 0..jobs {
        let key = format!("job-{i}");
        let ok = |_: &Fire| Ok::<(), std::convert::Infallible>(());
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

/// A coordinator tick on one node with `jobs` registered, all due once.
pub fn tick_all_due(target: &dyn Target, jobs: usize, target_ms: Option<f64>) -> Row {
    let fixture = target.fresh();
    let kaal = node_with_jobs(fixture.adapter(), jobs, "0 * * * *", true);
    let mut report = None;
    let elapsed = timed(|| report = Some(kaal.tick_at(at_hour(10))));
    let report = report.expect("ticked");
    assert_eq!(report.dispatched.len(), jobs, "errors: {:?}", report.errors);
    Row {
        name: format!("coordinator tick, {jobs} jobs all due (1 node)"),
        kaal: ms(elapsed),
        raw: "-".into(),
        ratio: "-".into(),
        target: target_ms.map_or("-".into(), |t| format!("≤ {t} ms")),
        met: target_ms.map(|t| elapsed.as_secs_f64() * 1e3 <= t),
    }
}

/// Two nodes with the same `jobs` registered tick the same instant; wall time until both are
/// done, and every fire time claimed once between them.
pub fn two_node_claim(target: &dyn Target, jobs: usize, target_ms: f64) -> Row {
    let fixture = target.fresh();
    let nodes: Vec<Arc<Kaal>> = [fixture.adapter(), fixture.another_node()]
        .into_iter()
        .map(|adapter| Arc::new(node_with_jobs(adapter, jobs, "0 * * * *", true)))
        .collect();
    let barrier = Arc::new(Barrier::new(3));
    let handles: Vec<_> = nodes
        .iter()
        .map(|node| {
            let (node, barrier) = (node.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                node.tick_at(at_hour(11)).dispatched.len()
            })
        })
        .collect();
    let start = Instant::now();
    barrier.wait();
    let dispatched: usize = handles
        .into_iter()
        .map(|h| h.join().expect("node thread"))
        .sum();
    let elapsed = start.elapsed();
    assert_eq!(
        dispatched, jobs,
        "each fire time must be dispatched once across the two nodes"
    );
    Row {
        name: format!("{jobs} due fire times claimed across a 2-node fleet"),
        kaal: ms(elapsed),
        raw: "-".into(),
        ratio: "-".into(),
        target: format!("≤ {target_ms} ms"),
        met: Some(elapsed.as_secs_f64() * 1e3 <= target_ms),
    }
}

/// `jobs` registered, none due: the median and worst tick, and the store calls they made.
pub fn idle_tick(adapter: Arc<dyn Adapter>, label: &str, jobs: usize) -> Row {
    let counting = Arc::new(CountingStore::new(adapter));
    let kaal = node_with_jobs(counting.clone(), jobs, "0 0 1 1 *", false);
    let start = at_hour(12);
    kaal.tick_at(start);
    let calls_before = counting.calls();
    let mut times: Vec<Duration> = (1..=100)
        .map(|i| {
            let now = start + ChronoDuration::milliseconds(500 * i);
            timed(|| assert!(kaal.tick_at(now).dispatched.is_empty()))
        })
        .collect();
    let calls = counting.calls() - calls_before;
    times.sort();
    let median = times[times.len() / 2];
    let worst = times[times.len() - 1];
    Row {
        name: format!("idle tick, {jobs} jobs none due ({label}; 100 ticks)"),
        kaal: format!("median {}, worst {}", ms(median), ms(worst)),
        raw: format!("{calls} store calls"),
        ratio: "-".into(),
        target: "≤ 20 ms, 0 calls".into(),
        met: Some(worst <= Duration::from_millis(20) && calls == 0),
    }
}

/// Store calls (= statements) one node makes per (key, fire time) over the whole stay of
/// the fire time in the lookback window, ticking every 5 s.
pub fn statements_per_fire_time(target: &dyn Target, jobs: usize, minutes: i64) -> Row {
    let fixture = target.fresh();
    let counting = Arc::new(CountingStore::new(fixture.adapter()));
    let kaal = node_with_jobs(counting.clone(), jobs, "* * * * *", true);
    let before = counting.calls();
    let start = at_hour(13);
    let mut dispatched = 0;
    for step in 0..(minutes * 12) {
        dispatched += kaal
            .tick_at(start + ChronoDuration::seconds(5 * step))
            .dispatched
            .len();
    }
    let calls = counting.calls() - before;
    let per = calls as f64 / dispatched as f64;
    Row {
        name: format!("statements per (key, fire time), {jobs} jobs, {minutes} min of 5 s ticks"),
        kaal: format!("{per:.3} ({calls} calls / {dispatched} fire times)"),
        raw: "-".into(),
        ratio: "-".into(),
        target: "constant, not per tick".into(),
        met: Some(per <= 4.0 / jobs as f64 * 1.5 + 0.1),
    }
}
