//! Redis reliable-queue specifics: key layout, atomic claims with several workers, delayed jobs
//! promoted once, lease extension and recovery of a dead worker's jobs.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::{Harness, Kind, TestJob, wait_until};
use core_jobs::{Dispatch, DispatchOptions, Job, JobContext, Queue, Worker};
use serde::{Deserialize, Serialize};

const T: Duration = Duration::from_secs(20);

/// Counts runs per id across every worker in the test.
#[derive(Debug, Default)]
struct Runs(Mutex<HashMap<u32, u32>>);

impl Runs {
    fn total(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    fn duplicates(&self) -> u32 {
        self.0.lock().unwrap().values().map(|n| n - 1).sum()
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Count {
    n: u32,
    sleep_ms: u64,
}

#[async_trait]
impl Job for Count {
    const NAME: &'static str = "count";
    async fn handle(&self, ctx: &JobContext) -> anyhow::Result<()> {
        if self.sleep_ms > 0 {
            tokio::time::sleep(Duration::from_millis(self.sleep_ms)).await;
        }
        *ctx.ext::<Arc<Runs>>()
            .unwrap()
            .0
            .lock()
            .unwrap()
            .entry(self.n)
            .or_default() += 1;
        Ok(())
    }
}

async fn counting_worker(
    url: &str,
    prefix: &str,
    runs: &Arc<Runs>,
    lease: Duration,
) -> core_jobs::WorkerHandle {
    // Each worker gets its own Queue handle (its own connections), like a separate process.
    let queue = Queue::redis(url, prefix.to_owned()).await.unwrap();
    let ctx = JobContext::new(queue.clone()).with_extension(runs.clone());
    Worker::new(queue, ctx)
        .register::<Count>()
        .concurrency(16)
        .lease(lease)
        .block_for(Duration::from_millis(200))
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_stay_under_the_queue_namespace() {
    let Some(h) = Harness::new(Kind::Redis, "keys_stay_under_the_queue_namespace").await else {
        return;
    };
    let w = h.worker().spawn().unwrap();
    TestJob::new("plain").dispatch(&h.queue).await.unwrap();
    TestJob::new("grouped")
        .grouped("g1")
        .dispatch(&h.queue)
        .await
        .unwrap();
    TestJob::new("delayed")
        .dispatch_in(&h.queue, Duration::from_secs(60))
        .await
        .unwrap();
    TestJob::new("failing")
        .failing(u32::MAX, 0)
        .dispatch(&h.queue)
        .await
        .unwrap();
    TestJob::new("unique")
        .dispatch_with(
            &h.queue,
            DispatchOptions::new().unique("k", Duration::from_secs(60)),
        )
        .await
        .unwrap();
    assert!(wait_until(T, || h.rec.total_runs() == 4).await);
    w.shutdown().await;
    let redis = h.redis.as_ref().unwrap();
    let keys = redis.keys().await;
    assert!(!keys.is_empty());
    let ns = format!("{}:queue:default:", redis.prefix);
    for k in &keys {
        assert!(k.starts_with(&ns), "{k} is outside {ns}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_never_run_a_job_twice() {
    let Some(r) = test_support::redis("two_workers_never_run_a_job_twice").await else {
        return;
    };
    let runs = Arc::new(Runs::default());
    let a = counting_worker(&r.url, &r.prefix, &runs, Duration::from_secs(30)).await;
    let b = counting_worker(&r.url, &r.prefix, &runs, Duration::from_secs(30)).await;
    let queue = Queue::redis(&r.url, r.prefix.clone()).await.unwrap();
    let jobs: Vec<Count> = (0..3000).map(|n| Count { n, sleep_ms: 0 }).collect();
    queue.dispatch_many(&jobs).await.unwrap();
    assert!(
        wait_until(T, || runs.total() == 3000).await,
        "{}",
        runs.total()
    );
    a.shutdown().await;
    b.shutdown().await;
    assert_eq!(runs.duplicates(), 0);
    assert!(
        a.stats().processed > 0 && b.stats().processed > 0,
        "both claimed: {:?} {:?}",
        a.stats(),
        b.stats()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_with_delayed_jobs_run_each_once() {
    let Some(r) = test_support::redis("two_workers_with_delayed_jobs_run_each_once").await else {
        return;
    };
    let runs = Arc::new(Runs::default());
    let a = counting_worker(&r.url, &r.prefix, &runs, Duration::from_secs(30)).await;
    let b = counting_worker(&r.url, &r.prefix, &runs, Duration::from_secs(30)).await;
    let queue = Queue::redis(&r.url, r.prefix.clone()).await.unwrap();
    for n in 0..1000u32 {
        let delay = Duration::from_millis(u64::from(n % 50) * 20);
        Count { n, sleep_ms: 0 }
            .dispatch_in(&queue, delay)
            .await
            .unwrap();
    }
    assert!(
        wait_until(T, || runs.total() == 1000).await,
        "{}",
        runs.total()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.shutdown().await;
    b.shutdown().await;
    assert_eq!(
        runs.duplicates(),
        0,
        "delayed jobs promoted once however many workers promote"
    );
    let s = queue.stats("default").await.unwrap();
    assert_eq!((s.ready, s.delayed, s.in_flight), (0, 0, 0), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_job_extends_its_lease() {
    let Some(r) = test_support::redis("a_long_job_extends_its_lease").await else {
        return;
    };
    let runs = Arc::new(Runs::default());
    let lease = Duration::from_millis(600);
    let a = counting_worker(&r.url, &r.prefix, &runs, lease).await;
    let b = counting_worker(&r.url, &r.prefix, &runs, lease).await;
    let queue = Queue::redis(&r.url, r.prefix.clone()).await.unwrap();
    Count {
        n: 1,
        sleep_ms: 2_000,
    }
    .dispatch(&queue)
    .await
    .unwrap();
    assert!(wait_until(T, || runs.total() == 1).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    a.shutdown().await;
    b.shutdown().await;
    assert_eq!(
        runs.duplicates(),
        0,
        "a job running 3 leases long is not recovered while it runs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_workers_processing_list_is_recovered() {
    let Some(r) = test_support::redis("a_dead_workers_processing_list_is_recovered").await else {
        return;
    };
    let runs = Arc::new(Runs::default());
    // A worker that died right after its blocking claim moved a job into its processing list:
    // the job sits in `processing:dead` and its heartbeat has expired.
    let queue = Queue::redis(&r.url, r.prefix.clone()).await.unwrap();
    Count { n: 7, sleep_ms: 0 }.dispatch(&queue).await.unwrap();
    let mut conn = r.connection().await;
    let base = format!("{}:queue:default", r.prefix);
    let _: Option<String> = redis::cmd("LMOVE")
        .arg(format!("{base}:ready"))
        .arg(format!("{base}:processing:dead"))
        .arg("LEFT")
        .arg("RIGHT")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: i64 = redis::cmd("ZADD")
        .arg(format!("{base}:workers"))
        .arg(1)
        .arg("dead")
        .query_async(&mut conn)
        .await
        .unwrap();
    let w = counting_worker(&r.url, &r.prefix, &runs, Duration::from_secs(30)).await;
    assert!(
        wait_until(T, || runs.total() == 1).await,
        "recovered from the dead worker's list"
    );
    w.shutdown().await;
    let len: i64 = redis::cmd("LLEN")
        .arg(format!("{base}:processing:dead"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(len, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_is_recovered_by_another_worker() {
    let Some(r) = test_support::redis("an_expired_lease_is_recovered_by_another_worker").await
    else {
        return;
    };
    let queue = Queue::redis(&r.url, r.prefix.clone()).await.unwrap();
    Count { n: 3, sleep_ms: 0 }.dispatch(&queue).await.unwrap();
    // Lease the job by hand, as a worker that then vanished would have.
    let mut conn = r.connection().await;
    let base = format!("{}:queue:default", r.prefix);
    let env: String = redis::cmd("LPOP")
        .arg(format!("{base}:ready"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: i64 = redis::cmd("ZADD")
        .arg(format!("{base}:leases"))
        .arg(1)
        .arg(&env)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(queue.stats("default").await.unwrap().in_flight, 1);
    let runs = Arc::new(Runs::default());
    let w = counting_worker(&r.url, &r.prefix, &runs, Duration::from_secs(30)).await;
    assert!(wait_until(T, || runs.total() == 1).await);
    w.shutdown().await;
    assert_eq!(queue.stats("default").await.unwrap().in_flight, 0);
}
