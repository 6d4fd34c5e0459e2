//! The tiered driver: a memory L1 in front of the Redis L2, with L1 kept coherent across
//! processes over Redis pub/sub.
//!
//! Every write, delete, flush, counter change and tag invalidation goes to L2 first, then to this
//! process's L1; every other process's subscriber evicts the keys from its L1. The change and its
//! announcement (a `PUBLISH` on `{prefix}:cache-invalidate`) run in one Lua script, so a change
//! never reaches L2 without its announcement: a connection lost between the two cannot leave the
//! other processes with a copy nothing will evict. The subscriber uses a dedicated connection
//! (`lib-name=rustforge-cache-sub:{prefix}` in `CLIENT LIST`) and resubscribes after a
//! reconnection. While it is not subscribed, L1 is bypassed (it could miss invalidations), and
//! it is cleared when the subscription comes back, so nothing announced while it was away
//! survives.
//!
//! # How stale a read can be
//!
//! Normally an invalidation reaches the other processes within a millisecond or so of the write
//! (the cache benchmark prints the lag, p50 and p99). A subscription can also go silent without
//! its connection closing (a stalled network, a half-open socket): announcements are then late,
//! not lost, and nothing tells the subscriber. So it sends a `PING` every second (`HEARTBEAT`) on
//! the subscription and trusts its L1 only for 2 seconds (`TRUST`) after sending the last ping
//! that came back (a ping unanswered after the L2 timeout ends the connection): its `PONG`
//! follows every announcement published before the ping, and those are applied before the pong
//! counts. The documented bound follows:
//!
//! **A read on a tiered cache never returns a value older than the last write acknowledged more
//! than 2 seconds before the read started**, however the subscription fails (with
//! [`TieredConfig::l1_max_ttl`] as a backstop for writers that do not announce, such as a plain
//! Redis cache on the same prefix). While its L1 is not trusted, a cache reads L2, and so stays
//! correct, only slower.
//!
//! # Why L1 cannot keep a stale copy
//!
//! A value reaches L1 in two ways, and both race with changes made meanwhile: a read that missed
//! L1 copies ("promotes") what L2 answered, and a write copies what it wrote ("write-through").
//! By the time the copy lands, another writer (here or in another process) may have changed L2
//! and its invalidation may already have been handled, so nothing would ever evict the copy.
//!
//! Every key therefore has a *generation*, bumped before the key is evicted from this L1 (by a
//! local write, delete or counter change, or by another process's message), plus one generation
//! for the whole L1, bumped before a prefix flush or a clear. A reader or writer takes a
//! [`Ticket`] (both generations) before it talks to L2, puts its copy into L1 afterwards, and then
//! checks the ticket: if either generation moved, something newer may have happened while it was
//! away, and it evicts its own copy. Because eviction bumps first and copies check last, either the
//! copier sees the bump, or the eviction runs after the copy landed and removes it; a copy older
//! than L2 never survives the invalidation that announced the change. A writer copies its value
//! through only when its own bump is the only one since its ticket; otherwise another change of
//! the key overlapped its write, it cannot tell which one L2 kept, and it evicts the key instead.
//!
//! A write that fails may still have been applied (a timeout can strike after Redis did the
//! work), so a failed change evicts its keys here and still announces them, as far as Redis
//! answers.
//!
//! Generations live in a fixed table of striped slots (a key's slot is chosen by its hash), so
//! memory stays bounded; two keys sharing a slot only cost each other an occasional copy that is
//! dropped, never a stale one.

use std::future::Future;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ::redis::Value;
use futures_util::{FutureExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use super::Expiry;
use super::memory::MemoryStore;
use super::redis::RedisStore;
use super::store::{Claim, FlightLimits, Store};
use crate::{Error, Result};

/// How the tiered driver uses its two levels (the armature guide's `TieredCacheConfig`).
///
/// ```
/// use std::time::Duration;
/// use core_db::infra::cache::TieredConfig;
///
/// let config = TieredConfig { l1_ttl_fraction: 0.1, ..TieredConfig::default() };
/// assert!(config.enable_l1 && config.enable_l2 && config.write_through && config.promote_to_l1);
/// assert_eq!(config.l1_max_ttl, Duration::from_secs(60));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TieredConfig {
    /// Use the in-process L1 (default `true`).
    pub enable_l1: bool,
    /// Use the shared Redis L2 (default `true`). Without it the cache is L1 only, per process.
    pub enable_l2: bool,
    /// On a write, store the value in L1 too (default `true`); otherwise the write only evicts
    /// the key from L1.
    pub write_through: bool,
    /// Copy an L2 hit into L1 (default `true`).
    pub promote_to_l1: bool,
    /// L1 keeps a value for this fraction of its remaining L2 TTL (default `0.25`), and never
    /// longer than [`l1_max_ttl`](Self::l1_max_ttl). Must be in `(0, 1]`.
    pub l1_ttl_fraction: f64,
    /// The longest L1 keeps a copy (default 60 s, [`TieredConfig::DEFAULT_L1_MAX_TTL`]),
    /// whatever its L2 TTL, values without one included: past it the next read asks L2 again.
    /// It bounds how long a copy can outlive a change L1 was not told about (a change made by a
    /// plain Redis cache on the same prefix, which does not announce). Must not be zero. Only
    /// used with both levels on: without L2, L1 is the cache and keeps values for their TTL.
    pub l1_max_ttl: Duration,
}

impl TieredConfig {
    /// The default [`l1_max_ttl`](Self::l1_max_ttl): 60 seconds.
    pub const DEFAULT_L1_MAX_TTL: Duration = Duration::from_secs(60);
}

impl Default for TieredConfig {
    fn default() -> Self {
        Self {
            enable_l1: true,
            enable_l2: true,
            write_through: true,
            promote_to_l1: true,
            l1_ttl_fraction: 0.25,
            l1_max_ttl: Self::DEFAULT_L1_MAX_TTL,
        }
    }
}

/// Counters of a tiered cache, from [`Cache::stats`](super::Cache::stats). Reads count once per
/// key (`many` counts each key).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TieredStats {
    /// Reads answered by L1.
    pub l1_hits: u64,
    /// Reads that missed L1 and were answered by L2.
    pub l2_hits: u64,
    /// Reads that found nothing.
    pub misses: u64,
    /// L2 hits copied into L1.
    pub promotions: u64,
}

#[derive(Default)]
struct Counters {
    l1_hits: AtomicU64,
    l2_hits: AtomicU64,
    misses: AtomicU64,
    promotions: AtomicU64,
}

/// How many generation slots a tiered cache keeps (8 bytes each).
const GENERATION_SLOTS: usize = 4096;

/// How often the subscriber pings on its subscription, to learn that it still hears.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(1);

/// How long after sending a ping that came back L1 is trusted: the documented staleness bound.
pub(crate) const TRUST: Duration = Duration::from_secs(2);

/// What the subscriber, the readers and the writers share: the generations that keep copies
/// older than L2 out of L1 (see the [module docs](self)), and whether L1 may be used.
struct Coherence {
    /// Bumped before L1 is flushed by prefix or cleared: every copy in flight is dropped.
    all: AtomicU64,
    /// Per-key generations, striped by the key's hash; a key's slot is bumped before the key is
    /// evicted from L1.
    slots: Box<[AtomicU64]>,
    /// When `trusted_until` counts from.
    epoch: Instant,
    /// Until when (milliseconds after `epoch`) L1 cannot have missed an invalidation: the
    /// subscription is live and has answered a ping recently. 0 while it is not subscribed.
    trusted_until: AtomicU64,
}

/// The generations a key had before a read or write went to L2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ticket {
    all: u64,
    key: u64,
}

impl Coherence {
    fn new() -> Self {
        Self {
            all: AtomicU64::new(0),
            slots: (0..GENERATION_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            epoch: Instant::now(),
            trusted_until: AtomicU64::new(0),
        }
    }

    fn millis_at(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether L1 can be trusted now (see [`Coherence::trusted_until`]).
    fn trusted(&self) -> bool {
        self.millis_at(Instant::now()) < self.trusted_until.load(Ordering::Acquire)
    }

    /// Trusts L1 until [`TRUST`] after `heard_at` (a moment up to which every announcement has
    /// been applied), unless it is trusted for longer already.
    fn trust_from(&self, heard_at: Instant) {
        let until = self.millis_at(heard_at + TRUST).max(1);
        self.trusted_until.fetch_max(until, Ordering::AcqRel);
    }

    /// Stops trusting L1 (the subscription is gone).
    fn distrust(&self) {
        self.trusted_until.store(0, Ordering::Release);
    }

    fn slot(&self, key: &str) -> &AtomicU64 {
        // A fixed (unkeyed) hasher: the slot only has to be the same for the same key.
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(key);
        &self.slots[(hash as usize) % self.slots.len()]
    }

    /// The generations of `key` now.
    fn ticket(&self, key: &str) -> Ticket {
        Ticket {
            all: self.all.load(Ordering::SeqCst),
            key: self.slot(key).load(Ordering::SeqCst),
        }
    }

    /// Call before evicting `key` from L1; returns the ticket the eviction leaves behind.
    fn bump(&self, key: &str) -> Ticket {
        let key = self.slot(key).fetch_add(1, Ordering::SeqCst) + 1;
        Ticket {
            all: self.all.load(Ordering::SeqCst),
            key,
        }
    }

    /// Call before flushing or clearing L1.
    fn bump_all(&self) {
        self.all.fetch_add(1, Ordering::SeqCst);
    }
}

/// One invalidation message on the channel. The Redis driver's scripts publish it (built by
/// [`invalidation_message`], or by `INVALIDATE_TAGS` itself with `cjson`).
#[derive(Debug, Serialize, Deserialize)]
struct Invalidation {
    /// The instance that published it; it ignores its own messages.
    o: String,
    /// Keys to evict.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    k: Vec<String>,
    /// A prefix to evict (`flush_prefix`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    p: Option<String>,
}

/// The message announcing that `keys` (or every key starting with `prefix`) changed, published
/// by the instance `origin`.
pub(crate) fn invalidation_message(origin: &str, keys: &[&str], prefix: Option<&str>) -> String {
    let message = Invalidation {
        o: origin.to_owned(),
        k: keys.iter().map(|k| (*k).to_owned()).collect(),
        p: prefix.map(str::to_owned),
    };
    // Strings only: serializing cannot fail.
    serde_json::to_string(&message).unwrap_or_default()
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The tiered driver. Clones share both levels.
#[derive(Clone)]
pub(crate) struct TieredStore {
    inner: Arc<Inner>,
}

struct Inner {
    l1: MemoryStore,
    l2: RedisStore,
    config: TieredConfig,
    counters: Counters,
    coherence: Arc<Coherence>,
    origin: String,
    channel: String,
    _subscriber: Option<AbortOnDrop>,
}

impl TieredStore {
    pub(crate) async fn new(
        l1: MemoryStore,
        l2: RedisStore,
        prefix: &str,
        config: TieredConfig,
    ) -> Result<Self> {
        let fraction = config.l1_ttl_fraction;
        if !(fraction > 0.0 && fraction <= 1.0) {
            return Err(Error::Config(format!(
                "TieredConfig::l1_ttl_fraction must be in (0, 1], got {fraction}"
            )));
        }
        if config.l1_max_ttl.is_zero() {
            return Err(Error::Config(
                "TieredConfig::l1_max_ttl must not be zero".to_owned(),
            ));
        }
        let origin = uuid::Uuid::new_v4().simple().to_string();
        let channel = format!("{prefix}:cache-invalidate");
        // Every change this cache makes in L2 is announced by the same script that makes it.
        let l2 = l2.announcing(&channel, &origin);
        let coherence = Arc::new(Coherence::new());
        let subscriber = if config.enable_l1 && config.enable_l2 {
            let client = l2.client_named("rustforge-cache-sub")?;
            let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
            let task = tokio::spawn(subscribe(
                client,
                channel.clone(),
                origin.clone(),
                l1.clone(),
                Arc::clone(&coherence),
                l2.timeout(),
                ready_tx,
            ));
            if tokio::time::timeout(l2.timeout(), ready_rx).await.is_err() {
                tracing::warn!(
                    channel,
                    "cache invalidation channel not subscribed yet; L1 is bypassed until it is"
                );
            }
            Some(AbortOnDrop(task))
        } else {
            None
        };
        Ok(Self {
            inner: Arc::new(Inner {
                l1,
                l2,
                config,
                counters: Counters::default(),
                coherence,
                origin,
                channel,
                _subscriber: subscriber,
            }),
        })
    }

    pub(crate) fn stats(&self) -> TieredStats {
        let c = &self.inner.counters;
        TieredStats {
            l1_hits: c.l1_hits.load(Ordering::Relaxed),
            l2_hits: c.l2_hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            promotions: c.promotions.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn l2(&self) -> &RedisStore {
        &self.inner.l2
    }

    fn l2_on(&self) -> bool {
        self.inner.config.enable_l2
    }

    /// Whether L1 may be read and filled now.
    fn l1_on(&self) -> bool {
        let config = &self.inner.config;
        config.enable_l1 && (!config.enable_l2 || self.inner.coherence.trusted())
    }

    /// How long L1 keeps a value whose L2 expiry is `l2`; `None` means "do not keep it".
    fn l1_ttl(&self, l2: Option<Duration>) -> Option<Option<Duration>> {
        if !self.l2_on() {
            return Some(l2);
        }
        let config = &self.inner.config;
        let d = match l2 {
            None => config.l1_max_ttl,
            Some(d) => d.mul_f64(config.l1_ttl_fraction).min(config.l1_max_ttl),
        };
        (!d.is_zero()).then_some(Some(d))
    }

    fn coherence(&self) -> &Coherence {
        &self.inner.coherence
    }

    /// Copies an L2 hit into L1, unless `key` changed since `ticket` was taken (before the L2
    /// read): then the copy may be older than L2, and it is dropped.
    async fn promote(&self, key: &str, value: &str, expiry: Expiry, ticket: Ticket) {
        let l2_ttl = match expiry {
            Expiry::Missing => return,
            Expiry::Persistent => None,
            Expiry::Expires(d) => Some(d),
        };
        let Some(ttl) = self.l1_ttl(l2_ttl) else {
            return;
        };
        if self.coherence().ticket(key) != ticket {
            return;
        }
        if let Err(e) = self.inner.l1.put(key, value, ttl).await {
            tracing::warn!(key, error = %e, "cache L1 promotion failed");
            return;
        }
        if self.coherence().ticket(key) == ticket {
            self.inner
                .counters
                .promotions
                .fetch_add(1, Ordering::Relaxed);
        } else {
            self.inner.l1.invalidate(key).await;
        }
    }

    /// The tickets of `pairs`' keys before a write to L2, for [`Self::after_write`].
    fn tickets(&self, pairs: &[(&str, &str)]) -> Vec<Ticket> {
        if !self.inner.config.enable_l1 {
            return Vec::new();
        }
        pairs
            .iter()
            .map(|(key, _)| self.coherence().ticket(key))
            .collect()
    }

    /// After a write of `pairs` to L2 (with `before` taken ahead of it): each new value into L1
    /// (write-through), or the key out of it. A key that anything else changed since its ticket
    /// (here or, announced, in another process) may have a newer value in L2 than the one
    /// written here, so L1 only drops it.
    async fn after_write(&self, pairs: &[(&str, &str)], ttl: Option<Duration>, before: &[Ticket]) {
        if !self.inner.config.enable_l1 {
            return;
        }
        let l1_ttl = self
            .l1_ttl(ttl)
            .filter(|_| self.inner.config.write_through && self.l1_on());
        for ((key, value), before) in pairs.iter().zip(before) {
            let mine = self.coherence().bump(key);
            let undisturbed = mine.all == before.all && mine.key == before.key + 1;
            match l1_ttl {
                Some(l1_ttl) if undisturbed => {
                    if let Err(e) = self.inner.l1.put(key, value, l1_ttl).await {
                        tracing::warn!(key, error = %e, "cache L1 write-through failed");
                    }
                    if self.coherence().ticket(key) != mine {
                        self.inner.l1.invalidate(key).await;
                    }
                }
                _ => self.inner.l1.invalidate(key).await,
            }
        }
    }

    /// Evicts `keys` from this process's L1.
    async fn evict_local(&self, keys: &[&str]) {
        if self.inner.config.enable_l1 {
            for key in keys {
                self.coherence().bump(key);
                self.inner.l1.invalidate(key).await;
            }
        }
    }

    /// After an L2 change of `keys` failed. It may still have been applied (a timeout can strike
    /// after Redis did the work), so the keys leave this L1 and, as far as Redis still answers,
    /// every other one; then the error is returned.
    async fn change_failed<T>(&self, keys: &[&str], error: Error) -> Result<T> {
        self.evict_local(keys).await;
        if let Err(e) = self.publish(keys, None).await {
            tracing::warn!(error = %e, "cache invalidation not announced after a failed change");
        }
        Err(error)
    }

    /// After a failed change of every key starting with `prefix` (`""`: any key): as
    /// [`Self::change_failed`], for the prefix.
    async fn prefix_change_failed<T>(&self, prefix: &str, error: Error) -> Result<T> {
        if self.inner.config.enable_l1 {
            self.coherence().bump_all();
            if let Err(e) = self.inner.l1.flush_prefix(prefix).await {
                tracing::warn!(error = %e, "cache L1 flush failed");
            }
        }
        if let Err(e) = self.publish(&[], Some(prefix)).await {
            tracing::warn!(error = %e, "cache invalidation not announced after a failed change");
        }
        Err(error)
    }

    /// Tells every other process to evict `keys` (or a prefix) from its L1, after a change that
    /// failed (a change that succeeded was announced by its own script). Tries twice: the
    /// connection manager may have reconnected since the failure.
    async fn publish(&self, keys: &[&str], prefix: Option<&str>) -> Result<()> {
        let payload = invalidation_message(&self.inner.origin, keys, prefix);
        match self.inner.l2.publish(&self.inner.channel, &payload).await {
            Ok(()) => Ok(()),
            Err(_) => self.inner.l2.publish(&self.inner.channel, &payload).await,
        }
    }
}

impl Store for TieredStore {
    async fn get(&self, key: &str) -> Result<Option<String>> {
        let counters = &self.inner.counters;
        if self.l1_on()
            && let Some(value) = self.inner.l1.get(key).await?
        {
            counters.l1_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Some(value));
        }
        if !self.l2_on() {
            counters.misses.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        }
        let promote = self.inner.config.promote_to_l1 && self.l1_on();
        let ticket = promote.then(|| self.coherence().ticket(key));
        let found = if promote {
            self.inner.l2.get_with_expiry(key).await?
        } else {
            self.inner.l2.get(key).await?.map(|v| (v, Expiry::Missing))
        };
        match found {
            Some((value, expiry)) => {
                counters.l2_hits.fetch_add(1, Ordering::Relaxed);
                if let Some(ticket) = ticket {
                    self.promote(key, &value, expiry, ticket).await;
                }
                Ok(Some(value))
            }
            None => {
                counters.misses.fetch_add(1, Ordering::Relaxed);
                Ok(None)
            }
        }
    }

    async fn put(&self, key: &str, value: &str, ttl: Option<Duration>) -> Result<()> {
        if !self.l2_on() {
            return self.inner.l1.put(key, value, ttl).await;
        }
        let pairs = [(key, value)];
        let before = self.tickets(&pairs);
        if let Err(e) = self.inner.l2.put(key, value, ttl).await {
            return self.change_failed(&[key], e).await;
        }
        self.after_write(&pairs, ttl, &before).await;
        Ok(())
    }

    async fn add(&self, key: &str, value: &str, ttl: Option<Duration>) -> Result<bool> {
        if !self.l2_on() {
            return self.inner.l1.add(key, value, ttl).await;
        }
        let pairs = [(key, value)];
        let before = self.tickets(&pairs);
        let stored = match self.inner.l2.add(key, value, ttl).await {
            Ok(stored) => stored,
            Err(e) => return self.change_failed(&[key], e).await,
        };
        if stored {
            self.after_write(&pairs, ttl, &before).await;
        }
        Ok(stored)
    }

    async fn pull(&self, key: &str) -> Result<Option<String>> {
        if !self.l2_on() {
            return self.inner.l1.pull(key).await;
        }
        let value = match self.inner.l2.pull(key).await {
            Ok(value) => value,
            Err(e) => return self.change_failed(&[key], e).await,
        };
        self.evict_local(&[key]).await;
        Ok(value)
    }

    async fn del(&self, key: &str) -> Result<()> {
        if !self.l2_on() {
            return self.inner.l1.del(key).await;
        }
        if let Err(e) = self.inner.l2.del(key).await {
            return self.change_failed(&[key], e).await;
        }
        self.evict_local(&[key]).await;
        Ok(())
    }

    async fn has(&self, key: &str) -> Result<bool> {
        if self.l1_on() && self.inner.l1.has(key).await? {
            return Ok(true);
        }
        if !self.l2_on() {
            return Ok(false);
        }
        self.inner.l2.has(key).await
    }

    async fn expiry(&self, key: &str) -> Result<Expiry> {
        if self.l2_on() {
            self.inner.l2.expiry(key).await
        } else {
            self.inner.l1.expiry(key).await
        }
    }

    async fn increment(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64> {
        if !self.l2_on() {
            return self.inner.l1.increment(key, by, ttl).await;
        }
        let value = match self.inner.l2.increment(key, by, ttl).await {
            Ok(value) => value,
            // Not an integer, or an overflow: Redis refused, nothing changed.
            Err(e @ Error::InvalidValue { .. }) => return Err(e),
            Err(e) => return self.change_failed(&[key], e).await,
        };
        self.evict_local(&[key]).await;
        Ok(value)
    }

    async fn many(&self, keys: &[&str]) -> Result<Vec<Option<String>>> {
        let counters = &self.inner.counters;
        let mut out: Vec<Option<String>> = vec![None; keys.len()];
        let mut missing: Vec<usize> = Vec::new();
        if self.l1_on() {
            for (i, key) in keys.iter().enumerate() {
                match self.inner.l1.get(key).await? {
                    Some(value) => out[i] = Some(value),
                    None => missing.push(i),
                }
            }
        } else {
            missing.extend(0..keys.len());
        }
        counters
            .l1_hits
            .fetch_add((keys.len() - missing.len()) as u64, Ordering::Relaxed);
        if missing.is_empty() {
            return Ok(out);
        }
        if !self.l2_on() {
            counters
                .misses
                .fetch_add(missing.len() as u64, Ordering::Relaxed);
            return Ok(out);
        }
        let wanted: Vec<&str> = missing.iter().map(|&i| keys[i]).collect();
        let promote = self.inner.config.promote_to_l1 && self.l1_on();
        let tickets: Vec<Ticket> = if promote {
            wanted
                .iter()
                .map(|key| self.coherence().ticket(key))
                .collect()
        } else {
            Vec::new()
        };
        let found: Vec<Option<(String, Expiry)>> = if promote {
            self.inner.l2.many_with_expiry(&wanted).await?
        } else {
            self.inner
                .l2
                .many(&wanted)
                .await?
                .into_iter()
                .map(|v| v.map(|v| (v, Expiry::Missing)))
                .collect()
        };
        for (n, (&i, hit)) in missing.iter().zip(found).enumerate() {
            match hit {
                Some((value, expiry)) => {
                    counters.l2_hits.fetch_add(1, Ordering::Relaxed);
                    if promote {
                        self.promote(keys[i], &value, expiry, tickets[n]).await;
                    }
                    out[i] = Some(value);
                }
                None => {
                    counters.misses.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Ok(out)
    }

    async fn put_many(&self, pairs: &[(&str, &str)], ttl: Option<Duration>) -> Result<()> {
        if !self.l2_on() {
            return self.inner.l1.put_many(pairs, ttl).await;
        }
        let before = self.tickets(pairs);
        if let Err(e) = self.inner.l2.put_many(pairs, ttl).await {
            let keys: Vec<&str> = pairs.iter().map(|(k, _)| *k).collect();
            return self.change_failed(&keys, e).await;
        }
        self.after_write(pairs, ttl, &before).await;
        Ok(())
    }

    async fn flush_prefix(&self, prefix: &str) -> Result<()> {
        if !self.l2_on() {
            return self.inner.l1.flush_prefix(prefix).await;
        }
        if let Err(e) = self.inner.l2.flush_prefix(prefix).await {
            return self.prefix_change_failed(prefix, e).await;
        }
        if self.inner.config.enable_l1 {
            self.coherence().bump_all();
            self.inner.l1.flush_prefix(prefix).await?;
        }
        Ok(())
    }

    async fn set_with_tags(
        &self,
        key: &str,
        value: &str,
        tags: &[&str],
        ttl: Option<Duration>,
    ) -> Result<()> {
        if !self.l2_on() {
            return self.inner.l1.set_with_tags(key, value, tags, ttl).await;
        }
        let pairs = [(key, value)];
        let before = self.tickets(&pairs);
        if let Err(e) = self.inner.l2.set_with_tags(key, value, tags, ttl).await {
            return self.change_failed(&[key], e).await;
        }
        self.after_write(&pairs, ttl, &before).await;
        Ok(())
    }

    async fn invalidate_tags(&self, tags: &[&str]) -> Result<Vec<String>> {
        if !self.l2_on() {
            return self.inner.l1.invalidate_tags(tags).await;
        }
        let removed = match self.inner.l2.invalidate_tags(tags).await {
            Ok(removed) => removed,
            // Which keys it removed is unknown: every L1 drops everything.
            Err(e) => return self.prefix_change_failed("", e).await,
        };
        if !removed.is_empty() {
            let keys: Vec<&str> = removed.iter().map(String::as_str).collect();
            self.evict_local(&keys).await;
        }
        Ok(removed)
    }

    async fn keys_by_tag(&self, tag: &str) -> Result<Vec<String>> {
        if self.l2_on() {
            self.inner.l2.keys_by_tag(tag).await
        } else {
            self.inner.l1.keys_by_tag(tag).await
        }
    }

    async fn tags_for_key(&self, key: &str) -> Result<Vec<String>> {
        if self.l2_on() {
            self.inner.l2.tags_for_key(key).await
        } else {
            self.inner.l1.tags_for_key(key).await
        }
    }

    async fn list_tags(&self) -> Result<Vec<String>> {
        if self.l2_on() {
            self.inner.l2.list_tags().await
        } else {
            self.inner.l1.list_tags().await
        }
    }

    async fn lock_acquire(&self, name: &str, token: &str, ttl: Duration) -> Result<bool> {
        if self.l2_on() {
            self.inner.l2.lock_acquire(name, token, ttl).await
        } else {
            self.inner.l1.lock_acquire(name, token, ttl).await
        }
    }

    async fn lock_release(&self, name: &str, token: &str) -> Result<bool> {
        if self.l2_on() {
            self.inner.l2.lock_release(name, token).await
        } else {
            self.inner.l1.lock_release(name, token).await
        }
    }

    async fn claim(
        &self,
        key: &str,
        lock: &str,
        token: &str,
        lock_ttl: Duration,
        ignore: Option<&str>,
    ) -> Result<Claim> {
        if self.l2_on() {
            self.inner
                .l2
                .claim(key, lock, token, lock_ttl, ignore)
                .await
        } else {
            self.inner
                .l1
                .claim(key, lock, token, lock_ttl, ignore)
                .await
        }
    }

    fn flight_limits(&self) -> FlightLimits {
        if self.l2_on() {
            self.inner.l2.flight_limits()
        } else {
            self.inner.l1.flight_limits()
        }
    }
}

/// The subscriber task: (re)connects, subscribes, evicts what other processes invalidate, and
/// keeps L1 bypassed and cleared whenever it may have missed a message.
async fn subscribe(
    client: ::redis::Client,
    channel: String,
    origin: String,
    l1: MemoryStore,
    coherence: Arc<Coherence>,
    timeout: Duration,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    let mut backoff = Duration::from_millis(50);
    loop {
        let connect = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, ::redis::RedisError>(pubsub)
        };
        match tokio::time::timeout(timeout, connect).await {
            Ok(Ok(pubsub)) => {
                backoff = Duration::from_millis(50);
                // Subscribed: from now on every announcement reaches us. Anything published
                // while we were away is lost: start from an empty L1.
                let heard_at = Instant::now();
                coherence.bump_all();
                l1.clear();
                coherence.trust_from(heard_at);
                if let Some(ready) = ready.take() {
                    let _ = ready.send(());
                }
                tracing::debug!(channel, "cache invalidation channel subscribed");
                listen(pubsub, &origin, &l1, &coherence, timeout).await;
                coherence.distrust();
                coherence.bump_all();
                l1.clear();
                tracing::warn!(
                    channel,
                    "cache invalidation channel lost; L1 bypassed until it is back"
                );
            }
            Ok(Err(e)) => {
                tracing::warn!(channel, error = %e, "cache invalidation channel: subscribe failed");
            }
            Err(_) => {
                tracing::warn!(channel, "cache invalidation channel: subscribe timed out");
            }
        }
        let jitter = Duration::from_millis(rand::random_range(0..=backoff.as_millis() as u64 / 2));
        tokio::time::sleep(backoff + jitter).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Applies one message of the channel to L1.
async fn apply(message: &::redis::Msg, origin: &str, l1: &MemoryStore, coherence: &Coherence) {
    let payload: Vec<u8> = match message.get_payload() {
        Ok(payload) => payload,
        Err(e) => {
            tracing::warn!(error = %e, "cache invalidation: unreadable message");
            return;
        }
    };
    let invalidation: Invalidation = match serde_json::from_slice(&payload) {
        Ok(invalidation) => invalidation,
        Err(e) => {
            tracing::warn!(error = %e, "cache invalidation: undecodable message");
            return;
        }
    };
    if invalidation.o == origin {
        return;
    }
    for key in &invalidation.k {
        coherence.bump(key);
        l1.invalidate(key).await;
    }
    if let Some(prefix) = &invalidation.p {
        coherence.bump_all();
        if let Err(e) = l1.flush_prefix(prefix).await {
            tracing::warn!(error = %e, "cache invalidation: L1 flush failed");
        }
    }
}

type Pong = Pin<Box<dyn Future<Output = ::redis::RedisResult<Value>> + Send>>;

/// Handles messages until the connection ends or a ping goes unanswered for `timeout`. Every
/// [`HEARTBEAT`] it pings; when the pong comes back, every message published before the ping
/// has been applied, and L1 is trusted for [`TRUST`] from when the ping was sent.
async fn listen(
    pubsub: ::redis::aio::PubSub,
    origin: &str,
    l1: &MemoryStore,
    coherence: &Coherence,
    timeout: Duration,
) {
    let (sink, mut stream) = pubsub.split();
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    heartbeat.tick().await;
    let mut pending: Option<(Instant, Pong)> = None;
    loop {
        tokio::select! {
            message = stream.next() => {
                let Some(message) = message else { return };
                apply(&message, origin, l1, coherence).await;
            }
            pong = async { pending.as_mut().map(|(_, pong)| pong).unwrap().await },
                if pending.is_some() =>
            {
                let Some((sent, _)) = pending.take() else { return };
                if pong.is_err() {
                    return;
                }
                // The messages published before the ping are queued ahead of its pong.
                loop {
                    match stream.next().now_or_never() {
                        Some(Some(message)) => apply(&message, origin, l1, coherence).await,
                        Some(None) => return,
                        None => break,
                    }
                }
                coherence.trust_from(sent);
            }
            _ = heartbeat.tick() => {
                match &pending {
                    Some((sent, _)) if sent.elapsed() >= timeout => return,
                    Some(_) => {}
                    None => {
                        let mut sink = sink.clone();
                        let pong: Pong = Box::pin(async move { sink.ping::<Value>().await });
                        pending = Some((Instant::now(), pong));
                    }
                }
            }
        }
    }
}
