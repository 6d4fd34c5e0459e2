//! Rustforge's jobs dashboard: a [`Router`](axum::Router) an application nests wherever it
//! likes, answering a JSON API over its queues and its failed jobs.
//!
//! - **Counts**: per queue and in total, the jobs ready, delayed, running, waiting behind their
//!   group, parked failures, and the failed jobs stored (from [`core_jobs::Queue::stats`] and
//!   the `failed_jobs` table).
//! - **Failed jobs**: a paged, sorted, filtered list (core-web's DataTable over `failed_jobs`,
//!   without the payloads), one failure in full, retry, forget, and retry or forget of every row
//!   a filter matches, after a preview that says how many rows it will touch.
//! - **Throughput charts**: jobs finished per minute and the failure rate over the last hour,
//!   overall and per queue, sampled from core-jobs' in-process [`JobCounters`](core_jobs::JobCounters)
//!   (the counts behind `/metrics`), so the dashboard adds nothing to the workers' hot path
//!   (see [`throughput`](mod@throughput)).
//! - **Running and recent jobs**: per shown queue, the jobs running now, read from the queue
//!   (workers in every process), and the last jobs the workers of this process finished, with
//!   their outcomes and durations (see [running and recent jobs](crate#running-and-recent-jobs)).
//! - **A web page** at the mount point (see [`frontend`]): the counts, the charts and the
//!   running and recent jobs, updated live over server-sent events (`GET api/events`), and the
//!   failed jobs with their filters, details and actions, every destructive one confirmed first.
//! - **Panels**: the application's own pages on the same page and behind the same sign-in, a
//!   list with filters and records with their timelines, tables and links, followed live (see
//!   [`panel`]; ForgeRun's console is one).
//! - **Security**: nothing is public. Every request, unknown paths included, goes through the
//!   sign-in check of a [`TokenLogin`] and the application's [`Authorize`] hook first; a
//!   dashboard built with neither answers every request with 401, and one the application has
//!   turned off ([`Dashboard::disabled`]) answers 503 saying why.
//!
//! # Signing in with a token
//!
//! An application with one admin secret (such as an `ADMIN_TOKEN` setting) gives it to
//! [`DashboardBuilder::token_login`]: the dashboard then serves its own sign-in page at
//! `{prefix}/login`, keeps sessions in an `HttpOnly`, `SameSite=Strict` cookie, demands the
//! session's CSRF token in the `x-csrf-token` header of every change, refuses cross-origin
//! changes and sign-ins, and rate-limits wrong tokens (see [`login`] for all of it):
//!
//! ```no_run
//! use axum::Router;
//! use core_dashboard::Dashboard;
//! use core_jobs::{FailedJobs, Queue};
//!
//! # fn app(queue: Queue, failed: FailedJobs, admin_token: Option<String>)
//! #     -> Result<Router, core_dashboard::Error> {
//! let dashboard = match admin_token {
//!     Some(token) => Dashboard::builder(queue, failed)
//!         .queue_names(["default", "mail"])
//!         .token_login(token)
//!         .build()?
//!         .router(),
//!     None => Dashboard::disabled("The jobs dashboard is disabled: ADMIN_TOKEN is not set"),
//! };
//! // `nest_service`, so that `/admin/jobs/`, where sign-in leads, reaches it too.
//! Ok(Router::new().nest_service("/admin/jobs", dashboard))
//! # }
//! ```
//!
//! # Any other authorization
//!
//! An application with its own login gives the dashboard an [`Authorize`] hook instead:
//!
//! ```no_run
//! use axum::Router;
//! use core_dashboard::Dashboard;
//! use core_jobs::{FailedJobs, Queue};
//! use core_web::AppError;
//! use http::request::Parts;
//!
//! # async fn app(queue: Queue, failed: FailedJobs) -> Result<Router, core_dashboard::Error> {
//! let dashboard = Dashboard::builder(queue, failed)
//!     .queue_names(["default", "mail"])
//!     .authorize(|parts: &Parts| {
//!         // Whatever the application's login put on the request.
//!         let admin = parts.headers.get("x-admin-token").is_some_and(|t| t == "secret");
//!         async move {
//!             if admin { Ok(()) } else { Err(AppError::Unauthorized("Admins only".into())) }
//!         }
//!     })
//!     .build()?;
//! Ok(Router::new().nest("/admin/jobs", dashboard.router()))
//! # }
//! ```
//!
//! # The API
//!
//! Paths are relative to the mount point. Successes are core-web's
//! [`ApiResponse`](core_web::ApiResponse) envelope `{"data", "message"?, "meta"?}`; every error
//! is an [`AppError`](core_web::AppError) in the framework's JSON error shape
//! `{"message", "error_code", "errors"?, "request_id"}` (bad input is 400 or 422 with the
//! offending field under `errors`, never a panic or plain text).
//!
//! | route | answers |
//! |---|---|
//! | `GET api/queues` | `{"queues": [{"queue", "ready", "delayed", "running", "grouped_waiting", "pending_failures", "failed"}], "totals": {…the same, summed over the queues shown}, "failed_all_queues"}` |
//! | `GET api/failed` | the failed jobs, newest first: rows `{"id", "job_id", "job_name", "queue", "error", "attempts", "group_id", "failed_at"}` (no payload) and `meta` `{"page", "per_page", "total", "last_page"}` |
//! | `GET api/failed/{id}` | one failure with its payload (core-jobs' `FailedJob`); 404 when there is none |
//! | `POST api/failed/{id}/retry` | re-dispatches it with its attempts reset and deletes the row: `{"id", "job_id"}`; 404 when there is none |
//! | `POST api/failed/{id}/forget` | deletes the row: `{"id"}`; 404 when there is none |
//! | `POST api/failed/bulk/preview` | body `{"action": "retry" \| "forget", "filter": {…}}` → `{"action", "count"}`: how many rows the action would touch now |
//! | `POST api/failed/bulk` | the same body plus `"confirm_count"`: acts only when the filter still matches exactly that many rows, and answers `{"action", "count"}` with the rows touched; otherwise 409 `BULK_COUNT_CHANGED`, nothing touched, the message and the `x-matching-count` header giving the new count |
//! | `GET api/session` | with a [`TokenLogin`] only: `{"csrf_token", "expires_at"}` of the caller's session |
//! | `GET api/schedule` | the jobs given to [`schedule`](DashboardBuilder::schedule): `[{"name", "cron", "next_run", "without_overlapping"}]`, `next_run` RFC 3339 or `null` when there is no tick within five years |
//! | `GET api/throughput` | the sampled counts: `{"interval_ms", "window_ms", "queues": [names], "replace": true, "points": [{"at", "span_ms", "total": {"processed", "failed", "retried"}, "queues": {name: {…the same}}}]}`, oldest first (see [throughput](crate#throughput-charts)) |
//! | `GET api/panels` | the application's [panels](panel): `[{"id", "title", "description", "key", "filters", "columns", "record", "live"}]` |
//! | `GET api/panels/{panel}/rows`, `…/records/{id}`, `…/records/{id}/live` | answered by the panel's handlers (see [`panel`]) |
//! | `GET api/jobs/running` | the jobs running now, `?queue=` (one shown queue; all of them when not given, an unknown one is 422) and `?limit=` (1–200, 50 when not given): `[{"id", "name", "queue", "attempt", "group", "dispatched_at", "lease_expires_at"}]`, oldest dispatch first |
//! | `GET api/jobs/recent` | the last jobs finished by this process's workers, the same `queue` and `limit`: `[{"id", "name", "queue", "outcome", "attempt", "finished_at", "duration_ms"}]`, newest first, `outcome` one of `succeeded`, `failed`, `retried` |
//! | `GET api/events` | server-sent events: `queues` with the JSON of `GET api/queues` at once and every [`live_interval`](DashboardBuilder::live_interval) (1 s by default) while the client stays connected; `jobs` on the same ticks with `{"queues", "running", "recent"}`, both lists for every shown queue (up to 50 jobs per queue each, the rows of the two routes above); `throughput` with the JSON of `GET api/throughput` at once, then with `"replace": false` and each new point as it is sampled; `error` with the JSON error body when the counts cannot be read (the stream goes on); see [`live`](crate#live-counts) |
//!
//! Forget is a `POST` to an action path, like retry and the bulk actions, so that every change
//! the dashboard makes is a `POST` naming what it does. Behind a [`TokenLogin`], every one of
//! them needs the session's CSRF token in the `x-csrf-token` header.
//!
//! ## The filter
//!
//! `GET api/failed` takes it as query parameters and the bulk routes as the `filter` object, with
//! the same names and the same meaning, so a bulk action touches exactly the rows the list shows
//! (as many as its `meta.total`):
//!
//! | name | rows whose |
//! |---|---|
//! | `job_name` | job name is exactly this |
//! | `queue` | queue is exactly this |
//! | `error` | error contains this text, ignoring case; `%` and `_` match themselves |
//! | `failed_from` | failure time is at or after this (RFC 3339, or a date meaning its midnight UTC) |
//! | `failed_before` | failure time is before this (likewise) |
//!
//! Empty values mean "not given"; times are taken to the millisecond; an unknown key in the
//! `filter` object is refused (a typo must not widen a bulk action to every row). The list also
//! takes `page`, `per_page` (at most 200) and `sort` (`id`, `job_name`, `queue`, `attempts`,
//! `failed_at`, `-` for descending, as core-web's DataTable reads them); its DataTable
//! `filter[…]` parameters are refused in favour of the names above.
//!
//! ## Live counts
//!
//! `GET api/events` is a `text/event-stream` behind the same check as every other route (401
//! without a session). Each connection reads the counts, and the running jobs, once per
//! interval for as long as it is open, and nothing when no page is open; keep-alive comments
//! hold it open through proxies, and `X-Accel-Buffering: no` asks buffering proxies to pass
//! events on at once. Behind a [`TokenLogin`], every event stream (this one and the
//! [panels'](panel) live records) checks its session once a second and ends, with an `error`
//! event carrying the 401 body, within a second of the session's sign-out or expiry. The page
//! falls back to polling `GET api/queues` (and `GET api/jobs/running`, `GET api/jobs/recent`)
//! when the stream cannot be used.
//!
//! ```text
//! event: queues
//! data: {"data":{"queues":[{"queue":"default","ready":2,…}],"totals":{…},"failed_all_queues":0}}
//!
//! event: jobs
//! data: {"data":{"queues":["default","mail"],"running":[{"id":"…","name":"mail",…}],"recent":[…]}}
//! ```
//!
//! # Running and recent jobs
//!
//! **Running** jobs come from the queue driver ([`Queue::running`](core_jobs::Queue::running)):
//! the jobs leased right now, whichever process runs them, with their attempt, dispatch time
//! and lease deadline (a deadline in the past means the worker is likely gone and the job is
//! about to be recovered). Reading them costs one query per shown queue per interval while a
//! page is open, and nothing on the workers' side.
//!
//! **Recent** jobs are those the workers **in the dashboard's process** finished, newest
//! first: the last [`recent_jobs`](DashboardBuilder::recent_jobs) of them (100 by default)
//! kept by core-jobs' in-process ring ([`JobCounters::keep_recent`](core_jobs::JobCounters::keep_recent),
//! see [`core_jobs::stats`]), with how each run ended (`succeeded`, `failed`, or `retried`:
//! failed with attempts left), its attempt, when it finished and how long it took. Like the
//! charts, they stay empty when the workers run in other processes.
//!
//! # Throughput charts
//!
//! Every [`sample_interval`](DashboardBuilder::sample_interval) (10 s by default) the dashboard
//! reads core-jobs' in-process counters ([`Queue::counters`](core_jobs::Queue::counters) of
//! the queue it was given, or [`DashboardBuilder::counters`]) and keeps one point per sample
//! for the last [`throughput_window`](DashboardBuilder::throughput_window) (an hour): the jobs
//! of each shown queue, and their total, that succeeded (`processed`), ended in `failed_jobs`
//! (`failed`) and were retried (`retried`) during the point's `span_ms`, ending at `at` (Unix
//! milliseconds). The page draws two line charts from them, for all the shown queues or the
//! one picked: **jobs finished per minute** (`processed × 60000 / span_ms`, and the same for
//! `failed`) and the **failure rate**, `failed / (processed + failed)` in percent, blank where
//! no job finished.
//!
//! Sampling runs from the moment the dashboard is built, whether or not a page is open, so
//! that a page opened now shows the hour before; it reads a few in-memory atomics, never Redis
//! or the database. The figures are those of the workers **in the dashboard's process**: with
//! workers in separate processes (an `app worker` beside the web server on Redis) the charts
//! stay flat. Charting those would need the counts in a shared store, which this crate does
//! not do yet (see [`core_jobs::stats`]).
//!
//! # The page
//!
//! `GET {prefix}/` serves the dashboard's page, a single-page app in `core-dashboard/frontend/`
//! (Vite, React, TypeScript, Tailwind; relative asset paths, so any mount point works). It is
//! built into `core-dashboard/frontend/dist`, which is not committed:
//!
//! ```sh
//! cd core-dashboard/frontend && npm install && npm run build   # Node.js 20.19 or newer
//! ```
//!
//! Until then `{prefix}/` answers a short page saying so (with the queues, links to the API and
//! the sign-out). The page's files need the session like everything else; see [`frontend`] for
//! where they are looked for ([`frontend::FRONTEND_DIR_ENV`] overrides it) and how they are
//! served. `core-dashboard/scripts/test` installs, builds and tests the page: Vitest, then a
//! browser run in Chromium against the `dashboard_demo` example (`cargo run -p core-dashboard
//! --example dashboard_demo` with `DASHBOARD_TOKEN` set serves the dashboard with demo data).
//!
//! # Bulk actions
//!
//! A bulk action works on the rows that exist when it starts: failures recorded while it runs
//! are left alone. A bulk retry dispatches each job before deleting its row, so a queue that
//! fails midway loses no job (the rows not yet handled stay, and the request answers the
//! error).

pub mod auth;
pub mod dashboard;
pub mod error;
pub mod frontend;
pub mod login;
pub mod panel;
pub mod throughput;

mod api;
mod filter;
mod jobs;
mod live;

pub use auth::Authorize;
pub use dashboard::{
    DEFAULT_LIVE_INTERVAL, DEFAULT_RECENT_JOBS, Dashboard, DashboardBuilder, MIN_LIVE_INTERVAL,
};
pub use error::{Error, Result};
pub use login::TokenLogin;
pub use panel::{Panel, Record};
pub use throughput::{DEFAULT_SAMPLE_INTERVAL, DEFAULT_THROUGHPUT_WINDOW, MIN_SAMPLE_INTERVAL};
