//! The tiered driver's subscriber: the invalidation messages on `{prefix}:cache-invalidate`, and
//! the task that applies other processes' messages to this L1 and pings to keep it trusted.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::redis::Value;
use futures_util::{FutureExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use super::coherence::Coherence;
use crate::infra::cache::memory::MemoryStore;
use crate::infra::cache::store::Store;

/// How often the subscriber pings on its subscription, to learn that it still hears.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(1);

/// One invalidation message on the channel. The Redis driver's scripts publish it (built by
/// [`invalidation_message`], or by `INVALIDATE_TAGS` itself with `cjson`).
#[derive(Debug, Serialize, Deserialize)]
struct Invalidation {
    /// The instance that published it; it ignores its own messages.
    o: String,
    /// Keys to evict.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    k: Vec<String>,
    /// A prefix to evict (`flush_prefix`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    p: Option<String>,
}

/// The message announcing that `keys` (or every key starting with `prefix`) changed, published
/// by the instance `origin`.
pub(crate) fn invalidation_message(origin: &str, keys: &[&str], prefix: Option<&str>) -> String {
    let message = Invalidation {
        o: origin.to_owned(),
        k: keys.iter().map(|k| (*k).to_owned()).collect(),
        p: prefix.map(str::to_owned),
    };
    // Strings only: serializing cannot fail.
    serde_json::to_string(&message).unwrap_or_default()
}

pub(super) struct AbortOnDrop(pub(super) JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The subscriber task: (re)connects, subscribes, evicts what other processes invalidate, and
/// keeps L1 bypassed and cleared whenever it may have missed a message.
pub(super) async fn subscribe(
    client: ::redis::Client,
    channel: String,
    origin: String,
    l1: MemoryStore,
    coherence: Arc<Coherence>,
    timeout: Duration,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    let mut backoff = Duration::from_millis(50);
    loop {
        let connect = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, ::redis::RedisError>(pubsub)
        };
        match tokio::time::timeout(timeout, connect).await {
            Ok(Ok(pubsub)) => {
                backoff = Duration::from_millis(50);
                // Subscribed: from now on every announcement reaches us. Anything published
                // while we were away is lost: start from an empty L1.
                let heard_at = Instant::now();
                coherence.bump_all();
                l1.clear();
                coherence.trust_from(heard_at);
                if let Some(ready) = ready.take() {
                    let _ = ready.send(());
                }
                tracing::debug!(channel, "cache invalidation channel subscribed");
                listen(pubsub, &origin, &l1, &coherence, timeout).await;
                coherence.distrust();
                coherence.bump_all();
                l1.clear();
                tracing::warn!(
                    channel,
                    "cache invalidation channel lost; L1 bypassed until it is back"
                );
            }
            Ok(Err(e)) => {
                tracing::warn!(channel, error = %e, "cache invalidation channel: subscribe failed");
            }
            Err(_) => {
                tracing::warn!(channel, "cache invalidation channel: subscribe timed out");
            }
        }
        let jitter = Duration::from_millis(rand::random_range(0..=backoff.as_millis() as u64 / 2));
        tokio::time::sleep(backoff + jitter).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Applies one message of the channel to L1.
async fn apply(message: &::redis::Msg, origin: &str, l1: &MemoryStore, coherence: &Coherence) {
    let payload: Vec<u8> = match message.get_payload() {
        Ok(payload) => payload,
        Err(e) => {
            tracing::warn!(error = %e, "cache invalidation: unreadable message");
            return;
        }
    };
    let invalidation: Invalidation = match serde_json::from_slice(&payload) {
        Ok(invalidation) => invalidation,
        Err(e) => {
            tracing::warn!(error = %e, "cache invalidation: undecodable message");
            return;
        }
    };
    if invalidation.o == origin {
        return;
    }
    for key in &invalidation.k {
        coherence.bump(key);
        l1.invalidate(key).await;
    }
    if let Some(prefix) = &invalidation.p {
        coherence.bump_all();
        if let Err(e) = l1.flush_prefix(prefix).await {
            tracing::warn!(error = %e, "cache invalidation: L1 flush failed");
        }
    }
}

type Pong = Pin<Box<dyn Future<Output = ::redis::RedisResult<Value>> + Send>>;

/// Handles messages until the connection ends or a ping goes unanswered for `timeout`. Every
/// [`HEARTBEAT`] it pings; when the pong comes back, every message published before the ping
/// has been applied, and L1 is trusted for [`TRUST`](super::coherence::TRUST) from when the ping was sent.
async fn listen(
    pubsub: ::redis::aio::PubSub,
    origin: &str,
    l1: &MemoryStore,
    coherence: &Coherence,
    timeout: Duration,
) {
    let (sink, mut stream) = pubsub.split();
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    heartbeat.tick().await;
    let mut pending: Option<(Instant, Pong)> = None;
    loop {
        tokio::select! {
            message = stream.next() => {
                let Some(message) = message else { return };
                apply(&message, origin, l1, coherence).await;
            }
            pong = async { pending.as_mut().map(|(_, pong)| pong).unwrap().await },
                if pending.is_some() =>
            {
                let Some((sent, _)) = pending.take() else { return };
                if pong.is_err() {
                    return;
                }
                // The messages published before the ping are queued ahead of its pong.
                loop {
                    match stream.next().now_or_never() {
                        Some(Some(message)) => apply(&message, origin, l1, coherence).await,
                        Some(None) => return,
                        None => break,
                    }
                }
                coherence.trust_from(sent);
            }
            _ = heartbeat.tick() => {
                match &pending {
                    Some((sent, _)) if sent.elapsed() >= timeout => return,
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
