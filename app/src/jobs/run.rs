//! [`RunJob`]: the core-jobs job that runs one ForgeRun job's attempts.
//!
//! Submitting a job dispatches one `RunJob` (through the `JobBuffer`, in the submitting
//! transaction); core-jobs retries it with the job's backoff while attempts remain and calls
//! [`Job::failed`] after the last. Each run:
//!
//! 1. reads the job; a job gone, final, or owned by another dispatch (a duplicate delivery or a
//!    dispatch replaced by the start-up sweep) is left alone;
//! 2. a job still ASSIGNED or RUNNING was being run by a worker that died: it goes back to
//!    QUEUED (`worker lost`), counted as a failed attempt;
//! 3. waits for `execution_at` if it is not there yet (a job never starts early);
//! 4. QUEUED → ASSIGNED (attempt + 1) → RUNNING, one compare-and-set writing both events (a
//!    cancel that lands first wins); its commit does not wait for the disk flush, since a
//!    database crash that undid it only makes the redelivered job start again. On PostgreSQL
//!    the usual case (a QUEUED job of this dispatch, due now) is steps 1–4 in one statement
//!    ([`store::start`]); anything else takes the steps one by one;
//! 5. runs the work, checking every 100 ms whether the client asked it to stop;
//! 6. finishes with one durable compare-and-set that also stores a small output: SUCCEEDED; CANCELED when it stopped on request (or
//!    failed while a cancel was pending); back to QUEUED with the error when attempts remain
//!    (core-jobs runs it again after the backoff); on the last attempt the error is returned
//!    and `failed()` marks the job FAILED with its reason.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use bytes::Bytes;
use core_db::db::Timestamp;
use core_jobs::{Job, JobContext};
use serde::{Deserialize, Serialize};

use super::kinds::{Effort, Failure, INLINE_LIMIT, Output, WorkKind, output_bytes};
use super::state::State;
use super::store::{self, ArtifactRow, Guard, JobRow, Moved};
use crate::AppContext;

/// How often a running job checks for a cancel request.
pub const CANCEL_POLL: Duration = Duration::from_millis(100);

// region: run-job
/// Runs ForgeRun job `job_id`; `attempts` is how many runs this dispatch allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunJob {
    /// The ForgeRun job.
    pub job_id: String,
    /// Runs this dispatch allows (the job's remaining attempts when it was dispatched).
    pub attempts: u32,
    /// The scaled backoff unit, in milliseconds, so retries follow `WORK_TIME_SCALE`.
    pub backoff_unit_ms: u64,
}

/// How an attempt ended.
enum Ended {
    Done,
    Canceled,
    Failed(String),
}

#[core_jobs::async_trait]
impl Job for RunJob {
    const NAME: &'static str = "forgerun.run";

    async fn handle(&self, ctx: &JobContext) -> anyhow::Result<()> {
        let app = AppContext::of(ctx)?;
        let dispatch = ctx.job_id().map(|id| id.as_str().to_owned());
        run(app, self, dispatch.as_deref(), ctx).await
    }

    fn max_retries(&self) -> u32 {
        self.attempts.saturating_sub(1)
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(16);
        let base = Duration::from_millis(self.backoff_unit_ms.saturating_mul(1 << exp));
        base.min(Duration::from_secs(600))
            .mul_f64(rand::random_range(0.8..=1.2))
    }

    fn timeout(&self) -> Duration {
        // The work enforces MAX_RUNTIME_MS itself; this only bounds a run that hangs elsewhere.
        Duration::from_secs(3600)
    }

    // region: ch7-failed-callback
    async fn failed(&self, ctx: &JobContext, error: &str) -> anyhow::Result<()> {
        let app = AppContext::of(ctx)?;
        fail(app, &self.job_id, error).await
    }
    // endregion: ch7-failed-callback
}
// endregion: run-job

async fn run(
    app: &AppContext,
    job: &RunJob,
    dispatch: Option<&str>,
    ctx: &JobContext,
) -> anyhow::Result<()> {
    let db = &app.db;
    let id = job.job_id.as_str();
    // region: ch8-start
    // The usual case, a QUEUED job of this dispatch that is due, starts in one statement.
    let started = match dispatch {
        Some(dispatch) => store::start(app, id, dispatch).await?,
        None => None,
    };
    // endregion: ch8-start
    let row = match started {
        Some(row) => row,
        None => match start(app, id, dispatch).await? {
            Some(row) => row,
            None => return Ok(()),
        },
    };
    let guard = Guard {
        dispatch_id: dispatch,
        ..Guard::default()
    };
    let attempt = row.attempt;
    let worker = Guard {
        attempt: Some(attempt),
        ..guard
    };
    let (ended, output) = match work(app, &row, ctx).await {
        Ok(done) => done,
        Err(e) => (Ended::Failed(format!("{e:#}")), None),
    };
    let output = output.as_deref();
    // The attempt's end: one durable transaction on the row as the start left it, with the
    // output.
    let end = store::Move {
        guard: worker,
        seen: Some(row.clone()),
        output,
        ..store::Move::to(State::Succeeded)
    };
    match ended {
        Ended::Done => {
            let moved = store::apply(app, id, end, |r| {
                r.error = None;
                r.retryable = false;
            })
            .await?;
            if let Moved::Refused(now) = moved {
                tracing::warn!(
                    job_id = id,
                    state = now.state,
                    "finished a job no longer ours"
                );
            }
            Ok(())
        }
        Ended::Canceled => {
            let step = store::Move {
                to: State::Canceled,
                detail: Some("canceled while running"),
                ..end
            };
            store::apply(app, id, step, |_| {}).await?;
            Ok(())
        }
        Ended::Failed(reason) => {
            if store::cancel_requested(db, id).await? {
                let step = store::Move {
                    to: State::Canceled,
                    detail: Some(&reason),
                    seen: None,
                    ..end
                };
                store::apply(app, id, step, |r| {
                    r.error = Some(reason.clone());
                })
                .await?;
                return Ok(());
            }
            // region: attempt-failed
            let retryable = WorkKind::parse(&row.work_kind).is_some_and(|k| k.spec().retryable);
            // region: ch7-last-attempt
            if ctx.attempt() < job.attempts && attempt < row.max_attempts {
                let detail = format!("attempt {attempt} failed: {reason}");
                let step = store::Move {
                    to: State::Queued,
                    detail: Some(&detail),
                    seen: None,
                    ..end
                };
                store::apply(app, id, step, |r| {
                    r.error = Some(reason.clone());
                    r.retryable = retryable;
                })
                .await?;
            } else {
                // The last attempt: core-jobs calls `failed()`, which marks the job FAILED.
                store::set_error(db, id, &reason, retryable, output).await?;
            }
            Err(anyhow!(reason))
            // endregion: ch7-last-attempt
            // endregion: attempt-failed
        }
    }
}

/// Steps 1–4 when the one-statement start did not apply: reads the job and starts it if this
/// dispatch may (recovering a dead worker's attempt, waiting for `execution_at`); the RUNNING
/// row, or `None` when the job is not this dispatch's to run.
async fn start(
    app: &AppContext,
    id: &str,
    dispatch: Option<&str>,
) -> anyhow::Result<Option<JobRow>> {
    let db = &app.db;
    let Some(mut row) = store::find(db, id).await? else {
        return Ok(None);
    };
    if dispatch.is_some() && row.dispatch_id.as_deref() != dispatch {
        tracing::debug!(job_id = id, "stale dispatch: another dispatch owns the job");
        return Ok(None);
    }
    let guard = Guard {
        dispatch_id: dispatch,
        ..Guard::default()
    };
    if matches!(row.state(), State::Assigned | State::Running) {
        match store::transition(app, id, State::Queued, guard, Some("worker lost"), |r| {
            r.error = Some("worker lost".to_owned());
        })
        .await?
        {
            Moved::Applied(r) => row = r,
            Moved::Refused(_) | Moved::Missing => return Ok(None),
        }
    }
    // region: ch7-final
    if row.state() != State::Queued {
        return Ok(None);
    }
    // endregion: ch7-final
    if let Some(at) = row.execution_at {
        let wait = (at.get() - chrono::Utc::now()).to_std().unwrap_or_default();
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
    // QUEUED → ASSIGNED → RUNNING in one transaction on the row just read. Its commit does not
    // wait for the disk: if the database crashed before flushing it, the queue's redelivery
    // finds the job QUEUED and starts it again.
    let start = store::Move {
        via: Some(State::Assigned),
        guard,
        seen: Some(row),
        relaxed: true,
        ..store::Move::to(State::Running)
    };
    match store::apply(app, id, start, |r| {
        r.attempt += 1;
        r.cancel_requested = false;
    })
    .await?
    {
        Moved::Applied(r) => Ok(Some(r)),
        Moved::Refused(_) | Moved::Missing => Ok(None),
    }
}

// region: fail
/// Marks job `id` FAILED with `reason` (CANCELED when a cancel was pending), from whatever
/// active state the last attempt left it in, through allowed transitions only.
async fn fail(app: &AppContext, id: &str, reason: &str) -> anyhow::Result<()> {
    let db = &app.db;
    for _ in 0..4 {
        let Some(row) = store::find(db, id).await? else {
            return Ok(());
        };
        let retryable = row.retryable;
        let step = match row.state() {
            State::Running if row.cancel_requested => State::Canceled,
            State::Running => State::Failed,
            State::Assigned => State::Running,
            State::Queued => State::Assigned,
            State::Created => State::Queued,
            State::Succeeded | State::Failed | State::Canceled => return Ok(()),
        };
        let guard = Guard {
            attempt: Some(row.attempt),
            ..Guard::default()
        };
        store::transition(app, id, step, guard, Some(reason), |r| {
            if matches!(step, State::Failed | State::Canceled) {
                r.error = Some(reason.to_owned());
                r.retryable = retryable;
            }
        })
        .await?;
    }
    Err(anyhow!("job {id} could not be marked failed"))
}
// endregion: fail

/// Runs the work of `row`'s kind: waits for the scaled duration (or burns CPU, holds memory,
/// does I/O), watching for a cancel request, within `MAX_RUNTIME_MS`; then stores the output
/// (artifacts in Storage; a small output is returned, for the row).
async fn work(
    app: &AppContext,
    row: &JobRow,
    ctx: &JobContext,
) -> anyhow::Result<(Ended, Option<String>)> {
    let kind = WorkKind::parse(&row.work_kind)
        .with_context(|| format!("unknown work kind {:?}", row.work_kind))?;
    let config = &app.settings.forgerun;
    let scale = config.work_time_scale;
    let limit = config.max_runtime.mul_f64(scale);
    let duration = kind.duration(scale, config.max_runtime);
    let spec = kind.spec();

    let stop = Arc::new(AtomicBool::new(false));
    let effort = effort(app, row, spec.effort, duration, stop.clone());
    let watch = watch_cancel(app, &row.id, ctx);
    let runs_over = spec.failure == Failure::Timeout;
    let outcome = tokio::select! {
        result = async {
            if runs_over || limit.is_zero() {
                effort.await.map(|()| false)
            } else {
                match tokio::time::timeout(limit, effort).await {
                    Ok(r) => r.map(|()| false),
                    Err(_) => Ok(true),
                }
            }
        } => result.map(Some),
        () = watch => Ok(None),
    };
    stop.store(true, Ordering::Relaxed);
    let timed_out = match outcome? {
        None => return Ok((Ended::Canceled, None)),
        Some(timed_out) => timed_out || runs_over,
    };
    let output = write_output(app, row, spec.output).await?;
    if timed_out {
        let reason = format!(
            "timeout: ran past MAX_RUNTIME_MS ({} ms)",
            limit.as_millis()
        );
        return Ok((Ended::Failed(reason), output));
    }
    let fails = match spec.failure {
        Failure::Never => false,
        Failure::Always | Failure::Timeout => true,
        Failure::FirstAttempt => row.attempt <= 1,
    };
    let ended = if fails {
        Ended::Failed(format!(
            "{} failed on attempt {}",
            kind.as_str(),
            row.attempt
        ))
    } else {
        Ended::Done
    };
    Ok((ended, output))
}

/// Completes when the client asks the job to stop or the worker loses the lease.
async fn watch_cancel(app: &AppContext, id: &str, ctx: &JobContext) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(CANCEL_POLL) => {}
            () = ctx.lease_lost_notified() => return,
        }
        match store::cancel_requested(&app.db, id).await {
            Ok(true) => return,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, job_id = id, "could not check for a cancel"),
        }
    }
}

/// The work itself, for `duration`.
async fn effort(
    app: &AppContext,
    row: &JobRow,
    effort: Effort,
    duration: Duration,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    match effort {
        Effort::Wait => {
            tokio::time::sleep(duration).await;
            Ok(())
        }
        Effort::Memory => {
            let buffer = vec![1u8; 64 * 1024 * 1024];
            tokio::time::sleep(duration).await;
            std::hint::black_box(&buffer);
            Ok(())
        }
        Effort::Cpu => {
            let work = tokio::task::spawn_blocking(move || burn(duration, &stop));
            work.await.context("the CPU work panicked")?;
            Ok(())
        }
        Effort::Io => io_heavy(app, &row.id, duration).await,
    }
}

/// Hashes in a loop until `duration` has passed or `stop` is set; returns the digest so the
/// work cannot be optimised away.
fn burn(duration: Duration, stop: &AtomicBool) -> u64 {
    let start = Instant::now();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    loop {
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        if start.elapsed() >= duration || stop.load(Ordering::Relaxed) {
            return std::hint::black_box(x);
        }
    }
}

/// Writes and reads back 64 KB blocks through Storage until `duration` has passed (at least
/// one round), then deletes them.
async fn io_heavy(app: &AppContext, id: &str, duration: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    let mut round = 0usize;
    loop {
        let key = format!("jobs/{id}/scratch/{}.bin", round % 4);
        let block = Bytes::from(output_bytes(id, &key, 64 * 1024));
        app.storage
            .put(&key, block.clone(), "application/octet-stream")
            .await?;
        let back = app
            .storage
            .get(&key)
            .await?
            .context("a block just written is missing")?;
        anyhow::ensure!(
            back == block,
            "a block read back differs from what was written"
        );
        round += 1;
        if start.elapsed() >= duration {
            break;
        }
    }
    for n in 0..round.min(4) {
        app.storage
            .delete(&format!("jobs/{id}/scratch/{n}.bin"))
            .await?;
    }
    Ok(())
}

/// Keeps the output: up to [`INLINE_LIMIT`] it is returned, for the attempt's last
/// transition to write into the row; larger outputs become artifacts in Storage.
async fn write_output(
    app: &AppContext,
    row: &JobRow,
    output: Output,
) -> anyhow::Result<Option<String>> {
    match output {
        Output::Bytes(0) => Ok(None),
        Output::Bytes(len) if len <= INLINE_LIMIT => {
            let text = output_bytes(&row.id, "output", len);
            Ok(Some(String::from_utf8(text).context("output is ASCII")?))
        }
        Output::Bytes(len) => {
            put_artifact(app, &row.id, "output.txt", len).await?;
            Ok(None)
        }
        Output::Many { count, each } => {
            for n in 0..count {
                put_artifact(app, &row.id, &format!("part-{n:03}.txt"), each).await?;
            }
            Ok(None)
        }
    }
}

async fn put_artifact(app: &AppContext, id: &str, name: &str, len: usize) -> anyhow::Result<()> {
    let key = format!("jobs/{id}/artifacts/{name}");
    let bytes = output_bytes(id, name, len);
    app.storage
        .put(&key, Bytes::from(bytes), "text/plain; charset=utf-8")
        .await?;
    let artifact = ArtifactRow {
        name: name.to_owned(),
        storage_key: key,
        size: i64::try_from(len).unwrap_or(i64::MAX),
        content_type: "text/plain; charset=utf-8".to_owned(),
        created_at: Timestamp::now(),
    };
    store::put_artifact(&app.db, id, &artifact).await
}
