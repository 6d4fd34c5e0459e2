//! A webhook receiver on `127.0.0.1` for tests and benchmarks: it records every request it gets
//! and answers as its path says.
//!
//! | path | answer |
//! |---|---|
//! | `/ok` | 200 |
//! | `/flaky` | 500 to the first two requests of each `webhook-id`, then 200 |
//! | `/busy` | 503 with `Retry-After: 1` to the first request of each `webhook-id`, then 200 |
//! | `/gone` | 410 |
//! | `/down` | 500 |
//! | `/stall` | nothing, ever (the connection stays open) |
//! | `/redirect` | 302 to `/ok` |
//! | `/slow` | 200 after 300 ms |
//! | `/catalog` | as ForgeRun's `WEBHOOK_*` work kind in the body's `data.work_kind` says: `_SUCCESS` ok, `_TIMEOUT` stall, `_5XX` flaky, `_RETRIES_EXHAUSTED` down, `_SLOW_RECEIVER` slow |
//!
//! A path may carry a prefix of its own (`/a/ok`, `/b/stall`) so several webhooks share one
//! receiver: the answer follows the last segment.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// Its path.
    pub path: String,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Bytes,
    /// When it arrived.
    pub at: Instant,
    /// When it arrived, by the wall clock (to compare with times the sender wrote).
    pub wall: std::time::SystemTime,
}

impl Received {
    /// A header's value as text (empty when missing).
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }

    /// The body as JSON (`Null` when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }
}

#[derive(Default)]
struct Log {
    received: Vec<Received>,
    seen: HashMap<(String, String), u32>,
}

/// A running receiver; it stops when dropped.
pub struct Receiver {
    addr: SocketAddr,
    log: Arc<Mutex<Log>>,
    task: JoinHandle<()>,
}

impl Receiver {
    /// Starts a receiver on a free port of `127.0.0.1`.
    ///
    /// # Panics
    /// The port cannot be bound (a test set-up failure).
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let log = Arc::new(Mutex::new(Log::default()));
        let app = Router::new().fallback(answer).with_state(Arc::clone(&log));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, log, task }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every request so far whose path is `path`, in arrival order.
    pub fn requests(&self, path: &str) -> Vec<Received> {
        self.all().into_iter().filter(|r| r.path == path).collect()
    }

    /// Every request so far, in arrival order.
    pub fn all(&self) -> Vec<Received> {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .received
            .clone()
    }

    /// How many requests `path` has had.
    pub fn count(&self, path: &str) -> usize {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        log.received.iter().filter(|r| r.path == path).count()
    }

    /// Waits until `path` has had at least `count` requests (true) or `limit` has passed.
    pub async fn wait_for(&self, path: &str, count: usize, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if self.count(path) >= count {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The behaviour `/catalog` takes for a body of ForgeRun's work kind `kind`.
fn catalog(kind: &str) -> &'static str {
    match kind {
        "WEBHOOK_TIMEOUT" => "stall",
        "WEBHOOK_5XX" => "flaky",
        "WEBHOOK_RETRIES_EXHAUSTED" => "down",
        "WEBHOOK_SLOW_RECEIVER" => "slow",
        _ => "ok",
    }
}

async fn answer(
    State(log): State<Arc<Mutex<Log>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let kind = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["data"]["work_kind"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let seen = {
        let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
        log.received.push(Received {
            path: path.clone(),
            headers,
            body,
            at: Instant::now(),
            wall: std::time::SystemTime::now(),
        });
        let seen = log.seen.entry((path.clone(), id)).or_default();
        *seen += 1;
        *seen
    };
    let behaviour = match path.rsplit('/').next().unwrap_or_default() {
        "catalog" => catalog(&kind),
        other => other,
    };
    match behaviour {
        "flaky" if seen <= 2 => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        "busy" if seen == 1 => {
            (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "1")]).into_response()
        }
        "gone" => StatusCode::GONE.into_response(),
        "down" => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        "stall" => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::OK.into_response()
        }
        "redirect" => (StatusCode::FOUND, [("location", "/ok")]).into_response(),
        "slow" => {
            tokio::time::sleep(Duration::from_millis(300)).await;
            StatusCode::OK.into_response()
        }
        _ => StatusCode::OK.into_response(),
    }
}
