//! An attachment's `UploadError` leaves a handler through `?` as the framework's JSON error:
//! 400, 413, 422 (under the form field) or 500, with the same bodies apps used to build by hand.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Multipart, Query, State};
use axum::http::{Request, StatusCode};
use axum::routing::post;
use core_db::{Attachment, AttachmentRules, LocalStorage, Storage, UploadError, attachments};
use core_web::{ApiResponse, ApiResult, AppError};
use serde_json::{Value, json};

const BOUNDARY: &str = "rustforge-upload-boundary";

fn rules() -> AttachmentRules {
    AttachmentRules::images()
        .max_size(128)
        .min_dimensions(16, 16)
}

/// Where the upload goes: `users/42` unless the query names another owner.
#[derive(serde::Deserialize)]
struct Owner {
    owner: Option<String>,
}

/// The handler under test: `?` is the only error handling.
async fn upload_avatar(
    State(storage): State<Arc<dyn Storage>>,
    Query(Owner { owner }): Query<Owner>,
    mut form: Multipart,
) -> ApiResult<Attachment> {
    let owner = owner.as_deref().unwrap_or("users/42");
    let avatar = attachments::upload_from(&mut form, "avatar", owner, &rules(), &storage).await?;
    Ok(ApiResponse::created(avatar, ""))
}

/// A failure of the caller's own, as an `after_store` hook would return.
async fn hook_failed() -> ApiResult<()> {
    Err(UploadError::Other(anyhow::anyhow!(
        "inserting the row failed"
    )))?;
    Ok(ApiResponse::success((), ""))
}

fn app() -> Router {
    let root = std::env::temp_dir().join(format!("rustforge-upload-{}", uuid::Uuid::new_v4()));
    let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(root, "/storage"));
    Router::new()
        .route("/avatar", post(upload_avatar))
        .route("/hook", post(hook_failed))
        .layer(DefaultBodyLimit::max(4096))
        .with_state(storage)
}

fn png(width: u32, height: u32, padding: usize) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    bytes.extend_from_slice(&width.to_be_bytes());
    bytes.extend_from_slice(&height.to_be_bytes());
    bytes.extend_from_slice(&[8, 6, 0, 0, 0]);
    bytes.resize(bytes.len() + padding, 0);
    bytes
}

fn form(field: &str, content: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn post_form(uri: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let request = Request::post(uri)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(Body::from(body))
        .expect("request");
    let reply = test_support::send_json(&app(), request).await;
    (reply.status, reply.json)
}

/// The form could not be parsed: the parser's message after the upload error's own.
fn assert_unreadable(body: &Value, code: &str) {
    assert_eq!(body["error_code"], code, "{body}");
    let message = body["message"].as_str().expect("message");
    assert!(
        message.starts_with("the multipart body could not be read: "),
        "{message}"
    );
    assert_eq!(body.as_object().map(|o| o.len()), Some(3), "{body}");
}

fn error(message: &str, code: &str) -> Value {
    json!({"message": message, "error_code": code, "request_id": null})
}

fn validation(field: &str, message: &str) -> Value {
    json!({
        "message": "Validation failed",
        "error_code": "VALIDATION_ERROR",
        "errors": {field: [message]},
        "request_id": null,
    })
}

/// The errors whose body is known in full: the status and the exact JSON.
#[tokio::test]
async fn each_error_has_its_status_and_body() {
    let allowed = rules().allowed_types().join(", ");
    let cases = [
        (
            "a form without the field",
            form("photo", &png(32, 32, 0)),
            StatusCode::BAD_REQUEST,
            error("no file was uploaded in the `avatar` field", "BAD_REQUEST"),
        ),
        (
            "a file past the rules' limit",
            form("avatar", &png(32, 32, 512)),
            StatusCode::PAYLOAD_TOO_LARGE,
            error(
                "the file is larger than the 128 bytes allowed",
                "PAYLOAD_TOO_LARGE",
            ),
        ),
        (
            "a disallowed type",
            form("avatar", b"just some text"),
            StatusCode::UNPROCESSABLE_ENTITY,
            validation(
                "avatar",
                &format!("files of type text/plain are not allowed here (allowed: {allowed})"),
            ),
        ),
        (
            "an image breaking the rules",
            form("avatar", &png(8, 8, 0)),
            StatusCode::UNPROCESSABLE_ENTITY,
            validation(
                "avatar",
                "the image is 8×8 pixels; at least 16×16 is required",
            ),
        ),
    ];
    for (what, request, status, expected) in cases {
        let (got_status, body) = post_form("/avatar", request).await;
        assert_eq!(got_status, status, "{what}: {body}");
        assert_eq!(body, expected, "{what}");
    }
}

/// The form itself cannot be read: cut off (400) or past the request body limit (413).
#[tokio::test]
async fn an_unreadable_form_is_a_400_or_a_413() {
    let cut_off = form("avatar", &png(32, 32, 0));
    let cut_off = cut_off[..cut_off.len() - 10].to_vec();
    let too_long = form("avatar", &png(32, 32, 8192));
    for (request, status, code) in [
        (cut_off, StatusCode::BAD_REQUEST, "BAD_REQUEST"),
        (too_long, StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE"),
    ] {
        let (got_status, body) = post_form("/avatar", request).await;
        assert_eq!(got_status, status, "{body}");
        assert_unreadable(&body, code);
    }
}

#[tokio::test]
async fn storage_and_hook_failures_are_500s() {
    for (uri, cause) in [
        ("/avatar?owner=..%2Foutside", "invalid key"),
        ("/hook", "inserting the row failed"),
    ] {
        let (status, body) = post_form(uri, form("avatar", &png(32, 32, 0))).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{uri}: {body}");
        assert_eq!(body["error_code"], "INTERNAL_ERROR", "{uri}");
        let message = body["message"].as_str().expect("message");
        assert!(message.starts_with("Internal server error"), "{message}");
        // The cause reaches the client only in debug builds, for the developer.
        assert_eq!(message.contains(cause), cfg!(debug_assertions), "{message}");
    }
}

fn cases() -> Vec<(UploadError, u16, &'static str)> {
    vec![
        (
            UploadError::MissingFile { field: "f".into() },
            400,
            "BAD_REQUEST",
        ),
        (
            UploadError::TooLarge {
                field: "f".into(),
                limit: 1,
            },
            413,
            "PAYLOAD_TOO_LARGE",
        ),
        (
            UploadError::DisallowedType {
                field: "f".into(),
                detected: "x/y".into(),
                declared: None,
                allowed: "image/png".into(),
            },
            422,
            "VALIDATION_ERROR",
        ),
        (
            UploadError::InvalidImage {
                field: "f".into(),
                reason: "too small".into(),
            },
            422,
            "VALIDATION_ERROR",
        ),
        (
            UploadError::Storage(core_db::Error::Config("x".into())),
            500,
            "INTERNAL_ERROR",
        ),
    ]
}

#[test]
fn every_variant_keeps_its_status_and_code() {
    for (err, status, code) in cases() {
        let name = format!("{err:?}");
        let app_error = AppError::from(err);
        assert_eq!(app_error.status().as_u16(), status, "{name}");
        assert_eq!(app_error.error_code(), code, "{name}");
    }
    // Wrapped in `anyhow` (as a hook's error may travel) it is still recognised.
    for (err, status, code) in cases() {
        let name = format!("{err:?}");
        let app_error = AppError::from(anyhow::Error::from(err));
        assert_eq!(app_error.status().as_u16(), status, "{name}");
        assert_eq!(app_error.error_code(), code, "{name}");
    }
}
