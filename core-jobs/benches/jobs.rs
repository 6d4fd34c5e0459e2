//! Job throughput and latency, with a raw redis-rs baseline measured in the same run.
//!
//! `cargo bench -p core-jobs --bench jobs` (needs Redis at `REDIS_URL`, default
//! 127.0.0.1:6379). `JOBS_BENCH_SCALE` scales every job count (default 1.0; 0.1 for a quick
//! run). Keys live under a random `rf-bench-…` prefix and are deleted at the end.
//!
//! Measured:
//! 1. baseline: a raw redis-rs queue, timed like Rustforge's: batches of 500 `RPUSH`ed while
//!    32 concurrent consumers on one multiplexed connection run `LMOVE ready → processing` +
//!    `LREM processing`, from the first push to the last completion;
//! 2. Rustforge, Redis driver, one worker, concurrency 32, default settings (reliable: leases,
//!    acknowledgements), no-op jobs, dispatch → completion, and consume-only over a backlog;
//! 3. claiming with a 1,000,000-job backlog versus a small one (claims must be O(1));
//! 4. dispatch-to-start latency p50/p99 (idle worker, one job at a time), with one queue and
//!    with three queues of which two stay idle;
//! 5. delayed-job lateness p99;
//! 6. `Queue::stats` with 200,000 active groups, against the scan it replaced (`HKEYS` of the
//!    groups and `LLEN` of each group's list), both in this run;
//! 7. the in-process driver, no-op jobs, dispatch → completion;
//! 8. transactional dispatch: from the commit of a transaction that pushed a job into
//!    `JobBuffer` to the job being ready on the queue, committed with a plain `tx.commit()` and
//!    with `JobBuffer::commit`, on PostgreSQL and SQLite, with the relay's safety-net sweep set to
//!    an hour so that only its wake-up paths count; beside them, the time of a direct `dispatch`
//!    (what the outbox adds to it).
//!
//! The machine's facts (cores, Redis version) are read at run time, and each figure with a target
//! in the README's performance table is printed with PASS or FAIL.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use core_db::Database;
use core_jobs::{Dispatch, Job, JobBuffer, JobContext, Queue, Worker};
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

/// Raw redis-rs queue, dispatch → completion: batches of 500 `RPUSH`ed while 32 concurrent
/// consumers run `LMOVE` + `LREM`; timed from the first push to the last completion, as
/// [`dispatch_to_completion`] is.
async fn baseline(url: &str, prefix: &str, n: u64) -> f64 {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let ready = format!("{prefix}:baseline:ready");
    let processing = format!("{prefix}:baseline:processing");
    let payload = serde_json::to_string(&Noop { n: 0, from_us: 0 }).unwrap();
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let mut conn = conn.clone();
        let (ready, processing, done) = (ready.clone(), processing.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            while done.load(Ordering::Relaxed) < n {
                let item: Option<String> = redis::cmd("LMOVE")
                    .arg(&ready)
                    .arg(&processing)
                    .arg("LEFT")
                    .arg("RIGHT")
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                let Some(item) = item else {
                    // Caught up with the producer: like a worker, wait a little.
                    tokio::time::sleep(Duration::from_micros(200)).await;
                    continue;
                };
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
    let mut sent = 0;
    while sent < n {
        let k = (n - sent).min(500);
        let items: Vec<String> = (sent..sent + k).map(|i| format!("{payload}{i}")).collect();
        let _: () = redis::cmd("RPUSH")
            .arg(&ready)
            .arg(&items)
            .query_async(&mut conn)
            .await
            .unwrap();
        sent += k;
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
    worker_on(queue, state, 0)
}

/// A worker on `default` and `idle` more queues that never get a job.
fn worker_on(queue: &Queue, state: &Arc<State>, idle: usize) -> core_jobs::WorkerHandle {
    let ctx = JobContext::new(queue.clone()).with_extension(state.clone());
    let mut w = Worker::new(queue.clone(), ctx)
        .register::<Noop>()
        .concurrency(32);
    for i in 0..idle {
        w = w.queue(format!("idle-{i}"));
    }
    w.spawn().unwrap()
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

async fn latency(queue: &Queue, state: &Arc<State>, n: u64, idle_queues: usize) -> (f64, f64) {
    state.latencies.lock().await.clear();
    state.reset(n);
    let w = worker_on(queue, state, idle_queues);
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

/// `Queue::stats` with `groups` active groups (each running one job, one more waiting), against
/// the scan it replaced, run as a script in this run. Returns (stats ms, scan ms), medians.
async fn stats_with_groups(url: &str, prefix: &str, groups: u64) -> (f64, f64) {
    let queue_prefix = format!("{prefix}-groups");
    let base = format!("{queue_prefix}:queue:default");
    let client = redis::Client::open(url).unwrap();
    // No response timeout: at 200,000 groups the old scan blocks Redis for longer than the
    // client's default.
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap();
    let mut g = 0;
    while g < groups {
        let k = (groups - g).min(1000);
        let mut pipe = redis::pipe();
        for i in g..g + k {
            let id = format!("job-{i}");
            pipe.cmd("HSET")
                .arg(format!("{base}:groups"))
                .arg(format!("g{i}"))
                .arg(&id)
                .ignore();
            pipe.cmd("RPUSH")
                .arg(format!("{base}:group:g{i}"))
                .arg(format!(
                    "{}:{id}{}:g{i}{{}}",
                    id.len(),
                    format!("g{i}").len()
                ))
                .ignore();
        }
        let _: () = pipe.query_async(&mut conn).await.unwrap();
        g += k;
    }
    let _: () = redis::cmd("SET")
        .arg(format!("{base}:grouped-waiting"))
        .arg(groups)
        .query_async(&mut conn)
        .await
        .unwrap();
    let queue = Queue::redis(url, queue_prefix.clone()).await.unwrap();
    let mut ours = Vec::new();
    for _ in 0..21 {
        let t = Instant::now();
        let s = queue.stats("default").await.unwrap();
        ours.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(s.grouped_waiting, groups);
    }
    let old_scan = redis::Script::new(
        "local n = 0\n\
         for _, g in ipairs(redis.call('HKEYS', KEYS[1])) do\n\
           n = n + redis.call('LLEN', ARGV[1] .. g)\n\
         end\n\
         return n\n",
    );
    let mut scan = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let n: u64 = old_scan
            .key(format!("{base}:groups"))
            .arg(format!("{base}:group:"))
            .invoke_async(&mut conn)
            .await
            .unwrap();
        scan.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(n, groups);
    }
    cleanup(url, &queue_prefix).await;
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (median(ours), median(scan))
}

/// The Redis server's version, from `INFO server`.
async fn redis_version(url: &str) -> String {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap_or("unknown")
        .trim()
        .to_owned()
}

/// `PASS` or `FAIL`, for a figure with a target.
fn verdict(pass: bool) -> &'static str {
    if pass { "PASS" } else { "FAIL" }
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

/// A job only pushed through the outbox, never run.
#[derive(Debug, Serialize, Deserialize)]
struct Outboxed {
    n: u64,
}

#[async_trait]
impl Job for Outboxed {
    const NAME: &'static str = "bench_outboxed";
    const QUEUE: &'static str = "outbox";
    async fn handle(&self, _ctx: &JobContext) -> anyhow::Result<()> {
        Ok(())
    }
}

/// Waits until `queue`'s `outbox` queue holds `ready` jobs; the time it took, in ms.
async fn until_ready(queue: &Queue, ready: u64, since: Instant) -> f64 {
    while queue.stats("outbox").await.unwrap().ready < ready {
        tokio::task::yield_now().await;
    }
    since.elapsed().as_secs_f64() * 1000.0
}

/// Commit → ready through the outbox relay (a plain `tx.commit()`, then `JobBuffer::commit`), and
/// a direct dispatch → ready, `n` times each in alternation: ((p50, p99) plain, (p50, p99)
/// `JobBuffer::commit`, (p50, p99) direct), in ms.
async fn outbox_latency(db: Database, n: u64) -> ((f64, f64), (f64, f64), (f64, f64)) {
    let queue = Queue::memory();
    let buffer = JobBuffer::with_intervals(
        db.clone(),
        queue.clone(),
        Duration::from_secs(3600),
        Duration::from_secs(30),
    );
    let relay = buffer.spawn_relay();
    tokio::time::sleep(Duration::from_millis(200)).await; // the relay is up and listening
    let (mut plain, mut committed, mut direct) = (Vec::new(), Vec::new(), Vec::new());
    let mut ready = 0;
    for i in 0..n {
        let mut tx = db.begin().await.unwrap();
        buffer.push(&mut tx, &Outboxed { n: i }).await.unwrap();
        tx.commit().await.unwrap();
        ready += 1;
        plain.push(until_ready(&queue, ready, Instant::now()).await);

        let mut tx = db.begin().await.unwrap();
        buffer.push(&mut tx, &Outboxed { n: i }).await.unwrap();
        let since = Instant::now();
        buffer.commit(tx).await.unwrap();
        ready += 1;
        committed.push(until_ready(&queue, ready, since).await);

        let since = Instant::now();
        Outboxed { n: i }.dispatch(&queue).await.unwrap();
        ready += 1;
        direct.push(until_ready(&queue, ready, since).await);
    }
    relay.shutdown().await;
    let p = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        (at(0.5), at(0.99))
    };
    (p(&mut plain), p(&mut committed), p(&mut direct))
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
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let version = redis_version(&url).await;
        println!(
            "core-jobs benchmark: {n} no-op jobs per throughput run (JOBS_BENCH_SCALE scales); \
             {cores} cores (available parallelism), Redis {version} at {url}"
        );

        let base = baseline(&url, &prefix, n).await;
        println!("baseline  raw redis-rs RPUSH batches + LMOVE/LREM loop (32 consumers), dispatch -> completion {base:>10.0} jobs/s");

        let queue = Queue::redis(&url, prefix.clone()).await.unwrap();
        // Warm-up (scripts loaded, connections up).
        dispatch_to_completion(&queue, &state, n / 10).await;
        let ours = dispatch_to_completion(&queue, &state, n).await;
        println!(
            "rustforge redis, dispatch -> completion, 1 worker, concurrency 32   {ours:>10.0} jobs/s   ratio to baseline {:.2}   target >= 30,000 jobs/s: {}",
            ours / base,
            verdict(ours >= 30_000.0)
        );
        let consume = consume_backlog(&queue, &state, n, n).await;
        println!(
            "rustforge redis, consume pre-filled backlog, 1 worker, conc. 32    {consume:>10.0} jobs/s   ratio to baseline {:.2}",
            consume / base
        );

        // Best of three short runs each, so that one slow run of a quick bench is not read as
        // a backlog effect.
        let mut small: f64 = 0.0;
        for _ in 0..3 {
            small = small.max(consume_backlog(&queue, &state, n / 2, n / 2).await);
        }
        let big_backlog = scale(1_000_000);
        let fill = Instant::now();
        let mut big = consume_backlog(&queue, &state, big_backlog, n / 2).await;
        let fill_secs = fill.elapsed().as_secs_f64();
        for _ in 0..2 {
            big = big.max(consume_backlog(&queue, &state, 0, n / 2).await);
        }
        println!(
            "claiming with a {big_backlog}-job backlog: {big:.0} jobs/s vs {small:.0} jobs/s with a {}-job backlog, best of 3 (ratio {:.2}; fill+first consume took {fill_secs:.1} s)   target O(1) in the backlog (ratio >= 0.8): {}",
            n / 2,
            big / small,
            verdict(big / small >= 0.8)
        );
        drain(&queue, &state).await;

        let (p50, p99) = latency(&queue, &state, scale(2_000), 0).await;
        println!("dispatch-to-start latency (idle worker, one at a time): p50 {p50:.2} ms, p99 {p99:.2} ms");
        let (q50, q99) = latency(&queue, &state, scale(2_000), 2).await;
        println!(
            "dispatch-to-start latency with 3 queues, 2 of them idle (block_for 1 s): p50 {q50:.2} ms, p99 {q99:.2} ms"
        );
        let (l50, l99) = lateness(&queue, &state, scale(2_000)).await;
        println!(
            "delayed-job lateness (due times spread over 2 s): p50 {l50:.2} ms, p99 {l99:.2} ms   target due job starts within 100 ms (p99): {}",
            verdict(l99 < 100.0)
        );
        cleanup(&url, &prefix).await;

        let groups = scale(200_000);
        let (stats_ms, scan_ms) = stats_with_groups(&url, &prefix, groups).await;
        println!(
            "Queue::stats with {groups} active groups: {stats_ms:.3} ms (median of 21); the grouped-waiting scan it replaced: {scan_ms:.1} ms (median of 5); {:.0}x",
            scan_ms / stats_ms
        );

        let memory = Queue::memory();
        dispatch_to_completion(&memory, &state, n / 10).await;
        let mem = dispatch_to_completion(&memory, &state, scale(200_000)).await;
        println!(
            "rustforge memory driver, dispatch -> completion, concurrency 32     {mem:>10.0} jobs/s   target >= 100,000 jobs/s: {}",
            verdict(mem >= 100_000.0)
        );
        let (m50, m99) = latency(&memory, &state, scale(2_000), 0).await;
        println!("memory driver dispatch-to-start latency: p50 {m50:.2} ms, p99 {m99:.2} ms");

        let commits = scale(500);
        let pg = test_support::postgres("jobs_bench_outbox").await;
        let sqlite = test_support::sqlite().await;
        let mut backends = vec![("SQLite", Database::Sqlite(sqlite.pool.clone()))];
        if let Some(pg) = &pg {
            backends.insert(0, ("PostgreSQL", Database::Postgres(pg.pool.clone())));
        }
        for (name, db) in backends {
            let ((r50, r99), (c50, c99), (d50, d99)) = outbox_latency(db, commits).await;
            println!(
                "JobBuffer on {name}, commit -> ready on the queue ({commits} commits each): plain tx.commit() p50 {r50:.2} ms, p99 {r99:.2} ms; JobBuffer::commit p50 {c50:.2} ms, p99 {c99:.2} ms | a direct dispatch -> ready p50 {d50:.3} ms, p99 {d99:.3} ms"
            );
        }
    });
}
