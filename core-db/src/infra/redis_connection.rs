//! [`SharedConnection`]: one Redis `ConnectionManager` shared by a whole component, replaced by
//! a fresh one when a call on it times out or gets a reply that does not fit it.
//!
//! A multiplexed connection matches replies to requests in order. A reply that is late is still
//! matched correctly, but one that is lost (a middlebox dropped it, or a fault proxy's black
//! hole) leaves every later reply handed to the wrong request. redis-rs's manager reconnects on
//! I/O errors, not on timeouts, and a timeout cannot tell late from lost, so a connection that
//! timed out is never trusted again: the next caller gets a new manager (connected lazily, on
//! its first request), while requests already made on the old one finish or time out there.
//!
//! A lost reply does not always end in a timeout: on a busy connection the request whose reply
//! was lost takes the next request's reply, that one the following reply, and so on for as long
//! as requests keep coming. Each then gets a reply of the wrong shape sooner or later (an array
//! where a number was expected), which redis-rs reports as a parse error; [`SharedConn::checked`]
//! replaces the connection on those too.
//!
//! The Redis cache, the bus and the job queue use it; an application can too.
//!
//! ```no_run
//! # async fn example() -> redis::RedisResult<()> {
//! use std::time::Duration;
//! use core_db::SharedConnection;
//! use redis::aio::ConnectionManagerConfig;
//!
//! let client = redis::Client::open("redis://127.0.0.1:6379")?;
//! let config = ConnectionManagerConfig::new().set_response_timeout(Some(Duration::from_secs(2)));
//! let shared = SharedConnection::connect(client, config, "my component").await?;
//! let mut conn = shared.get(); // a redis::aio::ConnectionLike
//! let _: () = redis::cmd("SET").arg("k").arg("v").query_async(&mut conn).await?;
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{
    Client, Cmd, ConnectionInfo, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, Value,
};

use crate::Error;

/// The name a component's connections give themselves in `CLIENT LIST` (`lib-name=`):
/// `{kind}:{prefix}`, non-printable characters of the prefix replaced by `_`.
fn client_lib_name(kind: &str, prefix: &str) -> String {
    let printable: String = prefix
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect();
    format!("{kind}:{printable}")
}

/// A client for `info` whose connections are named after `kind` and `prefix`
/// ([`client_lib_name`]).
pub(crate) fn named_client(info: &ConnectionInfo, kind: &str, prefix: &str) -> RedisResult<Client> {
    let settings = info
        .redis_settings()
        .clone()
        .set_lib_name(client_lib_name(kind, prefix), env!("CARGO_PKG_VERSION"));
    Client::open(info.clone().set_redis_settings(settings))
}

/// The manager settings of a component that bounds every call itself
/// ([`SharedConnection::bounded`]): no response timeout of the manager's own (it would only add a
/// second timer per command), connections given up after `timeout`, quick reconnections.
pub(crate) fn bounded_manager_config(timeout: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(None)
        .set_number_of_retries(2)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500))
}

/// One shared `ConnectionManager`, replaced after a timed-out call. See the
/// [module documentation](self).
pub struct SharedConnection {
    client: Client,
    config: ConnectionManagerConfig,
    /// Named in the warning logged when the connection is replaced.
    label: &'static str,
    /// The current manager and its generation (bumped on every replacement).
    current: Mutex<(u64, ConnectionManager)>,
    /// The current generation, readable without the lock (every cache call reads it).
    generation: AtomicU64,
}

impl fmt::Debug for SharedConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedConnection")
            .field("label", &self.label)
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}

impl SharedConnection {
    /// Connects the first manager now (so a wrong URL or an unreachable server fails here) and
    /// shares it; replacements use the same `client` and `config`. `label` names the component
    /// in the warning logged on a replacement.
    ///
    /// # Errors
    /// The first connection failed.
    pub async fn connect(
        client: Client,
        config: ConnectionManagerConfig,
        label: &'static str,
    ) -> RedisResult<Arc<Self>> {
        let manager = ConnectionManager::new_with_config(client.clone(), config.clone()).await?;
        Ok(Self::with_manager(client, config, manager, label))
    }

    /// Shares `manager`, already connected from `client` with `config`.
    pub fn with_manager(
        client: Client,
        config: ConnectionManagerConfig,
        manager: ConnectionManager,
        label: &'static str,
    ) -> Arc<Self> {
        Arc::new(Self {
            client,
            config,
            label,
            current: Mutex::new((0, manager)),
            generation: AtomicU64::new(0),
        })
    }

    /// A handle to the current connection (cheap: a clone of the manager). A request through
    /// it that fails with a timeout replaces the connection.
    pub fn get(self: &Arc<Self>) -> SharedConn {
        let (generation, manager) = self.lock().clone();
        SharedConn {
            shared: Arc::clone(self),
            generation,
            manager,
        }
    }

    /// [`SharedConnection::connect`] bounded by `timeout` (an unreachable or silent server fails
    /// with [`Error::Timeout`] named `operation`), with [`bounded_manager_config`].
    pub(crate) async fn connect_within(
        client: Client,
        timeout: Duration,
        label: &'static str,
        operation: &'static str,
    ) -> crate::Result<Arc<Self>> {
        let config = bounded_manager_config(timeout);
        match tokio::time::timeout(timeout, Self::connect(client, config, label)).await {
            Ok(shared) => Ok(shared?),
            Err(_) => Err(Error::Timeout {
                operation,
                after: timeout,
            }),
        }
    }

    /// Awaits `call` (made on a handle from [`SharedConnection::get`]) for at most `after`. Past
    /// it the call is abandoned, the connection replaced (its reply may have been lost rather
    /// than delayed, see the [module documentation](self)) and [`Error::Timeout`] named
    /// `operation` returned; a reply that does not fit the call replaces the connection too.
    pub(crate) async fn bounded<T>(
        &self,
        operation: &'static str,
        after: Duration,
        call: impl Future<Output = RedisResult<T>>,
    ) -> crate::Result<T> {
        let generation = self.generation();
        match tokio::time::timeout(after, call).await {
            Ok(result) => {
                if let Err(e) = &result
                    && untrusted(e)
                {
                    self.replace(generation, e);
                }
                result.map_err(Error::from)
            }
            Err(_) => {
                self.timed_out(generation);
                Err(Error::Timeout { operation, after })
            }
        }
    }

    /// How many times the connection has been replaced.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Replaces connection `generation` if it is still the current one: for callers that bound
    /// a request with their own timer (the manager then never sees the timeout).
    pub fn timed_out(&self, generation: u64) {
        self.replace_with(
            generation,
            "a Redis call timed out; its shared connection was replaced",
        );
    }

    /// Replaces connection `generation` after `error` (a timeout, or a reply that did not fit
    /// its request), if it is still the current one.
    fn replace(&self, generation: u64, error: &RedisError) {
        if error.is_timeout() {
            self.timed_out(generation);
        } else {
            self.replace_with(
                generation,
                "a Redis reply did not fit its request (replies may be handed to the wrong requests); its shared connection was replaced",
            );
        }
    }

    fn replace_with(&self, generation: u64, why: &'static str) {
        let mut current = self.lock();
        if current.0 != generation {
            return;
        }
        match ConnectionManager::new_lazy_with_config(self.client.clone(), self.config.clone()) {
            Ok(manager) => {
                tracing::warn!(component = self.label, "{why}");
                *current = (generation + 1, manager);
                self.generation.store(generation + 1, Ordering::Release);
            }
            Err(e) => tracing::warn!(
                component = self.label,
                error = %e,
                "{why}, but a new one cannot be made"
            ),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, ConnectionManager)> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A handle to the current connection of a [`SharedConnection`] (cheap to clone, like the
/// manager it wraps). Use it wherever redis-rs takes a `ConnectionLike`.
#[derive(Clone)]
pub struct SharedConn {
    shared: Arc<SharedConnection>,
    generation: u64,
    manager: ConnectionManager,
}

impl fmt::Debug for SharedConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedConn")
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl SharedConn {
    /// The generation of the connection this handle uses (pass it to
    /// [`SharedConnection::timed_out`]).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The underlying manager.
    pub fn manager(&self) -> &ConnectionManager {
        &self.manager
    }

    /// Runs `cmd` on the manager directly: what `cmd.query_async(&mut handle)` does, without
    /// the boxed future of this handle's [`ConnectionLike`] layer (the cache's hot path).
    pub(crate) async fn query<T: ::redis::FromRedisValue>(&mut self, cmd: &Cmd) -> RedisResult<T> {
        let result = cmd.query_async(&mut self.manager).await;
        self.checked(result)
    }

    /// Passes on the result of a call made through this handle; a sign that the connection's
    /// replies can no longer be matched to their requests replaces it (see the
    /// [module documentation](self)): a timeout, or a reply that does not fit its request (one
    /// of a different shape, or one that cannot be parsed).
    ///
    /// The handle's [`ConnectionLike`] layer sees timeouts but not the type of reply a caller
    /// expected, which redis-rs checks afterwards; pass such results (`query_async`,
    /// `invoke_async`) through this too.
    pub fn checked<T>(&self, result: RedisResult<T>) -> RedisResult<T> {
        if let Err(e) = &result
            && untrusted(e)
        {
            self.shared.replace(self.generation, e);
        }
        result
    }
}

/// Whether `e` means the connection's replies can no longer be matched to their requests: a
/// timeout (the reply may be lost, not late), or a reply that does not fit its request.
fn untrusted(e: &RedisError) -> bool {
    e.is_timeout() || matches!(e.kind(), ErrorKind::Parse | ErrorKind::UnexpectedReturnType)
}

impl ConnectionLike for SharedConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let r = self.manager.req_packed_command(cmd).await;
            self.checked(r)
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let r = self.manager.req_packed_commands(cmd, offset, count).await;
            self.checked(r)
        })
    }

    fn get_db(&self) -> i64 {
        self.manager.get_db()
    }
}

#[cfg(test)]
mod tests {
    use super::client_lib_name;

    #[test]
    fn lib_names_are_printable() {
        assert_eq!(
            client_lib_name("rustforge-cache", "app 1\n"),
            "rustforge-cache:app_1_"
        );
    }
}
