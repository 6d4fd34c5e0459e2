//! Rustforge jobs: background work that survives crashes.
//!
//! A [`Job`] is a serializable value with an async handler. Dispatching it
//! ([`Dispatch::dispatch`], [`dispatch_in`](Dispatch::dispatch_in),
//! [`dispatch_at`](Dispatch::dispatch_at)) puts it on a [`Queue`]; a [`Worker`] claims it, runs
//! it with a [`JobContext`] (database, cache, queue, typed extensions), retries it with backoff
//! when it fails, calls its [`failed`](Job::failed) callback once when the retries are
//! exhausted, and writes a `failed_jobs` row that [`FailedJobs`] lists, retries, forgets and
//! prunes.
//!
//! - **Queues**: [`Queue::redis`] is the production driver — a reliable queue where a claim
//!   atomically moves jobs into a leased set, running jobs extend their leases, and any worker
//!   recovers the jobs of a worker that died. Delivery is **at least once**: make handlers
//!   idempotent. [`Queue::memory`] is the in-process default with the same semantics and no
//!   durability across restarts. [`Queue::from_url`] picks one from configuration.
//! - **Groups**: jobs with the same [`group_id`](Job::group_id) run one at a time, in order.
//! - **Transactional dispatch**: [`JobBuffer`] writes jobs inside your database transaction; they
//!   reach the queue only if it commits.
//! - **Cron**: [`Scheduler`] dispatches jobs on cron expressions with seconds, once per tick
//!   however many scheduler processes run.
//! - **Shutdown**: one [`Shutdown`] (a `CancellationToken` with a `TaskTracker`) given to the
//!   [`Worker`], the [`Scheduler`], the [`JobBuffer`] relay and core-web's server stops them all;
//!   each finishes its in-flight work and [`Shutdown::wait`] returns once all have. SIGINT and
//!   SIGTERM are handled in one place ([`shutdown::signal`], [`Shutdown::on_signal`]).
//! - **Observability**: a `job` tracing span per run (name, id, attempt, queue);
//!   [`WorkerHandle::stats`] and [`Queue::stats`] counters, also exported through the `metrics`
//!   facade (`rustforge_jobs_processed_total`, `_failed_total`, `_retried_total`,
//!   `rustforge_jobs_queue_depth`), and in-process [`JobCounters`] per queue and job
//!   ([`Queue::counters`], see [`stats`]) that core-dashboard charts; these count the workers of
//!   this process only, and can keep its last finished jobs ([`JobCounters::keep_recent`]).
//!   [`Queue::running`] lists the jobs leased right now, by workers in every process.
//!
//! ```
//! use std::time::Duration;
//! use core_jobs::{Dispatch, Job, JobContext, Queue, Worker};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Serialize, Deserialize)]
//! struct Resize {
//!     image_id: u64,
//! }
//!
//! #[async_trait::async_trait]
//! impl Job for Resize {
//!     const NAME: &'static str = "resize";
//!
//!     async fn handle(&self, ctx: &JobContext) -> anyhow::Result<()> {
//!         let done = ctx.ext::<tokio::sync::mpsc::UnboundedSender<u64>>().unwrap();
//!         done.send(self.image_id)?;
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> anyhow::Result<()> {
//! let queue = Queue::memory();
//! let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
//! let ctx = JobContext::new(queue.clone()).with_extension(tx);
//! let worker = Worker::new(queue.clone(), ctx).register::<Resize>().spawn()?;
//!
//! Resize { image_id: 7 }.dispatch(&queue).await?;
//! assert_eq!(rx.recv().await, Some(7));
//! worker.shutdown().await;
//! # Ok(())
//! # }
//! ```

pub mod buffer;
pub mod cli;
pub mod config;
pub mod context;
mod envelope;
pub mod error;
pub mod failed;
pub mod job;
pub mod queue;
pub mod schedule;
pub mod shutdown;
mod sqlite;
pub mod stats;
pub mod worker;

pub use buffer::{JobBuffer, OutboxInsert};
pub use config::{QueueConfig, WorkerConfig};
pub use context::JobContext;
pub use error::{Error, Result};
pub use failed::{FailedFilter, FailedJob, FailedJobs, FailureRecord};
pub use job::{Dispatch, Job, JobId, RetryAfter};
pub use queue::{DispatchOptions, Queue, QueueDriver, QueueStats, RunningJob};
pub use schedule::{ScheduledJob, Scheduler};
pub use shutdown::Shutdown;
pub use stats::{Counts, CountsSnapshot, JobCounters, RecentJob, RecentOutcome};
pub use worker::{Worker, WorkerHandle, WorkerStats};

/// Re-exported so `#[async_trait]` on a `Job` impl needs no extra dependency.
pub use async_trait::async_trait;
