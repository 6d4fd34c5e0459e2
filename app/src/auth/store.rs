//! [`KeyStore`]: issuing, renewing, revoking and looking up API keys.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use core_db::db::Timestamp;
use core_db::{Cache, Database, on_db, on_tx};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use core_web::token::{constant_time_eq, hex};

use super::{AuthError, Caller, keys, secret};
use crate::settings::ForgeRunConfig;

/// How long a looked-up key stays in the cache. Revoking or renewing a key evicts it at once;
/// expiry is checked against the cached `expires_at` on every request, so the TTL only bounds
/// how long an entry can outlive a change made outside the [`KeyStore`].
pub const CACHE_TTL: Duration = Duration::from_secs(60);

/// The longest key lifetime or overlap honoured (longer settings are cut to it), so that an
/// expiry always fits in a timestamp.
const MAX_SPAN: Duration = Duration::from_secs(100 * 365 * 86_400);

/// Issues, renews, revokes and authenticates API keys; one per process, in
/// [`Context::keys`](crate::Context::keys). Cheap to clone.
///
/// It holds the HMAC secret (never printed by `Debug`) and the key lifetimes
/// (`API_KEY_TTL`, `API_KEY_RENEW_OVERLAP`); the database and the cache are passed in.
#[derive(Clone)]
pub struct KeyStore {
    inner: Arc<Inner>,
}

struct Inner {
    secret: Vec<u8>,
    ttl: Option<Duration>,
    overlap: Duration,
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyStore")
            .field("secret", &"***")
            .field("ttl", &self.inner.ttl)
            .field("overlap", &self.inner.overlap)
            .finish()
    }
}

/// A key just issued, with its secret: the body of `POST /v1/clients` and
/// `POST /v1/clients/{id}/keys`. The only place the raw key ever appears; `Debug` hides it.
#[derive(Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IssuedKey {
    /// The client the key belongs to.
    #[schema(format = Uuid)]
    pub client_id: String,
    /// The key's id (for listing and revoking).
    pub key_id: String,
    /// The key itself; shown this once.
    #[schema(pattern = "^frk_[0-9A-Za-z]+$")]
    pub api_key: String,
    /// Its first eight characters, for display.
    pub key_prefix: String,
    /// Its last four characters, for display.
    pub key_last_four: String,
    /// When it stops working (`API_KEY_TTL`), if ever.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
    /// When it was issued.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

impl fmt::Debug for IssuedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedKey")
            .field("client_id", &self.client_id)
            .field("key_id", &self.key_id)
            .field("api_key", &"***")
            .field("key_prefix", &self.key_prefix)
            .field("key_last_four", &self.key_last_four)
            .field("expires_at", &self.expires_at)
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// The key a renewal replaced, and when it stops working.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PreviousKey {
    /// The renewed key's id.
    pub key_id: String,
    #[schema(value_type = Option<String>, format = DateTime)]
    /// Its new expiry: now plus `API_KEY_RENEW_OVERLAP`, or its own expiry if that was sooner.
    pub expires_at: Option<Timestamp>,
}

/// The body of `POST /v1/clients/{id}/keys/renew`: the new key and the old one's expiry.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RenewedKey {
    /// The new key, with its secret.
    #[serde(flatten)]
    pub key: IssuedKey,
    /// The key the request was made with.
    pub previous_key: PreviousKey,
}

/// What may be shown of a stored key: never the key or its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct KeyInfo {
    /// The key's id.
    pub key_id: String,
    /// Its first eight characters.
    pub key_prefix: String,
    /// Its last four characters.
    pub key_last_four: String,
    /// When it was issued.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When it stops (or stopped) working, if ever.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
    /// When it was revoked, if it was.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<Timestamp>,
}

/// What authentication needs of a key: the row found by its hash, as cached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
struct KeyRecord {
    id: String,
    client_id: String,
    key_hash: String,
    expires_at: Option<Timestamp>,
    revoked_at: Option<Timestamp>,
}

const KEY_INFO_COLUMNS: &str = "id AS key_id, prefix AS key_prefix, last_four AS key_last_four, \
     created_at, expires_at, revoked_at";

/// Stores the [`IssuedKey`] `$key` on the connection `$conn` (its hash `$hash`, never the
/// key); a `Result<(), sqlx::Error>`.
macro_rules! insert_key {
    ($conn:expr, $key:expr, $hash:expr) => {
        sqlx::query(
            "INSERT INTO api_keys \
             (id, client_id, key_hash, prefix, last_four, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind($key.key_id.as_str())
        .bind($key.client_id.as_str())
        .bind($hash)
        .bind($key.key_prefix.as_str())
        .bind($key.key_last_four.as_str())
        .bind($key.created_at)
        .bind($key.expires_at)
        .execute($conn)
        .await
        .map(drop)
    };
}

impl KeyStore {
    /// The store for these settings: the secret from `API_KEY_SECRET`, or outside production
    /// from `{DATA_DIR}/api_key_secret` (created with mode 0600 on first use, then reused;
    /// concurrent first starts agree), with a warning naming the file, never its content.
    ///
    /// # Errors
    /// No secret in production, a secret shorter than 32 characters, or the secret file
    /// cannot be created or read.
    pub fn from_config(config: &ForgeRunConfig) -> anyhow::Result<Self> {
        Ok(Self {
            inner: Arc::new(Inner {
                secret: secret::load(config)?,
                ttl: config.api_key_ttl.map(|d| d.min(MAX_SPAN)),
                overlap: config.api_key_renew_overlap.min(MAX_SPAN),
            }),
        })
    }

    /// HMAC-SHA-256 of `key` under the secret, lower-case hex: what the database stores and
    /// the cache is keyed by.
    // region: ch6-hash
    pub fn hash(&self, key: &str) -> String {
        hex(&self.mac(key).finalize().into_bytes())
    }
    // endregion: ch6-hash

    fn mac(&self, key: &str) -> Hmac<Sha256> {
        // HMAC takes a key of any length: this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.inner.secret)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(key.as_bytes());
        mac
    }

    /// The cache key of a key hash.
    pub fn cache_key(hash: &str) -> String {
        format!("apikey:hash:{hash}")
    }

    /// The cache tag of every entry about the key `key_id`.
    pub fn cache_tag(key_id: &str) -> String {
        format!("apikey:id:{key_id}")
    }

    /// Creates a client named `name` and its first key, in one transaction.
    ///
    /// # Errors
    /// [`AuthError::Internal`] when the database fails.
    pub async fn create_client(&self, db: &Database, name: &str) -> Result<IssuedKey, AuthError> {
        let client_id = uuid::Uuid::new_v4().to_string();
        let now = Timestamp::now();
        let key = self.new_key(&client_id, now);
        let hash = self.hash(&key.api_key);
        let mut tx = db.begin().await?;
        on_tx!(&mut tx, conn => {
            sqlx::query("INSERT INTO clients (id, name, created_at) VALUES ($1, $2, $3)")
                .bind(&client_id)
                .bind(name)
                .bind(now)
                .execute(&mut *conn)
                .await?;
            insert_key!(conn, key, &hash)
        })?;
        tx.commit().await?;
        tracing::info!(
            client_id,
            key_id = key.key_id,
            action = "client.created",
            "client created"
        );
        Ok(key)
    }

    /// Issues a new key to `client_id`. With `rotate`, every other key of the client that still
    /// works is scheduled to stop after `API_KEY_RENEW_OVERLAP` (as [`renew`](Self::renew) does
    /// for one key), and their cached entries are evicted after the commit.
    ///
    /// # Errors
    /// [`AuthError::Internal`] when the database or the cache fails (after a cache failure the
    /// key exists; retry the rotation to evict the others).
    pub async fn issue(
        &self,
        db: &Database,
        cache: &Cache,
        client_id: &str,
        rotate: bool,
    ) -> Result<IssuedKey, AuthError> {
        let now = Timestamp::now();
        let key = self.new_key(client_id, now);
        let hash = self.hash(&key.api_key);
        let deadline = after(now, self.inner.overlap);
        let mut tx = db.begin().await?;
        let scheduled: Vec<String> = on_tx!(&mut tx, conn => {
            insert_key!(&mut *conn, key, &hash)?;
            if rotate {
                sqlx::query_scalar(
                    "UPDATE api_keys SET expires_at = $1 WHERE client_id = $2 AND id <> $3 \
                     AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $4) \
                     RETURNING id",
                )
                .bind(deadline)
                .bind(client_id)
                .bind(&key.key_id)
                .bind(deadline)
                .fetch_all(conn)
                .await
            } else {
                Ok(Vec::new())
            }
        })?;
        tx.commit().await?;
        evict(cache, &scheduled).await?;
        tracing::info!(
            client_id,
            key_id = key.key_id,
            rotated = scheduled.len(),
            action = "api_key.created",
            "API key issued"
        );
        Ok(key)
    }

    /// Issues a new key to the caller's client and schedules the caller's key to stop after
    /// `API_KEY_RENEW_OVERLAP` (or at its own expiry, if sooner); its cached entry is evicted
    /// after the commit, on every process sharing the cache.
    ///
    /// # Errors
    /// [`AuthError::Internal`] when the database or the cache fails.
    pub async fn renew(
        &self,
        db: &Database,
        cache: &Cache,
        caller: &Caller,
    ) -> Result<RenewedKey, AuthError> {
        let now = Timestamp::now();
        let key = self.new_key(&caller.client_id, now);
        let hash = self.hash(&key.api_key);
        let deadline = after(now, self.inner.overlap);
        let mut tx = db.begin().await?;
        let expires_at: Option<Timestamp> = on_tx!(&mut tx, conn => {
            insert_key!(&mut *conn, key, &hash)?;
            // region: ch6-renew
            sqlx::query(
                "UPDATE api_keys SET expires_at = $1 WHERE id = $2 AND client_id = $3 \
                 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $4)",
            )
            .bind(deadline)
            .bind(&caller.key_id)
            .bind(&caller.client_id)
            .bind(deadline)
            .execute(&mut *conn)
            .await?;
            // endregion: ch6-renew
            sqlx::query_scalar("SELECT expires_at FROM api_keys WHERE id = $1")
                .bind(&caller.key_id)
                .fetch_one(conn)
                .await
        })?;
        tx.commit().await?;
        evict(cache, std::slice::from_ref(&caller.key_id)).await?;
        tracing::info!(
            client_id = caller.client_id,
            key_id = key.key_id,
            previous_key_id = caller.key_id,
            action = "api_key.renewed",
            "API key renewed"
        );
        Ok(RenewedKey {
            key,
            previous_key: PreviousKey {
                key_id: caller.key_id.clone(),
                expires_at,
            },
        })
    }

    /// Revokes the key `key_id` of `client_id`: it stops working at once, on every process
    /// sharing the cache (its entry is evicted after the commit). Revoking a revoked key
    /// changes nothing and evicts again.
    ///
    /// # Errors
    /// [`AuthError::KeyNotFound`] when `client_id` has no such key; [`AuthError::Internal`]
    /// when the database or the cache fails (then retry: the revocation may be stored but not
    /// yet seen by every process).
    pub async fn revoke(
        &self,
        db: &Database,
        cache: &Cache,
        client_id: &str,
        key_id: &str,
    ) -> Result<KeyInfo, AuthError> {
        let now = Timestamp::now();
        let info: Option<KeyInfo> = on_db!(db, pool => {
            // region: ch6-revoke
            sqlx::query(
                "UPDATE api_keys SET revoked_at = $1 \
                 WHERE id = $2 AND client_id = $3 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(key_id)
            .bind(client_id)
            .execute(pool)
            .await?;
            // endregion: ch6-revoke
            sqlx::query_as(&format!(
                "SELECT {KEY_INFO_COLUMNS} FROM api_keys WHERE id = $1 AND client_id = $2"
            ))
            .bind(key_id)
            .bind(client_id)
            .fetch_optional(pool)
            .await
        })?;
        // region: ch6-evict
        let info = info.ok_or(AuthError::KeyNotFound)?;
        evict(cache, std::slice::from_ref(&info.key_id)).await?;
        // endregion: ch6-evict
        tracing::info!(
            client_id,
            key_id,
            action = "api_key.revoked",
            "API key revoked"
        );
        Ok(info)
    }

    /// The keys of `client_id`, oldest first, revoked and expired ones included.
    ///
    /// # Errors
    /// [`AuthError::Internal`] when the database fails.
    pub async fn list(&self, db: &Database, client_id: &str) -> Result<Vec<KeyInfo>, AuthError> {
        let keys = on_db!(db, pool => {
            sqlx::query_as(&format!(
                "SELECT {KEY_INFO_COLUMNS} FROM api_keys WHERE client_id = $1 \
                 ORDER BY created_at, id"
            ))
            .bind(client_id)
            .fetch_all(pool)
            .await
        })?;
        Ok(keys)
    }

    /// The caller a raw key stands for.
    ///
    /// The key's shape and checksum are checked first, without any lookup; then its hash is
    /// looked up (cache, then database), compared in constant time, and its revocation and
    /// expiry checked against the current time.
    ///
    /// # Errors
    /// [`AuthError::InvalidCredentials`], [`AuthError::Disabled`], [`AuthError::Expired`], or
    /// [`AuthError::Internal`] when the database fails.
    pub async fn authenticate(
        &self,
        db: &Database,
        cache: &Cache,
        key: &str,
    ) -> Result<Caller, AuthError> {
        // region: ch6-authenticate
        if !keys::is_well_formed(key) {
            return Err(AuthError::InvalidCredentials);
        }
        let hash = self.hash(key);
        let record = self
            .lookup(db, cache, &hash)
            .await?
            .ok_or(AuthError::InvalidCredentials)?;
        if !constant_time_eq(record.key_hash.as_bytes(), hash.as_bytes()) {
            return Err(AuthError::InvalidCredentials);
        }
        if record.revoked_at.is_some() {
            return Err(AuthError::Disabled);
        }
        if record.expires_at.is_some_and(|at| at <= Timestamp::now()) {
            return Err(AuthError::Expired);
        }
        Ok(Caller {
            client_id: record.client_id,
            key_id: record.id,
        })
        // endregion: ch6-authenticate
    }

    /// The key row of `hash`: from the cache, else from the database (then cached for
    /// [`CACHE_TTL`], tagged with the key id). Unknown hashes are not cached. A cache that
    /// fails is logged and bypassed.
    async fn lookup(
        &self,
        db: &Database,
        cache: &Cache,
        hash: &str,
    ) -> Result<Option<KeyRecord>, AuthError> {
        let cache_key = Self::cache_key(hash);
        match cache.get_json::<KeyRecord>(&cache_key).await {
            Ok(Some(record)) => return Ok(Some(record)),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "API key cache read failed; using the database"),
        }
        let Some(record) = fetch_record(db, hash).await? else {
            return Ok(None);
        };
        let tag = Self::cache_tag(&record.id);
        let stored = match serde_json::to_string(&record) {
            Ok(json) => cache
                .set_with_tags(&cache_key, &json, &[tag.as_str()], Some(CACHE_TTL))
                .await
                .map_err(anyhow::Error::from),
            Err(e) => Err(e.into()),
        };
        if let Err(e) = stored {
            tracing::warn!(error = %e, "API key cache write failed");
            return Ok(Some(record));
        }
        // A revocation committed and evicted between the read above and the write would leave
        // a stale entry behind: read again, and drop the entry if the row changed meanwhile.
        let fresh = fetch_record(db, hash).await?;
        if fresh.as_ref() != Some(&record)
            && let Err(e) = cache.forget(&cache_key).await
        {
            tracing::warn!(error = %e, "API key cache eviction failed");
        }
        Ok(fresh)
    }

    /// A new key of `client_id`, not yet stored.
    // region: ch6-new-key
    fn new_key(&self, client_id: &str, now: Timestamp) -> IssuedKey {
        let api_key = keys::generate();
        IssuedKey {
            client_id: client_id.to_owned(),
            key_id: crate::ordered_id(),
            key_prefix: keys::display_prefix(&api_key).to_owned(),
            key_last_four: keys::last_four(&api_key).to_owned(),
            expires_at: self.inner.ttl.map(|ttl| after(now, ttl)),
            created_at: now,
            api_key,
        }
    }
    // endregion: ch6-new-key
}

/// The key row whose hash is `hash`.
async fn fetch_record(db: &Database, hash: &str) -> Result<Option<KeyRecord>, AuthError> {
    let record = on_db!(db, pool => {
        sqlx::query_as(
            "SELECT id, client_id, key_hash, expires_at, revoked_at FROM api_keys \
             WHERE key_hash = $1",
        )
        .bind(hash)
        .fetch_optional(pool)
        .await
    })?;
    Ok(record)
}

/// Evicts the cached entries of these keys, on every process sharing the cache.
async fn evict(cache: &Cache, key_ids: &[String]) -> Result<(), AuthError> {
    if key_ids.is_empty() {
        return Ok(());
    }
    let tags: Vec<String> = key_ids.iter().map(|id| KeyStore::cache_tag(id)).collect();
    let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
    cache.invalidate_tags(&tags).await.map_err(|e| {
        AuthError::Internal(anyhow::Error::new(e).context(
            "the key change is stored but the cache could not be invalidated; retry the request",
        ))
    })?;
    Ok(())
}

/// `now + span`, `span` capped at [`MAX_SPAN`].
fn after(now: Timestamp, span: Duration) -> Timestamp {
    let span = chrono::Duration::from_std(span.min(MAX_SPAN)).unwrap_or(chrono::Duration::MAX);
    Timestamp::from(now.get().checked_add_signed(span).unwrap_or(now.get()))
}
