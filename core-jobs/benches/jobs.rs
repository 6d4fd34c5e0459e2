//! Job throughput and latency, with a raw redis-rs baseline measured in the same run.
//!
//! `cargo bench -p core-jobs --bench jobs` (needs Redis at `REDIS_URL`, default
//! 127.0.0.1:6379). `JOBS_BENCH_SCALE` scales every job count (default 1.0; 0.1 for a quick
//! run). Keys live under a random `rf-bench-…` prefix and are deleted at the end.
//!
//! Measured:
//! 1. baseline: a raw redis-rs consumer loop, `LMOVE ready → processing` + `LREM processing`,
//!    32 concurrent consumers on one multiplexed connection, over a pre-filled list;
//! 2. Rustforge, Redis driver, one worker, concurrency 32, default settings (reliable: leases,
//!    acknowledgements), no-op jobs, dispatch → completion, and consume-only over a backlog;
//! 3. claiming with a 1,000,000-job backlog versus a small one (claims must be O(1));
//! 4. dispatch-to-start latency p50/p99 (idle worker, one job at a time);
//! 5. delayed-job lateness p99;
//! 6. the in-process driver, no-op jobs, dispatch → completion.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use core_jobs::{Dispatch, Job, JobContext, Queue, Worker};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, Notify};

fn scale(n: u64) -> u64 {
    let s: f64 = std::env::var("JOBS_BENCH_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    ((n as f64 * s) as u64).max(100)
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

#[derive(Default)]
struct State {
    done: AtomicU64,
    target: AtomicU64,
    notify: Notify,
    latencies: Mutex<Vec<u64>>,
}

impl State {
    fn reset(&self, target: u64) {
        self.done.store(0, Ordering::SeqCst);
        self.target.store(target, Ordering::SeqCst);
    }
    async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            if self.done.load(Ordering::SeqCst) >= self.target.load(Ordering::SeqCst) {
                return;
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Noop {
    n: u64,
    /// Unix µs to measure from (dispatch time or due time); 0 = not measured.
    from_us: u64,
}

#[async_trait]
impl Job for Noop {
    const NAME: &'static str = "noop";
    async fn handle(&self, ctx: &JobContext) -> anyhow::Result<()> {
        let state = ctx.ext::<Arc<State>>().unwrap();
        if self.from_us > 0 {
            let lat = now_us().saturating_sub(self.from_us);
            state.latencies.lock().await.push(lat);
        }
        let done = state.done.fetch_add(1, Ordering::SeqCst) + 1;
        if done >= state.target.load(Ordering::SeqCst) {
            state.notify.notify_waiters();
        }
        Ok(())
    }
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// Raw redis-rs consumer loop: LMOVE + LREM, 32 concurrent consumers, pre-filled list.
async fn baseline(url: &str, prefix: &str, n: u64) -> f64 {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let ready = format!("{prefix}:baseline:ready");
    let processing = format!("{prefix}:baseline:processing");
    let payload = serde_json::to_string(&Noop { n: 0, from_us: 0 }).unwrap();
    let mut left = n;
    while left > 0 {
        let k = left.min(1000);
        let items: Vec<String> = (0..k).map(|i| format!("{payload}{i}")).collect();
        let _: () = redis::cmd("RPUSH")
            .arg(&ready)
            .arg(&items)
            .query_async(&mut conn)
            .await
            .unwrap();
        left -= k;
    }
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let mut conn = conn.clone();
        let (ready, processing, done) = (ready.clone(), processing.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let item: Option<String> = redis::cmd("LMOVE")
                    .arg(&ready)
                    .arg(&processing)
                    .arg("LEFT")
                    .arg("RIGHT")
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                let Some(item) = item else { break };
                let _: i64 = redis::cmd("LREM")
                    .arg(&processing)
                    .arg(1)
                    .arg(&item)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(done.load(Ordering::Relaxed), n);
    let _: () = redis::cmd("DEL")
        .arg(&ready)
        .arg(&processing)
        .query_async(&mut conn)
        .await
        .unwrap();
    n as f64 / secs
}

fn worker(queue: &Queue, state: &Arc<State>) -> core_jobs::WorkerHandle {
    let ctx = JobContext::new(queue.clone()).with_extension(state.clone());
    Worker::new(queue.clone(), ctx)
        .register::<Noop>()
        .concurrency(32)
        .spawn()
        .unwrap()
}

/// Dispatch (batched, concurrently with the worker) → completion of `n` no-op jobs.
async fn dispatch_to_completion(queue: &Queue, state: &Arc<State>, n: u64) -> f64 {
    state.reset(n);
    let w = worker(queue, state);
    let start = Instant::now();
    let mut sent = 0;
    while sent < n {
        let k = (n - sent).min(500);
        let jobs: Vec<Noop> = (sent..sent + k).map(|n| Noop { n, from_us: 0 }).collect();
        queue.dispatch_many(&jobs).await.unwrap();
        sent += k;
    }
    state.wait().await;
    let secs = start.elapsed().as_secs_f64();
    w.shutdown().await;
    n as f64 / secs
}

/// Fill a backlog of `n` first, then time a worker consuming `consume` of them.
async fn consume_backlog(queue: &Queue, state: &Arc<State>, backlog: u64, consume: u64) -> f64 {
    let mut sent = 0;
    while sent < backlog {
        let k = (backlog - sent).min(1000);
        let jobs: Vec<Noop> = (sent..sent + k).map(|n| Noop { n, from_us: 0 }).collect();
        queue.dispatch_many(&jobs).await.unwrap();
        sent += k;
    }
    state.reset(consume);
    let start = Instant::now();
    let w = worker(queue, state);
    state.wait().await;
    let secs = start.elapsed().as_secs_f64();
    w.shutdown().await;
    consume as f64 / secs
}

async fn drain(queue: &Queue, state: &Arc<State>) {
    let left = queue.stats("default").await.unwrap().ready;
    if left > 0 {
        state.reset(left);
        let w = worker(queue, state);
        state.wait().await;
        w.shutdown().await;
    }
}

async fn latency(queue: &Queue, state: &Arc<State>, n: u64) -> (f64, f64) {
    state.latencies.lock().await.clear();
    state.reset(n);
    let w = worker(queue, state);
    tokio::time::sleep(Duration::from_millis(300)).await; // idle: blocked in its claim
    for i in 0..n {
        Noop {
            n: i,
            from_us: now_us(),
        }
        .dispatch(queue)
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    state.wait().await;
    w.shutdown().await;
    let mut l = std::mem::take(&mut *state.latencies.lock().await);
    l.sort_unstable();
    (pct(&l, 0.5), pct(&l, 0.99))
}

async fn lateness(queue: &Queue, state: &Arc<State>, n: u64) -> (f64, f64) {
    state.latencies.lock().await.clear();
    state.reset(n);
    let w = worker(queue, state);
    let base = now_us() + 200_000;
    for i in 0..n {
        let due_us = base + i * 2_000_000 / n; // spread over 2 s
        let due = chrono::DateTime::from_timestamp_micros(due_us as i64).unwrap();
        Noop {
            n: i,
            from_us: due_us,
        }
        .dispatch_at(queue, due)
        .await
        .unwrap();
    }
    state.wait().await;
    w.shutdown().await;
    let mut l = std::mem::take(&mut *state.latencies.lock().await);
    l.sort_unstable();
    (pct(&l, 0.5), pct(&l, 0.99))
}

async fn cleanup(url: &str, prefix: &str) {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}:*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: () = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let prefix = format!("rf-bench-{}", std::process::id());
        let n = scale(100_000);
        let state = Arc::new(State::default());
        println!("core-jobs benchmark: {n} no-op jobs per throughput run (JOBS_BENCH_SCALE scales), 2-core machine, Redis on localhost");

        let base = baseline(&url, &prefix, n).await;
        println!("baseline  raw redis-rs LMOVE+LREM loop (32 consumers, pre-filled)   {base:>10.0} jobs/s");

        let queue = Queue::redis(&url, prefix.clone()).await.unwrap();
        // Warm-up (scripts loaded, connections up).
        dispatch_to_completion(&queue, &state, n / 10).await;
        let ours = dispatch_to_completion(&queue, &state, n).await;
        println!(
            "rustforge redis, dispatch -> completion, 1 worker, concurrency 32   {ours:>10.0} jobs/s   ratio to baseline {:.2}",
            ours / base
        );
        let consume = consume_backlog(&queue, &state, n, n).await;
        println!(
            "rustforge redis, consume pre-filled backlog, 1 worker, conc. 32    {consume:>10.0} jobs/s   ratio to baseline {:.2}",
            consume / base
        );

        let small = consume_backlog(&queue, &state, n / 2, n / 2).await;
        let big_backlog = scale(1_000_000);
        let fill = Instant::now();
        let big = consume_backlog(&queue, &state, big_backlog, n / 2).await;
        let fill_secs = fill.elapsed().as_secs_f64();
        println!(
            "claiming with a {big_backlog}-job backlog: {big:.0} jobs/s vs {small:.0} jobs/s with a {}-job backlog (ratio {:.2}; fill+consume took {fill_secs:.1} s)",
            n / 2,
            big / small
        );
        drain(&queue, &state).await;

        let (p50, p99) = latency(&queue, &state, scale(2_000)).await;
        println!("dispatch-to-start latency (idle worker, one at a time): p50 {p50:.2} ms, p99 {p99:.2} ms");
        let (l50, l99) = lateness(&queue, &state, scale(2_000)).await;
        println!("delayed-job lateness (due times spread over 2 s): p50 {l50:.2} ms, p99 {l99:.2} ms");
        cleanup(&url, &prefix).await;

        let memory = Queue::memory();
        dispatch_to_completion(&memory, &state, n / 10).await;
        let mem = dispatch_to_completion(&memory, &state, scale(200_000)).await;
        println!("rustforge memory driver, dispatch -> completion, concurrency 32     {mem:>10.0} jobs/s");
        let (m50, m99) = latency(&memory, &state, scale(2_000)).await;
        println!("memory driver dispatch-to-start latency: p50 {m50:.2} ms, p99 {m99:.2} ms");
    });
}
