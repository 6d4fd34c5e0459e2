//! [`Timestamp`]: a UTC time stored the same way on both engines' terms.
//!
//! PostgreSQL stores it as `TIMESTAMPTZ`. SQLite has no time type; there it is RFC 3339 text in
//! UTC with exactly three fractional digits (`2026-12-05T10:00:00.123Z`), so `<`, `ORDER BY` and
//! `MIN`/`MAX` on the column compare times correctly, which text of varying precision would not.
//! Either way the value is kept to the millisecond, so what is read back equals what was written.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> core_db::Result<()> {
//! use core_db::db::Timestamp;
//! use core_db::{Database, on_db};
//!
//! let db = Database::connect("sqlite::memory:").await?;
//! db.execute("CREATE TABLE t (at TEXT NOT NULL)").await?;
//! let now = Timestamp::now();
//! on_db!(&db, pool => {
//!     sqlx::query("INSERT INTO t (at) VALUES ($1)").bind(now).execute(pool).await.map(drop)
//! })?;
//! let back: Timestamp = on_db!(&db, pool => {
//!     sqlx::query_scalar("SELECT at FROM t WHERE at <= $1").bind(Timestamp::now()).fetch_one(pool).await
//! })?;
//! assert_eq!(back, now);
//! # Ok(())
//! # }
//! ```

use std::fmt;

use chrono::{DateTime, NaiveDateTime, SecondsFormat, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::sqlite::{SqliteArgumentValue, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, Postgres, Sqlite, Type};

/// A UTC time to the millisecond, stored as `TIMESTAMPTZ` on PostgreSQL and as sortable
/// RFC 3339 text on SQLite (see the [module docs](self)). Serializes as RFC 3339.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// The current time, cut to the millisecond.
    pub fn now() -> Self {
        Self::from(Utc::now())
    }

    /// The time as chrono's type.
    pub fn get(self) -> DateTime<Utc> {
        self.0
    }

    /// The text SQLite stores: `2026-12-05T10:00:00.123Z`.
    pub fn to_sqlite_text(self) -> String {
        self.0.to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    /// Reads RFC 3339 text in any offset and precision, or SQLite's `CURRENT_TIMESTAMP` form
    /// (`2026-12-05 10:00:00`, read as UTC).
    pub fn parse(text: &str) -> Option<Self> {
        if let Ok(t) = DateTime::parse_from_rfc3339(text) {
            return Some(Self::from(t.with_timezone(&Utc)));
        }
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
            .ok()
            .map(|t| Self::from(t.and_utc()))
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(t: DateTime<Utc>) -> Self {
        Self(t.trunc_subsecs(3))
    }
}

impl From<Timestamp> for DateTime<Utc> {
    fn from(t: Timestamp) -> Self {
        t.0
    }
}

impl std::ops::Deref for Timestamp {
    type Target = DateTime<Utc>;
    fn deref(&self) -> &DateTime<Utc> {
        &self.0
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_sqlite_text())
    }
}

impl Type<Postgres> for Timestamp {
    fn type_info() -> PgTypeInfo {
        <DateTime<Utc> as Type<Postgres>>::type_info()
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        <DateTime<Utc> as Type<Postgres>>::compatible(ty)
    }
}

impl Encode<'_, Postgres> for Timestamp {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <DateTime<Utc> as Encode<Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl<'r> Decode<'r, Postgres> for Timestamp {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        <DateTime<Utc> as Decode<Postgres>>::decode(value).map(Self::from)
    }
}

impl Type<Sqlite> for Timestamp {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <String as Type<Sqlite>>::compatible(ty)
    }
}

impl<'q> Encode<'q, Sqlite> for Timestamp {
    fn encode_by_ref(&self, buf: &mut Vec<SqliteArgumentValue<'q>>) -> Result<IsNull, BoxDynError> {
        <String as Encode<Sqlite>>::encode(self.to_sqlite_text(), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for Timestamp {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let text = <&str as Decode<Sqlite>>::decode(value)?;
        Self::parse(text).ok_or_else(|| format!("not an RFC 3339 time: {text:?}").into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_has_a_fixed_width_so_it_sorts_like_time() {
        let whole = Timestamp::parse("2026-12-05T10:00:00Z").unwrap();
        let later = Timestamp::parse("2026-12-05T10:00:00.5+00:00").unwrap();
        assert_eq!(whole.to_sqlite_text(), "2026-12-05T10:00:00.000Z");
        assert_eq!(later.to_sqlite_text(), "2026-12-05T10:00:00.500Z");
        assert!(whole.to_sqlite_text() < later.to_sqlite_text());
    }

    #[test]
    fn parsing_accepts_offsets_and_sqlite_current_timestamp() {
        let a = Timestamp::parse("2026-12-05T12:00:00+02:00").unwrap();
        let b = Timestamp::parse("2026-12-05 10:00:00").unwrap();
        assert_eq!(a, b);
        assert_eq!(Timestamp::parse("yesterday"), None);
    }

    #[test]
    fn precision_is_cut_to_the_millisecond() {
        let t = Timestamp::parse("2026-12-05T10:00:00.123456789Z").unwrap();
        assert_eq!(t.to_sqlite_text(), "2026-12-05T10:00:00.123Z");
    }
}
