//! `GET api/jobs/running` and `GET api/jobs/recent`, and the `jobs` events of `GET api/events`:
//! the jobs running now, read from the queue driver (workers in every process), and the last
//! jobs finished by this process's workers, from core-jobs' in-process ring
//! ([`JobCounters::keep_recent`](core_jobs::JobCounters::keep_recent), turned on by
//! [`recent_jobs`](crate::DashboardBuilder::recent_jobs)).
//!
//! Both routes take `queue` (one of the shown queues; all of them when not given, and an
//! unknown one is a 422) and `limit` (1 to [`MAX_LIMIT`], [`DEFAULT_LIMIT`] when not given).

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use chrono::{DateTime, Utc};
use core_jobs::{RecentJob, RecentOutcome, RunningJob};
use core_web::{ApiResponse, ApiResult, AppError, FieldErrors};
use serde::Serialize;

use crate::dashboard::Inner;
use crate::filter;

/// How many jobs a route lists when `limit` is not given, and how many per shown queue each
/// list of a `jobs` event holds.
pub(crate) const DEFAULT_LIMIT: usize = 50;

/// The largest `limit` the routes take.
pub(crate) const MAX_LIMIT: usize = 200;

/// A running job, as the API shows it.
#[derive(Debug, Serialize)]
pub(crate) struct RunningRow {
    id: String,
    name: String,
    queue: String,
    /// 1 for the first run.
    attempt: u32,
    group: Option<String>,
    /// When the job was first dispatched, `null` when its envelope does not say.
    dispatched_at: Option<DateTime<Utc>>,
    /// When its lease ends unless its worker extends it.
    lease_expires_at: DateTime<Utc>,
}

impl From<RunningJob> for RunningRow {
    fn from(job: RunningJob) -> Self {
        Self {
            id: job.id,
            name: job.name,
            queue: job.queue,
            attempt: job.attempt,
            group: job.group,
            dispatched_at: job.dispatched_at,
            lease_expires_at: job.lease_expires_at,
        }
    }
}

/// A finished job, as the API shows it.
#[derive(Debug, Serialize)]
pub(crate) struct RecentRow {
    id: String,
    name: String,
    queue: String,
    /// `succeeded`, `failed` or `retried`.
    outcome: RecentOutcome,
    /// The attempt that ended, 1 for the first run.
    attempt: u32,
    finished_at: DateTime<Utc>,
    /// How long the run took, in milliseconds.
    duration_ms: u64,
}

impl From<RecentJob> for RecentRow {
    fn from(job: RecentJob) -> Self {
        Self {
            id: job.id,
            name: job.name,
            queue: job.queue,
            outcome: job.outcome,
            attempt: job.attempt,
            finished_at: job.finished_at,
            duration_ms: u64::try_from(job.duration.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// The data of a `jobs` event.
#[derive(Debug, Serialize)]
pub(crate) struct JobsReply {
    /// The shown queues, in order.
    queues: Vec<String>,
    /// Up to [`DEFAULT_LIMIT`] per shown queue, oldest dispatch first.
    running: Vec<RunningRow>,
    /// Up to [`DEFAULT_LIMIT`] per shown queue, newest first.
    recent: Vec<RecentRow>,
}

/// The checked query of both routes.
struct JobsQuery {
    /// A shown queue, or `None` for all of them.
    queue: Option<String>,
    limit: usize,
}

/// Reads `queue` and `limit`; field errors are a 422, as the failed jobs' filter answers.
fn query(s: &Inner, raw: Option<&str>) -> Result<JobsQuery, AppError> {
    let mut errors = FieldErrors::new();
    let mut queue = None;
    let mut limit = DEFAULT_LIMIT;
    for (key, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        match key.as_ref() {
            "queue" if value.is_empty() => {}
            "queue" if s.queues.iter().any(|q| *q == value) => queue = Some(value.into_owned()),
            "queue" => errors.entry("queue".to_owned()).or_default().push(format!(
                "is not a queue this dashboard shows ({})",
                s.queues.join(", ")
            )),
            "limit" if value.is_empty() => {}
            "limit" => match value.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => limit = n,
                _ => errors
                    .entry("limit".to_owned())
                    .or_default()
                    .push(format!("must be a whole number from 1 to {MAX_LIMIT}")),
            },
            _ => {}
        }
    }
    if errors.is_empty() {
        Ok(JobsQuery { queue, limit })
    } else {
        Err(filter::validation(errors))
    }
}

/// The queues a query covers.
fn covered<'a>(s: &'a Inner, queue: Option<&'a str>) -> Vec<&'a str> {
    match queue {
        Some(q) => vec![q],
        None => s.queues.iter().map(String::as_str).collect(),
    }
}

/// Up to `per_queue` running jobs of each of `queues`, in [`Queue::running`]'s order.
///
/// [`Queue::running`]: core_jobs::Queue::running
async fn running(
    s: &Inner,
    queues: &[&str],
    per_queue: usize,
) -> Result<Vec<RunningJob>, AppError> {
    let lists =
        futures_util::future::try_join_all(queues.iter().map(|q| s.queue.running(q, per_queue)))
            .await?;
    let mut jobs: Vec<RunningJob> = lists.into_iter().flatten().collect();
    core_jobs::queue::sort_running(&mut jobs);
    Ok(jobs)
}

/// Up to `per_queue` recent jobs of each of `queues`, newest first.
fn recent(s: &Inner, queues: &[&str], per_queue: usize) -> Vec<RecentRow> {
    let mut taken = vec![0usize; queues.len()];
    s.counters
        .recent()
        .into_iter()
        .filter(|job| match queues.iter().position(|q| *q == job.queue) {
            Some(i) if taken[i] < per_queue => {
                taken[i] += 1;
                true
            }
            _ => false,
        })
        .map(RecentRow::from)
        .collect()
}

/// `GET api/jobs/running`.
pub(crate) async fn running_route(
    State(s): State<Arc<Inner>>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Vec<RunningRow>> {
    let q = query(&s, raw.as_deref())?;
    let queues = covered(&s, q.queue.as_deref());
    let mut jobs = running(&s, &queues, q.limit).await?;
    jobs.truncate(q.limit);
    Ok(ApiResponse::success(
        jobs.into_iter().map(RunningRow::from).collect(),
        "",
    ))
}

/// `GET api/jobs/recent`.
pub(crate) async fn recent_route(
    State(s): State<Arc<Inner>>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Vec<RecentRow>> {
    let q = query(&s, raw.as_deref())?;
    let queues = covered(&s, q.queue.as_deref());
    let mut jobs = recent(&s, &queues, q.limit);
    jobs.truncate(q.limit);
    Ok(ApiResponse::success(jobs, ""))
}

/// The data of a `jobs` event: both lists for every shown queue, up to [`DEFAULT_LIMIT`] per
/// queue each.
pub(crate) async fn jobs_reply(s: &Inner) -> Result<JobsReply, AppError> {
    let queues = covered(s, None);
    let running = running(s, &queues, DEFAULT_LIMIT).await?;
    Ok(JobsReply {
        queues: s.queues.clone(),
        running: running.into_iter().map(RunningRow::from).collect(),
        recent: recent(s, &queues, DEFAULT_LIMIT),
    })
}
