//! The queue's and the worker's settings (`QUEUE_URL`, `WORKER_CONCURRENCY`,
//! `WORKER_LEASE_SECS`), as an application loads them: [`QueueConfig`] for
//! [`Queue::from_config`], [`WorkerConfig`] for the worker's builder, and [`SETTINGS`], the
//! variables that fill them.

use std::time::Duration;

use core_db::settings::{Invalid, Kind, Setting, redact_url};
use serde::{Deserialize, Serialize};

use crate::{Error, Queue, Result};

/// The queue settings, taken by [`Queue::from_config`].
///
/// `url` is `memory://` (the in-process queue) or `redis://…` / `rediss://…` (the Redis queue
/// shared by every process).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct QueueConfig {
    /// The driver's URL.
    pub url: String,
}

impl Default for QueueConfig {
    /// The in-process queue, `memory://`.
    fn default() -> Self {
        Self {
            url: "memory://".to_owned(),
        }
    }
}

impl std::fmt::Debug for QueueConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueConfig")
            .field("url", &redact_url(&self.url))
            .finish()
    }
}

/// The queue driver a URL selects.
fn scheme_of(url: &str) -> Option<crate::QueueDriver> {
    if url.is_empty() || url.starts_with("memory:") {
        Some(crate::QueueDriver::Memory)
    } else if url.starts_with("redis://") || url.starts_with("rediss://") {
        Some(crate::QueueDriver::Redis)
    } else {
        None
    }
}

impl QueueConfig {
    /// Checks the URL without connecting.
    ///
    /// # Errors
    /// [`Invalid`] naming `queue.url`.
    pub fn check(&self) -> std::result::Result<(), Invalid> {
        match scheme_of(&self.url) {
            Some(_) => Ok(()),
            None => Err(Invalid::new(
                "queue.url",
                "a queue URL is memory://, redis://… or rediss://…",
            )),
        }
    }
}

impl Queue {
    /// Picks the driver from a URL: `memory://` (or an empty string) for the in-process queue,
    /// `redis://` / `rediss://` for Redis, its keys under `prefix`.
    ///
    /// # Errors
    /// An unknown scheme (its password never shown), or Redis unreachable.
    pub async fn from_url(url: &str, prefix: impl Into<String>) -> Result<Self> {
        match scheme_of(url) {
            Some(crate::QueueDriver::Memory) => Ok(Self::memory()),
            Some(crate::QueueDriver::Redis) => Self::redis(url, prefix).await,
            None => Err(Error::Config(format!(
                "unsupported queue URL {:?}: expected memory:// or redis://",
                redact_url(url)
            ))),
        }
    }

    /// Builds the queue `config` names, its Redis keys under `prefix` (the application's name).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> core_jobs::Result<()> {
    /// use core_jobs::{Queue, QueueConfig, QueueDriver};
    ///
    /// let queue = Queue::from_config(&QueueConfig::default(), "app").await?;
    /// assert_eq!(queue.driver_kind(), QueueDriver::Memory);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`Queue::from_url`].
    pub async fn from_config(config: &QueueConfig, prefix: impl Into<String>) -> Result<Self> {
        Self::from_url(&config.url, prefix).await
    }
}

/// The worker settings an application loads; the worker's builder takes them with
/// `.config(&worker_config)`, and its individual setters still override.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkerConfig {
    /// How many jobs run at once.
    pub concurrency: usize,
    /// How long a claimed job stays leased without being extended; running jobs' leases are
    /// extended every third of it, and a job whose worker died is recovered once it has passed.
    pub lease: Duration,
}

impl Default for WorkerConfig {
    /// 16 jobs at once, 30 s leases.
    fn default() -> Self {
        Self {
            concurrency: 16,
            lease: Duration::from_secs(30),
        }
    }
}

/// The settings of core-jobs' parts: the queue and the worker.
pub const SETTINGS: &[Setting] = &[
    Setting::new(
        "QUEUE_URL",
        "queue.url",
        Kind::Text,
        "memory://, redis://… or rediss://…",
        "Queue driver: `memory://`, `redis://…`, `rediss://…`.",
    )
    .or("REDIS_URL"),
    Setting::new(
        "WORKER_CONCURRENCY",
        "worker.concurrency",
        Kind::Int { min: 1, max: 4096 },
        "a whole number 1–4096",
        "How many jobs a worker runs at once.",
    ),
    Setting::new(
        "WORKER_LEASE_SECS",
        "worker.lease",
        Kind::Secs,
        "a whole number of seconds, at least 1",
        "How long a claimed job stays leased without being extended; a job whose worker died runs again after it.",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_urls_are_checked_without_connecting() {
        for url in [
            "memory://",
            "redis://127.0.0.1:6379",
            "rediss://:pw@h:6380/0",
        ] {
            let config = QueueConfig {
                url: url.to_owned(),
            };
            assert_eq!(config.check(), Ok(()), "{url}");
        }
        let config = QueueConfig {
            url: "amqp://jobs:hunter2@mq/vhost".to_owned(),
        };
        assert_eq!(config.check().unwrap_err().key, "queue.url");
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
