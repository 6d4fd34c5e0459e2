//! Helpers shared by the app's integration tests.
#![allow(dead_code, missing_docs)]

use std::collections::HashMap;

use app::{AppContext, Settings};
use axum::Router;
use axum::body::Body;
use axum::http::Request;

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
