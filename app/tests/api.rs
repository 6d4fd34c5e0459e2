//! The example application's routes, through the full middleware stack.

mod common;

use axum::http::StatusCode;
use common::{app, request, send};
use serde_json::json;

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
    assert_eq!(checks.len(), 2);
    assert_eq!(checks[0]["name"], "database");
    assert_eq!(checks[0]["driver"], "sqlite");
    assert_eq!(checks[1]["name"], "cache");
    assert_eq!(checks[1]["driver"], "memory");
    assert!(checks.iter().all(|c| c["ok"] == true));
}

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
    let (app, _state, _dir) = app(&[("CACHE_URL", &url), ("APP_NAME", &r.prefix)]).await;
    let reply = send(&app, request("GET", "/ready", None, None)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    assert_eq!(reply.json["data"][1]["driver"], "redis");
}

#[tokio::test]
async fn notes_lifecycle_in_english() {
    let (app, _state, _dir) = app(&[]).await;
    let body = json!({"title": "Buy milk", "tags": [{"name": "home"}, {"name": "shop"}]});
    let reply = send(
        &app,
        request("POST", "/api/v1/notes", Some("en"), Some(&body.to_string())),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
    assert_eq!(reply.json["message"], "Note created");
    assert_eq!(reply.json["data"]["title"], "Buy milk");
    assert_eq!(reply.json["data"]["priority"], 3);
    let id = reply.json["data"]["id"].as_u64().unwrap();

    let reply = send(
        &app,
        request("GET", &format!("/api/v1/notes/{id}"), None, None),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json["data"]["tags"][1]["name"], "shop");

    let second = json!({"title": "Call Ann", "priority": 1});
    let reply = send(
        &app,
        request("POST", "/api/v1/notes", None, Some(&second.to_string())),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED);

    let reply = send(&app, request("GET", "/api/v1/notes?per_page=1", None, None)).await;
    assert_eq!(reply.json["message"], "2 notes");
    assert_eq!(reply.json["meta"]["total"], 2);
    assert_eq!(reply.json["data"].as_array().unwrap().len(), 1);
    assert_eq!(reply.json["data"][0]["title"], "Call Ann", "newest first");

    let reply = send(
        &app,
        request("DELETE", &format!("/api/v1/notes/{id}"), None, None),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json["message"], format!("Note {id} deleted"));

    let reply = send(
        &app,
        request("GET", &format!("/api/v1/notes/{id}"), None, None),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.json["error_code"], "NOT_FOUND");
    assert_eq!(reply.json["message"], format!("Note {id} does not exist"));
}

#[tokio::test]
async fn notes_errors_in_chinese() {
    let (app, _state, _dir) = app(&[]).await;
    let reply = send(
        &app,
        request("GET", "/api/v1/notes/999", Some("zh-CN,zh;q=0.9"), None),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.json["message"], "笔记 999 不存在");
    assert_eq!(reply.headers["content-language"], "zh");

    let body = json!({"title": "", "priority": 9, "tags": [{"name": "ok"}, {"name": ""}]});
    let reply = send(
        &app,
        request("POST", "/api/v1/notes", Some("zh"), Some(&body.to_string())),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.json
    );
    assert_eq!(reply.json["error_code"], "VALIDATION_ERROR");
    assert_eq!(reply.json["message"], "验证失败");
    let errors = &reply.json["errors"];
    assert_eq!(errors["title"][0], "长度必须在 1 到 120 之间");
    assert_eq!(errors["priority"][0], "必须在 1 到 5 之间");
    assert_eq!(errors["tags[1].name"][0], "长度必须在 1 到 32 之间");
    assert!(errors.get("tags[0].name").is_none());

    let body = json!({"title": "t", "tags": [{"name": "a"}, {"name": "a"}]});
    let reply = send(
        &app,
        request("POST", "/api/v1/notes", Some("zh"), Some(&body.to_string())),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.json["errors"]["tags[1].name"][0], "标签 a 重复出现");
}

#[tokio::test]
async fn bad_input_is_a_json_400() {
    let (app, _state, _dir) = app(&[]).await;
    let cases: &[(&str, &str, Option<&str>)] = &[
        ("POST", "/api/v1/notes", Some("{\"title\": ")),
        ("POST", "/api/v1/notes", Some("[1, 2]")),
        ("POST", "/api/v1/notes", Some("{\"title\": 5}")),
        (
            "POST",
            "/api/v1/notes",
            Some("{\"title\": \"x\", \"colour\": \"red\"}"),
        ),
        ("GET", "/api/v1/notes/not-a-number", None),
        ("GET", "/api/v1/notes?page=x", None),
    ];
    for (method, uri, body) in cases {
        let reply = send(&app, request(method, uri, None, *body)).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{method} {uri} {body:?}: {}",
            reply.json
        );
        assert_eq!(reply.json["error_code"], "BAD_REQUEST");
    }
    let reply = send(&app, request("GET", "/api/v1/notes?page=0", None, None)).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reply.json["errors"]["page"].is_array());

    let reply = send(&app, request("GET", "/nowhere", None, None)).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = send(&app, request("PUT", "/api/v1/notes", None, Some("{}"))).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn an_oversized_body_is_a_json_413() {
    let (app, _state, _dir) = app(&[("BODY_LIMIT_BYTES", "1024")]).await;
    let body = json!({"title": "x".repeat(2000)}).to_string();
    let reply = send(&app, request("POST", "/api/v1/notes", None, Some(&body))).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.json["error_code"], "PAYLOAD_TOO_LARGE");
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
    let res = tower::ServiceExt::oneshot(app.clone(), request("GET", &url, None, None))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(&body[..], b"hello");

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

#[tokio::test]
async fn creating_a_note_dispatches_a_job_the_worker_runs() {
    let (app, state, _dir) = app(&[]).await;
    let queued = || async { state.queue.stats("default").await.unwrap() };
    assert_eq!(queued().await.ready, 0);

    let body = json!({"title": "t", "tags": [{"name": "a"}, {"name": "a"}]});
    let reply = send(
        &app,
        request("POST", "/api/v1/notes", None, Some(&body.to_string())),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        queued().await.ready,
        0,
        "a rejected note dispatches nothing"
    );

    for title in ["first", "second"] {
        let body = json!({ "title": title }).to_string();
        let reply = send(&app, request("POST", "/api/v1/notes", None, Some(&body))).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
    }
    assert_eq!(queued().await.ready, 2, "one job per created note");

    let worker = app::worker(&state)
        .spawn()
        .expect("the app's worker starts");
    let started = std::time::Instant::now();
    while worker.stats().processed < 2 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the worker did not run the jobs: {:?}",
            worker.stats()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    worker.shutdown().await;
    let stats = worker.stats();
    assert_eq!((stats.processed, stats.failed, stats.retried), (2, 0, 0));
    let left = queued().await;
    assert_eq!((left.ready, left.in_flight, left.delayed), (0, 0, 0));
}
