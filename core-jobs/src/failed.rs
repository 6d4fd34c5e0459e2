//! The `failed_jobs` store: jobs that exhausted their retries or could not be run at all, and
//! the management API (list, retry, forget, prune) on PostgreSQL and SQLite.

use std::time::Duration;

use chrono::{DateTime, Utc};
use core_db::Database;
use core_db::db::within;
use serde::{Deserialize, Serialize};
use sqlx::query::QueryScalar;
use sqlx::{ColumnIndex, Connection as _, Decode, Encode, FromRow, Row, Type};

use crate::error::{Error, Result};
use crate::job::JobId;
use crate::queue::{Queue, RawDispatch, When};
use crate::sqlite;

/// One `failed_jobs` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FailedJob {
    /// Row id (what `retry`, `forget` take).
    pub id: i64,
    /// The job's id.
    pub job_id: String,
    /// The job's `NAME` (or what the envelope said, for an unknown job).
    pub job_name: String,
    /// The queue it ran on.
    pub queue: String,
    /// The job's JSON payload, byte for byte.
    pub payload: String,
    /// Why it failed: the last error, or the reason it could not run.
    pub error: String,
    /// Runs made (0 when it could not run at all).
    pub attempts: u32,
    /// Its group, if any.
    pub group_id: Option<String>,
    /// When it failed.
    pub failed_at: DateTime<Utc>,
}

/// A failure about to be written: what the worker (or a parked failure in the queue) holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FailureRecord {
    /// The job's id.
    pub job_id: String,
    /// The job's name.
    pub job_name: String,
    /// The queue.
    pub queue: String,
    /// The payload text.
    pub payload: String,
    /// The error or reason.
    pub error: String,
    /// Runs made.
    pub attempts: u32,
    /// The group, if any.
    pub group_id: Option<String>,
    /// When it failed.
    pub failed_at: DateTime<Utc>,
}

impl FailureRecord {
    /// A failure of job `job_id` (`job_name` on `queue`, payload text `payload`) with `error`,
    /// failed now, with no attempts and no group; set the public fields for the rest.
    pub fn new(
        job_id: impl Into<String>,
        job_name: impl Into<String>,
        queue: impl Into<String>,
        payload: impl Into<String>,
        error: impl Into<String>,
    ) -> Self {
        Self {
            job_id: job_id.into(),
            job_name: job_name.into(),
            queue: queue.into(),
            payload: payload.into(),
            error: error.into(),
            attempts: 0,
            group_id: None,
            failed_at: Utc::now(),
        }
    }
}

/// The `failed_jobs` table on a [`Database`] (PostgreSQL or SQLite; the table comes with the
/// framework migrations).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> core_jobs::Result<()> {
/// use std::time::Duration;
/// use core_db::Database;
/// use core_jobs::{FailedJobs, Queue};
///
/// let db = Database::connect("sqlite::memory:").await?;
/// db.migrate().await?;
/// let failed = FailedJobs::new(db);
/// for job in failed.list(50).await? {
///     println!("{} {} {}", job.id, job.job_name, job.error);
/// }
/// failed.retry_all(&Queue::memory()).await?;
/// failed.prune(Duration::from_secs(7 * 24 * 3600)).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct FailedJobs {
    db: Database,
    timeout: Duration,
}

/// How long [`FailedJobs::record`] may take by default.
pub const DEFAULT_RECORD_TIMEOUT: Duration = Duration::from_secs(5);

/// A [`FailedJob`] from a row of [`COLUMNS`]: the columns both databases store alike are read
/// here, `attempts` and `failed_at` (stored differently) come decoded.
fn failed_job<'r, R>(
    row: &'r R,
    attempts: i64,
    failed_at: DateTime<Utc>,
) -> Result<FailedJob, sqlx::Error>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(FailedJob {
        id: row.try_get("id")?,
        job_id: row.try_get("job_id")?,
        job_name: row.try_get("job_name")?,
        queue: row.try_get("queue")?,
        payload: row.try_get("payload")?,
        error: row.try_get("error")?,
        attempts: attempts.max(0) as u32,
        group_id: row.try_get("group_id")?,
        failed_at,
    })
}

/// The `INSERT` of `r`, returning the row id, with all but `failed_at` bound: `$8`, stored
/// differently by the two databases, is the caller's to bind.
fn insert<'q, DB>(r: &'q FailureRecord) -> QueryScalar<'q, DB, i64, DB::Arguments<'q>>
where
    DB: sqlx::Database,
    (i64,): for<'row> FromRow<'row, DB::Row>,
    String: Encode<'q, DB> + Type<DB>,
    Option<String>: Encode<'q, DB>,
    i32: Encode<'q, DB> + Type<DB>,
{
    let attempts = i32::try_from(r.attempts).unwrap_or(i32::MAX);
    sqlx::query_scalar(
        "INSERT INTO failed_jobs (job_id, job_name, queue, payload, error, attempts, group_id, failed_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (job_id, attempts, failed_at) DO UPDATE SET job_id = excluded.job_id \
         RETURNING id",
    )
    .bind(&r.job_id)
    .bind(&r.job_name)
    .bind(&r.queue)
    .bind(&r.payload)
    .bind(&r.error)
    .bind(attempts)
    .bind(&r.group_id)
}

const COLUMNS: &str = "id, job_id, job_name, queue, payload, error, attempts, group_id, failed_at";

impl FailedJobs {
    /// The store on `db`.
    pub fn new(db: Database) -> Self {
        Self {
            db,
            timeout: DEFAULT_RECORD_TIMEOUT,
        }
    }

    /// How long one [`record`](Self::record) may take (default 5 s, at least 10 ms). The
    /// worker writes failures through `record`, so a slow or locked `failed_jobs` costs it at
    /// most this much before the failure is kept in the queue and written later. On
    /// PostgreSQL it is the insert's `statement_timeout` and `lock_timeout` (`SET LOCAL`, in
    /// the insert's own transaction); on SQLite the connection's `busy_timeout` for the insert;
    /// on both, a limit on the whole call, connecting included.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(10));
        self
    }

    /// The database it writes to.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Writes one row; returns its id. It takes at most the store's
    /// [`timeout`](Self::with_timeout).
    ///
    /// Idempotent: a record is identified by its job id, attempts and failure time, so writing
    /// the same record again (a parked failure replayed after the reply to its first write was
    /// lost) keeps the one row and returns its id.
    ///
    /// # Errors
    /// The database failed, or [`Error::Timeout`].
    pub async fn record(&self, r: &FailureRecord) -> Result<i64> {
        const OPERATION: &str = "writing a failed_jobs row";
        let limit = self.timeout;
        // The database's own timeouts end the statement; the outer bound covers the rest (a
        // pool that waits for a connection, a server that does not answer), with room for the
        // former. A connection that runs out of it is closed, not returned to the pool
        // (`core_db::db::within`), so a silent server cannot use up the pool.
        let outer = limit + limit / 2 + Duration::from_millis(100);
        let ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX).max(1);
        // Owned by the work, which may outlive this call's borrows (failures are rare).
        let r = r.clone();
        let written = match &self.db {
            Database::Postgres(pool) => {
                within(pool, OPERATION, outer, move |conn| {
                    Box::pin(async move {
                        let mut tx = conn.begin().await?;
                        sqlx::query(
                            "SELECT set_config('statement_timeout', $1, true), \
                                    set_config('lock_timeout', $1, true)",
                        )
                        .bind(format!("{ms}ms"))
                        .execute(&mut *tx)
                        .await?;
                        let id = insert(&r).bind(r.failed_at).fetch_one(&mut *tx).await?;
                        tx.commit().await?;
                        Ok(id)
                    })
                })
                .await
            }
            Database::Sqlite(pool) => {
                within(pool, OPERATION, outer, move |conn| {
                    Box::pin(async move {
                        // The pool's connections are shared: restore their busy timeout
                        // afterwards.
                        let before: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
                            .fetch_one(&mut **conn)
                            .await?;
                        let ours = i64::try_from(ms).unwrap_or(i64::MAX);
                        let busy = before.min(ours);
                        sqlx::query(&format!("PRAGMA busy_timeout = {busy}"))
                            .execute(&mut **conn)
                            .await?;
                        let id = insert(&r)
                            .bind(sqlite::format_time(r.failed_at))
                            .fetch_one(&mut **conn)
                            .await;
                        let restored = sqlx::query(&format!("PRAGMA busy_timeout = {before}"))
                            .execute(&mut **conn)
                            .await;
                        if restored.is_err() {
                            // A connection left with our timeout is closed rather than reused.
                            conn.close_on_drop();
                        }
                        id
                    })
                })
                .await
            }
        };
        written.map_err(|e| match e {
            core_db::Error::Timeout { after, .. } => Error::Timeout(OPERATION, after),
            other => other.into(),
        })
    }

    /// The newest `limit` failures, newest first.
    ///
    /// # Errors
    /// The database failed.
    pub async fn list(&self, limit: u32) -> Result<Vec<FailedJob>> {
        let sql = format!("SELECT {COLUMNS} FROM failed_jobs ORDER BY id DESC LIMIT $1");
        self.fetch(&sql, i64::from(limit)).await
    }

    /// One failure by row id.
    ///
    /// # Errors
    /// The database failed.
    pub async fn get(&self, id: i64) -> Result<Option<FailedJob>> {
        let sql = format!("SELECT {COLUMNS} FROM failed_jobs WHERE id = $1");
        Ok(self.fetch(&sql, id).await?.pop())
    }

    /// How many failures are stored, exactly. On PostgreSQL the framework migrations track the
    /// table's row count ([`Database::track_row_count`]), so this costs O(1) however many
    /// failures pile up; on SQLite it is a `COUNT(*)`.
    ///
    /// # Errors
    /// The database failed.
    pub async fn count(&self) -> Result<u64> {
        Ok(self.db.row_count("failed_jobs").await?)
    }

    /// Runs `sql` (a `SELECT {COLUMNS}` with one `$1`) with `arg` bound.
    async fn fetch(&self, sql: &str, arg: i64) -> Result<Vec<FailedJob>> {
        Ok(match &self.db {
            Database::Postgres(pool) => sqlx::query(sql)
                .bind(arg)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| {
                    let attempts: i32 = row.try_get("attempts")?;
                    failed_job(row, attempts.into(), row.try_get("failed_at")?)
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?,
            Database::Sqlite(pool) => sqlx::query(sql)
                .bind(arg)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| {
                    let failed_at: String = row.try_get("failed_at")?;
                    failed_job(
                        row,
                        row.try_get("attempts")?,
                        sqlite::parse_time(&failed_at).unwrap_or_default(),
                    )
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?,
        })
    }

    /// Re-dispatches failure `id` with its attempts reset (same job id, name, queue, payload
    /// and group), then deletes the row; returns the job id.
    ///
    /// # Errors
    /// [`Error::FailedJobNotFound`], or the queue or database failed. The job is dispatched
    /// before the row is deleted: a crash in between leaves the row, never loses the job.
    pub async fn retry(&self, id: i64, queue: &Queue) -> Result<JobId> {
        let job = self.get(id).await?.ok_or(Error::FailedJobNotFound(id))?;
        self.redispatch(&job, queue).await?;
        self.forget(id).await?;
        Ok(JobId::from(job.job_id))
    }

    /// Re-dispatches every stored failure (oldest first) and deletes their rows; returns how
    /// many were re-dispatched.
    ///
    /// # Errors
    /// The queue or database failed (the failures handled so far stay handled).
    pub async fn retry_all(&self, queue: &Queue) -> Result<u64> {
        let mut n = 0;
        let mut after = 0i64;
        loop {
            let sql =
                format!("SELECT {COLUMNS} FROM failed_jobs WHERE id > $1 ORDER BY id LIMIT 500");
            let batch = self.fetch(&sql, after).await?;
            let Some(last) = batch.last() else {
                return Ok(n);
            };
            after = last.id;
            for job in &batch {
                self.redispatch(job, queue).await?;
                self.forget(job.id).await?;
                n += 1;
            }
        }
    }

    async fn redispatch(&self, job: &FailedJob, queue: &Queue) -> Result<()> {
        queue
            .dispatch_raw(RawDispatch {
                id: &job.job_id,
                name: &job.job_name,
                queue: &job.queue,
                payload: &job.payload,
                group: job.group_id.as_deref(),
                when: When::Now,
            })
            .await?;
        Ok(())
    }

    /// Deletes failure `id`; false when there was no such row.
    ///
    /// # Errors
    /// The database failed.
    pub async fn forget(&self, id: i64) -> Result<bool> {
        let sql = "DELETE FROM failed_jobs WHERE id = $1";
        let n = match &self.db {
            Database::Postgres(pool) => sqlx::query(sql)
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected(),
            Database::Sqlite(pool) => sqlx::query(sql)
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected(),
        };
        Ok(n > 0)
    }

    /// Deletes failures older than `older_than`; returns how many.
    ///
    /// # Errors
    /// [`Error::Config`] when `older_than` reaches back before the earliest representable
    /// time; the database failed.
    pub async fn prune(&self, older_than: Duration) -> Result<u64> {
        let cutoff = chrono::Duration::from_std(older_than)
            .ok()
            .and_then(|age| Utc::now().checked_sub_signed(age))
            .ok_or_else(|| Error::Config(format!("prune age {older_than:?} is too large")))?;
        let sql = "DELETE FROM failed_jobs WHERE failed_at < $1";
        Ok(match &self.db {
            Database::Postgres(pool) => sqlx::query(sql)
                .bind(cutoff)
                .execute(pool)
                .await?
                .rows_affected(),
            Database::Sqlite(pool) => sqlx::query(sql)
                .bind(sqlite::format_time(cutoff))
                .execute(pool)
                .await?
                .rows_affected(),
        })
    }
}
