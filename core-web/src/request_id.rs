//! Request ids: accepted from `x-request-id` or generated, echoed on the response, carried by
//! the request's tracing span and readable anywhere in the request with [`current`].

use std::cell::RefCell;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng as _};
use tokio::task::futures::TaskLocalFuture;
use tracing::instrument::Instrumented;
use tracing::{Instrument, Span};

/// The header a request id is read from and written to.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static CURRENT: RequestId;
}

/// The id of the current request. Extract it in a handler, or call [`current`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(Arc<str>);

impl RequestId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(|| RequestId(Arc::from(generate(&mut [0; uuid::fmt::Simple::LENGTH])))))
    }
}

/// The current request's id, when called inside a request handled by the middleware stack.
pub fn current() -> Option<String> {
    CURRENT.try_with(|id| id.0.to_string()).ok()
}

/// A client's id is kept when it is 1–128 visible ASCII characters; anything else is replaced.
fn accept(value: &HeaderValue) -> Option<&str> {
    let bytes = value.as_bytes();
    let ok = !bytes.is_empty() && bytes.len() <= 128 && bytes.iter().all(|b| b.is_ascii_graphic());
    // Visible ASCII is UTF-8.
    ok.then(|| value.to_str().ok()).flatten()
}

/// A random (version 4) UUID in its simple form, in `buffer`.
///
/// The bytes come from a small, fast generator each thread keeps (xoshiro256++, `rand`'s
/// `SmallRng`), seeded once per thread from the thread's `rand` generator, which the OS seeds:
/// ids are unique across threads and processes, at a few nanoseconds an id rather than a
/// `getrandom` system call (`Uuid::new_v4`) or a ChaCha block. A request id names a request in
/// logs and errors; it is not a secret, so an unpredictable generator is not needed.
fn generate(buffer: &mut [u8; uuid::fmt::Simple::LENGTH]) -> &str {
    thread_local! {
        static RNG: RefCell<SmallRng> = RefCell::new(SmallRng::from_rng(&mut rand::rng()));
    }
    let bytes: [u8; 16] = RNG
        .try_with(|rng| rng.borrow_mut().random())
        .unwrap_or_else(|_| rand::random());
    let uuid = uuid::Builder::from_random_bytes(bytes).into_uuid();
    uuid.simple().encode_lower(buffer)
}

/// Middleware: assigns the id, opens the request's span (id, method, path, and an empty
/// `client_id` that an application's authentication fills with
/// `tracing::Span::current().record("client_id", …)`), logs the outcome and echoes the id in the
/// response header.
pub async fn middleware(mut req: Request, next: Next) -> Response {
    let mut assigned = Assigned::assign(&mut req, Instant::now());
    let mut scoped = std::pin::pin!(assigned.scope(next.run(req)));
    let mut response = scoped.as_mut().await;
    assigned.finish(&mut response, Instant::now(), scoped.span());
    response
}

/// A request's id and span: [`assign`](Self::assign) before the request goes on,
/// [`scope`](Self::scope) around its handling, [`finish`](Self::finish) on the response. The
/// pieces of [`middleware`], for the stack that runs several layers' work in one future.
pub(crate) struct Assigned {
    id: RequestId,
    /// The id as a header value, checked once (the id is visible ASCII).
    header: Option<HeaderValue>,
    span: Span,
    started: Instant,
}

impl Assigned {
    /// Takes the client's id or makes one, stores it in `req`'s extensions and opens the span.
    pub(crate) fn assign(req: &mut Request, started: Instant) -> Self {
        let mut buffer = [0; uuid::fmt::Simple::LENGTH];
        // The id and its header value, each made once from the client's header or a new id.
        let client = req
            .headers()
            .get(&HEADER)
            .and_then(|v| Some((accept(v)?, v)));
        let (id, header): (Arc<str>, _) = match client {
            Some((id, value)) => (Arc::from(id), Some(value.clone())),
            None => {
                let id = generate(&mut buffer);
                (Arc::from(id), HeaderValue::from_str(id).ok())
            }
        };
        // Text fields, not `Display` ones: recorded without the formatting machinery.
        let span = tracing::info_span!(
            "request",
            request_id = &*id,
            method = req.method().as_str(),
            path = req.uri().path(),
            client_id = tracing::field::Empty,
        );
        let id = RequestId(id);
        req.extensions_mut().insert(id.clone());
        Self {
            id,
            header,
            span,
            started,
        }
    }

    /// Runs `fut` in the request's span, with its id as [`current`]'s. The span moves into the
    /// future (no second handle on it to open and close); [`finish`](Self::finish) takes it
    /// back from there with `Instrumented::span`.
    pub(crate) fn scope<F: Future>(
        &mut self,
        fut: F,
    ) -> Instrumented<TaskLocalFuture<RequestId, F>> {
        let span = std::mem::replace(&mut self.span, Span::none());
        CURRENT.scope(self.id.clone(), fut).instrument(span)
    }

    /// Runs `f` in the request's span, with its id as [`current`]'s: the synchronous
    /// [`scope`](Self::scope), for a future that sets its scopes around each of its polls
    /// itself. The span stays here, for [`finish_in_span`](Self::finish_in_span).
    pub(crate) fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        let _entered = self.span.enter();
        CURRENT.sync_scope(self.id.clone(), f)
    }

    /// Logs the request's line (finished at `now`) in `span`, the request's span the future
    /// [`scope`](Self::scope) returned holds, and echoes the id on `response`.
    pub(crate) fn finish(self, response: &mut Response, now: Instant, span: &Span) {
        finished(self.header, self.started, response, now, span);
    }

    /// [`finish`](Self::finish) in the span this holds (used with [`in_scope`](Self::in_scope)).
    pub(crate) fn finish_in_span(self, response: &mut Response, now: Instant) {
        finished(self.header, self.started, response, now, &self.span);
    }
}

/// Logs the request's line in `span` and echoes the id's `header` on `response`.
fn finished(
    header: Option<HeaderValue>,
    started: Instant,
    response: &mut Response,
    now: Instant,
    span: &Span,
) {
    // The span as the line's explicit parent: no entering and leaving it just to log.
    tracing::info!(
        parent: span,
        status = response.status().as_u16(),
        // To the microsecond, which the JSON format writes without float formatting.
        latency_ms = now.saturating_duration_since(started).as_micros() as f64 / 1000.0,
        "request finished"
    );
    if let Some(value) = header {
        response.headers_mut().insert(HEADER, value);
    }
}
