//! Helpers shared by core-web's integration tests.
#![allow(dead_code, missing_docs)]

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// A response as the tests look at it.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: serde_json::Value,
}

/// Sends `req` through `app` and asserts the body is JSON.
pub async fn send(app: &Router, req: Request<Body>) -> Reply {
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
    let json = serde_json::from_slice(&bytes).expect("JSON body");
    Reply {
        status,
        headers,
        json,
    }
}

pub fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).expect("request")
}

pub fn post_json(uri: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(uri)
        .header("content-type", "application/json")
        .body(body.into())
        .expect("request")
}

/// Asserts the framework's error shape and returns the body.
pub fn assert_error(reply: &Reply, status: u16, code: &str) -> serde_json::Value {
    assert_eq!(reply.status.as_u16(), status, "status of {}", reply.json);
    assert_eq!(
        reply.json["error_code"], code,
        "error_code of {}",
        reply.json
    );
    assert!(
        reply.json["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "message in {}",
        reply.json
    );
    let id = reply.json["request_id"]
        .as_str()
        .expect("request_id in the body");
    assert_eq!(
        reply
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some(id),
        "body and header carry the same request id"
    );
    reply.json.clone()
}
