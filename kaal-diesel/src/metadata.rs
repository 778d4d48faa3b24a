//! [`Metadata`]: a definition's JSON object, as stored in `kaal_definitions.metadata`.

use serde_json::{Map, Value};

use crate::schema::sql_types::KaalJson;

/// A definition's metadata: a JSON object. Stored as JSON text on SQLite, `jsonb` on
/// PostgreSQL and `JSON` on MySQL. Reading a value that is not a JSON object is an error
/// naming what was found, never a silent empty object.
#[derive(
    Debug,
    Clone,
    Default,
    PartialEq,
    diesel::expression::AsExpression,
    diesel::deserialize::FromSqlRow,
)]
#[diesel(sql_type = KaalJson)]
pub struct Metadata(pub Map<String, Value>);

impl Metadata {
    /// Parses stored JSON text into an object.
    pub fn from_json_text(text: &str) -> Result<Self, String> {
        let value: Value = serde_json::from_str(text)
            .map_err(|err| format!("metadata is not valid JSON ({err}): {text:.80}"))?;
        Self::from_value(value)
    }

    /// Accepts `value` when it is a JSON object.
    pub fn from_value(value: Value) -> Result<Self, String> {
        match value {
            Value::Object(map) => Ok(Self(map)),
            other => Err(format!("metadata is not a JSON object: {other:.80}")),
        }
    }

    /// The JSON text stored on SQLite.
    pub fn to_json_text(&self) -> String {
        Value::Object(self.0.clone()).to_string()
    }
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use diesel::deserialize::{self, FromSql};
    use diesel::serialize::{self, IsNull, Output, ToSql};
    use diesel::sql_types::Text;
    use diesel::sqlite::{Sqlite, SqliteValue};

    use super::{KaalJson, Metadata};

    impl ToSql<KaalJson, Sqlite> for Metadata {
        fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
            out.set_value(self.to_json_text());
            Ok(IsNull::No)
        }
    }

    impl FromSql<KaalJson, Sqlite> for Metadata {
        fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
            let text = <String as FromSql<Text, Sqlite>>::from_sql(value)?;
            Ok(Metadata::from_json_text(&text)?)
        }
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use diesel::deserialize::{self, FromSql};
    use diesel::pg::{Pg, PgValue};
    use diesel::serialize::{self, Output, ToSql};
    use diesel::sql_types::Jsonb;
    use serde_json::Value;

    use super::{KaalJson, Metadata};

    /// Writes `jsonb`; PostgreSQL's assignment casts store it in `json` and `text` columns
    /// too (the Ruby gem creates `metadata` as `text`).
    impl ToSql<KaalJson, Pg> for Metadata {
        fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
            <Value as ToSql<Jsonb, Pg>>::to_sql(&Value::Object(self.0.clone()), &mut out.reborrow())
        }
    }

    /// The OID of PostgreSQL's `jsonb` type.
    const JSONB_OID: u32 = 3802;

    /// Reads `jsonb`, and `json` / `text` / `varchar` columns (whose binary form is the JSON
    /// text itself), so tables the Ruby gem created are read as they are.
    impl FromSql<KaalJson, Pg> for Metadata {
        fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
            if value.get_oid().get() == JSONB_OID {
                return Ok(Metadata::from_value(
                    <Value as FromSql<Jsonb, Pg>>::from_sql(value)?,
                )?);
            }
            let text = std::str::from_utf8(value.as_bytes())?;
            Ok(Metadata::from_json_text(text)?)
        }
    }
}

#[cfg(feature = "mysql")]
mod mysql {
    use diesel::deserialize::{self, FromSql};
    use diesel::mysql::{Mysql, MysqlValue};
    use diesel::serialize::{self, Output, ToSql};
    use diesel::sql_types::Json;
    use serde_json::Value;

    use super::{KaalJson, Metadata};

    impl ToSql<KaalJson, Mysql> for Metadata {
        fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Mysql>) -> serialize::Result {
            <Value as ToSql<Json, Mysql>>::to_sql(
                &Value::Object(self.0.clone()),
                &mut out.reborrow(),
            )
        }
    }

    impl FromSql<KaalJson, Mysql> for Metadata {
        fn from_sql(value: MysqlValue<'_>) -> deserialize::Result<Self> {
            Ok(Metadata::from_value(
                <Value as FromSql<Json, Mysql>>::from_sql(value)?,
            )?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_objects_are_metadata() {
        assert_eq!(Metadata::from_json_text("{}").unwrap(), Metadata::default());
        let err = Metadata::from_json_text("[1,2]").unwrap_err();
        assert!(err.contains("not a JSON object"), "{err}");
        let err = Metadata::from_json_text("{oops").unwrap_err();
        assert!(err.contains("not valid JSON"), "{err}");
        let m = Metadata::from_json_text(r#"{"a":{"b":[1,2.5,null]},"é":"ü"}"#).unwrap();
        assert_eq!(Metadata::from_json_text(&m.to_json_text()).unwrap(), m);
    }
}
