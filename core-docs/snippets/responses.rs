//! Responses and errors: `ApiResponse`, `ApiResult` and every way a handler returns an `AppError`.

use std::time::Duration;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use core_db::Database;
use core_i18n::{t, t_args};
use core_web::{ApiResponse, ApiResult, AppError, FieldErrors};
use serde::Serialize;

// region: model
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Article {
    pub id: i64,
    pub title: String,
    pub author_id: i64,
}

impl Article {
    /// `None` when there is no such article; `Err` when the query itself failed.
    pub async fn find(db: &Database, id: i64) -> core_db::Result<Option<Article>> {
        let sql = "SELECT id, title, author_id FROM articles WHERE id = $1";
        Ok(match db {
            Database::Postgres(pool) => sqlx::query_as(sql).bind(id).fetch_optional(pool).await?,
            Database::Sqlite(pool) => sqlx::query_as(sql).bind(id).fetch_optional(pool).await?,
        })
    }
}
// endregion: model

#[derive(Clone)]
pub struct AppState {
    pub db: Database,
}

// region: success
async fn show(State(state): State<AppState>, Path(id): Path<i64>) -> ApiResult<Article> {
    let article = Article::find(&state.db, id)
        .await? // a database error becomes a 500 INTERNAL_ERROR
        .ok_or_else(|| AppError::NotFound(t_args("articles.not_found", &[("id", &id)])))?;
    Ok(ApiResponse::success(article, ""))
}
// endregion: success

// region: created
async fn create(State(state): State<AppState>) -> ApiResult<Article> {
    let article = Article {
        id: 42,
        title: "Hello".to_owned(),
        author_id: 1,
    };
    let _ = state;
    Ok(ApiResponse::created(article, &t("articles.created"))) // 201
}
// endregion: created

// region: meta
#[derive(Serialize)]
struct Page {
    page: u32,
    per_page: u32,
    total: u64,
}

async fn list() -> ApiResult<Vec<&'static str>> {
    Ok(
        ApiResponse::success(vec!["first", "second"], "").with_meta(Page {
            page: 1,
            per_page: 20,
            total: 2,
        }),
    )
}
// endregion: meta

// region: current-user
/// The signed-in user, from a header set by your authentication layer.
pub struct CurrentUser {
    pub id: i64,
    pub is_editor: bool,
}

impl<S: Send + Sync> FromRequestParts<S> for CurrentUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, AppError> {
        let id = parts
            .headers
            .get("x-user-id")
            .and_then(|value| value.to_str().ok()?.parse().ok())
            .ok_or_else(|| AppError::Unauthorized(t("auth.required")))?; // 401
        Ok(CurrentUser {
            id,
            is_editor: id == 1,
        })
    }
}
// endregion: current-user

// region: forbidden
async fn delete(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> ApiResult<()> {
    let article = Article::find(&state.db, id)
        .await?
        .ok_or_else(|| AppError::NotFound(t_args("articles.not_found", &[("id", &id)])))?;
    if article.author_id != user.id && !user.is_editor {
        return Err(AppError::Forbidden(t("articles.delete_forbidden"))); // 403
    }
    // ... delete it ...
    Ok(ApiResponse::success((), ""))
}
// endregion: forbidden

// region: field-errors
async fn rename(Path(id): Path<i64>) -> ApiResult<()> {
    let title_taken = id == 7; // e.g. a uniqueness check against the database
    if title_taken {
        // One field: a shortcut for AppError::Validation.
        return Err(AppError::field("title", t("articles.title_taken")));
    }
    let mut errors = FieldErrors::new();
    errors.insert("title".into(), vec![t("articles.title_reserved")]);
    errors.insert("tags[0].name".into(), vec![t("articles.tag_unknown")]);
    Err(AppError::Validation {
        message: t("articles.cannot_rename"),
        errors,
    })
}
// endregion: field-errors

// region: more-variants
async fn export() -> ApiResult<()> {
    Err(AppError::TooManyRequests {
        message: t("exports.slow_down"),
        retry_after: Some(Duration::from_secs(30)), // sent as `Retry-After: 30`
    })
}

async fn legacy() -> ApiResult<()> {
    // A status no variant names, with your own error code.
    Err(AppError::Status {
        status: axum::http::StatusCode::GONE,
        error_code: "ARTICLE_ARCHIVED".to_owned(),
        message: t("articles.archived"),
    })
}
// endregion: more-variants

// region: map-errors
/// A domain error of your own, raised by the business logic.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("article {0} does not exist")]
    Missing(i64),
    #[error("article {0} is already published")]
    AlreadyPublished(i64),
    #[error(transparent)]
    Database(#[from] core_db::Error),
}

impl PublishError {
    /// Decide, once, what each domain error means over HTTP.
    pub fn into_app_error(self) -> AppError {
        match self {
            PublishError::Missing(id) => {
                AppError::NotFound(t_args("articles.not_found", &[("id", &id)]))
            }
            PublishError::AlreadyPublished(_) => {
                AppError::Conflict(t("articles.already_published"))
            }
            // Anything unexpected stays a 500 whose details only reach the log.
            PublishError::Database(error) => AppError::Internal(error.into()),
        }
    }
}

async fn publish_article(db: &Database, id: i64) -> Result<Article, PublishError> {
    let article = Article::find(db, id)
        .await?
        .ok_or(PublishError::Missing(id))?;
    if article.title.starts_with('[') {
        return Err(PublishError::AlreadyPublished(id));
    }
    Ok(article)
}

async fn publish(State(state): State<AppState>, Path(id): Path<i64>) -> ApiResult<Article> {
    let article = publish_article(&state.db, id)
        .await
        .map_err(PublishError::into_app_error)?;
    Ok(ApiResponse::success(article, &t("articles.published")))
}
// endregion: map-errors

// region: routes
pub fn router(state: AppState) -> axum::Router {
    use axum::routing::{get, post};
    let routes = axum::Router::new()
        .route("/articles", get(list).post(create))
        .route("/articles/{id}", get(show).delete(delete))
        .route("/articles/{id}/rename", post(rename))
        .route("/articles/{id}/publish", post(publish))
        .route("/exports", post(export))
        .route("/legacy", get(legacy))
        .with_state(state);
    core_web::middleware::stack(routes, &core_web::config::HttpConfig::default())
}
// endregion: routes

// region: catalog
const EN: &str = r#"{
  "auth": { "required": "Sign in first" },
  "articles": {
    "not_found": "No article :id",
    "created": "Article created",
    "delete_forbidden": "Only the author or an editor can delete this article",
    "title_taken": "This title is already used",
    "title_reserved": "This title is reserved",
    "tag_unknown": "Unknown tag",
    "cannot_rename": "The article cannot be renamed",
    "already_published": "The article is already published",
    "published": "Published",
    "archived": "This article was archived"
  },
  "exports": { "slow_down": "One export every 30 seconds" }
}"#;
// endregion: catalog

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;

    async fn app() -> axum::Router {
        core_i18n::add_catalog("en", EN).expect("catalog");
        let db = Database::connect("sqlite::memory:").await.expect("sqlite");
        db.execute(
            "CREATE TABLE articles (id INTEGER PRIMARY KEY, title TEXT NOT NULL, author_id INTEGER NOT NULL);
             INSERT INTO articles VALUES (1, 'Hello', 2), (2, '[published]', 2);",
        )
        .await
        .expect("schema");
        router(AppState { db })
    }

    async fn call(
        app: &axum::Router,
        method: &str,
        uri: &str,
        user: Option<&str>,
    ) -> (StatusCode, axum::http::HeaderMap, Value) {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(user) = user {
            request = request.header("x-user-id", user);
        }
        let response = app
            .clone()
            .oneshot(request.body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let body: Value = serde_json::from_slice(&bytes).expect("JSON body");
        (status, headers, body)
    }

    #[tokio::test]
    async fn every_response_has_the_documented_shape() {
        let app = app().await;
        let example = |body: Value, name: &str| crate::support::assert_example(body, name);

        let (status, _, body) = call(&app, "GET", "/articles/1", None).await;
        assert_eq!(status, StatusCode::OK);
        example(body, "article");

        let (status, _, body) = call(&app, "GET", "/articles/9", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        example(body, "not-found");

        let (status, _, body) = call(&app, "POST", "/articles", None).await;
        assert_eq!(status, StatusCode::CREATED);
        example(body, "article-created");

        let (status, _, body) = call(&app, "GET", "/articles", None).await;
        assert_eq!(status, StatusCode::OK);
        example(body, "article-list");

        let (status, _, body) = call(&app, "DELETE", "/articles/1", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        example(body, "unauthorized");

        let (status, _, body) = call(&app, "DELETE", "/articles/1", Some("3")).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        example(body, "forbidden");
        let (status, _, _) = call(&app, "DELETE", "/articles/1", Some("2")).await;
        assert_eq!(status, StatusCode::OK);

        let (status, headers, body) = call(&app, "POST", "/articles/7/rename", None).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        // The one error shape the page describes (snippets/json/error-shape.json), with the
        // request id of the header.
        let shape = crate::support::example("error-shape");
        let keys = |v: &Value| {
            let mut keys: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
            keys.sort();
            keys
        };
        assert_eq!(keys(&body), keys(&shape), "the keys of error-shape.json");
        for key in ["message", "error_code", "request_id"] {
            assert!(body[key].is_string(), "{key}: {body}");
        }
        for messages in body["errors"].as_object().expect("errors").values() {
            let messages = messages.as_array().expect("a list per field");
            assert!(messages.iter().all(Value::is_string), "{messages:?}");
        }
        assert_eq!(
            body["request_id"],
            headers["x-request-id"].to_str().unwrap()
        );
        example(body, "title-taken");
        let (status, _, body) = call(&app, "POST", "/articles/8/rename", None).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        example(body, "cannot-rename");

        let (status, headers, body) = call(&app, "POST", "/exports", None).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers["retry-after"], "30");
        example(body, "rate-limited");

        let (status, _, body) = call(&app, "GET", "/legacy", None).await;
        assert_eq!(status, StatusCode::GONE);
        assert_eq!(body["error_code"], "ARTICLE_ARCHIVED");

        let (status, _, body) = call(&app, "POST", "/articles/2/publish", None).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(body["error_code"], "CONFLICT");
        let (status, _, _) = call(&app, "POST", "/articles/5/publish", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _, body) = call(&app, "POST", "/articles/1/publish", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["message"], "Published");

        // The framework's own rejections have the same shape.
        let (status, headers, body) = call(&app, "GET", "/articles/abc", None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error_code"], "BAD_REQUEST");
        assert!(headers.contains_key("x-request-id"));
        let (status, _, body) = call(&app, "GET", "/nowhere", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        example(body, "route-not-found");
        let (status, headers, body) = call(&app, "PUT", "/articles", None).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(body["error_code"], "METHOD_NOT_ALLOWED");
        assert!(headers.contains_key("allow"));
    }

    #[tokio::test]
    async fn a_database_error_is_a_500_without_details_in_release() {
        let db = Database::connect("sqlite::memory:").await.expect("sqlite");
        // No `articles` table: the query fails and `?` turns the error into AppError::Internal.
        let app = router(AppState { db });
        let (status, _, body) = call(&app, "GET", "/articles/1", None).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error_code"], "INTERNAL_ERROR");
    }
}
