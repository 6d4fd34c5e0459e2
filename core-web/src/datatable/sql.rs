//! SQL for a [`ListQuery`] on each backend, and rows to JSON.
//!
//! Values from the request are only ever bound with `push_bind`; the SQL text is assembled from
//! the definition (quoted identifiers, verbatim expressions written by the application) and fixed
//! keywords.

use std::fmt::Write as _;

use anyhow::Context as _;
use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use core_db::db::{Backend, Database, quote_ident};
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Column as _, Encode, QueryBuilder, Row as _, Type, TypeInfo as _, ValueRef as _};

use super::params::{Cmp, Condition, ListQuery, Target};
use super::{ColumnDef, ColumnType, Direction, FilterValue, Inner, Row};
use crate::error::AppError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Postgres,
    Sqlite,
}

/// The SQL that depends only on the definition, built once by
/// [`DataTableBuilder::build`](super::DataTableBuilder::build) instead of on every request: the
/// `SELECT … FROM …` of each dialect and the `SELECT COUNT(*) FROM …`.
#[derive(Debug)]
pub(crate) struct Statements {
    select_postgres: String,
    select_sqlite: String,
    count: String,
}

impl Statements {
    pub(crate) fn new(from: &str, columns: &[ColumnDef]) -> Self {
        Self {
            select_postgres: select_from(from, columns, Dialect::Postgres),
            select_sqlite: select_from(from, columns, Dialect::Sqlite),
            count: format!("SELECT COUNT(*) FROM {from}"),
        }
    }

    fn select(&self, dialect: Dialect) -> &str {
        match dialect {
            Dialect::Postgres => &self.select_postgres,
            Dialect::Sqlite => &self.select_sqlite,
        }
    }
}

/// `SELECT <every column> FROM <from>` in `dialect`.
fn select_from(from: &str, columns: &[ColumnDef], dialect: Dialect) -> String {
    let mut sql = String::from("SELECT ");
    for (i, column) in columns.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        // PostgreSQL: cast to one type per column kind so rows decode the same whatever the
        // column's exact type (INT4 or INT8, VARCHAR or UUID, …). Timestamps keep their type
        // and are decoded by it. SQLite values carry their own storage class.
        let cast = match (dialect, column.column.kind) {
            (Dialect::Sqlite, _) | (Dialect::Postgres, ColumnType::Timestamp) => None,
            (Dialect::Postgres, ColumnType::Text) => Some("TEXT"),
            (Dialect::Postgres, ColumnType::Integer) => Some("BIGINT"),
            (Dialect::Postgres, ColumnType::Float) => Some("DOUBLE PRECISION"),
            (Dialect::Postgres, ColumnType::Bool) => Some("BOOLEAN"),
        };
        match cast {
            Some(ty) => {
                let _ = write!(sql, "CAST({} AS {ty})", column.expr);
            }
            None => sql.push_str(&column.expr),
        }
        sql.push_str(" AS ");
        sql.push_str(&quote_ident(&column.column.name));
    }
    sql.push_str(" FROM ");
    sql.push_str(from);
    sql
}

/// A [`ListQuery`] resolved against its definition, ready to become SQL on either backend.
#[derive(Debug)]
pub(crate) struct Plan<'a> {
    def: &'a Inner,
    conditions: Vec<Resolved<'a>>,
    order: Vec<(&'a str, Direction)>,
    limit: i64,
    offset: i64,
}

#[derive(Debug)]
enum Resolved<'a> {
    Compare {
        expr: String,
        cmp: Cmp,
        value: &'a FilterValue,
    },
    Like {
        expr: &'a str,
        pattern: &'a str,
    },
    Search {
        exprs: Vec<&'a str>,
        pattern: &'a str,
    },
}

impl<'a> Plan<'a> {
    pub(crate) fn new(def: &'a Inner, query: &'a ListQuery) -> Result<Self, AppError> {
        let mut conditions = Vec::with_capacity(query.conditions.len());
        for condition in &query.conditions {
            conditions.push(match condition {
                Condition::Compare { target, cmp, value } => Resolved::Compare {
                    expr: match target {
                        Target::Column(i) => def.columns[*i].expr.clone(),
                        Target::Named(name) => match def.position(name) {
                            Some(i) => def.columns[i].expr.clone(),
                            None => quote_ident(name),
                        },
                    },
                    cmp: *cmp,
                    value,
                },
                Condition::Like { column, pattern } => Resolved::Like {
                    expr: &def.columns[*column].expr,
                    pattern,
                },
                Condition::Search { pattern } => Resolved::Search {
                    exprs: def
                        .columns
                        .iter()
                        .filter(|c| c.column.searchable)
                        .map(|c| c.expr.as_str())
                        .collect(),
                    pattern,
                },
            });
        }
        let mut order: Vec<(&str, Direction)> = query
            .sort
            .iter()
            .map(|(i, d)| (def.columns[*i].expr.as_str(), *d))
            .collect();
        if let Some(key) = def.key
            && !query.sort.iter().any(|(i, _)| *i == key)
        {
            // The tie-breaker follows the direction of the last sort column, so that an index on
            // (sort column, key) serves both directions.
            let direction = order.last().map_or(Direction::Asc, |(_, d)| *d);
            order.push((def.columns[key].expr.as_str(), direction));
        }
        let limit = i64::try_from(query.per_page).unwrap_or(i64::MAX);
        let offset = (query.page - 1)
            .checked_mul(query.per_page)
            .and_then(|o| i64::try_from(o).ok())
            .ok_or_else(|| anyhow::anyhow!("page offset out of range"))?;
        Ok(Self {
            def,
            conditions,
            order,
            limit,
            offset,
        })
    }

    /// Whether the query has no conditions: its total is the table's row count.
    pub(crate) fn is_unfiltered(&self) -> bool {
        self.conditions.is_empty()
    }

    /// Identifies the count query (its conditions and values) for
    /// [`super::DataTableBuilder::cache_counts`].
    pub(crate) fn count_cache_key(&self, backend: Backend) -> String {
        format!("{}|{:?}", backend.as_str(), self.conditions)
    }

    fn push_select<'q, DB>(&self, qb: &mut QueryBuilder<'q, DB>, dialect: Dialect)
    where
        DB: sqlx::Database,
        String: Encode<'q, DB> + Type<DB>,
        i64: Encode<'q, DB> + Type<DB>,
        f64: Encode<'q, DB> + Type<DB>,
        bool: Encode<'q, DB> + Type<DB>,
        DateTime<Utc>: Encode<'q, DB> + Type<DB>,
    {
        qb.push(self.def.statements.select(dialect));
        self.push_where(qb, dialect);
        if !self.order.is_empty() {
            qb.push(" ORDER BY ");
            for (i, (expr, direction)) in self.order.iter().enumerate() {
                if i > 0 {
                    qb.push(", ");
                }
                qb.push(expr);
                // PostgreSQL's NULL placement (last ascending, first descending), spelled out on
                // SQLite so both backends return the same order.
                qb.push(match (dialect, direction) {
                    (Dialect::Postgres, Direction::Asc) => " ASC",
                    (Dialect::Postgres, Direction::Desc) => " DESC",
                    (Dialect::Sqlite, Direction::Asc) => " ASC NULLS LAST",
                    (Dialect::Sqlite, Direction::Desc) => " DESC NULLS FIRST",
                });
            }
        }
        qb.push(" LIMIT ");
        qb.push_bind(self.limit);
        qb.push(" OFFSET ");
        qb.push_bind(self.offset);
    }

    fn push_count<'q, DB>(&self, qb: &mut QueryBuilder<'q, DB>, dialect: Dialect)
    where
        DB: sqlx::Database,
        String: Encode<'q, DB> + Type<DB>,
        i64: Encode<'q, DB> + Type<DB>,
        f64: Encode<'q, DB> + Type<DB>,
        bool: Encode<'q, DB> + Type<DB>,
        DateTime<Utc>: Encode<'q, DB> + Type<DB>,
    {
        qb.push(&self.def.statements.count);
        self.push_where(qb, dialect);
    }

    fn push_where<'q, DB>(&self, qb: &mut QueryBuilder<'q, DB>, dialect: Dialect)
    where
        DB: sqlx::Database,
        String: Encode<'q, DB> + Type<DB>,
        i64: Encode<'q, DB> + Type<DB>,
        f64: Encode<'q, DB> + Type<DB>,
        bool: Encode<'q, DB> + Type<DB>,
        DateTime<Utc>: Encode<'q, DB> + Type<DB>,
    {
        let like = match dialect {
            Dialect::Postgres => " ILIKE ",
            Dialect::Sqlite => " LIKE ",
        };
        for (i, condition) in self.conditions.iter().enumerate() {
            qb.push(if i == 0 { " WHERE " } else { " AND " });
            match condition {
                Resolved::Compare { expr, cmp, value } => {
                    push_compare(qb, dialect, expr, *cmp, value);
                }
                Resolved::Like { expr, pattern } => {
                    push_as_text(qb, dialect, expr);
                    qb.push(like);
                    qb.push_bind((*pattern).to_owned());
                    qb.push(" ESCAPE '!'");
                }
                Resolved::Search { exprs, pattern } => {
                    qb.push("(");
                    for (j, expr) in exprs.iter().enumerate() {
                        if j > 0 {
                            qb.push(" OR ");
                        }
                        push_as_text(qb, dialect, expr);
                        qb.push(like);
                        qb.push_bind((*pattern).to_owned());
                        qb.push(" ESCAPE '!'");
                    }
                    qb.push(")");
                }
            }
        }
    }
}

/// The expression as text: `CAST(… AS TEXT)` on PostgreSQL (a no-op for text columns, so their
/// indexes still serve); SQLite's `LIKE` and comparisons take any storage class as it is.
fn push_as_text<DB: sqlx::Database>(qb: &mut QueryBuilder<'_, DB>, dialect: Dialect, expr: &str) {
    match dialect {
        Dialect::Postgres => {
            qb.push(format_args!("CAST({expr} AS TEXT)"));
        }
        Dialect::Sqlite => {
            qb.push(expr);
        }
    }
}

fn push_compare<'q, DB>(
    qb: &mut QueryBuilder<'q, DB>,
    dialect: Dialect,
    expr: &str,
    cmp: Cmp,
    value: &FilterValue,
) where
    DB: sqlx::Database,
    String: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
    f64: Encode<'q, DB> + Type<DB>,
    bool: Encode<'q, DB> + Type<DB>,
    DateTime<Utc>: Encode<'q, DB> + Type<DB>,
{
    match value {
        FilterValue::Text(text) => {
            push_as_text(qb, dialect, expr);
            qb.push(cmp.sql());
            qb.push_bind(text.clone());
        }
        FilterValue::Integer(n) => {
            qb.push(expr);
            qb.push(cmp.sql());
            qb.push_bind(*n);
        }
        FilterValue::Float(f) => {
            qb.push(expr);
            qb.push(cmp.sql());
            qb.push_bind(*f);
        }
        FilterValue::Bool(b) => {
            qb.push(expr);
            qb.push(cmp.sql());
            qb.push_bind(*b);
        }
        FilterValue::Timestamp(t) => match dialect {
            Dialect::Postgres => {
                qb.push(expr);
                qb.push(cmp.sql());
                qb.push_bind(*t);
            }
            Dialect::Sqlite => {
                // Text timestamps in any ISO-8601 form, or Unix seconds, compared as instants.
                qb.push(format_args!(
                    "(CASE WHEN typeof({expr}) IN ('integer', 'real') \
                     THEN julianday({expr}, 'unixepoch') ELSE julianday({expr}) END)"
                ));
                qb.push(cmp.sql());
                qb.push("julianday(");
                qb.push_bind(t.format("%Y-%m-%d %H:%M:%S%.3f").to_string());
                qb.push(")");
            }
        },
    }
}

/// How [`run`] finds the total.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Total<'a> {
    /// Not at all: a kept total is used.
    Known,
    /// `COUNT(*)` with the plan's conditions.
    Count,
    /// [`Database::row_count`] of this table: the query has no conditions.
    RowCount(&'a str),
}

/// Runs the page query and, unless the total is [`Total::Known`], the count concurrently on a
/// second connection.
pub(crate) async fn run(
    def: &Inner,
    plan: &Plan<'_>,
    db: &Database,
    total: Total<'_>,
) -> Result<(Vec<Row>, Option<u64>), AppError> {
    let context = || format!("DataTable {}", def.label);
    // The same steps on either backend; only the sqlx types and the row mapping differ.
    macro_rules! page_and_count {
        ($pool:expr, $backend:ty, $dialect:expr, $map_row:ident) => {{
            let mut page = QueryBuilder::<$backend>::new("");
            plan.push_select(&mut page, $dialect);
            let rows = async { anyhow::Ok(page.build().fetch_all($pool).await?) };
            let count = async {
                Ok(match total {
                    Total::Known => None,
                    Total::Count => {
                        let mut counter = QueryBuilder::<$backend>::new("");
                        plan.push_count(&mut counter, $dialect);
                        let n = counter.build_query_scalar::<i64>().fetch_one($pool).await?;
                        Some(u64::try_from(n).unwrap_or(0))
                    }
                    Total::RowCount(table) => Some(db.row_count(table).await?),
                })
            };
            let (rows, total) = tokio::try_join!(rows, count).with_context(context)?;
            let rows = rows
                .iter()
                .map(|row| $map_row(def, row))
                .collect::<anyhow::Result<Vec<_>>>()
                .with_context(context)?;
            Ok((rows, total))
        }};
    }
    match db {
        Database::Postgres(pool) => {
            page_and_count!(pool, sqlx::Postgres, Dialect::Postgres, pg_row)
        }
        Database::Sqlite(pool) => page_and_count!(pool, sqlx::Sqlite, Dialect::Sqlite, sqlite_row),
    }
}

fn number(f: f64) -> Value {
    serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
}

fn utc_text(t: DateTime<Utc>) -> Value {
    Value::String(t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

fn pg_row(def: &Inner, row: &PgRow) -> anyhow::Result<Row> {
    let mut out = Row::new();
    for (i, column) in def.columns.iter().enumerate() {
        let name = &column.column.name;
        let value = match column.column.kind {
            ColumnType::Text => row.try_get::<Option<String>, _>(i)?.map(Value::String),
            ColumnType::Integer => row.try_get::<Option<i64>, _>(i)?.map(Value::from),
            ColumnType::Float => row.try_get::<Option<f64>, _>(i)?.map(number),
            ColumnType::Bool => row.try_get::<Option<bool>, _>(i)?.map(Value::Bool),
            ColumnType::Timestamp => match row.column(i).type_info().name() {
                "TIMESTAMPTZ" => row.try_get::<Option<DateTime<Utc>>, _>(i)?.map(utc_text),
                "TIMESTAMP" => row
                    .try_get::<Option<NaiveDateTime>, _>(i)?
                    .map(|t| Value::String(t.format("%Y-%m-%dT%H:%M:%S%.f").to_string())),
                "DATE" => row
                    .try_get::<Option<NaiveDate>, _>(i)?
                    .map(|d| Value::String(d.format("%Y-%m-%d").to_string())),
                other => anyhow::bail!(
                    "column {name:?} is declared as a timestamp but PostgreSQL returns {other}"
                ),
            },
        };
        out.insert(name.clone(), value.unwrap_or(Value::Null));
    }
    Ok(out)
}

fn sqlite_row(def: &Inner, row: &SqliteRow) -> anyhow::Result<Row> {
    let mut out = Row::new();
    for (i, column) in def.columns.iter().enumerate() {
        let raw = row.try_get_raw(i)?;
        let class = if raw.is_null() {
            "NULL"
        } else {
            match raw.type_info().name() {
                "INTEGER" => "INTEGER",
                "REAL" => "REAL",
                "BLOB" => "BLOB",
                _ => "TEXT",
            }
        };
        let value = match class {
            "NULL" => Value::Null,
            "INTEGER" => {
                let n: i64 = row.try_get_unchecked(i)?;
                match column.column.kind {
                    ColumnType::Text => Value::String(n.to_string()),
                    ColumnType::Integer => Value::from(n),
                    ColumnType::Float => number(n as f64),
                    ColumnType::Bool => Value::Bool(n != 0),
                    ColumnType::Timestamp => {
                        DateTime::from_timestamp(n, 0).map_or(Value::from(n), utc_text)
                    }
                }
            }
            "REAL" => {
                let f: f64 = row.try_get_unchecked(i)?;
                match column.column.kind {
                    ColumnType::Text => Value::String(f.to_string()),
                    ColumnType::Bool => Value::Bool(f != 0.0),
                    ColumnType::Timestamp => DateTime::from_timestamp_micros((f * 1e6) as i64)
                        .map_or_else(|| number(f), utc_text),
                    ColumnType::Integer | ColumnType::Float => number(f),
                }
            }
            "BLOB" => {
                let bytes: Vec<u8> = row.try_get_unchecked(i)?;
                Value::String(String::from_utf8_lossy(&bytes).into_owned())
            }
            _ => {
                let text: String = row.try_get_unchecked(i)?;
                match column.column.kind {
                    ColumnType::Text => Value::String(text),
                    ColumnType::Integer => text
                        .trim()
                        .parse::<i64>()
                        .map_or(Value::String(text), Value::from),
                    ColumnType::Float => match text.trim().parse::<f64>() {
                        Ok(f) => number(f),
                        Err(_) => Value::String(text),
                    },
                    ColumnType::Bool => match text.trim().to_ascii_lowercase().as_str() {
                        "true" | "t" | "1" => Value::Bool(true),
                        "false" | "f" | "0" => Value::Bool(false),
                        _ => Value::String(text),
                    },
                    ColumnType::Timestamp => {
                        sqlite_time(&text).map_or(Value::String(text), utc_text)
                    }
                }
            }
        };
        out.insert(column.column.name.clone(), value);
    }
    Ok(out)
}

/// A timestamp stored as SQLite text: `2024-05-01 12:00:00`, `…12:00:00.123456+00:00`,
/// `2024-05-01T12:00:00Z`, … (without an offset it is UTC, as `CURRENT_TIMESTAMP` writes it).
fn sqlite_time(text: &str) -> Option<DateTime<Utc>> {
    match super::params::parse_time(text.trim())? {
        super::params::Time::Instant(t) => Some(t),
        super::params::Time::Day(_) => None,
    }
}
