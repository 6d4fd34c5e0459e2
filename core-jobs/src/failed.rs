//! The `failed_jobs` store: jobs that exhausted their retries or could not be run at all, and
//! the management API (list, retry, forget, prune, and the same on a [`FailedFilter`]) on PostgreSQL
//! and SQLite.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use core_db::Database;
use core_db::db::{like_pattern, within};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgRow;
use sqlx::query::QueryScalar;
use sqlx::sqlite::SqliteRow;
use sqlx::{ColumnIndex, Connection as _, Decode, Encode, FromRow, QueryBuilder, Row, Type};

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

/// Which `failed_jobs` rows a bulk operation ([`FailedJobs::count_matching`],
/// [`retry_matching`](FailedJobs::retry_matching), [`forget_matching`](FailedJobs::forget_matching))
/// touches: every condition given must hold, and an empty filter matches every row.
///
/// | condition | SQL |
/// |---|---|
/// | [`job_name`](Self::job_name), [`queue`](Self::queue) | equality |
/// | [`error_contains`](Self::error_contains) | case-insensitive substring (`ILIKE` on PostgreSQL, `LIKE` on SQLite, which folds ASCII letters only); `%`, `_` and `!` match themselves |
/// | [`failed_from`](Self::failed_from) / [`failed_before`](Self::failed_before) | `failed_at >= from`, `failed_at < before` (on SQLite at millisecond precision, as the times are stored) |
/// | [`id_at_most`](Self::id_at_most) | `id <= n`: pins a set of rows, see [`FailedJobs::last_id`] |
///
/// These are the conditions (and the SQL) of core-web's DataTable filters `Eq`, `Like` and
/// `Range` on the same columns, so a listing filtered that way shows the rows a bulk operation
/// on this filter touches.
///
/// ```
/// use chrono::{Duration, Utc};
/// use core_jobs::failed::FailedFilter;
///
/// let filter = FailedFilter::new()
///     .queue("mail")
///     .error_contains("timed out")
///     .failed_from(Utc::now() - Duration::hours(24));
/// # let _ = filter;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub struct FailedFilter {
    /// Only failures of the job with this `NAME`.
    pub job_name: Option<String>,
    /// Only failures on this queue.
    pub queue: Option<String>,
    /// Only failures whose error contains this text, ignoring case.
    pub error_contains: Option<String>,
    /// Only failures at or after this time.
    pub failed_from: Option<DateTime<Utc>>,
    /// Only failures before this time.
    pub failed_before: Option<DateTime<Utc>>,
    /// Only rows whose id is at most this.
    pub id_at_most: Option<i64>,
}

impl FailedFilter {
    /// A filter that matches every row; narrow it with the other methods.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only failures of job `name`.
    pub fn job_name(mut self, name: impl Into<String>) -> Self {
        self.job_name = Some(name.into());
        self
    }

    /// Only failures on `queue`.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// Only failures whose error contains `text`, ignoring case. Wildcards in `text` (`%`, `_`)
    /// match themselves.
    pub fn error_contains(mut self, text: impl Into<String>) -> Self {
        self.error_contains = Some(text.into());
        self
    }

    /// Only failures at or after `from`.
    pub fn failed_from(mut self, from: DateTime<Utc>) -> Self {
        self.failed_from = Some(from);
        self
    }

    /// Only failures before `before`.
    pub fn failed_before(mut self, before: DateTime<Utc>) -> Self {
        self.failed_before = Some(before);
        self
    }

    /// Only rows whose id is at most `id`: with [`FailedJobs::last_id`], the rows that matched
    /// at one moment, and not the failures recorded after it.
    pub fn id_at_most(mut self, id: i64) -> Self {
        self.id_at_most = Some(id);
        self
    }

    /// Appends the filter's conditions, each bound, as ` WHERE …` (nothing for an empty
    /// filter); `extra` is one more condition of the caller's (SQL from the code, not input),
    /// followed by the value bound into its one placeholder.
    fn push_where<'q, DB>(
        &'q self,
        qb: &mut QueryBuilder<'q, DB>,
        postgres: bool,
        extra: Option<(&'static str, i64)>,
    ) where
        DB: sqlx::Database,
        String: Encode<'q, DB> + Type<DB>,
        &'q str: Encode<'q, DB> + Type<DB>,
        i64: Encode<'q, DB> + Type<DB>,
        DateTime<Utc>: Encode<'q, DB> + Type<DB>,
    {
        let mut first = true;
        let mut and = |qb: &mut QueryBuilder<'q, DB>| {
            qb.push(if first { " WHERE " } else { " AND " });
            first = false;
        };
        if let Some(name) = &self.job_name {
            and(qb);
            qb.push("job_name = ").push_bind(name.as_str());
        }
        if let Some(queue) = &self.queue {
            and(qb);
            qb.push("queue = ").push_bind(queue.as_str());
        }
        if let Some(text) = &self.error_contains {
            and(qb);
            qb.push(if postgres {
                "error ILIKE "
            } else {
                "error LIKE "
            })
            .push_bind(like_pattern(text))
            .push(" ESCAPE '!'");
        }
        for (bound, cmp) in [(self.failed_from, " >= "), (self.failed_before, " < ")] {
            let Some(t) = bound else { continue };
            and(qb);
            qb.push("failed_at").push(cmp);
            if postgres {
                qb.push_bind(t);
            } else {
                qb.push_bind(sqlite::format_time(t));
            }
        }
        if let Some(id) = self.id_at_most {
            and(qb);
            qb.push("id <= ").push_bind(id);
        }
        if let Some((sql, value)) = extra {
            and(qb);
            qb.push(sql).push_bind(value);
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

/// A [`FailedJob`] from a PostgreSQL row of [`COLUMNS`].
fn pg_job(row: &PgRow) -> Result<FailedJob, sqlx::Error> {
    let attempts: i32 = row.try_get("attempts")?;
    failed_job(row, attempts.into(), row.try_get("failed_at")?)
}

/// A [`FailedJob`] from a SQLite row of [`COLUMNS`].
fn sqlite_job(row: &SqliteRow) -> Result<FailedJob, sqlx::Error> {
    let failed_at: String = row.try_get("failed_at")?;
    failed_job(
        row,
        row.try_get("attempts")?,
        sqlite::parse_time(&failed_at).unwrap_or_default(),
    )
}

/// How many rows [`FailedJobs::retry_all`] and [`FailedJobs::retry_matching`] read at a time.
const RETRY_BATCH: i64 = 500;

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
                .map(pg_job)
                .collect::<Result<Vec<_>, sqlx::Error>>()?,
            Database::Sqlite(pool) => sqlx::query(sql)
                .bind(arg)
                .fetch_all(pool)
                .await?
                .iter()
                .map(sqlite_job)
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
            let sql = format!(
                "SELECT {COLUMNS} FROM failed_jobs WHERE id > $1 ORDER BY id LIMIT {RETRY_BATCH}"
            );
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

    /// The id of the newest row (ids only grow), `None` when there are no rows. With
    /// [`FailedFilter::id_at_most`] it pins a set: a preview counted with
    /// `filter.id_at_most(last_id)` and a bulk operation on that same filter see the same rows,
    /// whatever failed in between (except rows deleted meanwhile, which are simply not there).
    ///
    /// # Errors
    /// The database failed.
    pub async fn last_id(&self) -> Result<Option<i64>> {
        let sql = "SELECT MAX(id) FROM failed_jobs";
        Ok(match &self.db {
            Database::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await?,
            Database::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await?,
        })
    }

    /// How many rows `filter` matches, exactly (a `COUNT(*)` with the filter's conditions).
    ///
    /// # Errors
    /// The database failed.
    pub async fn count_matching(&self, filter: &FailedFilter) -> Result<u64> {
        const COUNT: &str = "SELECT COUNT(*) FROM failed_jobs";
        let n: i64 = match &self.db {
            Database::Postgres(pool) => {
                let mut qb = QueryBuilder::<sqlx::Postgres>::new(COUNT);
                filter.push_where(&mut qb, true, None);
                qb.build_query_scalar().fetch_one(pool).await?
            }
            Database::Sqlite(pool) => {
                let mut qb = QueryBuilder::<sqlx::Sqlite>::new(COUNT);
                filter.push_where(&mut qb, false, None);
                qb.build_query_scalar().fetch_one(pool).await?
            }
        };
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// How many failures each queue has, by queue name (a queue without failures is absent):
    /// one grouped `COUNT(*)`.
    ///
    /// # Errors
    /// The database failed.
    pub async fn count_by_queue(&self) -> Result<BTreeMap<String, u64>> {
        let sql = "SELECT queue, COUNT(*) FROM failed_jobs GROUP BY queue";
        let rows: Vec<(String, i64)> = match &self.db {
            Database::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await?,
            Database::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await?,
        };
        Ok(rows
            .into_iter()
            .map(|(queue, n)| (queue, u64::try_from(n).unwrap_or(0)))
            .collect())
    }

    /// Deletes every row `filter` matches, in one statement; returns how many.
    ///
    /// # Errors
    /// The database failed (then nothing was deleted).
    pub async fn forget_matching(&self, filter: &FailedFilter) -> Result<u64> {
        const DELETE: &str = "DELETE FROM failed_jobs";
        Ok(match &self.db {
            Database::Postgres(pool) => {
                let mut qb = QueryBuilder::<sqlx::Postgres>::new(DELETE);
                filter.push_where(&mut qb, true, None);
                qb.build().execute(pool).await?.rows_affected()
            }
            Database::Sqlite(pool) => {
                let mut qb = QueryBuilder::<sqlx::Sqlite>::new(DELETE);
                filter.push_where(&mut qb, false, None);
                qb.build().execute(pool).await?.rows_affected()
            }
        })
    }

    /// Re-dispatches every failure `filter` matches (oldest first, attempts reset, as
    /// [`retry`](Self::retry) does) and deletes their rows; returns how many were
    /// re-dispatched.
    ///
    /// It works through the rows that exist when it starts (up to [`last_id`](Self::last_id)),
    /// so a retried job that fails again while it runs is left for the next call instead of
    /// being retried in the same one. Like [`retry_all`](Self::retry_all), each job is
    /// dispatched before its row is deleted: a failure midway never loses a job (at worst a
    /// job whose row could not be deleted is dispatched again by a later retry).
    ///
    /// # Errors
    /// The queue or database failed (the failures handled so far stay handled).
    pub async fn retry_matching(&self, filter: &FailedFilter, queue: &Queue) -> Result<u64> {
        let Some(last) = self.last_id().await? else {
            return Ok(0);
        };
        let mut pinned = filter.clone();
        pinned.id_at_most = Some(filter.id_at_most.map_or(last, |id| id.min(last)));
        let mut n = 0;
        let mut after = i64::MIN;
        loop {
            let batch = self.fetch_matching(&pinned, after).await?;
            let Some(newest) = batch.last() else {
                return Ok(n);
            };
            after = newest.id;
            for job in &batch {
                self.redispatch(job, queue).await?;
                self.forget(job.id).await?;
                n += 1;
            }
        }
    }

    /// Up to [`RETRY_BATCH`] rows that `filter` matches with ids above `after`, oldest first.
    async fn fetch_matching(&self, filter: &FailedFilter, after: i64) -> Result<Vec<FailedJob>> {
        let select = format!("SELECT {COLUMNS} FROM failed_jobs");
        Ok(match &self.db {
            Database::Postgres(pool) => {
                let mut qb = QueryBuilder::<sqlx::Postgres>::new(select);
                filter.push_where(&mut qb, true, Some(("id > ", after)));
                qb.push(" ORDER BY id LIMIT ").push_bind(RETRY_BATCH);
                qb.build()
                    .fetch_all(pool)
                    .await?
                    .iter()
                    .map(pg_job)
                    .collect::<Result<Vec<_>, sqlx::Error>>()?
            }
            Database::Sqlite(pool) => {
                let mut qb = QueryBuilder::<sqlx::Sqlite>::new(select);
                filter.push_where(&mut qb, false, Some(("id > ", after)));
                qb.push(" ORDER BY id LIMIT ").push_bind(RETRY_BATCH);
                qb.build()
                    .fetch_all(pool)
                    .await?
                    .iter()
                    .map(sqlite_job)
                    .collect::<Result<Vec<_>, sqlx::Error>>()?
            }
        })
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
