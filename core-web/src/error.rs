//! [`AppError`]: every error a handler or the framework returns, rendered as one JSON shape.
//!
//! ```json
//! {"message": "Article not found", "error_code": "NOT_FOUND", "request_id": "…"}
//! {"message": "Validation failed", "error_code": "VALIDATION_ERROR",
//!  "errors": {"items[0].name": ["…"]}, "request_id": "…"}
//! ```
//!
//! A request that prefers `application/problem+json` gets the same error as RFC 9457 problem
//! details instead (see [`crate::problem`]).
//!
//! Applications give errors their own stable codes with [`AppError::coded`], and any error can
//! carry response headers with [`AppError::with_header`]:
//!
//! ```
//! use axum::http::{StatusCode, header};
//! use core_web::AppError;
//!
//! let err = AppError::coded(StatusCode::CONFLICT, "RFA_JOB_CONFLICT", "The job is being submitted")
//!     .with_header(header::RETRY_AFTER, "1");
//! assert_eq!(err.status(), StatusCode::CONFLICT);
//! assert_eq!(err.error_code(), "RFA_JOB_CONFLICT");
//! assert_eq!(err.headers().expect("headers")[header::RETRY_AFTER], "1");
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use axum::Json;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use core_db::UploadError;
use serde::{Deserialize, Serialize};

use crate::messages;
use crate::request_id;

/// Field path → messages, as carried by [`AppError::Validation`]. Nested fields are dotted and
/// list items indexed: `items[0].name`.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

/// An error that leaves a handler as a JSON response.
///
/// Any error type converts into [`AppError::Internal`] with `?`, so handlers can propagate database
/// or I/O errors directly; the details are logged with the request id and hidden from the client in
/// release builds.
///
/// ```
/// use core_web::{AppError, ApiResult, ApiResponse};
///
/// async fn find(id: u64) -> ApiResult<String> {
///     if id == 0 {
///         return Err(AppError::NotFound(format!("No article {id}")));
///     }
///     let text = std::fs::read_to_string("/definitely/missing")?; // io::Error → Internal
///     Ok(ApiResponse::success(text, ""))
/// }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum AppError {
    /// 500 `INTERNAL_ERROR`. The error is logged; clients see a generic message in release builds.
    Internal(anyhow::Error),
    /// 404 `NOT_FOUND`.
    NotFound(String),
    /// 400 `BAD_REQUEST`.
    BadRequest(String),
    /// 400 `BAD_REQUEST` with messages per field: input that is well-formed but of the wrong
    /// shape, such as a string where a JSON body needs a number.
    InvalidInput {
        /// Summary message.
        message: String,
        /// Field path → messages.
        errors: FieldErrors,
    },
    /// 401 `UNAUTHORIZED`.
    Unauthorized(String),
    /// 403 `FORBIDDEN`.
    Forbidden(String),
    /// 409 `CONFLICT`.
    Conflict(String),
    /// 408 `REQUEST_TIMEOUT`: the request took longer than the configured timeout.
    Timeout(String),
    /// 413 `PAYLOAD_TOO_LARGE`.
    PayloadTooLarge(String),
    /// 422 `VALIDATION_ERROR`, without field details.
    UnprocessableEntity(String),
    /// 422 `VALIDATION_ERROR` with messages per field.
    Validation {
        /// Summary message.
        message: String,
        /// Field path → messages.
        errors: FieldErrors,
    },
    /// 429 `RATE_LIMITED`, with a `Retry-After` header (whole seconds, rounded up) when given.
    TooManyRequests {
        /// Message for the client.
        message: String,
        /// How long the client should wait.
        retry_after: Option<Duration>,
    },
    /// 503 `SERVICE_UNAVAILABLE`.
    ServiceUnavailable(String),
    /// Any other status with its own error code, for statuses the variants above do not name
    /// (405 `METHOD_NOT_ALLOWED`, 415 `UNSUPPORTED_MEDIA_TYPE`, …).
    Status {
        /// HTTP status.
        status: StatusCode,
        /// Machine-readable code, `SCREAMING_SNAKE_CASE`.
        error_code: String,
        /// Message for the client.
        message: String,
    },
    /// Another error sent with extra response headers (`Retry-After`, `RateLimit`, …); built by
    /// [`AppError::with_header`] and [`AppError::with_headers`]. Status, code, message and body
    /// are the inner error's.
    WithHeaders {
        /// The error being sent; never itself a `WithHeaders`.
        error: Box<AppError>,
        /// Headers set on the response, replacing any header of the same name the inner error
        /// sets.
        headers: HeaderMap,
    },
}

/// The JSON body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Human-readable message, in the request's locale.
    pub message: String,
    /// Machine-readable code such as `NOT_FOUND`.
    pub error_code: String,
    /// Field errors, present for validation failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<FieldErrors>,
    /// The request id (also in the `x-request-id` header).
    pub request_id: Option<String>,
}

impl AppError {
    /// An error with any status and the application's own stable code: a shortcut for
    /// [`AppError::Status`].
    ///
    /// ```
    /// use axum::http::StatusCode;
    /// use core_web::AppError;
    ///
    /// let err = AppError::coded(StatusCode::NOT_FOUND, "RFA_JOB_NOT_FOUND", "No such job");
    /// assert_eq!(err.body().error_code, "RFA_JOB_NOT_FOUND");
    /// ```
    pub fn coded(
        status: StatusCode,
        error_code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        AppError::Status {
            status,
            error_code: error_code.into(),
            message: message.into(),
        }
    }

    /// This error, sent with one more response header (in JSON and problem+json alike). A header
    /// of the same name set by the error itself (such as the `Retry-After` of
    /// [`AppError::TooManyRequests`]) is replaced; calling it twice with one name sends both
    /// values.
    ///
    /// The name and value are converted like `http::request::Builder::header` does; one that is
    /// not a valid header name or value is left out with a warning in the log, so a bad header
    /// never turns an error response into a panic.
    ///
    /// ```
    /// use axum::http::StatusCode;
    /// use axum::response::IntoResponse;
    /// use core_web::AppError;
    ///
    /// let response = AppError::ServiceUnavailable("Queue is full".into())
    ///     .with_header("retry-after", 30u64)
    ///     .into_response();
    /// assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    /// assert_eq!(response.headers()["retry-after"], "30");
    /// ```
    pub fn with_header<K, V>(self, name: K, value: V) -> Self
    where
        HeaderName: TryFrom<K>,
        HeaderValue: TryFrom<V>,
    {
        let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value))
        else {
            tracing::warn!(
                error_code = self.error_code(),
                "invalid header name or value left out of an error response"
            );
            return self;
        };
        let mut headers = HeaderMap::new();
        headers.append(name, value);
        self.with_headers(headers)
    }

    /// This error, sent with every header of `headers` (see [`AppError::with_header`]).
    pub fn with_headers(self, headers: HeaderMap) -> Self {
        match self {
            AppError::WithHeaders {
                error,
                headers: mut existing,
            } => {
                let mut last = None;
                for (name, value) in headers {
                    // `None` repeats the previous name: the values of one name stay together.
                    if let Some(name) = name {
                        last = Some(name);
                    }
                    if let Some(name) = &last {
                        existing.append(name.clone(), value);
                    }
                }
                AppError::WithHeaders {
                    error,
                    headers: existing,
                }
            }
            other => AppError::WithHeaders {
                error: Box::new(other),
                headers,
            },
        }
    }

    /// The extra headers this error is sent with, if any (see [`AppError::with_header`]).
    pub fn headers(&self) -> Option<&HeaderMap> {
        match self {
            AppError::WithHeaders { headers, .. } => Some(headers),
            _ => None,
        }
    }

    /// The error without its extra headers.
    fn inner(&self) -> &AppError {
        match self {
            AppError::WithHeaders { error, .. } => error.inner(),
            other => other,
        }
    }

    /// 422 with a single field error; a shortcut for [`AppError::Validation`].
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut errors = FieldErrors::new();
        errors.insert(field.into(), vec![message.into()]);
        AppError::Validation {
            message: messages::text("errors.validation"),
            errors,
        }
    }

    /// The HTTP status this error is sent with.
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::BadRequest(_) | AppError::InvalidInput { .. } => StatusCode::BAD_REQUEST,
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            AppError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnprocessableEntity(_) | AppError::Validation { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            AppError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Status { status, .. } => *status,
            AppError::WithHeaders { error, .. } => error.status(),
        }
    }

    /// The machine-readable `error_code`.
    pub fn error_code(&self) -> &str {
        match self {
            AppError::Internal(_) => "INTERNAL_ERROR",
            AppError::NotFound(_) => "NOT_FOUND",
            AppError::BadRequest(_) | AppError::InvalidInput { .. } => "BAD_REQUEST",
            AppError::Unauthorized(_) => "UNAUTHORIZED",
            AppError::Forbidden(_) => "FORBIDDEN",
            AppError::Conflict(_) => "CONFLICT",
            AppError::Timeout(_) => "REQUEST_TIMEOUT",
            AppError::PayloadTooLarge(_) => "PAYLOAD_TOO_LARGE",
            AppError::UnprocessableEntity(_) | AppError::Validation { .. } => "VALIDATION_ERROR",
            AppError::TooManyRequests { .. } => "RATE_LIMITED",
            AppError::ServiceUnavailable(_) => "SERVICE_UNAVAILABLE",
            AppError::Status { error_code, .. } => error_code,
            AppError::WithHeaders { error, .. } => error.error_code(),
        }
    }

    /// The message sent to the client. For [`AppError::Internal`] this is a generic message in
    /// release builds and the error chain in debug builds.
    pub fn client_message(&self) -> String {
        match self {
            AppError::Internal(err) => internal_message(err, cfg!(debug_assertions)),
            AppError::NotFound(m)
            | AppError::BadRequest(m)
            | AppError::Unauthorized(m)
            | AppError::Forbidden(m)
            | AppError::Conflict(m)
            | AppError::Timeout(m)
            | AppError::PayloadTooLarge(m)
            | AppError::UnprocessableEntity(m)
            | AppError::ServiceUnavailable(m)
            | AppError::Validation { message: m, .. }
            | AppError::InvalidInput { message: m, .. }
            | AppError::TooManyRequests { message: m, .. }
            | AppError::Status { message: m, .. } => m.clone(),
            AppError::WithHeaders { error, .. } => error.client_message(),
        }
    }

    /// The JSON body this error renders to, with the current request's id.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            message: self.client_message(),
            error_code: self.error_code().to_owned(),
            errors: match self.inner() {
                AppError::Validation { errors, .. } | AppError::InvalidInput { errors, .. } => {
                    Some(errors.clone())
                }
                _ => None,
            },
            request_id: request_id::current(),
        }
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.inner() {
            AppError::Internal(err) => write!(f, "{}: {err:#}", self.error_code()),
            other => write!(f, "{}: {}", other.error_code(), other.client_message()),
        }
    }
}

/// `?` turns any error into [`AppError::Internal`], except the lower crates' errors that mean a
/// client error: an attachment's [`UploadError`] keeps the status it means (see
/// [`AppError::from_upload`]).
///
/// `AppError` deliberately does not implement `std::error::Error`, which is what lets this blanket
/// conversion coexist with `From<AppError> for AppError`. The same blanket impl is why a
/// separate `From<UploadError>` cannot exist: the upload error is recognised here instead.
impl<E> From<E> for AppError
where
    E: Into<anyhow::Error>,
{
    fn from(err: E) -> Self {
        match err.into().downcast::<UploadError>() {
            Ok(upload) => AppError::from_upload(upload),
            Err(other) => AppError::Internal(other),
        }
    }
}

impl AppError {
    /// The response for a failed attachment upload; `?` on an [`UploadError`] calls it.
    ///
    /// | [`UploadError`] | status | `error_code` |
    /// |---|---|---|
    /// | `MissingFile` | 400 | `BAD_REQUEST` |
    /// | `Multipart` | 400, or 413 past the request body limit | `BAD_REQUEST` / `PAYLOAD_TOO_LARGE` |
    /// | `TooLarge` | 413 | `PAYLOAD_TOO_LARGE` |
    /// | `DisallowedType`, `InvalidImage` | 422, the message under the form field | `VALIDATION_ERROR` |
    /// | `Storage`, `Other` | 500 | `INTERNAL_ERROR` |
    ///
    /// ```
    /// use core_db::UploadError;
    /// use core_web::AppError;
    ///
    /// let err = AppError::from(UploadError::TooLarge { field: "avatar".into(), limit: 1024 });
    /// assert_eq!((err.status().as_u16(), err.error_code()), (413, "PAYLOAD_TOO_LARGE"));
    /// ```
    pub fn from_upload(err: UploadError) -> Self {
        let message = err.to_string();
        match err {
            UploadError::MissingFile { .. } => AppError::BadRequest(message),
            UploadError::Multipart(ref multipart)
                if multipart.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                AppError::PayloadTooLarge(message)
            }
            UploadError::Multipart(_) => AppError::BadRequest(message),
            UploadError::TooLarge { .. } => AppError::PayloadTooLarge(message),
            UploadError::DisallowedType { ref field, .. }
            | UploadError::InvalidImage { ref field, .. } => {
                AppError::field(field.as_str(), message)
            }
            other => AppError::Internal(other.into()),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let AppError::Internal(err) = self.inner() {
            // Logged inside the request span, so the line carries the request id.
            tracing::error!(error = format!("{err:#}"), "internal error");
        } else if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), error = %self, "server error");
        }
        let retry_after = match self.inner() {
            AppError::TooManyRequests {
                retry_after: Some(d),
                ..
            } => {
                let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
                HeaderValue::from_str(&secs.to_string()).ok()
            }
            _ => None,
        };
        let mut response = match crate::problem::current_instance() {
            Some(instance) => crate::problem::render(&self, Some(instance)),
            None => (status, Json(self.body())).into_response(),
        };
        if let Some(value) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        if let AppError::WithHeaders { headers, .. } = self {
            for name in headers.keys() {
                response.headers_mut().remove(name);
            }
            let mut last = None;
            for (name, value) in headers {
                if let Some(name) = name {
                    last = Some(name);
                }
                if let Some(name) = &last {
                    response.headers_mut().append(name.clone(), value);
                }
            }
        }
        response
    }
}

/// `Result` with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of `core-web` outside a request: configuration, start-up and serving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting has a value it does not accept.
    #[error("invalid setting {variable}={value:?}: expected {expected}")]
    InvalidSetting {
        /// The environment variable (or TOML key, in lower case).
        variable: &'static str,
        /// The rejected value.
        value: String,
        /// What the variable accepts.
        expected: &'static str,
    },
    /// A configuration file could not be read or parsed.
    #[error("configuration: {0}")]
    Config(String),
    /// The server could not bind its address.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An I/O error while serving.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// A rate-limit policy was given a name or window it does not accept.
    #[error("invalid rate-limit policy {name:?}: {reason}")]
    InvalidPolicy {
        /// The policy's name.
        name: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The tracing subscriber could not be installed.
    #[error("logging: {0}")]
    Telemetry(String),
    /// The Prometheus recorder could not be installed (another `metrics` recorder already was).
    #[error("metrics: {0}")]
    Metrics(String),
}

/// The client's message for an internal error: the generic text alone, or (in debug builds, for
/// the developer) followed by the error chain. Release builds never send the chain: it may name
/// hosts, queries or values that only the log may see.
fn internal_message(err: &anyhow::Error, detailed: bool) -> String {
    if detailed {
        format!("{}: {err:#}", messages::text("errors.internal"))
    } else {
        messages::text("errors.internal")
    }
}

#[cfg(test)]
mod internal_message_tests {
    use super::*;

    fn secret_error() -> anyhow::Error {
        anyhow::anyhow!("password authentication failed for postgres://app:hunter2@db/prod")
            .context("loading the user")
    }

    #[test]
    fn release_builds_send_only_the_generic_message() {
        let message = internal_message(&secret_error(), false);
        assert_eq!(message, messages::text("errors.internal"));
        assert!(!message.contains("hunter2") && !message.contains("loading the user"));
    }

    #[test]
    fn debug_builds_add_the_error_chain_for_the_developer() {
        let message = internal_message(&secret_error(), true);
        assert!(message.starts_with(&messages::text("errors.internal")));
        assert!(message.contains("loading the user: password authentication failed"));
    }

    #[test]
    fn client_message_follows_the_build_profile() {
        let err = AppError::Internal(secret_error());
        assert_eq!(
            err.client_message(),
            internal_message(&secret_error(), cfg!(debug_assertions))
        );
    }
}
