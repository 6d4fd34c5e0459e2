//! Named locks with an owner token, on the cache's driver.

use std::time::{Duration, Instant};

use super::{Cache, check_key, normalize_ttl};
use crate::Result;

/// A named lock with an owner token, from [`Cache::lock`].
///
/// On Redis the lock is `{prefix}:lock:{name}`, taken with `SET NX PX` and released by a script
/// that deletes it only if it still holds this lock's token: a lock that expired and was taken
/// by someone else is never released by its first owner. On the memory driver the same rules hold
/// within the process. The lock expires by itself after its TTL, so a crashed owner cannot hold it
/// forever; pick a TTL longer than the work it protects.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> core_db::Result<()> {
/// use std::time::Duration;
/// use core_db::Cache;
///
/// let cache = Cache::memory("app");
/// let lock = cache.lock("nightly-report", Duration::from_secs(60));
/// if lock.try_acquire().await? {
///     // ... only one holder at a time runs this ...
///     lock.release().await?;
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Lock {
    cache: Cache,
    name: String,
    ttl: Duration,
    token: String,
}

impl Lock {
    pub(super) fn new(cache: Cache, name: String, ttl: Duration, token: String) -> Self {
        Self {
            cache,
            name,
            ttl,
            token,
        }
    }

    /// The lock's name (the part after `{prefix}:lock:`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// This owner's token. Hand it to another process with [`Cache::lock_with_owner`] to let
    /// it release the lock.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// How long the lock lives once taken.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Takes the lock if nobody holds it; true when this owner now holds it. Never waits.
    ///
    /// # Errors
    /// An empty name, or the backend failed.
    pub async fn try_acquire(&self) -> Result<bool> {
        check_key(&self.name)?;
        let ttl = lock_ttl(self.ttl);
        store_call!(self.cache, s => s.lock_acquire(&self.name, &self.token, ttl))
    }

    /// Tries to take the lock until `wait` has passed, polling with short sleeps; true when
    /// this owner now holds it, false when `wait` ran out.
    ///
    /// # Errors
    /// An empty name, or the backend failed.
    pub async fn acquire(&self, wait: Duration) -> Result<bool> {
        let deadline = Instant::now() + wait;
        let mut pause = Duration::from_millis(5);
        loop {
            if self.try_acquire().await? {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            let jitter =
                Duration::from_micros(rand::random_range(0..=pause.as_micros() as u64 / 2));
            tokio::time::sleep((pause + jitter).min(deadline - now)).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// Releases the lock if this owner still holds it; false when it had expired or belongs to
    /// someone else (who keeps it).
    ///
    /// # Errors
    /// An empty name, or the backend failed.
    pub async fn release(&self) -> Result<bool> {
        check_key(&self.name)?;
        store_call!(self.cache, s => s.lock_release(&self.name, &self.token))
    }
}

/// A lock's TTL: rounded up to whole milliseconds, at least 1 ms.
pub(super) fn lock_ttl(ttl: Duration) -> Duration {
    normalize_ttl(ttl).max(Duration::from_millis(1))
}

impl Cache {
    /// A lock named `name` that lives `ttl` once taken, with a fresh owner token. See [`Lock`].
    pub fn lock(&self, name: impl Into<String>, ttl: Duration) -> Lock {
        let token = uuid::Uuid::new_v4().simple().to_string();
        Lock::new(self.clone(), name.into(), ttl, token)
    }

    /// The lock `name` as owned by `token` (from [`Lock::token`]), for example to release in
    /// one process a lock another process took.
    pub fn lock_with_owner(
        &self,
        name: impl Into<String>,
        ttl: Duration,
        token: impl Into<String>,
    ) -> Lock {
        Lock::new(self.clone(), name.into(), ttl, token.into())
    }
}
