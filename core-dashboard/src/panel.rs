//! Panels: the application's own pages on the dashboard, with no frontend code of its own.
//!
//! A [`Panel`] is a list of records the application keeps (ForgeRun's client jobs, say) with
//! the filters it allows, and one record at a time: its fields, its timeline with the time
//! spent between entries, tables, JSON documents and links, and, while it is not finished, a
//! live stream of it. The application answers three routes with ordinary axum handlers; the
//! dashboard mounts them behind its own sign-in check and draws them on its page.
//!
//! | route (under the dashboard's mount point) | answered by |
//! |---|---|
//! | `GET api/panels` | the dashboard: `[{"id", "title", "description", "key", "filters", "columns", "record", "live"}]`, one per panel, in order |
//! | `GET api/panels/{panel}/rows?…` | the panel's [`rows`](Panel::rows) handler: core-web's DataTable answer (`{"data": [row objects], "meta": {"page", "per_page", "total", "last_page"}}`) for the query the page sends: each non-empty filter as `{param}={value}`, and `page` |
//! | `GET api/panels/{panel}/records/{id}` | the [`record`](Panel::record) handler: `{"data": Record}`, where `id` is the row's [`key`](Panel::key) column |
//! | `GET api/panels/{panel}/records/{id}/live` | the [`live`](Panel::live) handler: server-sent `record` events, each a whole [`Record`], ending after a finished one (see [`live`]) |
//!
//! The handlers run behind the same login and authorization hook as the rest of the
//! dashboard, so they need no check of their own, and their errors are the framework's JSON
//! errors as everywhere else.
//!
//! ```
//! use axum::extract::{Path, RawQuery};
//! use axum::routing::get;
//! use chrono::{TimeZone, Utc};
//! use core_dashboard::panel::{Cell, Panel, PanelColumn, PanelFilter, Record, Section};
//! use core_web::{ApiResponse, ApiResult, AppError};
//!
//! async fn rows(RawQuery(_query): RawQuery) -> ApiResult<Vec<serde_json::Value>> {
//!     Ok(ApiResponse::success(vec![serde_json::json!({"id": "d1", "state": "RUNNING"})], ""))
//! }
//!
//! async fn record(Path(id): Path<String>) -> ApiResult<Record> {
//!     if id != "d1" {
//!         return Err(AppError::NotFound("No such deploy".into()));
//!     }
//!     let at = |s: i64| Utc.timestamp_opt(1_767_225_600 + s, 0).unwrap();
//!     let record = Record::new(&id, "Deploy d1")
//!         .status("RUNNING")
//!         .field("Target", "production")
//!         .event(at(0), "QUEUED", None)
//!         .event(at(4), "RUNNING", Some("on worker 2".into()))
//!         .section(Section::json("Plan", serde_json::json!({"steps": 3})));
//!     assert_eq!(record.timeline[1].since_previous_ms, Some(4_000));
//!     Ok(ApiResponse::success(record, ""))
//! }
//!
//! let panel = Panel::new("deploys", "Deploys")
//!     .key("id")
//!     .filter(PanelFilter::select("filter[state]", "State", ["RUNNING", "DONE"]))
//!     .column(PanelColumn::new("id", "Deploy", Cell::Code))
//!     .column(PanelColumn::new("state", "State", Cell::Status))
//!     .rows(get(rows))
//!     .record(get(record));
//! // Dashboard::builder(queue, failed).panel(panel)…
//! # let _ = panel;
//! ```

use std::convert::Infallible;
use std::fmt;

use axum::Router;
use axum::response::Response;
use axum::routing::MethodRouter;
use chrono::{DateTime, Utc};
use core_web::AppError;
use futures_util::stream::{Stream, StreamExt};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How a value is drawn: in a list's column, a record's field or a section's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cell {
    /// Plain text.
    #[default]
    Text,
    /// Monospaced (ids, codes).
    Code,
    /// A badge coloured by its value (`SUCCEEDED`, `FAILED`, `RUNNING`, HTTP status codes…).
    Status,
    /// An RFC 3339 time, shown in the reader's time zone.
    Time,
    /// A number, right-aligned.
    Number,
    /// Milliseconds, shown as `850 ms`, `4.2 s`, `3 min 5 s`.
    Duration,
    /// A link: the value is the URL.
    Link,
}

/// A column of a panel's list, or of a [`Section::Table`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PanelColumn {
    /// The row object's key.
    pub key: String,
    /// The heading.
    pub label: String,
    /// How its values are drawn.
    pub cell: Cell,
}

impl PanelColumn {
    /// Column `key` headed `label`, drawn as `cell`.
    pub fn new(key: impl Into<String>, label: impl Into<String>, cell: Cell) -> Self {
        Self {
            key: key.into(),
            label: label.into(),
            cell,
        }
    }
}

/// What kind of input a filter is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FilterInput {
    /// Free text.
    Text,
    /// One of `options` (or none).
    Select {
        /// The values offered, in order.
        options: Vec<String>,
    },
    /// A date (`YYYY-MM-DD`).
    Date,
}

/// One filter of a panel's list: the page sends its value as the query parameter `param`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PanelFilter {
    /// The query parameter (`filter[state]`, `client_id`…), sent only when not empty.
    pub param: String,
    /// The input's label.
    pub label: String,
    /// The input.
    #[serde(flatten)]
    pub input: FilterInput,
}

impl PanelFilter {
    /// A free-text filter.
    pub fn text(param: impl Into<String>, label: impl Into<String>) -> Self {
        Self::with(param, label, FilterInput::Text)
    }

    /// A filter with a fixed set of values.
    pub fn select<I>(param: impl Into<String>, label: impl Into<String>, options: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let options = options.into_iter().map(Into::into).collect();
        Self::with(param, label, FilterInput::Select { options })
    }

    /// A date filter.
    pub fn date(param: impl Into<String>, label: impl Into<String>) -> Self {
        Self::with(param, label, FilterInput::Date)
    }

    fn with(param: impl Into<String>, label: impl Into<String>, input: FilterInput) -> Self {
        Self {
            param: param.into(),
            label: label.into(),
            input,
        }
    }
}

/// What `GET api/panels` says of one panel.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PanelSpec {
    id: String,
    title: String,
    description: Option<String>,
    key: String,
    filters: Vec<PanelFilter>,
    columns: Vec<PanelColumn>,
    /// Whether rows open a record.
    record: bool,
    /// Whether records have a live stream.
    live: bool,
}

/// A page of the application's own on the dashboard; see the [module docs](self).
#[must_use]
pub struct Panel {
    spec: PanelSpec,
    rows: Option<MethodRouter>,
    record: Option<MethodRouter>,
    live: Option<MethodRouter>,
}

impl fmt::Debug for Panel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Panel")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

impl Panel {
    /// Panel `id` (lowercase letters, digits and `-`; its path under `api/panels/`) titled
    /// `title` in the page's navigation. Its rows are keyed by their `id` column unless
    /// [`key`](Self::key) says otherwise.
    pub fn new(id: impl Into<String>, title: impl Into<String>) -> Self {
        Self {
            spec: PanelSpec {
                id: id.into(),
                title: title.into(),
                description: None,
                key: "id".to_owned(),
                filters: Vec::new(),
                columns: Vec::new(),
                record: false,
                live: false,
            },
            rows: None,
            record: None,
            live: None,
        }
    }

    /// A sentence shown under the title.
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.spec.description = Some(text.into());
        self
    }

    /// The row column whose value names the row's record (`id` by default).
    pub fn key(mut self, column: impl Into<String>) -> Self {
        self.spec.key = column.into();
        self
    }

    /// Adds a filter above the list.
    pub fn filter(mut self, filter: PanelFilter) -> Self {
        self.spec.filters.push(filter);
        self
    }

    /// Adds a column to the list.
    pub fn column(mut self, column: PanelColumn) -> Self {
        self.spec.columns.push(column);
        self
    }

    /// The handler of `GET api/panels/{panel}/rows` (required): a DataTable answer for the
    /// query string the page sends, e.g. `get(handler).with_state(state)`.
    pub fn rows(mut self, handler: MethodRouter) -> Self {
        self.rows = Some(handler);
        self
    }

    /// The handler of `GET api/panels/{panel}/records/{id}`: a [`Record`] in core-web's
    /// envelope, 404 when there is none. Without it, rows do not open.
    pub fn record(mut self, handler: MethodRouter) -> Self {
        self.record = Some(handler);
        self.spec.record = true;
        self
    }

    /// The handler of `GET api/panels/{panel}/records/{id}/live`: usually [`live`] over a
    /// stream of the record. Without it, an open record is read once.
    pub fn live(mut self, handler: MethodRouter) -> Self {
        self.live = Some(handler);
        self.spec.live = true;
        self
    }

    /// Checks the id and that the panel has rows.
    pub(crate) fn check(&self) -> Result<()> {
        let id = &self.spec.id;
        let valid = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid {
            return Err(Error::InvalidPanel(format!(
                "panel id {id:?}: use 1 to 64 lowercase letters, digits and '-'"
            )));
        }
        if self.rows.is_none() {
            return Err(Error::InvalidPanel(format!(
                "panel {id:?} has no rows handler"
            )));
        }
        Ok(())
    }

    pub(crate) fn id(&self) -> &str {
        &self.spec.id
    }

    pub(crate) fn spec(&self) -> &PanelSpec {
        &self.spec
    }

    /// The panel's routes, at their paths under the mount point.
    pub(crate) fn routes(&self) -> Router {
        let base = format!("/api/panels/{}", self.spec.id);
        let mut router = Router::new();
        if let Some(rows) = &self.rows {
            router = router.route(&format!("{base}/rows"), rows.clone());
        }
        if let Some(record) = &self.record {
            router = router.route(&format!("{base}/records/{{id}}"), record.clone());
        }
        if let Some(live) = &self.live {
            router = router.route(&format!("{base}/records/{{id}}/live"), live.clone());
        }
        router
    }
}

/// One labelled value of a [`Record`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    /// The label.
    pub label: String,
    /// The value, as text.
    pub value: String,
    /// How it is drawn.
    pub cell: Cell,
}

/// One entry of a [`Record`]'s timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What happened (a state, an event name).
    pub label: String,
    /// More about it.
    pub detail: Option<String>,
    /// Milliseconds since the entry before it (`None` for the first).
    pub since_previous_ms: Option<i64>,
}

/// A link of a [`Section::Links`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// The text.
    pub label: String,
    /// Where it goes (absolute, or relative to the page).
    pub href: String,
    /// Shown beside it (a size, a media type).
    pub detail: Option<String>,
}

/// A block of a [`Record`] below its fields and timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Section {
    /// A table.
    Table {
        /// The heading.
        title: String,
        /// The columns.
        columns: Vec<PanelColumn>,
        /// The rows, objects keyed by the columns' keys.
        rows: Vec<serde_json::Value>,
        /// What to say when there are no rows.
        empty: String,
    },
    /// A JSON document, pretty-printed.
    Json {
        /// The heading.
        title: String,
        /// The document.
        value: serde_json::Value,
    },
    /// A list of links (downloads, related pages).
    Links {
        /// The heading.
        title: String,
        /// The links.
        links: Vec<Link>,
        /// What to say when there are none.
        empty: String,
    },
}

impl Section {
    /// A table of `rows` under `title`, saying `empty` when there are none.
    pub fn table(
        title: impl Into<String>,
        columns: Vec<PanelColumn>,
        rows: Vec<serde_json::Value>,
        empty: impl Into<String>,
    ) -> Self {
        Self::Table {
            title: title.into(),
            columns,
            rows,
            empty: empty.into(),
        }
    }

    /// `value` pretty-printed under `title`.
    pub fn json(title: impl Into<String>, value: serde_json::Value) -> Self {
        Self::Json {
            title: title.into(),
            value,
        }
    }

    /// `links` under `title`, saying `empty` when there are none.
    pub fn links(title: impl Into<String>, links: Vec<Link>, empty: impl Into<String>) -> Self {
        Self::Links {
            title: title.into(),
            links,
            empty: empty.into(),
        }
    }
}

/// One record of a panel, as `GET api/panels/{panel}/records/{id}` answers it and every
/// `record` event of its live stream carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[must_use]
pub struct Record {
    /// The record's key.
    pub id: String,
    /// Its heading.
    pub title: String,
    /// A status shown as a badge beside the title.
    pub status: Option<String>,
    /// Whether it will change no more: its live stream ends after it.
    pub finished: bool,
    /// Labelled values.
    pub fields: Vec<Field>,
    /// What happened to it, oldest first.
    pub timeline: Vec<TimelineEntry>,
    /// Tables, documents and links.
    pub sections: Vec<Section>,
}

impl Record {
    /// Record `id` headed `title`, not finished, with nothing in it yet.
    pub fn new(id: impl Into<String>, title: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            title: title.into(),
            status: None,
            finished: false,
            fields: Vec::new(),
            timeline: Vec::new(),
            sections: Vec::new(),
        }
    }

    /// Sets the status badge.
    pub fn status(mut self, status: impl Into<String>) -> Self {
        self.status = Some(status.into());
        self
    }

    /// Marks it finished (or not).
    pub fn finished(mut self, finished: bool) -> Self {
        self.finished = finished;
        self
    }

    /// Adds a text field.
    pub fn field(self, label: impl Into<String>, value: impl Into<String>) -> Self {
        self.field_as(label, value, Cell::Text)
    }

    /// Adds a field drawn as `cell`.
    pub fn field_as(
        mut self,
        label: impl Into<String>,
        value: impl Into<String>,
        cell: Cell,
    ) -> Self {
        self.fields.push(Field {
            label: label.into(),
            value: value.into(),
            cell,
        });
        self
    }

    /// Appends a timeline entry, with the time since the one before it (entries are given
    /// oldest first; one older than the entry before it counts 0 ms).
    pub fn event(
        mut self,
        at: DateTime<Utc>,
        label: impl Into<String>,
        detail: Option<String>,
    ) -> Self {
        let since_previous_ms = self
            .timeline
            .last()
            .map(|previous| (at - previous.at).num_milliseconds().max(0));
        self.timeline.push(TimelineEntry {
            at,
            label: label.into(),
            detail,
            since_previous_ms,
        });
        self
    }

    /// Appends a section.
    pub fn section(mut self, section: Section) -> Self {
        self.sections.push(section);
        self
    }
}

/// A live stream of one record as server-sent events: each item of `records` is sent as a
/// `record` event (`{"data": Record}`, the envelope of `GET …/records/{id}`), an error as an
/// `error` event with the framework's JSON error body (the stream goes on), and the stream
/// ends after the first [finished](Record::finished) record, or when `records` ends. Idle
/// streams get a keep-alive comment every 15 s.
///
/// The stream should start with the record as it is now, so that a page that opens it needs
/// no other read, and then yield it again whenever it changes.
pub fn live<S>(records: S) -> Response
where
    S: Stream<Item = std::result::Result<Record, AppError>> + Send + 'static,
{
    let events = records.scan(false, |ended, item| {
        if *ended {
            return std::future::ready(None);
        }
        *ended = item.as_ref().is_ok_and(|record| record.finished);
        std::future::ready(Some(Ok::<_, Infallible>(crate::live::event(
            "record", item,
        ))))
    });
    crate::live::respond(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn timeline_entries_carry_the_time_since_the_one_before() {
        let at = |s: i64| Utc.timestamp_opt(1_767_225_600 + s, 0).unwrap();
        let record = Record::new("r", "R")
            .event(at(10), "QUEUED", None)
            .event(at(12), "RUNNING", None)
            .event(at(11), "LATE", None);
        let gaps: Vec<_> = record
            .timeline
            .iter()
            .map(|e| e.since_previous_ms)
            .collect();
        assert_eq!(gaps, [None, Some(2_000), Some(0)]);
    }

    #[test]
    fn panel_ids_are_checked() {
        let rows = || axum::routing::get(|| async { "" });
        assert!(Panel::new("runs-2", "Runs").rows(rows()).check().is_ok());
        for bad in ["", "Runs", "a/b", "a b", "ü"] {
            assert!(
                Panel::new(bad, "x").rows(rows()).check().is_err(),
                "{bad:?}"
            );
        }
        assert!(
            Panel::new("runs", "Runs").check().is_err(),
            "no rows handler"
        );
    }

    #[test]
    fn filters_and_sections_serialize_with_their_kind() {
        let filter = PanelFilter::select("filter[state]", "State", ["A", "B"]);
        assert_eq!(
            serde_json::to_value(&filter).unwrap(),
            serde_json::json!({"param": "filter[state]", "label": "State", "kind": "select", "options": ["A", "B"]})
        );
        let section = Section::json("Report", serde_json::json!({"a": 1}));
        assert_eq!(
            serde_json::to_value(&section).unwrap(),
            serde_json::json!({"kind": "json", "title": "Report", "value": {"a": 1}})
        );
    }
}
