//! JSON values, and values computed once on a miss (`remember`, `flexible`).

use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::flight::StoreMode;
use super::{Cache, seconds};
use crate::{Error, Result};

impl Cache {
    /// The JSON value at `key`, decoded as `T`.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] when the stored value is not JSON of that shape, or as
    /// [`Cache::get`].
    pub async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self.get(key).await? {
            None => Ok(None),
            Some(raw) => serde_json::from_str(&raw)
                .map(Some)
                .map_err(|e| Error::InvalidValue {
                    key: key.to_owned(),
                    reason: format!("not JSON of the requested type: {e}"),
                }),
        }
    }

    /// Stores `value` as JSON at `key` without expiry.
    ///
    /// # Errors
    /// `value` cannot be serialized, or as [`Cache::get`].
    pub async fn set_json<T: Serialize>(&self, key: &str, value: &T) -> Result<()> {
        let raw = serde_json::to_string(value)?;
        self.put(key, &raw, None).await
    }

    /// Stores `value` as JSON at `key` for `ttl_secs` seconds (0 deletes the key).
    ///
    /// # Errors
    /// As [`Cache::set_json`].
    pub async fn set_json_ex<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        ttl_secs: u64,
    ) -> Result<()> {
        let raw = serde_json::to_string(value)?;
        self.put(key, &raw, Some(seconds(ttl_secs))).await
    }

    /// The JSON value at `key`, or `f()`'s value, stored for `ttl_secs` seconds.
    ///
    /// Single-flight: however many callers miss `key` together, `f` runs once in this process;
    /// on Redis (and tiered) it runs once across every process sharing the prefix (the others
    /// wait for the value, see the [module docs](super)). A stored value that does not decode as
    /// `T` counts as a miss (logged with its key) and is replaced. When `f` fails its error is
    /// returned and nothing is stored. `?` works inside `f` on `std::io::Error`, `sqlx::Error`,
    /// `anyhow::Error`, `serde_json::Error` and `redis::RedisError`.
    ///
    /// Invalidations win (see the [cache module docs](super#invalidations-win)): if the key is
    /// deleted ([`Cache::forget`], [`Cache::del`], [`Cache::pull`]) or written ([`Cache::put`])
    /// while `f` runs, `f`'s value is returned to this caller but not stored, so it is never
    /// served after the change. Invalidate *after* committing the change `f` would read: once
    /// the invalidation has returned, no read that starts afterwards gets a value computed from
    /// the old data. A value whose computation takes longer than 10 minutes may not be stored.
    ///
    /// ```no_run
    /// # async fn example(cache: core_db::Cache) -> core_db::Result<()> {
    /// let names: Vec<String> = cache
    ///     .remember("users:names", 300, || async {
    ///         // `?` turns the io::Error into core_db::Error.
    ///         let text = std::fs::read_to_string("users.txt")?;
    ///         Ok(text.lines().map(str::to_owned).collect())
    ///     })
    ///     .await?;
    /// # let _ = names;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// `f`'s error, or as [`Cache::get`].
    pub async fn remember<T, F, Fut>(&self, key: &str, ttl_secs: u64, f: F) -> Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.flight(key, StoreMode::Put(Some(seconds(ttl_secs))), f)
            .await
    }

    /// [`Cache::remember`] without expiry, with the same guarantee against invalidations made
    /// while `f` runs.
    ///
    /// # Errors
    /// As [`Cache::remember`].
    pub async fn remember_forever<T, F, Fut>(&self, key: &str, f: F) -> Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.flight(key, StoreMode::Put(None), f).await
    }

    /// Stale-while-revalidate: the JSON value at `key` when it is younger than `fresh`; when it
    /// is older but younger than `stale` (its whole lifetime), the old value at once while one
    /// background task (under a lock, so one per key across processes) recomputes it with `f`;
    /// when it is missing or older than `stale`, `f()`'s value, computed single-flight as in
    /// [`Cache::remember`].
    ///
    /// The fresh-until stamp is stored next to the value at `{key}#flexible-fresh-until`.
    /// Background errors are logged and leave the old value in place. Both computations are
    /// fenced as in [`Cache::remember`]: a recomputation that raced a `forget`, `del`, `pull`
    /// or `put` of the key is not stored.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> core_db::Result<()> {
    /// # let cache = core_db::Cache::memory("app");
    /// use std::time::Duration;
    ///
    /// let stats: u64 = cache
    ///     .flexible("dashboard:stats", Duration::from_secs(5), Duration::from_secs(60), || async {
    ///         Ok(7)
    ///     })
    ///     .await?;
    /// # assert_eq!(stats, 7);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// `f`'s error when there is no value to serve, or as [`Cache::get`].
    pub async fn flexible<T, F, Fut>(
        &self,
        key: &str,
        fresh: Duration,
        stale: Duration,
        f: F,
    ) -> Result<T>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        self.flexible_impl(key, fresh, stale, f).await
    }
}
