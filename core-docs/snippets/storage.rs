//! Storage and attachments: the `Storage` drivers and the multipart upload flow.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Multipart, Path, State};
use core_db::attachments::{self, AttachmentRules};
use core_db::storage::{self, StorageConfig};
use core_db::{Attachment, Database, Storage, UploadError};
use core_web::{ApiResponse, ApiResult, AppError};

// region: setup
/// The storage the settings describe: `STORAGE_DRIVER=local` (files under `STORAGE_ROOT`) or
/// `s3` (a bucket on AWS or any S3-compatible server). The settings hold core-db's own
/// `StorageConfig`, so there is nothing to map.
pub fn storage_from_settings(
    settings: &core_web::config::Settings,
) -> core_db::Result<Arc<dyn Storage>> {
    storage::from_config(&settings.storage)
}
// endregion: setup

pub async fn basics(storage: &dyn Storage) -> core_db::Result<()> {
    // region: basics
    storage
        .put(
            "reports/2024/q1.csv",
            "month,total\n1,42\n".into(),
            "text/csv",
        )
        .await?;
    assert!(storage.exists("reports/2024/q1.csv").await?);
    let bytes = storage.get("reports/2024/q1.csv").await?; // None when missing
    assert_eq!(bytes.as_deref(), Some(&b"month,total\n1,42\n"[..]));

    let public = storage.url("reports/2024/q1.csv")?; // only for public objects
    let private = storage
        .presign_get("reports/2024/q1.csv", Duration::from_secs(300))
        .await?;
    tracing::info!(%public, %private, "links");

    storage.delete("reports/2024/q1.csv").await?; // deleting a missing object is fine
    // Keys are checked before they reach a driver: nothing outside the root or bucket.
    assert!(
        storage
            .put("../etc/passwd", "x".into(), "text/plain")
            .await
            .is_err()
    );
    // endregion: basics
    Ok(())
}

// region: upload
#[derive(Clone)]
pub struct AppState {
    pub db: Database,
    pub storage: Arc<dyn Storage>,
}

/// `POST /articles/{id}/cover` with a multipart form holding the image in the field `cover`.
async fn upload_cover(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    mut form: Multipart,
) -> ApiResult<Attachment> {
    if !article_exists(&state.db, id).await? {
        return Err(AppError::NotFound(format!("No article {id}")));
    }
    // What the file may be; the type is read from its bytes, not from its name.
    let rules = AttachmentRules::images()
        .max_size(5 * 1024 * 1024) // checked while the file streams in: 413 past it
        .max_dimensions(4000, 4000);
    let owner = format!("articles/{id}"); // key: articles/{id}/yyyy/mm/dd/<uuid>.png
    let db = state.db.clone();
    let (cover, ()) = attachments::upload_from_with(
        &mut form,
        "cover",
        &owner,
        &rules,
        &state.storage,
        // After the file is stored: the row that points at it. If this fails, the file is
        // deleted again and no orphan is left.
        |cover| async move { save_cover(&db, id, &cover).await },
    )
    .await?; // an UploadError keeps its status: 400, 413, or 422 under the field
    Ok(ApiResponse::created(cover, "Cover uploaded"))
}

/// The model keeps the attachment as JSON in a column.
async fn save_cover(db: &Database, id: i64, cover: &Attachment) -> Result<(), UploadError> {
    let json = serde_json::to_string(cover).map_err(anyhow::Error::from)?;
    let sql = "UPDATE articles SET cover = $1 WHERE id = $2";
    match db {
        Database::Postgres(pool) => sqlx::query(sql)
            .bind(json)
            .bind(id)
            .execute(pool)
            .await
            .map(drop),
        Database::Sqlite(pool) => sqlx::query(sql)
            .bind(json)
            .bind(id)
            .execute(pool)
            .await
            .map(drop),
    }
    .map_err(core_db::Error::from)?;
    Ok(())
}

pub fn routes(state: AppState) -> Router {
    let routes = Router::new()
        .route("/articles/{id}/cover", axum::routing::post(upload_cover))
        .with_state(state);
    core_web::middleware::stack(routes, &core_web::config::HttpConfig::default())
}
// endregion: upload

// region: replace
/// Replacing a cover: store the new one, then delete the old file.
pub async fn replace_cover(
    state: &AppState,
    old: Option<Attachment>,
    new: &Attachment,
) -> Result<(), UploadError> {
    save_cover(&state.db, 1, new).await?;
    if let Some(old) = old {
        old.delete(state.storage.as_ref()).await?;
    }
    Ok(())
}
// endregion: replace

async fn article_exists(db: &Database, id: i64) -> core_db::Result<bool> {
    let sql = "SELECT COUNT(*) FROM articles WHERE id = $1";
    let count: i64 = match db {
        Database::Postgres(pool) => sqlx::query_scalar(sql).bind(id).fetch_one(pool).await?,
        Database::Sqlite(pool) => sqlx::query_scalar(sql).bind(id).fetch_one(pool).await?,
    };
    Ok(count > 0)
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;

    /// A 64×48 PNG header: enough for the sniffer to read the type and the size.
    fn png() -> Vec<u8> {
        let mut bytes = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR".to_vec();
        bytes.extend_from_slice(&64u32.to_be_bytes());
        bytes.extend_from_slice(&48u32.to_be_bytes());
        bytes.extend_from_slice(&[8, 6, 0, 0, 0, 0, 0, 0, 0]);
        bytes.extend_from_slice(&[0u8; 64]);
        bytes
    }

    fn form(field: &str, file_name: &str, content: &[u8]) -> (String, Vec<u8>) {
        let boundary = "rustforge-docs-boundary";
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(content);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        (format!("multipart/form-data; boundary={boundary}"), body)
    }

    async fn post(
        app: &Router,
        uri: &str,
        (content_type, body): (String, Vec<u8>),
    ) -> (StatusCode, Value) {
        let request = Request::post(uri)
            .header("content-type", content_type)
            .body(Body::from(body))
            .expect("request");
        let response = app.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, serde_json::from_slice(&bytes).expect("JSON"))
    }

    #[tokio::test]
    async fn multipart_to_storage_to_row() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let storage = storage::from_config(&StorageConfig {
            root: dir.path().to_path_buf(),
            public_url: "/storage".into(),
            ..StorageConfig::default()
        })?;
        basics(storage.as_ref()).await?;

        let db = Database::connect("sqlite::memory:").await?;
        db.execute("CREATE TABLE articles (id INTEGER PRIMARY KEY, cover TEXT); INSERT INTO articles (id) VALUES (1);")
            .await?;
        let app = routes(AppState {
            db: db.clone(),
            storage: Arc::clone(&storage),
        });

        // The page's curl command (snippets/shell/requests.sh, region `upload-cover`), with a
        // 64×48 PNG as photo.png; the answer has the shape the page shows.
        let [upload]: [_; 1] = crate::curl::requests("upload-cover", &[("photo.png", &png())])
            .try_into()
            .expect("one command");
        let (status, _, body) = crate::support::send(app.clone(), upload).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        crate::support::assert_shape(&body, "cover-uploaded");
        let example = crate::support::example("cover-uploaded");
        for key in ["content_type", "original_name"] {
            assert_eq!(body["data"][key], example["data"][key], "{key}");
        }
        assert_eq!(body["message"], example["message"]);
        assert_eq!(body["data"]["size"], png().len());
        assert_eq!(
            body["data"]["url"].as_str(),
            Some(format!("/storage/{}", body["data"]["path"].as_str().expect("path")).as_str())
        );
        let path = body["data"]["path"].as_str().expect("path");
        assert!(
            path.starts_with("articles/1/") && path.ends_with(".png"),
            "{path}"
        );
        assert_eq!(
            (
                body["data"]["width"].as_u64(),
                body["data"]["height"].as_u64()
            ),
            (Some(64), Some(48))
        );
        assert!(storage.exists(path).await?);
        let saved: String = sqlx::query_scalar("SELECT cover FROM articles WHERE id = 1")
            .fetch_one(db.as_sqlite().expect("sqlite"))
            .await?;
        let saved: Attachment = serde_json::from_str(&saved)?;
        assert_eq!(saved.path, path);

        let (status, body) = post(
            &app,
            "/articles/1/cover",
            form("cover", "notes.png", b"just some text"),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["error_code"], "VALIDATION_ERROR");
        assert!(body["errors"]["cover"].is_array(), "{body}");

        let (status, _) = post(
            &app,
            "/articles/1/cover",
            form("other", "cover.png", &png()),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _) = post(
            &app,
            "/articles/9/cover",
            form("cover", "cover.png", &png()),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let _ = replace_cover;
        let _ = storage_from_settings;
        Ok(())
    }
}
