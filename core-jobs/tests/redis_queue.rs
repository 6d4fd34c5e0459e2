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

/// A bare envelope (the format grouped entries had before ids and groups moved out of the
/// JSON) whose payload nests `depth` arrays: deeper than Lua's cjson decodes (1000).
fn deep_envelope(id: &str, group: &str, depth: usize) -> String {
    format!(
        r#"{{"id":"{id}","job":"test_job","queue":"default","data":{}{},"attempt":0,"group":"{group}","at":0}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    )
}

async fn raw_cmd<T: redis::FromRedisValue>(r: &test_support::TestRedis, cmd: &mut redis::Cmd) -> T {
    let mut conn = r.connection().await;
    cmd.query_async(&mut conn).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finish_does_not_lose_a_grouped_job_it_cannot_decode_nor_block_the_group() {
    let Some(h) = Harness::new(
        Kind::Redis,
        "finish_does_not_lose_a_grouped_job_it_cannot_decode",
    )
    .await
    else {
        return;
    };
    let r = h.redis.as_ref().unwrap();
    let base = format!("{}:queue:default", r.prefix);
    // `first` runs the group; behind it an old-format entry the finish script cannot decode,
    // then an ordinary grouped job.
    TestJob::new("first")
        .grouped("g")
        .dispatch(&h.queue)
        .await
        .unwrap();
    let deep = deep_envelope("deep-1", "g", 1100);
    let _: i64 = raw_cmd(
        r,
        redis::cmd("RPUSH")
            .arg(format!("{base}:group:g"))
            .arg(&deep),
    )
    .await;
    TestJob::new("after")
        .grouped("g")
        .dispatch(&h.queue)
        .await
        .unwrap();
    let w = h.worker().spawn().unwrap();
    assert!(
        wait_until(T, || h.rec.runs("first") == 1 && h.rec.runs("after") == 1).await,
        "the group is blocked behind the entry finish could not decode: {:?}",
        h.rec.log()
    );
    TestJob::new("later")
        .grouped("g")
        .dispatch(&h.queue)
        .await
        .unwrap();
    assert!(
        wait_until(T, || h.rec.runs("later") == 1).await,
        "a later job of the group never ran"
    );
    // The undecodable entry was not lost: it ran (its payload is too deep for the job's
    // Deserialize) and is a failed job.
    assert!(
        common::wait_for(T, || async {
            h.failed_rows().await.iter().any(|f| f.job_id == "deep-1")
        })
        .await,
        "the entry finish could not decode was lost"
    );
    w.shutdown().await;
    let groups: HashMap<String, String> =
        raw_cmd(r, redis::cmd("HGETALL").arg(format!("{base}:groups"))).await;
    assert!(groups.is_empty(), "group still held: {groups:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_does_not_lose_a_grouped_job_it_cannot_decode_nor_block_the_group() {
    let Some(h) = Harness::new(
        Kind::Redis,
        "promote_does_not_lose_a_grouped_job_it_cannot_decode",
    )
    .await
    else {
        return;
    };
    let r = h.redis.as_ref().unwrap();
    let base = format!("{}:queue:default", r.prefix);
    let deep = deep_envelope("deep-2", "g2", 1100);
    let _: i64 = raw_cmd(
        r,
        redis::cmd("ZADD")
            .arg(format!("{base}:delayed-grouped"))
            .arg(1)
            .arg(&deep),
    )
    .await;
    TestJob::new("delayed")
        .grouped("g2")
        .dispatch_in(&h.queue, Duration::from_millis(50))
        .await
        .unwrap();
    let w = h.worker().spawn().unwrap();
    assert!(
        wait_until(T, || h.rec.runs("delayed") == 1).await,
        "the group's delayed job never ran"
    );
    TestJob::new("later")
        .grouped("g2")
        .dispatch(&h.queue)
        .await
        .unwrap();
    assert!(
        wait_until(T, || h.rec.runs("later") == 1).await,
        "the group is blocked"
    );
    assert!(
        common::wait_for(T, || async {
            h.failed_rows().await.iter().any(|f| f.job_id == "deep-2")
        })
        .await,
        "the entry promote could not decode was lost"
    );
    w.shutdown().await;
    let s = h.queue.stats("default").await.unwrap();
    assert_eq!((s.ready, s.delayed, s.in_flight), (0, 0, 0), "{s:?}");
}

#[derive(Debug, Serialize, Deserialize)]
struct Nested {
    value: serde_json::Value,
}

#[async_trait]
impl Job for Nested {
    const NAME: &'static str = "nested";
    async fn handle(&self, _ctx: &JobContext) -> anyhow::Result<()> {
        Ok(())
    }
}

fn nested(depth: usize) -> Nested {
    let mut value = serde_json::json!(1);
    for _ in 0..depth {
        value = serde_json::Value::Array(vec![value]);
    }
    Nested { value }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_nested_too_deep_is_refused_at_dispatch() {
    let Some(r) = test_support::redis("a_payload_nested_too_deep_is_refused_at_dispatch").await
    else {
        return;
    };
    let queue = Queue::redis(&r.url, r.prefix.clone()).await.unwrap();
    // `Nested { value }` adds one level: a payload of depth MAX_PAYLOAD_DEPTH is accepted.
    let limit = core_jobs::queue::MAX_PAYLOAD_DEPTH;
    nested(limit - 1).dispatch(&queue).await.unwrap();
    let err = nested(limit).dispatch(&queue).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("nest") && msg.contains(&limit.to_string()),
        "{msg}"
    );
    let err = nested(limit)
        .dispatch_in(&queue, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nest"), "{err}");
    let memory = Queue::memory();
    assert!(nested(2000).dispatch(&memory).await.is_err());
    assert_eq!(queue.stats("default").await.unwrap().ready, 1);
}

/// Ground truth for `grouped_waiting`: every group list's length.
async fn scan_grouped_waiting(r: &test_support::TestRedis) -> u64 {
    let base = format!("{}:queue:default", r.prefix);
    let groups: Vec<String> = raw_cmd(r, redis::cmd("HKEYS").arg(format!("{base}:groups"))).await;
    let mut n = 0;
    for g in groups {
        let len: u64 = raw_cmd(r, redis::cmd("LLEN").arg(format!("{base}:group:{g}"))).await;
        n += len;
    }
    n
}

async fn grouped_counter(r: &test_support::TestRedis) -> Option<u64> {
    raw_cmd(
        r,
        redis::cmd("GET").arg(format!("{}:queue:default:grouped-waiting", r.prefix)),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grouped_waiting_is_a_counter_kept_exact_by_enqueue_promote_and_finish() {
    let Some(h) = Harness::new(Kind::Redis, "grouped_waiting_is_a_counter").await else {
        return;
    };
    let r = h.redis.as_ref().unwrap();
    // Enqueue: g1 runs a1, a2 and a3 wait; g2 runs b1, b2 waits.
    for (key, group, sleep) in [
        ("a1", "g1", 1500),
        ("a2", "g1", 0),
        ("a3", "g1", 0),
        ("b1", "g2", 0),
        ("b2", "g2", 0),
    ] {
        TestJob::new(key)
            .grouped(group)
            .sleeping(sleep)
            .dispatch(&h.queue)
            .await
            .unwrap();
    }
    assert_eq!(h.queue.stats("default").await.unwrap().grouped_waiting, 3);
    assert_eq!(scan_grouped_waiting(r).await, 3);
    assert_eq!(grouped_counter(r).await, Some(3), "no O(1) counter kept");
    // Promote: a4 is due soon, while g1 is still busy with a1, so it joins g1's list.
    TestJob::new("a4")
        .grouped("g1")
        .dispatch_in(&h.queue, Duration::from_millis(200))
        .await
        .unwrap();
    let w = h.worker().spawn().unwrap();
    assert!(
        common::wait_for(T, || async {
            let s = h.queue.stats("default").await.unwrap();
            s.delayed == 0 && h.rec.runs("b2") == 1 && h.rec.runs("a2") == 0
        })
        .await,
        "a4 promoted and g2 done while a1 still runs"
    );
    let s = h.queue.stats("default").await.unwrap();
    assert_eq!(s.grouped_waiting, scan_grouped_waiting(r).await);
    assert_eq!(s.grouped_waiting, 3, "a2, a3, a4 wait behind a1");
    assert_eq!(grouped_counter(r).await, Some(3));
    // Finish: everything runs, the count drops to zero.
    assert!(wait_until(T, || h.rec.total_runs() == 6).await);
    w.shutdown().await;
    assert_eq!(h.queue.stats("default").await.unwrap().grouped_waiting, 0);
    assert_eq!(scan_grouped_waiting(r).await, 0);
    assert_eq!(grouped_counter(r).await.unwrap_or(0), 0);
}

/// Records when each job started.
#[derive(Debug, Default)]
struct Starts(Mutex<HashMap<u32, tokio::time::Instant>>);

#[derive(Debug, Serialize, Deserialize)]
struct Busy {
    n: u32,
    sleep_ms: u64,
}

#[async_trait]
impl Job for Busy {
    const NAME: &'static str = "busy";
    const QUEUE: &'static str = "busy";
    async fn handle(&self, ctx: &JobContext) -> anyhow::Result<()> {
        ctx.ext::<Arc<Starts>>()
            .unwrap()
            .0
            .lock()
            .unwrap()
            .insert(self.n, tokio::time::Instant::now());
        tokio::time::sleep(Duration::from_millis(self.sleep_ms)).await;
        Ok(())
    }
}

/// With two queues on one worker, the idle one must not hold the worker's free slots while it
/// blocks: a job on the busy queue starts without waiting for the idle queue's `block_for`, even
/// while another job of the busy queue runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_queue_does_not_delay_jobs_on_another_queue() {
    let Some(r) = test_support::redis("an_idle_queue_does_not_delay_jobs_on_another_queue").await
    else {
        return;
    };
    let block = Duration::from_secs(5);
    let queue = Queue::redis(&r.url, r.prefix.clone()).await.unwrap();
    let starts = Arc::new(Starts::default());
    let ctx = JobContext::new(queue.clone()).with_extension(starts.clone());
    let w = Worker::new(queue.clone(), ctx)
        .queue("idle")
        .register::<Busy>()
        .concurrency(8)
        .block_for(block)
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let start_of = |n: u32| starts.0.lock().unwrap().get(&n).copied();
    let mut worst = Duration::ZERO;
    for (n, sleep_ms) in [(1, 4000), (2, 0), (3, 4000), (4, 0)] {
        let sent = tokio::time::Instant::now();
        Busy { n, sleep_ms }.dispatch(&queue).await.unwrap();
        assert!(
            wait_until(T, || start_of(n).is_some()).await,
            "job {n} never started"
        );
        worst = worst.max(start_of(n).unwrap() - sent);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    w.shutdown().await;
    assert!(
        worst < block / 2,
        "a job on the busy queue waited {worst:?} for the idle queue's {block:?} block"
    );
}
