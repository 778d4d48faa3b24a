//! The rules of [`DefinitionRegistry`](kaal_core::DefinitionRegistry), once for every SQL
//! backend: what row to write for an upsert, an enable and a disable.
//!
//! * `created_at` is set on first insert and kept by later upserts;
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
        }
    }

    /// This row after an enable (`true`) or disable (`false`) at `now`: `disabled_at` changes
    /// only when the state does.
    pub fn with_enabled(mut self, enabled: bool, now: DbTime) -> Self {
        if self.enabled != enabled {
            self.enabled = enabled;
            self.disabled_at = if enabled { None } else { Some(now) };
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
}
