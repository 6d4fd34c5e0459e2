//! The application's routes.
//!
//! The `/v1` routes that need a key sit behind two layers: [`auth::require`] authenticates the
//! request once (401/403 before anything else runs) and leaves the [`Caller`] in its
//! extensions; the rate limiter then counts the request against the caller's client
//! (`RATE_LIMIT_PER_MINUTE`, on cache counters every server process shares) and adds the
//! `RateLimit-Policy` / `RateLimit` headers to the response, or answers 429
//! `RFA_REQUEST_RATE_LIMITED` with `Retry-After`.

use axum::Router;
use axum::extract::Request;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use core_web::rate_limit::{Policy, RateLimitLayer, RateLimiter};

use crate::AppContext;
use crate::auth::{self, Caller};

pub mod clients;
pub mod files;
pub mod health;
pub mod jobs;
pub mod metrics;

/// Every route, before the middleware stack is applied.
pub fn routes(ctx: &AppContext) -> Router<AppContext> {
    let limiter = RateLimiter::new(
        ctx.cache.clone(),
        Policy::per_minute(ctx.settings.forgerun.rate_limit_per_minute),
    );
    let per_client = |req: &Request| {
        req.extensions()
            .get::<Caller>()
            .map(|c| c.client_id.clone())
    };
    let authenticated = Router::new()
        .route("/v1/jobs", get(jobs::list).post(jobs::submit))
        .route("/v1/jobs/{id}", get(jobs::show))
        .route("/v1/jobs/{id}/cancel", post(jobs::cancel))
        .route("/v1/jobs/{id}/retry", post(jobs::retry))
        .route("/v1/jobs/{id}/report", get(jobs::report))
        .route(
            "/v1/clients/{id}/keys",
            get(clients::list_keys).post(clients::create_key),
        )
        .route("/v1/clients/{id}/keys/renew", post(clients::renew))
        .route("/v1/clients/{id}/keys/revoke", post(clients::revoke))
        .route_layer(
            RateLimitLayer::new(limiter, per_client).error_code("RFA_REQUEST_RATE_LIMITED"),
        )
        .route_layer(from_fn_with_state(ctx.clone(), auth::require));
    Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(metrics::metrics))
        .route("/storage/{*key}", get(files::get))
        .route("/v1/clients", post(clients::create))
        .merge(authenticated)
}
