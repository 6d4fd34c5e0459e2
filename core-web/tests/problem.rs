//! RFC 9457 problem details: every error source of the stack answers `application/problem+json`
//! when `Accept` prefers it, and keeps the framework's JSON body otherwise.

mod common;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use axum::routing::{get, post};
use common::{assert_error, send};
use core_web::config::HttpConfig;
use core_web::problem::{ErrorFormat, negotiate};
use core_web::{ApiResponse, AppError, FieldErrors, ValidatedJson};
use http_body_util::BodyExt;
use serde::Deserialize;
use tower::ServiceExt;
use validator::Validate;

const PROBLEM: &str = "application/problem+json";

#[derive(Debug, Deserialize, Validate)]
struct Submit {
    #[validate(length(min = 3))]
    work_kind: String,
}

fn app() -> Router {
    core_web::middleware::stack(
        Router::new()
            .route(
                "/v1/jobs/{id}",
                get(|| async {
                    Err::<ApiResponse<()>, _>(AppError::coded(
                        StatusCode::NOT_FOUND,
                        "RFA_JOB_NOT_FOUND",
                        "No such job",
                    ))
                }),
            )
            .route(
                "/conflict",
                get(|| async {
                    Err::<ApiResponse<()>, _>(
                        AppError::coded(StatusCode::CONFLICT, "RFA_JOB_CONFLICT", "In progress")
                            .with_header(header::RETRY_AFTER, "1"),
                    )
                }),
            )
            .route(
                "/validation",
                get(|| async {
                    let mut errors = FieldErrors::new();
                    errors.insert("email".into(), vec!["taken".into()]);
                    Err::<ApiResponse<()>, _>(AppError::Validation {
                        message: "Validation failed".into(),
                        errors,
                    })
                }),
            )
            .route(
                "/internal",
                get(|| async {
                    Err::<ApiResponse<()>, _>(AppError::Internal(anyhow::anyhow!("db down")))
                }),
            )
            .route(
                "/submit",
                post(|ValidatedJson(s): ValidatedJson<Submit>| async move {
                    ApiResponse::success(s.work_kind, "")
                }),
            )
            .route(
                "/raw",
                post(|axum::Json(v): axum::Json<serde_json::Value>| async move {
                    ApiResponse::success(v, "")
                }),
            )
            .route(
                "/panic",
                get(|| async {
                    if true {
                        panic!("exploded");
                    }
                    ApiResponse::success((), "")
                }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    ApiResponse::success((), "")
                }),
            ),
        &HttpConfig {
            request_timeout: Duration::from_millis(200),
            body_limit: 64,
            ..HttpConfig::default()
        },
    )
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    json: serde_json::Value,
}

async fn call(app: &Router, req: Request<Body>) -> Reply {
    let res = app.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {bytes:?}"));
    Reply {
        status,
        headers,
        json,
    }
}

/// Asserts a problem document with exactly the expected members and returns it.
fn assert_problem(reply: &Reply, status: u16, code: &str, path: &str) -> serde_json::Value {
    assert_eq!(reply.status.as_u16(), status, "{}", reply.json);
    assert_eq!(
        reply
            .headers
            .get(header::CONTENT_TYPE)
            .expect("content-type"),
        PROBLEM,
        "{}",
        reply.json
    );
    let p = &reply.json;
    assert_eq!(p["type"], "about:blank");
    assert_eq!(
        p["title"],
        StatusCode::from_u16(status)
            .expect("status")
            .canonical_reason()
            .expect("reason")
    );
    assert_eq!(p["status"], status);
    assert!(p["detail"].as_str().is_some_and(|d| !d.is_empty()), "{p}");
    assert_eq!(p["instance"], path);
    assert_eq!(p["code"], code);
    let id = p["request_id"].as_str().expect("request_id");
    assert_eq!(
        reply.headers.get("x-request-id").expect("x-request-id"),
        id,
        "the header stays and matches"
    );
    assert!(
        p.get("message").is_none() && p.get("error_code").is_none(),
        "no JSON-mode members: {p}"
    );
    assert!(varies_on_accept(&reply.headers), "Vary: accept");
    p.clone()
}

fn varies_on_accept(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::VARY)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("").split(','))
        .any(|v| v.trim().eq_ignore_ascii_case("accept"))
}

fn request(method: &str, uri: &str, accept: Option<&str>, body: Option<&str>) -> Request<Body> {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(accept) = accept {
        req = req.header(header::ACCEPT, accept);
    }
    match body {
        Some(body) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_owned())),
        None => req.body(Body::empty()),
    }
    .expect("request")
}

/// (method, uri, body, status, code) of every error source: handlers, the router's fallbacks, the
/// JSON extractors, the body limit, the timeout and the panic catcher.
fn sources() -> Vec<(
    &'static str,
    &'static str,
    Option<&'static str>,
    u16,
    &'static str,
)> {
    vec![
        ("GET", "/v1/jobs/7", None, 404, "RFA_JOB_NOT_FOUND"),
        ("GET", "/validation", None, 422, "VALIDATION_ERROR"),
        ("GET", "/internal", None, 500, "INTERNAL_ERROR"),
        ("GET", "/nowhere", None, 404, "NOT_FOUND"),
        ("DELETE", "/v1/jobs/7", None, 405, "METHOD_NOT_ALLOWED"),
        (
            "POST",
            "/submit",
            Some("{\"work_kind\": "),
            400,
            "BAD_REQUEST",
        ),
        (
            "POST",
            "/submit",
            Some("{\"work_kind\": \"x\"}"),
            422,
            "VALIDATION_ERROR",
        ),
        ("POST", "/raw", Some("[1, 2"), 400, "BAD_REQUEST"),
        (
            "POST",
            "/raw",
            Some("[\"a long body, well past the limit of sixty-four bytes, which it exceeds\"]"),
            413,
            "PAYLOAD_TOO_LARGE",
        ),
        ("GET", "/slow", None, 408, "REQUEST_TIMEOUT"),
        ("GET", "/panic", None, 500, "INTERNAL_ERROR"),
    ]
}

#[tokio::test]
async fn every_error_source_answers_problem_details_when_asked() {
    let app = app();
    for (method, uri, body, status, code) in sources() {
        let reply = call(&app, request(method, uri, Some(PROBLEM), body)).await;
        let p = assert_problem(&reply, status, code, uri);
        let members = p.as_object().expect("object").len();
        if code == "VALIDATION_ERROR" && uri == "/validation" {
            assert_eq!(p["errors"]["email"][0], "taken");
            assert_eq!(members, 8, "{p}");
        } else if code == "VALIDATION_ERROR" {
            assert!(p["errors"]["work_kind"].is_array(), "{p}");
        } else {
            assert!(p.get("errors").is_none(), "{p}");
            assert_eq!(members, 7, "{p}");
        }
    }
}

#[tokio::test]
async fn without_a_problem_preference_errors_keep_the_json_shape() {
    let app = app();
    for accept in [None, Some("application/json"), Some("*/*")] {
        for (method, uri, body, status, code) in sources() {
            let reply = send(&app, request(method, uri, accept, body)).await;
            let json = assert_error(&reply, status, code);
            assert!(json.get("type").is_none() && json.get("code").is_none());
            assert!(
                reply
                    .headers
                    .get(header::CONTENT_TYPE)
                    .expect("content-type")
                    .to_str()
                    .expect("ascii")
                    .starts_with("application/json"),
                "{accept:?} {uri}"
            );
        }
    }
}

#[tokio::test]
async fn q_values_are_honoured_through_the_stack() {
    let app = app();
    let reply = call(
        &app,
        request(
            "GET",
            "/v1/jobs/7",
            Some("application/problem+json;q=0.5, application/json"),
            None,
        ),
    )
    .await;
    assert_eq!(reply.json["error_code"], "RFA_JOB_NOT_FOUND");
    let reply = call(
        &app,
        request(
            "GET",
            "/v1/jobs/7",
            Some("application/json;q=0.5, application/problem+json"),
            None,
        ),
    )
    .await;
    assert_problem(&reply, 404, "RFA_JOB_NOT_FOUND", "/v1/jobs/7");
}

#[tokio::test]
async fn headers_an_error_carries_stay_in_problem_mode() {
    let app = app();
    let reply = call(&app, request("GET", "/conflict", Some(PROBLEM), None)).await;
    let p = assert_problem(&reply, 409, "RFA_JOB_CONFLICT", "/conflict");
    assert_eq!(p["detail"], "In progress");
    assert_eq!(
        reply.headers.get(header::RETRY_AFTER).expect("Retry-After"),
        "1"
    );
    let reply = send(&app, request("GET", "/conflict", None, None)).await;
    assert_error(&reply, 409, "RFA_JOB_CONFLICT");
    assert_eq!(
        reply.headers.get(header::RETRY_AFTER).expect("Retry-After"),
        "1"
    );
}

#[tokio::test]
async fn the_instance_is_the_path_without_the_query() {
    let reply = call(
        &app(),
        request("GET", "/v1/jobs/7?token=secret", Some(PROBLEM), None),
    )
    .await;
    assert_problem(&reply, 404, "RFA_JOB_NOT_FOUND", "/v1/jobs/7");
    assert!(!reply.json.to_string().contains("secret"));
}

#[tokio::test]
async fn success_responses_are_untouched() {
    let app = app();
    let reply = send(
        &app,
        request(
            "POST",
            "/submit",
            Some(PROBLEM),
            Some("{\"work_kind\": \"SUCCESS_FAST\"}"),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json["data"], "SUCCESS_FAST");
    assert!(!varies_on_accept(&reply.headers));
}

#[test]
fn negotiation_follows_q_values() {
    assert_eq!(
        negotiate(Some("application/problem+json;q=0.5, application/json")),
        ErrorFormat::Json
    );
    assert_eq!(
        negotiate(Some("application/problem+json")),
        ErrorFormat::Problem
    );
    assert_eq!(negotiate(Some("*/*")), ErrorFormat::Json);
    assert_eq!(negotiate(None), ErrorFormat::Json);
    assert_eq!(
        negotiate(Some("text/html, application/problem+json;q=0.9, */*;q=0.8")),
        ErrorFormat::Problem
    );
}

#[test]
fn problem_details_outside_a_request() {
    let err = AppError::coded(
        StatusCode::TOO_MANY_REQUESTS,
        "RFA_REQUEST_RATE_LIMITED",
        "Slow",
    )
    .with_header("ratelimit", "\"default\";r=0;t=3");
    let p = core_web::problem::ProblemDetails::from_error(&err, Some("/v1/jobs".into()));
    assert_eq!(
        serde_json::to_value(&p).expect("json"),
        serde_json::json!({
            "type": "about:blank", "title": "Too Many Requests", "status": 429,
            "detail": "Slow", "instance": "/v1/jobs", "code": "RFA_REQUEST_RATE_LIMITED",
            "request_id": null
        })
    );
    let response = core_web::problem::scope("/v1/jobs", || {
        axum::response::IntoResponse::into_response(err)
    });
    assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM);
    assert_eq!(response.headers()["ratelimit"], "\"default\";r=0;t=3");
}
