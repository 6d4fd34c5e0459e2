//! The L1 bookkeeping of the tiered driver: per-key generations that keep copies older than L2
//! out of L1, and how long L1 is trusted after the subscription last answered.

use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How many generation slots a tiered cache keeps (8 bytes each).
const GENERATION_SLOTS: usize = 4096;

/// How long after sending a ping that came back L1 is trusted: the documented staleness bound.
pub(crate) const TRUST: Duration = Duration::from_secs(2);

/// What the subscriber, the readers and the writers share: the generations that keep copies
/// older than L2 out of L1 (see the [module docs](super)), and whether L1 may be used.
pub(super) struct Coherence {
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
pub(super) struct Ticket {
    pub(super) all: u64,
    pub(super) key: u64,
}

impl Coherence {
    pub(super) fn new() -> Self {
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
    pub(super) fn trusted(&self) -> bool {
        self.millis_at(Instant::now()) < self.trusted_until.load(Ordering::Acquire)
    }

    /// Trusts L1 until [`TRUST`] after `heard_at` (a moment up to which every announcement has
    /// been applied), unless it is trusted for longer already.
    pub(super) fn trust_from(&self, heard_at: Instant) {
        let until = self.millis_at(heard_at + TRUST).max(1);
        self.trusted_until.fetch_max(until, Ordering::AcqRel);
    }

    /// Stops trusting L1 (the subscription is gone).
    pub(super) fn distrust(&self) {
        self.trusted_until.store(0, Ordering::Release);
    }

    fn slot(&self, key: &str) -> &AtomicU64 {
        // A fixed (unkeyed) hasher: the slot only has to be the same for the same key.
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(key);
        &self.slots[(hash as usize) % self.slots.len()]
    }

    /// The generations of `key` now.
    pub(super) fn ticket(&self, key: &str) -> Ticket {
        Ticket {
            all: self.all.load(Ordering::SeqCst),
            key: self.slot(key).load(Ordering::SeqCst),
        }
    }

    /// Call before evicting `key` from L1; returns the ticket the eviction leaves behind.
    pub(super) fn bump(&self, key: &str) -> Ticket {
        let key = self.slot(key).fetch_add(1, Ordering::SeqCst) + 1;
        Ticket {
            all: self.all.load(Ordering::SeqCst),
            key,
        }
    }

    /// Call before flushing or clearing L1.
    pub(super) fn bump_all(&self) {
        self.all.fetch_add(1, Ordering::SeqCst);
    }
}
