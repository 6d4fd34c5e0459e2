//! The one retry helper for the worker's writes to the queue (ack, finish, retry): a write
//! that fails is tried again after a pause that doubles each time; a write that keeps failing
//! is given up, and its job comes back when its lease expires.

use std::future::Future;
use std::time::Duration;

use crate::error::Result;

/// How a write is retried.
#[derive(Debug, Clone, Copy)]
pub(super) struct Backoff {
    /// How many times the write is tried in all.
    pub(super) attempts: u32,
    /// The pause after the first failure; each later pause doubles.
    pub(super) first_pause: Duration,
}

impl Backoff {
    /// Six tries, 50 ms then doubling (about 1.5 s in all): finishing and retrying a job.
    pub(super) const WRITE: Self = Self {
        attempts: 6,
        first_pause: Duration::from_millis(50),
    };

    /// Six tries, 20 ms then doubling: a batch of acks.
    pub(super) const ACK: Self = Self {
        attempts: 6,
        first_pause: Duration::from_millis(20),
    };
}

/// Runs `op` until it succeeds or `backoff.attempts` tries have failed; logs each failure
/// that will be tried again (`what` names the write). Returns the last error when every try
/// failed.
pub(super) async fn retry<T, F, Fut>(backoff: Backoff, what: &str, mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut pause = backoff.first_pause;
    let mut tries = 1;
    loop {
        match op().await {
            Ok(value) => return Ok(value),
            Err(err) if tries < backoff.attempts.max(1) => {
                tracing::warn!(error = %err, "{what} failed; trying again");
                tokio::time::sleep(pause).await;
                pause *= 2;
                tries += 1;
            }
            Err(err) => return Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::error::Error;

    const FAST: Backoff = Backoff {
        attempts: 4,
        first_pause: Duration::from_millis(1),
    };

    #[tokio::test]
    async fn a_write_that_fails_then_succeeds_is_retried_until_it_does() {
        let calls = AtomicU32::new(0);
        let value = retry(FAST, "write", || async {
            if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                Err(Error::Config("down".into()))
            } else {
                Ok(7)
            }
        })
        .await
        .unwrap();
        assert_eq!(value, 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_write_that_keeps_failing_is_tried_attempts_times() {
        let calls = AtomicU32::new(0);
        let result: Result<()> = retry(FAST, "write", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(Error::Config("down".into()))
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), FAST.attempts);
    }
}
