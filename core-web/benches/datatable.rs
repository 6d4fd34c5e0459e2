//! DataTable benchmark: the first page of 100,000 rows sorted by an indexed column, through
//! `DataTable` and hand-written with raw sqlx in the same run, printed with the ratio (absolute
//! numbers on a shared machine mean little).
//!
//! ```text
//! cargo bench -p core-web --bench datatable
//! DATATABLE_BENCH_ITERS=200 cargo bench -p core-web --bench datatable   # a quick run
//! ```
//!
//! Needs PostgreSQL at `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`); it
//! works in a fresh database that is dropped at the end.
//!
//! Each figure times one whole call: for DataTable, parsing the query string, building both
//! queries, running them (page and total concurrently on two connections), mapping rows to JSON
//! and serialising the response; for raw sqlx, the same two queries written by hand (concurrently
//! too), rows decoded into a struct and serialised. Rounds alternate which of the two runs first, so both
//! see the same machine. Targets: DataTable p50 under 5 ms with an exact total, and at most 1.1x
//! the p50 of hand-written sqlx running the same page query and the same count.
//!
//! The total is measured three ways: `tracked_row_count` (the table is tracked with
//! `Database::track_row_count`, so the exact total is read from its trigger-maintained counter;
//! raw sqlx runs the same counter statement by hand, trigger check included; a plain read of the
//! counter, which skips that check, is printed for reference), a plain `COUNT(*)` (raw sqlx runs
//! the same `COUNT(*)`), and `cache_counts` (compared with the page query alone). What tracking
//! costs writers is measured too: single-row and 10,000-row inserts into the tracked table and
//! into an identical untracked one.

use std::future::Future;
use std::hint::black_box;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use chrono::{DateTime, Utc};
use core_db::Database;
use core_web::config::HttpConfig;
use core_web::datatable::{Column, DataTable, DataTableBuilder, Filter};
use http_body_util::BodyExt;
use serde::Serialize;
use sqlx::PgPool;
use tower::ServiceExt;

const ROWS: i64 = 100_000;
const PER_PAGE: i64 = 20;
const ROUNDS: usize = 10;
/// 10,000-row inserts into each table per round (alternating), so 50 samples each.
const BULK_PER_ROUND: usize = 5;

fn iterations() -> usize {
    std::env::var("DATATABLE_BENCH_ITERS")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|n| *n >= ROUNDS)
        .unwrap_or(2_000)
}

#[derive(sqlx::FromRow, Serialize)]
struct Event {
    id: i64,
    name: String,
    amount: i32,
    active: bool,
    created_at: DateTime<Utc>,
}

#[derive(Serialize)]
struct Meta {
    page: u64,
    per_page: u64,
    total: u64,
    last_page: u64,
}

#[derive(Serialize)]
struct Page {
    data: Vec<Event>,
    meta: Meta,
}

fn events() -> DataTableBuilder {
    DataTable::table("events")
        .column(Column::integer("id").sortable().filter(Filter::Eq))
        .column(
            Column::text("name")
                .sortable()
                .searchable()
                .filter(Filter::Like),
        )
        .column(Column::integer("amount").sortable().filter(Filter::Range))
        .column(Column::boolean("active").filter(Filter::Eq))
        .column(
            Column::timestamp("created_at")
                .sortable()
                .filter(Filter::Range),
        )
        .default_sort("-created_at")
        .per_page(PER_PAGE as u64)
}

async fn setup(pool: &PgPool) {
    let started = Instant::now();
    for statement in [
        "CREATE TABLE events (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL, \
         amount INTEGER NOT NULL, active BOOLEAN NOT NULL, created_at TIMESTAMPTZ NOT NULL)",
        "INSERT INTO events (name, amount, active, created_at) \
         SELECT 'event ' || g, g % 1000, g % 2 = 0, \
                timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second' \
         FROM generate_series(1, 100000) AS g",
        "CREATE INDEX events_created_at ON events (created_at)",
        "VACUUM ANALYZE events",
        "CREATE TABLE events_plain (LIKE events INCLUDING ALL)",
    ] {
        sqlx::query(statement)
            .execute(pool)
            .await
            .expect("set up the events table");
    }
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events")
        .fetch_one(pool)
        .await
        .expect("count");
    assert_eq!(count, ROWS);
    println!(
        "set-up: {ROWS} rows bulk-inserted with generate_series, indexed and analysed in {:.0} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
}

/// The first page, sorted by the indexed column, as hand-written SQL.
const RAW_PAGE: &str = "SELECT id, name, amount, active, created_at FROM events \
                        ORDER BY created_at DESC LIMIT $1 OFFSET $2";

/// Raw sqlx: the page and the total from `total_sql`, concurrently, serialised.
async fn raw_page_with_total(pool: &PgPool, total_sql: &'static str) -> Vec<u8> {
    let rows = sqlx::query_as::<_, Event>(RAW_PAGE)
        .bind(PER_PAGE)
        .bind(0_i64)
        .fetch_all(pool);
    let total = sqlx::query_scalar::<_, i64>(total_sql).fetch_one(pool);
    let (data, total) = tokio::try_join!(rows, total).expect("raw queries");
    serialise_page(data, total)
}

fn serialise_page(data: Vec<Event>, total: i64) -> Vec<u8> {
    let total = total as u64;
    let page = Page {
        data,
        meta: Meta {
            page: 1,
            per_page: PER_PAGE as u64,
            total,
            last_page: total.div_ceil(PER_PAGE as u64).max(1),
        },
    };
    serde_json::to_vec(&page).expect("serialise")
}

/// Raw sqlx: the page and `COUNT(*)`.
async fn raw_first_page(pool: &PgPool) -> Vec<u8> {
    raw_page_with_total(pool, "SELECT COUNT(*) FROM events").await
}

/// The statement `Database::row_count` runs for the tracked table (the sum of the counter's rows,
/// trusted only while the table's triggers are the ones the count was seeded with, otherwise
/// `COUNT(*)`), taken from core-db so the raw side cannot drift from it.
static RAW_TRACKED_COUNT: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| core_db::db::row_count::tracked_count_statement("\"events\""));

/// Raw sqlx: the page and the same exact total `Database::row_count` reads (the same statement).
async fn raw_tracked_first_page(pool: &PgPool) -> Vec<u8> {
    let rows = sqlx::query_as::<_, Event>(RAW_PAGE)
        .bind(PER_PAGE)
        .bind(0_i64)
        .fetch_all(pool);
    let total =
        sqlx::query_as::<_, (i64, i64, Option<sqlx::postgres::types::Oid>)>(&RAW_TRACKED_COUNT)
            .bind("\"events\"")
            .fetch_one(pool);
    let (data, (total, _parts, _relid)) = tokio::try_join!(rows, total).expect("raw queries");
    serialise_page(data, total)
}

/// Raw sqlx: the page and a plain read of the counter (no check of the triggers; weaker than
/// what `Database::row_count` guarantees, printed for reference).
async fn raw_counter_first_page(pool: &PgPool) -> Vec<u8> {
    raw_page_with_total(
        pool,
        "SELECT sum(n)::BIGINT FROM rustforge_row_counts WHERE relid = 'events'::REGCLASS",
    )
    .await
}

/// Raw sqlx: the page only.
async fn raw_page_only(pool: &PgPool) -> Vec<u8> {
    let data = sqlx::query_as::<_, Event>(RAW_PAGE)
        .bind(PER_PAGE)
        .bind(0_i64)
        .fetch_all(pool)
        .await
        .expect("raw page");
    serde_json::to_vec(&data).expect("serialise")
}

async fn insert_one(pool: &PgPool, table: &str) {
    sqlx::query(&format!(
        "INSERT INTO {table} (name, amount, active, created_at) VALUES ('new', 1, TRUE, now())"
    ))
    .execute(pool)
    .await
    .expect("insert");
}

async fn insert_many(pool: &PgPool, table: &str) {
    sqlx::query(&format!(
        "INSERT INTO {table} (name, amount, active, created_at) \
         SELECT 'bulk', g, TRUE, now() FROM generate_series(1, 10000) AS g"
    ))
    .execute(pool)
    .await
    .expect("bulk insert");
}

async fn raw_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM events")
        .fetch_one(pool)
        .await
        .expect("count")
}

async fn datatable_first_page(table: &DataTable, db: &Database) -> Vec<u8> {
    let response = table
        .respond(db, Some("sort=-created_at"))
        .await
        .expect("datatable");
    assert_eq!(response.data.len(), PER_PAGE as usize);
    serde_json::to_vec(&response).expect("serialise")
}

async fn through_router(app: &axum::Router) -> usize {
    let req = Request::get("/events?sort=-created_at")
        .body(Body::empty())
        .expect("request");
    let res = app.clone().oneshot(req).await.expect("infallible");
    assert_eq!(res.status(), 200);
    res.into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .len()
}

#[derive(Default)]
struct Samples(Vec<Duration>);

impl Samples {
    fn percentile(&self, p: f64) -> f64 {
        let mut v: Vec<f64> = self.0.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        v.sort_by(f64::total_cmp);
        let i = ((v.len() as f64 - 1.0) * p).round() as usize;
        v[i.min(v.len() - 1)]
    }
    fn p50(&self) -> f64 {
        self.percentile(0.50)
    }
    fn p99(&self) -> f64 {
        self.percentile(0.99)
    }
}

async fn time<F, Fut, T>(samples: &mut Samples, n: usize, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    for _ in 0..n {
        let started = Instant::now();
        black_box(f().await);
        samples.0.push(started.elapsed());
    }
}

/// Runs `a` then `b` when `a_first`, otherwise `b` then `a` (one after the other, never together):
/// how the rounds alternate.
async fn pair(a_first: bool, a: impl Future<Output = ()>, b: impl Future<Output = ()>) {
    if a_first {
        a.await;
        b.await;
    } else {
        b.await;
        a.await;
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "BELOW TARGET" }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let Some(pg) = test_support::postgres("datatable_bench").await else {
        eprintln!("SKIPPED datatable benchmark: PostgreSQL is not reachable");
        return;
    };
    let pool = pg.pool.clone();
    setup(&pool).await;
    let db = Database::Postgres(pool.clone());
    db.migrate().await.expect("framework migrations");
    assert_eq!(
        db.track_row_count("events").await.expect("track"),
        ROWS as u64
    );
    let table = events().build().expect("valid definition");
    let tracked = events()
        .tracked_row_count()
        .build()
        .expect("valid definition");
    let cached = events()
        .cache_counts(Duration::from_secs(3600))
        .build()
        .expect("valid definition");
    let app = core_web::middleware::stack(
        axum::Router::new().route("/events", tracked.route(db.clone())),
        &HttpConfig::default(),
    );

    // Same answer every way.
    let raw: serde_json::Value =
        serde_json::from_slice(&raw_first_page(&pool).await).expect("json");
    for (what, bytes) in [
        ("COUNT(*)", datatable_first_page(&table, &db).await),
        ("tracked", datatable_first_page(&tracked, &db).await),
        ("raw tracked", raw_tracked_first_page(&pool).await),
        ("raw counter", raw_counter_first_page(&pool).await),
    ] {
        let ours: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(ours["meta"], raw["meta"], "{what}: same meta");
        assert_eq!(
            ours["data"][0]["id"], raw["data"][0]["id"],
            "{what}: same first row"
        );
        assert_eq!(
            ours["data"][0]["created_at"], raw["data"][0]["created_at"],
            "{what}: same timestamps"
        );
    }

    let n = iterations();
    let per_round = n / ROUNDS;
    // Warm up every path (prepared statements, pool connections, caches).
    let warm = (per_round / 2).max(20);
    let mut sink = Samples::default();
    time(&mut sink, warm, || datatable_first_page(&tracked, &db)).await;
    time(&mut sink, warm, || raw_tracked_first_page(&pool)).await;
    time(&mut sink, warm, || raw_counter_first_page(&pool)).await;
    time(&mut sink, warm, || datatable_first_page(&table, &db)).await;
    time(&mut sink, warm, || raw_first_page(&pool)).await;
    time(&mut sink, warm, || datatable_first_page(&cached, &db)).await;
    time(&mut sink, warm, || raw_page_only(&pool)).await;
    time(&mut sink, warm, || raw_count(&pool)).await;
    time(&mut sink, warm, || through_router(&app)).await;

    let mut dt_tracked = Samples::default();
    let mut raw_tracked = Samples::default();
    let mut raw_counter = Samples::default();
    let mut dt = Samples::default();
    let mut raw = Samples::default();
    let mut dt_page = Samples::default();
    let mut raw_page = Samples::default();
    let mut count = Samples::default();
    let mut http = Samples::default();
    for round in 0..ROUNDS {
        // Each pair runs DataTable first on even rounds and raw sqlx first on odd ones, so drift
        // in the machine's load (and any warm-up one side leaves the other) falls on both sides.
        let dt_first = round % 2 == 0;
        pair(
            dt_first,
            time(&mut dt_tracked, per_round, || {
                datatable_first_page(&tracked, &db)
            }),
            time(&mut raw_tracked, per_round, || {
                raw_tracked_first_page(&pool)
            }),
        )
        .await;
        pair(
            dt_first,
            time(&mut dt, per_round, || datatable_first_page(&table, &db)),
            time(&mut raw, per_round, || raw_first_page(&pool)),
        )
        .await;
        pair(
            dt_first,
            time(&mut dt_page, per_round, || {
                datatable_first_page(&cached, &db)
            }),
            time(&mut raw_page, per_round, || raw_page_only(&pool)),
        )
        .await;
        pair(
            dt_first,
            time(&mut http, per_round, || through_router(&app)),
            time(&mut count, per_round, || raw_count(&pool)),
        )
        .await;
        time(&mut raw_counter, per_round, || {
            raw_counter_first_page(&pool)
        })
        .await;
    }

    // What tracking costs writers: the same inserts into `events` (tracked) and `events_plain`.
    let mut one_tracked = Samples::default();
    let mut one_plain = Samples::default();
    let mut bulk_tracked = Samples::default();
    let mut bulk_plain = Samples::default();
    for round in 0..ROUNDS {
        let tracked_first = round % 2 == 0;
        pair(
            tracked_first,
            time(&mut one_tracked, per_round, || insert_one(&pool, "events")),
            time(&mut one_plain, per_round, || {
                insert_one(&pool, "events_plain")
            }),
        )
        .await;
        for _ in 0..BULK_PER_ROUND {
            pair(
                tracked_first,
                time(&mut bulk_tracked, 1, || insert_many(&pool, "events")),
                time(&mut bulk_plain, 1, || insert_many(&pool, "events_plain")),
            )
            .await;
        }
    }
    let expected = u64::try_from(raw_count(&pool).await).expect("count");
    assert_eq!(
        db.row_count("events").await.expect("row count"),
        expected,
        "the counter is exact after the writes"
    );

    println!(
        "{} iterations per figure, in {ROUNDS} alternating rounds",
        per_round * ROUNDS
    );
    let tracked_ratio = dt_tracked.p50() / raw_tracked.p50();
    let count_ratio = dt.p50() / raw.p50();
    println!(
        "datatable first page (sorted by created_at, {ROWS} rows), exact total from tracked_row_count: \
         p50 {:.2} ms p99 {:.2} ms | raw sqlx (page + the same counter statement) p50 {:.2} ms p99 {:.2} ms | \
         ratio {tracked_ratio:.2}x (p50; target <= 1.10x) {}",
        dt_tracked.p50(),
        dt_tracked.p99(),
        raw_tracked.p50(),
        raw_tracked.p99(),
        verdict(tracked_ratio <= 1.10),
    );
    println!(
        "  for reference, raw sqlx page + a plain read of the counter (no trigger check): p50 {:.2} ms p99 {:.2} ms",
        raw_counter.p50(),
        raw_counter.p99(),
    );
    println!(
        "datatable first page, exact total by COUNT(*) (concurrently with the page): \
         p50 {:.2} ms p99 {:.2} ms | raw sqlx (page + COUNT(*)) p50 {:.2} ms p99 {:.2} ms | \
         ratio {count_ratio:.2}x (p50; target <= 1.10x) {}",
        dt.p50(),
        dt.p99(),
        raw.p50(),
        raw.p99(),
        verdict(count_ratio <= 1.10),
    );
    println!(
        "  COUNT(*) over {ROWS} rows alone (raw sqlx): p50 {:.2} ms p99 {:.2} ms",
        count.p50(),
        count.p99()
    );
    println!(
        "datatable first page, total kept by cache_counts (page query only): \
         p50 {:.2} ms p99 {:.2} ms | raw sqlx page only p50 {:.2} ms p99 {:.2} ms | ratio {:.2}x (p50)",
        dt_page.p50(),
        dt_page.p99(),
        raw_page.p50(),
        raw_page.p99(),
        dt_page.p50() / raw_page.p50()
    );
    println!(
        "datatable through the router and middleware stack (oneshot, tracked total): \
         p50 {:.2} ms p99 {:.2} ms",
        http.p50(),
        http.p99()
    );
    println!(
        "writes with tracking: single-row INSERT p50 {:.3} ms p99 {:.3} ms | untracked p50 {:.3} ms p99 {:.3} ms | ratio {:.2}x (p50)",
        one_tracked.p50(),
        one_tracked.p99(),
        one_plain.p50(),
        one_plain.p99(),
        one_tracked.p50() / one_plain.p50()
    );
    println!(
        "writes with tracking: 10,000-row INSERT p50 {:.1} ms | untracked p50 {:.1} ms | ratio {:.2}x (p50)",
        bulk_tracked.p50(),
        bulk_plain.p50(),
        bulk_tracked.p50() / bulk_plain.p50()
    );
    println!(
        "target p50 < 5 ms with an exact total: tracked {} ({:.2} ms); COUNT(*) {} ({:.2} ms); cached count {} ({:.2} ms)",
        verdict(dt_tracked.p50() < 5.0),
        dt_tracked.p50(),
        verdict(dt.p50() < 5.0),
        dt.p50(),
        verdict(dt_page.p50() < 5.0),
        dt_page.p50()
    );
    drop(app);
    db.close().await;
    drop(pg);
}
