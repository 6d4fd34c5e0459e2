//! The Rustforge example application.
//!
//! It shows the framework's pieces working together and grows, issue by issue, into a
//! job-execution service. Today it serves:
//!
//! - `GET /health`: liveness; answers as long as the process serves requests;
//! - `GET /ready`: readiness; checks the database and the cache, 503 when one does not answer;
//! - `GET /storage/{*key}`: files of the configured storage driver: those under
//!   `STORAGE_PUBLIC_PREFIXES` to anyone, the others through presigned links
//!   ([`routes::files`]);
//! - `/docs/`: the documentation site (when built);
//! - `/v1/clients`: ForgeRun clients and their API keys ([`routes::clients`]); other routes
//!   authenticate with [`auth::Caller`] (`Authorization: Bearer frk_…`);
//! - `/api/v1/notes`: a small demo resource showing [`core_web::ApiResponse`],
//!   [`core_web::AppError`] and [`core_web::ValidatedJson`] in English and Chinese
//!   (`X-Locale: zh` or `Accept-Language: zh-CN`); creating a note dispatches the
//!   [`jobs::NoteCreated`] background job.
//!
//! [`Settings`] composes every crate's configuration and is loaded once; [`AppContext::connect`]
//! turns it into the one [`AppContext`] (settings, database, cache, queue, storage) that
//! handlers get as axum state and jobs through their `JobContext`. Background jobs go through
//! [`AppContext::queue`] (`QUEUE_URL`: in-process by default, Redis when shared between
//! processes) and run on the [`Worker`](core_jobs::Worker) that [`worker`] builds.
//!
//! `main.rs` only parses the command line and starts the server, the worker or a command;
//! everything else is here so that tests drive the same router and worker the binary runs.

use axum::Router;

pub mod auth;
pub mod context;
pub mod jobs;
pub mod routes;
pub mod settings;

pub use context::{AppContext, MIGRATIONS, connect_database, connect_queue, init_i18n, migrate};
pub use jobs::worker;
pub use settings::Settings;

/// The whole application: routes, the documentation site under `/docs`, and the middleware stack
/// configured from the settings.
pub fn router(ctx: AppContext) -> Router {
    let http = ctx.settings.base.http.clone();
    let routes = routes::routes()
        .nest_service("/docs", core_docs::router())
        .with_state(ctx);
    core_web::middleware::stack(routes, &http)
}
