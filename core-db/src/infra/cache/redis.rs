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
//! {p}:lock:{name}              lock owner token (SET NX PX)
//! ```
//!
//! Operations that touch several keys run as Lua scripts, so they are atomic and cost one round
//! trip. A store made by [`RedisStore::announcing`] (the tiered driver's L2) runs every change as
//! a script that also `PUBLISH`es its invalidation, so a change and its announcement reach Redis
//! together or not at all. A key carries a tag exactly when the tag is in `{p}:cache-tag:k:{key}`; the tag's sorted
//! set is the list of candidates, pruned by score (expiry) and by that check.

use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, ConnectionInfo, IntoConnectionInfo, RedisError, RedisResult, Script, Value};

use super::store::{Claim, FlightLimits, Store};
use super::{Expiry, memory};
use crate::infra::redis_connection::{SharedConn, SharedConnection};
use crate::{Error, Result};

/// Options of the Redis driver, for [`Cache::redis_with`](super::Cache::redis_with).
///
/// ```no_run
/// # async fn example() -> core_db::Result<()> {
/// use std::time::Duration;
/// use core_db::infra::cache::{Cache, RedisCacheOptions};
///
/// let options = RedisCacheOptions::new().timeout(Duration::from_millis(500));
/// let cache = Cache::redis_with("redis://127.0.0.1:6379", "app", options).await?;
/// # let _ = cache;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct RedisCacheOptions {
    pub(super) timeout: Duration,
    pub(super) remember_lock_ttl: Duration,
    pub(super) remember_wait: Duration,
}

impl RedisCacheOptions {
    /// The default timeout of one cache call: 2 seconds.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

    /// The defaults: a 2 s timeout per call; `remember` holds its compute lock for up to 10 s and
    /// waits up to 10 s for another process's result.
    pub fn new() -> Self {
        Self {
            timeout: Self::DEFAULT_TIMEOUT,
            remember_lock_ttl: Duration::from_secs(10),
            remember_wait: Duration::from_secs(10),
        }
    }

    /// The longest one cache call may take, waiting for a (re)connection included. Past it the
    /// call returns [`Error::Timeout`]; nothing hangs while Redis is down.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long the cross-process `remember` lock lives: if the process computing a value dies,
    /// another one takes over after this long. Set it above your slowest computation.
    pub fn remember_lock_ttl(mut self, ttl: Duration) -> Self {
        self.remember_lock_ttl = ttl;
        self
    }

    /// How long `remember` waits for another process that is computing the same key before it
    /// computes the value itself.
    pub fn remember_wait(mut self, wait: Duration) -> Self {
        self.remember_wait = wait;
        self
    }
}

impl Default for RedisCacheOptions {
    fn default() -> Self {
        Self::new()
    }
}

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
    options: RedisCacheOptions,
}

/// The name this cache's connections give themselves in `CLIENT LIST` (`lib-name=`).
pub(crate) fn client_lib_name(kind: &str, prefix: &str) -> String {
    let printable: String = prefix
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect();
    format!("{kind}:{printable}")
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

fn map_increment_error(key: &str, e: RedisError) -> Error {
    let text = e.to_string();
    if text.contains("not an integer") {
        memory::not_an_integer(key)
    } else if text.contains("overflow") {
        memory::overflow(key)
    } else {
        Error::Redis(e)
    }
}

const SCAN_COUNT: usize = 1000;
const FLUSH_CHUNK: usize = 256;

// KEYS: value, key's tags. ARGV: key, tag prefix, '1' to return the value, [channel, message].
static DELETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local v = false
if ARGV[3] == '1' then v = redis.call('GET', KEYS[1]) end
for _, t in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  redis.call('ZREM', ARGV[2] .. t, ARGV[1])
end
redis.call('DEL', KEYS[1], KEYS[2])
if ARGV[4] then redis.call('PUBLISH', ARGV[4], ARGV[5]) end
return v
",
    )
});

// An announced `SET` (optionally `NX`), for the tiered driver: the write and its `PUBLISH` in one
// step. KEYS: value. ARGV: value, TTL in ms ('0': none), '1' for NX, channel, message. Returns 1
// when it stored (and announced), 0 when NX found the key taken.
static PUT_ANNOUNCED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local args = {KEYS[1], ARGV[1]}
if ARGV[2] ~= '0' then
  args[#args + 1] = 'PX'
  args[#args + 1] = ARGV[2]
end
if ARGV[3] == '1' then args[#args + 1] = 'NX' end
if redis.call('SET', unpack(args)) then
  redis.call('PUBLISH', ARGV[4], ARGV[5])
  return 1
end
return 0
",
    )
});

// An announced bulk write. KEYS: the values. ARGV: TTL in ms ('0': none), channel, message, then
// the value of each key.
static PUT_MANY_ANNOUNCED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
for i, key in ipairs(KEYS) do
  if ARGV[1] == '0' then
    redis.call('SET', key, ARGV[3 + i])
  else
    redis.call('SET', key, ARGV[3 + i], 'PX', ARGV[1])
  end
end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
",
    )
});

// KEYS: value, key's tags, tag index. ARGV: value, TTL in ms ('0': none), key, tag prefix,
// channel ('': do not announce), message, then the tags.
static SET_WITH_TAGS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local ttl = tonumber(ARGV[2])
local member, tp = ARGV[3], ARGV[4]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cutoff = '(' .. string.format('%.0f', now)
for _, old in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  redis.call('ZREM', tp .. old, member)
end
redis.call('DEL', KEYS[2])
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
else
  redis.call('SET', KEYS[1], ARGV[1])
end
local score = '+inf'
if ttl > 0 then score = string.format('%.0f', now + ttl) end
for i = 7, #ARGV do
  local tag = ARGV[i]
  local tk = tp .. tag
  redis.call('ZREMRANGEBYSCORE', tk, '-inf', cutoff)
  redis.call('ZADD', tk, score, member)
  redis.call('SADD', KEYS[2], tag)
  local top = redis.call('ZRANGE', tk, -1, -1, 'WITHSCORES')
  local max = tonumber(top[2])
  if max == nil or max == math.huge then
    redis.call('PERSIST', tk)
    redis.call('ZADD', KEYS[3], '+inf', tag)
  else
    local at = string.format('%.0f', max)
    redis.call('PEXPIREAT', tk, at)
    redis.call('ZADD', KEYS[3], at, tag)
  end
end
if ttl > 0 and #ARGV >= 7 then redis.call('PEXPIRE', KEYS[2], ttl) end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', cutoff)
if ARGV[5] ~= '' then redis.call('PUBLISH', ARGV[5], ARGV[6]) end
return 1
",
    )
});

// KEYS: tag index. ARGV: tag prefix, key-tags prefix, value prefix, channel ('': do not
// announce), origin, then the tags. Announces the removed keys in the tiered driver's format.
static INVALIDATE_TAGS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local tp, kp, cp = ARGV[1], ARGV[2], ARGV[3]
local removed, seen = {}, {}
for i = 6, #ARGV do
  local tag = ARGV[i]
  local tk = tp .. tag
  for _, m in ipairs(redis.call('ZRANGE', tk, 0, -1)) do
    local kk = kp .. m
    if redis.call('SISMEMBER', kk, tag) == 1 then
      for _, other in ipairs(redis.call('SMEMBERS', kk)) do
        if other ~= tag then redis.call('ZREM', tp .. other, m) end
      end
      redis.call('DEL', kk)
      if redis.call('UNLINK', cp .. m) == 1 and not seen[m] then
        seen[m] = true
        removed[#removed + 1] = m
      end
    end
  end
  redis.call('DEL', tk)
  redis.call('ZREM', KEYS[1], tag)
end
if ARGV[4] ~= '' and #removed > 0 then
  redis.call('PUBLISH', ARGV[4], cjson.encode({o = ARGV[5], k = removed}))
end
return removed
",
    )
});

static KEYS_BY_TAG: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%.0f', now))
local out = {}
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if redis.call('SISMEMBER', ARGV[1] .. m, ARGV[3]) == 1 then
    if redis.call('EXISTS', ARGV[2] .. m) == 1 then out[#out + 1] = m end
  else
    redis.call('ZREM', KEYS[1], m)
  end
end
return out
",
    )
});

static LIST_TAGS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local tp, kp, cp = ARGV[1], ARGV[2], ARGV[3]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cutoff = '(' .. string.format('%.0f', now)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', cutoff)
local out = {}
for _, tag in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local tk = tp .. tag
  redis.call('ZREMRANGEBYSCORE', tk, '-inf', cutoff)
  local live = false
  for _, m in ipairs(redis.call('ZRANGE', tk, 0, -1)) do
    if redis.call('SISMEMBER', kp .. m, tag) == 1 then
      if redis.call('EXISTS', cp .. m) == 1 then
        live = true
        break
      end
    else
      redis.call('ZREM', tk, m)
    end
  end
  if live then
    out[#out + 1] = tag
  elseif redis.call('ZCARD', tk) == 0 then
    redis.call('ZREM', KEYS[1], tag)
  end
end
return out
",
    )
});

// KEYS: the values to delete. ARGV: value prefix, key-tags prefix, tag prefix, tag index,
// [channel, origin]. With a channel, announces the batch's keys in the tiered driver's format
// (each batch its own keys: the other processes evict exactly those, not their whole prefix once
// per batch).
static FLUSH_BATCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cp, kp, tp, index = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local n = #cp
local tagged = redis.call('EXISTS', index) == 1
local members = {}
for i, key in ipairs(KEYS) do
  local m = string.sub(key, n + 1)
  members[i] = m
  if tagged then
    local kk = kp .. m
    local tags = redis.call('SMEMBERS', kk)
    if #tags > 0 then
      for _, t in ipairs(tags) do redis.call('ZREM', tp .. t, m) end
      redis.call('DEL', kk)
    end
  end
end
local removed = redis.call('UNLINK', unpack(KEYS))
if ARGV[5] then
  redis.call('PUBLISH', ARGV[5], cjson.encode({o = ARGV[6], k = members}))
end
return removed
",
    )
});

// KEYS: the counter. ARGV: by, TTL in ms ('-1': leave the expiry alone, '0': delete),
// [channel, message].
static INCREMENT_EX: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
local ttl = tonumber(ARGV[2])
if ttl == 0 then
  redis.call('DEL', KEYS[1])
elseif ttl > 0 and redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
if ARGV[3] then redis.call('PUBLISH', ARGV[3], ARGV[4]) end
return n
",
    )
});

static LOCK_RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
",
    )
});

static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local v = redis.call('GET', KEYS[1])
if v and not (ARGV[3] == '1' and v == ARGV[4]) then return {1, v} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {2, false} end
return {0, false}
",
    )
});

impl RedisStore {
    /// Connects (bounded by the options' timeout) and prepares the key layout for `prefix`.
    pub(crate) async fn connect(
        url: &str,
        prefix: &str,
        options: RedisCacheOptions,
    ) -> Result<Self> {
        let info = url.into_connection_info()?;
        let settings = info.redis_settings().clone().set_lib_name(
            client_lib_name("rustforge-cache", prefix),
            env!("CARGO_PKG_VERSION"),
        );
        let info = info.set_redis_settings(settings);
        let client = Client::open(info.clone())?;
        // The per-call timeout below bounds every call, the wait for a reconnection included; the
        // manager's own response timeout would only add a second timer per command.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.timeout))
            .set_response_timeout(None)
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let conn = match tokio::time::timeout(
            options.timeout,
            ConnectionManager::new_with_config(client.clone(), config.clone()),
        )
        .await
        {
            Ok(conn) => conn?,
            Err(_) => {
                return Err(Error::Timeout {
                    operation: "cache connect",
                    after: options.timeout,
                });
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                conn: SharedConnection::with_manager(client, config, conn, "cache"),
                info,
                prefix: prefix.to_owned(),
                cache_prefix: format!("{prefix}:cache:"),
                tag_prefix: format!("{prefix}:cache-tag:t:"),
                key_tags_prefix: format!("{prefix}:cache-tag:k:"),
                tag_index: format!("{prefix}:cache-tag:index"),
                lock_prefix: format!("{prefix}:lock:"),
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
        let settings = self.inner.info.redis_settings().clone().set_lib_name(
            client_lib_name(kind, &self.inner.prefix),
            env!("CARGO_PKG_VERSION"),
        );
        Ok(Client::open(
            self.inner.info.clone().set_redis_settings(settings),
        )?)
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

    fn key_tags_key(&self, key: &str) -> String {
        format!("{}{key}", self.inner.key_tags_prefix)
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
        let after = self.inner.options.timeout;
        let generation = self.inner.conn.generation();
        match tokio::time::timeout(after, call).await {
            Ok(result) => result.map_err(Error::from),
            Err(_) => {
                self.inner.conn.timed_out(generation);
                Err(Error::Timeout { operation, after })
            }
        }
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

fn expiry_from_pttl(pttl: i64) -> Expiry {
    match pttl {
        -2 => Expiry::Missing,
        p if p < 0 => Expiry::Persistent,
        p => Expiry::Expires(Duration::from_millis(p.unsigned_abs())),
    }
}

impl Store for RedisStore {
    async fn get(&self, key: &str) -> Result<Option<String>> {
        let mut conn = self.conn();
        self.run(
            "cache get",
            ::redis::cmd("GET")
                .arg(self.cache_key(key))
                .query_async(&mut conn),
        )
        .await
    }

    async fn put(&self, key: &str, value: &str, ttl: Option<Duration>) -> Result<()> {
        if let Some(announcement) = self.announcement(&[key]) {
            return self
                .put_announced(key, value, ttl, false, announcement)
                .await
                .map(drop);
        }
        let mut conn = self.conn();
        let mut cmd = ::redis::cmd("SET");
        cmd.arg(self.cache_key(key)).arg(value);
        if let Some(ttl) = ttl {
            cmd.arg("PX").arg(millis(ttl));
        }
        self.run("cache set", cmd.query_async::<()>(&mut conn))
            .await
    }

    async fn add(&self, key: &str, value: &str, ttl: Option<Duration>) -> Result<bool> {
        if let Some(announcement) = self.announcement(&[key]) {
            return self
                .put_announced(key, value, ttl, true, announcement)
                .await;
        }
        let mut conn = self.conn();
        let mut cmd = ::redis::cmd("SET");
        cmd.arg(self.cache_key(key)).arg(value).arg("NX");
        if let Some(ttl) = ttl {
            cmd.arg("PX").arg(millis(ttl));
        }
        let reply: Option<String> = self.run("cache add", cmd.query_async(&mut conn)).await?;
        Ok(reply.is_some())
    }

    async fn pull(&self, key: &str) -> Result<Option<String>> {
        self.delete(key, true).await
    }

    async fn del(&self, key: &str) -> Result<()> {
        self.delete(key, false).await.map(drop)
    }

    async fn has(&self, key: &str) -> Result<bool> {
        let mut conn = self.conn();
        self.run(
            "cache has",
            ::redis::cmd("EXISTS")
                .arg(self.cache_key(key))
                .query_async(&mut conn),
        )
        .await
    }

    async fn expiry(&self, key: &str) -> Result<Expiry> {
        let mut conn = self.conn();
        let pttl: i64 = self
            .run(
                "cache expiry",
                ::redis::cmd("PTTL")
                    .arg(self.cache_key(key))
                    .query_async(&mut conn),
            )
            .await?;
        Ok(expiry_from_pttl(pttl))
    }

    async fn increment(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64> {
        let mut conn = self.conn();
        let announcement = self.announcement(&[key]);
        let result = match (ttl, announcement) {
            (None, None) => {
                self.run(
                    "cache increment",
                    ::redis::cmd("INCRBY")
                        .arg(self.cache_key(key))
                        .arg(by)
                        .query_async(&mut conn),
                )
                .await
            }
            (ttl, announcement) => {
                let ms: i64 = match ttl {
                    None => -1,
                    Some(ttl) if ttl.is_zero() => 0,
                    Some(ttl) => i64::try_from(millis(ttl)).unwrap_or(i64::MAX),
                };
                let mut invocation = INCREMENT_EX.prepare_invoke();
                invocation.key(self.cache_key(key)).arg(by).arg(ms);
                if let Some((channel, message)) = announcement {
                    invocation.arg(channel).arg(message);
                }
                self.run("cache increment", invocation.invoke_async(&mut conn))
                    .await
            }
        };
        result.map_err(|e| match e {
            Error::Redis(e) => map_increment_error(key, e),
            other => other,
        })
    }

    async fn many(&self, keys: &[&str]) -> Result<Vec<Option<String>>> {
        let full: Vec<String> = keys.iter().map(|k| self.cache_key(k)).collect();
        let mut conn = self.conn();
        self.run(
            "cache many",
            ::redis::cmd("MGET").arg(&full).query_async(&mut conn),
        )
        .await
    }

    async fn put_many(&self, pairs: &[(&str, &str)], ttl: Option<Duration>) -> Result<()> {
        let mut conn = self.conn();
        let keys: Vec<&str> = pairs.iter().map(|(k, _)| *k).collect();
        if let Some((channel, message)) = self.announcement(&keys) {
            let mut invocation = PUT_MANY_ANNOUNCED.prepare_invoke();
            for key in &keys {
                invocation.key(self.cache_key(key));
            }
            invocation
                .arg(ttl.map_or(0, millis))
                .arg(channel)
                .arg(message);
            for (_, value) in pairs {
                invocation.arg(*value);
            }
            return self
                .run("cache put_many", invocation.invoke_async::<i64>(&mut conn))
                .await
                .map(drop);
        }
        match ttl {
            None => {
                let mut cmd = ::redis::cmd("MSET");
                for (key, value) in pairs {
                    cmd.arg(self.cache_key(key)).arg(*value);
                }
                self.run("cache put_many", cmd.query_async::<()>(&mut conn))
                    .await
            }
            Some(ttl) => {
                let mut pipe = ::redis::pipe();
                pipe.atomic();
                for (key, value) in pairs {
                    pipe.cmd("SET")
                        .arg(self.cache_key(key))
                        .arg(*value)
                        .arg("PX")
                        .arg(millis(ttl))
                        .ignore();
                }
                self.run("cache put_many", pipe.query_async::<()>(&mut conn))
                    .await
            }
        }
    }

    async fn flush_prefix(&self, prefix: &str) -> Result<()> {
        let pattern = format!(
            "{}{}*",
            glob_escape(&self.inner.cache_prefix),
            glob_escape(prefix)
        );
        let mut conn = self.conn();
        let announce = self.announce.as_deref();
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = self
                .run(
                    "cache flush_prefix",
                    ::redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(SCAN_COUNT)
                        .query_async(&mut conn),
                )
                .await?;
            for chunk in keys.chunks(FLUSH_CHUNK) {
                let mut invocation = FLUSH_BATCH.prepare_invoke();
                for key in chunk {
                    invocation.key(key.as_slice());
                }
                invocation
                    .arg(&self.inner.cache_prefix)
                    .arg(&self.inner.key_tags_prefix)
                    .arg(&self.inner.tag_prefix)
                    .arg(&self.inner.tag_index);
                if let Some(a) = announce {
                    invocation.arg(&a.channel).arg(&a.origin);
                }
                self.run(
                    "cache flush_prefix",
                    invocation.invoke_async::<i64>(&mut conn),
                )
                .await?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }

    async fn set_with_tags(
        &self,
        key: &str,
        value: &str,
        tags: &[&str],
        ttl: Option<Duration>,
    ) -> Result<()> {
        let mut conn = self.conn();
        let mut invocation = SET_WITH_TAGS.prepare_invoke();
        invocation
            .key(self.cache_key(key))
            .key(self.key_tags_key(key))
            .key(&self.inner.tag_index)
            .arg(value)
            .arg(ttl.map_or(0, millis))
            .arg(key)
            .arg(&self.inner.tag_prefix);
        match self.announcement(&[key]) {
            Some((channel, message)) => invocation.arg(channel).arg(message),
            None => invocation.arg("").arg(""),
        };
        for tag in tags {
            invocation.arg(*tag);
        }
        self.run(
            "cache set_with_tags",
            invocation.invoke_async::<i64>(&mut conn),
        )
        .await?;
        Ok(())
    }

    async fn invalidate_tags(&self, tags: &[&str]) -> Result<Vec<String>> {
        let mut conn = self.conn();
        let mut invocation = INVALIDATE_TAGS.prepare_invoke();
        invocation
            .key(&self.inner.tag_index)
            .arg(&self.inner.tag_prefix)
            .arg(&self.inner.key_tags_prefix)
            .arg(&self.inner.cache_prefix);
        match self.announce.as_deref() {
            Some(a) => invocation.arg(&a.channel).arg(&a.origin),
            None => invocation.arg("").arg(""),
        };
        for tag in tags {
            invocation.arg(*tag);
        }
        self.run("cache invalidate_tags", invocation.invoke_async(&mut conn))
            .await
    }

    async fn keys_by_tag(&self, tag: &str) -> Result<Vec<String>> {
        let mut conn = self.conn();
        let mut invocation = KEYS_BY_TAG.prepare_invoke();
        invocation
            .key(format!("{}{tag}", self.inner.tag_prefix))
            .arg(&self.inner.key_tags_prefix)
            .arg(&self.inner.cache_prefix)
            .arg(tag);
        let mut keys: Vec<String> = self
            .run("cache get_keys_by_tag", invocation.invoke_async(&mut conn))
            .await?;
        keys.sort();
        Ok(keys)
    }

    async fn tags_for_key(&self, key: &str) -> Result<Vec<String>> {
        let mut conn = self.conn();
        let (exists, mut tags): (bool, Vec<String>) = self
            .run(
                "cache get_tags_for_key",
                ::redis::pipe()
                    .cmd("EXISTS")
                    .arg(self.cache_key(key))
                    .cmd("SMEMBERS")
                    .arg(self.key_tags_key(key))
                    .query_async(&mut conn),
            )
            .await?;
        if !exists {
            return Ok(Vec::new());
        }
        tags.sort();
        Ok(tags)
    }

    async fn list_tags(&self) -> Result<Vec<String>> {
        let mut conn = self.conn();
        let mut invocation = LIST_TAGS.prepare_invoke();
        invocation
            .key(&self.inner.tag_index)
            .arg(&self.inner.tag_prefix)
            .arg(&self.inner.key_tags_prefix)
            .arg(&self.inner.cache_prefix);
        let mut tags: Vec<String> = self
            .run("cache list_tags", invocation.invoke_async(&mut conn))
            .await?;
        tags.sort();
        Ok(tags)
    }

    async fn lock_acquire(&self, name: &str, token: &str, ttl: Duration) -> Result<bool> {
        let mut conn = self.conn();
        let reply: Option<String> = self
            .run(
                "cache lock",
                ::redis::cmd("SET")
                    .arg(self.lock_key(name))
                    .arg(token)
                    .arg("NX")
                    .arg("PX")
                    .arg(millis(ttl))
                    .query_async(&mut conn),
            )
            .await?;
        Ok(reply.is_some())
    }

    async fn lock_release(&self, name: &str, token: &str) -> Result<bool> {
        let mut conn = self.conn();
        let mut invocation = LOCK_RELEASE.prepare_invoke();
        invocation.key(self.lock_key(name)).arg(token);
        let released: i64 = self
            .run("cache unlock", invocation.invoke_async(&mut conn))
            .await?;
        Ok(released == 1)
    }

    async fn claim(
        &self,
        key: &str,
        lock: &str,
        token: &str,
        lock_ttl: Duration,
        ignore: Option<&str>,
    ) -> Result<Claim> {
        let mut conn = self.conn();
        let mut invocation = CLAIM.prepare_invoke();
        invocation
            .key(self.cache_key(key))
            .key(self.lock_key(lock))
            .arg(token)
            .arg(millis(lock_ttl))
            .arg(if ignore.is_some() { "1" } else { "0" })
            .arg(ignore.unwrap_or(""));
        let (state, value): (i64, Option<String>) = self
            .run("cache remember", invocation.invoke_async(&mut conn))
            .await?;
        Ok(match (state, value) {
            (1, Some(value)) => Claim::Value(value),
            (2, _) => Claim::Acquired,
            _ => Claim::Busy,
        })
    }

    fn flight_limits(&self) -> FlightLimits {
        FlightLimits {
            lock_ttl: self.inner.options.remember_lock_ttl,
            wait: self.inner.options.remember_wait,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{client_lib_name, glob_escape};

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(glob_escape("a*b?c[d]e\\"), "a\\*b\\?c\\[d\\]e\\\\");
        assert_eq!(glob_escape("plain:key"), "plain:key");
    }

    #[test]
    fn lib_names_are_printable() {
        assert_eq!(
            client_lib_name("rustforge-cache", "app 1\n"),
            "rustforge-cache:app_1_"
        );
    }
}
