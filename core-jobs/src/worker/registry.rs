//! The registry: the handler behind each job name ([`JobShim`] for a job type `J`), and what
//! one run of a job came to ([`Outcome`]).

use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::FutureExt;
use serde_json::value::RawValue;

use crate::context::JobContext;
use crate::job::{Job, RetryAfter};
use crate::stats::{Cell, JobCounters};

/// What one run of a job came to.
pub(super) enum Outcome {
    Done,
    Retry { error: String, delay: Duration },
    Failed { error: String },
    Undecodable { error: String },
}

/// Runs one job type: the registry entry behind a `NAME`.
#[async_trait]
pub(super) trait Handler: Send + Sync {
    async fn run(&self, data: &RawValue, ctx: &JobContext, attempt: u32) -> Outcome;
}

/// The registry entry for job type `J`.
pub(super) struct JobShim<J>(PhantomData<fn() -> J>);

impl<J> JobShim<J> {
    pub(super) fn new() -> Self {
        Self(PhantomData)
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".to_owned()
    }
}

#[async_trait]
impl<J: Job> Handler for JobShim<J> {
    async fn run(&self, data: &RawValue, ctx: &JobContext, attempt: u32) -> Outcome {
        let job: J = match serde_json::from_str(data.get()) {
            Ok(job) => job,
            Err(e) => {
                return Outcome::Undecodable {
                    error: format!("undecodable payload for job {:?}: {e}", J::NAME),
                };
            }
        };
        let timeout = job.timeout();
        let run = AssertUnwindSafe(tokio::time::timeout(timeout, job.handle(ctx)))
            .catch_unwind()
            .await;
        let (error, asked) = match run {
            Ok(Ok(Ok(()))) => return Outcome::Done,
            Ok(Ok(Err(e))) => (format!("{e:#}"), RetryAfter::of(&e)),
            Ok(Err(_)) => (format!("timed out after {timeout:?}"), None),
            Err(panic) => (format!("panicked: {}", panic_message(&*panic)), None),
        };
        if attempt <= job.max_retries() {
            let backoff = job.backoff(attempt);
            return Outcome::Retry {
                delay: asked.map_or(backoff, |asked| asked.max(backoff)),
                error,
            };
        }
        // Exhausted: failed() once, on the job deserialized from its payload.
        let fresh: J = serde_json::from_str(data.get()).unwrap_or(job);
        let callback = AssertUnwindSafe(tokio::time::timeout(timeout, fresh.failed(ctx, &error)))
            .catch_unwind()
            .await;
        match callback {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => {
                tracing::error!(error = %format!("{e:#}"), "job failed() callback returned an error")
            }
            Ok(Err(_)) => tracing::error!(?timeout, "job failed() callback timed out"),
            Err(panic) => {
                tracing::error!(panic = %panic_message(&*panic), "job failed() callback panicked")
            }
        }
        Outcome::Failed { error }
    }
}

/// A registered job type with its metrics and its in-process counters.
pub(super) struct Registered {
    pub(super) handler: Arc<dyn Handler>,
    pub(super) processed: metrics::Counter,
    pub(super) failed: metrics::Counter,
    pub(super) retried: metrics::Counter,
    /// Its [`JobCounters`] cell on each of the worker's queues, by queue index.
    pub(super) cells: Vec<Arc<Cell>>,
}

impl Registered {
    pub(super) fn new(
        name: &'static str,
        handler: Arc<dyn Handler>,
        queues: &[String],
        counters: &JobCounters,
    ) -> Self {
        Self {
            handler,
            cells: queues.iter().map(|q| counters.cell(q, name)).collect(),
            processed: metrics::counter!("rustforge_jobs_processed_total", "job" => name),
            failed: metrics::counter!("rustforge_jobs_failed_total", "job" => name),
            retried: metrics::counter!("rustforge_jobs_retried_total", "job" => name),
        }
    }
}
