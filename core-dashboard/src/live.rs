//! `GET api/events`: the queues' counts, the running and recent jobs, and the throughput as
//! server-sent events, for the page's live view.
//!
//! Each connected client gets a `queues` event at once and then every
//! [`live_interval`](crate::DashboardBuilder::live_interval) (one second by default), its data
//! the JSON `GET api/queues` answers (`{"data": {"queues", "totals", "failed_all_queues"}}`).
//! When the counts cannot be read, that tick sends an `error` event instead, its data the
//! framework's JSON error body (`{"message", "error_code", …}`), and the stream goes on: the
//! next tick tries again. Comments keep the connection alive through proxies when ticks are
//! far apart. The counts are read only while a client is connected: the stream, and its timer,
//! end when the client goes.
//!
//! It carries `jobs` events on the same ticks: at once and then every interval, the running
//! and the recent jobs of the shown queues, `{"data": {"queues", "running", "recent"}}` with
//! each list holding up to 50 jobs per queue, in the rows of `GET api/jobs/running` and
//! `GET api/jobs/recent` (see [`crate::jobs`]). When the running jobs cannot be read, that tick
//! sends an `error` event instead.
//!
//! The same stream carries `throughput` events: at once the JSON of `GET api/throughput`
//! (`"replace": true`, every point kept), then one event per sample with `"replace": false` and
//! the new point in `points`. A client that falls behind by more than 64 points gets all of
//! them again (`"replace": true`).
//!
//! ```text
//! event: queues
//! data: {"data":{"queues":[{"queue":"default","ready":2,…}],"totals":{…},"failed_all_queues":0}}
//! ```

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderName, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use core_web::{ApiResponse, AppError};
use futures_util::stream::{self, Stream, StreamExt};
use serde::Serialize;
use tokio::sync::broadcast;
use tokio::time::{Interval, MissedTickBehavior};

use crate::api;
use crate::dashboard::Inner;
use crate::throughput::ThroughputReply;

/// The handler of `GET api/events`.
pub(crate) async fn events(State(inner): State<Arc<Inner>>) -> Response {
    respond(stream::select(
        stream::select(counts(inner.clone()), jobs(inner.clone())),
        throughput(&inner),
    ))
}

/// `events` as a `text/event-stream` response, with keep-alive comments for idle proxies and
/// `X-Accel-Buffering: no` telling buffering reverse proxies to pass each event on at once.
pub(crate) fn respond<S>(events: S) -> Response
where
    S: Stream<Item = Result<Event, Infallible>> + Send + 'static,
{
    (
        [(
            HeaderName::from_static("x-accel-buffering"),
            HeaderValue::from_static("no"),
        )],
        Sse::new(events).keep_alive(KeepAlive::default()),
    )
        .into_response()
}

/// Event `name` with `value` in core-web's envelope, or an `error` event with the framework's
/// JSON error body when there is an error instead (the stream goes on). Serializing these plain
/// structs cannot fail; should it, the event says so rather than ending the stream.
pub(crate) fn event<T: Serialize>(name: &'static str, value: Result<T, AppError>) -> Event {
    let event = match value {
        Ok(value) => Event::default()
            .event(name)
            .json_data(ApiResponse::success(value, "")),
        Err(err) => Event::default().event("error").json_data(err.body()),
    };
    event.unwrap_or_else(|_| {
        Event::default()
            .event("error")
            .data(r#"{"message":"The event could not be encoded","error_code":"INTERNAL_ERROR"}"#)
    })
}

/// The `throughput` events: every point kept at once (`"replace": true`), then each new point
/// as the sampler closes it (`"replace": false`). A client too slow to take them gets every
/// point again.
fn throughput(inner: &Arc<Inner>) -> impl Stream<Item = Result<Event, Infallible>> + use<> {
    let sampler = inner.throughput.clone();
    let (history, updates) = sampler.subscribe();
    let first = throughput_event(&history);
    let rest = stream::unfold((sampler, updates), |(sampler, mut updates)| async move {
        let reply = match updates.recv().await {
            Ok(point) => sampler.update(point),
            Err(broadcast::error::RecvError::Lagged(_)) => sampler.reply(),
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((throughput_event(&reply), (sampler, updates)))
    });
    stream::once(async move { first }).chain(rest)
}

fn throughput_event(reply: &ThroughputReply) -> Result<Event, Infallible> {
    Ok(event("throughput", Ok(reply)))
}

/// The `queues` events: one per tick, the first at once.
fn counts(inner: Arc<Inner>) -> impl Stream<Item = Result<Event, Infallible>> {
    ticking(inner, |inner| async move {
        let counts = api::queue_counts(&inner).await;
        if let Err(err) = &counts {
            tracing::warn!(error = %err, "jobs dashboard: the live counts could not be read");
        }
        event("queues", counts)
    })
}

/// The `jobs` events: the running and recent jobs of the shown queues, one per tick, the first
/// at once.
fn jobs(inner: Arc<Inner>) -> impl Stream<Item = Result<Event, Infallible>> {
    ticking(inner, |inner| async move {
        let jobs = crate::jobs::jobs_reply(&inner).await;
        if let Err(err) = &jobs {
            tracing::warn!(error = %err, "jobs dashboard: the running jobs could not be read");
        }
        event("jobs", jobs)
    })
}

/// One event per [`live_interval`](crate::DashboardBuilder::live_interval), the first at once,
/// each made by `make`.
fn ticking<F, Fut>(inner: Arc<Inner>, make: F) -> impl Stream<Item = Result<Event, Infallible>>
where
    F: Fn(Arc<Inner>) -> Fut + Send + 'static,
    Fut: Future<Output = Event> + Send,
{
    let mut ticker = tokio::time::interval(inner.live_interval);
    // A slow read delays the next event rather than sending a burst after it.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    stream::unfold(
        (inner, ticker, make),
        |(inner, mut ticker, make): (Arc<Inner>, Interval, F)| async move {
            ticker.tick().await;
            let event = make(inner.clone()).await;
            Some((Ok(event), (inner, ticker, make)))
        },
    )
}
