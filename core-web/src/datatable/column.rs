//! The columns of a [`DataTable`](super::DataTable): their types, the filters they allow, and
//! the values bound into a query.

use chrono::{DateTime, Utc};

/// How a column's values are typed: how filter values are parsed and bound, and how the column is
/// rendered in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ColumnType {
    /// Text (`TEXT`, `VARCHAR`, …; anything castable to text on PostgreSQL, such as `UUID`).
    Text,
    /// A whole number (`SMALLINT`, `INTEGER`, `BIGINT`), rendered as a JSON number.
    Integer,
    /// A floating-point number (`REAL`, `DOUBLE PRECISION`, `NUMERIC`), rendered as a JSON number.
    Float,
    /// A boolean, rendered as `true`/`false`.
    Bool,
    /// A point in time (`TIMESTAMPTZ`, `TIMESTAMP`, `DATE`; on SQLite ISO-8601 text or Unix
    /// seconds), rendered as RFC 3339 text.
    Timestamp,
}

impl ColumnType {
    pub(super) fn key(self) -> &'static str {
        match self {
            ColumnType::Text => "text",
            ColumnType::Integer => "integer",
            ColumnType::Float => "float",
            ColumnType::Bool => "bool",
            ColumnType::Timestamp => "timestamp",
        }
    }
}

/// A kind of filter a column allows, requested with `filter[column][operator]=value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Filter {
    /// Equality: `filter[col]=v` or `filter[col][eq]=v`.
    Eq,
    /// Case-insensitive substring: `filter[col][like]=v`.
    Like,
    /// Ranges: `filter[col][gte]=v`, `[gt]`, `[lte]`, `[lt]`.
    Range,
}

impl Filter {
    pub(super) fn bit(self) -> u8 {
        match self {
            Filter::Eq => 1,
            Filter::Like => 2,
            Filter::Range => 4,
        }
    }
}

/// A column of a [`DataTable`](super::DataTable): its name in the JSON and the query string, its type, and what the
/// request may do with it. Every column is returned in each row.
///
/// ```
/// use core_web::datatable::{Column, Filter};
///
/// let created = Column::timestamp("created_at").sortable().filter(Filter::Range);
/// let team = Column::text("team").sql("t.name").searchable(); // from a joined table
/// # let _ = (created, team);
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Column {
    pub(super) name: String,
    pub(super) expr: Option<String>,
    pub(super) kind: ColumnType,
    pub(super) sortable: bool,
    pub(super) searchable: bool,
    pub(super) filters: u8,
}

impl Column {
    /// A column named `name` of type `kind`, read from the table column of the same name.
    pub fn new(name: impl Into<String>, kind: ColumnType) -> Self {
        Self {
            name: name.into(),
            expr: None,
            kind,
            sortable: false,
            searchable: false,
            filters: 0,
        }
    }

    /// A [`ColumnType::Text`] column.
    pub fn text(name: impl Into<String>) -> Self {
        Self::new(name, ColumnType::Text)
    }

    /// A [`ColumnType::Integer`] column.
    pub fn integer(name: impl Into<String>) -> Self {
        Self::new(name, ColumnType::Integer)
    }

    /// A [`ColumnType::Float`] column.
    pub fn float(name: impl Into<String>) -> Self {
        Self::new(name, ColumnType::Float)
    }

    /// A [`ColumnType::Bool`] column.
    pub fn boolean(name: impl Into<String>) -> Self {
        Self::new(name, ColumnType::Bool)
    }

    /// A [`ColumnType::Timestamp`] column.
    pub fn timestamp(name: impl Into<String>) -> Self {
        Self::new(name, ColumnType::Timestamp)
    }

    /// Reads the column from a SQL expression instead of the table column named like it, such as
    /// `t.name` from a joined table or `lower(email)`. The expression is inserted verbatim: it
    /// must come from your code, never from a request.
    pub fn sql(mut self, expression: impl Into<String>) -> Self {
        self.expr = Some(expression.into());
        self
    }

    /// Allows `sort=column` and `sort=-column`.
    pub fn sortable(mut self) -> Self {
        self.sortable = true;
        self
    }

    /// Includes the column in the free-text search `q`.
    pub fn searchable(mut self) -> Self {
        self.searchable = true;
        self
    }

    /// Allows one kind of filter; call again to allow more.
    pub fn filter(mut self, filter: Filter) -> Self {
        self.filters |= filter.bit();
        self
    }

    /// Allows several kinds of filter at once.
    pub fn filters(mut self, filters: impl IntoIterator<Item = Filter>) -> Self {
        for filter in filters {
            self.filters |= filter.bit();
        }
        self
    }

    /// The column's name, as used in rows and query parameters.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The column's type.
    pub fn kind(&self) -> ColumnType {
        self.kind
    }

    pub(super) fn allows(&self, filter: Filter) -> bool {
        self.filters & filter.bit() != 0
    }
}

/// A value bound into a query: parsed from a filter parameter, or given by the application with
/// [`ListQuery::where_eq`](super::ListQuery::where_eq).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FilterValue {
    /// Text.
    Text(String),
    /// A whole number.
    Integer(i64),
    /// A floating-point number.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A point in time.
    Timestamp(DateTime<Utc>),
}

impl From<&str> for FilterValue {
    fn from(v: &str) -> Self {
        FilterValue::Text(v.to_owned())
    }
}
impl From<String> for FilterValue {
    fn from(v: String) -> Self {
        FilterValue::Text(v)
    }
}
impl From<i64> for FilterValue {
    fn from(v: i64) -> Self {
        FilterValue::Integer(v)
    }
}
impl From<i32> for FilterValue {
    fn from(v: i32) -> Self {
        FilterValue::Integer(i64::from(v))
    }
}
impl From<f64> for FilterValue {
    fn from(v: f64) -> Self {
        FilterValue::Float(v)
    }
}
impl From<bool> for FilterValue {
    fn from(v: bool) -> Self {
        FilterValue::Bool(v)
    }
}
impl From<DateTime<Utc>> for FilterValue {
    fn from(v: DateTime<Utc>) -> Self {
        FilterValue::Timestamp(v)
    }
}
impl From<uuid::Uuid> for FilterValue {
    fn from(v: uuid::Uuid) -> Self {
        FilterValue::Text(v.to_string())
    }
}
