//! Single-flight computation for `remember`, `flexible` and `#[cached]`.
//!
//! Two layers keep a missing value from being computed more than once:
//!
//! 1. In this process, concurrent misses of one key share a `tokio::sync::OnceCell`: the first
//!    caller computes, the others wait for its serialized value. If the computing caller fails or
//!    is cancelled, the next waiter computes with its own closure.
//! 2. Across processes, the computing caller runs the driver's atomic *claim* (on Redis one Lua
//!    script): the value if someone stored it meanwhile, else a short lock
//!    `{prefix}:lock:cache:remember:{key}` (`SET NX PX`, owner token). Without the lock it polls
//!    the claim with short sleeps until the value appears, the lock frees up, or the wait bound
//!    passes, after which it computes anyway.
//!
//! A cached value that does not decode as the requested type counts as a miss (logged with its
//! key) and is replaced.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::OnceCell;

use super::store::Claim;
use super::{Cache, check_key, lock::lock_ttl, normalize_ttl};
use crate::{Error, Result};

/// How a computed value is stored.
pub(super) enum StoreMode<'a> {
    /// `put` with this TTL.
    Put(Option<Duration>),
    /// `set_with_tags` with these tags and TTL.
    Tagged(&'a [&'a str], Option<Duration>),
    /// The value and its fresh-until stamp, both living `stale`.
    Flexible { fresh: Duration, stale: Duration },
}

/// The keys being computed in this process.
#[derive(Default)]
pub(super) struct Flights {
    map: Mutex<HashMap<String, Arc<OnceCell<String>>>>,
}

impl Flights {
    fn join(&self, key: &str) -> Flight<'_> {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let cell = Arc::clone(map.entry(key.to_owned()).or_default());
        Flight {
            flights: self,
            key: key.to_owned(),
            cell,
        }
    }
}

/// One caller's membership of a flight; the last one out (or the first after success) removes
/// the flight from the map.
struct Flight<'a> {
    flights: &'a Flights,
    key: String,
    cell: Arc<OnceCell<String>>,
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        let mut map = self
            .flights
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(current) = map.get(&self.key)
            && Arc::ptr_eq(current, &self.cell)
            && (self.cell.initialized() || Arc::strong_count(&self.cell) <= 2)
        {
            map.remove(&self.key);
        }
    }
}

/// Decodes a cached value; `None` (after a warning naming the key) when it does not decode.
pub(super) fn decode<T: DeserializeOwned>(key: &str, raw: &str) -> Option<T> {
    match serde_json::from_str(raw) {
        Ok(value) => Some(value),
        Err(error) => {
            tracing::warn!(
                key,
                %error,
                "cached value does not decode as the requested type; treating it as a miss"
            );
            None
        }
    }
}

/// The key holding a flexible value's fresh-until stamp (Unix milliseconds). It starts with the
/// value's key, so `flush_prefix` removes both.
pub(super) fn fresh_until_key(key: &str) -> String {
    format!("{key}#flexible-fresh-until")
}

fn unix_millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Releases a compute lock when dropped without [`LockGuard::release`] (a cancelled caller), so
/// other processes need not wait for the lock's TTL.
struct LockGuard {
    cache: Cache,
    name: String,
    token: String,
    armed: bool,
}

impl LockGuard {
    async fn release(mut self) {
        self.armed = false;
        if let Err(error) = self.cache.release_lock(&self.name, &self.token).await {
            tracing::warn!(lock = self.name, %error, "could not release a cache compute lock");
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let cache = self.cache.clone();
            let name = std::mem::take(&mut self.name);
            let token = std::mem::take(&mut self.token);
            runtime.spawn(async move {
                let _ = cache.release_lock(&name, &token).await;
            });
        }
    }
}

impl Cache {
    async fn release_lock(&self, name: &str, token: &str) -> Result<bool> {
        store_call!(self, s => s.lock_release(name, token))
    }

    /// Get-or-compute through both single-flight layers.
    pub(super) async fn flight<T, E, F, Fut>(
        &self,
        key: &str,
        mode: StoreMode<'_>,
        f: F,
    ) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        E: From<Error>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        check_key(key)?;
        if let Some(raw) = self.get(key).await?
            && let Some(value) = decode(key, &raw)
        {
            return Ok(value);
        }
        self.compute_once(key, mode, f).await
    }

    /// The miss path: one computation per key in this process, and across processes.
    pub(super) async fn compute_once<T, E, F, Fut>(
        &self,
        key: &str,
        mode: StoreMode<'_>,
        f: F,
    ) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        E: From<Error>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let flight = self.inner.flights.join(key);
        let mut own: Option<T> = None;
        let mut f = Some(f);
        let raw = flight
            .cell
            .get_or_try_init(|| self.lead(key, &mode, &mut f, &mut own))
            .await?;
        if let Some(value) = own {
            return Ok(value);
        }
        serde_json::from_str(raw).map_err(|e| {
            E::from(Error::InvalidValue {
                key: key.to_owned(),
                reason: format!("value computed by a concurrent caller does not decode: {e}"),
            })
        })
    }

    /// This process's computing caller: claim, then compute and store, or wait for another
    /// process's value.
    async fn lead<T, E, F, Fut>(
        &self,
        key: &str,
        mode: &StoreMode<'_>,
        f: &mut Option<F>,
        own: &mut Option<T>,
    ) -> Result<String, E>
    where
        T: Serialize + DeserializeOwned,
        E: From<Error>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let limits = on_store!(self, s => s.flight_limits());
        let lock_ttl = lock_ttl(limits.lock_ttl);
        let name = format!("cache:remember:{key}");
        let token = uuid::Uuid::new_v4().simple().to_string();
        let started = Instant::now();
        let mut ignore: Option<String> = None;
        let mut pause = Duration::from_millis(2);
        loop {
            let claim =
                store_call!(self, s => s.claim(key, &name, &token, lock_ttl, ignore.as_deref()))?;
            match claim {
                Claim::Value(raw) => {
                    if let Some(value) = decode(key, &raw) {
                        *own = Some(value);
                        return Ok(raw);
                    }
                    ignore = Some(raw);
                }
                Claim::Acquired => {
                    let guard = LockGuard {
                        cache: self.clone(),
                        name,
                        token,
                        armed: true,
                    };
                    let result = self.compute_and_store(key, mode, f, own).await;
                    guard.release().await;
                    return result;
                }
                Claim::Busy => {
                    if started.elapsed() >= limits.wait {
                        tracing::warn!(
                            key,
                            waited = ?limits.wait,
                            "another process is still computing this cache key; computing it here"
                        );
                        return self.compute_and_store(key, mode, f, own).await;
                    }
                    let jitter =
                        Duration::from_micros(rand::random_range(0..=pause.as_micros() as u64 / 2));
                    tokio::time::sleep(pause + jitter).await;
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
            }
        }
    }

    async fn compute_and_store<T, E, F, Fut>(
        &self,
        key: &str,
        mode: &StoreMode<'_>,
        f: &mut Option<F>,
        own: &mut Option<T>,
    ) -> Result<String, E>
    where
        T: Serialize,
        E: From<Error>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let Some(f) = f.take() else {
            return Err(E::from(Error::Config(
                "cache: a remember closure was asked to run twice".to_owned(),
            )));
        };
        let value = f().await?;
        let raw = serde_json::to_string(&value).map_err(Error::from)?;
        match mode {
            StoreMode::Put(ttl) => self.put(key, &raw, *ttl).await?,
            StoreMode::Tagged(tags, ttl) => self.set_with_tags(key, &raw, tags, *ttl).await?,
            StoreMode::Flexible { fresh, stale } => {
                self.store_flexible(key, &raw, *fresh, *stale).await?;
            }
        }
        *own = Some(value);
        Ok(raw)
    }

    /// Stores a flexible value and its fresh-until stamp in one round trip.
    async fn store_flexible(
        &self,
        key: &str,
        raw: &str,
        fresh: Duration,
        stale: Duration,
    ) -> Result<()> {
        let fresh_until = unix_millis(SystemTime::now() + normalize_ttl(fresh)).to_string();
        let stamp_key = fresh_until_key(key);
        let pairs = [(key, raw), (stamp_key.as_str(), fresh_until.as_str())];
        let stale = normalize_ttl(stale);
        if stale.is_zero() {
            for (k, _) in pairs {
                self.del(k).await?;
            }
            return Ok(());
        }
        store_call!(self, s => s.put_many(&pairs, Some(stale)))
    }

    /// `flexible`: see [`Cache::flexible`].
    pub(super) async fn flexible_impl<T, F, Fut>(
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
        check_key(key)?;
        let stale = stale.max(fresh);
        let stamp_key = fresh_until_key(key);
        let found = store_call!(self, s => s.many(&[key, stamp_key.as_str()]))?;
        let mut found = found.into_iter();
        let (value, stamp) = (found.next().flatten(), found.next().flatten());
        if let Some(raw) = value
            && let Some(value) = decode::<T>(key, &raw)
        {
            let fresh_until: u64 = stamp.and_then(|s| s.parse().ok()).unwrap_or(0);
            if unix_millis(SystemTime::now()) >= fresh_until {
                self.refresh_in_background(key, fresh, stale, f).await;
            }
            return Ok(value);
        }
        self.compute_once(key, StoreMode::Flexible { fresh, stale }, f)
            .await
    }

    /// Starts one background refresh of a stale flexible value, unless one is running.
    async fn refresh_in_background<T, F, Fut>(
        &self,
        key: &str,
        fresh: Duration,
        stale: Duration,
        f: F,
    ) where
        T: Serialize + Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        let limits = on_store!(self, s => s.flight_limits());
        let lock = self.lock(format!("cache:flexible:{key}"), limits.lock_ttl);
        match lock.try_acquire().await {
            Ok(true) => {}
            Ok(false) => return,
            Err(error) => {
                tracing::warn!(key, %error, "could not start a cache refresh; serving the stale value");
                return;
            }
        }
        let cache = self.clone();
        let key = key.to_owned();
        tokio::spawn(async move {
            let refreshed = async {
                let value = f().await?;
                let raw = serde_json::to_string(&value)?;
                cache.store_flexible(&key, &raw, fresh, stale).await
            }
            .await;
            if let Err(error) = refreshed {
                tracing::warn!(key, %error, "background cache refresh failed; the stale value stays");
            }
            if let Err(error) = lock.release().await {
                tracing::warn!(key, %error, "could not release a cache refresh lock");
            }
        });
    }
}
