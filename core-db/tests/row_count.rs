//! `Database::row_count` and `track_row_count`: exact counts through every kind of write, on both
//! backends; on PostgreSQL, that a tracked table is answered from its counter, that the counter
//! survives concurrency, compaction, TRUNCATE and renames, and that anything that could make it
//! wrong falls back to `COUNT(*)`.

use core_db::Database;
use core_db::Error;

mod db_support;

on_both_backends!(
    counts_are_exact_through_every_kind_of_write,
    untracked_tables_are_counted,
    bad_table_names_are_rejected,
);

/// `COUNT(*)` of `table`, the reference every figure is checked against.
async fn reference(db: &Database, table: &str) -> u64 {
    let sql = format!("SELECT COUNT(*) FROM {table}");
    let n: i64 = match db {
        Database::Postgres(pool) => sqlx::query_scalar(&sql).fetch_one(pool).await.unwrap(),
        Database::Sqlite(pool) => sqlx::query_scalar(&sql).fetch_one(pool).await.unwrap(),
    };
    u64::try_from(n).unwrap()
}

async fn exec(db: &Database, sql: &str) {
    db.execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn assert_count(db: &Database, table: &str, expected: u64, after: &str) {
    assert_eq!(
        db.row_count(table).await.unwrap(),
        expected,
        "row_count after {after}"
    );
    assert_eq!(
        reference(db, table).await,
        expected,
        "COUNT(*) after {after}"
    );
}

mod behaviour {
    use core_db::Database;

    use super::{assert_count, exec};

    pub async fn counts_are_exact_through_every_kind_of_write(db: &Database) {
        exec(
            db,
            "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
        )
        .await;
        exec(db, "INSERT INTO items (id, name) VALUES (1, 'a'), (2, 'b')").await;
        assert_eq!(db.track_row_count("items").await.unwrap(), 2, "the seed");
        assert_count(db, "items", 2, "tracking").await;

        exec(db, "INSERT INTO items (id, name) VALUES (3, 'c')").await;
        assert_count(db, "items", 3, "a single-row insert").await;
        exec(
            db,
            "WITH RECURSIVE g(i) AS (SELECT 10 UNION ALL SELECT i + 1 FROM g WHERE i < 509) \
             INSERT INTO items (id, name) SELECT i, 'n' || i FROM g",
        )
        .await;
        assert_count(db, "items", 503, "a 500-row insert").await;
        exec(db, "DELETE FROM items WHERE id % 2 = 0").await;
        assert_count(db, "items", 252, "a bulk delete").await;
        exec(db, "DELETE FROM items WHERE id = -1").await;
        exec(db, "UPDATE items SET name = name || '!'").await;
        assert_count(db, "items", 252, "an update and a delete of nothing").await;
        exec(
            db,
            "INSERT INTO items (id, name) VALUES (1, 'dup'), (4, 'new') ON CONFLICT (id) DO NOTHING",
        )
        .await;
        assert_count(db, "items", 253, "an insert with a conflict ignored").await;
        exec(
            db,
            "INSERT INTO items (id, name) VALUES (3, 'c2'), (6, 'six') \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name",
        )
        .await;
        assert_count(
            db,
            "items",
            254,
            "an upsert updating one row, inserting one",
        )
        .await;

        // Writes that do not commit do not count.
        let mut tx = db.begin().await.unwrap();
        tx.execute("INSERT INTO items (id, name) VALUES (1000, 'x'), (1001, 'y')")
            .await
            .unwrap();
        tx.execute("DELETE FROM items WHERE id = 1").await.unwrap();
        tx.rollback().await.unwrap();
        assert_count(db, "items", 254, "a rolled-back transaction").await;
        let failed = db
            .execute("INSERT INTO items (id, name) VALUES (2000, 'z'), (2001, 'a!')")
            .await;
        assert!(failed.is_err(), "the duplicate name fails the statement");
        assert_count(db, "items", 254, "a failed statement").await;

        let mut tx = db.begin().await.unwrap();
        tx.execute("INSERT INTO items (id, name) VALUES (3000, 'q')")
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_count(db, "items", 255, "a committed transaction").await;

        exec(db, "DELETE FROM items").await;
        assert_count(db, "items", 0, "deleting everything").await;
        exec(db, "INSERT INTO items (id, name) VALUES (1, 'back')").await;
        assert_eq!(
            db.track_row_count("items").await.unwrap(),
            1,
            "tracking twice"
        );
        assert_count(db, "items", 1, "tracking twice").await;

        db.untrack_row_count("items").await.unwrap();
        exec(db, "INSERT INTO items (id, name) VALUES (2, 'two')").await;
        assert_count(db, "items", 2, "untracking").await;
    }

    pub async fn untracked_tables_are_counted(db: &Database) {
        exec(db, "CREATE TABLE plain (x INTEGER)").await;
        assert_count(db, "plain", 0, "creating").await;
        exec(db, "INSERT INTO plain (x) VALUES (1), (2), (3)").await;
        assert_count(db, "plain", 3, "inserting").await;
        // Untracking what was never tracked does nothing.
        db.untrack_row_count("plain").await.unwrap();
        assert_count(db, "plain", 3, "untracking").await;
        // A name that needs quoting.
        exec(db, r#"CREATE TABLE "odd ""name""" (x INTEGER)"#).await;
        exec(db, r#"INSERT INTO "odd ""name""" (x) VALUES (1)"#).await;
        db.track_row_count(r#"odd "name""#).await.unwrap();
        exec(db, r#"INSERT INTO "odd ""name""" (x) VALUES (2)"#).await;
        assert_eq!(db.row_count(r#"odd "name""#).await.unwrap(), 2);
    }

    pub async fn bad_table_names_are_rejected(db: &Database) {
        for name in ["", ".", "a..b", "items.", "nul\0byte"] {
            for result in [
                db.row_count(name).await,
                db.track_row_count(name).await,
                db.untrack_row_count(name).await.map(|()| 0),
            ] {
                match result {
                    Err(core_db::Error::InvalidKey { key, .. }) => assert_eq!(key, name),
                    other => panic!("{name:?} gave {other:?}"),
                }
            }
        }
        // A table that does not exist is the database's own error, naming it.
        let err = db.row_count("no_such_table").await.unwrap_err();
        assert!(err.to_string().contains("no_such_table"), "{err}");
        let err = db.track_row_count("no_such_table").await.unwrap_err();
        assert!(err.to_string().contains("no_such_table"), "{err}");
    }
}

/// PostgreSQL: a fresh migrated database, or `None` when PostgreSQL is down (a panic under
/// `RUSTFORGE_REQUIRE_SERVICES=1`).
async fn postgres(test: &str) -> Option<(Database, db_support::Guard)> {
    db_support::postgres_db(test).await
}

/// The rows the count of `table` is spread over in `rustforge_row_counts`.
async fn parts(db: &Database, table: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM rustforge_row_counts WHERE relid = $1::REGCLASS")
        .bind(table)
        .fetch_one(db.as_postgres().unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn postgres_answers_a_tracked_table_from_its_counter() {
    let Some((db, _guard)) = postgres("postgres_answers_a_tracked_table_from_its_counter").await
    else {
        return;
    };
    exec(&db, "CREATE TABLE t (x INTEGER)").await;
    exec(&db, "INSERT INTO t SELECT generate_series(1, 1000)").await;
    db.track_row_count("t").await.unwrap();
    // Skew the counter behind the framework's back: a tracked table is answered from it...
    exec(
        &db,
        "INSERT INTO rustforge_row_counts (relid, n) VALUES ('t'::REGCLASS, 5)",
    )
    .await;
    assert_eq!(db.row_count("t").await.unwrap(), 1005);
    // ...tracking again re-seeds it from COUNT(*)...
    assert_eq!(db.track_row_count("t").await.unwrap(), 1000);
    assert_eq!(db.row_count("t").await.unwrap(), 1000);
    assert_eq!(parts(&db, "t").await, 1);

    // ...a disabled trigger means the counter may be wrong: COUNT(*) answers instead...
    exec(
        &db,
        "ALTER TABLE t DISABLE TRIGGER rustforge_row_count_insert",
    )
    .await;
    exec(&db, "INSERT INTO t VALUES (1001)").await;
    assert_count(&db, "t", 1001, "disabling the insert trigger").await;
    // Tracking again enables it and re-seeds.
    assert_eq!(db.track_row_count("t").await.unwrap(), 1001);
    exec(&db, "INSERT INTO t VALUES (1002)").await;
    assert_count(&db, "t", 1002, "enabling the trigger again").await;

    // ...and so does a dropped one.
    exec(&db, "DROP TRIGGER rustforge_row_count_delete ON t").await;
    exec(&db, "DELETE FROM t WHERE x <= 10").await;
    assert_count(&db, "t", 992, "dropping the delete trigger").await;
    db.track_row_count("t").await.unwrap();
    exec(&db, "DELETE FROM t WHERE x <= 20").await;
    assert_count(&db, "t", 982, "tracking again").await;
    // Re-tracking a fully tracked table keeps its triggers and only re-seeds.
    exec(
        &db,
        "INSERT INTO rustforge_row_counts (relid, n) VALUES ('t'::REGCLASS, 7)",
    )
    .await;
    assert_eq!(db.track_row_count("t").await.unwrap(), 982);
    assert_eq!(db.row_count("t").await.unwrap(), 982);

    // Untracking drops the triggers and the counter rows.
    db.untrack_row_count("t").await.unwrap();
    assert_eq!(parts(&db, "t").await, 0);
    let triggers: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_trigger WHERE tgrelid = 't'::REGCLASS AND NOT tgisinternal",
    )
    .fetch_one(db.as_postgres().unwrap())
    .await
    .unwrap();
    assert_eq!(triggers, 0);
    assert_count(&db, "t", 982, "untracking").await;
}

/// A trigger disabled and enabled again leaves every trigger enabled, but the rows written in
/// between were never counted: the counter is not trusted until tracking re-seeds it.
#[tokio::test]
async fn postgres_a_trigger_disabled_then_enabled_again_is_noticed() {
    let Some((db, _guard)) =
        postgres("postgres_a_trigger_disabled_then_enabled_again_is_noticed").await
    else {
        return;
    };
    exec(&db, "CREATE TABLE t (x INTEGER)").await;
    exec(&db, "INSERT INTO t SELECT generate_series(1, 10)").await;
    assert_eq!(db.track_row_count("t").await.unwrap(), 10);
    for (trigger, write, expected) in [
        (
            "rustforge_row_count_insert",
            "INSERT INTO t VALUES (11), (12)",
            12,
        ),
        (
            "rustforge_row_count_delete",
            "DELETE FROM t WHERE x <= 3",
            9,
        ),
        ("rustforge_row_count_truncate", "TRUNCATE t", 0),
    ] {
        exec(&db, &format!("ALTER TABLE t DISABLE TRIGGER {trigger}")).await;
        exec(&db, write).await;
        exec(&db, &format!("ALTER TABLE t ENABLE TRIGGER {trigger}")).await;
        assert_count(&db, "t", expected, &format!("re-enabling {trigger}")).await;
        // Writes after re-enabling are still counted exactly.
        exec(&db, "INSERT INTO t VALUES (100)").await;
        assert_count(&db, "t", expected + 1, &format!("a write after {trigger}")).await;
        exec(&db, "DELETE FROM t WHERE x = 100").await;
        // Tracking again re-seeds, and the counter answers again.
        assert_eq!(db.track_row_count("t").await.unwrap(), expected);
        exec(
            &db,
            "INSERT INTO rustforge_row_counts (relid, n) VALUES ('t'::REGCLASS, 1000)",
        )
        .await;
        assert_eq!(
            db.row_count("t").await.unwrap(),
            expected + 1000,
            "re-tracked after {trigger}: answered from the counter"
        );
        assert_eq!(db.track_row_count("t").await.unwrap(), expected);
    }
    // Disabling every trigger at once, then enabling them all, is noticed the same way.
    exec(&db, "ALTER TABLE t DISABLE TRIGGER ALL").await;
    exec(&db, "INSERT INTO t SELECT generate_series(1, 5)").await;
    exec(&db, "ALTER TABLE t ENABLE TRIGGER ALL").await;
    assert_count(&db, "t", 5, "DISABLE TRIGGER ALL, then ENABLE").await;
}

#[tokio::test]
async fn postgres_counts_only_what_is_committed() {
    let Some((db, _guard)) = postgres("postgres_counts_only_what_is_committed").await else {
        return;
    };
    exec(&db, "CREATE TABLE t (x INTEGER)").await;
    db.track_row_count("t").await.unwrap();
    let mut tx = db.begin().await.unwrap();
    tx.execute("INSERT INTO t SELECT generate_series(1, 50)")
        .await
        .unwrap();
    let inside: i64 = sqlx::query_scalar(
        "SELECT sum(n)::BIGINT FROM rustforge_row_counts WHERE relid = 't'::REGCLASS",
    )
    .fetch_one(tx.as_postgres().unwrap())
    .await
    .unwrap();
    assert_eq!(inside, 50, "the writing transaction sees its own rows");
    assert_eq!(
        db.row_count("t").await.unwrap(),
        0,
        "other connections do not"
    );
    tx.commit().await.unwrap();
    assert_eq!(db.row_count("t").await.unwrap(), 50);
}

#[tokio::test]
async fn postgres_truncate_renames_schemas_and_merge_keep_the_count() {
    let Some((db, _guard)) =
        postgres("postgres_truncate_renames_schemas_and_merge_keep_the_count").await
    else {
        return;
    };
    exec(&db, "CREATE SCHEMA shop").await;
    exec(&db, "CREATE TABLE shop.orders (id INTEGER PRIMARY KEY)").await;
    exec(
        &db,
        "INSERT INTO shop.orders SELECT generate_series(1, 300)",
    )
    .await;
    assert_eq!(db.track_row_count("shop.orders").await.unwrap(), 300);
    exec(&db, "TRUNCATE shop.orders").await;
    assert_count(&db, "shop.orders", 0, "TRUNCATE").await;
    assert_eq!(parts(&db, "shop.orders").await, 1);
    exec(&db, "INSERT INTO shop.orders SELECT generate_series(1, 10)").await;
    exec(
        &db,
        "MERGE INTO shop.orders o USING (VALUES (1), (2), (50), (51), (52)) v(id) ON o.id = v.id \
         WHEN MATCHED THEN DELETE WHEN NOT MATCHED THEN INSERT (id) VALUES (v.id)",
    )
    .await;
    assert_count(&db, "shop.orders", 11, "MERGE deleting 2 and inserting 3").await;
    // The counter follows the table, not its name.
    exec(&db, "ALTER TABLE shop.orders RENAME TO purchases").await;
    exec(&db, "INSERT INTO shop.purchases VALUES (100)").await;
    assert_count(&db, "shop.purchases", 12, "a rename").await;
    // A dropped table's rows are cleaned up the next time any table is tracked.
    exec(&db, "CREATE TABLE other (x INTEGER)").await;
    exec(&db, "DROP TABLE shop.purchases").await;
    db.track_row_count("other").await.unwrap();
    let rows: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rustforge_row_counts WHERE relid <> 'failed_jobs'::REGCLASS",
    )
    .fetch_one(db.as_postgres().unwrap())
    .await
    .unwrap();
    assert_eq!(rows, 1, "only the row of `other` is left");
}

#[tokio::test]
async fn postgres_folds_many_deltas_into_one_row() {
    let Some((db, _guard)) = postgres("postgres_folds_many_deltas_into_one_row").await else {
        return;
    };
    exec(&db, "CREATE TABLE t (x INTEGER)").await;
    db.track_row_count("t").await.unwrap();
    let statements = core_db::db::row_count::COMPACT_AFTER + 36;
    for i in 0..statements {
        exec(&db, &format!("INSERT INTO t VALUES ({i})")).await;
    }
    assert_eq!(
        parts(&db, "t").await,
        statements + 1,
        "the seed and one row per statement"
    );
    assert_eq!(db.row_count("t").await.unwrap(), statements as u64);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while parts(&db, "t").await > 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the deltas were not folded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_count(&db, "t", statements as u64, "compaction").await;
}

/// Writers in many transactions (some rolled back, some deleting), TRUNCATE, compaction and
/// readers all at once: at the end the counter still equals `COUNT(*)`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_counter_stays_exact_under_concurrent_writers() {
    let Some((db, _guard)) =
        postgres("postgres_counter_stays_exact_under_concurrent_writers").await
    else {
        return;
    };
    exec(&db, "CREATE TABLE t (id BIGSERIAL PRIMARY KEY, w INTEGER)").await;
    db.track_row_count("t").await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..8_i32 {
        let db = db.clone();
        let pool = db.as_postgres().unwrap().clone();
        tasks.spawn(async move {
            for round in 0..40 {
                let mut tx = pool.begin().await.unwrap();
                let rows = 1 + (round * 7 + w) % 5;
                sqlx::query("INSERT INTO t (w) SELECT $1 FROM generate_series(1, $2)")
                    .bind(w)
                    .bind(rows)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                if round % 3 == 0 {
                    sqlx::query(
                        "DELETE FROM t WHERE id IN (SELECT id FROM t WHERE w = $1 LIMIT 2)",
                    )
                    .bind(w)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                }
                if round % 4 == 1 {
                    tx.rollback().await.unwrap();
                } else {
                    tx.commit().await.unwrap();
                }
                if w == 0 && round == 20 {
                    sqlx::query("TRUNCATE t").execute(&pool).await.unwrap();
                }
                // Readers trigger compactions along the way.
                db.row_count("t").await.unwrap();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let expected = reference(&db, "t").await;
    assert!(expected > 0);
    assert_eq!(db.row_count("t").await.unwrap(), expected);
    // Fold what is left (waiting out any compaction still running) and check again.
    let pool = db.as_postgres().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let folded: bool = sqlx::query_scalar("SELECT rustforge_row_count_compact('t'::REGCLASS)")
            .fetch_one(pool)
            .await
            .unwrap();
        if folded && parts(&db, "t").await == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "compaction never ran");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(db.row_count("t").await.unwrap(), expected);
}

/// The framework migrations track `failed_jobs`, so `FailedJobs::count` is O(1).
#[tokio::test]
async fn postgres_migrations_track_failed_jobs() {
    let Some((db, _guard)) = postgres("postgres_migrations_track_failed_jobs").await else {
        return;
    };
    assert_eq!(
        parts(&db, "failed_jobs").await,
        1,
        "seeded by the migration"
    );
    exec(
        &db,
        "INSERT INTO failed_jobs (job_id, job_name, queue, payload, error) \
         SELECT 'j' || g, 'send_email', 'default', '{}', 'boom' FROM generate_series(1, 3) g",
    )
    .await;
    assert_eq!(
        parts(&db, "failed_jobs").await,
        2,
        "one delta for the statement"
    );
    assert_count(&db, "failed_jobs", 3, "recording failures").await;
    exec(&db, "DELETE FROM failed_jobs WHERE job_id = 'j1'").await;
    assert_count(&db, "failed_jobs", 2, "forgetting one").await;
}

#[tokio::test]
async fn postgres_without_the_framework_migrations_counts() {
    let Some(pg) = test_support::postgres("postgres_without_the_framework_migrations_counts").await
    else {
        return;
    };
    let db = Database::connect(&pg.url).await.unwrap();
    // The test database comes migrated: take the row-count objects away again.
    exec(
        &db,
        "DROP FUNCTION rustforge_row_count_changed() CASCADE; \
         DROP FUNCTION rustforge_track_row_count(REGCLASS), rustforge_untrack_row_count(REGCLASS), \
                       rustforge_row_count_compact(OID), rustforge_row_count_lock(OID); \
         DROP TABLE rustforge_row_counts",
    )
    .await;
    exec(&db, "CREATE TABLE t (x INTEGER)").await;
    exec(&db, "INSERT INTO t VALUES (1), (2), (3)").await;
    assert_eq!(db.row_count("t").await.unwrap(), 3);
    let tracked = db.track_row_count("t").await;
    assert!(
        tracked.is_err(),
        "tracking needs the migrations: {tracked:?}"
    );
    assert!(matches!(
        db.row_count("missing").await,
        Err(Error::Database(_))
    ));
}

/// A writer holding its transaction open makes tracking wait for the table's lock, with reads
/// going on meanwhile; once the writer commits, its rows are in the seed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_tracking_waits_for_writers_and_lets_readers_through() {
    let Some((db, _guard)) =
        postgres("postgres_tracking_waits_for_writers_and_lets_readers_through").await
    else {
        return;
    };
    exec(&db, "CREATE TABLE t (x INTEGER)").await;
    let pool = db.as_postgres().unwrap().clone();
    let mut writer = pool.begin().await.unwrap();
    sqlx::query("INSERT INTO t SELECT generate_series(1, 25)")
        .execute(&mut *writer)
        .await
        .unwrap();
    let tracking = tokio::spawn({
        let db = db.clone();
        async move { db.track_row_count("t").await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!tracking.is_finished(), "tracking waits for the writer");
    let read: i64 = sqlx::query_scalar("SELECT count(*) FROM t")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(read, 0, "readers are not blocked");
    writer.commit().await.unwrap();
    assert_eq!(tracking.await.unwrap().unwrap(), 25);
    exec(&db, "INSERT INTO t VALUES (26)").await;
    assert_count(&db, "t", 26, "tracking after the writer").await;
}

#[tokio::test]
async fn sqlite_tracking_installs_nothing() {
    let (db, _guard) = db_support::sqlite_db().await;
    exec(&db, "CREATE TABLE t (x INTEGER)").await;
    exec(&db, "INSERT INTO t VALUES (1), (2)").await;
    assert_eq!(db.track_row_count("t").await.unwrap(), 2);
    let triggers: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE type = 'trigger'")
            .fetch_one(db.as_sqlite().unwrap())
            .await
            .unwrap();
    assert_eq!(triggers, 0);
    assert!(matches!(
        db.row_count("missing").await,
        Err(Error::Database(_))
    ));
}
