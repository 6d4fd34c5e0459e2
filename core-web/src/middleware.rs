//! The middleware stack, applied in one call with [`stack`].
//!
//! From the outside in: HTTP metrics ([`crate::metrics::middleware`]) → compression → CORS → request id and trace span → error format
//! negotiation → locale → JSON error bodies → timeout → panic → body limit → handler. Every error
//! any of them produces leaves as the framework's JSON error body, or as RFC 9457 problem details
//! when the request's `Accept` prefers them (see [`crate::problem`]).
//!
//! The stack is added with `Router::layer`, so it wraps each route and the fallback and runs
//! after routing: the metrics see the matched route's template, and every status the layers
//! inside produce (404/405 from the router, 408, 413, 500 from a panic). Routes added to the
//! router after `stack` are not wrapped.

use std::any::Any;
use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{Next, from_fn};
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
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
    let request_timeout = config.request_timeout;
    let layers = ServiceBuilder::new()
        .layer(from_fn(metrics::middleware))
        .layer(CompressionLayer::new())
        .option_layer(cors(&config.cors_allowed_origins))
        // Adjacent middleware run as one future: each `from_fn` layer costs a boxed future and
        // a clone of the service inside it on every request.
        .layer(from_fn(|req: Request, next: Next| {
            request_id::with_id(req, |req| problem::with_format(req, |req| next.run(req)))
        }))
        .layer(core_i18n::LocaleLayer::new())
        // The timeout runs outside the panic catcher (a panic is caught either way, and the
        // timeout's 408 is an `AppError` rendered inside the JSON error scope as before).
        .layer(from_fn(move |mut req: Request, next: Next| async move {
            req.extensions_mut().insert(BodyLimit(limit));
            json_errors::with_json_errors(req, |req| timeout(request_timeout, next.run(req))).await
        }))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(DefaultBodyLimit::max(limit))
        .layer(RequestBodyLimitLayer::new(limit));
    router.layer(layers)
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
