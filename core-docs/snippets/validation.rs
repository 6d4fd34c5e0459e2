//! Validation: `ValidatedJson`, nested rules, custom rules and translated messages.

use axum::Router;
use axum::routing::post;
use core_web::{ApiResponse, ApiResult, AppError, ValidatedJson};
use serde::{Deserialize, Serialize};
use validator::{Validate, ValidationError};

// region: input
#[derive(Debug, Deserialize, Validate)]
pub struct CreateArticle {
    #[validate(length(min = 1, max = 120))]
    pub title: String,
    #[validate(email)]
    pub author_email: String,
    #[validate(range(min = 1, max = 5))]
    pub priority: u8,
    #[validate(custom(function = "validate_slug"))]
    pub slug: String,
    /// Each tag is validated too; errors are reported as `tags[1].name`.
    #[serde(default)]
    #[validate(length(max = 10), nested)]
    pub tags: Vec<Tag>,
}

#[derive(Debug, Serialize, Deserialize, Validate)]
pub struct Tag {
    // A `message` is a translation key, looked up in the request's locale.
    #[validate(length(min = 1, max = 32, message = "articles.tag_length"))]
    pub name: String,
}

/// Lowercase letters, digits and dashes.
fn validate_slug(slug: &str) -> Result<(), ValidationError> {
    let ok = !slug.is_empty()
        && slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new("slug").with_message("articles.slug_format".into()))
    }
}
// endregion: input

// region: handler
async fn create(ValidatedJson(input): ValidatedJson<CreateArticle>) -> ApiResult<String> {
    // Only a body that parsed *and* passed every rule reaches this line.
    Ok(ApiResponse::created(input.slug, "Article created"))
}

pub fn router() -> Router {
    let routes = Router::new().route("/articles", post(create));
    core_web::middleware::stack(routes, &core_web::config::HttpConfig::default())
}
// endregion: handler

// region: manual
/// Validating a body that did not come through `ValidatedJson`: a multipart field, a
/// message from a queue, a file.
pub fn parse_article(bytes: &[u8]) -> Result<CreateArticle, AppError> {
    let input: CreateArticle = core_web::validation::parse_json(bytes)?; // 400 on bad JSON
    input
        .validate()
        .map_err(core_web::validation::validation_error)?; // 422 with field paths
    Ok(input)
}
// endregion: manual

// region: catalog
const EN: &str = r#"{"articles": {
  "tag_length": "A tag has 1 to :max characters",
  "slug_format": "Use lowercase letters, digits and dashes"
}}"#;
const ZH: &str = r#"{"articles": {
  "tag_length": "标签长度为 1 到 :max 个字符",
  "slug_format": "只能使用小写字母、数字和连字符"
}}"#;
// endregion: catalog

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use serde_json::{Value, json};
    use tower::ServiceExt;

    use super::*;

    async fn post_json(body: &str, locale: Option<&str>) -> (StatusCode, Value) {
        core_i18n::add_catalog("en", EN).expect("en");
        core_i18n::add_catalog("zh", ZH).expect("zh");
        let mut request = Request::post("/articles").header("content-type", "application/json");
        if let Some(locale) = locale {
            request = request.header("accept-language", locale);
        }
        let response = router()
            .oneshot(request.body(Body::from(body.to_owned())).expect("request"))
            .await
            .expect("infallible");
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let body: Value = serde_json::from_slice(&bytes).expect("JSON");
        (status, body)
    }

    /// The request body shown on the page.
    fn invalid() -> String {
        crate::support::example("validation-request").to_string()
    }

    #[tokio::test]
    async fn failures_are_422_with_field_paths() {
        let (status, body) = post_json(&invalid(), None).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        crate::support::assert_example(body, "validation-en");
    }

    #[tokio::test]
    async fn messages_follow_the_request_locale() {
        let (status, body) = post_json(&invalid(), Some("zh-CN,zh;q=0.9")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        crate::support::assert_example(body, "validation-zh");
    }

    #[tokio::test]
    async fn bad_json_and_wrong_types_are_400() {
        // The page's curl command (snippets/shell/requests.sh, region `malformed-json`).
        core_i18n::add_catalog("en", EN).expect("en");
        let (status, _, body) =
            crate::support::send(router(), crate::curl::request("malformed-json")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error_code"], "BAD_REQUEST");
        assert!(
            body["message"]
                .as_str()
                .expect("message")
                .contains("line 1 column 15"),
            "{body}"
        );

        let (status, body) = post_json(
            r#"{"title": "x", "author_email": "a@b.co", "priority": "high", "slug": "x"}"#,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body["errors"]["priority"].is_array(), "{body}");

        let ok =
            r#"{"title": "Hi", "author_email": "ada@example.com", "priority": 2, "slug": "hi"}"#;
        let (status, body) = post_json(ok, None).await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(body, json!({"data": "hi", "message": "Article created"}));
    }

    #[test]
    fn manual_validation_gives_the_same_errors() {
        core_i18n::add_catalog("en", EN).expect("en");
        let error = parse_article(invalid().as_bytes()).expect_err("invalid");
        assert_eq!(error.error_code(), "VALIDATION_ERROR");
        let error = parse_article(b"[").expect_err("malformed");
        assert_eq!(error.error_code(), "BAD_REQUEST");
    }
}
