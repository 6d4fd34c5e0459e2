//! [`Scheduler`]: dispatches jobs on cron expressions with seconds.
//!
//! Each tick is dispatched with a unique key `schedule:{name}:{tick}` checked atomically with the
//! dispatch, so however many scheduler processes run (on the Redis queue), each tick is
//! dispatched exactly once. [`ScheduledJob::without_overlapping`] takes a cache lock before
//! dispatching and skips the tick while the previous run still holds it; the worker releases the
//! lock when the job finishes (success or final failure), and the lock's TTL is the safety net
//! for a worker that died.

mod cron;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use core_db::Cache;
use core_db::shutdown::Shutdown;
use tokio_util::sync::CancellationToken;

pub use self::cron::Cron;
use crate::error::{Error, Result};
use crate::job::{Job, JobId};
use crate::queue::{DispatchOptions, Queue};
use crate::shutdown::Background;

type DispatchFuture<'a> = Pin<Box<dyn Future<Output = Result<Option<JobId>>> + Send + 'a>>;
type Dispatcher =
    Arc<dyn for<'a> Fn(&'a Queue, DispatchOptions) -> DispatchFuture<'a> + Send + Sync>;
type Predicate = Arc<dyn Fn() -> bool + Send + Sync>;

/// One scheduled job: a cron expression, a job factory, and its conditions.
///
/// ```
/// # use core_jobs::{Job, JobContext};
/// # #[derive(Debug, serde::Serialize, serde::Deserialize)]
/// # struct PruneSessions;
/// # #[async_trait::async_trait]
/// # impl Job for PruneSessions {
/// #     const NAME: &'static str = "prune_sessions";
/// #     async fn handle(&self, _ctx: &JobContext) -> anyhow::Result<()> { Ok(()) }
/// # }
/// use std::time::Duration;
/// use core_jobs::schedule::ScheduledJob;
///
/// let every_5_min = ScheduledJob::new("0 */5 * * * *", || PruneSessions)?
///     .when(|| std::env::var("MAINTENANCE").is_err())
///     .without_overlapping_for(Duration::from_secs(600));
/// # let _ = every_5_min;
/// # Ok::<(), core_jobs::Error>(())
/// ```
#[must_use]
#[derive(Clone)]
pub struct ScheduledJob {
    name: String,
    cron: Cron,
    dispatch: Dispatcher,
    when: Option<Predicate>,
    overlap_ttl: Option<Duration>,
}

impl fmt::Debug for ScheduledJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScheduledJob")
            .field("name", &self.name)
            .field("cron", &self.cron)
            .field("when", &self.when.is_some())
            .field("overlap_ttl", &self.overlap_ttl)
            .finish()
    }
}

impl ScheduledJob {
    /// Dispatches the job `make()` returns on every tick of `cron`. The entry is named after
    /// `J::NAME`; use [`name`](Self::name) when one job type is scheduled twice.
    ///
    /// # Errors
    /// An invalid cron expression.
    pub fn new<J, F>(cron: &str, make: F) -> Result<Self>
    where
        J: Job,
        F: Fn() -> J + Send + Sync + 'static,
    {
        let cron = Cron::parse(cron)?;
        let dispatch: Dispatcher = Arc::new(move |queue: &Queue, options: DispatchOptions| {
            let job = make();
            Box::pin(async move { queue.dispatch_with(&job, options).await })
        });
        Ok(Self {
            name: J::NAME.to_owned(),
            cron,
            dispatch,
            when: None,
            overlap_ttl: None,
        })
    }

    /// Names the entry (its tick keys and overlap lock use the name).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Dispatches a tick only when `predicate` returns true at that moment.
    pub fn when<P: Fn() -> bool + Send + Sync + 'static>(mut self, predicate: P) -> Self {
        self.when = Some(Arc::new(predicate));
        self
    }

    /// Skips ticks while the previous run has not finished; the lock lives at most one hour
    /// if its worker dies.
    pub fn without_overlapping(self) -> Self {
        self.without_overlapping_for(Duration::from_secs(3600))
    }

    /// As [`without_overlapping`](Self::without_overlapping), with the lock's TTL (choose it
    /// longer than the job can run).
    pub fn without_overlapping_for(mut self, ttl: Duration) -> Self {
        self.overlap_ttl = Some(ttl);
        self
    }

    /// The cron expression.
    pub fn cron(&self) -> &Cron {
        &self.cron
    }

    /// The entry's name: the job's `NAME`, unless [`name`](Self::name) gave another.
    pub fn entry_name(&self) -> &str {
        &self.name
    }

    /// Whether ticks are skipped while the previous run has not finished.
    pub fn is_without_overlapping(&self) -> bool {
        self.overlap_ttl.is_some()
    }
}

/// Runs [`ScheduledJob`]s: dispatches each tick once across every scheduler process.
///
/// ```no_run
/// # async fn example() -> core_jobs::Result<()> {
/// # use core_jobs::{Job, JobContext};
/// # #[derive(Debug, serde::Serialize, serde::Deserialize)]
/// # struct NightlyReport;
/// # #[async_trait::async_trait]
/// # impl Job for NightlyReport {
/// #     const NAME: &'static str = "nightly_report";
/// #     async fn handle(&self, _ctx: &JobContext) -> anyhow::Result<()> { Ok(()) }
/// # }
/// use core_db::Cache;
/// use core_jobs::schedule::{ScheduledJob, Scheduler};
/// use core_jobs::Queue;
///
/// let queue = Queue::redis("redis://127.0.0.1:6379", "app").await?;
/// let cache = Cache::redis("redis://127.0.0.1:6379", "app").await?;
/// let scheduler = Scheduler::new(queue)
///     .with_cache(cache)
///     .job(ScheduledJob::new("0 0 3 * * *", || NightlyReport)?.without_overlapping())
///     .spawn()?;
/// // ...
/// scheduler.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[must_use]
pub struct Scheduler {
    queue: Queue,
    cache: Option<Cache>,
    jobs: Vec<ScheduledJob>,
    shutdown: Option<Shutdown>,
}

impl fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scheduler")
            .field("queue", &self.queue)
            .field("jobs", &self.jobs)
            .finish()
    }
}

/// How long a tick's unique key lives: longer than any clock skew between schedulers.
const TICK_KEY_TTL: Duration = Duration::from_secs(600);

/// How late a tick may still be dispatched (a suspended process, a queue that was down): a
/// later one is skipped, not replayed.
const LATENESS: Duration = Duration::from_secs(60);

/// A tick of one job whose dispatch failed, retried until [`LATENESS`] has passed.
struct Retry {
    job: usize,
    tick: DateTime<Utc>,
    at: tokio::time::Instant,
    pause: Duration,
}

/// Whether `tick` is still within [`LATENESS`] at `now`.
fn in_time(tick: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    (now - tick).to_std().unwrap_or(Duration::ZERO) < LATENESS
}

impl Scheduler {
    /// A scheduler dispatching to `queue`.
    pub fn new(queue: Queue) -> Self {
        Self {
            queue,
            cache: None,
            jobs: Vec::new(),
            shutdown: None,
        }
    }

    /// The cache that holds `without_overlapping` locks; give workers the same cache (in
    /// their [`JobContext`](crate::JobContext)) so they can release them.
    pub fn with_cache(mut self, cache: Cache) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Stops the scheduler when `shutdown` is cancelled (as [`SchedulerHandle::shutdown`]
    /// does), after the pass it is in; [`Shutdown::wait`] waits for it.
    pub fn with_shutdown(mut self, shutdown: &Shutdown) -> Self {
        self.shutdown = Some(shutdown.clone());
        self
    }

    /// Adds a scheduled job.
    pub fn job(mut self, job: ScheduledJob) -> Self {
        self.jobs.push(job);
        self
    }

    /// The scheduled jobs, in the order they were added (for a status page such as the jobs
    /// dashboard's schedule).
    pub fn jobs(&self) -> &[ScheduledJob] {
        &self.jobs
    }

    /// Dispatches whatever is due at `tick` (a whole second) once; returns the ids this process
    /// dispatched (empty when another scheduler already did, a condition said no, or an
    /// overlap lock is held). The run loop calls this; tests may call it directly.
    ///
    /// # Errors
    /// The queue or the cache failed.
    pub async fn run_tick(&self, tick: DateTime<Utc>) -> Result<Vec<JobId>> {
        let mut ids = Vec::new();
        for job in self.jobs.iter().filter(|j| j.cron.matches(tick)) {
            if let Some(id) = self.fire(job, tick).await? {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    async fn fire(&self, job: &ScheduledJob, tick: DateTime<Utc>) -> Result<Option<JobId>> {
        if let Some(when) = &job.when
            && !when()
        {
            return Ok(None);
        }
        let key = format!("schedule:{}:{}", job.name, tick.timestamp());
        let mut options = DispatchOptions::new().unique(key, TICK_KEY_TTL);
        let mut lock = None;
        if let Some(ttl) = job.overlap_ttl {
            let cache = self.cache.as_ref().ok_or(Error::NotConfigured("cache"))?;
            let l = cache.lock(format!("schedule:{}", job.name), ttl);
            if !l.try_acquire().await? {
                tracing::debug!(job = %job.name, %tick, "previous run still going; tick skipped");
                return Ok(None);
            }
            options = options.unlock_when_done(l.name().to_owned(), l.token().to_owned());
            lock = Some(l);
        }
        let dispatched = (job.dispatch)(&self.queue, options).await;
        match (&dispatched, lock) {
            (Ok(Some(_)), _) => {}
            (_, Some(l)) => {
                // Another scheduler dispatched this tick (or the dispatch failed): not ours.
                let _ = l.release().await;
            }
            _ => {}
        }
        let id = dispatched?;
        if let Some(id) = &id {
            tracing::info!(job = %job.name, %tick, %id, "scheduled job dispatched");
        }
        Ok(id)
    }

    /// Runs the schedule in the background until the handle is shut down or dropped.
    ///
    /// # Errors
    /// [`Error::NotConfigured`] when a job is `without_overlapping` and there is no cache.
    pub fn spawn(mut self) -> Result<SchedulerHandle> {
        if self.cache.is_none() && self.jobs.iter().any(|j| j.overlap_ttl.is_some()) {
            return Err(Error::NotConfigured("cache"));
        }
        let shutdown = self.shutdown.take();
        Ok(SchedulerHandle {
            task: Background::spawn(shutdown.as_ref(), |stop| self.run_loop(stop)),
        })
    }

    /// Dispatches job `i`'s `tick`; on failure queues a retry (the tick's unique key makes a
    /// retry of a dispatch that did get through a no-op).
    async fn fire_or_retry(&self, i: usize, tick: DateTime<Utc>, retries: &mut Vec<Retry>) {
        let job = &self.jobs[i];
        if let Err(e) = self.fire(job, tick).await {
            tracing::warn!(error = %e, job = %job.name, %tick, "scheduled dispatch failed; retrying");
            let pause = Duration::from_millis(100);
            retries.push(Retry {
                job: i,
                tick,
                at: tokio::time::Instant::now() + pause,
                pause,
            });
        }
    }

    /// Retries the failed dispatches that are due; drops those past [`LATENESS`].
    async fn run_retries(&self, retries: &mut Vec<Retry>) {
        let mut left = Vec::new();
        for mut r in std::mem::take(retries) {
            let job = &self.jobs[r.job];
            if !in_time(r.tick, Utc::now()) {
                tracing::error!(job = %job.name, tick = %r.tick, "scheduled dispatch kept failing; tick dropped");
                continue;
            }
            if tokio::time::Instant::now() < r.at {
                left.push(r);
                continue;
            }
            match self.fire(job, r.tick).await {
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, job = %job.name, tick = %r.tick, "scheduled dispatch failed again; retrying");
                    r.pause = (r.pause * 2).min(Duration::from_secs(5));
                    r.at = tokio::time::Instant::now() + r.pause;
                    left.push(r);
                }
            }
        }
        *retries = left;
    }

    async fn run_loop(self, stop: CancellationToken) {
        let now = Utc::now();
        let mut next: Vec<Option<DateTime<Utc>>> =
            self.jobs.iter().map(|j| j.cron.next_after(now)).collect();
        let mut retries: Vec<Retry> = Vec::new();
        loop {
            let now = Utc::now();
            // Every tick of every job up to now, so that a pass slowed down (a dispatch that
            // waited for the queue) skips none; a tick more than LATENESS late (a suspended
            // process) is skipped, not replayed.
            let earliest =
                now - chrono::Duration::from_std(LATENESS).unwrap_or(chrono::Duration::seconds(60));
            for (i, slot) in next.iter_mut().enumerate() {
                while let Some(tick) = slot.filter(|t| *t <= now) {
                    if in_time(tick, now) {
                        self.fire_or_retry(i, tick, &mut retries).await;
                        *slot = self.jobs[i].cron.next_after(tick);
                    } else {
                        *slot = self.jobs[i].cron.next_after(tick.max(earliest));
                    }
                }
            }
            self.run_retries(&mut retries).await;
            let soonest = next.iter().flatten().min().copied();
            let mut wait = soonest
                .map(|t| (t - Utc::now()).to_std().unwrap_or(Duration::ZERO))
                .unwrap_or(Duration::from_secs(1))
                .min(Duration::from_secs(1));
            if let Some(r) = retries.iter().map(|r| r.at).min() {
                wait = wait.min(r.saturating_duration_since(tokio::time::Instant::now()));
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = stop.cancelled() => break,
            }
        }
    }
}

/// The running scheduler, from [`Scheduler::spawn`]. Dropping it stops the scheduler.
#[derive(Debug)]
pub struct SchedulerHandle {
    task: Background,
}

impl SchedulerHandle {
    /// Stops the scheduler and waits for it.
    pub async fn shutdown(self) {
        self.task.stop_and_wait().await;
    }
}
