//! The [`Job`] trait, job ids, and the [`Dispatch`] methods every job gets.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::context::JobContext;
use crate::error::Result;
use crate::queue::{DispatchOptions, Queue};

/// A unit of background work: a serializable value with a handler.
///
/// The value is stored as JSON when dispatched and deserialized by the worker that runs it, so
/// keep it small (ids, not rows). `NAME` identifies the type in the queue: it must be unique
/// among the jobs a worker registers and must not change while jobs of the old name are queued.
///
/// Delivery is **at least once**: a job whose worker dies mid-run is run again once its lease
/// expires, so handlers should be idempotent.
///
/// ```
/// use std::time::Duration;
/// use core_jobs::{Job, JobContext};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Serialize, Deserialize)]
/// struct SendWelcomeEmail {
///     user_id: i64,
/// }
///
/// #[async_trait::async_trait]
/// impl Job for SendWelcomeEmail {
///     const NAME: &'static str = "send_welcome_email";
///     const QUEUE: &'static str = "mail";
///
///     async fn handle(&self, ctx: &JobContext) -> anyhow::Result<()> {
///         tracing::info!(user = self.user_id, attempt = ctx.attempt(), "sending");
///         Ok(())
///     }
///
///     fn max_retries(&self) -> u32 {
///         5
///     }
///
///     async fn failed(&self, _ctx: &JobContext, error: &str) -> anyhow::Result<()> {
///         tracing::warn!(user = self.user_id, error, "welcome email given up");
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait Job: Serialize + DeserializeOwned + Send + Sync + fmt::Debug + 'static {
    /// The job's name in the queue and in `failed_jobs`; unique per worker.
    const NAME: &'static str;
    /// The queue the job is dispatched to.
    const QUEUE: &'static str = "default";

    /// Runs the job. An `Err`, a panic or running past [`timeout`](Job::timeout) is a failed
    /// attempt.
    async fn handle(&self, ctx: &JobContext) -> anyhow::Result<()>;

    /// Retries after the first attempt: a job runs at most `max_retries() + 1` times.
    /// Default: 3.
    fn max_retries(&self) -> u32 {
        3
    }

    /// How long to wait before the retry that follows failed attempt number `attempt`
    /// (1 for the first run). Default: exponential from 1 s, doubling, capped at 10 minutes,
    /// with ±20 % jitter so that jobs failing together do not retry together.
    fn backoff(&self, attempt: u32) -> Duration {
        default_backoff(attempt)
    }

    /// How long one run may take before it is cancelled and counted as a failed attempt.
    /// Default: 60 s.
    fn timeout(&self) -> Duration {
        Duration::from_secs(60)
    }

    /// Jobs with the same group id run one at a time, in dispatch order (a retry's backoff
    /// holds the group). Default: no group.
    fn group_id(&self) -> Option<String> {
        None
    }

    /// Called exactly once when the last attempt has failed, before the `failed_jobs` row is
    /// written, on the job deserialized from its payload. Use it for clean-up, alerts or state
    /// reversion. An error or a panic here is logged and the row is written all the same.
    async fn failed(&self, _ctx: &JobContext, _error: &str) -> anyhow::Result<()> {
        Ok(())
    }
}

/// The default [`Job::backoff`]: 1 s × 2^(attempt − 1), capped at 10 minutes, ±20 % jitter.
pub fn default_backoff(attempt: u32) -> Duration {
    let exp = attempt.saturating_sub(1).min(20);
    let base = Duration::from_secs(1).saturating_mul(1u32 << exp);
    let capped = base.min(Duration::from_secs(600));
    let factor = rand::random_range(0.8..=1.2);
    capped.mul_f64(factor)
}

/// A failed attempt that asks to be retried no sooner than `after`: return it from
/// [`Job::handle`] (`Err(RetryAfter::new(..).into())`) when the other side said when to come
/// back, such as an HTTP `Retry-After`. The retry then waits for the longer of `after` and
/// [`Job::backoff`]; it still counts as an attempt, and the last attempt still ends in
/// [`Job::failed`].
///
/// ```
/// use std::time::Duration;
/// use core_jobs::job::RetryAfter;
///
/// let error: anyhow::Error = RetryAfter::new(Duration::from_secs(30), "HTTP 503").into();
/// assert_eq!(error.to_string(), "HTTP 503 (retry after 30s)");
/// assert_eq!(RetryAfter::of(&error), Some(Duration::from_secs(30)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryAfter {
    after: Duration,
    error: String,
}

impl RetryAfter {
    /// A failure described by `error`, to be retried after at least `after`.
    pub fn new(after: Duration, error: impl Into<String>) -> Self {
        Self {
            after,
            error: error.into(),
        }
    }

    /// The shortest wait before the retry.
    pub fn after(&self) -> Duration {
        self.after
    }

    /// The wait `error` asks for, when it is (or wraps) a `RetryAfter`.
    pub fn of(error: &anyhow::Error) -> Option<Duration> {
        error.downcast_ref::<Self>().map(Self::after)
    }
}

impl fmt::Display for RetryAfter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (retry after {:?})", self.error, self.after)
    }
}

impl std::error::Error for RetryAfter {}

/// A job's id: a random UUID in its simple (32 hex digits) form, unique per dispatch.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(String);

impl JobId {
    /// A fresh random id.
    pub fn new() -> Self {
        Self(uuid::Uuid::new_v4().simple().to_string())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for JobId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for JobId {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for JobId {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

/// `dispatch`, `dispatch_in` and `dispatch_at` on every [`Job`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> core_jobs::Result<()> {
/// # use core_jobs::{Job, JobContext};
/// # #[derive(Debug, serde::Serialize, serde::Deserialize)]
/// # struct Ping;
/// # #[async_trait::async_trait]
/// # impl Job for Ping {
/// #     const NAME: &'static str = "ping";
/// #     async fn handle(&self, _ctx: &JobContext) -> anyhow::Result<()> { Ok(()) }
/// # }
/// use std::time::Duration;
/// use core_jobs::{Dispatch, Queue};
///
/// let queue = Queue::memory();
/// let now = Ping.dispatch(&queue).await?;
/// let later = Ping.dispatch_in(&queue, Duration::from_secs(30)).await?;
/// assert_ne!(now, later);
/// # Ok(())
/// # }
/// ```
#[async_trait]
pub trait Dispatch: Job {
    /// Queues the job to run as soon as a worker is free; returns its id.
    async fn dispatch(&self, queue: &Queue) -> Result<JobId> {
        queue.dispatch(self).await
    }

    /// Queues the job to run once `delay` has passed; returns its id.
    async fn dispatch_in(&self, queue: &Queue, delay: Duration) -> Result<JobId> {
        queue.dispatch_in(self, delay).await
    }

    /// Queues the job to run at `when` (at once if that is in the past); returns its id.
    async fn dispatch_at(&self, queue: &Queue, when: DateTime<Utc>) -> Result<JobId> {
        queue.dispatch_at(self, when).await
    }

    /// Queues the job with explicit [`DispatchOptions`]; `None` when a unique key said it was
    /// already dispatched.
    async fn dispatch_with(
        &self,
        queue: &Queue,
        options: DispatchOptions,
    ) -> Result<Option<JobId>> {
        queue.dispatch_with(self, options).await
    }
}

impl<J: Job> Dispatch for J {}
