//! ForgeRun through HTTP on PostgreSQL and Redis, with baselines measured in the same run.
//!
//! `cargo bench -p app --bench forgerun` (needs PostgreSQL at `DATABASE_URL` and Redis at
//! `REDIS_URL`; a fresh database and key prefix are made and removed). `FORGERUN_BENCH_SCALE`
//! scales the job count (default 1.0 = 20,000 jobs; 0.1 for a quick run).
//!
//! One process serves the app on 127.0.0.1 (the full middleware stack, authentication, the
//! per-client rate limit, the tiered cache `tiered+redis://`, the Redis queue) and runs its
//! outbox relay and worker; the load generator runs in the same process on keep-alive HTTP/1.1
//! connections, so the two cores are shared by all of it. Measured:
//!
//! 1. submit-to-SUCCEEDED throughput of `SUCCESS_FAST` jobs at `WORK_TIME_SCALE=0`: from the
//!    first `POST /v1/jobs` to the last job SUCCEEDED, with the submit latency p50/p99
//!    (target ≥ 1,500 jobs/s);
//! 2. cached `GET /v1/jobs/{id}` requests/s against a bare axum handler that reads the same row
//!    with raw sqlx (one prepared `SELECT` on the pool, serialized to JSON, no middleware), in
//!    the same run, with the same connections and concurrency (target ≥ 1.5x).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::routing::get;
use common::{Conn, percentile, serve};

mod common;

/// Keep-alive connections the load generator uses.
const CONNECTIONS: usize = 32;

/// Runs `per_conn` requests on each of [`CONNECTIONS`] connections for `seconds`; returns
/// requests per second.
async fn hammer(addr: SocketAddr, path: String, auth: String, seconds: u64) -> f64 {
    let count = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let (path, auth, count) = (path.clone(), auth.clone(), count.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr).await;
            while Instant::now() < deadline {
                let (status, body) = conn.call("GET", &path, &auth, b"").await;
                assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    common::main(run());
}

async fn run() {
    // The pool and the worker's slots are what a deployment would tune for this load:
    // `DATABASE_MAX_CONNECTIONS` and `WORKER_CONCURRENCY` override them here too.
    let pool_size = std::env::var("DATABASE_MAX_CONNECTIONS").unwrap_or_else(|_| "40".to_owned());
    let worker_concurrency =
        std::env::var("WORKER_CONCURRENCY").unwrap_or_else(|_| "64".to_owned());
    let extra = [
        ("WORKER_CONCURRENCY", worker_concurrency.as_str()),
        ("DATABASE_MAX_CONNECTIONS", pool_size.as_str()),
    ];
    let Some(bench) = common::App::start("forgerun bench", &extra).await else {
        return;
    };
    let (ctx, addr, auth) = (bench.ctx.clone(), bench.addr, bench.auth.clone());

    // 1. Submit → SUCCEEDED.
    let jobs = common::scale(20_000, 200);
    println!(
        "ForgeRun bench: {} cores, {jobs} SUCCESS_FAST jobs, {CONNECTIONS} connections",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let started = Instant::now();
    let latencies = common::submit_jobs(addr, &auth, jobs, CONNECTIONS).await;
    let submitted = started.elapsed();
    let pool = ctx.db.as_postgres().expect("PostgreSQL").clone();
    loop {
        let done: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE state = 'SUCCEEDED'")
            .fetch_one(&pool)
            .await
            .unwrap();
        if done as usize >= jobs {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "{done}/{jobs} after 10 min"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let total = started.elapsed();
    let throughput = jobs as f64 / total.as_secs_f64();
    println!(
        "submit → SUCCEEDED: {jobs} jobs in {:.2} s = {throughput:.0} jobs/s (submitting alone {:.0}/s); submit latency p50 {:.2} ms, p99 {:.2} ms  [target ≥ 1500 jobs/s: {}]",
        total.as_secs_f64(),
        jobs as f64 / submitted.as_secs_f64(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        if throughput >= 1500.0 { "PASS" } else { "FAIL" }
    );

    // Where a job's time went: waiting to start (the outbox relay, the queue, the worker's
    // free slots) and from start to finish.
    let (wait_p50, wait_p99, run_p50, run_p99): (f64, f64, f64, f64) = sqlx::query_as(
        "SELECT \
           percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM started_at - created_at)), \
           percentile_cont(0.99) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM started_at - created_at)), \
           percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM finished_at - started_at)), \
           percentile_cont(0.99) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM finished_at - started_at)) \
         FROM jobs",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    println!(
        "  created → started p50 {:.1} ms, p99 {:.1} ms; started → finished p50 {:.1} ms, p99 {:.1} ms",
        wait_p50 * 1000.0,
        wait_p99 * 1000.0,
        run_p50 * 1000.0,
        run_p99 * 1000.0
    );

    // 2. Cached reads against a bare sqlx handler.
    let id: String = sqlx::query_scalar("SELECT id FROM jobs LIMIT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    #[derive(serde::Serialize, sqlx::FromRow)]
    struct Bare {
        id: String,
        work_kind: String,
        state: String,
        attempt: i64,
        max_attempts: i64,
        outcome: Option<String>,
        created_at: chrono::DateTime<chrono::Utc>,
        updated_at: chrono::DateTime<chrono::Utc>,
    }
    async fn bare(State(pool): State<sqlx::PgPool>, Path(id): Path<String>) -> axum::Json<Bare> {
        let row = sqlx::query_as::<_, Bare>(
            "SELECT id, work_kind, state, attempt, max_attempts, outcome, created_at, updated_at \
             FROM jobs WHERE id = $1",
        )
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
        axum::Json(row)
    }
    let bare_addr = serve(
        axum::Router::new()
            .route("/bare/{id}", get(bare))
            .with_state(pool.clone()),
    )
    .await;
    let seconds = 5;
    let app_rps = hammer(addr, format!("/v1/jobs/{id}"), auth.clone(), seconds).await;
    let bare_rps = hammer(bare_addr, format!("/bare/{id}"), auth.clone(), seconds).await;
    let ratio = app_rps / bare_rps;
    println!(
        "GET /v1/jobs/{{id}} (cached, full stack, auth, rate limit): {app_rps:.0} req/s; bare axum + sqlx: {bare_rps:.0} req/s; ratio {ratio:.2}x  [target ≥ 1.5x: {}]",
        if ratio >= 1.5 { "PASS" } else { "FAIL" }
    );

    bench.stop().await;
}
