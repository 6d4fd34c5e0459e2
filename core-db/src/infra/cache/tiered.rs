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

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::Expiry;
use super::memory::MemoryStore;
use super::redis::RedisStore;
use super::store::Store;
use crate::{Error, Result};

mod coherence;
mod store;
mod subscriber;

use self::coherence::{Coherence, Ticket};
use self::subscriber::Invalidations;
pub(crate) use self::subscriber::invalidation_message;
use crate::infra::redis_pubsub::Listener;

/// How the tiered driver uses its two levels (the armature guide's `TieredCacheConfig`).
///
/// ```
/// use std::time::Duration;
/// use core_db::cache::TieredConfig;
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
    _subscriber: Option<Listener>,
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
            let invalidations = Invalidations {
                origin: origin.clone(),
                l1: l1.clone(),
                coherence: Arc::clone(&coherence),
            };
            let listener = Listener::start(client, "cache", l2.timeout(), invalidations);
            listener.watch(&channel);
            if listener.ready(&channel, "cache subscribe").await.is_err() {
                tracing::warn!(
                    channel,
                    "cache invalidation channel not subscribed yet; L1 is bypassed until it is"
                );
            }
            Some(listener)
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
