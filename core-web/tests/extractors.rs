//! `ValidatedJson` and axum's own extractor rejections all answer in the framework's JSON shape.

mod common;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query};
use axum::http::{Request, StatusCode};
use axum::routing::{get, post};
use common::{assert_error, get as get_req, post_json, send};
use core_web::config::HttpConfig;
use core_web::{ApiResponse, ApiResult, ValidatedJson};
use serde::Deserialize;
use validator::Validate;

#[derive(Debug, Deserialize, Validate)]
struct Order {
    #[validate(length(min = 1, max = 20))]
    customer: String,
    #[validate(range(min = 1, max = 10))]
    priority: u8,
    #[validate(email)]
    email: String,
    #[validate(nested, length(min = 1))]
    items: Vec<Item>,
}

#[derive(Debug, Deserialize, serde::Serialize, Validate)]
struct Item {
    #[validate(length(min = 1))]
    name: String,
    #[validate(range(min = 1))]
    qty: u32,
}

async fn create(ValidatedJson(order): ValidatedJson<Order>) -> ApiResult<String> {
    Ok(ApiResponse::created(order.customer, ""))
}

#[derive(Deserialize)]
struct Paging {
    #[allow(dead_code)]
    page: u32,
}

fn app(limit: usize) -> Router {
    core_web::middleware::stack(
        Router::new()
            .route("/orders", post(create))
            .route(
                "/users/{id}",
                get(|Path(id): Path<u32>| async move { ApiResponse::success(id, "") }),
            )
            .route(
                "/list",
                get(|Query(_p): Query<Paging>| async { ApiResponse::success((), "") }),
            )
            .route(
                "/raw",
                post(|axum::Json(v): axum::Json<serde_json::Value>| async move {
                    ApiResponse::success(v, "")
                }),
            )
            .route(
                "/text",
                get(|| async { (StatusCode::CONFLICT, "plain text conflict") }),
            )
            .route(
                "/page",
                get(|| async {
                    (
                        StatusCode::UNAUTHORIZED,
                        [("content-type", "text/html; charset=utf-8")],
                        "<p>Wrong token</p>",
                    )
                }),
            ),
        &HttpConfig {
            body_limit: limit,
            ..HttpConfig::default()
        },
    )
}

const VALID: &str =
    r#"{"customer":"Ada","priority":3,"email":"ada@example.com","items":[{"name":"tea","qty":2}]}"#;

#[tokio::test]
async fn a_valid_body_passes() {
    let reply = send(&app(1 << 20), post_json("/orders", VALID)).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.json["data"], "Ada");
}

#[tokio::test]
async fn malformed_json_names_line_and_column() {
    let reply = send(
        &app(1 << 20),
        post_json("/orders", "{\n  \"customer\": \"Ada\",\n  oops\n}"),
    )
    .await;
    let body = assert_error(&reply, 400, "BAD_REQUEST");
    let message = body["message"].as_str().expect("message");
    assert!(
        message.contains("line 3") && message.contains("column 3"),
        "{message}"
    );
}

#[tokio::test]
async fn truncated_json_says_it_ends_early() {
    let reply = send(&app(1 << 20), post_json("/orders", r#"{"customer": "Ada""#)).await;
    let body = assert_error(&reply, 400, "BAD_REQUEST");
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .contains("ends early"),
        "{body}"
    );
}

#[tokio::test]
async fn trailing_garbage_is_rejected() {
    let reply = send(&app(1 << 20), post_json("/orders", format!("{VALID} x"))).await;
    assert_error(&reply, 400, "BAD_REQUEST");
}

#[tokio::test]
async fn a_wrong_field_type_names_its_path() {
    let body =
        r#"{"customer":"Ada","priority":3,"email":"a@b.co","items":[{"name":"tea","qty":"two"}]}"#;
    let reply = send(&app(1 << 20), post_json("/orders", body)).await;
    let json = assert_error(&reply, 400, "BAD_REQUEST");
    assert!(json["errors"]["items[0].qty"].is_array(), "{json}");
    assert!(
        json["message"]
            .as_str()
            .expect("message")
            .contains("items[0].qty"),
        "{json}"
    );
}

#[tokio::test]
async fn wrong_or_missing_content_type_is_a_400() {
    let app = app(1 << 20);
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut req = Request::post("/orders");
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let reply = send(&app, req.body(Body::from(VALID)).expect("request")).await;
        let json = assert_error(&reply, 400, "BAD_REQUEST");
        assert!(
            json["message"]
                .as_str()
                .expect("message")
                .contains("application/json"),
            "{json}"
        );
    }
    let req = Request::post("/orders")
        .header("content-type", "application/vnd.api+json; charset=utf-8")
        .body(Body::from(VALID))
        .expect("request");
    assert_eq!(
        send(&app, req).await.status,
        StatusCode::CREATED,
        "+json types are JSON"
    );
}

#[tokio::test]
async fn validation_failures_are_422_with_dotted_paths() {
    let body = r#"{"customer":"","priority":11,"email":"nope","items":[{"name":"ok","qty":1},{"name":"","qty":0}]}"#;
    let reply = send(&app(1 << 20), post_json("/orders", body)).await;
    let json = assert_error(&reply, 422, "VALIDATION_ERROR");
    let errors = json["errors"].as_object().expect("errors");
    let mut fields: Vec<&str> = errors.keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "customer",
            "email",
            "items[1].name",
            "items[1].qty",
            "priority"
        ]
    );
    assert_eq!(errors["priority"][0], "Must be between 1 and 10");
    assert_eq!(errors["customer"][0], "Length must be between 1 and 20");
    assert_eq!(errors["items[1].qty"][0], "Must be at least 1");
    assert_eq!(errors["email"][0], "Must be a valid email address");
}

#[tokio::test]
async fn validation_messages_follow_the_request_locale() {
    let body = r#"{"customer":"","priority":3,"email":"a@b.co","items":[{"name":"x","qty":1}]}"#;
    let req = Request::post("/orders")
        .header("content-type", "application/json")
        .header("accept-language", "zh-CN,zh;q=0.9,en;q=0.5")
        .body(Body::from(body))
        .expect("request");
    let reply = send(&app(1 << 20), req).await;
    let json = assert_error(&reply, 422, "VALIDATION_ERROR");
    assert_eq!(json["message"], "验证失败");
    assert_eq!(json["errors"]["customer"][0], "长度必须在 1 到 20 之间");
    assert_eq!(
        reply
            .headers
            .get("content-language")
            .expect("content-language"),
        "zh"
    );
}

#[tokio::test]
async fn axum_rejections_are_json() {
    let app = app(1 << 20);
    let reply = send(&app, get_req("/users/abc")).await;
    assert_error(&reply, 400, "BAD_REQUEST");
    let reply = send(&app, get_req("/list")).await;
    let json = assert_error(&reply, 400, "BAD_REQUEST");
    assert!(
        json["message"].as_str().expect("message").contains("page"),
        "{json}"
    );
    let reply = send(&app, get_req("/list?page=-1")).await;
    assert_error(&reply, 400, "BAD_REQUEST");
    let req = Request::post("/raw")
        .header("content-type", "text/plain")
        .body(Body::from("{}"))
        .expect("request");
    assert_error(&send(&app, req).await, 415, "UNSUPPORTED_MEDIA_TYPE");
    let reply = send(&app, post_json("/raw", "{not json")).await;
    assert_error(&reply, 400, "BAD_REQUEST");
    let reply = send(&app, post_json("/raw", "[1, 2")).await;
    assert_error(&reply, 400, "BAD_REQUEST");
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json() {
    let app = app(1 << 20);
    let reply = send(&app, get_req("/nowhere")).await;
    let json = assert_error(&reply, 404, "NOT_FOUND");
    assert!(
        json["message"]
            .as_str()
            .expect("message")
            .contains("/nowhere"),
        "{json}"
    );
    let req = Request::delete("/orders")
        .body(Body::empty())
        .expect("request");
    let reply = send(&app, req).await;
    assert_error(&reply, 405, "METHOD_NOT_ALLOWED");
    assert!(
        reply.headers.get("allow").is_some(),
        "the Allow header survives the rewrite"
    );
}

#[tokio::test]
async fn plain_text_errors_from_handlers_become_json() {
    let reply = send(&app(1 << 20), get_req("/text")).await;
    let json = assert_error(&reply, 409, "CONFLICT");
    assert_eq!(json["message"], "plain text conflict");
}

#[tokio::test]
async fn html_error_pages_from_handlers_are_kept() {
    let response = tower::ServiceExt::oneshot(app(1 << 20), get_req("/page"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()["content-type"],
        "text/html; charset=utf-8"
    );
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(&body[..], b"<p>Wrong token</p>");
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_json() {
    let app = app(1024);
    let big = format!(
        r#"{{"customer":"{}","priority":1,"email":"a@b.co","items":[]}}"#,
        "x".repeat(4096)
    );
    // Declared length over the limit: refused before the handler reads anything.
    let reply = send(&app, post_json("/orders", big.clone())).await;
    let json = assert_error(&reply, 413, "PAYLOAD_TOO_LARGE");
    assert!(
        json["message"].as_str().expect("message").contains("1024"),
        "{json}"
    );
    // Streamed without a length: refused while reading.
    let stream = futures_util::stream::iter(
        big.into_bytes()
            .chunks(512)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let req = Request::post("/orders")
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .expect("request");
    assert_error(&send(&app, req).await, 413, "PAYLOAD_TOO_LARGE");
    // axum's own Json extractor too.
    let req = post_json("/raw", format!("\"{}\"", "y".repeat(2048)));
    assert_error(&send(&app, req).await, 413, "PAYLOAD_TOO_LARGE");
}
