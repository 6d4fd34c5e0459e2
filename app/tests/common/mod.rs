//! Helpers shared by the app's integration tests.
#![allow(dead_code, missing_docs)]

use std::collections::HashMap;

use app::AppState;
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use core_web::config::Settings;
use http_body_util::BodyExt;
use tower::ServiceExt;

/// An app on a fresh SQLite file and a memory cache; keep the `TempDir` alive with it.
pub async fn app(extra: &[(&str, &str)]) -> (Router, AppState, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}", dir.path().join("app.sqlite3").display());
    let mut vars: HashMap<String, String> = HashMap::from([
        ("DATABASE_URL".to_owned(), url),
        ("CACHE_URL".to_owned(), "memory://".to_owned()),
        (
            "STORAGE_ROOT".to_owned(),
            dir.path().join("storage").display().to_string(),
        ),
    ]);
    for (k, v) in extra {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    let settings = Settings::from_lookup(|name| vars.get(name).cloned()).expect("settings");
    app::init_i18n(&settings).expect("translations");
    let state = AppState::connect(settings).await.expect("state");
    (app::router(state.clone()), state, dir)
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: serde_json::Value,
}

/// Sends `req` through `app` and asserts the body is JSON.
pub async fn send(app: &Router, req: Request<Body>) -> Reply {
    let res = app.clone().oneshot(req).await.expect("infallible router");
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        content_type.starts_with("application/json"),
        "{status} answered with content-type {content_type:?}: {}",
        String::from_utf8_lossy(&bytes)
    );
    let json = serde_json::from_slice(&bytes).expect("JSON body");
    Reply {
        status,
        headers,
        json,
    }
}

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
