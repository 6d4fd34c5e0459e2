//! The message bus: publish/subscribe between processes, a wake-up signal beside the database.
//!
//! A process [`publish`](crate::infra::bus::Bus::publish)es a short payload on a channel ("job 42
//! has a new event"); every [`Subscription`](crate::infra::bus::Subscription) to that channel, in
//! any process on the same bus, receives it. The bus is **not** a store: the database stays the
//! source of truth, and a message only says "look again". Its one promise is that a subscriber is
//! told whenever it *may* have missed messages:
//! [`Subscription::recv`](crate::infra::bus::Subscription::recv) then returns
//! [`Message::Gap`](crate::infra::bus::Message::Gap), and the subscriber re-reads what it follows
//! from the database.
//!
//! | driver | constructor | for |
//! |---|---|---|
//! | memory | [`Bus::memory`](crate::infra::bus::Bus::memory) | one process (tests, `cargo run` with nothing installed) |
//! | Redis | [`Bus::redis`](crate::infra::bus::Bus::redis) | any number of processes sharing one Redis |
//!
//! [`Bus::from_url`](crate::infra::bus::Bus::from_url) picks one from configuration (`memory://`,
//! `redis://`, `rediss://`).
//!
//! # Guarantees
//!
//! - **Subscribed means subscribed.** [`Bus::subscribe`](crate::infra::bus::Bus::subscribe) returns
//!   once the subscription is in force (on Redis: once Redis confirmed the `SUBSCRIBE`). So
//!   subscribe first, then read the database, then wait: whatever is published after the read is
//!   received.
//! - **Gaps are announced.** A [`Message::Gap`](crate::infra::bus::Message::Gap) is delivered when
//!   messages may have been lost: the Redis connection was cut or went silent (then the gap comes
//!   once it is back and every channel is subscribed again), or the subscription fell more than
//!   [`BusOptions::capacity`](crate::infra::bus::BusOptions::capacity) messages behind (then it
//!   skips ahead: the gap, then the newest messages). A gap can also come when nothing was lost.
//! - **Nobody waits for a slow subscriber.** Each subscription has its own bounded buffer;
//!   publishing and the other subscriptions never wait for it.
//! - **Nothing hangs.** `publish` and `subscribe` on a Redis that is down or silent fail with
//!   [`Error::Timeout`](crate::Error::Timeout) after
//!   [`BusOptions::timeout`](crate::infra::bus::BusOptions::timeout) (2 s by default).
//! - Messages that one handle publishes on a channel one after the other (each awaited) arrive
//!   in that order, unless a publish failed.
//!
//! # On Redis
//!
//! A bus holds two connections whatever the number of subscriptions: a multiplexed connection for
//! `PUBLISH` (`lib-name=rustforge-bus:{prefix}` in `CLIENT LIST`, replaced after a call times out,
//! see [`SharedConnection`](crate::SharedConnection)), and one pub/sub connection
//! (`rustforge-bus-sub:{prefix}`, opened with the first subscription) carrying every channel. A
//! channel is `SUBSCRIBE`d when its first subscription in the process appears and `UNSUBSCRIBE`d
//! when its last one is dropped. Channel `c` is the Redis channel `{prefix}:bus:{c}`.
//!
//! The pub/sub connection sends a `PING` every second; one left unanswered for the timeout counts
//! as a cut, so a stalled network is noticed within about 3 seconds. After a cut the bus reconnects
//! (backoff from 50 ms to 2 s), subscribes every channel again, then delivers the gap.
//!
//! # Example
//!
//! Streaming a job's events: subscribe, read what is already there, then read again on every
//! wake-up. A [`Message::Gap`](crate::infra::bus::Message::Gap) is handled like a message: read
//! again.
//!
//! ```
//! use core_db::bus::{Bus, Message};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> core_db::Result<()> {
//! // `Bus::from_url("redis://127.0.0.1:6379", "app")` in an application with several processes.
//! let bus = Bus::memory();
//! let events = std::sync::Mutex::new(vec!["queued"]); // stands for the database
//! let read_from = |seen: usize| events.lock().unwrap()[seen..].to_vec();
//!
//! let mut wake_ups = bus.subscribe("job:42").await?;
//! let mut seen = read_from(0).len(); // sent to the client
//!
//! // Elsewhere (another process on Redis): a worker writes an event, then publishes.
//! events.lock().unwrap().push("running");
//! bus.publish("job:42", "new event").await?;
//!
//! match wake_ups.recv().await {
//!     Some(Message::Payload(_) | Message::Gap) => {
//!         let new = read_from(seen);
//!         assert_eq!(new, ["running"]);
//!         seen += new.len();
//!     }
//!     None => unreachable!("the bus is still here"),
//! }
//! # let _ = seen;
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::broadcast;

use crate::settings::redact_url;
use crate::{Error, Result};

mod hub;
mod redis;

use self::hub::Hub;
use self::redis::RedisBus;

/// What a [`Subscription`] receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A message published on the channel.
    Payload(Bytes),
    /// Messages may have been lost (the connection to Redis was cut or stalled, or the
    /// subscription fell behind): re-read the source of truth.
    Gap,
}

/// Which driver a [`Bus`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BusDriver {
    /// [`Bus::memory`].
    Memory,
    /// [`Bus::redis`].
    Redis,
}

/// Options of a [`Bus`], for [`Bus::memory_with`], [`Bus::redis_with`] and
/// [`Bus::from_url_with`].
///
/// ```
/// use std::time::Duration;
/// use core_db::bus::BusOptions;
///
/// let options = BusOptions::new().timeout(Duration::from_millis(500)).capacity(1024);
/// # let _ = options;
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct BusOptions {
    timeout: Duration,
    capacity: usize,
}

impl BusOptions {
    /// The default timeout of `publish`, `subscribe` and the heartbeat: 2 seconds.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
    /// The default buffer of one subscription: 256 messages.
    pub const DEFAULT_CAPACITY: usize = 256;
    /// The largest buffer a subscription may have: 65,536 messages.
    pub const MAX_CAPACITY: usize = 1 << 16;

    /// The defaults: [`DEFAULT_TIMEOUT`](Self::DEFAULT_TIMEOUT),
    /// [`DEFAULT_CAPACITY`](Self::DEFAULT_CAPACITY).
    pub fn new() -> Self {
        Self {
            timeout: Self::DEFAULT_TIMEOUT,
            capacity: Self::DEFAULT_CAPACITY,
        }
    }

    /// The longest a `publish` or `subscribe` on Redis may take, waiting for a (re)connection
    /// included (past it: [`Error::Timeout`]), and how long the pub/sub connection's heartbeat
    /// may go unanswered before it counts as cut.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How many messages one subscription buffers (1 to [`MAX_CAPACITY`](Self::MAX_CAPACITY);
    /// others are clamped). A subscription further behind gets a [`Message::Gap`] and skips to
    /// the newest messages.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.clamp(1, Self::MAX_CAPACITY);
        self
    }
}

impl Default for BusOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// A handle on the message bus. Cloning is cheap (one `Arc`), and clones share the
/// connections and the subscriptions. See the [module documentation](self).
#[derive(Clone)]
pub struct Bus {
    inner: Arc<Inner>,
}

struct Inner {
    prefix: String,
    hub: Arc<Hub>,
    driver: Driver,
}

enum Driver {
    /// The hub is the bus.
    Memory,
    Redis(RedisBus),
}

impl fmt::Debug for Bus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bus")
            .field("driver", &self.driver())
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

/// Rejects an empty channel name.
fn check_channel(channel: &str) -> Result<()> {
    if channel.is_empty() {
        return Err(Error::InvalidKey {
            key: String::new(),
            reason: "bus channel names cannot be empty",
        });
    }
    Ok(())
}

/// The driver a bus URL names; errors never show its password.
fn parse_url(url: &str) -> Result<BusDriver> {
    let shown = || redact_url(url);
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| Error::Config(format!("bus URL {:?} has no scheme", shown())))?;
    match scheme {
        "memory" if rest.is_empty() => Ok(BusDriver::Memory),
        "memory" => Err(Error::Config(format!(
            "bus URL {:?}: memory:// takes no options",
            shown()
        ))),
        "redis" | "rediss" | "redis+unix" | "unix" => Ok(BusDriver::Redis),
        other => Err(Error::Config(format!(
            "bus URL {:?}: unknown scheme {other:?} (expected memory, redis or rediss)",
            shown()
        ))),
    }
}

impl Bus {
    /// A bus inside this process (a tokio broadcast channel per channel): what one process
    /// publishes, its own subscriptions receive. Needs no service.
    pub fn memory() -> Self {
        Self::memory_with(BusOptions::default())
    }

    /// [`Bus::memory`] with options (the subscriptions' buffer).
    pub fn memory_with(options: BusOptions) -> Self {
        Self {
            inner: Arc::new(Inner {
                prefix: String::new(),
                hub: Arc::new(Hub::new(options.capacity)),
                driver: Driver::Memory,
            }),
        }
    }

    /// A bus over Redis, its channels under `{prefix}:bus:`: every process on the same Redis and
    /// prefix hears every other. Connects the publishing connection now; the pub/sub connection
    /// opens with the first subscription.
    ///
    /// ```no_run
    /// # async fn example() -> core_db::Result<()> {
    /// use core_db::Bus;
    ///
    /// let bus = Bus::redis("redis://127.0.0.1:6379", "app").await?;
    /// bus.publish("job:42", "new event").await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// An invalid URL, an empty prefix ([`Error::Config`]), or Redis unreachable within the
    /// timeout.
    pub async fn redis(url: &str, prefix: impl Into<String>) -> Result<Self> {
        Self::redis_with(url, prefix, BusOptions::default()).await
    }

    /// [`Bus::redis`] with options (timeout, the subscriptions' buffer).
    ///
    /// # Errors
    /// As [`Bus::redis`].
    pub async fn redis_with(
        url: &str,
        prefix: impl Into<String>,
        options: BusOptions,
    ) -> Result<Self> {
        let prefix = prefix.into();
        if prefix.is_empty() {
            return Err(Error::Config("the bus prefix cannot be empty".to_owned()));
        }
        let hub = Arc::new(Hub::new(options.capacity));
        let redis = RedisBus::connect(url, &prefix, options.timeout, Arc::downgrade(&hub)).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                prefix,
                hub,
                driver: Driver::Redis(redis),
            }),
        })
    }

    /// The bus a configuration names: `memory://` ([`Bus::memory`]; `prefix` is not used), or
    /// `redis://…` / `rediss://…` ([`Bus::redis`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> core_db::Result<()> {
    /// use core_db::bus::{Bus, BusDriver};
    ///
    /// let bus = Bus::from_url("memory://", "app").await?;
    /// assert_eq!(bus.driver(), BusDriver::Memory);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// An unknown scheme ([`Error::Config`], without the URL's password), or as [`Bus::redis`].
    pub async fn from_url(url: &str, prefix: impl Into<String>) -> Result<Self> {
        Self::from_url_with(url, prefix, BusOptions::default()).await
    }

    /// [`Bus::from_url`] with options.
    ///
    /// # Errors
    /// As [`Bus::from_url`].
    pub async fn from_url_with(
        url: &str,
        prefix: impl Into<String>,
        options: BusOptions,
    ) -> Result<Self> {
        match parse_url(url)? {
            BusDriver::Memory => Ok(Self::memory_with(options)),
            BusDriver::Redis => Self::redis_with(url, prefix, options).await,
        }
    }

    /// Which driver this bus uses.
    pub fn driver(&self) -> BusDriver {
        match self.inner.driver {
            Driver::Memory => BusDriver::Memory,
            Driver::Redis(_) => BusDriver::Redis,
        }
    }

    /// Sends `payload` to every subscription on `channel`, in every process on the bus. Nobody
    /// subscribed is fine: the message is dropped. Returns once Redis took it (memory: at once);
    /// it never waits for subscribers.
    ///
    /// # Errors
    /// An empty `channel` ([`Error::InvalidKey`]); on Redis, a failed `PUBLISH` or
    /// [`Error::Timeout`] after [`BusOptions::timeout`].
    pub async fn publish(&self, channel: &str, payload: impl Into<Bytes>) -> Result<()> {
        check_channel(channel)?;
        let payload = payload.into();
        match &self.inner.driver {
            Driver::Memory => {
                self.inner.hub.deliver(channel, Message::Payload(payload));
                Ok(())
            }
            Driver::Redis(redis) => redis.publish(&redis.key(channel), &payload).await,
        }
    }

    /// Subscribes to `channel`. Returns once the subscription is in force: every message
    /// published from then on is received (or a [`Message::Gap`] says it may not have been).
    /// Dropping the [`Subscription`] unsubscribes.
    ///
    /// # Errors
    /// An empty `channel` ([`Error::InvalidKey`]); on Redis, [`Error::Timeout`] when Redis did
    /// not confirm the subscription within [`BusOptions::timeout`].
    pub async fn subscribe(&self, channel: &str) -> Result<Subscription> {
        check_channel(channel)?;
        let key = match &self.inner.driver {
            Driver::Memory => channel.to_owned(),
            Driver::Redis(redis) => redis.key(channel),
        };
        let receiver = self.inner.hub.join(&key, || {
            if let Driver::Redis(redis) = &self.inner.driver {
                redis.watch(&key);
            }
        });
        // Made before waiting, so an error (or a cancelled call) drops it and unsubscribes.
        let subscription = Subscription {
            receiver,
            key,
            bus: Arc::downgrade(&self.inner),
        };
        if let Driver::Redis(redis) = &self.inner.driver {
            redis.ready(&subscription.key).await?;
        }
        Ok(subscription)
    }
}

/// One subscription to a channel, from [`Bus::subscribe`]. Dropping it unsubscribes (on Redis,
/// the last subscription to a channel in the process `UNSUBSCRIBE`s it). It does not keep the
/// [`Bus`] alive.
pub struct Subscription {
    receiver: broadcast::Receiver<Message>,
    /// The channel's key in the hub (on Redis, the Redis channel).
    key: String,
    bus: Weak<Inner>,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("channel", &self.key)
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// The next message: a [`Message::Payload`], or a [`Message::Gap`] when messages may have
    /// been lost. `None` only once every handle on the [`Bus`] is dropped. Cancel-safe: use it
    /// in `tokio::select!`.
    pub async fn recv(&mut self) -> Option<Message> {
        match self.receiver.recv().await {
            Ok(message) => Some(message),
            Err(broadcast::error::RecvError::Lagged(_)) => Some(Message::Gap),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let Some(bus) = self.bus.upgrade() else {
            return;
        };
        bus.hub.leave(&self.key, || {
            if let Driver::Redis(redis) = &bus.driver {
                redis.unwatch(&self.key);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_their_driver_and_errors_hide_the_password() {
        assert_eq!(parse_url("memory://").unwrap(), BusDriver::Memory);
        for url in [
            "redis://127.0.0.1:6379",
            "rediss://:pw@bus:6380/1",
            "unix:///tmp/redis.sock",
        ] {
            assert_eq!(parse_url(url).unwrap(), BusDriver::Redis, "{url}");
        }
        for url in ["memory://?x=1", "nats://:hunter2@bus:4222", "nothing"] {
            let error = parse_url(url).unwrap_err().to_string();
            assert!(!error.contains("hunter2"), "{error}");
            assert!(matches!(parse_url(url), Err(Error::Config(_))), "{url}");
        }
    }

    #[test]
    fn capacity_is_clamped() {
        assert_eq!(BusOptions::new().capacity(0).capacity, 1);
        assert_eq!(
            BusOptions::new().capacity(usize::MAX).capacity,
            BusOptions::MAX_CAPACITY
        );
    }
}
