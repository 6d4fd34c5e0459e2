//! ForgeRun's event fan-out on PostgreSQL and Redis: webhooks delivered to a local receiver,
//! and live event streams.
//!
//! `cargo bench -p app --bench fanout` (needs PostgreSQL at `DATABASE_URL` and Redis at
//! `REDIS_URL`). `FORGERUN_BENCH_SCALE` scales the counts (default 1.0).
//!
//! 1. Streams: 1,000 `GET /v1/jobs/{id}/events` streams open at once on one server, on jobs
//!    scheduled for later; the process's memory before and after opening them (resident set
//!    size, the client side of each connection included) gives the memory per stream; then
//!    every job is canceled and each stream must receive its `job.canceled` and close, without
//!    an error.
//! 2. Webhooks: one webhook subscribed to every event type, on a receiver on 127.0.0.1.
//!    Throughput: 2,000 `SUCCESS_FAST` jobs submitted at once through HTTP make 10,000 events;
//!    events delivered per second, first submission to last delivery. Latency: then 100 jobs a
//!    second for 5 s (2,500 events, under the throughput), from each transition (the event's
//!    time) to its delivery, p50/p99.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use common::{Conn, percentile};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

mod common;

const CONNECTIONS: usize = 16;

/// This process's resident set size in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    common::main(run());
}

async fn run() {
    let extra = [
        ("WEBHOOK_ALLOW_NETWORKS", "127.0.0.0/8"),
        ("WEBHOOK_CONCURRENCY", "64"),
        ("DATABASE_MAX_CONNECTIONS", "40"),
        ("WORKER_CONCURRENCY", "64"),
    ];
    let Some(bench) = common::App::start("fanout bench", &extra).await else {
        return;
    };
    streams(&bench).await;
    webhooks(&bench).await;
    bench.stop().await;
}

async fn webhooks(bench: &common::App) {
    let receiver = test_support::Receiver::start().await;
    let mut conn = Conn::open(bench.addr).await;
    let body = serde_json::json!({"url": receiver.url("/ok"), "events": ["*"]}).to_string();
    let (status, reply) = conn
        .call("POST", "/v1/webhooks", &bench.auth, body.as_bytes())
        .await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&reply));

    let jobs = common::scale(2_000, 50);
    let events = jobs * 5;
    println!(
        "Fan-out bench: {} cores, one webhook for every event type",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let started = Instant::now();
    common::submit_jobs(bench.addr, &bench.auth, jobs, CONNECTIONS).await;
    assert!(
        receiver
            .wait_for("/ok", events, Duration::from_secs(600))
            .await,
        "{} of {events} delivered after 10 min",
        receiver.count("/ok")
    );
    let received = receiver.requests("/ok");
    let last = received.iter().map(|r| r.at).max().unwrap();
    let ids: std::collections::HashSet<String> =
        received.iter().map(|r| r.header("webhook-id")).collect();
    println!(
        "burst: {jobs} jobs → {events} events delivered in {:.2} s = {:.0} events/s; {} distinct webhook-ids (each event once)",
        (last - started).as_secs_f64(),
        events as f64 / (last - started).as_secs_f64(),
        ids.len()
    );

    // Paced: 100 jobs a second for 5 s.
    let paced = common::scale(500, 50);
    let before = receiver.count("/ok");
    let mut conn = Conn::open(bench.addr).await;
    let tick = Duration::from_millis(10);
    let start = tokio::time::Instant::now();
    for n in 0..paced {
        tokio::time::sleep_until(start + tick * u32::try_from(n).unwrap()).await;
        let (status, body) = conn
            .call(
                "POST",
                "/v1/jobs",
                &bench.auth,
                br#"{"work_kind":"SUCCESS_FAST"}"#,
            )
            .await;
        assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
    }
    let expected = before + paced * 5;
    assert!(
        receiver
            .wait_for("/ok", expected, Duration::from_secs(600))
            .await,
        "paced deliveries missing"
    );
    let mut latencies: Vec<u64> = receiver.all()[before..]
        .iter()
        .map(|r| {
            let body = r.json();
            let at =
                chrono::DateTime::parse_from_rfc3339(body["timestamp"].as_str().unwrap()).unwrap();
            let at = SystemTime::UNIX_EPOCH
                + Duration::from_micros(u64::try_from(at.timestamp_micros()).unwrap());
            r.wall.duration_since(at).unwrap_or_default().as_micros() as u64
        })
        .collect();
    latencies.sort_unstable();
    println!(
        "paced: 100 jobs/s for {:.0} s ({} events): transition → delivered webhook p50 {:.1} ms, p99 {:.1} ms",
        paced as f64 / 100.0,
        paced * 5,
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
    );
}

/// Opens a stream; returns the reader once the response head (200, `text/event-stream`) is in.
async fn open_stream(addr: SocketAddr, auth: &str, job: &str) -> BufReader<TcpStream> {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "GET /v1/jobs/{job}/events HTTP/1.1\r\nhost: {addr}\r\nauthorization: {auth}\r\naccept: text/event-stream\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).await.expect("status line");
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    let mut event_stream = false;
    loop {
        line.clear();
        reader.read_line(&mut line).await.expect("header");
        if line.trim_end().is_empty() {
            break;
        }
        event_stream |= line
            .to_ascii_lowercase()
            .starts_with("content-type: text/event-stream");
    }
    assert!(event_stream, "an event stream");
    reader
}

/// Reads `reader` until the `event:` named `name` and the end of the stream; the event names
/// seen in order.
async fn read_until_closed(mut reader: BufReader<TcpStream>) -> Vec<String> {
    let mut names = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line).await {
            Ok(0) | Err(_) => return names,
            Ok(_) => {}
        }
        if let Some(name) = line.trim_end().strip_prefix("event: ") {
            names.push(name.to_owned());
        }
        // The chunked encoding's last chunk: the stream is over.
        if line == "0\r\n" {
            return names;
        }
    }
}

async fn streams(bench: &common::App) {
    let count = common::scale(1_000, 100).min(1_000);
    let jobs_count = count / 10;
    let mut conn = Conn::open(bench.addr).await;
    let later = (chrono::Utc::now() + chrono::Duration::hours(1))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let mut jobs = Vec::new();
    for _ in 0..jobs_count {
        let body =
            serde_json::json!({"work_kind": "SUCCESS_FAST", "execution_at": later}).to_string();
        let (status, reply) = conn
            .call("POST", "/v1/jobs", &bench.auth, body.as_bytes())
            .await;
        assert_eq!(status, 202, "{}", String::from_utf8_lossy(&reply));
        let reply: serde_json::Value = serde_json::from_slice(&reply).unwrap();
        jobs.push(reply["data"]["job_id"].as_str().unwrap().to_owned());
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib();
    let opened = Instant::now();
    let mut readers = Vec::new();
    for i in 0..count {
        readers.push(open_stream(bench.addr, &bench.auth, &jobs[i % jobs.len()]).await);
    }
    let open_took = opened.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib();
    let per_stream = (after.saturating_sub(before)) as f64 / count as f64;
    let tasks: Vec<_> = readers
        .into_iter()
        .map(|reader| tokio::spawn(read_until_closed(reader)))
        .collect();
    let canceled = Instant::now();
    for job in &jobs {
        let (status, reply) = conn
            .call("POST", &format!("/v1/jobs/{job}/cancel"), &bench.auth, b"")
            .await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
    }
    let mut complete = 0;
    for task in tasks {
        let names = tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("every stream closes")
            .unwrap();
        if names == ["job.created", "job.queued", "job.canceled"] {
            complete += 1;
        } else {
            eprintln!("unexpected stream: {names:?}");
        }
    }
    println!(
        "live streams: {count} open at once on {jobs_count} jobs (opened in {:.2} s); process memory (the server and the client side of every stream) {:.1} MiB → {:.1} MiB = {per_stream:.1} KiB per stream; {complete}/{count} received every event and closed after job.canceled ({:.2} s after the cancels began)  [{}]",
        open_took.as_secs_f64(),
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        canceled.elapsed().as_secs_f64(),
        if complete == count { "PASS" } else { "FAIL" }
    );
}
