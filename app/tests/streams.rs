//! `GET /v1/jobs/{id}/events`, the live event stream, read over real connections: past events
//! then live ones, closed after the final one, resumed with `Last-Event-ID` without a gap or a
//! duplicate; and across processes: the stream served by one `app serve` while an `app worker`
//! process runs the job, resumed on a second `app serve`.

#[macro_use]
mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::process::{Services, serve, terminate, worker};
use common::{Drivers, get, register, start, stop, test_app};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const LIMIT: Duration = Duration::from_secs(20);

/// One server-sent event.
#[derive(Debug, Clone, PartialEq)]
struct Sse {
    id: String,
    event: String,
    data: Value,
}

/// An open event stream.
struct Stream {
    reader: BufReader<TcpStream>,
}

impl Stream {
    /// Opens `/v1/jobs/{job}/events`, resuming after `last` when given; panics unless the
    /// answer is 200 `text/event-stream`.
    async fn open(addr: SocketAddr, auth: &str, job: &str, last: Option<&str>) -> Self {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let mut head = format!(
            "GET /v1/jobs/{job}/events HTTP/1.1\r\nhost: {addr}\r\nauthorization: {auth}\r\n\
             accept: text/event-stream\r\nconnection: close\r\n"
        );
        if let Some(last) = last {
            head.push_str(&format!("last-event-id: {last}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).await.unwrap();
        assert!(line.starts_with("HTTP/1.1 200"), "{line}");
        let mut content_type = String::new();
        loop {
            line.clear();
            reader.read_line(&mut line).await.unwrap();
            if line.trim_end().is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-type")
            {
                content_type = value.trim().to_owned();
            }
        }
        assert_eq!(content_type, "text/event-stream");
        Self { reader }
    }

    /// The next event, or `None` when the stream ended; panics after `LIMIT` without either.
    async fn next(&mut self) -> Option<Sse> {
        tokio::time::timeout(LIMIT, self.read_event())
            .await
            .expect("an event or the end of the stream in time")
    }

    async fn read_event(&mut self) -> Option<Sse> {
        let (mut id, mut event, mut data) = (None, None, None);
        let mut line = String::new();
        loop {
            line.clear();
            if self.reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                return None;
            }
            // The chunked body's last chunk.
            if line == "0\r\n" {
                return None;
            }
            let text = line.trim_end_matches(['\r', '\n']);
            if text.is_empty() {
                if let (Some(id), Some(event), Some(data)) = (id.take(), event.take(), data.take())
                {
                    return Some(Sse { id, event, data });
                }
                continue;
            }
            if let Some(value) = text.strip_prefix("id: ") {
                id = Some(value.to_owned());
            } else if let Some(value) = text.strip_prefix("event: ") {
                event = Some(value.to_owned());
            } else if let Some(value) = text.strip_prefix("data: ") {
                data = Some(serde_json::from_str(value).expect("JSON data"));
            }
        }
    }

    /// Every event until the stream ends.
    async fn rest(&mut self) -> Vec<Sse> {
        let mut all = Vec::new();
        while let Some(event) = self.next().await {
            all.push(event);
        }
        all
    }
}

fn names(events: &[Sse]) -> Vec<&str> {
    events.iter().map(|e| e.event.as_str()).collect()
}

/// Submits a `SUCCESS_FAST` job through `addr` to run in `seconds` (whole seconds); its id.
async fn scheduled(addr: SocketAddr, auth: &str, seconds: i64) -> String {
    let body = format!(
        r#"{{"work_kind": "SUCCESS_FAST", "execution_at": "{}"}}"#,
        soon(seconds)
    );
    post(addr, "/v1/jobs", auth, &body).await["data"]["job_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A whole second a little ahead, for `execution_at`.
fn soon(seconds: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(seconds))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

async fn serve_router(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

async fn post(addr: SocketAddr, path: &str, auth: &str, body: &str) -> Value {
    let headers = [
        ("content-type", "application/json"),
        ("authorization", auth),
    ];
    let reply = test_support::http_request(addr, "POST", path, &headers, body.as_bytes())
        .await
        .expect("the server answers");
    assert!(
        (200..300).contains(&reply.status),
        "{path}: {} {}",
        reply.status,
        String::from_utf8_lossy(&reply.body)
    );
    reply.json()
}

on_both!(a_stream_sends_the_past_then_live_events_and_closes);

async fn a_stream_sends_the_past_then_live_events_and_closes(drivers: Drivers, test: &str) {
    let Some(t) = test_app(drivers, test, &[("WORK_TIME_SCALE", "0")]).await else {
        return;
    };
    let (shutdown, background) = start(&t).await;
    let addr = serve_router(t.router.clone()).await;
    let c = register(&t.router).await;
    let auth = format!("Bearer {}", c.key);
    let job = scheduled(addr, &auth, 2).await;

    // The past: created and queued, at once.
    let mut stream = Stream::open(addr, &auth, &job, None).await;
    let created = stream.next().await.unwrap();
    let queued = stream.next().await.unwrap();
    assert_eq!(
        names(&[created.clone(), queued.clone()]),
        ["job.created", "job.queued"]
    );
    assert_eq!(created.data["event_name"], "job.created");
    assert_eq!(queued.data["next_state"], "QUEUED");
    // A second reader resumes after `created`, then drops: it had exactly `queued`.
    let mut resumed = Stream::open(addr, &auth, &job, Some(&created.id)).await;
    assert_eq!(resumed.next().await.unwrap(), queued);
    drop(resumed);

    // Live: the worker's moves arrive as they happen, and the stream ends after the final one.
    let live = stream.rest().await;
    assert_eq!(
        names(&live),
        ["job.assigned", "job.running", "job.succeeded"]
    );

    // The report has the same events under the same ids, in the same order.
    let report = get(&t.router, &c, &format!("/v1/jobs/{job}/report")).await;
    let ids: Vec<&str> = report.json["data"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    let streamed: Vec<&str> = [&created, &queued]
        .into_iter()
        .chain(&live)
        .map(|e| e.id.as_str())
        .collect();
    assert_eq!(ids, streamed);

    // A final job's stream: every event, then the end.
    let mut again = Stream::open(addr, &auth, &job, None).await;
    assert_eq!(again.rest().await.len(), 5);
    // Resuming after the final event: nothing, and the end.
    let last = &live[2].id;
    let mut after = Stream::open(addr, &auth, &job, Some(last)).await;
    assert!(after.rest().await.is_empty());

    // Another client's job, or none: 404 like every job route.
    let other = register(&t.router).await;
    let reply = get(&t.router, &other, &format!("/v1/jobs/{job}/events")).await;
    assert_eq!(reply.status, axum::http::StatusCode::NOT_FOUND);
    assert_eq!(reply.json["error_code"], "RFA_JOB_NOT_FOUND");
    stop(shutdown, background).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_on_one_server_follows_a_worker_in_another_process() {
    let test = "a_stream_on_one_server_follows_a_worker_in_another_process";
    let Some(services) = Services::start(test).await else {
        return;
    };
    let env = services.env(&[
        ("WORK_TIME_SCALE", "0"),
        ("API_KEY_SECRET", "stream-test-secret-0123456789abcdef0123"),
        ("SHUTDOWN_GRACE_SECS", "1"),
    ]);
    let (mut server_a, _la, a) = serve(services.dir.path(), &env);
    let (mut server_b, _lb, b) = serve(services.dir.path(), &env);
    let (mut runner, _lw) = worker(services.dir.path(), &env);

    let created = post(a, "/v1/clients", "none", r#"{"name": "streams"}"#).await;
    let auth = format!("Bearer {}", created["data"]["api_key"].as_str().unwrap());
    let job = scheduled(b, &auth, 3).await;

    // On server A: the past, then the connection drops.
    let mut on_a = Stream::open(a, &auth, &job, None).await;
    let first = on_a.next().await.unwrap();
    let second = on_a.next().await.unwrap();
    assert_eq!(
        names(&[first, second.clone()]),
        ["job.created", "job.queued"]
    );
    drop(on_a);

    // On server B, resuming: exactly what the worker process did afterwards, live.
    let mut on_b = Stream::open(b, &auth, &job, Some(&second.id)).await;
    let live = on_b.rest().await;
    assert_eq!(
        names(&live),
        ["job.assigned", "job.running", "job.succeeded"]
    );
    assert!(live.iter().all(|e| e.id != second.id));

    // Many streams on one server, all following the same job on the worker process.
    let job = scheduled(a, &auth, 3).await;
    let mut readers = Vec::new();
    for _ in 0..50 {
        let (auth, job) = (auth.clone(), job.clone());
        readers.push(tokio::spawn(async move {
            Stream::open(b, &auth, &job, None).await.rest().await
        }));
    }
    for reader in readers {
        let events = reader.await.unwrap();
        assert_eq!(
            names(&events),
            [
                "job.created",
                "job.queued",
                "job.assigned",
                "job.running",
                "job.succeeded"
            ]
        );
    }
    for child in [&mut server_a, &mut server_b, &mut runner] {
        assert!(terminate(child).await.success());
    }
}
