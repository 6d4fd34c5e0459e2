//! The jobs table and its events: reads, the submitting insert, and every transition as one
//! compare-and-set that appends its event in the same transaction.
//!
//! A transition reads the row, checks that the move is allowed ([`State::can_become`]) and
//! that the caller's guard holds, then writes `UPDATE … WHERE id = $1 AND version = $2`: a
//! concurrent transition bumps `version`, so of two racing writers exactly one succeeds and the
//! other re-reads and decides again. The event is inserted by the same transaction, so the
//! events of a job are exactly its transitions, in order.
//!
//! Reads of one job go through the cache (`remember_with_tags`, tagged with the job and its
//! client) and every committed transition invalidates the job's tag before returning.

use anyhow::Context as _;
use core_db::db::Timestamp;
use core_db::{Cache, Database, Tx, on_db, on_tx};
use serde::{Deserialize, Serialize};

use super::state::State;

/// The columns of a job row, as read everywhere.
pub const JOB_COLUMNS: &str = "id, client_id, work_kind, state, attempt, max_attempts, outcome, \
    error, retryable, callback, dispatch_id, cancel_requested, version, execution_at, created_at, \
    updated_at, queued_at, started_at, finished_at";

/// One job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct JobRow {
    /// The job's id (UUID).
    pub id: String,
    /// Its client's id.
    pub client_id: String,
    /// The work kind's name.
    pub work_kind: String,
    /// The state's name ([`State::as_str`]).
    pub state: String,
    /// Attempts started so far.
    pub attempt: i64,
    /// Attempts allowed.
    pub max_attempts: i64,
    /// SUCCEEDED, FAILED or CANCELED once final.
    pub outcome: Option<String>,
    /// The last failure's reason.
    pub error: Option<String>,
    /// Whether the failure is marked retryable.
    pub retryable: bool,
    /// The callback URL the client gave.
    pub callback: Option<String>,
    /// The id of the core-jobs dispatch that runs the current attempt.
    pub dispatch_id: Option<String>,
    /// Whether the client asked a running job to stop.
    pub cancel_requested: bool,
    /// Bumped by every transition.
    pub version: i64,
    /// Not to start before.
    pub execution_at: Option<Timestamp>,
    /// Submitted.
    pub created_at: Timestamp,
    /// Last transition.
    pub updated_at: Timestamp,
    /// Last queued.
    pub queued_at: Option<Timestamp>,
    /// First started.
    pub started_at: Option<Timestamp>,
    /// Reached a final state.
    pub finished_at: Option<Timestamp>,
}

impl JobRow {
    /// The row's state.
    pub fn state(&self) -> State {
        State::parse(&self.state).unwrap_or(State::Failed)
    }
}

/// One event: a transition of one job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct EventRow {
    /// Orders the events of a job.
    pub seq: i64,
    /// The event's id (UUID).
    pub event_id: String,
    /// The job's id.
    pub job_id: String,
    /// `job.queued`, …
    pub event_name: String,
    /// The state before (none for `job.created`).
    pub prev_state: Option<String>,
    /// The state after.
    pub next_state: String,
    /// The job's attempt when it happened.
    pub attempt: i64,
    /// Why, for failures and recoveries.
    pub detail: Option<String>,
    /// When.
    pub created_at: Timestamp,
}

/// One stored output file of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct ArtifactRow {
    /// The file's name within the job.
    pub name: String,
    /// Its key in Storage.
    pub storage_key: String,
    /// Its size in bytes.
    pub size: i64,
    /// Its media type.
    pub content_type: String,
    /// When it was written.
    pub created_at: Timestamp,
}

/// The cache tag of one job.
pub fn job_tag(job_id: &str) -> String {
    format!("job:{job_id}")
}

/// The cache tag of one client's jobs.
pub fn client_tag(client_id: &str) -> String {
    format!("client:{client_id}:jobs")
}

/// How long a cached job read lives at most (transitions invalidate it sooner).
const CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(300);

/// The job `id`, from the database.
///
/// # Errors
/// The database failed.
pub async fn find(db: &Database, id: &str) -> anyhow::Result<Option<JobRow>> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1");
    Ok(on_db!(db, pool => sqlx::query_as::<_, JobRow>(&sql).bind(id).fetch_optional(pool).await)?)
}

/// Client `client_id`'s job `id`, through the cache; `None` when it does not exist or belongs
/// to another client.
///
/// # Errors
/// The database failed (a cache failure falls back to the database).
pub async fn find_for_client(
    db: &Database,
    cache: &Cache,
    client_id: &str,
    id: &str,
) -> anyhow::Result<Option<JobRow>> {
    if uuid::Uuid::parse_str(id).is_err() {
        return Ok(None);
    }
    let key = format!("job:{id}");
    let tags = [job_tag(id), client_tag(client_id)];
    let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
    let load = || async { Ok(find(db, id).await?) };
    let row = match cache
        .remember_with_tags(&key, &tags, Some(CACHE_TTL), load)
        .await
    {
        Ok(row) => row,
        Err(e) => {
            tracing::warn!(error = %e, job_id = id, "job cache unavailable; reading the database");
            find(db, id).await?
        }
    };
    Ok(row.filter(|r| r.client_id == client_id))
}

/// A job's events in order.
///
/// # Errors
/// The database failed.
pub async fn events(db: &Database, job_id: &str) -> anyhow::Result<Vec<EventRow>> {
    let sql = "SELECT seq, event_id, job_id, event_name, prev_state, next_state, attempt, detail, \
               created_at FROM job_events WHERE job_id = $1 ORDER BY seq";
    Ok(on_db!(db, pool => sqlx::query_as::<_, EventRow>(sql).bind(job_id).fetch_all(pool).await)?)
}

/// A job's artifacts by name.
///
/// # Errors
/// The database failed.
pub async fn artifacts(db: &Database, job_id: &str) -> anyhow::Result<Vec<ArtifactRow>> {
    let sql = "SELECT name, storage_key, size, content_type, created_at FROM job_artifacts \
               WHERE job_id = $1 ORDER BY name";
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, ArtifactRow>(sql).bind(job_id).fetch_all(pool).await)?,
    )
}

/// Records an artifact (replacing one of the same name from an earlier attempt).
///
/// # Errors
/// The database failed.
pub async fn put_artifact(
    db: &Database,
    job_id: &str,
    artifact: &ArtifactRow,
) -> anyhow::Result<()> {
    let sql = "INSERT INTO job_artifacts (job_id, name, storage_key, size, content_type, created_at) \
               VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (job_id, name) DO UPDATE SET \
               storage_key = excluded.storage_key, size = excluded.size, \
               content_type = excluded.content_type, created_at = excluded.created_at";
    on_db!(db, pool => sqlx::query(sql)
        .bind(job_id)
        .bind(&artifact.name)
        .bind(&artifact.storage_key)
        .bind(artifact.size)
        .bind(&artifact.content_type)
        .bind(artifact.created_at)
        .execute(pool)
        .await
        .map(drop))?;
    Ok(())
}

/// Keeps a small output in the job row.
///
/// # Errors
/// The database failed.
pub async fn set_output(db: &Database, job_id: &str, output: &str) -> anyhow::Result<()> {
    on_db!(db, pool => sqlx::query("UPDATE jobs SET output = $1 WHERE id = $2")
        .bind(output)
        .bind(job_id)
        .execute(pool)
        .await
        .map(drop))?;
    Ok(())
}

/// Inserts a new job (already in `row.state`) inside `tx`.
///
/// # Errors
/// The database failed.
pub async fn insert(tx: &mut Tx, row: &JobRow) -> anyhow::Result<()> {
    let sql = format!(
        "INSERT INTO jobs ({JOB_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
         $12, $13, $14, $15, $16, $17, $18, $19)"
    );
    on_tx!(tx, conn => sqlx::query(&sql)
        .bind(&row.id)
        .bind(&row.client_id)
        .bind(&row.work_kind)
        .bind(&row.state)
        .bind(row.attempt)
        .bind(row.max_attempts)
        .bind(&row.outcome)
        .bind(&row.error)
        .bind(row.retryable)
        .bind(&row.callback)
        .bind(&row.dispatch_id)
        .bind(row.cancel_requested)
        .bind(row.version)
        .bind(row.execution_at)
        .bind(row.created_at)
        .bind(row.updated_at)
        .bind(row.queued_at)
        .bind(row.started_at)
        .bind(row.finished_at)
        .execute(conn)
        .await
        .map(drop))?;
    Ok(())
}

/// Appends an event inside `tx`.
///
/// # Errors
/// The database failed.
pub async fn insert_event(
    tx: &mut Tx,
    job_id: &str,
    prev: Option<State>,
    next: State,
    attempt: i64,
    detail: Option<&str>,
    at: Timestamp,
) -> anyhow::Result<()> {
    let sql = "INSERT INTO job_events (event_id, job_id, event_name, prev_state, next_state, \
               attempt, detail, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
    let event_id = uuid::Uuid::new_v4().to_string();
    on_tx!(tx, conn => sqlx::query(sql)
        .bind(&event_id)
        .bind(job_id)
        .bind(next.event_name())
        .bind(prev.map(State::as_str))
        .bind(next.as_str())
        .bind(attempt)
        .bind(detail)
        .bind(at)
        .execute(conn)
        .await
        .map(drop))?;
    Ok(())
}

/// What a transition requires of the row besides an allowed move.
#[derive(Debug, Clone, Copy, Default)]
pub struct Guard<'a> {
    /// The row's attempt must be this (a worker's transitions: a stale run cannot finish a
    /// newer attempt).
    pub attempt: Option<i64>,
    /// The row's dispatch must be this (a duplicate delivery cannot move the job).
    pub dispatch_id: Option<&'a str>,
    /// The row must be in one of these states (default: any state that may move to the
    /// target).
    pub from: Option<&'a [State]>,
}

/// What became of a transition.
#[derive(Debug, Clone)]
pub enum Moved {
    /// Applied: the row as committed.
    Applied(JobRow),
    /// Not applied: the move is not allowed from the current state or the guard failed; the
    /// row as it is.
    Refused(JobRow),
    /// No such job.
    Missing,
}

/// Moves job `id` to `to`, applying `change` to the row, and appends the event with `detail`,
/// in one transaction decided by compare-and-set on the row's version. Re-reads and decides
/// again when a concurrent transition won the race. Invalidates the job's cache entries after
/// the commit.
///
/// # Errors
/// The database failed.
pub async fn transition(
    db: &Database,
    cache: &Cache,
    id: &str,
    to: State,
    guard: Guard<'_>,
    detail: Option<&str>,
    change: impl Fn(&mut JobRow),
) -> anyhow::Result<Moved> {
    loop {
        let Some(current) = find(db, id).await? else {
            return Ok(Moved::Missing);
        };
        let from = current.state();
        let allowed = from.can_become(to)
            && guard.from.is_none_or(|states| states.contains(&from))
            && guard.attempt.is_none_or(|a| a == current.attempt)
            && guard
                .dispatch_id
                .is_none_or(|d| current.dispatch_id.as_deref() == Some(d));
        if !allowed {
            return Ok(Moved::Refused(current));
        }
        let next = advance(&current, to, &change);
        let mut tx = db.begin().await?;
        if !write(&mut tx, &current, &next, detail).await? {
            tx.rollback().await?;
            continue;
        }
        tx.commit().await?;
        invalidate(cache, &next.id).await;
        record_metrics(&next, to);
        tracing::info!(
            job_id = id,
            client_id = next.client_id,
            action = "transition",
            prev_state = from.as_str(),
            next_state = to.as_str(),
            attempt = next.attempt,
            detail,
            "job transition"
        );
        return Ok(Moved::Applied(next));
    }
}

/// `current` moved to `to`: state, version, the time columns, then `change`.
pub fn advance(current: &JobRow, to: State, change: impl Fn(&mut JobRow)) -> JobRow {
    let now = Timestamp::now();
    let mut next = current.clone();
    next.state = to.as_str().to_owned();
    next.version += 1;
    next.updated_at = now;
    match to {
        State::Queued => next.queued_at = Some(now),
        State::Running => {
            next.started_at.get_or_insert(now);
        }
        State::Succeeded | State::Failed | State::Canceled => {
            next.finished_at = Some(now);
            next.outcome = Some(to.as_str().to_owned());
        }
        State::Created | State::Assigned => {}
    }
    change(&mut next);
    next
}

/// Writes the transition `current` → `next` inside `tx`: the row if its version is still
/// `current`'s, and then the event. False (nothing written) when another transition won.
///
/// # Errors
/// The database failed.
pub async fn write(
    tx: &mut Tx,
    current: &JobRow,
    next: &JobRow,
    detail: Option<&str>,
) -> anyhow::Result<bool> {
    if !update(tx, next, current.version).await? {
        return Ok(false);
    }
    let (from, to) = (current.state(), next.state());
    insert_event(
        tx,
        &next.id,
        Some(from),
        to,
        next.attempt,
        detail,
        next.updated_at,
    )
    .await?;
    Ok(true)
}

/// Writes every mutable column of `row` if the stored version is still `version`.
async fn update(tx: &mut Tx, row: &JobRow, version: i64) -> anyhow::Result<bool> {
    let sql = "UPDATE jobs SET state = $1, attempt = $2, max_attempts = $3, outcome = $4, \
               error = $5, retryable = $6, dispatch_id = $7, cancel_requested = $8, \
               version = $9, updated_at = $10, queued_at = $11, started_at = $12, \
               finished_at = $13 WHERE id = $14 AND version = $15";
    let changed = on_tx!(tx, conn => sqlx::query(sql)
        .bind(&row.state)
        .bind(row.attempt)
        .bind(row.max_attempts)
        .bind(&row.outcome)
        .bind(&row.error)
        .bind(row.retryable)
        .bind(&row.dispatch_id)
        .bind(row.cancel_requested)
        .bind(row.version)
        .bind(row.updated_at)
        .bind(row.queued_at)
        .bind(row.started_at)
        .bind(row.finished_at)
        .bind(&row.id)
        .bind(version)
        .execute(conn)
        .await
        .map(|done| done.rows_affected()))?;
    Ok(changed == 1)
}

/// Asks a RUNNING job to stop; true when the flag was set (the job was RUNNING).
///
/// # Errors
/// The database failed.
pub async fn request_cancel(db: &Database, cache: &Cache, id: &str) -> anyhow::Result<bool> {
    let sql = "UPDATE jobs SET cancel_requested = $1, version = version + 1 \
               WHERE id = $2 AND state = 'RUNNING'";
    let changed = on_db!(db, pool => sqlx::query(sql)
        .bind(true)
        .bind(id)
        .execute(pool)
        .await
        .map(|done| done.rows_affected()))?;
    if changed == 1 {
        invalidate(cache, id).await;
    }
    Ok(changed == 1)
}

/// Whether the client asked job `id` to stop.
///
/// # Errors
/// The database failed.
pub async fn cancel_requested(db: &Database, id: &str) -> anyhow::Result<bool> {
    let flag: Option<bool> = on_db!(db, pool => sqlx::query_scalar("SELECT cancel_requested FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await)?;
    Ok(flag.unwrap_or(true))
}

/// Drops the cached reads of job `job_id`. A failure is logged: the entry then lives until its
/// TTL, which is why the TTL is short.
pub async fn invalidate(cache: &Cache, job_id: &str) {
    if let Err(e) = cache.invalidate_tag(&job_tag(job_id)).await {
        tracing::warn!(error = %e, job_id, "could not invalidate the cached job");
    }
}

/// Jobs not yet final: of `client_id`, or of every client (the queue depth `MAX_QUEUE_DEPTH`
/// limits) when `None`.
///
/// # Errors
/// The database failed.
pub async fn active(db: &Database, client_id: Option<&str>) -> anyhow::Result<u64> {
    let scope = if client_id.is_some() {
        "client_id = $1 AND "
    } else {
        ""
    };
    let sql = format!(
        "SELECT COUNT(*) FROM jobs WHERE {scope}state IN {}",
        State::sql_list(&State::ACTIVE)
    );
    let n: i64 = on_db!(db, pool => {
        let mut query = sqlx::query_scalar(&sql);
        if let Some(client_id) = client_id {
            query = query.bind(client_id);
        }
        query.fetch_one(pool).await
    })
    .context("counting active jobs")?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// QUEUED jobs: for the start-up sweep of a queue that does not survive restarts.
///
/// # Errors
/// The database failed.
pub async fn queued(db: &Database, limit: i64) -> anyhow::Result<Vec<JobRow>> {
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE state IN ('QUEUED', 'ASSIGNED', 'RUNNING') ORDER BY created_at LIMIT $1"
    );
    Ok(on_db!(db, pool => sqlx::query_as::<_, JobRow>(&sql).bind(limit).fetch_all(pool).await)?)
}

/// Records the last attempt's error without a transition (the `failed()` callback makes it).
///
/// # Errors
/// The database failed.
pub async fn set_error(
    db: &Database,
    id: &str,
    error: &str,
    retryable: bool,
) -> anyhow::Result<()> {
    on_db!(db, pool => sqlx::query("UPDATE jobs SET error = $1, retryable = $2 WHERE id = $3")
        .bind(error)
        .bind(retryable)
        .bind(id)
        .execute(pool)
        .await
        .map(drop))?;
    Ok(())
}

/// The Prometheus metrics of a committed transition into `to`.
fn record_metrics(row: &JobRow, to: State) {
    let kind = row.work_kind.clone();
    match to {
        State::Running if row.attempt == 1 => {
            if let Some(started) = row.started_at {
                let ready = row
                    .execution_at
                    .map_or(row.created_at, |at| at.max(row.created_at));
                let wait = (started.get() - ready.get()).num_milliseconds().max(0);
                metrics::histogram!("job_queue_wait_seconds", "work_kind" => kind)
                    .record(wait as f64 / 1000.0);
            }
        }
        State::Succeeded | State::Failed | State::Canceled => {
            let name = match to {
                State::Succeeded => "jobs_succeeded_total",
                State::Failed => "jobs_failed_total",
                _ => "jobs_canceled_total",
            };
            metrics::counter!(name, "work_kind" => kind.clone()).increment(1);
            if let (Some(started), Some(finished)) = (row.started_at, row.finished_at) {
                let ms = (finished.get() - started.get()).num_milliseconds().max(0);
                metrics::histogram!("job_execution_seconds", "work_kind" => kind)
                    .record(ms as f64 / 1000.0);
            }
        }
        _ => {}
    }
}
