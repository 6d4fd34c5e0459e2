//! [`Worker`]: the builder that registers job types and starts the worker.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use core_db::shutdown::Shutdown;
use tokio::sync::mpsc;

use super::handle::{Counters, WorkerHandle};
use super::registry::{Handler, JobShim, Registered};
use super::run::Runtime;
use crate::config::WorkerConfig;
use crate::context::JobContext;
use crate::error::{Error, Result};
use crate::failed::FailedJobs;
use crate::job::Job;
use crate::queue::Queue;
use crate::shutdown::Background;
use crate::stats::JobCounters;

/// Runs registered job types from their queues.
///
/// ```no_run
/// # async fn example() -> core_jobs::Result<()> {
/// # use core_jobs::{Job, JobContext};
/// # #[derive(Debug, serde::Serialize, serde::Deserialize)]
/// # struct SendWelcomeEmail;
/// # #[async_trait::async_trait]
/// # impl Job for SendWelcomeEmail {
/// #     const NAME: &'static str = "send_welcome_email";
/// #     async fn handle(&self, _ctx: &JobContext) -> anyhow::Result<()> { Ok(()) }
/// # }
/// use std::time::Duration;
/// use core_db::Database;
/// use core_jobs::{Queue, Worker};
///
/// let queue = Queue::redis("redis://127.0.0.1:6379", "app").await?;
/// let db = Database::connect("sqlite://data/app.sqlite3").await?;
/// let ctx = JobContext::new(queue.clone()).with_database(db);
/// Worker::new(queue, ctx)
///     .register::<SendWelcomeEmail>()
///     .concurrency(32)
///     .grace(Duration::from_secs(30))
///     .run() // until SIGINT / SIGTERM
///     .await?;
/// # Ok(())
/// # }
/// ```
#[must_use]
pub struct Worker {
    queue: Queue,
    context: JobContext,
    handlers: HashMap<&'static str, Arc<dyn Handler>>,
    queues: Vec<String>,
    duplicate: Option<&'static str>,
    concurrency: usize,
    grace: Duration,
    lease: Duration,
    block: Duration,
    pending_interval: Duration,
    store: Option<FailedJobs>,
    shutdown: Option<Shutdown>,
    counters: JobCounters,
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<_> = self.handlers.keys().collect();
        names.sort();
        f.debug_struct("Worker")
            .field("jobs", &names)
            .field("queues", &self.queues)
            .field("concurrency", &self.concurrency)
            .field("grace", &self.grace)
            .field("lease", &self.lease)
            .finish()
    }
}

impl Worker {
    /// A worker on `queue` whose jobs get `context`. Failures are written to the context's
    /// database unless [`failed_store`](Self::failed_store) says otherwise.
    pub fn new(queue: Queue, context: JobContext) -> Self {
        let store = context.database().cloned().map(FailedJobs::new);
        let defaults = WorkerConfig::default();
        Self {
            counters: queue.counters().clone(),
            queue,
            context,
            handlers: HashMap::new(),
            queues: Vec::new(),
            duplicate: None,
            concurrency: defaults.concurrency,
            grace: Duration::from_secs(30),
            lease: defaults.lease,
            block: Duration::from_secs(1),
            pending_interval: Duration::from_secs(2),
            store,
            shutdown: None,
        }
    }

    /// Registers job type `J` (and listens on `J::QUEUE`). Two types with one `NAME` make the
    /// worker fail at start-up with [`Error::DuplicateJob`].
    pub fn register<J: Job>(mut self) -> Self {
        if self.handlers.contains_key(J::NAME) {
            self.duplicate.get_or_insert(J::NAME);
        } else {
            self.handlers.insert(J::NAME, Arc::new(JobShim::<J>::new()));
        }
        if !self.queues.iter().any(|q| q == J::QUEUE) {
            self.queues.push(J::QUEUE.to_owned());
        }
        self
    }

    /// Also claims from `queue` (for jobs dispatched there with
    /// [`DispatchOptions::on_queue`](crate::DispatchOptions::on_queue)).
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        let queue = queue.into();
        if !self.queues.contains(&queue) {
            self.queues.push(queue);
        }
        self
    }

    /// Takes the loaded settings (`WORKER_CONCURRENCY`, `WORKER_LEASE_SECS`): the same as
    /// [`concurrency`](Self::concurrency) and [`lease`](Self::lease).
    pub fn config(self, config: &WorkerConfig) -> Self {
        self.concurrency(config.concurrency).lease(config.lease)
    }

    /// How many jobs run at once (default 16, [`WorkerConfig::default`]).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// How long shutdown waits for running jobs before leaving them to lease recovery
    /// (default 30 s).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// How long a claimed job stays leased without being extended (default 30 s,
    /// [`WorkerConfig::default`]). The worker
    /// extends the leases of running jobs every third of it; a job whose worker died is
    /// recovered by any worker once it has passed.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(300));
        self
    }

    /// How long one blocking claim waits for a job before checking again (default 1 s).
    pub fn block_for(mut self, block: Duration) -> Self {
        self.block = block.max(Duration::from_millis(10));
        self
    }

    /// How often failures kept in the queue (database unreachable) are retried (default 2 s).
    pub fn pending_failures_every(mut self, every: Duration) -> Self {
        self.pending_interval = every.max(Duration::from_millis(10));
        self
    }

    /// Writes `failed_jobs` rows to `store` instead of the context's database.
    pub fn failed_store(mut self, store: FailedJobs) -> Self {
        self.store = Some(store);
        self
    }

    /// Counts finished jobs into `counters` instead of the queue's own
    /// ([`Queue::counters`](crate::Queue::counters)): for a worker built on a queue handle of
    /// its own whose counts should still reach the dashboard. The `metrics` counters are
    /// exported either way.
    pub fn counters(mut self, counters: &JobCounters) -> Self {
        self.counters = counters.clone();
        self
    }

    /// Stops the worker when `shutdown` is cancelled (as [`WorkerHandle::shutdown`] does), and
    /// makes [`Shutdown::wait`] wait until it has drained its running jobs. Give the same
    /// `Shutdown` to the scheduler, the outbox relay and the HTTP server so that one
    /// cancellation (or [`Shutdown::on_signal`]) stops them all.
    pub fn with_shutdown(mut self, shutdown: &Shutdown) -> Self {
        self.shutdown = Some(shutdown.clone());
        self
    }

    /// Starts the worker in the background.
    ///
    /// # Errors
    /// [`Error::DuplicateJob`] when two registered types share a `NAME`; [`Error::Config`]
    /// when nothing is registered or a queue name is invalid.
    pub fn spawn(self) -> Result<WorkerHandle> {
        if let Some(name) = self.duplicate {
            return Err(Error::DuplicateJob(name));
        }
        if self.queues.is_empty() {
            return Err(Error::Config(
                "a worker needs at least one registered job or queue".into(),
            ));
        }
        for q in &self.queues {
            crate::queue::check_queue_name(q)?;
        }
        if self.store.is_none() {
            tracing::warn!(
                "worker has no failed-job store (no database in its context): failures are kept in the queue"
            );
        }
        let worker_id = format!(
            "{}-{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..10]
        );
        let handlers = self
            .handlers
            .into_iter()
            .map(|(name, handler)| {
                let registered = Registered::new(name, handler, &self.queues, &self.counters);
                (name, registered)
            })
            .collect();
        let (ack_tx, ack_rx) = mpsc::unbounded_channel();
        let rt = Arc::new(Runtime {
            driver: self.queue.driver().clone(),
            ctx: self.context,
            handlers,
            depth_gauges: self
                .queues
                .iter()
                .map(|q| metrics::gauge!("rustforge_jobs_queue_depth", "queue" => q.clone()))
                .collect(),
            queues: self.queues,
            worker_id,
            lease: self.lease,
            block: self.block,
            pending_interval: self.pending_interval,
            store: self.store,
            counters: Counters::default(),
            job_counters: self.counters,
            inflight: Mutex::new(HashMap::new()),
            seq: AtomicU64::new(0),
            ack_tx,
            concurrency: self.concurrency,
            grace: self.grace,
        });
        let task = Background::spawn(self.shutdown.as_ref(), |stop| rt.clone().run(stop, ack_rx));
        Ok(WorkerHandle { rt, task })
    }

    /// Runs until `shutdown` completes, then shuts down gracefully.
    ///
    /// # Errors
    /// As [`spawn`](Self::spawn).
    pub async fn run_until<F: std::future::Future<Output = ()>>(self, shutdown: F) -> Result<()> {
        let handle = self.spawn()?;
        shutdown.await;
        handle.shutdown().await;
        Ok(())
    }

    /// Runs until SIGINT or SIGTERM, then shuts down gracefully: stops claiming, waits for
    /// running jobs up to the grace period, and leaves the rest to lease recovery.
    ///
    /// Called inside a Tokio runtime, `run` listens for the signals from the moment it is
    /// called, before the returned future is first polled: a signal that arrives while the
    /// process is still starting up stops the worker rather than killing the process.
    ///
    /// # Errors
    /// As [`spawn`](Self::spawn); [`Error::Signal`] when the signal handlers cannot be
    /// installed.
    pub fn run(self) -> impl Future<Output = Result<()>> + Send + 'static {
        let early = tokio::runtime::Handle::try_current()
            .is_ok()
            .then(core_db::shutdown::try_signal);
        async move {
            let signal = early
                .unwrap_or_else(core_db::shutdown::try_signal)
                .map_err(Error::Signal)?;
            self.run_until(signal).await
        }
    }
}
