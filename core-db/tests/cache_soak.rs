//! Soak of the tiered driver under connection faults (about 45 seconds): two tiered caches on one
//! Redis prefix stand for two processes; `a` reaches Redis through a fault-injection proxy that
//! drops, resets, stalls and refuses its connections at random, `b` directly. Each process writes
//! its own key with ever-growing values while readers on both processes read both keys.
//!
//! The property is the documented staleness bound of `Cache::tiered`: a read never returns a value
//! older than the last write acknowledged more than [`STALENESS_BOUND`] before the read started.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use core_db::cache::{Cache, RedisCacheOptions, TieredConfig};
use rand::Rng;
use test_support::proxy::{Direction, Fault, FaultProxy};

#[allow(dead_code)]
mod cache_support;
use cache_support::redis_addr;

/// The bound `Cache::tiered` documents.
const STALENESS_BOUND: Duration = Duration::from_secs(2);

/// How long the faults go on.
const SOAK: Duration = Duration::from_secs(40);

/// The keys: `a` writes the first, `b` the second.
const KEYS: [&str; 2] = ["soak:a", "soak:b"];

/// A read: when it started, which key, what it returned, on which process.
#[derive(Debug, Clone, Copy)]
struct Read {
    at: Duration,
    key: usize,
    value: u64,
    on: &'static str,
}

/// Writes `key` on `cache` with 1, 2, 3, … until `stop`; returns (when the write was
/// acknowledged, the value) for every write that succeeded.
async fn writer(
    cache: Cache,
    key: &'static str,
    started: Instant,
    stop: Arc<AtomicBool>,
) -> Vec<(Duration, u64)> {
    let mut acknowledged = Vec::new();
    let mut value = 0_u64;
    while !stop.load(Ordering::Relaxed) {
        value += 1;
        if cache.set(key, &value.to_string()).await.is_ok() {
            acknowledged.push((started.elapsed(), value));
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    acknowledged
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiered_reads_stay_within_the_bound_while_connections_fail() {
    let Some(r) =
        test_support::redis("tiered_reads_stay_within_the_bound_while_connections_fail").await
    else {
        return;
    };
    let proxy = FaultProxy::start(&redis_addr(&r.url)).await.unwrap();
    let a = {
        let options = RedisCacheOptions::new().timeout(Duration::from_millis(500));
        let l2 = Cache::redis_with(&proxy.url(&r.url), r.prefix.clone(), options)
            .await
            .unwrap();
        Cache::tiered(Cache::memory(r.prefix.clone()), l2, TieredConfig::default())
            .await
            .unwrap()
    };
    let b = {
        let l2 = Cache::redis(&r.url, r.prefix.clone()).await.unwrap();
        Cache::tiered(Cache::memory(r.prefix.clone()), l2, TieredConfig::default())
            .await
            .unwrap()
    };
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));

    let writers = [
        tokio::spawn(writer(a.clone(), KEYS[0], started, Arc::clone(&stop))),
        tokio::spawn(writer(b.clone(), KEYS[1], started, Arc::clone(&stop))),
    ];
    let reads: Arc<Mutex<Vec<Read>>> = Arc::default();
    let mut readers = Vec::new();
    for (on, cache) in [("a", &a), ("b", &b), ("a", &a), ("b", &b)] {
        let (cache, stop, reads) = (cache.clone(), Arc::clone(&stop), Arc::clone(&reads));
        readers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            let mut i = 0_usize;
            while !stop.load(Ordering::Relaxed) {
                let key = i % KEYS.len();
                let at = started.elapsed();
                // Errors (timeouts while a's connections are down) are allowed; stale values not.
                if let Ok(value) = cache.get(KEYS[key]).await {
                    let value = value.map_or(0, |v| v.parse().unwrap());
                    mine.push(Read { at, key, value, on });
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            reads.lock().unwrap().extend(mine);
        }));
    }

    // The faults, on a's connections only (its L2 connection and its subscription).
    let accepted = proxy.accepted();
    let mut faults = Vec::new();
    while started.elapsed() < SOAK {
        let (pause, fault, hold) = {
            let mut rng = rand::rng();
            (
                Duration::from_millis(rng.random_range(200..1500)),
                rng.random_range(0..5_u8),
                Duration::from_millis(rng.random_range(100..3000)),
            )
        };
        tokio::time::sleep(pause).await;
        match fault {
            0 => proxy.drop_connections(),
            1 => proxy.reset_connections(),
            2 => {
                // Silent: replies (and announcements) held, the sockets stay open.
                proxy.set(Direction::Downstream, Fault::Stall);
                tokio::time::sleep(hold).await;
                proxy.heal();
            }
            3 => {
                proxy.set(Direction::Upstream, Fault::Stall);
                tokio::time::sleep(hold).await;
                proxy.heal();
            }
            _ => {
                proxy.refuse(true);
                proxy.drop_connections();
                tokio::time::sleep(hold).await;
                proxy.refuse(false);
            }
        }
        faults.push(fault);
    }
    proxy.heal();
    proxy.refuse(false);
    // Let a recover before the writers stop, so the last writes are acknowledged.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.push(writer.await.unwrap());
    }
    for reader in readers {
        reader.await.unwrap();
    }

    let reads = reads.lock().unwrap().clone();
    let mut worst = Duration::ZERO;
    for read in &reads {
        let written = &acknowledged[read.key];
        // The newest value acknowledged more than the bound before the read started.
        let Some(cutoff) = read.at.checked_sub(STALENESS_BOUND) else {
            continue;
        };
        let n = written.partition_point(|(at, _)| *at <= cutoff);
        let floor = if n == 0 { 0 } else { written[n - 1].1 };
        assert!(
            read.value >= floor,
            "{} read {}={} at {:?}, but {} was acknowledged at {:?}",
            read.on,
            KEYS[read.key],
            read.value,
            read.at,
            floor,
            written[n - 1].0
        );
        // How stale it was: since when has a newer value been acknowledged?
        let newer = written.partition_point(|(_, v)| *v <= read.value);
        if let Some((since, _)) = written.get(newer)
            && *since < read.at
        {
            worst = worst.max(read.at - *since);
        }
    }
    eprintln!(
        "soak: {} faults, {} reconnections through the proxy, {} + {} writes acknowledged, \
         {} reads, worst staleness {worst:?} (bound {STALENESS_BOUND:?})",
        faults.len(),
        proxy.accepted() - accepted,
        acknowledged[0].len(),
        acknowledged[1].len(),
        reads.len()
    );
    assert!(faults.len() >= 10, "the proxy injected faults: {faults:?}");
    assert!(proxy.accepted() > accepted, "a reconnected");
    for (key, written) in KEYS.iter().zip(&acknowledged) {
        assert!(written.len() > 100, "{key}: writes went through");
        for (on, cache) in [("a", &a), ("b", &b)] {
            assert!(
                reads.iter().filter(|r| r.on == on).count() > 100,
                "{on} read"
            );
            // Both end on the last acknowledged value (or a later, unacknowledged one).
            let last = written.last().unwrap().1;
            let until = Instant::now() + STALENESS_BOUND * 2;
            loop {
                let value: u64 = match cache.get(key).await {
                    Ok(v) => v.map_or(0, |v| v.parse().unwrap()),
                    Err(_) => 0,
                };
                if value >= last {
                    break;
                }
                assert!(
                    Instant::now() < until,
                    "{on}'s {key} stuck at {value} < {last}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    for (on, cache) in [("a", &a), ("b", &b)] {
        let stats = cache.stats().unwrap();
        assert!(stats.l1_hits > 0, "{on}'s L1 was in play: {stats:?}");
    }
}
