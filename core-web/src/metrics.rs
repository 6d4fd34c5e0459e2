//! Prometheus metrics: one process-wide recorder, HTTP request metrics, and the `/metrics`
//! endpoint.
//!
//! - [`install`] installs the recorder the `metrics` crate's macros (`counter!`, `gauge!`,
//!   `histogram!`) report to — the framework's own metrics (HTTP here, `rustforge_jobs_*` in
//!   core-jobs) and the application's. It may be called any number of times: the first call
//!   installs, later calls return the same [`Metrics`] handle.
//! - [`middleware`] counts every request in `http_requests_total{method, route, status}` and
//!   times it in the histogram `http_request_duration_seconds{method, route, status}`. `route`
//!   is the route's template (`/v1/jobs/{id}`), never the requested path, so one route is one
//!   series whatever the ids; a request that matches no route is labelled
//!   `route="unmatched"` ([`UNMATCHED_ROUTE`]). [`crate::middleware::stack`] applies it
//!   outermost, so the router's 404 and 405, the timeout's 408, the body limit's 413 and the
//!   500 of a panicking handler are counted too.
//! - [`Metrics::router`] (or the [`render`] handler) serves the exposition text with
//!   [`CONTENT_TYPE`].
//!
//! Histograms whose name ends in `_seconds` are rendered as Prometheus histograms
//! (`_bucket{le="…"}`, `_sum`, `_count`) over [`DURATION_BUCKETS`];
//! `http_request_duration_seconds` uses the finer [`LATENCY_BUCKETS`]. Other histograms are
//! rendered as summaries (quantiles), since no bucket layout suits every unit.
//!
//! Until [`install`] is called the macros record nothing, so the middleware costs little in a
//! process that does not export metrics.
//!
//! Once it is, the HTTP series are kept by the framework, not by the exporter, which would keep
//! every duration in a list all threads append to until the next scrape: a request adds to
//! counters of its own thread (a bucket, the sum, the total) and a scrape adds the threads'
//! counters up. [`Metrics::render`] renders both.
//!
//! ```
//! use axum::{Router, routing::get};
//! use core_web::config::HttpConfig;
//!
//! # fn main() -> core_web::Result<()> {
//! let metrics = core_web::metrics::install()?;
//! let app: Router = core_web::middleware::stack(
//!     Router::new()
//!         .route("/v1/jobs/{id}", get(|| async { "job" }))
//!         .merge(metrics.router()),
//!     &HttpConfig::default(),
//! );
//! # let _ = app;
//!
//! // The application's own metrics, recorded with the `metrics` crate.
//! metrics::counter!("jobs_submitted_total").increment(1);
//! assert!(metrics.render().contains("jobs_submitted_total 1"));
//! # Ok(())
//! # }
//! ```
//!
//! # Mounting
//!
//! The route label needs the matched route, which the router knows only once it has routed the
//! request. Layers added with `Router::layer` wrap each route already added (and the fallback)
//! and therefore run after routing, with `axum::extract::MatchedPath` in the request's
//! extensions. A layer wrapped around the router as a whole service (a `tower::ServiceBuilder`
//! around the `Router`, or `Router::into_service` then `layer`) runs before routing and would
//! label every request `unmatched`. [`crate::middleware::stack`] uses `Router::layer`, so every
//! route added before `stack` is measured; an application that does not use `stack` adds
//! `.layer(axum::middleware::from_fn(core_web::metrics::middleware))` after its routes.
//!
//! The endpoint has no authentication of its own: expose it on an internal network, or put it
//! behind the application's own guard.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ::metrics::{Label, SharedString};
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::error::{Error, Result};

mod series;

/// Counter of HTTP requests, labelled `method`, `route` and `status`.
pub const REQUESTS_TOTAL: &str = "http_requests_total";

/// Histogram of HTTP request durations in seconds, labelled `method`, `route` and `status`.
pub const REQUEST_DURATION_SECONDS: &str = "http_request_duration_seconds";

/// The help line of [`REQUESTS_TOTAL`].
const REQUESTS_HELP: &str = "HTTP requests by method, route template and status.";

/// The help line of [`REQUEST_DURATION_SECONDS`].
const DURATION_HELP: &str =
    "HTTP request duration until the response head, by method, route template and status.";

/// The `route` label of a request that matched no route (the router's fallback).
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// The path [`Metrics::router`] serves.
pub const PATH: &str = "/metrics";

/// The content type of the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Bucket bounds (seconds) of `http_request_duration_seconds`: 5 ms to 30 s, the longest
/// request timeout a deployment is likely to set.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Bucket bounds (seconds) of every other histogram whose name ends in `_seconds`, such as
/// queue waits and job executions: 5 ms to one hour.
pub const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// How often the background upkeep folds recorded histogram samples into their buckets, so
/// memory stays bounded in a process that is never scraped.
const UPKEEP_PERIOD: Duration = Duration::from_secs(5);

/// The handle [`install`] returned first; later calls clone it.
static INSTALLED: Mutex<Option<Metrics>> = Mutex::new(None);

/// A handle to the process's Prometheus recorder: renders what has been recorded.
///
/// Cheap to clone (one reference count); every clone renders the same metrics.
#[derive(Clone, Debug)]
pub struct Metrics {
    handle: PrometheusHandle,
}

/// Installs the process-wide Prometheus recorder, or returns the one already installed.
///
/// Safe to call many times (each test that builds a router may call it): the first call builds
/// the recorder, installs it for the `metrics` crate's macros, starts its upkeep thread and
/// describes the HTTP metrics; every later call returns a clone of the same handle.
///
/// # Errors
///
/// [`Error::Metrics`] when another `metrics` recorder was installed in this process by other
/// means: a process has one recorder, and it was not this one.
pub fn install() -> Result<Metrics> {
    let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(metrics) = installed.as_ref() {
        return Ok(metrics.clone());
    }
    let handle = builder()?
        .install_recorder()
        .map_err(|e| Error::Metrics(e.to_string()))?;
    spawn_upkeep(handle.clone());
    let metrics = Metrics { handle };
    *installed = Some(metrics.clone());
    RECORDING.store(true, Ordering::Release);
    Ok(metrics)
}

fn builder() -> Result<PrometheusBuilder> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(REQUEST_DURATION_SECONDS.to_owned()),
            LATENCY_BUCKETS,
        )
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), DURATION_BUCKETS)
        })
        .map_err(|e| Error::Metrics(e.to_string()))
}

/// The recorder is process-wide and never uninstalled, so its upkeep lives as long as the
/// process: a plain thread that holds nothing to release, runs without a Tokio runtime, and
/// needs no shutdown.
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("rustforge-metrics-upkeep".to_owned())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_PERIOD);
                handle.run_upkeep();
            }
        });
    if let Err(e) = spawned {
        // Rendering also drains the samples; only an unscraped process grows.
        tracing::warn!(error = %e, "metrics upkeep thread not started");
    }
}

impl Metrics {
    /// The metrics recorded so far, in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut text = self.handle.render();
        series::render(&mut text);
        text
    }

    /// A `200` response carrying [`render`](Self::render)'s text with [`CONTENT_TYPE`].
    pub fn response(&self) -> Response {
        (
            [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
            self.render(),
        )
            .into_response()
    }

    /// A router serving `GET /metrics` ([`PATH`]); merge it into the application's router
    /// before [`crate::middleware::stack`] wraps it.
    pub fn router<S>(&self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let metrics = self.clone();
        Router::new().route(
            PATH,
            get(move || {
                let metrics = metrics.clone();
                async move { metrics.response() }
            }),
        )
    }

    /// The underlying exporter handle, for what this type does not cover. Its own rendering
    /// lacks the HTTP series, which [`render`](Self::render) adds.
    pub fn prometheus(&self) -> &PrometheusHandle {
        &self.handle
    }
}

/// Handler answering the exposition text, for applications whose state holds a [`Metrics`]
/// (`Metrics: FromRef<AppState>`) and that mount it on a path of their choice.
pub async fn render(State(metrics): State<Metrics>) -> Response {
    metrics.response()
}

/// Middleware recording `http_requests_total` and `http_request_duration_seconds` for every
/// request, labelled with the method, the matched route template (or [`UNMATCHED_ROUTE`]) and
/// the response status.
///
/// Apply it with `Router::layer` after the routes (see [Mounting](self#mounting));
/// [`crate::middleware::stack`] already does. The duration runs until the response head is
/// ready, not until its body has been sent; a request whose client disconnects before then is
/// not recorded.
pub async fn middleware(req: Request, next: Next) -> Response {
    let measured = Measured::start(&req, Instant::now());
    let response = next.run(req).await;
    measured.finish(&response, Instant::now());
    response
}

/// A request being measured: [`start`](Self::start) before it goes on, [`finish`](Self::finish)
/// with its response. The pieces of [`middleware`], for the stack that runs several layers'
/// work in one future.
pub(crate) struct Measured {
    started: Instant,
    method: &'static str,
    route: Option<MatchedPath>,
}

impl Measured {
    /// `req`, received at `started`.
    pub(crate) fn start(req: &Request, started: Instant) -> Self {
        Self {
            started,
            method: method_name(req.method()),
            route: req.extensions().get::<MatchedPath>().cloned(),
        }
    }

    /// Counts the request with `response`'s status, finished at `now`, and records its
    /// duration.
    pub(crate) fn finish(self, response: &Response, now: Instant) {
        let elapsed = now.saturating_duration_since(self.started);
        record(self.method, self.route, response.status().as_u16(), elapsed);
    }
}

/// Set by [`install`]: from then on the HTTP series are kept by [`series`] and rendered with
/// the recorder's metrics. Before, they go to whatever recorder the `metrics` crate has (none
/// records nothing).
static RECORDING: AtomicBool = AtomicBool::new(false);

/// The `route` label of a request matched to `route`.
fn name(route: &Option<MatchedPath>) -> &str {
    route.as_ref().map_or(UNMATCHED_ROUTE, MatchedPath::as_str)
}

/// Counts one request of `(method, route, status)` and records its duration.
fn record(method: &'static str, route: Option<MatchedPath>, status: u16, elapsed: Duration) {
    if RECORDING.load(Ordering::Acquire) {
        return series::observe(method, route, status, elapsed);
    }
    let labels = [
        Label::new("method", SharedString::const_str(method)),
        Label::new("route", SharedString::from_owned(name(&route).to_owned())),
        Label::new("status", SharedString::from_owned(status.to_string())),
    ];
    ::metrics::histogram!(REQUEST_DURATION_SECONDS, labels.iter()).record(elapsed);
    ::metrics::counter!(REQUESTS_TOTAL, labels.iter()).increment(1);
}

/// Standard methods by name; any other (extension) method as `OTHER`, so clients cannot grow
/// the label's values.
fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_methods_share_one_label() {
        let custom = Method::from_bytes(b"PURGE").expect("method");
        assert_eq!(method_name(&custom), "OTHER");
        assert_eq!(method_name(&Method::PATCH), "PATCH");
    }

    #[test]
    fn bucket_bounds_increase() {
        for buckets in [LATENCY_BUCKETS, DURATION_BUCKETS] {
            assert!(buckets.windows(2).all(|w| w[0] < w[1]), "{buckets:?}");
        }
        assert!(builder().is_ok());
    }
}
