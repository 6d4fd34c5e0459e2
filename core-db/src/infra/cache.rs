//! The cache: one cheap, cloneable [`Cache`](crate::infra::cache::Cache) handle over three drivers that behave the same.
//!
//! | driver | constructor | for |
//! |---|---|---|
//! | memory | [`Cache::memory`](crate::infra::cache::Cache::memory) | one process; moka, bounded, TTLs honoured |
//! | redis | [`Cache::redis`](crate::infra::cache::Cache::redis) | any number of processes sharing one Redis |
//! | tiered | [`Cache::tiered`](crate::infra::cache::Cache::tiered) | a memory L1 in front of Redis; L1 kept coherent across processes |
//!
//! [`Cache::from_url`](crate::infra::cache::Cache::from_url) picks one from configuration (`memory://`, `redis://`, `rediss://`,
//! `tiered+redis://`).
//!
//! On Redis everything lives under the application prefix, one namespace per kind of key:
//! `{prefix}:cache:{key}` for values, `{prefix}:cache-tag:…` for tags, `{prefix}:cache-gen:…` for
//! the generations that fence `remember` against invalidations, and `{prefix}:lock:{name}` for
//! locks. [`Cache::flush_prefix`](crate::infra::cache::Cache::flush_prefix) never leaves `{prefix}:cache:`.
//!
//! Beyond plain strings the cache stores JSON ([`Cache::get_json`](crate::infra::cache::Cache::get_json), [`Cache::set_json`](crate::infra::cache::Cache::set_json)),
//! computes missing values once however many callers miss together ([`Cache::remember`](crate::infra::cache::Cache::remember), and the
//! [`#[cached]`](crate::cached) attribute), serves stale values while refreshing them
//! ([`Cache::flexible`](crate::infra::cache::Cache::flexible)), counts ([`Cache::increment`](crate::infra::cache::Cache::increment), [`Cache::increment_ex`](crate::infra::cache::Cache::increment_ex)), tags values
//! for bulk invalidation ([`Cache::set_with_tags`](crate::infra::cache::Cache::set_with_tags), [`Cache::invalidate_tag`](crate::infra::cache::Cache::invalidate_tag)) and hands out
//! owner-checked locks ([`Cache::lock`](crate::infra::cache::Cache::lock)).
//!
//!
//! # Invalidations win
//!
//! [`Cache::remember`](crate::infra::cache::Cache::remember), `remember_forever`,
//! [`Cache::remember_with_tags`](crate::infra::cache::Cache::remember_with_tags), the
//! recomputations of [`Cache::flexible`](crate::infra::cache::Cache::flexible) and
//! [`#[cached]`](crate::cached) never store a value whose computation started before an
//! invalidation of its key (`forget`, `del`, `pull`, or a `put`) or of one of its tags
//! (`invalidate_tag(s)`) once that invalidation has happened. The caller that computed it still
//! gets it (it raced the change), but it is not cached and not handed to callers that started
//! after the invalidation; the next read computes again. This holds on every driver, across
//! processes sharing a Redis, and for the tiered driver's L1 copies (which only ever copy what
//! reached L2, and are evicted as L2 changes are announced).
//!
//! **The rule for callers: invalidate after the commit.** Commit the transaction, then `forget`
//! the key or invalidate its tags; once that call has returned, no read that starts afterwards
//! returns data older than the commit (on a tiered cache in another process: within the
//! propagation bound of [`Cache::tiered`](crate::infra::cache::Cache::tiered)). Invalidating
//! before the commit leaves a window in which the old row is read and cached as usual.
//!
//! The limits: a computation that runs for longer than 10 minutes may be returned uncached;
//! `flush_prefix` and counter changes do not stop a computation; a `put` is seen through the
//! value it leaves, so a `put` whose value has expired again (or that wrote exactly the value the
//! key already held) before the computation ends goes unseen. On a tiered cache, when two
//! invalidations of one key run at once in one process, the one that finds nothing left in L2 can
//! return before the other has evicted this process's L1 copy (a window of one Redis round trip).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> core_db::Result<()> {
//! use std::time::Duration;
//! use core_db::Cache;
//!
//! let cache = Cache::memory("app");
//! cache.set_ex("greeting", "hello", 60).await?;
//! assert_eq!(cache.get("greeting").await?.as_deref(), Some("hello"));
//!
//! let total: u64 = cache
//!     .remember("report:total", 300, || async { Ok(42) })
//!     .await?;
//! assert_eq!(total, 42);
//!
//! cache
//!     .set_with_tags("user:1", "{}", &["users"], Some(Duration::from_secs(3600)))
//!     .await?;
//! cache.invalidate_tag("users").await?;
//! assert!(!cache.has("user:1").await?);
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::{Error, Result};

/// Runs `$body` with `$s` bound to the cache's store, whichever driver it is.
macro_rules! on_store {
    ($cache:expr, $s:ident => $body:expr) => {{
        #[allow(unused_imports)]
        use $crate::infra::cache::store::Store as _;
        match &$cache.inner.driver {
            $crate::infra::cache::Driver::Memory($s) => $body,
            $crate::infra::cache::Driver::Redis($s) => $body,
            $crate::infra::cache::Driver::Tiered($s) => $body,
        }
    }};
}

/// Awaits the store call `$call` with `$s` bound to the cache's store. The network-bound
/// drivers' futures are boxed, so a memory call does not carry (and move) their size; the
/// allocation is noise next to a round trip.
macro_rules! store_call {
    ($cache:expr, $s:ident => $call:expr) => {{
        #[allow(unused_imports)]
        use $crate::infra::cache::store::Store as _;
        match &$cache.inner.driver {
            $crate::infra::cache::Driver::Memory($s) => $call.await,
            $crate::infra::cache::Driver::Redis($s) => ::std::boxed::Box::pin($call).await,
            $crate::infra::cache::Driver::Tiered($s) => ::std::boxed::Box::pin($call).await,
        }
    }};
}

mod config;
mod flight;
mod lock;
mod memory;
mod redis;
mod store;
mod tiered;

pub use self::config::CacheConfig;
// The `Cache` methods, one file per group.
mod bulk;
mod counters;
mod tags;
mod typed;
mod values;

pub use self::lock::Lock;
pub use self::memory::MemoryCacheOptions;
pub use self::redis::RedisCacheOptions;
pub use self::tiered::{TieredConfig, TieredStats};

use self::config::CacheUrl;
use self::flight::{Flights, StoreMode};
use self::memory::MemoryStore;
use self::redis::RedisStore;
use self::tiered::TieredStore;

/// How long a key has left, from [`Cache::expiry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Expiry {
    /// The key holds no value (never set, deleted or expired).
    Missing,
    /// The key holds a value without an expiry.
    Persistent,
    /// The key holds a value that expires after this long.
    Expires(Duration),
}

/// Which driver a [`Cache`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CacheDriver {
    /// [`Cache::memory`].
    Memory,
    /// [`Cache::redis`].
    Redis,
    /// [`Cache::tiered`].
    Tiered,
}

/// The longest TTL the cache stores (100 years); longer ones are capped to it.
pub const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// A handle on the cache. Cloning is cheap (one `Arc`), and clones share everything: the
/// connection, the memory, the in-flight computations.
///
/// Every method behaves the same on every driver. TTLs are rounded up to whole milliseconds and
/// capped at [`MAX_TTL`]; a zero TTL means "already expired", so it deletes the key instead of
/// storing. Keys must not be empty ([`Error::InvalidKey`]).
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

struct Inner {
    prefix: String,
    driver: Driver,
    flights: Flights,
}

enum Driver {
    Memory(MemoryStore),
    Redis(RedisStore),
    Tiered(TieredStore),
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("driver", &self.driver())
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

/// Rejects an empty key, name or tag.
pub(crate) fn check_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::InvalidKey {
            key: String::new(),
            reason: "cache keys, tags and lock names cannot be empty",
        });
    }
    Ok(())
}

/// Rounds a TTL up to whole milliseconds and caps it at [`MAX_TTL`].
pub(crate) fn normalize_ttl(ttl: Duration) -> Duration {
    let ms = ttl.min(MAX_TTL).as_nanos().div_ceil(1_000_000);
    Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
}

fn seconds(ttl_secs: u64) -> Duration {
    Duration::from_secs(ttl_secs)
}

impl Cache {
    fn from_driver(prefix: String, driver: Driver) -> Self {
        Self {
            inner: Arc::new(Inner {
                prefix,
                driver,
                flights: Flights::default(),
            }),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Construction
    // -----------------------------------------------------------------------------------------

    /// A memory cache (moka) in this process, bounded to
    /// [`MemoryCacheOptions::DEFAULT_MAX_ENTRIES`] entries. Needs no service; what it holds
    /// is lost when the process exits and not shared with other processes.
    pub fn memory(prefix: impl Into<String>) -> Self {
        Self::memory_with(prefix, MemoryCacheOptions::default())
    }

    /// [`Cache::memory`] with options (capacity).
    pub fn memory_with(prefix: impl Into<String>, options: MemoryCacheOptions) -> Self {
        Self::from_driver(prefix.into(), Driver::Memory(MemoryStore::new(&options)))
    }

    /// A Redis cache: one auto-reconnecting multiplexed connection shared by every clone, each
    /// call bounded by a 2 s timeout. Keys live under `{prefix}:cache:`.
    ///
    /// ```no_run
    /// # async fn example() -> core_db::Result<()> {
    /// use core_db::Cache;
    ///
    /// let cache = Cache::redis("redis://127.0.0.1:6379", "app").await?;
    /// cache.set("k", "v").await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// An invalid URL, an empty prefix, or Redis unreachable within the timeout.
    pub async fn redis(url: &str, prefix: impl Into<String>) -> Result<Self> {
        Self::redis_with(url, prefix, RedisCacheOptions::default()).await
    }

    /// [`Cache::redis`] with options (timeout, `remember` lock TTL and wait).
    ///
    /// # Errors
    /// As [`Cache::redis`].
    pub async fn redis_with(
        url: &str,
        prefix: impl Into<String>,
        options: RedisCacheOptions,
    ) -> Result<Self> {
        let prefix = prefix.into();
        if prefix.is_empty() {
            return Err(Error::Config("the cache prefix cannot be empty".to_owned()));
        }
        let store = RedisStore::connect(url, &prefix, options).await?;
        Ok(Self::from_driver(prefix, Driver::Redis(store)))
    }

    /// A tiered cache: `l1` (a memory cache) in front of `l2` (a Redis cache), configured by
    /// `config` (see [`TieredConfig`]). It takes `l2`'s prefix.
    ///
    /// Writes, deletes, flushes, counters and tag invalidations go to L2, then to this L1, and
    /// are published on `{prefix}:cache-invalidate` so every other tiered cache on the prefix
    /// evicts the keys from its L1, normally within milliseconds. Each change and its `PUBLISH`
    /// run in one Lua script: a change never reaches Redis without its announcement. Other
    /// processes writing the same prefix must therefore use a tiered cache too (a plain
    /// [`Cache::redis`] does not publish; [`TieredConfig::l1_max_ttl`] bounds how long its
    /// changes go unseen). Give `l1` to this cache only; writing to it directly bypasses L2.
    ///
    /// **Staleness bound**: a read never returns a value older than the last write (by any
    /// tiered cache on the prefix) acknowledged more than **2 seconds** before the read started.
    /// The subscriber pings every second on its subscription and L1 is trusted only for 2
    /// seconds after the last ping that came back, so a subscription that stalls or is cut
    /// makes this cache read L2 (correct, only slower) until it hears again; on reconnecting,
    /// L1 starts empty.
    ///
    /// ```no_run
    /// # async fn example() -> core_db::Result<()> {
    /// use core_db::cache::{Cache, TieredConfig};
    ///
    /// let l1 = Cache::memory("app");
    /// let l2 = Cache::redis("redis://127.0.0.1:6379", "app").await?;
    /// let cache = Cache::tiered(l1, l2, TieredConfig::default()).await?;
    /// cache.set("k", "v").await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// `l1` is not a memory cache, `l2` not a Redis cache, `l1_ttl_fraction` is outside
    /// `(0, 1]` or `l1_max_ttl` is zero ([`Error::Config`]).
    pub async fn tiered(l1: Cache, l2: Cache, config: TieredConfig) -> Result<Self> {
        let Driver::Memory(memory) = &l1.inner.driver else {
            return Err(Error::Config(
                "Cache::tiered: l1 must be a memory cache (Cache::memory)".to_owned(),
            ));
        };
        let Driver::Redis(redis) = &l2.inner.driver else {
            return Err(Error::Config(
                "Cache::tiered: l2 must be a Redis cache (Cache::redis)".to_owned(),
            ));
        };
        let prefix = l2.inner.prefix.clone();
        let store = TieredStore::new(memory.clone(), redis.clone(), &prefix, config).await?;
        Ok(Self::from_driver(prefix, Driver::Tiered(store)))
    }

    /// The cache configuration names: `memory://` (optionally `memory://?max_entries=N`),
    /// `redis://…` or `rediss://…` (Redis), `tiered+redis://…` or `tiered+rediss://…` (a default
    /// memory L1 in front of that Redis, default [`TieredConfig`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> core_db::Result<()> {
    /// use core_db::cache::{Cache, CacheDriver};
    ///
    /// let url = std::env::var("CACHE_URL").unwrap_or_else(|_| "memory://".to_owned());
    /// # let url = "memory://".to_owned();
    /// let cache = Cache::from_url(&url, "app").await?;
    /// assert_eq!(cache.driver(), CacheDriver::Memory);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// An unknown scheme or bad option ([`Error::Config`]), or the errors of the driver's
    /// constructor.
    pub async fn from_url(url: &str, prefix: impl Into<String>) -> Result<Self> {
        let prefix = prefix.into();
        match CacheUrl::parse(url)? {
            CacheUrl::Memory(options) => Ok(Self::memory_with(prefix, options)),
            CacheUrl::Redis(url) => Self::redis(url, prefix).await,
            CacheUrl::Tiered(redis_url) => {
                let l2 = Self::redis(redis_url, prefix.clone()).await?;
                Self::tiered(Self::memory(prefix), l2, TieredConfig::default()).await
            }
        }
    }

    /// The application prefix this cache was made with.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// Which driver this cache uses.
    pub fn driver(&self) -> CacheDriver {
        match self.inner.driver {
            Driver::Memory(_) => CacheDriver::Memory,
            Driver::Redis(_) => CacheDriver::Redis,
            Driver::Tiered(_) => CacheDriver::Tiered,
        }
    }

    /// The hit, miss and promotion counters of a tiered cache; `None` for the other drivers.
    pub fn stats(&self) -> Option<TieredStats> {
        match &self.inner.driver {
            Driver::Tiered(t) => Some(t.stats()),
            _ => None,
        }
    }

    /// The Redis connection behind this cache (a clone of the shared, auto-reconnecting
    /// manager), for commands the cache does not wrap; `None` for the memory driver. Keys you
    /// write through it are outside the cache's layout unless you follow it.
    pub fn redis_connection(&self) -> Option<::redis::aio::ConnectionManager> {
        match &self.inner.driver {
            Driver::Memory(_) => None,
            Driver::Redis(r) => Some(r.connection()),
            Driver::Tiered(t) => Some(t.l2().connection()),
        }
    }
}

/// Support for the `#[cached]` attribute; not a public API.
#[doc(hidden)]
pub mod __private {
    use std::future::Future;
    use std::time::Duration;

    use serde::Serialize;
    use serde::de::DeserializeOwned;

    use super::{Cache, StoreMode};
    use crate::Error;

    /// The body of a `#[cached]` function: `fut`'s `Ok` value cached at `key` with `tags`
    /// through the single-flight path; its `Err` returned and not cached.
    pub async fn cached<T, E, Fut>(
        cache: &Cache,
        key: &str,
        ttl: Option<Duration>,
        tags: &[String],
        fut: Fut,
    ) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        E: From<Error>,
        Fut: Future<Output = Result<T, E>>,
    {
        if tags.is_empty() {
            return cache.flight(key, StoreMode::Put(ttl), move || fut).await;
        }
        let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
        cache
            .flight(key, StoreMode::Tagged(&tags, ttl), move || fut)
            .await
    }

    /// A `#[cached]` TTL in seconds.
    pub fn ttl_secs(secs: u64) -> Option<Duration> {
        Some(Duration::from_secs(secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_handle<T: Clone + Send + Sync + 'static>() {}

    #[test]
    fn cache_is_a_cheap_shared_handle() {
        assert_handle::<Cache>();
        assert_handle::<Lock>();
    }

    #[test]
    fn ttls_round_up_to_milliseconds() {
        assert_eq!(normalize_ttl(Duration::ZERO), Duration::ZERO);
        assert_eq!(
            normalize_ttl(Duration::from_micros(1)),
            Duration::from_millis(1)
        );
        assert_eq!(
            normalize_ttl(Duration::from_micros(1500)),
            Duration::from_millis(2)
        );
        assert_eq!(
            normalize_ttl(Duration::from_secs(3)),
            Duration::from_secs(3)
        );
        assert_eq!(normalize_ttl(Duration::MAX), MAX_TTL);
    }

    #[test]
    fn empty_keys_are_rejected() {
        assert!(matches!(check_key(""), Err(Error::InvalidKey { .. })));
        assert!(check_key("k").is_ok());
    }
}
