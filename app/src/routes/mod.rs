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
use core_web::rate_limit::{Policy, RateLimitLayer, RateLimiter};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{self, Caller};
use crate::{AppContext, openapi};

pub mod admin;
pub mod clients;
pub mod console;
pub mod events;
pub mod files;
pub mod health;
pub mod jobs;
pub mod metrics;
pub mod webhooks;

/// The route table: every route with its handler, registered from the handler's
/// `#[utoipa::path]` annotation, so the router ([`routes()`]) and the OpenAPI document
/// ([`openapi::document`]) are built from the same list.
pub struct Table {
    /// Routes anyone may call.
    pub public: OpenApiRouter<AppContext>,
    /// Routes behind [`auth::require`] and the per-client rate limit.
    pub authenticated: OpenApiRouter<AppContext>,
}

/// The route table, before any layer (see [`Table`]).
// region: route-table
pub fn table() -> Table {
    let public = OpenApiRouter::new()
        .routes(routes!(health::health))
        .routes(routes!(health::ready))
        .routes(routes!(metrics::metrics))
        .routes(routes!(files::get))
        .routes(routes!(openapi::serve))
        .routes(routes!(clients::create));
    let authenticated = OpenApiRouter::new()
        .routes(routes!(jobs::list, jobs::submit))
        .routes(routes!(jobs::show))
        .routes(routes!(jobs::cancel))
        .routes(routes!(jobs::retry))
        .routes(routes!(jobs::report))
        .routes(routes!(events::stream))
        .routes(routes!(clients::list_keys, clients::create_key))
        .routes(routes!(clients::renew))
        .routes(routes!(clients::revoke))
        .routes(routes!(webhooks::list, webhooks::create))
        .routes(routes!(webhooks::delete))
        .routes(routes!(webhooks::deliveries));
    Table {
        public,
        authenticated,
    }
}
// endregion: route-table

/// Every route, before the middleware stack is applied: the [`table`] with the authentication
/// and rate-limit layers on its authenticated group.
pub fn routes(ctx: &AppContext) -> Router<AppContext> {
    // region: ch6-layers
    // region: rate-limit
    let limiter = RateLimiter::new(
        ctx.cache.clone(),
        Policy::per_minute(ctx.settings.forgerun.rate_limit_per_minute),
    );
    let per_client = |req: &Request| {
        req.extensions()
            .get::<Caller>()
            .map(|c| c.client_id.clone())
    };
    let Table {
        public,
        authenticated,
    } = table();
    let authenticated = authenticated
        .route_layer(
            RateLimitLayer::new(limiter, per_client).error_code("RFA_REQUEST_RATE_LIMITED"),
        )
        .route_layer(from_fn_with_state(ctx.clone(), auth::require));
    // endregion: rate-limit
    // endregion: ch6-layers
    let (router, _) = public.merge(authenticated).split_for_parts();
    router
}
