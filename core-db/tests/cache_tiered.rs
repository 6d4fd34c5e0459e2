//! The tiered driver across processes: two tiered caches on one Redis prefix stand for two
//! application processes. Also its counters, its configuration, and `Cache::from_url`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use core_db::Error;
use core_db::cache::{Cache, CacheDriver, RedisCacheOptions, TieredConfig, TieredStats};
use tokio::sync::Mutex;

mod cache_support;
use cache_support::{
    SlowRepliesProxy, client_id, kill_client, redis_addr, remember_on_both, until_ok,
};
use test_support::proxy::{Direction, Fault, FaultProxy};

/// Held while a tiered cache is being created, so a test can tell which pub/sub connection is
/// the new one.
static CREATING: Mutex<()> = Mutex::const_new(());

async fn tiered(r: &test_support::TestRedis, config: TieredConfig) -> Cache {
    let _creating = CREATING.lock().await;
    tiered_unlocked(r, config).await
}

async fn tiered_unlocked(r: &test_support::TestRedis, config: TieredConfig) -> Cache {
    let l2 = Cache::redis(&r.url, r.prefix.clone()).await.unwrap();
    Cache::tiered(Cache::memory(r.prefix.clone()), l2, config)
        .await
        .unwrap()
}

/// How long these tests let another process's L1 keep a copy after a change before they call it
/// stale. An invalidation is one pub/sub message away (how long it takes is a figure of the cache
/// benchmark, `cargo bench -p core-db --bench cache`, not of these tests); the bound only has to
/// tell "arrives" from "never arrives" on a machine busy compiling.
const BOUND: Duration = Duration::from_secs(3);

/// The tiered driver's documented bound for a peer whose subscription went silent (the module
/// docs of `core_db::infra::cache`'s tiered driver: "at most 2 seconds").
const STALENESS_BOUND: Duration = Duration::from_secs(2);

/// Reads `key` on `cache` until it returns `expected` (errors count as "not yet"); fails after
/// [`BOUND`].
async fn converges(cache: &Cache, key: &str, expected: Option<&str>) {
    let started = Instant::now();
    loop {
        if let Ok(value) = cache.get(key).await
            && value.as_deref() == expected
        {
            return;
        }
        assert!(started.elapsed() < BOUND, "{key} never became {expected:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn stats(cache: &Cache) -> TieredStats {
    cache.stats().expect("a tiered cache has stats")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_on_one_process_reach_the_others_l1() {
    let Some(r) = test_support::redis("changes_on_one_process_reach_the_others_l1").await else {
        return;
    };
    let a = tiered(&r, TieredConfig::default()).await;
    let b = tiered(&r, TieredConfig::default()).await;

    a.set("k", "v1").await.unwrap();
    // b's reads promote v1 into its L1 and then hit it (a's announcement of its own write may
    // evict b's first copy once; harmless).
    hold_in_l1(&b, "k", "v1").await;

    // A delete on a is seen by b's next read.
    a.del("k").await.unwrap();
    converges(&b, "k", None).await;

    // So are writes, counters, pulls, bulk writes, flushes and tag invalidations.
    a.set("k", "v2").await.unwrap();
    assert_eq!(b.get("k").await.unwrap().as_deref(), Some("v2"));
    a.set("k", "v3").await.unwrap();
    converges(&b, "k", Some("v3")).await;

    a.set("n", "1").await.unwrap();
    assert_eq!(b.get("n").await.unwrap().as_deref(), Some("1"));
    a.increment("n", 5).await.unwrap();
    converges(&b, "n", Some("6")).await;

    assert_eq!(b.get("k").await.unwrap().as_deref(), Some("v3"));
    assert_eq!(a.pull("k").await.unwrap().as_deref(), Some("v3"));
    converges(&b, "k", None).await;

    a.put_many(&[("m1", "1"), ("m2", "2")]).await.unwrap();
    assert_eq!(
        b.many(&["m1", "m2"]).await.unwrap(),
        vec![Some("1".into()), Some("2".into())]
    );
    a.put_many(&[("m1", "10"), ("m2", "20")]).await.unwrap();
    converges(&b, "m2", Some("20")).await;

    a.set("page:1", "p").await.unwrap();
    assert_eq!(b.get("page:1").await.unwrap().as_deref(), Some("p"));
    a.flush_prefix("page:").await.unwrap();
    converges(&b, "page:1", None).await;

    a.set_with_tags("u:1", "u", &["users"], None).await.unwrap();
    assert_eq!(b.get("u:1").await.unwrap().as_deref(), Some("u"));
    assert_eq!(
        b.get_keys_by_tag("users").await.unwrap(),
        vec!["u:1"],
        "tags are shared"
    );
    a.invalidate_tag("users").await.unwrap();
    converges(&b, "u:1", None).await;

    // And the other way round.
    b.set("k", "from b").await.unwrap();
    assert_eq!(a.get("k").await.unwrap().as_deref(), Some("from b"));
    b.set("k", "from b again").await.unwrap();
    converges(&a, "k", Some("from b again")).await;
}

#[tokio::test]
async fn counters_and_promotion() {
    let Some(r) = test_support::redis("counters_and_promotion").await else {
        return;
    };
    let writer = Cache::redis(&r.url, r.prefix.clone()).await.unwrap();
    let cache = tiered(&r, TieredConfig::default()).await;
    assert_eq!(cache.driver(), CacheDriver::Tiered);
    assert_eq!(writer.stats(), None);

    assert_eq!(cache.get("missing").await.unwrap(), None);
    writer.set("k", "v").await.unwrap();
    assert_eq!(cache.get("k").await.unwrap().as_deref(), Some("v"));
    assert_eq!(cache.get("k").await.unwrap().as_deref(), Some("v"));
    assert_eq!(
        stats(&cache),
        TieredStats {
            l1_hits: 1,
            l2_hits: 1,
            misses: 1,
            promotions: 1
        }
    );

    // L1 keeps a promoted value for l1_ttl_fraction (0.25) of its remaining L2 TTL.
    writer
        .put("short", "v", Some(Duration::from_millis(1200)))
        .await
        .unwrap();
    assert!(cache.get("short").await.unwrap().is_some()); // L2 hit, promoted for ~300 ms
    assert!(cache.get("short").await.unwrap().is_some()); // L1 hit
    tokio::time::sleep(Duration::from_millis(450)).await;
    let before = stats(&cache);
    assert!(cache.get("short").await.unwrap().is_some());
    let after = stats(&cache);
    assert_eq!(
        after.l2_hits,
        before.l2_hits + 1,
        "the L1 copy expired first"
    );

    // many counts per key and promotes in one round trip.
    writer.put_many(&[("x", "1"), ("y", "2")]).await.unwrap();
    let before = stats(&cache);
    assert_eq!(
        cache.many(&["x", "y", "k", "nope"]).await.unwrap(),
        vec![Some("1".into()), Some("2".into()), Some("v".into()), None]
    );
    let after = stats(&cache);
    assert_eq!(after.l1_hits - before.l1_hits, 1);
    assert_eq!(after.l2_hits - before.l2_hits, 2);
    assert_eq!(after.misses - before.misses, 1);
    assert_eq!(after.promotions - before.promotions, 2);
    cache.many(&["x", "y"]).await.unwrap();
    assert_eq!(stats(&cache).l1_hits - after.l1_hits, 2);
}

#[tokio::test]
async fn configuration_is_honoured() {
    let Some(r) = test_support::redis("configuration_is_honoured").await else {
        return;
    };

    // write_through off: a write evicts the key from L1 instead of storing it.
    let no_write_through = tiered(
        &r,
        TieredConfig {
            write_through: false,
            ..TieredConfig::default()
        },
    )
    .await;
    no_write_through.set("w", "v").await.unwrap();
    no_write_through.get("w").await.unwrap();
    assert_eq!(stats(&no_write_through).l2_hits, 1);
    no_write_through.get("w").await.unwrap();
    assert_eq!(
        stats(&no_write_through).l1_hits,
        1,
        "promoted by the first read"
    );

    // promote_to_l1 off: L2 hits stay in L2.
    let no_promotion = tiered(
        &r,
        TieredConfig {
            write_through: false,
            promote_to_l1: false,
            ..TieredConfig::default()
        },
    )
    .await;
    for _ in 0..3 {
        assert_eq!(no_promotion.get("w").await.unwrap().as_deref(), Some("v"));
    }
    assert_eq!(
        stats(&no_promotion),
        TieredStats {
            l1_hits: 0,
            l2_hits: 3,
            misses: 0,
            promotions: 0
        }
    );

    // enable_l1 off: no L1 at all, but writes still reach the other processes' L1s.
    let no_l1 = tiered(
        &r,
        TieredConfig {
            enable_l1: false,
            ..TieredConfig::default()
        },
    )
    .await;
    let observer = tiered(&r, TieredConfig::default()).await;
    no_l1.set("o", "1").await.unwrap();
    assert_eq!(observer.get("o").await.unwrap().as_deref(), Some("1"));
    no_l1.set("o", "2").await.unwrap();
    converges(&observer, "o", Some("2")).await;
    no_l1.get("o").await.unwrap();
    no_l1.get("o").await.unwrap();
    assert_eq!(stats(&no_l1).l1_hits, 0);

    // enable_l2 off: a per-process cache that writes nothing to Redis.
    let keys_before = r.keys().await;
    let local = tiered(
        &r,
        TieredConfig {
            enable_l2: false,
            ..TieredConfig::default()
        },
    )
    .await;
    local.set("only-here", "v").await.unwrap();
    local
        .set_with_tags("tagged", "v", &["t"], None)
        .await
        .unwrap();
    assert_eq!(local.get("only-here").await.unwrap().as_deref(), Some("v"));
    assert_eq!(local.get_keys_by_tag("t").await.unwrap(), vec!["tagged"]);
    assert_eq!(observer.get("only-here").await.unwrap(), None);
    assert_eq!(r.keys().await, keys_before);

    // Bad configurations are refused.
    for fraction in [0.0, -0.5, 1.5, f64::NAN] {
        let l2 = Cache::redis(&r.url, r.prefix.clone()).await.unwrap();
        let config = TieredConfig {
            l1_ttl_fraction: fraction,
            ..TieredConfig::default()
        };
        assert!(matches!(
            Cache::tiered(Cache::memory("x"), l2, config).await,
            Err(Error::Config(_))
        ));
    }
    let redis = Cache::redis(&r.url, r.prefix.clone()).await.unwrap();
    assert!(matches!(
        Cache::tiered(redis.clone(), redis.clone(), TieredConfig::default()).await,
        Err(Error::Config(_))
    ));
    assert!(matches!(
        Cache::tiered(
            Cache::memory("x"),
            Cache::memory("y"),
            TieredConfig::default()
        )
        .await,
        Err(Error::Config(_))
    ));
}

/// The keys the race tests write.
const RACE_KEYS: [&str; 4] = ["race:0", "race:1", "race:2", "race:3"];

/// One writer's step `i` on `key`: every kind of change a tiered cache announces.
async fn race_write(cache: &Cache, key: &str, other: &str, value: &str, i: usize) {
    match i % 7 {
        0 | 1 => cache.set(key, value).await.unwrap(),
        2 => cache
            .put_many(&[(key, value), (other, value)])
            .await
            .unwrap(),
        3 => cache
            .set_with_tags(key, value, &["race"], Some(Duration::from_secs(60)))
            .await
            .unwrap(),
        4 => cache.del(key).await.unwrap(),
        5 => {
            cache.invalidate_tag("race").await.unwrap();
        }
        _ => cache.set_ex(key, value, 60).await.unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_leave_no_stale_l1_copy() {
    let Some(r) = test_support::redis("concurrent_writers_leave_no_stale_l1_copy").await else {
        return;
    };
    let a = tiered(&r, TieredConfig::default()).await;
    let b = tiered(&r, TieredConfig::default()).await;
    let truth = Cache::redis(&r.url, r.prefix.clone()).await.unwrap();
    for round in 0..6 {
        // Writers on both processes change the same few keys while readers on both keep
        // promoting L2 values into their L1s, so promotions race writes and invalidations.
        let stop = Arc::new(AtomicBool::new(false));
        let mut readers = Vec::new();
        for cache in [&a, &b, &a, &b] {
            let cache = cache.clone();
            let stop = Arc::clone(&stop);
            readers.push(tokio::spawn(async move {
                let mut i = 0_usize;
                while !stop.load(Ordering::Relaxed) {
                    if i.is_multiple_of(5) {
                        cache.many(&RACE_KEYS).await.unwrap();
                    } else {
                        cache.get(RACE_KEYS[i % RACE_KEYS.len()]).await.unwrap();
                    }
                    i += 1;
                    tokio::task::yield_now().await;
                }
            }));
        }
        let mut writers = Vec::new();
        for writer in 0..8_usize {
            let cache = if writer % 2 == 0 {
                a.clone()
            } else {
                b.clone()
            };
            writers.push(tokio::spawn(async move {
                for i in 0..60 {
                    let key = RACE_KEYS[(writer + i) % RACE_KEYS.len()];
                    let other = RACE_KEYS[(writer + i + 1) % RACE_KEYS.len()];
                    let value = format!("{round}:{writer}:{i}");
                    race_write(&cache, key, other, &value, writer + i).await;
                    // The writer's own read promotes too, right behind its write.
                    cache.get(key).await.unwrap();
                }
            }));
        }
        for task in writers {
            task.await.unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        for task in readers {
            task.await.unwrap();
        }

        // Every write is done and announced: each L1 comes to agree with L2, and keeps
        // agreeing (no stale copy comes back), served from L1 again.
        for key in RACE_KEYS {
            let expected = truth.get(key).await.unwrap();
            for (name, cache) in [("a", &a), ("b", &b)] {
                converges(cache, key, expected.as_deref()).await;
                let hits_before = stats(cache).l1_hits;
                for _ in 0..20 {
                    assert_eq!(
                        cache.get(key).await.unwrap(),
                        expected,
                        "round {round}: {name}'s {key} went stale again"
                    );
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                if expected.is_some() {
                    assert!(
                        stats(cache).l1_hits >= hits_before + 19,
                        "round {round}: {name} serves {key} from L1 once it is coherent"
                    );
                }
            }
        }
    }
    for cache in [&a, &b] {
        let s = stats(cache);
        assert!(s.promotions > 0 && s.l1_hits > 0, "L1 was in play: {s:?}");
    }
}

/// A read: when it started, what it returned, and which process made it.
type Observation = (Duration, i64, &'static str);

/// While counters climb on two processes, neither process ever reads a value older than what
/// L2 held [`BOUND`] earlier: an L1 copy is never stale for longer than that. (How stale reads
/// actually get is a figure of the cache benchmark.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l1_is_never_stale_past_the_propagation_bound() {
    let Some(r) = test_support::redis("l1_is_never_stale_past_the_propagation_bound").await else {
        return;
    };
    let a = tiered(&r, TieredConfig::default()).await;
    let b = tiered(&r, TieredConfig::default()).await;
    let started = Instant::now();
    // (when the increment returned, the value it made), and (when a read started, what it read).
    let written: Arc<std::sync::Mutex<Vec<(Duration, i64)>>> = Arc::default();
    let read: Arc<std::sync::Mutex<Vec<Observation>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for (name, cache) in [("a", &a), ("b", &b), ("a", &a), ("b", &b)] {
        let (cache, stop, read) = (cache.clone(), Arc::clone(&stop), Arc::clone(&read));
        readers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let at = started.elapsed();
                let value = cache
                    .get("counter")
                    .await
                    .unwrap()
                    .map_or(0, |v| v.parse::<i64>().unwrap());
                read.lock().unwrap().push((at, value, name));
                tokio::task::yield_now().await;
            }
        }));
    }
    let mut writers = Vec::new();
    for writer in 0..4 {
        let cache = if writer % 2 == 0 {
            a.clone()
        } else {
            b.clone()
        };
        let written = Arc::clone(&written);
        writers.push(tokio::spawn(async move {
            for i in 0..150 {
                let value = cache.increment("counter", 1).await.unwrap();
                written.lock().unwrap().push((started.elapsed(), value));
                if i % 10 == 0 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        }));
    }
    for task in writers {
        task.await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    stop.store(true, Ordering::Relaxed);
    for task in readers {
        task.await.unwrap();
    }

    let mut written = written.lock().unwrap().clone();
    written.sort();
    let read = read.lock().unwrap().clone();
    assert_eq!(written.iter().map(|w| w.1).max(), Some(600));
    let mut worst = Duration::ZERO;
    for &(at, value, name) in &read {
        // The newest value L2 held before the read started; the read may lag it only by as
        // long as it takes the invalidation to arrive.
        let newest_before = written
            .iter()
            .take_while(|(done, _)| *done <= at)
            .map(|(_, v)| *v)
            .max()
            .unwrap_or(0);
        if value < newest_before {
            // Stale: since when has L2 held something newer than what we read?
            let since = written
                .iter()
                .find(|(_, v)| *v > value)
                .map_or(Duration::ZERO, |(done, _)| at.saturating_sub(*done));
            worst = worst.max(since);
            assert!(
                since < BOUND,
                "{name} read {value} at {at:?}, {since:?} after L2 moved past it"
            );
        }
    }
    let (sa, sb) = (stats(&a), stats(&b));
    assert!(
        sa.l1_hits > 0 && sb.l1_hits > 0,
        "L1 was in play: {sa:?} {sb:?}"
    );
    // Once the writers stop, both end on the final value.
    converges(&a, "counter", Some("600")).await;
    converges(&b, "counter", Some("600")).await;
    eprintln!(
        "worst staleness observed: {worst:?} over {} reads",
        read.len()
    );
}

/// How long the slow proxy holds replies, and how long after `b` starts an operation `a` acts
/// (Redis has served `b`'s command by then; its reply is still held).
const SLOW_REPLIES: Duration = Duration::from_millis(150);
const HEAD_START: Duration = Duration::from_millis(40);

/// The races of the module docs of the tiered driver, staged deterministically: `b` reads or
/// writes a key; Redis serves it at once, but the reply reaches `b` late; meanwhile `a` changes
/// the key and `b` hears of it. The copy `b` then holds (read or written before `a`'s change)
/// must not stay in `b`'s L1, or `b` would serve it until the key's next change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_that_raced_a_newer_change_is_dropped() {
    let Some(r) = test_support::redis("a_copy_that_raced_a_newer_change_is_dropped").await else {
        return;
    };
    let proxy = SlowRepliesProxy::start(&r.url, SLOW_REPLIES).await;
    let a = tiered(&r, TieredConfig::default()).await;
    let b = {
        let l2 = Cache::redis(&proxy.url(), r.prefix.clone()).await.unwrap();
        Cache::tiered(Cache::memory(r.prefix.clone()), l2, TieredConfig::default())
            .await
            .unwrap()
    };

    // A read's promotion against a write.
    a.set("k", "old").await.unwrap();
    let read = tokio::spawn({
        let b = b.clone();
        async move { b.get("k").await.unwrap() }
    });
    tokio::time::sleep(HEAD_START).await;
    a.set("k", "new").await.unwrap();
    assert_eq!(
        read.await.unwrap().as_deref(),
        Some("old"),
        "the race was staged: b read before a wrote"
    );
    assert_eq!(stats(&b).promotions, 0, "the raced copy was not kept");
    assert_eq!(b.get("k").await.unwrap().as_deref(), Some("new"));

    // `many`'s promotions against a delete.
    a.put_many(&[("m1", "old"), ("m2", "old")]).await.unwrap();
    let read = tokio::spawn({
        let b = b.clone();
        async move { b.many(&["m1", "m2"]).await.unwrap() }
    });
    tokio::time::sleep(HEAD_START).await;
    a.del("m2").await.unwrap();
    assert_eq!(
        read.await.unwrap(),
        vec![Some("old".to_owned()), Some("old".to_owned())]
    );
    assert_eq!(
        b.many(&["m1", "m2"]).await.unwrap(),
        vec![Some("old".to_owned()), None]
    );

    // A promotion against a tag invalidation, and against a prefix flush.
    a.set_with_tags("t", "old", &["tag"], None).await.unwrap();
    a.set("p:1", "old").await.unwrap();
    let read = tokio::spawn({
        let b = b.clone();
        async move { (b.get("t").await.unwrap(), b.get("p:1").await.unwrap()) }
    });
    tokio::time::sleep(HEAD_START).await;
    a.invalidate_tag("tag").await.unwrap();
    tokio::time::sleep(SLOW_REPLIES).await;
    a.flush_prefix("p:").await.unwrap();
    assert_eq!(
        read.await.unwrap(),
        (Some("old".to_owned()), Some("old".to_owned()))
    );
    assert_eq!(b.get("t").await.unwrap(), None);
    assert_eq!(b.get("p:1").await.unwrap(), None);

    // A write-through against a later write by another process.
    let write = tokio::spawn({
        let b = b.clone();
        async move { b.set("w", "from b").await.unwrap() }
    });
    tokio::time::sleep(HEAD_START).await;
    a.set("w", "from a").await.unwrap();
    write.await.unwrap();
    assert_eq!(b.get("w").await.unwrap().as_deref(), Some("from a"));
    assert_eq!(a.get("w").await.unwrap().as_deref(), Some("from a"));

    // Without a race, b's L1 is in use: it serves what it promoted and what it wrote.
    b.set("quiet", "v").await.unwrap();
    let before = stats(&b).l1_hits;
    assert_eq!(b.get("quiet").await.unwrap().as_deref(), Some("v"));
    assert_eq!(b.get("k").await.unwrap().as_deref(), Some("new"));
    assert_eq!(stats(&b).l1_hits, before + 2);
}

/// A delete on one process evicts the other's L1 copy: its reads stop returning the value, and
/// never return it again. (How long that takes, p50 and p99, is measured by the cache benchmark.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_is_seen_by_the_other_process() {
    let Some(r) = test_support::redis("a_delete_is_seen_by_the_other_process").await else {
        return;
    };
    let a = tiered(&r, TieredConfig::default()).await;
    let b = tiered(&r, TieredConfig::default()).await;
    for i in 0..100 {
        let key = format!("d{i}");
        a.set(&key, "v").await.unwrap();
        hold_in_l1(&b, &key, "v").await;
        a.del(&key).await.unwrap();
        converges(&b, &key, None).await;
        for _ in 0..3 {
            assert_eq!(b.get(&key).await.unwrap(), None, "{key} came back");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remember_runs_once_across_two_tiered_caches() {
    let Some(r) = test_support::redis("remember_runs_once_across_two_tiered_caches").await else {
        return;
    };
    let a = tiered(&r, TieredConfig::default()).await;
    let b = tiered(&r, TieredConfig::default()).await;
    assert_eq!(
        remember_on_both(&a, &b).await,
        1,
        "once across both processes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_l2_connection_errors_then_recovers() {
    let Some(r) = test_support::redis("a_killed_l2_connection_errors_then_recovers").await else {
        return;
    };
    let a = tiered(&r, TieredConfig::default()).await;
    let b = tiered(&r, TieredConfig::default()).await;
    a.set("k", "v1").await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(b.get("k").await.unwrap().as_deref(), Some("v1"));

    let id = client_id(&mut a.redis_connection().unwrap()).await;
    kill_client(&mut r.connection().await, id).await;

    let first = a.set("k", "v2").await;
    assert!(
        first.is_err(),
        "the write on the dead connection fails: {first:?}"
    );
    until_ok(Duration::from_secs(2), async || a.set("k", "v2").await).await;
    assert_eq!(a.get("k").await.unwrap().as_deref(), Some("v2"));
    converges(&b, "k", Some("v2")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_timed_out_leaves_no_stale_copy() {
    let Some(r) = test_support::redis("a_write_that_timed_out_leaves_no_stale_copy").await else {
        return;
    };
    let proxy = SlowRepliesProxy::start(&r.url, Duration::ZERO).await;
    let a = tiered(&r, TieredConfig::default()).await;
    let timeout = Duration::from_millis(200);
    let b = {
        let options = RedisCacheOptions::new().timeout(timeout);
        let l2 = Cache::redis_with(&proxy.url(), r.prefix.clone(), options)
            .await
            .unwrap();
        Cache::tiered(Cache::memory(r.prefix.clone()), l2, TieredConfig::default())
            .await
            .unwrap()
    };
    let truth = Cache::redis(&r.url, r.prefix.clone()).await.unwrap();
    a.set("k", "v1").await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(b.get("k").await.unwrap().as_deref(), Some("v1"));
    assert_eq!(a.get("k").await.unwrap().as_deref(), Some("v1"));

    // Redis applies b's write, but the reply comes after b's timeout.
    proxy.set_delay(timeout + Duration::from_millis(150));
    let result = b.set("k", "v2").await;
    assert!(matches!(result, Err(Error::Timeout { .. })), "{result:?}");
    assert_eq!(truth.get("k").await.unwrap().as_deref(), Some("v2"));
    // b does not serve its old copy as if the write had not happened (reading L2 times out
    // too, while replies are slow) ...
    let read = b.get("k").await;
    assert!(!matches!(&read, Ok(Some(v)) if v == "v1"), "{read:?}");
    // ... and a heard of the change.
    converges(&a, "k", Some("v2")).await;

    proxy.set_delay(Duration::ZERO);
    tokio::time::sleep(Duration::from_millis(500)).await;
    converges(&b, "k", Some("v2")).await;
}

async fn pubsub_client_ids(r: &test_support::TestRedis) -> BTreeSet<i64> {
    let mut conn = r.connection().await;
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut conn)
        .await
        .unwrap();
    list.lines()
        .filter_map(|line| line.strip_prefix("id="))
        .filter_map(|rest| rest.split(' ').next()?.parse().ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_subscriber_comes_back_after_its_connection_is_killed() {
    let Some(r) =
        test_support::redis("the_subscriber_comes_back_after_its_connection_is_killed").await
    else {
        return;
    };
    let a = tiered(&r, TieredConfig::default()).await;
    let (b, subscriber) = {
        let _creating = CREATING.lock().await;
        let before = pubsub_client_ids(&r).await;
        let b = tiered_unlocked(&r, TieredConfig::default()).await;
        let new: Vec<i64> = pubsub_client_ids(&r)
            .await
            .difference(&before)
            .copied()
            .collect();
        assert_eq!(new.len(), 1, "one new subscriber connection: {new:?}");
        (b, new[0])
    };

    a.set("k", "v1").await.unwrap();
    hold_in_l1(&b, "k", "v1").await;

    kill_client(&mut r.connection().await, subscriber).await;

    // Written while b cannot hear: b must not keep serving v1 from its L1.
    a.set("k", "v2").await.unwrap();
    converges(&b, "k", Some("v2")).await;

    // b resubscribes on a new connection, and invalidations flow again.
    let started = Instant::now();
    loop {
        let ids = pubsub_client_ids(&r).await;
        if ids.iter().any(|id| *id > subscriber) && !ids.contains(&subscriber) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no new subscriber"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // L1 is in use again.
    hold_in_l1(&b, "k", "v2").await;
    a.del("k").await.unwrap();
    converges(&b, "k", None).await;
}

#[tokio::test]
async fn from_url_picks_the_driver() {
    let memory = Cache::from_url("memory://", "app").await.unwrap();
    assert_eq!(memory.driver(), CacheDriver::Memory);
    assert_eq!(memory.prefix(), "app");
    let bounded = Cache::from_url("memory://?max_entries=5", "app")
        .await
        .unwrap();
    assert_eq!(bounded.driver(), CacheDriver::Memory);
    for bad in [
        "memory://?max_entries=lots",
        "memory://?size=1",
        "memcached://x",
        "no-scheme",
    ] {
        assert!(
            matches!(Cache::from_url(bad, "app").await, Err(Error::Config(_))),
            "{bad}"
        );
    }

    let Some(r) = test_support::redis("from_url_picks_the_driver").await else {
        return;
    };
    let redis = Cache::from_url(&r.url, r.prefix.clone()).await.unwrap();
    assert_eq!(redis.driver(), CacheDriver::Redis);
    let url = format!("tiered+{}", r.url);
    let tiered = {
        let _creating = CREATING.lock().await;
        Cache::from_url(&url, r.prefix.clone()).await.unwrap()
    };
    assert_eq!(tiered.driver(), CacheDriver::Tiered);
    tiered.set("k", "v").await.unwrap();
    assert_eq!(redis.get("k").await.unwrap().as_deref(), Some("v"));
}

/// A tiered cache whose L2 (and so its invalidation subscriber) goes through `url` (a proxy),
/// with a per-call `timeout`.
async fn tiered_through(
    r: &test_support::TestRedis,
    url: &str,
    timeout: Duration,
    config: TieredConfig,
) -> Cache {
    let _creating = CREATING.lock().await;
    let options = RedisCacheOptions::new().timeout(timeout);
    let l2 = Cache::redis_with(url, r.prefix.clone(), options)
        .await
        .unwrap();
    Cache::tiered(Cache::memory(r.prefix.clone()), l2, config)
        .await
        .unwrap()
}

/// Gives `peer` a copy of `key` (holding `value`) in its L1: reads until a read is an L1 hit.
async fn hold_in_l1(peer: &Cache, key: &str, value: &str) {
    let started = Instant::now();
    loop {
        let hits = stats(peer).l1_hits;
        assert_eq!(peer.get(key).await.unwrap().as_deref(), Some(value));
        if stats(peer).l1_hits > hits {
            return;
        }
        assert!(
            started.elapsed() < BOUND,
            "{key} never reached the peer's L1"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Reads `key` on `peer` for `during` and checks that every read returns `expected`.
async fn stays(peer: &Cache, key: &str, expected: Option<&str>, during: Duration) {
    let started = Instant::now();
    while started.elapsed() < during {
        assert_eq!(
            peer.get(key).await.unwrap().as_deref(),
            expected,
            "{key} went stale again"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The connection of a writer dies in the middle of a write: right after the bytes of a plain
/// `SET` (where a write sent separately from its announcement would lose the announcement), or
/// before the write's reply comes back. Whatever L2 ends up holding, the peer converges to it:
/// a write never reaches L2 without its invalidation reaching the peers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_cut_off_mid_way_leaves_no_stale_peer() {
    let Some(r) = test_support::redis("a_write_cut_off_mid_way_leaves_no_stale_peer").await else {
        return;
    };
    let proxy = FaultProxy::start(&redis_addr(&r.url)).await.unwrap();
    let a = tiered_through(
        &r,
        &proxy.url(&r.url),
        Duration::from_millis(500),
        TieredConfig::default(),
    )
    .await;
    let b = tiered(&r, TieredConfig::default()).await;
    let truth = Cache::redis(&r.url, r.prefix.clone()).await.unwrap();
    for (round, direction) in [Direction::Upstream, Direction::Downstream]
        .into_iter()
        .enumerate()
    {
        let key = format!("cut{round}");
        until_ok(BOUND, async || a.set(&key, "v1").await).await;
        hold_in_l1(&b, &key, "v1").await;

        let fault = match direction {
            // Exactly the bytes of `SET {prefix}:cache:{key} v2`, then the connection closes.
            Direction::Upstream => {
                let set = redis::cmd("SET")
                    .arg(format!("{}:cache:{key}", r.prefix))
                    .arg("v2")
                    .get_packed_command();
                Fault::CutAfter(set.len() as u64)
            }
            // The request arrives whole; the connection closes before the reply gets back.
            _ => Fault::CutAfter(0),
        };
        proxy.set(direction, fault);
        let result = a.set(&key, "v2").await;
        proxy.heal();

        let held = truth.get(&key).await.unwrap();
        eprintln!("{direction:?} cut: the write returned {result:?}; L2 holds {held:?}");
        converges(&b, &key, held.as_deref()).await;
        stays(&b, &key, held.as_deref(), Duration::from_millis(300)).await;
    }
}

/// A peer's subscription goes silent (its connection stalls: nothing is lost, everything is late,
/// the socket stays open). Within the documented bound the peer stops serving its L1 copy of a key
/// another process changed meanwhile, and once the connection flows again it serves the new value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_cannot_hear_stops_serving_its_l1() {
    let Some(r) = test_support::redis("a_peer_that_cannot_hear_stops_serving_its_l1").await else {
        return;
    };
    let proxy = FaultProxy::start(&redis_addr(&r.url)).await.unwrap();
    let a = tiered(&r, TieredConfig::default()).await;
    let b = tiered_through(
        &r,
        &proxy.url(&r.url),
        Duration::from_millis(500),
        TieredConfig::default(),
    )
    .await;
    a.set("k", "v1").await.unwrap();
    hold_in_l1(&b, "k", "v1").await;

    proxy.set(Direction::Downstream, Fault::Stall);
    a.set("k", "v2").await.unwrap();
    let acknowledged = Instant::now();
    // While it cannot hear, b may serve v1 from L1 only within the bound; its L2 reads time out.
    let mut last_stale = None;
    while acknowledged.elapsed() < STALENESS_BOUND + Duration::from_secs(2) {
        if let Ok(Some(v)) = b.get("k").await
            && v == "v1"
        {
            last_stale = Some(acknowledged.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        last_stale.is_none_or(|at| at < STALENESS_BOUND + Duration::from_millis(500)),
        "b served v1 {last_stale:?} after v2 was acknowledged"
    );

    proxy.heal();
    converges(&b, "k", Some("v2")).await;
    stays(&b, "k", Some("v2"), Duration::from_millis(300)).await;
    hold_in_l1(&b, "k", "v2").await;
}

/// A peer's subscription connection is dropped and cannot come back for a while; another process
/// changes a key meanwhile (the announcement is lost for that peer). After it reconnects the peer
/// serves the new value, not its old L1 copy, and uses its L1 again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_whose_subscription_was_dropped_reads_fresh_after_reconnecting() {
    let Some(r) =
        test_support::redis("a_peer_whose_subscription_was_dropped_reads_fresh_after_reconnecting")
            .await
    else {
        return;
    };
    let proxy = FaultProxy::start(&redis_addr(&r.url)).await.unwrap();
    let a = tiered(&r, TieredConfig::default()).await;
    let b = tiered_through(
        &r,
        &proxy.url(&r.url),
        Duration::from_millis(500),
        TieredConfig::default(),
    )
    .await;
    a.set("k", "v1").await.unwrap();
    hold_in_l1(&b, "k", "v1").await;
    let accepted = proxy.accepted();

    proxy.refuse(true);
    proxy.drop_connections();
    a.set("k", "v2").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let read = b.get("k").await;
    assert!(
        !matches!(&read, Ok(Some(v)) if v == "v1"),
        "disconnected, b serves its old copy: {read:?}"
    );
    proxy.refuse(false);

    converges(&b, "k", Some("v2")).await;
    stays(&b, "k", Some("v2"), Duration::from_millis(300)).await;
    hold_in_l1(&b, "k", "v2").await;
    assert!(proxy.accepted() > accepted, "b reconnected");
    // And invalidations reach it again.
    a.set("k", "v3").await.unwrap();
    converges(&b, "k", Some("v3")).await;
}

/// L1 keeps no copy longer than `l1_max_ttl`, values without a TTL included: a change L1 was
/// not told about (here by a plain Redis cache, which does not announce) is read once the cap
/// runs out, and a long L2 TTL is capped the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l1_copies_live_at_most_l1_max_ttl() {
    let Some(r) = test_support::redis("l1_copies_live_at_most_l1_max_ttl").await else {
        return;
    };
    let cap = Duration::from_secs(1);
    let config = TieredConfig {
        l1_max_ttl: cap,
        ..TieredConfig::default()
    };
    let cache = tiered(&r, config).await;
    let silent = Cache::redis(&r.url, r.prefix.clone()).await.unwrap();
    for (key, ttl) in [("forever", None), ("long", Some(Duration::from_secs(3600)))] {
        silent.put(key, "v1", ttl).await.unwrap();
        hold_in_l1(&cache, key, "v1").await;
        silent.put(key, "v2", ttl).await.unwrap();
        // Unannounced, the change is not seen at once: the copy is in L1 ...
        assert_eq!(cache.get(key).await.unwrap().as_deref(), Some("v1"));
        // ... until the cap runs out (without it, "forever" would stay v1 for good, and "long"
        // for a quarter of an hour).
        converges(&cache, key, Some("v2")).await;
        stays(&cache, key, Some("v2"), Duration::from_millis(100)).await;
    }
    // A zero cap is refused.
    let l2 = Cache::redis(&r.url, r.prefix.clone()).await.unwrap();
    let zero = TieredConfig {
        l1_max_ttl: Duration::ZERO,
        ..TieredConfig::default()
    };
    assert!(matches!(
        Cache::tiered(Cache::memory("x"), l2, zero).await,
        Err(Error::Config(_))
    ));
}
