//! The run loop: claims jobs, runs them with the worker's concurrency, ends them (ack, retry,
//! failure), and drains on shutdown.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::handle::Counters;
use super::registry::{Outcome, Registered};
use super::retry::{Backoff, retry};
use super::{UNDECODABLE_ENVELOPE, wait_or_stop};
use crate::context::{JobContext, LeaseState, RunInfo};
use crate::envelope::Envelope;
use crate::error::Result;
use crate::failed::{FailedJobs, FailureRecord};
use crate::queue::{Claimer, Driver};
use crate::stats::{JobCounters, RecentJob, RecentOutcome};

/// A message to the ack task.
pub(super) enum AckMsg {
    Ack(usize, Arc<str>),
    Flush(oneshot::Sender<()>),
}

/// A job this worker is running.
pub(super) struct InFlight {
    pub(super) queue: usize,
    pub(super) env: Arc<str>,
    abort: Option<AbortHandle>,
    /// Whether this worker still holds the job's lease (shared with the run's context).
    pub(super) lease: Arc<LeaseState>,
}

/// One run's hold on its [`InFlight`] entry and its concurrency slot, both given back when the
/// run's task ends or is dropped.
struct Running {
    rt: Arc<Runtime>,
    seq: u64,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.rt
            .inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.seq);
    }
}

/// A running worker's state, shared by its tasks.
pub(super) struct Runtime {
    pub(super) driver: Arc<dyn Driver>,
    pub(super) ctx: JobContext,
    pub(super) handlers: HashMap<&'static str, Registered>,
    pub(super) queues: Vec<String>,
    pub(super) depth_gauges: Vec<metrics::Gauge>,
    pub(super) worker_id: String,
    pub(super) lease: Duration,
    pub(super) block: Duration,
    pub(super) pending_interval: Duration,
    pub(super) store: Option<FailedJobs>,
    pub(super) counters: Counters,
    /// The in-process counters per queue and job (cells of registered jobs are in `handlers`).
    pub(super) job_counters: JobCounters,
    pub(super) inflight: Mutex<HashMap<u64, InFlight>>,
    pub(super) seq: AtomicU64,
    pub(super) ack_tx: mpsc::UnboundedSender<AckMsg>,
    pub(super) concurrency: usize,
    pub(super) grace: Duration,
}

impl Runtime {
    /// Runs the worker until `stop` is cancelled, then drains it.
    pub(super) async fn run(
        self: Arc<Self>,
        stop: CancellationToken,
        ack_rx: mpsc::UnboundedReceiver<AckMsg>,
    ) {
        let sem = Arc::new(Semaphore::new(self.concurrency));
        let acker = tokio::spawn(self.clone().ack_loop(ack_rx));
        // Lease extension has a task of its own, so that nothing else (a slow failed_jobs
        // write, a slow promotion) can delay it past the lease; pending failures too.
        // They stop after the running jobs have drained, so they have a token of their own.
        let maint_stop = CancellationToken::new();
        let maintenance = [
            tokio::spawn(self.clone().lease_loop(maint_stop.clone())),
            tokio::spawn(self.clone().maintenance_loop(maint_stop.clone())),
        ];
        let mut pending = tokio::spawn(self.clone().pending_loop(maint_stop.clone()));
        let claimers: Vec<_> = (0..self.queues.len())
            .map(|qi| tokio::spawn(self.clone().claim_loop(qi, sem.clone(), stop.clone())))
            .collect();
        tracing::info!(worker = %self.worker_id, queues = ?self.queues, concurrency = self.concurrency, "worker started");
        stop.cancelled().await;
        for c in claimers {
            let _ = c.await;
        }
        // Wait for running jobs, up to the grace period.
        let all = u32::try_from(self.concurrency).unwrap_or(u32::MAX);
        let drained = tokio::time::timeout(self.grace, sem.acquire_many(all))
            .await
            .is_ok();
        if !drained {
            let left: Vec<AbortHandle> = {
                let map = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
                map.values().filter_map(|f| f.abort.clone()).collect()
            };
            tracing::warn!(
                worker = %self.worker_id,
                jobs = left.len(),
                "grace period over: leaving running jobs to lease recovery"
            );
            for a in left {
                a.abort();
            }
        }
        let (tx, rx) = oneshot::channel();
        if self.ack_tx.send(AckMsg::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
        acker.abort();
        maint_stop.cancel();
        for task in maintenance {
            let _ = task.await;
        }
        // A flush stuck on a slow `failed_jobs` does not hold up shutdown for long: what it
        // has not written stays in the queue for the next worker (a row written at the very
        // moment of the abort may be written twice; its lock expires by its TTL).
        if tokio::time::timeout(Duration::from_secs(2), &mut pending)
            .await
            .is_err()
        {
            pending.abort();
        }
        tracing::info!(worker = %self.worker_id, "worker stopped");
    }

    async fn connect_claimer(&self, qi: usize) -> Result<Box<dyn Claimer>> {
        self.driver
            .claimer(&self.queues[qi], &self.worker_id, self.lease)
            .await
    }

    async fn claim_loop(self: Arc<Self>, qi: usize, sem: Arc<Semaphore>, stop: CancellationToken) {
        let mut pause = Duration::from_millis(50);
        let mut claimer: Option<Box<dyn Claimer>> = None;
        loop {
            if stop.is_cancelled() {
                break;
            }
            if claimer.is_none() {
                match self.connect_claimer(qi).await {
                    Ok(c) => claimer = Some(c),
                    Err(e) => {
                        tracing::error!(error = %e, queue = %self.queues[qi], "cannot start claiming; retrying");
                        if wait_or_stop(&stop, pause).await {
                            break;
                        }
                        pause = (pause * 2).min(Duration::from_secs(5));
                        continue;
                    }
                }
            }
            let c = claimer.as_mut().expect("connected above");
            let mut permit = tokio::select! {
                p = sem.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                () = stop.cancelled() => break,
            };
            let extra = sem.available_permits();
            if extra > 0
                && let Ok(more) = sem
                    .clone()
                    .try_acquire_many_owned(u32::try_from(extra).unwrap_or(u32::MAX))
            {
                permit.merge(more);
            }
            let n = permit.num_permits();
            // Non-blocking first, for as many jobs as there are free slots (never cancelled, so
            // no claim is lost), then a blocking wait that shutdown may cancel: what it moved is
            // recovered from the processing list. The blocking wait holds one slot only, so the
            // worker's other queues can claim meanwhile; the next round takes a batch again.
            let claimed = match c.claim(n, self.lease, Duration::ZERO).await {
                Ok(jobs) if jobs.is_empty() => {
                    if n > 1 {
                        drop(permit.split(n - 1));
                    }
                    tokio::select! {
                        r = c.claim(1, self.lease, self.block) => r,
                        () = stop.cancelled() => break,
                    }
                }
                other => other,
            };
            match claimed {
                Ok(jobs) => {
                    pause = Duration::from_millis(50);
                    for env in jobs {
                        let Some(p) = permit.split(1) else { break };
                        self.start(qi, env, p);
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, queue = %self.queues[qi], "claim failed; retrying");
                    drop(permit);
                    if wait_or_stop(&stop, pause).await {
                        break;
                    }
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
        if let Some(mut c) = claimer
            && let Err(e) = c.release().await
        {
            tracing::warn!(error = %e, "could not release the claimer at shutdown");
        }
    }

    fn start(self: &Arc<Self>, qi: usize, env: Arc<str>, permit: OwnedSemaphorePermit) {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let lease = Arc::new(LeaseState::default());
        self.inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                seq,
                InFlight {
                    queue: qi,
                    env: env.clone(),
                    abort: None,
                    lease: lease.clone(),
                },
            );
        let rt = self.clone();
        let task = tokio::spawn(async move {
            // Removed however the run ends (an abort at shutdown included): an entry left behind
            // would have its lease extended for ever.
            let _running = Running {
                rt: rt.clone(),
                seq,
                _permit: permit,
            };
            rt.execute(qi, env, lease).await;
        });
        if let Some(f) = self
            .inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&seq)
        {
            f.abort = Some(task.abort_handle());
        }
    }

    async fn execute(self: &Arc<Self>, qi: usize, env: Arc<str>, lease: Arc<LeaseState>) {
        let queue = self.queues[qi].as_str();
        // One relaxed load when the recent ring is off; the clock only when it is on.
        let started = self.job_counters.recent_clock();
        let e = match Envelope::decode(&env) {
            Ok(e) => e,
            Err(err) => {
                tracing::error!(queue, error = %err, "undecodable job envelope");
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                self.job_counters.cell(queue, UNDECODABLE_ENVELOPE).failed();
                if let Some(started) = started {
                    self.remember(
                        started,
                        qi,
                        "",
                        UNDECODABLE_ENVELOPE,
                        0,
                        RecentOutcome::Failed,
                    );
                }
                let record = FailureRecord {
                    job_id: String::new(),
                    job_name: UNDECODABLE_ENVELOPE.to_owned(),
                    queue: queue.to_owned(),
                    payload: env.to_string(),
                    error: format!("undecodable job envelope: {err}"),
                    attempts: 0,
                    group_id: None,
                    failed_at: Utc::now(),
                };
                self.fail(qi, &env, None, record).await;
                return;
            }
        };
        let attempt = e.attempt + 1;
        let span = tracing::info_span!("job", name = %e.job, id = %e.id, attempt, queue);
        self.execute_envelope(qi, &env, e, lease, started)
            .instrument(span)
            .await;
    }

    /// Puts a finished run in the recent ring (called only when it was on at the run's start).
    fn remember(
        &self,
        started: Instant,
        qi: usize,
        id: &str,
        name: &str,
        attempt: u32,
        outcome: RecentOutcome,
    ) {
        self.job_counters.push_recent(RecentJob {
            id: id.to_owned(),
            name: name.to_owned(),
            queue: self.queues[qi].clone(),
            outcome,
            attempt,
            finished_at: Utc::now(),
            duration: started.elapsed(),
        });
    }

    async fn execute_envelope(
        self: &Arc<Self>,
        qi: usize,
        env: &Arc<str>,
        mut e: Envelope,
        lease: Arc<LeaseState>,
        started: Option<Instant>,
    ) {
        let queue = self.queues[qi].as_str();
        let attempt = e.attempt + 1;
        let group = e.group.clone();
        let grouped = group.as_deref().map(|g| (g, e.id.as_str()));
        let Some(reg) = self.handlers.get(e.job.as_str()) else {
            tracing::error!("unknown job name: no handler registered on this worker");
            self.counters.failed.fetch_add(1, Ordering::Relaxed);
            self.job_counters.cell(queue, &e.job).failed();
            if let Some(started) = started {
                self.remember(started, qi, &e.id, &e.job, attempt, RecentOutcome::Failed);
            }
            let record = self.record(
                &e,
                format!("unknown job name {:?}: no handler registered", e.job),
                e.attempt,
            );
            self.fail(qi, env, grouped, record).await;
            self.unlock(&e).await;
            return;
        };
        let ctx = self.ctx.for_run(RunInfo {
            id: e.id.clone().into(),
            name: e.job.clone(),
            queue: queue.to_owned(),
            attempt,
            lease: lease.clone(),
        });
        let outcome = reg.handler.run(&e.data, &ctx, attempt).await;
        if lease.is_lost() {
            // The job was recovered and may be running elsewhere: acknowledging, retrying or
            // failing it from here could end (or double) the run that now holds the lease.
            tracing::warn!(
                "the job's lease was lost while it ran; its outcome is discarded here (the run holding the lease decides)"
            );
            // Nor is the overlap lock released: the run holding the lease releases it.
            return;
        }
        match outcome {
            Outcome::Done => {
                self.counters.processed.fetch_add(1, Ordering::Relaxed);
                reg.processed.increment(1);
                reg.cells[qi].processed();
                if let Some(started) = started {
                    self.remember(
                        started,
                        qi,
                        &e.id,
                        &e.job,
                        attempt,
                        RecentOutcome::Succeeded,
                    );
                }
                if grouped.is_some() {
                    self.finish(qi, env, grouped, None).await;
                } else {
                    let _ = self.ack_tx.send(AckMsg::Ack(qi, env.clone()));
                }
                self.unlock(&e).await;
            }
            Outcome::Retry { error, delay } => {
                self.counters.retried.fetch_add(1, Ordering::Relaxed);
                reg.retried.increment(1);
                reg.cells[qi].retried();
                if let Some(started) = started {
                    self.remember(started, qi, &e.id, &e.job, attempt, RecentOutcome::Retried);
                }
                tracing::warn!(%error, ?delay, "job attempt failed; retrying");
                e.attempt = attempt;
                let new = e.encode();
                let scheduled = retry(Backoff::WRITE, "scheduling the retry", || {
                    self.driver.retry(queue, env, new.clone(), delay)
                })
                .await;
                if let Err(err) = scheduled {
                    tracing::error!(error = %err, "could not schedule the retry; the job returns when its lease expires");
                }
            }
            Outcome::Failed { error } => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                reg.failed.increment(1);
                reg.cells[qi].failed();
                if let Some(started) = started {
                    self.remember(started, qi, &e.id, &e.job, attempt, RecentOutcome::Failed);
                }
                tracing::error!(%error, "job failed after its last attempt");
                let record = self.record(&e, error, attempt);
                self.fail(qi, env, grouped, record).await;
                self.unlock(&e).await;
            }
            Outcome::Undecodable { error } => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                reg.failed.increment(1);
                reg.cells[qi].failed();
                if let Some(started) = started {
                    self.remember(started, qi, &e.id, &e.job, attempt, RecentOutcome::Failed);
                }
                tracing::error!(%error, "undecodable job payload");
                let record = self.record(&e, error, e.attempt);
                self.fail(qi, env, grouped, record).await;
                self.unlock(&e).await;
            }
        }
    }

    fn record(&self, e: &Envelope, error: String, attempts: u32) -> FailureRecord {
        FailureRecord {
            job_id: e.id.clone(),
            job_name: e.job.clone(),
            queue: e.queue.clone(),
            payload: e.data.get().to_owned(),
            error,
            attempts,
            group_id: e.group.clone(),
            failed_at: Utc::now(),
        }
    }

    /// Releases the scheduler's overlap lock once the job has finished.
    async fn unlock(&self, e: &Envelope) {
        let Some((name, token)) = &e.unlock else {
            return;
        };
        let Some(cache) = self.ctx.cache_opt() else {
            tracing::warn!(lock = %name, "job holds an overlap lock but the worker has no cache; it expires by its TTL");
            return;
        };
        let lock = cache.lock_with_owner(name.clone(), Duration::from_secs(1), token.clone());
        if let Err(err) = lock.release().await {
            tracing::warn!(lock = %name, error = %err, "could not release the overlap lock; it expires by its TTL");
        }
    }

    /// Writes the failure (or keeps it in the queue when the store is unreachable) and ends the
    /// job's lease.
    async fn fail(
        &self,
        qi: usize,
        env: &Arc<str>,
        group: Option<(&str, &str)>,
        record: FailureRecord,
    ) {
        let written = match &self.store {
            Some(store) => match store.record(&record).await {
                Ok(_) => true,
                Err(err) => {
                    tracing::error!(error = %err, "failed_jobs unreachable; keeping the failure in the queue");
                    false
                }
            },
            None => false,
        };
        let parked =
            (!written).then(|| serde_json::to_string(&record).expect("a record serializes"));
        self.finish(qi, env, group, parked.as_deref()).await;
    }

    async fn finish(
        &self,
        qi: usize,
        env: &Arc<str>,
        group: Option<(&str, &str)>,
        record: Option<&str>,
    ) {
        let queue = self.queues[qi].as_str();
        let finished = retry(Backoff::WRITE, "finishing the job", || {
            self.driver.finish(queue, env, group, record)
        })
        .await;
        if let Err(err) = finished {
            tracing::error!(error = %err, "could not finish the job; it returns when its lease expires");
        }
    }

    async fn ack_loop(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<AckMsg>) {
        let mut per_queue: Vec<Vec<Arc<str>>> = vec![Vec::new(); self.queues.len()];
        let mut waiters = Vec::new();
        while let Some(first) = rx.recv().await {
            let mut next = Some(first);
            let mut n = 0;
            while let Some(msg) = next {
                match msg {
                    AckMsg::Ack(qi, env) => {
                        per_queue[qi].push(env);
                        n += 1;
                    }
                    AckMsg::Flush(tx) => waiters.push(tx),
                }
                next = if n < 2000 { rx.try_recv().ok() } else { None };
            }
            for (qi, envs) in per_queue.iter_mut().enumerate() {
                if envs.is_empty() {
                    continue;
                }
                let queue = self.queues[qi].as_str();
                if let Err(err) = retry(Backoff::ACK, "ack", || self.driver.ack(queue, envs)).await
                {
                    tracing::error!(error = %err, jobs = envs.len(), "ack failed; those jobs run again when their leases expire");
                }
                envs.clear();
            }
            for w in waiters.drain(..) {
                let _ = w.send(());
            }
        }
    }
}
