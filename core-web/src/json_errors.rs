//! The safety net that makes every error response JSON.
//!
//! Handlers that return [`AppError`] already answer in the framework's shape. Everything else that
//! can answer with an error — axum's extractor rejections (`Path`, `Query`, `Json`, body limits),
//! the router's 404 and 405, a handler returning `(StatusCode, &str)` — is rewritten here into the
//! same `{"message", "error_code", "errors"?, "request_id"}` body, keeping the status and headers
//! such as `Allow`.
//!
//! An error page a handler renders on purpose as HTML (`text/html`, such as a sign-in form
//! shown again with its error) is left as it is: it was written for a browser.

use std::future::Future;

use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::uri::PathAndQuery;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::future::{BoxFuture, Either};
use tokio::task::futures::TaskLocalFuture;

use crate::error::AppError;
use crate::messages;

/// The configured body limit, stored in request extensions by the middleware stack so errors can
/// name it.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

tokio::task_local! {
    static LIMIT: usize;
}

/// The 413 message, naming the limit when the stack configured one.
pub(crate) fn payload_too_large_message() -> String {
    match LIMIT.try_with(|l| *l) {
        Ok(limit) => messages::text_args("errors.payload_too_large", &[("limit", &limit)]),
        Err(_) => messages::text("errors.payload_too_large").replace(" :limit", ""),
    }
}

/// Middleware: rewrites non-JSON error responses into the framework's JSON error body.
pub async fn middleware(req: Request, next: Next) -> Response {
    let limit = req.extensions().get::<BodyLimit>().map(|l| l.0);
    let rewrite = Rewrite::new(&req, limit);
    let response = limit_scope(limit, next.run(req)).await;
    rewrite.finish(response).await
}

/// What rewriting a request's error response needs: [`new`](Self::new) before the request goes
/// on, [`limit_scope`] around its handling, [`finish`](Self::finish) on the response. The
/// pieces of [`middleware`], for the stack that runs several layers' work in one future.
pub(crate) struct Rewrite {
    method: Method,
    /// The request's path (and query), for a 404's message.
    path: Option<PathAndQuery>,
    limit: Option<usize>,
}

impl Rewrite {
    /// Keeps `req`'s method and path for the error message (cloning a parsed path shares its
    /// bytes), and the body `limit` a 413's message names.
    pub(crate) fn new(req: &Request, limit: Option<usize>) -> Self {
        Self {
            method: req.method().clone(),
            path: req.uri().path_and_query().cloned(),
            limit,
        }
    }

    /// [`finish`](Self::finish) without a future when `response` is left as it is (the
    /// common case: a success, or an error already JSON); otherwise the rewrite, which reads
    /// the body first.
    pub(crate) fn finish_now(
        self,
        response: Response,
    ) -> Result<Response, BoxFuture<'static, Response>> {
        if is_final(&response) {
            Ok(response)
        } else {
            Err(Box::pin(self.finish(response)))
        }
    }

    /// `response`, or the framework's JSON error for its status when it is an error that is
    /// neither JSON nor an HTML page.
    pub(crate) async fn finish(self, response: Response) -> Response {
        if is_final(&response) {
            return response;
        }
        let status = response.status();
        let path = self.path.as_ref().map_or("", PathAndQuery::path);
        let (parts, body) = response.into_parts();
        let detail = read_detail(body).await;
        let error = match self.limit {
            Some(limit) => {
                LIMIT.sync_scope(limit, || from_status(status, detail, &self.method, path))
            }
            None => from_status(status, detail, &self.method, path),
        };
        let mut rewritten = error.into_response();
        for (name, value) in parts.headers.iter() {
            if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                rewritten.headers_mut().insert(name.clone(), value.clone());
            }
        }
        rewritten
    }
}

/// Runs `fut` where a 413's message can name `limit`, when there is one.
fn limit_scope<F: Future>(limit: Option<usize>, fut: F) -> Either<TaskLocalFuture<usize, F>, F> {
    match limit {
        Some(limit) => Either::Left(LIMIT.scope(limit, fut)),
        None => Either::Right(fut),
    }
}

/// Runs `f` where a 413's message can name `limit`, when there is one: the synchronous
/// [`limit_scope`].
pub(crate) fn in_limit_scope<R>(limit: Option<usize>, f: impl FnOnce() -> R) -> R {
    match limit {
        Some(limit) => LIMIT.sync_scope(limit, f),
        None => f(),
    }
}

/// Whether `response` is left as it is: not an error, or an error already JSON or an HTML page.
fn is_final(response: &Response) -> bool {
    let status = response.status();
    !(status.is_client_error() || status.is_server_error())
        || is_json(response.headers())
        || is_html(response.headers())
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            let mime = v.split(';').next().unwrap_or("").trim();
            mime.eq_ignore_ascii_case("application/json") || mime.ends_with("+json")
        })
        .unwrap_or(false)
}

fn is_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("text/html"))
}

/// The original body's text, when it is short enough to be a message.
async fn read_detail(body: Body) -> String {
    match to_bytes(body, 2048).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
        Err(_) => String::new(),
    }
}

/// The framework error for a bare status with an optional plain-text detail.
pub fn from_status(status: StatusCode, detail: String, method: &Method, path: &str) -> AppError {
    let or = |key: &str| {
        if detail.is_empty() {
            messages::text(key)
        } else {
            detail.clone()
        }
    };
    match status {
        StatusCode::BAD_REQUEST => AppError::BadRequest(or("errors.bad_request")),
        StatusCode::UNAUTHORIZED => AppError::Unauthorized(or("errors.unauthorized")),
        StatusCode::FORBIDDEN => AppError::Forbidden(or("errors.forbidden")),
        StatusCode::NOT_FOUND => AppError::NotFound(if detail.is_empty() {
            messages::text_args(
                "errors.route_not_found",
                &[("method", &method), ("path", &path)],
            )
        } else {
            detail
        }),
        StatusCode::METHOD_NOT_ALLOWED => AppError::Status {
            status,
            error_code: "METHOD_NOT_ALLOWED".to_owned(),
            message: messages::text("errors.method_not_allowed"),
        },
        StatusCode::REQUEST_TIMEOUT => AppError::Timeout(or("errors.timeout")),
        StatusCode::CONFLICT => AppError::Conflict(or("errors.conflict")),
        StatusCode::PAYLOAD_TOO_LARGE => AppError::PayloadTooLarge(payload_too_large_message()),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => AppError::Status {
            status,
            error_code: "UNSUPPORTED_MEDIA_TYPE".to_owned(),
            message: or("errors.unsupported_media_type"),
        },
        StatusCode::UNPROCESSABLE_ENTITY => AppError::UnprocessableEntity(or("errors.validation")),
        StatusCode::TOO_MANY_REQUESTS => AppError::TooManyRequests {
            message: or("errors.rate_limited"),
            retry_after: None,
        },
        StatusCode::SERVICE_UNAVAILABLE => {
            AppError::ServiceUnavailable(or("errors.service_unavailable"))
        }
        s if s.is_server_error() => AppError::Status {
            status: s,
            error_code: "INTERNAL_ERROR".to_owned(),
            message: messages::text("errors.internal"),
        },
        s => AppError::Status {
            status: s,
            error_code: s
                .canonical_reason()
                .unwrap_or("HTTP_ERROR")
                .to_ascii_uppercase()
                .replace([' ', '-'], "_"),
            message: or("errors.bad_request"),
        },
    }
}
