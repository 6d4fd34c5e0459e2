//! Helpers shared by the cache test files (`mod cache_support;`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use core_db::Cache;
use redis::aio::ConnectionManager;

/// The `host:port` of a `redis://host:port/db` URL: where a proxy in front of Redis connects.
pub fn redis_addr(redis_url: &str) -> String {
    redis_url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap()
        .to_owned()
}

/// Calls `remember("report", ...)` 100 times at once, alternately on `a` and on `b`, with a
/// computation that takes 200 ms; checks that every call returns the value and returns how
/// many times it was computed.
pub async fn remember_on_both(a: &Cache, b: &Cache) -> usize {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..100 {
        let cache = if i % 2 == 0 { a.clone() } else { b.clone() };
        let calls = Arc::clone(&calls);
        tasks.push(tokio::spawn(async move {
            cache
                .remember("report", 60, || async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Ok(vec![1, 2, 3])
                })
                .await
                .unwrap()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), vec![1, 2, 3]);
    }
    calls.load(Ordering::SeqCst)
}

/// The Redis client id of `conn` (a cache's connection, from `Cache::redis_connection`).
pub async fn client_id(conn: &mut ConnectionManager) -> i64 {
    redis::cmd("CLIENT")
        .arg("ID")
        .query_async(conn)
        .await
        .unwrap()
}

/// Kills the Redis client `id` through `admin` (a connection of the test's own), and checks
/// that there was one.
pub async fn kill_client(admin: &mut redis::aio::MultiplexedConnection, id: i64) {
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(id)
        .query_async(admin)
        .await
        .unwrap();
    assert_eq!(killed, 1, "client {id} was connected");
}

/// Repeats `call` every 10 ms until it succeeds and returns its value; fails if it still
/// errs after `within`.
pub async fn until_ok<T>(within: Duration, mut call: impl AsyncFnMut() -> core_db::Result<T>) -> T {
    let started = Instant::now();
    loop {
        match call().await {
            Ok(value) => return value,
            Err(e) => assert!(
                started.elapsed() < within,
                "not recovered after {within:?}: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A TCP proxy to Redis that holds every reply on ordinary connections for `delay`, but passes
/// pub/sub connections (those that send `SUBSCRIBE`) through at once. Through it, a cache's L2
/// answers arrive late while invalidations arrive on time: the race a promotion or a
/// write-through must lose. (Not every test file that includes this module uses it.)
#[allow(dead_code)]
pub struct SlowRepliesProxy {
    port: u16,
    delay_ms: Arc<AtomicU64>,
    accept: tokio::task::JoinHandle<()>,
}

#[allow(dead_code)]
impl SlowRepliesProxy {
    pub async fn start(redis_url: &str, delay: Duration) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let upstream = redis_addr(redis_url);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let delay_ms = Arc::new(AtomicU64::new(delay.as_millis() as u64));
        let delays = Arc::clone(&delay_ms);
        let accept = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let pubsub = Arc::new(AtomicBool::new(false));
                let delay_ms = Arc::clone(&delays);
                let seen = Arc::clone(&pubsub);
                tokio::spawn(async move {
                    let mut buf = vec![0_u8; 64 * 1024];
                    loop {
                        let n = match client_read.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if buf[..n]
                            .windows(9)
                            .any(|w| w.eq_ignore_ascii_case(b"SUBSCRIBE"))
                        {
                            seen.store(true, Ordering::SeqCst);
                        }
                        if server_write.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
                // Replies keep their order: each chunk is written once it is due.
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
                tokio::spawn(async move {
                    let mut buf = vec![0_u8; 64 * 1024];
                    loop {
                        let n = match server_read.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        let due = if pubsub.load(Ordering::SeqCst) {
                            Instant::now()
                        } else {
                            Instant::now() + Duration::from_millis(delay_ms.load(Ordering::SeqCst))
                        };
                        if tx.send((due, buf[..n].to_vec())).is_err() {
                            return;
                        }
                    }
                });
                tokio::spawn(async move {
                    while let Some((due, chunk)) = rx.recv().await {
                        tokio::time::sleep_until(due.into()).await;
                        if client_write.write_all(&chunk).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self {
            port,
            delay_ms,
            accept,
        }
    }

    /// Holds replies for `delay` from now on.
    #[allow(dead_code)]
    pub fn set_delay(&self, delay: Duration) {
        self.delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for SlowRepliesProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}
