//! The application's routes.

use axum::Router;
use axum::routing::{get, post};

use crate::AppContext;

pub mod clients;
pub mod files;
pub mod health;
pub mod notes;

/// Every route, before the middleware stack is applied.
pub fn routes() -> Router<AppContext> {
    Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/api/v1/notes", get(notes::list).post(notes::create))
        .route("/api/v1/notes/{id}", get(notes::show).delete(notes::delete))
        .route("/storage/{*key}", get(files::get))
        .route("/v1/clients", post(clients::create))
        .route(
            "/v1/clients/{id}/keys",
            get(clients::list_keys).post(clients::create_key),
        )
        .route("/v1/clients/{id}/keys/renew", post(clients::renew))
        .route("/v1/clients/{id}/keys/revoke", post(clients::revoke))
}
