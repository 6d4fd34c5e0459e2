//! `GET api/events`: the queues' counts and the running and recent jobs as server-sent events,
//! behind the session like the rest of the API; `GET api/throughput` and the `throughput` events: the sampled counts of the
//! in-process workers. Driven through the router (mounted at `/admin/jobs`) without a port, on the
//! in-process queue with failures on SQLite.

mod common;

use common::{Gate, Held, Ping};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use core_dashboard::Dashboard;
use core_db::Database;
use core_jobs::{
    DispatchOptions, FailedJobs, FailureRecord, Job, JobContext, Queue, Worker, WorkerHandle,
};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use test_support::TestSqlite;
use tower::ServiceExt;

const SECRET: &str = "live-admin-token-for-tests";
const PREFIX: &str = "/admin/jobs";
const HOST: &str = "dashboard.test";

/// Always fails, without retries.
#[derive(Debug, Serialize, Deserialize)]
struct Doomed;

#[core_jobs::async_trait]
impl Job for Doomed {
    const NAME: &'static str = "doomed";

    async fn handle(&self, _ctx: &JobContext) -> anyhow::Result<()> {
        anyhow::bail!("doomed")
    }

    fn max_retries(&self) -> u32 {
        0
    }
}

struct Harness {
    app: Router,
    queue: Queue,
    failed: FailedJobs,
    sqlite: TestSqlite,
}

impl Harness {
    async fn new(interval: Duration) -> Self {
        Self::sampled(interval, Duration::from_secs(10), Duration::from_secs(3600)).await
    }

    /// With the throughput sampled every `sample` and kept for `window`.
    async fn sampled(interval: Duration, sample: Duration, window: Duration) -> Self {
        let sqlite = test_support::sqlite().await;
        let failed = FailedJobs::new(Database::Sqlite(sqlite.pool.clone()));
        let queue = Queue::memory();
        let dashboard = Dashboard::builder(queue.clone(), failed.clone())
            .queue_names(["default", "mail"])
            .token_login(SECRET)
            .live_interval(interval)
            .sample_interval(sample)
            .throughput_window(window)
            .build()
            .expect("valid dashboard");
        Self {
            app: Router::new().nest_service(PREFIX, dashboard.router()),
            queue,
            failed,
            sqlite,
        }
    }

    /// Signs in; the session cookie (`name=value`).
    async fn session(&self) -> String {
        common::sign_in(&self.app, PREFIX, HOST, SECRET).await
    }

    /// A worker in this process on the dashboard's queue, on `default` and `mail`.
    fn worker(&self) -> WorkerHandle {
        Worker::new(self.queue.clone(), JobContext::new(self.queue.clone()))
            .register::<Ping>()
            .register::<Doomed>()
            .queue("mail")
            .failed_store(self.failed.clone())
            .block_for(Duration::from_millis(20))
            .spawn()
            .expect("worker")
    }

    /// `GET {path}` with `cookie`: status and JSON body.
    async fn get(&self, path: &str, cookie: Option<&str>) -> (StatusCode, Value) {
        let mut builder = Request::get(format!("{PREFIX}/{path}")).header("host", HOST);
        if let Some(cookie) = cookie {
            builder = builder.header("cookie", cookie);
        }
        let response = self
            .app
            .clone()
            .oneshot(builder.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap())
    }

    /// Opens the event stream with `cookie`.
    async fn events(&self, cookie: Option<&str>) -> axum::response::Response {
        let mut builder = Request::get(format!("{PREFIX}/api/events"))
            .header("host", HOST)
            .header("accept", "text/event-stream");
        if let Some(cookie) = cookie {
            builder = builder.header("cookie", cookie);
        }
        let request = builder.body(Body::empty()).unwrap();
        self.app.clone().oneshot(request).await.unwrap()
    }
}

/// Reads server-sent events from a response body, one `(event, data)` at a time.
struct Events {
    body: Body,
    buffer: String,
}

impl Events {
    fn new(response: axum::response::Response) -> Self {
        Self {
            body: response.into_body(),
            buffer: String::new(),
        }
    }

    /// The next event but `throughput` and `jobs` ones (comments skipped), within five seconds.
    async fn next(&mut self) -> (String, Value) {
        loop {
            let (name, data) = self.next_any().await;
            if name != "throughput" && name != "jobs" {
                return (name, data);
            }
        }
    }

    /// The next event named `name`.
    async fn next_named(&mut self, name: &str) -> Value {
        loop {
            let (got, data) = self.next_any().await;
            if got == name {
                return data;
            }
        }
    }

    /// The next event (comments skipped), within five seconds.
    async fn next_any(&mut self) -> (String, Value) {
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let block: String = self.buffer.drain(..end + 2).collect();
                    let mut name = "message".to_owned();
                    let mut data = String::new();
                    for line in block.lines() {
                        if let Some(v) = line.strip_prefix("event:") {
                            name = v.trim().to_owned();
                        } else if let Some(v) = line.strip_prefix("data:") {
                            data.push_str(v.trim_start());
                        }
                    }
                    if data.is_empty() {
                        continue; // a keep-alive comment
                    }
                    let json = serde_json::from_str(&data).expect("event data is JSON");
                    return (name, json);
                }
                let frame = self
                    .body
                    .frame()
                    .await
                    .expect("the stream goes on")
                    .expect("a frame");
                if let Ok(bytes) = frame.into_data() {
                    self.buffer.push_str(std::str::from_utf8(&bytes).unwrap());
                }
            }
        })
        .await
        .expect("an event within five seconds")
    }
}

#[tokio::test]
async fn events_need_a_session() {
    let h = Harness::new(Duration::from_millis(100)).await;
    let response = h.events(None).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let json: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["error_code"], "UNAUTHORIZED", "{json}");

    let response = h.events(Some("rustforge_dashboard=not-a-session")).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_first_event_is_the_queues_json_and_counts_follow_dispatches() {
    let h = Harness::new(Duration::from_millis(100)).await;
    let cookie = h.session().await;
    let response = h.events(Some(&cookie)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut events = Events::new(response);

    let (name, first) = events.next().await;
    assert_eq!(name, "queues");
    let data = &first["data"];
    let names: Vec<&str> = data["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["queue"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "mail"]);
    for key in [
        "ready",
        "delayed",
        "running",
        "grouped_waiting",
        "pending_failures",
        "failed",
    ] {
        assert_eq!(data["totals"][key], 0, "{key}: {first}");
    }
    assert_eq!(data["failed_all_queues"], 0);

    // The same JSON as `GET api/queues`.
    let request = Request::get(format!("{PREFIX}/api/queues"))
        .header("cookie", &cookie)
        .body(Body::empty())
        .unwrap();
    let body = h
        .app
        .clone()
        .oneshot(request)
        .await
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes();
    let queues: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(queues, first);

    h.queue.dispatch(&Ping).await.unwrap();
    h.queue.dispatch(&Ping).await.unwrap();
    let record = FailureRecord::new("job-1", "mail", "mail", "{}", "boom");
    h.failed.record(&record).await.unwrap();
    let mut seen = Value::Null;
    for _ in 0..20 {
        let (name, event) = events.next().await;
        assert_eq!(name, "queues");
        seen = event["data"].clone();
        if seen["totals"]["ready"] == 2 && seen["totals"]["failed"] == 1 {
            break;
        }
    }
    assert_eq!(seen["queues"][0]["ready"], 2, "{seen}");
    assert_eq!(seen["queues"][1]["failed"], 1, "{seen}");
    assert_eq!(seen["failed_all_queues"], 1, "{seen}");
}

#[tokio::test]
async fn a_failing_data_source_sends_error_events_and_the_stream_goes_on() {
    let h = Harness::new(Duration::from_millis(100)).await;
    let cookie = h.session().await;
    let mut events = Events::new(h.events(Some(&cookie)).await);
    assert_eq!(events.next().await.0, "queues");

    h.sqlite.pool.close().await;
    let (name, error) = events.next().await;
    assert_eq!(name, "error", "{error}");
    assert!(error["message"].is_string(), "{error}");
    assert!(error["error_code"].is_string(), "{error}");
    // Not closed: the next tick tries again, and says so again.
    assert_eq!(events.next().await.0, "error");
}

#[tokio::test]
async fn events_come_once_per_interval() {
    let h = Harness::new(Duration::from_millis(300)).await;
    let cookie = h.session().await;
    let mut events = Events::new(h.events(Some(&cookie)).await);
    let started = std::time::Instant::now();
    events.next().await;
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "the first at once"
    );
    events.next().await;
    events.next().await;
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(550),
        "three events in {elapsed:?}"
    );
}

/// The sum of `field` (`processed`, `failed`, `retried`) over the points, for `queue` (or the
/// totals).
fn sum(reply: &Value, queue: Option<&str>, field: &str) -> u64 {
    reply["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| match queue {
            Some(q) => p["queues"][q][field].as_u64().unwrap(),
            None => p["total"][field].as_u64().unwrap(),
        })
        .sum()
}

#[tokio::test]
async fn throughput_needs_a_session() {
    let h = Harness::new(Duration::from_millis(100)).await;
    let (status, json) = h.get("api/throughput", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(json["error_code"], "UNAUTHORIZED", "{json}");
}

#[tokio::test]
async fn the_throughput_series_moves_as_a_worker_in_this_process_runs_jobs() {
    let h = Harness::sampled(
        Duration::from_secs(1),
        Duration::from_millis(100),
        Duration::from_secs(60),
    )
    .await;
    let cookie = h.session().await;
    let (status, first) = h.get("api/throughput", Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let data = &first["data"];
    assert_eq!(data["interval_ms"], 100, "{data}");
    assert_eq!(data["window_ms"], 60_000, "{data}");
    assert_eq!(data["queues"], serde_json::json!(["default", "mail"]));
    assert_eq!(data["replace"], true);

    let worker = h.worker();
    for _ in 0..3 {
        h.queue.dispatch(&Ping).await.unwrap();
    }
    h.queue
        .dispatch_with(&Doomed, DispatchOptions::new().on_queue("mail"))
        .await
        .unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let reply = loop {
        let (_, reply) = h.get("api/throughput", Some(&cookie)).await;
        let data = reply["data"].clone();
        if sum(&data, None, "processed") == 3 && sum(&data, None, "failed") == 1 {
            break data;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the series did not move: {data}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(sum(&reply, Some("default"), "processed"), 3, "{reply}");
    assert_eq!(sum(&reply, Some("default"), "failed"), 0, "{reply}");
    assert_eq!(sum(&reply, Some("mail"), "failed"), 1, "{reply}");
    // Later points add nothing, and come oldest first.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, later) = h.get("api/throughput", Some(&cookie)).await;
    let reply = &later["data"];
    assert_eq!(sum(reply, None, "processed"), 3, "{reply}");
    let points = reply["points"].as_array().unwrap();
    assert!(points.len() >= 3, "{reply}");
    for pair in points.windows(2) {
        assert!(
            pair[0]["at"].as_i64() < pair[1]["at"].as_i64(),
            "oldest first"
        );
    }
    assert!(points.iter().all(|p| p["span_ms"].as_u64().unwrap() >= 50));
    worker.shutdown().await;
}

#[tokio::test]
async fn the_event_stream_sends_the_series_then_each_new_point() {
    let h = Harness::sampled(
        Duration::from_secs(5),
        Duration::from_millis(100),
        Duration::from_secs(60),
    )
    .await;
    let cookie = h.session().await;
    let mut events = Events::new(h.events(Some(&cookie)).await);
    let first = events.next_named("throughput").await;
    assert_eq!(first["data"]["replace"], true, "{first}");
    assert_eq!(first["data"]["interval_ms"], 100, "{first}");

    let worker = h.worker();
    h.queue.dispatch(&Ping).await.unwrap();
    let mut processed = 0;
    for _ in 0..50 {
        let update = events.next_named("throughput").await;
        let data = &update["data"];
        assert_eq!(data["replace"], false, "{update}");
        assert_eq!(data["points"].as_array().unwrap().len(), 1, "{update}");
        processed += sum(data, Some("default"), "processed");
        if processed == 1 {
            break;
        }
    }
    assert_eq!(processed, 1, "a point counted the job");
    worker.shutdown().await;
}

#[tokio::test]
async fn points_older_than_the_window_are_dropped() {
    let h = Harness::sampled(
        Duration::from_secs(1),
        Duration::from_millis(50),
        Duration::from_millis(300),
    )
    .await;
    let cookie = h.session().await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (_, reply) = h.get("api/throughput", Some(&cookie)).await;
    let n = reply["data"]["points"].as_array().unwrap().len();
    assert!(
        (3..=7).contains(&n),
        "{n} points in a 300 ms window sampled every 50 ms"
    );
}

#[tokio::test]
async fn at_most_max_points_are_kept() {
    // An hour sampled every 100 ms would be 36000 points: the interval is raised to 1 s.
    let h = Harness::sampled(
        Duration::from_secs(1),
        Duration::from_millis(100),
        Duration::from_secs(3600),
    )
    .await;
    let cookie = h.session().await;
    let (_, reply) = h.get("api/throughput", Some(&cookie)).await;
    assert_eq!(
        reply["data"]["interval_ms"],
        3_600_000 / u64::from(core_dashboard::throughput::MAX_POINTS)
    );
}

#[tokio::test]
async fn jobs_events_show_a_job_running_then_finished() {
    let h = Harness::new(Duration::from_millis(100)).await;
    let cookie = h.session().await;
    let mut events = Events::new(h.events(Some(&cookie)).await);
    let first = events.next_named("jobs").await;
    let data = &first["data"];
    assert_eq!(
        data["queues"],
        serde_json::json!(["default", "mail"]),
        "{first}"
    );
    assert_eq!(data["running"], serde_json::json!([]), "{first}");
    assert_eq!(data["recent"], serde_json::json!([]), "{first}");

    let gate = Gate::default();
    let ctx = JobContext::new(h.queue.clone()).with_extension(gate.clone());
    let worker = Worker::new(h.queue.clone(), ctx)
        .register::<Held>()
        .queue("mail")
        .failed_store(h.failed.clone())
        .block_for(Duration::from_millis(20))
        .spawn()
        .expect("worker");
    let id = h
        .queue
        .dispatch_with(
            &Held { fail: false },
            DispatchOptions::new().on_queue("mail"),
        )
        .await
        .unwrap()
        .unwrap();
    let mut seen = Value::Null;
    for _ in 0..50 {
        seen = events.next_named("jobs").await["data"].clone();
        if seen["running"].as_array().is_some_and(|r| !r.is_empty()) {
            break;
        }
    }
    assert_eq!(seen["running"][0]["id"], id.as_str(), "{seen}");
    assert_eq!(seen["running"][0]["queue"], "mail", "{seen}");
    assert_eq!(seen["running"][0]["name"], "held", "{seen}");
    assert!(seen["running"][0]["lease_expires_at"].is_string(), "{seen}");

    gate.0.add_permits(1);
    for _ in 0..50 {
        seen = events.next_named("jobs").await["data"].clone();
        if seen["recent"].as_array().is_some_and(|r| !r.is_empty()) {
            break;
        }
    }
    let done = &seen["recent"][0];
    assert_eq!(done["id"], id.as_str(), "{seen}");
    assert_eq!(done["outcome"], "succeeded", "{seen}");
    assert_eq!(done["attempt"], 1, "{seen}");
    assert!(done["duration_ms"].is_u64(), "{seen}");
    // Finished: no longer running (the ring is written just before the lease ends).
    for _ in 0..50 {
        if seen["running"] == serde_json::json!([]) {
            break;
        }
        seen = events.next_named("jobs").await["data"].clone();
    }
    assert_eq!(seen["running"], serde_json::json!([]), "{seen}");
    worker.shutdown().await;
}

#[tokio::test]
async fn a_dashboard_with_recent_jobs_off_lists_none() {
    let sqlite = test_support::sqlite().await;
    let failed = FailedJobs::new(Database::Sqlite(sqlite.pool.clone()));
    let queue = Queue::memory();
    queue.counters().keep_recent(7);
    let dashboard = Dashboard::builder(queue.clone(), failed)
        .token_login(SECRET)
        .recent_jobs(0)
        .build()
        .expect("valid dashboard");
    assert_eq!(queue.counters().recent_capacity(), 0);
    drop(dashboard);
    let queue = Queue::memory();
    let sqlite2 = test_support::sqlite().await;
    let _dashboard = Dashboard::builder(
        queue.clone(),
        FailedJobs::new(Database::Sqlite(sqlite2.pool.clone())),
    )
    .token_login(SECRET)
    .build()
    .expect("valid dashboard");
    assert_eq!(
        queue.counters().recent_capacity(),
        core_dashboard::DEFAULT_RECENT_JOBS,
        "on by default"
    );
}
