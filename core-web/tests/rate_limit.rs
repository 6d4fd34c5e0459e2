//! Rate limits on the cache: exact counts under concurrency on the memory cache and on Redis
//! (two caches on one prefix share a budget, like two processes), leased blocks that grow from
//! one and keep the total within the limit with few round trips, spent keys refused without the
//! cache, the headers, the window reset, key safety, the layer through a router, and what happens
//! when Redis is down.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::get;
use common::{assert_error, send};
use core_db::Cache;
use core_db::cache::RedisCacheOptions;
use core_web::config::HttpConfig;
use core_web::rate_limit::{Decision, LEASE_DIVISOR, Policy, RateLimitLayer, RateLimiter};
use core_web::{ApiResponse, AppError};
use futures_util::future::join_all;
use sha2::{Digest, Sha256};
use test_support::proxy::{Direction, Fault, FaultProxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Sleeps past the next window boundary when fewer than `margin` remain in the current window,
/// so a burst of checks lands in one window.
async fn clear_of_boundary(window: Duration, margin: Duration) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis();
    let w = window.as_millis();
    let left = Duration::from_millis(u64::try_from(w - now % w).expect("small"));
    if left < margin {
        tokio::time::sleep(left + Duration::from_millis(20)).await;
    }
}

/// Sleeps until just after the start of a fresh window.
async fn start_of_window(window: Duration) {
    clear_of_boundary(window, window + Duration::from_secs(1)).await;
}

fn limiter(cache: &Cache, limit: u64, window_secs: u64) -> RateLimiter {
    named_limiter(cache, "test", limit, window_secs)
}

fn named_limiter(cache: &Cache, policy: &str, limit: u64, window_secs: u64) -> RateLimiter {
    RateLimiter::new(
        cache.clone(),
        Policy::new(policy, limit, Duration::from_secs(window_secs)).expect("policy"),
    )
}

/// The start of the current window, Unix seconds.
fn window_start(window: Duration) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    now - now % window.as_secs()
}

/// Polls the clock until the window after `current` has begun (at most a few seconds).
async fn next_window(window: Duration, current: u64) -> u64 {
    let deadline = Instant::now() + window + Duration::from_secs(2);
    loop {
        let start = window_start(window);
        if start != current {
            return start;
        }
        assert!(Instant::now() < deadline, "the window never changed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The documented counter name: `rl:{policy}:{window start}:{128 bits of SHA-256 in hex}`.
fn counter_key(policy: &str, window_start: u64, key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("rl:{policy}:{window_start}:{hex}")
}

/// The shared counter's value (0 when it does not exist).
async fn counter_value(cache: &Cache, counter: &str) -> u64 {
    cache
        .get(counter)
        .await
        .expect("get")
        .map_or(0, |v| v.parse().expect("an integer"))
}

/// The largest block a limiter leases for `limit`.
fn block_cap(limit: u64) -> u64 {
    (limit / LEASE_DIVISOR).max(1)
}

// ---------------------------------------------------------------------------------------------
// The behaviour every cache driver must show, written once.
// ---------------------------------------------------------------------------------------------

/// 50 concurrent checks, spread over `caches` (each standing for one process), against a limit
/// of 20: exactly 20 are allowed and the remainders count down 19..0.
async fn exact_count_under_concurrency(caches: &[Cache]) {
    clear_of_boundary(Duration::from_secs(60), Duration::from_secs(5)).await;
    let limiters: Vec<RateLimiter> = caches.iter().map(|c| limiter(c, 20, 60)).collect();
    let checks = (0..50).map(|i| {
        let limiter = limiters[i % limiters.len()].clone();
        tokio::spawn(async move { limiter.check("client-1").await.expect("check") })
    });
    let decisions: Vec<Decision> = join_all(checks)
        .await
        .into_iter()
        .map(|r| r.expect("task"))
        .collect();
    let allowed = decisions.iter().filter(|d| d.allowed).count();
    assert_eq!(allowed, 20, "exactly the limit is allowed");
    let mut remaining: Vec<u64> = decisions
        .iter()
        .filter(|d| d.allowed)
        .map(|d| d.remaining)
        .collect();
    remaining.sort_unstable();
    assert_eq!(remaining, (0..20).collect::<Vec<u64>>());
    assert!(
        decisions
            .iter()
            .filter(|d| !d.allowed)
            .all(|d| d.remaining == 0)
    );
    // Another key has its own budget.
    let other = limiters[0].check("client-2").await.expect("check");
    assert!(other.allowed);
    assert_eq!(other.remaining, 19);
}

/// A short window: the budget is spent, refused until the window ends, whole again after.
async fn the_window_resets(cache: &Cache) {
    let limiter = limiter(cache, 2, 1);
    start_of_window(Duration::from_secs(1)).await;
    let first = limiter.check("k").await.expect("check");
    let second = limiter.check("k").await.expect("check");
    let third = limiter.check("k").await.expect("check");
    assert_eq!(
        (first.allowed, second.allowed, third.allowed),
        (true, true, false)
    );
    assert_eq!(
        (first.remaining, second.remaining, third.remaining),
        (1, 0, 0)
    );
    assert!(third.reset <= Duration::from_secs(1) && !third.reset.is_zero());
    assert_eq!(third.reset_secs(), 1);
    tokio::time::sleep(third.reset + Duration::from_millis(30)).await;
    let next = limiter.check("k").await.expect("check");
    assert!(next.allowed, "a new window has the whole budget");
    assert_eq!(next.remaining, 1);
}

/// Keys with `:`, glob characters or nothing at all never share a budget with another key.
async fn keys_cannot_collide(cache: &Cache) {
    clear_of_boundary(Duration::from_secs(60), Duration::from_secs(2)).await;
    let limiter = limiter(cache, 1, 60);
    let keys = [
        "a:b", "a", "a:*", "a*", "*", "a?", "[a]", "a\\b", "", "clé ✓",
    ];
    for key in keys {
        assert!(limiter.check(key).await.expect("check").allowed, "{key:?}");
    }
    for key in keys {
        assert!(!limiter.check(key).await.expect("check").allowed, "{key:?}");
    }
    // Another policy's counters are separate.
    let other = RateLimiter::new(cache.clone(), Policy::per_minute(1));
    assert!(other.check("a:b").await.expect("check").allowed);
}

macro_rules! for_each_driver {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let cache = core_db::Cache::memory("rl-test");
                    super::$case(std::slice::from_ref(&cache)).await;
                }
            )*
        }
        mod redis_shared {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(r) = test_support::redis(concat!("rate_limit::redis::", stringify!($case))).await else {
                        return;
                    };
                    // Two caches on one prefix: two server processes.
                    let a = core_db::Cache::redis(&r.url, r.prefix.clone()).await.expect("redis");
                    let b = core_db::Cache::redis(&r.url, r.prefix.clone()).await.expect("redis");
                    super::$case(&[a, b]).await;
                }
            )*
        }
    };
}

async fn concurrency(caches: &[Cache]) {
    exact_count_under_concurrency(caches).await;
}

async fn window_reset(caches: &[Cache]) {
    the_window_resets(&caches[0]).await;
}

async fn key_safety(caches: &[Cache]) {
    keys_cannot_collide(&caches[0]).await;
    if caches.len() > 1 {
        // The second process sees the first one's counts.
        let limiter = limiter(&caches[1], 1, 60);
        assert!(!limiter.check("a:b").await.expect("check").allowed);
    }
}

/// Sequential requests for one key: every allowed request gets the next ticket (`remaining` counts
/// down by one), and the shared counter moves in blocks 1, 2, 4, … capped at `limit / 64`: it
/// equals the requests for the first, and jumps ahead of them by whole blocks after.
async fn blocks_grow_from_one(cache: &Cache) {
    clear_of_boundary(Duration::from_secs(60), Duration::from_secs(10)).await;
    let window = window_start(Duration::from_secs(60));

    // Below 128 blocks are single tickets: the counter is the number of requests.
    let exact = named_limiter(cache, "small", 100, 60);
    let counter = counter_key("small", window, "k");
    for k in 1..=30 {
        let decision = exact.check("k").await.expect("check");
        assert!(decision.allowed);
        assert_eq!(decision.remaining, 100 - k);
        assert_eq!(counter_value(cache, &counter).await, k, "exact after {k}");
    }

    let limit = 6_400;
    let cap = block_cap(limit);
    assert_eq!(cap, 100);
    let hot = named_limiter(cache, "grow", limit, 60);
    let counter = counter_key("grow", window, "hot");
    let (mut leased, mut block, mut blocks) = (0, 1, Vec::new());
    for k in 1..=500 {
        let decision = hot.check("hot").await.expect("check");
        assert!(decision.allowed);
        assert_eq!(decision.remaining, limit - k, "ticket {k}");
        if k > leased {
            leased += block;
            blocks.push(block);
            block = (block * 2).min(cap);
        }
        assert_eq!(
            counter_value(cache, &counter).await,
            leased,
            "after {k} requests"
        );
    }
    assert_eq!(blocks, [1, 2, 4, 8, 16, 32, 64, 100, 100, 100, 100]);
    assert_eq!(window_start(Duration::from_secs(60)), window, "one window");
}

/// Once the counter has reached the limit, the key is refused from memory: refused requests do
/// not count, and even with the counter deleted behind the limiter's back it stays refused and
/// the cache is not asked (the counter is not recreated). Another limiter, standing for another
/// process, does ask.
async fn spent_keys_stay_refused_without_the_cache(cache: &Cache) {
    clear_of_boundary(Duration::from_secs(60), Duration::from_secs(5)).await;
    let window = window_start(Duration::from_secs(60));
    let limiter = named_limiter(cache, "spent", 3, 60);
    let counter = counter_key("spent", window, "c");
    for _ in 0..3 {
        assert!(limiter.check("c").await.expect("check").allowed);
    }
    for _ in 0..5 {
        let refused = limiter.check("c").await.expect("check");
        assert!(!refused.allowed);
        assert_eq!(refused.remaining, 0);
    }
    assert_eq!(
        counter_value(cache, &counter).await,
        3,
        "refusals not counted"
    );

    cache.del(&counter).await.expect("del");
    for _ in 0..3 {
        assert!(!limiter.check("c").await.expect("check").allowed);
    }
    assert_eq!(cache.get(&counter).await.expect("get"), None, "not asked");
    // The clones share the knowledge.
    assert!(!limiter.clone().check("c").await.expect("check").allowed);

    let other_process = named_limiter(cache, "spent", 3, 60);
    assert!(other_process.check("c").await.expect("check").allowed);
    assert_eq!(counter_value(cache, &counter).await, 1);
    assert_eq!(window_start(Duration::from_secs(60)), window, "one window");
}

/// A key with leased tickets and a spent key in one 1-second window; in the next window both
/// start from zero: first block of one, a whole budget.
async fn a_new_window_starts_from_zero(cache: &Cache) {
    let second = Duration::from_secs(1);
    let limit = 6_400;
    let hot = RateLimiter::new(
        cache.clone(),
        Policy::new("t", limit, second).expect("policy"),
    );
    let small = RateLimiter::new(cache.clone(), Policy::new("s", 1, second).expect("policy"));
    start_of_window(second).await;
    let first = window_start(second);
    for k in 1..=20 {
        assert_eq!(hot.check("hot").await.expect("check").remaining, limit - k);
    }
    assert!(small.check("s").await.expect("check").allowed);
    assert!(!small.check("s").await.expect("check").allowed);
    assert_eq!(
        counter_value(cache, &counter_key("t", first, "hot")).await,
        31,
        "blocks 1, 2, 4, 8, 16"
    );

    let next = next_window(second, first).await;
    let decision = hot.check("hot").await.expect("check");
    assert!(decision.allowed);
    assert_eq!(decision.remaining, limit - 1, "the count starts again");
    let counter = counter_key("t", next, "hot");
    assert_eq!(
        counter_value(cache, &counter).await,
        1,
        "first block of one"
    );
    hot.check("hot").await.expect("check");
    assert_eq!(counter_value(cache, &counter).await, 3, "then two");
    assert!(
        small.check("s").await.expect("check").allowed,
        "no longer spent"
    );
}

async fn blocks_grow(caches: &[Cache]) {
    blocks_grow_from_one(&caches[0]).await;
}

async fn spent_keys(caches: &[Cache]) {
    spent_keys_stay_refused_without_the_cache(&caches[0]).await;
}

async fn new_window(caches: &[Cache]) {
    a_new_window_starts_from_zero(&caches[0]).await;
}

for_each_driver!(
    concurrency,
    window_reset,
    key_safety,
    blocks_grow,
    spent_keys,
    new_window
);

// ---------------------------------------------------------------------------------------------
// Leases across processes, round trips and cache errors (Redis)
// ---------------------------------------------------------------------------------------------

/// A TCP relay to Redis that counts how many times `needle` appears in what clients send: with a
/// needle naming one family of keys, the commands (round trips) that touch them.
struct CountingRelay {
    addr: SocketAddr,
    seen: Arc<AtomicUsize>,
    accept: JoinHandle<()>,
}

impl CountingRelay {
    async fn start(upstream: String, needle: &'static [u8]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&seen);
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                tokio::spawn(relay(client, server, needle, Arc::clone(&counter)));
            }
        });
        Self { addr, seen, accept }
    }

    /// `url` (`redis://[user@]host:port[/db]`) pointed at the relay.
    fn url(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").expect("a URL");
        let end = rest.find('/').unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        match authority.rsplit_once('@') {
            Some((user, _)) => format!("{scheme}://{user}@{}{path}", self.addr),
            None => format!("{scheme}://{}{path}", self.addr),
        }
    }

    fn seen(&self) -> usize {
        self.seen.load(Ordering::SeqCst)
    }
}

impl Drop for CountingRelay {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn relay(client: TcpStream, server: TcpStream, needle: &[u8], seen: Arc<AtomicUsize>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let down = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
    });
    // What was read, less what was already searched except its last `needle.len() - 1` bytes
    // (too short to hold a whole needle, long enough for one split across reads).
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0; 16 * 1024];
    loop {
        let n = match client_read.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        let hits = pending
            .windows(needle.len())
            .filter(|w| *w == needle)
            .count();
        seen.fetch_add(hits, Ordering::SeqCst);
        pending.drain(..pending.len().saturating_sub(needle.len() - 1));
        if server_write.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    down.abort();
}

/// Two processes (two caches on one prefix, each with its own limiter) hammer one key with more
/// requests than its limit: no more than the limit is allowed, less than one block of it is left
/// unused, and the cache sees a few dozen claims instead of one increment per request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_the_budget_with_few_round_trips() {
    let Some(r) = test_support::redis("two_processes_share_the_budget").await else {
        return;
    };
    let upstream = r.url.trim_start_matches("redis://");
    let upstream = upstream[upstream.rfind('@').map_or(0, |i| i + 1)..]
        .split('/')
        .next()
        .expect("host:port")
        .to_owned();
    let relay = CountingRelay::start(upstream, b":rl:hot:").await;
    let a = Cache::redis(&relay.url(&r.url), r.prefix.clone())
        .await
        .expect("redis");
    let b = Cache::redis(&relay.url(&r.url), r.prefix.clone())
        .await
        .expect("redis");
    let limit: u64 = 5_000;
    let cap = block_cap(limit);
    const WORKERS: usize = 16;
    const EACH: usize = 250;
    let requests = 2 * WORKERS * EACH;

    clear_of_boundary(Duration::from_secs(60), Duration::from_secs(15)).await;
    let window = window_start(Duration::from_secs(60));
    let processes = [
        named_limiter(&a, "hot", limit, 60),
        named_limiter(&b, "hot", limit, 60),
    ];
    let workers = (0..2 * WORKERS).map(|i| {
        let limiter = processes[i % 2].clone();
        tokio::spawn(async move {
            let mut allowed = 0_u64;
            for _ in 0..EACH {
                if limiter.check("client").await.expect("check").allowed {
                    allowed += 1;
                }
            }
            allowed
        })
    });
    let allowed: u64 = join_all(workers)
        .await
        .into_iter()
        .map(|r| r.expect("task"))
        .sum();
    assert_eq!(window_start(Duration::from_secs(60)), window, "one window");

    assert!(allowed <= limit, "{allowed} allowed, limit {limit}");
    assert!(
        allowed >= limit - cap,
        "{allowed} allowed: less than one block ({cap}) may be left unused"
    );
    let trips = u64::try_from(relay.seen()).expect("small");
    // Read past the relay, so as not to count the read.
    let direct = Cache::redis(&r.url, r.prefix.clone()).await.expect("redis");
    let counter = counter_value(&direct, &counter_key("hot", window, "client")).await;
    assert!(
        counter >= allowed && counter < limit + 2 * cap,
        "counter {counter}: refusals are not counted, each process overshoots by a block at most"
    );
    // Per process seven growing blocks (1 … 64), then blocks of `cap`; and one resend per
    // connection if Redis had to load the script.
    assert!(
        trips <= 2 * 7 + counter / cap + 2,
        "{trips} claims for a counter of {counter}"
    );
    assert!(
        trips * 50 <= u64::try_from(requests).expect("small"),
        "{trips} round trips for {requests} requests"
    );
}

/// A claim that fails returns the cache's error, to the request that made it and to those that
/// waited for it, and leaves the lease whole: once the cache is back, requests are counted again
/// with tickets never handed out before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_claim_returns_the_error_and_the_next_works() {
    let Some(r) = test_support::redis("a_failed_claim_returns_the_error").await else {
        return;
    };
    let upstream = r.url.trim_start_matches("redis://").trim_end_matches('/');
    let proxy = FaultProxy::start(upstream).await.expect("proxy");
    let cache = Cache::redis_with(
        &proxy.url(&r.url),
        r.prefix.clone(),
        RedisCacheOptions::new().timeout(Duration::from_millis(300)),
    )
    .await
    .expect("redis through the proxy");
    clear_of_boundary(Duration::from_secs(60), Duration::from_secs(15)).await;
    let window = window_start(Duration::from_secs(60));
    let limit = 6_400;
    let limiter = named_limiter(&cache, "t", limit, 60);
    let first = limiter.check("c").await.expect("check");
    assert_eq!(first.remaining, limit - 1, "ticket 1, from a block of one");

    // The next request needs a block: it fails, and so do those waiting for it.
    proxy.set(Direction::Both, Fault::Stall);
    let stalled = (0..4).map(|_| {
        let limiter = limiter.clone();
        tokio::spawn(async move { limiter.check("c").await })
    });
    for result in join_all(stalled).await {
        let err = result.expect("task").expect_err("the cache is stalled");
        assert!(!err.to_string().is_empty());
    }
    proxy.heal();

    let mut remaining = Vec::new();
    for _ in 0..10 {
        let decision = limiter.check("c").await.expect("the cache is back");
        assert!(decision.allowed);
        remaining.push(decision.remaining);
    }
    assert!(
        remaining.windows(2).all(|w| w[1] < w[0]) && remaining[0] < limit - 1,
        "each ticket once: {remaining:?}"
    );
    let direct = Cache::redis(&r.url, r.prefix.clone()).await.expect("redis");
    let counter = counter_value(&direct, &counter_key("t", window, "c")).await;
    assert!(
        counter >= limit - remaining[9],
        "every ticket handed out came from the counter ({counter}): {remaining:?}"
    );
    assert_eq!(window_start(Duration::from_secs(60)), window, "one window");
}

#[tokio::test]
async fn redis_counters_hold_no_key_text_and_expire() {
    let Some(r) = test_support::redis("redis_counters_hold_no_key_text_and_expire").await else {
        return;
    };
    let cache = Cache::redis(&r.url, r.prefix.clone()).await.expect("redis");
    let limiter = limiter(&cache, 5, 60);
    limiter.check("frk_secret-token").await.expect("check");
    let keys = r.keys().await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(!keys[0].contains("secret"), "{keys:?}");
    assert!(keys[0].contains(":rl:test:"), "{keys:?}");
    let mut conn = r.connection().await;
    let ttl: i64 = ::redis::cmd("PTTL")
        .arg(&keys[0])
        .query_async(&mut conn)
        .await
        .expect("PTTL");
    assert!(
        ttl > 0 && ttl <= 61_000,
        "the counter ends with its window (plus a second): {ttl} ms"
    );
}

// ---------------------------------------------------------------------------------------------
// Headers and errors
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn decisions_render_the_draft_headers() {
    clear_of_boundary(Duration::from_secs(60), Duration::from_secs(2)).await;
    let cache = Cache::memory("rl-headers");
    let limiter = RateLimiter::new(
        cache,
        Policy::new("jobs", 3, Duration::from_secs(60)).expect("policy"),
    );
    let decision = limiter.check("c").await.expect("check");
    let headers = decision.headers();
    assert_eq!(headers["ratelimit-policy"], "\"jobs\";q=3;w=60");
    let t = decision.reset_secs();
    assert!((1..=60).contains(&t), "{t}");
    assert_eq!(headers["ratelimit"], format!("\"jobs\";r=2;t={t}").as_str());

    limiter.check("c").await.expect("check");
    limiter.check("c").await.expect("check");
    let refused = limiter.check("c").await.expect("check");
    assert!(!refused.allowed);
    let t = refused.reset_secs();
    let err = refused.clone().into_error();
    assert_eq!(err.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(err.error_code(), "RATE_LIMITED");
    let response = axum::response::IntoResponse::into_response(err);
    assert_eq!(response.headers()["retry-after"], t.to_string().as_str());
    assert_eq!(
        response.headers()["ratelimit"],
        format!("\"jobs\";r=0;t={t}").as_str()
    );
    assert_eq!(response.headers()["ratelimit-policy"], "\"jobs\";q=3;w=60");
    assert_eq!(
        response.headers().get_all("retry-after").iter().count(),
        1,
        "one Retry-After"
    );
    let coded = refused.into_error_with_code("RFA_REQUEST_RATE_LIMITED");
    assert_eq!(coded.error_code(), "RFA_REQUEST_RATE_LIMITED");
}

#[test]
fn policies_are_checked() {
    assert!(Policy::new("ok-name_1.x", 0, Duration::from_secs(1)).is_ok());
    for (name, window) in [
        ("", Duration::from_secs(60)),
        ("has space", Duration::from_secs(60)),
        ("quote\"", Duration::from_secs(60)),
        ("a:b", Duration::from_secs(60)),
        (&*"x".repeat(65), Duration::from_secs(60)),
        ("ok", Duration::ZERO),
        ("ok", Duration::from_millis(1500)),
        ("ok", Duration::from_secs(86_401)),
    ] {
        let err = Policy::new(name, 1, window).expect_err(name);
        assert!(
            err.to_string().contains("invalid rate-limit policy"),
            "{err}"
        );
    }
    let p = Policy::per_second(5);
    assert_eq!(
        (p.name(), p.limit(), p.window()),
        ("default", 5, Duration::from_secs(1))
    );
}

// ---------------------------------------------------------------------------------------------
// The layer
// ---------------------------------------------------------------------------------------------

fn client_key(req: &Request<Body>) -> Option<String> {
    req.headers()
        .get("x-client")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn limited_app<F>(layer: RateLimitLayer<F>) -> Router
where
    F: Fn(&Request<Body>) -> Option<String> + Send + Sync + 'static,
{
    core_web::middleware::stack(
        Router::new()
            .route("/v1/jobs", get(|| async { ApiResponse::success("ok", "") }))
            .route(
                "/v1/fail",
                get(|| async { Err::<ApiResponse<()>, _>(AppError::NotFound("none".into())) }),
            )
            .layer(layer),
        &HttpConfig::default(),
    )
}

fn req(uri: &str, client: Option<&str>, accept: Option<&str>) -> Request<Body> {
    let mut r = Request::get(uri);
    if let Some(client) = client {
        r = r.header("x-client", client);
    }
    if let Some(accept) = accept {
        r = r.header(header::ACCEPT, accept);
    }
    r.body(Body::empty()).expect("request")
}

#[tokio::test]
async fn the_layer_counts_adds_headers_and_refuses() {
    clear_of_boundary(Duration::from_secs(60), Duration::from_secs(2)).await;
    let limiter = RateLimiter::new(Cache::memory("rl-layer"), Policy::per_minute(3));
    let app = limited_app(RateLimitLayer::new(limiter, client_key));

    let ok = send(&app, req("/v1/jobs", Some("c1"), None)).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.headers["ratelimit-policy"], "\"default\";q=3;w=60");
    let r = ok.headers["ratelimit"].to_str().expect("ascii");
    assert!(r.starts_with("\"default\";r=2;t="), "{r}");
    // Error responses the handler gives also carry the headers, and count.
    let failed = send(&app, req("/v1/fail", Some("c1"), None)).await;
    assert_error(&failed, 404, "NOT_FOUND");
    assert!(
        failed.headers["ratelimit"]
            .to_str()
            .expect("ascii")
            .starts_with("\"default\";r=1;t=")
    );
    send(&app, req("/v1/jobs", Some("c1"), None)).await;
    let refused = send(&app, req("/v1/jobs", Some("c1"), None)).await;
    assert_error(&refused, 429, "RATE_LIMITED");
    let retry: u64 = refused.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry));
    assert_eq!(
        refused.headers["ratelimit"],
        format!("\"default\";r=0;t={retry}").as_str()
    );
    assert!(refused.headers.contains_key("ratelimit-policy"));

    // Problem details for a client that asks for them, headers included.
    let res = tower::ServiceExt::oneshot(
        app.clone(),
        req("/v1/jobs", Some("c1"), Some("application/problem+json")),
    )
    .await
    .expect("response");
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert!(res.headers().contains_key("retry-after") && res.headers().contains_key("ratelimit"));

    // Another client has its own budget; requests without a key are not limited.
    let other = send(&app, req("/v1/jobs", Some("c2"), None)).await;
    assert_eq!(other.status, StatusCode::OK);
    for _ in 0..5 {
        let anonymous = send(&app, req("/v1/jobs", None, None)).await;
        assert_eq!(anonymous.status, StatusCode::OK);
        assert!(!anonymous.headers.contains_key("ratelimit"));
    }
}

#[tokio::test]
async fn the_layer_uses_the_applications_code() {
    let limiter = RateLimiter::new(Cache::memory("rl-code"), Policy::per_minute(0));
    let app = limited_app(
        RateLimitLayer::new(limiter, client_key).error_code("RFA_REQUEST_RATE_LIMITED"),
    );
    let refused = send(&app, req("/v1/jobs", Some("c1"), None)).await;
    assert_error(&refused, 429, "RFA_REQUEST_RATE_LIMITED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_the_layer_fails_open_or_closed_as_configured() {
    let Some(r) = test_support::redis("with_redis_down_the_layer_fails_open").await else {
        return;
    };
    let upstream = r.url.trim_start_matches("redis://").trim_end_matches('/');
    let proxy = FaultProxy::start(upstream).await.expect("proxy");
    let cache = Cache::redis_with(
        &proxy.url(&r.url),
        r.prefix.clone(),
        RedisCacheOptions::new().timeout(Duration::from_millis(300)),
    )
    .await
    .expect("redis through the proxy");
    clear_of_boundary(Duration::from_secs(60), Duration::from_secs(10)).await;
    let limiter = RateLimiter::new(cache, Policy::per_minute(1));
    let open = limited_app(RateLimitLayer::new(limiter.clone(), client_key));
    let closed = limited_app(RateLimitLayer::new(limiter, client_key).fail_closed());

    // Healthy: counted, and c1 is spent.
    let first = send(&open, req("/v1/jobs", Some("c1"), None)).await;
    assert!(first.headers.contains_key("ratelimit"));
    let spent = send(&open, req("/v1/jobs", Some("c1"), None)).await;
    assert_error(&spent, 429, "RATE_LIMITED");

    proxy.set(Direction::Both, Fault::Stall);
    // A key known to be spent in this window is refused without the cache.
    let still = send(&open, req("/v1/jobs", Some("c1"), None)).await;
    assert_error(&still, 429, "RATE_LIMITED");
    for _ in 0..3 {
        let through = send(&open, req("/v1/jobs", Some("c2"), None)).await;
        assert_eq!(through.status, StatusCode::OK, "fails open");
        assert!(!through.headers.contains_key("ratelimit"));
    }
    let refused = send(&closed, req("/v1/jobs", Some("c2"), None)).await;
    assert_error(&refused, 503, "SERVICE_UNAVAILABLE");
    proxy.heal();
}
