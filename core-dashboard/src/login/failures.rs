//! Wrong tokens counted per client address: past the limit in a window, sign-ins from that
//! address are refused without looking at the token until the window ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The most addresses tracked at once; past it, new addresses share one bucket.
const MAX_TRACKED: usize = 10_000;

struct Window {
    started: Instant,
    failures: u32,
}

/// Failure counts per address (`None`: the shared bucket of requests without one).
pub(crate) struct Failures {
    limit: u32,
    window: Duration,
    map: Mutex<HashMap<Option<IpAddr>, Window>>,
}

impl Failures {
    pub(crate) fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// How long `client` must still wait, when it has used up its wrong tokens.
    pub(crate) fn blocked(&self, client: Option<IpAddr>) -> Option<Duration> {
        let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let window = map.get(&client)?;
        let elapsed = window.started.elapsed();
        (window.failures >= self.limit && elapsed < self.window).then(|| self.window - elapsed)
    }

    /// Counts one wrong token of `client`.
    pub(crate) fn record(&self, client: Option<IpAddr>) {
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let mut key = client;
        if !map.contains_key(&key) && map.len() >= MAX_TRACKED {
            map.retain(|_, w| now.duration_since(w.started) < self.window);
            if map.len() >= MAX_TRACKED {
                key = None;
            }
        }
        let window = map.entry(key).or_insert(Window {
            started: now,
            failures: 0,
        });
        if now.duration_since(window.started) >= self.window {
            *window = Window {
                started: now,
                failures: 0,
            };
        }
        window.failures = window.failures.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_blocks_one_address_only() {
        let failures = Failures::new(2, Duration::from_secs(60));
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        let b = Some(IpAddr::from([10, 0, 0, 2]));
        failures.record(a);
        assert!(failures.blocked(a).is_none());
        failures.record(a);
        let wait = failures.blocked(a).expect("blocked");
        assert!(wait <= Duration::from_secs(60) && wait > Duration::from_secs(58));
        assert!(failures.blocked(b).is_none());
        assert!(failures.blocked(None).is_none());

        let short = Failures::new(1, Duration::ZERO);
        short.record(a);
        assert!(short.blocked(a).is_none(), "the window is over");
    }
}
