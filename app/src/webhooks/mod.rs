//! Webhooks: where a job's events go out to the client's endpoints.
//!
//! Every transition writes its events and, for each event some webhook wants, one
//! [`Fanout`] dispatch, in the transition's own statement or transaction ([`Dispatches`]): an
//! event is never lost, and never announced for a transition that rolled back. The fan-out job
//! writes one message per subscribed webhook (the event's body, fixed once so every retry sends
//! the same bytes) and dispatches one [`Deliver`] job for each; a delivery signs the body the
//! Standard Webhooks way and posts it, retrying with backoff until a 2xx, a 410 (which
//! disables the webhook) or the last attempt (whose `failed()` records the message as failed).
//! Every attempt is a row of `webhook_deliveries`, listed by `GET /v1/webhooks/{id}/deliveries`.
//!
//! A job's `callback` is a webhook of that job alone ([`insert_callback`]), subscribed to all
//! its events.

use core_db::db::Timestamp;
use core_db::{Database, Tx, on_db, on_tx};
use serde::{Deserialize, Serialize};

pub mod deliver;
pub mod fanout;

pub use deliver::Deliver;
pub use fanout::{Dispatches, Fanout};

use crate::jobs::State;

// region: webhooks-queue
/// The queue deliveries run on, apart from the jobs' queue, so that slow receivers never hold
/// up jobs (the worker process runs it with `WEBHOOK_CONCURRENCY` slots of its own).
pub const QUEUE: &str = "webhooks";

/// The worker of the webhooks' queue ([`QUEUE`]): fan-outs and deliveries, each given
/// [`AppContext::job_context`](crate::AppContext::job_context), `WEBHOOK_CONCURRENCY` at once,
/// apart from the jobs' worker so that slow receivers never hold up jobs.
pub fn worker(ctx: &crate::AppContext) -> core_jobs::Worker {
    let settings = &ctx.settings;
    let config = core_jobs::WorkerConfig {
        concurrency: usize::try_from(settings.forgerun.webhook_concurrency).unwrap_or(64),
        ..settings.worker.clone()
    };
    core_jobs::Worker::new(ctx.queue.clone(), ctx.job_context())
        .register::<Fanout>()
        .register::<Deliver>()
        .config(&config)
        .grace(settings.base.http.shutdown_grace)
}
// endregion: webhooks-queue

/// Every event type, as webhooks subscribe to them.
pub fn event_types() -> impl Iterator<Item = &'static str> {
    State::ALL.into_iter().map(State::event_name)
}

/// A webhook as stored (the secret included: never serialize this to a client).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct WebhookRow {
    /// Its id (UUID).
    pub id: String,
    /// The client it belongs to.
    pub client_id: String,
    /// The job of a callback; `None` for a client's webhook.
    pub job_id: Option<String>,
    /// Where deliveries go.
    pub url: String,
    /// `*` or the event types between commas (`,job.created,job.failed,`).
    pub events: String,
    /// The signing secret, `whsec_…`.
    pub secret: String,
    /// Registered.
    pub created_at: Timestamp,
    /// When it was disabled (a receiver answered 410), if it was.
    pub disabled_at: Option<Timestamp>,
    /// Why.
    pub disabled_reason: Option<String>,
}

impl WebhookRow {
    /// The subscribed event types, `["*"]` for all.
    pub fn event_list(&self) -> Vec<String> {
        if self.events == "*" {
            return vec!["*".to_owned()];
        }
        self.events
            .split(',')
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// The stored form of a subscription: `*` when it names `*` (or every type), otherwise the
/// types between commas in the catalog's order, each once. `None` when a name is not an event
/// type or the list is empty.
pub fn events_column(events: &[String]) -> Option<String> {
    if events.is_empty() {
        return None;
    }
    if events.iter().any(|e| e == "*") {
        return Some("*".to_owned());
    }
    if events.iter().any(|e| !event_types().any(|t| t == e)) {
        return None;
    }
    let chosen: Vec<&str> = event_types()
        .filter(|t| events.iter().any(|e| e == t))
        .collect();
    if chosen.len() == State::ALL.len() {
        return Some("*".to_owned());
    }
    Some(format!(",{},", chosen.join(",")))
}

// region: subscribed-sql
/// The SQL condition "a webhook of the client of `{job}` (an alias with `client_id` and
/// `callback` columns) wants event type `{event}` (a parameter or a literal)": the job has a
/// callback, or one of the client's enabled webhooks subscribes to the type. Portable between
/// PostgreSQL and SQLite.
pub fn subscribed_sql(job: &str, event: &str) -> String {
    format!(
        "({job}.callback IS NOT NULL OR EXISTS (SELECT 1 FROM webhooks w \
         WHERE w.client_id = {job}.client_id AND w.job_id IS NULL AND w.disabled_at IS NULL \
         AND {}))",
        wants_sql("w", event)
    )
}
// endregion: subscribed-sql

/// The SQL condition "webhook `{webhook}` (an alias) subscribes to event type `{event}`".
fn wants_sql(webhook: &str, event: &str) -> String {
    format!("({webhook}.events = '*' OR {webhook}.events LIKE '%,' || {event} || ',%')")
}

const COLUMNS: &str =
    "id, client_id, job_id, url, events, secret, created_at, disabled_at, disabled_reason";

/// Binds a webhook row's columns, in the order of `COLUMNS` (on either engine).
macro_rules! bind_webhook {
    ($query:expr, $row:expr) => {
        $query
            .bind(&$row.id)
            .bind(&$row.client_id)
            .bind(&$row.job_id)
            .bind(&$row.url)
            .bind(&$row.events)
            .bind(&$row.secret)
            .bind($row.created_at)
            .bind($row.disabled_at)
            .bind(&$row.disabled_reason)
    };
}
/// Registers a webhook.
///
/// # Errors
/// The database failed.
pub async fn insert(db: &Database, row: &WebhookRow) -> anyhow::Result<()> {
    let sql = insert_sql();
    on_db!(db, pool => bind_webhook!(sqlx::query(&sql), row).execute(pool).await.map(drop))?;
    Ok(())
}

/// Registers job `row.job_id`'s callback inside `tx` (the submitting transaction).
///
/// # Errors
/// The database failed.
pub async fn insert_callback(tx: &mut Tx, row: &WebhookRow) -> anyhow::Result<()> {
    let sql = insert_sql();
    on_tx!(tx, conn => bind_webhook!(sqlx::query(&sql), row).execute(conn).await.map(drop))?;
    Ok(())
}

fn insert_sql() -> String {
    format!("INSERT INTO webhooks ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
}

/// Webhook `id`, when it exists and belongs to `client_id`.
///
/// # Errors
/// The database failed.
pub async fn find_for_client(
    db: &Database,
    client_id: &str,
    id: &str,
) -> anyhow::Result<Option<WebhookRow>> {
    let row = find(db, id).await?;
    Ok(row.filter(|r| r.client_id == client_id))
}

/// Webhook `id`.
///
/// # Errors
/// The database failed.
pub async fn find(db: &Database, id: &str) -> anyhow::Result<Option<WebhookRow>> {
    let sql = format!("SELECT {COLUMNS} FROM webhooks WHERE id = $1");
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, WebhookRow>(&sql).bind(id).fetch_optional(pool).await)?,
    )
}

/// The client's webhooks (callbacks excluded), oldest first.
///
/// # Errors
/// The database failed.
pub async fn list(db: &Database, client_id: &str) -> anyhow::Result<Vec<WebhookRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM webhooks WHERE client_id = $1 AND job_id IS NULL \
         ORDER BY created_at, id"
    );
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, WebhookRow>(&sql).bind(client_id).fetch_all(pool).await)?,
    )
}

/// Deletes webhook `id` of `client_id` with its messages and delivery log; false when there
/// is none. Deliveries still queued find it gone and stop.
///
/// # Errors
/// The database failed.
pub async fn delete(db: &Database, client_id: &str, id: &str) -> anyhow::Result<bool> {
    let sql = "DELETE FROM webhooks WHERE id = $1 AND client_id = $2";
    let n = on_db!(db, pool => sqlx::query(sql).bind(id).bind(client_id).execute(pool).await.map(|d| d.rows_affected()))?;
    Ok(n == 1)
}

/// Disables webhook `id` (a receiver answered 410 Gone): nothing more is sent to it.
///
/// # Errors
/// The database failed.
pub async fn disable(db: &Database, id: &str, reason: &str) -> anyhow::Result<()> {
    let sql = "UPDATE webhooks SET disabled_at = $1, disabled_reason = $2 \
               WHERE id = $3 AND disabled_at IS NULL";
    on_db!(db, pool => sqlx::query(sql).bind(Timestamp::now()).bind(reason).bind(id).execute(pool).await.map(drop))?;
    Ok(())
}

/// One delivery attempt, as `GET /v1/webhooks/{id}/deliveries` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct DeliveryRow {
    /// The attempt's id.
    pub id: String,
    /// The webhook.
    pub webhook_id: String,
    /// The event (the `webhook-id` header the receiver saw).
    pub event_id: String,
    /// Its type.
    pub event_type: String,
    /// 1 for the first attempt of the message.
    pub attempt: i64,
    /// `delivered`, `retrying`, `failed`, `gone` or `refused`.
    pub outcome: String,
    /// The receiver's HTTP status, when it answered.
    pub status_code: Option<i64>,
    /// How long the attempt took.
    pub duration_ms: i64,
    /// What went wrong.
    pub error: Option<String>,
    /// When the next attempt is due, for `retrying`.
    pub next_retry_at: Option<Timestamp>,
    /// When the attempt was made.
    pub created_at: Timestamp,
}

/// Every delivery attempt of job `job_id`'s events, to every webhook, oldest first.
///
/// # Errors
/// The database failed.
pub async fn deliveries_of_job(db: &Database, job_id: &str) -> anyhow::Result<Vec<DeliveryRow>> {
    let sql = "SELECT d.id, d.webhook_id, d.event_id, d.event_type, d.attempt, d.outcome, \
               d.status_code, d.duration_ms, d.error, d.next_retry_at, d.created_at \
               FROM webhook_deliveries d JOIN webhook_messages m \
               ON m.webhook_id = d.webhook_id AND m.event_id = d.event_id \
               WHERE m.job_id = $1 ORDER BY d.created_at, d.id";
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, DeliveryRow>(sql).bind(job_id).fetch_all(pool).await)?,
    )
}

/// Sets a message's status (and its attempt count, when given): `$1` status, `$2` attempts or
/// `NULL` to keep them, `$3` now, `$4` webhook, `$5` event.
const SET_STATUS: &str = "UPDATE webhook_messages SET status = $1, \
    attempts = COALESCE($2, attempts), updated_at = $3 WHERE webhook_id = $4 AND event_id = $5";

/// Binds [`SET_STATUS`]'s parameters (on either engine).
macro_rules! bind_status {
    ($webhook_id:expr, $event_id:expr, $status:expr, $attempts:expr) => {
        sqlx::query(SET_STATUS)
            .bind($status)
            .bind($attempts)
            .bind(Timestamp::now())
            .bind($webhook_id)
            .bind($event_id)
    };
}

/// Records one attempt and the message's new status, in one transaction.
///
/// # Errors
/// The database failed.
pub async fn record_attempt(
    db: &Database,
    row: &DeliveryRow,
    message_status: &str,
) -> anyhow::Result<()> {
    let mut tx = db.begin().await?;
    let sql = "INSERT INTO webhook_deliveries (id, webhook_id, event_id, event_type, attempt, \
               outcome, status_code, duration_ms, error, next_retry_at, created_at) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
    on_tx!(&mut tx, conn => sqlx::query(sql)
        .bind(&row.id)
        .bind(&row.webhook_id)
        .bind(&row.event_id)
        .bind(&row.event_type)
        .bind(row.attempt)
        .bind(&row.outcome)
        .bind(row.status_code)
        .bind(row.duration_ms)
        .bind(&row.error)
        .bind(row.next_retry_at)
        .bind(row.created_at)
        .execute(conn)
        .await
        .map(drop))?;
    on_tx!(&mut tx, conn => bind_status!(&row.webhook_id, &row.event_id, message_status, Some(row.attempt))
        .execute(conn)
        .await
        .map(drop))?;
    tx.commit().await?;
    Ok(())
}

/// Sets the status of the message of event `event_id` to webhook `webhook_id` (`failed` from
/// the delivery job's `failed()`, `disabled` when its webhook was).
///
/// # Errors
/// The database failed.
pub async fn set_status(
    db: &Database,
    webhook_id: &str,
    event_id: &str,
    status: &str,
) -> anyhow::Result<()> {
    on_db!(db, pool => bind_status!(webhook_id, event_id, status, None::<i64>)
        .execute(pool)
        .await
        .map(drop))?;
    Ok(())
}

/// One event on its way to one webhook.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct MessageRow {
    /// The event's type.
    pub event_type: String,
    /// The body every attempt sends.
    pub body: String,
    /// `pending`, `delivered`, `failed` or `disabled`.
    pub status: String,
    /// Attempts made.
    pub attempts: i64,
}

/// The message of event `event_id` to webhook `webhook_id`.
///
/// # Errors
/// The database failed.
pub async fn message(
    db: &Database,
    webhook_id: &str,
    event_id: &str,
) -> anyhow::Result<Option<MessageRow>> {
    let sql = "SELECT event_type, body, status, attempts FROM webhook_messages \
               WHERE webhook_id = $1 AND event_id = $2";
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, MessageRow>(sql).bind(webhook_id).bind(event_id).fetch_optional(pool).await)?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn subscriptions_are_stored_in_one_form() {
        assert_eq!(events_column(&list(&["*"])).as_deref(), Some("*"));
        assert_eq!(
            events_column(&list(&["job.failed", "job.created", "job.failed"])).as_deref(),
            Some(",job.created,job.failed,")
        );
        let all: Vec<String> = event_types().map(str::to_owned).collect();
        assert_eq!(events_column(&all).as_deref(), Some("*"));
        assert_eq!(events_column(&list(&["job.exploded"])), None);
        assert_eq!(events_column(&list(&["job.%"])), None);
        assert_eq!(events_column(&[]), None);
    }
}
