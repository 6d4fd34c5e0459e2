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
//! dead worker's heartbeat in `workers` has expired. A live worker whose claim got no reply
//! (the blocking connection times out after its wait plus a margin) takes over, at its next
//! claim, what its processing list holds and what its lost claim leased (`claimed:{worker}`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use core_db::infra::redis_connection::{SharedConn, SharedConnection};
use redis::aio::{ConnectionManagerConfig, MultiplexedConnection};
use redis::io::tcp::{TcpSettings, socket2};
use redis::{AsyncConnectionConfig, Client, IntoConnectionInfo, Script};

use super::{Push, QueueStats, When};
use crate::error::{Error, Result};

/// Largest number of jobs one script call moves (keeps every script short).
const BATCH: usize = 1000;

struct Scripts {
    claim: Script,
    enqueue: Script,
    promote: Script,
    reap: Script,
    retry: Script,
    finish: Script,
    extend: Script,
    release: Script,
}

const NOW: &str = "local t = redis.call('TIME')\n\
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n";

/// Lua helpers for the entries of `group:{id}` lists and of `delayed-grouped`: an entry is
/// `"{#id}:{id}{#group}:{group}{envelope}"`, so that a script reads a grouped job's id and group
/// without decoding its JSON (a script's earlier writes stay applied when a later call fails, so
/// a decode error half-way would lose the job). Entries written before this format are bare
/// envelopes: `parse` decodes those under `pcall` and returns no id when it cannot, and the
/// caller then releases the job to `ready` on its own rather than lose it or block its group.
const ENTRY: &str = "local function entry(id, group, env)\n\
  return #id .. ':' .. id .. #group .. ':' .. group .. env\n\
end\n\
local function parse(v)\n\
  local il, i = string.match(v, '^(%d+):()')\n\
  if il then\n\
    local id = string.sub(v, i, i + tonumber(il) - 1)\n\
    local gl, j = string.match(v, '^(%d+):()', i + tonumber(il))\n\
    if gl then\n\
      return id, string.sub(v, j, j + tonumber(gl) - 1), string.sub(v, j + tonumber(gl))\n\
    end\n\
  end\n\
  local ok, e = pcall(cjson.decode, v)\n\
  if ok and type(e) == 'table' and type(e.id) == 'string' and type(e.group) == 'string' then\n\
    return e.id, e.group, v\n\
  end\n\
  return nil, nil, v\n\
end\n\
local function dec(k)\n\
  if redis.call('DECR', k) < 0 then redis.call('SET', k, 0) end\n\
end\n";

fn scripts() -> Scripts {
    Scripts {
        // KEYS: processing, ready, leases, claimed. ARGV: max, lease_ms, token, lost tokens…
        // Leases up to `max` jobs: first those of the last claim of this worker that ran, if its
        // token is among the lost ones (its reply never came), that are still leased, then what this worker's processing list
        // holds (what a blocking claim just moved, or one whose reply was lost left behind), then
        // ready jobs. `claimed` keeps `token` and the envelopes leased, for the next claim to
        // take over should this reply be lost too.
        // Returns {jobs taken over from a lost claim or the processing list, the envelopes}.
        claim: Script::new(&format!(
            "local max = tonumber(ARGV[1])\n\
             local items = {{}}\n\
             local relet = 0\n\
             local head = redis.call('LINDEX', KEYS[4], 0)\n\
             local lost = false\n\
             for i = 4, #ARGV do if ARGV[i] == head then lost = true end end\n\
             if lost then\n\
               for _, v in ipairs(redis.call('LRANGE', KEYS[4], 1, -1)) do\n\
                 if redis.call('ZSCORE', KEYS[3], v) then\n\
                   if #items < max then items[#items + 1] = v\n\
                   else redis.call('ZREM', KEYS[3], v); redis.call('LPUSH', KEYS[2], v) end\n\
                 end\n\
               end\n\
               relet = #items\n\
             end\n\
             redis.call('DEL', KEYS[4])\n\
             if #items < max then\n\
               local moved = redis.call('LPOP', KEYS[1], max - #items)\n\
               if moved then for _, v in ipairs(moved) do items[#items + 1] = v end end\n\
             end\n\
             local adopted = #items\n\
             if #items < max then\n\
               local more = redis.call('LPOP', KEYS[2], max - #items)\n\
               if more then for _, v in ipairs(more) do items[#items + 1] = v end end\n\
             end\n\
             if #items == 0 then return {{0, items}} end\n{NOW}\
             local deadline = now + tonumber(ARGV[2])\n\
             local args = {{}}\n\
             for i = 1, #items do args[2 * i - 1] = deadline; args[2 * i] = items[i] end\n\
             redis.call('ZADD', KEYS[3], unpack(args))\n\
             redis.call('RPUSH', KEYS[4], ARGV[3], unpack(items))\n\
             return {{adopted, items}}\n"
        )),
        // KEYS: ready, delayed, delayed-grouped, groups, group list, unique key, grouped-waiting.
        // ARGV: envelope, mode (now|in|at), ms, group ('' for none), id, unique ttl ms (0: none).
        enqueue: Script::new(&format!(
            "{ENTRY}if ARGV[6] ~= '0' then\n\
               if not redis.call('SET', KEYS[6], '1', 'NX', 'PX', ARGV[6]) then return 0 end\n\
             end\n\
             local grouped = ARGV[4] ~= ''\n\
             if ARGV[2] == 'now' then\n\
               if grouped and redis.call('HSETNX', KEYS[4], ARGV[4], ARGV[5]) == 0 then\n\
                 redis.call('RPUSH', KEYS[5], entry(ARGV[5], ARGV[4], ARGV[1]))\n\
                 redis.call('INCR', KEYS[7])\n\
               else\n\
                 redis.call('RPUSH', KEYS[1], ARGV[1])\n\
               end\n\
               return 1\n\
             end\n\
             local due = tonumber(ARGV[3])\n\
             if ARGV[2] == 'in' then\n{NOW}due = now + due\nend\n\
             if grouped then redis.call('ZADD', KEYS[3], due, entry(ARGV[5], ARGV[4], ARGV[1]))\n\
             else redis.call('ZADD', KEYS[2], due, ARGV[1]) end\n\
             return 1\n"
        )),
        // KEYS: delayed, ready, delayed-grouped, groups, grouped-waiting.
        // ARGV: limit, group list key prefix.
        // Returns {moved, ms until the next due job or -1, grouped entries whose id or group
        // could not be read (released to ready on their own)}.
        promote: Script::new(&format!(
            "{ENTRY}{NOW}\
             local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, ARGV[1])\n\
             if #due > 0 then\n\
               redis.call('ZREM', KEYS[1], unpack(due))\n\
               redis.call('RPUSH', KEYS[2], unpack(due))\n\
             end\n\
             local dueg = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, ARGV[1])\n\
             local released = 0\n\
             for _, v in ipairs(dueg) do\n\
               redis.call('ZREM', KEYS[3], v)\n\
               local id, group, env = parse(v)\n\
               if not id then\n\
                 released = released + 1\n\
                 redis.call('RPUSH', KEYS[2], env)\n\
               elseif redis.call('HSETNX', KEYS[4], group, id) == 1 then\n\
                 redis.call('RPUSH', KEYS[2], env)\n\
               else\n\
                 redis.call('RPUSH', ARGV[2] .. group, entry(id, group, env))\n\
                 redis.call('INCR', KEYS[5])\n\
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
             return {{#due + #dueg, nxt, released}}\n"
        )),
        // KEYS: leases, ready, workers. ARGV: limit, processing key prefix, claimed key prefix.
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
               redis.call('DEL', ARGV[3] .. w)\n\
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
        // KEYS: leases, ready, groups, group list, pending failures, grouped-waiting.
        // ARGV: envelope, group ('' for none), id, failure record ('' for none).
        // Returns {1 (0: the lease was gone), entries of the group list whose id could not be
        // read (released to ready on their own)}.
        finish: Script::new(&format!(
            "{ENTRY}if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return {{0, 0}} end\n\
             if ARGV[4] ~= '' then redis.call('RPUSH', KEYS[5], ARGV[4]) end\n\
             local released = 0\n\
             if ARGV[2] ~= '' and redis.call('HGET', KEYS[3], ARGV[2]) == ARGV[3] then\n\
               local started = false\n\
               while not started do\n\
                 local nxt = redis.call('LPOP', KEYS[4])\n\
                 if not nxt then break end\n\
                 dec(KEYS[6])\n\
                 local id, _, env = parse(nxt)\n\
                 if id then\n\
                   redis.call('HSET', KEYS[3], ARGV[2], id)\n\
                   started = true\n\
                 else\n\
                   released = released + 1\n\
                 end\n\
                 redis.call('RPUSH', KEYS[2], env)\n\
               end\n\
               if not started then redis.call('HDEL', KEYS[3], ARGV[2]) end\n\
             end\n\
             return {{1, released}}\n"
        )),
        // KEYS: leases, workers. ARGV: lease ms, worker, envelopes…
        // Returns the 1-based positions (among the envelopes) of those no longer leased: a
        // `ZADD XX` of a missing member changes nothing, so each is checked with `ZSCORE`.
        extend: Script::new(&format!(
            "{NOW}local deadline = now + tonumber(ARGV[1])\n\
             redis.call('ZADD', KEYS[2], deadline, ARGV[2])\n\
             local lost = {{}}\n\
             for i = 3, #ARGV do\n\
               if redis.call('ZSCORE', KEYS[1], ARGV[i]) then\n\
                 redis.call('ZADD', KEYS[1], 'XX', deadline, ARGV[i])\n\
               else\n\
                 lost[#lost + 1] = i - 2\n\
               end\n\
             end\n\
             return lost\n"
        )),
        // KEYS: processing, ready, workers, claimed, leases.
        // ARGV: worker, ms until its entry expires, lost claim tokens…
        // Puts back the processing list and the jobs of a claim whose reply never came.
        release: Script::new(&format!(
            "while redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT') do end\n\
             local head = redis.call('LINDEX', KEYS[4], 0)\n\
             local lost = false\n\
             for i = 3, #ARGV do if ARGV[i] == head then lost = true end end\n\
             if lost then\n\
               for _, v in ipairs(redis.call('LRANGE', KEYS[4], 1, -1)) do\n\
                 if redis.call('ZREM', KEYS[5], v) == 1 then redis.call('LPUSH', KEYS[2], v) end\n\
               end\n\
             end\n\
             redis.call('DEL', KEYS[4])\n{NOW}\
             redis.call('ZADD', KEYS[3], now + tonumber(ARGV[2]), ARGV[1])\n\
             return 1\n"
        )),
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
    grouped_waiting: String,
    processing_prefix: String,
    claimed_prefix: String,
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
            grouped_waiting: format!("{base}:grouped-waiting"),
            processing_prefix: format!("{base}:processing:"),
            claimed_prefix: format!("{base}:claimed:"),
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
    shared: Arc<SharedConnection>,
    prefix: String,
    scripts: Scripts,
    keys: Mutex<HashMap<String, Arc<Keys>>>,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 4)
}

/// How many unanswered claims in a row a claimer remembers (the oldest is forgotten: its jobs,
/// if any, come back when their leases expire).
const MAX_UNCONFIRMED: usize = 8;

/// How much longer than its wait a blocking claim may take to answer before its connection is
/// given up for lost (and the claim's job, if it moved one, is adopted by the next claim).
const BLOCK_MARGIN: Duration = Duration::from_secs(2);

/// The client's TCP settings: keepalive probes (and on Linux `TCP_USER_TIMEOUT`), so that a
/// peer that vanished is noticed on an idle or blocked connection too.
fn tcp_settings(base: &TcpSettings) -> TcpSettings {
    let keepalive = socket2::TcpKeepalive::new().with_time(Duration::from_secs(15));
    #[cfg(any(target_os = "linux", target_os = "macos", target_os = "windows"))]
    let keepalive = keepalive.with_interval(Duration::from_secs(5));
    let settings = base.clone().set_nodelay(true).set_keepalive(keepalive);
    #[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
    let settings = settings.set_user_timeout(Duration::from_secs(30));
    settings
}

impl RedisDriver {
    pub(crate) async fn connect(url: &str, prefix: String) -> Result<Self> {
        let info = url
            .into_connection_info()
            .map_err(|e| Error::Config(format!("redis URL: {e}")))?;
        let tcp = tcp_settings(info.tcp_settings());
        let client = Client::open(info.set_tcp_settings(tcp))
            .map_err(|e| Error::Config(format!("redis URL: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(Duration::from_secs(10)))
            .set_connection_timeout(Some(Duration::from_secs(5)));
        let shared = SharedConnection::connect(client.clone(), config, "job queue").await?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                shared,
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

    fn conn(&self) -> SharedConn {
        self.inner.shared.get()
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
            .key(&k.grouped_waiting)
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
            claimed: format!("{}{worker}", k.claimed_prefix),
            keys: k,
            unconfirmed: Vec::new(),
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
        let (done, released): (i64, u64) = self
            .inner
            .scripts
            .finish
            .key(&k.leases)
            .key(&k.ready)
            .key(&k.groups)
            .key(format!("{}{g}", k.group_prefix))
            .key(&k.pending)
            .key(&k.grouped_waiting)
            .arg(env.as_bytes())
            .arg(g)
            .arg(id)
            .arg(record.unwrap_or(""))
            .invoke_async(&mut conn)
            .await?;
        if released > 0 {
            tracing::warn!(
                queue,
                group = g,
                jobs = released,
                "grouped jobs whose entry could not be read were released to run on their own"
            );
        }
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

    /// Extends the leases of `envs` (and `worker`'s heartbeat); returns the envelopes among
    /// them that are no longer leased (recovered after their lease expired, or finished).
    pub(crate) async fn extend(
        &self,
        queue: &str,
        worker: &str,
        envs: &[Arc<str>],
        lease: Duration,
    ) -> Result<Vec<Arc<str>>> {
        let k = self.keys(queue);
        let mut conn = self.conn();
        let mut lost = Vec::new();
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
            let gone: Vec<usize> = inv.invoke_async(&mut conn).await?;
            lost.extend(
                gone.into_iter()
                    .filter_map(|i| chunk.get(i.wrapping_sub(1)).cloned()),
            );
            first = false;
        }
        if first {
            let _: Vec<usize> = self
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
        Ok(lost)
    }

    pub(crate) async fn promote(&self, queue: &str) -> Result<Option<Duration>> {
        let k = self.keys(queue);
        let mut conn = self.conn();
        let (_moved, next, released): (i64, i64, u64) = self
            .inner
            .scripts
            .promote
            .key(&k.delayed)
            .key(&k.ready)
            .key(&k.delayed_grouped)
            .key(&k.groups)
            .key(&k.grouped_waiting)
            .arg(BATCH)
            .arg(&k.group_prefix)
            .invoke_async(&mut conn)
            .await?;
        if released > 0 {
            tracing::warn!(
                queue,
                jobs = released,
                "delayed grouped jobs whose entry could not be read were released to run on their own"
            );
        }
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
            .arg(&k.claimed_prefix)
            .invoke_async(&mut conn)
            .await?;
        Ok(n)
    }

    /// Takes the pending-failures lock of `queue` for `ttl` with a fresh random token; returns
    /// the token, or `None` when another worker holds the lock.
    pub(crate) async fn lock_pending(&self, queue: &str, ttl: Duration) -> Result<Option<String>> {
        let k = self.keys(queue);
        let mut conn = self.conn();
        let token = uuid::Uuid::new_v4().simple().to_string();
        let set: Option<String> = redis::cmd("SET")
            .arg(&k.pending_lock)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(ms(ttl).max(1))
            .query_async(&mut conn)
            .await?;
        Ok(set.map(|_| token))
    }

    /// Releases the pending-failures lock of `queue` if it is still held with `token` (a
    /// compare-and-delete: a lock that expired and was taken by another worker stays).
    pub(crate) async fn unlock_pending(&self, queue: &str, token: &str) -> Result<()> {
        let k = self.keys(queue);
        let mut conn = self.conn();
        let _: i64 = Script::new(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end\n\
             return 0\n",
        )
        .key(&k.pending_lock)
        .arg(token)
        .invoke_async(&mut conn)
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

    /// Puts back `worker`'s processing list, and the jobs still leased by whichever of its claims
    /// `lost` (whose replies never came) ran last.
    pub(crate) async fn release_worker(
        &self,
        queue: &str,
        worker: &str,
        lost: &[String],
    ) -> Result<()> {
        let k = self.keys(queue);
        let mut conn = self.conn();
        let mut inv = self.inner.scripts.release.prepare_invoke();
        inv.key(format!("{}{worker}", k.processing_prefix))
            .key(&k.ready)
            .key(&k.workers)
            .key(format!("{}{worker}", k.claimed_prefix))
            .key(&k.leases)
            .arg(worker)
            .arg(3000);
        for token in lost {
            inv.arg(token);
        }
        let _: i64 = inv.invoke_async(&mut conn).await?;
        Ok(())
    }

    pub(crate) async fn stats(&self, queue: &str) -> Result<QueueStats> {
        let k = self.keys(queue);
        let mut conn = self.conn();
        // All O(1): `grouped-waiting` is a counter kept by the enqueue, promote and finish
        // scripts (a negative value, left by entries written before the counter, reads as 0).
        let (ready, delayed, delayed_grouped, in_flight, pending, grouped_waiting): (
            u64,
            u64,
            u64,
            u64,
            u64,
            Option<i64>,
        ) = redis::pipe()
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
            .cmd("GET")
            .arg(&k.grouped_waiting)
            .query_async(&mut conn)
            .await?;
        let grouped_waiting = u64::try_from(grouped_waiting.unwrap_or(0)).unwrap_or(0);
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
///
/// Every claim first leases whatever this worker's processing list holds, so a job that a
/// `BLMOVE` moved there but whose reply was lost (the blocking connection timed out after its
/// wait plus [`BLOCK_MARGIN`]) is run by the next claim instead of sitting there while the
/// worker's heartbeat keeps it from recovery.
pub(crate) struct RedisClaimer {
    driver: RedisDriver,
    keys: Arc<Keys>,
    processing: String,
    /// `claimed:{worker}`: the token and envelopes of this worker's last claim.
    claimed: String,
    /// The tokens of the claims since the last answered one (their replies did not come: an
    /// error or a cancelled call). The one among them that ran last holds `claimed`; its jobs
    /// are leased but were never started, so the next claim takes them over.
    unconfirmed: Vec<String>,
    /// The blocking connection and the longest wait its response timeout allows for.
    blocking: Option<(MultiplexedConnection, Duration)>,
    worker: String,
    queue: String,
}

impl RedisClaimer {
    /// Leases up to `max` jobs: this worker's processing list first, then ready jobs. Returns
    /// how many came from the processing list, and the leased envelopes.
    async fn lease_batch(&mut self, max: usize, lease: Duration) -> Result<(usize, Vec<Arc<str>>)> {
        let mut conn = self.driver.conn();
        let token = uuid::Uuid::new_v4().simple().to_string();
        let mut inv = self.driver.inner.scripts.claim.prepare_invoke();
        inv.key(&self.processing)
            .key(&self.keys.ready)
            .key(&self.keys.leases)
            .key(&self.claimed)
            .arg(max)
            .arg(ms(lease))
            .arg(&token);
        for lost in &self.unconfirmed {
            inv.arg(lost);
        }
        // Until its reply comes, this claim may have leased jobs that nobody runs.
        if self.unconfirmed.len() >= MAX_UNCONFIRMED {
            self.unconfirmed.remove(0);
        }
        self.unconfirmed.push(token);
        let (adopted, items): (usize, Vec<String>) = inv.invoke_async(&mut conn).await?;
        self.unconfirmed.clear();
        Ok((adopted, items.into_iter().map(Arc::from).collect()))
    }

    fn warn_adopted(&self, jobs: usize) {
        tracing::warn!(
            queue = %self.queue,
            worker = %self.worker,
            jobs,
            "leasing jobs left in this worker's processing list by a claim whose reply was lost"
        );
    }

    /// The dedicated blocking connection, (re)connected so that its response timeout covers
    /// `wait` plus [`BLOCK_MARGIN`].
    async fn blocking(&mut self, wait: Duration) -> Result<&mut MultiplexedConnection> {
        if self.blocking.as_ref().is_none_or(|(_, w)| *w < wait) {
            self.blocking = None;
            let config = AsyncConnectionConfig::new()
                .set_response_timeout(Some(wait + BLOCK_MARGIN))
                .set_connection_timeout(Some(Duration::from_secs(5)));
            let conn = self
                .driver
                .inner
                .client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            self.blocking = Some((conn, wait));
        }
        Ok(&mut self.blocking.as_mut().expect("just connected").0)
    }

    pub(crate) async fn claim(
        &mut self,
        max: usize,
        lease: Duration,
        wait: Duration,
    ) -> Result<Vec<Arc<str>>> {
        let max = max.clamp(1, BATCH);
        let (adopted, items) = self.lease_batch(max, lease).await?;
        if adopted > 0 {
            self.warn_adopted(adopted);
        }
        if !items.is_empty() || wait.is_zero() {
            return Ok(items);
        }
        let ready = self.keys.ready.clone();
        let processing = self.processing.clone();
        let conn = self.blocking(wait).await?;
        let secs = wait.as_secs_f64().max(0.01);
        let moved: redis::RedisResult<Option<String>> = redis::cmd("BLMOVE")
            .arg(&ready)
            .arg(&processing)
            .arg("LEFT")
            .arg("RIGHT")
            .arg(format!("{secs:.3}"))
            .query_async(conn)
            .await;
        match moved {
            Ok(None) => Ok(Vec::new()),
            Ok(Some(_)) => {
                let (adopted, items) = self.lease_batch(max, lease).await?;
                if adopted > 1 {
                    self.warn_adopted(adopted - 1);
                }
                Ok(items)
            }
            Err(e) => {
                // A timeout means the reply is lost, not late: the connection cannot be used
                // again. Whatever the BLMOVE moved is leased by the next claim.
                self.blocking = None;
                if e.is_timeout() {
                    tracing::warn!(
                        queue = %self.queue,
                        worker = %self.worker,
                        "a blocking claim got no reply within its wait; reconnecting"
                    );
                }
                Err(e.into())
            }
        }
    }

    /// Puts back anything left in this worker's processing list (called at shutdown).
    pub(crate) async fn release(&mut self) -> Result<()> {
        self.blocking = None;
        let lost = std::mem::take(&mut self.unconfirmed);
        self.driver
            .release_worker(&self.queue, &self.worker, &lost)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A flush that outlives its lock must not release the lock another worker has taken since
    /// (the blind `DEL` this replaced did).
    #[tokio::test]
    async fn an_expired_pending_lock_is_not_released_by_its_old_holder() {
        let Some(redis) = test_support::redis("pending_lock_token").await else {
            return;
        };
        let driver = RedisDriver::connect(&redis.url, redis.prefix.clone())
            .await
            .unwrap();
        let long = Duration::from_secs(30);
        let first = driver
            .lock_pending("q", Duration::from_millis(50))
            .await
            .unwrap()
            .expect("the lock is free");
        assert!(driver.lock_pending("q", long).await.unwrap().is_none());
        tokio::time::sleep(Duration::from_millis(200)).await;
        let second = driver
            .lock_pending("q", long)
            .await
            .unwrap()
            .expect("the first lock expired");
        // The first holder's late release leaves the second holder's lock in place.
        driver.unlock_pending("q", &first).await.unwrap();
        assert!(driver.lock_pending("q", long).await.unwrap().is_none());
        // Its holder releases it.
        driver.unlock_pending("q", &second).await.unwrap();
        assert!(driver.lock_pending("q", long).await.unwrap().is_some());
    }
}
