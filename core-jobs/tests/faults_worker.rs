//! The worker under faults: a slow `failed_jobs` store must not let the leases of running jobs
//! lapse (which would let another worker run them a second time, overlapping), and a worker that
//! finds it lost a job's lease tells the job and commits nothing for it.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use common::{Recorder, TestJob, wait_for, wait_until};
use core_db::Database;
use core_jobs::{Dispatch, FailedJob, FailedJobs, FailureRecord, Job, JobContext, Queue, Worker};
use serde::{Deserialize, Serialize};
use sqlx::Connection;

/// A Redis queue, a SQLite failure store (its file, to lock it from elsewhere) and a recorder.
struct Setup {
    redis: test_support::TestRedis,
    sqlite: test_support::TestSqlite,
    queue: Queue,
    ctx: JobContext,
    rec: Arc<Recorder>,
}

impl Setup {
    async fn new(test: &str) -> Option<Self> {
        let redis = test_support::redis(test).await?;
        let sqlite = test_support::sqlite().await;
        let queue = Queue::redis(&redis.url, redis.prefix.clone())
            .await
            .unwrap();
        let rec = Arc::new(Recorder::default());
        let ctx = JobContext::new(queue.clone())
            .with_database(Database::Sqlite(sqlite.pool.clone()))
            .with_extension(rec.clone());
        Some(Self {
            redis,
            sqlite,
            queue,
            ctx,
            rec,
        })
    }

    /// A worker with a 1 s lease and quick pending-failure flushes.
    fn worker(&self) -> Worker {
        Worker::new(self.queue.clone(), self.ctx.clone())
            .register::<TestJob>()
            .lease(Duration::from_secs(1))
            .block_for(Duration::from_millis(100))
            .pending_failures_every(Duration::from_millis(50))
    }

    async fn failed_rows(&self) -> Vec<FailedJob> {
        FailedJobs::new(Database::Sqlite(self.sqlite.pool.clone()))
            .list(100)
            .await
            .unwrap()
    }
}

/// Holds SQLite's write lock on `path` from another connection until dropped (or `release`d).
struct WriteLock(sqlx::SqliteConnection);

impl WriteLock {
    async fn take(path: &std::path::Path) -> Self {
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut conn)
            .await
            .unwrap();
        Self(conn)
    }

    async fn release(mut self) {
        sqlx::query("ROLLBACK").execute(&mut self.0).await.unwrap();
        self.0.close().await.unwrap();
    }
}

/// Puts a failure into the queue's pending list, as a worker does when `failed_jobs` is down.
async fn park_failure(redis: &test_support::TestRedis, job_id: &str) {
    let record = FailureRecord::new(job_id, "test_job", "default", "{}", "boom");
    let mut conn = redis.connection().await;
    let _: i64 = redis::cmd("RPUSH")
        .arg(redis.key("queue:default:failed-pending"))
        .arg(serde_json::to_string(&record).unwrap())
        .query_async(&mut conn)
        .await
        .unwrap();
}

/// A worker with a 1 s lease runs a job that takes four lease periods while `failed_jobs` is
/// locked and a parked failure waits to be flushed. A second worker recovers any lease that
/// lapses. The long job must run exactly once: the flush, stuck on the lock, must not delay
/// the lease extension.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_failed_jobs_table_does_not_let_leases_lapse() {
    let Some(h) = Setup::new("a_locked_failed_jobs_table_does_not_let_leases_lapse").await else {
        return;
    };
    let redis = &h.redis;
    let lock = WriteLock::take(&h.sqlite.path).await;
    park_failure(redis, "parked-before-start").await;
    TestJob::new("long")
        .sleeping(4_000)
        .dispatch(&h.queue)
        .await
        .unwrap();
    let a = h.worker().spawn().unwrap();
    assert!(wait_until(Duration::from_secs(10), || h.rec.runs("long") == 1).await);
    // Only now a second worker: it may only run the job if the first one's lease lapses.
    let b = h.worker().spawn().unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || a.stats().processed
            + b.stats().processed
            >= 1)
        .await,
        "the long job finishes"
    );
    // Give a second run (if one started) time to show.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        h.rec.runs("long"),
        1,
        "the long job ran once, not again on a lapsed lease"
    );
    // Once the lock is gone the parked failure is written.
    lock.release().await;
    assert!(
        wait_for(Duration::from_secs(10), || async {
            h.failed_rows()
                .await
                .iter()
                .any(|r| r.job_id == "parked-before-start")
        })
        .await,
        "the parked failure is written once failed_jobs answers"
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// Counts how often the job saw its lease lost, and how often it ran.
#[derive(Debug, Default)]
struct LeaseWatch {
    runs: AtomicU32,
    saw_lost: AtomicU32,
}

/// Runs until its lease is lost (at most 10 s), then fails: a worker that still committed its
/// outcome would write a `failed_jobs` row.
#[derive(Debug, Serialize, Deserialize)]
struct WaitsForLeaseLoss;

#[async_trait]
impl Job for WaitsForLeaseLoss {
    const NAME: &'static str = "waits_for_lease_loss";

    async fn handle(&self, ctx: &JobContext) -> anyhow::Result<()> {
        let watch = ctx.ext::<Arc<LeaseWatch>>().unwrap();
        watch.runs.fetch_add(1, Ordering::SeqCst);
        assert!(!ctx.lease_lost());
        if tokio::time::timeout(Duration::from_secs(10), ctx.lease_lost_notified())
            .await
            .is_ok()
            && ctx.lease_lost()
        {
            watch.saw_lost.fetch_add(1, Ordering::SeqCst);
        }
        anyhow::bail!("gave up after losing the lease")
    }

    fn max_retries(&self) -> u32 {
        0
    }
}

/// The job's lease disappears while it runs (as when it lapsed and another worker recovered
/// it). The worker notices at its next extension, tells the job through its context, and does
/// not commit the job's outcome: no `failed_jobs` row, no parked failure, nothing acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_lease_is_reported_to_the_job_and_its_outcome_is_not_committed() {
    let Some(h) =
        Setup::new("a_lost_lease_is_reported_to_the_job_and_its_outcome_is_not_committed").await
    else {
        return;
    };
    let redis = &h.redis;
    let watch = Arc::new(LeaseWatch::default());
    let ctx = h.ctx.clone().with_extension(watch.clone());
    let worker = Worker::new(h.queue.clone(), ctx)
        .register::<WaitsForLeaseLoss>()
        .lease(Duration::from_secs(1))
        .block_for(Duration::from_millis(100))
        .spawn()
        .unwrap();
    WaitsForLeaseLoss.dispatch(&h.queue).await.unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || watch
            .runs
            .load(Ordering::SeqCst)
            == 1)
        .await
    );
    // Take the lease away.
    let mut conn = redis.connection().await;
    let leases = redis.key("queue:default:leases");
    let leased: Vec<String> = redis::cmd("ZRANGE")
        .arg(&leases)
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(leased.len(), 1);
    let _: i64 = redis::cmd("ZREM")
        .arg(&leases)
        .arg(&leased[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || watch
            .saw_lost
            .load(Ordering::SeqCst)
            == 1)
        .await,
        "the job learns that its lease is lost"
    );
    assert!(wait_until(Duration::from_secs(10), || worker.stats().in_flight == 0).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        h.failed_rows().await.is_empty(),
        "no failed_jobs row for a run that lost its lease"
    );
    let pending: i64 = redis::cmd("LLEN")
        .arg(redis.key("queue:default:failed-pending"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(pending, 0, "no parked failure either");
    worker.shutdown().await;
}
