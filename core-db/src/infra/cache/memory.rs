//! The memory driver: a bounded [moka](https://docs.rs/moka) cache in this process.
//!
//! Values carry their own expiry instant, so TTLs are exact to the millisecond (moka evicts
//! them, and reads double-check the instant). Tags and locks live in small indexes next to the
//! values, pruned as their entries expire. Every change that touches both a value and its tags
//! (tagged writes, deletes, pulls, flushes, tag invalidations) runs under moka's per-key lock
//! (`and_compute_with`), so concurrent changes of one key never leave its value and its tags
//! from different writes.
//!
//! `remember`'s fills are fenced (see [`Fence`]): the generations of keys and tags live in the
//! tag index, under its lock, so a fill's check, a delete's bump and a tag invalidation's bump
//! are ordered. A plain `put` does not take the key's lock (moka's `insert`), so it marks a
//! striped write counter before and after its insert; a fill that overlapped one drops what it
//! stored unless the put's value replaced it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use moka::future::Cache as Moka;
use moka::ops::compute::Op;

use super::Expiry;
use super::store::{Claim, Fence, Fill, FlightLimits, GENERATION_TTL, Store};
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

/// How the memory driver hashes keys: foldhash, seeded per cache from the process's random
/// state, instead of moka's default SipHash-1-3. Every read and write hashes its key once, and
/// SipHash was a measurable share of a `get` (the per-entry expiry policy costs moka about 10%
/// per read; the faster hash buys that back). The random seed keeps an attacker who picks keys
/// from guessing collisions.
type KeyHasher = foldhash::quality::RandomState;

/// The memory driver. Clones share the same entries.
#[derive(Clone)]
pub(crate) struct MemoryStore {
    entries: Moka<String, Entry, KeyHasher>,
    shared: Arc<Shared>,
}

struct Shared {
    tags: Mutex<TagIndex>,
    locks: Mutex<LockTable>,
    /// Striped write counters: a `put` makes its key's slot odd while its insert runs.
    writes: Box<[AtomicU64]>,
}

/// How many write counters a memory cache keeps (8 bytes each).
const WRITE_SLOTS: usize = 1024;

impl Shared {
    /// The write counter of `key` (FNV-1a of the key; the slot only has to be stable).
    fn write_slot(&self, key: &str) -> &AtomicU64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in key.as_bytes() {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        &self.writes[(hash % WRITE_SLOTS as u64) as usize]
    }

    /// Marks a write of `key` as running until the mark is dropped (cancellation included).
    fn mark_write(&self, key: &str) -> WriteMark<'_> {
        let slot = self.write_slot(key);
        slot.fetch_add(1, Ordering::SeqCst);
        WriteMark(slot)
    }
}

/// A running unlocked write (see [`Shared::mark_write`]); dropping it ends the write.
struct WriteMark<'a>(&'a AtomicU64);

impl Drop for WriteMark<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn guard<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MemoryStore {
    pub(crate) fn new(options: &MemoryCacheOptions) -> Self {
        let entries = Moka::builder()
            .max_capacity(options.max_entries)
            .expire_after(EntryExpiry)
            .build_with_hasher(KeyHasher::default());
        Self {
            entries,
            shared: Arc::new(Shared {
                tags: Mutex::new(TagIndex::default()),
                locks: Mutex::new(LockTable::default()),
                writes: (0..WRITE_SLOTS).map(|_| AtomicU64::new(0)).collect(),
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
    /// with the tag index and the current entry) agrees; returns the removed live value.
    ///
    /// The key leaves the tag index inside the lock, but its value only once the lock's step
    /// ends; meanwhile it is listed as *removing*, and a tag invalidation also waits for the
    /// keys being removed (so it never returns while a key carrying its tags is still there).
    async fn remove_where(
        &self,
        key: &str,
        still: impl FnOnce(&TagIndex, Option<&Entry>) -> bool,
    ) -> Option<String> {
        let mut removed = None;
        let mut removing = Removing {
            shared: &self.shared,
            key,
            marked: false,
        };
        self.entries
            .entry(key.to_owned())
            .and_compute_with(|current| {
                let op = {
                    let mut tags = guard(&self.shared.tags);
                    if still(&tags, current.as_ref().map(|e| e.value())) {
                        if tags.by_key.contains_key(key) {
                            tags.untag(key);
                            *tags.removing.entry(key.to_owned()).or_default() += 1;
                            removing.marked = true;
                        }
                        tags.gens.bump(Kind::Key, key, Instant::now());
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
        drop(removing);
        removed
    }
}

/// A key [`MemoryStore::remove_where`] took out of the tag index and is removing; dropping it
/// (when the removal ended, or was cancelled) takes the key off the *removing* list.
struct Removing<'a> {
    shared: &'a Shared,
    key: &'a str,
    marked: bool,
}

impl Drop for Removing<'_> {
    fn drop(&mut self) {
        if !self.marked {
            return;
        }
        let mut index = guard(&self.shared.tags);
        if let Some(n) = index.removing.get_mut(self.key) {
            *n -= 1;
            if *n == 0 {
                index.removing.remove(self.key);
            }
        }
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
        let _mark = self.shared.mark_write(key);
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
        Ok(self.remove_where(key, |_, _| true).await)
    }

    async fn del(&self, key: &str) -> Result<()> {
        self.remove_where(key, |_, _| true).await;
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
            let _mark = self.shared.mark_write(key);
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
            self.remove_where(key, |_, _| true).await;
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
            let now = Instant::now();
            for tag in tags {
                index.gens.bump(Kind::Tag, tag, now);
            }
            index.prune(now);
            let mut keys: Vec<String> = tags
                .iter()
                .filter_map(|t| index.by_tag.get(*t))
                .flatten()
                // Keys another change is removing: wait until they are gone.
                .chain(index.removing.keys())
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
            let carries = |index: &TagIndex, _: Option<&Entry>| index.carries(&key, tags);
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
        tags: &[&str],
    ) -> Result<Claim> {
        let generations = guard(&self.shared.tags)
            .gens
            .register(key, tags, Instant::now());
        let seen = match self.live(key).await {
            Some(entry) if ignore != Some(entry.value.as_str()) => {
                return Ok(Claim::Value(entry.value));
            }
            Some(entry) => Some(entry.value),
            None => None,
        };
        let fence = Fence { generations, seen };
        Ok(
            if guard(&self.shared.locks).acquire(lock, token, lock_ttl) {
                Claim::Acquired(fence)
            } else {
                Claim::Busy(fence)
            },
        )
    }

    async fn fence(&self, key: &str, tags: &[&str]) -> Result<Fence> {
        let generations = guard(&self.shared.tags)
            .gens
            .register(key, tags, Instant::now());
        let seen = self.live(key).await.map(|e| e.value);
        Ok(Fence { generations, seen })
    }

    async fn fill(
        &self,
        key: &str,
        value: &str,
        fill: Fill<'_>,
        ttl: Option<Duration>,
        fence: &Fence,
    ) -> Result<bool> {
        let slot = self.shared.write_slot(key);
        let writes = slot.load(Ordering::SeqCst);
        if writes % 2 == 1 {
            // A put of this slot is running: it may land after this fill's check.
            return Ok(false);
        }
        let now = Instant::now();
        let entry = Entry::new(value, ttl, now);
        let expires_at = entry.expires_at;
        let tags: &[&str] = match fill {
            Fill::Tagged(tags) => tags,
            Fill::Put | Fill::Flexible { .. } => &[],
        };
        let entries = &self.entries;
        let mut stored = false;
        self.entries
            .entry(key.to_owned())
            .and_compute_with(|current| {
                let current = current
                    .map(|e| e.into_value())
                    .filter(|e| e.is_live_at(now));
                let op = {
                    let mut index = guard(&self.shared.tags);
                    if current.as_ref().map(|e| e.value.as_str()) != fence.seen.as_deref()
                        || !index.gens.holds(key, tags, &fence.generations, now)
                    {
                        Op::Nop
                    } else {
                        if let Fill::Tagged(tags) = fill {
                            index.prune(now);
                            index.tag(key, tags, expires_at);
                            index.sweep_if_grown(|k| k == key || entries.contains_key(k));
                        }
                        stored = true;
                        Op::Put(entry)
                    }
                };
                std::future::ready(op)
            })
            .await;
        if !stored {
            return Ok(false);
        }
        if slot.load(Ordering::SeqCst) != writes {
            // A put overlapped this fill and may have landed first: what this fill stored
            // goes, unless the put's value has replaced it already.
            let ours = |_: &TagIndex, e: Option<&Entry>| {
                e.is_some_and(|e| e.value == value && e.expires_at == expires_at)
            };
            self.remove_where(key, ours).await;
            return Ok(false);
        }
        if let Fill::Flexible { stamp_key, stamp } = fill {
            self.put(stamp_key, stamp, ttl).await?;
        }
        Ok(true)
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
    /// The generations of keys and tags that fills are fenced with (under the same lock).
    gens: Generations,
    /// Keys taken out of the index whose value is still being removed, with how many removals
    /// of each are running.
    removing: HashMap<String, usize>,
}

struct Tagging {
    tags: Vec<String>,
    expires_at: Option<Instant>,
}

impl TagIndex {
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

/// Which namespace a generation belongs to.
#[derive(Clone, Copy)]
enum Kind {
    Key,
    Tag,
}

/// The generations of the keys and tags that claims registered, each kept for
/// [`GENERATION_TTL`] after its last claim (see [`Fence`]). Values come from one counter, so a
/// generation never comes back once it moved, even after it expired.
#[derive(Default)]
struct Generations {
    last: u64,
    keys: HashMap<String, (u64, Instant)>,
    tags: HashMap<String, (u64, Instant)>,
    swept_at_len: usize,
}

impl Generations {
    fn map(&mut self, kind: Kind) -> &mut HashMap<String, (u64, Instant)> {
        match kind {
            Kind::Key => &mut self.keys,
            Kind::Tag => &mut self.tags,
        }
    }

    /// The generation of `name`, registered (or kept) for [`GENERATION_TTL`] from `now`.
    fn register_one(&mut self, kind: Kind, name: &str, now: Instant) -> u64 {
        let until = now + GENERATION_TTL;
        let fresh = self.last + 1;
        let (generation, expires_at) = self
            .map(kind)
            .entry(name.to_owned())
            .or_insert((fresh, until));
        if *expires_at <= now {
            *generation = fresh;
        }
        *expires_at = until;
        let generation = *generation;
        self.last = self.last.max(generation);
        generation
    }

    /// The generations of `key` then `tags`, registered (see [`Fence`]).
    fn register(&mut self, key: &str, tags: &[&str], now: Instant) -> Vec<u64> {
        self.sweep_if_grown(now);
        let mut out = Vec::with_capacity(1 + tags.len());
        out.push(self.register_one(Kind::Key, key, now));
        for tag in tags {
            out.push(self.register_one(Kind::Tag, tag, now));
        }
        out
    }

    fn current(&self, kind: Kind, name: &str, now: Instant) -> Option<u64> {
        let map = match kind {
            Kind::Key => &self.keys,
            Kind::Tag => &self.tags,
        };
        map.get(name).filter(|(_, at)| *at > now).map(|(g, _)| *g)
    }

    /// Whether `key` and `tags` still have the generations `expected` (in that order).
    fn holds(&self, key: &str, tags: &[&str], expected: &[u64], now: Instant) -> bool {
        expected.len() == 1 + tags.len()
            && self.current(Kind::Key, key, now) == Some(expected[0])
            && tags
                .iter()
                .zip(&expected[1..])
                .all(|(tag, g)| self.current(Kind::Tag, tag, now) == Some(*g))
    }

    /// Moves `name`'s generation on, if a claim registered it: every fence holding the old one
    /// fails from now on.
    fn bump(&mut self, kind: Kind, name: &str, now: Instant) {
        if self.keys.is_empty() && self.tags.is_empty() {
            return;
        }
        let next = self.last + 1;
        if let Some((generation, expires_at)) = self.map(kind).get_mut(name)
            && *expires_at > now
        {
            *generation = next;
            self.last = next;
        }
    }

    fn sweep_if_grown(&mut self, now: Instant) {
        let len = self.keys.len() + self.tags.len();
        if len < 1024 || len < self.swept_at_len * 2 {
            return;
        }
        self.keys.retain(|_, (_, at)| *at > now);
        self.tags.retain(|_, (_, at)| *at > now);
        self.swept_at_len = self.keys.len() + self.tags.len();
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
