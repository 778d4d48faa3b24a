//! The rules of [`DefinitionRegistry`](kaal_core::DefinitionRegistry), once for every SQL
//! backend: what row to write for an upsert, an enable and a disable.
//!
//! * `created_at` is set on first insert and kept by later upserts;
//! * `schedule_since` is set on first insert, moved to `now` when the cron changes or the
//!   definition goes from disabled to enabled (by upsert or enable), and kept by every other
//!   write — re-applying the same definition every tick, a disable, a change of source or
//!   metadata (a row without one, written before the migration or by the Ruby gem, counts
//!   as `created_at`);
//! * `disabled_at` is set when a definition becomes disabled, kept while it stays disabled
//!   (also across upserts), cleared when it is enabled;
//! * `updated_at` is `now` after every write.
//!
//! The store applies them inside one write transaction (read the current row, compute the
//! new one here, write it), so concurrent writers cannot interleave between read and write.

use kaal_core::NewDefinition;

use crate::metadata::Metadata;
use crate::rows::DefinitionRow;
use crate::time::DbTime;

impl DefinitionRow {
    /// The row to store when `new` is upserted in `namespace` over `previous` (the stored
    /// row of the same namespace and key, if any) at `now`.
    pub fn upserted(
        namespace: &str,
        previous: Option<&DefinitionRow>,
        new: NewDefinition,
        now: DbTime,
    ) -> Self {
        let created_at = previous.map_or(now, |old| old.created_at);
        let schedule_since = match previous {
            Some(old) if old.cron == new.cron && (old.enabled || !new.enabled) => {
                old.schedule_since.unwrap_or(old.created_at)
            }
            _ => now,
        };
        let disabled_at = match (new.enabled, previous) {
            (true, _) => None,
            (false, Some(old)) if !old.enabled => old.disabled_at.or(Some(now)),
            (false, _) => Some(now),
        };
        Self {
            namespace: namespace.to_string(),
            key: new.key,
            cron: new.cron,
            enabled: new.enabled,
            source: new.source.as_str().to_string(),
            metadata: Metadata(new.metadata),
            disabled_at,
            created_at,
            updated_at: now,
            schedule_since: Some(schedule_since),
        }
    }

    /// This row after an enable (`true`) or disable (`false`) at `now`: `disabled_at` changes
    /// only when the state does, and `schedule_since` moves to `now` only when a disabled
    /// row is enabled.
    pub fn with_enabled(mut self, enabled: bool, now: DbTime) -> Self {
        if self.enabled != enabled {
            self.enabled = enabled;
            self.disabled_at = if enabled { None } else { Some(now) };
            if enabled {
                self.schedule_since = Some(now);
            }
        }
        if self.schedule_since.is_none() {
            self.schedule_since = Some(self.created_at);
        }
        self.updated_at = now;
        self
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use kaal_core::DefinitionSource;

    use super::*;

    fn at(seconds: i64) -> DbTime {
        DbTime::new(Utc.timestamp_opt(1_767_225_600 + seconds, 0).unwrap())
    }

    fn new(enabled: bool) -> NewDefinition {
        let mut new = NewDefinition::new("job", "* * * * *");
        new.enabled = enabled;
        new
    }

    #[test]
    fn first_upsert_sets_created_at_and_later_ones_keep_it() {
        let first = DefinitionRow::upserted("kaal", None, new(true), at(0));
        assert_eq!(
            (first.created_at, first.updated_at, first.disabled_at),
            (at(0), at(0), None)
        );
        let mut change = new(true);
        change.source = DefinitionSource::File;
        let second = DefinitionRow::upserted("kaal", Some(&first), change, at(5));
        assert_eq!((second.created_at, second.updated_at), (at(0), at(5)));
        assert_eq!(second.source, "file");
    }

    #[test]
    fn disabled_at_is_set_kept_and_cleared() {
        let enabled = DefinitionRow::upserted("kaal", None, new(true), at(0));
        let disabled = DefinitionRow::upserted("kaal", Some(&enabled), new(false), at(10));
        assert_eq!(disabled.disabled_at, Some(at(10)));
        let still = DefinitionRow::upserted("kaal", Some(&disabled), new(false), at(20));
        assert_eq!(still.disabled_at, Some(at(10)));
        let again = still.clone().with_enabled(false, at(30));
        assert_eq!(
            (again.disabled_at, again.updated_at),
            (Some(at(10)), at(30))
        );
        let on = again.with_enabled(true, at(40));
        assert_eq!((on.enabled, on.disabled_at), (true, None));
        let off = on.with_enabled(false, at(50));
        assert_eq!(off.disabled_at, Some(at(50)));
        let inserted_disabled = DefinitionRow::upserted("kaal", None, new(false), at(60));
        assert_eq!(inserted_disabled.disabled_at, Some(at(60)));
    }

    #[test]
    fn a_disabled_row_without_disabled_at_gets_one() {
        let mut odd = DefinitionRow::upserted("kaal", None, new(false), at(0));
        odd.disabled_at = None; // e.g. written by another tool
        let next = DefinitionRow::upserted("kaal", Some(&odd), new(false), at(7));
        assert_eq!(next.disabled_at, Some(at(7)));
    }

    fn with_cron(cron: &str, enabled: bool) -> NewDefinition {
        let mut new = NewDefinition::new("job", cron);
        new.enabled = enabled;
        new
    }

    #[test]
    fn schedule_since_is_set_on_insert_and_kept_by_an_unchanged_upsert() {
        let first = DefinitionRow::upserted("kaal", None, new(true), at(0));
        assert_eq!(first.schedule_since, Some(at(0)));
        let again = DefinitionRow::upserted("kaal", Some(&first), new(true), at(60));
        assert_eq!(
            (again.schedule_since, again.updated_at),
            (Some(at(0)), at(60))
        );
        let mut other_source = new(true);
        other_source.source = DefinitionSource::File;
        other_source
            .metadata
            .insert("command".into(), "sync".into());
        let moved = DefinitionRow::upserted("kaal", Some(&again), other_source, at(120));
        assert_eq!(
            moved.schedule_since,
            Some(at(0)),
            "source and metadata are not the schedule"
        );
    }

    #[test]
    fn schedule_since_moves_when_the_cron_changes() {
        let hourly = DefinitionRow::upserted("kaal", None, with_cron("0 * * * *", true), at(0));
        let minutely =
            DefinitionRow::upserted("kaal", Some(&hourly), with_cron("* * * * *", true), at(90));
        assert_eq!(
            (minutely.schedule_since, minutely.created_at),
            (Some(at(90)), at(0))
        );
        let disabled_change = DefinitionRow::upserted(
            "kaal",
            Some(&minutely),
            with_cron("*/5 * * * *", false),
            at(95),
        );
        assert_eq!(disabled_change.schedule_since, Some(at(95)));
    }

    #[test]
    fn schedule_since_moves_when_a_disabled_definition_is_enabled_and_not_on_disable() {
        let on = DefinitionRow::upserted("kaal", None, new(true), at(0));
        let off = on.with_enabled(false, at(10));
        assert_eq!(off.schedule_since, Some(at(0)), "a disable keeps it");
        let still_off = DefinitionRow::upserted("kaal", Some(&off), new(false), at(20));
        assert_eq!(still_off.schedule_since, Some(at(0)));
        let on_again = still_off.clone().with_enabled(true, at(30));
        assert_eq!(on_again.schedule_since, Some(at(30)));
        let enabled_again = on_again.clone().with_enabled(true, at(40));
        assert_eq!(
            enabled_again.schedule_since,
            Some(at(30)),
            "already enabled"
        );
        let upsert_on = DefinitionRow::upserted("kaal", Some(&still_off), new(true), at(50));
        assert_eq!(upsert_on.schedule_since, Some(at(50)));
    }

    #[test]
    fn a_row_without_schedule_since_counts_from_created_at() {
        let mut old = DefinitionRow::upserted("kaal", None, new(true), at(0));
        old.schedule_since = None; // written before the migration, or by the Ruby gem
        let same = DefinitionRow::upserted("kaal", Some(&old), new(true), at(30));
        assert_eq!(same.schedule_since, Some(at(0)));
        let disabled = old.clone().with_enabled(false, at(40));
        assert_eq!(disabled.schedule_since, Some(at(0)));
        assert_eq!(
            old.into_definition().unwrap().schedule_since,
            at(0).instant()
        );
    }
}
