//! Shared harness for the core-jobs integration tests: a queue on a chosen driver, a fresh
//! SQLite failure store, a recorder the test jobs report to, and the test job types.
#![allow(dead_code, missing_docs)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use core_db::Cache;
use core_db::Database;
use core_jobs::{FailedJob, FailedJobs, Job, JobContext, Queue, Worker};
use serde::{Deserialize, Serialize};
use test_support::{TestRedis, TestSqlite};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Memory,
    Redis,
}

/// What the test jobs report.
#[derive(Debug, Default)]
pub struct Recorder {
    runs: Mutex<HashMap<String, u32>>,
    failed_calls: Mutex<Vec<(String, String)>>,
    log: Mutex<Vec<String>>,
    running: Mutex<HashMap<String, u32>>,
    pub max_overlap: Mutex<HashMap<String, u32>>,
    attempts: Mutex<HashMap<String, Vec<u32>>>,
}

impl Recorder {
    pub fn runs(&self, key: &str) -> u32 {
        self.runs.lock().unwrap().get(key).copied().unwrap_or(0)
    }
    pub fn total_runs(&self) -> u32 {
        self.runs.lock().unwrap().values().sum()
    }
    pub fn failed_calls(&self, key: &str) -> Vec<String> {
        self.failed_calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, e)| e.clone())
            .collect()
    }
    pub fn all_failed_calls(&self) -> usize {
        self.failed_calls.lock().unwrap().len()
    }
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
    pub fn attempts(&self, key: &str) -> Vec<u32> {
        self.attempts
            .lock()
            .unwrap()
            .get(key)
            .cloned()
            .unwrap_or_default()
    }
    fn start(&self, key: &str, group: Option<&str>, attempt: u32) {
        *self.runs.lock().unwrap().entry(key.to_owned()).or_default() += 1;
        self.attempts
            .lock()
            .unwrap()
            .entry(key.to_owned())
            .or_default()
            .push(attempt);
        self.log.lock().unwrap().push(format!("start:{key}"));
        if let Some(g) = group {
            let mut running = self.running.lock().unwrap();
            let n = running.entry(g.to_owned()).or_default();
            *n += 1;
            let mut max = self.max_overlap.lock().unwrap();
            let m = max.entry(g.to_owned()).or_default();
            *m = (*m).max(*n);
        }
    }
    fn end(&self, key: &str, group: Option<&str>) {
        self.log.lock().unwrap().push(format!("end:{key}"));
        if let Some(g) = group {
            *self
                .running
                .lock()
                .unwrap()
                .entry(g.to_owned())
                .or_default() -= 1;
        }
    }
}

/// How a [`TestJob`]'s `failed()` behaves.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum OnFailed {
    #[default]
    Ok,
    Err,
    Panic,
}

/// The configurable test job: fails its first `fail_first` runs, optionally panics, sleeps,
/// belongs to a group.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TestJob {
    pub key: String,
    pub fail_first: u32,
    pub retries: u32,
    pub panic: bool,
    pub sleep_ms: u64,
    pub timeout_ms: Option<u64>,
    pub group: Option<String>,
    pub on_failed: OnFailed,
    pub backoff_ms: u64,
    /// Failures ask, through `RetryAfter`, to wait this long before the retry.
    pub retry_after_ms: Option<u64>,
}

impl TestJob {
    pub fn new(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            backoff_ms: 10,
            ..Self::default()
        }
    }
    pub fn failing(mut self, fail_first: u32, retries: u32) -> Self {
        self.fail_first = fail_first;
        self.retries = retries;
        self
    }
    pub fn grouped(mut self, group: &str) -> Self {
        self.group = Some(group.to_owned());
        self
    }
    pub fn sleeping(mut self, ms: u64) -> Self {
        self.sleep_ms = ms;
        self
    }
}

#[async_trait]
impl Job for TestJob {
    const NAME: &'static str = "test_job";

    async fn handle(&self, ctx: &JobContext) -> anyhow::Result<()> {
        let rec = ctx.ext::<Arc<Recorder>>().expect("recorder");
        rec.start(&self.key, self.group.as_deref(), ctx.attempt());
        let runs = rec.runs(&self.key);
        if self.sleep_ms > 0 {
            tokio::time::sleep(Duration::from_millis(self.sleep_ms)).await;
        }
        rec.end(&self.key, self.group.as_deref());
        if self.panic {
            panic!("test job {} panicked on run {runs}", self.key);
        }
        if runs <= self.fail_first {
            if let Some(ms) = self.retry_after_ms {
                let after = Duration::from_millis(ms);
                return Err(core_jobs::RetryAfter::new(after, format!("busy {runs}")).into());
            }
            anyhow::bail!("boom {runs}");
        }
        Ok(())
    }

    fn max_retries(&self) -> u32 {
        self.retries
    }

    fn backoff(&self, _attempt: u32) -> Duration {
        Duration::from_millis(self.backoff_ms)
    }

    fn timeout(&self) -> Duration {
        self.timeout_ms
            .map_or(Duration::from_secs(30), Duration::from_millis)
    }

    fn group_id(&self) -> Option<String> {
        self.group.clone()
    }

    async fn failed(&self, ctx: &JobContext, error: &str) -> anyhow::Result<()> {
        let rec = ctx.ext::<Arc<Recorder>>().expect("recorder");
        rec.failed_calls
            .lock()
            .unwrap()
            .push((self.key.clone(), error.to_owned()));
        match self.on_failed {
            OnFailed::Ok => Ok(()),
            OnFailed::Err => anyhow::bail!("failed() itself failed"),
            OnFailed::Panic => panic!("failed() panicked"),
        }
    }
}

/// A job that no worker registers.
#[derive(Debug, Serialize, Deserialize)]
pub struct Unregistered {
    pub n: u32,
}

#[async_trait]
impl Job for Unregistered {
    const NAME: &'static str = "nobody_knows_me";
    async fn handle(&self, _ctx: &JobContext) -> anyhow::Result<()> {
        Ok(())
    }
}

/// Registered under "strict"; expects a number.
#[derive(Debug, Serialize, Deserialize)]
pub struct Strict {
    pub n: u32,
}

#[async_trait]
impl Job for Strict {
    const NAME: &'static str = "strict";
    async fn handle(&self, ctx: &JobContext) -> anyhow::Result<()> {
        ctx.ext::<Arc<Recorder>>()
            .unwrap()
            .start("strict", None, ctx.attempt());
        Ok(())
    }
}

/// Same NAME as [`Strict`] but a payload it cannot decode.
#[derive(Debug, Serialize, Deserialize)]
pub struct StrictImposter {
    pub n: String,
}

#[async_trait]
impl Job for StrictImposter {
    const NAME: &'static str = "strict";
    async fn handle(&self, _ctx: &JobContext) -> anyhow::Result<()> {
        Ok(())
    }
}

/// A job that dispatches a follow-up [`TestJob`] through its context's queue.
#[derive(Debug, Serialize, Deserialize)]
pub struct Spawner {
    pub child: String,
}

#[async_trait]
impl Job for Spawner {
    const NAME: &'static str = "spawner";
    async fn handle(&self, ctx: &JobContext) -> anyhow::Result<()> {
        use core_jobs::Dispatch;
        TestJob::new(self.child.clone())
            .dispatch(ctx.queue())
            .await?;
        Ok(())
    }
}

/// A queue on one driver, a fresh SQLite failure store, and a recorder.
pub struct Harness {
    pub kind: Kind,
    pub queue: Queue,
    pub db: Database,
    pub ctx: JobContext,
    pub rec: Arc<Recorder>,
    pub redis: Option<TestRedis>,
    pub cache: Cache,
    _sqlite: TestSqlite,
}

impl Harness {
    pub async fn new(kind: Kind, test: &str) -> Option<Self> {
        let sqlite = test_support::sqlite().await;
        let db = Database::Sqlite(sqlite.pool.clone());
        let (queue, redis, cache) = match kind {
            Kind::Memory => (Queue::memory(), None, Cache::memory("test")),
            Kind::Redis => {
                let r = test_support::redis(test).await?;
                let q = Queue::redis(&r.url, r.prefix.clone())
                    .await
                    .expect("redis queue");
                let c = Cache::redis(&r.url, r.prefix.clone())
                    .await
                    .expect("redis cache");
                (q, Some(r), c)
            }
        };
        let rec = Arc::new(Recorder::default());
        let ctx = JobContext::new(queue.clone())
            .with_database(db.clone())
            .with_cache(cache.clone())
            .with_extension(rec.clone());
        Some(Self {
            kind,
            queue,
            db,
            ctx,
            rec,
            redis,
            cache,
            _sqlite: sqlite,
        })
    }

    /// A worker with the test jobs registered, short leases and quick pending-failure retries.
    pub fn worker(&self) -> Worker {
        Worker::new(self.queue.clone(), self.ctx.clone())
            .register::<TestJob>()
            .register::<Strict>()
            .register::<Spawner>()
            .concurrency(8)
            .lease(Duration::from_secs(3))
            .block_for(Duration::from_millis(200))
            .pending_failures_every(Duration::from_millis(100))
    }

    pub fn store(&self) -> FailedJobs {
        FailedJobs::new(self.db.clone())
    }

    pub async fn failed_rows(&self) -> Vec<FailedJob> {
        let mut rows = self.store().list(1000).await.expect("list failed jobs");
        rows.reverse();
        rows
    }
}

/// Polls `cond` every 10 ms until it holds or `timeout` passes; returns whether it held.
pub async fn wait_until<F: FnMut() -> bool>(timeout: Duration, mut cond: F) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// As [`wait_until`], with an async condition.
pub async fn wait_for<F, Fut>(timeout: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if cond().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `suite!(case, …)`: runs each `cases::case(harness)` of the calling test file on the
/// in-process driver and on Redis (skipped, or failed under `RUSTFORGE_REQUIRE_SERVICES=1`, when
/// Redis is missing). The file brings `Harness` and `Kind` into scope and defines `mod cases`.
#[allow(unused_macros)]
macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let h = super::Harness::new(super::Kind::Memory, stringify!($case)).await.unwrap();
                    super::cases::$case(h).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(h) = super::Harness::new(super::Kind::Redis, stringify!($case)).await else { return };
                    super::cases::$case(h).await;
                }
            )*
        }
    };
}
