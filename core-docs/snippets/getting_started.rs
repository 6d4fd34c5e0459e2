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

    // SQLite file by default, migrated on start (MIGRATE_ON_START).
    let db = Database::from_config(&settings.database).await?;
    let cache = Cache::from_config(&settings.cache, settings.app_name.clone()).await?;

    let app = router(AppState { db, cache }, &settings);
    core_web::server::run(app, settings.addr(), settings.http.shutdown_grace).await?;
    Ok(())
}
// endregion: main

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    /// The page's two curl commands (`snippets/shell/requests.sh`, region `try-it`) get the
    /// answers it shows.
    #[tokio::test]
    async fn the_first_app_answers() {
        let settings = Settings::from_lookup(|_| None).expect("defaults are valid");
        let state = AppState {
            db: Database::connect("sqlite::memory:").await.expect("sqlite"),
            cache: Cache::memory("docs-getting-started"),
        };
        let app = router(state, &settings);
        let [hello, nope]: [_; 2] = crate::curl::requests("try-it", &[])
            .try_into()
            .expect("two commands");

        let (status, headers, body) = crate::support::send(app.clone(), hello).await;
        assert_eq!(status, StatusCode::OK);
        assert!(headers.contains_key("x-request-id"));
        crate::support::assert_example(body, "hello");

        // An unknown route is the one error shape, translated.
        let (status, _, body) = crate::support::send(app, nope).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        crate::support::assert_example(body, "nope-zh");
    }
}
