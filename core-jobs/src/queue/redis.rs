//! The Redis reliable queue.
//!
//! Every state change that touches more than one key is one Lua script, so it is atomic however
//! many workers run: a claim pops up to N jobs from `ready` and leases them in `leases` (a sorted
//! set scored by lease deadline) in one step; promotion moves due jobs from `delayed` to `ready`
//! in one step; a retry removes the lease and schedules the next attempt in one step; finishing
//! a grouped job starts the next job of its group in the same step. Scripts read the clock with
//! `TIME`, so leases and delays follow the Redis server's clock, not each worker's.
//!
//! When nothing is ready, a claimer blocks with `BLMOVE ready → processing:{worker}` on its own
//! dedicated connection, then leases what arrived with a script. A worker that dies between the
//! two leaves the job in its processing list, which any worker moves back to `ready` once the
//! dead worker's heartbeat in `workers` has expired.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client, Script};

use super::{Push, QueueStats, When};
use crate::error::{Error, Result};

/// Largest number of jobs one script call moves (keeps every script short).
const BATCH: usize = 1000;

struct Scripts {
    claim: Script,
    adopt: Script,
    enqueue: Script,
    promote: Script,
    reap: Script,
    retry: Script,
    finish: Script,
    extend: Script,
    release: Script,
    grouped_waiting: Script,
}

const NOW: &str = "local t = redis.call('TIME')\n\
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n";

fn scripts() -> Scripts {
    // Leases `items` until now + ARGV[lease]; shared by claim and adopt.
    let lease_items = "if #items == 0 then return items end\n\
        local deadline = now + tonumber(ARGV[2])\n\
        local args = {}\n\
        for i = 1, #items do args[2 * i - 1] = deadline; args[2 * i] = items[i] end\n\
        redis.call('ZADD', KEYS[LEASES], unpack(args))\n\
        return items\n";
    Scripts {
        // KEYS: ready, leases. ARGV: max, lease_ms.
        claim: Script::new(&format!(
            "local items = redis.call('LPOP', KEYS[1], ARGV[1])\n\
             if not items then return {{}} end\n{NOW}{}",
            lease_items.replace("LEASES", "2")
        )),
        // KEYS: processing, ready, leases. ARGV: max, lease_ms.
        adopt: Script::new(&format!(
            "local items = redis.call('LRANGE', KEYS[1], 0, -1)\n\
             redis.call('DEL', KEYS[1])\n\
             local want = tonumber(ARGV[1]) - #items\n\
             if want > 0 then\n\
               local more = redis.call('LPOP', KEYS[2], want)\n\
               if more then for _, v in ipairs(more) do items[#items + 1] = v end end\n\
             end\n{NOW}{}",
            lease_items.replace("LEASES", "3")
        )),
        // KEYS: ready, delayed, delayed-grouped, groups, group list, unique key.
        // ARGV: envelope, mode (now|in|at), ms, group ('' for none), id, unique ttl ms (0: none).
        enqueue: Script::new(&format!(
            "if ARGV[6] ~= '0' then\n\
               if not redis.call('SET', KEYS[6], '1', 'NX', 'PX', ARGV[6]) then return 0 end\n\
             end\n\
             local grouped = ARGV[4] ~= ''\n\
             if ARGV[2] == 'now' then\n\
               if grouped and redis.call('HSETNX', KEYS[4], ARGV[4], ARGV[5]) == 0 then\n\
                 redis.call('RPUSH', KEYS[5], ARGV[1])\n\
               else\n\
                 redis.call('RPUSH', KEYS[1], ARGV[1])\n\
               end\n\
               return 1\n\
             end\n\
             local due = tonumber(ARGV[3])\n\
             if ARGV[2] == 'in' then\n{NOW}due = now + due\nend\n\
             if grouped then redis.call('ZADD', KEYS[3], due, ARGV[1])\n\
             else redis.call('ZADD', KEYS[2], due, ARGV[1]) end\n\
             return 1\n"
        )),
        // KEYS: delayed, ready, delayed-grouped, groups. ARGV: limit, group list key prefix.
        // Returns {moved, ms until the next due job or -1}.
        promote: Script::new(&format!(
            "{NOW}\
             local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, ARGV[1])\n\
             if #due > 0 then\n\
               redis.call('ZREM', KEYS[1], unpack(due))\n\
               redis.call('RPUSH', KEYS[2], unpack(due))\n\
             end\n\
             local dueg = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, ARGV[1])\n\
             for _, v in ipairs(dueg) do\n\
               redis.call('ZREM', KEYS[3], v)\n\
               local e = cjson.decode(v)\n\
               if redis.call('HSETNX', KEYS[4], e.group, e.id) == 1 then\n\
                 redis.call('RPUSH', KEYS[2], v)\n\
               else\n\
                 redis.call('RPUSH', ARGV[2] .. e.group, v)\n\
               end\n\
             end\n\
             local nxt = -1\n\
             if #due + #dueg >= tonumber(ARGV[1]) then nxt = 0 end\n\
             for _, k in ipairs({{KEYS[1], KEYS[3]}}) do\n\
               local a = redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')\n\
               if #a > 0 then\n\
                 local d = tonumber(a[2]) - now\n\
                 if d < 0 then d = 0 end\n\
                 if nxt < 0 or d < nxt then nxt = d end\n\
               end\n\
             end\n\
             return {{#due + #dueg, nxt}}\n"
        )),
        // KEYS: leases, ready, workers. ARGV: limit, processing key prefix.
        reap: Script::new(&format!(
            "{NOW}\
             local exp = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, ARGV[1])\n\
             local n = #exp\n\
             if n > 0 then\n\
               redis.call('ZREM', KEYS[1], unpack(exp))\n\
               redis.call('LPUSH', KEYS[2], unpack(exp))\n\
             end\n\
             local dead = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 16)\n\
             for _, w in ipairs(dead) do\n\
               local k = ARGV[2] .. w\n\
               while redis.call('LMOVE', k, KEYS[2], 'RIGHT', 'LEFT') do n = n + 1 end\n\
               redis.call('ZREM', KEYS[3], w)\n\
             end\n\
             return n\n"
        )),
        // KEYS: leases, delayed. ARGV: old envelope, new envelope, delay ms.
        retry: Script::new(&format!(
            "if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end\n{NOW}\
             redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[2])\n\
             return 1\n"
        )),
        // KEYS: leases, ready, groups, group list, pending failures.
        // ARGV: envelope, group ('' for none), id, failure record ('' for none).
        finish: Script::new(
            "if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end\n\
             if ARGV[4] ~= '' then redis.call('RPUSH', KEYS[5], ARGV[4]) end\n\
             if ARGV[2] ~= '' and redis.call('HGET', KEYS[3], ARGV[2]) == ARGV[3] then\n\
               local nxt = redis.call('LPOP', KEYS[4])\n\
               if nxt then\n\
                 redis.call('HSET', KEYS[3], ARGV[2], cjson.decode(nxt).id)\n\
                 redis.call('RPUSH', KEYS[2], nxt)\n\
               else\n\
                 redis.call('HDEL', KEYS[3], ARGV[2])\n\
               end\n\
             end\n\
             return 1\n",
        ),
        // KEYS: leases, workers. ARGV: lease ms, worker, envelopes…
        extend: Script::new(&format!(
            "{NOW}local deadline = now + tonumber(ARGV[1])\n\
             redis.call('ZADD', KEYS[2], deadline, ARGV[2])\n\
             for i = 3, #ARGV do redis.call('ZADD', KEYS[1], 'XX', deadline, ARGV[i]) end\n\
             return 1\n"
        )),
        // KEYS: processing, ready, workers. ARGV: worker, ms until its entry expires.
        release: Script::new(&format!(
            "while redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT') do end\n{NOW}\
             redis.call('ZADD', KEYS[3], now + tonumber(ARGV[2]), ARGV[1])\n\
             return 1\n"
        )),
        // KEYS: groups. ARGV: group list key prefix.
        grouped_waiting: Script::new(
            "local n = 0\n\
             for _, g in ipairs(redis.call('HKEYS', KEYS[1])) do\n\
               n = n + redis.call('LLEN', ARGV[1] .. g)\n\
             end\n\
             return n\n",
        ),
    }
}

/// The keys of one queue.
struct Keys {
    ready: String,
    leases: String,
    delayed: String,
    delayed_grouped: String,
    groups: String,
    group_prefix: String,
    processing_prefix: String,
    workers: String,
    unique_prefix: String,
    pending: String,
    pending_lock: String,
}

impl Keys {
    fn new(prefix: &str, queue: &str) -> Self {
        let base = format!("{prefix}:queue:{queue}");
        Self {
            ready: format!("{base}:ready"),
            leases: format!("{base}:leases"),
            delayed: format!("{base}:delayed"),
            delayed_grouped: format!("{base}:delayed-grouped"),
            groups: format!("{base}:groups"),
            group_prefix: format!("{base}:group:"),
            processing_prefix: format!("{base}:processing:"),
            workers: format!("{base}:workers"),
            unique_prefix: format!("{base}:unique:"),
            pending: format!("{base}:failed-pending"),
            pending_lock: format!("{base}:failed-pending-lock"),
        }
    }
}

#[derive(Clone)]
pub(crate) struct RedisDriver {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    manager: ConnectionManager,
    prefix: String,
    scripts: Scripts,
    keys: Mutex<HashMap<String, Arc<Keys>>>,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 4)
}

impl RedisDriver {
    pub(crate) async fn connect(url: &str, prefix: String) -> Result<Self> {
        let client = Client::open(url).map_err(|e| Error::Config(format!("redis URL: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(Duration::from_secs(10)))
            .set_connection_timeout(Some(Duration::from_secs(5)));
        let manager = client.get_connection_manager_with_config(config).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                manager,
                prefix,
                scripts: scripts(),
                keys: Mutex::new(HashMap::new()),
            }),
        })
    }

    fn keys(&self, queue: &str) -> Arc<Keys> {
        let mut map = self.inner.keys.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(k) = map.get(queue) {
            return k.clone();
        }
        let k = Arc::new(Keys::new(&self.inner.prefix, queue));
        map.insert(queue.to_owned(), k.clone());
        k
    }

    fn conn(&self) -> ConnectionManager {
        self.inner.manager.clone()
    }

    pub(crate) async fn push(&self, queue: &str, push: Push) -> Result<bool> {
        let k = self.keys(queue);
        let mut conn = self.conn();
        if push.group.is_none() && push.unique.is_none() && push.when == When::Now {
            redis::cmd("RPUSH")
                .arg(&k.ready)
                .arg(&push.env)
                .exec_async(&mut conn)
                .await?;
            return Ok(true);
        }
        let group = push.group.as_deref().unwrap_or("");
        let (mode, at) = match push.when {
            When::Now => ("now", 0i64),
            When::In(d) => ("in", ms(d) as i64),
            When::At(t) => ("at", t),
        };
        let (unique_key, unique_ttl) = match &push.unique {
            Some((key, ttl)) => (format!("{}{key}", k.unique_prefix), ms(*ttl).max(1)),
            None => (format!("{}-", k.unique_prefix), 0),
        };
        let done: i64 = self
            .inner
            .scripts
            .enqueue
            .key(&k.ready)
            .key(&k.delayed)
            .key(&k.delayed_grouped)
            .key(&k.groups)
            .key(format!("{}{group}", k.group_prefix))
            .key(unique_key)
            .arg(&push.env)
            .arg(mode)
            .arg(at)
            .arg(group)
            .arg(&push.id)
            .arg(unique_ttl)
            .invoke_async(&mut conn)
            .await?;
        Ok(done == 1)
    }

    pub(crate) async fn push_many(&self, queue: &str, envs: Vec<String>) -> Result<()> {
        let k = self.keys(queue);
        let mut conn = self.conn();
        for chunk in envs.chunks(BATCH) {
            redis::cmd("RPUSH")
                .arg(&k.ready)
                .arg(chunk)
                .exec_async(&mut conn)
                .await?;
        }
        Ok(())
    }

    pub(crate) async fn claimer(
        &self,
        queue: &str,
        worker: &str,
        lease: Duration,
    ) -> Result<RedisClaimer> {
        // Register the worker's heartbeat before its first blocking claim, so that a job left in
        // its processing list is recovered if it dies.
        self.extend(queue, worker, &[], lease).await?;
        let k = self.keys(queue);
        Ok(RedisClaimer {
            driver: self.clone(),
            processing: format!("{}{worker}", k.processing_prefix),
            keys: k,
            blocking: None,
            worker: worker.to_owned(),
            queue: queue.to_owned(),
        })
    }

    pub(crate) async fn ack(&self, queue: &str, envs: &[Arc<str>]) -> Result<()> {
        let k = self.keys(queue);
        let mut conn = self.conn();
        for chunk in envs.chunks(BATCH) {
            let mut cmd = redis::cmd("ZREM");
            cmd.arg(&k.leases);
            for env in chunk {
                cmd.arg(env.as_bytes());
            }
            cmd.exec_async(&mut conn).await?;
        }
        Ok(())
    }

    pub(crate) async fn finish(
        &self,
        queue: &str,
        env: &Arc<str>,
        group: Option<(&str, &str)>,
        record: Option<&str>,
    ) -> Result<bool> {
        let k = self.keys(queue);
        let mut conn = self.conn();
        let (g, id) = group.unwrap_or(("", ""));
        let done: i64 = self
            .inner
            .scripts
            .finish
            .key(&k.leases)
            .key(&k.ready)
            .key(&k.groups)
            .key(format!("{}{g}", k.group_prefix))
            .key(&k.pending)
            .arg(env.as_bytes())
            .arg(g)
            .arg(id)
            .arg(record.unwrap_or(""))
            .invoke_async(&mut conn)
            .await?;
        Ok(done == 1)
    }

    pub(crate) async fn retry(
        &self,
        queue: &str,
        old: &Arc<str>,
        new: String,
        delay: Duration,
    ) -> Result<bool> {
        let k = self.keys(queue);
        let mut conn = self.conn();
        let done: i64 = self
            .inner
            .scripts
            .retry
            .key(&k.leases)
            .key(&k.delayed)
            .arg(old.as_bytes())
            .arg(new)
            .arg(ms(delay))
            .invoke_async(&mut conn)
            .await?;
        Ok(done == 1)
    }

    pub(crate) async fn extend(
        &self,
        queue: &str,
        worker: &str,
        envs: &[Arc<str>],
        lease: Duration,
    ) -> Result<()> {
        let k = self.keys(queue);
        let mut conn = self.conn();
        let mut first = true;
        for chunk in envs.chunks(BATCH) {
            let mut inv = self.inner.scripts.extend.prepare_invoke();
            inv.key(&k.leases)
                .key(&k.workers)
                .arg(ms(lease))
                .arg(worker);
            for env in chunk {
                inv.arg(env.as_bytes());
            }
            let _: i64 = inv.invoke_async(&mut conn).await?;
            first = false;
        }
        if first {
            let _: i64 = self
                .inner
                .scripts
                .extend
                .key(&k.leases)
                .key(&k.workers)
                .arg(ms(lease))
                .arg(worker)
                .invoke_async(&mut conn)
                .await?;
        }
        Ok(())
    }

    pub(crate) async fn promote(&self, queue: &str) -> Result<Option<Duration>> {
        let k = self.keys(queue);
        let mut conn = self.conn();
        let (_moved, next): (i64, i64) = self
            .inner
            .scripts
            .promote
            .key(&k.delayed)
            .key(&k.ready)
            .key(&k.delayed_grouped)
            .key(&k.groups)
            .arg(BATCH)
            .arg(&k.group_prefix)
            .invoke_async(&mut conn)
            .await?;
        Ok((next >= 0).then(|| Duration::from_millis(next as u64)))
    }

    pub(crate) async fn reap(&self, queue: &str) -> Result<u64> {
        let k = self.keys(queue);
        let mut conn = self.conn();
        let n: u64 = self
            .inner
            .scripts
            .reap
            .key(&k.leases)
            .key(&k.ready)
            .key(&k.workers)
            .arg(BATCH)
            .arg(&k.processing_prefix)
            .invoke_async(&mut conn)
            .await?;
        Ok(n)
    }

    pub(crate) async fn lock_pending(&self, queue: &str, ttl: Duration) -> Result<bool> {
        let k = self.keys(queue);
        let mut conn = self.conn();
        let set: Option<String> = redis::cmd("SET")
            .arg(&k.pending_lock)
            .arg("1")
            .arg("NX")
            .arg("PX")
            .arg(ms(ttl).max(1))
            .query_async(&mut conn)
            .await?;
        Ok(set.is_some())
    }

    pub(crate) async fn unlock_pending(&self, queue: &str) -> Result<()> {
        let k = self.keys(queue);
        let mut conn = self.conn();
        redis::cmd("DEL")
            .arg(&k.pending_lock)
            .exec_async(&mut conn)
            .await?;
        Ok(())
    }

    pub(crate) async fn pending_failures(&self, queue: &str, max: usize) -> Result<Vec<String>> {
        let k = self.keys(queue);
        let mut conn = self.conn();
        let stop = max.max(1) as i64 - 1;
        Ok(redis::cmd("LRANGE")
            .arg(&k.pending)
            .arg(0)
            .arg(stop)
            .query_async(&mut conn)
            .await?)
    }

    pub(crate) async fn remove_pending(&self, queue: &str, record: &str) -> Result<()> {
        let k = self.keys(queue);
        let mut conn = self.conn();
        redis::cmd("LREM")
            .arg(&k.pending)
            .arg(1)
            .arg(record)
            .exec_async(&mut conn)
            .await?;
        Ok(())
    }

    pub(crate) async fn release_worker(&self, queue: &str, worker: &str) -> Result<()> {
        let k = self.keys(queue);
        let mut conn = self.conn();
        let _: i64 = self
            .inner
            .scripts
            .release
            .key(format!("{}{worker}", k.processing_prefix))
            .key(&k.ready)
            .key(&k.workers)
            .arg(worker)
            .arg(3000)
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }

    pub(crate) async fn stats(&self, queue: &str) -> Result<QueueStats> {
        let k = self.keys(queue);
        let mut conn = self.conn();
        let (ready, delayed, delayed_grouped, in_flight, pending): (u64, u64, u64, u64, u64) =
            redis::pipe()
                .cmd("LLEN")
                .arg(&k.ready)
                .cmd("ZCARD")
                .arg(&k.delayed)
                .cmd("ZCARD")
                .arg(&k.delayed_grouped)
                .cmd("ZCARD")
                .arg(&k.leases)
                .cmd("LLEN")
                .arg(&k.pending)
                .query_async(&mut conn)
                .await?;
        let grouped_waiting: u64 = self
            .inner
            .scripts
            .grouped_waiting
            .key(&k.groups)
            .arg(&k.group_prefix)
            .invoke_async(&mut conn)
            .await?;
        Ok(QueueStats {
            ready,
            delayed: delayed + delayed_grouped,
            in_flight,
            grouped_waiting,
            pending_failures: pending,
        })
    }
}

/// Claims from one queue for one worker: scripts on the shared connection while jobs are
/// ready; a blocking `BLMOVE` on its own dedicated connection while none are.
pub(crate) struct RedisClaimer {
    driver: RedisDriver,
    keys: Arc<Keys>,
    processing: String,
    blocking: Option<MultiplexedConnection>,
    worker: String,
    queue: String,
}

impl RedisClaimer {
    async fn lease_batch(
        &self,
        script: &Script,
        first_key: &str,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Arc<str>>> {
        let mut conn = self.driver.conn();
        let mut inv = script.prepare_invoke();
        inv.key(first_key);
        if first_key == self.processing {
            inv.key(&self.keys.ready);
        }
        inv.key(&self.keys.leases).arg(max).arg(ms(lease));
        let items: Vec<String> = inv.invoke_async(&mut conn).await?;
        Ok(items.into_iter().map(Arc::from).collect())
    }

    pub(crate) async fn claim(
        &mut self,
        max: usize,
        lease: Duration,
        wait: Duration,
    ) -> Result<Vec<Arc<str>>> {
        let max = max.clamp(1, BATCH);
        let scripts = &self.driver.inner.scripts;
        let ready = self.keys.ready.clone();
        let items = self.lease_batch(&scripts.claim, &ready, max, lease).await?;
        if !items.is_empty() || wait.is_zero() {
            return Ok(items);
        }
        if self.blocking.is_none() {
            let config = AsyncConnectionConfig::new()
                .set_response_timeout(None)
                .set_connection_timeout(Some(Duration::from_secs(5)));
            let conn = self
                .driver
                .inner
                .client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            self.blocking = Some(conn);
        }
        let conn = self.blocking.as_mut().expect("just connected");
        let secs = wait.as_secs_f64().max(0.01);
        let moved: redis::RedisResult<Option<String>> = redis::cmd("BLMOVE")
            .arg(&self.keys.ready)
            .arg(&self.processing)
            .arg("LEFT")
            .arg("RIGHT")
            .arg(format!("{secs:.3}"))
            .query_async(conn)
            .await;
        match moved {
            Ok(None) => Ok(Vec::new()),
            Ok(Some(_)) => {
                let processing = self.processing.clone();
                self.lease_batch(&scripts.adopt, &processing, max, lease)
                    .await
            }
            Err(e) => {
                self.blocking = None;
                Err(e.into())
            }
        }
    }

    /// Puts back anything left in this worker's processing list (called at shutdown).
    pub(crate) async fn release(&mut self) -> Result<()> {
        self.blocking = None;
        self.driver.release_worker(&self.queue, &self.worker).await
    }
}
