//! `/v1/jobs`: submit, list, read, cancel, retry and report, for the authenticated client only.
//!
//! Another client's job is a 404, exactly like a job that does not exist.

use std::sync::LazyLock;

use axum::extract::{Path, RawQuery, State as AxumState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use core_db::db::Timestamp;
use core_web::datatable::{Column, DataTable, Filter};
use core_web::{ApiResponse, ApiResult, AppError, ValidatedJson};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use crate::AppContext;
use crate::auth::Caller;
use crate::idempotency::{self, Claim};
use crate::jobs::{self, Canceled, JobRow, Moved, NewJob, WorkKind, store, views};

/// Attempts a job may ask for.
pub const MAX_ATTEMPTS: u32 = 10;

// region: submit-dto
/// The body of `POST /v1/jobs`.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitJob {
    /// The work kind (see the catalog).
    #[schema(value_type = crate::openapi::SubmittableWorkKind)]
    #[validate(length(min = 1, max = 64))]
    pub work_kind: String,
    /// UTC ISO-8601 time, whole seconds, not in the past.
    #[serde(default)]
    #[schema(format = DateTime, pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$")]
    pub execution_at: Option<String>,
    /// An `http://` or `https://` URL, at most 2,048 characters, without credentials, whose host
    /// resolves to public addresses only (see `WEBHOOK_ALLOW_NETWORKS`).
    #[serde(default)]
    #[validate(url, length(max = 2048))]
    #[schema(schema_with = crate::openapi::callback_schema)]
    pub callback: Option<String>,
    /// 1–10, default 3.
    #[serde(default)]
    #[validate(range(min = 1, max = 10))]
    #[schema(minimum = 1, maximum = 10, default = 3)]
    pub max_attempts: Option<u32>,
}
// endregion: submit-dto

/// A job as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobView {
    /// The job's id.
    #[schema(format = Uuid)]
    pub job_id: String,
    /// Its work kind.
    #[schema(value_type = crate::openapi::WorkKindName)]
    pub work_kind: String,
    /// Its state.
    #[schema(value_type = crate::openapi::JobState)]
    pub state: String,
    /// Attempts started.
    pub attempt: i64,
    /// Attempts allowed.
    pub max_attempts: i64,
    /// SUCCEEDED, FAILED or CANCELED once final.
    #[schema(value_type = Option<crate::openapi::Outcome>)]
    pub outcome: Option<String>,
    /// The last failure's reason.
    pub error: Option<String>,
    /// Submitted.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// Last changed.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    /// Not started before.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub execution_at: Option<Timestamp>,
    /// The callback URL.
    pub callback: Option<String>,
    /// The callback's webhook, whose deliveries `GET /v1/webhooks/{id}/deliveries` lists: in
    /// the submission's response only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = Uuid)]
    pub callback_webhook_id: Option<String>,
    /// The secret the callback's deliveries are signed with (Standard Webhooks, `whsec_…`):
    /// shown once, in the submission's response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_secret: Option<String>,
}

impl JobView {
    /// The view of a job just submitted, with its callback's webhook and secret.
    fn submitted(row: JobRow, callback: Option<jobs::Callback>) -> Self {
        let (hook, secret) = callback.map(|c| (c.webhook_id, c.secret)).unzip();
        Self {
            callback_webhook_id: hook,
            callback_secret: secret,
            ..Self::from(row)
        }
    }
}

// region: job-view-from
impl From<JobRow> for JobView {
    fn from(row: JobRow) -> Self {
        Self {
            job_id: row.id,
            work_kind: row.work_kind,
            state: row.state,
            attempt: row.attempt,
            max_attempts: row.max_attempts,
            outcome: row.outcome,
            error: row.error,
            created_at: row.created_at,
            updated_at: row.updated_at,
            execution_at: row.execution_at,
            callback: row.callback,
            callback_webhook_id: None,
            callback_secret: None,
        }
    }
}
// endregion: job-view-from

// region: job-not-found
/// 404 `RFA_JOB_NOT_FOUND`.
fn not_found(id: &str) -> AppError {
    AppError::coded(
        StatusCode::NOT_FOUND,
        "RFA_JOB_NOT_FOUND",
        format!("No job {id}"),
    )
}

// region: owned
/// The caller's job `id`, or 404.
pub(crate) async fn owned(ctx: &AppContext, caller: &Caller, id: &str) -> Result<JobRow, AppError> {
    store::find_for_client(&ctx.db, &ctx.cache, &caller.client_id, id)
        .await?
        .ok_or_else(|| not_found(id))
}
// endregion: owned
// endregion: job-not-found

// region: submit-check
/// Checks a submission: the work kind exists and may be submitted, `execution_at` is a whole
/// second of UTC not in the past.
fn check(input: &SubmitJob) -> Result<NewJob, AppError> {
    let work_kind = WorkKind::parse(&input.work_kind)
        .filter(|k| k.is_submittable())
        .ok_or_else(|| {
            AppError::field(
                "work_kind",
                format!(
                    "{:?} is not a work kind that can be submitted",
                    input.work_kind
                ),
            )
        })?;
    let execution_at = match &input.execution_at {
        None => None,
        Some(text) => {
            let at = chrono::DateTime::parse_from_rfc3339(text).map_err(|_| {
                AppError::field(
                    "execution_at",
                    "must be a UTC ISO-8601 time such as 2030-01-01T12:00:00Z",
                )
            })?;
            if at.offset().local_minus_utc() != 0 {
                return Err(AppError::field("execution_at", "must be in UTC (Z)"));
            }
            if chrono::Timelike::nanosecond(&at) != 0 {
                return Err(AppError::field(
                    "execution_at",
                    "has a precision of one second: no fractional seconds",
                ));
            }
            let at = at.with_timezone(&chrono::Utc);
            let now = chrono::Utc::now();
            if at < now - chrono::Duration::seconds(1) {
                return Err(AppError::field("execution_at", "must not be in the past"));
            }
            Some(Timestamp::from(at))
        }
    };
    if let Some(url) = &input.callback
        && !(url.starts_with("https://") || url.starts_with("http://"))
    {
        return Err(AppError::field(
            "callback",
            "must be an http:// or https:// URL",
        ));
    }
    Ok(NewJob {
        work_kind,
        execution_at,
        callback: input.callback.clone(),
        max_attempts: input.max_attempts.unwrap_or(jobs::DEFAULT_MAX_ATTEMPTS),
    })
}
// endregion: submit-check

/// Refuses a `callback` whose host is not public (loopback, private, link-local, metadata…,
/// unless `WEBHOOK_ALLOW_NETWORKS` allows it) or does not resolve: 422 on the field. The
/// address is checked again when the callback is called.
async fn check_callback(ctx: &AppContext, job: &NewJob) -> Result<(), AppError> {
    let Some(url) = &job.callback else {
        return Ok(());
    };
    match ctx.ssrf.check(url).await {
        Ok(_) => Ok(()),
        Err(refused) => Err(AppError::field(
            "callback",
            format!("cannot be called: {refused}"),
        )),
    }
}

/// 503 `RFA_EXEC_QUEUE_FULL` with `Retry-After`.
fn queue_full(message: String) -> AppError {
    AppError::coded(
        StatusCode::SERVICE_UNAVAILABLE,
        "RFA_EXEC_QUEUE_FULL",
        message,
    )
    .with_header("retry-after", "5")
}

/// Refuses a submission past the active-job limits ([`jobs::limits`]); nothing has been written
/// yet.
async fn check_limits(ctx: &AppContext, caller: &Caller) -> Result<(), AppError> {
    let limits = &ctx.settings.forgerun;
    let active = ctx.active.get(&ctx.db, Some(&caller.client_id)).await?;
    if active >= limits.max_active_jobs_per_client {
        return Err(queue_full(format!(
            "This client has {active} active jobs, the most allowed (MAX_ACTIVE_JOBS_PER_CLIENT)"
        )));
    }
    let depth = ctx.active.get(&ctx.db, None).await?;
    if depth >= limits.max_queue_depth {
        return Err(queue_full(
            "The queue is full (MAX_QUEUE_DEPTH); try again later".to_owned(),
        ));
    }
    Ok(())
}

/// `POST /v1/jobs` → 202 with the job. With `Idempotency-Key`, a repeat of the same body gets
/// the original response (`Idempotency-Replayed: true`), a different body 422, and a repeat
/// while the first is still being processed 409 with `Retry-After: 1`.
#[utoipa::path(
    post,
    path = "/v1/jobs",
    operation_id = "submitJob",
    tag = "jobs",
    params((
        "Idempotency-Key" = Option<String>,
        Header,
        description = "Makes the submission safe to repeat for 24 hours: the same key and body return the original response",
        min_length = 1,
        max_length = 255,
        pattern = "^[!-~]+$",
    )),
    request_body(content = SubmitJob, content_type = "application/json"),
    responses(
        (status = 202, description = "The job, accepted (or the original response of a repeated `Idempotency-Key`)", body = crate::openapi::JobEnvelope,
            headers(("Idempotency-Replayed" = String, description = "`true` when this is the recorded response of an earlier request with the same `Idempotency-Key`")),
            links(
                ("GetJob" = (operation_id = "getJob", parameters(("id" = "$response.body#/data/job_id")), description = "The job")),
                ("CancelJob" = (operation_id = "cancelJob", parameters(("id" = "$response.body#/data/job_id")), description = "Cancels the job")),
                ("RetryJob" = (operation_id = "retryJob", parameters(("id" = "$response.body#/data/job_id")), description = "Retries the job once it FAILED")),
                ("GetJobReport" = (operation_id = "getJobReport", parameters(("id" = "$response.body#/data/job_id")), description = "The job's report"))
            )),
        crate::openapi::BodyErrors,
        (status = 400, description = "A malformed body or `Idempotency-Key` (`BAD_REQUEST`)", content((crate::openapi::ErrorBody = "application/json"), (crate::openapi::ProblemDetails = "application/problem+json"))),
        (status = 409, description = "A request with the same `Idempotency-Key` is still being processed (`RFA_EXEC_IDEMPOTENCY_CONFLICT`)", content((crate::openapi::ErrorBody = "application/json"), (crate::openapi::ProblemDetails = "application/problem+json")),
            headers(("Retry-After" = String, description = "Seconds to wait: `1`"))),
        (status = 422, description = "A field breaks a rule (`VALIDATION_ERROR`), or the `Idempotency-Key` was used with another body (`RFA_EXEC_IDEMPOTENCY_CONFLICT`)", content((crate::openapi::ErrorBody = "application/json"), (crate::openapi::ProblemDetails = "application/problem+json"))),
        (status = 503, description = "Too many active jobs for this client or in the queue (`RFA_EXEC_QUEUE_FULL`)", content((crate::openapi::ErrorBody = "application/json"), (crate::openapi::ProblemDetails = "application/problem+json")),
            headers(("Retry-After" = String, description = "Seconds to wait"))),
    ),
)]
// region: submit-extract
pub async fn submit(
    AxumState(ctx): AxumState<AppContext>,
    caller: Caller,
    headers: HeaderMap,
    ValidatedJson(input): ValidatedJson<SubmitJob>,
) -> Result<Response, AppError> {
    let job = check(&input)?;
    check_callback(&ctx, &job).await?;
    // endregion: submit-extract
    // region: ch8-submit
    let key = idempotency::key(&headers)?;
    let claim = match &key {
        Some(key) => match idempotency::claim(&ctx.db, &caller.client_id, key, &input).await? {
            Claim::Replay { status, body } => return Ok(idempotency::replay(status, body)),
            Claim::Owned(claim) => Some(claim),
        },
        None => None,
    };
    // endregion: ch8-submit
    let result = async {
        check_limits(&ctx, &caller).await?;
        let id = uuid::Uuid::new_v4().to_string();
        let view = match &claim {
            // region: ch8-commit
            // The idempotency record commits with the job: one transaction.
            Some(claim) => {
                let (row, callback, mut tx) =
                    jobs::submit(&ctx, &caller.client_id, &job, &id).await?;
                let view = JobView::submitted(row, callback);
                let body = serde_json::to_string(&ApiResponse::success(&view, ""))?;
                claim.complete(&mut tx, StatusCode::ACCEPTED, &body).await?;
                ctx.buffer.commit(tx).await?;
                view
            }
            // endregion: ch8-commit
            None => {
                let (row, callback) = jobs::submit_now(&ctx, &caller.client_id, &job, &id).await?;
                JobView::submitted(row, callback)
            }
        };
        ctx.active.added(&caller.client_id);
        metrics::counter!("jobs_submitted_total", "work_kind" => view.work_kind.clone())
            .increment(1);
        tracing::info!(
            job_id = view.job_id,
            client_id = caller.client_id,
            action = "submit",
            next_state = view.state,
            work_kind = view.work_kind,
            "job submitted"
        );
        Ok::<_, AppError>(ApiResponse::with_status(StatusCode::ACCEPTED, view, ""))
    }
    .await;
    match result {
        Ok(response) => Ok(response.into_response()),
        Err(e) => {
            if let Some(claim) = claim {
                claim.release(&ctx.db).await;
            }
            Err(e)
        }
    }
}

/// The list definition of `GET /v1/jobs`.
static LIST: LazyLock<DataTable> = LazyLock::new(|| job_list(false));

/// A list of jobs: `GET /v1/jobs`'s columns, filters and sort, and with `client_filter` the
/// client's id as a column and an exact filter too (the admin console's list of every client's
/// jobs).
///
/// # Panics
/// Never: the definition is fixed and valid.
pub fn job_list(client_filter: bool) -> DataTable {
    let mut list = DataTable::table("jobs").column(Column::text("job_id").sql("id"));
    if client_filter {
        list = list.column(Column::text("client_id").filter(Filter::Eq));
    }
    list.column(Column::text("work_kind").filter(Filter::Eq))
        .column(Column::text("state").filter(Filter::Eq))
        .column(Column::integer("attempt"))
        .column(Column::integer("max_attempts"))
        .column(Column::text("outcome"))
        .column(
            Column::timestamp("created_at")
                .sortable()
                .filter(Filter::Range),
        )
        .column(Column::timestamp("updated_at").sortable())
        .column(Column::timestamp("execution_at"))
        .column(Column::text("callback"))
        .default_sort("-created_at")
        .key("job_id")
        .max_per_page(100)
        .build()
        .expect("a valid list definition")
}

/// `GET /v1/jobs`: the caller's jobs; `filter[state]=`, `filter[work_kind]=`,
/// `filter[created_at][gte|lte]=`, `sort=created_at|-updated_at…`, `page`, `per_page`.
#[utoipa::path(
    get,
    path = "/v1/jobs",
    operation_id = "listJobs",
    tag = "jobs",
    params(
        ("page" = Option<u64>, Query, description = "The 1-based page number (default 1)", minimum = 1),
        ("per_page" = Option<u64>, Query, description = "Rows per page (default 20); larger values are capped at 100", minimum = 1),
        ("sort" = Option<String>, Query, description = "Comma-separated sortable columns (`created_at`, `updated_at`), `-` first for descending; `-created_at` by default",
            pattern = "^-?(created_at|updated_at)(,-?(created_at|updated_at))*$"),
        ("filter[state]" = Option<crate::openapi::JobState>, Query, description = "Only jobs in this state"),
        ("filter[work_kind]" = Option<crate::openapi::WorkKindName>, Query, description = "Only jobs of this work kind"),
        ("filter[created_at][gte]" = Option<String>, Query, description = "Created at or after (RFC 3339; a date means its whole day)", format = DateTime),
        ("filter[created_at][gt]" = Option<String>, Query, description = "Created after", format = DateTime),
        ("filter[created_at][lte]" = Option<String>, Query, description = "Created at or before", format = DateTime),
        ("filter[created_at][lt]" = Option<String>, Query, description = "Created before", format = DateTime),
    ),
    responses(
        (status = 200, description = "One page of the caller's jobs", body = crate::openapi::JobListEnvelope),
        (status = 400, description = "Malformed percent-encoding or UTF-8 in the query (`BAD_REQUEST`)", content((crate::openapi::ErrorBody = "application/json"), (crate::openapi::ProblemDetails = "application/problem+json"))),
        (status = 422, description = "A parameter the list does not allow, or a value that does not parse; `errors` names it (`VALIDATION_ERROR`)", content((crate::openapi::ErrorBody = "application/json"), (crate::openapi::ProblemDetails = "application/problem+json"))),
    ),
)]
pub async fn list(
    AxumState(ctx): AxumState<AppContext>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Response, AppError> {
    let query = LIST
        .parse(query.as_deref())?
        .where_eq("client_id", caller.client_id.as_str());
    Ok(LIST
        .fetch(&ctx.db, &query)
        .await?
        .into_response()
        .into_response())
}

// region: show
/// `GET /v1/jobs/{id}`.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}",
    operation_id = "getJob",
    tag = "jobs",
    params(("id" = uuid::Uuid, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The job", body = crate::openapi::JobEnvelope),
        crate::openapi::JobNotFound,
    ),
)]
pub async fn show(
    AxumState(ctx): AxumState<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<JobView> {
    let row = owned(&ctx, &caller, &id).await?;
    Ok(ApiResponse::success(JobView::from(row), ""))
}
// endregion: show

/// `POST /v1/jobs/{id}/cancel`: 200 with the job when it is CANCELED now or was already final
/// (no change), 202 while a RUNNING job stops.
#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/cancel",
    operation_id = "cancelJob",
    tag = "jobs",
    params(("id" = uuid::Uuid, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The job, CANCELED now, or unchanged when it was already final", body = crate::openapi::JobEnvelope),
        (status = 202, description = "The job is RUNNING and has been asked to stop", body = crate::openapi::JobEnvelope),
        crate::openapi::JobNotFound,
    ),
)]
pub async fn cancel(
    AxumState(ctx): AxumState<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<JobView> {
    owned(&ctx, &caller, &id).await?;
    let canceled = jobs::cancel(&ctx, &id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(match canceled {
        Canceled::Now(row) | Canceled::AlreadyFinal(row) => {
            ApiResponse::success(JobView::from(row), "")
        }
        Canceled::Requested(row) => {
            ApiResponse::with_status(StatusCode::ACCEPTED, JobView::from(row), "")
        }
    })
}

/// `POST /v1/jobs/{id}/retry`: a FAILED job back to QUEUED with one more attempt; 409
/// `RFA_JOB_CONFLICT` naming the current state otherwise.
#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/retry",
    operation_id = "retryJob",
    tag = "jobs",
    params(("id" = uuid::Uuid, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The job, QUEUED again with one more attempt", body = crate::openapi::JobEnvelope),
        crate::openapi::JobNotFound,
        (status = 409, description = "The job is not FAILED; the message names its state (`RFA_JOB_CONFLICT`)", content((crate::openapi::ErrorBody = "application/json"), (crate::openapi::ProblemDetails = "application/problem+json"))),
    ),
)]
pub async fn retry(
    AxumState(ctx): AxumState<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<JobView> {
    owned(&ctx, &caller, &id).await?;
    match jobs::retry(&ctx, &id).await? {
        Moved::Applied(row) => Ok(ApiResponse::success(JobView::from(row), "")),
        Moved::Refused(row) => Err(AppError::coded(
            StatusCode::CONFLICT,
            "RFA_JOB_CONFLICT",
            format!(
                "Only a FAILED job can be retried; job {id} is {}",
                row.state
            ),
        )),
        Moved::Missing => Err(not_found(&id)),
    }
}

/// One event of a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventView {
    /// The event's id.
    pub event_id: String,
    /// `job.queued`, …
    pub event_name: String,
    /// The state before.
    #[schema(value_type = Option<crate::openapi::JobState>)]
    pub prev_state: Option<String>,
    /// The state after.
    #[schema(value_type = crate::openapi::JobState)]
    pub next_state: String,
    /// The job's attempt then.
    pub attempt: i64,
    /// Why, for failures and recoveries.
    pub detail: Option<String>,
    /// When.
    #[schema(value_type = String, format = DateTime)]
    pub timestamp: Timestamp,
}

impl From<store::EventRow> for EventView {
    fn from(e: store::EventRow) -> Self {
        Self {
            event_id: e.event_id,
            event_name: e.event_name,
            prev_state: e.prev_state,
            next_state: e.next_state,
            attempt: e.attempt,
            detail: e.detail,
            timestamp: e.created_at,
        }
    }
}

/// One artifact of a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ArtifactView {
    /// Its name.
    pub name: String,
    /// Its size in bytes.
    pub size: i64,
    /// Its media type.
    pub content_type: String,
    /// A link valid for an hour.
    pub url: String,
}

/// `GET /v1/jobs/{id}/report`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Report {
    /// The job's id.
    #[schema(format = Uuid)]
    pub job_id: String,
    /// Its state now.
    #[schema(value_type = crate::openapi::JobState)]
    pub state: String,
    /// SUCCEEDED, FAILED or CANCELED once final; `null` before.
    #[schema(value_type = Option<crate::openapi::Outcome>)]
    pub outcome: Option<String>,
    /// The last failure's reason.
    pub error: Option<String>,
    /// First started.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<Timestamp>,
    /// Reached a final state.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Timestamp>,
    /// `finished_at − started_at`.
    pub duration_ms: Option<i64>,
    /// From when it could first run (submission or `execution_at`) to its first start.
    pub queue_wait_ms: Option<i64>,
    /// Every transition, in order.
    pub events: Vec<EventView>,
    /// Outputs kept in Storage.
    pub artifacts: Vec<ArtifactView>,
    /// How many times this report was read, this read included: the reads the scheduled
    /// flush has stored plus those still counted in the cache.
    pub report_views: i64,
}

/// `GET /v1/jobs/{id}/report`: outcome, timings, events and artifacts (a job not final yet
/// reports what happened so far, with `outcome: null`).
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}/report",
    operation_id = "getJobReport",
    tag = "jobs",
    params(("id" = uuid::Uuid, Path, description = "The job's id")),
    responses(
        (status = 200, description = "Outcome, timings, events and artifacts (so far, for a job not final yet)", body = crate::openapi::ReportEnvelope),
        crate::openapi::JobNotFound,
    ),
)]
pub async fn report(
    AxumState(ctx): AxumState<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Report> {
    owned(&ctx, &caller, &id).await?;
    // region: count-view
    // One cache increment per read; the scheduled flush moves the counts to the database.
    let pending = views::record(&ctx.cache, &id).await.unwrap_or(0);
    let report_views = views::stored(&ctx.db, &id).await? + pending;
    // endregion: count-view
    // The row from the database, not the cache: it must agree with the events read next, and a
    // cached copy may lag a transition by the moment between its commit and its invalidation.
    let row = store::find(&ctx.db, &id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    let report = build_report(&ctx, row, report_views).await?;
    Ok(ApiResponse::success(report, ""))
}

/// The report of job `row`, read `report_views` times: its events and artifacts (with links
/// valid for an hour) read now.
///
/// # Errors
/// The database or the storage failed.
pub async fn build_report(
    ctx: &AppContext,
    row: JobRow,
    report_views: i64,
) -> Result<Report, AppError> {
    let id = row.id.as_str();
    let events = store::events(&ctx.db, id).await?;
    let mut artifacts = Vec::new();
    for a in store::artifacts(&ctx.db, id).await? {
        let url = ctx
            .storage
            .presign_get(&a.storage_key, std::time::Duration::from_secs(3600))
            .await?;
        artifacts.push(ArtifactView {
            name: a.name,
            size: a.size,
            content_type: a.content_type,
            url,
        });
    }
    let millis = |from: Timestamp, to: Timestamp| (to.get() - from.get()).num_milliseconds();
    let ready = row
        .execution_at
        .map_or(row.created_at, |at| at.max(row.created_at));
    Ok(Report {
        job_id: row.id.clone(),
        state: row.state.clone(),
        outcome: row.outcome.clone(),
        error: row.error.clone(),
        started_at: row.started_at,
        finished_at: row.finished_at,
        duration_ms: row
            .started_at
            .zip(row.finished_at)
            .map(|(s, f)| millis(s, f)),
        queue_wait_ms: row.started_at.map(|s| millis(ready, s).max(0)),
        events: events.into_iter().map(EventView::from).collect(),
        artifacts,
        report_views,
    })
}
