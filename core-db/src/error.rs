//! The one error type of `core-db`.

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `core-db`.
///
/// `?` converts `std::io::Error`, `sqlx::Error`, `redis::RedisError`, `serde_json::Error` and
/// `anyhow::Error` into it, so a `remember` closure can use `?` on any of them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A Redis command failed or the connection is down.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A database query failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Applying migrations failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A filesystem operation failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// A value could not be encoded to or decoded from JSON.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// A backend did not answer within the configured timeout.
    #[error("{operation} timed out after {after:?}")]
    Timeout {
        /// What was being done.
        operation: &'static str,
        /// The timeout that elapsed.
        after: std::time::Duration,
    },
    /// A key, name or path was rejected before it reached a backend.
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey {
        /// The offending key.
        key: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A stored value has the wrong shape for the operation (for example `increment` on text).
    #[error("invalid value at {key:?}: {reason}")]
    InvalidValue {
        /// The key holding the value.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An object storage backend (S3 or an S3-compatible server) refused or failed an operation.
    #[error("storage {operation} {key:?}: {message}")]
    Storage {
        /// The operation, such as `put` or `presign_get`.
        operation: &'static str,
        /// The object key (empty for operations on the whole bucket).
        key: String,
        /// What the backend said, with its error chain.
        message: String,
    },
    /// A presigned storage URL was rejected: bad signature, wrong method or key, or expired.
    #[error("invalid presigned URL: {reason}")]
    InvalidSignature {
        /// Why it was rejected.
        reason: &'static str,
    },
    /// Configuration (a URL, a setting) is invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// Any other error, for example one returned by a `remember` closure.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}
