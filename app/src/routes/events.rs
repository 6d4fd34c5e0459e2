//! `GET /v1/jobs/{id}/events`: a job's events as a live stream (server-sent events).
//!
//! The stream sends the job's past events, then each new one as it happens, and closes after a
//! final one (SUCCEEDED, FAILED, CANCELED). Every event carries `id:` (the event id) and
//! `event:` (its type); a client that reconnects with `Last-Event-ID` gets the events after
//! that one: nothing twice, nothing missed. A comment (`: keep-alive`) every 15 s keeps idle
//! connections open through proxies.
//!
//! The events table is the source of truth; the [`Bus`](core_db::bus::Bus) only wakes the
//! stream: every committed transition publishes on the job's channel ([`publish`]), from
//! whichever process made it (a worker on another machine included), and the stream then reads
//! the events after the last one it sent. The stream subscribes before its first read, so an
//! event committed in between is read, not lost; one whose wake-up was lost (a process that
//! died between its commit and its publish, a bus reconnection) is read at the next keep-alive
//! at the latest.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State as AxumState};
use axum::http::HeaderMap;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use core_db::bus::{Message, Subscription};

use super::jobs::{EventView, owned};
use crate::AppContext;
use crate::auth::Caller;
use crate::jobs::{State, store};

/// How often an idle stream sends a comment (and re-reads the events).
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// How often a stream re-reads the events while the bus is unavailable.
pub const POLL: Duration = Duration::from_secs(1);

// region: publish
/// The bus channel of job `job_id`'s events.
pub fn channel(job_id: &str) -> String {
    format!("job-events:{job_id}")
}

/// Wakes the streams of job `job_id` after a committed transition into `state`. A failure is
/// logged: the streams then read the event at their next keep-alive.
// region: ch8-publish
pub async fn publish(ctx: &AppContext, job_id: &str, state: State) {
    if let Err(e) = ctx.bus.publish(&channel(job_id), state.as_str()).await {
        tracing::debug!(error = %e, job_id, "could not announce the job's event");
    }
}
// endregion: ch8-publish
// endregion: publish

/// `GET /v1/jobs/{id}/events`.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}/events",
    operation_id = "streamJobEvents",
    tag = "jobs",
    params(
        ("id" = uuid::Uuid, Path, description = "The job's id"),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event (the `id:` of the last event received)"),
    ),
    responses(
        (status = 200, description = "The job's events, then new ones as they happen, until a final one: `text/event-stream`, each event with `id:` (the event id), `event:` (its type) and `data:` (the event as JSON)",
            content_type = "text/event-stream", body = crate::openapi::JobEventStreamItem),
        crate::openapi::JobNotFound,
    ),
)]
// region: stream
pub async fn stream(
    AxumState(ctx): AxumState<AppContext>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, core_web::AppError> {
    let job = owned(&ctx, &caller, &id).await?;
    // Subscribe before the first read, so that no event falls between the two.
    let wake = Wake::subscribe(&ctx, &job.id).await;
    // region: last-event-id
    let after = match headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
    {
        Some(last) if !last.is_empty() => store::event(&ctx.db, last)
            .await?
            .filter(|e| e.job_id == job.id)
            .map_or(0, |e| e.seq),
        _ => 0,
    };
    // endregion: last-event-id
    let state = Follow {
        final_at_open: job.state().is_final(),
        ctx,
        job_id: job.id,
        after,
        wake,
        pending: Vec::new(),
        done: false,
    };
    let events = futures_util::stream::unfold(state, Follow::next);
    Ok(Sse::new(events).into_response())
}
// endregion: stream

/// A stream in progress.
struct Follow {
    ctx: AppContext,
    job_id: String,
    /// The `seq` of the last event sent.
    after: i64,
    wake: Wake,
    /// Read, not yet sent (oldest last).
    pending: Vec<Event>,
    /// The final event has been read: close once `pending` is sent.
    done: bool,
    /// The job was final when the stream opened: close once nothing more is left to read
    /// (a client resuming after the final event).
    final_at_open: bool,
}

impl Follow {
    /// The next thing to send: a pending event, else (unless done) whatever the next wake-up
    /// or keep-alive brings.
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        loop {
            if let Some(event) = self.pending.pop() {
                return Some((Ok(event), self));
            }
            if self.done {
                return None;
            }
            match self.read().await {
                Ok(true) => continue,
                Ok(false) if self.final_at_open => return None,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), job_id = self.job_id, "reading the job's events failed");
                }
            }
            if self.wake.wait(KEEP_ALIVE, POLL).await {
                return Some((Ok(Event::default().comment("keep-alive")), self));
            }
        }
    }

    // region: read
    /// Reads the events after the last one sent into `pending`; true when there were any.
    async fn read(&mut self) -> anyhow::Result<bool> {
        let events = store::events_after(&self.ctx.db, &self.job_id, self.after).await?;
        if events.is_empty() {
            return Ok(false);
        }
        self.done = events
            .last()
            .and_then(|e| State::parse(&e.next_state))
            .is_some_and(State::is_final);
        for row in events.into_iter().rev() {
            self.after = self.after.max(row.seq);
            let kind = row.event_name.clone();
            let id = row.event_id.clone();
            let data = serde_json::to_string(&EventView::from(row))?;
            self.pending
                .push(Event::default().id(id).event(kind).data(data));
        }
        Ok(true)
    }
    // endregion: read
}

// region: wait
/// What wakes a reader that follows one job: a message on the job's bus channel, or a timer.
pub struct Wake {
    subscription: Option<Subscription>,
}

impl Wake {
    /// Subscribes to job `job_id`'s channel. Subscribe before the first read, so that no event
    /// falls between the two; with the bus unavailable, the reader polls.
    pub async fn subscribe(ctx: &AppContext, job_id: &str) -> Self {
        let subscription = match ctx.bus.subscribe(&channel(job_id)).await {
            Ok(subscription) => Some(subscription),
            Err(e) => {
                tracing::warn!(error = %e, job_id, "event bus unavailable: the stream polls");
                None
            }
        };
        Self { subscription }
    }

    /// Waits for a wake-up: false when one came (a message, or a `Gap` after a reconnection
    /// that may have dropped some), true when `idle` passed without one. Without a
    /// subscription it sleeps `poll` and answers false.
    pub async fn wait(&mut self, idle: Duration, poll: Duration) -> bool {
        let Some(subscription) = self.subscription.as_mut() else {
            tokio::time::sleep(poll).await;
            return false;
        };
        match tokio::time::timeout(idle, subscription.recv()).await {
            Ok(Some(Message::Payload(_) | Message::Gap)) => false,
            Ok(None) => {
                self.subscription = None;
                false
            }
            Err(_) => true,
        }
    }
}
// endregion: wait
