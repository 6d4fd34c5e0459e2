//! The tiered driver's subscriber: the invalidation messages on `{prefix}:cache-invalidate`, and
//! the [`Handler`] that applies other processes' messages to this L1 and keeps it trusted while
//! the subscription hears (the connection, its reconnections and its heartbeat are the
//! [`Listener`](crate::infra::redis_pubsub::Listener)'s).

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::coherence::Coherence;
use crate::infra::cache::memory::MemoryStore;
use crate::infra::cache::store::Store;
use crate::infra::redis_pubsub::Handler;

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

/// Applies other processes' invalidations to this L1, and keeps L1 bypassed and cleared
/// whenever it may have missed one.
pub(super) struct Invalidations {
    /// This instance: its own messages are ignored.
    pub(super) origin: String,
    pub(super) l1: MemoryStore,
    pub(super) coherence: Arc<Coherence>,
}

impl Handler for Invalidations {
    fn subscribed(&self, heard_at: Instant) {
        // From now on every announcement reaches us. Anything published while we were away is
        // lost: start from an empty L1.
        self.coherence.bump_all();
        self.l1.clear();
        self.coherence.trust_from(heard_at);
    }

    async fn message(&self, message: ::redis::Msg) {
        apply(&message, &self.origin, &self.l1, &self.coherence).await;
    }

    fn heard(&self, sent: Instant) {
        // Every announcement published before `sent` is applied: L1 is trusted for `TRUST` from
        // then.
        self.coherence.trust_from(sent);
    }

    fn lost(&self) {
        self.coherence.distrust();
        self.coherence.bump_all();
        // Bypassed until `subscribed` (the listener logs the loss).
        self.l1.clear();
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
