//! Fixtures shared by the storage and attachment tests: one per storage driver, each with a way
//! to fetch URLs over real HTTP and to list everything the driver left behind.
//!
//! - Local: a temporary root, served by a small axum route that does what an app does with
//!   `LocalStorage` (`path_for`/`get_stream` for `GET`, `verify` for presigned `GET` and `PUT`).
//! - S3: a fresh bucket on the S3-protocol server at `S3_ENDPOINT` (`scripts/s3-server`), via
//!   `test_support::s3`; `None` (SKIPPED) when it is unreachable.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, RawQuery, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use core_db::storage::{
    self, ByteStream, LocalStorage, S3Storage, Storage, StorageConfig, StorageDriver,
};
use futures_util::{StreamExt, TryStreamExt};
use test_support::{RawResponse, TestS3};

/// Part size the S3 fixtures use: the smallest S3 allows, so multipart paths run on small data.
pub const TEST_PART_SIZE: usize = 5 * 1024 * 1024;

/// One driver under test, with what the tests need to look behind it.
pub struct Fixture {
    /// The driver, as the app holds it.
    pub storage: Arc<dyn Storage>,
    /// `"local"` or `"s3"`.
    pub driver: &'static str,
    local: Option<LocalFixture>,
    s3: Option<TestS3>,
}

struct LocalFixture {
    dir: tempfile::TempDir,
    root: PathBuf,
    storage: LocalStorage,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for LocalFixture {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Fixture {
    /// Everything the driver holds: local files (temporary ones included) relative to the root,
    /// or S3 object keys plus `pending-upload:<key>` for each unfinished multipart upload.
    pub async fn leftovers(&self) -> Vec<String> {
        if let Some(local) = &self.local {
            let mut files = Vec::new();
            list_files(&local.root, &local.root, &mut files);
            files.sort();
            return files;
        }
        let s3 = self.s3.as_ref().expect("an S3 fixture");
        let mut all = s3.keys().await;
        all.extend(
            s3.pending_uploads()
                .await
                .into_iter()
                .map(|k| format!("pending-upload:{k}")),
        );
        all
    }

    /// Files the local driver could have written outside its root (everything in the temporary
    /// directory but the root); always empty for S3.
    pub fn outside_root(&self) -> Vec<String> {
        let Some(local) = &self.local else {
            return Vec::new();
        };
        let mut files = Vec::new();
        list_files(local.dir.path(), local.dir.path(), &mut files);
        files.retain(|f| !f.starts_with("root/") && !f.starts_with("outside/"));
        files
    }

    /// The local driver itself, for local-only checks.
    pub fn local(&self) -> Option<&LocalStorage> {
        self.local.as_ref().map(|l| &l.storage)
    }

    /// The temporary directory holding the local root (`root/`), for local-only checks.
    pub fn local_dir(&self) -> Option<&Path> {
        self.local.as_ref().map(|l| l.dir.path())
    }

    /// The S3 bucket, for S3-only checks.
    pub fn s3(&self) -> Option<&TestS3> {
        self.s3.as_ref()
    }
}

fn list_files(dir: &Path, base: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            list_files(&path, base, out);
        } else {
            let rel = path.strip_prefix(base).unwrap_or(&path);
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}

/// A local driver under a fresh temporary directory, served over HTTP on 127.0.0.1.
pub async fn local(_test: &str) -> Option<Fixture> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let root = dir.path().join("root");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let storage = LocalStorage::from_config(&StorageConfig {
        driver: StorageDriver::Local,
        root: root.clone(),
        public_url: format!("http://{addr}/storage"),
        signing_key: Some("test signing key".into()),
        ..StorageConfig::default()
    });
    let app = Router::new()
        .route("/storage/{*key}", get(serve_get).put(serve_put))
        .with_state(storage.clone());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Some(Fixture {
        storage: Arc::new(storage.clone()),
        driver: "local",
        local: Some(LocalFixture {
            dir,
            root,
            storage,
            server,
        }),
        s3: None,
    })
}

/// What an app's file route does: public `GET`s, presigned `GET`s and `PUT`s checked with
/// `verify`.
async fn serve_get(
    State(storage): State<LocalStorage>,
    UrlPath(key): UrlPath<String>,
    RawQuery(query): RawQuery,
) -> Response {
    if let Some(query) = query.filter(|q| q.contains("signature="))
        && storage.verify("GET", &key, &query).is_err()
    {
        return StatusCode::FORBIDDEN.into_response();
    }
    match storage.get_stream(&key).await {
        Ok(Some(body)) => Body::from_stream(body).into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}

async fn serve_put(
    State(storage): State<LocalStorage>,
    UrlPath(key): UrlPath<String>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Response {
    if storage
        .verify("PUT", &key, query.as_deref().unwrap_or(""))
        .is_err()
    {
        return StatusCode::FORBIDDEN.into_response();
    }
    let body: ByteStream<'static> = request
        .into_body()
        .into_data_stream()
        .map_err(std::io::Error::other)
        .boxed();
    match storage
        .put_stream(&key, body, "application/octet-stream")
        .await
    {
        Ok(_) => StatusCode::OK.into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The S3 configuration for a test bucket.
pub fn s3_config(s3: &TestS3) -> StorageConfig {
    StorageConfig {
        driver: StorageDriver::S3,
        public_url: String::new(),
        bucket: Some(s3.bucket.clone()),
        region: s3.region.clone(),
        endpoint: Some(s3.endpoint.clone()),
        access_key_id: Some(s3.access_key.clone()),
        secret_access_key: Some(s3.secret.clone()),
        force_path_style: true,
        ..StorageConfig::default()
    }
}

/// The S3 driver on a fresh bucket (5 MiB parts), or `None` when the server is unreachable.
pub async fn s3(test: &str) -> Option<Fixture> {
    s3_with_part_size(test, TEST_PART_SIZE).await
}

/// The S3 driver on a fresh bucket with `part_size` parts.
pub async fn s3_with_part_size(test: &str, part_size: usize) -> Option<Fixture> {
    let s3 = test_support::s3(test).await?;
    // Objects reached through `url()` must be public, as on a real public bucket or behind a CDN.
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"PublicRead","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{}/*"}}]}}"#,
        s3.bucket
    );
    s3.client()
        .put_bucket_policy()
        .bucket(&s3.bucket)
        .policy(policy)
        .send()
        .await
        .expect("public-read bucket policy");
    // `from_config` is what the app calls; check it builds the same driver.
    let built = storage::from_config(&s3_config(&s3)).expect("S3 driver from config");
    assert_eq!(built.driver(), "s3");
    let storage = S3Storage::from_config(&s3_config(&s3))
        .expect("S3 driver")
        .with_part_size(part_size);
    Some(Fixture {
        storage: Arc::new(storage),
        driver: "s3",
        local: None,
        s3: Some(s3),
    })
}

/// Sends one request to an absolute `http://host:port/path?query` URL over TCP.
pub async fn http(method: &str, url: &str, body: &[u8]) -> RawResponse {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("not an http URL: {url}"));
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr: SocketAddr = host
        .parse()
        .unwrap_or_else(|e| panic!("{host} is not an address: {e}"));
    test_support::http_request(addr, method, path, &[], body)
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"))
}

/// `len` bytes of a repeatable pattern, different at every offset for a long stretch, yielded
/// in chunks of `chunk` bytes and generated as they are read.
pub fn pattern_stream(len: u64, chunk: usize) -> ByteStream<'static> {
    futures_util::stream::unfold(0u64, move |at| async move {
        if at >= len {
            return None;
        }
        let n = (len - at).min(chunk as u64) as usize;
        let bytes: Vec<u8> = (at..at + n as u64).map(pattern_byte).collect();
        Some((Ok(bytes::Bytes::from(bytes)), at + n as u64))
    })
    .boxed()
}

/// The byte at `offset` in [`pattern_stream`].
pub fn pattern_byte(offset: u64) -> u8 {
    let x = offset.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (offset >> 13);
    (x >> 56) as u8
}

/// Reads a stream to its end, checking every byte against [`pattern_byte`]; returns the length.
pub async fn check_pattern(mut stream: ByteStream<'static>) -> u64 {
    let mut at = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("read chunk");
        for (i, b) in chunk.iter().enumerate() {
            let offset = at + i as u64;
            assert_eq!(*b, pattern_byte(offset), "byte {offset} differs");
        }
        at += chunk.len() as u64;
    }
    at
}
