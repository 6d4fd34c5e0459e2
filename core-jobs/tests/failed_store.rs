//! The failed-job store and its commands, on PostgreSQL and SQLite (one suite, both backends).

use std::time::Duration;

use chrono::Utc;
use core_db::Database;
use core_jobs::{FailedFilter, FailedJobs, FailureRecord, Queue, cli};

fn record(name: &str, age: chrono::Duration) -> FailureRecord {
    let mut r = FailureRecord::new(
        format!("id-{name}"),
        name,
        "default",
        format!(r#"{{"key":"{name}"}}"#),
        format!("{name} went wrong\nsecond line"),
    );
    r.attempts = 4;
    r.failed_at = Utc::now() - age;
    r
}

macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(pg) = test_support::postgres(stringify!($case)).await else { return };
                    super::$case(core_db::Database::Postgres(pg.pool.clone())).await;
                    drop(pg);
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let db = test_support::sqlite().await;
                    super::$case(core_db::Database::Sqlite(db.pool.clone())).await;
                }
            )*
        }
    };
}

suite!(
    records_and_lists_newest_first,
    retry_redispatches_and_deletes,
    retry_all_redispatches_everything,
    forget_deletes_one,
    prune_deletes_older_than,
    commands_list_retry_forget_prune,
    ages_beyond_the_calendar_are_errors_not_panics,
    recording_the_same_failure_twice_keeps_one_row,
    filters_match_by_name_queue_error_time_and_id,
    error_filter_escapes_like_wildcards_and_ignores_case,
    retry_matching_redispatches_only_the_matching_rows,
    retry_matching_keeps_the_rows_it_could_not_dispatch,
    forget_matching_deletes_only_the_matching_rows,
);

/// A parked failure is written again when the reply to its first write was lost; the second
/// write must not add a row.
async fn recording_the_same_failure_twice_keeps_one_row(db: Database) {
    let store = FailedJobs::new(db);
    let r = record("twice", chrono::Duration::zero());
    let first = store.record(&r).await.unwrap();
    let second = store.record(&r).await.unwrap();
    assert_eq!(first, second, "the second write finds the first row");
    assert_eq!(store.count().await.unwrap(), 1);
    // Another failure of the same job (a later attempt) is a row of its own.
    let mut later = r.clone();
    later.failed_at += chrono::Duration::seconds(1);
    let third = store.record(&later).await.unwrap();
    assert_ne!(third, first);
    assert_eq!(store.count().await.unwrap(), 2);
    let listed = store.list(10).await.unwrap();
    assert_eq!(listed.len(), 2);
}

async fn records_and_lists_newest_first(db: Database) {
    let store = FailedJobs::new(db);
    let a = store
        .record(&record("a", chrono::Duration::zero()))
        .await
        .unwrap();
    let b = store
        .record(&record("b", chrono::Duration::zero()))
        .await
        .unwrap();
    assert!(b > a);
    let rows = store.list(10).await.unwrap();
    assert_eq!(
        rows.iter().map(|r| r.job_name.as_str()).collect::<Vec<_>>(),
        vec!["b", "a"]
    );
    assert_eq!(rows[0].attempts, 4);
    assert_eq!(rows[0].payload, r#"{"key":"b"}"#);
    assert!((Utc::now() - rows[0].failed_at).num_seconds().abs() < 5);
    assert_eq!(store.count().await.unwrap(), 2);
    assert_eq!(store.get(a).await.unwrap().unwrap().job_id, "id-a");
    assert!(store.get(9999).await.unwrap().is_none());
    assert_eq!(store.list(1).await.unwrap().len(), 1);
}

async fn retry_redispatches_and_deletes(db: Database) {
    let store = FailedJobs::new(db);
    let queue = Queue::memory();
    let id = store
        .record(&record("x", chrono::Duration::zero()))
        .await
        .unwrap();
    let job_id = store.retry(id, &queue).await.unwrap();
    assert_eq!(job_id.as_str(), "id-x");
    assert_eq!(queue.stats("default").await.unwrap().ready, 1);
    assert_eq!(store.count().await.unwrap(), 0);
}

async fn retry_all_redispatches_everything(db: Database) {
    let store = FailedJobs::new(db);
    let queue = Queue::memory();
    for n in ["a", "b", "c"] {
        store
            .record(&record(n, chrono::Duration::zero()))
            .await
            .unwrap();
    }
    assert_eq!(store.retry_all(&queue).await.unwrap(), 3);
    assert_eq!(queue.stats("default").await.unwrap().ready, 3);
    assert_eq!(store.count().await.unwrap(), 0);
}

async fn forget_deletes_one(db: Database) {
    let store = FailedJobs::new(db);
    let id = store
        .record(&record("f", chrono::Duration::zero()))
        .await
        .unwrap();
    assert!(store.forget(id).await.unwrap());
    assert!(!store.forget(id).await.unwrap());
}

async fn prune_deletes_older_than(db: Database) {
    let store = FailedJobs::new(db);
    store
        .record(&record("old", chrono::Duration::days(10)))
        .await
        .unwrap();
    store
        .record(&record("new", chrono::Duration::hours(1)))
        .await
        .unwrap();
    assert_eq!(store.prune(Duration::from_secs(86_400)).await.unwrap(), 1);
    let rows = store.list(10).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].job_name, "new");
}

async fn commands_list_retry_forget_prune(db: Database) {
    let store = FailedJobs::new(db);
    let queue = Queue::memory();
    assert_eq!(
        cli::failed_command(&["list"], &store, &queue)
            .await
            .unwrap(),
        "no failed jobs"
    );
    let a = store
        .record(&record("alpha", chrono::Duration::zero()))
        .await
        .unwrap();
    let b = store
        .record(&record("beta", chrono::Duration::days(30)))
        .await
        .unwrap();
    let list = cli::failed_command(&["list"], &store, &queue)
        .await
        .unwrap();
    assert!(list.starts_with("ID\tFAILED AT"), "{list}");
    assert!(
        list.contains("alpha went wrong") && !list.contains("second line"),
        "{list}"
    );
    let show = cli::failed_command(&["show".to_owned(), a.to_string()], &store, &queue)
        .await
        .unwrap();
    assert!(
        show.contains("second line") && show.contains(r#"{"key":"alpha"}"#),
        "{show}"
    );
    let out = cli::failed_command(&["retry", &a.to_string()], &store, &queue)
        .await
        .unwrap();
    assert_eq!(out, format!("re-dispatched failed job {a} as job id-alpha"));
    assert_eq!(
        cli::failed_command(&["prune", "7d"], &store, &queue)
            .await
            .unwrap(),
        "pruned 1 failed job(s) older than 7d"
    );
    assert!(
        cli::failed_command(&["forget", &b.to_string()], &store, &queue)
            .await
            .is_err(),
        "already pruned"
    );
    store
        .record(&record("gamma", chrono::Duration::zero()))
        .await
        .unwrap();
    assert_eq!(
        cli::failed_command(&["retry", "all"], &store, &queue)
            .await
            .unwrap(),
        "re-dispatched 1 failed job(s)"
    );
    assert_eq!(queue.stats("default").await.unwrap().ready, 2);
    let err = cli::failed_command(&["explode"], &store, &queue)
        .await
        .unwrap_err();
    let usage = err.downcast_ref::<cli::UsageError>().expect("a UsageError");
    assert_eq!(usage.detail, r#"unknown arguments "explode""#);
    assert!(err.to_string().ends_with(cli::FAILED_USAGE), "{err}");
    for bad in [
        &["prune", "7y"][..],
        &["prune", "99999999999999999d"],
        &["list", "-1"],
        &["show", "x"],
        &["forget", "1.5"],
    ] {
        let err = cli::failed_command(bad, &store, &queue).await.unwrap_err();
        assert!(
            err.downcast_ref::<cli::UsageError>().is_some(),
            "{bad:?}: {err}"
        );
    }
    let err = cli::failed_command(&["forget", "424242"], &store, &queue)
        .await
        .unwrap_err();
    assert!(err.downcast_ref::<cli::UsageError>().is_none(), "{err}");
    assert_eq!(err.to_string(), "no failed job with id 424242");
}

/// `prune 9999999999d` (about 27 million years) is a usage error, and so is any age over
/// `cli::MAX_AGE`; `prune` itself answers an error, not a panic, for an age it cannot subtract.
async fn ages_beyond_the_calendar_are_errors_not_panics(db: Database) {
    let store = FailedJobs::new(db);
    let queue = Queue::memory();
    for age in ["9999999999d", "36501d", "3153600001"] {
        let err = cli::failed_command(&["prune", age], &store, &queue)
            .await
            .unwrap_err();
        assert!(
            err.downcast_ref::<cli::UsageError>().is_some(),
            "{age}: {err}"
        );
    }
    assert!(
        cli::failed_command(&["prune", "36500d"], &store, &queue)
            .await
            .is_ok()
    );
    for age in [Duration::from_secs(9_999_999_999 * 86_400), Duration::MAX] {
        assert!(store.prune(age).await.is_err(), "{age:?}");
    }
}

/// Writing a failure while `failed_jobs` is locked by another transaction takes about the
/// store's timeout and then fails, instead of waiting for the lock (the 10 s bound is a hang
/// guard far below the default lock waits: PostgreSQL waits forever, the test SQLite 5 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_record_gives_up_on_a_locked_table() {
    let Some(pg) = test_support::postgres("postgres_record_gives_up_on_a_locked_table").await
    else {
        return;
    };
    let store = FailedJobs::new(Database::Postgres(pg.pool.clone()))
        .with_timeout(Duration::from_millis(300));
    let mut locker = pg.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE failed_jobs IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *locker)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let res = tokio::time::timeout(
        Duration::from_secs(10),
        store.record(&record("locked", chrono::Duration::zero())),
    )
    .await
    .expect("record gave up on its own");
    eprintln!("gave up after {:?}: {res:?}", started.elapsed());
    assert!(res.is_err());
    locker.rollback().await.unwrap();
    store
        .record(&record("unlocked", chrono::Duration::zero()))
        .await
        .expect("written once the lock is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_record_gives_up_on_a_locked_database() {
    use sqlx::Connection;
    let db = test_support::sqlite().await;
    let store =
        FailedJobs::new(Database::Sqlite(db.pool.clone())).with_timeout(Duration::from_millis(300));
    let mut locker = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut locker)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let res = tokio::time::timeout(
        Duration::from_secs(4),
        store.record(&record("locked", chrono::Duration::zero())),
    )
    .await
    .expect("record gave up before the pool's 5 s busy timeout");
    eprintln!("gave up after {:?}: {res:?}", started.elapsed());
    assert!(res.is_err());
    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    // The pool's connection got its own busy timeout back.
    let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(busy, 5_000);
    store
        .record(&record("unlocked", chrono::Duration::zero()))
        .await
        .expect("written once the lock is gone");
}

/// A failure of `name` on `queue` with `error`, at `at`.
fn failure(name: &str, queue: &str, error: &str, at: chrono::DateTime<Utc>) -> FailureRecord {
    let mut r = FailureRecord::new(
        format!("id-{name}-{}", at.timestamp_millis()),
        name,
        queue,
        format!(r#"{{"name":"{name}"}}"#),
        error,
    );
    r.attempts = 3;
    r.failed_at = at;
    r
}

/// A time at a whole millisecond (what both databases keep exactly).
fn at_ms(ms: i64) -> chrono::DateTime<Utc> {
    chrono::DateTime::from_timestamp_millis(ms).unwrap()
}

const T0: i64 = 1_796_000_000_000;

async fn seed(store: &FailedJobs) -> Vec<i64> {
    let mut ids = Vec::new();
    for (i, (name, queue, error)) in [
        ("mail", "default", "SMTP timed out"),
        ("mail", "mail", "connection refused"),
        ("resize", "default", "image too large"),
        ("resize", "media", "Timed Out waiting"),
        ("report", "default", "disk full"),
    ]
    .into_iter()
    .enumerate()
    {
        let at = at_ms(T0 + i as i64 * 1000);
        ids.push(
            store
                .record(&failure(name, queue, error, at))
                .await
                .unwrap(),
        );
    }
    ids
}

async fn filters_match_by_name_queue_error_time_and_id(db: Database) {
    let store = FailedJobs::new(db);
    let ids = seed(&store).await;
    let count = |f: FailedFilter| {
        let store = store.clone();
        async move { store.count_matching(&f).await.unwrap() }
    };
    assert_eq!(count(FailedFilter::new()).await, 5);
    assert_eq!(count(FailedFilter::new().job_name("mail")).await, 2);
    assert_eq!(
        count(FailedFilter::new().job_name("Mail")).await,
        0,
        "names are exact"
    );
    assert_eq!(count(FailedFilter::new().queue("default")).await, 3);
    assert_eq!(
        count(FailedFilter::new().job_name("resize").queue("default")).await,
        1
    );
    assert_eq!(
        count(FailedFilter::new().error_contains("timed out")).await,
        2
    );
    // `from` is inclusive, `before` exclusive, to the millisecond.
    assert_eq!(
        count(FailedFilter::new().failed_from(at_ms(T0 + 1000))).await,
        4
    );
    assert_eq!(
        count(FailedFilter::new().failed_from(at_ms(T0 + 1001))).await,
        3
    );
    assert_eq!(
        count(FailedFilter::new().failed_before(at_ms(T0 + 1000))).await,
        1
    );
    assert_eq!(
        count(
            FailedFilter::new()
                .failed_from(at_ms(T0 + 1000))
                .failed_before(at_ms(T0 + 3000))
        )
        .await,
        2
    );
    assert_eq!(count(FailedFilter::new().id_at_most(ids[1])).await, 2);
    assert_eq!(store.last_id().await.unwrap(), Some(ids[4]));
    let by_queue = store.count_by_queue().await.unwrap();
    assert_eq!(
        by_queue.into_iter().collect::<Vec<_>>(),
        vec![
            ("default".to_owned(), 3),
            ("mail".to_owned(), 1),
            ("media".to_owned(), 1)
        ]
    );
    store.forget_matching(&FailedFilter::new()).await.unwrap();
    assert_eq!(store.last_id().await.unwrap(), None);
}

async fn error_filter_escapes_like_wildcards_and_ignores_case(db: Database) {
    let store = FailedJobs::new(db);
    for (i, error) in [
        "100% done",
        "1000 done",
        "a_b",
        "axb",
        "wow!",
        "wow",
        "LOUD Error",
    ]
    .into_iter()
    .enumerate()
    {
        store
            .record(&failure("j", "default", error, at_ms(T0 + i as i64)))
            .await
            .unwrap();
    }
    let count = |text: &str| {
        let store = store.clone();
        let f = FailedFilter::new().error_contains(text);
        async move { store.count_matching(&f).await.unwrap() }
    };
    assert_eq!(count("0%").await, 1, "% matches itself");
    assert_eq!(count("a_b").await, 1, "_ matches itself");
    assert_eq!(count("w!").await, 1, "! matches itself");
    assert_eq!(count("!").await, 1);
    assert_eq!(count("loud error").await, 1, "case is ignored");
    assert_eq!(count("%").await, 1);
    assert_eq!(count("").await, 7, "an empty text is in every error");
}

async fn retry_matching_redispatches_only_the_matching_rows(db: Database) {
    let store = FailedJobs::new(db);
    let queue = Queue::memory();
    seed(&store).await;
    let retried = store
        .retry_matching(&FailedFilter::new().queue("default"), &queue)
        .await
        .unwrap();
    assert_eq!(retried, 3);
    assert_eq!(queue.stats("default").await.unwrap().ready, 3);
    assert_eq!(queue.stats("mail").await.unwrap().ready, 0);
    assert_eq!(store.count().await.unwrap(), 2);
    assert_eq!(
        store
            .count_matching(&FailedFilter::new().queue("default"))
            .await
            .unwrap(),
        0
    );
    // Pinned by id: nothing above it is touched.
    let rows = store.list(10).await.unwrap();
    let oldest = rows.iter().map(|r| r.id).min().unwrap();
    let retried = store
        .retry_matching(&FailedFilter::new().id_at_most(oldest), &queue)
        .await
        .unwrap();
    assert_eq!(retried, 1);
    assert_eq!(store.count().await.unwrap(), 1);
    assert_eq!(
        store
            .retry_matching(&FailedFilter::new().job_name("nothing"), &queue)
            .await
            .unwrap(),
        0
    );
}

/// A dispatch that fails midway stops the run: the rows already dispatched are gone, the one
/// that failed and those after it are still there, and no job is lost.
async fn retry_matching_keeps_the_rows_it_could_not_dispatch(db: Database) {
    let store = FailedJobs::new(db);
    let queue = Queue::memory();
    store
        .record(&failure("a", "default", "x", at_ms(T0)))
        .await
        .unwrap();
    // A queue name the queue refuses (whitespace): its dispatch fails.
    let bad = store
        .record(&failure("b", "bad queue", "x", at_ms(T0 + 1)))
        .await
        .unwrap();
    let after = store
        .record(&failure("c", "default", "x", at_ms(T0 + 2)))
        .await
        .unwrap();
    let err = store
        .retry_matching(&FailedFilter::new(), &queue)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("invalid queue name"), "{err}");
    assert_eq!(queue.stats("default").await.unwrap().ready, 1);
    let left: Vec<i64> = store.list(10).await.unwrap().iter().map(|r| r.id).collect();
    assert_eq!(left, vec![after, bad]);
}

async fn forget_matching_deletes_only_the_matching_rows(db: Database) {
    let store = FailedJobs::new(db);
    seed(&store).await;
    let f = FailedFilter::new().error_contains("TIMED");
    assert_eq!(store.forget_matching(&f).await.unwrap(), 2);
    assert_eq!(store.count_matching(&f).await.unwrap(), 0);
    assert_eq!(store.count().await.unwrap(), 3);
    assert_eq!(store.forget_matching(&f).await.unwrap(), 0);
}
