//! The application's routes.

use axum::Router;
use axum::routing::get;

use crate::AppContext;

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
}
