//! [`JobBuffer`]: transactional dispatch through the `job_outbox` table.
//!
//! [`push`](JobBuffer::push) writes the job into `job_outbox` inside the caller's transaction, so
//! the job exists exactly when the transaction's other writes do: a rollback leaves nothing to
//! dispatch. A relay ([`spawn_relay`](JobBuffer::spawn_relay)) moves committed rows to the queue
//! and deletes them:
//!
//! - on PostgreSQL, `push` also issues `pg_notify`, which PostgreSQL delivers only when the
//!   transaction commits; the relay listens and dispatches at once;
//! - in the same process (both backends), `push` and [`commit`](JobBuffer::commit) wake the
//!   relay, which polls briefly until the rows become visible;
//! - a sweep every few seconds is the safety net (a relay that was down, a lost notification).
//!
//! The relay claims rows with `FOR UPDATE SKIP LOCKED` (PostgreSQL) and a claim deadline, so
//! several relays never dispatch one row twice; a relay that dies after claiming leaves its
//! rows to be claimed again once the deadline passes (at least once, like the queue). The
//! buffered job keeps its id, so a duplicate is recognisable.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use core_db::infra::db::{Database, Tx};
use sqlx::{ColumnIndex, Decode, Row, Type};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::job::{Job, JobId};
use crate::queue::{Queue, RawDispatch, When};
use crate::sqlite;

const CHANNEL: &str = "rustforge_job_outbox";

/// Writes jobs inside a database transaction and relays them to the queue after commit.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// # use core_jobs::{Job, JobContext};
/// # #[derive(Debug, serde::Serialize, serde::Deserialize)]
/// # struct SendReceipt { order_id: i64 }
/// # #[async_trait::async_trait]
/// # impl Job for SendReceipt {
/// #     const NAME: &'static str = "send_receipt";
/// #     async fn handle(&self, _ctx: &JobContext) -> anyhow::Result<()> { Ok(()) }
/// # }
/// use core_db::infra::db::Database;
/// use core_jobs::{JobBuffer, Queue};
///
/// let db = Database::connect("sqlite::memory:").await?;
/// db.migrate().await?;
/// let queue = Queue::memory();
/// let buffer = JobBuffer::new(db.clone(), queue.clone());
/// let relay = buffer.spawn_relay();
///
/// let mut tx = db.begin().await?;
/// // ... insert the order with tx ...
/// buffer.push(&mut tx, &SendReceipt { order_id: 42 }).await?;
/// buffer.commit(tx).await?; // or tx.commit(): the relay notices either way
///
/// relay.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct JobBuffer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: Database,
    queue: Queue,
    nudge: Notify,
    sweep_every: Duration,
    claim_for: Duration,
    batch: i64,
}

/// A row claimed from the outbox.
struct OutboxRow {
    id: i64,
    job_id: String,
    job_name: String,
    queue: String,
    payload: String,
    group_id: Option<String>,
    available_at: DateTime<Utc>,
}

impl OutboxRow {
    /// A row of `job_outbox`: the columns both databases store alike are read here,
    /// `available_at` (stored differently) comes decoded.
    fn read<'r, R>(row: &'r R, available_at: DateTime<Utc>) -> Result<Self, sqlx::Error>
    where
        R: Row,
        &'static str: ColumnIndex<R>,
        i64: Decode<'r, R::Database> + Type<R::Database>,
        String: Decode<'r, R::Database> + Type<R::Database>,
    {
        Ok(Self {
            id: row.try_get("id")?,
            job_id: row.try_get("job_id")?,
            job_name: row.try_get("job_name")?,
            queue: row.try_get("queue")?,
            payload: row.try_get("payload")?,
            group_id: row.try_get("group_id")?,
            available_at,
        })
    }
}

impl JobBuffer {
    /// A buffer writing to `db`'s `job_outbox` and relaying to `queue`.
    pub fn new(db: Database, queue: Queue) -> Self {
        Self::with_intervals(db, queue, Duration::from_secs(5), Duration::from_secs(30))
    }

    /// As [`new`](Self::new), with the safety-net sweep interval (default 5 s) and how long a
    /// claimed row is reserved for the relay that claimed it (default 30 s).
    pub fn with_intervals(
        db: Database,
        queue: Queue,
        sweep_every: Duration,
        claim_for: Duration,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                queue,
                nudge: Notify::new(),
                sweep_every: sweep_every.max(Duration::from_millis(10)),
                claim_for: claim_for.max(Duration::from_secs(1)),
                batch: 500,
            }),
        }
    }

    /// Writes `job` into the outbox inside `tx`; it is dispatched after `tx` commits, never if
    /// it rolls back. Returns the id the job will have in the queue.
    ///
    /// # Errors
    /// The job does not serialize, or the database failed.
    pub async fn push<J: Job>(&self, tx: &mut Tx, job: &J) -> Result<JobId> {
        self.push_at(tx, job, None).await
    }

    /// As [`push`](Self::push), to run once `delay` has passed after the push.
    ///
    /// # Errors
    /// The job does not serialize, or the database failed.
    pub async fn push_in<J: Job>(&self, tx: &mut Tx, job: &J, delay: Duration) -> Result<JobId> {
        let delay = chrono::Duration::from_std(delay)
            .map_err(|_| Error::Config("delay too large".into()))?;
        self.push_at(tx, job, Some(Utc::now() + delay)).await
    }

    async fn push_at<J: Job>(
        &self,
        tx: &mut Tx,
        job: &J,
        at: Option<DateTime<Utc>>,
    ) -> Result<JobId> {
        crate::queue::check_queue_name(J::QUEUE)?;
        let id = JobId::new();
        let payload = serde_json::to_string(job)?;
        let group = job.group_id();
        let at = at.unwrap_or_else(Utc::now);
        let sql = "INSERT INTO job_outbox (job_id, job_name, queue, payload, available_at, group_id) \
                   VALUES ($1, $2, $3, $4, $5, $6)";
        match tx {
            Tx::Postgres(t) => {
                sqlx::query(sql)
                    .bind(id.as_str())
                    .bind(J::NAME)
                    .bind(J::QUEUE)
                    .bind(&payload)
                    .bind(at)
                    .bind(&group)
                    .execute(&mut **t)
                    .await?;
                sqlx::query("SELECT pg_notify($1, '')")
                    .bind(CHANNEL)
                    .execute(&mut **t)
                    .await?;
            }
            Tx::Sqlite(t) => {
                sqlx::query(sql)
                    .bind(id.as_str())
                    .bind(J::NAME)
                    .bind(J::QUEUE)
                    .bind(&payload)
                    .bind(sqlite::format_time(at))
                    .bind(&group)
                    .execute(&mut **t)
                    .await?;
            }
        }
        self.inner.nudge.notify_one();
        Ok(id)
    }

    /// Commits `tx` and wakes the relay at once.
    ///
    /// # Errors
    /// The commit failed (nothing is dispatched).
    pub async fn commit(&self, tx: Tx) -> Result<()> {
        tx.commit().await?;
        self.inner.nudge.notify_one();
        Ok(())
    }

    /// Claims up to one batch of committed rows, dispatches them and deletes them; returns how
    /// many were dispatched. The relay calls this; tests and one-off tools may too.
    ///
    /// # Errors
    /// The database or the queue failed (claimed rows are dispatched again once their claim
    /// expires).
    pub async fn relay_once(&self) -> Result<u64> {
        let rows = self.claim().await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let now = Utc::now();
        let mut done = Vec::with_capacity(rows.len());
        for row in &rows {
            let when = if row.available_at > now {
                When::At(row.available_at.timestamp_millis())
            } else {
                When::Now
            };
            self.inner
                .queue
                .dispatch_raw(RawDispatch {
                    id: &row.job_id,
                    name: &row.job_name,
                    queue: &row.queue,
                    payload: &row.payload,
                    group: row.group_id.as_deref(),
                    when,
                })
                .await?;
            done.push(row.id);
        }
        self.delete(&done).await?;
        Ok(done.len() as u64)
    }

    async fn claim(&self) -> Result<Vec<OutboxRow>> {
        let inner = &self.inner;
        let now = Utc::now();
        let until = now
            + chrono::Duration::from_std(inner.claim_for).unwrap_or(chrono::Duration::seconds(30));
        let cols = "id, job_id, job_name, queue, payload, available_at, group_id";
        Ok(match &inner.db {
            Database::Postgres(pool) => {
                let sql = format!(
                    "UPDATE job_outbox SET claimed_until = $1 WHERE id IN ( \
                       SELECT id FROM job_outbox WHERE claimed_until IS NULL OR claimed_until < $2 \
                       ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED) \
                     RETURNING {cols}"
                );
                let rows = sqlx::query(&sql)
                    .bind(until)
                    .bind(now)
                    .bind(inner.batch)
                    .fetch_all(pool)
                    .await?;
                rows.iter()
                    .map(|r| OutboxRow::read(r, r.try_get("available_at")?))
                    .collect::<Result<Vec<_>, sqlx::Error>>()?
            }
            Database::Sqlite(pool) => {
                // SQLite has one writer at a time: the UPDATE itself is the claim.
                let sql = format!(
                    "UPDATE job_outbox SET claimed_until = $1 WHERE id IN ( \
                       SELECT id FROM job_outbox WHERE claimed_until IS NULL OR claimed_until < $2 \
                       ORDER BY id LIMIT $3) \
                     RETURNING {cols}"
                );
                let rows = sqlx::query(&sql)
                    .bind(sqlite::format_time(until))
                    .bind(sqlite::format_time(now))
                    .bind(inner.batch)
                    .fetch_all(pool)
                    .await?;
                rows.iter()
                    .map(|r| {
                        let at: String = r.try_get("available_at")?;
                        OutboxRow::read(r, sqlite::parse_time(&at).unwrap_or(now))
                    })
                    .collect::<Result<Vec<_>, sqlx::Error>>()?
            }
        })
    }

    async fn delete(&self, ids: &[i64]) -> Result<()> {
        match &self.inner.db {
            Database::Postgres(pool) => {
                sqlx::query("DELETE FROM job_outbox WHERE id = ANY($1)")
                    .bind(ids)
                    .execute(pool)
                    .await?;
            }
            Database::Sqlite(pool) => {
                let list = serde_json::to_string(ids)?;
                sqlx::query("DELETE FROM job_outbox WHERE id IN (SELECT value FROM json_each($1))")
                    .bind(list)
                    .execute(pool)
                    .await?;
            }
        }
        Ok(())
    }

    /// How many rows wait in the outbox (claimed or not).
    ///
    /// # Errors
    /// The database failed.
    pub async fn pending(&self) -> Result<u64> {
        let sql = "SELECT COUNT(*) FROM job_outbox";
        let n: i64 = match &self.inner.db {
            Database::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await?,
            Database::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await?,
        };
        Ok(n.max(0) as u64)
    }

    /// Starts the relay in the background: it dispatches committed rows right after commit
    /// (PostgreSQL notifications, in-process wake-ups) and sweeps the outbox periodically.
    pub fn spawn_relay(&self) -> RelayHandle {
        let (stop_tx, stop_rx) = watch::channel(false);
        let buffer = self.clone();
        let task = tokio::spawn(async move { buffer.relay_loop(stop_rx).await });
        RelayHandle {
            stop: stop_tx,
            task: Some(task),
        }
    }

    async fn relay_loop(self, mut stop: watch::Receiver<bool>) {
        let (notified_tx, mut notified_rx) = watch::channel(());
        let listener = match &self.inner.db {
            Database::Postgres(pool) => {
                let pool = pool.clone();
                Some(tokio::spawn(async move { listen(pool, notified_tx).await }))
            }
            Database::Sqlite(_) => None,
        };
        let mut hot_until: Option<Instant> = None;
        let mut next_sweep = Instant::now();
        loop {
            let now = Instant::now();
            let hot = hot_until.is_some_and(|h| h > now);
            if hot || now >= next_sweep {
                if now >= next_sweep {
                    next_sweep = now + self.inner.sweep_every;
                }
                loop {
                    match self.relay_once().await {
                        Ok(n) if n as i64 >= self.inner.batch => continue,
                        Ok(_) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, "job outbox relay failed; retrying");
                            break;
                        }
                    }
                }
            }
            let wait = if hot_until.is_some_and(|h| h > Instant::now()) {
                Duration::from_millis(10)
            } else {
                hot_until = None;
                next_sweep.saturating_duration_since(Instant::now())
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.inner.nudge.notified() => {
                    // In-process push or commit: poll briefly until the rows are visible.
                    hot_until = Some(Instant::now() + Duration::from_secs(2));
                }
                r = notified_rx.changed() => {
                    if r.is_ok() {
                        // A committed PostgreSQL transaction pushed rows.
                        hot_until = Some(hot_until.unwrap_or_else(Instant::now).max(Instant::now() + Duration::from_millis(50)));
                    }
                }
                _ = stop.changed() => break,
            }
        }
        if let Some(l) = listener {
            l.abort();
        }
    }
}

/// Listens for outbox notifications and forwards them; reconnects when the connection drops.
async fn listen(pool: sqlx::PgPool, notified: watch::Sender<()>) {
    loop {
        match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(mut l) => {
                if let Err(e) = l.listen(CHANNEL).await {
                    tracing::warn!(error = %e, "job outbox LISTEN failed");
                } else {
                    // Anything committed while we were not listening is found by this wake-up.
                    let _ = notified.send(());
                    loop {
                        match l.recv().await {
                            Ok(_) => {
                                let _ = notified.send(());
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "job outbox listener lost its connection");
                                break;
                            }
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "job outbox listener cannot connect"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The running relay, from [`JobBuffer::spawn_relay`]. Dropping it stops the relay.
#[derive(Debug)]
pub struct RelayHandle {
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl RelayHandle {
    /// Stops the relay and waits for it.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for RelayHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
