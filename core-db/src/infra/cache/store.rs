//! The shape every driver has: one internal trait, implemented by `memory`, `redis` and `tiered`.
//!
//! [`Cache`](super::Cache) validates arguments and normalises TTLs (rounded up to whole
//! milliseconds, capped, a zero TTL turned into a delete) before it calls a store, so each store
//! only implements storage. Keys given to a store are the caller's keys, without any prefix; each
//! store lays them out itself.

use std::future::Future;
use std::time::Duration;

use super::Expiry;
use crate::Result;

/// The answer of [`Store::claim`], the atomic step of single-flight `remember`.
#[derive(Debug)]
pub(crate) enum Claim {
    /// The key holds a value (different from the one the caller asked to ignore).
    Value(String),
    /// The key holds no usable value and the caller now owns the compute lock.
    Acquired(Fence),
    /// The key holds no usable value and someone else owns the compute lock.
    Busy(Fence),
}

/// What a computing caller saw when it started: the generations of its key and tags, and the
/// value the key held. [`Store::fill`] stores the computed value only while both are unchanged,
/// so a value computed from data older than an invalidation is never cached after it.
///
/// A driver registers the generations it hands out (for at least [`GENERATION_TTL`]): deleting
/// or pulling the key bumps the key's generation, invalidating a tag bumps the tag's. A
/// generation that expired reads as changed, so a fill that long after its claim may be refused
/// (a later claim of the same key or tag keeps the generation alive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fence {
    /// The key's generation, then each tag's, in the order of the tags given.
    pub(crate) generations: Vec<u64>,
    /// The value the key held (`None`: none), which a fill may replace.
    pub(crate) seen: Option<String>,
}

/// How long a generation handed out by a claim stays registered: a computation that takes
/// longer is returned to its caller but not cached.
pub(crate) const GENERATION_TTL: Duration = Duration::from_secs(10 * 60);

/// How [`Store::fill`] writes a computed value.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Fill<'a> {
    /// As [`Store::put`]: the key's tags are left as they are.
    Put,
    /// As [`Store::set_with_tags`], with these tags.
    Tagged(&'a [&'a str]),
    /// The value, then its fresh-until stamp at `stamp_key`, with the same TTL.
    Flexible {
        /// Where the stamp goes.
        stamp_key: &'a str,
        /// The stamp.
        stamp: &'a str,
    },
}

/// How long single-flight waits: the compute lock's TTL and the longest a waiter polls.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FlightLimits {
    pub(crate) lock_ttl: Duration,
    pub(crate) wait: Duration,
}

impl Default for FlightLimits {
    fn default() -> Self {
        Self {
            lock_ttl: Duration::from_secs(10),
            wait: Duration::from_secs(10),
        }
    }
}

/// The storage operations of one driver.
///
/// `ttl` is `None` for "no expiry" and never zero. Every method behaves the same on every driver;
/// the behavioural test suite (`tests/cache_behaviour.rs`) holds them to it.
pub(crate) trait Store: Send + Sync {
    /// The value at `key`, if any.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<String>>> + Send;
    /// Stores `value` at `key`, replacing any value and expiry. Tags are left as they are.
    fn put(
        &self,
        key: &str,
        value: &str,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Stores `value` only if `key` holds nothing; true when it stored.
    fn add(
        &self,
        key: &str,
        value: &str,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<bool>> + Send;
    /// Removes `key` and its tags, returning its value; moves the key's generation on (see
    /// [`Fence`]).
    fn pull(&self, key: &str) -> impl Future<Output = Result<Option<String>>> + Send;
    /// Removes `key` and its tags; moves the key's generation on (see [`Fence`]).
    fn del(&self, key: &str) -> impl Future<Output = Result<()>> + Send;
    /// Whether `key` holds a value.
    fn has(&self, key: &str) -> impl Future<Output = Result<bool>> + Send;
    /// How long `key` has left.
    fn expiry(&self, key: &str) -> impl Future<Output = Result<Expiry>> + Send;
    /// Adds `by` to the integer at `key` (missing counts as 0). With `ttl`, a counter without an
    /// expiry gets one; `Some(Duration::ZERO)` removes the counter after computing the result.
    fn increment(
        &self,
        key: &str,
        by: i64,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<i64>> + Send;
    /// The values at `keys`, in order. Never called with an empty slice.
    fn many(&self, keys: &[&str]) -> impl Future<Output = Result<Vec<Option<String>>>> + Send;
    /// Stores every pair, in one round trip. Never called with an empty slice.
    fn put_many(
        &self,
        pairs: &[(&str, &str)],
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Deletes every key that starts with the literal `prefix`, with its tags.
    fn flush_prefix(&self, prefix: &str) -> impl Future<Output = Result<()>> + Send;
    /// Stores `value` at `key` and makes `tags` its tags (replacing any it had).
    fn set_with_tags(
        &self,
        key: &str,
        value: &str,
        tags: &[&str],
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Deletes every key carrying any of `tags`; returns the keys that held a value. Moves each
    /// tag's generation on first (see [`Fence`]), and returns only once every key carrying the
    /// tags is gone, including keys a concurrent change was removing.
    fn invalidate_tags(&self, tags: &[&str]) -> impl Future<Output = Result<Vec<String>>> + Send;
    /// The existing keys that carry `tag`, sorted.
    fn keys_by_tag(&self, tag: &str) -> impl Future<Output = Result<Vec<String>>> + Send;
    /// The tags of `key` (empty when the key does not exist), sorted.
    fn tags_for_key(&self, key: &str) -> impl Future<Output = Result<Vec<String>>> + Send;
    /// Every tag that at least one existing key carries, sorted.
    fn list_tags(&self) -> impl Future<Output = Result<Vec<String>>> + Send;
    /// Takes the lock `name` for `token` if nobody holds it.
    fn lock_acquire(
        &self,
        name: &str,
        token: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool>> + Send;
    /// Releases the lock `name` if `token` still holds it.
    fn lock_release(&self, name: &str, token: &str) -> impl Future<Output = Result<bool>> + Send;
    /// Atomically: the value at `key` unless it equals `ignore`; else the lock `lock` for
    /// `token`, with the [`Fence`] of `key` and `tags` (registering their generations).
    fn claim(
        &self,
        key: &str,
        lock: &str,
        token: &str,
        lock_ttl: Duration,
        ignore: Option<&str>,
        tags: &[&str],
    ) -> impl Future<Output = Result<Claim>> + Send;
    /// The [`Fence`] of `key` and `tags` now (registering their generations), for a
    /// recomputation that replaces the current value (`flexible`'s refresh).
    fn fence(&self, key: &str, tags: &[&str]) -> impl Future<Output = Result<Fence>> + Send;
    /// Stores `value` at `key` as `fill` says, atomically with the check that `fence` still
    /// holds: the key still holds the value the fence saw and no generation moved. True when it
    /// stored; false when an invalidation (or a write) came in between, and nothing changed.
    /// `fill`'s tags are the ones the fence was taken with.
    fn fill(
        &self,
        key: &str,
        value: &str,
        fill: Fill<'_>,
        ttl: Option<Duration>,
        fence: &Fence,
    ) -> impl Future<Output = Result<bool>> + Send;
    /// How long single-flight waits on this store.
    fn flight_limits(&self) -> FlightLimits;
}
