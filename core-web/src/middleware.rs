//! The middleware stack, applied in one call with [`stack`].
//!
//! From the outside in: compression → CORS → HTTP metrics ([`crate::metrics::middleware`]) →
//! request id and trace span → error format negotiation → locale → JSON error bodies → timeout →
//! panic → body limit → handler. Every error any of them produces leaves as the framework's JSON
//! error body, or as RFC 9457 problem details when the request's `Accept` prefers them (see
//! [`crate::problem`]). A CORS preflight is answered by the CORS layer before the metrics, so it
//! is not counted.
//!
//! The layers from the metrics to the panic catcher are one service that runs them in one
//! future: stacked as separate `from_fn` layers, each would clone everything inside it and box a
//! future on every request. The functions ([`crate::metrics::middleware`],
//! [`crate::request_id::middleware`], [`crate::json_errors::middleware`], …) remain for an
//! application that composes its own stack.
//!
//! The stack is added with `Router::layer`, so it wraps each route and the fallback and runs
//! after routing: the metrics see the matched route's template, and every status the layers
//! inside produce (404/405 from the router, 408, 413, 500 from a panic). Routes added to the
//! router after `stack` are not wrapped.

use std::any::Any;
use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use tower::{Layer, Service, ServiceBuilder, ServiceExt as _};
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, Any as CorsAny, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;

use crate::config::HttpConfig;
use crate::error::AppError;
use crate::json_errors::{self, BodyLimit};
use crate::{messages, metrics, problem, request_id};

/// Wraps `router` in the framework's middleware stack, configured by `config`.
///
/// ```
/// use axum::{Router, routing::get};
/// use core_web::config::HttpConfig;
///
/// let app: Router = core_web::middleware::stack(
///     Router::new().route("/health", get(|| async { "ok" })),
///     &HttpConfig::default(),
/// );
/// # let _ = app;
/// ```
pub fn stack<S>(router: Router<S>, config: &HttpConfig) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    messages::ensure_loaded();
    let limit = config.body_limit;
    let layers = ServiceBuilder::new()
        .layer(CompressionLayer::new())
        .option_layer(cors(&config.cors_allowed_origins))
        .layer(FrameworkLayer {
            body_limit: limit,
            request_timeout: config.request_timeout,
        })
        .layer(DefaultBodyLimit::max(limit))
        .layer(RequestBodyLimitLayer::new(limit));
    router.layer(layers)
}

/// The framework's own layers as one service: metrics, request id and span, error format,
/// locale, JSON errors, timeout and panic catching run in one future.
///
/// Each `axum::middleware::from_fn` layer costs, on every request, a clone of the whole service
/// inside it (down to the route's boxed handler and the application's state), a boxed
/// `Next` and a boxed future; one service for all of them clones its inner service once.
#[derive(Debug, Clone, Copy)]
struct FrameworkLayer {
    body_limit: usize,
    request_timeout: Duration,
}

impl<S> Layer<S> for FrameworkLayer {
    type Service = Framework<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Framework {
            inner,
            body_limit: self.body_limit,
            request_timeout: self.request_timeout,
        }
    }
}

/// The service of [`FrameworkLayer`].
#[derive(Debug, Clone)]
struct Framework<S> {
    inner: S,
    body_limit: usize,
    request_timeout: Duration,
}

impl<S, B> Service<Request> for Framework<S>
where
    S: Service<Request, Response = Response<B>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        // The clone is left here; the one that was polled ready serves this request.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let (limit, request_timeout) = (self.body_limit, self.request_timeout);
        Box::pin(async move {
            let response = metrics::measure(req, |req| {
                request_id::with_id(req, |req| {
                    problem::with_format(req, |req| {
                        core_i18n::layer::with_locale(req, move |mut req: Request| {
                            req.extensions_mut().insert(BodyLimit(limit));
                            json_errors::with_json_errors(req, move |req| {
                                // The timeout runs outside the panic catcher (a panic is caught
                                // either way, and the timeout's 408 is an `AppError` rendered
                                // inside the JSON error scope).
                                timeout(request_timeout, catch_panic(inner, req))
                            })
                        })
                    })
                })
            })
            .await;
            Ok(response)
        })
    }
}

/// Runs `inner` on `req`, answering a panic (in its `call` or in its future) with a JSON 500.
async fn catch_panic<S, B>(inner: S, req: Request) -> Response
where
    S: Service<Request, Response = Response<B>, Error = Infallible>,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let called = std::panic::catch_unwind(AssertUnwindSafe(|| inner.oneshot(req)));
    let outcome = match called {
        Ok(future) => AssertUnwindSafe(future).catch_unwind().await,
        Err(panic) => Err(panic),
    };
    match outcome {
        Ok(Ok(response)) => response.map(Body::new),
        Ok(Err(never)) => match never {},
        Err(panic) => panic_response(panic),
    }
}

fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let base = CorsLayer::new()
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers(CorsAny)
        .expose_headers([request_id::HEADER])
        .max_age(Duration::from_secs(3600));
    if origins.iter().any(|o| o == "*") {
        return Some(base.allow_origin(CorsAny));
    }
    let list: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    Some(base.allow_origin(AllowOrigin::list(list)))
}

async fn timeout(limit: Duration, response: impl Future<Output = Response>) -> Response {
    match tokio::time::timeout(limit, response).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(timeout_ms = limit.as_millis() as u64, "request timed out");
            let seconds = format_seconds(limit);
            AppError::Timeout(messages::text_args(
                "errors.timeout",
                &[("seconds", &seconds)],
            ))
            .into_response()
        }
    }
}

fn format_seconds(d: Duration) -> String {
    let s = format!("{:.3}", d.as_secs_f64());
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn panic_response(payload: Box<dyn Any + Send + 'static>) -> Response {
    let detail = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    };
    tracing::error!(panic = %detail, "handler panicked");
    let mut response = AppError::Status {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        error_code: "INTERNAL_ERROR".to_owned(),
        message: messages::text("errors.panic"),
    }
    .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_printed_without_trailing_zeros() {
        assert_eq!(format_seconds(Duration::from_millis(100)), "0.1");
        assert_eq!(format_seconds(Duration::from_secs(30)), "30");
        assert_eq!(format_seconds(Duration::from_millis(1500)), "1.5");
    }
}
