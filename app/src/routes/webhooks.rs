//! `/v1/webhooks`: the caller's webhooks and their deliveries.
//!
//! | route | success |
//! |---|---|
//! | `POST /v1/webhooks` `{url, events[]}` | 201 [`CreatedWebhook`] (the secret, once) |
//! | `GET /v1/webhooks` | 200 [`WebhookView`] list |
//! | `DELETE /v1/webhooks/{id}` | 200 [`WebhookView`] |
//! | `GET /v1/webhooks/{id}/deliveries` | 200 a page of [`DeliveryRow`](crate::webhooks::DeliveryRow) |
//!
//! A URL must be `http` or `https` and resolve to public addresses only (unless
//! `WEBHOOK_ALLOW_NETWORKS` allows them): anything else is 422 on `url`, and the address is
//! checked again at every delivery. Another client's webhook is a 404, like one that does not
//! exist. A job's callback is a webhook too: its deliveries are listed under the
//! `callback_webhook_id` its submission returned.

use std::sync::LazyLock;

use axum::extract::{Path, RawQuery, State as AxumState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use core_db::db::Timestamp;
use core_web::datatable::{Column, DataTable, Filter};
use core_web::webhook::Secret;
use core_web::{ApiResponse, ApiResult, AppError, ValidatedJson};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use crate::AppContext;
use crate::auth::Caller;
use crate::webhooks::{self, WebhookRow};

// region: new-webhook
/// The body of `POST /v1/webhooks`.
#[derive(Debug, Clone, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// Where deliveries go: an `http://` or `https://` URL, at most 2,048 characters, without
    /// credentials, whose host resolves to public addresses only.
    #[validate(length(min = 1, max = 2048))]
    #[schema(max_length = 2048, pattern = "^https?://")]
    pub url: String,
    /// The event types to receive, or `["*"]` for all.
    #[validate(length(min = 1, max = 16))]
    #[schema(value_type = Vec<crate::openapi::EventTypeOrAll>, min_items = 1, max_items = 16)]
    pub events: Vec<String>,
}
// endregion: new-webhook

/// A webhook as the API shows it (never its secret, except once at creation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WebhookView {
    /// Its id.
    #[schema(format = Uuid)]
    pub webhook_id: String,
    /// Where deliveries go.
    pub url: String,
    /// The event types it receives (`["*"]` for all).
    #[schema(value_type = Vec<crate::openapi::EventTypeOrAll>)]
    pub events: Vec<String>,
    /// Registered.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When it was disabled (its receiver answered 410 Gone), if it was.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub disabled_at: Option<Timestamp>,
}

impl From<&WebhookRow> for WebhookView {
    fn from(row: &WebhookRow) -> Self {
        Self {
            webhook_id: row.id.clone(),
            url: row.url.clone(),
            events: row.event_list(),
            created_at: row.created_at,
            disabled_at: row.disabled_at,
        }
    }
}

/// A webhook just registered, with the secret its deliveries are signed with: shown once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
// region: created-webhook
pub struct CreatedWebhook {
    /// The webhook.
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// `whsec_` + base64 of 24 random bytes (Standard Webhooks): verify each delivery's
    /// `webhook-signature` with it. It is not shown again.
    #[schema(pattern = "^whsec_[A-Za-z0-9+/]+=*$")]
    pub secret: String,
}
// endregion: created-webhook

/// 404 `RFA_WEBHOOK_NOT_FOUND`.
fn not_found(id: &str) -> AppError {
    AppError::coded(
        StatusCode::NOT_FOUND,
        "RFA_WEBHOOK_NOT_FOUND",
        format!("No webhook {id}"),
    )
}

/// The caller's webhook `id` (a callback's included), or 404.
async fn owned(ctx: &AppContext, caller: &Caller, id: &str) -> Result<WebhookRow, AppError> {
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(not_found(id));
    }
    webhooks::find_for_client(&ctx.db, &caller.client_id, id)
        .await?
        .ok_or_else(|| not_found(id))
}

/// `POST /v1/webhooks` → 201 with the webhook and its secret.
#[utoipa::path(
    post,
    path = "/v1/webhooks",
    operation_id = "createWebhook",
    tag = "webhooks",
    request_body(content = NewWebhook, content_type = "application/json"),
    responses(
        (status = 201, description = "The webhook, with its signing secret (shown once)", body = crate::openapi::CreatedWebhookEnvelope,
            links(
                ("DeleteWebhook" = (operation_id = "deleteWebhook", parameters(("id" = "$response.body#/data/webhook_id")), description = "Deletes the webhook")),
                ("ListDeliveries" = (operation_id = "listWebhookDeliveries", parameters(("id" = "$response.body#/data/webhook_id")), description = "The webhook's delivery attempts"))
            )),
        crate::openapi::BodyErrors,
    ),
)]
// region: create-webhook
pub async fn create(
    AxumState(ctx): AxumState<AppContext>,
    caller: Caller,
    ValidatedJson(input): ValidatedJson<NewWebhook>,
) -> Result<Response, AppError> {
    let events = webhooks::events_column(&input.events).ok_or_else(|| {
        AppError::field(
            "events",
            "must list event types (job.created, job.queued, job.assigned, job.running, \
             job.succeeded, job.failed, job.canceled) or be [\"*\"]",
        )
    })?;
    if let Err(refused) = ctx.ssrf.check(&input.url).await {
        return Err(AppError::field(
            "url",
            format!("cannot be called: {refused}"),
        ));
    }
    let row = WebhookRow {
        id: crate::ordered_id(),
        client_id: caller.client_id.clone(),
        job_id: None,
        url: input.url,
        events,
        secret: Secret::generate().expose().to_owned(),
        created_at: Timestamp::now(),
        disabled_at: None,
        disabled_reason: None,
    };
    webhooks::insert(&ctx.db, &row).await?;
    tracing::info!(
        webhook_id = row.id,
        client_id = row.client_id,
        action = "webhook.create",
        "webhook registered"
    );
    let created = CreatedWebhook {
        webhook: WebhookView::from(&row),
        secret: row.secret,
    };
    Ok(ApiResponse::with_status(StatusCode::CREATED, created, "").into_response())
}
// endregion: create-webhook

/// `GET /v1/webhooks`: the caller's webhooks, oldest first (callbacks are not listed).
#[utoipa::path(
    get,
    path = "/v1/webhooks",
    operation_id = "listWebhooks",
    tag = "webhooks",
    responses((status = 200, description = "The caller's webhooks", body = crate::openapi::WebhookListEnvelope)),
)]
pub async fn list(
    AxumState(ctx): AxumState<AppContext>,
    caller: Caller,
) -> ApiResult<Vec<WebhookView>> {
    let rows = webhooks::list(&ctx.db, &caller.client_id).await?;
    Ok(ApiResponse::success(
        rows.iter().map(WebhookView::from).collect(),
        "",
    ))
}

/// `DELETE /v1/webhooks/{id}`: unregisters the webhook; deliveries still queued are dropped.
#[utoipa::path(
    delete,
    path = "/v1/webhooks/{id}",
    operation_id = "deleteWebhook",
    tag = "webhooks",
    params(("id" = uuid::Uuid, Path, description = "The webhook's id")),
    responses(
        (status = 200, description = "The webhook, now deleted", body = crate::openapi::WebhookEnvelope),
        crate::openapi::WebhookNotFound,
    ),
)]
pub async fn delete(
    AxumState(ctx): AxumState<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<WebhookView> {
    let row = owned(&ctx, &caller, &id).await?;
    if !webhooks::delete(&ctx.db, &caller.client_id, &row.id).await? {
        return Err(not_found(&id));
    }
    tracing::info!(
        webhook_id = row.id,
        client_id = row.client_id,
        action = "webhook.delete",
        "webhook deleted"
    );
    Ok(ApiResponse::success(WebhookView::from(&row), ""))
}

/// The list definition of `GET /v1/webhooks/{id}/deliveries`.
// region: deliveries-table
static DELIVERIES: LazyLock<DataTable> = LazyLock::new(|| {
    DataTable::table("webhook_deliveries")
        .column(Column::text("delivery_id").sql("id"))
        .column(Column::text("event_id").filter(Filter::Eq))
        .column(Column::text("event_type").filter(Filter::Eq))
        .column(Column::integer("attempt"))
        .column(Column::text("outcome").filter(Filter::Eq))
        .column(Column::integer("status_code"))
        .column(Column::integer("duration_ms"))
        .column(Column::text("error"))
        .column(Column::timestamp("next_retry_at"))
        .column(
            Column::timestamp("created_at")
                .sortable()
                .filter(Filter::Range),
        )
        .default_sort("-created_at")
        .key("delivery_id")
        .max_per_page(100)
        .build()
        .expect("a valid list definition")
});
// endregion: deliveries-table

/// `GET /v1/webhooks/{id}/deliveries`: every delivery attempt of the webhook, newest first;
/// `filter[outcome]=`, `filter[event_type]=`, `filter[event_id]=`, `page`, `per_page`.
#[utoipa::path(
    get,
    path = "/v1/webhooks/{id}/deliveries",
    operation_id = "listWebhookDeliveries",
    tag = "webhooks",
    params(
        ("id" = uuid::Uuid, Path, description = "The webhook's id"),
        ("page" = Option<u64>, Query, description = "The 1-based page number (default 1)", minimum = 1),
        ("per_page" = Option<u64>, Query, description = "Rows per page (default 20); larger values are capped at 100", minimum = 1),
        ("sort" = Option<String>, Query, description = "`created_at` or `-created_at` (the default)", pattern = "^-?created_at$"),
        ("filter[outcome]" = Option<crate::openapi::DeliveryOutcome>, Query, description = "Only attempts with this outcome"),
        ("filter[event_type]" = Option<crate::openapi::EventType>, Query, description = "Only attempts of this event type"),
        ("filter[event_id]" = Option<String>, Query, description = "Only attempts of this event"),
        ("filter[created_at][gte]" = Option<String>, Query, description = "Made at or after (RFC 3339; a date means its whole day)", format = DateTime),
        ("filter[created_at][gt]" = Option<String>, Query, description = "Made after", format = DateTime),
        ("filter[created_at][lte]" = Option<String>, Query, description = "Made at or before", format = DateTime),
        ("filter[created_at][lt]" = Option<String>, Query, description = "Made before", format = DateTime),
    ),
    responses(
        (status = 200, description = "One page of the webhook's delivery attempts", body = crate::openapi::DeliveryListEnvelope),
        (status = 400, description = "Malformed percent-encoding or UTF-8 in the query (`BAD_REQUEST`)", content((crate::openapi::ErrorBody = "application/json"), (crate::openapi::ProblemDetails = "application/problem+json"))),
        crate::openapi::WebhookNotFound,
        (status = 422, description = "A parameter the list does not allow, or a value that does not parse; `errors` names it (`VALIDATION_ERROR`)", content((crate::openapi::ErrorBody = "application/json"), (crate::openapi::ProblemDetails = "application/problem+json"))),
    ),
)]
// region: deliveries-handler
pub async fn deliveries(
    AxumState(ctx): AxumState<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, AppError> {
    let query = DELIVERIES.parse(query.as_deref())?;
    let row = owned(&ctx, &caller, &id).await?;
    let query = query.where_eq("webhook_id", row.id.as_str());
    Ok(DELIVERIES
        .fetch(&ctx.db, &query)
        .await?
        .into_response()
        .into_response())
}
// endregion: deliveries-handler
