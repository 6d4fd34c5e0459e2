//! The HTTP request series, kept by the framework once [`super::install`] has installed its
//! recorder, and rendered beside the exporter's metrics.
//!
//! The exporter keeps every histogram sample in a shared list until its upkeep or a scrape
//! folds them into buckets: each request would push to memory all threads append to, and the
//! list's blocks are allocated and freed again every few seconds. Here a request adds to
//! counters of its own thread: one count per bucket, the sum and the total, each written only
//! by that thread (no atomic read-modify-write, no line shared between cores, no allocation).
//! A scrape adds the threads' counters up. When a thread ends, what it counted is folded into
//! the series, so the memory is bounded by the series and the threads alive.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::extract::MatchedPath;

use super::{LATENCY_BUCKETS, REQUEST_DURATION_SECONDS, REQUESTS_TOTAL};

const BUCKETS: usize = LATENCY_BUCKETS.len();

/// One series' counts in one thread. Only that thread writes them; a scrape reads them.
#[derive(Default)]
struct Shard {
    /// Requests per bucket: `buckets[i]` counts the durations in `(bound[i-1], bound[i]]`.
    buckets: [AtomicU64; BUCKETS],
    /// Every request, those slower than the last bound included.
    count: AtomicU64,
    /// The sum of the durations in seconds, as `f64` bits.
    sum: AtomicU64,
}

impl Shard {
    /// Counts one request. Called by the owning thread only, so a load and a store suffice.
    fn observe(&self, seconds: f64) {
        let bump = |counter: &AtomicU64| {
            counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        };
        if let Some(i) = LATENCY_BUCKETS.iter().position(|&bound| seconds <= bound) {
            bump(&self.buckets[i]);
        }
        bump(&self.count);
        let sum = f64::from_bits(self.sum.load(Ordering::Relaxed)) + seconds;
        self.sum.store(sum.to_bits(), Ordering::Relaxed);
    }

    fn totals(&self) -> Totals {
        Totals {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)),
            count: self.count.load(Ordering::Relaxed),
            sum: f64::from_bits(self.sum.load(Ordering::Relaxed)),
        }
    }
}

/// A series' counts added up.
#[derive(Clone, Copy, Default)]
struct Totals {
    buckets: [u64; BUCKETS],
    count: u64,
    sum: f64,
}

impl Totals {
    fn add(&mut self, other: &Totals) {
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets) {
            *mine += theirs;
        }
        self.count += other.count;
        self.sum += other.sum;
    }
}

/// A series: its labels, the shards of the threads that count it, and what ended threads
/// counted.
struct Series {
    method: &'static str,
    route: String,
    status: u16,
    shards: Vec<Arc<Shard>>,
    retired: Totals,
}

impl Series {
    fn totals(&self) -> Totals {
        let mut totals = self.retired;
        for shard in &self.shards {
            totals.add(&shard.totals());
        }
        totals
    }
}

/// Every series, in the order they were first seen.
static SERIES: Mutex<Vec<Series>> = Mutex::new(Vec::new());

fn series() -> MutexGuard<'static, Vec<Series>> {
    SERIES.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A series by the address and length of its route template's text, its method and status.
/// The template is an `Arc<str>` the router hands to every request of the route, so its address
/// names it; the cache keeps the `MatchedPath` alive, so the address cannot be reused.
type SeriesKey = (usize, usize, &'static str, u16);

/// A thread's shards; when the thread ends, their counts are folded into their series. Hashed
/// with foldhash: every request looks its series up, by a key the application's routes bound.
#[derive(Default)]
struct ThreadShards(
    HashMap<SeriesKey, (Option<MatchedPath>, usize, Arc<Shard>), foldhash::fast::RandomState>,
);

impl Drop for ThreadShards {
    fn drop(&mut self) {
        let mut all = series();
        for (_, index, shard) in self.0.values() {
            let series = &mut all[*index];
            series.retired.add(&shard.totals());
            series.shards.retain(|s| !Arc::ptr_eq(s, shard));
        }
    }
}

thread_local! {
    static SHARDS: RefCell<ThreadShards> = RefCell::new(ThreadShards::default());
}

/// Counts one request of `(method, route, status)` that took `elapsed`.
pub(super) fn observe(
    method: &'static str,
    route: Option<MatchedPath>,
    status: u16,
    elapsed: Duration,
) {
    let key = {
        let template = super::name(&route);
        (template.as_ptr() as usize, template.len(), method, status)
    };
    let seconds = elapsed.as_secs_f64();
    // A thread whose locals are being destroyed counts nothing more.
    let _ = SHARDS.try_with(|shards| {
        let mut shards = shards.borrow_mut();
        if let Some((_, _, shard)) = shards.0.get(&key) {
            return shard.observe(seconds);
        }
        let (index, shard) = shard_for(method, super::name(&route), status);
        shard.observe(seconds);
        shards.0.insert(key, (route, index, shard));
    });
}

/// A new shard of the series `(method, route, status)` for the calling thread, and the series'
/// index.
fn shard_for(method: &'static str, route: &str, status: u16) -> (usize, Arc<Shard>) {
    let mut all = series();
    let index = match all
        .iter()
        .position(|s| s.method == method && s.route == route && s.status == status)
    {
        Some(index) => index,
        None => {
            all.push(Series {
                method,
                route: route.to_owned(),
                status,
                shards: Vec::new(),
                retired: Totals::default(),
            });
            all.len() - 1
        }
    };
    let shard = Arc::new(Shard::default());
    all[index].shards.push(shard.clone());
    (index, shard)
}

/// Appends `http_requests_total` and `http_request_duration_seconds` in the text exposition
/// format, with their help and type lines, when any request was counted.
pub(super) fn render(out: &mut String) {
    let all: Vec<(String, Totals)> = series().iter().map(|s| (labels(s), s.totals())).collect();
    if all.is_empty() {
        return;
    }
    let _ = writeln!(out, "# HELP {REQUESTS_TOTAL} {}", super::REQUESTS_HELP);
    let _ = writeln!(out, "# TYPE {REQUESTS_TOTAL} counter");
    for (labels, totals) in &all {
        let _ = writeln!(out, "{REQUESTS_TOTAL}{{{labels}}} {}", totals.count);
    }
    out.push('\n');
    let name = REQUEST_DURATION_SECONDS;
    let _ = writeln!(out, "# HELP {name} {}", super::DURATION_HELP);
    let _ = writeln!(out, "# TYPE {name} histogram");
    for (labels, totals) in &all {
        let mut cumulative = 0;
        for (bound, count) in LATENCY_BUCKETS.iter().zip(totals.buckets) {
            cumulative += count;
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels},le=\"+Inf\"}} {}",
            totals.count
        );
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", totals.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", totals.count);
    }
    out.push('\n');
}

/// `method="…",route="…",status="…"`, the route's text escaped for a label value.
fn labels(series: &Series) -> String {
    let mut route = String::with_capacity(series.route.len());
    for c in series.route.chars() {
        match c {
            '\\' => route.push_str("\\\\"),
            '"' => route.push_str("\\\""),
            '\n' => route.push_str("\\n"),
            c => route.push(c),
        }
    }
    format!(
        "method=\"{}\",route=\"{route}\",status=\"{}\"",
        series.method, series.status
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_counts_in_its_bucket_and_every_total() {
        let shard = Shard::default();
        shard.observe(0.003);
        shard.observe(0.005);
        shard.observe(0.2);
        shard.observe(100.0);
        let totals = shard.totals();
        assert_eq!(totals.buckets[0], 2, "0.005 is inside its own bound");
        let quarter = LATENCY_BUCKETS.iter().position(|&b| b == 0.25).unwrap();
        assert_eq!(totals.buckets[quarter], 1);
        assert_eq!(
            totals.buckets.iter().sum::<u64>(),
            3,
            "100 s is past every bound"
        );
        assert_eq!(totals.count, 4);
        assert!((totals.sum - 100.208).abs() < 1e-9, "{}", totals.sum);
    }

    #[test]
    fn an_ended_threads_counts_stay_in_its_series_and_its_shard_goes() {
        // A series of its own: no other test counts `OTHER` requests answered 599.
        fn find() -> Option<(u64, usize)> {
            series()
                .iter()
                .find(|s| s.method == "OTHER" && s.status == 599)
                .map(|s| (s.totals().count, s.shards.len()))
        }
        let observe_twice = || {
            for _ in 0..2 {
                observe("OTHER", None, 599, Duration::from_millis(1));
            }
            find()
        };
        // Each thread counts in a shard of its own while it runs…
        assert_eq!(
            std::thread::spawn(observe_twice).join().unwrap(),
            Some((2, 1))
        );
        // …and its counts stay in the series once it has ended, without its shard.
        assert_eq!(find(), Some((2, 0)));
        assert_eq!(
            std::thread::spawn(observe_twice).join().unwrap(),
            Some((4, 1))
        );
        assert_eq!(find(), Some((4, 0)));
    }

    #[test]
    fn routes_are_escaped_in_labels() {
        let series = Series {
            method: "GET",
            route: "/a\"b\\c".to_owned(),
            status: 404,
            shards: Vec::new(),
            retired: Totals::default(),
        };
        assert_eq!(
            labels(&series),
            r#"method="GET",route="/a\"b\\c",status="404""#
        );
    }
}
