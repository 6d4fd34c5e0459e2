//! Testing: every example on the Testing page. They are tests themselves: `tests/testing_snippets.rs`
//! includes this file and runs them against the real Redis, PostgreSQL and S3 server, through
//! test-support's fault-injection proxy where a fault is needed.

use std::time::Duration;

use core_db::Cache;
use core_db::cache::RedisCacheOptions;
use sqlx::postgres::PgPoolOptions;
use test_support::proxy::{Direction, Fault, FaultProxy};
use tokio::time::{Instant, sleep, timeout};

// region: hang-guard
/// Hang guard for what must happen: generous, because a shared CI machine can be slow. It
/// turns "hangs forever" into a failure; it is not a speed assertion.
const SOON: Duration = Duration::from_secs(10);

/// Retries `f` until it succeeds: a client reconnects in the background after the proxy ended
/// its connection, so the first calls may still see the old one fail.
async fn eventually<T, E, F, Fut>(mut f: F) -> T
where
    E: std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let deadline = Instant::now() + SOON;
    loop {
        match f().await {
            Ok(value) => return value,
            Err(_) if Instant::now() < deadline => sleep(Duration::from_millis(50)).await,
            Err(e) => panic!("still failing after {SOON:?}: {e:?}"),
        }
    }
}
// endregion: hang-guard

// region: redis
#[tokio::test]
async fn redis_gets_a_fresh_prefix() {
    // A fresh random prefix on REDIS_URL (rf-test-…); every key under it is deleted on drop.
    let Some(redis) = test_support::redis("redis_gets_a_fresh_prefix").await else {
        return; // Redis unreachable: one SKIPPED line (a failure under RUSTFORGE_REQUIRE_SERVICES=1)
    };
    let cache = Cache::redis(&redis.url, redis.prefix.clone())
        .await
        .unwrap();
    cache.set("greeting", "hello").await.unwrap();
    // keys(): what the code under test left behind, sorted.
    assert_eq!(redis.keys().await, [redis.key("cache:greeting")]);
}
// endregion: redis

// region: postgres
#[tokio::test]
async fn postgres_gets_a_fresh_database() {
    // A new database on DATABASE_URL's server with the migrations applied, dropped on drop.
    let Some(db) = test_support::postgres("postgres_gets_a_fresh_database").await else {
        return;
    };
    let failed: i64 = sqlx::query_scalar("SELECT count(*) FROM failed_jobs")
        .fetch_one(&db.pool) // db.url for code that connects by itself
        .await
        .unwrap();
    assert_eq!(failed, 0);
}
// endregion: postgres

// region: sqlite
#[tokio::test]
async fn sqlite_gets_a_fresh_file() {
    // Embedded: never skipped. A temporary file with the SQLite migrations, removed on drop.
    let db = test_support::sqlite().await;
    let one: i64 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(one, 1);
}
// endregion: sqlite

// region: s3
#[tokio::test]
async fn s3_gets_a_fresh_bucket() {
    // A new bucket on S3_ENDPOINT (scripts/s3-server starts one), emptied and removed on drop.
    let Some(s3) = test_support::s3("s3_gets_a_fresh_bucket").await else {
        return;
    };
    // Configure the code under test with s3.endpoint, s3.bucket, s3.region, s3.access_key and
    // s3.secret; check what it stored with keys() and pending_uploads().
    assert!(s3.bucket.starts_with("rf-test-"));
    assert!(s3.keys().await.is_empty());
    assert!(s3.pending_uploads().await.is_empty());
}
// endregion: s3

// region: proxy
#[tokio::test]
async fn the_proxy_forwards_until_told_otherwise() {
    let Some(redis) = test_support::redis("the_proxy_forwards").await else {
        return;
    };
    // Listens on a free port of 127.0.0.1 and forwards to REDIS_URL's host and port.
    let proxy = FaultProxy::for_url(&redis.url).await.unwrap();
    // redis://127.0.0.1:6379 becomes redis://127.0.0.1:{proxy port}: the code under test
    // connects as usual, to another address.
    let cache = Cache::redis(&proxy.url(&redis.url), redis.prefix.clone())
        .await
        .unwrap();
    cache.set("k", "v").await.unwrap();
    assert_eq!(cache.get("k").await.unwrap().as_deref(), Some("v"));
    assert_eq!(proxy.connections(), 1); // the cache's one multiplexed connection
}
// endregion: proxy

// region: cache-black-hole
#[tokio::test]
async fn cache_fails_fast_when_replies_vanish() {
    let Some(redis) = test_support::redis("cache_fails_fast").await else {
        return;
    };
    let proxy = FaultProxy::for_url(&redis.url).await.unwrap();
    let options = RedisCacheOptions::new().timeout(Duration::from_millis(300));
    let cache = Cache::redis_with(&proxy.url(&redis.url), redis.prefix.clone(), options)
        .await
        .unwrap();
    cache.set("k", "v1").await.unwrap();
    cache.set("other", "v2").await.unwrap();

    // Commands still reach Redis; its replies are discarded on the way back.
    proxy.set(Direction::Downstream, Fault::BlackHole);
    let result = timeout(SOON, cache.get("k"))
        .await
        .expect("an error, not a hang");
    assert!(
        matches!(result, Err(core_db::Error::Timeout { .. })),
        "{result:?}"
    );

    // What the black hole swallowed never arrives, so that connection is out of step for good;
    // the timeout made the cache replace it, and after healing every reply is the right one.
    proxy.heal();
    let value = eventually(|| cache.get("k")).await;
    assert_eq!(value.as_deref(), Some("v1"));
    assert_eq!(cache.get("other").await.unwrap().as_deref(), Some("v2"));
    assert_eq!(cache.get("k").await.unwrap().as_deref(), Some("v1"));
    assert!(proxy.accepted() >= 2, "the cache connected again");
}
// endregion: cache-black-hole

// region: cache-stall
#[tokio::test]
async fn cache_recovers_by_itself_after_a_stall() {
    let Some(redis) = test_support::redis("cache_stall").await else {
        return;
    };
    let proxy = FaultProxy::for_url(&redis.url).await.unwrap();
    let options = RedisCacheOptions::new().timeout(Duration::from_millis(300));
    let cache = Cache::redis_with(&proxy.url(&redis.url), redis.prefix.clone(), options)
        .await
        .unwrap();
    cache.set("k", "v1").await.unwrap();

    // Nothing moves either way, as in a network partition: the call times out.
    proxy.set(Direction::Both, Fault::Stall);
    let result = timeout(SOON, cache.set("k", "v2"))
        .await
        .expect("an error, not a hang");
    assert!(matches!(result, Err(core_db::Error::Timeout { .. })));

    // On heal the held bytes are delivered in order: the abandoned SET still runs (a timeout
    // says nothing about whether a write happened), and reads see it.
    proxy.heal();
    let value = eventually(|| cache.get("k")).await;
    assert_eq!(value.as_deref(), Some("v2"));
}
// endregion: cache-stall

// region: cache-cut
#[tokio::test]
async fn a_cut_command_is_never_half_applied() {
    let Some(redis) = test_support::redis("a_cut_command").await else {
        return;
    };
    let proxy = FaultProxy::for_url(&redis.url).await.unwrap();
    let cache = Cache::redis(&proxy.url(&redis.url), redis.prefix.clone())
        .await
        .unwrap();
    cache.set("k", "v1").await.unwrap();

    // Ten more bytes, then the connection closes: Redis receives the start of a SET and
    // discards it when the connection ends.
    proxy.set(Direction::Upstream, Fault::CutAfter(10));
    let result = timeout(SOON, cache.set("k", "v2"))
        .await
        .expect("an error, not a hang");
    assert!(result.is_err());

    // A direct connection, past the proxy, sees the old value.
    let mut direct = redis.connection().await;
    let stored: String = redis::cmd("GET")
        .arg(redis.key("cache:k"))
        .query_async(&mut direct)
        .await
        .unwrap();
    assert_eq!(stored, "v1");

    // Once healed the cache reconnects by itself.
    proxy.heal();
    eventually(|| cache.set("k", "v3")).await;
    assert_eq!(cache.get("k").await.unwrap().as_deref(), Some("v3"));
}
// endregion: cache-cut

// region: postgres-refuse
#[tokio::test]
async fn pool_fails_fast_while_postgres_is_unreachable() {
    let Some(db) = test_support::postgres("pool_fails_fast").await else {
        return;
    };
    let proxy = FaultProxy::for_url(&db.url).await.unwrap();
    // Without an acquire timeout a pool waits up to 30 s for a connection.
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_millis(500))
        .connect(&proxy.url(&db.url))
        .await
        .unwrap();
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(one, 1);

    // The server restarts: live connections are reset, new ones are reset on arrival. The
    // pool's check of its idle connection fails, and so does the new one it opens: at once.
    proxy.refuse(true);
    proxy.reset_connections();
    let result = timeout(
        SOON,
        sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&pool),
    )
    .await
    .expect("an error, not a hang");
    assert!(matches!(result, Err(sqlx::Error::Io(_))), "{result:?}");

    // Back again: the pool opens a new connection.
    proxy.heal();
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(one, 1);

    // Silence instead: the check of the idle connection never gets its answer, and the acquire
    // timeout ends the wait.
    proxy.set(Direction::Both, Fault::Stall);
    let result = timeout(
        SOON,
        sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&pool),
    )
    .await
    .expect("an error, not a hang");
    assert!(
        matches!(result, Err(sqlx::Error::PoolTimedOut)),
        "{result:?}"
    );

    proxy.heal();
    let one: i32 = eventually(|| sqlx::query_scalar("SELECT 1").fetch_one(&pool)).await;
    assert_eq!(one, 1);
}
// endregion: postgres-refuse
