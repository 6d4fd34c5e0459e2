//! [`JobCounters`]: how many jobs this process's workers finished, per queue and job, kept in
//! memory as they run so that a dashboard can chart throughput without asking the backend.
//!
//! The worker counts each outcome at the same point where it increments the `metrics` counters
//! (`rustforge_jobs_processed_total`, `_failed_total`, `_retried_total`), with one relaxed
//! atomic add on a cell it looked up when it started: the hot path takes no lock and makes no
//! allocation. Nothing else changes: the `metrics` counters are still exported as before.
//!
//! Every [`Queue`](crate::Queue) handle carries one registry, shared by its clones, and a
//! [`Worker`](crate::Worker) built on a queue counts into that queue's registry (or into the
//! one given to [`Worker::counters`](crate::Worker::counters)). So an application that hands
//! the same queue to its workers and to its dashboard needs no wiring at all.
//!
//! # Only this process
//!
//! The counts are those of the workers **in this process**. A deployment that runs its
//! workers in other processes (a `worker` command beside the web server) sees their counts in
//! those processes, and a dashboard in the web process sees none of them. History across
//! processes would need the counts in a shared store (Redis, say, one small hash per time
//! bucket); that is a later step, not something these counters do.
//!
//! # Recent jobs
//!
//! [`JobCounters::keep_recent`] also keeps the last jobs this process's workers finished, in a
//! bounded ring: which job, on which queue, how it ended ([`RecentOutcome`]), its attempt, when
//! it finished and how long its run took. [`JobCounters::recent`] lists them, newest first. It
//! is off by default: until it is turned on the worker pays one relaxed atomic load per job and
//! nothing else (no clock read, no lock). Once on, each finished job costs a clock read at its
//! start and, at its end, a short lock and the copy of its id, name and queue.
//!
//! Like the counts, the ring holds **only this process's** jobs: a job finished by a worker in
//! another process is not in it. The jobs running right now, in every process, come from the
//! queue instead ([`Queue::running`](crate::Queue::running)).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> anyhow::Result<()> {
//! use core_jobs::{Job, JobContext, Queue, RecentOutcome, Worker};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Serialize, Deserialize)]
//! struct Ping;
//!
//! #[core_jobs::async_trait]
//! impl Job for Ping {
//!     const NAME: &'static str = "ping";
//!     async fn handle(&self, _ctx: &JobContext) -> anyhow::Result<()> {
//!         Ok(())
//!     }
//! }
//!
//! let queue = Queue::memory();
//! queue.counters().keep_recent(100);
//! let worker = Worker::new(queue.clone(), JobContext::new(queue.clone()))
//!     .register::<Ping>()
//!     .spawn()?;
//! queue.dispatch(&Ping).await?;
//! while queue.counters().snapshot().total().processed == 0 {
//!     tokio::time::sleep(std::time::Duration::from_millis(5)).await;
//! }
//! let snapshot = queue.counters().snapshot();
//! assert_eq!(snapshot.queue("default").processed, 1);
//! assert_eq!(snapshot.jobs()[0].job, "ping");
//! let recent = queue.counters().recent();
//! assert_eq!((recent[0].name.as_str(), recent[0].outcome), ("ping", RecentOutcome::Succeeded));
//! worker.shutdown().await;
//! # Ok(())
//! # }
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::ops::{Add, AddAssign};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// How many jobs ended which way: a job's, a queue's, or everything's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Counts {
    /// Jobs that ran to success (as `rustforge_jobs_processed_total`).
    pub processed: u64,
    /// Jobs that ended in `failed_jobs`: retries exhausted, an unknown job name, an undecodable
    /// payload (as `rustforge_jobs_failed_total`, which leaves out the last two).
    pub failed: u64,
    /// Failed attempts that were scheduled for a retry (as `rustforge_jobs_retried_total`).
    pub retried: u64,
}

impl Counts {
    /// The counts from `earlier` to `self` (each never below zero): what happened in between.
    pub fn since(self, earlier: Counts) -> Counts {
        Counts {
            processed: self.processed.saturating_sub(earlier.processed),
            failed: self.failed.saturating_sub(earlier.failed),
            retried: self.retried.saturating_sub(earlier.retried),
        }
    }
}

impl Add for Counts {
    type Output = Counts;

    fn add(self, other: Counts) -> Counts {
        Counts {
            processed: self.processed + other.processed,
            failed: self.failed + other.failed,
            retried: self.retried + other.retried,
        }
    }
}

impl AddAssign for Counts {
    fn add_assign(&mut self, other: Counts) {
        *self = *self + other;
    }
}

/// One job's counts on one queue, in a [`CountsSnapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobCounts {
    /// The queue the job was claimed from.
    pub queue: String,
    /// The job's name (`Job::NAME`; for an entry that is not a job envelope,
    /// [`UNDECODABLE_ENVELOPE`](crate::worker::UNDECODABLE_ENVELOPE)).
    pub job: String,
    /// Its counts so far.
    pub counts: Counts,
}

/// The counters at one moment, from [`JobCounters::snapshot`]: every (queue, job) pair a worker
/// has counted, sorted by queue then job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CountsSnapshot {
    jobs: Vec<JobCounts>,
}

impl CountsSnapshot {
    /// Every (queue, job) pair, sorted by queue then job.
    pub fn jobs(&self) -> &[JobCounts] {
        &self.jobs
    }

    /// The counts of queue `name` (zero when no worker here claims from it).
    pub fn queue(&self, name: &str) -> Counts {
        self.jobs
            .iter()
            .filter(|j| j.queue == name)
            .fold(Counts::default(), |sum, j| sum + j.counts)
    }

    /// Per queue, sorted by name.
    pub fn by_queue(&self) -> Vec<(String, Counts)> {
        let mut out: Vec<(String, Counts)> = Vec::new();
        for j in &self.jobs {
            match out.last_mut() {
                Some((queue, sum)) if *queue == j.queue => *sum += j.counts,
                _ => out.push((j.queue.clone(), j.counts)),
            }
        }
        out
    }

    /// Every queue's counts added up.
    pub fn total(&self) -> Counts {
        self.jobs
            .iter()
            .fold(Counts::default(), |sum, j| sum + j.counts)
    }
}

/// One (queue, job) pair's counters: what the worker adds to on its hot path.
#[derive(Debug, Default)]
pub(crate) struct Cell {
    processed: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
}

impl Cell {
    pub(crate) fn processed(&self) {
        self.processed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn retried(&self) {
        self.retried.fetch_add(1, Ordering::Relaxed);
    }

    fn counts(&self) -> Counts {
        Counts {
            processed: self.processed.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
        }
    }
}

/// How a job in [`JobCounters::recent`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum RecentOutcome {
    /// It ran to success (counted as `processed`).
    Succeeded,
    /// It ended in `failed_jobs`: its last attempt failed, its name is unknown or its payload
    /// undecodable (counted as `failed`).
    Failed,
    /// The attempt failed and the job was scheduled to run again (counted as `retried`).
    Retried,
}

impl RecentOutcome {
    /// `"succeeded"`, `"failed"` or `"retried"`.
    pub fn as_str(self) -> &'static str {
        match self {
            RecentOutcome::Succeeded => "succeeded",
            RecentOutcome::Failed => "failed",
            RecentOutcome::Retried => "retried",
        }
    }
}

/// One finished run of a job, from [`JobCounters::recent`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecentJob {
    /// The job's id (empty for a queue entry that was not a job envelope).
    pub id: String,
    /// The job's name (`Job::NAME`, or
    /// [`UNDECODABLE_ENVELOPE`](crate::worker::UNDECODABLE_ENVELOPE)).
    pub name: String,
    /// The queue it was claimed from.
    pub queue: String,
    /// How the run ended.
    pub outcome: RecentOutcome,
    /// The attempt that ended: 1 for the first run (0 for an entry that was not a job
    /// envelope).
    pub attempt: u32,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// How long the run took, from the start of the worker's handling to its outcome.
    pub duration: Duration,
}

/// In-process counters of finished jobs per queue and job: what this process's workers
/// processed, failed and retried since it started, and, once [`keep_recent`](Self::keep_recent)
/// is on, the last jobs they finished (see the [module docs](self)).
///
/// A cheap, cloneable handle: clones share the counts. Each [`Queue`](crate::Queue) carries one
/// ([`Queue::counters`](crate::Queue::counters)); [`JobCounters::new`] makes a separate one,
/// for [`Worker::counters`](crate::Worker::counters) to count into.
#[derive(Clone, Default)]
pub struct JobCounters {
    inner: Arc<Registry>,
}

/// What the clones of one [`JobCounters`] share.
#[derive(Default)]
struct Registry {
    cells: Mutex<Cells>,
    /// The recent ring's capacity; 0: off (what the worker's hot path reads, relaxed).
    recent_capacity: AtomicUsize,
    /// Newest at the front.
    recent: Mutex<VecDeque<RecentJob>>,
}

/// The cells by (queue, job).
type Cells = BTreeMap<(String, String), Arc<Cell>>;

impl fmt::Debug for JobCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobCounters")
            .field("total", &self.snapshot().total())
            .finish()
    }
}

impl JobCounters {
    /// An empty registry of its own.
    pub fn new() -> Self {
        Self::default()
    }

    /// The counters right now. Takes a short lock and reads a few atomics per (queue, job)
    /// pair; the workers go on meanwhile, so the counts of different pairs may be a few jobs
    /// apart in time.
    pub fn snapshot(&self) -> CountsSnapshot {
        let cells = self.inner.cells.lock().unwrap_or_else(|e| e.into_inner());
        CountsSnapshot {
            jobs: cells
                .iter()
                .map(|((queue, job), cell)| JobCounts {
                    queue: queue.clone(),
                    job: job.clone(),
                    counts: cell.counts(),
                })
                .collect(),
        }
    }

    /// The cell of (`queue`, `job`), made on first use. Workers look their cells up when they
    /// start, or on the rare paths (unknown job names) where a lookup costs nothing next to
    /// the `failed_jobs` write.
    pub(crate) fn cell(&self, queue: &str, job: &str) -> Arc<Cell> {
        let mut cells = self.inner.cells.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(cell) = cells.get(&(queue.to_owned(), job.to_owned())) {
            return cell.clone();
        }
        cells
            .entry((queue.to_owned(), job.to_owned()))
            .or_default()
            .clone()
    }

    /// Whether `self` and `other` share their counts (one is a clone of the other).
    pub fn same_as(&self, other: &JobCounters) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Keeps the last `capacity` jobs the workers counting here finish, for
    /// [`recent`](Self::recent); 0 turns it off and forgets them. A smaller capacity than
    /// before drops the oldest. Off by default (see [Recent jobs](self#recent-jobs)); every
    /// clone shares the one ring, so the last call decides its capacity.
    pub fn keep_recent(&self, capacity: usize) {
        let mut ring = self.inner.recent.lock().unwrap_or_else(|e| e.into_inner());
        self.inner
            .recent_capacity
            .store(capacity, Ordering::Relaxed);
        ring.truncate(capacity);
        if capacity == 0 {
            ring.shrink_to_fit();
        }
    }

    /// The capacity [`keep_recent`](Self::keep_recent) set (0: off).
    pub fn recent_capacity(&self) -> usize {
        self.inner.recent_capacity.load(Ordering::Relaxed)
    }

    /// The last jobs finished by this process's workers counting here, newest first, at most
    /// the [capacity](Self::keep_recent); empty while it is off.
    pub fn recent(&self) -> Vec<RecentJob> {
        let ring = self.inner.recent.lock().unwrap_or_else(|e| e.into_inner());
        ring.iter().cloned().collect()
    }

    /// The worker's clock at a job's start when the recent ring is on, `None` (after one
    /// relaxed load, nothing else) when it is off.
    pub(crate) fn recent_clock(&self) -> Option<Instant> {
        if self.inner.recent_capacity.load(Ordering::Relaxed) == 0 {
            None
        } else {
            Some(Instant::now())
        }
    }

    /// Puts `job` at the front of the recent ring (unless it was turned off meanwhile).
    pub(crate) fn push_recent(&self, job: RecentJob) {
        let mut ring = self.inner.recent.lock().unwrap_or_else(|e| e.into_inner());
        let capacity = self.inner.recent_capacity.load(Ordering::Relaxed);
        if capacity == 0 {
            return;
        }
        if ring.len() >= capacity {
            ring.truncate(capacity - 1);
        }
        ring.push_front(job);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_sums_per_queue_and_in_total() {
        let counters = JobCounters::new();
        counters.cell("mail", "send").processed();
        counters.cell("mail", "send").processed();
        counters.cell("mail", "digest").failed();
        counters.cell("default", "resize").retried();
        counters.cell("default", "resize").processed();
        let snap = counters.clone().snapshot();
        assert_eq!(snap.jobs().len(), 3);
        assert_eq!(snap.jobs()[0].queue, "default");
        let mail = snap.queue("mail");
        assert_eq!((mail.processed, mail.failed, mail.retried), (2, 1, 0));
        assert_eq!(
            snap.by_queue()
                .into_iter()
                .map(|(q, c)| (q, c.processed))
                .collect::<Vec<_>>(),
            [("default".to_owned(), 1), ("mail".to_owned(), 2)]
        );
        let total = snap.total();
        assert_eq!((total.processed, total.failed, total.retried), (3, 1, 1));
        assert_eq!(snap.queue("none"), Counts::default());
    }

    #[test]
    fn since_never_goes_below_zero() {
        let later = Counts {
            processed: 5,
            failed: 1,
            retried: 0,
        };
        let earlier = Counts {
            processed: 2,
            failed: 3,
            retried: 0,
        };
        assert_eq!(
            later.since(earlier),
            Counts {
                processed: 3,
                failed: 0,
                retried: 0
            }
        );
    }

    fn finished(id: &str, outcome: RecentOutcome) -> RecentJob {
        RecentJob {
            id: id.to_owned(),
            name: "j".to_owned(),
            queue: "q".to_owned(),
            outcome,
            attempt: 1,
            finished_at: Utc::now(),
            duration: Duration::from_millis(5),
        }
    }

    #[test]
    fn the_recent_ring_is_off_until_kept_then_bounded_newest_first() {
        let counters = JobCounters::new();
        assert!(counters.recent_clock().is_none());
        counters.push_recent(finished("a", RecentOutcome::Succeeded));
        assert!(counters.recent().is_empty(), "off: nothing is kept");

        counters.keep_recent(3);
        let clone = counters.clone();
        assert!(clone.recent_clock().is_some());
        for id in ["a", "b", "c", "d"] {
            clone.push_recent(finished(id, RecentOutcome::Failed));
        }
        let ids: Vec<String> = counters.recent().into_iter().map(|j| j.id).collect();
        assert_eq!(ids, ["d", "c", "b"]);
        counters.keep_recent(2);
        assert_eq!(counters.recent().len(), 2);
        counters.keep_recent(0);
        assert!(counters.recent().is_empty());
        counters.push_recent(finished("e", RecentOutcome::Retried));
        assert!(counters.recent().is_empty());
        assert_eq!(RecentOutcome::Retried.as_str(), "retried");
    }

    #[test]
    fn clones_share_and_new_ones_do_not() {
        let a = JobCounters::new();
        let b = a.clone();
        b.cell("q", "j").processed();
        assert_eq!(a.snapshot().total().processed, 1);
        assert!(a.same_as(&b));
        assert!(!a.same_as(&JobCounters::new()));
    }
}
