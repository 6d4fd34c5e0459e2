//! The example application's routes, through the full middleware stack.

mod common;

use axum::http::StatusCode;
use common::{app, request, send};

// region: health
#[tokio::test]
async fn health_and_ready_answer() {
    let (app, _state, _dir) = app(&[("APP_NAME", "demo")]).await;
    let reply = send(&app, request("GET", "/health", None, None)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json["data"]["status"], "ok");
    assert_eq!(reply.json["data"]["app"], "demo");
    assert!(reply.headers.contains_key("x-request-id"));

    let reply = send(&app, request("GET", "/ready", None, None)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    let checks = reply.json["data"].as_array().unwrap();
    assert_eq!(checks.len(), 3);
    assert_eq!(checks[0]["name"], "database");
    assert_eq!(checks[0]["driver"], "sqlite");
    assert_eq!(checks[1]["name"], "cache");
    assert_eq!(checks[1]["driver"], "memory");
    assert_eq!(checks[2]["name"], "queue");
    assert_eq!(checks[2]["driver"], "memory");
    assert!(checks.iter().all(|c| c["ok"] == true));
}
// endregion: health

#[tokio::test]
async fn ready_is_503_when_the_database_is_gone() {
    let (app, state, _dir) = app(&[]).await;
    state.db.close().await;
    let reply = send(&app, request("GET", "/ready", Some("zh-CN"), None)).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.json["error_code"], "SERVICE_UNAVAILABLE");
    assert_eq!(reply.json["message"], "以下后端不可用：database");
}

#[tokio::test]
async fn ready_checks_redis_when_configured() {
    let Some(r) = test_support::redis("ready_checks_redis_when_configured").await else {
        return;
    };
    let url = r.url.clone();
    let (app, _state, _dir) = app(&[
        ("CACHE_URL", &url),
        ("QUEUE_URL", &url),
        ("APP_NAME", &r.prefix),
    ])
    .await;
    let reply = send(&app, request("GET", "/ready", None, None)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    assert_eq!(reply.json["data"][1]["driver"], "redis");
    assert_eq!(reply.json["data"][2]["driver"], "redis");
}

#[tokio::test]
async fn stored_files_are_served_and_bad_keys_are_json_errors() {
    // Plain `url()` links are served for keys under a public prefix (STORAGE_PUBLIC_PREFIXES).
    let (app, state, _dir) = app(&[("STORAGE_PUBLIC_PREFIXES", "notes")]).await;
    state
        .storage
        .put(
            "notes/1/readme.txt",
            bytes::Bytes::from_static(b"hello"),
            "text/plain",
        )
        .await
        .unwrap();
    let url = state.storage.url("notes/1/readme.txt").unwrap();
    assert_eq!(url, "/storage/notes/1/readme.txt");
    assert_eq!(common::text_of(&app, &url).await, "hello");

    let reply = send(
        &app,
        request("GET", "/storage/notes/9/none.txt", Some("zh"), None),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.json["message"], "文件 notes/9/none.txt 不存在");
    for bad in [
        "/storage/notes/../../etc/passwd",
        "/storage/a//b",
        "/storage/a%00b",
        "/storage/a%5Cb",
    ] {
        let reply = send(&app, request("GET", bad, None, None)).await;
        assert!(
            reply.status == StatusCode::BAD_REQUEST || reply.status == StatusCode::NOT_FOUND,
            "{bad}: {} {}",
            reply.status,
            reply.json
        );
        assert!(reply.json["error_code"].is_string());
    }
}

#[tokio::test]
async fn the_docs_site_is_mounted() {
    let (app, _state, _dir) = app(&[]).await;
    let res = tower::ServiceExt::oneshot(app, request("GET", "/docs/", None, None))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
}
