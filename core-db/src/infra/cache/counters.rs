//! Atomic integer counters, with or without a fixed window.

use std::time::Duration;

use super::{Cache, check_key, memory, normalize_ttl};
use crate::Result;

impl Cache {
    /// Atomically adds `by` to the integer at `key` (a missing key counts as 0) and returns the
    /// new value. The key keeps its expiry.
    ///
    /// # Errors
    /// [`Error::InvalidValue`](crate::Error::InvalidValue) when the value is not an integer or
    /// the result overflows `i64` (the value is left as it was), or as [`Cache::get`].
    pub async fn increment(&self, key: &str, by: i64) -> Result<i64> {
        check_key(key)?;
        store_call!(self, s => s.increment(key, by, None))
    }

    /// Atomically subtracts `by`; see [`Cache::increment`].
    ///
    /// # Errors
    /// As [`Cache::increment`].
    pub async fn decrement(&self, key: &str, by: i64) -> Result<i64> {
        let by = by.checked_neg().ok_or_else(|| memory::overflow(key))?;
        self.increment(key, by).await
    }

    /// [`Cache::increment`] for counters that expire, such as rate limits: the counter gets
    /// `ttl` when it is created (or if it has no expiry), and later increments do not extend it,
    /// so it counts within a fixed window. A zero TTL returns the new value and removes the
    /// counter.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> core_db::Result<()> {
    /// # let cache = core_db::Cache::memory("app");
    /// use std::time::Duration;
    ///
    /// let hits = cache.increment_ex("rate:203.0.113.9", 1, Duration::from_secs(60)).await?;
    /// if hits > 100 {
    ///     // too many requests this minute
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`Cache::increment`].
    pub async fn increment_ex(&self, key: &str, by: i64, ttl: Duration) -> Result<i64> {
        check_key(key)?;
        let ttl = normalize_ttl(ttl);
        store_call!(self, s => s.increment(key, by, Some(ttl)))
    }
}
