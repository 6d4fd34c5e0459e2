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

use std::sync::LazyLock;

use anyhow::Context as _;
use core_db::db::Timestamp;
use core_db::{Cache, Database, Tx, on_db, on_tx};
use core_jobs::JobBuffer;
use serde::{Deserialize, Serialize};
use sqlx::{FromRow as _, Row as _};

use super::state::State;
use crate::AppContext;
use crate::webhooks::Dispatches;

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

// region: job-cache-keys
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
// endregion: job-cache-keys

// region: find-job
/// The job `id`, from the database.
///
/// # Errors
/// The database failed.
pub async fn find(db: &Database, id: &str) -> anyhow::Result<Option<JobRow>> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1");
    Ok(on_db!(db, pool => sqlx::query_as::<_, JobRow>(&sql).bind(id).fetch_optional(pool).await)?)
}

// region: remember-job
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
// endregion: remember-job
// endregion: find-job

/// A job's events in order.
///
/// # Errors
/// The database failed.
pub async fn events(db: &Database, job_id: &str) -> anyhow::Result<Vec<EventRow>> {
    events_after(db, job_id, 0).await
}

/// Job `job_id`'s events after `seq` `after`, in order.
///
/// # Errors
/// The database failed.
pub async fn events_after(
    db: &Database,
    job_id: &str,
    after: i64,
) -> anyhow::Result<Vec<EventRow>> {
    let sql = "SELECT seq, event_id, job_id, event_name, prev_state, next_state, attempt, detail, \
               created_at FROM job_events WHERE job_id = $1 AND seq > $2 ORDER BY seq";
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, EventRow>(sql).bind(job_id).bind(after).fetch_all(pool).await)?,
    )
}

/// Event `event_id`.
///
/// # Errors
/// The database failed.
pub async fn event(db: &Database, event_id: &str) -> anyhow::Result<Option<EventRow>> {
    let sql = "SELECT seq, event_id, job_id, event_name, prev_state, next_state, attempt, detail, \
               created_at FROM job_events WHERE event_id = $1";
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, EventRow>(sql).bind(event_id).fetch_optional(pool).await)?,
    )
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

/// Binds a job row's [`JOB_COLUMNS`] to `$query`, in order (on either engine).
macro_rules! bind_row {
    ($query:expr, $row:expr) => {
        $query
            .bind(&$row.id)
            .bind(&$row.client_id)
            .bind(&$row.work_kind)
            .bind(&$row.state)
            .bind($row.attempt)
            .bind($row.max_attempts)
            .bind(&$row.outcome)
            .bind(&$row.error)
            .bind($row.retryable)
            .bind(&$row.callback)
            .bind(&$row.dispatch_id)
            .bind($row.cancel_requested)
            .bind($row.version)
            .bind($row.execution_at)
            .bind($row.created_at)
            .bind($row.updated_at)
            .bind($row.queued_at)
            .bind($row.started_at)
            .bind($row.finished_at)
    };
}

/// Inserts a new job inside `tx` with its events (`job.created`, then the move from CREATED
/// to `row.state` when it is already further) and their fan-out dispatches; how many
/// dispatches it wrote (commit with [`JobBuffer::commit`], which wakes the relay).
///
/// # Errors
/// The database failed.
pub async fn insert(buffer: &JobBuffer, tx: &mut Tx, row: &JobRow) -> anyhow::Result<usize> {
    let events = creation_events(row);
    let ids = event_ids(&events);
    let fans = Dispatches::new(buffer, &row.id, states_of(&ids, &events))?;
    match tx {
        // The row, its events and their fan-out in one statement: one round trip.
        Tx::Postgres(t) => {
            let first_fan = 20 + events.len() * 7;
            let sql = format!(
                "WITH inserted AS (INSERT INTO jobs ({JOB_COLUMNS}) {} RETURNING {RETURNED}), \
                 logged AS ({} RETURNING 1){} SELECT {}",
                row_values(1),
                events_from("inserted", 20, events.len()),
                fans.ctes("inserted", first_fan),
                fans.count_sql(),
            );
            let query = bind_events(bind_row!(sqlx::query(&sql), row), &events, &ids);
            let fanned: i64 = fans.bind(query).fetch_one(&mut **t).await?.try_get(0)?;
            Ok(usize::try_from(fanned).unwrap_or(0))
        }
        Tx::Sqlite(t) => {
            let sql = format!("INSERT INTO jobs ({JOB_COLUMNS}) {}", row_values(1));
            bind_row!(sqlx::query(&sql), row).execute(&mut **t).await?;
            insert_events(tx, &row.id, &events, &ids).await?;
            fans.push(buffer, tx, row).await
        }
    }
}

/// As [`insert`], with `dispatch`'s outbox row, in one PostgreSQL statement of its own (one
/// round trip, its own transaction): the job, its events, its dispatch and their fan-out
/// commit together. Call [`JobBuffer::committed`] afterwards.
///
/// # Errors
/// The database failed (nothing is written).
pub async fn insert_dispatched(
    pool: &sqlx::PgPool,
    buffer: &JobBuffer,
    row: &JobRow,
    dispatch: &core_jobs::OutboxInsert,
) -> anyhow::Result<()> {
    let events = creation_events(row);
    let ids = event_ids(&events);
    let fans = Dispatches::new(buffer, &row.id, states_of(&ids, &events))?;
    let sql = format!(
        "WITH dispatch AS ({}), inserted AS (INSERT INTO jobs ({JOB_COLUMNS}) {} RETURNING \
         {RETURNED}), logged AS ({} RETURNING 1){} SELECT {}",
        dispatch.insert_sql(1),
        row_values(7),
        events_from("inserted", 26, events.len()),
        fans.ctes("inserted", 26 + events.len() * 7),
        fans.count_sql(),
    );
    let query = bind_events(
        bind_row!(dispatch.bind(sqlx::query(&sql)), row),
        &events,
        &ids,
    );
    fans.bind(query).fetch_one(pool).await?;
    Ok(())
}

/// What the first step of a transition's statement returns for the steps after it: the job's
/// id, and what decides whether a webhook wants its events.
const RETURNED: &str = "id, client_id, callback";

/// `(event id, state reached)` of each of `events`, for [`Dispatches::new`].
fn states_of<'a>(
    ids: &'a [String],
    events: &'a [Event<'_>],
) -> impl Iterator<Item = (&'a str, State)> + 'a {
    ids.iter()
        .map(String::as_str)
        .zip(events.iter().map(|e| e.next))
}

/// A new job's events: `job.created`, then the move from CREATED to `row.state` when it is
/// already further.
fn creation_events(row: &JobRow) -> Vec<Event<'static>> {
    let created = Event {
        prev: None,
        next: State::Created,
        attempt: row.attempt,
        detail: None,
        at: row.created_at,
    };
    let state = row.state();
    if state == State::Created {
        vec![created]
    } else {
        let moved = Event {
            prev: Some(State::Created),
            next: state,
            ..created
        };
        vec![created, moved]
    }
}

/// `VALUES (…)` for the 19 columns of [`JOB_COLUMNS`], numbered from `$first`; `bind_row!`
/// binds them.
fn row_values(first: usize) -> String {
    format!("VALUES ({})", params(first, 19))
}

/// `$first, …` for `count` parameters.
fn params(first: usize, count: usize) -> String {
    let list: Vec<String> = (first..first + count).map(|n| format!("${n}")).collect();
    list.join(", ")
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
/// the commit. [`apply`] is the same with the options of a [`Move`].
///
/// # Errors
/// The database failed.
pub async fn transition(
    app: &AppContext,
    id: &str,
    to: State,
    guard: Guard<'_>,
    detail: Option<&str>,
    change: impl Fn(&mut JobRow),
) -> anyhow::Result<Moved> {
    let step = Move {
        guard,
        detail,
        ..Move::to(to)
    };
    apply(app, id, step, change).await
}

/// A transition as [`apply`] makes it.
#[derive(Debug, Clone)]
pub struct Move<'a> {
    /// The state to reach.
    pub to: State,
    /// A state recorded on the way, with its own event, in the same transaction (the worker's
    /// QUEUED → ASSIGNED → RUNNING): both moves must be allowed.
    pub via: Option<State>,
    /// What the row must satisfy besides an allowed move.
    pub guard: Guard<'a>,
    /// The last event's detail.
    pub detail: Option<&'a str>,
    /// The row as the caller last saw it: the compare-and-set is tried on it first, without
    /// reading the row again (a stale copy only costs the re-read).
    pub seen: Option<JobRow>,
    /// The job's output, written with the row.
    pub output: Option<&'a str>,
    /// Commit without waiting for the disk flush (PostgreSQL `synchronous_commit = off`; no
    /// effect on SQLite). Only for moves that a crash of the database may undo without harm:
    /// the worker's start, which the queue's redelivery repeats ("worker lost"). The next
    /// durable commit (the attempt's end) flushes it, since the log is written in order.
    pub relaxed: bool,
}

impl Move<'_> {
    /// A plain durable move to `to`.
    pub fn to(to: State) -> Self {
        Self {
            to,
            via: None,
            guard: Guard::default(),
            detail: None,
            seen: None,
            output: None,
            relaxed: false,
        }
    }
}

/// Makes transition `step` of job `id`, applying `change` to the row (after the `via` step's
/// own changes of the time columns), as [`transition`] does.
///
/// # Errors
/// The database failed.
pub async fn apply(
    app: &AppContext,
    id: &str,
    step: Move<'_>,
    change: impl Fn(&mut JobRow),
) -> anyhow::Result<Moved> {
    let Move {
        to,
        via,
        guard,
        detail,
        mut seen,
        output,
        relaxed,
    } = step;
    let db = &app.db;
    loop {
        let current = match seen.take() {
            Some(row) => row,
            None => match find(db, id).await? {
                Some(row) => row,
                None => return Ok(Moved::Missing),
            },
        };
        let from = current.state();
        let path_allowed = match via {
            Some(via) => from.can_become(via) && via.can_become(to),
            None => from.can_become(to),
        };
        let allowed = path_allowed
            && guard.from.is_none_or(|states| states.contains(&from))
            && guard.attempt.is_none_or(|a| a == current.attempt)
            && guard
                .dispatch_id
                .is_none_or(|d| current.dispatch_id.as_deref() == Some(d));
        if !allowed {
            return Ok(Moved::Refused(current));
        }
        let (next, events) = match via {
            Some(via) => {
                let middle = advance(&current, via, &change);
                let next = advance(&middle, to, |_| {});
                let events = [
                    Event::of(&current, &middle, None),
                    Event::of(&middle, &next, detail),
                ];
                (next, events.to_vec())
            }
            None => {
                let next = advance(&current, to, &change);
                let events = vec![Event::of(&current, &next, detail)];
                (next, events)
            }
        };
        // region: apply-write
        let ids = event_ids(&events);
        let fans = Dispatches::new(&app.buffer, &next.id, states_of(&ids, &events))?;
        let written = match db {
            Database::Postgres(pool) => {
                let change = Change {
                    row: &next,
                    version: current.version,
                    output,
                    events: &events,
                    ids: &ids,
                    fans: &fans,
                };
                write_at_once(pool, &change, relaxed).await?
            }
            Database::Sqlite(_) => {
                let mut tx = db.begin().await?;
                let written = update(&mut tx, &next, current.version, output).await?;
                if written {
                    insert_events(&mut tx, &next.id, &events, &ids).await?;
                    let fanned = fans.push(&app.buffer, &mut tx, &next).await?;
                    tx.commit().await?;
                    Some(fanned > 0)
                } else {
                    tx.rollback().await?;
                    None
                }
            }
        };
        let Some(fanned) = written else {
            continue;
        };
        after_commit(app, &next, from, detail, fanned).await;
        return Ok(Moved::Applied(next));
        // endregion: apply-write
    }
}

// region: after-commit
/// What follows every committed transition of `row` from `from` (to its current state): the
/// relays are woken when it dispatched a fan-out (`fanned`), its cached reads are dropped, its
/// metrics recorded and the transition logged.
pub async fn after_commit(
    app: &AppContext,
    row: &JobRow,
    from: State,
    detail: Option<&str>,
    fanned: bool,
) {
    // region: ch8-after-commit
    let to = row.state();
    if fanned {
        app.buffer.committed();
    }
    // region: after-commit-invalidate
    tokio::join!(
        invalidate(&app.cache, &row.id),
        crate::routes::events::publish(app, &row.id, to)
    );
    // endregion: after-commit-invalidate
    record_metrics(row, to);
    tracing::info!(
        job_id = row.id,
        client_id = row.client_id,
        action = "transition",
        prev_state = from.as_str(),
        next_state = to.as_str(),
        attempt = row.attempt,
        detail,
        "job transition"
    );
    // endregion: ch8-after-commit
}
// endregion: after-commit

/// The worker's start in one PostgreSQL statement, without reading the row first: job `id`,
/// if it is QUEUED, owned by `dispatch` and due, moves QUEUED → ASSIGNED (attempt + 1) →
/// RUNNING with both events, as [`apply`] would with `via: ASSIGNED` and `relaxed`. `None`
/// when it is not (or on SQLite): the caller then reads the row and decides with [`apply`].
///
/// # Errors
/// The database failed.
pub async fn start(app: &AppContext, id: &str, dispatch: &str) -> anyhow::Result<Option<JobRow>> {
    let Database::Postgres(pool) = &app.db else {
        return Ok(None);
    };
    let ids = [
        uuid::Uuid::new_v4().to_string(),
        uuid::Uuid::new_v4().to_string(),
    ];
    let fans = Dispatches::new(
        &app.buffer,
        id,
        [
            (ids[0].as_str(), State::Assigned),
            (ids[1].as_str(), State::Running),
        ],
    )?;
    static MOVE: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH moved AS (UPDATE jobs SET state = $6, attempt = attempt + 1, \
         cancel_requested = FALSE, version = version + 2, updated_at = $3, \
         started_at = COALESCE(started_at, $3) WHERE id = $1 AND state = $7 \
         AND dispatch_id = $2 AND (execution_at IS NULL OR execution_at <= $3) \
         AND set_config('synchronous_commit', 'off', true) = 'off' RETURNING {JOB_COLUMNS}), \
         logged AS (INSERT INTO job_events (event_id, job_id, event_name, prev_state, \
         next_state, attempt, detail, created_at) SELECT v.event_id, moved.id, v.event_name, \
         v.prev_state, v.next_state, moved.attempt, NULL, $3 FROM moved, \
         (VALUES (0, $4, $8, $7, $9), (1, $5, $10, $9, $6)) AS \
         v(ord, event_id, event_name, prev_state, next_state) ORDER BY v.ord)"
        )
    });
    let sql = format!(
        "{}{} SELECT {JOB_COLUMNS}, {} AS fanned FROM moved",
        *MOVE,
        fans.ctes("moved", 11),
        fans.count_sql()
    );
    let query = sqlx::query(&sql)
        .bind(id)
        .bind(dispatch)
        .bind(Timestamp::now())
        .bind(&ids[0])
        .bind(&ids[1])
        .bind(State::Running.as_str())
        .bind(State::Queued.as_str())
        .bind(State::Assigned.event_name())
        .bind(State::Assigned.as_str())
        .bind(State::Running.event_name());
    let Some(found) = fans.bind(query).fetch_optional(pool).await? else {
        return Ok(None);
    };
    let row = JobRow::from_row(&found)?;
    let fanned: i64 = found.try_get("fanned")?;
    after_commit(app, &row, State::Queued, None, fanned > 0).await;
    Ok(Some(row))
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
/// `current`'s, then the event and its fan-out dispatch. False (nothing written) when another
/// transition won. Commit with [`JobBuffer::commit`], then call [`after_commit`].
///
/// # Errors
/// The database failed.
pub async fn write(
    buffer: &JobBuffer,
    tx: &mut Tx,
    current: &JobRow,
    next: &JobRow,
    detail: Option<&str>,
) -> anyhow::Result<bool> {
    if !update(tx, next, current.version, None).await? {
        return Ok(false);
    }
    let events = [Event::of(current, next, detail)];
    let ids = event_ids(&events);
    insert_events(tx, &next.id, &events, &ids).await?;
    Dispatches::new(buffer, &next.id, states_of(&ids, &events))?
        .push(buffer, tx, next)
        .await?;
    Ok(true)
}

/// The compare-and-set of a transition: every mutable column (`$1`–`$13`), the output when
/// given (`$14`), for the row `$15` at version `$16`; `bind_update!` binds them.
const UPDATE_SET: &str = "state = $1, attempt = $2, max_attempts = $3, outcome = $4, \
    error = $5, retryable = $6, dispatch_id = $7, cancel_requested = $8, version = $9, \
    updated_at = $10, queued_at = $11, started_at = $12, finished_at = $13, \
    output = COALESCE($14, output) WHERE id = $15 AND version = $16";

/// Binds `UPDATE_SET`'s parameters, in order, to `$query` (on either engine).
macro_rules! bind_update {
    ($query:expr, $row:expr, $version:expr, $output:expr) => {
        $query
            .bind(&$row.state)
            .bind($row.attempt)
            .bind($row.max_attempts)
            .bind(&$row.outcome)
            .bind(&$row.error)
            .bind($row.retryable)
            .bind(&$row.dispatch_id)
            .bind($row.cancel_requested)
            .bind($row.version)
            .bind($row.updated_at)
            .bind($row.queued_at)
            .bind($row.started_at)
            .bind($row.finished_at)
            .bind($output)
            .bind(&$row.id)
            .bind($version)
    };
}

/// One transition as [`write_at_once`] writes it.
struct Change<'a> {
    /// The row after the transition.
    row: &'a JobRow,
    /// The version it must still have.
    version: i64,
    /// The output to store with it.
    output: Option<&'a str>,
    /// Its events and their ids.
    events: &'a [Event<'a>],
    ids: &'a [String],
    /// Their fan-out dispatches.
    fans: &'a Dispatches,
}

// region: transition-statement
/// The row update, its events and their fan-out as one PostgreSQL statement (one round trip,
/// its own transaction): the events are inserted only from the row the compare-and-set
/// updated, so all happen or none. `None` when another transition won, otherwise whether a
/// fan-out was dispatched. `relaxed` turns off `synchronous_commit` for this statement's
/// transaction.
async fn write_at_once(
    pool: &sqlx::PgPool,
    change: &Change<'_>,
    relaxed: bool,
) -> anyhow::Result<Option<bool>> {
    let relax = if relaxed {
        " AND set_config('synchronous_commit', 'off', true) = 'off'"
    } else {
        ""
    };
    let count = change.events.len();
    let sql = format!(
        "WITH moved AS (UPDATE jobs SET {UPDATE_SET}{relax} RETURNING {RETURNED}), \
         logged AS ({} RETURNING 1){} SELECT (SELECT COUNT(*) FROM logged), {}",
        events_from("moved", 17, count),
        change.fans.ctes("moved", 17 + count * 7),
        change.fans.count_sql(),
    );
    let query = bind_update!(sqlx::query(&sql), change.row, change.version, change.output);
    let query = change
        .fans
        .bind(bind_events(query, change.events, change.ids));
    let done = query.fetch_one(pool).await?;
    let (logged, fanned): (i64, i64) = (done.try_get(0)?, done.try_get(1)?);
    Ok((logged > 0).then_some(fanned > 0))
}
// endregion: transition-statement

/// `INSERT INTO job_events … SELECT … FROM {source}` for `count` events whose parameters are
/// numbered from `$first`, 7 each ([`bind_events`] binds them); the job's id is `{source}.id`,
/// so the events are written only when the statement's `source` step returned its row
/// (PostgreSQL).
fn events_from(source: &str, first: usize, count: usize) -> String {
    let values: Vec<String> = (0..count)
        .map(|i| format!("({i}, {})", params(first + i * 7, 7)))
        .collect();
    format!(
        "INSERT INTO job_events (event_id, job_id, event_name, prev_state, next_state, attempt, \
         detail, created_at) SELECT v.event_id, {source}.id, v.event_name, v.prev_state, \
         v.next_state, v.attempt, v.detail, v.created_at FROM {source}, (VALUES {}) AS \
         v(ord, event_id, event_name, prev_state, next_state, attempt, detail, created_at) \
         ORDER BY v.ord",
        values.join(", ")
    )
}

/// A new id for each of `events`.
fn event_ids(events: &[Event<'_>]) -> Vec<String> {
    events
        .iter()
        .map(|_| uuid::Uuid::new_v4().to_string())
        .collect()
}

/// Binds the parameters of [`events_from`], in order.
fn bind_events<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    events: &'q [Event<'q>],
    ids: &'q [String],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    for (event, event_id) in events.iter().zip(ids) {
        query = query
            .bind(event_id)
            .bind(event.next.event_name())
            .bind(event.prev.map(State::as_str))
            .bind(event.next.as_str())
            .bind(event.attempt)
            .bind(event.detail)
            .bind(event.at);
    }
    query
}

/// One step's event, as [`insert_events`] writes it.
#[derive(Debug, Clone, Copy)]
struct Event<'a> {
    prev: Option<State>,
    next: State,
    attempt: i64,
    detail: Option<&'a str>,
    at: Timestamp,
}

impl<'a> Event<'a> {
    fn of(before: &JobRow, after: &JobRow, detail: Option<&'a str>) -> Self {
        Self {
            prev: Some(before.state()),
            next: after.state(),
            attempt: after.attempt,
            detail,
            at: after.updated_at,
        }
    }
}

/// Appends `events` of job `job_id` inside `tx`, in order, with one statement.
async fn insert_events(
    tx: &mut Tx,
    job_id: &str,
    events: &[Event<'_>],
    ids: &[String],
) -> anyhow::Result<()> {
    let values: Vec<String> = (0..events.len())
        .map(|i| format!("({})", params(1 + i * 8, 8)))
        .collect();
    let sql = format!(
        "INSERT INTO job_events (event_id, job_id, event_name, prev_state, next_state, attempt, \
         detail, created_at) VALUES {}",
        values.join(", ")
    );
    on_tx!(tx, conn => {
        let mut query = sqlx::query(&sql);
        for (event, event_id) in events.iter().zip(ids) {
            query = query
                .bind(event_id)
                .bind(job_id)
                .bind(event.next.event_name())
                .bind(event.prev.map(State::as_str))
                .bind(event.next.as_str())
                .bind(event.attempt)
                .bind(event.detail)
                .bind(event.at);
        }
        query.execute(conn).await.map(drop)
    })?;
    Ok(())
}

/// Writes every mutable column of `row` (and `output` when given) if the stored version is
/// still `version`.
async fn update(
    tx: &mut Tx,
    row: &JobRow,
    version: i64,
    output: Option<&str>,
) -> anyhow::Result<bool> {
    let sql = format!("UPDATE jobs SET {UPDATE_SET}");
    let changed = on_tx!(tx, conn => bind_update!(sqlx::query(&sql), row, version, output)
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

// region: invalidate
/// Drops the cached reads of job `job_id`. A failure is logged: the entry then lives until its
/// TTL, which is why the TTL is short.
pub async fn invalidate(cache: &Cache, job_id: &str) {
    if let Err(e) = cache.invalidate_tag(&job_tag(job_id)).await {
        tracing::warn!(error = %e, job_id, "could not invalidate the cached job");
    }
}
// endregion: invalidate

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

/// Records the last attempt's error (and its output, when given) without a transition (the
/// `failed()` callback makes it).
///
/// # Errors
/// The database failed.
pub async fn set_error(
    db: &Database,
    id: &str,
    error: &str,
    retryable: bool,
    output: Option<&str>,
) -> anyhow::Result<()> {
    let sql = "UPDATE jobs SET error = $1, retryable = $2, output = COALESCE($3, output) \
               WHERE id = $4";
    on_db!(db, pool => sqlx::query(sql)
        .bind(error)
        .bind(retryable)
        .bind(output)
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
