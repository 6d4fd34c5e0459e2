//! The Redis driver: `PUBLISH` on a shared multiplexed connection, and one dedicated pub/sub
//! connection (a [`Listener`]) carrying every channel this process subscribes to.

use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use ::redis::{IntoConnectionInfo, Msg};
use bytes::Bytes;

use super::Message;
use super::hub::Hub;
use crate::Result;
use crate::infra::redis_connection::{SharedConnection, named_client};
use crate::infra::redis_pubsub::{Handler, Listener};

/// The Redis driver of one [`Bus`](super::Bus).
pub(super) struct RedisBus {
    /// Where `PUBLISH` goes (`lib-name=rustforge-bus:{prefix}`).
    conn: Arc<SharedConnection>,
    /// The pub/sub connection (`lib-name=rustforge-bus-sub:{prefix}`).
    listener: Listener,
    /// `{prefix}:bus:`
    channel_prefix: String,
    timeout: Duration,
}

impl RedisBus {
    /// Connects the publishing connection (bounded by `timeout`); the pub/sub connection opens
    /// with the first subscription and delivers into `hub`.
    pub(super) async fn connect(
        url: &str,
        prefix: &str,
        timeout: Duration,
        hub: Weak<Hub>,
    ) -> Result<Self> {
        let info = url.into_connection_info()?;
        let publisher = named_client(&info, "rustforge-bus", prefix)?;
        let conn =
            SharedConnection::connect_within(publisher, timeout, "bus", "bus connect").await?;
        let subscriber = named_client(&info, "rustforge-bus-sub", prefix)?;
        Ok(Self {
            conn,
            listener: Listener::start(subscriber, "bus", timeout, Relay { hub }),
            channel_prefix: format!("{prefix}:bus:"),
            timeout,
        })
    }

    /// The Redis channel of `channel`: `{prefix}:bus:{channel}`.
    pub(super) fn key(&self, channel: &str) -> String {
        format!("{}{channel}", self.channel_prefix)
    }

    /// `PUBLISH key payload`, bounded by the timeout.
    pub(super) async fn publish(&self, key: &str, payload: &[u8]) -> Result<()> {
        let mut conn = self.conn.get();
        self.conn
            .bounded(
                "bus publish",
                self.timeout,
                ::redis::cmd("PUBLISH")
                    .arg(key)
                    .arg(payload)
                    .query_async::<i64>(&mut conn),
            )
            .await?;
        Ok(())
    }

    /// The first subscription on `key` in this process appeared.
    pub(super) fn watch(&self, key: &str) {
        self.listener.watch(key);
    }

    /// The last subscription on `key` in this process went.
    pub(super) fn unwatch(&self, key: &str) {
        self.listener.unwatch(key);
    }

    /// Returns once Redis confirmed the subscription to `key`.
    pub(super) async fn ready(&self, key: &str) -> Result<()> {
        self.listener.ready(key, "bus subscribe").await
    }
}

/// Hands what the pub/sub connection hears to the hub (while the bus lives).
struct Relay {
    hub: Weak<Hub>,
}

impl Handler for Relay {
    fn subscribed(&self, _heard_at: Instant) {
        if let Some(hub) = self.hub.upgrade() {
            hub.resubscribed();
        }
    }

    fn message(&self, message: Msg) -> impl Future<Output = ()> + Send {
        if let Some(hub) = self.hub.upgrade() {
            let payload = Bytes::copy_from_slice(message.get_payload_bytes());
            hub.deliver(message.get_channel_name(), Message::Payload(payload));
        }
        std::future::ready(())
    }

    fn heard(&self, _sent: Instant) {}

    fn lost(&self) {
        if let Some(hub) = self.hub.upgrade() {
            hub.lost();
        }
    }
}
