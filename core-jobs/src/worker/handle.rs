//! [`WorkerHandle`]: a running worker's counters and its stop.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[cfg(doc)]
use super::Worker;
use super::run::Runtime;
use crate::shutdown::Background;

/// Counters of one worker, from [`WorkerHandle::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerStats {
    /// Jobs that ran to success.
    pub processed: u64,
    /// Jobs that ended in `failed_jobs` (exhausted, unknown, undecodable).
    pub failed: u64,
    /// Failed attempts that were scheduled for a retry.
    pub retried: u64,
    /// Jobs running right now.
    pub in_flight: u64,
    /// Ready jobs across the worker's queues, as last sampled (about once a second).
    pub queue_depth: u64,
}

/// The worker's counters, shared by its tasks.
#[derive(Default)]
pub(super) struct Counters {
    pub(super) processed: AtomicU64,
    pub(super) failed: AtomicU64,
    pub(super) retried: AtomicU64,
    pub(super) queue_depth: AtomicU64,
}

/// A running worker, from [`Worker::spawn`].
pub struct WorkerHandle {
    pub(super) rt: Arc<Runtime>,
    /// The worker's task, stopped by [`shutdown`](Self::shutdown), by the
    /// [`Shutdown`](core_db::shutdown::Shutdown) given to [`Worker::with_shutdown`], or on drop.
    pub(super) task: Background,
}

impl fmt::Debug for WorkerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerHandle")
            .field("worker", &self.rt.worker_id)
            .field("stats", &self.stats())
            .finish()
    }
}

impl WorkerHandle {
    /// The worker's counters right now.
    pub fn stats(&self) -> WorkerStats {
        let c = &self.rt.counters;
        WorkerStats {
            processed: c.processed.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            retried: c.retried.load(Ordering::Relaxed),
            in_flight: self.rt.inflight.lock().map(|m| m.len() as u64).unwrap_or(0),
            queue_depth: c.queue_depth.load(Ordering::Relaxed),
        }
    }

    /// This worker's id (it names its processing lists and heartbeat).
    pub fn id(&self) -> &str {
        &self.rt.worker_id
    }

    /// Stops claiming, waits for running jobs up to the grace period, leaves the rest to lease
    /// recovery, and returns when the worker has stopped.
    ///
    /// Any number of callers may call it, at once or one after another: each returns only once
    /// the worker has stopped.
    pub async fn shutdown(&self) {
        self.task.stop_and_wait().await;
    }
}
