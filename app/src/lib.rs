//! ForgeRun, the Rustforge example application: a job-execution service.
//!
//! Clients register, get API keys, and submit jobs of synthetic work; ForgeRun runs them on
//! core-jobs through a state machine (CREATED → QUEUED → ASSIGNED → RUNNING → SUCCEEDED /
//! FAILED / CANCELED), with scheduling, retries, cooperative cancel, idempotent submission and
//! a report per job. It serves:
//!
//! - `POST /v1/clients` and the key routes under `/v1/clients/{id}/keys`
//!   ([`routes::clients`]); every other `/v1` route authenticates with [`auth::Caller`]
//!   (`Authorization: Bearer frk_…`);
//! - `/v1/jobs`: submit, list, read, cancel, retry, report ([`routes::jobs`], [`jobs`]);
//! - `/v1/webhooks`: register, list and delete webhooks, and list their deliveries
//!   ([`routes::webhooks`], [`webhooks`]);
//! - `GET /health`: liveness; `GET /ready`: the database, the cache and the queue answer;
//! - `GET /storage/{*key}`: stored files, public prefixes to anyone, the rest through
//!   presigned links ([`routes::files`]);
//! - `GET /openapi.json`: the OpenAPI 3.1 document of this API, generated from the code
//!   ([`openapi`]);
//! - `/docs/`: the documentation site (when built);
//! - `/admin/jobs`: the jobs dashboard, signed in with `ADMIN_TOKEN` (disabled without it;
//!   [`routes::admin`]). It is not part of the public API or its OpenAPI document.
//!
//! [`Settings`] composes every crate's configuration and is loaded once; [`AppContext::connect`]
//! turns it into the one [`AppContext`] (settings, database, cache, queue, storage) that
//! handlers get as axum state and jobs through their `JobContext`. Background jobs go through
//! [`Context::queue`] (`QUEUE_URL`: in-process by default, Redis when shared between
//! processes) and run on the [`Worker`](core_jobs::Worker) that [`worker`] builds.
//!
//! `main.rs` only parses the command line and starts the server, the worker or a command;
//! everything else is here so that tests drive the same router and worker the binary runs.

use axum::Router;

pub mod auth;
pub mod context;
pub mod idempotency;
pub mod jobs;
pub mod openapi;
pub mod routes;
pub mod settings;
pub mod webhooks;

pub use context::{
    AppContext, Context, MIGRATIONS, connect_database, connect_queue, init_i18n, migrate,
};
pub use jobs::worker;
pub use settings::Settings;

/// A new id for a row its list sorts by `(created_at, id)`: a time-ordered UUID (version 7,
/// monotonic within the process). `created_at` is cut to the millisecond, so rows made in the
/// same millisecond keep the order they were made in, where random ids would shuffle them.
pub fn ordered_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

// region: router
/// The whole application: routes, the documentation site under `/docs`, the jobs dashboard
/// under `/admin/jobs`, and the middleware stack configured from the settings.
pub fn router(ctx: AppContext) -> Router {
    let http = ctx.settings.base.http.clone();
    let routes = routes::routes(&ctx)
        .nest_service("/docs", core_docs::router())
        .nest_service(
            routes::admin::DASHBOARD_PATH,
            routes::admin::dashboard(&ctx),
        )
        .with_state(ctx);
    core_web::middleware::stack(routes, &http)
}
// endregion: router
