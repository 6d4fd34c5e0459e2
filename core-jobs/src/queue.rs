//! [`Queue`]: one handle over the Redis reliable queue and the in-process queue.
//!
//! Both drivers keep the same structures, per queue name:
//!
//! - **ready**: jobs that may run now, in dispatch order;
//! - **leased**: claimed jobs with a lease deadline. A claim moves jobs from ready to leased in
//!   one atomic step; a worker extends the leases of the jobs it is running; once a lease has
//!   expired, any worker moves the job back to ready. Delivery is therefore **at least once**: a
//!   job whose worker died is run again, so handlers should be idempotent;
//! - **delayed**: jobs due later (`dispatch_in`, `dispatch_at`, retries), promoted to ready in
//!   one atomic step when due;
//! - **groups**: per group id, the jobs waiting behind the group's running job (FIFO, one at a
//!   time; a retry's backoff holds the group);
//! - **pending failures**: failures whose `failed_jobs` row could not be written yet.
//!
//! On Redis these live under `{prefix}:queue:{queue}:` (`ready`, `leases`, `delayed`,
//! `delayed-grouped`, `groups`, `group:{id}`, `grouped-waiting`, `processing:{worker}`,
//! `claimed:{worker}`, `workers`, `unique:{key}`, `failed-pending`) and nothing else is touched.
//! `grouped-waiting` counts the jobs in the `group:{id}` lists, so that [`Queue::stats`] costs
//! the same at any number of groups. Entries of `group:{id}` and `delayed-grouped` carry the
//! job's id and group in a short prefix before the envelope, so the scripts never decode a job's
//! JSON. Ordinary commands share one `ConnectionManager` (replaced when a reply times out); each
//! worker's blocking claim uses one dedicated connection per queue. [`Queue::running`] reads
//! the leased jobs without changing anything.
//! The in-process driver ([`Queue::memory`]) has the same semantics without durability across
//! restarts.
//!
//! Both drivers implement one crate-private contract, `queue::driver::Driver` (and `Claimer` for
//! a worker's claims); [`Queue`] holds an `Arc<dyn Driver>`, and the worker reaches a driver
//! only through it. The Redis driver's Lua scripts are files under `queue/redis/scripts/`, each
//! with a typed wrapper naming its KEYS and ARGV.

pub(crate) mod driver;
pub(crate) mod memory;
pub(crate) mod redis;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

pub(crate) use self::driver::{Claimer, Driver};
use crate::envelope::{Envelope, now_ms};
use crate::error::{Error, Result};
use crate::job::{Job, JobId};
use crate::stats::JobCounters;

/// How deeply a job's JSON payload may nest arrays and objects (a struct with a field is 1 level,
/// a list inside it 2, and so on). A dispatch of a deeper payload fails at once with an
/// [`Error::Json`] saying so, on every driver.
///
/// 128 is serde_json's own default recursion limit, so a deeper payload could not be
/// deserialized by the job's `Deserialize` either, and it stays far below what the Redis
/// driver's Lua (cjson, 1000 levels) could decode.
pub const MAX_PAYLOAD_DEPTH: usize = 128;

/// Fails when `payload` nests deeper than [`MAX_PAYLOAD_DEPTH`].
fn check_depth(name: &str, payload: &str) -> Result<()> {
    let depth = crate::envelope::json_depth(payload);
    if depth > MAX_PAYLOAD_DEPTH {
        return Err(Error::Json(
            <serde_json::Error as serde::ser::Error>::custom(format!(
                "the payload of job {name:?} nests {depth} levels deep; at most \
                 {MAX_PAYLOAD_DEPTH} are allowed (core_jobs::queue::MAX_PAYLOAD_DEPTH)"
            )),
        ));
    }
    Ok(())
}

/// Which driver a [`Queue`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueDriver {
    /// In-process ([`Queue::memory`]).
    Memory,
    /// Redis reliable queue ([`Queue::redis`]).
    Redis,
}

/// Options for [`Queue::dispatch_with`] (and [`Dispatch::dispatch_with`](crate::Dispatch)).
///
/// ```
/// use std::time::Duration;
/// use core_jobs::DispatchOptions;
///
/// let options = DispatchOptions::new()
///     .delay(Duration::from_secs(10))
///     .unique("report:2026-11-01", Duration::from_secs(3600));
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct DispatchOptions {
    pub(crate) when: When,
    pub(crate) unique: Option<(String, Duration)>,
    pub(crate) queue: Option<String>,
    pub(crate) id: Option<JobId>,
    pub(crate) unlock: Option<(String, String)>,
}

impl DispatchOptions {
    /// Run as soon as possible, on the job's own queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Run once `delay` has passed.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.when = When::In(delay);
        self
    }

    /// Run at `when` (at once if it is in the past).
    pub fn at(mut self, when: DateTime<Utc>) -> Self {
        self.when = When::At(when.timestamp_millis());
        self
    }

    /// Dispatch only if no job was dispatched with the same `key` on this queue within `ttl`;
    /// the check and the dispatch are one atomic step. Used by the scheduler so that several
    /// scheduler processes dispatch each tick once.
    pub fn unique(mut self, key: impl Into<String>, ttl: Duration) -> Self {
        self.unique = Some((key.into(), ttl));
        self
    }

    /// Dispatch to `queue` instead of the job's `QUEUE`.
    pub fn on_queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// Use this id instead of a fresh one (re-dispatching a failed job, the outbox).
    pub fn with_id(mut self, id: JobId) -> Self {
        self.id = Some(id);
        self
    }

    pub(crate) fn unlock_when_done(mut self, name: String, token: String) -> Self {
        self.unlock = Some((name, token));
        self
    }
}

/// When a dispatched job becomes ready.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum When {
    /// Now.
    #[default]
    Now,
    /// After a delay, measured by the queue's clock.
    In(Duration),
    /// At a Unix time in milliseconds.
    At(i64),
}

/// A snapshot of one queue's sizes, from [`Queue::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueStats {
    /// Jobs ready to run (the queue depth).
    pub ready: u64,
    /// Jobs waiting for their time (delays and retry backoffs).
    pub delayed: u64,
    /// Jobs claimed by a worker and not yet finished.
    pub in_flight: u64,
    /// Jobs waiting behind their group's running job.
    pub grouped_waiting: u64,
    /// Failures kept in the queue because `failed_jobs` could not be written yet.
    pub pending_failures: u64,
}

/// A job a worker is running now, from [`Queue::running`]: a leased job of the queue, in any
/// process.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunningJob {
    /// The job's id.
    pub id: String,
    /// The job's name (`Job::NAME`).
    pub name: String,
    /// The queue it was claimed from.
    pub queue: String,
    /// The attempt running: 1 for the first run.
    pub attempt: u32,
    /// Its FIFO group, if any.
    pub group: Option<String>,
    /// When it was first dispatched (`None` for an envelope written without the time).
    pub dispatched_at: Option<DateTime<Utc>>,
    /// When its lease ends unless its worker extends it (every third of the lease while the
    /// job runs); a deadline in the past belongs to a job about to be recovered, its worker
    /// likely gone.
    pub lease_expires_at: DateTime<Utc>,
}

impl RunningJob {
    /// The running job a leased envelope names, or `None` (logged at debug level) when the
    /// entry is not a job envelope.
    pub(crate) fn from_lease(queue: &str, env: &str, deadline_ms: i64) -> Option<Self> {
        let e = match Envelope::decode(env) {
            Ok(e) => e,
            Err(err) => {
                tracing::debug!(queue, error = %err, "a leased entry that is not a job envelope is not listed as running");
                return None;
            }
        };
        Some(Self {
            id: e.id,
            name: e.job,
            queue: queue.to_owned(),
            attempt: e.attempt.saturating_add(1),
            group: e.group,
            dispatched_at: (e.at > 0)
                .then(|| DateTime::from_timestamp_millis(e.at))
                .flatten(),
            lease_expires_at: DateTime::from_timestamp_millis(deadline_ms)
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
        })
    }

    /// The order [`Queue::running`] lists jobs in.
    fn order_key(&self) -> (Option<DateTime<Utc>>, &str, &str) {
        (self.dispatched_at, &self.id, &self.queue)
    }
}

/// Sorts running jobs as [`Queue::running`] lists them: oldest dispatch first (jobs without a
/// dispatch time first), then by id.
pub fn sort_running(jobs: &mut [RunningJob]) {
    jobs.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
}

/// One job to push.
#[derive(Debug)]
pub(crate) struct Push {
    pub(crate) id: String,
    pub(crate) env: String,
    pub(crate) group: Option<String>,
    pub(crate) when: When,
    pub(crate) unique: Option<(String, Duration)>,
}

/// A cheap, cloneable handle to the job queue (every queue name on one backend).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> core_jobs::Result<()> {
/// use core_jobs::Queue;
///
/// let queue = Queue::from_url("memory://", "app").await?;
/// assert_eq!(queue.stats("default").await?.ready, 0);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Queue {
    driver: Arc<dyn Driver>,
    counters: JobCounters,
}

impl fmt::Debug for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("driver", &self.driver_kind())
            .finish()
    }
}

impl Queue {
    /// The in-process queue: same semantics as Redis (leases, delays, groups, retries), no
    /// durability across restarts. Jobs reach only workers in this process.
    pub fn memory() -> Self {
        Self {
            driver: Arc::new(memory::MemoryDriver::new()),
            counters: JobCounters::new(),
        }
    }

    /// The Redis reliable queue at `url`, keys under `{prefix}:queue:`.
    ///
    /// # Errors
    /// An invalid URL or prefix, or Redis unreachable.
    pub async fn redis(url: &str, prefix: impl Into<String>) -> Result<Self> {
        let prefix = prefix.into();
        if prefix.is_empty() {
            return Err(Error::Config("the queue prefix must not be empty".into()));
        }
        Ok(Self {
            driver: Arc::new(redis::RedisDriver::connect(url, prefix).await?),
            counters: JobCounters::new(),
        })
    }

    /// Which driver this queue uses.
    pub fn driver_kind(&self) -> QueueDriver {
        self.driver.kind()
    }

    /// The in-process counters of the jobs finished by workers built on this handle or its
    /// clones (see [`crate::stats`]): what a dashboard in this process charts. Another
    /// `Queue::redis` handle, or another process, has counters of its own.
    pub fn counters(&self) -> &JobCounters {
        &self.counters
    }

    /// The driver behind this queue (the worker's only way to it).
    pub(crate) fn driver(&self) -> &Arc<dyn Driver> {
        &self.driver
    }

    /// Queues `job` on `J::QUEUE` to run now; returns its id.
    ///
    /// # Errors
    /// The job does not serialize, or the backend failed.
    pub async fn dispatch<J: Job>(&self, job: &J) -> Result<JobId> {
        let id = JobId::new();
        let push = build_push::<J>(job, id.clone(), When::Now, None, None)?;
        let queue = J::QUEUE;
        self.push(queue, push).await?;
        Ok(id)
    }

    /// Queues `job` to run after `delay`; returns its id.
    ///
    /// # Errors
    /// The job does not serialize, or the backend failed.
    pub async fn dispatch_in<J: Job>(&self, job: &J, delay: Duration) -> Result<JobId> {
        let id = JobId::new();
        let push = build_push::<J>(job, id.clone(), When::In(delay), None, None)?;
        self.push(J::QUEUE, push).await?;
        Ok(id)
    }

    /// Queues `job` to run at `when`; returns its id.
    ///
    /// # Errors
    /// The job does not serialize, or the backend failed.
    pub async fn dispatch_at<J: Job>(&self, job: &J, when: DateTime<Utc>) -> Result<JobId> {
        let id = JobId::new();
        let push = build_push::<J>(
            job,
            id.clone(),
            When::At(when.timestamp_millis()),
            None,
            None,
        )?;
        self.push(J::QUEUE, push).await?;
        Ok(id)
    }

    /// Queues `job` with [`DispatchOptions`]; `None` when its unique key was already taken.
    ///
    /// # Errors
    /// The job does not serialize, an invalid queue name, or the backend failed.
    pub async fn dispatch_with<J: Job>(
        &self,
        job: &J,
        options: DispatchOptions,
    ) -> Result<Option<JobId>> {
        let id = options.id.clone().unwrap_or_default();
        let queue = options.queue.clone().unwrap_or_else(|| J::QUEUE.to_owned());
        let mut push =
            build_push::<J>(job, id.clone(), options.when, options.unlock, Some(&queue))?;
        push.unique = options.unique;
        Ok(self.push(&queue, push).await?.then_some(id))
    }

    /// Queues many jobs of one type to run now, in as few round trips as the backend allows
    /// (grouped jobs go one by one); returns their ids in order.
    ///
    /// # Errors
    /// A job does not serialize, or the backend failed (some jobs may have been queued).
    pub async fn dispatch_many<J: Job>(&self, jobs: &[J]) -> Result<Vec<JobId>> {
        let mut ids = Vec::with_capacity(jobs.len());
        let mut plain = Vec::with_capacity(jobs.len());
        for job in jobs {
            let id = JobId::new();
            let push = build_push::<J>(job, id.clone(), When::Now, None, None)?;
            if push.group.is_some() {
                self.push(J::QUEUE, push).await?;
            } else {
                plain.push(push.env);
            }
            ids.push(id);
        }
        if !plain.is_empty() {
            check_queue_name(J::QUEUE)?;
            self.driver.push_many(J::QUEUE, plain).await?;
        }
        Ok(ids)
    }

    /// Queues a job by name with its JSON payload as text (re-dispatching a stored failure, the
    /// outbox relay). Returns false when a unique key was already taken.
    pub(crate) async fn dispatch_raw(&self, raw: RawDispatch<'_>) -> Result<bool> {
        check_queue_name(raw.queue)?;
        check_depth(raw.name, raw.payload)?;
        let env = raw.envelope(now_ms());
        let push = Push {
            id: raw.id.to_owned(),
            env: env.encode(),
            group: env.group.clone(),
            when: raw.when,
            unique: None,
        };
        self.push(raw.queue, push).await
    }

    /// Whether [`dispatch_raw`](Self::dispatch_raw) would accept `raw` (its queue name and
    /// payload), without sending it.
    pub(crate) fn raw_ok(raw: RawDispatch<'_>) -> bool {
        check_queue_name(raw.queue).is_ok() && check_depth(raw.name, raw.payload).is_ok()
    }

    /// Queues `raws`, all due now, ungrouped and checked with [`raw_ok`](Self::raw_ok), on
    /// `queue` with one push (one round trip per few hundred on Redis): all of them or, on an
    /// error, possibly some.
    pub(crate) async fn dispatch_raw_many(
        &self,
        queue: &str,
        raws: &[RawDispatch<'_>],
    ) -> Result<()> {
        check_queue_name(queue)?;
        let at = now_ms();
        let envs = raws.iter().map(|raw| raw.envelope(at).encode()).collect();
        self.driver.push_many(queue, envs).await
    }

    async fn push(&self, queue: &str, push: Push) -> Result<bool> {
        check_queue_name(queue)?;
        self.driver.push(queue, push).await
    }

    /// The jobs of `queue` that workers are running now, in this process or any other: the
    /// queue's leased jobs, read from the backend without touching the workers. At most
    /// `limit`, those whose leases end soonest when more are running, listed oldest dispatch
    /// first (then by id), so that a page polling it sees a steady order. An entry that is not
    /// a job envelope is skipped (with a debug log), never an error.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> core_jobs::Result<()> {
    /// use core_jobs::Queue;
    ///
    /// let queue = Queue::memory();
    /// assert!(queue.running("default", 50).await?.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// An invalid queue name, or the backend failed.
    pub async fn running(&self, queue: &str, limit: usize) -> Result<Vec<RunningJob>> {
        check_queue_name(queue)?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut jobs = self.driver.running(queue, limit).await?;
        jobs.truncate(limit);
        sort_running(&mut jobs);
        Ok(jobs)
    }

    /// Sizes of `queue` right now.
    ///
    /// # Errors
    /// The backend failed.
    pub async fn stats(&self, queue: &str) -> Result<QueueStats> {
        check_queue_name(queue)?;
        self.driver.stats(queue).await
    }
}

/// A raw dispatch: a job known by name and payload text.
#[derive(Debug)]
pub(crate) struct RawDispatch<'a> {
    pub(crate) id: &'a str,
    pub(crate) name: &'a str,
    pub(crate) queue: &'a str,
    pub(crate) payload: &'a str,
    pub(crate) group: Option<&'a str>,
    pub(crate) when: When,
}

impl RawDispatch<'_> {
    /// The envelope of a first attempt, dispatched at `at` (Unix ms).
    fn envelope(&self, at: i64) -> Envelope {
        Envelope {
            id: self.id.to_owned(),
            job: self.name.to_owned(),
            queue: self.queue.to_owned(),
            data: crate::envelope::raw_payload(self.payload),
            attempt: 0,
            group: self.group.map(str::to_owned),
            at,
            unlock: None,
        }
    }
}

fn build_push<J: Job>(
    job: &J,
    id: JobId,
    when: When,
    unlock: Option<(String, String)>,
    queue: Option<&str>,
) -> Result<Push> {
    let data = serde_json::value::to_raw_value(job)?;
    check_depth(J::NAME, data.get())?;
    let group = job.group_id();
    let env = Envelope {
        id: id.as_str().to_owned(),
        job: J::NAME.to_owned(),
        queue: queue.unwrap_or(J::QUEUE).to_owned(),
        data,
        attempt: 0,
        group: group.clone(),
        at: now_ms(),
        unlock,
    };
    Ok(Push {
        id: id.as_str().to_owned(),
        env: env.encode(),
        group,
        when,
        unique: None,
    })
}

/// Queue names become part of Redis keys: non-empty, no `:`, no whitespace.
pub(crate) fn check_queue_name(name: &str) -> Result<()> {
    if name.is_empty() || name.contains(':') || name.chars().any(char::is_whitespace) {
        return Err(Error::Config(format!(
            "invalid queue name {name:?}: must be non-empty, without ':' or whitespace"
        )));
    }
    Ok(())
}
