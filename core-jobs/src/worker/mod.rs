//! [`Worker`]: claims jobs, runs them with a configured concurrency, retries, calls `failed()`,
//! writes `failed_jobs`, and shuts down gracefully.
//!
//! How a claimed job ends:
//!
//! - `Ok` → acknowledged (plain jobs in batches; a grouped job's ack starts its group's next job);
//! - an error, a panic or a timeout with attempts left → retried after
//!   [`Job::backoff`](crate::Job::backoff) (the retry and the end of the lease are one atomic
//!   step; a grouped job keeps its group held meanwhile);
//! - the last attempt failed → [`Job::failed`](crate::Job::failed) exactly once, on the job
//!   deserialized from its payload (its error or panic is logged), then the `failed_jobs` row,
//!   then the ack;
//! - an unknown job name or an undecodable payload → a `failed_jobs` row with the reason at once;
//! - `failed_jobs` unreachable → the failure is kept in the queue (`failed-pending`) in the same
//!   atomic step as the ack, and written by a worker once the database answers again;
//! - the lease was lost while it ran → nothing: no ack, retry or `failed_jobs` row from this run.
//!
//! Leases: the worker extends the leases of its running jobs every third of the lease, on a task
//! of its own that nothing else (a slow `failed_jobs`, a slow promotion) delays. A lease that was
//! not extended in time (the process stalled, the queue unreachable for longer than the lease)
//! is recovered by any worker, and the job may run again elsewhere. The worker that lost it
//! finds out at its next extension: it logs a warning and sets
//! [`JobContext::lease_lost`](crate::JobContext::lease_lost) (a long handler should check it and stop), and it commits nothing
//! for that run, so it does not end or double the run that now holds the lease. Detection is
//! after the fact: a run that ends before the next extension still commits. The framework
//! guarantees at-least-once delivery, not that two runs never overlap: jobs must be idempotent.

//!
//! The module is laid out by concern: `builder` ([`Worker`]), `registry` (the handler behind
//! each job name), `run` (claiming, running and ending jobs), `maintenance` (lease extension,
//! promotion, recovery, pending failures), `handle` ([`WorkerHandle`], [`WorkerStats`]) and
//! `retry` (the one retry helper for queue writes). Shutdown goes through one
//! [`CancellationToken`]: [`Worker::with_shutdown`] ties
//! it to the process's [`Shutdown`](core_db::shutdown::Shutdown).

mod builder;
mod handle;
mod maintenance;
mod registry;
mod retry;
mod run;

use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use self::builder::Worker;
pub use self::handle::{WorkerHandle, WorkerStats};

/// The name recorded in `failed_jobs` for a queue entry that is not even a job envelope.
pub const UNDECODABLE_ENVELOPE: &str = "(undecodable envelope)";

/// Completes on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
///
/// Called inside a Tokio runtime, it listens from the moment it is called, so a signal that
/// arrives before the future is first polled is not lost. When the handlers cannot be
/// installed the error is logged and the future completes at once. The same function as
/// [`core_db::shutdown::signal`] (see [`crate::shutdown`]).
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    core_db::shutdown::signal()
}

/// Sleeps for `d`; true when `stop` was cancelled meanwhile.
async fn wait_or_stop(stop: &CancellationToken, d: Duration) -> bool {
    if stop.is_cancelled() {
        return true;
    }
    tokio::select! {
        () = tokio::time::sleep(d) => stop.is_cancelled(),
        () = stop.cancelled() => true,
    }
}
