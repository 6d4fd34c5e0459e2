//! The outbox relay: moves committed `job_outbox` rows to the queue, woken by PostgreSQL
//! notifications and in-process pushes, with a periodic sweep as the safety net.

use std::time::Duration;

use core_db::Database;
use core_db::shutdown::Shutdown;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{CHANNEL, JobBuffer};
use crate::shutdown::Background;

impl JobBuffer {
    /// Starts the relay in the background: it dispatches committed rows right after commit
    /// (PostgreSQL notifications, in-process wake-ups) and sweeps the outbox periodically.
    pub fn spawn_relay(&self) -> RelayHandle {
        self.start_relay(None)
    }

    /// As [`spawn_relay`](Self::spawn_relay), and the relay also stops when `shutdown` is
    /// cancelled (after the pass it is in); [`Shutdown::wait`] waits for it.
    pub fn spawn_relay_with(&self, shutdown: &Shutdown) -> RelayHandle {
        self.start_relay(Some(shutdown))
    }

    fn start_relay(&self, shutdown: Option<&Shutdown>) -> RelayHandle {
        let buffer = self.clone();
        RelayHandle {
            task: Background::spawn(shutdown, |stop| buffer.relay_loop(stop)),
        }
    }

    async fn relay_loop(self, stop: CancellationToken) {
        let (notified_tx, mut notified_rx) = watch::channel(());
        let listener = match &self.inner.db {
            Database::Postgres(pool) => {
                let pool = pool.clone();
                Some(tokio::spawn(async move { listen(pool, notified_tx).await }))
            }
            Database::Sqlite(_) => None,
        };
        let mut hot_until: Option<Instant> = None;
        let mut next_sweep = Instant::now();
        loop {
            let now = Instant::now();
            let hot = hot_until.is_some_and(|h| h > now);
            if hot || now >= next_sweep {
                if now >= next_sweep {
                    next_sweep = now + self.inner.sweep_every;
                }
                loop {
                    match self.relay_once().await {
                        Ok(n) if n as i64 >= self.inner.batch => continue,
                        Ok(_) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, "job outbox relay failed; retrying");
                            break;
                        }
                    }
                }
            }
            let wait = if hot_until.is_some_and(|h| h > Instant::now()) {
                Duration::from_millis(10)
            } else {
                hot_until = None;
                next_sweep.saturating_duration_since(Instant::now())
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.inner.nudge.notified() => {
                    // In-process push or commit: poll briefly until the rows are visible.
                    hot_until = Some(Instant::now() + Duration::from_secs(2));
                }
                r = notified_rx.changed() => {
                    if r.is_ok() {
                        // A committed PostgreSQL transaction pushed rows.
                        hot_until = Some(hot_until.unwrap_or_else(Instant::now).max(Instant::now() + Duration::from_millis(50)));
                    }
                }
                () = stop.cancelled() => break,
            }
        }
        if let Some(l) = listener {
            l.abort();
        }
    }
}

/// Listens for outbox notifications and forwards them; reconnects when the connection drops.
async fn listen(pool: sqlx::PgPool, notified: watch::Sender<()>) {
    loop {
        match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(mut l) => {
                if let Err(e) = l.listen(CHANNEL).await {
                    tracing::warn!(error = %e, "job outbox LISTEN failed");
                } else {
                    // Anything committed while we were not listening is found by this wake-up.
                    let _ = notified.send(());
                    loop {
                        match l.recv().await {
                            Ok(_) => {
                                let _ = notified.send(());
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "job outbox listener lost its connection");
                                break;
                            }
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "job outbox listener cannot connect"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The running relay, from [`JobBuffer::spawn_relay`]. Dropping it stops the relay.
#[derive(Debug)]
pub struct RelayHandle {
    task: Background,
}

impl RelayHandle {
    /// Stops the relay and waits for it.
    pub async fn shutdown(self) {
        self.task.stop_and_wait().await;
    }
}
