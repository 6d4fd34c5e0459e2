//! The fan-out: one [`Fanout`] job per event that some webhook wants, dispatched by the
//! transition that wrote the event ([`Dispatches`]), and turned by the job into one message and
//! one [`Deliver`] job per subscribed webhook.

use core_db::db::Timestamp;
use core_db::{Tx, on_db, on_tx};
use core_jobs::{Job, JobBuffer, JobContext, OutboxInsert};
use serde::{Deserialize, Serialize};

use super::{Deliver, QUEUE, WebhookRow, subscribed_sql};
use crate::AppContext;
use crate::jobs::{State, store};
use crate::routes::jobs::JobView;

// region: fanout-job
/// Fans event `event_id` of job `job_id` out to the webhooks that want it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fanout {
    /// The job.
    pub job_id: String,
    /// The event.
    pub event_id: String,
}

/// The body every delivery of an event sends (Standard Webhooks' payload shape).
#[derive(Debug, Serialize)]
pub struct Payload<'a> {
    /// The event type, `job.succeeded`, ….
    #[serde(rename = "type")]
    pub kind: &'a str,
    /// When the event happened (RFC 3339).
    pub timestamp: Timestamp,
    /// The job as the fan-out read it, the instant after the event.
    pub data: JobView,
}

#[core_jobs::async_trait]
impl Job for Fanout {
    const NAME: &'static str = "forgerun.fanout";
    const QUEUE: &'static str = QUEUE;

    async fn handle(&self, ctx: &JobContext) -> anyhow::Result<()> {
        let app = AppContext::of(ctx)?;
        fan_out(app, &self.job_id, &self.event_id).await
    }

    fn max_retries(&self) -> u32 {
        10
    }
}
// endregion: fanout-job

// region: fan-out
/// Writes one message per webhook that wants the event (none twice, however often this runs)
/// and dispatches its delivery, in one transaction.
async fn fan_out(app: &AppContext, job_id: &str, event_id: &str) -> anyhow::Result<()> {
    let db = &app.db;
    let Some(event) = store::event(db, event_id).await? else {
        return Ok(());
    };
    let Some(job) = store::find(db, job_id).await? else {
        return Ok(());
    };
    let hooks = subscribers(app, &job, &event.event_name).await?;
    if hooks.is_empty() {
        return Ok(());
    }
    let body = serde_json::to_string(&Payload {
        kind: &event.event_name,
        timestamp: event.created_at,
        data: JobView::from(job),
    })?;
    let now = Timestamp::now();
    let mut tx = db.begin().await?;
    let sql = "INSERT INTO webhook_messages (webhook_id, event_id, event_type, job_id, body, \
               status, attempts, created_at, updated_at) \
               VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6) ON CONFLICT DO NOTHING";
    let settings = &app.settings.forgerun;
    for hook in &hooks {
        let new = on_tx!(&mut tx, conn => sqlx::query(sql)
            .bind(&hook.id)
            .bind(event_id)
            .bind(&event.event_name)
            .bind(job_id)
            .bind(&body)
            .bind(now)
            .execute(conn)
            .await
            .map(|done| done.rows_affected() == 1))?;
        if new {
            let deliver = Deliver::new(&hook.id, event_id, settings);
            app.buffer.push(&mut tx, &deliver).await?;
        }
    }
    app.buffer.commit(tx).await?;
    Ok(())
}
// endregion: fan-out

/// The enabled webhooks that want event type `event` of `job`: the client's that subscribe to
/// it, and the job's callback.
async fn subscribers(
    app: &AppContext,
    job: &store::JobRow,
    event: &str,
) -> anyhow::Result<Vec<WebhookRow>> {
    let sql = format!(
        "SELECT {} FROM webhooks w WHERE disabled_at IS NULL AND ((client_id = $1 AND job_id IS NULL \
         AND {}) OR job_id = $3) ORDER BY created_at, id",
        super::COLUMNS,
        super::wants_sql("w", "$2")
    );
    Ok(
        on_db!(&app.db, pool => sqlx::query_as::<_, WebhookRow>(&sql)
        .bind(&job.client_id)
        .bind(event)
        .bind(&job.id)
        .fetch_all(pool)
        .await)?,
    )
}

/// The fan-out dispatches of one transition's events, for the transition to write with its
/// events: in its own PostgreSQL statement (a data-modifying CTE per event, [`ctes`]) or in
/// its transaction ([`push`]). Each is written only when some webhook wants the event, a
/// condition the database decides as it writes ([`subscribed_sql`]).
///
/// [`ctes`]: Dispatches::ctes
/// [`push`]: Dispatches::push
pub struct Dispatches {
    events: Vec<(Fanout, &'static str, OutboxInsert)>,
}

impl Dispatches {
    /// Parameters each event takes in [`ctes`](Self::ctes).
    pub const PARAMS: usize = 7;

    /// The dispatches of `events` (`(event id, state reached)`) of job `job_id`.
    ///
    /// # Errors
    /// A job that does not serialize (never, for [`Fanout`]).
    pub fn new<'a>(
        buffer: &JobBuffer,
        job_id: &str,
        events: impl IntoIterator<Item = (&'a str, State)>,
    ) -> anyhow::Result<Self> {
        let events = events
            .into_iter()
            .map(|(event_id, state)| {
                let job = Fanout {
                    job_id: job_id.to_owned(),
                    event_id: event_id.to_owned(),
                };
                let row = buffer.outbox_row(&job, None)?;
                Ok((job, state.event_name(), row))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { events })
    }

    // region: dispatches-ctes
    /// `, fan0 AS (…), fan1 AS (…)`: for each event, `INSERT INTO job_outbox … SELECT … FROM
    /// {source} WHERE` a webhook wants it, with parameters numbered from `$first`
    /// ([`PARAMS`](Self::PARAMS) each, bound by [`bind`](Self::bind)). `source` is a step of
    /// the statement that returns the job's `client_id` and `callback`, one row at most.
    pub fn ctes(&self, source: &str, first: usize) -> String {
        self.events
            .iter()
            .enumerate()
            .map(|(i, (_, _, row))| {
                let base = first + i * Self::PARAMS;
                let from = format!(
                    "{source} WHERE {}",
                    subscribed_sql(source, &format!("${}", base + 6))
                );
                format!(
                    ", fan{i} AS ({} RETURNING 1)",
                    row.insert_sql_from(base, &from)
                )
            })
            .collect()
    }
    // endregion: dispatches-ctes

    /// An SQL expression counting the dispatches [`ctes`](Self::ctes) wrote.
    pub fn count_sql(&self) -> String {
        if self.events.is_empty() {
            return "0".to_owned();
        }
        let counts: Vec<String> = (0..self.events.len())
            .map(|i| format!("(SELECT COUNT(*) FROM fan{i})"))
            .collect();
        counts.join(" + ")
    }

    /// Binds the parameters of [`ctes`](Self::ctes), in order.
    pub fn bind<'q>(
        &'q self,
        mut query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        for (_, kind, row) in &self.events {
            query = row.bind(query).bind(*kind);
        }
        query
    }

    // region: dispatches-push
    /// Writes the dispatches of the events some webhook wants inside `tx`, for `job`; how
    /// many. The caller commits with [`JobBuffer::commit`].
    ///
    /// # Errors
    /// The database failed.
    pub async fn push(
        &self,
        buffer: &JobBuffer,
        tx: &mut Tx,
        job: &store::JobRow,
    ) -> anyhow::Result<usize> {
        let mut pushed = 0;
        let sql = format!(
            "SELECT {} AS wanted FROM jobs j WHERE j.id = $2",
            subscribed_sql("j", "$1")
        );
        for (fanout, kind, _) in &self.events {
            let wanted: Option<bool> = on_tx!(tx, conn => sqlx::query_scalar(&sql)
                .bind(*kind)
                .bind(&job.id)
                .fetch_optional(conn)
                .await)?;
            if wanted == Some(true) {
                buffer.push(tx, fanout).await?;
                pushed += 1;
            }
        }
        Ok(pushed)
    }
    // endregion: dispatches-push
}
