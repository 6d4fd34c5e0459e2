//! Object storage: one [`Storage`](crate::infra::storage::Storage) trait over two drivers that
//! behave the same.
//!
//! - [`LocalStorage`](crate::infra::storage::LocalStorage)
//!   ([`local`](crate::infra::storage::local)): files under a root directory, the embedded
//!   default so `cargo run -p app` needs nothing installed. Writes are atomic (temporary file,
//!   then rename).
//! - [`S3Storage`](crate::infra::storage::S3Storage) ([`s3`](crate::infra::storage::s3)): AWS S3
//!   or any S3-compatible server, on `aws-sdk-s3`. Streams larger than one part go up as a
//!   multipart upload, so memory stays bounded by the part size.
//!
//! Both are used through `Arc<dyn Storage>`; [`from_config`](crate::infra::storage::from_config)
//! picks one from a [`StorageConfig`](crate::infra::storage::StorageConfig). Every key is checked
//! by [`validate_key`](crate::infra::storage::validate_key) before it reaches a driver, so no key
//! can name a file or object outside the root or bucket.
//!
//! ```
//! use std::time::Duration;
//! use core_db::storage::{self, StorageConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> core_db::Result<()> {
//! # let dir = tempfile::tempdir()?;
//! let storage = storage::from_config(&StorageConfig {
//!     root: dir.path().join("storage"),
//!     public_url: "http://localhost:3000/storage".into(),
//!     ..StorageConfig::default() // the local driver
//! })?;
//! storage.put("reports/2024/q1.txt", "hello".into(), "text/plain").await?;
//! assert_eq!(storage.get("reports/2024/q1.txt").await?.as_deref(), Some(&b"hello"[..]));
//! assert_eq!(
//!     storage.url("reports/2024/q1.txt")?,
//!     "http://localhost:3000/storage/reports/2024/q1.txt"
//! );
//! let link = storage.presign_get("reports/2024/q1.txt", Duration::from_secs(300)).await?;
//! assert!(link.contains("signature="));
//! assert!(storage.put("../escape.txt", "no".into(), "text/plain").await.is_err());
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::{Error, Result};

pub mod local;
pub mod s3;

pub use local::LocalStorage;
pub use s3::S3Storage;

/// A stream of body chunks, as [`Storage::put_stream`] takes and [`Storage::get_stream`] returns.
///
/// The lifetime lets a caller stream straight from a borrowed source (an HTTP request body, a
/// multipart field) without copying it into memory first.
pub type ByteStream<'a> = BoxStream<'a, std::io::Result<Bytes>>;

/// Longest accepted key, in bytes (the S3 limit).
pub const MAX_KEY_LEN: usize = 1024;

/// Longest accepted key segment (the part between two `/`), in bytes: the longest file name most
/// filesystems accept.
pub const MAX_SEGMENT_LEN: usize = 255;

/// The content type used when none is known.
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// The `Content-Type` to serve a stored object or file with, from its name's extension as
/// [`mime_guess`] knows it: text types (and JavaScript, always `text/javascript`) carry
/// `; charset=utf-8`; an unknown extension is [`DEFAULT_CONTENT_TYPE`].
///
/// ```
/// use core_db::storage::content_type;
///
/// assert_eq!(content_type("reports/q1.TXT"), "text/plain; charset=utf-8");
/// assert_eq!(content_type("assets/index.js"), "text/javascript; charset=utf-8");
/// assert_eq!(content_type("avatars/42.png"), "image/png");
/// assert_eq!(content_type("no-extension"), "application/octet-stream");
/// ```
pub fn content_type(name: &str) -> std::borrow::Cow<'static, str> {
    match mime_guess::from_path(name).first_raw() {
        Some("text/javascript" | "application/javascript") => {
            "text/javascript; charset=utf-8".into()
        }
        Some(text) if text.starts_with("text/") => format!("{text}; charset=utf-8").into(),
        Some(other) => other.into(),
        None => DEFAULT_CONTENT_TYPE.into(),
    }
}

/// Size of the chunks [`reader_stream`] and the local driver's [`Storage::get_stream`] yield.
const READ_CHUNK: usize = 64 * 1024;

/// Object storage: put, get, delete, check and link to objects by key.
///
/// Keys are `/`-separated relative paths such as `users/42/avatar.png`; every method checks its
/// key with [`validate_key`] first and returns [`Error::InvalidKey`] for a rejected one, before
/// touching the backend. The trait is object safe: hold an `Arc<dyn Storage>` in the app state and
/// pick the driver with [`from_config`].
#[async_trait]
pub trait Storage: Send + Sync + fmt::Debug {
    /// The driver's name: `"local"` or `"s3"`.
    fn driver(&self) -> &'static str;

    /// Stores `bytes` under `key`, replacing any object there.
    async fn put(&self, key: &str, bytes: Bytes, content_type: &str) -> Result<()>;

    /// Stores a stream under `key`, replacing any object there, and returns the number of bytes
    /// written. The stream is consumed as it arrives, so a large body is never held in memory at
    /// once (on S3 at most one multipart part is buffered).
    ///
    /// If the stream yields an error, nothing is stored (the temporary file is removed, the
    /// multipart upload aborted) and the error is returned as [`Error::Io`].
    async fn put_stream(&self, key: &str, body: ByteStream<'_>, content_type: &str) -> Result<u64>;

    /// Stores everything `reader` yields under `key`; see [`Storage::put_stream`].
    async fn put_reader(
        &self,
        key: &str,
        reader: &mut (dyn AsyncRead + Send + Unpin),
        content_type: &str,
    ) -> Result<u64> {
        self.put_stream(key, reader_stream(reader), content_type)
            .await
    }

    /// The whole object at `key`, or `None` when there is none. For large objects prefer
    /// [`Storage::get_stream`].
    async fn get(&self, key: &str) -> Result<Option<Bytes>>;

    /// The object at `key` as a stream of chunks, or `None` when there is none.
    async fn get_stream(&self, key: &str) -> Result<Option<ByteStream<'static>>>;

    /// Deletes the object at `key`. Deleting a missing object succeeds.
    async fn delete(&self, key: &str) -> Result<()>;

    /// Whether an object exists at `key`.
    async fn exists(&self, key: &str) -> Result<bool>;

    /// The public URL of `key`: the configured public URL (or, on S3 without one, the bucket's
    /// own URL) followed by the percent-encoded key. It only works where objects are public;
    /// hand out [`Storage::presign_get`] links for private ones.
    fn url(&self, key: &str) -> Result<String>;

    /// A URL that lets anyone holding it `GET` the object at `key` until `expires` has passed.
    async fn presign_get(&self, key: &str, expires: Duration) -> Result<String>;

    /// A URL that lets anyone holding it `PUT` a body to `key` until `expires` has passed, so a
    /// browser can upload straight to storage.
    async fn presign_put(&self, key: &str, expires: Duration) -> Result<String>;

    /// Like [`Storage::presign_get`], with response headers the backend should send
    /// ([`GetOptions`]). The S3 driver signs them into the URL; the local driver's links are
    /// served by the app, which sets the headers itself, so it ignores them (the default).
    async fn presign_get_with(
        &self,
        key: &str,
        expires: Duration,
        options: &GetOptions,
    ) -> Result<String> {
        let _ = options;
        self.presign_get(key, expires).await
    }

    /// Checks a presigned link that the app serves itself: `query` is the raw query string of a
    /// `method` request (`GET` or `PUT`) for `key`, at time `now`. Call it from the route that
    /// serves [`Storage::url`] links before handing out a private object.
    ///
    /// The local driver checks the signature [`Storage::presign_get`] made
    /// ([`LocalStorage::verify_at`]). The S3 driver's presigned links point at the bucket,
    /// which checks them, so no link to the app verifies there (the default).
    ///
    /// # Errors
    /// [`Error::InvalidSignature`] when the link is missing a parameter, forged, for another
    /// key or method, or expired; [`Error::InvalidKey`] for a rejected key.
    fn verify_signed_url(
        &self,
        method: &str,
        key: &str,
        query: &str,
        now: SystemTime,
    ) -> Result<()> {
        let _ = (method, query, now);
        validate_key(key)?;
        Err(Error::InvalidSignature {
            reason: "this driver's presigned links are checked by the storage backend",
        })
    }
}

/// Response headers for [`Storage::presign_get_with`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GetOptions {
    /// The `Content-Disposition` the response should carry, such as `attachment`.
    pub content_disposition: Option<String>,
    /// The `Content-Type` the response should carry, overriding the stored one.
    pub content_type: Option<String>,
}

impl GetOptions {
    /// No overrides: the backend's own headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the response's `Content-Disposition` (`attachment` makes browsers download it).
    #[must_use]
    pub fn content_disposition(mut self, value: impl Into<String>) -> Self {
        self.content_disposition = Some(value.into());
        self
    }

    /// Sets the response's `Content-Type`.
    #[must_use]
    pub fn content_type(mut self, value: impl Into<String>) -> Self {
        self.content_type = Some(value.into());
        self
    }
}

/// Whether `key` lies under one of `prefixes`, the parts of a bucket or root meant to be public
/// (served to anyone through [`Storage::url`] links). A prefix matches whole segments:
/// `avatars` (or `avatars/`) covers `avatars/42.png` and `avatars/a/b.png`, not
/// `avatars-private/x`. The prefix `*` covers every key; an empty list covers none.
///
/// ```
/// use core_db::storage::is_public_key;
///
/// let public = ["avatars".to_owned(), "docs/public/".to_owned()];
/// assert!(is_public_key(&public, "avatars/42.png"));
/// assert!(is_public_key(&public, "docs/public/guide.pdf"));
/// assert!(!is_public_key(&public, "avatars-private/42.png"));
/// assert!(!is_public_key(&public, "docs/private.pdf"));
/// assert!(!is_public_key(&[], "avatars/42.png"));
/// assert!(is_public_key(&["*".to_owned()], "anything/at/all"));
/// ```
pub fn is_public_key(prefixes: &[String], key: &str) -> bool {
    prefixes.iter().any(|prefix| {
        let prefix = prefix.trim().trim_matches('/');
        if prefix == "*" {
            return true;
        }
        !prefix.is_empty()
            && key
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// Checks that `key` is a safe relative object key, and says why not otherwise.
///
/// Rejected: the empty key; keys longer than [`MAX_KEY_LEN`] bytes and segments longer than
/// [`MAX_SEGMENT_LEN`] bytes; absolute paths (`/etc/passwd`)
/// and Windows drive paths (`C:…`); backslashes; NUL and other control characters; empty
/// segments (`a//b`, a trailing `/`); and `.` or `..` segments. Everything is checked on the raw
/// key: no decoding happens in storage, so `%2e%2e` is an ordinary file name.
///
/// ```
/// use core_db::storage::validate_key;
///
/// assert!(validate_key("users/42/avatar.png").is_ok());
/// for bad in ["", "../etc/passwd", "a/../../b", "/abs", "a\\b", "a//b", "a/", "nul\0"] {
///     assert!(validate_key(bad).is_err(), "{bad:?}");
/// }
/// ```
pub fn validate_key(key: &str) -> Result<()> {
    let reject = |reason: &'static str| {
        Err(Error::InvalidKey {
            key: key.chars().take(200).collect(),
            reason,
        })
    };
    if key.is_empty() {
        return reject("the key is empty");
    }
    if key.len() > MAX_KEY_LEN {
        return reject("the key is longer than 1024 bytes");
    }
    if key.contains('\0') {
        return reject("the key contains a NUL byte");
    }
    if key.chars().any(char::is_control) {
        return reject("the key contains a control character");
    }
    if key.contains('\\') {
        return reject("the key contains a backslash");
    }
    if key.starts_with('/') {
        return reject("the key is an absolute path");
    }
    let bytes = key.as_bytes();
    if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
        return reject("the key starts with a drive letter");
    }
    for segment in key.split('/') {
        match segment {
            "" => return reject("the key has an empty segment (`//` or a trailing `/`)"),
            "." | ".." => return reject("the key has a `.` or `..` segment"),
            s if s.len() > MAX_SEGMENT_LEN => {
                return reject("the key has a segment longer than 255 bytes");
            }
            _ => {}
        }
    }
    Ok(())
}

/// `key` percent-encoded for use in a URL path: every byte but `A-Z a-z 0-9 - . _ ~` and the `/`
/// separators is encoded.
pub fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `base` (without a trailing `/`) joined with the percent-encoded `key`.
pub(crate) fn join_url(base: &str, key: &str) -> String {
    format!("{}/{}", base.trim_end_matches('/'), encode_key(key))
}

/// Turns an [`AsyncRead`] into a [`ByteStream`] of chunks of up to 64 KiB.
pub fn reader_stream<'a, R>(reader: &'a mut R) -> ByteStream<'a>
where
    R: AsyncRead + Send + Unpin + ?Sized + 'a,
{
    futures_util::stream::try_unfold(reader, |reader| async move {
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        let n = reader.read_buf(&mut buf).await?;
        Ok((n > 0).then(|| (buf.freeze(), reader)))
    })
    .boxed()
}

/// Which storage driver [`from_config`] builds (`STORAGE_DRIVER`: `local` or `s3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageDriver {
    /// [`LocalStorage`]: files under [`StorageConfig::root`] (the embedded default).
    #[default]
    Local,
    /// [`S3Storage`]: an S3 or S3-compatible bucket.
    S3,
}

/// Everything [`from_config`] needs to build a driver, as an application loads it
/// (`STORAGE_DRIVER`, `STORAGE_ROOT`, `STORAGE_PUBLIC_URL`, `STORAGE_PUBLIC_PREFIXES`,
/// `STORAGE_SIGNING_KEY`, `S3_*`; see [`crate::settings::SETTINGS`]).
///
/// `Debug` prints the secrets as `***`, and serializing skips them.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct StorageConfig {
    /// Which driver to build.
    pub driver: StorageDriver,
    /// Local driver: the directory holding the files (created on the first write).
    pub root: PathBuf,
    /// Where objects are publicly served, without a trailing `/`: for the local driver the app's
    /// route serving `root` (such as `http://localhost:3000/storage`, or `/storage` for links
    /// relative to the site); for S3 a CDN or public bucket URL, or empty to use the bucket's own.
    pub public_url: String,
    /// S3: the bucket (required for the S3 driver).
    pub bucket: Option<String>,
    /// S3: the region, such as `us-east-1`.
    pub region: String,
    /// S3: the endpoint of an S3-compatible server, such as `http://127.0.0.1:9000`; `None` for
    /// AWS.
    pub endpoint: Option<String>,
    /// S3: the access key id; when `None`, `AWS_ACCESS_KEY_ID` from the environment.
    pub access_key_id: Option<String>,
    /// S3: the secret access key; when `None`, `AWS_SECRET_ACCESS_KEY` from the environment.
    #[serde(skip_serializing)]
    pub secret_access_key: Option<String>,
    /// S3: address buckets as `endpoint/bucket/key` instead of `bucket.endpoint/key` (most
    /// S3-compatible servers need this).
    pub force_path_style: bool,
    /// Local driver: the key that signs presigned URLs, so every process that shares it (and the
    /// root) accepts the others' links. When `None` a random key is made per [`LocalStorage`], so
    /// its links verify only in the process that made them.
    #[serde(skip_serializing)]
    pub signing_key: Option<String>,
    /// Key prefixes whose objects an application may serve without a signature, each matching
    /// whole segments (`avatars` covers `avatars/42.png`, not `avatars-old/1.png`), or `*` for
    /// every key; see [`is_public_key`]. Empty (the default): every object needs a
    /// presigned link.
    pub public_prefixes: Vec<String>,
}

impl Default for StorageConfig {
    /// The local driver under `./data/storage`, served at `/storage`; S3 region `us-east-1`.
    fn default() -> Self {
        StorageConfig {
            driver: StorageDriver::Local,
            root: PathBuf::from("data/storage"),
            public_url: "/storage".to_owned(),
            bucket: None,
            region: "us-east-1".to_owned(),
            endpoint: None,
            access_key_id: None,
            secret_access_key: None,
            force_path_style: false,
            signing_key: None,
            public_prefixes: Vec::new(),
        }
    }
}

impl StorageConfig {
    /// Whether `key` lies under one of [`public_prefixes`](Self::public_prefixes); see
    /// [`is_public_key`].
    pub fn is_public(&self, key: &str) -> bool {
        is_public_key(&self.public_prefixes, key)
    }

    /// Checks the settings without connecting: the S3 driver needs a bucket, and an endpoint
    /// must be an `http://` or `https://` URL.
    ///
    /// # Errors
    /// [`Invalid`](crate::settings::Invalid) naming the field.
    pub fn check(&self) -> std::result::Result<(), crate::settings::Invalid> {
        use crate::settings::Invalid;
        if self.driver == StorageDriver::S3 && self.bucket.as_deref().is_none_or(str::is_empty) {
            return Err(Invalid::new(
                "storage.bucket",
                "the S3 driver needs a bucket",
            ));
        }
        if let Some(endpoint) = &self.endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err(Invalid::new(
                "storage.endpoint",
                "an S3 endpoint is an http:// or https:// URL",
            ));
        }
        Ok(())
    }
}

impl fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |s: &Option<String>| s.as_ref().map(|_| "***");
        f.debug_struct("StorageConfig")
            .field("driver", &self.driver)
            .field("root", &self.root)
            .field("public_url", &self.public_url)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &redact(&self.secret_access_key))
            .field("force_path_style", &self.force_path_style)
            .field("signing_key", &redact(&self.signing_key))
            .field("public_prefixes", &self.public_prefixes)
            .finish()
    }
}

/// Builds the driver `config` names.
///
/// # Errors
/// [`Error::Config`] when the S3 driver lacks a bucket or credentials.
pub fn from_config(config: &StorageConfig) -> Result<Arc<dyn Storage>> {
    Ok(match config.driver {
        StorageDriver::Local => Arc::new(LocalStorage::from_config(config)),
        StorageDriver::S3 => Arc::new(S3Storage::from_config(config)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_keys() {
        for key in [
            "a",
            "users/42/avatar.png",
            "with space/ünïcode.txt",
            ".hidden/file",
            "a..b/c..",
            "%2e%2e/x",
            "key:with:colons",
        ] {
            assert!(validate_key(key).is_ok(), "{key:?}");
        }
    }

    #[test]
    fn rejects_unsafe_keys_with_a_reason() {
        let long = "a/".repeat(MAX_KEY_LEN / 2) + "b";
        let long_segment = format!("dir/{}", "é".repeat(128));
        for (key, reason) in [
            ("", "empty"),
            ("..", "`..`"),
            ("../x", "`..`"),
            ("a/../../x", "`..`"),
            ("a/./b", "`..`"),
            ("/etc/passwd", "absolute"),
            ("C:/Windows", "drive"),
            ("a\\..\\b", "backslash"),
            ("a//b", "empty segment"),
            ("a/", "empty segment"),
            ("a\0b", "NUL"),
            ("a\nb", "control"),
            (long.as_str(), "1024"),
            (long_segment.as_str(), "255"),
        ] {
            match validate_key(key) {
                Err(Error::InvalidKey { reason: r, .. }) => {
                    assert!(r.contains(reason), "{key:?}: {r}")
                }
                other => panic!("{key:?} was not rejected: {other:?}"),
            }
        }
        assert!(validate_key(&["a"; MAX_KEY_LEN / 2].join("/")).is_ok());
        assert!(validate_key(&"a".repeat(MAX_SEGMENT_LEN)).is_ok());
        assert!(validate_key(&format!("x/{}/y", "a".repeat(MAX_SEGMENT_LEN))).is_ok());
    }

    #[test]
    fn encodes_keys_for_urls() {
        assert_eq!(encode_key("a b/ü?#.png"), "a%20b/%C3%BC%3F%23.png");
        assert_eq!(join_url("http://x/storage/", "k/v"), "http://x/storage/k/v");
    }

    #[test]
    fn debug_hides_secrets() {
        let config = StorageConfig {
            secret_access_key: Some("s3cr3t".into()),
            signing_key: Some("k3y".into()),
            ..StorageConfig::default()
        };
        let text = format!("{config:?}");
        assert!(!text.contains("s3cr3t") && !text.contains("k3y"), "{text}");
    }
}
