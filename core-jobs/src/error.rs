//! The one error type of `core-jobs`.

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `core-jobs` outside a job's own handler (handlers return
/// `anyhow::Result`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A Redis command failed or the connection is down.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A database query failed (the failed-job store, the job buffer).
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The data layer (database handle, cache, locks) failed.
    #[error(transparent)]
    Data(#[from] core_db::Error),
    /// A job or an envelope could not be encoded to or decoded from JSON.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// Configuration (a URL, a cron expression, an option) is invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// Two job types registered on one worker share a `NAME`.
    #[error("duplicate job name {0:?}: two registered job types share it")]
    DuplicateJob(&'static str),
    /// A [`JobContext`](crate::JobContext) accessor asked for something the context was not
    /// built with (for example the database).
    #[error("the job context has no {0}; add it with JobContext::with_{0}")]
    NotConfigured(&'static str),
    /// A failed-job row was asked for by id and does not exist.
    #[error("no failed job with id {0}")]
    FailedJobNotFound(i64),
    /// An operation did not complete in time (for example a `failed_jobs` write past the
    /// store's [`timeout`](crate::FailedJobs::with_timeout)).
    #[error("{0} timed out after {1:?}")]
    Timeout(&'static str, std::time::Duration),
    /// The SIGINT and SIGTERM handlers of [`Worker::run`](crate::Worker::run) could not be
    /// installed.
    #[error("listening for SIGINT and SIGTERM: {0}")]
    Signal(#[source] std::io::Error),
}
