//! A worker process killed with SIGKILL in the middle of its jobs loses none of them.
//!
//! The test re-runs its own test binary as the worker (`child_worker`, ignored unless run this
//! way), so the worker is a real separate process: 10,000 jobs are dispatched, the first worker
//! process is killed with SIGKILL while jobs are in flight, a second worker process recovers the
//! expired leases and finishes the run. Every job must have completed; duplicates (jobs that
//! completed but whose acknowledgement died with the process) are counted and printed.

use std::process::Stdio;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use core_jobs::{Job, JobContext, Queue, Worker};
use serde::{Deserialize, Serialize};
use tokio::process::{Child, Command};

const CHILD_ENV: &str = "CORE_JOBS_KILL_TEST_PREFIX";
const JOBS: u64 = 10_000;

#[derive(Debug, Serialize, Deserialize)]
struct Work {
    n: u64,
}

#[async_trait]
impl Job for Work {
    const NAME: &'static str = "kill_test_work";
    async fn handle(&self, ctx: &JobContext) -> anyhow::Result<()> {
        tokio::time::sleep(Duration::from_millis(2)).await;
        let (conn, runs_key) = ctx
            .ext::<(redis::aio::ConnectionManager, String)>()
            .unwrap();
        let mut conn = conn.clone();
        let _: i64 = redis::cmd("HINCRBY")
            .arg(runs_key)
            .arg(self.n)
            .arg(1)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }
}

fn runs_key(prefix: &str) -> String {
    format!("{prefix}:kill-test:runs")
}

/// The worker process. Does nothing unless started by the test below.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the worker process of a_worker_killed_with_sigkill_loses_no_job; it starts it"]
async fn child_worker() {
    let Ok(prefix) = std::env::var(CHILD_ENV) else {
        return;
    };
    let url = test_support::redis_url();
    let queue = Queue::redis(&url, prefix.clone()).await.unwrap();
    let conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection_manager()
        .await
        .unwrap();
    let ctx = JobContext::new(queue.clone()).with_extension((conn, runs_key(&prefix)));
    Worker::new(queue, ctx)
        .register::<Work>()
        .concurrency(32)
        .lease(Duration::from_secs(2))
        .grace(Duration::from_secs(10))
        .run()
        .await
        .unwrap();
}

fn spawn_worker(prefix: &str) -> Child {
    let exe = std::env::current_exe().unwrap();
    Command::new(exe)
        .args([
            "--ignored",
            "--exact",
            "child_worker",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, prefix)
        .env("REDIS_URL", test_support::redis_url())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start the worker process")
}

async fn completed(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> u64 {
    redis::cmd("HLEN").arg(key).query_async(conn).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_with_sigkill_loses_no_job() {
    let Some(r) = test_support::redis("a_worker_killed_with_sigkill_loses_no_job").await else {
        return;
    };
    let queue = Queue::redis(&r.url, r.prefix.clone()).await.unwrap();
    let mut conn = r.connection().await;
    let key = runs_key(&r.prefix);
    let jobs: Vec<Work> = (0..JOBS).map(|n| Work { n }).collect();
    queue.dispatch_many(&jobs).await.unwrap();

    let mut first = spawn_worker(&r.prefix);
    let deadline = Instant::now() + Duration::from_secs(60);
    while completed(&mut conn, &key).await < JOBS * 3 / 10 {
        assert!(
            Instant::now() < deadline,
            "the first worker made no progress"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.start_kill().unwrap(); // SIGKILL
    let status = first.wait().await.unwrap();
    let at_kill = completed(&mut conn, &key).await;
    let stats = queue.stats("default").await.unwrap();
    eprintln!(
        "SIGKILLed the first worker ({status}) with {at_kill} jobs completed, {} leased (in flight), {} ready",
        stats.in_flight, stats.ready
    );
    assert!(!status.success());
    assert!(at_kill < JOBS, "killed in the middle of the run");

    let second = spawn_worker(&r.prefix);
    let deadline = Instant::now() + Duration::from_secs(90);
    while completed(&mut conn, &key).await < JOBS {
        assert!(
            Instant::now() < deadline,
            "jobs were lost: {} of {JOBS} completed",
            completed(&mut conn, &key).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Jobs the first worker finished but never acknowledged count as completed already; their
    // leases still have to expire and be recovered by the second worker before the queue is
    // empty. Wait for that (bounded) before stopping it.
    loop {
        let stats = queue.stats("default").await.unwrap();
        if (stats.ready, stats.in_flight, stats.delayed) == (0, 0, 0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dead worker's leases were not recovered: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let the second worker stop gracefully (SIGTERM).
    let pid = second.id().unwrap();
    let term = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let mut second = second;
    let status = tokio::time::timeout(Duration::from_secs(30), second.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(
        status.success(),
        "the second worker stopped gracefully: {status}"
    );

    let runs: Vec<u64> = redis::cmd("HVALS")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    let total: u64 = runs.iter().sum();
    let duplicates = total - JOBS;
    eprintln!(
        "all {JOBS} jobs completed after the SIGKILL; {duplicates} duplicate run(s) (completed but not acknowledged when the process died)"
    );
    assert_eq!(runs.len() as u64, JOBS, "no job lost");
    let stats = queue.stats("default").await.unwrap();
    assert_eq!(
        (stats.ready, stats.in_flight, stats.delayed),
        (0, 0, 0),
        "{stats:?}"
    );
}
