//! Tags: values tagged for bulk invalidation, and the tag queries.

use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::flight::StoreMode;
use super::{Cache, check_key, normalize_ttl};
use crate::Result;

impl Cache {
    /// Stores `value` at `key` for `ttl` and makes `tags` its tags, replacing any it had.
    ///
    /// A key keeps its tags until it is deleted, pulled, flushed, re-tagged or invalidated, or
    /// until this write's TTL runs out: plain writes ([`Cache::set`], [`Cache::put`]) leave the
    /// tags as they are. On Redis this is one Lua script; expired keys leave their tags' sets.
    ///
    /// # Errors
    /// An empty key or tag, or as [`Cache::get`].
    pub async fn set_with_tags(
        &self,
        key: &str,
        value: &str,
        tags: &[&str],
        ttl: Option<Duration>,
    ) -> Result<()> {
        check_key(key)?;
        for tag in tags {
            check_key(tag)?;
        }
        let ttl = ttl.map(normalize_ttl);
        if ttl.is_some_and(|d| d.is_zero()) {
            return store_call!(self, s => s.del(key));
        }
        store_call!(self, s => s.set_with_tags(key, value, tags, ttl))
    }

    /// Deletes every key that carries `tag`; returns how many held a value.
    ///
    /// # Errors
    /// As [`Cache::set_with_tags`].
    pub async fn invalidate_tag(&self, tag: &str) -> Result<u64> {
        self.invalidate_tags(&[tag]).await
    }

    /// Deletes every key that carries any of `tags`; returns how many held a value. A
    /// `remember_with_tags` of any of `tags` that is computing meanwhile does not store its value
    /// (see [`Cache::remember_with_tags`]).
    ///
    /// # Errors
    /// As [`Cache::set_with_tags`].
    pub async fn invalidate_tags(&self, tags: &[&str]) -> Result<u64> {
        if tags.is_empty() {
            return Ok(0);
        }
        for tag in tags {
            check_key(tag)?;
        }
        let removed = store_call!(self, s => s.invalidate_tags(tags))?;
        Ok(removed.len() as u64)
    }

    /// The existing keys that carry `tag`, sorted.
    ///
    /// # Errors
    /// As [`Cache::set_with_tags`].
    pub async fn get_keys_by_tag(&self, tag: &str) -> Result<Vec<String>> {
        check_key(tag)?;
        store_call!(self, s => s.keys_by_tag(tag))
    }

    /// The tags of `key`, sorted; empty when the key does not exist.
    ///
    /// # Errors
    /// As [`Cache::get`].
    pub async fn get_tags_for_key(&self, key: &str) -> Result<Vec<String>> {
        check_key(key)?;
        store_call!(self, s => s.tags_for_key(key))
    }

    /// Every tag carried by at least one existing key, sorted. It looks at every tagged key, so
    /// keep it for tooling rather than hot paths.
    ///
    /// # Errors
    /// As [`Cache::get`].
    pub async fn list_tags(&self) -> Result<Vec<String>> {
        store_call!(self, s => s.list_tags())
    }

    /// [`Cache::remember`] that also tags the stored value (see [`Cache::set_with_tags`]), with
    /// a `Duration` TTL (`None`: no expiry). The [`#[cached]`](crate::cached) attribute uses it.
    ///
    /// Tag invalidations win as key deletions do in [`Cache::remember`]: if
    /// [`Cache::invalidate_tags`] is called with one of `tags` while `f` runs, `f`'s value is
    /// returned to this caller but not stored. So the pattern "commit the change, then
    /// invalidate the record's tags" never leaves a value read before the commit in the cache.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> core_db::Result<()> {
    /// use std::time::Duration;
    /// # let cache = core_db::Cache::memory("app");
    ///
    /// let ttl = Some(Duration::from_secs(300));
    /// let state: String = cache
    ///     .remember_with_tags("job:7", &["job:7", "client:3"], ttl, || async {
    ///         Ok("queued".to_owned()) // read the row from the database
    ///     })
    ///     .await?;
    /// # assert_eq!(state, "queued");
    /// // A transition: commit the new state first, then invalidate.
    /// cache.invalidate_tags(&["job:7"]).await?;
    /// assert!(!cache.has("job:7").await?);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`Cache::remember`].
    pub async fn remember_with_tags<T, F, Fut>(
        &self,
        key: &str,
        tags: &[&str],
        ttl: Option<Duration>,
        f: F,
    ) -> Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.flight(key, StoreMode::Tagged(tags, ttl), f).await
    }
}
