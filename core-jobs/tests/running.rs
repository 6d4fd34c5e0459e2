//! [`Queue::running`](core_jobs::Queue::running): the jobs leased right now, read from the queue
//! driver (so workers in any process), on the in-process queue and on Redis.

#[macro_use]
mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::{Harness, Kind, wait_for};
use core_jobs::{Dispatch, DispatchOptions, Job, JobContext, Worker, WorkerHandle};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

const T: Duration = Duration::from_secs(10);

suite!(
    a_blocked_job_is_running_while_it_runs_and_not_after,
    running_honours_the_limit_and_lists_in_a_steady_order,
);

/// Runs until the test's gate gives it a permit.
#[derive(Debug, Serialize, Deserialize)]
struct Blocked {
    n: u32,
}

/// The gate [`Blocked`] jobs wait at.
struct Gate(Arc<Semaphore>);

#[async_trait]
impl Job for Blocked {
    const NAME: &'static str = "blocked";

    async fn handle(&self, ctx: &JobContext) -> anyhow::Result<()> {
        let gate = ctx.ext::<Gate>().expect("gate");
        gate.0.acquire().await?.forget();
        Ok(())
    }
}

/// A worker running [`Blocked`] jobs (concurrency 8) on `default` and `mail`; the gate.
fn blocked_worker(h: &Harness) -> (WorkerHandle, Arc<Semaphore>) {
    let gate = Arc::new(Semaphore::new(0));
    let ctx = h.ctx.clone().with_extension(Gate(gate.clone()));
    let worker = Worker::new(h.queue.clone(), ctx)
        .register::<Blocked>()
        .queue("mail")
        .concurrency(8)
        .lease(Duration::from_secs(3))
        .block_for(Duration::from_millis(100))
        .spawn()
        .expect("worker");
    (worker, gate)
}

mod cases {
    use super::*;

    pub async fn a_blocked_job_is_running_while_it_runs_and_not_after(h: Harness) {
        assert!(h.queue.running("default", 10).await.unwrap().is_empty());
        let (worker, gate) = blocked_worker(&h);
        let before = chrono::Utc::now();
        let id = Blocked { n: 1 }.dispatch(&h.queue).await.unwrap();
        let mailed = h
            .queue
            .dispatch_with(&Blocked { n: 2 }, DispatchOptions::new().on_queue("mail"))
            .await
            .unwrap()
            .unwrap();
        assert!(
            wait_for(T, || async {
                h.queue.running("default", 10).await.unwrap().len() == 1
                    && h.queue.running("mail", 10).await.unwrap().len() == 1
            })
            .await,
            "the jobs were not listed as running"
        );
        let running = h.queue.running("default", 10).await.unwrap();
        let job = &running[0];
        assert_eq!(job.id, id.as_str());
        assert_eq!(job.name, "blocked");
        assert_eq!(job.queue, "default");
        assert_eq!(job.attempt, 1);
        assert_eq!(job.group, None);
        let dispatched = job.dispatched_at.expect("a dispatch time");
        assert!(
            (dispatched - before).num_seconds().abs() < 5,
            "{dispatched} vs {before}"
        );
        // Leased for 3 s from the claim (or the last extension).
        let ahead = job.lease_expires_at - chrono::Utc::now();
        assert!(
            ahead > chrono::Duration::zero() && ahead <= chrono::Duration::seconds(4),
            "lease ends in {ahead}"
        );
        let mail = h.queue.running("mail", 10).await.unwrap();
        assert_eq!(mail[0].id, mailed.as_str());
        assert_eq!(mail[0].queue, "mail");
        // Listing changes nothing: the job is still leased, and nothing is ready again.
        let stats = h.queue.stats("default").await.unwrap();
        assert_eq!((stats.in_flight, stats.ready), (1, 0), "{stats:?}");

        gate.add_permits(2);
        assert!(
            wait_for(T, || async {
                h.queue.running("default", 10).await.unwrap().is_empty()
                    && h.queue.running("mail", 10).await.unwrap().is_empty()
            })
            .await,
            "finished jobs are no longer running"
        );
        worker.shutdown().await;
    }

    pub async fn running_honours_the_limit_and_lists_in_a_steady_order(h: Harness) {
        let (worker, gate) = blocked_worker(&h);
        let mut ids = Vec::new();
        for n in 0..5 {
            ids.push(Blocked { n }.dispatch(&h.queue).await.unwrap());
            // Distinct dispatch times, so the listing's order is the dispatch order.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(
            wait_for(T, || async {
                h.queue.running("default", 10).await.unwrap().len() == 5
            })
            .await
        );
        let listed: Vec<String> = h
            .queue
            .running("default", 10)
            .await
            .unwrap()
            .into_iter()
            .map(|j| j.id)
            .collect();
        let dispatched: Vec<String> = ids.iter().map(|id| id.as_str().to_owned()).collect();
        assert_eq!(listed, dispatched, "oldest dispatch first");
        assert_eq!(h.queue.running("default", 3).await.unwrap().len(), 3);
        assert_eq!(h.queue.running("default", 1).await.unwrap().len(), 1);
        assert!(h.queue.running("default", 0).await.unwrap().is_empty());
        assert!(h.queue.running("mail", 10).await.unwrap().is_empty());
        assert!(h.queue.running("no:such", 10).await.is_err(), "bad name");
        gate.add_permits(5);
        assert!(
            wait_for(T, || async {
                h.queue.running("default", 10).await.unwrap().is_empty()
            })
            .await
        );
        worker.shutdown().await;
    }
}

/// A member of `leases` that is not a job envelope (written by something else, or damaged) is
/// skipped, and does not take the place of a real job under the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_skips_a_leased_member_that_is_not_an_envelope() {
    let Some(h) = Harness::new(Kind::Redis, "redis_skips_a_leased_member").await else {
        return;
    };
    let r = h.redis.as_ref().expect("redis");
    let (worker, gate) = blocked_worker(&h);
    let id = Blocked { n: 1 }.dispatch(&h.queue).await.unwrap();
    assert!(
        wait_for(T, || async {
            h.queue.running("default", 10).await.unwrap().len() == 1
        })
        .await
    );
    // Garbage that sorts before the real lease: deadlines just before its own (not expired, so
    // no recovery moves it meanwhile).
    let deadline = h.queue.running("default", 1).await.unwrap()[0]
        .lease_expires_at
        .timestamp_millis();
    let mut conn = r.connection().await;
    let _: i64 = ::redis::cmd("ZADD")
        .arg(r.key("queue:default:leases"))
        .arg(deadline - 2)
        .arg("not an envelope")
        .arg(deadline - 1)
        .arg(&b"\xff\xfe{"[..])
        .query_async(&mut conn)
        .await
        .unwrap();
    let running = h.queue.running("default", 1).await.unwrap();
    assert_eq!(running.len(), 1, "{running:?}");
    assert_eq!(running[0].id, id.as_str());
    assert_eq!(h.queue.running("default", 10).await.unwrap().len(), 1);
    // Remove the garbage before the worker's recovery moves it to ready.
    let _: i64 = ::redis::cmd("ZREM")
        .arg(r.key("queue:default:leases"))
        .arg("not an envelope")
        .arg(&b"\xff\xfe{"[..])
        .query_async(&mut conn)
        .await
        .unwrap();
    gate.add_permits(1);
    worker.shutdown().await;
}
