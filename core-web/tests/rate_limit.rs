//! Rate limits on the cache: exact counts under concurrency on the memory cache and on Redis
//! (two caches on one prefix share a budget, like two processes), the headers, the window reset,
//! key safety, the layer through a router, and what happens when Redis is down.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::get;
use common::{assert_error, send};
use core_db::Cache;
use core_db::cache::RedisCacheOptions;
use core_web::config::HttpConfig;
use core_web::rate_limit::{Decision, Policy, RateLimitLayer, RateLimiter};
use core_web::{ApiResponse, AppError};
use futures_util::future::join_all;
use test_support::proxy::{Direction, Fault, FaultProxy};

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
    RateLimiter::new(
        cache.clone(),
        Policy::new("test", limit, Duration::from_secs(window_secs)).expect("policy"),
    )
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

for_each_driver!(concurrency, window_reset, key_safety);

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
    let limiter = RateLimiter::new(cache, Policy::per_minute(1));
    let open = limited_app(RateLimitLayer::new(limiter.clone(), client_key));
    let closed = limited_app(RateLimitLayer::new(limiter, client_key).fail_closed());

    // Healthy: counted.
    let first = send(&open, req("/v1/jobs", Some("c1"), None)).await;
    assert!(first.headers.contains_key("ratelimit"));

    proxy.set(Direction::Both, Fault::Stall);
    for _ in 0..3 {
        let through = send(&open, req("/v1/jobs", Some("c1"), None)).await;
        assert_eq!(through.status, StatusCode::OK, "fails open");
        assert!(!through.headers.contains_key("ratelimit"));
    }
    let refused = send(&closed, req("/v1/jobs", Some("c1"), None)).await;
    assert_error(&refused, 503, "SERVICE_UNAVAILABLE");
    proxy.heal();
}
