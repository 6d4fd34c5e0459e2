//! Single-flight computation for `remember`, `flexible` and `#[cached]`, fenced against
//! invalidations.
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
//!
//! # Fences: invalidations win over computations that started before them
//!
//! A computation can race a change of the data it reads: a reader misses and reads the old row;
//! a writer commits the new row and invalidates the key (there is nothing to delete yet); the
//! reader then stores the old row, which would be served until its TTL ends. To rule this out,
//! the claim also returns a [`Fence`]: the generations of the key and of the tags the value will
//! carry, and the value the key held, read in the same atomic step (each driver registers the
//! generations it hands out). Deleting, forgetting or pulling the key moves the key's generation
//! on; `invalidate_tags` moves each tag's. The computed value is then written by the driver's
//! `fill`, one atomic step that first checks the fence (on Redis a Lua script): the key must
//! still hold what the claim saw (nothing, or the value that did not decode) and no generation
//! may have moved, so a `put` made meanwhile is never overwritten either. When the check fails
//! nothing is written: the caller that computed still gets its value (it raced the change), but
//! it is not cached.
//!
//! Nor is it handed to callers that started after the change. The callers waiting on a flight
//! in this process only take a value that was read or stored after they joined: a flight leaves
//! the map (later callers start their own) before its value is sent to the store, and a value
//! the claim found is only shared with callers that joined before the claim was sent.
//!
//! The guarantee that follows, and the rule for callers ("invalidate after the commit"), are
//! stated in the [cache module docs](super#invalidations-win), with their limits.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::OnceCell;

use super::store::{Claim, Fence, Fill};
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

impl StoreMode<'_> {
    /// The tags the value will carry (their generations are part of the fence).
    fn tags(&self) -> &[&str] {
        match self {
            StoreMode::Tagged(tags, _) => tags,
            StoreMode::Put(_) | StoreMode::Flexible { .. } => &[],
        }
    }
}

/// A value handed from a flight's computing caller to the callers waiting on it.
struct Shared {
    raw: String,
    /// Only callers that joined with a number below this may take it: a value read from the
    /// store is older than any caller that joined after the read was sent.
    valid_below: u64,
}

/// Why a flight's computing caller has no value to share.
enum Lead<E> {
    /// The computation (or the store) failed; the error is this caller's.
    Failed(E),
    /// The value was computed but not stored (an invalidation came in between): it is this
    /// caller's only.
    Unstored,
}

/// The keys being computed in this process.
#[derive(Default)]
pub(super) struct Flights {
    map: Mutex<HashMap<String, Arc<OnceCell<Shared>>>>,
    /// How many callers joined a flight so far: each caller's number, in order.
    joins: AtomicU64,
}

impl Flights {
    fn join(&self, key: &str) -> Flight<'_> {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let cell = Arc::clone(map.entry(key.to_owned()).or_default());
        let number = self.joins.fetch_add(1, Ordering::SeqCst);
        Flight {
            flights: self,
            key: key.to_owned(),
            cell,
            number,
        }
    }

    /// The number the next caller to join will get.
    fn next_number(&self) -> u64 {
        self.joins.load(Ordering::SeqCst)
    }

    /// Takes `cell` out of the map if it is still `key`'s flight: callers that come later start
    /// a flight of their own instead of waiting for this one's value.
    fn retire(&self, key: &str, cell: &Arc<OnceCell<Shared>>) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map
            .get(key)
            .is_some_and(|current| Arc::ptr_eq(current, cell))
        {
            map.remove(key);
        }
    }
}

/// One caller's membership of a flight; the last one out (or the first after success) removes
/// the flight from the map.
struct Flight<'a> {
    flights: &'a Flights,
    key: String,
    cell: Arc<OnceCell<Shared>>,
    /// When this caller joined (see [`Shared::valid_below`]).
    number: u64,
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
        for tag in mode.tags() {
            check_key(tag)?;
        }
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
        let mut f = Some(f);
        loop {
            let flight = self.inner.flights.join(key);
            let mut own: Option<T> = None;
            let result = flight
                .cell
                .get_or_try_init(|| self.lead(key, &mode, &flight.cell, &mut f, &mut own))
                .await;
            if let Some(value) = own {
                return Ok(value);
            }
            match result {
                Ok(shared) if flight.number < shared.valid_below => {
                    return serde_json::from_str(&shared.raw).map_err(|e| {
                        E::from(Error::InvalidValue {
                            key: key.to_owned(),
                            reason: format!(
                                "value computed by a concurrent caller does not decode: {e}"
                            ),
                        })
                    });
                }
                Err(Lead::Failed(error)) => return Err(error),
                // Read before this caller joined, or (never without a value of this caller's)
                // not stored: start over with a flight of its own.
                Ok(_) | Err(Lead::Unstored) => {}
            }
        }
    }

    /// This process's computing caller: claim, then compute and store, or wait for another
    /// process's value.
    async fn lead<T, E, F, Fut>(
        &self,
        key: &str,
        mode: &StoreMode<'_>,
        cell: &Arc<OnceCell<Shared>>,
        f: &mut Option<F>,
        own: &mut Option<T>,
    ) -> Result<Shared, Lead<E>>
    where
        T: Serialize + DeserializeOwned,
        E: From<Error>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let failed = |e: Error| Lead::Failed(E::from(e));
        let limits = on_store!(self, s => s.flight_limits());
        let lock_ttl = lock_ttl(limits.lock_ttl);
        let name = format!("cache:remember:{key}");
        let token = uuid::Uuid::new_v4().simple().to_string();
        let tags = mode.tags();
        let started = Instant::now();
        let mut ignore: Option<String> = None;
        let mut pause = Duration::from_millis(2);
        loop {
            let sent_at = self.inner.flights.next_number();
            let claim = store_call!(self, s => s.claim(key, &name, &token, lock_ttl, ignore.as_deref(), tags))
                .map_err(failed)?;
            match claim {
                Claim::Value(raw) => {
                    if let Some(value) = decode(key, &raw) {
                        *own = Some(value);
                        self.inner.flights.retire(key, cell);
                        return Ok(Shared {
                            raw,
                            valid_below: sent_at,
                        });
                    }
                    ignore = Some(raw);
                }
                Claim::Acquired(fence) => {
                    let guard = LockGuard {
                        cache: self.clone(),
                        name,
                        token,
                        armed: true,
                    };
                    let result = self.compute_and_fill(key, mode, fence, cell, f, own).await;
                    guard.release().await;
                    return result;
                }
                Claim::Busy(fence) => {
                    if started.elapsed() >= limits.wait {
                        tracing::warn!(
                            key,
                            waited = ?limits.wait,
                            "another process is still computing this cache key; computing it here"
                        );
                        return self.compute_and_fill(key, mode, fence, cell, f, own).await;
                    }
                    let jitter =
                        Duration::from_micros(rand::random_range(0..=pause.as_micros() as u64 / 2));
                    tokio::time::sleep(pause + jitter).await;
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
            }
        }
    }

    /// Computes the value, then stores it if `fence` still holds.
    async fn compute_and_fill<T, E, F, Fut>(
        &self,
        key: &str,
        mode: &StoreMode<'_>,
        fence: Fence,
        cell: &Arc<OnceCell<Shared>>,
        f: &mut Option<F>,
        own: &mut Option<T>,
    ) -> Result<Shared, Lead<E>>
    where
        T: Serialize,
        E: From<Error>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let Some(f) = f.take() else {
            return Err(Lead::Failed(E::from(Error::Config(
                "cache: a remember closure was asked to run twice".to_owned(),
            ))));
        };
        let value = f().await.map_err(Lead::Failed)?;
        let raw =
            serde_json::to_string(&value).map_err(|e| Lead::Failed(E::from(Error::from(e))))?;
        // Callers that join from now on did not join before the store was sent: they start a
        // flight of their own rather than take a value an invalidation may follow.
        self.inner.flights.retire(key, cell);
        let stored = self
            .fill(key, &raw, mode, &fence)
            .await
            .map_err(|e| Lead::Failed(E::from(e)))?;
        *own = Some(value);
        if stored {
            Ok(Shared {
                raw,
                valid_below: u64::MAX,
            })
        } else {
            tracing::debug!(
                key,
                "the cache key was invalidated while its value was computed; not caching it"
            );
            Err(Lead::Unstored)
        }
    }

    /// Stores a computed value as `mode` says if `fence` still holds; true when it stored (or,
    /// for a zero TTL, deleted).
    async fn fill(
        &self,
        key: &str,
        raw: &str,
        mode: &StoreMode<'_>,
        fence: &Fence,
    ) -> Result<bool> {
        match mode {
            StoreMode::Put(ttl) | StoreMode::Tagged(_, ttl) => {
                let ttl = ttl.map(normalize_ttl);
                if ttl.is_some_and(|d| d.is_zero()) {
                    self.del(key).await?;
                    return Ok(true);
                }
                let fill = match mode {
                    StoreMode::Tagged(tags, _) => Fill::Tagged(tags),
                    _ => Fill::Put,
                };
                store_call!(self, s => s.fill(key, raw, fill, ttl, fence))
            }
            StoreMode::Flexible { fresh, stale } => {
                let fresh_until =
                    unix_millis(SystemTime::now() + normalize_ttl(*fresh)).to_string();
                let stamp_key = fresh_until_key(key);
                let stale = normalize_ttl(*stale);
                if stale.is_zero() {
                    self.del(key).await?;
                    self.del(&stamp_key).await?;
                    return Ok(true);
                }
                let fill = Fill::Flexible {
                    stamp_key: &stamp_key,
                    stamp: &fresh_until,
                };
                store_call!(self, s => s.fill(key, raw, fill, Some(stale), fence))
            }
        }
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

    /// Starts one background refresh of a stale flexible value, unless one is running. The
    /// refresh is fenced like a `remember`: an invalidation of the key while it computes keeps
    /// its value out of the cache.
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
                let fence = store_call!(cache, s => s.fence(&key, &[]))?;
                let value = f().await?;
                let raw = serde_json::to_string(&value)?;
                cache
                    .fill(&key, &raw, &StoreMode::Flexible { fresh, stale }, &fence)
                    .await
            }
            .await;
            match refreshed {
                Ok(true) => {}
                Ok(false) => tracing::debug!(
                    key,
                    "the cache key changed while it was refreshed; not caching the refresh"
                ),
                Err(error) => {
                    tracing::warn!(key, %error, "background cache refresh failed; the stale value stays");
                }
            }
            if let Err(error) = lock.release().await {
                tracing::warn!(key, %error, "could not release a cache refresh lock");
            }
        });
    }
}
