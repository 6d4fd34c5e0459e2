//! [`DataTable`]: a declarative server-side list endpoint over PostgreSQL or SQLite.
//!
//! A definition names the table (or a `FROM` expression), the columns it returns and what each one
//! allows: sorting, filtering (equality, substring, ranges) and the free-text search `q`. Mounted
//! on a router it answers
//!
//! ```json
//! {"data": [{"id": 7, "name": "Ada", "created_at": "2024-05-01T12:00:00Z"}, …],
//!  "meta": {"page": 1, "per_page": 20, "total": 1234, "last_page": 62}}
//! ```
//!
//! ```
//! use axum::Router;
//! use core_db::Database;
//! use core_web::datatable::{Column, DataTable, Filter};
//!
//! fn routes(db: Database) -> Router {
//!     let users = DataTable::table("users")
//!         .column(Column::integer("id").sortable().filter(Filter::Eq))
//!         .column(Column::text("name").sortable().searchable().filter(Filter::Like))
//!         .column(Column::text("email").searchable().filter(Filter::Eq))
//!         .column(Column::boolean("active").filter(Filter::Eq))
//!         .column(Column::timestamp("created_at").sortable().filter(Filter::Range))
//!         .default_sort("-created_at")
//!         .max_per_page(100);
//!     Router::new().route("/users", users.into_route(db))
//! }
//! # let _ = routes;
//! ```
//!
//! # Query parameters
//!
//! | parameter | meaning |
//! |---|---|
//! | `page=3` | 1-based page number (default 1) |
//! | `per_page=50` | rows per page (default [`DataTableBuilder::per_page`]); larger values are capped at [`DataTableBuilder::max_per_page`] |
//! | `sort=-created_at,name` | comma-separated sortable columns; a leading `-` sorts descending. Without it the default sort applies |
//! | `filter[status]=active` | equality (`Filter::Eq`); `filter[status][eq]=active` is the same |
//! | `filter[name][like]=ada` | case-insensitive substring (`Filter::Like`); `%`, `_` and `!` match themselves |
//! | `filter[created_at][gte]=2024-05-01` | range (`Filter::Range`): `gte`, `gt`, `lte`, `lt`; combine two for a closed range |
//! | `q=ada` | case-insensitive substring over every searchable column (any column may match) |
//!
//! - Keys and values are percent-decoded (`+` is a space): send a literal `+` as `%2B`. Invalid
//!   percent-encoding or UTF-8 → 400. Parameters the list does not know are ignored, except that
//!   every key starting with `filter` must have one of the two shapes above. A parameter given
//!   twice → 422.
//! - An empty value means "not given", as HTML forms send empty fields.
//! - Values are parsed as the column's [`ColumnType`]: `integer` (`-12`), `float` (`1.5`), `bool`
//!   (`true`/`false`/`1`/`0`), `timestamp` (RFC 3339 `2024-05-01T12:00:00Z`, `2024-05-01 12:00:00`
//!   read as UTC, or a date `2024-05-01` meaning the whole day: `[lte]=2024-05-31` includes all
//!   of 31 May). A value that does not parse, an unknown column, a column that does not allow the
//!   sort or filter, or an unknown operator → 422 with the parameter as the field and a message
//!   naming the column or operator. Values longer than 1,000 characters or holding NUL → 422.
//!
//! # Safety of the SQL
//!
//! Every value from the request is a bound parameter; column names, table names and operators in
//! the SQL only ever come from the definition, with identifiers quoted. `LIKE` patterns escape
//! `%`, `_` and the escape character `!`. [`DataTable::from_sql`] and [`Column::sql`] take SQL
//! verbatim: write them yourself, never build them from input.
//!
//! # Backends
//!
//! The same definition works on PostgreSQL and SQLite. Rows are mapped to JSON by column type
//! (timestamps as RFC 3339 text). `q` and `like` are case-insensitive (`ILIKE` on PostgreSQL; on
//! SQLite `LIKE` folds ASCII letters only). On SQLite, timestamps may be stored as ISO-8601 text
//! (what sqlx and `CURRENT_TIMESTAMP` write) or as Unix seconds; they are compared at millisecond
//! precision. `NULL`s sort last ascending and first descending on both.
//!
//! # Totals
//!
//! The total is exact, fetched concurrently with the page query on a second connection. It is a
//! `COUNT(*)`, which on PostgreSQL reads the whole table: on large tables it costs more than the
//! page itself (about 5 ms per 100,000 rows). Two ways out:
//!
//! - [`DataTableBuilder::tracked_row_count`]: a request without filters or search takes the total
//!   from [`Database::row_count`], which reads a trigger-maintained counter in O(1) once the table
//!   is tracked with [`Database::track_row_count`]. Still exact; filtered totals are counted.
//! - [`DataTableBuilder::cache_counts`]: keeps each total (filtered or not) for a while; the total
//!   may then lag behind writes.

mod column;
mod params;
mod sql;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::RawQuery;
use axum::routing::MethodRouter;
use core_db::db::{Database, quote_ident, quote_table};
use serde::Serialize;

use crate::error::AppError;
use crate::response::{ApiResponse, ApiResult};
use sql::Total;

pub use column::{Column, ColumnType, Filter, FilterValue};
pub use params::ListQuery;

/// One row of a listing: column name → JSON value.
pub type Row = serde_json::Map<String, serde_json::Value>;

/// A [`DataTable`] definition that is wrong: a duplicate or badly named column, a default sort on
/// an unknown or unsortable column, a zero page size. Returned by [`DataTableBuilder::build`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid DataTable definition for {source_name}: {reason}")]
pub struct DefinitionError {
    source_name: String,
    reason: String,
}

#[derive(Debug, Clone)]
enum Source {
    Table(String),
    Sql(String),
}

impl Source {
    fn label(&self) -> &str {
        match self {
            Source::Table(t) | Source::Sql(t) => t,
        }
    }
}

/// Builds a [`DataTable`]: start with [`DataTable::table`] or [`DataTable::from_sql`], add
/// columns, end with [`build`](Self::build) or [`into_route`](Self::into_route).
#[derive(Debug, Clone)]
#[must_use]
pub struct DataTableBuilder {
    source: Source,
    columns: Vec<Column>,
    default_sort: Option<String>,
    key: Option<String>,
    per_page: u64,
    max_per_page: u64,
    count_ttl: Option<Duration>,
    row_count: bool,
}

impl DataTableBuilder {
    fn new(source: Source) -> Self {
        Self {
            source,
            columns: Vec::new(),
            default_sort: None,
            key: None,
            per_page: 20,
            max_per_page: 100,
            count_ttl: None,
            row_count: false,
        }
    }

    /// Adds a column. Rows contain the columns in the order they are added.
    pub fn column(mut self, column: Column) -> Self {
        self.columns.push(column);
        self
    }

    /// The sort used when the request gives none, in the `sort` parameter's syntax:
    /// `"-created_at"` or `"status,-created_at"`. Every column named must be sortable.
    pub fn default_sort(mut self, sort: impl Into<String>) -> Self {
        self.default_sort = Some(sort.into());
        self
    }

    /// A unique column (usually the primary key) appended to every `ORDER BY` so that rows with
    /// equal sort values keep a stable order and never appear on two pages. It need not be
    /// sortable.
    pub fn key(mut self, column: impl Into<String>) -> Self {
        self.key = Some(column.into());
        self
    }

    /// Rows per page when the request gives no `per_page` (default 20; capped at the maximum).
    pub fn per_page(mut self, per_page: u64) -> Self {
        self.per_page = per_page;
        self
    }

    /// The largest `per_page` a request gets; larger requests are capped (default 100).
    pub fn max_per_page(mut self, max: u64) -> Self {
        self.max_per_page = max;
        self
    }

    /// Keeps each total (per distinct filter and search) for `ttl` and skips the `COUNT(*)`
    /// while it is fresh: the total may then lag behind writes by up to `ttl`, and pages cost a
    /// single query. [`DataTable::forget_counts`] drops the kept totals, for example after a write.
    /// Off by default: every request counts.
    pub fn cache_counts(mut self, ttl: Duration) -> Self {
        self.count_ttl = Some(ttl).filter(|d| !d.is_zero());
        self
    }

    /// Takes the total of a request without filters, search or [`ListQuery::where_eq`] from
    /// [`Database::row_count`]: exact, and read in O(1) on PostgreSQL when the table is tracked
    /// with [`Database::track_row_count`] (otherwise, and on SQLite, it is a `COUNT(*)` as
    /// usual). Filtered totals are still counted, or kept by [`cache_counts`](Self::cache_counts).
    /// Only for [`DataTable::table`] definitions. Tracking needs the framework migrations on
    /// PostgreSQL; without them every total is counted.
    ///
    /// ```
    /// # async fn setup(db: core_db::Database) -> core_db::Result<()> {
    /// use core_web::datatable::{Column, DataTable};
    ///
    /// db.track_row_count("events").await?; // once, at start-up or in a migration step
    /// let events = DataTable::table("events")
    ///     .column(Column::integer("id").sortable())
    ///     .default_sort("-id")
    ///     .tracked_row_count()
    ///     .build()
    ///     .expect("valid definition");
    /// # let _ = events;
    /// # Ok(())
    /// # }
    /// ```
    pub fn tracked_row_count(mut self) -> Self {
        self.row_count = true;
        self
    }

    /// Checks the definition and returns the [`DataTable`].
    pub fn build(self) -> Result<DataTable, DefinitionError> {
        let fail = |reason: String| DefinitionError {
            source_name: self.source.label().to_owned(),
            reason,
        };
        if self.row_count && matches!(self.source, Source::Sql(_)) {
            return Err(fail(
                "tracked_row_count needs a table (DataTable::table), not a FROM expression"
                    .to_owned(),
            ));
        }
        let from = match &self.source {
            Source::Table(name) => quote_table(name).map_err(|err| fail(err.to_string()))?,
            Source::Sql(sql) => {
                if sql.trim().is_empty() {
                    return Err(fail("the FROM expression is empty".to_owned()));
                }
                sql.clone()
            }
        };
        if self.columns.is_empty() {
            return Err(fail("it has no columns".to_owned()));
        }
        let mut seen = std::collections::HashSet::new();
        for column in &self.columns {
            if !valid_name(&column.name) {
                return Err(fail(format!(
                    "column name {:?} must be ASCII letters, digits and `_`, not starting with a digit",
                    column.name
                )));
            }
            if !seen.insert(column.name.as_str()) {
                return Err(fail(format!("column {:?} is defined twice", column.name)));
            }
            if column.expr.as_deref().is_some_and(|e| e.trim().is_empty()) {
                return Err(fail(format!(
                    "column {:?} has an empty SQL expression",
                    column.name
                )));
            }
        }
        if self.max_per_page == 0 {
            return Err(fail("max_per_page must be at least 1".to_owned()));
        }
        if self.per_page == 0 {
            return Err(fail("per_page must be at least 1".to_owned()));
        }
        let columns: Vec<ColumnDef> = self
            .columns
            .into_iter()
            .map(|c| ColumnDef {
                expr: c.expr.clone().unwrap_or_else(|| quote_ident(&c.name)),
                column: c,
            })
            .collect();
        let key = match &self.key {
            None => None,
            Some(name) => Some(
                columns
                    .iter()
                    .position(|c| c.column.name == *name)
                    .ok_or_else(|| fail(format!("key column {name:?} is not defined")))?,
            ),
        };
        let statements = sql::Statements::new(&from, &columns);
        let mut inner = Inner {
            label: self.source.label().to_owned(),
            columns,
            statements,
            default_sort: Vec::new(),
            key,
            per_page: self.per_page.min(self.max_per_page),
            max_per_page: self.max_per_page,
            counts: self.count_ttl.map(|ttl| {
                moka::sync::Cache::builder()
                    .max_capacity(COUNT_CACHE_ENTRIES)
                    .time_to_live(ttl)
                    .build()
            }),
            row_count_table: match (&self.source, self.row_count) {
                (Source::Table(name), true) => Some(name.clone()),
                _ => None,
            },
        };
        if let Some(sort) = &self.default_sort {
            inner.default_sort = params::parse_sort(&inner, sort)
                .map_err(|errors| fail(format!("default sort {sort:?}: {}", errors.join("; "))))?;
        }
        Ok(DataTable {
            inner: Arc::new(inner),
        })
    }

    /// Builds the table and returns a `GET` route answering its listing, for
    /// `Router::route(path, …)`.
    ///
    /// # Panics
    /// If the definition is invalid (see [`build`](Self::build)); like a bad route path, that is
    /// a programming error found when the router is built.
    pub fn into_route<S>(self, db: Database) -> MethodRouter<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        match self.build() {
            Ok(table) => table.route(db),
            Err(err) => panic!("{err}"),
        }
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[derive(Debug)]
pub(crate) struct ColumnDef {
    column: Column,
    /// The SQL expression: the quoted name, or [`Column::sql`].
    expr: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Asc,
    Desc,
}

#[derive(Debug)]
pub(crate) struct Inner {
    label: String,
    columns: Vec<ColumnDef>,
    /// The parts of the SQL that only depend on the definition, built once.
    statements: sql::Statements,
    default_sort: Vec<(usize, Direction)>,
    key: Option<usize>,
    per_page: u64,
    max_per_page: u64,
    /// The totals [`DataTableBuilder::cache_counts`] keeps, by
    /// [`count_cache_key`](sql::Plan::count_cache_key).
    counts: Option<moka::sync::Cache<String, u64>>,
    /// The table whose [`Database::row_count`] answers unfiltered totals.
    row_count_table: Option<String>,
}

impl Inner {
    fn position(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.column.name == name)
    }
}

/// Most totals [`DataTableBuilder::cache_counts`] keeps per table.
const COUNT_CACHE_ENTRIES: u64 = 1024;

/// A checked list definition, cheap to clone. Serve it with [`route`](Self::route), or call
/// [`respond`](Self::respond) / [`fetch`](Self::fetch) from a handler of your own, for example
/// to add conditions of your own with [`ListQuery::where_eq`]:
///
/// ```
/// use std::sync::LazyLock;
///
/// use axum::extract::{RawQuery, State};
/// use core_db::Database;
/// use core_web::ApiResult;
/// use core_web::datatable::{Column, DataTable, Filter, Row};
///
/// static JOBS: LazyLock<DataTable> = LazyLock::new(|| {
///     DataTable::table("jobs")
///         .column(Column::text("id"))
///         .column(Column::text("status").filter(Filter::Eq))
///         .column(Column::timestamp("created_at").sortable().filter(Filter::Range))
///         .default_sort("-created_at")
///         .key("id")
///         .build()
///         .expect("valid definition")
/// });
///
/// async fn list_jobs(
///     State(db): State<Database>,
///     RawQuery(query): RawQuery,
/// ) -> ApiResult<Vec<Row>> {
///     let client_id = 42; // from the authenticated request
///     let query = JOBS.parse(query.as_deref())?.where_eq("client_id", client_id);
///     Ok(JOBS.fetch(&db, &query).await?.into_response())
/// }
/// # let _ = list_jobs;
/// ```
#[derive(Debug, Clone)]
pub struct DataTable {
    inner: Arc<Inner>,
}

impl DataTable {
    /// Starts a definition listing the rows of `table` (`"users"` or `"schema.users"`; each part
    /// is quoted as an identifier).
    pub fn table(table: impl Into<String>) -> DataTableBuilder {
        DataTableBuilder::new(Source::Table(table.into()))
    }

    /// Starts a definition over a `FROM` expression, inserted verbatim: a join
    /// (`"users u JOIN teams t ON t.id = u.team_id"`) or a subquery with an alias
    /// (`"(SELECT … GROUP BY …) AS s"`). It must come from your code, never from a request.
    pub fn from_sql(from: impl Into<String>) -> DataTableBuilder {
        DataTableBuilder::new(Source::Sql(from.into()))
    }

    /// The columns, in row order.
    pub fn columns(&self) -> impl Iterator<Item = &Column> {
        self.inner.columns.iter().map(|c| &c.column)
    }

    /// Parses a raw query string (without the `?`; `None` when the URI has none) into a
    /// [`ListQuery`]: 400 for malformed encoding, 422 naming the parameter for anything the
    /// definition does not allow.
    pub fn parse(&self, raw_query: Option<&str>) -> Result<ListQuery, AppError> {
        params::parse(&self.inner, raw_query)
    }

    /// Runs `query`: the page of rows and the total, concurrently on two connections.
    pub async fn fetch(&self, db: &Database, query: &ListQuery) -> Result<Listing, AppError> {
        let plan = sql::Plan::new(&self.inner, query)?;
        if let Some(table) = self.inner.row_count_table.as_deref()
            && plan.is_unfiltered()
        {
            let (rows, total) = sql::run(&self.inner, &plan, db, Total::RowCount(table)).await?;
            return Ok(Listing::new(rows, total.unwrap_or_default(), query));
        }
        let counts = self.inner.counts.as_ref();
        let cache_key = counts.map(|_| plan.count_cache_key(db.backend()));
        let cached = counts.zip(cache_key.as_ref()).and_then(|(c, k)| c.get(k));
        let wanted = if cached.is_some() {
            Total::Known
        } else {
            Total::Count
        };
        let (rows, counted) = sql::run(&self.inner, &plan, db, wanted).await?;
        let total = match (cached, counted) {
            (Some(total), _) => total,
            (None, Some(total)) => {
                if let Some((counts, key)) = counts.zip(cache_key) {
                    counts.insert(key, total);
                }
                total
            }
            (None, None) => rows.len() as u64,
        };
        Ok(Listing::new(rows, total, query))
    }

    /// Parses `raw_query` and fetches it, as the response a handler returns.
    pub async fn respond(&self, db: &Database, raw_query: Option<&str>) -> ApiResult<Vec<Row>> {
        let query = self.parse(raw_query)?;
        Ok(self.fetch(db, &query).await?.into_response())
    }

    /// A `GET` route answering this listing, for `Router::route(path, …)`.
    pub fn route<S>(&self, db: Database) -> MethodRouter<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let table = self.clone();
        axum::routing::get(move |RawQuery(query): RawQuery| {
            let table = table.clone();
            let db = db.clone();
            async move { table.respond(&db, query.as_deref()).await }
        })
    }

    /// Drops every total kept by [`DataTableBuilder::cache_counts`].
    pub fn forget_counts(&self) {
        if let Some(counts) = &self.inner.counts {
            counts.invalidate_all();
        }
    }
}

/// Pagination figures of a [`Listing`], sent as the response's `meta`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PageMeta {
    /// The 1-based page number.
    pub page: u64,
    /// Rows per page (after capping).
    pub per_page: u64,
    /// Rows matching the filters and search, over all pages.
    pub total: u64,
    /// The last page number (1 when there are no rows).
    pub last_page: u64,
}

/// One page of a listing: its rows and the pagination figures.
#[derive(Debug, Clone)]
pub struct Listing {
    /// The rows of the page.
    pub rows: Vec<Row>,
    /// Page, page size, total and last page.
    pub meta: PageMeta,
}

impl Listing {
    fn new(rows: Vec<Row>, total: u64, query: &ListQuery) -> Self {
        let per_page = query.per_page();
        Self {
            rows,
            meta: PageMeta {
                page: query.page(),
                per_page,
                total,
                last_page: total.div_ceil(per_page).max(1),
            },
        }
    }

    /// `{"data": rows, "meta": {"page", "per_page", "total", "last_page"}}`.
    pub fn into_response(self) -> ApiResponse<Vec<Row>> {
        ApiResponse::success(self.rows, "").with_meta(self.meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kept total is answered until its time to live has passed, then counted afresh.
    #[tokio::test]
    async fn kept_totals_expire_after_their_ttl() {
        let db = Database::connect("sqlite::memory:").await.unwrap();
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
            .await
            .unwrap();
        db.execute("INSERT INTO t (name) VALUES ('a'), ('b')")
            .await
            .unwrap();
        let table = DataTable::table("t")
            .column(Column::integer("id").sortable())
            .column(Column::text("name").searchable())
            .default_sort("id")
            .cache_counts(Duration::from_millis(300))
            .build()
            .unwrap();
        let query = table.parse(Some("q=a")).unwrap();
        let total = || async { table.fetch(&db, &query).await.unwrap().meta.total };
        assert_eq!(total().await, 1);
        db.execute("INSERT INTO t (name) VALUES ('aa')")
            .await
            .unwrap();
        assert_eq!(total().await, 1, "kept");
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(total().await, 2, "expired, counted afresh");
    }
}
