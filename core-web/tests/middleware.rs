//! The middleware stack: request ids, panics, timeouts, locale, CORS.

mod common;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use common::{assert_error, get as get_req, send};
use core_web::config::HttpConfig;
use core_web::{ApiResponse, AppError, RequestId};

fn app(config: HttpConfig) -> Router {
    core_web::middleware::stack(
        Router::new()
            .route(
                "/id",
                get(|id: RequestId| async move {
                    ApiResponse::success((id.to_string(), core_web::request_id::current()), "")
                }),
            )
            .route(
                "/panic",
                get(|| async {
                    if true {
                        panic!("handler exploded");
                    }
                    ApiResponse::success((), "")
                }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    ApiResponse::success("late", "")
                }),
            )
            .route(
                "/missing",
                get(|| async {
                    Err::<ApiResponse<()>, _>(AppError::NotFound(core_i18n::t("errors.not_found")))
                }),
            ),
        &config,
    )
}

#[tokio::test]
async fn a_client_request_id_is_echoed() {
    let app = app(HttpConfig::default());
    let req = Request::get("/id")
        .header("x-request-id", "abc-123")
        .body(Body::empty())
        .expect("request");
    let reply = send(&app, req).await;
    assert_eq!(
        reply.headers.get("x-request-id").expect("header"),
        "abc-123"
    );
    assert_eq!(
        reply.json["data"],
        serde_json::json!(["abc-123", "abc-123"])
    );
}

#[tokio::test]
async fn a_missing_or_invalid_request_id_is_replaced() {
    let app = app(HttpConfig::default());
    let reply = send(&app, get_req("/id")).await;
    let generated = reply
        .headers
        .get("x-request-id")
        .expect("header")
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_eq!(generated.len(), 32, "a simple uuid: {generated}");
    assert_eq!(reply.json["data"][0], generated.as_str());
    let long = "x".repeat(200);
    for bad in ["has space", long.as_str(), ""] {
        let req = Request::get("/id")
            .header("x-request-id", bad)
            .body(Body::empty())
            .expect("request");
        let reply = send(&app, req).await;
        let id = reply
            .headers
            .get("x-request-id")
            .expect("header")
            .to_str()
            .expect("ascii");
        assert_ne!(id, bad);
        assert_eq!(id.len(), 32);
    }
    let other = send(&app, get_req("/id")).await;
    assert_ne!(
        other
            .headers
            .get("x-request-id")
            .expect("header")
            .to_str()
            .expect("ascii"),
        generated
    );
}

#[tokio::test]
async fn a_panicking_handler_answers_500_json_and_the_app_keeps_serving() {
    let app = app(HttpConfig::default());
    let reply = send(&app, get_req("/panic")).await;
    let json = assert_error(&reply, 500, "INTERNAL_ERROR");
    assert!(
        !json["message"]
            .as_str()
            .expect("message")
            .contains("exploded"),
        "panic text stays in the log"
    );
    let reply = send(&app, get_req("/id")).await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn a_slow_handler_hits_the_timeout_with_408_json() {
    let app = app(HttpConfig {
        request_timeout: Duration::from_millis(100),
        ..HttpConfig::default()
    });
    let started = std::time::Instant::now();
    let reply = send(&app, get_req("/slow")).await;
    let json = assert_error(&reply, 408, "REQUEST_TIMEOUT");
    assert!(
        json["message"].as_str().expect("message").contains("0.1"),
        "{json}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered at the timeout, not when the handler finished"
    );
}

#[tokio::test]
async fn locale_comes_from_x_locale_then_accept_language() {
    let app = app(HttpConfig::default());
    for (headers, expected, language) in [
        (vec![("x-locale", "zh")], "未找到", "zh"),
        (
            vec![("x-locale", "zh-TW"), ("accept-language", "en")],
            "未找到",
            "zh",
        ),
        (
            vec![
                ("x-locale", "xx"),
                ("accept-language", "zh-CN;q=0.8, en;q=0.9"),
            ],
            "Not found",
            "en",
        ),
        (vec![("accept-language", "fr-CH, zh;q=0.5")], "未找到", "zh"),
        (vec![("accept-language", "*")], "Not found", "en"),
        (vec![("accept-language", "zh;q=0")], "Not found", "en"),
        (
            vec![("accept-language", ";;;q=garbage,,,en-;q=2,-")],
            "Not found",
            "en",
        ),
        (vec![], "Not found", "en"),
    ] {
        let mut req = Request::get("/missing");
        for (k, v) in &headers {
            req = req.header(*k, *v);
        }
        let reply = send(&app, req.body(Body::empty()).expect("request")).await;
        let json = assert_error(&reply, 404, "NOT_FOUND");
        assert_eq!(json["message"], expected, "headers {headers:?}");
        assert_eq!(
            reply
                .headers
                .get("content-language")
                .expect("content-language"),
            language
        );
    }
}

#[tokio::test]
async fn cors_follows_configuration() {
    let app = app(HttpConfig {
        cors_allowed_origins: vec!["https://app.test".into()],
        ..HttpConfig::default()
    });
    let req = Request::get("/id")
        .header("origin", "https://app.test")
        .body(Body::empty())
        .expect("request");
    let reply = send(&app, req).await;
    assert_eq!(
        reply
            .headers
            .get("access-control-allow-origin")
            .expect("allowed"),
        "https://app.test"
    );
    let req = Request::get("/id")
        .header("origin", "https://evil.test")
        .body(Body::empty())
        .expect("request");
    let reply = send(&app, req).await;
    assert!(reply.headers.get("access-control-allow-origin").is_none());
    let none = app_without_cors().await;
    assert!(none.headers.get("access-control-allow-origin").is_none());
}

async fn app_without_cors() -> common::Reply {
    let app = app(HttpConfig::default());
    let req = Request::get("/id")
        .header("origin", "https://app.test")
        .body(Body::empty())
        .expect("request");
    send(&app, req).await
}

#[tokio::test]
async fn responses_are_compressed_when_asked() {
    let app = core_web::middleware::stack(
        Router::new().route(
            "/big",
            get(|| async { ApiResponse::success("z".repeat(10_000), "") }),
        ),
        &HttpConfig::default(),
    );
    let req = Request::get("/big")
        .header("accept-encoding", "gzip")
        .body(Body::empty())
        .expect("request");
    let res = tower::ServiceExt::oneshot(app, req)
        .await
        .expect("response");
    assert_eq!(
        res.headers().get("content-encoding").expect("encoded"),
        "gzip"
    );
}

/// A handler reading the raw body (no extractor limit) still gets at most the stack's body
/// limit: the stream ends in an error past it, with or without a declared length.
#[tokio::test]
async fn a_raw_body_stream_is_cut_off_at_the_body_limit() {
    use axum::routing::post;
    use futures_util::StreamExt as _;

    let config = HttpConfig {
        body_limit: 1000,
        ..HttpConfig::default()
    };
    let app = core_web::middleware::stack(
        Router::new().route(
            "/raw",
            post(|body: Body| async move {
                let mut stream = body.into_data_stream();
                let mut read = 0usize;
                let mut cut = false;
                while let Some(chunk) = stream.next().await {
                    match chunk {
                        Ok(bytes) => read += bytes.len(),
                        Err(_) => {
                            cut = true;
                            break;
                        }
                    }
                }
                ApiResponse::success((read, cut), "")
            }),
        ),
        &config,
    );
    let chunks = (0..10).map(|_| Ok::<_, std::io::Error>(vec![b'x'; 300]));
    let req = Request::post("/raw")
        .body(Body::from_stream(futures_util::stream::iter(chunks)))
        .expect("request");
    let reply = send(&app, req).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json);
    let (read, cut): (usize, bool) =
        serde_json::from_value(reply.json["data"].clone()).expect("data");
    assert!(cut, "the stream ends in an error");
    assert!(read <= 1000, "read {read} bytes past the 1000-byte limit");
    // Within the limit, the whole body arrives.
    let req = Request::post("/raw")
        .body(Body::from(vec![b'y'; 900]))
        .expect("request");
    let reply = send(&app, req).await;
    assert_eq!(reply.json["data"], serde_json::json!([900, false]));
}

/// The request id and locale current when a [`DropProbe`] was dropped.
type Seen = std::sync::Arc<std::sync::Mutex<Option<(Option<String>, String)>>>;

/// Records, when it is dropped, the request id and locale current at that moment.
struct DropProbe(Seen);

impl Drop for DropProbe {
    fn drop(&mut self) {
        *self.0.lock().unwrap() =
            Some((core_web::request_id::current(), core_i18n::current_locale()));
    }
}

/// A stack whose `/hang` handler never answers and holds a [`DropProbe`].
fn hanging_app(config: HttpConfig) -> (Router, Seen) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
    let probe = seen.clone();
    let router = core_web::middleware::stack(
        Router::new().route(
            "/hang",
            get(move || {
                let probe = DropProbe(probe.clone());
                async move {
                    let _probe = probe;
                    std::future::pending::<()>().await;
                    ApiResponse::success((), "")
                }
            }),
        ),
        &config,
    );
    (router, seen)
}

/// `GET /hang` with the request id `id`, in Chinese.
fn hang_request(id: &str) -> Request<Body> {
    Request::builder()
        .uri("/hang")
        .header("x-request-id", id)
        .header("accept-language", "zh")
        .body(Body::empty())
        .unwrap()
}

/// The handler's future was dropped with the request's id `id` and its locale current.
fn assert_dropped_in_scope(seen: &Seen, id: &str) {
    assert_eq!(
        *seen.lock().unwrap(),
        Some((Some(id.to_owned()), "zh".to_owned())),
        "the handler's future was dropped with the request's id and locale current"
    );
}

#[tokio::test]
async fn a_cancelled_request_drops_its_handler_inside_the_requests_scopes() {
    use tower::ServiceExt as _;
    let (app, seen) = hanging_app(HttpConfig::default());
    let request = hang_request("cancelled-1");
    // The client goes away: the response future is dropped before it answered.
    let answered = tokio::time::timeout(Duration::from_millis(50), app.oneshot(request)).await;
    assert!(answered.is_err(), "the handler never answers");
    assert_dropped_in_scope(&seen, "cancelled-1");
}

#[tokio::test]
async fn a_timed_out_handler_is_dropped_inside_the_requests_scopes() {
    let (app, seen) = hanging_app(HttpConfig {
        request_timeout: Duration::from_millis(50),
        ..HttpConfig::default()
    });
    let request = hang_request("timed-out-1");
    let reply = send(&app, request).await;
    assert_error(&reply, 408, "REQUEST_TIMEOUT");
    assert_dropped_in_scope(&seen, "timed-out-1");
}
