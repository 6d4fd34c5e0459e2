//! The application's routes.

use axum::Router;
use axum::routing::get;

use crate::AppContext;

pub mod files;
pub mod health;

/// Every route, before the middleware stack is applied.
pub fn routes() -> Router<AppContext> {
    Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/storage/{*key}", get(files::get))
}
