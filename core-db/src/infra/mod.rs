//! Infrastructure handles: one module per part, every driver behind one type.

/// The cache: one `Cache` handle over the memory, Redis and tiered drivers, with tags, locks,
/// counters and single-flight `remember`.
pub mod cache;

/// The database handle over PostgreSQL or SQLite, with embedded migrations.
pub mod db;

// One shared Redis connection, replaced after a call on it times out (its docs are inside).
pub mod redis_connection;

/// Object storage: one `Storage` trait over the local-directory and S3 drivers, with validated
/// keys, streaming and multipart uploads, public and presigned URLs.
pub mod storage;
