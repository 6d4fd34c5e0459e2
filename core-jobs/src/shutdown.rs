//! One shutdown for the worker, the scheduler, the outbox relay and the HTTP server.
//!
//! [`Shutdown`] is core-db's (core-web and core-jobs both build on core-db, and neither depends
//! on the other), re-exported here so a jobs process needs no other import. Give the same value
//! to [`Worker::with_shutdown`](crate::Worker::with_shutdown),
//! [`Scheduler::with_shutdown`](crate::Scheduler::with_shutdown) and
//! [`JobBuffer::spawn_relay_with`](crate::JobBuffer::spawn_relay_with) (and to core-web's
//! `serve_with_shutdown`): cancelling it, or the signal [`Shutdown::on_signal`] waits for,
//! stops them all, and [`Shutdown::wait`] returns once each has finished its in-flight work.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> core_jobs::Result<()> {
//! use core_jobs::{JobContext, Queue, Shutdown, Worker};
//!
//! let shutdown = Shutdown::new(); // or Shutdown::on_signal() in a binary
//! let queue = Queue::memory();
//! let _worker = Worker::new(queue.clone(), JobContext::new(queue))
//!     .queue("default")
//!     .with_shutdown(&shutdown)
//!     .spawn()?;
//! shutdown.cancel();
//! shutdown.wait().await; // the worker has drained
//! # Ok(())
//! # }
//! ```

pub use core_db::shutdown::{CancellationToken, Shutdown, TaskTracker, signal};
