//! `GET api/events`: the queues' counts as server-sent events, behind the session like the rest
//! of the API. Driven through the router (mounted at `/admin/jobs`) without a port, on the
//! in-process queue with failures on SQLite.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use core_dashboard::Dashboard;
use core_db::Database;
use core_jobs::{FailedJobs, FailureRecord, Job, JobContext, Queue};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use test_support::TestSqlite;
use tower::ServiceExt;

const SECRET: &str = "live-admin-token-for-tests";
const PREFIX: &str = "/admin/jobs";
const HOST: &str = "dashboard.test";

#[derive(Debug, Serialize, Deserialize)]
struct Ping;

#[core_jobs::async_trait]
impl Job for Ping {
    const NAME: &'static str = "ping";

    async fn handle(&self, _ctx: &JobContext) -> anyhow::Result<()> {
        Ok(())
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
        let sqlite = test_support::sqlite().await;
        let failed = FailedJobs::new(Database::Sqlite(sqlite.pool.clone()));
        let queue = Queue::memory();
        let dashboard = Dashboard::builder(queue.clone(), failed.clone())
            .queue_names(["default", "mail"])
            .token_login(SECRET)
            .live_interval(interval)
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
        let request = Request::post(format!("{PREFIX}/login"))
            .header("host", HOST)
            .header("origin", format!("http://{HOST}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(format!("token={SECRET}")))
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let set = response.headers()["set-cookie"].to_str().unwrap();
        set.split(';').next().unwrap().to_owned()
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

    /// The next event (comments skipped), within five seconds.
    async fn next(&mut self) -> (String, Value) {
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
