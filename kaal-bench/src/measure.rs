//! Paired timing: kaal and its raw baseline measured side by side, round after round, and
//! summarised by medians.
//!
//! Why paired, one operation at a time: on this VM a commit waits for an fsync whose latency
//! swings from 0.1 ms to 8 ms with whatever else the disk is doing. Timing 2,000 kaal
//! operations and then 2,000 raw ones compares two different stretches of disk weather (a
//! 0.73× "gap" on PostgreSQL acquire + release came from that); alternating them one by one
//! exposes both to the same weather. Medians over several rounds then keep one unlucky
//! round from deciding the figure.

use std::time::{Duration, Instant};

/// Times `f`.
pub fn timed(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

/// The median of `values` (the upper one of an even count); `NaN` when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The smallest and largest of `values`.
fn range(values: &[f64]) -> (f64, f64) {
    values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(*v), hi.max(*v))
        })
}

/// `seconds` as a duration (zero for no value).
fn duration(seconds: f64) -> Duration {
    Duration::try_from_secs_f64(seconds).unwrap_or_default()
}

/// `d` in milliseconds with one decimal.
pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// A ratio with its spread over the rounds: `0.97× (0.91-1.03)`.
pub fn ratio_with_range(ratios: &[f64], unit: &str) -> String {
    let (lo, hi) = range(ratios);
    format!("{:.2}×{unit} ({lo:.2}-{hi:.2})", median(ratios))
}

/// Rounds of `n` kaal operations interleaved with `n` raw ones.
#[derive(Debug, Default)]
pub struct PairedOps {
    /// Per round: kaal's total time, the raw baseline's total time.
    rounds: Vec<(Duration, Duration)>,
    /// Every kaal operation's time, in microseconds.
    kaal_ops: Vec<f64>,
    /// Every raw operation's time, in microseconds.
    raw_ops: Vec<f64>,
    /// Operations per round.
    n: usize,
}

impl PairedOps {
    /// Runs one round: `kaal(state, i)` and `raw(i)` for `i` in `0..n`, alternating one by
    /// one (and which of the two goes first), each timed on its own. The round runs in
    /// blocks of `block` operations, each after an untimed `start()` whose result the kaal
    /// operations get. With `record` false the round is a warm-up and is not kept.
    ///
    /// Returns the mean time of one operation in the round (kaal's and raw's together).
    pub fn round<S>(
        &mut self,
        n: usize,
        block: usize,
        record: bool,
        mut start: impl FnMut() -> S,
        mut kaal: impl FnMut(&S, usize),
        mut raw: impl FnMut(usize),
    ) -> Duration {
        let (mut kaal_total, mut raw_total) = (Duration::ZERO, Duration::ZERO);
        for first in (0..n).step_by(block.max(1)) {
            let state = start();
            for i in first..n.min(first + block.max(1)) {
                let (k, r) = if i % 2 == 0 {
                    let k = timed(|| kaal(&state, i));
                    (k, timed(|| raw(i)))
                } else {
                    let r = timed(|| raw(i));
                    (timed(|| kaal(&state, i)), r)
                };
                kaal_total += k;
                raw_total += r;
                if record {
                    self.kaal_ops.push(k.as_secs_f64() * 1e6);
                    self.raw_ops.push(r.as_secs_f64() * 1e6);
                }
            }
        }
        if record {
            self.rounds.push((kaal_total, raw_total));
            self.n = n;
        }
        (kaal_total + raw_total) / u32::try_from(2 * n.max(1)).unwrap_or(u32::MAX)
    }

    /// Operations per round.
    pub fn ops(&self) -> usize {
        self.n
    }

    /// The median round by kaal's rate over the raw rate: kaal's rate, the raw rate (ops/s)
    /// and their ratio. One round's figures, so that the three agree.
    pub fn median_round(&self) -> (f64, f64, f64) {
        let rate = |d: Duration| self.n as f64 / d.as_secs_f64();
        median_by_ratio(&self.rounds, |(k, r)| r.as_secs_f64() / k.as_secs_f64())
            .map_or((f64::NAN, f64::NAN, f64::NAN), |(k, r)| {
                (rate(k), rate(r), rate(k) / rate(r))
            })
    }

    /// kaal's rate over the raw rate, per round.
    pub fn ratios(&self) -> Vec<f64> {
        self.rounds
            .iter()
            .map(|(k, r)| r.as_secs_f64() / k.as_secs_f64())
            .collect()
    }

    /// Median time of one operation (µs): kaal, raw.
    pub fn median_op(&self) -> (f64, f64) {
        (median(&self.kaal_ops), median(&self.raw_ops))
    }
}

/// Rounds of one kaal measurement against one raw measurement (batch claims).
#[derive(Debug, Default)]
pub struct PairedTimes {
    rounds: Vec<(Duration, Duration)>,
}

impl PairedTimes {
    /// Keeps one round's times.
    pub fn push(&mut self, kaal: Duration, raw: Duration) {
        self.rounds.push((kaal, raw));
    }

    /// The median round by kaal's time over the raw time: kaal's time, the raw time, and
    /// their ratio.
    pub fn median_round(&self) -> (Duration, Duration, f64) {
        median_by_ratio(&self.rounds, |(k, r)| k.as_secs_f64() / r.as_secs_f64())
            .map_or((Duration::ZERO, Duration::ZERO, f64::NAN), |(k, r)| {
                (k, r, k.as_secs_f64() / r.as_secs_f64())
            })
    }

    /// kaal's time over the raw time, per round.
    pub fn ratios(&self) -> Vec<f64> {
        self.rounds
            .iter()
            .map(|(k, r)| k.as_secs_f64() / r.as_secs_f64())
            .collect()
    }
}

/// The round whose `ratio` is the median (the upper one of an even count).
fn median_by_ratio(
    rounds: &[(Duration, Duration)],
    ratio: impl Fn(&(Duration, Duration)) -> f64,
) -> Option<(Duration, Duration)> {
    let mut sorted = rounds.to_vec();
    sorted.sort_by(|a, b| ratio(a).total_cmp(&ratio(b)));
    sorted.get(sorted.len() / 2).copied()
}

/// Median and range of single timings (ticks), as `38.7 ms (35.1-41.0)`.
pub fn times_with_range(times: &[Duration]) -> (Duration, String) {
    let values: Vec<f64> = times.iter().map(Duration::as_secs_f64).collect();
    let (lo, hi) = range(&values);
    let med = duration(median(&values));
    (
        med,
        format!("{} ({:.1}-{:.1})", ms(med), lo * 1e3, hi * 1e3),
    )
}
