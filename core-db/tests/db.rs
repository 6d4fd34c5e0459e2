//! The database handle against real PostgreSQL and a temporary SQLite file.

use std::time::Duration;

use core_db::Error;
use core_db::db::{Backend, Database, DatabaseOptions};

mod db_support;

on_both_backends!(
    framework_tables_exist_with_their_indexes,
    failed_jobs_keep_undecodable_payloads_verbatim,
    committed_writes_are_visible,
    rolled_back_and_dropped_transactions_leave_nothing,
    migrating_twice_is_a_no_op,
);

mod behaviour {
    use core_db::db::{Backend, Database, Tx};

    async fn count(db: &Database, table: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        match db {
            Database::Postgres(pool) => sqlx::query_scalar(&sql).fetch_one(pool).await.unwrap(),
            Database::Sqlite(pool) => sqlx::query_scalar(&sql).fetch_one(pool).await.unwrap(),
        }
    }

    async fn insert_outbox(tx: &mut Tx, job_id: &str) {
        let sql = match tx.backend() {
            Backend::Postgres => {
                "INSERT INTO job_outbox (job_id, job_name, queue, payload) VALUES ($1, 'send_email', 'default', '{}')"
            }
            Backend::Sqlite => {
                "INSERT INTO job_outbox (job_id, job_name, queue, payload) VALUES (?1, 'send_email', 'default', '{}')"
            }
        };
        match tx {
            Tx::Postgres(_) => {
                sqlx::query(sql)
                    .bind(job_id)
                    .execute(tx.as_postgres().unwrap())
                    .await
                    .unwrap();
            }
            Tx::Sqlite(_) => {
                sqlx::query(sql)
                    .bind(job_id)
                    .execute(tx.as_sqlite().unwrap())
                    .await
                    .unwrap();
            }
        }
    }

    pub async fn framework_tables_exist_with_their_indexes(db: &Database) {
        let sql = match db.backend() {
            Backend::Postgres => {
                "SELECT indexname::text FROM pg_indexes WHERE tablename IN ('failed_jobs', 'job_outbox') ORDER BY 1"
            }
            Backend::Sqlite => {
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name IN ('failed_jobs', 'job_outbox') AND name NOT LIKE 'sqlite_%' ORDER BY 1"
            }
        };
        let indexes: Vec<String> = match db {
            Database::Postgres(pool) => sqlx::query_scalar(sql).fetch_all(pool).await.unwrap(),
            Database::Sqlite(pool) => sqlx::query_scalar(sql).fetch_all(pool).await.unwrap(),
        };
        for expected in [
            "failed_jobs_failed_at_idx",
            "failed_jobs_job_name_idx",
            "job_outbox_claimed_until_idx",
        ] {
            assert!(
                indexes.iter().any(|i| i == expected),
                "{expected} missing from {indexes:?}"
            );
        }
        assert_eq!(count(db, "failed_jobs").await, 0);
        assert_eq!(count(db, "job_outbox").await, 0);
    }

    pub async fn failed_jobs_keep_undecodable_payloads_verbatim(db: &Database) {
        let payload = "{\"to\": \"ann@example.com\", oops";
        let columns = "(job_id, job_name, queue, payload, error, attempts, group_id)";
        // The same insert and read on either backend; only the placeholders differ.
        macro_rules! insert_then_read {
            ($pool:expr, $placeholders:literal) => {{
                sqlx::query(&format!(
                    "INSERT INTO failed_jobs {columns} VALUES {}",
                    $placeholders
                ))
                .bind("j-1")
                .bind("send_email")
                .bind("default")
                .bind(payload)
                .bind("undecodable payload")
                .bind(3)
                .bind(None::<String>)
                .execute($pool)
                .await
                .unwrap();
                sqlx::query_as("SELECT job_name, payload, attempts, group_id FROM failed_jobs ORDER BY failed_at DESC")
                    .fetch_one($pool).await.unwrap()
            }};
        }
        let (job_name, stored, attempts, group): (String, String, i32, Option<String>) = match db {
            Database::Postgres(pool) => insert_then_read!(pool, "($1, $2, $3, $4, $5, $6, $7)"),
            Database::Sqlite(pool) => insert_then_read!(pool, "(?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
        };
        assert_eq!(job_name, "send_email");
        assert_eq!(stored, payload);
        assert_eq!(attempts, 3);
        assert_eq!(group, None);
    }

    pub async fn committed_writes_are_visible(db: &Database) {
        let mut tx = db.begin().await.unwrap();
        insert_outbox(&mut tx, "a").await;
        insert_outbox(&mut tx, "b").await;
        assert_eq!(
            count(db, "job_outbox").await,
            0,
            "not visible before commit"
        );
        tx.commit().await.unwrap();
        assert_eq!(count(db, "job_outbox").await, 2);
    }

    pub async fn rolled_back_and_dropped_transactions_leave_nothing(db: &Database) {
        let mut tx = db.begin().await.unwrap();
        insert_outbox(&mut tx, "a").await;
        tx.rollback().await.unwrap();
        {
            let mut tx = db.begin().await.unwrap();
            insert_outbox(&mut tx, "b").await;
            // Dropped without commit.
        }
        // A failing statement inside a transaction does not commit the earlier ones either.
        let mut tx = db.begin().await.unwrap();
        insert_outbox(&mut tx, "c").await;
        assert!(
            tx.execute("INSERT INTO no_such_table VALUES (1)")
                .await
                .is_err()
        );
        drop(tx);
        assert_eq!(count(db, "job_outbox").await, 0);
    }

    pub async fn migrating_twice_is_a_no_op(db: &Database) {
        let before = count(db, "_sqlx_migrations").await;
        assert!(before >= 1);
        db.migrate().await.unwrap();
        assert_eq!(count(db, "_sqlx_migrations").await, before);
        assert_eq!(db.execute("DELETE FROM job_outbox").await.unwrap(), 0);
    }
}

#[tokio::test]
async fn sqlite_creates_missing_directories_and_migrates_idempotently() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nested/deeper/app.sqlite3");
    let url = format!("sqlite://{}", file.display());
    let db = Database::connect(&url).await.unwrap();
    assert_eq!(db.backend(), Backend::Sqlite);
    assert!(file.exists(), "the SQLite file is created");
    db.migrate().await.unwrap();
    db.migrate().await.unwrap();
    db.ping(Duration::from_secs(1)).await.unwrap();

    let pool = db.as_sqlite().expect("a SQLite pool");
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(mode.to_lowercase(), "wal");
    let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(fk, 1);
    assert!(db.as_postgres().is_none());

    db.close().await;
    assert!(
        db.ping(Duration::from_secs(1)).await.is_err(),
        "a closed pool fails"
    );
}

#[tokio::test]
async fn postgres_connects_pings_and_migrates() {
    let Some(pg) = test_support::postgres("postgres_connects_pings_and_migrates").await else {
        return;
    };
    let db = Database::connect(&pg.url).await.unwrap();
    assert_eq!(db.backend(), Backend::Postgres);
    db.ping(Duration::from_secs(2)).await.unwrap();
    db.migrate().await.unwrap();
    db.migrate().await.unwrap();
    let pool = db.as_postgres().expect("a PostgreSQL pool");
    let name: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(name, pg.name);
    db.close().await;
}

#[tokio::test]
async fn unknown_schemes_are_configuration_errors() {
    for url in [
        "mysql://localhost/db",
        "",
        "redis://127.0.0.1",
        "data/app.sqlite3",
    ] {
        match Database::connect(url).await {
            Err(Error::Config(message)) => assert!(message.contains("postgres://"), "{message}"),
            other => panic!("{url:?} gave {other:?}"),
        }
    }
    assert_eq!(
        Backend::from_url("postgresql://x/y").unwrap(),
        Backend::Postgres
    );
    assert_eq!(
        Backend::from_url("sqlite::memory:").unwrap(),
        Backend::Sqlite
    );
    assert_eq!(Backend::Postgres.as_str(), "postgres");
}

#[tokio::test]
async fn an_unreachable_server_fails_within_the_acquire_timeout() {
    // Port 1 on localhost refuses connections.
    let options = DatabaseOptions {
        acquire_timeout: Duration::from_millis(500),
        ..DatabaseOptions::default()
    };
    let started = std::time::Instant::now();
    let result = Database::connect_with("postgres://postgres@127.0.0.1:1/postgres", &options).await;
    assert!(matches!(result, Err(Error::Database(_))), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// Every `Database` and `Tx` method can be awaited in a spawned task (or an axum handler): the
/// futures are `Send` for any lifetime, which sqlx futures over `&mut` connections are not
/// always.
#[tokio::test]
async fn database_futures_can_be_spawned() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("db.sqlite3").display());
    let db = Database::connect(&url).await.unwrap();
    let task = tokio::spawn({
        let db = db.clone();
        async move {
            db.migrate().await?;
            db.execute("CREATE TABLE t (x INTEGER)").await?;
            let mut tx = db.begin().await?;
            tx.execute("INSERT INTO t VALUES (1)").await?;
            tx.commit().await?;
            let mut tx = db.begin().await?;
            tx.execute("INSERT INTO t VALUES (2)").await?;
            tx.rollback().await?;
            db.track_row_count("t").await?;
            db.untrack_row_count("t").await?;
            db.ping(Duration::from_secs(1)).await?;
            db.row_count("t").await
        }
    });
    assert_eq!(task.await.unwrap().unwrap(), 1);
}

/// The pool does not ping a connection on every acquire (one round trip per query), only one
/// that sat idle for `ping_if_idle_for`: a connection the server dropped while it was idle is
/// then found dead and replaced before anyone gets it.
#[tokio::test]
async fn an_idle_connection_the_server_dropped_is_replaced() {
    let Some(pg) =
        test_support::postgres("an_idle_connection_the_server_dropped_is_replaced").await
    else {
        return;
    };
    let options = DatabaseOptions {
        max_connections: 1,
        ping_if_idle_for: Duration::from_millis(100),
        ..DatabaseOptions::default()
    };
    let db = Database::connect_with(&pg.url, &options).await.unwrap();
    let pool = db.as_postgres().unwrap().clone();
    let pid = || async {
        sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid()")
            .fetch_one(&pool)
            .await
    };
    let first = pid().await.unwrap();
    assert_eq!(pid().await.unwrap(), first, "one connection, reused");
    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(first)
        .fetch_one(&pg.pool)
        .await
        .unwrap();
    assert!(killed);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = pid()
        .await
        .expect("the dead connection was replaced, not handed out");
    assert_ne!(second, first);
    db.close().await;
}

/// A connection whose server went silent (its replies are lost, the socket stays open) must not
/// keep its pool slot: sqlx pings a connection coming back to the pool without a time limit, so
/// without the bounded release check each such connection would hold its slot for ever, and a
/// pool of one is exhausted by the first. Here the one connection is coming back from a ping
/// when its replies start to be lost, then a query on the pool times out.
#[tokio::test]
async fn queries_timed_out_on_a_silent_server_give_their_pool_slots_back() {
    use test_support::proxy::{Direction, Fault, FaultProxy};
    let Some(pg) = test_support::postgres("db_silent_server").await else {
        return;
    };
    let proxy = FaultProxy::for_url(&pg.url).await.unwrap();
    let options = DatabaseOptions {
        max_connections: 1,
        acquire_timeout: Duration::from_secs(2),
        release_check_within: Some(Duration::from_millis(500)),
        ..DatabaseOptions::default()
    };
    let db = Database::connect_with(&proxy.url(&pg.url), &options)
        .await
        .unwrap();
    db.ping(Duration::from_secs(2)).await.unwrap();

    proxy.set(Direction::Downstream, Fault::BlackHole);
    let result = db.ping(Duration::from_millis(300)).await;
    assert!(
        matches!(result, Err(Error::Timeout { .. })),
        "a silent server times out: {result:?}"
    );
    proxy.heal();
    // The silent connection was closed, so the pool opens a new one.
    db.ping(Duration::from_secs(3))
        .await
        .expect("the pool has its slots back once the server answers again");
}
