//! [`DbTime`]: the instants kaal stores, and the one text format they have on SQLite.

use std::fmt;

use chrono::{DateTime, NaiveDateTime, SubsecRound, Timelike, Utc};

use crate::schema::sql_types::KaalTimestamp;

/// A UTC instant as stored in a kaal column, at microsecond precision (what every supported
/// database keeps). Constructors truncate to whole microseconds, so a value written and read
/// back compares equal to the value returned when it was written.
///
/// # Text format (SQLite)
///
/// SQLite has no time type; kaal stores text in **ActiveRecord's format**:
/// `YYYY-MM-DD HH:MM:SS`, followed by `.ffffff` (six digits) unless the microseconds are
/// zero. [`DbTime::to_db_text`] writes it. It is the format the Ruby gem writes, so a fire
/// time written by a Ruby node and by a Rust node is the same text, and the unique
/// `(key, fire_time)` index and equality lookups work across both. The fixed-width prefix
/// makes text order equal time order, which is how SQL compares lease expiry; timestamps the
/// database computes itself (`strftime('%Y-%m-%d %H:%M:%f', 'now') || '000'`) share the
/// prefix and always carry six fractional digits.
///
/// Reading accepts every format Diesel's SQLite `Timestamp` accepts (with or without
/// fraction, `T` separator, julian day numbers), so rows written by other tools still read.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    diesel::expression::AsExpression,
    diesel::deserialize::FromSqlRow,
)]
#[diesel(sql_type = KaalTimestamp)]
pub struct DbTime(DateTime<Utc>);

impl DbTime {
    /// `instant`, truncated to whole microseconds.
    pub fn new(instant: DateTime<Utc>) -> Self {
        Self(instant.trunc_subsecs(6))
    }

    /// The instant.
    pub fn instant(self) -> DateTime<Utc> {
        self.0
    }

    /// The SQLite text form: `YYYY-MM-DD HH:MM:SS` plus `.ffffff` unless the microseconds
    /// are zero (ActiveRecord's format).
    ///
    /// ```
    /// use chrono::{TimeZone, Utc};
    /// use kaal_diesel::DbTime;
    /// let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    /// assert_eq!(DbTime::new(t).to_db_text(), "2026-01-01 00:00:00");
    /// let t = t + chrono::Duration::microseconds(1500);
    /// assert_eq!(DbTime::new(t).to_db_text(), "2026-01-01 00:00:00.001500");
    /// ```
    pub fn to_db_text(self) -> String {
        let micros = self.0.nanosecond() / 1_000;
        if micros == 0 {
            self.0.format("%Y-%m-%d %H:%M:%S").to_string()
        } else {
            format!("{}.{micros:06}", self.0.format("%Y-%m-%d %H:%M:%S"))
        }
    }

    /// The instant a naive date-time means when read as UTC (databases store kaal's times
    /// without a zone), truncated to whole microseconds.
    pub fn from_naive(naive: NaiveDateTime) -> Self {
        Self::new(naive.and_utc())
    }
}

impl From<DateTime<Utc>> for DbTime {
    fn from(instant: DateTime<Utc>) -> Self {
        Self::new(instant)
    }
}

impl From<DbTime> for DateTime<Utc> {
    fn from(time: DbTime) -> Self {
        time.0
    }
}

impl fmt::Debug for DbTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DbTime({})", self.to_db_text())
    }
}

impl fmt::Display for DbTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_db_text())
    }
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use chrono::NaiveDateTime;
    use diesel::deserialize::{self, FromSql};
    use diesel::serialize::{self, IsNull, Output, ToSql};
    use diesel::sql_types::Timestamp;
    use diesel::sqlite::{Sqlite, SqliteValue};

    use super::{DbTime, KaalTimestamp};

    impl ToSql<KaalTimestamp, Sqlite> for DbTime {
        fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
            out.set_value(self.to_db_text());
            Ok(IsNull::No)
        }
    }

    impl FromSql<KaalTimestamp, Sqlite> for DbTime {
        fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
            <NaiveDateTime as FromSql<Timestamp, Sqlite>>::from_sql(value).map(DbTime::from_naive)
        }
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use chrono::NaiveDateTime;
    use diesel::deserialize::{self, FromSql};
    use diesel::pg::{Pg, PgValue};
    use diesel::serialize::{self, Output, ToSql};
    use diesel::sql_types::Timestamp;

    use super::{DbTime, KaalTimestamp};

    impl ToSql<KaalTimestamp, Pg> for DbTime {
        fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
            <NaiveDateTime as ToSql<Timestamp, Pg>>::to_sql(
                &self.0.naive_utc(),
                &mut out.reborrow(),
            )
        }
    }

    impl FromSql<KaalTimestamp, Pg> for DbTime {
        fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
            <NaiveDateTime as FromSql<Timestamp, Pg>>::from_sql(value).map(DbTime::from_naive)
        }
    }
}

#[cfg(feature = "mysql")]
mod mysql {
    use chrono::NaiveDateTime;
    use diesel::deserialize::{self, FromSql};
    use diesel::mysql::{Mysql, MysqlValue};
    use diesel::serialize::{self, Output, ToSql};
    use diesel::sql_types::Datetime;

    use super::{DbTime, KaalTimestamp};

    impl ToSql<KaalTimestamp, Mysql> for DbTime {
        fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Mysql>) -> serialize::Result {
            <NaiveDateTime as ToSql<Datetime, Mysql>>::to_sql(
                &self.0.naive_utc(),
                &mut out.reborrow(),
            )
        }
    }

    impl FromSql<KaalTimestamp, Mysql> for DbTime {
        fn from_sql(value: MysqlValue<'_>) -> deserialize::Result<Self> {
            <NaiveDateTime as FromSql<Datetime, Mysql>>::from_sql(value).map(DbTime::from_naive)
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;

    #[test]
    fn text_form_is_activerecords_and_sorts_like_time() {
        let base = Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap();
        let times = [
            base,
            base + Duration::microseconds(1),
            base + Duration::milliseconds(500),
            base + Duration::seconds(1),
            base + Duration::days(400),
        ];
        let texts: Vec<String> = times.iter().map(|t| DbTime::new(*t).to_db_text()).collect();
        assert_eq!(texts[0], "2026-03-04 05:06:07");
        assert_eq!(texts[1], "2026-03-04 05:06:07.000001");
        assert_eq!(texts[2], "2026-03-04 05:06:07.500000");
        let mut sorted = texts.clone();
        sorted.sort();
        assert_eq!(sorted, texts, "text order differs from time order");
        // A time the database computes (always six digits) sorts with ours.
        let db_computed = "2026-03-04 05:06:07.000000";
        assert!(texts[0].as_str() <= db_computed && db_computed < texts[1].as_str());
    }

    #[test]
    fn constructors_truncate_to_microseconds() {
        let t = Utc.timestamp_opt(1_700_000_000, 123_456_789).unwrap();
        assert_eq!(
            DbTime::new(t).instant().timestamp_subsec_nanos(),
            123_456_000
        );
        assert_eq!(DbTime::new(t), DbTime::new(DbTime::new(t).instant()));
    }
}
