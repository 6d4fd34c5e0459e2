//! The Redis driver: one `redis::aio::ConnectionManager` (a multiplexed connection that
//! reconnects by itself) shared by every clone of the cache, with a timeout on every call.
//!
//! Key layout under the application prefix `{p}`:
//!
//! ```text
//! {p}:cache:{key}              the value
//! {p}:cache-tag:t:{tag}        sorted set: keys carrying the tag, scored by their expiry (ms)
//! {p}:cache-tag:k:{key}        set: the tags of the key; expires with the write that tagged it
//! {p}:cache-tag:index          sorted set: every tag, scored by its last member's expiry
//! {p}:cache-gen:k:{key}        the key's generation, while a `remember` of it may be running
//! {p}:cache-gen:t:{tag}        the tag's generation, likewise
//! {p}:cache-gen:counter        where generations come from (one counter: none ever repeats)
//! {p}:lock:{name}              lock owner token (SET NX PX)
//! ```
//!
//! A `remember` claim registers the generations of its key and tags (for
//! `GENERATION_TTL`); deleting or pulling the key, or invalidating one of the tags, moves the
//! registered generation on in the same script, and the computed value is written by a script
//! that checks them first (see `Fence`).
//!
//! Operations that touch several keys run as Lua scripts, so they are atomic and cost one round
//! trip. A store made by [`RedisStore::announcing`] (the tiered driver's L2) runs every change as
//! a script that also `PUBLISH`es its invalidation, so a change and its announcement reach Redis
//! together or not at all. A key carries a tag exactly when the tag is in `{p}:cache-tag:k:{key}`; the tag's sorted
//! set is the list of candidates, pruned by score (expiry) and by that check.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::ConnectionManager;
use ::redis::{Client, ConnectionInfo, IntoConnectionInfo, RedisError, RedisResult, Value};

use super::Expiry;
use crate::Result;
use crate::infra::redis_connection::{SharedConn, SharedConnection, named_client};

mod options;
mod scripts;
mod store;

pub use self::options::RedisCacheOptions;
use self::scripts::{DELETE, PUT_ANNOUNCED};

/// The Redis driver. Clones share the connection.
#[derive(Clone)]
pub(crate) struct RedisStore {
    inner: Arc<Inner>,
    /// Where every change is announced, for the tiered driver; `None` for a plain Redis cache.
    announce: Option<Arc<Announce>>,
}

/// The channel a tiered cache announces its changes on, and the instance it announces as.
struct Announce {
    channel: String,
    origin: String,
}

struct Inner {
    /// The shared connection; replaced after a call times out (see [`RedisStore::run`]).
    conn: Arc<SharedConnection>,
    info: ConnectionInfo,
    prefix: String,
    /// `{p}:cache:`
    cache_prefix: String,
    /// `{p}:cache-tag:t:`
    tag_prefix: String,
    /// `{p}:cache-tag:k:`
    key_tags_prefix: String,
    /// `{p}:cache-tag:index`
    tag_index: String,
    /// `{p}:lock:`
    lock_prefix: String,
    /// `{p}:cache-gen:k:`
    gen_key_prefix: String,
    /// `{p}:cache-gen:t:`
    gen_tag_prefix: String,
    /// `{p}:cache-gen:counter`
    gen_counter: String,
    options: RedisCacheOptions,
}

/// Escapes Redis glob characters so `s` matches itself literally in `SCAN MATCH`.
pub(crate) fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisStore {
    /// Connects (bounded by the options' timeout) and prepares the key layout for `prefix`.
    pub(crate) async fn connect(
        url: &str,
        prefix: &str,
        options: RedisCacheOptions,
    ) -> Result<Self> {
        let info = url.into_connection_info()?;
        let client = named_client(&info, "rustforge-cache", prefix)?;
        // The per-call timeout (`run`) bounds every call, the wait for a reconnection included.
        let conn =
            SharedConnection::connect_within(client, options.timeout, "cache", "cache connect")
                .await?;
        Ok(Self {
            inner: Arc::new(Inner {
                conn,
                info,
                prefix: prefix.to_owned(),
                cache_prefix: format!("{prefix}:cache:"),
                tag_prefix: format!("{prefix}:cache-tag:t:"),
                key_tags_prefix: format!("{prefix}:cache-tag:k:"),
                tag_index: format!("{prefix}:cache-tag:index"),
                lock_prefix: format!("{prefix}:lock:"),
                gen_key_prefix: format!("{prefix}:cache-gen:k:"),
                gen_tag_prefix: format!("{prefix}:cache-gen:t:"),
                gen_counter: format!("{prefix}:cache-gen:counter"),
                options,
            }),
            announce: None,
        })
    }

    /// This store (same connection), announcing every change on `channel` as `origin` in the
    /// same script that makes it: the tiered driver's L2.
    pub(crate) fn announcing(&self, channel: &str, origin: &str) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            announce: Some(Arc::new(Announce {
                channel: channel.to_owned(),
                origin: origin.to_owned(),
            })),
        }
    }

    /// The channel and message announcing a change of `keys`, when this store announces.
    fn announcement(&self, keys: &[&str]) -> Option<(&str, String)> {
        self.announce.as_deref().map(|a| {
            (
                a.channel.as_str(),
                super::tiered::invalidation_message(&a.origin, keys, None),
            )
        })
    }

    /// An announced `SET`: see [`PUT_ANNOUNCED`].
    async fn put_announced(
        &self,
        key: &str,
        value: &str,
        ttl: Option<Duration>,
        nx: bool,
        (channel, message): (&str, String),
    ) -> Result<bool> {
        let mut conn = self.conn();
        let mut invocation = PUT_ANNOUNCED.prepare_invoke();
        invocation
            .key(self.cache_key(key))
            .arg(value)
            .arg(ttl.map_or(0, millis))
            .arg(if nx { "1" } else { "0" })
            .arg(channel)
            .arg(message);
        let stored: i64 = self
            .run(
                if nx { "cache add" } else { "cache set" },
                invocation.invoke_async(&mut conn),
            )
            .await?;
        Ok(stored == 1)
    }

    /// The shared connection manager (an escape hatch for commands the cache does not wrap).
    pub(crate) fn connection(&self) -> ConnectionManager {
        self.conn().manager().clone()
    }

    /// A client for a dedicated connection (the tiered driver's pub/sub), named after `kind`.
    pub(crate) fn client_named(&self, kind: &str) -> Result<Client> {
        Ok(named_client(&self.inner.info, kind, &self.inner.prefix)?)
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.inner.options.timeout
    }

    fn cache_key(&self, key: &str) -> String {
        let mut out = String::with_capacity(self.inner.cache_prefix.len() + key.len());
        out.push_str(&self.inner.cache_prefix);
        out.push_str(key);
        out
    }

    /// `{p}:cache:{key}` as a command argument written straight into the command's buffer (the
    /// hot `GET`/`SET` path), without the `String` [`Self::cache_key`] allocates.
    fn cache_key_arg<'a>(&'a self, key: &'a str) -> CacheKeyArg<'a> {
        CacheKeyArg {
            prefix: &self.inner.cache_prefix,
            key,
        }
    }

    fn key_tags_key(&self, key: &str) -> String {
        format!("{}{key}", self.inner.key_tags_prefix)
    }

    fn gen_key_key(&self, key: &str) -> String {
        format!("{}{key}", self.inner.gen_key_prefix)
    }

    fn gen_tag_key(&self, tag: &str) -> String {
        format!("{}{tag}", self.inner.gen_tag_prefix)
    }

    fn lock_key(&self, name: &str) -> String {
        format!("{}{name}", self.inner.lock_prefix)
    }

    /// The shared connection (a cheap handle to the current one).
    fn conn(&self) -> SharedConn {
        self.inner.conn.get()
    }

    /// Runs one Redis call under the configured timeout. A call that times out also replaces
    /// the shared connection (`SharedConnection`: its reply may have been lost rather than
    /// delayed, and a lost reply would misalign every later one).
    async fn run<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = RedisResult<T>>,
    ) -> Result<T> {
        self.inner
            .conn
            .bounded(operation, self.inner.options.timeout, call)
            .await
    }

    /// `GET` and `PTTL` of one key in one round trip (the tiered driver's promotion).
    pub(crate) async fn get_with_expiry(&self, key: &str) -> Result<Option<(String, Expiry)>> {
        let k = self.cache_key(key);
        let mut conn = self.conn();
        let (value, pttl): (Option<String>, i64) = self
            .run(
                "cache get",
                ::redis::pipe()
                    .cmd("GET")
                    .arg(&k)
                    .cmd("PTTL")
                    .arg(&k)
                    .query_async(&mut conn),
            )
            .await?;
        Ok(value.map(|v| (v, expiry_from_pttl(pttl))))
    }

    /// `GET` and `PTTL` of many keys in one round trip.
    pub(crate) async fn many_with_expiry(
        &self,
        keys: &[&str],
    ) -> Result<Vec<Option<(String, Expiry)>>> {
        let mut pipe = ::redis::pipe();
        for key in keys {
            let k = self.cache_key(key);
            pipe.cmd("GET").arg(&k).cmd("PTTL").arg(&k);
        }
        let mut conn = self.conn();
        let values: Vec<Value> = self.run("cache many", pipe.query_async(&mut conn)).await?;
        let mut out = Vec::with_capacity(keys.len());
        let mut it = values.into_iter();
        while let (Some(value), Some(pttl)) = (it.next(), it.next()) {
            let value: Option<String> =
                ::redis::from_redis_value(value).map_err(RedisError::from)?;
            let pttl: i64 = ::redis::from_redis_value(pttl).map_err(RedisError::from)?;
            out.push(value.map(|v| (v, expiry_from_pttl(pttl))));
        }
        Ok(out)
    }

    /// `PUBLISH` on `channel`.
    pub(crate) async fn publish(&self, channel: &str, message: &str) -> Result<()> {
        let mut conn = self.conn();
        self.run(
            "cache publish",
            ::redis::cmd("PUBLISH")
                .arg(channel)
                .arg(message)
                .query_async::<i64>(&mut conn),
        )
        .await?;
        Ok(())
    }

    async fn delete(&self, key: &str, pull: bool) -> Result<Option<String>> {
        let mut conn = self.conn();
        let mut invocation = DELETE.prepare_invoke();
        invocation
            .key(self.cache_key(key))
            .key(self.key_tags_key(key))
            .key(self.gen_key_key(key))
            .key(&self.inner.gen_counter)
            .arg(key)
            .arg(&self.inner.tag_prefix)
            .arg(if pull { "1" } else { "0" });
        if let Some((channel, message)) = self.announcement(&[key]) {
            invocation.arg(channel).arg(message);
        }
        self.run(
            if pull { "cache pull" } else { "cache del" },
            invocation.invoke_async(&mut conn),
        )
        .await
    }
}

/// A value key, `{p}:cache:{key}`, as one command argument (see [`RedisStore::cache_key_arg`]).
pub(super) struct CacheKeyArg<'a> {
    prefix: &'a str,
    key: &'a str,
}

impl ::redis::ToRedisArgs for CacheKeyArg<'_> {
    fn write_redis_args<W>(&self, out: &mut W)
    where
        W: ?Sized + ::redis::RedisWrite,
    {
        use std::io::Write as _;
        let mut arg = out.writer_for_next_arg();
        // Writing to the command's in-memory buffer cannot fail.
        let _ = arg.write_all(self.prefix.as_bytes());
        let _ = arg.write_all(self.key.as_bytes());
    }
}

fn expiry_from_pttl(pttl: i64) -> Expiry {
    match pttl {
        -2 => Expiry::Missing,
        p if p < 0 => Expiry::Persistent,
        p => Expiry::Expires(Duration::from_millis(p.unsigned_abs())),
    }
}

#[cfg(test)]
mod tests {
    use super::glob_escape;

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(glob_escape("a*b?c[d]e\\"), "a\\*b\\?c\\[d\\]e\\\\");
        assert_eq!(glob_escape("plain:key"), "plain:key");
    }
}
