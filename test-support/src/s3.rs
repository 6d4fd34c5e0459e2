//! A fresh bucket per test on a real S3-protocol server (`scripts/s3-server` starts one).
//!
//! ```no_run
//! # async fn example() {
//! let Some(s3) = test_support::s3("my_test").await else { return };
//! // s3.endpoint, s3.bucket, s3.region, s3.access_key, s3.secret configure the code under test;
//! // the bucket, its objects and unfinished multipart uploads are removed on drop.
//! assert!(s3.keys().await.is_empty());
//! # }
//! ```

use std::sync::OnceLock;
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, SharedHttpClient};
use aws_sdk_s3::error::DisplayErrorContext;

use crate::{random_suffix, service_unavailable};

/// Default S3 endpoint when `S3_ENDPOINT` is not set: what `scripts/s3-server` starts.
pub const DEFAULT_S3_ENDPOINT: &str = "http://127.0.0.1:9000";
/// Access key the tests use (`S3_TEST_ACCESS_KEY_ID` overrides it). The test server accepts any.
pub const TEST_ACCESS_KEY: &str = "rustforge-test";
/// Secret key the tests use (`S3_TEST_SECRET_ACCESS_KEY` overrides it).
pub const TEST_SECRET: &str = "rustforge-test-secret";
/// Region the tests use (`S3_TEST_REGION` overrides it).
pub const TEST_REGION: &str = "us-east-1";

const S3_HOW: &str = "scripts/s3-server (installs and starts an S3-protocol server on \
                      127.0.0.1:9000), or set S3_ENDPOINT";

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The S3 endpoint tests use: `S3_ENDPOINT`, or [`DEFAULT_S3_ENDPOINT`].
pub fn s3_endpoint() -> String {
    var("S3_ENDPOINT").unwrap_or_else(|| DEFAULT_S3_ENDPOINT.to_owned())
}

/// A fresh bucket on the test S3 server. On drop every object and unfinished multipart upload in
/// it is removed, then the bucket.
#[derive(Debug)]
pub struct TestS3 {
    /// The server's endpoint, such as `http://127.0.0.1:9000`.
    pub endpoint: String,
    /// A fresh bucket, `rf-test-<random>`; no other test uses it.
    pub bucket: String,
    /// The region.
    pub region: String,
    /// The access key id.
    pub access_key: String,
    /// The secret access key.
    pub secret: String,
    client: Client,
}

fn http_client() -> SharedHttpClient {
    static CLIENT: OnceLock<SharedHttpClient> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
            aws_smithy_http_client::Builder::new()
                .tls_provider(Provider::Rustls(CryptoMode::Ring))
                .build_https()
        })
        .clone()
}

fn client(endpoint: &str, region: &str, access_key: &str, secret: &str) -> Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .credentials_provider(Credentials::new(
            access_key,
            secret,
            None,
            None,
            "test-support",
        ))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .http_client(http_client())
        .build();
    Client::from_conf(config)
}

impl TestS3 {
    /// A client for the test server (path-style addressing), for checks that bypass the code under
    /// test.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Every object key in the bucket, sorted.
    ///
    /// # Panics
    /// If the server stopped answering.
    pub async fn keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.unwrap_or_else(|e| panic!("list objects: {}", DisplayErrorContext(&e)));
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
        }
        keys.sort();
        keys
    }

    /// The keys of the multipart uploads started in the bucket and neither completed nor
    /// aborted.
    ///
    /// # Panics
    /// If the server stopped answering.
    pub async fn pending_uploads(&self) -> Vec<String> {
        let out = self
            .client
            .list_multipart_uploads()
            .bucket(&self.bucket)
            .send()
            .await
            .unwrap_or_else(|e| panic!("list multipart uploads: {}", DisplayErrorContext(&e)));
        out.uploads()
            .iter()
            .filter_map(|u| u.key().map(str::to_owned))
            .collect()
    }

    async fn clean_up(client: &Client, bucket: &str) {
        if let Ok(out) = client.list_multipart_uploads().bucket(bucket).send().await {
            for upload in out.uploads() {
                if let (Some(key), Some(id)) = (upload.key(), upload.upload_id()) {
                    let _ = client
                        .abort_multipart_upload()
                        .bucket(bucket)
                        .key(key)
                        .upload_id(id)
                        .send()
                        .await;
                }
            }
        }
        let mut pages = client
            .list_objects_v2()
            .bucket(bucket)
            .into_paginator()
            .send();
        while let Some(Ok(page)) = pages.next().await {
            for object in page.contents() {
                if let Some(key) = object.key() {
                    let _ = client.delete_object().bucket(bucket).key(key).send().await;
                }
            }
        }
        let _ = client.delete_bucket().bucket(bucket).send().await;
    }
}

impl Drop for TestS3 {
    fn drop(&mut self) {
        let client = self.client.clone();
        let bucket = self.bucket.clone();
        // Drop runs inside the test's runtime; clean up on a thread of its own.
        let handle = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let _ = tokio::time::timeout(
                    Duration::from_secs(30),
                    TestS3::clean_up(&client, &bucket),
                )
                .await;
            });
        });
        let _ = handle.join();
    }
}

/// A fresh bucket for `test` on the S3 server at `S3_ENDPOINT`, or `None` (after one `SKIPPED`
/// line) when the server is unreachable.
///
/// # Panics
/// When the server is unreachable and `RUSTFORGE_REQUIRE_SERVICES=1`, or when it refuses to
/// create the bucket.
pub async fn s3(test: &str) -> Option<TestS3> {
    let endpoint = s3_endpoint();
    let region = var("S3_TEST_REGION").unwrap_or_else(|| TEST_REGION.to_owned());
    let access_key = var("S3_TEST_ACCESS_KEY_ID").unwrap_or_else(|| TEST_ACCESS_KEY.to_owned());
    let secret = var("S3_TEST_SECRET_ACCESS_KEY").unwrap_or_else(|| TEST_SECRET.to_owned());
    let client = client(&endpoint, &region, &access_key, &secret);
    match tokio::time::timeout(Duration::from_secs(5), client.list_buckets().send()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            service_unavailable(
                test,
                "S3",
                &endpoint,
                &DisplayErrorContext(&e).to_string(),
                S3_HOW,
            );
            return None;
        }
        Err(_) => {
            service_unavailable(test, "S3", &endpoint, "timed out after 5 s", S3_HOW);
            return None;
        }
    }
    let bucket = format!("rf-test-{}", random_suffix());
    client
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create test bucket {bucket}: {}", DisplayErrorContext(&e)));
    Some(TestS3 {
        endpoint,
        bucket,
        region,
        access_key,
        secret,
        client,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bucket_is_fresh_and_removed_on_drop() {
        let Some(s3) = s3("bucket_is_fresh_and_removed_on_drop").await else {
            return;
        };
        assert!(s3.keys().await.is_empty());
        s3.client()
            .put_object()
            .bucket(&s3.bucket)
            .key("a/b.txt")
            .body(aws_sdk_s3::primitives::ByteStream::from_static(b"hi"))
            .send()
            .await
            .expect("put");
        s3.client()
            .create_multipart_upload()
            .bucket(&s3.bucket)
            .key("pending")
            .send()
            .await
            .expect("create multipart upload");
        assert_eq!(s3.keys().await, vec!["a/b.txt".to_owned()]);
        assert_eq!(s3.pending_uploads().await, vec!["pending".to_owned()]);
        let (client, bucket) = (s3.client().clone(), s3.bucket.clone());
        drop(s3);
        let gone = client.head_bucket().bucket(&bucket).send().await;
        assert!(gone.is_err(), "the bucket is deleted on drop");
    }
}
