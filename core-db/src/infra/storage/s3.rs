//! The S3 driver: AWS S3 or any S3-compatible server, on `aws-sdk-s3`.
//!
//! - Endpoint, region, bucket, credentials and path-style addressing come from
//!   [`StorageConfig`]. Credentials are static: the configured key pair, or `AWS_ACCESS_KEY_ID`,
//!   `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`) from the environment. Instance roles and
//!   SSO profiles are not looked up.
//! - [`Storage::put_stream`] buffers at most one part ([`S3Storage::part_size`], 8 MiB by
//!   default): a body that ends within the first part is one `PutObject`; a longer one is a
//!   multipart upload, one part at a time, aborted if the stream or the server fails, so no
//!   incomplete upload is left behind. With 8 MiB parts an object can be up to 78 GiB
//!   (S3 allows 10,000 parts).
//! - [`Storage::presign_get_with`] signs response headers into the link (S3's
//!   `response-content-disposition` and `response-content-type`), so the bucket serves an HTML
//!   or SVG object as a download when asked to.
//! - Checksums are computed only where the operation requires them, which every S3-compatible
//!   server accepts.
//! - The HTTP client is hyper with rustls (ring) and the system's root certificates, shared by
//!   every `S3Storage` of the process.

use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    SharedHttpClient,
};
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::presigning::PresigningConfig;
use bytes::Bytes;
use futures_util::StreamExt;

use super::{ByteStream, GetOptions, Storage, StorageConfig, join_url, validate_key};
use crate::{Error, Result};

mod multipart;

/// The default multipart part size: 8 MiB.
pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;
/// The smallest part S3 accepts (every part but the last).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// The largest part S3 accepts.
pub const MAX_PART_SIZE: usize = 5 * 1024 * 1024 * 1024;

/// An S3 or S3-compatible bucket; see the [module docs](self).
///
/// ```no_run
/// use core_db::storage::{S3Storage, Storage, StorageConfig, StorageDriver};
///
/// # async fn example() -> core_db::Result<()> {
/// let storage = S3Storage::from_config(&StorageConfig {
///     driver: StorageDriver::S3,
///     bucket: Some("uploads".into()),
///     endpoint: Some("http://127.0.0.1:9000".into()),
///     access_key_id: Some("key".into()),
///     secret_access_key: Some("secret".into()),
///     force_path_style: true,
///     ..StorageConfig::default()
/// })?;
/// storage.put("hello.txt", "hi".into(), "text/plain").await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct S3Storage {
    client: Client,
    bucket: String,
    base_url: String,
    part_size: usize,
}

impl fmt::Debug for S3Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Storage")
            .field("bucket", &self.bucket)
            .field("base_url", &self.base_url)
            .field("part_size", &self.part_size)
            .finish_non_exhaustive()
    }
}

/// The process's HTTP client for S3: hyper 1 with rustls on ring, native root certificates.
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

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl S3Storage {
    /// The S3 driver as `config` describes it.
    ///
    /// # Errors
    /// [`Error::Config`] when the bucket or the credentials are missing.
    pub fn from_config(config: &StorageConfig) -> Result<Self> {
        let bucket = config
            .bucket
            .clone()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| {
                Error::Config("the S3 storage driver needs a bucket (S3_BUCKET)".into())
            })?;
        let access_key = config
            .access_key_id
            .clone()
            .filter(|v| !v.is_empty())
            .or_else(|| env("AWS_ACCESS_KEY_ID"));
        let secret = config
            .secret_access_key
            .clone()
            .filter(|v| !v.is_empty())
            .or_else(|| env("AWS_SECRET_ACCESS_KEY"));
        let (Some(access_key), Some(secret)) = (access_key, secret) else {
            return Err(Error::Config(
                "the S3 storage driver needs credentials (S3_ACCESS_KEY_ID and \
                 S3_SECRET_ACCESS_KEY, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
                    .into(),
            ));
        };
        let region = if config.region.is_empty() {
            "us-east-1".to_owned()
        } else {
            config.region.clone()
        };
        let credentials = Credentials::new(
            access_key,
            secret,
            env("AWS_SESSION_TOKEN"),
            None,
            "rustforge-storage-config",
        );
        let mut builder = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.clone()))
            .credentials_provider(credentials)
            .http_client(http_client())
            .force_path_style(config.force_path_style)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .build(),
            );
        let endpoint = config
            .endpoint
            .as_deref()
            .filter(|e| !e.is_empty())
            .map(|e| e.trim_end_matches('/').to_owned());
        if let Some(endpoint) = &endpoint {
            builder = builder.endpoint_url(endpoint.clone());
        }
        let base_url = if !config.public_url.is_empty() {
            config.public_url.trim_end_matches('/').to_owned()
        } else {
            bucket_url(
                endpoint.as_deref(),
                &bucket,
                &region,
                config.force_path_style,
            )
        };
        Ok(S3Storage {
            client: Client::from_conf(builder.build()),
            bucket,
            base_url,
            part_size: DEFAULT_PART_SIZE,
        })
    }

    /// Wraps a client built elsewhere; [`Storage::url`] links to `base_url/key`.
    pub fn from_client(
        client: Client,
        bucket: impl Into<String>,
        base_url: impl Into<String>,
    ) -> Self {
        S3Storage {
            client,
            bucket: bucket.into(),
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            part_size: DEFAULT_PART_SIZE,
        }
    }

    /// Sets the multipart part size, the most [`Storage::put_stream`] holds in memory. Clamped
    /// to what S3 accepts: 5 MiB to 5 GiB.
    #[must_use]
    pub fn with_part_size(mut self, bytes: usize) -> Self {
        self.part_size = bytes.clamp(MIN_PART_SIZE, MAX_PART_SIZE);
        self
    }

    /// The multipart part size in bytes.
    pub fn part_size(&self) -> usize {
        self.part_size
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The underlying client, for operations the [`Storage`] trait does not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Starts a `GetObject` of `key` (after checking the key): the response, with its body
    /// still to read, or `None` when there is no such object. Backs `get` and `get_stream`.
    async fn get_object(&self, key: &str) -> Result<Option<GetObjectOutput>> {
        validate_key(key)?;
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => Ok(Some(out)),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => Ok(None),
            Err(e) => Err(sdk_error("get", key, e)),
        }
    }
}

/// The bucket's own URL, for [`Storage::url`] when no public URL is configured.
fn bucket_url(endpoint: Option<&str>, bucket: &str, region: &str, path_style: bool) -> String {
    match endpoint {
        Some(endpoint) if path_style => format!("{endpoint}/{bucket}"),
        Some(endpoint) => match endpoint.split_once("://") {
            Some((scheme, host)) => format!("{scheme}://{bucket}.{host}"),
            None => format!("{bucket}.{endpoint}"),
        },
        None if path_style => format!("https://s3.{region}.amazonaws.com/{bucket}"),
        None => format!("https://{bucket}.s3.{region}.amazonaws.com"),
    }
}

fn sdk_error<E, R>(operation: &'static str, key: &str, err: SdkError<E, R>) -> Error
where
    E: std::error::Error + 'static,
    R: fmt::Debug,
{
    Error::Storage {
        operation,
        key: key.to_owned(),
        message: DisplayErrorContext(&err).to_string(),
    }
}

fn presign_config(key: &str, expires: Duration) -> Result<PresigningConfig> {
    PresigningConfig::expires_in(expires).map_err(|e| Error::Storage {
        operation: "presign",
        key: key.to_owned(),
        message: format!("{e} (S3 allows 1 second to 7 days)"),
    })
}

#[async_trait]
impl Storage for S3Storage {
    fn driver(&self) -> &'static str {
        "s3"
    }

    async fn put(&self, key: &str, bytes: Bytes, content_type: &str) -> Result<()> {
        validate_key(key)?;
        if bytes.len() <= self.part_size {
            return self.put_single(key, bytes, content_type).await;
        }
        let body = futures_util::stream::once(async move { Ok(bytes) }).boxed();
        self.put_stream(key, body, content_type).await.map(|_| ())
    }

    async fn put_stream(&self, key: &str, body: ByteStream<'_>, content_type: &str) -> Result<u64> {
        self.upload_stream(key, body, content_type).await
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let Some(out) = self.get_object(key).await? else {
            return Ok(None);
        };
        let data = out.body.collect().await.map_err(|e| Error::Storage {
            operation: "get",
            key: key.to_owned(),
            message: DisplayErrorContext(&e).to_string(),
        })?;
        Ok(Some(data.into_bytes()))
    }

    async fn get_stream(&self, key: &str) -> Result<Option<ByteStream<'static>>> {
        let Some(out) = self.get_object(key).await? else {
            return Ok(None);
        };
        let stream = futures_util::stream::try_unfold(out.body, |mut body| async move {
            match body.try_next().await {
                Ok(Some(chunk)) => Ok(Some((chunk, body))),
                Ok(None) => Ok(None),
                Err(e) => Err(std::io::Error::other(e)),
            }
        });
        Ok(Some(stream.boxed()))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| sdk_error("delete", key, e))?;
        Ok(())
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        validate_key(key)?;
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(false),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(false),
            Err(e) => Err(sdk_error("exists", key, e)),
        }
    }

    fn url(&self, key: &str) -> Result<String> {
        validate_key(key)?;
        Ok(join_url(&self.base_url, key))
    }

    async fn presign_get(&self, key: &str, expires: Duration) -> Result<String> {
        self.presign_get_with(key, expires, &GetOptions::default())
            .await
    }

    async fn presign_get_with(
        &self,
        key: &str,
        expires: Duration,
        options: &GetOptions,
    ) -> Result<String> {
        validate_key(key)?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_response_content_disposition(options.content_disposition.clone())
            .set_response_content_type(options.content_type.clone())
            .presigned(presign_config(key, expires)?)
            .await
            .map_err(|e| sdk_error("presign_get", key, e))?;
        Ok(request.uri().to_owned())
    }

    async fn presign_put(&self, key: &str, expires: Duration) -> Result<String> {
        validate_key(key)?;
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(presign_config(key, expires)?)
            .await
            .map_err(|e| sdk_error("presign_put", key, e))?;
        Ok(request.uri().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_urls() {
        assert_eq!(
            bucket_url(Some("http://127.0.0.1:9000"), "b", "r", true),
            "http://127.0.0.1:9000/b"
        );
        assert_eq!(
            bucket_url(Some("https://s3.example.test"), "b", "r", false),
            "https://b.s3.example.test"
        );
        assert_eq!(
            bucket_url(None, "b", "eu-west-1", false),
            "https://b.s3.eu-west-1.amazonaws.com"
        );
    }
}
