//! The JSON API's routes and handlers (documented in the crate docs).

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use core_jobs::Error as JobsError;
use core_web::datatable::Row;
use core_web::{ApiResponse, ApiResult, AppError, ValidatedJson};
use serde::{Deserialize, Serialize};
use validator::Validate;

use crate::dashboard::Inner;
use crate::filter::{self, FilterBody};
use crate::throughput::ThroughputReply;

type Shared = State<Arc<Inner>>;

/// The response header a 409 of `POST api/failed/bulk` carries the current count in.
pub(crate) const MATCHING_COUNT_HEADER: &str = "x-matching-count";

pub(crate) fn routes(inner: Arc<Inner>) -> Router {
    let routes = if inner.login.is_some() {
        crate::login::routes()
    } else {
        Router::new()
    };
    let panels = inner
        .panels
        .iter()
        .fold(Router::new(), |router, panel| router.merge(panel.routes()));
    routes
        .route("/api/panels", get(panels_list))
        .route("/api/queues", get(queues))
        .route("/api/events", get(crate::live::events))
        .route("/api/throughput", get(throughput))
        .route("/api/schedule", get(schedule))
        .route("/api/jobs/running", get(crate::jobs::running_route))
        .route("/api/jobs/recent", get(crate::jobs::recent_route))
        .route("/api/failed", get(list))
        .route("/api/failed/bulk/preview", post(bulk_preview))
        .route("/api/failed/bulk", post(bulk))
        .route("/api/failed/{id}", get(show))
        .route("/api/failed/{id}/retry", post(retry))
        .route("/api/failed/{id}/forget", post(forget))
        .fallback(page_or_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(inner)
        .merge(panels)
}

async fn panels_list(State(s): Shared) -> ApiResult<Vec<crate::panel::PanelSpec>> {
    let specs = s.panels.iter().map(|p| p.spec().clone()).collect();
    Ok(ApiResponse::success(specs, ""))
}

/// Paths under `api/` that no route answers get the JSON 404; every other path is a file of
/// the dashboard's page (or its "not built yet" stand-in).
async fn page_or_not_found(State(s): Shared, request: Request) -> Response {
    let path = request.uri().path();
    if path == "/api" || path.starts_with("/api/") {
        return AppError::NotFound("No such jobs dashboard route".to_owned()).into_response();
    }
    s.frontend.serve(&s, request).await
}

async fn method_not_allowed() -> AppError {
    AppError::coded(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        "This route does not answer that method",
    )
}

/// One queue's counts (or the totals, without a name).
#[derive(Debug, Default, Serialize)]
struct Counts {
    #[serde(skip_serializing_if = "Option::is_none")]
    queue: Option<String>,
    ready: u64,
    delayed: u64,
    running: u64,
    grouped_waiting: u64,
    pending_failures: u64,
    failed: u64,
}

/// One scheduled job: its name, cron expression, next run and overlap rule.
#[derive(Debug, Serialize)]
struct ScheduleEntry {
    name: String,
    cron: String,
    /// The next tick after now, `null` when there is none within five years.
    next_run: Option<chrono::DateTime<chrono::Utc>>,
    without_overlapping: bool,
}

async fn schedule(State(s): Shared) -> ApiResult<Vec<ScheduleEntry>> {
    let now = chrono::Utc::now();
    let entries = s
        .schedule
        .iter()
        .map(|job| ScheduleEntry {
            name: job.entry_name().to_owned(),
            cron: job.cron().to_string(),
            next_run: job.cron().next_after(now),
            without_overlapping: job.is_without_overlapping(),
        })
        .collect();
    Ok(ApiResponse::success(entries, ""))
}

async fn throughput(State(s): Shared) -> ApiResult<ThroughputReply> {
    Ok(ApiResponse::success(s.throughput.reply(), ""))
}

/// The body of `GET api/queues` and of the `queues` events of `GET api/events`.
#[derive(Debug, Serialize)]
pub(crate) struct QueuesReply {
    queues: Vec<Counts>,
    totals: Counts,
    failed_all_queues: u64,
}

async fn queues(State(s): Shared) -> ApiResult<QueuesReply> {
    Ok(ApiResponse::success(queue_counts(&s).await?, ""))
}

/// Every shown queue's counts, their totals, and the failed jobs of all queues.
pub(crate) async fn queue_counts(s: &Inner) -> Result<QueuesReply, AppError> {
    let stats = futures_util::future::try_join_all(s.queues.iter().map(|q| s.queue.stats(q)));
    let failed = s.failed.count_by_queue();
    let (stats, failed) = futures_util::future::try_join(stats, failed).await?;
    let mut totals = Counts::default();
    let queues = s
        .queues
        .iter()
        .zip(stats)
        .map(|(name, st)| {
            let c = Counts {
                queue: Some(name.clone()),
                ready: st.ready,
                delayed: st.delayed,
                running: st.in_flight,
                grouped_waiting: st.grouped_waiting,
                pending_failures: st.pending_failures,
                failed: failed.get(name).copied().unwrap_or(0),
            };
            totals.ready += c.ready;
            totals.delayed += c.delayed;
            totals.running += c.running;
            totals.grouped_waiting += c.grouped_waiting;
            totals.pending_failures += c.pending_failures;
            totals.failed += c.failed;
            c
        })
        .collect();
    Ok(QueuesReply {
        queues,
        totals,
        failed_all_queues: failed.values().sum(),
    })
}

async fn list(State(s): Shared, RawQuery(query): RawQuery) -> ApiResult<Vec<Row>> {
    let (_, query) = filter::listing_query(query.as_deref())?;
    s.listing
        .respond(s.failed.database(), Some(query.as_str()))
        .await
}

/// A failed-job id from the path: a positive whole number, else 400.
fn row_id(path: Result<Path<String>, PathRejection>) -> Result<i64, AppError> {
    let Path(raw) = path.map_err(|rejection| AppError::BadRequest(rejection.body_text()))?;
    match raw.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(AppError::BadRequest(format!(
            "{:?} is not a failed job id (a positive whole number)",
            raw.chars().take(64).collect::<String>()
        ))),
    }
}

fn no_such(id: i64) -> AppError {
    AppError::NotFound(format!("No failed job {id}"))
}

async fn show(
    State(s): Shared,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<core_jobs::FailedJob> {
    let id = row_id(path)?;
    let job = s.failed.get(id).await?.ok_or_else(|| no_such(id))?;
    Ok(ApiResponse::success(job, ""))
}

#[derive(Debug, Serialize)]
struct Retried {
    id: i64,
    job_id: String,
}

async fn retry(State(s): Shared, path: Result<Path<String>, PathRejection>) -> ApiResult<Retried> {
    let id = row_id(path)?;
    match s.failed.retry(id, &s.queue).await {
        Ok(job_id) => Ok(ApiResponse::success(
            Retried {
                id,
                job_id: job_id.as_str().to_owned(),
            },
            "Re-dispatched",
        )),
        Err(JobsError::FailedJobNotFound(_)) => Err(no_such(id)),
        Err(err) => Err(err.into()),
    }
}

#[derive(Debug, Serialize)]
struct Forgotten {
    id: i64,
}

async fn forget(
    State(s): Shared,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Forgotten> {
    let id = row_id(path)?;
    if s.failed.forget(id).await? {
        Ok(ApiResponse::success(Forgotten { id }, "Forgotten"))
    } else {
        Err(no_such(id))
    }
}

/// What a bulk request does to the rows its filter matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
enum Action {
    /// Re-dispatch each job, then delete its row.
    Retry,
    /// Delete the rows.
    Forget,
}

/// The body of both bulk routes.
#[derive(Debug, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
struct BulkBody {
    action: Action,
    #[serde(default)]
    filter: FilterBody,
    /// The count the preview showed and the user confirmed (`POST api/failed/bulk` only).
    confirm_count: Option<u64>,
}

#[derive(Debug, Serialize)]
struct BulkReply {
    action: Action,
    count: u64,
}

async fn bulk_preview(
    State(s): Shared,
    ValidatedJson(body): ValidatedJson<BulkBody>,
) -> ApiResult<BulkReply> {
    let filter = body
        .filter
        .check("filter.")
        .map_err(filter::validation)?
        .to_failed_filter();
    let count = s.failed.count_matching(&filter).await?;
    Ok(ApiResponse::success(
        BulkReply {
            action: body.action,
            count,
        },
        "",
    ))
}

async fn bulk(
    State(s): Shared,
    ValidatedJson(body): ValidatedJson<BulkBody>,
) -> ApiResult<BulkReply> {
    let checked = body.filter.check("filter.");
    let mut errors = checked.as_ref().err().cloned().unwrap_or_default();
    if body.confirm_count.is_none() {
        errors.insert(
            "confirm_count".to_owned(),
            vec!["is required: the count POST api/failed/bulk/preview showed".to_owned()],
        );
    }
    let (Ok(filter), Some(confirmed)) = (checked, body.confirm_count) else {
        return Err(filter::validation(errors));
    };
    // Pinned to the rows that exist now: failures recorded after the count are not touched.
    let Some(last) = s.failed.last_id().await? else {
        return if confirmed == 0 {
            Ok(ApiResponse::success(
                BulkReply {
                    action: body.action,
                    count: 0,
                },
                "",
            ))
        } else {
            Err(count_changed(0, confirmed))
        };
    };
    let filter = filter.to_failed_filter().id_at_most(last);
    let count = s.failed.count_matching(&filter).await?;
    if count != confirmed {
        return Err(count_changed(count, confirmed));
    }
    let touched = match body.action {
        Action::Retry => s.failed.retry_matching(&filter, &s.queue).await?,
        Action::Forget => s.failed.forget_matching(&filter).await?,
    };
    let message = match body.action {
        Action::Retry => "Re-dispatched",
        Action::Forget => "Forgotten",
    };
    Ok(ApiResponse::success(
        BulkReply {
            action: body.action,
            count: touched,
        },
        message,
    ))
}

/// 409: the filter matches `count` rows now, not the `confirmed` ones.
fn count_changed(count: u64, confirmed: u64) -> AppError {
    AppError::coded(
        StatusCode::CONFLICT,
        "BULK_COUNT_CHANGED",
        format!(
            "The filter now matches {count} failed jobs, not the {confirmed} confirmed; \
             nothing was changed. Confirm {count} to go ahead."
        ),
    )
    .with_header(MATCHING_COUNT_HEADER, count)
}
