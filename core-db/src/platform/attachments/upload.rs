//! The upload helper: from a multipart field (or any byte stream) to a stored [`Attachment`].

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use axum::extract::multipart::{Field, Multipart, MultipartError};
use bytes::{Bytes, BytesMut};
use chrono::Utc;
use futures_util::{Stream, StreamExt};
use uuid::Uuid;

use super::Attachment;
use super::rules::AttachmentRules;
use super::sniff;
use crate::infra::storage::{Storage, validate_key};

/// How much of the start of a file is read before anything is stored: enough for the magic
/// number and for image headers (a JPEG's frame header comes after its metadata segments).
pub const HEAD_LEN: usize = 256 * 1024;

/// Why an upload was refused or failed: a plain typed error that names no HTTP status.
///
/// The web layer (core-web's `AppError`) converts it into the framework's JSON error when a
/// handler uses `?` on it, with the status each variant means there. Other callers have
/// [`field`](Self::field) (the form field a variant is about) and
/// [`is_client_error`](Self::is_client_error) (what the client sent is at fault).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UploadError {
    /// The form has no file in the field, or the file is empty.
    #[error("no file was uploaded in the `{field}` field")]
    MissingFile {
        /// The form field.
        field: String,
    },
    /// The file is larger than the rules allow. Nothing was stored.
    #[error("the file is larger than the {limit} bytes allowed")]
    TooLarge {
        /// The form field.
        field: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// The file's bytes are of a type the rules do not allow (whatever its name or declared
    /// type says).
    #[error("files of type {detected} are not allowed here (allowed: {allowed})")]
    DisallowedType {
        /// The form field.
        field: String,
        /// The type read from the bytes, `application/octet-stream` when unrecognised.
        detected: String,
        /// The content type the client declared, if any.
        declared: Option<String>,
        /// The allowed patterns, comma-separated.
        allowed: String,
    },
    /// An image breaks the dimension rules, or its dimensions could not be read.
    #[error("{reason}")]
    InvalidImage {
        /// The form field.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// The multipart body could not be read: malformed, cut off, or past the request body limit
    /// (the parser's error, kept as the source, says which).
    #[error("the multipart body could not be read: {}", .0.body_text())]
    Multipart(#[from] MultipartError),
    /// Storing or removing the file failed.
    #[error("storage: {0}")]
    Storage(#[from] crate::Error),
    /// Any other failure, such as one returned by an `after_store` hook.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl UploadError {
    /// The form field the error is about, for a per-field validation message.
    pub fn field(&self) -> Option<&str> {
        match self {
            UploadError::MissingFile { field }
            | UploadError::TooLarge { field, .. }
            | UploadError::DisallowedType { field, .. }
            | UploadError::InvalidImage { field, .. } => Some(field),
            _ => None,
        }
    }

    /// Whether the client is at fault: what it sent is missing, malformed, too large or of the
    /// wrong kind. Storage and hook failures are not.
    pub fn is_client_error(&self) -> bool {
        !matches!(self, UploadError::Storage(_) | UploadError::Other(_))
    }
}

/// What is known about a file before its bytes are read: for [`upload_stream_with`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileInfo {
    /// The form field (used in error messages).
    pub field: String,
    /// The client's file name, if any.
    pub file_name: Option<String>,
    /// The client's declared content type, if any. Only consulted to tell text types apart; the
    /// bytes decide.
    pub content_type: Option<String>,
}

/// Uploads a multipart file field as an [`Attachment`] of `owner` (a key prefix such as
/// `users/42`), checked against `rules`, into `storage`.
///
/// The content type is read from the bytes; the size limit is enforced while the field streams
/// (nothing is stored past it); the key is `owner/yyyy/mm/dd/<uuid>.<ext>` with the extension of
/// the detected type. See [`UploadError`] for the failures.
pub async fn upload(
    field: Field<'_>,
    owner: &str,
    rules: &AttachmentRules,
    storage: &Arc<dyn Storage>,
) -> Result<Attachment, UploadError> {
    upload_with(field, owner, rules, storage, no_hook)
        .await
        .map(|(attachment, ())| attachment)
}

/// Like [`upload`], then runs `after_store` with the stored attachment (to insert the row that
/// references it, say). If the hook fails, or the upload's future is dropped before it finishes,
/// the object is deleted again, so no orphan is left; the hook's error is returned.
///
/// The hook's error type is the caller's, as long as an [`UploadError`] converts into it
/// (`UploadError` itself, `anyhow::Error`, or an app error with a `From` impl).
pub async fn upload_with<T, E, F, Fut>(
    field: Field<'_>,
    owner: &str,
    rules: &AttachmentRules,
    storage: &Arc<dyn Storage>,
    after_store: F,
) -> Result<(Attachment, T), E>
where
    F: FnOnce(Attachment) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: From<UploadError>,
{
    let info = FileInfo {
        field: field.name().unwrap_or_default().to_owned(),
        file_name: field.file_name().map(str::to_owned),
        content_type: field.content_type().map(str::to_owned),
    };
    if info.file_name.is_none() {
        // A plain form value, not a file input.
        return Err(UploadError::MissingFile { field: info.field }.into());
    }
    let body = field.map(|chunk| chunk.map_err(UploadError::Multipart));
    upload_stream_with(body, info, owner, rules, storage, after_store).await
}

/// Reads `multipart` up to the field called `field_name` and [`upload`]s it; the fields before
/// it are skipped. No such field is [`UploadError::MissingFile`].
pub async fn upload_from(
    multipart: &mut Multipart,
    field_name: &str,
    owner: &str,
    rules: &AttachmentRules,
    storage: &Arc<dyn Storage>,
) -> Result<Attachment, UploadError> {
    upload_from_with(multipart, field_name, owner, rules, storage, no_hook)
        .await
        .map(|(attachment, ())| attachment)
}

/// [`upload_from`] with an `after_store` hook; see [`upload_with`].
pub async fn upload_from_with<T, E, F, Fut>(
    multipart: &mut Multipart,
    field_name: &str,
    owner: &str,
    rules: &AttachmentRules,
    storage: &Arc<dyn Storage>,
    after_store: F,
) -> Result<(Attachment, T), E>
where
    F: FnOnce(Attachment) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: From<UploadError>,
{
    loop {
        match multipart.next_field().await {
            Ok(Some(field)) if field.name() == Some(field_name) => {
                return upload_with(field, owner, rules, storage, after_store).await;
            }
            Ok(Some(_)) => continue,
            Ok(None) => {
                return Err(UploadError::MissingFile {
                    field: field_name.to_owned(),
                }
                .into());
            }
            Err(e) => return Err(UploadError::Multipart(e).into()),
        }
    }
}

async fn no_hook(_: Attachment) -> Result<(), UploadError> {
    Ok(())
}

/// The upload helper over any stream of chunks, for files that do not arrive as a multipart
/// field; see [`upload_with`]. Map the stream's errors to [`UploadError`] (for example
/// [`UploadError::Other`]).
pub async fn upload_stream_with<S, T, E, F, Fut>(
    body: S,
    info: FileInfo,
    owner: &str,
    rules: &AttachmentRules,
    storage: &Arc<dyn Storage>,
    after_store: F,
) -> Result<(Attachment, T), E>
where
    S: Stream<Item = Result<Bytes, UploadError>> + Send,
    F: FnOnce(Attachment) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: From<UploadError>,
{
    validate_key(owner).map_err(UploadError::Storage)?;
    let limit = rules.max_bytes();
    let too_large = || UploadError::TooLarge {
        field: info.field.clone(),
        limit,
    };
    let mut body = pin!(body);

    // 1. The head: enough bytes to tell the type and read image dimensions.
    let mut head = BytesMut::new();
    let mut ended = false;
    while head.len() < HEAD_LEN {
        match body.next().await {
            None => {
                ended = true;
                break;
            }
            Some(chunk) => {
                head.extend_from_slice(&chunk?);
                if head.len() as u64 > limit {
                    return Err(too_large().into());
                }
            }
        }
    }
    if ended && head.is_empty() {
        return Err(UploadError::MissingFile { field: info.field }.into());
    }

    // 2. The type from the bytes, then the rules.
    let content_type = content_type_of(&head, info.content_type.as_deref());
    if !rules.allows(content_type) {
        return Err(UploadError::DisallowedType {
            field: info.field,
            detected: content_type.to_owned(),
            declared: info.content_type,
            allowed: rules.allowed_types().join(", "),
        }
        .into());
    }
    let dimensions = if sniff::is_image(content_type) {
        sniff::dimensions(content_type, &head)
    } else {
        None
    };
    if rules.checks_dimensions() && sniff::is_image(content_type) {
        let problem = match dimensions {
            None => Some("the image's dimensions could not be read".to_owned()),
            Some((w, h)) => rules.dimension_problem(w, h),
        };
        if let Some(reason) = problem {
            return Err(UploadError::InvalidImage {
                field: info.field,
                reason,
            }
            .into());
        }
    }

    // 3. Store, counting bytes as they stream past.
    let id = Uuid::new_v4();
    let created_at = Utc::now();
    let key = format!(
        "{owner}/{}/{}.{}",
        created_at.format("%Y/%m/%d"),
        id.as_hyphenated(),
        extension(content_type)
    );
    let url = storage.url(&key).map_err(UploadError::Storage)?;
    let failure = Mutex::new(None);
    let limited = Limited {
        head: Some(head.freeze()),
        inner: if ended { None } else { Some(body.as_mut()) },
        total: 0,
        limit,
        field: &info.field,
        failure: &failure,
    };
    let size = match storage
        .put_stream(&key, limited.boxed(), content_type)
        .await
    {
        Ok(size) => size,
        Err(err) => {
            let failure = failure
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            return Err(failure.unwrap_or(UploadError::Storage(err)).into());
        }
    };

    // 4. The hook; the object goes again if it fails or this future is dropped.
    let guard = OrphanGuard {
        storage: Arc::clone(storage),
        key: Some(key.clone()),
    };
    let attachment = Attachment {
        id,
        path: key,
        url,
        content_type: content_type.to_owned(),
        size,
        width: dimensions.map(|d| d.0),
        height: dimensions.map(|d| d.1),
        original_name: info.file_name.as_deref().and_then(clean_file_name),
        created_at,
    };
    match after_store(attachment.clone()).await {
        Ok(value) => {
            guard.disarm();
            Ok((attachment, value))
        }
        Err(err) => {
            guard.remove().await;
            Err(err)
        }
    }
}

/// The content type of a file starting with `head`: the sniffed type; for text, the declared
/// type when it is one of a few harmless text types; `application/octet-stream` when unknown.
fn content_type_of(head: &[u8], declared: Option<&str>) -> &'static str {
    match sniff::sniff(head) {
        Some(sniff::TEXT) => {
            let declared = declared
                .and_then(|d| d.split(';').next())
                .map(|d| d.trim().to_ascii_lowercase());
            match declared.as_deref() {
                Some("text/csv") => "text/csv",
                Some("text/markdown") => "text/markdown",
                Some("text/tab-separated-values") => "text/tab-separated-values",
                _ => sniff::TEXT,
            }
        }
        Some(detected) => detected,
        None => crate::infra::storage::DEFAULT_CONTENT_TYPE,
    }
}

/// The file extension stored keys get for `content_type`.
pub fn extension(content_type: &str) -> &'static str {
    match content_type {
        sniff::PNG => "png",
        sniff::JPEG => "jpg",
        sniff::GIF => "gif",
        sniff::WEBP => "webp",
        sniff::PDF => "pdf",
        sniff::TEXT => "txt",
        "text/csv" => "csv",
        "text/markdown" => "md",
        "text/tab-separated-values" => "tsv",
        _ => "bin",
    }
}

/// The client's file name without any directory part or control characters, at most 255
/// characters; `None` if nothing is left.
fn clean_file_name(name: &str) -> Option<String> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let clean: String = base.chars().filter(|c| !c.is_control()).take(255).collect();
    let clean = clean.trim();
    (!clean.is_empty()).then(|| clean.to_owned())
}

/// The body handed to storage: the head, then the rest of the field, failing (and recording
/// why) once more than `limit` bytes have passed or the field errors.
struct Limited<'a, S> {
    head: Option<Bytes>,
    inner: Option<Pin<&'a mut S>>,
    total: u64,
    limit: u64,
    field: &'a str,
    failure: &'a Mutex<Option<UploadError>>,
}

impl<S> Limited<'_, S> {
    fn fail(&mut self, err: UploadError) -> Poll<Option<std::io::Result<Bytes>>> {
        let message = err.to_string();
        *self.failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(err);
        self.inner = None;
        Poll::Ready(Some(Err(std::io::Error::other(message))))
    }
}

impl<S> Stream for Limited<'_, S>
where
    S: Stream<Item = Result<Bytes, UploadError>>,
{
    type Item = std::io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let chunk = match this.head.take() {
            Some(head) => head,
            None => {
                let Some(inner) = this.inner.as_mut() else {
                    return Poll::Ready(None);
                };
                match inner.as_mut().poll_next(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(None) => {
                        this.inner = None;
                        return Poll::Ready(None);
                    }
                    Poll::Ready(Some(Err(err))) => return this.fail(err),
                    Poll::Ready(Some(Ok(chunk))) => chunk,
                }
            }
        };
        this.total += chunk.len() as u64;
        if this.total > this.limit {
            let err = UploadError::TooLarge {
                field: this.field.to_owned(),
                limit: this.limit,
            };
            return this.fail(err);
        }
        Poll::Ready(Some(Ok(chunk)))
    }
}

/// Deletes a stored object unless disarmed: awaited when the hook fails, spawned when the upload
/// future is dropped half-way.
struct OrphanGuard {
    storage: Arc<dyn Storage>,
    key: Option<String>,
}

impl OrphanGuard {
    fn disarm(mut self) {
        self.key = None;
    }

    async fn remove(mut self) {
        if let Some(key) = self.key.take() {
            remove_orphan(&*self.storage, &key).await;
        }
    }
}

impl Drop for OrphanGuard {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else {
            return;
        };
        let storage = Arc::clone(&self.storage);
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move { remove_orphan(&*storage, &key).await });
            }
            Err(_) => tracing::error!(
                key,
                "upload cancelled outside a runtime; object left behind"
            ),
        }
    }
}

async fn remove_orphan(storage: &dyn Storage, key: &str) {
    if let Err(err) = storage.delete(key).await {
        tracing::error!(key, error = %err, "could not delete the object of a failed upload");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_types_come_from_a_short_list() {
        assert_eq!(
            content_type_of(b"a,b\n1,2\n", Some("text/csv; charset=utf-8")),
            "text/csv"
        );
        assert_eq!(
            content_type_of(b"<script>", Some("text/html")),
            "text/plain"
        );
        assert_eq!(
            content_type_of(b"%PDF-1.4", Some("text/csv")),
            "application/pdf"
        );
        assert_eq!(
            content_type_of(b"\x7fELF\x02", Some("image/png")),
            "application/octet-stream"
        );
    }

    #[test]
    fn file_names_lose_their_directories() {
        assert_eq!(
            clean_file_name("../../etc/passwd").as_deref(),
            Some("passwd")
        );
        assert_eq!(
            clean_file_name("C:\\Users\\me\\cat.png").as_deref(),
            Some("cat.png")
        );
        assert_eq!(clean_file_name("a\nb.txt").as_deref(), Some("ab.txt"));
        assert_eq!(clean_file_name("dir/"), None);
    }

    #[test]
    fn errors_say_whose_fault_they_are() {
        let field = || "f".to_owned();
        let too_large = UploadError::TooLarge {
            field: field(),
            limit: 1,
        };
        assert!(too_large.is_client_error());
        assert_eq!(
            too_large.to_string(),
            "the file is larger than the 1 bytes allowed"
        );
        let wrong = UploadError::DisallowedType {
            field: field(),
            detected: "x/y".into(),
            declared: None,
            allowed: "image/png".into(),
        };
        assert_eq!(wrong.field(), Some("f"));
        assert!(wrong.is_client_error());
        let storage = UploadError::Storage(crate::Error::Config("x".into()));
        assert_eq!(storage.field(), None);
        assert!(!storage.is_client_error());
    }
}
