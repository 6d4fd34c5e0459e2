//! The in-process [`JobCounters`](core_jobs::JobCounters): a worker counts what it processed,
//! failed and retried per queue and job, into its queue's counters (or the ones it was given),
//! and keeps its last finished jobs once asked to, on the in-process queue and on Redis.

#[macro_use]
mod common;

use std::time::Duration;

use common::{Harness, Kind, TestJob, Unregistered, wait_until};
use core_jobs::{Counts, Dispatch, DispatchOptions, JobCounters, RecentOutcome};

const T: Duration = Duration::from_secs(10);

suite!(
    successes_failures_and_retries_are_counted_per_queue_and_job,
    unknown_jobs_count_as_failures_under_their_name,
    a_worker_counts_into_the_counters_it_is_given,
    the_recent_ring_is_off_by_default,
    the_recent_ring_keeps_the_newest_first_with_their_outcomes,
    the_recent_ring_is_bounded,
);

/// (processed, failed, retried)
fn triple(c: Counts) -> (u64, u64, u64) {
    (c.processed, c.failed, c.retried)
}

mod cases {
    use super::*;

    pub async fn successes_failures_and_retries_are_counted_per_queue_and_job(h: Harness) {
        let counters = h.queue.counters().clone();
        assert_eq!(counters.snapshot().total(), Counts::default());
        let worker = h.worker().queue("mail").spawn().unwrap();
        for i in 0..3 {
            TestJob::new(format!("ok-{i}"))
                .dispatch(&h.queue)
                .await
                .unwrap();
        }
        // Fails once, then succeeds: one retry, one success.
        TestJob::new("flaky")
            .failing(1, 1)
            .dispatch(&h.queue)
            .await
            .unwrap();
        // Fails twice with one retry allowed: one retry, then a failure.
        TestJob::new("doomed")
            .failing(5, 1)
            .dispatch(&h.queue)
            .await
            .unwrap();
        h.queue
            .dispatch_with(
                &TestJob::new("mailed"),
                DispatchOptions::new().on_queue("mail"),
            )
            .await
            .unwrap();

        let settled = wait_until(T, || {
            let s = counters.snapshot();
            triple(s.queue("default")) == (4, 1, 2) && triple(s.queue("mail")) == (1, 0, 0)
        })
        .await;
        let snap = counters.snapshot();
        assert!(settled, "counts did not settle: {snap:?}");
        // Per job: only test_job ran; the cells of the other registered jobs are there at zero.
        let test_job: Vec<_> = snap
            .jobs()
            .iter()
            .filter(|j| j.job == "test_job")
            .map(|j| (j.queue.as_str(), triple(j.counts)))
            .collect();
        assert_eq!(test_job, [("default", (4, 1, 2)), ("mail", (1, 0, 0))]);
        assert_eq!(triple(snap.total()), (5, 1, 2));
        assert_eq!(
            snap.by_queue()
                .into_iter()
                .map(|(q, c)| (q, triple(c)))
                .collect::<Vec<_>>(),
            [
                ("default".to_owned(), (4, 1, 2)),
                ("mail".to_owned(), (1, 0, 0))
            ]
        );
        // The worker's own totals say the same.
        let stats = worker.stats();
        assert_eq!((stats.processed, stats.failed, stats.retried), (5, 1, 2));
        worker.shutdown().await;
    }

    pub async fn unknown_jobs_count_as_failures_under_their_name(h: Harness) {
        let worker = h.worker().spawn().unwrap();
        Unregistered { n: 1 }.dispatch(&h.queue).await.unwrap();
        let counters = h.queue.counters();
        assert!(
            wait_until(T, || counters.snapshot().total().failed == 1).await,
            "the unknown job was not counted: {:?}",
            counters.snapshot()
        );
        let snap = counters.snapshot();
        let unknown = snap
            .jobs()
            .iter()
            .find(|j| j.job == "nobody_knows_me")
            .expect("counted under its name");
        assert_eq!(
            (unknown.queue.as_str(), triple(unknown.counts)),
            ("default", (0, 1, 0))
        );
        worker.shutdown().await;
    }

    pub async fn a_worker_counts_into_the_counters_it_is_given(h: Harness) {
        let own = JobCounters::new();
        // A clone of the queue shares its counters; a new registry does not.
        assert!(h.queue.clone().counters().same_as(h.queue.counters()));
        assert!(!own.same_as(h.queue.counters()));
        let worker = h.worker().counters(&own).spawn().unwrap();
        TestJob::new("a").dispatch(&h.queue).await.unwrap();
        assert!(wait_until(T, || own.snapshot().total().processed == 1).await);
        assert_eq!(h.queue.counters().snapshot().total(), Counts::default());
        worker.shutdown().await;
    }

    pub async fn the_recent_ring_is_off_by_default(h: Harness) {
        let counters = h.queue.counters().clone();
        assert_eq!(counters.recent_capacity(), 0);
        let worker = h.worker().spawn().unwrap();
        TestJob::new("a").dispatch(&h.queue).await.unwrap();
        TestJob::new("b")
            .failing(5, 0)
            .dispatch(&h.queue)
            .await
            .unwrap();
        assert!(
            wait_until(T, || {
                let t = counters.snapshot().total();
                t.processed == 1 && t.failed == 1
            })
            .await
        );
        assert!(counters.recent().is_empty(), "{:?}", counters.recent());
        worker.shutdown().await;
    }

    pub async fn the_recent_ring_keeps_the_newest_first_with_their_outcomes(h: Harness) {
        let counters = h.queue.counters().clone();
        counters.keep_recent(10);
        // One job at a time, so that the order of the ring is the order of the dispatches.
        let worker = h.worker().concurrency(1).spawn().unwrap();
        let ok = TestJob::new("ok")
            .sleeping(30)
            .dispatch(&h.queue)
            .await
            .unwrap();
        assert!(wait_until(T, || counters.recent().len() == 1).await);
        // Fails once, then succeeds on its retry.
        let flaky = TestJob::new("flaky")
            .failing(1, 1)
            .dispatch(&h.queue)
            .await
            .unwrap();
        assert!(wait_until(T, || counters.recent().len() == 3).await);
        let doomed = TestJob::new("doomed")
            .failing(5, 0)
            .dispatch(&h.queue)
            .await
            .unwrap();
        assert!(
            wait_until(T, || counters.recent().len() == 4).await,
            "{:?}",
            counters.recent()
        );
        let recent = counters.recent();
        let seen: Vec<(&str, RecentOutcome, u32)> = recent
            .iter()
            .map(|j| (j.id.as_str(), j.outcome, j.attempt))
            .collect();
        assert_eq!(
            seen,
            [
                (doomed.as_str(), RecentOutcome::Failed, 1),
                (flaky.as_str(), RecentOutcome::Succeeded, 2),
                (flaky.as_str(), RecentOutcome::Retried, 1),
                (ok.as_str(), RecentOutcome::Succeeded, 1),
            ]
        );
        for job in &recent {
            assert_eq!(
                (job.name.as_str(), job.queue.as_str()),
                ("test_job", "default")
            );
        }
        let oldest = &recent[3];
        assert!(oldest.duration >= Duration::from_millis(30), "{oldest:?}");
        assert!(oldest.duration < Duration::from_secs(5), "{oldest:?}");
        assert!(recent[0].finished_at >= oldest.finished_at);
        assert!((chrono::Utc::now() - oldest.finished_at).num_seconds() < 10);
        worker.shutdown().await;
    }

    pub async fn the_recent_ring_is_bounded(h: Harness) {
        let counters = h.queue.counters().clone();
        counters.keep_recent(3);
        let worker = h.worker().concurrency(1).queue("mail").spawn().unwrap();
        let mut ids = Vec::new();
        for i in 0..6 {
            ids.push(
                h.queue
                    .dispatch_with(
                        &TestJob::new(format!("j{i}")),
                        DispatchOptions::new().on_queue("mail"),
                    )
                    .await
                    .unwrap()
                    .unwrap(),
            );
        }
        assert!(wait_until(T, || counters.snapshot().total().processed == 6).await);
        let recent = counters.recent();
        assert_eq!(recent.len(), 3, "{recent:?}");
        assert!(recent.iter().all(|j| j.queue == "mail"));
        // The newest three: the worker took them in dispatch order, one at a time.
        let kept: Vec<&str> = recent.iter().map(|j| j.id.as_str()).collect();
        assert_eq!(kept, [ids[5].as_str(), ids[4].as_str(), ids[3].as_str()]);
        // Off again: nothing kept, nothing added.
        counters.keep_recent(0);
        TestJob::new("after").dispatch(&h.queue).await.unwrap();
        assert!(wait_until(T, || counters.snapshot().total().processed == 7).await);
        assert!(counters.recent().is_empty());
        worker.shutdown().await;
    }
}
