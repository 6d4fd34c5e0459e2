//! Soak under faults: one Redis queue, two workers, 20,000 jobs (plain, delayed, grouped and
//! failing ones), while a fault-injection proxy cuts, stalls, black-holes, slows and restores
//! each worker's Redis connections and the connections to the `failed_jobs` database at random.
//!
//! What must hold when the faults stop and the queue drains: every job ran to completion or has
//! its row in `failed_jobs`; none is lost, none is stranded (ready, delayed, leased, grouped and
//! parked-failure counts are all zero); every group ran its jobs in dispatch order. Jobs that ran
//! more than once (at-least-once delivery: a lease that lapsed while a connection was stalled)
//! are counted and printed, never hidden.
//!
//! `SOAK_JOBS` changes the number of jobs (default 20,000); `SOAK_CHAOS_SECS` how long the faults
//! last (default 40).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use core_db::Database;
use core_jobs::{DispatchOptions, FailedJobs, Job, JobContext, Queue, Worker, WorkerHandle};
use rand::Rng;
use serde::{Deserialize, Serialize};
use test_support::proxy::{Direction, Fault, FaultProxy};
use tokio::time::Instant;

/// The workers' warnings and errors, kept to explain a failure (printed only then).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn install() -> Self {
        let logs = Self::default();
        let writer = logs.clone();
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init();
        logs
    }

    /// The lines that mention any of `needles`, and how many lines there are in all.
    fn mentioning(&self, needles: &[String]) -> String {
        let all = String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned();
        let total = all.lines().count();
        let hits: Vec<&str> = all
            .lines()
            .filter(|l| needles.iter().any(|n| l.contains(n.as_str())))
            .collect();
        format!(
            "{total} warning lines in all; those naming a stranded job:\n{}",
            hits.join("\n")
        )
    }
}

/// What the handlers saw, shared by both workers (they run in this process).
#[derive(Debug, Default)]
struct Seen {
    /// Runs per plain (and delayed) job.
    runs: Mutex<HashMap<u32, u32>>,
    /// Per group, the sequence numbers in the order their runs started.
    groups: Mutex<BTreeMap<u32, Vec<u32>>>,
    /// Runs per failing job.
    failing_runs: Mutex<HashMap<u32, u32>>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Plain {
    n: u32,
}

#[async_trait]
impl Job for Plain {
    const NAME: &'static str = "soak_plain";
    const QUEUE: &'static str = "soak";
    async fn handle(&self, ctx: &JobContext) -> anyhow::Result<()> {
        tokio::time::sleep(Duration::from_millis(2)).await;
        let seen = ctx.ext::<Arc<Seen>>().expect("Seen");
        *seen.runs.lock().unwrap().entry(self.n).or_default() += 1;
        Ok(())
    }
    fn max_retries(&self) -> u32 {
        // A run that times out on a stalled connection is retried, not failed.
        20
    }
    fn backoff(&self, _attempt: u32) -> Duration {
        Duration::from_millis(100)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Grouped {
    group: u32,
    seq: u32,
}

#[async_trait]
impl Job for Grouped {
    const NAME: &'static str = "soak_grouped";
    const QUEUE: &'static str = "soak";
    async fn handle(&self, ctx: &JobContext) -> anyhow::Result<()> {
        let seen = ctx.ext::<Arc<Seen>>().expect("Seen");
        seen.groups
            .lock()
            .unwrap()
            .entry(self.group)
            .or_default()
            .push(self.seq);
        tokio::time::sleep(Duration::from_millis(1)).await;
        Ok(())
    }
    fn group_id(&self) -> Option<String> {
        Some(format!("g{}", self.group))
    }
    fn max_retries(&self) -> u32 {
        20
    }
    fn backoff(&self, _attempt: u32) -> Duration {
        Duration::from_millis(100)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Failing {
    n: u32,
}

#[async_trait]
impl Job for Failing {
    const NAME: &'static str = "soak_failing";
    const QUEUE: &'static str = "soak";
    async fn handle(&self, ctx: &JobContext) -> anyhow::Result<()> {
        let seen = ctx.ext::<Arc<Seen>>().expect("Seen");
        *seen.failing_runs.lock().unwrap().entry(self.n).or_default() += 1;
        anyhow::bail!("soak failure {}", self.n)
    }
    fn max_retries(&self) -> u32 {
        1
    }
    fn backoff(&self, _attempt: u32) -> Duration {
        Duration::from_millis(100)
    }
}

/// The ids and whereabouts of the jobs left leased or in a processing list, and of the plain
/// jobs that never ran.
async fn stranded(
    redis: &test_support::TestRedis,
    seen: &Seen,
    expected_plain: u32,
) -> Vec<(String, String)> {
    let mut conn = redis.connection().await;
    let mut out = Vec::new();
    let id_of = |env: &str| {
        serde_json::from_str::<serde_json::Value>(env)
            .ok()
            .and_then(|v| v["id"].as_str().map(str::to_owned))
            .unwrap_or_else(|| env.to_owned())
    };
    for key in redis.keys().await {
        let range = if key.ends_with(":leases") {
            "ZRANGE"
        } else if key.contains(":processing:") || key.contains(":claimed:") {
            "LRANGE"
        } else {
            continue;
        };
        let members: Vec<String> = redis::cmd(range)
            .arg(&key)
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .unwrap_or_default();
        for m in members {
            out.push((id_of(&m), format!("{key}: {m}")));
        }
    }
    let runs = seen.runs.lock().unwrap();
    for n in (0..expected_plain).filter(|n| !runs.contains_key(n)) {
        out.push((format!("\"n\":{n}"), "never ran".to_owned()));
    }
    out
}

fn env_u32(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn worker(url: &str, prefix: &str, db: Database, seen: &Arc<Seen>) -> WorkerHandle {
    let queue = Queue::redis(url, prefix.to_owned()).await.unwrap();
    let ctx = JobContext::new(queue.clone()).with_extension(seen.clone());
    Worker::new(queue, ctx)
        .register::<Plain>()
        .register::<Grouped>()
        .register::<Failing>()
        .queue("soak")
        .concurrency(8)
        .lease(Duration::from_secs(3))
        .block_for(Duration::from_millis(500))
        .pending_failures_every(Duration::from_millis(500))
        .failed_store(FailedJobs::new(db))
        .spawn()
        .unwrap()
}

/// One random fault on one proxy, held for a random moment, then lifted.
async fn chaos(proxies: Vec<(&'static str, Arc<FaultProxy>)>, until: Instant) -> Vec<String> {
    let mut log = Vec::new();
    while Instant::now() < until {
        let (idle, hold, which, action) = {
            let mut rng = rand::rng();
            (
                rng.random_range(100..600u64),
                rng.random_range(100..1500u64),
                rng.random_range(0..proxies.len()),
                rng.random_range(0..8u8),
            )
        };
        tokio::time::sleep(Duration::from_millis(idle)).await;
        let (name, proxy) = &proxies[which];
        let what = match action {
            0 => {
                proxy.set(Direction::Downstream, Fault::BlackHole);
                "black-hole replies"
            }
            1 => {
                proxy.set(Direction::Upstream, Fault::BlackHole);
                "black-hole requests"
            }
            2 => {
                proxy.set(Direction::Both, Fault::Stall);
                "stall"
            }
            3 => {
                proxy.set(Direction::Both, Fault::Delay(Duration::from_millis(30)));
                "slow"
            }
            4 => {
                proxy.drop_connections();
                "drop"
            }
            5 => {
                proxy.reset_connections();
                "reset"
            }
            6 => {
                let n = rand::rng().random_range(1..400);
                proxy.set(Direction::Upstream, Fault::CutAfter(n));
                "cut requests"
            }
            _ => {
                let n = rand::rng().random_range(1..400);
                proxy.set(Direction::Downstream, Fault::ResetAfter(n));
                "reset replies"
            }
        };
        log.push(format!("{name}: {what} for {hold} ms"));
        tokio::time::sleep(Duration::from_millis(hold)).await;
        proxy.heal();
    }
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_under_faults_loses_and_strands_nothing() {
    let Some(redis) = test_support::redis("jobs_soak").await else {
        return;
    };
    let Some(pg) = test_support::postgres("jobs_soak").await else {
        return;
    };
    let logs = Logs::install();
    let total = env_u32("SOAK_JOBS", 20_000);
    let chaos_secs = u64::from(env_u32("SOAK_CHAOS_SECS", 40));
    let groups = 100u32;
    let per_group = (total * 15 / 100 / groups).max(1);
    let grouped_total = groups * per_group;
    let failing = total / 20;
    let delayed = total / 10;
    let plain = total - grouped_total - failing - delayed;

    let redis_a = Arc::new(FaultProxy::for_url(&redis.url).await.unwrap());
    let redis_b = Arc::new(FaultProxy::for_url(&redis.url).await.unwrap());
    let pg_proxy = Arc::new(FaultProxy::for_url(&pg.url).await.unwrap());
    let db = Database::connect(&pg_proxy.url(&pg.url)).await.unwrap();

    let seen = Arc::new(Seen::default());
    let wa = worker(&redis_a.url(&redis.url), &redis.prefix, db.clone(), &seen).await;
    let wb = worker(&redis_b.url(&redis.url), &redis.prefix, db.clone(), &seen).await;

    let started = Instant::now();
    let chaos_task = tokio::spawn(chaos(
        vec![
            ("worker A redis", redis_a.clone()),
            ("worker B redis", redis_b.clone()),
            ("failed_jobs postgres", pg_proxy.clone()),
        ],
        started + Duration::from_secs(chaos_secs),
    ));

    // Dispatch on a direct connection while the faults run: the workers' connections are the
    // ones under test.
    let direct = Queue::redis(&redis.url, redis.prefix.clone())
        .await
        .unwrap();
    let mut n = 0;
    let batch: Vec<Plain> = (0..plain).map(|i| Plain { n: i }).collect();
    // Paced over about half the fault window, so the faults hit workers that are busy.
    let pace = Duration::from_millis(chaos_secs * 1000 / 2 / u64::from((plain / 200).max(1)));
    for chunk in batch.chunks(200) {
        direct.dispatch_many(chunk).await.unwrap();
        tokio::time::sleep(pace).await;
    }
    for i in 0..delayed {
        let delay = Duration::from_millis(rand::rng().random_range(100..5000));
        direct
            .dispatch_in(&Plain { n: plain + i }, delay)
            .await
            .unwrap();
        n += 1;
    }
    for seq in 0..per_group {
        for g in 0..groups {
            direct.dispatch(&Grouped { group: g, seq }).await.unwrap();
        }
    }
    for i in 0..failing {
        direct
            .dispatch_with(&Failing { n: i }, DispatchOptions::new())
            .await
            .unwrap();
    }
    assert_eq!(n, delayed);
    let dispatched_in = started.elapsed();

    let log = chaos_task.await.unwrap();
    redis_a.heal();
    redis_b.heal();
    pg_proxy.heal();
    let chaos_ended = started.elapsed();

    // Drain: everything ran or failed, and nothing is left anywhere in the queue.
    let failed = FailedJobs::new(Database::connect(&pg.url).await.unwrap());
    let deadline = Instant::now() + Duration::from_secs(180);
    let expected_plain = plain + delayed;
    loop {
        let ran = seen.runs.lock().unwrap().len() as u32;
        let grouped_ran: u32 = seen
            .groups
            .lock()
            .unwrap()
            .values()
            .map(|v| v.iter().collect::<HashSet<_>>().len() as u32)
            .sum();
        let failed_rows: HashSet<String> = failed
            .list(u32::MAX / 2)
            .await
            .unwrap()
            .into_iter()
            .map(|f| f.payload)
            .collect();
        let stats = direct.stats("soak").await.unwrap();
        let idle = stats.ready == 0
            && stats.delayed == 0
            && stats.in_flight == 0
            && stats.grouped_waiting == 0
            && stats.pending_failures == 0;
        if ran == expected_plain
            && grouped_ran == grouped_total
            && failed_rows.len() as u32 == failing
            && idle
        {
            break;
        }
        if Instant::now() >= deadline {
            let leased = stranded(&redis, &seen, expected_plain).await;
            panic!(
                "the queue did not drain within 180 s of the faults ending: plain {ran}/{expected_plain}, \
                 grouped {grouped_ran}/{grouped_total}, failed rows {}/{failing}, {stats:?}\n\
                 stranded: {leased:#?}\n{}\nfaults:\n{}",
                failed_rows.len(),
                logs.mentioning(&leased.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>()),
                log.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let drained = started.elapsed();
    wa.shutdown().await;
    wb.shutdown().await;

    // No processing list is left behind by either worker.
    let leftovers: Vec<String> = redis
        .keys()
        .await
        .into_iter()
        .filter(|k| k.contains(":processing:"))
        .collect();
    assert!(leftovers.is_empty(), "stranded in {leftovers:?}");

    // Every group ran in dispatch order: a re-run repeats the current job, never an older one.
    for (g, seqs) in seen.groups.lock().unwrap().iter() {
        let mut order: Vec<u32> = seqs.clone();
        order.dedup();
        assert_eq!(
            order,
            (0..per_group).collect::<Vec<_>>(),
            "group {g} ran out of order: {seqs:?}"
        );
    }
    // Every failing job ran (at least) its two attempts and has exactly one row per job id.
    let rows = failed.list(u32::MAX / 2).await.unwrap();
    let mut per_job: HashMap<String, u32> = HashMap::new();
    for r in &rows {
        assert_eq!(
            r.job_name, "soak_failing",
            "only failing jobs have rows: {r:?}"
        );
        *per_job.entry(r.job_id.clone()).or_default() += 1;
    }
    let failing_runs = seen.failing_runs.lock().unwrap();
    assert_eq!(failing_runs.len() as u32, failing);
    assert!(
        failing_runs.values().all(|&r| r >= 2),
        "each failing job ran twice"
    );

    let runs = seen.runs.lock().unwrap();
    let duplicates: u32 = runs.values().map(|r| r - 1).sum::<u32>()
        + seen
            .groups
            .lock()
            .unwrap()
            .values()
            .map(|v| v.len() as u32 - v.iter().collect::<HashSet<_>>().len() as u32)
            .sum::<u32>();
    let duplicate_rows: u32 = per_job.values().map(|c| c - 1).sum();
    println!(
        "soak: {total} jobs ({plain} plain, {delayed} delayed, {grouped_total} grouped in {groups} groups, \
         {failing} failing); {} faults over {:.1} s; dispatched in {:.1} s, drained {:.1} s after the \
         faults ended; duplicate runs {duplicates}; duplicate failed_jobs rows {duplicate_rows}",
        log.len(),
        chaos_ended.as_secs_f64(),
        dispatched_in.as_secs_f64(),
        (drained - chaos_ended).as_secs_f64(),
    );
}
