//! Helpers shared by the cache test files (`mod cache_support;`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A TCP proxy to Redis that holds every reply on ordinary connections for `delay`, but passes
/// pub/sub connections (those that send `SUBSCRIBE`) through at once. Through it, a cache's L2
/// answers arrive late while invalidations arrive on time: the race a promotion or a
/// write-through must lose.
pub struct SlowRepliesProxy {
    port: u16,
    delay_ms: Arc<AtomicU64>,
    accept: tokio::task::JoinHandle<()>,
}

impl SlowRepliesProxy {
    pub async fn start(redis_url: &str, delay: Duration) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let upstream = redis_url
            .trim_start_matches("redis://")
            .split('/')
            .next()
            .unwrap()
            .to_owned();
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
