//! `GET /storage/{*key}`: serves stored objects, so the storage driver's `url()` links work.
//!
//! The body is streamed from whichever driver is configured; keys are validated by the driver
//! (traversal, absolute paths, NUL… are a 400), a missing object is a 404, both in the JSON error
//! shape.

use std::path::Path as FsPath;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use core_i18n::t_args;
use core_web::AppError;

use crate::AppState;

/// Streams the object at `key`.
pub async fn get(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<Response, AppError> {
    if let Err(e) = core_db::infra::storage::validate_key(&key) {
        return Err(AppError::BadRequest(e.to_string()));
    }
    let Some(stream) = state.storage.get_stream(&key).await? else {
        return Err(AppError::NotFound(t_args(
            "files.not_found",
            &[("key", &key)],
        )));
    };
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(core_docs::content_type(FsPath::new(&key))),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}
