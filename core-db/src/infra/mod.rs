//! Infrastructure handles: one module per part, every driver behind one type.

/// The message bus: publish/subscribe between processes (memory and Redis drivers), a wake-up
/// signal that says when messages may have been missed.
pub mod bus;

/// The cache: one `Cache` handle over the memory, Redis and tiered drivers, with tags, locks,
/// counters and single-flight `remember`.
pub mod cache;

/// The database handle over PostgreSQL or SQLite, with embedded migrations.
pub mod db;

// One shared Redis connection, replaced after a call on it times out (its docs are inside).
pub mod redis_connection;

// One supervised pub/sub connection: the tiered cache's and the bus's subscriber.
pub(crate) mod redis_pubsub;

/// Object storage: one `Storage` trait over the local-directory and S3 drivers, with validated
/// keys, streaming and multipart uploads, public and presigned URLs.
pub mod storage;
