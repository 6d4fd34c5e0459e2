//! Liveness and readiness.

use std::time::Duration;

use axum::extract::State;
use core_i18n::{t, t_args};
use core_web::{ApiResponse, ApiResult, AppError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppContext;

/// How long one backend may take to answer a readiness check.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The body of `GET /health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `"ok"`.
    #[schema(value_type = String, pattern = "^ok$")]
    pub status: &'static str,
    /// The application's name (`APP_NAME`).
    pub app: String,
    /// The crate version.
    #[schema(value_type = String)]
    pub version: &'static str,
}

/// `GET /health`: the process is up and serving.
#[utoipa::path(
    get,
    path = "/health",
    operation_id = "health",
    tag = "operations",
    responses((status = 200, description = "The process is up and serving", body = crate::openapi::HealthEnvelope)),
)]
pub async fn health(State(state): State<AppContext>) -> ApiResult<Health> {
    Ok(ApiResponse::success(
        Health {
            status: "ok",
            app: state.settings.base.app_name.clone(),
            version: env!("CARGO_PKG_VERSION"),
        },
        &t("health.ok"),
    ))
}

/// One backend's readiness.
#[derive(Debug, Serialize, ToSchema)]
pub struct Check {
    /// `database`, `cache` or `queue`.
    #[schema(value_type = String, pattern = "^(database|cache|queue)$")]
    pub name: &'static str,
    /// The driver in use (`sqlite`, `postgres`, `memory`, `redis`, `tiered`).
    pub driver: String,
    /// Whether it answered.
    pub ok: bool,
    /// How long it took, in milliseconds.
    pub latency_ms: f64,
    /// The error, when it did not answer.
    #[schema(nullable = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `GET /ready`: every configured backend answers within two seconds; 503 naming the ones that
/// did not otherwise.
#[utoipa::path(
    get,
    path = "/ready",
    operation_id = "ready",
    tag = "operations",
    responses(
        (status = 200, description = "The database, the cache and the queue answer", body = crate::openapi::ReadyEnvelope),
        (status = 503, description = "A backend did not answer within two seconds (`SERVICE_UNAVAILABLE`)", content((crate::openapi::ErrorBody = "application/json"), (crate::openapi::ProblemDetails = "application/problem+json"))),
    ),
)]
pub async fn ready(State(state): State<AppContext>) -> ApiResult<Vec<Check>> {
    let db = async {
        let started = std::time::Instant::now();
        let result = state.db.ping(CHECK_TIMEOUT).await;
        check(
            "database",
            state.db.backend().as_str().to_owned(),
            started,
            result.err(),
        )
    };
    let cache = async {
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(CHECK_TIMEOUT, state.cache.has("ready-probe")).await;
        let error = match result {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!("no answer within {CHECK_TIMEOUT:?}")),
        };
        check(
            "cache",
            format!("{:?}", state.cache.driver()).to_lowercase(),
            started,
            error,
        )
    };
    let queue = async {
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(CHECK_TIMEOUT, state.queue.stats("default")).await;
        let error = match result {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!("no answer within {CHECK_TIMEOUT:?}")),
        };
        check(
            "queue",
            format!("{:?}", state.queue.driver_kind()).to_lowercase(),
            started,
            error,
        )
    };
    let (db, cache, queue) = tokio::join!(db, cache, queue);
    let checks = vec![db, cache, queue];
    let failed: Vec<&str> = checks.iter().filter(|c| !c.ok).map(|c| c.name).collect();
    if failed.is_empty() {
        return Ok(ApiResponse::success(checks, &t("health.ready")));
    }
    for c in checks.iter().filter(|c| !c.ok) {
        tracing::warn!(
            backend = c.name,
            error = c.error.as_deref().unwrap_or(""),
            "not ready"
        );
    }
    let failed = failed.join(", ");
    Err(AppError::ServiceUnavailable(t_args(
        "health.not_ready",
        &[("failed", &failed)],
    )))
}

fn check(
    name: &'static str,
    driver: String,
    started: std::time::Instant,
    error: Option<impl ToString>,
) -> Check {
    Check {
        name,
        driver,
        ok: error.is_none(),
        latency_ms: started.elapsed().as_secs_f64() * 1000.0,
        error: error.map(|e| e.to_string()),
    }
}
