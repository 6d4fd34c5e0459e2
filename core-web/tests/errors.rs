//! Every `AppError` variant renders its status, error code and the JSON shape; `ApiResponse`
//! renders the success envelope.

mod common;

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use common::{assert_error, get as get_req, send};
use core_web::config::HttpConfig;
use core_web::{ApiResponse, ApiResult, AppError, FieldErrors};

fn variant(name: &str) -> AppError {
    match name {
        "internal" => AppError::Internal(anyhow::anyhow!("db exploded").context("loading user 7")),
        "not_found" => AppError::NotFound("No such article".into()),
        "bad_request" => AppError::BadRequest("Bad input".into()),
        "unauthorized" => AppError::Unauthorized("Log in first".into()),
        "forbidden" => AppError::Forbidden("Not yours".into()),
        "conflict" => AppError::Conflict("Already exists".into()),
        "payload_too_large" => AppError::PayloadTooLarge("Too big".into()),
        "unprocessable" => AppError::UnprocessableEntity("Cannot process".into()),
        "validation" => {
            let mut errors = FieldErrors::new();
            errors.insert("email".into(), vec!["Email already taken".into()]);
            AppError::Validation {
                message: "Validation failed".into(),
                errors,
            }
        }
        "rate_limited" => AppError::TooManyRequests {
            message: "Slow down".into(),
            retry_after: Some(Duration::from_millis(1500)),
        },
        "rate_limited_bare" => AppError::TooManyRequests {
            message: "Slow down".into(),
            retry_after: None,
        },
        "unavailable" => AppError::ServiceUnavailable("Maintenance".into()),
        "timeout" => AppError::Timeout("Too slow".into()),
        "teapot" => AppError::Status {
            status: StatusCode::IM_A_TEAPOT,
            error_code: "TEAPOT".into(),
            message: "I am a teapot".into(),
        },
        other => panic!("unknown variant {other}"),
    }
}

async fn fail(axum::extract::Path(name): axum::extract::Path<String>) -> ApiResult<()> {
    Err(variant(&name))
}

fn app() -> Router {
    core_web::middleware::stack(
        Router::new()
            .route("/fail/{name}", get(fail))
            .route(
                "/ok",
                get(|| async { ApiResponse::success(vec![1, 2], "Loaded") }),
            )
            .route("/created", get(|| async { ApiResponse::created("x", "") }))
            .route(
                "/accepted",
                get(|| async {
                    ApiResponse::with_status(StatusCode::ACCEPTED, 1, "queued")
                        .with_meta(serde_json::json!({"page": 1}))
                }),
            )
            .route(
                "/io",
                get(|| async {
                    let text = std::fs::read_to_string("/definitely/not/here")?;
                    Ok::<_, AppError>(ApiResponse::success(text, ""))
                }),
            ),
        &HttpConfig::default(),
    )
}

#[tokio::test]
async fn every_variant_has_its_status_code_and_shape() {
    let app = app();
    for (name, status, code) in [
        ("internal", 500, "INTERNAL_ERROR"),
        ("not_found", 404, "NOT_FOUND"),
        ("bad_request", 400, "BAD_REQUEST"),
        ("unauthorized", 401, "UNAUTHORIZED"),
        ("forbidden", 403, "FORBIDDEN"),
        ("conflict", 409, "CONFLICT"),
        ("payload_too_large", 413, "PAYLOAD_TOO_LARGE"),
        ("unprocessable", 422, "VALIDATION_ERROR"),
        ("validation", 422, "VALIDATION_ERROR"),
        ("rate_limited", 429, "RATE_LIMITED"),
        ("rate_limited_bare", 429, "RATE_LIMITED"),
        ("unavailable", 503, "SERVICE_UNAVAILABLE"),
        ("timeout", 408, "REQUEST_TIMEOUT"),
        ("teapot", 418, "TEAPOT"),
    ] {
        let reply = send(&app, get_req(&format!("/fail/{name}"))).await;
        let body = assert_error(&reply, status, code);
        let keys: Vec<&String> = body.as_object().expect("object").keys().collect();
        if name == "validation" {
            assert_eq!(body["errors"]["email"][0], "Email already taken");
            assert_eq!(
                keys.len(),
                4,
                "message, error_code, errors, request_id: {body}"
            );
        } else {
            assert!(
                body.get("errors").is_none(),
                "{name} has no errors key: {body}"
            );
            assert_eq!(keys.len(), 3, "message, error_code, request_id: {body}");
        }
    }
}

#[tokio::test]
async fn user_messages_are_passed_through() {
    let reply = send(&app(), get_req("/fail/not_found")).await;
    assert_eq!(reply.json["message"], "No such article");
}

#[tokio::test]
async fn retry_after_is_rounded_up_to_whole_seconds() {
    let app = app();
    let reply = send(&app, get_req("/fail/rate_limited")).await;
    assert_eq!(reply.headers.get("retry-after").expect("Retry-After"), "2");
    let reply = send(&app, get_req("/fail/rate_limited_bare")).await;
    assert!(reply.headers.get("retry-after").is_none());
}

#[tokio::test]
async fn internal_errors_show_details_only_in_debug_builds() {
    let reply = send(&app(), get_req("/fail/internal")).await;
    let message = reply.json["message"].as_str().expect("message");
    assert!(message.starts_with("Internal server error"), "{message}");
    if cfg!(debug_assertions) {
        assert!(
            message.contains("loading user 7") && message.contains("db exploded"),
            "{message}"
        );
    } else {
        assert_eq!(message, "Internal server error");
    }
    // The same error formatted for a release build is generic.
    let err = AppError::Internal(anyhow::anyhow!("secret"));
    assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(err.error_code(), "INTERNAL_ERROR");
}

#[tokio::test]
async fn question_mark_converts_any_error_into_internal() {
    let reply = send(&app(), get_req("/io")).await;
    assert_error(&reply, 500, "INTERNAL_ERROR");
}

#[tokio::test]
async fn api_response_envelopes() {
    let app = app();
    let reply = send(&app, get_req("/ok")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.json,
        serde_json::json!({"data": [1, 2], "message": "Loaded"})
    );
    let reply = send(&app, get_req("/created")).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(
        reply.json,
        serde_json::json!({"data": "x"}),
        "an empty message is left out"
    );
    let reply = send(&app, get_req("/accepted")).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert_eq!(
        reply.json,
        serde_json::json!({"data": 1, "message": "queued", "meta": {"page": 1}})
    );
}

#[tokio::test]
async fn field_shortcut_builds_a_validation_error() {
    let err = AppError::field("email", "taken");
    assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        err.body().errors.expect("errors")["email"],
        vec!["taken".to_owned()]
    );
}

#[tokio::test]
async fn coded_errors_keep_the_applications_code() {
    let app = core_web::middleware::stack(
        Router::new().route(
            "/job",
            get(|| async {
                Err::<ApiResponse<()>, _>(AppError::coded(
                    StatusCode::NOT_FOUND,
                    "RFA_JOB_NOT_FOUND",
                    "No such job",
                ))
            }),
        ),
        &HttpConfig::default(),
    );
    let reply = send(&app, get_req("/job")).await;
    let body = assert_error(&reply, 404, "RFA_JOB_NOT_FOUND");
    assert_eq!(body["message"], "No such job");
}

#[tokio::test]
async fn errors_carry_extra_headers() {
    let app = core_web::middleware::stack(
        Router::new()
            .route(
                "/busy",
                get(|| async {
                    Err::<ApiResponse<()>, _>(
                        AppError::ServiceUnavailable("Queue is full".into())
                            .with_header("retry-after", 30u64),
                    )
                }),
            )
            .route(
                "/limited",
                get(|| async {
                    Err::<ApiResponse<()>, _>(
                        AppError::TooManyRequests {
                            message: "Slow down".into(),
                            retry_after: Some(Duration::from_secs(9)),
                        }
                        .with_header("ratelimit-policy", "\"default\";q=2;w=60")
                        .with_header("ratelimit", "\"default\";r=0;t=5")
                        .with_header("retry-after", "5")
                        .with_header("link", "</a>")
                        .with_header("link", "</b>")
                        .with_header("bad header", "x")
                        .with_header("x-ok", "bad\nvalue"),
                    )
                }),
            ),
        &HttpConfig::default(),
    );
    let reply = send(&app, get_req("/busy")).await;
    let body = assert_error(&reply, 503, "SERVICE_UNAVAILABLE");
    assert_eq!(body["message"], "Queue is full");
    assert_eq!(reply.headers["retry-after"], "30");

    let reply = send(&app, get_req("/limited")).await;
    let body = assert_error(&reply, 429, "RATE_LIMITED");
    assert_eq!(body.as_object().expect("object").len(), 3, "{body}");
    assert_eq!(
        reply
            .headers
            .get_all("retry-after")
            .iter()
            .collect::<Vec<_>>(),
        ["5"],
        "the given header replaces the error's own"
    );
    assert_eq!(reply.headers["ratelimit"], "\"default\";r=0;t=5");
    assert_eq!(reply.headers["ratelimit-policy"], "\"default\";q=2;w=60");
    assert_eq!(
        reply.headers.get_all("link").iter().collect::<Vec<_>>(),
        ["</a>", "</b>"],
        "one name given twice sends both"
    );
    assert!(
        !reply.headers.contains_key("x-ok"),
        "an invalid value is left out"
    );
    assert!(reply.headers.contains_key("x-request-id"));
}

#[test]
fn with_header_keeps_the_inner_error() {
    let err = AppError::field("email", "taken").with_header("x-a", "1");
    assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err.error_code(), "VALIDATION_ERROR");
    assert_eq!(err.body().errors.expect("errors")["email"], ["taken"]);
    let err = err.with_header("x-b", "2");
    assert!(
        matches!(&err, AppError::WithHeaders { error, .. } if !matches!(**error, AppError::WithHeaders { .. })),
        "headers are merged, not nested"
    );
    let headers = err.headers().expect("headers");
    assert_eq!(headers["x-a"], "1");
    assert_eq!(headers["x-b"], "2");
    assert!(err.to_string().starts_with("VALIDATION_ERROR: "), "{err}");
}
