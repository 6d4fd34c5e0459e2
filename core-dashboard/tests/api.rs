//! The dashboard's JSON API, driven through its router (mounted at `/admin/jobs`) without a
//! port. The suite is written once and run on the in-process queue and on Redis (failures on
//! SQLite), and once more with failures on PostgreSQL.

mod common;

use common::{Gate, Held, Ping};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use chrono::{DateTime, Utc};
use core_dashboard::Dashboard;
use core_db::Database;
use core_jobs::{
    DispatchOptions, FailedJobs, FailureRecord, JobContext, Queue, ScheduledJob, Worker,
    WorkerHandle,
};
use core_web::AppError;
use http::request::Parts;

use serde_json::{Value, json};
use test_support::{JsonReply, TestPostgres, TestRedis, TestSqlite, send_json};

const TOKEN: &str = "Bearer test-admin";
const T0: i64 = 1_796_000_000_000;

#[derive(Debug, Clone, Copy)]
enum Kind {
    Memory,
    Redis,
    Postgres,
}

/// A router under test with its queue and store, and the services behind them.
struct Harness {
    app: Router,
    queue: Queue,
    failed: FailedJobs,
    _redis: Option<TestRedis>,
    _sqlite: Option<TestSqlite>,
    _postgres: Option<TestPostgres>,
}

/// The application's hook in these tests: a bearer token, and 403 for a read-only one.
fn hook(parts: &Parts) -> impl Future<Output = Result<(), AppError>> + Send + use<> {
    let given = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    async move {
        match given.as_deref() {
            Some(TOKEN) => Ok(()),
            Some("Bearer read-only") => Err(AppError::Forbidden("Read-only".into())),
            _ => Err(AppError::Unauthorized("Sign in as an admin".into())),
        }
    }
}

impl Harness {
    async fn new(kind: Kind, test: &str) -> Option<Self> {
        let (queue, redis) = match kind {
            Kind::Redis => {
                let r = test_support::redis(test).await?;
                let q = Queue::redis(&r.url, r.prefix.clone())
                    .await
                    .expect("redis queue");
                (q, Some(r))
            }
            Kind::Memory | Kind::Postgres => (Queue::memory(), None),
        };
        let (db, sqlite, postgres) = match kind {
            Kind::Postgres => {
                let pg = test_support::postgres(test).await?;
                (Database::Postgres(pg.pool.clone()), None, Some(pg))
            }
            Kind::Memory | Kind::Redis => {
                let s = test_support::sqlite().await;
                (Database::Sqlite(s.pool.clone()), Some(s), None)
            }
        };
        let failed = FailedJobs::new(db);
        let schedule = [
            ScheduledJob::new("0 */5 * * * *", || Ping)
                .expect("cron")
                .name("ping-often")
                .without_overlapping(),
            ScheduledJob::new("0 0 0 30 2 *", || Ping).expect("cron"),
        ];
        let dashboard = Dashboard::builder(queue.clone(), failed.clone())
            .queue_names(["default", "mail"])
            .schedule(schedule)
            .authorize(hook)
            .build()
            .expect("valid dashboard");
        Some(Self {
            app: Router::new().nest("/admin/jobs", dashboard.router()),
            queue,
            failed,
            _redis: redis,
            _sqlite: sqlite,
            _postgres: postgres,
        })
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> JsonReply {
        send(&self.app, method, path, body, Some(TOKEN)).await
    }

    async fn get(&self, path: &str) -> JsonReply {
        self.send(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> JsonReply {
        self.send(Method::POST, path, Some(body)).await
    }

    async fn record(&self, name: &str, queue: &str, error: &str, at_ms: i64) -> i64 {
        let mut r = FailureRecord::new(
            format!("job-{name}-{at_ms}"),
            name,
            queue,
            format!(r#"{{"name":"{name}","at":{at_ms}}}"#),
            error,
        );
        r.attempts = 3;
        r.failed_at = time(at_ms);
        self.failed.record(&r).await.expect("record a failure")
    }

    /// Five failures a second apart from `T0`; their row ids.
    async fn seed(&self) -> Vec<i64> {
        let mut ids = Vec::new();
        for (i, (name, queue, error)) in [
            ("mail", "default", "SMTP timed out"),
            ("mail", "mail", "connection refused"),
            ("resize", "default", "image 100% too large"),
            ("resize", "mail", "Timed Out waiting"),
            ("report", "default", "disk full"),
        ]
        .into_iter()
        .enumerate()
        {
            ids.push(self.record(name, queue, error, T0 + i as i64 * 1000).await);
        }
        ids
    }

    /// A worker in this process on `default` and `mail` running [`Held`] jobs; its gate.
    fn held_worker(&self) -> (WorkerHandle, Gate) {
        let gate = Gate::default();
        let ctx = JobContext::new(self.queue.clone()).with_extension(gate.clone());
        let worker = Worker::new(self.queue.clone(), ctx)
            .register::<Held>()
            .queue("mail")
            .failed_store(self.failed.clone())
            .block_for(Duration::from_millis(50))
            .spawn()
            .expect("worker");
        (worker, gate)
    }

    async fn ready(&self, queue: &str) -> u64 {
        self.queue.stats(queue).await.expect("stats").ready
    }
}

async fn send(
    app: &Router,
    method: Method,
    path: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> JsonReply {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        req = req.header("authorization", token);
    }
    let req = match body {
        Some(body) => req
            .header("content-type", "application/json")
            .body(Body::from(body.to_string())),
        None => req.body(Body::empty()),
    };
    send_json(app, req.expect("request")).await
}

fn time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).expect("a time")
}

fn iso(ms: i64) -> String {
    time(ms).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `data` of a 200, or a panic showing the reply.
fn ok(reply: JsonReply) -> Value {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    reply.json["data"].clone()
}

fn assert_error(reply: &JsonReply, status: u16, code: &str) {
    assert_eq!(reply.status.as_u16(), status, "{}", reply.json);
    assert_eq!(reply.json["error_code"], code, "{}", reply.json);
    assert!(reply.json["message"].is_string(), "{}", reply.json);
}

macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    let h = super::Harness::new(super::Kind::Memory, stringify!($case)).await.unwrap();
                    super::$case(h).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(h) = super::Harness::new(super::Kind::Redis, stringify!($case)).await else { return };
                    super::$case(h).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(h) = super::Harness::new(super::Kind::Postgres, stringify!($case)).await else { return };
                    super::$case(h).await;
                }
            )*
        }
    };
}

suite!(
    nothing_is_answered_without_authorization,
    queues_show_counts_per_queue_and_in_total,
    the_list_filters_sorts_and_pages_without_payloads,
    a_bulk_preview_counts_the_rows_the_list_shows,
    show_answers_one_failure_or_404,
    retry_puts_the_job_back_on_its_queue,
    forget_deletes_the_row,
    bulk_acts_only_on_the_confirmed_count,
    bad_input_is_a_json_400_or_422,
    the_schedule_shows_each_entry_with_its_next_run,
    running_and_recent_jobs_are_listed_per_queue,
    the_jobs_routes_check_queue_and_limit,
);

/// `data` of a 200 when it is a list of `n` rows, waiting up to ten seconds for it.
async fn rows_when(h: &Harness, path: &str, n: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let data = ok(h.get(path).await);
        let rows = data.as_array().expect("a list").clone();
        if rows.len() == n {
            return rows;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path}: expected {n} rows, got {data}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn running_and_recent_jobs_are_listed_per_queue(h: Harness) {
    let running = "/admin/jobs/api/jobs/running";
    let recent = "/admin/jobs/api/jobs/recent";
    assert_eq!(ok(h.get(running).await), json!([]));
    assert_eq!(ok(h.get(recent).await), json!([]));
    let (worker, gate) = h.held_worker();
    let first = h.queue.dispatch(&Held { fail: false }).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let mailed = h
        .queue
        .dispatch_with(
            &Held { fail: true },
            DispatchOptions::new().on_queue("mail"),
        )
        .await
        .unwrap()
        .unwrap();
    // A queue the dashboard does not show is not listed.
    h.queue
        .dispatch_with(&Ping, DispatchOptions::new().on_queue("hidden"))
        .await
        .unwrap();

    let rows = rows_when(&h, running, 2).await;
    assert_eq!(
        rows[0]["id"],
        first.as_str(),
        "oldest dispatch first: {rows:?}"
    );
    assert_eq!(rows[0]["name"], "held");
    assert_eq!(rows[0]["queue"], "default");
    assert_eq!(rows[0]["attempt"], 1);
    assert_eq!(rows[0]["group"], Value::Null);
    for key in ["dispatched_at", "lease_expires_at"] {
        let at: DateTime<Utc> = rows[0][key].as_str().expect(key).parse().expect("RFC 3339");
        assert!((at - Utc::now()).num_seconds().abs() < 60, "{key}: {at}");
    }
    assert_eq!(rows[1]["id"], mailed.as_str());
    let only_mail = ok(h.get(&format!("{running}?queue=mail")).await);
    assert_eq!(only_mail.as_array().unwrap().len(), 1, "{only_mail}");
    assert_eq!(only_mail[0]["queue"], "mail");
    let one = ok(h.get(&format!("{running}?limit=1&queue=")).await);
    assert_eq!(one.as_array().unwrap().len(), 1, "{one}");
    assert_eq!(ok(h.get(recent).await), json!([]), "nothing finished yet");

    gate.0.add_permits(2);
    rows_when(&h, running, 0).await;
    let rows = rows_when(&h, recent, 2).await;
    let by_id = |id: &str| rows.iter().find(|r| r["id"] == id).cloned().expect(id);
    let done = by_id(first.as_str());
    assert_eq!(done["outcome"], "succeeded", "{done}");
    assert_eq!(done["name"], "held");
    assert_eq!(done["queue"], "default");
    assert_eq!(done["attempt"], 1);
    assert!(done["duration_ms"].as_u64().is_some(), "{done}");
    let finished: DateTime<Utc> = done["finished_at"].as_str().unwrap().parse().unwrap();
    assert!((Utc::now() - finished).num_seconds() < 60);
    assert_eq!(by_id(mailed.as_str())["outcome"], "failed");
    let only_mail = ok(h.get(&format!("{recent}?queue=mail")).await);
    assert_eq!(only_mail.as_array().unwrap().len(), 1, "{only_mail}");
    assert_eq!(only_mail[0]["id"], mailed.as_str());
    let one = ok(h.get(&format!("{recent}?limit=1")).await);
    assert_eq!(one.as_array().unwrap().len(), 1, "{one}");
    worker.shutdown().await;
}

async fn the_jobs_routes_check_queue_and_limit(h: Harness) {
    for route in ["running", "recent"] {
        let path = format!("/admin/jobs/api/jobs/{route}");
        for (query, field) in [
            ("queue=hidden", "queue"),
            ("queue=no%3Asuch", "queue"),
            ("limit=0", "limit"),
            ("limit=201", "limit"),
            ("limit=many", "limit"),
        ] {
            let reply = h.get(&format!("{path}?{query}")).await;
            assert_error(&reply, 422, "VALIDATION_ERROR");
            assert!(
                reply.json["errors"][field].is_array(),
                "{route}?{query}: {}",
                reply.json
            );
        }
        ok(h.get(&format!("{path}?limit=200&queue=default")).await);
        let reply = send(&h.app, Method::GET, &path, None, None).await;
        assert_error(&reply, 401, "UNAUTHORIZED");
    }
}

async fn the_schedule_shows_each_entry_with_its_next_run(h: Harness) {
    let before = Utc::now();
    let data = ok(h.get("/admin/jobs/api/schedule").await);
    let entries = data.as_array().expect("a list");
    assert_eq!(entries.len(), 2, "{data}");
    let often = &entries[0];
    assert_eq!(often["name"], "ping-often");
    assert_eq!(often["cron"], "0 */5 * * * *");
    assert_eq!(often["without_overlapping"], true);
    let next: DateTime<Utc> = often["next_run"]
        .as_str()
        .expect("a next run")
        .parse()
        .expect("RFC 3339");
    assert!(
        next > before && next <= before + chrono::Duration::minutes(5),
        "{next}"
    );
    assert_eq!(next.timestamp() % 300, 0, "on a five-minute tick: {next}");
    // Named after the job; 30 February never comes.
    assert_eq!(entries[1]["name"], "ping");
    assert_eq!(entries[1]["next_run"], Value::Null);
    assert_eq!(entries[1]["without_overlapping"], false);
    // Behind authorization like the rest.
    let reply = send(&h.app, Method::GET, "/admin/jobs/api/schedule", None, None).await;
    assert_error(&reply, 401, "UNAUTHORIZED");
}

async fn nothing_is_answered_without_authorization(h: Harness) {
    h.seed().await;
    for path in [
        "/admin/jobs/api/queues",
        "/admin/jobs/api/failed",
        "/admin/jobs/api/failed/1",
        "/admin/jobs/api/nowhere",
    ] {
        let reply = send(&h.app, Method::GET, path, None, None).await;
        assert_error(&reply, 401, "UNAUTHORIZED");
        assert_eq!(reply.json["message"], "Sign in as an admin");
        let reply = send(&h.app, Method::GET, path, None, Some("Bearer read-only")).await;
        assert_error(&reply, 403, "FORBIDDEN");
    }
    let reply = send(
        &h.app,
        Method::POST,
        "/admin/jobs/api/failed/bulk",
        Some(json!({"action": "forget", "confirm_count": 5})),
        Some("Bearer wrong"),
    )
    .await;
    assert_error(&reply, 401, "UNAUTHORIZED");
    assert_eq!(h.failed.count().await.unwrap(), 5, "nothing was forgotten");

    // Without a hook, nothing at all.
    let bare = Dashboard::builder(h.queue.clone(), h.failed.clone())
        .build()
        .unwrap();
    assert_eq!(bare.queue_names(), ["default"]);
    let app = Router::new().nest("/admin/jobs", bare.router());
    for path in ["/admin/jobs/api/queues", "/admin/jobs/api/failed"] {
        let reply = send(&app, Method::GET, path, None, Some(TOKEN)).await;
        assert_error(&reply, 401, "UNAUTHORIZED");
    }
}

async fn queues_show_counts_per_queue_and_in_total(h: Harness) {
    for _ in 0..2 {
        h.queue.dispatch(&Ping).await.unwrap();
    }
    h.queue
        .dispatch_in(&Ping, Duration::from_secs(3600))
        .await
        .unwrap();
    h.queue
        .dispatch_with(&Ping, DispatchOptions::new().on_queue("mail"))
        .await
        .unwrap();
    h.seed().await;
    h.record("x", "elsewhere", "boom", T0).await;

    let data = ok(h.get("/admin/jobs/api/queues").await);
    let queues = data["queues"].as_array().unwrap();
    assert_eq!(queues.len(), 2);
    assert_eq!(
        queues[0],
        json!({"queue": "default", "ready": 2, "delayed": 1, "running": 0,
               "grouped_waiting": 0, "pending_failures": 0, "failed": 3})
    );
    assert_eq!(queues[1]["queue"], "mail");
    assert_eq!(queues[1]["ready"], 1);
    assert_eq!(queues[1]["failed"], 2);
    assert_eq!(
        data["totals"],
        json!({"ready": 3, "delayed": 1, "running": 0, "grouped_waiting": 0,
               "pending_failures": 0, "failed": 5})
    );
    assert_eq!(data["failed_all_queues"], 6);
}

async fn the_list_filters_sorts_and_pages_without_payloads(h: Harness) {
    let ids = h.seed().await;
    let reply = h.get("/admin/jobs/api/failed").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
    assert_eq!(
        reply.json["meta"],
        json!({"page": 1, "per_page": 25, "total": 5, "last_page": 1})
    );
    let rows = reply.json["data"].as_array().unwrap();
    let listed: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(listed, newest_first);
    let first = rows[0].as_object().unwrap();
    assert!(!first.contains_key("payload"), "{first:?}");
    assert_eq!(first["job_name"], "report");
    assert_eq!(first["error"], "disk full");
    assert_eq!(first["attempts"], 3);
    assert_eq!(
        first["failed_at"],
        json!(time(T0 + 4000).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    );

    let ids_of = |reply: JsonReply| -> Vec<i64> {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
        reply.json["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect()
    };
    let base = "/admin/jobs/api/failed";
    assert_eq!(
        ids_of(h.get(&format!("{base}?job_name=mail&sort=id")).await),
        [ids[0], ids[1]]
    );
    assert_eq!(
        ids_of(h.get(&format!("{base}?queue=mail&sort=id")).await),
        [ids[1], ids[3]]
    );
    assert_eq!(
        ids_of(h.get(&format!("{base}?error=TIMED+out&sort=id")).await),
        [ids[0], ids[3]]
    );
    assert_eq!(
        ids_of(h.get(&format!("{base}?error=0%25+too")).await),
        [ids[2]]
    );
    assert_eq!(
        ids_of(h.get(&format!("{base}?error=0%25x")).await),
        Vec::<i64>::new()
    );
    assert_eq!(
        ids_of(
            h.get(&format!(
                "{base}?failed_from={}&failed_before={}&sort=id",
                iso(T0 + 1000),
                iso(T0 + 3000)
            ))
            .await
        ),
        [ids[1], ids[2]]
    );
    assert_eq!(
        ids_of(h.get(&format!("{base}?job_name=resize&queue=mail")).await),
        [ids[3]]
    );
    // Empty values are not filters.
    assert_eq!(
        ids_of(h.get(&format!("{base}?job_name=&queue=")).await).len(),
        5
    );
    // Sorted and paged.
    assert_eq!(
        ids_of(h.get(&format!("{base}?sort=job_name,-id")).await),
        [ids[1], ids[0], ids[4], ids[3], ids[2]]
    );
    let reply = h.get(&format!("{base}?sort=id&per_page=2&page=3")).await;
    assert_eq!(reply.json["meta"]["last_page"], 3);
    assert_eq!(ids_of(reply), [ids[4]]);
}

/// The preview's count is the list's `meta.total` for the same filter, whatever the filter.
async fn a_bulk_preview_counts_the_rows_the_list_shows(h: Harness) {
    h.seed().await;
    // Edge cases of the error text (wildcards, case) and of the times (the bounds themselves).
    for (i, error) in ["a_b", "axb", "wow!", "100%", "1000", "MiXeD"]
        .into_iter()
        .enumerate()
    {
        h.record("edge", "default", error, T0 + 1000 + i as i64)
            .await;
    }
    let filters = [
        json!({}),
        json!({"job_name": "mail"}),
        json!({"job_name": "MAIL"}),
        json!({"queue": "default"}),
        json!({"queue": "mail", "job_name": "resize"}),
        json!({"error": "timed out"}),
        json!({"error": "a_b"}),
        json!({"error": "!"}),
        json!({"error": "0%"}),
        json!({"error": "%"}),
        json!({"error": "_"}),
        json!({"error": "mixed"}),
        json!({"failed_from": iso(T0 + 1000)}),
        json!({"failed_from": iso(T0 + 1001)}),
        json!({"failed_before": iso(T0 + 1000)}),
        json!({"failed_before": iso(T0 + 1003), "failed_from": iso(T0 + 1001)}),
        json!({"failed_from": "2026-12-05", "failed_before": "2030-01-01"}),
        json!({"failed_from": time(T0).format("%Y-%m-%d").to_string()}),
        json!({"failed_before": "2026-12-05T10:00:00.000999+02:00"}),
        json!({"job_name": "", "error": ""}),
    ];
    for filter in filters {
        let preview = ok(h
            .post(
                "/admin/jobs/api/failed/bulk/preview",
                json!({"action": "forget", "filter": filter}),
            )
            .await);
        let query: String = filter
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                let v: String = url_encode(v.as_str().unwrap());
                format!("{k}={v}&")
            })
            .collect();
        let list = h
            .get(&format!("/admin/jobs/api/failed?per_page=1&{query}"))
            .await;
        assert_eq!(list.status, StatusCode::OK, "{filter}: {}", list.json);
        assert_eq!(
            preview["count"], list.json["meta"]["total"],
            "filter {filter}: preview {preview} vs list {}",
            list.json["meta"]
        );
    }
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn show_answers_one_failure_or_404(h: Harness) {
    let ids = h.seed().await;
    let data = ok(h.get(&format!("/admin/jobs/api/failed/{}", ids[2])).await);
    assert_eq!(data["id"], ids[2]);
    assert_eq!(data["job_name"], "resize");
    assert_eq!(data["queue"], "default");
    assert_eq!(data["error"], "image 100% too large");
    assert_eq!(data["attempts"], 3);
    assert_eq!(
        data["payload"],
        format!(r#"{{"name":"resize","at":{}}}"#, T0 + 2000)
    );
    assert_eq!(data["job_id"], format!("job-resize-{}", T0 + 2000));
    let reply = h.get("/admin/jobs/api/failed/999999").await;
    assert_error(&reply, 404, "NOT_FOUND");
    for bad in ["abc", "0", "-1", "1.5", "99999999999999999999"] {
        let reply = h.get(&format!("/admin/jobs/api/failed/{bad}")).await;
        assert_error(&reply, 400, "BAD_REQUEST");
    }
}

async fn retry_puts_the_job_back_on_its_queue(h: Harness) {
    let ids = h.seed().await;
    assert_eq!(h.ready("mail").await, 0);
    let data = ok(h
        .post(
            &format!("/admin/jobs/api/failed/{}/retry", ids[1]),
            json!({}),
        )
        .await);
    assert_eq!(data["id"], ids[1]);
    assert_eq!(data["job_id"], format!("job-mail-{}", T0 + 1000));
    assert_eq!(h.ready("mail").await, 1);
    let queues = ok(h.get("/admin/jobs/api/queues").await);
    assert_eq!(queues["queues"][1]["ready"], 1);
    assert_eq!(queues["queues"][1]["failed"], 1);
    assert!(h.failed.get(ids[1]).await.unwrap().is_none());
    let again = h
        .send(
            Method::POST,
            &format!("/admin/jobs/api/failed/{}/retry", ids[1]),
            None,
        )
        .await;
    assert_error(&again, 404, "NOT_FOUND");
    assert_eq!(h.ready("mail").await, 1);
}

async fn forget_deletes_the_row(h: Harness) {
    let ids = h.seed().await;
    let data = ok(h
        .send(
            Method::POST,
            &format!("/admin/jobs/api/failed/{}/forget", ids[0]),
            None,
        )
        .await);
    assert_eq!(data, json!({"id": ids[0]}));
    assert_eq!(h.failed.count().await.unwrap(), 4);
    assert_eq!(h.ready("default").await, 0, "nothing was dispatched");
    let again = h
        .send(
            Method::POST,
            &format!("/admin/jobs/api/failed/{}/forget", ids[0]),
            None,
        )
        .await;
    assert_error(&again, 404, "NOT_FOUND");
}

async fn bulk_acts_only_on_the_confirmed_count(h: Harness) {
    h.seed().await;
    let filter = json!({"queue": "default"});
    let preview = ok(h
        .post(
            "/admin/jobs/api/failed/bulk/preview",
            json!({"action": "retry", "filter": filter}),
        )
        .await);
    assert_eq!(preview, json!({"action": "retry", "count": 3}));

    // Another failure arrives after the preview: the confirmed count no longer holds.
    h.record("late", "default", "boom", T0 + 9000).await;
    let reply = h
        .post(
            "/admin/jobs/api/failed/bulk",
            json!({"action": "retry", "filter": filter, "confirm_count": 3}),
        )
        .await;
    assert_error(&reply, 409, "BULK_COUNT_CHANGED");
    assert_eq!(reply.headers["x-matching-count"], "4");
    assert!(
        reply.json["message"].as_str().unwrap().contains('4'),
        "{}",
        reply.json
    );
    assert_eq!(h.ready("default").await, 0, "nothing was dispatched");
    assert_eq!(h.failed.count().await.unwrap(), 6, "nothing was deleted");

    let data = ok(h
        .post(
            "/admin/jobs/api/failed/bulk",
            json!({"action": "retry", "filter": filter, "confirm_count": 4}),
        )
        .await);
    assert_eq!(data, json!({"action": "retry", "count": 4}));
    assert_eq!(h.ready("default").await, 4);
    assert_eq!(h.ready("mail").await, 0);
    assert_eq!(h.failed.count().await.unwrap(), 2);

    // Forget on a filter; nothing left to match afterwards.
    let filter = json!({"error": "REFUSED"});
    let data = ok(h
        .post(
            "/admin/jobs/api/failed/bulk",
            json!({"action": "forget", "filter": filter, "confirm_count": 1}),
        )
        .await);
    assert_eq!(data, json!({"action": "forget", "count": 1}));
    assert_eq!(h.failed.count().await.unwrap(), 1);
    assert_eq!(h.ready("mail").await, 0, "forget dispatches nothing");
    let reply = h
        .post(
            "/admin/jobs/api/failed/bulk",
            json!({"action": "forget", "filter": filter, "confirm_count": 1}),
        )
        .await;
    assert_error(&reply, 409, "BULK_COUNT_CHANGED");
    assert_eq!(reply.headers["x-matching-count"], "0");
    let data = ok(h
        .post(
            "/admin/jobs/api/failed/bulk",
            json!({"action": "forget", "filter": filter, "confirm_count": 0}),
        )
        .await);
    assert_eq!(data["count"], 0);

    // An empty table confirms 0 and only 0.
    h.failed
        .forget_matching(&core_jobs::FailedFilter::new())
        .await
        .unwrap();
    let body = json!({"action": "forget", "confirm_count": 0});
    assert_eq!(
        ok(h.post("/admin/jobs/api/failed/bulk", body).await)["count"],
        0
    );
    let body = json!({"action": "retry", "confirm_count": 2});
    let reply = h.post("/admin/jobs/api/failed/bulk", body).await;
    assert_error(&reply, 409, "BULK_COUNT_CHANGED");
}

async fn bad_input_is_a_json_400_or_422(h: Harness) {
    h.seed().await;
    let bulk = "/admin/jobs/api/failed/bulk";
    let raw = |body: &'static str, content_type: &'static str| {
        Request::builder()
            .method(Method::POST)
            .uri(bulk)
            .header("authorization", TOKEN)
            .header("content-type", content_type)
            .body(Body::from(body))
            .unwrap()
    };
    let reply = send_json(&h.app, raw("{\"action\": ", "application/json")).await;
    assert_error(&reply, 400, "BAD_REQUEST");
    let reply = send_json(
        &h.app,
        raw("action=forget", "application/x-www-form-urlencoded"),
    )
    .await;
    assert_error(&reply, 400, "BAD_REQUEST");

    let cases = [
        (
            json!({"action": "delete", "confirm_count": 1}),
            400,
            "action",
        ),
        (json!({"confirm_count": 1}), 400, "$"),
        (
            json!({"action": "forget", "filter": {"job": "x"}, "confirm_count": 5}),
            400,
            "filter",
        ),
        (
            json!({"action": "forget", "filter": {"queue": 7}, "confirm_count": 5}),
            400,
            "filter.queue",
        ),
        (
            json!({"action": "forget", "confirm_count": -1}),
            400,
            "confirm_count",
        ),
        (json!({"action": "forget"}), 422, "confirm_count"),
        (
            json!({"action": "forget", "filter": {"failed_from": "yesterday"}, "confirm_count": 5}),
            422,
            "filter.failed_from",
        ),
        (
            json!({"action": "forget", "filter": {"failed_before": "2026-02-30"}, "confirm_count": 5}),
            422,
            "filter.failed_before",
        ),
        (
            json!({"action": "forget", "filter": {"error": "x".repeat(1001)}, "confirm_count": 5}),
            422,
            "filter.error",
        ),
        (
            json!({"action": "forget", "filter": {"job_name": "a\u{0}b"}, "confirm_count": 5}),
            422,
            "filter.job_name",
        ),
    ];
    for (body, status, field) in cases {
        let reply = h.post(bulk, body.clone()).await;
        assert_eq!(reply.status.as_u16(), status, "{body}: {}", reply.json);
        let errors = reply.json["errors"].as_object();
        assert!(
            errors.is_some_and(|e| e.keys().any(|k| k.starts_with(field))),
            "{body}: {}",
            reply.json
        );
    }
    let reply = h
        .post(
            "/admin/jobs/api/failed/bulk/preview",
            json!({"action": "forget", "filter": {"failed_from": "12/05/2026"}}),
        )
        .await;
    assert_error(&reply, 422, "VALIDATION_ERROR");
    assert_eq!(h.failed.count().await.unwrap(), 5, "nothing was touched");

    for (query, status) in [
        ("failed_from=soon", 422),
        ("failed_before=2026-12-05T25:00:00Z", 422),
        ("filter[queue]=mail", 422),
        ("filter%5Berror%5D%5Blike%5D=x", 422),
        ("queue=a&queue=b", 422),
        ("sort=payload", 422),
        ("sort=error", 422),
        ("page=0", 422),
        ("per_page=x", 422),
        ("error=%E0%A4", 400),
        ("job_name=%zz", 400),
    ] {
        let reply = h.get(&format!("/admin/jobs/api/failed?{query}")).await;
        assert_eq!(reply.status.as_u16(), status, "{query}: {}", reply.json);
        assert!(
            reply.json["error_code"].is_string(),
            "{query}: {}",
            reply.json
        );
    }

    let reply = h
        .send(Method::DELETE, "/admin/jobs/api/failed/1", None)
        .await;
    assert_error(&reply, 405, "METHOD_NOT_ALLOWED");
    let reply = h.get("/admin/jobs/api/failed/bulk").await;
    assert_error(&reply, 405, "METHOD_NOT_ALLOWED");
    let reply = h.get("/admin/jobs/api/nowhere").await;
    assert_error(&reply, 404, "NOT_FOUND");
}
