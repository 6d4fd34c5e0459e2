//! `JobBuffer`: jobs pushed inside a transaction reach the queue only if it commits, after the
//! commit through the relay's wake-up path (not its periodic sweep), and several relays never
//! dispatch one row twice; a row that cannot be dispatched neither re-sends nor blocks the
//! others, and is parked, visible and retryable.

mod common;

use std::time::{Duration, Instant};

use common::{TestJob, wait_for};
use core_db::Database;
use core_jobs::{JobBuffer, Queue};

/// A buffer whose relay sweeps only at its start (then once an hour): a job that reaches the
/// queue later was relayed by a wake-up.
fn without_sweep(db: &Database, queue: &Queue) -> JobBuffer {
    JobBuffer::with_intervals(
        db.clone(),
        queue.clone(),
        Duration::from_secs(3600),
        Duration::from_secs(30),
    )
}

async fn ready(queue: &Queue) -> u64 {
    queue.stats("default").await.unwrap().ready
}

async fn rollback_dispatches_nothing(db: Database) {
    let queue = Queue::memory();
    let buffer = JobBuffer::new(db.clone(), queue.clone());
    let relay = buffer.spawn_relay();
    let mut tx = db.begin().await.unwrap();
    buffer.push(&mut tx, &TestJob::new("never")).await.unwrap();
    tx.rollback().await.unwrap();
    let mut tx = db.begin().await.unwrap();
    buffer
        .push(&mut tx, &TestJob::new("dropped"))
        .await
        .unwrap();
    drop(tx); // dropped without commit: rolled back too
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(buffer.relay_once().await.unwrap(), 0);
    assert_eq!(ready(&queue).await, 0);
    assert_eq!(buffer.pending().await.unwrap(), 0);
    relay.shutdown().await;
}

/// Commits with a plain `tx.commit()` five times and returns how long each job took to reach
/// the queue, sorted. The relay's safety-net sweep runs only at its start (then once an hour),
/// so a job that arrives was relayed by the wake-up path.
async fn commit_dispatches_promptly(db: Database) -> Vec<Duration> {
    let queue = Queue::memory();
    let buffer = without_sweep(&db, &queue);
    let relay = buffer.spawn_relay();
    tokio::time::sleep(Duration::from_millis(200)).await; // the relay is up and listening
    let mut took = Vec::new();
    for i in 0..5u64 {
        let mut tx = db.begin().await.unwrap();
        let id = buffer
            .push(&mut tx, &TestJob::new(format!("c{i}")))
            .await
            .unwrap();
        assert!(!id.as_str().is_empty());
        tokio::time::sleep(Duration::from_millis(30)).await; // the transaction stays open a while
        assert_eq!(ready(&queue).await, i, "nothing before the commit");
        tx.commit().await.unwrap();
        let committed = Instant::now();
        assert!(
            wait_for(Duration::from_secs(10), || async {
                ready(&queue).await == i + 1
            })
            .await
        );
        took.push(committed.elapsed());
    }
    took.sort();
    // The relay deletes a pass's rows right after sending them: wait for that, bounded.
    assert!(
        wait_for(Duration::from_secs(10), || async {
            buffer.pending().await.unwrap() == 0
        })
        .await,
        "relayed rows are deleted"
    );
    relay.shutdown().await;
    took
}

/// Every commit reached the queue (the 10 s wait of each is only a hang guard: with the sweep an
/// hour away, arriving at all proves the wake-up path). How fast is the benchmark's business;
/// the figures are printed for the curious.
fn assert_prompt(backend: &str, took: &[Duration]) {
    eprintln!("{backend}: commit → queue over 5 commits: {took:?}");
    assert_eq!(took.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_rollback_dispatches_nothing() {
    let Some(pg) = test_support::postgres("postgres_rollback_dispatches_nothing").await else {
        return;
    };
    rollback_dispatches_nothing(Database::Postgres(pg.pool.clone())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_rollback_dispatches_nothing() {
    let db = test_support::sqlite().await;
    rollback_dispatches_nothing(Database::Sqlite(db.pool.clone())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_commit_reaches_the_queue_without_a_sweep() {
    let Some(pg) =
        test_support::postgres("postgres_commit_reaches_the_queue_without_a_sweep").await
    else {
        return;
    };
    let took = commit_dispatches_promptly(Database::Postgres(pg.pool.clone())).await;
    assert_prompt("postgres", &took);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_commit_reaches_the_queue_without_a_sweep() {
    let db = test_support::sqlite().await;
    let took = commit_dispatches_promptly(Database::Sqlite(db.pool.clone())).await;
    assert_prompt("sqlite", &took);
}

/// A process without a relay commits through `JobBuffer::commit`: the relay of another process
/// (here another buffer, whose sweep is an hour away) dispatches every job at once, woken by
/// the notification sent after the commits, however many commits run concurrently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_commit_wakes_the_relay_of_another_process() {
    let Some(pg) =
        test_support::postgres("postgres_commit_wakes_the_relay_of_another_process").await
    else {
        return;
    };
    let db = Database::Postgres(pg.pool.clone());
    let queue = Queue::memory();
    let relaying = without_sweep(&db, &queue);
    let relay = relaying.spawn_relay();
    tokio::time::sleep(Duration::from_millis(200)).await; // the relay is up and listening
    let committing = JobBuffer::new(db.clone(), queue.clone());
    let mut expected = 0;
    for round in 0..3u64 {
        let mut tasks = Vec::new();
        for t in 0..16u64 {
            let (db, committing) = (db.clone(), committing.clone());
            tasks.push(tokio::spawn(async move {
                for i in 0..5u64 {
                    let mut tx = db.begin().await.unwrap();
                    let job = TestJob::new(format!("x{round}-{t}-{i}"));
                    committing.push(&mut tx, &job).await.unwrap();
                    committing.commit(tx).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        expected += 80;
        assert!(
            wait_for(Duration::from_secs(10), || async {
                ready(&queue).await == expected
            })
            .await,
            "round {round}: {} of {expected} dispatched",
            ready(&queue).await
        );
        // Quiet between rounds: the next burst must wake the relay afresh.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(committing.pending().await.unwrap(), 0);
    relay.shutdown().await;
}

/// An outbox row written by a statement of the application's own commits, and is dispatched,
/// exactly when that statement does: a statement that fails leaves nothing to dispatch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_an_outbox_row_in_ones_own_statement_commits_with_it() {
    let Some(pg) =
        test_support::postgres("postgres_an_outbox_row_in_ones_own_statement_commits_with_it")
            .await
    else {
        return;
    };
    let db = Database::Postgres(pg.pool.clone());
    db.execute("CREATE TABLE orders (id BIGINT PRIMARY KEY, receipt_job TEXT NOT NULL)")
        .await
        .unwrap();
    let queue = Queue::memory();
    let buffer = without_sweep(&db, &queue);
    let relay = buffer.spawn_relay();
    let order = |id: i64, job: TestJob| {
        let (buffer, pool) = (buffer.clone(), pg.pool.clone());
        async move {
            let row = buffer.outbox_row(&job, None).unwrap();
            let sql = format!(
                "WITH dispatch AS ({}) INSERT INTO orders (id, receipt_job) VALUES ($7, $8)",
                row.insert_sql(1)
            );
            let done = row
                .bind(sqlx::query(&sql))
                .bind(id)
                .bind(row.id().as_str())
                .execute(&pool)
                .await;
            if done.is_ok() {
                buffer.committed();
            }
            done.map(|_| row.id().clone())
        }
    };
    let id = order(1, TestJob::new("o1")).await.unwrap();
    assert!(
        wait_for(Duration::from_secs(10), || async {
            ready(&queue).await == 1
        })
        .await,
        "dispatched at once, without a sweep"
    );
    let stored: String = sqlx::query_scalar("SELECT receipt_job FROM orders WHERE id = 1")
        .fetch_one(&pg.pool)
        .await
        .unwrap();
    assert_eq!(stored, id.as_str(), "the statement saw the job's id");
    // The same order id again: the statement fails, and its outbox row goes with it.
    assert!(order(1, TestJob::new("o1-again")).await.is_err());
    let delayed = buffer
        .outbox_row(&TestJob::new("later"), Some(Duration::from_secs(60)))
        .unwrap();
    let sql = format!("WITH dispatch AS ({}) SELECT 1", delayed.insert_sql(1));
    delayed
        .bind(sqlx::query(&sql))
        .execute(&pg.pool)
        .await
        .unwrap();
    buffer.committed();
    assert!(
        wait_for(Duration::from_secs(10), || async {
            queue.stats("default").await.unwrap().delayed == 1
        })
        .await,
        "a delayed row is relayed as a delayed job"
    );
    assert_eq!(
        ready(&queue).await,
        1,
        "the failed statement dispatched nothing"
    );
    assert!(
        wait_for(Duration::from_secs(10), || async {
            buffer.pending().await.unwrap() == 0
        })
        .await
    );
    // A conditional dispatch: `insert_sql_from` writes the row only when the statement's
    // first step wrote one.
    let touch = |id: i64, key: &'static str| {
        let (buffer, pool) = (buffer.clone(), pg.pool.clone());
        async move {
            let row = buffer.outbox_row(&TestJob::new(key), None).unwrap();
            let sql = format!(
                "WITH moved AS (UPDATE orders SET receipt_job = $8 WHERE id = $7 RETURNING id), \
                 dispatch AS ({} RETURNING 1) SELECT COUNT(*) FROM dispatch",
                row.insert_sql_from(1, "moved")
            );
            let sent: i64 = sqlx::Row::get(
                &row.bind(sqlx::query(&sql))
                    .bind(id)
                    .bind(row.id().as_str())
                    .fetch_one(&pool)
                    .await
                    .unwrap(),
                0,
            );
            buffer.committed();
            sent
        }
    };
    assert_eq!(touch(1, "touched").await, 1, "an existing order dispatches");
    assert_eq!(touch(2, "untouched").await, 0, "a missing one does not");
    assert!(
        wait_for(Duration::from_secs(10), || async {
            ready(&queue).await == 2
        })
        .await,
        "the conditional row is relayed"
    );
    // The relay deletes a row just after pushing it.
    assert!(
        wait_for(Duration::from_secs(10), || async {
            buffer.pending().await.unwrap() == 0
        })
        .await,
        "the relayed rows leave the outbox"
    );
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_dispatches_rows_committed_while_no_relay_ran() {
    let db = test_support::sqlite().await;
    let db = Database::Sqlite(db.pool.clone());
    let queue = Queue::memory();
    let buffer = JobBuffer::new(db.clone(), queue.clone());
    let mut tx = db.begin().await.unwrap();
    buffer
        .push(&mut tx, &TestJob::new("a").grouped("g"))
        .await
        .unwrap();
    buffer
        .push_in(&mut tx, &TestJob::new("b"), Duration::from_secs(60))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let relay = JobBuffer::new(db.clone(), queue.clone()).spawn_relay();
    assert!(
        wait_for(Duration::from_secs(10), || async {
            buffer.pending().await.unwrap() == 0
        })
        .await
    );
    let s = queue.stats("default").await.unwrap();
    assert_eq!(
        (s.ready, s.delayed),
        (1, 1),
        "group and delay carried over: {s:?}"
    );
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_relays_never_dispatch_a_row_twice() {
    let Some(pg) = test_support::postgres("several_relays_never_dispatch_a_row_twice").await else {
        return;
    };
    let db = Database::Postgres(pg.pool.clone());
    let queue = Queue::memory();
    let n = 2_000u64;
    let mut tx = db.begin().await.unwrap();
    let buffer = JobBuffer::new(db.clone(), queue.clone());
    for i in 0..n {
        buffer
            .push(&mut tx, &TestJob::new(format!("r{i}")))
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let b = JobBuffer::new(db.clone(), queue.clone());
        tasks.push(tokio::spawn(async move {
            let mut mine = 0;
            loop {
                match b.relay_once().await.unwrap() {
                    0 => return mine,
                    k => mine += k,
                }
            }
        }));
    }
    let mut per_relay = Vec::new();
    for t in tasks {
        per_relay.push(t.await.unwrap());
    }
    eprintln!("rows dispatched per relay: {per_relay:?}");
    assert_eq!(per_relay.iter().sum::<u64>(), n);
    assert_eq!(ready(&queue).await, n, "every row dispatched exactly once");
    assert_eq!(buffer.pending().await.unwrap(), 0);
}

/// Pushing inside a transaction works from a spawned task, as it must from an axum handler: the
/// futures are `Send` for every lifetime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffering_can_run_in_a_spawned_task() {
    let sqlite = test_support::sqlite().await;
    let db = Database::Sqlite(sqlite.pool.clone());
    let queue = Queue::memory();
    let buffer = JobBuffer::new(db.clone(), queue.clone());
    let task = tokio::spawn({
        let buffer = buffer.clone();
        async move {
            let mut tx = db.begin().await?;
            tx.execute("CREATE TABLE orders (id INTEGER)").await?;
            buffer.push(&mut tx, &TestJob::new("spawned")).await?;
            buffer.commit(tx).await?;
            buffer.relay_once().await?;
            anyhow::Ok(())
        }
    });
    task.await.unwrap().unwrap();
    assert!(
        wait_for(Duration::from_secs(5), || async {
            ready(&queue).await == 1
        })
        .await
    );
}

/// Writes an outbox row the queue rejects (its queue name has a space) straight into the table.
async fn insert_bad_row(db: &Database, job_id: &str) {
    let sql = "INSERT INTO job_outbox (job_id, job_name, queue, payload) VALUES ($1, 'test_job', 'bad queue', '{}')";
    match db {
        Database::Postgres(pool) => {
            sqlx::query(sql).bind(job_id).execute(pool).await.unwrap();
        }
        Database::Sqlite(pool) => {
            sqlx::query(sql).bind(job_id).execute(pool).await.unwrap();
        }
    }
}

/// The keys of the test jobs in the memory queue's ready list, counted.
async fn ready_keys(queue: &Queue) -> std::collections::BTreeMap<String, u32> {
    let mut keys = std::collections::BTreeMap::new();
    // Drain the queue through a worker-free path: claim everything from a throwaway worker.
    let rec = std::sync::Arc::new(common::Recorder::default());
    let ctx = core_jobs::JobContext::new(queue.clone()).with_extension(rec.clone());
    let worker = core_jobs::Worker::new(queue.clone(), ctx)
        .register::<TestJob>()
        .block_for(Duration::from_millis(20))
        .spawn()
        .unwrap();
    common::wait_for(Duration::from_secs(10), || async {
        let s = queue.stats("default").await.unwrap();
        s.ready == 0 && worker.stats().in_flight == 0
    })
    .await;
    worker.shutdown().await;
    for key in (0..20).map(|i| format!("row{i}")) {
        let runs = rec.runs(&key);
        if runs > 0 {
            keys.insert(key, runs);
        }
    }
    keys
}

/// A row the queue rejects sits in the middle of a batch: the rows around it are each
/// dispatched exactly once (none is re-sent on the next pass, none behind it is held up), and
/// the bad one is parked after its attempts, listed with its error, and can be retried.
async fn a_failing_row_is_parked_and_does_not_block_the_rest(db: Database) {
    let queue = Queue::memory();
    let buffer = JobBuffer::new(db.clone(), queue.clone()).with_max_attempts(3);
    let mut tx = db.begin().await.unwrap();
    for i in 0..3 {
        buffer
            .push(&mut tx, &TestJob::new(format!("row{i}")))
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    insert_bad_row(&db, "bad-row-job").await;
    let mut tx = db.begin().await.unwrap();
    for i in 3..6 {
        buffer
            .push(&mut tx, &TestJob::new(format!("row{i}")))
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();

    // Passes until the bad row is parked (the 10 s bound is a hang guard).
    let parked = wait_for(Duration::from_secs(10), || async {
        let _ = buffer.relay_once().await;
        !buffer.parked(10).await.unwrap().is_empty()
    })
    .await;
    let s = queue.stats("default").await.unwrap();
    assert_eq!(s.ready, 6, "the six good rows, each once: {s:?}");
    assert!(parked, "the bad row is parked");
    let rows = buffer.parked(10).await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].job_id, "bad-row-job");
    assert_eq!(rows[0].attempts, 3);
    assert!(
        rows[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("invalid queue name")),
        "{rows:?}"
    );
    assert_eq!(
        buffer.pending().await.unwrap(),
        1,
        "only the parked row is left"
    );
    // Parked rows are left alone by the relay.
    assert_eq!(buffer.relay_once().await.unwrap(), 0);
    assert_eq!(queue.stats("default").await.unwrap().ready, 6);

    // Once its cause is fixed, retrying puts it back and the relay sends it.
    let fix = "UPDATE job_outbox SET queue = 'default' WHERE job_id = 'bad-row-job'";
    match &db {
        Database::Postgres(pool) => {
            sqlx::query(fix).execute(pool).await.unwrap();
        }
        Database::Sqlite(pool) => {
            sqlx::query(fix).execute(pool).await.unwrap();
        }
    }
    assert!(!buffer.retry_parked(rows[0].id + 1000).await.unwrap());
    assert!(buffer.retry_parked(rows[0].id).await.unwrap());
    assert!(buffer.parked(10).await.unwrap().is_empty());
    assert_eq!(buffer.relay_once().await.unwrap(), 1);
    assert_eq!(buffer.pending().await.unwrap(), 0);
    let keys = ready_keys(&queue).await;
    assert_eq!(keys.len(), 6, "{keys:?}");
    assert!(
        keys.values().all(|n| *n == 1),
        "each good row ran once: {keys:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_failing_row_is_parked_and_does_not_block_the_rest() {
    let db = test_support::sqlite().await;
    a_failing_row_is_parked_and_does_not_block_the_rest(Database::Sqlite(db.pool.clone())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_failing_row_is_parked_and_does_not_block_the_rest() {
    let Some(pg) =
        test_support::postgres("postgres_a_failing_row_is_parked_and_does_not_block_the_rest")
            .await
    else {
        return;
    };
    a_failing_row_is_parked_and_does_not_block_the_rest(Database::Postgres(pg.pool.clone())).await;
}

/// The Redis connection is cut in the middle of a batch, pass after pass: what was sent before
/// each cut is deleted (never sent again), the rest is sent once Redis is back, and nothing is
/// parked for an outage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_cut_mid_batch_resends_nothing() {
    use test_support::proxy::{Direction, Fault, FaultProxy};
    let Some(redis) = test_support::redis("a_redis_cut_mid_batch_resends_nothing").await else {
        return;
    };
    let sqlite = test_support::sqlite().await;
    let db = Database::Sqlite(sqlite.pool.clone());
    let proxy = FaultProxy::for_url(&redis.url).await.unwrap();
    let queue = Queue::redis(&proxy.url(&redis.url), redis.prefix.clone())
        .await
        .unwrap();
    let buffer = JobBuffer::new(db.clone(), queue.clone()).with_max_attempts(2);
    let n = 20u64;
    let mut tx = db.begin().await.unwrap();
    for i in 0..n {
        buffer
            .push(&mut tx, &TestJob::new(format!("row{i}")))
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    // Each connection carries about three dispatches, then is cut.
    proxy.set(Direction::Upstream, Fault::CutAfter(1_777));
    let mut failed = 0;
    for _ in 0..4 {
        if buffer.relay_once().await.is_err() {
            failed += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(failed > 0, "the cut made some passes fail");
    proxy.heal();
    let drained = wait_for(Duration::from_secs(10), || async {
        let _ = buffer.relay_once().await;
        buffer.pending().await.unwrap() == 0
    })
    .await;
    assert!(drained, "everything was relayed once Redis was back");
    assert!(
        buffer.parked(10).await.unwrap().is_empty(),
        "an outage parks nothing"
    );
    let ids = ready_ids(&redis).await;
    let mut counts = std::collections::BTreeMap::<String, u32>::new();
    for id in ids {
        *counts.entry(id).or_default() += 1;
    }
    eprintln!("dispatches per job: {counts:?}");
    assert_eq!(counts.len() as u64, n, "every row dispatched");
    assert!(
        counts.values().all(|c| *c == 1),
        "each exactly once: {counts:?}"
    );
}

/// The job ids in the test queue's ready list.
async fn ready_ids(redis: &test_support::TestRedis) -> Vec<String> {
    let mut conn = redis.connection().await;
    let items: Vec<String> = redis::cmd("LRANGE")
        .arg(redis.key("queue:default:ready"))
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap();
    items
        .iter()
        .map(|e| {
            let v: serde_json::Value = serde_json::from_str(e).unwrap();
            v["id"].as_str().unwrap().to_owned()
        })
        .collect()
}
