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

use std::future::Future;

/// A background task of the worker, the scheduler or the relay: stopped by its own handle,
/// by the [`Shutdown`] it was given (if any), or when dropped.
#[derive(Debug)]
pub(crate) struct Background {
    /// Cancelled to stop the task: a child of the shared token, so that stopping one part
    /// leaves the others running.
    stop: CancellationToken,
    /// Tracks the task: empty once it has ended (or panicked, or was dropped with its
    /// runtime).
    tracker: TaskTracker,
}

impl Background {
    /// Spawns `run(stop)`, also on `shutdown`'s tracker so that [`Shutdown::wait`] waits for it.
    pub(crate) fn spawn<F, Fut>(shutdown: Option<&Shutdown>, run: F) -> Self
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let stop = shutdown.map_or_else(CancellationToken::new, |s| s.token().child_token());
        let tracker = TaskTracker::new();
        let task = run(stop.clone());
        match shutdown {
            Some(shutdown) => tracker.spawn(shutdown.tracker().track_future(task)),
            None => tracker.spawn(task),
        };
        tracker.close();
        Self { stop, tracker }
    }

    /// Asks the task to stop and waits until it has.
    pub(crate) async fn stop_and_wait(&self) {
        self.stop.cancel();
        self.tracker.wait().await;
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
