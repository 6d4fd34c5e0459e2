//! The contract every queue driver implements: [`Driver`] for the operations on a queue's
//! structures, [`Claimer`] for one worker's claims from one queue.
//!
//! [`Queue`](super::Queue) holds an `Arc<dyn Driver>`; the worker reaches the driver only
//! through `Queue`, so the in-process and the Redis driver are used by exactly the same code.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{Push, QueueDriver, QueueStats, RunningJob};
use crate::error::Result;

/// One queue backend. Every method takes the queue name first; envelopes are the exact text
/// that was claimed (the lease is keyed by it).
#[async_trait]
pub(crate) trait Driver: Send + Sync + 'static {
    /// Which driver this is.
    fn kind(&self) -> QueueDriver;

    /// Queues one job; false when its unique key was already taken.
    async fn push(&self, queue: &str, push: Push) -> Result<bool>;

    /// Queues plain (ungrouped, immediate) envelopes in order.
    async fn push_many(&self, queue: &str, envs: Vec<String>) -> Result<()>;

    /// A claimer of `queue` for `worker` (registers the worker's heartbeat).
    async fn claimer(&self, queue: &str, worker: &str, lease: Duration)
    -> Result<Box<dyn Claimer>>;

    /// Ends the leases of plain jobs that ran to success.
    async fn ack(&self, queue: &str, envs: &[Arc<str>]) -> Result<()>;

    /// Ends the lease of `env`; for a grouped job (`(group, id)`) starts the group's next job;
    /// keeps `record` (a failure `failed_jobs` could not take) in the queue. False when the
    /// lease was already gone.
    async fn finish(
        &self,
        queue: &str,
        env: &Arc<str>,
        group: Option<(&str, &str)>,
        record: Option<&str>,
    ) -> Result<bool>;

    /// Ends the lease of `old` and schedules `new` after `delay`, in one step. False when the
    /// lease was already gone.
    async fn retry(
        &self,
        queue: &str,
        old: &Arc<str>,
        new: String,
        delay: Duration,
    ) -> Result<bool>;

    /// Extends the leases of `envs` (and `worker`'s heartbeat); returns those among them that
    /// are no longer leased.
    async fn extend(
        &self,
        queue: &str,
        worker: &str,
        envs: &[Arc<str>],
        lease: Duration,
    ) -> Result<Vec<Arc<str>>>;

    /// Moves due delayed jobs to ready; returns how long until the next one is due.
    async fn promote(&self, queue: &str) -> Result<Option<Duration>>;

    /// Moves jobs whose lease expired (or whose worker died) back to ready; returns how many.
    async fn recover(&self, queue: &str) -> Result<u64>;

    /// Takes the pending-failures lock for `ttl` with a fresh token; `None` when it is held.
    async fn lock_pending(&self, queue: &str, ttl: Duration) -> Result<Option<String>>;

    /// Releases the pending-failures lock if it is still held with `token`.
    async fn unlock_pending(&self, queue: &str, token: &str) -> Result<()>;

    /// Up to `max` failures kept in the queue, oldest first.
    async fn pending_failures(&self, queue: &str, max: usize) -> Result<Vec<String>>;

    /// Removes one kept failure once it has been written.
    async fn remove_pending(&self, queue: &str, record: &str) -> Result<()>;

    /// The queue's sizes.
    async fn stats(&self, queue: &str) -> Result<QueueStats>;

    /// Up to `limit` leased jobs, soonest lease deadline first (ties by envelope text);
    /// entries that are not job envelopes are skipped and do not count towards `limit`.
    /// Read-only.
    async fn running(&self, queue: &str, limit: usize) -> Result<Vec<RunningJob>>;
}

/// Claims from one queue for one worker.
#[async_trait]
pub(crate) trait Claimer: Send {
    /// Leases up to `max` ready jobs, waiting up to `wait` for one when none is ready.
    async fn claim(&mut self, max: usize, lease: Duration, wait: Duration)
    -> Result<Vec<Arc<str>>>;

    /// Puts back whatever this claimer holds that no job runs for (called at shutdown).
    async fn release(&mut self) -> Result<()>;
}
