//! [`JobContext`]: what a handler gets besides its job — the database, the cache, the queue,
//! the job's id and attempt, and typed extensions for application state.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use core_db::Cache;
use core_db::Database;

use crate::error::{Error, Result};
use crate::job::JobId;
use crate::queue::Queue;

/// What a job's [`handle`](crate::Job::handle) and [`failed`](crate::Job::failed) get.
///
/// Build one per worker with [`JobContext::new`] and the `with_*` methods; the worker hands each
/// run a copy that also knows the job's id, name, queue and attempt. Cloning is cheap (the shared
/// part is behind an `Arc`).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> core_jobs::Result<()> {
/// use core_db::Cache;
/// use core_jobs::{JobContext, Queue};
///
/// #[derive(Debug)]
/// struct Mailer {
///     from: String,
/// }
///
/// let ctx = JobContext::new(Queue::memory())
///     .with_cache(Cache::memory("app"))
///     .with_extension(Mailer { from: "noreply@example.com".into() });
/// assert_eq!(ctx.ext::<Mailer>().unwrap().from, "noreply@example.com");
/// assert!(ctx.db().is_err(), "no database was configured");
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct JobContext {
    shared: Arc<Shared>,
    run: Option<Arc<RunInfo>>,
}

struct Shared {
    queue: Queue,
    db: Option<Database>,
    cache: Option<Cache>,
    extensions: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

/// Per-run facts.
#[derive(Debug)]
pub(crate) struct RunInfo {
    pub(crate) id: JobId,
    pub(crate) name: String,
    pub(crate) queue: String,
    pub(crate) attempt: u32,
    pub(crate) lease: Arc<LeaseState>,
}

/// Whether the worker still holds a run's lease; shared by the worker and the run's context.
#[derive(Debug, Default)]
pub(crate) struct LeaseState {
    lost: AtomicBool,
    notify: tokio::sync::Notify,
}

impl LeaseState {
    /// Marks the lease as lost and wakes whoever waits in [`JobContext::lease_lost_notified`].
    pub(crate) fn mark_lost(&self) {
        self.lost.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Whether the lease was found lost.
    pub(crate) fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }
}

impl fmt::Debug for JobContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobContext")
            .field("queue", &self.shared.queue)
            .field("db", &self.shared.db.as_ref().map(|d| d.backend()))
            .field("cache", &self.shared.cache.is_some())
            .field("extensions", &self.shared.extensions.len())
            .field("run", &self.run)
            .finish()
    }
}

impl JobContext {
    /// A context over `queue`, with no database, cache or extensions yet.
    #[must_use]
    pub fn new(queue: Queue) -> Self {
        Self {
            shared: Arc::new(Shared {
                queue,
                db: None,
                cache: None,
                extensions: HashMap::new(),
            }),
            run: None,
        }
    }

    fn shared_mut(&mut self) -> &mut Shared {
        // Builders run before any clone is handed out; if one was, copy on write.
        if Arc::get_mut(&mut self.shared).is_none() {
            let s = &self.shared;
            self.shared = Arc::new(Shared {
                queue: s.queue.clone(),
                db: s.db.clone(),
                cache: s.cache.clone(),
                extensions: s.extensions.clone(),
            });
        }
        Arc::get_mut(&mut self.shared).expect("unique after copy")
    }

    /// Adds the database handlers reach with [`db`](Self::db). The worker also writes
    /// `failed_jobs` rows there unless it was given another store.
    #[must_use]
    pub fn with_database(mut self, db: Database) -> Self {
        self.shared_mut().db = Some(db);
        self
    }

    /// Adds the cache handlers reach with [`cache`](Self::cache). The scheduler's
    /// `without_overlapping` locks are released through it, so give workers the same cache as
    /// the scheduler.
    #[must_use]
    pub fn with_cache(mut self, cache: Cache) -> Self {
        self.shared_mut().cache = Some(cache);
        self
    }

    /// Adds a typed extension (application state: a mailer, an HTTP client, config); one value
    /// per type, read back with [`ext`](Self::ext).
    #[must_use]
    pub fn with_extension<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.shared_mut()
            .extensions
            .insert(TypeId::of::<T>(), Arc::new(value));
        self
    }

    /// The database.
    ///
    /// # Errors
    /// [`Error::NotConfigured`] when the context was built without one.
    pub fn db(&self) -> Result<&Database> {
        self.shared
            .db
            .as_ref()
            .ok_or(Error::NotConfigured("database"))
    }

    /// The cache.
    ///
    /// # Errors
    /// [`Error::NotConfigured`] when the context was built without one.
    pub fn cache(&self) -> Result<&Cache> {
        self.shared
            .cache
            .as_ref()
            .ok_or(Error::NotConfigured("cache"))
    }

    /// The queue, so jobs can dispatch jobs.
    pub fn queue(&self) -> &Queue {
        &self.shared.queue
    }

    /// The extension of type `T`, if one was added.
    pub fn ext<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.shared
            .extensions
            .get(&TypeId::of::<T>())
            .and_then(|v| v.downcast_ref::<T>())
    }

    /// The running job's id (`None` outside a run).
    pub fn job_id(&self) -> Option<&JobId> {
        self.run.as_ref().map(|r| &r.id)
    }

    /// The running job's `NAME` (`None` outside a run).
    pub fn job_name(&self) -> Option<&str> {
        self.run.as_ref().map(|r| r.name.as_str())
    }

    /// The queue the running job was claimed from (`None` outside a run).
    pub fn queue_name(&self) -> Option<&str> {
        self.run.as_ref().map(|r| r.queue.as_str())
    }

    /// The attempt number of this run: 1 for the first run, 2 for the first retry, … (0
    /// outside a run).
    pub fn attempt(&self) -> u32 {
        self.run.as_ref().map_or(0, |r| r.attempt)
    }

    /// Whether the worker found that it no longer holds this run's lease: it was not extended
    /// in time (the worker was stalled, or the queue unreachable for longer than the lease) and
    /// the job was recovered, so another worker may be running it now. A handler doing long
    /// work should check it (or await [`lease_lost_notified`](Self::lease_lost_notified))
    /// between steps and stop early: whatever it returns after that is not acknowledged,
    /// retried or written to `failed_jobs` by this worker; the run that holds the lease
    /// decides. Always false outside a run.
    ///
    /// Detection is after the fact (the worker checks each time it extends leases, every third
    /// of the lease), so it narrows the overlap of two runs but cannot close it: jobs must stay
    /// idempotent (delivery is at least once).
    pub fn lease_lost(&self) -> bool {
        self.run.as_ref().is_some_and(|r| r.lease.is_lost())
    }

    /// Completes once [`lease_lost`](Self::lease_lost) turns true; never outside a run. Use it
    /// in a `tokio::select!` to abandon long work whose lease was lost.
    pub async fn lease_lost_notified(&self) {
        let Some(run) = &self.run else {
            return std::future::pending().await;
        };
        loop {
            let notified = run.lease.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if run.lease.is_lost() {
                return;
            }
            notified.await;
        }
    }

    pub(crate) fn for_run(&self, run: RunInfo) -> Self {
        Self {
            shared: self.shared.clone(),
            run: Some(Arc::new(run)),
        }
    }

    pub(crate) fn database(&self) -> Option<&Database> {
        self.shared.db.as_ref()
    }

    pub(crate) fn cache_opt(&self) -> Option<&Cache> {
        self.shared.cache.as_ref()
    }
}
