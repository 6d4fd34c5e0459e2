//! [`ApiResponse`]: the success envelope, `{"data": …, "message"?: …, "meta"?: …}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::AppError;

/// What a handler returns: a success envelope or an [`AppError`].
pub type ApiResult<T> = Result<ApiResponse<T>, AppError>;

/// A successful JSON response: `{"data": …, "message"?: …, "meta"?: …}` with a status (200 unless
/// built with [`ApiResponse::created`] or [`ApiResponse::with_status`]).
///
/// ```
/// use core_web::ApiResponse;
///
/// let ok = ApiResponse::success(vec![1, 2, 3], "Loaded");
/// let created = ApiResponse::created(42, "");          // 201, no "message" key
/// # let _ = (ok, created);
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct ApiResponse<T> {
    /// The payload.
    pub data: T,
    /// Optional human-readable message; omitted from the JSON when empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Optional metadata (pagination and the like).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<serde_json::Value>,
    /// The HTTP status; not part of the body.
    #[serde(skip)]
    pub status: StatusCode,
}

impl<T> ApiResponse<T> {
    /// 200 OK. An empty `message` is left out of the body.
    pub fn success(data: T, message: &str) -> Self {
        Self::with_status(StatusCode::OK, data, message)
    }

    /// 201 Created.
    pub fn created(data: T, message: &str) -> Self {
        Self::with_status(StatusCode::CREATED, data, message)
    }

    /// Any status.
    pub fn with_status(status: StatusCode, data: T, message: &str) -> Self {
        Self {
            data,
            message: (!message.is_empty()).then(|| message.to_owned()),
            meta: None,
            status,
        }
    }

    /// Attaches metadata such as pagination.
    #[must_use]
    pub fn with_meta(mut self, meta: impl Serialize) -> Self {
        self.meta = serde_json::to_value(meta).ok();
        self
    }
}

impl<T: Serialize> IntoResponse for ApiResponse<T> {
    fn into_response(self) -> Response {
        (self.status, Json(&self)).into_response()
    }
}
