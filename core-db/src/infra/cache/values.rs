//! Plain string values: read, write, delete, and how long they have left.

use std::time::Duration;

use super::{Cache, Expiry, check_key, normalize_ttl, seconds};
use crate::Result;

impl Cache {
    /// The string at `key`, or `None`.
    ///
    /// # Errors
    /// An empty key, or the backend failed (Redis down or slower than the timeout).
    #[inline]
    pub async fn get(&self, key: &str) -> Result<Option<String>> {
        check_key(key)?;
        store_call!(self, s => s.get(key))
    }

    /// Stores `value` at `key` without expiry (replacing any TTL).
    ///
    /// # Errors
    /// As [`Cache::get`].
    pub async fn set(&self, key: &str, value: &str) -> Result<()> {
        self.put(key, value, None).await
    }

    /// Deletes `key` (and its tags). Deleting a missing key is not an error.
    ///
    /// # Errors
    /// As [`Cache::get`].
    pub async fn del(&self, key: &str) -> Result<()> {
        check_key(key)?;
        store_call!(self, s => s.del(key))
    }

    /// Stores `value` at `key` for `ttl_secs` seconds (0 deletes the key).
    ///
    /// # Errors
    /// As [`Cache::get`].
    pub async fn set_ex(&self, key: &str, value: &str, ttl_secs: u64) -> Result<()> {
        self.put(key, value, Some(seconds(ttl_secs))).await
    }

    /// The seconds `key` has left, rounded up; `None` when the key is missing *or* has no
    /// expiry. Use [`Cache::expiry`] to tell those apart.
    ///
    /// # Errors
    /// As [`Cache::get`].
    pub async fn ttl(&self, key: &str) -> Result<Option<i64>> {
        Ok(match self.expiry(key).await? {
            Expiry::Expires(left) => {
                let secs = left.as_millis().div_ceil(1000);
                Some(i64::try_from(secs).unwrap_or(i64::MAX))
            }
            Expiry::Missing | Expiry::Persistent => None,
        })
    }

    /// Deletes `key`; the same as [`Cache::del`].
    ///
    /// # Errors
    /// As [`Cache::get`].
    pub async fn forget(&self, key: &str) -> Result<()> {
        self.del(key).await
    }

    /// Whether `key` holds a value.
    ///
    /// # Errors
    /// As [`Cache::get`].
    pub async fn has(&self, key: &str) -> Result<bool> {
        check_key(key)?;
        store_call!(self, s => s.has(key))
    }

    /// Stores `value` at `key` for `ttl` (`None`: no expiry), with millisecond precision.
    ///
    /// # Errors
    /// As [`Cache::get`].
    pub async fn put(&self, key: &str, value: &str, ttl: Option<Duration>) -> Result<()> {
        check_key(key)?;
        let ttl = ttl.map(normalize_ttl);
        if ttl.is_some_and(|d| d.is_zero()) {
            return store_call!(self, s => s.del(key));
        }
        store_call!(self, s => s.put(key, value, ttl))
    }

    /// Stores `value` at `key` only if the key holds nothing, atomically; true when it stored.
    /// With a zero TTL nothing is stored and the answer is false.
    ///
    /// # Errors
    /// As [`Cache::get`].
    pub async fn add(&self, key: &str, value: &str, ttl: Option<Duration>) -> Result<bool> {
        check_key(key)?;
        let ttl = ttl.map(normalize_ttl);
        if ttl.is_some_and(|d| d.is_zero()) {
            return Ok(false);
        }
        store_call!(self, s => s.add(key, value, ttl))
    }

    /// Returns the value at `key` and deletes it, atomically (two concurrent pulls never both
    /// get it).
    ///
    /// # Errors
    /// As [`Cache::get`].
    pub async fn pull(&self, key: &str) -> Result<Option<String>> {
        check_key(key)?;
        store_call!(self, s => s.pull(key))
    }

    /// How long `key` has left: [`Expiry::Missing`], [`Expiry::Persistent`] or
    /// [`Expiry::Expires`] with millisecond precision.
    ///
    /// # Errors
    /// As [`Cache::get`].
    pub async fn expiry(&self, key: &str) -> Result<Expiry> {
        check_key(key)?;
        store_call!(self, s => s.expiry(key))
    }
}
