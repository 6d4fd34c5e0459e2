//! Helpers shared by the app's integration tests.
#![allow(dead_code, missing_docs)]

pub mod process;

use std::collections::HashMap;

use app::{AppContext, Settings};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;

// region: sqlite-app
/// An app on a fresh SQLite file and a memory cache; keep the `TempDir` alive with it.
pub async fn app(extra: &[(&str, &str)]) -> (Router, AppContext, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}", dir.path().join("app.sqlite3").display());
    let mut vars: HashMap<String, String> = HashMap::from([
        ("DATABASE_URL".to_owned(), url),
        ("CACHE_URL".to_owned(), "memory://".to_owned()),
        (
            "STORAGE_ROOT".to_owned(),
            dir.path().join("storage").display().to_string(),
        ),
        (
            "DATA_DIR".to_owned(),
            dir.path().join("data").display().to_string(),
        ),
    ]);
    for (k, v) in extra {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    let settings = Settings::from_lookup(|name| vars.get(name).cloned()).expect("settings");
    let state = AppContext::connect(settings).await.expect("state");
    (app::router(state.clone()), state, dir)
}
// endregion: sqlite-app

#[allow(unused_imports)] // not every test binary sends requests
pub use test_support::{JsonReply as Reply, send_json as send};

pub fn request(method: &str, uri: &str, locale: Option<&str>, body: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(locale) = locale {
        builder = builder.header("accept-language", locale);
    }
    match body {
        Some(body) => builder
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned())),
        None => builder.body(Body::empty()),
    }
    .expect("request")
}

// region: client
/// A client and its key, made through `POST /v1/clients`.
pub struct Client {
    pub id: String,
    pub key: String,
}

pub async fn register(router: &Router) -> Client {
    let req = Request::post("/v1/clients")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"name": "api test"}"#))
        .unwrap();
    let reply = send(router, req).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
    Client {
        id: reply.json["data"]["client_id"].as_str().unwrap().to_owned(),
        key: reply.json["data"]["api_key"].as_str().unwrap().to_owned(),
    }
}

pub async fn call(
    router: &Router,
    client: &Client,
    method: &str,
    uri: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> Reply {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {}", client.key));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = match body {
        Some(body) => req
            .header("content-type", "application/json")
            .body(Body::from(body.to_string())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    send(router, req).await
}
// endregion: client

// region: start-stop
/// Starts the relay and the workers of `t`, as a worker process does.
pub async fn start(t: &TestApp) -> (core_jobs::Shutdown, app::jobs::Background) {
    let shutdown = core_jobs::Shutdown::new();
    let background = app::jobs::Background::start(&t.ctx, &shutdown, true)
        .await
        .unwrap();
    (shutdown, background)
}

/// Stops what [`start`] started, letting running jobs finish.
pub async fn stop(shutdown: core_jobs::Shutdown, background: app::jobs::Background) {
    shutdown.cancel();
    shutdown.wait().await;
    drop(background);
}
// endregion: start-stop

/// `GET uri` as `client`.
pub async fn get(router: &Router, client: &Client, uri: &str) -> Reply {
    call(router, client, "GET", uri, None, &[]).await
}

/// `DELETE uri` as `client`.
pub async fn delete(router: &Router, client: &Client, uri: &str) -> Reply {
    call(router, client, "DELETE", uri, None, &[]).await
}

/// `GET uri` (no authentication): the body, after checking it is a 200 served as plain text.
pub async fn text_of(router: &Router, uri: &str) -> String {
    let res = tower::ServiceExt::oneshot(
        router.clone(),
        Request::get(uri).body(Body::empty()).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let bytes = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

// region: test-app-type
/// Which drivers a test app runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drivers {
    /// SQLite, the memory cache, the in-process queue, local storage.
    Embedded,
    /// PostgreSQL, Redis (cache and queue), local storage.
    Services,
}

/// An app and what keeps its backends alive (a temporary directory, a fresh PostgreSQL
/// database, a fresh Redis prefix); dropping it cleans them up.
pub struct TestApp {
    pub router: Router,
    pub ctx: AppContext,
    pub dir: tempfile::TempDir,
    pub vars: HashMap<String, String>,
    pub pg: Option<test_support::TestPostgres>,
    pub redis: Option<test_support::TestRedis>,
}
// endregion: test-app-type

impl TestApp {
    /// Another process's view of the same backends: a second context from the same settings.
    pub async fn second_context(&self) -> AppContext {
        let settings =
            Settings::from_lookup(|name| self.vars.get(name).cloned()).expect("settings");
        AppContext::connect(settings).await.expect("second context")
    }
}

// region: test-app
/// An app on `drivers`, or `None` when a service is unreachable (and not required).
pub async fn test_app(drivers: Drivers, test: &str, extra: &[(&str, &str)]) -> Option<TestApp> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut vars: HashMap<String, String> = HashMap::from([
        (
            "STORAGE_ROOT".to_owned(),
            dir.path().join("storage").display().to_string(),
        ),
        (
            "DATA_DIR".to_owned(),
            dir.path().join("data").display().to_string(),
        ),
    ]);
    let (mut pg, mut redis) = (None, None);
    match drivers {
        Drivers::Embedded => {
            let url = format!("sqlite://{}", dir.path().join("app.sqlite3").display());
            vars.insert("DATABASE_URL".to_owned(), url);
            vars.insert("CACHE_URL".to_owned(), "memory://".to_owned());
            vars.insert("QUEUE_URL".to_owned(), "memory://".to_owned());
        }
        Drivers::Services => {
            let db = test_support::postgres(test).await?;
            let r = test_support::redis(test).await?;
            vars.insert("DATABASE_URL".to_owned(), db.url.clone());
            vars.insert("CACHE_URL".to_owned(), r.url.clone());
            vars.insert("QUEUE_URL".to_owned(), r.url.clone());
            vars.insert("APP_NAME".to_owned(), r.prefix.clone());
            pg = Some(db);
            redis = Some(r);
        }
    }
    for (k, v) in extra {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    let settings = Settings::from_lookup(|name| vars.get(name).cloned()).expect("settings");
    let ctx = AppContext::connect(settings).await.expect("context");
    Some(TestApp {
        router: app::router(ctx.clone()),
        ctx,
        dir,
        vars,
        pg,
        redis,
    })
}
// endregion: test-app

// region: on-both
/// `on_both!(test_a, test_b)`: each `async fn NAME(drivers: Drivers, test: &str)` of the file
/// becomes `embedded::NAME` (SQLite + memory) and `services::NAME` (PostgreSQL + Redis).
#[allow(unused_macros)] // not every test binary runs on both driver sets
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(crate::common::Drivers::Embedded, concat!("embedded::", stringify!($name))).await;
            })*
        }
        mod services {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(crate::common::Drivers::Services, concat!("services::", stringify!($name))).await;
            })*
        }
    };
}
// endregion: on-both
