//! From matching wall-clock times to fire instants, with the daylight-saving rules
//! of the module docs.
//!
//! croner walks the calendar on naive wall-clock times (no zone, so no gaps or
//! repeats); chrono-tz maps each matching wall-clock time to the instants it names
//! in the zone; this file decides which of those instants fire.

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;

/// How far past a skipped wall-clock time the search for the end of the gap goes.
/// Real gaps are 30 minutes to an hour; a zone changing sides of the date line
/// skips a whole day.
const LONGEST_GAP_MINUTES: u32 = 48 * 60;

/// A schedule evaluated in one time zone.
pub(super) struct ZonedSchedule<'a> {
    pub(super) cron: &'a Cron,
    pub(super) fixed_time: bool,
    pub(super) tz: Tz,
}

impl ZonedSchedule<'_> {
    /// The first fire time at or after `from`.
    pub(super) fn first_from(&self, from: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut best: Option<DateTime<Utc>> = None;
        self.walk(from, |first, repeat| {
            for t in std::iter::once(first).chain(repeat) {
                if t >= from && best.is_none_or(|b| t < b) {
                    best = Some(t);
                }
            }
            // Every later wall-clock time fires at or after `first`.
            first < from
        });
        best
    }

    /// Every fire time in `from..=to`, ascending, without duplicates.
    pub(super) fn between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        if from > to {
            return out;
        }
        self.walk(from, |first, repeat| {
            if first > to {
                return false;
            }
            out.extend(
                std::iter::once(first)
                    .chain(repeat)
                    .filter(|t| (from..=to).contains(t)),
            );
            true
        });
        // Repeats of a fall-back hour come after the walls that follow them, and a
        // gap can send several skipped times to one instant.
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Calls `visit(first, repeat)` for every matching wall-clock time that can
    /// fire at or after `from`, in wall-clock order, until `visit` returns false.
    ///
    /// `first` is the earliest instant of the wall-clock time, which never
    /// decreases from one call to the next; `repeat` is its second instant in a
    /// fall-back hour, for interval jobs.
    fn walk(
        &self,
        from: DateTime<Utc>,
        mut visit: impl FnMut(DateTime<Utc>, Option<DateTime<Utc>>) -> bool,
    ) {
        let mut wall = self.first_wall(from);
        let mut inclusive = true;
        // croner stops with an error past year 5000, which ends the walk.
        while let Ok(next) = self.cron.find_next_occurrence(&wall, inclusive) {
            inclusive = false;
            wall = next;
            if let Some((first, repeat)) = self.instants(wall) {
                if !visit(first, repeat) {
                    return;
                }
            }
        }
    }

    /// The earliest wall-clock time that can name an instant at or after `from`:
    /// `from`'s own, or earlier when `from` is in the first pass of a fall-back
    /// hour (the second pass is still ahead) or at the end of a spring-forward gap
    /// (the skipped times fire at `from`).
    fn first_wall(&self, from: DateTime<Utc>) -> NaiveDateTime {
        let local = from.with_timezone(&self.tz);
        let wall = local.naive_local();
        let mut start = wall;
        if let Some(before) = from.checked_sub_signed(Duration::nanoseconds(1)) {
            start = start.min(before.with_timezone(&self.tz).naive_local());
        }
        if let LocalResult::Ambiguous(earlier, later) = self.tz.from_local_datetime(&wall) {
            if earlier == local {
                let fold = earlier.offset().fix().local_minus_utc()
                    - later.offset().fix().local_minus_utc();
                start = start.min(wall - Duration::seconds(i64::from(fold)));
            }
        }
        start
    }

    /// The instants a matching wall-clock time fires at: `(first, repeat)`, or
    /// `None` when it does not fire at all.
    fn instants(&self, wall: NaiveDateTime) -> Option<(DateTime<Utc>, Option<DateTime<Utc>>)> {
        match self.tz.from_local_datetime(&wall) {
            LocalResult::Single(t) => Some((t.to_utc(), None)),
            LocalResult::Ambiguous(earlier, later) => {
                Some((earlier.to_utc(), (!self.fixed_time).then(|| later.to_utc())))
            }
            LocalResult::None if self.fixed_time => self.end_of_gap(wall).map(|t| (t, None)),
            LocalResult::None => None,
        }
    }

    /// The first instant after the gap that skipped `wall`: the instant of the
    /// first wall-clock minute after `wall` that exists.
    fn end_of_gap(&self, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
        let mut probe = wall;
        for _ in 0..LONGEST_GAP_MINUTES {
            probe = probe.checked_add_signed(Duration::minutes(1))?;
            match self.tz.from_local_datetime(&probe) {
                LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => return Some(t.to_utc()),
                LocalResult::None => {}
            }
        }
        None
    }
}
