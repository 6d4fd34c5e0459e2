//! The Redis driver's [`Store`] operations: one command, pipeline or script per call.

use std::time::Duration;

use ::redis::{RedisError, Value};

use super::scripts::{
    CLAIM, FENCE, FILL, FLUSH_BATCH, INCREMENT_EX, INVALIDATE_TAGS, KEYS_BY_TAG, LIST_TAGS,
    LOCK_RELEASE, PUT_MANY_ANNOUNCED, SET_WITH_TAGS,
};
use super::{RedisStore, expiry_from_pttl, glob_escape, millis};
use crate::infra::cache::store::{Claim, Fence, Fill, FlightLimits, GENERATION_TTL, Store};
use crate::infra::cache::{Expiry, memory};
use crate::{Error, Result};

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

/// One element of a script's array reply, converted.
fn from_reply<T: ::redis::FromRedisValue>(value: Option<Value>) -> Result<T> {
    ::redis::from_redis_value(value.unwrap_or(Value::Nil))
        .map_err(|e| Error::Redis(RedisError::from(e)))
}

/// A script answered in a shape it never answers in.
fn unexpected(operation: &str) -> Error {
    Error::Other(anyhow::anyhow!("{operation}: unexpected reply from Redis"))
}

const SCAN_COUNT: usize = 1000;
const FLUSH_CHUNK: usize = 256;

impl Store for RedisStore {
    async fn get(&self, key: &str) -> Result<Option<String>> {
        let mut conn = self.conn();
        let mut cmd = ::redis::cmd("GET");
        cmd.arg(self.cache_key_arg(key));
        self.run("cache get", conn.query(&cmd)).await
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
        cmd.arg(self.cache_key_arg(key)).arg(value);
        if let Some(ttl) = ttl {
            cmd.arg("PX").arg(millis(ttl));
        }
        self.run("cache set", conn.query::<()>(&cmd)).await
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
            .key(&self.inner.gen_counter)
            .arg(&self.inner.tag_prefix)
            .arg(&self.inner.key_tags_prefix)
            .arg(&self.inner.cache_prefix);
        match self.announce.as_deref() {
            Some(a) => invocation.arg(&a.channel).arg(&a.origin),
            None => invocation.arg("").arg(""),
        };
        invocation.arg(&self.inner.gen_tag_prefix);
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
        tags: &[&str],
    ) -> Result<Claim> {
        let mut conn = self.conn();
        let mut invocation = CLAIM.prepare_invoke();
        invocation
            .key(self.cache_key(key))
            .key(self.lock_key(lock))
            .key(&self.inner.gen_counter)
            .key(self.gen_key_key(key));
        for tag in tags {
            invocation.key(self.gen_tag_key(tag));
        }
        invocation
            .arg(token)
            .arg(millis(lock_ttl))
            .arg(if ignore.is_some() { "1" } else { "0" })
            .arg(ignore.unwrap_or(""))
            .arg(millis(GENERATION_TTL));
        let reply: Vec<Value> = self
            .run("cache remember", invocation.invoke_async(&mut conn))
            .await?;
        let mut reply = reply.into_iter();
        let state: i64 = from_reply(reply.next())?;
        let seen: Option<String> = from_reply(reply.next())?;
        if state == 1 {
            return match seen {
                Some(value) => Ok(Claim::Value(value)),
                None => Err(unexpected("cache remember")),
            };
        }
        let generations = reply
            .map(|g| from_reply(Some(g)))
            .collect::<Result<Vec<u64>>>()?;
        let fence = Fence { generations, seen };
        Ok(if state == 2 {
            Claim::Acquired(fence)
        } else {
            Claim::Busy(fence)
        })
    }

    async fn fence(&self, key: &str, tags: &[&str]) -> Result<Fence> {
        let mut conn = self.conn();
        let mut invocation = FENCE.prepare_invoke();
        invocation
            .key(self.cache_key(key))
            .key(&self.inner.gen_counter)
            .key(self.gen_key_key(key));
        for tag in tags {
            invocation.key(self.gen_tag_key(tag));
        }
        invocation.arg(millis(GENERATION_TTL));
        let reply: Vec<Value> = self
            .run("cache fence", invocation.invoke_async(&mut conn))
            .await?;
        let mut reply = reply.into_iter();
        let seen: Option<String> = from_reply(reply.next())?;
        let generations = reply
            .map(|g| from_reply(Some(g)))
            .collect::<Result<Vec<u64>>>()?;
        Ok(Fence { generations, seen })
    }

    async fn fill(
        &self,
        key: &str,
        value: &str,
        fill: Fill<'_>,
        ttl: Option<Duration>,
        fence: &Fence,
    ) -> Result<bool> {
        let (mode, tags, stamp_key, stamp): (&str, &[&str], Option<&str>, &str) = match fill {
            Fill::Put => ("p", &[], None, ""),
            Fill::Tagged(tags) => ("t", tags, None, ""),
            Fill::Flexible { stamp_key, stamp } => ("f", &[], Some(stamp_key), stamp),
        };
        if fence.generations.len() != 1 + tags.len() {
            return Err(Error::Config(
                "cache: a fill was given a fence taken for other tags".to_owned(),
            ));
        }
        let mut conn = self.conn();
        let mut invocation = FILL.prepare_invoke();
        invocation
            .key(self.cache_key(key))
            .key(self.key_tags_key(key))
            .key(&self.inner.tag_index)
            .key(self.cache_key(stamp_key.unwrap_or(key)))
            .key(self.gen_key_key(key));
        for tag in tags {
            invocation.key(self.gen_tag_key(tag));
        }
        invocation
            .arg(value)
            .arg(ttl.map_or(0, millis))
            .arg(key)
            .arg(&self.inner.tag_prefix);
        let announced = match stamp_key {
            Some(stamp_key) => self.announcement(&[key, stamp_key]),
            None => self.announcement(&[key]),
        };
        match announced {
            Some((channel, message)) => invocation.arg(channel).arg(message),
            None => invocation.arg("").arg(""),
        };
        invocation
            .arg(mode)
            .arg(if fence.seen.is_some() { "1" } else { "0" })
            .arg(fence.seen.as_deref().unwrap_or(""))
            .arg(stamp);
        for generation in &fence.generations {
            invocation.arg(*generation);
        }
        for tag in tags {
            invocation.arg(*tag);
        }
        let stored: i64 = self
            .run("cache remember", invocation.invoke_async(&mut conn))
            .await?;
        Ok(stored == 1)
    }

    fn flight_limits(&self) -> FlightLimits {
        FlightLimits {
            lock_ttl: self.inner.options.remember_lock_ttl,
            wait: self.inner.options.remember_wait,
        }
    }
}
