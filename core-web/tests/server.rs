//! Graceful shutdown over real sockets: in-flight requests finish, new connections are refused.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use core_web::ApiResponse;
use core_web::config::HttpConfig;
use test_support::http_request;

fn app() -> Router {
    core_web::middleware::stack(
        Router::new()
            .route("/fast", get(|| async { ApiResponse::success("fast", "") }))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_millis(600)).await;
                    ApiResponse::success("slow", "")
                }),
            ),
        &HttpConfig::default(),
    )
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish_and_refuses_new_ones() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(core_web::server::serve(
        listener,
        app(),
        async {
            let _ = stop_rx.await;
        },
        Duration::from_secs(10),
    ));

    let fast = http_request(addr, "GET", "/fast", &[], b"")
        .await
        .expect("fast request");
    assert_eq!(fast.status, 200);

    let in_flight = tokio::spawn(async move { http_request(addr, "GET", "/slow", &[], b"").await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    stop_tx.send(()).expect("server is running");
    tokio::time::sleep(Duration::from_millis(100)).await;

    assert!(
        http_request(addr, "GET", "/fast", &[], b"").await.is_err(),
        "a new connection after shutdown began is refused"
    );
    let slow = in_flight
        .await
        .expect("task")
        .expect("the in-flight request completes");
    assert_eq!(slow.status, 200);
    assert_eq!(slow.json()["data"], "slow");
    let result = tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("server stops")
        .expect("task");
    assert!(result.is_ok(), "serve returns Ok: {result:?}");
}

#[tokio::test]
async fn the_grace_period_bounds_shutdown() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = core_web::middleware::stack(
        Router::new().route(
            "/hang",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                ApiResponse::success((), "")
            }),
        ),
        &HttpConfig {
            request_timeout: Duration::from_secs(120),
            ..HttpConfig::default()
        },
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(core_web::server::serve(
        listener,
        router,
        async {
            let _ = stop_rx.await;
        },
        Duration::from_millis(300),
    ));
    let _hanging = tokio::spawn(async move { http_request(addr, "GET", "/hang", &[], b"").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    stop_tx.send(()).expect("server is running");
    let result = tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("server stops")
        .expect("task");
    assert!(result.is_ok());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "stopped after the grace period"
    );
}

/// One `Shutdown` stops the server like the future does: the in-flight request finishes, and
/// `Shutdown::wait` returns only once the server has drained.
#[tokio::test]
async fn a_shared_shutdown_drains_the_server_and_wait_covers_the_drain() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shutdown = core_web::server::Shutdown::new();
    let serving = shutdown.clone();
    let server = tokio::spawn(async move {
        core_web::server::serve_with_shutdown(listener, app(), &serving, Duration::from_secs(10))
            .await
    });
    let in_flight = tokio::spawn(async move { http_request(addr, "GET", "/slow", &[], b"").await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let cancelled_at = std::time::Instant::now();
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), shutdown.wait())
        .await
        .expect("the drain ends");
    // The slow handler had about 450 ms left when the shutdown was asked for.
    assert!(
        cancelled_at.elapsed() >= Duration::from_millis(300),
        "wait returned only after the in-flight request was answered ({:?})",
        cancelled_at.elapsed()
    );
    let slow = in_flight
        .await
        .expect("task")
        .expect("the in-flight request completes");
    assert_eq!(slow.status, 200);
    let result = server.await.expect("task");
    assert!(result.is_ok(), "serve_with_shutdown returns Ok: {result:?}");
}
