//! [`Worker`]: claims jobs, runs them with a configured concurrency, retries, calls `failed()`,
//! writes `failed_jobs`, and shuts down gracefully.
//!
//! How a claimed job ends:
//!
//! - `Ok` → acknowledged (plain jobs in batches; a grouped job's ack starts its group's next job);
//! - an error, a panic or a timeout with attempts left → retried after
//!   [`Job::backoff`] (the retry and the end of the lease are one atomic
//!   step; a grouped job keeps its group held meanwhile);
//! - the last attempt failed → [`Job::failed`] exactly once, on the job
//!   deserialized from its payload (its error or panic is logged), then the `failed_jobs` row,
//!   then the ack;
//! - an unknown job name or an undecodable payload → a `failed_jobs` row with the reason at once;
//! - `failed_jobs` unreachable → the failure is kept in the queue (`failed-pending`) in the same
//!   atomic step as the ack, and written by a worker once the database answers again;
//! - the lease was lost while it ran → nothing: no ack, retry or `failed_jobs` row from this run.
//!
//! Leases: the worker extends the leases of its running jobs every third of the lease, on a task
//! of its own that nothing else (a slow `failed_jobs`, a slow promotion) delays. A lease that was
//! not extended in time (the process stalled, the queue unreachable for longer than the lease)
//! is recovered by any worker, and the job may run again elsewhere. The worker that lost it
//! finds out at its next extension: it logs a warning and sets
//! [`JobContext::lease_lost`] (a long handler should check it and stop), and it commits nothing
//! for that run, so it does not end or double the run that now holds the lease. Detection is
//! after the fact: a run that ends before the next extension still commits. The framework
//! guarantees at-least-once delivery, not that two runs never overlap: jobs must be idempotent.

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use futures_util::FutureExt;
use serde_json::value::RawValue;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tracing::Instrument;

use crate::context::{JobContext, LeaseState, RunInfo};
use crate::envelope::Envelope;
use crate::error::{Error, Result};
use crate::failed::{FailedJobs, FailureRecord};
use crate::job::Job;
use crate::queue::{Driver, Queue, drive, memory::MemoryClaimer, redis::RedisClaimer};

/// The name recorded in `failed_jobs` for a queue entry that is not even a job envelope.
pub const UNDECODABLE_ENVELOPE: &str = "(undecodable envelope)";

/// What one run of a job came to.
enum Outcome {
    Done,
    Retry { error: String, delay: Duration },
    Failed { error: String },
    Undecodable { error: String },
}

/// Runs one job type: the registry entry behind a `NAME`.
#[async_trait]
trait Handler: Send + Sync {
    async fn run(&self, data: &RawValue, ctx: &JobContext, attempt: u32) -> Outcome;
}

/// The registry entry for job type `J`.
struct JobShim<J>(PhantomData<fn() -> J>);

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".to_owned()
    }
}

#[async_trait]
impl<J: Job> Handler for JobShim<J> {
    async fn run(&self, data: &RawValue, ctx: &JobContext, attempt: u32) -> Outcome {
        let job: J = match serde_json::from_str(data.get()) {
            Ok(job) => job,
            Err(e) => {
                return Outcome::Undecodable {
                    error: format!("undecodable payload for job {:?}: {e}", J::NAME),
                };
            }
        };
        let timeout = job.timeout();
        let run = AssertUnwindSafe(tokio::time::timeout(timeout, job.handle(ctx)))
            .catch_unwind()
            .await;
        let error = match run {
            Ok(Ok(Ok(()))) => return Outcome::Done,
            Ok(Ok(Err(e))) => format!("{e:#}"),
            Ok(Err(_)) => format!("timed out after {timeout:?}"),
            Err(panic) => format!("panicked: {}", panic_message(&*panic)),
        };
        if attempt <= job.max_retries() {
            return Outcome::Retry {
                delay: job.backoff(attempt),
                error,
            };
        }
        // Exhausted: failed() once, on the job deserialized from its payload.
        let fresh: J = serde_json::from_str(data.get()).unwrap_or(job);
        let callback = AssertUnwindSafe(tokio::time::timeout(timeout, fresh.failed(ctx, &error)))
            .catch_unwind()
            .await;
        match callback {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => {
                tracing::error!(error = %format!("{e:#}"), "job failed() callback returned an error")
            }
            Ok(Err(_)) => tracing::error!(?timeout, "job failed() callback timed out"),
            Err(panic) => {
                tracing::error!(panic = %panic_message(&*panic), "job failed() callback panicked")
            }
        }
        Outcome::Failed { error }
    }
}

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

#[derive(Default)]
struct Counters {
    processed: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    queue_depth: AtomicU64,
}

struct Registered {
    handler: Arc<dyn Handler>,
    processed: metrics::Counter,
    failed: metrics::Counter,
    retried: metrics::Counter,
}

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
/// use core_db::infra::db::Database;
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
        Self {
            queue,
            context,
            handlers: HashMap::new(),
            queues: Vec::new(),
            duplicate: None,
            concurrency: 16,
            grace: Duration::from_secs(30),
            lease: Duration::from_secs(30),
            block: Duration::from_secs(1),
            pending_interval: Duration::from_secs(2),
            store,
        }
    }

    /// Registers job type `J` (and listens on `J::QUEUE`). Two types with one `NAME` make the
    /// worker fail at start-up with [`Error::DuplicateJob`].
    pub fn register<J: Job>(mut self) -> Self {
        if self.handlers.contains_key(J::NAME) {
            self.duplicate.get_or_insert(J::NAME);
        } else {
            self.handlers
                .insert(J::NAME, Arc::new(JobShim::<J>(PhantomData)));
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

    /// How many jobs run at once (default 16).
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

    /// How long a claimed job stays leased without being extended (default 30 s). The worker
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
                let reg = Registered {
                    handler,
                    processed: metrics::counter!("rustforge_jobs_processed_total", "job" => name),
                    failed: metrics::counter!("rustforge_jobs_failed_total", "job" => name),
                    retried: metrics::counter!("rustforge_jobs_retried_total", "job" => name),
                };
                (name, reg)
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
            inflight: Mutex::new(HashMap::new()),
            seq: AtomicU64::new(0),
            ack_tx,
            concurrency: self.concurrency,
            grace: self.grace,
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        // Turns true when the worker has stopped; its sender is dropped (closing the channel)
        // also when the task panics or is dropped with its runtime.
        let (stopped_tx, stopped_rx) = watch::channel(false);
        tokio::spawn(rt.clone().run(stop_rx, ack_rx).map(move |()| {
            let _ = stopped_tx.send(true);
        }));
        Ok(WorkerHandle {
            rt,
            stop: stop_tx,
            stopped: stopped_rx,
        })
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
        let signals = ShutdownSignals::install_in_runtime();
        async move {
            let signals = signals
                .unwrap_or_else(ShutdownSignals::install)
                .map_err(Error::Signal)?;
            self.run_until(signals.recv()).await
        }
    }
}

/// Completes on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
///
/// Called inside a Tokio runtime, it listens from the moment it is called, so a signal that
/// arrives before the future is first polled is not lost. When the handlers cannot be
/// installed the error is logged and the future completes at once.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    let signals = ShutdownSignals::install_in_runtime();
    async move {
        match signals.unwrap_or_else(ShutdownSignals::install) {
            Ok(signals) => signals.recv().await,
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGINT and SIGTERM; shutting down");
            }
        }
    }
}

/// SIGINT and SIGTERM listeners, registered when they are created: a signal that arrives
/// before [`recv`](Self::recv) is polled is kept for it.
struct ShutdownSignals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    /// Registers the listeners. Needs a Tokio runtime with signals enabled.
    fn install() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// [`install`](Self::install) now when called inside a Tokio runtime; `None` outside one
    /// (the caller installs on its first poll, which runs inside one).
    fn install_in_runtime() -> Option<std::io::Result<Self>> {
        tokio::runtime::Handle::try_current()
            .ok()
            .map(|_| Self::install())
    }

    /// Completes on the first signal received since the listeners were installed.
    async fn recv(self) {
        #[cfg(unix)]
        {
            let Self {
                mut interrupt,
                mut terminate,
            } = self;
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// A running worker, from [`Worker::spawn`].
pub struct WorkerHandle {
    rt: Arc<Runtime>,
    stop: watch::Sender<bool>,
    stopped: watch::Receiver<bool>,
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
        let _ = self.stop.send(true);
        let mut stopped = self.stopped.clone();
        // An error means the worker's task is gone: stopped as well.
        let _ = stopped.wait_for(|stopped| *stopped).await;
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

enum AckMsg {
    Ack(usize, Arc<str>),
    Flush(oneshot::Sender<()>),
}

struct InFlight {
    queue: usize,
    env: Arc<str>,
    abort: Option<AbortHandle>,
    /// Whether this worker still holds the job's lease (shared with the run's context).
    lease: Arc<LeaseState>,
}

struct Runtime {
    driver: Driver,
    ctx: JobContext,
    handlers: HashMap<&'static str, Registered>,
    queues: Vec<String>,
    depth_gauges: Vec<metrics::Gauge>,
    worker_id: String,
    lease: Duration,
    block: Duration,
    pending_interval: Duration,
    store: Option<FailedJobs>,
    counters: Counters,
    inflight: Mutex<HashMap<u64, InFlight>>,
    seq: AtomicU64,
    ack_tx: mpsc::UnboundedSender<AckMsg>,
    concurrency: usize,
    grace: Duration,
}

enum Claimer {
    Memory(MemoryClaimer),
    Redis(Box<RedisClaimer>),
}

impl Claimer {
    async fn claim(
        &mut self,
        max: usize,
        lease: Duration,
        wait: Duration,
    ) -> Result<Vec<Arc<str>>> {
        match self {
            Self::Memory(c) => c.claim(max, lease, wait).await,
            Self::Redis(c) => c.claim(max, lease, wait).await,
        }
    }

    async fn release(&mut self) -> Result<()> {
        match self {
            Self::Memory(c) => c.release().await,
            Self::Redis(c) => c.release().await,
        }
    }
}

impl Runtime {
    async fn run(
        self: Arc<Self>,
        mut stop: watch::Receiver<bool>,
        ack_rx: mpsc::UnboundedReceiver<AckMsg>,
    ) {
        let sem = Arc::new(Semaphore::new(self.concurrency));
        let acker = tokio::spawn(self.clone().ack_loop(ack_rx));
        // Lease extension has a task of its own, so that nothing else (a slow failed_jobs
        // write, a slow promotion) can delay it past the lease; pending failures too.
        let (maint_stop_tx, maint_stop_rx) = watch::channel(false);
        let maintenance = [
            tokio::spawn(self.clone().lease_loop(maint_stop_rx.clone())),
            tokio::spawn(self.clone().maintenance_loop(maint_stop_rx.clone())),
        ];
        let mut pending = tokio::spawn(self.clone().pending_loop(maint_stop_rx));
        let claimers: Vec<_> = (0..self.queues.len())
            .map(|qi| tokio::spawn(self.clone().claim_loop(qi, sem.clone(), stop.clone())))
            .collect();
        tracing::info!(worker = %self.worker_id, queues = ?self.queues, concurrency = self.concurrency, "worker started");
        while !*stop.borrow() {
            if stop.changed().await.is_err() {
                break;
            }
        }
        for c in claimers {
            let _ = c.await;
        }
        // Wait for running jobs, up to the grace period.
        let all = u32::try_from(self.concurrency).unwrap_or(u32::MAX);
        let drained = tokio::time::timeout(self.grace, sem.acquire_many(all))
            .await
            .is_ok();
        if !drained {
            let left: Vec<AbortHandle> = {
                let map = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
                map.values().filter_map(|f| f.abort.clone()).collect()
            };
            tracing::warn!(
                worker = %self.worker_id,
                jobs = left.len(),
                "grace period over: leaving running jobs to lease recovery"
            );
            for a in left {
                a.abort();
            }
        }
        let (tx, rx) = oneshot::channel();
        if self.ack_tx.send(AckMsg::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
        acker.abort();
        let _ = maint_stop_tx.send(true);
        for task in maintenance {
            let _ = task.await;
        }
        // A flush stuck on a slow `failed_jobs` does not hold up shutdown for long: what it
        // has not written stays in the queue for the next worker (a row written at the very
        // moment of the abort may be written twice; its lock expires by its TTL).
        if tokio::time::timeout(Duration::from_secs(2), &mut pending)
            .await
            .is_err()
        {
            pending.abort();
        }
        tracing::info!(worker = %self.worker_id, "worker stopped");
    }

    async fn connect_claimer(&self, qi: usize) -> Result<Claimer> {
        let q = &self.queues[qi];
        Ok(match &self.driver {
            Driver::Memory(d) => Claimer::Memory(d.claimer(q, &self.worker_id, self.lease).await?),
            Driver::Redis(d) => {
                Claimer::Redis(Box::new(d.claimer(q, &self.worker_id, self.lease).await?))
            }
        })
    }

    async fn claim_loop(
        self: Arc<Self>,
        qi: usize,
        sem: Arc<Semaphore>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut pause = Duration::from_millis(50);
        let mut claimer: Option<Claimer> = None;
        loop {
            if *stop.borrow() {
                break;
            }
            if claimer.is_none() {
                match self.connect_claimer(qi).await {
                    Ok(c) => claimer = Some(c),
                    Err(e) => {
                        tracing::error!(error = %e, queue = %self.queues[qi], "cannot start claiming; retrying");
                        if wait_or_stop(&mut stop, pause).await {
                            break;
                        }
                        pause = (pause * 2).min(Duration::from_secs(5));
                        continue;
                    }
                }
            }
            let c = claimer.as_mut().expect("connected above");
            let mut permit = tokio::select! {
                p = sem.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                _ = stop.changed() => break,
            };
            let extra = sem.available_permits();
            if extra > 0
                && let Ok(more) = sem
                    .clone()
                    .try_acquire_many_owned(u32::try_from(extra).unwrap_or(u32::MAX))
            {
                permit.merge(more);
            }
            let n = permit.num_permits();
            // Non-blocking first, for as many jobs as there are free slots (never cancelled, so
            // no claim is lost), then a blocking wait that shutdown may cancel: what it moved is
            // recovered from the processing list. The blocking wait holds one slot only, so the
            // worker's other queues can claim meanwhile; the next round takes a batch again.
            let claimed = match c.claim(n, self.lease, Duration::ZERO).await {
                Ok(jobs) if jobs.is_empty() => {
                    if n > 1 {
                        drop(permit.split(n - 1));
                    }
                    tokio::select! {
                        r = c.claim(1, self.lease, self.block) => r,
                        _ = stop.changed() => break,
                    }
                }
                other => other,
            };
            match claimed {
                Ok(jobs) => {
                    pause = Duration::from_millis(50);
                    for env in jobs {
                        let Some(p) = permit.split(1) else { break };
                        self.start(qi, env, p);
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, queue = %self.queues[qi], "claim failed; retrying");
                    drop(permit);
                    if wait_or_stop(&mut stop, pause).await {
                        break;
                    }
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
        if let Some(mut c) = claimer
            && let Err(e) = c.release().await
        {
            tracing::warn!(error = %e, "could not release the claimer at shutdown");
        }
    }

    fn start(self: &Arc<Self>, qi: usize, env: Arc<str>, permit: OwnedSemaphorePermit) {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let lease = Arc::new(LeaseState::default());
        self.inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                seq,
                InFlight {
                    queue: qi,
                    env: env.clone(),
                    abort: None,
                    lease: lease.clone(),
                },
            );
        let rt = self.clone();
        let task = tokio::spawn(async move {
            rt.execute(qi, env, lease).await;
            rt.inflight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&seq);
            drop(permit);
        });
        if let Some(f) = self
            .inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&seq)
        {
            f.abort = Some(task.abort_handle());
        }
    }

    async fn execute(self: &Arc<Self>, qi: usize, env: Arc<str>, lease: Arc<LeaseState>) {
        let queue = self.queues[qi].as_str();
        let e = match Envelope::decode(&env) {
            Ok(e) => e,
            Err(err) => {
                tracing::error!(queue, error = %err, "undecodable job envelope");
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                let record = FailureRecord {
                    job_id: String::new(),
                    job_name: UNDECODABLE_ENVELOPE.to_owned(),
                    queue: queue.to_owned(),
                    payload: env.to_string(),
                    error: format!("undecodable job envelope: {err}"),
                    attempts: 0,
                    group_id: None,
                    failed_at: Utc::now(),
                };
                self.fail(qi, &env, None, record).await;
                return;
            }
        };
        let attempt = e.attempt + 1;
        let span = tracing::info_span!("job", name = %e.job, id = %e.id, attempt, queue);
        self.execute_envelope(qi, &env, e, lease)
            .instrument(span)
            .await;
    }

    async fn execute_envelope(
        self: &Arc<Self>,
        qi: usize,
        env: &Arc<str>,
        mut e: Envelope,
        lease: Arc<LeaseState>,
    ) {
        let queue = self.queues[qi].as_str();
        let attempt = e.attempt + 1;
        let group = e.group.clone();
        let grouped = group.as_deref().map(|g| (g, e.id.as_str()));
        let Some(reg) = self.handlers.get(e.job.as_str()) else {
            tracing::error!("unknown job name: no handler registered on this worker");
            self.counters.failed.fetch_add(1, Ordering::Relaxed);
            let record = self.record(
                &e,
                format!("unknown job name {:?}: no handler registered", e.job),
                e.attempt,
            );
            self.fail(qi, env, grouped, record).await;
            self.unlock(&e).await;
            return;
        };
        let ctx = self.ctx.for_run(RunInfo {
            id: e.id.clone().into(),
            name: e.job.clone(),
            queue: queue.to_owned(),
            attempt,
            lease: lease.clone(),
        });
        let outcome = reg.handler.run(&e.data, &ctx, attempt).await;
        if lease.is_lost() {
            // The job was recovered and may be running elsewhere: acknowledging, retrying or
            // failing it from here could end (or double) the run that now holds the lease.
            tracing::warn!(
                "the job's lease was lost while it ran; its outcome is discarded here (the run holding the lease decides)"
            );
            // Nor is the overlap lock released: the run holding the lease releases it.
            return;
        }
        match outcome {
            Outcome::Done => {
                self.counters.processed.fetch_add(1, Ordering::Relaxed);
                reg.processed.increment(1);
                if grouped.is_some() {
                    self.finish(qi, env, grouped, None).await;
                } else {
                    let _ = self.ack_tx.send(AckMsg::Ack(qi, env.clone()));
                }
                self.unlock(&e).await;
            }
            Outcome::Retry { error, delay } => {
                self.counters.retried.fetch_add(1, Ordering::Relaxed);
                reg.retried.increment(1);
                tracing::warn!(%error, ?delay, "job attempt failed; retrying");
                e.attempt = attempt;
                let new = e.encode();
                let mut pause = Duration::from_millis(50);
                for _ in 0..5 {
                    match drive!(&self.driver, d => d.retry(queue, env, new.clone(), delay).await) {
                        Ok(_) => return,
                        Err(err) => {
                            tracing::error!(error = %err, "could not schedule the retry; trying again");
                            tokio::time::sleep(pause).await;
                            pause *= 2;
                        }
                    }
                }
                tracing::error!(
                    "could not schedule the retry; the job returns when its lease expires"
                );
            }
            Outcome::Failed { error } => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                reg.failed.increment(1);
                tracing::error!(%error, "job failed after its last attempt");
                let record = self.record(&e, error, attempt);
                self.fail(qi, env, grouped, record).await;
                self.unlock(&e).await;
            }
            Outcome::Undecodable { error } => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                reg.failed.increment(1);
                tracing::error!(%error, "undecodable job payload");
                let record = self.record(&e, error, e.attempt);
                self.fail(qi, env, grouped, record).await;
                self.unlock(&e).await;
            }
        }
    }

    fn record(&self, e: &Envelope, error: String, attempts: u32) -> FailureRecord {
        FailureRecord {
            job_id: e.id.clone(),
            job_name: e.job.clone(),
            queue: e.queue.clone(),
            payload: e.data.get().to_owned(),
            error,
            attempts,
            group_id: e.group.clone(),
            failed_at: Utc::now(),
        }
    }

    /// Releases the scheduler's overlap lock once the job has finished.
    async fn unlock(&self, e: &Envelope) {
        let Some((name, token)) = &e.unlock else {
            return;
        };
        let Some(cache) = self.ctx.cache_opt() else {
            tracing::warn!(lock = %name, "job holds an overlap lock but the worker has no cache; it expires by its TTL");
            return;
        };
        let lock = cache.lock_with_owner(name.clone(), Duration::from_secs(1), token.clone());
        if let Err(err) = lock.release().await {
            tracing::warn!(lock = %name, error = %err, "could not release the overlap lock; it expires by its TTL");
        }
    }

    /// Writes the failure (or keeps it in the queue when the store is unreachable) and ends the
    /// job's lease.
    async fn fail(
        &self,
        qi: usize,
        env: &Arc<str>,
        group: Option<(&str, &str)>,
        record: FailureRecord,
    ) {
        let written = match &self.store {
            Some(store) => match store.record(&record).await {
                Ok(_) => true,
                Err(err) => {
                    tracing::error!(error = %err, "failed_jobs unreachable; keeping the failure in the queue");
                    false
                }
            },
            None => false,
        };
        let parked =
            (!written).then(|| serde_json::to_string(&record).expect("a record serializes"));
        self.finish(qi, env, group, parked.as_deref()).await;
    }

    async fn finish(
        &self,
        qi: usize,
        env: &Arc<str>,
        group: Option<(&str, &str)>,
        record: Option<&str>,
    ) {
        let queue = self.queues[qi].as_str();
        let mut pause = Duration::from_millis(50);
        for _ in 0..6 {
            match drive!(&self.driver, d => d.finish(queue, env, group, record).await) {
                Ok(_) => return,
                Err(err) => {
                    tracing::error!(error = %err, "could not finish the job; trying again");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
            }
        }
        tracing::error!("could not finish the job; it returns when its lease expires");
    }

    async fn ack_loop(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<AckMsg>) {
        let mut per_queue: Vec<Vec<Arc<str>>> = vec![Vec::new(); self.queues.len()];
        let mut waiters = Vec::new();
        while let Some(first) = rx.recv().await {
            let mut next = Some(first);
            let mut n = 0;
            while let Some(msg) = next {
                match msg {
                    AckMsg::Ack(qi, env) => {
                        per_queue[qi].push(env);
                        n += 1;
                    }
                    AckMsg::Flush(tx) => waiters.push(tx),
                }
                next = if n < 2000 { rx.try_recv().ok() } else { None };
            }
            for (qi, envs) in per_queue.iter_mut().enumerate() {
                if envs.is_empty() {
                    continue;
                }
                let queue = self.queues[qi].as_str();
                let mut pause = Duration::from_millis(20);
                for attempt in 0..6 {
                    match drive!(&self.driver, d => d.ack(queue, envs).await) {
                        Ok(()) => break,
                        Err(err) if attempt < 5 => {
                            tracing::warn!(error = %err, "ack failed; trying again");
                            tokio::time::sleep(pause).await;
                            pause *= 2;
                        }
                        Err(err) => {
                            tracing::error!(error = %err, jobs = envs.len(), "ack failed; those jobs run again when their leases expire")
                        }
                    }
                }
                envs.clear();
            }
            for w in waiters.drain(..) {
                let _ = w.send(());
            }
        }
    }

    /// Extends the leases of running jobs every third of the lease, and nothing else.
    async fn lease_loop(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let every = self.lease / 3;
        let mut next = Instant::now() + every;
        loop {
            let wait = next.saturating_duration_since(Instant::now());
            if wait_or_stop(&mut stop, wait).await {
                break;
            }
            next = Instant::now() + every;
            self.extend_leases().await;
        }
    }

    /// Writes failures kept in the queue to `failed_jobs`, every `pending_interval`.
    async fn pending_loop(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            self.flush_pending().await;
            if wait_or_stop(&mut stop, self.pending_interval).await {
                break;
            }
        }
    }

    /// Promotes due delayed jobs, recovers expired leases and samples queue depths.
    async fn maintenance_loop(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let now = Instant::now();
        let mut next_reap = now;
        let mut next_stats = now;
        loop {
            // Promote due delayed jobs; sleep until the next is due, 50 ms at most.
            let mut sleep = Duration::from_millis(50);
            for q in &self.queues {
                match drive!(&self.driver, d => d.promote(q).await) {
                    Ok(Some(next)) => sleep = sleep.min(next),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, queue = %q, "promoting delayed jobs failed")
                    }
                }
            }
            let now = Instant::now();
            if now >= next_reap {
                next_reap = now + Duration::from_secs(1);
                for q in &self.queues {
                    match drive!(&self.driver, d => d.reap(q).await) {
                        Ok(0) => {}
                        Ok(n) => {
                            tracing::warn!(queue = %q, jobs = n, "recovered jobs whose lease expired")
                        }
                        Err(e) => tracing::warn!(error = %e, queue = %q, "lease recovery failed"),
                    }
                }
            }
            if now >= next_stats {
                next_stats = now + Duration::from_secs(1);
                let mut depth = 0;
                for (i, q) in self.queues.iter().enumerate() {
                    if let Ok(s) = self.queue_stats(q).await {
                        self.depth_gauges[i].set(s.ready as f64);
                        depth += s.ready;
                    }
                }
                self.counters.queue_depth.store(depth, Ordering::Relaxed);
            }
            if wait_or_stop(&mut stop, sleep.max(Duration::from_millis(1))).await {
                break;
            }
        }
    }

    async fn queue_stats(&self, q: &str) -> Result<crate::queue::QueueStats> {
        drive!(&self.driver, d => d.stats(q).await)
    }

    async fn extend_leases(&self) {
        let mut per_queue: Vec<Vec<(Arc<str>, Arc<LeaseState>)>> =
            vec![Vec::new(); self.queues.len()];
        {
            let map = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
            for f in map.values() {
                per_queue[f.queue].push((f.env.clone(), f.lease.clone()));
            }
        }
        for (qi, jobs) in per_queue.iter().enumerate() {
            let q = self.queues[qi].as_str();
            let envs: Vec<Arc<str>> = jobs.iter().map(|(env, _)| env.clone()).collect();
            match drive!(&self.driver, d => d.extend(q, &self.worker_id, &envs, self.lease).await) {
                Ok(lost) if lost.is_empty() => {}
                Ok(lost) => {
                    let map = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
                    for (env, lease) in jobs.iter().filter(|(env, _)| lost.contains(env)) {
                        // A job that ended meanwhile (its ack removed the lease) is not lost.
                        let running = map.values().any(|f| Arc::ptr_eq(&f.lease, lease));
                        if running && !lease.is_lost() {
                            tracing::warn!(queue = %q, envelope = %env, "lost the lease of a running job (not extended in time); it may run elsewhere meanwhile");
                            lease.mark_lost();
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, queue = %q, "extending leases failed"),
            }
        }
    }

    /// Writes failures kept in the queue to the store. Bounded: each write has the store's
    /// timeout, and one flush stops after [`FLUSH_BUDGET`] (well within the lock's TTL), so a
    /// slow `failed_jobs` only delays the next flush.
    async fn flush_pending(&self) {
        let Some(store) = &self.store else { return };
        for q in &self.queues {
            let q = q.as_str();
            let token = match drive!(&self.driver, d => d.lock_pending(q, FLUSH_LOCK_TTL).await) {
                Ok(Some(token)) => token,
                _ => continue,
            };
            let deadline = Instant::now() + FLUSH_BUDGET;
            'batches: while Instant::now() < deadline {
                let records = match drive!(&self.driver, d => d.pending_failures(q, 100).await) {
                    Ok(r) if !r.is_empty() => r,
                    _ => break,
                };
                for raw in records {
                    if Instant::now() >= deadline {
                        break 'batches;
                    }
                    match serde_json::from_str::<FailureRecord>(&raw) {
                        Ok(record) => {
                            if let Err(e) = store.record(&record).await {
                                tracing::debug!(error = %e, "failed_jobs still unreachable");
                                break 'batches;
                            }
                        }
                        Err(e) => {
                            tracing::error!(error = %e, record = %raw, "dropping an unreadable pending failure")
                        }
                    }
                    if let Err(e) = drive!(&self.driver, d => d.remove_pending(q, &raw).await) {
                        tracing::warn!(error = %e, "could not remove a written pending failure");
                        break 'batches;
                    }
                }
            }
            let _ = drive!(&self.driver, d => d.unlock_pending(q, &token).await);
        }
    }
}

/// How long one worker may hold a queue's pending-failures lock.
const FLUSH_LOCK_TTL: Duration = Duration::from_secs(60);

/// How long one flush of pending failures may write before it yields to the next one.
const FLUSH_BUDGET: Duration = Duration::from_secs(20);

/// Sleeps for `d`; true when `stop` was set (or its sender dropped) meanwhile.
async fn wait_or_stop(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        () = tokio::time::sleep(d) => *stop.borrow(),
        r = stop.changed() => r.is_err() || *stop.borrow(),
    }
}
