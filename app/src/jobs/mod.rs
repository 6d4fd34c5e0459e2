//! ForgeRun's jobs: the state machine ([`state`]), the work-kind catalog ([`kinds`]), the table
//! and its transitions ([`store`]), the core-jobs job that runs attempts ([`run`]), and the
//! operations the API calls: [`submit`], [`cancel`], [`retry`].
//!
//! A submission writes the job row (QUEUED), its `job.created` and `job.queued` events and its
//! core-jobs dispatch in one transaction ([`JobBuffer`](core_jobs::JobBuffer)); the relay sends
//! the dispatch to the queue once the transaction has committed, delayed to `execution_at` when
//! there is one. [`worker`] builds the core-jobs worker that runs them; [`Background`] starts
//! the relay (and the worker, and the start-up sweep of a queue that does not survive
//! restarts) next to a server.

use std::time::Duration;

use anyhow::Context as _;
use core_db::db::Timestamp;
use core_jobs::buffer::RelayHandle;
use core_jobs::{QueueDriver, Shutdown, Worker, WorkerHandle};

use crate::AppContext;

pub mod kinds;
pub mod limits;
pub mod retention;
pub mod run;
pub mod state;
pub mod store;
pub mod views;

pub use kinds::WorkKind;
pub use run::RunJob;
pub use state::State;
pub use store::{JobRow, Moved};

/// A new job as the API accepts it, checked.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// The work kind.
    pub work_kind: WorkKind,
    /// Not to start before (whole seconds, not in the past).
    pub execution_at: Option<Timestamp>,
    /// The callback URL.
    pub callback: Option<String>,
    /// Attempts allowed (1–10, default 3).
    pub max_attempts: u32,
}

/// Attempts a job gets unless it asks otherwise.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// The backoff unit (the delay before the first retry) at `WORK_TIME_SCALE`, in milliseconds.
fn backoff_unit_ms(ctx: &AppContext) -> u64 {
    let unit = Duration::from_secs(1).mul_f64(ctx.settings.forgerun.work_time_scale);
    u64::try_from(unit.as_millis()).unwrap_or(u64::MAX)
}

/// A job's callback as registered with it: a webhook of that job alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callback {
    /// The webhook's id (its deliveries are at `GET /v1/webhooks/{id}/deliveries`).
    pub webhook_id: String,
    /// Its signing secret, shown to the client once, in the submission's response.
    pub secret: String,
}

/// Writes a new job `id` for `client_id` (QUEUED), its `job.created` and `job.queued` events,
/// its dispatch and, with a `callback`, the callback's webhook inside a new transaction, and
/// returns them with the transaction for the caller to add to (the idempotency record) and
/// commit with `ctx.buffer.commit`.
///
/// # Errors
/// The database failed (nothing is written).
// region: submit-transaction
pub async fn submit(
    ctx: &AppContext,
    client_id: &str,
    job: &NewJob,
    id: &str,
) -> anyhow::Result<(JobRow, Option<Callback>, core_db::Tx)> {
    // region: ch8-transaction
    let mut tx = ctx.db.begin().await?;
    let run = first_run(ctx, job, id);
    let dispatch = dispatch(ctx, &mut tx, &run, job.execution_at).await?;
    let row = new_row(client_id, job, id, dispatch.as_str());
    store::insert(&ctx.buffer, &mut tx, &row).await?;
    // endregion: ch8-transaction
    let callback = match &row.callback {
        Some(url) => {
            let hook = crate::webhooks::WebhookRow {
                id: uuid::Uuid::new_v4().to_string(),
                client_id: client_id.to_owned(),
                job_id: Some(id.to_owned()),
                url: url.clone(),
                events: "*".to_owned(),
                secret: core_web::webhook::Secret::generate().expose().to_owned(),
                created_at: row.created_at,
                disabled_at: None,
                disabled_reason: None,
            };
            crate::webhooks::insert_callback(&mut tx, &hook).await?;
            Some(Callback {
                webhook_id: hook.id,
                secret: hook.secret,
            })
        }
        None => None,
    };
    Ok((row, callback, tx))
}
// endregion: submit-transaction

/// As [`submit`], committed: on PostgreSQL, for a job without a callback, the row, its events
/// and its dispatch are one statement (one round trip instead of a transaction's four).
///
/// # Errors
/// The database failed (nothing is written).
pub async fn submit_now(
    ctx: &AppContext,
    client_id: &str,
    job: &NewJob,
    id: &str,
) -> anyhow::Result<(JobRow, Option<Callback>)> {
    let core_db::Database::Postgres(pool) = &ctx.db else {
        return submit_committed(ctx, client_id, job, id).await;
    };
    if job.callback.is_some() {
        return submit_committed(ctx, client_id, job, id).await;
    }
    let run = first_run(ctx, job, id);
    let dispatch = ctx.buffer.outbox_row(&run, delay_until(job.execution_at))?;
    let row = new_row(client_id, job, id, dispatch.id().as_str());
    store::insert_dispatched(pool, &ctx.buffer, &row, &dispatch).await?;
    ctx.buffer.committed();
    Ok((row, None))
}

// region: submit-committed
/// [`submit`], committed.
async fn submit_committed(
    ctx: &AppContext,
    client_id: &str,
    job: &NewJob,
    id: &str,
) -> anyhow::Result<(JobRow, Option<Callback>)> {
    let (row, callback, tx) = submit(ctx, client_id, job, id).await?;
    ctx.buffer.commit(tx).await?;
    Ok((row, callback))
}
// endregion: submit-committed

/// The dispatch that runs a new job's attempts.
fn first_run(ctx: &AppContext, job: &NewJob, id: &str) -> RunJob {
    RunJob {
        job_id: id.to_owned(),
        attempts: job.max_attempts,
        backoff_unit_ms: backoff_unit_ms(ctx),
    }
}

/// A new job's row, QUEUED with dispatch `dispatch_id`.
fn new_row(client_id: &str, job: &NewJob, id: &str, dispatch_id: &str) -> JobRow {
    let now = Timestamp::now();
    JobRow {
        id: id.to_owned(),
        client_id: client_id.to_owned(),
        work_kind: job.work_kind.as_str().to_owned(),
        state: State::Queued.as_str().to_owned(),
        attempt: 0,
        max_attempts: i64::from(job.max_attempts),
        outcome: None,
        error: None,
        retryable: false,
        callback: job.callback.clone(),
        dispatch_id: Some(dispatch_id.to_owned()),
        cancel_requested: false,
        version: 1,
        execution_at: job.execution_at,
        created_at: now,
        updated_at: now,
        queued_at: Some(now),
        started_at: None,
        finished_at: None,
    }
}

/// How long until `execution_at`, when it is still ahead.
fn delay_until(execution_at: Option<Timestamp>) -> Option<Duration> {
    let at = execution_at?;
    let now = Timestamp::now();
    (at > now).then(|| (at.get() - now.get()).to_std().unwrap_or_default())
}

// region: dispatch
/// Writes `run`'s dispatch into `tx`, delayed until `execution_at` when that is still ahead.
async fn dispatch(
    ctx: &AppContext,
    tx: &mut core_db::Tx,
    run: &RunJob,
    execution_at: Option<Timestamp>,
) -> anyhow::Result<core_jobs::JobId> {
    Ok(match delay_until(execution_at) {
        Some(delay) => ctx.buffer.push_in(tx, run, delay).await?,
        None => ctx.buffer.push(tx, run).await?,
    })
}
// endregion: dispatch

/// What a cancel did.
#[derive(Debug, Clone)]
pub enum Canceled {
    /// The job is CANCELED now (it was CREATED, QUEUED or ASSIGNED).
    Now(JobRow),
    /// The job is RUNNING and has been asked to stop; it will within 100 ms.
    Requested(JobRow),
    /// The job was already final: nothing changed.
    AlreadyFinal(JobRow),
}

/// Cancels job `id` (already known to belong to the caller).
///
/// # Errors
/// The database failed.
pub async fn cancel(ctx: &AppContext, id: &str) -> anyhow::Result<Option<Canceled>> {
    loop {
        let guard = store::Guard {
            from: Some(&[State::Created, State::Queued, State::Assigned]),
            ..store::Guard::default()
        };
        let row = match store::transition(
            ctx,
            id,
            State::Canceled,
            guard,
            Some("canceled by the client"),
            |_| {},
        )
        .await?
        {
            Moved::Applied(row) => return Ok(Some(Canceled::Now(row))),
            Moved::Missing => return Ok(None),
            Moved::Refused(row) => row,
        };
        match row.state() {
            State::Running => {
                if store::request_cancel(&ctx.db, &ctx.cache, id).await? {
                    let row = store::find(&ctx.db, id).await?.context("job vanished")?;
                    return Ok(Some(Canceled::Requested(row)));
                }
                // It left RUNNING meanwhile: decide again.
            }
            State::Succeeded | State::Failed | State::Canceled => {
                return Ok(Some(Canceled::AlreadyFinal(row)));
            }
            // It moved between the read and the decision: decide again.
            State::Created | State::Queued | State::Assigned => {}
        }
    }
}

/// Re-queues FAILED job `id` with one more attempt; `Refused` with the row when it is not
/// FAILED.
///
/// # Errors
/// The database failed.
pub async fn retry(ctx: &AppContext, id: &str) -> anyhow::Result<Moved> {
    loop {
        let Some(current) = store::find(&ctx.db, id).await? else {
            return Ok(Moved::Missing);
        };
        if current.state() != State::Failed {
            return Ok(Moved::Refused(current));
        }
        let run = RunJob {
            job_id: id.to_owned(),
            attempts: 1,
            backoff_unit_ms: backoff_unit_ms(ctx),
        };
        // The dispatch, the transition and its event commit together or not at all.
        let mut tx = ctx.db.begin().await?;
        let dispatch = ctx.buffer.push(&mut tx, &run).await?;
        let next = store::advance(&current, State::Queued, |r| {
            r.max_attempts = r.max_attempts.max(r.attempt + 1);
            r.dispatch_id = Some(dispatch.as_str().to_owned());
            r.outcome = None;
            r.finished_at = None;
            r.cancel_requested = false;
        });
        if !store::write(
            &ctx.buffer,
            &mut tx,
            &current,
            &next,
            Some("retried by the client"),
        )
        .await?
        {
            tx.rollback().await?;
            continue;
        }
        ctx.buffer.commit(tx).await?;
        // The commit already woke the relays.
        store::after_commit(
            ctx,
            &next,
            State::Failed,
            Some("retried by the client"),
            false,
        )
        .await;
        return Ok(Moved::Applied(next));
    }
}

/// A worker for every job of the application, on `ctx`'s queue, each job given
/// [`AppContext::job_context`] (its database is also where `failed_jobs` rows go), with the
/// `WORKER_*` settings. Start it with [`Worker::spawn`] or [`Worker::run`].
// region: worker
pub fn worker(ctx: &AppContext) -> Worker {
    let settings = &ctx.settings;
    Worker::new(ctx.queue.clone(), ctx.job_context())
        .register::<RunJob>()
        .register::<retention::Retention>()
        .register::<views::FlushReportViews>()
        .config(&settings.worker)
        .grace(settings.base.http.shutdown_grace)
}
// endregion: worker

/// The background side of a process: the outbox relay, and the worker when asked.
pub struct Background {
    /// The relay moving committed dispatches to the queue.
    pub relay: RelayHandle,
    /// The worker, when this process runs jobs.
    pub worker: Option<WorkerHandle>,
    /// The webhooks' worker (fan-outs and deliveries), next to [`worker`](Self::worker).
    pub webhooks: Option<WorkerHandle>,
}

impl Background {
    /// Starts the relay and, when `with_worker`, the worker (both stop with `shutdown`). On a
    /// queue that does not survive restarts (the in-process one), first re-dispatches every job
    /// left QUEUED, ASSIGNED or RUNNING by an earlier run of the process, so a restart loses
    /// none.
    ///
    /// # Errors
    /// The sweep's database or queue failed, or the worker could not start.
    pub async fn start(
        ctx: &AppContext,
        shutdown: &Shutdown,
        with_worker: bool,
    ) -> anyhow::Result<Self> {
        if ctx.queue.driver_kind() == QueueDriver::Memory {
            let swept = sweep(ctx).await.context("re-dispatching unfinished jobs")?;
            if swept > 0 {
                tracing::info!(
                    jobs = swept,
                    "re-dispatched jobs left unfinished by the last run"
                );
            }
        }
        let relay = ctx.buffer.spawn_relay_with(shutdown);
        let (worker, webhooks) = if with_worker {
            let jobs = worker(ctx)
                .with_shutdown(shutdown)
                .spawn()
                .context("starting the worker")?;
            let webhooks = crate::webhooks::worker(ctx)
                .with_shutdown(shutdown)
                .spawn()
                .context("starting the webhooks' worker")?;
            (Some(jobs), Some(webhooks))
        } else {
            (None, None)
        };
        Ok(Self {
            relay,
            worker,
            webhooks,
        })
    }
}

/// Re-dispatches every unfinished job with a new dispatch id (so any older dispatch that still
/// turns up does nothing), delayed to its `execution_at`.
async fn sweep(ctx: &AppContext) -> anyhow::Result<u64> {
    let mut count = 0;
    for row in store::queued(&ctx.db, i64::MAX).await? {
        let remaining = (row.max_attempts - row.attempt).max(1);
        let run = RunJob {
            job_id: row.id.clone(),
            attempts: u32::try_from(remaining).unwrap_or(1),
            backoff_unit_ms: backoff_unit_ms(ctx),
        };
        let mut tx = ctx.db.begin().await?;
        let dispatch = dispatch(ctx, &mut tx, &run, row.execution_at).await?;
        let sql = "UPDATE jobs SET dispatch_id = $1, version = version + 1 WHERE id = $2 AND version = $3";
        let changed = core_db::on_tx!(&mut tx, conn => sqlx::query(sql)
            .bind(dispatch.as_str())
            .bind(&row.id)
            .bind(row.version)
            .execute(conn)
            .await
            .map(|done| done.rows_affected()))?;
        if changed == 1 {
            ctx.buffer.commit(tx).await?;
            store::invalidate(&ctx.cache, &row.id).await;
            count += 1;
        } else {
            tx.rollback().await?;
        }
    }
    Ok(count)
}
