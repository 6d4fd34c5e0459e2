//! Rate limits on the shared cache: fixed windows counted with [`Cache::increment_ex`], so every
//! server process that uses the same Redis (and prefix) spends one budget per key.
//!
//! A [`Policy`] allows `limit` requests per `window`. Windows are aligned to the wall clock
//! (a 60 s window runs from one whole minute to the next), so processes agree on them without
//! talking to each other; [`RateLimiter::check`] counts one request and returns a [`Decision`].
//! The decision renders the IETF headers (draft-ietf-httpapi-ratelimit-headers, structured-field
//! form):
//!
//! ```text
//! RateLimit-Policy: "default";q=600;w=60
//! RateLimit: "default";r=599;t=42
//! ```
//!
//! and, when the request is over the limit, becomes a 429 with those headers and `Retry-After`
//! ([`Decision::into_error`]). [`RateLimitLayer`] does all of it for a router, from a closure that
//! picks each request's key.
//!
//! ```
//! use axum::{Router, body::Body, http::Request, routing::get};
//! use core_db::Cache;
//! use core_web::rate_limit::{Policy, RateLimitLayer, RateLimiter};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let limiter = RateLimiter::new(Cache::memory("app"), Policy::per_minute(2));
//! let app = Router::new()
//!     .route("/v1/jobs", get(|| async { "jobs" }))
//!     .layer(RateLimitLayer::new(limiter, |req: &Request<Body>| {
//!         // Usually the authenticated client's id, from an extension set by the auth layer.
//!         req.headers().get("x-client").and_then(|v| v.to_str().ok()).map(str::to_owned)
//!     }));
//! let request = || Request::get("/v1/jobs").header("x-client", "c1").body(Body::empty()).unwrap();
//! let first = app.clone().oneshot(request()).await.unwrap();
//! assert_eq!(first.headers()["ratelimit-policy"], "\"default\";q=2;w=60");
//! app.clone().oneshot(request()).await.unwrap();
//! let third = app.clone().oneshot(request()).await.unwrap();
//! assert_eq!(third.status(), 429);
//! assert!(third.headers().contains_key("retry-after"));
//! # }
//! ```
//!
//! # Counting
//!
//! One request is one atomic increment of the counter
//! `rl:{policy}:{window start, Unix seconds}:{key hash}`, created with a TTL that ends just after
//! the window, so concurrent requests from any number of processes are counted exactly: with a
//! limit of 20, 20 of 50 simultaneous requests are allowed. Requests refused still count, so a
//! client that keeps hammering stays refused until the window ends. The key is hashed
//! (SHA-256, 128 bits kept): any text — a client id, an IP address, even a secret — is safe,
//! never stored in clear, and cannot collide with another key through `:` or glob characters.
//! Processes whose clocks disagree by `d` may count a few requests in neighbouring windows near
//! a boundary; keep clocks synchronised (NTP), as for any time-based limit.
//!
//! # When the cache is down
//!
//! [`RateLimiter::check`] returns the cache's error; the caller decides. [`RateLimitLayer`]
//! **fails open** by default: the request goes through, without `RateLimit` headers, and a
//! warning is logged (policy and error, never the key). Rate limiting protects capacity; a
//! cache outage should not also become an API outage. [`RateLimitLayer::fail_closed`] answers
//! 503 `SERVICE_UNAVAILABLE` instead, for limits that guard something costly.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use core_db::Cache;
use sha2::{Digest, Sha256};
use tower::{Layer, Service};

use crate::error::AppError;
use crate::messages;

/// The `RateLimit-Policy` header.
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// The `RateLimit` header.
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// How long a counter outlives its window, so a process whose clock lags a little still finds it.
const COUNTER_GRACE: Duration = Duration::from_secs(1);

/// A limit: at most `limit` requests per `window` for one key, under a name that the headers
/// report and that separates this policy's counters from other policies'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    name: Arc<str>,
    limit: u64,
    window: Duration,
}

impl Policy {
    /// `limit` requests per minute, named `default`.
    pub fn per_minute(limit: u64) -> Self {
        Self {
            name: Arc::from("default"),
            limit,
            window: Duration::from_secs(60),
        }
    }

    /// `limit` requests per second, named `default`.
    pub fn per_second(limit: u64) -> Self {
        Self {
            name: Arc::from("default"),
            limit,
            window: Duration::from_secs(1),
        }
    }

    /// A named policy.
    ///
    /// ```
    /// use std::time::Duration;
    /// use core_web::rate_limit::Policy;
    ///
    /// let policy = Policy::new("jobs", 600, Duration::from_secs(60)).unwrap();
    /// assert_eq!(policy.name(), "jobs");
    /// assert!(Policy::new("jobs:submit", 1, Duration::from_secs(60)).is_err());
    /// assert!(Policy::new("jobs", 1, Duration::from_millis(1500)).is_err());
    /// ```
    ///
    /// # Errors
    /// [`crate::Error::InvalidPolicy`] when `name` is not 1–64 characters of ASCII letters,
    /// digits, `_`, `-` and `.`, or `window` is not a whole number of seconds between 1 s and
    /// one day (the headers speak whole seconds).
    pub fn new(name: impl Into<String>, limit: u64, window: Duration) -> crate::Result<Self> {
        let name = name.into();
        let valid_name = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !valid_name {
            return Err(crate::Error::InvalidPolicy {
                name,
                reason: "the name must be 1-64 characters of ASCII letters, digits, '_', '-', '.'",
            });
        }
        if window.subsec_nanos() != 0 || window.is_zero() || window.as_secs() > 86_400 {
            return Err(crate::Error::InvalidPolicy {
                name,
                reason: "the window must be a whole number of seconds from 1 s to 1 day",
            });
        }
        Ok(Self {
            name: Arc::from(name),
            limit,
            window,
        })
    }

    /// The policy's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Requests allowed per window.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The window's length.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// The `RateLimit-Policy` value: `"name";q=limit;w=window_seconds`.
    pub fn header_value(&self) -> HeaderValue {
        header_value(&format!(
            "\"{}\";q={};w={}",
            self.name,
            self.limit,
            self.window.as_secs()
        ))
    }
}

/// The outcome of one [`RateLimiter::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request is within the limit.
    pub allowed: bool,
    /// The policy's limit.
    pub limit: u64,
    /// Requests left in the current window (0 once the limit is reached).
    pub remaining: u64,
    /// Time until the window ends and the budget is whole again.
    pub reset: Duration,
    /// The policy the request was counted under.
    pub policy: Policy,
}

impl Decision {
    /// Whole seconds until the window ends, rounded up (at least 1 while the window runs).
    pub fn reset_secs(&self) -> u64 {
        self.reset.as_secs() + u64::from(self.reset.subsec_nanos() > 0)
    }

    /// The `RateLimit-Policy` and `RateLimit` headers for this decision.
    ///
    /// ```
    /// use std::time::Duration;
    /// use core_web::rate_limit::{Decision, Policy};
    ///
    /// let decision = Decision {
    ///     allowed: true,
    ///     limit: 600,
    ///     remaining: 599,
    ///     reset: Duration::from_millis(41_200),
    ///     policy: Policy::per_minute(600),
    /// };
    /// let headers = decision.headers();
    /// assert_eq!(headers["ratelimit-policy"], r#""default";q=600;w=60"#);
    /// assert_eq!(headers["ratelimit"], r#""default";r=599;t=42"#);
    /// ```
    pub fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(RATELIMIT_POLICY, self.policy.header_value());
        headers.insert(
            RATELIMIT,
            header_value(&format!(
                "\"{}\";r={};t={}",
                self.policy.name,
                self.remaining,
                self.reset_secs()
            )),
        );
        headers
    }

    /// The 429 `RATE_LIMITED` error for a refused request, with `Retry-After` (seconds until the
    /// window ends) and the `RateLimit` headers.
    pub fn into_error(self) -> AppError {
        self.into_error_with_code("RATE_LIMITED")
    }

    /// [`Decision::into_error`] with the application's own error code.
    ///
    /// ```
    /// use std::time::Duration;
    /// use core_web::rate_limit::{Decision, Policy};
    ///
    /// let decision = Decision {
    ///     allowed: false,
    ///     limit: 2,
    ///     remaining: 0,
    ///     reset: Duration::from_millis(1500),
    ///     policy: Policy::per_minute(2),
    /// };
    /// let err = decision.into_error_with_code("RFA_REQUEST_RATE_LIMITED");
    /// assert_eq!(err.status().as_u16(), 429);
    /// assert_eq!(err.error_code(), "RFA_REQUEST_RATE_LIMITED");
    /// assert_eq!(err.headers().unwrap()["retry-after"], "2");
    /// ```
    pub fn into_error_with_code(self, code: impl Into<String>) -> AppError {
        let retry_after = self.reset_secs().max(1);
        AppError::coded(
            StatusCode::TOO_MANY_REQUESTS,
            code,
            messages::text("errors.rate_limited"),
        )
        .with_header(header::RETRY_AFTER, retry_after)
        .with_headers(self.headers())
    }
}

/// Counts requests per key under one [`Policy`], on a [`Cache`] that every process shares. Cheap
/// to clone.
#[derive(Clone)]
pub struct RateLimiter {
    cache: Cache,
    policy: Policy,
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("cache", &self.cache)
            .field("policy", &self.policy)
            .finish()
    }
}

impl RateLimiter {
    /// A limiter counting on `cache` (a Redis or tiered cache to share the budget between
    /// processes; a memory cache limits one process).
    pub fn new(cache: Cache, policy: Policy) -> Self {
        Self { cache, policy }
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Counts one request for `key` and says whether it is allowed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> core_db::Result<()> {
    /// use core_db::Cache;
    /// use core_web::rate_limit::{Policy, RateLimiter};
    ///
    /// let limiter = RateLimiter::new(Cache::memory("app"), Policy::per_minute(1));
    /// assert!(limiter.check("client-7").await?.allowed);
    /// let second = limiter.check("client-7").await?;
    /// assert!(!second.allowed);
    /// assert_eq!(second.remaining, 0);
    /// assert!(limiter.check("client-8").await?.allowed, "each key has its own budget");
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// The cache's error when it cannot count (Redis unreachable or timing out).
    pub async fn check(&self, key: &str) -> Result<Decision, core_db::Error> {
        let window_ms = u128::from(self.policy.window.as_secs()) * 1000;
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let start_ms = now_ms - now_ms % window_ms;
        let left_ms = start_ms + window_ms - now_ms;
        let reset = Duration::from_millis(u64::try_from(left_ms).unwrap_or(u64::MAX));
        let counter = format!(
            "rl:{}:{}:{}",
            self.policy.name,
            start_ms / 1000,
            key_hash(key)
        );
        let count = self
            .cache
            .increment_ex(&counter, 1, reset + COUNTER_GRACE)
            .await?;
        let count = u64::try_from(count).unwrap_or(0);
        Ok(Decision {
            allowed: count <= self.policy.limit,
            limit: self.policy.limit,
            remaining: self.policy.limit.saturating_sub(count),
            reset,
            policy: self.policy.clone(),
        })
    }
}

/// 128 bits of SHA-256 of `key`, in hex.
fn key_hash(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// The values built here are ASCII (validated names and numbers); the fallback is unreachable.
fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// A layer that rate-limits the requests of a router: each request's key comes from a closure
/// (`None` lets the request through uncounted); allowed responses get the `RateLimit` headers,
/// refused requests get [`Decision::into_error`] without reaching the handler. See the
/// [module docs](self) for an example and for what happens when the cache is down.
///
/// Add it with `Router::layer` inside [`crate::middleware::stack`] (or on a group of routes), so
/// its 429 gets the request id and follows the request's error format.
pub struct RateLimitLayer<F> {
    limiter: RateLimiter,
    key: Arc<F>,
    code: Arc<str>,
    fail_closed: bool,
}

impl<F> Clone for RateLimitLayer<F> {
    fn clone(&self) -> Self {
        Self {
            limiter: self.limiter.clone(),
            key: Arc::clone(&self.key),
            code: Arc::clone(&self.code),
            fail_closed: self.fail_closed,
        }
    }
}

impl<F> fmt::Debug for RateLimitLayer<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("limiter", &self.limiter)
            .field("code", &self.code)
            .field("fail_closed", &self.fail_closed)
            .finish_non_exhaustive()
    }
}

impl<F> RateLimitLayer<F>
where
    F: Fn(&Request) -> Option<String> + Send + Sync + 'static,
{
    /// Limits requests with `limiter`, keyed by `key`. Fails open; refusals use `RATE_LIMITED`.
    pub fn new(limiter: RateLimiter, key: F) -> Self {
        Self {
            limiter,
            key: Arc::new(key),
            code: Arc::from("RATE_LIMITED"),
            fail_closed: false,
        }
    }

    /// Refuses with this error code instead of `RATE_LIMITED`.
    #[must_use]
    pub fn error_code(mut self, code: impl Into<String>) -> Self {
        self.code = Arc::from(code.into());
        self
    }

    /// Answers 503 `SERVICE_UNAVAILABLE` when the cache cannot count, instead of letting the
    /// request through.
    #[must_use]
    pub fn fail_closed(mut self) -> Self {
        self.fail_closed = true;
        self
    }
}

impl<S, F> Layer<S> for RateLimitLayer<F> {
    type Service = RateLimitService<S, F>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`RateLimitLayer`] wraps around a router or handler.
pub struct RateLimitService<S, F> {
    inner: S,
    layer: RateLimitLayer<F>,
}

impl<S: Clone, F> Clone for RateLimitService<S, F> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S, F> fmt::Debug for RateLimitService<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitService")
            .field("layer", &self.layer)
            .finish_non_exhaustive()
    }
}

impl<S, F> Service<Request> for RateLimitService<S, F>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    F: Fn(&Request) -> Option<String> + Send + Sync + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        // The clone that was not polled ready is kept; the ready one serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let Some(key) = (layer.key)(&req) else {
                return inner.call(req).await;
            };
            let decision = match layer.limiter.check(&key).await {
                Ok(decision) => decision,
                Err(err) if layer.fail_closed => {
                    tracing::warn!(
                        policy = layer.limiter.policy.name(),
                        error = %err,
                        "rate limit unavailable; request refused (fail closed)"
                    );
                    return Ok(AppError::ServiceUnavailable(messages::text(
                        "errors.service_unavailable",
                    ))
                    .into_response());
                }
                Err(err) => {
                    tracing::warn!(
                        policy = layer.limiter.policy.name(),
                        error = %err,
                        "rate limit unavailable; request let through (fail open)"
                    );
                    return inner.call(req).await;
                }
            };
            if !decision.allowed {
                return Ok(decision
                    .into_error_with_code(layer.code.to_string())
                    .into_response());
            }
            let headers = decision.headers();
            let mut response = inner.call(req).await?;
            for (name, value) in headers {
                if let Some(name) = name {
                    response.headers_mut().insert(name, value);
                }
            }
            Ok(response)
        })
    }
}
