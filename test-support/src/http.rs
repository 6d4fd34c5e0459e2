//! Driving an axum [`Router`] in a test and reading its JSON answer.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// A response as the tests look at it: status, headers and the parsed JSON body.
#[derive(Debug)]
pub struct JsonReply {
    /// The status code.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body, parsed.
    pub json: serde_json::Value,
}

/// A response with its body as text: for pages, redirects and other answers that are not JSON.
#[derive(Debug)]
pub struct TextReply {
    /// The status code.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body, as UTF-8 (invalid sequences replaced).
    pub body: String,
}

/// Sends `req` through `app` and returns the reply with its body as text.
pub async fn send_text(app: &Router, req: Request<Body>) -> TextReply {
    let res = app.clone().oneshot(req).await.expect("infallible router");
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    TextReply {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

// region: send-json
/// Sends `req` through `app` and returns the reply.
///
/// # Panics
/// When the response is not `application/json` or its body is not JSON (every Rustforge
/// response is JSON), naming the status and showing the body.
pub async fn send_json(app: &Router, req: Request<Body>) -> JsonReply {
    let res = app.clone().oneshot(req).await.expect("infallible router");
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        content_type.starts_with("application/json"),
        "{status} answered with content-type {content_type:?}: {}",
        String::from_utf8_lossy(&bytes)
    );
    let json = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{status} answered without JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    JsonReply {
        status,
        headers,
        json,
    }
}
// endregion: send-json
