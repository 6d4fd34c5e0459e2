//! [`Retention`]: the scheduled job that deletes what ForgeRun no longer keeps.
//!
//! - final jobs whose `finished_at` is older than `JOB_RETENTION` (default 30 days), with their
//!   events, artifacts (rows and stored files) and cached reads;
//! - revoked API keys older than [`REVOKED_KEYS_KEPT`] (kept that long for audit);
//! - idempotency keys older than 24 hours.
//!
//! [`scheduler`] runs it hourly on the core-jobs scheduler (with the report views' flush,
//! [`views`]); with several schedulers on the Redis queue each tick is dispatched once, and
//! `without_overlapping` keeps two runs apart.

use std::time::Duration;

use core_db::db::Timestamp;
use core_db::on_db;
use core_jobs::schedule::ScheduledJob;
use core_jobs::{Job, JobContext, Scheduler, Shutdown};
use serde::{Deserialize, Serialize};

use super::{store, views};
use crate::AppContext;

/// How long revoked API keys are kept for audit.
pub const REVOKED_KEYS_KEPT: Duration = Duration::from_secs(90 * 86_400);

/// Jobs deleted per statement, so one pass never holds a long transaction.
const BATCH: i64 = 500;

/// Deletes what the retention rules no longer keep.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention;

/// What one pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Final jobs (with their events and artifacts).
    pub jobs: u64,
    /// Revoked API keys.
    pub keys: u64,
    /// Idempotency keys.
    pub idempotency_keys: u64,
    /// Webhook messages and delivery attempts deleted (older than `JOB_RETENTION`).
    pub deliveries: u64,
}

#[core_jobs::async_trait]
impl Job for Retention {
    const NAME: &'static str = "forgerun.retention";

    async fn handle(&self, ctx: &JobContext) -> anyhow::Result<()> {
        let app = AppContext::of(ctx)?;
        let pruned = prune(app, Timestamp::now()).await?;
        tracing::info!(
            action = "retention",
            jobs = pruned.jobs,
            keys = pruned.keys,
            idempotency_keys = pruned.idempotency_keys,
            deliveries = pruned.deliveries,
            "retention pass"
        );
        Ok(())
    }
}

/// One pass at time `now`.
///
/// # Errors
/// The database or storage failed (what was deleted before stays deleted).
pub async fn prune(app: &AppContext, now: Timestamp) -> anyhow::Result<Pruned> {
    let db = &app.db;
    let cutoff = Timestamp::from(
        now.get() - chrono::Duration::from_std(app.settings.forgerun.job_retention)?,
    );
    let mut pruned = Pruned::default();
    loop {
        let sql = "SELECT id FROM jobs WHERE finished_at IS NOT NULL AND finished_at < $1 \
                   AND state IN ('SUCCEEDED', 'FAILED', 'CANCELED') ORDER BY finished_at LIMIT $2";
        let ids: Vec<String> = on_db!(db, pool => sqlx::query_scalar(sql).bind(cutoff).bind(BATCH).fetch_all(pool).await)?;
        if ids.is_empty() {
            break;
        }
        for id in &ids {
            for artifact in store::artifacts(db, id).await? {
                app.storage.delete(&artifact.storage_key).await?;
            }
            let sql = "DELETE FROM jobs WHERE id = $1 AND finished_at < $2";
            let deleted = on_db!(db, pool => sqlx::query(sql).bind(id).bind(cutoff).execute(pool).await.map(|d| d.rows_affected()))?;
            if deleted == 1 {
                pruned.jobs += 1;
                store::invalidate(&app.cache, id).await;
            }
        }
        if ids.len() < usize::try_from(BATCH).unwrap_or(usize::MAX) {
            break;
        }
    }
    let keys_cutoff = Timestamp::from(now.get() - chrono::Duration::from_std(REVOKED_KEYS_KEPT)?);
    let sql = "DELETE FROM api_keys WHERE revoked_at IS NOT NULL AND revoked_at < $1";
    pruned.keys = on_db!(db, pool => sqlx::query(sql).bind(keys_cutoff).execute(pool).await.map(|d| d.rows_affected()))?;
    pruned.idempotency_keys = crate::idempotency::prune(db).await?;
    for table in ["webhook_deliveries", "webhook_messages"] {
        let sql = format!("DELETE FROM {table} WHERE created_at < $1");
        pruned.deliveries += on_db!(db, pool => sqlx::query(&sql).bind(cutoff).execute(pool).await.map(|d| d.rows_affected()))?;
    }
    Ok(pruned)
}

// region: schedule
/// The application's schedule: [`Retention`] at minute 17 of every hour, and the report views'
/// flush ([`views::FlushReportViews`]) every 15 seconds. The jobs dashboard shows it too.
///
/// # Errors
/// An invalid cron expression (a bug).
pub fn schedule() -> anyhow::Result<Vec<ScheduledJob>> {
    let retention = ScheduledJob::new("0 17 * * * *", || Retention)?
        .without_overlapping_for(Duration::from_secs(3600));
    let report_views = ScheduledJob::new(views::FLUSH_CRON, || views::FlushReportViews)?
        .without_overlapping_for(views::FLUSH_LOCK);
    Ok(vec![retention, report_views])
}

/// The scheduler that dispatches [`schedule`] to the application's queue.
///
/// # Errors
/// An invalid cron expression (a bug).
pub fn scheduler(ctx: &AppContext, shutdown: &Shutdown) -> anyhow::Result<Scheduler> {
    let scheduler = Scheduler::new(ctx.queue.clone())
        .with_cache(ctx.cache.clone())
        .with_shutdown(shutdown);
    Ok(schedule()?.into_iter().fold(scheduler, Scheduler::job))
}
// endregion: schedule
