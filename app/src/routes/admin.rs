//! The jobs dashboard at [`DASHBOARD_PATH`]: core-dashboard over the application's queue, its
//! `failed_jobs` and the queues its jobs run on, signed in with `ADMIN_TOKEN`.
//!
//! With `ADMIN_TOKEN` set, `GET /admin/jobs/login` is the sign-in page; the token starts a
//! session (an `HttpOnly`, `SameSite=Strict` cookie on `/admin/jobs`), and the dashboard's API
//! under `/admin/jobs/api/` needs that session and, for every change, its CSRF token in
//! `x-csrf-token` (see [`core_dashboard::login`]). Without `ADMIN_TOKEN` every path under
//! `/admin/jobs` answers 503 `DASHBOARD_DISABLED` saying so.
//!
//! Its throughput charts count the jobs run by workers in the same process (core-jobs'
//! [`Queue::counters`](core_jobs::Queue::counters) of `ctx.queue`, which [`crate::jobs::worker`]
//! shares): `serve` on the in-process queue shows them; with Redis, the jobs run by separate
//! `app worker` processes are counted there, not here.
//!
//! The dashboard is not part of the public API: it is mounted beside the route table, so
//! `/openapi.json` (and the Schemathesis run that follows it) does not list it.

use axum::Router;
use core_dashboard::Dashboard;
use core_jobs::FailedJobs;

use crate::AppContext;

/// Where the dashboard is mounted.
pub const DASHBOARD_PATH: &str = "/admin/jobs";

/// What the disabled dashboard says.
pub const DISABLED: &str = "The jobs dashboard is disabled because ADMIN_TOKEN is not set; \
                            set it to sign in at /admin/jobs/login";

/// The queues the application's jobs run on, in the order the dashboard shows them.
pub fn queue_names() -> [&'static str; 2] {
    ["default", crate::webhooks::QUEUE]
}

// region: dashboard
/// The dashboard's router, to mount at [`DASHBOARD_PATH`] with `nest_service`: signed in with
/// `ADMIN_TOKEN`, or the disabled stand-in when it is not set.
pub fn dashboard(ctx: &AppContext) -> Router {
    let Some(token) = ctx.settings.forgerun.admin_token.as_deref() else {
        return Dashboard::disabled(DISABLED);
    };
    // The cron expressions are constants: an error here is a bug, and the dashboard then shows
    // no schedule rather than failing.
    let schedule = crate::jobs::retention::schedule().unwrap_or_else(|err| {
        tracing::error!(error = %err, "the schedule could not be built for the jobs dashboard");
        Vec::new()
    });
    let built = Dashboard::builder(ctx.queue.clone(), FailedJobs::new(ctx.db.clone()))
        .queue_names(queue_names())
        .schedule(schedule)
        .panel(super::console::panel(ctx))
        .token_login(token)
        .build();
    match built {
        Ok(dashboard) => dashboard.router(),
        // The queue names are constants and the settings refuse a short token, so this is a
        // bug; the dashboard stays closed rather than the server failing.
        Err(err) => {
            tracing::error!(error = %err, "the jobs dashboard could not be built");
            Dashboard::disabled("The jobs dashboard could not be built; see the server log")
        }
    }
}
// endregion: dashboard
