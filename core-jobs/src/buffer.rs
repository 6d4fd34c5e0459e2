//! [`JobBuffer`]: transactional dispatch through the `job_outbox` table.
//!
//! [`push`](JobBuffer::push) writes the job into `job_outbox` inside the caller's transaction, so
//! the job exists exactly when the transaction's other writes do: a rollback leaves nothing to
//! dispatch. A relay ([`spawn_relay`](JobBuffer::spawn_relay)) moves committed rows to the queue
//! and deletes them:
//!
//! - in the same process (both backends), `push` and [`commit`](JobBuffer::commit) wake the
//!   relay, which polls briefly until the rows become visible;
//! - on PostgreSQL, [`commit`](JobBuffer::commit) also wakes the relays of other processes:
//!   after the commit it sends a `pg_notify` on its own, and the relays listen. Concurrent
//!   commits share one notification (one is in flight at a time; commits made meanwhile are
//!   covered by one more), so a burst of commits costs a handful of notifications;
//! - a sweep every few seconds is the safety net (a relay that was down, a lost notification,
//!   a transaction committed with a plain `tx.commit()` in a process without a relay).
//!
//! The notification is deliberately not part of the transaction: PostgreSQL serialises the
//! commits of every transaction that issued `NOTIFY` (they queue for one global lock held
//! through the WAL flush), which would cap transactional dispatch at one commit per disk flush
//! (a few hundred per second) whatever the concurrency.
//!
//! The relay claims rows with `FOR UPDATE SKIP LOCKED` (PostgreSQL) and a claim deadline, so
//! several relays never dispatch one row twice; a relay that dies after claiming leaves its
//! rows to be claimed again once the deadline passes (at least once, like the queue). The
//! buffered job keeps its id, so a duplicate is recognisable.
//!
//! A row that fails to dispatch does not hold up the others: the rows sent before it are
//! deleted, its failed attempts are counted (`attempts`, `last_error`) and it is tried again
//! after a short backoff; once it has failed [`max_attempts`](JobBuffer::with_max_attempts)
//! times for a reason of its own (an invalid queue name, a payload the queue rejects) it is
//! parked (`parked_at`): the relay leaves it, [`parked`](JobBuffer::parked) lists it and
//! [`retry_parked`](JobBuffer::retry_parked) puts it back. A queue that is unreachable ends the
//! pass (what was sent is deleted first) without parking anything.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use core_db::db::{Database, Tx};
use sqlx::{ColumnIndex, Decode, Row, Type};
use tokio::sync::Notify;

use crate::error::{Error, Result};
use crate::job::{Job, JobId};
use crate::queue::{Queue, RawDispatch, When};
use crate::sqlite;

mod relay;

pub use self::relay::RelayHandle;

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
/// use core_db::Database;
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
/// buffer.commit(tx).await?; // or tx.commit(): this process's relay notices either way
///
/// relay.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct JobBuffer {
    inner: Arc<Inner>,
    max_attempts: u32,
}

/// A row the relay parked after it failed to dispatch it [`JobBuffer::with_max_attempts`]
/// times, from [`JobBuffer::parked`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParkedJob {
    /// The outbox row id (what [`JobBuffer::retry_parked`] takes).
    pub id: i64,
    /// The id the job gets in the queue.
    pub job_id: String,
    /// The job's `NAME`.
    pub job_name: String,
    /// The queue it is for.
    pub queue: String,
    /// Its JSON payload.
    pub payload: String,
    /// Failed dispatches.
    pub attempts: u32,
    /// The last dispatch error.
    pub last_error: Option<String>,
    /// When it was parked.
    pub parked_at: DateTime<Utc>,
}

/// Failed dispatches after which a row is parked, by default.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

#[derive(Debug)]
struct Inner {
    db: Database,
    queue: Queue,
    nudge: Notify,
    announcer: Announcer,
    sweep_every: Duration,
    claim_for: Duration,
    batch: i64,
}

/// A job's outbox row for a statement of your own, from [`JobBuffer::outbox_row`]
/// (PostgreSQL).
#[derive(Debug, Clone)]
pub struct OutboxInsert {
    id: JobId,
    name: &'static str,
    queue: &'static str,
    payload: String,
    group: Option<String>,
    at: DateTime<Utc>,
}

impl OutboxInsert {
    /// The id the job will have in the queue.
    pub fn id(&self) -> &JobId {
        &self.id
    }

    /// `INSERT INTO job_outbox (…) VALUES (…)` with its 6 parameters numbered from `$first`,
    /// for a `WITH` clause; [`bind`](Self::bind) binds them, in order.
    pub fn insert_sql(&self, first: usize) -> String {
        let params: Vec<String> = (first..first + 6).map(|n| format!("${n}")).collect();
        format!(
            "INSERT INTO job_outbox (job_id, job_name, queue, payload, available_at, group_id) \
             VALUES ({})",
            params.join(", ")
        )
    }

    /// As [`insert_sql`](Self::insert_sql), but `INSERT … SELECT $first, … FROM {source}`: the
    /// row is written once per row `source` yields, so a statement can dispatch only when an
    /// earlier step of it wrote something, or when a condition holds (`source` may be
    /// `"moved WHERE …"`). [`bind`](Self::bind) binds the same 6 parameters. A `source` that
    /// yields more than one row would dispatch the job more than once under one id, which the
    /// outbox refuses (the statement fails): make it yield one row at most.
    pub fn insert_sql_from(&self, first: usize, source: &str) -> String {
        let params: Vec<String> = (first..first + 6).map(|n| format!("${n}")).collect();
        format!(
            "INSERT INTO job_outbox (job_id, job_name, queue, payload, available_at, group_id) \
             SELECT {} FROM {source}",
            params.join(", ")
        )
    }

    /// Binds the parameters of [`insert_sql`](Self::insert_sql) to `query`, in order.
    pub fn bind<'q>(
        &'q self,
        query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        query
            .bind(self.id.as_str())
            .bind(self.name)
            .bind(self.queue)
            .bind(&self.payload)
            .bind(self.at)
            .bind(&self.group)
    }
}

/// Sends the cross-process wake-up after commits: one `pg_notify` at a time; commits that
/// arrive while one is in flight ask for one more, sent when it returns.
#[derive(Debug, Default)]
struct Announcer {
    /// `(sending, again)`: a notification is in flight; another is wanted after it.
    state: Arc<std::sync::Mutex<(bool, bool)>>,
}

impl Announcer {
    fn announce(&self, pool: &sqlx::PgPool) {
        {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if state.0 {
                state.1 = true;
                return;
            }
            *state = (true, false);
        }
        let (pool, state) = (pool.clone(), Arc::clone(&self.state));
        tokio::spawn(async move {
            loop {
                let sent = sqlx::query("SELECT pg_notify($1, '')")
                    .bind(CHANNEL)
                    .execute(&pool)
                    .await;
                if let Err(e) = sent {
                    // The other relays' sweep picks the rows up instead.
                    tracing::debug!(error = %e, "job outbox notification failed");
                }
                let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
                if state.1 {
                    state.1 = false;
                } else {
                    state.0 = false;
                    return;
                }
            }
        });
    }
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
    attempts: u32,
}

impl OutboxRow {
    /// The row as a dispatch due `when`.
    fn raw(&self, when: When) -> RawDispatch<'_> {
        RawDispatch {
            id: &self.job_id,
            name: &self.job_name,
            queue: &self.queue,
            payload: &self.payload,
            group: self.group_id.as_deref(),
            when,
        }
    }

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
            attempts: row.try_get::<i64, _>("attempts")?.max(0) as u32,
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
                announcer: Announcer::default(),
                sweep_every: sweep_every.max(Duration::from_millis(10)),
                claim_for: claim_for.max(Duration::from_secs(1)),
                batch: 500,
            }),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }

    /// After how many failed dispatches a row is parked instead of tried again (default 5, at
    /// least 1). Failures because the queue is unreachable do not count towards parking.
    #[must_use]
    pub fn with_max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// Writes `job` into the outbox inside `tx`; it is dispatched after `tx` commits, never if
    /// it rolls back. Returns the id the job will have in the queue.
    ///
    /// # Errors
    /// The job does not serialize, or the database failed.
    pub async fn push<J: Job>(&self, tx: &mut Tx, job: &J) -> Result<JobId> {
        self.push_row(tx, self.outbox_row(job, None)?).await
    }

    /// As [`push`](Self::push), to run once `delay` has passed after the push.
    ///
    /// # Errors
    /// The job does not serialize, or the database failed.
    pub async fn push_in<J: Job>(&self, tx: &mut Tx, job: &J, delay: Duration) -> Result<JobId> {
        self.push_row(tx, self.outbox_row(job, Some(delay))?).await
    }

    /// `job`'s outbox row, for a PostgreSQL statement of your own to insert (a data-modifying
    /// CTE): the dispatch then commits atomically with the statement's other writes without a
    /// multi-statement transaction (one round trip instead of `BEGIN`, the inserts and
    /// `COMMIT`). Due now, or once `delay` has passed. After the statement commits, call
    /// [`committed`](Self::committed) to wake the relays as [`commit`](Self::commit) does.
    ///
    /// ```
    /// # async fn demo(buffer: &core_jobs::JobBuffer, pool: &sqlx::PgPool, job: &impl core_jobs::Job) -> anyhow::Result<()> {
    /// let row = buffer.outbox_row(job, None)?;
    /// let sql = format!(
    ///     "WITH dispatch AS ({}) INSERT INTO orders (receipt_job) VALUES ($7)",
    ///     row.insert_sql(1)
    /// );
    /// row.bind(sqlx::query(&sql)).bind(row.id().as_str()).execute(pool).await?;
    /// buffer.committed();
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// The job does not serialize, its queue name is invalid, or the delay is too large.
    pub fn outbox_row<J: Job>(&self, job: &J, delay: Option<Duration>) -> Result<OutboxInsert> {
        crate::queue::check_queue_name(J::QUEUE)?;
        let at = match delay {
            None => Utc::now(),
            Some(delay) => {
                let delay = chrono::Duration::from_std(delay)
                    .map_err(|_| Error::Config("delay too large".into()))?;
                Utc::now() + delay
            }
        };
        Ok(OutboxInsert {
            id: JobId::new(),
            name: J::NAME,
            queue: J::QUEUE,
            payload: serde_json::to_string(job)?,
            group: job.group_id(),
            at,
        })
    }

    /// Wakes the relays after a statement that inserted an [`OutboxInsert`] committed: this
    /// process's at once, other processes' with one shared `pg_notify`, as
    /// [`commit`](Self::commit) does.
    pub fn committed(&self) {
        self.inner.nudge.notify_one();
        if let Database::Postgres(pool) = &self.inner.db {
            self.inner.announcer.announce(pool);
        }
    }

    /// Inserts `row` inside `tx` and wakes this process's relay, which polls until the rows
    /// are visible.
    async fn push_row(&self, tx: &mut Tx, row: OutboxInsert) -> Result<JobId> {
        match tx {
            Tx::Postgres(t) => {
                row.bind(sqlx::query(&row.insert_sql(1)))
                    .execute(&mut **t)
                    .await?;
            }
            Tx::Sqlite(t) => {
                sqlx::query(&row.insert_sql(1))
                    .bind(row.id.as_str())
                    .bind(row.name)
                    .bind(row.queue)
                    .bind(&row.payload)
                    .bind(sqlite::format_time(row.at))
                    .bind(&row.group)
                    .execute(&mut **t)
                    .await?;
            }
        }
        self.inner.nudge.notify_one();
        Ok(row.id)
    }

    /// Commits `tx` and wakes the relay at once: this process's, and on PostgreSQL the relays
    /// of other processes (one `pg_notify` after the commit, shared with the commits made while
    /// it is in flight; it is not awaited).
    ///
    /// # Errors
    /// The commit failed (nothing is dispatched).
    pub async fn commit(&self, tx: Tx) -> Result<()> {
        tx.commit().await?;
        self.committed();
        Ok(())
    }

    /// Claims up to one batch of committed rows, dispatches them and deletes them; returns how
    /// many were dispatched. The relay calls this; tests and one-off tools may too.
    ///
    /// A row that fails for a reason of its own gets its attempt counted (and is parked after
    /// the last one) while the rest of the batch goes on; when the queue itself fails, the
    /// pass ends. Either way the rows dispatched so far are deleted first.
    ///
    /// # Errors
    /// The database failed, or the queue is unreachable (the rows not dispatched are tried
    /// again once their claim expires).
    pub async fn relay_once(&self) -> Result<u64> {
        let rows = self.claim().await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let now = Utc::now();
        let mut done = Vec::with_capacity(rows.len());
        let mut outcome = Ok(());
        // Rows due now and ungrouped go to their queue in one push per queue (one round trip
        // instead of one per row); the others, and any a bulk push refused, one at a time.
        let mut bulk: Vec<(&str, Vec<&OutboxRow>)> = Vec::new();
        let mut single: Vec<&OutboxRow> = Vec::new();
        for row in &rows {
            if row.available_at <= now
                && row.group_id.is_none()
                && Queue::raw_ok(row.raw(When::Now))
            {
                match bulk.iter_mut().find(|(queue, _)| *queue == row.queue) {
                    Some((_, list)) => list.push(row),
                    None => bulk.push((&row.queue, vec![row])),
                }
            } else {
                single.push(row);
            }
        }
        let mut untried: Vec<i64> = Vec::new();
        let mut bulk = bulk.into_iter();
        for (queue, list) in bulk.by_ref() {
            let raws: Vec<RawDispatch<'_>> = list.iter().map(|row| row.raw(When::Now)).collect();
            match self.inner.queue.dispatch_raw_many(queue, &raws).await {
                Ok(()) => done.extend(list.iter().map(|row| row.id)),
                Err(e) if queue_unreachable(&e) => {
                    tracing::warn!(queue, rows = list.len(), error = %e, "job queue unreachable; the outbox rows wait for the next pass");
                    untried.extend(list.iter().map(|row| row.id));
                    outcome = Err(e);
                    break;
                }
                // Refused as a whole: each row is tried alone, so only a faulty one counts.
                Err(_) => single.extend(list),
            }
        }
        if outcome.is_err() {
            untried.extend(bulk.flat_map(|(_, list)| list).map(|row| row.id));
            untried.extend(single.iter().map(|row| row.id));
            single.clear();
        }
        for (i, row) in single.iter().enumerate() {
            let when = if row.available_at > now {
                When::At(row.available_at.timestamp_millis())
            } else {
                When::Now
            };
            let sent = self.inner.queue.dispatch_raw(row.raw(when)).await;
            match sent {
                Ok(_) => done.push(row.id),
                Err(e) => {
                    let unreachable = queue_unreachable(&e);
                    // An unreachable queue says nothing about the row: not counted.
                    let attempts = if unreachable {
                        row.attempts
                    } else {
                        row.attempts.saturating_add(1)
                    };
                    let park = !unreachable && attempts >= self.max_attempts;
                    if park {
                        tracing::error!(row = row.id, job = %row.job_name, queue = %row.queue, attempts, error = %e, "job outbox row keeps failing to dispatch; parked");
                    } else {
                        tracing::warn!(row = row.id, job = %row.job_name, queue = %row.queue, attempts, error = %e, "job outbox row failed to dispatch; trying it again later");
                    }
                    if let Err(db) = self
                        .record_failure(row.id, attempts, &e.to_string(), park)
                        .await
                    {
                        outcome = Err(db);
                        untried.extend(single[i + 1..].iter().map(|row| row.id));
                        break;
                    }
                    if unreachable {
                        outcome = Err(e);
                        untried.extend(single[i + 1..].iter().map(|row| row.id));
                        break;
                    }
                }
            }
        }
        if !done.is_empty() {
            self.delete(&done).await?;
        }
        if !untried.is_empty() {
            // Not tried at all: free their claim for the next pass instead of leaving them
            // reserved until it expires.
            self.release(&untried).await?;
        }
        outcome?;
        Ok(done.len() as u64)
    }

    /// Records a failed dispatch of row `id`: its attempts and error, then either parks it or
    /// releases its claim after a backoff that grows with the attempts.
    async fn record_failure(&self, id: i64, attempts: u32, error: &str, park: bool) -> Result<()> {
        let now = Utc::now();
        let shift = attempts.min(10);
        let backoff = (Duration::from_millis(100) * (1u32 << shift)).min(self.inner.claim_for);
        let retry_at = now + chrono::Duration::from_std(backoff).unwrap_or_default();
        let attempts = i64::from(attempts);
        let sql = "UPDATE job_outbox SET attempts = $1, last_error = $2, claimed_until = $3, \
                   parked_at = $4 WHERE id = $5";
        match &self.inner.db {
            Database::Postgres(pool) => {
                sqlx::query(sql)
                    .bind(attempts)
                    .bind(error)
                    .bind(retry_at)
                    .bind(park.then_some(now))
                    .bind(id)
                    .execute(pool)
                    .await?;
            }
            Database::Sqlite(pool) => {
                sqlx::query(sql)
                    .bind(attempts)
                    .bind(error)
                    .bind(sqlite::format_time(retry_at))
                    .bind(park.then(|| sqlite::format_time(now)))
                    .bind(id)
                    .execute(pool)
                    .await?;
            }
        }
        Ok(())
    }

    /// The rows the relay parked (oldest first), at most `limit`.
    ///
    /// # Errors
    /// The database failed.
    pub async fn parked(&self, limit: u32) -> Result<Vec<ParkedJob>> {
        let sql = "SELECT id, job_id, job_name, queue, payload, attempts, last_error, parked_at \
                   FROM job_outbox WHERE parked_at IS NOT NULL ORDER BY id LIMIT $1";
        let limit = i64::from(limit);
        fn read<'r, R>(row: &'r R, parked_at: DateTime<Utc>) -> Result<ParkedJob, sqlx::Error>
        where
            R: Row,
            &'static str: ColumnIndex<R>,
            i64: Decode<'r, R::Database> + Type<R::Database>,
            String: Decode<'r, R::Database> + Type<R::Database>,
        {
            Ok(ParkedJob {
                id: row.try_get("id")?,
                job_id: row.try_get("job_id")?,
                job_name: row.try_get("job_name")?,
                queue: row.try_get("queue")?,
                payload: row.try_get("payload")?,
                attempts: row.try_get::<i64, _>("attempts")?.max(0) as u32,
                last_error: row.try_get("last_error")?,
                parked_at,
            })
        }
        Ok(match &self.inner.db {
            Database::Postgres(pool) => sqlx::query(sql)
                .bind(limit)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|r| read(r, r.try_get("parked_at")?))
                .collect::<Result<Vec<_>, sqlx::Error>>()?,
            Database::Sqlite(pool) => sqlx::query(sql)
                .bind(limit)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|r| {
                    let at: String = r.try_get("parked_at")?;
                    read(r, sqlite::parse_time(&at).unwrap_or_default())
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?,
        })
    }

    /// Puts parked row `id` back for the relay with its attempts reset (its last error stays
    /// until it is dispatched); false when no such row is parked.
    ///
    /// # Errors
    /// The database failed.
    pub async fn retry_parked(&self, id: i64) -> Result<bool> {
        self.unpark(Some(id)).await.map(|n| n > 0)
    }

    /// Puts every parked row back for the relay; returns how many.
    ///
    /// # Errors
    /// The database failed.
    pub async fn retry_all_parked(&self) -> Result<u64> {
        self.unpark(None).await
    }

    async fn unpark(&self, id: Option<i64>) -> Result<u64> {
        let sql = "UPDATE job_outbox SET parked_at = NULL, attempts = 0, claimed_until = NULL \
                   WHERE parked_at IS NOT NULL AND ($1 IS NULL OR id = $1)";
        let n = match &self.inner.db {
            Database::Postgres(pool) => {
                let sql = sql.replace("$1 IS NULL", "$1::BIGINT IS NULL");
                sqlx::query(&sql)
                    .bind(id)
                    .execute(pool)
                    .await?
                    .rows_affected()
            }
            Database::Sqlite(pool) => sqlx::query(sql)
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected(),
        };
        if n > 0 {
            self.inner.nudge.notify_one();
        }
        Ok(n)
    }

    async fn claim(&self) -> Result<Vec<OutboxRow>> {
        let inner = &self.inner;
        let now = Utc::now();
        let until = now
            + chrono::Duration::from_std(inner.claim_for).unwrap_or(chrono::Duration::seconds(30));
        let cols = "id, job_id, job_name, queue, payload, available_at, group_id, attempts";
        Ok(match &inner.db {
            Database::Postgres(pool) => {
                let sql = format!(
                    "UPDATE job_outbox SET claimed_until = $1 WHERE id IN ( \
                       SELECT id FROM job_outbox WHERE parked_at IS NULL \
                         AND (claimed_until IS NULL OR claimed_until < $2) \
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
                       SELECT id FROM job_outbox WHERE parked_at IS NULL \
                         AND (claimed_until IS NULL OR claimed_until < $2) \
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

    async fn release(&self, ids: &[i64]) -> Result<()> {
        match &self.inner.db {
            Database::Postgres(pool) => {
                sqlx::query("UPDATE job_outbox SET claimed_until = NULL WHERE id = ANY($1)")
                    .bind(ids)
                    .execute(pool)
                    .await?;
            }
            Database::Sqlite(pool) => {
                let list = serde_json::to_string(ids)?;
                sqlx::query(
                    "UPDATE job_outbox SET claimed_until = NULL \
                     WHERE id IN (SELECT value FROM json_each($1))",
                )
                .bind(list)
                .execute(pool)
                .await?;
            }
        }
        Ok(())
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

    /// How many rows wait in the outbox (claimed, parked or not).
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
}

/// Whether `e` says the queue itself is unreachable (so every row would fail alike), rather
/// than that this row cannot be dispatched.
fn queue_unreachable(e: &Error) -> bool {
    match e {
        Error::Redis(r) => {
            r.is_io_error()
                || r.is_connection_dropped()
                || r.is_connection_refusal()
                || r.is_timeout()
                || r.is_unrecoverable_error()
        }
        _ => false,
    }
}
