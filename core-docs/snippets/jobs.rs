//! Jobs: defining, dispatching, running, retrying, failing, buffering and scheduling them.

use std::time::Duration;

use core_db::{Cache, Database};
use core_jobs::schedule::ScheduledJob;
use core_jobs::{
    Dispatch, DispatchOptions, FailedJobs, Job, JobBuffer, JobContext, JobId, Queue, Scheduler,
    Shutdown, Worker, WorkerHandle,
};
use serde::{Deserialize, Serialize};

// region: define
/// A job is a small serializable value (ids, not rows) with an async handler.
#[derive(Debug, Serialize, Deserialize)]
pub struct SendWelcomeEmail {
    pub user_id: i64,
}

#[core_jobs::async_trait]
impl Job for SendWelcomeEmail {
    const NAME: &'static str = "send_welcome_email"; // never rename while jobs are queued
    const QUEUE: &'static str = "mail"; // default: "default"

    async fn handle(&self, ctx: &JobContext) -> anyhow::Result<()> {
        let db = ctx.db()?;
        let mailer = ctx
            .ext::<Mailer>()
            .expect("the worker's context has a Mailer");
        let email = find_email(db, self.user_id).await?;
        mailer.send(&email, "Welcome!").await?;
        Ok(())
    }
}
// endregion: define

// region: retries
#[derive(Debug, Serialize, Deserialize)]
pub struct SyncInvoice {
    pub invoice_id: i64,
}

#[core_jobs::async_trait]
impl Job for SyncInvoice {
    const NAME: &'static str = "sync_invoice";

    async fn handle(&self, _ctx: &JobContext) -> anyhow::Result<()> {
        call_billing_api(self.invoice_id).await
    }

    fn max_retries(&self) -> u32 {
        5 // six attempts in all (default: 3 retries)
    }

    fn backoff(&self, attempt: u32) -> Duration {
        Duration::from_secs(30 * u64::from(attempt)) // 30 s, 60 s, 90 s, …
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(20) // a run past it is cancelled and counts as failed (default 60 s)
    }

    // region: failed
    /// Runs once, after the last attempt failed and before the `failed_jobs` row is written.
    async fn failed(&self, ctx: &JobContext, error: &str) -> anyhow::Result<()> {
        tracing::error!(invoice = self.invoice_id, error, "invoice sync given up");
        mark_invoice_unsynced(ctx.db()?, self.invoice_id).await?;
        Ok(()) // an Err or a panic here is logged; the row is written all the same
    }
    // endregion: failed
}
// endregion: retries

// region: dispatch
pub async fn resend_welcome(queue: &Queue, user_id: i64) -> core_jobs::Result<JobId> {
    // As soon as a worker is free; returns the job's id.
    SendWelcomeEmail { user_id }.dispatch(queue).await
}

pub async fn on_sign_up(queue: &Queue, user_id: i64) -> core_jobs::Result<Option<JobId>> {
    // At most once per key while the key lives (a day here): None when already dispatched.
    let once =
        DispatchOptions::new().unique(format!("welcome:{user_id}"), Duration::from_secs(86_400));
    let id = SendWelcomeEmail { user_id }
        .dispatch_with(queue, once)
        .await?;

    // Later: in an hour (dispatch_at takes a DateTime<Utc>).
    SyncInvoice {
        invoice_id: user_id,
    }
    .dispatch_in(queue, Duration::from_secs(3600))
    .await?;
    Ok(id)
}
// endregion: dispatch

// region: worker
pub async fn start_worker(
    db: Database,
    cache: Cache,
    queue: Queue,
) -> core_jobs::Result<WorkerHandle> {
    let context = JobContext::new(queue.clone())
        .with_database(db) // ctx.db(); failed_jobs rows are written there too
        .with_cache(cache) // ctx.cache()
        .with_extension(Mailer::default()); // ctx.ext::<Mailer>()
    Worker::new(queue, context)
        .register::<SendWelcomeEmail>() // listens on its QUEUE, "mail"
        .register::<SyncInvoice>() // listens on "default"
        .concurrency(8) // jobs running at once (default 16)
        .spawn() // `.run().await` instead runs until SIGINT/SIGTERM
}
// endregion: worker

// region: failed-jobs
pub async fn review_failures(db: &Database, queue: &Queue) -> core_jobs::Result<()> {
    let failed = FailedJobs::new(db.clone());
    for job in failed.list(50).await? {
        tracing::info!(id = job.id, name = %job.job_name, attempts = job.attempts, error = %job.error, "failed");
        if job.job_name == SyncInvoice::NAME {
            failed.retry(job.id, queue).await?; // same id and payload, attempts reset; row deleted
        } else {
            failed.forget(job.id).await?;
        }
    }
    failed.prune(Duration::from_secs(30 * 24 * 3600)).await?; // older than 30 days
    Ok(())
}
// endregion: failed-jobs

// region: grouped
/// Jobs of one group run one at a time, in dispatch order, on any number of workers.
#[derive(Debug, Serialize, Deserialize)]
pub struct ApplyLedgerEntry {
    pub account_id: i64,
    pub amount_cents: i64,
}

#[core_jobs::async_trait]
impl Job for ApplyLedgerEntry {
    const NAME: &'static str = "apply_ledger_entry";

    async fn handle(&self, _ctx: &JobContext) -> anyhow::Result<()> {
        Ok(())
    }

    fn group_id(&self) -> Option<String> {
        Some(format!("account:{}", self.account_id))
    }
}
// endregion: grouped

// region: buffer
pub async fn place_order(db: &Database, buffer: &JobBuffer, order_id: i64) -> anyhow::Result<()> {
    let mut tx = db.begin().await?;
    tx.execute(&format!("INSERT INTO orders (id) VALUES ({order_id})"))
        .await?;
    // Written to the job_outbox table inside the same transaction:
    buffer
        .push(
            &mut tx,
            &SyncInvoice {
                invoice_id: order_id,
            },
        )
        .await?;
    buffer.commit(tx).await?; // the job reaches the queue right after the commit
    Ok(())
}

pub fn start_relay(db: Database, queue: Queue) -> core_jobs::buffer::RelayHandle {
    // One relay per process moves committed jobs to the queue; several relays never
    // dispatch one row twice.
    JobBuffer::new(db, queue).spawn_relay()
}
// endregion: buffer

// region: scheduler
pub fn start_scheduler(
    queue: Queue,
    cache: Cache,
) -> core_jobs::Result<core_jobs::schedule::SchedulerHandle> {
    Scheduler::new(queue)
        .with_cache(cache) // holds the without_overlapping locks
        // sec min hour day month weekday
        .job(
            ScheduledJob::new("0 */5 * * * *", || SyncInvoice { invoice_id: 0 })?
                .without_overlapping(),
        )
        .job(
            ScheduledJob::new("0 30 2 * * *", || ApplyLedgerEntry {
                account_id: 0,
                amount_cents: 0,
            })?
            .name("nightly-ledger-check")
            .when(|| std::env::var("MAINTENANCE").is_err()),
        )
        .spawn()
}
// endregion: scheduler

// region: queues
pub async fn connect_queue(
    config: &core_jobs::QueueConfig,
    app_name: &str,
) -> core_jobs::Result<Queue> {
    // memory:// by default; redis://… when QUEUE_URL or REDIS_URL says so.
    // APP_NAME is the prefix of its Redis keys, as for the cache.
    Queue::from_config(config, app_name).await
}
// endregion: queues

// region: shutdown
/// One process running everything: the HTTP server, a worker, the scheduler and the outbox
/// relay all watch one `Shutdown`, so SIGINT/SIGTERM (or `shutdown.cancel()`) stops them
/// together: requests drain, running jobs finish, and `wait` returns once all have stopped.
pub async fn run_all(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    db: Database,
    queue: Queue,
    shutdown: Shutdown, // `Shutdown::on_signal()` in `main`
) -> anyhow::Result<()> {
    let context = JobContext::new(queue.clone()).with_database(db.clone());
    let _worker = Worker::new(queue.clone(), context)
        .register::<SyncInvoice>()
        .with_shutdown(&shutdown)
        .spawn()?;
    let _scheduler = Scheduler::new(queue.clone())
        .job(ScheduledJob::new("0 */5 * * * *", || SyncInvoice {
            invoice_id: 0,
        })?)
        .with_shutdown(&shutdown)
        .spawn()?;
    let _relay = JobBuffer::new(db, queue).spawn_relay_with(&shutdown);
    let grace = Duration::from_secs(30); // SHUTDOWN_GRACE_SECS
    core_web::server::serve_with_shutdown(listener, router, &shutdown, grace).await?;
    shutdown.wait().await; // the worker, the scheduler and the relay have stopped too
    Ok(())
}
// endregion: shutdown

#[derive(Debug, Default, Clone)]
pub struct Mailer {
    sent: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Mailer {
    async fn send(&self, to: &str, subject: &str) -> anyhow::Result<()> {
        self.sent
            .lock()
            .expect("mailer")
            .push(format!("{to}: {subject}"));
        Ok(())
    }
}

async fn find_email(db: &Database, user_id: i64) -> anyhow::Result<String> {
    let _ = db;
    Ok(format!("user{user_id}@example.com"))
}

async fn call_billing_api(invoice_id: i64) -> anyhow::Result<()> {
    anyhow::bail!("billing API unavailable for invoice {invoice_id}")
}

async fn mark_invoice_unsynced(db: &Database, invoice_id: i64) -> anyhow::Result<()> {
    db.execute(&format!(
        "INSERT INTO unsynced (invoice_id) VALUES ({invoice_id})"
    ))
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job that fails fast, for the tests.
    #[derive(Debug, Serialize, Deserialize)]
    struct Flaky;

    #[core_jobs::async_trait]
    impl Job for Flaky {
        const NAME: &'static str = "flaky";
        async fn handle(&self, _ctx: &JobContext) -> anyhow::Result<()> {
            anyhow::bail!("always fails")
        }
        fn max_retries(&self) -> u32 {
            1
        }
        fn backoff(&self, _attempt: u32) -> Duration {
            Duration::from_millis(10)
        }
        async fn failed(&self, ctx: &JobContext, _error: &str) -> anyhow::Result<()> {
            mark_invoice_unsynced(ctx.db()?, 99).await
        }
    }

    async fn database() -> Database {
        let db = Database::connect("sqlite::memory:").await.expect("sqlite");
        db.migrate().await.expect("framework tables");
        db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY); CREATE TABLE unsynced (invoice_id INTEGER)")
            .await
            .expect("schema");
        db
    }

    /// `run_all` serves until its `Shutdown` is cancelled, then returns once everything has
    /// stopped, and its port no longer accepts connections.
    #[tokio::test]
    async fn one_shutdown_stops_the_server_worker_scheduler_and_relay() -> anyhow::Result<()> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shutdown = Shutdown::new();
        let running = tokio::spawn(run_all(
            listener,
            axum::Router::new(),
            database().await,
            Queue::memory(),
            shutdown.clone(),
        ));
        tokio::net::TcpStream::connect(addr).await?;
        assert!(!running.is_finished());
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), running).await???;
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
        Ok(())
    }

    async fn eventually(mut check: impl AsyncFnMut() -> bool) {
        for _ in 0..200 {
            if check().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("condition not reached in 5 s");
    }

    #[tokio::test]
    async fn a_dispatched_job_runs_and_a_failing_one_lands_in_failed_jobs() -> anyhow::Result<()> {
        let db = database().await;
        let queue = Queue::memory();
        let mailer = Mailer::default();
        let context = JobContext::new(queue.clone())
            .with_database(db.clone())
            .with_extension(mailer.clone());
        let worker = Worker::new(queue.clone(), context)
            .register::<SendWelcomeEmail>()
            .register::<Flaky>()
            .spawn()?;

        assert!(on_sign_up(&queue, 5).await?.is_some());
        assert!(on_sign_up(&queue, 5).await?.is_none(), "unique per user");
        eventually(async || mailer.sent.lock().expect("mailer").len() == 1).await;
        resend_welcome(&queue, 5).await?;
        eventually(async || mailer.sent.lock().expect("mailer").len() == 2).await;

        Flaky.dispatch(&queue).await?;
        let failed = FailedJobs::new(db.clone());
        eventually(async || failed.count().await.expect("count") == 1).await;
        let unsynced: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM unsynced")
            .fetch_one(db.as_sqlite().expect("sqlite"))
            .await?;
        assert_eq!(unsynced, 1, "failed() ran once");
        let row = &failed.list(10).await?[0];
        assert_eq!((row.job_name.as_str(), row.attempts), ("flaky", 2));

        review_failures(&db, &queue).await?;
        assert_eq!(failed.count().await?, 0);
        worker.shutdown().await;
        Ok(())
    }

    #[tokio::test]
    async fn buffered_jobs_reach_the_queue_only_after_commit() -> anyhow::Result<()> {
        let db = database().await;
        let queue = Queue::memory();
        let buffer = JobBuffer::new(db.clone(), queue.clone());

        let mut tx = db.begin().await?;
        buffer.push(&mut tx, &SyncInvoice { invoice_id: 1 }).await?;
        tx.rollback().await?;
        assert_eq!(buffer.relay_once().await?, 0, "nothing after a rollback");

        place_order(&db, &buffer, 2).await?;
        assert_eq!(buffer.relay_once().await?, 1, "one job after the commit");
        Ok(())
    }

    /// `connect_queue` with settings naming the Redis at `REDIS_URL`, then `start_worker` on
    /// that queue: a welcome email dispatched to it is taken and handled (the queue empties and
    /// nothing lands in `failed_jobs`).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_worker_example_runs_a_job_from_redis() -> anyhow::Result<()> {
        let Some(r) = test_support::redis("docs::jobs::worker").await else {
            return Ok(());
        };
        let config = core_jobs::QueueConfig { url: r.url.clone() };
        let queue = connect_queue(&config, &r.prefix).await?;
        assert_eq!(queue.driver_kind(), core_jobs::QueueDriver::Redis);
        let db = database().await;
        let worker = start_worker(db.clone(), Cache::memory("docs-jobs"), queue.clone()).await?;
        resend_welcome(&queue, 7).await?;
        eventually(async || {
            let stats = queue.stats("mail").await.expect("stats");
            (stats.ready, stats.delayed, stats.in_flight) == (0, 0, 0)
        })
        .await;
        assert_eq!(FailedJobs::new(db).count().await?, 0, "the job succeeded");
        worker.shutdown().await;
        Ok(())
    }

    /// `start_relay` moves a job committed with a plain `tx.commit()` (no `buffer.commit`) to
    /// the queue, and only after the commit.
    #[tokio::test]
    async fn the_relay_example_moves_committed_jobs_to_the_queue() -> anyhow::Result<()> {
        let db = database().await;
        let queue = Queue::memory();
        let relay = start_relay(db.clone(), queue.clone());
        let buffer = JobBuffer::new(db.clone(), queue.clone());
        let mut tx = db.begin().await?;
        buffer.push(&mut tx, &SyncInvoice { invoice_id: 9 }).await?;
        assert_eq!(
            queue.stats("default").await?.ready,
            0,
            "nothing before the commit"
        );
        tx.commit().await?;
        eventually(async || queue.stats("default").await.expect("stats").ready == 1).await;
        assert_eq!(buffer.pending().await?, 0, "the relayed row is gone");
        relay.shutdown().await;
        Ok(())
    }

    #[test]
    fn the_grouped_example_groups_by_account() {
        let entry = |account_id| ApplyLedgerEntry {
            account_id,
            amount_cents: 5,
        };
        assert_eq!(entry(1).group_id().as_deref(), Some("account:1"));
        assert_ne!(entry(1).group_id(), entry(2).group_id());
    }

    #[tokio::test]
    async fn the_schedule_parses() -> anyhow::Result<()> {
        let handle = start_scheduler(Queue::memory(), Cache::memory("docs-jobs"))?;
        handle.shutdown().await;
        Ok(())
    }
}
