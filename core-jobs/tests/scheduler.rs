//! The scheduler: each tick dispatched once across scheduler processes, `.when(..)`,
//! `.without_overlapping()` released when the job finishes, with a TTL as the safety net.

mod common;

use std::time::Duration;

use chrono::{TimeZone, Utc};
use common::{Harness, Kind, TestJob, wait_until};
use core_jobs::Queue;
use core_jobs::schedule::{ScheduledJob, Scheduler};

fn every_second(key: &str) -> ScheduledJob {
    let key = key.to_owned();
    ScheduledJob::new("* * * * * *", move || TestJob::new(key.clone())).unwrap()
}

async fn ready(queue: &Queue) -> u64 {
    queue.stats("default").await.unwrap().ready
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tick_is_dispatched_once_by_several_schedulers() {
    let Some(r) = test_support::redis("each_tick_is_dispatched_once_by_several_schedulers").await
    else {
        return;
    };
    // Three scheduler "processes", each with its own queue handle.
    let mut schedulers = Vec::new();
    for _ in 0..3 {
        let q = Queue::redis(&r.url, r.prefix.clone()).await.unwrap();
        schedulers.push(Scheduler::new(q).job(every_second("tick")));
    }
    let base = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
    for s in 0..5 {
        let tick = base + chrono::Duration::seconds(s);
        let (a, b, c) = tokio::join!(
            schedulers[0].run_tick(tick),
            schedulers[1].run_tick(tick),
            schedulers[2].run_tick(tick)
        );
        let n = a.unwrap().len() + b.unwrap().len() + c.unwrap().len();
        assert_eq!(n, 1, "tick {tick} dispatched {n} times");
    }
    let q = Queue::redis(&r.url, r.prefix.clone()).await.unwrap();
    assert_eq!(ready(&q).await, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_schedulers_dispatch_each_second_once() {
    let Some(r) = test_support::redis("running_schedulers_dispatch_each_second_once").await else {
        return;
    };
    let mut handles = Vec::new();
    for _ in 0..2 {
        let q = Queue::redis(&r.url, r.prefix.clone()).await.unwrap();
        handles.push(Scheduler::new(q).job(every_second("live")).spawn().unwrap());
    }
    let started = Utc::now();
    tokio::time::sleep(Duration::from_millis(2_600)).await;
    for h in handles {
        h.shutdown().await;
    }
    let ended = Utc::now();
    let ticks = ended.timestamp() - started.timestamp(); // whole seconds crossed
    let q = Queue::redis(&r.url, r.prefix.clone()).await.unwrap();
    let n = ready(&q).await as i64;
    assert!(
        (ticks - 1..=ticks).contains(&n),
        "{n} jobs for {ticks} ticks from two schedulers"
    );
}

#[tokio::test]
async fn when_false_skips_the_tick_and_cron_is_respected() {
    let queue = Queue::memory();
    let s = Scheduler::new(queue.clone())
        .job(every_second("no").when(|| false))
        .job(ScheduledJob::new("0 0 * * * *", || TestJob::new("hourly")).unwrap());
    let tick = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 1).unwrap();
    assert!(s.run_tick(tick).await.unwrap().is_empty());
    let top = Utc.with_ymd_and_hms(2026, 11, 1, 13, 0, 0).unwrap();
    assert_eq!(s.run_tick(top).await.unwrap().len(), 1, "the hourly one");
    assert_eq!(ready(&queue).await, 1);
}

async fn overlap_lock_is_released_when_the_job_finishes(kind: Kind) {
    let Some(h) = Harness::new(kind, "overlap_lock_is_released_when_the_job_finishes").await else {
        return;
    };
    let s = Scheduler::new(h.queue.clone())
        .with_cache(h.cache.clone())
        .job(
            ScheduledJob::new("* * * * * *", || TestJob::new("exclusive").sleeping(300))
                .unwrap()
                .without_overlapping(),
        );
    let w = h.worker().spawn().unwrap();
    let base = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
    let tick = |s| base + chrono::Duration::seconds(s);
    assert_eq!(s.run_tick(tick(0)).await.unwrap().len(), 1);
    assert!(wait_until(Duration::from_secs(5), || h.rec.runs("exclusive") == 1).await);
    assert!(
        s.run_tick(tick(1)).await.unwrap().is_empty(),
        "skipped while the previous run holds the lock"
    );
    assert!(
        wait_until(Duration::from_secs(5), || h
            .rec
            .log()
            .contains(&"end:exclusive".to_owned()))
        .await
    );
    tokio::time::sleep(Duration::from_millis(100)).await; // the worker releases after the ack
    assert_eq!(
        s.run_tick(tick(2)).await.unwrap().len(),
        1,
        "released when the job finished"
    );
    assert!(wait_until(Duration::from_secs(5), || h.rec.runs("exclusive") == 2).await);
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlap_lock_is_released_when_the_job_finishes_memory() {
    overlap_lock_is_released_when_the_job_finishes(Kind::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlap_lock_is_released_when_the_job_finishes_redis() {
    overlap_lock_is_released_when_the_job_finishes(Kind::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlap_lock_expires_by_its_ttl_when_no_worker_releases_it() {
    let Some(h) = Harness::new(Kind::Redis, "overlap_lock_expires_by_its_ttl").await else {
        return;
    };
    let s = Scheduler::new(h.queue.clone())
        .with_cache(h.cache.clone())
        .job(every_second("orphan").without_overlapping_for(Duration::from_millis(300)));
    let base = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
    assert_eq!(s.run_tick(base).await.unwrap().len(), 1);
    assert!(
        s.run_tick(base + chrono::Duration::seconds(1))
            .await
            .unwrap()
            .is_empty()
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        s.run_tick(base + chrono::Duration::seconds(2))
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn without_overlapping_needs_a_cache() {
    let err = Scheduler::new(Queue::memory())
        .job(every_second("x").without_overlapping())
        .spawn()
        .unwrap_err();
    assert!(err.to_string().contains("cache"), "{err}");
}

/// Steps and values that would overflow the field arithmetic are parse errors, not panics; the
/// largest sensible steps still parse.
#[test]
fn huge_steps_and_values_are_parse_errors() {
    use core_jobs::schedule::Cron;
    for bad in [
        "1/4294967295 * * * * *",
        "59/4294967295 * * * * *",
        "*/4294967295 * * * * *",
        "0-59/4294967295 * * * * *",
        "* * * * * 0/4294967295",
        "1/4294967296 * * * * *",
        "4294967295 * * * * *",
        "0-4294967295 * * * * *",
        "*/61 * * * * *",
        "0 0 */25 * * *",
        "0 0 0 1/32 * *",
        "0 0 0 * */13 *",
    ] {
        let parsed = std::panic::catch_unwind(|| Cron::parse(bad));
        assert!(
            matches!(parsed, Ok(Err(_))),
            "{bad:?} must be a parse error, not a panic or a schedule"
        );
    }
    for fine in [
        "*/60 * * * * *",
        "0/59 * * * * *",
        "0 0 */24 * * *",
        "0 0 0 * * */8",
    ] {
        assert!(Cron::parse(fine).is_ok(), "{fine:?} parses");
    }
    let t = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 7).unwrap();
    let c = Cron::parse("*/60 * * * * *").unwrap();
    assert_eq!(
        c.next_after(t),
        Some(Utc.with_ymd_and_hms(2026, 11, 1, 12, 1, 0).unwrap()),
        "a step as long as the field's range only matches its start"
    );
}

/// The queue refuses connections for a few seconds: the ticks due meanwhile are dispatched once
/// it is back (they are within the lateness bound), not dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticks_that_hit_a_queue_outage_are_retried_within_their_lateness() {
    use test_support::proxy::FaultProxy;
    let Some(r) =
        test_support::redis("ticks_that_hit_a_queue_outage_are_retried_within_their_lateness")
            .await
    else {
        return;
    };
    let proxy = FaultProxy::for_url(&r.url).await.unwrap();
    let q = Queue::redis(&proxy.url(&r.url), r.prefix.clone())
        .await
        .unwrap();
    let handle = Scheduler::new(q)
        .job(every_second("outage"))
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    proxy.refuse(true);
    proxy.drop_connections();
    let outage_from = Utc::now().timestamp();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let outage_to = Utc::now().timestamp();
    proxy.refuse(false);
    proxy.heal();
    let healed = Utc::now().timestamp();
    tokio::time::sleep(Duration::from_millis(6_000)).await;
    handle.shutdown().await;
    let mut conn = r.connection().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!(
            "{}:queue:default:unique:schedule:test_job:*",
            test_support::glob_escape(&r.prefix)
        ))
        .query_async(&mut conn)
        .await
        .unwrap();
    let ticks: std::collections::BTreeSet<i64> = keys
        .iter()
        .filter_map(|k| k.rsplit(':').next()?.parse().ok())
        .collect();
    eprintln!("outage {outage_from}..={outage_to}, ticks dispatched: {ticks:?}");
    for t in outage_from..=healed + 1 {
        assert!(
            ticks.contains(&t),
            "tick {t} (during or just after the outage) was dispatched: {ticks:?}"
        );
    }
    let jobs = ready(&Queue::redis(&r.url, r.prefix.clone()).await.unwrap()).await;
    assert_eq!(jobs as usize, ticks.len(), "one job per tick");
}
