//! The options of the Redis driver.

use std::time::Duration;

/// Options of the Redis driver, for [`Cache::redis_with`](crate::infra::cache::Cache::redis_with).
///
/// ```no_run
/// # async fn example() -> core_db::Result<()> {
/// use std::time::Duration;
/// use core_db::cache::{Cache, RedisCacheOptions};
///
/// let options = RedisCacheOptions::new().timeout(Duration::from_millis(500));
/// let cache = Cache::redis_with("redis://127.0.0.1:6379", "app", options).await?;
/// # let _ = cache;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct RedisCacheOptions {
    pub(in crate::infra::cache) timeout: Duration,
    pub(in crate::infra::cache) remember_lock_ttl: Duration,
    pub(in crate::infra::cache) remember_wait: Duration,
}

impl RedisCacheOptions {
    /// The default timeout of one cache call: 2 seconds.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

    /// The defaults: a 2 s timeout per call; `remember` holds its compute lock for up to 10 s and
    /// waits up to 10 s for another process's result.
    pub fn new() -> Self {
        Self {
            timeout: Self::DEFAULT_TIMEOUT,
            remember_lock_ttl: Duration::from_secs(10),
            remember_wait: Duration::from_secs(10),
        }
    }

    /// The longest one cache call may take, waiting for a (re)connection included. Past it the
    /// call returns [`Error::Timeout`](crate::Error::Timeout); nothing hangs while Redis is down.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long the cross-process `remember` lock lives: if the process computing a value dies,
    /// another one takes over after this long. Set it above your slowest computation.
    pub fn remember_lock_ttl(mut self, ttl: Duration) -> Self {
        self.remember_lock_ttl = ttl;
        self
    }

    /// How long `remember` waits for another process that is computing the same key before it
    /// computes the value itself.
    pub fn remember_wait(mut self, wait: Duration) -> Self {
        self.remember_wait = wait;
        self
    }
}

impl Default for RedisCacheOptions {
    fn default() -> Self {
        Self::new()
    }
}
