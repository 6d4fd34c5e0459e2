//! The local driver: files under a root directory.
//!
//! - Writes are atomic: the body goes to a temporary file beside the target, which is renamed
//!   over it once complete, so a reader sees the old object or the new one, never half of one.
//!   A failed or cancelled write removes its temporary file.
//! - Nothing outside the root is read or written: keys are checked by
//!   [`validate_key`], and the resolved path is checked again after symbolic
//!   links are followed.
//! - The app serves the files: [`LocalStorage::path_for`] turns a key into its validated path, so
//!   a route such as `GET /storage/{*key}` can stream it, and [`Storage::url`] links to that route
//!   through [`StorageConfig::public_url`].
//! - Presigned URLs are the public URL plus `?expires=<unix seconds>&signature=<hex>`, an
//!   HMAC-SHA256 over the method, key and expiry; the serving route checks them with
//!   [`LocalStorage::verify_at`] ([`Storage::verify_signed_url`]). The signing key comes from
//!   [`StorageConfig::signing_key`], or is random per instance.
//! - The content type is not stored: the serving route derives it from the key's extension.

use std::fmt;
use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{ByteStream, READ_CHUNK, Storage, StorageConfig, join_url, validate_key};
use crate::{Error, Result};

type HmacSha256 = Hmac<Sha256>;

/// Files under a root directory; see the [module docs](self).
///
/// ```
/// use core_db::storage::{LocalStorage, Storage};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> core_db::Result<()> {
/// # let dir = tempfile::tempdir()?;
/// let storage = LocalStorage::new(dir.path(), "/storage");
/// storage.put("a/b.txt", "hi".into(), "text/plain").await?;
/// // In the app's `GET /storage/{*key}` route:
/// let path = storage.path_for("a/b.txt")?;
/// assert_eq!(std::fs::read(&path)?, b"hi");
/// assert!(storage.path_for("../../etc/passwd").is_err());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct LocalStorage {
    root: PathBuf,
    public_url: String,
    signing_key: Arc<[u8]>,
}

impl fmt::Debug for LocalStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalStorage")
            .field("root", &self.root)
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

impl LocalStorage {
    /// Files under `root` (created on the first write), linked as `public_url/key`. Presigned
    /// URLs are signed with a random key; see [`LocalStorage::with_signing_key`].
    pub fn new(root: impl Into<PathBuf>, public_url: impl Into<String>) -> Self {
        let mut key = [0u8; 32];
        rand::rng().fill(&mut key[..]);
        LocalStorage {
            root: root.into(),
            public_url: public_url.into().trim_end_matches('/').to_owned(),
            signing_key: Arc::from(&key[..]),
        }
    }

    /// The local driver as `config` describes it (`root`, `public_url`, `signing_key`).
    pub fn from_config(config: &StorageConfig) -> Self {
        let storage = LocalStorage::new(config.root.clone(), config.public_url.clone());
        match &config.signing_key {
            Some(key) if !key.is_empty() => storage.with_signing_key(key.as_bytes()),
            _ => storage,
        }
    }

    /// Signs presigned URLs with `key`, so every process sharing the key accepts them.
    #[must_use]
    pub fn with_signing_key(mut self, key: impl AsRef<[u8]>) -> Self {
        self.signing_key = Arc::from(key.as_ref());
        self
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path of `key`'s file under the root, after [`validate_key`].
    /// The file need not exist. Use it to serve files from the app.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] for a rejected key.
    pub fn path_for(&self, key: &str) -> Result<PathBuf> {
        validate_key(key)?;
        let mut path = self.root.clone();
        for segment in key.split('/') {
            path.push(segment);
        }
        // validate_key already excludes these; this keeps the guarantee local to the path.
        debug_assert!(
            path.strip_prefix(&self.root)
                .map(|rel| rel.components().all(|c| matches!(c, Component::Normal(_))))
                .unwrap_or(false)
        );
        Ok(path)
    }

    /// Checks a presigned URL's query string (`expires=…&signature=…`) for a `method` request
    /// (`GET` or `PUT`) to `key`, now; see [`LocalStorage::verify_at`].
    ///
    /// # Errors
    /// As [`LocalStorage::verify_at`].
    pub fn verify(&self, method: &str, key: &str, query: &str) -> Result<()> {
        self.verify_at(method, key, query, SystemTime::now())
    }

    /// Checks a presigned URL's query string (`expires=…&signature=…`, other parameters
    /// ignored) for a `method` request (`GET` or `PUT`) to `key` at time `now`: the signature
    /// must be the one [`Storage::presign_get`] or [`Storage::presign_put`] made for that method,
    /// key and expiry with this instance's signing key, and the expiry must not have passed. The
    /// app's serving route calls it (through [`Storage::verify_signed_url`]) for every private
    /// key and for every request that carries a signature.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use core_db::storage::{LocalStorage, Storage};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> core_db::Result<()> {
    /// let storage = LocalStorage::new("data/storage", "/storage").with_signing_key("secret");
    /// let link = storage.presign_get("a/b.pdf", Duration::from_secs(60)).await?;
    /// let query = link.split_once('?').map_or("", |(_, q)| q);
    /// let now = SystemTime::now();
    /// assert!(storage.verify_at("GET", "a/b.pdf", query, now).is_ok());
    /// assert!(storage.verify_at("GET", "a/c.pdf", query, now).is_err()); // another key
    /// let later = now + Duration::from_secs(120);
    /// assert!(storage.verify_at("GET", "a/b.pdf", query, later).is_err()); // expired
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidSignature`] when the signature or expiry is missing or malformed, the
    /// signature is wrong (another key, method, expiry or signing key) or the URL has expired;
    /// [`Error::InvalidKey`] for a rejected key.
    pub fn verify_at(&self, method: &str, key: &str, query: &str, now: SystemTime) -> Result<()> {
        validate_key(key)?;
        let mut expires = None;
        let mut signature = None;
        for (name, value) in form_urlencoded::parse(query.trim_start_matches('?').as_bytes()) {
            match &*name {
                "expires" => expires = Some(value),
                "signature" => signature = Some(value),
                _ => {}
            }
        }
        let (Some(expires), Some(signature)) = (expires, signature) else {
            return Err(Error::InvalidSignature {
                reason: "the URL has no expires or signature parameter",
            });
        };
        let expires_at: u64 = expires.parse().map_err(|_| Error::InvalidSignature {
            reason: "the expires parameter is not a number",
        })?;
        let signature = decode_hex(&signature).ok_or(Error::InvalidSignature {
            reason: "the signature is not hexadecimal",
        })?;
        self.mac(method, key, expires_at)
            .verify_slice(&signature)
            .map_err(|_| Error::InvalidSignature {
                reason: "the signature does not match",
            })?;
        if unix_secs(now) > expires_at {
            return Err(Error::InvalidSignature {
                reason: "the URL has expired",
            });
        }
        Ok(())
    }

    fn mac(&self, method: &str, key: &str, expires_at: u64) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = HmacSha256::new_from_slice(&self.signing_key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(method.to_ascii_uppercase().as_bytes());
        mac.update(b"\n");
        mac.update(key.as_bytes());
        mac.update(b"\n");
        mac.update(expires_at.to_string().as_bytes());
        mac
    }

    fn presign(&self, method: &str, key: &str, expires: Duration) -> Result<String> {
        let url = self.url(key)?;
        let expires_at = unix_now().saturating_add(expires.as_secs().max(1));
        let signature = encode_hex(&self.mac(method, key, expires_at).finalize().into_bytes());
        Ok(format!("{url}?expires={expires_at}&signature={signature}"))
    }

    /// `path` if, with symbolic links followed, it stays under the root; `None` if it (or a
    /// directory on the way) does not exist.
    async fn confined(&self, path: &Path) -> Result<Option<PathBuf>> {
        let root = match tokio::fs::canonicalize(&self.root).await {
            Ok(root) => root,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let real = match tokio::fs::canonicalize(path).await {
            Ok(real) => real,
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        if !real.starts_with(&root) {
            return Err(Error::InvalidKey {
                key: path.display().to_string(),
                reason: "the path leaves the storage root through a symbolic link",
            });
        }
        Ok(Some(real))
    }

    /// The existing regular file for `key`, if any.
    async fn existing_file(&self, key: &str) -> Result<Option<PathBuf>> {
        let path = self.path_for(key)?;
        let Some(real) = self.confined(&path).await? else {
            return Ok(None);
        };
        match tokio::fs::metadata(&real).await {
            Ok(meta) if meta.is_file() => Ok(Some(real)),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn write_atomic(&self, key: &str, mut body: ByteStream<'_>) -> Result<u64> {
        let path = self.path_for(key)?;
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        tokio::fs::create_dir_all(&dir).await?;
        // The directory exists now; make sure it is really under the root.
        self.confined(&dir).await?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // The temporary name must fit where the final one does (255 bytes at most): keep only
        // the start of a long name.
        let mut short = name.as_str();
        while short.len() > 64 {
            let mut end = 64.min(short.len() - 1);
            while !short.is_char_boundary(end) {
                end -= 1;
            }
            short = &short[..end];
        }
        let tmp = dir.join(format!(".{short}.{}.tmp", uuid::Uuid::new_v4().as_simple()));
        let guard = TempFile(Some(tmp.clone()));
        let mut file = tokio::fs::File::create(&tmp).await?;
        let mut written = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            file.write_all(&chunk).await?;
            written += chunk.len() as u64;
        }
        file.flush().await?;
        file.sync_all().await?;
        drop(file);
        tokio::fs::rename(&tmp, &path).await?;
        guard.disarm();
        Ok(written)
    }
}

/// Removes a temporary file on drop unless disarmed: covers errors and cancelled futures alike.
struct TempFile(Option<PathBuf>);

impl TempFile {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[async_trait]
impl Storage for LocalStorage {
    fn driver(&self) -> &'static str {
        "local"
    }

    async fn put(&self, key: &str, bytes: Bytes, _content_type: &str) -> Result<()> {
        let body = futures_util::stream::once(async move { Ok(bytes) }).boxed();
        self.write_atomic(key, body).await.map(|_| ())
    }

    async fn put_stream(
        &self,
        key: &str,
        body: ByteStream<'_>,
        _content_type: &str,
    ) -> Result<u64> {
        self.write_atomic(key, body).await
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let Some(path) = self.existing_file(key).await? else {
            return Ok(None);
        };
        match tokio::fs::read(&path).await {
            Ok(data) => Ok(Some(Bytes::from(data))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn get_stream(&self, key: &str) -> Result<Option<ByteStream<'static>>> {
        let Some(path) = self.existing_file(key).await? else {
            return Ok(None);
        };
        let file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let stream = futures_util::stream::try_unfold(file, |mut file| async move {
            let mut buf = BytesMut::with_capacity(READ_CHUNK);
            let n = file.read_buf(&mut buf).await?;
            Ok((n > 0).then(|| (buf.freeze(), file)))
        });
        Ok(Some(stream.boxed()))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path_for(key)?;
        // Unlinking never follows a final symbolic link, but a directory on the way might.
        if let Some(parent) = path.parent()
            && self.confined(parent).await?.is_none()
        {
            return Ok(());
        }
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
        // Prune directories the delete left empty, up to (not including) the root.
        let mut dir = path.parent();
        while let Some(d) = dir {
            if d == self.root || !d.starts_with(&self.root) {
                break;
            }
            if tokio::fs::remove_dir(d).await.is_err() {
                break;
            }
            dir = d.parent();
        }
        Ok(())
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.existing_file(key).await?.is_some())
    }

    fn url(&self, key: &str) -> Result<String> {
        validate_key(key)?;
        Ok(join_url(&self.public_url, key))
    }

    async fn presign_get(&self, key: &str, expires: Duration) -> Result<String> {
        self.presign("GET", key, expires)
    }

    async fn presign_put(&self, key: &str, expires: Duration) -> Result<String> {
        self.presign("PUT", key, expires)
    }

    fn verify_signed_url(
        &self,
        method: &str,
        key: &str,
        query: &str,
        now: SystemTime,
    ) -> Result<()> {
        self.verify_at(method, key, query, now)
    }
}

fn unix_now() -> u64 {
    unix_secs(SystemTime::now())
}

fn unix_secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        assert_eq!(encode_hex(&[0, 15, 255]), "000fff");
        assert_eq!(decode_hex("000fff"), Some(vec![0, 15, 255]));
        assert_eq!(decode_hex("0g"), None);
        assert_eq!(decode_hex("abc"), None);
    }

    fn signed(storage: &LocalStorage, method: &str, key: &str, expires_at: u64) -> String {
        let sig = encode_hex(&storage.mac(method, key, expires_at).finalize().into_bytes());
        format!("expires={expires_at}&signature={sig}")
    }

    fn reason(result: Result<()>) -> &'static str {
        match result {
            Err(Error::InvalidSignature { reason }) => reason,
            other => panic!("not an invalid signature: {other:?}"),
        }
    }

    #[test]
    fn verify_at_accepts_a_valid_link_until_it_expires() {
        let storage = LocalStorage::new("/nonexistent", "/storage").with_signing_key("k");
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let query = signed(&storage, "GET", "a/b.pdf", 1_000_060);
        storage.verify_at("GET", "a/b.pdf", &query, now).unwrap();
        // A leading `?` and other parameters are fine.
        let extra = format!("?download=1&{query}&x=y");
        storage.verify_at("GET", "a/b.pdf", &extra, now).unwrap();
        // Up to and including the expiry second.
        let at_expiry = UNIX_EPOCH + Duration::from_secs(1_000_060);
        storage
            .verify_at("GET", "a/b.pdf", &query, at_expiry)
            .unwrap();
        let after = at_expiry + Duration::from_secs(1);
        assert!(reason(storage.verify_at("GET", "a/b.pdf", &query, after)).contains("expired"));
    }

    #[test]
    fn verify_at_decodes_the_query() {
        let storage = LocalStorage::new("/nonexistent", "/storage").with_signing_key("k");
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let query = signed(&storage, "GET", "a/b.pdf", 1_000_060);
        let escaped = query
            .replace("signature=", "sig%6Eature=")
            .replace("expires=1", "expires=%31");
        storage.verify_at("GET", "a/b.pdf", &escaped, now).unwrap();
    }

    #[test]
    fn verify_at_refuses_forged_tampered_and_incomplete_links() {
        let storage = LocalStorage::new("/nonexistent", "/storage").with_signing_key("k");
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let query = signed(&storage, "GET", "a/b.pdf", 1_000_060);
        // Forged: another signing key, a flipped digit, a truncated signature.
        let other = LocalStorage::new("/nonexistent", "/storage").with_signing_key("j");
        let forged = signed(&other, "GET", "a/b.pdf", 1_000_060);
        assert!(reason(storage.verify_at("GET", "a/b.pdf", &forged, now)).contains("match"));
        let last = query.chars().last().unwrap();
        let flipped = format!(
            "{}{}",
            &query[..query.len() - 1],
            if last == '0' { '1' } else { '0' }
        );
        assert!(reason(storage.verify_at("GET", "a/b.pdf", &flipped, now)).contains("match"));
        let truncated = &query[..query.len() - 2];
        assert!(reason(storage.verify_at("GET", "a/b.pdf", truncated, now)).contains("match"));
        // Tampered: another key, method or expiry.
        assert!(reason(storage.verify_at("GET", "a/c.pdf", &query, now)).contains("match"));
        assert!(reason(storage.verify_at("PUT", "a/b.pdf", &query, now)).contains("match"));
        let later = query.replace("expires=1000060", "expires=2000060");
        assert!(reason(storage.verify_at("GET", "a/b.pdf", &later, now)).contains("match"));
        // Missing or malformed parameters.
        for bad in [
            "",
            "expires=1000060",
            &query[query.find("signature").unwrap()..],
            "expires=&signature=00",
        ] {
            let r = reason(storage.verify_at("GET", "a/b.pdf", bad, now));
            assert!(
                r.contains("parameter") || r.contains("number"),
                "{bad:?}: {r}"
            );
        }
        let not_hex = format!("expires=1000060&signature={}", "zz".repeat(32));
        assert!(reason(storage.verify_at("GET", "a/b.pdf", &not_hex, now)).contains("hex"));
        // A rejected key is an invalid key, whatever the query.
        assert!(matches!(
            storage.verify_at("GET", "../b.pdf", &query, now),
            Err(Error::InvalidKey { .. })
        ));
    }

    #[test]
    fn presigned_urls_verify_only_as_issued() {
        let storage = LocalStorage::new("/nonexistent", "http://h/storage").with_signing_key("k");
        let url = storage
            .presign("GET", "a/b.png", Duration::from_secs(60))
            .unwrap();
        let query = url.split_once('?').unwrap().1;
        assert!(url.starts_with("http://h/storage/a/b.png?expires="));
        storage.verify("GET", "a/b.png", query).unwrap();
        assert!(storage.verify("PUT", "a/b.png", query).is_err());
        assert!(storage.verify("GET", "a/c.png", query).is_err());
        assert!(storage.verify("GET", "a/b.png", "expires=1").is_err());
        let other = LocalStorage::new("/nonexistent", "http://h/storage").with_signing_key("j");
        assert!(other.verify("GET", "a/b.png", query).is_err());
        // Pushing the expiry later breaks the signature.
        let later = query.replace("expires=", "expires=9");
        assert!(storage.verify("GET", "a/b.png", &later).is_err());
        // An expired URL with a valid signature.
        let past = unix_now() - 10;
        let sig = encode_hex(&storage.mac("GET", "a/b.png", past).finalize().into_bytes());
        match storage.verify("GET", "a/b.png", &format!("expires={past}&signature={sig}")) {
            Err(Error::InvalidSignature { reason }) => assert!(reason.contains("expired")),
            other => panic!("{other:?}"),
        }
    }
}
