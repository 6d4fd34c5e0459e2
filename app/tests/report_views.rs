//! Report views on both driver sets: `GET /v1/jobs/{id}/report` counts its reads in the cache,
//! the scheduled flush moves them to `job_report_views`, and no read is lost or counted twice
//! when reads and flushes race.

#[macro_use]
mod common;

use axum::http::StatusCode;
use common::{Client, Drivers, TestApp, call, register, test_app};
use serde_json::json;

use app::jobs::views;

on_both!(
    reads_are_counted_then_stored,
    racing_reads_and_flushes_lose_nothing,
    the_schedule_includes_the_flush,
);

/// A job of `client` (left QUEUED: no worker runs here); its id.
async fn job(t: &TestApp, client: &Client) -> String {
    let reply = call(
        &t.router,
        client,
        "POST",
        "/v1/jobs",
        Some(json!({"work_kind": "SUCCESS_FAST"})),
        &[],
    )
    .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.json);
    reply.json["data"]["job_id"].as_str().unwrap().to_owned()
}

/// `report_views` of one `GET /v1/jobs/{id}/report`.
async fn read_report(t: &TestApp, client: &Client, id: &str) -> i64 {
    let uri = format!("/v1/jobs/{id}/report");
    let reply = call(&t.router, client, "GET", &uri, None, &[]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    reply.json["data"]["report_views"].as_i64().unwrap()
}

async fn reads_are_counted_then_stored(drivers: Drivers, test: &str) {
    let Some(t) = test_app(drivers, test, &[]).await else {
        return;
    };
    let c = register(&t.router).await;
    let id = job(&t, &c).await;

    for expected in 1..=3 {
        assert_eq!(read_report(&t, &c, &id).await, expected);
    }
    let cache = &t.ctx.cache;
    assert_eq!(
        cache
            .get(&views::counter_key(&id))
            .await
            .unwrap()
            .as_deref(),
        Some("3")
    );
    assert_eq!(
        cache.get_keys_by_tag(views::TAG).await.unwrap(),
        vec![views::pending_key(&id)]
    );
    assert_eq!(views::stored(&t.ctx.db, &id).await.unwrap(), 0);

    assert_eq!(views::flush(&t.ctx).await.unwrap(), 3);
    assert_eq!(views::stored(&t.ctx.db, &id).await.unwrap(), 3);
    assert!(!cache.has(&views::counter_key(&id)).await.unwrap());
    assert!(cache.get_keys_by_tag(views::TAG).await.unwrap().is_empty());
    assert_eq!(views::flush(&t.ctx).await.unwrap(), 0, "nothing pending");

    // The next read starts a new counter and a new marker; the report adds both counts.
    assert_eq!(read_report(&t, &c, &id).await, 4);
    assert_eq!(views::flush(&t.ctx).await.unwrap(), 1);
    assert_eq!(views::stored(&t.ctx.db, &id).await.unwrap(), 4);
    assert_eq!(read_report(&t, &c, &id).await, 5);

    // Another client's read is a 404 and counts nothing.
    let other = register(&t.router).await;
    let uri = format!("/v1/jobs/{id}/report");
    let reply = call(&t.router, &other, "GET", &uri, None, &[]).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(
        cache
            .get(&views::counter_key(&id))
            .await
            .unwrap()
            .as_deref(),
        Some("1")
    );

    // Views of a job that is gone are dropped, not an error.
    let missing = uuid::Uuid::new_v4().to_string();
    views::add(&t.ctx.db, &missing, 2).await.unwrap();
    assert_eq!(views::stored(&t.ctx.db, &missing).await.unwrap(), 0);
}

async fn racing_reads_and_flushes_lose_nothing(drivers: Drivers, test: &str) {
    let Some(t) = test_app(drivers, test, &[]).await else {
        return;
    };
    let c = register(&t.router).await;
    let ids = [job(&t, &c).await, job(&t, &c).await];
    const READS: usize = 40;

    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..READS {
        let (router, key, id) = (t.router.clone(), c.key.clone(), ids[n % 2].clone());
        tasks.spawn(async move {
            let client = Client {
                id: String::new(),
                key,
            };
            let uri = format!("/v1/jobs/{id}/report");
            let reply = call(&router, &client, "GET", &uri, None, &[]).await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
        });
    }
    let mut flushed = 0;
    while !tasks.is_empty() {
        flushed += views::flush(&t.ctx).await.unwrap();
        if let Some(done) = tasks.try_join_next() {
            done.unwrap();
        } else {
            tokio::task::yield_now().await;
        }
    }
    flushed += views::flush(&t.ctx).await.unwrap();

    assert_eq!(flushed, READS as u64, "every read stored exactly once");
    for id in &ids {
        assert_eq!(views::stored(&t.ctx.db, id).await.unwrap(), 20);
        assert!(!t.ctx.cache.has(&views::counter_key(id)).await.unwrap());
    }
}

async fn the_schedule_includes_the_flush(drivers: Drivers, test: &str) {
    let Some(t) = test_app(drivers, test, &[]).await else {
        return;
    };
    let shutdown = core_jobs::Shutdown::new();
    let _scheduler =
        app::jobs::retention::scheduler(&t.ctx, &shutdown).expect("valid cron expressions");
    let _every_15s: core_jobs::schedule::Cron = views::FLUSH_CRON.parse().unwrap();
}
