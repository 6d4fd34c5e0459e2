//! The tower `LocaleLayer` / `LocaleService`.

use std::convert::Infallible;
use std::task::{Context, Poll};

use core_i18n::layer::{LocaleService, X_LOCALE, locale_from_headers};
use core_i18n::{LocaleLayer, add_catalog, current_locale, t};
use http::header::{ACCEPT_LANGUAGE, CONTENT_LANGUAGE, VARY};
use http::{HeaderMap, HeaderValue, Request, Response};
use tower::{Layer, Service, ServiceExt, service_fn};

fn setup() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        add_catalog("en", r#"{"ly": {"hello": "Hello"}}"#).unwrap();
        add_catalog("zh", r#"{"ly": {"hello": "你好"}}"#).unwrap();
        add_catalog("fr", r#"{"ly": {"hello": "Bonjour"}}"#).unwrap();
    });
}

/// An inner service that reports what it sees inside the request scope.
async fn echo(_request: Request<()>) -> Result<Response<String>, Infallible> {
    tokio::task::yield_now().await;
    Ok(Response::new(format!(
        "{}|{}",
        current_locale(),
        t("ly.hello")
    )))
}

fn request(headers: &[(&str, &str)]) -> Request<()> {
    let mut builder = Request::builder().uri("/");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).unwrap()
}

async fn run(headers: &[(&str, &str)]) -> Response<String> {
    setup();
    LocaleLayer::new()
        .layer(service_fn(echo))
        .oneshot(request(headers))
        .await
        .unwrap()
}

fn content_language(response: &Response<String>) -> &str {
    response.headers()[CONTENT_LANGUAGE].to_str().unwrap()
}

#[tokio::test]
async fn x_locale_scopes_the_request_and_sets_content_language() {
    let response = run(&[("x-locale", "zh"), ("accept-language", "fr")]).await;
    assert_eq!(response.body(), "zh|你好");
    assert_eq!(content_language(&response), "zh");
    let vary: Vec<_> = response.headers().get_all(VARY).iter().collect();
    assert_eq!(
        vary,
        [HeaderValue::from_static("accept-language, x-locale")]
    );
    // Nothing leaks out of the request.
    assert_eq!(current_locale(), "en");
}

#[tokio::test]
async fn accept_language_is_used_without_x_locale() {
    let response = run(&[("accept-language", "zh-CN,zh;q=0.9,en;q=0.8")]).await;
    assert_eq!(response.body(), "zh|你好");
    assert_eq!(content_language(&response), "zh");

    let response = run(&[("accept-language", "fr-CH, fr;q=0.9, en;q=0.8")]).await;
    assert_eq!(response.body(), "fr|Bonjour");
    assert_eq!(content_language(&response), "fr");
}

#[tokio::test]
async fn unsupported_x_locale_falls_through() {
    let response = run(&[("X-Locale", "ja"), ("Accept-Language", "fr")]).await;
    assert_eq!(response.body(), "fr|Bonjour");
}

#[tokio::test]
async fn no_headers_means_default_locale() {
    let response = run(&[]).await;
    assert_eq!(response.body(), "en|Hello");
    assert_eq!(content_language(&response), "en");

    let response = run(&[("accept-language", "q=abc;;;"), ("x-locale", "!!")]).await;
    assert_eq!(response.body(), "en|Hello");
}

#[tokio::test]
async fn non_ascii_header_values_are_ignored() {
    setup();
    let mut request = request(&[("accept-language", "fr")]);
    request.headers_mut().insert(
        X_LOCALE,
        HeaderValue::from_bytes("中文".as_bytes()).unwrap(),
    );
    let response = LocaleLayer::new()
        .layer(service_fn(echo))
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(response.body(), "fr|Bonjour");
}

#[tokio::test]
async fn multiple_accept_language_lines_are_combined() {
    setup();
    let mut headers = HeaderMap::new();
    headers.append(ACCEPT_LANGUAGE, HeaderValue::from_static("de;q=0.9"));
    headers.append(ACCEPT_LANGUAGE, HeaderValue::from_static("zh;q=0.5"));
    headers.append(ACCEPT_LANGUAGE, HeaderValue::from_static("fr;q=0.7"));
    assert_eq!(locale_from_headers(&headers), "fr");
}

#[tokio::test]
async fn existing_content_language_is_kept() {
    setup();
    let inner = service_fn(|_request: Request<()>| async {
        let mut response = Response::new(String::new());
        response
            .headers_mut()
            .insert(CONTENT_LANGUAGE, HeaderValue::from_static("de"));
        response
            .headers_mut()
            .insert(VARY, HeaderValue::from_static("accept-encoding"));
        Ok::<_, Infallible>(response)
    });
    let response = LocaleLayer::new()
        .layer(inner)
        .oneshot(request(&[("x-locale", "zh")]))
        .await
        .unwrap();
    assert_eq!(response.headers()[CONTENT_LANGUAGE], "de");
    let vary: Vec<_> = response.headers().get_all(VARY).iter().collect();
    assert_eq!(vary, ["accept-encoding", "accept-language, x-locale"]);
}

#[tokio::test]
async fn errors_pass_through() {
    setup();
    let inner = service_fn(|_request: Request<()>| async {
        Err::<Response<String>, _>(format!("failed in {}", current_locale()))
    });
    let error = LocaleLayer::new()
        .layer(inner)
        .oneshot(request(&[("x-locale", "fr")]))
        .await
        .unwrap_err();
    assert_eq!(error, "failed in fr");
}

/// A service that records the locale seen synchronously in `call`.
#[derive(Clone)]
struct SyncProbe;

impl Service<Request<()>> for SyncProbe {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _request: Request<()>) -> Self::Future {
        std::future::ready(Ok(Response::new(current_locale())))
    }
}

#[tokio::test]
async fn inner_call_runs_in_the_scope_too() {
    setup();
    let response = LocaleService::new(SyncProbe)
        .oneshot(request(&[("x-locale", "zh")]))
        .await
        .unwrap();
    assert_eq!(response.body(), "zh");
}

fn assert_send<T: Send>(_: &T) {}
fn assert_clone<T: Clone>(_: &T) {}
fn assert_sync<T: Sync>(_: &T) {}

#[tokio::test]
async fn service_is_clone_and_future_is_send() {
    setup();
    let layer = LocaleLayer::new();
    assert_clone(&layer);
    let mut service = layer.layer(service_fn(echo));
    assert_clone(&service);
    assert_send(&service);
    assert_sync(&service);
    let future = service
        .ready()
        .await
        .unwrap()
        .call(request(&[("x-locale", "zh")]));
    assert_send(&future);
    // The future can be moved to another task and polled there.
    let response = tokio::spawn(future).await.unwrap().unwrap();
    assert_eq!(response.body(), "zh|你好");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_through_one_service() {
    setup();
    let service = LocaleLayer::new().layer(service_fn(echo));
    let cases = [
        ("zh", "zh|你好"),
        ("fr", "fr|Bonjour"),
        ("en", "en|Hello"),
        ("ja", "en|Hello"),
    ];
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..300 {
        let (locale, expected) = cases[i % cases.len()];
        let service = service.clone();
        tasks.spawn(async move {
            let response = service
                .oneshot(request(&[("accept-language", locale)]))
                .await
                .unwrap();
            assert_eq!(response.body(), expected, "request {i}");
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.expect("request task panicked");
    }
}

#[tokio::test]
async fn works_as_an_axum_layer() {
    use axum::Router;
    use axum::body::{Body, to_bytes};
    use axum::routing::get;

    setup();
    let app: Router = Router::new()
        .route(
            "/",
            get(|| async { format!("{}|{}", current_locale(), t("ly.hello")) }),
        )
        .layer(LocaleLayer::new());

    let request = Request::builder()
        .uri("/")
        .header("accept-language", "zh-CN, en;q=0.5")
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.headers()[CONTENT_LANGUAGE], "zh");
    let body = to_bytes(response.into_body(), 1024).await.unwrap();
    assert_eq!(&body[..], "zh|你好".as_bytes());

    // Even the router's own 404 gets the header.
    let request = Request::builder()
        .uri("/missing")
        .header("x-locale", "fr")
        .body(Body::empty())
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), http::StatusCode::NOT_FOUND);
    assert_eq!(response.headers()[CONTENT_LANGUAGE], "fr");
}
