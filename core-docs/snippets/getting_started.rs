//! Getting started: the smallest complete Rustforge application.

// region: main
use axum::Router;
use axum::routing::get;
use core_db::{Cache, Database};
use core_web::config::Settings;
use core_web::{ApiResponse, ApiResult};

/// Everything a handler can reach; every field is a cheap handle.
#[derive(Clone)]
pub struct AppState {
    pub db: Database,
    pub cache: Cache,
}

async fn hello() -> ApiResult<&'static str> {
    Ok(ApiResponse::success("Hello from Rustforge", ""))
}

/// The routes plus the framework's middleware stack, so tests drive exactly what `main` serves.
pub fn router(state: AppState, settings: &Settings) -> Router {
    let routes = Router::new().route("/hello", get(hello)).with_state(state);
    core_web::middleware::stack(routes, &settings.http)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?; // environment, .env, rustforge.toml
    core_web::telemetry::init(&settings.log)?;

    let db = Database::connect(&settings.database_url).await?; // SQLite file by default
    if settings.migrate_on_start {
        db.migrate().await?;
    }
    let cache = Cache::from_url(&settings.cache_url, settings.app_name.clone()).await?;

    let app = router(AppState { db, cache }, &settings);
    core_web::server::run(app, settings.addr(), settings.http.shutdown_grace).await?;
    Ok(())
}
// endregion: main

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn the_first_app_answers() {
        let settings = Settings::from_lookup(|_| None).expect("defaults are valid");
        let state = AppState {
            db: Database::connect("sqlite::memory:").await.expect("sqlite"),
            cache: Cache::memory("docs-getting-started"),
        };
        let response = router(state, &settings)
            .oneshot(Request::get("/hello").body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers().contains_key("x-request-id"));
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        assert_eq!(&body[..], br#"{"data":"Hello from Rustforge"}"#);
    }

    #[tokio::test]
    async fn an_unknown_route_is_a_translated_json_error() {
        let settings = Settings::from_lookup(|_| None).expect("defaults are valid");
        let state = AppState {
            db: Database::connect("sqlite::memory:").await.expect("sqlite"),
            cache: Cache::memory("docs-getting-started"),
        };
        let request = Request::get("/nope")
            .header("accept-language", "zh-CN")
            .body(Body::empty())
            .expect("request");
        let response = router(state, &settings)
            .oneshot(request)
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(body["message"], "没有 GET /nope 的路由");
        assert_eq!(body["error_code"], "NOT_FOUND");
    }
}
