//! The behaviour every queue driver must have, written once and run on the in-process driver and
//! on Redis: dispatch, delays, retries, the exact failure path, groups, unique dispatch,
//! failed-job management, graceful shutdown.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use chrono::Utc;
use common::{
    Harness, Kind, OnFailed, Strict, StrictImposter, TestJob, Unregistered, wait_for, wait_until,
};
use core_jobs::{Dispatch, DispatchOptions, Error, Worker};

const T: Duration = Duration::from_secs(10);

suite!(
    dispatch_runs_each_job_once,
    dispatch_in_waits_then_runs_on_time,
    dispatch_at_runs_at_its_time,
    retried_failure_never_calls_failed,
    retry_after_holds_the_retry_back,
    failed_runs_exactly_once_after_max_retries_plus_one_runs,
    error_in_failed_still_writes_the_row,
    panic_in_failed_still_writes_the_row,
    panic_in_handle_is_a_failed_attempt,
    timeout_is_a_failed_attempt,
    unknown_job_is_recorded_at_once,
    undecodable_payload_is_recorded_at_once,
    groups_run_fifo_one_at_a_time,
    grouped_failure_path_calls_failed_once_and_holds_the_group,
    duplicate_job_name_fails_at_startup,
    unique_dispatch_happens_once,
    failure_is_kept_while_failed_jobs_is_unreachable,
    retrying_a_failed_job_resets_its_attempts,
    shutdown_waits_for_running_jobs,
    shutdown_after_grace_leaves_job_to_lease_recovery,
    concurrent_shutdowns_all_wait_for_the_worker,
    jobs_can_dispatch_jobs,
    stats_count_processed_failed_retried,
);

mod cases {
    use super::*;

    pub async fn dispatch_runs_each_job_once(h: Harness) {
        let w = h.worker().spawn().unwrap();
        let mut ids = Vec::new();
        for i in 0..20 {
            ids.push(
                TestJob::new(format!("j{i}"))
                    .dispatch(&h.queue)
                    .await
                    .unwrap(),
            );
        }
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 20, "ids are unique");
        assert!(wait_until(T, || h.rec.total_runs() == 20).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
        for i in 0..20 {
            assert_eq!(h.rec.runs(&format!("j{i}")), 1);
        }
        assert_eq!(h.rec.attempts("j0"), vec![1]);
        assert_eq!(
            h.rec.all_failed_calls(),
            0,
            "failed() never runs on success"
        );
        w.shutdown().await;
        let s = h.queue.stats("default").await.unwrap();
        assert_eq!((s.ready, s.in_flight, s.delayed), (0, 0, 0), "{s:?}");
        assert!(h.failed_rows().await.is_empty());
    }

    pub async fn dispatch_in_waits_then_runs_on_time(h: Harness) {
        let w = h.worker().spawn().unwrap();
        let start = Instant::now();
        TestJob::new("later")
            .dispatch_in(&h.queue, Duration::from_millis(400))
            .await
            .unwrap();
        assert_eq!(h.queue.stats("default").await.unwrap().delayed, 1);
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(h.rec.runs("later"), 0, "not before its time");
        assert!(wait_until(T, || h.rec.runs("later") == 1).await);
        // The property is the order (not before its time, then it runs); how soon after is
        // the benchmark's business, printed here only for the curious.
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(400), "{took:?}");
        eprintln!("a job due in 400 ms started after {took:?}");
        w.shutdown().await;
    }

    pub async fn dispatch_at_runs_at_its_time(h: Harness) {
        let w = h.worker().spawn().unwrap();
        TestJob::new("past")
            .dispatch_at(&h.queue, Utc::now() - chrono::Duration::seconds(5))
            .await
            .unwrap();
        TestJob::new("soon")
            .dispatch_at(&h.queue, Utc::now() + chrono::Duration::milliseconds(300))
            .await
            .unwrap();
        assert!(wait_until(T, || h.rec.runs("past") == 1).await);
        assert_eq!(h.rec.runs("soon"), 0);
        assert!(wait_until(T, || h.rec.runs("soon") == 1).await);
        w.shutdown().await;
    }

    pub async fn retried_failure_never_calls_failed(h: Harness) {
        let w = h.worker().spawn().unwrap();
        TestJob::new("flaky")
            .failing(2, 3)
            .dispatch(&h.queue)
            .await
            .unwrap();
        assert!(wait_until(T, || h.rec.runs("flaky") == 3).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(h.rec.runs("flaky"), 3, "succeeded on the third run");
        assert_eq!(h.rec.attempts("flaky"), vec![1, 2, 3]);
        assert!(
            h.rec.failed_calls("flaky").is_empty(),
            "failed() is not called for a retried failure"
        );
        assert!(h.failed_rows().await.is_empty());
        w.shutdown().await;
    }

    pub async fn retry_after_holds_the_retry_back(h: Harness) {
        let w = h.worker().spawn().unwrap();
        let mut job = TestJob::new("busy").failing(1, 1);
        job.retry_after_ms = Some(700);
        let sent = tokio::time::Instant::now();
        job.dispatch(&h.queue).await.unwrap();
        assert!(wait_until(T, || h.rec.runs("busy") == 1).await);
        let first = sent.elapsed();
        assert!(wait_until(T, || h.rec.runs("busy") == 2).await);
        let waited = sent.elapsed() - first;
        // The backoff is 10 ms; the failure asked for 700 ms, and the longer wait wins.
        assert!(
            waited >= Duration::from_millis(650),
            "retried after {waited:?}"
        );
        assert!(h.rec.failed_calls("busy").is_empty());
        // A RetryAfter on the last attempt still ends in failed(), with its message.
        let mut last = TestJob::new("busy-last").failing(u32::MAX, 0);
        last.retry_after_ms = Some(50);
        last.dispatch(&h.queue).await.unwrap();
        assert!(wait_until(T, || h.rec.failed_calls("busy-last").len() == 1).await);
        assert_eq!(
            h.rec.failed_calls("busy-last"),
            vec!["busy 1 (retry after 50ms)".to_owned()]
        );
        w.shutdown().await;
    }

    pub async fn failed_runs_exactly_once_after_max_retries_plus_one_runs(h: Harness) {
        let w = h.worker().spawn().unwrap();
        let id = TestJob::new("doomed")
            .failing(u32::MAX, 2)
            .dispatch(&h.queue)
            .await
            .unwrap();
        assert!(wait_for(T, || async { !h.failed_rows().await.is_empty() }).await);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(h.rec.runs("doomed"), 3, "max_retries + 1 runs");
        assert_eq!(
            h.rec.failed_calls("doomed"),
            vec!["boom 3".to_owned()],
            "failed() once, with the last error"
        );
        let rows = h.failed_rows().await;
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!(row.job_id, id.as_str());
        assert_eq!(row.job_name, "test_job");
        assert_eq!(row.queue, "default");
        assert_eq!(row.attempts, 3);
        assert_eq!(row.error, "boom 3");
        let payload: serde_json::Value = serde_json::from_str(&row.payload).unwrap();
        assert_eq!(payload["key"], "doomed");
        let s = h.queue.stats("default").await.unwrap();
        assert_eq!((s.ready, s.in_flight, s.delayed), (0, 0, 0), "{s:?}");
        w.shutdown().await;
    }

    pub async fn error_in_failed_still_writes_the_row(h: Harness) {
        let w = h.worker().spawn().unwrap();
        let mut job = TestJob::new("bad-callback").failing(u32::MAX, 1);
        job.on_failed = OnFailed::Err;
        job.dispatch(&h.queue).await.unwrap();
        assert!(wait_for(T, || async { h.failed_rows().await.len() == 1 }).await);
        assert_eq!(h.rec.failed_calls("bad-callback").len(), 1);
        assert_eq!(h.rec.runs("bad-callback"), 2);
        w.shutdown().await;
    }

    pub async fn panic_in_failed_still_writes_the_row(h: Harness) {
        let w = h.worker().spawn().unwrap();
        let mut job = TestJob::new("panicky-callback").failing(u32::MAX, 0);
        job.on_failed = OnFailed::Panic;
        job.dispatch(&h.queue).await.unwrap();
        assert!(wait_for(T, || async { h.failed_rows().await.len() == 1 }).await);
        assert_eq!(h.rec.failed_calls("panicky-callback").len(), 1);
        // The worker survived the panic and keeps working.
        TestJob::new("after").dispatch(&h.queue).await.unwrap();
        assert!(wait_until(T, || h.rec.runs("after") == 1).await);
        w.shutdown().await;
    }

    pub async fn panic_in_handle_is_a_failed_attempt(h: Harness) {
        let w = h.worker().spawn().unwrap();
        let mut job = TestJob::new("panics").failing(0, 1);
        job.panic = true;
        job.dispatch(&h.queue).await.unwrap();
        assert!(wait_for(T, || async { h.failed_rows().await.len() == 1 }).await);
        assert_eq!(h.rec.runs("panics"), 2);
        let calls = h.rec.failed_calls("panics");
        assert_eq!(calls.len(), 1);
        assert!(calls[0].contains("panicked"), "{calls:?}");
        assert!(h.failed_rows().await[0].error.contains("panicked on run 2"));
        w.shutdown().await;
    }

    pub async fn timeout_is_a_failed_attempt(h: Harness) {
        let w = h.worker().spawn().unwrap();
        // It would sleep far longer than the wait below: a row within it means it was cancelled
        // at its timeout (how soon after is not this test's business).
        let mut job = TestJob::new("slow").sleeping(60_000);
        job.timeout_ms = Some(100);
        job.dispatch(&h.queue).await.unwrap();
        assert!(
            wait_for(T, || async { h.failed_rows().await.len() == 1 }).await,
            "cancelled at its timeout"
        );
        let rows = h.failed_rows().await;
        assert!(rows[0].error.contains("timed out"), "{}", rows[0].error);
        assert_eq!(h.rec.failed_calls("slow").len(), 1);
        w.shutdown().await;
    }

    pub async fn unknown_job_is_recorded_at_once(h: Harness) {
        let w = h.worker().spawn().unwrap();
        let id = Unregistered { n: 1 }.dispatch(&h.queue).await.unwrap();
        assert!(wait_for(T, || async { h.failed_rows().await.len() == 1 }).await);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let rows = h.failed_rows().await;
        assert_eq!(rows.len(), 1, "recorded once, never retried in a loop");
        assert_eq!(rows[0].job_id, id.as_str());
        assert_eq!(rows[0].job_name, "nobody_knows_me");
        assert_eq!(rows[0].attempts, 0);
        assert_eq!(rows[0].payload, r#"{"n":1}"#);
        assert!(
            rows[0].error.contains("unknown job name"),
            "{}",
            rows[0].error
        );
        let s = h.queue.stats("default").await.unwrap();
        assert_eq!((s.ready, s.in_flight, s.delayed), (0, 0, 0), "{s:?}");
        w.shutdown().await;
    }

    pub async fn undecodable_payload_is_recorded_at_once(h: Harness) {
        let w = h.worker().spawn().unwrap();
        StrictImposter { n: "seven".into() }
            .dispatch(&h.queue)
            .await
            .unwrap();
        Strict { n: 7 }.dispatch(&h.queue).await.unwrap();
        assert!(wait_for(T, || async { h.failed_rows().await.len() == 1 }).await);
        assert!(
            wait_until(T, || h.rec.runs("strict") == 1).await,
            "the good one runs"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        let rows = h.failed_rows().await;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].job_name, "strict");
        assert_eq!(rows[0].payload, r#"{"n":"seven"}"#, "kept byte for byte");
        assert!(
            rows[0].error.contains("undecodable payload"),
            "{}",
            rows[0].error
        );
        assert_eq!(h.rec.runs("strict"), 1, "the bad one never ran");
        w.shutdown().await;
    }

    pub async fn groups_run_fifo_one_at_a_time(h: Harness) {
        let w = h.worker().concurrency(8).spawn().unwrap();
        for i in 0..6 {
            for g in ["a", "b"] {
                TestJob::new(format!("{g}{i}"))
                    .grouped(g)
                    .sleeping(15)
                    .dispatch(&h.queue)
                    .await
                    .unwrap();
            }
        }
        assert!(wait_until(T, || h.rec.total_runs() == 12).await);
        assert!(wait_until(T, || h.rec.log().len() == 24).await);
        let log = h.rec.log();
        for g in ["a", "b"] {
            let starts: Vec<_> = log
                .iter()
                .filter(|l| l.starts_with(&format!("start:{g}")))
                .cloned()
                .collect();
            let expected: Vec<_> = (0..6).map(|i| format!("start:{g}{i}")).collect();
            assert_eq!(starts, expected, "group {g} runs in dispatch order");
            assert_eq!(
                h.rec.max_overlap.lock().unwrap()[g],
                1,
                "group {g} runs one at a time"
            );
        }
        w.shutdown().await;
        let s = h.queue.stats("default").await.unwrap();
        assert_eq!(
            (s.ready, s.in_flight, s.grouped_waiting),
            (0, 0, 0),
            "{s:?}"
        );
    }

    pub async fn grouped_failure_path_calls_failed_once_and_holds_the_group(h: Harness) {
        let w = h.worker().spawn().unwrap();
        let mut first = TestJob::new("g-first").failing(u32::MAX, 2).grouped("g");
        first.backoff_ms = 150;
        first.on_failed = OnFailed::Err;
        first.dispatch(&h.queue).await.unwrap();
        TestJob::new("g-second")
            .grouped("g")
            .dispatch(&h.queue)
            .await
            .unwrap();
        assert!(wait_until(T, || h.rec.runs("g-second") == 1).await);
        let log: Vec<_> = h
            .rec
            .log()
            .into_iter()
            .filter(|l| l.starts_with("start:"))
            .collect();
        assert_eq!(
            log,
            vec![
                "start:g-first",
                "start:g-first",
                "start:g-first",
                "start:g-second"
            ],
            "the retries' backoff holds the group"
        );
        assert_eq!(
            h.rec.failed_calls("g-first").len(),
            1,
            "failed() once on the grouped path"
        );
        assert!(h.rec.failed_calls("g-second").is_empty());
        let rows = h.failed_rows().await;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].group_id.as_deref(), Some("g"));
        assert_eq!(rows[0].attempts, 3);
        w.shutdown().await;
    }

    pub async fn duplicate_job_name_fails_at_startup(h: Harness) {
        let err = Worker::new(h.queue.clone(), h.ctx.clone())
            .register::<Strict>()
            .register::<TestJob>()
            .register::<StrictImposter>()
            .spawn()
            .unwrap_err();
        assert!(matches!(err, Error::DuplicateJob("strict")), "{err}");
    }

    pub async fn unique_dispatch_happens_once(h: Harness) {
        let opts = || DispatchOptions::new().unique("only-once", Duration::from_secs(60));
        let a = TestJob::new("u")
            .dispatch_with(&h.queue, opts())
            .await
            .unwrap();
        let b = TestJob::new("u")
            .dispatch_with(&h.queue, opts())
            .await
            .unwrap();
        assert!(a.is_some());
        assert!(b.is_none());
        assert_eq!(h.queue.stats("default").await.unwrap().ready, 1);
        let w = h.worker().spawn().unwrap();
        assert!(wait_until(T, || h.rec.runs("u") == 1).await);
        w.shutdown().await;
    }

    pub async fn failure_is_kept_while_failed_jobs_is_unreachable(h: Harness) {
        h.db.execute("ALTER TABLE failed_jobs RENAME TO failed_jobs_away")
            .await
            .unwrap();
        let w = h.worker().spawn().unwrap();
        TestJob::new("kept")
            .failing(u32::MAX, 0)
            .dispatch(&h.queue)
            .await
            .unwrap();
        assert!(
            wait_for(T, || async {
                h.queue.stats("default").await.unwrap().pending_failures == 1
            })
            .await,
            "the failure waits in the queue"
        );
        let s = h.queue.stats("default").await.unwrap();
        assert_eq!(
            (s.ready, s.in_flight, s.delayed),
            (0, 0, 0),
            "not retried: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(h.rec.runs("kept"), 1);
        assert_eq!(h.rec.failed_calls("kept").len(), 1);
        h.db.execute("ALTER TABLE failed_jobs_away RENAME TO failed_jobs")
            .await
            .unwrap();
        assert!(
            wait_for(T, || async { h.failed_rows().await.len() == 1 }).await,
            "written once reachable"
        );
        assert!(
            wait_for(T, || async {
                h.queue.stats("default").await.unwrap().pending_failures == 0
            })
            .await
        );
        let rows = h.failed_rows().await;
        assert_eq!(rows[0].error, "boom 1");
        assert_eq!(
            h.rec.failed_calls("kept").len(),
            1,
            "failed() is not called again"
        );
        w.shutdown().await;
    }

    pub async fn retrying_a_failed_job_resets_its_attempts(h: Harness) {
        let w = h.worker().spawn().unwrap();
        // Fails its first 2 runs and has no retries: fails once, then succeeds when retried.
        let id = TestJob::new("again")
            .failing(1, 0)
            .dispatch(&h.queue)
            .await
            .unwrap();
        assert!(wait_for(T, || async { h.failed_rows().await.len() == 1 }).await);
        let store = h.store();
        let row = &h.failed_rows().await[0];
        let retried = store.retry(row.id, &h.queue).await.unwrap();
        assert_eq!(retried, id, "the same job id");
        assert!(wait_until(T, || h.rec.runs("again") == 2).await);
        assert_eq!(h.rec.attempts("again"), vec![1, 1], "attempts reset");
        assert!(h.failed_rows().await.is_empty(), "the row is gone");
        assert!(matches!(
            store.retry(row.id, &h.queue).await,
            Err(Error::FailedJobNotFound(_))
        ));
        w.shutdown().await;
    }

    pub async fn shutdown_waits_for_running_jobs(h: Harness) {
        let w = h.worker().grace(Duration::from_secs(5)).spawn().unwrap();
        TestJob::new("busy")
            .sleeping(400)
            .dispatch(&h.queue)
            .await
            .unwrap();
        assert!(wait_until(T, || h.rec.runs("busy") == 1).await);
        let started = Instant::now();
        w.shutdown().await;
        assert!(
            started.elapsed() >= Duration::from_millis(200),
            "waited for the job"
        );
        assert!(h.rec.log().contains(&"end:busy".to_owned()));
        let s = h.queue.stats("default").await.unwrap();
        assert_eq!(
            (s.ready, s.in_flight),
            (0, 0),
            "acknowledged before stopping: {s:?}"
        );
        // Nothing is claimed after shutdown.
        TestJob::new("after-stop").dispatch(&h.queue).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(h.rec.runs("after-stop"), 0);
    }

    pub async fn shutdown_after_grace_leaves_job_to_lease_recovery(h: Harness) {
        let w = h
            .worker()
            .grace(Duration::from_millis(100))
            .lease(Duration::from_millis(600))
            .spawn()
            .unwrap();
        TestJob::new("long")
            .sleeping(1_500)
            .dispatch(&h.queue)
            .await
            .unwrap();
        assert!(wait_until(T, || h.rec.runs("long") == 1).await);
        w.shutdown().await;
        assert!(
            !h.rec.log().contains(&"end:long".to_owned()),
            "gave up after the grace period, before the job ended"
        );
        assert_eq!(
            h.queue.stats("default").await.unwrap().in_flight,
            1,
            "still leased"
        );
        let w2 = h
            .worker()
            .lease(Duration::from_millis(600))
            .spawn()
            .unwrap();
        assert!(
            wait_until(T, || h.rec.runs("long") == 2).await,
            "recovered after the lease expired"
        );
        assert!(wait_until(T, || h.rec.log().contains(&"end:long".to_owned())).await);
        w2.shutdown().await;
        let s = h.queue.stats("default").await.unwrap();
        assert_eq!((s.ready, s.in_flight), (0, 0), "{s:?}");
    }

    pub async fn concurrent_shutdowns_all_wait_for_the_worker(h: Harness) {
        let w = h.worker().grace(Duration::from_secs(5)).spawn().unwrap();
        TestJob::new("busy")
            .sleeping(400)
            .dispatch(&h.queue)
            .await
            .unwrap();
        assert!(wait_until(T, || h.rec.runs("busy") == 1).await);
        // What each caller sees when its shutdown returns: the job ended and was acknowledged.
        let stopped = || async {
            w.shutdown().await;
            let ended = h.rec.log().contains(&"end:busy".to_owned());
            let s = h.queue.stats("default").await.unwrap();
            (ended, s.ready, s.in_flight)
        };
        let (first, second) = tokio::join!(stopped(), stopped());
        assert_eq!(first, (true, 0, 0), "the first caller waited for the job");
        assert_eq!(second, (true, 0, 0), "the second caller waited for it too");
        // A caller that comes after the worker stopped returns at once.
        let started = Instant::now();
        assert_eq!(stopped().await, (true, 0, 0));
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    pub async fn jobs_can_dispatch_jobs(h: Harness) {
        let w = h.worker().spawn().unwrap();
        common::Spawner {
            child: "child".into(),
        }
        .dispatch(&h.queue)
        .await
        .unwrap();
        assert!(wait_until(T, || h.rec.runs("child") == 1).await);
        w.shutdown().await;
    }

    pub async fn stats_count_processed_failed_retried(h: Harness) {
        let w = h.worker().spawn().unwrap();
        TestJob::new("ok").dispatch(&h.queue).await.unwrap();
        TestJob::new("retry-once")
            .failing(1, 1)
            .dispatch(&h.queue)
            .await
            .unwrap();
        TestJob::new("fail")
            .failing(u32::MAX, 0)
            .dispatch(&h.queue)
            .await
            .unwrap();
        assert!(
            wait_until(T, || {
                let s = w.stats();
                s.processed == 2 && s.failed == 1 && s.retried == 1
            })
            .await,
            "{:?}",
            w.stats()
        );
        assert_eq!(w.stats().in_flight, 0);
        w.shutdown().await;
        // The harness built the driver this suite instance says it tests.
        let expected = match h.kind {
            Kind::Memory => core_jobs::QueueDriver::Memory,
            Kind::Redis => core_jobs::QueueDriver::Redis,
        };
        assert_eq!(h.queue.driver_kind(), expected);
    }
}
