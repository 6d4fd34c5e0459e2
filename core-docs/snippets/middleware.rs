//! The middleware stack, request ids and serving with graceful shutdown.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use core_web::config::HttpConfig;
use core_web::{ApiResponse, ApiResult, RequestId};

// region: stack
pub fn app() -> Router {
    let routes = Router::new()
        .route("/whoami", get(whoami))
        .route("/slow", get(slow));
    let http = HttpConfig {
        request_timeout: Duration::from_secs(10), // 408 past it
        body_limit: 1024 * 1024,                  // 413 past it
        cors_allowed_origins: vec!["https://app.example.com".to_owned()],
        ..HttpConfig::default()
    };
    core_web::middleware::stack(routes, &http)
}
// endregion: stack

// region: request-id
async fn whoami(id: RequestId) -> ApiResult<String> {
    // The same id is in the `x-request-id` response header, on every log line of this
    // request, and in the body of any error it returns.
    tracing::info!("handling whoami");
    Ok(ApiResponse::success(id.to_string(), ""))
}
// endregion: request-id

async fn slow() -> ApiResult<()> {
    tokio::time::sleep(Duration::from_secs(60)).await;
    Ok(ApiResponse::success((), ""))
}

// region: serve
/// `server::run` binds, serves, and on SIGINT/SIGTERM drains in-flight requests for at most
/// the grace period. `server::serve` takes your own listener and shutdown signal.
pub async fn serve_until(
    listener: tokio::net::TcpListener,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> core_web::Result<()> {
    let shutdown = async {
        let _ = stop.await;
    };
    core_web::server::serve(listener, app(), shutdown, Duration::from_secs(5)).await
}
// endregion: serve

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn the_request_id_is_echoed() {
        let response = app()
            .oneshot(
                Request::get("/whoami")
                    .header("x-request-id", "req-123")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["x-request-id"], "req-123");
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        assert_eq!(&body[..], br#"{"data":"req-123"}"#);
    }

    #[tokio::test]
    async fn serve_stops_when_told() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let server = tokio::spawn(serve_until(listener, stopped));
        stop.send(()).expect("server running");
        server.await.expect("joined").expect("clean shutdown");
    }

    /// The limits' answers are the ones the page shows: 408 past the 10 s timeout (the test
    /// waits for it), 413 past the 1 MiB body limit.
    #[tokio::test]
    async fn limits_answer_with_the_error_shape() {
        let slow = Request::get("/slow").body(Body::empty()).expect("request");
        let (status, _, body) = crate::support::send(app(), slow).await;
        assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
        crate::support::assert_example(body, "request-timeout");

        let large = Request::post("/whoami")
            .header("content-type", "application/json")
            .header("content-length", 1024 * 1024 + 1)
            .body(Body::from(vec![b' '; 1024 * 1024 + 1]))
            .expect("request");
        let (status, _, body) = crate::support::send(app(), large).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        crate::support::assert_example(body, "payload-too-large");
    }
}
