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
//!
//! Each script is a `.lua` file under `redis/scripts/` with a typed wrapper in [`scripts`];
//! the claimer is in [`claimer`].

mod claimer;
mod scripts;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use core_db::infra::redis_connection::{SharedConn, SharedConnection};
use redis::aio::ConnectionManagerConfig;
use redis::io::tcp::{TcpSettings, socket2};
use redis::{Client, IntoConnectionInfo};

use self::claimer::RedisClaimer;
use self::scripts::{EnqueueAt, LuaCall};
use super::{Claimer, Driver, Push, QueueDriver, QueueStats, RunningJob, When};
use crate::error::{Error, Result};

/// Largest number of jobs one script call moves (keeps every script short).
const BATCH: usize = 1000;

/// How long a released worker's heartbeat is kept (its processing list is empty by then).
const RELEASE_HEARTBEAT: Duration = Duration::from_secs(3);

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
    keys: Mutex<HashMap<String, Arc<Keys>>>,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 4)
}

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
}

#[async_trait]
impl Driver for RedisDriver {
    fn kind(&self) -> QueueDriver {
        QueueDriver::Redis
    }

    async fn push(&self, queue: &str, push: Push) -> Result<bool> {
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
        let (unique_key, unique_ttl_ms) = match &push.unique {
            Some((key, ttl)) => (format!("{}{key}", k.unique_prefix), ms(*ttl).max(1)),
            None => (format!("{}-", k.unique_prefix), 0),
        };
        let done = scripts::Enqueue {
            ready: &k.ready,
            delayed: &k.delayed,
            delayed_grouped: &k.delayed_grouped,
            groups: &k.groups,
            group_list: &format!("{}{group}", k.group_prefix),
            unique_key: &unique_key,
            grouped_waiting: &k.grouped_waiting,
            envelope: &push.env,
            at: match push.when {
                When::Now => EnqueueAt::Now,
                When::In(d) => EnqueueAt::In(ms(d)),
                When::At(t) => EnqueueAt::At(t),
            },
            group,
            id: &push.id,
            unique_ttl_ms,
        }
        .run(&mut conn)
        .await?;
        Ok(done == 1)
    }

    async fn push_many(&self, queue: &str, envs: Vec<String>) -> Result<()> {
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

    async fn claimer(
        &self,
        queue: &str,
        worker: &str,
        lease: Duration,
    ) -> Result<Box<dyn Claimer>> {
        // Register the worker's heartbeat before its first blocking claim, so that a job left in
        // its processing list is recovered if it dies.
        self.extend(queue, worker, &[], lease).await?;
        Ok(Box::new(RedisClaimer::new(
            self.clone(),
            self.keys(queue),
            queue,
            worker,
        )))
    }

    async fn ack(&self, queue: &str, envs: &[Arc<str>]) -> Result<()> {
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

    async fn finish(
        &self,
        queue: &str,
        env: &Arc<str>,
        group: Option<(&str, &str)>,
        record: Option<&str>,
    ) -> Result<bool> {
        let k = self.keys(queue);
        let mut conn = self.conn();
        let (g, id) = group.unwrap_or(("", ""));
        let (done, released) = scripts::Finish {
            leases: &k.leases,
            ready: &k.ready,
            groups: &k.groups,
            group_list: &format!("{}{g}", k.group_prefix),
            pending: &k.pending,
            grouped_waiting: &k.grouped_waiting,
            envelope: env,
            group: g,
            id,
            record: record.unwrap_or(""),
        }
        .run(&mut conn)
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

    async fn retry(
        &self,
        queue: &str,
        old: &Arc<str>,
        new: String,
        delay: Duration,
    ) -> Result<bool> {
        let k = self.keys(queue);
        let mut conn = self.conn();
        let done = scripts::Retry {
            leases: &k.leases,
            delayed: &k.delayed,
            old_envelope: old,
            new_envelope: &new,
            delay_ms: ms(delay),
        }
        .run(&mut conn)
        .await?;
        Ok(done == 1)
    }

    /// Extends the leases of `envs` (and `worker`'s heartbeat, also when `envs` is empty);
    /// returns the envelopes among them that are no longer leased (recovered after their lease
    /// expired, or finished).
    async fn extend(
        &self,
        queue: &str,
        worker: &str,
        envs: &[Arc<str>],
        lease: Duration,
    ) -> Result<Vec<Arc<str>>> {
        let k = self.keys(queue);
        let mut conn = self.conn();
        let mut lost = Vec::new();
        let chunks: Vec<&[Arc<str>]> = if envs.is_empty() {
            vec![&[]]
        } else {
            envs.chunks(BATCH).collect()
        };
        for chunk in chunks {
            let gone = scripts::Extend {
                leases: &k.leases,
                workers: &k.workers,
                lease_ms: ms(lease),
                worker,
                envelopes: chunk,
            }
            .run(&mut conn)
            .await?;
            lost.extend(
                gone.into_iter()
                    .filter_map(|i| chunk.get(i.wrapping_sub(1)).cloned()),
            );
        }
        Ok(lost)
    }

    async fn promote(&self, queue: &str) -> Result<Option<Duration>> {
        let k = self.keys(queue);
        let mut conn = self.conn();
        let (_moved, next, released) = scripts::Promote {
            delayed: &k.delayed,
            ready: &k.ready,
            delayed_grouped: &k.delayed_grouped,
            groups: &k.groups,
            grouped_waiting: &k.grouped_waiting,
            limit: BATCH,
            group_prefix: &k.group_prefix,
        }
        .run(&mut conn)
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

    async fn recover(&self, queue: &str) -> Result<u64> {
        let k = self.keys(queue);
        let mut conn = self.conn();
        Ok(scripts::Recover {
            leases: &k.leases,
            ready: &k.ready,
            workers: &k.workers,
            limit: BATCH,
            processing_prefix: &k.processing_prefix,
            claimed_prefix: &k.claimed_prefix,
        }
        .run(&mut conn)
        .await?)
    }

    /// Takes the pending-failures lock of `queue` for `ttl` with a fresh random token; returns
    /// the token, or `None` when another worker holds the lock.
    async fn lock_pending(&self, queue: &str, ttl: Duration) -> Result<Option<String>> {
        let k = self.keys(queue);
        let mut conn = self.conn();
        let token = uuid::Uuid::new_v4().simple().to_string();
        let set = redis::cmd("SET")
            .arg(&k.pending_lock)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(ms(ttl).max(1))
            .query_async::<Option<String>>(&mut conn)
            .await;
        let set = conn.checked(set)?;
        Ok(set.map(|_| token))
    }

    /// Releases the pending-failures lock of `queue` if it is still held with `token` (a
    /// compare-and-delete: a lock that expired and was taken by another worker stays).
    async fn unlock_pending(&self, queue: &str, token: &str) -> Result<()> {
        let k = self.keys(queue);
        let mut conn = self.conn();
        scripts::Unlock {
            lock: &k.pending_lock,
            token,
        }
        .run(&mut conn)
        .await?;
        Ok(())
    }

    async fn pending_failures(&self, queue: &str, max: usize) -> Result<Vec<String>> {
        let k = self.keys(queue);
        let mut conn = self.conn();
        let stop = max.max(1) as i64 - 1;
        let records = redis::cmd("LRANGE")
            .arg(&k.pending)
            .arg(0)
            .arg(stop)
            .query_async(&mut conn)
            .await;
        Ok(conn.checked(records)?)
    }

    async fn remove_pending(&self, queue: &str, record: &str) -> Result<()> {
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

    async fn stats(&self, queue: &str) -> Result<QueueStats> {
        let k = self.keys(queue);
        let mut conn = self.conn();
        // All O(1): `grouped-waiting` is a counter kept by the enqueue, promote and finish
        // scripts (a negative value, left by entries written before the counter, reads as 0).
        let counts = redis::pipe()
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
            .query_async::<(u64, u64, u64, u64, u64, Option<i64>)>(&mut conn)
            .await;
        let (ready, delayed, delayed_grouped, in_flight, pending, grouped_waiting) =
            conn.checked(counts)?;
        let grouped_waiting = u64::try_from(grouped_waiting.unwrap_or(0)).unwrap_or(0);
        Ok(QueueStats {
            ready,
            delayed: delayed + delayed_grouped,
            in_flight,
            grouped_waiting,
            pending_failures: pending,
        })
    }

    /// Reads `leases` by rank (deadline, then member), a page of `limit` at a time, until
    /// `limit` envelopes decoded or the set ends: an entry that is not an envelope neither
    /// fails the read nor takes a place. Leases change meanwhile, so a job whose lease was
    /// extended between two pages may be seen twice or not at all; listed ids are kept unique.
    async fn running(&self, queue: &str, limit: usize) -> Result<Vec<RunningJob>> {
        let k = self.keys(queue);
        let mut conn = self.conn();
        let page = limit.clamp(1, BATCH);
        let mut jobs: Vec<RunningJob> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut start = 0usize;
        while jobs.len() < limit {
            let read = redis::cmd("ZRANGE")
                .arg(&k.leases)
                .arg(start)
                .arg(start + page - 1)
                .arg("WITHSCORES")
                .query_async::<Vec<(Vec<u8>, f64)>>(&mut conn)
                .await;
            let members = conn.checked(read)?;
            let got = members.len();
            for (env, deadline) in members {
                // Bytes that are not UTF-8 are not an envelope: `from_lease` skips them.
                let env = String::from_utf8_lossy(&env);
                if let Some(job) = RunningJob::from_lease(queue, &env, deadline as i64)
                    && seen.insert(job.id.clone())
                {
                    jobs.push(job);
                }
            }
            if got < page {
                break;
            }
            start += page;
        }
        jobs.truncate(limit);
        Ok(jobs)
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
