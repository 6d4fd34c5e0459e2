//! ForgeRun's console: every client's jobs as a [panel](mod@core_dashboard::panel) of the jobs
//! dashboard at `/admin/jobs` (behind its `ADMIN_TOKEN` sign-in).
//!
//! - **The list** (`api/panels/jobs/rows`): the jobs of all clients with the filters of
//!   `GET /v1/jobs` (`filter[state]`, `filter[work_kind]`, `filter[created_at][gte|lte]`, `sort`,
//!   `page`, `per_page`) and `filter[client_id]`, newest first.
//! - **A job** (`api/panels/jobs/records/{id}`): its fields, its timeline (every transition,
//!   with the time spent in the state before it), its report (as `GET /v1/jobs/{id}/report`
//!   answers it, without counting a read), its artifacts as links valid for an hour, and the
//!   webhook deliveries of its events with their status codes.
//! - **Live** (`api/panels/jobs/records/{id}/live`): the same job again after every
//!   transition, woken by the job's bus channel like `GET /v1/jobs/{id}/events` (and re-read
//!   every few seconds should a wake-up be lost), ending once the job is final.

use std::time::Duration;

use axum::extract::{Path, RawQuery, State as AxumState};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use core_dashboard::panel::{self, Cell, Link, Panel, PanelColumn, PanelFilter, Record, Section};
use core_web::datatable::DataTable;
use core_web::{ApiResponse, ApiResult, AppError};
use std::sync::LazyLock;

use super::events::Wake;
use super::jobs::build_report;
use crate::AppContext;
use crate::jobs::{JobRow, State, WorkKind, store, views};

/// The panel's id: its routes are under `api/panels/jobs/`.
pub const PANEL_ID: &str = "jobs";

/// How often a live record is re-read when no wake-up came.
const LIVE_POLL: Duration = Duration::from_secs(5);

/// The list: `GET /v1/jobs`'s, over every client, with the client as a filter.
static LIST: LazyLock<DataTable> = LazyLock::new(|| super::jobs::job_list(true));

// region: console-panel
/// The console's panel, for [`DashboardBuilder::panel`](core_dashboard::DashboardBuilder::panel).
pub fn panel(ctx: &AppContext) -> Panel {
    let states = State::ALL
        .iter()
        .filter(|s| **s != State::Created)
        .map(|s| s.as_str());
    let kinds = WorkKind::ALL.iter().map(|k| k.as_str());
    Panel::new(PANEL_ID, "ForgeRun jobs")
        .description(
            "Every client's jobs: open one for its timeline, report and webhook deliveries.",
        )
        .key("job_id")
        .filter(PanelFilter::text("filter[client_id]", "Client"))
        .filter(PanelFilter::select("filter[state]", "State", states))
        .filter(PanelFilter::select("filter[work_kind]", "Work kind", kinds))
        .filter(PanelFilter::date("filter[created_at][gte]", "Created from"))
        .filter(PanelFilter::date("filter[created_at][lte]", "Created to"))
        .column(PanelColumn::new("job_id", "Job", Cell::Code))
        .column(PanelColumn::new("client_id", "Client", Cell::Code))
        .column(PanelColumn::new("work_kind", "Work kind", Cell::Text))
        .column(PanelColumn::new("state", "State", Cell::Status))
        .column(PanelColumn::new("attempt", "Attempt", Cell::Number))
        .column(PanelColumn::new("created_at", "Created", Cell::Time))
        .rows(get(rows).with_state(ctx.clone()))
        .record(get(record).with_state(ctx.clone()))
        .live(get(live).with_state(ctx.clone()))
}
// endregion: console-panel

async fn rows(
    AxumState(ctx): AxumState<AppContext>,
    RawQuery(query): RawQuery,
) -> Result<Response, AppError> {
    let query = LIST.parse(query.as_deref())?;
    Ok(LIST
        .fetch(&ctx.db, &query)
        .await?
        .into_response()
        .into_response())
}

fn not_found(id: &str) -> AppError {
    AppError::NotFound(format!("No job {id}"))
}

async fn record(
    AxumState(ctx): AxumState<AppContext>,
    Path(id): Path<String>,
) -> ApiResult<Record> {
    let record = read(&ctx, &id).await?.ok_or_else(|| not_found(&id))?;
    Ok(ApiResponse::success(record, ""))
}

/// Job `id` as a record, or `None` when there is no such job.
async fn read(ctx: &AppContext, id: &str) -> Result<Option<Record>, AppError> {
    let Some(row) = store::find(&ctx.db, id).await? else {
        return Ok(None);
    };
    let views = views::stored(&ctx.db, id).await?;
    let deliveries = crate::webhooks::deliveries_of_job(&ctx.db, id).await?;
    let report = build_report(ctx, row.clone(), views).await?;
    Ok(Some(to_record(&row, report, deliveries)))
}

fn to_record(
    row: &JobRow,
    report: super::jobs::Report,
    deliveries: Vec<crate::webhooks::DeliveryRow>,
) -> Record {
    let mut record = Record::new(&row.id, format!("{} job", row.work_kind))
        .status(&row.state)
        .finished(row.state().is_final())
        .field_as("Job", &row.id, Cell::Code)
        .field_as("Client", &row.client_id, Cell::Code)
        .field("Work kind", &row.work_kind)
        .field(
            "Attempt",
            format!("{} of {}", row.attempt, row.max_attempts),
        )
        .field_as("Created", row.created_at.get().to_rfc3339(), Cell::Time);
    if let Some(at) = row.execution_at {
        record = record.field_as("Not before", at.get().to_rfc3339(), Cell::Time);
    }
    if let Some(ms) = report.queue_wait_ms {
        record = record.field_as("Waited", ms.to_string(), Cell::Duration);
    }
    if let Some(ms) = report.duration_ms {
        record = record.field_as("Ran", ms.to_string(), Cell::Duration);
    }
    if let Some(outcome) = &row.outcome {
        record = record.field_as("Outcome", outcome, Cell::Status);
    }
    if let Some(error) = &row.error {
        record = record.field("Error", error);
    }
    if let Some(callback) = &row.callback {
        record = record.field("Callback", callback);
    }
    for event in &report.events {
        let detail = match (&event.detail, event.attempt) {
            (Some(detail), n) => Some(format!("attempt {n}: {detail}")),
            (None, n) if n > 0 => Some(format!("attempt {n}")),
            (None, _) => None,
        };
        record = record.event(event.timestamp.get(), &event.next_state, detail);
    }
    let links = report
        .artifacts
        .iter()
        .map(|a| Link {
            label: a.name.clone(),
            href: a.url.clone(),
            detail: Some(format!("{} bytes, {}", a.size, a.content_type)),
        })
        .collect();
    let delivery_rows = deliveries
        .into_iter()
        .map(|d| {
            serde_json::json!({
                "created_at": d.created_at.get().to_rfc3339(),
                "event_type": d.event_type,
                "webhook_id": d.webhook_id,
                "attempt": d.attempt,
                "outcome": d.outcome,
                "status_code": d.status_code.map(|c| c.to_string()),
                "duration_ms": d.duration_ms,
                "error": d.error,
            })
        })
        .collect();
    let report_json = serde_json::to_value(&report).unwrap_or(serde_json::Value::Null);
    record
        .section(Section::links("Artifacts", links, "No artifacts"))
        .section(Section::table(
            "Webhook deliveries",
            vec![
                PanelColumn::new("created_at", "At", Cell::Time),
                PanelColumn::new("event_type", "Event", Cell::Text),
                PanelColumn::new("webhook_id", "Webhook", Cell::Code),
                PanelColumn::new("attempt", "Attempt", Cell::Number),
                PanelColumn::new("outcome", "Outcome", Cell::Status),
                PanelColumn::new("status_code", "HTTP status", Cell::Status),
                PanelColumn::new("duration_ms", "Took", Cell::Duration),
                PanelColumn::new("error", "Error", Cell::Text),
            ],
            delivery_rows,
            "No webhook deliveries",
        ))
        .section(Section::json("Report", report_json))
}

/// The live stream of job `id`: 404 when there is none.
async fn live(
    AxumState(ctx): AxumState<AppContext>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    // Subscribe before the first read, so that no transition falls between the two.
    let wake = Wake::subscribe(&ctx, &id).await;
    let first = read(&ctx, &id).await?.ok_or_else(|| not_found(&id))?;
    let follow = Follow {
        ctx,
        id,
        wake,
        first: Some(first),
    };
    let records = futures_util::stream::unfold(follow, Follow::next);
    Ok(panel::live(records).into_response())
}

/// A live record in progress.
struct Follow {
    ctx: AppContext,
    id: String,
    wake: Wake,
    /// The record read when the stream opened, not yet sent.
    first: Option<Record>,
}

impl Follow {
    async fn next(mut self) -> Option<(Result<Record, AppError>, Self)> {
        if let Some(first) = self.first.take() {
            return Some((Ok(first), self));
        }
        self.wake.wait(LIVE_POLL, LIVE_POLL).await;
        let item = match read(&self.ctx, &self.id).await {
            Ok(Some(record)) => Ok(record),
            // Deleted by retention while watched: nothing more will come.
            Ok(None) => return None,
            Err(err) => Err(err),
        };
        Some((item, self))
    }
}
