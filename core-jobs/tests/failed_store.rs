//! The failed-job store and its commands, on PostgreSQL and SQLite (one suite, both backends).

use std::time::Duration;

use chrono::Utc;
use core_db::infra::db::Database;
use core_jobs::{FailedJobs, FailureRecord, Queue, cli};

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
                    super::$case(core_db::infra::db::Database::Postgres(pg.pool.clone())).await;
                    drop(pg);
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let db = test_support::sqlite().await;
                    super::$case(core_db::infra::db::Database::Sqlite(db.pool.clone())).await;
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
);

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
