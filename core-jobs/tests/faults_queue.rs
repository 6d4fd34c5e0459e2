//! The Redis queue under network faults, through `test_support::proxy::FaultProxy`: a worker
//! whose claim reply is lost neither strands the job nor stops claiming.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use core_jobs::{Dispatch, Job, JobContext, Queue, Worker};
use serde::{Deserialize, Serialize};
use test_support::proxy::{Direction, Fault, FaultProxy};

/// Generous: these tests check that jobs run at all, never how fast.
const T: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
struct Runs(Mutex<HashMap<u32, u32>>);

impl Runs {
    fn of(&self, n: u32) -> u32 {
        self.0.lock().unwrap().get(&n).copied().unwrap_or(0)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Ping {
    n: u32,
}

#[async_trait]
impl Job for Ping {
    const NAME: &'static str = "ping";
    async fn handle(&self, ctx: &JobContext) -> anyhow::Result<()> {
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

async fn wait_until<F: FnMut() -> bool>(timeout: Duration, mut cond: F) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The worker blocks in `BLMOVE` on an empty queue through the proxy; the server's replies are
/// black-holed; a job is pushed on a direct connection, so the blocked `BLMOVE` moves it into the
/// worker's processing list and its reply is lost. Once the network heals, the job must run (the
/// claimer times out, reconnects and adopts what its processing list holds) and the worker must
/// keep claiming.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_claim_reply_neither_strands_the_job_nor_silences_the_worker() {
    let Some(r) = test_support::redis("a_lost_claim_reply").await else {
        return;
    };
    let proxy = FaultProxy::for_url(&r.url).await.unwrap();
    let runs = Arc::new(Runs::default());
    let proxied = Queue::redis(&proxy.url(&r.url), r.prefix.clone())
        .await
        .unwrap();
    let ctx = JobContext::new(proxied.clone()).with_extension(runs.clone());
    // A lease far longer than the test's bound: the job must be recovered by the worker's
    // next claim, not by the expiry of a lease taken by a claim whose reply was lost.
    let worker = Worker::new(proxied, ctx)
        .register::<Ping>()
        .lease(Duration::from_secs(120))
        .block_for(Duration::from_millis(500))
        .spawn()
        .unwrap();
    let direct = Queue::redis(&r.url, r.prefix.clone()).await.unwrap();
    // The worker is idle, blocked in its claim.
    tokio::time::sleep(Duration::from_millis(800)).await;

    proxy.set(Direction::Downstream, Fault::BlackHole);
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ping { n: 1 }.dispatch(&direct).await.unwrap();
    // Long enough for every request sent meanwhile to time out on the worker's side.
    tokio::time::sleep(Duration::from_secs(12)).await;
    proxy.heal();
    let healed = tokio::time::Instant::now();

    assert!(
        wait_until(T, || runs.of(1) >= 1).await,
        "the job whose claim reply was lost never ran; worker stats {:?}",
        worker.stats()
    );
    eprintln!(
        "the stranded job ran {:?} after the network healed",
        healed.elapsed()
    );
    for n in 2..=4 {
        Ping { n }.dispatch(&direct).await.unwrap();
        assert!(
            wait_until(T, || runs.of(n) >= 1).await,
            "the worker stopped claiming: job {n} never ran; stats {:?}",
            worker.stats()
        );
    }
    worker.shutdown().await;
    let mut conn = r.connection().await;
    let base = format!("{}:queue:default", r.prefix);
    let processing: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{base}:processing:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    for key in processing {
        let len: i64 = redis::cmd("LLEN")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(len, 0, "{key} still holds jobs");
    }
}
