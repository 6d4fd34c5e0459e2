//! Helpers shared by core-web's integration tests.
#![allow(dead_code, missing_docs)]

use axum::body::Body;
use axum::http::Request;

#[allow(unused_imports)] // not every test binary sends requests
pub use test_support::{JsonReply as Reply, send_json as send};

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
