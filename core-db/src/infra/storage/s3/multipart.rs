//! Uploads: one `PutObject` for a body that fits in one part, a multipart upload (one part in
//! memory at a time, aborted on failure) for a longer one.

use aws_sdk_s3::Client;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream as SdkByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use super::{S3Storage, sdk_error};
use crate::infra::storage::{ByteStream, validate_key};
use crate::{Error, Result};

/// The most parts one multipart upload may have.
const MAX_PARTS: i32 = 10_000;

impl S3Storage {
    /// Uploads `body` in one `PutObject`.
    pub(super) async fn put_single(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
    ) -> Result<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(SdkByteStream::from(body))
            .send()
            .await
            .map_err(|e| sdk_error("put", key, e))?;
        Ok(())
    }

    /// [`Storage::put_stream`](crate::infra::storage::Storage::put_stream): one `PutObject`
    /// when the body ends within the first part, a multipart upload otherwise.
    pub(super) async fn upload_stream(
        &self,
        key: &str,
        mut body: ByteStream<'_>,
        content_type: &str,
    ) -> Result<u64> {
        validate_key(key)?;
        let mut leftover = None;
        let (first, eof) = read_part(&mut body, &mut leftover, self.part_size, 0).await?;
        if eof {
            let len = first.len() as u64;
            self.put_single(key, first, content_type).await?;
            return Ok(len);
        }
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .send()
            .await
            .map_err(|e| sdk_error("put", key, e))?;
        let upload_id = created.upload_id.ok_or_else(|| Error::Storage {
            operation: "put",
            key: key.to_owned(),
            message: "the server returned no multipart upload id".into(),
        })?;
        // Abort on failure, and also when this future is dropped half-way.
        let guard = AbortGuard {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            upload_id: Some(upload_id.clone()),
        };
        match self
            .upload_parts(key, &upload_id, first, &mut body, &mut leftover)
            .await
        {
            Ok(total) => {
                guard.disarm();
                Ok(total)
            }
            Err(err) => {
                guard.abort().await;
                Err(err)
            }
        }
    }

    /// Uploads `first` and the rest of `body` as parts of the multipart upload `upload_id`,
    /// then completes it. The caller aborts the upload if this fails.
    async fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        first: Bytes,
        body: &mut ByteStream<'_>,
        leftover: &mut Option<Bytes>,
    ) -> Result<u64> {
        let mut parts = Vec::new();
        let mut total = 0u64;
        let mut part = first;
        let mut done = false;
        let mut number = 1;
        loop {
            if number > MAX_PARTS {
                return Err(Error::Storage {
                    operation: "put",
                    key: key.to_owned(),
                    message: format!(
                        "the body needs more than {MAX_PARTS} parts of {} bytes; \
                         raise the part size",
                        self.part_size
                    ),
                });
            }
            total += part.len() as u64;
            let out = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .body(SdkByteStream::from(part))
                .send()
                .await
                .map_err(|e| sdk_error("put", key, e))?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(out.e_tag)
                    .build(),
            );
            if done {
                break;
            }
            let (next, eof) = read_part(body, leftover, self.part_size, self.part_size).await?;
            done = eof;
            if next.is_empty() {
                break;
            }
            part = next;
            number += 1;
        }
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| sdk_error("put", key, e))?;
        Ok(total)
    }
}

/// Reads up to `part_size` bytes from `leftover` and `body` into one buffer. Returns the part
/// and whether the body has ended. A chunk that overflows the part is split and its tail kept
/// in `leftover` for the next part.
///
/// The buffer never grows past `part_size`: it starts at `initial_capacity` (0 for the first part,
/// so a small body stays small; `part_size` once the upload is known to be multipart) and grows
/// by doubling, capped at `part_size`.
async fn read_part(
    body: &mut ByteStream<'_>,
    leftover: &mut Option<Bytes>,
    part_size: usize,
    initial_capacity: usize,
) -> Result<(Bytes, bool)> {
    let mut part = BytesMut::with_capacity(initial_capacity.min(part_size));
    loop {
        let mut chunk = match leftover.take() {
            Some(chunk) => chunk,
            None => match body.next().await {
                Some(chunk) => chunk?,
                None => return Ok((part.freeze(), true)),
            },
        };
        if chunk.is_empty() {
            continue;
        }
        if part.is_empty() && chunk.len() >= part_size {
            // A chunk at least a part long: split it without copying.
            let rest = chunk.split_off(part_size);
            if !rest.is_empty() {
                *leftover = Some(rest);
            }
            return Ok((chunk, false));
        }
        let take = chunk.len().min(part_size - part.len());
        let needed = part.len() + take;
        if needed > part.capacity() {
            let grown = needed
                .max(part.capacity() * 2)
                .max(64 * 1024)
                .min(part_size);
            let mut bigger = BytesMut::with_capacity(grown);
            bigger.extend_from_slice(&part);
            part = bigger;
        }
        part.extend_from_slice(&chunk[..take]);
        if take < chunk.len() {
            *leftover = Some(chunk.slice(take..));
        }
        if part.len() == part_size {
            return Ok((part.freeze(), false));
        }
    }
}

/// Aborts a multipart upload: awaited on failure, or spawned if the upload's future is dropped.
struct AbortGuard {
    client: Client,
    bucket: String,
    key: String,
    upload_id: Option<String>,
}

impl AbortGuard {
    fn disarm(mut self) {
        self.upload_id = None;
    }

    async fn abort(mut self) {
        if let Some(upload_id) = self.upload_id.take() {
            abort_upload(&self.client, &self.bucket, &self.key, &upload_id).await;
        }
    }
}

impl Drop for AbortGuard {
    fn drop(&mut self) {
        let Some(upload_id) = self.upload_id.take() else {
            return;
        };
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                key = %self.key,
                upload_id,
                "multipart upload left incomplete: no runtime to abort it"
            );
            return;
        };
        let (client, bucket, key) = (self.client.clone(), self.bucket.clone(), self.key.clone());
        handle.spawn(async move { abort_upload(&client, &bucket, &key, &upload_id).await });
    }
}

async fn abort_upload(client: &Client, bucket: &str, key: &str, upload_id: &str) {
    if let Err(e) = client
        .abort_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .send()
        .await
    {
        tracing::warn!(
            key,
            upload_id,
            error = %DisplayErrorContext(&e),
            "could not abort a failed multipart upload"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(sizes: &[usize]) -> ByteStream<'static> {
        let mut n = 0u8;
        let items: Vec<std::io::Result<Bytes>> = sizes
            .iter()
            .map(|&s| {
                n = n.wrapping_add(1);
                Ok(Bytes::from(vec![n; s]))
            })
            .collect();
        futures_util::stream::iter(items).boxed()
    }

    async fn parts(sizes: &[usize], part_size: usize) -> Vec<(usize, bool)> {
        let mut body = chunks(sizes);
        let mut leftover = None;
        let mut out = Vec::new();
        loop {
            let (part, eof) = read_part(&mut body, &mut leftover, part_size, 0)
                .await
                .unwrap();
            out.push((part.len(), eof));
            if eof {
                return out;
            }
        }
    }

    #[tokio::test]
    async fn splits_bodies_into_exact_parts() {
        assert_eq!(parts(&[3], 10).await, vec![(3, true)]);
        assert_eq!(parts(&[], 10).await, vec![(0, true)]);
        assert_eq!(parts(&[4, 4, 4], 10).await, vec![(10, false), (2, true)]);
        assert_eq!(
            parts(&[25], 10).await,
            vec![(10, false), (10, false), (5, true)]
        );
        assert_eq!(parts(&[10], 10).await, vec![(10, false), (0, true)]);
        assert_eq!(
            parts(&[7, 0, 7, 7], 10).await,
            vec![(10, false), (10, false), (1, true)]
        );
    }

    #[tokio::test]
    async fn parts_keep_the_bytes_in_order() {
        let mut body = chunks(&[3, 9, 2]);
        let mut leftover = None;
        let mut all = Vec::new();
        loop {
            let (part, eof) = read_part(&mut body, &mut leftover, 4, 0).await.unwrap();
            all.extend_from_slice(&part);
            if eof {
                break;
            }
        }
        let mut want = vec![1u8; 3];
        want.extend(vec![2u8; 9]);
        want.extend(vec![3u8; 2]);
        assert_eq!(all, want);
    }
}
