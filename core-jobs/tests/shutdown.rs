//! One `Shutdown` for every background part: cancelling it stops the worker, the scheduler and
//! the outbox relay; the worker finishes the job it is running, and `Shutdown::wait` returns
//! once all of them have stopped. Stopping one part through its own handle leaves the others
//! running.

mod common;

use std::time::Duration;

use common::{Harness, Kind, TestJob, wait_until};
use core_jobs::schedule::{ScheduledJob, Scheduler};
use core_jobs::{Dispatch, JobBuffer, Shutdown};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_one_shutdown_drains_worker_scheduler_and_relay() {
    let h = Harness::new(Kind::Memory, "shared_shutdown").await.unwrap();
    let shutdown = Shutdown::new();
    let worker = h.worker().with_shutdown(&shutdown).spawn().unwrap();
    let scheduler = Scheduler::new(h.queue.clone())
        .job(
            ScheduledJob::new("* * * * * *", || TestJob::new("tick"))
                .unwrap()
                .name("tick"),
        )
        .with_shutdown(&shutdown)
        .spawn()
        .unwrap();
    let buffer = JobBuffer::new(h.db.clone(), h.queue.clone());
    let relay = buffer.spawn_relay_with(&shutdown);

    // Every part is running: the relay moves a committed job, the worker runs it.
    let mut tx = h.db.begin().await.unwrap();
    buffer
        .push(&mut tx, &TestJob::new("relayed"))
        .await
        .unwrap();
    buffer.commit(tx).await.unwrap();
    assert!(wait_until(Duration::from_secs(5), || h.rec.runs("relayed") == 1).await);
    assert!(
        wait_until(Duration::from_secs(3), || h.rec.runs("tick") >= 1).await,
        "the scheduler dispatched a tick"
    );

    // A slow job is running when the shutdown comes.
    TestJob::new("slow")
        .sleeping(500)
        .dispatch(&h.queue)
        .await
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || h.rec.runs("slow") == 1).await);
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), shutdown.wait())
        .await
        .expect("every part stops within the grace period");

    // The worker finished and acknowledged the running job before it stopped.
    assert!(h.rec.log().contains(&"end:slow".to_owned()));
    assert_eq!(h.queue.stats("default").await.unwrap().in_flight, 0);
    assert!(worker.stats().processed >= 2);

    // Nothing runs any more: no tick is dispatched, no committed row relayed, no job claimed.
    let ready = h.queue.stats("default").await.unwrap().ready;
    let mut tx = h.db.begin().await.unwrap();
    buffer.push(&mut tx, &TestJob::new("late")).await.unwrap();
    buffer.commit(tx).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(h.queue.stats("default").await.unwrap().ready, ready);
    assert_eq!(buffer.pending().await.unwrap(), 1);
    assert_eq!(h.rec.runs("late"), 0);

    // The handles agree that their parts have stopped.
    tokio::time::timeout(Duration::from_secs(1), async {
        worker.shutdown().await;
        scheduler.shutdown().await;
        relay.shutdown().await;
    })
    .await
    .expect("already stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_one_part_through_its_handle_leaves_the_shared_shutdown_alone() {
    let h = Harness::new(Kind::Memory, "own_handle").await.unwrap();
    let shutdown = Shutdown::new();
    let first = h.worker().with_shutdown(&shutdown).spawn().unwrap();
    let second = h.worker().with_shutdown(&shutdown).spawn().unwrap();
    first.shutdown().await;
    assert!(!shutdown.is_cancelled());

    // The second worker still runs jobs.
    TestJob::new("after").dispatch(&h.queue).await.unwrap();
    assert!(wait_until(Duration::from_secs(5), || second.stats().processed == 1).await);
    assert_eq!(h.rec.runs("after"), 1);

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), shutdown.wait())
        .await
        .expect("the second worker stops");
}
