//! RFC 9457 problem details: errors as `application/problem+json` for clients that ask for them.
//!
//! A request whose `Accept` header prefers `application/problem+json` to `application/json`
//! (by q-value; see [`negotiate`]) gets every error response as
//!
//! ```json
//! {"type": "about:blank", "title": "Not Found", "status": 404,
//!  "detail": "No such job", "instance": "/v1/jobs/7",
//!  "code": "RFA_JOB_NOT_FOUND", "request_id": "…"}
//! ```
//!
//! with `Content-Type: application/problem+json`. `type` is `about:blank`, so `title` is the
//! status's reason phrase (RFC 9457 §4.2.1); the application's stable code travels in the `code`
//! extension member, field errors in `errors` and the request id in `request_id`. `instance` is
//! the request's path (without the query string, which may hold secrets). Any other `Accept`, or
//! none, keeps the framework's JSON error body unchanged. Headers an error carries
//! (`Retry-After`, `RateLimit`, `x-request-id`, `Content-Language`) are sent in both forms, and
//! every error response that passes the stack gets `Vary: Accept`.
//!
//! # Design
//!
//! [`middleware`] (in [`crate::middleware::stack`], just inside the request id) decides the format
//! once per request and, when the client prefers problem details, runs the rest of the request
//! inside a task-local that holds the request's path. [`AppError`]'s `IntoResponse` reads it and
//! renders the problem document directly. Every error the framework produces is an `AppError`
//! rendered inside that scope: handlers' errors, `ValidatedJson` rejections, the timeout, the panic
//! catcher, and — through [`crate::json_errors`], which turns the router's 404/405, axum's
//! extractor rejections and the body limit's 413 into `AppError`s — everything else. So one
//! decision covers them all, without buffering and re-parsing error bodies on the way out (as a
//! rewriting layer would), and without guessing whether a JSON body is the framework's.
//!
//! A response a handler builds itself with a JSON body (`(StatusCode, Json(..))`) is left alone,
//! as it is in JSON mode. An `AppError` turned into a response outside the stack, or in a task
//! spawned off the request, renders as JSON.
//!
//! ```
//! use axum::{Router, body::Body, http::{Request, StatusCode}, routing::get};
//! use core_web::{AppError, ApiResult, config::HttpConfig};
//! use tower::ServiceExt;
//!
//! async fn job() -> ApiResult<()> {
//!     Err(AppError::coded(StatusCode::NOT_FOUND, "RFA_JOB_NOT_FOUND", "No such job"))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let app = core_web::middleware::stack(
//!     Router::new().route("/v1/jobs/{id}", get(job)),
//!     &HttpConfig::default(),
//! );
//! let request = Request::get("/v1/jobs/7")
//!     .header("accept", "application/problem+json")
//!     .body(Body::empty())
//!     .unwrap();
//! let response = app.oneshot(request).await.unwrap();
//! assert_eq!(response.headers()["content-type"], "application/problem+json");
//! # }
//! ```

use std::future::Future;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::future::Either;
use serde::{Deserialize, Serialize};
use tokio::task::futures::TaskLocalFuture;

use crate::error::{AppError, FieldErrors};

/// The media type of problem details.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// How error responses are rendered for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorFormat {
    /// The framework's JSON body, `{"message", "error_code", "errors"?, "request_id"}`.
    Json,
    /// RFC 9457 problem details, `application/problem+json`.
    Problem,
}

/// Picks the error format for an `Accept` header value.
///
/// Problem details win only when `application/problem+json` gets a higher q-value than
/// `application/json`, each taking the q of the most specific range that matches it (exact type,
/// then `application/*`, then `*/*`). A tie, a missing header or one naming neither keeps JSON,
/// the framework's default.
///
/// ```
/// use core_web::problem::{ErrorFormat, negotiate};
///
/// assert_eq!(negotiate(Some("application/problem+json")), ErrorFormat::Problem);
/// assert_eq!(negotiate(Some("application/problem+json;q=0.5, application/json")), ErrorFormat::Json);
/// assert_eq!(negotiate(Some("*/*")), ErrorFormat::Json);
/// assert_eq!(negotiate(None), ErrorFormat::Json);
/// ```
pub fn negotiate(accept: Option<&str>) -> ErrorFormat {
    let Some(accept) = accept else {
        return ErrorFormat::Json;
    };
    let problem = quality(accept, "application", "problem+json");
    let json = quality(accept, "application", "json");
    if problem > 0.0 && problem > json {
        ErrorFormat::Problem
    } else {
        ErrorFormat::Json
    }
}

/// The q-value `accept` gives `type_/subtype`: that of its most specific matching range, 0 when
/// none matches.
fn quality(accept: &str, type_: &str, subtype: &str) -> f32 {
    let mut best: Option<(u8, f32)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim();
        let Some((t, s)) = media.split_once('/') else {
            continue;
        };
        let (t, s) = (t.trim(), s.trim());
        let specificity = if t.eq_ignore_ascii_case(type_) && s.eq_ignore_ascii_case(subtype) {
            3
        } else if t.eq_ignore_ascii_case(type_) && s == "*" {
            2
        } else if t == "*" && s == "*" {
            1
        } else {
            continue;
        };
        let mut q = 1.0_f32;
        for param in parts {
            if let Some((k, v)) = param.split_once('=')
                && k.trim().eq_ignore_ascii_case("q")
            {
                // A malformed q makes the range unusable rather than preferred.
                q = v
                    .trim()
                    .parse::<f32>()
                    .ok()
                    .filter(|q| (0.0..=1.0).contains(q))
                    .unwrap_or(0.0);
            }
        }
        if best.is_none_or(|(sp, _)| specificity > sp) {
            best = Some((specificity, q));
        }
    }
    best.map_or(0.0, |(_, q)| q)
}

tokio::task_local! {
    /// The request path, set while the current request prefers problem details.
    static INSTANCE: String;
}

/// The current request's path when it prefers problem details (read by `AppError`).
pub(crate) fn current_instance() -> Option<String> {
    INSTANCE.try_with(Clone::clone).ok()
}

/// An RFC 9457 problem details document, as the framework sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProblemDetails {
    /// The problem type URI; `about:blank`.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// The status's reason phrase (`Not Found`).
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// The error's message for the client, in the request's locale.
    pub detail: String,
    /// The request path, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Extension: the machine-readable `error_code` (`RFA_JOB_NOT_FOUND`).
    pub code: String,
    /// Extension: field errors, present for validation failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<FieldErrors>,
    /// Extension: the request id (also in the `x-request-id` header).
    pub request_id: Option<String>,
}

impl ProblemDetails {
    /// The problem document for `error`, with `instance` as the request path.
    pub fn from_error(error: &AppError, instance: Option<String>) -> Self {
        let status = error.status();
        let body = error.body();
        Self {
            type_uri: "about:blank".to_owned(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: body.message,
            instance,
            code: body.error_code,
            errors: body.errors,
            request_id: body.request_id,
        }
    }
}

/// Renders `error` as problem details (without the headers `AppError::into_response` adds).
pub(crate) fn render(error: &AppError, instance: Option<String>) -> Response {
    let problem = ProblemDetails::from_error(error, instance);
    let body = match serde_json::to_vec(&problem) {
        Ok(bytes) => bytes,
        Err(err) => {
            // Unreachable with string maps, but an error response must never panic.
            tracing::error!(error = %err, "problem details could not be serialized");
            Vec::from(&b"{}"[..])
        }
    };
    let mut response = (error.status(), Body::from(body)).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

/// Middleware: negotiates the error format; when the client prefers problem details, the rest of
/// the request runs where every `AppError` renders as one. Adds `Vary: Accept` to error
/// responses.
pub async fn middleware(req: Request, next: Next) -> Response {
    let mut format = Negotiated::negotiate(&req);
    let mut response = format.scope(next.run(req)).await;
    Negotiated::finish(&mut response);
    response
}

/// A request's error format: [`negotiate`](Self::negotiate) before the request goes on,
/// [`scope`](Self::scope) around its handling, [`finish`](Self::finish) on the response. The
/// pieces of [`middleware`], for the stack that runs several layers' work in one future.
pub(crate) struct Negotiated {
    /// The request path, when the client prefers problem details.
    instance: Option<String>,
}

impl Negotiated {
    /// The format `req`'s `Accept` prefers.
    pub(crate) fn negotiate(req: &Request) -> Self {
        // One `Accept` line (or none) is read in place; several are joined as one list.
        let mut values = req
            .headers()
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok());
        let format = match (values.next(), values.next()) {
            (None, _) => negotiate(None),
            (Some(only), None) => negotiate((!only.is_empty()).then_some(only)),
            (Some(first), Some(second)) => {
                let mut accept = format!("{first},{second}");
                for value in values {
                    accept.push(',');
                    accept.push_str(value);
                }
                negotiate((!accept.is_empty()).then_some(accept.as_str()))
            }
        };
        let instance = match format {
            ErrorFormat::Problem => Some(req.uri().path().to_owned()),
            ErrorFormat::Json => None,
        };
        Self { instance }
    }

    /// Runs `fut` where every `AppError` renders as problem details, when the client prefers
    /// them.
    pub(crate) fn scope<F: Future>(&mut self, fut: F) -> Either<TaskLocalFuture<String, F>, F> {
        match self.instance.take() {
            Some(path) => Either::Left(INSTANCE.scope(path, fut)),
            None => Either::Right(fut),
        }
    }

    /// Runs `f` where every `AppError` renders as problem details, when the client prefers
    /// them: the synchronous [`scope`](Self::scope).
    pub(crate) fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.instance {
            Some(path) => INSTANCE.sync_scope(path.clone(), f),
            None => f(),
        }
    }

    /// Adds `Vary: Accept` to an error response: its body depends on it.
    pub(crate) fn finish(response: &mut Response) {
        let status = response.status();
        if status.is_client_error() || status.is_server_error() {
            response
                .headers_mut()
                .append(header::VARY, HeaderValue::from_static("accept"));
        }
    }
}

/// Runs `f` as if inside a request that prefers problem details for `instance`; for tests and
/// code that renders errors outside the middleware stack.
pub fn scope<R>(instance: impl Into<String>, f: impl FnOnce() -> R) -> R {
    INSTANCE.sync_scope(instance.into(), f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_values_decide() {
        use ErrorFormat::{Json, Problem};
        for (accept, expected) in [
            ("application/problem+json", Problem),
            ("application/problem+json;q=0.5, application/json", Json),
            ("application/json;q=0.5, application/problem+json", Problem),
            ("*/*", Json),
            ("application/json", Json),
            ("application/*", Json),
            ("application/problem+json, */*;q=0.1", Problem),
            ("application/problem+json;q=0", Json),
            ("application/problem+json;q=garbage", Json),
            (
                "APPLICATION/PROBLEM+JSON ; Q=0.9, application/json;q=0.8",
                Problem,
            ),
            ("text/html", Json),
            ("", Json),
            (",,;;/", Json),
        ] {
            assert_eq!(negotiate(Some(accept)), expected, "{accept:?}");
        }
    }
}
