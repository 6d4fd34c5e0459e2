//! `Idempotency-Key` on `POST /v1/jobs` (IETF draft `draft-ietf-httpapi-idempotency-key-header`),
//! scoped to the client and kept 24 hours.
//!
//! Before the request runs, its key is *claimed*: a row `(client_id, key)` with the hash of the
//! request's body and a lock that lasts [`LOCK`]. The transaction that creates the job also
//! stores the response in that row, so a job exists exactly when its response is recorded.
//! A later request with the same key then gets:
//!
//! - the recorded response, with `Idempotency-Replayed: true`, when the body is the same;
//! - 422 `RFA_EXEC_IDEMPOTENCY_CONFLICT` when the body differs;
//! - 409 `RFA_EXEC_IDEMPOTENCY_CONFLICT` with `Retry-After: 1` while the first is still being
//!   processed. A claim whose request failed is released at once; one whose process died is
//!   taken over once its lock has passed.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use core_db::db::Timestamp;
use core_db::{Database, Tx, on_db, on_tx};
use core_web::AppError;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// How long a key is remembered.
pub const RETENTION: Duration = Duration::from_secs(24 * 3600);
/// How long a claim holds before another request may take it over.
pub const LOCK: Duration = Duration::from_secs(30);
/// The longest key accepted.
pub const MAX_LEN: usize = 255;

/// A stored key's row: request hash, response status and body, lock end, creation time.
type StoredKey = (String, Option<i64>, Option<String>, Timestamp, Timestamp);

/// The `Idempotency-Key` header, checked: 1–255 visible ASCII characters.
///
/// # Errors
/// 400 for an empty, over-long or non-ASCII key.
pub fn key(headers: &HeaderMap) -> Result<Option<String>, AppError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .ok()
        .filter(|t| !t.is_empty() && t.len() <= MAX_LEN && t.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            AppError::BadRequest(format!(
                "Idempotency-Key must be 1–{MAX_LEN} visible ASCII characters"
            ))
        })?;
    Ok(Some(text.to_owned()))
}

/// What a claim found.
#[derive(Debug)]
pub enum Claim {
    /// This request owns the key: run it, then [`Owned::complete`] or [`Owned::release`].
    Owned(Owned),
    /// The key's request already completed with this response.
    Replay {
        /// Its status.
        status: u16,
        /// Its body.
        body: String,
    },
}

/// A key this request holds.
#[derive(Debug)]
pub struct Owned {
    client_id: String,
    key: String,
}

impl Owned {
    /// Records the response inside the transaction that does the request's writes.
    ///
    /// # Errors
    /// The database failed.
    pub async fn complete(
        &self,
        tx: &mut Tx,
        status: StatusCode,
        body: &str,
    ) -> anyhow::Result<()> {
        let sql = "UPDATE idempotency_keys SET response_status = $1, response_body = $2 \
                   WHERE client_id = $3 AND idem_key = $4";
        on_tx!(tx, conn => sqlx::query(sql)
            .bind(i64::from(status.as_u16()))
            .bind(body)
            .bind(&self.client_id)
            .bind(&self.key)
            .execute(conn)
            .await
            .map(drop))?;
        Ok(())
    }

    /// Forgets the claim of a request that failed, so the client can send it again.
    pub async fn release(self, db: &Database) {
        let sql = "DELETE FROM idempotency_keys WHERE client_id = $1 AND idem_key = $2 \
                   AND response_status IS NULL";
        let deleted = on_db!(db, pool => sqlx::query(sql)
            .bind(&self.client_id)
            .bind(&self.key)
            .execute(pool)
            .await
            .map(drop));
        if let Err(e) = deleted {
            tracing::warn!(error = %e, "could not release an idempotency key; it frees itself after its lock");
        }
    }
}

/// The hash of a request body, from its parsed form (so key order and spacing do not count).
pub fn fingerprint(body: &impl Serialize) -> String {
    let canonical = serde_json::to_vec(body).unwrap_or_default();
    let digest = Sha256::digest(&canonical);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn conflict(status: StatusCode, message: &str) -> AppError {
    AppError::coded(status, "RFA_EXEC_IDEMPOTENCY_CONFLICT", message.to_owned())
}

/// Claims `key` for `client_id` and a request with `body`.
///
/// # Errors
/// 422 for another body, 409 (`Retry-After: 1`) while the key's first request is in flight,
/// or the database failed.
pub async fn claim(
    db: &Database,
    client_id: &str,
    key: &str,
    body: &impl Serialize,
) -> Result<Claim, AppError> {
    let hash = fingerprint(body);
    for _ in 0..3 {
        let now = Timestamp::now();
        let lock =
            Timestamp::from(now.get() + chrono::Duration::from_std(LOCK).unwrap_or_default());
        let insert = "INSERT INTO idempotency_keys (client_id, idem_key, request_hash, locked_until, \
                      created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (client_id, idem_key) DO NOTHING";
        let inserted = on_db!(db, pool => sqlx::query(insert)
            .bind(client_id)
            .bind(key)
            .bind(&hash)
            .bind(lock)
            .bind(now)
            .execute(pool)
            .await
            .map(|d| d.rows_affected()))
        .map_err(anyhow::Error::from)?;
        let owned = || {
            Claim::Owned(Owned {
                client_id: client_id.to_owned(),
                key: key.to_owned(),
            })
        };
        if inserted == 1 {
            return Ok(owned());
        }
        let select = "SELECT request_hash, response_status, response_body, locked_until, created_at \
                      FROM idempotency_keys WHERE client_id = $1 AND idem_key = $2";
        let row: Option<StoredKey> =
            on_db!(db, pool => sqlx::query_as(select).bind(client_id).bind(key).fetch_optional(pool).await)
                .map_err(anyhow::Error::from)?;
        let Some((stored_hash, status, response, locked_until, created_at)) = row else {
            continue; // released meanwhile: claim again
        };
        let expired = now.get() - created_at.get()
            > chrono::Duration::from_std(RETENTION).unwrap_or_default();
        if expired {
            let delete = "DELETE FROM idempotency_keys WHERE client_id = $1 AND idem_key = $2 AND created_at = $3";
            on_db!(db, pool => sqlx::query(delete).bind(client_id).bind(key).bind(created_at).execute(pool).await.map(drop))
                .map_err(anyhow::Error::from)?;
            continue;
        }
        if stored_hash != hash {
            return Err(conflict(
                StatusCode::UNPROCESSABLE_ENTITY,
                "This Idempotency-Key was used with a different request body",
            ));
        }
        if let (Some(status), Some(body)) = (status, response) {
            return Ok(Claim::Replay {
                status: u16::try_from(status).unwrap_or(200),
                body,
            });
        }
        if locked_until > now {
            return Err(conflict(
                StatusCode::CONFLICT,
                "A request with this Idempotency-Key is still being processed",
            )
            .with_header(header::RETRY_AFTER, "1"));
        }
        // The first request's process died holding the key: take it over.
        let take = "UPDATE idempotency_keys SET locked_until = $1 WHERE client_id = $2 \
                    AND idem_key = $3 AND locked_until = $4 AND response_status IS NULL";
        let taken = on_db!(db, pool => sqlx::query(take)
            .bind(lock)
            .bind(client_id)
            .bind(key)
            .bind(locked_until)
            .execute(pool)
            .await
            .map(|d| d.rows_affected()))
        .map_err(anyhow::Error::from)?;
        if taken == 1 {
            return Ok(owned());
        }
    }
    Err(conflict(
        StatusCode::CONFLICT,
        "A request with this Idempotency-Key is still being processed",
    )
    .with_header(header::RETRY_AFTER, "1"))
}

/// The recorded response, marked `Idempotency-Replayed: true`.
pub fn replay(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert("idempotency-replayed", HeaderValue::from_static("true"));
    response
}

/// Deletes keys older than [`RETENTION`]; the retention job calls it.
///
/// # Errors
/// The database failed.
pub async fn prune(db: &Database) -> anyhow::Result<u64> {
    let cutoff = Timestamp::from(chrono::Utc::now() - chrono::Duration::from_std(RETENTION)?);
    let sql = "DELETE FROM idempotency_keys WHERE created_at < $1";
    Ok(
        on_db!(db, pool => sqlx::query(sql).bind(cutoff).execute(pool).await.map(|d| d.rows_affected()))?,
    )
}
