//! Throughput and failures over the last hour, from core-jobs' in-process
//! [`JobCounters`]: a sampler reads them every
//! [`sample_interval`](crate::DashboardBuilder::sample_interval) (10 s by default) and keeps
//! one point per sample for the last [`throughput_window`](crate::DashboardBuilder::throughput_window)
//! (an hour by default), for `GET api/throughput` and the `throughput` events of
//! `GET api/events`.
//!
//! A point holds the jobs that **ended** during its span (`span_ms`, ending at `at`, Unix
//! milliseconds): `processed` (succeeded), `failed` (ended in `failed_jobs`) and `retried`
//! (failed attempts scheduled again), for every shown queue and their total. Rates follow from
//! them: throughput in jobs per minute is `processed × 60000 / span_ms`, and the failure rate of
//! a span is `failed / (processed + failed)` (undefined when no job ended in it).
//!
//! The sampler runs from the moment the dashboard is built (inside a Tokio runtime; otherwise
//! from its first request) until it is dropped, whether or not a page is open: so the page
//! shows the hour before it was opened. That is cheap: a sample takes one short lock and reads
//! a few atomics per queue and job, in memory, with no call to Redis or the database, and the
//! points of an hour take a few tens of kilobytes.
//!
//! The counts are those of the workers **in this process** (see [`core_jobs::stats`]): a
//! dashboard served by a process that runs no worker shows flat lines.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use chrono::Utc;
use core_jobs::{Counts, JobCounters};
use serde::Serialize;
use tokio::sync::broadcast;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

/// How often the counters are sampled unless
/// [`sample_interval`](crate::DashboardBuilder::sample_interval) says otherwise.
pub const DEFAULT_SAMPLE_INTERVAL: Duration = Duration::from_secs(10);

/// The shortest sample interval accepted.
pub const MIN_SAMPLE_INTERVAL: Duration = Duration::from_millis(50);

/// How far back the charts reach unless
/// [`throughput_window`](crate::DashboardBuilder::throughput_window) says otherwise.
pub const DEFAULT_THROUGHPUT_WINDOW: Duration = Duration::from_secs(3600);

/// At most this many points are kept: a sample interval shorter than the window divided by it
/// is raised to that.
pub const MAX_POINTS: u32 = 3600;

/// One sample: the jobs that ended during its span.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Point {
    /// The end of the span, Unix milliseconds.
    at: i64,
    /// The span's length in milliseconds (about the sample interval).
    span_ms: u64,
    /// Summed over the shown queues.
    total: Counts,
    /// Per shown queue.
    queues: BTreeMap<String, Counts>,
}

/// The body of `GET api/throughput` and of the `throughput` events.
#[derive(Debug, Serialize)]
pub(crate) struct ThroughputReply {
    /// The sample interval, in milliseconds.
    interval_ms: u64,
    /// How far back points are kept, in milliseconds.
    window_ms: u64,
    /// The shown queues, in order.
    queues: Vec<String>,
    /// True: `points` are all the points (replace what you have); false: new points to append.
    replace: bool,
    /// Oldest first.
    points: Vec<Point>,
}

/// The sampler and its points, shared by the dashboard's handlers.
pub(crate) struct Throughput {
    counters: JobCounters,
    queues: Vec<String>,
    interval: Duration,
    window: Duration,
    points: Mutex<VecDeque<Point>>,
    updates: broadcast::Sender<Point>,
    started: AtomicBool,
    stop: CancellationToken,
}

impl Drop for Throughput {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Throughput {
    pub(crate) fn new(
        counters: JobCounters,
        queues: Vec<String>,
        interval: Duration,
        window: Duration,
    ) -> Arc<Self> {
        let window = window.max(interval);
        let interval = interval.max(window / MAX_POINTS);
        Arc::new(Self {
            counters,
            queues,
            interval,
            window,
            points: Mutex::new(VecDeque::new()),
            updates: broadcast::channel(64).0,
            started: AtomicBool::new(false),
            stop: CancellationToken::new(),
        })
    }

    /// Starts the sampler once, when called inside a Tokio runtime.
    pub(crate) fn ensure_started(self: &Arc<Self>) {
        if self.started.load(Ordering::Relaxed) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.started.swap(true, Ordering::Relaxed) {
            return;
        }
        runtime.spawn(sample_loop(
            Arc::downgrade(self),
            self.stop.clone(),
            self.interval,
        ));
    }

    /// Every point kept, oldest first.
    pub(crate) fn reply(&self) -> ThroughputReply {
        let points = self.lock().iter().cloned().collect();
        self.reply_with(true, points)
    }

    /// Every point kept and the new ones to come, with none lost or repeated between them.
    pub(crate) fn subscribe(&self) -> (ThroughputReply, broadcast::Receiver<Point>) {
        let points = self.lock();
        let receiver = self.updates.subscribe();
        let reply = self.reply_with(true, points.iter().cloned().collect());
        drop(points);
        (reply, receiver)
    }

    /// A reply appending one new point.
    pub(crate) fn update(&self, point: Point) -> ThroughputReply {
        self.reply_with(false, vec![point])
    }

    fn reply_with(&self, replace: bool, points: Vec<Point>) -> ThroughputReply {
        ThroughputReply {
            interval_ms: millis(self.interval),
            window_ms: millis(self.window),
            queues: self.queues.clone(),
            replace,
            points,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Point>> {
        self.points.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The shown queues' counts right now.
    fn read(&self) -> Vec<Counts> {
        let snapshot = self.counters.snapshot();
        self.queues.iter().map(|q| snapshot.queue(q)).collect()
    }

    /// Closes the span since `prev`: keeps its point, sends it to the event streams.
    fn record(&self, prev: &mut (Instant, Vec<Counts>)) {
        let now = Instant::now();
        let counts = self.read();
        let mut total = Counts::default();
        let queues = self
            .queues
            .iter()
            .zip(counts.iter().zip(&prev.1))
            .map(|(name, (now, before))| {
                let delta = now.since(*before);
                total += delta;
                (name.clone(), delta)
            })
            .collect();
        let point = Point {
            at: Utc::now().timestamp_millis(),
            span_ms: millis(now - prev.0),
            total,
            queues,
        };
        *prev = (now, counts);
        let oldest = point.at - i64::try_from(millis(self.window)).unwrap_or(i64::MAX);
        let mut points = self.lock();
        while points.front().is_some_and(|p| p.at <= oldest) {
            points.pop_front();
        }
        points.push_back(point.clone());
        // Sent under the lock, so that `subscribe` sees each point in the history or as an
        // update, never both or neither. No receiver is not an error.
        let _ = self.updates.send(point);
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Samples every `interval` until `stop` is cancelled or the dashboard is gone.
async fn sample_loop(throughput: Weak<Throughput>, stop: CancellationToken, interval: Duration) {
    let mut prev = match throughput.upgrade() {
        Some(t) => (Instant::now(), t.read()),
        None => return,
    };
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    // After a stall, one point spans the stall rather than a burst of short ones.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = stop.cancelled() => return,
        }
        let Some(t) = throughput.upgrade() else {
            return;
        };
        t.record(&mut prev);
    }
}
