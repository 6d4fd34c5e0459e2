//! What the app's benchmarks share: a keep-alive HTTP/1.1 client, the server, percentiles.
#![allow(dead_code)]

use std::net::SocketAddr;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// The allocator the `app` binary uses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `n` scaled by `FORGERUN_BENCH_SCALE` (default 1.0), at least `min`.
pub fn scale(n: usize, min: usize) -> usize {
    let s: f64 = std::env::var("FORGERUN_BENCH_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    ((n as f64 * s) as usize).max(min)
}

/// Runs `bench` on a multi-threaded runtime (one thread per core).
pub fn main<F: std::future::Future<Output = ()>>(bench: F) {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(bench);
}

/// One keep-alive HTTP/1.1 connection: writes a request, reads the response by its
/// `content-length`.
pub struct Conn {
    reader: BufReader<TcpStream>,
    addr: SocketAddr,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).unwrap();
        Self {
            reader: BufReader::new(stream),
            addr,
        }
    }

    pub async fn call(
        &mut self,
        method: &str,
        path: &str,
        auth: &str,
        body: &[u8],
    ) -> (u16, Vec<u8>) {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nhost: {}\r\nauthorization: {auth}\r\n",
            self.addr
        );
        if !body.is_empty() {
            head.push_str(&format!(
                "content-type: application/json\r\ncontent-length: {}\r\n",
                body.len()
            ));
        }
        head.push_str("\r\n");
        let stream = self.reader.get_mut();
        stream.write_all(head.as_bytes()).await.expect("write");
        stream.write_all(body).await.expect("write");
        let mut line = String::new();
        self.reader.read_line(&mut line).await.expect("status line");
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status");
        let mut length = 0usize;
        loop {
            line.clear();
            self.reader.read_line(&mut line).await.expect("header");
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').expect("a header");
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().expect("length");
            }
            assert!(
                !name.eq_ignore_ascii_case("transfer-encoding"),
                "chunked response"
            );
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).await.expect("body");
        (status, body)
    }
}

pub fn percentile(sorted: &[u64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

pub async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// The app served on 127.0.0.1 on a fresh PostgreSQL database and Redis prefix, with its relay
/// and workers, and a client's key.
pub struct App {
    /// The app's context.
    pub ctx: app::AppContext,
    /// Where it serves.
    pub addr: SocketAddr,
    /// `Bearer frk_…` of a client made for the run.
    pub auth: String,
    shutdown: core_jobs::Shutdown,
    background: app::jobs::Background,
    keep: (
        test_support::TestPostgres,
        test_support::TestRedis,
        tempfile::TempDir,
    ),
}

impl App {
    /// Starts the app for benchmark `name` with the tiered cache, the Redis queue, no work time
    /// and no limits, plus `extra` settings; `None` when a service is missing (and not
    /// required).
    pub async fn start(name: &str, extra: &[(&str, &str)]) -> Option<Self> {
        let pg = test_support::postgres(name).await?;
        let redis = test_support::redis(name).await?;
        let dir = tempfile::tempdir().unwrap();
        let storage = dir.path().join("storage").display().to_string();
        let data = dir.path().join("data").display().to_string();
        let cache_url = format!("tiered+{}", redis.url);
        let mut vars: std::collections::HashMap<&str, &str> = [
            ("DATABASE_URL", pg.url.as_str()),
            ("CACHE_URL", cache_url.as_str()),
            ("QUEUE_URL", redis.url.as_str()),
            ("APP_NAME", redis.prefix.as_str()),
            ("STORAGE_ROOT", storage.as_str()),
            ("DATA_DIR", data.as_str()),
            ("WORK_TIME_SCALE", "0"),
            ("RATE_LIMIT_PER_MINUTE", "10000000"),
            ("MAX_ACTIVE_JOBS_PER_CLIENT", "100000000"),
            ("MAX_QUEUE_DEPTH", "100000000"),
            ("LOG_LEVEL", "warn"),
        ]
        .into_iter()
        .collect();
        vars.extend(extra.iter().copied());
        let settings = app::Settings::from_lookup(|name| vars.get(name).map(|v| (*v).to_owned()))
            .expect("settings");
        let ctx = app::AppContext::connect(settings).await.expect("context");
        let shutdown = core_jobs::Shutdown::new();
        let background = app::jobs::Background::start(&ctx, &shutdown, true)
            .await
            .expect("relay and workers");
        let addr = serve(app::router(ctx.clone())).await;
        let mut conn = Conn::open(addr).await;
        let (status, body) = conn
            .call("POST", "/v1/clients", "none", br#"{"name":"bench"}"#)
            .await;
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
        let created: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let auth = format!("Bearer {}", created["data"]["api_key"].as_str().unwrap());
        Some(Self {
            ctx,
            addr,
            auth,
            shutdown,
            background,
            keep: (pg, redis, dir),
        })
    }

    /// Stops the workers and drops the database and the keys.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.shutdown.wait().await;
        drop(self.background);
        self.ctx.db.close().await;
        drop(self.keep);
    }
}

/// Submits `jobs` `SUCCESS_FAST` jobs to `addr` over `connections` keep-alive connections at
/// once; each submission's latency in microseconds, sorted.
pub async fn submit_jobs(
    addr: SocketAddr,
    auth: &str,
    jobs: usize,
    connections: usize,
) -> Vec<u64> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (next, auth) = (next.clone(), auth.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr).await;
            let mut latencies = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < jobs as u64 {
                let sent = std::time::Instant::now();
                let (status, body) = conn
                    .call(
                        "POST",
                        "/v1/jobs",
                        &auth,
                        br#"{"work_kind":"SUCCESS_FAST"}"#,
                    )
                    .await;
                latencies.push(sent.elapsed().as_micros() as u64);
                assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    latencies.sort_unstable();
    latencies
}
