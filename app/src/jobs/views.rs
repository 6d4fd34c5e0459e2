//! Report views: how many times each job's report was read, counted in the cache and moved to
//! the database by a scheduled job, so that a read never writes a row.
//!
//! `GET /v1/jobs/{id}/report` adds one to the cache counter `report-views:{id}` ([`record`]).
//! The read that creates the counter (the increment answers 1) also writes the marker
//! `report-views-pending:{id}`, tagged [`TAG`], which is how the flush finds the counters
//! without scanning the cache. [`FlushReportViews`], scheduled every 15 seconds
//! ([`FLUSH_CRON`]), takes each marker, then the counter with [`Cache::pull`] (read and delete in
//! one atomic step, so a read counted meanwhile either lands in the value pulled or starts a new
//! counter with a new marker), and adds the value to `job_report_views` ([`add`]).
//!
//! The report shows the stored count plus the pending one, so a reader sees every read at once
//! (a read that races a flush of the same job may be off, once, by the views being moved).
//!
//! The limit: when the marker cannot be written (the cache failed between the increment and
//! the marker; logged), no flush finds that counter, since later reads do not answer 1: its
//! views still show in the report but stay in the cache, not in the database.

use std::time::Duration;

use anyhow::Context as _;
use core_db::{Cache, Database, on_db};
use core_jobs::{Job, JobContext};
use serde::{Deserialize, Serialize};

use crate::AppContext;

/// The tag of the markers of counters that hold views not yet stored.
pub const TAG: &str = "report-views";

/// When [`FlushReportViews`] runs: every 15 seconds.
pub const FLUSH_CRON: &str = "*/15 * * * * *";

/// How long a flush may hold the schedule's overlap lock (a pass takes milliseconds).
pub const FLUSH_LOCK: Duration = Duration::from_secs(60);

// region: view-keys
/// The cache counter of job `job_id`'s report reads not yet stored.
pub fn counter_key(job_id: &str) -> String {
    format!("report-views:{job_id}")
}

/// The marker that says job `job_id` has a counter to flush (tagged [`TAG`]).
pub fn pending_key(job_id: &str) -> String {
    format!("report-views-pending:{job_id}")
}
// endregion: view-keys

// region: record-view
/// Counts one read of job `job_id`'s report; the reads counted in the cache and not yet
/// stored, this one included. `None` when the cache failed (logged: a view is not worth
/// failing the report for).
pub async fn record(cache: &Cache, job_id: &str) -> Option<i64> {
    let pending = match cache.increment(&counter_key(job_id), 1).await {
        Ok(pending) => pending,
        Err(e) => {
            tracing::warn!(error = %e, job_id, "could not count the report view");
            return None;
        }
    };
    // The first read since the last flush announces the counter to the next one.
    if pending == 1 {
        mark(cache, job_id).await;
    }
    Some(pending)
}
// endregion: record-view

/// Writes job `job_id`'s marker (logged on failure).
async fn mark(cache: &Cache, job_id: &str) {
    if let Err(e) = cache
        .set_with_tags(&pending_key(job_id), "1", &[TAG], None)
        .await
    {
        tracing::warn!(error = %e, job_id, "could not mark the report views to flush");
    }
}

/// The report reads of job `job_id` already stored.
///
/// # Errors
/// The database failed.
pub async fn stored(db: &Database, job_id: &str) -> anyhow::Result<i64> {
    let sql = "SELECT views FROM job_report_views WHERE job_id = $1";
    let views: Option<i64> =
        on_db!(db, pool => sqlx::query_scalar(sql).bind(job_id).fetch_optional(pool).await)?;
    Ok(views.unwrap_or(0))
}

// region: add-views
/// Adds `views` to job `job_id`'s stored count; nothing when the job is gone (the retention
/// pass deleted it).
///
/// # Errors
/// The database failed.
pub async fn add(db: &Database, job_id: &str, views: i64) -> anyhow::Result<()> {
    let sql = "INSERT INTO job_report_views (job_id, views) SELECT id, $2 FROM jobs WHERE id = $1 \
               ON CONFLICT (job_id) DO UPDATE SET views = job_report_views.views + excluded.views";
    on_db!(db, pool => sqlx::query(sql).bind(job_id).bind(views).execute(pool).await.map(drop))?;
    Ok(())
}
// endregion: add-views

// region: flush
/// Moves every pending counter into the database; how many views it stored.
///
/// For each marker: forget the marker, then pull the counter. In that order a read that
/// lands between the two is in the value pulled, and a read after the pull finds no counter,
/// starts one (it answers 1) and writes a new marker for the next pass, so no view is lost or
/// stored twice. When the database fails, the views go back into the counter.
///
/// # Errors
/// The cache or the database failed (the counters not reached yet wait for the next pass).
pub async fn flush(app: &AppContext) -> anyhow::Result<u64> {
    let mut total = 0;
    for marker in app.cache.get_keys_by_tag(TAG).await? {
        let Some(job_id) = marker.strip_prefix("report-views-pending:") else {
            continue;
        };
        app.cache.forget(&marker).await?;
        let Some(value) = app.cache.pull(&counter_key(job_id)).await? else {
            continue;
        };
        let views: i64 = value
            .parse()
            .with_context(|| format!("report views of {job_id}: {value:?}"))?;
        if let Err(e) = add(&app.db, job_id, views).await {
            app.cache.increment(&counter_key(job_id), views).await?;
            mark(&app.cache, job_id).await;
            return Err(e);
        }
        total += u64::try_from(views).unwrap_or(0);
    }
    Ok(total)
}
// endregion: flush

/// The scheduled job that runs [`flush`] (see [`FLUSH_CRON`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlushReportViews;

#[core_jobs::async_trait]
impl Job for FlushReportViews {
    const NAME: &'static str = "forgerun.report_views";

    async fn handle(&self, ctx: &JobContext) -> anyhow::Result<()> {
        let app = AppContext::of(ctx)?;
        let views = flush(app).await?;
        if views > 0 {
            tracing::info!(action = "report_views", views, "report views stored");
        }
        Ok(())
    }
}
