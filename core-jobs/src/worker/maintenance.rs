//! Maintenance: the worker's loops beside claiming. Lease extension runs on a task of its own
//! (nothing else may delay it past the lease); promotion of delayed jobs, recovery of expired
//! leases and queue-depth sampling share one; failures kept in the queue are written to
//! `failed_jobs` by a third.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::run::Runtime;
use super::wait_or_stop;
use crate::context::LeaseState;
use crate::failed::FailureRecord;

impl Runtime {
    /// Extends the leases of running jobs every third of the lease, and nothing else.
    pub(super) async fn lease_loop(self: Arc<Self>, stop: CancellationToken) {
        let every = self.lease / 3;
        let mut next = Instant::now() + every;
        loop {
            let wait = next.saturating_duration_since(Instant::now());
            if wait_or_stop(&stop, wait).await {
                break;
            }
            next = Instant::now() + every;
            self.extend_leases().await;
        }
    }

    /// Writes failures kept in the queue to `failed_jobs`, every `pending_interval`.
    pub(super) async fn pending_loop(self: Arc<Self>, stop: CancellationToken) {
        loop {
            self.flush_pending().await;
            if wait_or_stop(&stop, self.pending_interval).await {
                break;
            }
        }
    }

    /// Promotes due delayed jobs, recovers expired leases and samples queue depths.
    pub(super) async fn maintenance_loop(self: Arc<Self>, stop: CancellationToken) {
        let now = Instant::now();
        let mut next_reap = now;
        let mut next_stats = now;
        loop {
            // Promote due delayed jobs; sleep until the next is due, 50 ms at most.
            let mut sleep = Duration::from_millis(50);
            for q in &self.queues {
                match self.driver.promote(q).await {
                    Ok(Some(next)) => sleep = sleep.min(next),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, queue = %q, "promoting delayed jobs failed")
                    }
                }
            }
            let now = Instant::now();
            if now >= next_reap {
                next_reap = now + Duration::from_secs(1);
                for q in &self.queues {
                    match self.driver.recover(q).await {
                        Ok(0) => {}
                        Ok(n) => {
                            tracing::warn!(queue = %q, jobs = n, "recovered jobs whose lease expired")
                        }
                        Err(e) => tracing::warn!(error = %e, queue = %q, "lease recovery failed"),
                    }
                }
            }
            if now >= next_stats {
                next_stats = now + Duration::from_secs(1);
                let mut depth = 0;
                for (i, q) in self.queues.iter().enumerate() {
                    if let Ok(s) = self.driver.stats(q).await {
                        self.depth_gauges[i].set(s.ready as f64);
                        depth += s.ready;
                    }
                }
                self.counters.queue_depth.store(depth, Ordering::Relaxed);
            }
            if wait_or_stop(&stop, sleep.max(Duration::from_millis(1))).await {
                break;
            }
        }
    }

    async fn extend_leases(&self) {
        let mut per_queue: Vec<Vec<(Arc<str>, Arc<LeaseState>)>> =
            vec![Vec::new(); self.queues.len()];
        {
            let map = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
            for f in map.values() {
                per_queue[f.queue].push((f.env.clone(), f.lease.clone()));
            }
        }
        for (qi, jobs) in per_queue.iter().enumerate() {
            let q = self.queues[qi].as_str();
            let envs: Vec<Arc<str>> = jobs.iter().map(|(env, _)| env.clone()).collect();
            match self
                .driver
                .extend(q, &self.worker_id, &envs, self.lease)
                .await
            {
                Ok(lost) if lost.is_empty() => {}
                Ok(lost) => {
                    let map = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
                    for (env, lease) in jobs.iter().filter(|(env, _)| lost.contains(env)) {
                        // A job that ended meanwhile (its ack removed the lease) is not lost.
                        let running = map.values().any(|f| Arc::ptr_eq(&f.lease, lease));
                        if running && !lease.is_lost() {
                            tracing::warn!(queue = %q, envelope = %env, "lost the lease of a running job (not extended in time); it may run elsewhere meanwhile");
                            lease.mark_lost();
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, queue = %q, "extending leases failed"),
            }
        }
    }

    /// Writes failures kept in the queue to the store. Bounded: each write has the store's
    /// timeout, and one flush stops after [`FLUSH_BUDGET`] (well within the lock's TTL), so a
    /// slow `failed_jobs` only delays the next flush.
    async fn flush_pending(&self) {
        let Some(store) = &self.store else { return };
        for q in &self.queues {
            let q = q.as_str();
            let token = match self.driver.lock_pending(q, FLUSH_LOCK_TTL).await {
                Ok(Some(token)) => token,
                _ => continue,
            };
            let deadline = Instant::now() + FLUSH_BUDGET;
            'batches: while Instant::now() < deadline {
                let records = match self.driver.pending_failures(q, 100).await {
                    Ok(r) if !r.is_empty() => r,
                    _ => break,
                };
                for raw in records {
                    if Instant::now() >= deadline {
                        break 'batches;
                    }
                    match serde_json::from_str::<FailureRecord>(&raw) {
                        Ok(record) => {
                            if let Err(e) = store.record(&record).await {
                                tracing::debug!(error = %e, "failed_jobs still unreachable");
                                break 'batches;
                            }
                        }
                        Err(e) => {
                            tracing::error!(error = %e, record = %raw, "dropping an unreadable pending failure")
                        }
                    }
                    if let Err(e) = self.driver.remove_pending(q, &raw).await {
                        tracing::warn!(error = %e, "could not remove a written pending failure");
                        break 'batches;
                    }
                }
            }
            let _ = self.driver.unlock_pending(q, &token).await;
        }
    }
}

/// How long one worker may hold a queue's pending-failures lock.
const FLUSH_LOCK_TTL: Duration = Duration::from_secs(60);

/// How long one flush of pending failures may write before it yields to the next one.
const FLUSH_BUDGET: Duration = Duration::from_secs(20);
