//! `GET /storage/{*key}`: serves stored objects, so the storage driver's `url()` and
//! `presign_get()` links work.
//!
//! Who may read what:
//!
//! - keys under a public prefix ([`StorageConfig::public_prefixes`](core_db::StorageConfig::public_prefixes), the
//!   `STORAGE_PUBLIC_PREFIXES` setting) are served to anyone, through their plain
//!   [`Storage::url`](core_db::Storage::url) links;
//! - every other key needs a valid presigned link
//!   ([`Storage::presign_get`](core_db::Storage::presign_get)), checked by
//!   [`Storage::verify_signed_url`](core_db::Storage::verify_signed_url); a link
//!   that carries a signature is checked even under a public prefix. A missing, forged, tampered
//!   or expired signature is a 403 in the JSON error shape.
//!
//! How: the local driver's files are streamed. An object of a remote driver (S3) is never
//! proxied: once the request passes the check, it is answered with a `302` to a presigned URL of
//! the bucket valid for [`REDIRECT_TTL`] (signed with `Content-Disposition: attachment` for
//! active types), so a private bucket stays private. The S3 driver's own presigned links point at
//! the bucket and are checked there; at this route only public prefixes are readable on S3.
//!
//! Keys are validated by the driver first (traversal, absolute paths, NUL, overlong segments… are
//! a 400), a missing object is a 404. The content type follows the key's extension
//! ([`content_type`]). Every response carries `X-Content-Type-Options: nosniff`;
//! anything a browser could run as a document (HTML, SVG, XML, JavaScript, and every type not
//! known to be passive) is sent as `Content-Disposition: attachment` with
//! `Content-Security-Policy: sandbox`, so a stored file can never script the app's origin.

use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use core_db::storage::{self, GetOptions};
use core_i18n::t_args;
use core_web::AppError;

use crate::AppContext;

/// How long the presigned URL an S3 redirect points at stays valid.
pub const REDIRECT_TTL: Duration = Duration::from_secs(300);

/// Serves the object at `key` to whoever may read it (see the [module docs](self)).
#[utoipa::path(
    get,
    path = "/storage/{*key}",
    operation_id = "getStoredFile",
    tag = "operations",
    params(
        ("key" = String, Path, description = "The object's key", min_length = 1),
        ("expires" = Option<u64>, Query, description = "Presigned links: when the link stops working (Unix seconds)"),
        ("signature" = Option<String>, Query, description = "Presigned links: the signature"),
    ),
    responses(
        (status = 200, description = "The object; its type follows the key's extension", content_type = "*/*", body = [u8],
            headers(("X-Content-Type-Options" = String, description = "`nosniff`"))),
        (status = 302, description = "An object of a remote store: a short-lived link to it", headers(("Location" = String, description = "The presigned link"))),
        (status = 400, description = "A key the store refuses: traversal, absolute, NUL, overlong segment… (`BAD_REQUEST`)", content((crate::openapi::ErrorBody = "application/json"), (crate::openapi::ProblemDetails = "application/problem+json"))),
        (status = 403, description = "A private key without a valid presigned link (`FORBIDDEN`)", content((crate::openapi::ErrorBody = "application/json"), (crate::openapi::ProblemDetails = "application/problem+json"))),
        (status = 404, description = "No object at this key (`NOT_FOUND`)", content((crate::openapi::ErrorBody = "application/json"), (crate::openapi::ProblemDetails = "application/problem+json"))),
    ),
)]
pub async fn get(
    State(state): State<AppContext>,
    Path(key): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, AppError> {
    if let Err(e) = storage::validate_key(&key) {
        return Err(AppError::BadRequest(e.to_string()));
    }
    let query = query.unwrap_or_default();
    let public = state.settings.base.storage.is_public(&key);
    if (!public || carries_signature(&query))
        && let Err(e) = state
            .storage
            .verify_signed_url("GET", &key, &query, SystemTime::now())
    {
        tracing::debug!(%key, error = %e, "storage link refused");
        return Err(AppError::Forbidden(core_web::messages::text(
            "errors.forbidden",
        )));
    }
    let mime = content_type(&key);
    let inline = served_inline(mime.to_str().unwrap_or_default());
    if state.storage.driver() != "local" {
        // A remote bucket is never proxied: the client gets a short-lived link to the object.
        if !state.storage.exists(&key).await.map_err(storage_error)? {
            return Err(not_found(&key));
        }
        let options = if inline {
            GetOptions::new()
        } else {
            GetOptions::new().content_disposition("attachment")
        };
        let link = state
            .storage
            .presign_get_with(&key, REDIRECT_TTL, &options)
            .await
            .map_err(storage_error)?;
        let location = HeaderValue::from_str(&link)
            .map_err(|e| AppError::Internal(anyhow::anyhow!("presigned URL: {e}")))?;
        let mut response = StatusCode::FOUND.into_response();
        let headers = response.headers_mut();
        headers.insert(header::LOCATION, location);
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        return Ok(response);
    }
    let Some(stream) = state
        .storage
        .get_stream(&key)
        .await
        .map_err(storage_error)?
    else {
        return Err(not_found(&key));
    };
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, mime);
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !inline {
        headers.insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment"),
        );
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("sandbox"),
        );
    }
    if !public {
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-store"),
        );
    }
    Ok(response)
}

/// The 404 for a missing object.
fn not_found(key: &str) -> AppError {
    AppError::NotFound(t_args("files.not_found", &[("key", &key)]))
}

/// A storage error as the client sees it: a key the driver refuses (such as a symbolic link out
/// of the root) is a 400, anything else a 500.
fn storage_error(err: core_db::Error) -> AppError {
    match err {
        core_db::Error::InvalidKey { .. } => AppError::BadRequest(err.to_string()),
        other => AppError::Internal(other.into()),
    }
}

/// The `Content-Type` a stored object is served with: [`storage::content_type`] of its key
/// (text types say `charset=utf-8`, unknown extensions are `application/octet-stream`).
pub fn content_type(key: &str) -> HeaderValue {
    // A MIME type (with `; charset=utf-8`) is visible ASCII, always a valid header value.
    HeaderValue::from_str(&storage::content_type(key))
        .unwrap_or_else(|_| HeaderValue::from_static(storage::DEFAULT_CONTENT_TYPE))
}

/// Whether the query names a presigned link's parameters, which are then always checked.
fn carries_signature(query: &str) -> bool {
    query.split('&').any(|pair| {
        let name = pair.split_once('=').map_or(pair, |(name, _)| name);
        name.eq_ignore_ascii_case("signature") || name.eq_ignore_ascii_case("expires")
    })
}

/// Whether a browser may show `content_type` inline from the app's origin: raster images, audio,
/// video, fonts, plain text and JSON, none of which can run script. Everything else (HTML, SVG,
/// XML, JavaScript, CSS, unknown types…) is sent as a sandboxed download.
pub fn served_inline(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.split_once('/') {
        Some(("image", subtype)) => !subtype.starts_with("svg"),
        Some(("audio" | "video" | "font", _)) => true,
        _ => matches!(essence.as_str(), "text/plain" | "application/json"),
    }
}

#[cfg(test)]
mod tests {
    use super::{carries_signature, content_type, served_inline};

    #[test]
    fn only_passive_types_are_inline() {
        for passive in [
            "image/png",
            "image/jpeg",
            "font/woff2",
            "text/plain; charset=utf-8",
            "application/json",
        ] {
            assert!(served_inline(passive), "{passive}");
        }
        for active in [
            "text/html; charset=utf-8",
            "image/svg+xml",
            "application/xml",
            "text/xml",
            "text/javascript; charset=utf-8",
            "text/css; charset=utf-8",
            "application/octet-stream",
            "application/wasm",
            "",
        ] {
            assert!(!served_inline(active), "{active}");
        }
    }

    #[test]
    fn content_types_follow_the_extension() {
        for (key, expected) in [
            ("a/photo.PNG", "image/png"),
            ("a/photo.jpeg", "image/jpeg"),
            ("a/notes.txt", "text/plain; charset=utf-8"),
            ("a/page.html", "text/html; charset=utf-8"),
            ("a/logo.svg", "image/svg+xml"),
            ("a/data.json", "application/json"),
            ("a/report.pdf", "application/pdf"),
            ("a/blob.bin", "application/octet-stream"),
            ("a/no-extension", "application/octet-stream"),
        ] {
            assert_eq!(content_type(key), expected, "{key}");
        }
    }

    #[test]
    fn signature_parameters_are_recognised() {
        assert!(carries_signature("expires=1&signature=ab"));
        assert!(carries_signature("signature"));
        assert!(carries_signature("x=1&Expires=2"));
        assert!(!carries_signature(""));
        assert!(!carries_signature("download=1&sig=2"));
    }
}
