//! The application's routes.

use axum::Router;
use axum::routing::{get, post};

use crate::AppContext;

pub mod clients;
pub mod files;
pub mod health;
pub mod jobs;

/// Every route, before the middleware stack is applied.
pub fn routes() -> Router<AppContext> {
    Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/v1/jobs", get(jobs::list).post(jobs::submit))
        .route("/v1/jobs/{id}", get(jobs::show))
        .route("/v1/jobs/{id}/cancel", post(jobs::cancel))
        .route("/v1/jobs/{id}/retry", post(jobs::retry))
        .route("/v1/jobs/{id}/report", get(jobs::report))
        .route("/storage/{*key}", get(files::get))
        .route("/v1/clients", post(clients::create))
        .route(
            "/v1/clients/{id}/keys",
            get(clients::list_keys).post(clients::create_key),
        )
        .route("/v1/clients/{id}/keys/renew", post(clients::renew))
        .route("/v1/clients/{id}/keys/revoke", post(clients::revoke))
}
