//! `GET /metrics`: Prometheus text.
//!
//! The counters and histograms are recorded where things happen (HTTP requests by core-web's
//! stack, job transitions by [`crate::jobs::store`], core-jobs' worker counters); the gauges
//! are read at scrape time: `job_queue_depth` (jobs not yet final, from the database) and
//! `job_queue_ready` (dispatches waiting in the queue).
//!
//! Serve it on an internal network only: it is not authenticated.

use axum::extract::State;
use axum::response::Response;

use crate::AppContext;
use crate::jobs::store;

/// `GET /metrics`.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    responses((
        status = 200,
        description = "Prometheus text exposition format 0.0.4",
        content_type = "text/plain; version=0.0.4; charset=utf-8",
        body = String,
    )),
)]
// region: ch9-metrics
pub async fn metrics(State(ctx): State<AppContext>) -> Response {
    match store::active(&ctx.db, None).await {
        Ok(depth) => metrics::gauge!("job_queue_depth").set(depth as f64),
        Err(e) => tracing::warn!(error = %e, "could not count active jobs for job_queue_depth"),
    }
    match ctx.queue.stats("default").await {
        Ok(stats) => metrics::gauge!("job_queue_ready").set(stats.ready as f64),
        Err(e) => tracing::warn!(error = %e, "could not read the queue's size for job_queue_ready"),
    }
    ctx.metrics.response()
}
// endregion: ch9-metrics
