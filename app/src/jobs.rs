//! The application's background jobs and the worker that runs them.
//!
//! Handlers dispatch jobs onto [`AppContext::queue`](crate::AppContext::queue); [`worker`] builds
//! the [`Worker`] that runs them with a [`JobContext`] carrying the [`AppContext`]. `app worker`
//! runs it on its own; `app serve` runs one in-process when the queue is the memory driver,
//! since a memory queue is not shared across processes.

use core_jobs::{Job, JobContext, Worker};
use serde::{Deserialize, Serialize};

use crate::AppContext;

/// Dispatched by `POST /api/v1/notes` once a note is stored; logs the new note.
///
/// It carries the note's id only (jobs hold ids, not rows). Delivery is at least once, and
/// logging twice is harmless, so the handler is idempotent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoteCreated {
    /// The new note's id.
    pub id: u64,
}

#[core_jobs::async_trait]
impl Job for NoteCreated {
    const NAME: &'static str = "note_created";

    async fn handle(&self, ctx: &JobContext) -> anyhow::Result<()> {
        tracing::info!(
            note = self.id,
            job = ctx.job_id().map(|id| id.as_str()),
            attempt = ctx.attempt(),
            "note created"
        );
        Ok(())
    }
}

/// A worker for every job of the application, on `ctx`'s queue, each job given
/// [`AppContext::job_context`] (its database is also where `failed_jobs` rows go), with the
/// `WORKER_*` settings. Start it with [`Worker::spawn`] or [`Worker::run`].
pub fn worker(ctx: &AppContext) -> Worker {
    let settings = &ctx.settings;
    Worker::new(ctx.queue.clone(), ctx.job_context())
        .register::<NoteCreated>()
        .config(&settings.worker)
        .grace(settings.base.http.shutdown_grace)
}
