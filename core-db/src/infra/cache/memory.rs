//! The memory driver: a bounded [moka](https://docs.rs/moka) cache in this process.
//!
//! Values carry their own expiry instant, so TTLs are exact to the millisecond (moka evicts
//! them, and reads double-check the instant). Tags and locks live in small indexes next to the
//! values, pruned as their entries expire. Every change that touches both a value and its tags
//! (tagged writes, deletes, pulls, flushes, tag invalidations) runs under moka's per-key lock
//! (`and_compute_with`), so concurrent changes of one key never leave its value and its tags
//! from different writes.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use moka::future::Cache as Moka;
use moka::ops::compute::Op;

use super::Expiry;
use super::store::{Claim, FlightLimits, Store};
use crate::{Error, Result};

/// Options of the memory driver, for [`Cache::memory_with`](super::Cache::memory_with).
///
/// ```
/// use core_db::cache::{Cache, MemoryCacheOptions};
///
/// let cache = Cache::memory_with("app", MemoryCacheOptions::new().max_entries(1_000));
/// # let _ = cache;
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct MemoryCacheOptions {
    max_entries: u64,
}

impl MemoryCacheOptions {
    /// The default number of entries a memory cache holds before it evicts.
    pub const DEFAULT_MAX_ENTRIES: u64 = 100_000;

    /// The defaults: at most [`Self::DEFAULT_MAX_ENTRIES`] entries.
    pub fn new() -> Self {
        Self {
            max_entries: Self::DEFAULT_MAX_ENTRIES,
        }
    }

    /// How many entries the cache holds at most; beyond it the least useful ones are evicted
    /// (moka's TinyLFU policy).
    pub fn max_entries(mut self, max_entries: u64) -> Self {
        self.max_entries = max_entries;
        self
    }
}

impl Default for MemoryCacheOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// One stored value and the instant it expires at.
///
/// The value is a `String` rather than an `Arc<str>`: moka hands out clones, and a cloned
/// `String` can be returned as is, where an `Arc<str>` would still need copying.
#[derive(Clone)]
struct Entry {
    value: String,
    expires_at: Option<Instant>,
}

impl Entry {
    fn new(value: &str, ttl: Option<Duration>, now: Instant) -> Self {
        Self {
            value: value.to_owned(),
            expires_at: ttl.map(|d| now + d),
        }
    }

    fn is_live(&self) -> bool {
        match self.expires_at {
            None => true,
            Some(at) => at > Instant::now(),
        }
    }

    fn is_live_at(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }
}

/// Tells moka when each entry expires.
struct EntryExpiry;

impl moka::Expiry<String, Entry> for EntryExpiry {
    fn expire_after_create(
        &self,
        _: &String,
        value: &Entry,
        created_at: Instant,
    ) -> Option<Duration> {
        value
            .expires_at
            .map(|at| at.saturating_duration_since(created_at))
    }

    fn expire_after_update(
        &self,
        _: &String,
        value: &Entry,
        updated_at: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        value
            .expires_at
            .map(|at| at.saturating_duration_since(updated_at))
    }
}

/// The memory driver. Clones share the same entries.
#[derive(Clone)]
pub(crate) struct MemoryStore {
    entries: Moka<String, Entry>,
    shared: Arc<Shared>,
}

struct Shared {
    tags: Mutex<TagIndex>,
    locks: Mutex<LockTable>,
}

fn guard<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MemoryStore {
    pub(crate) fn new(options: &MemoryCacheOptions) -> Self {
        let entries = Moka::builder()
            .max_capacity(options.max_entries)
            .expire_after(EntryExpiry)
            .build();
        Self {
            entries,
            shared: Arc::new(Shared {
                tags: Mutex::new(TagIndex::default()),
                locks: Mutex::new(LockTable::default()),
            }),
        }
    }

    #[inline]
    async fn live(&self, key: &str) -> Option<Entry> {
        self.entries.get(key).await.filter(Entry::is_live)
    }

    /// Drops `key` from this process only (the tiered driver's L1 invalidation).
    pub(crate) async fn invalidate(&self, key: &str) {
        self.entries.invalidate(key).await;
    }

    /// Drops every entry (the tiered driver's L1 after it may have missed invalidations).
    pub(crate) fn clear(&self) {
        self.entries.invalidate_all();
    }

    /// Removes `key` and its tags under the key's lock, if `still` (called under that lock
    /// with the tag index) agrees; returns the removed live value.
    async fn remove_where(
        &self,
        key: &str,
        still: impl FnOnce(&TagIndex) -> bool,
    ) -> Option<String> {
        let mut removed = None;
        self.entries
            .entry(key.to_owned())
            .and_compute_with(|current| {
                let op = {
                    let mut tags = guard(&self.shared.tags);
                    if still(&tags) {
                        if !tags.is_empty() {
                            tags.untag(key);
                        }
                        removed = current
                            .map(|e| e.into_value())
                            .filter(Entry::is_live)
                            .map(|e| e.value);
                        Op::Remove
                    } else {
                        Op::Nop
                    }
                };
                std::future::ready(op)
            })
            .await;
        removed
    }
}

/// An error for `increment` on a value that is not a 64-bit integer.
pub(super) fn not_an_integer(key: &str) -> Error {
    Error::InvalidValue {
        key: key.to_owned(),
        reason: "the value is not an integer or is out of range".to_owned(),
    }
}

/// An error for `increment` past `i64::MAX` or `i64::MIN`.
pub(super) fn overflow(key: &str) -> Error {
    Error::InvalidValue {
        key: key.to_owned(),
        reason: "increment or decrement would overflow".to_owned(),
    }
}

/// Parses an integer exactly as Redis's `INCRBY` does: an optional `-`, no `+`, no spaces, no
/// leading zeros, within `i64`.
pub(super) fn parse_redis_int(s: &str) -> Option<i64> {
    let bytes = s.as_bytes();
    let (negative, digits) = match bytes.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, bytes),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if digits[0] == b'0' && (digits.len() > 1 || negative) {
        return None;
    }
    s.parse().ok()
}

impl Store for MemoryStore {
    #[inline]
    async fn get(&self, key: &str) -> Result<Option<String>> {
        let entry = self.entries.get(key).await;
        Ok(entry.filter(Entry::is_live).map(|e| e.value))
    }

    async fn put(&self, key: &str, value: &str, ttl: Option<Duration>) -> Result<()> {
        let entry = Entry::new(value, ttl, Instant::now());
        self.entries.insert(key.to_owned(), entry).await;
        Ok(())
    }

    async fn add(&self, key: &str, value: &str, ttl: Option<Duration>) -> Result<bool> {
        let now = Instant::now();
        let mut stored = false;
        self.entries
            .entry(key.to_owned())
            .and_compute_with(|current| {
                let op = match current {
                    Some(e) if e.value().is_live_at(now) => Op::Nop,
                    _ => {
                        stored = true;
                        Op::Put(Entry::new(value, ttl, now))
                    }
                };
                std::future::ready(op)
            })
            .await;
        Ok(stored)
    }

    async fn pull(&self, key: &str) -> Result<Option<String>> {
        Ok(self.remove_where(key, |_| true).await)
    }

    async fn del(&self, key: &str) -> Result<()> {
        self.remove_where(key, |_| true).await;
        Ok(())
    }

    async fn has(&self, key: &str) -> Result<bool> {
        Ok(self.live(key).await.is_some())
    }

    async fn expiry(&self, key: &str) -> Result<Expiry> {
        Ok(match self.live(key).await {
            None => Expiry::Missing,
            Some(Entry {
                expires_at: None, ..
            }) => Expiry::Persistent,
            Some(Entry {
                expires_at: Some(at),
                ..
            }) => Expiry::Expires(at.saturating_duration_since(Instant::now())),
        })
    }

    async fn increment(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64> {
        let now = Instant::now();
        let mut outcome: Result<i64> = Ok(by);
        self.entries
            .entry(key.to_owned())
            .and_compute_with(|current| {
                let current = current
                    .map(|e| e.into_value())
                    .filter(|e| e.is_live_at(now));
                let (start, expires_at) = match &current {
                    Some(e) => match parse_redis_int(&e.value) {
                        Some(n) => (n, e.expires_at),
                        None => {
                            outcome = Err(not_an_integer(key));
                            return std::future::ready(Op::Nop);
                        }
                    },
                    None => (0, None),
                };
                let Some(next) = start.checked_add(by) else {
                    outcome = Err(overflow(key));
                    return std::future::ready(Op::Nop);
                };
                outcome = Ok(next);
                let op = match ttl {
                    Some(d) if d.is_zero() => Op::Remove,
                    _ => Op::Put(Entry {
                        value: next.to_string(),
                        expires_at: expires_at.or_else(|| ttl.map(|d| now + d)),
                    }),
                };
                std::future::ready(op)
            })
            .await;
        outcome
    }

    async fn many(&self, keys: &[&str]) -> Result<Vec<Option<String>>> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(self.live(key).await.map(|e| e.value));
        }
        Ok(out)
    }

    async fn put_many(&self, pairs: &[(&str, &str)], ttl: Option<Duration>) -> Result<()> {
        let now = Instant::now();
        for (key, value) in pairs {
            let entry = Entry::new(value, ttl, now);
            self.entries.insert((*key).to_owned(), entry).await;
        }
        Ok(())
    }

    async fn flush_prefix(&self, prefix: &str) -> Result<()> {
        let mut keys: HashSet<String> = self
            .entries
            .iter()
            .filter(|(key, _)| key.starts_with(prefix))
            .map(|(key, _)| String::clone(&key))
            .collect();
        keys.extend(
            guard(&self.shared.tags)
                .by_key
                .keys()
                .filter(|k| k.starts_with(prefix))
                .cloned(),
        );
        for key in &keys {
            self.remove_where(key, |_| true).await;
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
        let now = Instant::now();
        let entry = Entry::new(value, ttl, now);
        let expires_at = entry.expires_at;
        let entries = &self.entries;
        self.entries
            .entry(key.to_owned())
            .and_compute_with(|_| {
                {
                    let mut index = guard(&self.shared.tags);
                    index.prune(now);
                    index.tag(key, tags, expires_at);
                    index.sweep_if_grown(|k| k == key || entries.contains_key(k));
                }
                std::future::ready(Op::Put(entry))
            })
            .await;
        Ok(())
    }

    async fn invalidate_tags(&self, tags: &[&str]) -> Result<Vec<String>> {
        let keys: Vec<String> = {
            let mut index = guard(&self.shared.tags);
            index.prune(Instant::now());
            let mut keys: Vec<String> = tags
                .iter()
                .filter_map(|t| index.by_tag.get(*t))
                .flatten()
                .cloned()
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            keys.sort();
            keys
        };
        let mut removed = Vec::with_capacity(keys.len());
        for key in keys {
            // Re-tagged meanwhile without these tags: it stays.
            let carries = |index: &TagIndex| index.carries(&key, tags);
            if self.remove_where(&key, carries).await.is_some() {
                removed.push(key);
            }
        }
        Ok(removed)
    }

    async fn keys_by_tag(&self, tag: &str) -> Result<Vec<String>> {
        let candidates: Vec<String> = {
            let mut index = guard(&self.shared.tags);
            index.prune(Instant::now());
            index
                .by_tag
                .get(tag)
                .map(|keys| keys.iter().cloned().collect())
                .unwrap_or_default()
        };
        let mut keys = Vec::with_capacity(candidates.len());
        for key in candidates {
            if self.live(&key).await.is_some() {
                keys.push(key);
            }
        }
        keys.sort();
        Ok(keys)
    }

    async fn tags_for_key(&self, key: &str) -> Result<Vec<String>> {
        if self.live(key).await.is_none() {
            return Ok(Vec::new());
        }
        let mut index = guard(&self.shared.tags);
        index.prune(Instant::now());
        let mut tags = index
            .by_key
            .get(key)
            .map(|t| t.tags.clone())
            .unwrap_or_default();
        tags.sort();
        Ok(tags)
    }

    async fn list_tags(&self) -> Result<Vec<String>> {
        let candidates: Vec<(String, Vec<String>)> = {
            let mut index = guard(&self.shared.tags);
            index.prune(Instant::now());
            index
                .by_tag
                .iter()
                .map(|(tag, keys)| (tag.clone(), keys.iter().cloned().collect()))
                .collect()
        };
        let mut tags = Vec::new();
        for (tag, keys) in candidates {
            for key in keys {
                if self.live(&key).await.is_some() {
                    tags.push(tag);
                    break;
                }
            }
        }
        tags.sort();
        Ok(tags)
    }

    async fn lock_acquire(&self, name: &str, token: &str, ttl: Duration) -> Result<bool> {
        Ok(guard(&self.shared.locks).acquire(name, token, ttl))
    }

    async fn lock_release(&self, name: &str, token: &str) -> Result<bool> {
        Ok(guard(&self.shared.locks).release(name, token))
    }

    async fn claim(
        &self,
        key: &str,
        lock: &str,
        token: &str,
        lock_ttl: Duration,
        ignore: Option<&str>,
    ) -> Result<Claim> {
        if let Some(entry) = self.live(key).await
            && ignore != Some(entry.value.as_str())
        {
            return Ok(Claim::Value(entry.value));
        }
        Ok(
            if guard(&self.shared.locks).acquire(lock, token, lock_ttl) {
                Claim::Acquired
            } else {
                Claim::Busy
            },
        )
    }

    fn flight_limits(&self) -> FlightLimits {
        FlightLimits::default()
    }
}

/// Which tags each key carries, and which keys each tag has, for this process.
///
/// A tagging lasts as long as the write that made it (its own expiry), like the Redis driver's.
/// Expired taggings are pruned from the front of `expiries`; taggings of keys that moka evicted
/// for space are swept whenever the index has doubled since the last sweep.
#[derive(Default)]
struct TagIndex {
    by_key: HashMap<String, Tagging>,
    by_tag: HashMap<String, HashSet<String>>,
    expiries: BTreeSet<(Instant, String)>,
    swept_at_len: usize,
}

struct Tagging {
    tags: Vec<String>,
    expires_at: Option<Instant>,
}

impl TagIndex {
    fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Whether `key` carries any of `tags`.
    fn carries(&self, key: &str, tags: &[&str]) -> bool {
        self.by_key
            .get(key)
            .is_some_and(|t| t.tags.iter().any(|tag| tags.contains(&tag.as_str())))
    }

    fn untag(&mut self, key: &str) {
        let Some(tagging) = self.by_key.remove(key) else {
            return;
        };
        for tag in &tagging.tags {
            if let Some(keys) = self.by_tag.get_mut(tag) {
                keys.remove(key);
                if keys.is_empty() {
                    self.by_tag.remove(tag);
                }
            }
        }
        if let Some(at) = tagging.expires_at {
            self.expiries.remove(&(at, key.to_owned()));
        }
    }

    fn tag(&mut self, key: &str, tags: &[&str], expires_at: Option<Instant>) {
        self.untag(key);
        if tags.is_empty() {
            return;
        }
        let mut unique: Vec<String> = tags.iter().map(|t| (*t).to_owned()).collect();
        unique.sort();
        unique.dedup();
        for tag in &unique {
            self.by_tag
                .entry(tag.clone())
                .or_default()
                .insert(key.to_owned());
        }
        if let Some(at) = expires_at {
            self.expiries.insert((at, key.to_owned()));
        }
        self.by_key.insert(
            key.to_owned(),
            Tagging {
                tags: unique,
                expires_at,
            },
        );
    }

    fn prune(&mut self, now: Instant) {
        while let Some((at, _)) = self.expiries.first() {
            if *at > now {
                break;
            }
            if let Some((_, key)) = self.expiries.pop_first() {
                self.untag(&key);
            }
        }
    }

    fn sweep_if_grown(&mut self, exists: impl Fn(&str) -> bool) {
        if self.by_key.len() < 1024 || self.by_key.len() < self.swept_at_len * 2 {
            return;
        }
        let gone: Vec<String> = self.by_key.keys().filter(|k| !exists(k)).cloned().collect();
        for key in gone {
            self.untag(&key);
        }
        self.swept_at_len = self.by_key.len();
    }
}

/// The memory driver's locks: name → (owner token, expiry).
#[derive(Default)]
struct LockTable {
    held: HashMap<String, (String, Instant)>,
    swept_at_len: usize,
}

impl LockTable {
    fn acquire(&mut self, name: &str, token: &str, ttl: Duration) -> bool {
        let now = Instant::now();
        if self.held.len() >= 1024 && self.held.len() >= self.swept_at_len * 2 {
            self.held.retain(|_, (_, at)| *at > now);
            self.swept_at_len = self.held.len();
        }
        match self.held.get(name) {
            Some((_, at)) if *at > now => false,
            _ => {
                self.held
                    .insert(name.to_owned(), (token.to_owned(), now + ttl));
                true
            }
        }
    }

    fn release(&mut self, name: &str, token: &str) -> bool {
        let now = Instant::now();
        match self.held.get(name) {
            Some((owner, at)) if owner == token && *at > now => {
                self.held.remove(name);
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_redis_int;

    #[test]
    fn integers_parse_like_redis() {
        assert_eq!(parse_redis_int("0"), Some(0));
        assert_eq!(parse_redis_int("-12"), Some(-12));
        assert_eq!(parse_redis_int("9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_redis_int("-9223372036854775808"), Some(i64::MIN));
        for bad in [
            "",
            "-",
            "+1",
            " 1",
            "1 ",
            "01",
            "-0",
            "1.0",
            "abc",
            "9223372036854775808",
        ] {
            assert_eq!(parse_redis_int(bad), None, "{bad:?}");
        }
    }
}
