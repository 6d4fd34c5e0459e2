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
//! A key's budget for a window is the shared counter
//! `rl:{policy}:{window start, Unix seconds}:{key hash}`, created by [`Cache::increment_ex`] with
//! a TTL that ends just after the window. Its values 1, 2, 3, … are tickets: a request is allowed
//! when it gets a ticket no greater than the limit. A [`RateLimiter`] (and its clones, which share
//! its state) does not spend one round trip per ticket: it **leases blocks** of them. One
//! `increment_ex(counter, n)` that answers `r` gives this process the tickets `r-n+1 ..= r`, and
//! the next requests for the key take them one by one, in this process, without touching the
//! cache (a hash of the key and a short lookup under a mutex).
//!
//! - **Blocks grow like slow start.** A key's first block in a window is one ticket; each next
//!   block of that key in that window is twice the previous one, up to
//!   `max(1, limit / `[`LEASE_DIVISOR`]`)`. A key that sends a few requests therefore costs one
//!   increment per request, as a plain counter would; a hot key allowed 10,000,000 requests a
//!   minute soon needs one round trip per 156,250 requests. A limit below 128 always has blocks
//!   of one: it is counted exactly, and concurrent requests for it claim their tickets
//!   concurrently (with a limit of 20, 20 of 50 simultaneous requests are allowed).
//! - **Never over the limit.** Each ticket goes to one process and, there, to one request, so
//!   however many processes share the Redis, no more than `limit` requests are allowed in a
//!   window.
//! - **The price: leased tickets are not shared.** A process refuses a key once the counter has
//!   reached the limit, even while other processes still hold unused tickets of that key. Each
//!   process holds at most `cap − 1` unused tickets of a key, so a request can be refused while
//!   up to `(processes − 1) × (cap − 1)` tickets of the budget are unused elsewhere (they still
//!   serve the requests those processes receive); tickets unused when the window ends are lost.
//!   With one process, or a limit below 128, a request is refused only once every ticket within
//!   the limit has been handed out (except, as with any counter, the tickets of a claim that
//!   reached Redis but whose answer was lost to a timeout or a cancelled request, and those of a
//!   forgotten key, below).
//! - **One claim at a time.** For blocks larger than one, a limiter has at most one claim in
//!   flight per key; requests that find the lease empty meanwhile wait for that claim and then
//!   take tickets from the block it brought. If it fails, they get a copy of its error.
//! - **Refused without a round trip.** Counters only grow within a window, so once a claim
//!   answers a value at or above the limit, the key is spent in this process: its further
//!   requests are refused at once, without the cache, until the window ends. Refused requests
//!   do not count (the counter stops near the limit) and a client that keeps hammering stays
//!   refused until the window ends.
//! - **`remaining`** ([`Decision::remaining`]) is the limit minus the ticket the request got: the
//!   exact count left with one process and blocks of one, an approximation across processes
//!   (others may hold tickets below or above it, unused).
//! - **Memory.** A limiter keeps state for the current window only: the keys it has seen are
//!   dropped when a new window begins (a request still in the previous window, around the
//!   boundary, counts with its own single increment). It tracks at most [`MAX_TRACKED_KEYS`]
//!   keys: when a new key arrives beyond that, the keys holding nothing (no unused tickets, not
//!   known spent, no claim in flight) are forgotten, and all of them are if more than half
//!   remain. Forgetting a key costs a few more increments (and its unused tickets).
//!
//! On the tiered cache every counter change is also announced to every process on the prefix;
//! leases make that one announcement per block as well.
//!
//! The key is hashed (SHA-256, 128 bits kept): any text — a client id, an IP address, even a
//! secret — is safe, never stored in clear (in the cache or in the limiter's memory), and cannot
//! collide with another key through `:` or glob characters. Processes whose clocks disagree by
//! `d` may count a few requests in neighbouring windows near a boundary; keep clocks
//! synchronised (NTP), as for any time-based limit.
//!
//! # When the cache is down
//!
//! [`RateLimiter::check`] returns the cache's error when it needs a new block and cannot get one
//! (requests that were waiting for the same block get a copy of it); the caller decides. Requests
//! served from tickets already leased, and keys known to be spent in this window, do not need the
//! cache. [`RateLimitLayer`] **fails open** by default: the request goes through, without
//! `RateLimit` headers, and a warning is logged (policy and error, never the key). Rate limiting
//! protects capacity; a cache outage should not also become an API outage.
//! [`RateLimitLayer::fail_closed`] answers 503 `SERVICE_UNAVAILABLE` instead, for limits that
//! guard something costly.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::fmt::{self, Write as _};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use core_db::Cache;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tower::{Layer, Service};

use crate::error::AppError;
use crate::messages;

/// The `RateLimit-Policy` header.
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// The `RateLimit` header.
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// How long a counter outlives its window, so a process whose clock lags a little still finds it.
const COUNTER_GRACE: Duration = Duration::from_secs(1);

/// The largest block of tickets a limiter leases at once is `max(1, limit / LEASE_DIVISOR)`
/// (see [Counting](self#counting)): 1 below a limit of 128, 9 for 600, 156,250 for 10,000,000.
/// It bounds what leasing can cost: fewer than one block per other process of a key's budget
/// may sit unused elsewhere when a process refuses the key.
pub const LEASE_DIVISOR: u64 = 64;

/// How many keys a limiter keeps lease state for (in the current window) before it forgets the
/// ones holding nothing, or all of them if more than half hold something (see
/// [Counting](self#counting)). A key takes roughly 100 to 200 bytes.
pub const MAX_TRACKED_KEYS: usize = 100_000;

/// Bytes of the key's SHA-256 kept.
const KEY_HASH_LEN: usize = 16;

/// 128 bits of SHA-256 of a key: the counter's name part and the lease map's key.
type KeyHash = [u8; KEY_HASH_LEN];

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
    /// Requests left in the current window: the limit minus the ticket this request got, 0 when
    /// it is refused. Exact with one process and a limit below 128; approximate across processes
    /// that lease larger blocks (see [Counting](self#counting)).
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

/// Counts requests per key under one [`Policy`], on a [`Cache`] that every process shares, leasing
/// blocks of the shared count (see [Counting](self#counting)). Cheap to clone; clones share the
/// leases.
#[derive(Clone)]
pub struct RateLimiter {
    cache: Cache,
    policy: Policy,
    leases: Arc<Mutex<Leases>>,
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("cache", &self.cache)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// A limiter counting on `cache` (a Redis or tiered cache to share the budget between
    /// processes; a memory cache limits one process).
    pub fn new(cache: Cache, policy: Policy) -> Self {
        Self {
            cache,
            policy,
            leases: Arc::new(Mutex::new(Leases::default())),
        }
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
    /// The cache's error when the request needs a new block of tickets and the cache cannot give
    /// it (Redis unreachable or timing out); requests waiting for the same block get a copy.
    pub async fn check(&self, key: &str) -> Result<Decision, core_db::Error> {
        let window_secs = self.policy.window.as_secs();
        let window_ms = u128::from(window_secs) * 1000;
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let start_ms = now_ms - now_ms % window_ms;
        let left_ms = start_ms + window_ms - now_ms;
        let reset = Duration::from_millis(u64::try_from(left_ms).unwrap_or(u64::MAX));
        let window = u64::try_from(start_ms / 1000).unwrap_or(u64::MAX);
        let hash = key_hash(key);
        let limit = self.policy.limit;
        loop {
            let step = self.leases().step(window, window_secs, &hash, limit);
            let ticket = match step {
                Step::Allow(ticket) => Some(ticket),
                Step::Refuse => None,
                Step::Wait(mut claim) => {
                    // `Ok` means the claim failed and sent its error; `Err` that it ended
                    // (its block is in the lease, or it was cancelled): look again.
                    if claim.changed().await.is_ok()
                        && let Some(err) = claim.borrow_and_update().as_deref()
                    {
                        return Err(copy_error(err));
                    }
                    continue;
                }
                Step::Claim(claim) => self.claim(claim, window, &hash, reset).await?,
            };
            return Ok(Decision {
                allowed: ticket.is_some(),
                limit,
                remaining: ticket.map_or(0, |t| limit.saturating_sub(t)),
                reset,
                policy: self.policy.clone(),
            });
        }
    }

    /// Takes a block of `claim.n` tickets from the shared counter and, unless the request is in
    /// a window this limiter has left, merges it into the key's lease; returns this request's
    /// ticket.
    async fn claim(
        &self,
        claim: Claim,
        window: u64,
        hash: &KeyHash,
        reset: Duration,
    ) -> Result<Option<u64>, core_db::Error> {
        let Claim { n, merge, gate } = claim;
        let counter = counter_key(&self.policy.name, window, hash);
        let by = i64::try_from(n).unwrap_or(i64::MAX);
        let value = match self
            .cache
            .increment_ex(&counter, by, reset + COUNTER_GRACE)
            .await
        {
            Ok(value) => value,
            Err(err) => {
                // The lease is untouched; whoever waits for this claim gets the error, and the
                // next request after them claims again.
                if let Some(gate) = &gate {
                    gate.send_replace(Some(Arc::new(copy_error(&err))));
                }
                return Err(err);
            }
        };
        let limit = self.policy.limit;
        let high = u64::try_from(value).unwrap_or(0);
        // `n` fits an `i64`: a block is at most `u64::MAX / 64`.
        let low = high.saturating_sub(n) + 1;
        let top = high.min(limit);
        let block = (low <= top).then_some((low, top));
        let ticket = if merge {
            self.leases().settle(window, hash, block, high >= limit)
        } else {
            block.map(|(low, _)| low)
        };
        // Wakes the requests waiting for this claim, now that its block is in the lease.
        drop(gate);
        Ok(ticket)
    }

    fn leases(&self) -> MutexGuard<'_, Leases> {
        // Nothing panics while the lock is held; recover the state anyway.
        self.leases.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What a claim that failed tells the requests waiting for it.
type ClaimFailure = Option<Arc<core_db::Error>>;

/// A limiter's leases: the keys of one window.
#[derive(Default)]
struct Leases {
    /// The window's start, Unix seconds.
    window: u64,
    keys: HashMap<KeyHash, Lease>,
}

/// One key's lease in the current window.
struct Lease {
    /// Tickets this process owns and has not handed out: ascending, disjoint inclusive ranges,
    /// none above the limit.
    owned: VecDeque<(u64, u64)>,
    /// The size of the next block to claim.
    next_block: u64,
    /// The counter has reached the limit: no ticket within it is left to claim.
    spent: bool,
    /// The claim in flight, if any: its sender is dropped when it ends.
    claim: Option<watch::Receiver<ClaimFailure>>,
}

/// What [`Leases::step`] tells a request to do.
enum Step {
    /// Allowed with this ticket.
    Allow(u64),
    /// Refused: the key is spent in this window.
    Refuse,
    /// Wait for the claim in flight, then step again.
    Wait(watch::Receiver<ClaimFailure>),
    /// Claim a block.
    Claim(Claim),
}

/// A block to take from the shared counter.
struct Claim {
    n: u64,
    /// Merge it into the lease (false for a request in a window the limiter has left).
    merge: bool,
    /// Held while the claim runs, so requests that find the lease empty wait for it.
    gate: Option<watch::Sender<ClaimFailure>>,
}

impl Leases {
    /// The next step of a request for `hash` in `window`.
    fn step(&mut self, window: u64, window_secs: u64, hash: &KeyHash, limit: u64) -> Step {
        if window != self.window {
            if window > self.window || self.window - window > window_secs {
                // A new window (or a clock stepped back by more than one): start over.
                self.window = window;
                self.keys.clear();
            } else {
                // A request of the previous window, around the boundary: counted on its own.
                return Step::Claim(Claim {
                    n: 1,
                    merge: false,
                    gate: None,
                });
            }
        }
        let cap = (limit / LEASE_DIVISOR).max(1);
        let lease = self.lease(hash);
        if let Some(ticket) = lease.take() {
            return Step::Allow(ticket);
        }
        if lease.spent {
            return Step::Refuse;
        }
        if cap == 1 {
            // Blocks of one: every request claims its own ticket, concurrently.
            return Step::Claim(Claim {
                n: 1,
                merge: true,
                gate: None,
            });
        }
        if let Some(claim) = &lease.claim
            && claim.has_changed().is_ok()
        {
            return Step::Wait(claim.clone());
        }
        let n = lease.next_block;
        lease.next_block = n.saturating_mul(2).min(cap);
        let (gate, claim) = watch::channel(None);
        lease.claim = Some(claim);
        Step::Claim(Claim {
            n,
            merge: true,
            gate: Some(gate),
        })
    }

    /// Adds a claimed block (tickets within the limit; `None` if none were) to the key's lease
    /// and takes this request's ticket. A block of a window this limiter has left gives the
    /// request its first ticket; the rest ends with that window.
    fn settle(
        &mut self,
        window: u64,
        hash: &KeyHash,
        block: Option<(u64, u64)>,
        spent: bool,
    ) -> Option<u64> {
        if window != self.window {
            return block.map(|(low, _)| low);
        }
        let lease = self.lease(hash);
        if let Some(block) = block {
            lease.add(block);
        }
        lease.spent |= spent;
        lease.take()
    }

    /// The key's lease, created if missing (forgetting idle keys first when the map is full).
    fn lease(&mut self, hash: &KeyHash) -> &mut Lease {
        if self.keys.len() >= MAX_TRACKED_KEYS && !self.keys.contains_key(hash) {
            self.keys.retain(|_, lease| lease.holds_something());
            if self.keys.len() > MAX_TRACKED_KEYS / 2 {
                self.keys.clear();
            }
        }
        self.keys.entry(*hash).or_insert_with(|| Lease {
            owned: VecDeque::new(),
            next_block: 1,
            spent: false,
            claim: None,
        })
    }
}

impl Lease {
    /// The lowest ticket owned, removed from the lease.
    fn take(&mut self) -> Option<u64> {
        let first = self.owned.front_mut()?;
        let ticket = first.0;
        if first.0 == first.1 {
            self.owned.pop_front();
        } else {
            first.0 += 1;
        }
        Some(ticket)
    }

    /// Adds a block, keeping the ranges in order (blocks never overlap: the counter gave them).
    fn add(&mut self, block: (u64, u64)) {
        let at = self
            .owned
            .iter()
            .position(|&(low, _)| low > block.0)
            .unwrap_or(self.owned.len());
        self.owned.insert(at, block);
    }

    /// Whether forgetting the key would lose tickets, its spent mark or a claim in flight.
    fn holds_something(&self) -> bool {
        !self.owned.is_empty()
            || self.spent
            || self
                .claim
                .as_ref()
                .is_some_and(|claim| claim.has_changed().is_ok())
    }
}

/// A copy of a claim's error for the requests that waited for it (`core_db::Error` is not
/// `Clone`): the same variant where it can be rebuilt, its message otherwise.
fn copy_error(err: &core_db::Error) -> core_db::Error {
    use core_db::Error;
    match err {
        Error::Redis(e) => Error::Redis(e.clone()),
        Error::Timeout { operation, after } => Error::Timeout {
            operation,
            after: *after,
        },
        Error::InvalidKey { key, reason } => Error::InvalidKey {
            key: key.clone(),
            reason,
        },
        Error::InvalidValue { key, reason } => Error::InvalidValue {
            key: key.clone(),
            reason: reason.clone(),
        },
        other => Error::Other(anyhow::anyhow!("{other}")),
    }
}

/// 128 bits of SHA-256 of `key`.
fn key_hash(key: &str) -> KeyHash {
    let digest = Sha256::digest(key.as_bytes());
    let mut hash = [0; KEY_HASH_LEN];
    hash.copy_from_slice(&digest[..KEY_HASH_LEN]);
    hash
}

/// `rl:{policy}:{window start}:{key hash in hex}`.
fn counter_key(policy: &str, window: u64, hash: &KeyHash) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut key = String::with_capacity(policy.len() + 2 * KEY_HASH_LEN + 26);
    key.push_str("rl:");
    key.push_str(policy);
    key.push(':');
    // Writing to a `String` cannot fail.
    let _ = write!(key, "{window}:");
    for byte in hash {
        key.push(char::from(HEX[usize::from(byte >> 4)]));
        key.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    key
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

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(i: usize) -> KeyHash {
        key_hash(&i.to_string())
    }

    fn claim_size(step: &Step) -> Option<(u64, bool, bool)> {
        match step {
            Step::Claim(c) => Some((c.n, c.merge, c.gate.is_some())),
            _ => None,
        }
    }

    #[test]
    fn blocks_are_merged_in_order_and_each_ticket_taken_once() {
        let mut leases = Leases::default();
        let key = hash(1);
        let step = leases.step(600, 60, &key, 6_400);
        assert_eq!(claim_size(&step), Some((1, true, true)));
        // Two claims came back out of order (one after a map reset, say).
        assert_eq!(leases.settle(600, &key, Some((10, 12)), false), Some(10));
        assert_eq!(leases.settle(600, &key, Some((3, 4)), false), Some(3));
        let mut tickets = Vec::new();
        while let Step::Allow(t) = leases.step(600, 60, &key, 6_400) {
            tickets.push(t);
        }
        assert_eq!(tickets, [4, 11, 12]);
        // Nothing left: the next step claims; a block past the limit spends the key.
        assert_eq!(leases.settle(600, &key, None, true), None);
        assert!(matches!(leases.step(600, 60, &key, 6_400), Step::Refuse));
    }

    #[test]
    fn one_claim_in_flight_per_key_when_blocks_grow() {
        let mut leases = Leases::default();
        let key = hash(1);
        let Step::Claim(lead) = leases.step(600, 60, &key, 6_400) else {
            panic!("a claim")
        };
        assert!(matches!(leases.step(600, 60, &key, 6_400), Step::Wait(_)));
        drop(lead); // cancelled: the next request claims, with the next size
        assert_eq!(
            claim_size(&leases.step(600, 60, &key, 6_400)),
            Some((2, true, true))
        );
        // Blocks of one: no waiting, every request claims.
        let small = hash(2);
        for _ in 0..3 {
            assert_eq!(
                claim_size(&leases.step(600, 60, &small, 100)),
                Some((1, true, false))
            );
        }
    }

    #[test]
    fn windows_start_over_and_late_requests_count_alone() {
        let mut leases = Leases::default();
        let key = hash(1);
        let _ = leases.step(600, 60, &key, 6_400);
        assert_eq!(leases.settle(600, &key, Some((1, 100)), false), Some(1));
        // A request of the previous window: its own single, unmerged increment.
        assert_eq!(
            claim_size(&leases.step(540, 60, &key, 6_400)),
            Some((1, false, false))
        );
        assert!(matches!(leases.step(600, 60, &key, 6_400), Step::Allow(2)));
        // The next window forgets the lease; a claim of the old window no longer merges.
        assert_eq!(
            claim_size(&leases.step(660, 60, &key, 6_400)),
            Some((1, true, true))
        );
        assert_eq!(leases.settle(600, &key, Some((101, 200)), false), Some(101));
        assert_eq!(leases.keys[&key].owned.len(), 0);
        // A clock stepped back by more than a window: start over there.
        let _ = leases.step(300, 60, &key, 6_400);
        assert_eq!(leases.window, 300);
    }

    #[test]
    fn the_map_is_bounded() {
        let mut leases = Leases::default();
        for i in 0..MAX_TRACKED_KEYS {
            let _ = leases.step(600, 60, &hash(i), 100);
        }
        // A few keys hold tickets or are spent; the rest are idle.
        assert_eq!(leases.settle(600, &hash(0), Some((1, 5)), false), Some(1));
        assert_eq!(leases.settle(600, &hash(1), None, true), None);
        let _ = leases.step(600, 60, &hash(MAX_TRACKED_KEYS), 100);
        assert_eq!(leases.keys.len(), 3, "the idle keys are forgotten");
        assert!(matches!(
            leases.step(600, 60, &hash(0), 100),
            Step::Allow(2)
        ));
        assert!(matches!(leases.step(600, 60, &hash(1), 100), Step::Refuse));

        // When more than half hold something, all are forgotten.
        let mut leases = Leases::default();
        for i in 0..MAX_TRACKED_KEYS {
            let _ = leases.step(600, 60, &hash(i), 100);
            leases.settle(600, &hash(i), None, true);
        }
        let _ = leases.step(600, 60, &hash(MAX_TRACKED_KEYS), 100);
        assert_eq!(leases.keys.len(), 1);
    }

    #[test]
    fn counter_names_follow_the_documented_layout() {
        let digest = Sha256::digest(b"client-7");
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            counter_key("jobs", 1_700_000_040, &key_hash("client-7")),
            format!("rl:jobs:1700000040:{hex}")
        );
    }

    #[test]
    fn waiters_get_the_same_error() {
        let timeout = core_db::Error::Timeout {
            operation: "cache increment",
            after: Duration::from_millis(300),
        };
        let copy = copy_error(&timeout);
        assert!(matches!(copy, core_db::Error::Timeout { .. }));
        assert_eq!(copy.to_string(), timeout.to_string());
        let other = core_db::Error::Config("x".into());
        assert_eq!(copy_error(&other).to_string(), other.to_string());
    }
}
