//! [`Listener`]: one dedicated Redis pub/sub connection carrying any number of channels, kept
//! subscribed across reconnections and watched by a heartbeat. The tiered cache's invalidation
//! subscriber and the bus's Redis driver are both built on it.
//!
//! A background task owns the connection. It connects once some channel is wanted
//! ([`Listener::watch`]), `SUBSCRIBE`s the wanted channels, and from then on follows the wanted
//! set: a channel watched later is subscribed, one [`unwatch`](Listener::unwatch)ed is
//! unsubscribed, on the same connection. Callers learn that a channel is subscribed from
//! [`Listener::ready`], which returns once Redis has confirmed the `SUBSCRIBE`.
//!
//! A [`Handler`] hears what happens: [`subscribed`](Handler::subscribed) when a connection is
//! up and every wanted channel is subscribed on it, every [`message`](Handler::message),
//! [`heard`](Handler::heard) when a heartbeat came back, [`lost`](Handler::lost) when the
//! connection is gone. A connection can die without closing (a stalled network, a half-open
//! socket), so the task sends a `PING` on it every [`HEARTBEAT`]; a ping left unanswered for the
//! listener's timeout counts as a lost connection. After a loss the task reconnects with
//! exponential backoff (50 ms doubling to 2 s, with jitter) and resubscribes every wanted
//! channel.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{FutureExt, StreamExt};
use redis::aio::{PubSubSink, PubSubStream};
use redis::{Client, Msg, RedisResult, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::{Error, Result};

/// How often the task pings on its connection, to learn that it still hears.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// The first wait before a reconnection, doubled after each failure up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// What a [`Listener`]'s owner does with the connection's events. The calls come from the
/// listener's task, one at a time.
pub(crate) trait Handler: Send + Sync + 'static {
    /// A connection is up and every wanted channel is subscribed on it: every message published
    /// from `heard_at` on reaches [`Handler::message`]. Messages published while there was no
    /// connection are lost.
    fn subscribed(&self, heard_at: Instant);
    /// A message on one of the subscribed channels.
    fn message(&self, message: Msg) -> impl Future<Output = ()> + Send;
    /// A ping sent at `sent` came back: every message published before `sent` has been handed
    /// to [`Handler::message`].
    fn heard(&self, sent: Instant);
    /// The connection is gone (closed, failed, or silent past the timeout); messages are lost
    /// until the next [`Handler::subscribed`].
    fn lost(&self);
}

/// One supervised pub/sub connection. See the [module documentation](self). Dropping it stops
/// the task and closes the connection.
pub(crate) struct Listener {
    shared: Arc<Shared>,
    _task: AbortOnDrop,
}

struct Shared {
    /// Names the component in logs.
    label: &'static str,
    /// How long connecting, a `(UN)SUBSCRIBE` or a ping may take.
    timeout: Duration,
    /// The wanted channels, each with whether it is subscribed on the live connection. The task
    /// and [`Listener::ready`] wait on its changes.
    wanted: watch::Sender<HashMap<String, bool>>,
}

/// Aborts a task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Listener {
    /// Starts the task on `client` (give it a name of its own, for `CLIENT LIST`). It connects
    /// once a channel is watched. `timeout` bounds connecting, every `(UN)SUBSCRIBE`, and how
    /// long a heartbeat may go unanswered.
    pub(crate) fn start(
        client: Client,
        label: &'static str,
        timeout: Duration,
        handler: impl Handler,
    ) -> Self {
        let shared = Arc::new(Shared {
            label,
            timeout,
            wanted: watch::Sender::new(HashMap::new()),
        });
        let task = tokio::spawn(run(client, Arc::clone(&shared), handler));
        Self {
            shared,
            _task: AbortOnDrop(task),
        }
    }

    /// Wants `channel` (a no-op when it is wanted already); [`Listener::ready`] says when it is
    /// subscribed.
    pub(crate) fn watch(&self, channel: &str) {
        self.shared.wanted.send_if_modified(|wanted| {
            if wanted.contains_key(channel) {
                return false;
            }
            wanted.insert(channel.to_owned(), false);
            true
        });
    }

    /// No longer wants `channel`: it is unsubscribed soon after.
    pub(crate) fn unwatch(&self, channel: &str) {
        self.shared
            .wanted
            .send_if_modified(|wanted| wanted.remove(channel).is_some());
    }

    /// Returns once `channel` (watched) is subscribed on the live connection, confirmed by
    /// Redis: from then on, every message published on it reaches the [`Handler`] (or the
    /// connection is lost, and the handler hears that).
    ///
    /// # Errors
    /// [`Error::Timeout`] named `operation` when that takes longer than the listener's timeout
    /// (Redis is down or silent).
    pub(crate) async fn ready(&self, channel: &str, operation: &'static str) -> Result<()> {
        let mut wanted = self.shared.wanted.subscribe();
        let after = self.shared.timeout;
        let subscribed = async {
            loop {
                if wanted.borrow_and_update().get(channel) == Some(&true) {
                    return;
                }
                if wanted.changed().await.is_err() {
                    // The sender lives as long as `self`: unreachable, but never spin.
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::time::timeout(after, subscribed)
            .await
            .map_err(|_| Error::Timeout { operation, after })
    }
}

impl Shared {
    /// What to change on a connection subscribed to `live`: the wanted channels to subscribe
    /// and the unwanted ones to unsubscribe. Marks the wanted channels already in `live` as
    /// subscribed (waking their [`Listener::ready`]).
    fn plan(&self, live: &HashSet<String>) -> (Vec<String>, Vec<String>) {
        let mut add = Vec::new();
        let mut remove = Vec::new();
        self.wanted.send_if_modified(|wanted| {
            let mut confirmed = false;
            for (channel, subscribed) in wanted.iter_mut() {
                if !live.contains(channel) {
                    add.push(channel.clone());
                } else if !*subscribed {
                    *subscribed = true;
                    confirmed = true;
                }
            }
            remove.extend(live.iter().filter(|c| !wanted.contains_key(*c)).cloned());
            confirmed
        });
        (add, remove)
    }

    /// The connection is gone: no channel is subscribed.
    fn unsubscribed(&self) {
        self.wanted.send_if_modified(|wanted| {
            wanted
                .values_mut()
                .for_each(|subscribed| *subscribed = false);
            false
        });
    }
}

/// The task: (re)connects, subscribes, and listens until the connection is lost.
async fn run<H: Handler>(client: Client, shared: Arc<Shared>, handler: H) {
    let label = shared.label;
    let mut wants = shared.wanted.subscribe();
    let mut backoff = MIN_BACKOFF;
    loop {
        // Connect only once something is wanted (the sender lives in `shared`: never closed).
        if wants.wait_for(|wanted| !wanted.is_empty()).await.is_err() {
            return;
        }
        match tokio::time::timeout(shared.timeout, connect(&client, &shared)).await {
            Ok(Ok((sink, stream, live))) => {
                backoff = MIN_BACKOFF;
                handler.subscribed(Instant::now());
                tracing::debug!(
                    component = label,
                    channels = live.len(),
                    "pub/sub connection subscribed"
                );
                listen(&shared, &handler, sink, stream, live).await;
                shared.unsubscribed();
                handler.lost();
                tracing::warn!(
                    component = label,
                    "pub/sub connection lost; messages are missed until it is back"
                );
            }
            Ok(Err(e)) => {
                tracing::warn!(component = label, error = %e, "pub/sub connection: subscribe failed");
            }
            Err(_) => {
                tracing::warn!(component = label, "pub/sub connection: subscribe timed out");
            }
        }
        let jitter = Duration::from_millis(rand::random_range(0..=backoff.as_millis() as u64 / 2));
        tokio::time::sleep(backoff + jitter).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Opens a pub/sub connection and subscribes the wanted channels; returns them.
async fn connect(
    client: &Client,
    shared: &Shared,
) -> RedisResult<(PubSubSink, PubSubStream, HashSet<String>)> {
    let (mut sink, stream) = client.get_async_pubsub().await?.split();
    let channels: Vec<String> = shared.wanted.borrow().keys().cloned().collect();
    if !channels.is_empty() {
        sink.subscribe(channels.as_slice()).await?;
    }
    Ok((sink, stream, channels.into_iter().collect()))
}

type Pong = Pin<Box<dyn Future<Output = RedisResult<Value>> + Send>>;

/// A change of the subscribed channels in flight: what it subscribed and unsubscribed, or
/// `None` when the connection failed or timed out.
type Change = Pin<Box<dyn Future<Output = Option<(Vec<String>, Vec<String>)>> + Send>>;

/// `SUBSCRIBE add`, then `UNSUBSCRIBE remove`, bounded by `timeout`.
fn change(
    mut sink: PubSubSink,
    add: Vec<String>,
    remove: Vec<String>,
    timeout: Duration,
    label: &'static str,
) -> Change {
    Box::pin(async move {
        let commands = async {
            if !add.is_empty() {
                sink.subscribe(add.as_slice()).await?;
            }
            if !remove.is_empty() {
                sink.unsubscribe(remove.as_slice()).await?;
            }
            RedisResult::Ok(())
        };
        match tokio::time::timeout(timeout, commands).await {
            Ok(Ok(())) => Some((add, remove)),
            Ok(Err(e)) => {
                tracing::warn!(component = label, error = %e, "pub/sub connection: (un)subscribe failed");
                None
            }
            Err(_) => {
                tracing::warn!(
                    component = label,
                    "pub/sub connection: (un)subscribe timed out"
                );
                None
            }
        }
    })
}

/// Awaits `future` if there is one; otherwise never completes.
async fn maybe<F: Future + Unpin>(future: Option<&mut F>) -> F::Output {
    match future {
        Some(future) => future.await,
        None => std::future::pending().await,
    }
}

/// Handles the connection until it ends, a ping goes unanswered for the timeout, or a
/// `(UN)SUBSCRIBE` fails. Every [`HEARTBEAT`] it pings; when the pong comes back, every message
/// published before the ping has been handled, and the handler hears it. Meanwhile it keeps the
/// subscribed channels (`live`) in line with the wanted ones, one change at a time.
async fn listen<H: Handler>(
    shared: &Shared,
    handler: &H,
    sink: PubSubSink,
    mut stream: PubSubStream,
    mut live: HashSet<String>,
) {
    let mut wants = shared.wanted.subscribe();
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    heartbeat.tick().await;
    let mut pending: Option<(Instant, Pong)> = None;
    let mut changing: Option<Change> = None;
    let mut replan = true;
    loop {
        if replan && changing.is_none() {
            replan = false;
            // Changes made from here on wake the `changed` branch below.
            wants.mark_unchanged();
            let (add, remove) = shared.plan(&live);
            if !add.is_empty() || !remove.is_empty() {
                changing = Some(change(
                    sink.clone(),
                    add,
                    remove,
                    shared.timeout,
                    shared.label,
                ));
            }
        }
        tokio::select! {
            message = stream.next() => {
                let Some(message) = message else { return };
                handler.message(message).await;
            }
            done = maybe(changing.as_mut()) => {
                changing = None;
                let Some((added, removed)) = done else { return };
                live.extend(added);
                for channel in &removed {
                    live.remove(channel);
                }
                replan = true;
            }
            changed = wants.changed(), if changing.is_none() => {
                if changed.is_err() {
                    return;
                }
                replan = true;
            }
            pong = maybe(pending.as_mut().map(|(_, pong)| pong)) => {
                let Some((sent, _)) = pending.take() else { return };
                if pong.is_err() {
                    return;
                }
                // The messages published before the ping are queued ahead of its pong.
                loop {
                    match stream.next().now_or_never() {
                        Some(Some(message)) => handler.message(message).await,
                        Some(None) => return,
                        None => break,
                    }
                }
                handler.heard(sent);
            }
            _ = heartbeat.tick() => {
                match &pending {
                    Some((sent, _)) if sent.elapsed() >= shared.timeout => return,
                    Some(_) => {}
                    None => {
                        let mut sink = sink.clone();
                        let pong: Pong = Box::pin(async move { sink.ping::<Value>().await });
                        pending = Some((Instant::now(), pong));
                    }
                }
            }
        }
    }
}
