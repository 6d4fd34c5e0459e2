//! File attachments: [`AttachmentRules`](crate::attachments::AttachmentRules) say what an upload
//! may be, the upload helpers ([`upload`](crate::attachments::upload()),
//! [`upload_from`](crate::attachments::upload_from),
//! [`upload_with`](crate::attachments::upload_with)) check a multipart file against them and
//! store it, and the [`Attachment`](crate::Attachment) they return is what a model keeps (in a
//! JSON column) to find it again.
//!
//! - The content type comes from the file's bytes
//!   ([`sniff`](mod@crate::attachments::sniff): PNG, JPEG, GIF, WebP, PDF, plain text), never
//!   only from its name or the client's header.
//! - The size limit is enforced while the file streams: past it the upload stops, nothing is
//!   stored, and the error is [`UploadError::TooLarge`](crate::UploadError::TooLarge).
//! - The object key is `owner/yyyy/mm/dd/<uuid>.<ext>`.
//! - A failure after the object was stored (the `after_store` hook, or the request being
//!   dropped) deletes it again, so no orphan is left.
//! - Failures are [`UploadError`](crate::UploadError)s, plain typed errors that name no HTTP
//!   status. In a handler returning core-web's `ApiResult`, `?` turns them into the framework's
//!   JSON error with the status each means (core-web's `AppError::from_upload` lists them).
//!
//! ```
//! use std::sync::Arc;
//! use axum::extract::{Multipart, State};
//! use core_db::attachments::{self, AttachmentRules};
//! use core_db::{Attachment, LocalStorage, Storage};
//! use core_web::{ApiResponse, ApiResult};
//!
//! #[derive(Clone)]
//! struct AppState {
//!     storage: Arc<dyn Storage>,
//! }
//!
//! async fn upload_avatar(
//!     State(state): State<AppState>,
//!     mut form: Multipart,
//! ) -> ApiResult<Attachment> {
//!     let rules = AttachmentRules::images().max_size(2 * 1024 * 1024).max_dimensions(4096, 4096);
//!     let avatar =
//!         attachments::upload_from(&mut form, "avatar", "users/42", &rules, &state.storage)
//!             .await?;
//!     Ok(ApiResponse::created(avatar, "Avatar uploaded"))
//! }
//!
//! let app: axum::Router = axum::Router::new()
//!     .route("/avatar", axum::routing::post(upload_avatar))
//!     .with_state(AppState {
//!         storage: Arc::new(LocalStorage::new("data/storage", "/storage")),
//!     });
//! # let _ = app;
//! ```

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Result;
use crate::infra::storage::Storage;

pub mod rules;
pub mod sniff;
pub mod upload;

pub use rules::AttachmentRules;
pub use upload::{
    FileInfo, UploadError, upload, upload_from, upload_from_with, upload_stream_with, upload_with,
};

/// A stored file, as a model keeps it (serialize it into a JSON column).
///
/// ```
/// # use core_db::Attachment;
/// let json = r#"{
///     "id": "67e55044-10b1-426f-9247-bb680e5fe0c8",
///     "path": "users/42/2024/05/01/67e55044-10b1-426f-9247-bb680e5fe0c8.png",
///     "url": "/storage/users/42/2024/05/01/67e55044-10b1-426f-9247-bb680e5fe0c8.png",
///     "content_type": "image/png",
///     "size": 1024, "width": 64, "height": 64,
///     "created_at": "2024-05-01T12:00:00Z"
/// }"#;
/// let avatar: Attachment = serde_json::from_str(json)?;
/// assert_eq!(avatar.width, Some(64));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// A fresh id, also the file name in [`path`](Self::path).
    pub id: Uuid,
    /// The storage key: `owner/yyyy/mm/dd/<id>.<ext>`.
    pub path: String,
    /// The public URL ([`Storage::url`]) at upload time; for private files hand out
    /// [`Storage::presign_get`] links instead.
    pub url: String,
    /// The content type read from the bytes.
    pub content_type: String,
    /// Size in bytes.
    pub size: u64,
    /// Width in pixels, for images whose header gave it.
    pub width: Option<u32>,
    /// Height in pixels, for images whose header gave it.
    pub height: Option<u32>,
    /// The client's file name without directories, for display and downloads; never used to
    /// build the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_name: Option<String>,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
}

impl Attachment {
    /// Whether this is an image (PNG, JPEG, GIF or WebP).
    pub fn is_image(&self) -> bool {
        sniff::is_image(&self.content_type)
    }

    /// Deletes the stored file, for when the model that owns it goes.
    pub async fn delete(&self, storage: &dyn Storage) -> Result<()> {
        storage.delete(&self.path).await
    }
}
